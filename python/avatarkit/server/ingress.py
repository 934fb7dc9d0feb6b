"""The driveningress v2 WebSocket: speech audio in, AK1 animation out, streaming.

``GET /v2/driveningress/websocket?id=AVATAR_ID`` with ``X-App-ID`` + ``X-Session-Key`` headers
or ``appId`` + ``sessionKey`` query parameters. The first message must be
``ClientConfigureSession``; the server answers ``ServerConfirmSession``. Then each
``ClientAudioInput`` is run through a per-request :class:`~avatarkit.engine.EngineSession`, and the
frames that become ready are sent at once as ``ServerResponseAnimation`` (one AK1 payload per
message from a per-request ``StreamEncoder`` over the canonical schema, the schema in the request's
first payload); the request's last message has ``end = true``, and a request of ``d`` seconds
yields ``ceil(d / 0.04)`` frames.

Errors. ``ServerError.code`` is the close code that follows for the session-fate errors (4001
credits exhausted, 4002 session time limit, 4003 concurrency limit, 4010 authentication, 4503
engine failure or process at capacity), so the official SDKs map them by their close-code
contract; any other error carries an HTTP-style status (400, 404, 408, 413, 501, 503) and a
message worded as the commercial service words it (``invalid session token``, ``token is
expired``, ``unsupported sample rate``, ``expected ClientConfigureSession message``, ``no audio
input for``, ``avatar not found``, ``egress client is not configured on server``), which the
SDKs that classify by message recognise. Close codes:

======  ===============================================================================
1000    idle timeout (no audio input for ``idle_timeout_seconds``), after ``ServerError 408``
1001    the server is shutting down, after ``ServerError 503``
1009    a message over ``message_bytes`` (``ServerError 413`` first when it is at most twice
        the limit; aiohttp refuses larger ones without reading them)
4000    the request is invalid and retrying will not help: bad handshake, unsupported sample
        rate / format / egress, unknown avatar, a text frame, malformed protobuf, more messages
        than ``messages_per_second`` / ``control_messages_per_second`` allow
4001    credits exhausted            4002  session time limit (reconnect)
4003    concurrency limit            4010  authentication failed (bad, expired or missing token)
4503    engine failure or the process is at capacity: ``max_sessions`` or the connection cap
        (retry with backoff)
======  ===============================================================================

Errors that concern one request do not end the session: audio that cannot be decoded, a request
over ``request_audio_bytes`` (both abort the request), audio for a request that already ended, an
odd PCM16 byte count, an unknown message type, ``ClientPause`` / ``ClientResume`` (playback
control needs egress, which this server does not have: ``ServerError 501``).

PCM16 chunks of odd length are fine: the odd byte waits for the next chunk of the request. Only
when the request's audio as a whole has an odd length is its last byte dropped, and the client is
told so (``ServerError 400``) before the final animation message.

Requests. A new ``req_id`` supersedes the open request (one whose ``end`` has not arrived): its
queued audio is dropped and it gets no more messages. A request that has ended is completed
even if the next one starts meanwhile. ``ClientInterrupt{req_id}`` stops the request at once
(an empty ``req_id`` stops every request in progress); audio that still arrives for an
interrupted request is ignored without an error.

Flow control: messages are read as they arrive and control messages act at once; audio waits in
a queue of at most ``queued_audio_bytes`` per session, beyond which the server stops reading
that connection until the engine catches up (TCP backpressure). Sends wait for the socket to
drain, so a client that does not read stalls only its own session, until the idle or session
limit ends it. A session that must end has ``_CLOSE_GRACE`` seconds (``_SHUTDOWN_GRACE`` when the
server stops) for its ``ServerError`` and close handshake, then the connection is aborted; however
it ends, its slot is released. The read loop yields to the event loop every ``_YIELD_EVERY``
messages or ``_YIELD_AFTER`` seconds, so a flood of small messages cannot starve other sessions;
and a connection's message handling may take at most ``_READ_SHARE`` of the loop's time
(:class:`_ReadBudget`): past that its read loop sleeps and the socket fills (TCP backpressure),
so the loop's thread goes idle now and then and engine threads get the GIL. The message-rate caps
(token buckets over 5 s) close a flooding session. Engine work runs in slices of
at most ``engine_inline_ms`` on the event loop (interrupts act between slices), or on a thread
pool when the engine is too heavy for that.

Look-ahead. The engine emits a frame once it has the audio up to 80 ms past the frame's end, or
at the frame's end with the low-latency engine (a causal model, a little less accurate:
``docs/lipsync.md``). A session asks for one with ``ClientConfigureSession.extra_params``
``lookahead`` = ``low`` or ``standard``; without it the service's default applies
(``ServiceConfig.low_latency``). ``ServerConfirmSession.capabilities`` then carries
``lookahead_ms=N``, which tells a client how long motion trails the audio it sends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from aiohttp import WSMessage, WSMsgType, web
from google.protobuf.message import DecodeError

from .. import codec
from ..engine import SUPPORTED_RATES, EngineSession
from ..protocol import AudioFormat, EgressType, Message, MessageType, parse_message
from ..protocol.codes import CloseCode, ErrorCode
from .app import AvatarStore
from .audio import AudioDecodeError, AudioInput, OggOpusInput, PcmInput, opus_available
from .config import AppConfig, ServiceConfig
from .tokens import TokenError, verify_token
from .usage import Refusal, Usage

log = logging.getLogger(__name__)

__all__ = ["INGRESS_PATH", "CloseCode", "ErrorCode", "Ingress", "new_connection_id"]

T = TypeVar("T")

INGRESS_PATH = "/v2/driveningress/websocket"
_MAX_REQ_ID = 128
_MAX_QUEUED_ITEMS = 4096
_REMEMBERED_REQUESTS = 256
#: Time a session has, once it must end, to send its ServerError and close handshake; then the
#: connection is aborted (a client that does not read cannot hold it open).
_CLOSE_GRACE = 2.0
#: The same when the server shuts down: the whole shutdown stays within about a second.
_SHUTDOWN_GRACE = 0.8
#: The read loop yields to the event loop after this many messages or this much time (seconds).
_YIELD_EVERY = 16
_YIELD_AFTER = 0.001
#: Share of the event loop's time one connection's message handling may take on average, and the
#: burst (seconds of handling) allowed above it. A real-time client uses well under 1 %.
_READ_SHARE = 0.1
_READ_BURST = 0.05
#: Message-rate caps average over this many seconds (the bucket holds this many seconds of messages).
_RATE_WINDOW = 5.0
_NANOID_ALPHABET = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def new_connection_id() -> str:
    """A connection id in the commercial service's log-id format, ``YYYYMMDDHHMMSS_<12 chars>`` (UTC)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return stamp + "_" + "".join(secrets.choice(_NANOID_ALPHABET) for _ in range(12))


