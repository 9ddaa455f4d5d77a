/*  Unit tests for libtechfeed's request/reply side (tf_writer, tf_query,
    tf_rpc) against fake services in this process: a ROUTER actor that
    drops, delays, garbles or answers requests as each test scripts it.
    No real service needed. */
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

/*  What the fake service does. */
typedef enum {
    FAKE_OK,          /* answers every request */
    FAKE_DROP_FIRST,  /* ignores the first request, then a stale reply and the answer */
    FAKE_SILENT,      /* never answers */
    FAKE_GARBLE,      /* garbage first, then the answer */
    FAKE_UNAVAILABLE, /* UNAVAILABLE twice, then the answer */
    FAKE_WHOLE_ERROR, /* TOO_LARGE for the request as a whole */
    FAKE_NAMELESS,    /* UNAUTHORIZED without the request_id (read before it) */
} fake_mode_t;

typedef struct {
    fake_mode_t mode;   /* script */
    char endpoint[128]; /* where it bound (set by the actor) */
    int requests;       /* requests received */
    char first_id[80];  /* request_id of the first request */
    bool same_ids;      /* every request carried first_id */
    int identities;     /* distinct sockets seen (Lazy Pirate: fresh socket per try) */
    int nexts, closes;  /* sync: SYNC_NEXT and SYNC_CLOSE received */
    zcert_t *curve;     /* ingest: a CURVE server with this certificate, or NULL */
} fake_t;

/*  An ingest reply: OK per op, sequence 100 + i, revision 1. */
static void s_ingest_answer (zsock_t *router, zframe_t *identity,
                             const Techfeed__IngestRequest *req, const char *request_id, int code)
{
    Techfeed__IngestReply reply = TECHFEED__INGEST_REPLY__INIT;
    reply.request_id = (char *) request_id;
    reply.has_code = 1;
    reply.code = (Techfeed__ErrorCode) code;
    reply.epoch = (char *) EPOCH;
    reply.message = code == TECHFEED__ERROR_CODE__TOO_LARGE      ? (char *) "too many operations"
                    : code == TECHFEED__ERROR_CODE__UNAUTHORIZED ? (char *) "not a writer"
                                                                 : NULL;
    Techfeed__ItemResult results[8], *pointers[8];
    for (size_t i = 0; code == 0 && i < req->n_ops && i < 8; i++) {
        techfeed__item_result__init (&results[i]);
        results[i].has_code = results[i].has_sequence = results[i].has_revision = 1;
        const Techfeed__Operation *op = req->ops[i];
        results[i].id = op->record ? op->record->id : op->id;
        if (op->has_expected_revision && op->expected_revision != 1) {
            results[i].code = TECHFEED__ERROR_CODE__CONFLICT;
            results[i].has_current_revision = 1;
            results[i].current_revision = 1;
            results[i].message = (char *) "stored revision is 1";
        } else {
            results[i].sequence = 100 + i;
            results[i].revision = 1;
        }
        pointers[i] = &results[i];
        reply.n_results = i + 1;
    }
    reply.results = pointers;
    tf_fake_reply (router, identity, &reply.base);
}

