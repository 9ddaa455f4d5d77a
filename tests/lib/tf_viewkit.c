/*  tf_viewkit — see tf_viewkit.h. */
#include "tf_viewkit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tf_rawclient.h"
#include "tf_wire.h"

/*  What the mirror knows of one id. */
typedef struct {
    uint64_t revision; /* last revision a callback reported */
    size_t seen;       /* change callbacks for the id */
    bool held;         /* present after the last callback */
} tf_kit_entry_t;

static void s_entry_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

static void s_anomaly (tf_watcher_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void s_anomaly (tf_watcher_t *self, const char *format, ...)
{
    if (self->anomalies++ == 0) {
        va_list args;
        va_start (args, format);
        vsnprintf (self->anomaly, sizeof self->anomaly, format, args);
        va_end (args);
    }
}

/*  One ADD, UPDATE or DELETE: checks it against the mirror, then applies it. */
static void s_on_change (tf_watcher_t *self, tf_view_event_t what,
                         const Techfeed__Milestone *record, uint64_t sequence)
{
    tf_kit_entry_t *entry = (tf_kit_entry_t *) zhashx_lookup (self->mirror, record->id);
    if (!entry) {
        entry = (tf_kit_entry_t *) zmalloc (sizeof *entry);
        zhashx_insert (self->mirror, record->id, entry);
    }
    entry->seen++;
    const char *name = tf_view_event_name (what);
    if (what == TF_VIEW_ADD && entry->held)
        s_anomaly (self, "%s: add of %s, held at revision %" PRIu64 " (seq %" PRIu64 ")",
                   self->name, record->id, entry->revision, sequence);
    if (what != TF_VIEW_ADD && !entry->held)
        s_anomaly (self, "%s: %s of %s, not held (seq %" PRIu64 ")", self->name, name, record->id,
                   sequence);
    if (what == TF_VIEW_UPDATE && sequence > 0 && record->revision <= entry->revision)
        s_anomaly (self, "%s: update of %s to revision %" PRIu64 ", held at %" PRIu64, self->name,
                   record->id, record->revision, entry->revision);
    if (sequence > 0) {
        int s = record->sector;
        if (s < 1 || s > TF_KIT_SECTORS)
            s_anomaly (self, "%s: %s of %s in sector %d", self->name, name, record->id, s);
        else {
            if (sequence <= self->last[s])
                s_anomaly (self, "%s: %s of %s at seq %" PRIu64 " after seq %" PRIu64, self->name,
                           name, record->id, sequence, self->last[s]);
            self->last[s] = sequence;
        }
        self->sequences =
            (uint64_t *) realloc (self->sequences, (self->n_sequences + 1) * sizeof (uint64_t));
        if (!self->sequences)
            abort ();
        self->sequences[self->n_sequences++] = sequence;
    }
    if (what == TF_VIEW_DELETE) {
        self->deletes++;
        entry->held = false;
    } else {
        what == TF_VIEW_ADD ? self->adds++ : self->updates++;
        entry->held = true;
        entry->revision = record->revision;
    }
}

static void s_on_view (tf_view_t *view, tf_view_event_t what, const Techfeed__Milestone *record,
                       const char *id, void *arg)
{
    tf_watcher_t *self = (tf_watcher_t *) arg;
    if (what > TF_VIEW_DELETE && getenv ("TF_KIT_TRACE"))
        fprintf (stderr, "%lld %s: %s (%s) state %s P=%" PRIu64 "\n", (long long) zclock_mono (),
                 self->name, tf_view_event_name (what), id,
                 tf_view_state_name (tf_view_state (view)), tf_view_position (view));
    switch (what) {
        case TF_VIEW_ADD:
        case TF_VIEW_UPDATE:
        case TF_VIEW_DELETE:
            s_on_change (self, what, record, tf_view_change_sequence (view));
            break;
        case TF_VIEW_READY:
            if (self->readys++ == 0)
                self->ready_position = tf_view_position (view);
            break;
        case TF_VIEW_RESYNC:
            //  The differences of the new snapshot follow without sequences
            self->resyncs++;
            memset (self->last, 0, sizeof self->last);
            break;
        case TF_VIEW_LOST: self->losts++; break;
        case TF_VIEW_RECOVERED: self->recovered++; break;
        default: break; // notices the kit does not count
    }
}

tf_watcher_t *tf_watcher_new (const tf_service_t *svc, const char *name,
                              const Techfeed__Sector *sectors, size_t n)
{
    tf_watcher_t *self = (tf_watcher_t *) zmalloc (sizeof *self);
    snprintf (self->name, sizeof self->name, "%s", name);
    self->view = tf_view_new (svc->events, svc->sync);
    assert (self->view);
    assert (n <= TF_KIT_SECTORS);
    if (n > 0 && tf_view_set_sectors (self->view, sectors, n) != 0)
        abort (); // a test passed a value that is not a sector
    for (size_t i = 0; i < n; i++)
        self->sectors[i] = sectors[i];
    self->n_sectors = n;
    tf_view_set_callback (self->view, s_on_view, self);
    tf_view_set_timeout (self->view, 5000);
    self->mirror = zhashx_new ();
    zhashx_set_destructor (self->mirror, s_entry_destroy);
    return self;
}

void tf_watcher_destroy (tf_watcher_t **self_p)
{
    tf_watcher_t *self = *self_p;
    if (!self)
        return;
    tf_view_destroy (&self->view);
    zhashx_destroy (&self->mirror);
    free (self->sequences);
    free (self);
    *self_p = NULL;
}

int tf_watcher_start (tf_watcher_t *self)
{
    return tf_view_start (self->view);
}

int tf_watchers_start (tf_watcher_t **watchers, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tf_watcher_start (watchers[i]) != 0) {
            fprintf (stderr, "viewkit: %s did not start: %s\n", watchers[i]->name,
                     tf_view_errstr (watchers[i]->view));
            return -1;
        }
    return 0;
}

