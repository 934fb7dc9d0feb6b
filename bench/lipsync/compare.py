"""Score several models on exactly the same held-out audio, synthesized once.

    python bench/lipsync/compare.py --family formant a.npz b.npz     # dev split
    python bench/lipsync/compare.py --family neural --split test a.npz b.npz

``evaluate.py`` synthesizes its sets anew on every run, and espeak-ng's voices vary from call to
call: two runs of one model on the formant family differ by up to a point. A comparison of models
wants them scored on the same audio. This script synthesizes a family's held-out sentences once
(kept in ``--cache``, keyed by family, split and the number of espeak voices), then scores every
model on them, chunked like ``evaluate.py``. For the formant family each sentence is spoken by
``--espeak-voices`` of the held-out espeak variants (four by default: 80 utterances on dev), a
larger set than ``evaluate.py``'s one voice per sentence.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

if __package__ in (None, ""):  # run as a script: make the lipsync package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from lipsync import dataset
from lipsync.dataset import Labelled
from lipsync.evaluate import engine_factory, score
from lipsync.synth import Espeak

ROOT = pathlib.Path(__file__).resolve().parents[2]


def held_out(family: str, split: str, espeak_voices: int) -> dict[str, list[Labelled]]:
    """A family's held-out sets by voice."""
    if family == "formant":
        es = Espeak.get()
        items = []
        for k in range(espeak_voices):
            for i, text in enumerate(dataset.texts_of(split)):
                voice, rate, pitch = dataset.espeak_eval_voice(i + 5 * k + (0 if split == "dev" else 20))
                items.append(dataset.label(es.synthesize(text, voice, rate=rate, pitch=pitch)))
        return {"espeak": items}
    if family == "concatenative":
        return {"kal": dataset.festival_eval("kal", None, split)}
    if family == "parametric":
        return {"rms": dataset.flite_eval("rms", None, split)}
    if family == "neural":
        return {"Kokoro": dataset.kokoro_eval(None, split), "joe": dataset.piper_eval(None, split)}
    raise ValueError(f"unknown family {family!r}")


def cached(cache: pathlib.Path, family: str, split: str, espeak_voices: int) -> dict[str, list[Labelled]]:
    """:func:`held_out`, synthesized once and kept under ``cache``."""
    path = cache / f"{family}-{split}-{espeak_voices if family == 'formant' else 1}.pkl"
    if path.is_file():
        sets: dict[str, list[Labelled]] = dataset.load(path)
        return sets
    sets = held_out(family, split, espeak_voices)
    dataset.store(path, sets)
    return sets


def main(argv: Sequence[str] | None = None) -> int:
    """Print each model's accuracy / closure recall / jaw r / closure precision on each voice of the family."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", type=pathlib.Path, help="model .npz files")
    ap.add_argument("--family", choices=dataset.FAMILIES, required=True)
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--espeak-voices", type=int, default=4, help="held-out espeak voices per sentence (formant)")
    ap.add_argument("--chunk-ms", type=float, default=20.0, help="audio per push (ms)")
    ap.add_argument(
        "--low-latency", action="store_true", help="the low-latency engine's settings (no smoothing after a frame)"
    )
    ap.add_argument("--cache", type=pathlib.Path, default=ROOT / "build" / "lipsync-eval")
    args = ap.parse_args(argv)
    if args.espeak_voices < 1:
        ap.error("--espeak-voices must be at least 1")
    sets = cached(args.cache, args.family, args.split, args.espeak_voices)
    sizes = ", ".join(f"{name} {len(items)}" for name, items in sets.items())
    figures = "accuracy / closure recall / jaw r / closure precision"
    print(f"{args.family}, {args.split} split ({sizes} utterances): {figures}")
    for model in args.models:
        make = engine_factory(str(model), low_latency=args.low_latency)
        cells = []
        for name, items in sets.items():
            tally, _ = score(make, items, args.chunk_ms)
            acc, closures = 100 * tally.accuracy, 100 * tally.closure_recall
            precision = 100 * tally.closure_precision
            cells.append(f"{name} {acc:.1f} % / {closures:.1f} % / {tally.jaw_r:.3f} / {precision:.1f} %")
        print(f"{model}: " + " | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
