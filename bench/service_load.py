"""Load on the driving service: N sessions stream real-time audio over loopback; first-frame latency.

Starts ``avatarkit serve`` in a subprocess (its own core and GIL), opens N WebSocket sessions from
this process and streams speech-like PCM in real time (40 ms chunks on an absolute clock, sessions
offset evenly across a chunk). A chunk's latency is from its send to the arrival of the first frame
it completed: frame ``k`` is complete once the audio reaches the end of the frame plus the engine's
look-ahead (``EngineSession.lookahead_ms``), so that latency is the service's own delay on top of the
look-ahead the engine needs. Reports p50/p99 per N and the server's CPU use.

    python bench/service_load.py                  # N = 1, 10, 50
    python bench/service_load.py --n 1 50 100 150 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

import aiohttp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from speech_audio import speech_like

from avatarkit.codec import StreamDecoder
from avatarkit.engine import EngineSession
from avatarkit.protocol import Message, MessageType, parse_message

API_KEY = "ak_bench-key-0123"
CONFIG = f"""
token_secret = "bench-secret-0123456789abcdef"
check_avatars = false
max_sessions = 5000
[limits]
concurrent_sessions = 5000
idle_timeout_seconds = 120
[apps.bench]
api_key = "{API_KEY}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def token(url: str) -> str:
    async with aiohttp.ClientSession() as http:
        body = {"expireAt": int(time.time()) + 3600}
        async with http.post(url + "/v1/auth/session-token", json=body, headers={"X-Api-Key": API_KEY}) as r:
            return str((await r.json())["sessionToken"])


async def session(
    url: str,
    key: str,
    audio: bytes,
    rate: int,
    chunk_ms: int,
    offset: float,
    lookahead: float,
    latencies: list[float],
) -> int:
    chunk = rate * chunk_ms // 1000 * 2
    parts = [audio[i : i + chunk] for i in range(0, len(audio), chunk)]
    frame_samples = rate / 25
    sent: list[float] = []
    ws_url = url.replace("http", "ws") + "/v2/driveningress/websocket?id=bench"
    headers = {"X-App-ID": "bench", "X-Session-Key": key}
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, headers=headers) as ws:
        configure = Message(type=MessageType.MESSAGE_CLIENT_CONFIGURE_SESSION)
        configure.client_configure_session.sample_rate = rate
        await ws.send_bytes(configure.SerializeToString())
        reply = parse_message((await ws.receive(timeout=10)).data)
        assert reply.type == MessageType.MESSAGE_SERVER_CONFIRM_SESSION, reply

        async def send() -> None:
            await asyncio.sleep(offset)
            start = time.perf_counter()
            for i, part in enumerate(parts):
                delay = start + i * chunk_ms / 1000 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                message = Message(type=MessageType.MESSAGE_CLIENT_AUDIO_INPUT)
                message.client_audio_input.req_id = "load"
                message.client_audio_input.audio = part
                message.client_audio_input.end = i == len(parts) - 1
                sent.append(time.perf_counter())
                await ws.send_bytes(message.SerializeToString())

        sender = asyncio.create_task(send())
        frames = 0
        decoder = StreamDecoder()
        while True:
            msg = await ws.receive(timeout=30)
            now = time.perf_counter()
            animation = parse_message(msg.data).server_response_animation
            decoded = decoder.decode(animation.animation)
            if len(decoded.values) and not animation.end:
                k = int(decoded.frame_indices[0])
                needed = (k + 1) * frame_samples + lookahead * rate / 1000  # samples
                index = min(math.ceil(needed * 2 / chunk) - 1, len(sent) - 1)
                latencies.append(now - sent[index])
            frames += len(decoded.values)
            if animation.end:
                break
        await sender
        await ws.close()
    return frames


async def run(
    url: str, n: int, seconds: float, rate: int, chunk_ms: int, lookahead: float, first: int = 0, total: int = 0
) -> list[float]:
    """Sessions ``first`` .. ``first + n - 1`` of ``total`` (their start offsets spread over a chunk)."""
    total = total or n
    keys = await asyncio.gather(*(token(url) for _ in range(n)))
    latencies: list[float] = []
    audios = [speech_like(seconds, rate, seed=i % 8).tobytes() for i in range(min(n, 8))]
    results = await asyncio.gather(
        *(
            session(
                url, keys[i], audios[i % 8], rate, chunk_ms, chunk_ms / 1000 * (first + i) / total, lookahead, latencies
            )
            for i in range(n)
        )
    )
    expected = math.ceil(seconds / 0.04 - 1e-9)
    assert all(r == expected for r in results), (results, expected)
    return latencies


def _client(args: tuple[str, int, int, int, float, int, int, float]) -> tuple[list[float], float]:
    """One client process: its share of the sessions; returns latencies and its CPU seconds."""
    url, n, first, total, seconds, rate, chunk_ms, lookahead = args
    start = time.process_time()
    latencies = asyncio.run(run(url, n, seconds, rate, chunk_ms, lookahead, first, total))
    return latencies, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--seconds", type=float, default=8.0, help="audio per session (default 8)")
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--chunk-ms", type=int, default=40)
    parser.add_argument("--procs", type=int, default=1, help="client processes (default 1)")
    args = parser.parse_args()

    lookahead = EngineSession(args.rate).lookahead_ms
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = pathlib.Path(tmp) / "bench.toml"
        config.write_text(CONFIG)
        env = {**os.environ, "AVATARKIT_CONFIG_DIR": tmp}
        server = subprocess.Popen(
            [sys.executable, "-m", "avatarkit", "serve", "--port", str(port), "--config", str(config)],
            stdout=subprocess.DEVNULL,
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                        break
                except OSError:
                    time.sleep(0.1)
            print(f"engine look-ahead {lookahead:g} ms; {args.chunk_ms} ms chunks at {args.rate} Hz, real time")
            print(f"{'N':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'chunks':>8} {'server CPU':>11} {'clients':>8}")
            for n in args.n:
                procs = max(1, min(args.procs, n))
                shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
                jobs = [
                    (url, share, sum(shares[:i]), n, args.seconds, args.rate, args.chunk_ms, lookahead)
                    for i, share in enumerate(shares)
                ]
                cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
                if procs == 1:
                    results = [_client(jobs[0])]
                else:
                    with multiprocessing.get_context("spawn").Pool(procs) as pool:
                        results = pool.map(_client, jobs)
                wall = time.perf_counter() - t0
                cpu = (cpu_seconds(server.pid) - cpu0) / wall
                client_cpu = sum(r[1] for r in results) / wall
                ms = np.array([x for r in results for x in r[0]]) * 1000
                print(
                    f"{n:>5} {np.percentile(ms, 50):>8.1f} {np.percentile(ms, 99):>8.1f} {ms.max():>8.1f} "
                    f"{len(ms):>8} {cpu:>10.0%} {client_cpu:>8.0%}",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
