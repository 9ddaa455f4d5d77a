/*  libtechfeed — the techfeed client library.

    Three handles, each a CZMQ-style class (tf_x_new / tf_x_destroy (&x),
    opaque, one thread at a time):

      tf_writer_t   puts and deletes milestones on the ingest socket, with
                    a timeout and Lazy Pirate retries (same request_id, so
                    a lost reply never doubles a write)
      tf_query_t    reads from the sync socket: status, get by id, list
                    with a filter (streamed in chunks)
      tf_view_t     a local replica of all or some sectors, kept current
                    by PROTOCOL.md §9 (subscribe, snapshot, live events,
                    gap detection, catch-up, resync), with callbacks; in
                    memory, or also in an SQLite file it resumes from
                    (tf_view_set_store)

    Errors: functions return 0 / -1 (constructors NULL); tf_x_errstr ()
    says why. Per-item outcomes of writes are tf_result_t codes, the
    Techfeed__ErrorCode values of PROTOCOL.md §11 (TECHFEED__ERROR_CODE__OK
    is 0). Out of memory aborts.

    CURVE (PROTOCOL.md §12): a service started with --curve-secret talks
    only to clients that know its public key and present a key pair of
    their own; tf_writer_set_curve, tf_query_set_curve, tf_view_set_curve
    take the service's public key (40 Z85 characters, or the path of its
    public certificate file) and the path of the client's certificate with
    its secret key (`techfeed keygen NAME` writes NAME.key and
    NAME.key_secret; give either path) — NULL for a fresh key pair, which
    a service that does not restrict readers admits for reading. Every
    socket the handle makes from then on (each Lazy Pirate retry's fresh
    one too) is a CURVE client. A refused handshake gets no answer at all:
    it looks like a service that does not answer. -1 (errstr) when a key
    is not valid or a file holds no usable certificate; errstr then starts
    with "server key" or "client certificate", saying which.

    Ownership: every const pointer a function returns is borrowed from the
    handle and valid until the next call on that handle unless said
    otherwise; records passed in are never kept.

    Signals: the handles run on CZMQ, which at its first use installs
    handlers for SIGINT and SIGTERM that set zsys_interrupted. From then
    on a wait ends at such a signal and the call fails ("interrupted"),
    and so does every later call that waits: a program is expected to
    stop. A program that handles these signals itself calls
    zsys_handler_set (NULL) before creating the first handle.

    Timeouts and tries: a timeout_ms or tries of 0 or less is taken as 1.

    Build: C11, link with libtechfeed.a and pkg-config libczmq libzmq
    libprotobuf-c jansson sqlite3.
*/
#ifndef TECHFEED_H_INCLUDED
#define TECHFEED_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <czmq.h>

#include "techfeed.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TECHFEED_VERSION_MAJOR 0
#define TECHFEED_VERSION_MINOR 1
#define TECHFEED_VERSION_PATCH 0
#define TECHFEED_MAKE_VERSION(major, minor, patch) ((major) *10000 + (minor) *100 + (patch))
#define TECHFEED_VERSION                                                                           \
    TECHFEED_MAKE_VERSION (TECHFEED_VERSION_MAJOR, TECHFEED_VERSION_MINOR, TECHFEED_VERSION_PATCH)

/*  "MAJOR.MINOR.PATCH" of the library linked in. Static string. */
const char *techfeed_version (void);

/*  Default endpoints (PROTOCOL.md §1) and client settings. */
#define TF_DEFAULT_INGEST "tcp://127.0.0.1:5560"
#define TF_DEFAULT_EVENTS "tcp://127.0.0.1:5561"
#define TF_DEFAULT_SYNC "tcp://127.0.0.1:5562"
#define TF_DEFAULT_TIMEOUT_MS 3000   /* per try */
#define TF_DEFAULT_TRIES 3           /* tries per request, the first one included */
#define TF_DEFAULT_MAX_FRAME 4194304 /* bytes of one request: the service's --max-frame */

// ------------------------------------------------------------------ writer

