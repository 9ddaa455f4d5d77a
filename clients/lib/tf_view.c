/*  tf_view — a local replica kept current by PROTOCOL.md §9.
    See techfeed.h for the API and tf_view_internal.h for the socket-free
    entry points the driver (tf_view_poll) and the unit tests share.

    The state machine, in the words of §9:

      SNAPSHOT  sync request SNAPSHOT; chunks collect in `incoming`; live
                events wait in `buffer`. End mark: the view becomes the
                snapshot (differences reported as ADD/UPDATE/DELETE), P and
                last[s] come from the end mark, then the buffer is replayed.
      LIVE      events: rule 3 (duplicate / chain / gap); heartbeats: rules
                2 and 4 (epoch, head behind P, sector heads, completeness).
                Head behind P must show in two heartbeats in a row: a single
                one may predate the end mark of the last sync.
      CATCHUP   sync request CATCHUP since P; changes applied without the
                chain check; end mark sets P and raises last[s]; buffer
                replayed. TRIMMED (or another epoch) means SNAPSHOT.
      LOST      no heartbeat for 3 intervals; the next heartbeat or event
                starts a CATCHUP (a SNAPSHOT if the view was never complete).

    Memory: messages from the sockets are decoded into an arena reset after
    each one (tf_wire_unpack_in), and what the view keeps (records, events
    buffered during a sync) are tf_clone copies, one malloc block each,
    freed with free().

    Every change to the records goes through s_apply, which also writes it
    into a persistent view's file (tf_mirror.c) inside the open batch;
    s_save ends the batch: it commits epoch, P and last[s] in the same
    transaction. Batches end after each sync reply (a snapshot is one
    batch, written whole at its end mark; a catch-up one per chunk) and
    after each read of the SUB socket (live events), never per event. A
    view whose file fails stops (tf_view_poll returns -1): its file holds
    the last batch committed, and a new view resumes from it.

    Sync requests run to their end inside tf_view_poll (tf_rpc_stream);
    between chunks the SUB socket is drained into the buffer, so live
    events are not left to overflow the socket's high-water mark.
*/
#include <errno.h>

#include "techfeed.h"
#include "tf_clone.h"
#include "tf_index.h"
#include "tf_mirror.h"
#include "tf_rpc.h"
#include "tf_validate.h"
#include "tf_view_internal.h"
#include "tf_wire.h"

#define TF_EVENT_MAX (4u << 20)        /* decode budget of one event */
#define TF_HEARTBEAT_MAX (64u << 10)   /* decode budget of one heartbeat */
#define TF_SYNC_REPLY_MAX (512u << 20) /* decode budget of one sync reply */
#define TF_VIEW_CHUNK 500              /* records or changes per sync reply */
#define TF_BUFFER_MAX 100000           /* events kept while a sync runs */
#define TF_INTERVAL_MS 1000            /* heartbeat interval until the service says */
#define TF_LOST_INTERVALS 3            /* silent intervals before LOST */
#define TF_RETRY_MS 1000               /* pause before retrying a failed sync */
#define TF_DRAIN_MAX 10000             /* messages read in one go */
#define TF_SUB_HWM 10000               /* receive high-water mark, messages */
#define TF_EPOCH_MAX 64                /* longest epoch accepted (the service makes 32) */
#define TF_BEHIND_PROOF 2              /* heartbeats in a row below P that prove it */
#define TF_ARENA_FIRST (16u << 10)     /* the arena's first block: a few events */
#define TF_ARENA_KEEP (1u << 20)       /* arena kept between messages, at most */

struct _tf_view_t {
    char *events_ep;                         /* PUB endpoint to connect */
    char *sync_ep;                           /* sync ROUTER endpoint to connect */
    zsock_t *sub;                            /* SUB socket; NULL before start and detached */
    tf_rpc_t *rpc;                           /* DEALER to sync; NULL before start and detached */
    int timeout_ms;                          /* wait for one sync reply */
    tf_arena_t *arena;                       /* what a PUB message decodes into */
    bool filtered;                           /* holds some sectors only */
    bool held[TF_SECTOR_MAX + 1];            /* sectors held, by value */
    Techfeed__Sector sectors[TF_SECTOR_MAX]; /* the same as a list, for filters */
    size_t n_sectors;                        /* entries in sectors; 0 when not filtered */
    tf_view_state_t state;                   /* where in §9 */
    bool complete;                           /* a snapshot was applied since the last resync */
    char epoch[TF_EPOCH_MAX + 1];            /* epoch of the records, "" before a snapshot */
    uint64_t position;                       /* P */
    uint64_t last[TF_SECTOR_MAX + 1];        /* last[s], by sector value */
    tf_index_t *records;                     /* id -> Techfeed__Milestone clone (a), owned */
    size_t walk;                             /* tf_view_first/next's place in records */
    uint64_t digest;                         /* §10 over records */
    Techfeed__Milestone **incoming;          /* snapshot being read, clones, in arrival order */
    size_t incoming_len, incoming_cap;
    char incoming_epoch[TF_EPOCH_MAX + 1]; /* epoch of that snapshot */
    zlistx_t *buffer;                      /* Techfeed__ChangeEvent clones, owned */
    bool syncing;                          /* a sync request is running */
    bool recovering;                       /* the running catch-up was started by LOST */
    int64_t retry_at;                      /* no sync before this (monotonic ms) */
    int64_t heard_at;                      /* last heartbeat (monotonic ms) */
    int64_t interval_ms;                   /* heartbeat interval the service announced */
    int behind;                            /* heartbeats in a row with head below P */
    Techfeed__SyncRequest request;         /* the running sync request */
    Techfeed__Filter filter;               /* its filter, pointing at sectors */
    tf_view_fn *fn;                        /* application callback, or NULL */
    void *arg;                             /* for fn */
    uint64_t change_sequence;              /* sequence of the change in a callback */
    tf_view_stats_t stats;                 /* counters */
    tf_curve_t *curve;                     /* CURVE settings, or NULL: plain */
    tf_mirror_t *mirror;                   /* persistent view's file, or NULL */
    tf_mirror_state_t saved;               /* the position the file holds */
    bool failed;                           /* the file failed: the view stopped */
    bool resumed;                          /* loaded from the file, not yet caught up */
    size_t batch_changes;                  /* changes in the open batch */
    const char *batch_kind;                /* "snapshot" / "catch-up" that ended in it */
    char errstr[700];                      /* last error or reason */
};

// --------------------------------------------------------------- helpers

/*  Records and events the view keeps are clones: one block each. */
static void s_clone_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

/*  The view's record with `id`, or NULL. */
static Techfeed__Milestone *s_record (const tf_view_t *self, const char *id)
{
    tf_index_value_t value;
    return tf_index_get (self->records, id, &value) ? (Techfeed__Milestone *) (uintptr_t) value.a
                                                    : NULL;
}

/*  Keeps `record` (a clone, handed over) under its id. */
static void s_record_keep (tf_view_t *self, Techfeed__Milestone *record)
{
    tf_index_set (self->records, record->id, (tf_index_value_t){ (uintptr_t) record, 0 });
}