static void s_ingest_actor (zsock_t *pipe, void *args)
{
    fake_t *fake = (fake_t *) args;
    zsock_t *router = tf_fake_router_curve (fake->endpoint, sizeof fake->endpoint, fake->curve);
    fake->same_ids = true;
    zframe_t *last_identity = NULL;
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which != router)
            break; // $TERM or interrupted
        zframe_t *identity;
        Techfeed__IngestRequest *req = (Techfeed__IngestRequest *) tf_fake_recv (
            router, &techfeed__ingest_request__descriptor, &identity);
        fake->requests++;
        if (!req || !req->request_id) { // no cmocka asserts in this thread
            fake->same_ids = false;
            techfeed__ingest_request__free_unpacked (req, NULL);
            zframe_destroy (&identity);
            continue;
        }
        if (fake->requests == 1)
            snprintf (fake->first_id, sizeof fake->first_id, "%s", req->request_id);
        else if (strcmp (fake->first_id, req->request_id) != 0)
            fake->same_ids = false;
        if (!last_identity || !zframe_eq (identity, last_identity))
            fake->identities++;
        zframe_destroy (&last_identity);
        last_identity = zframe_dup (identity);

        switch (fake->mode) {
            case FAKE_OK: s_ingest_answer (router, identity, req, req->request_id, 0); break;
            case FAKE_DROP_FIRST:
                if (fake->requests > 1) {
                    s_ingest_answer (router, identity, req, "an-earlier-request", 0);
                    s_ingest_answer (router, identity, req, req->request_id, 0);
                }
                break;
            case FAKE_SILENT: break;
            case FAKE_GARBLE: {
                zmsg_t *junk = zmsg_new ();
                zmsg_append (junk, &(zframe_t *){ zframe_dup (identity) });
                zmsg_addstr (junk, "\xff\xff\xff\xff garbage");
                zmsg_send (&junk, router);
                s_ingest_answer (router, identity, req, req->request_id, 0);
                break;
            }
            case FAKE_UNAVAILABLE:
                s_ingest_answer (router, identity, req, req->request_id,
                                 fake->requests <= 2 ? TECHFEED__ERROR_CODE__UNAVAILABLE : 0);
                break;
            case FAKE_WHOLE_ERROR:
                s_ingest_answer (router, identity, req, req->request_id,
                                 TECHFEED__ERROR_CODE__TOO_LARGE);
                break;
            case FAKE_NAMELESS:
                s_ingest_answer (router, identity, req, NULL, TECHFEED__ERROR_CODE__UNAUTHORIZED);
                break;
        }
        techfeed__ingest_request__free_unpacked (req, NULL);
        zframe_destroy (&identity);
    }
    zframe_destroy (&last_identity);
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

static Techfeed__Milestone s_records[3];
static Techfeed__Milestone *s_pointers[3];

static void s_records_init (void)
{
    static const char *ids[] = { "alpha", "beta", "gamma" };
    for (int i = 0; i < 3; i++) {
        techfeed__milestone__init (&s_records[i]);
        s_records[i].id = (char *) ids[i];
        s_records[i].has_sector = 1;
        s_records[i].sector = TECHFEED__SECTOR__SECTOR_SPACE;
        s_records[i].title = (char *) "title";
        s_records[i].date = (char *) "2019";
        s_pointers[i] = &s_records[i];
    }
}

/*  A writer on a fake in `mode`, short timeout. */
static tf_writer_t *s_writer (fake_t *fake, zactor_t **actor, fake_mode_t mode)
{
    memset (fake, 0, sizeof *fake);
    fake->mode = mode;
    *actor = zactor_new (s_ingest_actor, fake);
    tf_writer_t *writer = tf_writer_new (fake->endpoint);
    assert_non_null (writer);
    tf_writer_set_timeout (writer, 300);
    s_records_init ();
    return writer;
}

static void test_put_answered (void **state)
{
    fake_t fake;
    zactor_t *actor;
    tf_writer_t *writer = s_writer (&fake, &actor, FAKE_OK);
    tf_result_t results[3];
    assert_int_equal (tf_writer_put (writer, s_pointers, 3, false, results), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal (results[i].code, 0);
        assert_string_equal (results[i].id, s_records[i].id);
        assert_int_equal (results[i].sequence, 100 + i);
    }
    assert_int_equal (strlen (tf_writer_request_id (writer)), 36); // a UUID
    //  A caller's request id, for the next request only
    assert_int_equal (tf_writer_set_request_id (writer, "my-id-1"), 0);
    assert_int_equal (tf_writer_set_request_id (writer, "bad id\x01"), -1);
    assert_non_null (strstr (tf_writer_errstr (writer), "not a request id"));
    tf_op_t op = { .id = "alpha", .has_expected_revision = true, .expected_revision = 4 };
    assert_int_equal (tf_writer_send (writer, &op, 1, false, results), 0);
    assert_string_equal (tf_writer_request_id (writer), "my-id-1");
    assert_int_equal (results[0].code, TECHFEED__ERROR_CODE__CONFLICT);
    assert_int_equal (results[0].current_revision, 1);
    assert_int_equal (tf_writer_delete (writer, "beta", false, 0, results), 0);
    assert_string_not_equal (tf_writer_request_id (writer), "my-id-1");
    //  Operations out of range are refused before sending
    assert_int_equal (tf_writer_put (writer, s_pointers, 0, false, results), -1);
    tf_writer_destroy (&writer);
    tf_writer_destroy (&writer);
    zactor_destroy (&actor);
    assert_int_equal (fake.requests, 3);
}