/*  Outcome of one operation, copied out of the reply (no pointers). */
typedef struct {
    int code;                  /* Techfeed__ErrorCode; 0 = OK */
    char id[129];              /* the record's id */
    uint64_t sequence;         /* OK: the change's global sequence */
    uint64_t revision;         /* OK: the record's new revision (delete: the deleted one) */
    uint64_t current_revision; /* CONFLICT: the stored revision, 0 = absent */
    char field[96];            /* error: JSON pointer of the bad field ("/title"), or "" */
    char message[256];         /* error: what is wrong, for humans; "" on OK */
} tf_result_t;

/*  One operation of a request: a put when `record` is set, else a delete
    of `id`. Both borrowed for the duration of the call. */
typedef struct {
    const Techfeed__Milestone *record; /* put: the record (revision ignored) */
    const char *id;                    /* delete: the id; ignored for a put */
    bool has_expected_revision;        /* optimistic concurrency on/off */
    uint64_t expected_revision;        /* succeed only if stored revision == this, 0 = absent */
} tf_op_t;

typedef struct _tf_writer_t tf_writer_t;

/*  Writer on the ingest endpoint (NULL = TF_DEFAULT_INGEST). Connects
    lazily as ZeroMQ does; NULL only when the endpoint is not valid. */
tf_writer_t *tf_writer_new (const char *ingest_endpoint);
void tf_writer_destroy (tf_writer_t **self_p);

/*  How long one try waits for the reply (default TF_DEFAULT_TIMEOUT_MS),
    and how many tries a request gets when no reply comes (default
    TF_DEFAULT_TRIES). Each retry uses a fresh socket and the same
    request_id. A service that answers UNAVAILABLE (it is shutting down)
    is asked again after 200 ms, 400 ms... up to `tries` times, each of
    them with its own tries: a call may then block for several seconds. */
void tf_writer_set_timeout (tf_writer_t *self, int timeout_ms);
void tf_writer_set_retries (tf_writer_t *self, int tries);
/*  CURVE, see the top of this file. */
int tf_writer_set_curve (tf_writer_t *self, const char *server_key, const char *client_cert);
/*  The largest request the service takes, its --max-frame (default
    TF_DEFAULT_MAX_FRAME; 0 sets the default). A request packed larger is
    not sent, since the service would drop the connection without a reply:
    the call answers TOO_LARGE for every operation, the size in errstr. */
void tf_writer_set_max_frame (tf_writer_t *self, size_t bytes);

/*  request_id of the next request only (1..64 printable ASCII, no space;
    copied). Without it each request gets a fresh UUID. -1 if not valid.
    To retry a call that returned -1 without risking a double write, give
    it the id it used: tf_writer_set_request_id (w, tf_writer_request_id
    (w)) before calling again (the service answers a known id with the
    stored reply). */
int tf_writer_set_request_id (tf_writer_t *self, const char *request_id);

/*  Sends `n` operations (1..1000) as one request and waits for its reply.
    `results` (n entries, caller's) gets one outcome per operation, in
    order. A whole-request error of the service (MALFORMED, TOO_LARGE,
    UNAVAILABLE...), or of the request's size (tf_writer_set_max_frame),
    is copied into every result. `atomic`: all or none.
    Returns 0 when the service answered (look at the results), -1 when it
    did not after every try ("service unavailable at EP after N tries"),
    or sent a reply that does not fit the request; errstr says which, and
    `results` is left as it was. */
int tf_writer_send (tf_writer_t *self, const tf_op_t *ops, size_t n, bool atomic,
                    tf_result_t *results);

/*  Puts `n` records (borrowed) in one request; as tf_writer_send. */
int tf_writer_put (tf_writer_t *self, Techfeed__Milestone *const *records, size_t n, bool atomic,
                   tf_result_t *results);

/*  Deletes one record; expected revision when has_expected. As
    tf_writer_send with one result. */
int tf_writer_delete (tf_writer_t *self, const char *id, bool has_expected, uint64_t expected,
                      tf_result_t *result);

/*  The request_id of the last request sent ("" before any). */
const char *tf_writer_request_id (tf_writer_t *self);
/*  True when the last reply came from the service's idempotency cache:
    the request had been applied before, nothing changed now. */
bool tf_writer_replayed (tf_writer_t *self);
/*  Why the last call failed, or the whole-request error message. */
const char *tf_writer_errstr (tf_writer_t *self);

