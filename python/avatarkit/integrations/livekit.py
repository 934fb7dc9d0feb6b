"""A talking avatar for LiveKit Agents, rendered in the agent's process.

``pip install 'pyavatarkit[livekit]'``. The agent's speech goes to an :class:`AvatarKitVideoGenerator`
instead of the room; LiveKit's ``AvatarRunner`` publishes the avatar's video and the same speech, in
step, as the agent's own camera and microphone tracks::

    avatar = AvatarSession(width=512, height=512, fps=30)
    await avatar.start(session, room=ctx.room)   # before session.start(...)
    await session.start(agent=..., room=ctx.room)

The pieces, for other wirings:

- :class:`AvatarKitVideoGenerator`: LiveKit's ``VideoGenerator`` over an :class:`~avatarkit.AvatarController`.
  ``push_audio`` takes ``rtc.AudioFrame`` (any rate, any number of channels) and ``AudioSegmentEnd``;
  iterating it yields an ``rtc.VideoFrame`` per frame, the ``rtc.AudioFrame`` of the speech that plays
  during it (none while idle), and ``AudioSegmentEnd`` once a segment has played out.
- :class:`AvatarKitAudioOutput`: LiveKit's ``QueueAudioOutput`` that can pause, so that an
  ``AgentSession`` with ``resume_false_interruption`` pauses the avatar instead of cutting it off.
- :class:`AvatarSession`: builds the view, the controller, both of the above and the ``AvatarRunner``
  and routes the session's audio output to them.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

try:
    from livekit import rtc
    from livekit.agents import function_tool, get_job_context
    from livekit.agents.voice.avatar import (
        AudioSegmentEnd,
        AvatarOptions,
        AvatarRunner,
        QueueAudioOutput,
        VideoGenerator,
    )
except ImportError as err:  # pragma: no cover - only without the extra
    raise ImportError(
        "avatarkit.integrations.livekit needs LiveKit Agents: pip install 'pyavatarkit[livekit]'"
    ) from err

if TYPE_CHECKING:
    from livekit.agents import AgentSession

    from ..controller import AvatarController
    from ..manager import Avatar
    from ..view import AvatarView, Background

__all__ = ["AvatarKitAudioOutput", "AvatarKitVideoGenerator", "AvatarSession"]

log = logging.getLogger(__name__)

I16 = npt.NDArray[np.int16]

_BUFFER_TYPES = {"rgba": rtc.VideoBufferType.RGBA, "rgb": rtc.VideoBufferType.RGB24}


@dataclasses.dataclass
class _Segment:
    """Audio of a segment that waits for the one playing to end (LiveKit's segments play in turn)."""

    chunks: list[I16] = dataclasses.field(default_factory=list)
    ended: bool = False


class AvatarKitVideoGenerator(VideoGenerator):
    """LiveKit Agents' ``VideoGenerator`` for an :class:`~avatarkit.AvatarController`.

    ``controller`` must be started (``await controller.start()``; in the local driving mode that needs
    no service). Audio pushed with :meth:`push_audio` is mixed down to mono and resampled to
    ``controller.sample_rate`` as it arrives, and each segment (the audio up to an ``AudioSegmentEnd``)
    becomes one conversation of the controller. Segments play one after another: audio of the next
    segment that arrives while one is still playing waits until it has played out.

    Iterating the generator (``async for item in generator``: once at a time) renders ``fps`` frames a
    second in real time and yields, for each, an ``rtc.VideoFrame`` (``pixel_format`` ``"rgba"`` or
    ``"rgb"``), then the ``rtc.AudioFrame`` of the speech that plays during it, mono at
    :attr:`audio_sample_rate` (``None``: the controller's rate), and no audio frame while idle or
    paused. ``AudioSegmentEnd`` follows a segment's last audio frame once it has played out, which is
    when ``AvatarRunner`` reports ``playback_finished``. A segment cut short by :meth:`clear_buffer`
    yields no ``AudioSegmentEnd`` (the runner reports the interruption itself).
    """

    def __init__(
        self,
        controller: AvatarController,
        *,
        fps: float = 30.0,
        audio_sample_rate: int | None = None,
        pixel_format: Literal["rgba", "rgb"] = "rgba",
    ) -> None:
        if pixel_format not in _BUFFER_TYPES:
            raise ValueError(f"pixel_format must be 'rgba' or 'rgb', not {pixel_format!r}")
        self._controller = controller
        self._fps = float(fps)
        self._out_rate = audio_sample_rate
        self._pixel_format: Literal["rgba", "rgb"] = pixel_format
        self._resamplers: dict[int, rtc.AudioResampler] = {}
        self._open: str | None = None  # the conversation taking the segment's audio now
        self._playing: str | None = None  # a conversation whose segment has ended and still plays
        self._waiting: collections.deque[_Segment] = collections.deque()
        self._cleared: set[str] = set()

    @property
    def controller(self) -> AvatarController:
        """The controller this generator drives."""
        return self._controller

    @property
    def fps(self) -> float:
        """Video frames per second."""
        return self._fps

    @property
    def audio_sample_rate(self) -> int:
        """The rate of the audio frames it yields."""
        return self._out_rate or self._controller.sample_rate

    @property
    def pixel_format(self) -> Literal["rgba", "rgb"]:
        """``"rgba"`` (``VideoBufferType.RGBA``) or ``"rgb"`` (``VideoBufferType.RGB24``)."""
        return self._pixel_format

    # -- audio in ----------------------------------------------------------------------------------

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        """Take the next audio frame of the current segment, or the segment's end."""
        if isinstance(frame, AudioSegmentEnd):
            tail = self._flush_resamplers()
            if len(tail):
                self._audio(tail)
            self._end_segment()
            return
        pcm = self._mono(frame)
        if len(pcm):
            self._audio(pcm)

    def clear_buffer(self) -> None:
        """Stop the speech now (the controller's ``interrupt()``) and drop the audio that waits."""
        for conversation in (self._open, self._playing):
            if conversation is not None:
                self._cleared.add(conversation)
        self._open = self._playing = None
        self._waiting.clear()
        self._resamplers.clear()
        self._controller.interrupt()

    def pause(self) -> None:
        """Freeze the speech and the face (the controller's ``pause()``); the audio is kept."""
        self._controller.pause()

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        self._controller.resume()

    def _mono(self, frame: rtc.AudioFrame) -> I16:
        """The frame as mono int16 at the controller's rate (mixed down, then resampled as a stream)."""
        data = np.frombuffer(frame.data, dtype=np.int16)
        channels = max(1, frame.num_channels)
        if channels > 1:
            data = data.reshape(-1, channels).mean(axis=1).round().astype(np.int16)
        target = self._controller.sample_rate
        if frame.sample_rate == target:
            return data.copy()
        resampler = self._resamplers.get(frame.sample_rate)
        if resampler is None:
            resampler = rtc.AudioResampler(frame.sample_rate, target, num_channels=1)
            self._resamplers[frame.sample_rate] = resampler
        mono = rtc.AudioFrame(data.tobytes(), frame.sample_rate, 1, len(data))
        return _concat([np.frombuffer(f.data, dtype=np.int16) for f in resampler.push(mono)])

    def _flush_resamplers(self) -> I16:
        tails = [np.frombuffer(f.data, dtype=np.int16) for r in self._resamplers.values() for f in r.flush()]
        self._resamplers.clear()
        return _concat(tails)

    def _audio(self, pcm: I16) -> None:
        if self._playing is not None or self._waiting:
            # The previous segment still plays: this one starts when it has played out.
            if not self._waiting or self._waiting[-1].ended:
                log.debug("a segment waits for conversation %s to play out", self._playing)
                self._waiting.append(_Segment())
            self._waiting[-1].chunks.append(pcm)
            return
        self._open = self._controller.send(pcm, end=False)

    def _end_segment(self) -> None:
        if self._waiting:
            if not self._waiting[-1].ended:
                self._waiting[-1].ended = True
            return
        if self._open is not None:
            self._controller.send(np.zeros(0, np.int16), end=True)
            self._playing, self._open = self._open, None

    def _start_waiting(self) -> None:
        """The segment playing has ended: the next one that waits starts."""
        if not self._waiting:
            return
        segment = self._waiting.popleft()
        conversation = None
        for pcm in segment.chunks:
            conversation = self._controller.send(pcm, end=False)
        if conversation is None:
            return
        if segment.ended:
            self._controller.send(np.zeros(0, np.int16), end=True)
            self._playing = conversation
        else:
            self._open = conversation

    # -- frames out --------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        """Video frames, the audio that plays during each, and ``AudioSegmentEnd`` after a segment."""
        return self._stream()

    async def _stream(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        buffer_type = _BUFFER_TYPES[self._pixel_format]
        async for frame in self._controller.av_frames(
            fps=self._fps,
            realtime=True,
            pixel_format=self._pixel_format,
            sample_rate=self.audio_sample_rate,
            idle_audio=False,
        ):
            if frame.end_of_utterance and self._segment_ended(frame.ended_conversation_id):
                yield AudioSegmentEnd()
            image = frame.image
            yield rtc.VideoFrame(image.shape[1], image.shape[0], buffer_type, image.tobytes())
            # A frame rendered before a clear_buffer took effect may still carry the cleared speech:
            # it is left out, or the runner would count it into the next segment's position.
            if len(frame.audio) and frame.conversation_id not in self._cleared:
                yield rtc.AudioFrame(frame.audio.tobytes(), frame.sample_rate, 1, len(frame.audio))

    def _segment_ended(self, conversation: str | None) -> bool:
        """Whether the end of ``conversation`` ends the segment playing (then the next one starts)."""
        if conversation in self._cleared:
            self._cleared.discard(conversation)
            return False  # cut short by clear_buffer: the runner has reported it
        ours = self._playing if self._playing is not None else self._open
        if ours is None or conversation != ours:
            return False
        self._playing = self._open = None
        self._start_waiting()
        return True


def _concat(parts: list[I16]) -> I16:
    return np.concatenate(parts).astype(np.int16, copy=False) if parts else np.zeros(0, np.int16)


class AvatarKitAudioOutput(QueueAudioOutput):
    """LiveKit's ``QueueAudioOutput`` for an in-process avatar, with pause support.

    ``AgentSession`` pauses its audio output on a possible false interruption (the user starts
    talking) and resumes it when the user said nothing after all (``resume_false_interruption``);
    with this output the avatar's speech and face pause and resume with it.
    """

    def __init__(self, generator: AvatarKitVideoGenerator, *, sample_rate: int | None = None) -> None:
        super().__init__(sample_rate=sample_rate)
        self._generator = generator

    @property
    def can_pause(self) -> bool:
        """Always: the avatar's controller pauses."""
        return True

    def pause(self) -> None:
        """Pause the avatar's speech (the controller's clock stands)."""
        super().pause()
        self._generator.pause()

    def resume(self) -> None:
        """Resume the avatar's speech."""
        super().resume()
        self._generator.resume()


class AvatarSession:
    """An AvatarKit avatar in a LiveKit Agents session, rendered in the agent's process.

    ``avatar``: an :class:`~avatarkit.Avatar`, a path to a bundle or a ``.glb``/``.gltf`` (for
    :meth:`~avatarkit.manager.AvatarManager.derive`), or ``None`` for the built-in
    sample avatar. ``width`` x ``height`` at ``fps`` is the published video; ``audio_sample_rate`` the
    published audio's rate (``None``: the controller's, the configured ``AudioFormat``).

    :meth:`start` initializes the SDK in the local driving mode (the in-process engine, no service, no
    token) when the app has not initialized it, builds a headless view, starts its controller and
    LiveKit's ``AvatarRunner``, and sets ``agent_session.output.audio`` to an
    :class:`AvatarKitAudioOutput`. Call it before ``agent_session.start()``. The runner publishes
    ``avatar_video`` and ``avatar_audio`` as the agent's own tracks once the room is connected.
    """

    def __init__(
        self,
        avatar: Avatar | str | os.PathLike[str] | None = None,
        *,
        width: int = 512,
        height: int = 512,
        fps: float = 30.0,
        audio_sample_rate: int | None = None,
        pixel_format: Literal["rgba", "rgb"] = "rgba",
        background: Background = (0.93, 0.94, 0.96),
    ) -> None:
        self._avatar = avatar
        self._width = width
        self._height = height
        self._fps = float(fps)
        self._audio_sample_rate = audio_sample_rate
        self._pixel_format: Literal["rgba", "rgb"] = pixel_format
        self._background = background
        self._view: AvatarView | None = None
        self._generator: AvatarKitVideoGenerator | None = None
        self._audio_output: AvatarKitAudioOutput | None = None
        self._runner: AvatarRunner | None = None

    @property
    def view(self) -> AvatarView | None:
        """The headless view once started."""
        return self._view

    @property
    def controller(self) -> AvatarController | None:
        """The view's controller once started."""
        return None if self._view is None else self._view.avatar_controller

    @property
    def video_generator(self) -> AvatarKitVideoGenerator | None:
        """The video generator once started."""
        return self._generator

    @property
    def audio_output(self) -> AvatarKitAudioOutput | None:
        """The audio output given to the agent session once started."""
        return self._audio_output

    @property
    def runner(self) -> AvatarRunner | None:
        """LiveKit's ``AvatarRunner`` once started."""
        return self._runner

    async def start(self, agent_session: AgentSession[Any], room: rtc.Room) -> None:
        """Start the avatar and route ``agent_session``'s audio output to it."""
        from ..sdk import AvatarSDK, Configuration
        from ..view import AvatarView, HeadlessSurface

        if self._runner is not None:
            raise RuntimeError("this AvatarSession has already started")
        if not AvatarSDK.is_initialized:
            AvatarSDK.initialize("livekit-agent", Configuration(driving_service_mode="local"))
        avatar = await asyncio.to_thread(self._load_avatar)
        surface = HeadlessSurface(self._width, self._height)
        self._view = view = AvatarView(surface, avatar, background=self._background, fps=self._fps)
        try:
            controller = view.avatar_controller
            await controller.start()
            self._generator = generator = AvatarKitVideoGenerator(
                controller, fps=self._fps, audio_sample_rate=self._audio_sample_rate, pixel_format=self._pixel_format
            )
            self._audio_output = AvatarKitAudioOutput(generator, sample_rate=controller.sample_rate)
            self._runner = AvatarRunner(
                room,
                audio_recv=self._audio_output,
                video_gen=generator,
                options=AvatarOptions(
                    video_width=self._width,
                    video_height=self._height,
                    video_fps=self._fps,
                    audio_sample_rate=generator.audio_sample_rate,
                    audio_channels=1,
                ),
            )
            await self._runner.start()
        except BaseException:
            await self.aclose()
            raise
        job = get_job_context(required=False)
        if job is not None:
            job.add_shutdown_callback(self.aclose)
        agent_session.output.audio = self._audio_output

    def _load_avatar(self) -> Avatar:
        from ..manager import Avatar, AvatarManager

        if isinstance(self._avatar, Avatar):
            return self._avatar
        if self._avatar is None:
            from ..server.samples import ensure_samples

            return AvatarManager.derive(ensure_samples() / "default")
        return AvatarManager.derive(self._avatar)

    def emotion_tool(self) -> Any:
        """``set_emotion`` as a LiveKit function tool, for the agent's LLM: ``Agent(tools=[avatar.emotion_tool()])``.

        The model calls it with an emotion (:data:`avatarkit.emotions.EMOTIONS`) and an optional
        intensity; the face fades to it under the speech (:meth:`AvatarController.set_emotion
        <avatarkit.controller.AvatarController.set_emotion>`). Calls before :meth:`start` are
        answered that the avatar is not running.
        """
        from ..emotions import EMOTION_TOOL, apply_emotion_call

        async def set_emotion(raw_arguments: dict[str, Any]) -> str:
            controller = self.controller
            if controller is None:
                return "the avatar is not running"
            return apply_emotion_call(controller, raw_arguments)

        return function_tool(set_emotion, raw_schema=dict(EMOTION_TOOL))

    async def aclose(self) -> None:
        """Stop the runner, close the controller and destroy the view (idempotent)."""
        runner, self._runner = self._runner, None
        view, self._view = self._view, None
        if runner is not None:
            await runner.aclose()
        if view is not None:
            await view.avatar_controller.close()
            view.destroy()
