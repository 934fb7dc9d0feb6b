"""What the harness compares the engine with, behind the interface of :class:`avatarkit.engine.EngineSession`.

- :class:`BaselineSession`: the engine's first version (loudness opens the jaw, spectral centroid
  picks a vowel), kept only so the harness can report what the trained engine improves on.
- :class:`RecognizerSession`: pocketsphinx's all-phone recognizer, an acoustic model trained on
  recorded speech, reading the whole utterance before it answers. Not a streaming engine (its
  look-ahead is the utterance), but a reference for how hard each voice is to read for a model that
  has heard real speech and never the synthesizer.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from avatarkit.codec import CANONICAL_NAMES

from . import dataset, realspeech
from .synth import Utterance, resample_pcm
from .visemes import VISEMES

F32 = npt.NDArray[np.float32]
FPS = 25


class BaselineSession:
    """Loudness and spectral-centroid lip flapping, streaming with 40 ms look-ahead."""

    channels: tuple[str, ...] = CANONICAL_NAMES
    lookahead_ms: float = 40.0

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._buffer = np.zeros(0, np.float32)
        self._consumed = 0
        self._frames = 0
        self._total = 0
        self._col = {n: i for i, n in enumerate(self.channels)}
        self._smooth = np.zeros(len(self.channels), np.float32)

    def push(self, pcm: npt.NDArray[np.int16]) -> F32:
        """Add samples; returns the frames that became complete."""
        self._buffer = np.concatenate([self._buffer, pcm.astype(np.float32) / 32768.0])
        self._total += len(pcm)
        lookahead = int(self.sample_rate * self.lookahead_ms / 1000)
        ready = 0
        while self._frame_end(self._frames + ready) + lookahead <= self._total:
            ready += 1
        return self._emit(ready)

    def flush(self) -> F32:
        """The remaining frames."""
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
        keep_from = round(self._frames * self.sample_rate / FPS) - self._consumed
        if keep_from > 0:
            self._buffer = self._buffer[keep_from:]
            self._consumed += keep_from
        return out

    def _frame(self, chunk: F32) -> F32:
        values = np.zeros(len(self.channels), np.float32)
        rms = float(np.sqrt(np.mean(chunk * chunk))) if len(chunk) else 0.0
        openness = min(1.0, max(0.0, 20 * math.log10(max(rms, 1e-6)) + 50) / 35)
        values[self._col["jawOpen"]] = 0.7 * openness
        if openness < 0.08:
            values[self._col["viseme_sil"]] = 1.0
        else:
            spectrum = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk)))) if len(chunk) > 8 else np.zeros(2)
            freqs = np.fft.rfftfreq(len(chunk), 1 / self.sample_rate) if len(chunk) > 8 else np.zeros(2)
            centroid = float((spectrum * freqs).sum() / max(spectrum.sum(), 1e-9))
            viseme = (
                "viseme_SS" if centroid > 2500 else "viseme_E" if centroid > 1500 else
                "viseme_aa" if centroid > 900 else "viseme_O"
            )  # fmt: skip
            values[self._col[viseme]] = openness
            values[self._col["viseme_sil"]] = 1.0 - openness
        self._smooth = 0.5 * self._smooth + 0.5 * values
        return self._smooth.copy()


class RecognizerSession:
    """pocketsphinx all-phone recognition of the whole utterance, as viseme frames (on flush).

    Each 25 fps frame carries the recognized phone's viseme at full weight and the jaw opening the
    truth would give those phones, so the harness scores it like the engine.
    """

    channels: tuple[str, ...] = CANONICAL_NAMES
    lookahead_ms: float = math.inf

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._pieces: list[npt.NDArray[np.int16]] = []

    def push(self, pcm: npt.NDArray[np.int16]) -> F32:
        """Keep the samples; nothing comes out before :meth:`flush`."""
        self._pieces.append(np.asarray(pcm, np.int16))
        return np.zeros((0, len(self.channels)), np.float32)

    def flush(self) -> F32:
        """Recognize everything pushed; one frame per 40 ms of it."""
        audio = np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.int16)
        self._pieces = []
        count = math.ceil(len(audio) / (self.sample_rate / FPS) - 1e-9)
        phones = realspeech.recognize(resample_pcm(audio, self.sample_rate, 16000))
        heard = dataset.label(Utterance(audio, self.sample_rate, phones, "festival", "pocketsphinx", ""))
        out = np.zeros((count, len(self.channels)), np.float32)
        col = {n: i for i, n in enumerate(self.channels)}
        visemes = np.array([col["viseme_" + v] for v in VISEMES])
        n = min(count, len(heard.frames))
        out[np.arange(n), visemes[heard.frames[:n]]] = 1.0
        out[:n, col["jawOpen"]] = heard.openness[:n]
        out[n:, col["viseme_sil"]] = 1.0  # past the last recognized phone
        return out
