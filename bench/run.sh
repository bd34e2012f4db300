#!/usr/bin/env bash
# Builds engine_bench (Release) and runs it on /dev/shm and on a huge=always tmpfs that it mounts
# itself (root only), then writes bench/results/engine.md with medians and ratios.
#
# usage: bench/run.sh [--quick] [--no-huge] [--reps N] [-- extra engine_bench/benchmark args]
#   --quick    only the four core cases (4 KiB overwrite/append/read, 128 B sub-block)
#   --no-huge  skip the huge=always tmpfs run
#   --reps N   repetitions per benchmark (default 5)
# env: TERN_BENCH_BUILD (build dir, default <repo>/build-bench), TERN_BENCH_OUT (results file,
#      default bench/results/engine.md), TERN_BENCH_ENGINE=OFF (baselines only),
#      TERN_BENCH_KEEP=1 (keep the JSON outputs in /tmp/tern-bench-out.*).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TERN_BENCH_BUILD:-$ROOT/build-bench}
RESULT=${TERN_BENCH_OUT:-$ROOT/bench/results/engine.md}
REPS=5
QUICK=0
HUGE=1
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-huge) HUGE=0 ;;
    --reps) REPS=$2; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTERN_PMEM_TRACE=OFF \
  -DTERN_SANITIZE= -DTERN_BENCH_ENGINE="${TERN_BENCH_ENGINE:-ON}" >/dev/null
cmake --build "$BUILD" --target engine_bench -j2
BIN=$BUILD/bench/engine_bench

OUT=$(mktemp -d /tmp/tern-bench-out.XXXXXX)
HUGE_DIR=""
cleanup() {
  if [[ -n "$HUGE_DIR" ]]; then
    umount "$HUGE_DIR" 2>/dev/null || umount -l "$HUGE_DIR" 2>/dev/null || true
    rmdir "$HUGE_DIR" 2>/dev/null || true
  fi
  rm -rf /dev/shm/tern-bench-run.$$
  [[ -n "${TERN_BENCH_KEEP:-}" ]] || rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FILTER=()
if [[ $QUICK == 1 ]]; then
  FILTER=(--benchmark_filter='^((overwrite_fsync|append_fsync|read)/[a-z]+/4096|subblock_fsync/[a-z]+/128)/')
fi

run_on() {  # label dir
  local label=$1 dir=$2
  echo "=== $label: $dir ($(awk '{print $1, $2, $3}' /proc/loadavg) load)" >&2
  "$BIN" --dir="$dir" --benchmark_repetitions="$REPS" --benchmark_report_aggregates_only=true \
    --benchmark_out="$OUT/$label.json" --benchmark_out_format=json \
    --benchmark_context=load_avg="$(awk '{print $1, $2, $3}' /proc/loadavg)" \
    "${FILTER[@]}" "${EXTRA[@]}"
}

RUNS=()
run_on shm /dev/shm/tern-bench-run.$$
RUNS+=("/dev/shm (tmpfs, 4 KiB pages)=$OUT/shm.json")

if [[ $HUGE == 1 ]]; then
  if [[ $(id -u) != 0 ]]; then
    echo "run.sh: not root, skipping the huge=always tmpfs run" >&2
  else
    HUGE_DIR=$(mktemp -d /tmp/tern-huge.XXXXXX)
    mount -t tmpfs -o huge=always,size=4G tern_huge "$HUGE_DIR"
    run_on huge "$HUGE_DIR"
    RUNS+=("huge=always tmpfs (2 MiB pages)=$OUT/huge.json")
  fi
fi

FACTS=$OUT/facts.md
{
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- lib pmem bench 2>/dev/null || echo ' + uncommitted changes in lib/pmem/bench')"
  echo "- kernel: $(uname -r); CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) vCPUs; memory: $(free -g | awk '/^Mem:/{print $2}') GiB"
  echo "- THP shmem_enabled: $(cat /sys/kernel/mm/transparent_hugepage/shmem_enabled)"
  echo "- libpmem $(dpkg-query -W -f='${Version}' libpmem1 2>/dev/null || echo '?'), Google Benchmark $(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null || echo '?') (Debian package, built as debug: affects only the harness)"
  echo "- build: Release ($BUILD), $REPS repetitions per benchmark, fixed iteration counts, single thread, wall-clock time"
  echo "- invocation: bench/run.sh $([[ $QUICK == 1 ]] && echo --quick) $([[ $HUGE == 0 ]] && echo --no-huge) --reps $REPS"
} >"$FACTS"

mkdir -p "$(dirname "$RESULT")"
python3 "$ROOT/bench/table.py" "$FACTS" "${RUNS[@]}" >"$RESULT"
echo "=== wrote $RESULT" >&2
cat "$RESULT"
