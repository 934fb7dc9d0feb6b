"""Load on the driving service: N sessions stream real-time audio over loopback; first-frame latency.

Starts ``avatarkit serve`` in a subprocess (its own core and GIL), opens N WebSocket sessions from
this process and streams speech-like PCM in real time (40 ms chunks on an absolute clock, sessions
offset evenly across a chunk). A chunk's latency is from its send to the arrival of the first frame
it completed: frame ``k`` is complete once the audio reaches the end of the frame plus the engine's
look-ahead (``EngineSession.lookahead_ms``), so that latency is the service's own delay on top of the
look-ahead the engine needs. Reports p50/p99 per N and the server's CPU use.

    python bench/service_load.py                  # N = 1, 10, 50
    python bench/service_load.py --n 1 50 100 150 --seconds 10
    python bench/service_load.py --n 10 30 --engine-inline-ms 0 --engine-threads 2   # engine on a pool

``--abuse``: one healthy real-time session beside each kind of abusive neighbour in turn, the
neighbour in a process of its own (as an attacker would be): ``control`` (ClientInterrupt as fast as
it can, reconnecting whenever the rate cap closes it), ``bulk`` (audio as fast as the server takes
it, 64 kB messages), ``churn`` (sessions opened and closed back to back), ``malformed`` (invalid
protobuf and text frames, reconnecting after each close). Reports the healthy session's p50/p99
beside each, then the server's RSS and open descriptors before and after 1,000 sessions
(``--sessions``), then how long SIGTERM takes with a client that does not read and one that streams
faster than real time still connected.

    python bench/service_load.py --abuse --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import pathlib
import signal
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


# ------------------------------------------------------------------------------- abusive neighbours


async def _open(http: aiohttp.ClientSession, url: str, key: str) -> aiohttp.ClientWebSocketResponse:
    ws_url = url.replace("http", "ws") + "/v2/driveningress/websocket?id=bench"
    ws = await http.ws_connect(ws_url, headers={"X-App-ID": "bench", "X-Session-Key": key}, max_msg_size=0)
    configure = Message(type=MessageType.MESSAGE_CLIENT_CONFIGURE_SESSION)
    configure.client_configure_session.sample_rate = 16000
    await ws.send_bytes(configure.SerializeToString())
    await ws.receive(timeout=10)
    return ws


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    while not ws.closed:
        msg = await ws.receive()
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return


def _audio(req_id: str, audio: bytes, end: bool) -> bytes:
    message = Message(type=MessageType.MESSAGE_CLIENT_AUDIO_INPUT)
    message.client_audio_input.req_id = req_id
    message.client_audio_input.audio = audio
    message.client_audio_input.end = end
    return message.SerializeToString()


async def abuse(url: str, kind: str, seconds: float) -> dict[str, int]:
    """Misbehave as ``kind`` says for ``seconds``; counts of what was sent and how often it was closed."""
    key = await token(url)
    sent = closed = opened = 0
    end = time.monotonic() + seconds
    interrupt = Message(type=MessageType.MESSAGE_CLIENT_INTERRUPT).SerializeToString()
    audio = speech_like(8.0, 16000, seed=3).tobytes()
    short = audio[:6400]
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < end:
            ws = await _open(http, url, key)
            opened += 1
            drain = asyncio.create_task(_drain(ws))
            try:
                if kind == "control":
                    while not ws.closed and time.monotonic() < end:
                        for _ in range(100):
                            await ws.send_bytes(interrupt)
                        sent += 100
                        await asyncio.sleep(0)  # lets the reader see a close
                elif kind == "bulk":
                    k = 0
                    while not ws.closed and time.monotonic() < end:
                        for i in range(0, len(audio), 65536):
                            await ws.send_bytes(_audio(f"bulk{k}", audio[i : i + 65536], i + 65536 >= len(audio)))
                            sent += 1
                        k += 1
                elif kind == "churn":
                    await ws.send_bytes(_audio("churn", short, True))
                    sent += 1
                    await ws.close()
                elif kind == "malformed":
                    await ws.send_bytes(b"\xff\xff\xff\xff" if sent % 2 else b"\x08\x99\x01\x12")
                    if sent % 3 == 0:
                        await ws.send_str("not protobuf")
                    sent += 1
                    await asyncio.wait_for(drain, 10)
                else:
                    raise ValueError(f"unknown kind {kind!r}")
            except (ConnectionError, RuntimeError, asyncio.TimeoutError):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(drain), 1)
            if ws.close_code not in (None, 1000):
                closed += 1
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
            await ws.close()
    return {"sent": sent, "closed": closed, "opened": opened}


def _abuse_proc(args: tuple[str, str, float, int]) -> dict[str, int]:
    url, kind, seconds, niceness = args
    if niceness:
        os.nice(niceness)  # tells the CPU the neighbour takes from the rest apart from the server's own cost
    return asyncio.run(abuse(url, kind, seconds))


def server_stats(pid: int) -> tuple[float, int]:
    """The server's resident memory (MB) and open file descriptors."""
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


