#!/usr/bin/env python3
"""Merge two viseme classifiers into one that averages their logits (an ensemble in one network).

    python scripts/merge_lipsync_models.py A.npz B.npz --out merged.npz [--weight 0.5]

Both models must come from ``scripts/train_lipsync.py`` with the same context offsets, number of
layers and per-stream normalisation (prior and parameters: the same training data), for example one
trained on the log-mel frames alone (``--no-acoustic``) and one that also reads the acoustic scores.
A merged file merges again: ``merge C.npz AB.npz --weight 0.6667`` averages three networks.
The merged file is an ordinary model the engine loads as it is: its projection and hidden layers
are the two models' side by side (block-diagonal weights, so each half sees only what its model
saw), and its last layer gives ``(1 - weight) * logits_A + weight * logits_B``. Each model's input
normalisation is folded into its half of the projection, so the merged file keeps B's.

Cost: the two networks' (the features and acoustic scores are computed once).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


#: How far two models' per-stream priors (mean training speech frame, natural-log mel power) may
#: differ and still count as the same training data: 0.01 is 0.04 dB. The shipped model's prior and
#: the mean of the same cached features computed again differ by 0.0004; a fold trained without a
#: family is 0.2 or more away.
PRIOR_TOLERANCE = 0.01

#: A recurrent model's weights (stored like the dense layers': float16 when the models' are).
RECURRENT_WEIGHTS = ("recurrent_input_weight", "recurrent_input_bias", "recurrent_state_weight", "recurrent_state_bias")


def _same_normalisation(key: str, x: npt.NDArray[Any], y: npt.NDArray[Any]) -> bool:
    if x.shape != y.shape:
        return False
    if key == "stream_prior":
        return bool(np.abs(x.astype(np.float64) - y.astype(np.float64)).max() <= PRIOR_TOLERANCE)
    return bool(np.array_equal(x, y))


def merge(a: dict[str, Any], b: dict[str, Any], weight: float = 0.5) -> dict[str, Any]:
    """The arrays of a model whose logits are ``(1 - weight) * a's + weight * b's``.

    ``a`` and ``b`` are the arrays of two model files (``dict(np.load(path))``). ``a`` may read
    fewer inputs than ``b`` (the log-mel frames alone against log-mel and acoustic scores): its
    inputs are the first of ``b``'s.

    Raises:
        ValueError: the two models are not compatible (offsets, layers, stream normalisation, inputs).
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], not {weight}")
    if not np.array_equal(a["offsets"], b["offsets"]):
        raise ValueError("the models' context offsets differ")
    if int(a.get("heads", 1)) != int(b.get("heads", 1)):
        raise ValueError("the models have different numbers of output heads")
    layers = int(a["layers"])
    if layers != int(b["layers"]) or layers < 1:
        raise ValueError("the models have different numbers of layers")
    for key in ("stream_prior", "stream_params"):
        if (key in a) != (key in b) or (key in a and not _same_normalisation(key, a[key], b[key])):
            raise ValueError(f"the models' per-stream normalisation differs ({key}): train them on the same data")
    ia, ib = len(a["mean"]), len(b["mean"])
    if ia > ib:
        raise ValueError("the first model reads more inputs than the second: swap them")
    if bool(a.get("acoustic", False)) and not bool(b.get("acoustic", False)):
        raise ValueError("the first model reads acoustic scores and the second does not: swap them")
    causal_a, causal_b = bool(a.get("acoustic_causal", False)), bool(b.get("acoustic_causal", False))
    if bool(a.get("acoustic", False)) and causal_a != causal_b:
        raise ValueError("one model reads causal acoustic scores and the other the centred ones")

    recurrent = "recurrent_state_weight" in a
    if recurrent != ("recurrent_state_weight" in b):
        raise ValueError("one model has a recurrent layer and the other does not")

    f = np.float64
    # Input normalisation: the merged model keeps b's; a's is folded into its projection half.
    # a sees z_a = (x - m_a) s_a = z_b (s_a / s_b) + (m_b - m_a) s_a on its first ia inputs.
    m_a, s_a = a["mean"].astype(f), a["inv_std"].astype(f)
    m_b, s_b = b["mean"].astype(f)[:ia], b["inv_std"].astype(f)[:ia]
    wpa, wpb = a["projection_weight"].astype(f), b["projection_weight"].astype(f)
    pa, pb = wpa.shape[1], wpb.shape[1]
    proj = np.zeros((ib, pa + pb))
    proj[:ia, :pa] = (s_a / s_b)[:, None] * wpa
    proj[:, pa:] = wpb
    bias = np.concatenate([a["projection_bias"].astype(f) + ((m_b - m_a) * s_a) @ wpa, b["projection_bias"].astype(f)])

    out: dict[str, Any] = {
        "mean": b["mean"].astype(np.float32),
        "inv_std": b["inv_std"].astype(np.float32),
        "projection_weight": proj.astype(np.float32),
        "projection_bias": bias.astype(np.float32),
        "offsets": b["offsets"],
        "layers": np.array(layers),
    }
    # The first layer reads the splice: per context offset, the merged projection (a's pa values,
    # then b's pb). Later layers are block-diagonal; the last one is linear and averages.
    n_off = len(b["offsets"])
    splice_a = (np.arange(n_off)[:, None] * (pa + pb) + np.arange(pa)[None, :]).ravel()
    splice_b = (np.arange(n_off)[:, None] * (pa + pb) + pa + np.arange(pb)[None, :]).ravel()
    if recurrent:
        # The GRU reads the splice; each network's units are a block, its gates' columns [r u n]
        # together (engine.Model's layout), a's blocks first. The dense layers read the state.
        ha, hb = a["recurrent_state_weight"].shape[0], b["recurrent_state_weight"].shape[0]
        wia, wib = a["recurrent_input_weight"].astype(f), b["recurrent_input_weight"].astype(f)
        if wia.shape != (n_off * pa, 3 * ha) or wib.shape != (n_off * pb, 3 * hb):
            raise ValueError("a model's recurrent layer does not match its projection and offsets")
        w_in = np.zeros((n_off * (pa + pb), 3 * (ha + hb)))
        w_in[splice_a, : 3 * ha] = wia
        w_in[splice_b, 3 * ha :] = wib
        w_state = np.zeros((ha + hb, 3 * (ha + hb)))
        w_state[:ha, : 3 * ha] = a["recurrent_state_weight"].astype(f)
        w_state[ha:, 3 * ha :] = b["recurrent_state_weight"].astype(f)

        def initial(z: dict[str, Any], units: int) -> npt.NDArray[Any]:
            start = z.get("recurrent_initial", np.zeros(units))
            return np.asarray(start, np.float32)

        def blocks(z: dict[str, Any], units: int) -> list[int]:
            return [int(v) for v in z["recurrent_blocks"]] if "recurrent_blocks" in z else [units]

        out.update(
            recurrent_input_weight=w_in.astype(np.float32),
            recurrent_input_bias=np.concatenate([a["recurrent_input_bias"], b["recurrent_input_bias"]], dtype=f),
            recurrent_state_weight=w_state.astype(np.float32),
            recurrent_state_bias=np.concatenate([a["recurrent_state_bias"], b["recurrent_state_bias"]], dtype=f),
            recurrent_initial=np.concatenate([initial(a, ha), initial(b, hb)]),
            recurrent_blocks=np.array(blocks(a, ha) + blocks(b, hb), np.int32),
        )
        if "recurrent_warmup" in b:
            out["recurrent_warmup"] = b["recurrent_warmup"]
    for i in range(layers):
        wa, wb = a[f"weight{i}"].astype(f), b[f"weight{i}"].astype(f)
        ba, bb = a[f"bias{i}"].astype(f), b[f"bias{i}"].astype(f)
        last = i == layers - 1
        if last and wa.shape[1] != wb.shape[1]:
            raise ValueError("the models' outputs differ")
        if i == 0 and not recurrent:
            rows_a, rows_b = splice_a, splice_b
            if wa.shape[0] != n_off * pa or wb.shape[0] != n_off * pb:
                raise ValueError("a model's first layer does not match its projection and offsets")
        else:
            rows_a = np.arange(wa.shape[0])
            rows_b = wa.shape[0] + np.arange(wb.shape[0])
        height = wa.shape[0] + wb.shape[0]
        if last:
            w = np.zeros((height, wa.shape[1]))
            w[rows_a] = (1.0 - weight) * wa
            w[rows_b] = weight * wb
            bias_i = (1.0 - weight) * ba + weight * bb
        else:
            w = np.zeros((height, wa.shape[1] + wb.shape[1]))
            w[rows_a, : wa.shape[1]] = wa
            w[rows_b, wa.shape[1] :] = wb
            bias_i = np.concatenate([ba, bb])
        out[f"weight{i}"] = w.astype(np.float32)
        out[f"bias{i}"] = bias_i.astype(np.float32)
    # float16 weights (as train_lipsync writes them) when both models' are; normalisation in float32.
    half = all(z[k].dtype == np.float16 for z in (a, b) for k in z if k.startswith(("weight", "projection_weight")))
    if half:
        for k in list(out):
            if k.startswith(("weight", "bias", "projection")) or k in RECURRENT_WEIGHTS:
                out[k] = out[k].astype(np.float16)
    for key in ("stream_prior", "stream_params"):
        if key in b:
            out[key] = b[key]
    out["acoustic"] = np.array(bool(b.get("acoustic", False)))
    if bool(b.get("acoustic_causal", False)):
        out["acoustic_causal"] = np.array(True)
    if "heads" in b:
        out["heads"] = np.array(int(b["heads"]))

    def info(z: dict[str, Any]) -> Any:
        return json.loads(str(z["info"])) if "info" in z else None

    ensemble = {"weight": weight, "a": info(a), "b": info(b)}
    out["info"] = np.array(json.dumps({"ensemble": ensemble, "script": "scripts/merge_lipsync_models.py"}))
    return out


