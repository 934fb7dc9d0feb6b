"""The frame in one C++ call: ``AvatarRig.pose`` (``_core.rig.Poser``) against the numpy maths it replaced.

The reference is ``bench/python_rig.py``, the Python path ``AvatarRig.pose`` ran before (numpy 4x4
products per node, then ``MorphMesh.apply`` and ``skin`` per primitive), which ``bench/rig_report.py``
also times. Both pose the same rig for random channel values and times; node world matrices,
positions and normals must agree to 1e-5. Then the Poser's own checks: what it refuses at setup.
"""

from __future__ import annotations

import math
import pathlib
import sys
import threading
from collections.abc import Callable

import numpy as np
import pytest

from avatarkit._core import rig as _rig
from avatarkit.assets import samples
from avatarkit.assets.gltf import load_gltf
from avatarkit.codec import CANONICAL_NAMES, VISEME_NAMES
from avatarkit.rig import AvatarRig

from gltf_builder import GltfBuilder, quad

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import python_rig

TOLERANCE = 1e-5


def random_frames(rig: AvatarRig, count: int, seed: int) -> list[tuple[np.ndarray, float | None]]:
    """Channel values over and beyond [0, 1] (the voice's clamp), head turns, and times or none."""
    rng = np.random.default_rng(seed)
    frames: list[tuple[np.ndarray, float | None]] = []
    for k in range(count):
        values = rng.uniform(-0.3, 1.3, len(rig.channels)).astype(np.float32)
        for i, name in enumerate(rig.channels):
            if name in ("headPitch", "headYaw", "headRoll"):
                values[i] = rng.uniform(-0.6, 0.6)
            elif name in ("headX", "headY", "headZ"):
                values[i] = rng.uniform(-0.05, 0.05)
        if k == 0:
            values[:] = 0.0
        frames.append((values, None if k % 3 == 0 else float(rng.uniform(0.0, 30.0))))
    return frames


def assert_same_as_python(rig: AvatarRig, count: int = 8, seed: int = 0) -> None:
    for values, t in random_frames(rig, count, seed):
        world, prims = python_rig.pose(rig, values, t)
        rig.pose(values, t)
        np.testing.assert_allclose(rig.node_world, world, atol=TOLERANCE, rtol=0, err_msg=f"t={t}")
        for prim, (positions, normals) in zip(rig.primitives, prims, strict=True):
            np.testing.assert_allclose(prim.positions, positions, atol=TOLERANCE, rtol=0, err_msg=f"t={t}")
            np.testing.assert_allclose(prim.normals, normals, atol=TOLERANCE, rtol=0, err_msg=f"t={t}")


# Generated models ------------------------------------------------------------------------------


def skeleton_rig(arm_angle_deg: float, prefix: str = "") -> AvatarRig:
    from test_rest_pose import skeleton

    return AvatarRig(load_gltf(skeleton(arm_angle_deg, prefix=prefix)))


def head_rig(faces_minus_z: bool) -> AvatarRig:
    from test_rig import _head_model

    return _head_model([0.3, -0.5, 0.2, math.sqrt(1 - 0.09 - 0.25 - 0.04)], faces_minus_z=faces_minus_z)


def eye_rig(eye_targets: bool) -> AvatarRig:
    from test_rig import _eye_model

    return _eye_model(eye_targets)


def _rotation(axis: tuple[float, float, float], degrees: float) -> list[float]:
    a = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    s = math.sin(math.radians(degrees) / 2)
    return [*(a * s).tolist(), math.cos(math.radians(degrees) / 2)]


