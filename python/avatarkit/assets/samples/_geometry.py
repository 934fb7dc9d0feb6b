"""Small numpy helpers for procedural meshes: masks, rotations, grids, normals, implicit shapes."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


def smoothstep(edge0: F64 | float, edge1: F64 | float, x: F64 | float) -> F64:
    """Hermite step from 0 at ``edge0`` to 1 at ``edge1`` (either order); the masks' soft edges."""
    t = np.clip((np.asarray(x, np.float64) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t), np.float64)


def bump(x: F64, centre: float, half_width: float) -> F64:
    """Smooth bump: 1 at ``centre``, falling to 0 at ``centre +- half_width`` with zero slope."""
    t = np.clip(1.0 - ((x - centre) / half_width) ** 2, 0.0, 1.0)
    return np.asarray(t * t, np.float64)


def gauss(d2: F64) -> F64:
    """exp(-d2): the Gaussian of a squared normalised distance."""
    return np.asarray(np.exp(-d2), np.float64)


def normalize(v: F64) -> F64:
    """Rows of ``v`` scaled to unit length (zero rows stay zero)."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.asarray(v / np.maximum(n, 1e-12), np.float64)


def rot_x(angle: F64 | float) -> F64:
    """Rotation matrices about +X (broadcast over ``angle``): shape (..., 3, 3)."""
    a = np.asarray(angle, np.float64)
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(angle: F64 | float) -> F64:
    """Rotation matrices about +Y (broadcast over ``angle``): shape (..., 3, 3)."""
    a = np.asarray(angle, np.float64)
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(angle: F64 | float) -> F64:
    """Rotation matrices about +Z (broadcast over ``angle``): shape (..., 3, 3)."""
    a = np.asarray(angle, np.float64)
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def rotate_about(points: F64, pivot: F64, matrices: F64) -> F64:
    """Rotate each point about ``pivot`` by its own matrix (``matrices`` is (N, 3, 3) or (3, 3))."""
    rel = points - pivot
    if matrices.ndim == 2:
        return np.asarray(rel @ matrices.T + pivot, np.float64)
    return np.asarray(np.einsum("nij,nj->ni", matrices, rel) + pivot, np.float64)


def vertex_normals(positions: F64, triangles: I32) -> F64:
    """Area-weighted vertex normals of a triangle mesh."""
    p0, p1, p2 = (positions[triangles[:, k]] for k in range(3))
    face = np.cross(p1 - p0, p2 - p0)
    normals = np.zeros_like(positions)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face)
    return normalize(normals)


def density_spacing(lo: float, hi: float, count: int, peaks: list[tuple[float, float, float]]) -> F64:
    """``count`` increasing samples from ``lo`` to ``hi``, denser around each (centre, width, gain) peak.

    Detail goes where the face needs it (eyes, mouth) without spending vertices on the back of the head.
    """
    x = np.linspace(lo, hi, 4096)
    density = np.ones_like(x)
    for centre, width, gain in peaks:
        density += gain * np.exp(-(((x - centre) / width) ** 2))
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) * 0.5 * np.diff(x))])
    cdf /= cdf[-1]
    return np.asarray(np.interp(np.linspace(0.0, 1.0, count), cdf, x), np.float64)


def snap(samples: F64, value: float) -> int:
    """Move the sample nearest ``value`` onto it (so a slit or seam lies exactly on a grid line)."""
    k = int(np.argmin(np.abs(samples - value)))
    samples[k] = value
    return k


def grid_triangles(index: I32, wrap: bool = False) -> I32:
    """Two triangles per quad of a (rows, cols) index grid, counter-clockwise seen from outside.

    Rows run top to bottom and columns run in the +azimuth direction, so (r, c) -> (r + 1, c) ->
    (r, c + 1) faces outward for a surface whose azimuth grows toward +X from the front.
    """
    a = index[:-1, :-1]
    b = index[1:, :-1]
    c = index[:-1, 1:]
    d = index[1:, 1:]
    if wrap:
        a = np.concatenate([a, index[:-1, -1:]], 1)
        b = np.concatenate([b, index[1:, -1:]], 1)
        c = np.concatenate([c, index[:-1, :1]], 1)
        d = np.concatenate([d, index[1:, :1]], 1)
    tri1 = np.stack([a, b, c], -1).reshape(-1, 3)
    tri2 = np.stack([c, b, d], -1).reshape(-1, 3)
    return np.asarray(np.concatenate([tri1, tri2]), np.int32)


# --- Implicit shapes (approximate signed distances) used to sculpt smooth organic forms -------------


def sd_ellipsoid(p: F64, centre: tuple[float, float, float], radii: tuple[float, float, float]) -> F64:
    """Approximate signed distance to an ellipsoid (exact on the axes, good enough to blend)."""
    qx = (p[..., 0] - centre[0]) / radii[0]
    qy = (p[..., 1] - centre[1]) / radii[1]
    qz = (p[..., 2] - centre[2]) / radii[2]
    k0 = np.sqrt(qx * qx + qy * qy + qz * qz)
    k1 = np.sqrt((qx / radii[0]) ** 2 + (qy / radii[1]) ** 2 + (qz / radii[2]) ** 2)
    return np.asarray(k0 * (k0 - 1.0) / np.maximum(k1, 1e-9), np.float64)


def sd_capsule_y(p: F64, x: float, z: float, y0: float, y1: float, radius: float) -> F64:
    """Signed distance to a vertical capsule from ``y0`` to ``y1``."""
    y = np.clip(p[..., 1], y0, y1)
    d = np.sqrt((p[..., 0] - x) ** 2 + (p[..., 1] - y) ** 2 + (p[..., 2] - z) ** 2)
    return np.asarray(d - radius, np.float64)


def smin(a: F64, b: F64, k: float) -> F64:
    """Polynomial smooth minimum: the union of two shapes with a fillet of size ``k``."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return np.asarray(b * (1.0 - h) + a * h - k * h * (1.0 - h), np.float64)


