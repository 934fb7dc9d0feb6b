"""Print the codec's performance and bandwidth figures, measured in one process.

    python bench/report.py [--seconds 400] [--repeats 7]

Decode throughput is measured through the Python binding on a synthetic 73-channel speech stream cut
into payloads of 1 to 1000 frames (large payloads amortise the call overhead), for the C++ decoder and
for the numpy decoder of ``numpy_codec.py`` on the same payloads, in the same run: the ratio is what
the targets are about, since absolute times depend on the machine and on what else it is running.
Bandwidth is the official sample re-encoded at u16, one payload per original message.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import codec_streams as cs
import numpy as np

TARGET_FRAMES_PER_SECOND = 5e6
TARGET_RATIO = 20.0
HEADLINE_PAYLOAD = 100  # frames per payload the throughput targets are stated for


@dataclass(frozen=True)
class Rate:
    """Frames per second of one workload: best and median wall clock, and per CPU second."""

    best: float
    median: float
    per_cpu: float  # frames per second of this thread's CPU time (median): the per-core figure


def measure(fn: Callable[[], int], repeats: int, min_seconds: float) -> Rate:
    """Run ``fn`` (which returns the frames it handled) in timed repeats of at least ``min_seconds``."""
    frames = fn()  # warm up, and count
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - start >= min_seconds / 4:
            break
        loops *= 4
    loops = max(1, round(loops * min_seconds / max(time.perf_counter() - start, 1e-9)))
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, wall = time.thread_time(), time.perf_counter()
        for _ in range(loops):
            fn()
        walls.append((time.perf_counter() - wall) / loops)
        cpus.append((time.thread_time() - cpu) / loops)
    return Rate(frames / min(walls), frames / statistics.median(walls), frames / statistics.median(cpus))


def si(value: float) -> str:
    """Format a rate with a k / M suffix."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.0f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with right-aligned columns."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(str(c).rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines)


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "MISS"


def machine() -> str:
    """One line about where this ran."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " / load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} CPUs{load}; Python {platform.python_version()}, numpy {np.__version__}"


def throughput(seconds: float, repeats: int, min_seconds: float) -> dict[tuple[int, int], tuple[Rate, Rate]]:
    """Measure both decoders for each payload size, raw and zstd; print a table; return the rates."""
    frames = cs.speech_frames(seconds)
    results: dict[tuple[int, int], tuple[Rate, Rate]] = {}
    rows = []
    for frames_per_payload in (1, 25, HEADLINE_PAYLOAD, 1000):
        for zstd_level in (0, cs.ZSTD_LEVEL):
            payloads = cs.encode_stream(frames, frames_per_payload, zstd_level)
            cpp = measure(partial(cs.decode_cpp, payloads), repeats, min_seconds)
            ref = measure(partial(cs.decode_numpy, payloads), repeats, min_seconds)
            results[frames_per_payload, zstd_level] = cpp, ref
            size = sum(len(p) for p in payloads) / len(frames)
            rows.append(
                [
                    str(frames_per_payload),
                    f"zstd {zstd_level}" if zstd_level else "raw",
                    f"{size:.1f}",
                    si(cpp.best),
                    si(cpp.median),
                    si(cpp.per_cpu),
                    f"{1e9 / cpp.per_cpu:.0f}",
                    si(ref.best),
                    si(ref.per_cpu),
                    f"{cpp.per_cpu / ref.per_cpu:.1f}x",
                ]
            )
    header = [
        "frames/payload",
        "format",
        "B/frame",
        "C++ best",
        "C++ median",
        "C++ per core",
        "ns/frame",
        "numpy best",
        "numpy per core",
        "C++/numpy",
    ]
    print(f"Decode throughput: {len(frames)} frames x 73 channels (synthetic speech, u16), one thread")
    print(table(header, rows))
    print(
        "(frames/s; best and median are wall clock; per core is frames per second of the thread's CPU time,\n"
        " which other processes on the machine do not inflate; ns/frame and the ratio use per core.)"
    )
    return results


def bandwidth() -> list[cs.Reencoded] | None:
    """Re-encode the official sample raw and with zstd; print a table; return the results."""
    if not cs.OFFICIAL_SAMPLE.is_file():
        print(f"Bandwidth: skipped, the official sample is not at {cs.OFFICIAL_SAMPLE}")
        return None
    sample = cs.load_official_sample()
    commercial = sum(sample.animation_bytes) / sample.seconds
    envelopes = sum(sample.message_bytes) / sample.seconds
    results = [cs.reencode_official(sample, level) for level in (0, cs.ZSTD_LEVEL)]
    rows = [
        [
            "FlameAnimation (commercial)",
            str(sum(sample.animation_bytes)),
            f"{commercial:.0f}",
            "1.00x",
            "float32",
        ]
    ]
    for r in results:
        rows.append(
            [
                f"AK1 u16 {'zstd ' + str(r.zstd_level) if r.zstd_level else 'raw'}",
                str(r.bytes),
                f"{r.bytes_per_second:.0f}",
                f"{r.bytes_per_second / commercial:.2f}x",
                f"{r.max_error_steps:.3f} steps",
            ]
        )
    print(
        f"Bandwidth: the official sample, {sample.frames} keyframes x 120 channels at {cs.OFFICIAL_FPS} fps "
        f"({sample.seconds:.2f} s), one payload per message: {[len(c) for c in sample.chunks]} frames"
    )
    print(table(["payloads", "bytes", "B/s", "vs commercial", "max error"], rows))
    print(
        f"(Animation bytes only; the {len(sample.chunks)} Message envelopes around them add "
        f"{envelopes - commercial:.0f} B/s for either format. One step = (hi - lo) / 65535 of the channel.)"
    )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurements and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=400.0, help="length of the synthetic stream")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per workload")
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per timed repeat")
    args = parser.parse_args(argv)

    print(machine())
    print()
    rates = throughput(args.seconds, args.repeats, args.min_time)
    print()
    reencoded = bandwidth()
    print()

    cpp, ref = rates[HEADLINE_PAYLOAD, 0]
    cpp_z, ref_z = rates[HEADLINE_PAYLOAD, cs.ZSTD_LEVEL]
    print(f"Targets (73 channels, {HEADLINE_PAYLOAD}-frame payloads; per core = frames / thread CPU second):")
    for label, rate, base in (("raw", cpp, ref), (f"zstd {cs.ZSTD_LEVEL}", cpp_z, ref_z)):
        fast = verdict(rate.per_cpu >= TARGET_FRAMES_PER_SECOND)
        ratio = rate.per_cpu / base.per_cpu
        print(
            f"  decode {label:7} {si(rate.per_cpu):>7} frames/s per core  >= 5M: {fast}"
            f"   {ratio:5.1f}x numpy  >= 20x: {verdict(ratio >= TARGET_RATIO)}"
        )
    if reencoded:
        for r in reencoded:
            label = f"zstd {r.zstd_level}" if r.zstd_level else "raw"
            print(
                f"  official {label:7} {r.bytes_per_second:6.0f} B/s  <= {cs.TARGET_BYTES_PER_SECOND}: "
                f"{verdict(r.bytes_per_second <= cs.TARGET_BYTES_PER_SECOND)}"
                f"   max error {r.max_error_steps:.3f} steps  <= 1: {verdict(r.max_error_steps <= 1.0)}"
            )
    print()
    print(
        "Note: OPENBLAS_NUM_THREADS and any other BLAS setting are irrelevant to these figures: the numpy\n"
        "decoder calls no BLAS routine (only single-threaded ufuncs, cumsum and indexing), so both\n"
        "decoders run on one core."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
