"""
AvatarKit C++ core: driving-stream codec (more areas register here as they land).
"""

from __future__ import annotations

from . import codec

__version__: str
