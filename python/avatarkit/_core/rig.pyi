"""
Mesh deformation: morph targets and linear blend skinning.
"""

from __future__ import annotations

import collections.abc
import typing

import numpy
import numpy.typing

class DeformError(ValueError):
    """
    Arrays of the wrong shape, type or size for a mesh, or indices out of range.
    """

class MorphMesh:
    """
    A mesh's base vertices and its morph targets; apply() blends them on the CPU.
    """
    def __init__(
        self,
        positions: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        normals: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None = None,
    ) -> None: ...
    def add_dense_target(
        self,
        position_deltas: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        normal_deltas: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None = None,
        epsilon: typing.SupportsFloat | typing.SupportsIndex = 0.0,
    ) -> int:
        """
        Add a target given for every vertex; kept sparse when at most half the vertices move more than `epsilon`. Returns its index.
        """
    def add_sparse_target(
        self,
        indices: typing.Annotated[numpy.typing.ArrayLike, numpy.uint32],
        position_deltas: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        normal_deltas: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None = None,
    ) -> int:
        """
        Add a target that moves the vertices `indices` (strictly increasing); returns its index.
        """
    def apply(
        self,
        weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        out_positions: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None = None,
        out_normals: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None = None,
    ) -> tuple[numpy.typing.NDArray[numpy.float32], typing.Any]:
        """
        Blend the targets with `weights` (one per target). Returns (positions, normals or None); pass out arrays to reuse them. Runs without the GIL.
        """
    def bytes_touched(self, weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> int:
        """
        Bytes apply() reads and writes for these weights.
        """
    def target_is_dense(self, target: typing.SupportsInt | typing.SupportsIndex) -> bool: ...
    def target_size(self, target: typing.SupportsInt | typing.SupportsIndex) -> int:
        """
        Vertices the target moves.
        """
    @property
    def frozen(self) -> bool:
        """
        Whether the mesh belongs to a Poser (no targets can be added any more).
        """
    @property
    def has_normals(self) -> bool:
        """
        Whether normals are blended too.
        """
    @property
    def target_count(self) -> int:
        """
        Morph targets added so far.
        """
    @property
    def vertex_count(self) -> int:
        """
        Vertices of the base mesh.
        """

class Term:
    """
    One rotation of a Poser rule: about `axis` by constant + sum(coefficient * value[column] for channels) + sum(coefficient * clip(value[column], 0, 1) for clamped) + amplitude * sin(2 pi t / period), the last only when the frame has a time.
    """
    def __init__(
        self,
        axis: typing.Annotated[collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], "FixedSize(3)"],
        *,
        constant: typing.SupportsFloat | typing.SupportsIndex = 0.0,
        channels: collections.abc.Sequence[
            tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex]
        ] = [],
        clamped: collections.abc.Sequence[
            tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex]
        ] = [],
        amplitude: typing.SupportsFloat | typing.SupportsIndex = 0.0,
        period: typing.SupportsFloat | typing.SupportsIndex = 0.0,
    ) -> None: ...
    @property
    def amplitude(self) -> float: ...
    @property
    def axis(self) -> typing.Annotated[list[float], "FixedSize(3)"]: ...
    @property
    def channels(self) -> list[tuple[int, float]]: ...
    @property
    def clamped(self) -> list[tuple[int, float]]: ...
    @property
    def constant(self) -> float: ...
    @property
    def period(self) -> float: ...

