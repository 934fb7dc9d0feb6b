"""The avatar bundle's manifest (``docs/avatar-bundle.md``): parsing, validation, file checks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import re
from collections.abc import Mapping
from typing import Any

from ..errors import AvatarError, AvatarErrorCode

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "avatarkit-avatar"
#: The newest bundle format this release reads; a newer one is ``incompatibleAvatarAsset``.
FORMAT_VERSION = 1

_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_FILE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_MAX_MANIFEST_BYTES = 1 << 20


def validate_avatar_id(avatar_id: object) -> str:
    """Return ``avatar_id`` if it is a safe avatar id, else raise ``AvatarError(invalidArgument)``.

    Ids name cache folders and URL segments: 1 to 64 of ``[A-Za-z0-9_.-]``, not starting with a dot,
    never ``..``; so no path traversal and no absolute paths.
    """
    if not isinstance(avatar_id, str) or not _ID_RE.fullmatch(avatar_id) or ".." in avatar_id:
        raise AvatarError(
            AvatarErrorCode.INVALID_ARGUMENT,
            f"invalid avatar id {avatar_id!r}: use 1-64 characters of [A-Za-z0-9_.-], not starting with '.'",
        )
    return avatar_id


@dataclasses.dataclass(frozen=True)
class BundleFile:
    """One file of a bundle, as the manifest lists it."""

    path: str
    size: int
    sha256: str

    def matches(self, file: pathlib.Path) -> bool:
        """Whether ``file`` exists with this size and sha256 (the whole file is hashed)."""
        try:
            if file.stat().st_size != self.size:
                return False
            digest = hashlib.sha256()
            with file.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            return False
        return digest.hexdigest() == self.sha256


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A parsed, validated ``manifest.json``."""

    id: str
    name: str
    format_version: int
    model: str
    idle: str | None
    files: tuple[BundleFile, ...]
    camera: Mapping[str, Any]
    rig: Mapping[str, Any]
    raw: Mapping[str, Any]

    @property
    def total_size(self) -> int:
        """Bytes of all files of the bundle (the manifest excluded)."""
        return sum(f.size for f in self.files)

    def file(self, path: str) -> BundleFile:
        """The entry for ``path``; ``AvatarError(avatarAssetsMissing)`` when the manifest lacks it."""
        for f in self.files:
            if f.path == path:
                return f
        raise AvatarError(AvatarErrorCode.AVATAR_ASSETS_MISSING, f"avatar {self.id!r} has no file {path!r}")

    def to_json(self) -> bytes:
        """The manifest as UTF-8 JSON bytes, as it was parsed."""
        return json.dumps(self.raw, indent=2, sort_keys=True).encode()


def _bad(message: str) -> AvatarError:
    return AvatarError(AvatarErrorCode.INCOMPATIBLE_AVATAR_ASSET, f"invalid avatar manifest: {message}")


def parse_manifest(data: bytes | str, *, expected_id: str | None = None) -> Manifest:
    """Parse and validate manifest JSON.

    Raises:
        AvatarError: ``incompatibleAvatarAsset`` for malformed manifests and for format versions newer
            than this release reads; ``avatarIDUnrecognized`` when ``expected_id`` does not match.
    """
    if isinstance(data, bytes) and len(data) > _MAX_MANIFEST_BYTES:
        raise _bad(f"{len(data)} bytes is more than a manifest can be")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise _bad(f"not JSON ({err})") from err
    if not isinstance(doc, dict):
        raise _bad("not a JSON object")
    if doc.get("format") != FORMAT_NAME:
        raise _bad(f"format is {doc.get('format')!r}, expected {FORMAT_NAME!r}")
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _bad("format_version must be a positive integer")
    if version > FORMAT_VERSION:
        raise AvatarError(
            AvatarErrorCode.INCOMPATIBLE_AVATAR_ASSET,
            f"avatar bundle format {version} needs a newer avatarkit (this one reads up to {FORMAT_VERSION})",
        )
    try:
        avatar_id = validate_avatar_id(doc.get("id"))
    except AvatarError as err:
        raise _bad(str(err.message)) from err
    if expected_id is not None and avatar_id != expected_id:
        raise AvatarError(AvatarErrorCode.AVATAR_ID_UNRECOGNIZED, f"manifest is for {avatar_id!r}, not {expected_id!r}")
    files_doc = doc.get("files")
    if not isinstance(files_doc, list) or not files_doc:
        raise _bad("files must be a non-empty list")
    files: list[BundleFile] = []
    for entry in files_doc:
        if not isinstance(entry, dict):
            raise _bad("each file must be an object")
        path, size, sha = entry.get("path"), entry.get("size"), entry.get("sha256")
        if not isinstance(path, str) or not _FILE_RE.fullmatch(path) or path == MANIFEST_NAME or ".." in path:
            raise _bad(f"file path {path!r} is not a plain file name")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= 1 << 32:
            raise _bad(f"file {path!r} has an invalid size")
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise _bad(f"file {path!r} needs a lower-case hex sha256")
        files.append(BundleFile(path, size, sha))
    if len({f.path for f in files}) != len(files):
        raise _bad("a file is listed twice")
    names = {f.path for f in files}
    model = doc.get("model")
    if not isinstance(model, str) or model not in names:
        raise _bad("model must name one of the files")
    idle = doc.get("idle")
    if idle is not None and (not isinstance(idle, str) or idle not in names):
        raise _bad("idle must name one of the files")
    camera = doc.get("camera", {})
    rig = doc.get("rig", {})
    if not isinstance(camera, dict) or not isinstance(rig, dict):
        raise _bad("camera and rig must be objects")
    mouth = rig.get("mouth", "auto")
    if mouth not in ("auto", "both", "visemes", "arkit"):  # rig.MOUTH_MODES
        raise _bad("rig.mouth must be auto, both, visemes or arkit")
    targets = rig.get("morph_targets", {})
    if not isinstance(targets, dict) or not all(
        isinstance(v, list) and all(isinstance(t, str) for t in v) for v in targets.values()
    ):
        raise _bad("rig.morph_targets must map channel names to lists of target names")
    name = doc.get("name", avatar_id)
    return Manifest(
        id=avatar_id,
        name=name if isinstance(name, str) else avatar_id,
        format_version=version,
        model=model,
        idle=idle,
        files=tuple(files),
        camera=camera,
        rig=rig,
        raw=doc,
    )


def sha256_file(path: pathlib.Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(
    directory: pathlib.Path,
    *,
    avatar_id: str,
    name: str,
    model: str,
    idle: str | None = None,
    camera: Mapping[str, Any] | None = None,
    rig: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Manifest:
    """Write ``manifest.json`` for the files already in ``directory`` and return it parsed."""
    listed = [model] + ([idle] if idle else [])
    files = [{"path": p, "size": (directory / p).stat().st_size, "sha256": sha256_file(directory / p)} for p in listed]
    doc: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "id": validate_avatar_id(avatar_id),
        "name": name,
        "model": model,
        "files": files,
        "camera": dict(camera or {}),
        "rig": dict(rig or {}),
        **dict(extra or {}),
    }
    if idle:
        doc["idle"] = idle
    data = json.dumps(doc, indent=2, sort_keys=True).encode()
    (directory / MANIFEST_NAME).write_bytes(data)
    return parse_manifest(data)
