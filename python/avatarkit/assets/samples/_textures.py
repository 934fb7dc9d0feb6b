"""Procedural base-colour textures (skin, eyes, hair, cloth), painted in numpy and saved as PNG.

Colours are painted in linear RGB and stored sRGB-encoded, as glTF base-colour textures are.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ._characters import RGB, Character
from ._geometry import F64, smoothstep
from ._head import BAG_V0, Head, Landmarks, lip_profile


def _png(linear: F64) -> bytes:
    """Encode a (H, W, 3) linear-RGB image as an sRGB PNG (deterministic: fixed zlib settings)."""
    c = np.clip(linear, 0.0, 1.0)
    srgb = np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    img = Image.fromarray(np.round(srgb * 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _mix(base: F64, colour: RGB | F64, w: F64) -> F64:
    return np.asarray(base * (1.0 - w[..., None]) + np.asarray(colour) * w[..., None], np.float64)


def _value_noise(shape: tuple[int, int], cells: tuple[int, int], seed: int) -> F64:
    """Smooth tileable value noise in [0, 1] (bilinear-interpolated random lattice, smoothstepped)."""
    rng = np.random.default_rng(seed)
    lattice = rng.random((cells[0] + 1, cells[1] + 1))
    lattice[-1, :] = lattice[0, :]
    lattice[:, -1] = lattice[:, 0]
    y = np.linspace(0, cells[0], shape[0], endpoint=False)
    x = np.linspace(0, cells[1], shape[1], endpoint=False)
    yi, xi = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = y - yi, x - xi
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    a = lattice[yi][:, xi]
    b = lattice[yi][:, xi + 1]
    c = lattice[yi + 1][:, xi]
    d = lattice[yi + 1][:, xi + 1]
    top = a + (b - a) * fx[None, :]
    bottom = c + (d - c) * fx[None, :]
    return np.asarray(top + (bottom - top) * fy[:, None], np.float64)


def head_texture(ch: Character, lm: Landmarks, head: Head, size: int = 512) -> bytes:
    """Skin: blush, lips, lid shading and the lash line, with the mouth interior in the bottom rows."""
    rows, ncols = head.grid_shape
    v = (np.arange(size) + 0.5) / size
    u = (np.arange(size) + 0.5) / size
    col = u * ncols
    phi = np.interp(col, np.arange(ncols + 1), head.phi_cols)
    row = v / (BAG_V0 - 0.01) * (rows - 1)
    theta = np.interp(row, np.arange(rows), head.theta_rows)
    ph, th = np.meshgrid(phi, theta)
    rowg = np.broadcast_to(row[:, None], ph.shape)
    img = np.empty((size, size, 3))
    img[:] = ch.skin
    # Subtle mottling so large areas are not flat.
    noise = _value_noise((size, size), (24, 24), 7) - 0.5
    img *= (1.0 + 0.035 * noise)[..., None]
    # Blush on the cheeks, warmth on the nose tip and ears' height, slightly darker neck.
    cheek = np.exp(-(((np.abs(ph) - 0.56) / 0.20) ** 2) - ((th - lm.mouth_theta - 0.24) / 0.16) ** 2)
    img = _mix(img, ch.blush, 0.38 * cheek)
    nose = np.exp(-((ph / 0.08) ** 2) - ((th - lm.mouth_theta - 0.26) / 0.07) ** 2)
    img = _mix(img, ch.blush, 0.18 * nose)
    neck = smoothstep(-0.85, -1.2, th)
    img *= (1.0 - 0.08 * neck)[..., None]
    # Lips: painted where the sculpt has them, darker at the line where they meet.
    _bulge, lips = lip_profile(ch, lm, ph, th)
    img = _mix(img, ch.lips, 0.92 * lips)
    meet = np.exp(-(((th - lm.mouth_theta) / 0.012) ** 2)) * smoothstep(1.1, 0.7, np.abs(ph / lm.mouth_half_width))
    img *= (1.0 - 0.35 * meet)[..., None]
    # Eyes: a soft lid tone, a crisp upper lash line thickening outward, a faint lower one.
    i_eye = int(np.argmin(np.abs(head.theta_rows - lm.eye_theta)))
    for sign in (1.0, -1.0):
        a = (ph - sign * lm.eye_phi) / lm.eye_half_width * sign
        t = th - lm.eye_theta
        lid = np.exp(-((a / 1.1) ** 2) - ((t - 0.07) / 0.09) ** 2) * (t > 0)
        img = _mix(img, np.asarray(ch.blush) * 0.8, 0.22 * lid)
        # The lash line sits on the texture rows just above the rim (in row units, so it is crisp).
        above = i_eye - rowg
        thick = (0.9 + 1.1 * smoothstep(-0.6, 1.0, a)) * (0.6 + 0.4 * ch.lashes)
        upper = smoothstep(thick + 0.35, thick - 0.35, above) * smoothstep(-0.6, -0.25, above)
        span = smoothstep(1.02 + 0.12 * ch.lashes, 0.85, a) * smoothstep(-1.05, -0.9, a)
        # A little flick past the outer corner for the more made-up character.
        flick = ch.lashes * np.exp(-(((a - 1.08) / 0.08) ** 2) - ((above - 0.9 - (a - 1.0) * 6) / 0.5) ** 2)
        img = _mix(img, (0.035, 0.025, 0.022), np.clip(upper * span * (0.55 + 0.45 * ch.lashes) + flick, 0, 1))
        below = rowg - i_eye
        lower = smoothstep(0.0, 0.25, below) * smoothstep(1.1, 0.5, below) * smoothstep(1.0, 0.6, np.abs(a))
        img = _mix(img, np.asarray(ch.skin) * 0.55, 0.35 * lower)
    # The mouth interior: dark red near the lips fading to near black at the throat.
    bag = v >= BAG_V0
    f = np.clip((v - BAG_V0) / (1.0 - BAG_V0), 0.0, 1.0)
    dark = np.clip(f * 1.6, 0.0, 1.0) ** 0.7
    interior = np.stack([0.26 - 0.23 * dark, 0.05 - 0.045 * dark, 0.05 - 0.045 * dark], -1)
    img[bag] = np.broadcast_to(interior[:, None, :], (size, size, 3))[bag]
    return _png(img)


def eye_texture(ch: Character, size: int = 256) -> bytes:
    """Eyeball with the pole at the pupil: u is the angle around the view axis, v the angle from it."""
    h, w = size, size
    v = (np.arange(h) + 0.5) / h * np.pi  # angle from the view axis
    u = (np.arange(w) + 0.5) / w * 2 * np.pi
    uu, vv = np.meshgrid(u, v)
    img = np.empty((h, w, 3))
    img[:] = (0.90, 0.88, 0.85)
    # Faint warm tint toward the back of the eyeball.
    img = _mix(img, (0.85, 0.62, 0.58), 0.35 * smoothstep(0.9, 1.6, vv))
    r = vv / ch.iris_size  # 0 at the pupil centre, 1 at the iris edge
    streaks = _value_noise((h, w), (6, 48), 11)
    iris = np.asarray(ch.iris_colour) * (0.75 + 0.5 * streaks[..., None])
    # Lighter ring around the pupil, darker limbal ring at the edge.
    iris = iris * (1.0 + 0.55 * np.exp(-(((r - 0.5) / 0.12) ** 2)))[..., None]
    iris = iris * (1.0 - 0.65 * smoothstep(0.72, 0.98, r))[..., None]
    img = _mix(img, iris, smoothstep(1.03, 0.97, r))
    pupil = smoothstep(0.42, 0.38, r)
    img = _mix(img, (0.01, 0.01, 0.012), pupil)
    del uu
    return _png(img)


def hair_texture(ch: Character, size: int = 256) -> bytes:
    """Strand streaks running along v (from crown to tips)."""
    coarse = _value_noise((size, size), (2, 40), 21)
    fine = _value_noise((size, size), (4, 120), 22)
    shade = 0.70 + 0.35 * coarse + 0.25 * (fine - 0.5)
    img = np.asarray(ch.hair_colour)[None, None, :] * shade[..., None]
    # A soft sheen band.
    v = (np.arange(size) + 0.5) / size
    band = np.exp(-(((v - 0.3) / 0.12) ** 2))[:, None] * (0.6 + 0.4 * coarse)
    img = img + (np.asarray(ch.hair_colour) * 0.6 + 0.06)[None, None, :] * band[..., None] * 0.5
    return _png(img)


def cloth_texture(ch: Character, size: int = 256) -> bytes:
    """Knit ribs (sweater) or brushed cotton (hoodie), tiled."""
    x = (np.arange(size) + 0.5) / size
    xx, yy = np.meshgrid(x, x)
    noise = _value_noise((size, size), (32, 32), 31)
    if ch.cloth_style == "sweater":
        rib = 0.5 + 0.5 * np.cos(xx * 2 * np.pi * 24)
        vee = 0.5 + 0.5 * np.cos((yy * 48 + np.abs(((xx * 24) % 1.0) - 0.5) * 2) * 2 * np.pi)
        shade = 0.78 + 0.14 * rib + 0.08 * vee + 0.06 * (noise - 0.5)
    else:
        shade = 0.90 + 0.10 * noise + 0.03 * np.cos(yy * 2 * np.pi * 64)
    img = np.asarray(ch.cloth_colour)[None, None, :] * shade[..., None]
    return _png(img)
