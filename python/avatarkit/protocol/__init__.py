"""The driveningress v2 wire protocol (generated from ``driveningress_v2.proto``).

Field numbers match the commercial AvatarKit service, so these messages interoperate with its
official SDKs; the protobuf package is ``avatarkit.driveningress.v2`` so that both can be imported
in one process.
"""

from __future__ import annotations

from .driveningress_v2_pb2 import (
    AudioFormat,
    ClientAudioInput,
    ClientConfigureSession,
    ClientInterrupt,
    ClientPause,
    ClientResume,
    EgressType,
    Flame,
    FlameAnimation,
    Message,
    MessageType,
    ServerConfirmSession,
    ServerError,
    ServerPlaybackState,
    ServerResponseAnimation,
)

__all__ = [
    "AudioFormat",
    "ClientAudioInput",
    "ClientConfigureSession",
    "ClientInterrupt",
    "ClientPause",
    "ClientResume",
    "EgressType",
    "Flame",
    "FlameAnimation",
    "Message",
    "MessageType",
    "ServerConfirmSession",
    "ServerError",
    "ServerPlaybackState",
    "ServerResponseAnimation",
    "parse_message",
]


def parse_message(data: bytes) -> Message:
    """Parse one serialized ``Message`` envelope.

    Raises:
        ValueError: the bytes are not a valid ``Message``.
    """
    from google.protobuf.message import DecodeError

    message = Message()
    try:
        message.ParseFromString(data)
    except DecodeError as err:  # not a ValueError under protobuf 7
        raise ValueError(f"not a driveningress Message: {err}") from err
    return message
