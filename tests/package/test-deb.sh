#!/bin/bash
# test-deb.sh — builds the .deb (build-deb.sh, lintian clean of errors),
# installs it on this machine, runs tests/e2e/test_package.py against the
# installed files, then purges it and checks that the user and the
# configuration are gone; then test-install-order.sh installs it in
# throw-away Debian 12 roots (before and after Postfix, with Exim only, as an
# upgrade). Needs root; the system Postfix and Redis are not started or
# touched (the test runs private instances), and no recommended package
# (rsyslog) is installed on this machine.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=/var/tmp/mailgate-deb
deb=$(bash "$top/tests/package/build-deb.sh" "$out" | tail -1)
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "$deb" >"$out/install.log" 2>&1 || { cat "$out/install.log"; exit 1; }
trap 'apt-get purge -y -q mailgate >/dev/null 2>&1 || true' EXIT
(cd "$top/tests/e2e" && MG_INSTALLED=1 MG_SOURCE_DIR="$top" /usr/bin/python3 -m unittest -v test_package)
apt-get purge -y -q mailgate >"$out/purge.log" 2>&1 || { cat "$out/purge.log"; exit 1; }
trap - EXIT
if getent passwd mailgate >/dev/null || [ -e /etc/mailgate ] || [ -e /var/spool/postfix/mailgate ]; then
  echo "test-deb.sh: purge left the mailgate user, /etc/mailgate or the socket directory behind" >&2
  exit 1
fi
bash "$top/tests/package/test-install-order.sh" "$deb"
echo "test-deb.sh: package built, installed, used and purged"