// ------------------------------------------------------------------ query

/*  Code of a query that got no answer at all (timeout, interrupted). */
#define TF_NO_REPLY (-1)
/*  Code of a query refused before anything was sent: a bad argument, or a
    tf_query_list from inside the same handle's tf_query_list callback. */
#define TF_MISUSE (-2)

/*  What SYNC_STATUS says (PROTOCOL.md §8). */
typedef struct {
    char epoch[33];              /* 32 hex digits */
    uint64_t head_sequence;      /* last change, 0 when none */
    uint64_t record_count;       /* records stored */
    uint64_t digest;             /* PROTOCOL.md §10 over all records */
    uint64_t log_first_sequence; /* oldest change in the log */
    uint64_t sector_heads[11];   /* last change per sector value, index 1..10 */
    char version[64];            /* the service's software version */
} tf_status_t;

/*  Called once per record; `record` is borrowed for the call. Return 0
    to go on, non-zero to stop (the call then returns 0). */
typedef int (tf_record_fn) (const Techfeed__Milestone *record, void *arg);

typedef struct _tf_query_t tf_query_t;

/*  Query handle on the sync endpoint (NULL = TF_DEFAULT_SYNC). NULL only
    when the endpoint is not valid. */
tf_query_t *tf_query_new (const char *sync_endpoint);
void tf_query_destroy (tf_query_t **self_p);
void tf_query_set_timeout (tf_query_t *self, int timeout_ms);
void tf_query_set_retries (tf_query_t *self, int tries);
/*  CURVE, see the top of this file. */
int tf_query_set_curve (tf_query_t *self, const char *server_key, const char *client_cert);

/*  0 with `status` filled, -1 on error. */
int tf_query_status (tf_query_t *self, tf_status_t *status);

/*  Records with these ids (1..1000; other counts: -1, TF_MISUSE), the
    ones that exist, in no given order; `fn` per record. 0 or -1. */
int tf_query_get (tf_query_t *self, const char *const *ids, size_t n, tf_record_fn *fn, void *arg);

/*  Every record matching `filter` (NULL = all), in id order, read in one
    consistent snapshot and streamed in chunks; `fn` per record. 0 or -1
    (a failure midway leaves the records already handed out as they are).
    `fn` may call tf_query_status and tf_query_get on the same handle, but
    not tf_query_list: that one returns -1 with TF_MISUSE (the records
    handed to `fn` live in memory the inner list would reuse). */
int tf_query_list (tf_query_t *self, const Techfeed__Filter *filter, tf_record_fn *fn, void *arg);

/*  After -1: the service's error code (Techfeed__ErrorCode) or TF_NO_REPLY. */
int tf_query_code (tf_query_t *self);
const char *tf_query_errstr (tf_query_t *self);

// ------------------------------------------------------------------ view

/*  Where the view is in PROTOCOL.md §9's state machine. */
typedef enum {
    TF_STATE_CONNECTING = 0, /* created, not started */
    TF_STATE_SNAPSHOT = 1,   /* loading a snapshot (records are not current) */
    TF_STATE_LIVE = 2,       /* current, applying live events */
    TF_STATE_CATCHUP = 3,    /* repairing a gap from the service's log */
    TF_STATE_LOST = 4,       /* no heartbeat for 3 intervals */
} tf_view_state_t;

/*  What a callback reports. */
typedef enum {
    TF_VIEW_ADD = 1,       /* record: the new record */
    TF_VIEW_UPDATE = 2,    /* record: the record after the change */
    TF_VIEW_DELETE = 3,    /* record: the record as it was, just before it goes */
    TF_VIEW_RESYNC = 4,    /* the view is rebuilt from a new snapshot (epoch changed,
                              service went back in time, log trimmed); records stay
                              readable, the differences follow as ADD/UPDATE/DELETE */
    TF_VIEW_READY = 5,     /* a snapshot was applied: the view is complete (a persistent
                              view resumed from its file: after its first catch-up) */
    TF_VIEW_LOST = 6,      /* no heartbeat for 3 intervals: the service is silent */
    TF_VIEW_RECOVERED = 7, /* live again after LOST, caught up from its position; when it
                              needs a snapshot instead (none finished yet, the log was
                              trimmed, a new epoch), READY follows LOST (after RESYNC
                              when the view had been complete) */
    TF_VIEW_SAVED = 8,     /* persistent view: a batch of changes and the position was
                              committed to the file; `id` says what ("catch-up: 500
                              changes, position 1500, 1200 records") */
} tf_view_event_t;

