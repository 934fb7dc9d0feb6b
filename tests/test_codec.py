"""The AK1 animation stream codec: round trips, malformed input, name mapping."""

from __future__ import annotations

import contextlib
import itertools
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatarkit import codec
from avatarkit._synthetic import speech_like

F32_EPS = float(np.finfo(np.float32).eps)


def tolerance(schema: codec.Schema) -> np.ndarray:
    """Half a quantization step per channel, plus float32 rounding of the decoded value."""
    return np.array([0.5 * c.step + 2 * F32_EPS * max(abs(c.lo), abs(c.hi)) for c in schema.channels])


def clip(values: np.ndarray, schema: codec.Schema) -> np.ndarray:
    return np.clip(values, [c.lo for c in schema.channels], [c.hi for c in schema.channels])


def encode_chunks(encoder: codec.StreamEncoder, values: np.ndarray, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(values)]
    return [encoder.encode(values[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


# ---------------------------------------------------------------------------------------------------
# Property tests

names_st = st.text(alphabet=string.ascii_letters + string.digits + "_.:-", min_size=1, max_size=64)


@st.composite
def schemas(draw: st.DrawFn) -> codec.Schema:
    names = draw(st.lists(names_st, min_size=1, max_size=40, unique=True))
    channels = []
    for name in names:
        lo = draw(st.floats(-100, 100, allow_nan=False, width=32))
        width = draw(st.floats(0.0009765625, 200, allow_nan=False, width=32))
        hi = np.float32(lo + width)
        if not hi > lo:
            hi = np.nextafter(np.float32(lo), np.float32(np.inf))
        quant = draw(st.sampled_from([codec.Quant.U8, codec.Quant.U16]))
        channels.append(codec.Channel(name, quant, float(lo), float(hi)))
    fps = draw(st.sampled_from([(25, 1), (30, 1), (30000, 1001)]))
    if fps[0] > 1000:
        fps = (1000, 33)
    return codec.Schema(channels, *fps)


@st.composite
def streams(draw: st.DrawFn) -> tuple[codec.Schema, np.ndarray, list[int], np.ndarray]:
    schema = draw(schemas())
    n = draw(st.integers(1, 120))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lo = np.array([c.lo for c in schema.channels])
    hi = np.array([c.hi for c in schema.channels])
    # Mix smooth motion, constant channels, jumps and values outside the range (clamped).
    walk = np.cumsum(rng.normal(0, 0.05, (n, len(schema))), axis=0)
    base = lo + (hi - lo) * (0.5 + 0.4 * np.sin(walk))
    frozen = rng.random(len(schema)) < 0.3
    base[:, frozen] = base[0, frozen]
    jumps = rng.random((n, len(schema))) < 0.02
    base[jumps] = (lo + (hi - lo) * rng.uniform(-0.2, 1.2, (n, len(schema))))[jumps]
    values = base.astype(np.float32)
    cuts = draw(st.lists(st.integers(0, n), max_size=8))
    steps = rng.integers(1, 4, n)
    indices = np.cumsum(steps) + draw(st.integers(0, 10**6))
    return schema, values, cuts, indices.astype(np.int64)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=streams(),
    zstd=st.sampled_from([0, 1, 3]),
    key_interval=st.integers(1, 40),
    reuse=st.booleans(),
)
def test_round_trip_within_half_a_step(stream, zstd, key_interval, reuse) -> None:
    schema, values, cuts, indices = stream
    encoder = codec.StreamEncoder(schema, key_interval=key_interval, zstd_level=zstd, reuse_masks=reuse)
    decoder = codec.StreamDecoder()
    bounds = [0, *sorted(set(cuts)), len(values)]
    got_values, got_indices = [], []
    for i, (a, b) in enumerate((a, b) for a, b in itertools.pairwise(bounds) if b > a):
        frames = decoder.decode(encoder.encode(values[a:b], indices[a:b]))
        assert frames.names == schema.names
        assert frames.fps == pytest.approx(schema.fps)
        assert frames.schema_changed == (i == 0)
        assert frames.values.dtype == np.float32
        got_values.append(frames.values.copy())
        got_indices.append(frames.frame_indices.copy())
    decoded = np.concatenate(got_values)
    np.testing.assert_array_equal(np.concatenate(got_indices), indices)
    error = np.abs(decoded.astype(np.float64) - clip(values, schema))
    assert (error <= tolerance(schema)).all(), error.max()


@settings(max_examples=60, deadline=None)
@given(stream=streams(), data=st.data())
def test_any_prefix_or_flip_fails_cleanly_and_keeps_state(stream, data) -> None:
    schema, values, _, indices = stream
    encoder = codec.StreamEncoder(schema, zstd_level=data.draw(st.sampled_from([0, 3])))
    half = max(1, len(values) // 2)
    first = encoder.encode(values[:half], indices[:half])
    second = encoder.encode(values[half:], indices[half:]) if half < len(values) else None
    decoder = codec.StreamDecoder()
    decoder.decode(first)

    if second is not None:
        # A truncated payload is an error; the decoder is unchanged and still takes the real one.
        cut = data.draw(st.integers(0, len(second) - 1))
        with pytest.raises(codec.CodecError) as info:
            decoder.decode(second[:cut])
        assert info.value.code in {"truncated", "compression", "trailing_bytes", "bad_frame", "bad_magic"}
        # A flipped byte decodes or fails with a CodecError, never anything else.
        garbled = bytearray(second)
        pos = data.draw(st.integers(0, len(garbled) - 1))
        garbled[pos] ^= data.draw(st.integers(1, 255))
        probe = codec.StreamDecoder()
        probe.decode(first)
        with contextlib.suppress(codec.CodecError):
            probe.decode(bytes(garbled))
        frames = decoder.decode(second)
        np.testing.assert_array_equal(frames.frame_indices, indices[half:])


# ---------------------------------------------------------------------------------------------------
# Examples


def canonical_stream(seconds: float = 4.0, **kw) -> tuple[codec.Schema, np.ndarray, list[bytes]]:
    schema = codec.canonical_schema()
    values = speech_like(seconds)
    encoder = codec.StreamEncoder(schema, **kw)
    return schema, values, encode_chunks(encoder, values, list(range(10, len(values), 10)))


def test_canonical_schema() -> None:
    schema = codec.canonical_schema()
    assert len(schema) == 73 == len(codec.CANONICAL_NAMES)
    assert schema.names == list(codec.CANONICAL_NAMES)
    assert len(set(codec.ARKIT_NAMES)) == 52 and len(set(codec.VISEME_NAMES)) == 15
    assert codec.VISEME_NAMES[0] == "viseme_sil" and codec.VISEME_NAMES[-1] == "viseme_U"
    assert schema.fps == 25.0
    u8 = codec.canonical_schema(codec.Quant.U8, 30)
    assert {c.quant for c in u8.channels} == {codec.Quant.U8} and u8.fps == 30.0


def test_values_are_a_zero_copy_view() -> None:
    _, _, payloads = canonical_stream()
    frames = codec.StreamDecoder().decode(payloads[0])
    a, b = frames.values, frames.values
    assert not a.flags.owndata and np.shares_memory(a, b)
    del frames
    assert np.isfinite(a).all()  # the view keeps its owner alive


def test_schema_only_on_first_payload_and_on_change() -> None:
    schema, values, payloads = canonical_stream()
    assert payloads[0][3] & 0x01 and not any(p[3] & 0x01 for p in payloads[1:])
    encoder = codec.StreamEncoder(schema)
    decoder = codec.StreamDecoder()
    decoder.decode(encoder.encode(values[:5]))
    other = codec.Schema([codec.Channel("jawOpen"), codec.Channel("custom:wiggle", codec.Quant.U8, -1, 1)])
    encoder.set_schema(other)
    frames = decoder.decode(encoder.encode(np.full((3, 2), 0.25, np.float32)))
    assert frames.schema_changed and frames.names == ["jawOpen", "custom:wiggle"]
    assert list(frames.frame_indices) == [5, 6, 7]


def test_zstd_chunks_are_smaller_and_decode_the_same() -> None:
    _, _, raw = canonical_stream(10.0)
    _, _, packed = canonical_stream(10.0, zstd_level=3)
    a = np.concatenate([f.values for f in map(codec.StreamDecoder().decode, raw)])
    d = codec.StreamDecoder()
    b = np.concatenate([d.decode(p).values for p in packed])
    np.testing.assert_array_equal(a, b)
    assert sum(map(len, packed)) < sum(map(len, raw))


def test_select_maps_by_name() -> None:
    _, _, payloads = canonical_stream()
    frames = codec.StreamDecoder().decode(payloads[0])
    picked = frames.select(["jawOpen", "notAChannel", "headYaw"], fill=-7.0)
    jaw = frames.names.index("jawOpen")
    np.testing.assert_array_equal(picked[:, 0], frames.values[:, jaw])
    assert (picked[:, 1] == -7.0).all()
    # A receiver that knows only some names, in its own order, gets the same numbers.
    rig = list(reversed(codec.ARKIT_NAMES))
    np.testing.assert_array_equal(frames.select(rig), frames.values[:, 51::-1])


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "truncated"),
        (b"AK", "truncated"),
        (b"XY\x01\x00\x00", "bad_magic"),
        (b"AK\x02\x00\x00", "unsupported_version"),
        (b"AK\x01\x80\x00", "unsupported_flags"),
        (b"AK\x01\x00\x01\x00\x00\x00", "missing_schema"),
        (b"AK\x01\x00\x00\x00", "trailing_bytes"),
        (b"AK\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", "bad_frame"),  # varint over 64 bits
        (b"AK\x01\x00\xff\xff\x03", "limit_exceeded"),  # 65535 frames
        (b"AK\x01\x02\x10\x28\xb5\x2f\xfd\x00", "compression"),
        (b"AK\x01\x02\xff\xff\xff\xff\x0f", "limit_exceeded"),  # 4 GiB decompressed
    ],
)
def test_malformed_examples(payload: bytes, code: str) -> None:
    with pytest.raises(codec.CodecError) as info:
        codec.StreamDecoder().decode(payload)
    assert info.value.code == code
    assert isinstance(info.value, ValueError)


