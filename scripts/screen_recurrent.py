"""Screen a recurrent (GRU) viseme classifier for the low-latency engine against its spliced network, in numpy.

    python scripts/screen_recurrent.py --exclude-family parametric --out build/gru/parametric.npz
    python scripts/screen_recurrent.py --score build/gru/parametric.npz --family parametric \
        --against build/heads/lofo/without-parametric-low-latency-mel.npz

A screen, not an engine model: the engine has no recurrent layer. The low-latency engine's networks
splice 15 projected frames from 400 ms back to the newest one; a GRU carries a state instead, so its
context has no fixed end. Trained like the low-latency log-mel network (the same cached features,
per-stream normalisation, feature augmentation, four heads, label weights, Adam with a cosine
learning rate), on runs of ``--run`` frames after ``--warmup`` frames whose labels are not scored
(the state starts from zero at each run's first frame, as a session's does at its start: at
inference a whole utterance is one run). Scored as ``train_lipsync.evaluate`` scores (10 ms frame
accuracy, exact, per head) on the held-out family's sentences (``bench/lipsync/compare.py``'s cached
sets), beside a spliced model on the same features.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import time
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

import train_lipsync as tl  # noqa: E402
from lipsync import compare, dataset  # noqa: E402
from lipsync.metrics import tolerant_hits  # noqa: E402
from lipsync.visemes import PP, SIL, VISEMES  # noqa: E402

from avatarkit._core import engine  # noqa: E402

F32 = npt.NDArray[np.float32]
LL_STREAM = (100.0, 300.0, 20.0, -75.0)


def sigmoid(x: F32) -> F32:
    """The logistic function, without overflow warnings."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class Gru:
    """Projection per frame (dense + ReLU), a GRU, a dense ReLU layer, ``heads`` softmaxes over 15 visemes."""

    def __init__(
        self, mean: F32, inv_std: F32, rng: np.random.Generator, projection: int = 48, state: int = 192,
        hidden: int = 256, heads: int = 4, dropout: float = 0.1,
    ) -> None:  # fmt: skip
        self.mean, self.inv_std = mean, inv_std
        self.heads, self.dropout = heads, dropout

        def init(fan_in: int, fan_out: int, gain: float = 2.0) -> F32:
            return (rng.standard_normal((fan_in, fan_out)) * np.sqrt(gain / fan_in)).astype(np.float32)

        h = state
        wh = np.concatenate([np.linalg.qr(rng.standard_normal((h, h)))[0] for _ in range(3)], axis=1)
        self.params: dict[str, F32] = {
            "wp": init(len(mean), projection), "bp": np.zeros(projection, np.float32),
            "wx": init(projection, 3 * h, 1.0), "bx": np.zeros(3 * h, np.float32),
            "wh": wh.astype(np.float32), "bh": np.zeros(3 * h, np.float32),
            "w1": init(h, hidden), "b1": np.zeros(hidden, np.float32),
            "w2": init(hidden, len(VISEMES) * heads) * 0.1, "b2": np.zeros(len(VISEMES) * heads, np.float32),
        }  # fmt: skip
        self.params["bx"][h : 2 * h] = 1.0  # the update gate starts towards keeping the state
        self.m = {n: np.zeros_like(v) for n, v in self.params.items()}
        self.v = {n: np.zeros_like(v) for n, v in self.params.items()}
        self.t = 0

    @property
    def state(self) -> int:
        return self.params["wh"].shape[0]

    def forward(
        self, x: F32, first: int, train: bool = False, rng: np.random.Generator | None = None
    ) -> tuple[F32, dict[str, Any]]:
        """Logits ((S * (T - first)) x 15 per head) for runs ``x`` (S x T x inputs), from frame ``first`` on."""
        p, h_n = self.params, self.state
        s, t_len, _ = x.shape
        z = ((x - self.mean) * self.inv_std).reshape(s * t_len, -1)
        a0 = z @ p["wp"] + p["bp"]
        proj = np.maximum(a0, 0)
        gx = (proj @ p["wx"] + p["bx"]).reshape(s, t_len, 3 * h_n)
        dtype = p["wh"].dtype
        hs = np.zeros((s, t_len + 1, h_n), dtype)  # hs[:, t + 1] is the state after frame t
        r_all = np.empty((s, t_len, h_n), dtype)
        u_all = np.empty_like(r_all)
        n_all = np.empty_like(r_all)
        ghn_all = np.empty_like(r_all)
        for t in range(t_len):
            h = hs[:, t]
            gh = h @ p["wh"] + p["bh"]
            r = sigmoid(gx[:, t, :h_n] + gh[:, :h_n])
            u = sigmoid(gx[:, t, h_n : 2 * h_n] + gh[:, h_n : 2 * h_n])
            n = np.tanh(gx[:, t, 2 * h_n :] + r * gh[:, 2 * h_n :])
            hs[:, t + 1] = (1 - u) * n + u * h
            r_all[:, t], u_all[:, t], n_all[:, t], ghn_all[:, t] = r, u, n, gh[:, 2 * h_n :]
        top = hs[:, first + 1 :].reshape(-1, h_n)
        a1 = top @ p["w1"] + p["b1"]
        h1 = np.maximum(a1, 0)
        cache: dict[str, Any] = dict(z=z, a0=a0, proj=proj, hs=hs, r=r_all, u=u_all, n=n_all, ghn=ghn_all, a1=a1)
        if train and rng is not None and self.dropout > 0:
            cache["mask"] = (rng.random(h1.shape, dtype=np.float32) < 1 - self.dropout) / np.float32(1 - self.dropout)
            h1 = h1 * cache["mask"]
        cache["h1"], cache["top"], cache["first"] = h1, top, first
        return h1 @ p["w2"] + p["b2"], cache

    def gradients(self, x: F32, first: int, d_logits: F32, cache: dict[str, Any]) -> dict[str, F32]:
        """Gradients of the parameters given d loss / d logits (from :meth:`forward` with ``cache``)."""
        p, h_n = self.params, self.state
        s, t_len, _ = x.shape
        g: dict[str, F32] = {"w2": cache["h1"].T @ d_logits, "b2": d_logits.sum(0)}
        dh1 = d_logits @ p["w2"].T
        if "mask" in cache:
            dh1 *= cache["mask"]
        da1 = dh1 * (cache["a1"] > 0)
        g["w1"], g["b1"] = cache["top"].T @ da1, da1.sum(0)
        dtype = p["wh"].dtype
        d_states = np.zeros((s, t_len, h_n), dtype)
        d_states[:, first:] = (da1 @ p["w1"].T).reshape(s, t_len - first, h_n)
        hs, r_all, u_all, n_all, ghn_all = cache["hs"], cache["r"], cache["u"], cache["n"], cache["ghn"]
        dgx = np.empty((s, t_len, 3 * h_n), dtype)
        dwh = np.zeros_like(p["wh"])
        dbh = np.zeros_like(p["bh"])
        dh_next = np.zeros((s, h_n), dtype)
        dgh = np.empty((s, 3 * h_n), dtype)
        for t in range(t_len - 1, -1, -1):
            h_prev, r, u, n, ghn = hs[:, t], r_all[:, t], u_all[:, t], n_all[:, t], ghn_all[:, t]
            dh = d_states[:, t] + dh_next
            dan = dh * (1 - u) * (1 - n * n)
            dau = dh * (h_prev - n) * u * (1 - u)
            dar = dan * ghn * r * (1 - r)
            dgx[:, t, :h_n], dgx[:, t, h_n : 2 * h_n], dgx[:, t, 2 * h_n :] = dar, dau, dan
            dgh[:, :h_n], dgh[:, h_n : 2 * h_n], dgh[:, 2 * h_n :] = dar, dau, dan * r
            dwh += h_prev.T @ dgh
            dbh += dgh.sum(0)
            dh_next = dh * u + dgh @ p["wh"].T
        g["wh"], g["bh"] = dwh, dbh
        dgx2 = dgx.reshape(s * t_len, -1)
        g["wx"], g["bx"] = cache["proj"].T @ dgx2, dgx2.sum(0)
        da0 = (dgx2 @ p["wx"].T) * (cache["a0"] > 0)
        g["wp"], g["bp"] = cache["z"].T @ da0, da0.sum(0)
        return g

    def step(
        self, x: F32, first: int, y: npt.NDArray[np.int64], weights: F32, lr: float, rng: np.random.Generator
    ) -> float:
        """One Adam step (gradient norm clipped at 5); ``y`` is heads x (S * (T - first)). Returns the loss."""
        logits, cache = self.forward(x, first, True, rng)
        loss, d = head_losses(logits, y, weights)
        g = self.gradients(x, first, d, cache)
        norm = math.sqrt(sum(float((v * v).sum()) for v in g.values()))
        scale = min(1.0, 5.0 / (norm + 1e-6))
        self.t += 1
        b1, b2 = 0.9, 0.999
        for name, grad in g.items():
            grad = grad * scale
            if name.startswith("w"):
                grad = grad + 1e-5 * self.params[name]
            self.m[name] = b1 * self.m[name] + (1 - b1) * grad
            self.v[name] = b2 * self.v[name] + (1 - b2) * grad * grad
            mhat = self.m[name] / (1 - b1**self.t)
            vhat = self.v[name] / (1 - b2**self.t)
            self.params[name] -= (lr * mhat / (np.sqrt(vhat) + 1e-8)).astype(np.float32)
        return loss

    def save(self, path: pathlib.Path, info: dict[str, Any]) -> None:
        np.savez_compressed(path, mean=self.mean, inv_std=self.inv_std, heads=np.array(self.heads),
                            info=np.array(json.dumps(info)), **self.params)  # fmt: skip

    @classmethod
    def load(cls, path: pathlib.Path) -> Gru:
        z = dict(np.load(path))
        net = cls(z["mean"], z["inv_std"], np.random.default_rng(0), z["wp"].shape[1], z["wh"].shape[0],
                  z["w1"].shape[1], int(z["heads"]), 0.0)  # fmt: skip
        net.params = {k: z[k].astype(np.float32) for k in net.params}
        return net


