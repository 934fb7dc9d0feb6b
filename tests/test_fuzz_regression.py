"""The C++ byte parsers under AddressSanitizer + UndefinedBehaviorSanitizer.

Builds the fuzz target (cpp/fuzz/fuzz_codec.cpp) behind its standalone driver, replays the
regression corpus (tests/corpus/codec: every input that ever crashed a parser, plus a few seeds),
and runs a short, seeded mutation session that must find nothing. Longer sessions, with libFuzzer
when clang is installed: scripts/fuzz.sh.

The build is cached in build/fuzz-test, so only the first run pays for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "corpus" / "codec"
BUILD_DIR = REPO / "build" / "fuzz-test"
MAKE_SEEDS = REPO / "cpp" / "fuzz" / "make_seeds.py"

MUTATIONS = 20_000
MUTATION_SECONDS = 60
MUTATION_SEED = 20240611

# Sanitizer reports go to stderr and end the process with a non-zero code; print stacks for UBSan.
RUN_ENV = {**os.environ, "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


def _run(
    args: list[str | Path], *, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False, env=env)


def _tail(result: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    text = (result.stdout or "") + (result.stderr or "")
    return "\n".join(text.splitlines()[-lines:])


def _compiler() -> str:
    for candidate in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if candidate and shutil.which(candidate):
            return candidate
    pytest.skip("no C++ compiler on PATH")


def _compiles(cxx: str, source: str, *flags: str, tmp: Path) -> bool:
    src = tmp / "probe.cpp"
    src.write_text(source)
    # Flags after the source: libraries must follow what uses them.
    return _run([cxx, "-std=c++17", src, *flags, "-o", tmp / "probe"], timeout=120).returncode == 0


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not sys.platform.startswith("linux"):
        pytest.skip("the standalone fuzz driver is Linux-only (it uses the GNU linker's __executable_start)")
    if not (REPO / "CMakeLists.txt").is_file() or not (REPO / "cpp" / "fuzz").is_dir():
        pytest.skip("the C++ sources are not beside the tests")
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not on PATH")
    cxx = _compiler()
    tmp = tmp_path_factory.mktemp("probe")
    zstd_probe = "#include <zstd.h>\nint main() { return ZSTD_versionNumber() == 0; }\n"
    if not _compiles(cxx, zstd_probe, "-lzstd", tmp=tmp):
        pytest.skip("zstd headers or library not found (Debian: libzstd-dev)")
    if not _compiles(cxx, "int main() { return 0; }\n", "-fsanitize=address,undefined", tmp=tmp):
        pytest.skip(f"{cxx} cannot link AddressSanitizer + UndefinedBehaviorSanitizer programs")

    configure = [
        cmake, "-S", REPO, "-B", BUILD_DIR,
        *(["-G", "Ninja"] if shutil.which("ninja") else []),
        "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
        f"-DCMAKE_CXX_COMPILER={cxx}",
        "-DAVATARKIT_PYTHON=OFF",
        "-DAVATARKIT_FUZZ=ON",
        "-DAVATARKIT_FUZZ_ENGINE=standalone",
        "-DAVATARKIT_SANITIZE=ON",
    ]  # fmt: skip
    result = _run(configure, timeout=300)
    if result.returncode != 0:
        # A cache from another generator or compiler cannot be reconfigured: start over once.
        shutil.rmtree(BUILD_DIR, ignore_errors=True)
        result = _run(configure, timeout=300)
    assert result.returncode == 0, f"cmake configure failed:\n{_tail(result)}"
    # -j2: the machines this runs on have two cores.
    result = _run([cmake, "--build", BUILD_DIR, "-j2", "--target", "fuzz_codec"], timeout=1800)
    assert result.returncode == 0, f"building fuzz_codec failed:\n{_tail(result)}"
    return BUILD_DIR / "fuzz_codec"


def _found(artifacts: Path) -> list[Path]:
    return sorted(p for p in artifacts.iterdir() if p.name.startswith(("crash-", "timeout-")))


def test_regression_corpus_replays_clean(driver: Path, tmp_path: Path) -> None:
    inputs = sorted(p for p in CORPUS.iterdir() if p.is_file())
    assert inputs, f"{CORPUS} is empty"
    result = _run([driver, "--artifacts", tmp_path, CORPUS], timeout=600, env=RUN_ENV)
    assert result.returncode == 0, f"a corpus input crashes the parsers:\n{_tail(result)}"
    assert f"replayed {len(inputs)} inputs" in result.stdout
    assert not _found(tmp_path)


def test_seeded_mutation_session_finds_nothing(driver: Path, tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    # Seeds from the real service recording, when ../shared/data is beside the checkout.
    made = _run([sys.executable, MAKE_SEEDS, seeds], timeout=120)
    assert made.returncode == 0, _tail(made)
    artifacts = tmp_path / "artifacts"
    args: list[str | Path] = [
        driver, "--mutate", str(MUTATIONS), "--seed", str(MUTATION_SEED),
        "--max-seconds", str(MUTATION_SECONDS), "--artifacts", artifacts, CORPUS,
    ]  # fmt: skip
    if seeds.is_dir():
        args.append(seeds)
    result = _run(args, timeout=MUTATION_SECONDS + 600, env=RUN_ENV)
    found = _found(artifacts) if artifacts.is_dir() else []
    assert result.returncode == 0 and not found, (
        f"the mutation session found a crash ({[p.name for p in found]}); replay it with\n"
        f"  {driver} <file>\nand keep it in {CORPUS.relative_to(REPO)} once fixed:\n{_tail(result)}"
    )
    assert "0 crashes" in result.stdout.splitlines()[-1]


def test_a_crashing_input_is_saved(driver: Path, tmp_path: Path) -> None:
    # The driver writes the input to disk before each run; a crash must leave it as crash-<hash>.
    result = _run([driver, "--crash-self-test", "--artifacts", tmp_path], timeout=120, env=RUN_ENV)
    assert result.returncode != 0
    found = _found(tmp_path)
    assert [p.read_bytes() for p in found] == [b"self-test"], _tail(result)
    assert not list(tmp_path.glob(".current-input-*"))
