"""Local driving mode end to end: the in-process engine behind the controller, with no service running.

Everything here runs with no server and no token: ``start()``, speech streamed with ``send``,
interrupt mid-utterance, pause and resume, the end of an utterance, and the A/V pairing of
``av_frames`` with its utterance markers.
"""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from speech_audio import speech_like

from avatarkit import (
    AudioFormat,
    AvatarError,
    AvatarErrorCode,
    AvatarManager,
    AvatarSDK,
    AvatarView,
    Configuration,
    ConnectionState,
    ConversationState,
    DrivingServiceMode,
    HeadlessSurface,
    StateReason,
)
from avatarkit.controller import AVFrame
from avatarkit.media import DEMO_SPEECH, decode_audio
from avatarkit.server.samples import ensure_samples

from render_helpers import require_gl

RATE = 16000
CHUNK = RATE // 25  # 40 ms


@pytest.fixture(scope="module", autouse=True)
def _gl() -> None:
    require_gl()


@pytest.fixture(scope="module")
def sample_avatar_dir() -> pathlib.Path:
    return ensure_samples() / "default"  # built once per machine, as avatarkit demo does


@pytest_asyncio.fixture
async def view(sample_avatar_dir: pathlib.Path) -> AsyncIterator[AvatarView]:
    config = Configuration(driving_service_mode="local", audio_format=AudioFormat(sample_rate=RATE))
    AvatarSDK.initialize("local-app", config)
    assert AvatarSDK.session_token is None  # no token anywhere
    v = AvatarView(HeadlessSurface(64, 64), AvatarManager.derive(sample_avatar_dir), background=None)
    yield v
    await v.controller.close()
    v.destroy()
    AvatarSDK.cleanup()


async def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def stream(controller, pcm: np.ndarray, *, end: bool = True) -> str:  # type: ignore[no-untyped-def]
    """Send ``pcm`` in 40 ms chunks at the pace it is spoken, as a TTS or a microphone would."""
    conv = ""
    start = time.monotonic()
    for k, i in enumerate(range(0, len(pcm), CHUNK)):
        conv = controller.send(pcm[i : i + CHUNK], end=end and i + CHUNK >= len(pcm))
        await asyncio.sleep(max(0.0, start + (k + 1) * CHUNK / RATE - time.monotonic()))
    return conv


def test_the_aliases_name_local_mode() -> None:
    for name in ("local", "in-process", "engine", "LOCAL"):
        assert Configuration(driving_service_mode=name).mode is DrivingServiceMode.LOCAL


@pytest.mark.asyncio
async def test_start_streamed_send_and_the_end_of_the_utterance(view: AvatarView) -> None:
    c = view.controller
    events: list[tuple[str, object]] = []
    c.on_connection_state = lambda s, e: events.append(("connection", s))
    c.on_conversation_state = lambda s, r: events.append(("conversation", (s, r)))
    with pytest.raises(AvatarError) as info:
        c.send(speech_like(0.1))
    assert info.value.code is AvatarErrorCode.INVALID_STATE  # not started
    await c.start()
    assert c.connection_state is ConnectionState.CONNECTED
    assert c.connection_id is not None and c.connection_id.startswith("local_")
    assert c.lookahead == pytest.approx(0.08)
    with pytest.raises(AvatarError) as info:
        await c.start()
    assert info.value.code is AvatarErrorCode.CONNECTION_IN_PROGRESS
    pcm = speech_like(1.2)
    conv_id = await stream(c, pcm)
    conv = c.conversation(conv_id)
    assert conv is not None and conv.motion_ended
    motion = c.conversation_motion(conv_id)
    assert motion is not None and len(motion) == 30  # ceil(1.2 s / 40 ms)
    jaw = motion[:, c.channels.index("jawOpen")]
    assert jaw.max() > 0.2  # the mouth moves with the speech
    await wait_until(lambda: c.conversation_state is ConversationState.IDLE)
    assert events == [
        ("connection", ConnectionState.CONNECTING),
        ("connection", ConnectionState.CONNECTED),
        ("conversation", (ConversationState.PLAYING, StateReason.STARTED)),
        ("conversation", (ConversationState.IDLE, StateReason.PLAYBACK_END)),
    ]
    await c.close()
    assert c.connection_state is ConnectionState.DISCONNECTED and c.connection_id is None


