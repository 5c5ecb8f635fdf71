#!/bin/bash
# build.sh DIR [cmake options...] — configures and builds mailgate into DIR
# (warnings are errors). Used by the demo and the test scripts.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$1
shift
cmake -S "$top" -B "$dir" -DMG_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
