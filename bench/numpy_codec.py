"""An independent decoder of the AK1 animation stream format (docs/codec.md), written with numpy.

It is the baseline the C++ decoder's speed is measured against and an oracle its output is checked
against: it shares no code with ``cpp/src/codec`` and is written from the specification alone.

Only the walk over the frames is a Python loop, because frames have variable lengths (a frame's size
depends on its type and change mask). It records where each frame's values start and which layout
(the key layout, or one change mask) they follow, nothing more. Everything else is vectorised:
masks are unpacked with ``np.unpackbits`` once per distinct mask, the values of all frames that share
a layout are gathered from the payload in one fancy-indexing step, and the key / delta accumulation
is a cumulative sum over frames whose segments restart at key frames (quantized values live modulo
256 or 65536, both of which divide 2**32, so wrapping ``uint32`` arithmetic is exact).

Errors raise :class:`NumpyCodecError`, a ``ValueError`` whose ``code`` uses the C++ decoder's names;
a payload that fails leaves the decoder as it was.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import zstandard

__all__ = ["NumpyCodecError", "NumpyDecoded", "NumpyLimits", "NumpySchema", "NumpyStreamDecoder"]

_MAGIC = b"AK"
_VERSION = 1
_FLAG_SCHEMA = 0x01
_FLAG_ZSTD = 0x02
_KEY, _DELTA, _DELTA_SAME = 0, 1, 2
_MAX_FPS_TERM = 1000
_MAX_INDEX = 1 << 53
_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")
_KEY_LAYOUT = 0  # layout id of key frames; change masks get ids 1, 2, ...
# Up to this many frames per payload (measured: the crossover is between 8 and 25), applying frames
# one by one is faster than the prefix-sum formulation, which costs some 30 numpy calls per payload.
_SEQUENTIAL_FRAMES = 12


class NumpyCodecError(ValueError):
    """A payload this decoder cannot take; ``code`` names the reason as the C++ decoder does."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class NumpyLimits:
    """The decoder limits of docs/codec.md, with the same defaults as the C++ ``Limits``."""

    max_channels: int = 1024
    max_frames: int = 16384
    max_payload_bytes: int = 16 << 20
    max_decompressed_bytes: int = 16 << 20
    max_output_values: int = 16 << 20


@dataclass(frozen=True)
class NumpySchema:
    """A parsed schema plus the per-channel arrays the decoder works with."""

    fps_num: int
    fps_den: int
    names: tuple[str, ...]
    quants: tuple[int, ...]  # 1 = u8, 2 = u16 (also the width in bytes)
    los: tuple[float, ...]  # float32 values, held as Python floats
    his: tuple[float, ...]
    width: npt.NDArray[np.intp] = field(init=False, repr=False, compare=False)
    maxq: npt.NDArray[np.uint32] = field(init=False, repr=False, compare=False)
    offset: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)
    scale: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        width = np.asarray(self.quants, np.intp)
        maxq = np.where(width == 1, 255, 65535).astype(np.uint32)
        lo = np.asarray(self.los, np.float64)
        hi = np.asarray(self.his, np.float64)
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "maxq", maxq)
        object.__setattr__(self, "offset", lo.astype(np.float32))
        # One step, (hi - lo) / M, is computed in double and rounded once to float32; a value then
        # decodes as the float32 expression lo + float(q) * step.
        object.__setattr__(self, "scale", ((hi - lo) / maxq).astype(np.float32))

    @property
    def fps(self) -> float:
        """Frames per second."""
        return self.fps_num / self.fps_den

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class NumpyDecoded:
    """Frames decoded from one payload, like the C++ ``DecodedFrames``."""

    values: npt.NDArray[np.float32]  # frames x channels
    frame_indices: npt.NDArray[np.int64]
    schema: NumpySchema | None
    schema_changed: bool

    @property
    def names(self) -> tuple[str, ...]:
        """Channel names, one per column of ``values``."""
        return self.schema.names if self.schema is not None else ()

    def __len__(self) -> int:
        return len(self.frame_indices)