/*  Frees every record and the table. */
static void s_records_free (tf_view_t *self)
{
    size_t cursor = 0;
    tf_index_value_t value;
    while (tf_index_next (self->records, &cursor, NULL, &value))
        free ((void *) (uintptr_t) value.a);
    tf_index_destroy (&self->records);
}

/*  Frees every record, leaving an empty table. */
static void s_records_purge (tf_view_t *self)
{
    s_records_free (self);
    self->records = tf_index_new ();
}

static Techfeed__Milestone *s_record_copy (const Techfeed__Milestone *record)
{
    return (Techfeed__Milestone *) tf_clone (&record->base);
}

static Techfeed__ChangeEvent *s_event_copy (const Techfeed__ChangeEvent *event)
{
    return (Techfeed__ChangeEvent *) tf_clone (&event->base);
}

static void s_notify (tf_view_t *self, tf_view_event_t what, const Techfeed__Milestone *record,
                      const char *id)
{
    if (self->fn)
        self->fn (self, what, record, id ? id : "", self->arg);
}

/*  Frees the records of an unfinished snapshot. */
static void s_incoming_purge (tf_view_t *self)
{
    for (size_t i = 0; i < self->incoming_len; i++)
        free (self->incoming[i]);
    self->incoming_len = 0;
    self->incoming_epoch[0] = 0;
}

static int s_by_id (const void *a, const void *b)
{
    return strcmp ((*(Techfeed__Milestone *const *) a)->id,
                   (*(Techfeed__Milestone *const *) b)->id);
}

/*  One record of a snapshot being normalised: its place of arrival. */
typedef struct {
    Techfeed__Milestone *record;
    size_t arrival;
} s_arrival_t;

static int s_by_id_then_arrival (const void *a, const void *b)
{
    const s_arrival_t *x = (const s_arrival_t *) a, *y = (const s_arrival_t *) b;
    int c = strcmp (x->record->id, y->record->id);
    return c ? c : (x->arrival > y->arrival) - (x->arrival < y->arrival);
}

/*  The service sends a snapshot in id order, each id once; anything else
    is sorted here, the last copy of an id kept. */
static void s_incoming_sort (tf_view_t *self)
{
    size_t n = self->incoming_len;
    bool sorted = true;
    for (size_t i = 1; sorted && i < n; i++)
        sorted = strcmp (self->incoming[i - 1]->id, self->incoming[i]->id) < 0;
    if (sorted)
        return;
    s_arrival_t *all = (s_arrival_t *) zmalloc (n * sizeof *all);
    for (size_t i = 0; i < n; i++)
        all[i] = (s_arrival_t){ self->incoming[i], i };
    qsort (all, n, sizeof *all, s_by_id_then_arrival);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && strcmp (all[i].record->id, all[i + 1].record->id) == 0)
            free (all[i].record);
        else
            self->incoming[kept++] = all[i].record;
    }
    self->incoming_len = kept;
    free (all);
}

static bool s_incoming_has (tf_view_t *self, const char *id)
{
    Techfeed__Milestone key = TECHFEED__MILESTONE__INIT, *probe = &key;
    key.id = (char *) id;
    return bsearch (&probe, self->incoming, self->incoming_len, sizeof probe, s_by_id) != NULL;
}

static void s_bad (tf_view_t *self, const char *what, const char *why)
{
    self->stats.bad_messages++;
    zsys_warning ("techfeed view: %s ignored: %s", what, why);
}

// --------------------------------------------------------------- the file

/*  The file failed: the view stops where the file's last batch is. */
static void s_store_failed (tf_view_t *self)
{
    snprintf (self->errstr, sizeof self->errstr,
              "%s; the view stopped (a new one resumes from "
              "the file)",
              tf_mirror_errstr (self->mirror));
    tf_mirror_rollback (self->mirror);
    self->failed = true;
}

/*  A persistent view writes one change into the open batch. */
static void s_store (tf_view_t *self, const Techfeed__Milestone *record, const char *id)
{
    if (!self->mirror || self->failed)
        return;
    if ((record ? tf_mirror_put (self->mirror, record) : tf_mirror_delete (self->mirror, id)) != 0)
        s_store_failed (self);
    else
        self->batch_changes++;
}

/*  `sectors` as a view keeps them: each once, by value, none when all ten
    are named (the same as none). The count, or -1 with the reason in err
    when one is not a sector. */
static int s_sector_set (const Techfeed__Sector *sectors, size_t n, Techfeed__Sector *out,
                         char *err, size_t errlen)
{
    bool held[TF_SECTOR_MAX + 1] = { false };
    for (size_t i = 0; i < n; i++) {
        if (!tf_sector_slug (sectors[i])) {
            snprintf (err, errlen, "%d is not a sector", (int) sectors[i]);
            return -1;
        }
        held[sectors[i]] = true;
    }
    int count = 0;
    for (int s = 1; s <= TF_SECTOR_MAX; s++)
        if (held[s])
            out[count++] = (Techfeed__Sector) s;
    return count < TF_SECTOR_MAX ? count : 0;
}

/*  A sector set (s_sector_set's) as the file writes it: "" or "space,rail". */
static void s_filter_text (const Techfeed__Sector *sectors, size_t n, char *out, size_t size)
{
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen (out);
        snprintf (out + len, size - len, "%s%s", i ? "," : "", tf_sector_slug (sectors[i]));
    }
}

/*  The view's sector filter as the file writes it. */
static void s_sectors_text (tf_view_t *self, char *out, size_t size)
{
    s_filter_text (self->sectors, self->n_sectors, out, size);
}

/*  -1 with the refusal in err when the file at `path`, made for sectors
    `file`, holds a snapshot (`epoch` not "") of other sectors than
    `wanted` (both as s_filter_text writes them); else 0. */
static int s_filter_check (const char *path, const char *epoch, const char *file,
                           const char *wanted, char *err, size_t errlen)
{
    if (!epoch[0] || strcmp (file, wanted) == 0)
        return 0;
    snprintf (err, errlen,
              "%s mirrors sectors '%s', not '%s': a mirror file keeps the sectors it was made "
              "with (use another file, or delete this one to start over)",
              path, file[0] ? file : "all", wanted[0] ? wanted : "all");
    return -1;
}

/*  Ends the batch: epoch, P and last[s] into it, commit. Nothing to do
    when no change was written and the position has not moved. */
