#!/bin/bash
# test-deb.sh — builds the .deb (build-deb.sh, lintian clean of errors),
# installs it on this machine, runs tests/e2e/test_package.py against the
# installed files, then purges it and checks that the user and the
# configuration are gone. Needs root; the system Postfix and Redis are not
# started or touched (the test runs private instances).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=/var/tmp/mailgate-deb
deb=$(bash "$top/tests/package/build-deb.sh" "$out" | tail -1)
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "$deb" >"$out/install.log" 2>&1 || { cat "$out/install.log"; exit 1; }
trap 'apt-get purge -y -q mailgate >/dev/null 2>&1 || true' EXIT
(cd "$top/tests/e2e" && MG_INSTALLED=1 MG_SOURCE_DIR="$top" /usr/bin/python3 -m unittest -v test_package)
apt-get purge -y -q mailgate >"$out/purge.log" 2>&1 || { cat "$out/purge.log"; exit 1; }
trap - EXIT
if getent passwd mailgate >/dev/null || [ -e /etc/mailgate ] || [ -e /var/spool/postfix/mailgate ]; then
  echo "test-deb.sh: purge left the mailgate user, /etc/mailgate or the socket directory behind" >&2
  exit 1
fi
echo "test-deb.sh: package built, installed, used and purged"
