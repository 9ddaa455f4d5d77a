/*  Unit tests for the view's state machine (clients/lib/tf_view.c,
    PROTOCOL.md §9), driven through tf_view_internal.h with synthetic
    events, heartbeats and sync replies and a clock the test chooses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tf_fake.h"
#include "tf_view_internal.h"
#include "tf_wire.h"

#define EPOCH "0123456789abcdef0123456789abcdef"
#define EPOCH2 "fedcba9876543210fedcba9876543210"
#define SPACE TECHFEED__SECTOR__SECTOR_SPACE
#define AI TECHFEED__SECTOR__SECTOR_AI
#define RAIL TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL

static int64_t s_now = 1000000; /* the test's monotonic clock */
static char s_log[4096];        /* callbacks, "add:a ready ..." */

static void s_callback (tf_view_t *view, tf_view_event_t what, const Techfeed__Milestone *record,
                        const char *id, void *arg)
{
    char item[200];
    if (what == TF_VIEW_ADD || what == TF_VIEW_UPDATE || what == TF_VIEW_DELETE) {
        assert_non_null (record);
        assert_string_equal (record->id, id);
        snprintf (item, sizeof item, "%s:%s ", tf_view_event_name (what), id);
    } else {
        assert_null (record);
        snprintf (item, sizeof item, "%s ", tf_view_event_name (what));
    }
    strncat (s_log, item, sizeof s_log - strlen (s_log) - 1);
}

/*  The log so far, trailing space removed, and cleared. */
static const char *s_take_log (void)
{
    static char copy[sizeof s_log];
    snprintf (copy, sizeof copy, "%s", s_log);
    size_t n = strlen (copy);
    if (n && copy[n - 1] == ' ')
        copy[n - 1] = 0;
    s_log[0] = 0;
    return copy;
}

static tf_view_t *s_view (const Techfeed__Sector *sectors, size_t n)
{
    s_log[0] = 0;
    tf_view_t *view = tf_view_new_detached (sectors, n, s_now);
    assert_non_null (view);
    tf_view_set_callback (view, s_callback, NULL);
    return view;
}

static void s_record_init (Techfeed__Milestone *rec, const char *id, int sector, uint64_t revision)
{
    techfeed__milestone__init (rec);
    rec->id = (char *) id;
    rec->has_sector = 1;
    rec->sector = (Techfeed__Sector) sector;
    rec->title = (char *) "a title";
    rec->date = (char *) "2019-01-03";
    rec->has_revision = 1;
    rec->revision = revision;
}

/*  A change event; `rec` is the storage for its record (puts). */
static void s_event_init (Techfeed__ChangeEvent *ev, Techfeed__Milestone *rec, const char *epoch,
                          uint64_t seq, int sector, uint64_t prev, const char *id,
                          uint64_t revision, bool put)
{
    techfeed__change_event__init (ev);
    ev->epoch = (char *) epoch;
    ev->has_sequence = ev->has_kind = ev->has_sector = ev->has_revision = 1;
    ev->sequence = seq;
    ev->sector = (Techfeed__Sector) sector;
    ev->id = (char *) id;
    ev->revision = revision;
    ev->has_sector_prev_sequence = 1;
    ev->sector_prev_sequence = prev;
    ev->kind = put ? TECHFEED__CHANGE_KIND__CHANGE_PUT : TECHFEED__CHANGE_KIND__CHANGE_DELETE;
    if (put) {
        s_record_init (rec, id, sector, revision);
        ev->record = rec;
    }
}

static void s_put (tf_view_t *view, const char *epoch, uint64_t seq, int sector, uint64_t prev,
                   const char *id, uint64_t revision)
{
    Techfeed__ChangeEvent ev;
    Techfeed__Milestone rec;
    s_event_init (&ev, &rec, epoch, seq, sector, prev, id, revision, true);
    tf_view_feed_event (view, &ev, s_now);
}

static void s_delete (tf_view_t *view, const char *epoch, uint64_t seq, int sector, uint64_t prev,
                      const char *id, uint64_t revision)
{
    Techfeed__ChangeEvent ev;
    s_event_init (&ev, NULL, epoch, seq, sector, prev, id, revision, false);
    tf_view_feed_event (view, &ev, s_now);
}

/*  Sector heads: pairs of (sector, sequence), terminated by sector 0. */
typedef struct {
    int sector;
    uint64_t sequence;
} s_head_t;

typedef struct {
    Techfeed__SectorHead storage[TF_SECTOR_MAX];
    Techfeed__SectorHead *pointers[TF_SECTOR_MAX];
    size_t n;
} s_heads_t;

static void s_heads_init (s_heads_t *heads, const s_head_t *list)
{
    heads->n = 0;
    for (; list && list->sector; list++) {
        Techfeed__SectorHead *h = &heads->storage[heads->n];
        techfeed__sector_head__init (h);
        h->has_sector = h->has_sequence = 1;
        h->sector = (Techfeed__Sector) list->sector;
        h->sequence = list->sequence;
        heads->pointers[heads->n++] = h;
    }
}

