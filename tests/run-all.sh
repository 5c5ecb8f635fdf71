#!/bin/bash
# run-all.sh — installs what is needed, builds mailgate and runs every test:
# unit and end-to-end tests (real redis-server, private Postfix, swaks) in a
# normal build, the Debian package (installed and purged again), then the
# unit tests again in an ASan/UBSan build, then every fuzz target for 20 s
# (clang, ASan+UBSan; tests/fuzz/run-fuzzers.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bash "$top/contrib/install-build-deps.sh"

# The demo may have configured build/ without tests: the cache keeps options, so
# every option the tests need is given here, and an empty test run is an error.
bash "$top/contrib/build.sh" "$top/build" -DMG_BUILD_TESTS=ON -DMG_E2E=ON
(cd "$top/build" && ctest --no-tests=error --output-on-failure -j2 -L unit &&
  ctest --no-tests=error --output-on-failure -L e2e)

# The Debian package: built, lintian-checked, installed, used, purged.
bash "$top/tests/package/test-deb.sh"

bash "$top/contrib/build.sh" "$top/build-asan" -DMG_SANITIZE=ON -DMG_BUILD_TESTS=ON -DMG_E2E=OFF
(cd "$top/build-asan" && ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=60 \
  UBSAN_OPTIONS=print_stacktrace=1 \
  LSAN_OPTIONS=suppressions="$top/tests/lsan.supp" ctest --no-tests=error --output-on-failure -j2 -L unit)

# The fuzzers, bounded: a crash, leak or timeout fails CI with its reproducer.
bash "$top/tests/fuzz/run-fuzzers.sh" 20
