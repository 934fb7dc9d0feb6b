"""The head: an implicit sculpt sampled on a lat-long grid with slits for the eyes and the mouth.

The surface is found by casting rays from the head centre into a smooth union of ellipsoids (skull,
face, jaw, chin, cheeks, nose, neck). The grid is parametrised by azimuth ``phi`` (0 at the front,
growing toward the character's left, +X) and elevation ``theta``, denser around the eyes and the
mouth. Each eye opening and the mouth are *slits*: a run of grid nodes on one row is duplicated, the
upper copies feeding the quads above and the lower copies the quads below, so lips can part and
eyelids can open. The mouth slit continues inward into a mouth bag (part of the same mesh) so an
open mouth is sealed and dark inside. Eyelid vertices are projected onto a sphere just outside the
eyeball, so rotating them about the eye centre slides them over the eye when blinking.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._characters import Character
from ._geometry import (
    F64,
    I32,
    MeshData,
    density_spacing,
    grid_triangles,
    normalize,
    sd_capsule_y,
    sd_ellipsoid,
    smin,
    smoothstep,
    snap,
    vertex_normals,
)

# Grid resolution: columns over half the azimuth range (mirrored) and rows from crown to neck. Sized
# for software GL (llvmpipe bins every triangle on one thread): 10.5k triangles; 18.5k looked the
# same at 512x512 and cost a fifth more per frame.
HALF_COLUMNS = 40
ROWS = 64
THETA_BOTTOM = -1.25
# The mouth bag: rings from the lip edge to the throat.
BAG_RINGS = 6
#: Texture rows (v) reserved for the mouth interior.
BAG_V0 = 0.955


def head_sdf(p: F64, ch: Character) -> F64:
    """Signed distance (approximate) to the head sculpt; ``p`` relative to the head centre."""
    cx, cy, cz = ch.cranium
    jd = ch.jaw_drop
    d = sd_ellipsoid(p, (0.0, 0.026, -0.016), (cx, cy, cz))
    face = sd_ellipsoid(p, (0.0, -0.024, 0.014), (ch.face_width, 0.068, 0.078))
    d = smin(d, face, 0.03)
    jaw = sd_ellipsoid(p, (0.0, -0.058 - jd, 0.022), (ch.jaw_width, 0.038 + jd * 0.5, 0.064))
    d = smin(d, jaw, 0.025)
    chin = sd_ellipsoid(p, (0.0, -0.081 - jd * 1.4, 0.052), (ch.chin_size, 0.020, 0.024))
    d = smin(d, chin, 0.02)
    cs = ch.cheek_size
    for sx in (-1.0, 1.0):
        cheek = sd_ellipsoid(p, (sx * 0.040, -0.032 + ch.cheek_height, 0.046), (cs, cs * 0.85, cs))
        d = smin(d, cheek, 0.02)
    # The muzzle: the mouth sits on a gentle forward mound, which keeps the lips from looking pasted on.
    muzzle = sd_ellipsoid(p, (0.0, -0.060 - jd * 0.6, 0.064), (0.030, 0.024, 0.022))
    d = smin(d, muzzle, 0.018)
    brow = sd_ellipsoid(p, (0.0, 0.026, 0.060), (0.062, 0.016, 0.026))
    d = smin(d, brow, 0.02)
    # The neck tapers at the bottom so it slides inside the separate neck mesh without a step.
    y = p[..., 1]
    taper = 0.006 * smoothstep(-0.09, -0.13, y)
    neck = sd_capsule_y(p, 0.0, -0.012, -0.40, -0.05, ch.neck_radius) + taper
    d = smin(d, neck, 0.035)
    nl, nw = ch.nose_length, ch.nose_width
    bridge = sd_ellipsoid(p, (0.0, -0.004 - 0.004 * nl, 0.074), (0.0085 * nw, 0.024 * nl, 0.013))
    tip = sd_ellipsoid(p, (0.0, -0.026 * nl + 0.002, 0.087), (0.0115 * nw, 0.0105, 0.0115))
    nose = smin(bridge, tip, 0.008)
    for sx in (-1.0, 1.0):
        wing = sd_ellipsoid(p, (sx * 0.0115 * nw, -0.028 * nl + 0.003, 0.079), (0.0078, 0.0068, 0.0078))
        nose = smin(nose, wing, 0.005)
    return smin(d, nose, 0.009)


def directions(phi: F64, theta: F64) -> F64:
    """Unit vectors for azimuth ``phi`` (0 = +Z, growing toward +X) and elevation ``theta``."""
    ct = np.cos(theta)
    return np.stack([ct * np.sin(phi), np.sin(theta), ct * np.cos(phi)], -1)


def cast(ch: Character, dirs: F64) -> F64:
    """Distance from the head centre to the outermost surface crossing along each direction."""
    flat = dirs.reshape(-1, 3)
    # 4 mm steps find the outermost crossing (no feature is thinner), bisection refines it.
    steps = np.linspace(0.02, 0.42, 101)
    inside = np.empty((len(flat), len(steps)), bool)
    for k, s in enumerate(steps):
        inside[:, k] = head_sdf(flat * s, ch) < 0.0
    # The last inside sample: the crossing is between it and the next one.
    last = len(steps) - 1 - np.argmax(inside[:, ::-1], axis=1)
    lo = steps[last].copy()
    hi = steps[np.minimum(last + 1, len(steps) - 1)].copy()
    for _ in range(16):
        mid = 0.5 * (lo + hi)
        m_in = head_sdf(flat * mid[:, None], ch) < 0.0
        lo = np.where(m_in, mid, lo)
        hi = np.where(m_in, hi, mid)
    return np.asarray(0.5 * (lo + hi), np.float64).reshape(dirs.shape[:-1])


@dataclasses.dataclass
class Landmarks:
    """Where the features are, shared by every part of one character (head-centre relative)."""

    centre: F64  # world position of the head centre (the ray origin)
    eye: F64  # (2, 3): left (+X) then right eye centre, head-relative
    eye_radius: float
    lid_radius: float
    eye_phi: float  # azimuth of the left eye opening (the right one is mirrored)
    eye_theta: float
    eye_half_width: float
    mouth_theta: float
    mouth_half_width: float
    mouth_centre: F64  # head-relative point on the closed lip line
    jaw_pivot: F64  # head-relative
    ear: F64  # head-relative position of the left ear root


def landmarks(ch: Character) -> Landmarks:
    """Place the eyes, the mouth line and the jaw pivot on this character's sculpt."""
    # Mouth row: the elevation at which the front profile is at the mouth height.
    th = np.linspace(-1.0, -0.2, 400)
    front = directions(np.zeros_like(th), th)
    r = cast(ch, front)
    y = r * front[:, 1]
    y_mouth = -0.058 - ch.jaw_drop * 0.5 + ch.mouth_height
    mouth_theta = float(np.interp(y_mouth, y, th))
    mouth_r = float(np.interp(y_mouth, y, r))
    mouth_centre = directions(np.array(0.0), np.array(mouth_theta)) * mouth_r
    # Eyes: sunk into the surface so about a third of the eyeball stands proud of it (big, round eyes).
    target = np.array([ch.eye_spacing, ch.eye_height, 0.08])
    s = cast(ch, normalize(target[None])[0:1])[0] * normalize(target[None])[0]
    eye_l = np.array([ch.eye_spacing, ch.eye_height, s[2] - 0.68 * ch.eye_radius])
    lid_radius = ch.eye_radius + 0.0012
    front_pt = eye_l + np.array([0.0, 0.0, lid_radius])
    eye_phi = float(np.arctan2(front_pt[0], front_pt[2]))
    eye_theta = float(np.arcsin(front_pt[1] / np.linalg.norm(front_pt)))
    eye = np.stack([eye_l, eye_l * np.array([-1.0, 1.0, 1.0])])
    return Landmarks(
        centre=np.array([0.0, ch.head_centre_y, 0.0]),
        eye=eye,
        eye_radius=ch.eye_radius,
        lid_radius=lid_radius,
        eye_phi=eye_phi,
        eye_theta=eye_theta,
        eye_half_width=ch.eye_half_width,
        mouth_theta=mouth_theta,
        mouth_half_width=ch.mouth_half_width,
        mouth_centre=mouth_centre,
        jaw_pivot=np.array([0.0, -0.022 - ch.jaw_drop * 0.3, -0.008]),
        ear=np.array([0.080, -0.012, -0.012]),
    )