def head_losses(logits: F32, y: npt.NDArray[np.int64], weights: F32) -> tuple[float, F32]:
    """Mean over heads of the label-weighted cross-entropy, and its gradient with respect to the logits."""
    v = len(VISEMES)
    heads = y.shape[0]
    d = np.empty_like(logits)
    loss = 0.0
    for head, yh in enumerate(y):
        z = logits[:, head * v : (head + 1) * v]
        z = z - z.max(axis=1, keepdims=True)
        prob = np.exp(z)
        prob /= prob.sum(axis=1, keepdims=True)
        w = weights[yh]
        rows = np.arange(len(yh))
        loss += float(-(w * np.log(prob[rows, yh] + 1e-30)).sum() / w.sum()) / heads
        prob[rows, yh] -= 1.0
        d[:, head * v : (head + 1) * v] = prob * (w / w.sum() / heads)[:, None]
    return loss, d


def check_gradients() -> float:
    """The largest relative error of :meth:`Gru.gradients` against central differences (float64)."""
    rng = np.random.default_rng(3)
    net = Gru(np.zeros(5, np.float32), np.ones(5, np.float32), rng, projection=4, state=3, hidden=6, heads=2, dropout=0)
    net.params = {k: v.astype(np.float64) for k, v in net.params.items()}  # type: ignore[misc]
    x = rng.standard_normal((2, 7, 5))
    first = 3
    y = rng.integers(0, len(VISEMES), (2, 2 * (7 - first)))
    w = np.ones(len(VISEMES))

    def loss_of() -> float:
        logits, _ = net.forward(x, first)  # type: ignore[arg-type]
        return head_losses(logits, y, w)[0]  # type: ignore[arg-type]

    logits, cache = net.forward(x, first)  # type: ignore[arg-type]
    _, d = head_losses(logits, y, w)  # type: ignore[arg-type]
    g = net.gradients(x, first, d, cache)  # type: ignore[arg-type]
    worst = 0.0
    for name, value in net.params.items():
        for i in range(min(value.size, 12)):
            idx = np.unravel_index(i * 7 % value.size, value.shape)
            old = value[idx]
            value[idx] = old + 1e-6
            up = loss_of()
            value[idx] = old - 1e-6
            down = loss_of()
            value[idx] = old
            num = (up - down) / 2e-6
            worst = max(worst, abs(num - g[name][idx]) / max(1e-4, abs(num) + abs(g[name][idx])))
    return worst


