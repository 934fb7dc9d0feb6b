"""AvatarKit for Python: real-time talking avatars with a C++ core.

The lifecycle mirrors the commercial AvatarKit SDKs:

1. ``AvatarSDK.initialize(app_id, Configuration(...))``
2. ``avatar = await AvatarManager.load(avatar_id, on_progress)``
3. ``view = AvatarView(HeadlessSurface(512, 512), avatar)``; ``controller = view.avatar_controller``
4. ``await controller.start()``; ``controller.send(pcm, end=True)``; ``controller.interrupt()``;
   ``await controller.close()``; ``view.destroy()``
"""

from __future__ import annotations

try:
    from . import _core
except ImportError as err:  # pragma: no cover - only without a built extension
    err.msg += "\nDid you build the package? `pip install .` compiles avatarkit._core."
    raise

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
from .sdk import AudioFormat, AudioOutputMode, AvatarSDK, Configuration, DrivingServiceMode, Environment, LogLevel
from .view import AvatarView, Camera, HeadlessSurface, VideoFrame, WindowSurface

__version__: str = _core.__version__

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