/*  What s_put_through leaves for a test to check. */
typedef struct {
    fake_t fake;            /* the fake's counters */
    tf_result_t results[3]; /* one per record put */
    char errstr[256];       /* the writer's errstr */
} s_put_t;

/*  Puts the first `n` records through a fake in `mode` with `tries` per
    request (0: the default) and takes everything down again. Returns
    tf_writer_put's code; what it left is copied into `put`. */
static int s_put_through (s_put_t *put, fake_mode_t mode, size_t n, int tries)
{
    zactor_t *actor;
    tf_writer_t *writer = s_writer (&put->fake, &actor, mode);
    if (tries)
        tf_writer_set_retries (writer, tries);
    //  Exactly n results on the heap, so ASan sees a write past them
    tf_result_t *results = (tf_result_t *) calloc (n, sizeof *results);
    int rc = tf_writer_put (writer, s_pointers, n, mode == FAKE_DROP_FIRST, results);
    memcpy (put->results, results, n * sizeof *results);
    free (results);
    snprintf (put->errstr, sizeof put->errstr, "%s", tf_writer_errstr (writer));
    tf_writer_destroy (&writer);
    zactor_destroy (&actor);
    return rc;
}

static void test_lazy_pirate_retry (void **state)
{
    s_put_t put;
    assert_int_equal (s_put_through (&put, FAKE_DROP_FIRST, 2, 0), 0);
    assert_int_equal (put.results[1].sequence, 101);
    //  Retried once, on a fresh socket, with the same request_id; the
    //  stale reply was not taken for the answer
    assert_int_equal (put.fake.requests, 2);
    assert_int_equal (put.fake.identities, 2);
    assert_true (put.fake.same_ids);
}

static void test_unavailable_after_tries (void **state)
{
    s_put_t put;
    int64_t start = zclock_mono ();
    assert_int_equal (s_put_through (&put, FAKE_SILENT, 1, 2), -1);
    //  Each try waited for its 300 ms (the writer's timeout here) before
    //  giving up; 50 ms of tolerance for millisecond clocks and poll rounding
    int64_t elapsed = zclock_mono () - start;
    if (elapsed < 2 * 300 - 50)
        fail_msg ("two tries of 300 ms gave up after %" PRId64 " ms", elapsed);
    assert_non_null (strstr (put.errstr, "service unavailable at tcp://127.0.0.1:"));
    assert_non_null (strstr (put.errstr, "after 2 tries"));
    assert_int_equal (put.fake.requests, 2);
    assert_true (put.fake.same_ids);
}

static void test_garbage_reply_skipped (void **state)
{
    s_put_t put;
    assert_int_equal (s_put_through (&put, FAKE_GARBLE, 1, 0), 0);
    assert_int_equal (put.results[0].code, 0);
    assert_int_equal (put.fake.requests, 1);
}

static void test_unavailable_is_resent (void **state)
{
    s_put_t put;
    assert_int_equal (s_put_through (&put, FAKE_UNAVAILABLE, 1, 0), 0);
    assert_int_equal (put.results[0].code, 0);
    assert_int_equal (put.fake.requests, 3);
    assert_true (put.fake.same_ids);
}

static void test_whole_request_error (void **state)
{
    s_put_t put;
    assert_int_equal (s_put_through (&put, FAKE_WHOLE_ERROR, 3, 0), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal (put.results[i].code, TECHFEED__ERROR_CODE__TOO_LARGE);
        assert_string_equal (put.results[i].id, s_records[i].id);
        assert_string_equal (put.results[i].message, "too many operations");
    }
    assert_non_null (strstr (put.errstr, "TOO_LARGE"));
}

