/*  tf_faultkit — see tf_faultkit.h. */
#include "tf_faultkit.h"
#include "tf_rawclient.h"
#include "tf_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t tf_fk_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t tf_fk_now_ms (void)
{
    return tf_fk_now_us () / 1000;
}

unsigned tf_fk_seed (void)
{
    const char *env = getenv ("TF_SEED");
    if (env && *env)
        return (unsigned) strtoul (env, NULL, 10);
    return (unsigned) (tf_fk_now_us () ^ (getpid () << 16));
}

int tf_fk_rand (unsigned *state, int lo, int hi)
{
    return hi <= lo ? lo : lo + rand_r (state) % (hi - lo + 1);
}

bool tf_fk_soak (void)
{
    const char *env = getenv ("TF_SOAK");
    return env && *env && strcmp (env, "0") != 0;
}

Techfeed__Milestone *tf_fk_record_new (const char *id, int sector, size_t summary_bytes)
{
    char title[200];
    snprintf (title, sizeof title, "Fault test milestone %s", id);
    char *summary = NULL;
    if (summary_bytes) {
        summary = (char *) malloc (summary_bytes + 1);
        for (size_t i = 0; i < summary_bytes; i++)
            summary[i] = (char) ('a' + (i * 7 + strlen (id)) % 26);
        summary[summary_bytes] = 0;
    }
    Techfeed__Milestone m;
    techfeed__milestone__init (&m);
    m.id = (char *) id;
    m.has_sector = 1;
    m.sector = (Techfeed__Sector) sector;
    m.title = title;
    m.summary = summary;
    m.country = (char *) "CN";
    m.date = (char *) "2019-01-03";
    Techfeed__Milestone *copy = tf_milestone_dup (&m);
    free (summary);
    return copy;
}

// --------------------------------------------------------------- server side

static tf_query_t *s_query (const tf_service_t *svc)
{
    tf_query_t *query = tf_query_new (svc->sync);
    if (query) {
        tf_query_set_timeout (query, 3000);
        tf_query_set_retries (query, 2);
    }
    return query;
}

int tf_fk_status (const tf_service_t *svc, tf_status_t *status)
{
    tf_query_t *query = s_query (svc);
    if (!query)
        return -1;
    int rc = tf_query_status (query, status);
    tf_query_destroy (&query);
    return rc;
}

typedef struct {
    uint64_t digest;
    uint64_t count;
    zhashx_t *revisions;
} s_listing_t;

static int s_listed (const Techfeed__Milestone *record, void *arg)
{
    s_listing_t *listing = (s_listing_t *) arg;
    listing->digest += tf_digest_item (record->id, record->revision);
    listing->count++;
    if (listing->revisions)
        zhashx_update (listing->revisions, record->id, (void *) (uintptr_t) record->revision);
    return 0;
}

static int s_list (const tf_service_t *svc, const Techfeed__Sector *sectors, size_t n,
                   s_listing_t *listing)
{
    tf_query_t *query = s_query (svc);
    if (!query)
        return -1;
    Techfeed__Filter filter = TECHFEED__FILTER__INIT;
    filter.n_sectors = n;
    filter.sectors = (Techfeed__Sector *) sectors;
    int rc = tf_query_list (query, n ? &filter : NULL, s_listed, listing);
    if (rc)
        fprintf (stderr, "faultkit: list failed: %s\n", tf_query_errstr (query));
    tf_query_destroy (&query);
    return rc;
}

int tf_fk_digest (const tf_service_t *svc, const Techfeed__Sector *sectors, size_t n,
                  uint64_t *digest, uint64_t *count)
{
    if (n == 0) {
        tf_status_t status;
        if (tf_fk_status (svc, &status))
            return -1;
        *digest = status.digest;
        if (count)
            *count = status.record_count;
        return 0;
    }
    s_listing_t listing = { 0 };
    if (s_list (svc, sectors, n, &listing))
        return -1;
    *digest = listing.digest;
    if (count)
        *count = listing.count;
    return 0;
}

zhashx_t *tf_fk_revisions (const tf_service_t *svc)
{
    s_listing_t listing = { 0 };
    listing.revisions = zhashx_new ();
    if (s_list (svc, NULL, 0, &listing))
        zhashx_destroy (&listing.revisions);
    return listing.revisions;
}

typedef void (s_change_fn) (const Techfeed__ChangeEvent *change, void *arg);

/*  Raw SYNC_CATCHUP since `since` to the end mark, `fn` per change. The
    reply code, -1 without a reply. */
static int s_catchup (const tf_service_t *svc, uint64_t since, const char *epoch, s_change_fn *fn,
                      void *arg)
{
    zsock_t *dealer = zsock_new_dealer (svc->sync);
    if (!dealer)
        return -1;
    zsock_set_rcvtimeo (dealer, 5000);
    Techfeed__SyncRequest request = TECHFEED__SYNC_REQUEST__INIT;
    request.has_kind = request.has_since_sequence = request.has_chunk_size = 1;
    request.kind = TECHFEED__SYNC_KIND__SYNC_CATCHUP;
    request.since_sequence = since;
    request.epoch = (char *) epoch;
    request.chunk_size = 5000;
    tf_raw_send_sync (dealer, &request);
    int code = -1;
    while (true) {
        Techfeed__SyncReply *reply = tf_raw_recv_sync (dealer);
        if (!reply)
            break;
        code = reply->has_code ? (int) reply->code : 0;
        for (size_t i = 0; code == 0 && i < reply->n_changes; i++)
            fn (reply->changes[i], arg);
        bool more = code == 0 && !(reply->has_end && reply->end);
        uint64_t cursor = reply->cursor;
        techfeed__sync_reply__free_unpacked (reply, NULL);
        if (!more)
            break;
        Techfeed__SyncRequest next = TECHFEED__SYNC_REQUEST__INIT;
        next.has_kind = next.has_cursor = 1;
        next.kind = TECHFEED__SYNC_KIND__SYNC_NEXT;
        next.cursor = cursor;
        tf_raw_send_sync (dealer, &next);
        code = -1;
    }
    zsock_destroy (&dealer);
    return code;
}

