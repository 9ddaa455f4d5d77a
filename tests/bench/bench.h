/*  bench — techfeed's benchmark (make bench): the machine's limits,
    techfeed, and the peers (Redis Streams, NATS JetStream) in one run,
    printed as one markdown table. Private to tests/bench/.

    Modules:
      bench_util.c      clocks, latency samples, the figure registry,
                        child processes, payloads
      bench_machine.c   fdatasync, raw ZeroMQ, SQLite batched inserts
      bench_techfeed.c  techfeed-ingestd driven over its protocol and libtechfeed
      bench_redis.c     Redis 7 Streams with hiredis
      bench_nats.c      NATS JetStream with libnats
      bench_report.c    the table, RESULTS.md and the gnuplot PNGs
      bench.c           options and the order of runs

    Every figure is recorded once per run under a key ("tf.serial.p50")
    with bench_put; the report takes the median and the spread of each.
    Latencies are in microseconds, rates in items per second.
*/
#ifndef BENCH_H_INCLUDED
#define BENCH_H_INCLUDED

#include <czmq.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "techfeed.pb-c.h"

#define BENCH_RUNS_MAX 15
#define BENCH_IDS_MAX 100000 /* distinct record ids, and slots of a schedule */

// ------------------------------------------------------------------ options

typedef struct {
    int runs;            /* measured runs, each figure is their median */
    bool quick;          /* smoke run: short windows, small data sets */
    double scale;        /* multiplies every measurement window */
    int records;         /* snapshot / catch-up size */
    int rss_subscribers; /* SUB sockets for the memory figure */
    bool redis, nats;    /* run the peers */
    char tmp[512];       /* base temporary directory (its filesystem is measured) */
    char out[512];       /* PNGs, data files, RESULTS.md */
    char build[512];     /* where techfeed-ingestd is */
    char payloads[512];  /* milestones.ndjson */
    char command[1024];  /* how the bench was started, for the report */
    char only[256];      /* --only: suites or suite.scenario names, comma-separated */
} bench_opts_t;

extern bench_opts_t bench_opts;

/*  Whether --only selects `name`: "techfeed" or "techfeed.concurrent".
    A suite is on when the list names it or one of its scenarios; a
    scenario when the list names it or its whole suite. */
bool bench_enabled (const char *name);

/*  Seconds of a measurement window, scaled (never below 0.2 s). */
int64_t bench_window_ns (double seconds);

// ------------------------------------------------------------------ time

/*  CLOCK_MONOTONIC in nanoseconds. */
int64_t bench_now_ns (void);
void bench_sleep_until (int64_t deadline_ns);
void bench_sleep_ms (int ms);

/*  Waits until `fd` is readable or the monotonic deadline passes (ns
    precision, ppoll). 1 readable, 0 timeout. */
int bench_wait_fd (int fd, int64_t deadline_ns);
/*  A paced writer's sleeps end within 1 µs of their deadline, not the
    50 µs Linux allows a thread by default (its timer slack): an open-loop
    latency counts from the due time, so the writer's own lateness would
    count as the system's. From bench_slack_tight to bench_slack_restore,
    on the calling thread; a child forked meanwhile would inherit it, so
    no server starts in between. */
long bench_slack_tight (void);
void bench_slack_restore (long saved);

// ------------------------------------------------------------------ latency samples

typedef struct {
    int64_t *v;    /* nanoseconds */
    size_t n, cap; /* used, allocated */
    bool sorted;   /* v is sorted (percentiles sort once) */
} bench_lat_t;

void bench_lat_add (bench_lat_t *self, int64_t ns);
void bench_lat_merge (bench_lat_t *self, const bench_lat_t *other);
/*  Percentile p (0..100) in microseconds; NAN when empty. */
double bench_lat_pct (bench_lat_t *self, double p);
void bench_lat_reset (bench_lat_t *self);
void bench_lat_free (bench_lat_t *self);
/*  Records p50, p99, p99.9 of the samples as KEY.p50, KEY.p99, KEY.p999
    and keeps the percentile spectrum as OUT/data/KEY.dat for the plot. */
void bench_lat_put (bench_lat_t *self, const char *key);

/*  A schedule shared between a paced writer and its readers: slot k is
    the monotonic time (ns) the put of record k was due. */
typedef struct {
    _Atomic int64_t slot[BENCH_IDS_MAX];
} bench_schedule_t;

// ------------------------------------------------------------------ figures

