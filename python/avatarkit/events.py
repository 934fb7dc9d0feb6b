"""The controller's states and events, and how they reach the app: on the app's event loop.

:class:`EventHub` delivers each event to the app's callbacks and to every :meth:`events
<avatarkit.controller.AvatarController.events>` iterator on the event loop the app runs the
controller on (the loop of ``start()``, or the one running when the view was made). Changes caused
on that loop's thread are delivered at once; changes caused elsewhere (the render thread sampling
the end of playback, a timer, a sound device's thread) are handed to the loop, so app code never
runs on the library's threads. Without a running loop (an offline render in plain code) callbacks
run on the thread that caused the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import threading
from collections.abc import AsyncIterator, Callable

from .errors import AvatarError

log = logging.getLogger("avatarkit.controller")

__all__ = ["ConnectionState", "ControllerEvent", "ConversationState", "EventHub", "StateReason"]


class ConnectionState(enum.Enum):
    """The connection to the driving service (SDK mode), or the in-process engine (local mode)."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"


class ConversationState(enum.Enum):
    """What the avatar is doing."""

    IDLE = "idle"
    PLAYING = "playing"
    PAUSED = "paused"


class StateReason(enum.Enum):
    """Why the conversation state changed: the commercial SDK's ``StateChangeReason``, plus ``started``.

    A conversation that loses its motion (SDK mode) goes on playing its audio: it is reported
    ``playing`` again with ``fallbackMode``, and its end ``idle`` with why it lost the motion,
    ``networkError`` or ``serverError``, instead of ``playbackEnd``. Every conversation that starts
    is reported ``playing``, also one that interrupts the conversation playing (the event's
    ``conversation_id`` tells them apart). A conversation that loses its motion while paused is
    not reported at once: ``resume`` reports ``playing`` (``userAction``) and its end tells why.
    """

    #: ``pause``, ``resume``, ``interrupt`` or ``close``.
    USER_ACTION = "userAction"
    #: The conversation's audio has played out, with its motion (``idle``).
    PLAYBACK_END = "playbackEnd"
    #: A conversation that fell back to audio only because the connection broke without the
    #: service saying why (no close frame, a broken socket, a missed heartbeat; a close 1000, 1001
    #: or 1012-1014 with no ``ServerError`` before it) has played out (``idle``).
    NETWORK_ERROR = "networkError"
    #: A conversation that fell back to audio only because the service reported an error has played
    #: out (``idle``): a ``ServerError`` for its ``req_id`` (the service aborted the request), a
    #: ``ServerError`` just before the close frame (4002, 4503, 503 on shutdown, ...), or a close
    #: with an error code (1011, 4xxx).
    SERVER_ERROR = "serverError"
    #: The conversation plays on without motion (``playing``, reported again): the connection was
    #: lost, or the service failed its request; the face returns to idle life. A conversation that
    #: starts while the controller reconnects is audio only from the start and reported so too.
    FALLBACK = "fallbackMode"
    #: Alias of ``FALLBACK``, the commercial SDK's name.
    FALLBACK_MODE = "fallbackMode"
    #: A conversation's first audio arrived (``playing``; a jitter buffer before it is heard).
    STARTED = "started"


@dataclasses.dataclass(frozen=True)
class ControllerEvent:
    """One event of :meth:`AvatarController.events <avatarkit.controller.AvatarController.events>`.

    ``kind`` is ``connection_state``, ``conversation_state``, ``error`` or ``frame_rate``.
    """

    kind: str
    connection_state: ConnectionState | None = None
    conversation_state: ConversationState | None = None
    reason: StateReason | None = None
    error: AvatarError | None = None
    conversation_id: str | None = None
    frame_rate: float | None = None


class EventHub:
    """Delivers events to callbacks and async iterators on the app's event loop (see the module's notes)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: list[asyncio.Queue[ControllerEvent]] = []
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The app's event loop, once known."""
        return self._loop

    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Deliver on ``loop`` (the running loop when None; nothing changes without one)."""
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
        self._loop = loop

    def publish(self, event: ControllerEvent, callback: Callable[[], object] | None = None) -> None:
        """Hand ``event`` to every iterator and run ``callback`` (the app's), both on the app's loop."""

        def deliver() -> None:
            with self._lock:
                queues = list(self._subscribers)
            for queue in queues:
                queue.put_nowait(event)
            if callback is not None:
                try:
                    callback()
                except Exception:
                    log.exception("%s callback failed", event.kind)

        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running() or _on_loop_thread(loop):
            deliver()
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: no one is listening
            loop.call_soon_threadsafe(deliver)

    async def subscribe(self) -> AsyncIterator[ControllerEvent]:
        """Every event from now on (binds the hub to the running loop if it has none)."""
        if self._loop is None or self._loop.is_closed():
            self.bind()
        queue: asyncio.Queue[ControllerEvent] = asyncio.Queue()
        with self._lock:
            self._subscribers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            with self._lock:
                self._subscribers.remove(queue)


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
