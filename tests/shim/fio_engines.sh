#!/bin/bash
# fio's I/O engines under `tern run`, judged by fio itself: each engine that goes through libc
# (read/write, pread/pwrite, vectored, preadv2/pwritev2, splice, POSIX AIO at queue depth 8) runs a
# random read/write job with fsyncs and fio's own crc32c verification, and must pass it. The
# engines that bypass libc (libaio's and io_uring's system calls) must fail loudly with EBADF,
# and every file left behind must check clean with `tern fsck` (nothing written raw into a
# backing file).
#
# usage: fio_engines.sh TERN_BINARY [FIO_BINARY]
set -euo pipefail
TERN=$1
FIO=${2:-fio}
work=$(mktemp -d "${TERN_TEST_DIR:-/dev/shm}/tern-fio-engines-XXXXXX")
trap 'rm -rf "$work"' EXIT
export TERN_SHM_DIR=$work/shm
mkdir -p "$TERN_SHM_DIR"
root=$work/root

# The job's file must be a tern file, and check clean.
check() {  # ENGINE
  if ! "$TERN" fsck "$root" >"$work/fsck.log" 2>&1 || ! grep -q "^1 tern files checked: 1 clean" "$work/fsck.log"; then
    echo "engine $1: fsck"
    cat "$work/fsck.log"
    exit 1
  fi
}

job() {  # ENGINE [FIO OPTIONS...]
  local engine=$1
  shift
  "$TERN" run --root "$root" -- "$FIO" --name="$engine" --directory="$root" --ioengine="$engine" \
    --rw=randrw --bs=4k --size=4m --io_size=8m --fsync=4 --verify=crc32c --do_verify=1 --aux-path="$work" "$@" \
    >"$work/$engine.log" 2>&1
}

for engine in sync psync vsync pvsync pvsync2 splice posixaio; do
  rm -rf "$root"
  mkdir -p "$root"
  depth=1
  [ "$engine" = posixaio ] && depth=8
  if ! job "$engine" --iodepth="$depth" || ! grep -q "err= 0" "$work/$engine.log"; then
    echo "engine $engine: fio failed under tern"
    cat "$work/$engine.log"
    exit 1
  fi
  check "$engine"
  echo "engine $engine: fio's verification passed, fsck clean"
done

for engine in libaio io_uring; do
  rm -rf "$root"
  mkdir -p "$root"
  if job "$engine" --iodepth=8; then
    echo "engine $engine: bypasses libc, yet fio succeeded on a tern file"
    cat "$work/$engine.log"
    exit 1
  fi
  if ! grep -q "Bad file descriptor" "$work/$engine.log"; then
    echo "engine $engine: failed, but not with EBADF"
    cat "$work/$engine.log"
    exit 1
  fi
  check "$engine"
  echo "engine $engine: refused with EBADF, fsck clean"
done
