"""AvatarKit for Python: real-time talking avatars with a C++ core.

The lifecycle mirrors the commercial AvatarKit SDKs: initialize, load, render, connect. This release
carries the driving-stream codec (:mod:`avatarkit.codec`) and the wire protocol
(:mod:`avatarkit.protocol`); the other stages land issue by issue.
"""

from __future__ import annotations

try:
    from . import _core
except ImportError as err:  # pragma: no cover - only without a built extension
    err.msg += "\nDid you build the package? `pip install .` compiles avatarkit._core."
    raise

from . import codec
from .codec import CodecError

__version__: str = _core.__version__

__all__ = ["CodecError", "__version__", "codec"]