def test_huge_counts_allocate_nothing() -> None:
    # 100000 channels declared in a 10-byte payload.
    payload = b"AK\x01\x01" + bytes([5, 25, 1, 0xA0, 0x8D, 0x06])
    with pytest.raises(codec.CodecError) as info:
        codec.StreamDecoder().decode(payload)
    assert info.value.code == "limit_exceeded"
    # A plausible count that the bytes cannot hold.
    payload = b"AK\x01\x01" + bytes([4, 25, 1, 0x90, 0x03])
    with pytest.raises(codec.CodecError) as info:
        codec.StreamDecoder().decode(payload)
    assert info.value.code == "truncated"
    # Many frames for few bytes, and many values out of small frames.
    _, _, payloads = canonical_stream()
    limited = codec.StreamDecoder(max_output_values=73 * 5)
    with pytest.raises(codec.CodecError) as info:
        limited.decode(payloads[0])
    assert info.value.code == "limit_exceeded"
    with pytest.raises(codec.CodecError) as info:
        codec.StreamDecoder(max_payload_bytes=16).decode(payloads[0])
    assert info.value.code == "limit_exceeded"


def test_delta_needs_a_key_frame_and_a_schema() -> None:
    _, _, payloads = canonical_stream()
    with pytest.raises(codec.CodecError) as info:
        codec.StreamDecoder().decode(payloads[1])
    assert info.value.code == "missing_schema"
    decoder = codec.StreamDecoder()
    decoder.decode(payloads[0])
    decoder.reset()
    assert decoder.schema is None and decoder.last_frame_index == -1
    with pytest.raises(codec.CodecError):
        decoder.decode(payloads[1])


