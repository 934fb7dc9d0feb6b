"""``rgba_to_i420``: the rendered frame straight to the planar YUV 4:2:0 that H.264 takes, without swscale."""

from __future__ import annotations

import pathlib

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from avatarkit._core.render import RenderError, rgba_to_i420
from avatarkit.media import _plane_array

# BT.601, limited range: Y = 16 + 219 * luma, Cb and Cr = 128 + 224 * colour difference (inputs 0..1).
KR, KB = 0.299, 0.114
KG = 1.0 - KR - KB


def reference(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The conversion written out in floating point: composite over black, convert, 2x2 box chroma."""
    # Composited over black to whole levels first, as the frame a format without alpha shows.
    rgb = ((rgba[..., :3].astype(np.int64) * rgba[..., 3:4] + 127) // 255).astype(np.float64)
    r, g, b = (rgb[..., i] / 255.0 for i in range(3))
    luma = KR * r + KG * g + KB * b
    y = 16 + 219 * luma
    h, w = rgba.shape[:2]
    # An odd last row or column repeats its edge.
    padded = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") / 255.0
    mean = padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2, 3).mean(axis=(1, 3))
    mluma = KR * mean[..., 0] + KG * mean[..., 1] + KB * mean[..., 2]
    u = 128 + 224 * (mean[..., 2] - mluma) / (2 * (1 - KB))
    v = 128 + 224 * (mean[..., 0] - mluma) / (2 * (1 - KR))
    return y, u, v


def convert(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = rgba.shape[:2]
    y = np.empty((h, w), np.uint8)
    u, v = np.empty(((h + 1) // 2, (w + 1) // 2), np.uint8), np.empty(((h + 1) // 2, (w + 1) // 2), np.uint8)
    rgba_to_i420(rgba, y, u, v)
    return y, u, v


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 19), st.integers(1, 19), st.just(4))))
def test_matches_the_formula_for_any_size_and_alpha(rgba: np.ndarray) -> None:
    """Every plane within rounding (1 level) of the floating-point conversion, odd sizes included."""
    for ours, exact in zip(convert(rgba), reference(rgba), strict=True):
        assert ours.shape == exact.shape
        assert np.abs(ours.astype(np.float64) - exact).max() <= 0.51 + 1e-9


def test_known_colours() -> None:
    """Black, white and the primaries land where BT.601 limited range puts them."""
    colours = {
        (0, 0, 0): (16, 128, 128),
        (255, 255, 255): (235, 128, 128),
        (128, 128, 128): (126, 128, 128),
        (255, 0, 0): (81, 90, 240),
        (0, 255, 0): (145, 54, 34),
        (0, 0, 255): (41, 240, 110),
    }
    for rgb, yuv in colours.items():
        frame = np.empty((4, 6, 4), np.uint8)
        frame[...] = (*rgb, 255)
        assert tuple(int(p.flat[0]) for p in convert(frame)) == yuv, rgb
        assert all(np.ptp(p) == 0 for p in convert(frame))


def test_agrees_with_swscale_on_smooth_images() -> None:
    """Same colour space and range as PyAV's (swscale's) yuv420p: luma within 1, chroma within 1 where
    the picture is smooth (swscale filters chroma with a wider kernel than the 2x2 mean)."""
    yy, xx = np.mgrid[0:96, 0:128]
    frame = np.empty((96, 128, 4), np.uint8)
    frame[..., 0] = xx * 2
    frame[..., 1] = yy * 2
    frame[..., 2] = 255 - xx
    frame[..., 3] = 255
    theirs = av.VideoFrame.from_ndarray(frame, format="rgba").reformat(format="yuv420p")
    for ours, plane in zip(convert(frame), theirs.planes, strict=True):
        assert np.abs(ours.astype(int) - _plane_array(plane)).max() <= 1


def test_writes_into_padded_pyav_planes() -> None:
    """PyAV pads rows (a 50-pixel-wide frame has 64-byte rows): samples land in the row, padding untouched."""
    frame = np.zeros((6, 50, 4), np.uint8)
    frame[..., :3] = 200
    frame[..., 3] = 255
    out = av.VideoFrame(50, 6, "yuv420p")
    assert out.planes[0].line_size > 50
    raw = np.frombuffer(out.planes[0], np.uint8).reshape(6, out.planes[0].line_size)
    raw[:, 50:] = 7
    rgba_to_i420(frame, *(_plane_array(p) for p in out.planes))
    assert (raw[:, :50] == 188).all() and (raw[:, 50:] == 7).all()
    back = out.to_ndarray(format="rgb24")
    assert np.abs(back.astype(int) - 200).max() <= 2


def test_bad_arguments_are_refused() -> None:
    frame = np.zeros((4, 6, 4), np.uint8)
    y, u, v = np.empty((4, 6), np.uint8), np.empty((2, 3), np.uint8), np.empty((2, 3), np.uint8)
    with pytest.raises(RenderError, match="height, width, 4"):
        rgba_to_i420(np.zeros((4, 6, 3), np.uint8), y, u, v)
    with pytest.raises(ValueError, match=r"y must be .*\(4, 6\)"):
        rgba_to_i420(frame, np.empty((4, 5), np.uint8), u, v)
    with pytest.raises(ValueError, match="u must be"):
        rgba_to_i420(frame, y, np.empty((2, 3), np.int16), v)
    with pytest.raises(ValueError, match="v must be"):
        rgba_to_i420(frame, y, u, np.empty((2, 6), np.uint8)[:, ::2])  # samples not adjacent
    readonly = np.empty((2, 3), np.uint8)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        rgba_to_i420(frame, y, u, readonly)


def test_video_writer_refuses_a_frame_of_another_size(tmp_path: pathlib.Path) -> None:
    from avatarkit import AvatarError, AvatarErrorCode
    from avatarkit.media import VideoWriter

    with VideoWriter(tmp_path / "x.mp4", 64, 48, 25, 16000) as writer:
        writer.write(np.zeros((48, 64, 4), np.uint8))
        with pytest.raises(AvatarError, match=r"\(48, 64, 4\)") as err:
            writer.write(np.zeros((64, 48, 4), np.uint8))
        assert err.value.code == AvatarErrorCode.INVALID_ARGUMENT
