/*  Unit test of the view's driver (tf_view_start, tf_view_poll) over real
    sockets: this test publishes events and heartbeats on a PUB socket,
    and a fake sync service in an actor answers snapshots and catch-ups
    from a fixed log of five changes. No real service needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../lib/tf_fake.h"
#include "techfeed.h"
#include "tf_wire.h"

#define EPOCH "0123456789abcdef0123456789abcdef"
#define SPACE TECHFEED__SECTOR__SECTOR_SPACE
#define LOG_SIZE 5

static const char *s_ids[LOG_SIZE + 1] = { NULL, "a", "b", "c", "d", "e" };

/*  Shared with the fake: the head it admits to (set before publishing). */
typedef struct {
    char endpoint[128];    /* where the fake binds */
    volatile int head;     /* changes 1..head exist */
    volatile int catchups; /* CATCHUP requests answered */
} fake_t;

/*  Change `seq` of the fixed log: a put of s_ids[seq] in space, revision 1. */
static void s_change_init (Techfeed__ChangeEvent *ev, Techfeed__Milestone *rec, int seq)
{
    techfeed__milestone__init (rec);
    rec->id = (char *) s_ids[seq];
    rec->has_sector = rec->has_revision = 1;
    rec->sector = SPACE;
    rec->revision = 1;
    rec->title = (char *) "title";
    rec->date = (char *) "2019";
    techfeed__change_event__init (ev);
    ev->epoch = (char *) EPOCH;
    ev->has_sequence = ev->has_kind = ev->has_sector = ev->has_revision = 1;
    ev->has_sector_prev_sequence = 1;
    ev->sequence = (uint64_t) seq;
    ev->sector_prev_sequence = (uint64_t) seq - 1;
    ev->kind = TECHFEED__CHANGE_KIND__CHANGE_PUT;
    ev->sector = SPACE;
    ev->id = rec->id;
    ev->revision = 1;
    ev->record = rec;
}

