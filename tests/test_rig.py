"""The rig on small generated models: which targets a channel drives, which mouth set speech drives,
which nodes are joints, and how joints and the head move in the avatar's frame."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pytest

from avatarkit.assets.gltf import load_gltf
from avatarkit.codec import CANONICAL_NAMES, VISEME_NAMES
from avatarkit.rig import ARKIT_SPEECH_MOUTH, MOUTH_MODES, AvatarRig

from gltf_builder import GltfBuilder, quad

COL = {name: i for i, name in enumerate(CANONICAL_NAMES)}


def values(**channels: float) -> np.ndarray:
    out = np.zeros(len(CANONICAL_NAMES), np.float32)
    for name, value in channels.items():
        out[COL[name]] = value
    return out


def face(b: GltfBuilder, names: list[str], *, on_primitive: bool = False, node: dict[str, Any] | None = None) -> int:
    """A quad mesh whose target ``k`` moves vertex ``k % 4`` by 0.1 along +Z; returns the node."""
    targets = []
    for k in range(len(names)):
        delta = np.zeros((4, 3), np.float32)
        delta[k % 4, 2] = 0.1
        targets.append({"POSITION": b.accessor(delta)})
    prim = quad(b, targets=targets)
    mesh: dict[str, Any] = {"primitives": [prim]}
    if on_primitive:
        prim["extras"] = {"targetNames": names}
    else:
        mesh["extras"] = {"targetNames": names}
    b.add("meshes", mesh)
    return b.add("nodes", {"name": "Face", "mesh": len(b.doc["meshes"]) - 1, **(node or {})})


def moved(rig: AvatarRig, channels: np.ndarray) -> np.ndarray:
    """How far each vertex of the first primitive moves."""
    rig.pose(channels)
    prim = rig.primitives[0]
    world = rig.model_matrix(prim).astype(np.float64)
    rest = rig._rest_world[prim.node] if not prim.skinned else np.eye(4)
    now = prim.positions @ world[:3, :3].T + world[:3, 3]
    before = prim.data.positions @ rest[:3, :3].T + rest[:3, 3]
    return np.asarray(np.linalg.norm(now - before, axis=1))


def test_univrm_target_names_on_the_primitive_are_read() -> None:
    b = GltfBuilder()
    face(b, ["Fcl_MTH_A", "Fcl_EYE_Close"], on_primitive=True)
    model = load_gltf(b.glb())
    assert model.meshes[0].target_names == ["Fcl_MTH_A", "Fcl_EYE_Close"]
    assert not any("unnamed" in w for w in model.warnings)
    assert AvatarRig(model).driven_channels == {"viseme_aa"}


def test_a_listed_channel_drives_exactly_its_list_and_an_empty_list_nothing() -> None:
    b = GltfBuilder()
    face(b, ["viseme_aa", "Fcl_MTH_A", "jawOpen", "Fcl_MTH_O"])
    model = load_gltf(b.glb())
    plain = AvatarRig(model)
    assert plain.driven_channels == {"viseme_aa", "viseme_O", "jawOpen"}
    listed = AvatarRig(model, {"morph_targets": {"viseme_aa": ["Fcl_MTH_A"], "jawOpen": [], "viseme_O": []}})
    assert listed.driven_channels == {"viseme_aa"}
    np.testing.assert_allclose(moved(listed, values(viseme_aa=1.0, jawOpen=1.0)), [0, 0.1, 0, 0], atol=1e-6)


def test_mouth_modes_choose_which_set_speech_drives() -> None:
    spoken = [v for v in VISEME_NAMES if v != "viseme_sil"]
    b = GltfBuilder()
    others = [v for v in spoken if v != "viseme_aa"][:9]  # ten visemes in all: enough for auto
    face(b, ["jawOpen", "viseme_aa", "mouthSmileLeft", *others])  # vertex 0 jaw, 1 aa, 2 smile
    model = load_gltf(b.glb())
    speech = values(jawOpen=1.0, viseme_aa=1.0, mouthSmileLeft=1.0)

    auto = AvatarRig(model)  # both sets (Ready Player Me): the visemes, and expressions stay
    assert auto.mouth == "visemes"
    assert moved(auto, speech)[:3].round(6).tolist() == [0.0, 0.1, 0.1]
    arkit = AvatarRig(model, {"mouth": "arkit"})
    assert moved(arkit, speech)[:3].round(6).tolist() == [0.1, 0.0, 0.1]
    both = AvatarRig(model, {"mouth": "both"})
    assert moved(both, speech)[:3].round(6).tolist() == [0.1, 0.1, 0.1]
    with pytest.raises(ValueError, match=r"rig\.mouth"):
        AvatarRig(model, {"mouth": "lips"})

    few = GltfBuilder()
    face(few, ["jawOpen", "viseme_aa", "Fcl_MTH_O"])  # a few visemes: both add up
    assert AvatarRig(load_gltf(few.glb())).mouth == "both"
    assert "jawOpen" in ARKIT_SPEECH_MOUTH and "mouthSmileLeft" not in ARKIT_SPEECH_MOUTH


def _eye_model(eye_targets: bool) -> AvatarRig:
    """Ready Player Me's layout: skinned eye meshes called EyeLeft/EyeRight, bones LeftEye/RightEye."""
    b = GltfBuilder()
    names = ["eyeLookOutLeft", "eyeLookInLeft"] if eye_targets else ["eyeBlinkLeft"]
    prim = quad(b, targets=[{"POSITION": b.accessor(np.full((4, 3), 0.01, np.float32))} for _ in names])
    prim["attributes"]["JOINTS_0"] = b.accessor(np.array([[1, 0, 0, 0]] * 4, np.uint16))
    prim["attributes"]["WEIGHTS_0"] = b.accessor(np.array([[1, 0, 0, 0]] * 4, np.float32))
    b.add("meshes", {"primitives": [prim], "extras": {"targetNames": names}})
    b.add("nodes", {"name": "Armature", "children": [1, 2, 3, 4]})
    b.add("nodes", {"name": "Head", "translation": [0, 1.6, 0]})
    b.add("nodes", {"name": "LeftEye", "translation": [0.03, 1.65, 0.08]})
    b.add("nodes", {"name": "EyeLeft", "mesh": 0, "skin": 0})
    b.add("nodes", {"name": "RightEye", "translation": [-0.03, 1.65, 0.08]})
    ibm = np.stack([np.eye(4, dtype=np.float32)] * 2)
    ibm[0, :3, 3] = [0, -1.6, 0]
    ibm[1, :3, 3] = [-0.03, -1.65, -0.08]
    b.add(
        "skins",
        {"joints": [1, 2], "inverseBindMatrices": b.accessor(ibm.transpose(0, 2, 1).reshape(2, 16), type="MAT4")},
    )
    return AvatarRig(load_gltf(b.glb()))


