"""The driving service on the asset endpoint's aiohttp app: session tokens and the WebSocket.

Routes added by :func:`add_driving_service`:

- ``POST /v1/auth/session-token`` and its alias ``POST /v1/console/session-tokens``: header
  ``X-Api-Key``, body ``{"expireAt": unix_seconds}`` (in the future, at most 24 h ahead) ->
  ``{"sessionToken": ..., "session_token": ..., "expireAt": ...}`` (the official docs name the field
  ``sessionToken``; the official Python SDK reads ``session_token``). Errors are
  ``{"errors": [{"status", "code", "title", "detail"}]}`` with 401 (missing or wrong API key), 402
  (credits exhausted), 403 (app disabled), 404 (an ``X-App-ID`` header naming no app), 400 (bad body
  or expiry; ``app id mismatch`` when ``X-App-ID`` names another app than the key's).
- ``GET /v2/driveningress/websocket?id=AVATAR_ID``: see :mod:`avatarkit.server.ingress`.

Example:
    >>> from avatarkit.server.config import AppConfig, ServiceConfig
    >>> config = ServiceConfig(apps={"demo": AppConfig("demo", "ak_secret-key")}, check_avatars=False)
    >>> with start_service(config) as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from collections.abc import Iterable

from aiohttp import web

from .app import STORE_KEY, AvatarStore, BackgroundServer, create_app, run_in_background
from .config import ServiceConfig
from .ingress import INGRESS_PATH, Ingress
from .tokens import issue_token
from .usage import Usage

__all__ = [
    "SERVICE_KEY",
    "TOKEN_PATHS",
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
#: Clock skew tolerated on ``expireAt`` beyond the 24 h limit.
_SKEW = 60


@dataclasses.dataclass
class DrivingService:
    """The driving service's state on an aiohttp app (``app[SERVICE_KEY]``)."""

    config: ServiceConfig
    usage: Usage
    ingress: Ingress


SERVICE_KEY = web.AppKey("avatarkit_driving_service", DrivingService)


def _error(status: int, code: str, title: str, detail: str) -> web.Response:
    body = {"errors": [{"status": str(status), "code": code, "title": title, "detail": detail}]}
    return web.json_response(body, status=status)


async def session_token(request: web.Request) -> web.Response:
    """``POST /v1/auth/session-token``: exchange an API key for a signed session token."""
    service = request.app[SERVICE_KEY]
    config = service.config
    api_key = request.headers.get("X-Api-Key", "")
    if not api_key:
        return _error(401, "missingApiKey", "Missing API key", "the X-Api-Key header is required")
    app = config.app_for_key(api_key)
    if app is None:
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
        body = json.loads(await request.read())
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


def add_driving_service(app: web.Application, config: ServiceConfig) -> DrivingService:
    """Add the token endpoints and the WebSocket to ``app`` (made by :func:`create_app`)."""
    store = app.get(STORE_KEY)
    usage = Usage(config)
    ingress = Ingress(config, usage, store)
    service = DrivingService(config=config, usage=usage, ingress=ingress)
    app[SERVICE_KEY] = service
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
