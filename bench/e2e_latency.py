"""End-to-end latency on loopback: from an audio chunk handed to ``send()`` to the first rendered frame
that uses its motion, with the view rendering at 30 fps.

    python bench/e2e_latency.py [--seconds 10] [--chunk-ms 40] [--fps 30] [--size 512] [--jitter-ms J]
                                [--engine standard|low|both] [--mode sdk|local|both]

SDK mode: the built-in service runs in this process (as ``avatarkit demo`` runs it) and the view's
controller drives it over a loopback WebSocket. Local mode: the engine runs inside the controller
(``driving_service_mode="local"``), no service. Either way a headless view renders in real time
while the bundled speech is streamed as a microphone would deliver it: chunk ``k`` (audio from
``k c`` to ``(k + 1) c``) is handed to ``send()`` when its last sample would have been spoken.

For each chunk the latency is the time from its ``send()`` to the end of the first frame rendered at
a conversation position at or past the chunk's start whose 25 fps motion frame had arrived when the
frame was sampled. Also reported: the share of frames rendered while their motion had not arrived yet
(late motion held on the last frame), so a short jitter buffer cannot hide starved motion.

What bounds it from below: the engine's look-ahead (it needs that much audio past a frame before it can
emit it), the controller's jitter buffer (``AvatarController.jitter_buffer``, the delay between a
conversation's first audio and its playback; by default sized from that look-ahead and the chunk
size), and on average half a render period plus the draw. Both engines are measured by default:
the standard one (80 ms look-ahead) and the low-latency one (``Configuration(low_latency=True)``,
0 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import statistics
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from avatarkit import AvatarManager, AvatarSDK, AvatarView, Configuration, Environment
from avatarkit.commands import development_session_token, embedded_service
from avatarkit.media import decode_audio
from avatarkit.server.samples import ensure_samples
from avatarkit.view import HeadlessSurface

MOTION_FPS = 25


@dataclass
class Result:
    latencies_ms: list[float]
    late_share: float
    frames: int
    chunks: int
    jitter_ms: float
    lookahead_ms: float

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))

    def summary(self) -> str:
        lat = self.latencies_ms
        return (
            f"{len(lat)} of {self.chunks} chunks measured over {self.frames} frames; jitter buffer "
            f"{self.jitter_ms:.0f} ms, engine look-ahead {self.lookahead_ms:.0f} ms\n"
            f"  latency p50 {self.percentile(50):6.1f} ms   (target < 80)\n"
            f"  latency p99 {self.percentile(99):6.1f} ms   (target < 150)\n"
            f"  min {min(lat):.1f} ms, max {max(lat):.1f} ms, mean {statistics.fmean(lat):.1f} ms\n"
            f"  frames whose motion had not arrived: {100 * self.late_share:.1f} %"
        )


async def measure(
    seconds: float = 10.0,
    chunk_ms: float = 40.0,
    fps: float = 30.0,
    size: int = 512,
    jitter_ms: float | None = None,
    low_latency: bool = False,
    mode: str = "sdk",
) -> Result:
    """Stream ``seconds`` of the bundled speech in ``chunk_ms`` chunks and time each chunk to the screen."""
    rate = 16000
    speech_file = resources.files("avatarkit") / "data" / "demo_speech.ogg"
    with resources.as_file(speech_file) as path:
        speech = decode_audio(path, rate)
    reps = int(np.ceil(seconds * rate / len(speech)))
    speech = np.tile(speech, reps)[: round(seconds * rate)]
    chunk = round(chunk_ms * rate / 1000)

    with contextlib.ExitStack() as stack:
        if mode == "local":
            AvatarSDK.initialize("local", Configuration(driving_service_mode="local", low_latency=low_latency))
        else:
            server, app_id = stack.enter_context(embedded_service())
            config = Configuration(environment=Environment.local(port=server.port), low_latency=low_latency)
            AvatarSDK.initialize(app_id, config)
        try:
            if mode == "local":
                avatar = AvatarManager.derive(ensure_samples() / "default")
            else:
                AvatarSDK.session_token = await development_session_token(server.url, app_id)
                avatar = await AvatarManager.load("default")
            view = AvatarView(HeadlessSurface(size, size), avatar, fps=fps)
            controller = view.avatar_controller
            if jitter_ms is not None:
                controller.jitter_buffer = jitter_ms / 1000
            await controller.start()

            # What each render sampled: (clock time, conversation start, last motion frame index).
            sampled: list[tuple[float, float | None, int]] = []
            original = controller.sample

            def sample(t: float) -> Any:
                conv = controller.conversation()
                start = conv.start if conv is not None else None
                last = conv.timeline.last_index if conv is not None and len(conv.timeline) else -1
                sampled.append((t, start, last))
                return original(t)

            controller.sample = sample  # type: ignore[method-assign]
            rendered: list[tuple[float, float, float | None, int]] = []  # (done at, t, start, last)
            stop = asyncio.Event()

            async def render() -> None:
                async for _frame in view.frames(fps=fps):
                    done = controller.clock()
                    rendered.append((done, *sampled[-1]))
                    if stop.is_set():
                        break

            renderer = asyncio.create_task(render())
            await asyncio.sleep(0.5)  # the view runs before speech arrives, as in an app
            sent: list[float] = []
            t0 = controller.clock()
            for k, i in enumerate(range(0, len(speech), chunk)):
                deadline = t0 + (k + 1) * chunk / rate  # the chunk's last sample has been spoken
                await asyncio.sleep(max(0.0, deadline - controller.clock()))
                sent.append(controller.clock())
                controller.send(speech[i : i + chunk], end=i + chunk >= len(speech))
            conv = controller.conversation()
            assert conv is not None
            assert conv.start is not None
            # Until a render has shown the end of the playback with all of its motion. On a stalled
            # machine motion comes late, an underrun moves the start later (the playback waits) and
            # renders fall behind the clock: that lateness is measured, not dropped. At most 30 s more.
            give_up = controller.clock() + conv.duration + 30.0
            last_frame = math.ceil(len(speech) / rate * MOTION_FPS) - 1

            def shown_to_the_end() -> bool:
                _, t, start, last = rendered[-1] if rendered else (0.0, 0.0, None, -1)
                return start is not None and t - start >= conv.duration and last >= last_frame

            while controller.clock() < give_up and not shown_to_the_end():
                await asyncio.sleep(0.05)
            stop.set()
            await renderer
            lookahead = 1000 * (controller.lookahead or 0.0)
            await controller.close()
            view.destroy()
        finally:
            AvatarSDK.cleanup()
            AvatarManager.reset_shared()

    latencies = []
    for k, when in enumerate(sent):
        a = k * chunk / rate
        need = int(a * MOTION_FPS)
        first = next(
            (done for done, t, s, last in rendered if s is not None and t - s >= a and last >= need),
            None,
        )
        if first is not None:
            latencies.append(1000 * (first - when))
    # Each render's own start: an underrun moves the conversation's start later (the playback waits).
    playing = [(t - s, last) for _, t, s, last in rendered if s is not None and 0 <= t - s < conv.duration]
    late = sum(1 for pos, last in playing if last < int(pos * MOTION_FPS))
    return Result(latencies, late / max(1, len(playing)), len(playing), len(sent), 1000 * conv.jitter, lookahead)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--chunk-ms", type=float, default=40.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--jitter-ms", type=float, default=None, help="override the controller's jitter buffer")
    ap.add_argument("--engine", choices=["standard", "low", "both"], default="both", help="which engine (both)")
    ap.add_argument("--mode", choices=["sdk", "local", "both"], default="both", help="service or in-process (both)")
    args = ap.parse_args()
    p50: dict[tuple[str, str], float] = {}
    for mode in ("sdk", "local") if args.mode == "both" else (args.mode,):
        for engine in ("standard", "low") if args.engine == "both" else (args.engine,):
            low = engine == "low"
            result = asyncio.run(measure(args.seconds, args.chunk_ms, args.fps, args.size, args.jitter_ms, low, mode))
            where = "SDK mode, loopback WebSocket" if mode == "sdk" else "local mode, in process"
            print(f"end-to-end latency, {engine} engine, {where}, {args.chunk_ms:.0f} ms chunks, view at "
                  f"{args.fps:.0f} fps, {args.size}x{args.size}")  # fmt: skip
            print(result.summary())
            p50[mode, engine] = result.percentile(50)
    for engine in ("standard", "low"):
        if ("sdk", engine) in p50 and ("local", engine) in p50:
            ratio = p50["local", engine] / p50["sdk", engine]
            print(f"{engine} engine: local p50 / SDK p50 = {ratio:.2f} (at most 1 expected)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
