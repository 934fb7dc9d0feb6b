"""Scale-out: two ``avatarkit serve`` workers behind nginx on loopback (the recipe of docs/deployment.md).

The workers share nothing but their config file (the same apps and token secret): a token from one
is good on the other, so when the worker holding a session dies (SIGKILL: the client sees 1006) or
stops (SIGTERM: ServerError 503 and close code 1001), the client connects again through nginx, lands
on the survivor and carries on. Both the official ``spatialreal`` client and our controller are shown
doing it. Needs Debian's nginx (``scripts/setup.sh --test`` installs it); skipped without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
import spatialreal
from speech_audio import speech_like

from avatarkit import (
    AvatarErrorCode,
    AvatarManager,
    AvatarSDK,
    AvatarView,
    Configuration,
    ConnectionState,
    ConversationState,
    Environment,
    StateReason,
)
from avatarkit.codec import StreamDecoder
from avatarkit.protocol import parse_message
from avatarkit.view import HeadlessSurface

from render_helpers import require_gl

API_KEY = "ak_scaleout_test_key_0123456789"
SECRET = "scale-out test secret, shared by every worker"

NGINX_CONF = """\
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream avatarkit {{
        server 127.0.0.1:{port_a} max_fails=1 fail_timeout=30s;
        server 127.0.0.1:{port_b} max_fails=1 fail_timeout=30s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://avatarkit;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], log: pathlib.Path, timeout: float = 180.0) -> None:
    """Wait until ``url`` answers 200 (the first start of a worker generates the sample avatars)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited: {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                return
        assert time.monotonic() < deadline, f"{url} did not come up"
        time.sleep(0.1)


class Cluster:
    """Two workers and nginx in front, each process logging to a file in ``tmp``.

    ``kill(name)`` ends a worker as a crash would (SIGKILL), ``kill(name, signal.SIGTERM)`` as a
    deploy or a process manager stops it.
    """

    def __init__(self, tmp: pathlib.Path, nginx: str) -> None:
        self.tmp = tmp
        config = tmp / "service.toml"
        config.write_text(f'token_secret = "{SECRET}"\n\n[apps.demo]\napi_key = "{API_KEY}"\n')
        self.ports = {"a": free_port(), "b": free_port()}
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        for name, port in self.ports.items():
            env = dict(os.environ, AVATARKIT_WORKER=name)
            with (tmp / f"worker-{name}.log").open("wb") as log:
                self.workers[name] = subprocess.Popen(
                    [sys.executable, "-m", "avatarkit", "serve", "--config", str(config), "--port", str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
        self.port = free_port()
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(user=user, tmp=tmp, port=self.port, port_a=self.ports["a"], port_b=self.ports["b"])
        )
        for name, port in self.ports.items():
            wait_http(f"http://127.0.0.1:{port}/v1/health", self.workers[name], tmp / f"worker-{name}.log")
        with (tmp / "nginx.log").open("wb") as log:
            self.nginx = subprocess.Popen(
                [nginx, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT
            )
        wait_http(f"{self.url}/v1/health", self.nginx, tmp / "nginx.log", timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def sessions(self, name: str) -> int:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{self.ports[name]}/v1/health") as r:
            body = await r.json()
            assert body["worker"] == name
            return int(body["sessions"])

    async def holder(self) -> str:
        """The live worker with an open session (there is exactly one)."""
        held = [n for n, p in self.workers.items() if p.poll() is None and await self.sessions(n)]
        assert len(held) == 1, held
        return held[0]

    def kill(self, name: str, how: signal.Signals = signal.SIGKILL) -> None:
        self.workers[name].send_signal(how)
        self.workers[name].wait(timeout=30)

    def close(self) -> None:
        for proc in [self.nginx, *self.workers.values()]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def cluster(tmp_path: pathlib.Path) -> Iterator[Cluster]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        pytest.skip("nginx is not installed (Debian's nginx; scripts/setup.sh --test installs it)")
    running = Cluster(tmp_path, nginx)
    try:
        yield running
    finally:
        running.close()


def official_session(cluster: Cluster, frames: list[Any], errors: list[Any], closed: list[bool] | None = None) -> Any:
    """An official client session through nginx; it records frames, errors and its own end."""
    return spatialreal.new_avatar_session(
        api_key=API_KEY,
        app_id="demo",
        avatar_id="default",
        expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
        console_endpoint_url=cluster.url,
        ingress_endpoint_url=cluster.url + "/v2/driveningress",
        sample_rate=16000,
        transport_frames=lambda raw, last: frames.append((raw, last)),
        on_error=errors.append,
        on_close=(lambda: closed.append(True)) if closed is not None else None,
    )


async def until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


#: How a worker ends: a crash, or a stop (a deploy, the process manager).
ENDINGS = [pytest.param(signal.SIGKILL, id="killed"), pytest.param(signal.SIGTERM, id="stopped")]


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ENDINGS)
async def test_official_client_reconnects_through_nginx_to_the_surviving_worker(
    cluster: Cluster, how: signal.Signals
) -> None:
    audio = speech_like(4.0).tobytes()
    frames: list[Any] = []
    errors: list[Any] = []
    closed: list[bool] = []
    session = official_session(cluster, frames, errors, closed)
    await session.init()  # the token comes from whichever worker nginx picks: any is good everywhere
    await session.start()
    victim = await cluster.holder()
    for i in range(0, 32000, 3200):  # the first second, as it is spoken
        await session.send_audio(audio[i : i + 3200])
    await until(lambda: len(frames) > 0)  # mid-conversation: motion is flowing
    cluster.kill(victim, how)
    # spatialreal 0.2.2 does not reconnect by itself: it ends the session (on_close) and the app opens
    # a new one. What it reports on the way differs:
    await until(lambda: len(closed) > 0)
    (error,) = errors
    if how is signal.SIGKILL:
        # No close frame comes through nginx: connectionClosed without a close code, retryable.
        assert error.code is spatialreal.AvatarSDKErrorCode.connectionClosed, error
        assert error.close_code is None and error.retryable
    else:
        # ServerError 503 "server is shutting down; reconnect" is a plain serverError to it, and not
        # retryable (its contract only knows 4xxx close codes); the 1001 close that follows is a clean
        # end (no error). So an app reconnects on the session ending, not on ``retryable`` alone.
        assert error.code is spatialreal.AvatarSDKErrorCode.serverError, error
        assert "reconnect" in error.message and not error.retryable
    await session.close()
    errors.clear()

    frames.clear()
    again = official_session(cluster, frames, errors)
    await again.init()
    await again.start()
    survivor = next(n for n in cluster.workers if n != victim)
    assert await cluster.holder() == survivor
    req_id = ""
    for i in range(0, len(audio), 6400):
        req_id = await again.send_audio(audio[i : i + 6400], end=i + 6400 >= len(audio))
    await until(lambda: any(last for _, last in frames))
    await again.close()
    assert errors == []
    messages = [parse_message(raw) for raw, _ in frames]
    assert {m.server_response_animation.req_id for m in messages} == {req_id}
    decoder = StreamDecoder()
    count = sum(len(decoder.decode(m.server_response_animation.animation).values) for m in messages)
    assert count == 100  # the whole 4 s at 25 fps


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ENDINGS)
async def test_controller_reconnects_through_nginx_and_carries_on(
    cluster: Cluster, tmp_path: pathlib.Path, how: signal.Signals
) -> None:
    require_gl()
    AvatarSDK.initialize("demo", Configuration(environment=Environment.local(port=cluster.port)))
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{cluster.url}/v1/auth/session-token",
                headers={"X-Api-Key": API_KEY},
                json={"expireAt": int(time.time()) + 600},
            ) as r,
        ):
            AvatarSDK.session_token = (await r.json())["sessionToken"]
        avatar = await AvatarManager(cache_dir=tmp_path / "cache").load("default")  # assets through nginx too
        with AvatarView(HeadlessSurface(64, 64), avatar) as view:
            c = view.controller
            events: list[tuple[str, object]] = []
            why: list[Any] = []  # the error given with each connecting state
            c.on_connection_state = lambda s, e: (
                events.append(("connection", s)),
                why.append(e) if s is ConnectionState.CONNECTING else None,
            )
            c.on_conversation_state = lambda s, r: events.append(("conversation", r))
            await c.start()
            victim = await cluster.holder()
            pcm = speech_like(4.0)
            cut = c.send(pcm[:16000])
            first = c.playback.current
            await until(lambda: first is not None and len(first.timeline) > 0)
            cluster.kill(victim, how)
            # The audio goes on without motion (fallback) while the controller connects again by
            # itself; nginx sends the new connection to the worker that is left.
            await until(lambda: ("conversation", StateReason.FALLBACK) in events)
            await until(lambda: c.connection_state is ConnectionState.CONNECTED and c.connection_id is not None)
            survivor = next(n for n in cluster.workers if n != victim)
            assert await cluster.holder() == survivor
            lost = why[1]  # why[0] is the first start()
            assert lost is not None and lost.code is AvatarErrorCode.WEBSOCKET_CLOSED_ABNORMALLY
            assert ("code 1006" if how is signal.SIGKILL else "code 1001") in lost.message, lost
            assert c.send(pcm[16000:24000], end=True) == cut  # the cut utterance ends, audio only
            new = c.send(pcm[24000:], end=True)
            assert new != cut
            conv = c.playback.current
            await until(lambda: conv is not None and conv.motion_ended)
            assert conv is not None
            assert len(conv.timeline) == 63  # 2.5 s at 25 fps, driven by the surviving worker
            assert c.conversation_state is ConversationState.PLAYING
            await c.close()
        states = [e[1] for e in events if e[0] == "connection"]
        assert ConnectionState.FAILED not in states
        assert states.count(ConnectionState.CONNECTED) == 2
    finally:
        AvatarSDK.cleanup()
        AvatarManager._shared_instance = None
