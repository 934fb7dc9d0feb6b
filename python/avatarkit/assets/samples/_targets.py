"""Recipes: the 52 ARKit blend shapes and the 15 visemes as combinations of the rig's motions."""

from __future__ import annotations

import dataclasses

import numpy as np

from ...codec import ARKIT_NAMES, VISEME_NAMES
from ._geometry import F64, smoothstep
from ._head import FaceVerts, Head
from ._rig import JAW_OPEN_ANGLE, FaceRig, MouthPose

#: Every morph target of the head, in the canonical channel order.
TARGET_NAMES: tuple[str, ...] = (*ARKIT_NAMES, *VISEME_NAMES)


@dataclasses.dataclass(frozen=True)
class Lids:
    """Lid motion of one eye (0 = left/+X, 1 = right): see ``FaceRig.lids``."""

    eye: int
    upper: float
    lower: float
    yaw: float = 0.0


@dataclasses.dataclass(frozen=True)
class Brow:
    """Brow motion on one side (+1 left, -1 right)."""

    side: float
    inner: float = 0.0
    outer: float = 0.0
    down: float = 0.0


@dataclasses.dataclass(frozen=True)
class Cheek:
    """Cheek squint on one side."""

    side: float
    amount: float = 1.0


@dataclasses.dataclass(frozen=True)
class Sneer:
    """Nose sneer on one side."""

    side: float
    amount: float = 1.0


@dataclasses.dataclass(frozen=True)
class Tongue:
    """Tongue shape: tip forward/up, body up, back up (metres)."""

    tip_fwd: float = 0.0
    tip_up: float = 0.0
    body_up: float = 0.0
    back_up: float = 0.0


Part = MouthPose | Lids | Brow | Cheek | Sneer | Tongue


def _sided(name: str) -> list[tuple[str, float, int]]:
    return [(name + "Left", 1.0, 0), (name + "Right", -1.0, 1)]


