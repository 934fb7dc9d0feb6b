"""AvatarController: what drives the avatar of one view.

The view creates it (``view.avatar_controller``). It mixes idle life with speech motion on the
playback clock and hands the view one set of channel values per rendered frame. The connection to
the driving service (SDK mode) and the host-mode ``yield_`` feed land on top of this.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .animation import ChannelTimeline, IdleLife, SpeechBlend
from .codec import CANONICAL_NAMES, StreamDecoder

if TYPE_CHECKING:
    from .view import AvatarView

F32 = npt.NDArray[np.float32]


class AvatarController:
    """Drives one view's avatar. Created by :class:`AvatarView`; never construct it yourself."""

    def __init__(
        self, view: AvatarView, *, channels: Sequence[str] = CANONICAL_NAMES, seed: int | None = None
    ) -> None:
        self._view = view
        self.channels = list(channels)
        self._col = {n: i for i, n in enumerate(self.channels)}
        clip = None
        clip_names: list[str] | None = None
        idle_bytes = view.avatar.idle_clip()
        if idle_bytes:
            frames = StreamDecoder().decode(idle_bytes)
            clip, clip_names = frames.values.copy(), frames.names
        self._idle = IdleLife(self.channels, clip, clip_names, seed=seed)
        self._blend = SpeechBlend()
        self._timeline: ChannelTimeline | None = None
        self._overrides: dict[int, float] = {}
        self._lock = threading.Lock()
        self._origin = time.monotonic()

    def clock(self) -> float:
        """Playback time in seconds (the view renders the frame for this time)."""
        return time.monotonic() - self._origin

    # -- motion -------------------------------------------------------------------------------------

    def play_motion(
        self,
        values: F32,
        frame_indices: npt.NDArray[np.int64] | None = None,
        names: Sequence[str] | None = None,
        *,
        fps: float = 25.0,
        start: float | None = None,
    ) -> None:
        """Show decoded motion: frame ``k`` at ``start + k / fps`` on the playback clock (now by default)."""
        values = np.asarray(values, np.float32)
        indices = np.arange(len(values)) if frame_indices is None else np.asarray(frame_indices, np.int64)
        with self._lock:
            if self._timeline is None or start is not None:
                begin = self.clock() if start is None else start
                self._timeline = ChannelTimeline(
                    self.channels, fps, begin - int(indices[0]) / fps if len(indices) else begin
                )
            self._timeline.append(values, indices, names)
            self._blend.target = 1.0

    def stop_motion(self) -> None:
        """Return to idle, blending out from the pose on screen."""
        with self._lock:
            self._blend.target = 0.0

    def set_channels(self, values: Mapping[str, float] | None) -> None:
        """Pin channels to fixed values on top of everything else (None clears); unknown names are ignored."""
        with self._lock:
            self._overrides = {self._col[k]: float(v) for k, v in (values or {}).items() if k in self._col}

    def sample(self, t: float) -> F32:
        """Channel values for clock time ``t`` (called by the view for every frame it renders)."""
        with self._lock:
            idle = self._idle.sample(t)
            out = idle.copy()
            timeline = self._timeline
            if timeline is not None:
                speech = timeline.sample(t)
                if speech is None and t > timeline.end_time:
                    speech = timeline.last()
                    self._blend.target = 0.0  # ran out of motion: fade back to idle
                weight = SpeechBlend.smooth(self._blend.update(t))
                if speech is not None and weight > 0.0:
                    # Speech drives the face; idle keeps the eyes and head alive underneath.
                    out = idle * (1.0 - weight) + speech * weight
                    for name in ("eyeBlinkLeft", "eyeBlinkRight"):
                        col = self._col.get(name)
                        if col is not None:
                            out[col] = max(out[col], idle[col])
            for col, value in self._overrides.items():
                out[col] = value
            return out