static void s_fake_sync (zsock_t *pipe, void *args)
{
    fake_t *fake = (fake_t *) args;
    zsock_t *router = tf_fake_router (fake->endpoint, sizeof fake->endpoint);
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (zpoller_wait (poller, -1) == router) {
        zframe_t *identity;
        Techfeed__SyncRequest *req = (Techfeed__SyncRequest *) tf_fake_recv (
            router, &techfeed__sync_request__descriptor, &identity);
        Techfeed__SyncReply reply = TECHFEED__SYNC_REPLY__INIT;
        Techfeed__ChangeEvent events[LOG_SIZE + 1], *event_ptrs[LOG_SIZE];
        Techfeed__Milestone recs[LOG_SIZE + 1], *rec_ptrs[LOG_SIZE];
        Techfeed__SectorHead head = TECHFEED__SECTOR_HEAD__INIT, *head_ptr = &head;
        int now = fake->head;
        reply.has_code = reply.has_end = reply.has_sequence = 1;
        reply.epoch = (char *) EPOCH;
        reply.end = true;
        reply.sequence = (uint64_t) now;
        head.has_sector = head.has_sequence = 1;
        head.sector = SPACE;
        head.sequence = (uint64_t) now;
        reply.n_sector_heads = 1;
        reply.sector_heads = &head_ptr;
        if (req && req->kind == TECHFEED__SYNC_KIND__SYNC_SNAPSHOT) {
            for (int seq = 1; seq <= now; seq++) {
                s_change_init (&events[seq], &recs[seq], seq);
                rec_ptrs[reply.n_records++] = &recs[seq];
            }
            reply.records = rec_ptrs;
        } else if (req && req->kind == TECHFEED__SYNC_KIND__SYNC_CATCHUP) {
            fake->catchups++;
            for (int seq = (int) req->since_sequence + 1; seq <= now; seq++) {
                s_change_init (&events[seq], &recs[seq], seq);
                event_ptrs[reply.n_changes++] = &events[seq];
            }
            reply.changes = event_ptrs;
        } else
            reply.code = TECHFEED__ERROR_CODE__UNSUPPORTED;
        tf_fake_reply (router, identity, &reply.base);
        zframe_destroy (&identity);
        techfeed__sync_request__free_unpacked (req, NULL);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

static void s_publish (zsock_t *pub, const char *topic, const ProtobufCMessage *msg)
{
    size_t size;
    uint8_t *data = tf_wire_pack (msg, &size);
    zmsg_t *out = zmsg_new ();
    zmsg_addstr (out, topic);
    zmsg_addmem (out, data, size);
    zmsg_send (&out, pub);
    free (data);
}

static void s_publish_change (zsock_t *pub, int seq)
{
    Techfeed__ChangeEvent ev;
    Techfeed__Milestone rec;
    s_change_init (&ev, &rec, seq);
    s_publish (pub, "space", &ev.base);
}

static void s_publish_heartbeat (zsock_t *pub, int head_seq)
{
    Techfeed__SectorHead head = TECHFEED__SECTOR_HEAD__INIT, *head_ptr = &head;
    head.has_sector = head.has_sequence = 1;
    head.sector = SPACE;
    head.sequence = (uint64_t) head_seq;
    Techfeed__Heartbeat hb = TECHFEED__HEARTBEAT__INIT;
    hb.epoch = (char *) EPOCH;
    hb.has_head_sequence = hb.has_interval_ms = 1;
    hb.head_sequence = (uint64_t) head_seq;
    hb.interval_ms = 100;
    hb.n_sector_heads = 1;
    hb.sector_heads = &head_ptr;
    s_publish (pub, TF_HEARTBEAT_TOPIC, &hb.base);
}

static char s_log[512]; /* non-record callbacks, "ready lost recovered" */

static void s_callback (tf_view_t *view, tf_view_event_t what, const Techfeed__Milestone *record,
                        const char *id, void *arg)
{
    if (record)
        return;
    strncat (s_log, tf_view_event_name (what), sizeof s_log - strlen (s_log) - 2);
    strcat (s_log, " ");
}

static void test_driver (void **state)
{
    fake_t fake = { .head = 2 };
    zactor_t *actor = zactor_new (s_fake_sync, &fake);
    zsock_t *pub = zsock_new (ZMQ_PUB);
    int port = zsock_bind (pub, "tcp://127.0.0.1:*");
    char events[64];
    snprintf (events, sizeof events, "tcp://127.0.0.1:%d", port);

    tf_view_t *view = tf_view_new (events, fake.endpoint);
    Techfeed__Sector sectors[] = { SPACE };
    assert_int_equal (tf_view_set_sectors (view, sectors, 1), 0);
    tf_view_set_callback (view, s_callback, NULL);
    assert_int_equal (tf_view_poll (view, 0), -1); // not started
    assert_int_equal (tf_view_start (view), 0);
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    assert_int_equal (tf_view_count (view), 2);
    assert_int_equal (tf_view_position (view), 2);
    assert_non_null (tf_view_socket (view));

    //  Live: published again until the subscription is through (a
    //  repeat is a duplicate and dropped)
    fake.head = 3;
    int64_t deadline = zclock_mono () + 5000;
    while (!tf_view_get (view, "c") && zclock_mono () < deadline) {
        s_publish_change (pub, 3);
        tf_view_poll (view, 50);
    }
    assert_non_null (tf_view_get (view, "c"));

    //  Change 4 is lost: 5 shows the gap, the catch-up brings 4
    fake.head = 5;
    s_publish_change (pub, 5);
    while (!tf_view_get (view, "e") && zclock_mono () < deadline)
        tf_view_poll (view, 50);
    assert_non_null (tf_view_get (view, "d"));
    assert_non_null (tf_view_get (view, "e"));
    assert_int_equal (tf_view_position (view), 5);
    assert_int_equal (fake.catchups, 1);
    tf_view_stats_t stats;
    tf_view_stats (view, &stats);
    assert_int_equal (stats.gaps, 1);
    assert_int_equal (stats.changes, 5);

    //  A heartbeat announces 100 ms intervals; then silence: LOST
    s_publish_heartbeat (pub, 5);
    while (strstr (s_log, "lost") == NULL && zclock_mono () < deadline)
        tf_view_poll (view, 50);
    assert_int_equal (tf_view_state (view), TF_STATE_LOST);
    //  A heartbeat again: catch-up (nothing new), RECOVERED
    while (strstr (s_log, "recovered") == NULL && zclock_mono () < deadline) {
        s_publish_heartbeat (pub, 5);
        tf_view_poll (view, 50);
    }
    assert_string_equal (s_log, "ready lost recovered ");
    assert_int_equal (tf_view_state (view), TF_STATE_LIVE);
    assert_int_equal (fake.catchups, 2);
    uint64_t digest = 0;
    for (int seq = 1; seq <= LOG_SIZE; seq++)
        digest += tf_digest_item (s_ids[seq], 1);
    assert_int_equal (tf_view_digest (view), digest);

    tf_view_destroy (&view);
    zsock_destroy (&pub);
    zactor_destroy (&actor);
}

/*  No service: the first start fails and says why, and so does another
    start (the view is started already: tf_view_poll goes on with it). */
static void test_start_twice_without_service (void **state)
{
    tf_view_t *view = tf_view_new ("tcp://127.0.0.1:1", "tcp://127.0.0.1:1");
    tf_view_set_timeout (view, 100);
    assert_int_equal (tf_view_start (view), -1);
    assert_true (tf_view_errstr (view)[0] != 0);
    assert_int_equal (tf_view_start (view), -1);
    assert_non_null (strstr (tf_view_errstr (view), "started already"));
    tf_view_destroy (&view);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_driver),
        cmocka_unit_test (test_start_twice_without_service),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
