#!/bin/bash
# build-deb.sh — builds the Debian package from this tree with
# dpkg-buildpackage (in a copy, so the tree's build directories stay out) and
# checks it with lintian (errors fail). Usage: build-deb.sh [OUTDIR]; the
# .deb ends up in OUTDIR (default /var/tmp/mailgate-deb).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-/var/tmp/mailgate-deb}
rm -rf "$out"
mkdir -p "$out/src"
tar -C "$top" --exclude=./.git --exclude='./build*' --exclude='./obj-*' -cf - . | tar -C "$out/src" -xf -
(cd "$out/src" && dpkg-buildpackage -us -uc -b -j2 >"$out/build.log" 2>&1) || {
  tail -50 "$out/build.log"
  exit 1
}
deb=$(ls "$out"/mailgate_*.deb)
lintian --fail-on error --suppress-tags-from-file /dev/null "$deb" | tee "$out/lintian.txt"
echo "$deb"