@dataclasses.dataclass
class FaceVerts:
    """Per-vertex inputs of the face rig's deformation fields.

    ``phi``/``theta`` are the undeformed grid coordinates (the slit openings are not applied), so
    masks are defined relative to the closed slits. ``lip``/``lid`` are +1 for vertices of the
    upper side of the mouth/eye slit, -1 for the lower side, 0 at the slit corners.
    """

    p: F64  # head-relative rest positions
    phi: F64
    theta: F64
    lip: F64
    lid: F64
    lidw: F64  # how much the skin hugs an eyeball (only that skin turns with the lids)

    @staticmethod
    def from_points(p: F64, lm: Landmarks) -> FaceVerts:
        """Rig inputs for a separate mesh riding on the face (brows, lashes): angles from the centre."""
        phi = np.arctan2(p[:, 0], p[:, 2])
        theta = np.arcsin(np.clip(p[:, 1] / np.linalg.norm(p, axis=1), -1.0, 1.0))
        lip = np.sign(theta - lm.mouth_theta)
        lid = np.sign(theta - lm.eye_theta)
        return FaceVerts(p, phi, theta, lip, lid, np.zeros(len(p)))


@dataclasses.dataclass
class Head:
    """The built head mesh plus the per-vertex data the rig needs."""

    mesh: MeshData
    verts: FaceVerts
    weld: I32  # vertex -> representative vertex (UV seam duplicates share normals)
    bag: dict[str, F64 | I32]  # mouth-bag bookkeeping (see _build_bag)
    grid_shape: tuple[int, int]
    grid_index: I32  # (rows, cols + 1) lower-copy index of each grid node (row 0 = pole)
    mouth_upper: I32  # slit vertices: upper copies, left to right (-X to +X)
    mouth_lower: I32
    lid_upper: list[I32]  # per eye: upper-lid edge vertices
    lid_lower: list[I32]
    phi_cols: F64
    theta_rows: F64


