"""Which voices and texts train, which are held out, and how utterances are built and labelled.

The split is by voice and by text:

- espeak-ng: a voice is a language (accent) plus a variant (timbre). Evaluation variants never
  occur in training, and two of the four evaluation accents (``en-us-nyc``, ``en-gb-scotland``)
  never do either.
- festival: ``kal`` (the evaluation voice named by the issue) is never used in training; ``ked``
  and ``slt`` are.
- flite: the clustergen voices ``awb`` and ``slt`` train; ``rms`` is held out; ``kal16`` is
  festival's ``kal`` again and never trains.
- Kokoro (neural): the style vectors ``jf_alpha``, ``jf_gongitsune``, ``jf_tebukuro`` and blends of
  them train; ``jf_nezumi`` and ``jm_kumo`` (the only man) are held out.
- Piper (neural): its one voice, ``joe``, trains and also speaks the held-out sentences. Its figures
  are a voice's on new text, except in leave-one-family-out, where the neural fold never heard it.
- texts: evaluation speaks :data:`corpus.HELD_OUT`, hand-written sentences, split in a development
  half (``dev``: the first 20, for tuning) and a report half (``test``: the other 40, reported);
  training speaks generated ones (:func:`corpus.training_texts`), which exclude them.

Families: every source belongs to one synthesizer family (:data:`FAMILIES`). The headline figure
is leave-one-family-out: a model trained without a family, scored on that family's voices.

Evaluation utterances are scored as synthesized: no silence is added before or after them.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from . import corpus
from .synth import FESTIVAL_VOICES, Espeak, Flite, Utterance, festival_available, festival_batch
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
FLITE_TRAIN_VOICES = ("awb", "slt")
FLITE_EVAL_VOICES = ("rms",)
KOKORO_TRAIN_VOICES = ("jf_alpha", "jf_gongitsune", "jf_tebukuro")
KOKORO_EVAL_VOICES = ("jf_nezumi", "jm_kumo")

#: Synthesizer families: how each (source, voice) was made.
#: formant: espeak-ng; concatenative: diphone and unit-selection voices from recordings (festival's
#: diphone voices, its Russian clunits voice); parametric: statistical parametric voices built from
#: studio recordings (festival's HTS voices, flite's clustergen voices); neural: Kokoro-82M.
FAMILIES = ("formant", "concatenative", "parametric", "neural")
_PARAMETRIC_FESTIVAL = ("slt", "ona")


def family(source: str, voice: str) -> str:
    """The synthesizer family of an utterance's source and voice."""
    if source == "espeak":
        return "formant"
    if source in ("kokoro", "piper"):
        return "neural"
    if source == "flite":
        return "concatenative" if voice.startswith("kal") else "parametric"
    return "parametric" if voice in _PARAMETRIC_FESTIVAL else "concatenative"


def texts_of(split: str, count: int | None = None) -> tuple[str, ...]:
    """The held-out sentences of a split: ``dev`` (tuning), ``test`` (reported) or ``all``."""
    chosen = {"dev": corpus.HELD_OUT[:20], "test": corpus.HELD_OUT[20:], "all": corpus.HELD_OUT}[split]
    return chosen[: count or len(chosen)]


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


def load(path: pathlib.Path) -> Any:
    """What :func:`store` wrote to ``path``."""
    with path.open("rb") as f:
        return pickle.load(f)


def store(path: pathlib.Path, obj: object) -> None:
    """Pickle ``obj`` to ``path`` through a temporary file, so a run cut short leaves no truncated cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


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


def espeak_eval(count: int | None = None, split: str = "test") -> list[Labelled]:
    """The held-out espeak set: each held-out sentence by one held-out voice."""
    es = Espeak.get()
    offset = 0 if split in ("dev", "all") else 20  # the same sentence gets the same voice in every split
    out = []
    for i, text in enumerate(texts_of(split, count)):
        voice, rate, pitch = espeak_eval_voice(i + offset)
        out.append(label(es.synthesize(text, voice, rate=rate, pitch=pitch)))
    return out


def festival_eval(voice: str = "kal", count: int | None = None, split: str = "test") -> list[Labelled]:
    """A held-out festival set: each held-out sentence by ``voice``."""
    return [label(u) for u in festival_batch(texts_of(split, count), voice)]


def flite_eval(voice: str = "rms", count: int | None = None, split: str = "test") -> list[Labelled]:
    """A held-out flite set: each held-out sentence by ``voice`` at its own pace."""
    fl = Flite.get()
    return [label(fl.synthesize(text, voice)) for text in texts_of(split, count)]


def kokoro_eval(count: int | None = None, split: str = "test") -> list[Labelled]:
    """The held-out neural set: the held-out sentences alternately by the held-out Kokoro voices."""
    from .neural import Kokoro

    ko = Kokoro.get()
    out = []
    for i, text in enumerate(texts_of(split, count)):
        voice = KOKORO_EVAL_VOICES[i % len(KOKORO_EVAL_VOICES)]
        out.append(label(ko.synthesize(text, voice, speed=(0.95, 1.0, 1.1)[i % 3])))
    return out


def piper_eval(count: int | None = None, split: str = "test", trim: bool = True) -> list[Labelled]:
    """The held-out sentences by Piper's ``joe`` (a training voice: only the text is new)."""
    from .neural import Piper

    pi = Piper.get()
    out = []
    for i, text in enumerate(texts_of(split, count)):
        out.append(label(pi.synthesize(text, speed=(0.95, 1.0, 1.1)[i % 3], seed=i, trim=trim)))
    return out