typedef struct {
    uint64_t changes;
    zhashx_t *per_id;
} s_counting_t;

static void s_count_change (const Techfeed__ChangeEvent *change, void *arg)
{
    s_counting_t *counting = (s_counting_t *) arg;
    counting->changes++;
    if (counting->per_id) {
        uintptr_t n = (uintptr_t) zhashx_lookup (counting->per_id, change->id);
        zhashx_update (counting->per_id, change->id, (void *) (n + 1));
    }
}

int tf_fk_catchup_count (const tf_service_t *svc, uint64_t since, const char *epoch,
                         uint64_t *changes, zhashx_t *per_id)
{
    s_counting_t counting = { 0, per_id };
    int code = s_catchup (svc, since, epoch, s_count_change, &counting);
    *changes = counting.changes;
    return code;
}

typedef struct {
    uint64_t upto;
    zhashx_t *revisions; /* id -> revision as of upto */
} s_replay_t;

static void s_replay_change (const Techfeed__ChangeEvent *change, void *arg)
{
    s_replay_t *replay = (s_replay_t *) arg;
    if (change->sequence > replay->upto)
        return;
    if (change->kind == TECHFEED__CHANGE_KIND__CHANGE_DELETE)
        zhashx_delete (replay->revisions, change->id);
    else
        zhashx_update (replay->revisions, change->id, (void *) (uintptr_t) change->revision);
}

int tf_fk_digest_at (const tf_service_t *svc, const char *epoch, uint64_t upto, uint64_t *digest,
                     uint64_t *count)
{
    s_replay_t replay = { upto, zhashx_new () };
    int code = s_catchup (svc, 0, epoch, s_replay_change, &replay);
    *digest = 0;
    for (void *r = zhashx_first (replay.revisions); r; r = zhashx_next (replay.revisions))
        *digest += tf_digest_item ((const char *) zhashx_cursor (replay.revisions), (uintptr_t) r);
    *count = zhashx_size (replay.revisions);
    zhashx_destroy (&replay.revisions);
    return code;
}

static bool s_answers (void *arg)
{
    tf_status_t status;
    return tf_fk_status ((const tf_service_t *) arg, &status) == 0;
}

bool tf_fk_wait_ready (const tf_service_t *svc, int timeout_ms)
{
    return tf_test_wait_for (s_answers, (void *) svc, timeout_ms);
}

// --------------------------------------------------------------- writers

int tf_fk_put_many (const char *ingest, const char *prefix, int first, int count, int per_request,
                    size_t summary_bytes)
{
    tf_writer_t *writer = tf_writer_new (ingest);
    if (!writer)
        return -1;
    tf_writer_set_timeout (writer, 5000);
    Techfeed__Milestone **batch = (Techfeed__Milestone **) calloc (per_request, sizeof *batch);
    tf_result_t *results = (tf_result_t *) calloc (per_request, sizeof *results);
    int rc = 0;
    for (int done = 0; done < count && rc == 0;) {
        int n = count - done < per_request ? count - done : per_request;
        for (int i = 0; i < n; i++) {
            char id[100];
            snprintf (id, sizeof id, "%s-%d", prefix, first + done + i);
            batch[i] = tf_fk_record_new (id, 1 + (first + done + i) % TF_SECTOR_MAX, summary_bytes);
        }
        if (tf_writer_put (writer, batch, (size_t) n, false, results) != 0) {
            fprintf (stderr, "faultkit: put failed: %s\n", tf_writer_errstr (writer));
            rc = -1;
        }
        for (int i = 0; i < n; i++) {
            if (rc == 0 && results[i].code != TECHFEED__ERROR_CODE__OK) {
                fprintf (stderr, "faultkit: put %s: %s: %s\n", results[i].id,
                         tf_error_name (results[i].code), results[i].message);
                rc = -1;
            }
            techfeed__milestone__free_unpacked (batch[i], NULL);
        }
        done += n;
    }
    free (results);
    free (batch);
    tf_writer_destroy (&writer);
    return rc;
}

/*  One writer thread and what it saw. */
typedef struct {
    struct _tf_fk_load_t *load;
    int index;
    pthread_t thread;
    char **ids;                    /* its ids */
    Techfeed__Milestone **records; /* one per id, reused */
    uint64_t *acked;               /* puts acknowledged per id */
    uint64_t *acked_rev;           /* highest revision acknowledged per id */
    uint64_t *uncertain;           /* puts given up per id */
    int64_t *sent_ms;              /* per answered request: when it was sent */
    int32_t *latency_us;           /* and how long the answer took */
    size_t samples, capacity;
    tf_fk_load_stats_t stats;
} s_writer_t;

struct _tf_fk_load_t {
    tf_fk_load_config_t config;
    char *endpoint;
    char *prefix;
    s_writer_t *writers;
    atomic_bool stop;
    atomic_uint_fast64_t acked;
    bool joined;
};

static void s_sample (s_writer_t *w, int64_t sent_ms, int64_t latency_us)
{
    if (w->samples == w->capacity) {
        w->capacity = w->capacity ? w->capacity * 2 : 4096;
        w->sent_ms = (int64_t *) realloc (w->sent_ms, w->capacity * sizeof *w->sent_ms);
        w->latency_us = (int32_t *) realloc (w->latency_us, w->capacity * sizeof *w->latency_us);
    }
    w->sent_ms[w->samples] = sent_ms;
    w->latency_us[w->samples] = latency_us > INT32_MAX ? INT32_MAX : (int32_t) latency_us;
    w->samples++;
}

