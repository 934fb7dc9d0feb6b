"""Materials against a reference: the renderer's glTF metallic-roughness shading under the studio
lights, compared with a small numpy renderer written from the Khronos formulas.

The scenes are spheres of known materials, one per frame. The reference does not rasterize: it
casts each pixel's ray at the exact sphere (the renderer draws a tessellated one), takes the
position, normal and texture coordinates there and shades them with the glTF 2.0 BRDF (GGX
distribution, height-correlated Smith visibility, Schlick's Fresnel with F0 = mix(0.04, base,
metallic), Lambert diffuse x (1 - F) x (1 - metallic)), the three directional lights and the
hemisphere environment of docs/concepts.md, then tone-maps with the exact ACES fit and gamma 1/2.2.

Tolerance: the mean colour of each material (over the pixels both cover, two pixels in from the
outline, and on the textured spheres two texels away from the edges of the texture's bands, which
the renderer filters and the reference reads texel by texel) agrees within MEAN_TOLERANCE (1 of
255) per channel, and 99 % of its pixels within PIXEL_TOLERANCE (4 of 255). What is allowed to
differ:
- the renderer's tone curve is a rational fit of ACES followed by gamma, within 0.73 / 255;
- 8-bit output, and blending in 8 bits (the blended sphere's colour is read back divided by its
  alpha, doubling the rounding error);
- the tessellated sphere (192 x 96 quads): per-vertex normals interpolated across flat facets;
- rough dielectrics are lit per vertex (and glossy ones all but the key light's distribution term),
  interpolated across each triangle: lighting is not linear, so a triangle's inside differs from
  the exact value by a fraction of a level on a mesh this dense.
Measured on llvmpipe: mean differences of at most 0.6 / 255 (0.2 but for the unlit and blended
spheres, whose flat colours land near half a level, where rounding does not average out), and 99 %
of pixels within 1.6 / 255; the tolerances leave room for other GPUs' arithmetic. A wrong
formula moves a mean by far more: the green channel of a normal map read upside down by 31 levels.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from avatarkit._core import render
from avatarkit.view import _look_at, _perspective

from render_helpers import require_gl

SIZE = 160
EYE = np.array([0.0, 0.0, 0.6])
FOV_Y = 30.0
RADIUS = 0.1
MEAN_TOLERANCE = 1.0
PIXEL_TOLERANCE = 4

# The studio setup (docs/concepts.md, "Materials and light"): directions towards each light and
# their irradiance; the environment's radiance above and below the horizon.
LIGHTS = [
    ((-0.5265, 0.5736, 0.6275), (3.25, 3.1, 2.9)),  # key
    ((0.8067, 0.1736, 0.5649), (0.8, 0.82, 0.88)),  # fill
    ((0.3971, 0.3420, -0.8516), (1.6, 1.6, 1.7)),  # rim
]
SKY = np.array([0.23, 0.235, 0.25])
GROUND = np.array([0.12, 0.105, 0.09])
MIN_ROUGHNESS = 0.08


@pytest.fixture(scope="module", autouse=True)
def _gl() -> None:
    require_gl()


def uv_sphere(rows: int = 96, cols: int = 192) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positions, normals, texture coordinates (u along longitude, v from the north pole down) and
    counter-clockwise triangles of a sphere of RADIUS; longitude 0 faces +Z, u grows towards +X."""
    lat, lon = np.meshgrid(np.linspace(0, np.pi, rows + 1), np.linspace(0, 2 * np.pi, cols + 1), indexing="ij")
    unit = np.stack([np.sin(lat) * np.sin(lon), np.cos(lat), np.sin(lat) * np.cos(lon)], -1).reshape(-1, 3)
    uv = np.stack([lon / (2 * np.pi), lat / np.pi], -1).reshape(-1, 2)
    w = cols + 1
    a = (np.arange(rows)[:, None] * w + np.arange(cols)[None, :]).reshape(-1)
    b, c = a + 1, a + w
    idx = np.stack([a, c, b, b, c, c + 1], -1).reshape(-1)
    return (unit * RADIUS).astype(np.float32), unit.astype(np.float32), uv.astype(np.float32), idx.astype(np.uint32)


