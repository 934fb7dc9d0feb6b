"""The aiohttp application: ``GET /v1/avatars``, manifests and files with ETag, Range and gzip."""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import socket
import stat
import threading
from collections.abc import Iterable, Iterator

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from ..assets.bundle import MANIFEST_NAME, Manifest, parse_manifest, validate_avatar_id
from ..errors import AvatarError

log = logging.getLogger(__name__)


class AvatarStore:
    """Avatar bundles served by this process, found in folders of bundle folders.

    Args:
        roots: folders whose sub-folders are bundles (``<root>/<id>/manifest.json``); a later root
            does not override an id an earlier root has.
    """

    def __init__(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        self.roots = [pathlib.Path(r) for r in roots]

    def ids(self) -> list[str]:
        """The ids of the bundles available, sorted."""
        found: set[str] = set()
        for root in self.roots:
            if root.is_dir():
                found.update(d.name for d in root.iterdir() if (d / MANIFEST_NAME).is_file())
        return sorted(found)

    def directory(self, avatar_id: str) -> pathlib.Path | None:
        """The bundle folder of ``avatar_id``, or None."""
        try:
            validate_avatar_id(avatar_id)
        except AvatarError:
            return None
        for root in self.roots:
            candidate = root / avatar_id
            if (candidate / MANIFEST_NAME).is_file():
                return candidate
        return None

    def manifest(self, avatar_id: str) -> Manifest | None:
        """The parsed manifest of ``avatar_id``, or None if it is absent or invalid."""
        directory = self.directory(avatar_id)
        if directory is None:
            return None
        try:
            return parse_manifest((directory / MANIFEST_NAME).read_bytes(), expected_id=avatar_id)
        except (OSError, AvatarError) as err:
            log.warning("skipping avatar %r: %s", avatar_id, err)
            return None

    def __iter__(self) -> Iterator[Manifest]:
        for avatar_id in self.ids():
            manifest = self.manifest(avatar_id)
            if manifest is not None:
                yield manifest


STORE_KEY = web.AppKey("avatar_store", AvatarStore)


def _error(status: int, code: str, title: str, detail: str) -> web.Response:
    # The JSON:API-style error body the commercial service and its SDKs use.
    body = {"errors": [{"status": str(status), "code": code, "title": title, "detail": detail}]}
    return web.json_response(body, status=status)


async def list_avatars(request: web.Request) -> web.Response:
    """``GET /v1/avatars``: the avatars this service offers."""
    store = request.app[STORE_KEY]
    avatars = [{"id": m.id, "name": m.name, "size": m.total_size} for m in store]
    response = web.json_response({"avatars": avatars})
    response.enable_compression()
    return response


class _BundleFileResponse(web.FileResponse):
    """A FileResponse that can be told to ignore the request's ``Range`` (a failed ``If-Range``)."""

    def __init__(self, path: pathlib.Path, *, whole: bool, headers: dict[str, str]) -> None:
        super().__init__(path, headers=headers)
        self._whole = whole

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        # If-Range is decided already (aiohttp's own test refuses the exact Last-Modified date, as the
        # file's time has fractions of a second): drop it, and Range too when it failed.
        dropped = ("range", "if-range") if self._whole else ("if-range",)
        if any(name in request.headers for name in dropped):
            headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
            request = request.clone(headers=headers)
        return await super().prepare(request)


def _if_range_holds(request: web.Request, st: os.stat_result) -> bool:
    """RFC 9110 13.1.5: a Range applies only when ``If-Range`` (if any) names the current file.

    An entity tag must match the current ETag strongly; a date must be the Last-Modified time.
    """
    value = request.headers.get("If-Range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(("W/", '"')):
        return value == f'"{st.st_mtime_ns:x}-{st.st_size:x}"'  # aiohttp's ETag of the file
    date = request.if_range
    # Last-Modified has whole seconds (aiohttp rounds the file's time up): the same second matches.
    return date is not None and abs(date.timestamp() - st.st_mtime) < 1


async def avatar_file(request: web.Request) -> web.StreamResponse:
    """``GET /v1/avatars/{id}/{file}``: the manifest or a file it lists (ETag, Range, conditional GET).

    Only regular files inside the bundle folder are served (a symlink that leads out of it is refused),
    and a listed file only when its size is the manifest's.
    """
    store = request.app[STORE_KEY]
    avatar_id, name = request.match_info["avatar_id"], request.match_info["file"]
    manifest = store.manifest(avatar_id)
    directory = store.directory(avatar_id)
    if manifest is None or directory is None:
        return _error(404, "avatarNotFound", "Avatar not found", f"no avatar {avatar_id!r}")
    sizes = {f.path: f.size for f in manifest.files}
    if name != MANIFEST_NAME and name not in sizes:
        return _error(404, "fileNotFound", "File not found", f"avatar {avatar_id!r} has no file {name!r}")
    try:
        path = (directory / name).resolve(strict=True)
        inside = path.is_relative_to(directory.resolve(strict=True))
        st = path.stat()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return _error(404, "fileNotFound", "File not found", f"avatar {avatar_id!r} has no file {name!r}")
    if not inside or not stat.S_ISREG(st.st_mode) or (name in sizes and st.st_size != sizes[name]):
        why = (
            "leads out of the bundle"
            if not inside
            else "is no regular file"
            if not stat.S_ISREG(st.st_mode)
            else (f"has {st.st_size} bytes, not the manifest's {sizes.get(name)}")
        )
        log.warning("avatar %r: refusing to serve %s: it %s", avatar_id, name, why)
        return _error(404, "fileNotFound", "File not found", f"avatar {avatar_id!r} has no file {name!r}")
    rng = request.headers.get("Range", "").strip().replace(" ", "")
    if rng.lower() == "bytes=-0":  # a suffix of no bytes: unsatisfiable (RFC 9110 14.1.1)
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{st.st_size}"})
    # FileResponse answers Range (206), If-None-Match / If-Modified-Since (304) and HEAD itself.
    return _BundleFileResponse(path, whole=not _if_range_holds(request, st), headers={"Cache-Control": "no-cache"})


def create_app(store: AvatarStore) -> web.Application:
    """The aiohttp application serving ``store`` (the driving service adds its routes to it)."""
    app = web.Application()
    app[STORE_KEY] = store
    app.router.add_get("/v1/avatars", list_avatars)
    app.router.add_get("/v1/avatars/{avatar_id}/{file}", avatar_file)
    return app


class BackgroundServer:
    """A running server on its own thread and event loop (tests, the demo). Use as a context manager."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._app = app
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="avatarkit-server", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop serving and end the thread (idempotent)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result()
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_background(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> BackgroundServer:
    """Start ``app`` on a thread of its own; port 0 picks a free port (see ``.url``)."""
    return BackgroundServer(app, host, port)