static void s_heartbeat (tf_view_t *view, const char *epoch, uint64_t head, const s_head_t *list)
{
    s_heads_t heads;
    s_heads_init (&heads, list);
    Techfeed__Heartbeat hb = TECHFEED__HEARTBEAT__INIT;
    hb.epoch = (char *) epoch;
    hb.has_head_sequence = hb.has_interval_ms = 1;
    hb.head_sequence = head;
    hb.interval_ms = 1000;
    hb.n_sector_heads = heads.n;
    hb.sector_heads = heads.pointers;
    tf_view_feed_heartbeat (view, &hb, s_now);
}

/*  Snapshot records for a reply: ids with their sector and revision. */
typedef struct {
    const char *id;
    int sector;
    uint64_t revision;
} s_rec_t;

/*  The snapshot record of this id gets another title than s_record_init's. */
static const char *s_retitled;

/*  When set, sync replies reach the view as the driver hands them over:
    packed, decoded into an arena that is gone after the call. */
static bool s_decoded;

/*  Packs `reply`, decodes it into a fresh arena, hands it to the view and
    destroys the arena: ASan reports a view that kept a pointer into it. */
static int s_sync_reply_decoded (tf_view_t *view, const Techfeed__SyncReply *reply)
{
    size_t size;
    uint8_t *packed = tf_wire_pack (&reply->base, &size);
    tf_arena_t *arena = tf_arena_new (1024, 1 << 20);
    char err[200];
    Techfeed__SyncReply *decoded = (Techfeed__SyncReply *) tf_wire_unpack_in (
        arena, &techfeed__sync_reply__descriptor, packed, size, 64u << 20, err, sizeof err);
    free (packed);
    assert_non_null (decoded);
    int rc = tf_view_sync_reply (view, decoded, s_now);
    tf_arena_destroy (&arena);
    return rc;
}

/*  Feeds one snapshot chunk of `recs` (NULL-id terminated). */
static int s_snapshot_chunk (tf_view_t *view, const char *epoch, const s_rec_t *recs, bool end,
                             uint64_t seq, const s_head_t *head_list)
{
    Techfeed__Milestone storage[16];
    Techfeed__Milestone *pointers[16];
    size_t n = 0;
    for (; recs && recs->id; recs++, n++) {
        assert_true (n < 16);
        s_record_init (&storage[n], recs->id, recs->sector, recs->revision);
        if (s_retitled && strcmp (recs->id, s_retitled) == 0)
            storage[n].title = (char *) "another title";
        pointers[n] = &storage[n];
    }
    s_heads_t heads;
    s_heads_init (&heads, head_list);
    Techfeed__SyncReply reply;
    tf_fake_snapshot_chunk (&reply, epoch, pointers, n, end, seq, heads.pointers, heads.n);
    return s_decoded ? s_sync_reply_decoded (view, &reply)
                     : tf_view_sync_reply (view, &reply, s_now);
}

/*  Begins the sync the view wants, checks it is a snapshot, answers it
    with one chunk. */
static void s_snapshot (tf_view_t *view, const char *epoch, const s_rec_t *recs, uint64_t seq,
                        const s_head_t *heads)
{
    const Techfeed__SyncRequest *req = tf_view_sync_begin (view, s_now);
    assert_non_null (req);
    assert_int_equal (req->kind, TECHFEED__SYNC_KIND__SYNC_SNAPSHOT);
    assert_int_equal (s_snapshot_chunk (view, epoch, recs, true, seq, heads), TF_VIEW_SYNC_DONE);
}

/*  Answers a running catch-up with `changes` and an end mark. */
static int s_catchup_reply (tf_view_t *view, const char *epoch, Techfeed__ChangeEvent **changes,
                            size_t n, uint64_t seq, const s_head_t *head_list)
{
    s_heads_t heads;
    s_heads_init (&heads, head_list);
    Techfeed__SyncReply reply = TECHFEED__SYNC_REPLY__INIT;
    reply.has_code = reply.has_end = reply.has_sequence = 1;
    reply.epoch = (char *) epoch;
    reply.changes = changes;
    reply.n_changes = n;
    reply.end = true;
    reply.sequence = seq;
    reply.n_sector_heads = heads.n;
    reply.sector_heads = heads.pointers;
    return s_decoded ? s_sync_reply_decoded (view, &reply)
                     : tf_view_sync_reply (view, &reply, s_now);
}

/*  The digest recomputed from the records held. */
static uint64_t s_digest_of (tf_view_t *view)
{
    uint64_t sum = 0;
    for (const Techfeed__Milestone *r = tf_view_first (view); r; r = tf_view_next (view))
        sum += tf_digest_item (r->id, r->revision);
    return sum;
}

static tf_view_stats_t s_stats (tf_view_t *view)
{
    tf_view_stats_t stats;
    tf_view_stats (view, &stats);
    return stats;
}

