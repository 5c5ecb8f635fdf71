#!/bin/bash
# man_lint.sh — every man page renders without a single groff warning.
set -u
status=0
for page in "$(dirname "$0")"/../man/*.[1-8]; do
  out=$(LC_ALL=C.UTF-8 groff -ww -z -man "$page" 2>&1)
  if [ -n "$out" ]; then
    echo "$out"
    status=1
  fi
done
exit $status
