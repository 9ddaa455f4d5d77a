#!/bin/sh
# Runs every test binary given, each bounded in time, and closes with one
# "N passed, N failed" line summed from the cmocka summaries.
#   tests/run.sh BUILD_DIR TEST...
set -u
build=$1; shift
export TF_BUILD_DIR="$build"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
passed=0; failed=0; broken=""
log=$(mktemp)
for t in "$@"; do
    echo "=== $(basename "$t")"
    timeout -k 5 "${TF_TEST_TIMEOUT:-300}" "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # crashed, timed out or a sanitizer stopped it before cmocka's summary
        failed=$((failed + 1)); broken="$broken $(basename "$t")(exit $rc)"
    fi
done
rm -f "$log"
[ -n "$broken" ] && echo "aborted:$broken"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
