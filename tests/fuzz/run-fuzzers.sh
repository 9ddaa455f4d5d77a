#!/bin/sh
# Runs libFuzzer harnesses for a bounded time each, on a copy of their seed
# corpus and kept regressions (the committed corpus never grows by itself).
#   tests/fuzz/run-fuzzers.sh FUZZ_DIR SECONDS TARGET...
# FUZZ_DIR holds the fuzz_TARGET binaries (make fuzz-build). A crash, leak,
# timeout or broken property fails the run; the input is saved under
# FUZZ_DIR/artifacts/TARGET/ and the last lines of the log are shown. Keep
# such an input as tests/fuzz/regressions/TARGET/<name> so `make test`
# replays it. Run from the repository root. Exit status: 0 when every target
# ran clean.
set -u
dir=$1 seconds=$2
shift 2
here=$(dirname "$0")
status=0
for target in "$@"; do
    bin=$dir/fuzz_$target
    if [ ! -x "$bin" ]; then
        echo "fuzz $target: $bin is not built (make fuzz-build)"
        status=1
        continue
    fi
    work=$(mktemp -d "${TMPDIR:-/tmp}/tf-fuzz-run.XXXXXX")
    mkdir "$work/corpus" "$work/artifacts"
    for seeds in "$here/corpus/$target" "$here/regressions/$target"; do
        [ -d "$seeds" ] && find "$seeds" -maxdepth 1 -type f -exec cp {} "$work/corpus/" \;
    done
    # -max_len bounds what mutations grow to; bigger seeds are read cut to it
    # (the replay test runs them whole). -timeout is per input. TMPDIR puts
    # the harness's scratch database in the work directory, removed below.
    TMPDIR="$work" "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" \
        >"$work/log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
    if [ "$rc" -eq 0 ]; then
        echo "fuzz $target: ok, ${runs:-?} runs in ${seconds}s"
    else
        status=1
        keep=$dir/artifacts/$target
        mkdir -p "$keep"
        cp "$work"/artifacts/* "$keep/" 2>/dev/null
        echo "fuzz $target: FAILED (exit $rc) after ${runs:-?} runs; input(s) in $keep/:"
        ls "$keep"
        grep -aE 'ERROR|SUMMARY|property broken|#[0-9]+ 0x' "$work/log" | head -40
    fi
    rm -rf "$work"
done
exit $status
