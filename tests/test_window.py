"""AvatarView in a desktop window (glfw), on a virtual X screen (Xvfb) the test starts itself."""

from __future__ import annotations

import os
import subprocess
import time

from render_helpers import tiny_avatar_glb


def test_window_view_draws_continuously(display, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from avatarkit import AvatarManager, AvatarView, WindowSurface

    avatar = AvatarManager(cache_dir=tmp_path).derive(tiny_avatar_glb(tmp_path / "t.glb"))
    view = AvatarView(WindowSurface(160, 160, vsync=False), avatar)
    first: list[bool] = []
    rates: list[float] = []
    view.on_first_rendering = lambda: first.append(True)
    view.avatar_controller.on_frame_rate_info = rates.append
    try:
        deadline = time.monotonic() + 20
        while (not first or not rates) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first == [True]
        assert rates and rates[-1] > 1.0
        view.pause_rendering()
        view.resume_rendering()
        frame = view.render_frame_sync()
        assert frame.image.shape == (160, 160, 4)
        view.check_gl_errors()
    finally:
        view.destroy()


def test_view_command_opens_speaks_and_closes(display) -> None:  # type: ignore[no-untyped-def]
    import sys

    from avatarkit.media import DEMO_SPEECH

    command = ["view", "--seconds", "2", "--size", "160x160", "--speech", str(DEMO_SPEECH)]
    result = subprocess.run(
        [sys.executable, "-m", "avatarkit", *command],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DISPLAY": display},
    )
    assert result.returncode == 0, result.stderr
    assert "speaking demo_speech.ogg" in result.stdout
