"""Assemble one character into a GLB: meshes, materials, textures, morph targets and the rig nodes.

Node hierarchy (names are what the manifest's ``rig.joints`` lists)::

    Root (torso, clothes)
    └── Neck (neck)                       pivot at the base of the neck
        └── Head (head skin)              pivot at the top of the neck
            ├── Hair, Brows, Ears, UpperTeeth
            ├── Jaw (lower teeth, tongue) pivot at the jaw hinge
            ├── EyeLeft (eyeball)         pivot at the eye centre (+X, the character's left)
            └── EyeRight (eyeball)

At rest every node is a pure translation, so a renderer can apply rotations about node-local axes.
Each driven node carries ``extras.avatarkit.drive``: a list of ``{channel, axis, scale}``; the node's
rotation is the rotation vector ``sum(weight(channel) * scale * axis)`` (radians, node-local,
right-handed) applied after its rest transform. See ``RIG_DRIVE`` for the exact numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._characters import Character
from ._geometry import F64, MeshData
from ._gltf import GltfBuilder
from ._head import Landmarks, build_head, landmarks
from ._parts import brows, drop_hidden_scalp, ears, eyeball, hair, neck, teeth, tongue, torso
from ._rig import EYE_LOOK_DOWN, EYE_LOOK_SIDE, EYE_LOOK_UP, JAW_OPEN_ANGLE, FaceRig
from ._targets import TARGET_NAMES, face_delta, head_targets, lid_edges, rigid_jaw_targets, tongue_targets
from ._textures import cloth_texture, eye_texture, hair_texture, head_texture

#: Head targets whose shading visibly changes (lids turning over the eye, the jaw swinging open);
#: the others carry positions only, which keeps the file within its size budget.
_SHADED = {
    *(n for n in TARGET_NAMES if n.startswith("eye")),
    "jawOpen",
    "cheekPuff",
    "viseme_aa",
    "viseme_O",
    "viseme_E",
}

#: How much of the head rotation the neck takes (the head node takes the rest).
NECK_SHARE = 0.35

# Pivots relative to the head centre.
_NECK_PIVOT = np.array([0.0, -0.135, -0.012])
_HEAD_PIVOT = np.array([0.0, -0.065, -0.012])
_COLLAR_Y = -0.132


def _drive(channel: str, axis: tuple[float, float, float], scale: float) -> dict[str, Any]:
    return {"channel": channel, "axis": list(axis), "scale": scale}


def rig_drive() -> dict[str, list[dict[str, Any]]]:
    """Per node name: the channels that rotate it (see the module docstring)."""
    x, y, z = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
    head = 1.0 - NECK_SHARE
    # Positive rotation about +X turns the front (+Z) down: jaw opening, gaze down, head pitch down.
    return {
        "Neck": [
            _drive("headPitch", x, NECK_SHARE),
            _drive("headYaw", y, NECK_SHARE),
            _drive("headRoll", z, NECK_SHARE),
        ],
        "Head": [_drive("headPitch", x, head), _drive("headYaw", y, head), _drive("headRoll", z, head)],
        "Jaw": [_drive("jawOpen", x, JAW_OPEN_ANGLE)],
        "EyeLeft": [
            _drive("eyeLookUpLeft", x, -EYE_LOOK_UP),
            _drive("eyeLookDownLeft", x, EYE_LOOK_DOWN),
            _drive("eyeLookInLeft", y, -EYE_LOOK_SIDE),  # toward the nose: -X for the left eye
            _drive("eyeLookOutLeft", y, EYE_LOOK_SIDE),
        ],
        "EyeRight": [
            _drive("eyeLookUpRight", x, -EYE_LOOK_UP),
            _drive("eyeLookDownRight", x, EYE_LOOK_DOWN),
            _drive("eyeLookInRight", y, EYE_LOOK_SIDE),
            _drive("eyeLookOutRight", y, -EYE_LOOK_SIDE),
        ],
    }


def _local(mesh: MeshData, offset: F64) -> MeshData:
    """Move a head-relative mesh (and nothing of its deltas) into a node's local frame."""
    mesh.positions = mesh.positions - offset
    return mesh