@pytest.mark.asyncio
async def test_interrupt_mid_utterance_then_speak_again(view: AvatarView) -> None:
    c = view.controller
    await c.start()
    reasons: list[StateReason] = []
    c.on_conversation_state = lambda s, r: reasons.append(r)
    pcm = speech_like(3.0)
    first = await stream(c, pcm[: RATE // 2], end=False)
    c.interrupt()
    assert c.conversation_state is ConversationState.IDLE and reasons[-1] is StateReason.USER_ACTION
    cut = c.conversation(first)
    assert cut is not None and cut.interrupted
    # The rest of the interrupted utterance never arrives; the next send is a new conversation.
    second = await stream(c, pcm[RATE : 2 * RATE])
    assert second != first
    motion = c.conversation_motion(second)
    assert motion is not None and len(motion) == 25 and motion[0].any()
    await wait_until(lambda: c.conversation_state is ConversationState.IDLE)
    assert reasons == [StateReason.STARTED, StateReason.USER_ACTION, StateReason.STARTED, StateReason.PLAYBACK_END]


@pytest.mark.asyncio
async def test_pause_holds_audio_and_motion_and_resume_continues(view: AvatarView) -> None:
    c = view.controller
    await c.start()
    states: list[ConversationState] = []
    c.on_conversation_state = lambda s, r: states.append(s)
    await stream(c, speech_like(0.6))
    c.pause()
    held = c.clock()
    await asyncio.sleep(0.3)
    assert c.clock() == pytest.approx(held, abs=1e-3)
    assert c.conversation_state is ConversationState.PAUSED
    # The speech pose holds; idle life (blinks, breathing) keeps its own time meanwhile.
    speech = [c.channels.index(n) for n in c.channels if n.startswith("viseme_") or n == "jawOpen"]
    np.testing.assert_array_equal(c.sample(held)[speech], c.sample(held)[speech])
    assert c.playback.pace.paused_seconds >= 0.25
    c.resume()
    await wait_until(lambda: c.conversation_state is ConversationState.IDLE)
    assert states == [
        ConversationState.PLAYING,
        ConversationState.PAUSED,
        ConversationState.PLAYING,
        ConversationState.IDLE,
    ]


@pytest.mark.asyncio
async def test_av_frames_pair_audio_and_mouth_and_mark_the_utterances(view: AvatarView) -> None:
    c = view.controller
    await c.start()
    pcm = decode_audio(DEMO_SPEECH, RATE)[: round(2.5 * RATE)]  # a real voice
    frames: list[AVFrame] = []

    async def collect() -> None:
        async for frame in c.av_frames(fps=25, pixel_format="rgb", sample_rate=48000, idle_audio=False):
            frames.append(frame)
            if sum(f.end_of_utterance for f in frames) == 2:
                break

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0.2)  # idle first, as in an app
    first = await stream(c, pcm[: RATE // 2], end=False)
    c.interrupt()
    await asyncio.sleep(0.1)
    second = await stream(c, pcm[RATE // 2 :])
    await asyncio.wait_for(collector, 15.0)

    assert all(f.image.shape == (64, 64, 3) and f.sample_rate == 48000 for f in frames)
    # Idle frames carry no audio; speaking frames carry 40 ms of it at 48 kHz (the resampler's
    # delay moves a few samples between frames, the total keeps the pace).
    assert all(len(f.audio) == 0 for f in frames if not f.speaking)
    speaking = [f for f in frames if f.speaking]
    total = sum(len(f.audio) for f in speaking)
    assert abs(total - len(speaking) * 1920) <= 1920
    assert {f.conversation_id for f in speaking} == {first, second}
    ends = [f for f in frames if f.end_of_utterance]
    assert [(f.ended_conversation_id, f.interrupted) for f in ends] == [(first, True), (second, False)]
    # The end marker comes on the first frame after the speech: nothing of it plays there.
    assert all(f.conversation_id != f.ended_conversation_id for f in ends)
    # A/V in step: the mouth opens with the audio's loud frames, at the same frame (not a frame or
    # two before or after).
    last = [f for f in speaking if f.conversation_id == second]
    level = np.array([np.sqrt(np.mean(f.audio.astype(float) ** 2)) for f in last])
    jaw = np.array([c.mixer.sample(f.timestamp)[c.channels.index("jawOpen")] for f in last])
    lags = range(-3, 4)

    def corr(lag: int) -> float:
        a, b = (level[: len(level) - lag], jaw[lag:]) if lag >= 0 else (level[-lag:], jaw[: len(jaw) + lag])
        return float(np.corrcoef(a, b)[0, 1])

    best = max(lags, key=corr)
    assert corr(best) > 0.5 and best == 0, [round(corr(k), 2) for k in lags]


@pytest.mark.asyncio
async def test_local_mode_needs_no_token_and_host_mode_cannot_start(sample_avatar_dir: pathlib.Path) -> None:
    AvatarSDK.initialize("app", Configuration(driving_service_mode="host"))
    view = AvatarView(HeadlessSurface(16, 16), AvatarManager.derive(sample_avatar_dir))
    try:
        with pytest.raises(AvatarError) as info:
            await view.controller.start()
        assert info.value.code is AvatarErrorCode.INVALID_STATE
    finally:
        view.destroy()
        AvatarSDK.cleanup()


@pytest.mark.asyncio
async def test_set_emotion_shows_on_the_face_and_leaves_the_lips_to_speech(view: AvatarView) -> None:
    from avatarkit.emotions import EMOTION_TOOL, EMOTIONS

    c = view.controller
    assert c.emotion == ("neutral", 0.0)
    for bad in (("joyful", 1.0, 0.1), ("happy", 1.5, 0.1), ("happy", 0.5, -1.0)):
        with pytest.raises(AvatarError) as info:
            c.set_emotion(*bad)
        assert info.value.code is AvatarErrorCode.INVALID_ARGUMENT
    assert set(EMOTION_TOOL["parameters"]["properties"]["emotion"]["enum"]) == set(EMOTIONS)
    t = c.clock() + 1.0
    neutral = view.render_frame_sync(t).image.astype(int)
    for name in ("happy", "sad", "surprised", "angry", "thinking"):
        c.set_emotion(name, 1.0, fade=0.2)
        assert c.emotion == (name, 1.0)
        changed = np.abs(view.render_frame_sync(t).image.astype(int) - neutral).sum(axis=2) > 24
        assert changed.sum() > 20, name  # the face shows it
    await c.start()
    c.set_emotion("angry", 0.8, fade=0.0)
    conv_id = await stream(c, speech_like(0.8), end=True)
    conv = c.conversation(conv_id)
    assert conv is not None and conv.start is not None
    mid = conv.start + 0.4
    jaw = c.channels.index("jawOpen")
    shown = c.sample(mid)
    expected = conv.timeline.sample(mid)
    assert expected is not None and shown[jaw] == pytest.approx(expected[jaw], abs=1e-5)
    assert shown[c.channels.index("browDownLeft")] > 0.5


@pytest.mark.asyncio
async def test_interrupt_while_paused_leaves_the_avatar_live(view: AvatarView) -> None:
    c = view.controller
    await c.start()
    await stream(c, speech_like(0.4), end=False)
    c.pause()
    c.interrupt()
    assert c.conversation_state is ConversationState.IDLE
    before = c.clock()
    await asyncio.sleep(0.1)
    assert c.clock() > before  # the clock runs: nothing is left to hold
