"""Deterministic speech-like channel curves for demos, tests and benchmarks.

Not a lip-sync engine: it shapes plausible motion (syllables at about 4 Hz that open the jaw and
pick a viseme, blinks at irregular intervals, slow head sway) so the codec sees realistic
statistics: most ARKit channels idle, mouth channels busy, head channels slow.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._core.codec import ARKIT_NAMES, HEAD_ROTATION_NAMES, HEAD_TRANSLATION_NAMES, VISEME_NAMES

_NAMES = (*ARKIT_NAMES, *VISEME_NAMES, *HEAD_ROTATION_NAMES, *HEAD_TRANSLATION_NAMES)
_COL = {name: i for i, name in enumerate(_NAMES)}


def _smooth(x: npt.NDArray[np.float64], width: int) -> npt.NDArray[np.float64]:
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    return np.convolve(x, kernel, mode="same")


def speech_like(seconds: float, fps: int = 25, seed: int = 0) -> npt.NDArray[np.float32]:
    """Canonical-channel frames (``frames x 73``, float32) that move like a talking face."""
    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * fps))
    t = np.arange(n) / fps
    out = np.zeros((n, len(_NAMES)), np.float64)

    # Syllables: onsets every 0.15-0.35 s; each opens the jaw and selects a viseme.
    onsets, pos = [], 0.1
    while pos < seconds:
        onsets.append(pos)
        pos += rng.uniform(0.15, 0.35)
    visemes = np.zeros((n, len(VISEME_NAMES)))
    energy = np.zeros(n)
    for onset in onsets:
        k = int(onset * fps)
        if k >= n:
            break
        length = int(rng.integers(2, 6))
        visemes[k : k + length, int(rng.integers(1, len(VISEME_NAMES)))] = 1.0
        energy[k : k + length] = rng.uniform(0.4, 1.0)
    visemes = np.stack([_smooth(visemes[:, j], 3) for j in range(visemes.shape[1])], axis=1)
    visemes[:, 0] = np.clip(1.0 - visemes[:, 1:].sum(axis=1), 0.0, 1.0)
    out[:, _COL["viseme_sil"] : _COL["viseme_sil"] + len(VISEME_NAMES)] = visemes
    jaw = np.clip(_smooth(energy, 3) * 0.7, 0.0, 1.0)
    out[:, _COL["jawOpen"]] = jaw
    out[:, _COL["mouthFunnel"]] = visemes[:, VISEME_NAMES.index("viseme_O")] * 0.6
    out[:, _COL["mouthPucker"]] = visemes[:, VISEME_NAMES.index("viseme_U")] * 0.8
    out[:, _COL["mouthClose"]] = visemes[:, VISEME_NAMES.index("viseme_PP")] * 0.5
    for side in ("Left", "Right"):
        out[:, _COL["mouthSmile" + side]] = 0.15 + 0.05 * np.sin(2 * np.pi * 0.2 * t)
        out[:, _COL["mouthLowerDown" + side]] = jaw * 0.3

    # Blinks at irregular intervals (2-6 s), 150 ms each.
    blink, pos = np.zeros(n), rng.uniform(0.5, 2.0)
    while pos < seconds:
        k = int(pos * fps)
        blink[k : k + 4] = (0.5, 1.0, 1.0, 0.5)[: max(0, min(4, n - k))]
        pos += rng.uniform(2.0, 6.0)
    out[:, _COL["eyeBlinkLeft"]] = blink
    out[:, _COL["eyeBlinkRight"]] = blink
    out[:, _COL["browInnerUp"]] = _smooth(energy, 9) * 0.3

    # Slow head sway in radians and metres.
    phase = rng.uniform(0, 2 * np.pi, 6)
    for j, name in enumerate((*HEAD_ROTATION_NAMES, *HEAD_TRANSLATION_NAMES)):
        amp = 0.05 if j < 3 else 0.005
        out[:, _COL[name]] = amp * np.sin(2 * np.pi * (0.15 + 0.07 * j) * t + phase[j])
    return out.astype(np.float32)
