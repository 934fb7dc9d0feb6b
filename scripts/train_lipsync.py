"""Train the engine's viseme classifier on speech this script synthesizes; write the shipped weights.

    python scripts/train_lipsync.py                      # full run (2 cores: 27 min of data once, then 17 min)
    python scripts/train_lipsync.py --quick              # a small smoke run (a minute)
    python scripts/train_lipsync.py --out /tmp/m.npz     # somewhere else than the package

Needs: the installed package (features come from the C++ engine itself, so training and inference
see identical inputs), numpy and scipy, the ``espeakng-loader`` wheel, and festival with the
``festvox-kdlpc16k`` and ``festvox-us-slt-hts`` voices (Debian). The evaluation voices (festival's
``kal``, espeak's held-out variants) and the held-out sentences are never used here: see
``bench/lipsync/dataset.py`` for the split and ``docs/lipsync.md`` for the method.

Steps: synthesize utterances with known phone timing (cached under ``--data``); augment each one
(speed/vocal-tract perturbation, resampling to a random supported rate, microphone tilt, reverb,
noise, level), compute the engine's log-mel features, the senone scores of the shipped acoustic
model (pocketsphinx's, trained on recorded speech) and 10 ms viseme labels, on every core; train the
network (per-frame projection, splice at context offsets, ReLU layers (two unless ``--layers``),
softmax over 15 visemes) with Adam in numpy; write float16 weights to an ``.npz`` the engine loads.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import pathlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# One BLAS thread: the small matrices here gain nothing from threads, and on a shared machine
# threads that spin while waiting for a core make training several times slower.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt
from scipy import signal
from tqdm import tqdm

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from lipsync import corpus, dataset, neural, sounds  # noqa: E402
from lipsync.dataset import Labelled  # noqa: E402
from lipsync.synth import Flite  # noqa: E402
from lipsync.visemes import PHONES, PP, SIL, VISEMES, Segment, label_grid, phone_grid  # noqa: E402

from avatarkit._core import engine  # noqa: E402
from avatarkit.engine import ACOUSTIC_MODEL_PATH, RECURRENT_KEYS, load_acoustic_model  # noqa: E402

F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]

# Context offsets (10 ms feature frames) the classifier sees around each frame; ``--future N`` keeps
# those up to +N, trading accuracy for look-ahead (the engine waits for the last one's audio).
OFFSETS = (-24, -19, -15, -12, -9, -7, -5, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6)
RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
RATE_WEIGHTS = (0.1, 0.3, 0.15, 0.15, 0.05, 0.1, 0.15)
SILENCE = float(np.log(1e-10))  # the engine's log floor (kPowerFloor)
ACOUSTIC_FLOOR = -40.0  # the floor of the engine's senone log-posteriors (kAcousticFloor)
LABELS_VERSION = 2  # bump when the labelling changes: the synthesis cache is keyed on it


@dataclass
class Config:
    espeak: int = 1600
    festival: int = 700  # per English training voice
    foreign: int = 250  # per non-English training voice (skipped when not installed)
    flite: int = 500  # per flite training voice (skipped when not installed)
    kokoro: int = 700  # Kokoro utterances over its training voices (skipped when not installed)
    piper: int = 500  # Piper joe utterances (skipped when not installed)
    hindi: int = 0  # festival's Hindi diphone voice nsk (festvox-hi-nsk; tried, off: docs/lipsync.md)
    not_speech: float = 0.08  # non-speech clips (tones, music, noise) per speech utterance, labelled silence
    # Share of augmented copies with music or noise 0-20 dB under the speech (0-0.65): the rest get
    # faint noise (35 %) or none. About a fifth of the first copies are not augmented at all.
    background: float = 0.25
    copies: int = 1  # augmented copies of each utterance
    projection: int = 48
    hidden: int = 256
    layers: int = 2  # hidden layers
    epochs: int = 10
    batch: int = 2048  # frames per step
    run: int = 64  # consecutive frames per run in a batch
    lr: float = 2e-3
    dropout: float = 0.1
    seed: int = 1  # the data: synthesis, the dev split, augmentation
    train_seed: int | None = None  # initialisation and batch order (None: seed)
    offsets: tuple[int, ...] = OFFSETS
    # Per-stream normalisation (engine.normalize_stream): [prior_frames, memory_frames, gate_db,
    # floor_db], or () for none.
    stream: tuple[float, ...] = (30.0, 300.0, 20.0, -75.0)
    warp: float = 0.0  # feature augmentation: mel-axis shift of up to this many bands
    # Whether the network also reads the senone scores of the shipped acoustic model (pocketsphinx's,
    # trained on recorded speech: engine.acoustic_features), besides the log-mel frames.
    acoustic: bool = True
    # Whether those scores come from a causal scorer (engine.acoustic_features(..., causal=True)):
    # each frame's own row at once, with its deltas taken from the frames before, instead of the row
    # of the frame ACOUSTIC_LAG earlier. For a model without look-ahead.
    acoustic_causal: bool = False
    # Feature augmentation of the acoustic rows: this share of the runs in a batch have their senone
    # posteriors flattened (log-posteriors times a temperature drawn from 0 to 1, renormalised), as
    # the acoustic model is unsure of a voice unlike its training speech.
    acoustic_blur: float = 0.0
    # Feature-statistics mixing (MixStyle, Zhou et al., ICLR 2021) at the projection layer: in this
    # share of the runs of a batch, each projected channel's mean and deviation over the run are
    # mixed with another run's (weight ~ Beta(0.1, 0.1)), so the layers above see a voice's
    # phones with another voice's statistics. Training only: the engine does not change.
    mixstyle: float = 0.0
    # Family balance: each epoch draws a family's runs in proportion to its frames to the power
    # 1 - balance (0: as they come; 1: every synthesizer family the same share), the epoch's length
    # and the not-speech clips' share unchanged, so no one family's voices dominate what the network
    # learns of speech.
    balance: float = 0.0
    # Boundary-tolerant loss: a frame's target is any viseme labelled within this many 10 ms frames of
    # it (in its run); the loss is -log of their summed probability. Synthesizers' phone timings are
    # off by a frame or two, and the metric forgives 40 ms. 0: cross-entropy on the frame's label.
    tolerance: int = 0
    # A second softmax on the last hidden layer over phone classes (``visemes.PHONES``: voicing,
    # nasal against stop, glides, /h/, the vowels), with this weight beside the visemes' loss, on
    # the frames of the English voices; training only: the engine reads the viseme output. 0: none.
    phones: float = 0.0
    # Output heads: head d is trained on the label d frames (10 ms) before the frame whose context
    # ends at offset 0, so that it reads that frame with d frames of audio after it. For a causal
    # (low-latency) model: the engine gives each subframe of a 40 ms frame the head that uses the
    # rest of the frame's audio, which has arrived when the frame is emitted (no added look-ahead).
    heads: int = 1
    # Distillation: with a teacher (``--teacher``, a model this script wrote, usually the standard
    # engine's, which reads 60 ms ahead), each head's target is this share of the teacher's softmax
    # for the frame it reads and the rest the label (one-hot, or the tolerated set). 0: labels only.
    distill: float = 0.0
    # A recurrent layer (GRU) of this many units between the splice and the dense layers (0: none).
    # Trained on runs after ``warmup`` frames whose labels are not scored (the state starts at zero at
    # each run's first frame; before an utterance those frames are its leading silence, and a session
    # starts from the state that silence leaves, ``recurrent_initial`` in the file); the recipe splices
    # the newest frame alone (``--offsets=0``): the state carries the past.
    recurrent: int = 0
    warmup: int = 32
    # Domain-adversarial training (Ganin et al., JMLR 2016): a small network on the last hidden
    # layer learns which training voice (or family: ``adversary_over``) spoke each speech frame, and its
    # gradient reaches the layers below reversed and times this weight (ramped up from 0 over the
    # training as 2 / (1 + exp(-10 progress)) - 1), so they learn what does not tell the voices
    # apart. Training only (the engine reads the viseme output); recurrent models. 0: none.
    adversary: float = 0.0
    adversary_over: str = "voice"  # what the adversary tells apart: "voice" or "family" (synthesizer family)


# ------------------------------------------------------------------------------------------- data


def _load(path: pathlib.Path) -> list[Labelled]:
    return list(dataset.load(path))


def _cached(path: pathlib.Path, make: Callable[[], list[Labelled]]) -> list[Labelled]:
    if path.is_file():
        return _load(path)
    t0 = time.time()
    items = make()
    print(
        f"{path.stem}: {len(items)} utterances, {sum(u.utt.duration for u in items) / 60:.1f} min "
        f"({time.time() - t0:.0f} s)",
        flush=True,
    )
    dataset.store(path, items)
    return items


def _synthesize_source(source: tuple[pathlib.Path, Callable[[], list[Labelled]]]) -> None:
    """Synthesize one source into its cache file (a worker of :func:`synthesize`)."""
    _cached(*source)


def synthesize(
    cfg: Config, cache: pathlib.Path, exclude: frozenset[str] = frozenset(), jobs: int = 1
) -> list[Labelled]:
    """Training utterances from every installed synthesizer's training voices (cached per source).

    ``exclude`` names synthesizer families (``dataset.FAMILIES``) to leave out (leave-one-family-out).
    Sources not yet cached are synthesized ``jobs`` at a time, in worker processes: each source
    draws from its own seeded generator, so the utterances do not depend on ``jobs``. Kokoro's,
    by far the longest, is shared out in ``jobs`` blocks that go first.
    """
    lexicon = corpus.lexicon_words()
    sources: list[tuple[pathlib.Path, Callable[[], list[Labelled]]]] = []
    if "formant" not in exclude:
        make = functools.partial(dataset.espeak_train, cfg.espeak, cfg.seed, lexicon)
        sources.append((cache / f"espeak-{cfg.espeak}-s{cfg.seed}-v{LABELS_VERSION}.pkl", make))
    voices = [(v, cfg.festival) for v in dataset.FESTIVAL_TRAIN_VOICES]
    voices += [
        (v, cfg.foreign) for v in dataset.FESTIVAL_FOREIGN_VOICES if cfg.foreign and dataset.festival_available(v)
    ]
    for i, (voice, count) in enumerate(voices):
        if dataset.family("festival", voice) in exclude:
            continue
        make = functools.partial(dataset.festival_train, voice, count, cfg.seed * 100 + i, lexicon)
        sources.append((cache / f"festival-{voice}-{count}-s{cfg.seed}-v{LABELS_VERSION}.pkl", make))
    for i, voice in enumerate(dataset.FLITE_TRAIN_VOICES):
        if cfg.flite and "parametric" not in exclude and Flite.available(voice):
            make = functools.partial(dataset.flite_train, voice, cfg.flite, cfg.seed * 200 + i, lexicon)
            sources.append((cache / f"flite-{voice}-{cfg.flite}-s{cfg.seed}-v{LABELS_VERSION}.pkl", make))
    kokoro: pathlib.Path | None = None
    if cfg.kokoro and "neural" not in exclude and neural.available():
        make = functools.partial(dataset.kokoro_train, cfg.kokoro, cfg.seed * 300, lexicon)
        kokoro = cache / f"kokoro-{cfg.kokoro}-s{cfg.seed}-v{LABELS_VERSION}.{neural.LABELS_VERSION}.pkl"
        sources.append((kokoro, make))
    if cfg.piper and "neural" not in exclude and neural.piper_available():
        make = functools.partial(dataset.piper_train, cfg.piper, cfg.seed * 400, lexicon)
        sources.append((cache / f"piper-{cfg.piper}-s{cfg.seed}-v{LABELS_VERSION}.pkl", make))
    if cfg.hindi and "concatenative" not in exclude and dataset.festival_available("nsk"):
        make = functools.partial(dataset.festival_train, "nsk", cfg.hindi, cfg.seed * 100 + 50, lexicon)
        sources.append((cache / f"festival-nsk-{cfg.hindi}-s{cfg.seed}-v{LABELS_VERSION}.pkl", make))

    tasks = [(path, make) for path, make in sources if not path.is_file()]
    parts: list[pathlib.Path] = []
    if jobs > 1 and kokoro is not None and not kokoro.is_file():
        # The slowest source by far: shared out in consecutive blocks that go first, joined in
        # order below (the same utterances as one task).
        make = next(make for path, make in tasks if path == kokoro)
        parts = [kokoro.with_name(f"{kokoro.stem}-part{i + 1}of{jobs}.pkl") for i in range(jobs)]
        blocks = [(part, functools.partial(make, part=(i, jobs))) for i, part in enumerate(parts)]
        tasks = blocks + [task for task in tasks if task[0] != kokoro]
    if jobs > 1 and len(tasks) > 1:
        if parts:
            neural.kokoro_model()  # assembled here, once: workers that each found it missing would race
        # Each worker writes its task's cache file; this process reads them all back below. A source
        # that fails is reported at once and the others go on (their caches are kept for the next
        # run); then the first failure is raised.
        context = multiprocessing.get_context("fork")
        failures: list[BaseException] = []
        with concurrent.futures.ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=context) as pool:
            running = {pool.submit(_synthesize_source, task): task[0] for task in tasks}
            for done in concurrent.futures.as_completed(running):
                if (error := done.exception()) is not None:
                    print(f"{running[done].name}: failed: {error!r}", file=sys.stderr, flush=True)
                    failures.append(error)
        if failures:
            raise failures[0]
    if kokoro is not None and parts:
        _cached(kokoro, lambda: [item for part in parts for item in _load(part)])
        for part in parts:
            part.unlink()
    out: list[Labelled] = []
    for path, make in sources:
        out += _cached(path, make)
    return out


def _rir(rng: np.random.Generator, rate: int) -> F32:
    rt60 = rng.uniform(0.15, 0.5)
    n = int(rt60 * rate)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[: int(0.005 * rate)] = 0.0
    rir = tail / np.sqrt((tail**2).sum()) * rng.uniform(0.15, 0.5)
    rir[0] = 1.0
    return rir.astype(np.float32)


def augment(
    item: Labelled, rng: np.random.Generator, background: float = Config.background
) -> tuple[F32, int, list[Segment], float]:
    """A perturbed copy: (float samples, rate, segments on the new time axis, duration).

    Speed (which also moves pitch and formants, like another vocal tract), a random supported
    rate, microphone tilt, a room, a speech level from -50 to -3 dBFS, background (music or noise
    0-20 dB under the speech in a ``background`` share of copies, or faint noise), and now and
    then clipping, the telephone band or a lossy codec round trip (Opus or MP3).
    """
    utt = item.utt
    x = utt.audio.astype(np.float32) / 32768.0
    speed = rng.uniform(0.88, 1.12) if rng.random() < 0.7 else 1.0
    rate = int(rng.choice(RATES, p=RATE_WEIGHTS))
    # One polyphase resampling does both: new length = len * (rate / utt.rate) / speed.
    ratio = rate / utt.rate / speed
    up, down = _fraction(ratio)
    if (up, down) != (1, 1):
        x = signal.resample_poly(x, up, down).astype(np.float32)
    if rng.random() < 0.5:  # microphone tilt
        a = rng.uniform(-0.6, 0.9)
        x = signal.lfilter([1.0, -a], [1.0], x).astype(np.float32)
    if rng.random() < 0.15:  # a peaking EQ band: a resonant or dull microphone or room
        hz = float(np.exp(rng.uniform(np.log(200), np.log(min(6000, 0.4 * rate)))))
        b, a2 = _peaking(hz, rng.uniform(-12, 12), rng.uniform(0.5, 2.0), rate)
        x = signal.lfilter(b, a2, x).astype(np.float32)
    if rng.random() < 0.3:  # a room
        x = signal.fftconvolve(x, _rir(rng, rate))[: len(x)].astype(np.float32)
    level = rng.uniform(-50.0, -3.0)
    x = sounds.at_level(x, level)
    r = rng.random()
    if r < background:  # music or noise under the speech
        x = x + sounds.background(rng, rate, len(x), level - rng.uniform(0.0, 20.0))
    elif r < background + 0.35:  # faint noise: white or pink, 10-45 dB below the speech
        noise = rng.standard_normal(len(x)).astype(np.float32)
        if rng.random() < 0.5:
            noise = signal.lfilter([1.0], [1.0, -0.95], noise).astype(np.float32)
        noise *= 10 ** ((level - rng.uniform(10.0, 45.0)) / 20) / float(noise.std() + 1e-9)
        x = x + noise
    if rng.random() < 0.05:
        x = sounds.clip(x, rng.uniform(6.0, 30.0))
    if rng.random() < 0.05:
        x = sounds.telephone(x, rate)
    if rng.random() < 0.06:
        codec = "opus" if rng.random() < 0.6 else "mp3"
        x = sounds.codec_roundtrip(x, rate, codec, int(rng.choice([16000, 24000, 32000, 48000])))[0]
    x = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.float32) / 32768.0
    scale = 1.0 / speed
    segs = [Segment(s.viseme, s.start * scale, s.end * scale, s.phone) for s in item.segs]
    return x, rate, segs, len(x) / rate


def _peaking(hz: float, gain_db: float, q: float, rate: int) -> tuple[F32, F32]:
    """RBJ peaking-EQ biquad coefficients."""
    a = 10 ** (gain_db / 40)
    w = 2 * math.pi * hz / rate
    alpha = math.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * math.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * math.cos(w), 1 - alpha / a])
    return (b / den[0]).astype(np.float32), (den / den[0]).astype(np.float32)


def _fraction(ratio: float) -> tuple[int, int]:
    up, down = round(ratio * 1000), 1000
    g = math.gcd(up, down)
    return up // g, down // g


def source_name(item: Labelled) -> str:
    """What the dev accuracy is reported by: the synthesizer (espeak, kokoro) or the voice."""
    return item.utt.source if item.utt.source in ("espeak", "kokoro") else f"{item.utt.source}:{item.utt.voice}"


Clip = tuple[F32, npt.NDArray[np.float16], I8, str, str, I8]
_ITEMS: list[Labelled] = []  # what featurize()'s worker processes read (inherited when they fork)
_CAUSAL = False  # whether featurize()'s acoustic rows are causal ones (inherited the same way)


def _features_of(
    x: F32,
    rate: int,
    lab: npt.NDArray[np.int64] | None,
    source: str,
    family: str,
    phones: npt.NDArray[np.int64] | None = None,
) -> Clip:
    """Features, acoustic rows, viseme labels, source, family, phone labels (-1: none) of a clip.

    Without viseme labels the clip is silence throughout (viseme and phone); labels without phone
    labels have no phone target (-1).
    """
    f = engine.log_mel(x, rate)
    if lab is None:
        lab = phones = np.zeros(len(f), np.int64)
    elif phones is None:
        phones = np.full(len(lab), -1, np.int64)
    n = min(len(f), len(lab), len(phones))
    rows = engine.acoustic_features(x, rate, load_acoustic_model(), causal=_CAUSAL)[:n].astype(np.float16)
    return f[:n], rows, lab[:n].astype(np.int8), source, family, phones[:n].astype(np.int8)


def _speech_clip(task: tuple[int, int, int, float]) -> Clip:
    """Copy ``copy`` of utterance ``index``: clean now and then, else augmented (its own random draws)."""
    index, copy, seed, background = task
    item = _ITEMS[index]
    rng = np.random.default_rng([seed, 0, index, copy])
    if copy == 0 and rng.random() < 0.2:  # some clean copies at their own rate
        x, rate, segs, dur = item.utt.audio.astype(np.float32) / 32768.0, item.utt.rate, item.segs, item.utt.duration
    else:
        x, rate, segs, dur = augment(item, rng, background)
    lab = label_grid(segs, dur, 0.01)
    phones = phone_grid(segs, item.utt.table, dur, 0.01)
    return _features_of(x, rate, lab, source_name(item), dataset.family(item.utt.source, item.utt.voice), phones)


def _not_speech_clip(task: tuple[int, int]) -> Clip:
    """Not-speech clip ``index``: tones, beeps, hum, noise or music-like sound, labelled silence."""
    index, seed = task
    rng = np.random.default_rng([seed, 1, index])
    rate = int(rng.choice(RATES, p=RATE_WEIGHTS))
    x = sounds.not_speech(rng, rate, rng.uniform(1.0, 6.0))
    if rng.random() < 0.3:  # with silence around it
        x = np.concatenate([np.zeros(int(rng.uniform(0, 0.5) * rate), np.float32), x,
                            np.zeros(int(rng.uniform(0, 0.5) * rate), np.float32)])  # fmt: skip
    if rng.random() < 0.05:
        x = sounds.codec_roundtrip(x, rate, "opus", 24000)[0]
    x = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.float32) / 32768.0
    return _features_of(x, rate, None, "not speech", "not speech")


def featurize(
    items: list[Labelled],
    copies: int,
    seed: int,
    not_speech: float = 0.0,
    background: float = Config.background,
    jobs: int = 1,
    causal: bool = False,
) -> tuple[list[F32], list[npt.NDArray[np.float16]], list[npt.NDArray[np.int8]], list[str], list[str], list[I8]]:
    """Log-mel features, acoustic rows, 10 ms labels, source names, families, phone labels of copies.

    The phone labels are ``visemes.phone_grid``'s, at 10 ms (-1 for the voices without phone classes).
    The acoustic rows are the shipped acoustic model's senone scores of the same audio
    (``engine.acoustic_features``, the causal ones with ``causal``; float16 to halve the cache).
    ``not_speech`` clips (tones, beeps, hum, noise, music-like sound) per utterance are added,
    labelled silence throughout, with family ``"not speech"``. Every clip draws from its own random
    sequence, so the result does not depend on ``jobs`` (worker processes).
    """
    global _ITEMS, _CAUSAL
    _ITEMS, _CAUSAL = items, causal
    speech = [(i, c, seed, background) for i in range(len(items)) for c in range(copies)]
    other = [(i, seed) for i in range(round(not_speech * len(items)))]
    clips = []
    with contextlib.ExitStack() as stack:
        mapper: Callable[..., Any] = map
        if jobs > 1:
            context = multiprocessing.get_context("fork")
            pool = stack.enter_context(concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context))
            mapper = functools.partial(pool.map, chunksize=8)
        for clip in tqdm(itertools.chain(mapper(_speech_clip, speech), mapper(_not_speech_clip, other)),
                         total=len(speech) + len(other), desc="features", unit="clip", mininterval=5):  # fmt: skip
            clips.append(clip)
    _ITEMS, _CAUSAL = [], False
    feats, rows, labels, sources, families, phones = (list(column) for column in zip(*clips, strict=True))
    return feats, rows, labels, sources, families, phones


# ------------------------------------------------------------------------------------------ model


class Net:
    """Projection per frame, splice at OFFSETS, ``cfg.layers`` ReLU layers, softmax; trained with Adam.

    A batch is S runs of consecutive frames (S x W x inputs: raw log-mel, then the acoustic rows
    when the model reads them; W = L + past + future): each frame is projected once and the
    projections are spliced for the L centre frames.
    """

    def __init__(
        self, cfg: Config, mean: F32, inv_std: F32, rng: np.random.Generator, stream: dict[str, Any] | None = None
    ) -> None:
        self.cfg = cfg
        self.mean, self.inv_std = mean, inv_std
        self.stream = stream or {}
        p, h, k, layers = cfg.projection, cfg.hidden, len(cfg.offsets), cfg.layers
        self.past, self.future = -cfg.offsets[0], cfg.offsets[-1]
        self.shift = np.array(cfg.offsets) + self.past

        def init(fan_in: int, fan_out: int) -> F32:
            return (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)

        # w1 ... w{layers} are the hidden layers, w{layers + 1} the output.
        self.params: dict[str, F32] = {"wp": init(len(mean), p), "bp": np.zeros(p, np.float32)}
        for i in range(1, layers + 1):
            self.params[f"w{i}"] = init(p * k if i == 1 else h, h)
            self.params[f"b{i}"] = np.zeros(h, np.float32)
        self.params[f"w{layers + 1}"] = init(h, len(VISEMES) * cfg.heads) * 0.1
        self.params[f"b{layers + 1}"] = np.zeros(len(VISEMES) * cfg.heads, np.float32)
        if cfg.phones > 0:  # the phone head (training only: save() leaves it out)
            self.params["wa"] = init(h, len(PHONES)) * 0.1
            self.params["ba"] = np.zeros(len(PHONES), np.float32)
        self.m = {n: np.zeros_like(v) for n, v in self.params.items()}
        self.v = {n: np.zeros_like(v) for n, v in self.params.items()}
        self.t = 0

    def forward(self, x: F32, train: bool, rng: np.random.Generator | None = None) -> tuple[F32, dict[str, F32]]:
        """Logits ((S * L) x 15 per head) for runs of raw feature frames ``x`` (S x W x inputs)."""
        p = self.params
        s, w, _ = x.shape
        n = w - self.past - self.future
        z = ((x - self.mean) * self.inv_std).reshape(s * w, -1)
        a0 = z @ p["wp"] + p["bp"]
        proj = np.maximum(a0, 0).reshape(s, w, -1)
        cache: dict[str, F32] = {}
        if train and rng is not None and self.cfg.mixstyle > 0:
            proj, cache["mix"] = mix_statistics(proj, rng, self.cfg.mixstyle)
        idx = np.arange(n)[:, None] + self.shift[None, :]  # L x K
        h = proj[:, idx, :].reshape(s * n, -1)
        cache.update(z=z, a0=a0, h0=h)
        return self.dense_forward(h, cache, train, rng)

    def dense_forward(
        self, h: F32, cache: dict[str, Any], train: bool, rng: np.random.Generator | None
    ) -> tuple[F32, dict[str, Any]]:
        """The ReLU layers (dropout when training) and the output layer on ``h0`` = ``h``; fills ``cache``."""
        p = self.params
        drop = self.cfg.dropout if train and rng is not None else 0.0
        layers = self.cfg.layers
        for i in range(1, layers + 1):
            a = h @ p[f"w{i}"] + p[f"b{i}"]
            h = np.maximum(a, 0)
            if drop > 0 and rng is not None:
                cache[f"m{i}"] = (rng.random(h.shape, dtype=np.float32) < 1 - drop).astype(np.float32) / (1 - drop)
                h = h * cache[f"m{i}"]
            cache[f"a{i}"], cache[f"h{i}"] = a, h
        return h @ p[f"w{layers + 1}"] + p[f"b{layers + 1}"], cache

    def dense_backward(self, dh: F32, c: dict[str, Any], g: dict[str, F32]) -> F32:
        """Backpropagate d loss / d (last hidden layer) ``dh`` through the ReLU layers into ``g``: d/d h0."""
        p = self.params
        for i in range(self.cfg.layers, 0, -1):
            if f"m{i}" in c:
                dh *= c[f"m{i}"]
            da = dh * (c[f"a{i}"] > 0)
            g[f"w{i}"], g[f"b{i}"] = c[f"h{i - 1}"].T @ da, da.sum(0)
            dh = da @ p[f"w{i}"].T
        return dh

    def step(
        self,
        x: F32,
        y: npt.NDArray[np.int64],
        weights: F32,
        lr: float,
        rng: np.random.Generator,
        phones: npt.NDArray[np.int64] | None = None,
        soft: F32 | None = None,
        voices: npt.NDArray[np.int64] | None = None,
    ) -> float:
        """One Adam step on a batch of runs; ``y`` labels the centre frames in order. Returns the loss.

        With several output heads (``cfg.heads``), ``y`` is heads x (S * L): row d labels what head
        d reads (``Runs.batch``); the loss is the mean of the heads' losses. With the phone head
        (``cfg.phones`` > 0) and ``phones`` (the centre frames' phone classes, -1 for none), the
        loss adds ``cfg.phones`` times the phone head's mean cross-entropy over the frames that
        have one. With ``soft`` (heads x (S * L) x 15, a teacher's probabilities for the frames
        ``y`` labels) and ``cfg.distill`` = a > 0, each head's loss is (1 - a) times the above plus
        a times the cross-entropy -sum(soft * log p), weighted by the label's weight alike.
        ``voices`` (the voice-adversarial head's targets) is for :class:`Gru` only.
        """
        if voices is not None:
            raise ValueError("the voice adversary needs a recurrent network")
        p = self.params
        s, w, _ = x.shape
        n = w - self.past - self.future
        all_logits, c = self.forward(x, True, rng)
        targets = y.reshape(self.cfg.heads, -1)
        v = len(VISEMES)
        loss = 0.0
        d = np.empty_like(all_logits)
        for head, yh in enumerate(targets):
            logits = all_logits[:, head * v : (head + 1) * v]
            logits = logits - logits.max(axis=1, keepdims=True)
            prob = np.exp(logits)
            prob /= prob.sum(axis=1, keepdims=True)
            wy = weights[yh]
            # -log of the probability of the allowed visemes A; d/d logits = p - q, with q the
            # softmax over A alone (one-hot on the label without tolerance)
            allowed = tolerated(yh, n, self.cfg.tolerance) > 0
            masked = np.where(allowed, logits, -np.inf)
            top = masked.max(axis=1, keepdims=True)
            q = np.exp(masked - top)
            sum_q = q.sum(axis=1, keepdims=True)
            q /= sum_q
            log_norm = np.log(np.exp(logits).sum(axis=1))
            log_allowed = (top + np.log(sum_q))[:, 0] - log_norm
            nll = -log_allowed
            a = self.cfg.distill if soft is not None else 0.0
            if a > 0 and soft is not None:
                # -sum(t log p) with t the teacher's distribution; d/d logits = p - t
                teacher = soft[head]
                nll = (1 - a) * nll - a * (teacher * (logits - log_norm[:, None])).sum(axis=1)
                q = (1 - a) * q + a * teacher
            loss += float((wy * nll).sum() / wy.sum()) / len(targets)
            d[:, head * v : (head + 1) * v] = (prob - q) * (wy / wy.sum() / len(targets))[:, None]
        layers = self.cfg.layers
        g: dict[str, F32] = {f"w{layers + 1}": c[f"h{layers}"].T @ d, f"b{layers + 1}": d.sum(0)}
        dh = d @ p[f"w{layers + 1}"].T
        if self.cfg.phones > 0 and phones is not None:
            valid = phones >= 0
            if valid.any():
                top_h = c[f"h{layers}"][valid]
                za = top_h @ p["wa"] + p["ba"]
                za -= za.max(axis=1, keepdims=True)
                qa = np.exp(za)
                qa /= qa.sum(axis=1, keepdims=True)
                target = phones[valid]
                rows = np.arange(len(target))
                scale = self.cfg.phones / len(target)
                loss += float(-scale * np.log(qa[rows, target]).sum())
                qa[rows, target] -= 1.0
                qa *= scale
                g["wa"], g["ba"] = top_h.T @ qa, qa.sum(0)
                dh[valid] += qa @ p["wa"].T
            else:
                g["wa"], g["ba"] = np.zeros_like(p["wa"]), np.zeros_like(p["ba"])
        dh = self.dense_backward(dh, c, g)
        dh0 = dh.reshape(s, n, len(self.cfg.offsets), -1)
        dproj = np.zeros((s, w, dh0.shape[-1]), np.float32)
        for k, at in enumerate(self.shift):
            dproj[:, at : at + n, :] += dh0[:, :, k, :]
        if "mix" in c:
            dproj *= c["mix"]  # the statistics are constants (not differentiated), as in MixStyle
        da0 = dproj.reshape(s * w, -1) * (c["a0"] > 0)
        g["wp"], g["bp"] = c["z"].T @ da0, da0.sum(0)
        self.adam(g, lr)
        return loss

    def adam(self, g: dict[str, F32], lr: float, scale: float = 1.0) -> None:
        """One Adam update of the parameters from gradients ``g`` (times ``scale``), weight decay 1e-5."""
        p = self.params
        self.t += 1
        b1, b2 = 0.9, 0.999
        for name, grad in g.items():
            grad = grad * scale if scale != 1.0 else grad
            if name.startswith("w"):
                grad = grad + 1e-5 * p[name]
            self.m[name] = b1 * self.m[name] + (1 - b1) * grad
            self.v[name] = b2 * self.v[name] + (1 - b2) * grad * grad
            mhat = self.m[name] / (1 - b1**self.t)
            vhat = self.v[name] / (1 - b2**self.t)
            p[name] -= (lr * mhat / (np.sqrt(vhat) + 1e-8)).astype(p[name].dtype)

    def save(self, path: pathlib.Path, info: dict[str, object]) -> None:
        """Write the weights as float16 (normalisation in float32) in the engine's .npz layout."""
        half = {k: v.astype(np.float16) for k, v in self.params.items()}
        dense = self.cfg.layers + 1
        layers = {f"{kind}{i}": half[f"{kind[0]}{i + 1}"] for i in range(dense) for kind in ("weight", "bias")}
        np.savez_compressed(
            path,
            mean=self.mean.astype(np.float32),
            inv_std=self.inv_std.astype(np.float32),
            projection_weight=half["wp"],
            projection_bias=half["bp"],
            offsets=np.array(self.cfg.offsets, np.int32),
            layers=np.array(dense),
            heads=np.array(self.cfg.heads),
            info=np.array(json.dumps(info)),
            **layers,
            **self.stream,
            acoustic=np.array(self.cfg.acoustic),
            **({"acoustic_causal": np.array(True)} if self.cfg.acoustic and self.cfg.acoustic_causal else {}),
            **self.extra_arrays(),
        )

    def extra_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Arrays a subclass adds to the model file (none for the spliced network)."""
        return {}

    @classmethod
    def load(cls, path: pathlib.Path) -> Net:
        """A model file this script (or ``merge_lipsync_models.py``) wrote, for inference here.

        Its weights in float32; the per-stream normalisation, if any, stays in ``self.stream``.
        """
        z = dict(np.load(path))
        layers = int(z["layers"]) - 1
        cfg = Config(
            offsets=tuple(int(o) for o in z["offsets"]), layers=layers, heads=int(z.get("heads", 1)),
            projection=z["projection_weight"].shape[1], hidden=z["weight0"].shape[1], dropout=0.0,
            acoustic=bool(z.get("acoustic", False)), acoustic_causal=bool(z.get("acoustic_causal", False)),
        )  # fmt: skip
        stream = {k: z[k] for k in ("stream_prior", "stream_params") if k in z}
        kind: type[Net] = cls
        if "recurrent_state_weight" in z:
            if len(z.get("recurrent_blocks", [0])) > 1:
                raise ValueError(f"{path}: a merged recurrent model (its gates are laid out per network)")
            kind, cfg.recurrent, cfg.warmup = Gru, z["recurrent_state_weight"].shape[0], int(z["recurrent_warmup"])
        net = kind(cfg, z["mean"].astype(np.float32), z["inv_std"].astype(np.float32), np.random.default_rng(0), stream)
        net.params = {"wp": z["projection_weight"].astype(np.float32), "bp": z["projection_bias"].astype(np.float32)}
        if cfg.recurrent:
            for name, key in zip(("wx", "bx", "wh", "bh"), RECURRENT_KEYS, strict=True):
                net.params[name] = z[f"recurrent_{key}"].astype(np.float32)
        for i in range(layers + 1):
            net.params[f"w{i + 1}"] = z[f"weight{i}"].astype(np.float32)
            net.params[f"b{i + 1}"] = z[f"bias{i}"].astype(np.float32)
        return net


def _sigmoid(x: F32) -> F32:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class Gru(Net):
    """The spliced network with a GRU of ``cfg.recurrent`` units between the splice and the dense layers.

    Trained with Adam (backpropagation through time). The engine's layout (``engine.Model``'s
    ``recurrent``): for splice x and state h, r = sigmoid(x Wr + br + h Ur + cr), u = sigmoid(x Wu +
    bu + h Uu + cu), n = tanh(x Wn + bn + r (h Un + cn)), h' = (1 - u) n + u h, the gates' columns
    [r u n]. A batch is S runs of ``cfg.warmup`` frames (their labels not scored) and L scored ones,
    the state zero at the first. An utterance's first frame thus follows up to ``warmup`` frames of
    the silence :class:`Runs` pads it with; a session starts from the state ``warmup`` such frames
    leave (:meth:`initial_state`). (With offsets after 0, the last warm-up steps before an utterance
    also splice its first frames, which a session's first state has not heard: the two agree when a
    stream opens with as much silence as the splice reads ahead.)
    """

    def __init__(
        self, cfg: Config, mean: F32, inv_std: F32, rng: np.random.Generator, stream: dict[str, Any] | None = None
    ) -> None:
        super().__init__(cfg, mean, inv_std, rng, stream)
        h = cfg.recurrent
        spliced = cfg.projection * len(cfg.offsets)
        qr = [np.linalg.qr(rng.standard_normal((h, h)))[0] for _ in range(3)]
        self.params["wx"] = (rng.standard_normal((spliced, 3 * h)) / np.sqrt(spliced)).astype(np.float32)
        self.params["bx"] = np.zeros(3 * h, np.float32)
        self.params["bx"][h : 2 * h] = 1.0  # the update gate starts towards keeping the state
        self.params["wh"] = np.concatenate(qr, axis=1).astype(np.float32)
        self.params["bh"] = np.zeros(3 * h, np.float32)
        self.params["w1"] = (rng.standard_normal((h, cfg.hidden)) * np.sqrt(2.0 / h)).astype(np.float32)
        self.m = {n: np.zeros_like(v) for n, v in self.params.items()}
        self.v = {n: np.zeros_like(v) for n, v in self.params.items()}
        # Runs pads ``past`` frames before each utterance: the warm-up, unscored.
        self.past, self.future = cfg.warmup - cfg.offsets[0], cfg.offsets[-1]

    def forward(self, x: F32, train: bool, rng: np.random.Generator | None = None) -> tuple[F32, dict[str, F32]]:
        """Logits ((S * L) x 15 per head) for runs ``x`` (S x W x inputs, W = past + L + future)."""
        p = self.params
        s, w, _ = x.shape
        splice_past = -self.cfg.offsets[0]
        t_len = w - splice_past - self.future  # the frames whose splice is complete: warm-up and scored
        first = self.past - splice_past
        z = ((x - self.mean) * self.inv_std).reshape(s * w, -1)
        a0 = z @ p["wp"] + p["bp"]
        proj = np.maximum(a0, 0).reshape(s, w, -1)
        idx = np.arange(t_len)[:, None] + (np.array(self.cfg.offsets) + splice_past)[None, :]
        spliced = proj[:, idx, :].reshape(s * t_len, -1)
        h_n = p["wh"].shape[0]
        gx = (spliced @ p["wx"] + p["bx"]).reshape(s, t_len, 3 * h_n)
        dtype = p["wh"].dtype
        hs = np.zeros((s, t_len + 1, h_n), dtype)  # hs[:, t + 1]: the state after frame t
        gates = np.empty((4, s, t_len, h_n), dtype)  # r, u, n, and the state's share of n before r
        for t in range(t_len):
            h = hs[:, t]
            gh = h @ p["wh"] + p["bh"]
            r = _sigmoid(gx[:, t, :h_n] + gh[:, :h_n])
            u = _sigmoid(gx[:, t, h_n : 2 * h_n] + gh[:, h_n : 2 * h_n])
            n = np.tanh(gx[:, t, 2 * h_n :] + r * gh[:, 2 * h_n :])
            hs[:, t + 1] = (1 - u) * n + u * h
            gates[0, :, t], gates[1, :, t], gates[2, :, t], gates[3, :, t] = r, u, n, gh[:, 2 * h_n :]
        h = hs[:, first + 1 :].reshape(-1, h_n)
        cache: dict[str, Any] = dict(z=z, a0=a0, spliced=spliced, hs=hs, gates=gates, h0=h)
        return self.dense_forward(h, cache, train, rng)

    def backward(self, x: F32, d: F32, c: dict[str, Any], d_hidden: F32 | None = None) -> dict[str, F32]:
        """Gradients of the parameters from d loss / d logits ``d`` (``c``: :meth:`forward`'s cache).

        ``d_hidden``, if given, is added to d loss / d (last hidden layer) (the voice adversary's).
        """
        p = self.params
        s, w, _ = x.shape
        splice_past = -self.cfg.offsets[0]
        t_len = w - splice_past - self.future
        first = self.past - splice_past
        layers = self.cfg.layers
        g: dict[str, F32] = {f"w{layers + 1}": c[f"h{layers}"].T @ d, f"b{layers + 1}": d.sum(0)}
        dh = d @ p[f"w{layers + 1}"].T
        if d_hidden is not None:
            dh = dh + d_hidden
        dh = self.dense_backward(dh, c, g)
        h_n = p["wh"].shape[0]
        dtype = p["wh"].dtype
        d_states = np.zeros((s, t_len, h_n), dtype)
        d_states[:, first:] = dh.reshape(s, t_len - first, h_n)
        hs, gates = c["hs"], c["gates"]
        dgx = np.empty((s, t_len, 3 * h_n), dtype)
        dwh, dbh = np.zeros_like(p["wh"]), np.zeros_like(p["bh"])
        dh_next = np.zeros((s, h_n), dtype)
        dgh = np.empty((s, 3 * h_n), dtype)
        for t in range(t_len - 1, -1, -1):
            h_prev, r, u, n, ghn = hs[:, t], gates[0, :, t], gates[1, :, t], gates[2, :, t], gates[3, :, t]
            dh_t = d_states[:, t] + dh_next
            dan = dh_t * (1 - u) * (1 - n * n)
            dau = dh_t * (h_prev - n) * u * (1 - u)
            dar = dan * ghn * r * (1 - r)
            dgx[:, t, :h_n], dgx[:, t, h_n : 2 * h_n], dgx[:, t, 2 * h_n :] = dar, dau, dan
            dgh[:, :h_n], dgh[:, h_n : 2 * h_n], dgh[:, 2 * h_n :] = dar, dau, dan * r
            dwh += h_prev.T @ dgh
            dbh += dgh.sum(0)
            dh_next = dh_t * u + dgh @ p["wh"].T
        g["wh"], g["bh"] = dwh, dbh
        dgx2 = dgx.reshape(s * t_len, -1)
        g["wx"], g["bx"] = c["spliced"].T @ dgx2, dgx2.sum(0)
        dsp = (dgx2 @ p["wx"].T).reshape(s, t_len, len(self.cfg.offsets), -1)
        dproj = np.zeros((s, w, dsp.shape[-1]), dtype)
        for k, at in enumerate(np.array(self.cfg.offsets) + splice_past):
            dproj[:, at : at + t_len, :] += dsp[:, :, k, :]
        da0 = dproj.reshape(s * w, -1) * (c["a0"] > 0)
        g["wp"], g["bp"] = c["z"].T @ da0, da0.sum(0)
        return g

    def initial_state(self) -> F32:
        """The state after ``cfg.warmup`` frames of the silence before an utterance, from zero."""
        x = np.full((1, self.past + 1 + self.future, len(self.mean)), SILENCE, np.float32)
        if len(self.mean) > engine.N_MELS:  # the acoustic rows a session reads before it has heard anything
            x[..., engine.N_MELS :] = -np.log(len(self.mean) - engine.N_MELS)
        _, cache = self.forward(x, False)
        state: F32 = cache["hs"][0, self.cfg.warmup]
        return state

    def step(
        self,
        x: F32,
        y: npt.NDArray[np.int64],
        weights: F32,
        lr: float,
        rng: np.random.Generator,
        phones: npt.NDArray[np.int64] | None = None,
        soft: F32 | None = None,
        voices: npt.NDArray[np.int64] | None = None,
    ) -> float:
        """One Adam step (gradient norm clipped at 5) on a batch of runs; ``y`` as :meth:`Net.step`'s.

        With the voice adversary (:meth:`add_adversary`) and ``voices`` (each centre frame's voice,
        -1 where none counts), its loss trains it and its reversed gradient, times
        ``adversary_weight``, reaches the network (the returned loss is the visemes' alone).
        """
        logits, cache = self.forward(x, True, rng)
        d, loss = np.empty_like(logits), 0.0
        v, heads = len(VISEMES), self.cfg.heads
        for head, yh in enumerate(y.reshape(heads, -1)):
            z = logits[:, head * v : (head + 1) * v]
            prob = np.exp(z - z.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            wy = weights[yh]
            rows = np.arange(len(yh))
            loss += float(-(wy * np.log(prob[rows, yh] + 1e-30)).sum() / wy.sum()) / heads
            prob[rows, yh] -= 1.0
            d[:, head * v : (head + 1) * v] = prob * (wy / wy.sum() / heads)[:, None]
        d_hidden, g_adversary = None, {}
        if voices is not None and "wv1" in self.params:
            d_hidden, g_adversary = self._adversary(cache[f"h{self.cfg.layers}"], voices)
        g = self.backward(x, d, cache, d_hidden)
        g.update(g_adversary)
        norm = math.sqrt(sum(float((grad * grad).sum()) for grad in g.values()))
        self.adam(g, lr, min(1.0, 5.0 / (norm + 1e-6)))
        return loss

    def add_adversary(self, voices: int, rng: np.random.Generator, units: int = 64) -> None:
        """Give the network a voice adversary over ``voices`` classes (``cfg.adversary``; not saved).

        One ReLU layer of ``units`` on the last hidden layer, then a softmax over the voices.
        """
        h = self.cfg.hidden
        self.params["wv1"] = (rng.standard_normal((h, units)) * np.sqrt(2.0 / h)).astype(np.float32)
        self.params["bv1"] = np.zeros(units, np.float32)
        self.params["wv2"] = (rng.standard_normal((units, voices)) * 0.1 * np.sqrt(2.0 / units)).astype(np.float32)
        self.params["bv2"] = np.zeros(voices, np.float32)
        for name in ("wv1", "bv1", "wv2", "bv2"):
            self.m[name], self.v[name] = np.zeros_like(self.params[name]), np.zeros_like(self.params[name])
        self.adversary_weight = 0.0  # the gradient reversal's weight now (fit ramps it)
        self.adversary_log: list[tuple[float, float]] = []  # (loss, accuracy) per step

    def _adversary(self, hidden: F32, voices: npt.NDArray[np.int64]) -> tuple[F32 | None, dict[str, F32]]:
        """The adversary's gradients, and the reversed one it sends into ``hidden`` (None: no frame)."""
        p = self.params
        valid = voices >= 0
        if not valid.any():
            return None, {k: np.zeros_like(p[k]) for k in ("wv1", "bv1", "wv2", "bv2")}
        hv, target = hidden[valid], voices[valid]
        a = hv @ p["wv1"] + p["bv1"]
        r = np.maximum(a, 0)
        z = r @ p["wv2"] + p["bv2"]
        q = np.exp(z - z.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        rows = np.arange(len(target))
        self.adversary_log.append(
            (float(-np.log(q[rows, target] + 1e-30).mean()), float(np.mean(q.argmax(1) == target)))
        )
        dz = q
        dz[rows, target] -= 1.0
        dz /= len(target)
        da = (dz @ p["wv2"].T) * (a > 0)
        g = {"wv2": r.T @ dz, "bv2": dz.sum(0), "wv1": hv.T @ da, "bv1": da.sum(0)}
        d_hidden = np.zeros_like(hidden)
        d_hidden[valid] = -self.adversary_weight * (da @ p["wv1"].T)
        return d_hidden, g

    def extra_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The GRU's arrays (``engine.Model``'s ``recurrent``), its warm-up and a session's first state."""
        arrays: dict[str, npt.NDArray[Any]] = {
            f"recurrent_{key}": self.params[name].astype(np.float16)
            for name, key in zip(("wx", "bx", "wh", "bh"), RECURRENT_KEYS, strict=True)
        }
        arrays["recurrent_warmup"] = np.array(self.cfg.warmup)
        # The session's first state, from the weights as stored.
        stored = {k: v.astype(np.float16).astype(np.float32) for k, v in self.params.items()}
        kept, self.params = self.params, stored
        try:
            arrays["recurrent_initial"] = self.initial_state().astype(np.float32)
        finally:
            self.params = kept
        return arrays


def balanced_shares(counts: npt.NDArray[Any], balance: float) -> npt.NDArray[np.float64]:
    """Each group's share when its count weighs as the count to the power 1 - ``balance``."""
    weight = np.asarray(counts, np.float64) ** (1.0 - balance)
    return weight / weight.sum()


class Runs:
    """Utterances' features padded (past before, future after) for runs of frames.

    The log-mel part is padded with silence; ``normalize`` (the engine's per-stream normalisation)
    is applied to each utterance with its trailing silence, as a session sees them, and the leading
    silence is what a session starts with. With ``acoustic`` rows (one array per utterance), they
    follow the log-mel values of each frame, padded with uniform rows before (as a session starts;
    the first rows of a centred scorer are uniform too) and their last after.
    """

    def __init__(
        self,
        feats: list[F32],
        labels: list[npt.NDArray[np.int8]],
        sources: list[int],
        offsets: tuple[int, ...],
        normalize: Callable[[F32], F32] | None = None,
        acoustic: list[npt.NDArray[Any]] | None = None,
        phones: list[npt.NDArray[np.int8]] | None = None,
        soft: list[npt.NDArray[np.float16]] | None = None,
    ) -> None:
        self.past, self.future = -offsets[0], offsets[-1]
        self.lengths = [len(f) for f in feats]
        self.starts = list(np.cumsum([0] + [self.past + n + self.future for n in self.lengths])[:-1])
        width = engine.N_MELS + (acoustic[0].shape[1] if acoustic else 0)
        self.x = np.empty((sum(self.past + n + self.future for n in self.lengths), width), np.float32)
        for u, f in enumerate(feats):
            block = self.x[self.starts[u] : self.starts[u] + self.past + len(f) + self.future]
            mel = block[:, : engine.N_MELS]
            mel[: self.past] = SILENCE
            mel[self.past : self.past + len(f)] = f
            mel[self.past + len(f) :] = SILENCE
            if normalize:
                mel[self.past :] = normalize(np.ascontiguousarray(mel[self.past :]))
            if acoustic:
                rows = block[:, engine.N_MELS :]
                rows[: self.past] = np.float16(-np.log(rows.shape[1]))  # what a session reads before the start
                rows[self.past :] = np.pad(acoustic[u], ((0, self.future), (0, 0)), mode="edge")
        self.labels = [lab.astype(np.int64) for lab in labels]
        self.phones = [ph.astype(np.int64) for ph in phones] if phones is not None else None
        self.soft = soft  # a teacher's probabilities per utterance (frames x 15), for distillation
        self.groups: list[int] | None = None  # a group per utterance for Runs.epoch's balance (-1: none)
        self.voices: list[int] | None = None  # a voice per utterance for the adversary (-1: none)
        self.sources = sources

    def stats(self) -> tuple[F32, F32]:
        """Mean and 1 / (std + 0.001) of the utterances' own frames (not the padding), per input."""
        total = np.zeros(self.x.shape[1], np.float64)
        square = np.zeros(self.x.shape[1], np.float64)
        for a, n in zip(self.starts, self.lengths, strict=True):
            rows = self.x[a + self.past : a + self.past + n].astype(np.float64)
            total += rows.sum(0)
            square += (rows * rows).sum(0)
        count = sum(self.lengths)
        mean = total / count
        std = np.sqrt(np.maximum(square / count - mean * mean, 0.0))
        return mean.astype(np.float32), (1.0 / (std + 1e-3)).astype(np.float32)

    def epoch(
        self, run: int, rng: np.random.Generator, groups: list[int] | None = None, balance: float = 0.0
    ) -> list[tuple[int, int]]:
        """Shuffled (utterance, first frame) runs of ``run`` frames, each utterance cut at a random phase.

        With ``groups`` (a group per utterance, -1 for none) and ``balance`` > 0, each group's runs are
        drawn again so that its share of the grouped runs goes as its count to the power 1 - balance
        (with replacement where a group is to grow); the ungrouped runs stay as they are.
        """
        out = []
        for u, n in enumerate(self.lengths):
            phase = int(rng.integers(0, run))
            out += [(u, f) for f in range(phase, n - run + 1, run)]
        if groups is not None and balance > 0.0:
            of = np.array([groups[u] for u, _ in out])
            chosen = [np.flatnonzero(of < 0)]
            kinds, counts = np.unique(of[of >= 0], return_counts=True)
            targets = np.round(counts.sum() * balanced_shares(counts, balance)).astype(np.int64)
            for kind, count, target in zip(kinds, counts, targets, strict=True):
                members = np.flatnonzero(of == kind)
                chosen.append(rng.choice(members, int(target), replace=bool(target > count)))
            out = [out[i] for i in np.concatenate(chosen)]
        rng.shuffle(out)  # type: ignore[arg-type]
        return out

    def batch(
        self, runs: list[tuple[int, int]], run: int, heads: int = 1
    ) -> tuple[F32, npt.NDArray[np.int64], npt.NDArray[np.int64] | None]:
        """Windows (S x (run + past + future) x inputs), the centre labels (S * run), their phones.

        With ``heads`` > 1 the labels are heads x (S * run): row d is each centre frame's label d
        frames earlier (silence before the utterance, as a session starts). The phone classes
        (of the centre frames) are None without them.
        """
        width = run + self.past + self.future
        first = np.array([self.starts[u] + f for u, f in runs])
        x = self.x[first[:, None] + np.arange(width)[None, :]]
        sil = np.array([SIL], np.int64)
        rows = [np.concatenate([_earlier(self.labels[u], f, run, d, sil) for u, f in runs]) for d in range(heads)]
        y = rows[0] if heads == 1 else np.stack(rows)
        phones = self.phones
        return x, y, None if phones is None else np.concatenate([phones[u][f : f + run] for u, f in runs])

    def voice_batch(self, runs: list[tuple[int, int]], run: int, y: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Each centre frame's voice (``self.voices``), -1 where its label ``y`` (head 0) is silence."""
        if self.voices is None:
            raise ValueError("no voices")
        voices = np.repeat(np.array([self.voices[u] for u, _ in runs], np.int64), run)
        first = y if y.ndim == 1 else y[0]
        return np.where(first == SIL, -1, voices)

    def soft_batch(self, runs: list[tuple[int, int]], run: int, heads: int = 1) -> F32 | None:
        """The teacher's probabilities for what each head reads: heads x (S * run) x 15, or None.

        Row d is each centre frame's d frames earlier, as ``batch`` labels it; before the
        utterance's first frame, silence for certain.
        """
        if self.soft is None:
            return None
        soft = self.soft
        sil = np.eye(len(VISEMES), dtype=np.float32)[SIL][None]
        rows = [np.concatenate([_earlier(soft[u], f, run, d, sil) for u, f in runs]) for d in range(heads)]
        return np.stack(rows).astype(np.float32)

    def window(self, u: int) -> F32:
        """Utterance ``u``'s frames with their padding, as one run (1 x (past + n + future) x inputs)."""
        return self.x[self.starts[u] : self.starts[u] + self.past + self.lengths[u] + self.future][None]


def _earlier(values: npt.NDArray[Any], f: int, run: int, d: int, before: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``values[f - d : f + run - d]``: what was there d frames before a run that starts at ``f``.

    Rows before the utterance's start are ``before`` (one row, repeated).
    """
    lead = max(0, d - f)
    return np.concatenate([np.repeat(before, lead, axis=0), values[f - d + lead : f + run - d]])


def tolerated(y: npt.NDArray[np.int64], run: int, tolerance: int) -> F32:
    """Which visemes each centre frame may take ((S * run) x 15, 0 or 1).

    They are the labels within ``tolerance`` frames of it inside its run (``y`` is S runs of
    ``run`` labels, in order).
    """
    runs = y.reshape(-1, run)
    allowed = np.zeros((y.size, len(VISEMES)), np.float32)
    rows = np.arange(y.size).reshape(-1, run)
    for j in range(-tolerance, tolerance + 1):
        lo, hi = max(0, -j), run - max(0, j)
        allowed[rows[:, lo:hi].ravel(), runs[:, lo + j : hi + j].ravel()] = 1.0
    return allowed


def blur_acoustic(rows: F32, rng: np.random.Generator, share: float) -> F32:
    """Flatten the senone log-posteriors (S x W x senones) of ``share`` of the runs, in place.

    Each chosen run's rows are multiplied by a temperature drawn from 0 (uniform) to 1 (unchanged)
    and renormalised, floored like the engine's (``ACOUSTIC_FLOOR``).
    """
    chosen = np.flatnonzero(rng.random(rows.shape[0]) < share)
    if chosen.size:
        t = rng.uniform(0.0, 1.0, (chosen.size, 1, 1)).astype(np.float32)
        z = rows[chosen] * t
        top = z.max(axis=2, keepdims=True)
        z -= top + np.log(np.exp(z - top).sum(axis=2, keepdims=True))
        rows[chosen] = np.maximum(z, ACOUSTIC_FLOOR)
    return rows


def mix_statistics(proj: F32, rng: np.random.Generator, share: float) -> tuple[F32, F32]:
    """MixStyle on runs of projected frames (S x W x P): returns the mixed runs and d(out)/d(in).

    In ``share`` of the runs, each channel is standardised with the run's own mean and deviation
    over its frames and given a mix of those and another run's (weight drawn from Beta(0.1, 0.1),
    so mostly near one or the other). The other runs pass through (the factor is 1).
    """
    s = proj.shape[0]
    mu = proj.mean(axis=1, keepdims=True)
    sig = np.sqrt(proj.var(axis=1, keepdims=True) + 1e-2)
    lam = rng.beta(0.1, 0.1, (s, 1, 1)).astype(proj.dtype)
    lam = np.where(rng.random((s, 1, 1)) < share, lam, proj.dtype.type(1.0))
    other = rng.permutation(s)
    mu_mix = lam * mu + (1 - lam) * mu[other]
    sig_mix = lam * sig + (1 - lam) * sig[other]
    scale = sig_mix / sig
    return (proj - mu) * scale + mu_mix, scale  # in the runs' own precision (float32 in training)


def feature_augment(x: F32, rng: np.random.Generator, warp: float = 0.0, blur: float = 0.0) -> F32:
    """Per-run level, spectral tilt and band masking of the log-mel part (fresh every batch).

    With ``warp`` > 0, also a shift along the mel axis of up to ``warp`` bands, which moves every
    formant like a longer or shorter vocal tract (tried; it did not help, so it is off by default).
    The acoustic rows, if any, pass through, or with ``blur`` > 0 are flattened in that share of
    the runs (``blur_acoustic``).
    """
    if x.shape[2] > engine.N_MELS:
        x[..., : engine.N_MELS] = feature_augment(x[..., : engine.N_MELS], rng, warp)
        if blur > 0:
            x[..., engine.N_MELS :] = blur_acoustic(x[..., engine.N_MELS :], rng, blur)
        return x
    s = x.shape[0]
    if warp > 0:
        shift = rng.uniform(-warp, warp, s) * (rng.random(s) < 0.6)
        at = np.clip(np.arange(engine.N_MELS)[None, :] + shift[:, None], 0, engine.N_MELS - 1)  # S x M
        lo = np.floor(at).astype(np.int64)
        hi = np.minimum(lo + 1, engine.N_MELS - 1)
        frac = (at - lo).astype(np.float32)[:, None, :]
        rows = np.arange(s)[:, None]
        x = x[rows, :, lo].transpose(0, 2, 1) * (1 - frac) + x[rows, :, hi].transpose(0, 2, 1) * frac
    gain = rng.uniform(-1.2, 1.2, (s, 1, 1)).astype(np.float32)
    tilt = (rng.uniform(-0.5, 0.5, (s, 1, 1)) * np.linspace(-1, 1, engine.N_MELS)[None, None, :]).astype(np.float32)
    live = x > SILENCE + 1.0
    x = np.where(live, x + gain + tilt, x)
    mask = rng.random(s) < 0.2
    if mask.any():
        starts = rng.integers(0, engine.N_MELS - 4, s)
        widths = rng.integers(1, 5, s)
        bands = np.arange(engine.N_MELS)[None, :]
        hit = (bands >= starts[:, None]) & (bands < (starts + widths)[:, None]) & mask[:, None]
        x = np.where(hit[:, None, :], x.mean(axis=2, keepdims=True), x)
    return x.astype(np.float32)


def teacher_probabilities(
    teacher: Net, feats: list[F32], rows: list[npt.NDArray[Any]] | None
) -> list[npt.NDArray[np.float16]]:
    """The teacher's softmax for every frame of each utterance (frames x 15, float16).

    Head 0 (the frame its context is centred on), read as its engine reads the utterance: with its
    offsets, its per-stream normalisation and its inputs (the acoustic rows when it reads them).
    """
    normalize = None
    if teacher.stream:
        prior, params = teacher.stream["stream_prior"], [float(v) for v in teacher.stream["stream_params"]]

        def normalize(f: F32) -> F32:
            return engine.normalize_stream(f, prior, params)

    out: list[npt.NDArray[np.float16]] = []
    v = len(VISEMES)
    for at in range(0, len(feats), 256):  # a slice at a time: one padded copy of the features is enough
        part = slice(at, at + 256)
        data = Runs(
            feats[part], [np.zeros(len(f), np.int8) for f in feats[part]], [0] * len(feats[part]),
            teacher.cfg.offsets, normalize, rows[part] if teacher.cfg.acoustic and rows is not None else None,
        )  # fmt: skip
        for u in range(len(data.lengths)):
            logits, _ = teacher.forward(data.window(u), False)
            z = logits[:, :v] - logits[:, :v].max(axis=1, keepdims=True)
            prob = np.exp(z)
            out.append((prob / prob.sum(axis=1, keepdims=True)).astype(np.float16))
    return out


def evaluate(net: Net, data: Runs, names: list[str]) -> dict[str, float]:
    """10 ms frame accuracy per source (exact, no tolerance), whole utterances.

    With several heads, of the last one (the most audio after the frame it reads).
    """
    correct = np.zeros(len(names))
    total = np.zeros(len(names))
    d, v = net.cfg.heads - 1, len(VISEMES)
    for u, n in enumerate(data.lengths):
        logits, _ = net.forward(data.window(u), False)
        read = logits[d:, d * v : (d + 1) * v].argmax(1)
        correct[data.sources[u]] += float(np.sum(read == data.labels[u][: n - d]))
        total[data.sources[u]] += n - d
    return {name: float(correct[i] / max(total[i], 1)) for i, name in enumerate(names)}


def fit(
    net: Net,
    train: Runs,
    dev: Runs,
    names: list[str],
    cfg: Config,
    weights: F32,
    rng: np.random.Generator,
    frames: int,
    augment: Callable[[F32], F32],
    label: str = "epoch",
) -> dict[str, float]:
    """Train ``net`` for ``cfg.epochs``: cosine learning rate after a 300-step warm-up.

    Each batch passes through ``augment``; prints and returns the dev accuracy per source after
    each epoch.
    """
    run, per_batch = cfg.run, cfg.batch // cfg.run
    total_steps = frames // cfg.batch * cfg.epochs
    step = 0
    acc: dict[str, float] = {}
    for epoch in range(cfg.epochs):
        t0 = time.time()
        runs = train.epoch(run, rng, train.groups, cfg.balance)
        losses = []
        for i in range(0, len(runs) - per_batch + 1, per_batch):
            lr = (
                cfg.lr
                * 0.5
                * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
                * min(1.0, (step + 1) / 300)
            )
            batch = runs[i : i + per_batch]
            x, y, phones = train.batch(batch, run, cfg.heads)
            soft = train.soft_batch(batch, run, cfg.heads)
            voices = None
            if cfg.adversary > 0 and isinstance(net, Gru):
                voices = train.voice_batch(batch, run, y)
                progress = min(step, total_steps) / max(total_steps, 1)
                net.adversary_weight = cfg.adversary * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)
            losses.append(net.step(augment(x), y, weights, lr, rng, phones, soft, voices))
            step += 1
        acc = evaluate(net, dev, names)
        adversary = ""
        if cfg.adversary > 0 and isinstance(net, Gru) and net.adversary_log:
            adv_loss, adv_acc = np.mean(net.adversary_log, axis=0)
            adversary = f", adversary loss {adv_loss:.3f} accuracy {adv_acc:.3f}"
            net.adversary_log.clear()
        print(
            f"{label} {epoch + 1}/{cfg.epochs}: loss {np.mean(losses):.3f}{adversary}, dev 10 ms accuracy "
            + ", ".join(f"{k} {v:.3f}" for k, v in acc.items())
            + f" ({time.time() - t0:.0f} s)",
            flush=True,
        )
    return acc


FEATURES_VERSION = 5  # bump when augmentation or featurization changes: the feature cache is keyed on it


def features(cfg: Config, data: pathlib.Path, cache: bool) -> tuple[Any, ...]:
    """Training and dev features of every installed source (train: augmented copies, dev: one).

    The dev utterances are a random 4 % of the synthesized ones. With ``cache``, the result is kept
    under ``data`` keyed by the data configuration, so leave-one-family-out runs featurize once.
    """
    key = {
        k: getattr(cfg, k) for k in ("espeak", "festival", "foreign", "flite", "kokoro", "copies", "not_speech", "seed")
    }
    key.update(labels=LABELS_VERSION, features=FEATURES_VERSION, flite=Flite.available(), kokoro=neural.available())
    key.update(acoustic_model=hashlib.sha256(ACOUSTIC_MODEL_PATH.read_bytes()).hexdigest()[:12])
    if neural.available():
        key.update(kokoro_labels=neural.LABELS_VERSION)
    if cfg.background != Config.background:  # (absent from the key of the earlier recipe)
        key.update(background=cfg.background)
    if cfg.piper and neural.piper_available():
        key.update(piper=cfg.piper)
    if cfg.hindi and dataset.festival_available("nsk"):
        key.update(hindi=cfg.hindi)
    if cfg.acoustic and cfg.acoustic_causal:  # (the log-mel frames are the same: the other cache serves --no-acoustic)
        key.update(acoustic_causal=True)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = data / f"features-{digest}.pkl"
    if cache and path.is_file():
        print(f"features: from {path}")
        return tuple(dataset.load(path))
    items = synthesize(cfg, data, jobs=os.cpu_count() or 1)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(items))
    n_dev = max(2, len(items) // 25)
    dev_items = [items[i] for i in order[:n_dev]]
    train_items = [items[i] for i in order[n_dev:]]
    t0 = time.time()
    jobs = os.cpu_count() or 1
    causal = cfg.acoustic and cfg.acoustic_causal
    train = featurize(train_items, cfg.copies, cfg.seed, cfg.not_speech, cfg.background, jobs, causal)
    dev = featurize(dev_items, 1, cfg.seed + 7, cfg.not_speech, cfg.background, jobs, causal)
    print(
        f"features: {sum(len(f) for f in train[0])} train / {sum(len(f) for f in dev[0])} dev frames "
        f"({time.time() - t0:.0f} s)"
    )
    out = (*train, *dev)
    if cache:
        dataset.store(path, out)
    return out


def excluded_families(path: pathlib.Path) -> set[str]:
    """The synthesizer families a model file (or every network of a merged one) never trained on."""

    def unseen(info: dict[str, Any]) -> set[str]:
        if "ensemble" in info:
            return unseen(info["ensemble"]["a"] or {}) & unseen(info["ensemble"]["b"] or {})
        return set(info.get("excluded_families", []))

    with np.load(path) as z:
        return unseen(json.loads(str(z["info"]))) if "info" in z else set()


def main(argv: list[str] | None = None) -> int:
    """Synthesize, augment, train, write."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=pathlib.Path, default=ROOT / "build" / "lipsync-data", help="synthesis cache")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "python" / "avatarkit" / "data" / "lipsync_model.npz")
    ap.add_argument("--quick", action="store_true", help="a tiny run to check the pipeline")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--espeak", type=int)
    ap.add_argument("--festival", type=int)
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--projection", type=int)
    ap.add_argument("--layers", type=int, help="hidden layers (default 2)")
    ap.add_argument("--dropout", type=float)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--train-seed", type=int, help="initialisation and batch order only, same data (default: --seed)")
    ap.add_argument("--future", type=int, help="keep context offsets up to +N frames of 10 ms (default 6)")
    ap.add_argument("--offsets", help="comma-separated context offsets instead (ascending, 0 included)")
    ap.add_argument("--stream", help="per-stream normalisation: prior_frames,memory_frames,gate_db,floor_db or 'off'")
    ap.add_argument("--warp", type=float, help="mel-axis shift augmentation, in bands (default 0)")
    ap.add_argument("--piper", type=int, help="Piper joe training utterances (default 500)")
    ap.add_argument("--hindi", type=int, help="festival's Hindi voice nsk: training utterances (default 0, tried)")
    ap.add_argument("--copies", type=int, help="augmented copies of each utterance (default 1)")
    ap.add_argument("--background", type=float, help="augmented copies with music or noise under them, 0-0.65 (0.25)")
    ap.add_argument("--no-acoustic", dest="acoustic", action="store_false",
                    help="train on the log-mel frames alone, without the acoustic model's scores")  # fmt: skip
    ap.add_argument("--causal-acoustic", dest="acoustic_causal", action="store_true",
                    help="causal acoustic scores: each frame's own row, deltas from the frames before")  # fmt: skip
    ap.add_argument("--acoustic-blur", type=float, help="share of runs with flattened acoustic scores (default 0)")
    ap.add_argument("--mixstyle", type=float, help="share of runs with mixed projection statistics (default 0)")
    ap.add_argument("--balance", type=float, help="family balance of each epoch's runs, 0-1 (default 0)")
    ap.add_argument("--tolerance", type=int, help="boundary-tolerant loss: frames either side (default 0)")
    ap.add_argument("--phones", type=float, help="weight of a phone-class head beside the visemes (default 0)")
    ap.add_argument("--heads", type=int, help="output heads, each reading 10 ms earlier (1-4, default 1)")
    ap.add_argument("--teacher", type=pathlib.Path, help="a model whose probabilities to distil (see --distill)")
    ap.add_argument("--distill", type=float, help="share of the teacher's probabilities in each target (0.5)")
    ap.add_argument("--recurrent", type=int, help="a GRU of this many units after the splice (default 0: none)")
    ap.add_argument("--adversary", type=float,
                    help="reversed-gradient weight of a voice classifier (recurrent only; default 0)")  # fmt: skip
    ap.add_argument("--adversary-over", choices=("voice", "family"),
                    help="what the adversary tells apart: training voices (default) or families")  # fmt: skip
    ap.add_argument("--warmup", type=int, help="a recurrent model's unscored frames before each run (default 32)")
    ap.add_argument("--exclude-family", help="comma-separated synthesizer families to leave out of training")
    ap.add_argument("--no-cache-features", dest="cache_features", action="store_false",
                    help="do not keep the augmented features under --data (they are reused by later runs)")  # fmt: skip
    args = ap.parse_args(argv)
    cfg = Config(seed=args.seed, train_seed=args.train_seed)
    if args.quick:
        cfg.espeak, cfg.festival, cfg.foreign, cfg.epochs, cfg.copies = 60, 20, 4, 2, 1
        cfg.flite, cfg.kokoro, cfg.piper = 10, 10, 10
    tunable = ("epochs", "espeak", "festival", "hidden", "layers", "projection", "warp", "dropout")
    cfg.acoustic = args.acoustic
    cfg.acoustic_causal = args.acoustic_causal
    if args.acoustic_blur is not None:
        cfg.acoustic_blur = args.acoustic_blur
    if args.mixstyle is not None:
        cfg.mixstyle = args.mixstyle
    if args.balance is not None:
        cfg.balance = args.balance
    if args.tolerance is not None:
        cfg.tolerance = args.tolerance
    if args.phones is not None:
        cfg.phones = args.phones
    if args.adversary is not None:
        cfg.adversary = args.adversary
    if args.adversary_over is not None:
        cfg.adversary_over = args.adversary_over
    if args.teacher is not None:
        cfg.distill = 0.5 if args.distill is None else args.distill
    elif args.distill:
        ap.error("--distill needs --teacher")
    for name in (*tunable, "background", "copies", "piper", "hindi", "heads", "recurrent", "warmup"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if args.future is not None:
        cfg.offsets = tuple(o for o in OFFSETS if o <= args.future)
    if args.offsets:
        cfg.offsets = tuple(int(o) for o in args.offsets.split(","))
    if not 0.0 <= cfg.background <= 0.65:
        ap.error("--background must be in [0, 0.65] (35 % of the copies get faint noise)")
    if not 0.0 <= cfg.acoustic_blur <= 1.0:
        ap.error("--acoustic-blur must be in [0, 1]")
    if not 0.0 <= cfg.mixstyle <= 1.0:
        ap.error("--mixstyle must be in [0, 1]")
    if not 0.0 <= cfg.balance <= 1.0:
        ap.error("--balance must be in [0, 1]")
    if not 0 <= cfg.tolerance <= 8:
        ap.error("--tolerance must be 0-8 frames")
    if not 0.0 <= cfg.phones <= 10.0:
        ap.error("--phones must be in [0, 10]")
    if cfg.layers < 1:
        ap.error("--layers must be at least 1")
    if not 0.0 <= cfg.distill <= 1.0:
        ap.error("--distill must be in [0, 1]")
    if not 1 <= cfg.heads <= 4:
        ap.error("--heads must be 1-4 (a 40 ms frame is four 10 ms steps)")
    if not 0.0 <= cfg.adversary <= 10.0:
        ap.error("--adversary must be in [0, 10]")
    if cfg.adversary and not cfg.recurrent:
        ap.error("--adversary needs --recurrent")
    if cfg.recurrent < 0 or cfg.warmup < 0:
        ap.error("--recurrent and --warmup must not be negative")
    if cfg.recurrent and (args.teacher or cfg.phones or cfg.tolerance or cfg.mixstyle):
        ap.error("--recurrent does not combine with --teacher, --phones, --tolerance or --mixstyle")
    if args.stream:
        cfg.stream = () if args.stream == "off" else tuple(float(v) for v in args.stream.split(","))
    print("config:", cfg)

    exclude = frozenset(f for f in (args.exclude_family or "").split(",") if f)
    unknown = exclude - set(dataset.FAMILIES)
    if unknown:
        ap.error(f"unknown families {sorted(unknown)}; choose from {dataset.FAMILIES}")
    feats, all_rows, labels, src, fams, phones, dfeats, drows, dlabels, dsrc, dfams, _ = features(
        cfg, args.data, args.cache_features
    )
    keep = [i for i, f in enumerate(fams) if f not in exclude]
    dkeep = [i for i, f in enumerate(dfams) if f not in exclude]
    feats, labels, src = [feats[i] for i in keep], [labels[i] for i in keep], [src[i] for i in keep]
    fams_kept = [fams[i] for i in keep]
    phones = [phones[i] for i in keep] if cfg.phones > 0 else None
    dfeats, dlabels, dsrc = [dfeats[i] for i in dkeep], [dlabels[i] for i in dkeep], [dsrc[i] for i in dkeep]
    rows, drows = ([all_rows[i] for i in keep], [drows[i] for i in dkeep]) if cfg.acoustic else (None, None)
    if exclude:
        print(f"left out: {sorted(exclude)}; {len(feats)} training clips remain")
    soft = None
    teacher_info: dict[str, Any] | None = None
    if args.teacher is not None:
        unseen = excluded_families(args.teacher)
        if not exclude <= unseen:
            ap.error(f"the teacher was trained on {sorted(exclude - unseen)}, which this model leaves out")
        teacher = Net.load(args.teacher)
        if teacher.cfg.acoustic and teacher.cfg.acoustic_causal != (cfg.acoustic and cfg.acoustic_causal):
            ap.error("the teacher reads the other kind of acoustic rows (--causal-acoustic)")
        t0 = time.time()
        soft = teacher_probabilities(teacher, feats, [all_rows[i] for i in keep])
        digest = hashlib.sha256(args.teacher.read_bytes()).hexdigest()[:12]
        teacher_info = {"file": args.teacher.name, "sha256": digest, "distill": cfg.distill}
        print(f"teacher {args.teacher.name}: probabilities of {len(soft)} clips ({time.time() - t0:.0f} s)")
        del teacher
    rng = np.random.default_rng(cfg.seed if cfg.train_seed is None else cfg.train_seed)
    names = sorted(set(src) | set(dsrc))
    stream: dict[str, Any] = {}
    normalize = None
    if cfg.stream:
        # The prior: the mean training speech frame (labelled not silence), before normalisation.
        speech = np.concatenate([f[lab != SIL] for f, lab in zip(feats, labels, strict=True)])
        prior = speech.mean(axis=0).astype(np.float32)
        stream = {"stream_prior": prior, "stream_params": np.array(cfg.stream, np.float32)}
        del speech

        def normalize(f: F32) -> F32:
            return engine.normalize_stream(f, prior, list(cfg.stream))

    # A recurrent model's runs start ``warmup`` frames earlier (Gru.past).
    run_offsets = (cfg.offsets[0] - cfg.warmup, cfg.offsets[-1]) if cfg.recurrent else cfg.offsets
    train = Runs(feats, labels, [names.index(x) for x in src], run_offsets, normalize, rows, phones, soft)
    families = sorted(set(fams_kept) - {"not speech"})
    train.groups = [families.index(f) if f in families else -1 for f in fams_kept]
    if cfg.balance > 0.0:
        frames_of = [sum(n for n, g in zip(train.lengths, fams_kept, strict=True) if g == f) for f in families]
        shares, natural = balanced_shares(frames_of, cfg.balance), balanced_shares(frames_of, 0.0)
        print("family shares of the speech runs:", dict(zip(families, shares.round(3).tolist(), strict=True)),
              "(as they come:", dict(zip(families, natural.round(3).tolist(), strict=True)), ")")  # fmt: skip
    dev = Runs(dfeats, dlabels, [names.index(x) for x in dsrc], run_offsets, normalize, drows)
    del feats, dfeats, rows, drows, all_rows

    mean, inv_std = train.stats()
    counts = np.bincount(np.concatenate(train.labels), minlength=len(VISEMES)).astype(np.float64)
    print("label shares:", {v: round(float(c / counts.sum()), 3) for v, c in zip(VISEMES, counts, strict=True)})
    weights = np.ones(len(VISEMES), np.float32)
    weights[PP] = 1.2  # lips that fail to close are the most visible error
    weights[SIL] = 0.8

    net = (Gru if cfg.recurrent else Net)(cfg, mean, inv_std, rng, stream)
    if cfg.adversary > 0 and isinstance(net, Gru):
        # One class per training voice (Kokoro's blends count as one) or per synthesizer family;
        # not-speech clips have none.
        kinds = src if cfg.adversary_over == "voice" else fams_kept
        classes = sorted({k for k, f in zip(kinds, fams_kept, strict=True) if f != "not speech"})
        train.voices = [classes.index(k) if f != "not speech" else -1 for k, f in zip(kinds, fams_kept, strict=True)]
        net.add_adversary(len(classes), rng)
        print(f"adversary over {len(classes)} classes ({cfg.adversary_over}): {classes}")

    def augment(x: F32) -> F32:
        return feature_augment(x, rng, cfg.warp, cfg.acoustic_blur)

    acc = fit(net, train, dev, names, cfg, weights, rng, int(counts.sum()), augment)

    info = {"config": cfg.__dict__, "offsets": list(cfg.offsets), "train_frames": int(counts.sum()),
            "excluded_families": sorted(exclude), "teacher": teacher_info,
            "dev_accuracy_10ms": acc, "script": "scripts/train_lipsync.py"}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    net.save(args.out, info)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
