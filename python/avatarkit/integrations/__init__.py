"""Adapters that put an avatar into voice-agent frameworks; each needs its extra (``pyavatarkit[NAME]``)."""