def smax(a: F64, b: F64, k: float) -> F64:
    """Polynomial smooth maximum (smooth intersection or subtraction)."""
    return np.asarray(-smin(-a, -b, k), np.float64)


@dataclasses.dataclass
class MeshData:
    """One primitive's geometry plus its morph-target deltas (by target name)."""

    positions: F64
    triangles: I32
    normals: F64 | None = None
    uvs: F64 | None = None
    targets: dict[str, F64] = dataclasses.field(default_factory=dict)

    def finish_normals(self) -> None:
        """Compute the normals if the builder did not set them."""
        if self.normals is None:
            self.normals = vertex_normals(self.positions, self.triangles)


def merge(parts: list[MeshData]) -> MeshData:
    """Concatenate meshes that share a material into one primitive (targets are merged by name)."""
    positions, triangles, normals, uvs = [], [], [], []
    names: list[str] = []
    for part in parts:
        part.finish_normals()
        for name in part.targets:
            if name not in names:
                names.append(name)
    offset = 0
    for part in parts:
        positions.append(part.positions)
        triangles.append(part.triangles + offset)
        assert part.normals is not None
        normals.append(part.normals)
        uvs.append(part.uvs if part.uvs is not None else np.zeros((len(part.positions), 2)))
        offset += len(part.positions)
    targets = {name: np.concatenate([p.targets.get(name, np.zeros_like(p.positions)) for p in parts]) for name in names}
    return MeshData(
        np.concatenate(positions),
        np.asarray(np.concatenate(triangles), np.int32),
        np.concatenate(normals),
        np.concatenate(uvs),
        targets,
    )


def uv_sphere(
    centre: F64, radii: F64, rows: int, cols: int, theta_range: tuple[float, float] = (0.0, np.pi)
) -> MeshData:
    """A lat-long ellipsoid with its poles on the Y axis (rows from the top), degenerate fans removed."""
    theta = np.linspace(theta_range[0], theta_range[1], rows)  # polar angle from +Y
    phi = np.linspace(-np.pi, np.pi, cols + 1)
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    dirs = np.stack([np.sin(th) * np.sin(ph), np.cos(th), np.sin(th) * np.cos(ph)], -1).reshape(-1, 3)
    positions = centre + dirs * radii
    index = np.arange(rows * (cols + 1), dtype=np.int32).reshape(rows, cols + 1)
    tris = grid_triangles(index)
    uvs = np.stack([(ph / (2 * np.pi) + 0.5).ravel(), (th / np.pi).ravel()], -1)
    normals = normalize(dirs / radii)
    mesh = MeshData(positions, tris, normals, uvs)
    return drop_degenerate(mesh)


def drop_degenerate(mesh: MeshData) -> MeshData:
    """Remove zero-area triangles (pole fans of lat-long grids) and the vertices left unused.

    Call before targets are attached (they are not remapped).
    """
    p = mesh.positions
    t = mesh.triangles
    area = np.linalg.norm(np.cross(p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]]), axis=1)
    t = t[area > 1e-14]
    used = np.unique(t)
    remap = np.full(len(p), -1, np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    mesh.positions = p[used]
    mesh.triangles = np.asarray(remap[t], np.int32)
    if mesh.normals is not None:
        mesh.normals = mesh.normals[used]
    if mesh.uvs is not None:
        mesh.uvs = mesh.uvs[used]
    return mesh
