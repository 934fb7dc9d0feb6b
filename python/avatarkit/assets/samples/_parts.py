"""Everything but the head skin: eyes, teeth, tongue, brows, ears, hair, neck and clothes.

All positions are head-relative (origin at the head centre) unless a function says otherwise.
"""

from __future__ import annotations

import numpy as np

from ._characters import Character
from ._geometry import (
    F64,
    MeshData,
    bump,
    drop_degenerate,
    grid_triangles,
    merge,
    normalize,
    smoothstep,
    uv_sphere,
)
from ._head import FaceVerts, Head, Landmarks, _lid_opening, cast, directions, eyelid_wrap, welded_normals


def _orient_outward(mesh: MeshData, centre: F64) -> MeshData:
    """Flip the winding if the triangles face the centre (for closed, roughly convex parts)."""
    p, t = mesh.positions, mesh.triangles
    face = np.cross(p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]])
    mid = (p[t[:, 0]] + p[t[:, 1]] + p[t[:, 2]]) / 3.0
    if np.sum(face * (mid - centre)) < 0:
        mesh.triangles = np.asarray(t[:, ::-1], np.int32)
    mesh.normals = None
    mesh.finish_normals()
    return mesh


def _periodic_grid(points: F64, uv: F64) -> MeshData:
    """Mesh a (rows, cols + 1, 3) grid whose last column repeats the first (UV seam, shared normals)."""
    rows, cols1, _ = points.shape
    index = np.arange(rows * cols1, dtype=np.int32).reshape(rows, cols1)
    tris = grid_triangles(index)
    weld = index.copy()
    weld[:, -1] = index[:, 0]
    p = points.reshape(-1, 3)
    mesh = MeshData(p, tris, welded_normals(p, tris, weld.reshape(-1)), uv.reshape(-1, 2))
    return mesh


# --- eyes ------------------------------------------------------------------------------------------


def eyeball(ch: Character, lm: Landmarks) -> MeshData:
    """An eyeball around its own centre, pole (pupil) on +Z, with a slight corneal bulge."""
    rows, cols = 16, 24
    alpha = np.linspace(0.0, np.pi, rows)
    beta = np.linspace(0.0, 2 * np.pi, cols + 1)
    al, be = np.meshgrid(alpha, beta, indexing="ij")
    d = np.stack([np.sin(al) * np.cos(be), np.sin(al) * np.sin(be), np.cos(al)], -1)
    # The cornea bulges a little over the iris: it catches a highlight and reads as glossy.
    r = lm.eye_radius * (1.0 + 0.022 * smoothstep(ch.iris_size * 1.05, 0.0, al) ** 1.5)
    pts = d * r[..., None]
    uv = np.stack([be / (2 * np.pi), al / np.pi], -1)
    mesh = _periodic_grid(pts, uv)
    mesh = drop_degenerate(mesh)
    return _orient_outward(mesh, np.zeros(3))


# --- teeth and tongue -------------------------------------------------------------------------------


def _rounded_box(centre: F64, half: F64, basis: F64, power: float = 0.45, rows: int = 7, cols: int = 8) -> MeshData:
    """A rounded box: a sphere pushed toward a cube (signed powers), scaled and rotated by ``basis``."""
    s = uv_sphere(np.zeros(3), np.ones(3), rows, cols)
    d = s.positions
    q = np.sign(d) * np.abs(d) ** power
    p = (q * half) @ basis.T + centre
    mesh = MeshData(p, s.triangles, None, s.uvs)
    return _orient_outward(mesh, centre)


def _arc(half_width: float, depth: float, s: F64) -> tuple[F64, F64, F64]:
    """Dental arch: points, tangents and outward normals (in x-z) at arc parameters ``s`` in -1..1."""
    g = s * 1.15
    x = half_width * np.sin(g)
    z = depth * (np.cos(g) - 1.0)
    tangent = normalize(np.stack([half_width * np.cos(g), np.zeros_like(g), -depth * np.sin(g)], -1))
    outward = np.stack([tangent[:, 2] * -1.0, np.zeros_like(g), tangent[:, 0]], -1)
    return np.stack([x, np.zeros_like(g), z], -1), tangent, outward


