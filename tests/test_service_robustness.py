"""Bad input and limits on the driving service: each gets its exact error and close code, and a
healthy session on the same server is unaffected. Raw aiohttp WebSockets send what no SDK would."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import math
import os
import pathlib
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import numpy as np
import pytest
from conftest import SERVICE_AVATAR
from speech_audio import ogg_opus, speech_like

from avatarkit import codec
from avatarkit.protocol import AudioFormat, EgressType, Message, MessageType, parse_message
from avatarkit.server import ingress
from avatarkit.server.app import BackgroundServer
from avatarkit.server.config import AppConfig, Limits, ServiceConfig
from avatarkit.server.service import SERVICE_KEY, start_service
from avatarkit.server.tokens import issue_token

spatialreal = pytest.importorskip("spatialreal")
from spatialreal import AvatarSDKError, AvatarSDKErrorCode  # noqa: E402

SECRET = b"robustness-secret-0123456789"
API_KEY = "ak_robust-demo"
AVATAR = SERVICE_AVATAR  # the id the shared `avatars` fixture serves
LIMITS = {
    "message_bytes": 64 * 1024,
    "request_audio_bytes": 256 * 1024,
    "queued_audio_bytes": 128 * 1024,
    "handshake_timeout_seconds": 5.0,
}
T = MessageType


def config(app_limits: dict[str, Any] | None = None, **service: Any) -> ServiceConfig:
    limits = Limits(**{**LIMITS, **(app_limits or {})})
    apps = {"demo": AppConfig("demo", API_KEY, limits=limits, credits_seconds=service.pop("credits", None))}
    return ServiceConfig(apps=apps, token_secret=SECRET, limits=limits, **service)


@pytest.fixture(scope="module")
def server(avatars: pathlib.Path) -> Iterator[BackgroundServer]:
    with start_service(config(), avatar_roots=[avatars]) as running:
        yield running


@contextlib.contextmanager
def own_server(avatars: pathlib.Path, app_limits: dict[str, Any] | None = None, **service: Any) -> Iterator[Any]:
    with start_service(config(app_limits, **service), avatar_roots=[avatars]) as running:
        yield running


def token(app_id: str = "demo", seconds: int = 600) -> str:
    return issue_token(SECRET, app_id, int(time.time()) + seconds)


def audio_message(req_id: str, audio: bytes, end: bool = False) -> Message:
    message = Message(type=T.MESSAGE_CLIENT_AUDIO_INPUT)
    message.client_audio_input.req_id = req_id
    message.client_audio_input.audio = audio
    message.client_audio_input.end = end
    return message


def configure_message(sample_rate: int = 16000, audio_format: int = 0, **fields: Any) -> Message:
    message = Message(type=T.MESSAGE_CLIENT_CONFIGURE_SESSION)
    cfg = message.client_configure_session
    cfg.sample_rate = sample_rate
    cfg.audio_format = audio_format  # type: ignore[assignment]
    for name, value in fields.items():
        if name == "livekit_egress":
            cfg.egress_type = EgressType.EGRESS_TYPE_LIVEKIT
            cfg.livekit_egress.url = value
        elif name == "agora_egress":
            cfg.egress_type = EgressType.EGRESS_TYPE_AGORA
            cfg.agora_egress.channel_name = value
        else:
            setattr(cfg, name, value)
    return message


class Raw:
    """A raw WebSocket client of the driving service."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http, self.ws = http, ws
        self.connection_id = ""

    async def send(self, message: Message) -> None:
        await self.ws.send_bytes(message.SerializeToString())

    async def configure(self, sample_rate: int = 16000, audio_format: int = 0) -> str:
        await self.send(configure_message(sample_rate, audio_format))
        reply = await self.next()
        assert reply.type == T.MESSAGE_SERVER_CONFIRM_SESSION, reply
        self.connection_id = reply.server_confirm_session.connection_id
        return self.connection_id

    async def next(self, timeout: float = 5.0) -> Message:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.BINARY, f"expected a message, got {msg.type} {msg.data} {msg.extra}"
        return parse_message(msg.data)

    async def expect_error(self, code: int, phrase: str, req_id: str = "") -> str:
        message = await self.next()
        assert message.type == T.MESSAGE_SERVER_ERROR, message
        error = message.server_error
        assert (error.code, error.req_id) == (code, req_id), error
        assert phrase in error.message, error.message
        return error.message

    async def expect_close(self, code: int) -> None:
        while True:
            msg = await self.ws.receive(timeout=5.0)
            if msg.type == aiohttp.WSMsgType.BINARY:
                raise AssertionError(f"expected close {code}, got {parse_message(msg.data)}")
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                break
        assert self.ws.close_code == code, (self.ws.close_code, msg.extra)

    async def request(self, req_id: str, audio: bytes, chunk: int = 3200) -> int:
        """Send a whole request and read its animation; returns the frame count."""
        for i in range(0, max(len(audio), 1), chunk):
            await self.send(audio_message(req_id, audio[i : i + chunk], end=i + chunk >= len(audio)))
        return await self.frames(req_id)

    async def frames(self, req_id: str, errors: list[Message] | None = None) -> int:
        """Read the request's animation up to its end; ServerErrors go to ``errors`` if given."""
        decoder, count = codec.StreamDecoder(), 0
        while True:
            message = await self.next()
            if errors is not None and message.type == T.MESSAGE_SERVER_ERROR:
                errors.append(message)
                continue
            assert message.type == T.MESSAGE_SERVER_RESPONSE_ANIMATION, message
            animation = message.server_response_animation
            assert animation.req_id == req_id
            count += len(decoder.decode(animation.animation).values)
            if animation.end:
                return count


