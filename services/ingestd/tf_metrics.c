/*  tf_metrics — see tf_metrics.h. */
#include "tf_metrics.h"
#include "tf_wire.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*  From one fdatasync of a fast disk (about 0.1 ms) to a stalled one. */
const double tf_metrics_bounds[TF_METRICS_BUCKETS] = { 0.0001, 0.0002, 0.0005, 0.001, 0.002,
                                                       0.005,  0.01,   0.025,  0.05,  0.1,
                                                       0.25,   0.5,    1.0 };

void tf_metrics_observe (tf_histogram_t *histogram, uint64_t nanoseconds)
{
    double seconds = (double) nanoseconds / 1e9;
    size_t bucket = 0;
    while (bucket < TF_METRICS_BUCKETS && seconds > tf_metrics_bounds[bucket])
        bucket++;
    atomic_fetch_add (&histogram->buckets[bucket], 1);
    atomic_fetch_add (&histogram->sum_ns, nanoseconds);
}

/*  A growing text buffer for the exposition. */
typedef struct {
    char *data;
    size_t size, used;
} s_text_t;

static void s_printf (s_text_t *text, const char *format, ...)
{
    while (true) {
        va_list args;
        va_start (args, format);
        int n = vsnprintf (text->data + text->used, text->size - text->used, format, args);
        va_end (args);
        if (n >= 0 && (size_t) n < text->size - text->used) {
            text->used += (size_t) n;
            return;
        }
        text->size = text->size * 2 + (size_t) n;
        text->data = realloc (text->data, text->size);
        if (!text->data)
            abort ();
    }
}

/*  HELP and TYPE lines, then one sample without labels. */
static void s_metric (s_text_t *text, const char *name, const char *type, const char *help,
                      uint64_t value)
{
    s_printf (text, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name,
              value);
}