typedef struct _tf_view_t tf_view_t;

/*  Application callback, called from tf_view_start and tf_view_poll only.
    For ADD/UPDATE/DELETE, `record` (borrowed, valid during the call) and
    `id` (its id); for the other events `record` is NULL and `id` a short
    reason for humans (may be ""). Must not call tf_view_poll. */
typedef void (tf_view_fn) (tf_view_t *view, tf_view_event_t what, const Techfeed__Milestone *record,
                           const char *id, void *arg);

/*  Counters, for tests and operators. */
typedef struct {
    uint64_t snapshots;    /* snapshots applied */
    uint64_t resyncs;      /* times the view was dropped (RESYNC; not fired when no
                              snapshot had completed yet) */
    uint64_t catchups;     /* catch-ups started */
    uint64_t gaps;         /* gaps detected (lost events, from events or heartbeats) */
    uint64_t duplicates;   /* events dropped as already applied */
    uint64_t lost;         /* times the service went silent (LOST) */
    uint64_t bad_messages; /* undecodable or inconsistent messages ignored */
    uint64_t dropped;      /* events dropped because the buffer was full */
    uint64_t changes;      /* ADD + UPDATE + DELETE callbacks */
} tf_view_stats_t;

/*  View on the events (PUB) and sync endpoints (NULL = the defaults).
    Nothing connects until tf_view_start, which is also where endpoints
    that are not valid are found: unlike tf_writer_new and tf_query_new,
    this never returns NULL. */
tf_view_t *tf_view_new (const char *events_endpoint, const char *sync_endpoint);
void tf_view_destroy (tf_view_t **self_p);

/*  Before start: the sectors to hold (n = 0: all). -1 when a value is not
    a sector. */
int tf_view_set_sectors (tf_view_t *self, const Techfeed__Sector *sectors, size_t n);
void tf_view_set_callback (tf_view_t *self, tf_view_fn *fn, void *arg);
/*  Wait for one sync reply, default TF_DEFAULT_TIMEOUT_MS. */
void tf_view_set_timeout (tf_view_t *self, int timeout_ms);
/*  Before start: CURVE for both sockets, see the top of this file. */
int tf_view_set_curve (tf_view_t *self, const char *server_key, const char *client_cert);

/*  Before start: makes the view persistent (PROTOCOL.md §9 rule 7). The
    records are also kept in the SQLite file at `path` (created when
    missing; WAL, synchronous=FULL), in a `records` table with the same
    columns as the service's, so other programs can query it with plain
    SQL while the view runs. Each batch of changes (a snapshot whole, a
    catch-up chunk, the live events of one poll) is committed in one
    transaction together with the epoch, position P and last[s] it brings
    the view to: after a crash the file holds a consistent earlier state.

    Loads what the file holds at once: tf_view_get, _count, _first work
    before start, and tf_view_start resumes with a CATCHUP since the
    stored P (the file's epoch no longer the service's, or its position
    trimmed from the log: a SNAPSHOT, replacing the records at its end
    mark in one transaction). A new file starts with a SNAPSHOT.

    A file keeps the sector filter it was made with: tf_view_start refuses
    (-1, errstr names both filters) a view with other sectors; use another
    file, or delete it to start over. -1 when the file cannot be opened or
    created, is not a mirror file (the service's database is refused), or
    fails its quick_check. When a write to the file fails later (disk
    full...), the view stops: tf_view_poll returns -1 with the reason in
    errstr; the file still holds its last batch, and a new view on the
    same file resumes from there. */
int tf_view_set_store (tf_view_t *self, const char *path);

/*  What a mirror file holds, read from the file alone (a view may be
    writing it meanwhile, in another process). */