def mixed_glb(mouth_targets: bool = True) -> bytes:
    """A humanoid-ish rig with everything at once: a root given as a matrix with a turn and a
    non-uniform scale, TRS bones turned every way, arms out to the sides, a Jaw given as a matrix,
    a data-driven node (known, unknown and zero-axis entries), and a skinned, morphed face whose
    targets include the ARKit mouth and ten visemes (so ``auto`` chooses ``visemes``)."""
    b = GltfBuilder()
    names = ["jawOpen", "mouthFunnel", "eyeBlinkLeft"]
    if mouth_targets:
        names += [v for v in VISEME_NAMES if v != "viseme_sil"][:10]
    rng = np.random.default_rng(5)
    targets = [
        {"POSITION": b.accessor(rng.normal(0, 0.01, (4, 3)).astype(np.float32)),
         "NORMAL": b.accessor(rng.normal(0, 0.1, (4, 3)).astype(np.float32))}
        for _ in names
    ]  # fmt: skip
    prim = quad(b, targets=targets)
    prim["attributes"]["NORMAL"] = b.accessor(np.tile(np.array([0, 0, 1], np.float32), (4, 1)))
    prim["attributes"]["JOINTS_0"] = b.accessor(np.array([[0, 1, 2, 3]] * 4, np.uint16))
    prim["attributes"]["WEIGHTS_0"] = b.accessor(
        np.array([[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0.2, 0.3, 0.5, 0], [0.1, 0.2, 0.3, 0.4]], np.float32)
    )
    b.add("meshes", {"primitives": [prim], "extras": {"targetNames": names}})
    # A second, unskinned mesh with one target under the head: a node transform, not skinning.
    b.add("meshes", {"primitives": [quad(b, targets=[{"POSITION": b.accessor(np.full((4, 3), 0.02, np.float32))}])],
                     "extras": {"targetNames": ["mouthSmileLeft"]}})  # fmt: skip

    def node(name: str, children: list[int] | None = None, **extra: object) -> int:
        return b.add("nodes", {"name": name, "children": children or [], **extra})

    jaw_matrix = np.eye(4)
    jaw_matrix[:3, :3] = np.diag([1.1, 0.9, 1.0])
    jaw_matrix[:3, 3] = [0, -0.03, 0.02]
    jaw = node("Jaw", matrix=jaw_matrix.T.reshape(-1).tolist())
    drive = {"avatarkit": {"drive": [
        {"channel": "browInnerUp", "axis": [1, 0, 0], "scale": 0.5},
        {"channel": "noSuchChannel", "axis": [0, 1, 0], "scale": 1.0},
        {"channel": "cheekPuff", "axis": [0, 0, 0], "scale": 1.0},
        {"channel": "mouthLeft", "axis": [0.3, -1, 0.2], "scale": -0.8},
    ]}}  # fmt: skip
    brow = node("Brow", translation=[0, 0.08, 0.09], rotation=_rotation((0, 1, 1), 30), extras=drive)
    smile = node("Smile", mesh=1, translation=[0, 0.02, 0.1])
    eyes = [node(f"{s}Eye", translation=[x, 0.05, 0.08], rotation=_rotation((1, 0, 0), -20)) for s, x in
            (("Left", 0.03), ("Right", -0.03))]  # fmt: skip
    head = node("Head", [jaw, brow, smile, *eyes], translation=[0, 0.1, 0], rotation=_rotation((1, 2, 3), 40),
                scale=[1.0, 1.2, 0.9])  # fmt: skip
    neck = node("Neck", [head], translation=[0, 0.2, 0], rotation=_rotation((0, 0, 1), -15))
    sides = []
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        hand = node(f"{side}Hand", translation=[sign * 0.25, 0, 0])
        fore = node(f"{side}ForeArm", [hand], translation=[sign * 0.28, 0, 0], rotation=_rotation((0, 1, 0), 10))
        arm = node(f"{side}Arm", [fore], translation=[sign * 0.12, 0, 0], scale=[1.05, 1.0, 1.0])
        sides.append(node(f"{side}Shoulder", [arm], translation=[sign * 0.04, 0.15, 0]))
    chest = node("Spine2", [neck, *sides], translation=[0, 0.15, 0], rotation=_rotation((1, 0, 0), 8))
    spine1 = node("Spine1", [chest], translation=[0, 0.12, 0])
    spine = node("Spine", [spine1], translation=[0, 0.1, 0], rotation=_rotation((0, 1, 0), -5))
    hips = node("Hips", [spine], translation=[0, 1.0, 0])
    face = node("Face", mesh=0, skin=0)
    root_matrix = np.eye(4)
    root_matrix[:3, :3] = np.array(
        [[math.cos(0.3), 0, math.sin(0.3)], [0, 1, 0], [-math.sin(0.3), 0, math.cos(0.3)]]
    ) @ np.diag([1.0, 1.1, 0.95])
    root_matrix[:3, 3] = [0.1, 0.0, -0.2]
    root = node("Armature", [hips, face], matrix=root_matrix.T.reshape(-1).tolist())
    skin_joints = [head, jaw, neck, chest]
    ibm = np.stack([np.eye(4, dtype=np.float32)] * 4)
    for k in range(4):
        ibm[k, :3, 3] = [0.0, -1.2 - 0.1 * k, 0.05 * k]
    b.add("skins", {"joints": skin_joints,
                    "inverseBindMatrices": b.accessor(ibm.transpose(0, 2, 1).reshape(4, 16), type="MAT4")})  # fmt: skip
    b.doc["scenes"] = [{"nodes": [root]}]
    b.doc["scene"] = 0
    return b.glb()