@contextlib.asynccontextmanager
async def connect(
    server: Any,
    *,
    headers: dict[str, str] | None = None,
    query: str | None = None,
    avatar: str | None = AVATAR,
) -> AsyncIterator[Raw]:
    url = server.url.replace("http", "ws") + "/v2/driveningress/websocket"
    url += "?" + (f"id={avatar}" if avatar is not None else "") + (f"&{query}" if query else "")
    if headers is None and query is None:
        headers = {"X-App-ID": "demo", "X-Session-Key": token()}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers or {}, max_msg_size=0) as ws:
        yield Raw(http, ws)


def frames_for(audio: bytes, sample_rate: int = 16000) -> int:
    return math.ceil(len(audio) // 2 / (sample_rate / 25) - 1e-9)


SPEECH = speech_like(0.5, 16000, seed=11).tobytes()


@contextlib.asynccontextmanager
async def healthy(server: Any) -> AsyncIterator[None]:
    """A well-behaved session open across the test; it must still work afterwards."""
    async with connect(server) as raw:
        await raw.configure()
        assert await raw.request("before", SPEECH) == frames_for(SPEECH)
        yield
        assert await raw.request("after", SPEECH) == frames_for(SPEECH)


# --------------------------------------------------------------------------- the handshake


def _mismatch() -> bytes:
    message = Message(type=T.MESSAGE_CLIENT_CONFIGURE_SESSION)
    message.client_audio_input.req_id = "x"
    return message.SerializeToString()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("first", "phrase"),
    [
        ("text", "expected ClientConfigureSession message"),
        (b"\xff\xff\xff\xff", "failed to unmarshal initial message"),
        (audio_message("r1", b"\x00\x00").SerializeToString(), "got MESSAGE_CLIENT_AUDIO_INPUT"),
        (Message(type=T.MESSAGE_CLIENT_INTERRUPT).SerializeToString(), "got MESSAGE_CLIENT_INTERRUPT"),
        (b"", "got MESSAGE_UNSPECIFIED"),
        (_mismatch(), "expected ClientConfigureSession message"),
    ],
    ids=["text", "malformed", "audio-first", "interrupt-first", "empty", "type-payload-mismatch"],
)
async def test_handshake_violations(server: BackgroundServer, first: Any, phrase: str) -> None:
    async with healthy(server), connect(server) as raw:
        if isinstance(first, str):
            await raw.ws.send_str(first)
        else:
            await raw.ws.send_bytes(first)
        await raw.expect_error(400, phrase)
        await raw.expect_close(4000)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("message", "code", "phrase"),
    [
        (configure_message(0), 400, "unsupported sample rate 0"),
        (configure_message(11025), 400, "unsupported sample rate 11025"),
        (configure_message(96000), 400, "unsupported sample rate 96000"),
        (configure_message(-16000), 400, "unsupported sample rate -16000"),
        (configure_message(16000, 7), 400, "unsupported audio format 7"),
        (configure_message(16000, transport_compression=3), 400, "unsupported transport compression"),
        (configure_message(16000, livekit_egress="wss://lk.example"), 501, "LiveKit egress is not supported"),
        (configure_message(16000, agora_egress="room"), 501, "Agora egress is not supported"),
    ],
    ids=["rate-0", "rate-11025", "rate-96000", "rate-negative", "format", "compression", "livekit", "agora"],
)
async def test_bad_configuration(server: BackgroundServer, message: Message, code: int, phrase: str) -> None:
    async with healthy(server), connect(server) as raw:
        await raw.send(message)
        text = await raw.expect_error(code, phrase)
        if "egress" in phrase:
            assert "egress client is not configured on server" in text  # older SDKs: egressUnavailable
        await raw.expect_close(4000)


@pytest.mark.asyncio
@pytest.mark.parametrize(("choice", "lookahead_ms"), [(None, 80), ("standard", 80), ("low", 0)])
async def test_session_chooses_its_look_ahead(server: BackgroundServer, choice: str | None, lookahead_ms: int) -> None:
    async with healthy(server), connect(server) as raw:
        message = configure_message(16000)
        if choice is not None:
            message.client_configure_session.extra_params["lookahead"] = choice
        await raw.send(message)
        reply = await raw.next()
        assert f"lookahead_ms={lookahead_ms}" in reply.server_confirm_session.capabilities
        # 400 ms of audio in 40 ms chunks: every frame whose look-ahead audio is in has come back.
        decoder, got = codec.StreamDecoder(), 0
        for i in range(10):
            await raw.send(audio_message("r1", SPEECH[i * 1280 : (i + 1) * 1280]))
        while got < 10 - lookahead_ms // 40:
            message = await raw.next()
            assert message.type == T.MESSAGE_SERVER_RESPONSE_ANIMATION, message
            got += len(decoder.decode(message.server_response_animation.animation).values)
        assert got == 10 - lookahead_ms // 40
        with pytest.raises(asyncio.TimeoutError):
            await raw.next(timeout=0.3)  # no frame before its audio


@pytest.mark.asyncio
async def test_unknown_look_ahead_is_refused(server: BackgroundServer) -> None:
    async with healthy(server), connect(server) as raw:
        message = configure_message(16000)
        message.client_configure_session.extra_params["lookahead"] = "zero"
        await raw.send(message)
        await raw.expect_error(400, "unsupported lookahead 'zero'")
        await raw.expect_close(4000)


