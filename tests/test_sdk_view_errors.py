"""AvatarView's public errors when no OpenGL context can be made: renderFailed, the GL error its cause."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import warnings

import pytest

from avatarkit import AvatarError, AvatarErrorCode, AvatarManager, AvatarView, HeadlessSurface, WindowSurface

from render_helpers import tiny_avatar_glb

TESTS = pathlib.Path(__file__).resolve().parent

# Runs in a process of its own: which EGL vendors exist is fixed when libEGL is first loaded.
_HEADLESS = """
import json, sys
from avatarkit import AvatarError, AvatarManager, AvatarSDK, AvatarView, HeadlessSurface
from avatarkit.gl.egl import EglContext, EglError

try:
    EglContext().close()
except EglError:
    pass
else:
    print(json.dumps("egl-works"))  # not glvnd: the variable does not take EGL away here
    sys.exit(0)
avatar = AvatarManager(cache_dir=sys.argv[2]).derive(sys.argv[1])
try:
    AvatarView(HeadlessSurface(32, 32), avatar).destroy()
except AvatarError as err:
    cause = err.__cause__
    print(json.dumps({
        "code": err.code.value, "str": str(err), "cause": f"{type(cause).__module__}.{type(cause).__name__}",
        "cause_message": str(cause), "supported": AvatarSDK.supports_current_device(),
    }))
else:
    print(json.dumps("no error"))
"""


def test_headless_view_without_an_egl_display_is_render_failed(tmp_path: pathlib.Path) -> None:
    glb = tiny_avatar_glb(tmp_path / "tiny.glb")
    # glvnd's libEGL loads the vendors this variable names: none here, so EGL has no platform to
    # open a display on, as on a machine without Mesa's EGL or a GPU driver.
    env = {**os.environ, "__EGL_VENDOR_LIBRARY_FILENAMES": str(tmp_path / "no-such-vendor.json")}
    result = subprocess.run(
        [sys.executable, "-c", _HEADLESS, str(glb), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env=env,
        cwd=TESTS,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    if outcome == "egl-works":
        pytest.skip("libEGL here is not glvnd's: __EGL_VENDOR_LIBRARY_FILENAMES does not take EGL away")
    assert isinstance(outcome, dict), outcome
    assert outcome["code"] == "renderFailed"
    assert outcome["cause"] == "avatarkit.gl.egl.EglError"
    assert outcome["str"].count("\n") == 0
    assert outcome["str"].startswith("renderFailed: cannot open a headless OpenGL context for the view: ")
    assert outcome["cause_message"] in outcome["str"]
    assert outcome["supported"] is False


def test_window_view_without_a_window_system_is_render_failed(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    glfw = pytest.importorskip("glfw")
    from avatarkit.gl.window import WindowError

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    avatar = AvatarManager(cache_dir=tmp_path).derive(tiny_avatar_glb(tmp_path / "tiny.glb"))
    with warnings.catch_warnings(record=True) as told:
        warnings.simplefilter("always")
        with pytest.raises(AvatarError) as info:
            AvatarView(WindowSurface(64, 64), avatar)
    # glfw's reason is in the error, not printed besides it as a warning.
    assert not [w for w in told if issubclass(w.category, glfw.GLFWError)]
    err = info.value
    assert err.code is AvatarErrorCode.RENDER_FAILED
    assert isinstance(err.__cause__, WindowError)
    assert str(err) == f"renderFailed: cannot open a window for the view: {err.__cause__}"
    # ... followed by glfw's own words (here: X11: The DISPLAY environment variable is missing).
    assert str(err.__cause__).startswith("glfw could not initialise (is there a display?): ")
    assert "\n" not in str(err)


def test_an_unknown_headless_device_is_an_invalid_argument(tmp_path: pathlib.Path) -> None:
    avatar = AvatarManager(cache_dir=tmp_path).derive(tiny_avatar_glb(tmp_path / "tiny.glb"))
    with pytest.raises(AvatarError) as info:
        AvatarView(HeadlessSurface(32, 32, device="gpu0"), avatar)
    assert info.value.code is AvatarErrorCode.INVALID_ARGUMENT
    assert "'gpu0'" in info.value.message


def test_cleanup_forgets_the_token_and_the_user() -> None:
    from avatarkit import AvatarSDK

    AvatarSDK.session_token = "a-token"
    AvatarSDK.user_id = "a-user"
    AvatarSDK.cleanup()
    assert AvatarSDK.session_token is None and AvatarSDK.user_id is None and not AvatarSDK.is_initialized


def test_a_rate_given_as_the_channel_count_is_named_in_the_error() -> None:
    from avatarkit import AudioFormat, AvatarError

    with pytest.raises(AvatarError, match=r"AudioFormat\(sample_rate=24000\)"):
        AudioFormat(24000)
