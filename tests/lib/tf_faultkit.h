/*  tf_faultkit — what the fault tests (tests/integration/test_fault_*.c)
    share: records with distinct ids, writer threads that count what was
    acknowledged and measure ack latency, the server's digest (whole or by
    sectors), library views polled by a thread of their own, a view in a
    separate process (the test binary re-executed, so it can be stopped
    with SIGSTOP), a proxy that drops replies, percentiles, and the
    cmocka state most of them keep (the service and what runs on it).

    No cmocka here (tests/lib is linked into the benchmark too): failures
    are return values and the tests assert on them.
*/
#ifndef TF_FAULTKIT_H_INCLUDED
#define TF_FAULTKIT_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "techfeed.h"
#include "tf_testkit.h"

/*  Monotonic clock. */
int64_t tf_fk_now_ms (void);
int64_t tf_fk_now_us (void);

/*  Seed for the random choices of a test: $TF_SEED if set, else the
    clock; printed by the test so a failure can be replayed. */
unsigned tf_fk_seed (void);
/*  Uniform in [lo, hi] from a caller-owned state (rand_r). */
int tf_fk_rand (unsigned *state, int lo, int hi);

/*  $TF_SOAK set and not "0": the long variants. */
bool tf_fk_soak (void);

/*  A valid record with `id` in `sector` and a summary of `summary_bytes`
    (0: none). Caller frees with techfeed__milestone__free_unpacked. */
Techfeed__Milestone *tf_fk_record_new (const char *id, int sector, size_t summary_bytes);

// ------------------------------------------------------------------ server side

/*  SYNC_STATUS through the library; 0 or -1. */
int tf_fk_status (const tf_service_t *svc, tf_status_t *status);
/*  Digest and count of the records in `sectors` (n = 0: all), from one
    snapshot with that filter (PROTOCOL.md §10). 0 or -1. */
int tf_fk_digest (const tf_service_t *svc, const Techfeed__Sector *sectors, size_t n,
                  uint64_t *digest, uint64_t *count);
/*  Stored revision of every record: id -> revision (as a pointer-sized
    integer; revisions are >= 1). NULL on failure. Caller destroys. */
zhashx_t *tf_fk_revisions (const tf_service_t *svc);
/*  Changes in the log after `since` (raw SYNC_CATCHUP to the end mark):
    their count and, when `per_id` is not NULL, id -> number of changes.
    Returns the reply code (0 = OK, e.g. TRIMMED), -1 without a reply. */
int tf_fk_catchup_count (const tf_service_t *svc, uint64_t since, const char *epoch,
                         uint64_t *changes, zhashx_t *per_id);
/*  Digest and count of the records as they were at sequence `upto`,
    replayed from the whole log (a catch-up from 0; the log must not be
    trimmed). Returns as tf_fk_catchup_count. */
int tf_fk_digest_at (const tf_service_t *svc, const char *epoch, uint64_t upto, uint64_t *digest,
                     uint64_t *count);
/*  Waits until the service answers SYNC_STATUS; false after timeout_ms. */
bool tf_fk_wait_ready (const tf_service_t *svc, int timeout_ms);

// ------------------------------------------------------------------ writers

/*  Puts records PREFIX-first .. PREFIX-(first+count-1) (sectors by number,
    summaries of summary_bytes), `per_request` in each request, with a
    library writer; ids already stored are updated. 0 when every one was
    acknowledged OK, else -1 (the reason on stderr). */
int tf_fk_put_many (const char *ingest, const char *prefix, int first, int count, int per_request,
                    size_t summary_bytes);

/*  Writer threads, each with its own libtechfeed writer and its own ids
    ("PREFIX-wW-N"), put records over and over; every acknowledged put is
    counted per id, so a test can prove no acknowledged write was lost
    (stored revision >= acked) and none applied twice (stored revision ==
    puts acked, when every request was finally answered). */
typedef struct {
    const char *endpoint; /* ingest endpoint */
    const char *prefix;   /* of the ids */
    int writers;          /* threads */
    int ids;              /* distinct ids per writer, cycled through */
    int ops;              /* records per request (<= ids) */
    int timeout_ms;       /* per try of the library writer */
    int tries;            /* tries per call of the library writer */
    bool persist;         /* after a call that got no reply, send the same request_id
                             again until it is answered (exactly-once accounting) */
    int give_up_ms;       /* persist at most this long per request (then: uncertain) */
    size_t summary_bytes; /* size of each record's summary */
    int max_requests;     /* per writer; 0 = until stopped */
    int pause_us;         /* between requests; 0 = none */
} tf_fk_load_config_t;

