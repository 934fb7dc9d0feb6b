"""Would pocketsphinx's context-dependent senones read phones better than its context-independent ones?

    python bench/lipsync/senones.py                    # dev split, 20 sentences per held-out voice
    python bench/lipsync/senones.py --split test --count 10

The engine reads the 126 context-independent senone scores of pocketsphinx's acoustic model
(``acoustic.cpp``). The model also holds 5000 context-dependent senones (triphone states), each a
mixture over its base phone's codebook. This screen asks whether they are a better front end: every
10 ms frame's best base phone is mapped to its viseme and compared with the truth, exact frame (and
one or two frames later, as the cepstral frames end later than the labels' cells), with the base
phone's score read three ways:

- ``ci``: the best of its three context-independent senones (what the engine reads);
- ``cd-max``: the best of all its senones, context-dependent ones included;
- ``cd-mean``: the log of the mean likelihood of all its senones (a flat prior over them).

Numpy only, the whole utterance's cepstral mean (:mod:`sphinxam`). Needs pocketsphinx.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

if __package__ in (None, ""):  # run as a script: make the lipsync package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from lipsync import dataset, sphinxam
from lipsync.dataset import Labelled
from lipsync.synth import resample_pcm
from lipsync.visemes import FESTIVAL, SIL, VISEME_INDEX, lookup

READINGS = ("ci", "cd-max", "cd-mean")
SHIFTS = 3  # 0, 1 and 2 frames of 10 ms


def phone_visemes(phones: Sequence[str]) -> npt.NDArray[np.int64]:
    """Each base phone's viseme (its first, for a diphthong), silence for SIL and the fillers, -1
    where the truth takes a neighbour's (``hh``: never counted right)."""
    out = []
    for name in phones:
        low = name.lower()
        if low == "sil" or low.startswith("+"):
            out.append(SIL)
        else:
            out.append(VISEME_INDEX.get(lookup(low, FESTIVAL)[0], -1))
    return np.array(out, np.int64)


def read(scores: npt.NDArray[np.float32], base: npt.NDArray[np.int64], how: str) -> npt.NDArray[np.int64]:
    """The best base phone of every frame from all senone scores (T x senones)."""
    n_ci = int(base.max()) + 1
    if how == "ci":
        return np.asarray(scores[:, : 3 * n_ci].reshape(len(scores), n_ci, 3).max(-1).argmax(1))
    phone = np.empty((len(scores), n_ci), np.float32)
    for cb in range(n_ci):
        z = scores[:, base == cb]
        top = z.max(1)
        phone[:, cb] = top if how == "cd-max" else top + np.log(np.exp(z - top[:, None]).mean(1))
    return np.asarray(phone.argmax(1))


def screen(items: list[Labelled]) -> dict[str, list[float]]:
    """Frame accuracy (%) of each reading at each shift over ``items``."""
    visemes = phone_visemes(sphinxam.model().phones)
    tally = {how: np.zeros((SHIFTS, 2)) for how in READINGS}
    for item in items:
        audio = item.utt.audio
        if item.utt.rate != sphinxam.RATE:
            audio = resample_pcm(audio, item.utt.rate, sphinxam.RATE)
        scores, base = sphinxam.all_senone_scores(audio)
        truth = item.labels_10ms()
        for how in READINGS:
            predicted = visemes[read(scores, base, how)]
            for shift in range(SHIFTS):
                n = min(len(predicted) - shift, len(truth))
                tally[how][shift] += (np.sum(predicted[shift : shift + n] == truth[:n]), n)
    return {how: [100 * right / max(total, 1) for right, total in t] for how, t in tally.items()}


def main(argv: list[str] | None = None) -> int:
    """Print each held-out voice's frame accuracy under each reading."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--count", type=int, default=20, help="sentences per voice")
    args = ap.parse_args(argv)
    voices: dict[str, Callable[[], list[Labelled]]] = {
        "espeak (formant)": lambda: dataset.espeak_eval(args.count, args.split),
        "kal (concatenative)": lambda: dataset.festival_eval("kal", args.count, args.split),
        "rms (parametric)": lambda: dataset.flite_eval("rms", args.count, args.split),
        "Kokoro (neural)": lambda: dataset.kokoro_eval(args.count, args.split),
        "joe (neural)": lambda: dataset.piper_eval(args.count, args.split),
    }
    print(f"10 ms frame accuracy, {args.split} split, {args.count} sentences per voice; shifts 0 / 1 / 2 frames")
    for name, make in voices.items():
        t0 = time.time()
        try:
            items = make()
        except (OSError, RuntimeError, ValueError) as err:
            print(f"{name}: unavailable ({err})")
            continue
        result = screen(items)
        cells = "   ".join(f"{how} " + " / ".join(f"{v:.1f}" for v in result[how]) for how in READINGS)
        print(f"{name}: {cells}   ({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
