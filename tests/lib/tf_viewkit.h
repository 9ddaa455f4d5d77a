/*  tf_viewkit — libtechfeed views and writers under test, against a real
    service started by tf_testkit.

    A watcher is a view plus a record of its callbacks: counts per kind, a
    mirror of the records built from the callbacks alone (id, revision,
    callbacks seen), the sequences of the changes it applied, and a note of
    every callback that does not fit — an ADD of an id already held, an
    UPDATE or DELETE of one not held, a live change whose revision does not
    grow, or whose sequence is not above the last one of its sector.
    tf_watchers_poll_until drives several watchers until a condition holds;
    tf_watchers_converge until each equals the database. With
    TF_KIT_TRACE set, every callback other than a change is printed on
    stderr with the time, state and position (READY, LOST, RECOVERED...).

    A load is a writer in its own thread (its own tf_writer_t) that puts,
    re-puts and deletes records on a fixed schedule and keeps every
    acknowledgement, for tests that write while views join or restart.
*/
#ifndef TF_VIEWKIT_H_INCLUDED
#define TF_VIEWKIT_H_INCLUDED

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "techfeed.h"
#include "tf_testkit.h"

#define TF_KIT_SECTORS 10 /* sector values 1..10 */

// ------------------------------------------------------------------ watcher

typedef struct {
    tf_view_t *view;                          /* the view under test */
    char name[32];                            /* for messages */
    Techfeed__Sector sectors[TF_KIT_SECTORS]; /* its filter; n_sectors 0 = all */
    size_t n_sectors;
    size_t adds, updates, deletes;            /* change callbacks */
    size_t readys, resyncs, losts, recovered; /* other callbacks */
    uint64_t ready_position;                  /* P at the first READY */
    uint64_t *sequences;                      /* sequences of the live changes applied, in order */
    size_t n_sequences;
    uint64_t last[TF_KIT_SECTORS + 1]; /* last live sequence applied per sector */
    zhashx_t *mirror;                  /* id -> tf_kit_entry_t (see .c), from callbacks */
    size_t anomalies;                  /* callbacks that do not fit */
    char anomaly[300];                 /* the first of them */
} tf_watcher_t;

/*  A watcher on svc's endpoints holding `sectors` (n = 0: all); not
    started. Sync replies wait up to 5 s. */
tf_watcher_t *tf_watcher_new (const tf_service_t *svc, const char *name,
                              const Techfeed__Sector *sectors, size_t n);
void tf_watcher_destroy (tf_watcher_t **self_p);
/*  tf_view_start: 0 when the view is LIVE. */
int tf_watcher_start (tf_watcher_t *self);

/*  tf_watcher_start of each: 0 when all are LIVE. */
int tf_watchers_start (tf_watcher_t **watchers, size_t n);
/*  tf_watcher_destroy of each. */
void tf_watchers_destroy (tf_watcher_t **watchers, size_t n);

/*  Change callbacks (ADD, UPDATE, DELETE) for id, snapshot ones included. */
size_t tf_watcher_seen (tf_watcher_t *self, const char *id);
/*  Records held by the mirror (ids the callbacks left present). */
size_t tf_watcher_mirror_count (tf_watcher_t *self);

/*  true when the callbacks fit, the mirror equals the view's records
    (ids and revisions) and the view's digest equals the mirror's; else
    false and why. */
bool tf_watcher_consistent (tf_watcher_t *self, char *why, size_t size);

/*  true when the live changes applied were exactly `expected` (n of them,
    any order), each once; else false and why. */
bool tf_watcher_applied_exactly (tf_watcher_t *self, const uint64_t *expected, size_t n, char *why,
                                 size_t size);

/*  true when the view's records are exactly those of `records` (a JSON
    array of objects with "id" and "revision", as `techfeed list --json`
    prints them); else false and why. */
bool tf_watcher_equals_json (tf_watcher_t *self, json_t *records, char *why, size_t size);

/*  One line of figures (state, position, count, digest, callbacks, view
    stats), valid until the next call. */
const char *tf_watcher_summary (tf_watcher_t *self);

/*  Polls every watcher in turn, a few milliseconds each, until
    condition (arg) holds (checked between rounds; NULL: never) or
    timeout_ms passes. Returns whether it held. */
bool tf_watchers_poll_until (tf_watcher_t **watchers, size_t n, bool (*condition) (void *arg),
                             void *arg, int timeout_ms);

/*  Reads the database through tf_query: epoch, head, and for each
    watcher the digest and count of the records of its sectors; then polls
    until every watcher is LIVE at a position >= head with that digest
    and that many records. Returns whether all did within timeout_ms. */
bool tf_watchers_converge (tf_watcher_t **watchers, size_t n, const tf_service_t *svc,
                           int timeout_ms);

// ------------------------------------------------------------------ database side

/*  Digest (PROTOCOL.md §10) and count of the records in `sectors` (n = 0:
    all), from tf_query_list on svc. 0 or -1. */
int tf_kit_digest (const tf_service_t *svc, const Techfeed__Sector *sectors, size_t n,
                   uint64_t *digest, size_t *count);
/*  SYNC_STATUS on svc. 0 or -1. */
int tf_kit_status (const tf_service_t *svc, tf_status_t *status);

// ------------------------------------------------------------------ load

/*  One acknowledged operation. */
typedef struct {
    uint64_t sequence; /* from the reply */
    int sector;        /* sector of the record */
    bool deleted;      /* a delete, else a put */
} tf_ack_t;

typedef struct {
    //  Settings, before tf_load_start
    char ingest[128];                         /* ingest endpoint */
    char prefix[32];                          /* ids are PREFIX-N */
    size_t count;                             /* operations to do; 0: until tf_load_stop */
    Techfeed__Sector sectors[TF_KIT_SECTORS]; /* record N goes to sectors[N % n_sectors] */
    size_t n_sectors;                         /* 0: all ten in turn */
    size_t update_every;                      /* every k-th operation re-puts an id (0: never) */
    size_t delete_every;                      /* every k-th deletes the newest id (0: never) */
    //  Progress, readable while it runs
    atomic_size_t done; /* operations acknowledged OK so far */
    atomic_bool stop;   /* set by tf_load_stop */
    //  Results, after tf_load_join
    tf_ack_t *acks;   /* one per acknowledged operation, in order */
    size_t failed;    /* operations not acknowledged OK (the load stops at the first) */
    char error[400];  /* what the first failure was */
    size_t created;   /* ids put the first time */
    size_t removed;   /* ids deleted */
    pthread_t thread; /* the writer's thread */
    tf_writer_t *writer;
} tf_load_t;

/*  Fills in the settings of a load writing `count` operations to svc with
    ids PREFIX-N, all sectors, no updates or deletes. */
void tf_load_init (tf_load_t *load, const tf_service_t *svc, const char *prefix, size_t count);
/*  Starts its thread. 0 or -1. */
int tf_load_start (tf_load_t *load);
/*  Asks a load without a count to finish after the operation in hand. */
void tf_load_stop (tf_load_t *load);
/*  Waits for the thread and frees the writer; acks stay (tf_load_free). */
void tf_load_join (tf_load_t *load);
void tf_load_free (tf_load_t *load);
/*  Runs a load to its end in the calling thread. */
void tf_load_run (tf_load_t *load);

#endif
