"""Session tokens from the console endpoint: what your backend does before the app connects.

The driving service takes a short-lived session token, never the API key (``docs/service.md``).
:func:`fetch_session_token` exchanges an app's API key for one at ``POST /v1/auth/session-token``
of the environment's console URL: the call a backend makes for each client it lets connect.
"""

from __future__ import annotations

import time

from .errors import AvatarError, AvatarErrorCode

__all__ = ["TOKEN_PATH", "fetch_session_token"]

#: Where the console hands out session tokens.
TOKEN_PATH = "/v1/auth/session-token"


async def fetch_session_token(
    console_url: str, api_key: str, *, expire_in: float = 3600.0, timeout: float = 10.0
) -> str:
    """A session token for the app whose API key is ``api_key``, valid for ``expire_in`` seconds.

    Args:
        console_url: the console's base URL (``Environment.console_url``: ``http://127.0.0.1:8080``
            for ``avatarkit serve``).
        api_key: the app's API key (keep it on your backend).
        expire_in: the token's lifetime in seconds.
        timeout: seconds to wait for the console.

    Raises:
        AvatarError: ``sessionTokenInvalid`` when the console refuses the key (401, 403),
            ``serverError`` for another refusal, an unreadable reply or an unreachable console.
    """
    import asyncio

    import aiohttp

    url = console_url.rstrip("/") + TOKEN_PATH
    body = {"expireAt": int(time.time() + expire_in)}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(url, headers={"X-Api-Key": api_key}, json=body) as resp,
        ):
            if resp.status in (401, 403):
                raise AvatarError(AvatarErrorCode.SESSION_TOKEN_INVALID, f"{url} refused the API key ({resp.status})")
            if resp.status != 200:
                raise AvatarError(AvatarErrorCode.SERVER_ERROR, f"{url} refused a session token ({resp.status})")
            doc = await resp.json()
    except (aiohttp.ClientError, asyncio.TimeoutError) as err:
        raise AvatarError(AvatarErrorCode.SERVER_ERROR, f"cannot reach {url}: {err or 'timeout'}") from err
    token = doc.get("sessionToken") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        raise AvatarError(AvatarErrorCode.SERVER_ERROR, f"{url} answered without a sessionToken")
    return token
