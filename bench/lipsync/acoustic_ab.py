"""Does a model trained on real speech help the engine read voices it never heard? An A/B on the shipped recipe.

    python bench/lipsync/acoustic_ab.py features                    # once (23 min here, 2 cores)
    python bench/lipsync/acoustic_ab.py train --family neural --arm mel
    python bench/lipsync/acoustic_ab.py train --family neural --arm both

``features`` replays ``scripts/train_lipsync.py``'s featurization of the shipped recipe (same
utterances, same augmentation draws, so the same log-mel frames) and keeps, for every clip, the
126 context-independent senone scores of pocketsphinx's US English acoustic model
(:mod:`lipsync.sphinxam`, computed on the augmented audio resampled to 16 kHz). ``train`` leaves one
family out and trains the shipped network on the engine's normalized log-mel frames (arm ``mel``)
or on those frames plus the senones' log-posteriors (arm ``both``, the projection's input grows
from 40 to 166 values); everything else (offsets, epochs, augmentation, seed) is the shipped
recipe. It then reports 10 ms frame accuracy on the family's held-out test voices, scored as
synthesized: the network's own output, without the engine's smoothing or face.

An experiment, run in numpy. The engine's own version of the scores (``engine.acoustic_features``)
differs in its windows and its running cepstral mean, and sessions do not use it yet.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import pickle
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

REPO = pathlib.Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "scripts"))

import train_lipsync as tl  # noqa: E402

from avatarkit._core import engine  # noqa: E402
from lipsync import dataset, sphinxam  # noqa: E402
from lipsync.visemes import PP, SIL, VISEMES  # noqa: E402

F32 = npt.NDArray[np.float32]
CACHE = REPO / "build" / "lipsync-data" / "acoustic-scores.pkl"
TESTS = {
    "formant": {"espeak": lambda: dataset.espeak_eval(40)},
    "concatenative": {"kal": lambda: dataset.festival_eval("kal", 40)},
    "parametric": {"rms": lambda: dataset.flite_eval("rms", 40)},
    "neural": {"kokoro": lambda: dataset.kokoro_eval(40), "joe": lambda: dataset.piper_eval(40)},
}


def scores_of(x: F32, rate: int, frames: int) -> npt.NDArray[np.float16]:
    """Senone scores of float audio, one row per log-mel frame (the last row repeated at the end)."""
    if rate != sphinxam.RATE:
        x = soxr.resample(x, rate, sphinxam.RATE)
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    sc = sphinxam.senone_scores(pcm, noise_floor=False)  # as the A/B ran
    if len(sc) < frames:
        last = sc[-1:] if len(sc) else np.zeros((1, sc.shape[1]), np.float32)
        sc = np.concatenate([sc, np.repeat(last, frames - len(sc), 0)])
    return sc[:frames].astype(np.float16)


class _Tap:
    """The engine module, whose log_mel also keeps the senone scores of the same audio."""

    def __init__(self) -> None:
        self.scores: list[npt.NDArray[np.float16]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(engine, name)

    def log_mel(self, x: F32, rate: int) -> F32:
        f = engine.log_mel(x, rate)
        self.scores.append(scores_of(x, rate, len(f)))
        return f


def make_features() -> None:
    """Replay the shipped recipe's featurization, keeping senone scores (written to CACHE)."""
    tap = _Tap()
    tl.engine = tap  # featurize() calls engine.log_mel once per clip, in order
    out = tl.features(tl.Config(), tl.ROOT / "build" / "lipsync-data", cache=False)
    n_train = len(out[0])
    if len(tap.scores) != n_train + len(out[4]):
        raise RuntimeError("clip count mismatch")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with CACHE.open("wb") as f:
        pickle.dump((out, tap.scores[:n_train], tap.scores[n_train:]), f, protocol=pickle.HIGHEST_PROTOCOL)
    print(f"wrote {CACHE}")


def log_posteriors(scores: npt.NDArray[Any]) -> F32:
    """Senone scores as log-posteriors under a flat prior, floored at -40."""
    z = scores.astype(np.float32)
    z = z - z.max(1, keepdims=True)
    return np.maximum(z - np.log(np.exp(z).sum(1, keepdims=True)), -40.0).astype(np.float32)


def _rows(scores: list[npt.NDArray[Any]], past: int, future: int) -> F32:
    """Senone rows laid out like :class:`train_lipsync.Runs` (edges repeated into the padding)."""
    return np.concatenate([np.pad(log_posteriors(s), ((past, future), (0, 0)), mode="edge") for s in scores])


