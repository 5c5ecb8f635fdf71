#!/bin/bash
# run-fuzzers.sh [-m] [SECONDS [TARGET...]] — builds the libFuzzer targets
# with clang (ASan+UBSan, build-fuzz/) and runs each for SECONDS (default 20),
# two at a time, on a copy of its corpus in tests/fuzz/corpus: the tree is
# never written to, unless -m merges what a run found (only inputs that add
# coverage, -merge=1) into it. Any crash, leak, timeout or OOM fails, and
# the reproducer's path is printed.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
merge=0
if [ "${1:-}" = "-m" ]; then merge=1; shift; fi
seconds=${1:-20}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^set(MG_FUZZ_TARGETS \(.*\))$/\1/p' "$top/tests/fuzz/CMakeLists.txt" | tr ' ' '\n')
fi
build=${MG_FUZZ_BUILD:-$top/build-fuzz}
work=$(mktemp -d "${TMPDIR:-/tmp}/mailgate-fuzz.XXXXXX")

# -O1 and line tables only: half the build time of RelWithDebInfo, the same
# symbolised stacks; assertions stay on.
CC=clang CXX=clang++ cmake -S "$top" -B "$build" -DMG_FUZZ=ON -DMG_BUILD_TESTS=ON -DMG_E2E=OFF -DMG_BENCH=OFF \
  -DMG_WERROR=ON -DCMAKE_BUILD_TYPE=Fuzz -DCMAKE_C_FLAGS_FUZZ="-O1 -gline-tables-only" \
  -DCMAKE_CXX_FLAGS_FUZZ="-O1 -gline-tables-only" >/dev/null
cmake --build "$build" -j2 --target "${targets[@]/#/fuzz_}" >/dev/null
echo "fuzz: built ${#targets[@]} targets in $SECONDS s"

export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$top/tests/lsan.supp

run() {  # target: the log is $work/<target>.log, libFuzzer's exit status $work/<target>.rc
  local t=$1
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  cp -r "$top/tests/fuzz/corpus/$t/." "$work/$t/corpus/"
  "$build/tests/fuzz/fuzz_$t" "$work/$t/corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=16384 -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" >"$work/$t.log" 2>&1 &&
    echo 0 >"$work/$t.rc" || echo $? >"$work/$t.rc"
}

for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
  run "$t" &
done
wait
failed=()
for t in "${targets[@]}"; do
  if [ "$(cat "$work/$t.rc")" = 0 ]; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
    cov=$(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -n 1)
    echo "fuzz $t: ok, ${runs:-?} runs in ${seconds}s, $cov, corpus $(ls "$work/$t/corpus" | wc -l) inputs"
  else
    failed+=("$t")
    echo "fuzz $t: FAILED"
    grep -E -A 40 '^==[0-9]+==|^SUMMARY|deadly signal|Slowest unit' "$work/$t.log" | head -n 60
    for a in "$work/$t/artifacts"/*; do
      [ -e "$a" ] && echo "fuzz $t: reproducer $a (replay: $build/tests/fuzz/fuzz_$t $a)"
    done
  fi
done
echo "fuzz: built and ran in $SECONDS s"
if [ "$merge" = 1 ] && [ ${#failed[@]} -eq 0 ]; then
  for t in "${targets[@]}"; do
    before=$(ls "$top/tests/fuzz/corpus/$t" | wc -l)
    "$build/tests/fuzz/fuzz_$t" -merge=1 -max_len=16384 "$top/tests/fuzz/corpus/$t" "$work/$t/corpus" \
      >"$work/$t.merge.log" 2>&1
    echo "fuzz $t: merged, corpus $before -> $(ls "$top/tests/fuzz/corpus/$t" | wc -l) inputs"
  done
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzers failed: ${failed[*]} (logs and reproducers in $work)" >&2
  exit 1
fi
rm -rf "$work"