def _columns(lm: Landmarks) -> F64:
    half = density_spacing(
        0.0,
        np.pi,
        HALF_COLUMNS + 1,
        [
            (0.0, 0.30, 2.0),
            (lm.eye_phi, 0.22, 2.6),
            (lm.eye_phi + lm.eye_half_width * 0.85, 0.07, 3.0),
            (lm.eye_phi - lm.eye_half_width * 0.85, 0.05, 2.0),
            (0.0, 1.1, 1.2),
        ],
    )
    for value in (
        lm.eye_phi - lm.eye_half_width,
        lm.eye_phi + lm.eye_half_width,
        lm.mouth_half_width,
    ):
        snap(half, value)
    half[0] = 0.0
    return np.concatenate([-half[::-1], half[1:]])  # -pi .. pi; both ends are the UV seam


def _rows(lm: Landmarks) -> F64:
    theta = density_spacing(
        np.pi / 2,
        THETA_BOTTOM,
        ROWS,
        [(lm.eye_theta, 0.22, 2.4), (lm.mouth_theta, 0.20, 3.0), (-0.3, 0.45, 1.3)],
    )
    snap(theta, lm.eye_theta)
    snap(theta, lm.mouth_theta)
    return theta


def _lid_opening(ch: Character, lm: Landmarks, a: F64, t: F64, upper: F64) -> F64:
    """Elevation offset that opens an eye slit into an almond (monotone, so the grid never folds).

    ``a`` is the azimuth across the eye (-1 inner corner .. 1 outer corner), ``t`` the elevation
    above the slit row; ``upper`` says which side of the slit a vertex belongs to.
    """
    spread = 1.0 + 2.0 * np.abs(t) / 0.35
    ae = a / spread
    # Pointed corners: the opening tapers to the ends instead of ending in a vertical edge.
    shape = np.clip(1.0 - ae**2, 0.0, 1.0) ** 1.15 / spread
    # The upper lid peaks a little toward the inner corner, the lower one toward the outer corner.
    hu = ch.eye_open_upper * shape * (1.0 - 0.12 * ae)
    hl = ch.eye_open_lower * shape * (1.0 + 0.15 * ae)
    bu, bl = 3.0 * ch.eye_open_upper, 3.0 * ch.eye_open_lower
    gu = smoothstep(bu, 0.0, np.maximum(t, 0.0))
    gl = smoothstep(bl, 0.0, np.maximum(-t, 0.0))
    tilt = ch.eye_tilt * np.clip(a, -1.5, 1.5) * smoothstep(0.5, 0.0, np.abs(t))
    return np.asarray(np.where(upper > 0, hu * gu, -hl * gl) + tilt, np.float64)


