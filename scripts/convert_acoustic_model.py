"""Convert pocketsphinx's US English acoustic model into the engine's ``acoustic_model.npz``.

    python scripts/convert_acoustic_model.py            # writes python/avatarkit/data/acoustic_model.npz

The engine's viseme network reads, besides its log-mel features, the scores of the 126
context-independent senones (42 base phones x 3 states) of this model, which CMU trained on
recorded speech of many speakers (``docs/lipsync.md``). This script keeps only that part: per base
phone and feature stream (cepstra, deltas, double deltas) a codebook of 128 diagonal Gaussians,
and the senones' mixture weights, as float32 (about 1.7 MB compressed).

Needs the ``pocketsphinx`` wheel (BSD licence; the model's notice is in THIRD_PARTY_NOTICES.md)
and the installed package. The running cepstral mean starts where pocketsphinx's live decoder
starts its own (its ``cmninit`` default), moved to the engine's units: the engine's cepstra differ
from Sphinx's by a constant in c0 (its samples are in [-1, 1], its window another), which is
measured here on the same pink noise through both front ends.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from lipsync import sphinxam  # noqa: E402

from avatarkit._core import engine  # noqa: E402

OUT = ROOT / "python" / "avatarkit" / "data" / "acoustic_model.npz"


def cmn_prior() -> np.ndarray:
    """pocketsphinx's initial cepstral mean (``cmninit`` 40,3,-1) in the engine's units."""
    from pocketsphinx import Config
    from scipy import signal

    init = np.zeros(engine.N_CEPSTRA, np.float64)
    values = [float(v) for v in Config()["cmninit"].split(",")]
    init[: len(values)] = values
    noise = signal.lfilter([1.0], [1.0, -0.95], np.random.default_rng(0).standard_normal(5 * sphinxam.RATE))
    pcm = np.round(noise / np.sqrt(np.mean(noise**2)) * 0.03 * 32767).astype(np.int16)  # -30 dBFS
    offset = engine.cepstra(pcm.astype(np.float32) / 32768.0, sphinxam.RATE).mean(0) - sphinxam.mfcc(pcm).mean(0)
    return (init + offset).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """Read the model, compute the mean prior, write the ``.npz``; print what was written."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=OUT)
    args = ap.parse_args(argv)

    m = sphinxam.model()
    codebooks, _, densities, _ = m.means.shape
    # (stream, density, senone) -> (stream, codebook, density, state): senone = 3 * codebook + state.
    log_weights = m.logw.reshape(3, densities, codebooks, 3).transpose(0, 2, 1, 3)

    prior = cmn_prior()
    arrays = {
        "means": np.ascontiguousarray(m.means, np.float32),
        "precisions": np.ascontiguousarray(m.prec, np.float32),
        "constants": np.ascontiguousarray(m.const, np.float32),
        "log_weights": np.ascontiguousarray(log_weights, np.float32),
        "cmn_prior": prior,
    }
    source = {
        "source": "pocketsphinx (PyPI) model/en-us/en-us: means, variances, sendump, mdef",
        "licence": "BSD-2-Clause (Copyright (c) 2015 Alpha Cephei Inc.)",
        "phones": m.phones,
        "cmn_prior": "pocketsphinx's cmninit, plus the engine-minus-Sphinx cepstral offset on pink noise",
        "script": "scripts/convert_acoustic_model.py",
    }
    engine.AcousticModel(**arrays)  # the engine accepts it
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, info=np.array(json.dumps(source)), **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {codebooks} phones x 3 states, "
          f"{densities} Gaussians per codebook and stream")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