GENERATED: dict[str, Callable[[], AvatarRig]] = {
    "t-pose": lambda: skeleton_rig(0.0),
    "a-pose mixamo": lambda: skeleton_rig(35.0, "mixamorig:"),
    "hanging arms": lambda: skeleton_rig(80.0),
    "turned head bone": lambda: head_rig(False),
    "vrm 0.x": lambda: head_rig(True),
    "skinned eyes": lambda: eye_rig(False),
    "eyes with targets": lambda: eye_rig(True),
    "mixed, visemes": lambda: AvatarRig(load_gltf(mixed_glb())),
    "mixed, both": lambda: AvatarRig(load_gltf(mixed_glb()), {"mouth": "both"}),
    "mixed, arkit": lambda: AvatarRig(load_gltf(mixed_glb()), {"mouth": "arkit"}),
    "mixed, no visemes": lambda: AvatarRig(load_gltf(mixed_glb(mouth_targets=False))),
    "mixed, a few channels": lambda: AvatarRig(
        load_gltf(mixed_glb()), channels=["jawOpen", "headYaw", "headX", "eyeLookOutLeft", "browInnerUp"]
    ),
}


@pytest.mark.parametrize("name", list(GENERATED))
def test_generated_rigs_pose_as_the_python_path_did(name: str) -> None:
    rig = GENERATED[name]()
    if name.startswith("mixed"):
        assert len(rig.rest_pose) == 4 and rig.drives and {"head", "neck", "jaw", "eye_left"} <= set(rig.joints)
        assert rig.mouth == {"mixed, visemes": "visemes", "mixed, arkit": "arkit"}.get(name, "both")
    assert_same_as_python(rig, count=10, seed=len(name))


@pytest.mark.parametrize("avatar_id", samples.SAMPLE_IDS)
def test_sample_avatars_pose_as_the_python_path_did(avatar_id: str) -> None:
    glb = samples.build_glb_bytes(avatar_id)
    rig = AvatarRig(load_gltf(glb), samples.manifest(avatar_id, glb, b"")["rig"])
    assert rig.drives, "the samples' jaw and eyes are data-driven"
    assert_same_as_python(rig, count=6)


@pytest.mark.parametrize("name", ["brunette-t.glb", "vroid.glb"])
def test_third_party_avatars_pose_as_the_python_path_did(name: str) -> None:
    from conftest import shared_file

    rig = AvatarRig(load_gltf(shared_file(name)))
    assert rig.rest_pose and any(p.skinned for p in rig.primitives)
    assert_same_as_python(rig, count=6)


# The outputs -----------------------------------------------------------------------------------


def test_outputs_are_read_only_views_that_each_pose_overwrites() -> None:
    rig = GENERATED["mixed, both"]()
    moving = [p for p in rig.primitives if p.morph is not None or p.skinned]
    assert len(moving) == 2
    arrays = [moving[0].positions, moving[1].positions, moving[1].normals, rig.node_world]
    before = [a.copy() for a in arrays]
    values = np.zeros(len(rig.channels), np.float32)
    values[rig.channels.index("headYaw")] = 0.5
    values[rig.channels.index("mouthSmileLeft")] = 1.0
    rig.pose(values, 1.0)
    for array, old in zip(arrays, before, strict=True):
        assert not array.flags.writeable
        assert not np.allclose(array, old)  # the same array, posed in place
    assert moving[0].positions is rig.primitives[rig.primitives.index(moving[0])].positions
    with pytest.raises(ValueError, match="read-only"):
        moving[0].positions[0, 0] = 1.0


def test_the_morph_meshes_are_frozen_once_the_rig_holds_them() -> None:
    rig = GENERATED["mixed, both"]()
    morph = rig.primitives[0].morph
    assert morph is not None and morph.frozen
    with pytest.raises(_rig.DeformError, match="Poser"):
        morph.add_dense_target(np.zeros((morph.vertex_count, 3), np.float32))


