"""
Animation stream codec and the FlameAnimation reader.
"""

from __future__ import annotations

import collections.abc
import typing

import numpy
import numpy.typing
import typing_extensions

class CodecError(ValueError):
    """
    A payload or argument the codec cannot take. `code` names the reason (truncated, bad_magic, ...).
    """

    code: str

class Quant:
    """
    Quantization of one channel: unsigned 8 or 16 bits over [lo, hi].

    Members:

      U8

      U16
    """

    U16: typing.ClassVar[Quant]
    U8: typing.ClassVar[Quant]
    __members__: typing.ClassVar[dict[str, Quant]]
    @typing.overload
    def __eq__(self, other: Quant) -> bool: ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool: ...
    def __getstate__(self) -> int: ...
    def __hash__(self) -> int: ...
    def __index__(self) -> int: ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def __int__(self) -> int: ...
    @typing.overload
    def __ne__(self, other: Quant) -> bool: ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool: ...
    def __repr__(self) -> str: ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def __str__(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class Channel:
    """
    One channel of the stream: a name and its quantization range.
    """
    def __eq__(self, other: typing.Any) -> typing.Any: ...
    def __hash__(self) -> int: ...
    def __init__(
        self,
        name: str,
        quant: Quant = Quant.U16,
        lo: typing.SupportsFloat | typing.SupportsIndex = 0.0,
        hi: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    ) -> None: ...
    def __repr__(self) -> str: ...
    @property
    def hi(self) -> float:
        """
        The value of the largest quantized step.
        """
    @property
    def lo(self) -> float:
        """
        The value of quantized 0.
        """
    @property
    def name(self) -> str:
        """
        The channel's name (an ARKit, viseme or head name for the canonical set).
        """
    @property
    def quant(self) -> Quant:
        """
        How its values are quantized (8 or 16 bits).
        """
    @property
    def step(self) -> float:
        """
        One quantization step in channel units.
        """

class Schema:
    """
    Frame rate and channels of a stream.
    """
    def __eq__(self, other: typing.Any) -> typing.Any: ...
    def __hash__(self) -> int: ...
    def __init__(
        self,
        channels: collections.abc.Sequence[Channel],
        fps_num: typing.SupportsInt | typing.SupportsIndex = 25,
        fps_den: typing.SupportsInt | typing.SupportsIndex = 1,
    ) -> None: ...
    def __len__(self) -> int: ...
    def __repr__(self) -> str: ...
    @property
    def channels(self) -> list[Channel]:
        """
        The channels in stream order.
        """
    @property
    def fps(self) -> float:
        """
        Frames per second.
        """
    @property
    def fps_den(self) -> int:
        """
        Frame rate denominator.
        """
    @property
    def fps_num(self) -> int:
        """
        Frame rate numerator (fps = fps_num / fps_den).
        """
    @property
    def names(self) -> list[str]:
        """
        Channel names in stream order.
        """

class DecodedFrames:
    """
    Frames decoded from one payload.
    """
    def __len__(self) -> int: ...
    def select(
        self, names: collections.abc.Sequence[str], fill: typing.SupportsFloat | typing.SupportsIndex = 0.0
    ) -> numpy.typing.NDArray[numpy.float32]:
        """
        Columns for `names` in that order; names this stream does not carry are filled with `fill`.
        """
    @property
    def fps(self) -> float:
        """
        Frames per second of the stream (0.0 before any schema).
        """
    @property
    def frame_indices(self) -> numpy.typing.NDArray[numpy.int64]:
        """
        int64 array, the index of each frame in its stream.
        """
    @property
    def names(self) -> list[str]:
        """
        Channel names, one per column of `values`.
        """
    @property
    def schema(self) -> Schema | None:
        """
        The schema these frames were decoded with (None before any).
        """
    @property
    def schema_changed(self) -> bool:
        """
        Whether this payload carried a new schema.
        """
    @property
    def values(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        float32 array, frames x channels; a view that keeps this object alive.
        """

class StreamDecoder:
    """
    Decodes the payloads of one stream in order (delta frames refer to earlier payloads).
    """
    def __init__(
        self,
        max_channels: typing.SupportsInt | typing.SupportsIndex = 1024,
        max_frames: typing.SupportsInt | typing.SupportsIndex = 16384,
        max_payload_bytes: typing.SupportsInt | typing.SupportsIndex = 16777216,
        max_decompressed_bytes: typing.SupportsInt | typing.SupportsIndex = 16777216,
        max_output_values: typing.SupportsInt | typing.SupportsIndex = 16777216,
    ) -> None: ...
    def decode(self, payload: typing_extensions.Buffer) -> DecodedFrames:
        """
        Decode one payload; raises CodecError and keeps the decoder's state when it is malformed.
        """
    def reset(self) -> None:
        """
        Forget the schema and reference frame (start a new stream).
        """
    @property
    def last_frame_index(self) -> int:
        """
        The index of the last frame decoded (-1 before any).
        """
    @property
    def schema(self) -> Schema | None:
        """
        The stream's current schema (None before its first key payload).
        """

class StreamEncoder:
    """
    Encodes a stream of frames into payloads.
    """
    def __init__(
        self,
        schema: Schema,
        key_interval: typing.SupportsInt | typing.SupportsIndex = 25,
        zstd_level: typing.SupportsInt | typing.SupportsIndex = 0,
        reuse_masks: bool = True,
    ) -> None: ...
    def encode(
        self,
        values: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        frame_indices: typing.Annotated[numpy.typing.ArrayLike, numpy.int64] | None = None,
    ) -> bytes:
        """
        Encode frames (float32, frames x channels) into one payload. Indices default to the next ones.
        """
    def force_key_frame(self) -> None:
        """
        Make the next frame a key frame.
        """
    def set_schema(self, schema: Schema) -> None:
        """
        Switch schema; the next payload carries it and starts with a key frame.
        """
    @property
    def last_frame_index(self) -> int:
        """
        The index of the last frame encoded (-1 before any).
        """
    @property
    def schema(self) -> Schema:
        """
        The schema frames are encoded with.
        """

def canonical_schema(quant: Quant = Quant.U16, fps: typing.SupportsInt | typing.SupportsIndex = 25) -> Schema:
    """
    The canonical 73-channel schema: ARKit-52, 15 visemes, head rotation (rad), head translation (m).
    """

def decode_flame(payload: typing_extensions.Buffer) -> numpy.typing.NDArray[numpy.float32]:
    """
    Decode a FlameAnimation protobuf into float32 keyframes x 120 (columns: flame_channel_names()).
    """

def encode_flame(values: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> bytes:
    """
    Encode keyframes x 120 as a FlameAnimation protobuf.
    """

def flame_channel_names() -> list[str]:
    """
    Column names of decode_flame(): flame_translation_0 ... flame_expression_99.
    """

ARKIT_NAMES: tuple[str, ...]
HEAD_ROTATION_NAMES: tuple[str, ...]
HEAD_TRANSLATION_NAMES: tuple[str, ...]
VISEME_NAMES: tuple[str, ...]