static void s_save (tf_view_t *self)
{
    if (!self->mirror || self->failed || !self->epoch[0])
        return;
    tf_mirror_state_t state = { .position = self->position };
    snprintf (state.epoch, sizeof state.epoch, "%s", self->epoch);
    memcpy (state.last, self->last, sizeof state.last);
    s_sectors_text (self, state.sectors, sizeof state.sectors);
    bool moved = strcmp (state.epoch, self->saved.epoch) != 0 ||
                 state.position != self->saved.position ||
                 memcmp (state.last, self->saved.last, sizeof state.last) != 0;
    if (!tf_mirror_in_batch (self->mirror) && !moved && !self->batch_kind)
        return;
    if (tf_mirror_commit (self->mirror, &state) != 0) {
        s_store_failed (self);
        return;
    }
    self->saved = state;
    const char *kind = self->batch_kind                   ? self->batch_kind
                       : self->state == TF_STATE_CATCHUP  ? "catch-up"
                       : self->state == TF_STATE_SNAPSHOT ? "snapshot"
                                                          : "live";
    if (self->batch_changes > 0 || self->batch_kind) {
        char what[200];
        snprintf (what, sizeof what, "%s: %zu %s, position %" PRIu64 ", %zu records", kind,
                  self->batch_changes, self->batch_changes == 1 ? "change" : "changes",
                  self->position, tf_index_size (self->records));
        s_notify (self, TF_VIEW_SAVED, NULL, what);
    }
    self->batch_changes = 0;
    self->batch_kind = NULL;
}

// --------------------------------------------------------------- the one place changes land

/*  Whether two records pack to the same bytes. */
static bool s_same_record (const Techfeed__Milestone *a, const Techfeed__Milestone *b)
{
    size_t size = protobuf_c_message_get_packed_size (&a->base);
    if (size != protobuf_c_message_get_packed_size (&b->base))
        return false;
    uint8_t *packed = (uint8_t *) malloc (2 * size + 1);
    if (!packed)
        abort ();
    protobuf_c_message_pack (&a->base, packed);
    protobuf_c_message_pack (&b->base, packed + size);
    bool same = memcmp (packed, packed + size, size) == 0;
    free (packed);
    return same;
}

/*  Whether `record` is what the view holds as `old` already. Within an
    epoch a live change's revision says so, as changes come in order. A
    snapshot's record (`sequence` 0) is compared whole: revisions start
    at 1 again after a delete, and in a new epoch (another database), so
    the same revision may hold other contents. */
static bool s_held_already (const Techfeed__Milestone *old, const Techfeed__Milestone *record,
                            uint64_t sequence)
{
    if (!old || old->revision != record->revision)
        return false;
    return sequence != 0 || s_same_record (old, record);
}

/*  Applies one change to the records: `record` (a clone, handed over) for a
    put, NULL for a delete of `id`. `sequence` 0 for snapshot differences.
    Keeps the digest and fires the callback. Returns 1 when the view
    changed, 0 when not (held already, delete of an absent id). */
static int s_apply (tf_view_t *self, Techfeed__Milestone *record, const char *id, uint64_t sequence)
{
    Techfeed__Milestone *old = s_record (self, id);
    self->change_sequence = sequence;
    if (!record) {
        if (!old)
            return 0;
        s_store (self, NULL, id);
        self->digest -= tf_digest_item (id, old->revision);
        self->stats.changes++;
        s_notify (self, TF_VIEW_DELETE, old, old->id); // before it goes
        tf_index_remove (self->records, id);
        free (old);
        self->change_sequence = 0;
        return 1;
    }
    if (s_held_already (old, record, sequence)) {
        free (record);
        return 0;
    }
    s_store (self, record, record->id);
    if (old)
        self->digest -= tf_digest_item (old->id, old->revision);
    self->digest += tf_digest_item (record->id, record->revision);
    s_record_keep (self, record);
    self->stats.changes++;
    s_notify (self, old ? TF_VIEW_UPDATE : TF_VIEW_ADD, record, record->id);
    free (old);
    self->change_sequence = 0;
    return 1;
}

/*  The view's position moves only here and in s_change (P by one). */
static void s_set_position (tf_view_t *self, const char *epoch, uint64_t position,
                            const uint64_t *heads, bool exact)
{
    if (epoch != self->epoch)
        snprintf (self->epoch, sizeof self->epoch, "%s", epoch);
    self->position = position;
    for (int s = 1; s <= TF_SECTOR_MAX; s++) {
        if (!self->held[s])
            self->last[s] = 0;
        else if (exact || heads[s] > self->last[s])
            self->last[s] = heads[s];
    }
}

/*  Sector heads of a reply or heartbeat as an array by sector value. */
static void s_heads (Techfeed__SectorHead *const *list, size_t n, uint64_t heads[TF_SECTOR_MAX + 1])
{
    memset (heads, 0, (TF_SECTOR_MAX + 1) * sizeof heads[0]);
    for (size_t i = 0; i < n; i++)
        if (list[i]->sector >= 1 && list[i]->sector <= TF_SECTOR_MAX)
            heads[list[i]->sector] = list[i]->sequence;
}

// --------------------------------------------------------------- transitions

/*  Rule 2 / TRIMMED: drop the view, take a snapshot. The records stay
    readable until the snapshot replaces them. */
static void s_resync (tf_view_t *self, const char *reason)
{
    snprintf (self->errstr, sizeof self->errstr, "%s", reason);
    self->behind = 0;
    self->stats.resyncs++;
    self->state = TF_STATE_SNAPSHOT;
    self->syncing = false;
    self->recovering = false;
    self->retry_at = 0;
    s_incoming_purge (self);
    zlistx_purge (self->buffer);
    if (self->complete)
        s_notify (self, TF_VIEW_RESYNC, NULL, reason);
    self->complete = false;
}

static void s_catchup (tf_view_t *self, const char *reason)
{
    snprintf (self->errstr, sizeof self->errstr, "%s", reason);
    self->behind = 0;
    self->stats.catchups++;
    self->state = TF_STATE_CATCHUP;
    self->retry_at = 0;
}

/*  Out of LOST: catch up from P, or take the snapshot never finished. */
static void s_recover (tf_view_t *self)
{
    if (self->complete) {
        s_catchup (self, "the service is heard again");
        self->recovering = true;
    } else {
        self->state = TF_STATE_SNAPSHOT;
        self->retry_at = 0;
    }
}

static void s_buffer_take (tf_view_t *self, Techfeed__ChangeEvent *event)
{
    if (zlistx_size (self->buffer) >= TF_BUFFER_MAX) {
        //  Dropping is safe: the chain check or a heartbeat finds the gap
        self->stats.dropped++;
        free (event);
        return;
    }
    zlistx_add_end (self->buffer, event);
}

// --------------------------------------------------------------- events

/*  Rule 3 for one change of sector s. `chain`: check sector_prev_sequence
    (live events); catch-up changes skip it. 0 when applied or dropped as a
    duplicate, -1 on a gap. */
static int s_change (tf_view_t *self, const Techfeed__ChangeEvent *event, bool chain)
{
    int s = event->sector;
    if (!self->held[s])
        return 0;
    if (event->sequence <= self->last[s]) {
        self->stats.duplicates++;
        return 0;
    }
    uint64_t prev = event->has_sector_prev_sequence ? event->sector_prev_sequence : 0;
    if (chain && prev != self->last[s]) {
        self->stats.gaps++;
        return -1;
    }
    if (event->kind == TECHFEED__CHANGE_KIND__CHANGE_PUT) {
        Techfeed__Milestone *copy = s_record_copy (event->record);
        if (!copy->has_revision) {
            copy->has_revision = 1;
            copy->revision = event->revision;
        }
        s_apply (self, copy, copy->id, event->sequence);
    } else
        s_apply (self, NULL, event->id, event->sequence);
    self->last[s] = event->sequence;
    if (!self->filtered && event->sequence == self->position + 1)
        self->position = event->sequence;
    return 0;
}