@dataclasses.dataclass
class Mat:
    """A test material; textures are (H, W, 4) uint8 arrays, as the renderer gets them."""

    base: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    metallic: float = 0.0
    roughness: float = 0.5
    base_tex: np.ndarray | None = None
    mr_tex: np.ndarray | None = None
    normal_tex: np.ndarray | None = None
    normal_scale: float = 1.0
    occlusion_tex: np.ndarray | None = None
    occlusion_strength: float = 1.0
    emissive: tuple[float, float, float] = (0.0, 0.0, 0.0)
    alpha_mode: str = "OPAQUE"
    double_sided: bool = False
    unlit: bool = False
    inside: bool = False  # draw only the far half of the sphere, seen from inside


def bands(*colours: tuple[int, int, int, int], height: int = 16) -> np.ndarray:
    """A texture of vertical bands, one per colour, 16 texels each, across u."""
    row = np.repeat(np.array(colours, np.uint8), 16, axis=0)
    return np.ascontiguousarray(np.broadcast_to(row, (height, *row.shape)))


def encode_normal(x: float, y: float) -> tuple[int, int, int, int]:
    z = math.sqrt(1 - x * x - y * y)
    return (*(round((c + 1) / 2 * 255) for c in (x, y, z)), 255)  # type: ignore[return-value]


MATERIALS = {
    "rough dielectric (per vertex)": Mat(base=(0.8, 0.3, 0.2, 1.0), roughness=0.8),
    "skin-like dielectric (per vertex)": Mat(base=(0.75, 0.5, 0.4, 1.0), roughness=0.55),
    "glossy dielectric": Mat(base=(0.2, 0.35, 0.8, 1.0), roughness=0.3),
    "gold": Mat(base=(1.0, 0.77, 0.34, 1.0), metallic=1.0, roughness=0.35),
    "half metal": Mat(base=(0.5, 0.6, 0.5, 1.0), metallic=0.5, roughness=0.6),
    "base colour texture (sRGB)": Mat(
        base=(1.0, 0.9, 0.8, 1.0),
        roughness=0.7,
        base_tex=bands((200, 40, 40, 255), (40, 160, 60, 255), (230, 230, 230, 255), (30, 30, 120, 255)),
    ),
    "metallic-roughness texture": Mat(
        base=(0.9, 0.6, 0.3, 1.0),
        metallic=1.0,
        roughness=1.0,
        mr_tex=bands((0, 60, 0, 255), (0, 230, 255, 255), (0, 90, 255, 255), (0, 160, 128, 255)),
    ),
    "normal texture": Mat(
        base=(0.6, 0.6, 0.6, 1.0),
        roughness=0.45,
        normal_tex=bands(*(encode_normal(x, y) for x, y in ((0.0, 0.6), (0.5, 0.0), (-0.4, -0.4), (0.0, 0.0)))),
    ),
    "occlusion texture": Mat(
        base=(0.7, 0.7, 0.7, 1.0),
        roughness=0.9,
        occlusion_tex=bands((0, 0, 0, 255), (128, 0, 0, 255)),
        occlusion_strength=0.8,
    ),
    "emissive": Mat(base=(0.1, 0.1, 0.1, 1.0), roughness=0.9, emissive=(0.6, 0.3, 0.05)),
    "unlit, textured": Mat(
        base=(0.9, 0.8, 1.0, 1.0),
        unlit=True,
        base_tex=bands((200, 40, 40, 255), (40, 160, 60, 255), (230, 230, 230, 255), (30, 30, 120, 255)),
    ),
    "alpha blend": Mat(base=(0.3, 0.8, 0.3, 0.5), roughness=0.6, alpha_mode="BLEND"),
    "double-sided, inside": Mat(base=(0.7, 0.6, 0.3, 1.0), roughness=0.5, double_sided=True, inside=True),
    "double-sided, inside (per vertex)": Mat(base=(0.3, 0.5, 0.7, 1.0), roughness=0.9, double_sided=True, inside=True),
    "double-sided, inside (per pixel)": Mat(
        base=(0.7, 0.6, 0.3, 1.0), metallic=0.3, roughness=0.5, double_sided=True, inside=True
    ),
}


