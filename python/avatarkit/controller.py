"""AvatarController: what drives one view's avatar (stage 4 of the lifecycle).

The view creates it (``view.avatar_controller``). In SDK mode it connects to the driving service
(``await start()``), sends speech (``send``) and shows the animation that comes back; in Host mode
your backend talks to the service and hands audio and animation over with ``yield_``. Either way
the controller plays the audio (the master clock), places the motion on that clock, mixes it with
idle life, and the view samples it for every frame it renders.

Timing: a conversation's audio starts playing a jitter buffer after its first chunk arrives (see
:attr:`AvatarController.jitter_buffer`: by default sized from the service's look-ahead and the
size of the chunks you send, plus what lateness earlier conversations showed); motion frame ``k``
is shown when the audio reaches ``k / fps`` seconds, at the stream's own frame rate (an AK1
stream carries it in its schema: 25 fps from ``avatarkit serve``; the commercial service's
FlameAnimation is 25 fps). Motion that arrives late is interpolated or held,
never allowed to drift from the audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import codec
from .animation import BLEND_IN_FRAMES, BLEND_OUT_FRAMES, ChannelTimeline, IdleLife, MotionLayer
from .audio import DeviceAudioOutput, PaceClock, default_output_device
from .codec import CANONICAL_NAMES, StreamDecoder
from .errors import AvatarError, AvatarErrorCode
from .protocol import AudioFormat as WireAudioFormat
from .protocol import Message, MessageType, parse_message
from .retarget import flame_to_canonical

if TYPE_CHECKING:
    from .view import AvatarView

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
I16 = npt.NDArray[np.int16]

#: The frame rate of FlameAnimation payloads (which do not carry one), and the default of
#: ``play`` and ``play_motion``; AK1 streams carry their own.
FPS = 25.0


class ConnectionState(enum.Enum):
    """The connection to the driving service (SDK mode)."""

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
    """One event of :meth:`AvatarController.events`.

    ``kind`` is ``connection_state``, ``conversation_state``, ``error`` or ``frame_rate``.
    """

    kind: str
    connection_state: ConnectionState | None = None
    conversation_state: ConversationState | None = None
    reason: StateReason | None = None
    error: AvatarError | None = None
    conversation_id: str | None = None
    frame_rate: float | None = None


@dataclasses.dataclass(frozen=True)
class AVFrame:
    """A rendered frame with the audio that plays during it (for video pipelines)."""

    image: npt.NDArray[np.uint8]
    audio: I16
    timestamp: float
    sample_rate: int


def _pcm16(audio: bytes | bytearray | memoryview | npt.NDArray[Any]) -> I16:
    if isinstance(audio, bytes | bytearray | memoryview):
        data = bytes(audio)
        if len(data) % 2:
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "PCM16 audio needs an even number of bytes")
        return np.frombuffer(data, "<i2").copy()
    array = np.asarray(audio)
    if array.ndim != 1:
        raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "audio must be mono: a 1-D array")
    if array.dtype == np.int16:
        copied: I16 = array.copy()
        return copied
    if np.issubdtype(array.dtype, np.floating):
        scaled: I16 = (np.clip(array, -1.0, 1.0) * 32767.0).astype(np.int16)
        return scaled
    raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "audio must be PCM16 bytes, int16 or float samples")


def new_conversation_id() -> str:
    """A conversation id in the service's log-id style: ``YYYYMMDDHHMMSS_<random>``."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "_" + uuid.uuid4().hex[:12]


class _Conversation:
    """One utterance: its audio, its motion, and where it sits on the playback clock."""

    def __init__(self, conversation_id: str, sample_rate: int, channels: Sequence[str]) -> None:
        self.id = conversation_id
        self.sample_rate = sample_rate
        self.audio: list[I16] = []
        self.samples = 0
        self.audio_ended = False
        self.motion_ended = False
        self.start: float | None = None  # clock time of audio sample 0
        self.jitter = 0.0  # the jitter buffer it started with
        self.widened = 0.0  # the part of it that lateness in earlier conversations added
        self.lateness = -1.0  # the worst lateness of its motion frames on arrival (seconds)
        self.timeline = ChannelTimeline(channels, FPS)
        self.layer = MotionLayer(self.timeline, FPS)
        self.decoder = StreamDecoder()
        self.flame_frames = 0
        self.motion_failed = False
        #: The conversation lost its motion (the connection was lost, or the service failed its
        #: request): the rest of its audio plays without motion.
        self.audio_only = False
        #: Why it plays audio only (``NETWORK_ERROR`` or ``SERVER_ERROR``): the reason its end reports.
        self.fallback: StateReason | None = None

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate

    def audio_slice(self, t0: float, t1: float) -> I16:
        """The audio that plays between clock times ``t0`` and ``t1`` (zeros where there is none)."""
        n = max(0, round((t1 - t0) * self.sample_rate))
        out = np.zeros(n, np.int16)
        if self.start is None or n == 0:
            return out
        first = round((t0 - self.start) * self.sample_rate)
        data = np.concatenate(self.audio) if len(self.audio) > 1 else (self.audio[0] if self.audio else out[:0])
        self.audio = [data] if len(data) else []
        lo, hi = max(first, 0), min(first + n, len(data))
        if hi > lo:
            out[lo - first : hi - first] = data[lo:hi]
        return out