/*  NULL when the event is consistent, else what is wrong. */
static const char *s_event_problem (const Techfeed__ChangeEvent *event)
{
    if (!event->epoch || !*event->epoch || strlen (event->epoch) > TF_EPOCH_MAX)
        return "no valid epoch";
    if (!event->has_sequence || event->sequence == 0)
        return "no sequence";
    if (!event->has_sector || !tf_sector_slug (event->sector))
        return "no sector";
    if (!event->id || !tf_valid_id (event->id))
        return "no valid id";
    if (event->kind == TECHFEED__CHANGE_KIND__CHANGE_PUT) {
        const Techfeed__Milestone *r = event->record;
        if (!r || !r->id || strcmp (r->id, event->id) != 0)
            return "put without its record";
        if (r->has_sector && r->sector != event->sector)
            return "record sector differs from the event's";
    } else if (event->kind != TECHFEED__CHANGE_KIND__CHANGE_DELETE)
        return "unknown kind";
    return NULL;
}

/*  A valid live event, by state. */
static void s_on_event (tf_view_t *self, const Techfeed__ChangeEvent *event)
{
    if (self->state == TF_STATE_LIVE) {
        if (strcmp (event->epoch, self->epoch) != 0) {
            s_resync (self, "the service's epoch changed");
            s_buffer_take (self, s_event_copy (event));
        } else if (s_change (self, event, true) != 0) {
            char reason[80];
            snprintf (reason, sizeof reason, "events of sector %s were lost",
                      tf_sector_slug (event->sector));
            s_catchup (self, reason);
            s_buffer_take (self, s_event_copy (event));
        }
        return;
    }
    s_buffer_take (self, s_event_copy (event));
    if (self->state == TF_STATE_LOST)
        s_recover (self);
}

/*  After an end mark: the buffered events by rule 3, until one finds a
    gap (the rest wait for that catch-up). Events of another epoch predate
    the records and are dropped; a real epoch change shows in the next
    heartbeat. */
static void s_replay (tf_view_t *self)
{
    zlistx_t *pending = self->buffer;
    self->buffer = zlistx_new ();
    zlistx_set_destructor (self->buffer, s_clone_destroy);
    Techfeed__ChangeEvent *event;
    while ((event = (Techfeed__ChangeEvent *) zlistx_detach (pending, NULL))) {
        if (self->state != TF_STATE_LIVE)
            s_buffer_take (self, event);
        else {
            if (strcmp (event->epoch, self->epoch) == 0)
                s_on_event (self, event);
            free (event);
        }
    }
    zlistx_destroy (&pending);
}

void tf_view_feed_event (tf_view_t *self, const Techfeed__ChangeEvent *event, int64_t now_ms)
{
    assert (self && event);
    const char *problem = s_event_problem (event);
    if (problem) {
        s_bad (self, "event", problem);
        return;
    }
    //  An event ends LOST as a heartbeat does (rule 6): the silence is over,
    //  or the next tick would call it LOST again and drop the catch-up
    if (self->state == TF_STATE_LOST)
        self->heard_at = now_ms;
    s_on_event (self, event);
}

// --------------------------------------------------------------- heartbeats

void tf_view_feed_heartbeat (tf_view_t *self, const Techfeed__Heartbeat *heartbeat, int64_t now_ms)
{
    assert (self && heartbeat);
    if (!heartbeat->epoch || !*heartbeat->epoch || strlen (heartbeat->epoch) > TF_EPOCH_MAX ||
        !heartbeat->has_head_sequence) {
        s_bad (self, "heartbeat", "no epoch or head");
        return;
    }
    self->heard_at = now_ms;
    if (heartbeat->has_interval_ms && heartbeat->interval_ms > 0)
        self->interval_ms = heartbeat->interval_ms;
    if (self->state == TF_STATE_LOST) {
        s_recover (self);
        return;
    }
    //  Heartbeats met while a sync runs predate its end mark: liveness only
    if (self->state != TF_STATE_LIVE)
        return;
    char reason[120];
    if (strcmp (heartbeat->epoch, self->epoch) != 0) {
        s_resync (self, "the service's epoch changed");
        return;
    }
    //  Rule 2, head below P. One heartbeat is not proof: one published
    //  before the end mark of our last sync can arrive after it (another
    //  connection), showing the head as it was then. Two in a row are.
    if (heartbeat->head_sequence < self->position) {
        if (++self->behind < TF_BEHIND_PROOF)
            return;
        snprintf (reason, sizeof reason,
                  "the service went back in time (head %" PRIu64 " below position %" PRIu64 ")",
                  heartbeat->head_sequence, self->position);
        s_resync (self, reason);
        return;
    }
    self->behind = 0;
    uint64_t heads[TF_SECTOR_MAX + 1];
    s_heads (heartbeat->sector_heads, heartbeat->n_sector_heads, heads);
    bool complete = true;
    for (int s = 1; s <= TF_SECTOR_MAX; s++) {
        if (!self->held[s])
            continue;
        if (heads[s] > self->last[s]) {
            self->stats.gaps++;
            snprintf (reason, sizeof reason, "the last events of sector %s were lost",
                      tf_sector_slug (s));
            s_catchup (self, reason);
            return;
        }
        if (heads[s] != self->last[s])
            complete = false;
    }
    if (complete && heartbeat->head_sequence > self->position)
        self->position = heartbeat->head_sequence;
}

void tf_view_feed_tick (tf_view_t *self, int64_t now_ms)
{
    if (self->state == TF_STATE_CONNECTING || self->state == TF_STATE_LOST)
        return;
    int64_t silence = now_ms - self->heard_at;
    if (silence <= TF_LOST_INTERVALS * self->interval_ms)
        return;
    snprintf (self->errstr, sizeof self->errstr, "no heartbeat for %" PRId64 " ms", silence);
    self->state = TF_STATE_LOST;
    self->stats.lost++;
    self->syncing = false;
    self->recovering = false;
    s_incoming_purge (self);
    s_notify (self, TF_VIEW_LOST, NULL, self->errstr);
}

