"""Transports alone, reporting to a fake listener: the in-process engine, message dispatch, close codes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from speech_audio import speech_like

from avatarkit import codec
from avatarkit.codec import CANONICAL_NAMES
from avatarkit.engine import EngineSession
from avatarkit.errors import AvatarError, AvatarErrorCode
from avatarkit.events import ConnectionState, StateReason
from avatarkit.protocol import Message, MessageType
from avatarkit.protocol.codes import (
    CloseCode,
    close_error,
    handshake_error,
    is_retryable_close,
    server_error,
    service_said_why,
)
from avatarkit.transport import HostRelay, LocalTransport, MessageDispatcher, TransportListener

RATE = 16000


class Recorder:
    """A TransportListener that writes down what it is told."""

    def __init__(self) -> None:
        self.motion: list[tuple[str, np.ndarray, np.ndarray, list[str], float, bool]] = []
        self.failed: list[tuple[str, StateReason]] = []
        self.errors: list[AvatarError] = []
        self.states: list[tuple[ConnectionState, AvatarError | None]] = []
        self.lost: list[StateReason] = []

    def listener(self) -> TransportListener:
        return TransportListener(
            motion_received=lambda c, v, i, n, f, e: self.motion.append((c, v, i, list(n), f, e)),
            request_failed=lambda c, r: self.failed.append((c, r)),
            error_reported=self.errors.append,
            connection_changed=lambda s, e: self.states.append((s, e)),
            connection_lost=self.lost.append,
        )

    def frames(self, conversation_id: str) -> tuple[np.ndarray, np.ndarray]:
        parts = [(v, i) for c, v, i, *_ in self.motion if c == conversation_id]
        return np.concatenate([v for v, _ in parts]), np.concatenate([i for _, i in parts])


@pytest.mark.asyncio
async def test_local_transport_streams_the_engine_frames_as_they_complete() -> None:
    rec = Recorder()
    transport = LocalTransport(rec.listener(), RATE)
    with pytest.raises(AvatarError) as info:
        transport.send_audio("early", np.zeros(640, np.int16), False)
    assert info.value.code is AvatarErrorCode.INVALID_STATE
    await transport.open(5.0)
    assert transport.lookahead == pytest.approx(0.08)
    assert transport.connection_id is not None and transport.connection_id.startswith("local_")
    pcm = speech_like(1.3, sample_rate=RATE)
    chunk = 640  # 40 ms
    for i in range(0, len(pcm), chunk):
        transport.send_audio("c1", pcm[i : i + chunk], i + chunk >= len(pcm))
        if i == 10 * chunk:
            # 11 chunks in (440 ms): every frame whose audio and 80 ms look-ahead are in has come.
            values, indices = rec.frames("c1")
            assert len(values) == math.floor((0.44 - 0.08) / 0.04 + 1e-9)
    values, indices = rec.frames("c1")
    assert len(values) == math.ceil(len(pcm) / RATE / 0.04)
    assert indices.tolist() == list(range(len(values)))
    assert rec.motion[-1][5] is True and sum(m[5] for m in rec.motion) == 1
    assert all(m[3] == list(CANONICAL_NAMES) and m[4] == 25.0 for m in rec.motion)
    # The same as the engine run in one go: streaming changes nothing.
    whole = EngineSession(RATE)
    expected = np.concatenate([whole.push(pcm), whole.flush()])
    np.testing.assert_allclose(values, expected, atol=1e-6)


@pytest.mark.asyncio
async def test_local_transport_interrupt_and_a_new_conversation_start_afresh() -> None:
    rec = Recorder()
    transport = LocalTransport(rec.listener(), RATE, low_latency=True)
    await transport.open(5.0)
    assert transport.lookahead == 0.0
    pcm = speech_like(0.8, sample_rate=RATE)
    transport.send_audio("a", pcm[:6400], False)
    got_a = len(rec.frames("a")[0])
    assert got_a == 10  # low latency: each 40 ms frame as soon as its audio is in
    transport.interrupt("a")
    transport.send_audio("b", pcm, True)
    values, indices = rec.frames("b")
    assert indices[0] == 0 and len(values) == 20
    assert len(rec.frames("a")[0]) == got_a  # nothing more for the interrupted one
    await transport.close()
    assert transport.connection_id is None


def test_local_transport_refuses_a_rate_the_engine_does_not_take() -> None:
    with pytest.raises(AvatarError) as info:
        LocalTransport(Recorder().listener(), 11025)
    assert info.value.code is AvatarErrorCode.INVALID_ARGUMENT


def animation_message(req_id: str, payload: bytes, end: bool = False) -> Message:
    message = Message(type=MessageType.MESSAGE_SERVER_RESPONSE_ANIMATION)
    message.server_response_animation.req_id = req_id
    message.server_response_animation.animation = payload
    message.server_response_animation.end = end
    return message


def test_dispatcher_decodes_ak1_and_flame_per_conversation() -> None:
    rec = Recorder()
    dispatcher = MessageDispatcher(rec.listener(), lambda c: c != "ignored")
    values = speech_like_values(30)
    encoder = codec.StreamEncoder(codec.canonical_schema())
    first, second = encoder.encode(values[:10]), encoder.encode(values[10:])
    assert dispatcher.dispatch(animation_message("ak", first)) is None
    dispatcher.dispatch(animation_message("ak", second, end=True))
    got, indices = rec.frames("ak")
    assert indices.tolist() == list(range(30))
    np.testing.assert_allclose(got, values, atol=0.02)
    assert rec.motion[-1][5] is True
    # FlameAnimation: numbered in arrival order, 25 fps, retargeted to the canonical channels.
    flame = np.zeros((4, 120), np.float32)
    flame[:, 9] = 0.3  # jaw pose
    dispatcher.dispatch(animation_message("fl", codec.encode_flame(flame)))
    dispatcher.dispatch(animation_message("fl", codec.encode_flame(flame)))
    fl_values, fl_indices = rec.frames("fl")
    assert fl_indices.tolist() == list(range(8))
    assert fl_values[:, CANONICAL_NAMES.index("jawOpen")].min() > 0.1
    # Unwanted conversations are dropped; garbage is reported, not raised.
    before = len(rec.motion)
    dispatcher.dispatch(animation_message("ignored", first))
    dispatcher.dispatch(animation_message("x", b"\xff\xfe garbage"))
    assert len(rec.motion) == before
    assert rec.errors and rec.errors[-1].code is AvatarErrorCode.SERVER_ERROR


def speech_like_values(frames: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    values = np.zeros((frames, len(CANONICAL_NAMES)), np.float32)
    values[:, CANONICAL_NAMES.index("jawOpen")] = rng.uniform(0, 1, frames)
    return values


def test_dispatcher_server_errors_fail_the_request_or_the_session() -> None:
    rec = Recorder()
    dispatcher = MessageDispatcher(rec.listener(), lambda c: True)
    failure = Message(type=MessageType.MESSAGE_SERVER_ERROR)
    failure.server_error.req_id = "r1"
    failure.server_error.code = 408
    failure.server_error.message = "audio stalled"
    assert dispatcher.dispatch(failure) is None
    assert rec.failed == [("r1", StateReason.SERVER_ERROR)]
    session = Message(type=MessageType.MESSAGE_SERVER_ERROR)
    session.server_error.code = 4002
    session.server_error.message = "session time limit"
    fatal = dispatcher.dispatch(session)
    assert fatal is not None and fatal.code is AvatarErrorCode.SESSION_TIMEOUT
    assert [e.code for e in rec.errors] == [AvatarErrorCode.SERVER_ERROR, AvatarErrorCode.SESSION_TIMEOUT]


def test_host_relay_parses_what_the_backend_relays() -> None:
    rec = Recorder()
    relay = HostRelay(rec.listener(), lambda c: True)
    encoder = codec.StreamEncoder(codec.canonical_schema())
    payload = animation_message("server-side-id", encoder.encode(speech_like_values(5))).SerializeToString()
    relay.feed([payload, b"not a message"], "conv-1")
    assert [m[0] for m in rec.motion] == ["conv-1"]  # the app's conversation id wins
    assert rec.errors[-1].code is AvatarErrorCode.INVALID_ARGUMENT


def test_close_codes_classify_the_same_on_both_ends() -> None:
    assert is_retryable_close(None) and is_retryable_close(CloseCode.SESSION_TIMEOUT) and is_retryable_close(4503)
    assert not is_retryable_close(CloseCode.NORMAL) and not is_retryable_close(CloseCode.AUTH_FAILED)
    assert not service_said_why(None, True) and not service_said_why(1006, True)
    assert not service_said_why(1001, False) and service_said_why(1001, True) and service_said_why(4001, False)
    assert close_error(4001, "no credits").code is AvatarErrorCode.INSUFFICIENT_BALANCE
    assert close_error(1011, "boom").code is AvatarErrorCode.WEBSOCKET_CLOSED_ABNORMALLY
    assert server_error(4010, "invalid session token: expired").code is AvatarErrorCode.SESSION_TOKEN_EXPIRED
    assert server_error(4010, "app id unrecognized").code is AvatarErrorCode.APP_ID_UNRECOGNIZED
    assert server_error(404, "avatar not found: 'x'").code is AvatarErrorCode.AVATAR_ID_UNRECOGNIZED
    assert handshake_error(401, "").code is AvatarErrorCode.SESSION_TOKEN_EXPIRED
    assert handshake_error(502, "").code is AvatarErrorCode.WEBSOCKET_ERROR


def test_the_service_uses_the_shared_codes() -> None:
    from avatarkit.server import ingress

    assert ingress.CloseCode is CloseCode
