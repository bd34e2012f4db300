#!/usr/bin/env bash
# Installs the Debian 12 packages tern needs to build, test and benchmark, but only those that are
# missing: when everything is present it touches neither the network nor the dpkg lock, so a
# second run (every `make demo` / `make test`) costs a few dpkg-query calls.
#
# Runs as root (CI, the dev machines) or through sudo. Other jobs may hold the dpkg lock, hence the
# lock timeout (notes/env.md §1).
set -euo pipefail

# The one list of packages. libsnappy-dev is needed by find_package(leveldb): its CMake target links
# -lsnappy. clang builds the ThreadSanitizer tree.
PACKAGES=(
  build-essential cmake ninja-build pkg-config clang
  libpmem-dev libtbb-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libleveldb-dev libsnappy-dev sqlite3 libsqlite3-dev
  fio libfuse3-dev fuse3
  python3 git
)

# One dpkg-query for all of them; it exits non-zero when some package is unknown, which just means
# "missing" here.
declare -A installed=()
while read -r name state; do
  if [[ "$state" == "installed" ]]; then installed["${name%%:*}"]=1; fi
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
missing=()
for pkg in "${PACKAGES[@]}"; do
  [[ -n "${installed[$pkg]:-}" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install_deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "install_deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
  SUDO=(sudo)
fi

echo "install_deps: installing ${missing[*]}"
"${SUDO[@]}" apt-get -q -o DPkg::Lock::Timeout=300 update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
  -o DPkg::Lock::Timeout=300 "${missing[@]}"