void tf_view_feed_message (tf_view_t *self, const char *topic, size_t topic_size,
                           const uint8_t *data, size_t size, int64_t now_ms)
{
    char err[200];
    size_t hb_len = strlen (TF_HEARTBEAT_TOPIC);
    if (topic_size == hb_len && memcmp (topic, TF_HEARTBEAT_TOPIC, hb_len) == 0) {
        Techfeed__Heartbeat *hb = (Techfeed__Heartbeat *) tf_wire_unpack_in (
            self->arena, &techfeed__heartbeat__descriptor, data, size, TF_HEARTBEAT_MAX, err,
            sizeof err);
        if (!hb)
            s_bad (self, "heartbeat", err);
        else
            tf_view_feed_heartbeat (self, hb, now_ms);
        tf_arena_reset (self->arena);
        return;
    }
    Techfeed__ChangeEvent *event = (Techfeed__ChangeEvent *) tf_wire_unpack_in (
        self->arena, &techfeed__change_event__descriptor, data, size, TF_EVENT_MAX, err,
        sizeof err);
    const char *slug = event && event->has_sector ? tf_sector_slug (event->sector) : NULL;
    if (!event)
        s_bad (self, "event", err);
    else if (!slug || strlen (slug) != topic_size || memcmp (slug, topic, topic_size) != 0)
        s_bad (self, "event", "topic is not the event's sector");
    else
        tf_view_feed_event (self, event, now_ms);
    tf_arena_reset (self->arena);
}

// --------------------------------------------------------------- sync

/*  Where a catch-up starts. The view holds every change of sector s up
    to max (P, last[s]) (rule 3 applies a change only after the one before
    it in s), so it needs what comes after the smallest of these over its
    sectors. For a filtered view that is often well past P, which moves
    only at complete heartbeats and end marks. */
static uint64_t s_catchup_since (tf_view_t *self)
{
    uint64_t since = UINT64_MAX;
    for (int s = 1; s <= TF_SECTOR_MAX; s++)
        if (self->held[s]) {
            uint64_t complete = self->last[s] > self->position ? self->last[s] : self->position;
            since = complete < since ? complete : since;
        }
    return since == UINT64_MAX ? self->position : since;
}

const Techfeed__SyncRequest *tf_view_sync_begin (tf_view_t *self, int64_t now_ms)
{
    if (self->syncing || now_ms < self->retry_at)
        return NULL;
    if (self->state != TF_STATE_SNAPSHOT && self->state != TF_STATE_CATCHUP)
        return NULL;
    Techfeed__SyncRequest *r = &self->request;
    techfeed__sync_request__init (r);
    r->has_version = r->has_kind = r->has_chunk_size = 1;
    r->version = TF_PROTOCOL_VERSION;
    r->chunk_size = TF_VIEW_CHUNK;
    if (self->filtered) {
        techfeed__filter__init (&self->filter);
        self->filter.n_sectors = self->n_sectors;
        self->filter.sectors = self->sectors;
        r->filter = &self->filter;
    }
    if (self->state == TF_STATE_SNAPSHOT) {
        r->kind = TECHFEED__SYNC_KIND__SYNC_SNAPSHOT;
        s_incoming_purge (self);
    } else {
        r->kind = TECHFEED__SYNC_KIND__SYNC_CATCHUP;
        r->has_since_sequence = 1;
        r->since_sequence = s_catchup_since (self);
        r->epoch = self->epoch;
    }
    self->syncing = true;
    return r;
}

void tf_view_sync_failed (tf_view_t *self, const char *reason, int64_t now_ms)
{
    snprintf (self->errstr, sizeof self->errstr, "%s", reason);
    self->syncing = false;
    self->retry_at = now_ms + TF_RETRY_MS;
    if (self->state == TF_STATE_SNAPSHOT)
        s_incoming_purge (self);
}

/*  Snapshot end mark: the view becomes the snapshot. */
static void s_finish_snapshot (tf_view_t *self, const Techfeed__SyncReply *end)
{
    uint64_t heads[TF_SECTOR_MAX + 1];
    s_heads (end->sector_heads, end->n_sector_heads, heads);
    s_set_position (self, self->incoming_epoch, end->sequence, heads, true);
    //  Records the snapshot no longer has go first, then its own
    s_incoming_sort (self);
    zlistx_t *gone = zlistx_new ();
    zlistx_set_destructor (gone, (czmq_destructor *) zstr_free);
    size_t cursor = 0;
    const char *held;
    while (tf_index_next (self->records, &cursor, &held, NULL))
        if (!s_incoming_has (self, held))
            zlistx_add_end (gone, strdup (held));
    for (char *id = (char *) zlistx_first (gone); id; id = (char *) zlistx_next (gone))
        s_apply (self, NULL, id, 0);
    zlistx_destroy (&gone);
    for (size_t i = 0; i < self->incoming_len; i++)
        s_apply (self, self->incoming[i], self->incoming[i]->id, 0);
    self->incoming_len = 0; // the records now belong to the view
    self->incoming_epoch[0] = 0;
    self->syncing = false;
    self->complete = true;
    self->resumed = false;
    self->state = TF_STATE_LIVE;
    self->stats.snapshots++;
    self->batch_kind = "snapshot";
    s_notify (self, TF_VIEW_READY, NULL, "snapshot applied");
    s_replay (self);
}

/*  Catch-up end mark: P and last[s] from it, then the buffer. */
static void s_finish_catchup (tf_view_t *self, const Techfeed__SyncReply *end)
{
    uint64_t heads[TF_SECTOR_MAX + 1];
    s_heads (end->sector_heads, end->n_sector_heads, heads);
    uint64_t position = end->sequence > self->position ? end->sequence : self->position;
    s_set_position (self, self->epoch, position, heads, false);
    self->syncing = false;
    self->state = TF_STATE_LIVE;
    self->batch_kind = "catch-up";
    if (self->recovering) {
        self->recovering = false;
        s_notify (self, TF_VIEW_RECOVERED, NULL, "caught up");
    }
    if (self->resumed) {
        self->resumed = false;
        s_notify (self, TF_VIEW_READY, NULL, "caught up from the stored position");
    }
    s_replay (self);
}

/*  Snapshot records into `incoming`, copied. */
static void s_snapshot_chunk (tf_view_t *self, const Techfeed__SyncReply *reply)
{
    for (size_t i = 0; i < reply->n_records; i++) {
        const Techfeed__Milestone *r = reply->records[i];
        if (!r->id || !tf_valid_id (r->id) || !r->has_sector || r->sector < 1 ||
            r->sector > TF_SECTOR_MAX || !r->has_revision) {
            s_bad (self, "snapshot record", "no valid id, sector or revision");
            continue;
        }
        if (!self->held[r->sector])
            continue;
        Techfeed__Milestone *kept = s_record_copy (r);
        if (self->incoming_len == self->incoming_cap) {
            self->incoming_cap = self->incoming_cap ? self->incoming_cap * 2 : 1024;
            self->incoming = (Techfeed__Milestone **) realloc (
                self->incoming, self->incoming_cap * sizeof *self->incoming);
            assert (self->incoming);
        }
        self->incoming[self->incoming_len++] = kept;
    }
}