class AvatarController:
    """Drives one view's avatar. Created by :class:`~avatarkit.view.AvatarView`; never by the app.

    Callbacks (optional): ``on_connection_state(state, error)``, ``on_conversation_state(state,
    reason)``, ``on_error(error)``, ``on_frame_rate_info(fps)``. They run on the thread that caused
    the change; keep them short. :meth:`events` offers the same as an async iterator.
    """

    #: Seconds between a conversation's first audio and the start of its playback, or None
    #: (automatic): enough for motion to arrive in time when chunks are sent as they are spoken. That
    #: is the service's look-ahead (``lookahead_ms`` in its handshake: 80 ms, or 0 with the
    #: low-latency engine) rounded up to whole chunks, plus :attr:`jitter_margin` and the worst
    #: lateness of motion seen in the last conversation; 0.12 s when the look-ahead is unknown
    #: (Host mode, or a service that does not say).
    jitter_buffer: float | None = None
    #: Processing and network slack of the automatic jitter buffer, in seconds.
    jitter_margin = 0.02
    #: Attempts to connect again after the connection was lost with a close code that allows it
    #: (1001, 1006, 1011-1014, 4002, 45xx, or a broken socket); the first is immediate, then 0.5, 1, 2 ... s.
    max_reconnects = 5

    def __init__(self, view: AvatarView, *, channels: Sequence[str] = CANONICAL_NAMES, seed: int | None = None) -> None:
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
        self._layers: list[MotionLayer] = []
        self._lock = threading.RLock()
        # Audio is the master clock: the pace clock until a sound device plays (then the device's).
        self._pace = PaceClock()
        self._overrides: dict[int, float] = {}
        self._local: MotionLayer | None = None
        self._conversation: _Conversation | None = None
        self._conversation_state = ConversationState.IDLE
        self._connection_state = ConnectionState.DISCONNECTED
        #: Gain applied to the speech as it plays (sound device, ``audio_between``, ``av_frames``), 0..
        self.volume = 1.0
        self.on_connection_state: Callable[[ConnectionState, AvatarError | None], object] | None = None
        self.on_conversation_state: Callable[[ConversationState, StateReason], object] | None = None
        self.on_error: Callable[[AvatarError], object] | None = None
        self.on_frame_rate_info: Callable[[float], object] | None = None
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[ControllerEvent]]] = []
        # SDK mode
        self._session: Any = None
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection_id: str | None = None
        #: The audio rate the open (or last lost) connection negotiated; None when not connected.
        self._session_rate: int | None = None
        self._open_request: str | None = None  # req_id whose end we have not sent
        self._closing = False
        self._reconnects = 0
        self._reconnecting = False
        #: Why the last connection was lost (the end reason of conversations it left audio only).
        self._lost_reason = StateReason.NETWORK_ERROR
        self._audio_output: DeviceAudioOutput | None = None
        #: The service's look-ahead in seconds, from the handshake (None: unknown).
        self._lookahead: float | None = None
        #: The worst lateness of motion in recent conversations (seconds), added to the jitter buffer.
        self._lateness = 0.0

    # -- clock ----------------------------------------------------------------------------------------

    def clock(self) -> float:
        """Playback time in seconds; it stands still while paused (audio is the master clock).

        With a sound device (:attr:`audio_output`) it is the time of the sample being heard: the
        samples the device consumed, less its buffer. Without, it runs at the audio's pace.
        """
        output = self._audio_output
        return output.clock() if output is not None else self._pace.clock()

    def current_jitter_buffer(self, chunk_seconds: float = 0.04) -> float:
        """The jitter buffer a conversation whose first chunk lasts ``chunk_seconds`` starts with."""
        if self.jitter_buffer is not None:
            return float(self.jitter_buffer)
        if self._lookahead is None:
            return 0.12 + self._lateness
        # Frame k (audio [kF, (k+1)F)) needs audio up to (k+1)F + L, which comes with the chunk that
        # holds it; audio position kF plays one chunk plus the buffer after the first chunk came.
        frame, chunk = 1.0 / FPS, max(chunk_seconds, 0.001)
        need = max(
            math.ceil(((k + 1) * frame + self._lookahead) / chunk - 1e-6) * chunk - k * frame - chunk for k in range(50)
        )
        return max(0.0, need) + self.jitter_margin + self._lateness

    def _earliest_start(self) -> float:
        """The earliest clock time at which audio handed over now is heard in full (past the device's buffer)."""
        output = self._audio_output
        return output.earliest_start() if output is not None else self._pace.clock()

    @property
    def _origin(self) -> float:
        """The pace clock's origin (monotonic time of clock 0); tests move the clock with it."""
        return self._pace.origin

    @_origin.setter
    def _origin(self, value: float) -> None:
        self._pace.origin = value

    # -- state and events -------------------------------------------------------------------------

    @property
    def connection_state(self) -> ConnectionState:
        """The connection to the driving service."""
        return self._connection_state

    @property
    def conversation_state(self) -> ConversationState:
        """Idle, playing or paused."""
        return self._conversation_state

    @property
    def conversation_id(self) -> str | None:
        """The conversation playing (or last played), if any."""
        return self._conversation.id if self._conversation else None

    @property
    def connection_id(self) -> str | None:
        """The service's id of the open connection (SDK mode)."""
        return self._connection_id

    def _emit(self, event: ControllerEvent) -> None:
        for loop, queue in list(self._subscribers):
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, event)

    def _set_connection(self, state: ConnectionState, error: AvatarError | None = None) -> None:
        if state is self._connection_state and error is None:
            return
        self._connection_state = state
        self._emit(ControllerEvent("connection_state", connection_state=state, error=error))
        if self.on_connection_state is not None:
            try:
                self.on_connection_state(state, error)
            except Exception:
                log.exception("on_connection_state callback failed")

    def _set_conversation(self, state: ConversationState, reason: StateReason, *, again: bool = False) -> None:
        """Change the conversation state and tell; ``again`` tells a new reason for the same state."""
        if state is self._conversation_state and not again:
            return
        self._conversation_state = state
        self._emit(
            ControllerEvent(
                "conversation_state", conversation_state=state, reason=reason, conversation_id=self.conversation_id
            )
        )
        if self.on_conversation_state is not None:
            try:
                self.on_conversation_state(state, reason)
            except Exception:
                log.exception("on_conversation_state callback failed")

    def _error(self, error: AvatarError) -> None:
        log.warning("%s", error)
        self._emit(ControllerEvent("error", error=error))
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:
                log.exception("on_error callback failed")

    def _frame_rate(self, fps: float) -> None:
        self._emit(ControllerEvent("frame_rate", frame_rate=fps))
        if self.on_frame_rate_info is not None:
            self.on_frame_rate_info(fps)

    async def events(self) -> AsyncIterator[ControllerEvent]:
        """Every event from now on, as an async iterator (callbacks see the same)."""
        queue: asyncio.Queue[ControllerEvent] = asyncio.Queue()
        entry = (asyncio.get_running_loop(), queue)
        self._subscribers.append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(entry)

    # -- local motion (both modes, and apps that pose the avatar themselves) ----------------------

    def play_motion(
        self,
        values: F32,
        frame_indices: npt.NDArray[np.int64] | None = None,
        names: Sequence[str] | None = None,
        *,
        fps: float = FPS,
        start: float | None = None,
    ) -> None:
        """Show motion with no audio: frame ``k`` at ``start + k / fps`` (now by default)."""
        values = np.asarray(values, np.float32)
        indices = np.arange(len(values)) if frame_indices is None else np.asarray(frame_indices, np.int64)
        with self._lock:
            if self._local is None or start is not None:
                begin = self.clock() if start is None else start
                first = int(indices[0]) / fps if len(indices) else 0.0
                if self._local is not None:
                    self._local.close(begin)
                self._local = MotionLayer(ChannelTimeline(self.channels, fps, begin - first), fps)
                self._layers.append(self._local)
            self._local.timeline.append(values, indices, names)
            # Motion given all at once ends with its last frame.
            self._local.end = None
            self._local.close(self._local.timeline.end_time)

    def play(
        self,
        audio: bytes | npt.NDArray[Any],
        motion: F32 | None = None,
        names: Sequence[str] | None = None,
        *,
        sample_rate: int | None = None,
        fps: float = FPS,
        start: float | None = None,
    ) -> str:
        """Play audio you already have with its motion (``frames x channels``), in any mode.

        The conversation starts at clock time ``start`` (now by default) with no jitter buffer: this
        is how offline renders place speech exactly. The ``sample_rate`` argument is the audio's
        rate (by default the controller's :attr:`sample_rate`). Returns the conversation id.
        """
        pcm = _pcm16(audio)
        with self._lock:
            conv = self._begin()
            if sample_rate is not None:
                conv.sample_rate = sample_rate
            begin = self._earliest_start() if start is None else float(start)
            conv.start = begin
            conv.timeline = ChannelTimeline(self.channels, fps, begin)
            conv.layer = MotionLayer(conv.timeline, fps)
            self._layers.append(conv.layer)
            conv.audio, conv.samples, conv.audio_ended = [pcm], len(pcm), True
            if motion is not None and len(motion):
                conv.timeline.append(np.asarray(motion, np.float32), np.arange(len(motion)), names)
                conv.motion_ended = True
                conv.layer.close(conv.timeline.end_time + 1.0 / fps)
            self._set_conversation(ConversationState.PLAYING, StateReason.STARTED, again=True)
            self._schedule_end_check(conv)
            return conv.id

    def stop_motion(self) -> None:
        """Return to idle, blending out from the pose on screen."""
        with self._lock:
            if self._local is not None:
                self._local.close(self.clock())
                self._local = None

    def set_channels(self, values: Mapping[str, float] | None) -> None:
        """Pin channels to fixed values on top of everything else (None clears); unknown names are ignored."""
        with self._lock:
            self._overrides = {self._col[k]: float(v) for k, v in (values or {}).items() if k in self._col}

    def sample(self, t: float) -> F32:
        """Channel values for clock time ``t`` (the view calls this for every frame it renders).

        Idle life, then every motion layer on top with its weight; blinks stay with idle life.
        """
        with self._lock:
            idle = self._idle.sample(t)
            out = idle.copy()
            conv = self._conversation
            if conv is not None and conv.start is not None:
                self._update_playback(t, conv)
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
            # Forget layers that faded out long ago (kept a while for renders of the recent past).
            self._layers = [layer for layer in self._layers if not layer.finished(t - 30.0)]
            for col, value in self._overrides.items():
                out[col] = value
            return out

    def _update_playback(self, t: float, conv: _Conversation) -> None:
        """Playback end: when the audio (and motion) of an ended conversation has played out."""
        assert conv.start is not None
        if (
            conv.audio_ended
            and t >= conv.start + conv.duration
            and self._conversation_state is ConversationState.PLAYING
        ):
            conv.layer.close(conv.start + conv.duration)
            self._set_conversation(ConversationState.IDLE, conv.fallback or StateReason.PLAYBACK_END)

    # -- audio and motion of a conversation ------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) of the speech ``send``, ``yield_audio_data`` and ``play`` take now.

        SDK mode, connected: the rate this connection negotiated with the service. It stays while the
        connection lives, also when ``AvatarSDK.initialize`` sets another rate meanwhile; the
        controller takes the new one when it connects again (``start()`` after ``close()``, or a
        reconnect after a lost connection). Otherwise: the configured ``AudioFormat.sample_rate``
        (16000 before ``initialize``).
        """
        return self._session_rate or self._configured_rate()

    @staticmethod
    def _configured_rate() -> int:
        from .sdk import AvatarSDK

        return AvatarSDK.configuration.audio_format.sample_rate if AvatarSDK.is_initialized else 16000

    def _sample_rate(self) -> int:
        return self.sample_rate

    def _begin(self, conversation_id: str | None = None) -> _Conversation:
        with self._lock:
            previous = self._conversation
            conv = _Conversation(conversation_id or new_conversation_id(), self._sample_rate(), self.channels)
            self._conversation = conv
            now = self.clock()
            if previous is not None and previous.start is not None:
                # Motion that came late last time widens the buffer (by at most half a second: an
                # app that stalls mid-utterance is not the network); the widening halves when it did not.
                late = max(previous.lateness + previous.widened, 0.5 * self._lateness, 0.0)
                self._lateness = min(late, 0.5)
            if previous is not None:
                # A new conversation interrupts the one playing: it fades out from the pose on screen.
                previous.timeline.truncate(now)
                previous.layer.close(now)
            if self._local is not None:
                self._local.close(now)
                self._local = None
            if previous is not None and self._conversation_state is ConversationState.PLAYING:
                log.debug("conversation %s interrupts %s", conv.id, previous.id)
            return conv

    def _add_audio(self, conv: _Conversation, pcm: I16, end: bool) -> None:
        with self._lock:
            if len(pcm):
                conv.audio.append(pcm)
                conv.samples += len(pcm)
            conv.audio_ended = conv.audio_ended or end
            if conv.start is None and (conv.samples or end):
                conv.jitter = self.current_jitter_buffer(len(pcm) / conv.sample_rate)
                conv.widened = self._lateness if self.jitter_buffer is None else 0.0
                conv.start = self._earliest_start() + conv.jitter
                conv.timeline.start = conv.start
                self._layers.append(conv.layer)
                # Reported for every conversation, also one that interrupts the conversation playing.
                reason = StateReason.FALLBACK if conv.fallback is not None else StateReason.STARTED
                self._set_conversation(ConversationState.PLAYING, reason, again=True)
            if end:
                self._schedule_end_check(conv)

    def _schedule_end_check(self, conv: _Conversation) -> None:
        """Report the end of playback when the audio has played out, rendering or not."""
        assert conv.start is not None
        delay = max(0.0, conv.start + conv.duration - self.clock()) + 0.005
        if delay > 60.0:
            return  # an offline render far ahead on the clock: sample() reports the end when it gets there

        def check() -> None:
            with self._lock:
                if self._conversation is not conv or self._conversation_state is ConversationState.IDLE:
                    return
                if self._pace.paused or self.clock() < (conv.start or 0.0) + conv.duration:
                    self._schedule_end_check(conv)  # paused, or resumed later: look again
                    return
                self._update_playback(self.clock(), conv)

        timer = threading.Timer(delay if not self._pace.paused else 0.1, check)
        timer.daemon = True
        timer.start()

    def _add_animation(self, conv: _Conversation, animation: bytes, end: bool) -> None:
        """Decode one animation payload (AK1 or FlameAnimation) onto the conversation's timeline."""
        try:
            kind = codec.payload_kind(animation)
            fps = FPS
            if kind == "ak1":
                frames = conv.decoder.decode(animation)
                values, indices, names = frames.values, frames.frame_indices, frames.names
                fps = float(frames.fps)
            elif kind == "flame":
                keyframes = codec.decode_flame(animation)
                values = flame_to_canonical(keyframes)
                indices = np.arange(conv.flame_frames, conv.flame_frames + len(values), dtype=np.int64)
                conv.flame_frames += len(values)
                names = list(CANONICAL_NAMES)
            else:
                raise codec.CodecError("not an animation payload (neither AK1 nor FlameAnimation)")
        except codec.CodecError as err:
            conv.motion_failed = True
            self._error(AvatarError(AvatarErrorCode.SERVER_ERROR, f"undecodable animation: {err}"))
            return
        with self._lock:
            if fps != conv.timeline.fps:
                if len(conv.timeline):
                    log.warning(
                        "conversation %s: the stream's frame rate changed from %g to %g fps; keeping %g",
                        conv.id, conv.timeline.fps, fps, conv.timeline.fps,
                    )  # fmt: skip
                else:
                    # The stream's first frames: frame k is shown at k / fps, its fades last as many frames.
                    conv.timeline.fps = fps
                    conv.layer.fade_in = BLEND_IN_FRAMES / fps
                    conv.layer.fade_out = BLEND_OUT_FRAMES / fps
            if len(values):
                if conv.start is not None and not self._pace.paused:
                    # How late the earliest new frame is for its place on the clock (negative: early).
                    late = self.clock() - (conv.start + float(indices[0]) / conv.timeline.fps)
                    conv.lateness = max(conv.lateness, late)
                conv.timeline.append(values, indices, names)
            conv.motion_ended = conv.motion_ended or end
            if end and len(conv.timeline):
                conv.layer.close(conv.timeline.end_time + 1.0 / conv.timeline.fps)

    def _drop_playback(self, reason: StateReason) -> None:
        with self._lock:
            conv = self._conversation
            now = self.clock()
            if conv is not None:
                # Keep the audio already played (a render of the recent past still finds it).
                played = max(0, round((now - (conv.start if conv.start is not None else now)) * conv.sample_rate))
                data = np.concatenate(conv.audio) if conv.audio else np.zeros(0, np.int16)
                conv.audio = [data[:played]]
                conv.samples = min(conv.samples, played)
                conv.audio_ended = True
                conv.timeline.truncate(now)
                conv.layer.close(now)
            if self._local is not None:
                self._local.close(now)
                self._local = None
            self._set_conversation(ConversationState.IDLE, reason)

    def audio_between(self, t0: float, t1: float) -> I16:
        """The audio playing between clock times ``t0`` and ``t1``, int16 at the conversation's rate."""
        return self._audio_between(t0, t1)[0]

    def _audio_between(self, t0: float, t1: float) -> tuple[I16, int]:
        """The audio between ``t0`` and ``t1`` and its rate (the conversation's)."""
        with self._lock:
            conv = self._conversation
            if conv is None:
                rate = self._sample_rate()
                return np.zeros(max(0, round((t1 - t0) * rate)), np.int16), rate
            pcm, rate = conv.audio_slice(t0, t1), conv.sample_rate
        if self.volume != 1.0:
            pcm = np.clip(pcm.astype(np.float32) * self.volume, -32768, 32767).astype(np.int16)
        return pcm, rate

    # -- both modes ----------------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop the conversation now: drop pending audio and motion, return to idle (blending out).

        Audio already handed to a sound device (its latency) still plays.
        """
        with self._lock:
            conv = self._conversation
            req = conv.id if conv else None
        if req is not None and self._ws is not None and self._loop is not None:
            msg = Message(type=MessageType.MESSAGE_CLIENT_INTERRUPT)
            msg.client_interrupt.req_id = req
            self._send_message(msg)
        self._open_request = None
        self._drop_playback(StateReason.USER_ACTION)

    def pause(self) -> None:
        """Freeze playback (audio and motion); buffers are kept.

        A sound device plays out what it already holds (its latency) and the clock stands after it.
        """
        with self._lock:
            if not self._pace.paused:
                self._pace.pause()
                if self._audio_output is not None:
                    self._audio_output.pause()
                if self._conversation_state is ConversationState.PLAYING:
                    self._set_conversation(ConversationState.PAUSED, StateReason.USER_ACTION)

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        with self._lock:
            if self._pace.paused:
                self._pace.resume()
                if self._audio_output is not None:
                    self._audio_output.resume()
                if self._conversation_state is ConversationState.PAUSED:
                    self._set_conversation(ConversationState.PLAYING, StateReason.USER_ACTION)

    # -- Host mode -------------------------------------------------------------------------------------

    def _require_mode(self, wanted: str) -> None:
        from .sdk import AvatarSDK, DrivingServiceMode

        mode = AvatarSDK.configuration.mode
        if wanted == "host" and mode is not DrivingServiceMode.HOST:
            raise AvatarError(AvatarErrorCode.INVALID_STATE, "yield_ is for Host mode; this SDK is in SDK mode")
        if wanted == "sdk" and mode is not DrivingServiceMode.SDK:
            raise AvatarError(AvatarErrorCode.INVALID_STATE, "start/send are for SDK mode; this SDK is in Host mode")

    def yield_audio_data(self, audio: bytes | npt.NDArray[Any], end: bool = False) -> str:
        """Host mode: play audio your backend got from the service; returns the conversation id.

        Consecutive calls share a conversation until one has ``end=True``; the next call then starts a
        new conversation, which interrupts the one playing.
        """
        self._require_mode("host")
        pcm = _pcm16(audio)
        with self._lock:
            conv = self._conversation
            if conv is None or conv.audio_ended:
                conv = self._begin()
            self._add_audio(conv, pcm, end)
            return conv.id

    def yield_frames_data(self, frames: Sequence[bytes] | bytes, conversation_id: str) -> None:
        """Host mode: the serialized ``driveningress.v2`` ``Message`` envelopes your backend received.

        Frames of any conversation but the current one are dropped. The ``animation`` may be this
        project's AK1 payload or the commercial service's ``FlameAnimation``. A ``ServerError``
        envelope (the service failed the request) is reported to ``on_error`` and the conversation
        plays on audio only, as in SDK mode: ``playing`` with ``fallbackMode``, then ``idle`` with
        ``serverError``; later frames of it are dropped.
        """
        self._require_mode("host")
        items = [frames] if isinstance(frames, bytes | bytearray) else list(frames)
        with self._lock:
            conv = self._conversation
            if conv is None or conv.id != conversation_id:
                log.debug("dropping %d frames of conversation %s", len(items), conversation_id)
                return
        for raw in items:
            try:
                message = parse_message(bytes(raw))
            except Exception as exc:
                self._error(AvatarError(AvatarErrorCode.INVALID_ARGUMENT, f"not a driveningress Message: {exc}"))
                continue
            if message.type == MessageType.MESSAGE_SERVER_RESPONSE_ANIMATION:
                if not conv.audio_only:
                    anim = message.server_response_animation
                    self._add_animation(conv, anim.animation, anim.end)
            elif message.type == MessageType.MESSAGE_SERVER_ERROR:
                failure = message.server_error
                self._error(AvatarError(AvatarErrorCode.SERVER_ERROR, f"{failure.code}: {failure.message}"))
                self._fall_back(StateReason.SERVER_ERROR, conv.id)

    def yield_(
        self,
        audio: bytes | npt.NDArray[Any] | None = None,
        frames: Sequence[bytes] | bytes | None = None,
        *,
        end: bool = False,
        conversation_id: str | None = None,
    ) -> str | None:
        """Host mode in one call (``yield`` is reserved in Python): audio, frames, or both.

        Returns the conversation id when audio was given.
        """
        conv_id = None
        if audio is not None:
            conv_id = self.yield_audio_data(audio, end)
        if frames is not None:
            target = conversation_id or conv_id or self.conversation_id
            if target is None:
                raise AvatarError(AvatarErrorCode.INVALID_STATE, "frames need a conversation: yield audio first")
            self.yield_frames_data(frames, target)
        return conv_id

    # -- SDK mode --------------------------------------------------------------------------------------

    async def start(self, *, timeout: float = 10.0) -> None:
        """SDK mode: connect to the driving service and complete the handshake.

        Returns once connected. Raises ``AvatarError``: ``sessionTokenInvalid`` / ``sessionTokenExpired``
        (4010), ``appIDUnrecognized`` (4010: the service has no app of the id given to
        ``AvatarSDK.initialize``), ``insufficientBalance`` (4001), ``concurrentLimitExceeded`` (4003),
        ``avatarIDUnrecognized``, ``websocketError`` (unreachable), ``connectionInProgress``.
        """
        from .sdk import AvatarSDK

        self._require_mode("sdk")
        if self._connection_state in (ConnectionState.CONNECTING, ConnectionState.CONNECTED):
            raise AvatarError(AvatarErrorCode.CONNECTION_IN_PROGRESS, "start() was already called")
        token = AvatarSDK.session_token
        if not token:
            raise AvatarError(AvatarErrorCode.SESSION_TOKEN_INVALID, "set AvatarSDK.session_token before start()")
        self._closing = False
        self._session_rate = None  # a new connection: it negotiates the configured rate
        self._set_connection(ConnectionState.CONNECTING)
        try:
            await self._open(token, timeout)
        except AvatarError as err:
            self._set_connection(ConnectionState.FAILED, err)
            raise
        with self._lock:
            conv = self._conversation
            if conv is not None and conv.audio_only and not conv.audio_ended:
                # A new session: an utterance cut by the lost one is over; the next send() starts anew.
                self._add_audio(conv, np.zeros(0, np.int16), True)
        self._set_connection(ConnectionState.CONNECTED)

    async def _open(self, token: str, timeout: float = 10.0) -> None:
        """Connect and complete the handshake, or clean up and raise ``AvatarError``."""
        try:
            await asyncio.wait_for(self._connect(token), timeout)
        except AvatarError:
            await self._teardown()
            raise
        except (asyncio.TimeoutError, OSError) as err:
            await self._teardown()
            raise AvatarError(
                AvatarErrorCode.WEBSOCKET_ERROR, f"cannot reach the driving service: {err or 'timeout'}"
            ) from err

    async def _connect(self, token: str) -> None:
        import aiohttp

        from .sdk import AvatarSDK

        env = AvatarSDK.configuration.resolved_environment
        url = f"{env.ingress_url.rstrip('/')}/v2/driveningress/websocket"
        params = {"id": self._view.avatar.id, "appId": AvatarSDK.app_id, "sessionKey": token}
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(url, params=params, heartbeat=20.0, max_msg_size=16 << 20)
        except aiohttp.WSServerHandshakeError as err:
            raise _handshake_error(err.status, str(err.message)) from err
        except aiohttp.ClientError as err:
            raise AvatarError(AvatarErrorCode.WEBSOCKET_ERROR, f"cannot connect to {url}: {err}") from err
        # The rate is read now: a connection keeps the rate it negotiated (see sample_rate).
        rate = AvatarSDK.configuration.audio_format.sample_rate
        configure = Message(type=MessageType.MESSAGE_CLIENT_CONFIGURE_SESSION)
        configure.client_configure_session.sample_rate = rate
        configure.client_configure_session.audio_format = WireAudioFormat.AUDIO_FORMAT_PCM_S16LE
        if AvatarSDK.configuration.low_latency:
            configure.client_configure_session.extra_params["lookahead"] = "low"
        await self._ws.send_bytes(configure.SerializeToString())
        reply = await self._ws.receive()
        if reply.type != aiohttp.WSMsgType.BINARY:
            raise _close_error(self._ws.close_code, "the service closed the connection during the handshake")
        message = parse_message(reply.data)
        if message.type == MessageType.MESSAGE_SERVER_ERROR:
            failure = message.server_error
            with contextlib.suppress(Exception):
                await self._ws.receive()  # the close frame, for its code
            raise _server_error(failure.code, failure.message, self._ws.close_code)
        if message.type != MessageType.MESSAGE_SERVER_CONFIRM_SESSION:
            raise AvatarError(AvatarErrorCode.SERVER_ERROR, f"unexpected handshake reply {message.type}")
        self._connection_id = message.server_confirm_session.connection_id
        self._session_rate = rate
        self._lookahead = _lookahead_of(message.server_confirm_session.capabilities)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        import aiohttp

        ws = self._ws
        error: AvatarError | None = None
        said = False  # the last message was a ServerError for the session: it says why the close follows
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                try:
                    message = parse_message(msg.data)
                except Exception:
                    log.warning("undecodable message from the service")
                    continue
                said = False
                if message.type == MessageType.MESSAGE_SERVER_RESPONSE_ANIMATION:
                    anim = message.server_response_animation
                    with self._lock:
                        conv = self._conversation
                    if conv is not None and conv.id == anim.req_id and not conv.audio_only:
                        self._add_animation(conv, anim.animation, anim.end)
                elif message.type == MessageType.MESSAGE_SERVER_ERROR:
                    failure = message.server_error
                    error = _server_error(failure.code, failure.message, None)
                    self._error(error)
                    if failure.req_id:
                        # The service failed this request (it aborts it): its audio plays on alone.
                        self._fall_back(StateReason.SERVER_ERROR, failure.req_id)
                    else:
                        said = True
        except Exception as exc:  # a broken socket
            error = AvatarError(AvatarErrorCode.WEBSOCKET_CLOSED_ABNORMALLY, str(exc))
        if self._closing:
            return
        code = ws.close_code
        closed = _close_error(code, error.message if error else "the connection closed") if code != 1000 else error
        await self._on_lost(code, closed, _loss_reason(code, said))

    def _fall_back(self, cause: StateReason, req_id: str | None = None) -> None:
        """The conversation in progress (the one of ``req_id``, if given) loses its motion; its audio plays on.

        The face fades back to idle life from the pose on screen; ``playing`` is reported again with
        ``fallbackMode`` (not while paused), and the conversation's end reports ``cause``.
        """
        with self._lock:
            conv = self._conversation
            if (
                conv is None
                or conv.audio_only
                or (req_id is not None and conv.id != req_id)
                or self._conversation_state is ConversationState.IDLE  # played out, or interrupted
            ):
                return
            now = self.clock()
            conv.timeline.truncate(now)
            conv.layer.close(now)
            conv.audio_only = True
            conv.fallback = cause
            if self._open_request == conv.id:
                self._open_request = None  # the rest of the utterance is not sent: it plays audio only
            if self._conversation_state is ConversationState.PLAYING:
                self._set_conversation(ConversationState.PLAYING, StateReason.FALLBACK, again=True)

    async def _on_lost(self, code: int | None, error: AvatarError | None, cause: StateReason) -> None:
        """The connection ended on its own: reconnect where the contract allows, else fall back to audio only."""
        await self._teardown()
        self._lost_reason = cause
        # Audio-only fallback: the audio keeps playing on its clock; the face returns to idle.
        self._fall_back(cause)
        if _retryable(code):
            # The session limit (4002), an unavailable upstream (45xx), or the transport going away
            # (the process behind a load balancer stopped or died): connect again, a new connection
            # lands on a live worker. First at once, then with backoff; a few times, not forever.
            self._reconnecting = True
            try:
                while self._reconnects < self.max_reconnects and not self._closing:
                    first = code == 4002 or self._reconnects == 0
                    delay = 0.0 if first else min(8.0, 0.5 * 2 ** (self._reconnects - 1))
                    self._reconnects += 1
                    log.info("connection closed (%s); reconnect %d in %.1f s", code, self._reconnects, delay)
                    self._set_connection(ConnectionState.CONNECTING, error)
                    await asyncio.sleep(delay)
                    if self._closing:
                        return
                    from .sdk import AvatarSDK

                    try:
                        # The token is read again: the app may have refreshed it meanwhile.
                        await self._open(AvatarSDK.session_token or "")
                        self._reconnects = 0
                        self._set_connection(ConnectionState.CONNECTED)
                        return
                    except AvatarError as err:
                        error = err
                        if not _retryable_error(err):
                            break
            finally:
                self._reconnecting = False
            self._reconnects = 0
        self._set_connection(
            ConnectionState.FAILED, error or AvatarError(AvatarErrorCode.WEBSOCKET_CLOSED_ABNORMALLY, "lost")
        )

    async def _teardown(self) -> None:
        ws, session, reader = self._ws, self._session, self._reader
        self._ws = self._session = self._reader = None
        self._open_request = None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    def _send_message(self, message: Message) -> None:
        ws, loop = self._ws, self._loop
        if ws is None or loop is None:
            raise AvatarError(AvatarErrorCode.INVALID_STATE, "not connected: call await controller.start() first")
        data = message.SerializeToString()

        async def send() -> None:
            try:
                await ws.send_bytes(data)
            except Exception as err:
                self._error(AvatarError(AvatarErrorCode.WEBSOCKET_ERROR, f"send failed: {err}"))

        if _running_loop() is loop:
            loop.create_task(send())
        else:
            asyncio.run_coroutine_threadsafe(send(), loop)

    def send(self, audio: bytes | npt.NDArray[Any], end: bool = False) -> str:
        """SDK mode: send speech; returns the conversation id.

        ``audio`` is PCM16 bytes or a numpy array at :attr:`sample_rate`: the rate the connection
        negotiated (the configured one when it connected). After ``end=True`` the next ``send``
        starts a new conversation, which interrupts the one playing.
        """
        self._require_mode("sdk")
        with self._lock:
            conv = self._conversation
            cut = conv is not None and conv.audio_only and not conv.audio_ended
        if cut or (self._reconnecting and self._connection_state is not ConnectionState.CONNECTED):
            # The connection was lost during this utterance (or is being restored): its audio goes on
            # playing without motion; the next conversation is driven again.
            return self._send_audio_only(_pcm16(audio), end)
        if self._connection_state is not ConnectionState.CONNECTED:
            raise AvatarError(AvatarErrorCode.INVALID_STATE, "not connected: call await controller.start() first")
        pcm = _pcm16(audio)
        with self._lock:
            conv = self._conversation
            if conv is None or self._open_request != conv.id:
                conv = self._begin()
                self._open_request = conv.id
            message = Message(type=MessageType.MESSAGE_CLIENT_AUDIO_INPUT)
            message.client_audio_input.req_id = conv.id
            message.client_audio_input.audio = pcm.astype("<i2").tobytes()
            message.client_audio_input.end = end
            self._send_message(message)
            self._add_audio(conv, pcm, end)
            if end:
                self._open_request = None
            return conv.id

    def _send_audio_only(self, pcm: I16, end: bool) -> str:
        """Audio-only fallback for ``send``: play the audio without motion."""
        with self._lock:
            conv = self._conversation
            if conv is None or conv.audio_ended:
                # A conversation that starts while the connection is being restored: audio only.
                conv = self._begin()
                conv.audio_only = True
                conv.fallback = self._lost_reason
                conv.layer.close(self.clock())
            self._add_audio(conv, pcm, end)
            return conv.id

    async def close(self) -> None:
        """Close the connection (idempotent); the avatar returns to idle."""
        self._closing = True
        await self._teardown()
        self._drop_playback(StateReason.USER_ACTION)
        self._session_rate = None
        self._set_connection(ConnectionState.DISCONNECTED)

    # -- sound device ------------------------------------------------------------------------------

    def start_audio_output(
        self, device: int | str | None = None, *, latency: str | float = "high", sample_rate: int | None = None
    ) -> DeviceAudioOutput:
        """Play this controller's speech through a sound device (the ``audio`` extra); returns the output.

        The device becomes the master clock, continuing from the clock's value now. Views in a window
        do this by themselves when :attr:`Configuration.audio_output <avatarkit.sdk.Configuration>`
        says so; headless video pipelines do not need it: they take the audio from :meth:`av_frames`.
        See :class:`avatarkit.audio.DeviceAudioOutput` for the timing, the latency and the rate
        (the SDK's by default; the speech is resampled for a device at another).

        Raises:
            AvatarError: ``invalidArgument`` when sounddevice is missing or the device cannot be opened.
        """
        self.stop_audio_output()
        output = DeviceAudioOutput(
            self, paused=self._pace.paused, device=device, latency=latency, sample_rate=sample_rate
        )
        self._audio_output = output
        return output

    def stop_audio_output(self) -> None:
        """Stop playing through the sound device (idempotent); the pace clock carries on from its time."""
        output = self._audio_output
        if output is not None:
            output.close()  # the device plays what it holds; its clock keeps the pace meanwhile
            with self._lock:
                self._pace.set(output.clock())
                self._audio_output = None

    def _configured_output(self, windowed: bool) -> None:
        """Open the sound device the SDK's configuration asks for (a view calls this once it is made)."""
        from .sdk import AudioOutputMode, AvatarSDK

        mode = AudioOutputMode(AvatarSDK.configuration.audio_output if AvatarSDK.is_initialized else "auto")
        if mode is AudioOutputMode.DEVICE:
            self.start_audio_output()
        elif mode is AudioOutputMode.AUTO and windowed and default_output_device() is not None:
            try:
                self.start_audio_output()
            except AvatarError as err:
                log.info("no sound: %s; the clock runs at the audio's pace", err.message)

    @property
    def audio_output(self) -> DeviceAudioOutput | None:
        """The :class:`~avatarkit.audio.DeviceAudioOutput` playing this controller's speech (and its clock), or None."""
        return self._audio_output

    # -- video pipelines -------------------------------------------------------------------------

    async def av_frames(self, fps: float = 30.0, *, realtime: bool = True) -> AsyncIterator[AVFrame]:
        """Rendered frames paired with the audio that plays during each (A/V in sync by construction).

        Each frame's ``sample_rate`` is that of its audio: the rate of the conversation playing.
        """
        step = 1.0 / fps
        async for frame in self._view.frames(fps, realtime=realtime):
            audio, rate = self._audio_between(frame.timestamp, frame.timestamp + step)
            yield AVFrame(frame.image, audio, frame.timestamp, rate)


def _retryable(code: int | None) -> bool:
    """Close codes after which the controller connects again by itself.

    4002 (session time limit: "reconnect is allowed and expected"), 45xx (upstream unavailable: retry
    with backoff), and the transport's own: no code (the socket broke), 1001 going away, 1006
    abnormal closure (no close frame: the peer process died), 1011 server error, 1012 service
    restart, 1013 try again later, 1014 bad gateway. Not 1000 (a clean close) and not 40xx
    (the request is at fault: a new token, credits or fewer sessions are needed first).
    """
    return code is None or code in (1001, 1006, 1011, 1012, 1013, 1014, 4002) or 4500 <= code < 4600


def _loss_reason(code: int | None, said: bool) -> StateReason:
    """Why a connection that ended on its own took the conversation's motion with it.

    ``NETWORK_ERROR`` when the service did not say: no close frame (the socket broke, 1006), or a
    close that is no error (1000, 1001, 1012-1014: going away, restarting, a proxy) with no
    ``ServerError`` just before it. ``SERVER_ERROR`` when it did: a ``ServerError`` just before the
    close frame (503 then 1001 on shutdown, 4002, 4503, ...), or an error close code (1011, 4xxx).
    """
    if code is None or code == 1006:
        return StateReason.NETWORK_ERROR
    if said or code not in (1000, 1001, 1012, 1013, 1014):
        return StateReason.SERVER_ERROR
    return StateReason.NETWORK_ERROR


def _retryable_error(error: AvatarError) -> bool:
    """Whether a failed reconnect attempt is worth another.

    Yes when the service is unreachable, going away or failing; no when it refuses this client
    (token, credits, concurrency, avatar).
    """
    return error.code in (
        AvatarErrorCode.WEBSOCKET_ERROR,
        AvatarErrorCode.WEBSOCKET_CLOSED_ABNORMALLY,
        AvatarErrorCode.SERVER_ERROR,
    )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _lookahead_of(capabilities: Sequence[str]) -> float | None:
    """The service's look-ahead in seconds from its ``lookahead_ms=N`` capability (None without one)."""
    for item in capabilities:
        name, _, value = item.partition("=")
        if name == "lookahead_ms":
            try:
                ms = float(value)
            except ValueError:
                return None
            return ms / 1000 if 0 <= ms <= 10_000 else None
    return None


def _handshake_error(status: int, message: str) -> AvatarError:
    if status == 401:
        return AvatarError(AvatarErrorCode.SESSION_TOKEN_EXPIRED, f"the service refused the token ({status})")
    if status in (400, 403):
        return AvatarError(AvatarErrorCode.SESSION_TOKEN_INVALID, f"the service refused the token ({status}) {message}")
    if status == 404:
        return AvatarError(AvatarErrorCode.AVATAR_ID_UNRECOGNIZED, f"the service does not know this avatar ({status})")
    return AvatarError(AvatarErrorCode.WEBSOCKET_ERROR, f"WebSocket upgrade failed ({status}) {message}")


def _server_error(code: int, message: str, close_code: int | None) -> AvatarError:
    text = message.lower()
    if "app id unrecognized" in text:
        # The service knows no app of the id given to AvatarSDK.initialize (it refuses with 4010,
        # worded "invalid session token: app id unrecognized"): a new token would not help.
        return AvatarError(AvatarErrorCode.APP_ID_UNRECOGNIZED, message)
    if code == 4010 or close_code == 4010 or "token" in text:
        expired = "expired" in text
        kind = AvatarErrorCode.SESSION_TOKEN_EXPIRED if expired else AvatarErrorCode.SESSION_TOKEN_INVALID
        return AvatarError(kind, message)
    mapping = {
        4001: AvatarErrorCode.INSUFFICIENT_BALANCE,
        4002: AvatarErrorCode.SESSION_TIMEOUT,
        4003: AvatarErrorCode.CONCURRENT_LIMIT_EXCEEDED,
    }
    for c in (code, close_code):
        if c in mapping:
            return AvatarError(mapping[c], message)
    if "avatar not found" in text:
        return AvatarError(AvatarErrorCode.AVATAR_ID_UNRECOGNIZED, message)
    return AvatarError(AvatarErrorCode.SERVER_ERROR, f"{code}: {message}")


def _close_error(code: int | None, message: str) -> AvatarError:
    if code in (4001, 4002, 4003, 4010):
        return _server_error(code, message, code)
    return AvatarError(AvatarErrorCode.WEBSOCKET_CLOSED_ABNORMALLY, f"closed with code {code}: {message}")