/*  A request larger than the service takes in a frame is refused before
    it is sent (the service would drop the connection): TOO_LARGE with its
    size, and the writer goes on with smaller ones. */
static void test_request_over_max_frame (void **state)
{
    fake_t fake;
    zactor_t *actor;
    tf_writer_t *writer = s_writer (&fake, &actor, FAKE_OK);
    size_t packed = techfeed__milestone__get_packed_size (&s_records[0]);
    //  Room for one record and the request's own fields, not for three
    size_t max = packed + 80;
    tf_writer_set_max_frame (writer, max);
    tf_result_t results[3];
    assert_int_equal (tf_writer_put (writer, s_pointers, 3, false, results), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal (results[i].code, TECHFEED__ERROR_CODE__TOO_LARGE);
        assert_string_equal (results[i].id, s_records[i].id);
        assert_non_null (strstr (results[i].message, "--max-frame"));
    }
    char expected[100];
    snprintf (expected, sizeof expected, "bytes, over the %zu a request may be", max);
    assert_non_null (strstr (tf_writer_errstr (writer), "TOO_LARGE: the request is "));
    assert_non_null (strstr (tf_writer_errstr (writer), expected));
    //  One record fits; 0 is the default again, where three fit
    assert_int_equal (tf_writer_put (writer, s_pointers, 1, false, results), 0);
    assert_int_equal (results[0].code, 0);
    tf_writer_set_max_frame (writer, 0);
    assert_int_equal (tf_writer_put (writer, s_pointers, 3, false, results), 0);
    assert_int_equal (results[2].code, 0);
    assert_string_equal (tf_writer_errstr (writer), "");
    tf_writer_destroy (&writer);
    zactor_destroy (&actor);
    assert_int_equal (fake.requests, 2); // the one too large never left
}

/*  A refusal as a whole that does not name the request (the service did
    not read its id) still answers it: no retry, the code in every result. */
static void test_whole_request_error_without_id (void **state)
{
    s_put_t put;
    assert_int_equal (s_put_through (&put, FAKE_NAMELESS, 2, 0), 0);
    assert_int_equal (put.fake.requests, 1);
    for (int i = 0; i < 2; i++)
        assert_int_equal (put.results[i].code, TECHFEED__ERROR_CODE__UNAUTHORIZED);
    assert_non_null (strstr (put.errstr, "UNAUTHORIZED: not a writer"));
}

/*  With CURVE, the retry's fresh socket is a CURVE client too: the fake
    (a CURVE server) drops the first request and answers the retry, which
    a plain socket could never reach. A key that is not one is refused. */
static void test_curve_on_every_socket (void **state)
{
    fake_t fake = { .mode = FAKE_DROP_FIRST, .curve = zcert_new () };
    zactor_t *actor = zactor_new (s_ingest_actor, &fake);
    tf_writer_t *writer = tf_writer_new (fake.endpoint);
    tf_writer_set_timeout (writer, 500);
    assert_int_equal (tf_writer_set_curve (writer, "not a key", NULL), -1);
    assert_non_null (strstr (tf_writer_errstr (writer), "neither a Z85 key"));
    assert_int_equal (tf_writer_set_curve (writer, zcert_public_txt (fake.curve), NULL), 0);
    s_records_init ();
    tf_result_t results[1];
    assert_int_equal (tf_writer_put (writer, s_pointers, 1, false, results), 0);
    assert_int_equal (results[0].code, 0);
    assert_int_equal (fake.requests, 2);
    assert_int_equal (fake.identities, 2);
    tf_writer_destroy (&writer);
    zactor_destroy (&actor);
    zcert_destroy (&fake.curve);
}

// --------------------------------------------------------------- sync

/*  A fake sync service: SNAPSHOT streams 5 records two per chunk
    (cursor 9), STATUS answers, GET returns the ids asked for that start
    with "a". */