/*  The outcome of one answered request. */
static void s_count (s_writer_t *w, const size_t *index, const tf_result_t *results, int ops)
{
    for (int j = 0; j < ops; j++) {
        size_t k = index[j];
        if (results[j].code == TECHFEED__ERROR_CODE__OK) {
            //  One acknowledged put moves the revision by exactly one; an
            //  earlier put given up without an answer may have moved it too
            uint64_t low = w->acked[k] + 1, high = low + w->uncertain[k];
            if (results[j].revision < low || results[j].revision > high) {
                w->stats.mismatches++;
                snprintf (w->stats.last_error, sizeof w->stats.last_error,
                          "%s acknowledged at revision %" PRIu64 ", expected %" PRIu64 "..%" PRIu64,
                          w->ids[k], results[j].revision, low, high);
            }
            w->acked[k]++;
            if (results[j].revision > w->acked_rev[k])
                w->acked_rev[k] = results[j].revision;
            w->stats.acked++;
            atomic_fetch_add (&w->load->acked, 1);
        } else {
            w->stats.refused++;
            w->stats.full += results[j].code == TECHFEED__ERROR_CODE__STORAGE_FULL;
            w->stats.storage += results[j].code == TECHFEED__ERROR_CODE__STORAGE;
            w->stats.last_refused = results[j].code;
            snprintf (w->stats.last_error, sizeof w->stats.last_error, "%.64s: %s: %.160s",
                      results[j].id, tf_error_name (results[j].code), results[j].message);
        }
    }
}

static void *s_writer_run (void *arg)
{
    s_writer_t *w = (s_writer_t *) arg;
    const tf_fk_load_config_t *c = &w->load->config;
    tf_writer_t *writer = tf_writer_new (w->load->endpoint);
    tf_writer_set_timeout (writer, c->timeout_ms);
    tf_writer_set_retries (writer, c->tries);
    Techfeed__Milestone **batch = (Techfeed__Milestone **) calloc (c->ops, sizeof *batch);
    size_t *index = (size_t *) calloc (c->ops, sizeof *index);
    tf_result_t *results = (tf_result_t *) calloc (c->ops, sizeof *results);
    size_t next = 0;
    for (int request = 0;
         !atomic_load (&w->load->stop) && (c->max_requests == 0 || request < c->max_requests);
         request++) {
        for (int j = 0; j < c->ops; j++) {
            index[j] = (next + j) % c->ids;
            batch[j] = w->records[index[j]];
        }
        next = (next + c->ops) % c->ids;
        int64_t sent_ms = tf_fk_now_ms (), start_us = tf_fk_now_us ();
        int rc;
        while ((rc = tf_writer_put (writer, batch, c->ops, false, results)) != 0) {
            w->stats.no_reply++;
            snprintf (w->stats.last_error, sizeof w->stats.last_error, "%s",
                      tf_writer_errstr (writer));
            if (!c->persist || tf_fk_now_ms () - sent_ms > c->give_up_ms)
                break;
            //  The same request again: the service answers it once
            char id[80];
            snprintf (id, sizeof id, "%s", tf_writer_request_id (writer));
            tf_writer_set_request_id (writer, id);
        }
        if (rc != 0) {
            for (int j = 0; j < c->ops; j++)
                w->uncertain[index[j]]++;
            w->stats.uncertain += (uint64_t) c->ops;
            continue;
        }
        int64_t latency_us = tf_fk_now_us () - start_us;
        s_sample (w, sent_ms, latency_us);
        w->stats.requests++;
        w->stats.replayed += tf_writer_replayed (writer);
        if (latency_us > (int64_t) c->timeout_ms * 1000) {
            w->stats.retried++;
            w->stats.retried_replayed += tf_writer_replayed (writer);
        }
        s_count (w, index, results, c->ops);
        if (c->pause_us)
            usleep ((useconds_t) c->pause_us);
    }
    free (results);
    free (index);
    free (batch);
    tf_writer_destroy (&writer);
    return NULL;
}

tf_fk_load_t *tf_fk_load_start (const tf_fk_load_config_t *config)
{
    zsys_init (); // once, before the threads make sockets
    tf_fk_load_t *self = (tf_fk_load_t *) zmalloc (sizeof *self);
    self->config = *config;
    self->endpoint = strdup (config->endpoint);
    self->prefix = strdup (config->prefix ? config->prefix : "fk");
    tf_fk_load_config_t *c = &self->config;
    c->endpoint = self->endpoint;
    c->prefix = self->prefix;
    if (c->ids < 1)
        c->ids = 1;
    if (c->ops < 1 || c->ops > c->ids)
        c->ops = c->ops < 1 ? 1 : c->ids;
    if (c->timeout_ms <= 0)
        c->timeout_ms = 1000;
    if (c->tries <= 0)
        c->tries = 3;
    atomic_init (&self->stop, false);
    atomic_init (&self->acked, 0);
    self->writers = (s_writer_t *) zmalloc (c->writers * sizeof *self->writers);
    for (int i = 0; i < c->writers; i++) {
        s_writer_t *w = &self->writers[i];
        w->load = self;
        w->index = i;
        w->ids = (char **) zmalloc (c->ids * sizeof *w->ids);
        w->records = (Techfeed__Milestone **) zmalloc (c->ids * sizeof *w->records);
        w->acked = (uint64_t *) zmalloc (c->ids * sizeof *w->acked);
        w->acked_rev = (uint64_t *) zmalloc (c->ids * sizeof *w->acked_rev);
        w->uncertain = (uint64_t *) zmalloc (c->ids * sizeof *w->uncertain);
        for (int k = 0; k < c->ids; k++) {
            if (asprintf (&w->ids[k], "%s-w%d-%d", self->prefix, i, k) < 0)
                abort ();
            //  Spread over every sector, differently per writer
            w->records[k] =
                tf_fk_record_new (w->ids[k], 1 + (k + i * 3) % TF_SECTOR_MAX, c->summary_bytes);
        }
    }
    for (int i = 0; i < c->writers; i++)
        pthread_create (&self->writers[i].thread, NULL, s_writer_run, &self->writers[i]);
    return self;
}

