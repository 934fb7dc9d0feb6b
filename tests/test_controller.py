"""AvatarSDK and AvatarController end to end, against the real service on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import pathlib
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
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
    Environment,
    HeadlessSurface,
    StateReason,
)
from avatarkit.assets.bundle import write_manifest
from avatarkit.controller import AvatarController, AVFrame
from avatarkit.media import DEMO_SPEECH, decode_audio
from avatarkit.protocol import parse_message
from avatarkit.server.app import BackgroundServer
from avatarkit.server.config import AppConfig, ServiceConfig
from avatarkit.server.service import SERVICE_KEY, start_service

from render_helpers import require_gl, tiny_avatar_glb

API_KEY = "test-key-123456"
SECRET = b"k" * 32


@pytest.fixture(scope="module", autouse=True)
def _gl() -> None:
    require_gl()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("bundles")
    (root / "tiny").mkdir()
    tiny_avatar_glb(root / "tiny" / "avatar.glb")
    write_manifest(
        root / "tiny",
        avatar_id="tiny",
        name="Tiny",
        model="avatar.glb",
        camera={"target": [0, 1.6, 0], "distance": 0.45, "fov_y_deg": 30},
    )
    return root


def config() -> ServiceConfig:
    return ServiceConfig(apps={"demo": AppConfig("demo", API_KEY)}, token_secret=SECRET)


@pytest.fixture
def server(bundles: pathlib.Path) -> Iterator[BackgroundServer]:
    with start_service(config(), avatar_roots=[bundles]) as running:
        yield running


async def token(server: BackgroundServer, seconds: int = 600) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.url}/v1/auth/session-token",
            headers={"X-Api-Key": API_KEY},
            json={"expireAt": int(time.time()) + seconds},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["sessionToken"])


@contextlib.asynccontextmanager
async def limited_view(bundles: pathlib.Path, tmp_path: pathlib.Path, **limits: float) -> AsyncIterator[AvatarView]:
    """A service of its own whose app has these limits, the SDK initialized for it with a token, and
    a headless view of the tiny avatar loaded from it."""
    from avatarkit.server.config import Limits

    limited = ServiceConfig(apps={"demo": AppConfig("demo", API_KEY, limits=Limits(**limits))}, token_secret=SECRET)
    with start_service(limited, avatar_roots=[bundles]) as server:
        AvatarSDK.initialize("demo", Configuration(environment=Environment.local(port=server.port)))
        AvatarSDK.session_token = await token(server)
        avatar = await AvatarManager(cache_dir=tmp_path).load("tiny")
        with AvatarView(HeadlessSurface(32, 32), avatar) as view:
            yield view


@pytest_asyncio.fixture
async def view(server: BackgroundServer, tmp_path: pathlib.Path) -> AsyncIterator[AvatarView]:
    AvatarSDK.initialize("demo", Configuration(environment=Environment.local(port=server.port)))
    AvatarSDK.session_token = await token(server)
    avatar = await AvatarManager(cache_dir=tmp_path / "cache").load("tiny")
    v = AvatarView(HeadlessSurface(64, 64), avatar, background=None)
    zeros = np.zeros(len(v.controller.channels), np.float32)
    v.controller.mixer.idle.sample = lambda t: zeros.copy()  # type: ignore[method-assign]
    yield v
    await v.controller.close()
    v.destroy()
    AvatarSDK.cleanup()


async def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def mouth_activity(view: AvatarView, times: np.ndarray) -> np.ndarray:
    """How far the lower half of the face moved from neutral, per render time."""
    c = view.controller
    pinned = c.mixer.pinned
    c.set_channels({"jawOpen": 0.0})
    neutral = view.render_frame_sync(float(times[0])).image.astype(int)
    c.set_channels(pinned)
    return np.array(
        [np.abs(view.render_frame_sync(float(t)).image.astype(int) - neutral)[32:].sum() for t in times], float
    )


@pytest.mark.asyncio
async def test_sdk_mode_lifecycle_states_and_mouth_follows_speech(view: AvatarView) -> None:
    c = view.controller
    states: list[tuple[ConversationState, StateReason]] = []
    c.on_conversation_state = lambda s, r: states.append((s, r))
    assert c.conversation_state is ConversationState.IDLE
    await c.start()
    assert c.connection_state is ConnectionState.CONNECTED and c.connection_id
    pcm = decode_audio(DEMO_SPEECH, 16000)[: 2 * 16000]  # real (synthesized) speech, not a test buzz
    for i in range(0, len(pcm), 1600):
        conv_id = c.send(pcm[i : i + 1600], end=i + 1600 >= len(pcm))
        await asyncio.sleep(0.01)
    conv = c.playback.current
    assert conv is not None and conv.id == conv_id
    await wait_until(lambda: conv.motion_ended)
    assert len(conv.timeline) == int(np.ceil(2.0 / 0.04))
    await wait_until(lambda: c.conversation_state is ConversationState.IDLE, timeout=5)
    assert states == [
        (ConversationState.PLAYING, StateReason.STARTED),
        (ConversationState.IDLE, StateReason.PLAYBACK_END),
    ]
    # The rendered mouth opens with the voice and closes in its gaps.
    assert conv.start is not None
    times = conv.start + 0.2 + np.arange(0, 1.6, 0.04)
    activity = mouth_activity(view, times)
    energy = np.array([np.sqrt(np.mean(c.audio_between(t, t + 0.04).astype(float) ** 2)) for t in times])
    correlation = np.corrcoef(activity, energy)[0, 1]
    assert correlation > 0.5, correlation
    # Silences close the mouth: the quietest frames move it far less than the loudest.
    quiet, loud = energy < np.percentile(energy, 20), energy > np.percentile(energy, 60)
    assert activity[quiet].mean() < 0.5 * activity[loud].mean()


@pytest.mark.asyncio
async def test_interrupt_and_new_conversation(view: AvatarView) -> None:
    c = view.controller
    await c.start()
    pcm = speech_like(3.0)
    first = c.send(pcm[:16000])
    await asyncio.sleep(0.3)
    assert c.conversation_state is ConversationState.PLAYING
    c.interrupt()
    t0 = c.clock()
    assert c.conversation_state is ConversationState.IDLE
    # Within 100 ms of audio the speech weight is falling and no speech audio plays.
    assert not c.audio_between(t0 + 0.1, t0 + 0.2).any()
    second = c.send(pcm[16000:32000], end=True)
    assert second != first
    await wait_until(lambda: c.playback.current.motion_ended)  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_av_sink_keeps_mouth_and_audio_in_sync(view: AvatarView) -> None:
    c = view.controller
    await c.start()
    pcm = speech_like(2.4, seed=3)
    c.send(pcm, end=True)
    conv = c.playback.current
    assert conv is not None
    await wait_until(lambda: conv.motion_ended)
    assert conv.start is not None
    step = 0.02
    times = conv.start + np.arange(0.1, 2.3, step)
    activity = mouth_activity(view, times)
    energy = np.array([np.sqrt(np.mean(c.audio_between(t, t + step).astype(float) ** 2)) for t in times])

    def corr(lag: int) -> float:
        a, e = (activity[lag:], energy[: len(energy) - lag]) if lag >= 0 else (activity[:lag], energy[-lag:])
        return float(np.corrcoef(a, e)[0, 1])

    lags = list(range(-6, 7))
    best = max(lags, key=corr)
    # The lag that best aligns mouth and sound is within 40 ms (two 20 ms steps).
    assert abs(best * step) <= 0.04 + 1e-9, f"mouth lags audio by {best * step * 1000:.0f} ms"


@pytest.mark.asyncio
async def test_wrong_state_and_token_errors(server: BackgroundServer, tmp_path: pathlib.Path) -> None:
    AvatarSDK.cleanup()
    with pytest.raises(AvatarError) as info:
        await AvatarManager(cache_dir=tmp_path).load("tiny")
    assert info.value.code is AvatarErrorCode.SDK_NOT_INITIALIZED
    with pytest.raises(AvatarError):
        AvatarSDK.initialize("")
    AvatarSDK.initialize("demo", Configuration(environment=Environment.local(port=server.port)))
    avatar = await AvatarManager(cache_dir=tmp_path).load("tiny")
    with AvatarView(HeadlessSurface(32, 32), avatar) as v:
        with pytest.raises(AvatarError) as info:
            v.controller.send(b"\x00\x00")
        assert info.value.code is AvatarErrorCode.INVALID_STATE
        with pytest.raises(AvatarError) as info:
            v.controller.yield_audio_data(b"\x00\x00")
        assert info.value.code is AvatarErrorCode.INVALID_STATE
        AvatarSDK.session_token = "not-a-token"
        with pytest.raises(AvatarError) as info:
            await v.controller.start()
        assert info.value.code is AvatarErrorCode.SESSION_TOKEN_INVALID
        assert v.controller.connection_state is ConnectionState.FAILED
        # A token that expires within 3 s. (With 1 s, int(time.time()) + 1 can already be past when
        # the service of a loaded machine checks it.) Its expireAt is at most int(now) + 3: wait past it.
        AvatarSDK.session_token = await token(server, seconds=3)
        await asyncio.sleep(int(time.time()) + 3.2 - time.time())
        with pytest.raises(AvatarError) as info:
            await v.controller.start()
        assert info.value.code is AvatarErrorCode.SESSION_TOKEN_EXPIRED
    AvatarSDK.cleanup()


@pytest.mark.asyncio
async def test_an_app_id_the_service_does_not_know_is_app_id_unrecognized(
    server: BackgroundServer, tmp_path: pathlib.Path
) -> None:
    AvatarSDK.initialize("demo", Configuration(environment=Environment.local(port=server.port)))
    avatar = await AvatarManager(cache_dir=tmp_path).load("tiny")
    good = await token(server)  # a valid token, of the app "demo"
    # The service is configured with the apps it serves; "nosuchapp" is not one of them.
    AvatarSDK.initialize("nosuchapp", Configuration(environment=Environment.local(port=server.port)))
    AvatarSDK.session_token = good
    with AvatarView(HeadlessSurface(32, 32), avatar) as v:
        failures: list[AvatarError | None] = []
        v.controller.on_connection_state = lambda s, e: failures.append(e) if s is ConnectionState.FAILED else None
        with pytest.raises(AvatarError) as info:
            await v.controller.start()
        assert info.value.code is AvatarErrorCode.APP_ID_UNRECOGNIZED
        assert "nosuchapp" in info.value.message
        assert v.controller.connection_state is ConnectionState.FAILED and failures == [info.value]
        # The right app id with the same token connects.
        AvatarSDK.initialize("demo", Configuration(environment=Environment.local(port=server.port)))
        await v.controller.start()
        assert v.controller.connection_state is ConnectionState.CONNECTED
        await v.controller.close()
    AvatarSDK.cleanup()


@pytest.mark.asyncio
async def test_server_killed_then_back_the_controller_reconnects_by_itself(
    bundles: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    first = start_service(config(), avatar_roots=[bundles])
    port = first.port
    AvatarSDK.initialize("demo", Configuration(environment=Environment.local(port=port)))
    AvatarSDK.session_token = await token(first)
    avatar = await AvatarManager(cache_dir=tmp_path).load("tiny")
    with AvatarView(HeadlessSurface(32, 32), avatar) as v:
        c = v.controller
        events: list[tuple[str, object]] = []
        c.on_connection_state = lambda s, e: events.append(("connection", s))
        c.on_conversation_state = lambda s, r: events.append(("conversation", r))
        await c.start()
        pcm = speech_like(3.0)
        cut = c.send(pcm[:32000])
        await asyncio.sleep(0.3)
        await asyncio.get_running_loop().run_in_executor(None, first.stop)  # close code 1001
        await wait_until(lambda: ("conversation", StateReason.FALLBACK) in events)
        # Audio-only fallback: the audio goes on playing while the face returns to idle.
        assert c.conversation_state is ConversationState.PLAYING
        assert c.connection_state is not ConnectionState.CONNECTED
        now = c.clock()
        assert c.audio_between(now, now + 0.3).any()
        # The rest of the cut utterance is accepted (and plays without motion) while reconnecting.
        assert c.send(pcm[32000:36000]) == cut
        # The service comes back (same secret: the token is still good): no start() needed.
        with start_service(config(), avatar_roots=[bundles], port=port):
            await wait_until(lambda: c.connection_state is ConnectionState.CONNECTED)
            assert c.send(pcm[36000:40000], end=True) == cut
            assert not len(c.playback.current.timeline) or c.playback.current.timeline.end_time < now + 0.1
            # The cut conversation ends when its audio has played out; the service said why it
            # closed (ServerError 503, then 1001), so the end reports serverError, not playbackEnd.
            await wait_until(lambda: c.conversation_state is ConversationState.IDLE)
            assert [r for kind, r in events if kind == "conversation"] == [
                StateReason.STARTED,
                StateReason.FALLBACK,
                StateReason.SERVER_ERROR,
            ]
            # The next conversation is driven again.
            new = c.send(pcm[40000:56000], end=True)
            assert new != cut
            conv = c.playback.current
            await wait_until(lambda: conv is not None and conv.motion_ended)
            assert len(conv.timeline) == 13  # 0.5 s at 25 fps
            await wait_until(lambda: c.conversation_state is ConversationState.IDLE)
            assert [r for kind, r in events if kind == "conversation"][-2:] == [
                StateReason.STARTED,
                StateReason.PLAYBACK_END,
            ]
            await c.close()
        states = [e[1] for e in events if e[0] == "connection"]
        assert ConnectionState.CONNECTING in states[states.index(ConnectionState.CONNECTED) + 1 :]
        assert ConnectionState.FAILED not in states
    AvatarSDK.cleanup()


@pytest.mark.asyncio
async def test_server_gone_fails_after_bounded_retries_then_start_again(
    bundles: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    first = start_service(config(), avatar_roots=[bundles])
    port = first.port
    AvatarSDK.initialize("demo", Configuration(environment=Environment.local(port=port)))
    AvatarSDK.session_token = await token(first)
    avatar = await AvatarManager(cache_dir=tmp_path).load("tiny")
    with AvatarView(HeadlessSurface(32, 32), avatar) as v:
        c = v.controller
        c.max_reconnects = 2
        attempts: list[AvatarError | None] = []
        c.on_connection_state = lambda s, e: attempts.append(e) if s is ConnectionState.CONNECTING else None
        await c.start()
        c.send(speech_like(1.0))
        await asyncio.sleep(0.2)
        await asyncio.get_running_loop().run_in_executor(None, first.stop)
        await wait_until(lambda: c.connection_state is ConnectionState.FAILED)
        # The initial connect, then two reconnects, each saying why: no endless loop.
        assert len(attempts) == 3
        assert attempts[1] is not None and attempts[2] is not None
        assert attempts[2].code is AvatarErrorCode.WEBSOCKET_ERROR  # nobody listens on the port
        with start_service(config(), avatar_roots=[bundles], port=port):
            await c.start()
            assert c.connection_state is ConnectionState.CONNECTED
            c.send(speech_like(0.5), end=True)
            conv = c.playback.current
            await wait_until(lambda: conv is not None and conv.motion_ended)
            await c.close()
    AvatarSDK.cleanup()


def drop_connections(server: BackgroundServer) -> int:
    """Cut the server's end of every WebSocket without a close frame, as a dying process does (1006)."""
    ingress = server._app[SERVICE_KEY].ingress

    async def cut() -> int:
        transports = [conn._request.transport for conn in list(ingress.connections)]
        for transport in transports:
            assert transport is not None
            transport.abort()
        return len(transports)

    return asyncio.run_coroutine_threadsafe(cut(), server._loop).result(timeout=10)