/*  A histogram family: cumulative buckets, then sum and count. */
static void s_histogram (s_text_t *text, const char *name, const char *help,
                         tf_histogram_t *histogram)
{
    s_printf (text, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cumulative = 0;
    for (int b = 0; b <= TF_METRICS_BUCKETS; b++) {
        cumulative += atomic_load (&histogram->buckets[b]);
        if (b < TF_METRICS_BUCKETS)
            s_printf (text, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, tf_metrics_bounds[b],
                      cumulative);
        else
            s_printf (text, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
    }
    s_printf (text, "%s_sum %.9f\n", name, (double) atomic_load (&histogram->sum_ns) / 1e9);
    s_printf (text, "%s_count %" PRIu64 "\n", name, cumulative);
}

char *tf_metrics_render (tf_metrics_t *m)
{
    s_text_t text = { malloc (4096), 4096, 0 };
    if (!text.data)
        abort ();
    s_metric (&text, "techfeed_records_ingested_total", "counter",
              "Operations (puts and deletes) stored.", atomic_load (&m->ingested));
    s_printf (&text, "# HELP techfeed_records_rejected_total Operations refused, by reason (a "
                     "request refused as a whole counts once).\n"
                     "# TYPE techfeed_records_rejected_total counter\n");
    for (int code = 1; code < TF_METRICS_CODES; code++)
        s_printf (&text, "techfeed_records_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
                  tf_error_name (code), (uint64_t) atomic_load (&m->rejected[code]));
    s_metric (&text, "techfeed_ingest_requests_total", "counter", "Ingest requests answered.",
              atomic_load (&m->requests));
    s_metric (&text, "techfeed_ingest_replayed_total", "counter",
              "Ingest requests answered from the idempotency cache.", atomic_load (&m->replayed));
    s_metric (&text, "techfeed_commits_total", "counter",
              "Write transactions committed (group commit).", atomic_load (&m->groups));
    s_metric (&text, "techfeed_events_published_total", "counter", "Change events published.",
              atomic_load (&m->published));
    s_metric (&text, "techfeed_heartbeats_total", "counter", "Heartbeats published.",
              atomic_load (&m->heartbeats));
    s_metric (&text, "techfeed_snapshots_served_total", "counter", "Snapshot cursors opened.",
              atomic_load (&m->snapshots));
    s_metric (&text, "techfeed_catchups_served_total", "counter", "Catch-up cursors opened.",
              atomic_load (&m->catchups));
    s_metric (&text, "techfeed_catchups_trimmed_total", "counter",
              "Catch-ups refused because the log no longer holds the position.",
              atomic_load (&m->trimmed));
    s_metric (&text, "techfeed_subscribers", "gauge", "Connections to the events socket.",
              atomic_load (&m->subscribers));
    s_metric (&text, "techfeed_sync_cursors", "gauge", "Open snapshot and catch-up cursors.",
              atomic_load (&m->cursors));
    s_printf (&text,
              "# HELP techfeed_sync_cursors_closed_total Cursors the service closed before "
              "their end without being asked: idle too long, or their client's connection "
              "ended.\n"
              "# TYPE techfeed_sync_cursors_closed_total counter\n"
              "techfeed_sync_cursors_closed_total{reason=\"idle\"} %" PRIu64 "\n"
              "techfeed_sync_cursors_closed_total{reason=\"disconnected\"} %" PRIu64 "\n",
              (uint64_t) atomic_load (&m->cursors_closed[TF_METRICS_CLOSE_IDLE]),
              (uint64_t) atomic_load (&m->cursors_closed[TF_METRICS_CLOSE_DISCONNECTED]));
    s_metric (&text, "techfeed_head_sequence", "gauge", "Last committed change sequence.",
              atomic_load (&m->head));
    s_metric (&text, "techfeed_records", "gauge", "Records stored.", atomic_load (&m->records));
    s_metric (&text, "techfeed_records_table_behind", "gauge",
              "Committed changes the records table does not have yet.",
              atomic_load (&m->records_behind));
    s_metric (&text, "techfeed_records_table_behind_peak", "gauge",
              "The most changes the records table was behind after a write group, since start.",
              atomic_load (&m->records_behind_peak));
    s_metric (&text, "techfeed_writes_held_total", "counter",
              "Loop turns on which writes waited while the loop brought the records table "
              "within --apply-lag-max of the log.",
              atomic_load (&m->writes_held));
    s_metric (&text, "techfeed_index_bytes", "gauge",
              "Memory of the in-memory indexes: every record id and cached request id.",
              atomic_load (&m->index_bytes));
    s_metric (&text, "techfeed_database_bytes", "gauge", "Size of the database file and its WAL.",
              atomic_load (&m->db_bytes));
    s_metric (&text, "techfeed_wal_frames", "gauge",
              "Pages in the WAL after the last commit; past 8192 only while a snapshot or "
              "catch-up keeps it from starting over.",
              atomic_load (&m->wal_frames));
    s_metric (&text, "techfeed_wal_checkpoints_total", "counter",
              "Checkpoints the writer ran between groups past 8192 WAL pages (the "
              "checkpointer thread's are not counted).",
              atomic_load (&m->wal_checkpoints));
    s_printf (&text,
              "# HELP techfeed_store_lock_held_seconds_total Time the database's one writer "
              "connection was held, by thread: the loop (write groups, maintenance) or the "
              "applier (the records table).\n"
              "# TYPE techfeed_store_lock_held_seconds_total counter\n"
              "techfeed_store_lock_held_seconds_total{thread=\"loop\"} %.9f\n"
              "techfeed_store_lock_held_seconds_total{thread=\"applier\"} %.9f\n",
              (double) atomic_load (&m->lock_held_ns[0]) / 1e9,
              (double) atomic_load (&m->lock_held_ns[1]) / 1e9);
    s_printf (&text,
              "# HELP techfeed_store_lock_wait_seconds_total Time the loop waited for the writer "
              "connection while the applier held it.\n"
              "# TYPE techfeed_store_lock_wait_seconds_total counter\n"
              "techfeed_store_lock_wait_seconds_total %.9f\n",
              (double) atomic_load (&m->lock_wait_ns) / 1e9);
    s_metric (&text, "techfeed_ready", "gauge", "1 when the service is ready.",
              (uint64_t) atomic_load (&m->ready));
    s_printf (&text,
              "# HELP techfeed_start_time_seconds Start time, Unix seconds.\n"
              "# TYPE techfeed_start_time_seconds gauge\n"
              "techfeed_start_time_seconds %.3f\n",
              (double) atomic_load (&m->started_ms) / 1000.0);

    s_histogram (&text, "techfeed_ingest_latency_seconds",
                 "Time from receiving an ingest request to sending its reply.", &m->latency);
    s_histogram (&text, "techfeed_commit_duration_seconds",
                 "Time to commit one write transaction (a group of requests): writing the WAL "
                 "and its fsync.",
                 &m->commit);
    return text.data;
}
