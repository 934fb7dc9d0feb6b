"""Pose time per frame: ``AvatarRig.pose`` against the Python path it replaced, in the same run.

    python bench/rig_report.py [--frames N] [--avatars default,brunette-t.glb,vroid.glb]

For each avatar (the default sample avatar, and ``brunette-t.glb`` and ``vroid.glb`` from
``../shared/data`` when that folder is there), one sequence of speech-like frames (every channel
moving, head turning, the clock running so body life is on) is posed twice, taking turns in rounds:
by ``AvatarRig.pose`` (one C++ call per frame) and by ``python_rig.pose`` (numpy 4x4 products per
node, then ``MorphMesh.apply`` and ``skin`` per primitive, as ``AvatarRig.pose`` did before). Each
reports its best round's median time per frame; the ratio is Python over C++. One thread, as the
view's render thread poses.
"""

from __future__ import annotations

import argparse
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pathlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import python_rig  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
AVATARS = ("default", "brunette-t.glb", "vroid.glb")


def frames(channels: list[str], count: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Speech-like channel values (all moving, head angles small) and their clock times (25 fps)."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 0.6, (count, len(channels))).astype(np.float32)
    for i, name in enumerate(channels):
        if name in ("headPitch", "headYaw", "headRoll"):
            values[:, i] = rng.uniform(-0.2, 0.2, count)
        elif name in ("headX", "headY", "headZ"):
            values[:, i] = rng.uniform(-0.01, 0.01, count)
    return values, np.arange(count) / 25.0


def load(name: str):  # type: ignore[no-untyped-def]
    from avatarkit.assets.gltf import load_gltf
    from avatarkit.rig import AvatarRig

    if name == "default":
        from avatarkit.manager import AvatarManager
        from avatarkit.server.samples import ensure_samples

        avatar = AvatarManager.derive(ensure_samples() / "default")
        return AvatarRig(avatar.model(), avatar.manifest.rig)
    path = SHARED / name
    if not path.is_file():
        return None
    return AvatarRig(load_gltf(path))


def per_frame(fn: Callable[[np.ndarray, float], object], values: np.ndarray, times: np.ndarray) -> float:
    """Median seconds per frame over the sequence."""
    spent = []
    for v, t in zip(values, times, strict=True):
        t0 = time.perf_counter()
        fn(v, float(t))
        spent.append(time.perf_counter() - t0)
    return statistics.median(spent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--avatars", default=",".join(AVATARS))
    args = parser.parse_args(argv)
    print(f"pose time per frame, median of {args.frames} frames, best of {args.rounds} rounds, one thread")
    for name in args.avatars.split(","):
        rig = load(name)
        if rig is None:
            print(f"  {name:15s} skipped: {SHARED / name} is not there")
            continue
        values, times = frames(rig.channels, args.frames)
        cpp: list[float] = []
        python: list[float] = []
        for _ in range(args.rounds):
            cpp.append(per_frame(rig.pose, values, times))
            python.append(per_frame(lambda v, t, rig=rig: python_rig.pose(rig, v, t), values, times))
        best_cpp, best_py = min(cpp), min(python)
        nodes = len(rig.model.nodes)
        vertices = sum(p.data.vertex_count for p in rig.primitives)
        print(
            f"  {name:15s} {nodes:4d} nodes {vertices:7d} vertices   rig.pose {best_cpp * 1e3:7.3f} ms   "
            f"Python path {best_py * 1e3:7.3f} ms   ratio {best_py / best_cpp:5.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