def _type_name(value: int) -> str:
    try:
        return MessageType.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return f"message type {value}"


class _EngineRunner:
    """Runs engine work so that the event loop stays responsive.

    Audio is cut into slices predicted to cost at most ``inline_ms`` each and run inline, with the
    loop free between slices and no thread hand-offs, so one process uses about one core. Only when
    even a 40 ms slice is predicted to cost more does the work go to a thread pool; ``inline_ms = 0``
    sends every slice there. The engine releases the GIL, so the pool lets one process use several
    cores, for about a quarter more CPU per session in hand-offs (``docs/service.md``, "Load").
    The prediction is a moving average of the CPU time (thread time) per second of audio.
    """

    MIN_SLICE = 0.04
    MAX_SLICE = 1.0

    def __init__(self, inline_ms: float, threads: int | None) -> None:
        self._inline_s = inline_ms / 1000
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._cost = 0.0  # CPU seconds per second of audio

    def slice_seconds(self) -> float:
        """Seconds of audio per slice of work."""
        if self._cost <= 0:
            return self.MAX_SLICE
        return min(self.MAX_SLICE, max(self.MIN_SLICE, self._inline_s / self._cost))

    async def run(self, fn: Callable[[], T], audio_seconds: float) -> T:
        """``fn()``, inline if its predicted cost is within the budget, else on the thread pool."""
        if self._cost * audio_seconds <= self._inline_s:
            return self._timed(fn, audio_seconds)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="avatarkit-engine")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(self._timed, fn, audio_seconds)
        )

    def _timed(self, fn: Callable[[], T], audio_seconds: float) -> T:
        start = time.thread_time()
        result = fn()
        if audio_seconds >= 0.01:
            self._cost = 0.9 * self._cost + 0.1 * ((time.thread_time() - start) / audio_seconds)
        return result

    def shutdown(self) -> None:
        """Release the thread pool, if one was started."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class Ingress:
    """The WebSocket endpoint's shared state: config, accounting, the engine pool, open sessions."""

    def __init__(self, config: ServiceConfig, usage: Usage, store: AvatarStore | None) -> None:
        self.config = config
        self.usage = usage
        self.store = store
        self.runner = _EngineRunner(config.engine_inline_ms, config.engine_threads)
        self.connections: set[_Connection] = set()
        self.capabilities = ["animation_ak1", "audio_pcm_s16le", "interrupt"]
        if opus_available():
            self.capabilities.insert(2, "audio_ogg_opus")
        #: The engine's look-ahead in ms, standard (False) and low latency (True).
        self.lookahead_ms = {low: EngineSession(16000, low_latency=low).lookahead_ms for low in (False, True)}

    async def refuse(self, request: web.Request) -> web.StreamResponse:
        """Answer a WebSocket while the process is over its connection cap: ``ServerError 4503``, close 4503."""
        return await _Connection(self, request, over_capacity=True).run()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler of ``GET /v2/driveningress/websocket``."""
        connection = _Connection(self, request)
        self.connections.add(connection)
        try:
            return await connection.run()
        finally:
            self.connections.discard(connection)

    async def on_shutdown(self, app: web.Application) -> None:
        """Close every session (``ServerError 503``, close code 1001) so the server can stop."""
        await asyncio.gather(*(c.shut_down() for c in list(self.connections)), return_exceptions=True)

    async def on_cleanup(self, app: web.Application) -> None:
        """Release the engine thread pool."""
        self.runner.shutdown()


@dataclasses.dataclass(eq=False)
class _Request:
    """One request (``req_id``): its streaming state."""

    req_id: str
    ended: bool = False  # end = true received
    cancelled: bool = False
    bytes_in: int = 0
    audio: AudioInput | None = None
    engine: EngineSession | None = None
    encoder: codec.StreamEncoder | None = None


@dataclasses.dataclass
class _Result:
    payload: bytes | None
    frames: int
    seconds: float
    dropped_bytes: int


class _Fatal(Exception):
    """Ends the session: ``ServerError(code, message)`` then close with ``close_code``."""

    def __init__(self, code: int, message: str, close_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


def _invalid(message: str) -> _Fatal:
    return _Fatal(ErrorCode.BAD_REQUEST, message, CloseCode.INVALID_REQUEST)


class _Connection:
    """One WebSocket session."""

    def __init__(self, ingress: Ingress, request: web.Request, *, over_capacity: bool = False) -> None:
        self._ingress = ingress
        self._request = request
        self._loop = asyncio.get_running_loop()
        self.connection_id = new_connection_id()
        self._avatar_id = request.query.get("id", "")
        self._app: AppConfig | None = None
        self._opened = False  # counted in Usage
        self._ws: web.WebSocketResponse | None = None
        self._limits = ingress.config.limits
        self._sample_rate = 16000
        self._opus = False
        self._low_latency = ingress.config.low_latency
        self._closing = False
        self._closer: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        # requests
        self._requests: dict[str, _Request] = {}
        self._current: _Request | None = None
        self._finished: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._notified: set[str] = set()
        # audio queue with a byte bound
        self._queue: asyncio.Queue[tuple[_Request, bytes, bool]] = asyncio.Queue()
        self._queued_bytes = 0
        #: The most audio bytes that waited for the engine at once (at most ``queued_audio_bytes`` plus
        #: one message).
        self.peak_queued_bytes = 0
        self._space = asyncio.Event()
        self._space.set()
        self._stopped = asyncio.Event()
        self._transport: asyncio.Transport | None = None
        #: Refused at once (4503): the process is over its connection cap.
        self._over_capacity = over_capacity
        # message-rate caps (token buckets)
        self._all_rate = _Bucket(self._limits.messages_per_second)
        self._control_rate = _Bucket(self._limits.control_messages_per_second)
        # deadlines (loop time)
        self._session_deadline = 0.0
        self._idle_deadline = 0.0

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> web.WebSocketResponse:
        auth_error = self._authenticate()
        limits = self._limits
        ws = web.WebSocketResponse(
            max_msg_size=2 * limits.message_bytes, compress=False, timeout=_CLOSE_GRACE, autoping=True
        )
        self._ws = ws
        await ws.prepare(self._request)
        self._transport = self._request.transport
        tasks: list[asyncio.Task[None]] = []
        try:
            if auth_error is not None:
                raise auth_error
            if self._over_capacity:
                raise _Fatal(
                    ErrorCode.UPSTREAM_UNAVAILABLE, "server at capacity; retry later", CloseCode.UPSTREAM_UNAVAILABLE
                )
            self._admit()
            if not await self._handshake():
                return ws
            now = self._loop.time()
            self._session_deadline = now + limits.session_seconds
            self._idle_deadline = now + limits.idle_timeout_seconds
            tasks = [
                asyncio.create_task(self._worker(), name=f"avatarkit-worker-{self.connection_id}"),
                asyncio.create_task(self._watchdog(), name=f"avatarkit-watchdog-{self.connection_id}"),
                asyncio.create_task(self._reader(), name=f"avatarkit-reader-{self.connection_id}"),
            ]
            # Whatever ends the session first (the client, a failed send, a limit, an error, the
            # server stopping) sets this, and the cleanup below runs.
            await self._stopped.wait()
        except _Fatal as fatal:
            await self._fail(fatal)
        except (ConnectionError, asyncio.TimeoutError) as err:
            log.debug("session %s: connection lost: %s", self.connection_id, err)
        except Exception:
            log.exception("session %s failed", self.connection_id)
            await self._fail(_Fatal(ErrorCode.UPSTREAM_UNAVAILABLE, "internal error", CloseCode.UPSTREAM_UNAVAILABLE))
        finally:
            try:
                self._mark_closing()
                closer = self._closer
                for task in tasks:
                    if task is not closer:
                        task.cancel()
                if tasks:
                    # The closer (if one of these) is bounded by its grace period.
                    await asyncio.gather(*tasks, return_exceptions=True)
                if closer is not None and closer not in tasks and closer is not asyncio.current_task():
                    # shut_down() from the server's on_shutdown: bounded as well.
                    await asyncio.wait({closer}, timeout=2 * _CLOSE_GRACE)
                if not ws.closed:
                    await self._close_ws(CloseCode.NORMAL, b"", _CLOSE_GRACE)
                transport = self._transport
                if transport is not None and transport.get_write_buffer_size():
                    self._abort()  # closed with data the client never read: do not wait for it
            finally:
                if self._opened and self._app is not None:
                    self._ingress.usage.close(self._app)
                    self._opened = False
            log.debug("session %s closed (code %s)", self.connection_id, ws.close_code)
        return ws

    def _mark_closing(self) -> None:
        """The session is ending: stop reading and working, wake whatever waits."""
        self._closing = True
        self._space.set()
        self._stopped.set()

    def _abort(self) -> None:
        """Drop the TCP connection without a close handshake."""
        # Also when closing: a transport closed with unsent data (a client that does not read) would
        # wait for it for ever.
        transport = self._transport
        if transport is not None:
            transport.abort()

    async def _close_ws(self, code: int, reason: bytes, timeout: float) -> None:
        """The close handshake within ``timeout`` seconds, else abort the connection."""
        ws = self._ws
        assert ws is not None
        try:
            await asyncio.wait_for(ws.close(code=code, message=reason), max(timeout, 0.05))
        except (ConnectionError, RuntimeError, asyncio.TimeoutError) as err:
            log.debug(
                "session %s: close failed (%s); aborting the connection", self.connection_id, err or type(err).__name__
            )
            self._abort()

    async def shut_down(self) -> None:
        """End the session because the server stops (within about a second, whatever the client does)."""
        await self._fail(
            _Fatal(ErrorCode.SHUTTING_DOWN, "server is shutting down; reconnect", CloseCode.GOING_AWAY),
            grace=_SHUTDOWN_GRACE,
        )

    def _authenticate(self) -> _Fatal | None:
        request, config = self._request, self._ingress.config
        app_id = (request.headers.get("X-App-ID") or request.query.get("appId", "")).strip()
        token = (request.headers.get("X-Session-Key") or request.query.get("sessionKey", "")).strip()
        if not app_id:
            return _Fatal(ErrorCode.AUTH_FAILED, "invalid session token: no app id", CloseCode.AUTH_FAILED)
        app = config.apps.get(app_id)
        if app is None:
            return _Fatal(
                ErrorCode.AUTH_FAILED,
                f"invalid session token: app id unrecognized: {app_id[:64]!r}",
                CloseCode.AUTH_FAILED,
            )
        try:
            claims = verify_token(config.token_secret, token)
        except TokenError as err:
            return _Fatal(ErrorCode.AUTH_FAILED, str(err), CloseCode.AUTH_FAILED)
        if claims.app_id != app_id:
            return _Fatal(
                ErrorCode.AUTH_FAILED,
                "invalid session token: app id mismatch (the token belongs to another app)",
                CloseCode.AUTH_FAILED,
            )
        if not app.enabled:
            # Tokens issued before the app was disabled (and the config reloaded) open nothing.
            return _Fatal(
                ErrorCode.AUTH_FAILED, f"invalid session token: app {app_id} is disabled", CloseCode.AUTH_FAILED
            )
        self._app = app
        self._limits = app.limits
        self._all_rate = _Bucket(app.limits.messages_per_second)
        self._control_rate = _Bucket(app.limits.control_messages_per_second)
        return None

    def _admit(self) -> None:
        app = self._app
        assert app is not None
        refusal = self._ingress.usage.open(app)
        if refusal is Refusal.CREDITS:
            raise _Fatal(ErrorCode.CREDITS_EXHAUSTED, "credits exhausted", CloseCode.CREDITS_EXHAUSTED)
        if refusal is Refusal.CONCURRENCY:
            raise _Fatal(
                ErrorCode.CONCURRENCY_LIMIT,
                f"concurrency limit: app {app.app_id} already has {app.limits.concurrent_sessions} open sessions",
                CloseCode.CONCURRENCY_LIMIT,
            )
        if refusal is Refusal.CAPACITY:
            raise _Fatal(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                "server at capacity; retry later",
                CloseCode.UPSTREAM_UNAVAILABLE,
            )
        self._opened = True
        store = self._ingress.store
        avatar_id = self._avatar_id
        if not avatar_id:
            raise _invalid("avatar id is required (?id=AVATAR_ID)")
        if self._ingress.config.check_avatars and store is not None and store.directory(avatar_id) is None:
            raise _Fatal(ErrorCode.NOT_FOUND, f"avatar not found: {avatar_id[:64]!r}", CloseCode.INVALID_REQUEST)

    async def _handshake(self) -> bool:
        """Read and answer ``ClientConfigureSession``; False if the client went away first."""
        ws = self._ws
        assert ws is not None
        try:
            msg = await ws.receive(timeout=self._limits.handshake_timeout_seconds)
        except asyncio.TimeoutError:
            raise _invalid(
                f"expected ClientConfigureSession message within {self._limits.handshake_timeout_seconds:g} s"
            ) from None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            self._log_end(msg)
            return False
        if msg.type != WSMsgType.BINARY:
            raise _invalid("expected ClientConfigureSession message: expected binary protobuf message, got text")
        self._check_size(msg.data)
        try:
            message = parse_message(msg.data)
        except (ValueError, DecodeError) as err:  # DecodeError is no ValueError in protobuf 7
            raise _invalid(f"failed to unmarshal initial message: {err}") from None
        if message.type != MessageType.MESSAGE_CLIENT_CONFIGURE_SESSION or message.WhichOneof("data") not in (
            None,
            "client_configure_session",
        ):
            raise _invalid(f"expected ClientConfigureSession message, got {_type_name(message.type)}")
        cfg = message.client_configure_session
        if cfg.sample_rate not in SUPPORTED_RATES:
            raise _invalid(
                f"unsupported sample rate {cfg.sample_rate}; use one of {', '.join(map(str, SUPPORTED_RATES))}"
            )
        if (
            cfg.egress_type != EgressType.EGRESS_TYPE_UNSPECIFIED
            or cfg.HasField("livekit_egress")
            or cfg.HasField("agora_egress")
        ):
            kind = (
                "Agora"
                if cfg.egress_type == EgressType.EGRESS_TYPE_AGORA or cfg.HasField("agora_egress")
                else "LiveKit"
            )
            raise _Fatal(
                ErrorCode.NOT_IMPLEMENTED,
                f"egress client is not configured on server: {kind} egress is not supported by this server; "
                "connect without egress and animation frames are returned over this WebSocket",
                CloseCode.INVALID_REQUEST,
            )
        if cfg.transport_compression != 0:
            raise _invalid(f"unsupported transport compression {cfg.transport_compression}")
        if cfg.audio_format == AudioFormat.AUDIO_FORMAT_OGG_OPUS:
            if not opus_available():
                raise _Fatal(
                    ErrorCode.NOT_IMPLEMENTED,
                    "unsupported audio format OGG_OPUS: this server lacks the 'av' package (pip install av)",
                    CloseCode.INVALID_REQUEST,
                )
            self._opus = True
        elif cfg.audio_format != AudioFormat.AUDIO_FORMAT_PCM_S16LE:
            raise _invalid(f"unsupported audio format {cfg.audio_format}; use PCM_S16LE (0) or OGG_OPUS (1)")
        lookahead = cfg.extra_params.get("lookahead", "")
        if lookahead not in ("", "low", "standard"):
            raise _invalid(f"unsupported lookahead {lookahead!r}; use 'low' or 'standard'")
        if lookahead:
            self._low_latency = lookahead == "low"
        self._sample_rate = cfg.sample_rate
        reply = Message(type=MessageType.MESSAGE_SERVER_CONFIRM_SESSION)
        reply.server_confirm_session.connection_id = self.connection_id
        reply.server_confirm_session.capabilities.extend(self._ingress.capabilities)
        reply.server_confirm_session.capabilities.append(
            f"lookahead_ms={self._ingress.lookahead_ms[self._low_latency]:g}"
        )
        await self._send(reply)
        log.debug(
            "session %s: app %s, avatar %s, %d Hz %s",
            self.connection_id,
            self._app.app_id if self._app else "?",
            self._avatar_id,
            self._sample_rate,
            "Ogg Opus" if self._opus else "PCM16",
        )
        return True

    def _check_size(self, data: bytes) -> None:
        if len(data) > self._limits.message_bytes:
            raise _Fatal(
                ErrorCode.TOO_LARGE,
                f"message too large: {len(data)} bytes (limit {self._limits.message_bytes})",
                CloseCode.MESSAGE_TOO_BIG,
            )

    def _log_end(self, msg: WSMessage) -> None:
        # ERROR: aiohttp has closed the connection itself, e.g. with 1009 for a message over twice the limit.
        if msg.type == WSMsgType.ERROR:
            log.debug("session %s: %s", self.connection_id, msg.data)

    # ------------------------------------------------------------------ reading

    async def _reader(self) -> None:
        """The read loop as a task of its own; any way it ends ends the session."""
        try:
            await self._read_loop()
        except _Fatal as fatal:
            await self._fail(fatal)
        except (ConnectionError, asyncio.TimeoutError) as err:
            log.debug("session %s: connection lost: %s", self.connection_id, err)
        except Exception:
            log.exception("session %s: reading failed", self.connection_id)
            await self._fail(_Fatal(ErrorCode.UPSTREAM_UNAVAILABLE, "internal error", CloseCode.UPSTREAM_UNAVAILABLE))
        finally:
            self._stopped.set()

    async def _read_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        limits = self._limits
        loop = self._loop
        since_yield = 0
        slice_start = time.perf_counter()
        budget = _ReadBudget(_READ_SHARE, _READ_BURST, slice_start)
        while not self._closing:
            msg = await ws.receive()
            if msg.type == WSMsgType.BINARY:
                handling = time.perf_counter()
                self._check_size(msg.data)
                try:
                    message = parse_message(msg.data)
                except (ValueError, DecodeError) as err:
                    raise _invalid(f"failed to unmarshal message: {err}") from None
                self._check_rate(message.type, loop.time())
                await self._dispatch(message)
                done = time.perf_counter()
                pause = budget.charge(done - handling, done)
                if pause > 0:
                    # A flood, even one the rate caps allow: a real sleep, so the loop's thread can
                    # go idle and release the GIL (asyncio.sleep(0) does neither).
                    await asyncio.sleep(pause)
                    since_yield, slice_start = 0, time.perf_counter()
                while not self._closing and (
                    self._queued_bytes > limits.queued_audio_bytes or self._queue.qsize() >= _MAX_QUEUED_ITEMS
                ):
                    self._space.clear()
                    await self._space.wait()  # set by the worker, and when the session ends
                    since_yield, slice_start = 0, time.perf_counter()
            elif msg.type == WSMsgType.TEXT:
                raise _invalid("expected binary protobuf message, got a text frame")
            else:  # CLOSE, CLOSING, CLOSED, ERROR (aiohttp has answered a too-large message with 1009)
                self._log_end(msg)
                return
            # Messages already buffered are returned without suspending: yield now and then so that
            # a connection sending many small messages cannot keep the loop from other sessions.
            since_yield += 1
            if since_yield >= _YIELD_EVERY or time.perf_counter() - slice_start >= _YIELD_AFTER:
                await asyncio.sleep(0)
                since_yield, slice_start = 0, time.perf_counter()

    def _check_rate(self, kind: int, now: float) -> None:
        """Close a session that sends more messages than its limits allow (400, close code 4000)."""
        limits = self._limits
        if not self._all_rate.take(now):
            raise _invalid(
                f"too many messages: more than {limits.messages_per_second:g} per second; closing the session"
            )
        if kind != MessageType.MESSAGE_CLIENT_AUDIO_INPUT and not self._control_rate.take(now):
            raise _invalid(
                f"too many control messages: more than {limits.control_messages_per_second:g} per second; "
                "closing the session"
            )

    async def _dispatch(self, message: Message) -> None:
        kind = message.type
        field = message.WhichOneof("data")
        expected = {
            MessageType.MESSAGE_CLIENT_AUDIO_INPUT: "client_audio_input",
            MessageType.MESSAGE_CLIENT_INTERRUPT: "client_interrupt",
            MessageType.MESSAGE_CLIENT_PAUSE: "client_pause",
            MessageType.MESSAGE_CLIENT_RESUME: "client_resume",
            MessageType.MESSAGE_CLIENT_CONFIGURE_SESSION: "client_configure_session",
        }.get(kind)
        if expected is None:
            await self._error(ErrorCode.BAD_REQUEST, f"unexpected message type {_type_name(kind)}; ignored")
            return
        if field not in (None, expected):
            raise _invalid(f"malformed message: {_type_name(kind)} carries {field}")
        if kind == MessageType.MESSAGE_CLIENT_AUDIO_INPUT:
            await self._on_audio(message)
        elif kind == MessageType.MESSAGE_CLIENT_INTERRUPT:
            self._on_interrupt(message.client_interrupt.req_id)
        elif kind in (MessageType.MESSAGE_CLIENT_PAUSE, MessageType.MESSAGE_CLIENT_RESUME):
            req_id = message.client_pause.req_id if field == "client_pause" else message.client_resume.req_id
            await self._error(
                ErrorCode.NOT_IMPLEMENTED,
                "playback control (pause/resume) is not supported without egress: animation is returned "
                "over the WebSocket, so pause playback on the client",
                req_id,
            )
        else:
            await self._error(ErrorCode.BAD_REQUEST, "unexpected message type: the session is already configured")

    async def _on_audio(self, message: Message) -> None:
        audio_input = message.client_audio_input
        req_id, audio, end = audio_input.req_id, audio_input.audio, audio_input.end
        if not req_id or len(req_id) > _MAX_REQ_ID:
            await self._error(
                ErrorCode.BAD_REQUEST,
                f"ClientAudioInput.req_id must be 1 to {_MAX_REQ_ID} characters; ignored",
            )
            return
        self._idle_deadline = self._loop.time() + self._limits.idle_timeout_seconds
        request = self._requests.get(req_id)
        if request is None:
            reason = self._finished.get(req_id)
            if reason is not None:
                await self._ignored(req_id, reason)
                return
            if self._current is not None and not self._current.ended:
                self._cancel(self._current, "superseded")
            request = _Request(req_id)
            self._requests[req_id] = request
            self._current = request
        elif request.ended:
            await self._ignored(req_id, "ended")
            return
        request.bytes_in += len(audio)
        limit = self._limits.request_audio_bytes
        if request.bytes_in > limit:
            self._cancel(request, "aborted")
            await self._error(
                ErrorCode.TOO_LARGE, f"request audio exceeds {limit} bytes; request {req_id} aborted", req_id
            )
            return
        if end:
            request.ended = True
            if self._current is request:
                self._current = None
        self._queued_bytes += len(audio)
        self.peak_queued_bytes = max(self.peak_queued_bytes, self._queued_bytes)
        self._queue.put_nowait((request, audio, end))

    async def _ignored(self, req_id: str, reason: str) -> None:
        if reason == "interrupted" or req_id in self._notified:
            return  # the client asked for it; audio still in flight is expected
        self._notified.add(req_id)
        await self._error(
            ErrorCode.BAD_REQUEST,
            f"request {req_id} was already {reason}; its further audio is ignored",
            req_id,
        )

    def _on_interrupt(self, req_id: str) -> None:
        targets = list(self._requests.values()) if not req_id else [self._requests.get(req_id)]
        for request in targets:
            if request is not None:
                self._cancel(request, "interrupted")

    def _cancel(self, request: _Request, reason: str) -> None:
        request.cancelled = True
        self._finish(request, reason)

    def _finish(self, request: _Request, reason: str) -> None:
        self._requests.pop(request.req_id, None)
        if self._current is request:
            self._current = None
        self._finished[request.req_id] = reason
        while len(self._finished) > _REMEMBERED_REQUESTS:
            old, _ = self._finished.popitem(last=False)
            self._notified.discard(old)

    # ------------------------------------------------------------------ the engine

    async def _worker(self) -> None:
        app = self._app
        assert app is not None
        usage = self._ingress.usage
        try:
            while not self._closing:
                if not self._queue.empty():
                    await asyncio.sleep(0)  # a backlog must not keep the loop from other sessions
                request, audio, end = await self._queue.get()
                self._queued_bytes -= len(audio)
                if self._queued_bytes <= self._limits.queued_audio_bytes:
                    self._space.set()
                if request.cancelled or self._closing:
                    continue
                if usage.credits_exhausted(app):
                    raise _Fatal(ErrorCode.CREDITS_EXHAUSTED, "credits exhausted", CloseCode.CREDITS_EXHAUSTED)
                try:
                    result = await self._run(request, audio, end)
                except AudioDecodeError as err:
                    self._cancel(request, "aborted")
                    await self._error(
                        ErrorCode.BAD_REQUEST,
                        f"cannot decode the audio of request {request.req_id}: {err}",
                        request.req_id,
                    )
                    continue
                except Exception:
                    log.exception("session %s: engine failed", self.connection_id)
                    raise _Fatal(
                        ErrorCode.UPSTREAM_UNAVAILABLE,
                        "engine failed; retry later",
                        CloseCode.UPSTREAM_UNAVAILABLE,
                    ) from None
                if result is None:  # interrupted or superseded meanwhile
                    continue
                usage.charge(app, result.seconds)
                if request.cancelled or self._closing:
                    continue
                if result.dropped_bytes:
                    await self._error(
                        ErrorCode.BAD_REQUEST,
                        f"odd PCM16 byte count: the audio of request {request.req_id} has an odd number of "
                        f"bytes; its last byte is not a whole sample and was dropped",
                        request.req_id,
                    )
                if result.payload is not None:
                    await self._send_animation(request, result.payload, end)
                if end:
                    self._finish(request, "ended")
        except _Fatal as fatal:
            await self._fail(fatal)
        except Exception:
            log.exception("session %s: worker failed", self.connection_id)
            await self._fail(_Fatal(ErrorCode.UPSTREAM_UNAVAILABLE, "internal error", CloseCode.UPSTREAM_UNAVAILABLE))

    async def _run(self, request: _Request, audio: bytes, end: bool) -> _Result | None:
        """Decode, run the engine, encode; None if the request was cancelled meanwhile.

        The audio goes through in slices (see :class:`_EngineRunner`), the loop free between them.
        """
        runner = self._ingress.runner
        if request.engine is None:
            request.engine = EngineSession(self._sample_rate, low_latency=self._low_latency)
            request.encoder = codec.StreamEncoder(codec.canonical_schema())
            request.audio = OggOpusInput(self._sample_rate) if self._opus else PcmInput()
        engine, encoder, decoder = request.engine, request.encoder, request.audio
        assert encoder is not None
        assert decoder is not None
        parts: list[npt.NDArray[np.float32]] = []
        samples = 0
        slice_seconds = runner.slice_seconds()
        # Ogg Opus: about 4 kB per second of speech.
        step = max(256, int(slice_seconds * 4000)) if self._opus else 2 * int(slice_seconds * self._sample_rate)
        for offset in range(0, len(audio), step):
            if offset:
                await asyncio.sleep(0)
                if request.cancelled or self._closing:
                    return None
            piece = audio[offset : offset + step]
            seconds = len(piece) / 4000 if self._opus else len(piece) / (2 * self._sample_rate)
            frames, count = await runner.run(functools.partial(self._step, engine, decoder, piece), seconds)
            samples += count
            parts.append(frames)
        dropped = 0
        if end:
            tail = decoder.finish()
            if len(tail):
                samples += len(tail)
                parts.append(await runner.run(functools.partial(engine.push, tail), len(tail) / self._sample_rate))
            parts.append(engine.flush())
            dropped = getattr(decoder, "dropped_bytes", 0)
        frames = np.concatenate(parts) if parts else np.zeros((0, len(engine.channels)), np.float32)
        payload = encoder.encode(frames) if len(frames) or end else None
        return _Result(payload=payload, frames=len(frames), seconds=samples / self._sample_rate, dropped_bytes=dropped)

    @staticmethod
    def _step(engine: EngineSession, decoder: AudioInput, piece: bytes) -> tuple[npt.NDArray[np.float32], int]:
        pcm = decoder.feed(piece)
        if not len(pcm):
            return np.zeros((0, len(engine.channels)), np.float32), 0
        return engine.push(pcm), len(pcm)

    async def _send_animation(self, request: _Request, payload: bytes, end: bool) -> None:
        message = Message(type=MessageType.MESSAGE_SERVER_RESPONSE_ANIMATION)
        animation = message.server_response_animation
        animation.connection_id = self.connection_id
        animation.req_id = request.req_id
        animation.animation = payload
        animation.end = end
        animation.avatar_id = self._avatar_id
        await self._send(message)

    async def _watchdog(self) -> None:
        # The limits hold even while a send waits for a client that does not read: _fail's sends and
        # close are bounded, and then the connection is aborted.
        try:
            while not self._closing:
                now = self._loop.time()
                if now >= self._session_deadline:
                    raise _Fatal(
                        ErrorCode.SESSION_TIMEOUT,
                        f"session time limit reached (maximum session duration "
                        f"{self._limits.session_seconds:g} s); reconnect to continue",
                        CloseCode.SESSION_TIMEOUT,
                    )
                if now >= self._idle_deadline:
                    raise _Fatal(
                        ErrorCode.TIMEOUT,
                        f"no audio input for {self._limits.idle_timeout_seconds:g} s; closing the idle session",
                        CloseCode.NORMAL,
                    )
                await asyncio.sleep(min(self._session_deadline, self._idle_deadline) - now + 0.001)
        except _Fatal as fatal:
            await self._fail(fatal)

    # ------------------------------------------------------------------ sending

    async def _send(self, message: Message) -> None:
        ws = self._ws
        assert ws is not None
        data = message.SerializeToString()
        async with self._send_lock:
            if ws.closed:
                return
            try:
                # Waits while the client does not read: this session stalls, no other. The watchdog's
                # limits (idle, session) still end it.
                await ws.send_bytes(data)
            except (ConnectionError, RuntimeError) as err:
                log.debug("session %s: send failed: %s", self.connection_id, err)
                self._mark_closing()

    async def _error(self, code: int, text: str, req_id: str = "") -> None:
        message = Message(type=MessageType.MESSAGE_SERVER_ERROR)
        error = message.server_error
        error.connection_id = self.connection_id
        error.req_id = req_id
        error.code = int(code)
        error.message = text
        await self._send(message)

    async def _fail(self, fatal: _Fatal, grace: float = _CLOSE_GRACE) -> None:
        """Send ``ServerError`` and close with the fatal error's close code (once per session).

        Both have ``grace`` seconds in all; a connection that has not closed by then is aborted.
        """
        if self._closing or self._ws is None:
            return
        self._mark_closing()
        self._closer = asyncio.current_task()
        deadline = self._loop.time() + grace
        log.debug("session %s: closing %d: %s", self.connection_id, fatal.close_code, fatal.message)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._error(fatal.code, fatal.message), grace)
        reason = fatal.message.encode()[:120]
        await self._close_ws(fatal.close_code, reason, deadline - self._loop.time())


class _ReadBudget:
    """The loop time one connection's message handling may take: a token bucket of seconds.

    It fills at ``share`` seconds per second up to ``burst`` seconds; :meth:`charge` takes the time
    one message took and returns how long the read loop should sleep to stay within the share (0
    while it does). A client streaming in real time never waits; a flood of tiny messages gets at
    most ``share`` of the loop for its handling, whatever the rate caps allow, and the rest of
    its messages wait in the socket.
    """

    def __init__(self, share: float, burst: float, now: float) -> None:
        if not 0 < share <= 1 or burst <= 0:
            raise ValueError("share must be in (0, 1] and burst positive")
        self._share = share
        self._burst = burst
        self._level = burst
        self._stamp = now

    def charge(self, seconds: float, now: float) -> float:
        """Account ``seconds`` of handling that ended at ``now``; the pause it calls for."""
        self._level = min(self._burst, self._level + max(0.0, now - self._stamp) * self._share) - seconds
        self._stamp = now
        return 0.0 if self._level >= 0 else -self._level / self._share


class _Bucket:
    """A token bucket: ``rate`` messages per second on average, bursts of ``_RATE_WINDOW`` seconds' worth."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._capacity = rate * _RATE_WINDOW
        self._tokens = self._capacity
        self._stamp = time.monotonic()

    def take(self, now: float) -> bool:
        """Take one token (False: the bucket is empty)."""
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
