"""scripts/train_lipsync.py: its network's hand-written backward pass against numerical gradients,
its labels, and how its synthesis workers fail.

The script needs the ``lipsync`` dependency group (scipy among it); these tests skip without it.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
from typing import Any

import numpy as np
import pytest
from conftest import merge_script

pytest.importorskip("scipy", reason="scripts/train_lipsync.py needs the lipsync dependency group")

REPO = pathlib.Path(__file__).resolve().parents[1]


def _train_script() -> Any:
    spec = importlib.util.spec_from_file_location("train_lipsync", REPO / "scripts" / "train_lipsync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_lipsync"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _gradients(
    net: Any, x: Any, y: Any, weights: Any, seed: int, phones: Any = None, soft: Any = None, voices: Any = None
) -> dict[str, Any]:
    """The gradients ``Net.step`` computes, read back from Adam's first moment after one step at lr 0."""
    params = {k: v.copy() for k, v in net.params.items()}
    net.m = {k: np.zeros_like(v) for k, v in params.items()}
    net.t = 0
    net.step(x, y, weights, 0.0, np.random.default_rng(seed), phones, soft, voices)
    return {k: net.m[k] / 0.1 - (1e-5 * params[k] if k.startswith("w") else 0.0) for k in params}


def _worst_gradient_error(net: Any, grads: dict[str, Any], objective: Any, rng: Any) -> float:
    """The largest relative difference between ``grads`` and central differences of
    ``objective(parameter name)``, at four random entries of each parameter of ``net``."""
    worst = 0.0
    for name, value in net.params.items():
        for i in rng.choice(value.size, min(4, value.size), replace=False):
            at = np.unravel_index(i, value.shape)
            old = value[at]
            value[at] = old + 1e-6
            up = objective(name)
            value[at] = old - 1e-6
            down = objective(name)
            value[at] = old
            numerical = (up - down) / 2e-6
            worst = max(worst, abs(numerical - grads[name][at]) / max(1e-4, abs(numerical) + abs(grads[name][at])))
    return worst


def _softmax(z: Any) -> Any:
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def _loss(
    net: Any, x: Any, y: Any, weights: Any, seed: int, allowed: Any = None, phones: Any = None, soft: Any = None
) -> float:
    """The weighted mean of -log p(label), or of -log of the summed probability of ``allowed``,
    averaged over the output heads (``y`` and ``allowed`` one row per head); with ``soft`` (a
    teacher's probabilities per head), (1 - a) times that plus a = ``cfg.distill`` times the weighted
    mean of -sum(soft log p); with ``phones``, plus ``cfg.phones`` times the phone head's mean
    -log q(phone) where a phone is given."""
    logits, cache = net.forward(x, True, np.random.default_rng(seed))
    ys = y.reshape(net.cfg.heads, -1)
    loss = 0.0
    for head, yh in enumerate(ys):
        p = _softmax(logits[:, 15 * head : 15 * (head + 1)])
        ok = np.eye(15)[yh] if allowed is None else allowed[head]
        wy = weights[yh]
        nll = -np.log((p * ok).sum(axis=1))
        if soft is not None:
            nll = (1 - net.cfg.distill) * nll - net.cfg.distill * (soft[head] * np.log(p)).sum(axis=1)
        loss += float((wy * nll).sum() / wy.sum()) / len(ys)
    if phones is not None:
        q = _softmax(cache[f"h{net.cfg.layers}"] @ net.params["wa"] + net.params["ba"])
        valid = np.flatnonzero(phones >= 0)
        loss -= net.cfg.phones * float(np.log(q[valid, phones[valid]]).mean())
    return loss