#: The viseme index of PP (closed lips) in a model's outputs (``bench/lipsync/visemes.py``).
PP_INDEX = 1
VISEMES = 15


def raise_closures(z: dict[str, Any], bias: float) -> dict[str, Any]:
    """The arrays of a model whose PP logit (every head's) is ``bias`` higher: a calibration.

    A network whose closed-lips probability peaks lower than another's on a short closure closes
    the lips less often under the engine's closure rule; ``bias`` (chosen on the dev split) moves
    that balance without retraining. The info records it.
    """
    out = dict(z)
    last = int(z["layers"]) - 1
    key = f"bias{last}"
    values = z[key].astype(np.float32).copy()
    values[PP_INDEX::VISEMES] += np.float32(bias)
    out[key] = values.astype(z[key].dtype)
    info = json.loads(str(z["info"])) if "info" in z else {}
    info["pp_bias"] = float(info.get("pp_bias", 0.0)) + bias
    out["info"] = np.array(json.dumps(info))
    return out


def main(argv: list[str] | None = None) -> int:
    """Merge the two files named on the command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", type=pathlib.Path, help="the first model (e.g. log-mel only)")
    ap.add_argument("b", type=pathlib.Path, help="the second model (e.g. with the acoustic scores)")
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--weight", type=float, default=0.5, help="the second model's share of the logits")
    ap.add_argument("--pp-bias", type=float, default=0.0, help="add this to the merged PP logit (closure calibration)")
    args = ap.parse_args(argv)
    with np.load(args.a) as za, np.load(args.b) as zb:
        try:
            merged = merge(dict(za), dict(zb), args.weight)
        except ValueError as e:
            ap.error(str(e))
    if args.pp_bias:
        merged = raise_closures(merged, args.pp_bias)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **merged)
    weighted = ("weight", "projection_weight", "recurrent_input_weight", "recurrent_state_weight")
    weights = sum(np.count_nonzero(v) for k, v in merged.items() if k.startswith(weighted))
    biased = ("bias", "projection_bias", "recurrent_input_bias", "recurrent_state_bias")
    biases = sum(v.size for k, v in merged.items() if k.startswith(biased))
    print(f"{args.out}: {weights + biases} weights and biases (not counting the zero blocks)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
