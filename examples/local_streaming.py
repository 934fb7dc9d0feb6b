"""Local mode, streaming: the speech engine in this process, no service and no token.

    python examples/local_streaming.py [--seconds 3] [--out frames.mp4]

Makes a headless view of the built-in avatar, streams the bundled sentence in 40 ms chunks as a
TTS engine or a microphone would, and takes each rendered frame with the audio that plays during
it, with the utterance's end marked: what a video pipeline (WebRTC, LiveKit, pipecat) consumes.
With ``--out`` it writes them to a video with sound.
"""

from __future__ import annotations

import argparse
import asyncio

from avatarkit import AudioFormat, AvatarController, AvatarManager, AvatarSDK, AvatarView, Configuration
from avatarkit.media import DEMO_SPEECH, decode_audio
from avatarkit.server.samples import ensure_samples
from avatarkit.view import HeadlessSurface

RATE = 24000  # what many TTS engines produce
CHUNK = RATE // 25  # 40 ms


async def speak(controller: AvatarController, seconds: float) -> None:
    """Stream the bundled sentence's first ``seconds`` at the pace it is spoken."""
    pcm = decode_audio(DEMO_SPEECH, RATE)[: round(seconds * RATE)]
    for i in range(0, len(pcm), CHUNK):
        controller.send(pcm[i : i + CHUNK], end=i + CHUNK >= len(pcm))
        await asyncio.sleep(CHUNK / RATE)


async def main(seconds: float, out: str | None = None) -> int:
    config = Configuration(driving_service_mode="local", audio_format=AudioFormat(sample_rate=RATE))
    AvatarSDK.initialize("local", config)
    view = AvatarView(HeadlessSurface(256, 256), AvatarManager.derive(ensure_samples() / "default"))
    controller = view.avatar_controller
    await controller.start()  # no service, no token: the engine runs here
    writer = None
    if out:
        from avatarkit.media import VideoWriter

        writer = VideoWriter(out, 256, 256, fps=25, sample_rate=48000)
    speaker = asyncio.create_task(speak(controller, seconds))
    frames = speaking = 0
    async for frame in controller.av_frames(fps=25, sample_rate=48000):
        frames += 1
        speaking += frame.speaking
        if writer is not None:
            writer.write(frame.image, frame.audio)
        if frame.end_of_utterance:
            break
    await speaker
    if writer is not None:
        writer.close()
    await controller.close()
    view.destroy()
    print(f"{frames} frames, {speaking} with speech, then the end of the utterance")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", help="write the frames and their audio to this video file")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.seconds, args.out)))
