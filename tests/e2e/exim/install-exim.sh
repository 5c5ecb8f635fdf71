#!/bin/bash
# install-exim.sh DIR — unpacks Debian's exim4-daemon-heavy into DIR for the
# e2e tests, without installing the package (it conflicts with postfix):
# downloads the .debs, installs only the libraries they need, and creates the
# Debian-exim user the binary was built for. Idempotent.
set -euo pipefail
dir=${1:?usage: install-exim.sh DIR}
if [ -x "$dir/usr/sbin/exim4" ] && getent passwd Debian-exim >/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
libs=(libdb5.3 libgnutls-dane0 libidn12 libldap-2.5-0 libmariadb3 libnsl2 libpcre2-8-0 libperl5.36 libpq5
      libsasl2-2 libspf2-2 libsqlite3-0)
missing=()
for p in "${libs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get install -y -q --no-install-recommends "${missing[@]}" || { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chown _apt "$tmp" 2>/dev/null || true
download() { (cd "$tmp" && apt-get download exim4-daemon-heavy exim4-base) >/dev/null; }
download || { apt-get update -q >/dev/null && download; }
mkdir -p "$dir"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dir"; done
getent group Debian-exim >/dev/null || groupadd --system Debian-exim
getent passwd Debian-exim >/dev/null || useradd --system --gid Debian-exim --home-dir /var/spool/exim4 \
  --no-create-home --shell /usr/sbin/nologin Debian-exim
# The binary runs (-bV prints its version; Debian's 4.96 build of November 2026
# exits 1 there when /etc/exim4 has no configuration, as on this host).
out=$("$dir/usr/sbin/exim4" -bV 2>&1 || true)
grep -q '^Exim version' <<<"$out" || { printf '%s\n' "$out" >&2; exit 1; }
