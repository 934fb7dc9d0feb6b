"""scripts/train_lipsync.py's network: its hand-written backward pass against numerical gradients.

The script needs the ``lipsync`` dependency group (scipy among it); these tests skip without it.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from typing import Any

import numpy as np
import pytest

pytest.importorskip("scipy", reason="scripts/train_lipsync.py needs the lipsync dependency group")

REPO = pathlib.Path(__file__).resolve().parents[1]


def _train_script() -> Any:
    spec = importlib.util.spec_from_file_location("train_lipsync", REPO / "scripts" / "train_lipsync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_lipsync"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _gradients(net: Any, x: Any, y: Any, weights: Any, seed: int) -> dict[str, Any]:
    """The gradients ``Net.step`` computes, read back from Adam's first moment after one step at lr 0."""
    params = {k: v.copy() for k, v in net.params.items()}
    net.m = {k: np.zeros_like(v) for k, v in params.items()}
    net.t = 0
    net.step(x, y, weights, 0.0, np.random.default_rng(seed))
    return {k: net.m[k] / 0.1 - (1e-5 * params[k] if k.startswith("w") else 0.0) for k in params}


def _loss(net: Any, x: Any, y: Any, weights: Any, seed: int, allowed: Any = None) -> float:
    """The weighted mean of -log p(label), or of -log of the summed probability of ``allowed``."""
    logits, _ = net.forward(x, True, np.random.default_rng(seed))
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if allowed is None:
        allowed = np.eye(15)[y]
    wy = weights[y]
    return float(-(wy * np.log((p * allowed).sum(axis=1))).sum() / wy.sum())


@pytest.mark.parametrize(("mixstyle", "tolerance"), [(0.0, 0), (1.0, 0), (0.0, 2)])
def test_the_backward_pass_matches_numerical_gradients(
    mixstyle: float, tolerance: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four entries of every weight and bias's gradient: cross-entropy with and without MixStyle at the
    projection layer, and the boundary-tolerant loss.

    MixStyle treats each run's statistics as constants (they are not differentiated), so the
    numerical gradient is taken with the statistics of the unperturbed forward pass held fixed.
    """
    train = _train_script()
    cfg = train.Config(projection=6, hidden=8, dropout=0.0, mixstyle=mixstyle, acoustic=False, tolerance=tolerance)
    rng = np.random.default_rng(3)
    net = train.Net(cfg, np.zeros(40, np.float32), np.ones(40, np.float32), rng)
    net.params = {k: v.astype(np.float64) for k, v in net.params.items()}
    runs, frames = 4, 5
    x = rng.standard_normal((runs, frames + net.past + net.future, 40))
    y = rng.integers(0, 15, runs * frames)
    weights = np.ones(15)
    weights[1] = 1.2
    grads = _gradients(net, x, y, weights, seed=0)
    allowed = train.tolerated(y, frames, tolerance)
    if tolerance:
        assert (allowed.sum(axis=1) > 1).any(), "no frame was given a neighbour's label"

    held: dict[str, Any] = {}

    def held_statistics(proj: Any, rng: np.random.Generator, share: float) -> tuple[Any, Any]:
        """mix_statistics with the same draws, but each run's statistics those of the first call."""
        if not held:
            held["mu"] = proj.mean(axis=1, keepdims=True)
            held["sig"] = np.sqrt(proj.var(axis=1, keepdims=True) + 1e-2)
        mu, sig = held["mu"], held["sig"]
        lam = rng.beta(0.1, 0.1, (len(proj), 1, 1))
        lam = np.where(rng.random((len(proj), 1, 1)) < share, lam, 1.0)
        other = rng.permutation(len(proj))
        scale = (lam * sig + (1 - lam) * sig[other]) / sig
        return (proj - mu) * scale + lam * mu + (1 - lam) * mu[other], scale

    if mixstyle:
        out, scale = train.mix_statistics(np.abs(x[:, :, :6]), np.random.default_rng(0), mixstyle)
        assert not np.allclose(scale, 1.0), "the runs' statistics were not mixed"
        np.testing.assert_allclose(out, held_statistics(np.abs(x[:, :, :6]), np.random.default_rng(0), mixstyle)[0])
        held.clear()
        monkeypatch.setattr(train, "mix_statistics", held_statistics)
        _loss(net, x, y, weights, seed=0, allowed=allowed)  # holds the unperturbed statistics

    checked = 0
    for name in net.params:
        p = net.params[name]
        for flat in rng.choice(p.size, 4, replace=False):
            i = np.unravel_index(flat, p.shape)
            keep = p[i]
            p[i] = keep + 1e-5
            up = _loss(net, x, y, weights, seed=0, allowed=allowed)
            p[i] = keep - 1e-5
            down = _loss(net, x, y, weights, seed=0, allowed=allowed)
            p[i] = keep
            numeric = (up - down) / 2e-5
            assert grads[name][i] == pytest.approx(numeric, rel=1e-4, abs=1e-8), (name, i)
            checked += 1
    assert checked == 4 * len(net.params) == 32


def test_the_tolerant_loss_allows_the_labels_near_a_frame_within_its_run_only() -> None:
    train = _train_script()
    y = np.array([1, 1, 2, 2, 3, 4, 4, 4, 5, 6])  # two runs of five
    allowed = train.tolerated(y, 5, 1)
    assert [set(np.flatnonzero(row)) for row in allowed] == [
        {1}, {1, 2}, {1, 2}, {2, 3}, {2, 3},  # the first run's last frame does not see the second run
        {4}, {4}, {4, 5}, {4, 5, 6}, {5, 6},
    ]  # fmt: skip
    np.testing.assert_array_equal(train.tolerated(y, 5, 0), np.eye(15)[y])


def test_mixstyle_leaves_unchosen_runs_alone_and_mixes_the_statistics_of_chosen_ones() -> None:
    train = _train_script()
    rng = np.random.default_rng(1)
    proj = rng.gamma(2.0, 1.0, (16, 30, 6)).astype(np.float32) * rng.uniform(0.2, 3.0, (16, 1, 6)).astype(np.float32)
    out, scale = train.mix_statistics(proj, np.random.default_rng(2), 0.0)
    np.testing.assert_allclose(out, proj, atol=1e-5)
    assert np.all(scale == 1.0)

    out, scale = train.mix_statistics(proj, np.random.default_rng(2), 1.0)
    mu, sig = proj.mean(axis=1), np.sqrt(proj.var(axis=1) + 1e-2)
    new_mu, new_sig = out.mean(axis=1), np.sqrt(out.var(axis=1) + 1e-2 * scale[:, 0] ** 2)
    # each run's statistics now lie between its own and one other run's (a convex mix)
    for r in range(len(proj)):
        lo_mu, hi_mu = np.minimum(mu[r], mu.min(axis=0)), np.maximum(mu[r], mu.max(axis=0))
        assert np.all(new_mu[r] >= lo_mu - 1e-4) and np.all(new_mu[r] <= hi_mu + 1e-4)
        assert np.all(new_sig[r] >= sig.min(axis=0) - 1e-3) and np.all(new_sig[r] <= sig.max(axis=0) + 1e-3)
    assert not np.allclose(new_mu, mu, atol=1e-2), "no run's statistics moved"