static int s_sync_reply (tf_view_t *self, const Techfeed__SyncReply *reply, int64_t now_ms)
{
    if (!self->syncing)
        return TF_VIEW_SYNC_FAIL;
    int code = reply->has_code ? (int) reply->code : TECHFEED__ERROR_CODE__OK;
    char reason[300];
    if (code == TECHFEED__ERROR_CODE__TRIMMED && self->state == TF_STATE_CATCHUP) {
        snprintf (reason, sizeof reason, "catch-up impossible: %s",
                  reply->message ? reply->message : "log trimmed");
        s_resync (self, reason);
        return TF_VIEW_SYNC_DONE;
    }
    if (code != TECHFEED__ERROR_CODE__OK || !reply->epoch || !*reply->epoch ||
        strlen (reply->epoch) > TF_EPOCH_MAX) {
        snprintf (reason, sizeof reason, "%s refused: %s: %s",
                  self->state == TF_STATE_SNAPSHOT ? "snapshot" : "catch-up", tf_error_name (code),
                  reply->message ? reply->message : "no epoch");
        tf_view_sync_failed (self, reason, now_ms);
        return TF_VIEW_SYNC_FAIL;
    }
    bool end = reply->has_end && reply->end;
    if (self->state == TF_STATE_SNAPSHOT) {
        if (!self->incoming_epoch[0])
            snprintf (self->incoming_epoch, sizeof self->incoming_epoch, "%s", reply->epoch);
        else if (strcmp (self->incoming_epoch, reply->epoch) != 0) {
            //  The service changed epoch under the snapshot: start again
            self->syncing = false;
            s_incoming_purge (self);
            return TF_VIEW_SYNC_DONE;
        }
        s_snapshot_chunk (self, reply);
        if (!end)
            return TF_VIEW_SYNC_MORE;
        s_finish_snapshot (self, reply);
        return TF_VIEW_SYNC_DONE;
    }
    if (self->state != TF_STATE_CATCHUP) {
        self->syncing = false; // LOST meanwhile: this sync no longer counts
        return TF_VIEW_SYNC_DONE;
    }
    if (strcmp (reply->epoch, self->epoch) != 0) {
        s_resync (self, "the service's epoch changed");
        return TF_VIEW_SYNC_DONE;
    }
    for (size_t i = 0; i < reply->n_changes; i++) {
        const char *problem = s_event_problem (reply->changes[i]);
        if (problem)
            s_bad (self, "catch-up change", problem);
        else
            s_change (self, reply->changes[i], false);
    }
    if (!end)
        return TF_VIEW_SYNC_MORE;
    s_finish_catchup (self, reply);
    return TF_VIEW_SYNC_DONE;
}

int tf_view_sync_reply (tf_view_t *self, const Techfeed__SyncReply *reply, int64_t now_ms)
{
    if (self->failed)
        return TF_VIEW_SYNC_FAIL;
    int rc = s_sync_reply (self, reply, now_ms);
    s_save (self); // one batch per reply
    return self->failed ? TF_VIEW_SYNC_FAIL : rc;
}

int tf_view_flush (tf_view_t *self)
{
    s_save (self);
    return self->failed ? -1 : 0;
}

// --------------------------------------------------------------- construction

static tf_view_t *s_new (const char *events_ep, const char *sync_ep)
{
    tf_view_t *self = (tf_view_t *) zmalloc (sizeof (tf_view_t));
    self->events_ep = strdup (events_ep ? events_ep : TF_DEFAULT_EVENTS);
    self->sync_ep = strdup (sync_ep ? sync_ep : TF_DEFAULT_SYNC);
    if (!self->events_ep || !self->sync_ep)
        abort ();
    self->timeout_ms = TF_DEFAULT_TIMEOUT_MS;
    for (int s = 1; s <= TF_SECTOR_MAX; s++)
        self->held[s] = true;
    self->state = TF_STATE_CONNECTING;
    self->records = tf_index_new ();
    self->buffer = zlistx_new ();
    zlistx_set_destructor (self->buffer, s_clone_destroy);
    self->interval_ms = TF_INTERVAL_MS;
    self->arena = tf_arena_new (TF_ARENA_FIRST, TF_ARENA_KEEP);
    return self;
}

tf_view_t *tf_view_new (const char *events_endpoint, const char *sync_endpoint)
{
    return s_new (events_endpoint, sync_endpoint);
}

tf_view_t *tf_view_new_detached (const Techfeed__Sector *sectors, size_t n, int64_t now_ms)
{
    tf_view_t *self = s_new (NULL, NULL);
    if (tf_view_set_sectors (self, sectors, n) != 0) {
        tf_view_destroy (&self);
        return NULL;
    }
    self->state = TF_STATE_SNAPSHOT;
    self->heard_at = now_ms;
    return self;
}

void tf_view_destroy (tf_view_t **self_p)
{
    assert (self_p);
    tf_view_t *self = *self_p;
    if (!self)
        return;
    self->fn = NULL; // the application may be gone: no SAVED now
    s_save (self);
    tf_mirror_destroy (&self->mirror);
    zsock_destroy (&self->sub);
    tf_rpc_destroy (&self->rpc);
    tf_curve_destroy (&self->curve);
    s_records_free (self);
    s_incoming_purge (self);
    free (self->incoming);
    zlistx_destroy (&self->buffer);
    tf_arena_destroy (&self->arena);
    free (self->events_ep);
    free (self->sync_ep);
    free (self);
    *self_p = NULL;
}

int tf_view_set_sectors (tf_view_t *self, const Techfeed__Sector *sectors, size_t n)
{
    assert (self);
    if (self->state != TF_STATE_CONNECTING && self->sub) {
        snprintf (self->errstr, sizeof self->errstr, "sectors are set before start");
        return -1;
    }
    int count = s_sector_set (sectors, n, self->sectors, self->errstr, sizeof self->errstr);
    if (count < 0)
        return -1;
    self->n_sectors = (size_t) count;
    self->filtered = count > 0;
    for (int s = 1; s <= TF_SECTOR_MAX; s++)
        self->held[s] = !self->filtered;
    for (int i = 0; i < count; i++)
        self->held[self->sectors[i]] = true;
    return 0;
}

int tf_view_set_curve (tf_view_t *self, const char *server_key, const char *client_cert)
{
    assert (self && server_key);
    if (self->sub) {
        snprintf (self->errstr, sizeof self->errstr, "CURVE is set before start");
        return -1;
    }
    return tf_curve_replace (&self->curve, server_key, client_cert, self->errstr,
                             sizeof self->errstr);
}

void tf_view_set_callback (tf_view_t *self, tf_view_fn *fn, void *arg)
{
    self->fn = fn;
    self->arg = arg;
}

void tf_view_set_timeout (tf_view_t *self, int timeout_ms)
{
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
    if (self->rpc)
        tf_rpc_set_timeout (self->rpc, self->timeout_ms);
}

// --------------------------------------------------------------- persistent view

/*  -1 (errstr) when the file holds another sector filter than the view's:
    its records and positions would be wrong for this view. */
static int s_store_check_filter (tf_view_t *self)
{
    char sectors[TF_MIRROR_SECTORS_MAX + 1];
    s_sectors_text (self, sectors, sizeof sectors);
    return s_filter_check (tf_mirror_path (self->mirror), self->saved.epoch, self->saved.sectors,
                           sectors, self->errstr, sizeof self->errstr);
}