def flite_train(voice: str, count: int, seed: int, lexicon: list[str] | None = None) -> list[Labelled]:
    """``count`` training utterances from one flite voice at random paces and pitches."""
    if voice in FLITE_EVAL_VOICES or voice.startswith("kal"):
        raise ValueError(f"{voice} is an evaluation voice")
    rng = random.Random(seed)
    fl = Flite.get()
    texts = corpus.training_texts(2 * count, seed, lexicon)
    out = []
    for i in range(count):
        parts = [
            fl.synthesize(t, voice, rng.uniform(0.8, 1.3), rng.uniform(90, 220) if rng.random() < 0.5 else None)
            for t in texts[2 * i : 2 * i + rng.randint(1, 2)]
        ]
        utt = concat(parts, [rng.uniform(0.05, 0.5) for _ in parts[1:]])
        try:
            out.append(label(pad(utt, rng.uniform(0.0, 0.4), rng.uniform(0.0, 0.4))))
        except KeyError as e:
            print(f"flite_train: skipped {utt.text!r} ({voice}): unknown phone {e}", file=sys.stderr)
    return out


def kokoro_train(
    count: int, seed: int, lexicon: list[str] | None = None, part: tuple[int, int] = (0, 1)
) -> list[Labelled]:
    """``count`` training utterances from the training Kokoro voices and blends of two of them.

    ``part=(i, n)``: only the ``i``-th of ``n`` consecutive blocks of them, so that ``n`` processes
    can share the work; the blocks in order are the whole, the same utterances as one process
    makes (every draw is made first, and a text Kokoro refuses is found without running it).
    """
    from .neural import Kokoro

    index, parts = part
    if not 0 <= index < parts:
        raise ValueError(f"part {index} of {parts}")
    rng = random.Random(seed)
    ko = Kokoro.get()
    plan: list[tuple[str, str, float, float, float]] = []  # text, voice, speed, silence before, after
    for text in corpus.training_texts(count, seed, lexicon):
        a, b = rng.sample(KOKORO_TRAIN_VOICES, 2)
        voice = a if rng.random() < 0.4 else f"{a}+{b}@{rng.uniform(0.2, 0.8):.2f}"
        speed = rng.uniform(0.8, 1.25)
        try:
            ko.tokens(text)
        except (KeyError, ValueError) as e:
            if index == 0:
                print(f"kokoro_train: skipped {text!r} ({voice}): {e}", file=sys.stderr)
            continue
        plan.append((text, voice, speed, rng.uniform(0.0, 0.3), rng.uniform(0.0, 0.3)))
    lo, hi = len(plan) * index // parts, len(plan) * (index + 1) // parts
    return [
        label(pad(ko.synthesize(text, voice, speed=speed), before, after))
        for text, voice, speed, before, after in plan[lo:hi]
    ]


def piper_train(count: int, seed: int, lexicon: list[str] | None = None) -> list[Labelled]:
    """``count`` training utterances from Piper's ``joe`` at random paces and sampling noise."""
    from .neural import Piper

    rng = random.Random(seed)
    pi = Piper.get()
    out = []
    for text in corpus.training_texts(count, seed, lexicon):
        speed, noise, noise_w = rng.uniform(0.8, 1.25), rng.uniform(0.4, 0.9), rng.uniform(0.5, 1.0)
        try:
            utt = pi.synthesize(text, speed, noise, noise_w, seed=rng.randrange(2**31))
            out.append(label(pad(utt, rng.uniform(0.0, 0.3), rng.uniform(0.0, 0.3))))
        except (KeyError, ValueError) as e:
            print(f"piper_train: skipped {text!r}: {e}", file=sys.stderr)
    return out


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
    "FAMILIES",
    "Labelled",
    "concat",
    "espeak_eval",
    "espeak_train",
    "family",
    "festival_available",
    "festival_eval",
    "festival_train",
    "flite_eval",
    "flite_train",
    "kokoro_eval",
    "kokoro_train",
    "label",
    "pad",
    "piper_eval",
    "piper_train",
    "texts_of",
]
