"""The driving service on the asset endpoint's aiohttp app: session tokens and the WebSocket.

Routes added by :func:`add_driving_service`:

- ``POST /v1/auth/session-token`` and its alias ``POST /v1/console/session-tokens``: header
  ``X-Api-Key``, body ``{"expireAt": unix_seconds}`` (in the future, at most 24 h ahead) ->
  ``{"sessionToken": ..., "session_token": ..., "expireAt": ...}`` (the official docs name the field
  ``sessionToken``; the official Python SDK reads ``session_token``). Errors are
  ``{"errors": [{"status", "code", "title", "detail"}]}`` with 401 (missing or wrong API key), 402
  (credits exhausted), 403 (app disabled), 404 (an ``X-App-ID`` header naming no app), 400 (bad body
  or expiry; ``app id mismatch`` when ``X-App-ID`` names another app than the key's), 408 (the body
  did not arrive within ``body_timeout_seconds``), 429 with ``Retry-After`` (more than
  ``auth_failures_per_minute`` wrong API keys from the client's address this minute).
- Every route: 503 with ``Retry-After`` (WebSocket: ``ServerError 4503``, close 4503) while the
  process has ``ServiceConfig.connection_cap()`` requests and sessions in progress; logged at most
  once per 10 s.
- ``GET /v2/driveningress/websocket?id=AVATAR_ID``: see :mod:`avatarkit.server.ingress`.

Example:
    >>> from avatarkit.server.config import AppConfig, ServiceConfig
    >>> config = ServiceConfig(apps={"demo": AppConfig("demo", "ak_secret-key")}, check_avatars=False)
    >>> with start_service(config) as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import math
import os
import platform
import time
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from .app import STORE_KEY, AvatarStore, BackgroundServer, create_app, run_in_background
from .config import ServiceConfig
from .ingress import INGRESS_PATH, Ingress
from .tokens import issue_token
from .usage import Usage

__all__ = [
    "SERVICE_KEY",
    "TOKEN_PATHS",
    "AcceptErrorFilter",
    "DrivingService",
    "add_driving_service",
    "create_service_app",
    "start_service",
]

TOKEN_PATHS = ("/v1/auth/session-token", "/v1/console/session-tokens")
#: Liveness for load balancers and process managers: ``{"status": "ok", "worker": ..., "sessions": n,
#: "open_sessions": m}`` (WebSocket connections in progress; sessions counted against the limits).
HEALTH_PATH = "/v1/health"
#: This process's name in health replies: ``AVATARKIT_WORKER`` if set, else host name and process id.
WORKER_NAME = os.environ.get("AVATARKIT_WORKER") or f"{platform.node()}:{os.getpid()}"
_MAX_BODY = 64 * 1024
#: Client addresses whose failed API keys are remembered at once (the oldest are forgotten).
_MAX_THROTTLED = 10_000
#: The connection cap's warning is logged at most once per this many seconds.
_CAP_LOG_INTERVAL = 10.0

log = logging.getLogger(__name__)
#: Clock skew tolerated on ``expireAt`` beyond the 24 h limit.
_SKEW = 60


class KeyThrottle:
    """Failed API keys per client address: past ``limit`` in a minute, the address waits."""

    WINDOW = 60.0

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._failures: collections.OrderedDict[str, tuple[float, int]] = collections.OrderedDict()

    def retry_after(self, address: str, now: float) -> float:
        """Seconds ``address`` must wait before its next try (0: it may try now)."""
        entry = self._failures.get(address)
        if entry is None:
            return 0.0
        start, count = entry
        if now - start >= self.WINDOW:
            del self._failures[address]
            return 0.0
        return start + self.WINDOW - now if count >= self._limit else 0.0

    def failed(self, address: str, now: float) -> None:
        """Count a wrong key from ``address``."""
        start, count = self._failures.pop(address, (now, 0))
        if now - start >= self.WINDOW:
            start, count = now, 0
        self._failures[address] = (start, count + 1)
        while len(self._failures) > _MAX_THROTTLED:
            self._failures.popitem(last=False)


class _RateLimitedWarning:
    """A warning logged at most once per interval, with how often it happened meanwhile."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last = -math.inf
        self._count = 0

    def __call__(self, message: str, *args: object) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= self._interval:
            log.warning(message + " (%d times in the last %g s)", *args, self._count, self._interval)
            self._last, self._count = now, 0


