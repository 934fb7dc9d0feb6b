"""Rendering: the GL renderer and AvatarView, headless on EGL (Mesa llvmpipe here and in CI)."""

from __future__ import annotations

import asyncio
import gc
import pathlib
import threading

import numpy as np
import pytest

from avatarkit._core import render
from avatarkit.errors import AvatarError, AvatarErrorCode
from avatarkit.manager import AvatarManager
from avatarkit.view import AvatarView, HeadlessSurface, _look_at, _perspective

from render_helpers import require_gl, sphere, tiny_avatar_glb


@pytest.fixture(scope="module", autouse=True)
def _gl() -> None:
    require_gl()


@pytest.fixture
def renderer():
    from avatarkit.gl.egl import EglContext

    ctx = EglContext()
    r = render.Renderer(ctx.proc_address, 128, 128, 4)
    pos, nrm, idx = sphere()
    mat = r.add_material(base_color=(0.8, 0.5, 0.4, 1.0))
    r.add_mesh(pos, nrm, None, idx, mat)
    r.set_camera(_look_at((0, 0, 0.6), (0, 0, 0)), _perspective(30, 1, 0.05, 10), [0, 0, 0.6])
    yield r
    assert r.gl_error() == 0, "GL error during the test"
    r.close()
    ctx.close()


def alpha_mask(img: np.ndarray) -> np.ndarray:
    return img[..., 3] > 0


def test_transparent_background_is_alpha_zero(renderer) -> None:
    renderer.set_background(0, 0, 0, 0)
    renderer.render()
    img = renderer.read_pixels()
    mask = alpha_mask(img)
    assert mask[64, 64] and not mask[2, 2] and not mask[125, 125]
    assert (img[~mask] == 0).all()
    # Drawn pixels are opaque (straight alpha), and lit: not black.
    assert (img[mask][:, 3] > 200).mean() > 0.9
    assert img[64, 64, :3].mean() > 60


def test_content_transform_moves_and_scales(renderer) -> None:
    renderer.set_background(0, 0, 0, 0)
    renderer.render()
    base = alpha_mask(renderer.read_pixels())
    renderer.set_content_transform(0.25, 0.0, 1.0)
    renderer.render()
    moved = alpha_mask(renderer.read_pixels())
    cx = lambda m: np.nonzero(m)[1].mean()  # noqa: E731
    assert cx(moved) - cx(base) == pytest.approx(16, abs=1)  # x = 0.25 is an eighth of the width
    renderer.set_content_transform(0.0, 0.0, 0.5)
    renderer.render()
    small = alpha_mask(renderer.read_pixels())
    assert small.sum() / base.sum() == pytest.approx(0.25, rel=0.1)
    with pytest.raises(render.RenderError):
        renderer.set_content_transform(0, 0, 0)


def test_background_colour_and_image(renderer) -> None:
    renderer.set_background(1.0, 0.0, 0.0, 1.0)
    renderer.render()
    img = renderer.read_pixels()
    assert tuple(img[2, 2]) == (255, 0, 0, 255)
    image = np.zeros((32, 64, 4), np.uint8)
    image[..., 1] = 200
    image[..., 3] = 255
    renderer.set_background_image(image)
    renderer.render()
    img = renderer.read_pixels()
    assert tuple(img[2, 2]) == (0, 200, 0, 255)
    renderer.set_background_image(None)
    renderer.render()
    assert tuple(renderer.read_pixels()[2, 2]) == (255, 0, 0, 255)


def test_pipelined_readback_matches(renderer) -> None:
    renderer.render()
    direct = renderer.read_pixels()
    renderer.render()
    renderer.start_readback()
    got = renderer.finish_readback()
    assert got is not None
    np.testing.assert_array_equal(got, direct)
    assert renderer.finish_readback() is None


def test_rough_materials_shade_their_highlight_per_vertex_as_glossy_ones_do_per_pixel() -> None:
    """A rough dielectric is lit per vertex (a cheaper shader on llvmpipe); on a dense sphere it
    matches the same material lit per pixel, which a hint of metal (1e-6) asks for, within two
    levels but for a few pixels near the outline (where the rim light's terminator, whose n.l
    clamped at 0 interpolates worst, meets the grazing view). The lobe
    is there: a very rough material renders darker where the key light's highlight sits.
    (tests/test_materials.py compares both with a reference renderer.)"""
    from avatarkit.gl.egl import EglContext

    ctx = EglContext()
    pos, nrm, idx = sphere(96, 192)
    images = {}
    try:
        for name, metallic, roughness in (("vertex", 0.0, 0.55), ("pixel", 1e-6, 0.55), ("rough", 1e-6, 1.0)):
            r = render.Renderer(ctx.proc_address, 128, 128, 0)
            mat = r.add_material(base_color=(0.5, 0.4, 0.35, 1.0), metallic=metallic, roughness=roughness)
            r.add_mesh(pos, nrm, None, idx, mat)
            r.set_camera(_look_at((0, 0, 0.6), (0, 0, 0)), _perspective(30, 1, 0.05, 10), [0, 0, 0.6])
            r.render()
            images[name] = r.read_pixels()[..., :3].astype(int)
            assert r.gl_error() == 0
            r.close()
    finally:
        ctx.close()
    highlight = images["pixel"] - images["rough"]
    assert highlight.max() >= 8  # the lobe shows (13 levels here)
    diff = np.abs(images["vertex"] - images["pixel"]).max(axis=2)
    # 5 levels at most, on 4 pixels near the outline where the rim light's terminator crosses it.
    assert diff.max() <= 6 and diff.mean() < 0.02, (diff.max(), diff.mean())
    assert (diff > 2).sum() <= 12, (diff > 2).sum()


