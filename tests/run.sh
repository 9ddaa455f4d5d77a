#!/bin/sh
# Runs every test binary given, each bounded in time, and closes with one
# "N passed, N failed" line summed from the cmocka summaries (CI reads it;
# the skipped count is printed on the line before it).
#   tests/run.sh BUILD_DIR TEST...
# TF_TEST_TIMEOUT: seconds each binary may run (default 300); test_install,
# which builds the whole tree again (its make alone is bounded at 240 s),
# gets at least TF_INSTALL_TIMEOUT (default 900).
set -u
build=$1; shift
export TF_BUILD_DIR="$build"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# cmocka's messages and summaries on stdout, where the summaries are read
export CMOCKA_MESSAGE_OUTPUT=STDOUT
passed=0; failed=0; skipped=0; broken=""; errored=""
log=$(mktemp)
for t in "$@"; do
    name=$(basename "$t")
    limit="${TF_TEST_TIMEOUT:-300}"
    if [ "$name" = test_install ] && [ "$limit" -lt "${TF_INSTALL_TIMEOUT:-900}" ]; then
        limit="${TF_INSTALL_TIMEOUT:-900}"
    fi
    echo "=== $name"
    timeout -k 5 "$limit" "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s), listed below:.*/\1/p' "$log" |
        awk '{s+=$1} END {print s+0}')
    # a setup or teardown that failed: cmocka says ERROR and counts it
    # in neither its PASSED nor its FAILED line
    # (its assertion messages say "[  ERROR   ] --- ...")
    e=$(grep -c '^\[  ERROR   \] [^-]' "$log")
    [ "$e" -gt 0 ] && errored="$errored $(sed -n "s/^\[  ERROR   \] \([^-].*\)/$name\/\1/p" "$log" | paste -sd' ')"
    f=$((f + e))
    summaries=$(grep -c '^\[  PASSED  \] [0-9]* test' "$log")
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # crashed, timed out or a sanitizer stopped it before cmocka's summary
        [ "$rc" -eq 124 ] && rc="$rc: timed out after ${limit}s"
        failed=$((failed + 1)); broken="$broken $name(exit $rc)"
    elif [ "$rc" -eq 0 ] && [ "$summaries" -eq 0 ]; then
        # exit 0, but cmocka never said how its tests went
        failed=$((failed + 1)); broken="$broken $name(exit 0 without a cmocka summary)"
    fi
done
rm -f "$log"
[ -n "$broken" ] && echo "aborted:$broken"
[ -n "$errored" ] && echo "setup or teardown failed:$errored"
echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
