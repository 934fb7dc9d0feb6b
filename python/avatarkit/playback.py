"""Playback: conversations' audio on the master clock, with their motion placed on the same clock.

Plain code with no GL and no network: a conversation's audio arrives (:meth:`Playback.add_audio`),
starts a jitter buffer after its first chunk, and plays on the clock (:class:`~avatarkit.audio.PaceClock`,
or a sound device's clock); its motion frames (:meth:`Playback.add_motion`) go onto a timeline at
the same clock, into a :class:`~avatarkit.animation.MotionLayer` handed to the
:class:`~avatarkit.mixer.Mixer`. Playback reports the conversation state (started, paused, played
out, interrupted, fallen back to audio only) through one callback, and schedules the check for the
end of playback with a :class:`Scheduler` (threads by default; tests hand in a fake with a fake clock).

Timing: a conversation's audio starts playing a jitter buffer after its first chunk arrives (see
:attr:`Playback.jitter_buffer`: by default sized from the driving side's look-ahead and the size
of the chunks, plus what lateness earlier conversations showed); motion frame ``k`` is shown when
the audio reaches ``k / fps`` seconds. Motion that arrives late is interpolated or held, never
allowed to drift from the audio.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .animation import BLEND_IN_FRAMES, BLEND_OUT_FRAMES, ChannelTimeline, MotionLayer
from .audio import PaceClock, PlaybackClock
from .errors import AvatarError, AvatarErrorCode
from .events import ConversationState, StateReason
from .mixer import Mixer

log = logging.getLogger("avatarkit.controller")

F32 = npt.NDArray[np.float32]
I16 = npt.NDArray[np.int16]

#: The frame rate of FlameAnimation payloads (which do not carry one), and the default of
#: ``play`` and ``play_motion``; AK1 streams carry their own.
FPS = 25.0

__all__ = [
    "FPS",
    "Conversation",
    "Playback",
    "Scheduler",
    "ThreadScheduler",
    "new_conversation_id",
    "pcm16",
]


def pcm16(audio: bytes | bytearray | memoryview | npt.NDArray[Any]) -> I16:
    """Speech as a fresh int16 array: PCM16 bytes, int16 samples, or float samples in -1..1.

    Raises:
        AvatarError: ``invalidArgument`` for an odd byte count, a 2-D array (mix it down first) or
            another sample type.
    """
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


class Scheduler(Protocol):
    """Runs a function after a delay (the check for the end of playback)."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` in ``delay`` seconds, on any thread."""


class ThreadScheduler:
    """:class:`Scheduler` on daemon timer threads: the end is reported whether or not anything renders."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on a timer thread in ``delay`` seconds."""
        timer = threading.Timer(delay, fn)
        timer.daemon = True
        timer.start()


class Conversation:
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
        #: The conversation lost its motion (the connection was lost, or the service failed its
        #: request): the rest of its audio plays without motion.
        self.audio_only = False
        #: Why it plays audio only (``NETWORK_ERROR`` or ``SERVER_ERROR``): the reason its end reports.
        self.fallback: StateReason | None = None
        #: Clock time at which it ended (played out, or cut by an interrupt or a newer conversation).
        self.ended_at: float | None = None
        #: Whether it was cut rather than played out.
        self.interrupted = False
        #: Times its audio ran dry before its end came (the speech came slower than it plays), and
        #: the seconds of silence that put in: the rest of it was moved later on the clock.
        self.underruns = 0
        self.stalled = 0.0

    @property
    def duration(self) -> float:
        """Seconds of audio received so far."""
        return self.samples / self.sample_rate

    @property
    def motion(self) -> F32:
        """A copy of the motion frames received so far (``frames x channels``)."""
        return self.timeline.values

    def speaking(self, t0: float, t1: float) -> bool:
        """Whether its speech plays at some time between clock times ``t0`` and ``t1``."""
        if self.start is None:
            return False
        end = self.start + self.duration
        if self.ended_at is not None:
            end = min(end, self.ended_at)
        return self.start < t1 and t0 < end

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


StateListener = Callable[[ConversationState, StateReason, str | None], None]