def train(family: str, arm: str, epochs: int) -> dict[str, float]:
    """Train without ``family`` on arm ``mel`` or ``both``; 10 ms accuracy on its test voices."""
    with CACHE.open("rb") as f:
        out, sc_train, sc_dev = pickle.load(f)
    feats, labels, src, fams, dfeats, dlabels, dsrc, dfams = out
    keep = [i for i, f in enumerate(fams) if f != family]
    dkeep = [i for i, f in enumerate(dfams) if f != family]
    feats, labels, src = [feats[i] for i in keep], [labels[i] for i in keep], [src[i] for i in keep]
    sc_train = [sc_train[i] for i in keep]
    dfeats, dlabels, dsrc = [dfeats[i] for i in dkeep], [dlabels[i] for i in dkeep], [dsrc[i] for i in dkeep]
    sc_dev = [sc_dev[i] for i in dkeep]
    cfg = tl.Config(epochs=epochs)
    rng = np.random.default_rng(cfg.seed)
    names = sorted(set(src) | set(dsrc))
    speech = np.concatenate([f[lab != SIL] for f, lab in zip(feats, labels, strict=True)])
    prior = speech.mean(axis=0).astype(np.float32)
    del speech

    def normalize(f: F32) -> F32:
        return engine.normalize_stream(f, prior, list(cfg.stream))

    both = arm == "both"
    train_runs = tl.Runs(feats, labels, [names.index(x) for x in src], cfg.offsets, normalize)
    dev_runs = tl.Runs(dfeats, dlabels, [names.index(x) for x in dsrc], cfg.offsets, normalize)
    past, future = train_runs.past, train_runs.future
    if both:
        train_runs.x = np.concatenate([train_runs.x, _rows(sc_train, past, future)], 1)
        dev_runs.x = np.concatenate([dev_runs.x, _rows(sc_dev, past, future)], 1)
    del feats, dfeats, sc_train, sc_dev
    spans = zip(train_runs.starts, train_runs.lengths, strict=True)
    real = np.concatenate([train_runs.x[a + past : a + past + n] for a, n in spans])
    mean = real.mean(0).astype(np.float32)
    inv_std = (1.0 / (real.std(0) + 1e-3)).astype(np.float32)
    del real
    counts = np.bincount(np.concatenate(train_runs.labels), minlength=len(VISEMES))
    weights = np.ones(len(VISEMES), np.float32)
    weights[PP], weights[SIL] = 1.2, 0.8
    net = tl.Net(cfg, mean, inv_std, rng)
    width = train_runs.x.shape[1]
    net.params["wp"] = (rng.standard_normal((width, cfg.projection)) * np.sqrt(2.0 / width)).astype(np.float32)
    net.m["wp"], net.v["wp"] = np.zeros_like(net.params["wp"]), np.zeros_like(net.params["wp"])
    mels = engine.N_MELS

    def augment(x: F32) -> F32:
        x[..., :mels] = tl.feature_augment(x[..., :mels], rng, cfg.warp)  # the log-mel part only
        return x

    label = f"{arm} without {family}, epoch"
    tl.fit(net, train_runs, dev_runs, names, cfg, weights, rng, int(counts.sum()), augment, label)
    result = {}
    for name, make in TESTS[family].items():
        correct = total_frames = 0
        for item in make():
            x = item.utt.audio.astype(np.float32) / 32768.0
            f = engine.log_mel(x, item.utt.rate)
            lab = item.labels_10ms()
            n = min(len(f), len(lab))
            r = tl.Runs([f[:n]], [lab[:n].astype(np.int8)], [0], cfg.offsets, normalize)
            if both:
                r.x = np.concatenate([r.x, _rows([scores_of(x, item.utt.rate, n)], past, future)], 1)
            logits, _ = net.forward(r.x[None], False)
            correct += int((logits.argmax(1) == r.labels[0]).sum())
            total_frames += n
        result[name] = correct / total_frames
        print(f"{arm} without {family}: {name} {100 * result[name]:.1f} % of 10 ms frames", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("features", help="replay the recipe's featurization, keeping senone scores")
    t = sub.add_parser("train", help="leave one family out and train one arm")
    t.add_argument("--family", choices=dataset.FAMILIES, required=True)
    t.add_argument("--arm", choices=("mel", "both"), required=True)
    t.add_argument("--epochs", type=int, default=tl.Config.epochs)
    t.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args(argv)
    if args.command == "features":
        make_features()
        return 0
    result = train(args.family, args.arm, args.epochs)
    if args.json:
        args.json.write_text(json.dumps({"family": args.family, "arm": args.arm, "accuracy_10ms": result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