class AcceptErrorFilter(logging.Filter):
    """Lets asyncio's "socket.accept() out of system resource" error through once per ``interval``.

    At the file-descriptor limit asyncio logs it, with a traceback, on every accept it retries; the
    service's connection cap keeps it rare, and this filter keeps it from flooding the log.
    Install it on the ``asyncio`` logger (``avatarkit serve`` does).
    """

    def __init__(self, interval: float = _CAP_LOG_INTERVAL) -> None:
        super().__init__()
        self._interval = interval
        self._last = -math.inf
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat within the interval."""
        if "socket.accept() out of system resource" not in str(record.msg):
            return True
        now = time.monotonic()
        if now - self._last < self._interval:
            self._dropped += 1
            return False
        if self._dropped:
            record.msg = f"{record.msg} ({self._dropped} more since the last report)"
        self._last, self._dropped = now, 0
        return True


@dataclasses.dataclass
class DrivingService:
    """The driving service's state on an aiohttp app (``app[SERVICE_KEY]``)."""

    config: ServiceConfig
    usage: Usage
    ingress: Ingress
    throttle: KeyThrottle = dataclasses.field(init=False)
    #: HTTP requests and WebSocket sessions in progress.
    in_progress: int = 0

    def __post_init__(self) -> None:
        self.throttle = KeyThrottle(self.config.auth_failures_per_minute)


SERVICE_KEY = web.AppKey("avatarkit_driving_service", DrivingService)


def _error(status: int, code: str, title: str, detail: str) -> web.Response:
    body = {"errors": [{"status": str(status), "code": code, "title": title, "detail": detail}]}
    return web.json_response(body, status=status)


