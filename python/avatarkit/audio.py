"""Sound devices: hear what a view says, and speak to it through a microphone (optional).

Both use `sounddevice <https://python-sounddevice.readthedocs.io>`_ (PortAudio), the ``audio`` extra
(``pip install 'pyavatarkit[audio]'``; on Debian PortAudio is ``libportaudio2``). Without it, or
without a device, nothing here is needed: the controller's clock runs at the audio's pace anyway,
and video pipelines take the audio from :meth:`AvatarController.av_frames`.

:class:`DeviceAudioOutput` plays a controller's speech on the clock the view renders by. Each time the
device asks for samples it is told when they will be heard (the stream's output latency); it hands
over exactly the audio the controller schedules for that moment, so the mouth on screen and the
sound in the ear line up to the device's latency estimate. Pausing the controller plays silence;
interrupting drops what was queued. Between callbacks the output stays continuous (callbacks come
in bursts, the device's timing reports wobble); it re-aligns to the controller's clock when the
two differ by more than :data:`RESYNC_SECONDS`, within what viewers accept (sound up to 125 ms late):
after a pause, a stall of the interpreter, or hours of drift between the device's crystal and the
system clock.

:class:`MicrophoneInput` records mono PCM16 chunks at the rate the SDK is configured for, for
``controller.send()``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .errors import AvatarError, AvatarErrorCode

if TYPE_CHECKING:
    from .controller import AvatarController

log = logging.getLogger(__name__)

I16 = npt.NDArray[np.int16]

#: Output and controller clock may differ this much (seconds) before the output re-aligns.
RESYNC_SECONDS = 0.1


def sounddevice_module() -> Any | None:
    """The ``sounddevice`` module, or None when it or PortAudio is not installed."""
    try:
        import sounddevice
    except (ImportError, OSError) as err:  # OSError: the module is there, PortAudio is not
        log.debug("no sound devices: %s", err)
        return None
    return sounddevice


def _device_error(what: str, err: Exception) -> AvatarError:
    return AvatarError(AvatarErrorCode.INVALID_ARGUMENT, f"{what}: {err}")


class DeviceAudioOutput:
    """Play a controller's speech through a sound device (see the module's notes on timing).

    Args:
        controller: the controller whose audio to play (``view.avatar_controller``).
        sample_rate: the device's rate; the controller's audio rate when None.
        device: a sounddevice device (index or name); the default output when None.
        latency: PortAudio's suggested latency, ``"low"``, ``"high"`` or seconds. Python fills the
            device's buffer from a callback: ``"high"`` (about 0.1 s on ALSA) keeps it from running dry
            when the interpreter is busy, and costs nothing in sync, which the lead accounts for.
        blocksize: samples per callback; 20 ms by default.

    Raises:
        AvatarError: ``invalidArgument`` when sounddevice is missing or the device cannot be opened.
    """

    def __init__(
        self,
        controller: AvatarController,
        *,
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
        self._controller = controller
        self.sample_rate = int(sample_rate or controller._sample_rate())
        self._next: float | None = None  # clock time of the next sample to write
        self._lock = threading.Lock()
        #: Samples handed to the device, and times the output re-aligned to the controller's clock.
        self.samples_written = 0
        self.resyncs = 0
        #: Callbacks that came too late for the device (it played silence meanwhile).
        self.underflows = 0
        try:
            self._stream = sd.OutputStream(
                samplerate=self.sample_rate,
                channels=1,
                dtype="int16",
                device=device,
                latency=latency,
                blocksize=blocksize or self.sample_rate // 50,
                callback=self._callback,
            )
            self._stream.start()
        except Exception as err:  # PortAudioError, ValueError for unknown devices
            raise _device_error("cannot open the sound output", err) from err
        log.info("playing audio on %s at %d Hz", self.device_name, self.sample_rate)

    @property
    def device_name(self) -> str:
        """The output device's name."""
        sd = sounddevice_module()
        try:
            return str(sd.query_devices(self._stream.device)["name"]) if sd else "?"
        except Exception:
            return str(self._stream.device)

    @property
    def latency(self) -> float:
        """The stream's output latency in seconds (PortAudio's estimate)."""
        return float(self._stream.latency)

    @property
    def active(self) -> bool:
        """Whether the device is playing (the stream runs until :meth:`close`)."""
        return bool(self._stream.active)

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status and status.output_underflow:
            self.underflows += 1
        controller = self._controller
        lead = float(getattr(time_info, "outputBufferDacTime", 0.0)) - float(getattr(time_info, "currentTime", 0.0))
        if not 0.0 <= lead < 1.0 or getattr(time_info, "currentTime", 0.0) == 0.0:
            lead = float(self._stream.latency)  # the host API does not report times
        if controller._paused_at is not None:
            outdata.fill(0)
            with self._lock:
                self._next = None
            return
        heard_at = controller.clock() + lead  # when the first sample written now reaches the ear
        with self._lock:
            if self._next is None or abs(heard_at - self._next) > RESYNC_SECONDS:
                if self._next is not None:
                    self.resyncs += 1
                self._next = heard_at
            start = self._next
            self._next = start + frames / self.sample_rate
        pcm = controller.audio_between(start, start + frames / self.sample_rate)
        n = min(frames, len(pcm))
        outdata[:n, 0] = pcm[:n]
        outdata[n:, 0] = 0
        self.samples_written += frames

    def close(self) -> None:
        """Stop and release the device (idempotent)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()


class MicrophoneInput:
    """Mono PCM16 chunks from a microphone, as an async iterator.

    Args:
        sample_rate: the rate to record at (the SDK's audio rate; PortAudio converts when the device
            runs at another).
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
        self._blocksize = max(1, round(sample_rate * chunk_ms / 1000))
        self._device = device
        self._queue: asyncio.Queue[I16 | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None
        #: Chunks the device delivered late or lost (PortAudio's input overflow flags).
        self.overflows = 0
        self._sd = sd

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status and status.input_overflow:
            self.overflows += 1
        chunk = np.array(indata[:, 0], np.int16)
        if self._loop is not None and self._queue is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, chunk)

    def start(self) -> None:
        """Open the device and start recording (call from the event loop that will read)."""
        if self._stream is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        try:
            self._stream = self._sd.InputStream(
                samplerate=self.sample_rate,
                channels=1,
                dtype="int16",
                blocksize=self._blocksize,
                device=self._device,
                callback=self._callback,
            )
            self._stream.start()
        except Exception as err:
            self._stream = None
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


__all__ = ["RESYNC_SECONDS", "DeviceAudioOutput", "MicrophoneInput", "sounddevice_module"]