@pytest.mark.parametrize(
    ("mixstyle", "tolerance", "phones", "dropout", "heads", "distill"),
    [
        (0.0, 0, 0.0, 0.0, 1, 0.0),
        (1.0, 0, 0.0, 0.0, 1, 0.0),
        (0.0, 2, 0.0, 0.0, 1, 0.0),
        (0.0, 0, 0.0, 0.3, 1, 0.0),
        (0.0, 0, 0.7, 0.0, 1, 0.0),
        (0.0, 0, 0.7, 0.3, 1, 0.0),
        (0.0, 0, 0.0, 0.0, 4, 0.0),
        (0.0, 1, 0.7, 0.3, 3, 0.0),
        (0.0, 0, 0.0, 0.0, 1, 0.5),
        (0.0, 2, 0.0, 0.0, 3, 0.3),
    ],
)
def test_the_backward_pass_matches_numerical_gradients(
    mixstyle: float,
    tolerance: int,
    phones: float,
    dropout: float,
    heads: int,
    distill: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four entries of every weight and bias's gradient: cross-entropy with and without MixStyle at the
    projection layer, the boundary-tolerant loss, the phone head beside the visemes (with and
    without dropout under it; some frames without a phone target), several output heads (the
    mean of their losses), and distillation (a share of each target a teacher's probabilities).

    MixStyle treats each run's statistics as constants (they are not differentiated), so the
    numerical gradient is taken with the statistics of the unperturbed forward pass held fixed.
    """
    train = _train_script()
    cfg = train.Config(
        projection=6, hidden=8, dropout=dropout, mixstyle=mixstyle, acoustic=False, tolerance=tolerance, phones=phones,
        heads=heads, distill=distill,
    )  # fmt: skip
    rng = np.random.default_rng(3)
    net = train.Net(cfg, np.zeros(40, np.float32), np.ones(40, np.float32), rng)
    net.params = {k: v.astype(np.float64) for k, v in net.params.items()}
    for name in net.params:  # biases off zero: a row dropped out whole would sit on a ReLU's kink
        if name.startswith("b"):
            net.params[name] = rng.normal(0.0, 0.1, net.params[name].shape)
    runs, frames = 4, 5
    x = rng.standard_normal((runs, frames + net.past + net.future, 40))
    y = rng.integers(0, 15, (heads, runs * frames)) if heads > 1 else rng.integers(0, 15, runs * frames)
    weights = np.ones(15)
    weights[1] = 1.2
    targets = None
    if phones:
        targets = rng.integers(0, len(train.PHONES), runs * frames)
        targets[rng.choice(runs * frames, 6, replace=False)] = -1  # frames of a voice without phone classes
    soft = None
    if distill:
        soft = rng.dirichlet(np.ones(15), (heads, runs * frames))
    grads = _gradients(net, x, y, weights, seed=0, phones=targets, soft=soft)
    allowed = [train.tolerated(yh, frames, tolerance) for yh in y.reshape(heads, -1)]
    if tolerance:
        assert (allowed[0].sum(axis=1) > 1).any(), "no frame was given a neighbour's label"

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
            up = _loss(net, x, y, weights, seed=0, allowed=allowed, phones=targets, soft=soft)
            p[i] = keep - 1e-5
            down = _loss(net, x, y, weights, seed=0, allowed=allowed, phones=targets, soft=soft)
            p[i] = keep
            numeric = (up - down) / 2e-5
            assert grads[name][i] == pytest.approx(numeric, rel=1e-4, abs=1e-8), (name, i)
            checked += 1
    assert checked == 4 * len(net.params) == (40 if phones else 32)


def test_the_tolerant_loss_allows_the_labels_near_a_frame_within_its_run_only() -> None:
    train = _train_script()
    y = np.array([1, 1, 2, 2, 3, 4, 4, 4, 5, 6])  # two runs of five
    allowed = train.tolerated(y, 5, 1)
    assert [set(np.flatnonzero(row)) for row in allowed] == [
        {1}, {1, 2}, {1, 2}, {2, 3}, {2, 3},  # the first run's last frame does not see the second run
        {4}, {4}, {4, 5}, {4, 5, 6}, {5, 6},
    ]  # fmt: skip
    np.testing.assert_array_equal(train.tolerated(y, 5, 0), np.eye(15)[y])


def test_each_head_is_given_the_label_of_the_frame_as_many_steps_earlier_and_silence_before_the_start() -> None:
    """Runs.batch with heads: row d holds each centre frame's label d frames earlier, within its
    utterance, and silence (what a session hears first) before the utterance's first frame."""
    train = _train_script()
    labels = [np.arange(1, 11, dtype=np.int8), np.arange(21, 29, dtype=np.int8) % 15]
    feats = [np.zeros((len(lab), 40), np.float32) for lab in labels]
    data = train.Runs(feats, labels, [0, 1], (-3, -1, 0))
    x, y, _ = data.batch([(0, 1), (1, 4)], 3, heads=3)
    assert x.shape == (2, 3 + 3, 40)
    first, second = labels[0].astype(np.int64), labels[1].astype(np.int64)
    np.testing.assert_array_equal(y[0], np.r_[first[1:4], second[4:7]])
    np.testing.assert_array_equal(y[1], np.r_[first[0:3], second[3:6]])
    np.testing.assert_array_equal(y[2], np.r_[train.SIL, first[0:2], second[2:5]])
    _, single, _ = data.batch([(0, 1), (1, 4)], 3)
    np.testing.assert_array_equal(single, y[0])


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


def test_phone_classes_refine_the_visemes_of_every_english_alphabet() -> None:
    """Every English symbol's phone class belongs to its viseme (a class's viseme is what festival's
    table gives its name), diphthong halves and /h/ get theirs, other alphabets none."""
    _train_script()  # puts bench/ on the path
    from lipsync import visemes as v

    def viseme_of_class(name: str) -> str:
        return "sil" if name == "sil" else v.FESTIVAL[name][0]

    for table in (v.ESPEAK, v.FESTIVAL, v.IPA):
        for symbol, shapes in table.items():
            if len(shapes) != 1 or shapes[0] in (v.NEXT, v.PREVIOUS):
                continue
            seg = v.Segment(v.VISEME_INDEX[shapes[0]], 0.0, 0.1, symbol)
            name = v.PHONES[v.phone_of(seg, table)]
            assert viseme_of_class(name) == shapes[0], (symbol, name)
    ipa = [v.Phone("m", 0.0, 0.1), v.Phone("ˈaɪ", 0.1, 0.3), v.Phone("h", 0.3, 0.35), v.Phone("b", 0.35, 0.4)]  # noqa: RUF001
    segs = v.segments(ipa, v.IPA)
    assert [v.PHONES[v.phone_of(s, v.IPA)] for s in segs] == ["m", "aa", "ih", "h", "b"]
    grid = v.phone_grid(segs, v.IPA, 0.5, 0.01)
    assert len(grid) == 50 and grid[0] == v.PHONE_INDEX["m"] and grid[-1] == v.PHONE_INDEX["sil"]
    assert (v.phone_grid(segs, v.CZECH, 0.5, 0.01) == -1).all()


def test_a_clip_without_phone_labels_has_no_phone_target_and_one_without_labels_is_silence() -> None:
    train = _train_script()
    x = np.random.default_rng(0).normal(0.0, 0.1, 8000).astype(np.float32)
    lab = np.full(50, 11, np.int64)
    f, rows, labels, _, _, phones = train._features_of(x, 16000, lab, "s", "formant")
    assert len(f) == len(rows) == len(labels) == len(phones) == 50
    assert (labels == 11).all() and (phones == -1).all()
    _, _, labels, _, _, phones = train._features_of(x, 16000, None, "not speech", "not speech")
    assert (labels == 0).all() and (phones == 0).all()


def _broken_festival(voice: str, *args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(f"festival {voice} is broken")


def test_a_failing_source_is_reported_at_once_and_the_others_are_still_cached(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    train = _train_script()
    if not train.dataset.Espeak.available():
        pytest.skip("espeak-ng is not installed")
    monkeypatch.setattr(train.dataset, "festival_train", _broken_festival)  # fork-started workers inherit it
    cfg = train.Config(espeak=2, festival=2, foreign=0, flite=0, kokoro=0, piper=0)
    with pytest.raises(RuntimeError, match=r"festival (ked|slt) is broken"):
        train.synthesize(cfg, tmp_path, jobs=2)
    err = capfd.readouterr().err
    assert "festival-ked-2-" in err and "festival-slt-2-" in err and err.count("failed: RuntimeError") == 2
    cached = [p.name for p in tmp_path.iterdir()]
    assert len(cached) == 1 and cached[0].startswith("espeak-2-")
    assert len(train._load(tmp_path / cached[0])) == 2


def test_the_teacher_targets_of_each_head_follow_its_labels_and_are_silence_before_the_start() -> None:
    """Runs.soft_batch: row d holds the teacher's probabilities of the frame d steps earlier, the
    frame ``batch`` labels for head d, and certain silence before the utterance's first frame."""
    train = _train_script()
    rng = np.random.default_rng(5)
    labels = [np.arange(1, 11, dtype=np.int8), np.arange(21, 29, dtype=np.int8) % 15]
    feats = [np.zeros((len(lab), 40), np.float32) for lab in labels]
    soft = [rng.dirichlet(np.ones(15), len(lab)).astype(np.float16) for lab in labels]
    data = train.Runs(feats, labels, [0, 1], (-3, -1, 0), soft=soft)
    runs = [(0, 1), (1, 4)]
    got = data.soft_batch(runs, 3, heads=3)
    assert got is not None and got.shape == (3, 6, 15) and got.dtype == np.float32
    first, second = soft[0].astype(np.float32), soft[1].astype(np.float32)
    np.testing.assert_array_equal(got[0], np.r_[first[1:4], second[4:7]])
    np.testing.assert_array_equal(got[1], np.r_[first[0:3], second[3:6]])
    np.testing.assert_array_equal(got[2], np.r_[np.eye(15)[train.SIL][None], first[0:2], second[2:5]])
    assert train.Runs(feats, labels, [0, 1], (-3, -1, 0)).soft_batch(runs, 3) is None


def test_a_teacher_file_reads_as_its_networks_did_and_says_which_families_it_never_heard(
    tmp_path: pathlib.Path,
) -> None:
    """Net.load of a model file gives the logits of the network saved (float16 weights); of a merged
    pair, their average; teacher_probabilities pads, normalises and reads each utterance as training
    does; excluded_families of a pair is what neither network heard."""
    train = _train_script()
    merge = merge_script()
    rng = np.random.default_rng(8)
    offsets = (-4, -2, 0, 1, 3)
    stream = {"stream_prior": np.full(40, -6.0, np.float32), "stream_params": np.array([30, 300, 20, -75], np.float32)}
    nets, paths = {}, {}
    for name, inputs, acoustic, left_out in [("mel", 40, False, ["formant", "neural"]), ("ac", 46, True, ["formant"])]:
        cfg = train.Config(projection=6, hidden=8, acoustic=acoustic, offsets=offsets)
        net = train.Net(cfg, rng.normal(0, 1, inputs).astype(np.float32), np.ones(inputs, np.float32), rng, stream)
        for k in net.params:
            net.params[k] = (net.params[k] + rng.normal(0, 0.2, net.params[k].shape)).astype(np.float32)
        paths[name] = tmp_path / f"{name}.npz"
        net.save(paths[name], {"excluded_families": left_out})
        nets[name] = net
    paths["pair"] = tmp_path / "pair.npz"
    np.savez(paths["pair"], **merge.merge(dict(np.load(paths["mel"])), dict(np.load(paths["ac"]))))
    x = rng.normal(0, 1, (2, 9 + 4 + 3, 46)).astype(np.float32)
    loaded = {name: train.Net.load(path) for name, path in paths.items()}
    for name in ("mel", "ac"):
        want, _ = nets[name].forward(x[..., : len(nets[name].mean)], False)
        got, _ = loaded[name].forward(x[..., : len(loaded[name].mean)], False)
        np.testing.assert_allclose(got, want, atol=0.02 * np.abs(want).max())
    pair, _ = loaded["pair"].forward(x, False)
    mel, _ = loaded["mel"].forward(x[..., :40], False)
    ac, _ = loaded["ac"].forward(x, False)
    np.testing.assert_allclose(pair, (mel + ac) / 2, atol=1e-3 * np.abs(pair).max())
    assert loaded["pair"].cfg.offsets == offsets and loaded["pair"].cfg.acoustic
    assert set(loaded["pair"].stream) == {"stream_prior", "stream_params"}
    assert train.excluded_families(paths["mel"]) == {"formant", "neural"}
    assert train.excluded_families(paths["pair"]) == {"formant"}

    feats = [rng.normal(-5, 2, (n, 40)).astype(np.float32) for n in (7, 12)]
    rows = [rng.normal(-3, 1, (len(f), 6)).astype(np.float16) for f in feats]
    probs = train.teacher_probabilities(loaded["pair"], feats, rows)
    assert [p.shape for p in probs] == [(7, 15), (12, 15)]
    prior, params = stream["stream_prior"], [float(v) for v in stream["stream_params"]]
    data = train.Runs(
        feats, [np.zeros(len(f), np.int8) for f in feats], [0, 0], offsets,
        lambda f: train.engine.normalize_stream(f, prior, params), rows,
    )  # fmt: skip
    for u, n in enumerate(data.lengths):
        logits, _ = loaded["pair"].forward(data.x[data.starts[u] : data.starts[u] + n + 4 + 3][None], False)
        want = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(probs[u], want / want.sum(axis=1, keepdims=True), atol=2e-3)
        np.testing.assert_allclose(probs[u].astype(np.float32).sum(axis=1), 1.0, atol=1e-2)


def test_a_network_of_causal_acoustic_rows_says_so_in_its_file_and_pads_them_as_a_session_starts(
    tmp_path: pathlib.Path,
) -> None:
    """--causal-acoustic: the model file says ``acoustic_causal`` (only when the network reads the
    acoustic rows), Net.load reads it back, and Runs pads every utterance's rows before the start
    with the uniform row a session starts with, then its own rows, then its last one."""
    train = _train_script()
    rng = np.random.default_rng(9)
    for acoustic, inputs in ((True, 46), (False, 40)):
        cfg = train.Config(projection=6, hidden=8, acoustic=acoustic, acoustic_causal=True, offsets=(-2, 0, 1))
        path = tmp_path / f"{acoustic}.npz"
        train.Net(cfg, np.zeros(inputs, np.float32), np.ones(inputs, np.float32), rng).save(path, {})
        with np.load(path) as z:
            assert ("acoustic_causal" in z) == acoustic
        assert train.Net.load(path).cfg.acoustic_causal == acoustic
    feats = [rng.normal(-5, 2, (n, 40)).astype(np.float32) for n in (4, 6)]
    rows = [rng.normal(-3, 1, (len(f), 6)).astype(np.float16) for f in feats]
    data = train.Runs(feats, [np.zeros(len(f), np.int8) for f in feats], [0, 0], (-3, 0, 2), acoustic=rows)
    for u, f in enumerate(feats):
        block = data.x[data.starts[u] : data.starts[u] + 3 + len(f) + 2, 40:]
        np.testing.assert_allclose(block[:3], np.float16(-np.log(6)))
        np.testing.assert_array_equal(block[3 : 3 + len(f)], rows[u])
        np.testing.assert_array_equal(block[3 + len(f) :], np.repeat(rows[u][-1:], 2, axis=0))


def test_a_balanced_epoch_gives_each_family_its_share_and_keeps_the_rest() -> None:
    """Runs.epoch with groups: balance 1 gives every group the same number of runs (the grouped
    total kept, the smallest group's runs drawn again), 0.5 shares as the square root of the counts,
    ungrouped runs (-1: the not-speech clips) stay exactly as they are; balance 0 changes nothing."""
    train = _train_script()
    lengths = [703] * 9 + [127] * 10  # 64 k + 63 frames: k runs whatever the phase (90, then 5 and 5)
    feats = [np.zeros((n, 40), np.float32) for n in lengths]
    data = train.Runs(feats, [np.zeros(n, np.int8) for n in lengths], [0] * len(lengths), (0,))
    groups = [0] * 9 + [1] * 5 + [-1] * 5
    plain = data.epoch(64, np.random.default_rng(3))
    assert data.epoch(64, np.random.default_rng(3), groups, 0.0) == plain

    def per_group(runs: list[tuple[int, int]]) -> list[int]:
        return [sum(groups[u] == g for u, _ in runs) for g in (0, 1, -1)]

    assert per_group(plain) == [90, 5, 5]
    even = data.epoch(64, np.random.default_rng(3), groups, 1.0)
    assert per_group(even) == [48, 48, 5]  # 95 grouped runs, half each, rounded
    assert sorted(r for r in even if groups[r[0]] < 0) == sorted(r for r in plain if groups[r[0]] < 0)
    assert {r for r in even if groups[r[0]] == 1} == {r for r in plain if groups[r[0]] == 1}  # all 5, again
    root = per_group(data.epoch(64, np.random.default_rng(3), groups, 0.5))
    assert root[0] == round(95 * np.sqrt(90) / (np.sqrt(90) + np.sqrt(5))) and root[2] == 5


@pytest.mark.parametrize(("offsets", "dropout", "heads"), [((0,), 0.0, 1), ((-2, 0, 1), 0.0, 4), ((0,), 0.3, 2)])
def test_the_recurrent_network_s_backward_pass_matches_numerical_gradients(
    offsets: tuple[int, ...], dropout: float, heads: int
) -> None:
    """--recurrent: backpropagation through time through the GRU, the splice under it (past and future
    offsets) and the projection, with the warm-up frames unscored, against central differences of
    the loss (with and without dropout above it, one or several heads)."""
    train = _train_script()
    cfg = train.Config(
        projection=5, hidden=7, dropout=dropout, acoustic=False, heads=heads, offsets=offsets, recurrent=4, warmup=3
    )
    rng = np.random.default_rng(5)
    net = train.Gru(cfg, np.zeros(40, np.float32), np.ones(40, np.float32), rng)
    net.params = {k: v.astype(np.float64) for k, v in net.params.items()}
    for name in net.params:
        if name.startswith("b"):
            net.params[name] = rng.normal(0.0, 0.1, net.params[name].shape)
    runs, frames = 3, 4
    assert net.past == 3 - offsets[0] and net.future == offsets[-1]
    x = rng.standard_normal((runs, frames + net.past + net.future, 40))
    y = rng.integers(0, 15, (heads, runs * frames))
    weights = np.ones(15)
    weights[1] = 1.2
    grads = _gradients(net, x, y if heads > 1 else y[0], weights, seed=0)
    worst = _worst_gradient_error(net, grads, lambda _: _loss(net, x, y, weights, seed=0), rng)
    assert worst < 1e-4, worst


def test_the_voice_adversary_trains_itself_and_sends_its_gradient_reversed(tmp_path: pathlib.Path) -> None:
    """--adversary: the voice classifier's parameters descend its loss; the network's get the
    visemes' gradient minus ``adversary_weight`` times the adversary loss's (the gradient reversal),
    against central differences; frames without a voice (-1) do not count."""
    train = _train_script()
    cfg = train.Config(projection=5, hidden=7, dropout=0.0, acoustic=False, offsets=(-1, 0, 1), recurrent=4, warmup=2)
    rng = np.random.default_rng(11)
    net = train.Gru(cfg, np.zeros(40, np.float32), np.ones(40, np.float32), rng)
    net.add_adversary(3, rng, units=6)
    net.params = {k: v.astype(np.float64) for k, v in net.params.items()}
    for name in net.params:
        if name.startswith("b"):
            net.params[name] = rng.normal(0.0, 0.1, net.params[name].shape)
    net.adversary_weight = 0.7
    runs, frames = 3, 4
    x = rng.standard_normal((runs, frames + net.past + net.future, 40))
    y = rng.integers(0, 15, runs * frames)
    voices = rng.integers(-1, 3, runs * frames)
    weights = np.ones(15)

    def adversary_loss() -> float:
        _, cache = net.forward(x, True, np.random.default_rng(0))
        hidden = cache[f"h{cfg.layers}"][voices >= 0]
        inner = np.maximum(hidden @ net.params["wv1"] + net.params["bv1"], 0)
        q = _softmax(inner @ net.params["wv2"] + net.params["bv2"])
        return -float(np.log(q[np.arange(len(q)), voices[voices >= 0]]).mean())

    grads = _gradients(net, x, y, weights, seed=0, voices=voices)
    assert len(net.adversary_log) == 1 and net.adversary_log[0][0] > 0.0

    def objective(name: str) -> float:
        if name.startswith(("wv", "bv")):
            return adversary_loss()
        return _loss(net, x, y, weights, seed=0) - net.adversary_weight * adversary_loss()

    worst = _worst_gradient_error(net, grads, objective, rng)
    assert worst < 1e-4, worst
    # The classifier is left out of the model file, and a spliced network refuses voices.
    net.save(tmp_path / "model.npz", {})
    with np.load(tmp_path / "model.npz") as saved:
        assert "recurrent_state_weight" in saved and not any("wv" in k or "bv" in k for k in saved)
    with pytest.raises(ValueError, match="recurrent"):
        train.Net(train.Config(acoustic=False), np.zeros(40, np.float32), np.ones(40, np.float32), rng).step(
            x, y, weights, 0.0, rng, voices=voices
        )


def test_the_adversary_s_targets_are_each_frame_s_voice_except_where_it_is_silent() -> None:
    train = _train_script()
    feats = [np.zeros((6, 40), np.float32), np.zeros((5, 40), np.float32)]
    labels = [np.array([0, 3, 3, 0, 5, 5], np.int8), np.array([2, 2, 0, 4, 4], np.int8)]
    data = train.Runs(feats, labels, [0, 1], (0,))
    data.voices = [4, -1]
    runs = [(0, 1), (1, 0)]
    _, y, _ = data.batch(runs, 3)
    assert data.voice_batch(runs, 3, y).tolist() == [4, 4, -1, -1, -1, -1]


def _recurrent_file(
    train: Any, path: pathlib.Path, inputs: int, units: int, seed: int, offsets: tuple[int, ...] = (-2, -1, 0)
) -> Any:
    """A random recurrent network (2 heads) saved as ``path``; Net.load of it."""
    rng = np.random.default_rng(seed)
    cfg = train.Config(
        projection=6, hidden=8, acoustic=inputs > 40, heads=2, offsets=offsets, recurrent=units, warmup=4
    )
    stream = {"stream_prior": np.full(40, -6.0, np.float32), "stream_params": np.array([30, 300, 20, -75], np.float32)}
    mean, inv_std = rng.normal(-4, 1, inputs).astype(np.float32), rng.uniform(0.3, 1, inputs).astype(np.float32)
    net = train.Gru(cfg, mean, inv_std, rng, stream)
    for k in net.params:
        net.params[k] = (net.params[k] + rng.normal(0, 0.3, net.params[k].shape)).astype(np.float32)
    net.save(path, {})
    return train.Net.load(path)


@pytest.mark.parametrize("offsets", [(-2, -1, 0), (-1, 0, 2)], ids=["past", "future"])
def test_the_engine_runs_a_recurrent_model_as_the_training_script_does(
    tmp_path: pathlib.Path, offsets: tuple[int, ...]
) -> None:
    """A --recurrent model file (its splice with or without frames after the step): the engine's
    Model (project, then classify_sequence from the state a session starts with) gives the
    probabilities of the numpy network Net.load reads back, whose state at an utterance's first
    frame is the one ``warmup`` frames of leading silence leave; a session's output does not depend
    on the chunking; two recurrent networks merge into one whose logits are their average (weight 0:
    the first's exactly), a recurrent and a spliced one do not."""
    from avatarkit.engine import EngineSession, load_model

    train = _train_script()
    merge = merge_script()
    paths = {name: tmp_path / f"{name}.npz" for name in ("a", "b", "m0", "m5")}
    nets = {
        "a": _recurrent_file(train, paths["a"], 40, 5, 1, offsets),
        "b": _recurrent_file(train, paths["b"], 40, 7, 2, offsets),
    }
    models = {name: load_model(str(paths[name])) for name in ("a", "b")}
    assert models["a"].recurrent_size == 5 and models["a"].heads == 2
    with np.load(paths["a"]) as z:
        np.testing.assert_allclose(z["recurrent_initial"], nets["a"].initial_state(), atol=1e-6)
        assert np.abs(z["recurrent_initial"]).max() > 0.01  # silence leaves a state of its own

    rng = np.random.default_rng(4)
    n = 30
    x = np.full((nets["a"].past + n + nets["a"].future, 40), train.SILENCE, np.float32)
    x[nets["a"].past : nets["a"].past + n] = rng.normal(-5, 2, (n, 40))
    # (silence first for as long as the splice reads ahead: the warm-up before an utterance hears
    # that much of it in training, and a session starts from the state of silence alone)
    x[nets["a"].past : nets["a"].past + nets["a"].future] = train.SILENCE
    x[nets["a"].past + n :] = rng.normal(-5, 2, (nets["a"].future, 40))

    def engine_probabilities(model: Any) -> Any:
        proj = model.project(x)
        rows = nets["a"].past + np.arange(n)[:, None] + np.array(offsets)[None, :]
        return model.classify_sequence(proj[rows].reshape(n, -1))

    def numpy_logits(net: Any) -> Any:
        logits, _ = net.forward(x[None], False)
        return logits.reshape(n, 2, 15)

    for name in ("a", "b"):
        want = numpy_logits(nets[name])
        want = (
            np.exp(want - want.max(axis=2, keepdims=True))
            / np.exp(want - want.max(axis=2, keepdims=True)).sum(2)[..., None]
        )
        np.testing.assert_allclose(engine_probabilities(models[name]), want, atol=1e-4)

    a, b = dict(np.load(paths["a"])), dict(np.load(paths["b"]))
    np.savez(paths["m0"], **merge.merge(a, b, 0.0))
    np.savez(paths["m5"], **merge.merge(a, b, 0.5))
    merged = load_model(str(paths["m5"]))
    assert merged.recurrent_size == 12
    mean_logits = (numpy_logits(nets["a"]) + numpy_logits(nets["b"])) / 2
    want = np.exp(mean_logits - mean_logits.max(axis=2, keepdims=True))
    # (the merge folds each network's input normalisation into its projection, rounded to float16 again)
    np.testing.assert_allclose(engine_probabilities(merged), want / want.sum(axis=2, keepdims=True), atol=1e-3)
    assert merged.parameter_count == models["a"].parameter_count + models["b"].parameter_count - 2 * 15
    with pytest.raises(ValueError, match="merged recurrent"):
        train.Net.load(paths["m5"])
    spliced = train.Net(train.Config(projection=6, hidden=8, acoustic=False, heads=2, offsets=offsets),
                        np.zeros(40, np.float32), np.ones(40, np.float32), rng,
                        {k: b[k] for k in ("stream_prior", "stream_params")})  # fmt: skip
    spliced.save(tmp_path / "spliced.npz", {})
    with pytest.raises(ValueError, match="recurrent"):
        merge.merge(dict(np.load(tmp_path / "spliced.npz")), b)

    t = np.arange(2 * 16000) / 16000
    pcm = (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 2 * t) > 0) * 32767).astype(np.int16)

    def run(name: str, chunk: int) -> Any:
        s = EngineSession(16000, model=load_model(str(paths[name])), nonverbal=False, smoothing_ahead=0)
        return np.concatenate([s.push(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)] + [s.flush()])

    whole = run("m5", len(pcm))
    np.testing.assert_array_equal(run("m5", 333), whole)
    np.testing.assert_allclose(run("m0", 640), run("a", 640), atol=1e-3)
    assert np.abs(whole - run("a", 640)).max() > 0.01
    from avatarkit._core import engine as core

    arrays = [a[f"recurrent_{k}"].astype(np.float32) for k in train.RECURRENT_KEYS]
    dense = [a["weight0"].astype(np.float32), a["weight1"].astype(np.float32)]
    biases = [a["bias0"].astype(np.float32), a["bias1"].astype(np.float32)]
    args = (a["mean"], a["inv_std"], a["projection_weight"].astype(np.float32), a["projection_bias"].astype(np.float32))
    bad_start = np.full(5, 2.0, np.float32)
    with pytest.raises(ValueError, match="initial state"):
        core.Model(*args, list(offsets), dense, biases, heads=2, recurrent=arrays, recurrent_initial=bad_start)
    with pytest.raises(ValueError, match="recurrent"):
        core.Model(*args, list(offsets), dense, biases, heads=2, recurrent=arrays, recurrent_blocks=[2, 2])


def test_the_merge_script_can_raise_every_head_s_closed_lips_logit(tmp_path: pathlib.Path) -> None:
    """merge_lipsync_models --pp-bias: each head's PP logit rises by the bias (the others stay), so a
    session closes the lips on more frames; the model file's info records the calibration."""
    train, merge = _train_script(), merge_script()
    path = tmp_path / "a.npz"
    _recurrent_file(train, path, 40, 5, 3)
    z = dict(np.load(path))
    raised = merge.raise_closures(z, 0.75)
    last = int(z["layers"]) - 1
    delta = raised[f"bias{last}"].astype(np.float32) - z[f"bias{last}"].astype(np.float32)
    want = np.zeros(2 * 15, np.float32)
    want[[1, 16]] = 0.75
    np.testing.assert_allclose(delta, want, atol=2e-3)  # float16 storage
    assert json.loads(str(raised["info"]))["pp_bias"] == 0.75
    np.savez(tmp_path / "raised.npz", **raised)
    from avatarkit.engine import load_model

    x = np.random.default_rng(1).normal(-5, 2, (40, 40)).astype(np.float32)
    before, after = (load_model(str(p)) for p in (path, tmp_path / "raised.npz"))
    proj = before.project(x)  # the same projection in both
    spliced = np.concatenate([proj[:-2], proj[1:-1], proj[2:]], axis=1)  # offsets -2, -1, 0
    p0, p1 = before.classify_sequence(spliced), after.classify_sequence(spliced)
    assert (p1[..., 1] > p0[..., 1]).all() and (p1[..., 0] < p0[..., 0]).all()
