"""SDK mode, streaming: speak audio as it is produced (a TTS-like source that yields chunks).

    python examples/sdk_streaming.py [--seconds 3]

Starts the built-in service in this process, connects a headless view to it, streams generated
speech in 100 ms chunks as a TTS engine would, and counts the frames rendered while it plays.
Against your own service: set ``Environment`` and ``AvatarSDK.session_token`` from your backend.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import numpy as np

from avatarkit import AvatarManager, AvatarSDK, AvatarView, Configuration, ConversationState, Environment
from avatarkit.commands import development_session_token, embedded_service
from avatarkit.view import HeadlessSurface


async def tts_chunks(seconds: float, rate: int = 16000) -> AsyncIterator[np.ndarray]:
    """A stand-in for a TTS engine: voiced syllables, yielded in 100 ms chunks as they are 'made'."""
    t = np.arange(round(seconds * rate)) / rate
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))
    pcm = (voice * syllables * 6000).astype(np.int16)
    for i in range(0, len(pcm), rate // 10):
        await asyncio.sleep(0.02)  # synthesis takes a little time per chunk
        yield pcm[i : i + rate // 10]


async def main(seconds: float) -> int:
    with embedded_service() as (server, app_id):
        AvatarSDK.initialize(app_id, Configuration(environment=Environment.local(port=server.port)))
        AvatarSDK.session_token = await development_session_token(server.url, app_id)
        avatar = await AvatarManager.load("default")
        view = AvatarView(HeadlessSurface(256, 256), avatar)
        controller = view.avatar_controller
        await controller.start()
        async for chunk in tts_chunks(seconds):
            controller.send(chunk)
        controller.send(b"", end=True)
        frames = 0
        async for _frame in view.frames(fps=25):
            frames += 1
            if controller.conversation_state is ConversationState.IDLE and frames > 10:
                break
        await controller.close()
        view.destroy()
    print(f"rendered {frames} frames while speaking {seconds:g} s")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    raise SystemExit(asyncio.run(main(parser.parse_args().seconds)))
