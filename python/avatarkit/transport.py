"""Driving transports: where a conversation's motion comes from.

Data flows one way. The controller hands speech to a transport (:meth:`DrivingTransport.send_audio`);
the transport hands motion frames back to a :class:`TransportListener` (the controller, which puts
them on the playback clock). Three implementations:

- :class:`WebSocketTransport` (SDK mode): the driving service over a WebSocket. Handshake, a read
  loop, an ordered send queue, and the reconnect policy of the close codes (:mod:`avatarkit.protocol.codes`).
- :class:`LocalTransport` (local mode): the speech engine in this process
  (:class:`~avatarkit.engine.EngineSession`, streaming): no service, no token, no network.
- :class:`HostRelay` (Host mode): the frames your backend received from the service, handed over
  with ``yield_``; it decodes and dispatches them like the WebSocket's read loop.

Message dispatch (animation payloads, ``ServerError``) is written once, in :class:`MessageDispatcher`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from . import codec
from .codec import CANONICAL_NAMES, StreamDecoder
from .errors import AvatarError, AvatarErrorCode
from .events import ConnectionState, StateReason
from .protocol import AudioFormat as WireAudioFormat
from .protocol import Message, MessageType, parse_message
from .protocol.codes import (
    close_error,
    handshake_error,
    is_retryable_close,
    is_retryable_error,
    server_error,
    service_said_why,
)
from .retarget import flame_to_canonical

log = logging.getLogger("avatarkit.controller")

F32 = npt.NDArray[np.float32]
I16 = npt.NDArray[np.int16]
I64 = npt.NDArray[np.int64]

#: The frame rate of FlameAnimation payloads, which do not carry one.
FLAME_FPS = 25.0

__all__ = [
    "DrivingTransport",
    "HostRelay",
    "LocalTransport",
    "MessageDispatcher",
    "TransportListener",
    "WebSocketTransport",
]


@dataclasses.dataclass(frozen=True)
class TransportListener:
    """Where a transport reports to (the controller hands its own methods; tests hand fakes).

    Attributes:
        motion_received: ``(conversation_id, values, indices, names, fps, end)``: motion frames of a
            conversation, ``values[i]`` is frame ``indices[i]`` at ``fps``; ``end``: its last.
        request_failed: ``(conversation_id, cause)``: the driving side gave up on a conversation;
            its audio plays on without motion.
        error_reported: ``(error)``: an error for the app (the transport carries on, or says more).
        connection_changed: ``(state, error)``: the connection changed state (reconnects).
        connection_lost: ``(cause)``: the connection was lost (network or server error); the
            conversation in progress falls back to audio only.
    """

    motion_received: Callable[[str, F32, I64, Sequence[str], float, bool], None]
    request_failed: Callable[[str, StateReason], None]
    error_reported: Callable[[AvatarError], None]
    connection_changed: Callable[[ConnectionState, AvatarError | None], None]
    connection_lost: Callable[[StateReason], None]


class DrivingTransport(Protocol):
    """A source of motion for the speech the app sends (SDK and local mode)."""

    #: The audio rate it negotiated (None before it opened).
    sample_rate: int | None
    #: Audio after a frame's end that it waits for before sending the frame, in seconds (None: unknown).
    lookahead: float | None
    #: Its id of the connection (the service's, or a local one).
    connection_id: str | None

    @property
    def reconnecting(self) -> bool:
        """Whether it is restoring a lost connection."""

    async def open(self, timeout: float) -> None:
        """Connect; raises :class:`~avatarkit.errors.AvatarError`."""

    def send_audio(self, conversation_id: str, pcm: I16, end: bool) -> None:
        """Speech of a conversation (``end``: its last chunk)."""

    def interrupt(self, conversation_id: str) -> None:
        """Stop working on a conversation."""

    async def drain(self) -> None:
        """Wait until everything handed over has left this process."""

    async def close(self) -> None:
        """Disconnect (idempotent)."""


class MessageDispatcher:
    """``driveningress.v2`` messages from the service to a :class:`TransportListener`.

    Keeps each conversation's decoder: AK1 streams are stateful (schema, keyframes), FlameAnimation
    payloads are numbered in arrival order.
    """

    def __init__(self, listener: TransportListener, wanted: Callable[[str], bool]) -> None:
        self._listener = listener
        self._wanted = wanted
        self._decoder_id: str | None = None
        self._decoder = StreamDecoder()
        self._flame_frames = 0
        self._broken: set[str] = set()

    def reset(self) -> None:
        """Forget the decoders (a new connection)."""
        self._decoder_id = None

    def dispatch(self, message: Message, conversation_id: str | None = None) -> AvatarError | None:
        """Hand one message on; returns the error of a ``ServerError`` for the whole session, else None.

        ``conversation_id`` overrides the message's own ``req_id`` (Host mode: the app says which).
        """
        if message.type == MessageType.MESSAGE_SERVER_RESPONSE_ANIMATION:
            anim = message.server_response_animation
            conv_id = conversation_id or anim.req_id
            if self._wanted(conv_id):
                self._animation(conv_id, anim.animation, anim.end)
        elif message.type == MessageType.MESSAGE_SERVER_ERROR:
            failure = message.server_error
            error = server_error(failure.code, failure.message, None)
            self._listener.error_reported(error)
            req_id = conversation_id or failure.req_id
            if req_id:
                # The service failed this request (it aborts it): its audio plays on alone.
                self._listener.request_failed(req_id, StateReason.SERVER_ERROR)
                return None
            return error
        return None

    def _animation(self, conversation_id: str, payload: bytes, end: bool) -> None:
        if conversation_id != self._decoder_id:
            self._decoder_id, self._decoder, self._flame_frames = conversation_id, StreamDecoder(), 0
        try:
            kind = codec.payload_kind(payload)
            fps = FLAME_FPS
            if kind == "ak1":
                frames = self._decoder.decode(payload)
                values, indices, names = frames.values, frames.frame_indices, frames.names
                fps = float(frames.fps)
            elif kind == "flame":
                keyframes = codec.decode_flame(payload)
                values = flame_to_canonical(keyframes)
                indices = np.arange(self._flame_frames, self._flame_frames + len(values), dtype=np.int64)
                self._flame_frames += len(values)
                names = list(CANONICAL_NAMES)
            else:
                raise codec.CodecError("not an animation payload (neither AK1 nor FlameAnimation)")
        except codec.CodecError as err:
            self._listener.error_reported(AvatarError(AvatarErrorCode.SERVER_ERROR, f"undecodable animation: {err}"))
            return
        self._listener.motion_received(conversation_id, values, indices, names, fps, end)


class HostRelay:
    """Host mode: the serialized messages your backend relays (``yield_frames_data``), dispatched."""

    def __init__(self, listener: TransportListener, wanted: Callable[[str], bool]) -> None:
        self._listener = listener
        self._dispatcher = MessageDispatcher(listener, wanted)

    def feed(self, frames: Sequence[bytes | bytearray], conversation_id: str) -> None:
        """Parse and dispatch each serialized ``Message`` envelope for ``conversation_id``."""
        for raw in frames:
            try:
                message = parse_message(bytes(raw))
            except Exception as exc:
                self._listener.error_reported(
                    AvatarError(AvatarErrorCode.INVALID_ARGUMENT, f"not a driveningress Message: {exc}")
                )
                continue
            self._dispatcher.dispatch(message, conversation_id)


class LocalTransport:
    """Local mode: the speech engine in this process, streaming; no service, no token.

    Each conversation gets an :class:`~avatarkit.engine.EngineSession`; every chunk sent is pushed
    through it at once (well under a millisecond per 40 ms chunk) and the frames that became
    complete go to the listener, so motion is ready as soon as the engine's look-ahead allows (80 ms
    of audio past a frame, or 0 with ``low_latency``).

    Args:
        listener: where the frames go.
        sample_rate: the speech's rate (one of :data:`avatarkit.engine.SUPPORTED_RATES`).
        low_latency: the engine's causal model (look-ahead 0 ms).
    """

    def __init__(self, listener: TransportListener, sample_rate: int, *, low_latency: bool = False) -> None:
        from .engine import SUPPORTED_RATES

        if sample_rate not in SUPPORTED_RATES:
            raise AvatarError(
                AvatarErrorCode.INVALID_ARGUMENT, f"the engine takes {SUPPORTED_RATES} Hz, not {sample_rate}"
            )
        self._listener = listener
        self.sample_rate: int | None = sample_rate
        self.low_latency = low_latency
        self.lookahead: float | None = None
        self.connection_id: str | None = None
        self._session: Any = None
        self._session_id: str | None = None
        self._frames = 0

    @property
    def reconnecting(self) -> bool:
        """Never: nothing to lose."""
        return False

    async def open(self, timeout: float = 10.0) -> None:
        """Load the engine's model (cached across transports) and measure its look-ahead."""
        from .engine import EngineSession

        assert self.sample_rate is not None
        probe = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(
                None, lambda: EngineSession(self.sample_rate or 16000, low_latency=self.low_latency)
            ),
            timeout,
        )
        self.lookahead = probe.lookahead_ms / 1000.0
        self.connection_id = "local_" + uuid.uuid4().hex[:12]

    def send_audio(self, conversation_id: str, pcm: I16, end: bool) -> None:
        """Push speech through the conversation's engine session; hand the complete frames on."""
        from .engine import EngineSession

        if self.connection_id is None:
            raise AvatarError(AvatarErrorCode.INVALID_STATE, "not started: call await controller.start() first")
        if conversation_id != self._session_id:
            assert self.sample_rate is not None
            self._session = EngineSession(self.sample_rate, low_latency=self.low_latency)
            self._session_id, self._frames = conversation_id, 0
        values = self._session.push(pcm) if len(pcm) else np.zeros((0, len(CANONICAL_NAMES)), np.float32)
        if end:
            values = np.concatenate([values, self._session.flush()])
        if len(values) or end:
            indices = np.arange(self._frames, self._frames + len(values), dtype=np.int64)
            self._frames += len(values)
            self._listener.motion_received(conversation_id, values, indices, CANONICAL_NAMES, 25.0, end)
        if end:
            self._session = self._session_id = None

    async def drain(self) -> None:
        """Nothing to wait for: the engine took each chunk as it was sent."""

    def interrupt(self, conversation_id: str) -> None:
        """Drop the conversation's engine session."""
        if conversation_id == self._session_id:
            self._session = self._session_id = None

    async def close(self) -> None:
        """Drop any session in progress."""
        self._session = self._session_id = None
        self.connection_id = None