def test_payloads_out_of_order_are_rejected() -> None:
    _, _, payloads = canonical_stream()
    decoder = codec.StreamDecoder()
    decoder.decode(payloads[0])
    decoder.decode(payloads[1])
    with pytest.raises(codec.CodecError) as info:
        decoder.decode(payloads[1])  # a replay: indices do not increase
    assert info.value.code in {"bad_frame"}
    decoder.decode(payloads[2])


def test_encoder_rejects_bad_input_and_keeps_state() -> None:
    schema = codec.canonical_schema()
    encoder = codec.StreamEncoder(schema)
    good = speech_like(1.0)
    encoder.encode(good[:5])
    bad = good[5:10].copy()
    bad[2, 3] = np.nan
    with pytest.raises(codec.CodecError) as info:
        encoder.encode(bad)
    assert info.value.code == "invalid_value"
    with pytest.raises(codec.CodecError):
        encoder.encode(good[5:10, :10])
    with pytest.raises(codec.CodecError):
        encoder.encode(good[5:7], np.array([4, 6]))  # index 4 was already sent
    assert encoder.last_frame_index == 4
    with pytest.raises(ValueError):
        codec.Schema([codec.Channel("a"), codec.Channel("a")])
    with pytest.raises(ValueError):
        codec.Schema([codec.Channel("bad name")])
    with pytest.raises(ValueError):
        codec.Schema([codec.Channel("x", lo=1.0, hi=1.0)])
    with pytest.raises(ValueError):
        codec.StreamEncoder(schema, zstd_level=99)


def test_payload_kind() -> None:
    _, _, payloads = canonical_stream()
    assert codec.payload_kind(payloads[0]) == "ak1"
    assert codec.payload_kind(codec.encode_flame(np.zeros((2, 120), np.float32))) == "flame"
    assert codec.payload_kind(b"") == "flame"
    assert codec.payload_kind(b"\x00\x01") == "unknown"