def teeth(lm: Landmarks, upper: bool) -> tuple[MeshData, MeshData]:
    """A row of stylized teeth and its gum, as (teeth, gum) meshes."""
    mc = lm.mouth_centre
    sign = 1.0 if upper else -1.0
    widths = np.array([0.0043, 0.0036, 0.0037, 0.0038, 0.0040]) * (1.0 if upper else 0.82)
    heights = np.array([0.0090, 0.0080, 0.0085, 0.0070, 0.0062]) * (1.0 if upper else 0.85)
    half_w, depth = (0.0205, 0.016) if upper else (0.0180, 0.0145)
    front_z = mc[2] - (0.0052 if upper else 0.0080)
    edge_y = mc[1] - (0.0010 if upper else 0.0004)
    # Arc length positions of the tooth centres, symmetric about the middle.
    cum = np.concatenate([[0.0], np.cumsum(widths)])
    centres_len = (cum[:-1] + cum[1:]) / 2
    total = cum[-1] * 1.05
    parts = []
    for side in (-1.0, 1.0):
        for k in range(len(widths)):
            s = np.array([side * centres_len[k] / total])
            pt, tan, out = _arc(half_w, depth, s)
            c = pt[0] + np.array([0.0, edge_y + sign * heights[k] / 2, front_z])
            c -= out[0] * 0.0013
            basis = np.stack([tan[0] * side, np.array([0.0, 1.0, 0.0]), out[0]], -1)
            half = np.array([widths[k] * 0.48, heights[k] / 2, 0.0013 + 0.0004 * k])
            parts.append(_rounded_box(c, half, basis, 0.35))
    teeth_mesh = merge(parts)
    # Gum: a soft band along the arch hiding the teeth roots.
    n = 20
    s = np.linspace(-1.0, 1.0, n)
    pt, _tan, out = _arc(half_w, depth, s)
    ring = np.linspace(0, 2 * np.pi, 9)
    base_y = edge_y + sign * (heights.max() * 0.82)
    pts = []
    for k in range(n):
        cx = pt[k] + np.array([0.0, base_y, front_z]) - out[k] * 0.0016
        pts.append(
            cx
            + np.cos(ring)[:, None] * out[k][None, :] * 0.0030
            + np.sin(ring)[:, None] * np.array([0.0, sign * 0.0042, 0.0])[None, :]
        )
    grid = np.stack(pts)  # (n, ring, 3)
    index = np.arange(grid.shape[0] * grid.shape[1], dtype=np.int32).reshape(grid.shape[:2])
    tris = grid_triangles(index)
    gum = MeshData(grid.reshape(-1, 3), tris, None, np.zeros((grid.shape[0] * grid.shape[1], 2)))
    c = np.array([0.0, base_y, front_z - depth])
    p, t = gum.positions, gum.triangles
    face = np.cross(p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]])
    ring_c = np.repeat(pt + np.array([0.0, base_y, front_z]), grid.shape[1], 0)
    mid = (p[t[:, 0]] + p[t[:, 1]] + p[t[:, 2]]) / 3.0
    near = ring_c[t[:, 0]]
    if np.sum(face * (mid - near)) < 0:
        gum.triangles = np.asarray(t[:, ::-1], np.int32)
    del c
    gum.finish_normals()
    return teeth_mesh, gum


def tongue(lm: Landmarks) -> tuple[MeshData, F64]:
    """A tongue lying in the floor of the mouth, and each vertex's root-to-tip coordinate."""
    mc = lm.mouth_centre
    length, width, thick = 0.026, 0.0175, 0.0068
    centre = np.array([0.0, mc[1] - 0.0105, mc[2] - 0.0095 - length])
    s = uv_sphere(np.zeros(3), np.array([width, thick, length]), 12, 18)
    p = s.positions.copy()
    # Flatter on top with a faint middle groove, rounder at the tip.
    top = p[:, 1] > 0
    p[top, 1] *= 0.75 + 0.25 * np.abs(p[top, 0] / width)
    p[:, 1] -= 0.0008 * np.exp(-((p[:, 0] / 0.004) ** 2)) * top
    tip_s = (p[:, 2] + length) / (2 * length)
    p[:, 0] *= 1.0 - 0.25 * tip_s**3
    mesh = MeshData(p + centre, s.triangles, None, s.uvs)
    mesh = _orient_outward(mesh, centre)
    return mesh, np.asarray(tip_s, np.float64)