@pytest.mark.asyncio
async def test_official_client_sees_bad_sample_rate_and_egress(server: BackgroundServer) -> None:
    common: dict[str, Any] = {
        "api_key": API_KEY,
        "app_id": "demo",
        "avatar_id": AVATAR,
        "expire_at": datetime.now(timezone.utc) + timedelta(minutes=5),
        "console_endpoint_url": server.url,
        "ingress_endpoint_url": server.url + "/v2/driveningress",
    }
    for extra, phrase in [
        ({"sample_rate": 12345}, "unsupported sample rate"),
        ({"livekit_egress": spatialreal.LiveKitEgressConfig(url="wss://lk", room_name="r")}, "egress"),
        ({"agora_egress": spatialreal.AgoraEgressConfig(channel_name="c")}, "egress"),
    ]:
        session = spatialreal.new_avatar_session(**common, **extra)
        await session.init()
        with pytest.raises(AvatarSDKError) as info:
            await session.start()
        # spatialreal 0.2.2 has unsupportedSampleRate / egressUnavailable codes but maps every
        # non-4xxx ServerError to serverError; the server's detail carries the phrase.
        assert info.value.code == AvatarSDKErrorCode.serverError
        assert info.value.phase == "websocket_handshake"
        assert phrase in (info.value.server_detail or "")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("headers", "query", "phrase"),
    [
        ({}, None, "no app id"),
        ({"X-App-ID": "demo"}, None, "empty token"),
        ({"X-App-ID": "nobody", "X-Session-Key": "t"}, None, "app id unrecognized"),
        ({"X-App-ID": "demo", "X-Session-Key": "a.b.c"}, None, "invalid session token"),
        (None, "appId=demo&sessionKey=bad.sig", "invalid session token"),
        (None, "appId=demo&sessionKey=a.%C3%A9", "invalid session token: malformed"),  # was HTTP 500
        (None, "appId=demo&sessionKey=%E2%80%94.%00", "invalid session token: malformed"),
    ],
)
async def test_authentication_failures(
    server: BackgroundServer, headers: dict[str, str] | None, query: str | None, phrase: str
) -> None:
    async with healthy(server), connect(server, headers=headers, query=query) as raw:
        await raw.expect_error(4010, phrase)
        await raw.expect_close(4010)


@pytest.mark.asyncio
async def test_query_authentication(server: BackgroundServer) -> None:
    async with connect(server, query=f"appId=demo&sessionKey={token()}") as raw:
        await raw.configure()
        assert await raw.request("q", SPEECH) == frames_for(SPEECH)


@pytest.mark.asyncio
@pytest.mark.parametrize(("avatar", "code", "phrase"), [("ghost", 404, "avatar not found"), (None, 400, "required")])
async def test_unknown_or_missing_avatar(server: BackgroundServer, avatar: str | None, code: int, phrase: str) -> None:
    async with healthy(server), connect(server, avatar=avatar) as raw:
        await raw.expect_error(code, phrase)
        await raw.expect_close(4000)


@pytest.mark.asyncio
async def test_handshake_timeout(avatars: pathlib.Path) -> None:
    with own_server(avatars, {"handshake_timeout_seconds": 0.3}) as srv:
        async with healthy(srv), connect(srv) as raw:
            await raw.expect_error(400, "expected ClientConfigureSession message within 0.3 s")
            await raw.expect_close(4000)


# --------------------------------------------------------------------------- a configured session


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        ("text", "expected binary protobuf message"),
        (b"\x08\x03\x22\xff\xff\xff\xff\x0f", "failed to unmarshal message"),
        (Message(type=T.MESSAGE_CLIENT_AUDIO_INPUT, client_interrupt={"req_id": "x"}).SerializeToString(), "carries"),
    ],
    ids=["text", "malformed", "type-payload-mismatch"],
)
async def test_fatal_protocol_errors_after_handshake(server: BackgroundServer, data: Any, phrase: str) -> None:
    async with healthy(server), connect(server) as raw:
        await raw.configure()
        await raw.send(audio_message("r1", SPEECH[:6400]))
        if isinstance(data, str):
            await raw.ws.send_str(data)
        else:
            await raw.ws.send_bytes(data)
        while True:  # frames of r1 may come first
            message = await raw.next()
            if message.type == T.MESSAGE_SERVER_ERROR:
                assert message.server_error.code == 400 and phrase in message.server_error.message
                break
        await raw.expect_close(4000)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("message", "code", "phrase", "req_id"),
    [
        (
            Message(type=T.MESSAGE_CLIENT_PAUSE, client_pause={"req_id": "p1"}),
            501,
            "not supported without egress",
            "p1",
        ),
        (Message(type=T.MESSAGE_CLIENT_RESUME, client_resume={"req_id": "p1"}), 501, "pause/resume", "p1"),
        (Message(type=T.MESSAGE_SERVER_ERROR), 400, "unexpected message type MESSAGE_SERVER_ERROR", ""),
        (Message(type=42), 400, "unexpected message type", ""),  # type: ignore[arg-type]
        (configure_message(), 400, "already configured", ""),
        (audio_message("", b"\x00\x00"), 400, "req_id must be 1 to 128 characters", ""),
        (audio_message("x" * 129, b"\x00\x00"), 400, "req_id must be 1 to 128 characters", ""),
    ],
    ids=["pause", "resume", "server-type", "unknown-type", "configure-twice", "empty-req-id", "long-req-id"],
)
async def test_recoverable_errors_keep_the_session(
    server: BackgroundServer, message: Message, code: int, phrase: str, req_id: str
) -> None:
    async with connect(server) as raw:
        await raw.configure()
        await raw.send(message)
        await raw.expect_error(code, phrase, req_id)
        assert await raw.request("next", SPEECH) == frames_for(SPEECH)


@pytest.mark.asyncio
async def test_odd_byte_counts(server: BackgroundServer) -> None:
    async with connect(server) as raw:
        await raw.configure()
        # Odd chunk sizes, even total: the odd byte waits for the next chunk; nothing is lost.
        assert await raw.request("odd-chunks", SPEECH, chunk=1001) == frames_for(SPEECH)
        # Odd total: the last byte is reported, then the request ends normally.
        odd = SPEECH[: 640 * 2 * 7 + 1]
        await raw.send(audio_message("odd-total", odd, end=True))
        await raw.expect_error(400, "odd PCM16 byte count", "odd-total")
        assert await raw.frames("odd-total") == 7