def _recipes() -> dict[str, list[Part]]:
    r: dict[str, list[Part]] = {}
    for suffix, side, eye in _sided(""):
        r["eyeBlink" + suffix] = [Lids(eye, 0.86, 0.18)]
        r["eyeLookDown" + suffix] = [Lids(eye, 0.34, -0.10)]
        r["eyeLookUp" + suffix] = [Lids(eye, -0.22, 0.08), Brow(side, inner=0.15, outer=0.15)]
        # Looking in turns toward the nose: -X for the left eye, +X for the right one.
        r["eyeLookIn" + suffix] = [Lids(eye, 0.04, 0.0, yaw=-0.12 * side)]
        r["eyeLookOut" + suffix] = [Lids(eye, 0.04, 0.0, yaw=0.12 * side)]
        r["eyeSquint" + suffix] = [Lids(eye, 0.14, 0.38), Cheek(side, 0.5)]
        r["eyeWide" + suffix] = [Lids(eye, -0.32, -0.08), Brow(side, inner=0.25, outer=0.25)]
    r["jawForward"] = [MouthPose(jaw_fwd=0.0065, jaw=0.02)]
    r["jawLeft"] = [MouthPose(jaw_side=0.10)]
    r["jawRight"] = [MouthPose(jaw_side=-0.10)]
    r["jawOpen"] = [MouthPose(jaw=JAW_OPEN_ANGLE)]
    # ARKit semantics: with jawOpen at 1, mouthClose at 1 brings the lips back together.
    r["mouthClose"] = [MouthPose(up_lift=-0.0105, low_drop=-0.0172, protrude=0.001)]
    r["mouthFunnel"] = [MouthPose(jaw=0.05, funnel=0.0045, round=0.35, up_lift=0.0018, low_drop=0.0018)]
    r["mouthPucker"] = [MouthPose(round=0.55, protrude=0.0055, press=0.0006)]
    r["mouthLeft"] = [MouthPose(shift_x=0.0065)]
    r["mouthRight"] = [MouthPose(shift_x=-0.0065)]
    for suffix, side, _eye in _sided(""):
        r["mouthSmile" + suffix] = [MouthPose(corner_up=0.0065, width=0.0022, up_lift=0.0006, side=side)]
        r["mouthFrown" + suffix] = [MouthPose(corner_up=-0.0050, low_drop=0.0004, side=side)]
        r["mouthDimple" + suffix] = [MouthPose(corner_back=0.0040, width=0.0012, side=side)]
        r["mouthStretch" + suffix] = [
            MouthPose(width=0.0045, corner_up=-0.0015, low_drop=0.0012, up_lift=0.0005, side=side)
        ]
        r["mouthPress" + suffix] = [MouthPose(press=0.0013, width=0.0008, side=side)]
        r["mouthLowerDown" + suffix] = [MouthPose(low_drop=0.0042, side=side)]
        r["mouthUpperUp" + suffix] = [MouthPose(up_lift=0.0036, side=side)]
    r["mouthRollLower"] = [MouthPose(roll_lower=0.0036)]
    r["mouthRollUpper"] = [MouthPose(roll_upper=0.0032)]
    r["mouthShrugLower"] = [MouthPose(shrug_lower=0.0032)]
    r["mouthShrugUpper"] = [MouthPose(shrug_upper=0.0026)]
    r["browDownLeft"] = [Brow(1.0, down=1.0)]
    r["browDownRight"] = [Brow(-1.0, down=1.0)]
    r["browInnerUp"] = [Brow(1.0, inner=1.0), Brow(-1.0, inner=1.0)]
    r["browOuterUpLeft"] = [Brow(1.0, outer=1.0)]
    r["browOuterUpRight"] = [Brow(-1.0, outer=1.0)]
    r["cheekPuff"] = [MouthPose(cheek_puff=0.0065, press=0.0004)]
    for suffix, side, eye in _sided(""):
        r["cheekSquint" + suffix] = [Cheek(side), Lids(eye, 0.0, 0.12)]
        r["noseSneer" + suffix] = [Sneer(side), Brow(side, down=0.35), MouthPose(up_lift=0.0012, side=side)]
    r["tongueOut"] = [
        MouthPose(jaw=0.10, low_drop=0.0022),
        Tongue(tip_fwd=0.024, tip_up=0.006, body_up=0.003),
    ]
    # Visemes (Oculus reference): what the lips, jaw and tongue do on each sound class.
    r["viseme_sil"] = [MouthPose(press=0.0003, corner_back=0.0006)]
    r["viseme_PP"] = [MouthPose(jaw=0.012, press=0.0024, roll_upper=0.0009, roll_lower=0.0011, protrude=0.0008)]
    r["viseme_FF"] = [MouthPose(jaw=0.05, tuck_lower=0.0046, up_lift=0.0020, width=0.001)]
    r["viseme_TH"] = [
        MouthPose(jaw=0.10, up_lift=0.0012, low_drop=0.0016, width=0.001),
        Tongue(tip_fwd=0.013, tip_up=0.008, body_up=0.002),
    ]
    r["viseme_DD"] = [
        MouthPose(jaw=0.085, up_lift=0.0012, low_drop=0.0010, width=0.0016),
        Tongue(tip_up=0.007, tip_fwd=0.002),
    ]
    r["viseme_kk"] = [
        MouthPose(jaw=0.12, up_lift=0.0008, low_drop=0.0014, width=0.0012),
        Tongue(back_up=0.007, tip_fwd=-0.002),
    ]
    r["viseme_CH"] = [
        MouthPose(jaw=0.05, protrude=0.0042, round=0.25, funnel=0.0016, up_lift=0.0026, low_drop=0.0022),
        Tongue(tip_up=0.004, body_up=0.002),
    ]
    r["viseme_SS"] = [
        MouthPose(jaw=0.035, width=0.0032, up_lift=0.0024, low_drop=0.0020, corner_back=0.0010),
        Tongue(tip_up=0.003, tip_fwd=0.001),
    ]
    r["viseme_nn"] = [
        MouthPose(jaw=0.075, up_lift=0.0008, low_drop=0.0008, width=0.0008),
        Tongue(tip_up=0.0075),
    ]
    r["viseme_RR"] = [
        MouthPose(jaw=0.07, round=0.30, protrude=0.0026, up_lift=0.0012, low_drop=0.0008),
        Tongue(tip_up=0.004, tip_fwd=-0.003, body_up=0.001),
    ]
    r["viseme_aa"] = [
        MouthPose(jaw=0.27, up_lift=0.0012, low_drop=0.0010, width=0.0008),
        Tongue(body_up=-0.002),
    ]
    r["viseme_E"] = [
        MouthPose(jaw=0.12, width=0.0036, up_lift=0.0022, low_drop=0.0016, corner_up=0.0008),
        Tongue(body_up=0.003),
    ]
    r["viseme_I"] = [
        MouthPose(jaw=0.07, width=0.0030, up_lift=0.0016, low_drop=0.0010, corner_up=0.0006),
        Tongue(body_up=0.004, tip_up=0.001),
    ]
    r["viseme_O"] = [
        MouthPose(jaw=0.16, round=0.62, protrude=0.0050, up_lift=0.0022, low_drop=0.0016, funnel=0.0014),
        Tongue(back_up=0.003),
    ]
    r["viseme_U"] = [
        MouthPose(jaw=0.075, round=0.78, protrude=0.0072, funnel=0.0018, up_lift=0.0008),
        Tongue(back_up=0.004),
    ]
    missing = set(TARGET_NAMES) - set(r)
    assert not missing, missing
    return r


RECIPES: dict[str, list[Part]] = _recipes()