def render_material(mat: Mat) -> np.ndarray:
    from avatarkit.gl.egl import EglContext

    ctx = EglContext()
    try:
        r = render.Renderer(ctx.proc_address, SIZE, SIZE, 0)
        r.set_antialiasing(0, False)
        r.set_background(0, 0, 0, 0)

        def tex(image: np.ndarray | None, srgb: bool) -> int:
            return -1 if image is None else int(r.add_texture(image, srgb))

        m = r.add_material(
            base_color=mat.base,
            base_color_texture=tex(mat.base_tex, True),
            metallic_roughness_texture=tex(mat.mr_tex, False),
            normal_texture=tex(mat.normal_tex, False),
            normal_scale=mat.normal_scale,
            occlusion_texture=tex(mat.occlusion_tex, False),
            occlusion_strength=mat.occlusion_strength,
            emissive=mat.emissive,
            metallic=mat.metallic,
            roughness=mat.roughness,
            alpha_mode=getattr(render.AlphaMode, mat.alpha_mode),
            double_sided=mat.double_sided,
            unlit=mat.unlit,
        )
        pos, nrm, uv, idx = uv_sphere()
        if mat.inside:
            tri = idx.reshape(-1, 3)
            idx = np.ascontiguousarray(tri[pos[tri].mean(axis=1)[:, 2] < 0].reshape(-1))
        r.add_mesh(pos, nrm, uv, idx, m)
        r.set_camera(_look_at(EYE, (0, 0, 0)), _perspective(FOV_Y, 1.0, 0.05, 10.0), EYE.tolist())
        r.render()
        image = np.asarray(r.read_pixels()).copy()
        assert r.gl_error() == 0
        r.close()
    finally:
        ctx.close()
    return image


# -- the reference ---------------------------------------------------------------------------------


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def sample(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """The nearest texel (repeat wrapping), as floats in [0, 1]."""
    h, w = image.shape[:2]
    x = np.floor(uv[:, 0] * w).astype(int) % w
    y = np.floor(uv[:, 1] * h).astype(int) % h
    return image[y, x].astype(np.float64) / 255.0


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1, keepdims=True)