@dataclass(frozen=True)
class _Layout:
    """Where the values of a frame are, relative to the first one's byte.

    A value is ``data[low] + 256 * data[high]`` for u16 and ``data[low]`` for u8 (``high_weight`` 0).
    """

    channels: npt.NDArray[np.intp]
    low: npt.NDArray[np.intp]
    high: npt.NDArray[np.intp]
    high_weight: npt.NDArray[np.uint32]
    nbytes: int


def _layout(schema: NumpySchema, channels: npt.NDArray[np.intp]) -> _Layout:
    widths = schema.width[channels]
    ends = np.cumsum(widths)
    low = ends - widths
    return _Layout(
        channels=channels,
        low=low,
        high=ends - 1,
        high_weight=np.where(widths == 2, 256, 0).astype(np.uint32),
        nbytes=int(ends[-1]) if len(ends) else 0,
    )


def _mask_layout(schema: NumpySchema, mask: bytes) -> _Layout:
    bits = np.unpackbits(np.frombuffer(mask, np.uint8), bitorder="little")
    return _layout(schema, np.flatnonzero(bits))


def _varint(buf: bytes, pos: int, what: str) -> tuple[int, int]:
    """Read an unsigned LEB128 varint (at most 10 bytes, fits 64 bits); return it and the next position."""
    result = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            raise NumpyCodecError("truncated", f"truncated payload: {what}")
        byte = buf[pos]
        pos += 1
        if shift == 63 and (byte & 0x7F) > 1:
            raise NumpyCodecError("bad_frame", f"varint overflows 64 bits in {what}")
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
    raise NumpyCodecError("bad_frame", f"varint longer than 10 bytes in {what}")


def _need(buf: bytes, pos: int, n: int, what: str) -> None:
    if pos + n > len(buf):
        raise NumpyCodecError("truncated", f"truncated payload: {what}")


def _parse_schema(buf: bytes, pos: int, limits: NumpyLimits) -> tuple[NumpySchema, int]:
    """Parse the schema block at ``pos``; return it and the position after it."""
    length, pos = _varint(buf, pos, "schema length")
    if length > len(buf) - pos:
        raise NumpyCodecError("truncated", "truncated payload: schema block is longer than the payload")
    block, end, pos = buf[pos : pos + length], pos + length, 0
    fps_num, pos = _varint(block, pos, "fps numerator")
    fps_den, pos = _varint(block, pos, "fps denominator")
    if not (1 <= fps_num <= _MAX_FPS_TERM and 1 <= fps_den <= _MAX_FPS_TERM):
        raise NumpyCodecError("bad_schema", f"schema fps {fps_num}/{fps_den} is outside 1..1000 / 1..1000")
    count, pos = _varint(block, pos, "channel count")
    if count > limits.max_channels:
        raise NumpyCodecError("limit_exceeded", f"schema has {count} channels, limit {limits.max_channels}")
    if count > (len(block) - pos) // 11:
        raise NumpyCodecError("truncated", "truncated payload: schema lists more channels than it holds")
    names: list[bytes] = []
    quants: list[int] = []
    ranges: list[tuple[float, float]] = []
    for i in range(count):
        _need(block, pos, 1, "channel name length")
        name_len = block[pos]
        _need(block, pos, 2 + name_len, "channel name")
        names.append(block[pos + 1 : pos + 1 + name_len])
        pos += 1 + name_len
        quant = block[pos]
        if quant not in (1, 2):
            raise NumpyCodecError("bad_schema", f"channel {i} has unknown quantization {quant}")
        pos += 1
        _need(block, pos, 8, "channel range")
        ranges.append(struct.unpack_from("<ff", block, pos))
        pos += 8
        quants.append(quant)
    if pos != len(block):
        raise NumpyCodecError("bad_schema", f"schema block has {len(block) - pos} unread bytes")
    if count == 0:
        raise NumpyCodecError("bad_schema", "schema has no channels")
    for name, (lo, hi) in zip(names, ranges, strict=True):
        if not 1 <= len(name) <= 64 or not _NAME_CHARS.issuperset(name):
            raise NumpyCodecError("bad_schema", "channel name must be 1..64 bytes of [A-Za-z0-9_.:-]")
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise NumpyCodecError("bad_schema", f"channel {name!r} needs finite lo < hi")
    if len(set(names)) != len(names):
        raise NumpyCodecError("bad_schema", "a channel name appears twice")
    schema = NumpySchema(
        fps_num,
        fps_den,
        tuple(name.decode("ascii") for name in names),
        tuple(quants),
        tuple(lo for lo, _ in ranges),
        tuple(hi for _, hi in ranges),
    )
    return schema, end