/*  Appends one run's value of figure `key`. */
void bench_put (const char *key, double value);
void bench_putf (double value, const char *format, ...);
/*  Over the runs: median, min, max (NAN when the figure has no value),
    and how many values. */
double bench_median (const char *key);
double bench_min (const char *key);
double bench_max (const char *key);
int bench_count (const char *key);
double bench_sum (const char *key);
/*  A note for the report (free text, one line each, deduplicated). */
void bench_note (const char *format, ...);
size_t bench_notes (const char ***notes);

// ------------------------------------------------------------------ processes

/*  Starts argv with stdout and stderr appended to log_path; the child
    dies with the bench (PR_SET_PDEATHSIG) and is stopped by the bench's
    signal handler. 0 on failure. */
pid_t bench_spawn (const char *const *argv, const char *log_path);
/*  SIGTERM, waits up to timeout_ms, then SIGKILL. Sets *pid to 0. */
void bench_stop (pid_t *pid, int timeout_ms);
/*  Remembers / forgets a child started elsewhere, for the signal handler. */
void bench_child_add (pid_t pid);
void bench_child_remove (pid_t pid);
/*  Stops every remembered child (signal handler and exit path). */
void bench_children_kill (void);
/*  A peer server (redis-server, nats-server): a temporary directory, a
    free port, a log file in the directory, a PID. */
typedef struct {
    pid_t pid;
    int port;
    char *dir;
    char log[600];
} bench_peer_t;

/*  Makes the directory and picks the port (argv is built from them). */
void bench_peer_init (bench_peer_t *peer, const char *name);
/*  Spawns argv and polls `ready` (up to 10 s). 0 when ready. */
int bench_peer_start (bench_peer_t *peer, const char *const *argv,
                      bool (*ready) (const bench_peer_t *peer));
/*  Stops it by PID and removes its directory. */
void bench_peer_stop (bench_peer_t *peer);

/*  A TCP port that was free on 127.0.0.1 a moment ago. */
int bench_free_port (void);
/*  New directory under bench_opts.tmp; caller frees. */
char *bench_tempdir (const char *prefix);
/*  VmRSS of a process in KiB, -1 when unreadable. */
long bench_rss_kib (pid_t pid);
/*  utime + stime of a process in seconds, -1 when unreadable. */
double bench_cpu_seconds (pid_t pid);
/*  Bytes a process has caused to be written to storage (write_bytes of
    /proc/PID/io: WAL, database and checkpoint writes); -1 when unreadable. */
double bench_write_bytes (pid_t pid);
/*  First line of a command's output (versions for the report). */
void bench_command_line (const char *command, char *out, size_t size);

// ------------------------------------------------------------------ payloads

/*  Loads the demo milestones and packs BENCH_IDS_MAX distinct records
    (ids "<demo id>-b<k>", the demo record k % count otherwise, so an id
    keeps its sector). 0 or -1. */
int bench_payloads_load (const char *path);
void bench_payloads_free (void);
/*  Record k as a shallow copy of its demo record with `id` (caller's
    buffer of at least 160 bytes) as its id. */
void bench_record (uint32_t k, Techfeed__Milestone *out, char *id);
/*  Packed Milestone of record k (the bytes the peers carry). */
const uint8_t *bench_record_bytes (uint32_t k, size_t *size);
/*  Average packed size of a record, bytes. */
size_t bench_record_size (void);
/*  k from an id made by bench_record, or UINT32_MAX. */
uint32_t bench_id_number (const char *id);
/*  Packs an IngestRequest {version 1, request_id, ops = put of record k,
    k+1, ... (n of them)} into buf; returns its size, 0 when it does not
    fit. Uses the pre-packed Operation bytes: the client costs little. */
size_t bench_ingest_request (uint8_t *buf, size_t size, const char *request_id, uint32_t k,
                             size_t n);

// ------------------------------------------------------------------ suites

void bench_machine_run (int run);
void bench_techfeed_run (int run);
void bench_redis_run (int run);
void bench_nats_run (int run);
/*  techfeed-bench --snapshot-loop PRIORITY EVENTS SYNC: the snapshot
    client of the ack-during-snapshots rows, a process of its own, at
    PRIORITY "idle" (SCHED_IDLE) or a nice value. */
int bench_snapshot_loop (const char *priority, const char *events, const char *sync);

/*  Report (bench_report.c): prints the table, writes OUT/RESULTS.md and
    the PNGs. */
void bench_report (const char *started, const char *machine, double elapsed_s);
/*  Machine description lines, for the report header. */
void bench_machine_describe (char *out, size_t size);

#endif
