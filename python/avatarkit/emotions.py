"""Emotions: face poses that sit under and around speech (``controller.set_emotion``).

Each emotion is a pose on the channels that carry feeling and not speech: brows, eyes (squint,
wide, a glance), cheeks, nose, the corners of the mouth, and a little head tilt. The lip shapes
(jaw, visemes, close, funnel, pucker, roll, press-free shapes the engine drives) are never
touched, so an emotion cannot fight the lip-sync: a happy avatar still closes its lips on "p".
While the avatar speaks, the mouth-corner part of the pose is halved, so a smile or a frown stays
visible without pulling the lips off their shapes.

The names, and what each pose does:

- ``neutral``: nothing (the idle face).
- ``happy``: smiling corners, cheeks raised, a soft squint, brows slightly up.
- ``sad``: inner brows up, corners down, eyes a little down and narrowed.
- ``surprised``: brows up, eyes wide, the head back a little.
- ``angry``: brows down and together, squint, nose sneer, corners pressed down.
- ``thinking``: one brow down and the inner brows up, a glance up and aside, the head tilted.

:data:`EMOTION_TOOL` describes ``set_emotion`` as a function an LLM can call (the JSON schema that
OpenAI-style function calling, LiveKit Agents' and pipecat's tools take).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

__all__ = ["EMOTIONS", "EMOTION_TOOL", "LIP_CORNER_CHANNELS", "EmotionTarget", "apply_emotion_call"]

#: The intensity an LLM's call gets when it names none.
DEFAULT_TOOL_INTENSITY = 0.6

#: Each emotion's pose at intensity 1: channel name to value (head channels in radians).
EMOTIONS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "neutral": MappingProxyType({}),
        "happy": MappingProxyType(
            {
                "mouthSmileLeft": 0.65,
                "mouthSmileRight": 0.65,
                "mouthDimpleLeft": 0.2,
                "mouthDimpleRight": 0.2,
                "cheekSquintLeft": 0.45,
                "cheekSquintRight": 0.45,
                "eyeSquintLeft": 0.25,
                "eyeSquintRight": 0.25,
                "browInnerUp": 0.1,
                "browOuterUpLeft": 0.15,
                "browOuterUpRight": 0.15,
            }
        ),
        "sad": MappingProxyType(
            {
                "browInnerUp": 0.75,
                "browDownLeft": 0.15,
                "browDownRight": 0.15,
                "mouthFrownLeft": 0.55,
                "mouthFrownRight": 0.55,
                "mouthShrugLower": 0.2,
                "eyeSquintLeft": 0.15,
                "eyeSquintRight": 0.15,
                "eyeLookDownLeft": 0.2,
                "eyeLookDownRight": 0.2,
                "headPitch": 0.06,
            }
        ),
        "surprised": MappingProxyType(
            {
                "browInnerUp": 0.7,
                "browOuterUpLeft": 0.85,
                "browOuterUpRight": 0.85,
                "eyeWideLeft": 0.7,
                "eyeWideRight": 0.7,
                "mouthStretchLeft": 0.1,
                "mouthStretchRight": 0.1,
                "headPitch": -0.04,
            }
        ),
        "angry": MappingProxyType(
            {
                "browDownLeft": 0.85,
                "browDownRight": 0.85,
                "eyeSquintLeft": 0.4,
                "eyeSquintRight": 0.4,
                "noseSneerLeft": 0.45,
                "noseSneerRight": 0.45,
                "mouthFrownLeft": 0.3,
                "mouthFrownRight": 0.3,
                "cheekSquintLeft": 0.15,
                "cheekSquintRight": 0.15,
                "headPitch": 0.03,
            }
        ),
        "thinking": MappingProxyType(
            {
                "browInnerUp": 0.35,
                "browDownLeft": 0.45,
                "browOuterUpRight": 0.3,
                "eyeSquintLeft": 0.2,
                "eyeLookUpLeft": 0.35,
                "eyeLookUpRight": 0.35,
                "eyeLookOutLeft": 0.25,
                "eyeLookInRight": 0.25,
                "mouthLeft": 0.15,
                "mouthFrownLeft": 0.1,
                "headRoll": 0.07,
                "headYaw": 0.05,
            }
        ),
    }
)

#: The channels of a pose that are halved while the avatar speaks (the corners and sides of the mouth).
LIP_CORNER_CHANNELS = frozenset(
    {
        "mouthSmileLeft",
        "mouthSmileRight",
        "mouthFrownLeft",
        "mouthFrownRight",
        "mouthDimpleLeft",
        "mouthDimpleRight",
        "mouthStretchLeft",
        "mouthStretchRight",
        "mouthShrugLower",
        "mouthLeft",
        "mouthRight",
    }
)

#: ``set_emotion`` as a tool an LLM can call: a JSON-schema function description.
EMOTION_TOOL: Mapping[str, Any] = MappingProxyType(
    {
        "name": "set_emotion",
        "description": (
            "Show an emotion on the avatar's face while it speaks and listens. Use it when the feeling of "
            "the conversation changes; it fades in and stays until another emotion is set."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "emotion": {"type": "string", "enum": list(EMOTIONS), "description": "the emotion to show"},
                "intensity": {
                    "type": "number",
                    "minimum": 0.0,
                    "maximum": 1.0,
                    "description": "how strongly, from 0 (none) to 1 (full); 0.6 is a natural default",
                },
            },
            "required": ["emotion"],
        },
    }
)


class EmotionTarget(Protocol):
    """What takes an emotion: an :class:`~avatarkit.controller.AvatarController`."""

    def set_emotion(self, name: str, intensity: float = 1.0, fade: float = 0.5) -> None:
        """Show ``name`` at ``intensity``, fading over ``fade`` seconds."""


def apply_emotion_call(target: EmotionTarget, arguments: Mapping[str, Any]) -> str:
    """Carry out an LLM's call of :data:`EMOTION_TOOL` on ``target``; returns the answer for the LLM.

    ``arguments`` are the call's (``emotion``, optional ``intensity``). A bad call is answered
    with what was wrong, so the model can correct itself; it never raises.
    """
    from .errors import AvatarError

    name = arguments.get("emotion")
    try:
        intensity = float(arguments.get("intensity", DEFAULT_TOOL_INTENSITY))
    except (TypeError, ValueError):
        return f"intensity must be a number from 0 to 1, not {arguments.get('intensity')!r}"
    if not isinstance(name, str):
        return f"emotion must be one of {', '.join(EMOTIONS)}"
    try:
        target.set_emotion(name, max(0.0, min(1.0, intensity)))
    except AvatarError as err:
        return err.message
    return f"showing {name} at {intensity:.1f}"
