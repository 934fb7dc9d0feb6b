"""Close codes and error codes of the driving service, and what a client makes of them.

One module for both ends: the service (:mod:`avatarkit.server.ingress`) closes with these codes and
reports these ``ServerError.code`` values; the client (:mod:`avatarkit.transport`) turns them into
:class:`~avatarkit.errors.AvatarError` and decides whether to connect again. The values are the
commercial service's (``docs/protocol.md``).
"""

from __future__ import annotations

import enum

from ..errors import AvatarError, AvatarErrorCode

__all__ = [
    "RETRYABLE_CLOSE_CODES",
    "CloseCode",
    "ErrorCode",
    "close_error",
    "handshake_error",
    "is_retryable_close",
    "is_retryable_error",
    "server_error",
    "service_said_why",
]


class CloseCode(enum.IntEnum):
    """WebSocket close codes of the driving service."""

    NORMAL = 1000
    GOING_AWAY = 1001
    ABNORMAL = 1006  # no close frame: never sent, only seen
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    INVALID_REQUEST = 4000
    CREDITS_EXHAUSTED = 4001
    SESSION_TIMEOUT = 4002
    CONCURRENCY_LIMIT = 4003
    AUTH_FAILED = 4010
    UPSTREAM_UNAVAILABLE = 4503


class ErrorCode(enum.IntEnum):
    """``ServerError.code`` values: session-fate close codes, else HTTP-style statuses."""

    BAD_REQUEST = 400
    NOT_FOUND = 404
    TIMEOUT = 408
    TOO_LARGE = 413
    NOT_IMPLEMENTED = 501
    SHUTTING_DOWN = 503
    CREDITS_EXHAUSTED = 4001
    SESSION_TIMEOUT = 4002
    CONCURRENCY_LIMIT = 4003
    AUTH_FAILED = 4010
    UPSTREAM_UNAVAILABLE = 4503


#: Close codes after which a client connects again by itself (besides 45xx and a broken socket).
RETRYABLE_CLOSE_CODES = frozenset(
    {
        CloseCode.GOING_AWAY,
        CloseCode.ABNORMAL,
        CloseCode.INTERNAL_ERROR,
        CloseCode.SERVICE_RESTART,
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.BAD_GATEWAY,
        CloseCode.SESSION_TIMEOUT,
    }
)

#: Close codes that say what became of the session (they map to an AvatarErrorCode of their own).
_SESSION_FATE = frozenset(
    {CloseCode.CREDITS_EXHAUSTED, CloseCode.SESSION_TIMEOUT, CloseCode.CONCURRENCY_LIMIT, CloseCode.AUTH_FAILED}
)

#: Closes that are no error in themselves: the service did not say why unless a ServerError came first.
_NEUTRAL_CLOSES = frozenset(
    {
        CloseCode.NORMAL,
        CloseCode.GOING_AWAY,
        CloseCode.SERVICE_RESTART,
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.BAD_GATEWAY,
    }
)


def is_retryable_close(code: int | None) -> bool:
    """Whether a client connects again by itself after the connection closed with ``code``.

    Yes for 4002 (session time limit: "reconnect is allowed and expected"), 45xx (upstream
    unavailable: retry with backoff), and the transport's own: no code (the socket broke), 1001
    going away, 1006 abnormal closure (no close frame: the peer process died), 1011 server error,
    1012 service restart, 1013 try again later, 1014 bad gateway. Not 1000 (a clean close) and not
    40xx (the request is at fault: a new token, credits or fewer sessions are needed first).
    """
    return code is None or code in RETRYABLE_CLOSE_CODES or 4500 <= code < 4600


def service_said_why(code: int | None, said: bool) -> bool:
    """Whether a connection that ended on its own ended for a reason the service gave.

    False when it did not say: no close frame (the socket broke, 1006), or a close that is no error
    (1000, 1001, 1012-1014: going away, restarting, a proxy) with no ``ServerError`` just before it
    (``said``). True for a ``ServerError`` just before the close frame (503 then 1001 on shutdown,
    4002, 4503, ...) or an error close code (1011, 4xxx).
    """
    if code is None or code == CloseCode.ABNORMAL:
        return False
    return said or code not in _NEUTRAL_CLOSES


def is_retryable_error(error: AvatarError) -> bool:
    """Whether a failed connection attempt is worth another.

    Yes when the service is unreachable, going away or failing; no when it refuses this client
    (token, credits, concurrency, avatar).
    """
    return error.code in (
        AvatarErrorCode.WEBSOCKET_ERROR,
        AvatarErrorCode.WEBSOCKET_CLOSED_ABNORMALLY,
        AvatarErrorCode.SERVER_ERROR,
    )


def handshake_error(status: int, message: str) -> AvatarError:
    """The error of a WebSocket upgrade the service refused with HTTP ``status``."""
    if status == 401:
        return AvatarError(AvatarErrorCode.SESSION_TOKEN_EXPIRED, f"the service refused the token ({status})")
    if status in (400, 403):
        return AvatarError(AvatarErrorCode.SESSION_TOKEN_INVALID, f"the service refused the token ({status}) {message}")
    if status == 404:
        return AvatarError(AvatarErrorCode.AVATAR_ID_UNRECOGNIZED, f"the service does not know this avatar ({status})")
    return AvatarError(AvatarErrorCode.WEBSOCKET_ERROR, f"WebSocket upgrade failed ({status}) {message}")


def server_error(code: int, message: str, close_code: int | None = None) -> AvatarError:
    """The error of a ``ServerError`` (``code``, ``message``), with the close code that followed it if any."""
    text = message.lower()
    if "app id unrecognized" in text:
        # The service knows no app of the id given to AvatarSDK.initialize (it refuses with 4010,
        # worded "invalid session token: app id unrecognized"): a new token would not help.
        return AvatarError(AvatarErrorCode.APP_ID_UNRECOGNIZED, message)
    if ErrorCode.AUTH_FAILED in (code, close_code) or "token" in text:
        expired = "expired" in text
        kind = AvatarErrorCode.SESSION_TOKEN_EXPIRED if expired else AvatarErrorCode.SESSION_TOKEN_INVALID
        return AvatarError(kind, message)
    mapping = {
        ErrorCode.CREDITS_EXHAUSTED: AvatarErrorCode.INSUFFICIENT_BALANCE,
        ErrorCode.SESSION_TIMEOUT: AvatarErrorCode.SESSION_TIMEOUT,
        ErrorCode.CONCURRENCY_LIMIT: AvatarErrorCode.CONCURRENT_LIMIT_EXCEEDED,
    }
    for c in (code, close_code):
        if c in mapping:
            return AvatarError(mapping[ErrorCode(c)], message)
    if "avatar not found" in text:
        return AvatarError(AvatarErrorCode.AVATAR_ID_UNRECOGNIZED, message)
    return AvatarError(AvatarErrorCode.SERVER_ERROR, f"{code}: {message}")


def close_error(code: int | None, message: str) -> AvatarError:
    """The error of a connection closed with ``code`` (and the close frame's or our ``message``)."""
    if code is not None and code in _SESSION_FATE:
        return server_error(code, message, code)
    return AvatarError(AvatarErrorCode.WEBSOCKET_CLOSED_ABNORMALLY, f"closed with code {code}: {message}")
