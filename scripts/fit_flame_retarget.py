"""Fit the linear map from the commercial service's FLAME expression to the canonical mouth channels.

    python scripts/fit_flame_retarget.py [--recording ../shared/data/official-16000.json]
                                         [--out python/avatarkit/data/flame_retarget.npz] [--check]

The commercial service's ``FlameAnimation`` carries the lip shapes in 100 expression coefficients of
FLAME's own basis, which mean nothing to a glTF rig. What we have to learn a map from: the shared
recording, 20 s of speech with the 507 FLAME keyframes the service made of it, and what our engine
makes of the same audio (canonical mouth and viseme channels, 25 fps). So the map is fitted to
reproduce our engine's mouth from the service's FLAME frames:

1. the engine's frames for the recording's audio (standard engine, non-verbal layer off);
2. the lag between the two streams, from the jaw (FLAME ``jaw_pose`` against our ``jawOpen``),
   measured on the fitting half only;
3. ridge regression from the inputs (100 expression coefficients and the jaw rotation, each
   standardized) to each mouth channel, fitted on the first half of the frames; the ridge strength
   is chosen by blocked cross-validation inside that half;
4. judged on the second half, which the fit never saw: the correlation per channel, and closure
   recall (frames where the engine's strongest viseme is PP, found as PP by the map).

It writes ``flame_retarget.npz`` (the weights with the standardization folded in) that
:mod:`avatarkit.retarget` loads, and prints the held-out figures. Limits: one speaker, one
recording, 10 s of fitting data for 101 inputs; the map learns how this service's expression space
moves with English speech as our engine reads it, not FLAME's geometry. ``--check`` refits and
fails if the shipped file differs (it is deterministic).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import pathlib
import sys

import numpy as np
import numpy.typing as npt

from avatarkit import codec
from avatarkit.codec import CANONICAL_NAMES, VISEME_NAMES
from avatarkit.engine import EngineSession
from avatarkit.protocol import parse_message

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_RECORDING = ROOT.parent / "shared" / "data" / "official-16000.json"
DEFAULT_OUT = ROOT / "python" / "avatarkit" / "data" / "flame_retarget.npz"

F64 = npt.NDArray[np.float64]

#: The channels the map drives: every viseme and the ARKit mouth shapes (jawOpen stays physical).
OUTPUTS = [
    *VISEME_NAMES,
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "mouthRollLower",
    "mouthRollUpper",
]
#: FLAME columns read: expression 0..99 (columns 20..119) and the jaw's opening rotation (column 9).
INPUT_COLUMNS = [9, *range(20, 120)]
LAMBDAS = [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]


def load_recording(path: pathlib.Path) -> tuple[npt.NDArray[np.int16], int, npt.NDArray[np.float32]]:
    """The recording's PCM, its rate, and its FLAME keyframes (``n x 120``)."""
    doc = json.loads(path.read_text())
    pcm = np.frombuffer(base64.b64decode(doc["audio_base64"]), "<i2")
    frames = []
    for raw in doc["animation_messages_base64"]:
        payload = parse_message(base64.b64decode(raw)).server_response_animation.animation
        if payload:
            frames.append(codec.decode_flame(payload))
    return pcm, int(doc["sample_rate"]), np.concatenate(frames)


def engine_frames(pcm: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.float32]:
    session = EngineSession(rate, nonverbal=False)
    return np.concatenate([session.push(pcm), session.flush()])


def best_lag(a: F64, b: F64, max_lag: int = 4) -> int:
    """The shift ``L`` that best lines up ``a[k + L]`` with ``b[k]`` (correlation)."""

    def corr(lag: int) -> float:
        x, y = (a[lag:], b[: len(b) - lag]) if lag >= 0 else (a[: len(a) + lag], b[-lag:])
        n = min(len(x), len(y))
        return float(np.corrcoef(x[:n], y[:n])[0, 1])

    return max(range(-max_lag, max_lag + 1), key=corr)


