#!/bin/bash
# bootstrap.sh [PACKAGE...] — what the bench commands (bench/chain, soak, sessions)
# need before they run: the build and test dependencies (contrib/install-build-deps.sh),
# the extra Debian PACKAGEs named, and the daemons in build/ (contrib/build.sh when
# build/ is not configured yet, else an incremental build so no stale binary is measured).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bash "$top/contrib/install-build-deps.sh"
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap.sh: run as root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" ||
    { apt-get update -q && apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}"; }
fi
build=${MG_BUILD_DIR:-$top/build}
if [ -f "$build/CMakeCache.txt" ]; then
  cmake --build "$build" -j"$(nproc)" --target mailgate-policy mailgate-milter mailgate-tracker mailgatectl smtp_load
else
  bash "$top/contrib/build.sh" "$build" -DMG_BUILD_TESTS=OFF
fi
