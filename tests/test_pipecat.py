"""avatarkit.integrations.pipecat in a real pipecat Pipeline (pipecat's own test runner), local driving mode.

TTS audio frames go in; images with the audio that plays during each come out at the configured
rate; TTSStartedFrame/TTSStoppedFrame are sent on around the speech they bracket; an interruption
clears the speech; the EndFrame passes only once the speech has played out.
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
import time

import numpy as np
import pytest

from render_helpers import require_gl

pytest.importorskip("pipecat", reason="pipecat-ai is not installed (it needs Python 3.11 or later)")

from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    TextFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.worker import PipelineParams
from pipecat.tests.utils import SleepFrame, run_test

from avatarkit import AvatarSDK
from avatarkit.integrations.pipecat import AvatarKitVideoService
from avatarkit.media import DEMO_SPEECH, decode_audio

# pipecat's own deprecations (of its older names, which its modules still define) are not ours to fix.
# So is its VAD's use of importlib.resources.path (deprecated in Python 3.11 and 3.12).
pytestmark = [
    pytest.mark.filterwarnings("ignore:.* is deprecated since .* will be removed in:DeprecationWarning"),
    pytest.mark.filterwarnings(r"ignore:path is deprecated. Use files\(\) instead:DeprecationWarning"),
]

TTS_RATE = 16000
FPS = 30
SIZE = 96  # small frames: the tests are about timing and frames, not pictures


@pytest.fixture(autouse=True)
def _local(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_gl()
    monkeypatch.setenv("AVATARKIT_CACHE_DIR", str(tmp_path / "cache"))
    AvatarSDK.cleanup()
    yield
    AvatarSDK.cleanup()


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """The bundled sentence at the TTS rate."""
    return decode_audio(DEMO_SPEECH, TTS_RATE)


def tts(pcm: np.ndarray, context_id: str, chunk: float = 0.04) -> list[Frame]:
    """What a TTS service sends for one response: started, audio in chunks, stopped."""
    n = round(chunk * TTS_RATE)
    audio = [
        TTSAudioRawFrame(pcm[i : i + n].tobytes(), TTS_RATE, 1, context_id=context_id) for i in range(0, len(pcm), n)
    ]
    return [TTSStartedFrame(context_id=context_id), *audio, TTSStoppedFrame(context_id=context_id)]


@dataclasses.dataclass
class Pushed:
    frame: Frame
    at: float


class Recorder(BaseObserver):
    """Every frame the avatar service pushes downstream, with the time it did."""

    def __init__(self) -> None:
        super().__init__()
        self.service: AvatarKitVideoService | None = None
        self.pushed: list[Pushed] = []
        self.t0 = time.monotonic()

    async def on_push_frame(self, data: FramePushed) -> None:
        if data.source is self.service and data.direction.name == "DOWNSTREAM":
            self.pushed.append(Pushed(data.frame, time.monotonic() - self.t0))

    def of(self, kind: type[Frame]) -> list[Pushed]:
        return [p for p in self.pushed if isinstance(p.frame, kind)]

    def index(self, frame: Frame) -> int:
        return next(i for i, p in enumerate(self.pushed) if p.frame is frame)


async def run(frames: list[Frame], *, out_rate: int = 24000) -> tuple[Recorder, list[Frame]]:
    service = AvatarKitVideoService(width=SIZE, height=SIZE, fps=FPS)
    recorder = Recorder()
    recorder.service = service
    down, _up = await run_test(
        service,
        frames_to_send=frames,
        observers=[recorder],
        pipeline_params=PipelineParams(audio_out_sample_rate=out_rate),
        start_timeout=60.0,
    )
    return recorder, list(down)


def speech_seconds(recorder: Recorder) -> float:
    audio = [p.frame for p in recorder.of(TTSAudioRawFrame)]
    assert isinstance(audio[0], TTSAudioRawFrame)
    return sum(a.num_frames for a in audio) / audio[0].sample_rate


@pytest.mark.asyncio
async def test_speech_in_images_with_their_audio_out_at_the_frame_rate(speech: np.ndarray) -> None:
    pcm = speech[: 2 * TTS_RATE]
    text = TextFrame("hello")
    recorder, down = await run([SleepFrame(1.0), text, *tts(pcm, "c1")], out_rate=24000)

    images = recorder.of(OutputImageRawFrame)
    first = images[0].frame
    assert isinstance(first, OutputImageRawFrame)
    assert first.size == (SIZE, SIZE) and first.format == "RGB" and len(first.image) == SIZE * SIZE * 3
    assert first.sync_with_audio
    # Images from the start, at the frame rate (the second of idle, the 2 s of speech, its fade).
    span = images[-1].at - images[0].at
    assert abs((len(images) - 1) / span - FPS) < 3.0  # within 10 % on a loaded machine
    # While idle: video only. The first second held no audio.
    assert not [p for p in recorder.pushed if isinstance(p.frame, OutputAudioRawFrame) and p.at < images[0].at + 0.9]

    # All the speech came out once, at the pipeline's rate, in steps of one frame's worth, each after its image.
    audio = recorder.of(TTSAudioRawFrame)
    assert all(isinstance(a.frame, TTSAudioRawFrame) and a.frame.sample_rate == 24000 for a in audio)
    assert abs(speech_seconds(recorder) - 2.0) < 0.05
    sizes = [a.frame.num_frames for a in audio[1:-1]]  # type: ignore[attr-defined]
    assert all(abs(n - 24000 / FPS) <= 1 for n in sizes), sorted(set(sizes))
    for a in audio:
        assert isinstance(recorder.pushed[recorder.index(a.frame) - 1].frame, OutputImageRawFrame)
    assert all(a.frame.context_id == "c1" for a in audio)  # type: ignore[attr-defined]
    # ... over about two seconds of frames: played in real time, paired with images.
    speaking_images = [p for p in images if audio[0].at - 0.001 <= p.at <= audio[-1].at]
    assert abs(len(speaking_images) - 2.0 * FPS) <= 3

    # The face speaks: consecutive pictures change far more while the speech plays than while idle.
    pixels = [np.frombuffer(p.frame.image, np.uint8).astype(int) for p in images]  # type: ignore[attr-defined]
    change = [np.abs(b - a).mean() for a, b in itertools.pairwise(pixels)]
    talking = [c for c, p in zip(change, images[1:], strict=False) if audio[0].at <= p.at <= audio[-1].at]
    idle = [c for c, p in zip(change, images[1:], strict=False) if p.at < audio[0].at - 0.2]
    assert np.mean(talking) > 3 * np.mean(idle)

    # TTSStartedFrame just before the first audio, TTSStoppedFrame just after the last.
    started, stopped = recorder.of(TTSStartedFrame), recorder.of(TTSStoppedFrame)
    assert len(started) == len(stopped) == 1
    assert recorder.index(started[0].frame) < recorder.index(audio[0].frame)
    assert recorder.index(stopped[0].frame) > recorder.index(audio[-1].frame)
    assert stopped[0].at - audio[-1].at < 0.5  # a frame later (33 ms), more on a loaded machine

    # Other frames pass straight through, long before the speech they precede is heard.
    assert text in down
    assert recorder.of(TextFrame)[0].at < audio[0].at

    # The EndFrame (sent right after the TTS frames) passed only after the speech had played out.
    end = recorder.of(EndFrame)
    assert len(end) == 1 and recorder.pushed[-1].frame is end[0].frame
    assert end[0].at >= audio[-1].at
    assert end[0].at - images[0].at > 2.8  # 1 s idle + 2 s of speech, in real time


@pytest.mark.asyncio
async def test_interruption_clears_the_speech_and_drops_its_stop(speech: np.ndarray) -> None:
    pcm = speech[: 4 * TTS_RATE]
    interruption = InterruptionFrame()
    # A second response queued behind the first is dropped too.
    frames = [*tts(pcm, "long"), *tts(speech[:TTS_RATE], "next"), SleepFrame(1.0), interruption, SleepFrame(0.5)]
    recorder, down = await run(frames)

    assert interruption in down  # passed on at once
    at = recorder.of(InterruptionFrame)[0].at
    audio = recorder.of(TTSAudioRawFrame)
    # Speech stopped at the interruption (a frame or two later: frames behind the clock on a loaded
    # machine still carry the speech that played before it); under 1.2 s of the 4 s played.
    assert all(a.at < at + 0.3 for a in audio)
    assert 0.3 < speech_seconds(recorder) < 1.2
    assert {a.frame.context_id for a in audio} == {"long"}  # type: ignore[attr-defined]
    # Its TTSStoppedFrame and everything of the queued response were dropped.
    assert len(recorder.of(TTSStartedFrame)) == 1
    assert recorder.of(TTSStoppedFrame) == []
    # The avatar went on with video only, and the EndFrame passed without waiting for the 4 s.
    assert len([p for p in recorder.of(OutputImageRawFrame) if p.at > at + 0.1]) >= 10
    end = recorder.of(EndFrame)[0]
    assert end.at - at < 1.5


@pytest.mark.asyncio
async def test_responses_play_one_after_another_and_tts_audio_is_resampled(speech: np.ndarray) -> None:
    first, second = speech[:TTS_RATE], speech[TTS_RATE : 2 * TTS_RATE]
    recorder, _down = await run([*tts(first, "a"), *tts(second, "b")], out_rate=48000)

    audio = recorder.of(TTSAudioRawFrame)
    assert all(a.frame.sample_rate == 48000 for a in audio)  # type: ignore[attr-defined]
    contexts = [a.frame.context_id for a in audio]  # type: ignore[attr-defined]
    n_a = contexts.count("a")
    assert contexts == ["a"] * n_a + ["b"] * (len(contexts) - n_a)  # the second waited for the first
    assert abs(speech_seconds(recorder) - 2.0) < 0.1  # neither cut short (each ends within a frame)
    kinds = [type(p.frame) for p in recorder.pushed if isinstance(p.frame, TTSStartedFrame | TTSStoppedFrame)]
    assert kinds == [TTSStartedFrame, TTSStoppedFrame, TTSStartedFrame, TTSStoppedFrame]
    # The end of the pipeline waited for both.
    assert recorder.of(EndFrame)[0].at >= audio[-1].at


@pytest.mark.asyncio
async def test_speech_without_tts_started_or_stopped_ends_when_its_audio_stops(speech: np.ndarray) -> None:
    pcm = speech[:TTS_RATE]
    n = round(0.04 * TTS_RATE)
    audio = [TTSAudioRawFrame(pcm[i : i + n].tobytes(), TTS_RATE, 1) for i in range(0, len(pcm), n)]
    recorder, _down = await run([*audio, SleepFrame(2.5)])
    assert abs(speech_seconds(recorder) - 1.0) < 0.05
    assert recorder.of(TTSStartedFrame) == recorder.of(TTSStoppedFrame) == []


def test_example_bot_puts_the_avatar_between_the_tts_and_the_transport() -> None:
    """examples/pipecat_bot.py imports and builds its pipeline (the services need no network to be made)."""
    import importlib.util

    from pipecat.processors.frame_processor import FrameProcessor
    from pipecat.services.tts_service import TTSService
    from pipecat.transports.base_transport import BaseTransport

    class Stage(FrameProcessor):
        pass

    class Transport(BaseTransport):
        def __init__(self) -> None:
            super().__init__()
            self._in, self._out = Stage(name="input"), Stage(name="output")

        def input(self) -> FrameProcessor:
            return self._in

        def output(self) -> FrameProcessor:
            return self._out

    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "pipecat_bot.py"
    spec = importlib.util.spec_from_file_location("example_pipecat_bot", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    transport = Transport()
    pipeline, _context = example.build_pipeline(transport, api_key="sk-test")
    stages = pipeline.processors[1:-1]  # between the pipeline's own source and sink
    kinds = [type(p) for p in stages]
    at = kinds.index(AvatarKitVideoService)
    assert isinstance(stages[at - 1], TTSService)
    assert stages[at + 1] is transport.output()
    assert stages[0] is transport.input()
    params = example.transport_params()
    assert params.video_out_enabled and not params.video_out_is_live
    assert params.video_out_framerate == example.FPS
    assert (params.video_out_width, params.video_out_height) == (example.SIZE, example.SIZE)


@pytest.mark.asyncio
async def test_cancel_stops_at_once(speech: np.ndarray) -> None:
    from pipecat.frames.frames import CancelFrame

    service = AvatarKitVideoService(width=SIZE, height=SIZE, fps=FPS)
    recorder = Recorder()
    recorder.service = service
    frames = [*tts(speech[: 4 * TTS_RATE], "long"), SleepFrame(1.0), CancelFrame()]
    await run_test(service, frames_to_send=frames, observers=[recorder], send_end_frame=False, start_timeout=60.0)
    cancel = recorder.of(CancelFrame)
    assert len(cancel) == 1
    assert 0.5 < speech_seconds(recorder) < 1.5  # of the 4 s
    assert all(p.at <= cancel[0].at + 0.1 for p in recorder.pushed)  # nothing after it
    assert service.controller is None and service.view is None  # closed and destroyed


@pytest.mark.asyncio
async def test_an_apps_own_view_and_configuration_are_kept(speech: np.ndarray) -> None:
    """The app initialized the SDK (local mode at 16 kHz) and made the view: the service drives it, leaves it."""
    from avatarkit import AudioFormat, AvatarManager, AvatarView, Configuration, HeadlessSurface
    from avatarkit.server.samples import ensure_samples

    config = Configuration(driving_service_mode="local", audio_format=AudioFormat(sample_rate=16000))
    AvatarSDK.initialize("app", config)
    view = AvatarView(HeadlessSurface(64, 48), AvatarManager.derive(ensure_samples() / "default"))
    try:
        service = AvatarKitVideoService(view=view, fps=FPS, image_format="RGBA")
        recorder = Recorder()
        recorder.service = service
        await run_test(service, frames_to_send=tts(speech[:TTS_RATE], "c"), observers=[recorder], start_timeout=60.0)
        image = recorder.of(OutputImageRawFrame)[0].frame
        assert isinstance(image, OutputImageRawFrame)
        assert image.size == (64, 48) and image.format == "RGBA" and len(image.image) == 64 * 48 * 4
        assert view.avatar_controller.sample_rate == 16000  # the app's rate, not the pipeline's
        assert all(a.frame.sample_rate == 24000 for a in recorder.of(TTSAudioRawFrame))  # type: ignore[attr-defined]
        assert abs(speech_seconds(recorder) - 1.0) < 0.05
        assert not view.destroyed
        # The LLM's function: a schema with its handler, which answers the model (apply_emotion_call,
        # tested alone, sets the face while the pipeline runs).
        schema = service.emotion_function()
        assert schema.name == "set_emotion" and "emotion" in schema.properties and schema.handler is not None
        answers: list[object] = []

        class Call:
            def __init__(self) -> None:
                self.arguments = {"emotion": "thinking"}

            async def result_callback(self, result: object) -> None:
                answers.append(result)

        await schema.handler(Call())  # the pipeline has ended: the service let go of the controller
        assert answers == [{"result": "the avatar is not running"}]
        assert view.avatar_controller.emotion == ("neutral", 0.0)
    finally:
        view.destroy()


@pytest.mark.asyncio
async def test_a_tts_that_falls_behind_loses_no_speech(speech: np.ndarray) -> None:
    """Half a second of speech, a 1.5 s stall in the middle of the response, the rest: all of it is heard."""
    first, rest = speech[: TTS_RATE // 2], speech[TTS_RATE // 2 : TTS_RATE]
    frames = [*tts(first, "slow")[:-1], SleepFrame(1.5), *tts(rest, "slow")[1:]]
    recorder, _down = await run(frames)
    audio = [p.frame for p in recorder.of(TTSAudioRawFrame)]
    out = np.concatenate([np.frombuffer(a.audio, np.int16) for a in audio]).astype(float)  # type: ignore[attr-defined]
    energy_in = np.sum(speech[:TTS_RATE].astype(float) ** 2) / TTS_RATE
    energy_out = np.sum(out**2) / 24000
    assert 0.9 < energy_out / energy_in < 1.1  # without holding its place: about half
    # It went on speaking through the stall, with silence: from when the first half ran out (0.6 s
    # after it came) to when the rest came (1.5 s), then the rest, a frame late at most.
    assert 1.8 < len(out) / 24000 < 2.1
    # One response: one start, one stop.
    assert len(recorder.of(TTSStartedFrame)) == len(recorder.of(TTSStoppedFrame)) == 1


@pytest.mark.asyncio
async def test_sdk_mode_against_the_built_in_service(speech: np.ndarray) -> None:
    """An app that initialized the SDK in SDK mode (a token, avatarkit serve) gets the same frames."""
    from avatarkit import AudioFormat, Configuration, Environment
    from avatarkit.commands import development_session_token, embedded_service

    with embedded_service() as (server, app_id):
        rate = AudioFormat(sample_rate=24000)
        config = Configuration(environment=Environment.local(port=server.port), audio_format=rate)
        AvatarSDK.initialize(app_id, config)
        AvatarSDK.session_token = await development_session_token(server.url, app_id)
        recorder, _down = await run(tts(speech[:TTS_RATE], "sdk"))
    assert abs(speech_seconds(recorder) - 1.0) < 0.05
    kinds = [type(p.frame) for p in recorder.pushed if isinstance(p.frame, TTSStartedFrame | TTSStoppedFrame)]
    assert kinds == [TTSStartedFrame, TTSStoppedFrame]