/*  The first sync: a catch-up from the file's position, else a snapshot. */
static void s_begin (tf_view_t *self)
{
    if (self->complete)
        s_catchup (self, "resuming from the stored position");
    else {
        self->state = TF_STATE_SNAPSHOT;
        self->retry_at = 0;
    }
}

static int s_load_record (const Techfeed__Milestone *record, void *arg)
{
    tf_view_t *self = (tf_view_t *) arg;
    if (s_record (self, record->id))
        return 0; // one row per id in the file
    Techfeed__Milestone *copy = s_record_copy (record);
    self->digest += tf_digest_item (copy->id, copy->revision);
    s_record_keep (self, copy);
    return 0;
}

int tf_view_set_store (tf_view_t *self, const char *path)
{
    assert (self && path);
    if (self->sub || self->mirror || tf_index_size (self->records) > 0) {
        snprintf (self->errstr, sizeof self->errstr,
                  "a view takes its file once, before it starts");
        return -1;
    }
    char err[sizeof self->errstr];
    self->mirror = tf_mirror_open (path, false, err, sizeof err);
    if (!self->mirror) {
        snprintf (self->errstr, sizeof self->errstr, "%s", err);
        return -1;
    }
    tf_mirror_state_t state;
    if (tf_mirror_state (self->mirror, &state) != 0 ||
        tf_mirror_each (self->mirror, s_load_record, self) != 0) {
        snprintf (self->errstr, sizeof self->errstr, "%s", tf_mirror_errstr (self->mirror));
        s_records_purge (self);
        self->digest = 0;
        tf_mirror_destroy (&self->mirror);
        return -1;
    }
    self->saved = state;
    if (state.epoch[0]) {
        snprintf (self->epoch, sizeof self->epoch, "%s", state.epoch);
        self->position = state.position;
        memcpy (self->last, state.last, sizeof self->last);
        self->complete = self->resumed = true;
    }
    //  A detached view (tests) is already past tf_view_start
    if (self->state != TF_STATE_CONNECTING) {
        if (s_store_check_filter (self) != 0) {
            self->failed = true;
            return -1;
        }
        s_begin (self);
    }
    return 0;
}

int tf_view_store_status (const char *path, tf_view_store_status_t *status, char *err,
                          size_t errlen)
{
    assert (path && status);
    memset (status, 0, sizeof *status);
    tf_mirror_t *mirror = tf_mirror_open (path, true, err, errlen);
    if (!mirror)
        return -1;
    tf_mirror_state_t state;
    int rc = tf_mirror_summary (mirror, &state, &status->record_count, &status->digest);
    if (rc != 0)
        snprintf (err, errlen, "%s", tf_mirror_errstr (mirror));
    else {
        snprintf (status->epoch, sizeof status->epoch, "%s", state.epoch);
        status->position = state.position;
        memcpy (status->last, state.last, sizeof status->last);
        snprintf (status->sectors, sizeof status->sectors, "%s", state.sectors);
        status->updated_ms = state.updated_ms;
    }
    tf_mirror_destroy (&mirror);
    return rc;
}

int tf_view_store_check_sectors (const char *path, const tf_view_store_status_t *status,
                                 const Techfeed__Sector *sectors, size_t n, char *err,
                                 size_t errlen)
{
    assert (path && status && (sectors || n == 0));
    Techfeed__Sector set[TF_SECTOR_MAX];
    int count = s_sector_set (sectors, n, set, err, errlen);
    if (count < 0)
        return -1;
    char wanted[TF_MIRROR_SECTORS_MAX + 1];
    s_filter_text (set, (size_t) count, wanted, sizeof wanted);
    return s_filter_check (path, status->epoch, status->sectors, wanted, err, errlen);
}

// --------------------------------------------------------------- driver

/*  Reads what the SUB socket holds, without waiting. Messages read. */
/*  Reads and drops the rest of a multipart message whose part `last` was
    read; returns how many parts that was. */
static size_t s_discard_rest (void *socket, zmq_msg_t *last)
{
    size_t parts = 0;
    zmq_msg_t part;
    zmq_msg_init (&part);
    bool more = zmq_msg_more (last);
    while (more && zmq_msg_recv (&part, socket, 0) >= 0) {
        parts++;
        more = zmq_msg_more (&part);
    }
    zmq_msg_close (&part);
    return parts;
}

/*  Feeds what waits in the SUB socket, read straight from libzmq (no
    czmq frames to allocate). Returns the messages read. */
static int s_drain (tf_view_t *self)
{
    void *sub = zsock_resolve (self->sub);
    int n = 0;
    zmq_msg_t topic, body;
    zmq_msg_init (&topic);
    zmq_msg_init (&body);
    while (n < TF_DRAIN_MAX && zmq_msg_recv (&topic, sub, ZMQ_DONTWAIT) >= 0) {
        n++;
        bool two = false;
        if (zmq_msg_more (&topic)) {
            if (zmq_msg_recv (&body, sub, 0) < 0)
                break; // interrupted inside a message
            two = s_discard_rest (sub, &body) == 0;
        }
        if (!two)
            s_bad (self, "PUB message", "not two frames");
        else
            tf_view_feed_message (self, (const char *) zmq_msg_data (&topic), zmq_msg_size (&topic),
                                  (const uint8_t *) zmq_msg_data (&body), zmq_msg_size (&body),
                                  zclock_mono ());
    }
    zmq_msg_close (&topic);
    zmq_msg_close (&body);
    return n;
}

static int s_sync_chunk (const Techfeed__SyncReply *reply, void *arg)
{
    tf_view_t *self = (tf_view_t *) arg;
    s_drain (self); // live events wait in the buffer, heartbeats keep us alive
    int rc = tf_view_sync_reply (self, reply, zclock_mono ());
    return rc == TF_VIEW_SYNC_MORE   ? TF_STREAM_MORE
           : rc == TF_VIEW_SYNC_DONE ? TF_STREAM_STOP
                                     : TF_STREAM_ERROR;
}

/*  Runs the sync the view needs, if any, to its end. */
static void s_run_sync (tf_view_t *self)
{
    const Techfeed__SyncRequest *request = tf_view_sync_begin (self, zclock_mono ());
    if (!request)
        return;
    int rc = tf_rpc_stream (self->rpc, request, s_sync_chunk, self);
    if (rc != 0 && self->syncing)
        tf_view_sync_failed (self, tf_rpc_errstr (self->rpc), zclock_mono ());
}

/*  Milliseconds until the next timer (LOST check, sync retry), capped. */
static int64_t s_next_timer (tf_view_t *self, int64_t now)
{
    int64_t next = 1000;
    if (self->state != TF_STATE_LOST) {
        int64_t lost = self->heard_at + TF_LOST_INTERVALS * self->interval_ms + 1 - now;
        if (lost < next)
            next = lost;
    }
    if ((self->state == TF_STATE_SNAPSHOT || self->state == TF_STATE_CATCHUP) && !self->syncing) {
        int64_t retry = self->retry_at - now;
        if (retry < next)
            next = retry;
    }
    return next > 0 ? next : 0;
}

