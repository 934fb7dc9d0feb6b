"""Retargeting the commercial service's FLAME keyframes onto the canonical channels.

The commercial driving service sends FLAME parameters (``FlameAnimation``, 25 fps): translation 3,
rotation 3, neck_pose 3, jaw_pose 3, eye_pose 6, eye_lid 2 and expression 100. What maps onto an
ARKit-style rig, and how:

- ``jaw_pose[0]`` (axis-angle about X, radians) opens the jaw: ``jawOpen = jaw / JAW_FULL_OPEN``,
  clipped to [0, 1]; sideways jaw rotation drives ``jawLeft`` / ``jawRight``.
- The lip shapes (every ``viseme_*`` and the ARKit mouth shapes: close, funnel, pucker, smile,
  stretch, press, lower-down, upper-up, roll) come from a linear map of the 100 ``expression``
  coefficients and the jaw rotation, clipped to [0, 1]: :data:`MOUTH_MAP_PATH`, fitted by
  ``scripts/fit_flame_retarget.py`` with ridge regression to reproduce what this project's engine
  makes of the same speech (the shared 20 s recording of the commercial service, fitted on its
  first half and judged on its second: mean correlation 0.50 over 30 channels, funnel 0.76, pucker
  0.70, closure recall 0.52; ``docs/concepts.md``). FLAME's expression basis describes a FLAME
  mesh that glTF avatars do not have; the map learns how this service's coefficients move with
  English speech, from one speaker: treat it as an approximation.
- ``rotation`` plus ``neck_pose`` (axis-angle, radians) become ``headPitch``, ``headYaw``, ``headRoll``.
- ``eye_pose`` (left then right, axis-angle) becomes ``eyeLook*``: yaw over ``EYE_FULL_TURN`` radians
  is a full look sideways, pitch likewise up or down.
- ``eye_lid`` (left, right) becomes ``eyeBlinkLeft`` / ``eyeBlinkRight``. When the stream carries
  none (the recorded service output has zeros there), the view's idle life keeps blinking.
- The raw ``expression`` values stay in the decoded frames for apps that own a FLAME rig.
- ``translation`` is ignored (the rigs here keep the head on its neck).
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np
import numpy.typing as npt

from .codec import CANONICAL_NAMES

F32 = npt.NDArray[np.float32]

#: Jaw rotation (radians) that counts as fully open.
JAW_FULL_OPEN = 0.12
#: Eye rotation (radians) that counts as a full look sideways / up / down.
EYE_FULL_TURN = 0.5

#: The fitted map from FLAME expression and jaw to the mouth channels (``scripts/fit_flame_retarget.py``).
MOUTH_MAP_PATH = pathlib.Path(__file__).parent / "data" / "flame_retarget.npz"

_COL = {n: i for i, n in enumerate(CANONICAL_NAMES)}


@functools.lru_cache(maxsize=1)
def _mouth_map() -> tuple[npt.NDArray[np.int64], F32, F32, npt.NDArray[np.int64]]:
    """The map's input columns, weights, bias and output channel columns."""
    with np.load(MOUTH_MAP_PATH) as z:
        inputs = z["input_columns"].astype(np.int64)
        outputs = np.array([_COL[str(n)] for n in z["outputs"]], np.int64)
        return inputs, z["weight"].astype(np.float32), z["bias"].astype(np.float32), outputs


def flame_to_canonical(keyframes: F32) -> F32:
    """Map ``keyframes x 120`` FLAME rows to ``keyframes x 73`` canonical channel rows."""
    k = np.asarray(keyframes, np.float32)
    if k.ndim != 2 or k.shape[1] != 120:
        raise ValueError("FLAME keyframes must be (n, 120)")
    out = np.zeros((len(k), len(CANONICAL_NAMES)), np.float32)
    rotation, neck, jaw, eyes, lids = k[:, 3:6], k[:, 6:9], k[:, 9:12], k[:, 12:18], k[:, 18:20]
    out[:, _COL["jawOpen"]] = np.clip(jaw[:, 0] / JAW_FULL_OPEN, 0.0, 1.0)
    inputs, weight, bias, outputs = _mouth_map()
    out[:, outputs] = np.clip(k[:, inputs] @ weight + bias, 0.0, 1.0)
    out[:, _COL["jawLeft"]] = np.clip(jaw[:, 1] / 0.1, 0.0, 1.0)
    out[:, _COL["jawRight"]] = np.clip(-jaw[:, 1] / 0.1, 0.0, 1.0)
    head = rotation + neck
    out[:, _COL["headPitch"]] = head[:, 0]
    out[:, _COL["headYaw"]] = head[:, 1]
    out[:, _COL["headRoll"]] = head[:, 2]
    for side, eye in (("Left", eyes[:, 0:3]), ("Right", eyes[:, 3:6])):
        pitch, yaw = eye[:, 0] / EYE_FULL_TURN, eye[:, 1] / EYE_FULL_TURN
        outward = yaw if side == "Left" else -yaw
        out[:, _COL[f"eyeLookOut{side}"]] = np.clip(outward, 0.0, 1.0)
        out[:, _COL[f"eyeLookIn{side}"]] = np.clip(-outward, 0.0, 1.0)
        out[:, _COL[f"eyeLookDown{side}"]] = np.clip(pitch, 0.0, 1.0)
        out[:, _COL[f"eyeLookUp{side}"]] = np.clip(-pitch, 0.0, 1.0)
    out[:, _COL["eyeBlinkLeft"]] = np.clip(lids[:, 0], 0.0, 1.0)
    out[:, _COL["eyeBlinkRight"]] = np.clip(lids[:, 1], 0.0, 1.0)
    return out