static void s_sync_actor (zsock_t *pipe, void *args)
{
    fake_t *fake = (fake_t *) args;
    zsock_t *router = tf_fake_router (fake->endpoint, sizeof fake->endpoint);
    zsock_signal (pipe, 0);
    static const char *ids[] = { "a1", "a2", "b1", "b2", "c1" };
    size_t sent = 0;
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (zpoller_wait (poller, -1) == router) {
        zframe_t *identity;
        Techfeed__SyncRequest *req = (Techfeed__SyncRequest *) tf_fake_recv (
            router, &techfeed__sync_request__descriptor, &identity);
        fake->requests++;
        if (!req) { // counted; the test sees too few replies
            zframe_destroy (&identity);
            continue;
        }
        Techfeed__SyncReply reply = TECHFEED__SYNC_REPLY__INIT;
        reply.has_code = 1;
        reply.epoch = (char *) EPOCH;
        Techfeed__Milestone recs[5], *pointers[5];
        Techfeed__ServerStatus status = TECHFEED__SERVER_STATUS__INIT;
        if (req->kind == TECHFEED__SYNC_KIND__SYNC_SNAPSHOT ||
            req->kind == TECHFEED__SYNC_KIND__SYNC_NEXT) {
            if (req->kind == TECHFEED__SYNC_KIND__SYNC_SNAPSHOT)
                sent = 0;
            else if (req->cursor == 9)
                fake->nexts++;
            for (; sent < 5 && reply.n_records < 2; sent++) {
                techfeed__milestone__init (&recs[reply.n_records]);
                recs[reply.n_records].id = (char *) ids[sent];
                pointers[reply.n_records] = &recs[reply.n_records];
                reply.n_records++;
            }
            reply.records = pointers;
            reply.has_end = reply.has_cursor = reply.has_sequence = 1;
            reply.end = sent == 5;
            reply.cursor = reply.end ? 0 : 9;
            reply.sequence = reply.end ? 77 : 0;
        } else if (req->kind == TECHFEED__SYNC_KIND__SYNC_CLOSE)
            fake->closes++;
        else if (req->kind == TECHFEED__SYNC_KIND__SYNC_STATUS) {
            status.epoch = (char *) EPOCH;
            status.has_head_sequence = status.has_record_count = 1;
            status.head_sequence = 77;
            status.record_count = 5;
            status.digest = (char *) "00000000000000ff";
            status.version = (char *) "9.9.9";
            reply.status = &status;
        } else if (req->kind == TECHFEED__SYNC_KIND__SYNC_GET) {
            for (size_t i = 0; i < req->n_ids; i++)
                if (req->ids[i][0] == 'a') {
                    techfeed__milestone__init (&recs[reply.n_records]);
                    recs[reply.n_records].id = req->ids[i];
                    pointers[reply.n_records] = &recs[reply.n_records];
                    reply.n_records++;
                }
            reply.records = pointers;
        } else {
            reply.code = TECHFEED__ERROR_CODE__UNSUPPORTED;
            reply.message = (char *) "no such kind";
        }
        tf_fake_reply (router, identity, &reply.base);
        techfeed__sync_request__free_unpacked (req, NULL);
        zframe_destroy (&identity);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

typedef struct {
    char ids[200];  /* ids seen, space-separated */
    int stop_after; /* stop after this many, 0 = never */
    int seen;
} s_seen_t;

static int s_on_record (const Techfeed__Milestone *record, void *arg)
{
    s_seen_t *seen = (s_seen_t *) arg;
    strcat (seen->ids, record->id);
    strcat (seen->ids, " ");
    return seen->stop_after && ++seen->seen >= seen->stop_after;
}

/*  A list's callback that lists again on the same handle, and gets a
    status: the inner list is refused, the status answered. */
typedef struct {
    tf_query_t *query;
    int inner_rc, inner_code, status_rc;
    s_seen_t outer;
} s_nested_t;

static int s_list_inside (const Techfeed__Milestone *record, void *arg)
{
    s_nested_t *nested = (s_nested_t *) arg;
    s_seen_t inner = { "", 0, 0 };
    nested->inner_rc = tf_query_list (nested->query, NULL, s_on_record, &inner);
    nested->inner_code = tf_query_code (nested->query);
    tf_status_t status;
    nested->status_rc = tf_query_status (nested->query, &status);
    return s_on_record (record, &nested->outer); // reads the outer record after both
}

static void test_query_list_not_nested (void **state)
{
    fake_t fake = { 0 };
    zactor_t *actor = zactor_new (s_sync_actor, &fake);
    s_nested_t nested = { tf_query_new (fake.endpoint), 0, 0, 0, { "", 0, 0 } };
    tf_query_set_timeout (nested.query, 1000);
    assert_int_equal (tf_query_list (nested.query, NULL, s_list_inside, &nested), 0);
    assert_string_equal (nested.outer.ids, "a1 a2 b1 b2 c1 ");
    assert_int_equal (nested.inner_rc, -1);
    assert_int_equal (nested.inner_code, TF_MISUSE);
    assert_int_equal (nested.status_rc, 0);
    //  A get of no ids is refused the same way, before anything is sent
    assert_int_equal (tf_query_get (nested.query, NULL, 0, s_on_record, &nested.outer), -1);
    assert_int_equal (tf_query_code (nested.query), TF_MISUSE);
    tf_query_destroy (&nested.query);
    zactor_destroy (&actor);
}

static void test_query (void **state)
{
    fake_t fake = { 0 };
    zactor_t *actor = zactor_new (s_sync_actor, &fake);
    tf_query_t *query = tf_query_new (fake.endpoint);
    assert_non_null (query);
    tf_query_set_timeout (query, 1000);

    //  list: SNAPSHOT then NEXT with the cursor until the end mark
    s_seen_t seen = { "", 0, 0 };
    assert_int_equal (tf_query_list (query, NULL, s_on_record, &seen), 0);
    assert_string_equal (seen.ids, "a1 a2 b1 b2 c1 ");
    assert_int_equal (fake.nexts, 2);

    //  Stopping early closes the cursor
    s_seen_t some = { "", 3, 0 };
    assert_int_equal (tf_query_list (query, NULL, s_on_record, &some), 0);
    assert_string_equal (some.ids, "a1 a2 b1 ");
    assert_int_equal (fake.closes, 1);

    tf_status_t status;
    assert_int_equal (tf_query_status (query, &status), 0);
    assert_string_equal (status.epoch, EPOCH);
    assert_int_equal (status.head_sequence, 77);
    assert_int_equal (status.digest, 0xff);
    assert_string_equal (status.version, "9.9.9");

    const char *ids[] = { "a7", "b7", "a8" };
    s_seen_t got = { "", 0, 0 };
    assert_int_equal (tf_query_get (query, ids, 3, s_on_record, &got), 0);
    assert_string_equal (got.ids, "a7 a8 ");
    tf_query_destroy (&query);
    zactor_destroy (&actor);

    //  Nobody there: TF_NO_REPLY
    query = tf_query_new ("tcp://127.0.0.1:1");
    tf_query_set_timeout (query, 100);
    tf_query_set_retries (query, 1);
    assert_int_equal (tf_query_status (query, &status), -1);
    assert_int_equal (tf_query_code (query), TF_NO_REPLY);
    assert_non_null (strstr (tf_query_errstr (query), "after 1 try"));
    tf_query_destroy (&query);
    assert_null (tf_query_new ("not an endpoint"));
    assert_null (tf_writer_new ("tcp://"));
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_put_answered),
        cmocka_unit_test (test_query_list_not_nested),
        cmocka_unit_test (test_lazy_pirate_retry),
        cmocka_unit_test (test_unavailable_after_tries),
        cmocka_unit_test (test_garbage_reply_skipped),
        cmocka_unit_test (test_unavailable_is_resent),
        cmocka_unit_test (test_whole_request_error),
        cmocka_unit_test (test_request_over_max_frame),
        cmocka_unit_test (test_whole_request_error_without_id),
        cmocka_unit_test (test_curve_on_every_socket),
        cmocka_unit_test (test_query),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
