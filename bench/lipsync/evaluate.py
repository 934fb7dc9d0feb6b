"""Score the engine's lip-sync on held-out synthesized speech, and check it on real speech.

    python bench/lipsync/evaluate.py                  # everything (about a minute)
    python bench/lipsync/evaluate.py --count 10       # the first 10 held-out sentences per source
    python bench/lipsync/evaluate.py --baseline       # also the first, loudness-only engine
    python bench/lipsync/evaluate.py --rates          # also kal resampled to every supported rate
    python bench/lipsync/evaluate.py --json out.json  # the figures as JSON too
    python bench/lipsync/evaluate.py --low-latency    # the low-latency engine (0 ms look-ahead)

Sources: festival's ``kal`` voice and held-out espeak-ng voices speaking the held-out sentences
(``bench/lipsync/dataset.py`` documents the split; both are skipped when not installed). Audio
streams into the engine in ``--chunk-ms`` pieces, as the driving service would feed it. Metrics
are defined in ``metrics.py`` and ``docs/lipsync.md``. The real recording
(``../shared/data/official-16000.json``) has no labels: it gets qualitative checks only (silence
returns to neutral, mouth activity follows the voice's energy).
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
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

if __package__ in (None, ""):  # run as a script: make the lipsync package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from lipsync import dataset, realspeech
from lipsync.dataset import Labelled
from lipsync.metrics import Tally, pearson, predicted_visemes
from lipsync.synth import Espeak, festival_available
from lipsync.visemes import VISEMES

F32 = npt.NDArray[np.float32]
REPO = pathlib.Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "data" / "official-16000.json"

TARGETS = {"festival": 0.85, "espeak": 0.80, "closure": 0.95, "jaw": 0.85, "lookahead_ms": 100.0, "rtf": 0.02}


class Session(Protocol):
    """What the harness needs of an engine session."""

    channels: tuple[str, ...]

    @property
    def lookahead_ms(self) -> float: ...

    def push(self, pcm: npt.NDArray[np.int16]) -> F32: ...

    def flush(self) -> F32: ...


SessionFactory = Callable[[int], Session]


def engine_factory(
    model: str | None = None, smoothing: tuple[int, int] | None = None, low_latency: bool = False
) -> SessionFactory:
    """Sessions of the package's engine (the low-latency one, another model file, other smoothing)."""
    from avatarkit.engine import EngineSession, load_model

    loaded = load_model(model) if model else None
    extra = {"smoothing": smoothing[0], "smoothing_ahead": smoothing[1]} if smoothing else {}

    def make(rate: int) -> Session:
        return EngineSession(rate, model=loaded, low_latency=low_latency, **extra)

    return make


def baseline_factory() -> SessionFactory:
    """Sessions of the first, loudness-only engine."""
    from lipsync.baseline import BaselineSession

    return BaselineSession


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
        x = item.utt.audio.astype(np.float64) / 32768.0
        try:
            import soxr

            y = soxr.resample(x, item.utt.rate, rate)
        except ImportError:
            from scipy import signal

            g = math.gcd(rate, item.utt.rate)
            y = signal.resample_poly(x, rate // g, item.utt.rate // g)
        pcm = np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)
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


def report(name: str, tally: Tally, look: float, declared: float, target_key: str | None) -> dict[str, Any]:
    """Print one row group and return its figures."""
    target = TARGETS.get(target_key or "")
    print(f"\n## {name}: {tally.utterances} utterances, {tally.audio_seconds:.1f} s, {tally.frames} frames")
    print(f"  viseme accuracy (±1 frame)   {fmt(tally.accuracy, target)}")
    print(
        f"  bilabial closure recall      {fmt(tally.closure_recall, TARGETS['closure'])}"
        f"  ({tally.closures_found}/{tally.closures_total})"
    )
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
        "jaw_r_pooled": tally.jaw_r,
        "jaw_r_mean": tally.jaw_r_mean,
        "lookahead_ms_declared": declared,
        "lookahead_ms_observed": look,
        "rtf": tally.rtf,
        "recall_per_viseme": recall,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Build the held-out sets, run the engine(s), print the report."""
    ap = argparse.ArgumentParser(description="Lip-sync evaluation on held-out synthesized speech.")
    ap.add_argument("--count", type=int, help="held-out sentences per source (default: all)")
    ap.add_argument("--chunk-ms", type=float, default=20.0, help="audio per push (ms)")
    ap.add_argument("--model", help="a model .npz other than the shipped one")
    ap.add_argument("--low-latency", action="store_true", help="the low-latency engine (causal model, 0 ms look-ahead)")
    ap.add_argument(
        "--smoothing", type=int, nargs=2, metavar=("BEFORE", "AHEAD"), help="10 ms smoothing steps each side"
    )
    ap.add_argument("--baseline", action="store_true", help="also score the first, loudness-only engine")
    ap.add_argument("--rates", action="store_true", help="also score kal resampled to every supported rate")
    ap.add_argument("--seen", action="store_true", help="also score the training festival voices (held-out texts)")
    ap.add_argument("--no-real", action="store_true", help="skip the real-speech checks")
    ap.add_argument("--json", type=pathlib.Path, help="write the figures here too")
    args = ap.parse_args(argv)

    sets: list[tuple[str, str, list[Labelled]]] = []
    if festival_available("kal"):
        sets.append(
            (
                "festival kal (held-out voice, held-out text)",
                "festival",
                dataset.festival_eval("kal", args.count),
            )
        )
    else:
        print("festival with festvox-kallpc16k is not installed: skipping the festival set")
    if Espeak.available():
        sets.append(("espeak-ng held-out voices, held-out text", "espeak", dataset.espeak_eval(args.count)))
    else:
        print("espeakng-loader is not installed: skipping the espeak set")
    if args.seen:
        for voice in dataset.FESTIVAL_TRAIN_VOICES:
            if festival_available(voice):
                sets.append(
                    (
                        f"festival {voice} (training voice, held-out text)",
                        "",
                        dataset.festival_eval(voice, args.count),
                    )
                )
    if not args.no_real and REAL.is_file() and realspeech.available():
        sets.append(("real speech, approximate truth (pocketsphinx alignment)", "", [realspeech.aligned(REAL)]))
    if args.rates and sets and sets[0][1] == "festival":
        for rate in (8000, 22050, 24000, 32000, 44100, 48000):
            sets.append((f"festival kal resampled to {rate} Hz", "festival", resampled(sets[0][2], rate)))

    engine = engine_factory(args.model, args.smoothing, args.low_latency)
    engines: list[tuple[str, SessionFactory]] = [("engine", engine)]
    if args.baseline:
        engines.append(("baseline (loudness only)", baseline_factory()))

    results: dict[str, Any] = {}
    for engine_name, make in engines:
        print(f"\n# {engine_name}")
        declared = float(make(16000).lookahead_ms)
        for set_name, key, items in sets:
            tally, look = score(make, items, args.chunk_ms)
            results.setdefault(engine_name, {})[set_name] = report(set_name, tally, look, declared, key or None)
        if not args.no_real:
            real = real_speech_checks(make, args.chunk_ms)
            if real is None:
                print("\n## real speech: ../shared/data/official-16000.json is not here, skipped")
            else:
                print(f"\n## real speech (official-16000.json, {real['seconds']:.1f} s, unlabelled)")
                for k, v in real.items():
                    if k != "seconds":
                        print(f"  {k:32s} {v if not isinstance(v, float) else round(v, 3)}")
                results.setdefault(engine_name, {})["real speech"] = real
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