def build_head(ch: Character, lm: Landmarks) -> Head:
    """Sample the sculpt on the slit grid, shape lids and lips, and add the mouth bag."""
    phi_c = _columns(lm)
    theta_r = _rows(lm)
    ncols = len(phi_c) - 1  # distinct columns (the last repeats the first at +pi)
    rows = len(theta_r)

    # Vertex table: pole, grid rows 1.., then the upper copies of the slit nodes.
    grid_index = np.zeros((rows, ncols + 1), np.int32)
    grid_index[1:] = 1 + np.arange((rows - 1) * (ncols + 1), dtype=np.int32).reshape(rows - 1, ncols + 1)
    phi_list = [np.array([0.0]), np.tile(phi_c, rows - 1)]
    theta_list = [np.array([np.pi / 2]), np.repeat(theta_r[1:], ncols + 1)]
    n = 1 + (rows - 1) * (ncols + 1)
    lip = np.zeros(n)
    lid = np.zeros(n)
    th_all = np.concatenate(theta_list)
    lip[:] = np.sign(th_all - lm.mouth_theta)
    lid[:] = np.sign(th_all - lm.eye_theta)

    i_eye = int(np.argmin(np.abs(theta_r - lm.eye_theta)))
    i_mouth = int(np.argmin(np.abs(theta_r - lm.mouth_theta)))
    upper_index = grid_index.copy()
    slits: dict[str, I32] = {}
    eps = 1e-9
    spans = {
        "mouth": (i_mouth, -lm.mouth_half_width, lm.mouth_half_width),
        "eye_l": (i_eye, lm.eye_phi - lm.eye_half_width, lm.eye_phi + lm.eye_half_width),
        "eye_r": (i_eye, -lm.eye_phi - lm.eye_half_width, -lm.eye_phi + lm.eye_half_width),
    }
    extra_phi, extra_theta, extra_lip, extra_lid = [], [], [], []
    for key, (row, lo, hi) in spans.items():
        cols = np.nonzero((phi_c[:ncols] > lo + eps) & (phi_c[:ncols] < hi - eps))[0].astype(np.int32)
        copies = n + np.arange(len(cols), dtype=np.int32)
        n += len(cols)
        upper_index[row, cols] = copies
        slits[key] = cols
        extra_phi.append(phi_c[cols])
        extra_theta.append(np.full(len(cols), theta_r[row]))
        ones = np.ones(len(cols))
        extra_lip.append(ones if key == "mouth" else ones * np.sign(theta_r[row] - lm.mouth_theta))
        extra_lid.append(ones if key != "mouth" else ones * np.sign(theta_r[row] - lm.eye_theta))
        # The lower copies (the grid nodes themselves) are the lower side of the slit; the corners
        # (first and last column of the span, not duplicated) stay 0.
        lower_ids = grid_index[row, cols]
        if key == "mouth":
            lip[lower_ids] = -1.0
        else:
            lid[lower_ids] = -1.0
        corner_cols = np.array([cols[0] - 1, cols[-1] + 1])
        if key == "mouth":
            lip[grid_index[row, corner_cols]] = 0.0
        else:
            lid[grid_index[row, corner_cols]] = 0.0

    phi0 = np.concatenate([*phi_list, *extra_phi])
    theta0 = np.concatenate([*theta_list, *extra_theta])
    lip = np.concatenate([lip, *extra_lip])
    lid = np.concatenate([lid, *extra_lid])

    # Open the eye slits in parameter space, then find the surface.
    theta_w = theta0.copy()
    for sign in (1.0, -1.0):
        a = (phi0 - sign * lm.eye_phi) / lm.eye_half_width * sign
        t = theta0 - lm.eye_theta
        near = (np.abs(a) < 3.0) & (np.abs(t) < 0.6)
        theta_w[near] += _lid_opening(ch, lm, a[near], t[near], lid[near])[...]
    dirs = directions(phi0, theta_w)
    radius = cast(ch, dirs)
    p = dirs * radius[:, None]
    p[0] = np.array([0.0, radius[0], 0.0])

    p, lidw = _shape_eyelids(lm, p, phi0, theta0, slits, grid_index, upper_index, i_eye)
    p = _shape_lips(ch, lm, p, phi0, theta0, lip)

    # Triangles: pole fan, then the grid rows (upper copies above each slit row).
    row1 = grid_index[1]
    fan = np.stack([np.zeros(ncols, np.int32), row1[:-1], row1[1:]], -1)
    tris = [fan]
    for r in range(1, rows - 1):
        top = grid_index[r]
        bottom = upper_index[r + 1] if r + 1 in (i_eye, i_mouth) else grid_index[r + 1]
        tris.append(grid_triangles(np.stack([top, bottom])))
    triangles = np.concatenate(tris).astype(np.int32)

    # UVs: uniform in grid index, so texels follow the mesh density (dense face, sparse back).
    uv = np.zeros((n, 2))
    col_of = np.concatenate([[0], np.tile(np.arange(ncols + 1), rows - 1)])
    row_of = np.concatenate([[0], np.repeat(np.arange(1, rows), ncols + 1)])
    row_of = row_of.astype(np.float64)
    for key, (row, _lo, _hi) in spans.items():
        col_of = np.concatenate([col_of, slits[key]])
        # Upper copies sample the texture a third of a row higher, lower copies a third lower, so
        # the upper lash line and the lower lid can be painted differently.
        row_of[grid_index[row, slits[key]]] += 0.33
        row_of = np.concatenate([row_of, np.full(len(slits[key]), row - 0.33)])
    uv[:, 0] = col_of / ncols
    uv[:, 1] = row_of / (rows - 1) * (BAG_V0 - 0.01)

    weld = np.arange(n, dtype=np.int32)
    weld[grid_index[1:, ncols]] = grid_index[1:, 0]

    verts = FaceVerts(p, phi0, theta0, lip, lid, lidw)
    mouth_cols = slits["mouth"]
    mouth_upper = upper_index[i_mouth, mouth_cols]
    mouth_lower = grid_index[i_mouth, mouth_cols]
    corners = grid_index[i_mouth, [mouth_cols[0] - 1, mouth_cols[-1] + 1]]
    mesh = MeshData(p, triangles, None, uv)
    head = Head(
        mesh=mesh,
        verts=verts,
        weld=weld,
        bag={},
        grid_shape=(rows, ncols),
        grid_index=grid_index,
        mouth_upper=mouth_upper,
        mouth_lower=mouth_lower,
        lid_upper=[upper_index[i_eye, slits["eye_l"]], upper_index[i_eye, slits["eye_r"]]],
        lid_lower=[grid_index[i_eye, slits["eye_l"]], grid_index[i_eye, slits["eye_r"]]],
        phi_cols=phi_c,
        theta_rows=theta_r,
    )
    _build_bag(ch, lm, head, corners)
    return head


