"""Session tokens: short-lived, signed, verifiable by any process that knows the secret.

A token is ``<payload>.<signature>``, both base64url without padding. The payload is a version
byte (1), the expiry (unix seconds, u64 big endian), a 16-byte random nonce and the app id (UTF-8);
the signature is HMAC-SHA256 of the encoded payload under the service's ``token_secret``. Nothing is
stored on issue, so any number of server processes sharing the secret accept each other's tokens.

Example:
    >>> secret = b"0123456789abcdef0123456789abcdef"
    >>> token = issue_token(secret, "demo", 2_000_000_000)
    >>> verify_token(secret, token, now=1_900_000_000).app_id
    'demo'
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import secrets
import struct
import time

__all__ = ["TokenClaims", "TokenError", "issue_token", "verify_token"]

_VERSION = 1
_HEAD = struct.Struct(">BQ16s")  # version, expire_at, nonce
#: Tokens longer than this are rejected before any decoding.
MAX_TOKEN_LENGTH = 512


class TokenError(ValueError):
    """A session token that does not verify; ``expired`` tells an expired one from a bad one."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclasses.dataclass(frozen=True)
class TokenClaims:
    """What a verified token says."""

    app_id: str
    expire_at: int
    nonce: bytes


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64encode(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def issue_token(secret: bytes, app_id: str, expire_at: int, *, nonce: bytes | None = None) -> str:
    """A token for ``app_id`` valid until ``expire_at`` (unix seconds)."""
    nonce = secrets.token_bytes(16) if nonce is None else nonce
    if len(nonce) != 16:
        raise ValueError("nonce must be 16 bytes")
    payload = _b64encode(_HEAD.pack(_VERSION, expire_at, nonce) + app_id.encode("utf-8"))
    return f"{payload}.{_sign(secret, payload)}"


def verify_token(secret: bytes, token: str, *, now: float | None = None) -> TokenClaims:
    """The claims of ``token`` if it is genuine and unexpired.

    Raises:
        TokenError: empty, malformed, forged (wrong signature) or expired (``expired=True``).
    """
    if not token:
        raise TokenError("empty token")
    # Validated before anything compares it: compare_digest refuses non-ASCII text (TypeError).
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii() or token.count(".") != 1:
        raise TokenError("invalid session token: malformed")
    payload, signature = token.split(".")
    try:
        if not hmac.compare_digest(_sign(secret, payload), signature):
            raise TokenError("invalid session token: bad signature")
        raw = _b64decode(payload)
    except (UnicodeEncodeError, binascii.Error, ValueError) as err:
        if isinstance(err, TokenError):
            raise
        raise TokenError("invalid session token: malformed") from err
    if len(raw) <= _HEAD.size:
        raise TokenError("invalid session token: malformed")
    version, expire_at, nonce = _HEAD.unpack_from(raw)
    if version != _VERSION:
        raise TokenError(f"invalid session token: unsupported version {version}")
    try:
        app_id = raw[_HEAD.size :].decode("utf-8")
    except UnicodeDecodeError as err:
        raise TokenError("invalid session token: malformed") from err
    if expire_at <= (time.time() if now is None else now):
        raise TokenError(f"session token expired: token is expired (expired at {expire_at})", expired=True)
    return TokenClaims(app_id=app_id, expire_at=expire_at, nonce=nonce)
