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

    def _in_joint_frame(self, node_index: int, rotation: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """A rotation in the avatar's frame, expressed in the joint's own frame."""
        q = self._rest_rotation[node_index]
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

    def _pose_nodes(self, values: F32) -> None:
        extra: dict[int, npt.NDArray[np.float64]] = {}
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

    def pose(self, values: F32) -> None:
        """Pose the avatar for one frame: ``values`` holds one value per channel (in ``channels`` order).

        Afterwards each :class:`RigPrimitive` holds its deformed ``positions`` and ``normals`` and
        :meth:`model_matrix` gives its transform.
        """
        values = np.asarray(values, np.float32)
        if self._unused.size:
            values = values.copy()
            values[self._unused] = 0.0  # the mouth set this avatar does not use (rig.mouth)
        self._pose_nodes(values)
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
