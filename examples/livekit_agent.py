"""A LiveKit voice agent with a talking AvatarKit avatar, rendered in the agent's own process.

    pip install 'pyavatarkit[livekit]'
    export LIVEKIT_URL=wss://... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    python -m livekit.agents start examples/livekit_agent.py --dev --log-format colored
    python examples/livekit_agent.py dev        # the same through LiveKit's older built-in CLI

It needs a LiveKit server (LiveKit Cloud or ``livekit-server --dev``) and the models below: here
LiveKit Inference's model names, which LiveKit Cloud serves with the same keys; put any plugin's
STT, LLM and TTS objects in their place. The avatar needs nothing more: AvatarKit's local driving
mode animates it from the agent's speech in-process, with no avatar service and no token. Open
the room in LiveKit's Agents Playground to see and hear it.

``AVATARKIT_AVATAR`` names an avatar bundle or a ``.glb``/``.gltf`` with ARKit or viseme morph
targets (without it, the built-in sample avatar); ``AVATARKIT_SIZE`` (``512x512``) and
``AVATARKIT_FPS`` (``30``) set the video.
"""

from __future__ import annotations

import os
import sys

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, cli, room_io

from avatarkit import AudioFormat, AvatarSDK, Configuration
from avatarkit.integrations.livekit import AvatarSession

AVATAR = os.environ.get("AVATARKIT_AVATAR") or None
WIDTH, HEIGHT = (int(n) for n in os.environ.get("AVATARKIT_SIZE", "512x512").split("x"))
FPS = float(os.environ.get("AVATARKIT_FPS", "30"))

INSTRUCTIONS = "You are a friendly assistant with a face. Keep your answers short and conversational."

server = AgentServer()


def make_session() -> AgentSession[None]:
    """The agent's pipeline: LiveKit Inference models (swap in any plugin's objects)."""
    return AgentSession(
        stt="deepgram/nova-3",
        llm="openai/gpt-4.1-mini",
        tts="cartesia/sonic-3",
        # The avatar's audio output can pause, so LiveKit's default false-interruption handling
        # (resume_false_interruption) pauses the avatar on a cough instead of cutting it off.
    )


def make_avatar() -> AvatarSession:
    """The avatar: the engine in-process (local mode), speech at the TTS's usual 24 kHz."""
    if not AvatarSDK.is_initialized:
        AvatarSDK.initialize(
            "livekit-agent", Configuration(driving_service_mode="local", audio_format=AudioFormat(sample_rate=24000))
        )
    return AvatarSession(AVATAR, width=WIDTH, height=HEIGHT, fps=FPS)


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    """One room: the avatar publishes the agent's video and speech, the session does the talking."""
    await ctx.connect()
    session = make_session()
    avatar = make_avatar()
    await avatar.start(session, room=ctx.room)  # before session.start: it takes the audio output
    await session.start(
        agent=Agent(instructions=INSTRUCTIONS),
        room=ctx.room,
        # The speech reaches the room through the avatar's tracks, in step with its face.
        room_options=room_io.RoomOptions(audio_output=False),
    )
    session.generate_reply(instructions="Greet the user and offer your help.")


if __name__ == "__main__":
    if len(sys.argv) == 1:
        sys.argv.append("dev")
    cli.run_app(server)