void tf_watchers_destroy (tf_watcher_t **watchers, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tf_watcher_destroy (&watchers[i]);
}

size_t tf_watcher_seen (tf_watcher_t *self, const char *id)
{
    tf_kit_entry_t *entry = (tf_kit_entry_t *) zhashx_lookup (self->mirror, id);
    return entry ? entry->seen : 0;
}

size_t tf_watcher_mirror_count (tf_watcher_t *self)
{
    size_t held = 0;
    for (tf_kit_entry_t *e = (tf_kit_entry_t *) zhashx_first (self->mirror); e;
         e = (tf_kit_entry_t *) zhashx_next (self->mirror))
        held += e->held;
    return held;
}

bool tf_watcher_consistent (tf_watcher_t *self, char *why, size_t size)
{
    if (self->anomalies) {
        snprintf (why, size, "%zu callbacks do not fit, the first: %s", self->anomalies,
                  self->anomaly);
        return false;
    }
    uint64_t digest = 0;
    size_t held = 0;
    for (tf_kit_entry_t *e = (tf_kit_entry_t *) zhashx_first (self->mirror); e;
         e = (tf_kit_entry_t *) zhashx_next (self->mirror)) {
        if (!e->held)
            continue;
        const char *id = (const char *) zhashx_cursor (self->mirror);
        const Techfeed__Milestone *r = tf_view_get (self->view, id);
        if (!r || r->revision != e->revision) {
            snprintf (why, size, "%s: callbacks left %s at revision %" PRIu64 ", the view has %s",
                      self->name, id, e->revision, r ? "another revision" : "no such record");
            return false;
        }
        digest += tf_digest_item (id, e->revision);
        held++;
    }
    if (held != tf_view_count (self->view) || digest != tf_view_digest (self->view)) {
        snprintf (why, size,
                  "%s: callbacks left %zu records (digest %016" PRIx64 "), the view has %zu "
                  "(digest %016" PRIx64 ")",
                  self->name, held, digest, tf_view_count (self->view),
                  tf_view_digest (self->view));
        return false;
    }
    return true;
}

static int s_compare_u64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

bool tf_watcher_applied_exactly (tf_watcher_t *self, const uint64_t *expected, size_t n, char *why,
                                 size_t size)
{
    uint64_t *got = (uint64_t *) malloc ((self->n_sequences + 1) * sizeof *got);
    uint64_t *want = (uint64_t *) malloc ((n + 1) * sizeof *want);
    if (!got || !want)
        abort ();
    memcpy (got, self->sequences, self->n_sequences * sizeof *got);
    memcpy (want, expected, n * sizeof *want);
    qsort (got, self->n_sequences, sizeof *got, s_compare_u64);
    qsort (want, n, sizeof *want, s_compare_u64);
    bool same = true;
    size_t i = 0;
    for (; i < n && i < self->n_sequences && same; i++)
        if (got[i] != want[i]) {
            snprintf (why, size, "%s: change %zu in order is seq %" PRIu64 ", expected %" PRIu64,
                      self->name, i, got[i], want[i]);
            same = false;
        }
    if (same && self->n_sequences != n) {
        snprintf (why, size, "%s: %zu changes applied, expected %zu", self->name, self->n_sequences,
                  n);
        same = false;
    }
    free (got);
    free (want);
    return same;
}