# --- brows ----------------------------------------------------------------------------------------


def brows(ch: Character, lm: Landmarks) -> tuple[MeshData, FaceVerts]:
    """Both eyebrows: tapered arched ribbons lying just on the forehead skin."""
    n_along, n_across = 22, 7
    s = np.linspace(0.0, 1.0, n_along)
    c = np.linspace(-1.0, 1.0, n_across)
    ss, cc = np.meshgrid(s, c, indexing="ij")
    parts = []
    infos = []
    for sign in (1.0, -1.0):
        phi_in = lm.eye_phi - 1.10 * lm.eye_half_width
        phi_out = lm.eye_phi + 1.20 * lm.eye_half_width
        phi = sign * (phi_in + (phi_out - phi_in) * ss)
        base = lm.eye_theta + 0.235 + 0.05 * np.sin(np.pi * ss**0.75) - 0.035 * ss
        thick = 0.034 * ch.brow_thickness * (1.0 - 0.65 * ss**1.3) * smoothstep(-0.08, 0.12, ss) ** 0.5
        theta = base + cc * thick / 2
        # Land on the same skin the head has: apply the lid opening warp and the eyelid wrap.
        a = (phi - sign * lm.eye_phi) / lm.eye_half_width * sign
        theta_w = theta + _lid_opening(ch, lm, a, theta - lm.eye_theta, np.ones_like(a))
        dirs = directions(phi, theta_w).reshape(-1, 3)
        skin = dirs * cast(ch, dirs)[:, None]
        skin, _w = eyelid_wrap(lm, skin, phi.reshape(-1), theta.reshape(-1))
        height = (0.0004 + 0.0011 * np.sqrt(np.clip(1.0 - cc**2, 0.0, 1.0))).reshape(-1)
        pts = skin + normalize(skin) * height[:, None]
        index = np.arange(n_along * n_across, dtype=np.int32).reshape(n_along, n_across)
        tris = grid_triangles(index)
        uv = np.stack([ss.reshape(-1), (cc.reshape(-1) + 1) / 2], -1)
        mesh = MeshData(pts, tris, None, uv)
        # Make the ribbon face away from the head.
        p, t = mesh.positions, mesh.triangles
        face = np.cross(p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]])
        if np.sum(face * p[t[:, 0]]) < 0:
            mesh.triangles = np.asarray(t[:, ::-1], np.int32)
        mesh.finish_normals()
        parts.append(mesh)
        n = len(pts)
        infos.append(FaceVerts(pts, phi.reshape(-1), theta.reshape(-1), np.ones(n), np.ones(n), np.zeros(n)))
    mesh = merge(parts)
    verts = FaceVerts(
        mesh.positions,
        np.concatenate([i.phi for i in infos]),
        np.concatenate([i.theta for i in infos]),
        np.ones(len(mesh.positions)),
        np.ones(len(mesh.positions)),
        np.zeros(len(mesh.positions)),
    )
    return mesh, verts


# --- ears -----------------------------------------------------------------------------------------


# An ear is about 30 x 20 pixels at 512x512: 14 x 20 samples keep its rim and hollow (20 x 28 looked the
# same at twice the triangles).
EAR_ROWS, EAR_COLUMNS = 14, 20


