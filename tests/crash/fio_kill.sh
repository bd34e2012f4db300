#!/bin/bash
# Process kills judged by a tool nobody here wrote (issue 5): fio writes tern files under
# `tern run` with --verify=crc32c --verify_state_save=1 and kills itself with SIGKILL from its own
# --trigger; a fresh fio under `tern run` then verifies with --verify_only=1 --verify_state_load=1
# every block the killed run completed. Rounds vary the block size (aligned, unaligned, large),
# the write rate and the trigger time, so the kill lands at different points; two writer threads
# per round (one file each). Every round must be killed, and every verify must pass.
#
# usage: fio_kill.sh TERN_BINARY [FIO_BINARY] [ROUNDS]
set -euo pipefail
TERN=$1
FIO=${2:-fio}
ROUNDS=${3:-8}
work=$(mktemp -d "${TERN_TEST_DIR:-/dev/shm}/tern-fio-XXXXXX")
trap 'rm -rf "$work"' EXIT
export TERN_SHM_DIR=$work/shm
mkdir -p "$TERN_SHM_DIR"

sizes=(4k 6000 64k 4k 12k 6000 4k 128k)
rates=(9m 14m 21m 18m 12m 17m 25m 11m)  # slow enough that each run outlives its trigger
for ((i = 0; i < ROUNDS; i++)); do
  bs=${sizes[i % 8]} rate=${rates[i % 8]} at=$((1 + i % 2))
  root=$work/root state=$work/state
  rm -rf "$root" "$state"
  mkdir -p "$root" "$state"
  job=(--name=kill --directory="$root" --numjobs=2 --thread --size=64M --bs="$bs" --rw=randwrite
       --ioengine=psync --verify=crc32c --aux-path="$state")
  set +e
  "$TERN" run --root "$root" -- "$FIO" "${job[@]}" --rate="$rate" --verify_state_save=1 --do_verify=0 \
    --trigger-timeout="$at" --trigger='kill -9 $PPID' >"$work/write.log" 2>&1
  rc=$?
  set -e
  if [ "$rc" -ne 137 ]; then
    echo "round $i (bs $bs, rate $rate, kill at ${at}s): the writer was not killed (exit $rc)"
    tail -20 "$work/write.log"
    exit 1
  fi
  if ! "$TERN" run --root "$root" -- "$FIO" "${job[@]}" --verify_state_load=1 --verify_only=1 \
      >"$work/verify.log" 2>&1; then
    echo "round $i (bs $bs, rate $rate, kill at ${at}s): VERIFY FAILED after the kill"
    cat "$work/verify.log"
    exit 1
  fi
  read_io=$(sed -n 's/.*READ: .*io=\([^ ]*\) .*/\1/p' "$work/verify.log")
  echo "round $i: bs $bs, rate $rate, killed at ${at}s; verified $read_io written before the kill"
done
echo "fio kill test: $ROUNDS rounds killed with SIGKILL, every completed write verified"