void tf_fk_load_wait (tf_fk_load_t *self)
{
    if (!self || self->joined)
        return;
    for (int i = 0; i < self->config.writers; i++)
        pthread_join (self->writers[i].thread, NULL);
    self->joined = true;
}

void tf_fk_load_stop (tf_fk_load_t *self)
{
    if (!self || self->joined)
        return;
    atomic_store (&self->stop, true);
    for (int i = 0; i < self->config.writers; i++)
        pthread_join (self->writers[i].thread, NULL);
    self->joined = true;
}

void tf_fk_load_destroy (tf_fk_load_t **self_p)
{
    tf_fk_load_t *self = *self_p;
    if (!self)
        return;
    tf_fk_load_stop (self);
    for (int i = 0; i < self->config.writers; i++) {
        s_writer_t *w = &self->writers[i];
        for (int k = 0; k < self->config.ids; k++) {
            free (w->ids[k]);
            techfeed__milestone__free_unpacked (w->records[k], NULL);
        }
        free (w->ids);
        free (w->records);
        free (w->acked);
        free (w->acked_rev);
        free (w->uncertain);
        free (w->sent_ms);
        free (w->latency_us);
    }
    free (self->writers);
    free (self->endpoint);
    free (self->prefix);
    free (self);
    *self_p = NULL;
}

void tf_fk_load_stats (tf_fk_load_t *self, tf_fk_load_stats_t *stats)
{
    memset (stats, 0, sizeof *stats);
    for (int i = 0; i < self->config.writers; i++) {
        const tf_fk_load_stats_t *s = &self->writers[i].stats;
        stats->requests += s->requests;
        stats->acked += s->acked;
        stats->refused += s->refused;
        stats->full += s->full;
        stats->storage += s->storage;
        stats->no_reply += s->no_reply;
        stats->uncertain += s->uncertain;
        stats->replayed += s->replayed;
        stats->retried += s->retried;
        stats->retried_replayed += s->retried_replayed;
        stats->mismatches += s->mismatches;
        if (s->last_refused)
            stats->last_refused = s->last_refused;
        if (s->last_error[0])
            snprintf (stats->last_error, sizeof stats->last_error, "%s", s->last_error);
    }
}

uint64_t tf_fk_load_acked (tf_fk_load_t *self)
{
    return atomic_load (&self->acked);
}

void tf_fk_load_check (tf_fk_load_t *self, zhashx_t *stored, uint64_t *lost, uint64_t *doubled,
                       uint64_t *ids)
{
    *lost = *doubled = *ids = 0;
    for (int i = 0; i < self->config.writers; i++) {
        s_writer_t *w = &self->writers[i];
        for (int k = 0; k < self->config.ids; k++) {
            uint64_t revision = (uintptr_t) zhashx_lookup (stored, w->ids[k]);
            if (w->acked[k])
                (*ids)++;
            if (revision < w->acked_rev[k] || revision < w->acked[k]) {
                (*lost)++;
                fprintf (stderr,
                         "faultkit: LOST %s: stored revision %" PRIu64 ", acknowledged %" PRIu64
                         " (%" PRIu64 " puts)\n",
                         w->ids[k], revision, w->acked_rev[k], w->acked[k]);
            } else if (revision > w->acked[k] + w->uncertain[k]) {
                (*doubled)++;
                fprintf (stderr,
                         "faultkit: DOUBLED %s: stored revision %" PRIu64 ", %" PRIu64
                         " puts acknowledged, %" PRIu64 " uncertain\n",
                         w->ids[k], revision, w->acked[k], w->uncertain[k]);
            }
        }
    }
}

static int s_cmp_i32 (const void *a, const void *b)
{
    int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;
    return (x > y) - (x < y);
}

int64_t tf_fk_load_latency (tf_fk_load_t *self, int64_t from_ms, int64_t to_ms, double p,
                            size_t *count)
{
    size_t n = 0, total = 0;
    for (int i = 0; i < self->config.writers; i++)
        total += self->writers[i].samples;
    int32_t *values = (int32_t *) malloc ((total ? total : 1) * sizeof *values);
    for (int i = 0; i < self->config.writers; i++) {
        const s_writer_t *w = &self->writers[i];
        for (size_t k = 0; k < w->samples; k++)
            if (w->sent_ms[k] >= from_ms && w->sent_ms[k] < to_ms)
                values[n++] = w->latency_us[k];
    }
    if (count)
        *count = n;
    int64_t result = 0;
    if (n) {
        qsort (values, n, sizeof *values, s_cmp_i32);
        size_t rank = (size_t) (p / 100.0 * (double) (n - 1) + 0.5);
        result = values[rank < n ? rank : n - 1];
    }
    free (values);
    return result;
}

// --------------------------------------------------------------- views

typedef struct {
    tf_view_t *view;                         /* NULL until the thread starts it */
    Techfeed__Sector sectors[TF_SECTOR_MAX]; /* held, n = 0: all */
    size_t n;
    char *store;                      /* file of a persistent view, or NULL */
    tf_fk_view_info_t work;           /* kept by the thread */
    tf_fk_view_info_t shown;          /* copy for the test, under the mutex */
    uint64_t last[TF_SECTOR_MAX + 1]; /* sequence of the last change per sector */
} s_view_t;

