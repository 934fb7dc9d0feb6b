#!/usr/bin/env bash
# Build and run the C++ codec microbenchmarks (Google Benchmark; Debian: apt-get install libbenchmark-dev).
#
#   scripts/bench-cpp.sh                                  # all benchmarks
#   scripts/bench-cpp.sh --benchmark_filter='BM_Decode|BM_Memcpy' --benchmark_repetitions=5
#
# Arguments go to the benchmark binary. JOBS (default 2) caps the parallel compile jobs; BUILD_DIR
# (default build-bench) is the CMake build tree.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build" "${generator[@]}" -DAVATARKIT_BENCH=ON -DAVATARKIT_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build" --target bench_codec -j "${JOBS:-2}"
exec "$build/bench_codec" --benchmark_counters_tabular=true "$@"