@pytest.mark.asyncio
async def test_message_over_the_limit(server: BackgroundServer) -> None:
    async with healthy(server), connect(server) as raw:
        await raw.configure()
        await raw.send(audio_message("big", b"\x00" * (LIMITS["message_bytes"] + 2)))
        await raw.expect_error(413, "message too large")
        await raw.expect_close(1009)


@pytest.mark.asyncio
async def test_gigantic_message(server: BackgroundServer) -> None:
    async with healthy(server), connect(server) as raw:
        await raw.configure()
        # Only the frame's header, declaring 20 times the limit: the service refuses it by the header
        # (before reading any payload). Sending the payload too would race: a server that closes
        # with unread bytes in its socket resets the connection, and the close frame can be lost.
        size = 20 * LIMITS["message_bytes"]
        header = struct.pack("!BBQ", 0x82, 0x80 | 127, size) + b"\x00\x00\x00\x00"  # FIN, binary, masked
        raw.ws._writer.transport.write(header)
        await raw.expect_close(1009)


@pytest.mark.asyncio
async def test_request_audio_limit(server: BackgroundServer) -> None:
    async with healthy(server), connect(server) as raw:
        await raw.configure()
        part = b"\x00\x01" * 16000
        for _ in range(9):  # 288 KB > 256 KiB
            await raw.send(audio_message("huge", part))
        while True:
            message = await raw.next()
            if message.type == T.MESSAGE_SERVER_ERROR:
                break
            assert not message.server_response_animation.end
        assert message.server_error.code == 413 and message.server_error.req_id == "huge"
        assert "aborted" in message.server_error.message
        # Further audio of the aborted request is ignored (told once); the session goes on.
        await raw.send(audio_message("huge", part, end=True))
        await raw.expect_error(400, "already aborted", "huge")
        assert await raw.request("small", SPEECH) == frames_for(SPEECH)


@pytest.mark.asyncio
async def test_audio_after_end_and_superseded_requests(server: BackgroundServer) -> None:
    async with connect(server) as raw:
        await raw.configure()
        assert await raw.request("a", SPEECH) == frames_for(SPEECH)
        await raw.send(audio_message("a", SPEECH[:640]))
        await raw.expect_error(400, "already ended", "a")
        await raw.send(audio_message("a", SPEECH[:640]))  # told once only
        # b is open when c starts: c supersedes it; b never ends, c is complete.
        await raw.send(audio_message("b", SPEECH[:12800]))
        for i in range(0, len(SPEECH), 3200):
            await raw.send(audio_message("c", SPEECH[i : i + 3200], end=i + 3200 >= len(SPEECH)))
        decoders = {"b": codec.StreamDecoder(), "c": codec.StreamDecoder()}
        counts = {"b": 0, "c": 0}
        while True:
            animation = (await raw.next()).server_response_animation
            counts[animation.req_id] += len(decoders[animation.req_id].decode(animation.animation).values)
            if animation.end:
                assert animation.req_id == "c"
                break
        assert counts["c"] == frames_for(SPEECH)
        assert counts["b"] <= frames_for(SPEECH[:12800])
        await raw.send(audio_message("b", SPEECH[:640], end=True))
        await raw.expect_error(400, "already superseded", "b")


@pytest.mark.asyncio
async def test_flood_is_backpressured_and_loses_nothing(server: BackgroundServer) -> None:
    # 40 s of audio as five 8 s requests (each under request_audio_bytes), ten times the queue bound.
    requests = {f"flood{k}": speech_like(8.0, 16000, seed=k).tobytes() for k in range(5)}
    async with healthy(server), connect(server) as raw:
        await raw.configure()

        async def flood() -> None:
            for req_id, audio in requests.items():
                for i in range(0, len(audio), 8000):
                    await raw.send(audio_message(req_id, audio[i : i + 8000], end=i + 8000 >= len(audio)))
            for _ in range(300):  # and a burst of junk that each gets a ServerError
                await raw.send(Message(type=T.MESSAGE_SERVER_PLAYBACK_STATE))

        sender = asyncio.create_task(flood())
        await asyncio.sleep(0.3)  # the server stops reading while we do not read
        errors: list[Message] = []
        for req_id, audio in requests.items():
            assert await raw.frames(req_id, errors) == frames_for(audio)
        while len(errors) < 300:
            errors.append(await raw.next())
        await sender
        assert {(e.server_error.code, e.server_error.message) for e in errors} == {
            (400, "unexpected message type MESSAGE_SERVER_PLAYBACK_STATE; ignored")
        }