class NumpyStreamDecoder:
    """Decodes the payloads of one AK1 stream in order, like the C++ ``StreamDecoder``."""

    def __init__(self, limits: NumpyLimits | None = None) -> None:
        self.limits = limits or NumpyLimits()
        self._dctx = zstandard.ZstdDecompressor()
        self.reset()

    def reset(self) -> None:
        """Forget the schema and the reference frame (start a new stream)."""
        self.schema: NumpySchema | None = None
        self.last_frame_index = -1
        self._state = np.zeros(0, np.uint32)  # last quantized value per channel
        self._mask: bytes | None = None  # last explicit change mask
        self._have_reference = False
        # A cache, not state: layouts depend on the schema and the mask only. Index 0 is the key layout.
        self._layouts: list[_Layout] = []
        self._layout_ids: dict[bytes, int] = {}

    def _content(self, payload: bytes) -> tuple[int, bytes, int]:
        """Check the header; return the flags, the content (decompressed) and where it starts."""
        if len(payload) > self.limits.max_payload_bytes:
            raise NumpyCodecError("limit_exceeded", f"payload of {len(payload)} bytes is over the limit")
        if len(payload) < 4:
            raise NumpyCodecError("truncated", "truncated payload: header needs 4 bytes")
        if payload[:2] != _MAGIC:
            raise NumpyCodecError("bad_magic", "not an AvatarKit animation payload (bad magic)")
        if payload[2] != _VERSION:
            raise NumpyCodecError("unsupported_version", f"unsupported format version {payload[2]}")
        flags = payload[3]
        if flags & ~(_FLAG_SCHEMA | _FLAG_ZSTD):
            raise NumpyCodecError("unsupported_flags", f"unsupported flags {flags:#x}")
        if not flags & _FLAG_ZSTD:
            return flags, payload, 4
        raw, pos = _varint(payload, 4, "decompressed size")
        if raw > self.limits.max_decompressed_bytes:
            raise NumpyCodecError("limit_exceeded", f"declared decompressed size {raw} is over the limit")
        frame = payload[pos:]
        try:
            declared = zstandard.frame_content_size(frame)
            if declared != raw:  # checked first: nothing is decompressed past the declared, bounded size
                raise NumpyCodecError("compression", "zstd section does not declare the decompressed size")
            stream = self._dctx.decompressobj()
            content = stream.decompress(frame)
        except zstandard.ZstdError as err:
            raise NumpyCodecError("compression", f"corrupt zstd section: {err}") from None
        if not stream.eof or len(content) != raw:
            raise NumpyCodecError("compression", "corrupt zstd section: the frame is incomplete")
        if stream.unused_data:
            raise NumpyCodecError("trailing_bytes", "bytes after the zstd section")
        return flags, content, 0

    def decode(self, payload: bytes | bytearray | memoryview) -> NumpyDecoded:
        """Decode one payload; raise NumpyCodecError and keep the decoder's state when it is malformed."""
        flags, buf, pos = self._content(bytes(payload))
        end = len(buf)

        schema, layouts, layout_ids = self.schema, self._layouts, self._layout_ids
        schema_changed = False
        have_reference, mask = self._have_reference, self._mask
        if flags & _FLAG_SCHEMA:
            parsed, pos = _parse_schema(buf, pos, self.limits)
            if schema is None or schema != parsed:
                schema, schema_changed = parsed, True
                layouts, layout_ids = [_layout(parsed, np.arange(len(parsed)))], {}
            have_reference, mask = False, None  # the first frame after a schema block is a key frame

        frame_count, pos = _varint(buf, pos, "frame count")
        if frame_count > self.limits.max_frames:
            raise NumpyCodecError("limit_exceeded", f"payload has {frame_count} frames")
        if frame_count > 0 and schema is None:
            raise NumpyCodecError("missing_schema", "frames before any schema")
        if frame_count > (end - pos) // 2:
            raise NumpyCodecError("truncated", "truncated payload: fewer bytes than frames declared")
        k = len(schema) if schema is not None else 0
        if frame_count and frame_count > self.limits.max_output_values // k:
            raise NumpyCodecError("limit_exceeded", "payload decodes to too many values")

        # The walk: per frame, its index, its layout and where its values start.
        mask_bytes = (k + 7) // 8
        tail_bits = 0xFF & ~((1 << (k % 8)) - 1) if k % 8 else 0
        mask_layout = layout_ids[mask] if mask is not None else -1
        key_bytes = layouts[_KEY_LAYOUT].nbytes if layouts else 0
        last = self.last_frame_index
        indices: list[int] = []
        frame_layouts: list[int] = []
        starts: list[int] = []
        for _ in range(frame_count):
            if pos >= end:
                raise NumpyCodecError("truncated", "truncated payload: frame type")
            kind = buf[pos]
            if kind > _DELTA_SAME:
                raise NumpyCodecError("bad_frame", f"unknown frame type {kind}")
            if pos + 1 < end and buf[pos + 1] < 0x80:  # a one-byte index or step: the common case
                number, pos = buf[pos + 1], pos + 2
            else:
                number, pos = _varint(buf, pos + 1, "frame index")
            if kind == _KEY:
                if number > _MAX_INDEX:
                    raise NumpyCodecError("bad_frame", "frame index over 2^53")
                if number <= last:
                    raise NumpyCodecError("bad_frame", f"frame index {number} does not follow {last}")
                layout, nbytes = _KEY_LAYOUT, key_bytes
                have_reference = True
            else:
                if not have_reference:
                    raise NumpyCodecError("missing_key_frame", "delta frame without a preceding key frame")
                if number < 1 or number > _MAX_INDEX - last:
                    raise NumpyCodecError("bad_frame", f"frame index step {number} is out of range")
                number += last
                if kind == _DELTA:
                    if pos + mask_bytes > end:
                        raise NumpyCodecError("truncated", "truncated payload: change mask")
                    mask = buf[pos : pos + mask_bytes]
                    pos += mask_bytes
                    known = layout_ids.get(mask)
                    if known is None:
                        if mask[-1] & tail_bits:
                            raise NumpyCodecError("bad_frame", "change mask names channels beyond the schema")
                        assert schema is not None
                        layouts.append(_mask_layout(schema, mask))
                        known = layout_ids[mask] = len(layouts) - 1
                    mask_layout = known
                elif mask_layout < 0:
                    raise NumpyCodecError("bad_frame", "delta frame reuses a change mask that was never sent")
                layout, nbytes = mask_layout, layouts[mask_layout].nbytes
            if pos + nbytes > end:
                raise NumpyCodecError("truncated", "truncated payload: frame values")
            indices.append(number)
            frame_layouts.append(layout)
            starts.append(pos)
            pos += nbytes
            last = number
        if pos != end:
            raise NumpyCodecError("trailing_bytes", f"{end - pos} bytes after the last frame")

        state = self._state if not schema_changed and len(self._state) == k else np.zeros(k, np.uint32)
        values = np.empty((frame_count, k), np.float32)
        if frame_count:
            assert schema is not None
            state = _accumulate(buf, schema, layouts, frame_layouts, starts, state, values)

        self.schema, self._layouts, self._layout_ids = schema, layouts, layout_ids
        self._state, self._mask, self._have_reference = state, mask, have_reference
        self.last_frame_index = last
        return NumpyDecoded(values, np.asarray(indices, np.int64), schema, schema_changed)