def test_close_frees_every_gl_object() -> None:
    from avatarkit.gl.egl import EglContext

    ctx = EglContext()
    r = render.Renderer(ctx.proc_address, 64, 64, 4)
    before = r.stats()
    pos, nrm, idx = sphere()
    tex = r.add_texture(np.full((8, 8, 4), 255, np.uint8), True)
    mat = r.add_material(base_color_texture=tex)
    r.add_mesh(pos, nrm, None, idx, mat)
    after = r.stats()
    assert after["total"] > before["total"] >= 7
    r.close()
    assert r.closed
    with pytest.raises(render.RenderError, match="closed"):
        r.render()
    ctx.close()


# -- AvatarView ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_avatar(tmp_path_factory: pytest.TempPathFactory):
    path = tiny_avatar_glb(tmp_path_factory.mktemp("tiny") / "tiny.glb")
    return AvatarManager(cache_dir=tmp_path_factory.mktemp("cache")).derive(path)


def still(view: AvatarView) -> None:
    """Freeze idle life so two renders differ only by what a test sets."""
    zeros = np.zeros(len(view.controller.channels), np.float32)
    view.controller.mixer.idle.sample = lambda t: zeros.copy()  # type: ignore[method-assign]


def test_view_renders_and_morphs_locally(tiny_avatar) -> None:
    with AvatarView(HeadlessSurface(96, 96), tiny_avatar, background=None) as view:
        still(view)
        neutral = view.render_frame_sync(0.0).image
        view.controller.set_channels({"jawOpen": 1.0})
        jaw = view.render_frame_sync(0.0).image
        view.check_gl_errors()
    changed = np.abs(neutral.astype(int) - jaw.astype(int)).sum(axis=2) > 30
    rows = np.nonzero(changed)[0]
    assert changed.sum() > 20
    # The lower half moved; the top of the head did not.
    top = np.nonzero(alpha_mask(neutral))[0].min()
    assert rows.min() > top + 10


def test_antialiasing_modes_smooth_silhouettes(tiny_avatar) -> None:
    """Off, the silhouette on a transparent background is hard (alpha 0 or 255); both filters soften it."""
    covered = {}
    for mode, expected in (("none", "none"), ("fxaa", "fxaa"), ("msaa", "msaa 4x")):
        surface = HeadlessSurface(96, 96, samples=4, antialias=mode)
        with AvatarView(surface, tiny_avatar, background=None) as view:
            still(view)
            alpha = view.render_frame_sync(0.0).image[..., 3]
            assert view.gl_info()["antialiasing"] == expected
            view.check_gl_errors()
        partial = int(((alpha > 0) & (alpha < 255)).sum())
        if mode == "none":
            assert partial == 0
        else:
            assert partial > 20, f"{mode}: only {partial} edge pixels are partly covered"
        covered[mode] = int((alpha > 127).sum())
    # Smoothing edges does not grow or eat the avatar.
    for mode in ("fxaa", "msaa"):
        assert covered[mode] == pytest.approx(covered["none"], rel=0.03)


def test_antialias_auto_and_bad_mode(tiny_avatar) -> None:
    with AvatarView(HeadlessSurface(32, 32), tiny_avatar) as view:
        software = "llvmpipe" in view.gl_info()["renderer"] or "softpipe" in view.gl_info()["renderer"]
        assert view.gl_info()["antialiasing"] == ("fxaa" if software else "msaa 4x")
    with AvatarView(HeadlessSurface(32, 32, samples=0), tiny_avatar) as view:
        assert view.gl_info()["antialiasing"] == "none"
    with pytest.raises(AvatarError, match="antialias must be one of") as err:
        AvatarView(HeadlessSurface(32, 32, antialias="ssaa"), tiny_avatar)
    assert err.value.code is AvatarErrorCode.INVALID_ARGUMENT


def test_view_api_and_destroy(tiny_avatar) -> None:
    view = AvatarView(HeadlessSurface(64, 48), tiny_avatar)
    seen: list[bool] = []
    view.on_first_rendering = lambda: seen.append(True)
    assert view.controller is view.avatar_controller
    frame = view.render_frame_sync()
    assert frame.image.shape == (48, 64, 4) and frame.image.dtype == np.uint8
    assert seen == [True]
    png = view.export_bitmap()
    assert png.startswith(b"\x89PNG")

    async def two_frames() -> list[float]:
        out = []
        async for f in view.frames(fps=50, realtime=False):
            out.append(f.timestamp)
            if len(out) == 2:
                break
        return out

    stamps = asyncio.run(two_frames())
    assert stamps[1] - stamps[0] == pytest.approx(0.02)
    view.pause_rendering()
    assert view.is_rendering_paused
    view.resume_rendering()
    with pytest.raises(AvatarError):
        view.set_transform(2.0, 0.0, 1.0)
    view.destroy()
    view.destroy()  # idempotent
    with pytest.raises(AvatarError) as info:
        view.render_frame_sync()
    assert info.value.code is AvatarErrorCode.DESTROYED


