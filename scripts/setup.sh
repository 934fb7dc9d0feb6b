#!/usr/bin/env bash
# Install what a fresh Debian or Ubuntu machine lacks, then this package into the current Python.
#   bash scripts/setup.sh          the package and its run-time dependencies
#   bash scripts/setup.sh --test   also the test dependency group
# Elsewhere (macOS, Windows) install a C++17 compiler and zstd yourself, then `pip install .`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python || command -v python3)}
GROUP=()
for arg in "$@"; do
  case "$arg" in
    --test) GROUP=(--group test) ;;
    --dev) GROUP=(--group dev) ;;
    *) echo "usage: $0 [--test|--dev]" >&2; exit 2 ;;
  esac
done

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
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# pip 25.1 or newer understands dependency groups (PEP 735).
"$PYTHON" -m pip install --quiet --upgrade "pip>=25.1"
"$PYTHON" -m pip install --quiet "${GROUP[@]}" .
echo "setup: installed $("$PYTHON" -c 'import avatarkit; print("avatarkit", avatarkit.__version__)')"
