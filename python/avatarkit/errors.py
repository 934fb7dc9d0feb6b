"""The typed errors of AvatarKit for Python.

The codes mirror the error cases of the commercial AvatarKit SDKs, so an app ported from them can
switch on the same names: each member's value is the SDK's own spelling, for logs and wire messages.

Example:
    >>> from avatarkit.errors import AvatarError, AvatarErrorCode
    >>> err = AvatarError(AvatarErrorCode.INCOMPATIBLE_AVATAR_ASSET, "avatar.glb: bad magic")
    >>> str(err)
    'incompatibleAvatarAsset: avatar.glb: bad magic'
    >>> err.code is AvatarErrorCode.INCOMPATIBLE_AVATAR_ASSET
    True
"""

from __future__ import annotations

import enum

__all__ = ["AvatarError", "AvatarErrorCode"]


class AvatarErrorCode(enum.Enum):
    """Why an AvatarKit operation failed; the value is the commercial SDK's name for the case."""

    #: The avatar id is unknown to the asset service (or is not a valid id at all).
    AVATAR_ID_UNRECOGNIZED = "avatarIDUnrecognized"
    #: The avatar's manifest could not be fetched or parsed.
    FAILED_TO_FETCH_AVATAR_METADATA = "failedToFetchAvatarMetadata"
    #: A file of the avatar bundle could not be downloaded.
    FAILED_TO_DOWNLOAD_AVATAR_ASSETS = "failedToDownloadAvatarAssets"
    #: A file the avatar needs is not there (not in the cache, not on disk).
    AVATAR_ASSETS_MISSING = "avatarAssetsMissing"
    #: A file is there but malformed, or uses something this version does not support.
    INCOMPATIBLE_AVATAR_ASSET = "incompatibleAvatarAsset"
    #: An operation that needs ``initialize`` ran before it.
    SDK_NOT_INITIALIZED = "sdkNotInitialized"
    #: The caller passed a value outside what the operation accepts.
    INVALID_ARGUMENT = "invalidArgument"
    #: The load was cancelled before it finished.
    LOAD_CANCELLED = "loadCancelled"
    #: The object (a view, a controller) was destroyed or closed and cannot be used any more.
    DESTROYED = "destroyed"
    #: Rendering failed: no OpenGL context could be made, or OpenGL reported an error.
    RENDER_FAILED = "renderFailed"
    #: A call made in the wrong state (send before start, yield in SDK mode, ...).
    INVALID_STATE = "invalidState"
    #: The session token is invalid, or does not belong to this app id (close code 4010).
    SESSION_TOKEN_INVALID = "sessionTokenInvalid"
    #: The session token has expired: get a new one, set it, and start() again (close code 4010).
    SESSION_TOKEN_EXPIRED = "sessionTokenExpired"
    #: The app ran out of credits (close code 4001).
    INSUFFICIENT_BALANCE = "insufficientBalance"
    #: The session reached its time limit; the controller reconnects by itself (close code 4002).
    SESSION_TIMEOUT = "sessionTimeout"
    #: Too many concurrent sessions for the app (close code 4003).
    CONCURRENT_LIMIT_EXCEEDED = "concurrentLimitExceeded"
    #: The app id is unknown to the service.
    APP_ID_UNRECOGNIZED = "appIDUnrecognized"
    #: The driving service reported an error (``ServerError``).
    SERVER_ERROR = "serverError"
    #: The WebSocket could not be opened or failed.
    WEBSOCKET_ERROR = "websocketError"
    #: The WebSocket closed without a clean close.
    WEBSOCKET_CLOSED_ABNORMALLY = "websocketClosedAbnormally"
    #: start() while a connection is being made or is open.
    CONNECTION_IN_PROGRESS = "connectionInProgress"


class AvatarError(Exception):
    """An AvatarKit failure: a machine-readable :attr:`code` and a message for people.

    Args:
        code: which kind of failure this is.
        message: what exactly went wrong, specific enough to act on (which file, which field).
    """

    code: AvatarErrorCode
    message: str

    def __init__(self, code: AvatarErrorCode, message: str) -> None:
        # Both go to Exception.__init__ so that pickling (multiprocessing, logging handlers) rebuilds
        # the error with the same two arguments.
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def __repr__(self) -> str:
        return f"AvatarError({self.code}, {self.message!r})"