def ears(ch: Character, lm: Landmarks) -> MeshData:
    """Two stylized ears: a flattened shell with a rim and a hollow, half sunk into the head."""
    parts = []
    theta_ear = 0.5 * (lm.eye_theta + lm.mouth_theta) + 0.06
    for sign in (1.0, -1.0):
        phi = sign * 1.50
        d = directions(np.array([phi]), np.array([theta_ear]))
        surf = d[0] * cast(ch, d)[0]
        rx, ry, rz = 0.0075, 0.027, 0.018
        s = uv_sphere(np.zeros(3), np.array([1.0, 1.0, 1.0]), EAR_ROWS, EAR_COLUMNS)
        u = s.positions  # unit sphere; x is the outward axis before placement
        p = u * np.array([rx, ry, rz])
        # Outer face: a hollow (concha) and a raised rim (helix) near the outline.
        outer = np.clip(u[:, 0], 0.0, 1.0)
        radial = np.sqrt(u[:, 1] ** 2 + u[:, 2] ** 2)
        p[:, 0] -= outer * 0.0075 * bump(radial, 0.05, 0.85)
        p[:, 0] += outer * 0.0018 * bump(radial, 0.92, 0.18)
        # Egg shape: wider at the top, the lobe narrower.
        p[:, 2] *= 1.0 + 0.18 * u[:, 1]
        # Tilt back a little and flare the top away from the head.
        tilt = -0.22
        c, sn = np.cos(tilt), np.sin(tilt)
        y, z = p[:, 1].copy(), p[:, 2].copy()
        p[:, 1], p[:, 2] = c * y - sn * z, sn * y + c * z
        p[:, 0] += 0.22 * np.maximum(p[:, 1], 0.0)
        p[:, 0] *= sign
        centre = surf + np.array([-sign * 0.0005, 0.0, -0.006])
        mesh = MeshData(p + centre, s.triangles, None, s.uvs)
        mesh = drop_degenerate(mesh)
        parts.append(_orient_outward(mesh, centre))
    return merge(parts)


# --- hair -----------------------------------------------------------------------------------------


def _hair_style(ch: Character, lm: Landmarks, phi: F64, theta: F64) -> tuple[F64, F64]:
    """(boundary elevation per azimuth, thickness at (phi, theta)) for the character's style."""
    aphi = np.abs(phi)
    te = lm.eye_theta
    if ch.hair_style == "bob":
        knots = [0.0, 0.45, 0.62, 0.95, 1.15, 2.0, np.pi]
        vals = [te + 0.36, te + 0.37, te + 0.33, -0.25, -0.78, -0.80, -0.80]
        edge = np.interp(aphi, knots, vals)
        # Bangs swept toward the character's right, in a few soft clumps.
        front = smoothstep(0.7, 0.4, aphi)
        edge = edge + front * (0.05 * smoothstep(-0.5, 0.5, phi) - 0.022 * (0.5 + 0.5 * np.cos(phi * 15.0)))
        thick = 0.0085 + 0.004 * smoothstep(0.3, 1.2, theta) + 0.002 * smoothstep(0.5, 1.2, aphi)
    else:
        knots = [0.0, 0.40, 0.80, 1.10, 1.35, 1.62, 2.3, np.pi]
        vals = [te + 0.64, te + 0.60, te + 0.44, te + 0.20, 0.10, 0.12, -0.45, -0.58]
        edge = np.interp(aphi, knots, vals)
        # The quiff: hair swept up and back from the front hairline into a rounded crest.
        quiff = 0.030 * np.exp(-((phi / 0.60) ** 2) - ((theta - (te + 0.80)) / 0.30) ** 2)
        crown = 0.006 * smoothstep(0.4, 1.3, theta)
        thick = 0.0040 + quiff + crown
    return np.asarray(edge, np.float64), np.asarray(thick, np.float64)


#: The hair shell's inner surface climbs from the edge this share of the way to the crown.
HAIR_INNER_REACH = 0.45