async def session_token(request: web.Request) -> web.Response:
    """``POST /v1/auth/session-token``: exchange an API key for a signed session token."""
    service = request.app[SERVICE_KEY]
    config = service.config
    address = request.remote or "?"
    now = time.monotonic()
    wait = service.throttle.retry_after(address, now)
    if wait > 0:
        response = _error(429, "tooManyRequests", "Too many requests", "too many wrong API keys; retry later")
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    api_key = request.headers.get("X-Api-Key", "")
    if not api_key:
        return _error(401, "missingApiKey", "Missing API key", "the X-Api-Key header is required")
    app = config.app_for_key(api_key)
    if app is None:
        service.throttle.failed(address, now)
        return _error(401, "invalidApiKey", "Invalid API key", "the API key is not valid")
    named = request.headers.get("X-App-ID")
    if named:
        if named not in config.apps:
            return _error(404, "appIDUnrecognized", "App not found", f"app id unrecognized: {named[:64]!r}")
        if named != app.app_id:
            return _error(
                400, "appIDMismatch", "App ID mismatch", "app id mismatch: the API key belongs to another app"
            )
    if not app.enabled:
        return _error(403, "appDisabled", "App disabled", f"app {app.app_id} is disabled")
    if service.usage.credits_exhausted(app):
        return _error(402, "creditsExhausted", "Credits exhausted", f"credits exhausted for app {app.app_id}")

    if request.content_length is not None and request.content_length > _MAX_BODY:
        return _error(400, "invalidRequest", "Invalid request", f"the body is larger than {_MAX_BODY} bytes")
    try:
        raw = await asyncio.wait_for(_read_body(request), config.body_timeout_seconds)
    except asyncio.TimeoutError:
        return _error(408, "requestTimeout", "Request timeout", f"no body within {config.body_timeout_seconds:g} s")
    except (ConnectionError, web.HTTPException) as err:
        # The client went away mid-body (or sent a malformed one): nobody to answer, nothing to log.
        log.debug("token request from %s: body not read: %s", address, err)
        raise web.HTTPBadRequest() from None
    if raw is None:
        return _error(400, "invalidRequest", "Invalid request", f"the body is larger than {_MAX_BODY} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return _error(400, "invalidRequest", "Invalid request", 'the body must be a JSON object {"expireAt": ...}')
    expire_at = body.get("expireAt")
    if isinstance(expire_at, bool) or not isinstance(expire_at, int | float) or not math.isfinite(expire_at):
        return _error(400, "invalidRequest", "Invalid request", "expireAt (unix seconds) is required")
    if not isinstance(body.get("modelVersion", ""), str):
        return _error(400, "invalidRequest", "Invalid request", "modelVersion must be a string")
    now = time.time()
    if expire_at <= now:
        return _error(400, "invalidExpireAt", "Invalid expireAt", "expireAt must be in the future")
    if expire_at > now + config.max_token_seconds + _SKEW:
        hours = config.max_token_seconds / 3600
        return _error(400, "invalidExpireAt", "Invalid expireAt", f"expireAt must be at most {hours:g} hours ahead")
    token = issue_token(config.token_secret, app.app_id, int(expire_at))
    return web.json_response({"sessionToken": token, "session_token": token, "expireAt": int(expire_at)})


async def _read_body(request: web.Request) -> bytes | None:
    """The request body, or None when it is longer than ``_MAX_BODY``."""
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            block = await request.content.read(16384)
            if not block:
                return b"".join(parts)
            size += len(block)
            if size > _MAX_BODY:
                return None
            parts.append(block)
    except Exception as err:  # aiohttp's payload errors on a client that hangs up are no ConnectionError
        if isinstance(err, ConnectionError | asyncio.TimeoutError):
            raise
        raise ConnectionResetError(str(err)) from err


def _connection_cap(service: DrivingService) -> Callable[..., Awaitable[web.StreamResponse]]:
    cap = service.config.connection_cap()
    warn = _RateLimitedWarning(_CAP_LOG_INTERVAL)

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        over = service.in_progress >= cap
        service.in_progress += 1  # refusals too: a refused WebSocket holds its descriptor while it closes
        try:
            if over:
                warn("at the connection cap (%d requests and sessions in progress): refusing new ones", cap)
                if request.path == INGRESS_PATH:
                    return await service.ingress.refuse(request)  # ServerError 4503, close 4503
                response = _error(503, "serverBusy", "Server busy", "the server is at capacity; retry later")
                response.headers["Retry-After"] = "1"
                return response
            return await handler(request)
        finally:
            service.in_progress -= 1

    return middleware


def add_driving_service(app: web.Application, config: ServiceConfig) -> DrivingService:
    """Add the token endpoints and the WebSocket to ``app`` (made by :func:`create_app`)."""
    store = app.get(STORE_KEY)
    usage = Usage(config)
    ingress = Ingress(config, usage, store)
    service = DrivingService(config=config, usage=usage, ingress=ingress)
    app[SERVICE_KEY] = service
    app.middlewares.append(_connection_cap(service))
    for path in TOKEN_PATHS:
        app.router.add_post(path, session_token)
    app.router.add_get(INGRESS_PATH, ingress.handle)

    async def health(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "worker": WORKER_NAME,
                "sessions": len(ingress.connections),
                "open_sessions": usage.open_sessions(),
            }
        )

    app.router.add_get(HEALTH_PATH, health)
    app.on_shutdown.append(ingress.on_shutdown)
    app.on_cleanup.append(ingress.on_cleanup)
    return service


def create_service_app(config: ServiceConfig, avatar_roots: Iterable[str | os.PathLike[str]] = ()) -> web.Application:
    """One app serving avatars (``config.avatar_roots`` and ``avatar_roots``), tokens and the WebSocket."""
    store = AvatarStore([*config.avatar_roots, *avatar_roots])
    app = create_app(store)
    add_driving_service(app, config)
    return app


def start_service(
    config: ServiceConfig,
    *,
    avatar_roots: Iterable[str | os.PathLike[str]] = (),
    host: str = "127.0.0.1",
    port: int = 0,
) -> BackgroundServer:
    """Run the whole service on a thread of its own (tests, demos); port 0 picks a free port."""
    return run_in_background(create_service_app(config, avatar_roots), host, port)