/*  An unfiltered view, LIVE at P = 5: a (space, rev 1, seq 2), b (ai,
    rev 2, seq 3), c (space, rev 1, seq 5); last[space] = 5, last[ai] = 3. */
static tf_view_t *s_live_view (void)
{
    tf_view_t *view = s_view (NULL, 0);
    s_rec_t recs[] = { { "a", SPACE, 1 }, { "b", AI, 2 }, { "c", SPACE, 1 }, { NULL, 0, 0 } };
    s_head_t heads[] = { { SPACE, 5 }, { AI, 3 }, { 0, 0 } };
    s_snapshot (view, EPOCH, recs, 5, heads);
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    s_take_log ();
    return view;
}

// --------------------------------------------------------------- tests

/*  Setup and teardown of the tests run the driver's way (s_decoded). */
static int s_decoded_on (void **state)
{
    s_decoded = true;
    return 0;
}

static int s_decoded_off (void **state)
{
    s_decoded = false;
    return 0;
}

/*  A snapshot out of id order, one id twice: sorted, the last copy kept. */
static void test_snapshot_out_of_order (void **state)
{
    tf_view_t *view = s_view (NULL, 0);
    assert_non_null (tf_view_sync_begin (view, s_now));
    s_rec_t recs[] = {
        { "c", SPACE, 1 }, { "a", AI, 2 }, { "c", SPACE, 3 }, { "b", SPACE, 1 }, { NULL, 0, 0 }
    };
    s_head_t heads[] = { { SPACE, 4 }, { AI, 2 }, { 0, 0 } };
    assert_int_equal (s_snapshot_chunk (view, EPOCH, recs, true, 4, heads), TF_VIEW_SYNC_DONE);
    assert_int_equal (tf_view_count (view), 3);
    const Techfeed__Milestone *c = tf_view_get (view, "c");
    assert_non_null (c);
    assert_int_equal (c->revision, 3);
    assert_int_equal (tf_view_digest (view), s_digest_of (view));
    tf_view_destroy (&view);
}

static void test_snapshot_in_chunks (void **state)
{
    tf_view_t *view = s_view (NULL, 0);
    assert_int_equal (tf_view_state (view), TF_STATE_SNAPSHOT);
    const Techfeed__SyncRequest *req = tf_view_sync_begin (view, s_now);
    assert_non_null (req);
    assert_int_equal (req->kind, TECHFEED__SYNC_KIND__SYNC_SNAPSHOT);
    assert_null (req->filter);                      // all sectors
    assert_null (tf_view_sync_begin (view, s_now)); // one at a time

    s_rec_t first[] = { { "a", SPACE, 1 }, { "b", AI, 2 }, { NULL, 0, 0 } };
    s_rec_t second[] = { { "c", SPACE, 1 }, { NULL, 0, 0 } };
    s_head_t heads[] = { { SPACE, 5 }, { AI, 3 }, { 0, 0 } };
    assert_int_equal (s_snapshot_chunk (view, EPOCH, first, false, 0, NULL), TF_VIEW_SYNC_MORE);
    assert_int_equal (tf_view_count (view), 0); // nothing until the end mark
    assert_int_equal (s_snapshot_chunk (view, EPOCH, second, true, 5, heads), TF_VIEW_SYNC_DONE);

    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    assert_int_equal (tf_view_count (view), 3);
    assert_int_equal (tf_view_position (view), 5);
    assert_string_equal (tf_view_epoch (view), EPOCH);
    assert_int_equal (tf_view_last (view, SPACE), 5);
    assert_int_equal (tf_view_last (view, AI), 3);
    assert_int_equal (tf_view_last (view, RAIL), 0);
    assert_non_null (tf_view_get (view, "b"));
    assert_null (tf_view_get (view, "x"));
    assert_int_equal (tf_view_digest (view), s_digest_of (view));
    assert_int_equal (strlen (s_take_log ()), strlen ("add:a add:b add:c ready"));
    assert_null (tf_view_sync_begin (view, s_now)); // LIVE needs none
    tf_view_destroy (&view);
    assert_null (view);
    tf_view_destroy (&view); // safe twice
}

static void test_live_events (void **state)
{
    tf_view_t *view = s_live_view ();
    s_put (view, EPOCH, 6, SPACE, 5, "a", 2); // update
    s_put (view, EPOCH, 7, RAIL, 0, "d", 1);  // add, first in its sector
    s_delete (view, EPOCH, 8, AI, 3, "b", 2); // delete
    assert_string_equal (s_take_log (), "update:a add:d delete:b");
    assert_int_equal (tf_view_position (view), 8);
    assert_int_equal (tf_view_last (view, SPACE), 6);
    assert_int_equal (tf_view_last (view, RAIL), 7);
    assert_int_equal (tf_view_last (view, AI), 8);
    assert_int_equal (tf_view_get (view, "a")->revision, 2);
    assert_null (tf_view_get (view, "b"));
    assert_int_equal (tf_view_count (view), 3);
    assert_int_equal (tf_view_digest (view), s_digest_of (view));

    //  Duplicates (sequence <= last[s]) are dropped
    s_put (view, EPOCH, 6, SPACE, 5, "a", 2);
    s_put (view, EPOCH, 4, SPACE, 2, "zz", 1);
    assert_string_equal (s_take_log (), "");
    assert_int_equal (s_stats (view).duplicates, 2);
    assert_int_equal (s_stats (view).changes, 6); // 3 snapshot adds + 3 changes
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    tf_view_destroy (&view);
}

