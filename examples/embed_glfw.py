"""Embed a view in your own glfw window: the app owns the window and its event loop.

    python examples/embed_glfw.py [--seconds 5]

The app creates the window (OpenGL 3.3 core) and hands its handle to ``WindowSurface(window=...)``.
From then on the view's render thread owns the window's GL context and draws every frame into it,
while the app's main thread does what glfw wants there: it polls events (here: space speaks, escape
quits) and runs the app. Do not make the window's context current on another thread while the view
lives; ``view.destroy()`` gives the window back (the app still closes it).

The speech is animated by the engine in this process (``local_motion``): no service is needed.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import glfw

from avatarkit import AvatarManager, AvatarSDK, AvatarView, Configuration, WindowSurface
from avatarkit.media import DEMO_SPEECH, decode_audio
from avatarkit.server.samples import ensure_samples
from avatarkit.video import local_motion

RATE = 16000


def open_window(width: int, height: int, title: str) -> Any:
    """What an app does anyway: a window with an OpenGL 3.3 core context (not made current here)."""
    if not glfw.init():
        raise SystemExit("glfw could not initialise (is there a display?)")
    glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
    glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
    glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
    glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
    window = glfw.create_window(width, height, title, None, None)
    if not window:
        glfw.terminate()
        raise SystemExit("no OpenGL 3.3 core window")
    return window


def screenshot(window: Any, path: str) -> None:
    """Save what the window shows, as the screen has it (X11, through Pillow)."""
    from PIL import ImageGrab

    x, y = glfw.get_window_pos(window)
    w, h = glfw.get_framebuffer_size(window)
    ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay="").save(path)


def main(seconds: float, size: int = 480, screenshot_to: str | None = None) -> int:
    AvatarSDK.initialize("local", Configuration())
    avatar = AvatarManager.derive(ensure_samples() / "default")
    window = open_window(size, size, "My app, with an avatar")
    view = AvatarView(WindowSurface(size, size, window=window, vsync=True), avatar)
    controller = view.avatar_controller
    pcm = decode_audio(DEMO_SPEECH, RATE)
    motion = local_motion(pcm, RATE)

    def speak() -> None:
        controller.play(pcm, motion, sample_rate=RATE)

    def on_key(win: Any, key: int, scancode: int, action: int, mods: int) -> None:
        if action == glfw.PRESS and key == glfw.KEY_SPACE:
            speak()
        elif action == glfw.PRESS and key == glfw.KEY_ESCAPE:
            glfw.set_window_should_close(win, True)

    glfw.set_key_callback(window, on_key)
    speak()  # say something at once; space says it again
    start = time.monotonic()
    try:
        while not glfw.window_should_close(window) and time.monotonic() < start + seconds:
            glfw.wait_events_timeout(1 / 60)  # the app's loop: events here, drawing on the view's thread
            if screenshot_to and time.monotonic() > start + min(1.5, seconds / 2):
                screenshot(window, screenshot_to)
                screenshot_to = None
        print(f"drew {view.frame_rate:.0f} frames per second into the app's window")
    finally:
        view.destroy()
        glfw.destroy_window(window)
        glfw.terminate()
        AvatarSDK.cleanup()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--screenshot", metavar="PNG", help="save what the window shows after a moment")
    args = parser.parse_args()
    raise SystemExit(main(args.seconds, args.size, args.screenshot))
