from __future__ import annotations

import base64
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def merge_script():  # type: ignore[no-untyped-def]
    """``scripts/merge_lipsync_models.py`` as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("merge_lipsync_models", REPO / "scripts" / "merge_lipsync_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shared_file(name: str) -> pathlib.Path:
    """A file from ../shared/data, or skip the test when the folder is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is not available (../shared/data is only beside development checkouts)")
    return path


@pytest.fixture(scope="session")
def official_recording() -> dict[str, object]:
    """The commercial service's recorded output (../shared/data/official-16000.json), parsed."""
    doc: dict[str, object] = json.loads(shared_file("official-16000.json").read_text())
    return doc


@pytest.fixture(scope="session")
def official_messages(official_recording: dict[str, object]) -> list[bytes]:
    """The six serialized driveningress v2 Message envelopes of the recording."""
    raw = official_recording["animation_messages_base64"]
    assert isinstance(raw, list)
    return [base64.b64decode(m) for m in raw]


#: The avatar id the driving-service tests connect to (the service only needs a bundle folder).
SERVICE_AVATAR = "test-avatar"


@pytest.fixture(scope="module")
def avatars(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A folder of avatar bundles holding ``SERVICE_AVATAR`` (a manifest stub is all the service reads)."""
    root = tmp_path_factory.mktemp("avatars")
    (root / SERVICE_AVATAR).mkdir()
    (root / SERVICE_AVATAR / "manifest.json").write_text("{}")
    return root


@pytest.fixture
def display(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """An X display for window tests: $DISPLAY, or an Xvfb screen started for the test."""
    pytest.importorskip("glfw")
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("no display and no Xvfb (apt-get install xvfb)")
    number = 90 + os.getpid() % 100
    proc = subprocess.Popen([xvfb, f":{number}", "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1.0)
    monkeypatch.setenv("DISPLAY", f":{number}")
    try:
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)