def hair(ch: Character, lm: Landmarks) -> MeshData:
    """A sculpted hair shell: outer surface, a rolled edge and an inner surface back into the scalp."""
    cols = 64
    phi = np.linspace(-np.pi, np.pi, cols + 1)
    edge, _ = _hair_style(ch, lm, phi, np.zeros_like(phi))
    n_out, n_rim, n_in = 24, 4, 5
    s_out = np.linspace(0.0, 1.0, n_out) ** 0.9
    # Outer surface.
    th_out = np.pi / 2 - s_out[:, None] * (np.pi / 2 - edge[None, :])
    ph_out = np.broadcast_to(phi, th_out.shape)
    r_out = _hair_radius(ch, lm, ph_out, th_out)
    d_out = directions(ph_out, th_out)
    outer = d_out * r_out[..., None]
    # Inner surface (going back up, inside the head where the hair lies on the scalp).
    s_in = np.linspace(0.0, 1.0, n_in)
    th_in = edge[None, :] + s_in[:, None] * HAIR_INNER_REACH * (np.pi / 2 - edge[None, :])
    ph_in = np.broadcast_to(phi, th_in.shape)
    d_in = directions(ph_in, th_in)
    r_head = cast(ch, d_in.reshape(-1, 3)).reshape(th_in.shape)
    r_o = _hair_radius(ch, lm, ph_in, th_in)
    # Under a curtain that hangs away from the head the inner surface hangs with it; its top row goes
    # into the scalp, so the shell and the skin below its top close off the skin above (see
    # drop_hidden_scalp).
    tuck = (s_in**2)[:, None]
    r_in = (1.0 - tuck) * np.maximum(r_head - 0.0025, r_o - 0.013) + tuck * (r_head - 0.0025)
    inner = d_in * r_in[..., None]
    # Rolled edge joining them.
    e_out, e_in = outer[-1], inner[0]
    down = normalize(outer[-1] - outer[-2])
    w = np.linspace(0.0, np.pi, n_rim + 2)[1:-1]
    gap = np.linalg.norm(e_out - e_in, axis=-1, keepdims=True)
    rim = np.stack(
        [e_out * (1 - (1 - np.cos(x)) / 2) + e_in * ((1 - np.cos(x)) / 2) + down * gap * 0.55 * np.sin(x) for x in w]
    )
    pts = np.concatenate([outer, rim, inner], 0)
    # Clumps: gentle grooves running from the crown to the tips.
    rows = pts.shape[0]
    flow = phi[None, :] + 0.25 * np.sin(np.linspace(0, 1, rows))[:, None]
    groove = 0.0011 * np.cos(flow * (13.0 if ch.hair_style == "bob" else 23.0))
    radial = normalize(pts)
    shell = np.concatenate([np.linspace(0.2, 1.0, n_out), np.ones(n_rim), np.zeros(n_in)])
    pts = pts + radial * (groove * shell[:, None])[..., None]
    v = np.concatenate([s_out, 1.0 + np.linspace(0.02, 0.1, n_rim), 1.1 + s_in * 0.3])
    uv = np.stack(np.broadcast_arrays((phi[None, :] / (2 * np.pi) + 0.5) * 3.0, v[:, None]), -1)
    mesh = _periodic_grid(pts, uv)
    return drop_degenerate(mesh)


# How far above the top of the hair's inner surface (radians of elevation) the scalp counts as hidden.
SCALP_MARGIN = 0.08


def drop_hidden_scalp(head: Head, ch: Character, lm: Landmarks) -> int:
    """Remove the head triangles the hair shell hides from every viewpoint; returns how many.

    The outer surface, the rolled rim, the inner surface and the skin up to where that surface sinks
    into the scalp enclose the skin above it, so that skin is never seen from anywhere, yet a software
    rasterizer pays for every one of its triangles. The vertices stay (morph targets index them);
    only their triangles go.
    """
    edge, _ = _hair_style(ch, lm, head.verts.phi, np.zeros_like(head.verts.phi))
    # Above where the shell's inner surface meets the scalp (its top row, as hair() builds it).
    top = edge + HAIR_INNER_REACH * (np.pi / 2 - edge)
    hidden = head.verts.theta > top + SCALP_MARGIN
    tris = head.mesh.triangles
    keep = ~hidden[tris].all(axis=1)
    head.mesh.triangles = np.ascontiguousarray(tris[keep], np.int32)
    return int((~keep).sum())


def _hair_radius(ch: Character, lm: Landmarks, phi: F64, theta: F64) -> F64:
    _edge, thick = _hair_style(ch, lm, phi, theta)
    dirs = directions(phi, theta)
    r_head = cast(ch, dirs.reshape(-1, 3)).reshape(phi.shape)
    r = r_head + thick
    if ch.hair_style == "bob":
        # The bob hangs as a curtain that flares out a little at the ends.
        rc = 0.100 + 0.006 * smoothstep(1.2, 2.6, np.abs(phi))
        flare = 1.0 + 0.07 * smoothstep(-0.45, -0.80, theta)
        hang = rc / np.maximum(np.cos(theta), 0.2) * flare
        k = 0.006
        h = np.clip(0.5 + 0.5 * (hang - r) / k, 0.0, 1.0)
        blend = smoothstep(0.55, 0.05, theta)
        r = r + blend * ((r * (1 - h) + hang * h + k * h * (1 - h)) - r)
    return np.asarray(r, np.float64)


