"""The mixer: what the face shows at a clock time, from idle life, motion layers and pinned channels.

It knows nothing of audio, connections or conversations: playback hands it a
:class:`~avatarkit.animation.MotionLayer` per conversation, the app may add motion of its own
(:meth:`Mixer.play_motion`), and the view asks for the channel values of each frame it renders
(:meth:`Mixer.sample`). Layers stack oldest first over idle life, each with its own fade in and
out; blinks stay with idle life; an emotion's pose (:mod:`avatarkit.emotions`) is added on top,
its mouth corners halved while a layer speaks; pinned channels go on top of everything.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from .animation import ChannelTimeline, IdleLife, MotionLayer, smoothstep
from .emotions import LIP_CORNER_CHANNELS

F32 = npt.NDArray[np.float32]

__all__ = ["Mixer"]

#: Seconds a faded layer is kept, so a render of the recent past still finds it.
KEEP_SECONDS = 30.0


class Mixer:
    """Idle life plus motion layers plus pinned channels. Thread-safe.

    Args:
        channels: the channel names of every value it returns.
        idle_clip: the avatar's idle clip (``frames x len(idle_names)``), or None for procedural idle life.
        idle_names: the clip's channel names.
        seed: the idle behaviour's random sequence.
    """

    def __init__(
        self,
        channels: Sequence[str],
        idle_clip: F32 | None = None,
        idle_names: Sequence[str] | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.channels = list(channels)
        self._col = {n: i for i, n in enumerate(self.channels)}
        self.idle = IdleLife(self.channels, idle_clip, list(idle_names) if idle_names is not None else None, seed=seed)
        self._layers: list[MotionLayer] = []
        self._local: MotionLayer | None = None
        self._overrides: dict[int, float] = {}
        self._lock = threading.Lock()
        zero = np.zeros(len(self.channels), np.float32)
        #: The expression (emotion pose) fading from one pose to another: (from, to, start, fade seconds).
        self._expression: tuple[F32, F32, float, float] = (zero, zero, 0.0, 0.0)
        self._corners = np.array([n in LIP_CORNER_CHANNELS for n in self.channels])
        self._head = np.array([n.startswith("head") for n in self.channels])

    def add(self, layer: MotionLayer) -> None:
        """Put ``layer`` on top (a conversation's motion, as its audio starts)."""
        with self._lock:
            self._layers.append(layer)

    def play_motion(
        self,
        values: F32,
        frame_indices: npt.NDArray[np.int64] | None,
        names: Sequence[str] | None,
        *,
        fps: float,
        begin: float,
        restart: bool,
    ) -> None:
        """Show app motion with no audio: frame ``k`` at ``begin + k / fps``.

        Motion given while earlier app motion is on continues it, unless ``restart``.
        """
        values = np.asarray(values, np.float32)
        indices = np.arange(len(values)) if frame_indices is None else np.asarray(frame_indices, np.int64)
        with self._lock:
            if self._local is None or restart:
                first = int(indices[0]) / fps if len(indices) else 0.0
                if self._local is not None:
                    self._local.close(begin)
                self._local = MotionLayer(ChannelTimeline(self.channels, fps, begin - first), fps)
                self._layers.append(self._local)
            self._local.timeline.append(values, indices, names)
            # Motion given all at once ends with its last frame.
            self._local.end = None
            self._local.close(self._local.timeline.end_time)

    def stop_motion(self, at: float) -> None:
        """Fade the app's motion out from clock time ``at`` (speech starting, or ``stop_motion``)."""
        with self._lock:
            if self._local is not None:
                self._local.close(at)
                self._local = None

    def set_channels(self, values: Mapping[str, float] | None) -> None:
        """Pin channels to fixed values on top of everything else (None clears); unknown names are ignored."""
        with self._lock:
            self._overrides = {self._col[k]: float(v) for k, v in (values or {}).items() if k in self._col}

    def set_expression(self, pose: F32, *, at: float, fade: float) -> None:
        """Fade the expression (values added to the face, per channel) to ``pose`` from time ``at`` in ``fade`` s."""
        target = np.asarray(pose, np.float32)
        if target.shape != (len(self.channels),):
            raise ValueError(f"an expression pose has one value per channel ({len(self.channels)})")
        with self._lock:
            self._expression = (self._expression_at(at), target.copy(), float(at), max(0.0, float(fade)))

    def _expression_at(self, t: float) -> F32:
        start_pose, end_pose, start, fade = self._expression
        w = 1.0 if fade <= 0.0 else smoothstep((t - start) / fade)
        if w >= 1.0:
            return end_pose
        blended: F32 = start_pose * (1.0 - w) + end_pose * w
        return blended

    @property
    def pinned(self) -> dict[str, float]:
        """The channels pinned by :meth:`set_channels`."""
        with self._lock:
            return {self.channels[c]: v for c, v in self._overrides.items()}

    def sample(self, t: float, life: float | None = None) -> F32:
        """Channel values for clock time ``t``: idle life, then every layer on top with its weight.

        ``life`` is idle life's own time (``t`` by default): it runs on while playback is paused.
        """
        with self._lock:
            idle = self.idle.sample(t if life is None else life)
            out = idle.copy()
            for layer in self._layers:
                weight = layer.weight(t)
                if weight <= 0.0:
                    continue
                values = layer.sample(t)
                if values is not None:
                    out = out * (1.0 - weight) + values * weight
            for name in ("eyeBlinkLeft", "eyeBlinkRight"):
                col = self._col.get(name)
                if col is not None:
                    out[col] = max(out[col], idle[col])
            expression = self._expression_at(t)
            if expression.any():
                # The mouth corners give way to speech: halved while a layer speaks.
                speaking = max((layer.weight(t) for layer in self._layers), default=0.0)
                pose = np.where(self._corners, expression * (1.0 - 0.5 * speaking), expression)
                out = np.where(self._head, out + pose, np.clip(out + pose, 0.0, 1.0)).astype(np.float32)
            # Forget layers that faded out long ago (kept a while for renders of the recent past).
            self._layers = [layer for layer in self._layers if not layer.finished(t - KEEP_SECONDS)]
            for col, value in self._overrides.items():
                out[col] = value
            return out
