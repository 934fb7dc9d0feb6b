"""The project's own sample avatars, modelled procedurally in code (no third-party assets).

Each sample is a stylized character built from numpy: an implicit head sculpt sampled on a grid with
slits for the eyes and mouth, eyeballs with painted irises, lids, brows, lips, teeth, tongue, a mouth
bag, ears, hair and clothes. Its head carries all 52 ARKit blend shapes and the 15 visemes as morph
targets (``mesh.extras.targetNames``). ``build_bundle`` writes the avatar bundle of
``docs/avatar-bundle.md``: ``manifest.json``, ``avatar.glb`` and ``idle.ak1``.

What a renderer does with a sample:

- Morph targets: every stream channel drives the targets of the same name on every mesh that has
  them (the head, the brows, and the jaw parts: lower teeth, gum and tongue).
- Joints (``rig.joints``): the node named by ``head`` turns by ``1 - NECK_SHARE`` of headPitch, headYaw
  and headRoll, the ``neck`` node by ``NECK_SHARE``; the ``jaw`` node turns about +X by
  ``jawOpen * JAW_OPEN_ANGLE`` (the head skin's jawOpen target matches it; visemes move the jaw parts
  by targets, not by the joint); the eye nodes turn by the eyeLook* channels. The exact axes and
  scales are in each node's ``extras.avatarkit.drive`` (see ``_build.rig_drive``). Positive rotation
  about +X turns the front down (jaw open, gaze down, head pitch down); about +Y toward +X, the
  character's left.

Command line: ``python -m avatarkit.assets.samples OUT_DIR`` builds every sample into
``OUT_DIR/<id>/``.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

from ._build import NECK_SHARE, build_glb, camera, rig_drive
from ._characters import CHARACTERS, Character
from ._idle import idle_clip, idle_values
from ._rig import JAW_OPEN_ANGLE
from ._targets import TARGET_NAMES

__all__ = [
    "JAW_OPEN_ANGLE",
    "MAX_BUNDLE_FILE_BYTES",
    "NECK_SHARE",
    "SAMPLE_IDS",
    "TARGET_NAMES",
    "build_all",
    "build_bundle",
    "build_glb_bytes",
    "character",
    "idle_clip",
    "idle_values",
    "manifest",
    "rig_drive",
]

#: The sample avatar ids; ``default`` is the one used when none is chosen.
SAMPLE_IDS: tuple[str, ...] = tuple(CHARACTERS)
#: Every file of a sample bundle stays under this size.
MAX_BUNDLE_FILE_BYTES = 3 * 1024 * 1024

MODEL_FILE = "avatar.glb"
IDLE_FILE = "idle.ak1"
MANIFEST_FILE = "manifest.json"


def character(avatar_id: str) -> Character:
    """The design parameters of a sample; ``KeyError`` for an unknown id."""
    try:
        return CHARACTERS[avatar_id]
    except KeyError:
        raise KeyError(f"unknown sample avatar {avatar_id!r}; samples are {', '.join(SAMPLE_IDS)}") from None


def build_glb_bytes(avatar_id: str) -> bytes:
    """The sample's ``avatar.glb`` (glTF 2.0 binary), byte-for-byte the same on every run."""
    return build_glb(character(avatar_id))


def _file_entry(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def manifest(avatar_id: str, glb: bytes, idle: bytes) -> dict[str, Any]:
    """The bundle manifest for a sample whose files have these bytes."""
    ch = character(avatar_id)
    return {
        "format": "avatarkit-avatar",
        "format_version": 1,
        "id": ch.id,
        "name": ch.name,
        "description": ch.description,
        "model": MODEL_FILE,
        "idle": IDLE_FILE,
        "files": [_file_entry(MODEL_FILE, glb), _file_entry(IDLE_FILE, idle)],
        "camera": camera(ch),
        "rig": {
            # Explicit, though every channel maps to the target of its own name.
            "morph_targets": {name: [name] for name in TARGET_NAMES},
            # The viseme targets and the ARKit mouth are modelled to add up: speech drives both.
            "mouth": "both",
            "joints": {
                "head": "Head",
                "neck": "Neck",
                "jaw": "Jaw",
                "eye_left": "EyeLeft",
                "eye_right": "EyeRight",
            },
        },
    }


def build_bundle(avatar_id: str, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Write the sample's bundle into ``out_dir`` (created if needed) and return the manifest's path.

    The output is deterministic: the same bytes on every run.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    glb = build_glb_bytes(avatar_id)
    idle = idle_clip(avatar_id)
    for name, data in ((MODEL_FILE, glb), (IDLE_FILE, idle)):
        if len(data) >= MAX_BUNDLE_FILE_BYTES:
            raise RuntimeError(f"sample {avatar_id!r}: {name} is {len(data)} bytes, over the 3 MiB budget")
        (out / name).write_bytes(data)
    path = out / MANIFEST_FILE
    path.write_text(json.dumps(manifest(avatar_id, glb, idle), indent=2) + "\n", encoding="utf-8")
    return path


def build_all(out_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """Build every sample into ``out_dir/<id>/``; returns the manifest paths."""
    return [build_bundle(avatar_id, pathlib.Path(out_dir) / avatar_id) for avatar_id in SAMPLE_IDS]
