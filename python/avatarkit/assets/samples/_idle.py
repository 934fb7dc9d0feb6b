"""The idle clip: a few seconds of quiet life (breathing, blinks, saccades), looping seamlessly."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ... import codec

#: Idle clip length and rate: 8 s at the canonical 25 fps.
IDLE_SECONDS = 8
IDLE_FPS = 25

_COL = {name: i for i, name in enumerate(codec.CANONICAL_NAMES)}


def _pulse(
    t: npt.NDArray[np.float64], start: float, close: float, hold: float, reopen: float
) -> npt.NDArray[np.float64]:
    """A blink: closes fast, holds, reopens more slowly (0 = open, 1 = shut)."""
    rise = np.clip((t - start) / close, 0.0, 1.0)
    fall = np.clip((t - start - close - hold) / reopen, 0.0, 1.0)
    up = rise * rise * (3 - 2 * rise)
    down = fall * fall * (3 - 2 * fall)
    return np.asarray(up * (1.0 - down), np.float64)


def _steps(t: npt.NDArray[np.float64], times: list[float], values: list[float], ramp: float) -> npt.NDArray[np.float64]:
    """Piecewise-constant targets with quick eased moves (a saccade takes ``ramp`` seconds)."""
    out = np.full_like(t, values[0])
    for k in range(1, len(times)):
        s = np.clip((t - times[k]) / ramp, 0.0, 1.0)
        out += (values[k] - values[k - 1]) * s * s * (3 - 2 * s)
    return out


def idle_values(avatar_id: str) -> npt.NDArray[np.float32]:
    """The idle clip's frames: float32 (IDLE_SECONDS * IDLE_FPS, 73) of canonical channels.

    Every motion is either periodic over the clip or an event that starts and ends inside it, so the
    last frame flows into the first when the clip loops. The timing differs a little per avatar.
    """
    n = IDLE_SECONDS * IDLE_FPS
    t = np.arange(n) / IDLE_FPS
    period = float(IDLE_SECONDS)
    w = 2 * np.pi / period
    phase = (sum(avatar_id.encode()) % 97) / 97.0 * 2 * np.pi
    out = np.zeros((n, len(codec.CANONICAL_NAMES)), np.float64)
    # Breathing (two breaths per loop) lifts and tips the head a touch; a slow sway on top.
    breath = np.sin(2 * w * t)
    out[:, _COL["headPitch"]] = 0.010 * breath + 0.018 * np.sin(w * t + phase)
    out[:, _COL["headYaw"]] = 0.035 * np.sin(w * t + 0.7 + phase) + 0.008 * np.sin(3 * w * t)
    out[:, _COL["headRoll"]] = 0.014 * np.sin(w * t + 2.1 + phase)
    out[:, _COL["headY"]] = 0.0012 * breath
    # Blinks at irregular times (one a double blink), all inside the loop.
    offset = (sum(avatar_id.encode()) % 7) * 0.1
    blink = (
        _pulse(t, 1.2 + offset, 0.07, 0.03, 0.14)
        + _pulse(t, 4.6 + offset, 0.07, 0.02, 0.12)
        + _pulse(t, 4.95 + offset, 0.07, 0.03, 0.15)
        + _pulse(t, 7.0, 0.07, 0.03, 0.14)
    )
    out[:, _COL["eyeBlinkLeft"]] = blink
    out[:, _COL["eyeBlinkRight"]] = blink
    # Saccades: hold a point of regard, jump to the next (60 ms), back to the centre before the end.
    gx = _steps(t, [0.0, 2.1, 3.5, 5.6, 6.6], [0.0, 0.16, 0.05, -0.12, 0.0], 0.06)
    gy = _steps(t, [0.0, 2.1, 3.5, 5.6, 6.6], [0.0, 0.04, -0.10, 0.02, 0.0], 0.06)
    # Looking toward +X is out for the left eye and in for the right one.
    out[:, _COL["eyeLookOutLeft"]] = np.clip(gx, 0, None)
    out[:, _COL["eyeLookInRight"]] = np.clip(gx, 0, None)
    out[:, _COL["eyeLookInLeft"]] = np.clip(-gx, 0, None)
    out[:, _COL["eyeLookOutRight"]] = np.clip(-gx, 0, None)
    for side in ("Left", "Right"):
        out[:, _COL["eyeLookUp" + side]] = np.clip(gy, 0, None)
        out[:, _COL["eyeLookDown" + side]] = np.clip(-gy, 0, None)
    # A relaxed, friendly face: a hint of a smile, brows drifting.
    smile = 0.14 + 0.05 * np.sin(w * t + 1.3 + phase)
    out[:, _COL["mouthSmileLeft"]] = smile
    out[:, _COL["mouthSmileRight"]] = smile
    out[:, _COL["browInnerUp"]] = 0.06 + 0.06 * np.sin(w * t + 0.4)
    out[:, _COL["browOuterUpLeft"]] = 0.03 + 0.03 * np.sin(w * t + 0.4)
    out[:, _COL["browOuterUpRight"]] = 0.03 + 0.03 * np.sin(w * t + 0.4)
    return np.asarray(out, np.float32)


def idle_clip(avatar_id: str) -> bytes:
    """The idle clip as one AK1 payload (canonical schema, 25 fps)."""
    encoder = codec.StreamEncoder(codec.canonical_schema())
    return bytes(encoder.encode(idle_values(avatar_id)))
