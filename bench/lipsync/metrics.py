"""Lip-sync metrics against synthesized truth (definitions in docs/lipsync.md).

- viseme accuracy: a frame counts when its predicted viseme (the argmax of the 15 viseme channels,
  ``sil`` when that maximum is below :data:`SIL_THRESHOLD`) equals the truth at that frame or at the
  frame before or after it;
- bilabial closure recall: the share of p/b/m phones during which, give or take 40 ms, at least one
  frame's predicted viseme is PP;
- bilabial closure precision: the share of frames predicted PP that lie within 40 ms of a p/b/m
  phone (recall's counterpart: a model that closes the lips everywhere has full recall);
- jaw correlation: Pearson's r between ``jawOpen`` and the truth's openness per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .visemes import PP, SIL, VISEMES, Segment

SIL_THRESHOLD = 0.15
FRAME = 0.04  # seconds per frame (25 fps)
CLOSURE_SLACK = 0.04  # seconds either side of a p/b/m phone

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def predicted_visemes(viseme_weights: F32, threshold: float = SIL_THRESHOLD) -> I64:
    """Per frame: the argmax of the 15 viseme weights, or sil (0) when the maximum is below ``threshold``."""
    best = viseme_weights.argmax(axis=1).astype(np.int64)
    best[viseme_weights.max(axis=1) < threshold] = SIL
    return best


def tolerant_hits(pred: I64, truth: I64, tolerance: int = 1) -> npt.NDArray[np.bool_]:
    """Per frame: whether ``pred`` matches ``truth`` within ``tolerance`` frames."""
    n = min(len(pred), len(truth))
    pred, truth = pred[:n], truth[:n]
    hit = pred == truth
    for d in range(1, tolerance + 1):
        hit[d:] |= pred[d:] == truth[:-d]
        hit[:-d] |= pred[:-d] == truth[d:]
    return hit


def closure_windows(segs: Sequence[Segment]) -> list[slice]:
    """The frames of each p/b/m phone, :data:`CLOSURE_SLACK` either side."""
    return [
        slice(max(0, int(np.floor((s.start - CLOSURE_SLACK) / FRAME))), int(np.ceil((s.end + CLOSURE_SLACK) / FRAME)))
        for s in segs
        if s.viseme == PP
    ]


def closures(pred: I64, segs: Sequence[Segment]) -> tuple[int, int]:
    """(p/b/m phones with a PP frame within :data:`CLOSURE_SLACK`, p/b/m phones)."""
    windows = closure_windows(segs)
    return sum(bool(np.any(pred[w] == PP)) for w in windows), len(windows)


def closure_frames(pred: I64, segs: Sequence[Segment]) -> tuple[int, int]:
    """(frames predicted PP within :data:`CLOSURE_SLACK` of a p/b/m phone, frames predicted PP)."""
    near = np.zeros(len(pred), bool)
    for w in closure_windows(segs):
        near[w] = True
    closed = pred == PP
    return int((closed & near).sum()), int(closed.sum())


def pearson(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Pearson's correlation coefficient (nan when either side is constant)."""
    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    x = x - x.mean()
    y = y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else float("nan")


@dataclass
class Tally:
    """Running totals of the metrics over a set of utterances."""

    hits: int = 0
    frames: int = 0
    closures_found: int = 0
    closures_total: int = 0
    closed_near: int = 0
    closed_frames: int = 0
    jaw: list[F32] = field(default_factory=list)
    openness: list[F32] = field(default_factory=list)
    per_utterance_r: list[float] = field(default_factory=list)
    confusion: I64 = field(default_factory=lambda: np.zeros((len(VISEMES), len(VISEMES)), np.int64))
    audio_seconds: float = 0.0
    compute_seconds: float = 0.0
    utterances: int = 0

    def add(self, frames: F32, names: Sequence[str], truth: I64, openness: F32, segs: Sequence[Segment]) -> None:
        """Score one utterance's engine output against its truth."""
        cols = [names.index("viseme_" + v) for v in VISEMES]
        pred = predicted_visemes(frames[:, cols])
        n = min(len(pred), len(truth))
        hit = tolerant_hits(pred[:n], truth[:n])
        self.hits += int(hit.sum())
        self.frames += n
        found, total = closures(pred, segs)
        self.closures_found += found
        self.closures_total += total
        near, closed = closure_frames(pred, segs)
        self.closed_near += near
        self.closed_frames += closed
        jaw = frames[:n, names.index("jawOpen")].astype(np.float32)
        self.jaw.append(jaw)
        self.openness.append(openness[:n])
        r = pearson(jaw, openness[:n])
        if np.isfinite(r):
            self.per_utterance_r.append(r)
        np.add.at(self.confusion, (truth[:n], pred[:n]), 1)
        self.utterances += 1

    def merge(self, other: Tally) -> None:
        """Add another tally's utterances to this one (pooled figures)."""
        self.hits += other.hits
        self.frames += other.frames
        self.closures_found += other.closures_found
        self.closures_total += other.closures_total
        self.closed_near += other.closed_near
        self.closed_frames += other.closed_frames
        self.jaw += other.jaw
        self.openness += other.openness
        self.per_utterance_r += other.per_utterance_r
        self.confusion += other.confusion
        self.audio_seconds += other.audio_seconds
        self.compute_seconds += other.compute_seconds
        self.utterances += other.utterances

    @property
    def accuracy(self) -> float:
        """Viseme accuracy with a one-frame tolerance."""
        return self.hits / max(self.frames, 1)

    @property
    def closure_recall(self) -> float:
        """Share of p/b/m phones that showed a PP frame."""
        return self.closures_found / max(self.closures_total, 1)

    @property
    def closure_precision(self) -> float:
        """Share of frames predicted PP that lie within 40 ms of a p/b/m phone (nan without any)."""
        return self.closed_near / self.closed_frames if self.closed_frames else float("nan")

    @property
    def jaw_r(self) -> float:
        """Pearson's r of jawOpen and truth openness over all frames pooled."""
        return pearson(np.concatenate(self.jaw), np.concatenate(self.openness)) if self.jaw else float("nan")

    @property
    def jaw_r_mean(self) -> float:
        """Mean of the per-utterance Pearson's r."""
        return float(np.mean(self.per_utterance_r)) if self.per_utterance_r else float("nan")

    @property
    def rtf(self) -> float:
        """Engine compute time over audio time."""
        return self.compute_seconds / max(self.audio_seconds, 1e-9)

    def per_viseme_recall(self) -> dict[str, float]:
        """Exact-frame recall per true viseme (diagnostics)."""
        rows = self.confusion.sum(axis=1)
        return {v: float(self.confusion[i, i] / rows[i]) if rows[i] else float("nan") for i, v in enumerate(VISEMES)}
