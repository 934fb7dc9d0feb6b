"""Which voices and texts train, which are held out, and how utterances are built and labelled.

The split is by voice and by text:

- espeak-ng: a voice is a language (accent) plus a variant (timbre). Evaluation variants never
  occur in training, and two of the four evaluation accents (``en-us-nyc``, ``en-gb-scotland``)
  never do either.
- festival: ``kal`` (the evaluation voice named by the issue) is never used in training; ``ked``
  and ``slt`` are.
- texts: evaluation speaks :data:`corpus.HELD_OUT`, hand-written sentences; training speaks
  generated ones (:func:`corpus.training_texts`), which exclude them.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from . import corpus
from .synth import FESTIVAL_VOICES, Espeak, Utterance, festival_available, festival_batch
from .visemes import Phone, Segment, frame_truth, label_grid, segments

ESPEAK_TRAIN_LANGS = ("en-us", "en", "en-gb-x-rp", "en-029", "en-gb-x-gbclan")
ESPEAK_TRAIN_VARIANTS = (
    "m1", "m2", "m3", "m5", "m7", "f1", "f3", "f5", "klatt", "klatt2", "klatt3", "klatt6", "croak",
    "Alex", "Andy", "Denis", "Gene", "Hugo", "Jacky", "Lee", "Marco", "Michael", "Mike", "Reed",
    "Storm", "Tweaky", "adam", "anika", "aunty", "belinda", "benjamin", "boris", "caleb", "david",
    "ed", "edward", "grandma", "grandpa", "gustave", "ian", "iven", "john", "linda", "max", "michel",
    "norbert", "paul", "pedro", "quincy", "rob", "robert", "shelby", "steph", "travis", "victor", "zac",
)  # fmt: skip
ESPEAK_EVAL_LANGS = ("en-us", "en-us-nyc", "en-gb-scotland", "en-gb-x-gbcwmd")
ESPEAK_EVAL_VARIANTS = (
    "f2",
    "f4",
    "m4",
    "m6",
    "m8",
    "klatt4",
    "Annie",
    "Alicia",
    "Andrea",
    "antonio",
    "iven3",
    "miguel",
)
FESTIVAL_TRAIN_VOICES = ("ked", "slt")
#: Non-English festival voices built from real recordings: training only, for voice variety.
FESTIVAL_FOREIGN_VOICES = ("lp", "pc", "dita", "machac", "ph", "krb", "lj", "mv", "ona", "nsh")
FESTIVAL_EVAL_VOICES = ("kal",)
PAD_SECONDS = 0.3  # silence before and after each evaluation sentence

assert not set(ESPEAK_TRAIN_VARIANTS) & set(ESPEAK_EVAL_VARIANTS)
assert not set(FESTIVAL_TRAIN_VOICES) & set(FESTIVAL_EVAL_VOICES)


@dataclass
class Labelled:
    """An utterance with its truth: viseme segments, 25 fps labels and openness, 10 ms labels."""

    utt: Utterance
    segs: list[Segment]
    frames: npt.NDArray[np.int64]
    openness: npt.NDArray[np.float32]

    def labels_10ms(self) -> npt.NDArray[np.int64]:
        """The viseme at the middle of each 10 ms step (what the classifier learns)."""
        return label_grid(self.segs, self.utt.duration, 0.01)


def label(utt: Utterance) -> Labelled:
    """Attach the truth to an utterance."""
    segs = segments(utt.phones, utt.table)
    frames, openness = frame_truth(segs, utt.duration)
    return Labelled(utt, segs, frames, openness)


def pad(utt: Utterance, before: float, after: float) -> Utterance:
    """The utterance with silence added before and after (phone times shifted)."""
    a = round(before * utt.rate)
    b = round(after * utt.rate)
    audio = np.concatenate([np.zeros(a, np.int16), utt.audio, np.zeros(b, np.int16)])
    shift = a / utt.rate
    phones = [Phone(p.symbol, p.start + shift, p.end + shift) for p in utt.phones]
    return replace(utt, audio=audio, phones=phones)


def concat(utts: Sequence[Utterance], gaps: Sequence[float]) -> Utterance:
    """Utterances of one rate and source joined with ``gaps`` seconds of silence between them."""
    first = utts[0]
    pieces: list[npt.NDArray[np.int16]] = []
    phones: list[Phone] = []
    at = 0
    for i, u in enumerate(utts):
        if u.rate != first.rate or u.source != first.source:
            raise ValueError("concat needs one rate and one source")
        shift = at / u.rate
        phones += [Phone(p.symbol, p.start + shift, p.end + shift) for p in u.phones]
        pieces.append(u.audio)
        at += len(u.audio)
        if i < len(gaps):
            gap = np.zeros(round(gaps[i] * u.rate), np.int16)
            pieces.append(gap)
            at += len(gap)
    text = " ".join(u.text for u in utts)
    return replace(first, audio=np.concatenate(pieces), phones=phones, text=text)


def espeak_eval_voice(i: int) -> tuple[str, int, int]:
    """The i-th evaluation voice: (espeak voice name, rate in wpm, pitch)."""
    lang = ESPEAK_EVAL_LANGS[i % len(ESPEAK_EVAL_LANGS)]
    variant = ESPEAK_EVAL_VARIANTS[i % len(ESPEAK_EVAL_VARIANTS)]
    rate = (150, 165, 180, 195)[(i // 3) % 4]
    pitch = (40, 50, 60)[(i // 2) % 3]
    return f"{lang}+{variant}", rate, pitch


def espeak_eval(count: int | None = None) -> list[Labelled]:
    """The held-out espeak set: each held-out sentence by one held-out voice."""
    es = Espeak.get()
    texts = corpus.HELD_OUT[: count or len(corpus.HELD_OUT)]
    out = []
    for i, text in enumerate(texts):
        voice, rate, pitch = espeak_eval_voice(i)
        utt = es.synthesize(text, voice, rate=rate, pitch=pitch)
        out.append(label(pad(utt, PAD_SECONDS, PAD_SECONDS)))
    return out


def festival_eval(voice: str = "kal", count: int | None = None) -> list[Labelled]:
    """The held-out festival set: each held-out sentence by ``voice``."""
    texts = corpus.HELD_OUT[: count or len(corpus.HELD_OUT)]
    return [label(pad(u, PAD_SECONDS, PAD_SECONDS)) for u in festival_batch(texts, voice)]


def espeak_train(count: int, seed: int, lexicon: list[str] | None = None) -> list[Labelled]:
    """``count`` training utterances from random training voices, rates and pitches (1-3 sentences each)."""
    rng = random.Random(seed)
    es = Espeak.get()
    texts = corpus.training_texts(3 * count, seed, lexicon)
    out = []
    for i in range(count):
        voice = f"{rng.choice(ESPEAK_TRAIN_LANGS)}+{rng.choice(ESPEAK_TRAIN_VARIANTS)}"
        rate, pitch, spread = rng.randint(125, 235), rng.randint(20, 80), rng.randint(20, 90)
        parts = [es.synthesize(t, voice, rate, pitch, spread) for t in texts[3 * i : 3 * i + rng.randint(1, 3)]]
        utt = concat(parts, [rng.uniform(0.05, 0.6) for _ in parts[1:]])
        try:
            out.append(label(pad(utt, rng.uniform(0.0, 0.5), rng.uniform(0.0, 0.5))))
        except KeyError as e:  # a phoneme the table does not know (a foreign word): leave it out
            print(f"espeak_train: skipped {utt.text!r} ({voice}): unknown phoneme {e}", file=sys.stderr)
    return out


def festival_train(voice: str, count: int, seed: int, lexicon: list[str] | None = None) -> list[Labelled]:
    """``count`` training utterances from one festival voice at random paces."""
    if voice in FESTIVAL_EVAL_VOICES:
        raise ValueError(f"{voice} is an evaluation voice")
    rng = random.Random(seed)
    lang = FESTIVAL_VOICES[voice][2]
    texts = (
        corpus.training_texts(2 * count, seed, lexicon) if lang == "en" else corpus.foreign_texts(lang, 2 * count, seed)
    )
    stretch = [rng.uniform(0.8, 1.35) for _ in texts]
    utts = festival_batch(texts, voice, stretch)
    out = []
    for i in range(count):
        parts = utts[2 * i : 2 * i + rng.randint(1, 2)]
        utt = concat(parts, [rng.uniform(0.05, 0.5) for _ in parts[1:]])
        try:
            out.append(label(pad(utt, rng.uniform(0.0, 0.4), rng.uniform(0.0, 0.4))))
        except KeyError as e:
            print(f"festival_train: skipped {utt.text!r} ({voice}): unknown phone {e}", file=sys.stderr)
    return out


__all__ = [
    "ESPEAK_EVAL_VARIANTS",
    "ESPEAK_TRAIN_VARIANTS",
    "Labelled",
    "concat",
    "espeak_eval",
    "espeak_train",
    "festival_available",
    "festival_eval",
    "festival_train",
    "label",
    "pad",
]
