"""``avatarkit demo``, ``render`` and ``avatars``: the user-facing jobs of the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pathlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from .errors import AvatarError, AvatarErrorCode


class UserError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""


def _progress(total: int | None, desc: str, unit: str = "it", scale: bool = False) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=scale,
        leave=False,
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
    )


def parse_size(text: str) -> tuple[int, int]:
    """``720x720`` -> (720, 720); even sizes from 16 to 4096."""
    match = re.fullmatch(r"(\d+)[xX](\d+)", text)
    if not match:
        raise UserError(f"size {text!r}: use WIDTHxHEIGHT, for example 720x720")
    w, h = int(match[1]), int(match[2])
    if not (16 <= w <= 4096 and 16 <= h <= 4096) or w % 2 or h % 2:
        raise UserError(f"size {text!r}: width and height must be even numbers from 16 to 4096")
    return w, h


def parse_background(text: str | None) -> Any:
    """A colour (``#rrggbb``, ``#rrggbbaa``, ``transparent``, a name) or an image file."""
    if text is None:
        return (0.93, 0.94, 0.96)
    if text.lower() in ("transparent", "none"):
        return None
    if pathlib.Path(text).is_file():
        return text
    from PIL import ImageColor

    try:
        rgba = ImageColor.getcolor(text, "RGBA")
    except ValueError as err:
        raise UserError(f"background {text!r}: not a colour nor an image file") from err
    assert isinstance(rgba, tuple)
    return tuple(c / 255.0 for c in rgba)


@contextlib.contextmanager
def embedded_service() -> Iterator[tuple[Any, str]]:
    """The service of ``avatarkit serve`` with the bundled samples, in this process on a free port.

    Yields the running server and a session token for the development app.
    """
    from .server.config import development_config
    from .server.samples import ensure_samples
    from .server.service import start_service

    config, _ = development_config()
    (app,) = config.apps.values()
    with start_service(config, avatar_roots=[ensure_samples()]) as server:
        yield server, app.app_id


async def development_session_token(url: str, app_id: str) -> str:
    """A session token from the service at ``url`` for the development app ``app_id`` (its API key is derived).

    For the service :func:`embedded_service` starts, or ``avatarkit serve`` without a config.

    Raises:
        UserError: the service refused or could not be reached.
    """
    from .console import fetch_session_token
    from .server.config import development_config

    config, _ = development_config(app_id)
    try:
        return await fetch_session_token(url, config.apps[app_id].api_key)
    except AvatarError as err:
        raise UserError(f"no session token: {err.message}") from err


async def _load_with_progress(avatar_id: str) -> Any:
    from .manager import AvatarManager, LoadProgress, LoadState

    bar = _progress(100, f"loading {avatar_id}", "%")

    def on_progress(p: LoadProgress) -> None:
        bar.n = round(p.fraction * 100)
        bar.refresh()
        if p.state is not LoadState.DOWNLOADING:
            bar.close()

    try:
        avatar = await AvatarManager.load(avatar_id, on_progress)
    finally:
        bar.close()
    source = "cache" if avatar.is_from_cache else "download"
    print(f"avatarkit: avatar {avatar.id!r} ({avatar.name}) ready from the {source}", flush=True)
    return avatar


def _headless_or_window(width: int, height: int, window: bool) -> Any:
    from .view import HeadlessSurface, WindowSurface

    if window:
        return WindowSurface(width, height, "AvatarKit demo")
    return HeadlessSurface(width, height)


async def _demo(args: argparse.Namespace) -> int:
    from . import AvatarSDK, AvatarView, Configuration, Environment
    from .media import DEMO_SPEECH, decode_audio
    from .video import render_video

    width, height = parse_size(args.size)
    output = pathlib.Path(args.output)
    window = args.window or (args.window is None and bool(os.environ.get("DISPLAY")) and _glfw_available())
    with embedded_service() as (server, app_id):
        print(f"avatarkit: service running on {server.url} (app {app_id!r})", flush=True)
        AvatarSDK.initialize(app_id, Configuration(environment=Environment.local(port=server.port)))
        AvatarSDK.session_token = await development_session_token(server.url, app_id)
        avatar = await _load_with_progress("default")
        rate = AvatarSDK.configuration.audio_format.sample_rate
        pcm = decode_audio(DEMO_SPEECH, rate)
        view = AvatarView(_headless_or_window(width, height, False), avatar, fps=args.fps)
        live = AvatarView(_headless_or_window(720, 720, True), avatar) if window else None
        try:
            controller = view.avatar_controller
            await controller.start()
            print(f"avatarkit: connected ({controller.connection_id}); speaking {len(pcm) / rate:.1f} s", flush=True)
            # Speak through the service in 100 ms chunks, as an app streaming TTS would.
            step = rate // 10
            for i in range(0, len(pcm), step):
                controller.send(pcm[i : i + step], end=i + step >= len(pcm))
                await asyncio.sleep(0)
            conv = controller.conversation()
            assert conv is not None
            deadline = time.monotonic() + 60
            while not conv.motion_ended and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if not conv.motion_ended:
                raise UserError("the driving service sent no animation in time")
            motion = conv.motion
            await controller.close()
            if live is not None:
                _say_sound(live.avatar_controller)  # heard on the default output device, if there is one
                live.avatar_controller.play(pcm, motion, sample_rate=rate)
            bar = _progress(None, "rendering", "frame")

            def tick(done: int, total: int) -> None:
                bar.total = total
                bar.update(1)

            report = render_video(view, pcm, rate, output, fps=args.fps, motion=motion, on_frame=tick)
            bar.close()
        finally:
            view.destroy()
            if live is not None:
                live.destroy()
    print(report.table())
    print(f"avatarkit: wrote {output.resolve()} ({report.seconds_of_video:.1f} s, {width}x{height}, picture and sound)")
    return 0


def _say_sound(controller: Any) -> None:
    """Tell where a window's speech is heard (the default output device, with the audio extra)."""
    sound = controller.audio_output
    print(f"avatarkit: sound on {sound.device_name}" if sound else "avatarkit: no sound device", flush=True)


def _glfw_available() -> bool:
    try:
        import glfw  # noqa: F401
    except ImportError:
        return False
    return True


async def _resolve_avatar(spec: str, server_url: str | None) -> Any:
    from .manager import AvatarManager

    path = pathlib.Path(spec)
    # A model file (.glb, .gltf, .vrm, or any existing file: its content says what it is) or a bundle.
    if path.suffix.lower() in (".glb", ".gltf", ".vrm") or path.exists() or path.name == "manifest.json":
        if not path.exists():
            raise UserError(f"{spec}: no such avatar file or folder")
        return AvatarManager.derive(path)
    if server_url is None:
        from .assets.samples import SAMPLE_IDS
        from .server.samples import ensure_samples

        bundle = ensure_samples() / spec
        if not bundle.is_dir():
            raise UserError(
                f"unknown avatar {spec!r}; built-in: {', '.join(SAMPLE_IDS)}; or give a .glb, .vrm or bundle folder"
            )
        return AvatarManager.derive(bundle)
    return await _load_with_progress(spec)


async def _remote_motion(server_url: str, app_id: str, api_key: str | None, token: str | None, view: Any,
                         pcm: Any, rate: int) -> Any:  # fmt: skip
    """Motion from a driving service: stream the speech, collect the frames."""
    from . import AvatarSDK, Configuration, Environment

    match = re.fullmatch(r"(https?)://([^/:]+)(?::(\d+))?/?", server_url)
    if not match:
        raise UserError(f"--server {server_url!r}: use http://HOST:PORT")
    port = int(match[3] or (443 if match[1] == "https" else 80))
    AvatarSDK.initialize(app_id, Configuration(environment=Environment.local(match[2], port, tls=match[1] == "https")))
    if token is None:
        if api_key is None:
            raise UserError("--server needs --token, or --api-key to get one")
        from .console import fetch_session_token

        try:
            token = await fetch_session_token(server_url, api_key)
        except AvatarError as err:
            raise UserError(f"no session token from {server_url}: {err.message} (check --app-id/--api-key)") from err
    AvatarSDK.session_token = token
    controller = view.avatar_controller
    try:
        await controller.start()
    except AvatarError as err:
        raise UserError(f"cannot use the service at {server_url}: {err}") from err
    step = rate // 10
    for i in range(0, len(pcm), step):
        controller.send(pcm[i : i + step], end=i + step >= len(pcm))
        await asyncio.sleep(0)
    conv = controller.conversation()
    assert conv is not None
    deadline = time.monotonic() + 120
    while not conv.motion_ended and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await controller.close()
    return conv.motion


async def _render(args: argparse.Namespace) -> int:
    from . import AvatarSDK, AvatarView, Configuration, HeadlessSurface
    from .media import FORMATS, decode_audio
    from .video import render_video

    width, height = parse_size(args.size)
    background = parse_background(args.background)
    source = pathlib.Path(args.speech)
    output = pathlib.Path(args.output) if args.output else source.with_suffix(".mp4")
    if not args.png_only and output.suffix.lower() not in FORMATS:
        raise UserError(f"{output.name}: the output must end in {', '.join(sorted(FORMATS))}")
    if args.png_only and not args.png_dir:
        raise UserError("--png-only needs --png-dir")
    rate = 16000
    t0 = time.perf_counter()
    try:
        pcm = decode_audio(source, rate, raw_rate=args.raw_rate)
    except AvatarError as err:
        raise UserError(err.message) from err
    decode = time.perf_counter() - t0
    if args.server is None:
        AvatarSDK.initialize("local", Configuration())
    else:
        AvatarSDK.initialize(args.app_id, Configuration())
    avatar = await _resolve_avatar(args.avatar, args.server)
    if background is None and output.suffix.lower() in (".mp4", ".mkv") and not args.png_only:
        print("avatarkit: note: H.264 has no alpha; use .mov or .webm to keep the transparency", file=sys.stderr)
    view = AvatarView(HeadlessSurface(width, height), avatar, background=background, fps=args.fps)
    try:
        motion = None
        if args.server is not None:
            e0 = time.perf_counter()
            motion = await _remote_motion(args.server, args.app_id, args.api_key, args.token, view, pcm, rate)
            decode_stages = {"decode": decode, "engine": time.perf_counter() - e0}
        else:
            decode_stages = {"decode": decode}
        bar = _progress(None, "rendering", "frame")

        def tick(done: int, total: int) -> None:
            bar.total = total
            bar.update(1)

        report = render_video(
            view,
            pcm,
            rate,
            None if args.png_only else output,
            fps=args.fps,
            motion=motion,
            png_dir=args.png_dir,
            stages=decode_stages,
            on_frame=tick,
        )
        bar.close()
    finally:
        view.destroy()
    print(report.table())
    where = [str(output.resolve())] if not args.png_only else []
    if args.png_dir:
        where.append(f"{pathlib.Path(args.png_dir).resolve()}/frame_*.png")
    print(f"avatarkit: wrote {' and '.join(where)}")
    return 0


def _avatars(args: argparse.Namespace) -> int:
    from .manager import AvatarManager

    manager = AvatarManager.shared
    if args.avatars_command == "list":
        ids = manager.cached_ids()
        if not ids:
            print(f"no avatars cached in {manager.cache_dir}")
        for avatar_id in ids:
            print(f"{avatar_id:<24} {manager.cache_size(avatar_id) / 1e6:7.2f} MB")
        return 0
    if args.avatars_command == "info":
        avatar = manager.retrieve(args.id)
        if avatar is None:
            raise UserError(f"avatar {args.id!r} is not in the cache ({manager.cache_dir})")
        m = avatar.manifest
        print(f"id      {m.id}\nname    {m.name}\nfiles   {', '.join(f.path for f in m.files)}")
        print(f"size    {m.total_size / 1e6:.2f} MB\nfolder  {avatar.directory}")
        return 0
    if args.id:
        manager.clear(args.id)
        print(f"cleared {args.id}")
    else:
        manager.clear_all()
        print(f"cleared every avatar in {manager.cache_dir}")
    return 0


async def _view(args: argparse.Namespace) -> int:
    """An interactive window: idle life, speech files dropped on it, mouse orbit and wheel zoom."""
    from . import AvatarSDK, AvatarView, Configuration, WindowSurface
    from .media import decode_audio
    from .video import local_motion

    width, height = parse_size(args.size)
    # The window plays the speech on the default output device when there is one (the audio extra).
    AvatarSDK.initialize("local", Configuration(audio_output="none" if args.no_sound else "auto"))
    avatar = await _resolve_avatar(args.avatar, None)
    title = f"AvatarKit - {avatar.name}"
    try:
        view = AvatarView(WindowSurface(width, height, title, vsync=True), avatar)
    except AvatarError as err:
        if err.code is not AvatarErrorCode.RENDER_FAILED:
            raise
        raise UserError(f"no window: {err.message}") from err
    controller = view.avatar_controller
    _say_sound(controller)

    def play(path: str) -> None:
        try:
            pcm = decode_audio(path, 16000)
        except AvatarError as err:
            print(f"avatarkit: {err.message}", file=sys.stderr)
            return
        controller.play(pcm, local_motion(pcm, 16000), sample_rate=16000)
        print(f"avatarkit: speaking {pathlib.Path(path).name} ({len(pcm) / 16000:.1f} s)", flush=True)

    drag: dict[str, Any] = {"on": False, "x": 0.0, "y": 0.0}
    listening: dict[str, bool] = {"on": False}
    toggled: list[Callable[[bool], object]] = []  # told (with the new state) when M turns the microphone on or off

    def show_listening() -> None:
        """The window's title says whether the microphone is on (call on the render thread)."""
        import glfw

        glfw.set_window_title(view.window, f"{title} - listening" if listening["on"] else title)

    def setup() -> None:
        import glfw

        window = view.window
        camera = view.camera

        def on_button(_w: Any, button: int, action: int, _mods: int) -> None:
            if button == glfw.MOUSE_BUTTON_LEFT:
                drag["on"] = action == glfw.PRESS
                drag["x"], drag["y"] = glfw.get_cursor_pos(window)

        def on_move(_w: Any, x: float, y: float) -> None:
            if drag["on"]:
                camera.yaw_deg = max(-80.0, min(80.0, camera.yaw_deg - (x - drag["x"]) * 0.3))
                camera.pitch_deg = max(-40.0, min(40.0, camera.pitch_deg + (y - drag["y"]) * 0.3))
                drag["x"], drag["y"] = x, y

        def on_scroll(_w: Any, _dx: float, dy: float) -> None:
            camera.distance = max(0.2, min(5.0, camera.distance * (0.9 if dy > 0 else 1.1)))

        glfw.set_mouse_button_callback(window, on_button)
        glfw.set_cursor_pos_callback(window, on_move)
        glfw.set_scroll_callback(window, on_scroll)

        def on_drop(_w: Any, paths: list[str]) -> None:
            if paths:
                play(paths[0])

        glfw.set_drop_callback(window, cast(Any, on_drop))

        def on_key(_w: Any, key: int, _scancode: int, action: int, _mods: int) -> None:
            if key == glfw.KEY_M and action == glfw.PRESS and args.mic:
                listening["on"] = not listening["on"]
                show_listening()
                print(f"avatarkit: microphone {'on' if listening['on'] else 'off'}", flush=True)
                for hook in toggled:
                    hook(listening["on"])

        glfw.set_key_callback(window, on_key)

    view.run_on_render_thread(setup).result()
    if args.speech:
        play(args.speech)
    print("avatarkit: drop a speech file on the window; drag to orbit, scroll to zoom; close it to quit", flush=True)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        microphone = await _start_microphone(view, stack, listening, toggled) if args.mic else None
        if microphone is not None:
            view.run_on_render_thread(show_listening).result()
            print("avatarkit: listening to the microphone; M toggles it", flush=True)
        try:
            while not view.close_requested:
                if args.seconds is not None and time.monotonic() - started > args.seconds:
                    break
                await asyncio.sleep(0.05)
        finally:
            if microphone is not None:
                microphone.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await microphone
                await controller.close()
            view.destroy()
    return 0


async def _start_microphone(
    view: Any, stack: contextlib.ExitStack, listening: dict[str, bool], toggled: list[Callable[[bool], object]]
) -> asyncio.Task[None]:
    """The microphone through the real path: the built-in service, SDK mode, ``send()`` per chunk.

    The user hears their own voice already: the avatar only moves (its speech volume is 0 meanwhile).
    Each time M is pressed the utterance ends (``send(end=True)``); the next chunk heard starts another.
    """
    from . import AvatarSDK, Configuration, Environment
    from .audio import MicrophoneInput

    try:
        microphone = MicrophoneInput(16000, chunk_ms=40)
        microphone.start()
    except AvatarError as err:
        raise UserError(err.message) from err
    stack.callback(microphone.stop)
    server, app_id = stack.enter_context(embedded_service())
    AvatarSDK.initialize(app_id, Configuration(environment=Environment.local(port=server.port)))
    AvatarSDK.session_token = await development_session_token(server.url, app_id)
    controller = view.avatar_controller
    await controller.start()
    listening["on"] = True
    loop = asyncio.get_running_loop()
    counts = {"sent": 0, "conversations": 0, "speaking": 0}

    def end_utterance() -> None:  # on the event loop
        if counts["speaking"]:
            controller.send(b"", end=True)
            counts["speaking"] = 0
            controller.volume = 1.0

    def on_toggle(on: bool) -> None:  # on the render thread
        # Only turning it off ends the utterance: an end queued when it turns on could land after the
        # first new chunk and split the new utterance in two.
        if not on:
            loop.call_soon_threadsafe(end_utterance)

    toggled.append(on_toggle)

    async def stream() -> None:
        try:
            async for chunk in microphone.chunks():
                if listening["on"]:
                    controller.volume = 0.0
                    counts["conversations"] += not counts["speaking"]
                    counts["speaking"] = 1
                    controller.send(chunk)
                    counts["sent"] += 1
                else:
                    end_utterance()
        finally:
            conv = controller.conversation()
            frames = len(conv.timeline) if conv is not None else 0
            print(f"avatarkit: microphone: {counts['sent']} chunks sent in {counts['conversations']} "
                  f"conversation(s), {frames} motion frames back", flush=True)  # fmt: skip

    return asyncio.ensure_future(stream())


def _bench(args: argparse.Namespace) -> int:
    """Quick figures for this machine: codec, engine, deformation, rendering."""
    import numpy as np

    from . import codec
    from ._synthetic import speech_like
    from .engine import EngineSession
    from .media import DEMO_SPEECH, decode_audio
    from .sdk import AvatarSDK

    def rate(fn: Any, seconds: float = 0.5) -> float:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn()
            count += 1
        return count / (time.perf_counter() - start)

    values = speech_like(4.0)
    payload = codec.StreamEncoder(codec.canonical_schema()).encode(values)
    decode = rate(lambda: codec.StreamDecoder().decode(payload)) * len(values)
    print(f"codec      {decode / 1e6:6.2f} M frames/s decoded (73 channels, 100-frame payloads)")
    pcm = decode_audio(DEMO_SPEECH, 16000)
    start = time.perf_counter()
    session = EngineSession(16000)
    session.push(pcm)
    session.flush()
    rtf = (time.perf_counter() - start) / (len(pcm) / 16000)
    print(f"engine     {rtf:6.4f} real-time factor (CPU seconds per second of speech)")
    from ._core import rig

    rng = np.random.default_rng(0)
    positions = rng.normal(size=(20000, 3)).astype(np.float32)
    mesh = rig.MorphMesh(positions, positions)
    for _ in range(67):
        delta = np.zeros_like(positions)
        moved = rng.random(20000) < 0.2
        delta[moved] = rng.normal(size=(int(moved.sum()), 3)) * 0.01
        mesh.add_dense_target(delta, delta)
    weights = np.zeros(67, np.float32)
    weights[:12] = 0.5
    out_p, out_n = np.empty_like(positions), np.empty_like(positions)
    per_frame = 1.0 / rate(lambda: mesh.apply(weights, out_p, out_n))
    print(f"deform     {per_frame * 1e3:6.3f} ms/frame (20000 vertices, 67 targets, 12 active)")
    if not AvatarSDK.supports_current_device():
        print("render     no OpenGL 3.3 context on this machine")
        return 0
    from .manager import AvatarManager
    from .server.samples import ensure_samples
    from .view import AvatarView, HeadlessSurface

    avatar = AvatarManager.derive(ensure_samples() / "default")
    for samples in (0, 4):
        view = AvatarView(HeadlessSurface(512, 512, samples=samples), avatar)
        view.render_frame_sync(0.0)
        fps = rate(lambda v=view: v.render_frame_sync(), seconds=2.0)
        renderer = view.gl_info()["renderer"]
        view.destroy()
        print(f"render     {fps:6.1f} frames/s, default avatar 512x512, MSAA {samples}x, readback ({renderer})")
    return 0


def register(sub: Any) -> None:
    """Add the demo, render and avatars commands to the ``avatarkit`` parser."""
    demo = sub.add_parser(
        "demo",
        help="the whole lifecycle on the built-in service and avatar; writes avatarkit-demo.mp4",
        description="Start the embedded driving service, load the default avatar over HTTP (then from the "
        "cache), speak the bundled speech sample through the service, and write a video with picture and "
        "sound. Works offline.",
    )
    demo.add_argument("-o", "--output", default="avatarkit-demo.mp4", help="the video to write")
    demo.add_argument("--size", default="512x512", help="frame size WIDTHxHEIGHT (default 512x512)")
    demo.add_argument("--fps", type=float, default=30.0, help="video frame rate (default 30)")
    demo.add_argument("--window", action=argparse.BooleanOptionalAction, default=None,
                      help="also show it in a window (default: when a display and glfw are present)")  # fmt: skip
    demo.set_defaults(func=lambda a: asyncio.run(_demo(a)))

    render = sub.add_parser(
        "render",
        help="speech to a talking-avatar video, faster than real time",
        description="Decode SPEECH (wav, mp3, ogg, flac, or raw PCM16 with --raw-rate), make the motion (the "
        "engine in this process, or a driving service with --server), and write an H.264/AAC MP4, a ProRes "
        "4444 .mov or VP9 .webm with alpha, and/or a PNG sequence.",
    )
    render.add_argument("speech", help="the speech audio file")
    render.add_argument("-o", "--output", help="the video to write (default: SPEECH with .mp4)")
    render.add_argument("--avatar", default="default", help="an avatar id, a .glb/.gltf/.vrm file, or a bundle folder")
    render.add_argument("--size", default="720x720", help="frame size WIDTHxHEIGHT (default 720x720)")
    render.add_argument("--fps", type=float, default=30.0, help="video frame rate (default 30)")
    render.add_argument("--background", help="a colour (#rrggbb, a name, 'transparent') or an image file")
    render.add_argument("--raw-rate", type=int, help="SPEECH is raw PCM16 mono at this sample rate")
    render.add_argument("--png-dir", help="also write the frames as PNG files (RGBA) into this folder")
    render.add_argument("--png-only", action="store_true", help="write only the PNG sequence")
    render.add_argument("--server", help="a driving service URL (http://HOST:PORT) to make the motion")
    render.add_argument("--app-id", default="demo", help="app id at --server (default demo)")
    render.add_argument("--api-key", help="API key at --server, to get a session token")
    render.add_argument("--token", help="a session token for --server")
    render.set_defaults(func=lambda a: asyncio.run(_render(a)))

    view = sub.add_parser(
        "view",
        help="an interactive window: drop speech files on it, orbit with the mouse",
        description="Open a window with an avatar alive in it (needs a display and the 'window' extra: "
        "pip install 'pyavatarkit[window]'). Drop a wav/mp3/ogg/flac file on it to hear it spoken (the motion "
        "comes from the engine in this process); drag to orbit, scroll to zoom.",
    )
    view.add_argument("--avatar", default="default", help="an avatar id, a .glb/.gltf/.vrm file, or a bundle folder")
    view.add_argument("--speech", help="speak this file once the window is open")
    view.add_argument("--size", default="720x720", help="window size WIDTHxHEIGHT (default 720x720)")
    view.add_argument("--seconds", type=float, help="close by itself after this many seconds")
    view.add_argument("--mic", action="store_true", help="speak through the microphone (sounddevice); M toggles it")
    view.add_argument("--no-sound", action="store_true", help="do not play the speech on the sound device")
    view.set_defaults(func=lambda a: asyncio.run(_view(a)))

    bench = sub.add_parser("bench", help="quick speed figures for this machine (codec, engine, deform, render)")
    bench.set_defaults(func=_bench)

    avatars = sub.add_parser("avatars", help="the avatar cache: list, info, clear")
    avatars_sub = avatars.add_subparsers(dest="avatars_command", required=True)
    avatars_sub.add_parser("list", help="cached avatars and their sizes")
    info = avatars_sub.add_parser("info", help="one cached avatar")
    info.add_argument("id")
    clear = avatars_sub.add_parser("clear", help="delete one cached avatar, or all")
    clear.add_argument("id", nargs="?")
    avatars.set_defaults(func=_avatars)


__all__ = ["UserError", "parse_background", "parse_size", "register"]