/*  What the writers saw, summed. */
typedef struct {
    uint64_t requests;         /* requests answered (any code) */
    uint64_t acked;            /* operations acknowledged OK */
    uint64_t refused;          /* operations answered with another code */
    uint64_t full;             /* of these, STORAGE_FULL */
    uint64_t storage;          /* of these, STORAGE */
    uint64_t no_reply;         /* library calls that got no reply after every try */
    uint64_t uncertain;        /* operations given up without a reply (may or may not be stored) */
    uint64_t replayed;         /* replies served from the idempotency cache */
    uint64_t retried;          /* requests answered only after a retry (slower than timeout_ms) */
    uint64_t retried_replayed; /* of these, answered from the cache (stored before the retry) */
    uint64_t mismatches;       /* OK replies whose revision was not acked + 1 (double apply) */
    int last_refused;          /* code of the last refusal, 0 if none */
    char last_error[256];      /* message of the last refusal or failure */
} tf_fk_load_stats_t;

typedef struct _tf_fk_load_t tf_fk_load_t;

/*  Starts the threads (the config is copied, strings too). */
tf_fk_load_t *tf_fk_load_start (const tf_fk_load_config_t *config);
/*  Asks the threads to stop after their current request and joins them.
    Safe to call twice; the results stay readable until destroy. */
void tf_fk_load_stop (tf_fk_load_t *self);
/*  Joins the threads without asking them to stop: with max_requests,
    returns when every writer sent its requests. */
void tf_fk_load_wait (tf_fk_load_t *self);
void tf_fk_load_destroy (tf_fk_load_t **self_p);
/*  Summed counters (after stop, or approximately while running). */
void tf_fk_load_stats (tf_fk_load_t *self, tf_fk_load_stats_t *stats);
/*  Operations acknowledged so far (atomic, while running). */
uint64_t tf_fk_load_acked (tf_fk_load_t *self);
/*  Compares what was acknowledged with `stored` (tf_fk_revisions), after
    stop. lost: ids stored below their acknowledged revision (or missing);
    doubled: ids stored above acknowledged + uncertain puts; ids: how many
    ids were acknowledged at least once. */
void tf_fk_load_check (tf_fk_load_t *self, zhashx_t *stored, uint64_t *lost, uint64_t *doubled,
                       uint64_t *ids);
/*  Percentile p (0..100) of the ack latency, in microseconds, of the
    requests sent in [from_ms, to_ms) (tf_fk_now_ms clock), answered on
    the first try; count gets how many there were. After stop. */
int64_t tf_fk_load_latency (tf_fk_load_t *self, int64_t from_ms, int64_t to_ms, double p,
                            size_t *count);

// ------------------------------------------------------------------ views

/*  What a view reports about itself. */
typedef struct {
    bool running;              /* started (tf_view_start called) */
    tf_view_state_t state;     /* PROTOCOL.md §9 state */
    uint64_t position;         /* P */
    uint64_t digest;           /* over the records held */
    uint64_t count;            /* records held */
    char epoch[65];            /* of the records, "" before the first snapshot */
    tf_view_stats_t stats;     /* the library's counters */
    uint64_t resync_events;    /* TF_VIEW_RESYNC callbacks */
    uint64_t lost_events;      /* TF_VIEW_LOST callbacks */
    uint64_t recovered_events; /* TF_VIEW_RECOVERED callbacks */
    int64_t lost_at_ms;        /* tf_fk_now_ms of the last LOST, 0 = never */
    int64_t recovered_at_ms;   /* of the last RECOVERED, 0 = never */
    uint64_t order_errors;     /* live/catch-up changes of a sector not in increasing sequence */
    uint64_t saved_events;     /* TF_VIEW_SAVED callbacks (persistent views) */
    bool failed;               /* tf_view_start refused or tf_view_poll said -1 (errstr) */
} tf_fk_view_info_t;

/*  Views of one service, started and polled by a thread of their own. */
typedef struct _tf_fk_views_t tf_fk_views_t;

tf_fk_views_t *tf_fk_views_new (const char *events, const char *sync);
/*  Stops the thread and destroys every view. */
void tf_fk_views_destroy (tf_fk_views_t **self_p);
/*  Adds a view of `sectors` (n = 0: all), started by the thread right
    away (a late joiner when the service already streams); persistent in
    the SQLite file `store` (tf_view_set_store) unless NULL. Its index. */
int tf_fk_views_add (tf_fk_views_t *self, const Techfeed__Sector *sectors, size_t n,
                     const char *store);
/*  Copy of what view `index` reported after its last poll. */
void tf_fk_views_info (tf_fk_views_t *self, int index, tf_fk_view_info_t *info);

/*  Waits until the view is LIVE with this digest (and position, unless
    position is 0); false after timeout_ms. `info` gets the last report. */
bool tf_fk_view_wait (tf_fk_views_t *self, int index, uint64_t digest, uint64_t position,
                      int timeout_ms, tf_fk_view_info_t *info);

// ------------------------------------------------------------------ view in a process

