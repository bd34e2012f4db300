#!/usr/bin/env bash
# make demo: a shell pipeline and sqlite3 run twice — under `tern run` on the default root
# (/dev/shm/tern, or TERN_ROOT) and in a plain kernel directory — and the outputs compared.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)  # absolute: the workload runs in other directories
tern="$build/tools/tern"
root=${TERN_ROOT:-/dev/shm/tern}
work="$root/demo"
plain=$(mktemp -d /dev/shm/tern-demo-kernel.XXXXXX)
trap 'rm -rf "$plain"' EXIT

workload='
set -eu
seq 1 100000 | awk "{print \$1 % 977, \$1}" > numbers.txt
sort -n -k1,1 -k2,2 numbers.txt | tail -n 2 > top.txt
cat top.txt
wc -l < numbers.txt
for i in $(seq 1 10); do
  echo "begin; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<1000)
        INSERT INTO t(v) SELECT printf(\"row-%d-%d\", $i, x) FROM c; commit;"
done > load.sql
sqlite3 demo.db "create table t(k integer primary key, v text);" < /dev/null
sqlite3 demo.db < load.sql
sqlite3 demo.db "pragma integrity_check; select count(*), sum(length(v)), max(v) from t;"
'

rm -rf "$work"
mkdir -p "$work"
echo "== under tern (root $root): a pipeline, then sqlite3 inserting 10,000 rows in 10 transactions"
start=$(date +%s.%N)
on_tern=$(cd "$work" && "$tern" run --root "$root" -- bash -c "$workload")
end=$(date +%s.%N)
echo "$on_tern"
echo "== the same on the kernel ($plain)"
on_kernel=$(cd "$plain" && bash -c "$workload")
if [ "$on_tern" != "$on_kernel" ]; then
  echo "DIFFERENT output on tern and on the kernel:"
  diff <(echo "$on_tern") <(echo "$on_kernel") || true
  exit 1
fi
echo "same output on tern and on the kernel ($(python3 -c "print(round($end - $start, 2))") s on tern)"
echo "== the files under the root are tern files:"
"$tern" info "$work/demo.db" | head -8
"$tern" export "$work/demo.db" "$plain/exported.db"
echo "exported copy, read by sqlite3 without tern: $(sqlite3 "$plain/exported.db" 'select count(*) from t;') rows"
echo "== crash and recovery: a writer killed with SIGKILL mid-write, then reopened"
"$build/tools/tern_demo"