bool tf_watcher_equals_json (tf_watcher_t *self, json_t *records, char *why, size_t size)
{
    if (!json_is_array (records)) {
        snprintf (why, size, "%s: not a JSON array", self->name);
        return false;
    }
    if (json_array_size (records) != tf_view_count (self->view)) {
        snprintf (why, size, "%s: %zu records in the view, %zu in the list", self->name,
                  tf_view_count (self->view), json_array_size (records));
        return false;
    }
    size_t i;
    json_t *item;
    json_array_foreach (records, i, item) {
        const char *id = json_string_value (json_object_get (item, "id"));
        json_int_t revision = json_integer_value (json_object_get (item, "revision"));
        const Techfeed__Milestone *r = id ? tf_view_get (self->view, id) : NULL;
        if (!r || (json_int_t) r->revision != revision) {
            snprintf (why, size, "%s: list has %s at revision %lld, the view %s", self->name,
                      id ? id : "(no id)", (long long) revision,
                      r ? "another revision" : "does not have it");
            return false;
        }
    }
    return true;
}

const char *tf_watcher_summary (tf_watcher_t *self)
{
    static char line[400];
    tf_view_stats_t st;
    tf_view_stats (self->view, &st);
    snprintf (line, sizeof line,
              "%-8s %-8s P=%-5" PRIu64 " records=%-5zu digest=%016" PRIx64
              " add/upd/del=%zu/%zu/%zu ready=%zu resync=%zu lost=%zu recovered=%zu | "
              "snapshots=%" PRIu64 " catchups=%" PRIu64 " gaps=%" PRIu64 " dups=%" PRIu64
              " dropped=%" PRIu64,
              self->name, tf_view_state_name (tf_view_state (self->view)),
              tf_view_position (self->view), tf_view_count (self->view),
              tf_view_digest (self->view), self->adds, self->updates, self->deletes, self->readys,
              self->resyncs, self->losts, self->recovered, st.snapshots, st.catchups, st.gaps,
              st.duplicates, st.dropped);
    return line;
}

bool tf_watchers_poll_until (tf_watcher_t **watchers, size_t n, bool (*condition) (void *arg),
                             void *arg, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        for (size_t i = 0; i < n; i++)
            tf_view_poll (watchers[i]->view, n > 1 ? 5 : 20);
        if (condition && condition (arg))
            return true;
        if (zclock_mono () >= deadline)
            return false;
    }
}

/*  What tf_watchers_converge waits for. */
typedef struct {
    tf_watcher_t **watchers;
    size_t n;
    tf_status_t status; /* the database */
    uint64_t *digests;  /* per watcher: of its sectors */
    size_t *counts;
} s_target_t;

static bool s_converged (void *arg)
{
    s_target_t *t = (s_target_t *) arg;
    for (size_t i = 0; i < t->n; i++) {
        tf_view_t *view = t->watchers[i]->view;
        if (tf_view_state (view) != TF_STATE_LIVE ||
            tf_view_position (view) < t->status.head_sequence ||
            tf_view_digest (view) != t->digests[i] || tf_view_count (view) != t->counts[i] ||
            strcmp (tf_view_epoch (view), t->status.epoch) != 0)
            return false;
    }
    return true;
}

bool tf_watchers_converge (tf_watcher_t **watchers, size_t n, const tf_service_t *svc,
                           int timeout_ms)
{
    s_target_t target = { .watchers = watchers, .n = n };
    target.digests = (uint64_t *) calloc (n + 1, sizeof (uint64_t));
    target.counts = (size_t *) calloc (n + 1, sizeof (size_t));
    bool ok = tf_kit_status (svc, &target.status) == 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = tf_kit_digest (svc, watchers[i]->sectors, watchers[i]->n_sectors, &target.digests[i],
                            &target.counts[i]) == 0;
    if (ok)
        ok = tf_watchers_poll_until (watchers, n, s_converged, &target, timeout_ms);
    free (target.digests);
    free (target.counts);
    return ok;
}

// ------------------------------------------------------------------ database side

static int s_sum (const Techfeed__Milestone *record, void *arg)
{
    uint64_t *sums = (uint64_t *) arg; /* digest, count */
    sums[0] += tf_digest_item (record->id, record->revision);
    sums[1]++;
    return 0;
}

int tf_kit_digest (const tf_service_t *svc, const Techfeed__Sector *sectors, size_t n,
                   uint64_t *digest, size_t *count)
{
    tf_query_t *query = tf_query_new (svc->sync);
    tf_query_set_timeout (query, 5000);
    Techfeed__Filter filter = TECHFEED__FILTER__INIT;
    filter.sectors = (Techfeed__Sector *) sectors;
    filter.n_sectors = n;
    uint64_t sums[2] = { 0, 0 };
    int rc = tf_query_list (query, n ? &filter : NULL, s_sum, sums);
    if (rc != 0)
        fprintf (stderr, "viewkit: list failed: %s\n", tf_query_errstr (query));
    tf_query_destroy (&query);
    *digest = sums[0];
    *count = (size_t) sums[1];
    return rc;
}

