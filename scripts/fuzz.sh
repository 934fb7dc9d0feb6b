#!/usr/bin/env bash
# Fuzz the C++ byte parsers (the AK1 StreamDecoder and flame::decode) under AddressSanitizer +
# UndefinedBehaviorSanitizer, and keep what crashes as regression inputs.
#
#   scripts/fuzz.sh [SECONDS]        fuzz for SECONDS (default 60)
#
# Builds cpp/fuzz/fuzz_codec.cpp into build-fuzz/<engine>/: with clang's libFuzzer when clang++ can
# link -fsanitize=fuzzer (Debian: apt-get install clang libclang-rt-14-dev), else with the default
# compiler and cpp/fuzz/standalone_driver.cpp. Seeds are written afresh into build-fuzz/<engine>/seeds
# (the encoder's payloads, and FlameAnimation payloads of ../shared/data/official-16000.json when it
# is there); inputs that reach new code accumulate in build-fuzz/<engine>/corpus across runs. New
# crashing inputs are copied into tests/corpus/codec/, which tests/test_fuzz_regression.py replays:
# rename them after what they show once the bug is fixed.
#
# Environment: FUZZ_ENGINE=libfuzzer|standalone to choose, FUZZ_JOBS for the build (default 1),
# FUZZ_SEED for the standalone driver's RNG (default: the time), FUZZ_MAX_LEN (default 8192).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_TO_RUN=${1:-60}
JOBS=${FUZZ_JOBS:-1}
MAX_LEN=${FUZZ_MAX_LEN:-8192}
REGRESSION=$ROOT/tests/corpus/codec

libfuzzer_works() {
  command -v clang++ >/dev/null 2>&1 || return 1
  local probe
  probe=$(mktemp -d)
  printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$probe/p.cpp"
  clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1
  local ok=$?
  rm -rf "$probe"
  return $ok
}

ENGINE=${FUZZ_ENGINE:-}
if [ -z "$ENGINE" ]; then
  if libfuzzer_works; then ENGINE=libfuzzer; else ENGINE=standalone; fi
fi
BUILD=$ROOT/build-fuzz/$ENGINE
CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DAVATARKIT_PYTHON=OFF -DAVATARKIT_FUZZ=ON
            -DAVATARKIT_SANITIZE=ON -DAVATARKIT_FUZZ_ENGINE="$ENGINE")
if [ "$ENGINE" = libfuzzer ]; then
  CMAKE_ARGS+=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++)
fi
if [ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
  CMAKE_ARGS+=(-G Ninja)
fi
echo "fuzz.sh: engine $ENGINE, build $BUILD, $SECONDS_TO_RUN s"
cmake -S "$ROOT" -B "$BUILD" "${CMAKE_ARGS[@]}" >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target fuzz_codec fuzz_codec_seeds

rm -rf "$BUILD/seeds"
"$BUILD/fuzz_codec_seeds" "$BUILD/seeds"
python3 "$ROOT/cpp/fuzz/make_seeds.py" "$BUILD/seeds"
mkdir -p "$BUILD/corpus" "$REGRESSION"
ARTIFACTS=$BUILD/artifacts/$(date +%Y%m%d-%H%M%S)
mkdir -p "$ARTIFACTS"

set +e
if [ "$ENGINE" = libfuzzer ]; then
  # The first directory receives new inputs; the others are only read.
  "$BUILD/fuzz_codec" -max_total_time="$SECONDS_TO_RUN" -max_len="$MAX_LEN" -use_value_profile=1 \
    -dict="$ROOT/cpp/fuzz/fuzz_codec.dict" -artifact_prefix="$ARTIFACTS/" -print_final_stats=1 \
    "$BUILD/corpus" "$BUILD/seeds" "$REGRESSION"
else
  "$BUILD/fuzz_codec" --mutate 1000000000000 --seed "${FUZZ_SEED:-$(date +%s)}" \
    --max-seconds "$SECONDS_TO_RUN" --max-len "$MAX_LEN" --artifacts "$ARTIFACTS" \
    --corpus-out "$BUILD/corpus" "$BUILD/corpus" "$BUILD/seeds" "$REGRESSION"
fi
status=$?
set -e

found=0
for f in "$ARTIFACTS"/crash-* "$ARTIFACTS"/timeout-* "$ARTIFACTS"/oom-* "$ARTIFACTS"/leak-* "$ARTIFACTS"/.current-input-*; do
  [ -e "$f" ] || continue
  name=$(basename "$f")
  name=${name#.}  # a .current-input-<pid> left behind means the process was killed outright
  cp "$f" "$REGRESSION/$name"
  echo "fuzz.sh: new regression input tests/corpus/codec/$name (replay: $BUILD/fuzz_codec $REGRESSION/$name)"
  found=$((found + 1))
done
if [ "$status" -ne 0 ] || [ "$found" -ne 0 ]; then
  echo "fuzz.sh: FAILED (exit $status, $found new inputs)"
  exit 1
fi
echo "fuzz.sh: nothing found in $SECONDS_TO_RUN s"
