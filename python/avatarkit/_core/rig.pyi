"""
Mesh deformation: morph targets and linear blend skinning.
"""

from __future__ import annotations

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
