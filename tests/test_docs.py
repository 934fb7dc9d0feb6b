"""The documentation tells the truth: the API reference is current, the README's example runs."""

from __future__ import annotations

import asyncio
import inspect
import pathlib
import re
import subprocess
import sys

import pytest

import avatarkit

from render_helpers import require_gl

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_api_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_api_docs.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_public_name_and_method_has_a_docstring() -> None:
    missing = []
    for name in avatarkit.__all__:
        obj = getattr(avatarkit, name)
        if inspect.ismodule(obj) or not (inspect.isclass(obj) or callable(obj)):
            continue
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if member.startswith("_"):
                    continue
                if (inspect.isfunction(value) or isinstance(value, property)) and not value.__doc__:
                    missing.append(f"{name}.{member}")
    assert not missing, f"no docstring: {', '.join(missing)}"


def test_every_docs_link_resolves() -> None:
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which is not there"


def test_readme_lifecycle_example_runs(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's example as printed, against the built-in service (its port put in for 8080)."""
    require_gl()
    monkeypatch.setenv("AVATARKIT_CACHE_DIR", str(tmp_path / "cache"))
    from avatarkit import AvatarManager, AvatarSDK
    from avatarkit.commands import _session_token, embedded_service
    from avatarkit.media import DEMO_SPEECH, decode_audio

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## The lifecycle") :]
    code = section[section.index("```python") + len("```python") : section.index("```", section.index("```python") + 9)]
    assert len(code.strip().splitlines()) <= 22
    pcm = decode_audio(DEMO_SPEECH, 16000)[:16000].tobytes()
    AvatarManager._shared_instance = None
    try:
        with embedded_service() as (server, app_id):
            assert app_id == "demo"
            namespace: dict[str, object] = {}
            exec(code.replace("port=8080", f"port={server.port}"), namespace)
            token = asyncio.run(_session_token(server.url, app_id))
            frames = asyncio.run(namespace["main"](pcm, token))  # type: ignore[operator]
    finally:
        AvatarSDK.cleanup()
        AvatarManager._shared_instance = None
    assert frames >= 30  # a second of speech at 30 fps, and it ended by itself
