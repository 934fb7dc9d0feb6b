"""Audio input of one request: PCM16 chunks or one continuous Ogg Opus stream, to PCM16 samples.

Both decoders are incremental: ``feed`` takes whatever bytes a message carried and returns the
samples that became available, ``finish`` returns the rest at the end of the request.

PCM16 chunks need not hold whole samples: a chunk of odd length leaves its last byte waiting for
the next chunk (clients that cut a byte stream at arbitrary places lose nothing). Only if the
request's audio as a whole has an odd length is one byte left over at the end; ``finish`` then
reports it in :attr:`PcmInput.dropped_bytes` so the service can tell the client.

Ogg Opus is parsed page by page here (RFC 3533, RFC 7845) and its packets are decoded with FFmpeg's
Opus decoder through PyAV (the optional ``av`` package), then resampled to the session's rate and
mixed to mono. Pre-skip is honoured and the end is trimmed to the last page's granule position.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import av

__all__ = ["AudioDecodeError", "AudioInput", "OggOpusInput", "PcmInput", "opus_available"]

I16 = npt.NDArray[np.int16]
_EMPTY = np.zeros(0, np.int16)


class AudioDecodeError(ValueError):
    """The request's audio cannot be decoded (the message says why)."""


class AudioInput(Protocol):
    """The incremental decoder of one request's audio."""

    def feed(self, data: bytes) -> I16:
        """Add the bytes of one message; returns the samples now available."""
        ...

    def finish(self) -> I16:
        """End of the request: the remaining samples."""
        ...


class PcmInput:
    """PCM16 little-endian mono, with a carry byte between chunks of odd length."""

    def __init__(self) -> None:
        self._carry = b""
        #: Bytes left over at the end (0, or 1 when the request's total length was odd).
        self.dropped_bytes = 0

    def feed(self, data: bytes) -> I16:
        """Add a chunk; a trailing odd byte waits for the next chunk."""
        if self._carry:
            data = self._carry + data
            self._carry = b""
        if len(data) % 2:
            self._carry = data[-1:]
            data = data[:-1]
        return np.frombuffer(data, "<i2").astype(np.int16, copy=False) if data else _EMPTY

    def finish(self) -> I16:
        """End of the request; a left-over byte is counted in ``dropped_bytes``."""
        self.dropped_bytes = len(self._carry)
        self._carry = b""
        return _EMPTY