def lid_edges(head: Head, rig: FaceRig) -> list[tuple[F64, F64, F64]]:
    """Per eye: rim vertices' across-eye coordinate, their opening angle, and the rim positions.

    The opening angle is the angle about the eye centre between the upper and lower rim at each
    column: a blink turns the upper lid through most of it and the lower lid through the rest.
    """
    out = []
    v = head.verts
    for k in range(2):
        up, lo = head.lid_upper[k], head.lid_lower[k]
        e = rig.lm.eye[k]
        au = np.arctan2(v.p[up, 1] - e[1], v.p[up, 2] - e[2])
        al = np.arctan2(v.p[lo, 1] - e[1], v.p[lo, 2] - e[2])
        a, _t = rig.eye_coords(v, k)
        cols_a = a[up]
        order = np.argsort(cols_a)
        out.append((cols_a[order], (au - al)[order], v.p[up][order]))
    return out


def face_delta(rig: FaceRig, v: FaceVerts, parts: list[Part], edges: list[tuple[F64, F64, F64]]) -> F64:
    """Sum of the face motions of one recipe (tongue parts are not face motions)."""
    d = np.zeros_like(v.p)
    for part in parts:
        if isinstance(part, MouthPose):
            d += rig.mouth(v, part)
        elif isinstance(part, Lids):
            d += rig.lids(v, part.eye, part.upper, part.lower, edges[part.eye], part.yaw)
        elif isinstance(part, Brow):
            d += rig.brow(v, part.side, part.inner, part.outer, part.down)
        elif isinstance(part, Cheek):
            d += part.amount * rig.cheek_squint(v, part.side)
        elif isinstance(part, Sneer):
            d += part.amount * rig.nose_sneer(v, part.side)
    return d


def head_targets(head: Head, rig: FaceRig) -> dict[str, F64]:
    """All 67 targets of the head mesh, the mouth bag included."""
    edges = lid_edges(head, rig)
    v = head.verts
    start = int(head.bag["start"][0])
    loop = np.asarray(head.bag["loop"], np.int64)
    f = np.asarray(head.bag["f"], np.float64)
    psi = np.asarray(head.bag["psi"], np.float64)
    nloop = len(loop)
    bag_p = v.p[start:]
    # The deep bag follows only the jaw: its floor with the jaw, its roof with the skull, and the
    # throat hardly at all (so the back wall never folds over when the mouth opens wide).
    spread = 0.45 + 0.6 * f
    bag_jaw = np.clip(0.5 - 0.5 * np.sin(psi) / spread, 0.0, 1.0)
    bag_jaw = bag_jaw * bag_jaw * (3.0 - 2.0 * bag_jaw)
    g = smoothstep(0.0, 0.55, f)
    out = {}
    for name in TARGET_NAMES:
        parts = RECIPES[name]
        d = face_delta(rig, v, parts, edges)
        edge = d[loop]
        edge_all = np.concatenate([np.tile(edge, (len(f) // nloop, 1)), edge.mean(0, keepdims=True)])
        deep = np.zeros_like(bag_p)
        for part in parts:
            if isinstance(part, MouthPose) and (part.jaw or part.jaw_fwd or part.jaw_side):
                deep += rig.jaw_delta(bag_p, bag_jaw, part.jaw, part.jaw_fwd, part.jaw_side)
        d[start:] = edge_all * (1.0 - g[:, None]) + deep * g[:, None]
        out[name] = d
    return out


def rigid_jaw_targets(rig: FaceRig, p: F64, *, include_jaw_open: bool) -> dict[str, F64]:
    """Targets of a mesh carried by the jaw (lower teeth): the jaw part of each recipe."""
    out = {}
    w = np.ones(len(p))
    for name in TARGET_NAMES:
        if name == "jawOpen" and not include_jaw_open:
            continue
        d = np.zeros_like(p)
        for part in RECIPES[name]:
            if isinstance(part, MouthPose) and (part.jaw or part.jaw_fwd or part.jaw_side):
                d += rig.jaw_delta(p, w, part.jaw, part.jaw_fwd, part.jaw_side)
        if np.any(d):
            out[name] = d
    return out


def tongue_targets(rig: FaceRig, p: F64, s: F64, *, include_jaw_open: bool) -> dict[str, F64]:
    """Targets of the tongue: jaw motion plus its own shape; ``s`` is 0 at the root, 1 at the tip."""
    out = rigid_jaw_targets(rig, p, include_jaw_open=include_jaw_open)
    tip = s**2.2
    body = np.sin(np.pi * np.clip(s, 0, 1)) ** 1.5
    back = np.clip(1.0 - s, 0, 1) ** 1.5 * smoothstep(0.0, 0.25, s)
    for name in TARGET_NAMES:
        shape = [part for part in RECIPES[name] if isinstance(part, Tongue)]
        if not shape:
            continue
        d = out.get(name, np.zeros_like(p)).copy()
        for tg in shape:
            d[:, 2] += tg.tip_fwd * tip + 0.35 * tg.tip_fwd * body
            d[:, 1] += tg.tip_up * tip + tg.body_up * body + tg.back_up * back
        out[name] = d
    return out
