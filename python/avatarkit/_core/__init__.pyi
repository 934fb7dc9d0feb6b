"""
AvatarKit C++ core: driving-stream codec, mesh deformation, GL renderer.
"""

from __future__ import annotations

from . import codec, engine, render, rig

__version__: str