def accuracy(logits: F32, labels: npt.NDArray[np.int64], heads: int) -> list[tuple[int, int]]:
    """(hits, frames) per head: head d against the label d frames before the newest one."""
    v = len(VISEMES)
    out = []
    for d in range(heads):
        read = logits[d:, d * v : (d + 1) * v].argmax(1)
        out.append((int(np.sum(read == labels[: len(read)])), len(read)))
    return out


def train(args: argparse.Namespace) -> int:
    cfg = tl.Config(acoustic=False, stream=LL_STREAM, heads=4, epochs=args.epochs)
    feats, _, labels, src, fams, _, dfeats, _, dlabels, dsrc, dfams, _ = tl.features(
        cfg, tl.ROOT / "build" / "lipsync-data", True
    )
    keep = [i for i, f in enumerate(fams) if f != args.exclude_family]
    dkeep = [i for i, f in enumerate(dfams) if f != args.exclude_family]
    feats, labels, src = [feats[i] for i in keep], [labels[i] for i in keep], [src[i] for i in keep]
    dfeats, dlabels, dsrc = [dfeats[i] for i in dkeep], [dlabels[i] for i in dkeep], [dsrc[i] for i in dkeep]
    speech = np.concatenate([f[lab != SIL] for f, lab in zip(feats, labels, strict=True)])
    prior = speech.mean(axis=0).astype(np.float32)
    del speech

    def normalize(f: F32) -> F32:
        return engine.normalize_stream(f, prior, list(LL_STREAM))

    names = sorted(set(src) | set(dsrc))
    offsets = (-args.warmup, 0)
    data = tl.Runs(feats, labels, [names.index(x) for x in src], offsets, normalize)
    dev = tl.Runs(dfeats, dlabels, [names.index(x) for x in dsrc], (0,), normalize)
    del feats, dfeats
    mean, inv_std = data.stats()
    counts = np.bincount(np.concatenate(data.labels), minlength=len(VISEMES)).astype(np.float64)
    weights = np.ones(len(VISEMES), np.float32)
    weights[PP], weights[SIL] = 1.2, 0.8
    rng = np.random.default_rng(args.seed)
    net = Gru(mean, inv_std, rng, state=args.state, hidden=args.hidden)
    per_batch = args.batch // args.run
    total = int(counts.sum()) // args.batch * args.epochs
    step = 0
    print(f"GRU state {args.state}, hidden {args.hidden}; {int(counts.sum())} frames, {total} steps", flush=True)
    for epoch in range(args.epochs):
        t0 = time.time()
        runs = data.epoch(args.run, rng)
        losses = []
        for i in range(0, len(runs) - per_batch + 1, per_batch):
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)) * min(1.0, (step + 1) / 300)
            x, y, _ = data.batch(runs[i : i + per_batch], args.run, 4)
            x = tl.feature_augment(x, rng)
            losses.append(net.step(x, args.warmup, y, weights, lr, rng))
            step += 1
        hits = np.zeros((len(names), 4, 2))
        for u, lab in enumerate(dev.labels):
            logits, _ = net.forward(dev.window(u), 0)
            hits[dev.sources[u]] += np.array(accuracy(logits, lab, 4))
        acc = {n: round(float(hits[i, 3, 0] / max(hits[i, 3, 1], 1)), 3) for i, n in enumerate(names)}
        print(f"epoch {epoch + 1}/{args.epochs}: loss {np.mean(losses):.3f}, dev 10 ms accuracy (head 3) {acc} "
              f"({time.time() - t0:.0f} s)", flush=True)  # fmt: skip
        args.out.parent.mkdir(parents=True, exist_ok=True)
        net.save(args.out, {"exclude_family": args.exclude_family, "epoch": epoch + 1, "prior": prior.tolist(),
                            "warmup": args.warmup, "run": args.run, "dev": acc})  # fmt: skip
    return 0


