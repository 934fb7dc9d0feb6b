"""``avatarkit render``: speech in, a talking-avatar video out, picture and sound in sync."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import av
import numpy as np
import pytest

from avatarkit.media import DEMO_SPEECH, decode_audio
from avatarkit.video import LEAD_IN, TAIL

from render_helpers import require_gl


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    require_gl()
    path = tmp_path_factory.mktemp("speech") / "speech.pcm"
    path.write_bytes(decode_audio(DEMO_SPEECH, 16000)[:24000].tobytes())  # 1.5 s
    return path


def render(*args: str) -> subprocess.CompletedProcess[str]:
    # -X faulthandler: a crash (signal) prints every thread's Python stack into stderr, which the
    # assertion shows (CI saw one SIGSEGV here once, with an empty stderr, 2026-12-06).
    result = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-m", "avatarkit", "render", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_mp4_has_h264_and_aac_in_sync(speech: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "talk.mp4"
    result = render(str(speech), "--raw-rate", "16000", "-o", str(out), "--size", "128x128", "--fps", "25")
    assert "decode" in result.stdout and "encode" in result.stdout  # the time split by stage
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video)]
    expected = round((LEAD_IN + 1.5 + TAIL) * 25)
    assert len(frames) == expected
    assert frames[0].shape == (128, 128, 3)
    assert float(video.duration * video.time_base) == pytest.approx(expected / 25, abs=0.05)
    assert float(audio.duration * audio.time_base) == pytest.approx(expected / 25, abs=0.1)
    # The face moves while it speaks and not in the lead-in.
    still = np.abs(frames[1].astype(int) - frames[3].astype(int)).mean()
    talking = max(np.abs(frames[i].astype(int) - frames[i + 3].astype(int)).mean() for i in range(10, 40))
    assert talking > 3 * max(still, 0.05)


def test_alpha_formats_and_png_sequence(speech: pathlib.Path, tmp_path: pathlib.Path) -> None:
    webm = tmp_path / "talk.webm"
    render(str(speech), "--raw-rate", "16000", "-o", str(webm), "--size", "64x64", "--background", "transparent")
    with av.open(str(webm)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "vp9"
        assert stream.metadata.get("alpha_mode") == "1"  # VP9 carries alpha beside the colour planes
    pngs = tmp_path / "frames"
    render(str(speech), "--raw-rate", "16000", "--png-dir", str(pngs), "--png-only", "--size", "64x64",
           "--background", "transparent")  # fmt: skip
    files = sorted(pngs.glob("frame_*.png"))
    assert len(files) == round((LEAD_IN + 1.5 + TAIL) * 30)
    from PIL import Image

    first = np.asarray(Image.open(files[0]))
    assert first.shape == (64, 64, 4) and first[0, 0, 3] == 0 and first[..., 3].max() == 255


def test_mp4_composites_transparent_pixels_over_black(tmp_path: pathlib.Path) -> None:
    """H.264 has no alpha: partly covered pixels darken by their coverage, opaque ones pass as they are."""
    from avatarkit.media import VideoWriter

    frame = np.zeros((64, 64, 4), np.uint8)
    frame[:, :32] = (200, 160, 120, 255)  # opaque
    frame[:, 32:48] = (200, 160, 120, 128)  # half covered
    frame[:, 48:] = (200, 160, 120, 0)  # nothing drawn
    path = tmp_path / "alpha.mp4"
    with VideoWriter(path, 64, 64, 25, 16000) as writer:
        for _ in range(5):
            writer.write(frame, np.zeros(640, np.int16))
    with av.open(str(path)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    # Away from the block edges, where H.264's chroma subsampling blends neighbours.
    np.testing.assert_allclose(image[32, 8:24].mean(axis=0), (200, 160, 120), atol=6)
    np.testing.assert_allclose(image[32, 36:44].mean(axis=0), (100, 80, 60), atol=6)
    np.testing.assert_allclose(image[32, 52:60].mean(axis=0), (0, 0, 0), atol=6)


def test_a_vrm_file_renders_as_the_avatar(speech: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """``--avatar`` takes a .vrm (a GLB by content) like a .glb; an unknown id names the built-in ones."""
    from render_helpers import tiny_avatar_glb

    glb = tiny_avatar_glb(tmp_path / "tiny.glb")
    vrm = tmp_path / "tiny.vrm"
    vrm.write_bytes(glb.read_bytes())
    pngs = tmp_path / "frames"
    render(str(speech), "--raw-rate", "16000", "--avatar", str(vrm), "--png-dir", str(pngs), "--png-only",
           "--size", "64x64", "--background", "transparent")  # fmt: skip
    from PIL import Image

    first = np.asarray(Image.open(sorted(pngs.glob("frame_*.png"))[0]))
    assert first[..., 3].max() == 255  # the avatar is drawn
    missing = subprocess.run(
        [sys.executable, "-m", "avatarkit", "render", str(speech), "--raw-rate", "16000", "--avatar", "nope"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines()[-1].startswith("avatarkit: error: unknown avatar 'nope'; built-in: ")
