"""Host mode: your backend drives the avatar service and relays audio and motion to the view.

    python examples/host_backend.py [--seconds 3]

Three parts, here in one process so the example runs offline; in production each is its own:

- the driving service (``avatarkit serve``, started in-process here);
- **the backend**: a small aiohttp app that holds the API key. On a client's request it speaks,
  sending the speech to the service with the official server SDK (``spatialreal``), and relays to
  the client, over one WebSocket, each audio chunk and then every animation message the SDK's
  ``transport_frames`` callback hands over (the serialized ``driveningress.v2`` envelopes, as they
  are);
- **the client**: an ``AvatarView`` in Host mode. It never sees a token: it feeds the relayed audio to
  ``controller.yield_audio_data()`` and the relayed messages to ``controller.yield_frames_data()``
  under the conversation that audio started, and renders.

Relay framing (binary messages): ``b"A" + end flag byte + PCM16`` for audio, ``b"F" + envelope`` for
motion; one text message ``{"type": "utterance", "req_id": ...}`` tells which service request the
utterance became, and ``{"type": "done"}`` ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import aiohttp
import numpy as np
import spatialreal
from aiohttp import web

from avatarkit import (
    AvatarManager,
    AvatarSDK,
    AvatarView,
    Configuration,
    ConversationState,
    DrivingServiceMode,
    Environment,
)
from avatarkit.commands import embedded_service
from avatarkit.media import DEMO_SPEECH, decode_audio
from avatarkit.protocol import parse_message
from avatarkit.server.config import development_config
from avatarkit.view import HeadlessSurface

RATE = 16000
CHUNK = RATE // 10  # 100 ms of speech per message, as a TTS engine might produce it


# ------------------------------------------------------------------------------------------ backend


def backend_app(service_url: str, app_id: str, api_key: str) -> web.Application:
    """The app's backend: ``GET /relay`` is a WebSocket; ``{"type": "speak", "seconds": s}`` speaks."""

    async def relay(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        outgoing: asyncio.Queue[bytes | str | None] = asyncio.Queue()  # one queue keeps the order

        def on_frames(raw: bytes, last: bool) -> None:
            outgoing.put_nowait(b"F" + raw)

        session = spatialreal.new_avatar_session(
            api_key=api_key,
            app_id=app_id,
            avatar_id="default",
            expire_at=datetime.now(timezone.utc) + timedelta(minutes=10),
            console_endpoint_url=service_url,
            ingress_endpoint_url=service_url + "/v2/driveningress",
            sample_rate=RATE,
            transport_frames=on_frames,
            on_error=lambda err: outgoing.put_nowait(json.dumps({"type": "error", "message": str(err)})),
        )
        await session.init()
        await session.start()

        async def writer() -> None:
            while (item := await outgoing.get()) is not None:
                await (ws.send_str(item) if isinstance(item, str) else ws.send_bytes(item))

        writing = asyncio.create_task(writer())
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT or json.loads(msg.data).get("type") != "speak":
                    continue
                pcm = decode_audio(DEMO_SPEECH, RATE)[: round(float(json.loads(msg.data)["seconds"]) * RATE)]
                req_id = None
                for i in range(0, len(pcm), CHUNK):
                    chunk, end = pcm[i : i + CHUNK].tobytes(), i + CHUNK >= len(pcm)
                    outgoing.put_nowait(b"A" + bytes([end]) + chunk)  # the client hears it first ...
                    sent = await session.send_audio(chunk, end=end)  # ... then the service animates it
                    if req_id is None:
                        req_id = sent
                        outgoing.put_nowait(json.dumps({"type": "utterance", "req_id": req_id}))
                    await asyncio.sleep(0.02)  # synthesis takes a little time per chunk
        finally:
            await session.close()
            outgoing.put_nowait(None)
            await writing
        return ws

    app = web.Application()
    app.router.add_get("/relay", relay)
    return app


# ------------------------------------------------------------------------------------------- client


@dataclasses.dataclass
class Summary:
    frames_rendered: int
    motion_frames: int
    states: list[str]
    mouth_change: float  # largest mean absolute change of the mouth region from one frame to the next, 0..255
    idle_change: float  # the same over a second of idle life before the speech (breathing, sway)


async def client(relay_url: str, view: AvatarView, seconds: float) -> Summary:
    """The Host-mode view: plays what the backend relays, and renders while it plays."""
    controller = view.avatar_controller
    states: list[str] = []
    controller.on_conversation_state = lambda state, reason: states.append(state.value)
    mouth = (slice(105, 165), slice(96, 160))  # where the default avatar's mouth is at 256 x 256
    # Frame to frame: idle life moves the face slowly (a few levels over a second, against a first
    # frame), speech moves the mouth by many levels between two frames.
    previous = (await view.render_frame()).image[mouth].astype(np.int16)
    changes: list[float] = []
    rendered = 0

    async def render() -> None:
        nonlocal rendered, previous
        async for frame in view.frames(fps=25):
            rendered += 1
            region = frame.image[mouth].astype(np.int16)
            changes.append(float(np.abs(region - previous).mean()))
            previous = region

    rendering = asyncio.create_task(render())
    await asyncio.sleep(1.0)  # idle life first: how much the mouth region moves without speech
    idle_change = max(changes, default=0.0)
    changes.clear()
    conversation: dict[str, str] = {}  # service request id -> our conversation id
    waiting: defaultdict[str, list[bytes]] = defaultdict(list)  # frames that beat their mapping
    current = None
    async with aiohttp.ClientSession() as http, http.ws_connect(relay_url) as ws:
        await ws.send_json({"type": "speak", "seconds": seconds})
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data[:1] == b"A":
                current = controller.yield_audio_data(msg.data[2:], end=bool(msg.data[1]))
            elif msg.type == aiohttp.WSMsgType.BINARY and msg.data[:1] == b"F":
                raw = msg.data[1:]
                req_id = parse_message(raw).server_response_animation.req_id
                if req_id in conversation:
                    controller.yield_frames_data(raw, conversation[req_id])
                else:
                    waiting[req_id].append(raw)
                if parse_message(raw).server_response_animation.end:
                    break
            elif msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data["type"] == "utterance" and current is not None:
                    conversation[data["req_id"]] = current
                    controller.yield_frames_data(waiting.pop(data["req_id"], []), current)
                elif data["type"] == "error":
                    raise RuntimeError(data["message"])
    conv = controller.conversation()
    deadline = time.monotonic() + seconds + 5.0
    while controller.conversation_state is not ConversationState.IDLE and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    rendering.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await rendering
    return Summary(rendered, len(conv.timeline) if conv else 0, states, max(changes, default=0.0), idle_change)


async def main(seconds: float) -> Summary:
    with embedded_service() as (server, app_id):
        api_key = development_config(app_id)[0].apps[app_id].api_key
        runner = web.AppRunner(backend_app(server.url, app_id, api_key))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        local = Environment.local(port=server.port)  # the avatar's assets still come from the service
        AvatarSDK.initialize(app_id, Configuration(environment=local, driving_service_mode=DrivingServiceMode.HOST))
        try:
            avatar = await AvatarManager.load("default")  # the assets come from the service over HTTP
            with AvatarView(HeadlessSurface(256, 256), avatar) as view:
                summary = await client(f"ws://127.0.0.1:{port}/relay", view, seconds)
        finally:
            AvatarSDK.cleanup()
            await runner.cleanup()
    print(
        f"host mode: {summary.motion_frames} motion frames relayed, {summary.frames_rendered} frames rendered, "
        f"conversation {' -> '.join(summary.states)}, mouth changed by up to {summary.mouth_change:.1f} levels "
        f"between frames ({summary.idle_change:.1f} while idle)"
    )
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    asyncio.run(main(parser.parse_args().seconds))
