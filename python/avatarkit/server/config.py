"""Configuration of the driving service: apps, their API keys and limits, the token secret.

A config file is TOML::

    token_secret = "at least 16 characters, the same in every process of a deployment"
    avatars = ["/srv/avatars"]        # folders of avatar bundles, besides the bundled samples
    max_sessions = 1000               # WebSocket sessions per process, all apps (4503 above it)
    max_connections = 4000            # requests and sessions in progress (503 / 4503 above it);
                                      # default: 90 % of the file-descriptor limit less 32
    auth_failures_per_minute = 20     # wrong API keys per client address and minute (then 429)
    body_timeout_seconds = 10         # time to send a token request's body (then 408)
    engine_inline_ms = 2.0            # engine work predicted longer than this goes to a thread pool
                                      # (0: all of it, so one process uses several cores)
    engine_threads = 2                # that pool's size (default: one per core)
    low_latency = false               # true: look-ahead 0 ms instead of 80 for sessions that don't choose

    [limits]                          # defaults for every app
    session_seconds = 3600            # wall-clock length of one WebSocket session (then 4002)
    concurrent_sessions = 10          # open sessions per app and process (then 4003)
    request_audio_bytes = 67108864    # audio bytes of one request (req_id)
    message_bytes = 1048576           # one WebSocket message
    idle_timeout_seconds = 60         # no audio input for this long closes the session

    [apps.demo]
    api_key = "ak_..."
    credits_seconds = 36000           # optional: seconds of audio this process drives for the app
    enabled = true                    # false: token requests get 403, sessions 4010

    [apps.demo.limits]                # optional per-app overrides of [limits]
    concurrent_sessions = 2

Without a file, :func:`development_config` makes a development app (``demo``) whose API key and
token secret are generated once and kept in the user's config folder.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
import pathlib
import re
import secrets
import sys
from collections.abc import Mapping
from typing import Any

import platformdirs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

__all__ = [
    "AppConfig",
    "ConfigError",
    "Limits",
    "ServiceConfig",
    "development_config",
    "load_config",
    "new_api_key",
]

_APP_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: Name of the development credentials file in the user config folder.
DEV_CREDENTIALS_FILE = "service-dev.json"
DEFAULT_APP_ID = "demo"


class ConfigError(ValueError):
    """The service configuration is invalid (the message says where and why)."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Limits of one app's sessions. Every limit is enforced per server process."""

    #: Wall-clock length of one WebSocket session; then ``ServerError 4002`` and close code 4002.
    session_seconds: float = 3600.0
    #: Sessions of the app open at once; one more gets ``ServerError 4003`` and close code 4003.
    concurrent_sessions: int = 10
    #: Audio bytes of one request (``req_id``); past it the request is aborted (``ServerError 413``).
    request_audio_bytes: int = 64 * 1024 * 1024
    #: One WebSocket message; larger ones close the session with 1009 (message too big).
    message_bytes: int = 1024 * 1024
    #: A session with no audio input for this long is closed (``ServerError 408``, close code 1000).
    idle_timeout_seconds: float = 60.0
    #: Time a new connection has to send ``ClientConfigureSession``.
    handshake_timeout_seconds: float = 10.0
    #: Audio bytes received but not yet processed, per session, before the server stops reading.
    queued_audio_bytes: int = 4 * 1024 * 1024
    #: Messages of all kinds a session may send per second, averaged over 5 s (bursts of 5 s worth);
    #: more closes it (``ServerError 400``, close code 4000).
    messages_per_second: float = 2000.0
    #: Messages other than ``ClientAudioInput`` (interrupts, pause, resume, unknown types) per second,
    #: averaged the same way; more closes the session the same way.
    control_messages_per_second: float = 100.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"limit {field.name} must be a positive number, not {value!r}")
        for name in ("concurrent_sessions", "request_audio_bytes", "message_bytes", "queued_audio_bytes"):
            if not isinstance(getattr(self, name), int):
                raise ConfigError(f"limit {name} must be an integer")
        if self.message_bytes < 1024:
            raise ConfigError("limit message_bytes must be at least 1024")

    def replace(self, overrides: Mapping[str, Any], where: str = "limits") -> Limits:
        """A copy with ``overrides`` (from a config file) applied; unknown names are an error."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown limit(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **dict(overrides))


@dataclasses.dataclass(frozen=True)
class AppConfig:
    """One app: its id, API key, limits and (optionally) its credits."""

    app_id: str
    api_key: str = dataclasses.field(repr=False)
    limits: Limits = dataclasses.field(default_factory=Limits)
    #: Seconds of audio this process may drive for the app; None is unlimited.
    credits_seconds: float | None = None
    #: A disabled app gets no session tokens (HTTP 403), and its tokens open no sessions (4010).
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.app_id, str) or not _APP_ID_RE.fullmatch(self.app_id):
            raise ConfigError(f"invalid app id {self.app_id!r}: use 1-64 characters of [A-Za-z0-9_.-]")
        if not isinstance(self.api_key, str) or len(self.api_key) < 8:
            raise ConfigError(f"app {self.app_id}: api_key must be a string of at least 8 characters")
        if self.credits_seconds is not None and (
            isinstance(self.credits_seconds, bool)
            or not isinstance(self.credits_seconds, int | float)
            or self.credits_seconds < 0
        ):
            raise ConfigError(f"app {self.app_id}: credits_seconds must be a number >= 0")


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """Everything the driving service needs to know.

    Args:
        apps: the apps by id.
        token_secret: the HMAC key of session tokens; every process of a deployment needs the same.
        limits: the default limits (from ``[limits]``); they also apply to connections that have
            not authenticated yet.
        avatar_roots: folders of avatar bundles to serve (the CLI adds the bundled samples).
        check_avatars: reject WebSocket sessions for avatar ids the asset store does not have.
        max_sessions: WebSocket sessions per process over all apps (then close code 4503).
        max_connections: HTTP requests and WebSocket sessions in progress per process, over which
            requests get 503 and WebSockets 4503; None: 90 % of the file-descriptor limit less 32.
        auth_failures_per_minute: wrong API keys one client address may send per minute to the
            token endpoint; more get 429 with ``Retry-After`` until the minute is over.
        body_timeout_seconds: time a client has to send a token request's body (then 408).
        max_token_seconds: how far ahead ``expireAt`` may be (24 h).
        engine_inline_ms: engine work predicted to take longer than this runs on a thread pool
            instead of the event loop; 0 sends all of it to the pool, so that one process uses
            several cores (the engine releases the GIL; ``docs/service.md``, "Load").
        engine_threads: size of that pool (None: one per core).
        low_latency: sessions that do not choose (``extra_params["lookahead"]``) get the
            low-latency engine (look-ahead 0 ms instead of 80, a little less accurate).
    """

    apps: Mapping[str, AppConfig]
    token_secret: bytes = dataclasses.field(repr=False, default_factory=lambda: secrets.token_bytes(32))
    limits: Limits = dataclasses.field(default_factory=Limits)
    avatar_roots: tuple[pathlib.Path, ...] = ()
    check_avatars: bool = True
    max_sessions: int = 1000
    max_connections: int | None = None
    auth_failures_per_minute: int = 20
    body_timeout_seconds: float = 10.0
    max_token_seconds: int = 24 * 3600
    engine_inline_ms: float = 2.0
    engine_threads: int | None = None
    low_latency: bool = False

    def __post_init__(self) -> None:
        if len(self.token_secret) < 16:
            raise ConfigError("token_secret must be at least 16 bytes")
        for app_id, app in self.apps.items():
            if app_id != app.app_id:
                raise ConfigError(f"app {app_id!r} is configured under the id {app.app_id!r}")
        keys = [app.api_key for app in self.apps.values()]
        if len(set(keys)) != len(keys):
            raise ConfigError("two apps share an API key")
        if self.max_sessions < 1:
            raise ConfigError("max_sessions must be at least 1")
        if self.max_connections is not None and self.max_connections < 1:
            raise ConfigError("max_connections must be at least 1")
        if self.auth_failures_per_minute < 1:
            raise ConfigError("auth_failures_per_minute must be at least 1")
        if not self.body_timeout_seconds > 0:
            raise ConfigError("body_timeout_seconds must be positive")

    def connection_cap(self) -> int:
        """``max_connections``, or the default below this process's file-descriptor limit."""
        if self.max_connections is not None:
            return self.max_connections
        try:
            import resource

            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        except (ImportError, OSError, ValueError):  # pragma: no cover - not Unix
            return 4096
        if soft == resource.RLIM_INFINITY:
            return 65536
        return max(16, int(soft * 0.9) - 32)

    def app_for_key(self, api_key: str) -> AppConfig | None:
        """The app whose API key is ``api_key`` (compared in constant time), or None."""
        found = None
        try:
            given = api_key.encode()
        except UnicodeEncodeError:  # a header that was not UTF-8 (aiohttp keeps its bytes as surrogates)
            return None
        for app in self.apps.values():
            if hmac.compare_digest(app.api_key.encode(), given):
                found = app
        return found

    def with_app(self, app: AppConfig) -> ServiceConfig:
        """A copy with ``app`` added (or replacing the app of the same id)."""
        apps = {k: v for k, v in self.apps.items() if k != app.app_id and v.api_key != app.api_key}
        apps[app.app_id] = app
        return dataclasses.replace(self, apps=apps)