#define S_VIEWS_MAX 16

struct _tf_fk_views_t {
    char *events, *sync;
    pthread_mutex_t mutex;
    s_view_t *views[S_VIEWS_MAX];
    int count;
    atomic_bool stop;
    pthread_t thread;
};

static void s_view_event (tf_view_t *view, tf_view_event_t what, const Techfeed__Milestone *record,
                          const char *id, void *arg)
{
    s_view_t *v = (s_view_t *) arg;
    switch (what) {
        case TF_VIEW_ADD:
        case TF_VIEW_UPDATE:
        case TF_VIEW_DELETE: {
            uint64_t sequence = tf_view_change_sequence (view);
            int s = record && record->sector >= 1 && record->sector <= TF_SECTOR_MAX
                        ? (int) record->sector
                        : 0;
            if (sequence && s) {
                if (sequence <= v->last[s]) {
                    v->work.order_errors++;
                    fprintf (
                        stderr,
                        "faultkit: view applied seq %" PRIu64 " of %s after %" PRIu64 " (%s %s)\n",
                        sequence, tf_sector_slug (s), v->last[s], tf_view_event_name (what), id);
                }
                v->last[s] = sequence;
            }
            break;
        }
        case TF_VIEW_RESYNC: v->work.resync_events++; break;
        case TF_VIEW_READY: memset (v->last, 0, sizeof v->last); break;
        case TF_VIEW_LOST:
            v->work.lost_events++;
            v->work.lost_at_ms = tf_fk_now_ms ();
            break;
        case TF_VIEW_SAVED: v->work.saved_events++; break;
        case TF_VIEW_RECOVERED:
            v->work.recovered_events++;
            v->work.recovered_at_ms = tf_fk_now_ms ();
            break;
    }
}

static void s_view_report (s_view_t *v)
{
    tf_fk_view_info_t *info = &v->work;
    info->running = true;
    info->state = tf_view_state (v->view);
    info->position = tf_view_position (v->view);
    info->digest = tf_view_digest (v->view);
    info->count = tf_view_count (v->view);
    snprintf (info->epoch, sizeof info->epoch, "%s", tf_view_epoch (v->view));
    tf_view_stats (v->view, &info->stats);
}

static void *s_views_run (void *arg)
{
    tf_fk_views_t *self = (tf_fk_views_t *) arg;
    while (!atomic_load (&self->stop)) {
        pthread_mutex_lock (&self->mutex);
        int count = self->count;
        pthread_mutex_unlock (&self->mutex);
        zmq_pollitem_t items[S_VIEWS_MAX];
        int n_items = 0;
        for (int i = 0; i < count; i++) {
            s_view_t *v = self->views[i];
            if (!v->view) {
                v->view = tf_view_new (self->events, self->sync);
                tf_view_set_sectors (v->view, v->sectors, v->n);
                tf_view_set_callback (v->view, s_view_event, v);
                tf_view_set_timeout (v->view, 2000);
                if (v->store && tf_view_set_store (v->view, v->store) != 0)
                    v->work.failed = true;
                //  -1: it keeps trying from poll, unless the store refused
                if (tf_view_start (v->view) != 0 && !tf_view_socket (v->view))
                    v->work.failed = true;
            } else if (!v->work.failed && tf_view_poll (v->view, 0) < 0 &&
                       !atomic_load (&self->stop) && !zsys_interrupted)
                v->work.failed = true;
            if (v->work.failed && !v->shown.failed)
                fprintf (stderr, "faultkit: view %d failed: %s\n", i, tf_view_errstr (v->view));
            s_view_report (v);
            pthread_mutex_lock (&self->mutex);
            v->shown = v->work;
            pthread_mutex_unlock (&self->mutex);
            if (tf_view_socket (v->view) && !v->work.failed)
                items[n_items++] =
                    (zmq_pollitem_t){ zsock_resolve (tf_view_socket (v->view)), 0, ZMQ_POLLIN, 0 };
        }
        if (n_items)
            zmq_poll (items, n_items, 20);
        else
            usleep (10000);
    }
    return NULL;
}

tf_fk_views_t *tf_fk_views_new (const char *events, const char *sync)
{
    zsys_init ();
    tf_fk_views_t *self = (tf_fk_views_t *) zmalloc (sizeof *self);
    self->events = strdup (events);
    self->sync = strdup (sync);
    pthread_mutex_init (&self->mutex, NULL);
    atomic_init (&self->stop, false);
    pthread_create (&self->thread, NULL, s_views_run, self);
    return self;
}

void tf_fk_views_destroy (tf_fk_views_t **self_p)
{
    tf_fk_views_t *self = *self_p;
    if (!self)
        return;
    atomic_store (&self->stop, true);
    pthread_join (self->thread, NULL);
    for (int i = 0; i < self->count; i++) {
        tf_view_destroy (&self->views[i]->view);
        free (self->views[i]->store);
        free (self->views[i]);
    }
    pthread_mutex_destroy (&self->mutex);
    free (self->events);
    free (self->sync);
    free (self);
    *self_p = NULL;
}

int tf_fk_views_add (tf_fk_views_t *self, const Techfeed__Sector *sectors, size_t n,
                     const char *store)
{
    s_view_t *v = (s_view_t *) zmalloc (sizeof *v);
    v->store = store ? strdup (store) : NULL;
    v->n = n < TF_SECTOR_MAX ? n : TF_SECTOR_MAX;
    if (v->n)
        memcpy (v->sectors, sectors, v->n * sizeof *sectors);
    pthread_mutex_lock (&self->mutex);
    assert (self->count < S_VIEWS_MAX);
    int index = self->count;
    self->views[self->count++] = v;
    pthread_mutex_unlock (&self->mutex);
    return index;
}

