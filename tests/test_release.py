"""What a release needs and how users install: the README's commands on the system's Python, a
repaired manylinux wheel on a machine without a compiler, the sdist, and the release files.

The slow tests build the package (each about a minute or two on two cores) and run in CI through
the README's test command; they skip outside a checkout (cibuildwheel's test run copies only the
tests).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from typing import Any

import pytest

import avatarkit

from test_docs import _anchors

REPO = pathlib.Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = pathlib.Path("/usr/bin/python3")
#: The PATH of a fresh Debian or Ubuntu machine: no pyenv, no virtualenv.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COMPILERS = ("cc", "c++", "gcc", "g++", "clang", "clang++")

needs_checkout = pytest.mark.skipif(
    not (REPO / "scripts" / "setup.sh").is_file() or not (REPO / "README.md").is_file(),
    reason="needs the repository's scripts and README (not copied by cibuildwheel)",
)
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Debian and manylinux are Linux")


def readme_commands() -> list[str]:
    """The README's two opening commands, without their comments."""
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("```bash") + len("```bash") : readme.index("```", readme.index("```bash") + 7)]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any active Python environment, on a plain system PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYENV_VERSION", "CONDA_", "PYTHON"))}
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = SYSTEM_PATH
    env.update(extra)
    return env


def scratch_checkout(dest: pathlib.Path) -> pathlib.Path:
    """A copy of the checkout's files as they are (tracked and new ones, not ignored ones: no build/, no .venv)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def importlib_missing(name: str) -> bool:
    """Whether a module cannot be imported here."""
    import importlib.util

    return importlib.util.find_spec(name) is None


# -- the README's commands ---------------------------------------------------------------------------


@needs_checkout
def test_readme_commands_and_ci_run_agree() -> None:
    """Two commands, each setup then a command through scripts/run; CI runs exactly the second."""
    install, test = readme_commands()
    assert install == "bash scripts/setup.sh && scripts/run avatarkit demo"
    assert test.startswith("bash scripts/setup.sh --test && scripts/run ")
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == test, ".ci/run must run exactly the README's test command"
    assert os.access(REPO / "scripts" / "run", os.X_OK), "scripts/run must be executable (git mode 755)"


@needs_checkout
@linux_only
def test_setup_chooses_the_environment(tmp_path: pathlib.Path) -> None:
    """--where: a virtualenv is installed into; the system's Python gets the project .venv instead."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = clean_env(PYTHON=str(venv / "bin" / "python"))
    where = subprocess.run(["bash", "scripts/setup.sh", "--where"], cwd=REPO, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert f"into {venv}/bin/python (virtualenv, {venv})" in where.stdout, where.stdout
    if SYSTEM_PYTHON.is_file():
        where = subprocess.run(["bash", "scripts/setup.sh", "--where"], cwd=REPO, env=clean_env(), capture_output=True)
        assert where.returncode == 0, where.stderr
        assert f"into {REPO}/.venv (a virtualenv made from /usr/bin/python" in where.stdout.decode(), where.stdout
    # The Python running these tests: CI's pyenv Python, or a developer's virtualenv, is used as it is.
    env = clean_env(PYTHON=sys.executable, PYENV_ROOT=os.environ.get("PYENV_ROOT", str(pathlib.Path.home() / ".pyenv")))
    where = subprocess.run(["bash", "scripts/setup.sh", "--where"], cwd=REPO, env=env, capture_output=True, text=True)
    in_pyenv = pathlib.Path(env["PYENV_ROOT"]).resolve() / "versions" in pathlib.Path(sys.prefix).resolve().parents
    if sys.prefix != sys.base_prefix or in_pyenv:
        assert f"into {sys.executable} (" in where.stdout, where.stdout


@pytest.mark.slow
@needs_checkout
@linux_only
def test_readme_command_on_the_system_python(tmp_path: pathlib.Path) -> None:
    """The README's first command, `avatarkit --version` for `avatarkit demo`, on a copy of the checkout
    with only the system's Python on the PATH (Debian's /usr/bin/python3, externally managed): setup.sh
    makes .venv from it and scripts/run runs the avatarkit it installed there."""
    if not SYSTEM_PYTHON.is_file() or shutil.which("apt-get") is None:
        pytest.skip("needs a Debian or Ubuntu system Python (/usr/bin/python3)")
    stdlib = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    marker = pathlib.Path(stdlib) / "EXTERNALLY-MANAGED"  # PEP 668: Debian 12's is
    checkout = scratch_checkout(tmp_path / "checkout")
    install, _ = readme_commands()
    assert install.endswith(" avatarkit demo")
    command = install.removesuffix(" demo") + " --version"
    result = subprocess.run(
        ["bash", "-c", command], cwd=checkout, env=clean_env(), capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, f"{command} ({marker} exists: {marker.exists()})\n{result.stdout}\n{result.stderr}"
    assert "setup: made the virtualenv .venv from /usr/bin/python3" in result.stdout, result.stdout
    assert result.stdout.rstrip().endswith(f"avatarkit {avatarkit.__version__}"), result.stdout
    code = [line for line in (checkout / "scripts" / "setup.sh").read_text().splitlines() if not line.startswith("#")]
    assert not any("break-system-packages" in line for line in code)
    cfg = (checkout / ".venv" / "pyvenv.cfg").read_text()
    assert re.search(r"^home = /usr/bin$", cfg, re.M), cfg
    assert (checkout / "build" / "setup-env").read_text().strip() == str(checkout / ".venv" / "bin")
    # Nothing went into the system's Python.
    system = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import avatarkit"], cwd=tmp_path, capture_output=True, text=True
    )
    assert "No module named 'avatarkit'" in system.stderr


# -- the wheel ---------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_checkout
@linux_only
def test_repaired_wheel_runs_the_demo_without_a_compiler(tmp_path: pathlib.Path) -> None:
    """scripts/build-wheel.sh makes a manylinux wheel; in a fresh virtualenv, with no compiler on the
    PATH, it installs from binaries only and `avatarkit demo` writes a real MP4 headless."""
    if importlib_missing("auditwheel"):
        pytest.skip("auditwheel is in the test dependency group")
    wheelhouse = tmp_path / "wheelhouse"
    built = subprocess.run(
        ["bash", "scripts/build-wheel.sh", str(wheelhouse)],
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = pathlib.Path(built.stdout.strip().splitlines()[-1].removeprefix("wheel: "))
    assert wheel.is_file() and wheel.parent == wheelhouse, built.stdout
    assert re.search(r"-manylinux_\d+_\d+_\w+\.whl$", wheel.name), wheel.name
    assert re.search(r"auditwheel show: manylinux_\d+_\d+_", built.stdout), built.stdout
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert any(n.startswith("pyavatarkit.libs/libzstd") for n in names), "auditwheel should have vendored libzstd"
    assert not any("libGL" in n or "libEGL" in n for n in names)

    # A machine without a compiler: the PATH holds the virtualenv and nothing else.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    path = f"{venv / 'bin'}:{bare}"
    assert all(shutil.which(c, path=path) is None for c in COMPILERS)
    env = clean_env(PATH=path)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--only-binary", ":all:", str(wheel)]
    installed = subprocess.run(pip, env=env, capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    run = tmp_path / "run"
    run.mkdir()
    env.pop("DISPLAY", None)
    env.update(
        HOME=str(tmp_path / "home"),
        AVATARKIT_CACHE_DIR=str(tmp_path / "cache"),
        AVATARKIT_CONFIG_DIR=str(tmp_path / "config"),
        AVATARKIT_DATA_DIR=str(tmp_path / "data"),
    )
    demo = subprocess.run(
        [str(venv / "bin" / "avatarkit"), "demo", "--no-window"],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import avatarkit; print(avatarkit._core.__file__)"],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where  # the wheel's extension, not the checkout's

    import av

    with av.open(str(run / "avatarkit-demo.mp4")) as container:
        assert container.format.name.startswith("mov"), container.format.name
        (video,) = container.streams.video
        (audio,) = container.streams.audio
        assert (video.codec_context.name, audio.codec_context.name) == ("h264", "aac")
        assert (video.width, video.height) == (512, 512)
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 30 * 5, frames  # the bundled sentence is several seconds long at 30 fps


# -- the sdist and the release files -----------------------------------------------------------------


@needs_checkout
def test_sdist_builds_with_licence_and_notices(tmp_path: pathlib.Path) -> None:
    """`python -m build --sdist` works and ships the licence, the notices and the release files."""
    if importlib_missing("build"):
        pytest.skip("build is in the test dependency group")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (sdist,) = tmp_path.glob("pyavatarkit-*.tar.gz")
    assert sdist.name == f"pyavatarkit-{avatarkit.__version__}.tar.gz"
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if "/" in m.name}
        pkg_info = tar.extractfile(f"pyavatarkit-{avatarkit.__version__}/PKG-INFO").read().decode()  # type: ignore[union-attr]
    for name in ("LICENSE", "THIRD_PARTY_NOTICES.md", "CHANGELOG.md", "SECURITY.md", "CONTRIBUTING.md", "README.md"):
        assert name in members, f"{name} is not in the sdist"
    assert members["scripts/run"].mode & 0o111, "scripts/run lost its executable bit"
    assert not any(n.startswith(("build/", ".venv/", "wheelhouse/")) for n in members)
    assert "License-Expression: MIT" in pkg_info
    assert "License-File: LICENSE" in pkg_info and "License-File: THIRD_PARTY_NOTICES.md" in pkg_info
    for label in ("Homepage", "Documentation", "Changelog", "Issues"):
        assert re.search(rf"^Project-URL: {label}, https://", pkg_info, re.M | re.I), label


def _pyproject() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    config: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())
    return config


@needs_checkout
def test_release_files_agree() -> None:
    """LICENSE is the MIT text pyproject names; the changelog has this version; the project URLs and
    the README's picture use one repository address and name files that exist."""
    project = _pyproject()["project"]
    assert project["license"] == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in (REPO / "LICENSE").read_text()
    assert project["license-files"] == ["LICENSE", "THIRD_PARTY_NOTICES.md"]
    assert re.search(
        rf"^## \[{re.escape(avatarkit.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$",
        (REPO / "CHANGELOG.md").read_text(),
        re.M,
    )

    urls = project["urls"]
    assert isinstance(urls, dict)
    assert set(urls) == {"Homepage", "Documentation", "Changelog", "Issues"}
    home = urls["Homepage"]
    assert all(url.startswith(home) for url in urls.values()), urls
    owner_repo = home.removeprefix("https://github.com/")
    for url in urls.values():
        if "/blob/main/" in url or "/tree/main/" in url:
            assert (REPO / re.split(r"/(?:blob|tree)/main/", url)[1]).exists(), url
    readme = (REPO / "README.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme)
    assert pictures, "the README has a picture"
    raw = f"https://raw.githubusercontent.com/{owner_repo}/main/"
    for picture in pictures:
        assert picture.startswith(raw), f"{picture}: the package index shows only absolute addresses"
        assert (REPO / picture.removeprefix(raw)).is_file(), picture


@needs_checkout
def test_release_pages_link_to_what_exists() -> None:
    """Links in LICENSE's companions (notices, changelog, security, contributing) resolve."""
    for name in ("THIRD_PARTY_NOTICES.md", "CHANGELOG.md", "SECURITY.md", "CONTRIBUTING.md"):
        page = REPO / name
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text()):
            if "://" in target:
                continue
            linked = page.parent / target if target else page
            assert linked.exists(), f"{name} links to {target}, which is not there"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), f"{name} links to {target}#{anchor}, no such heading"


def test_cibuildwheel_builds_what_is_supported() -> None:
    """cibuildwheel builds every CPython the package supports, 3.14 included, and repairs as build-wheel.sh."""
    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("needs pyproject.toml")
    config = _pyproject()
    cibw = config["tool"]["cibuildwheel"]
    assert cibw["build"].split() == [f"cp3{minor}-*" for minor in range(10, 15)]
    assert config["project"]["requires-python"] == ">=3.10"
    repair = cibw["linux"]["repair-wheel-command"]
    script = (REPO / "scripts" / "build-wheel.sh").read_text() if (REPO / "scripts").is_dir() else ""
    for exclude in re.findall(r"--exclude (\S+)", repair):
        assert not script or f"--exclude {exclude}" in script, exclude
