from __future__ import annotations

import base64
import json
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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