def ridge(x: F64, y: F64, lam: float) -> F64:
    """Weights (with a bias row last) of ridge regression on standardized ``x``; the bias is not shrunk."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    penalty = lam * np.eye(xb.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(xb.T @ xb + penalty, xb.T @ y)


def predict(x: F64, w: F64) -> F64:
    return np.hstack([x, np.ones((len(x), 1))]) @ w


def choose_lambda(x: F64, y: F64, folds: int = 5) -> float:
    """The ridge strength with the least squared error over blocked folds (contiguous stretches)."""
    edges = np.linspace(0, len(x), folds + 1).astype(int)
    errors = []
    for lam in LAMBDAS:
        err = 0.0
        for a, b in itertools.pairwise(edges):
            keep = np.r_[0:a, b : len(x)]
            w = ridge(x[keep], y[keep], lam)
            err += float(np.sum((predict(x[a:b], w) - y[a:b]) ** 2))
        errors.append(err)
    return LAMBDAS[int(np.argmin(errors))]


def closure_recall(engine: F64, mapped: F64) -> tuple[float, int]:
    """Of the frames where the engine's strongest viseme is PP, the share where the map's is too."""
    v = [OUTPUTS.index(n) for n in VISEME_NAMES]
    pp = VISEME_NAMES.index("viseme_PP")
    truth = np.argmax(engine[:, v], axis=1) == pp
    found = np.argmax(mapped[:, v], axis=1) == pp
    return (float(found[truth].mean()) if truth.any() else float("nan")), int(truth.sum())


def fit(recording: pathlib.Path) -> tuple[dict[str, npt.NDArray[np.generic]], str]:
    pcm, rate, flame = load_recording(recording)
    ours = engine_frames(pcm, rate).astype(np.float64)
    cols = [CANONICAL_NAMES.index(n) for n in OUTPUTS]
    n = min(len(flame), len(ours))
    half = n // 2
    lag = best_lag(flame[:half, 9].astype(np.float64), ours[:half, CANONICAL_NAMES.index("jawOpen")])
    # Pair FLAME frame k + lag with engine frame k.
    idx = np.arange(max(0, -lag), min(n, n - lag))
    x_all = flame[idx + lag][:, INPUT_COLUMNS].astype(np.float64)
    y_all = ours[idx][:, cols]
    fit_rows, test_rows = idx < half, idx >= half
    mean, std = x_all[fit_rows].mean(0), x_all[fit_rows].std(0) + 1e-6
    xs = (x_all - mean) / std
    lam = choose_lambda(xs[fit_rows], y_all[fit_rows])
    w = ridge(xs[fit_rows], y_all[fit_rows], lam)
    held = np.clip(predict(xs[test_rows], w), 0.0, 1.0)
    truth = y_all[test_rows]
    lines = [
        f"recording: {len(pcm) / rate:.1f} s, {len(flame)} FLAME keyframes, {len(ours)} engine frames",
        f"lag: FLAME frame k + {lag} pairs with engine frame k (from the jaw, fitting half)",
        f"fit: {int(fit_rows.sum())} frames (first half), ridge lambda {lam:g} (blocked 5-fold CV in it)",
        f"held out: {int(test_rows.sum())} frames (second half), correlation per channel:",
    ]
    rs = {}
    for j, name in enumerate(OUTPUTS):
        if truth[:, j].std() < 1e-3:
            continue
        rs[name] = float(np.corrcoef(held[:, j], truth[:, j])[0, 1])
    for name, r in sorted(rs.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:20s} r = {r:6.3f}")
    recall, count = closure_recall(truth, held)
    lines.append(f"mean r over {len(rs)} channels: {np.mean(list(rs.values())):.3f}")
    lines.append(f"closure recall: {recall:.3f} of {count} engine PP frames in the held-out half")
    # Fold the standardization in: out = x @ (w / std) + (b - mean / std @ w).
    weight = w[:-1] / std[:, None]
    bias = w[-1] - (mean / std) @ w[:-1]
    arrays = {
        "weight": weight.astype(np.float32),
        "bias": bias.astype(np.float32),
        "input_columns": np.array(INPUT_COLUMNS, np.int32),
        "outputs": np.array(OUTPUTS),
        "lag_frames": np.array(lag, np.int32),
        "ridge_lambda": np.array(lam, np.float64),
    }
    return arrays, "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recording", type=pathlib.Path, default=DEFAULT_RECORDING)
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="refit and compare with --out instead of writing")
    args = ap.parse_args()
    if not args.recording.is_file():
        print(f"no recording at {args.recording} (../shared/data is beside development checkouts)", file=sys.stderr)
        return 2
    arrays, report = fit(args.recording)
    print(report)
    if args.check:
        with np.load(args.out) as shipped:
            same = all(np.allclose(shipped[k], arrays[k], atol=1e-5) for k in ("weight", "bias"))
        print("shipped map: " + ("matches" if same else "DIFFERS"))
        return 0 if same else 1
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