def new_api_key() -> str:
    """A fresh random API key (``ak_`` and 32 URL-safe characters)."""
    return "ak_" + secrets.token_urlsafe(24)


def _number(table: Mapping[str, Any], name: str, where: str, default: Any) -> Any:
    value = table.get(name, default)
    if value is not default and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigError(f"{where}: {name} must be a number")
    return value


def config_from_mapping(doc: Mapping[str, Any], *, base_dir: pathlib.Path | None = None) -> ServiceConfig:
    """Build a :class:`ServiceConfig` from a parsed TOML document (see the module docstring)."""
    known = {"token_secret", "avatars", "max_sessions", "limits", "apps", "check_avatars", "engine_inline_ms"}
    known |= {"engine_threads", "low_latency", "max_connections", "auth_failures_per_minute", "body_timeout_seconds"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    limits_table = doc.get("limits", {})
    if not isinstance(limits_table, dict):
        raise ConfigError("[limits] must be a table")
    try:
        defaults = Limits().replace(limits_table)
    except TypeError as err:
        raise ConfigError(f"limits: {err}") from err
    apps: dict[str, AppConfig] = {}
    apps_table = doc.get("apps", {})
    if not isinstance(apps_table, dict):
        raise ConfigError("[apps] must be a table of apps")
    for app_id, table in apps_table.items():
        where = f"apps.{app_id}"
        if not isinstance(table, dict):
            raise ConfigError(f"[{where}] must be a table")
        extra = sorted(set(table) - {"api_key", "limits", "credits_seconds", "enabled"})
        if extra:
            raise ConfigError(f"[{where}]: unknown setting(s) {', '.join(extra)}")
        if "api_key" not in table:
            raise ConfigError(f"[{where}]: api_key is required")
        overrides = table.get("limits", {})
        if not isinstance(overrides, dict):
            raise ConfigError(f"[{where}.limits] must be a table")
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"[{where}]: enabled must be true or false")
        apps[app_id] = AppConfig(
            app_id=app_id,
            api_key=table["api_key"],
            limits=defaults.replace(overrides, f"{where}.limits"),
            credits_seconds=_number(table, "credits_seconds", where, None),
            enabled=enabled,
        )
    if not apps:
        raise ConfigError("no apps configured: add an [apps.ID] table with an api_key")
    secret = doc.get("token_secret")
    if secret is None:
        log.warning("no token_secret configured: session tokens verify only in this process")
        secret_bytes = secrets.token_bytes(32)
    elif isinstance(secret, str):
        secret_bytes = secret.encode()
    else:
        raise ConfigError("token_secret must be a string")
    roots = doc.get("avatars", [])
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise ConfigError("avatars must be a list of folder paths")
    base = base_dir or pathlib.Path.cwd()
    check = doc.get("check_avatars", True)
    if not isinstance(check, bool):
        raise ConfigError("check_avatars must be true or false")
    max_sessions = doc.get("max_sessions", 1000)
    if isinstance(max_sessions, bool) or not isinstance(max_sessions, int):
        raise ConfigError("max_sessions must be an integer")
    inline_ms = _number(doc, "engine_inline_ms", "config", 2.0)
    threads = doc.get("engine_threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError("engine_threads must be a positive integer")
    low_latency = doc.get("low_latency", False)
    if not isinstance(low_latency, bool):
        raise ConfigError("low_latency must be true or false")
    max_connections = doc.get("max_connections")
    if max_connections is not None and (isinstance(max_connections, bool) or not isinstance(max_connections, int)):
        raise ConfigError("max_connections must be an integer")
    failures = doc.get("auth_failures_per_minute", 20)
    if isinstance(failures, bool) or not isinstance(failures, int):
        raise ConfigError("auth_failures_per_minute must be an integer")
    return ServiceConfig(
        apps=apps,
        max_connections=max_connections,
        auth_failures_per_minute=failures,
        body_timeout_seconds=float(_number(doc, "body_timeout_seconds", "config", 10.0)),
        token_secret=secret_bytes,
        engine_inline_ms=float(inline_ms),
        engine_threads=threads,
        low_latency=low_latency,
        limits=defaults,
        avatar_roots=tuple(base / pathlib.Path(r).expanduser() for r in roots),
        check_avatars=check,
        max_sessions=max_sessions,
    )


def load_config(path: str | os.PathLike[str]) -> ServiceConfig:
    """Read a TOML config file (relative avatar folders are relative to the file)."""
    file = pathlib.Path(path)
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{file}: {err.strerror or err}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{file}: not valid TOML: {err}") from err
    try:
        return config_from_mapping(doc, base_dir=file.parent)
    except ConfigError as err:
        raise ConfigError(f"{file}: {err}") from err


def config_dir() -> pathlib.Path:
    """The user's avatarkit config folder (``AVATARKIT_CONFIG_DIR`` overrides it)."""
    override = os.environ.get("AVATARKIT_CONFIG_DIR")
    return pathlib.Path(override) if override else pathlib.Path(platformdirs.user_config_dir("avatarkit", False))


def _make_private(path: pathlib.Path) -> None:
    """The credentials file 0600 in a 0700 folder, whatever modes they had."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for target, mode in ((path.parent, 0o700), (path, 0o600)):
        try:
            if target.exists() and (target.stat().st_mode & 0o777) != mode:
                os.chmod(target, mode)
        except OSError as err:
            log.warning("cannot make %s private (mode %o): %s", target, mode, err)


def _write_private(path: pathlib.Path, text: str) -> None:
    _make_private(path)
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(scratch, path)


def development_config(
    app_id: str | None = None,
    api_key: str | None = None,
    *,
    directory: str | os.PathLike[str] | None = None,
) -> tuple[ServiceConfig, pathlib.Path]:
    """The development setup: one app (``demo`` unless ``app_id``), default limits.

    Its API key (unless ``api_key`` is given) and the token secret are generated on first use and
    kept in ``<config folder>/service-dev.json`` (mode 0600, in a folder of mode 0700: both are set
    each time, whatever they were), so restarts and other local processes
    accept the same keys and tokens. Returns the config and that file's path.
    """
    path = pathlib.Path(directory) if directory is not None else config_dir()
    path = path / DEV_CREDENTIALS_FILE
    stored: dict[str, Any] = {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            stored = loaded
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable %s: %s", path, err)
    app_id = app_id or DEFAULT_APP_ID
    keys = stored.get("apps") if isinstance(stored.get("apps"), dict) else {}
    assert isinstance(keys, dict)
    secret = stored.get("token_secret")
    changed = False
    if not isinstance(secret, str) or len(secret) < 32:
        secret = secrets.token_urlsafe(32)
        changed = True
    if api_key is None:
        api_key = keys.get(app_id) if isinstance(keys.get(app_id), str) else None
        if api_key is None:
            api_key = new_api_key()
            keys[app_id] = api_key
            changed = True
    if changed:
        _write_private(path, json.dumps({"token_secret": secret, "apps": keys}, indent=2) + "\n")
    else:
        _make_private(path)
    app = AppConfig(app_id=app_id, api_key=api_key)
    return ServiceConfig(apps={app_id: app}, token_secret=secret.encode()), path