void tf_fk_views_info (tf_fk_views_t *self, int index, tf_fk_view_info_t *info)
{
    pthread_mutex_lock (&self->mutex);
    *info = self->views[index]->shown;
    pthread_mutex_unlock (&self->mutex);
}

static bool s_converged (const tf_fk_view_info_t *info, uint64_t digest, uint64_t position)
{
    return info->running && info->state == TF_STATE_LIVE && info->digest == digest &&
           (position == 0 || info->position == position);
}

bool tf_fk_view_wait (tf_fk_views_t *self, int index, uint64_t digest, uint64_t position,
                      int timeout_ms, tf_fk_view_info_t *info)
{
    int64_t deadline = tf_fk_now_ms () + timeout_ms;
    tf_fk_view_info_t local;
    info = info ? info : &local;
    do {
        tf_fk_views_info (self, index, info);
        if (s_converged (info, digest, position))
            return true;
        usleep (10000);
    } while (tf_fk_now_ms () < deadline);
    return false;
}

// --------------------------------------------------------------- view in a process

#define S_REPORT_FORMAT                                                                            \
    "view running=%d state=%d position=%" SCNu64 " digest=%" SCNx64 " count=%" SCNu64              \
    " snapshots=%" SCNu64 " resyncs=%" SCNu64 " catchups=%" SCNu64 " gaps=%" SCNu64                \
    " duplicates=%" SCNu64 " lost=%" SCNu64 " dropped=%" SCNu64 " changes=%" SCNu64                \
    " order_errors=%" SCNu64 " saved=%" SCNu64 " failed=%d epoch=%64s"

static int s_subscriber_main (int argc, char **argv)
{
    //  argv: TEST --subscriber EVENTS SYNC STORE|- [SECTOR...]
    Techfeed__Sector sectors[TF_SECTOR_MAX];
    size_t n = 0;
    const char *store = strcmp (argv[4], "-") != 0 ? argv[4] : NULL;
    for (int i = 5; i < argc && n < TF_SECTOR_MAX; i++) {
        int s = tf_sector_from_slug (argv[i]);
        if (s < 0) {
            fprintf (stderr, "subscriber: %s is not a sector\n", argv[i]);
            return 64;
        }
        sectors[n++] = (Techfeed__Sector) s;
    }
    setvbuf (stdout, NULL, _IOLBF, 0);
    signal (SIGPIPE, SIG_IGN);
    tf_fk_views_t *views = tf_fk_views_new (argv[2], argv[3]);
    tf_fk_views_add (views, sectors, n, store);
    tf_fk_view_info_t last = { 0 };
    int64_t printed = 0;
    while (!zsys_interrupted) {
        tf_fk_view_info_t info;
        tf_fk_views_info (views, 0, &info);
        int64_t now = tf_fk_now_ms ();
        if (memcmp (&info, &last, sizeof info) != 0 || now - printed >= 100) {
            const tf_view_stats_t *s = &info.stats;
            printf ("view running=%d state=%d position=%" PRIu64 " digest=%016" PRIx64
                    " count=%" PRIu64 " snapshots=%" PRIu64 " resyncs=%" PRIu64 " catchups=%" PRIu64
                    " gaps=%" PRIu64 " duplicates=%" PRIu64 " lost=%" PRIu64 " dropped=%" PRIu64
                    " changes=%" PRIu64 " order_errors=%" PRIu64 " saved=%" PRIu64
                    " failed=%d epoch=%s\n",
                    (int) info.running, (int) info.state, info.position, info.digest, info.count,
                    s->snapshots, s->resyncs, s->catchups, s->gaps, s->duplicates, s->lost,
                    s->dropped, s->changes, info.order_errors, info.saved_events, (int) info.failed,
                    info.epoch[0] ? info.epoch : "-");
            last = info;
            printed = now;
        }
        usleep (10000);
    }
    tf_fk_views_destroy (&views);
    return 0;
}

void tf_fk_subscriber_dispatch (int argc, char **argv)
{
    if (argc >= 5 && strcmp (argv[1], "--subscriber") == 0)
        exit (s_subscriber_main (argc, argv));
}

int tf_fk_subscriber_start (tf_fk_subscriber_t *sub, const tf_service_t *svc,
                            const Techfeed__Sector *sectors, size_t n, const char *store)
{
    memset (sub, 0, sizeof *sub);
    sub->fd = -1;
    int fds[2];
    if (pipe (fds))
        return -1;
    const char *argv[5 + TF_SECTOR_MAX + 1] = { "test-subscriber", "--subscriber", svc->events,
                                                svc->sync, store ? store : "-" };
    size_t argc = 5;
    for (size_t i = 0; i < n && i < TF_SECTOR_MAX; i++)
        argv[argc++] = tf_sector_slug (sectors[i]);
    argv[argc] = NULL;
    pid_t pid = fork ();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2 (fds[1], STDOUT_FILENO);
        close (fds[0]);
        close (fds[1]);
        execv ("/proc/self/exe", (char *const *) argv);
        _exit (127);
    }
    close (fds[1]);
    fcntl (fds[0], F_SETFL, O_NONBLOCK);
    sub->pid = pid;
    sub->fd = fds[0];
    return 0;
}

