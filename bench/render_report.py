"""Deformation and rendering figures, as ratios against baselines measured in the same run.

    python bench/render_report.py

- Deformation: a 20,000-vertex mesh with 67 targets (a speech frame: 12 active), one core: the C++
  deformer's time per frame, against dense numpy and against the memory-bandwidth bound (bytes it
  touches per frame divided by a measured copy bandwidth).
- Rendering: frames per second of the default sample avatar, headless 512x512, with readback, without
  anti-aliasing, with the post-process edge filter and with 4x MSAA, on whatever GL this machine
  has (llvmpipe without a GPU). Each frame is rendered and read back before the next one starts,
  as a live view does. Then the default (edge filter) in batches (``render_frames_sync``, what
  ``avatarkit render`` uses): working ahead on one GL context, and on two side by side.
"""

from __future__ import annotations

import os

# One core for both sides: numpy's BLAS would otherwise spread the dense baseline over every core.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pathlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from bench_assets_render import deformation_case  # noqa: E402


def best(fn, repeat: int = 7, number: int = 20) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times)


def main() -> int:
    pos, nrm, dense_p, dense_n, mesh, weights = deformation_case()
    out_p, out_n = np.empty_like(pos), np.empty_like(nrm)
    cpp = best(lambda: mesh.apply(weights, out_p, out_n))
    flat_p, flat_n = dense_p.reshape(len(weights), -1), dense_n.reshape(len(weights), -1)
    numpy_time = best(lambda: (pos.reshape(-1) + weights @ flat_p, nrm.reshape(-1) + weights @ flat_n), number=5)
    big = np.zeros(64 << 20, np.uint8)
    copy_out = np.empty_like(big)
    copy = best(lambda: np.copyto(copy_out, big), repeat=5, number=3)
    bandwidth = 2 * big.nbytes / copy  # bytes read + written per second
    touched = mesh.bytes_touched(weights)
    bound = touched / bandwidth
    print("deformation: 20000 vertices, 67 targets, 12 active, positions + normals, one thread")
    print(f"  C++        {cpp * 1e3:7.3f} ms/frame")
    print(f"  numpy      {numpy_time * 1e3:7.3f} ms/frame   C++ is {numpy_time / cpp:5.1f}x faster")
    print(f"  bandwidth  {bound * 1e3:7.3f} ms/frame   ({touched / 1e6:.1f} MB at {bandwidth / 1e9:.1f} GB/s); "
          f"C++ is {cpp / bound:4.2f}x the bound")  # fmt: skip

    from avatarkit.assets import samples
    from avatarkit.manager import AvatarManager
    from avatarkit.view import AvatarView, HeadlessSurface

    with tempfile.TemporaryDirectory() as tmp:
        bundle = samples.build_bundle("default", pathlib.Path(tmp) / "default")
        avatar = AvatarManager(cache_dir=pathlib.Path(tmp) / "cache").derive(bundle)
        print("rendering: default avatar, 512x512, headless, readback included")
        # The three modes take turns, one view at a time (a view alive beside the one measured
        # slows it down), three rounds of 20 frames: a shared machine's slow spells then hit every
        # mode alike, and each mode reports its best round's median.
        modes = ("none", "fxaa", "msaa")
        rounds: dict[str, list[float]] = {mode: [] for mode in modes}
        info: dict[str, dict] = {}  # type: ignore[type-arg]
        for _ in range(3):
            for mode in modes:
                view = AvatarView(HeadlessSurface(512, 512, samples=4, antialias=mode), avatar)
                info[mode] = view.gl_info()
                for i in range(3):
                    view.render_frame_sync(i / 30)
                frames = []
                for i in range(20):
                    t0 = time.perf_counter()
                    view.render_frame_sync(1 + i / 30)
                    frames.append(time.perf_counter() - t0)
                view.destroy()
                rounds[mode].append(statistics.median(frames))
        rates = {}
        for mode in modes:
            best_round = min(rounds[mode])
            rates[mode] = 1 / best_round
            aa, gl = info[mode]["antialiasing"], info[mode]["renderer"]
            spread = max(rounds[mode]) / best_round
            print(f"  {aa:<8} {1 / best_round:6.1f} fps ({best_round * 1e3:.1f} ms/frame; slowest round "
                  f"{spread:.2f}x) on {gl}")  # fmt: skip
        print(
            f"  the edge filter costs {rates['none'] / rates['fxaa']:.2f}x no anti-aliasing; "
            f"MSAA costs {rates['none'] / rates['msaa']:.2f}x"
        )
        print("batches of 60 frames, edge filter (throughput, readback included):")
        batch: dict[int, list[float]] = {1: [], 2: []}
        view = AvatarView(HeadlessSurface(512, 512, antialias="fxaa"), avatar)
        list(view.render_frames_sync([i / 30 for i in range(6)], lanes=2))
        for r in range(3):
            for lanes in (1, 2):
                t0 = time.perf_counter()
                for _frame in view.render_frames_sync([2 + r + i / 30 for i in range(60)], lanes=lanes):
                    pass
                batch[lanes].append(60 / (time.perf_counter() - t0))
        view.destroy()
        for lanes in (1, 2):
            print(f"  {lanes} GL context{'s' if lanes > 1 else ' '} {max(batch[lanes]):6.1f} fps "
                  f"(slowest round {max(batch[lanes]) / min(batch[lanes]):.2f}x)")  # fmt: skip
        print(f"  two contexts give {max(batch[2]) / max(batch[1]):.2f}x one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