def test_eye_joints_are_bones_not_skinned_meshes_and_targets_do_not_double() -> None:
    bones = _eye_model(eye_targets=False)
    assert bones.model.nodes[bones.joints["eye_left"]].name == "LeftEye"
    assert bones.model.nodes[bones.joints["eye_right"]].name == "RightEye"
    assert moved(bones, values(eyeLookOutLeft=1.0)).min() > 0.01  # the bone turns the skinned eye
    with_targets = _eye_model(eye_targets=True)
    assert with_targets.model.nodes[with_targets.joints["eye_left"]].name == "LeftEye"
    # The eye's own eyeLook targets move it (0.01 * sqrt(3) per vertex); the bone stays.
    np.testing.assert_allclose(moved(with_targets, values(eyeLookOutLeft=1.0)), 0.01 * math.sqrt(3), atol=1e-6)


def _quat_rotate(q: list[float], v: list[float]) -> list[float]:
    x, y, z, w = q
    u = np.array([x, y, z])
    vec = np.array(v, np.float64)
    out = vec + 2 * w * np.cross(u, vec) + 2 * np.cross(u, np.cross(u, vec))
    return [float(c) for c in out]


def _head_model(bone_rotation: list[float], *, nose_z: float = 0.1, faces_minus_z: bool = False) -> AvatarRig:
    """A Neck at 1.5 m, a Head bone 0.1 m above it turned by ``bone_rotation``, and under the head a
    small quad whose node puts it ``nose_z`` in front of the head whatever the bone's turn."""
    b = GltfBuilder()
    inverse = [-bone_rotation[0], -bone_rotation[1], -bone_rotation[2], bone_rotation[3]]
    face(b, ["jawOpen"], node={"name": "Nose", "translation": _quat_rotate(inverse, [0, 0, nose_z])})
    b.add("nodes", {"name": "Head", "translation": [0, 0.1, 0], "rotation": bone_rotation, "children": [0]})
    b.add("nodes", {"name": "Neck", "translation": [0, 1.5, 0], "children": [1]})
    if faces_minus_z:
        b.doc["extensions"] = {"VRM": {"specVersion": "0.0"}}
    model = load_gltf(b.glb())
    assert model.faces_minus_z is faces_minus_z
    return AvatarRig(model)