int tf_view_start (tf_view_t *self)
{
    assert (self);
    if (self->sub) {
        if (self->state == TF_STATE_LIVE)
            return 0;
        snprintf (self->errstr, sizeof self->errstr,
                  "started already and %s: tf_view_poll goes on with it",
                  tf_view_state_name (self->state));
        return -1;
    }
    if (self->failed || (self->mirror && s_store_check_filter (self) != 0))
        return -1;
    self->sub = zsock_new (ZMQ_SUB);
    if (!self->sub)
        abort ();
    zsock_set_rcvhwm (self->sub, TF_SUB_HWM);
    zsock_set_maxmsgsize (self->sub, (int) TF_EVENT_MAX);
    zsock_set_linger (self->sub, 0);
    if (strncmp (self->events_ep, "tcp://[", 7) == 0)
        zsock_set_ipv6 (self->sub, 1); // an IPv6 address, [::1]:5561
    if (self->curve)
        tf_curve_apply (self->curve, self->sub);
    //  Subscribe before anything else (§9 rule 1)
    if (self->filtered) {
        zsock_set_subscribe (self->sub, TF_HEARTBEAT_TOPIC);
        for (size_t i = 0; i < self->n_sectors; i++)
            zsock_set_subscribe (self->sub, tf_sector_slug (self->sectors[i]));
    } else
        zsock_set_subscribe (self->sub, "");
    if (zsock_connect (self->sub, "%s", self->events_ep) != 0) {
        snprintf (self->errstr, sizeof self->errstr, "not a valid endpoint: %s", self->events_ep);
        zsock_destroy (&self->sub);
        return -1;
    }
    self->rpc = tf_rpc_new (self->sync_ep, TF_SYNC_REPLY_MAX);
    if (!self->rpc) {
        snprintf (self->errstr, sizeof self->errstr, "not a valid endpoint: %s", self->sync_ep);
        zsock_destroy (&self->sub);
        return -1;
    }
    tf_rpc_set_timeout (self->rpc, self->timeout_ms);
    tf_rpc_set_tries (self->rpc, 1); // the view retries by itself, later
    tf_rpc_set_read_ahead (self->rpc, true);
    if (self->curve)
        tf_rpc_set_curve (self->rpc, self->curve);
    self->heard_at = zclock_mono ();
    s_begin (self);
    //  The snapshot, and the catch-ups its buffered events may ask for
    for (int round = 0; round < 3 && !zsys_interrupted && !self->failed; round++) {
        s_run_sync (self);
        if (self->state == TF_STATE_LIVE || self->syncing || self->retry_at > zclock_mono ())
            break;
    }
    s_save (self);
    return self->state == TF_STATE_LIVE && !self->failed ? 0 : -1;
}

int tf_view_poll (tf_view_t *self, int timeout_ms)
{
    assert (self);
    if (!self->sub) {
        snprintf (self->errstr, sizeof self->errstr, "the view is not started");
        return -1;
    }
    if (self->failed)
        return -1;
    uint64_t changes = self->stats.changes;
    tf_view_state_t state = self->state;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : zclock_mono () + timeout_ms;
    bool polled = false, activity = false;
    while (!zsys_interrupted) {
        //  What waits in the socket first: a slow caller is not a silent service
        if (s_drain (self) > 0)
            activity = true;
        s_save (self); // the live events read: one batch
        int64_t now = zclock_mono ();
        tf_view_feed_tick (self, now);
        s_run_sync (self);
        if (activity || self->state != state || self->stats.changes != changes || self->failed)
            break;
        now = zclock_mono ();
        if (polled && now >= deadline)
            break;
        int64_t wait = deadline - now;
        int64_t timer = s_next_timer (self, now);
        if (timer < wait)
            wait = timer;
        if (wait < 0)
            wait = 0;
        zmq_pollitem_t item = { zsock_resolve (self->sub), 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, (long) wait);
        polled = true;
        if (rc < 0 && zmq_errno () != EINTR)
            break;
    }
    if (zsys_interrupted) {
        snprintf (self->errstr, sizeof self->errstr, "interrupted");
        return -1;
    }
    if (self->failed)
        return -1;
    return (int) (self->stats.changes - changes);
}

// --------------------------------------------------------------- accessors

zsock_t *tf_view_socket (tf_view_t *self)
{
    return self->sub;
}

const Techfeed__Milestone *tf_view_get (tf_view_t *self, const char *id)
{
    return id ? s_record (self, id) : NULL;
}

size_t tf_view_count (tf_view_t *self)
{
    return tf_index_size (self->records);
}

const Techfeed__Milestone *tf_view_first (tf_view_t *self)
{
    self->walk = 0;
    return tf_view_next (self);
}

const Techfeed__Milestone *tf_view_next (tf_view_t *self)
{
    tf_index_value_t value;
    return tf_index_next (self->records, &self->walk, NULL, &value)
               ? (const Techfeed__Milestone *) (uintptr_t) value.a
               : NULL;
}

uint64_t tf_view_position (tf_view_t *self)
{
    return self->position;
}

const char *tf_view_epoch (tf_view_t *self)
{
    return self->epoch;
}

uint64_t tf_view_digest (tf_view_t *self)
{
    return self->digest;
}

tf_view_state_t tf_view_state (tf_view_t *self)
{
    return self->state;
}

uint64_t tf_view_change_sequence (tf_view_t *self)
{
    return self->change_sequence;
}

void tf_view_stats (tf_view_t *self, tf_view_stats_t *stats)
{
    *stats = self->stats;
}

const char *tf_view_errstr (tf_view_t *self)
{
    return self->errstr;
}

uint64_t tf_view_last (tf_view_t *self, int sector)
{
    return sector >= 1 && sector <= TF_SECTOR_MAX ? self->last[sector] : 0;
}

size_t tf_view_buffered (tf_view_t *self)
{
    return zlistx_size (self->buffer);
}

const char *tf_view_state_name (tf_view_state_t state)
{
    switch (state) {
        case TF_STATE_CONNECTING: return "connecting";
        case TF_STATE_SNAPSHOT: return "snapshot";
        case TF_STATE_LIVE: return "live";
        case TF_STATE_CATCHUP: return "catchup";
        case TF_STATE_LOST: return "lost";
    }
    return "?";
}

const char *tf_view_event_name (tf_view_event_t what)
{
    switch (what) {
        case TF_VIEW_ADD: return "add";
        case TF_VIEW_UPDATE: return "update";
        case TF_VIEW_DELETE: return "delete";
        case TF_VIEW_RESYNC: return "resync";
        case TF_VIEW_READY: return "ready";
        case TF_VIEW_LOST: return "lost";
        case TF_VIEW_RECOVERED: return "recovered";
        case TF_VIEW_SAVED: return "saved";
    }
    return "?";
}
