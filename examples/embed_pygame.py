"""Embed a view in a pygame app: the avatar as a picture inside the app's own window and loop.

    python examples/embed_pygame.py [--seconds 5]

pygame (SDL) keeps its window's GL context to itself, so the view does not draw into that window;
it renders headless and the app blits each frame wherever it likes, at the size it likes. The same
pattern works with any toolkit that can show an RGBA image (Qt, Tk, SDL, a game engine's texture).
The render runs on the view's own thread and context; ``render_frame_sync()`` hands back the frame
for the current playback time as a ``(height, width, 4)`` uint8 array.

Space speaks the bundled sentence again; escape or closing the window quits. The speech is animated
by the engine in this process (``local_motion``): no service is needed.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pygame

from avatarkit import AvatarManager, AvatarSDK, AvatarView, Configuration, HeadlessSurface
from avatarkit.media import DEMO_SPEECH, decode_audio
from avatarkit.server.samples import ensure_samples
from avatarkit.video import local_motion

RATE = 16000
APP_BACKGROUND = (24, 26, 33)


def main(seconds: float, frames: int | None = None, size: int = 320) -> np.ndarray:
    """Run the app; returns the last screen it showed (``(height, width, 3)`` uint8)."""
    AvatarSDK.initialize("local", Configuration())
    avatar = AvatarManager.derive(ensure_samples() / "default")
    view = AvatarView(HeadlessSurface(size, size), avatar, background=(0.93, 0.94, 0.96))
    controller = view.avatar_controller
    pcm = decode_audio(DEMO_SPEECH, RATE)
    motion = local_motion(pcm, RATE)
    controller.play(pcm, motion, sample_rate=RATE)

    pygame.display.init()  # the window only: no sound system, no fonts
    screen = pygame.display.set_mode((size + 2 * 40, size + 2 * 40))
    pygame.display.set_caption("My app, with an avatar")
    clock = pygame.time.Clock()
    shown = 0
    start = time.monotonic()
    try:
        running = True
        while running and time.monotonic() < start + seconds and (frames is None or shown < frames):
            for event in pygame.event.get():
                if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                    running = False
                elif event.type == pygame.KEYDOWN and event.key == pygame.K_SPACE:
                    controller.play(pcm, motion, sample_rate=RATE)
            frame = view.render_frame_sync()  # the avatar now, on the playback clock
            picture = pygame.image.frombuffer(frame.image.tobytes(), (size, size), "RGBA")
            screen.fill(APP_BACKGROUND)  # the app's own drawing ...
            pygame.draw.rect(screen, (90, 140, 220), (34, 34, size + 12, size + 12), width=3, border_radius=8)
            screen.blit(picture, (40, 40))  # ... with the avatar in it
            pygame.display.flip()
            shown += 1
            clock.tick(30)
        last = pygame.surfarray.array3d(screen).transpose(1, 0, 2).copy()
        print(f"showed {shown} frames in the app's window")
    finally:
        pygame.quit()
        view.destroy()
        AvatarSDK.cleanup()
    return last


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no screen: run the loop invisibly
    main(args.seconds, args.frames)