typedef struct {
    char epoch[65];        /* the service's epoch; "" before the first snapshot */
    uint64_t position;     /* P: every change of its sectors up to P is in */
    uint64_t record_count; /* rows in records */
    uint64_t digest;       /* PROTOCOL.md §10 over the rows' (id, revision) */
    uint64_t last[11];     /* last[s] by sector value, index 1..10 */
    char sectors[97];      /* the sector filter: "" all, else slugs "space,rail" */
    int64_t updated_ms;    /* Unix ms of the last batch, 0 when none */
} tf_view_store_status_t;

/*  Reads the mirror file at `path` (never creates it). 0, or -1 with the
    reason in err. */
int tf_view_store_status (const char *path, tf_view_store_status_t *status, char *err,
                          size_t errlen);

/*  Whether a view of `sectors` (n = 0: all) may use the mirror file at
    `path`, whose tf_view_store_status is `status`: 0 when the file holds
    no snapshot yet or was made for the same sectors; -1 with the reason
    in err otherwise, the refusal tf_view_start gives such a view. */
int tf_view_store_check_sectors (const char *path, const tf_view_store_status_t *status,
                                 const Techfeed__Sector *sectors, size_t n, char *err,
                                 size_t errlen);

/*  Subscribes (sectors and "heartbeat" first), then loads the snapshot.
    0 when the view is LIVE; -1 when the endpoints are not valid or the
    snapshot failed (errstr) — in the latter case the view keeps trying
    from tf_view_poll, unless a persistent view's file failed (then every
    tf_view_poll returns -1 too). Blocks while the snapshot loads (each
    reply bounded by the timeout, and the tries). Called again once
    started: 0 if LIVE, else -1. READY fires when the snapshot is applied
    in memory; a persistent view commits it to the file just after (SAVED
    says when the file has it). */
int tf_view_start (tf_view_t *self);

/*  Waits up to timeout_ms (-1: until something happens) for events,
    applies them, runs catch-ups and snapshots when needed (these block
    until done, bounded by the timeout of each reply) and fires the
    callbacks. Returns as soon as something was processed, or at the
    timeout: the number of changes applied (ADD/UPDATE/DELETE), or -1 when
    interrupted (SIGINT/SIGTERM), not started, or a persistent view's file
    failed (errstr says which). Call it at least once per heartbeat
    interval so LOST is noticed. A sync it runs may block longer than
    timeout_ms, even at 0: up to the sync timeout per reply, the tries
    included, while the sync endpoint does not answer. */
int tf_view_poll (tf_view_t *self, int timeout_ms);

/*  The SUB socket, for applications that poll themselves (zpoller,
    zloop): call tf_view_poll (view, 0) when it is readable and at least
    once a second (it may still block while it syncs, see above). NULL
    before start. */
zsock_t *tf_view_socket (tf_view_t *self);

/*  Record by id, borrowed until the next tf_view_poll, or NULL. */
const Techfeed__Milestone *tf_view_get (tf_view_t *self, const char *id);
size_t tf_view_count (tf_view_t *self);
/*  Iteration in no given order; borrowed; do not poll meanwhile. */
const Techfeed__Milestone *tf_view_first (tf_view_t *self);
const Techfeed__Milestone *tf_view_next (tf_view_t *self);

/*  Position P: the view holds every change in its sectors up to P. */
uint64_t tf_view_position (tf_view_t *self);
/*  Epoch of the records held, "" before the first snapshot. */
const char *tf_view_epoch (tf_view_t *self);
/*  PROTOCOL.md §10 digest over the records held (maintained per change). */
uint64_t tf_view_digest (tf_view_t *self);
tf_view_state_t tf_view_state (tf_view_t *self);
/*  During an ADD/UPDATE/DELETE callback: the sequence of the change being
    applied, 0 when it comes from a snapshot. */
uint64_t tf_view_change_sequence (tf_view_t *self);
void tf_view_stats (tf_view_t *self, tf_view_stats_t *stats);
const char *tf_view_errstr (tf_view_t *self);

/*  Names for logs: "live", "catchup"...; "add", "resync"... Static. */
const char *tf_view_state_name (tf_view_state_t state);
const char *tf_view_event_name (tf_view_event_t what);

#ifdef __cplusplus
}
#endif

#endif