class Playback:
    """The conversations of one avatar on its clock (see the module's notes). Thread-safe.

    Args:
        mixer: where each conversation's motion layer goes as its audio starts.
        on_state: called with (state, reason, conversation id) for every state change, under the lock.
        scheduler: runs the end-of-playback checks (:class:`ThreadScheduler` by default).
        pace: the clock without a sound device (a new :class:`~avatarkit.audio.PaceClock` by default).
        default_rate: the rate of the silence between conversations (the rate speech is taken at).
    """

    #: Seconds between a conversation's first audio and the start of its playback, or None
    #: (automatic): enough for motion to arrive in time when chunks are sent as they are spoken. That
    #: is the driving side's look-ahead (:attr:`lookahead`: 80 ms, or 0 with the low-latency engine)
    #: rounded up to whole chunks, plus :attr:`jitter_margin` and the worst lateness of motion seen
    #: in the last conversation; 0.12 s when the look-ahead is unknown (Host mode, or a service
    #: that does not say).
    jitter_buffer: float | None = None
    #: Processing and network slack of the automatic jitter buffer, in seconds.
    jitter_margin = 0.02

    def __init__(
        self,
        mixer: Mixer,
        on_state: StateListener,
        *,
        scheduler: Scheduler | None = None,
        pace: PaceClock | None = None,
        default_rate: Callable[[], int] = lambda: 16000,
    ) -> None:
        self.mixer = mixer
        self._default_rate = default_rate
        self.channels = mixer.channels
        self._on_state = on_state
        self.scheduler: Scheduler = scheduler or ThreadScheduler()
        self.pace = pace or PaceClock()
        #: The sound device's clock when one plays the speech (None: the pace clock).
        self.output: PlaybackClock | None = None
        self.lock = threading.RLock()
        self.current: Conversation | None = None
        self.state = ConversationState.IDLE
        #: The driving side's look-ahead in seconds (None: unknown).
        self.lookahead: float | None = None
        #: The worst lateness of motion in recent conversations (seconds), added to the jitter buffer.
        self.lateness = 0.0
        #: Gain applied to the speech as it plays, 0..
        self.volume = 1.0
        #: The last conversations, newest last (what :meth:`recent` lists).
        self._recent: collections.deque[Conversation] = collections.deque(maxlen=16)

    # -- the clock -------------------------------------------------------------------------------

    def clock(self) -> float:
        """Playback time in seconds; it stands still while paused."""
        output = self.output
        return output.clock() if output is not None else self.pace.clock()

    def earliest_start(self) -> float:
        """The earliest clock time at which audio handed over now is heard in full."""
        output = self.output
        return output.earliest_start() if output is not None else self.pace.clock()

    @property
    def paused(self) -> bool:
        """Whether playback is paused."""
        return self.pace.paused

    def current_jitter_buffer(self, chunk_seconds: float = 0.04) -> float:
        """The jitter buffer a conversation whose first chunk lasts ``chunk_seconds`` starts with."""
        if self.jitter_buffer is not None:
            return float(self.jitter_buffer)
        if self.lookahead is None:
            return 0.12 + self.lateness
        # Frame k (audio [kF, (k+1)F)) needs audio up to (k+1)F + L, which comes with the chunk that
        # holds it; audio position kF plays one chunk plus the buffer after the first chunk came.
        frame, chunk = 1.0 / FPS, max(chunk_seconds, 0.001)
        need = max(
            math.ceil(((k + 1) * frame + self.lookahead) / chunk - 1e-6) * chunk - k * frame - chunk for k in range(50)
        )
        return max(0.0, need) + self.jitter_margin + self.lateness

    # -- state -----------------------------------------------------------------------------------

    def _set(self, state: ConversationState, reason: StateReason, *, again: bool = False) -> None:
        if state is self.state and not again:
            return
        self.state = state
        self._on_state(state, reason, self.current.id if self.current else None)

    def recent(self) -> Iterator[Conversation]:
        """The last few conversations, oldest first."""
        with self.lock:
            return iter(list(self._recent))

    def find(self, conversation_id: str) -> Conversation | None:
        """A recent conversation by id."""
        with self.lock:
            return next((c for c in reversed(self._recent) if c.id == conversation_id), None)

    # -- conversations -----------------------------------------------------------------------------

    def begin(self, sample_rate: int, conversation_id: str | None = None) -> Conversation:
        """A new conversation at ``sample_rate``; it interrupts the one playing (which fades out)."""
        with self.lock:
            previous = self.current
            conv = Conversation(conversation_id or new_conversation_id(), sample_rate, self.channels)
            self.current = conv
            self._recent.append(conv)
            now = self.clock()
            if previous is not None and previous.start is not None:
                # Motion that came late last time widens the buffer (by at most half a second: an
                # app that stalls mid-utterance is not the network); the widening halves when it did not.
                late = max(previous.lateness + previous.widened, 0.5 * self.lateness, 0.0)
                self.lateness = min(late, 0.5)
            if previous is not None:
                # A new conversation interrupts the one playing: it fades out from the pose on screen.
                previous.timeline.truncate(now)
                previous.layer.close(now)
                self._cut(previous, now)
            self.mixer.stop_motion(now)
            if previous is not None and self.state is ConversationState.PLAYING:
                log.debug("conversation %s interrupts %s", conv.id, previous.id)
            return conv

    @staticmethod
    def _cut(conv: Conversation, now: float) -> None:
        """Mark ``conv`` ended at ``now``: cut, unless all its audio had played out by then."""
        if conv.ended_at is not None:
            return
        if conv.start is not None and conv.audio_ended and now >= conv.start + conv.duration:
            conv.ended_at = conv.start + conv.duration
        else:
            conv.ended_at, conv.interrupted = now, True

    def add_audio(self, conv: Conversation, pcm: I16, end: bool) -> None:
        """Append speech to ``conv`` (``end``: its last); its first audio starts it after the jitter buffer.

        Speech that comes slower than it plays is never lost: when everything received so far has
        played out before the next chunk arrives, the rest of the conversation (its audio and its
        motion together, so they stay in sync) moves later on the clock and the chunk plays as soon
        as it can; the listener hears a pause where the speech ran dry.
        """
        with self.lock:
            if len(pcm) and conv.start is not None and not conv.audio_ended and conv.ended_at is None:
                resume = self.earliest_start()
                dry = resume - (conv.start + conv.duration)
                if dry > 0.0 and not self.pace.paused:
                    if conv.layer.begin is None:
                        conv.layer.begin = conv.start  # the face does not fade in again
                    conv.start += dry
                    conv.timeline.start = conv.start
                    conv.underruns += 1
                    conv.stalled += dry
                    log.debug("conversation %s ran dry for %.3f s; its speech goes on later", conv.id, dry)
            if len(pcm):
                conv.audio.append(pcm)
                conv.samples += len(pcm)
            conv.audio_ended = conv.audio_ended or end
            if conv.start is None and (conv.samples or end):
                conv.jitter = self.current_jitter_buffer(len(pcm) / conv.sample_rate)
                conv.widened = self.lateness if self.jitter_buffer is None else 0.0
                conv.start = self.earliest_start() + conv.jitter
                conv.timeline.start = conv.start
                self.mixer.add(conv.layer)
                # Reported for every conversation, also one that interrupts the conversation playing.
                reason = StateReason.FALLBACK if conv.fallback is not None else StateReason.STARTED
                self._set(ConversationState.PLAYING, reason, again=True)
            if end:
                self._schedule_end_check(conv)

    def play(
        self,
        pcm: I16,
        motion: F32 | None,
        names: Sequence[str] | None,
        *,
        sample_rate: int,
        fps: float,
        start: float | None,
    ) -> str:
        """A whole conversation at once, from clock time ``start`` (now) with no jitter buffer; returns its id."""
        with self.lock:
            conv = self.begin(sample_rate)
            begin = self.earliest_start() if start is None else float(start)
            conv.start = begin
            conv.timeline = ChannelTimeline(self.channels, fps, begin)
            conv.layer = MotionLayer(conv.timeline, fps)
            self.mixer.add(conv.layer)
            conv.audio, conv.samples, conv.audio_ended = [pcm], len(pcm), True
            if motion is not None and len(motion):
                conv.timeline.append(np.asarray(motion, np.float32), np.arange(len(motion)), names)
                conv.motion_ended = True
                conv.layer.close(conv.timeline.end_time + 1.0 / fps)
            self._set(ConversationState.PLAYING, StateReason.STARTED, again=True)
            self._schedule_end_check(conv)
            return conv.id

    def _schedule_end_check(self, conv: Conversation) -> None:
        """Report the end of playback when the audio has played out, rendering or not."""
        assert conv.start is not None
        delay = max(0.0, conv.start + conv.duration - self.clock()) + 0.005
        if delay > 60.0:
            return  # an offline render far ahead on the clock: sampling reports the end when it gets there

        def check() -> None:
            with self.lock:
                if self.current is not conv or self.state is ConversationState.IDLE:
                    return
                if self.pace.paused or self.clock() < (conv.start or 0.0) + conv.duration:
                    self._schedule_end_check(conv)  # paused, or resumed later: look again
                    return
                self.update(self.clock())

        self.scheduler.call_later(delay if not self.pace.paused else 0.1, check)

    def update(self, t: float) -> None:
        """Playback end: report it once the audio (and motion) of an ended conversation has played out by ``t``."""
        with self.lock:
            conv = self.current
            if conv is None or conv.start is None:
                return
            if conv.audio_ended and t >= conv.start + conv.duration and self.state is ConversationState.PLAYING:
                end = conv.start + conv.duration
                conv.layer.close(end)
                if conv.ended_at is None:
                    conv.ended_at = end
                self._set(ConversationState.IDLE, conv.fallback or StateReason.PLAYBACK_END)

    def add_motion(
        self,
        conv: Conversation,
        values: F32,
        indices: npt.NDArray[np.int64],
        names: Sequence[str] | None,
        fps: float,
        end: bool,
    ) -> None:
        """Motion frames of ``conv`` (``values[i]`` is frame ``indices[i]`` at ``fps``); ``end``: its last."""
        with self.lock:
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
                if conv.start is not None and not self.pace.paused:
                    # How late the earliest new frame is for its place on the clock (negative: early).
                    first = int(np.min(indices))
                    late = self.clock() - (conv.timeline.start + first / conv.timeline.fps)
                    conv.lateness = max(conv.lateness, late)
                conv.timeline.append(values, indices, names)
            conv.motion_ended = conv.motion_ended or end
            if end and len(conv.timeline):
                conv.layer.close(conv.timeline.end_time + 1.0 / conv.timeline.fps)

    def fall_back(self, cause: StateReason, conversation_id: str | None = None) -> Conversation | None:
        """The conversation in progress (the one of ``conversation_id``, if given) loses its motion; its audio plays on.

        The face fades back to idle life from the pose on screen; ``playing`` is reported again with
        ``fallbackMode`` (not while paused), and the conversation's end reports ``cause``. Returns the
        conversation, or None when there was none to fall back.
        """
        with self.lock:
            conv = self.current
            if (
                conv is None
                or conv.audio_only
                or (conversation_id is not None and conv.id != conversation_id)
                or self.state is ConversationState.IDLE  # played out, or interrupted
            ):
                return None
            now = self.clock()
            conv.timeline.truncate(now)
            conv.layer.close(now)
            conv.audio_only = True
            conv.fallback = cause
            if self.state is ConversationState.PLAYING:
                self._set(ConversationState.PLAYING, StateReason.FALLBACK, again=True)
            return conv

    def begin_audio_only(self, sample_rate: int, cause: StateReason) -> Conversation:
        """A conversation with no motion from the start (one that starts while the connection is restored)."""
        with self.lock:
            conv = self.begin(sample_rate)
            conv.audio_only = True
            conv.fallback = cause
            conv.layer.close(self.clock())
            return conv

    def drop(self, reason: StateReason) -> None:
        """Stop the conversation now (interrupt, close): drop pending audio and motion; report ``idle``."""
        with self.lock:
            conv = self.current
            now = self.clock()
            if conv is not None:
                self._cut(conv, now)
                # Keep the audio already played (a render of the recent past still finds it).
                played = max(0, round((now - (conv.start if conv.start is not None else now)) * conv.sample_rate))
                data = np.concatenate(conv.audio) if conv.audio else np.zeros(0, np.int16)
                conv.audio = [data[:played]]
                conv.samples = min(conv.samples, played)
                conv.audio_ended = True
                conv.timeline.truncate(now)
                conv.layer.close(now)
            self.mixer.stop_motion(now)
            self._set(ConversationState.IDLE, reason)

    def pause(self) -> bool:
        """Freeze the pace clock and report ``paused``; False when already paused."""
        with self.lock:
            if self.pace.paused:
                return False
            self.pace.pause()
            if self.state is ConversationState.PLAYING:
                self._set(ConversationState.PAUSED, StateReason.USER_ACTION)
            return True

    def resume(self) -> bool:
        """Run the pace clock again and report ``playing``; False when not paused."""
        with self.lock:
            if not self.pace.paused:
                return False
            self.pace.resume()
            if self.state is ConversationState.PAUSED:
                self._set(ConversationState.PLAYING, StateReason.USER_ACTION)
            return True

    # -- audio out ---------------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        """The rate of the speech handed over now (the rate a sound device is opened at)."""
        return self._default_rate()

    def audio_between(self, t0: float, t1: float) -> I16:
        """The audio playing between clock times ``t0`` and ``t1``, int16 at the conversation's rate."""
        return self.audio_and_rate(t0, t1)[0]

    def audio_and_rate(self, t0: float, t1: float) -> tuple[I16, int]:
        """The audio playing between clock times ``t0`` and ``t1`` and its rate (the conversation's)."""
        with self.lock:
            conv = self.current
            if conv is None:
                rate = self._default_rate()
                return np.zeros(max(0, round((t1 - t0) * rate)), np.int16), rate
            pcm, rate = conv.audio_slice(t0, t1), conv.sample_rate
        if self.volume != 1.0:
            pcm = np.clip(pcm.astype(np.float32) * self.volume, -32768, 32767).astype(np.int16)
        return pcm, rate