def _nose(rig: AvatarRig, channels: np.ndarray) -> np.ndarray:
    rig.pose(channels)
    prim = rig.primitives[0]
    world = rig.model_matrix(prim).astype(np.float64)
    return np.asarray(prim.positions[0] @ world[:3, :3].T + world[:3, 3])


POSES = [{}, {"headPitch": 0.3}, {"headYaw": 0.3}, {"headRoll": 0.3}, {"headPitch": -0.2, "headYaw": 0.4}]


def test_head_turns_in_the_avatars_frame() -> None:
    rig = _head_model([0, 0, 0, 1])
    rest = _nose(rig, values())
    np.testing.assert_allclose(rest, [0, 1.6, 0.1], atol=1e-6)
    assert _nose(rig, values(headPitch=0.3))[1] < 1.6 - 0.02  # a nod lowers the nose
    assert _nose(rig, values(headYaw=0.3))[0] > 0.02  # yaw turns it to the avatar's left (+X)
    assert _nose(rig, values(headRoll=0.3))[2] == pytest.approx(0.1, abs=1e-6)  # roll keeps it in front


@pytest.mark.parametrize(
    "bone_rotation",
    [
        [0, math.sin(math.pi / 4), 0, math.cos(math.pi / 4)],
        [math.sin(math.pi / 6), 0, 0, math.cos(math.pi / 6)],
        [0.3, -0.5, 0.2, math.sqrt(1 - 0.09 - 0.25 - 0.04)],
    ],
)
def test_head_turns_the_same_whatever_the_bones_orientation(bone_rotation: list[float]) -> None:
    reference, turned = _head_model([0, 0, 0, 1]), _head_model(bone_rotation)
    for pose in POSES:
        np.testing.assert_allclose(_nose(turned, values(**pose)), _nose(reference, values(**pose)), atol=1e-5)


def test_head_translation_moves_the_head_by_that_much() -> None:
    rig = _head_model([0, 0, 0, 1])
    rest = _nose(rig, values())
    shifted = _nose(rig, values(headX=0.02, headY=-0.01, headZ=0.03))
    np.testing.assert_allclose(shifted - rest, [0.02, -0.01, 0.03], atol=1e-6)


def test_a_vrm0_model_is_turned_to_face_plus_z() -> None:
    """VRM 0.x faces -Z: its nose (in front of it, at -Z in the file) ends up at +Z, and moves as a
    +Z model's would."""
    reference = _head_model([0, 0, 0, 1])
    vrm = _head_model([0, 0, 0, 1], nose_z=-0.1, faces_minus_z=True)
    for pose in POSES:
        np.testing.assert_allclose(_nose(vrm, values(**pose)), _nose(reference, values(**pose)), atol=1e-6)


@pytest.mark.parametrize(
    ("rig", "fragment"),
    [({"mouth": "lips"}, "rig.mouth"), ({"morph_targets": {"jawOpen": "JawOpen"}}, "rig.morph_targets")],
)
def test_a_manifest_with_a_bad_rig_is_refused(rig: dict[str, Any], fragment: str) -> None:
    from avatarkit.assets.bundle import parse_manifest
    from avatarkit.errors import AvatarError, AvatarErrorCode

    doc = {
        "format": "avatarkit-avatar",
        "format_version": 1,
        "id": "a",
        "model": "a.glb",
        "files": [{"path": "a.glb", "size": 1, "sha256": "0" * 64}],
        "rig": rig,
    }
    with pytest.raises(AvatarError, match=re.escape(fragment)) as info:
        parse_manifest(json.dumps(doc))
    assert info.value.code is AvatarErrorCode.INCOMPATIBLE_AVATAR_ASSET
    for mode in MOUTH_MODES:  # every mode the rig knows is a valid manifest value
        parse_manifest(json.dumps({**doc, "rig": {"mouth": mode}}))
