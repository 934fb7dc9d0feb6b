"""AvatarSDK: stage 1 of the lifecycle. Initialize once, before anything else.

>>> from avatarkit import AvatarSDK, Configuration, AudioFormat, DrivingServiceMode
>>> AvatarSDK.initialize("demo", Configuration(audio_format=AudioFormat(sample_rate=16000)))
>>> AvatarSDK.session_token = "..."   # from your backend (POST /v1/auth/session-token)
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
import time

from .errors import AvatarError, AvatarErrorCode

log = logging.getLogger("avatarkit")

#: Sample rates the driving service accepts (Hz).
SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclasses.dataclass(frozen=True)
class Environment:
    """Where the services are: the token (console), driving (ingress) and asset endpoints."""

    name: str
    console_url: str
    ingress_url: str
    asset_url: str

    @classmethod
    def local(cls, host: str = "127.0.0.1", port: int = 8080, *, tls: bool = False) -> Environment:
        """The service ``avatarkit serve`` runs: all three endpoints on one host and port."""
        http, ws = ("https", "wss") if tls else ("http", "ws")
        return cls("local", f"{http}://{host}:{port}", f"{ws}://{host}:{port}", f"{http}://{host}:{port}")


#: Named environment presets; ``"local"`` is the default: the service ``avatarkit serve`` starts.
ENVIRONMENTS: dict[str, Environment] = {"local": Environment.local()}


class DrivingServiceMode(enum.Enum):
    """Who turns speech into motion.

    ``SDK`` (alias ``direct``): the driving service, which this SDK connects to with a session
    token. ``HOST`` (alias ``backend``): the driving service too, but your backend talks to it and
    hands the animation to the view with ``yield_``. ``LOCAL`` (aliases ``in-process``, ``engine``):
    the speech engine in this process; ``start()`` needs no service and no token, and ``send``
    streams through the engine with the same events, interrupt, pause and A/V sync as SDK mode.
    """

    SDK = "sdk"
    HOST = "host"
    LOCAL = "local"

    @classmethod
    def _missing_(cls, value: object) -> DrivingServiceMode | None:
        aliases = {
            "sdk": cls.SDK,
            "direct": cls.SDK,
            "host": cls.HOST,
            "backend": cls.HOST,
            "local": cls.LOCAL,
            "in-process": cls.LOCAL,
            "engine": cls.LOCAL,
        }
        return aliases.get(str(value).lower())


class AudioOutputMode(enum.Enum):
    """Where a view's speech is heard, and so which clock it plays by (see :mod:`avatarkit.audio`).

    ``AUTO``: a view in a window plays through the default output device when there is one (the
    ``audio`` extra), else runs on the pace clock; off-screen views never use a device (video
    pipelines take the audio from ``av_frames``). ``DEVICE``: every view plays through the default
    output device, and making one fails (``invalidArgument``) without it. ``NONE``: no device.
    """

    AUTO = "auto"
    DEVICE = "device"
    NONE = "none"


class LogLevel(enum.Enum):
    """How much AvatarKit logs (through the ``avatarkit`` logger)."""

    OFF = "off"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    ALL = "all"

    @property
    def logging_level(self) -> int:
        """The matching :mod:`logging` level."""
        return {
            LogLevel.OFF: logging.CRITICAL + 10,
            LogLevel.ERROR: logging.ERROR,
            LogLevel.WARNING: logging.WARNING,
            LogLevel.INFO: logging.INFO,
            LogLevel.ALL: logging.DEBUG,
        }[self]


@dataclasses.dataclass(frozen=True)
class AudioFormat:
    """The speech audio you give the controller: mono 16-bit PCM at ``sample_rate`` Hz."""

    channel_count: int = 1
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if self.channel_count != 1:
            hint = (
                f"; the first argument is channel_count: for a rate, AudioFormat(sample_rate={self.channel_count})"
                if self.channel_count in SAMPLE_RATES
                else ""
            )
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, f"audio must be mono (channel_count=1){hint}")
        if self.sample_rate not in SAMPLE_RATES:
            raise AvatarError(
                AvatarErrorCode.INVALID_ARGUMENT,
                f"sample_rate {self.sample_rate} is not one of {SAMPLE_RATES}",
            )


@dataclasses.dataclass(frozen=True)
class Configuration:
    """What :meth:`AvatarSDK.initialize` sets.

    ``low_latency`` (SDK and local mode) asks for the low-latency engine: motion that needs no
    audio past its frame (0 ms look-ahead instead of 80), so speech is shown about 80 ms sooner, at
    a small cost in lip-sync accuracy; a service without one ignores it.
    """

    environment: str | Environment = "local"
    audio_format: AudioFormat = dataclasses.field(default_factory=AudioFormat)
    driving_service_mode: DrivingServiceMode | str = DrivingServiceMode.SDK
    log_level: LogLevel | str = LogLevel.WARNING
    audio_output: AudioOutputMode | str = AudioOutputMode.AUTO
    low_latency: bool = False

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "driving_service_mode", DrivingServiceMode(self.driving_service_mode))
            object.__setattr__(self, "log_level", LogLevel(self.log_level))
            object.__setattr__(self, "audio_output", AudioOutputMode(self.audio_output))
        except ValueError as err:
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, str(err)) from err
        if isinstance(self.environment, str) and self.environment not in ENVIRONMENTS:
            raise AvatarError(
                AvatarErrorCode.INVALID_ARGUMENT,
                f"unknown environment {self.environment!r}; presets: {sorted(ENVIRONMENTS)}, or pass an Environment",
            )

    @property
    def resolved_environment(self) -> Environment:
        """The environment, with a preset name looked up."""
        env = self.environment
        return ENVIRONMENTS[env] if isinstance(env, str) else env

    @property
    def mode(self) -> DrivingServiceMode:
        """The driving service mode as the enum."""
        return DrivingServiceMode(self.driving_service_mode)


@dataclasses.dataclass
class _State:
    """What initialize and the token setters keep: one per process."""

    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    app_id: str | None = None
    configuration: Configuration | None = None
    session_token: str | None = None
    user_id: str | None = None


_state = _State()


class _SDKState(type):
    """Class-level properties, so ``AvatarSDK.session_token = ...`` reads like the commercial SDKs."""

    @property
    def is_initialized(cls) -> bool:
        """Whether :meth:`AvatarSDK.initialize` ran."""
        return _state.app_id is not None

    @property
    def app_id(cls) -> str:
        """The app id given to initialize."""
        return require_initialized()[0]

    @property
    def configuration(cls) -> Configuration:
        """The configuration given to initialize."""
        return require_initialized()[1]

    @property
    def session_token(cls) -> str | None:
        """The session token for the driving service (SDK mode); may be set before initialize."""
        return _state.session_token

    @session_token.setter
    def session_token(cls, token: str | None) -> None:
        _state.session_token = token or None

    @property
    def user_id(cls) -> str | None:
        """An id of your end user, for your logs and the service's."""
        return _state.user_id

    @user_id.setter
    def user_id(cls, user_id: str | None) -> None:
        _state.user_id = user_id or None

    @property
    def version(cls) -> str:
        """This library's version."""
        from . import __version__

        return __version__