def test_a_frame_of_the_wrong_length_is_refused() -> None:
    rig = GENERATED["t-pose"]()
    with pytest.raises(ValueError, match="channel values"):
        rig.pose(np.zeros(len(CANONICAL_NAMES) - 1, np.float32))
    with pytest.raises(ValueError, match="1-D"):
        rig.pose(np.zeros((1, len(CANONICAL_NAMES)), np.float32))


def test_poses_from_several_threads_take_turns() -> None:
    rig = GENERATED["mixed, both"]()
    frames = random_frames(rig, 4, seed=3)
    expected = [python_rig.pose(rig, v, t) for v, t in frames]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                for values, t in frames:
                    rig.pose(values, t)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    values, t = frames[-1]
    rig.pose(values, t)
    np.testing.assert_allclose(rig.node_world, expected[-1][0], atol=TOLERANCE, rtol=0)


# What the Poser refuses at setup ----------------------------------------------------------------


def _poser(parents: list[int], channels: int = 4) -> _rig.Poser:
    n = len(parents)
    eye = np.stack([np.eye(4)] * n) if n else np.zeros((0, 4, 4))
    return _rig.Poser(
        channels,
        np.array(parents, np.int64),
        eye,
        np.ones(n, bool),
        np.zeros((n, 3)),
        np.tile([0.0, 0.0, 0.0, 1.0], (n, 1)),
        np.ones((n, 3)),
        np.eye(4),
        eye,
    )


def test_the_node_forest_is_checked() -> None:
    assert _poser([-1, 0, 0, 1]).node_count == 4
    assert _poser([]).world.shape == (0, 4, 4)
    with pytest.raises(_rig.DeformError, match="cycle"):
        _poser([1, 0])
    with pytest.raises(_rig.DeformError, match="cycle"):
        _poser([-1, 2, 1])
    with pytest.raises(_rig.DeformError, match="parent"):
        _poser([-1, 5])
    with pytest.raises(_rig.DeformError, match="parent"):
        _poser([-2])
    with pytest.raises(_rig.DeformError, match="rest_world"):
        _rig.Poser(1, np.array([-1]), np.eye(4)[None], np.ones(1, bool), np.zeros((1, 3)),
                   np.array([[0, 0, 0, 1.0]]), np.ones((1, 3)), np.eye(4), np.zeros((2, 4, 4)))  # fmt: skip
    with pytest.raises(_rig.DeformError, match="turn"):
        _rig.Poser(1, np.array([-1]), np.eye(4)[None], np.ones(1, bool), np.zeros((1, 3)),
                   np.array([[0, 0, 0, 1.0]]), np.ones((1, 3)), np.eye(3), np.eye(4)[None])  # fmt: skip


