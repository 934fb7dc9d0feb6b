"""
AvatarKit C++ core: driving-stream codec, mesh deformation, GL renderer.
"""

from __future__ import annotations
from . import codec
from . import rig
from . import render

__version__: str
