"""Leave-one-family-out: for each synthesizer family, train without it and score its held-out voices.

    python bench/lipsync/lofo.py                         # every family, standard engine, one arm at a time
    python bench/lipsync/lofo.py --families formant,parametric &   # two halves side by side: about
    python bench/lipsync/lofo.py --families neural,concatenative   #   110 min on 2 cores (2026-12-06)
    python bench/lipsync/lofo.py --families neural       # one fold
    python bench/lipsync/lofo.py --low-latency           # the causal model (its GRU, heads, closure bias)
    python bench/lipsync/lofo.py --split dev             # score the development sentences instead
    python bench/lipsync/lofo.py --json lofo.json        # the figures as JSON too
    python bench/lipsync/lofo.py --low-latency --teacher-dir build/lofo -- --recurrent 0 --layers 2 \
        --epochs 12 --offsets=-40,-32,-24,-20,-16,-13,-10,-8,-6,-5,-4,-3,-2,-1,0  # distil (spliced networks)

Distillation reads its teachers with the training script, which takes spliced networks only: make
them with the spliced standard recipe (``-- --recurrent 0 --layers 2 --epochs 10
--offsets=-24,-19,-15,-12,-9,-7,-5,-3,-2,-1,0,1,2,3,4,5,6``).

Each fold runs ``scripts/train_lipsync.py --exclude-family F`` (same data, augmentation and
training as the shipped model; the augmented features are computed once and cached under
``build/lipsync-data``) into ``build/lofo/``, then ``evaluate.py --families F`` with that model.
For either engine that is the shipped recipe's two networks (``-mel``: ``--no-acoustic``;
``-acoustic``) merged by ``scripts/merge_lipsync_models.py``; ``--single`` trains one network (the
one with the acoustic scores).
With ``--teacher-dir D``, each fold distils ``D/without-F.npz`` (``train_lipsync.py --teacher``):
the standard engine's model of the same fold, which never heard the family either.
The report gives each family's figures and their mean and worst: the figure that says how the
engine does on a kind of voice it has never heard.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO / "bench"))

from lipsync import dataset  # noqa: E402

# The shipped standard networks' training (docs/lipsync.md): a GRU of 192 units over a splice of the
# step's projection with the two before it and the six after it (60 ms ahead), one dense layer,
# 8 epochs; the rest the script's defaults. Their merge raises the closed-lips logit by 0.5 (chosen
# on the leave-one-family-out dev folds: the GRU closes fewer lips on voices it never heard).
STANDARD_TRAINING = ["--offsets=-2,-1,0,1,2,3,4,5,6", "--recurrent", "192", "--layers", "1", "--epochs", "8"]
STANDARD_MERGE = ["--pp-bias", "0.5"]

# The shipped low-latency networks' training (docs/lipsync.md): a GRU of 192 units over the newest
# step's projection, one dense layer, 8 epochs, a per-stream normalisation prior worth 1 s, four
# output heads; their merge raises the closed-lips logit by 0.5.
LOW_LATENCY_TRAINING = [
    "--offsets=0", "--recurrent", "192", "--layers", "1", "--hidden", "256", "--epochs", "8",
    "--stream", "100,300,20,-75", "--heads", "4",
]  # fmt: skip
LOW_LATENCY_MERGE = ["--pp-bias", "0.5"]


# Both engines' shipped recipe: two networks trained on the same features, one on the log-mel
# frames alone and one that also reads the acoustic scores, merged into one that averages their
# logits (scripts/merge_lipsync_models.py).
ARMS = (("mel", ["--no-acoustic"]), ("acoustic", []))


def fold(family: str, args: argparse.Namespace, out_dir: pathlib.Path) -> dict[str, Any]:
    """Train without ``family``, score ``family``: the evaluation's figures for it."""
    stem = f"without-{family}{'-low-latency' if args.low_latency else ''}"
    model = out_dir / f"{stem}.npz"
    base = LOW_LATENCY_TRAINING if args.low_latency else STANDARD_TRAINING
    if args.single:
        arms = [(model, base)]
    else:
        arms = [(out_dir / f"{stem}-{name}.npz", [*base, *extra]) for name, extra in ARMS]
    for path, extra in arms:
        if not (args.reuse and path.is_file()):
            train = [sys.executable, str(REPO / "scripts" / "train_lipsync.py"), "--exclude-family", family]
            train += ["--out", str(path), *extra, *args.train_args]
            if args.teacher_dir is not None:
                train += ["--teacher", str(args.teacher_dir / f"without-{family}.npz")]
            print("$", " ".join(train), flush=True)
            subprocess.run(train, check=True)
    if len(arms) > 1:
        merge = [sys.executable, str(REPO / "scripts" / "merge_lipsync_models.py"), *(str(a) for a, _ in arms)]
        bias = LOW_LATENCY_MERGE if args.low_latency else STANDARD_MERGE
        if args.pp_bias is not None:
            bias = ["--pp-bias", str(args.pp_bias)]
        subprocess.run([*merge, *bias, "--out", str(model)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = pathlib.Path(tmp) / "report.json"
        evaluate = [sys.executable, str(REPO / "bench" / "lipsync" / "evaluate.py"), "--model", str(model)]
        evaluate += ["--families", family, "--split", args.split, "--no-real", "--no-not-speech", "--quiet"]
        evaluate += ["--json", str(report)] + (["--low-latency"] if args.low_latency else [])
        if args.count:
            evaluate += ["--count", str(args.count)]
        print("$", " ".join(evaluate), flush=True)
        subprocess.run(evaluate, check=True)
        figures = json.loads(report.read_text())["engine"]
    return {"family": figures["families"].get(family), "voices": figures["voices"]}


def main(argv: list[str] | None = None) -> int:
    """Run the folds and print the leave-one-family-out table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default=",".join(dataset.FAMILIES))
    ap.add_argument("--split", choices=("test", "dev", "all"), default="test")
    ap.add_argument("--count", type=int, help="held-out sentences per voice")
    ap.add_argument("--low-latency", action="store_true")
    ap.add_argument("--out-dir", type=pathlib.Path, default=REPO / "build" / "lofo")
    ap.add_argument("--reuse", action="store_true", help="score models already trained in --out-dir")
    ap.add_argument("--single", action="store_true", help="one network (with the acoustic scores), not the merged pair")
    ap.add_argument("--json", type=pathlib.Path)
    ap.add_argument("--pp-bias", type=float, help="the merge's closed-lips bias (default: the shipped recipe's, 0.5)")
    ap.add_argument("--teacher-dir", type=pathlib.Path, help="distil each fold's without-F.npz from this directory")
    ap.add_argument("train_args", nargs="*", help="more arguments for train_lipsync.py (after --)")
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for family in [f for f in args.families.split(",") if f]:
        results[family] = fold(family, args, args.out_dir)
    rows = [(f, r["family"]) for f, r in results.items() if r["family"]]
    print(f"\n## leave-one-family-out ({'low-latency' if args.low_latency else 'standard'} engine, {args.split} split)")
    print("| family left out | utts | viseme acc | closure recall | jaw r |\n|---|---|---|---|---|")

    def row(name: str, r: dict[str, float], utts: str = "") -> str:
        acc, closure, jaw = 100 * r["accuracy"], 100 * r["closure_recall"], r["jaw_r"]
        return f"| {name} | {utts} | {acc:.1f} % | {closure:.1f} % | {jaw:.3f} |"

    for fam, r in rows:
        print(row(fam, r, str(r["utterances"])))
    if rows:
        keys = ("accuracy", "closure_recall", "jaw_r")
        mean = {k: sum(r[k] for _, r in rows) / len(rows) for k in keys}
        worst = {k: min(r[k] for _, r in rows) for k in keys}
        print(row("**mean**", mean))
        print(row("worst", worst))
        results["mean"], results["worst"] = mean, worst
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
