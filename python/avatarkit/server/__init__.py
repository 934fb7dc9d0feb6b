"""The AvatarKit service (aiohttp): the avatar asset endpoint, and later the driving service."""

from .app import AvatarStore, create_app, run_in_background

__all__ = ["AvatarStore", "create_app", "run_in_background"]