static void s_parse_report (tf_fk_subscriber_t *sub, const char *line)
{
    tf_fk_view_info_t info = { 0 };
    int running, state, failed;
    tf_view_stats_t *s = &info.stats;
    int fields = sscanf (line, S_REPORT_FORMAT, &running, &state, &info.position, &info.digest,
                         &info.count, &s->snapshots, &s->resyncs, &s->catchups, &s->gaps,
                         &s->duplicates, &s->lost, &s->dropped, &s->changes, &info.order_errors,
                         &info.saved_events, &failed, info.epoch);
    if (fields != 17)
        return;
    info.running = running;
    info.failed = failed;
    info.state = (tf_view_state_t) state;
    if (strcmp (info.epoch, "-") == 0)
        info.epoch[0] = 0;
    sub->info = info;
    sub->reports++;
}

bool tf_fk_subscriber_read (tf_fk_subscriber_t *sub, int timeout_ms)
{
    uint64_t before = sub->reports;
    int64_t deadline = tf_fk_now_ms () + timeout_ms;
    while (sub->fd >= 0) {
        char chunk[4096];
        ssize_t got = read (sub->fd, chunk, sizeof chunk - 1);
        if (got > 0) {
            chunk[got] = 0;
            //  Lines may be split across reads: keep the tail
            char *start = chunk;
            char *nl;
            while ((nl = strchr (start, '\n'))) {
                *nl = 0;
                char line[sizeof sub->partial + sizeof chunk];
                snprintf (line, sizeof line, "%s%s", sub->partial, start);
                sub->partial[0] = 0;
                s_parse_report (sub, line);
                start = nl + 1;
            }
            size_t used = strlen (sub->partial);
            snprintf (sub->partial + used, sizeof sub->partial - used, "%s", start);
            continue;
        }
        if (got == 0) { // the child is gone
            close (sub->fd);
            sub->fd = -1;
            break;
        }
        if (errno != EAGAIN && errno != EINTR)
            break;
        int64_t left = deadline - tf_fk_now_ms ();
        if (sub->reports > before || left <= 0)
            break;
        struct pollfd pfd = { sub->fd, POLLIN, 0 };
        poll (&pfd, 1, (int) left);
    }
    return sub->reports > before;
}

bool tf_fk_subscriber_wait (tf_fk_subscriber_t *sub, uint64_t digest, uint64_t position,
                            int timeout_ms)
{
    int64_t deadline = tf_fk_now_ms () + timeout_ms;
    do {
        tf_fk_subscriber_read (sub, 50);
        if (s_converged (&sub->info, digest, position))
            return true;
    } while (tf_fk_now_ms () < deadline && sub->fd >= 0);
    return false;
}

int tf_fk_subscriber_stop (tf_fk_subscriber_t *sub)
{
    int result = sub->pid ? tf_fk_terminate (sub->pid, 10000) : -1;
    sub->pid = 0;
    if (sub->fd >= 0)
        close (sub->fd);
    sub->fd = -1;
    return result;
}

// --------------------------------------------------------------- other processes

pid_t tf_fk_spawn (const tf_service_t *svc, const char *const *argv, const char *log)
{
    pid_t pid = fork ();
    if (pid == 0) {
        int fd = open (log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2 (fd, STDOUT_FILENO);
            dup2 (fd, STDERR_FILENO);
        }
        setenv ("TECHFEED_INGEST", svc->ingest, 1);
        setenv ("TECHFEED_EVENTS", svc->events, 1);
        setenv ("TECHFEED_SYNC", svc->sync, 1);
        execv (argv[0], (char *const *) argv);
        _exit (127);
    }
    return pid;
}

int tf_fk_terminate (pid_t pid, int timeout_ms)
{
    kill (pid, SIGCONT);
    kill (pid, SIGTERM);
    int64_t deadline = tf_fk_now_ms () + timeout_ms;
    int status;
    while (true) {
        pid_t done = waitpid (pid, &status, WNOHANG);
        if (done == pid)
            return tf_test_exit_code (status);
        if (done < 0 || tf_fk_now_ms () > deadline)
            break;
        usleep (5000);
    }
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    return -1;
}

// --------------------------------------------------------------- lossy proxy

struct _tf_fk_proxy_t {
    zactor_t *actor;
    char endpoint[128];
    atomic_uint_fast64_t requests, replies, dropped;
};

typedef struct {
    tf_fk_proxy_t *owner;
    char *ingest;
    int drop_every;
} s_proxy_args_t;

static char *s_request_id_of (zframe_t *body, bool reply)
{
    char *id = NULL;
    if (reply) {
        Techfeed__IngestReply *r =
            techfeed__ingest_reply__unpack (NULL, zframe_size (body), zframe_data (body));
        if (r && r->request_id)
            id = strdup (r->request_id);
        if (r)
            techfeed__ingest_reply__free_unpacked (r, NULL);
    } else {
        Techfeed__IngestRequest *r =
            techfeed__ingest_request__unpack (NULL, zframe_size (body), zframe_data (body));
        if (r && r->request_id)
            id = strdup (r->request_id);
        if (r)
            techfeed__ingest_request__free_unpacked (r, NULL);
    }
    return id;
}

static void s_frame_destroy (void **item)
{
    zframe_destroy ((zframe_t **) item);
}