def eyelid_wrap(lm: Landmarks, p: F64, phi0: F64, theta0: F64) -> tuple[F64, F64]:
    """Wrap skin around each eyeball: the lids lie on a sphere just outside it.

    Returns the moved points and the per-point weight of the wrap (1 on the lids), which the rig
    uses so only skin that hugs the eyeball turns with the lids.
    """
    out = p.copy()
    weight = np.zeros(len(p))
    for k, sign in enumerate((1.0, -1.0)):
        e = lm.eye[k]
        a = (phi0 - sign * lm.eye_phi) / lm.eye_half_width
        t = theta0 - lm.eye_theta
        # Flat-topped falloff: the whole lid is on the sphere, the skin beyond blends back out.
        d2 = (a / 1.40) ** 2 + (t / np.where(t > 0, 0.27, 0.20)) ** 2
        w = np.exp(-(d2**1.6))
        rel = out - e
        r = np.linalg.norm(rel, axis=1)
        r_new = r + (lm.lid_radius - r) * w
        # Never let the eyeball poke through the skin: nothing of the face stays inside its sphere
        # (a soft floor, so the skin just outside it keeps its shape).
        floor = lm.lid_radius + 0.0004
        r_new = np.where(
            r_new < floor + 0.002, floor + 0.002 * smoothstep(floor - 0.002, floor + 0.002, r_new) ** 2, r_new
        )
        moved = e + rel / np.maximum(r, 1e-9)[:, None] * r_new[:, None]
        use = (w > 1e-4) | (r < floor + 0.002)
        out[use] = moved[use]
        weight = np.maximum(weight, w)
    return out, weight