def _apply_in_turn(
    data: npt.NDArray[np.uint8],
    schema: NumpySchema,
    layouts: list[_Layout],
    frame_layouts: list[int],
    starts: list[int],
    state: npt.NDArray[np.uint32],
    out: npt.NDArray[np.float32],
) -> npt.NDArray[np.uint32]:
    """The same as ``_accumulate`` one frame at a time, for payloads of a few frames."""
    q = state.copy()
    for row, (layout_id, start) in enumerate(zip(frame_layouts, starts, strict=True)):
        layout = layouts[layout_id]
        value = data[start + layout.low].astype(np.uint32) + data[start + layout.high] * layout.high_weight
        if layout_id == _KEY_LAYOUT:
            q[:] = value
        else:
            changed = layout.channels
            q[changed] = (q[changed] + value) & schema.maxq[changed]
        np.add(schema.offset, q.astype(np.float32) * schema.scale, out=out[row])
    return q


def _accumulate(
    buf: bytes,
    schema: NumpySchema,
    layouts: list[_Layout],
    frame_layouts: list[int],
    starts: list[int],
    state: npt.NDArray[np.uint32],
    out: npt.NDArray[np.float32],
) -> npt.NDArray[np.uint32]:
    """Gather every frame's values, apply the deltas, dequantize into ``out``; return the new state."""
    n, k = out.shape
    data = np.frombuffer(buf, np.uint8)
    if n <= _SEQUENTIAL_FRAMES:
        return _apply_in_turn(data, schema, layouts, frame_layouts, starts, state, out)
    layout_of = np.asarray(frame_layouts, np.intp)
    start_of = np.asarray(starts, np.intp)
    # Row 0 is the reference the stream had before this payload; row f + 1 is frame f. A key row holds
    # absolute values, a delta row the wrapped differences (zero for the channels it leaves alone).
    rows = np.zeros((n + 1, k), np.uint32)
    rows[0] = state
    # One gather for all frames: the flat list of (frame, value of its layout) pairs, in frame order.
    used, frame_layout = np.unique(layout_of, return_inverse=True)
    pool = [layouts[i] for i in used]
    pool_count = np.array([len(layout.channels) for layout in pool], np.intp)
    pool_start = np.cumsum(pool_count) - pool_count
    channel = np.concatenate([layout.channels for layout in pool])
    low = np.concatenate([layout.low for layout in pool])
    high = np.concatenate([layout.high for layout in pool])
    high_weight = np.concatenate([layout.high_weight for layout in pool])
    count = pool_count[frame_layout]
    frame = np.repeat(np.arange(n), count)
    first = np.cumsum(count) - count  # where each frame's values start in the flat list
    item = (pool_start[frame_layout] - first)[frame] + np.arange(len(frame))  # index into the pool
    start = start_of[frame]
    value = data[start + low[item]].astype(np.uint32) + data[start + high[item]] * high_weight[item]
    rows[frame + 1, channel[item]] = value
    # Prefix sums restarted at every key row: q[f] = rows[key(f)] + ... + rows[f], modulo M + 1.
    total = np.cumsum(rows, axis=0, dtype=np.uint32)
    is_key = np.empty(n + 1, bool)
    is_key[0] = True
    np.equal(layout_of, _KEY_LAYOUT, out=is_key[1:])
    key_row = np.maximum.accumulate(np.where(is_key, np.arange(n + 1), 0))
    q = (total - (total - rows)[key_row]) & schema.maxq
    np.add(schema.offset, q[1:].astype(np.float32) * schema.scale, out=out)
    new_state: npt.NDArray[np.uint32] = q[-1].copy()
    return new_state
