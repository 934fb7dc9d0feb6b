"""Speech-like test audio made with numpy: a voiced buzz with formants, syllables and pauses."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt

# (F1, F2, F3) in Hz of a few vowels; each syllable glides to one of them.
_VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410]])


def speech_like(seconds: float, sample_rate: int = 16000, seed: int = 0) -> npt.NDArray[np.int16]:
    """Mono PCM16: a glottal buzz (f0 100-160 Hz with jitter) shaped by moving formants, 4-5 syllables
    a second with consonant-like gaps and a pause now and then, about -16 dBFS when voiced."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    # Syllables: durations 0.15-0.3 s, each with a vowel and an envelope; every 6th is a pause.
    bounds = [0.0]
    while bounds[-1] < seconds:
        bounds.append(bounds[-1] + rng.uniform(0.15, 0.3))
    index = np.searchsorted(bounds, t, side="right") - 1
    starts, ends = np.array(bounds[:-1]), np.array(bounds[1:])
    phase = (t - starts[index]) / (ends[index] - starts[index])
    envelope = np.sin(np.pi * np.clip(phase, 0, 1)) ** 0.7
    envelope[index % 6 == 5] = 0.0
    vowel = _VOWELS[rng.integers(0, len(_VOWELS), len(bounds))][index]
    f0 = 130 + 25 * np.sin(2 * np.pi * 0.7 * t) + rng.normal(0, 1.5, n)
    theta = 2 * np.pi * np.cumsum(f0) / sample_rate
    signal = np.zeros(n)
    nyquist = sample_rate / 2
    for k in range(1, 40):
        freq = k * f0
        # Formant resonances (bandwidth 80-120 Hz) and a -12 dB/octave glottal tilt.
        gain = sum(1.0 / (1.0 + ((freq - vowel[:, j]) / (80 + 20 * j)) ** 2) for j in range(3))
        gain = gain / k + 0.02 / k
        signal += np.where(freq < nyquist * 0.9, gain, 0.0) * np.sin(k * theta)
    noise = rng.normal(0, 1, n) * 0.02 * (envelope < 0.2)  # breath / fricative hiss between syllables
    audio = signal * envelope / max(np.abs(signal).max(), 1e-9) * 0.3 + noise
    return np.clip(audio * 32767, -32768, 32767).astype(np.int16)


def ogg_opus(pcm: npt.NDArray[np.int16], sample_rate: int, page_ms: int = 40) -> bytes:
    """Encode mono PCM16 as one Ogg Opus stream with PyAV (pages of about ``page_ms``)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg", options={"page_duration": str(page_ms * 1000)}) as container:
        rate = sample_rate if sample_rate in (8000, 12000, 16000, 24000, 48000) else 48000
        stream = container.add_stream("libopus", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
