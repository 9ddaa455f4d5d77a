/*  tf_metrics — the service's counters and gauges, written by the server
    thread and read by the HTTP thread. Every value is an atomic, so the
    HTTP thread never touches the database or the sockets.
*/
#ifndef TF_METRICS_H_INCLUDED
#define TF_METRICS_H_INCLUDED

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TF_METRICS_CODES 13   /* ErrorCode values 0..12 */
#define TF_METRICS_BUCKETS 13 /* buckets of a duration histogram, +Inf not counted */

/*  A histogram of durations: counts by upper bound (tf_metrics_bounds),
    +Inf last, and their sum. */
/*  Why the service closed a cursor its client had not closed. */
enum { TF_METRICS_CLOSE_IDLE, TF_METRICS_CLOSE_DISCONNECTED, TF_METRICS_CLOSES };

typedef struct {
    atomic_uint_fast64_t buckets[TF_METRICS_BUCKETS + 1];
    atomic_uint_fast64_t sum_ns;
} tf_histogram_t;

typedef struct {
    atomic_uint_fast64_t ingested;                   /* operations stored */
    atomic_uint_fast64_t rejected[TF_METRICS_CODES]; /* operations refused, by code */
    atomic_uint_fast64_t requests;                   /* ingest requests answered */
    atomic_uint_fast64_t replayed;                   /* answered from the idempotency cache */
    atomic_uint_fast64_t groups;                     /* write transactions committed */
    atomic_uint_fast64_t published;                  /* change events published */
    atomic_uint_fast64_t heartbeats;                 /* heartbeats published */
    atomic_uint_fast64_t snapshots;                  /* snapshot cursors opened */
    atomic_uint_fast64_t catchups;                   /* catch-up cursors opened */
    atomic_uint_fast64_t trimmed;                    /* catch-ups refused as TRIMMED */
    atomic_uint_fast64_t records_behind;             /* changes not yet in records */
    atomic_uint_fast64_t records_behind_peak;        /* the most seen after a write group */
    atomic_uint_fast64_t writes_held;                /* loop turns writes waited for records */
    atomic_uint_fast64_t index_bytes;                /* the store's in-memory indexes */
    atomic_uint_fast64_t subscribers;                /* connected to the events socket */
    atomic_uint_fast64_t cursors;                    /* open sync cursors */
    atomic_uint_fast64_t cursors_closed[TF_METRICS_CLOSES]; /* closed unasked, by reason */
    atomic_uint_fast64_t head;                              /* last committed sequence */
    atomic_uint_fast64_t records;                           /* records stored */
    atomic_uint_fast64_t db_bytes;                          /* database + WAL size */
    atomic_uint_fast64_t wal_frames;                        /* WAL pages after the last commit */
    atomic_uint_fast64_t wal_checkpoints;                   /* the writer's own checkpoints */
    atomic_uint_fast64_t lock_held_ns[2]; /* writer connection held: loop, applier */
    atomic_uint_fast64_t lock_wait_ns;    /* the loop waited for it */
    tf_histogram_t latency;               /* request received -> reply sent */
    tf_histogram_t commit;                /* COMMIT of a group: WAL + fsync */
    atomic_int ready;                     /* bound, database open and writable */
    atomic_int_fast64_t started_ms;       /* start time, Unix ms */
} tf_metrics_t;

/*  Upper bounds of the histograms' buckets, seconds. */
extern const double tf_metrics_bounds[TF_METRICS_BUCKETS];

/*  Adds one duration, in nanoseconds. */
void tf_metrics_observe (tf_histogram_t *histogram, uint64_t nanoseconds);

/*  The Prometheus text format (version 0.0.4) of all metrics; caller frees. */
char *tf_metrics_render (tf_metrics_t *metrics);

#endif