class AvatarSDK(metaclass=_SDKState):
    """Global setup: the app id, the environment, the audio format, the driving mode, the log level."""

    @classmethod
    def initialize(cls, app_id: str, configuration: Configuration | None = None) -> None:
        """Initialize the SDK; call it before any other API.

        Calling it again updates the app id and the configuration without closing anything. What
        starts from then on uses the new ones: connections (``start()``, and the reconnects after
        a lost connection), Host-mode conversations, views made later (``audio_output``); the log
        level changes at once. A controller that is connected keeps what its connection
        negotiated until it connects again: the audio rate above all, so ``send`` goes on taking
        audio at the old rate (``AvatarController.sample_rate`` says which). To switch a live
        controller to a new rate, ``await controller.close()`` and ``await controller.start()``.
        The driving mode is checked at each call (``send`` in Host mode fails with ``invalidState``).

        Raises:
            AvatarError: ``invalidArgument`` for an empty app id or a bad configuration.
        """
        if not isinstance(app_id, str) or not app_id.strip():
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "app_id must be a non-empty string")
        config = configuration or Configuration()
        if not isinstance(config, Configuration):
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "configuration must be an avatarkit.Configuration")
        with _state.lock:
            _state.app_id = app_id.strip()
            _state.configuration = config
        level = LogLevel(config.log_level)
        log.setLevel(level.logging_level)
        log.debug("initialized app %s for %s", app_id, config.resolved_environment)

    @classmethod
    def cleanup(cls) -> None:
        """Forget the app id, configuration and token (tests; apps rarely need it)."""
        with _state.lock:
            _state.app_id = None
            _state.configuration = None
            _state.session_token = None
            _state.user_id = None

    @classmethod
    def supports_current_device(cls) -> bool:
        """Whether this machine can render: a headless OpenGL 3.3 core context can be made."""
        from .gl.egl import EglContext, EglError

        try:
            EglContext().close()
        except EglError:
            return False
        return True

    @classmethod
    def benchmark(cls, seconds: float = 1.0) -> int:
        """A device score: codec frames decoded plus frames rendered in about ``seconds``, weighted.

        Higher is faster; about 1000 means a 512x512 view renders in real time at 30 fps here.
        """
        import numpy as np

        from . import codec
        from ._synthetic import speech_like

        values = speech_like(4.0)
        payload = codec.StreamEncoder(codec.canonical_schema()).encode(values)
        start = time.perf_counter()
        decoded = 0
        while time.perf_counter() - start < seconds / 4:
            codec.StreamDecoder().decode(payload)
            decoded += len(values)
        decode_rate = decoded / (time.perf_counter() - start)
        render_rate = 0.0
        if cls.supports_current_device():
            from ._core import render
            from .gl.egl import EglContext

            ctx = EglContext()
            try:
                r = render.Renderer(ctx.proc_address, 512, 512, 4)
                n = 4000
                pos = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32) * 0.1
                mat = r.add_material()
                r.add_mesh(pos, pos, None, np.arange(n - n % 3, dtype=np.uint32), mat)
                frames, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds * 0.75:
                    r.render()
                    r.read_pixels()
                    frames += 1
                render_rate = frames / (time.perf_counter() - start)
                r.close()
            finally:
                ctx.close()
        return int(render_rate / 30.0 * 800 + min(decode_rate / 1e6, 1.0) * 200)


def require_initialized() -> tuple[str, Configuration]:
    """The app id and configuration, or ``AvatarError(sdkNotInitialized)``."""
    app_id, config = _state.app_id, _state.configuration
    if app_id is None or config is None:
        raise AvatarError(AvatarErrorCode.SDK_NOT_INITIALIZED, "call AvatarSDK.initialize(app_id, configuration) first")
    return app_id, config


__all__ = [
    "ENVIRONMENTS",
    "SAMPLE_RATES",
    "AudioFormat",
    "AudioOutputMode",
    "AvatarSDK",
    "Configuration",
    "DrivingServiceMode",
    "Environment",
    "LogLevel",
    "require_initialized",
]