def opus_available() -> bool:
    """Whether the optional PyAV package (``pip install av``) that decodes Ogg Opus is installed."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


_PAGE_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, type, granule, serial, seq, crc, segments
_MAX_PACKET = 1 << 20  # Opus packets are at most 61,440 bytes (RFC 6716 with 120 ms of frames)
_OPUS_RATE = 48000


class OggOpusInput:
    """One continuous Ogg Opus stream, decoded as its pages arrive.

    Args:
        sample_rate: the rate to deliver PCM at (the session's).
    """

    def __init__(self, sample_rate: int) -> None:
        import av

        self._av = av
        self._rate = sample_rate
        self._buffer = bytearray()
        self._packet = bytearray()  # a packet continued across pages
        self._serial: int | None = None
        self._packets_seen = 0
        self._pre_skip = 0
        self._decoder: av.AudioCodecContext | None = None
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
        self._decoded = 0  # samples at 48 kHz delivered to the resampler, after pre-skip
        self._limit: int | None = None  # end trim from the last granule position
        self._eos = False

    def feed(self, data: bytes) -> I16:
        """Add bytes of the stream; returns the samples of every page completed by them."""
        self._buffer += data
        chunks: list[I16] = []
        while True:
            page = self._next_page()
            if page is None:
                break
            granule, packets = page
            for packet in packets:
                chunks.append(self._packet_samples(packet, granule))
        return np.concatenate(chunks) if chunks else _EMPTY

    def finish(self) -> I16:
        """End of the stream: flush the decoder and the resampler."""
        if self._buffer:
            raise AudioDecodeError(f"Ogg stream ends inside a page ({len(self._buffer)} bytes left over)")
        chunks: list[I16] = []
        if self._decoder is not None:
            try:
                frames = self._decoder.decode(None)
            except self._av.error.FFmpegError as err:  # pragma: no cover - FFmpeg-internal
                raise AudioDecodeError(f"Opus decoder failed: {err}") from err
            chunks.extend(self._resample(frame) for frame in frames)
        chunks.append(self._flush_resampler())
        return np.concatenate(chunks)

    # ------------------------------------------------------------------ Ogg pages

    def _next_page(self) -> tuple[int, list[bytes]] | None:
        buf = self._buffer
        if len(buf) < _PAGE_HEADER.size:
            if buf and not b"OggS".startswith(bytes(buf[:4])):
                raise AudioDecodeError("not an Ogg stream (no OggS capture pattern)")
            return None
        capture, version, header_type, granule, serial, _, _, count = _PAGE_HEADER.unpack_from(buf)
        if capture != b"OggS" or version != 0:
            raise AudioDecodeError("not an Ogg stream (bad page header)")
        body_start = _PAGE_HEADER.size + count
        if len(buf) < body_start:
            return None
        lacing = buf[_PAGE_HEADER.size : body_start]
        end = body_start + sum(lacing)
        if len(buf) < end:
            return None
        if self._eos:
            raise AudioDecodeError("data after the end of the Ogg stream")
        if self._serial is None:
            if not header_type & 0x02:
                raise AudioDecodeError("the Ogg stream does not begin with a beginning-of-stream page")
            self._serial = serial
        elif serial != self._serial:
            raise AudioDecodeError("multiplexed or chained Ogg streams are not supported")
        packets = []
        pos = body_start
        for size in lacing:
            self._packet += buf[pos : pos + size]
            pos += size
            if len(self._packet) > _MAX_PACKET:
                raise AudioDecodeError("Opus packet too large")
            if size < 255:
                packets.append(bytes(self._packet))
                self._packet.clear()
        del buf[:end]
        self._eos = bool(header_type & 0x04)
        return granule, packets

    # ------------------------------------------------------------------ Opus packets

    def _packet_samples(self, packet: bytes, granule: int) -> I16:
        self._packets_seen += 1
        if self._packets_seen == 1:
            self._open(packet)
            return _EMPTY
        if self._packets_seen == 2:
            if not packet.startswith(b"OpusTags"):
                raise AudioDecodeError("the second Ogg packet is not OpusTags")
            return _EMPTY
        assert self._decoder is not None
        if granule >= 0:  # the page's granule bounds the samples through its last packet
            self._limit = max(0, granule - self._pre_skip)
        try:
            frames = self._decoder.decode(self._av.Packet(packet))
        except self._av.error.FFmpegError as err:
            raise AudioDecodeError(f"invalid Opus packet: {err}") from err
        return np.concatenate([self._resample(f) for f in frames]) if frames else _EMPTY

    def _open(self, head: bytes) -> None:
        if len(head) < 19 or not head.startswith(b"OpusHead"):
            raise AudioDecodeError("the Ogg stream is not Opus (no OpusHead)")
        version, channels, pre_skip, _, _, family = struct.unpack_from("<BBHIhB", head, 8)
        if version >> 4 != 0 or channels == 0 or (family == 0 and channels > 2) or family not in (0, 1):
            raise AudioDecodeError(
                f"unsupported OpusHead (version {version}, {channels} channels, mapping family {family})"
            )
        self._pre_skip = pre_skip
        decoder = self._av.CodecContext.create("opus", "r")
        assert isinstance(decoder, self._av.AudioCodecContext)
        decoder.extradata = head  # FFmpeg reads the channel layout and drops pre-skip itself
        self._decoder = decoder

    def _resample(self, frame: av.AudioFrame) -> I16:
        samples = frame.samples
        trim = self._limit is not None and self._decoded + samples > self._limit
        if trim and frame.format.name in ("flt", "fltp"):  # what FFmpeg's Opus decoder outputs
            assert self._limit is not None
            keep = max(0, self._limit - self._decoded)
            if keep == 0:
                return _EMPTY
            # Trim at the granule position: resample only the part the stream declares.
            per_sample = 1 if frame.format.is_planar else len(frame.layout.channels)
            array = np.asarray(frame.to_ndarray(), np.float32)[..., : keep * per_sample]
            trimmed = self._av.AudioFrame.from_ndarray(
                np.ascontiguousarray(array), format=frame.format.name, layout=frame.layout.name
            )
            trimmed.sample_rate = frame.sample_rate
            frame, samples = trimmed, keep
        self._decoded += samples
        return self._resampled(self._resampler.resample(frame))

    def _flush_resampler(self) -> I16:
        return self._resampled(self._resampler.resample(None))

    @staticmethod
    def _resampled(frames: list[av.AudioFrame]) -> I16:
        if not frames:
            return _EMPTY
        return np.concatenate([f.to_ndarray().reshape(-1).astype(np.int16, copy=False) for f in frames])