static void test_buffer_during_snapshot (void **state)
{
    tf_view_t *view = s_view (NULL, 0);
    assert_non_null (tf_view_sync_begin (view, s_now));
    //  Events that arrive while the snapshot is read wait
    s_put (view, EPOCH, 4, SPACE, 2, "c", 1); // in the snapshot already
    s_put (view, EPOCH, 6, SPACE, 5, "e", 1);
    s_put (view, EPOCH, 7, AI, 3, "b", 3);
    assert_int_equal (tf_view_buffered (view), 3);
    assert_string_equal (s_take_log (), "");

    s_rec_t recs[] = { { "a", SPACE, 1 }, { "b", AI, 2 }, { "c", SPACE, 1 }, { NULL, 0, 0 } };
    s_head_t heads[] = { { SPACE, 5 }, { AI, 3 }, { 0, 0 } };
    assert_int_equal (s_snapshot_chunk (view, EPOCH, recs, true, 5, heads), TF_VIEW_SYNC_DONE);
    const char *log = s_take_log ();
    assert_non_null (strstr (log, "ready add:e update:b"));
    assert_int_equal (tf_view_buffered (view), 0);
    assert_int_equal (tf_view_position (view), 7);
    assert_int_equal (tf_view_count (view), 4);
    assert_int_equal (s_stats (view).duplicates, 1);
    assert_int_equal (tf_view_digest (view), s_digest_of (view));
    tf_view_destroy (&view);
}

static void test_gap_then_catchup (void **state)
{
    tf_view_t *view = s_live_view ();
    //  Sequence 6 and 7 are lost; 8 says its sector's previous was 7
    s_put (view, EPOCH, 8, SPACE, 7, "c", 3);
    assert_int_equal (tf_view_state (view), TF_STATE_CATCHUP);
    assert_int_equal (s_stats (view).gaps, 1);
    assert_int_equal (s_stats (view).catchups, 1);
    s_put (view, EPOCH, 9, AI, 3, "b", 3); // waits for the catch-up
    assert_int_equal (tf_view_buffered (view), 2);

    const Techfeed__SyncRequest *req = tf_view_sync_begin (view, s_now);
    assert_non_null (req);
    assert_int_equal (req->kind, TECHFEED__SYNC_KIND__SYNC_CATCHUP);
    assert_int_equal (req->since_sequence, 5);
    assert_string_equal (req->epoch, EPOCH);

    Techfeed__ChangeEvent ev[3];
    Techfeed__Milestone rec[3];
    s_event_init (&ev[0], &rec[0], EPOCH, 6, SPACE, 5, "c", 2, true);
    s_event_init (&ev[1], &rec[1], EPOCH, 7, SPACE, 6, "new", 1, true);
    s_event_init (&ev[2], &rec[2], EPOCH, 8, SPACE, 7, "c", 3, true);
    Techfeed__ChangeEvent *changes[] = { &ev[0], &ev[1], &ev[2] };
    s_head_t heads[] = { { SPACE, 8 }, { AI, 3 }, { 0, 0 } };
    assert_int_equal (s_catchup_reply (view, EPOCH, changes, 3, 8, heads), TF_VIEW_SYNC_DONE);

    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    assert_string_equal (s_take_log (), "update:c add:new update:c update:b");
    assert_int_equal (tf_view_position (view), 9);
    assert_int_equal (tf_view_last (view, SPACE), 8);
    assert_int_equal (tf_view_last (view, AI), 9);
    assert_int_equal (tf_view_get (view, "c")->revision, 3);
    assert_int_equal (tf_view_buffered (view), 0);
    assert_int_equal (s_stats (view).resyncs, 0);
    assert_int_equal (tf_view_digest (view), s_digest_of (view));
    tf_view_destroy (&view);
}