def score(args: argparse.Namespace) -> int:
    """10 ms accuracy per head (exact and within a frame) of the GRU and the spliced model on held-out sentences."""
    sets = compare.cached(tl.ROOT / "build" / "lipsync-eval", args.family, args.split, 4)
    gru = Gru.load(args.score)
    info = json.loads(str(np.load(args.score)["info"]))
    prior = np.array(info["prior"], np.float32)
    spliced = [tl.Net.load(p) for p in args.against]
    for name, items in sets.items():
        table: dict[str, npt.NDArray[Any]] = {}
        models: list[tuple[str, Any]] = [(args.score.name, gru)]
        models += [(p.name, m) for p, m in zip(args.against, spliced, strict=True)]
        for item in items:
            x = item.utt.audio.astype(np.float32) / 32768.0
            f = engine.log_mel(x, item.utt.rate)
            lab = item.labels_10ms()
            n = min(len(f), len(lab))
            f, lab = f[:n], lab[:n]
            for label, m in models:
                if isinstance(m, Gru):
                    z = engine.normalize_stream(f, prior, list(LL_STREAM))
                    logits, _ = m.forward(z[None], 0)
                else:  # as train_lipsync.evaluate reads a model
                    prior_m, params = m.stream["stream_prior"], [float(v) for v in m.stream["stream_params"]]
                    data = tl.Runs([f], [lab.astype(np.int8)], [0], m.cfg.offsets,
                                   lambda g, a=prior_m, b=params: engine.normalize_stream(g, a, b))  # fmt: skip
                    logits, _ = m.forward(data.window(0), False)
                heads = m.heads if isinstance(m, Gru) else m.cfg.heads
                row = table.setdefault(label, np.zeros((heads, 3)))
                v = len(VISEMES)
                for d in range(heads):
                    read = logits[d:, d * v : (d + 1) * v].argmax(1)
                    truth = lab[: len(read)]
                    row[d, 0] += np.sum(read == truth)
                    row[d, 1] += len(read)
                    row[d, 2] += np.sum(tolerant_hits(read, truth))
        for label, row in table.items():
            cells = ", ".join(
                f"head {d}: {100 * row[d, 0] / row[d, 1]:.1f} ({100 * row[d, 2] / row[d, 1]:.1f})"
                for d in range(len(row))
            )
            print(f"{name} {label}: {cells}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exclude-family", choices=dataset.FAMILIES)
    ap.add_argument("--out", type=pathlib.Path)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--state", type=int, default=192)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--run", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4096, help="scored frames per step")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check", action="store_true", help="check the GRU's gradients and exit")
    ap.add_argument("--score", type=pathlib.Path, help="a GRU file to score on --family's held-out sentences")
    ap.add_argument("--family", choices=dataset.FAMILIES)
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--against", type=pathlib.Path, nargs="*", default=[], help="spliced models to score alike")
    args = ap.parse_args(argv)
    if args.check:
        print(f"largest relative gradient error: {check_gradients():.2e}")
        return 0
    if args.score:
        return score(args)
    if args.out is None:
        ap.error("--out is required to train")
    return train(args)


if __name__ == "__main__":
    raise SystemExit(main())
