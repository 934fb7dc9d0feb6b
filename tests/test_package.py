"""The package itself: the built extension, its stubs, its links, its command."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

import avatarkit
from avatarkit import _core

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_version_and_typed_marker() -> None:
    assert avatarkit.__version__ == _core.__version__
    assert avatarkit.__version__.count(".") == 2
    package = pathlib.Path(avatarkit.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "_core" / "codec.pyi").is_file(), "the _core stubs must ship with the package"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd is Linux only")
def test_extension_does_not_link_gl() -> None:
    ldd = shutil.which("ldd")
    if ldd is None:
        pytest.skip("ldd is not installed")
    so = pathlib.Path(_core.__file__)
    out = subprocess.run([ldd, str(so)], capture_output=True, text=True, check=True).stdout
    assert "libc.so" in out or "libstdc++" in out, out  # ldd really listed the dependencies
    for lib in ("libGL.", "libEGL.", "libGLdispatch.", "libGLX.", "libOpenGL."):
        assert lib not in out, f"{so.name} links {lib}: GL must come from a proc address at run time\n{out}"


#: What ``import avatarkit`` and ``avatarkit --version`` must not load: they come with the parts that use them.
HEAVY_MODULES = (
    "aiohttp",
    "aiohttp.web",
    "av",
    "avatarkit.server",
    "avatarkit.gl",
    "avatarkit.gl.egl",
    "glfw",
    "google.protobuf",
    "numpy",
)


def _modules_after(code: str) -> set[str]:
    """``sys.modules`` of a fresh interpreter after it ran ``code`` (the installed package, not the source tree)."""
    script = f"import json, sys\ntry:\n{textwrap.indent(code, '    ')}\nexcept SystemExit:\n    pass\n"
    script += "print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO / "tests")
    assert result.returncode == 0, result.stderr
    names = set(json.loads(result.stdout.splitlines()[-1]))
    assert "avatarkit._core" in names
    return names


def test_import_and_version_load_nothing_heavy() -> None:
    """``import avatarkit`` and ``avatarkit --version`` leave aiohttp, PyAV, protobuf, numpy, the service and
    the GL loader unloaded; the public names still resolve, and import their module, when first used."""
    assert not _modules_after("import avatarkit").intersection(HEAVY_MODULES)
    # What the ``avatarkit`` console script runs.
    assert not _modules_after("from avatarkit.cli import main\nmain(['--version'])").intersection(HEAVY_MODULES)
    used = _modules_after("import avatarkit\navatarkit.AvatarView\nfrom avatarkit import codec, AvatarSDK")
    assert {"avatarkit.view", "avatarkit.codec", "avatarkit.sdk", "numpy"} <= used
    check = "import avatarkit; assert set(avatarkit.__all__) <= set(dir(avatarkit)); avatarkit.no_such_name"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO / "tests")
    assert "AttributeError: module 'avatarkit' has no attribute 'no_such_name'" in result.stderr, result.stderr


def test_stubs_match_the_built_module() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (it is in the test dependency group)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "avatarkit._core",
            "--allowlist",
            str(REPO / "tests" / "stubtest-allowlist.txt"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO / "tests",  # import the installed package, not the source tree
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_roundtrip_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "avatarkit", "codec", "roundtrip", "--seconds", "3"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "max error" in result.stdout
    assert "B/s" in result.stdout


def test_cli_user_error_is_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "avatarkit", "codec", "roundtrip", "/no/such/recording.json"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("avatarkit: error:")
    assert "Traceback" not in result.stderr


def test_cli_version() -> None:
    result = subprocess.run([sys.executable, "-m", "avatarkit", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert avatarkit.__version__ in result.stdout


def test_source_is_ruff_clean_formatted_and_typed() -> None:
    if importlib.util.find_spec("ruff") is None or importlib.util.find_spec("mypy") is None:
        pytest.skip("ruff and mypy are in the test dependency group")
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "python", "tests", "bench", "scripts", "examples"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "python", "tests", "bench", "scripts", "examples"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    mypy = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True, cwd=REPO)
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr


def test_cli_bench_prints_every_figure() -> None:
    result = subprocess.run([sys.executable, "-m", "avatarkit", "bench"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for stage in ("codec", "engine", "deform", "render"):
        assert any(line.startswith(stage) for line in result.stdout.splitlines()), result.stdout


def test_cli_render_errors_are_one_line(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "not-audio.wav"
    bad.write_bytes(b"this is not a wav file")
    for args in (
        ["render", str(tmp_path / "missing.wav")],
        ["render", str(bad)],
        ["render", str(bad), "--size", "7x9"],
    ):
        result = subprocess.run([sys.executable, "-m", "avatarkit", *args], capture_output=True, text=True)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("avatarkit: error:"), result.stderr
        assert "Traceback" not in result.stderr


def test_cli_serve_port_in_use_is_one_line() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "avatarkit", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("avatarkit: error: cannot listen")
    assert "serving" not in result.stdout


def test_protobuf_floor_is_the_gencode_version() -> None:
    """The committed gencode refuses runtimes older than the protoc that wrote it: the dependency's
    floor is that version, and it stays under 7 so the package installs beside pipecat (protobuf < 7)."""
    import re

    pyproject = (REPO / "pyproject.toml").read_text()
    floor = re.search(r'"protobuf>=([0-9.]+),<8"', pyproject)
    gencode = re.search(
        r"# Protobuf Python Version: ([0-9.]+)",
        (REPO / "python" / "avatarkit" / "protocol" / "driveningress_v2_pb2.py").read_text(),
    )
    assert floor and gencode
    assert floor.group(1) == gencode.group(1)
    assert int(floor.group(1).split(".")[0]) < 7
    from google.protobuf import __version__ as runtime

    from avatarkit.protocol import driveningress_v2_pb2  # imports under the installed runtime

    assert driveningress_v2_pb2.DESCRIPTOR.name == "driveningress_v2.proto"
    assert tuple(int(x) for x in runtime.split(".")[:2]) >= tuple(int(x) for x in floor.group(1).split(".")[:2])
