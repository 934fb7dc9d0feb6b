"""Render docs/images/talking.gif: the default avatar saying the bundled sentence (for the README).

    python scripts/make_readme_gif.py [--seconds 3] [--size 256] [--fps 12.5] [--out FILE]

Headless, with the engine in this process; a palette per frame, optimised by Pillow.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from PIL import Image

from avatarkit import AvatarManager, AvatarSDK, AvatarView, Configuration, HeadlessSurface
from avatarkit.media import DEMO_SPEECH, decode_audio
from avatarkit.server.samples import ensure_samples
from avatarkit.video import local_motion

OUT = pathlib.Path(__file__).resolve().parents[1] / "docs" / "images" / "talking.gif"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--fps", type=float, default=12.5)
    parser.add_argument("--out", type=pathlib.Path, default=OUT, help="default: docs/images/talking.gif")
    args = parser.parse_args()
    AvatarSDK.initialize("local", Configuration())
    avatar = AvatarManager.derive(ensure_samples() / "default")
    rate = 16000
    pcm = decode_audio(DEMO_SPEECH, rate)
    frames = []
    with AvatarView(HeadlessSurface(args.size, args.size), avatar, background=(0.93, 0.94, 0.96)) as view:
        controller = view.avatar_controller
        start = controller.clock() + 100.0  # a stretch of clock nothing else uses
        controller.play(pcm, local_motion(pcm, rate), sample_rate=rate, start=start)
        times = [start + k / args.fps for k in range(round(args.seconds * args.fps))]
        for frame in view.render_frames_sync(times):
            frames.append(Image.fromarray(frame.image).convert("RGB").quantize(colors=128, dither=Image.Dither.NONE))
    out: pathlib.Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=round(1000 / args.fps), loop=0, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB, {len(frames)} frames)")
    AvatarSDK.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