static void test_heartbeat_rules (void **state)
{
    tf_view_t *view = s_live_view ();
    s_head_t same[] = { { SPACE, 5 }, { AI, 3 }, { 0, 0 } };
    s_heartbeat (view, EPOCH, 5, same);
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    assert_int_equal (tf_view_position (view), 5);

    //  Rule 4: the last event of a sector was lost
    s_head_t ahead[] = { { SPACE, 6 }, { AI, 3 }, { 0, 0 } };
    s_heartbeat (view, EPOCH, 6, ahead);
    assert_int_equal (tf_view_state (view), TF_STATE_CATCHUP);
    assert_int_equal (s_stats (view).gaps, 1);
    const Techfeed__SyncRequest *req = tf_view_sync_begin (view, s_now);
    assert_int_equal (req->since_sequence, 5);
    Techfeed__ChangeEvent ev;
    Techfeed__Milestone rec;
    s_event_init (&ev, &rec, EPOCH, 6, SPACE, 5, "a", 2, true);
    Techfeed__ChangeEvent *changes[] = { &ev };
    assert_int_equal (s_catchup_reply (view, EPOCH, changes, 1, 6, ahead), TF_VIEW_SYNC_DONE);
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    assert_int_equal (tf_view_position (view), 6);
    tf_view_destroy (&view);
}

static void test_filtered_view (void **state)
{
    Techfeed__Sector sectors[] = { SPACE };
    tf_view_t *view = s_view (sectors, 1);
    const Techfeed__SyncRequest *req = tf_view_sync_begin (view, s_now);
    assert_non_null (req->filter);
    assert_int_equal (req->filter->n_sectors, 1);
    assert_int_equal (req->filter->sectors[0], SPACE);
    s_rec_t recs[] = { { "a", SPACE, 1 }, { "b", AI, 1 }, { NULL, 0, 0 } }; // b: not ours
    s_head_t heads[] = { { SPACE, 4 }, { AI, 5 }, { 0, 0 } };
    assert_int_equal (s_snapshot_chunk (view, EPOCH, recs, true, 5, heads), TF_VIEW_SYNC_DONE);
    assert_int_equal (tf_view_count (view), 1);
    assert_int_equal (tf_view_last (view, SPACE), 4);
    assert_int_equal (tf_view_last (view, AI), 0);

    //  Per-sector continuity: 6 and 7 in ai are not seen, space goes on
    s_put (view, EPOCH, 8, SPACE, 4, "c", 1);
    s_put (view, EPOCH, 9, AI, 7, "x", 1); // not held: ignored
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    assert_int_equal (tf_view_count (view), 2);
    assert_int_equal (tf_view_position (view), 5); // P moves with heartbeats

    //  Other sectors ahead: no catch-up; every held sector complete: P = head
    s_head_t hb[] = { { SPACE, 8 }, { AI, 9 }, { 0, 0 } };
    s_heartbeat (view, EPOCH, 9, hb);
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    assert_int_equal (tf_view_position (view), 9);

    //  A lost space event shows in the next heartbeat
    s_head_t hb2[] = { { SPACE, 10 }, { AI, 9 }, { 0, 0 } };
    s_heartbeat (view, EPOCH, 10, hb2);
    assert_int_equal (tf_view_state (view), TF_STATE_CATCHUP);
    req = tf_view_sync_begin (view, s_now);
    assert_int_equal (req->kind, TECHFEED__SYNC_KIND__SYNC_CATCHUP);
    assert_int_equal (req->since_sequence, 9);
    assert_int_equal (req->filter->n_sectors, 1);
    tf_view_destroy (&view);
}

/*  A filtered view's P lags while its sectors go on (it moves at complete
    heartbeats only): its catch-up starts where every held sector is
    complete, not at P. */
static void test_filtered_catchup_since (void **state)
{
    Techfeed__Sector sectors[] = { SPACE, RAIL };
    tf_view_t *view = s_view (sectors, 2);
    tf_view_sync_begin (view, s_now);
    s_head_t heads[] = { { SPACE, 4 }, { RAIL, 5 }, { 0, 0 } };
    assert_int_equal (s_snapshot_chunk (view, EPOCH, NULL, true, 5, heads), TF_VIEW_SYNC_DONE);
    s_put (view, EPOCH, 8, SPACE, 4, "s8", 1);
    s_put (view, EPOCH, 9, RAIL, 5, "r9", 1);
    s_put (view, EPOCH, 12, SPACE, 8, "s12", 1);
    assert_int_equal (tf_view_position (view), 5);
    //  Rail's 14 is lost: space is complete to 12, rail to 9
    s_put (view, EPOCH, 15, RAIL, 14, "r15", 1);
    assert_int_equal (tf_view_state (view), TF_STATE_CATCHUP);
    const Techfeed__SyncRequest *req = tf_view_sync_begin (view, s_now);
    assert_int_equal (req->kind, TECHFEED__SYNC_KIND__SYNC_CATCHUP);
    assert_int_equal (req->since_sequence, 9);
    tf_view_destroy (&view);
}

