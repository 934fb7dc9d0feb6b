"""Humanoid rigs held in a T- or A-pose stand relaxed: arms down, elbows a little bent; body life."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

from avatarkit.assets.gltf import load_gltf
from avatarkit.codec import CANONICAL_NAMES
from avatarkit.rig import AvatarRig, rotation_between

from gltf_builder import GltfBuilder, quad

ZERO = np.zeros(len(CANONICAL_NAMES), np.float32)


def skeleton(arm_angle_deg: float, *, prefix: str = "") -> bytes:
    """Hips > Spine > Spine1 > Spine2 > {Neck > Head, (Left|Right)Shoulder > Arm > ForeArm > Hand}.

    The arms leave the shoulders ``arm_angle_deg`` below the horizontal (0: a T-pose, 90: hanging),
    0.28 m upper arms and 0.25 m forearms; a face quad on the head so the model has a mesh.
    """
    b = GltfBuilder()
    b.add("meshes", {"primitives": [quad(b)]})

    def node(name: str, translation: tuple[float, float, float], children: list[int], **extra: object) -> int:
        return b.add("nodes", {"name": prefix + name, "translation": list(translation), "children": children, **extra})

    a = math.radians(arm_angle_deg)
    sides = []
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        hand = node(f"{side}Hand", (sign * 0.25 * math.cos(a), -0.25 * math.sin(a), 0.0), [])
        fore = node(f"{side}ForeArm", (sign * 0.28 * math.cos(a), -0.28 * math.sin(a), 0.0), [hand])
        arm = node(f"{side}Arm", (sign * 0.12, 0.0, 0.0), [fore])
        sides.append(node(f"{side}Shoulder", (sign * 0.04, 0.15, 0.0), [arm]))
    face_node = b.add("nodes", {"name": "Face", "mesh": 0})
    head = node("Head", (0.0, 0.1, 0.0), [face_node])
    neck = node("Neck", (0.0, 0.2, 0.0), [head])
    spine2 = node("Spine2", (0.0, 0.15, 0.0), [neck, *sides])
    spine1 = node("Spine1", (0.0, 0.12, 0.0), [spine2])
    spine = node("Spine", (0.0, 0.1, 0.0), [spine1])
    hips = node("Hips", (0.0, 1.0, 0.0), [spine])
    b.doc["scenes"] = [{"nodes": [hips]}]
    b.doc["scene"] = 0
    return b.glb()


def world(rig: AvatarRig, name: str) -> np.ndarray:
    index = next(i for i, n in enumerate(rig.model.nodes) if n.name.rpartition(":")[2] == name)
    return rig.node_world[index][:3, 3]


@pytest.mark.parametrize(("angle", "prefix"), [(0.0, ""), (35.0, ""), (0.0, "mixamorig:")])
def test_arms_held_out_come_down_along_the_body(angle: float, prefix: str) -> None:
    rig = AvatarRig(load_gltf(skeleton(angle, prefix=prefix)))
    assert len(rig.rest_pose) == 4  # both upper arms and both forearms
    rig.pose(ZERO)
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        shoulder, elbow, hand = (world(rig, f"{side}{b}") for b in ("Arm", "ForeArm", "Hand"))
        upper = elbow - shoulder
        # The upper arm hangs: well below the shoulder, a little out to its own side, a little forward.
        assert upper[1] < -0.9 * 0.28
        assert 0.0 < sign * upper[0] < 0.3 * 0.28
        assert upper[2] > 0.0
        # Bones keep their lengths; the hand is below the elbow and the elbow bends forward.
        assert np.linalg.norm(upper) == pytest.approx(0.28, abs=1e-6)
        assert np.linalg.norm(hand - elbow) == pytest.approx(0.25, abs=1e-6)
        assert hand[1] < elbow[1] - 0.2 and hand[2] > elbow[2]


def test_arms_that_already_hang_are_left_as_they_are() -> None:
    rig = AvatarRig(load_gltf(skeleton(80.0)))
    assert rig.rest_pose == {}
    before = rig.node_world.copy()
    rig.pose(ZERO)
    np.testing.assert_allclose(rig.node_world, before, atol=1e-9)


def test_body_life_breathes_and_shifts_and_is_a_function_of_time() -> None:
    rig = AvatarRig(load_gltf(skeleton(0.0)))
    heads = []
    for t in np.linspace(0.0, 9.0, 19):
        rig.pose(ZERO, float(t))
        heads.append(world(rig, "Head").copy())
    heads_arr = np.array(heads)
    # The head moves a little (breathing lifts the chest, the weight shifts), never much.
    assert 0.001 < np.ptp(heads_arr, axis=0).max() < 0.05
    rig.pose(ZERO, 2.5)
    again = world(rig, "Head").copy()
    rig.pose(ZERO, 7.0)
    rig.pose(ZERO, 2.5)
    np.testing.assert_allclose(world(rig, "Head"), again)
    # Without a time there is no body life: the rest pose exactly.
    rig.pose(ZERO)
    still = world(rig, "Head").copy()
    rig.pose(ZERO)
    np.testing.assert_allclose(world(rig, "Head"), still)


def test_rotation_between_turns_one_direction_onto_another() -> None:
    for a, b in (((1, 0, 0), (0, -1, 0)), ((0, 1, 0), (0, 1, 0)), ((0, 0, 1), (0, 0, -1)), ((1, 2, 3), (-2, 0.5, 1))):
        r = rotation_between(a, b)[:3, :3]
        got = r @ (np.array(a, float) / np.linalg.norm(a))
        np.testing.assert_allclose(got, np.array(b, float) / np.linalg.norm(b), atol=1e-9)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-9)


@pytest.mark.parametrize("name", ["brunette-t.glb", "vroid.glb"])
def test_third_party_t_posed_avatars_stand_relaxed(name: str) -> None:
    from conftest import shared_file

    path: pathlib.Path = shared_file(name)
    rig = AvatarRig(load_gltf(path))
    assert rig.rest_pose, "a T-posed humanoid is detected"
    rig.pose(ZERO)
    for side in ("Left", "Right"):
        shoulder, hand = world(rig, f"{side}Arm"), world(rig, f"{side}Hand")
        assert hand[1] < shoulder[1] - 0.3  # the hands hang well below the shoulders
    lo, hi = rig.bounds()
    assert hi[0] - lo[0] < 0.7  # no arms stretched out: the body is narrow


def test_view_framings_widen_from_the_face_to_the_whole_body() -> None:
    from conftest import shared_file

    from avatarkit import AvatarError, AvatarManager, AvatarView, HeadlessSurface

    from render_helpers import require_gl

    require_gl()
    view = AvatarView(HeadlessSurface(64, 96), AvatarManager.derive(shared_file("brunette-t.glb")))
    try:
        default = view.camera.distance
        distances = {
            framing: view.frame(framing).distance for framing in ("head_and_shoulders", "upper_body", "full_body")
        }
        assert distances["head_and_shoulders"] == default
        assert distances["head_and_shoulders"] < distances["upper_body"] < distances["full_body"]
        assert 0.7 < view.camera.target[1] < 1.1  # the middle of a 1.77 m avatar
        with pytest.raises(AvatarError):
            view.frame("feet")
    finally:
        view.destroy()
