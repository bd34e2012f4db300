#!/usr/bin/env bash
# Issue 3: the shim's benchmarks, tern against the kernel on the same mount in the same run.
#  - shim_bench: the single-thread matrix (4 KiB overwrite/append + fsync, random/sequential reads;
#    opening, creating, and programs started: what a shell pipeline pays per command)
#    on the kernel (a plain directory on /dev/shm) and under `tern run` (the same mount, files under
#    the tern root), and the pass-through cases with and without the shim on non-tern fds.
#  - ycsb_bench: YCSB A–F on Debian's LevelDB, the database in a plain /dev/shm directory and under
#    the tern root (bench/ycsb/).
# Builds tern, the shim and both programs (Release, build-bench/) and writes bench/results/shim.md.
#
# usage: bench/run_shim.sh [--quick] [--reps N] [--rounds N] [--no-micro] [--no-ycsb]
#                          [--ycsb-records N] [--ycsb-ops N] [--ycsb-rounds N] [--full]
#   --quick          a smoke run (~1 min): fewer operations, one round, YCSB at 20k records/ops
#   --rounds N       alternating kernel/tern rounds of shim_bench (default 3)
#   --ycsb-records N, --ycsb-ops N   YCSB size (default 100k each); --ycsb-rounds N (default 3)
#   --full           YCSB only, at the issue's size (1 M records and operations), one round;
#                    writes bench/results/shim-ycsb-1m.md (~15 min per side on this VM)
# env: TERN_BENCH_BUILD (build dir, default <repo>/build-bench), TERN_BENCH_OUT (report path),
#      TERN_BENCH_RT=0 (no SCHED_FIFO for shim_bench; by default, as root, `chrt -f 1`; ycsb_bench
#      always runs at normal priority: LevelDB's compaction thread would take both vCPUs for minutes),
#      TERN_BENCH_KEEP=1 (keep the raw JSON lines in the work directory, printed at the end).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARGS="$*"
BUILD=${TERN_BENCH_BUILD:-$ROOT/build-bench}
OUT=${TERN_BENCH_OUT:-}
REPS=5
OPS=20000
ROUNDS=3
MICRO=1
YCSB=1
Y_RECORDS=100000
Y_OPS=100000
Y_ROUNDS=3
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) OPS=2000; ROUNDS=1; Y_RECORDS=20000; Y_OPS=20000; Y_ROUNDS=1 ;;
    --reps) REPS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --no-micro) MICRO=0 ;;
    --no-ycsb) YCSB=0 ;;
    --ycsb-records) Y_RECORDS=$2; shift ;;
    --ycsb-ops) Y_OPS=$2; shift ;;
    --ycsb-rounds) Y_ROUNDS=$2; shift ;;
    --full) MICRO=0; Y_RECORDS=1000000; Y_OPS=1000000; Y_ROUNDS=1 ;;
    *) echo "usage: bench/run_shim.sh [--quick] [--reps N] [--rounds N] [--no-micro] [--no-ycsb]" \
            "[--ycsb-records N] [--ycsb-ops N] [--ycsb-rounds N] [--full]" >&2; exit 2 ;;
  esac
  shift
done
if [[ -z $OUT ]]; then
  if [[ $MICRO == 0 && $Y_RECORDS -ge 1000000 ]]; then OUT=$ROOT/bench/results/shim-ycsb-1m.md
  else OUT=$ROOT/bench/results/shim.md; fi
fi

TARGETS=(tern tern_shim shim_bench)
if [[ $YCSB == 1 ]]; then TARGETS+=(ycsb_bench); fi
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTERN_PMEM_TRACE=OFF -DTERN_BUILD_BENCH=ON \
  -DTERN_SANITIZE= >/dev/null
cmake --build "$BUILD" --target "${TARGETS[@]}" -j2

PREFIX=()
if [[ $(id -u) == 0 && "${TERN_BENCH_RT:-1}" != 0 ]] && command -v chrt >/dev/null; then
  PREFIX=(chrt -f 1)
fi

WORK=$(mktemp -d /dev/shm/tern-shim-bench.XXXXXX)
if [[ -n "${TERN_BENCH_KEEP:-}" ]]; then
  trap 'rm -rf "$WORK/kernel" "$WORK/root" "$WORK/outside"; echo "raw results: $WORK" >&2' EXIT
else
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK/kernel" "$WORK/root" "$WORK/outside"
JSON=$WORK/results.jsonl
: >"$JSON"
BENCH=$BUILD/bench/shim_bench
TERN=$BUILD/tools/tern
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

run() {  # run LABEL CMD...: one JSON line per output line, tagged with the side
  local label=$1; shift
  echo "=== $label: ${*: -4} ($(cut -d' ' -f1-3 /proc/loadavg) load)" >&2
  "$@" | sed "s/^{/{\"run\": \"$label\", /" >>"$JSON"
}

# Kernel and tern alternate, ROUNDS times: on this VM a run's speed drifts by tens of percent
# (memory the host backs late, neighbours), so each side gets the same mix of good and bad moments.
if [[ $MICRO == 1 ]]; then
  for round in $(seq "$ROUNDS"); do
    for c in overwrite append logappend randread seqread mmaptable openread openclosed stat create spawn spawncat firstopen; do
      run kernel "${PREFIX[@]}" "$BENCH" --dir="$WORK/kernel" --case=$c --ops=$OPS --reps="$REPS"
      run tern "${PREFIX[@]}" "$TERN" run --root "$WORK/root" -- "$BENCH" --dir="$WORK/root" --case=$c --ops=$OPS --reps="$REPS"
    done
    for c in passthru_file passthru_pipe passthru_socket; do
      run kernel "${PREFIX[@]}" "$BENCH" --dir="$WORK/outside" --case=$c --ops=$((OPS * 5)) --reps="$REPS"
      run tern "${PREFIX[@]}" "$TERN" run --root "$WORK/root" -- "$BENCH" --dir="$WORK/outside" --case=$c --ops=$((OPS * 5)) --reps="$REPS"
    done
  done
fi

if [[ $YCSB == 1 ]]; then
  YCSB_BIN=$BUILD/bench/ycsb_bench
  for round in $(seq "$Y_ROUNDS"); do
    run kernel "$YCSB_BIN" --db="$WORK/kernel/db" --records="$Y_RECORDS" --ops="$Y_OPS" --seed="$round"
    rm -rf "$WORK/kernel/db"
    run tern "$TERN" run --root "$WORK/root" -- "$YCSB_BIN" --db="$WORK/root/db" --records="$Y_RECORDS" --ops="$Y_OPS" --seed="$round"
    rm -rf "$WORK/root/db"
  done
fi

python3 "$ROOT/bench/shim_table.py" "$JSON" "$OUT" \
  --commit "$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- lib pmem shim bench 2>/dev/null || echo ' + uncommitted changes')" \
  --load "$LOAD_BEFORE → $(cut -d' ' -f1-3 /proc/loadavg)" --kernel "$(uname -r)" --ncpu "$(nproc)" \
  --prio "${PREFIX[*]:-normal priority}" --reps "$REPS" --ops "$OPS" --rounds "$ROUNDS" \
  --ycsb "$Y_RECORDS,$Y_OPS,$Y_ROUNDS" \
  --invocation "bench/run_shim.sh $ARGS"
echo "=== wrote $OUT" >&2
cat "$OUT"