static void test_epoch_change_resyncs (void **state)
{
    tf_view_t *view = s_live_view ();
    s_put (view, EPOCH2, 1, SPACE, 0, "d", 1);
    assert_int_equal (tf_view_state (view), TF_STATE_SNAPSHOT);
    assert_string_equal (s_take_log (), "resync");
    assert_int_equal (s_stats (view).resyncs, 1);
    assert_int_equal (tf_view_count (view), 3); // still readable

    //  The new snapshot's differences: c gone, b changed, d new, a same
    s_rec_t recs[] = { { "a", SPACE, 1 }, { "b", AI, 7 }, { "d", SPACE, 1 }, { NULL, 0, 0 } };
    s_head_t heads[] = { { SPACE, 3 }, { AI, 2 }, { 0, 0 } };
    s_snapshot (view, EPOCH2, recs, 3, heads);
    const char *log = s_take_log ();
    assert_true (strncmp (log, "delete:c ", 9) == 0);
    assert_non_null (strstr (log, "update:b"));
    assert_non_null (strstr (log, "add:d"));
    assert_null (strstr (log, ":a"));
    assert_non_null (strstr (log, "ready"));
    assert_string_equal (tf_view_epoch (view), EPOCH2);
    assert_int_equal (tf_view_position (view), 3);
    assert_int_equal (tf_view_last (view, SPACE), 3);
    assert_int_equal (tf_view_count (view), 3);
    assert_int_equal (tf_view_digest (view), s_digest_of (view));
    //  The buffered event (seq 1) is in the snapshot: a duplicate
    assert_int_equal (tf_view_buffered (view), 0);

    //  A heartbeat of another epoch resyncs too
    s_heartbeat (view, EPOCH, 3, heads);
    assert_int_equal (tf_view_state (view), TF_STATE_SNAPSHOT);
    assert_int_equal (s_stats (view).resyncs, 2);
    tf_view_destroy (&view);
}

/*  A new epoch is another database: a record of the same id and revision
    may hold other contents, and the snapshot's are the ones kept. */
static void test_epoch_change_same_revision_new_contents (void **state)
{
    tf_view_t *view = s_live_view ();
    s_put (view, EPOCH2, 1, SPACE, 0, "d", 1);
    s_take_log ();
    s_rec_t recs[] = { { "a", SPACE, 1 }, { "b", AI, 2 }, { "c", SPACE, 1 }, { NULL, 0, 0 } };
    s_retitled = "a";
    s_head_t heads[] = { { SPACE, 3 }, { AI, 2 }, { 0, 0 } };
    s_snapshot (view, EPOCH2, recs, 3, heads);
    s_retitled = NULL;
    const char *log = s_take_log ();
    assert_non_null (strstr (log, "update:a "));
    assert_null (strstr (log, ":b "));
    assert_null (strstr (log, ":c "));
    assert_string_equal (tf_view_get (view, "a")->title, "another title");
    assert_int_equal (tf_view_digest (view), s_digest_of (view));
    tf_view_destroy (&view);
}

static void test_head_went_backwards (void **state)
{
    tf_view_t *view = s_live_view ();
    s_head_t heads[] = { { SPACE, 2 }, { AI, 3 }, { 0, 0 } };
    s_head_t current[] = { { SPACE, 5 }, { AI, 3 }, { 0, 0 } };
    //  One heartbeat below P may be older than the last end mark: not yet
    s_heartbeat (view, EPOCH, 4, heads);
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    s_heartbeat (view, EPOCH, 5, current);
    s_heartbeat (view, EPOCH, 4, heads);
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    assert_string_equal (s_take_log (), "");
    //  Two in a row are the service gone back in time
    s_heartbeat (view, EPOCH, 4, heads);
    assert_int_equal (tf_view_state (view), TF_STATE_SNAPSHOT);
    assert_string_equal (s_take_log (), "resync");
    assert_non_null (strstr (tf_view_errstr (view), "back in time"));
    tf_view_destroy (&view);
}

static void test_trimmed_catchup_takes_snapshot (void **state)
{
    tf_view_t *view = s_live_view ();
    s_put (view, EPOCH, 9, SPACE, 8, "a", 5);
    assert_non_null (tf_view_sync_begin (view, s_now));
    Techfeed__SyncReply reply = TECHFEED__SYNC_REPLY__INIT;
    reply.has_code = 1;
    reply.code = TECHFEED__ERROR_CODE__TRIMMED;
    reply.epoch = (char *) EPOCH;
    reply.message = (char *) "since 5 is below the log's first 7";
    assert_int_equal (tf_view_sync_reply (view, &reply, s_now), TF_VIEW_SYNC_DONE);
    assert_int_equal (tf_view_state (view), TF_STATE_SNAPSHOT);
    assert_int_equal (s_stats (view).resyncs, 1);
    assert_string_equal (s_take_log (), "resync");
    const Techfeed__SyncRequest *req = tf_view_sync_begin (view, s_now);
    assert_int_equal (req->kind, TECHFEED__SYNC_KIND__SYNC_SNAPSHOT);
    tf_view_destroy (&view);
}

static void test_catchup_of_another_epoch_resyncs (void **state)
{
    tf_view_t *view = s_live_view ();
    s_put (view, EPOCH, 9, SPACE, 8, "a", 5);
    assert_non_null (tf_view_sync_begin (view, s_now));
    assert_int_equal (s_catchup_reply (view, EPOCH2, NULL, 0, 1, NULL), TF_VIEW_SYNC_DONE);
    assert_int_equal (tf_view_state (view), TF_STATE_SNAPSHOT);
    tf_view_destroy (&view);
}

