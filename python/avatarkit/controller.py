"""AvatarController: what drives one view's avatar (stage 4 of the lifecycle).

The view creates it (``view.avatar_controller``). It is a small facade over parts that each do one
thing, with data flowing one way (``docs/concepts.md`` has the picture):

- a driving transport (:mod:`avatarkit.transport`) turns the speech you ``send`` into motion: the
  driving service over a WebSocket (SDK mode), or the speech engine in this process (local mode:
  no service, no token). In Host mode your backend talks to the service and hands audio and
  animation over with ``yield_``;
- playback (:mod:`avatarkit.playback`) plays the audio on the master clock (a sound device's, or
  the pace clock), places the motion on that clock, and tells when a conversation starts, pauses,
  falls back to audio only and ends;
- the mixer (:mod:`avatarkit.mixer`) blends the conversations' motion over idle life; the view
  samples it for every frame it renders;
- events (:mod:`avatarkit.events`) reach your callbacks and iterators on your event loop.

Timing: a conversation's audio starts playing a jitter buffer after its first chunk arrives (see
:attr:`AvatarController.jitter_buffer`: by default sized from the driving side's look-ahead and the
size of the chunks you send, plus what lateness earlier conversations showed); motion frame ``k``
is shown when the audio reaches ``k / fps`` seconds, at the stream's own frame rate (an AK1
stream carries it in its schema: 25 fps from ``avatarkit serve`` and the engine; the commercial
service's FlameAnimation is 25 fps). Motion that arrives late is interpolated or held, never
allowed to drift from the audio.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from .audio import DeviceAudioOutput, StreamResampler, default_output_device
from .codec import CANONICAL_NAMES, StreamDecoder
from .errors import AvatarError, AvatarErrorCode
from .events import ConnectionState, ControllerEvent, ConversationState, EventHub, StateReason
from .mixer import Mixer
from .playback import FPS, Conversation, Playback, Scheduler, new_conversation_id, pcm16
from .transport import DrivingTransport, HostRelay, LocalTransport, TransportListener, WebSocketTransport

if TYPE_CHECKING:
    from .manager import Avatar

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
I16 = npt.NDArray[np.int16]

__all__ = [
    "FPS",
    "AVFrame",
    "AvatarController",
    "ConnectionState",
    "ControllerEvent",
    "ConversationState",
    "StateReason",
    "Surface",
    "new_conversation_id",
]


class RenderedFrame(Protocol):
    """A frame a view rendered: its image and its clock time."""

    @property
    def image(self) -> npt.NDArray[np.uint8]:
        """``uint8 (height, width, 4)`` RGBA."""
        ...

    @property
    def timestamp(self) -> float:
        """The clock time it shows."""
        ...


class Surface(Protocol):
    """What the controller needs of its view: the avatar, and rendered frames for :meth:`AvatarController.av_frames`."""

    @property
    def avatar(self) -> Avatar:
        """The avatar it shows."""
        ...

    def frames(self, fps: float | None = None, *, realtime: bool = True) -> AsyncIterator[RenderedFrame]:
        """Rendered frames at ``fps``, following the playback clock when ``realtime``."""
        ...


@dataclasses.dataclass(frozen=True)
class AVFrame:
    """A rendered frame with the audio that plays during it (for video pipelines).

    ``image`` is ``uint8 (height, width, 4)`` RGBA, or ``(height, width, 3)`` with
    ``pixel_format="rgb"``. ``audio`` is mono int16 at ``sample_rate``: the conversation's rate, or
    the rate :meth:`AvatarController.av_frames` was asked for; empty while idle when it was asked
    to leave idle audio out.

    The markers say where utterances are: ``conversation_id`` is the conversation whose speech
    plays during the frame (None while none does) and ``speaking`` says whether one does.
    ``end_of_utterance`` is set on exactly one frame per conversation, the first that starts at or
    after its end; ``ended_conversation_id`` names it and ``interrupted`` says whether it was cut
    (``interrupt()``, ``close()``, a newer conversation) rather than played out.
    """

    image: npt.NDArray[np.uint8]
    audio: I16
    timestamp: float
    sample_rate: int
    conversation_id: str | None = None
    speaking: bool = False
    end_of_utterance: bool = False
    interrupted: bool = False
    ended_conversation_id: str | None = None


class AvatarController:
    """Drives one view's avatar. Created by :class:`~avatarkit.view.AvatarView`; never by the app.

    Callbacks (optional): ``on_connection_state(state, error)``, ``on_conversation_state(state,
    reason)``, ``on_error(error)``, ``on_frame_rate_info(fps)``. They run on the app's event loop
    (the one ``start()`` ran on, or the one running when the view was made; see
    :mod:`avatarkit.events`); keep them short. :meth:`events` offers the same as an async iterator.
    """

    #: Attempts to connect again after the connection was lost with a close code that allows it
    #: (1001, 1006, 1011-1014, 4002, 45xx, or a broken socket); the first is immediate, then 0.5, 1, 2 ... s.
    max_reconnects = 5

    def __init__(
        self,
        view: Surface,
        *,
        channels: Sequence[str] = CANONICAL_NAMES,
        seed: int | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self._view = view
        self.channels = list(channels)
        clip = None
        clip_names: list[str] | None = None
        idle_bytes = view.avatar.idle_clip()
        if idle_bytes:
            frames = StreamDecoder().decode(idle_bytes)
            clip, clip_names = frames.values.copy(), frames.names
        self._mixer = Mixer(self.channels, clip, clip_names, seed=seed)
        self._events = EventHub()
        self._events.bind()
        self._playback = Playback(
            self._mixer, self._conversation_changed, scheduler=scheduler, default_rate=lambda: self.sample_rate
        )
        self._connection_state = ConnectionState.DISCONNECTED
        self.on_connection_state: Callable[[ConnectionState, AvatarError | None], object] | None = None
        self.on_conversation_state: Callable[[ConversationState, StateReason], object] | None = None
        self.on_error: Callable[[AvatarError], object] | None = None
        self.on_frame_rate_info: Callable[[float], object] | None = None
        self._transport: DrivingTransport | None = None
        self._listener = TransportListener(
            motion_received=self._motion_received,
            request_failed=self._request_failed,
            error_reported=self._error,
            connection_changed=self._connection_changed,
            connection_lost=self._connection_lost,
        )
        self._host = HostRelay(self._listener, lambda _: True)
        self._open_request: str | None = None  # the conversation whose end we have not sent
        #: Why the last connection was lost (the end reason of conversations it left audio only).
        self._lost_reason = StateReason.NETWORK_ERROR
        self._audio_output: DeviceAudioOutput | None = None
        self._emotion = ("neutral", 0.0)

    # -- the parts -------------------------------------------------------------------------------

    @property
    def playback(self) -> Playback:
        """The conversations on the clock (:class:`~avatarkit.playback.Playback`)."""
        return self._playback

    @property
    def mixer(self) -> Mixer:
        """What the face shows at a clock time (:class:`~avatarkit.mixer.Mixer`)."""
        return self._mixer

    # -- clock -----------------------------------------------------------------------------------

    def clock(self) -> float:
        """Playback time in seconds; it stands still while paused (audio is the master clock).

        With a sound device (:attr:`audio_output`) it is the time of the sample being heard: the
        samples the device consumed, less its buffer. Without, it runs at the audio's pace.
        """
        return self._playback.clock()

    @property
    def jitter_buffer(self) -> float | None:
        """Seconds between a conversation's first audio and the start of its playback, or None (automatic).

        Automatic: enough for motion to arrive in time when chunks are sent as they are spoken. That
        is the driving side's look-ahead (``lookahead_ms`` in the service's handshake, or the
        engine's in local mode: 80 ms, or 0 with the low-latency engine) rounded up to whole
        chunks, plus :attr:`jitter_margin` and the worst lateness of motion seen in the last
        conversation; 0.12 s when the look-ahead is unknown (Host mode, or a service that does not say).
        """
        return self._playback.jitter_buffer

    @jitter_buffer.setter
    def jitter_buffer(self, value: float | None) -> None:
        self._playback.jitter_buffer = value

    @property
    def jitter_margin(self) -> float:
        """Processing and network slack of the automatic jitter buffer, in seconds (0.02)."""
        return self._playback.jitter_margin

    @jitter_margin.setter
    def jitter_margin(self, value: float) -> None:
        self._playback.jitter_margin = value

    def current_jitter_buffer(self, chunk_seconds: float = 0.04) -> float:
        """The jitter buffer a conversation whose first chunk lasts ``chunk_seconds`` starts with."""
        return self._playback.current_jitter_buffer(chunk_seconds)

    @property
    def lookahead(self) -> float | None:
        """The driving side's look-ahead in seconds (the service's handshake says, or the engine's); None if unknown."""
        return self._playback.lookahead

    @property
    def volume(self) -> float:
        """Gain applied to the speech as it plays (sound device, ``audio_between``, ``av_frames``), 0.."""
        return self._playback.volume

    @volume.setter
    def volume(self, value: float) -> None:
        self._playback.volume = float(value)

    # -- state and events ------------------------------------------------------------------------

    @property
    def connection_state(self) -> ConnectionState:
        """The connection to the driving service (or the in-process engine)."""
        return self._connection_state

    @property
    def conversation_state(self) -> ConversationState:
        """Idle, playing or paused."""
        return self._playback.state

    @property
    def conversation_id(self) -> str | None:
        """The conversation playing (or last played), if any."""
        conv = self._playback.current
        return conv.id if conv else None

    @property
    def connection_id(self) -> str | None:
        """The id of the open connection: the service's (SDK mode), or ``local_...`` (local mode)."""
        transport = self._transport
        return transport.connection_id if transport is not None else None

    def conversation(self, conversation_id: str | None = None) -> Conversation | None:
        """A conversation: its audio, motion and place on the clock (:class:`~avatarkit.playback.Conversation`).

        The current (or last) one by default; one of the last few by id; None when there is none.
        """
        return self._playback.current if conversation_id is None else self._playback.find(conversation_id)

    def conversation_motion(self, conversation_id: str | None = None) -> F32 | None:
        """The motion frames a conversation received so far (``frames x channels``, the stream's rate).

        The current (or last) conversation by default; None for an id no longer remembered.
        """
        conv = self.conversation(conversation_id)
        return conv.motion if conv is not None else None

    def _conversation_changed(self, state: ConversationState, reason: StateReason, conversation_id: str | None) -> None:
        def call() -> None:
            if self.on_conversation_state is not None:
                self.on_conversation_state(state, reason)

        event = ControllerEvent(
            "conversation_state", conversation_state=state, reason=reason, conversation_id=conversation_id
        )
        self._events.publish(event, call)

    def _set_connection(self, state: ConnectionState, error: AvatarError | None = None) -> None:
        if state is self._connection_state and error is None:
            return
        self._connection_state = state

        def call() -> None:
            if self.on_connection_state is not None:
                self.on_connection_state(state, error)

        self._events.publish(ControllerEvent("connection_state", connection_state=state, error=error), call)

    def _error(self, error: AvatarError) -> None:
        log.warning("%s", error)

        def call() -> None:
            if self.on_error is not None:
                self.on_error(error)

        self._events.publish(ControllerEvent("error", error=error), call)

    def report_frame_rate(self, fps: float) -> None:
        """Tell ``on_frame_rate_info`` and the event iterators the view's frame rate (the view calls this)."""

        def call() -> None:
            if self.on_frame_rate_info is not None:
                self.on_frame_rate_info(fps)

        self._events.publish(ControllerEvent("frame_rate", frame_rate=fps), call)

    async def events(self) -> AsyncIterator[ControllerEvent]:
        """Every event from now on, as an async iterator (callbacks see the same)."""
        async for event in self._events.subscribe():
            yield event

    # -- what transports report (its TransportListener) ----------------------------------------------

    def _motion_received(
        self,
        conversation_id: str,
        values: F32,
        indices: npt.NDArray[np.int64],
        names: Sequence[str],
        fps: float,
        end: bool,
    ) -> None:
        """Transport report: motion frames of a conversation (dropped unless it is the current one)."""
        with self._playback.lock:
            conv = self._playback.current
            if conv is None or conv.id != conversation_id or conv.audio_only:
                return
            self._playback.add_motion(conv, values, indices, names, fps, end)

    def _request_failed(self, conversation_id: str, cause: StateReason) -> None:
        """Transport report: the driving side gave up on a conversation; its audio plays on alone."""
        with self._playback.lock:
            conv = self._playback.fall_back(cause, conversation_id)
            if conv is not None and self._open_request == conv.id:
                self._open_request = None  # the rest of the utterance is not sent: it plays audio only

    def _connection_changed(self, state: ConnectionState, error: AvatarError | None) -> None:
        """Transport report: the connection changed state (reconnects)."""
        if state is ConnectionState.CONNECTED and self._transport is not None:
            self._playback.lookahead = self._transport.lookahead
        self._set_connection(state, error)

    def _connection_lost(self, cause: StateReason) -> None:
        """Transport report: the connection was lost; the conversation in progress falls back to audio only."""
        self._lost_reason = cause
        self._open_request = None
        self._playback.fall_back(cause)

    # -- local motion (every mode, and apps that pose the avatar themselves) ---------------------

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
        begin = self.clock() if start is None else start
        self._mixer.play_motion(values, frame_indices, names, fps=fps, begin=begin, restart=start is not None)

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
        pcm = pcm16(audio)
        rate = self.sample_rate if sample_rate is None else sample_rate
        return self._playback.play(pcm, motion, names, sample_rate=rate, fps=fps, start=start)

    def set_emotion(self, name: str, intensity: float = 1.0, fade: float = 0.5) -> None:
        """Show an emotion under and around speech, fading to it over ``fade`` seconds.

        ``name`` is one of :data:`avatarkit.emotions.EMOTIONS`: ``neutral``, ``happy``, ``sad``,
        ``surprised``, ``angry``, ``thinking``. The pose moves brows, eyes, cheeks, nose, the mouth's
        corners and the head a little, never the lip shapes, so speech keeps its visemes; the
        corners are halved while the avatar speaks. It stays until another emotion is set
        (``neutral`` to clear). :data:`avatarkit.emotions.EMOTION_TOOL` offers this to an LLM.

        Raises:
            AvatarError: ``invalidArgument`` for an unknown name, an intensity outside 0..1 or a
                negative fade.
        """
        from .emotions import EMOTIONS

        if name not in EMOTIONS:
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, f"unknown emotion {name!r}; one of {list(EMOTIONS)}")
        if not 0.0 <= intensity <= 1.0 or not fade >= 0.0:
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "intensity must be within 0..1 and fade at least 0")
        pose = np.zeros(len(self.channels), np.float32)
        for channel, value in EMOTIONS[name].items():
            if channel in self.channels:
                pose[self.channels.index(channel)] = value * intensity
        self._mixer.set_expression(pose, at=self.clock(), fade=fade)
        self._emotion = (name, float(intensity))

    @property
    def emotion(self) -> tuple[str, float]:
        """The emotion set last and its intensity (``("neutral", 0.0)`` at first)."""
        return self._emotion

    def stop_motion(self) -> None:
        """Return to idle, blending out from the pose on screen."""
        self._mixer.stop_motion(self.clock())

    def set_channels(self, values: Mapping[str, float] | None) -> None:
        """Pin channels to fixed values on top of everything else (None clears); unknown names are ignored."""
        self._mixer.set_channels(values)

    def sample(self, t: float) -> F32:
        """Channel values for clock time ``t`` (the view calls this for every frame it renders).

        Reports the end of playback when ``t`` reaches it, then mixes idle life and motion. Idle
        life (blinks, breathing, gaze) keeps its own time through a pause: a paused avatar holds
        its speech pose but does not freeze.
        """
        self._playback.update(t)
        return self._mixer.sample(t, life=t + self._playback.pace.paused_seconds)

    # -- audio of a conversation -----------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) of the speech ``send``, ``yield_audio_data`` and ``play`` take now.

        SDK and local mode, started: the rate the connection negotiated (local mode: the configured
        rate when it started). It stays while the connection lives, also when
        ``AvatarSDK.initialize`` sets another rate meanwhile; the controller takes the new one when
        it connects again (``start()`` after ``close()``, or a reconnect after a lost connection).
        Otherwise: the configured ``AudioFormat.sample_rate`` (16000 before ``initialize``).
        """
        transport = self._transport
        rate = transport.sample_rate if transport is not None else None
        return rate or self._configured_rate()

    @staticmethod
    def _configured_rate() -> int:
        from .sdk import AvatarSDK

        return AvatarSDK.configuration.audio_format.sample_rate if AvatarSDK.is_initialized else 16000

    def audio_between(self, t0: float, t1: float) -> I16:
        """The audio playing between clock times ``t0`` and ``t1``, int16 at the conversation's rate."""
        return self._playback.audio_between(t0, t1)

    # -- every mode ------------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop the conversation now: drop pending audio and motion, return to idle (blending out).

        Audio already handed to a sound device (its latency) still plays.
        """
        conv = self._playback.current
        transport = self._transport
        if conv is not None and transport is not None and self._connection_state is ConnectionState.CONNECTED:
            transport.interrupt(conv.id)
        self._open_request = None
        self._playback.drop(StateReason.USER_ACTION)
        if self._playback.paused:
            self.resume()  # nothing is left to hold: the clock runs on (no state change: idle)

    def pause(self) -> None:
        """Freeze playback (audio and speech motion); buffers are kept; idle life goes on.

        A sound device plays out what it already holds (its latency) and the clock stands after it.
        """
        with self._playback.lock:
            if self._playback.paused:
                return
            if self._audio_output is not None:
                self._audio_output.pause()
            self._playback.pause()

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        with self._playback.lock:
            if not self._playback.paused:
                return
            if self._audio_output is not None:
                self._audio_output.resume()
            self._playback.resume()

    # -- Host mode -------------------------------------------------------------------------------

    @staticmethod
    def _mode() -> Any:
        from .sdk import AvatarSDK

        return AvatarSDK.configuration.mode

    def _require_host(self) -> None:
        from .sdk import DrivingServiceMode

        if self._mode() is not DrivingServiceMode.HOST:
            mode = self._mode().value
            raise AvatarError(AvatarErrorCode.INVALID_STATE, f"yield_ is for Host mode; this SDK is in {mode} mode")

    def _require_driving(self) -> None:
        from .sdk import DrivingServiceMode

        if self._mode() is DrivingServiceMode.HOST:
            raise AvatarError(
                AvatarErrorCode.INVALID_STATE, "start/send are for SDK and local mode; this SDK is in Host mode"
            )

    def yield_audio_data(self, audio: bytes | npt.NDArray[Any], end: bool = False) -> str:
        """Host mode: play audio your backend got from the service; returns the conversation id.

        Consecutive calls share a conversation until one has ``end=True``; the next call then starts a
        new conversation, which interrupts the one playing.
        """
        self._require_host()
        pcm = pcm16(audio)
        with self._playback.lock:
            conv = self._playback.current
            if conv is None or conv.audio_ended:
                conv = self._playback.begin(self.sample_rate)
            self._playback.add_audio(conv, pcm, end)
            return conv.id

    def yield_frames_data(self, frames: Sequence[bytes] | bytes, conversation_id: str) -> None:
        """Host mode: the serialized ``driveningress.v2`` ``Message`` envelopes your backend received.

        Frames of any conversation but the current one are dropped. The ``animation`` may be this
        project's AK1 payload or the commercial service's ``FlameAnimation``. A ``ServerError``
        envelope (the service failed the request) is reported to ``on_error`` and the conversation
        plays on audio only, as in SDK mode: ``playing`` with ``fallbackMode``, then ``idle`` with
        ``serverError``; later frames of it are dropped.
        """
        self._require_host()
        items = [frames] if isinstance(frames, bytes | bytearray) else list(frames)
        conv = self._playback.current
        if conv is None or conv.id != conversation_id:
            log.debug("dropping %d frames of conversation %s", len(items), conversation_id)
            return
        self._host.feed(items, conversation_id)

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

    # -- SDK and local mode ----------------------------------------------------------------------

    async def start(self, *, timeout: float = 10.0) -> None:
        """Connect the driving side: the service (SDK mode) or the in-process engine (local mode).

        Returns once connected. In local mode nothing leaves the process: no service, no token. SDK
        mode raises ``AvatarError``: ``sessionTokenInvalid`` / ``sessionTokenExpired`` (4010),
        ``appIDUnrecognized`` (4010: the service has no app of the id given to
        ``AvatarSDK.initialize``), ``insufficientBalance`` (4001), ``concurrentLimitExceeded`` (4003),
        ``avatarIDUnrecognized``, ``websocketError`` (unreachable); both modes
        ``connectionInProgress`` when started already, and ``invalidState`` in Host mode.
        """
        from .sdk import AvatarSDK, DrivingServiceMode

        self._require_driving()
        if self._connection_state in (ConnectionState.CONNECTING, ConnectionState.CONNECTED):
            raise AvatarError(AvatarErrorCode.CONNECTION_IN_PROGRESS, "start() was already called")
        config = AvatarSDK.configuration
        transport: DrivingTransport
        if config.mode is DrivingServiceMode.LOCAL:
            transport = LocalTransport(self._listener, config.audio_format.sample_rate, low_latency=config.low_latency)
        else:
            if not AvatarSDK.session_token:
                raise AvatarError(AvatarErrorCode.SESSION_TOKEN_INVALID, "set AvatarSDK.session_token before start()")
            avatar_id, reconnects = self._view.avatar.id, self.max_reconnects
            transport = WebSocketTransport(
                self._listener, avatar_id, lambda: AvatarSDK.session_token, max_reconnects=reconnects
            )
        self._events.bind()
        self._transport = transport
        self._set_connection(ConnectionState.CONNECTING)
        try:
            await transport.open(timeout)
        except AvatarError as err:
            self._transport = None
            self._set_connection(ConnectionState.FAILED, err)
            raise
        self._playback.lookahead = transport.lookahead
        with self._playback.lock:
            conv = self._playback.current
            if conv is not None and conv.audio_only and not conv.audio_ended:
                # A new session: an utterance cut by the lost one is over; the next send() starts anew.
                self._playback.add_audio(conv, np.zeros(0, np.int16), True)
        self._set_connection(ConnectionState.CONNECTED)

    def send(self, audio: bytes | npt.NDArray[Any], end: bool = False) -> str:
        """SDK and local mode: send speech; returns the conversation id.

        ``audio`` is PCM16 bytes or a numpy array at :attr:`sample_rate`: the rate the connection
        negotiated (the configured one when it started). After ``end=True`` the next ``send``
        starts a new conversation, which interrupts the one playing.
        """
        self._require_driving()
        transport = self._transport
        with self._playback.lock:
            conv = self._playback.current
            cut = conv is not None and conv.audio_only and not conv.audio_ended
        reconnecting = transport is not None and transport.reconnecting
        if cut or (reconnecting and self._connection_state is not ConnectionState.CONNECTED):
            # The connection was lost during this utterance (or is being restored): its audio goes on
            # playing without motion; the next conversation is driven again.
            return self._send_audio_only(pcm16(audio), end)
        if transport is None or self._connection_state is not ConnectionState.CONNECTED:
            raise AvatarError(AvatarErrorCode.INVALID_STATE, "not connected: call await controller.start() first")
        pcm = pcm16(audio)
        with self._playback.lock:
            conv = self._playback.current
            if conv is None or self._open_request != conv.id:
                conv = self._playback.begin(self.sample_rate)
                self._open_request = conv.id
            self._playback.add_audio(conv, pcm, end)
            if end:
                self._open_request = None
            transport.send_audio(conv.id, pcm, end)
            return conv.id

    async def drain(self) -> None:
        """Wait until the speech handed to :meth:`send` has left this process (SDK mode: written to the socket).

        ``send`` never blocks: it queues, and a writer sends the queue in order as fast as the
        socket takes it. A producer faster than the network (a TTS that makes speech ahead of time)
        can ``await controller.drain()`` between chunks to keep the queue short. In local mode it
        returns at once.
        """
        transport = self._transport
        if transport is not None:
            await transport.drain()

    def _send_audio_only(self, pcm: I16, end: bool) -> str:
        """Audio-only fallback for ``send``: play the audio without motion."""
        with self._playback.lock:
            conv = self._playback.current
            if conv is None or conv.audio_ended:
                # A conversation that starts while the connection is being restored: audio only.
                conv = self._playback.begin_audio_only(self.sample_rate, self._lost_reason)
            self._playback.add_audio(conv, pcm, end)
            return conv.id

    async def close(self) -> None:
        """Close the connection (idempotent); the avatar returns to idle."""
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()
        self._open_request = None
        self._playback.drop(StateReason.USER_ACTION)
        self._set_connection(ConnectionState.DISCONNECTED)

    # -- sound device ----------------------------------------------------------------------------

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
            self._playback, paused=self._playback.paused, device=device, latency=latency, sample_rate=sample_rate
        )
        self._audio_output = output
        self._playback.output = output
        return output

    def stop_audio_output(self) -> None:
        """Stop playing through the sound device (idempotent); the pace clock carries on from its time."""
        output = self._audio_output
        if output is not None:
            output.close()  # the device plays what it holds; its clock keeps the pace meanwhile
            with self._playback.lock:
                self._playback.pace.set(output.clock())
                self._playback.output = None
                self._audio_output = None

    def configure_audio_output(self, windowed: bool) -> None:
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

    async def av_frames(
        self,
        fps: float = 30.0,
        *,
        realtime: bool = True,
        pixel_format: str = "rgba",
        sample_rate: int | None = None,
        idle_audio: bool = True,
    ) -> AsyncIterator[AVFrame]:
        """Rendered frames paired with the audio that plays during each (A/V in sync by construction).

        Args:
            fps: frames per second.
            realtime: follow the playback clock (sleep between frames); else as fast as they render.
            pixel_format: ``"rgba"`` or ``"rgb"``.
            sample_rate: the audio's rate, whatever the conversation's: resampled once, as one
                stream, with FFmpeg's resampler (frames then carry a few samples more or less than
                ``sample_rate / fps``; the total keeps the pace). None: the conversation's own rate.
            idle_audio: with False, frames while no speech plays carry no audio (an empty array)
                instead of silence, for pipelines that send video only while idle.

        See :class:`AVFrame` for the utterance markers.
        """
        if pixel_format not in ("rgba", "rgb"):
            raise AvatarError(
                AvatarErrorCode.INVALID_ARGUMENT, f"pixel_format must be 'rgba' or 'rgb', not {pixel_format!r}"
            )
        if sample_rate is not None and not 8000 <= sample_rate <= 192000:
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, f"unsupported output sample_rate {sample_rate}")
        step = 1.0 / fps
        marked: set[str] = set()
        first: float | None = None
        resampler: StreamResampler | None = None
        source_rate = 0
        async for frame in self._view.frames(fps, realtime=realtime):
            t = frame.timestamp
            if first is None:
                first = t
                # Conversations that ended before the first frame get no marker.
                marked = {c.id for c in self._playback.recent() if c.ended_at is not None and c.ended_at < t - 1e-9}
            pcm, rate = self._playback.audio_and_rate(t, t + step)
            conv = self._playback.current
            speaking = conv is not None and conv.speaking(t, t + step)
            ended = self._next_end(t, marked)
            if not speaking and not idle_audio:
                pcm, resampler = np.zeros(0, np.int16), None
            elif sample_rate is not None and rate != sample_rate:
                if resampler is None or source_rate != rate:
                    resampler, source_rate = StreamResampler(rate, sample_rate), rate
                pcm = resampler(pcm)
            image = frame.image if pixel_format == "rgba" else np.ascontiguousarray(frame.image[:, :, :3])
            yield AVFrame(
                image,
                pcm,
                t,
                sample_rate or rate,
                conversation_id=conv.id if speaking and conv is not None else None,
                speaking=speaking,
                end_of_utterance=ended is not None,
                interrupted=ended is not None and ended.interrupted,
                ended_conversation_id=ended.id if ended is not None else None,
            )

    def _next_end(self, t: float, marked: set[str]) -> Conversation | None:
        """The oldest conversation that ended by ``t`` and has no end marker yet (marked now)."""
        for conv in self._playback.recent():
            if conv.id not in marked and conv.ended_at is not None and conv.ended_at <= t + 1e-9:
                marked.add(conv.id)
                return conv
        return None
