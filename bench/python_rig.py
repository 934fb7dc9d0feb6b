"""The rig's per-frame path as it ran in Python before it moved to C++: the baseline and the reference.

``pose(rig, values, t)`` poses an :class:`avatarkit.rig.AvatarRig` from its setup (joints, humanoid
bones, relaxed rest pose, drives, mouth mask, primitives) with numpy 4x4 products per node, then
morphs each primitive with ``MorphMesh.apply`` and skins it with ``_core.rig.skin``, as
``AvatarRig.pose`` did. It leaves the rig untouched and returns what the rig would hold afterwards.
``bench/rig_report.py`` times it against the C++ path; ``tests/test_rig_core.py`` checks the C++ path
against it.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import numpy.typing as npt

from avatarkit._core import rig as _rig
from avatarkit.rig import (
    BREATH_CHEST_DEG,
    BREATH_PERIOD,
    BREATH_SHOULDER_DEG,
    EYE_PITCH,
    EYE_YAW,
    JAW_OPEN_ANGLE,
    NECK_SHARE,
    SHIFT_HIPS_DEG,
    SHIFT_PERIOD,
    VOICE_CHEST_DEG,
    AvatarRig,
    axis_angle_matrix,
    euler_matrix,
)

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]


def _quat_matrix(x: float, y: float, z: float, w: float) -> F64:
    n = math.sqrt(x * x + y * y + z * z + w * w) or 1.0
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w), 0],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w), 0],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y), 0],
            [0, 0, 0, 1],
        ]
    )


# Each joint's rest orientation (scale removed), per rig, computed once as the rig did.
_ROTATIONS: weakref.WeakKeyDictionary[AvatarRig, dict[int, F64]] = weakref.WeakKeyDictionary()
_COLUMNS: weakref.WeakKeyDictionary[AvatarRig, dict[str, int]] = weakref.WeakKeyDictionary()


def _world_rotation(rig: AvatarRig, node_index: int) -> F64:
    q = rig._rest_world[node_index][:3, :3]
    norms = np.linalg.norm(q, axis=0)
    rotation = np.eye(4)
    rotation[:3, :3] = q / np.where(norms > 0, norms, 1.0)
    return rotation


def _in_joint_frame(rig: AvatarRig, node_index: int, rotation: F64) -> F64:
    cache = _ROTATIONS.setdefault(rig, {})
    q = cache.get(node_index)
    if q is None:
        q = cache[node_index] = _world_rotation(rig, node_index)
    turned: F64 = q.T @ rotation @ q
    return turned


def _channel(rig: AvatarRig, values: F32, name: str) -> float:
    columns = _COLUMNS.get(rig)
    if columns is None:
        columns = _COLUMNS[rig] = {n: i for i, n in enumerate(rig.channels)}
    col = columns.get(name)
    return float(values[col]) if col is not None else 0.0


def _local(rig: AvatarRig, node_index: int, extra: F64 | None) -> F64:
    node = rig.model.nodes[node_index]
    if extra is None:
        return node.matrix.astype(np.float64)
    if node.translation is not None or node.rotation is not None or node.scale is not None:
        t = np.eye(4)
        t[:3, 3] = node.translation or (0.0, 0.0, 0.0)
        r = _quat_matrix(*(node.rotation or (0.0, 0.0, 0.0, 1.0)))
        s = np.diag([*(node.scale or (1.0, 1.0, 1.0)), 1.0])
        return t @ r @ extra @ s
    return node.matrix.astype(np.float64) @ extra


def _body_life(rig: AvatarRig, values: F32, t: float, extra: dict[int, F64]) -> None:
    breath = math.sin(2 * math.pi * t / BREATH_PERIOD)
    shift = math.sin(2 * math.pi * t / SHIFT_PERIOD)
    voice = min(1.0, max(0.0, _channel(rig, values, "jawOpen")))
    chest = rig.bones.get("upper_chest", rig.bones.get("chest"))
    if chest is not None:
        pitch = -math.radians(BREATH_CHEST_DEG * 0.5 * (1 + breath) + VOICE_CHEST_DEG * voice)
        extra[chest] = _in_joint_frame(rig, chest, euler_matrix(pitch, 0.0, 0.0))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        shoulder = rig.bones.get(f"shoulder_{side}")
        if shoulder is not None:
            lift = math.radians(BREATH_SHOULDER_DEG * 0.5 * (1 + breath))
            extra[shoulder] = _in_joint_frame(rig, shoulder, euler_matrix(0.0, 0.0, sign * lift))
    hips, spine = rig.bones.get("hips"), rig.bones.get("spine")
    if hips is not None and spine is not None:
        roll = math.radians(SHIFT_HIPS_DEG * shift)
        extra[hips] = _in_joint_frame(rig, hips, euler_matrix(0.0, 0.0, roll))
        extra[spine] = _in_joint_frame(rig, spine, euler_matrix(0.0, 0.0, -roll))


def pose_nodes(rig: AvatarRig, values: F32, t: float | None = None) -> F64:
    """The world matrix of every node (float64) for masked channel ``values`` at time ``t``."""
    extra: dict[int, F64] = dict(rig.rest_pose)
    if t is not None:
        _body_life(rig, values, t, extra)
    pitch, yaw, roll = (_channel(rig, values, n) for n in ("headPitch", "headYaw", "headRoll"))
    head, neck = rig.joints.get("head"), rig.joints.get("neck")
    if head is not None:
        share = NECK_SHARE if neck is not None else 0.0
        extra[head] = _in_joint_frame(
            rig, head, euler_matrix(pitch * (1 - share), yaw * (1 - share), roll * (1 - share))
        )
        if neck is not None:
            extra[neck] = _in_joint_frame(rig, neck, euler_matrix(pitch * share, yaw * share, roll * share))
    jaw = rig.joints.get("jaw")
    if jaw is not None:
        extra[jaw] = _in_joint_frame(
            rig, jaw, euler_matrix(_channel(rig, values, "jawOpen") * JAW_OPEN_ANGLE, 0.0, 0.0)
        )
    for side, sign in rig._eye_joint_sides:
        eye = rig.joints.get(f"eye_{side.lower()}")
        if eye is None:
            continue
        look_out = _channel(rig, values, f"eyeLookOut{side}") - _channel(rig, values, f"eyeLookIn{side}")
        look_up = _channel(rig, values, f"eyeLookUp{side}") - _channel(rig, values, f"eyeLookDown{side}")
        extra[eye] = _in_joint_frame(rig, eye, euler_matrix(-look_up * EYE_PITCH, sign * look_out * EYE_YAW, 0.0))
    for node_index, entries in rig.drives.items():
        rotation = np.eye(4)
        for col, axis, scale in entries:
            value = float(values[col])
            if value != 0.0:
                rotation = rotation @ axis_angle_matrix(axis, scale * value)
        extra[node_index] = rotation
    shift = np.array([_channel(rig, values, n) for n in ("headX", "headY", "headZ")])
    carrier = neck if neck is not None else head
    world = np.empty_like(rig._rest_world)
    stack = [i for i, n in enumerate(rig.model.nodes) if n.parent is None]
    for i in stack:
        world[i] = rig._turn @ _local(rig, i, extra.get(i))
        if i == carrier:
            world[i][:3, 3] += shift
    while stack:
        i = stack.pop()
        for c in rig.model.nodes[i].children:
            world[c] = world[i] @ _local(rig, c, extra.get(c))
            if c == carrier:
                world[c][:3, 3] += shift
            stack.append(c)
    return world


def masked(rig: AvatarRig, values: npt.ArrayLike) -> F32:
    """The channel values with the mouth set this avatar does not use at zero (``rig.mouth``)."""
    out = np.array(values, np.float32)
    out[rig._unused] = 0.0
    return out


def pose(rig: AvatarRig, values: npt.ArrayLike, t: float | None = None) -> tuple[F64, list[tuple[F32, F32]]]:
    """Node world matrices and each primitive's ``(positions, normals)``, as ``AvatarRig.pose`` left them."""
    vals = masked(rig, values)
    world = pose_nodes(rig, vals, t)
    out: list[tuple[F32, F32]] = []
    for prim in rig.primitives:
        if prim.morph is not None:
            weights = np.where(prim.target_channels >= 0, vals[prim.target_channels], 0.0).astype(np.float32)
            morphed, morphed_normals = prim.morph.apply(weights)
        else:
            morphed, morphed_normals = prim.data.positions, prim.base_normals
        joints, joint_weights, skin_index = prim.data.joints, prim.data.weights, rig.model.nodes[prim.node].skin
        if prim.skinned and joints is not None and joint_weights is not None and skin_index is not None:
            skin = rig.model.skins[skin_index]
            matrices = (world[skin.joints] @ skin.inverse_bind_matrices.astype(np.float64)).astype(np.float32)
            positions, normals = _rig.skin(
                morphed, morphed_normals, joints, joint_weights, np.ascontiguousarray(matrices.transpose(0, 2, 1))
            )
            out.append((positions, normals))
        else:
            out.append((morphed, morphed_normals))
    return world, out