def normalize(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def brdf_light(n, v, base, metallic, alpha2, light_dir, irradiance):  # type: ignore[no-untyped-def]
    """Outgoing radiance from one directional light (glTF 2.0 Appendix B)."""
    ll = np.asarray(light_dir, np.float64)
    e = np.asarray(irradiance, np.float64)
    h = normalize(ll + v)
    ndl = np.clip(dot(n, ll), 0, None)
    ndv = np.clip(dot(n, v), 1e-4, None)
    ndh = np.clip(dot(n, h), 0, None)
    vdh = np.clip(dot(v, h), 0, None)
    f0 = 0.04 * (1 - metallic) + base * metallic
    f = f0 + (1 - f0) * (1 - vdh) ** 5
    d = alpha2 / (np.pi * (ndh**2 * (alpha2 - 1) + 1) ** 2)
    k = 1 - alpha2
    vis = 0.5 / np.maximum(ndl * np.sqrt(ndv**2 * k + alpha2) + ndv * np.sqrt(ndl**2 * k + alpha2), 1e-6)
    diffuse = (1 - f) * base * (1 - metallic) / np.pi
    return (diffuse + f * d * vis) * e * ndl


def environment(n, v, base, metallic, roughness, ao):  # type: ignore[no-untyped-def]
    """The hemisphere: exact diffuse irradiance of a two-colour sky; specular by the split sum."""

    def radiance(d: np.ndarray) -> np.ndarray:
        t = d[:, 1:2] * 0.5 + 0.5
        return GROUND + (SKY - GROUND) * t

    ndv = np.clip(dot(n, v), 1e-4, None)
    f0 = 0.04 * (1 - metallic) + base * metallic
    # Karis, "Physically Based Shading on Mobile": the pre-integrated GGX BRDF as F0 * a + b.
    c0 = np.array([-1.0, -0.0275, -0.572, 0.022])
    c1 = np.array([1.0, 0.0425, 1.04, -0.04])
    r = roughness * c0 + c1
    a004 = np.minimum(r[:, 0:1] ** 2, 2 ** (-9.28 * ndv)) * r[:, 0:1] + r[:, 1:2]
    a, b = -1.04 * a004 + r[:, 2:3], 1.04 * a004 + r[:, 3:4]
    reflected = 2 * dot(n, v) * n - v
    return (base * (1 - metallic) * radiance(n) + radiance(reflected) * (f0 * a + b)) * ao


def aces_gamma(c: np.ndarray) -> np.ndarray:
    """Narkowicz's ACES fit, then display gamma 1/2.2."""
    c = np.maximum(c, 0)
    mapped = np.clip(c * (2.51 * c + 0.03) / (c * (2.43 * c + 0.59) + 0.14), 0, 1)
    return mapped ** (1 / 2.2)


def reference(mat: Mat) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The frame the reference sees: RGB in [0, 255] (float), which pixels the sphere covers, the
    material's alpha there and which are away from the edges of texture bands (the renderer
    filters the texture across them)."""
    j, i = np.mgrid[0:SIZE, 0:SIZE]
    t = math.tan(math.radians(FOV_Y) / 2)
    x = ((i + 0.5) / SIZE * 2 - 1) * t
    y = (1 - (j + 0.5) / SIZE * 2) * t
    d = normalize(np.stack([x, y, -np.ones_like(x)], -1).reshape(-1, 3))
    # |EYE + s d|^2 = R^2
    bq = dot(EYE, d)[:, 0]
    disc = bq**2 - (EYE @ EYE - RADIUS**2)
    hit = disc > 0
    root = np.sqrt(np.maximum(disc, 0))
    s = -bq + root if mat.inside else -bq - root
    p = EYE + s[:, None] * d
    outward = p / RADIUS
    if mat.inside:
        hit &= p[:, 2] < 0
    n = -outward if mat.inside else outward
    lat = np.arccos(np.clip(outward[:, 1], -1, 1))
    lon = np.arctan2(outward[:, 0], outward[:, 2]) % (2 * np.pi)
    uv = np.stack([lon / (2 * np.pi), lat / np.pi], -1)
    v = normalize(EYE - p)

    base = np.broadcast_to(np.array(mat.base[:3], np.float64), p.shape).copy()
    alpha = np.full((len(p), 1), mat.base[3])
    if mat.base_tex is not None:
        texel = sample(mat.base_tex, uv)
        base *= srgb_to_linear(texel[:, :3])
        alpha *= texel[:, 3:4]
    metallic = np.full((len(p), 1), mat.metallic)
    roughness = np.full((len(p), 1), mat.roughness)
    if mat.mr_tex is not None:
        texel = sample(mat.mr_tex, uv)
        roughness *= texel[:, 1:2]
        metallic *= texel[:, 2:3]
    roughness = np.clip(roughness, MIN_ROUGHNESS, 1)
    if mat.normal_tex is not None:
        # Tangent along increasing u; glTF's bitangent is n x t (up in the image).
        tangent = normalize(np.cross(np.array([0.0, 1.0, 0.0]), outward) + 1e-12)
        bitangent = np.cross(n, tangent)
        m = sample(mat.normal_tex, uv)[:, :3] * 2 - 1
        m[:, :2] *= mat.normal_scale
        n = normalize(tangent * m[:, 0:1] + bitangent * m[:, 1:2] + n * m[:, 2:3])
    ao = np.ones((len(p), 1))
    if mat.occlusion_tex is not None:
        ao = 1 + mat.occlusion_strength * (sample(mat.occlusion_tex, uv)[:, 0:1] - 1)
    alpha2 = roughness**4
    texels = uv[:, 0] * 64  # the bands: 16 texels each, 64 across
    clear = np.abs(texels - 16 * np.round(texels / 16)) > 2.0
    if mat.unlit:  # KHR_materials_unlit: the base colour, encoded for display
        rgb = np.clip(base, 0, 1) ** (1 / 2.2) * 255
        return rgb.reshape(SIZE, SIZE, 3), hit.reshape(SIZE, SIZE), alpha.reshape(SIZE, SIZE), clear.reshape(SIZE, SIZE)
    colour = environment(n, v, base, metallic, roughness, ao)
    for light_dir, irradiance in LIGHTS:
        colour = colour + brdf_light(n, v, base, metallic, alpha2, light_dir, irradiance)
    colour = colour + np.asarray(mat.emissive)
    rgb = aces_gamma(colour) * 255  # straight alpha: a blended material reads back its own colour
    return rgb.reshape(SIZE, SIZE, 3), hit.reshape(SIZE, SIZE), alpha.reshape(SIZE, SIZE), clear.reshape(SIZE, SIZE)


def erode(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        out &= np.roll(out, 1, 0) & np.roll(out, -1, 0) & np.roll(out, 1, 1) & np.roll(out, -1, 1)
    return out


@pytest.mark.parametrize("name", list(MATERIALS))
def test_material_matches_the_reference_renderer(name: str) -> None:
    mat = MATERIALS[name]
    image = render_material(mat)
    expected, covered, _, clear = reference(mat)
    drawn = image[..., 3] > 0
    # The outlines agree (the tessellated sphere is inside the exact one by under a pixel).
    assert (drawn ^ covered).sum() <= 0.03 * covered.sum(), (drawn ^ covered).sum()
    inner = erode(covered & drawn, 2)
    if any(t is not None for t in (mat.base_tex, mat.mr_tex, mat.normal_tex, mat.occlusion_tex)):
        inner &= clear
    assert inner.sum() > 1000
    got = image[..., :3][inner].astype(np.float64)
    want = expected[inner]
    mean_diff = np.abs(got.mean(axis=0) - want.mean(axis=0))
    pixel_diff = np.abs(got - want).max(axis=1)
    print(f"{name}: mean {got.mean(axis=0).round(1)} vs {want.mean(axis=0).round(1)} ({mean_diff.max():.2f}), "
          f"p99 {np.percentile(pixel_diff, 99):.1f}")  # fmt: skip
    assert mean_diff.max() <= MEAN_TOLERANCE, f"{name}: mean colour off by {mean_diff.round(2)}"
    assert np.percentile(pixel_diff, 99) <= PIXEL_TOLERANCE, f"{name}: {np.percentile(pixel_diff, 99):.1f}"
    if mat.alpha_mode == "BLEND":
        assert np.abs(image[..., 3][inner].astype(int) - round(mat.base[3] * 255)).max() <= 1
    else:
        assert (image[..., 3][inner] == 255).all()


def test_alpha_mask_cuts_where_the_texture_is_under_the_cutoff() -> None:
    opacity = bands(*((255, 255, 255, a) for a in (255, 40, 200, 100)))
    mat = Mat(base=(0.8, 0.8, 0.8, 1.0), roughness=0.7, alpha_mode="MASK", base_tex=opacity)
    image = render_material(mat)
    _, covered, alpha, _ = reference(mat)
    drawn = image[..., 3] > 0
    kept = covered & (alpha >= 0.5)
    # Bands 1 and 3 (alpha 40 and 100 of 255) fall under the default cutoff 0.5: about half the
    # sphere is cut away, the same half as in the reference (but along the bands' edges, where the
    # renderer filters the texture), and what stays is opaque.
    assert 0.35 < kept.sum() / covered.sum() < 0.65
    assert (drawn ^ kept).sum() <= 0.05 * kept.sum(), (drawn ^ kept).sum()
    assert (image[..., 3][drawn] == 255).all()


# -- the glTF path: AvatarView hands every map of a material to the renderer ---------------------------


def sphere_glb(path, material: dict, images: list[np.ndarray]):  # type: ignore[no-untyped-def]
    """A glTF file of one sphere at head height with one material (texture i shows images[i])."""
    from gltf_builder import GltfBuilder

    b = GltfBuilder()
    for i, image in enumerate(images):
        b.image_png(image)
        b.add("textures", {"source": i})
    pos, nrm, uv, idx = uv_sphere(48, 96)
    mat = b.add("materials", material)
    attributes = {"POSITION": b.accessor(pos, minmax=True), "NORMAL": b.accessor(nrm), "TEXCOORD_0": b.accessor(uv)}
    primitive = {"attributes": attributes, "indices": b.accessor(idx), "material": mat}
    mesh = b.add("meshes", {"name": "Head", "primitives": [primitive]})
    node = b.add("nodes", {"name": "Head", "mesh": mesh, "translation": [0, 1.6, 0]})
    b.doc["scenes"] = [{"nodes": [node]}]
    b.doc["scene"] = 0
    path.write_bytes(b.glb())
    return path


def test_view_uses_the_metallic_roughness_and_occlusion_maps(tmp_path) -> None:
    """A material whose maps hold constant values renders as the same material with those values
    in its factors (the view used to average the metallic-roughness map and drop occlusion); the
    maps change the picture (a metal, a glossy one, dimmer ambient)."""
    from avatarkit.manager import AvatarManager
    from avatarkit.view import AvatarView, HeadlessSurface

    def frame(name: str, material: dict, images: list[np.ndarray]) -> np.ndarray:
        glb = sphere_glb(tmp_path / f"{name}.glb", material, images)
        avatar = AvatarManager(cache_dir=tmp_path / "cache").derive(glb)
        with AvatarView(HeadlessSurface(96, 96, antialias="none"), avatar, background=None) as view:
            zeros = np.zeros(len(view.controller.channels), np.float32)
            view.controller.mixer.idle.sample = lambda t: zeros.copy()  # type: ignore[method-assign]
            return view.render_frame_sync(0.0).image.astype(int)

    base = {"baseColorFactor": [0.9, 0.6, 0.3, 1]}
    orm = np.full((8, 8, 4), (102, 77, 255, 255), np.uint8)  # occlusion 0.4, roughness 0.3, metal 1
    with_map = {**base, "metallicFactor": 1, "roughnessFactor": 1, "metallicRoughnessTexture": {"index": 0}}
    occlusion = {"index": 0, "strength": 1.0}
    mapped = frame("mapped", {"pbrMetallicRoughness": with_map, "occlusionTexture": occlusion}, [orm])
    factors = frame("factors", {"pbrMetallicRoughness": {**base, "metallicFactor": 1, "roughnessFactor": 77 / 255}}, [])
    plain = frame("plain", {"pbrMetallicRoughness": {**base, "metallicFactor": 0, "roughnessFactor": 1}}, [])
    drawn = mapped[..., 3] > 0
    assert drawn.sum() > 500
    # Occlusion dims only the environment's share, so the mapped sphere is darker than its factors'.
    darker = (factors - mapped)[..., :3][drawn].mean()
    assert 1.0 < darker < 40, darker
    assert np.abs(plain - mapped)[..., :3][drawn].mean() > 10
    # Without the occlusion map the two match.
    no_ao = frame("no_ao", {"pbrMetallicRoughness": with_map}, [orm])
    assert np.abs(no_ao - factors)[..., :3][drawn].max() <= 2
