#!/usr/bin/env bash
# Install what a fresh Debian or Ubuntu machine lacks, then this package into a Python environment.
#   bash scripts/setup.sh          the package and its run-time dependencies
#   bash scripts/setup.sh --test   also the test dependency group
#   bash scripts/setup.sh --dev    also the development tools
#   bash scripts/setup.sh --where  only say which environment it would install into
# Then `scripts/run COMMAND...` runs a command with that environment first on the PATH
# (`scripts/run avatarkit demo`, `scripts/run python -m pytest`).
#
# The Python is $PYTHON, else the first `python` or `python3` on the PATH (Debian's python3 is
# installed when there is none). Where it installs depends on what that interpreter is, asked of
# the interpreter itself (sys.prefix), not of its path:
#   - a virtualenv (sys.prefix differs from sys.base_prefix; pyenv-virtualenv's too), a conda
#     environment (sys.prefix holds conda-meta/) or a Python that pyenv built (sys.prefix is under
#     $PYENV_ROOT/versions/, ~/.pyenv by default): into it, as `pip install .` would. A pyenv shim
#     counts as the interpreter it runs, so `pyenv global system` is the system's Python;
#   - any other Python (the system's, externally managed (PEP 668) on Debian 12 and Ubuntu 23.04 and
#     later, or one in /usr/local): into the project virtualenv .venv, made from it (Debian's
#     python3-venv is installed when venv cannot bootstrap pip). Never --break-system-packages.
# Elsewhere (macOS, Windows) install a C++17 compiler and zstd yourself, then `pip install .`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

GROUP=()
WHERE_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --test) GROUP=(--group test) ;;
    --dev) GROUP=(--group dev) ;;
    --where) WHERE_ONLY=1 ;;
    *) echo "usage: $0 [--test|--dev|--where]" >&2; exit 2 ;;
  esac
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_install() {
  echo "setup: installing Debian packages: $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if [ -z "${PYTHON:-}" ]; then
  # The first that runs: a pyenv shim for `python` fails where the selected version has none.
  for candidate in python python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c '' >/dev/null 2>&1; then
      PYTHON=$(command -v "$candidate")
      break
    fi
  done
fi
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  if [ "$WHERE_ONLY" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt_install python3 python3-venv
    PYTHON=$(command -v python3)
  else
    echo "setup: no python or python3 on the PATH; install Python 3.10 or later" >&2
    exit 1
  fi
fi

# "env" (install into it) or "system" (use .venv), decided as described above.
KIND=$("$PYTHON" - <<'EOF'
import os, pathlib, sys

prefix = pathlib.Path(sys.prefix).resolve()
pyenv_versions = pathlib.Path(os.environ.get("PYENV_ROOT") or pathlib.Path.home() / ".pyenv").resolve() / "versions"
if sys.prefix != sys.base_prefix:
    print("env virtualenv")
elif (prefix / "conda-meta").is_dir():
    print("env conda")
elif pyenv_versions in prefix.parents:
    print("env pyenv")
else:
    print("system")
EOF
)
if [ "${KIND%% *}" = env ]; then
  WHERE="$PYTHON (${KIND#env }, $("$PYTHON" -c 'import sys; print(sys.prefix)'))"
else
  WHERE="$ROOT/.venv (a virtualenv made from $PYTHON, which is not in a virtualenv, conda or pyenv environment)"
fi
if [ "$WHERE_ONLY" -eq 1 ]; then
  echo "setup: would install into $WHERE"
  exit 0
fi

# Debian packages: a C++ compiler and zstd's headers to build the core; Mesa's EGL and its software
# rasterizer (llvmpipe) for headless rendering without a GPU.
APT_PACKAGES=(g++ pkg-config libzstd-dev libegl1 libegl-mesa0 libgl1-mesa-dri)
# The tests also open a window on a virtual X screen (and press its keys with xdotool), run two
# service workers behind nginx, and play and record sound through PortAudio (on ALSA file devices).
if [ ${#GROUP[@]} -gt 0 ]; then APT_PACKAGES+=(xvfb xdotool nginx libportaudio2); fi
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
fi

if [ "$KIND" = system ]; then
  if ! .venv/bin/python -c '' 2>/dev/null; then
    rm -rf .venv
    if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
      # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) separately: python3-venv for the
      # default python3, python3.X-venv for the others.
      rm -rf .venv
      if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: '$PYTHON -m venv .venv' failed; install Python's venv module" >&2
        exit 1
      fi
      version=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
      venv_packages=("python$version-venv")
      if [ "$(readlink -f "$PYTHON")" = "$(readlink -f "$(command -v python3 || echo none)")" ]; then
        venv_packages+=(python3-venv)
      fi
      apt_install "${venv_packages[@]}"
      "$PYTHON" -m venv .venv
    fi
    echo "setup: made the virtualenv .venv from $PYTHON"
  fi
  PYTHON=$ROOT/.venv/bin/python
fi
echo "setup: installing into $WHERE"

# pip 25.1 or newer understands dependency groups (PEP 735).
"$PYTHON" -m pip install --quiet --upgrade "pip>=25.1"
"$PYTHON" -m pip install --quiet "${GROUP[@]}" .

# scripts/run puts this environment's scripts folder (avatarkit, pytest, its python) first on the PATH.
mkdir -p build
"$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' >build/setup-env
echo "setup: installed $("$PYTHON" -c 'import avatarkit; print("avatarkit", avatarkit.__version__)'); run it with scripts/run"