@pytest.mark.asyncio
async def test_heavy_engine_runs_off_the_loop_and_bounds_the_queue(
    avatars: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_class = ingress.EngineSession

    class SlowEngine(engine_class):  # type: ignore[misc, valid-type]
        def push(self, pcm: Any) -> Any:
            busy = time.thread_time() + 0.2 * len(pcm) / 16000  # real-time factor 0.2
            while time.thread_time() < busy:
                pass
            return super().push(pcm)

    monkeypatch.setattr(ingress, "EngineSession", SlowEngine)
    audio = speech_like(5.0, 16000, seed=9).tobytes()  # 160 KB in 250 messages, over the queue bound
    with own_server(avatars) as srv:
        async with healthy(srv), connect(srv) as raw:
            await raw.configure()
            (connection,) = [c for c in srv._app[SERVICE_KEY].ingress.connections if c.peak_queued_bytes == 0]
            assert await raw.request("slow", audio, chunk=640) == frames_for(audio)
            assert LIMITS["queued_audio_bytes"] / 2 < connection.peak_queued_bytes
            assert connection.peak_queued_bytes <= LIMITS["queued_audio_bytes"] + 640
            assert srv._app[SERVICE_KEY].ingress.runner._executor is not None  # heavy: off the event loop


@pytest.mark.asyncio
async def test_many_tiny_messages(server: BackgroundServer) -> None:
    async with healthy(server), connect(server) as raw:
        await raw.configure()
        audio = SPEECH[:8001]
        for i in range(0, len(audio), 3):  # 2,667 messages of 3 bytes: samples straddle all of them
            await raw.send(audio_message("tiny", audio[i : i + 3]))
        await raw.send(audio_message("tiny", b"", end=True))
        errors: list[Message] = []
        assert await raw.frames("tiny", errors) == frames_for(audio)
        ((error,),) = [[e.server_error for e in errors]]
        assert (error.code, error.req_id) == (400, "tiny") and "odd PCM16 byte count" in error.message


@pytest.mark.asyncio
async def test_undecodable_ogg_opus(server: BackgroundServer) -> None:
    pytest.importorskip("av")
    pcm = speech_like(0.6, 16000, seed=2)
    stream = ogg_opus(pcm, 16000)
    async with connect(server) as raw:
        await raw.configure(16000, AudioFormat.AUDIO_FORMAT_OGG_OPUS)
        await raw.send(audio_message("junk", b"RIFF\x00\x00\x00\x00WAVEfmt " * 4))
        await raw.expect_error(400, "not an Ogg stream", "junk")
        await raw.send(audio_message("cut", stream[: len(stream) - 10], end=True))
        while True:
            message = await raw.next()
            if message.type == T.MESSAGE_SERVER_ERROR:
                break
            assert not message.server_response_animation.end
        assert message.server_error.req_id == "cut" and "ends inside a page" in message.server_error.message
        await raw.send(audio_message("good", stream, end=True))
        assert abs(await raw.frames("good") - 15) <= 1


# --------------------------------------------------------------------------- limits


def official_session(srv: Any, recorder: list[Any], **extra: Any) -> Any:
    return spatialreal.new_avatar_session(
        api_key=API_KEY,
        app_id="demo",
        avatar_id=AVATAR,
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
        console_endpoint_url=srv.url,
        ingress_endpoint_url=srv.url + "/v2/driveningress",
        on_error=recorder.append,
        **extra,
    )


async def wait_for_errors(errors: list[Any], count: int = 1) -> None:
    for _ in range(100):
        if len(errors) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no error arrived: {errors}")


@pytest.mark.asyncio
async def test_idle_timeout(avatars: pathlib.Path) -> None:
    with own_server(avatars, {"idle_timeout_seconds": 0.4}) as srv:
        async with connect(srv) as raw:
            await raw.configure()
            await raw.expect_error(408, "no audio input for 0.4 s")
            await raw.expect_close(1000)


@pytest.mark.asyncio
async def test_session_time_limit(avatars: pathlib.Path) -> None:
    with own_server(avatars, {"session_seconds": 0.5}) as srv:
        errors: list[Any] = []
        session = official_session(srv, errors)
        await session.init()
        await session.start()
        await session.send_audio(SPEECH[:3200])
        await wait_for_errors(errors, 2)
        assert [e.code for e in errors] == [AvatarSDKErrorCode.sessionDurationExceeded] * 2
        assert all(e.retryable for e in errors)
        assert "session time limit reached" in (errors[0].server_detail or "")
        assert errors[1].close_code == 4002
        await session.close()


@pytest.mark.asyncio
async def test_credits_exhausted(avatars: pathlib.Path) -> None:
    with own_server(avatars, credits=0.5) as srv:
        errors: list[Any] = []
        session = official_session(srv, errors)
        await session.init()
        await session.start()
        audio = speech_like(1.5, 16000).tobytes()
        with contextlib.suppress(AvatarSDKError, ValueError):  # ValueError: the session has closed
            for part in [audio[i : i + 3200] for i in range(0, len(audio), 3200)]:
                await session.send_audio(part)
                await asyncio.sleep(0.002)
        await wait_for_errors(errors, 2)
        assert {e.code for e in errors} == {AvatarSDKErrorCode.creditsExhausted}
        await session.close()
        # The app now gets no tokens (402) and no sessions (4001).
        again = official_session(srv, [])
        with pytest.raises(AvatarSDKError) as info:
            await again.init()
        assert info.value.code == AvatarSDKErrorCode.billingRequired
        async with connect(srv) as raw:
            await raw.expect_error(4001, "credits exhausted")
            await raw.expect_close(4001)


@pytest.mark.asyncio
async def test_concurrency_limit(avatars: pathlib.Path) -> None:
    with own_server(avatars, {"concurrent_sessions": 2}) as srv:
        first, second, third = (official_session(srv, []) for _ in range(3))
        for session in (first, second, third):
            await session.init()
        await first.start()
        await second.start()
        with pytest.raises(AvatarSDKError) as info:
            await third.start()
        assert info.value.code == AvatarSDKErrorCode.concurrencyLimit
        assert info.value.close_code == 4003 and not info.value.retryable
        await first.close()
        for _ in range(50):  # the server sees the close a moment later
            retry = official_session(srv, [])
            await retry.init()
            try:
                await retry.start()
                break
            except AvatarSDKError:
                await asyncio.sleep(0.02)
        else:
            raise AssertionError("the slot was not released")
        await retry.close()
        await second.close()


@pytest.mark.asyncio
async def test_process_capacity(avatars: pathlib.Path) -> None:
    with own_server(avatars, max_sessions=1) as srv:
        async with connect(srv) as one:
            await one.configure()
            async with connect(srv) as two:
                await two.expect_error(4503, "server at capacity")
                await two.expect_close(4503)
            assert await one.request("r", SPEECH) == frames_for(SPEECH)


class _BrokenEngine:
    channels = codec.CANONICAL_NAMES
    lookahead_ms = 80.0

    def __init__(self, sample_rate: int, **options: Any) -> None:
        pass

    def push(self, pcm: Any) -> Any:
        raise RuntimeError("boom")

    def flush(self) -> Any:
        return np.zeros((0, 73), np.float32)


@pytest.mark.asyncio
async def test_engine_failure_is_upstream_unavailable(avatars: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingress, "EngineSession", _BrokenEngine)
    with own_server(avatars) as srv:
        errors: list[Any] = []
        session = official_session(srv, errors)
        await session.init()
        await session.start()
        await session.send_audio(SPEECH[:3200])
        await wait_for_errors(errors, 2)
        assert {e.code for e in errors} == {AvatarSDKErrorCode.upstreamError}
        assert all(e.retryable for e in errors)
        await session.close()


@pytest.mark.asyncio
async def test_server_shutdown_closes_sessions(avatars: pathlib.Path) -> None:
    srv = start_service(config(), avatar_roots=[avatars])
    try:
        async with connect(srv) as raw:
            await raw.configure()
            stopping = asyncio.get_running_loop().run_in_executor(None, srv.stop)
            await raw.expect_error(503, "shutting down")
            await raw.expect_close(1001)
            await asyncio.wait_for(stopping, 10)
    finally:
        srv.stop()


# --------------------------------------------------------------------------- abuse (issue 18)


async def health(srv: Any) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(srv.url + "/v1/health") as resp:
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
        return doc


async def wait_until_no_sessions(srv: Any, seconds: float = 20.0) -> dict[str, Any]:
    """Poll ``/v1/health`` until no session is open or counted (fails after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        doc = await health(srv)
        if doc["open_sessions"] == 0 and doc["sessions"] == 0:
            return doc
        assert time.monotonic() < deadline, f"sessions still counted after {seconds} s: {doc}"
        await asyncio.sleep(0.1)


def small_receive_buffer(addr_info: Any) -> socket.socket:
    """A client socket with a tiny receive buffer, so that a client that does not read soon makes
    the server's sends wait (set before connecting, when it sizes the TCP window)."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


async def the_connection(srv: Any, connection_id: str) -> Any:
    (connection,) = [c for c in srv._app[SERVICE_KEY].ingress.connections if c.connection_id == connection_id]
    return connection


@contextlib.asynccontextmanager
async def abusive(srv: Any, *, small_buffer: bool = False) -> AsyncIterator[Raw]:
    """A raw session (configured) whose client may misbehave; the test ends it however it likes.

    ``small_buffer``: the client's receive buffer and the server's send buffer for this connection
    are a few kB (as on a slow link), so a client that does not read soon makes the server wait.
    """
    url = srv.url.replace("http", "ws") + f"/v2/driveningress/websocket?id={AVATAR}"
    connector = aiohttp.TCPConnector(socket_factory=small_receive_buffer) if small_buffer else None
    async with aiohttp.ClientSession(connector=connector) as http:
        ws = await http.ws_connect(url, headers={"X-App-ID": "demo", "X-Session-Key": token()}, max_msg_size=0)
        raw = Raw(http, ws)
        await raw.configure()
        if small_buffer:  # the kernel grows it to megabytes on loopback otherwise
            connection = await the_connection(srv, raw.connection_id)
            sock = connection._request.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        try:
            yield raw
        finally:
            ws._writer.transport.abort()  # hang up: no close handshake
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1)