static void test_lost_and_recovered (void **state)
{
    tf_view_t *view = s_live_view ();
    tf_view_feed_tick (view, s_now + 2999);
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    s_now += 3001;
    tf_view_feed_tick (view, s_now);
    assert_int_equal (tf_view_state (view), TF_STATE_LOST);
    assert_string_equal (s_take_log (), "lost");
    tf_view_feed_tick (view, s_now + 10000); // told once
    assert_string_equal (s_take_log (), "");
    assert_null (tf_view_sync_begin (view, s_now)); // waits for a sign of life

    s_head_t heads[] = { { SPACE, 6 }, { AI, 3 }, { 0, 0 } };
    s_heartbeat (view, EPOCH, 6, heads);
    assert_int_equal (tf_view_state (view), TF_STATE_CATCHUP);
    const Techfeed__SyncRequest *req = tf_view_sync_begin (view, s_now);
    assert_int_equal (req->kind, TECHFEED__SYNC_KIND__SYNC_CATCHUP);
    assert_int_equal (req->since_sequence, 5);
    Techfeed__ChangeEvent ev;
    Techfeed__Milestone rec;
    s_event_init (&ev, &rec, EPOCH, 6, SPACE, 5, "f", 1, true);
    Techfeed__ChangeEvent *changes[] = { &ev };
    assert_int_equal (s_catchup_reply (view, EPOCH, changes, 1, 6, heads), TF_VIEW_SYNC_DONE);
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    assert_string_equal (s_take_log (), "add:f recovered");
    assert_int_equal (s_stats (view).lost, 1);
    tf_view_destroy (&view);
}

/*  The service back, and an event heard before any heartbeat: the view
    catches up and recovers, and is not called LOST again meanwhile. */
static void test_lost_recovered_by_event (void **state)
{
    tf_view_t *view = s_live_view ();
    s_now += 3001;
    tf_view_feed_tick (view, s_now);
    assert_string_equal (s_take_log (), "lost");
    s_now += 5000;
    s_put (view, EPOCH, 6, SPACE, 5, "f", 1);
    assert_int_equal (tf_view_state (view), TF_STATE_CATCHUP);
    tf_view_feed_tick (view, s_now + 1);
    assert_int_equal (tf_view_state (view), TF_STATE_CATCHUP);
    const Techfeed__SyncRequest *req = tf_view_sync_begin (view, s_now);
    assert_non_null (req);
    assert_int_equal (req->since_sequence, 5);
    Techfeed__ChangeEvent ev;
    Techfeed__Milestone rec;
    s_event_init (&ev, &rec, EPOCH, 6, SPACE, 5, "f", 1, true);
    Techfeed__ChangeEvent *changes[] = { &ev };
    s_head_t heads[] = { { SPACE, 6 }, { AI, 3 }, { 0, 0 } };
    assert_int_equal (s_catchup_reply (view, EPOCH, changes, 1, 6, heads), TF_VIEW_SYNC_DONE);
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    assert_string_equal (s_take_log (), "add:f recovered"); // the buffered event: a duplicate
    assert_int_equal (s_stats (view).lost, 1);
    assert_int_equal (s_stats (view).duplicates, 1);
    tf_view_destroy (&view);
}

static void test_lost_before_first_snapshot (void **state)
{
    tf_view_t *view = s_view (NULL, 0);
    s_now += 5000;
    tf_view_feed_tick (view, s_now);
    assert_int_equal (tf_view_state (view), TF_STATE_LOST);
    s_put (view, EPOCH, 1, SPACE, 0, "a", 1); // an event is a sign of life too
    assert_int_equal (tf_view_state (view), TF_STATE_SNAPSHOT);
    const Techfeed__SyncRequest *req = tf_view_sync_begin (view, s_now);
    assert_int_equal (req->kind, TECHFEED__SYNC_KIND__SYNC_SNAPSHOT);
    tf_view_destroy (&view);
}

static void test_failed_sync_retries_later (void **state)
{
    tf_view_t *view = s_view (NULL, 0);
    assert_non_null (tf_view_sync_begin (view, s_now));
    tf_view_sync_failed (view, "service unavailable", s_now);
    assert_int_equal (tf_view_state (view), TF_STATE_SNAPSHOT);
    assert_null (tf_view_sync_begin (view, s_now + 500));
    assert_non_null (tf_view_sync_begin (view, s_now + 1000));

    //  A refusal is a failure too
    Techfeed__SyncReply reply = TECHFEED__SYNC_REPLY__INIT;
    reply.has_code = 1;
    reply.code = TECHFEED__ERROR_CODE__UNAVAILABLE;
    reply.epoch = (char *) EPOCH;
    assert_int_equal (tf_view_sync_reply (view, &reply, s_now + 1000), TF_VIEW_SYNC_FAIL);
    assert_non_null (strstr (tf_view_errstr (view), "UNAVAILABLE"));
    tf_view_destroy (&view);
}

