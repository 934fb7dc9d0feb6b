"""AvatarManager: downloads avatars from the asset endpoint and keeps them in an on-disk cache.

Stage 2 of the lifecycle. ``await AvatarManager.shared.load(avatar_id, on_progress)`` (or the class
shorthand ``await AvatarManager.load(...)``) returns an :class:`Avatar` whose files are all present
and verified against the manifest's sha256. The cache lives in the platform's cache folder
(platformdirs); downloads go to ``*.part`` files that are renamed into place only once complete and
verified, resume with HTTP ``Range`` where the server allows it, and are shared between concurrent
loads of the same id. A second load makes no request for the files: it revalidates the manifest
with its ETag (``304 Not Modified``) and checks the cached files.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import json
import logging
import os
import pathlib
import shutil
import time
from collections.abc import Callable
from typing import Any, ClassVar, Concatenate, Generic, ParamSpec, TypeVar, overload

import aiohttp
import platformdirs

from .assets.bundle import MANIFEST_NAME, Manifest, parse_manifest, validate_avatar_id
from .errors import AvatarError, AvatarErrorCode

log = logging.getLogger(__name__)

_ETAG_NAME = ".etag"
_CHUNK = 64 * 1024
#: The largest manifest and avatar listing read (bytes after decompression).
_MAX_MANIFEST = 1 << 20
_MAX_LISTING = 8 << 20
#: A download that brings fewer bytes than this within ``timeout`` seconds has stalled.
_STALL_BYTES = 1024


class LoadState(enum.Enum):
    """Where a load stands (the commercial SDK's ``LoadProgress`` cases)."""

    DOWNLOADING = "downloading"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class LoadProgress:
    """One progress report of :meth:`AvatarManager.load`: ``fraction`` grows from 0 to 1."""

    state: LoadState
    fraction: float
    bytes_done: int = 0
    bytes_total: int = 0
    error: AvatarError | None = None


ProgressCallback = Callable[[LoadProgress], object]


class Avatar:
    """A loaded avatar: its manifest and its verified files on disk.

    The model is parsed on first use (:meth:`model`); several views may share one Avatar.
    """

    def __init__(self, manifest: Manifest, directory: pathlib.Path, *, is_from_cache: bool) -> None:
        self.manifest = manifest
        self.directory = directory
        self.is_from_cache = is_from_cache
        self._model: Any = None

    @property
    def id(self) -> str:
        """The avatar id."""
        return self.manifest.id

    @property
    def name(self) -> str:
        """The display name."""
        return self.manifest.name

    @property
    def model_path(self) -> pathlib.Path:
        """The glTF binary on disk."""
        return self.directory / self.manifest.model

    @property
    def idle_path(self) -> pathlib.Path | None:
        """The idle clip (one AK1 payload) on disk, if the bundle has one."""
        return self.directory / self.manifest.idle if self.manifest.idle else None

    def idle_clip(self) -> bytes | None:
        """The idle clip's bytes, if the bundle has one."""
        path = self.idle_path
        return path.read_bytes() if path else None

    def model(self) -> Any:
        """The parsed glTF model (``avatarkit.assets.gltf.GltfModel``), loaded once."""
        if self._model is None:
            from .assets.gltf import load_gltf

            self._model = load_gltf(self.model_path)
        return self._model

    def __repr__(self) -> str:
        return f"Avatar(id={self.id!r}, name={self.name!r}, is_from_cache={self.is_from_cache})"


P = ParamSpec("P")
R = TypeVar("R")


class _shared(Generic[P, R]):  # lower case: it reads as a decorator
    """Lets ``AvatarManager.load(...)`` mean ``AvatarManager.shared.load(...)``, as in the SDKs."""

    def __init__(self, func: Callable[Concatenate[AvatarManager, P], R]) -> None:
        self.func = func
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    @overload
    def __get__(self, obj: None, cls: type[AvatarManager]) -> Callable[P, R]: ...
    @overload
    def __get__(self, obj: AvatarManager, cls: type[AvatarManager] | None = None) -> Callable[P, R]: ...
    def __get__(self, obj: AvatarManager | None, cls: type[AvatarManager] | None = None) -> Callable[P, R]:
        target = obj if obj is not None else AvatarManager.shared
        return functools.partial(self.func, target)


class _SharedDescriptor:
    def __get__(self, obj: object, cls: type[AvatarManager]) -> AvatarManager:
        if cls._shared_instance is None:
            cls._shared_instance = cls()
        return cls._shared_instance


class AvatarManager:
    """Loads avatars and manages their cache.

    Args:
        asset_url: base URL of the asset endpoint (``http://host:port``); by default the one of the
            environment ``AvatarSDK.initialize`` configured.
        cache_dir: where avatars are cached; by default ``<user cache dir>/avatarkit/avatars``, or
            ``$AVATARKIT_CACHE_DIR/avatars`` when that variable is set.
        timeout: seconds allowed for each HTTP request to start answering, and the stall deadline of
            a download: one that brings less than 1 kB in that time fails (a trickle does not hold it).
        file_timeout: seconds allowed for downloading one file, start to end (None: no limit).
    """

    _shared_instance: ClassVar[AvatarManager | None] = None
    shared: ClassVar[_SharedDescriptor] = _SharedDescriptor()

    @classmethod
    def reset_shared(cls) -> None:
        """Forget the shared manager: the next use of :attr:`shared` makes a new one.

        For a program that changes the asset endpoint or the cache folder between runs (tests,
        benchmarks); the cache on disk stays.
        """
        cls._shared_instance = None

    def __init__(
        self,
        asset_url: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        timeout: float = 30.0,
        file_timeout: float | None = 600.0,
    ) -> None:
        self._asset_url = asset_url.rstrip("/") if asset_url else None
        if cache_dir is None:
            root = os.environ.get("AVATARKIT_CACHE_DIR") or platformdirs.user_cache_dir("avatarkit", appauthor=False)
            cache_dir = pathlib.Path(root) / "avatars"
        self.cache_dir = pathlib.Path(cache_dir)
        self._timeout = timeout
        self._file_timeout = file_timeout
        self._loads: dict[str, asyncio.Task[Avatar]] = {}
        self._listeners: dict[str, list[ProgressCallback]] = {}

    # -- configuration ------------------------------------------------------------------------------

    @property
    def asset_url(self) -> str:
        """The asset endpoint's base URL."""
        if self._asset_url:
            return self._asset_url
        from .sdk import AvatarSDK

        if AvatarSDK.is_initialized:
            return AvatarSDK.configuration.resolved_environment.asset_url.rstrip("/")
        raise AvatarError(
            AvatarErrorCode.SDK_NOT_INITIALIZED,
            "no asset endpoint: call AvatarSDK.initialize() first or pass AvatarManager(asset_url=...)",
        )

    @asset_url.setter
    def asset_url(self, url: str) -> None:
        self._asset_url = url.rstrip("/")

    def _dir(self, avatar_id: str) -> pathlib.Path:
        return self.cache_dir / validate_avatar_id(avatar_id)

    # -- loading -----------------------------------------------------------------------------------

    @_shared
    async def load(self, avatar_id: str, on_progress: ProgressCallback | None = None) -> Avatar:
        """Download (or find in the cache) the avatar ``avatar_id`` and return it.

        ``on_progress`` receives :class:`LoadProgress` reports: ``downloading`` with a fraction that
        never decreases, then ``completed`` at 1.0, or ``failed`` with the error. Concurrent loads of
        one id share a single download.

        Raises:
            AvatarError: ``avatarIDUnrecognized`` (the endpoint does not know the id),
                ``failedToFetchAvatarMetadata`` (manifest unreachable and nothing cached),
                ``failedToDownloadAvatarAssets`` (a file failed to download or verify),
                ``incompatibleAvatarAsset``, ``loadCancelled``, ``invalidArgument``.
        """
        validate_avatar_id(avatar_id)
        listeners = self._listeners.setdefault(avatar_id, [])
        if on_progress is not None:
            listeners.append(on_progress)
        task = self._loads.get(avatar_id)
        if task is None or task.done():
            task = asyncio.ensure_future(self._load(avatar_id))
            self._loads[avatar_id] = task
            task.add_done_callback(functools.partial(self._finished, avatar_id))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise AvatarError(AvatarErrorCode.LOAD_CANCELLED, f"loading {avatar_id!r} was cancelled") from None
            raise
        finally:
            if on_progress is not None and on_progress in listeners:
                listeners.remove(on_progress)

    def _finished(self, avatar_id: str, task: asyncio.Task[Avatar]) -> None:
        if self._loads.get(avatar_id) is task:
            del self._loads[avatar_id]
        if not task.cancelled():
            task.exception()  # consumed here so an unawaited failure is not reported as lost

    @_shared
    def cancel_load(self, avatar_id: str) -> bool:
        """Cancel a load in progress; its callers get ``AvatarError(loadCancelled)``. True if one ran."""
        task = self._loads.get(avatar_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def _report(self, avatar_id: str, progress: LoadProgress) -> None:
        for callback in list(self._listeners.get(avatar_id, [])):
            try:
                callback(progress)
            except Exception:  # a progress callback must not break the load
                log.exception("on_progress callback failed")

    async def _load(self, avatar_id: str) -> Avatar:
        directory = self._dir(avatar_id)
        self._report(avatar_id, LoadProgress(LoadState.DOWNLOADING, 0.0))
        try:
            avatar = await self._fetch(avatar_id, directory)
        except AvatarError as err:
            self._report(avatar_id, LoadProgress(LoadState.FAILED, 0.0, error=err))
            raise
        except asyncio.CancelledError:
            cancelled = AvatarError(AvatarErrorCode.LOAD_CANCELLED, f"loading {avatar_id!r} was cancelled")
            self._report(avatar_id, LoadProgress(LoadState.FAILED, 0.0, error=cancelled))
            raise
        total = avatar.manifest.total_size
        self._report(avatar_id, LoadProgress(LoadState.COMPLETED, 1.0, total, total))
        return avatar

    async def _fetch(self, avatar_id: str, directory: pathlib.Path) -> Avatar:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout, sock_read=self._timeout)
        cached = self._cached_manifest(directory)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            manifest, etag = await self._fetch_manifest(session, avatar_id, directory, cached)
            directory.mkdir(parents=True, exist_ok=True)
            missing = [f for f in manifest.files if not f.matches(directory / f.path)]
            done = manifest.total_size - sum(f.size for f in missing)
            total = manifest.total_size
            for entry in missing:
                base = done

                def progress(n: int, base: int = base) -> None:
                    fraction = (base + n) / total if total else 1.0
                    self._report(avatar_id, LoadProgress(LoadState.DOWNLOADING, min(fraction, 1.0), base + n, total))

                download = self._download(session, avatar_id, directory, entry.path, entry.size, entry.sha256, progress)
                try:
                    await asyncio.wait_for(download, self._file_timeout)
                except asyncio.TimeoutError:
                    raise AvatarError(
                        AvatarErrorCode.FAILED_TO_DOWNLOAD_AVATAR_ASSETS,
                        f"downloading {avatar_id}/{entry.path} took longer than {self._file_timeout:g} s",
                    ) from None
                done += entry.size
        # The manifest goes in last: a cache folder with a manifest is complete.
        _atomic_write(directory / MANIFEST_NAME, manifest.to_json())
        if etag:
            _atomic_write(directory / _ETAG_NAME, etag.encode())
        _touch(directory)
        return Avatar(manifest, directory, is_from_cache=not missing)

    def _cached_manifest(self, directory: pathlib.Path) -> Manifest | None:
        try:
            return parse_manifest((directory / MANIFEST_NAME).read_bytes(), expected_id=directory.name)
        except (OSError, AvatarError):
            return None

    async def _fetch_manifest(
        self, session: aiohttp.ClientSession, avatar_id: str, directory: pathlib.Path, cached: Manifest | None
    ) -> tuple[Manifest, str | None]:
        url = f"{self.asset_url}/v1/avatars/{avatar_id}/{MANIFEST_NAME}"
        headers = {}
        etag_file = directory / _ETAG_NAME
        if cached is not None and etag_file.is_file():
            headers["If-None-Match"] = etag_file.read_text().strip()
        try:
            async with session.get(url, headers=headers) as resp:
                if resp.status == 304 and cached is not None:
                    return cached, headers["If-None-Match"]
                if resp.status == 404:
                    raise AvatarError(
                        AvatarErrorCode.AVATAR_ID_UNRECOGNIZED,
                        f"the asset endpoint has no avatar {avatar_id!r}",
                    )
                if resp.status != 200:
                    raise AvatarError(
                        AvatarErrorCode.FAILED_TO_FETCH_AVATAR_METADATA,
                        f"GET {url} answered {resp.status} {resp.reason}",
                    )
                # Read to the end: one read() returns only what has arrived (a manifest may come in
                # several TCP segments).
                body = await _read_capped(resp, _MAX_MANIFEST)
                if body is None:
                    raise AvatarError(
                        AvatarErrorCode.FAILED_TO_FETCH_AVATAR_METADATA,
                        f"the manifest at {url} is larger than {_MAX_MANIFEST} bytes",
                    )
                return parse_manifest(body, expected_id=avatar_id), resp.headers.get("ETag")
        except (aiohttp.ClientError, asyncio.TimeoutError) as err:
            if cached is not None and all(f.matches(directory / f.path) for f in cached.files):
                log.warning("asset endpoint unreachable (%s); using the cached copy of %r", err, avatar_id)
                return cached, None
            raise AvatarError(
                AvatarErrorCode.FAILED_TO_FETCH_AVATAR_METADATA,
                f"cannot fetch {url}: {err or type(err).__name__}",
            ) from err

    async def _download(
        self,
        session: aiohttp.ClientSession,
        avatar_id: str,
        directory: pathlib.Path,
        name: str,
        size: int,
        sha256: str,
        progress: Callable[[int], None],
    ) -> None:
        """Fetch one file to ``name.part``, resuming it when the server honours Range; verify; rename."""
        import hashlib

        url = f"{self.asset_url}/v1/avatars/{avatar_id}/{name}"
        part = directory / (name + ".part")
        for attempt in range(2):
            have = part.stat().st_size if part.is_file() else 0
            if have > size:
                part.unlink()
                have = 0
            headers = {"Range": f"bytes={have}-"} if 0 < have < size else {}
            try:
                if have < size:
                    async with session.get(url, headers=headers) as resp:
                        if resp.status == 404:
                            raise AvatarError(
                                AvatarErrorCode.AVATAR_ASSETS_MISSING,
                                f"the asset endpoint has no {avatar_id}/{name}",
                            )
                        if resp.status not in (200, 206):
                            raise AvatarError(
                                AvatarErrorCode.FAILED_TO_DOWNLOAD_AVATAR_ASSETS,
                                f"GET {url} answered {resp.status} {resp.reason}",
                            )
                        if resp.status == 200:
                            have = 0  # the server ignored Range: start over
                        mode = "ab" if have else "wb"
                        with part.open(mode) as f:
                            got = have
                            progress(got)
                            window_start, window_got = time.monotonic(), got
                            async for block in resp.content.iter_chunked(_CHUNK):
                                got += len(block)
                                now = time.monotonic()
                                if now - window_start >= self._timeout:
                                    if got - window_got < min(_STALL_BYTES, size - window_got):
                                        raise AvatarError(
                                            AvatarErrorCode.FAILED_TO_DOWNLOAD_AVATAR_ASSETS,
                                            f"downloading {url} stalled: {got - window_got} bytes in "
                                            f"{now - window_start:.1f} s",
                                        )
                                    window_start, window_got = now, got
                                if got > size:
                                    raise AvatarError(
                                        AvatarErrorCode.FAILED_TO_DOWNLOAD_AVATAR_ASSETS,
                                        f"{name} is larger than the manifest's {size} bytes",
                                    )
                                f.write(block)
                                progress(got)
            except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                raise AvatarError(
                    AvatarErrorCode.FAILED_TO_DOWNLOAD_AVATAR_ASSETS,
                    f"downloading {url} failed: {err or type(err).__name__}",
                ) from err
            digest = hashlib.sha256()
            with part.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            if part.stat().st_size == size and digest.hexdigest() == sha256:
                os.replace(part, directory / name)
                return
            # A corrupt partial file (or a file that changed on the server): drop it, try once more.
            log.warning("%s/%s failed verification (attempt %d); downloading it again", avatar_id, name, attempt + 1)
            part.unlink(missing_ok=True)
        raise AvatarError(
            AvatarErrorCode.FAILED_TO_DOWNLOAD_AVATAR_ASSETS, f"{avatar_id}/{name} does not match its sha256"
        )

    # -- cache -------------------------------------------------------------------------------------

    @_shared
    def retrieve(self, avatar_id: str) -> Avatar | None:
        """The cached avatar if it is complete and verified, else None. Makes no request."""
        directory = self._dir(avatar_id)
        manifest = self._cached_manifest(directory)
        if manifest is None or not all(f.matches(directory / f.path) for f in manifest.files):
            return None
        _touch(directory)
        return Avatar(manifest, directory, is_from_cache=True)

    @_shared
    def derive(self, path: str | os.PathLike[str]) -> Avatar:
        """An Avatar from local files: a bundle (folder or ``manifest.json``) or a bare ``.glb``/``.gltf``.

        The model is parsed right away, so an unreadable file fails here with ``incompatibleAvatarAsset``.
        """
        source = pathlib.Path(path)
        if source.name == MANIFEST_NAME and source.is_file():
            source = source.parent
        if source.is_dir():
            try:
                manifest = parse_manifest((source / MANIFEST_NAME).read_bytes())
            except OSError as err:
                raise AvatarError(AvatarErrorCode.AVATAR_ASSETS_MISSING, f"{source} has no {MANIFEST_NAME}") from err
            for entry in manifest.files:
                if not entry.matches(source / entry.path):
                    raise AvatarError(
                        AvatarErrorCode.AVATAR_ASSETS_MISSING,
                        f"{source / entry.path} is missing or does not match its sha256",
                    )
            avatar = Avatar(manifest, source, is_from_cache=True)
        elif source.is_file():
            import hashlib

            digest = hashlib.sha256(source.read_bytes()).hexdigest()
            stem = "".join(c if c.isalnum() or c in "_-." else "_" for c in source.stem).lstrip(".")[:64] or "avatar"
            doc = {
                "format": "avatarkit-avatar",
                "format_version": 1,
                "id": stem,
                "name": source.stem,
                "model": source.name,
                "files": [{"path": source.name, "size": source.stat().st_size, "sha256": digest}],
            }
            try:
                manifest = parse_manifest(json.dumps(doc))
            except AvatarError as err:
                raise AvatarError(
                    AvatarErrorCode.INVALID_ARGUMENT, f"cannot use {source.name!r}: {err.message}"
                ) from err
            avatar = Avatar(manifest, source.parent, is_from_cache=True)
        else:
            raise AvatarError(AvatarErrorCode.AVATAR_ASSETS_MISSING, f"{source} does not exist")
        avatar.model()
        return avatar

    @_shared
    def clear(self, avatar_id: str) -> None:
        """Delete one avatar from the cache (views that already loaded it keep their data)."""
        directory = self._dir(avatar_id)
        if avatar_id in self._loads:
            self.cancel_load(avatar_id)
        shutil.rmtree(directory, ignore_errors=True)

    @_shared
    def clear_all(self) -> None:
        """Delete every cached avatar."""
        for task in list(self._loads.values()):
            task.cancel()
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    @_shared
    def clear_lru(self, keep_count: int) -> list[str]:
        """Keep the ``keep_count`` most recently used avatars, delete the rest; returns the deleted ids."""
        if keep_count < 0:
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "keep_count must be >= 0")
        entries = sorted(self._entries(), key=lambda d: _last_used(d), reverse=True)
        removed = []
        for directory in entries[keep_count:]:
            if directory.name in self._loads:
                continue
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory.name)
        return removed

    @_shared
    def cache_size(self, avatar_id: str) -> int:
        """Bytes the avatar takes in the cache (0 when it is not cached)."""
        return _tree_size(self._dir(avatar_id))

    @_shared
    def total_cache_size(self) -> int:
        """Bytes all cached avatars take."""
        return _tree_size(self.cache_dir)

    @_shared
    def cached_ids(self) -> list[str]:
        """Ids of the avatars in the cache, most recently used first."""
        return [d.name for d in sorted(self._entries(), key=_last_used, reverse=True)]

    def _entries(self) -> list[pathlib.Path]:
        if not self.cache_dir.is_dir():
            return []
        return [d for d in self.cache_dir.iterdir() if d.is_dir() and (d / MANIFEST_NAME).is_file()]

    @_shared
    async def list_remote(self) -> list[dict[str, Any]]:
        """The avatars the asset endpoint offers (``GET /v1/avatars``): ``id``, ``name`` and ``size`` of each.

        Raises:
            AvatarError: ``failedToFetchAvatarMetadata`` when the endpoint cannot be reached or answers
                with an error; ``sdkNotInitialized`` when no asset endpoint is configured.
        """
        url = f"{self.asset_url}/v1/avatars"
        timeout = aiohttp.ClientTimeout(total=self._file_timeout, sock_connect=self._timeout, sock_read=self._timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
                resp.raise_for_status()
                body = await _read_capped(resp, _MAX_LISTING)
        except (aiohttp.ClientError, asyncio.TimeoutError) as err:
            raise AvatarError(
                AvatarErrorCode.FAILED_TO_FETCH_AVATAR_METADATA, f"cannot list {url}: {err or type(err).__name__}"
            ) from err
        if body is None:
            raise AvatarError(
                AvatarErrorCode.FAILED_TO_FETCH_AVATAR_METADATA,
                f"cannot list {url}: the listing is larger than {_MAX_LISTING} bytes",
            )
        try:
            doc = json.loads(body)
        except ValueError as err:
            raise AvatarError(AvatarErrorCode.FAILED_TO_FETCH_AVATAR_METADATA, f"cannot list {url}: {err}") from err
        avatars = doc.get("avatars") if isinstance(doc, dict) else None
        return list(avatars) if isinstance(avatars, list) else []


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes | None:
    """The whole body (decompressed), or None as soon as it passes ``cap`` bytes."""
    parts: list[bytes] = []
    size = 0
    async for block in resp.content.iter_chunked(_CHUNK):
        size += len(block)
        if size > cap:
            return None
        parts.append(block)
    return b"".join(parts)


def _atomic_write(path: pathlib.Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _touch(directory: pathlib.Path) -> None:
    with contextlib.suppress(OSError):
        now = time.time()
        os.utime(directory / MANIFEST_NAME, (now, now))


def _last_used(directory: pathlib.Path) -> float:
    try:
        return (directory / MANIFEST_NAME).stat().st_mtime
    except OSError:
        return 0.0


def _tree_size(root: pathlib.Path) -> int:
    if not root.exists():
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


__all__ = ["Avatar", "AvatarManager", "LoadProgress", "LoadState", "ProgressCallback"]
