"""The face rig: every ARKit blend shape and viseme as a deformation field over the face.

Each target is a sum of a few smooth, masked motions (jaw rotation about the hinge, lip edges
parting, corners pulled, lids rotating about the eye centre, brows sliding), evaluated on the rest
positions of any mesh that rides on the face. Visemes are recipes of the same motions, so the head,
the mouth bag, the brows and the teeth and tongue all agree on what ``viseme_O`` means.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._geometry import F64, rot_x, rot_y, rotate_about, smoothstep
from ._head import FaceVerts, Landmarks

#: Jaw rotation (radians about +X at the jaw pivot) at jawOpen = 1; the Jaw node gets the same.
JAW_OPEN_ANGLE = 0.30
#: Eye rotation (radians) at eyeLook* = 1, applied by the renderer to the eye nodes.
EYE_LOOK_UP = 0.35
EYE_LOOK_DOWN = 0.40
EYE_LOOK_SIDE = 0.50


@dataclasses.dataclass(frozen=True)
class MouthPose:
    """Parameters of one mouth shape (metres or radians; 0 = rest).

    ``side`` restricts corner and lip motions to the character's left (+1) or right (-1) half.
    """

    jaw: float = 0.0  # jaw rotation, radians
    jaw_fwd: float = 0.0
    jaw_side: float = 0.0
    up_lift: float = 0.0  # upper lip edge raised at the centre
    low_drop: float = 0.0  # lower lip edge lowered at the centre (besides the jaw)
    width: float = 0.0  # each corner moves outward (negative: inward)
    corner_up: float = 0.0
    corner_back: float = 0.0
    protrude: float = 0.0
    round: float = 0.0  # 0..1 horizontal gathering toward the centre
    roll_upper: float = 0.0
    roll_lower: float = 0.0
    press: float = 0.0
    tuck_lower: float = 0.0  # lower lip up and back under the upper teeth (f, v)
    funnel: float = 0.0
    shrug_lower: float = 0.0
    shrug_upper: float = 0.0
    shift_x: float = 0.0
    cheek_puff: float = 0.0
    side: float = 0.0


def _side_weight(x: F64, side: float) -> F64:
    if side == 0.0:
        return np.ones_like(x)
    return smoothstep(-0.006, 0.006, x * side)


class FaceRig:
    """Evaluates target deltas for vertices riding on one character's face."""

    def __init__(self, lm: Landmarks) -> None:
        """Bind the rig to one character's landmarks."""
        self.lm = lm

    # -- masks ------------------------------------------------------------------------------------

    def _mouth_coords(self, v: FaceVerts) -> tuple[F64, F64, F64, F64]:
        a = v.phi / self.lm.mouth_half_width
        t = v.theta - self.lm.mouth_theta
        inside = smoothstep(1.0, 0.8, np.abs(a))
        # Which side of the lips a vertex moves with: by slit side inside the mouth, smoothly outside.
        up_side = np.where(v.lip > 0, 1.0, np.where(v.lip < 0, 0.0, 0.5))
        up = inside * up_side + (1.0 - inside) * smoothstep(-0.05, 0.05, t)
        return a, t, inside, up

    def jaw_weight(self, v: FaceVerts) -> F64:
        """How rigidly a vertex follows the jaw (1 on the chin and lower lip, 0 above the mouth)."""
        a, t, _inside, _up = self._mouth_coords(v)
        # The lip edges split by slit side, fading toward the corners so the mouth opens as an oval
        # rather than a box; away from the lips the weight is a smooth function of height.
        inside = np.clip(1.0 - a**2, 0.0, 1.0) ** 0.35
        side = np.where(v.lip > 0, 0.0, np.where(v.lip < 0, 1.0, 0.5))
        away = smoothstep(0.06, -0.16, t)
        near = np.exp(-((t / 0.12) ** 2))
        lower = near * (inside * side + (1.0 - inside) * away) + (1.0 - near) * away
        lateral = smoothstep(1.55, 1.05, np.abs(v.phi))
        # Under the chin the jaw weight fades into the neck, which stays put.
        y, z = v.p[:, 1], v.p[:, 2]
        neck = 1.0 - smoothstep(0.035, 0.0, z + 0.5 * (y + 0.105)) * smoothstep(-0.08, -0.11, y)
        return np.asarray(lower * lateral * np.clip(neck, 0.0, 1.0), np.float64)

    def jaw_delta(self, p: F64, weight: F64, angle: float, fwd: float = 0.0, side: float = 0.0) -> F64:
        """Rigid jaw motion (hinge rotation, forward slide, sideways swing) scaled per vertex."""
        moved = rotate_about(p, self.lm.jaw_pivot, rot_x(angle))
        if side:
            moved = rotate_about(moved, self.lm.jaw_pivot + np.array([0.0, 0.0, -0.05]), rot_y(side))
        moved = moved + np.array([0.0, 0.0, fwd])
        return np.asarray((moved - p) * weight[:, None], np.float64)

    # -- the mouth --------------------------------------------------------------------------------

    def mouth(self, v: FaceVerts, m: MouthPose) -> F64:
        """Delta of a mouth pose for face vertices."""
        a, t, inside, up = self._mouth_coords(v)
        down = 1.0 - up
        x = v.p[:, 0]
        sidew = _side_weight(x, m.side)
        horiz = np.exp(-((np.abs(a) / 1.3) ** 4))
        sep = np.clip(1.0 - a**2, 0.0, 1.0) ** 0.7
        fu = np.exp(-((np.maximum(t, 0.0) / 0.11) ** 2))
        fl = np.exp(-((np.minimum(t, 0.0) / 0.13) ** 2))
        tight_u = up * np.exp(-((t / 0.07) ** 2)) * horiz
        tight_l = down * np.exp(-((t / 0.085) ** 2)) * horiz
        lips = np.exp(-((np.abs(a) / 1.15) ** 4) - (t / 0.11) ** 2)
        corner = np.exp(-(((np.abs(a) - 0.95) / 0.45) ** 2) - (t / 0.10) ** 2)
        cheek = np.exp(-(((np.abs(a) - 1.25) / 0.8) ** 2) - ((t - 0.12) / 0.2) ** 2)
        sgn = np.sign(a)
        d = np.zeros_like(v.p)

        if m.jaw or m.jaw_fwd or m.jaw_side:
            d += self.jaw_delta(v.p, self.jaw_weight(v), m.jaw, m.jaw_fwd, m.jaw_side)
        # Lip edges part (or meet): the separation profile vanishes at the corners.
        d[:, 1] += m.up_lift * sep * tight_u * sidew
        d[:, 2] += 0.25 * m.up_lift * sep * tight_u * sidew
        d[:, 1] -= m.low_drop * sep * tight_l * sidew
        d[:, 2] += 0.2 * m.low_drop * sep * tight_l * sidew
        # Width: the mouth scales horizontally; spread corners slide back around the face.
        wreg = np.exp(-((t / 0.15) ** 2)) * smoothstep(2.3, 1.1, np.abs(a))
        d[:, 0] += m.width * np.clip(a, -1.25, 1.25) * wreg * sidew
        d[:, 2] -= 0.45 * m.width * corner * sidew
        # Corners up (smile) pull the cheeks along, and go back and out a little.
        d[:, 1] += m.corner_up * (corner + 0.35 * cheek) * sidew
        d[:, 0] += 0.3 * m.corner_up * sgn * corner * sidew
        d[:, 2] -= 0.25 * abs(m.corner_up) * corner * sidew
        d[:, 2] -= m.corner_back * corner * sidew
        d[:, 0] += 0.3 * m.corner_back * sgn * corner * sidew
        # Protrusion and rounding gather the lips forward and toward the middle.
        d[:, 2] += m.protrude * lips * sidew
        d[:, 0] -= m.round * 0.42 * x * np.exp(-((np.abs(a) / 1.6) ** 4) - (t / 0.16) ** 2) * sidew
        d[:, 2] += m.round * 0.003 * lips * sidew
        # Rolls turn the red of a lip inward; press squeezes the lips together and thinner.
        d[:, 2] -= m.roll_upper * tight_u * sidew
        d[:, 1] -= 0.45 * m.roll_upper * tight_u * sidew
        d[:, 2] -= m.roll_lower * tight_l * sidew
        d[:, 1] += 0.45 * m.roll_lower * tight_l * sidew
        d[:, 1] -= m.press * sep * up * np.exp(-((t / 0.05) ** 2)) * sidew
        d[:, 1] += m.press * sep * down * np.exp(-((t / 0.05) ** 2)) * sidew
        d[:, 2] -= 0.6 * m.press * lips * sidew
        # f/v: the lower lip rides up and back under the upper teeth.
        d[:, 1] += m.tuck_lower * tight_l * sidew
        d[:, 2] -= 1.4 * m.tuck_lower * tight_l * sidew
        # Funnel: lips flare forward and open a little, corners come in.
        d[:, 2] += m.funnel * (tight_u + tight_l) * sidew
        d[:, 1] += 0.35 * m.funnel * sep * (tight_u - tight_l) * sidew
        d[:, 0] -= m.funnel * 0.3 * sgn * corner * sidew
        # Shrugs push a whole lip (and the chin under it) up.
        d[:, 1] += m.shrug_lower * down * fl * horiz * sidew
        d[:, 2] += 0.4 * m.shrug_lower * down * fl * horiz * sidew
        d[:, 1] += m.shrug_upper * up * fu * horiz * sidew
        d[:, 2] += 0.3 * m.shrug_upper * up * fu * horiz * sidew
        d[:, 0] += m.shift_x * np.exp(-((np.abs(a) / 1.7) ** 2) - (t / 0.2) ** 2)
        if m.cheek_puff:
            puff = np.exp(-(((np.abs(v.phi) - 0.62) / 0.32) ** 2) - ((t - 0.10) / 0.22) ** 2)
            outward = np.stack([np.sin(v.phi), np.zeros_like(a), 0.5 * np.cos(v.phi)], -1)
            d += m.cheek_puff * puff[:, None] * outward
            d[:, 2] += 0.3 * m.cheek_puff * lips
        del inside
        return d

    # -- eyes -------------------------------------------------------------------------------------

    def eye_coords(self, v: FaceVerts, k: int) -> tuple[F64, F64]:
        sign = 1.0 if k == 0 else -1.0
        a = (v.phi - sign * self.lm.eye_phi) / self.lm.eye_half_width * sign
        t = v.theta - self.lm.eye_theta
        return a, t

    def lids(
        self,
        v: FaceVerts,
        k: int,
        upper: float,
        lower: float,
        edge_angles: tuple[F64, F64, F64],
        yaw: float = 0.0,
    ) -> F64:
        """Rotate eye ``k``'s lids about the eye centre.

        ``upper``/``lower`` are fractions of the opening (positive closes the eye: the upper lid
        down, the lower lid up) or, when larger than the opening allows, simply angles. The lid
        skin follows with a falloff away from the rim, so it folds instead of tearing.
        """
        a, t = self.eye_coords(v, k)
        cols_a, open_angle, _ = edge_angles
        opening = np.interp(a, cols_a, open_angle, left=0.0, right=0.0)
        up_side = np.where(v.lid > 0, 1.0, np.where(v.lid < 0, 0.0, 0.5))
        near = np.exp(-((np.maximum(np.abs(a) - 1.0, 0.0) / 0.35) ** 2))
        # The lid turns as a sheet (flat near the rim) and only skin that hugs the eyeball turns, so
        # the fold above a closed eye stays soft instead of bulging out.
        # Rows next to the rim always turn with it (else the chords between them dip into the eye).
        hug_u = np.maximum(np.clip(v.lidw, 0.0, 1.0) ** 2, smoothstep(0.16, 0.06, t))
        hug_l = np.maximum(np.clip(v.lidw, 0.0, 1.0) ** 2, smoothstep(-0.12, -0.04, t))
        g_up = smoothstep(0.30, 0.08, np.maximum(t, 0.0)) * up_side * near * hug_u
        g_lo = smoothstep(-0.22, -0.05, np.minimum(t, 0.0)) * (1.0 - up_side) * near * hug_l
        # rot_x(+angle) lowers a point in front of the eye, so the upper lid closes with +angle.
        angle = upper * opening * g_up - lower * opening * g_lo
        e = self.lm.eye[k]
        moved = rotate_about(v.p, e, rot_x(angle))
        if yaw:
            wy = (g_up + g_lo) * near
            moved = rotate_about(moved, e, rot_y(yaw * wy))
        return np.asarray(moved - v.p, np.float64)

    # -- brows, cheeks, nose --------------------------------------------------------------------

    def brow(self, v: FaceVerts, side: float, inner: float, outer: float, down: float) -> F64:
        """Brow motions for one side (+1 left, -1 right): inner/outer raise, and the frown."""
        lm = self.lm
        b = (v.phi * side - lm.eye_phi * 0.92) / 0.36  # -1 inner end .. +1 outer end
        t = v.theta - (lm.eye_theta + 0.27)
        region = np.exp(-((np.abs(b) / 1.5) ** 4) - (np.maximum(t, 0) / 0.28) ** 2 - (np.minimum(t, 0) / 0.13) ** 2)
        region *= smoothstep(-0.08, 0.06, v.phi * side)  # stays on its own side of the middle
        inner_w = smoothstep(0.6, -1.0, b)
        outer_w = smoothstep(-0.4, 1.0, b)
        d = np.zeros_like(v.p)
        d[:, 1] += region * (inner * 0.0075 * inner_w + outer * 0.0055 * outer_w)
        d[:, 1] -= region * down * (0.0030 + 0.0020 * inner_w)
        d[:, 0] -= region * down * 0.0022 * side * inner_w
        d[:, 2] += region * down * 0.0010 * inner_w
        return d

    def cheek_squint(self, v: FaceVerts, side: float) -> F64:
        """Cheek raised toward the eye (one side)."""
        lm = self.lm
        t = v.theta - (lm.eye_theta - 0.22)
        a = (v.phi * side - lm.eye_phi) / 0.35
        w = np.exp(-(a**2) - (t / 0.16) ** 2) * smoothstep(-0.1, 0.05, v.phi * side)
        d = np.zeros_like(v.p)
        d[:, 1] += 0.0032 * w
        d[:, 2] += 0.0012 * w
        return d

    def nose_sneer(self, v: FaceVerts, side: float) -> F64:
        """Nose wing and the upper lip beside it pulled up (one side)."""
        lm = self.lm
        t = v.theta - (lm.mouth_theta + 0.2)
        a = (v.phi * side - 0.11) / 0.09
        w = np.exp(-(a**2) - (t / 0.14) ** 2) * smoothstep(-0.05, 0.02, v.phi * side)
        d = np.zeros_like(v.p)
        d[:, 1] += 0.0035 * w
        d[:, 2] += 0.0010 * w
        # A wrinkle pull on the bridge side.
        t2 = v.theta - (lm.eye_theta - 0.05)
        w2 = np.exp(-(((v.phi * side - 0.07) / 0.07) ** 2) - (t2 / 0.1) ** 2)
        d[:, 1] -= 0.0012 * w2
        return d
