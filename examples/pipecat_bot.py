"""A pipecat voice bot with a talking avatar: you speak, an LLM answers, the avatar says it on video.

    pip install 'pyavatarkit[pipecat]' 'pipecat-ai[runner,webrtc]'
    OPENAI_API_KEY=... python examples/pipecat_bot.py     # then open http://localhost:7860/client

pipecat's development runner serves a WebRTC page (``SmallWebRTCTransport``) and calls ``bot()`` for
each visitor; ``-t daily`` runs it in a Daily room instead (``pipecat-ai[daily]`` and
``DAILY_API_KEY``). OpenAI does the speech recognition, the answers and the voice; any pipecat
STT, LLM and TTS services fit in their place. The avatar is rendered on this machine, lip-synced
by the in-process engine (no avatar service, no token): ``AvatarKitVideoService`` goes where
pipecat's own avatar services go, between the TTS service and the transport's output, and sends
each video frame followed by the speech that plays while it shows.
"""

from __future__ import annotations

import os

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

from avatarkit.integrations.pipecat import AvatarKitVideoService

SIZE = 512
FPS = 30
SAMPLE_RATE = 24000  # the pipeline's output rate: the TTS speaks at it, the avatar plays at it

SYSTEM_PROMPT = (
    "You are a friendly assistant with a face, talking to someone over a video call. Answer in one "
    "or two short spoken sentences, without lists, markdown or emoji."
)


def transport_params() -> TransportParams:
    """Audio both ways, and a video track that shows the avatar's frames at their own rate."""
    return TransportParams(
        audio_in_enabled=True,
        audio_out_enabled=True,
        video_out_enabled=True,
        video_out_is_live=False,  # the avatar's images wait for the audio before them (sync_with_audio)
        video_out_width=SIZE,
        video_out_height=SIZE,
        video_out_framerate=FPS,
    )


def build_pipeline(transport: BaseTransport, api_key: str | None = None) -> tuple[Pipeline, LLMContext]:
    """The bot: speech in, transcript, answer, voice, avatar, video and speech out."""
    key = api_key or os.environ.get("OPENAI_API_KEY")
    stt = OpenAISTTService(api_key=key)
    llm = OpenAILLMService(api_key=key)
    tts = OpenAITTSService(api_key=key, sample_rate=SAMPLE_RATE)
    avatar = AvatarKitVideoService(width=SIZE, height=SIZE, fps=FPS)
    context = LLMContext([{"role": "system", "content": SYSTEM_PROMPT}])
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            aggregators.user(),
            llm,
            tts,
            avatar,  # TTS audio in; images, with the audio that plays during each, out
            transport.output(),
            aggregators.assistant(),
        ]
    )
    return pipeline, context


async def run_bot(transport: BaseTransport, runner_args: RunnerArguments) -> None:
    """Run the bot on one transport until the visitor leaves."""
    pipeline, context = build_pipeline(transport)
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_out_sample_rate=SAMPLE_RATE, enable_metrics=True),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs,
    )

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport: BaseTransport, client: object) -> None:
        context.add_message({"role": "user", "content": "Say hello and introduce yourself briefly."})
        await worker.queue_frames([LLMRunFrame()])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: BaseTransport, client: object) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(worker)
    await runner.run()


def daily_params() -> TransportParams:
    """The same for a Daily room (needs ``pipecat-ai[daily]``)."""
    from pipecat.transports.daily.transport import DailyParams

    return DailyParams(**transport_params().model_dump())


async def bot(runner_args: RunnerArguments) -> None:
    """The entry point pipecat's development runner calls for each session."""
    transport = await create_transport(runner_args, {"webrtc": transport_params, "daily": daily_params})
    await run_bot(transport, runner_args)


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