def test_rules_are_checked() -> None:
    poser = _poser([-1, 0])
    identity = np.eye(3)
    poser.add_rule(1, identity, identity, [_rig.Term((0, 0, 1), channels=[(3, 1.0)], clamped=[(0, 2.0)])])
    for terms, node, match in [
        ([], 2, "node"),
        ([_rig.Term((0, 0, 1), channels=[(4, 1.0)])], 1, "column"),
        ([_rig.Term((0, 0, 1), clamped=[(-1, 1.0)])], 1, "column"),
        ([_rig.Term((0, 0, math.nan))], 1, "finite"),
        ([_rig.Term((0, 0, 1), channels=[(0, math.inf)])], 1, "finite"),
        ([_rig.Term((0, 0, 1), amplitude=0.1)], 1, "period"),
    ]:
        with pytest.raises(_rig.DeformError, match=match):
            poser.add_rule(node, identity, identity, terms)
    with pytest.raises(_rig.DeformError, match="3x3"):
        poser.add_rule(1, np.eye(4), identity, [])
    with pytest.raises(_rig.DeformError, match="finite"):
        poser.add_rule(1, identity * math.nan, identity, [])
    assert poser.rule_count == 1
    # A huge axis is normalized without overflow; a zero axis turns nothing.
    poser.add_rule(1, identity, identity, [_rig.Term((1e300, 0, 0), channels=[(0, 1.0)]), _rig.Term((0, 0, 0))])
    poser.pose(np.array([math.pi / 2, 0, 0, 0], np.float32))
    np.testing.assert_allclose(poser.world[1][:3, :3], [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-7)
    with pytest.raises(_rig.DeformError, match="column"):
        poser.set_translation(1, [0, 1, 4])
    with pytest.raises(_rig.DeformError, match="carrier"):
        poser.set_translation(2, [0, 1, 2])
    with pytest.raises(_rig.DeformError, match="column"):
        poser.set_zeroed(np.array([4]))


def test_later_rules_replace_earlier_ones_and_timed_ones_need_a_time() -> None:
    poser = _poser([-1], channels=1)
    identity = np.eye(3)
    turn = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # 90 degrees about Z
    poser.add_rule(0, turn, identity, [])
    poser.add_rule(0, identity, identity, [_rig.Term((1, 0, 0), constant=math.pi / 2)], timed=True)
    poser.pose(np.zeros(1, np.float32))
    np.testing.assert_allclose(poser.world[0][:3, :3], turn, atol=1e-12)
    poser.pose(np.zeros(1, np.float32), 0.0)
    np.testing.assert_allclose(poser.world[0][:3, :3], [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)
    poser.add_rule(0, identity, identity, [])  # a later rule that always applies wins both ways
    poser.pose(np.zeros(1, np.float32), 0.0)
    np.testing.assert_allclose(poser.world[0], np.eye(4), atol=1e-12)


def test_skins_and_primitives_are_checked() -> None:
    poser = _poser([-1, 0], channels=2)
    ibm = np.stack([np.eye(4)] * 2)
    with pytest.raises(_rig.DeformError, match="joint"):
        poser.add_skin(np.array([0, 2]), ibm)
    with pytest.raises(_rig.DeformError, match="inverse_bind"):
        poser.add_skin(np.array([0, 1]), ibm[:1])
    skin = poser.add_skin(np.array([0, 1]), ibm)
    positions = np.zeros((4, 3), np.float32)
    normals = np.tile(np.array([0, 0, 1], np.float32), (4, 1))
    joints = np.array([[0, 1, 0, 0]] * 4, np.uint16)
    weights = np.array([[0.5, 0.5, 0, 0]] * 4, np.float32)
    morph = _rig.MorphMesh(positions, normals)
    morph.add_dense_target(np.ones((4, 3), np.float32))
    none = np.zeros(0, np.int64)
    for kwargs, match in [
        ({"morph": morph, "target_channels": none}, "target columns"),
        ({"morph": morph, "target_channels": np.array([2])}, "column"),
        ({"morph": None, "target_channels": np.array([0])}, "without a morph"),
        ({"morph": morph, "target_channels": np.array([0]), "positions": positions[:3]}, "normals"),
        ({"morph": None, "target_channels": none, "skin": 1, "joints": joints, "weights": weights}, "skin"),
        ({"morph": None, "target_channels": none, "skin": skin}, "joints and weights"),
        ({"morph": None, "target_channels": none, "skin": skin, "joints": joints + 1, "weights": weights}, "joint"),
        ({"morph": None, "target_channels": none, "skin": skin, "joints": joints[:2], "weights": weights}, "joints"),
        ({"morph": None, "target_channels": none, "positions": positions[:0], "normals": normals[:0]}, "vertex"),
    ]:
        args = {"positions": positions, "normals": normals, **kwargs}
        with pytest.raises(_rig.DeformError, match=match):
            poser.add_primitive(
                args.pop("morph"), args.pop("target_channels"), args.pop("positions"), args.pop("normals"), **args
            )
    assert not morph.frozen
    # Joints past the skin that carry no weight are padding, as in skin().
    padded = joints.copy()
    padded[:, 3] = 7
    k = poser.add_primitive(morph, np.array([1]), positions, normals, skin=skin, joints=padded, weights=weights)
    assert morph.frozen and poser.primitive_count == 1
    poser.pose(np.array([0.0, 0.5], np.float32))
    np.testing.assert_allclose(poser.positions(k), 0.5, atol=1e-7)
    np.testing.assert_allclose(poser.normals(k), normals, atol=1e-7)
    with pytest.raises(IndexError):
        poser.positions(1)


def test_the_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import rig_report

    assert rig_report.main(["--frames", "3", "--rounds", "1", "--avatars", "default"]) == 0
    out = capsys.readouterr().out
    assert "default" in out and "ratio" in out
