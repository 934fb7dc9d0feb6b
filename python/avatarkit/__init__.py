"""AvatarKit for Python: real-time talking avatars with a C++ core.

The lifecycle mirrors the commercial AvatarKit SDKs:

1. ``AvatarSDK.initialize(app_id, Configuration(...))``
2. ``avatar = await AvatarManager.load(avatar_id, on_progress)``
3. ``view = AvatarView(HeadlessSurface(512, 512), avatar)``; ``controller = view.avatar_controller``
4. ``await controller.start()``; ``controller.send(pcm, end=True)``; ``controller.interrupt()``;
   ``await controller.close()``; ``view.destroy()``
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

try:
    from . import _core
except ImportError as err:  # pragma: no cover - only without a built extension
    err.msg += "\nDid you build the package? `pip install .` compiles avatarkit._core."
    raise

__version__: str = _core.__version__

# The public names are imported when first used (PEP 562), so that ``import avatarkit`` and
# ``avatarkit --version`` stay cheap: aiohttp, protobuf, the service, PyAV and the GL loader load only
# with the part that needs them. Type checkers and IDEs read the imports below.
if TYPE_CHECKING:
    from . import codec
    from .codec import CodecError
    from .controller import (
        AvatarController,
        AVFrame,
        ConnectionState,
        ControllerEvent,
        ConversationState,
        StateReason,
    )
    from .errors import AvatarError, AvatarErrorCode
    from .manager import Avatar, AvatarManager, LoadProgress, LoadState
    from .sdk import (
        AudioFormat,
        AudioOutputMode,
        AvatarSDK,
        Configuration,
        DrivingServiceMode,
        Environment,
        LogLevel,
    )
    from .view import AvatarView, Camera, HeadlessSurface, VideoFrame, WindowSurface

#: Where each lazily imported public name lives (a module of this package).
_LAZY: dict[str, str] = {
    "codec": "codec",
    "CodecError": "codec",
    "AvatarController": "controller",
    "AVFrame": "controller",
    "ConnectionState": "controller",
    "ControllerEvent": "controller",
    "ConversationState": "controller",
    "StateReason": "controller",
    "AvatarError": "errors",
    "AvatarErrorCode": "errors",
    "Avatar": "manager",
    "AvatarManager": "manager",
    "LoadProgress": "manager",
    "LoadState": "manager",
    "AudioFormat": "sdk",
    "AudioOutputMode": "sdk",
    "AvatarSDK": "sdk",
    "Configuration": "sdk",
    "DrivingServiceMode": "sdk",
    "Environment": "sdk",
    "LogLevel": "sdk",
    "AvatarView": "view",
    "Camera": "view",
    "HeadlessSurface": "view",
    "VideoFrame": "view",
    "WindowSurface": "view",
}

if not TYPE_CHECKING:  # a type checker sees the imports above, and no catch-all attribute

    def __getattr__(name: str) -> Any:
        """Import a public name on first use (``avatarkit.AvatarView``, ``from avatarkit import codec``)."""
        where = _LAZY.get(name)
        if where is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module = importlib.import_module(f"{__name__}.{where}")
        value = module if name == where else getattr(module, name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        """The module's names, the ones not imported yet included."""
        return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AVFrame",
    "AudioFormat",
    "AudioOutputMode",
    "Avatar",
    "AvatarController",
    "AvatarError",
    "AvatarErrorCode",
    "AvatarManager",
    "AvatarSDK",
    "AvatarView",
    "Camera",
    "CodecError",
    "Configuration",
    "ConnectionState",
    "ControllerEvent",
    "ConversationState",
    "DrivingServiceMode",
    "Environment",
    "HeadlessSurface",
    "LoadProgress",
    "LoadState",
    "LogLevel",
    "StateReason",
    "VideoFrame",
    "WindowSurface",
    "__version__",
    "codec",
]
