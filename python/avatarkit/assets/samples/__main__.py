"""``python -m avatarkit.assets.samples OUT_DIR``: build every sample avatar bundle."""

from __future__ import annotations

import argparse
import sys

from . import SAMPLE_IDS, build_bundle


def main(argv: list[str] | None = None) -> int:
    """Build the sample bundles into OUT_DIR/<id>/ and print what was written."""
    parser = argparse.ArgumentParser(prog="python -m avatarkit.assets.samples", description=__doc__)
    parser.add_argument("out_dir", help="folder to write the bundles into (one sub-folder per avatar id)")
    parser.add_argument("--id", action="append", choices=SAMPLE_IDS, help="build only this sample (repeatable)")
    args = parser.parse_args(argv)
    for avatar_id in args.id or SAMPLE_IDS:
        path = build_bundle(avatar_id, f"{args.out_dir}/{avatar_id}")
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in sorted(path.parent.iterdir()))
        print(f"{avatar_id}: {path.parent} ({sizes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