def test_views_are_independent(tiny_avatar) -> None:
    a = AvatarView(HeadlessSurface(64, 64), tiny_avatar, background=None)
    b = AvatarView(HeadlessSurface(64, 64), tiny_avatar, background=None)
    try:
        still(a)
        still(b)
        a.controller.set_channels({"jawOpen": 1.0})
        img_a, img_b = a.render_frame_sync(0).image, b.render_frame_sync(0).image
        assert np.abs(img_a.astype(int) - img_b.astype(int)).max() > 30
        b.controller.set_channels({"jawOpen": 1.0})
        np.testing.assert_array_equal(a.render_frame_sync(0).image, b.render_frame_sync(0).image)
    finally:
        a.destroy()
        b.destroy()


def _rss_kib() -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.slow
def test_200_views_leak_nothing(tiny_avatar) -> None:
    threads = threading.active_count()
    seen: list[dict[str, int]] = []

    def cycle() -> None:
        view = AvatarView(HeadlessSurface(32, 32), tiny_avatar)
        view.render_frame_sync(0)
        seen.append(view.gl_stats())
        view.destroy()

    for _ in range(20):  # warm up allocators and the driver's caches
        cycle()
    gc.collect()
    start = _rss_kib()
    for _ in range(200):
        cycle()
    gc.collect()
    grown = _rss_kib() - start
    assert threading.active_count() == threads
    assert all(stats == seen[0] for stats in seen), "a view holds more GL objects than the one before"
    assert grown < 16 * 1024, f"RSS grew by {grown} KiB over 200 views"


@pytest.mark.parametrize("lanes", [1, 2])
def test_frames_rendered_in_a_batch_match_frames_rendered_one_by_one(tiny_avatar, lanes: int) -> None:
    """render_frames_sync poses each next frame while the current one is drawn, on one context or
    two: the pictures must be exactly those of rendering each time on its own, in any order of
    times, with the view's background, transform and camera on both contexts."""
    threads = threading.active_count()
    with AvatarView(HeadlessSurface(64, 64), tiny_avatar, background=None) as view:
        still(view)
        view.set_transform(0.1, -0.05, 0.9)
        view.camera.yaw_deg = 12.0
        view.set_background((0.2, 0.5, 0.3, 0.5))
        names = list(view.controller.channels)
        motion = np.zeros((25, len(names)), np.float32)
        motion[:, names.index("jawOpen")] = np.linspace(0.0, 1.0, 25)
        view.controller.play_motion(motion, start=100.0)
        times = [100.9, 100.1, 100.5, 100.3, 100.7, 100.2, 100.6]
        before = dict(view.stage_seconds)
        batch = [f.image for f in view.render_frames_sync(times, lanes=lanes)]
        assert view.stage_seconds["render"] > before["render"]
        assert threading.active_count() == threads + lanes  # the second lane is kept for the next batch
        single = [view.render_frame_sync(t).image for t in times]
        # The kept lane follows what changed since it was made.
        view.set_transform(-0.1, 0.05, 1.1)
        view.set_background((0.9, 0.1, 0.1, 1.0))
        again = [f.image for f in view.render_frames_sync(times[:3], lanes=lanes)]
        assert all(np.array_equal(a, view.render_frame_sync(t).image) for t, a in zip(times, again, strict=False))
        view.check_gl_errors()
        with pytest.raises(AvatarError, match="lanes"):
            next(view.render_frames_sync(times, lanes=3))
    assert threading.active_count() == threads  # destroy() ends every lane
    assert len(batch) == len(times)
    for t, a, b in zip(times, batch, single, strict=True):
        assert np.array_equal(a, b), f"frame at {t} differs"
    assert not np.array_equal(batch[0], batch[1])  # the motion shows: the frames are not all alike


def test_edge_filter_covers_the_frame_when_the_camera_is_inside_the_avatar(tiny_avatar) -> None:
    """A vertex at or behind the eye makes the filter's tile search give up and filter everything."""
    with AvatarView(HeadlessSurface(64, 64, antialias="fxaa"), tiny_avatar) as view:
        still(view)
        view.render_frame_sync(0.0)
        area = view._call(lambda: view._scene.renderer.filtered_pixels).result()
        assert 0 < area < 64 * 64
        view.camera.distance = 1e-3  # inside the mesh: some vertices are behind the eye
        view.set_transform(0.0, 0.0, 1e30)  # and an absurd zoom on top
        image = view.render_frame_sync(0.0).image
        assert view._call(lambda: view._scene.renderer.filtered_pixels).result() == 64 * 64
        view.check_gl_errors()
    assert image.shape == (64, 64, 4)