def _shape_eyelids(
    lm: Landmarks,
    p: F64,
    phi0: F64,
    theta0: F64,
    slits: dict[str, I32],
    grid_index: I32,
    upper_index: I32,
    i_eye: int,
) -> tuple[F64, F64]:
    """The lid wrap, plus rims that sit right on the eyeball so there is no gap to see through."""
    out, weight = eyelid_wrap(lm, p, phi0, theta0)
    for k, key in enumerate(("eye_l", "eye_r")):
        cols = slits[key]
        corners = grid_index[i_eye, [cols[0] - 1, cols[-1] + 1]]
        rim = np.concatenate([grid_index[i_eye, cols], upper_index[i_eye, cols], corners])
        rel = out[rim] - lm.eye[k]
        out[rim] = lm.eye[k] + normalize(rel) * (lm.eye_radius + 0.0005)
    return out, weight


def lip_profile(ch: Character, lm: Landmarks, phi: F64, theta: F64) -> tuple[F64, F64]:
    """Lip bulge (metres, outward) and the lip colour mask at grid coordinates (phi, theta)."""
    a = phi / lm.mouth_half_width
    t = theta - lm.mouth_theta
    hu, hl = 0.080, 0.100
    full = ch.lip_fullness
    across = np.clip(1.0 - a**2, 0.0, 1.0)
    # Cupid's bow: the upper lip's border dips in the middle and peaks either side.
    bow = 1.0 - 0.18 * np.exp(-((a / 0.16) ** 2)) + 0.06 * np.exp(-(((np.abs(a) - 0.3) / 0.18) ** 2))
    top = hu * bow * (0.55 + 0.45 * across**0.5)
    bottom = hl * (0.45 + 0.55 * across**0.6)
    up = np.clip(t / top, 0.0, None)
    down = np.clip(-t / bottom, 0.0, None)
    bulge_u = 0.0020 * full * np.sin(np.pi * np.clip(up, 0, 1) ** 0.75) ** 1.5 * across**0.45
    bulge_l = 0.0028 * full * np.sin(np.pi * np.clip(down, 0, 1) ** 0.85) ** 1.5 * across**0.5
    bulge = np.where(t >= 0, bulge_u, bulge_l)
    # The lip line curls inward; the corners tuck into the cheeks; a soft groove under the lower lip.
    curl = -0.0024 * np.exp(-((t / 0.018) ** 2)) * np.clip(1.15 - a**2, 0.0, 1.0)
    corner = -0.0018 * np.exp(-(((np.abs(a) - 1.0) / 0.16) ** 2) - (t / 0.05) ** 2)
    sulcus = -0.0016 * np.exp(-(((t + 1.45 * hl) / 0.035) ** 2) - (a / 1.1) ** 4)
    philtrum = -0.0007 * np.exp(-((phi / 0.028) ** 2)) * np.exp(-(((t - 1.6 * hu) / 0.06) ** 2))
    colour = np.where(t >= 0, smoothstep(1.05, 0.85, up), smoothstep(1.05, 0.8, down))
    colour = colour * smoothstep(1.12, 0.96, np.abs(a))
    return np.asarray(bulge + curl + corner + sulcus + philtrum, np.float64), np.asarray(colour, np.float64)


def _shape_lips(ch: Character, lm: Landmarks, p: F64, phi0: F64, theta0: F64, lip: F64) -> F64:
    bulge, _ = lip_profile(ch, lm, phi0, theta0)
    out_dir = normalize(np.stack([np.sin(phi0), np.full_like(phi0, -0.2), np.cos(phi0)], -1))
    return np.asarray(p + out_dir * bulge[:, None], np.float64)


