"""Sounds that are not speech, and the ways real input differs from clean synthesized speech.

Used by the training script (non-speech clips labelled silence, background under speech, level,
clipping, telephone band, lossy codecs) and by the evaluation's not-speech and robustness sets,
always with different seeds: the evaluation's tones, chords and noise are never trained on.

All functions take and return float32 samples in [-1, 1] at the given rate.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


def level_db(x: F32) -> float:
    """RMS level in dBFS of the louder half of 10 ms frames (speech level, pauses ignored)."""
    if len(x) == 0:
        return -120.0
    hop = max(1, len(x) // max(1, len(x) // 160))
    n = max(1, len(x) // hop)
    frames = x[: n * hop].reshape(n, hop).astype(np.float64)
    power = np.sort(np.mean(frames**2, axis=1))[n // 2 :]
    return float(10 * np.log10(np.mean(power) + 1e-12))


def at_level(x: F32, dbfs: float) -> F32:
    """``x`` scaled so that :func:`level_db` gives ``dbfs``."""
    return (x * 10 ** ((dbfs - level_db(x)) / 20)).astype(np.float32)


def tone(rate: int, seconds: float, hz: float, dbfs: float = -20.0) -> F32:
    """A sine tone at ``dbfs`` RMS."""
    t = np.arange(round(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * np.sqrt(2) * 10 ** (dbfs / 20)).astype(np.float32)


def noise(rng: np.random.Generator, rate: int, seconds: float, color: str = "white", dbfs: float = -20.0) -> F32:
    """White, pink or brown noise at ``dbfs`` RMS."""
    n = round(rate * seconds)
    x = rng.standard_normal(n)
    if color != "white":
        spectrum = np.fft.rfft(x)
        f = np.maximum(np.fft.rfftfreq(n, 1 / rate), 20.0)
        spectrum /= f ** (0.5 if color == "pink" else 1.0)
        x = np.fft.irfft(spectrum, n)
    x = x / (x.std() + 1e-12) * 10 ** (dbfs / 20)
    return x.astype(np.float32)


def _note(rate: int, n: int, hz: float, rng: np.random.Generator, timbre: str) -> F32:
    t = np.arange(n) / rate
    harmonics = {"sine": 1, "organ": 6, "string": 10, "bell": 5}[timbre]
    out = np.zeros(n)
    for h in range(1, harmonics + 1):
        partial = hz * h * (1.0 + (0.002 * h * h if timbre == "bell" else 0.0))
        if partial > rate / 2.2:
            break
        amp = 1.0 / h if timbre != "organ" else 0.6**h
        vibrato = 1 + (0.004 * np.sin(2 * np.pi * 5.5 * t) if timbre == "string" else 0.0)
        out += amp * np.sin(2 * np.pi * partial * t * vibrato + rng.uniform(0, 2 * np.pi))
    attack = max(1, int(rate * (0.06 if timbre == "string" else 0.01)))
    env = np.minimum(1.0, np.arange(n) / attack)
    if timbre in ("bell", "sine"):
        env *= np.exp(-t * rng.uniform(1.0, 4.0))
    env *= np.minimum(1.0, (n - np.arange(n)) / max(1, int(0.02 * rate)))
    return (out * env).astype(np.float32)


def music(rng: np.random.Generator, rate: int, seconds: float, dbfs: float = -20.0, drums: bool | None = None) -> F32:
    """Music-like sound: chords and a melody of harmonic notes, sometimes with noise-burst drums."""
    n = round(rate * seconds)
    out = np.zeros(n, np.float32)
    tempo = rng.uniform(0.25, 0.7)  # seconds per beat
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16])
    timbre = str(rng.choice(["organ", "string", "bell", "sine"]))
    at = 0
    while at < n:
        beats = int(rng.integers(2, 5))
        length = min(n - at, int(beats * tempo * rate))
        chord = root * 2 ** (scale[rng.choice(7, size=int(rng.integers(2, 5)), replace=False)] / 12)
        for hz in chord:
            out[at : at + length] += 0.5 * _note(rate, length, float(hz), rng, timbre)
        at += length
    at = 0
    while at < n:  # melody an octave or two up
        length = min(n - at, int(tempo * rate * rng.choice([0.5, 1.0, 1.5])))
        hz = root * 2 ** ((scale[rng.integers(0, len(scale))] + 12 * rng.integers(1, 3)) / 12)
        out[at : at + length] += _note(rate, length, float(hz), rng, str(rng.choice(["string", "bell", "sine"])))
        at += length
    if drums if drums is not None else rng.random() < 0.5:
        beat = int(tempo * rate)
        hit_len = int(0.08 * rate)
        for start in range(0, n - hit_len, beat):
            hit = rng.standard_normal(hit_len) * np.exp(-np.arange(hit_len) / (0.015 * rate))
            if (start // beat) % 2 == 0:  # a kick: a falling low sine
                tt = np.arange(hit_len) / rate
                hit = np.sin(2 * np.pi * (60 + 80 * np.exp(-tt * 30)) * tt) * np.exp(-tt * 25) * 2.0
            out[start : start + hit_len] += hit.astype(np.float32)
    return at_level(out, dbfs)


def beeps(rng: np.random.Generator, rate: int, seconds: float, dbfs: float = -20.0) -> F32:
    """Tones switched on and off (phone ringing, alarms, notification sounds)."""
    n = round(rate * seconds)
    out = np.zeros(n, np.float32)
    hz = rng.uniform(300, 3000)
    on, off = rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.5)
    at = 0
    while at < n:
        length = min(n - at, int(on * rate))
        out[at : at + length] = tone(rate, length / rate, hz, 0.0)[:length]
        at += length + int(off * rate)
    return at_level(out, dbfs) if out.any() else out


def not_speech(rng: np.random.Generator, rate: int, seconds: float) -> F32:
    """A random clip of something that is not a voice, at a random level (training)."""
    kind = rng.choice(["tone", "tones", "beeps", "noise", "music", "music", "hum"])
    dbfs = rng.uniform(-50.0, -6.0)
    if kind == "tone":
        x = tone(rate, seconds, float(np.exp(rng.uniform(np.log(80), np.log(6000)))), dbfs)
    elif kind == "tones":
        x = sum(tone(rate, seconds, float(np.exp(rng.uniform(np.log(100), np.log(3000)))), 0.0) for _ in range(3))
        x = at_level(np.asarray(x, np.float32), dbfs)
    elif kind == "beeps":
        x = beeps(rng, rate, seconds, dbfs)
    elif kind == "noise":
        x = noise(rng, rate, seconds, str(rng.choice(["white", "pink", "brown"])), dbfs)
    elif kind == "hum":
        base = float(rng.choice([50.0, 60.0]))
        x = sum(tone(rate, seconds, base * h, -6.0 * h) for h in range(1, 6))
        x = at_level(np.asarray(x, np.float32), dbfs)
    else:
        x = music(rng, rate, seconds, dbfs)
    return np.clip(x, -1, 1).astype(np.float32)


def background(rng: np.random.Generator, rate: int, n: int, dbfs: float) -> F32:
    """Music or noise to put under speech (training)."""
    seconds = n / rate + 0.01
    if rng.random() < 0.6:
        x = music(rng, rate, seconds, dbfs)
    else:
        x = noise(rng, rate, seconds, str(rng.choice(["white", "pink", "brown"])), dbfs)
    return x[:n]


def clip(x: F32, gain_db: float) -> F32:
    """Amplified by ``gain_db`` and hard-clipped, like an overdriven input."""
    return np.clip(x * 10 ** (gain_db / 20), -1.0, 1.0).astype(np.float32)


def telephone(x: F32, rate: int) -> F32:
    """The 300-3400 Hz band of a telephone line (4th-order Butterworth)."""
    from scipy import signal

    hi = min(3400.0, 0.45 * rate)
    sos = signal.butter(4, [300.0, hi], btype="band", fs=rate, output="sos")
    return signal.sosfilt(sos, x).astype(np.float32)


def codec_roundtrip(x: F32, rate: int, codec: str = "opus", bitrate: int = 24000) -> tuple[F32, int]:
    """Encode and decode with a lossy codec through PyAV: (samples, rate of the decoded audio).

    Opus runs at 48 kHz (the input is resampled by FFmpeg), MP3 at the input's rate where it
    can. The decoded audio is aligned to the input (the encoder delay removed) and as long as it.
    """
    import av

    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
    fmt, name = ("ogg", "libopus") if codec == "opus" else ("mp3", "libmp3lame")
    out_rate = 48000 if codec == "opus" else rate
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        stream = container.add_stream(name, rate=out_rate)
        stream.bit_rate = bitrate
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=out_rate)
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    buf.seek(0)
    pieces = []
    with av.open(buf, "r") as container:
        back = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for f in container.decode(audio=0):
            for g in back.resample(f):
                pieces.append(g.to_ndarray().reshape(-1))
        for g in back.resample(None):
            pieces.append(g.to_ndarray().reshape(-1))
    y = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
    # Remove the codec's delay: the lag that best lines the output up with the input.
    span = min(len(x), len(y), rate)
    best, best_r = 0, -np.inf
    for lag in range(0, min(len(y) - span, int(0.08 * rate)) + 1, max(1, rate // 8000)):
        r = float(np.dot(x[:span], y[lag : lag + span]))
        if r > best_r:
            best, best_r = lag, r
    y = y[best : best + len(x)]
    if len(y) < len(x):
        y = np.concatenate([y, np.zeros(len(x) - len(y), np.float32)])
    return y, rate
