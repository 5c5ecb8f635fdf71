#!/bin/bash
# run-demo.sh — installs what is needed, builds mailgate and runs the gateway
# demo: private Redis + Postfix on loopback with both daemons attached, one
# message sent with swaks, its recorded outcome printed with mailgatectl.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bash "$top/contrib/install-build-deps.sh"
bash "$top/contrib/build.sh" "$top/build" -DMG_BUILD_TESTS=OFF
MG_BUILD_DIR="$top/build" MG_SOURCE_DIR="$top" /usr/bin/python3 "$top/tests/e2e/harness.py" demo
