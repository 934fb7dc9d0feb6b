"""docs/images/emotions.png: the six emotions (avatarkit.emotions) on the two sample avatars.

Run: python scripts/make_emotion_image.py [--out docs/images/emotions.png]
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
from PIL import Image

from avatarkit import AvatarManager, AvatarSDK, AvatarView, Configuration, HeadlessSurface
from avatarkit.emotions import EMOTIONS
from avatarkit.server.samples import ensure_samples

ROOT = pathlib.Path(__file__).resolve().parents[1]
TILE = 150


def row(avatar_dir: pathlib.Path) -> Image.Image:
    """One tile per emotion, at full intensity, the face cropped from a 320x320 head-and-shoulders frame."""
    view = AvatarView(HeadlessSurface(320, 320), AvatarManager.derive(avatar_dir), background=(0.9, 0.9, 0.92))
    controller = view.avatar_controller
    tiles = []
    try:
        for name in EMOTIONS:
            controller.set_emotion(name, 1.0, fade=0.0)
            frame = view.render_frame_sync(controller.clock() + 0.01).image
            tiles.append(Image.fromarray(frame, "RGBA").convert("RGB").crop((60, 40, 260, 240)))
    finally:
        view.destroy()
    out = Image.new("RGB", (TILE * len(tiles), TILE))
    for i, tile in enumerate(tiles):
        out.paste(tile.resize((TILE, TILE), Image.LANCZOS), (i * TILE, 0))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images" / "emotions.png")
    args = ap.parse_args()
    AvatarSDK.initialize("emotions", Configuration())
    rows = [row(ensure_samples() / name) for name in ("default", "sam")]
    image = Image.new("RGB", (rows[0].width, TILE * len(rows)))
    for i, r in enumerate(rows):
        image.paste(r, (0, i * TILE))
    image.save(args.out, optimize=True)
    print(f"wrote {args.out} ({np.asarray(image).shape[1]}x{np.asarray(image).shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
