"""The driving-stream codec: the animation payloads the driving service sends and views decode.

The format (AK1) is specified in ``docs/codec.md``: a schema of named, quantized channels travels
with the first payload of a request; frames are key frames or delta frames that carry their index;
chunks of frames may be zstd-compressed. Everything here is implemented in C++ (``avatarkit._core``)
and releases the GIL while it works.

Example:
    >>> import numpy as np
    >>> from avatarkit import codec
    >>> schema = codec.canonical_schema()
    >>> encoder, decoder = codec.StreamEncoder(schema), codec.StreamDecoder()
    >>> frames = decoder.decode(encoder.encode(np.zeros((3, len(schema)), np.float32)))
    >>> frames.values.shape, list(frames.frame_indices)
    ((3, 73), [0, 1, 2])
"""

from __future__ import annotations

from typing import Literal

from ._core.codec import (
    ARKIT_NAMES,
    HEAD_ROTATION_NAMES,
    HEAD_TRANSLATION_NAMES,
    VISEME_NAMES,
    Channel,
    CodecError,
    DecodedFrames,
    Quant,
    Schema,
    StreamDecoder,
    StreamEncoder,
    canonical_schema,
    decode_flame,
    encode_flame,
    flame_channel_names,
)

__all__ = [
    "ARKIT_NAMES",
    "CANONICAL_NAMES",
    "HEAD_ROTATION_NAMES",
    "HEAD_TRANSLATION_NAMES",
    "VISEME_NAMES",
    "Channel",
    "CodecError",
    "DecodedFrames",
    "PayloadKind",
    "Quant",
    "Schema",
    "StreamDecoder",
    "StreamEncoder",
    "canonical_schema",
    "decode_flame",
    "encode_flame",
    "flame_channel_names",
    "payload_kind",
]

#: The 73 canonical channel names in stream order.
CANONICAL_NAMES: tuple[str, ...] = (
    *ARKIT_NAMES,
    *VISEME_NAMES,
    *HEAD_ROTATION_NAMES,
    *HEAD_TRANSLATION_NAMES,
)

PayloadKind = Literal["ak1", "flame", "unknown"]

_AK1_MAGIC = b"AK"
# A FlameAnimation starts with field 1 (keyframes), wire type 2: tag byte 0x0A. An empty one is empty.
_FLAME_TAG = 0x0A


def payload_kind(payload: bytes | bytearray | memoryview) -> PayloadKind:
    """Tell which animation payload this is, from its first bytes (nothing is decoded).

    Returns ``"ak1"`` for this project's format, ``"flame"`` for the commercial service's
    ``FlameAnimation`` protobuf (including the empty one), ``"unknown"`` otherwise.
    """
    head = bytes(memoryview(payload)[:2])
    if head == _AK1_MAGIC:
        return "ak1"
    if not head or head[0] == _FLAME_TAG:
        return "flame"
    return "unknown"
