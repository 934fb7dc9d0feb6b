"""A talking avatar in a pipecat pipeline: ``pip install 'pyavatarkit[pipecat]'``.

:class:`AvatarKitVideoService` goes after the TTS service, where pipecat's own avatar services
(Simli, Tavus, HeyGen) go. It renders the avatar on this machine, lip-synced by the in-process
engine (no service, no token), and sends on, at the configured frame rate, each picture
(``OutputImageRawFrame``) followed by the speech that plays while it shows (``TTSAudioRawFrame``),
so the output transport plays them in step::

    pipeline = Pipeline([transport.input(), stt, user_aggregator, llm, tts,
                         AvatarKitVideoService(), transport.output(), assistant_aggregator])

See ``docs/integrations.md`` and ``examples/pipecat_bot.py``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import time
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.ai_service import AIService
from pipecat.services.settings import ServiceSettings

from ..audio import StreamResampler
from ..controller import AvatarController, AVFrame
from ..manager import Avatar, AvatarManager
from ..sdk import SAMPLE_RATES, AudioFormat, AvatarSDK, Configuration
from ..view import AvatarView, HeadlessSurface

__all__ = ["AvatarKitVideoService"]

log = logging.getLogger(__name__)

I16 = npt.NDArray[np.int16]

#: Speech that came without a ``TTSStartedFrame`` is taken to have ended after this long without audio.
UNBRACKETED_END_SECONDS = 0.5


@dataclasses.dataclass(eq=False)
class _Utterance:
    """One TTS response: from ``TTSStartedFrame`` (or its first audio) to ``TTSStoppedFrame``."""

    started: TTSStartedFrame | None
    context_id: str | None
    #: Audio at the controller's rate not sent yet (while an earlier utterance is still playing).
    pending: list[I16] = dataclasses.field(default_factory=list)
    samples: int = 0
    #: Its last audio has arrived (``TTSStoppedFrame``, a newer ``TTSStartedFrame``, the end of the pipeline).
    ended: bool = False
    stopped: TTSStoppedFrame | None = None
    conversation_id: str | None = None
    started_pushed: bool = False
    last_audio: float = dataclasses.field(default_factory=time.monotonic)


class AvatarKitVideoService(AIService):
    """An avatar that speaks the TTS audio of a pipecat pipeline, as video frames with their audio.

    It consumes ``TTSAudioRawFrame`` (any rate, resampled once to the controller's rate) and emits,
    ``fps`` times a second from the pipeline's start, an ``OutputImageRawFrame`` of the avatar
    followed by the audio that plays while that picture shows: a ``TTSAudioRawFrame`` at the
    pipeline's output rate while speech plays, nothing while the avatar idles (video only). With
    ``sync_with_audio`` (the default) each image is marked so that the output transport shows it
    once the audio before it has been sent (keep the transport's ``video_out_is_live`` off and its
    ``video_out_framerate`` at ``fps``).

    Each TTS response (``TTSStartedFrame`` ... ``TTSStoppedFrame``) is one conversation of the
    avatar's controller. Responses that arrive while one is playing wait for it to play out, so
    none cuts another short. ``TTSStartedFrame`` is sent on just before its first audio and
    ``TTSStoppedFrame`` just after its last, so the transport's bot-speaking events follow what is
    heard. When the TTS falls behind real time in the middle of a response, the avatar holds its
    place with silence, a frame at a time, so the audio that comes late is still heard (at most a
    frame late). ``InterruptionFrame`` stops the speech at once and drops what was waiting (the
    interrupted responses' ``TTSStoppedFrame`` with it, as the TTS service drops them). An
    ``EndFrame`` passes on only after all speech received before it has played out;
    ``CancelFrame`` stops at once. Other frames pass through unchanged.

    The avatar is rendered off screen (EGL; Mesa's llvmpipe without a GPU). When the SDK is not
    initialized yet, the service initializes it in local driving mode at the pipeline's output
    rate (when that is one of ``avatarkit.sdk.SAMPLE_RATES``, else 24000 Hz); an app that
    initialized it itself (SDK mode with a session token, say) keeps its configuration.

    Args:
        avatar: the avatar: an :class:`~avatarkit.manager.Avatar`, a path that
            :meth:`~avatarkit.manager.AvatarManager.derive` takes (a bundle folder or a ``.glb``),
            or None for the built-in sample avatar.
        view: a view of your own to drive instead (its size and avatar are used; the service
            starts its controller and closes it, but does not destroy the view). ``avatar``,
            ``width`` and ``height`` are then ignored.
        width: the width of the frames, in pixels.
        height: the height of the frames, in pixels.
        fps: frames per second.
        image_format: ``"RGB"`` or ``"RGBA"``. The view the service makes has an opaque
            background; for a transparent one, pass a view made with ``background=None`` and
            ``"RGBA"``.
        sample_rate: the rate of the audio it sends on; by default the pipeline's
            ``audio_out_sample_rate``.
        sync_with_audio: mark images to be shown after the audio before them (see above).
        **kwargs: passed to pipecat's ``AIService``.
    """

    def __init__(
        self,
        *,
        avatar: Avatar | str | os.PathLike[str] | None = None,
        view: AvatarView | None = None,
        width: int = 512,
        height: int = 512,
        fps: float = 30.0,
        image_format: Literal["RGB", "RGBA"] = "RGB",
        sample_rate: int | None = None,
        sync_with_audio: bool = True,
        **kwargs: Any,
    ) -> None:
        if image_format not in ("RGB", "RGBA"):
            raise ValueError(f"image_format must be 'RGB' or 'RGBA', not {image_format!r}")
        if not 1.0 <= fps <= 240.0:
            raise ValueError("fps must be within 1..240")
        settings = kwargs.pop("settings", None)
        default_settings = ServiceSettings(model=None)
        if settings is not None:
            default_settings.apply_update(settings)
        super().__init__(settings=default_settings, **kwargs)
        self._avatar_source = avatar
        self._view = view
        self._owns_view = view is None
        self._size = (width, height)
        self._fps = float(fps)
        self._image_format: Literal["RGB", "RGBA"] = image_format
        self._requested_rate = sample_rate
        self._out_rate = sample_rate or 24000
        self._sync_with_audio = sync_with_audio
        self._controller: AvatarController | None = None
        self._av_task: asyncio.Task[None] | None = None
        self._utterances: collections.deque[_Utterance] = collections.deque()
        self._open: _Utterance | None = None
        self._resampler: StreamResampler | None = None
        self._drained = asyncio.Event()
        self._drained.set()
        self._torn_down = False

    @property
    def view(self) -> AvatarView | None:
        """The view that renders the avatar (None before the pipeline starts, or when it could not be made)."""
        return self._view

    @property
    def controller(self) -> AvatarController | None:
        """The view's controller (None before the pipeline starts)."""
        return self._controller

    def emotion_function(self) -> Any:
        """``set_emotion`` as a pipecat function for the LLM: a ``FunctionSchema`` with its handler.

        Put it in the context's ``ToolsSchema(standard_tools=[...])``; pipecat registers the handler
        with the LLM service that gets the context (or ``llm.register_function("set_emotion",
        service.handle_emotion_call)``). The model calls it with an emotion
        (:data:`avatarkit.emotions.EMOTIONS`) and an optional intensity, and the face fades to it
        under the speech.
        """
        from ..emotions import EMOTION_TOOL

        try:
            from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
        except ImportError:  # pipecat before 1.14
            from pipecat.adapters.schemas.function_schema import FunctionSchema
        parameters = EMOTION_TOOL["parameters"]
        return FunctionSchema(
            name=EMOTION_TOOL["name"],
            description=EMOTION_TOOL["description"],
            properties=dict(parameters["properties"]),
            required=list(parameters["required"]),
            handler=self.handle_emotion_call,
        )

    async def handle_emotion_call(self, params: Any) -> None:
        """pipecat's function-call handler for ``set_emotion``: sets it and answers the model."""
        from ..emotions import apply_emotion_call

        controller = self._controller
        answer = "the avatar is not running" if controller is None else apply_emotion_call(controller, params.arguments)
        await params.result_callback({"result": answer})

    def can_generate_metrics(self) -> bool:
        """Whether the service reports metrics: TTFB, from ``TTSStartedFrame`` to the first frame of speech."""
        return True

    # -- lifecycle ----------------------------------------------------------------------------------

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]  # as pipecat's own
        """Take the pipeline's output audio rate (unless ``sample_rate`` was given)."""
        await super().setup(setup)
        if self._requested_rate is None:
            self._out_rate = setup.audio_out_sample_rate

    async def start(self, frame: StartFrame) -> None:
        """Make the view (unless one was given) and start its controller."""
        await super().start(frame)
        try:
            if not AvatarSDK.is_initialized:
                rate = self._out_rate if self._out_rate in SAMPLE_RATES else 24000
                AvatarSDK.initialize(
                    "pipecat",
                    Configuration(driving_service_mode="local", audio_format=AudioFormat(sample_rate=rate)),
                )
            if self._view is None:
                avatar = await asyncio.to_thread(self._load_avatar)
                self._view = AvatarView(HeadlessSurface(*self._size), avatar, fps=self._fps)
            controller = self._view.avatar_controller
            await controller.start()
            self._controller = controller
        except Exception as err:
            await self.push_error(error_msg=f"the avatar could not start: {err}", exception=err)

    def _load_avatar(self) -> Avatar:
        source = self._avatar_source
        if isinstance(source, Avatar):
            return source
        if source is None:
            from ..server.samples import ensure_samples

            return AvatarManager.derive(ensure_samples() / "default")
        return AvatarManager.derive(source)

    async def stop(self, frame: EndFrame) -> None:
        """Let the speech received so far play out, then close the controller."""
        await super().stop(frame)
        if self._controller is not None and self._av_task is not None:
            if self._open is not None:
                await self._close_open(None)
            pending = sum(u.samples for u in self._utterances) / self._controller.sample_rate
            try:
                await asyncio.wait_for(self._drained.wait(), timeout=pending + 5.0)
            except TimeoutError:
                log.warning("the avatar's speech did not play out in time; ending anyway")
        await self._teardown()

    async def cancel(self, frame: CancelFrame) -> None:
        """Stop at once."""
        await super().cancel(frame)
        await self._teardown()

    async def cleanup(self) -> None:
        """Release the controller and the view (when the service made it)."""
        await super().cleanup()  # type: ignore[no-untyped-call]
        await self._teardown()

    async def _teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        if self._av_task is not None:
            await self.cancel_task(self._av_task)
            self._av_task = None
        self._utterances.clear()
        self._open = None
        self._drained.set()
        if self._controller is not None:
            await self._controller.close()
            self._controller = None
        if self._view is not None and self._owns_view:
            self._view.destroy()
            self._view = None

    # -- frames in ----------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Route TTS audio to the avatar; hold TTS start/stop and the end of the pipeline to their time."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            if self._controller is not None and self._av_task is None:
                self._av_task = self.create_task(self._stream(self._controller), "avatar frames")
            return
        if self._controller is None or direction is not FrameDirection.DOWNSTREAM:
            # No avatar (it failed to start, or the pipeline is ending): everything passes, speech as audio.
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, TTSStartedFrame):
            if self._open is not None:
                await self._close_open(None)
            self._open_utterance(frame, frame.context_id)
            await self.start_ttfb_metrics()
        elif isinstance(frame, TTSAudioRawFrame):
            await self._add_audio(frame)
        elif isinstance(frame, TTSStoppedFrame):
            if self._open is not None:
                await self._close_open(frame)
            else:
                await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            await self._interrupt()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    def _open_utterance(self, started: TTSStartedFrame | None, context_id: str | None) -> _Utterance:
        utterance = _Utterance(started, context_id)
        self._utterances.append(utterance)
        self._open = utterance
        self._drained.clear()
        return utterance

    async def _add_audio(self, frame: TTSAudioRawFrame) -> None:
        assert self._controller is not None
        pcm = np.frombuffer(frame.audio, "<i2")
        if frame.num_channels > 1:
            pcm = pcm[: len(pcm) - len(pcm) % frame.num_channels].reshape(-1, frame.num_channels)
            pcm = pcm.mean(axis=1).astype(np.int16)
        utterance = self._open or self._open_utterance(None, frame.context_id)
        rate = self._controller.sample_rate
        if frame.sample_rate != rate:
            if self._resampler is None or self._resampler.rates != (frame.sample_rate, rate):
                self._flush_into(utterance, self._flush_resampler())
                self._resampler = StreamResampler(frame.sample_rate, rate)
            pcm = self._resampler(pcm)
        elif self._resampler is not None:  # the TTS changed to the controller's rate mid-response
            self._flush_into(utterance, self._flush_resampler())
        utterance.last_audio = time.monotonic()
        self._flush_into(utterance, pcm)

    def _flush_resampler(self) -> I16:
        resampler, self._resampler = self._resampler, None
        return resampler.flush() if resampler is not None else np.zeros(0, np.int16)

    def _flush_into(self, utterance: _Utterance, pcm: I16, *, end: bool = False) -> None:
        """Hand audio of an utterance to the controller (the one playing), or keep it until its turn."""
        utterance.samples += len(pcm)
        if self._utterances and utterance is self._utterances[0]:
            if len(pcm) or end:
                self._send(utterance, pcm, end)
        elif len(pcm):
            utterance.pending.append(pcm)

    def _send(self, utterance: _Utterance, pcm: I16, end: bool) -> None:
        assert self._controller is not None
        conversation_id = self._controller.send(pcm, end=end)
        if utterance.conversation_id is None:
            utterance.conversation_id = conversation_id

    async def _close_open(self, stopped: TTSStoppedFrame | None) -> None:
        """The open utterance has all its audio: send its end (or keep it until its turn)."""
        utterance = self._open
        assert utterance is not None
        self._open = None
        utterance.ended = True
        utterance.stopped = stopped
        tail = self._flush_resampler()
        if utterance.samples + len(tail) == 0:
            # Nothing to say (a TTS error, say): nothing to show either.
            if utterance is self._utterances[0]:
                await self._finish(utterance, interrupted=False)
            return
        self._flush_into(utterance, tail, end=True)

    async def _interrupt(self) -> None:
        """Stop the speech now and drop every response waiting to play."""
        assert self._controller is not None
        self._controller.interrupt()
        self._resampler = None
        # The conversation that was playing reports its end on a frame (and is forgotten then);
        # those that never reached the controller are dropped here.
        head = self._utterances[0] if self._utterances else None
        self._utterances.clear()
        self._open = None
        if head is not None and head.conversation_id is not None:
            head.started = head.stopped = None
            self._utterances.append(head)
        else:
            self._drained.set()

    # -- frames out ---------------------------------------------------------------------------------

    async def _stream(self, controller: AvatarController) -> None:
        pixel_format = "rgba" if self._image_format == "RGBA" else "rgb"
        frames = controller.av_frames(
            fps=self._fps, realtime=True, pixel_format=pixel_format, sample_rate=self._out_rate, idle_audio=False
        )
        try:
            async for frame in frames:
                await self._emit(frame)
        except Exception as err:
            await self.push_error(error_msg=f"the avatar stopped rendering: {err}", exception=err)
        finally:
            self._drained.set()

    async def _emit(self, frame: AVFrame) -> None:
        head = self._utterances[0] if self._utterances else None
        speaking = head is not None and frame.speaking and frame.conversation_id == head.conversation_id
        if speaking and head is not None and not head.started_pushed:
            await self._push_started(head)
            await self.stop_ttfb_metrics()
        image = OutputImageRawFrame(
            image=frame.image.tobytes(), size=(frame.image.shape[1], frame.image.shape[0]), format=self._image_format
        )
        image.sync_with_audio = self._sync_with_audio
        await self.push_frame(image)
        if len(frame.audio):
            audio: OutputAudioRawFrame
            if frame.conversation_id is not None:
                context_id = head.context_id if head is not None else None
                audio = TTSAudioRawFrame(frame.audio.tobytes(), frame.sample_rate, 1, context_id=context_id)
            else:
                audio = OutputAudioRawFrame(frame.audio.tobytes(), frame.sample_rate, 1)
            await self.push_frame(audio)
        ended = None
        if frame.end_of_utterance:  # of one of ours (the app may drive the controller itself too)
            ended = next((u for u in self._utterances if u.conversation_id == frame.ended_conversation_id), None)
        if ended is not None:
            await self._finish(ended, interrupted=frame.interrupted)
        elif head is not None and head is self._open and head.started is None and head.samples:
            # Speech without TTSStartedFrame/TTSStoppedFrame ends when its audio stops coming.
            quiet = time.monotonic() - head.last_audio
            if quiet > UNBRACKETED_END_SECONDS:
                await self._close_open(None)
                return
        if head is not None and head is self._open and head.conversation_id is not None:
            self._hold_place(head, frame)

    def _hold_place(self, utterance: _Utterance, frame: AVFrame) -> None:
        """Keep a response that ran out of audio (the TTS fell behind real time) going, with silence.

        Audio that arrives after its place on the clock has been played is never heard, so when the
        next frame would reach the end of what was sent, a frame's worth of silence goes first.
        """
        assert self._controller is not None
        conversation = self._controller.conversation(utterance.conversation_id)
        if conversation is None or conversation.start is None:
            return
        step = 1.0 / self._fps
        runway = conversation.start + conversation.duration - (frame.timestamp + step)
        if runway < step:
            rate = self._controller.sample_rate
            # Up to the end of the next frame: what a stalled TTS sends next plays at most a frame late.
            silence = np.zeros(int(np.ceil((step - runway) * rate)), np.int16)
            utterance.samples += len(silence)
            self._send(utterance, silence, False)

    async def _push_started(self, utterance: _Utterance) -> None:
        utterance.started_pushed = True
        if utterance.started is not None:
            await self.push_frame(utterance.started)

    async def _finish(self, utterance: _Utterance, *, interrupted: bool) -> None:
        """An utterance has played out (or was interrupted): send its stop, start the next."""
        if utterance in self._utterances:
            self._utterances.remove(utterance)
        if not interrupted:
            if not utterance.started_pushed:
                await self._push_started(utterance)
            if utterance.stopped is not None:
                await self.push_frame(utterance.stopped)
        if self._open is utterance:
            self._open = None
        while self._utterances:
            head = self._utterances[0]
            if head.samples == 0 and head.ended:
                self._utterances.popleft()
                await self._push_started(head)
                if head.stopped is not None:
                    await self.push_frame(head.stopped)
                continue
            if head.pending or head.ended:
                pcm = np.concatenate(head.pending) if head.pending else np.zeros(0, np.int16)
                head.pending.clear()
                self._send(head, pcm, head.ended)
            break
        if not self._utterances:
            self._drained.set()
