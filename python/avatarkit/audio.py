"""Where a controller's speech is heard, and the clock it plays by: audio is the master clock.

Two clocks keep the same contract (:class:`PlaybackClock`):

- :class:`PaceClock`, with no sound device: the clock runs at the audio's pace (the system's
  monotonic clock). Video pipelines take the audio from :meth:`AvatarController.av_frames`, in step
  with each frame.
- :class:`DeviceAudioOutput`, a sound device through `sounddevice
  <https://python-sounddevice.readthedocs.io>`_ (PortAudio), the ``audio`` extra (``pip install
  'pyavatarkit[audio]'``; on Debian PortAudio is ``libportaudio2``). The device's callback pulls the
  audio the controller has scheduled, block after block with no gap or overlap, and the clock is
  the samples the device has consumed less those still in its buffer (PortAudio's
  ``outputBufferDacTime`` at each callback, or the stream's latency). So the face moves with what
  is heard: a device that runs fast or slow, takes a while to start, or calls back in bursts moves
  the clock with it. Pausing writes silence: what is already in the device's buffer (its latency)
  plays out, then the clock stands; resuming continues where the sound stopped, nothing repeated
  or skipped. An interrupt drops everything not yet handed to the device. A device that stops
  calling back for :data:`STALL_SECONDS` (unplugged, an overloaded machine; :data:`STARTUP_SECONDS`
  before it first plays) no longer holds the clock: it runs on at the system's pace, and the sound
  rejoins it when the device comes back.

Which one a view gets is :attr:`Configuration.audio_output <avatarkit.sdk.Configuration>`:
``auto`` (the default) gives a view in a window the default output device when sounddevice,
PortAudio and a device are there, and the pace clock otherwise (said once in the log, at info);
``device`` gives every view the device or fails; ``none`` never uses one.
:meth:`AvatarController.start_audio_output` chooses a device at any time.

:class:`MicrophoneInput` records mono PCM16 chunks at the SDK's rate for ``controller.send()``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .errors import AvatarError, AvatarErrorCode

log = logging.getLogger(__name__)

I16 = npt.NDArray[np.int16]

#: Seconds without a device callback (at least; four times the device's latency if that is longer)
#: after which the clock stops waiting for the device and runs at the system's pace.
STALL_SECONDS = 0.25
#: The same before the device has played its first sample: some take a while to start (PulseAudio's
#: ALSA plugin, 1.6 to 2 s here), and speech scheduled meanwhile waits for them rather than go unheard.
STARTUP_SECONDS = 3.0

_told: set[str] = set()


def _tell_once(message: str) -> None:
    """Log ``message`` at info the first time only (a process may open many views)."""
    if message not in _told:
        _told.add(message)
        log.info("%s", message)


def sounddevice_module() -> Any | None:
    """The ``sounddevice`` module, or None when it or PortAudio is not installed."""
    try:
        import sounddevice
    except (ImportError, OSError) as err:  # OSError: the module is there, PortAudio is not
        log.debug("no sound devices: %s", err)
        return None
    return sounddevice


def default_output_device() -> str | None:
    """The name of the default output device, or None (said once in the log) when there is none."""
    sd = sounddevice_module()
    if sd is None:
        _tell_once("no sound output (sounddevice or PortAudio is not installed): the clock runs at the audio's pace")
        return None
    try:
        return str(sd.query_devices(kind="output")["name"])
    except Exception as err:  # PortAudioError: no default output device
        log.debug("no default output device: %s", err)
        _tell_once("no sound output device: the clock runs at the audio's pace")
        return None


def _device_error(what: str, err: Exception) -> AvatarError:
    return AvatarError(AvatarErrorCode.INVALID_ARGUMENT, f"{what}: {err}")


def _resample(pcm: I16, n: int) -> I16:
    """``pcm`` stretched to ``n`` samples (linear; for a conversation at another rate than the device)."""
    if len(pcm) == n:
        return pcm
    if len(pcm) == 0 or n == 0:
        return np.zeros(n, np.int16)
    x = (np.arange(n) + 0.5) * (len(pcm) / n) - 0.5
    out: I16 = np.interp(x, np.arange(len(pcm)), pcm.astype(np.float32)).astype(np.int16)
    return out


class PlaybackClock(Protocol):
    """What the controller needs of the thing that plays its audio: the clock it all runs by."""

    def clock(self) -> float:
        """Playback time in seconds: never goes back; stands while paused (once paused audio has played)."""
        ...

    def earliest_start(self) -> float:
        """The earliest clock time at which audio handed over now can still be heard in full."""
        ...

    def pause(self) -> None:
        """Stop the clock (and the sound)."""
        ...

    def resume(self) -> None:
        """Run again after :meth:`pause`."""
        ...


class SpeechSource(Protocol):
    """What a sound device plays: the speech scheduled on the clock (a controller's playback)."""

    @property
    def sample_rate(self) -> int:
        """The rate speech is handed over at now (the device's rate unless it cannot run at it)."""
        ...

    def clock(self) -> float:
        """The clock's value now (where the device starts)."""
        ...

    def audio_between(self, t0: float, t1: float) -> npt.NDArray[np.int16]:
        """The speech that plays between clock times ``t0`` and ``t1`` (silence where there is none)."""
        ...


class PaceClock:
    """The clock without a sound device: it runs at the audio's pace, the system's monotonic clock.

    Args:
        start: the clock's value now.
        now: the time source, :func:`time.monotonic` (tests hand in a fake one).
    """

    def __init__(self, start: float = 0.0, *, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        #: Monotonic time at which the clock read 0 (paused time aside).
        self.origin = now() - start
        self._paused_at: float | None = None
        self._paused_total = 0.0

    def clock(self) -> float:
        """Seconds since the origin, less the time spent paused."""
        now = self._now() if self._paused_at is None else self._paused_at
        return now - self.origin - self._paused_total

    def earliest_start(self) -> float:
        """Now: nothing is buffered ahead."""
        return self.clock()

    @property
    def paused(self) -> bool:
        """Whether the clock stands."""
        return self._paused_at is not None

    @property
    def paused_seconds(self) -> float:
        """Seconds the clock has stood still so far, the pause in progress included."""
        current = self._now() - self._paused_at if self._paused_at is not None else 0.0
        return self._paused_total + current

    def pause(self) -> None:
        """Stop the clock (idempotent)."""
        if self._paused_at is None:
            self._paused_at = self._now()

    def resume(self) -> None:
        """Run again (idempotent)."""
        if self._paused_at is not None:
            self._paused_total += self._now() - self._paused_at
            self._paused_at = None

    def set(self, value: float) -> None:
        """Make the clock read ``value`` now (to continue where another clock stopped)."""
        self.origin += self.clock() - value


class DeviceAudioOutput:
    """Play a controller's speech through a sound device, and be its clock (see the module's notes).

    Made by :meth:`AvatarController.start_audio_output` (or a view, as its configuration says),
    which hands it the controller's playback (the speech and the clock) and makes it the clock.

    Args:
        source: the speech to play and the clock to start from (the controller's :attr:`playback
            <avatarkit.controller.AvatarController.playback>`).
        start: the clock's value when the device starts (the controller's clock by default).
        paused: start paused (the controller is).
        sample_rate: the device's rate; by default the SDK's audio rate, or the device's own rate
            when it cannot run at that one (the speech is then resampled).
        device: a sounddevice device (index or name); the default output when None.
        latency: PortAudio's suggested latency, ``"low"``, ``"high"`` or seconds. Python fills the
            device's buffer from a callback: ``"high"`` keeps it from running dry when the interpreter
            is busy, and costs nothing in sync (the clock accounts for it), only in how soon speech
            is heard.
        blocksize: samples per callback; 20 ms by default.

    Raises:
        AvatarError: ``invalidArgument`` when sounddevice is missing or the device cannot be opened.
    """

    def __init__(
        self,
        source: SpeechSource,
        *,
        start: float | None = None,
        paused: bool = False,
        sample_rate: int | None = None,
        device: int | str | None = None,
        latency: str | float = "high",
        blocksize: int | None = None,
    ) -> None:
        sd = sounddevice_module()
        if sd is None:
            raise AvatarError(
                AvatarErrorCode.INVALID_ARGUMENT, "sound output needs sounddevice: pip install 'pyavatarkit[audio]'"
            )
        self._source = source
        self._lock = threading.Lock()
        self._paused = paused
        # Every block handed to the device: (its first sample's index on the device, samples, clock
        # time of its first sample, whether the clock moves through it (False: silence while paused)).
        self._blocks: collections.deque[tuple[int, int, float, bool]] = collections.deque()
        self._written = 0
        self._anchor = 0.0  # clock time of content sample 0 (set again after a stall)
        self._content = 0  # content samples written since the anchor
        self._heard = 0.0  # the device's sample index at the ear, at the last callback
        self._called = time.monotonic()  # monotonic time of the last callback (or of the start)
        self._started = False  # whether the device has played a sample yet
        self._last = 0.0  # the clock's last value (it never goes back)
        self._last_read = self._called
        #: Callbacks that came too late for the device (it played silence meanwhile).
        self.underflows = 0
        #: Times the device stopped calling back for longer than the stall limit, and the clock ran on.
        self.stalls = 0
        stream = None
        rates = [int(sample_rate)] if sample_rate else [source.sample_rate]
        for rate in rates:
            try:
                stream = sd.OutputStream(
                    samplerate=rate,
                    channels=1,
                    dtype="int16",
                    device=device,
                    latency=latency,
                    blocksize=blocksize or rate // 50,
                    callback=self._callback,
                    # Hosts that can fill the device's buffer from the callback before it starts do
                    # so, rather than with silence (ALSA still puts a few periods of silence first).
                    prime_output_buffers_using_stream_callback=True,
                )
                break
            except Exception as err:  # PortAudioError, ValueError for unknown devices
                own = _device_rate(sd, device, "output")
                if sample_rate is None and own is not None and own not in rates:
                    log.debug("the sound output cannot run at %d Hz (%s); trying %d Hz", rate, err, own)
                    rates.append(own)
                    continue
                raise _device_error("cannot open the sound output", err) from err
        assert stream is not None
        self._stream: Any = stream
        #: The device's sample rate.
        self.sample_rate = int(stream.samplerate)
        self._latency = float(stream.latency)
        try:
            self._device_name = str(sd.query_devices(stream.device)["name"])
        except Exception:
            self._device_name = str(stream.device)
        self._stall_after = max(
            STALL_SECONDS, 4.0 * self._latency, 4.0 * (blocksize or self.sample_rate // 50) / self.sample_rate
        )
        with self._lock:
            begin = source.clock() if start is None else float(start)
            self._anchor = self._last = begin
            #: The clock's value when the device started: its sample ``n`` plays at ``start_time + n / sample_rate``
            #: until a pause or a stall moves the speech on the device.
            self.start_time = begin
            self._called = self._last_read = time.monotonic()
        try:
            stream.start()
        except Exception as err:
            stream.close()
            raise _device_error("cannot start the sound output", err) from err
        log.info(
            "playing audio on %s at %d Hz (latency %.0f ms)", self.device_name, self.sample_rate, self._latency * 1000
        )

    # -- the clock -------------------------------------------------------------------------------

    def clock(self) -> float:
        """The clock time of the sample reaching the ear now (see the module's notes)."""
        now = time.monotonic()
        with self._lock:
            return self._clock_at(now)

    def earliest_start(self) -> float:
        """The clock time of the next sample the device will be handed."""
        with self._lock:
            return max(self._anchor + self._content / self.sample_rate, self._clock_at(time.monotonic()))

    def _stalled(self, now: float) -> bool:
        return now - self._called > (self._stall_after if self._started else STARTUP_SECONDS)

    def _clock_at(self, now: float) -> float:
        if self._stalled(now):
            value = self._last + (0.0 if self._paused else now - self._last_read)
        else:
            # The sample at the ear: the estimate at the last callback, moved on at the device's rate,
            # never past what the device was given.
            value = self._position(min(self._heard + (now - self._called) * self.sample_rate, float(self._written)))
        value = max(value, self._last)
        self._last, self._last_read = value, now
        return value

    def _position(self, index: float) -> float:
        """The clock time of the device's sample ``index``."""
        value = self._blocks[0][2] if self._blocks else self._anchor
        for first, count, start, moving in self._blocks:
            if index < first:
                break
            value = start + min(index - first, count) / self.sample_rate if moving else start
        return value

    def pause(self) -> None:
        """Write silence from now on; the clock stands once what the device holds has played."""
        with self._lock:
            self._clock_at(time.monotonic())  # the clock up to now runs, whatever drives it
            self._paused = True

    def resume(self) -> None:
        """Play on from where the sound stopped."""
        with self._lock:
            self._clock_at(time.monotonic())  # paused time does not count
            self._paused = False

    # -- the device ------------------------------------------------------------------------------

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        now = time.monotonic()
        if status and status.output_underflow:
            self.underflows += 1
        current = float(getattr(time_info, "currentTime", 0.0))
        lead = float(getattr(time_info, "outputBufferDacTime", 0.0)) - current
        if current == 0.0 or not 0.0 <= lead < 1.0:
            lead = self._latency  # the host API does not report times
        rate = self.sample_rate
        with self._lock:
            if self._stalled(now):
                # The device was silent a while and the clock ran on by itself: the sound rejoins it.
                self.stalls += 1
                ran_to = self._clock_at(now)
                if ran_to > self._anchor + self._content / rate:
                    self._anchor, self._content = ran_to, 0
            paused = self._paused
            start = self._anchor + self._content / rate
            first = self._written
            if not paused:
                self._content += frames  # taken now: audio scheduled from here on starts after this block
        if paused:
            outdata.fill(0)
        else:
            # Outside our lock: the playback takes its own, and holds it while it reads the clock.
            pcm = self._source.audio_between(start, start + frames / rate)
            outdata[:, 0] = _resample(pcm, frames)
        with self._lock:
            self._blocks.append((first, frames, start, not paused))
            self._written = first + frames
            self._heard, self._called = first - lead * rate, now
            # Started once a whole block has been heard (while a device fills its buffer first, the
            # heard estimate hovers a few samples past 0).
            self._started = self._started or self._heard > frames
            while len(self._blocks) > 1 and self._blocks[1][0] <= self._heard:
                self._blocks.popleft()

    @property
    def samples_written(self) -> int:
        """Samples handed to the device so far (silence included)."""
        return self._written

    @property
    def device_name(self) -> str:
        """The output device's name."""
        return self._device_name

    @property
    def latency(self) -> float:
        """The stream's output latency in seconds (PortAudio's estimate)."""
        return self._latency

    @property
    def active(self) -> bool:
        """Whether the device is playing (the stream runs until :meth:`close`)."""
        return self._stream is not None and bool(self._stream.active)

    def close(self) -> None:
        """Let the device play what it holds, then release it (idempotent); the clock keeps its pace.

        A device that has stalled is not waited for: what it holds is dropped.
        """
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                if self._stalled(time.monotonic()):
                    stream.abort()
                else:
                    stream.stop()
            finally:
                stream.close()


def _device_rate(sd: Any, device: int | str | None, kind: str) -> int | None:
    """A device's own sample rate, or None when it cannot be asked."""
    try:
        info = sd.query_devices(device, kind=kind) if device is not None else sd.query_devices(kind=kind)
        return int(info["default_samplerate"])
    except Exception:
        return None


class MicrophoneInput:
    """Mono PCM16 chunks from a microphone, as an async iterator.

    Args:
        sample_rate: the rate to deliver (the SDK's audio rate). The device records at it when it can
            (PortAudio converts where the host API does), else at its own rate, resampled here.
        chunk_ms: the size of each chunk.
        device: a sounddevice input device (index or name); the default input when None.

    Raises:
        AvatarError: ``invalidArgument`` when sounddevice is missing or the device cannot be opened.
    """

    def __init__(self, sample_rate: int = 16000, *, chunk_ms: float = 40.0, device: int | str | None = None) -> None:
        sd = sounddevice_module()
        if sd is None:
            raise AvatarError(
                AvatarErrorCode.INVALID_ARGUMENT, "the microphone needs sounddevice: pip install 'pyavatarkit[audio]'"
            )
        self.sample_rate = sample_rate
        self._chunk_ms = chunk_ms
        self._device = device
        self._queue: asyncio.Queue[I16 | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None
        self._resampler: Any = None
        #: The rate the device records at (``sample_rate`` unless it cannot).
        self.device_rate = sample_rate
        #: Chunks the device delivered late or lost (PortAudio's input overflow flags).
        self.overflows = 0
        self._sd = sd

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status and status.input_overflow:
            self.overflows += 1
        chunk = np.array(indata[:, 0], np.int16)
        if self._resampler is not None:
            chunk = self._resampler(chunk)
        if self._loop is not None and self._queue is not None and len(chunk):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, chunk)

    def _open(self, rate: int) -> Any:
        return self._sd.InputStream(
            samplerate=rate,
            channels=1,
            dtype="int16",
            blocksize=max(1, round(rate * self._chunk_ms / 1000)),
            device=self._device,
            callback=self._callback,
        )

    def start(self) -> None:
        """Open the device and start recording (call from the event loop that will read)."""
        if self._stream is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        try:
            try:
                stream = self._open(self.sample_rate)
            except Exception as err:
                own = _device_rate(self._sd, self._device, "input")
                if own is None or own == self.sample_rate:
                    raise
                log.debug("the microphone cannot record at %d Hz (%s); recording at %d Hz", self.sample_rate, err, own)
                self._resampler = StreamResampler(own, self.sample_rate)
                stream = self._open(own)
                self.device_rate = own
            stream.start()
            self._stream = stream
        except Exception as err:
            raise _device_error("cannot open the microphone", err) from err

    def stop(self) -> None:
        """Stop recording (idempotent); the iterator ends after the chunks already recorded."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()
            if self._loop is not None and self._queue is not None:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, None)

    async def chunks(self) -> AsyncIterator[I16]:
        """The recorded chunks, in order, until :meth:`stop`."""
        self.start()
        assert self._queue is not None
        while (chunk := await self._queue.get()) is not None:
            yield chunk


class StreamResampler:
    """Mono PCM16 from one rate to another, chunk by chunk (FFmpeg's resampler, keeping its state).

    A stream of chunks comes out as one continuous resampled stream: chunk sizes vary by a few
    samples (the filter's delay), the total follows the ratio; :meth:`flush` gives what the filter
    still holds at the end of the stream.
    """

    def __init__(self, source: int, target: int) -> None:
        import av

        #: ``(source, target)`` rates in Hz.
        self.rates = (source, target)
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=target)
        self._pts = 0

    def __call__(self, chunk: I16) -> I16:
        """Resample the next chunk of the stream."""
        import av

        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rates[0]
        frame.pts = self._pts
        self._pts += len(chunk)
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> I16:
        """What the filter still holds, at the end of the stream."""
        return self._collect(self._resampler.resample(None))

    @staticmethod
    def _collect(frames: list[Any]) -> I16:
        out = [f.to_ndarray().reshape(-1) for f in frames]
        return np.concatenate(out).astype(np.int16) if out else np.zeros(0, np.int16)


__all__ = [
    "STALL_SECONDS",
    "STARTUP_SECONDS",
    "DeviceAudioOutput",
    "MicrophoneInput",
    "PaceClock",
    "PlaybackClock",
    "SpeechSource",
    "StreamResampler",
    "default_output_device",
    "sounddevice_module",
]
