"""Motion over time: the speech timeline, idle life, and the blend between them.

Motion arrives at the stream's rate (25 fps); a view renders at its own rate and samples these at
its render time, interpolating between the two frames around it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .codec import CANONICAL_NAMES

F32 = npt.NDArray[np.float32]

#: Frames of the stream's rate over which speech fades in, and out (the commercial SDK: ~5 in, 12-40 out).
BLEND_IN_FRAMES = 5
BLEND_OUT_FRAMES = 15


class ChannelTimeline:
    """Frames of one conversation, placed on a clock: frame ``k`` is shown at ``start + k / fps``.

    Frames are mapped by name onto ``channels``; names the timeline does not know are ignored and
    channels the frames lack stay 0.
    """

    def __init__(self, channels: Sequence[str] = CANONICAL_NAMES, fps: float = 25.0, start: float = 0.0) -> None:
        self.channels = list(channels)
        self.fps = float(fps)
        self.start = float(start)
        self._values: F32 = np.zeros((0, len(self.channels)), np.float32)
        self._first = 0  # frame index of row 0
        self.ended = False

    def __len__(self) -> int:
        return int(self._values.shape[0])

    @property
    def values(self) -> F32:
        """A copy of the frames held (``frames x channels``), frame :attr:`first_index` first."""
        return self._values.copy()

    @property
    def first_index(self) -> int:
        """Index of the first frame held."""
        return self._first

    @property
    def last_index(self) -> int:
        """Index of the last frame held, or -1."""
        return self._first + len(self) - 1

    @property
    def end_time(self) -> float:
        """Clock time at which the last frame held is shown."""
        return self.start + self.last_index / self.fps

    def append(self, values: F32, frame_indices: npt.NDArray[np.int64], names: Sequence[str] | None = None) -> None:
        """Add frames (``values[i]`` is frame ``frame_indices[i]``); gaps are filled by holding."""
        values = np.asarray(values, np.float32)
        if names is not None and list(names) != self.channels:
            col = {n: i for i, n in enumerate(names)}
            mapped = np.zeros((values.shape[0], len(self.channels)), np.float32)
            for j, name in enumerate(self.channels):
                if name in col:
                    mapped[:, j] = values[:, col[name]]
            values = mapped
        for row, index in zip(values, np.asarray(frame_indices, np.int64), strict=True):
            index = int(index)
            if len(self) == 0:
                self._first = index
                self._values = row[None, :].copy()
                continue
            if index <= self.last_index:
                continue  # a repeat: keep the first copy
            gap = index - self.last_index - 1
            if gap:
                self._values = np.concatenate([self._values, np.repeat(self._values[-1:], gap, axis=0)])
            self._values = np.concatenate([self._values, row[None, :]])

    def sample(self, t: float, *, hold: bool = False) -> F32 | None:
        """Values at clock time ``t``, interpolated; None before the first frame or past the last.

        With ``hold``, the last frame past the end (the one decision made here, so a time a rounding
        error away from the last frame never falls between "past the end" and "not past it").
        """
        if len(self) == 0:
            return None
        pos = (t - self.start) * self.fps - self._first
        if pos > len(self) - 1:
            return self.last() if hold else None
        if pos < 0:
            return None
        k = math.floor(pos)
        frac = pos - k
        if frac == 0.0 or k + 1 >= len(self):
            row: F32 = self._values[k].copy()
            return row
        out: F32 = (self._values[k] * (1.0 - frac) + self._values[k + 1] * frac).astype(np.float32)
        return out

    def truncate(self, t: float) -> None:
        """Drop the frames after clock time ``t`` (what an interrupt cancels); keep the one on screen."""
        keep = math.floor((t - self.start) * self.fps - self._first) + 2
        if 0 <= keep < len(self):
            self._values = self._values[:keep]
        self.ended = True

    def last(self) -> F32 | None:
        """The last frame held."""
        return None if len(self) == 0 else self._values[-1].copy()


class IdleLife:
    """What the avatar does while nobody speaks: its idle clip, breathing, blinks, saccades, sway.

    Blinks come at irregular intervals (2 to 6 s, gamma distributed), saccades every 0.6 to 3 s;
    both are drawn from a seeded generator so a test can reproduce them.
    """

    def __init__(
        self,
        channels: Sequence[str] = CANONICAL_NAMES,
        clip: F32 | None = None,
        clip_names: Sequence[str] | None = None,
        clip_fps: float = 25.0,
        seed: int | None = None,
    ) -> None:
        self.channels = list(channels)
        self._col = {n: i for i, n in enumerate(self.channels)}
        self._clip: F32 | None = None
        self._clip_fps = clip_fps
        if clip is not None and len(clip):
            timeline = ChannelTimeline(self.channels, clip_fps)
            timeline.append(np.asarray(clip, np.float32), np.arange(len(clip)), clip_names or self.channels)
            self._clip = timeline.values
        self._rng = np.random.default_rng(seed)
        self._blinks: list[float] = []
        self._saccades: list[tuple[float, float, float]] = []  # (time, yaw, pitch) in [-1, 1]
        self._horizon = 0.0
        self._phase = self._rng.uniform(0, 2 * math.pi, 4)

    def _extend(self, until: float) -> None:
        while self._horizon < until:
            start = self._horizon
            self._horizon += 10.0
            t = (self._blinks[-1] if self._blinks else start) + self._rng.gamma(4.0, 0.9)
            while t < self._horizon:
                self._blinks.append(t)
                t += max(1.2, self._rng.gamma(4.0, 0.9))
            t = (self._saccades[-1][0] if self._saccades else start) + self._rng.uniform(0.6, 3.0)
            while t < self._horizon:
                self._saccades.append((t, self._rng.normal(0, 0.25), self._rng.normal(0, 0.12)))
                t += self._rng.uniform(0.6, 3.0)

    def _set(self, out: F32, name: str, value: float, mode: str = "add") -> None:
        col = self._col.get(name)
        if col is None:
            return
        out[col] = max(out[col], value) if mode == "max" else out[col] + value

    def sample(self, t: float) -> F32:
        """Idle channel values at clock time ``t`` (seconds)."""
        self._extend(t + 1.0)
        out = np.zeros(len(self.channels), np.float32)
        if self._clip is not None:
            pos = (t * self._clip_fps) % len(self._clip)
            k = int(pos)
            frac = pos - k
            out += self._clip[k] * (1 - frac) + self._clip[(k + 1) % len(self._clip)] * frac
        # Blink: 70 ms closing, 40 ms closed, 120 ms opening.
        blink = 0.0
        for b in reversed(self._blinks):
            if b > t:
                continue
            dt = t - b
            if dt < 0.07:
                blink = dt / 0.07
            elif dt < 0.11:
                blink = 1.0
            elif dt < 0.23:
                blink = 1.0 - (dt - 0.11) / 0.12
            break
        self._set(out, "eyeBlinkLeft", blink, "max")
        self._set(out, "eyeBlinkRight", blink, "max")
        # Saccade: jump to the new gaze in ~40 ms, then hold.
        yaw = pitch = 0.0
        previous = (0.0, 0.0)
        for when, y, p in self._saccades:
            if when > t:
                break
            f = min(1.0, (t - when) / 0.04)
            yaw = previous[0] + (y - previous[0]) * f
            pitch = previous[1] + (p - previous[1]) * f
            previous = (y, p)
        for side, sign in (("Left", 1.0), ("Right", -1.0)):
            out_dir = sign * yaw
            self._set(out, f"eyeLookOut{side}", max(out_dir, 0.0))
            self._set(out, f"eyeLookIn{side}", max(-out_dir, 0.0))
            self._set(out, f"eyeLookUp{side}", max(pitch, 0.0))
            self._set(out, f"eyeLookDown{side}", max(-pitch, 0.0))
        # Breathing (about 15 a minute) and a slow, small sway of the head.
        breath = math.sin(2 * math.pi * 0.25 * t + self._phase[0])
        self._set(out, "headPitch", 0.012 * breath + 0.02 * math.sin(2 * math.pi * 0.07 * t + self._phase[1]))
        self._set(out, "headYaw", 0.03 * math.sin(2 * math.pi * 0.05 * t + self._phase[2]))
        self._set(out, "headRoll", 0.015 * math.sin(2 * math.pi * 0.06 * t + self._phase[3]))
        self._set(out, "headY", 0.002 * breath)
        return out


def smoothstep(x: float) -> float:
    """0 below 0, 1 above 1, and a smooth S between."""
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


class MotionLayer:
    """Speech motion over idle: a timeline with a fade in at its start and a fade out at its end.

    The weight is a function of time alone, so any time can be rendered again (offline video) with the
    same result. Layers stack oldest first: a conversation that starts while the previous one fades
    out rises on top of the pose on screen, so nothing jumps.
    """

    def __init__(self, timeline: ChannelTimeline, fps: float = 25.0) -> None:
        self.timeline = timeline
        self.fade_in = BLEND_IN_FRAMES / fps
        self.fade_out = BLEND_OUT_FRAMES / fps
        #: Clock time from which the layer fades out; None while it may still get motion.
        self.end: float | None = None
        #: Clock time from which it faded in, when that is not its timeline's start (the timeline
        #: moved later after its speech ran dry).
        self.begin: float | None = None

    def close(self, at: float) -> None:
        """Fade out from ``at`` (an interrupt, a lost connection, the end of the motion)."""
        self.end = at if self.end is None else min(self.end, at)

    def weight(self, t: float) -> float:
        """The layer's weight at clock time ``t``."""
        begin = self.timeline.start if self.begin is None else self.begin
        w = smoothstep((t - begin) / self.fade_in) if self.fade_in > 0 else 1.0
        if self.end is not None:
            w *= 1.0 - smoothstep((t - self.end) / self.fade_out)
        return w

    def finished(self, t: float) -> bool:
        """Whether the layer has faded out completely by ``t``."""
        return self.end is not None and t >= self.end + self.fade_out

    def sample(self, t: float) -> F32 | None:
        """The motion at ``t``, holding the last frame past the end (and through late frames)."""
        return self.timeline.sample(t, hold=True)