static void test_epoch_change_inside_snapshot_restarts (void **state)
{
    tf_view_t *view = s_view (NULL, 0);
    assert_non_null (tf_view_sync_begin (view, s_now));
    s_rec_t first[] = { { "a", SPACE, 1 }, { NULL, 0, 0 } };
    assert_int_equal (s_snapshot_chunk (view, EPOCH, first, false, 0, NULL), TF_VIEW_SYNC_MORE);
    assert_int_equal (s_snapshot_chunk (view, EPOCH2, first, false, 0, NULL), TF_VIEW_SYNC_DONE);
    assert_int_equal (tf_view_state (view), TF_STATE_SNAPSHOT);
    assert_int_equal (tf_view_count (view), 0);
    assert_non_null (tf_view_sync_begin (view, s_now)); // starts again at once
    tf_view_destroy (&view);
}

static void test_bad_messages_ignored (void **state)
{
    tf_view_t *view = s_live_view ();
    const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f };
    tf_view_feed_message (view, "space", 5, garbage, sizeof garbage, s_now);
    tf_view_feed_message (view, "heartbeat", 9, garbage, sizeof garbage, s_now);
    tf_view_feed_message (view, "space", 5, NULL, 0, s_now); // decodes, but empty

    //  A valid event under the wrong topic
    Techfeed__ChangeEvent ev;
    Techfeed__Milestone rec;
    s_event_init (&ev, &rec, EPOCH, 6, SPACE, 5, "a", 2, true);
    size_t size;
    uint8_t *bytes = tf_wire_pack (&ev.base, &size);
    tf_view_feed_message (view, "ai", 2, bytes, size, s_now);
    assert_int_equal (tf_view_get (view, "a")->revision, 1);

    //  A put whose record is missing, an event with no epoch
    ev.record = NULL;
    tf_view_feed_event (view, &ev, s_now);
    ev.record = &rec;
    ev.epoch = NULL;
    tf_view_feed_event (view, &ev, s_now);
    assert_int_equal (s_stats (view).bad_messages, 6);
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);

    //  The same bytes under the right topic apply
    tf_view_feed_message (view, "space", 5, bytes, size, s_now);
    free (bytes);
    assert_int_equal (tf_view_get (view, "a")->revision, 2);
    assert_string_equal (s_take_log (), "update:a");
    tf_view_destroy (&view);
}

static void test_sectors_and_names (void **state)
{
    Techfeed__Sector bad[] = { (Techfeed__Sector) 11 };
    assert_null (tf_view_new_detached (bad, 1, s_now));
    Techfeed__Sector all[TF_SECTOR_MAX];
    for (int s = 0; s < TF_SECTOR_MAX; s++)
        all[s] = (Techfeed__Sector) (s + 1);
    tf_view_t *view = s_view (all, TF_SECTOR_MAX); // all named = no filter
    assert_null (tf_view_sync_begin (view, s_now)->filter);
    tf_view_destroy (&view);
    assert_string_equal (tf_view_state_name (TF_STATE_CATCHUP), "catchup");
    assert_string_equal (tf_view_event_name (TF_VIEW_RECOVERED), "recovered");
    assert_non_null (techfeed_version ());
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_snapshot_in_chunks),
        //  The driver's path: records taken out of heap-decoded replies.
        cmocka_unit_test_setup_teardown (test_snapshot_in_chunks, s_decoded_on, s_decoded_off),
        cmocka_unit_test_setup_teardown (test_gap_then_catchup, s_decoded_on, s_decoded_off),
        cmocka_unit_test (test_snapshot_out_of_order),
        cmocka_unit_test (test_live_events),
        cmocka_unit_test (test_buffer_during_snapshot),
        cmocka_unit_test (test_gap_then_catchup),
        cmocka_unit_test (test_heartbeat_rules),
        cmocka_unit_test (test_filtered_view),
        cmocka_unit_test (test_filtered_catchup_since),
        cmocka_unit_test (test_epoch_change_resyncs),
        cmocka_unit_test (test_epoch_change_same_revision_new_contents),
        cmocka_unit_test (test_head_went_backwards),
        cmocka_unit_test (test_trimmed_catchup_takes_snapshot),
        cmocka_unit_test (test_catchup_of_another_epoch_resyncs),
        cmocka_unit_test (test_lost_and_recovered),
        cmocka_unit_test (test_lost_recovered_by_event),
        cmocka_unit_test (test_lost_before_first_snapshot),
        cmocka_unit_test (test_failed_sync_retries_later),
        cmocka_unit_test (test_epoch_change_inside_snapshot_restarts),
        cmocka_unit_test (test_bad_messages_ignored),
        cmocka_unit_test (test_sectors_and_names),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
