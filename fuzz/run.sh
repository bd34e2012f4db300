#!/bin/bash
# Builds the libFuzzer targets in build-fuzz/ (clang, ASan+UBSan) and runs each for a fixed number
# of executions, bounded in time, from the seed corpus in fuzz/corpus/ plus a scratch corpus; then
# replays every saved regression input in fuzz/regressions/<target>/. Any crash, timeout, leak or
# contract breach (fuzz_common.h) fails the run, and the input is left in build-fuzz/artifacts/.
#
#   fuzz/run.sh                  CI: FUZZ_RUNS executions per target (default 50000), at most
#                                FUZZ_SECONDS seconds each (default 45)
#   FUZZ_RUNS=-1 FUZZ_SECONDS=3600 fuzz/run.sh     soak
#   fuzz/run.sh corpus           regenerate fuzz/corpus/ from real files (fuzz_make_corpus)
#
# A crash input found here becomes a regression: copy it into fuzz/regressions/<target>/ with a
# name that says what it was (and fix the bug).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
RUNS=${FUZZ_RUNS:-50000}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-45}
JOBS=${JOBS:-2}

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DTERN_SANITIZE=address -DTERN_BUILD_FUZZ=ON -DTERN_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$BUILD" -j "$JOBS" --target fuzz_open_bytes fuzz_image fuzz_make_corpus

if [ "${1:-}" = corpus ]; then
  rm -rf fuzz/corpus/image fuzz/corpus/open_bytes
  "$BUILD/fuzz/fuzz_make_corpus" fuzz/corpus
  exit 0
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ART="$BUILD/artifacts"
mkdir -p "$ART"
total=0
for target in open_bytes image; do
  bin="$BUILD/fuzz/fuzz_$target"
  max_len=65536
  [ "$target" = image ] && max_len=$((16 * 4100))
  # Regressions first: each saved input must pass.
  if [ -d "fuzz/regressions/$target" ] && [ -n "$(ls -A "fuzz/regressions/$target")" ]; then
    "$bin" -runs=0 -timeout=60 -rss_limit_mb=4096 fuzz/regressions/$target/* 2>&1 | tail -1
  fi
  work=$(mktemp -d)
  log="$ART/$target.log"
  "$bin" "$work" "fuzz/corpus/$target" -runs="$RUNS" -max_total_time="$SECONDS_PER_TARGET" \
    -max_len=$max_len -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$ART/$target-" >"$log" 2>&1 || {
      echo "fuzz_$target FAILED; input and report in $ART/ (last lines of $log):"
      tail -40 "$log"
      rm -rf "$work"
      exit 1
    }
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  echo "fuzz_$target: $execs executions, $cov, no crash"
  total=$((total + execs))
  rm -rf "$work"
done
echo "fuzz: $total executions in total, no crash, hang or sanitizer report"