int tf_kit_status (const tf_service_t *svc, tf_status_t *status)
{
    tf_query_t *query = tf_query_new (svc->sync);
    tf_query_set_timeout (query, 5000);
    int rc = tf_query_status (query, status);
    if (rc != 0)
        fprintf (stderr, "viewkit: status failed: %s\n", tf_query_errstr (query));
    tf_query_destroy (&query);
    return rc;
}

// ------------------------------------------------------------------ load

void tf_load_init (tf_load_t *load, const tf_service_t *svc, const char *prefix, size_t count)
{
    memset (load, 0, sizeof *load);
    snprintf (load->ingest, sizeof load->ingest, "%s", svc->ingest);
    snprintf (load->prefix, sizeof load->prefix, "%s", prefix);
    load->count = count;
}

/*  Sends one operation; appends its ack or notes the failure. */
static bool s_load_op (tf_load_t *load, size_t number, bool delete)
{
    char id[64];
    snprintf (id, sizeof id, "%s-%zu", load->prefix, number);
    Techfeed__Sector sector = load->n_sectors ? load->sectors[number % load->n_sectors]
                                              : (Techfeed__Sector) (1 + number % TF_KIT_SECTORS);
    tf_result_t result;
    int rc;
    if (delete)
        rc = tf_writer_delete (load->writer, id, false, 0, &result);
    else {
        Techfeed__Milestone record, *records[] = { &record };
        tf_raw_record (&record, id, sector);
        rc = tf_writer_put (load->writer, records, 1, false, &result);
    }
    if (rc != 0 || result.code != TECHFEED__ERROR_CODE__OK) {
        if (load->failed++ == 0)
            snprintf (load->error, sizeof load->error, "%s %s: %s", delete ? "delete" : "put", id,
                      rc != 0 ? tf_writer_errstr (load->writer) : result.message);
        return false;
    }
    size_t n = atomic_load (&load->done);
    load->acks = (tf_ack_t *) realloc (load->acks, (n + 1) * sizeof (tf_ack_t));
    if (!load->acks)
        abort ();
    load->acks[n] = (tf_ack_t){ result.sequence, (int) sector, delete };
    atomic_store (&load->done, n + 1);
    return true;
}

static void *s_load_main (void *arg)
{
    tf_load_t *load = (tf_load_t *) arg;
    bool *gone = NULL; /* by id number: deleted */
    for (size_t k = 1; load->count ? k <= load->count : !atomic_load (&load->stop); k++) {
        //  The newest id still there, and an older one to re-put
        size_t newest = load->created;
        while (newest > 0 && gone[newest - 1])
            newest--;
        bool ok;
        if (load->delete_every && k % load->delete_every == 0 && newest > 0) {
            ok = s_load_op (load, newest - 1, true);
            gone[newest - 1] = ok;
            load->removed += ok;
        } else if (load->update_every && k % load->update_every == 0 && newest > 0) {
            size_t number = (k * 7919) % newest;
            while (gone[number])
                number = (number + 1) % newest;
            ok = s_load_op (load, number, false);
        } else {
            gone = (bool *) realloc (gone, (load->created + 1) * sizeof *gone);
            if (!gone)
                abort ();
            gone[load->created] = false;
            ok = s_load_op (load, load->created, false);
            load->created += ok;
        }
        if (!ok)
            break;
    }
    free (gone);
    return NULL;
}

int tf_load_start (tf_load_t *load)
{
    load->writer = tf_writer_new (load->ingest);
    if (!load->writer)
        return -1;
    tf_writer_set_timeout (load->writer, 5000);
    return pthread_create (&load->thread, NULL, s_load_main, load) == 0 ? 0 : -1;
}

void tf_load_stop (tf_load_t *load)
{
    atomic_store (&load->stop, true);
}

void tf_load_join (tf_load_t *load)
{
    pthread_join (load->thread, NULL);
    tf_writer_destroy (&load->writer);
}

void tf_load_run (tf_load_t *load)
{
    load->writer = tf_writer_new (load->ingest);
    assert (load->writer);
    tf_writer_set_timeout (load->writer, 5000);
    s_load_main (load);
    tf_writer_destroy (&load->writer);
}

void tf_load_free (tf_load_t *load)
{
    free (load->acks);
    load->acks = NULL;
}
