"""CPU cost of one pipecat avatar: process CPU time over wall time, idle and while it speaks.

    python bench/pipecat_cpu.py [--size 512] [--fps 30] [--seconds 10]

Runs ``AvatarKitVideoService`` in a real pipecat pipeline (pipecat's test runner: a source, the
service, a sink that keeps nothing), in local driving mode. It idles for a few seconds, then the
bundled sentence arrives as a TTS service sends it (all at once, in 40 ms frames) and plays in real
time. The figures are the process's CPU seconds per wall second (1.0 is one core busy) over the
idle stretch and over the speech, measured between the images the service sent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import numpy as np
from pipecat.frames.frames import Frame, OutputImageRawFrame, TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.worker import PipelineParams
from pipecat.tests.utils import SleepFrame, run_test

from avatarkit.integrations.pipecat import AvatarKitVideoService
from avatarkit.media import DEMO_SPEECH, decode_audio

RATE = 24000


class Clock(BaseObserver):
    """(wall, cpu, speaking) at each image the service sends."""

    def __init__(self, service: AvatarKitVideoService) -> None:
        super().__init__()
        self.service = service
        self.ticks: list[tuple[float, float, bool]] = []
        self._speaking = False

    async def on_push_frame(self, data: FramePushed) -> None:
        if data.source is not self.service:
            return
        if isinstance(data.frame, TTSAudioRawFrame):
            self._speaking = True
        elif isinstance(data.frame, OutputImageRawFrame):
            self.ticks.append((time.monotonic(), time.process_time(), self._speaking))
            self._speaking = False


def load(ticks: list[tuple[float, float, bool]]) -> float:
    return (ticks[-1][1] - ticks[0][1]) / (ticks[-1][0] - ticks[0][0])


async def main(size: int, fps: int, seconds: float, idle: float) -> None:
    pcm = decode_audio(DEMO_SPEECH, RATE)
    pcm = np.tile(pcm, int(np.ceil(seconds * RATE / len(pcm))))[: round(seconds * RATE)]
    n = round(0.04 * RATE)
    frames: list[Frame] = [SleepFrame(idle), TTSStartedFrame(context_id="bench")]
    frames += [TTSAudioRawFrame(pcm[i : i + n].tobytes(), RATE, 1, context_id="bench") for i in range(0, len(pcm), n)]
    frames.append(TTSStoppedFrame(context_id="bench"))
    service = AvatarKitVideoService(width=size, height=size, fps=fps)
    clock = Clock(service)
    await run_test(
        service,
        frames_to_send=frames,
        observers=[clock],
        pipeline_params=PipelineParams(audio_out_sample_rate=RATE),
        start_timeout=60.0,
    )
    ticks = clock.ticks
    speaking = [i for i, t in enumerate(ticks) if t[2]]
    idle_ticks = [t for t in ticks[: speaking[0]] if t[0] > ticks[0][0] + 1.0]  # past the first second
    talk = ticks[speaking[0] : speaking[-1] + 1]
    rate = (len(talk) - 1) / (talk[-1][0] - talk[0][0])
    print(f"{size}x{size} at {fps} fps on {os.cpu_count()} cores; {len(ticks)} images")
    print(f"idle:     {load(idle_ticks):.2f} cores over {idle_ticks[-1][0] - idle_ticks[0][0]:.1f} s")
    print(f"speaking: {load(talk):.2f} cores over {talk[-1][0] - talk[0][0]:.1f} s ({rate:.1f} images/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=float, default=4.0)
    args = parser.parse_args()
    asyncio.run(main(args.size, args.fps, args.seconds, args.idle))