def _build_bag(ch: Character, lm: Landmarks, head: Head, corners: I32) -> None:
    """Extend the mouth slit inward into a closed, dark mouth bag (new vertices and triangles)."""
    mesh = head.mesh
    p = mesh.positions
    up, lo = head.mouth_upper, head.mouth_lower
    # The loop around the closed mouth: right corner, upper edge left-ward... in +X order.
    loop = np.concatenate([[corners[0]], up, [corners[1]], lo[::-1]]).astype(np.int32)
    nu = len(up)
    # Angle around the loop: upper half 0..pi from +X... mapped from the slit azimuth.
    a = np.clip(head.verts.phi[loop] / lm.mouth_half_width, -1.0, 1.0)
    psi = np.arccos(a)
    psi[nu + 2 :] *= -1.0
    centre = lm.mouth_centre
    half_w = float(np.abs(p[corners, 0]).mean())
    edge = p[loop]
    rings = [loop]
    new_pos = []
    new_psi = []
    new_f = []
    count = len(p)
    for k in range(1, BAG_RINGS + 1):
        f = k / BAG_RINGS
        depth = 0.006 + 0.036 * f
        width = half_w * (1.05 + 0.25 * np.sin(np.pi * min(f * 1.4, 1.0))) * (1.0 - 0.45 * f**3)
        height = 0.017 * np.sin(np.pi * min(0.25 + f * 0.8, 1.0)) + 0.007
        ring_c = centre + np.array([0.0, -0.006 * f, -depth])
        target = ring_c + np.stack([width * np.cos(psi), height * np.sin(psi), 0.0 * psi], -1)
        s = smoothstep(0.0, 0.45, f)
        pts = edge * (1.0 - s) + target * s
        pts[:, 2] = np.minimum(pts[:, 2], edge[:, 2] - 0.004 * min(1.0, f * 4))
        new_pos.append(pts)
        new_psi.append(psi)
        new_f.append(np.full(len(loop), f))
        rings.append(count + np.arange(len(loop), dtype=np.int32))
        count += len(loop)
    throat = centre + np.array([0.0, -0.010, -0.048])
    new_pos.append(throat[None])
    new_psi.append(np.array([-np.pi / 2]))
    new_f.append(np.array([1.0]))
    throat_id = count
    count += 1

    tris = []
    for k in range(BAG_RINGS):
        ring_a, ring_b = rings[k], rings[k + 1]
        # The loop runs clockwise seen from the front; this winding makes the bag's inside face the
        # viewer looking into the mouth (checked by the tests).
        tris.append(grid_triangles(np.stack([ring_a, ring_b]), wrap=True))
    last = rings[-1]
    tris.append(np.stack([np.roll(last, -1), last, np.full(len(last), throat_id)], -1))
    bag_tris = np.concatenate(tris).astype(np.int32)

    added = np.concatenate(new_pos)
    mesh.positions = np.concatenate([p, added])
    mesh.triangles = np.concatenate([mesh.triangles, bag_tris]).astype(np.int32)
    f_all = np.concatenate(new_f)
    psi_all = np.concatenate(new_psi)
    uv = np.stack([(psi_all + np.pi) / (2 * np.pi), BAG_V0 + 0.04 * f_all], -1)
    assert mesh.uvs is not None
    mesh.uvs = np.concatenate([mesh.uvs, uv])
    v = head.verts
    nb = len(added)
    v.p = mesh.positions
    v.phi = np.concatenate([v.phi, np.zeros(nb)])
    v.theta = np.concatenate([v.theta, np.full(nb, lm.mouth_theta)])
    v.lip = np.concatenate([v.lip, -np.sign(np.sin(psi_all))])
    v.lid = np.concatenate([v.lid, np.zeros(nb)])
    v.lidw = np.concatenate([v.lidw, np.zeros(nb)])
    head.weld = np.concatenate([head.weld, np.arange(len(p), len(p) + nb, dtype=np.int32)])
    head.bag = {
        "start": np.array([len(p)]),
        "loop": loop,
        "f": f_all,
        "psi": psi_all,
        "ring_of": np.concatenate([np.repeat(np.arange(BAG_RINGS), len(loop)), [BAG_RINGS - 1]]),
    }
    head.mesh.normals = welded_normals(mesh.positions, mesh.triangles, head.weld)


def welded_normals(positions: F64, triangles: I32, weld: I32) -> F64:
    """Vertex normals where UV-seam duplicates share one normal."""
    n = vertex_normals(positions, weld[triangles])
    return np.asarray(n[weld], np.float64)
