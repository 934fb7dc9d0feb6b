"""Instructions per rendered frame, counted by valgrind's callgrind: a figure that repeats to 0.1 %.

    python bench/render_instructions.py [--frames 8] [--size 512] [--antialias fxaa]

Wall-clock figures on a shared 2-core machine swing by 25 % from one hour to the next, which hides
a change worth 2 %. Instruction counts do not. This runs the sample avatar speaking under
callgrind, instruments only the measured frames (not start-up, shader compilation or exit), and
prints the instructions per frame by part: the shaders llvmpipe compiled, llvmpipe's own code,
avatarkit's C++, Python, and the rest. Needs ``valgrind`` (Debian package) and takes about a minute.
Compare two builds by running it on each; fewer instructions is not always less time (memory
traffic and idle cores are not counted), so confirm a win with ``avatarkit render`` too.
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time


def child(frames: int, size: int, antialias: str, ready: pathlib.Path, go: pathlib.Path, done: pathlib.Path) -> None:
    """Under callgrind: warm up, say ready, wait; render the frames; say done and wait to be let go."""
    from avatarkit import AvatarSDK, Configuration
    from avatarkit.manager import AvatarManager
    from avatarkit.media import DEMO_SPEECH, decode_audio
    from avatarkit.server.samples import ensure_samples
    from avatarkit.video import local_motion
    from avatarkit.view import AvatarView, HeadlessSurface

    AvatarSDK.initialize("local", Configuration())
    view = AvatarView(
        HeadlessSurface(size, size, antialias=antialias), AvatarManager.derive(ensure_samples() / "default")
    )
    pcm = decode_audio(DEMO_SPEECH, 16000)
    controller = view.avatar_controller
    start = controller.clock() + 1000.0
    controller.play(pcm, local_motion(pcm, 16000), sample_rate=16000, start=start)
    for _ in view.render_frames_sync([start + 0.5, start + 0.6]):  # shaders compiled, caches warm
        pass
    ready.write_text(str(os.getpid()))
    while not go.exists():
        time.sleep(0.05)
    for _ in view.render_frames_sync([start + 1.0 + 0.25 * i for i in range(frames)]):
        pass
    done.touch()
    while go.exists():  # the parent turns the instrumentation off before the view and Python wind down
        time.sleep(0.05)
    view.destroy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--antialias", default="fxaa", choices=["none", "fxaa", "msaa"])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.frames, args.size, args.antialias, *(pathlib.Path(p) for p in args.child))
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        ready, go, done, out = (pathlib.Path(tmp) / n for n in ("ready", "go", "done", "callgrind.out"))
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                   sys.executable, __file__, "--frames", str(args.frames), "--size", str(args.size),
                   "--antialias", args.antialias, "--child", str(ready), str(go), str(done)]  # fmt: skip
        # One llvmpipe thread: the same work, counted the same way each run.
        env = dict(os.environ, LP_NUM_THREADS="1")
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def wait_for(path: pathlib.Path) -> None:
            while not path.exists():
                if proc.poll() is not None:
                    raise SystemExit(f"the child failed:\n{proc.stderr.read() if proc.stderr else ''}")
                time.sleep(0.2)

        wait_for(ready)
        subprocess.run(["callgrind_control", "-i", "on", ready.read_text()], check=True, capture_output=True)
        go.touch()
        wait_for(done)
        subprocess.run(["callgrind_control", "-i", "off", ready.read_text()], check=True, capture_output=True)
        go.unlink()
        proc.wait()
        report = subprocess.run(
            ["callgrind_annotate", "--threshold=100", str(out)], capture_output=True, text=True
        ).stdout
    parts: collections.Counter[str] = collections.Counter()
    for line in report.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)", line)
        if not m or "PROGRAM TOTALS" in m[2]:
            continue
        obj = re.search(r"\[([^\]]*)\]\s*$", m[2])
        name = obj[1] if obj else "?"
        if name == "???":
            part = "llvmpipe's compiled shaders"
        elif "swrast_dri" in name or "libgallium" in name:
            part = "llvmpipe"
        elif "_core." in name:
            part = "avatarkit C++"
        elif "libpython" in name:
            part = "Python"
        else:
            part = "other (libc, numpy, ...)"
        parts[part] += int(m[1].replace(",", ""))
    total = sum(parts.values())
    size = f"{args.size}x{args.size}"
    print(f"instructions per frame: {size}, {args.antialias}, the sample avatar speaking, {args.frames} frames")
    for part, count in parts.most_common():
        print(f"  {part:<28} {count / args.frames / 1e6:7.2f} M  ({100 * count / total:4.1f} %)")
    print(f"  {'total':<28} {total / args.frames / 1e6:7.2f} M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
