"""avatarkit.integrations.livekit against the real livekit and livekit-agents packages.

There is no LiveKit server here, so the room is a stand-in with the few members ``AvatarRunner``
uses (connected, publishes tracks at once); everything else is the framework's own: ``rtc`` frames,
``AudioSource``/``VideoSource``/``AVSynchronizer`` (native, they pace the frames in real time),
``AvatarRunner``, ``QueueAudioOutput`` and its ``playback_finished`` events, and ``AgentSession``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import pathlib
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("livekit.agents")

from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.voice.avatar import AudioSegmentEnd, AvatarRunner, VideoGenerator
from livekit.agents.voice.io import AudioOutput, PlaybackFinishedEvent
from speech_audio import speech_like

from avatarkit import AudioFormat, AvatarManager, AvatarSDK, AvatarView, Configuration, ConversationState
from avatarkit.integrations.livekit import AvatarKitAudioOutput, AvatarKitVideoGenerator, AvatarSession
from avatarkit.server.samples import ensure_samples
from avatarkit.view import HeadlessSurface

from render_helpers import require_gl

RATE = 24000  # the controller's rate (the TTS's usual one)
SIZE = 96
FPS = 25.0
EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(autouse=True)
def _sdk(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    require_gl()
    monkeypatch.setenv("AVATARKIT_CACHE_DIR", str(tmp_path / "cache"))
    config = Configuration(driving_service_mode="local", audio_format=AudioFormat(sample_rate=RATE))
    AvatarSDK.initialize("livekit-test", config)
    yield
    AvatarSDK.cleanup()


@pytest.fixture(scope="module")
def avatar() -> Any:
    return AvatarManager.derive(ensure_samples() / "default")


def frames_of(pcm: np.ndarray, rate: int, channels: int = 1, ms: int = 20) -> list[rtc.AudioFrame]:
    """``pcm`` (mono int16) as LiveKit audio frames of ``ms`` each, the channels copies of it."""
    step = rate * ms // 1000
    out = []
    for i in range(0, len(pcm), step):
        chunk = pcm[i : i + step]
        data = np.repeat(chunk, channels) if channels > 1 else chunk
        out.append(rtc.AudioFrame(data.astype(np.int16).tobytes(), rate, channels, len(chunk)))
    return out


class Started:
    """A view and its started local-mode controller."""

    def __init__(self, avatar: Any) -> None:
        self.view = AvatarView(HeadlessSurface(SIZE, SIZE), avatar, fps=FPS)
        self.controller = self.view.avatar_controller

    async def __aenter__(self) -> Started:
        await self.controller.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.controller.close()
        self.view.destroy()


class Collect:
    """Iterates a generator in a task and keeps what it yields, with the wall time of each item."""

    def __init__(self, generator: AvatarKitVideoGenerator) -> None:
        self.items: list[Any] = []
        self.generator = generator
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        async for item in self.generator:
            self.items.append((loop.time(), item))

    async def until(self, predicate: Callable[[list[Any]], bool], timeout: float = 15.0) -> None:
        async def wait() -> None:
            while not predicate([item for _, item in self.items]):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(wait(), timeout)

    def of(self, kind: type) -> list[Any]:
        return [item for _, item in self.items if isinstance(item, kind)]

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def ends(items: list[Any]) -> int:
    return sum(isinstance(item, AudioSegmentEnd) for item in items)


def whole(played: float, seconds: float) -> bool:
    """Whether ``played`` seconds of audio frames hold all of ``seconds`` of speech: frames carry whole
    frame periods, so the first and the last may each add part of a period of silence."""
    return seconds - 0.005 <= played < seconds + 2 / FPS


def audio_seconds(items: list[Any]) -> float:
    return sum(f.samples_per_channel / f.sample_rate for f in items if isinstance(f, rtc.AudioFrame))


# -- the generator alone ---------------------------------------------------------------------------


def test_the_pieces_are_livekits_types(avatar: Any) -> None:
    async def run() -> None:
        async with Started(avatar) as s:
            generator = AvatarKitVideoGenerator(s.controller, fps=FPS)
            output = AvatarKitAudioOutput(generator, sample_rate=RATE)
            assert isinstance(generator, VideoGenerator)
            assert isinstance(output, AudioOutput)
            assert output.can_pause  # LiveKit's QueueAudioOutput says False; ours pauses
            assert output.sample_rate == RATE  # the session resamples its TTS to this
            assert generator.audio_sample_rate == RATE

    asyncio.run(run())


def test_idle_yields_video_frames_only(avatar: Any) -> None:
    async def run() -> None:
        async with Started(avatar) as s:
            collect = Collect(AvatarKitVideoGenerator(s.controller, fps=FPS))
            await collect.until(lambda items: len(items) >= 12)
            await collect.stop()
            for _, item in collect.items:
                assert isinstance(item, rtc.VideoFrame)
                assert (item.width, item.height, item.type) == (SIZE, SIZE, rtc.VideoBufferType.RGBA)
                assert len(item.data) == SIZE * SIZE * 4
            # Paced in real time at fps (a loaded machine may skip frames: then slower, never faster).
            times = [t for t, _ in collect.items]
            assert times[-1] - times[0] > 11 / FPS - 0.1

    asyncio.run(run())


def test_an_utterance_plays_out_with_its_audio_then_ends(avatar: Any) -> None:
    """48 kHz stereo in (mixed down, resampled), 24 kHz mono out, all of it, then AudioSegmentEnd."""
    pcm = speech_like(1.0, 48000)

    async def run() -> None:
        async with Started(avatar) as s:
            generator = AvatarKitVideoGenerator(s.controller, fps=FPS, pixel_format="rgb")
            collect = Collect(generator)
            for frame in frames_of(pcm, 48000, channels=2):
                await generator.push_audio(frame)
            await generator.push_audio(AudioSegmentEnd())
            assert s.controller.conversation_state is ConversationState.PLAYING
            await collect.until(lambda items: ends(items) == 1)
            await collect.until(lambda items: isinstance(items[-1], rtc.VideoFrame) and len(items) > 10)
            await collect.stop()
            items = [item for _, item in collect.items]
            end = next(i for i, item in enumerate(items) if isinstance(item, AudioSegmentEnd))
            audio = [f for f in items if isinstance(f, rtc.AudioFrame)]
            assert all(f.sample_rate == RATE and f.num_channels == 1 for f in audio)
            assert whole(audio_seconds(items), 1.0)  # all of it, once
            out = np.concatenate([np.frombuffer(f.data, np.int16) for f in audio]).astype(float)
            assert (out**2).sum() / RATE == pytest.approx((pcm.astype(float) ** 2).sum() / 48000, rel=0.02)
            assert all(not isinstance(item, rtc.AudioFrame) for item in items[end:])  # idle again: video only
            assert max(i for i, item in enumerate(items) if isinstance(item, rtc.AudioFrame)) < end
            video = [f for f in items if isinstance(f, rtc.VideoFrame)]
            assert all(f.type == rtc.VideoBufferType.RGB24 and len(f.data) == SIZE * SIZE * 3 for f in video)
            # The audio came out as it plays: spread over about its length, not all at once.
            times = [t for t, item in collect.items if isinstance(item, rtc.AudioFrame)]
            assert times[-1] - times[0] > 0.8
            # The mouth moved while it spoke.
            images = [np.frombuffer(f.data, np.uint8) for f in video]
            assert max(np.abs(a.astype(int) - images[0]).mean() for a in images) > 0.5

    asyncio.run(run())


def test_audio_out_at_a_fixed_rate(avatar: Any) -> None:
    """``audio_sample_rate=48000``: the speech comes out at 48 kHz (what the runner's AudioSource takes)."""

    async def run() -> None:
        async with Started(avatar) as s:
            generator = AvatarKitVideoGenerator(s.controller, fps=FPS, audio_sample_rate=48000)
            assert generator.audio_sample_rate == 48000
            collect = Collect(generator)
            for frame in frames_of(speech_like(0.6, RATE), RATE):
                await generator.push_audio(frame)
            await generator.push_audio(AudioSegmentEnd())
            await collect.until(lambda items: ends(items) == 1)
            await collect.stop()
            audio = collect.of(rtc.AudioFrame)
            assert audio and all(f.sample_rate == 48000 and f.num_channels == 1 for f in audio)
            assert whole(audio_seconds(audio), 0.6)

    asyncio.run(run())


def test_clear_buffer_stops_the_speech_and_yields_no_segment_end(avatar: Any) -> None:
    async def run() -> None:
        async with Started(avatar) as s:
            generator = AvatarKitVideoGenerator(s.controller, fps=FPS)
            collect = Collect(generator)
            for frame in frames_of(speech_like(3.0, RATE), RATE):
                await generator.push_audio(frame)
            await generator.push_audio(AudioSegmentEnd())
            await collect.until(lambda items: audio_seconds(items) >= 0.4)
            generator.clear_buffer()  # synchronous: the runner may call it without awaiting
            assert s.controller.conversation_state is ConversationState.IDLE
            await asyncio.sleep(0.6)
            await collect.stop()
            items = [item for _, item in collect.items]
            assert ends(items) == 0
            assert audio_seconds(items) < 1.0  # cut short: not the 3 s pushed

    asyncio.run(run())


def test_segments_pushed_back_to_back_play_in_turn(avatar: Any) -> None:
    """The next segment waits for the one playing (a new conversation would cut it off)."""

    async def run() -> None:
        async with Started(avatar) as s:
            generator = AvatarKitVideoGenerator(s.controller, fps=FPS)
            collect = Collect(generator)
            for seconds in (0.8, 0.6):
                for frame in frames_of(speech_like(seconds, RATE, seed=int(seconds * 10)), RATE):
                    await generator.push_audio(frame)
                await generator.push_audio(AudioSegmentEnd())
            await collect.until(lambda items: ends(items) == 2)
            await collect.stop()
            items = [item for _, item in collect.items]
            first = next(i for i, item in enumerate(items) if isinstance(item, AudioSegmentEnd))
            assert whole(audio_seconds(items[:first]), 0.8)
            assert whole(audio_seconds(items[first:]), 0.6)

    asyncio.run(run())


def test_clear_buffer_drops_a_waiting_segment_too(avatar: Any) -> None:
    """A clear while one segment plays and the next waits drops both; the segment after plays in full."""

    async def run() -> None:
        async with Started(avatar) as s:
            generator = AvatarKitVideoGenerator(s.controller, fps=FPS)
            collect = Collect(generator)
            for seconds in (1.5, 0.5):
                for frame in frames_of(speech_like(seconds, RATE, seed=int(seconds * 10)), RATE):
                    await generator.push_audio(frame)
                await generator.push_audio(AudioSegmentEnd())
            await collect.until(lambda items: audio_seconds(items) >= 0.3)
            generator.clear_buffer()
            cleared = len(collect.items)
            for frame in frames_of(speech_like(0.4, RATE, seed=7), RATE):
                await generator.push_audio(frame)
            await generator.push_audio(AudioSegmentEnd())
            await collect.until(lambda items: ends(items) == 1)
            await asyncio.sleep(0.3)
            await collect.stop()
            after = [item for _, item in collect.items[cleared:]]
            assert ends(after) == 1
            assert whole(audio_seconds(after), 0.4)  # only the new segment: nothing of the 0.5 s that waited

    asyncio.run(run())


# -- the framework's runner and audio output -------------------------------------------------------


class Publication:
    async def wait_for_subscription(self) -> None:
        return None


class LocalParticipant:
    def __init__(self) -> None:
        self.tracks: list[Any] = []

    async def publish_track(self, track: Any, options: Any) -> Publication:
        self.tracks.append(track)
        return Publication()


class Room(rtc.EventEmitter[str]):
    """What AvatarRunner uses of ``rtc.Room``: a connected room whose tracks publish at once."""

    def __init__(self) -> None:
        super().__init__()
        self.local_participant = LocalParticipant()
        self.name = "test-room"

    def isconnected(self) -> bool:
        return True


class Runner:
    """AvatarKitAudioOutput -> AvatarRunner -> AvatarKitVideoGenerator, on a stand-in room."""

    def __init__(self, controller: Any) -> None:
        from livekit.agents.voice.avatar import AvatarOptions

        self.generator = AvatarKitVideoGenerator(controller, fps=FPS)
        self.output = AvatarKitAudioOutput(self.generator, sample_rate=RATE)
        self.room = Room()
        self.runner = AvatarRunner(
            self.room,  # type: ignore[arg-type]
            audio_recv=self.output,
            video_gen=self.generator,
            options=AvatarOptions(SIZE, SIZE, FPS, RATE, 1),
        )
        self.finished: list[PlaybackFinishedEvent] = []
        self.output.on("playback_finished", self.finished.append)

    async def say(self, pcm: np.ndarray, *, flush: bool = True) -> None:
        for frame in frames_of(pcm, RATE):
            await self.output.capture_frame(frame)
        if flush:
            self.output.flush()


@contextlib.asynccontextmanager
async def running(controller: Any) -> AsyncIterator[Runner]:
    r = Runner(controller)
    await r.runner.start()
    try:
        yield r
    finally:
        await r.runner.aclose()


def test_runner_reports_playback_finished_after_a_completed_and_an_interrupted_utterance(avatar: Any) -> None:
    async def run() -> None:
        async with Started(avatar) as s, running(s.controller) as r:
            await r.say(speech_like(1.0, RATE))
            event = await asyncio.wait_for(r.output.wait_for_playout(), 10)
            assert not event.interrupted
            assert whole(event.playback_position, 1.0)
            assert [track.name for track in r.room.local_participant.tracks] == ["avatar_audio", "avatar_video"]

            # Interrupted: the session clears the output, the runner clears the generator.
            await r.say(speech_like(3.0, RATE, seed=1))
            await asyncio.sleep(0.7)
            r.output.clear_buffer()
            event = await asyncio.wait_for(r.output.wait_for_playout(), 10)
            assert event.interrupted
            assert 0.0 < event.playback_position < 1.5  # what played before the clear, not 3 s
            assert s.controller.conversation_state is ConversationState.IDLE

            # And the next one plays out in full.
            await r.say(speech_like(0.6, RATE, seed=2))
            event = await asyncio.wait_for(r.output.wait_for_playout(), 10)
            assert not event.interrupted
            # AvatarRunner adds a frame's duration to its position after awaiting the frame's push, so
            # an audio frame in flight at the clear may land in the next segment's position.
            assert whole(event.playback_position, 0.6) or whole(event.playback_position - 1 / FPS, 0.6)
            assert [e.interrupted for e in r.finished] == [False, True, False]

    asyncio.run(run())


def test_a_tts_slower_than_real_time_plays_whole(avatar: Any) -> None:
    """Speech that stalls mid-segment (a slow TTS) plays whole, ends once, and counts all its audio."""

    async def run() -> None:
        async with Started(avatar) as s, running(s.controller) as r:
            await r.say(speech_like(0.6, RATE), flush=False)
            await asyncio.sleep(1.2)  # everything so far has played out: the TTS stalls
            await r.say(speech_like(0.6, RATE, seed=3))
            event = await asyncio.wait_for(r.output.wait_for_playout(), 10)
            assert not event.interrupted
            # All 1.2 s, once. Each edge of a stall may add part of a frame period of silence, and a
            # loaded machine may stall the 20 ms frames more often: far less than a repeat of 0.6 s.
            assert 1.2 - 0.005 <= event.playback_position < 1.2 + 0.4
            assert len(r.finished) == 1

    asyncio.run(run())


def test_pause_and_resume_through_the_audio_output(avatar: Any) -> None:
    async def run() -> None:
        async with Started(avatar) as s, running(s.controller) as r:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await r.say(speech_like(1.0, RATE))
            await asyncio.sleep(0.4)
            r.output.pause()
            assert s.controller.conversation_state is ConversationState.PAUSED
            await asyncio.sleep(1.0)
            assert not r.finished  # paused: nothing plays out
            r.output.resume()
            assert s.controller.conversation_state is ConversationState.PLAYING
            event = await asyncio.wait_for(r.output.wait_for_playout(), 10)
            assert not event.interrupted
            assert whole(event.playback_position, 1.0)  # nothing lost
            assert loop.time() - started > 1.9  # 1 s of speech and 1 s of pause

    asyncio.run(run())


# -- the session helper and the example --------------------------------------------------------------


def test_avatar_session_takes_the_agent_sessions_audio_output(avatar: Any) -> None:
    async def run() -> None:
        session: AgentSession[None] = AgentSession()
        room = Room()
        helper = AvatarSession(avatar, width=SIZE, height=SIZE, fps=FPS)
        await helper.start(session, room)  # type: ignore[arg-type]
        try:
            assert session.output.audio is helper.audio_output
            assert session.output.audio is not None and session.output.audio.can_pause
            assert helper.controller is not None and helper.controller.sample_rate == RATE
            assert helper.runner is not None
            output = helper.audio_output
            assert output is not None
            for frame in frames_of(speech_like(0.5, RATE), RATE):
                await output.capture_frame(frame)
            output.flush()
            event = await asyncio.wait_for(output.wait_for_playout(), 10)
            assert whole(event.playback_position, 0.5)
            with pytest.raises(RuntimeError, match="already started"):
                await helper.start(session, room)  # type: ignore[arg-type]
            # The LLM's tool: a raw function tool named set_emotion that sets the face.
            from livekit.agents.llm.tool_context import get_raw_function_info

            tool = helper.emotion_tool()
            assert get_raw_function_info(tool).name == "set_emotion"
            assert await tool({"emotion": "happy", "intensity": 0.8}) == "showing happy at 0.8"
            assert helper.controller.emotion == ("happy", 0.8)
            assert "unknown emotion" in await tool({"emotion": "ecstatic"})
        finally:
            await helper.aclose()
            await helper.aclose()  # idempotent
        assert helper.view is None

    asyncio.run(run())


def test_an_agent_sessions_speech_plays_through_the_avatar(avatar: Any) -> None:
    """LiveKit's AgentSession speaks through it: say() waits for the avatar to play the speech out, and
    an interrupted say() ends at once, marked interrupted in the chat history."""
    from livekit.agents import Agent

    async def speech(seconds: float, seed: int) -> AsyncIterator[rtc.AudioFrame]:
        for frame in frames_of(speech_like(seconds, RATE, seed=seed), RATE):
            yield frame

    async def run() -> None:
        loop = asyncio.get_running_loop()
        session: AgentSession[None] = AgentSession(vad=None)
        helper = AvatarSession(avatar, width=SIZE, height=SIZE, fps=FPS)
        await helper.start(session, Room())  # type: ignore[arg-type]
        await session.start(Agent(instructions="Say things."))  # no room: the avatar is the audio output
        try:
            started = loop.time()
            handle = session.say("One second of speech.", audio=speech(1.0, 0))
            await asyncio.wait_for(handle.wait_for_playout(), 10)
            assert not handle.interrupted
            assert loop.time() - started > 1.0  # it waited for the avatar, not for the queue

            handle = session.say("Three seconds of speech, cut short.", audio=speech(3.0, 1))
            await asyncio.sleep(1.0)
            interrupted = loop.time()
            handle.interrupt()
            await asyncio.wait_for(handle.wait_for_playout(), 10)
            assert handle.interrupted
            assert loop.time() - interrupted < 1.0  # at once, not after the 2 s left
            assert helper.controller is not None
            assert helper.controller.conversation_state is ConversationState.IDLE
            said = [(m.text_content, m.interrupted) for m in session.history.items if m.type == "message"]
            assert [interrupted for _, interrupted in said] == [False, True]
        finally:
            await session.aclose()
            await helper.aclose()

    asyncio.run(run())


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("example_livekit_agent", EXAMPLES / "livekit_agent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_example_agent_builds_its_session_and_avatar(monkeypatch: pytest.MonkeyPatch) -> None:
    from livekit.agents import AgentServer

    # LiveKit Inference wants them to exist (it signs a token with the secret); nothing connects.
    monkeypatch.setenv("LIVEKIT_URL", "ws://127.0.0.1:1")
    monkeypatch.setenv("LIVEKIT_API_KEY", "test-key")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "a-test-secret-of-at-least-32-bytes!")
    example = load_example()
    assert isinstance(example.server, AgentServer)

    async def session() -> Any:
        return example.make_session()  # an AgentSession belongs to the running loop

    assert isinstance(asyncio.run(session()), AgentSession)
    AvatarSDK.cleanup()
    avatar = example.make_avatar()  # initializes the SDK in the local mode at 24 kHz
    assert isinstance(avatar, AvatarSession)
    assert AvatarSDK.configuration.audio_format.sample_rate == 24000
    assert AvatarSDK.configuration.mode.value == "local"