@pytest.mark.asyncio
async def test_connection_lost_without_close_frame_reconnects_but_a_refused_token_does_not_loop(
    server: BackgroundServer, view: AvatarView
) -> None:
    c = view.controller
    states: list[tuple[ConnectionState, AvatarError | None]] = []
    reasons: list[StateReason] = []
    c.on_connection_state = lambda s, e: states.append((s, e))
    c.on_conversation_state = lambda s, r: reasons.append(r)
    await c.start()
    first_connection = c.connection_id
    pcm = speech_like(2.0)
    cut = c.send(pcm[:16000])
    conv = c.playback.current
    await wait_until(lambda: conv is not None and len(conv.timeline) > 0)  # mid-conversation
    assert drop_connections(server) == 1
    # 1006: the face falls back to idle, the audio plays on, and the controller connects again by itself.
    await wait_until(lambda: StateReason.FALLBACK in reasons)
    await wait_until(lambda: c.connection_state is ConnectionState.CONNECTED and c.connection_id is not None)
    assert c.connection_id != first_connection
    lost = [e for s, e in states if s is ConnectionState.CONNECTING][-1]
    assert lost is not None and lost.code is AvatarErrorCode.WEBSOCKET_CLOSED_ABNORMALLY
    assert "1006" in lost.message
    assert c.send(pcm[16000:20000], end=True) == cut  # the rest of the cut utterance: audio only
    # Its end tells why it played without motion: the network (no close frame, nothing said).
    await wait_until(lambda: c.conversation_state is ConversationState.IDLE)
    assert reasons == [StateReason.STARTED, StateReason.FALLBACK, StateReason.NETWORK_ERROR]
    assert StateReason.FALLBACK.value == "fallbackMode" and StateReason.FALLBACK_MODE is StateReason.FALLBACK
    new = c.send(pcm[20000:28000], end=True)
    assert new != cut
    conv = c.playback.current
    await wait_until(lambda: conv is not None and conv.motion_ended)
    assert conv is not None and len(conv.timeline) == 13  # 0.5 s at 25 fps on the new connection
    await wait_until(lambda: c.conversation_state is ConversationState.IDLE)
    assert reasons[3:] == [StateReason.STARTED, StateReason.PLAYBACK_END]
    assert [s for s, _ in states].count(ConnectionState.FAILED) == 0

    # The same loss with a token the service refuses (4010): one attempt, then failed, no loop.
    AvatarSDK.session_token = "not-a-token"
    states.clear()
    assert drop_connections(server) == 1
    await wait_until(lambda: c.connection_state is ConnectionState.FAILED)
    assert [s for s, _ in states] == [ConnectionState.CONNECTING, ConnectionState.FAILED]
    failed = states[-1][1]
    assert failed is not None and failed.code is AvatarErrorCode.SESSION_TOKEN_INVALID
    await asyncio.sleep(0.3)
    assert len(states) == 2
    # The app fixes the cause and starts again.
    AvatarSDK.session_token = await token(server)
    await c.start()
    assert c.connection_state is ConnectionState.CONNECTED


