"""Every example in examples/ runs, on the built-in service and avatar."""

from __future__ import annotations

import asyncio
import importlib.util
import pathlib
import sys

import pytest

from render_helpers import require_gl

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _isolated(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_gl()
    monkeypatch.setenv("AVATARKIT_CACHE_DIR", str(tmp_path / "cache"))
    from avatarkit import AvatarManager, AvatarSDK

    AvatarManager._shared_instance = None
    yield
    AvatarSDK.cleanup()
    AvatarManager._shared_instance = None


def test_sdk_streaming(capsys: pytest.CaptureFixture[str]) -> None:
    assert asyncio.run(load("sdk_streaming").main(1.5)) == 0
    out = capsys.readouterr().out
    frames = int(out.split()[1])
    assert frames >= 20  # rendered at 25 fps while the 1.5 s of speech played


def test_webrtc_frames(capsys: pytest.CaptureFixture[str]) -> None:
    assert asyncio.run(load("webrtc_frames").main(1.0)) == 0
    assert "25 video frames, 1.00 s of audio" in capsys.readouterr().out