async def many_sessions(url: str, count: int, parallel: int = 50) -> None:
    """``count`` short sessions, ``parallel`` at a time: configure, 0.2 s of audio, its frames, close."""
    key = await token(url)
    audio = speech_like(0.2, 16000, seed=4).tobytes()
    done = 0

    async def one(http: aiohttp.ClientSession) -> None:
        ws = await _open(http, url, key)
        await ws.send_bytes(_audio("s", audio, True))
        while True:
            msg = await ws.receive(timeout=30)
            if parse_message(msg.data).server_response_animation.end:
                break
        await ws.close()

    async with aiohttp.ClientSession() as http:
        while done < count:
            batch = min(parallel, count - done)
            await asyncio.gather(*(one(http) for _ in range(batch)))
            done += batch


async def misbehaving_clients(url: str) -> list[socket.socket]:
    """A client that never reads (raw socket, tiny buffer) and one streaming faster than real time."""
    key = await token(url)
    host, port = url.removeprefix("http://").split(":")
    socks = []
    audio = speech_like(8.0, 16000, seed=5).tobytes()
    for _ in range(2):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.sendall(
            f"GET /v2/driveningress/websocket?id=bench HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"X-App-ID: bench\r\nX-Session-Key: {key}\r\n\r\n".encode()
        )
        sock.setblocking(False)
        configure = Message(type=MessageType.MESSAGE_CLIENT_CONFIGURE_SESSION)
        configure.client_configure_session.sample_rate = 16000
        frames = [configure.SerializeToString()] + [
            _audio(f"r{k}", audio[i : i + 16000], i + 16000 >= len(audio))
            for k in range(8)
            for i in range(0, len(audio), 16000)
        ]
        for payload in frames:
            n = len(payload)
            size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
            try:
                sock.send(b"\x82" + size + b"\0\0\0\0" + payload)  # what the buffers take; never read
            except BlockingIOError:
                break
        socks.append(sock)
    await asyncio.sleep(1.0)
    return socks


def abuse_report(
    url: str,
    server: subprocess.Popen[bytes],
    seconds: float,
    sessions: int,
    lookahead: float,
    kinds: list[str],
    niceness: int = 0,
) -> None:
    print(f"healthy real-time session ({seconds:g} s, 40 ms chunks) beside one abusive connection")
    print(f"{'neighbour':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'sent':>9} {'sessions':>8} {'closed':>7}")
    context = multiprocessing.get_context("spawn")
    for kind in kinds:
        with context.Pool(1) as pool:
            job = (url, kind, seconds + 2, niceness)
            pending = None if kind == "none" else pool.apply_async(_abuse_proc, (job,))
            time.sleep(1.0)
            ms = np.array(asyncio.run(run(url, 1, seconds, 16000, 40, lookahead))) * 1000
            counts = pending.get(timeout=seconds + 60) if pending else {"sent": 0, "closed": 0, "opened": 0}
        print(
            f"{kind:>10} {np.percentile(ms, 50):>8.1f} {np.percentile(ms, 99):>8.1f} {ms.max():>8.1f} "
            f"{counts['sent']:>9} {counts['opened']:>8} {counts['closed']:>7}",
            flush=True,
        )
    rss0, fds0 = server_stats(server.pid)
    t0 = time.perf_counter()
    asyncio.run(many_sessions(url, sessions))
    took = time.perf_counter() - t0
    time.sleep(1.0)
    rss1, fds1 = server_stats(server.pid)
    print(f"{sessions} sessions in {took:.1f} s: server RSS {rss0:.0f} -> {rss1:.0f} MB, open fds {fds0} -> {fds1}")

    async def stop() -> float:
        socks = await misbehaving_clients(url)
        start = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, server.wait, 120)
        for sock in socks:
            sock.close()
        return time.perf_counter() - start

    print(
        f"SIGTERM with a client that does not read and a fast streamer connected: exit in {asyncio.run(stop()):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--seconds", type=float, default=8.0, help="audio per session (default 8)")
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--chunk-ms", type=int, default=40)
    parser.add_argument("--procs", type=int, default=1, help="client processes (default 1)")
    parser.add_argument("--abuse", action="store_true", help="a healthy session beside abusive neighbours")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions for the RSS / fd check (--abuse)")
    parser.add_argument(
        "--kinds", nargs="+", default=["none", "control", "bulk", "churn", "malformed"], help="neighbours (--abuse)"
    )
    parser.add_argument("--nice", type=int, default=0, help="niceness of the abusive neighbour's process (--abuse)")
    parser.add_argument(
        "--engine-inline-ms", type=float, help="the server's engine_inline_ms (0: all engine work on its thread pool)"
    )
    parser.add_argument("--engine-threads", type=int, help="the server's engine_threads (that pool's size)")
    args = parser.parse_args()

    lookahead = EngineSession(args.rate).lookahead_ms
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = pathlib.Path(tmp) / "bench.toml"
        runner = "" if args.engine_inline_ms is None else f"engine_inline_ms = {args.engine_inline_ms}\n"
        runner += "" if args.engine_threads is None else f"engine_threads = {args.engine_threads}\n"
        config.write_text(runner + CONFIG)
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
            if args.abuse:
                abuse_report(url, server, args.seconds, args.sessions, lookahead, args.kinds, args.nice)
                return
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