def build_glb(ch: Character, *, hidden_scalp: bool = False) -> bytes:
    """Build the character's GLB bytes (deterministic).

    ``hidden_scalp`` keeps the skin the hair shell hides from every viewpoint (the shipped avatars
    leave it out; a test renders both and finds no pixel of difference).
    """
    lm = landmarks(ch)
    rig = FaceRig(lm)
    head = build_head(ch, lm)
    head.mesh.targets = head_targets(head, rig)
    if not hidden_scalp:
        drop_hidden_scalp(head, ch, lm)
    b = GltfBuilder()
    centre = lm.centre

    # Materials.
    skin_tex = b.add_png_texture(head_texture(ch, lm, head))
    eye_tex = b.add_png_texture(eye_texture(ch))
    hair_tex = b.add_png_texture(hair_texture(ch), tile=True)
    cloth_tex = b.add_png_texture(cloth_texture(ch), tile=True)
    m_skin = b.add_material("Skin", roughness=0.55, texture=skin_tex)
    m_skin_plain = b.add_material("SkinPlain", (*ch.skin, 1.0), roughness=0.55)
    # The neck is a shade darker than the face, as the texture paints the head's own neck.
    neck_colour = (ch.skin[0] * 0.93, ch.skin[1] * 0.93, ch.skin[2] * 0.93, 1.0)
    m_neck = b.add_material("Neck", neck_colour, roughness=0.55)
    m_eye = b.add_material("Eye", roughness=0.08, texture=eye_tex)
    m_teeth = b.add_material("Teeth", (0.92, 0.90, 0.84, 1.0), roughness=0.3)
    m_gum = b.add_material("Gum", (0.70, 0.30, 0.32, 1.0), roughness=0.5)
    m_tongue = b.add_material("Tongue", (0.70, 0.28, 0.30, 1.0), roughness=0.45)
    m_brow = b.add_material("Brow", (*ch.brow_colour, 1.0), roughness=0.9)
    m_hair = b.add_material("Hair", roughness=0.5, texture=hair_tex)
    m_cloth = b.add_material("Cloth", roughness=0.9, texture=cloth_tex)
    m_trim = b.add_material("Trim", (*ch.cloth_trim, 1.0), roughness=0.85)

    names = list(TARGET_NAMES)
    head_pivot = _HEAD_PIVOT
    jaw_pivot = lm.jaw_pivot

    # Head-mounted parts (positions relative to the Head node).
    head_mesh = b.add_mesh("Head", [(_local(head.mesh, head_pivot), m_skin)], names, normal_targets=_SHADED)
    brow_mesh, brow_verts = brows(ch, lm)
    edges = lid_edges(head, rig)
    for name in names:
        d = face_delta(rig, brow_verts, _face_parts(name), edges)
        if np.any(np.abs(d) > 1e-5):
            brow_mesh.targets[name] = d
    brow_names = [n for n in names if n in brow_mesh.targets]
    n_brows = b.add_node("Brows", mesh=b.add_mesh("Brows", [(_local(brow_mesh, head_pivot), m_brow)], brow_names))
    n_ears = b.add_node("Ears", mesh=b.add_mesh("Ears", [(_local(ears(ch, lm), head_pivot), m_skin_plain)]))
    n_hair = b.add_node("Hair", mesh=b.add_mesh("Hair", [(_local(hair(ch, lm), head_pivot), m_hair)]))
    up_teeth, up_gum = teeth(lm, upper=True)
    n_upper = b.add_node(
        "UpperTeeth",
        mesh=b.add_mesh("UpperTeeth", [(_local(up_teeth, head_pivot), m_teeth), (_local(up_gum, head_pivot), m_gum)]),
    )

    # Jaw-mounted parts: the Jaw node turns for jawOpen; visemes and the other jaw motions are targets.
    lo_teeth, lo_gum = teeth(lm, upper=False)
    tongue_mesh, tongue_s = tongue(lm)
    lo_teeth.targets = rigid_jaw_targets(rig, lo_teeth.positions, include_jaw_open=False)
    lo_gum.targets = rigid_jaw_targets(rig, lo_gum.positions, include_jaw_open=False)
    tongue_mesh.targets = tongue_targets(rig, tongue_mesh.positions, tongue_s, include_jaw_open=False)
    jaw_names = [n for n in names if n in tongue_mesh.targets or n in lo_teeth.targets]
    mouth = b.add_mesh(
        "JawParts",
        [
            (_local(lo_teeth, jaw_pivot), m_teeth),
            (_local(lo_gum, jaw_pivot), m_gum),
            (_local(tongue_mesh, jaw_pivot), m_tongue),
        ],
        jaw_names,
        # Small rigid turns in a dark mouth: normal deltas would cost bytes and show nothing.
        normal_targets=False,
    )
    drive = rig_drive()
    n_jaw = b.add_node("Jaw", translation=tuple(jaw_pivot - head_pivot), mesh=mouth, extras=_extras(drive["Jaw"]))

    eye_nodes = []
    for k, node_name in enumerate(("EyeLeft", "EyeRight")):
        eye_mesh = b.add_mesh(node_name, [(eyeball(ch, lm), m_eye)])
        eye_nodes.append(
            b.add_node(
                node_name,
                translation=tuple(lm.eye[k] - head_pivot),
                mesh=eye_mesh,
                extras=_extras(drive[node_name]),
            )
        )

    n_head = b.add_node(
        "Head",
        translation=tuple(head_pivot - _NECK_PIVOT),
        mesh=head_mesh,
        children=[n_hair, n_brows, n_ears, n_upper, n_jaw, *eye_nodes],
        extras=_extras(drive["Head"]),
    )
    neck_mesh = b.add_mesh("Neck", [(_local(neck(ch, lm, _COLLAR_Y - 0.05), _NECK_PIVOT), m_neck)])
    n_neck = b.add_node(
        "Neck",
        translation=tuple(centre + _NECK_PIVOT),
        mesh=neck_mesh,
        children=[n_head],
        extras=_extras(drive["Neck"]),
    )
    body, collar, trims = torso(ch, lm, _COLLAR_Y)
    collar_mat = m_trim if ch.cloth_style == "sweater" else m_cloth
    prims = [(_local(body, -centre), m_cloth), (_local(collar, -centre), collar_mat)]
    prims += [(_local(t, -centre), m_trim) for t in trims]
    n_root = b.add_node("Root", mesh=b.add_mesh("Body", prims), children=[n_neck])
    return b.to_glb([n_root])


def _face_parts(name: str) -> list[Any]:
    from ._targets import RECIPES

    return list(RECIPES[name])


def _extras(drive: list[dict[str, Any]]) -> dict[str, Any]:
    return {"avatarkit": {"drive": drive}}


def camera(ch: Character) -> dict[str, Any]:
    """Default framing: head and shoulders."""
    return {"target": [0.0, round(ch.head_centre_y - 0.045, 4), 0.0], "distance": 0.78, "fov_y_deg": 30.0}


def landmarks_of(ch: Character) -> Landmarks:
    """The character's landmarks (for tests and tools)."""
    return landmarks(ch)
