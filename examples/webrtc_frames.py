"""Video frames with matching audio for a WebRTC pipeline (aiortc, LiveKit), without depending on them.

    python examples/webrtc_frames.py [--seconds 2]

``controller.av_frames()`` yields (RGBA image, the audio that plays during it, timestamp). This turns
them into PyAV ``VideoFrame``/``AudioFrame`` objects with pts in the units a WebRTC track uses
(90 kHz video, sample-rate audio), which is what an aiortc ``MediaStreamTrack.recv()`` returns.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions

import av

from avatarkit import AvatarManager, AvatarSDK, AvatarView, Configuration
from avatarkit.media import DEMO_SPEECH, decode_audio
from avatarkit.server.samples import ensure_samples
from avatarkit.video import local_motion
from avatarkit.view import HeadlessSurface

VIDEO_CLOCK = 90000


async def main(seconds: float) -> int:
    AvatarSDK.initialize("local", Configuration())
    avatar = AvatarManager.derive(ensure_samples() / "default")
    view = AvatarView(HeadlessSurface(320, 320), avatar)
    controller = view.avatar_controller
    rate = 16000
    pcm = decode_audio(DEMO_SPEECH, rate)[: round(seconds * rate)]
    controller.play(pcm, local_motion(pcm, rate), sample_rate=rate)
    video_frames = audio_samples = 0
    async for item in controller.av_frames(fps=25, realtime=True):
        video = av.VideoFrame.from_ndarray(item.image, format="rgba")
        video.pts = round(item.timestamp * VIDEO_CLOCK)
        video.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        audio = av.AudioFrame.from_ndarray(item.audio[None, :], format="s16", layout="mono")
        audio.sample_rate = item.sample_rate
        audio.pts = round(item.timestamp * item.sample_rate)
        audio.time_base = fractions.Fraction(1, item.sample_rate)
        video_frames += 1
        audio_samples += audio.samples  # hand `video` and `audio` to your tracks here
        if video_frames >= seconds * 25:
            break
    view.destroy()
    print(f"{video_frames} video frames, {audio_samples / rate:.2f} s of audio, in step")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    raise SystemExit(asyncio.run(main(parser.parse_args().seconds)))
