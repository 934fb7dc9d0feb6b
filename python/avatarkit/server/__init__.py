"""The AvatarKit service (aiohttp): avatar assets, session tokens and the driving WebSocket.

``avatarkit serve`` runs it; :func:`start_service` runs it in this process (tests, the demo).
"""

from .app import AvatarStore, BackgroundServer, create_app, run_in_background
from .service import create_service_app, start_service

__all__ = ["AvatarStore", "BackgroundServer", "create_app", "create_service_app", "run_in_background", "start_service"]