# --- neck and clothes ----------------------------------------------------------------------------


def neck(ch: Character, lm: Landmarks, y_bottom: float) -> MeshData:
    """The neck below the head mesh (world y), widening into the shoulders inside the clothes."""
    cols, rows = 48, 10
    ang = np.linspace(-np.pi, np.pi, cols + 1)
    y = np.linspace(-0.075, y_bottom, rows)
    r = ch.neck_radius - 0.0012 + 0.012 * smoothstep(y_bottom + 0.05, y_bottom, y)
    pts = np.stack(
        np.broadcast_arrays(r[:, None] * np.sin(ang)[None], y[:, None], -0.012 + r[:, None] * np.cos(ang)[None]),
        -1,
    )
    uv = np.zeros((*pts.shape[:2], 2))
    return _periodic_grid(np.asarray(pts, np.float64), uv)


def torso(ch: Character, lm: Landmarks, neck_top_y: float) -> tuple[MeshData, MeshData, list[MeshData]]:
    """Shoulders and chest in clothes, the collar, and trims; head-relative positions.

    Returns (body, collar, trims).
    """
    cols = 72
    psi = np.linspace(-np.pi, np.pi, cols + 1)
    n = 2.6
    big_w, big_d = ch.shoulder_width, 0.105
    cosp, sinp = np.cos(psi), np.sin(psi)
    rad = (np.abs(sinp / big_w) ** n + np.abs(cosp / big_d) ** n) ** (-1.0 / n)
    rc = ch.neck_radius + 0.0045
    y_top = neck_top_y
    y_sh = y_top - 0.035 - 0.02 * np.abs(sinp)  # shoulders slope down to the sides
    rho = 0.04
    rows1, rows2, rows3 = 12, 7, 8
    t = np.linspace(0.0, 1.0, rows1)
    r1 = rc + (rad - rho - rc)[None, :] * t[:, None]
    y1 = y_top + (y_sh - y_top)[None, :] * (1 - (1 - t[:, None]) ** 2)
    w = np.linspace(np.pi / 2, 0.0, rows2 + 1)[1:]
    r2 = (rad - rho)[None, :] + rho * np.cos(w)[:, None]
    y2 = (y_sh - rho)[None, :] + rho * np.sin(w)[:, None]
    t3 = np.linspace(0.0, 1.0, rows3 + 1)[1:]
    r3 = rad[None, :] * (1.0 - 0.04 * t3[:, None])
    y3 = (y_sh - rho)[None, :] - 0.22 * t3[:, None]
    r_all = np.concatenate([r1, r2, r3])
    y_all = np.concatenate([y1, y2, y3])
    z0 = -0.015
    pts = np.stack(np.broadcast_arrays(r_all * sinp[None], y_all, z0 + r_all * cosp[None]), -1)
    # A soft chest and shoulder-blade shape.
    pts = np.asarray(pts, np.float64)
    pts[..., 2] += (
        0.012 * np.exp(-((psi / 0.9) ** 2))[None, :] * smoothstep(0.0, 0.5, np.linspace(0, 1, len(r_all)))[:, None]
    )
    v = np.concatenate([t * 0.5, 0.5 + (np.arange(rows2) + 1) / rows2 * 0.3, 0.8 + t3 * 1.2])
    uv = np.stack(np.broadcast_arrays((psi / (2 * np.pi) + 0.5)[None, :] * 5.0, v[:, None] * 3.0), -1)
    body = _periodic_grid(pts, uv)

    # Collar: a rolled ring (sweater) or a bunched hood (hoodie) around the neck opening. The ring is
    # about a dozen pixels thick at 512x512, half of it behind the neck: 9 x 49 samples draw it as
    # well as 15 x 73. The hood's thick, bunched back keeps the finer grid (coarser, its outline kinks).
    ring_n, collar_cols = (8, 48) if ch.cloth_style == "sweater" else (14, cols)
    ang = np.linspace(-np.pi, np.pi, collar_cols + 1)
    tube = np.linspace(0.0, 2 * np.pi, ring_n + 1)
    if ch.cloth_style == "sweater":
        minor = np.full(collar_cols + 1, 0.0065)
        lift = np.zeros(collar_cols + 1)
    else:
        back = smoothstep(1.2, np.pi, np.abs(ang))
        minor = 0.008 + 0.018 * back
        lift = 0.012 * back
    major = rc + minor * 0.55
    cx = major * np.sin(ang)
    cz = z0 + major * np.cos(ang)
    cy = y_top + lift - 0.0035
    radial = np.stack([np.sin(ang), np.zeros_like(ang), np.cos(ang)], -1)
    up = np.array([0.0, 1.0, 0.0])
    cpts = (
        np.stack([cx, np.broadcast_to(cy, cx.shape), cz], -1)[None, :, :]
        + np.cos(tube)[:, None, None] * radial[None] * minor[None, :, None]
        + np.sin(tube)[:, None, None] * up[None, None, :] * minor[None, :, None] * 0.9
    )
    cuv = np.stack(np.broadcast_arrays((ang / (2 * np.pi) + 0.5)[None, :] * 12.0, (tube / (2 * np.pi))[:, None]), -1)
    collar = _periodic_grid(np.asarray(cpts, np.float64), cuv)
    collar = _orient_tube(collar, np.stack([cx, np.broadcast_to(cy, cx.shape), cz], -1), ring_n + 1, collar_cols + 1)

    trims: list[MeshData] = []
    if ch.cloth_style == "hoodie":
        for sx in (-1.0, 1.0):
            top = np.array([sx * 0.022, y_top - 0.004, z0 + rc + 0.006 + 0.004])
            path_t = np.linspace(0.0, 1.0, 12)
            path = top + np.stack([sx * 0.004 * path_t, -0.085 * path_t, 0.018 * np.sin(path_t * 1.2) + 0.002], -1)
            trims.append(_tube(path, 0.0022))
    return body, collar, trims


