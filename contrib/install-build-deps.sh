#!/bin/bash
# install-build-deps.sh — installs, from Debian 12 packages, everything that
# building mailgate and running its demo and tests needs (as root). Postfix is
# installed unconfigured; the system Postfix and Redis are never used.
set -euo pipefail

# clang, libclang-rt-14-dev: only the fuzz targets (libFuzzer and the
# sanitizer runtimes; tests/fuzz/run-fuzzers.sh).
# libopendkim-dev: only the unit tests (the reference signer and verifier of
# dkim_opendkim_test) and the DKIM bench link libopendkim; the daemons do not.
PACKAGES=(
  build-essential cmake pkg-config
  libmilter-dev libhiredis-dev libssl-dev libopendkim-dev nlohmann-json3-dev libgtest-dev libgmock-dev
  libcurl4-openssl-dev libsystemd-dev libidn2-dev libgmime-3.0-dev libmicrohttpd-dev debhelper dpkg-dev lintian fakeroot
  postfix redis-server redis-sentinel swaks libnet-ssleay-perl openssl python3 python3-dkim groff-base
  man-db bsdextrautils
  debootstrap iproute2
  curl nodejs npm
  strace
  clang libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  # A Node.js installed from elsewhere (e.g. NodeSource, which bundles npm) will do.
  case "$p" in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-build-deps.sh: run as root to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}"