async def stream_fast(raw: Raw, seconds: float, chunks: tuple[int, ...] = (16000,), seed: int = 0) -> None:
    """``seconds`` of speech as fast as the server takes it, in 16 s requests, reading nothing;
    messages take the sizes of ``chunks`` in turn."""
    audio = speech_like(16.0, 16000, seed=seed).tobytes()
    sizes = itertools.cycle(chunks)
    for k in range(math.ceil(seconds / 16)):
        i = 0
        while i < len(audio):
            step = next(sizes)
            await raw.send(audio_message(f"fast{k}", audio[i : i + step], end=i + step >= len(audio)))
            i += step


@pytest.mark.asyncio
async def test_fast_stream_then_hang_up_frees_the_session(avatars: pathlib.Path) -> None:
    # Faster than real time, the server stops reading at its queue bound; the client then drops the
    # TCP connection. Each round must release its slot: with 2 allowed, 3 rounds then a healthy one.
    limits = {"concurrent_sessions": 2, "request_audio_bytes": 1 << 20}
    with own_server(avatars, limits) as srv:
        for round_ in range(3):
            async with abusive(srv) as raw:
                # Large and small messages: the queue goes well over its bound, and taking one small
                # message from it does not bring it back under (the read loop stays parked).
                sender = asyncio.create_task(stream_fast(raw, 256.0, (60000, 2000, 2000), seed=round_))
                connection = await the_connection(srv, raw.connection_id)
                for _ in range(100):  # the server stops reading at its queue bound
                    if connection.peak_queued_bytes >= LIMITS["queued_audio_bytes"]:
                        break
                    await asyncio.sleep(0.02)
                assert connection.peak_queued_bytes >= LIMITS["queued_audio_bytes"]
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await sender
            await wait_until_no_sessions(srv)
        async with connect(srv) as raw:
            await raw.configure()
            assert await raw.request("after", SPEECH) == frames_for(SPEECH)