static void s_proxy_actor (zsock_t *pipe, void *arg)
{
    s_proxy_args_t *args = (s_proxy_args_t *) arg;
    tf_fk_proxy_t *owner = args->owner;
    zsock_t *front = zsock_new (ZMQ_ROUTER);
    zsock_t *back = zsock_new_dealer (args->ingest);
    zsock_set_linger (front, 0);
    zsock_set_linger (back, 0);
    zsock_bind (front, "tcp://127.0.0.1:*");
    char *last = zsock_last_endpoint (front);
    snprintf (owner->endpoint, sizeof owner->endpoint, "%s", last);
    zstr_free (&last);
    //  request_id -> identity of the writer's socket that sent it last
    zhashx_t *route = zhashx_new ();
    zhashx_set_destructor (route, s_frame_destroy);
    uint64_t replies = 0;
    zpoller_t *poller = zpoller_new (pipe, front, back, NULL);
    zsock_signal (pipe, 0);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (!which || which == pipe)
            break; // $TERM or interrupted
        if (which == front) {
            zmsg_t *msg = zmsg_recv (front);
            if (!msg)
                continue;
            zframe_t *identity = zmsg_pop (msg);
            zframe_t *body = zmsg_last (msg);
            char *id = body ? s_request_id_of (body, false) : NULL;
            if (id) {
                zhashx_update (route, id, identity);
                identity = NULL;
                zframe_t *copy = zframe_dup (body);
                zframe_send (&copy, back, 0);
                atomic_fetch_add (&owner->requests, 1);
            }
            free (id);
            zframe_destroy (&identity);
            zmsg_destroy (&msg);
        } else {
            zframe_t *body = zframe_recv (back);
            if (!body)
                continue;
            char *id = s_request_id_of (body, true);
            zframe_t *identity = id ? (zframe_t *) zhashx_lookup (route, id) : NULL;
            if (identity && ++replies % (uint64_t) args->drop_every == 0)
                atomic_fetch_add (&owner->dropped, 1);
            else if (identity) {
                zframe_t *to = zframe_dup (identity);
                zframe_send (&to, front, ZFRAME_MORE);
                zframe_send (&body, front, 0);
                atomic_fetch_add (&owner->replies, 1);
            }
            free (id);
            zframe_destroy (&body);
        }
    }
    zpoller_destroy (&poller);
    zhashx_destroy (&route);
    zsock_destroy (&front);
    zsock_destroy (&back);
    free (args->ingest);
    free (args);
}

tf_fk_proxy_t *tf_fk_proxy_new (const char *ingest, int drop_every)
{
    tf_fk_proxy_t *self = (tf_fk_proxy_t *) zmalloc (sizeof *self);
    atomic_init (&self->requests, 0);
    atomic_init (&self->replies, 0);
    atomic_init (&self->dropped, 0);
    s_proxy_args_t *args = (s_proxy_args_t *) zmalloc (sizeof *args);
    args->owner = self;
    args->ingest = strdup (ingest);
    args->drop_every = drop_every > 0 ? drop_every : 1;
    self->actor = zactor_new (s_proxy_actor, args);
    return self;
}

void tf_fk_proxy_destroy (tf_fk_proxy_t **self_p)
{
    tf_fk_proxy_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    free (self);
    *self_p = NULL;
}

const char *tf_fk_proxy_endpoint (tf_fk_proxy_t *self)
{
    return self->endpoint;
}

void tf_fk_proxy_counts (tf_fk_proxy_t *self, uint64_t *requests, uint64_t *replies,
                         uint64_t *dropped)
{
    *requests = atomic_load (&self->requests);
    *replies = atomic_load (&self->replies);
    *dropped = atomic_load (&self->dropped);
}

// --------------------------------------------------------------- files

int tf_fk_copy_file (const char *from, const char *to)
{
    int in = open (from, O_RDONLY);
    if (in < 0)
        return -1;
    int out = open (to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        close (in);
        return -1;
    }
    char buffer[65536];
    ssize_t got;
    int rc = 0;
    while ((got = read (in, buffer, sizeof buffer)) > 0)
        if (write (out, buffer, (size_t) got) != got) {
            rc = -1;
            break;
        }
    if (got < 0 || fsync (out) != 0)
        rc = -1;
    close (in);
    if (close (out) != 0)
        rc = -1;
    return rc;
}

int tf_fk_backup_db (const char *from, const char *to)
{
    sqlite3 *src = NULL, *dst = NULL;
    int rc = sqlite3_open_v2 (from, &src, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_open (to, &dst);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout (src, 5000);
        sqlite3_backup *backup = sqlite3_backup_init (dst, "main", src, "main");
        if (!backup)
            rc = sqlite3_errcode (dst);
        else {
            //  Busy or locked while the service writes: again a moment
            //  later, for at most 10 s (then the BUSY is the error)
            int64_t deadline = tf_fk_now_ms () + 10000;
            while ((rc = sqlite3_backup_step (backup, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
                if (tf_fk_now_ms () >= deadline)
                    break;
                usleep (10000);
            }
            sqlite3_backup_finish (backup);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
    }
    if (rc != SQLITE_OK)
        fprintf (stderr, "faultkit: backup of %s to %s: %s\n", from, to, sqlite3_errstr (rc));
    sqlite3_close (src);
    sqlite3_close (dst);
    return rc == SQLITE_OK ? 0 : -1;
}

// --------------------------------------------------------------- fixture

int tf_fk_setup_with (void **state, const char *const *args)
{
    *state = tf_test_fixture_new (sizeof (tf_fk_fixture_t), args);
    return *state ? 0 : -1;
}

int tf_fk_setup (void **state)
{
    const char *args[] = { "--heartbeat-ms", "200", NULL };
    return tf_fk_setup_with (state, args);
}

/*  Destroys what the test started on the service, which is left running. */
static void s_fixture_release (tf_fk_fixture_t *self)
{
    tf_fk_views_destroy (&self->views);
    tf_fk_load_destroy (&self->load);
    tf_writer_destroy (&self->writer);
    zhashx_destroy (&self->stored);
}

int tf_fk_teardown (void **state)
{
    tf_fk_fixture_t *self = (tf_fk_fixture_t *) *state;
    s_fixture_release (self);
    int rc = tf_test_service_end (&self->svc);
    free (self);
    return rc;
}

int tf_fk_teardown_any_exit (void **state)
{
    tf_fk_fixture_t *self = (tf_fk_fixture_t *) *state;
    s_fixture_release (self);
    tf_service_cleanup (&self->svc);
    free (self);
    return 0;
}