@pytest.mark.asyncio
async def test_connection_lost_while_paused_tells_on_resume_and_at_the_end(
    server: BackgroundServer, view: AvatarView
) -> None:
    c = view.controller
    reported: list[tuple[ConversationState, StateReason]] = []
    c.on_conversation_state = lambda s, r: reported.append((s, r))
    await c.start()
    c.send(speech_like(1.0), end=True)
    conv = c.playback.current
    await wait_until(lambda: conv is not None and len(conv.timeline) > 0)
    c.pause()
    assert drop_connections(server) == 1
    await wait_until(lambda: conv is not None and conv.audio_only)
    await wait_until(lambda: c.connection_state is ConnectionState.CONNECTED and c.connection_id is not None)
    # Paused, the state does not change: nothing is reported until the app resumes.
    assert reported == [
        (ConversationState.PLAYING, StateReason.STARTED),
        (ConversationState.PAUSED, StateReason.USER_ACTION),
    ]
    c.resume()
    await wait_until(lambda: c.conversation_state is ConversationState.IDLE)
    assert reported[2:] == [
        (ConversationState.PLAYING, StateReason.USER_ACTION),
        (ConversationState.IDLE, StateReason.NETWORK_ERROR),
    ]


@pytest.mark.asyncio
async def test_request_failed_by_the_service_plays_on_audio_only_and_ends_with_server_error(
    bundles: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # The service aborts a request past 1 s of 16 kHz audio (ServerError 413 with its req_id).
    async with limited_view(bundles, tmp_path, request_audio_bytes=32000) as v:
        c = v.controller
        reported: list[tuple[ConversationState, StateReason]] = []
        errors: list[AvatarError] = []
        c.on_conversation_state = lambda s, r: reported.append((s, r))
        c.on_error = errors.append
        await c.start()
        pcm = speech_like(2.0)
        utterance = c.send(pcm[:8000])
        conv = c.playback.current
        await wait_until(lambda: conv is not None and len(conv.timeline) > 0)  # driven so far
        assert c.send(pcm[8000:24000]) == utterance  # 1.5 s in all: over the limit
        await wait_until(lambda: (ConversationState.PLAYING, StateReason.FALLBACK) in reported)
        assert errors and errors[0].code is AvatarErrorCode.SERVER_ERROR and "413" in errors[0].message
        assert conv is not None and conv.audio_only and conv.layer.end is not None  # the face fades to idle
        assert c.connection_state is ConnectionState.CONNECTED  # the session goes on
        # The rest of the utterance plays without motion; the service is not sent audio it refused.
        assert c.send(pcm[24000:], end=True) == utterance
        await wait_until(lambda: c.conversation_state is ConversationState.IDLE)
        assert conv.duration == pytest.approx(2.0)
        assert reported == [
            (ConversationState.PLAYING, StateReason.STARTED),
            (ConversationState.PLAYING, StateReason.FALLBACK),
            (ConversationState.IDLE, StateReason.SERVER_ERROR),
        ]
        assert len(errors) == 1
        # The next conversation is driven in full and ends as usual.
        c.send(pcm[:8000], end=True)
        following = c.playback.current
        await wait_until(lambda: following is not None and following.motion_ended)
        assert following is not None and len(following.timeline) == 13
        await wait_until(lambda: c.conversation_state is ConversationState.IDLE)
        assert reported[3:] == [
            (ConversationState.PLAYING, StateReason.STARTED),
            (ConversationState.IDLE, StateReason.PLAYBACK_END),
        ]
        await c.close()
    AvatarSDK.cleanup()


@pytest.mark.asyncio
async def test_initialize_with_another_rate_keeps_a_live_connection_at_the_rate_it_negotiated(
    server: BackgroundServer, view: AvatarView
) -> None:
    c = view.controller
    await c.start()
    assert c.sample_rate == 16000
    environment = Environment.local(port=server.port)
    AvatarSDK.initialize("demo", Configuration(environment=environment, audio_format=AudioFormat(sample_rate=24000)))
    assert AvatarSDK.session_token is not None  # initialize keeps the token
    # The live connection keeps 16 kHz: send() with the old rate goes on working, motion and audio agree.
    assert c.sample_rate == 16000 and c.connection_state is ConnectionState.CONNECTED
    c.send(speech_like(1.0, 16000), end=True)
    conv = c.playback.current
    await wait_until(lambda: conv is not None and conv.motion_ended)
    assert conv is not None and conv.sample_rate == 16000 and conv.duration == 1.0
    assert len(conv.timeline) == 25  # the service heard 1 s: it still takes this connection's audio at 16 kHz
    # A new connection negotiates the new rate.
    with AvatarView(HeadlessSurface(32, 32), view.avatar) as other:
        assert other.controller.sample_rate == 24000
        await other.controller.start()
        other.controller.send(speech_like(1.0, 24000), end=True)
        fresh = other.controller.playback.current
        await wait_until(lambda: fresh is not None and fresh.motion_ended)
        assert fresh is not None and fresh.sample_rate == 24000 and fresh.duration == 1.0
        assert len(fresh.timeline) == 25
        await other.controller.close()
    # The first controller takes the new rate when it connects again.
    await wait_until(lambda: c.conversation_state is ConversationState.IDLE)
    await c.close()
    assert c.sample_rate == 24000
    await c.start()
    c.send(speech_like(0.5, 24000), end=True)
    again = c.playback.current
    await wait_until(lambda: again is not None and again.motion_ended)
    assert again is not None and again.sample_rate == 24000 and len(again.timeline) == 13
    rate_of_audio = [frame.sample_rate async for frame in _first_av_frames(c, 2)]
    assert rate_of_audio == [24000, 24000]


async def _first_av_frames(c: AvatarController, n: int) -> AsyncIterator[AVFrame]:
    frames = c.av_frames(25.0, realtime=False)
    for _ in range(n):
        yield await anext(frames)
    await frames.aclose()


@pytest.mark.asyncio
async def test_host_mode_plays_the_official_recording(official_recording, official_messages, tmp_path, bundles) -> None:
    AvatarSDK.initialize("demo", Configuration(driving_service_mode="backend"))
    assert AvatarSDK.configuration.mode is DrivingServiceMode.HOST
    avatar = AvatarManager(cache_dir=tmp_path).derive(bundles / "tiny")
    with AvatarView(HeadlessSurface(32, 32), avatar) as v:
        c = v.controller
        audio = base64.b64decode(str(official_recording["audio_base64"]))
        with pytest.raises(AvatarError):
            await c.start()  # SDK-mode call in Host mode
        conv_id = c.yield_audio_data(audio, end=True)
        c.yield_frames_data(official_messages, "some-other-conversation")  # dropped
        conv = c.playback.current
        assert conv is not None and len(conv.timeline) == 0
        c.yield_(frames=official_messages, conversation_id=conv_id)
        assert len(conv.timeline) == 507
        assert conv.duration == pytest.approx(20.3, abs=0.05)
        assert conv.motion_ended
        jaw = conv.timeline.values[:, c.channels.index("jawOpen")]
        head = conv.timeline.values[:, c.channels.index("headPitch")]
        assert jaw.max() > 0.2 and jaw.std() > 0.03 and head.std() > 0.005
        # The lip shapes the service sends in its FLAME expression reach the mouth, not just the jaw.
        for name in ("mouthFunnel", "mouthPucker", "viseme_PP", "viseme_O", "mouthSmileLeft"):
            shape = conv.timeline.values[:, c.channels.index(name)]
            assert shape.std() > 0.02 and abs(np.corrcoef(shape, jaw)[0, 1]) < 0.9, name
        assert parse_message(official_messages[0]).server_response_animation.req_id != conv_id
    AvatarSDK.cleanup()


def test_motion_plays_at_the_frame_rate_its_stream_carries(bundles: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from avatarkit import codec
    from avatarkit.protocol import Message, MessageType

    AvatarSDK.initialize("demo", Configuration(driving_service_mode=DrivingServiceMode.HOST))
    avatar = AvatarManager(cache_dir=tmp_path).derive(bundles / "tiny")
    # One second of motion at 50 fps, jawOpen rising from 0 to 1, in two AK1 payloads.
    schema = codec.Schema(codec.canonical_schema().channels, 50, 1)
    encoder = codec.StreamEncoder(schema)
    jaw = list(schema.names).index("jawOpen")
    values = np.zeros((50, len(schema.names)), np.float32)
    values[:, jaw] = np.linspace(0.0, 1.0, 50)
    envelopes = []
    for part, end in ((values[:20], False), (values[20:], True)):
        message = Message(type=MessageType.MESSAGE_SERVER_RESPONSE_ANIMATION)
        message.server_response_animation.animation = encoder.encode(part)
        message.server_response_animation.end = end
        envelopes.append(message.SerializeToString())
    with AvatarView(HeadlessSurface(32, 32), avatar) as v:
        c = v.controller
        conv_id = c.yield_audio_data(speech_like(1.0), end=True)
        c.yield_frames_data(envelopes, conv_id)
        conv = c.playback.current
        assert conv is not None and conv.start is not None and conv.motion_ended
        assert conv.timeline.fps == 50.0 and len(conv.timeline) == 50
        # Frame k is shown at k / 50 s of the audio: the motion spans the audio's second, not two.
        assert conv.timeline.end_time == pytest.approx(conv.start + 49 / 50)
        for k in (0, 10, 25, 48):
            shown = conv.timeline.sample(conv.start + k / 50)
            assert shown is not None and shown[c.channels.index("jawOpen")] == pytest.approx(k / 49, abs=1e-3)
        assert conv.layer.end == pytest.approx(conv.start + conv.duration)  # fades out as the audio ends
        assert conv.layer.fade_in == pytest.approx(5 / 50)
    AvatarSDK.cleanup()


def test_host_mode_server_error_plays_on_audio_only(bundles: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """A ServerError relayed by the backend: on_error, fallbackMode, the audio plays out, serverError."""
    from avatarkit import codec
    from avatarkit.protocol import Message, MessageType

    AvatarSDK.initialize("demo", Configuration(driving_service_mode=DrivingServiceMode.HOST))
    avatar = AvatarManager(cache_dir=tmp_path).derive(bundles / "tiny")
    schema = codec.canonical_schema()
    encoder = codec.StreamEncoder(schema)
    jaw = list(schema.names).index("jawOpen")
    values = np.zeros((5, len(schema.names)), np.float32)
    values[:, jaw] = 0.8
    first = Message(type=MessageType.MESSAGE_SERVER_RESPONSE_ANIMATION)
    first.server_response_animation.animation = encoder.encode(values)
    failure = Message(type=MessageType.MESSAGE_SERVER_ERROR)
    failure.server_error.code = 500
    failure.server_error.message = "inference failed"
    late = Message(type=MessageType.MESSAGE_SERVER_RESPONSE_ANIMATION)
    late.server_response_animation.animation = encoder.encode(values)
    late.server_response_animation.end = True
    with AvatarView(HeadlessSurface(32, 32), avatar) as v:
        c = v.controller
        states: list[tuple[ConversationState, StateReason | None]] = []
        errors: list[AvatarError] = []
        c.on_conversation_state = lambda s, r: states.append((s, r))
        c.on_error = errors.append
        conv_id = c.yield_audio_data(speech_like(0.3), end=True)
        c.yield_frames_data(first.SerializeToString(), conv_id)
        conv = c.playback.current
        assert conv is not None and len(conv.timeline) == 5
        c.yield_frames_data([failure.SerializeToString(), late.SerializeToString()], conv_id)
        assert [e.code for e in errors] == [AvatarErrorCode.SERVER_ERROR] and "inference failed" in errors[0].message
        assert conv.audio_only and not conv.motion_ended  # the late frames were dropped
        assert c.conversation_state is ConversationState.PLAYING  # the audio plays on
        c.playback.pace.origin -= 5.0  # let the clock run past the audio: the conversation ends
        c.sample(c.clock())
    assert states[0] == (ConversationState.PLAYING, StateReason.STARTED)
    assert (ConversationState.PLAYING, StateReason.FALLBACK_MODE) in states
    assert states[-1] == (ConversationState.IDLE, StateReason.SERVER_ERROR)
    AvatarSDK.cleanup()


@pytest.mark.asyncio
async def test_session_time_limit_reconnects_by_itself(bundles: pathlib.Path, tmp_path: pathlib.Path) -> None:
    async with limited_view(bundles, tmp_path, session_seconds=0.6) as v:
        c = v.controller
        states: list[ConnectionState] = []
        c.on_connection_state = lambda s, e: states.append(s)
        await c.start()
        first = c.connection_id
        # The service ends the session after 0.6 s with close code 4002; the controller reconnects.
        await wait_until(lambda: c.connection_id != first and c.connection_state is ConnectionState.CONNECTED)
        assert ConnectionState.CONNECTING in states[2:]
        assert ConnectionState.FAILED not in states
        c.send(speech_like(0.4), end=True)  # and it still works
        conv = c.playback.current
        await wait_until(lambda: conv is not None and conv.motion_ended)
        await c.close()
    AvatarSDK.cleanup()


@pytest.mark.asyncio
async def test_host_mode_with_frames_from_the_official_client(server: BackgroundServer, tmp_path: pathlib.Path) -> None:
    spatialreal = pytest.importorskip("spatialreal")
    from datetime import datetime, timedelta, timezone

    frames: list[bytes] = []
    done = asyncio.Event()

    def transport(raw: bytes, is_last: bool) -> None:
        frames.append(raw)
        if is_last:
            done.set()

    # The app's backend: the official server SDK against our service.
    session = spatialreal.new_avatar_session(
        api_key=API_KEY,
        app_id="demo",
        avatar_id="tiny",
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
        console_endpoint_url=server.url,
        ingress_endpoint_url=server.url + "/v2/driveningress",
        sample_rate=16000,
        transport_frames=transport,
    )
    await session.init()
    await session.start()
    pcm = decode_audio(DEMO_SPEECH, 16000)[:32000]
    await session.send_audio(pcm.tobytes(), end=True)
    await asyncio.wait_for(done.wait(), 20)
    await session.close()

    # The app's client: Host mode, audio and the frames exactly as the backend received them.
    AvatarSDK.initialize("demo", Configuration(driving_service_mode=DrivingServiceMode.HOST))
    avatar = AvatarManager(cache_dir=tmp_path).derive(server_bundle(server))
    with AvatarView(HeadlessSurface(32, 32), avatar) as v:
        c = v.controller
        conv_id = c.yield_audio_data(pcm, end=True)
        c.yield_frames_data(frames, conv_id)
        conv = c.playback.current
        assert conv is not None and conv.motion_ended
        assert len(conv.timeline) == 50  # 2 s at 25 fps
        assert conv.timeline.values[:, c.channels.index("jawOpen")].max() > 0.2
    AvatarSDK.cleanup()


def server_bundle(server: BackgroundServer) -> pathlib.Path:
    from avatarkit.server.app import STORE_KEY

    directory = server._app[STORE_KEY].directory("tiny")
    assert directory is not None
    return directory


@pytest.mark.asyncio
async def test_send_queues_in_order_and_drain_waits_for_the_socket(view: AvatarView) -> None:
    c = view.controller
    await c.drain()  # nothing to wait for before start
    await c.start()
    pcm = speech_like(2.0)
    for i in range(0, len(pcm), 320):  # 100 chunks of 20 ms, at once: faster than any network
        conv = c.send(pcm[i : i + 320], end=i + 320 >= len(pcm))
    transport = c._transport
    assert transport is not None
    queued = transport.pending_bytes  # type: ignore[attr-defined]
    assert queued > len(pcm) * 2 * 0.5  # most of it is still queued: send() never blocked
    await c.drain()
    assert transport.pending_bytes == 0  # type: ignore[attr-defined]
    # In order: the service got every chunk of the conversation and answered with all its motion.
    await wait_until(lambda: c.conversation(conv) is not None and c.conversation(conv).motion_ended)  # type: ignore[union-attr]
    motion = c.conversation_motion(conv)
    assert motion is not None and len(motion) == 50
