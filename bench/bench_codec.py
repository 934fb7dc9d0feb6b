"""Codec benchmarks (pytest-benchmark) and the correctness checks that back their numbers.

The ``test_bench_*`` functions run once, as quick tests, under the default ``--benchmark-disable``;
time them with ``pytest bench --benchmark-enable``. Speed is never asserted here: ``python
bench/report.py`` prints the C++ decoder's throughput as a ratio against the numpy decoder measured in
the same run. The other tests check that the two decoders agree and that the official sample
re-encodes within its size and error targets (sizes, not times, so asserting them is fine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import codec_streams as cs
import numpy as np
import pytest
from numpy_codec import NumpyCodecError, NumpyStreamDecoder

from avatarkit.codec import (
    Channel,
    CodecError,
    Quant,
    Schema,
    StreamDecoder,
    StreamEncoder,
    canonical_schema,
    decode_flame,
)

SECONDS = 60.0  # 1500 frames at 25 fps
PAYLOAD_SHAPES = [
    pytest.param(1, 0, id="1frame-raw"),
    pytest.param(1, cs.ZSTD_LEVEL, id="1frame-zstd"),
    pytest.param(100, 0, id="100frames-raw"),
    pytest.param(100, cs.ZSTD_LEVEL, id="100frames-zstd"),
]


@pytest.fixture(scope="module")
def speech() -> cs.Frames:
    return cs.speech_frames(SECONDS)


@pytest.fixture(scope="module")
def official() -> cs.OfficialSample:
    if not cs.OFFICIAL_SAMPLE.is_file():
        pytest.skip(f"the official sample is not at {cs.OFFICIAL_SAMPLE}")
    return cs.load_official_sample()


def _run(benchmark: Any, fn: Callable[..., int], *args: Any, frames: int) -> None:
    benchmark.extra_info["frames_per_round"] = frames
    assert benchmark(fn, *args) > 0


# ------------------------------------------------------------------------------------------------
# Benchmarks


@pytest.mark.parametrize(("frames_per_payload", "zstd_level"), PAYLOAD_SHAPES)
def test_bench_decode_cpp(benchmark: Any, speech: cs.Frames, frames_per_payload: int, zstd_level: int) -> None:
    payloads = cs.encode_stream(speech, frames_per_payload, zstd_level)
    benchmark.group = f"decode-{frames_per_payload}-{zstd_level}"
    _run(benchmark, cs.decode_cpp, payloads, frames=len(speech))


@pytest.mark.parametrize(("frames_per_payload", "zstd_level"), PAYLOAD_SHAPES)
def test_bench_decode_numpy(benchmark: Any, speech: cs.Frames, frames_per_payload: int, zstd_level: int) -> None:
    payloads = cs.encode_stream(speech, frames_per_payload, zstd_level)
    benchmark.group = f"decode-{frames_per_payload}-{zstd_level}"
    _run(benchmark, cs.decode_numpy, payloads, frames=len(speech))


@pytest.mark.parametrize(("frames_per_payload", "zstd_level"), PAYLOAD_SHAPES)
def test_bench_encode_cpp(benchmark: Any, speech: cs.Frames, frames_per_payload: int, zstd_level: int) -> None:
    benchmark.group = f"encode-{frames_per_payload}-{zstd_level}"
    _run(benchmark, cs.encode_all, speech, frames_per_payload, zstd_level, frames=len(speech))


def test_bench_decode_flame(benchmark: Any) -> None:
    payload = cs.flame_animation(100)
    benchmark.group = "flame"
    _run(benchmark, lambda p: len(decode_flame(p)), payload, frames=100)


# ------------------------------------------------------------------------------------------------
# The numpy decoder is an oracle for the C++ one


def _mixed_schema() -> Schema:
    """The canonical channels with every third one at u8: both widths in one mask byte."""
    channels = [
        Channel(c.name, Quant.U8 if i % 3 == 0 else Quant.U16, c.lo, c.hi)
        for i, c in enumerate(canonical_schema().channels)
    ]
    return Schema(channels, 30, 1)


def _assert_same(payloads: list[bytes]) -> None:
    cpp, numpy_ = StreamDecoder(), NumpyStreamDecoder()
    for payload in payloads:
        a, b = cpp.decode(payload), numpy_.decode(payload)
        assert a.names == list(b.names)
        assert a.fps == (b.schema.fps if b.schema else 0.0)
        assert a.schema_changed == b.schema_changed
        np.testing.assert_array_equal(a.frame_indices, b.frame_indices)
        assert a.values.shape == b.values.shape
        np.testing.assert_array_max_ulp(a.values, b.values, maxulp=1)
    assert cpp.last_frame_index == numpy_.last_frame_index


@pytest.mark.parametrize("frames_per_payload", [1, 7, 100, 1500])
@pytest.mark.parametrize("zstd_level", [0, cs.ZSTD_LEVEL])
def test_numpy_decoder_matches_cpp(speech: cs.Frames, frames_per_payload: int, zstd_level: int) -> None:
    _assert_same(cs.encode_stream(speech, frames_per_payload, zstd_level))


@pytest.mark.parametrize("frames_per_payload", [5, 40])  # both of the numpy decoder's paths
@pytest.mark.parametrize("reuse_masks", [True, False])
@pytest.mark.parametrize("key_interval", [1, 25, 1000])
def test_numpy_decoder_matches_cpp_u8_and_u16(
    speech: cs.Frames, key_interval: int, reuse_masks: bool, frames_per_payload: int
) -> None:
    schema = _mixed_schema()
    payloads = cs.encode_stream(
        speech, frames_per_payload, schema=schema, key_interval=key_interval, reuse_masks=reuse_masks
    )
    _assert_same(payloads)


def test_numpy_decoder_matches_cpp_on_noise_and_schema_changes() -> None:
    # Every channel moving by any amount (wrapping differences), frame gaps, and a schema switch.
    rng = np.random.default_rng(1)
    schema_a, schema_b = canonical_schema(), _mixed_schema()
    encoder = StreamEncoder(schema_a, key_interval=10, zstd_level=1)
    payloads, index = [], 0
    for chunk in range(12):
        if chunk == 6:
            encoder.set_schema(schema_b)
        frames = int(rng.integers(0, 30))
        values = rng.uniform(-1.5, 1.5, (frames, len(schema_a))).astype(np.float32)
        values[:, rng.random(len(schema_a)) < 0.5] = 0.25  # some channels idle
        indices = index + np.cumsum(rng.integers(1, 4, frames))
        index = int(indices[-1]) if frames else index
        payloads.append(encoder.encode(values, indices))
    _assert_same(payloads)


def _decode_both(cpp: StreamDecoder, numpy_: NumpyStreamDecoder, payload: bytes) -> bool:
    """Decode with both; assert they accept or reject it alike and agree; return whether it was accepted."""
    try:
        a = cpp.decode(payload)
    except CodecError:
        with pytest.raises(NumpyCodecError):
            numpy_.decode(payload)
        return False
    b = numpy_.decode(payload)
    np.testing.assert_array_max_ulp(a.values, b.values, maxulp=1)
    np.testing.assert_array_equal(a.frame_indices, b.frame_indices)
    return True


def test_numpy_decoder_fails_where_cpp_fails() -> None:
    # Corrupted payloads: both decoders reject the same ones, and a rejected payload leaves both
    # decoders as they were (what they decode next stays the same in both).
    rng = np.random.default_rng(2)
    payloads = cs.encode_stream(cs.speech_frames(8.0, seed=3), 10, 0, schema=_mixed_schema(), key_interval=7)
    payloads += cs.encode_stream(cs.speech_frames(4.0, seed=4), 25, cs.ZSTD_LEVEL)
    cpp, numpy_ = StreamDecoder(), NumpyStreamDecoder()
    rejected = 0
    for payload in payloads:
        for _ in range(4):
            bad = bytearray(payload)
            if rng.random() < 0.3:
                del bad[int(rng.integers(0, len(bad))) :]
            else:
                for _ in range(int(rng.integers(1, 4))):
                    bad[int(rng.integers(0, len(bad)))] = int(rng.integers(0, 256))
            if _decode_both(cpp, numpy_, bytes(bad)):
                break  # a harmless corruption: the stream moved on in both decoders
            rejected += 1
        else:
            _decode_both(cpp, numpy_, payload)
    assert rejected > len(payloads)


def test_numpy_decoder_reports_the_same_error_codes() -> None:
    payload = cs.encode_stream(cs.speech_frames(1.0), 25)[0]
    cases = {
        "truncated": payload[:-1],
        "bad_magic": b"AX" + payload[2:],
        "unsupported_version": payload[:2] + b"\x02" + payload[3:],
        "unsupported_flags": payload[:3] + b"\x05" + payload[4:],
        "trailing_bytes": payload + b"\x00",
        "missing_schema": b"AK\x01\x00\x01\x00\x00" + bytes(146),
    }
    for code, bad in cases.items():
        with pytest.raises(CodecError) as cpp_error:
            StreamDecoder().decode(bad)
        with pytest.raises(NumpyCodecError) as numpy_error:
            NumpyStreamDecoder().decode(bad)
        assert cpp_error.value.code == numpy_error.value.code == code


# ------------------------------------------------------------------------------------------------
# The official sample: bandwidth and error at u16


@pytest.mark.parametrize("zstd_level", [0, cs.ZSTD_LEVEL])
def test_official_sample_reencoded_at_u16(official: cs.OfficialSample, zstd_level: int) -> None:
    assert [len(c) for c in official.chunks] == [50, 100, 100, 100, 100, 57]
    result = cs.reencode_official(official, zstd_level)
    assert result.max_error_steps <= 1.0  # every value within 1/65535 of its channel's range
    assert result.bytes_per_second <= cs.TARGET_BYTES_PER_SECOND
    commercial = sum(official.animation_bytes) / official.seconds
    assert commercial > 4 * cs.TARGET_BYTES_PER_SECOND * 0.99  # the anchor: about 12.5 KB/s


def test_official_sample_numpy_decoder_agrees(official: cs.OfficialSample) -> None:
    cpp = cs.reencode_official(official, cs.ZSTD_LEVEL)
    numpy_ = cs.reencode_official(official, cs.ZSTD_LEVEL, decode=cs.decode_numpy_values)
    assert numpy_.payloads == cpp.payloads
    assert numpy_.max_error_steps == cpp.max_error_steps
