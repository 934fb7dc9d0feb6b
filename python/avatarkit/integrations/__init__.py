"""Avatars inside voice-agent frameworks.

Each integration is a module of its own that needs its framework installed as an extra:

- :mod:`avatarkit.integrations.livekit`: LiveKit Agents (``pip install 'pyavatarkit[livekit]'``).
- :mod:`avatarkit.integrations.pipecat`: pipecat (``pip install 'pyavatarkit[pipecat]'``).

Importing this package imports no framework.
"""
