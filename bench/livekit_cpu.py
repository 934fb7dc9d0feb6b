"""CPU per stream of an avatar in LiveKit Agents: cores busy while it speaks in real time.

    python bench/livekit_cpu.py [--seconds 10] [--size 512] [--fps 30] [--streams 1]

Each stream is what ``avatarkit.integrations.livekit.AvatarSession`` runs in an agent's process: a
local-mode controller (the engine in-process), a headless view, ``AvatarKitVideoGenerator`` and
LiveKit's own ``AvatarRunner`` with its native ``AudioSource``, ``VideoSource`` and
``AVSynchronizer``, fed through ``AvatarKitAudioOutput`` as an ``AgentSession`` feeds it: the bundled
speech in 20 ms frames at 24 kHz as fast as the queue takes them, then the end of the segment, again
and again. There is no LiveKit server here, so the room is a stand-in whose tracks publish at once:
the figure leaves out WebRTC's video encoding (VP8/H.264 on the subscriber's behalf), which LiveKit's
native library does once a track has subscribers.

It reports process CPU time over wall time while the streams speak (cores busy, all streams),
and that divided by the streams.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import AvatarOptions, AvatarRunner

from avatarkit import AudioFormat, AvatarManager, AvatarSDK, AvatarView, Configuration, HeadlessSurface
from avatarkit.integrations.livekit import AvatarKitAudioOutput, AvatarKitVideoGenerator
from avatarkit.media import DEMO_SPEECH, decode_audio
from avatarkit.server.samples import ensure_samples

RATE = 24000


class _Publication:
    async def wait_for_subscription(self) -> None:
        return None


class _Participant:
    async def publish_track(self, track: Any, options: Any) -> _Publication:
        return _Publication()


class StandInRoom(rtc.EventEmitter[str]):
    """The members of ``rtc.Room`` that ``AvatarRunner`` uses: connected, tracks publish at once."""

    def __init__(self) -> None:
        super().__init__()
        self.local_participant = _Participant()

    def isconnected(self) -> bool:
        return True


async def stream(avatar: Any, size: int, fps: float, until: float, speech: np.ndarray) -> float:
    """One avatar speaking until ``until`` (loop time); returns the seconds of audio it played."""
    view = AvatarView(HeadlessSurface(size, size), avatar, fps=fps)
    controller = view.avatar_controller
    await controller.start()
    generator = AvatarKitVideoGenerator(controller, fps=fps)
    output = AvatarKitAudioOutput(generator, sample_rate=RATE)
    runner = AvatarRunner(
        StandInRoom(),  # type: ignore[arg-type]
        audio_recv=output,
        video_gen=generator,
        options=AvatarOptions(size, size, fps, RATE, 1),
    )
    await runner.start()
    played = 0.0
    loop = asyncio.get_running_loop()
    step = RATE // 50
    try:
        while loop.time() < until:
            for i in range(0, len(speech), step):
                chunk = speech[i : i + step]
                await output.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, len(chunk)))
            output.flush()
            event = await output.wait_for_playout()
            played += event.playback_position
    finally:
        await runner.aclose()
        await controller.close()
        view.destroy()
    return played


async def main(seconds: float, size: int, fps: float, streams: int) -> int:
    config = Configuration(driving_service_mode="local", audio_format=AudioFormat(sample_rate=RATE))
    AvatarSDK.initialize("bench", config)
    avatar = AvatarManager.derive(ensure_samples() / "default")
    speech = decode_audio(DEMO_SPEECH, RATE)[: 4 * RATE]  # 4 s utterances
    loop = asyncio.get_running_loop()
    # Warm up (GL contexts, the engine's first run), then measure.
    await asyncio.gather(*(stream(avatar, size, fps, loop.time() + 1.0, speech[:RATE]) for _ in range(streams)))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    played = await asyncio.gather(*(stream(avatar, size, fps, loop.time() + seconds, speech) for _ in range(streams)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    cores = cpu / wall
    print(f"{streams} stream(s) at {size}x{size}, {fps:g} fps: {wall:.1f} s wall, {sum(played):.1f} s of speech played")
    print(f"CPU {cpu:.1f} s: {cores:.2f} cores busy, {cores / streams:.2f} cores per stream")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--streams", type=int, default=1)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.seconds, args.size, args.fps, args.streams)))
