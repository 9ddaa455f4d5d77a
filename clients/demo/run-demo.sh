#!/bin/sh
# The demo behind `make run`: the service on its embedded default (SQLite
# under ./data, loopback ports 5560-5562), the demo milestones loaded, a
# feeder replaying updates slowly, and a live `techfeed watch` in front.
# Ctrl-C stops everything this script started. The milestones are loaded
# into a new database only: a second run shows the same records, not a
# new revision of each.
#   clients/demo/run-demo.sh BUILD_DIR [SECONDS_BETWEEN_UPDATES]
# TECHFEED_DATA_DIR (default ./data) and the TECHFEED_INGEST/EVENTS/SYNC
# endpoints apply to the service and the clients alike.
set -u
build=${1:-build}
pace=${2:-3}
demo=$(dirname "$0")
data=${TECHFEED_DATA_DIR:-data}
service_pid=""; feeder_pid=""

stop_all() {
    trap - INT TERM EXIT
    if [ -n "$feeder_pid" ]; then
        kill "$feeder_pid" 2>/dev/null
        wait "$feeder_pid" 2>/dev/null
    fi
    if [ -n "$service_pid" ]; then
        kill -TERM "$service_pid" 2>/dev/null
        wait "$service_pid" 2>/dev/null
    fi
    echo "demo stopped (the data stays in $data; 'rm -rf $data' starts afresh)"
}
trap stop_all INT TERM EXIT

mkdir -p "$data"
"$build/techfeed-ingestd" --data-dir "$data" --log-format text 2>>"$data/ingestd.log" &
service_pid=$!
echo "techfeed-ingestd started (pid $service_pid, log in $data/ingestd.log)"

# Bounded wait for the service to answer.
tries=0
until "$build/techfeed" status >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ $tries -gt 50 ] || ! kill -0 "$service_pid" 2>/dev/null; then
        echo "the service did not come up; see $data/ingestd.log" >&2
        tail -5 "$data/ingestd.log" >&2
        exit 69
    fi
    sleep 0.1
done

records=$("$build/techfeed" status --json | sed -n 's/.*"record_count":\([0-9]*\).*/\1/p')
if [ "${records:-0}" = 0 ]; then
    "$build/techfeed" put "$demo/milestones.ndjson" >/dev/null || exit $?
    echo "loaded $(wc -l <"$demo/milestones.ndjson") demo milestones; updates follow every ${pace}s"
else
    echo "$data holds $records records already; demo milestones not loaded again; updates follow every ${pace}s"
fi

# The feeder: one record of updates.ndjson at a time, as another writer would.
# Its pause is a child it stops when stopped itself, or the sleep outlives
# the demo. $! names the pause even when TERM comes right after its start,
# before another command could note it; `:` first, so that until the first
# pause $! is not the service's.
(
    : &
    trap 'kill $! 2>/dev/null; exit 0' TERM
    while IFS= read -r line; do
        sleep "$pace" &
        wait $!
        printf '%s\n' "$line" | "$build/techfeed" put - >/dev/null 2>&1
    done <"$demo/updates.ndjson"
) &
feeder_pid=$!

echo "watching (Ctrl-C to stop; try 'build/techfeed put FILE' in another terminal)"
"$build/techfeed" watch
