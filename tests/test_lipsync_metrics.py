"""The lip-sync harness's closure figures: recall and its counterpart, precision.

Closure recall alone rewards a model that closes the lips everywhere; precision (the frames read
PP that lie near a p, b or m) is what says it does not. These are the definitions in
``bench/lipsync/metrics.py`` checked on hand-made frames.
"""

from __future__ import annotations

import math
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO / "bench") not in sys.path:
    sys.path.insert(0, str(REPO / "bench"))

from lipsync import metrics  # noqa: E402
from lipsync.visemes import PP, SIL, VISEMES, Segment  # noqa: E402

AA = VISEMES.index("aa")

# "a pa": aa from 0.0 to 0.2 s, p from 0.2 to 0.28 s, aa from 0.28 to 0.48 s (12 frames of 40 ms).
SEGS = [Segment(AA, 0.0, 0.2, "a"), Segment(PP, 0.2, 0.28, "p"), Segment(AA, 0.28, 0.48, "a")]


def frames(pp_at: list[int], n: int = 12) -> np.ndarray:
    """Predicted visemes: aa everywhere but PP at the given frames."""
    pred = np.full(n, AA, np.int64)
    pred[pp_at] = PP
    return pred


def test_a_closure_on_the_p_is_found_and_precise() -> None:
    pred = frames([5, 6])
    assert metrics.closures(pred, SEGS) == (1, 1)
    assert metrics.closure_frames(pred, SEGS) == (2, 2)


def test_closing_everywhere_has_full_recall_and_low_precision() -> None:
    pred = np.full(12, PP, np.int64)
    assert metrics.closures(pred, SEGS) == (1, 1)
    near, closed = metrics.closure_frames(pred, SEGS)
    # The p's 40 ms of slack either side: frames 4 to 7 (0.16 s to 0.32 s).
    assert (near, closed) == (4, 12)


def test_a_closure_far_from_any_p_is_imprecise_and_misses() -> None:
    pred = frames([0, 11])
    assert metrics.closures(pred, SEGS) == (0, 1)
    assert metrics.closure_frames(pred, SEGS) == (0, 2)


def test_the_tally_pools_precision_and_has_none_without_closures() -> None:
    names = [f"viseme_{v}" for v in VISEMES] + ["jawOpen"]
    openness = np.linspace(0.0, 1.0, 12).astype(np.float32)

    def weights(pred: np.ndarray) -> np.ndarray:
        out = np.zeros((len(pred), len(names)), np.float32)
        out[np.arange(len(pred)), pred] = 1.0
        out[:, -1] = openness
        return out

    truth = frames([5, 6])
    tally = metrics.Tally()
    assert math.isnan(tally.closure_precision)
    tally.add(weights(frames([5, 11])), names, truth, openness, SEGS)
    other = metrics.Tally()
    other.add(weights(frames([6])), names, truth, openness, SEGS)
    tally.merge(other)
    assert (tally.closed_near, tally.closed_frames) == (2, 3)
    assert math.isclose(tally.closure_precision, 2 / 3)
    silent = metrics.Tally()
    silent.add(weights(np.full(12, SIL, np.int64)), names, truth, openness, SEGS)
    assert math.isnan(silent.closure_precision)
    assert silent.closure_recall == 0.0
