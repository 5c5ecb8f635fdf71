#!/bin/bash
# run-all.sh — installs what is needed, builds mailgate and runs every test:
# unit and end-to-end tests (real redis-server, private Postfix, swaks) in a
# normal build, the Debian package (installed and purged again), then the
# unit and e2e tests again in an ASan/UBSan build, the threaded ones in a
# ThreadSanitizer build, then every fuzz target for 20 s (clang, ASan+UBSan;
# tests/fuzz/run-fuzzers.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bash "$top/contrib/install-build-deps.sh"

# The demo may have configured build/ without tests: the cache keeps options, so
# every option the tests need is given here, and an empty test run is an error.
bash "$top/contrib/build.sh" "$top/build" -DMG_BUILD_TESTS=ON -DMG_E2E=ON
# The e2e tests two at a time, as in the ASan build below (each has its own private
# Redis, Postfix and daemons; the serial run took 11 of CI's 45 minutes).
(cd "$top/build" && ctest --no-tests=error --output-on-failure -j2 -L unit &&
  ctest --no-tests=error --output-on-failure -j2 -L e2e)

# The Debian package: built, lintian-checked, installed, used, purged.
bash "$top/tests/package/test-deb.sh"

# ASan + UBSan: the unit tests, then the e2e suite against the sanitized daemons
# (the harness fails a test on any sanitizer report a daemon wrote, LSan's at exit too).
bash "$top/contrib/build.sh" "$top/build-asan" -DMG_SANITIZE=ON -DMG_BUILD_TESTS=ON -DMG_E2E=ON -DMG_BENCH=OFF
(cd "$top/build-asan" && ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=60 \
  UBSAN_OPTIONS=print_stacktrace=1 \
  LSAN_OPTIONS=suppressions="$top/tests/lsan.supp" ctest --no-tests=error --output-on-failure -j2 -L unit &&
  time ctest --no-tests=error --output-on-failure -j2 -L e2e)

# ThreadSanitizer: the daemons, mailgatectl and the threaded unit tests only, run by
# the unit tests that start threads and the e2e tests of many parallel sessions and
# SIGHUP reloads while mail flows (the harness sets TSAN_OPTIONS for those).
tsan_e2e='MilterSignals|test_sighup_reloads_every_daemon|test_many_concurrent_connections'
tsan_e2e+='|test_sighup_reloads_and_keeps|ConnectionLimits|MilterCost|AuthSocket|TrackerLostExecReply'
cmake -S "$top" -B "$top/build-tsan" -DMG_WERROR=ON -DMG_SANITIZE=thread -DMG_BUILD_TESTS=ON -DMG_E2E=ON \
  -DMG_BENCH=OFF >/dev/null
time cmake --build "$top/build-tsan" -j"$(nproc)" --target mailgate-milter mailgate-policy mailgate-tracker \
  mailgatectl unit_tests
(cd "$top/build-tsan" &&
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$top/tests/tsan.supp" \
  tests/unit_tests &&
  time ctest --no-tests=error --output-on-failure -L e2e -R "$tsan_e2e")

# The fuzzers, bounded: a crash, leak or timeout fails CI with its reproducer.
bash "$top/tests/fuzz/run-fuzzers.sh" 20