/*  A view in a child process: the test binary run again as
    `TEST --subscriber EVENTS SYNC STORE|- [SECTOR...]`, printing a report line
    (tf_fk_view_info_t) whenever something changed and every 100 ms. Tests
    that use it start main() with tf_fk_subscriber_dispatch. */
typedef struct {
    pid_t pid;              /* 0 when not running */
    int fd;                 /* its stdout */
    char partial[512];      /* a line not yet complete */
    tf_fk_view_info_t info; /* last complete report */
    uint64_t reports;       /* reports read */
} tf_fk_subscriber_t;

/*  In main(): when argv asks for the subscriber role, runs it and exits
    with its status; otherwise returns. */
void tf_fk_subscriber_dispatch (int argc, char **argv);
/*  Starts the child on `svc`'s endpoints; its view is persistent in the
    file `store` unless NULL. 0 or -1. */
int tf_fk_subscriber_start (tf_fk_subscriber_t *sub, const tf_service_t *svc,
                            const Techfeed__Sector *sectors, size_t n, const char *store);
/*  Reads what the child reported, waiting up to timeout_ms for at least
    one new report. True when one came. */
bool tf_fk_subscriber_read (tf_fk_subscriber_t *sub, int timeout_ms);
/*  Waits until the child reports LIVE with this digest and position;
    false after timeout_ms. */
bool tf_fk_subscriber_wait (tf_fk_subscriber_t *sub, uint64_t digest, uint64_t position,
                            int timeout_ms);
/*  SIGTERM (SIGCONT first, in case it is stopped), bounded wait, SIGKILL.
    The exit status, -1 if it had to be killed. */
int tf_fk_subscriber_stop (tf_fk_subscriber_t *sub);

// ------------------------------------------------------------------ other processes

/*  Starts argv (argv[0] a path) with the TECHFEED_* endpoint variables of
    `svc`, stdout and stderr appended to the file `log`. Its pid, -1. */
pid_t tf_fk_spawn (const tf_service_t *svc, const char *const *argv, const char *log);
/*  SIGCONT (it may be stopped) and SIGTERM, waits up to timeout_ms, then
    SIGKILL. The exit status (128 + signal when killed by one), -1 when it
    had to be killed. */
int tf_fk_terminate (pid_t pid, int timeout_ms);

// ------------------------------------------------------------------ lossy proxy

/*  A proxy between writers and the ingest socket: a ROUTER on
    tcp://127.0.0.1:* for the writers, one DEALER to the service; requests
    go through, and every `drop_every`-th reply is thrown away, so the
    writer times out and retries with the same request_id. */
typedef struct _tf_fk_proxy_t tf_fk_proxy_t;

tf_fk_proxy_t *tf_fk_proxy_new (const char *ingest, int drop_every);
void tf_fk_proxy_destroy (tf_fk_proxy_t **self_p);
/*  Endpoint for the writers. */
const char *tf_fk_proxy_endpoint (tf_fk_proxy_t *self);
/*  Requests forwarded, replies forwarded, replies dropped. */
void tf_fk_proxy_counts (tf_fk_proxy_t *self, uint64_t *requests, uint64_t *replies,
                         uint64_t *dropped);

// ------------------------------------------------------------------ files

/*  Copies a file (0 or -1); a missing source is an error. */
int tf_fk_copy_file (const char *from, const char *to);
/*  Online copy of an SQLite database (the SQLite backup API, one
    consistent snapshot while the service writes), as a backup tool would
    take it. 0 or -1 (the reason on stderr). */
int tf_fk_backup_db (const char *from, const char *to);

// ------------------------------------------------------------------ fixture

/*  The state of a fault test: the service and what the test starts on it
    (each NULL until then). The teardowns destroy whatever is set. */
typedef struct {
    tf_service_t svc;     /* the service under test (first, for tf_test_fixture_new) */
    tf_fk_views_t *views; /* library views, or NULL */
    tf_fk_load_t *load;   /* writer threads, or NULL */
    tf_writer_t *writer;  /* a writer of the test's own, or NULL */
    zhashx_t *stored;     /* revisions the test read (tf_fk_revisions), or NULL */
} tf_fk_fixture_t;

/*  Sets *state to a new fixture, its service started with `args`
    (NULL-terminated, or NULL). 0, or -1 when the service did not start. */
int tf_fk_setup_with (void **state, const char *const *args);
/*  A cmocka setup: tf_fk_setup_with "--heartbeat-ms 200". */
int tf_fk_setup (void **state);
/*  A cmocka teardown: destroys the fixture and stops the service, which
    must still run and exit 0 on SIGTERM; else -1 (the status on stderr). */
int tf_fk_teardown (void **state);
/*  The same for tests that stop or kill the service themselves: its exit
    status is not checked (it is stopped if it still runs). 0. */
int tf_fk_teardown_any_exit (void **state);

#endif
