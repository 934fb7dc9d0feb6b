"""The rig: from stream channels to a posed mesh.

Channels (ARKit-52, visemes, head rotation) are mapped *by name* to the morph targets of every mesh
that carries them and to the joints that carry head rotation, jaw opening and gaze. ``AvatarRig``
then poses the avatar for one frame of channel values: morph targets are blended in C++
(:class:`avatarkit._core.rig.MorphMesh`), node transforms follow the joints, and skinned meshes are
skinned in C++ (linear blend skinning).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._core import rig as _rig
from .assets.gltf import GltfModel, Primitive
from .codec import CANONICAL_NAMES

F32 = npt.NDArray[np.float32]

#: Conventional joint names, tried in order (case-insensitive) when the manifest names none.
JOINT_NAMES: dict[str, tuple[str, ...]] = {
    "head": ("Head", "J_Bip_C_Head", "head"),
    "neck": ("Neck", "J_Bip_C_Neck", "neck"),
    "jaw": ("Jaw", "jaw", "J_Adj_C_Jaw"),
    "eye_left": ("EyeLeft", "LeftEye", "J_Adj_L_FaceEye", "eye_L"),
    "eye_right": ("EyeRight", "RightEye", "J_Adj_R_FaceEye", "eye_R"),
}

#: Share of the head rotation the neck takes when both joints exist.
NECK_SHARE = 0.35

#: Humanoid body bones by role: the VRM humanoid's name for the role, then conventional node names
#: tried in order (case-insensitive; a ``prefix:`` such as Mixamo's ``mixamorig:`` is ignored).
HUMANOID_BONES: dict[str, tuple[str, ...]] = {
    "hips": ("hips", "Hips", "J_Bip_C_Hips", "pelvis"),
    "spine": ("spine", "Spine", "J_Bip_C_Spine", "spine_01"),
    "chest": ("chest", "Spine1", "J_Bip_C_Chest", "Chest", "spine_02"),
    "upper_chest": ("upperChest", "Spine2", "J_Bip_C_UpperChest", "UpperChest", "spine_03"),
    "shoulder_left": ("leftShoulder", "LeftShoulder", "J_Bip_L_Shoulder", "clavicle_l"),
    "upper_arm_left": ("leftUpperArm", "LeftArm", "LeftUpperArm", "J_Bip_L_UpperArm", "upperarm_l"),
    "lower_arm_left": ("leftLowerArm", "LeftForeArm", "LeftLowerArm", "J_Bip_L_LowerArm", "lowerarm_l"),
    "shoulder_right": ("rightShoulder", "RightShoulder", "J_Bip_R_Shoulder", "clavicle_r"),
    "upper_arm_right": ("rightUpperArm", "RightArm", "RightUpperArm", "J_Bip_R_UpperArm", "upperarm_r"),
    "lower_arm_right": ("rightLowerArm", "RightForeArm", "RightLowerArm", "J_Bip_R_LowerArm", "lowerarm_r"),
}
#: An upper arm that points less than this far below the horizontal is in a T- or A-pose (degrees).
T_POSE_BELOW_DEG = 50.0
#: The relaxed rest pose: upper arms this far out from hanging straight down, and this far forward;
#: elbows bent forward by this much (degrees).
ARM_OUT_DEG = 9.0
ARM_FORWARD_DEG = 4.0
ELBOW_BEND_DEG = 14.0
#: Body life (degrees, seconds): breathing in the chest and shoulders, a slow shift of weight in the
#: hips and spine, and a little lift of the chest with the voice (``jawOpen``).
BREATH_PERIOD = 4.2
BREATH_CHEST_DEG = 0.9
BREATH_SHOULDER_DEG = 0.7
SHIFT_PERIOD = 9.0
SHIFT_HIPS_DEG = 0.8
VOICE_CHEST_DEG = 0.6

#: The ARKit mouth channels the engine drives from speech (a pose per viseme, and the jaw). With
#: ``rig.mouth = "visemes"`` they are not applied; the smile, frown and dimple channels are expressions
#: and stay.
ARKIT_SPEECH_MOUTH: tuple[str, ...] = (
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "tongueOut",
)
#: The values of the manifest's ``rig.mouth`` (see :class:`AvatarRig`).
MOUTH_MODES: tuple[str, ...] = ("auto", "both", "visemes", "arkit")
#: ``auto`` chooses ``visemes`` for a model whose own targets answer to at least this many of the
#: 14 spoken visemes and to ``jawOpen`` (both sets, as Ready Player Me exports them).
AUTO_VISEMES_MIN = 10
#: Jaw rotation (radians) at jawOpen = 1 for rigs whose jaw is a joint.
JAW_OPEN_ANGLE = math.radians(22.0)
#: Eye rotation (radians) at eyeLook* = 1.
EYE_YAW = math.radians(30.0)
EYE_PITCH = math.radians(22.0)


def rotation_between(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The shortest rotation (4x4) that turns direction ``a`` onto direction ``b``."""
    u = np.asarray(a, np.float64) / (np.linalg.norm(a) or 1.0)
    v = np.asarray(b, np.float64) / (np.linalg.norm(b) or 1.0)
    axis = np.cross(u, v)
    sine, cosine = float(np.linalg.norm(axis)), float(np.dot(u, v))
    if sine < 1e-9:
        if cosine > 0:
            return np.eye(4)
        # Opposite: half a turn about any axis perpendicular to u.
        other = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        return axis_angle_matrix(tuple(np.cross(u, other)), math.pi)
    return axis_angle_matrix(tuple(axis), math.atan2(sine, cosine))


