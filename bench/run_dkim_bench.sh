#!/bin/bash
# run_dkim_bench.sh — mailgate's DKIM signing cost per message (RSA-2048,
# Ed25519; 1 KiB, 64 KiB, 1 MiB bodies) next to a raw EVP_DigestSign loop
# of the same key, SHA-256 of the body and libopendkim, in one run; then
# `openssl speed` for scale. Needs a build in build/ (MG_BENCH=ON).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/build/bench/dkim_sign" "${1:-300}"
openssl speed -seconds 2 rsa2048 ed25519 2>/dev/null | grep -iE "rsa 2048 bits|ed25519\)|^ +sign"