def _orient_tube(mesh: MeshData, centres: F64, rings: int, cols1: int) -> MeshData:
    """Make a swept tube face outward from its centre line."""
    p, t = mesh.positions, mesh.triangles
    c = np.broadcast_to(centres[None], (rings, cols1, 3)).reshape(-1, 3)
    face = np.cross(p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]])
    if np.sum(face * (p[t[:, 0]] - c[t[:, 0]])) < 0:
        mesh.triangles = np.asarray(t[:, ::-1], np.int32)
    mesh.normals = welded_normals_like(mesh, rings, cols1)
    return mesh


def welded_normals_like(mesh: MeshData, rows: int, cols1: int) -> F64:
    """Recompute a periodic grid's normals with its seam columns welded."""
    index = np.arange(rows * cols1, dtype=np.int32).reshape(rows, cols1)
    weld = index.copy()
    weld[:, -1] = index[:, 0]
    return welded_normals(mesh.positions, mesh.triangles, weld.reshape(-1))


def _tube(path: F64, radius: float) -> MeshData:
    """A round tube along a polyline, capped by shrinking to a point at the end."""
    seg = 10
    ang = np.linspace(0.0, 2 * np.pi, seg + 1)
    tangent = normalize(np.gradient(path, axis=0))
    side = normalize(np.cross(tangent, np.array([0.0, 0.0, 1.0])))
    side = np.where(np.linalg.norm(side, axis=1, keepdims=True) < 1e-6, np.array([1.0, 0.0, 0.0]), side)
    normal = np.cross(side, tangent)
    taper = np.ones(len(path))
    taper[-1] = 0.3
    pts = (
        path[:, None, :]
        + (np.cos(ang)[None, :, None] * side[:, None, :] + np.sin(ang)[None, :, None] * normal[:, None, :])
        * radius
        * taper[:, None, None]
    )
    uv = np.zeros((*pts.shape[:2], 2))
    mesh = _periodic_grid(np.asarray(pts, np.float64), uv)
    # Rows of this grid follow the path, so each row's centre is its path point.
    centres = np.repeat(path, seg + 1, 0)
    p, t = mesh.positions, mesh.triangles
    face = np.cross(p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]])
    if np.sum(face * (p[t[:, 0]] - centres[t[:, 0]])) < 0:
        mesh.triangles = np.asarray(t[:, ::-1], np.int32)
    mesh.normals = welded_normals_like(mesh, len(path), seg + 1)
    return mesh
