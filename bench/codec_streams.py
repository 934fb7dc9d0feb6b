"""Streams and data shared by the codec benchmarks (bench_codec.py) and the report (report.py).

Synthetic streams are the 73 canonical channels moving like a talking face (``avatarkit._synthetic``:
most ARKit channels idle, jaw, mouth and viseme channels busy, the head swaying slowly). The official
sample is a recording of the commercial service (``<repo>/../shared/data/official-16000.json``); it is
read from where it lies and never copied into the repository.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from numpy_codec import NumpyStreamDecoder

from avatarkit._synthetic import speech_like
from avatarkit.codec import (
    Channel,
    Quant,
    Schema,
    StreamDecoder,
    StreamEncoder,
    canonical_schema,
    decode_flame,
    encode_flame,
    flame_channel_names,
)
from avatarkit.protocol import parse_message

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_SAMPLE = REPO.parent / "shared" / "data" / "official-16000.json"
OFFICIAL_FPS = 25
#: The commercial service's animation bandwidth is about 12.5 KB/s; the target is a quarter of it.
TARGET_BYTES_PER_SECOND = 3100
#: zstd level of the compressed variants (zstd's own default).
ZSTD_LEVEL = 3

Frames = npt.NDArray[np.float32]


def speech_frames(seconds: float, seed: int = 0) -> Frames:
    """Canonical-channel frames (``frames x 73`` float32, 25 fps) that move like speech."""
    return speech_like(seconds, fps=25, seed=seed)


def encode_stream(
    frames: Frames,
    frames_per_payload: int,
    zstd_level: int = 0,
    schema: Schema | None = None,
    key_interval: int = 25,
    reuse_masks: bool = True,
) -> list[bytes]:
    """Encode ``frames`` with one encoder, ``frames_per_payload`` frames per payload (fewer in the last)."""
    schema = schema or canonical_schema()
    encoder = StreamEncoder(schema, key_interval=key_interval, zstd_level=zstd_level, reuse_masks=reuse_masks)
    step = frames_per_payload
    return [encoder.encode(frames[i : i + step]) for i in range(0, len(frames), step)]


def decode_cpp(payloads: Sequence[bytes]) -> int:
    """Decode a whole stream with a fresh C++ decoder; return the number of frames."""
    decoder = StreamDecoder()
    return sum(len(decoder.decode(payload)) for payload in payloads)


def decode_numpy(payloads: Sequence[bytes]) -> int:
    """Decode a whole stream with a fresh numpy decoder; return the number of frames."""
    decoder = NumpyStreamDecoder()
    return sum(len(decoder.decode(payload)) for payload in payloads)


def decode_cpp_values(payloads: Sequence[bytes]) -> tuple[Frames, npt.NDArray[np.int64]]:
    """All values and frame indices of a stream, decoded in C++."""
    decoder = StreamDecoder()
    chunks = [decoder.decode(payload) for payload in payloads]
    return np.concatenate([c.values for c in chunks]), np.concatenate([c.frame_indices for c in chunks])


def decode_numpy_values(payloads: Sequence[bytes]) -> tuple[Frames, npt.NDArray[np.int64]]:
    """All values and frame indices of a stream, decoded with numpy."""
    decoder = NumpyStreamDecoder()
    chunks = [decoder.decode(payload) for payload in payloads]
    return np.concatenate([c.values for c in chunks]), np.concatenate([c.frame_indices for c in chunks])


def encode_all(frames: Frames, frames_per_payload: int, zstd_level: int = 0) -> int:
    """Encode a stream with a fresh encoder; return the number of bytes (the benchmarked work)."""
    return sum(len(p) for p in encode_stream(frames, frames_per_payload, zstd_level))


def flame_animation(keyframes: int, seed: int = 0) -> bytes:
    """A FlameAnimation payload of smooth non-zero values in every field, like the service's."""
    rng = np.random.default_rng(seed)
    t = np.arange(keyframes)[:, None] / OFFICIAL_FPS
    values = 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 2.0, 120) * t + rng.uniform(0, 2 * np.pi, 120))
    return encode_flame(values.astype(np.float32))


# ------------------------------------------------------------------------------------------------
# The official sample


@dataclass(frozen=True)
class OfficialSample:
    """The commercial recording: its animation messages and the keyframes they carry."""

    message_bytes: tuple[int, ...]  # size of each serialized Message envelope
    animation_bytes: tuple[int, ...]  # size of each FlameAnimation payload inside them
    chunks: tuple[Frames, ...]  # decoded keyframes per message (keyframes x 120)

    @property
    def frames(self) -> int:
        """Keyframes in all."""
        return sum(len(c) for c in self.chunks)

    @property
    def seconds(self) -> float:
        """Duration at 25 fps."""
        return self.frames / OFFICIAL_FPS


def load_official_sample(path: Path = OFFICIAL_SAMPLE) -> OfficialSample:
    """Read the sample's ``animation_messages_base64``: Message -> server_response_animation -> animation."""
    document = json.loads(path.read_text())
    envelopes = [base64.b64decode(m) for m in document["animation_messages_base64"]]
    animations = [parse_message(e).server_response_animation.animation for e in envelopes]
    return OfficialSample(
        message_bytes=tuple(len(e) for e in envelopes),
        animation_bytes=tuple(len(a) for a in animations),
        chunks=tuple(decode_flame(a) for a in animations),
    )


def range_schema(values: Frames, names: Sequence[str], fps: int = OFFICIAL_FPS) -> Schema:
    """A u16 schema with each channel's range from its min / max; a constant channel gets [v, v + 1].

    Widening upwards keeps a constant value exact: it quantizes to 0 and decodes to ``lo`` itself.
    """
    lo = values.min(axis=0)
    hi = values.max(axis=0)
    hi = np.where(hi > lo, hi, lo + np.float32(1.0))
    channels = [Channel(n, Quant.U16, float(a), float(b)) for n, a, b in zip(names, lo, hi, strict=True)]
    return Schema(channels, fps, 1)


@dataclass(frozen=True)
class Reencoded:
    """The official sample re-encoded as AK1 at u16, one payload per original message."""

    zstd_level: int
    payloads: tuple[bytes, ...]
    seconds: float
    max_error_steps: float  # the largest |decoded - original| in units of (hi - lo) / 65535

    @property
    def bytes(self) -> int:
        """Bytes of all payloads."""
        return sum(len(p) for p in self.payloads)

    @property
    def bytes_per_second(self) -> float:
        """Bytes per second of animation at 25 fps."""
        return self.bytes / self.seconds


def reencode_official(
    sample: OfficialSample,
    zstd_level: int = 0,
    decode: Callable[[Sequence[bytes]], tuple[Frames, npt.NDArray[np.int64]]] = decode_cpp_values,
) -> Reencoded:
    """Re-encode the sample's 120 FLAME channels at u16 in chunks matching its messages, decode, measure."""
    original = np.concatenate(sample.chunks)
    schema = range_schema(original, flame_channel_names())
    encoder = StreamEncoder(schema, zstd_level=zstd_level)
    payloads = tuple(encoder.encode(chunk) for chunk in sample.chunks)
    decoded, _ = decode(payloads)
    lo = np.array([c.lo for c in schema.channels], np.float64)
    hi = np.array([c.hi for c in schema.channels], np.float64)
    error = np.abs(decoded.astype(np.float64) - original) / (hi - lo) * 65535
    return Reencoded(zstd_level, payloads, sample.seconds, float(error.max()))
