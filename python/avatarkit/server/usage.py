"""Per-process accounting of the driving service: open sessions and credits used, per app.

Limits are enforced per server process (a deployment of several processes multiplies them); the
state lives in memory and starts from zero when the process starts.
"""

from __future__ import annotations

import enum
from collections import Counter

from .config import AppConfig, ServiceConfig

__all__ = ["Refusal", "Usage"]


class Refusal(enum.Enum):
    """Why a new session was refused."""

    CREDITS = "credits"
    CONCURRENCY = "concurrency"
    CAPACITY = "capacity"


class Usage:
    """Open sessions and seconds of audio driven, per app. Used from the event loop only."""

    def __init__(self, config: ServiceConfig) -> None:
        self._config = config
        self._open: Counter[str] = Counter()
        self._used: dict[str, float] = {}

    def open_sessions(self, app_id: str | None = None) -> int:
        """Sessions open for ``app_id`` (all apps if None)."""
        return self._open.total() if app_id is None else self._open[app_id]

    def credits_left(self, app: AppConfig) -> float | None:
        """Seconds of audio the app may still drive (None: unlimited)."""
        if app.credits_seconds is None:
            return None
        return max(0.0, app.credits_seconds - self._used.get(app.app_id, 0.0))

    def credits_exhausted(self, app: AppConfig) -> bool:
        """Whether the app has credits configured and none left."""
        left = self.credits_left(app)
        return left is not None and left <= 0

    def charge(self, app: AppConfig, seconds: float) -> None:
        """Count ``seconds`` of audio driven for ``app``."""
        if seconds > 0:
            self._used[app.app_id] = self._used.get(app.app_id, 0.0) + seconds

    def open(self, app: AppConfig) -> Refusal | None:
        """Open a session for ``app``, or say why not. Pair every success with :meth:`close`."""
        if self.credits_exhausted(app):
            return Refusal.CREDITS
        if self._open.total() >= self._config.max_sessions:
            return Refusal.CAPACITY
        if self._open[app.app_id] >= app.limits.concurrent_sessions:
            return Refusal.CONCURRENCY
        self._open[app.app_id] += 1
        return None

    def close(self, app: AppConfig) -> None:
        """A session of ``app`` ended."""
        if self._open[app.app_id] > 0:
            self._open[app.app_id] -= 1
