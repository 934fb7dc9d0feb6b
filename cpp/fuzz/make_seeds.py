#!/usr/bin/env python3
"""Write fuzz seeds taken from the real service recording into a directory (standard library only).

    python3 cpp/fuzz/make_seeds.py OUT_DIR [--data ../shared/data/official-16000.json]

The recording (see ../shared/data/README.md) holds base64 driveningress v2 ``Message`` envelopes;
field 6 (server_response_animation) holds field 4 (animation): FlameAnimation bytes. For each
message this writes its FlameAnimation, and the first three keyframes alone (small inputs mutate
faster). The seeds are
derived at run time and never committed: the recording is not ours to redistribute. The AK1 seeds
come from the ``fuzz_codec_seeds`` program (cpp/fuzz/seeds.cpp), which uses the real encoder.
Exits 0 without writing anything when the recording is absent.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "official-16000.json"


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise ValueError("varint too long")


def fields(buf: bytes) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each top-level field; start..end is its payload."""
    out = []
    pos = 0
    while pos < len(buf):
        tag, pos = read_varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            _, end = read_varint(buf, pos)
        elif wire == 1:
            end = pos + 8
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            end = pos + length
        elif wire == 5:
            end = pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if end > len(buf):
            raise ValueError("field runs past the end")
        out.append((field, wire, pos, end))
        pos = end
    return out


def child(buf: bytes, number: int) -> bytes | None:
    for field, wire, start, end in fields(buf):
        if field == number and wire == 2:
            return buf[start:end]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"make_seeds: {args.data} not found, no official seeds")
        return 0
    messages = json.loads(args.data.read_text())["animation_messages_base64"]
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for i, text in enumerate(messages):
        envelope = base64.b64decode(text)
        response = child(envelope, 6)
        animation = child(response, 4) if response is not None else None
        if animation is None:
            continue
        # The first three keyframes, byte for byte: a FlameAnimation is its keyframe fields in a row.
        keyframes = [(s, e) for f, w, s, e in fields(animation) if f == 1 and w == 2]
        head_end = keyframes[min(2, len(keyframes) - 1)][1] if keyframes else 0
        for name, data in (
            (f"official-flame-{i}", animation),
            (f"official-flame-{i}-head", animation[:head_end]),
        ):
            (args.out / name).write_bytes(data)
            written += 1
    print(f"make_seeds: wrote {written} seeds from {len(messages)} messages to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