class Poser:
    """
    A rigged avatar posed a whole frame per call: channel values to node world matrices, skinning matrices, and the morphed and skinned vertices of every primitive added. The setup (rules, skins, primitives) is checked as it is added; pose() runs without the GIL and writes into the arrays that world, positions() and normals() return (read-only views, overwritten by each pose).
    """
    def __init__(
        self,
        channel_count: typing.SupportsInt | typing.SupportsIndex,
        parents: typing.Annotated[numpy.typing.ArrayLike, numpy.int64],
        local_matrices: typing.Annotated[numpy.typing.ArrayLike, numpy.float64],
        has_trs: typing.Annotated[numpy.typing.ArrayLike, numpy.bool],
        translations: typing.Annotated[numpy.typing.ArrayLike, numpy.float64],
        rotations: typing.Annotated[numpy.typing.ArrayLike, numpy.float64],
        scales: typing.Annotated[numpy.typing.ArrayLike, numpy.float64],
        turn: typing.Annotated[numpy.typing.ArrayLike, numpy.float64],
        rest_world: typing.Annotated[numpy.typing.ArrayLike, numpy.float64],
    ) -> None:
        """
        The node forest: parents (-1 for a root), local matrices (n, 4, 4) and, where has_trs, translation, rotation (x, y, z, w) and scale; turn multiplies the roots; rest_world is what world holds until the first pose. Raises DeformError on wrong shapes, parents out of range or a cycle.
        """
    def add_primitive(
        self,
        morph: MorphMesh | None,
        target_channels: typing.Annotated[numpy.typing.ArrayLike, numpy.int64],
        positions: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        normals: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        *,
        skin: typing.SupportsInt | typing.SupportsIndex = -1,
        joints: typing.Annotated[numpy.typing.ArrayLike, numpy.uint16] | None = None,
        weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None = None,
    ) -> int:
        """
        A primitive: its MorphMesh (or None) with the channel column of each target (-1: none), its rest positions and normals, and skin (an add_skin index, -1 for none) with JOINTS_0 and WEIGHTS_0. The morph mesh is frozen. Returns its index.
        """
    def add_rule(
        self,
        node: typing.SupportsInt | typing.SupportsIndex,
        pre: typing.Annotated[numpy.typing.ArrayLike, numpy.float64],
        post: typing.Annotated[numpy.typing.ArrayLike, numpy.float64],
        terms: collections.abc.Sequence[Term],
        *,
        timed: bool = False,
    ) -> int:
        """
        Turn `node` by pre @ R(terms[0]) @ ... @ post between its rotation and scale (after its matrix). For each node the last rule added wins; a timed rule applies only to frames with a time. Returns its index.
        """
    def add_skin(
        self,
        joints: typing.Annotated[numpy.typing.ArrayLike, numpy.int64],
        inverse_bind_matrices: typing.Annotated[numpy.typing.ArrayLike, numpy.float64],
    ) -> int:
        """
        A skin: joint node indices and their inverse bind matrices (J, 4, 4), row-major. Returns its index.
        """
    def normals(self, prim: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
        """
        A primitive's posed normals (N, 3) float32, not renormalized (a read-only view).
        """
    def pose(
        self,
        values: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        t: typing.SupportsFloat | typing.SupportsIndex | None = None,
    ) -> None:
        """
        Pose one frame: one value per channel, and the clock time (seconds) or None. Runs without the GIL.
        """
    def positions(self, prim: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
        """
        A primitive's posed positions (N, 3) float32 (a read-only view).
        """
    def set_translation(
        self,
        carrier: typing.SupportsInt | typing.SupportsIndex,
        columns: typing.Annotated[collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], "FixedSize(3)"],
    ) -> None:
        """
        The node (-1: none) whose world position moves by the values of three channel columns (-1: none).
        """
    def set_zeroed(self, columns: typing.Annotated[numpy.typing.ArrayLike, numpy.int64]) -> None:
        """
        Channel columns read as zero whatever the frame says.
        """
    @property
    def channel_count(self) -> int: ...
    @property
    def node_count(self) -> int: ...
    @property
    def primitive_count(self) -> int: ...
    @property
    def rule_count(self) -> int: ...
    @property
    def world(self) -> numpy.typing.NDArray[numpy.float64]:
        """
        The node world matrices (n, 4, 4) float64 of the last pose (a read-only view).
        """

def skin(
    positions: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
    normals: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None,
    joints: typing.Annotated[numpy.typing.ArrayLike, numpy.uint16],
    weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
    joint_matrices: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
) -> tuple[numpy.typing.NDArray[numpy.float32], typing.Any]:
    """
    Linear blend skinning. joint_matrices[j] is joint j's world matrix times its inverse bind matrix, stored column-major (as glTF and GL do: joint_matrices[j][3][:3] is the translation).
    """
