"""Every example in examples/ runs, on the built-in service and avatar."""

from __future__ import annotations

import asyncio
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

from render_helpers import require_gl

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _isolated(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_gl()
    monkeypatch.setenv("AVATARKIT_CACHE_DIR", str(tmp_path / "cache"))
    from avatarkit import AvatarManager, AvatarSDK

    AvatarManager._shared_instance = None
    yield
    AvatarSDK.cleanup()
    AvatarManager._shared_instance = None


def test_sdk_streaming(capsys: pytest.CaptureFixture[str]) -> None:
    assert asyncio.run(load("sdk_streaming").main(1.5)) == 0
    out = capsys.readouterr().out
    frames = int(out.split()[1])
    assert frames >= 20  # rendered at 25 fps while the 1.5 s of speech played


def test_local_streaming_needs_no_service(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    out = tmp_path / "local.mp4"
    assert asyncio.run(load("local_streaming").main(1.2, str(out))) == 0
    words = capsys.readouterr().out.split()
    frames, speaking = int(words[0]), int(words[2])
    assert speaking >= 28 and frames > speaking  # 1.2 s of speech at 25 fps, then its end marker
    import av

    with av.open(str(out)) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}


def test_webrtc_frames(capsys: pytest.CaptureFixture[str]) -> None:
    assert asyncio.run(load("webrtc_frames").main(1.0)) == 0
    assert "25 video frames, 1.00 s of audio" in capsys.readouterr().out


def test_host_backend_relays_audio_and_motion_to_a_host_mode_view() -> None:
    summary = asyncio.run(load("host_backend").main(2.0))
    assert summary.motion_frames == 50  # 2 s at 25 fps, every frame relayed through the backend
    assert summary.states == ["playing", "idle"]
    assert summary.frames_rendered > 40
    # The mouth moved with the relayed motion, far beyond what idle life does to it. Measured from
    # one frame to the next: idle life (head sway, breathing) drifts slowly, 0.1-0.3 levels between
    # frames, against 13-15 for speech (against the first frame, the drift reached 4-7 levels in
    # the idle second and came within reach of speech's 19-24).
    assert summary.mouth_change > 5.0
    assert summary.mouth_change > 5 * summary.idle_change


def test_embed_glfw_draws_into_the_apps_window(display: str, tmp_path: pathlib.Path) -> None:
    from PIL import Image

    shot = tmp_path / "window.png"
    assert load("embed_glfw").main(2.5, 240, str(shot)) == 0
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape == (240, 240, 3)
    # The screen shows the avatar: the face's skin tones in the middle, varied, not an empty window.
    middle = image[60:180, 60:180].reshape(-1, 3)
    assert len(np.unique(middle // 8, axis=0)) > 100
    warm = (middle[:, 0] > middle[:, 2] + 30).mean()  # skin and hair are red over blue
    assert warm > 0.3


def test_embed_pygame_blits_frames_into_the_apps_window(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    screen = load("embed_pygame").main(5.0, frames=10, size=160)
    assert screen.shape == (240, 240, 3)
    assert tuple(screen[5, 5]) == (24, 26, 33)  # the app's own background around the picture
    picture = screen[40:200, 40:200].reshape(-1, 3).astype(int)
    assert len(np.unique(picture // 8, axis=0)) > 60  # a rendered face, not a flat fill
    assert (picture[:, 0] > picture[:, 2] + 30).mean() > 0.2