class DeafClient:
    """A WebSocket client on a plain blocking socket that, after the handshake, never reads: its
    receive buffer is a few kB and, unlike aiohttp's, no library drains it behind its back."""

    def __init__(self, srv: Any) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect((srv.host, srv.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /v2/driveningress/websocket?id={AVATAR} HTTP/1.1\r\nHost: {srv.host}:{srv.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nX-App-ID: demo\r\nX-Session-Key: {token()}\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.send(configure_message())
        assert self.sock.recv(2)[0] == 0x82  # ServerConfirmSession: the last thing this client reads

    def send(self, message: Message) -> None:
        payload = message.SerializeToString()
        n = len(payload)  # masked with a zero key: the payload goes as it is
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
        self.sock.sendall(b"\x82" + size + b"\0\0\0\0" + payload)

    def stream(self, seconds: float) -> None:
        """Speech in 100 ms messages, as fast as the server takes them, until it stops taking them."""
        audio = speech_like(16.0, 16000, seed=3).tobytes()
        with contextlib.suppress(OSError):
            for k in range(math.ceil(seconds / 16)):
                for i in range(0, len(audio), 3200):
                    self.send(audio_message(f"deaf{k}", audio[i : i + 3200], end=i + 3200 >= len(audio)))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.mark.asyncio
async def test_client_that_never_reads_is_dropped_after_the_idle_limit(avatars: pathlib.Path) -> None:
    # Minutes of audio make more animation than the socket buffers hold (the server's for this
    # connection made small too), so the server's sends wait for a client that never reads. The
    # idle limit must still end the session: no audio is read meanwhile.
    limits = {"idle_timeout_seconds": 1.0, "request_audio_bytes": 1 << 20}
    with own_server(avatars, limits) as srv:
        deaf = await asyncio.to_thread(DeafClient, srv)
        (connection,) = srv._app[SERVICE_KEY].ingress.connections
        connection._request.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sender = asyncio.get_running_loop().run_in_executor(None, deaf.stream, 512.0)
        try:
            await asyncio.sleep(1.0)
            assert (await health(srv))["open_sessions"] == 1
            await wait_until_no_sessions(srv)  # about 1 s idle and 2 s to close, then aborted
        finally:
            deaf.close()
            await sender


@pytest.mark.asyncio
async def test_shutdown_is_prompt_when_clients_misbehave(avatars: pathlib.Path) -> None:
    limits = {"request_audio_bytes": 1 << 20}
    srv = start_service(config(limits), avatar_roots=[avatars])
    try:
        deaf = await asyncio.to_thread(DeafClient, srv)
        (connection,) = srv._app[SERVICE_KEY].ingress.connections
        connection._request.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        deaf_sender = asyncio.get_running_loop().run_in_executor(None, deaf.stream, 512.0)
        async with abusive(srv) as fast:
            sender = asyncio.create_task(stream_fast(fast, 256.0, (60000, 2000, 2000)))
            await asyncio.sleep(1.0)
            start = time.monotonic()
            await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, srv.stop), 90)
            took = time.monotonic() - start
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        deaf.close()
        await deaf_sender
        assert took < 5, f"shutdown took {took:.1f} s"  # was the full 60 s timeout; about 1 s now
    finally:
        srv.stop()


FLOODER = """
import asyncio, sys, time
import aiohttp
from avatarkit.protocol import Message, MessageType

async def main(url, token, count, seconds):
    configure = Message(type=MessageType.MESSAGE_CLIENT_CONFIGURE_SESSION)
    configure.client_configure_session.sample_rate = 16000
    interrupt = Message(type=MessageType.MESSAGE_CLIENT_INTERRUPT).SerializeToString()
    sent, end = 0, time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url, headers={"X-App-ID": "demo", "X-Session-Key": token})
        await ws.send_bytes(configure.SerializeToString())
        await ws.receive(timeout=10)
        print("ready", flush=True)
        try:
            while sent < count and time.monotonic() < end and not ws.closed:
                for _ in range(200):
                    await ws.send_bytes(interrupt)
                sent += 200
        except (ConnectionError, RuntimeError):
            pass
        await ws.close()
    print(sent, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


@pytest.mark.asyncio
async def test_flooding_neighbour_does_not_starve_a_real_time_session(avatars: pathlib.Path) -> None:
    # The rate caps are lifted so the flood goes on, for as long as the healthy session lasts: the read
    # loop's yielding and read budget alone must keep its frames flowing, in order, within a generous
    # bound. Without the budget the loop stayed responsive but, holding the GIL, starved the engine's
    # thread pool (used once the engine's measured cost passes engine_inline_ms): 1.2-2.8 s stalls.
    limits = {"messages_per_second": 1e9, "control_messages_per_second": 1e9}
    with own_server(avatars, limits) as srv:
        url = srv.url.replace("http", "ws") + f"/v2/driveningress/websocket?id={AVATAR}"
        # Another process, as an attacker would be: a flooder in this one would share its GIL.
        flooder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FLOODER, url, token(), "1000000000", "600", stdout=asyncio.subprocess.PIPE
        )
        assert flooder.stdout is not None
        async with connect(srv) as raw:
            await raw.configure()
            try:
                assert await asyncio.wait_for(flooder.stdout.readline(), 30) == b"ready\n"
                await asyncio.sleep(0.5)
                audio = speech_like(4.0, 16000, seed=5).tobytes()
                decoder, frames, lags = codec.StreamDecoder(), 0, []
                start = time.monotonic()
                for n, i in enumerate(range(0, len(audio), 1280)):  # 40 ms chunks in real time
                    await asyncio.sleep(max(0.0, start + n * 0.04 - time.monotonic()))
                    sent = time.monotonic()
                    await raw.send(audio_message("rt", audio[i : i + 1280], end=i + 1280 >= len(audio)))
                    if n >= 3:  # past the look-ahead, each chunk completes frames
                        message = await raw.next(timeout=30)
                        lags.append(time.monotonic() - sent)
                        assert message.server_response_animation.req_id == "rt"
                        frames += len(decoder.decode(message.server_response_animation.animation).values)
                while True:  # the rest, up to the request's end
                    animation = (await raw.next(timeout=30)).server_response_animation
                    assert animation.req_id == "rt"
                    frames += len(decoder.decode(animation.animation).values)
                    if animation.end:
                        break
                assert frames == frames_for(audio)
                assert flooder.returncode is None  # still flooding all along
            finally:
                with contextlib.suppress(ProcessLookupError):
                    flooder.terminate()
                await flooder.wait()
        lags.sort()
        print(f"healthy lag beside the flood: p50 {lags[len(lags) // 2] * 1000:.1f} ms, max {lags[-1] * 1000:.1f} ms")
        # Starved, the median was 270 ms and the worst 1.4 s here (p99 4.7 s in #18); now under 10 ms.
        assert lags[len(lags) // 2] < 0.15, lags
        assert lags[-1] < 2.0, lags


def test_read_budget_paces_a_flood_and_never_a_real_time_client() -> None:
    # A real-time client: 40 ms chunks, each handled in 50 us. It never waits.
    budget = ingress._ReadBudget(0.1, 0.05, 0.0)
    assert all(budget.charge(50e-6, n * 0.04) == 0 for n in range(1, 2000))
    # A flood: messages back to back, 10 us each, and the read loop sleeping as told. After the
    # burst, its handling takes the share of the time and no more.
    budget, now, busy, paused = ingress._ReadBudget(0.1, 0.05, 0.0), 0.0, 0.0, 0
    while now < 20.0:
        now += 10e-6
        busy += 10e-6
        pause = budget.charge(10e-6, now)
        if pause:
            assert pause < 0.01  # one message's deficit, not a stall
            paused += 1
            now += pause
    assert paused > 0
    assert busy == pytest.approx(0.1 * 20 + 0.05, rel=0.01)
    with pytest.raises(ValueError):
        ingress._ReadBudget(0.0, 0.05, 0.0)


@pytest.mark.asyncio
async def test_control_message_flood_is_closed(server: BackgroundServer) -> None:
    async with healthy(server), connect(server) as raw:
        await raw.configure()
        interrupt = Message(type=T.MESSAGE_CLIENT_INTERRUPT)
        with contextlib.suppress(ConnectionError):
            for _ in range(2000):  # the cap: 100 per second over 5 s
                await raw.send(interrupt)
        await raw.expect_error(400, "too many control messages")
        await raw.expect_close(4000)


async def raw_http(srv: Any, request: bytes, *, linger: float = 0.0) -> bytes:
    """Send ``request`` as it is on a fresh connection; the answer's bytes (all of them)."""
    reader, writer = await asyncio.open_connection(srv.host, srv.port)
    try:
        writer.write(request)
        await writer.drain()
        if linger:
            await asyncio.sleep(linger)
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


def token_request(headers: bytes, body: bytes = b'{"expireAt": 4000000000}', length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return (
        b"POST /v1/auth/session-token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + headers
        + f"Content-Type: application/json\r\nContent-Length: {n}\r\n\r\n".encode()
        + body
    )


@pytest.mark.asyncio
async def test_api_key_that_is_not_utf8_is_401(server: BackgroundServer) -> None:
    for key in (b"X-Api-Key: \xff\xfe\xfd-not-utf8\r\n", b"X-Api-Key: ak_\xc3\xa9\r\n"):
        answer = await raw_http(server, token_request(key))
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b"invalidApiKey" in answer


@pytest.mark.asyncio
async def test_client_hanging_up_mid_body_logs_no_traceback(
    avatars: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    with own_server(avatars) as srv:
        caplog.set_level("DEBUG")
        for _ in range(3):
            _, writer = await asyncio.open_connection(srv.host, srv.port)
            writer.write(token_request(f"X-Api-Key: {API_KEY}\r\n".encode(), b'{"expir', length=100))
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.transport.abort()
        await asyncio.sleep(0.3)
        body = {"expireAt": int(time.time()) + 60}
        async with (
            aiohttp.ClientSession() as http,  # and the server still answers
            http.post(srv.url + "/v1/auth/session-token", headers={"X-Api-Key": API_KEY}, json=body) as resp,
        ):
            assert resp.status == 200
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text


@pytest.mark.asyncio
async def test_token_body_has_a_deadline(avatars: pathlib.Path) -> None:
    with own_server(avatars, body_timeout_seconds=0.5) as srv:
        request = token_request(f"X-Api-Key: {API_KEY}\r\n".encode(), b"{", length=30)  # 29 bytes never come
        answer = await raw_http(srv, request)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


@pytest.mark.asyncio
async def test_wrong_api_keys_are_throttled_per_address(avatars: pathlib.Path) -> None:
    with own_server(avatars, auth_failures_per_minute=3) as srv:
        url = srv.url + "/v1/auth/session-token"
        body = {"expireAt": int(time.time()) + 60}
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                async with http.post(url, headers={"X-Api-Key": "ak_wrong-key"}, json=body) as resp:
                    assert resp.status == 401
            for key in ("ak_wrong-key", API_KEY):  # even the right key waits: the address is throttled
                async with http.post(url, headers={"X-Api-Key": key}, json=body) as resp:
                    assert resp.status == 429
                    assert 0 < int(resp.headers["Retry-After"]) <= 60
                    assert (await resp.json())["errors"][0]["code"] == "tooManyRequests"


@pytest.mark.asyncio
async def test_connection_cap(avatars: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="avatarkit.server.service")
    with own_server(avatars, max_connections=2) as srv:
        async with connect(srv) as one, connect(srv) as two:
            await one.configure()
            await two.configure()
            for _ in range(3):
                async with aiohttp.ClientSession() as http, http.get(srv.url + "/v1/avatars") as resp:
                    assert resp.status == 503 and resp.headers["Retry-After"] == "1"
            async with connect(srv) as three:
                await three.expect_error(4503, "server at capacity")
                await three.expect_close(4503)
            assert await one.request("r", SPEECH) == frames_for(SPEECH)
        await wait_until_no_sessions(srv)
        async with aiohttp.ClientSession() as http, http.get(srv.url + "/v1/avatars") as resp:
            assert resp.status == 200
    warnings = [r for r in caplog.records if "connection cap" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # once per interval, not per refusal