class WebSocketTransport:
    """SDK mode: the driving service over a WebSocket (``driveningress.v2``).

    Args:
        listener: where motion, errors and connection changes go.
        avatar_id: the avatar the session drives.
        token: returns the session token to connect with (read again for every reconnect: the app
            may have refreshed it).
        max_reconnects: attempts after a loss with a close code that allows it (1001, 1006,
            1011-1014, 4002, 45xx, or a broken socket); the first at once, then 0.5, 1, 2 ... s.
    """

    def __init__(
        self,
        listener: TransportListener,
        avatar_id: str,
        token: Callable[[], str | None],
        *,
        max_reconnects: int = 5,
    ) -> None:
        self._listener = listener
        self._avatar_id = avatar_id
        self._token = token
        self.max_reconnects = max_reconnects
        self.sample_rate: int | None = None
        self.lookahead: float | None = None
        self.connection_id: str | None = None
        self._session: Any = None
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[bytes | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._reconnects = 0
        self._reconnecting = False
        self._dispatcher = MessageDispatcher(listener, lambda _: True)
        #: Bytes queued for the socket and not yet written (what a slow network holds back).
        self.pending_bytes = 0

    @property
    def reconnecting(self) -> bool:
        """Whether it is restoring a lost connection."""
        return self._reconnecting

    @property
    def connected(self) -> bool:
        """Whether a session is open."""
        return self._ws is not None

    async def open(self, timeout: float = 10.0) -> None:
        """Connect and complete the handshake, or clean up and raise ``AvatarError``."""
        self._closing = False
        await self._open(timeout)

    async def _open(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._connect(), timeout)
        except AvatarError:
            await self._teardown()
            raise
        except (asyncio.TimeoutError, OSError) as err:
            await self._teardown()
            raise AvatarError(
                AvatarErrorCode.WEBSOCKET_ERROR, f"cannot reach the driving service: {err or 'timeout'}"
            ) from err

    async def _connect(self) -> None:
        import aiohttp

        from .sdk import AvatarSDK

        env = AvatarSDK.configuration.resolved_environment
        url = f"{env.ingress_url.rstrip('/')}/v2/driveningress/websocket"
        params = {"id": self._avatar_id, "appId": AvatarSDK.app_id, "sessionKey": self._token() or ""}
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(url, params=params, heartbeat=20.0, max_msg_size=16 << 20)
        except aiohttp.WSServerHandshakeError as err:
            raise handshake_error(err.status, str(err.message)) from err
        except aiohttp.ClientError as err:
            raise AvatarError(AvatarErrorCode.WEBSOCKET_ERROR, f"cannot connect to {url}: {err}") from err
        # The rate is read now: a connection keeps the rate it negotiated.
        rate = AvatarSDK.configuration.audio_format.sample_rate
        configure = Message(type=MessageType.MESSAGE_CLIENT_CONFIGURE_SESSION)
        configure.client_configure_session.sample_rate = rate
        configure.client_configure_session.audio_format = WireAudioFormat.AUDIO_FORMAT_PCM_S16LE
        if AvatarSDK.configuration.low_latency:
            configure.client_configure_session.extra_params["lookahead"] = "low"
        await self._ws.send_bytes(configure.SerializeToString())
        reply = await self._ws.receive()
        if reply.type != aiohttp.WSMsgType.BINARY:
            raise close_error(self._ws.close_code, "the service closed the connection during the handshake")
        message = parse_message(reply.data)
        if message.type == MessageType.MESSAGE_SERVER_ERROR:
            failure = message.server_error
            with contextlib.suppress(Exception):
                await self._ws.receive()  # the close frame, for its code
            raise server_error(failure.code, failure.message, self._ws.close_code)
        if message.type != MessageType.MESSAGE_SERVER_CONFIRM_SESSION:
            raise AvatarError(AvatarErrorCode.SERVER_ERROR, f"unexpected handshake reply {message.type}")
        self.connection_id = message.server_confirm_session.connection_id
        self.sample_rate = rate
        self.lookahead = _lookahead_of(message.server_confirm_session.capabilities)
        self._dispatcher.reset()
        self._outbox = asyncio.Queue()
        self._writer = asyncio.ensure_future(self._write(self._ws, self._outbox))
        self._reader = asyncio.ensure_future(self._read())

    async def _write(self, ws: Any, outbox: asyncio.Queue[bytes | None]) -> None:
        """Send queued messages in order, each after the previous one left (the socket's backpressure)."""
        failed = False
        while (data := await outbox.get()) is not None:
            try:
                if not failed:
                    await ws.send_bytes(data)
            except Exception as err:
                failed = True  # the read loop sees the broken socket and reports the loss
                self._listener.error_reported(AvatarError(AvatarErrorCode.WEBSOCKET_ERROR, f"send failed: {err}"))
            finally:
                self.pending_bytes -= len(data)
                outbox.task_done()
        outbox.task_done()

    async def drain(self) -> None:
        """Wait until every message queued so far has been written to the socket (or dropped with it)."""
        outbox = self._outbox
        if outbox is not None:
            await outbox.join()

    async def _read(self) -> None:
        import aiohttp

        ws = self._ws
        error: AvatarError | None = None
        said = False  # the last message was a ServerError for the session: it says why the close follows
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                try:
                    message = parse_message(msg.data)
                except Exception:
                    log.warning("undecodable message from the service")
                    continue
                fatal = self._dispatcher.dispatch(message)
                said = fatal is not None
                if fatal is not None:
                    error = fatal
        except Exception as exc:  # a broken socket
            error = AvatarError(AvatarErrorCode.WEBSOCKET_CLOSED_ABNORMALLY, str(exc))
        if self._closing:
            return
        code = ws.close_code
        closed = close_error(code, error.message if error else "the connection closed") if code != 1000 else error
        cause = StateReason.SERVER_ERROR if service_said_why(code, said) else StateReason.NETWORK_ERROR
        await self._connection_lost(code, closed, cause)

    async def _connection_lost(self, code: int | None, error: AvatarError | None, cause: StateReason) -> None:
        """The connection ended on its own: reconnect where the contract allows, else report it failed."""
        await self._teardown()
        # Audio-only fallback: the audio keeps playing on its clock; the face returns to idle.
        self._listener.connection_lost(cause)
        if is_retryable_close(code):
            # The session limit (4002), an unavailable upstream (45xx), or the transport going away
            # (the process behind a load balancer stopped or died): connect again, a new connection
            # lands on a live worker. First at once, then with backoff; a few times, not forever.
            self._reconnecting = True
            try:
                while self._reconnects < self.max_reconnects and not self._closing:
                    first = code == 4002 or self._reconnects == 0
                    delay = 0.0 if first else min(8.0, 0.5 * 2 ** (self._reconnects - 1))
                    self._reconnects += 1
                    log.info("connection closed (%s); reconnect %d in %.1f s", code, self._reconnects, delay)
                    self._listener.connection_changed(ConnectionState.CONNECTING, error)
                    await asyncio.sleep(delay)
                    if self._closing:
                        return
                    try:
                        await self._open()
                        self._reconnects = 0
                        self._listener.connection_changed(ConnectionState.CONNECTED, None)
                        return
                    except AvatarError as err:
                        error = err
                        if not is_retryable_error(err):
                            break
            finally:
                self._reconnecting = False
            self._reconnects = 0
        self._listener.connection_changed(
            ConnectionState.FAILED, error or AvatarError(AvatarErrorCode.WEBSOCKET_CLOSED_ABNORMALLY, "lost")
        )

    async def _teardown(self) -> None:
        ws, session, reader, writer, outbox = self._ws, self._session, self._reader, self._writer, self._outbox
        self._ws = self._session = self._reader = self._writer = self._outbox = None
        if outbox is not None:
            outbox.put_nowait(None)
        if writer is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(writer, 1.0)  # what was queued before the close goes out first
        if outbox is not None:
            # A writer that could not finish leaves messages behind: they are dropped with the socket.
            while not outbox.empty():
                item = outbox.get_nowait()
                self.pending_bytes -= len(item) if item is not None else 0
                outbox.task_done()
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    def _send(self, message: Message) -> None:
        outbox, loop = self._outbox, self._loop
        if outbox is None or loop is None:
            raise AvatarError(AvatarErrorCode.INVALID_STATE, "not connected: call await controller.start() first")
        data = message.SerializeToString()
        self.pending_bytes += len(data)
        if _running_loop() is loop:
            outbox.put_nowait(data)
        else:
            loop.call_soon_threadsafe(outbox.put_nowait, data)

    def send_audio(self, conversation_id: str, pcm: I16, end: bool) -> None:
        """A ``ClientAudioInput`` for the conversation (queued; sent in order)."""
        message = Message(type=MessageType.MESSAGE_CLIENT_AUDIO_INPUT)
        message.client_audio_input.req_id = conversation_id
        message.client_audio_input.audio = pcm.astype("<i2").tobytes()
        message.client_audio_input.end = end
        self._send(message)

    def interrupt(self, conversation_id: str) -> None:
        """A ``ClientInterrupt`` for the conversation, when connected."""
        if self._outbox is None:
            return
        message = Message(type=MessageType.MESSAGE_CLIENT_INTERRUPT)
        message.client_interrupt.req_id = conversation_id
        self._send(message)

    async def close(self) -> None:
        """Close the connection (idempotent); no reconnect follows."""
        self._closing = True
        await self._teardown()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _lookahead_of(capabilities: Sequence[str]) -> float | None:
    """The service's look-ahead in seconds from its ``lookahead_ms=N`` capability (None without one)."""
    for item in capabilities:
        name, _, value = item.partition("=")
        if name == "lookahead_ms":
            try:
                ms = float(value)
            except ValueError:
                return None
            return ms / 1000 if 0 <= ms <= 10_000 else None
    return None
