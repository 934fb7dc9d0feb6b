"""The ``avatarkit`` command."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import logging
import pathlib
import socket
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import __version__
from ._core.codec import CodecError
from .commands import UserError, register
from .errors import AvatarError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# Each command imports what it needs when it runs (numpy, protobuf, aiohttp, PyAV, the GL loader),
# so `avatarkit --version` and `--help` load none of them.

log = logging.getLogger("avatarkit")


def _official_keyframes(path: pathlib.Path) -> tuple[npt.NDArray[np.float32], list[int]]:
    """Keyframes of a recording in the commercial Android demo's JSON format, and message sizes."""
    import numpy as np

    from . import codec
    from .protocol import parse_message

    try:
        doc = json.loads(path.read_text())
        messages = [base64.b64decode(m) for m in doc["animation_messages_base64"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not a recording with animation_messages_base64 ({err})") from err
    chunks = []
    for raw in messages:
        message = parse_message(raw)
        chunks.append(codec.decode_flame(message.server_response_animation.animation))
    return np.concatenate(chunks), [len(c) for c in chunks]


def _roundtrip(args: argparse.Namespace) -> int:
    import numpy as np

    from . import codec

    fps = 25
    if args.source is None:
        from ._synthetic import speech_like

        values = speech_like(args.seconds, fps=fps)
        schema = codec.canonical_schema(codec.Quant.U8 if args.u8 else codec.Quant.U16, fps)
        chunk_sizes = [args.chunk] * (len(values) // args.chunk) + (
            [len(values) % args.chunk] if len(values) % args.chunk else []
        )
        label = f"synthetic speech, {args.seconds:g} s, canonical channels"
    else:
        values, chunk_sizes = _official_keyframes(pathlib.Path(args.source))
        lo, hi = values.min(axis=0), values.max(axis=0)
        hi = np.where(hi > lo, hi, lo + 1.0)  # constant channels still need lo < hi
        quant = codec.Quant.U8 if args.u8 else codec.Quant.U16
        names = codec.flame_channel_names()
        channels = [codec.Channel(n, quant, float(a), float(b)) for n, a, b in zip(names, lo, hi, strict=True)]
        schema = codec.Schema(channels)
        label = f"{args.source}, FLAME channels"

    encoder = codec.StreamEncoder(schema, zstd_level=args.zstd)
    decoder = codec.StreamDecoder()
    payloads, decoded = [], []
    start = 0
    for size in chunk_sizes:
        payloads.append(encoder.encode(values[start : start + size]))
        start += size
    t0 = time.perf_counter()
    for payload in payloads:
        decoded.append(decoder.decode(payload).values.copy())
    elapsed = time.perf_counter() - t0
    out = np.concatenate(decoded)
    steps = np.array([c.step for c in schema.channels])
    clipped = np.clip(values, [c.lo for c in schema.channels], [c.hi for c in schema.channels])
    err_steps = float((np.abs(out - clipped) / steps).max())
    # Half a step, plus float32 rounding of the decoded value itself.
    magnitude = np.maximum(np.abs([c.lo for c in schema.channels]), np.abs([c.hi for c in schema.channels]))
    within = bool((np.abs(out - clipped) <= 0.5 * steps + 2 * np.finfo(np.float32).eps * magnitude).all())
    total = sum(len(p) for p in payloads)
    seconds = len(values) / fps
    print(f"source      {label}")
    print(f"frames      {len(values)} x {len(schema)} channels at {fps} fps ({seconds:.1f} s)")
    print(f"payloads    {len(payloads)}, zstd level {args.zstd or 'off'}, {'u8' if args.u8 else 'u16'}")
    print(f"bytes       {total} ({total / seconds:.0f} B/s, raw float32 would be {values.nbytes / seconds:.0f} B/s)")
    print(f"max error   {err_steps:.3f} quantization steps (bound: 0.5 plus float32 rounding)")
    print(f"decode      {len(values) / elapsed:,.0f} frames/s through Python")
    return 0 if within else 1


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from .server import AvatarStore, create_app
    from .server.config import AppConfig, ConfigError, development_config, load_config, new_api_key
    from .server.samples import ensure_samples
    from .server.service import AcceptErrorFilter, add_driving_service

    try:
        if args.config:
            config = load_config(args.config)
            if args.app_id or args.api_key:
                app_id = args.app_id or "demo"
                existing = config.apps.get(app_id)
                key = args.api_key or (existing.api_key if existing else new_api_key())
                config = config.with_app(AppConfig(app_id=app_id, api_key=key, limits=config.limits))
            print(f"avatarkit: apps {', '.join(config.apps)} from {args.config}", flush=True)
        else:
            config, stored = development_config(args.app_id, args.api_key)
            (dev_app,) = config.apps.values()
            where = "given on the command line" if args.api_key else f"kept in {stored}"
            print(
                f"avatarkit: development app {dev_app.app_id!r}, API key {dev_app.api_key} ({where})",
                flush=True,
            )
    except (ConfigError, OSError) as err:
        raise UserError(str(err)) from err
    if args.low_latency:
        config = dataclasses.replace(config, low_latency=True)
    roots = [pathlib.Path(d) for d in args.avatars] + list(config.avatar_roots)
    for root in roots:
        if not root.is_dir():
            raise UserError(f"{root}: no such folder of avatar bundles")
    store = AvatarStore([*roots, ensure_samples()])
    app = create_app(store)
    add_driving_service(app, config)
    # Bind first, so a port in use is one clear error line and "serving" is only said when true.
    try:
        sock = socket.create_server((args.host, args.port), reuse_port=False)
    except OSError as err:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from err
    port = sock.getsockname()[1]
    print(
        f"avatarkit: serving {', '.join(store.ids()) or 'no avatars'} on http://{args.host}:{port} "
        "(assets /v1/avatars, tokens /v1/auth/session-token, WebSocket /v2/driveningress/websocket)",
        flush=True,
    )
    logging.getLogger("asyncio").addFilter(AcceptErrorFilter())  # at the fd limit: once per 10 s
    web.run_app(app, sock=sock, print=None, access_log=None)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``avatarkit`` command."""
    parser = argparse.ArgumentParser(prog="avatarkit", description="AvatarKit for Python: real-time talking avatars.")
    parser.add_argument("--version", action="version", version=f"avatarkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    codec_parser = sub.add_parser("codec", help="the animation stream codec")
    codec_sub = codec_parser.add_subparsers(dest="codec_command", required=True)
    rt = codec_sub.add_parser(
        "roundtrip",
        help="encode a stream, decode it, report size and error",
        description="Encode an animation stream with the AK1 codec, decode it again and report bytes per "
        "second and the worst error. Without SOURCE it uses built-in speech-like canonical channels; "
        "SOURCE may be a recording of the commercial service in its Android demo's JSON format.",
    )
    rt.add_argument("source", nargs="?", help="a recording JSON (animation_messages_base64)")
    rt.add_argument("--seconds", type=float, default=10.0, help="length of the built-in stream (default 10)")
    rt.add_argument("--chunk", type=int, default=25, help="frames per payload of the built-in stream")
    rt.add_argument("--zstd", type=int, default=0, metavar="LEVEL", help="zstd level, 0 = off (default)")
    rt.add_argument("--u8", action="store_true", help="quantize to 8 bits instead of 16")
    rt.set_defaults(func=_roundtrip)

    serve = sub.add_parser(
        "serve",
        help="run the AvatarKit service (avatar assets, session tokens, the driving WebSocket)",
        description="Serve avatar bundles over HTTP (GET /v1/avatars, /v1/avatars/ID/manifest.json and the "
        "files it lists), session tokens (POST /v1/auth/session-token) and the driving WebSocket "
        "(/v2/driveningress/websocket). The bundled sample avatars are generated on first run. Without "
        "--config a development app 'demo' is used, its API key generated once and kept in the user's "
        "config folder.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    serve.add_argument(
        "--avatars",
        action="append",
        default=[],
        metavar="DIR",
        help="also serve the bundles in DIR (repeatable)",
    )
    serve.add_argument("--config", metavar="FILE", help="service config (TOML: apps, API keys, limits)")
    serve.add_argument("--app-id", metavar="ID", help="the development app's id (default demo)")
    serve.add_argument("--api-key", metavar="KEY", help="the development app's API key (default: generated once)")
    serve.add_argument(
        "--low-latency",
        action="store_true",
        help="sessions that do not choose get the low-latency engine: motion 0 ms behind the audio instead of 80, "
        "a little less accurate",
    )
    serve.set_defaults(func=_serve)
    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except UserError as err:
        print(f"avatarkit: error: {err}", file=sys.stderr)
        return 2
    except CodecError as err:
        print(f"avatarkit: error: {err} ({err.code})", file=sys.stderr)
        return 2
    except AvatarError as err:
        print(f"avatarkit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avatarkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