def _quat_matrix(x: float, y: float, z: float, w: float) -> npt.NDArray[np.float64]:
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


def axis_angle_matrix(axis: Sequence[float], angle: float) -> npt.NDArray[np.float64]:
    """Rotation (4x4) by ``angle`` radians about ``axis`` (normalized here)."""
    x, y, z = axis
    n = math.sqrt(x * x + y * y + z * z) or 1.0
    s = math.sin(angle / 2) / n
    return _quat_matrix(x * s, y * s, z * s, math.cos(angle / 2))


def euler_matrix(pitch: float, yaw: float, roll: float) -> npt.NDArray[np.float64]:
    """Rotation (4x4) for head angles in radians: pitch about X (nod down > 0), yaw about Y, roll about Z."""
    cx, sx = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    cz, sz = math.cos(roll), math.sin(roll)
    rx = np.array([[1, 0, 0, 0], [0, cx, -sx, 0], [0, sx, cx, 0], [0, 0, 0, 1]])
    ry = np.array([[cy, 0, sy, 0], [0, 1, 0, 0], [-sy, 0, cy, 0], [0, 0, 0, 1]])
    rz = np.array([[cz, -sz, 0, 0], [sz, cz, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    rotation: npt.NDArray[np.float64] = ry @ rx @ rz
    return rotation


@dataclasses.dataclass
class RigPrimitive:
    """One primitive as the rig drives it."""

    mesh: int
    primitive: int
    node: int
    data: Primitive
    morph: Any  # avatarkit._core.rig.MorphMesh, or None without targets
    #: For each target of the primitive, the channel column that drives it (-1: none).
    target_channels: npt.NDArray[np.int64]
    skinned: bool
    #: The posed vertices of the last :meth:`AvatarRig.pose`.
    positions: F32
    normals: F32
    #: The rest normals (the file's, or computed when it has none).
    base_normals: F32


class AvatarRig:
    """Poses a glTF avatar from channel values.

    Channels drive the morph targets of their own name on every mesh, or those the manifest lists
    for them (``rig.morph_targets``: a listed channel drives exactly its list, an empty list
    nothing); vowel visemes also drive a VRoid/VRM model's own mouth shapes when it has no target of
    the viseme's name. Joints turn in the avatar's frame (+X its left, +Y up, +Z forward) about their
    own pivots, whatever the orientation of their bones; ``headX``, ``headY`` and ``headZ`` (metres,
    in that frame) move the neck (or the head) and everything it carries.

    ``rig.mouth`` says which set of mouth targets speech drives on a model that has both: ``both``
    (they add up: the sample avatars are made so), ``visemes`` (the ARKit speech mouth,
    :data:`ARKIT_SPEECH_MOUTH`, is not applied), ``arkit`` (the visemes are not applied), or
    ``auto``, the default: ``visemes`` when the model's own targets answer to at least
    :data:`AUTO_VISEMES_MIN` visemes and to ``jawOpen`` (Ready Player Me), else ``both``.

    Args:
        model: the loaded glTF model.
        rig: the manifest's ``rig`` object (optional ``morph_targets``, ``joints`` and ``mouth``).
        channels: the channel names of the frames :meth:`pose` will get (canonical by default).

    Raises:
        ValueError: ``rig.mouth`` is not one of :data:`MOUTH_MODES`.
    """

    def __init__(
        self,
        model: GltfModel,
        rig: Mapping[str, Any] | None = None,
        channels: Sequence[str] = CANONICAL_NAMES,
    ) -> None:
        self.model = model
        self.channels = list(channels)
        self._col = {name: i for i, name in enumerate(self.channels)}
        rig = dict(rig or {})
        overrides = rig.get("morph_targets") or {}
        targets_to_channel: dict[str, str] = {}
        for name in self.channels:
            for target in overrides.get(name, [name]):
                targets_to_channel.setdefault(str(target).lower(), name)
        # VRM/VRoid-style aliases: a viseme channel also drives the model's own mouth shapes, unless
        # the manifest lists what the channel drives.
        index = model.morph_target_index(aliases=True)
        alias_of: dict[tuple[int, int], str] = {}
        for name in self.channels:
            if name in overrides:
                continue
            for mesh_target in index.get(name.lower(), []):
                alias_of.setdefault(mesh_target, name)

        self.joints: dict[str, int] = {}
        names = rig.get("joints") or {}
        for role, conventional in JOINT_NAMES.items():
            if role in names:
                found = model.find_node(str(names[role]))
            else:
                # A skinned mesh's node is not a joint (turning it moves nothing): Ready Player Me
                # calls its eye meshes EyeLeft and EyeRight and its eye bones LeftEye and RightEye.
                found = next((i for c in conventional if (i := self._find_joint(str(c))) is not None), None)
            if found is not None:
                self.joints[role] = found

        # Data-driven joints: a node whose extras say {"avatarkit": {"drive": [{"channel", "axis",
        # "scale"}]}} turns by scale * value (radians) about axis for each channel, in order. Such
        # nodes replace the conventional joint rules above.
        self.drives: dict[int, list[tuple[int, tuple[float, float, float], float]]] = {}
        for node_index, node in enumerate(model.nodes):
            extras = getattr(node, "extras", None) or {}
            ours = extras.get("avatarkit") if isinstance(extras, dict) else None
            entries = ours.get("drive") if isinstance(ours, dict) else None
            for entry in entries if isinstance(entries, list) else []:
                try:
                    col = self._col[str(entry["channel"])]
                    axis = tuple(float(a) for a in entry["axis"])
                    scale = float(entry["scale"])
                except (KeyError, TypeError, ValueError):
                    continue  # a malformed or unknown entry drives nothing
                if len(axis) == 3 and math.isfinite(scale):
                    self.drives.setdefault(node_index, []).append((col, (axis[0], axis[1], axis[2]), scale))

        self.primitives: list[RigPrimitive] = []
        self.driven_channels: set[str] = set()
        for node_index, node in enumerate(model.nodes):
            if node.mesh is None:
                continue
            mesh = model.meshes[node.mesh]
            for p_index, prim in enumerate(mesh.primitives):
                normals = prim.normals if prim.normals is not None else np.zeros_like(prim.positions)
                chans = np.full(len(prim.targets), -1, np.int64)
                morph = None
                if prim.targets:
                    morph = _rig.MorphMesh(prim.positions, normals)
                    for t_index, target in enumerate(prim.targets):
                        morph.add_sparse_target(target.indices, target.positions, target.normals)
                        channel = targets_to_channel.get(mesh.target_names[t_index].lower()) or alias_of.get(
                            (node.mesh, t_index)
                        )
                        if channel is not None:
                            chans[t_index] = self._col[channel]
                            self.driven_channels.add(channel)
                skinned = node.skin is not None and prim.joints is not None and prim.weights is not None
                positions, base_normals = prim.positions.copy(), normals.copy()
                rig_prim = RigPrimitive(
                    node.mesh,
                    p_index,
                    node_index,
                    prim,
                    morph,
                    chans,
                    skinned,
                    positions,
                    base_normals,
                    normals,
                )
                self.primitives.append(rig_prim)
        # The whole model turns half a turn about +Y when it faces -Z (VRM 0.x), so that it faces +Z.
        self._turn = np.diag([-1.0, 1.0, -1.0, 1.0]) if model.faces_minus_z else np.eye(4)
        self._rest_world = self._turn @ model.node_world_matrices().astype(np.float64)
        self.node_world = self._rest_world.copy()
        # Each joint's rest orientation in the world (scale removed): a rotation R in the avatar's
        # frame is Q^T R Q in the joint's own frame.
        self._rest_rotation: dict[int, npt.NDArray[np.float64]] = {}
        for node_index in set(self.joints.values()):
            q = self._rest_world[node_index][:3, :3]
            norms = np.linalg.norm(q, axis=0)
            rotation = np.eye(4)
            rotation[:3, :3] = q / np.where(norms > 0, norms, 1.0)
            self._rest_rotation[node_index] = rotation
        self.bones = self._humanoid_bones()
        #: Extra rotations (in each joint's own frame) that bring a T- or A-posed humanoid's arms
        #: down to a relaxed rest pose, applied to every frame; empty when the arms already hang.
        self.rest_pose: dict[int, npt.NDArray[np.float64]] = self._relaxed_arms()
        # Eyes with eyeLook* targets of their own turn by those; their joints would turn them twice.
        self._eye_joint_sides = [
            (side, sign)
            for side, sign in (("Left", 1.0), ("Right", -1.0))
            if not any(f"eyeLook{d}{side}" in self.driven_channels for d in ("In", "Out", "Up", "Down"))
        ]

        mouth = str(rig.get("mouth", "auto"))
        if mouth not in MOUTH_MODES:
            raise ValueError(f"rig.mouth is {mouth!r}; it must be one of {', '.join(MOUTH_MODES)}")
        if mouth == "auto":
            own = {n.lower() for mesh in model.meshes for n in mesh.target_names}
            spoken = [v for v in self.channels if v.startswith("viseme_") and v != "viseme_sil"]
            has_visemes = sum(1 for v in spoken if v in self.driven_channels and v.lower() in own)
            mouth = "visemes" if has_visemes >= AUTO_VISEMES_MIN and "jawOpen" in self.driven_channels else "both"
        #: The mouth targets speech drives: ``both``, ``visemes`` or ``arkit`` (``auto`` resolved).
        self.mouth = mouth
        unused = (
            ARKIT_SPEECH_MOUTH
            if mouth == "visemes"
            else [v for v in self.channels if v.startswith("viseme_")]
            if mouth == "arkit"
            else ()
        )
        self._unused = np.array([self._col[n] for n in unused if n in self._col], np.int64)
        if self.rest_pose:
            self.pose(np.zeros(len(self.channels), np.float32))  # bounds and framing of the relaxed pose

    @property
    def missing_channels(self) -> list[str]:
        """Canonical blend-shape channels no morph target of this avatar answers to."""
        shapes = [n for n in self.channels if not n.startswith("head")]
        return [n for n in shapes if n not in self.driven_channels]

    def _find_joint(self, name: str) -> int | None:
        """The first node called ``name`` (case-insensitive) that is not a skinned mesh's node."""
        lowered = name.lower()
        return next(
            (
                i
                for i, n in enumerate(self.model.nodes)
                if n.name.lower() == lowered and not (n.mesh is not None and n.skin is not None)
            ),
            None,
        )

    def _humanoid_bones(self) -> dict[str, int]:
        """Body bones by role (:data:`HUMANOID_BONES`): the VRM humanoid's, else by node name."""
        by_name: dict[str, int] = {}
        for i, node in enumerate(self.model.nodes):
            if node.mesh is not None and node.skin is not None:
                continue
            key = node.name.rpartition(":")[2].lower()
            by_name.setdefault(key, i)
        bones: dict[str, int] = {}
        for role, (vrm_name, *names) in HUMANOID_BONES.items():
            found = self.model.humanoid_bones.get(vrm_name)
            if found is None:
                found = next((by_name[n.lower()] for n in names if n.lower() in by_name), None)
            if found is not None:
                bones[role] = found
        return bones

    def _world_rotation(self, node_index: int) -> npt.NDArray[np.float64]:
        q = self._rest_world[node_index][:3, :3]
        norms = np.linalg.norm(q, axis=0)
        rotation = np.eye(4)
        rotation[:3, :3] = q / np.where(norms > 0, norms, 1.0)
        return rotation

    def _relaxed_arms(self) -> dict[int, npt.NDArray[np.float64]]:
        """Rotations that bring arms held out sideways (T- or A-pose) down along the body.

        For each side with an upper and a lower arm bone: when the upper arm points less than
        :data:`T_POSE_BELOW_DEG` below the horizontal and away from the body, it turns to hang
        :data:`ARM_OUT_DEG` out and :data:`ARM_FORWARD_DEG` forward of straight down, and the
        elbow bends forward by :data:`ELBOW_BEND_DEG`; the hands follow.
        """
        extras: dict[int, npt.NDArray[np.float64]] = {}
        for side, sign in (("left", 1.0), ("right", -1.0)):
            upper, lower = self.bones.get(f"upper_arm_{side}"), self.bones.get(f"lower_arm_{side}")
            if upper is None or lower is None:
                continue
            direction = self._rest_world[lower][:3, 3] - self._rest_world[upper][:3, 3]
            length = float(np.linalg.norm(direction))
            if length < 1e-6:
                continue
            direction = direction / length
            below = math.degrees(math.asin(max(-1.0, min(1.0, -direction[1]))))
            if below >= T_POSE_BELOW_DEG or sign * direction[0] < 0.3:
                continue  # already hanging, or not an arm held out to its own side
            out, forward = math.radians(ARM_OUT_DEG), math.radians(ARM_FORWARD_DEG)
            target = np.array([sign * math.sin(out), -math.cos(out) * math.cos(forward), math.sin(forward)])
            turn = rotation_between(direction, target)
            q_upper = self._world_rotation(upper)
            extras[upper] = q_upper.T @ turn @ q_upper
            # The elbow bends forward: about the axis across the arm, in the forearm's turned frame.
            across = np.cross(target, np.array([0.0, 0.0, 1.0]))
            bend = axis_angle_matrix(tuple(across), -math.radians(ELBOW_BEND_DEG))
            if (bend[:3, :3] @ target)[2] < target[2]:
                bend = axis_angle_matrix(tuple(across), math.radians(ELBOW_BEND_DEG))
            q_lower = turn @ self._world_rotation(lower)
            extras[lower] = q_lower.T @ bend @ q_lower
        return extras

    def _in_joint_frame(self, node_index: int, rotation: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """A rotation in the avatar's frame, expressed in the joint's own frame."""
        q = self._rest_rotation.get(node_index)
        if q is None:
            q = self._rest_rotation[node_index] = self._world_rotation(node_index)
        turned: npt.NDArray[np.float64] = q.T @ rotation @ q
        return turned

    def _channel(self, values: F32, name: str) -> float:
        col = self._col.get(name)
        return float(values[col]) if col is not None else 0.0

    def _local(self, node_index: int, extra: npt.NDArray[np.float64] | None) -> npt.NDArray[np.float64]:
        node = self.model.nodes[node_index]
        if extra is None:
            return node.matrix.astype(np.float64)
        if node.translation is not None or node.rotation is not None or node.scale is not None:
            t = np.eye(4)
            t[:3, 3] = node.translation or (0.0, 0.0, 0.0)
            r = _quat_matrix(*(node.rotation or (0.0, 0.0, 0.0, 1.0)))
            s = np.diag([*(node.scale or (1.0, 1.0, 1.0)), 1.0])
            return t @ r @ extra @ s
        return node.matrix.astype(np.float64) @ extra

    def _body_life(self, values: F32, t: float, extra: dict[int, npt.NDArray[np.float64]]) -> None:
        """Breathing, a slow shift of weight, and the chest lifting a little with the voice."""
        breath = math.sin(2 * math.pi * t / BREATH_PERIOD)
        shift = math.sin(2 * math.pi * t / SHIFT_PERIOD)
        voice = min(1.0, max(0.0, self._channel(values, "jawOpen")))
        chest = self.bones.get("upper_chest", self.bones.get("chest"))
        if chest is not None:
            # Chest up and back as it breathes in (negative pitch), and with the voice.
            pitch = -math.radians(BREATH_CHEST_DEG * 0.5 * (1 + breath) + VOICE_CHEST_DEG * voice)
            extra[chest] = self._in_joint_frame(chest, euler_matrix(pitch, 0.0, 0.0))
        for side, sign in (("left", 1.0), ("right", -1.0)):
            shoulder = self.bones.get(f"shoulder_{side}")
            if shoulder is not None:
                # Shoulders rise with the breath: a roll that lifts the outer end.
                lift = math.radians(BREATH_SHOULDER_DEG * 0.5 * (1 + breath))
                extra[shoulder] = self._in_joint_frame(shoulder, euler_matrix(0.0, 0.0, sign * lift))
        hips, spine = self.bones.get("hips"), self.bones.get("spine")
        if hips is not None and spine is not None:
            # Weight from one leg to the other: the hips roll one way, the spine back the other.
            roll = math.radians(SHIFT_HIPS_DEG * shift)
            extra[hips] = self._in_joint_frame(hips, euler_matrix(0.0, 0.0, roll))
            extra[spine] = self._in_joint_frame(spine, euler_matrix(0.0, 0.0, -roll))

    def _pose_nodes(self, values: F32, t: float | None = None) -> None:
        extra: dict[int, npt.NDArray[np.float64]] = dict(self.rest_pose)
        if t is not None:
            self._body_life(values, t, extra)
        pitch, yaw, roll = (self._channel(values, n) for n in ("headPitch", "headYaw", "headRoll"))
        head, neck = self.joints.get("head"), self.joints.get("neck")
        if head is not None:
            share = NECK_SHARE if neck is not None else 0.0
            extra[head] = self._in_joint_frame(
                head, euler_matrix(pitch * (1 - share), yaw * (1 - share), roll * (1 - share))
            )
            if neck is not None:
                extra[neck] = self._in_joint_frame(neck, euler_matrix(pitch * share, yaw * share, roll * share))
        jaw = self.joints.get("jaw")
        if jaw is not None:
            extra[jaw] = self._in_joint_frame(
                jaw, euler_matrix(self._channel(values, "jawOpen") * JAW_OPEN_ANGLE, 0.0, 0.0)
            )
        for side, sign in self._eye_joint_sides:
            eye = self.joints.get(f"eye_{side.lower()}")
            if eye is None:
                continue
            # Left eye looking "out" turns to the avatar's left (+yaw); "in" towards the nose.
            look_out = self._channel(values, f"eyeLookOut{side}") - self._channel(values, f"eyeLookIn{side}")
            look_up = self._channel(values, f"eyeLookUp{side}") - self._channel(values, f"eyeLookDown{side}")
            extra[eye] = self._in_joint_frame(eye, euler_matrix(-look_up * EYE_PITCH, sign * look_out * EYE_YAW, 0.0))
        for node_index, entries in self.drives.items():
            rotation = np.eye(4)
            for col, axis, scale in entries:
                value = float(values[col])
                if value != 0.0:
                    rotation = rotation @ axis_angle_matrix(axis, scale * value)
            extra[node_index] = rotation
        # Head translation (metres, avatar frame) moves the neck, or the head without one.
        shift = np.array([self._channel(values, n) for n in ("headX", "headY", "headZ")])
        carrier = neck if neck is not None else head
        world = np.empty_like(self._rest_world)
        stack = [i for i, n in enumerate(self.model.nodes) if n.parent is None]
        for i in stack:
            world[i] = self._turn @ self._local(i, extra.get(i))
            if i == carrier:
                world[i][:3, 3] += shift
        while stack:
            i = stack.pop()
            for c in self.model.nodes[i].children:
                world[c] = world[i] @ self._local(c, extra.get(c))
                if c == carrier:
                    world[c][:3, 3] += shift
                stack.append(c)
        self.node_world = world

    def pose(self, values: F32, t: float | None = None) -> None:
        """Pose the avatar for one frame: ``values`` holds one value per channel (in ``channels`` order).

        ``t`` (the clock time, seconds) adds body life to humanoid rigs: breathing in the chest and
        shoulders, a slow shift of weight, the chest lifting a little with the voice. Afterwards
        each :class:`RigPrimitive` holds its deformed ``positions`` and ``normals`` and
        :meth:`model_matrix` gives its transform.
        """
        values = np.asarray(values, np.float32)
        if self._unused.size:
            values = values.copy()
            values[self._unused] = 0.0  # the mouth set this avatar does not use (rig.mouth)
        self._pose_nodes(values, t)
        for prim in self.primitives:
            if prim.morph is not None:
                weights = np.where(prim.target_channels >= 0, values[prim.target_channels], 0.0).astype(np.float32)
                morphed, morphed_normals = prim.morph.apply(weights)
            else:
                # From the rest pose every frame: never from the last frame's result.
                morphed, morphed_normals = prim.data.positions, prim.base_normals
            joints, joint_weights, skin_index = (
                prim.data.joints,
                prim.data.weights,
                self.model.nodes[prim.node].skin,
            )
            if prim.skinned and joints is not None and joint_weights is not None and skin_index is not None:
                skin = self.model.skins[skin_index]
                joint_world = self.node_world[skin.joints]
                matrices = (joint_world @ skin.inverse_bind_matrices.astype(np.float64)).astype(np.float32)
                # The skin works in column-major GL order: pass the transposes.
                prim.positions, prim.normals = _rig.skin(
                    morphed, morphed_normals, joints, joint_weights,
                    np.ascontiguousarray(matrices.transpose(0, 2, 1)),
                )  # fmt: skip
            else:
                prim.positions, prim.normals = morphed, morphed_normals

    def model_matrix(self, prim: RigPrimitive) -> F32:
        """The primitive's model-to-world matrix (identity for skinned ones: skinning placed them)."""
        matrix: F32 = np.eye(4, dtype=np.float32) if prim.skinned else self.node_world[prim.node].astype(np.float32)
        return matrix

    def bounds(self) -> tuple[F32, F32]:
        """World-space bounding box of the rest pose, ``(lo, hi)``."""
        los, his = [], []
        for prim in self.primitives:
            m = self.model_matrix(prim).astype(np.float64)
            p = prim.positions.astype(np.float64) @ m[:3, :3].T + m[:3, 3]
            los.append(p.min(axis=0))
            his.append(p.max(axis=0))
        return np.min(los, axis=0).astype(np.float32), np.max(his, axis=0).astype(np.float32)

    def head_position(self) -> F32 | None:
        """World position of the head joint, if the rig has one."""
        head = self.joints.get("head")
        if head is None:
            return None
        position: F32 = self.node_world[head][:3, 3].astype(np.float32)
        return position
