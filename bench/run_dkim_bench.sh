#!/bin/bash
# run_dkim_bench.sh — mailgate's DKIM signing cost per message next to
# `openssl speed` for the same algorithms, in one run. Needs a build in build/.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/build/bench/dkim_sign" "${1:-300}"
openssl speed -seconds 2 rsa2048 ed25519 2>/dev/null | grep -iE "rsa 2048 bits|ed25519\)|^ +sign"
