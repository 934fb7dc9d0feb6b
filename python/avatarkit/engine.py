"""The audio-to-animation engine: speech PCM in, 25 fps canonical channel frames out, streaming.

Frame ``k`` covers audio from ``40 k`` ms to ``40 (k + 1)`` ms; a request of ``d`` seconds yields
``ceil(d / 0.04)`` frames. A frame is emitted at most ``lookahead_ms`` of audio after its end.

This module fixes the interface the driving service uses. The current implementation is a
baseline (loudness opens the jaw, spectral tilt picks a vowel shape); the lip-sync model replaces
its internals behind the same interface.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .codec import CANONICAL_NAMES, VISEME_NAMES

F32 = npt.NDArray[np.float32]

FPS = 25
SUPPORTED_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


class EngineSession:
    """One request's worth of streaming state. Not thread-safe; one per request.

    Args:
        sample_rate: the PCM rate in Hz (one of :data:`SUPPORTED_RATES`).
    """

    channels: tuple[str, ...] = CANONICAL_NAMES
    #: Audio after a frame's end that the engine waits for before emitting the frame.
    lookahead_ms: float = 40.0

    def __init__(self, sample_rate: int) -> None:
        if sample_rate not in SUPPORTED_RATES:
            raise ValueError(f"unsupported sample rate {sample_rate}; use one of {SUPPORTED_RATES}")
        self.sample_rate = sample_rate
        self._hop = sample_rate // FPS if sample_rate % FPS == 0 else sample_rate / FPS
        self._buffer = np.zeros(0, np.float32)
        self._consumed = 0  # samples before _buffer[0]
        self._frames = 0  # frames emitted
        self._total = 0  # samples pushed
        self._col = {n: i for i, n in enumerate(self.channels)}
        self._smooth = np.zeros(len(self.channels), np.float32)
        self._noise_floor = 1e-3

    @property
    def frames_emitted(self) -> int:
        """Frames returned so far."""
        return self._frames

    def push(self, pcm: bytes | npt.NDArray[np.int16]) -> F32:
        """Add PCM16 mono samples; returns the frames that became complete (``n x len(channels)``)."""
        samples = np.frombuffer(pcm, "<i2") if isinstance(pcm, bytes | bytearray | memoryview) else np.asarray(pcm)
        if samples.dtype != np.int16:
            raise ValueError("pcm must be 16-bit signed samples")
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32) / 32768.0])
        self._total += len(samples)
        lookahead = int(self.sample_rate * self.lookahead_ms / 1000)
        ready = 0
        while self._frame_end(self._frames + ready) + lookahead <= self._total:
            ready += 1
        return self._emit(ready)

    def flush(self) -> F32:
        """End of the request: the remaining frames, so the total is ``ceil(duration / 0.04)``."""
        total_frames = math.ceil(self._total / (self.sample_rate / FPS) - 1e-9)
        return self._emit(max(0, total_frames - self._frames))

    def _frame_end(self, k: int) -> int:
        return round((k + 1) * self.sample_rate / FPS)

    def _emit(self, count: int) -> F32:
        out = np.zeros((count, len(self.channels)), np.float32)
        for i in range(count):
            k = self._frames + i
            start = round(k * self.sample_rate / FPS) - self._consumed
            end = self._frame_end(k) - self._consumed
            out[i] = self._frame(self._buffer[max(0, start) : max(0, end)])
        self._frames += count
        # Drop audio no later frame needs.
        keep_from = round(self._frames * self.sample_rate / FPS) - self._consumed
        if keep_from > 0:
            self._buffer = self._buffer[keep_from:]
            self._consumed += keep_from
        return out

    def _frame(self, chunk: F32) -> F32:
        values = np.zeros(len(self.channels), np.float32)
        rms = float(np.sqrt(np.mean(chunk * chunk))) if len(chunk) else 0.0
        self._noise_floor = min(max(self._noise_floor * 0.999, 1e-4), rms) if rms > 0 else self._noise_floor
        level = max(0.0, 20 * math.log10(max(rms, 1e-6)) + 50) / 35  # -50 dBFS -> 0, -15 dBFS -> 1
        openness = min(1.0, level)
        values[self._col["jawOpen"]] = 0.7 * openness
        if openness < 0.08:
            values[self._col["viseme_sil"]] = 1.0
        else:
            # Spectral tilt: bright frames read as spread vowels, dark ones as rounded.
            spectrum = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk)))) if len(chunk) > 8 else np.zeros(2)
            freqs = np.fft.rfftfreq(len(chunk), 1 / self.sample_rate) if len(chunk) > 8 else np.zeros(2)
            centroid = float((spectrum * freqs).sum() / max(spectrum.sum(), 1e-9))
            if centroid > 2500:
                viseme = "viseme_SS"
            elif centroid > 1500:
                viseme = "viseme_E"
            elif centroid > 900:
                viseme = "viseme_aa"
            else:
                viseme = "viseme_O"
            values[self._col[viseme]] = openness
            values[self._col["viseme_sil"]] = 1.0 - openness
        # Light smoothing: coarticulation, not snapping.
        self._smooth = 0.5 * self._smooth + 0.5 * values
        return self._smooth.copy()


__all__ = ["FPS", "SUPPORTED_RATES", "VISEME_NAMES", "EngineSession"]
