/*  The real techfeed-ingestd against raw ZeroMQ sockets: well-formed puts
    from DEALER and REQ clients, and malformed input of every shape — each
    gets an error reply naming the problem, nothing is stored, and the
    service goes on serving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <czmq.h>

#include "tf_rawclient.h"
#include "tf_testkit.h"
#include "tf_wire.h"

typedef tf_raw_fixture_t fixture_t;

static int setup (void **state)
{
    return tf_raw_fixture_setup (state, NULL);
}

static int teardown (void **state)
{
    return tf_raw_fixture_teardown (state);
}

static void s_record (Techfeed__Milestone *m, const char *id)
{
    tf_raw_record (m, id, TECHFEED__SECTOR__SECTOR_SPACE);
}

/*  Sends frames given as (data, size) pairs, NULL-terminated. */
static void s_send_frames (zsock_t *socket, ...)
{
    zmsg_t *msg = zmsg_new ();
    va_list args;
    va_start (args, socket);
    const void *data;
    while ((data = va_arg (args, const void *))) {
        size_t size = va_arg (args, size_t);
        zmsg_addmem (msg, data, size);
    }
    va_end (args);
    assert_int_equal (zmsg_send (&msg, socket), 0);
}

static Techfeed__IngestReply *s_recv_reply (zsock_t *socket)
{
    Techfeed__IngestReply *reply = tf_raw_recv_reply (socket);
    assert_non_null (reply);
    return reply;
}

static Techfeed__IngestReply *s_put (fixture_t *f, Techfeed__Milestone *record)
{
    Techfeed__IngestReply *reply = tf_raw_put_record (f->ingest, record);
    assert_non_null (reply);
    return reply;
}

static uint64_t s_record_count (fixture_t *f)
{
    return tf_raw_count (f->sync);
}

static void s_expect_error (Techfeed__IngestReply *reply, Techfeed__ErrorCode code,
                            const char *text)
{
    assert_int_equal (reply->code, code);
    assert_non_null (reply->message);
    assert_non_null (strstr (reply->message, text));
    techfeed__ingest_reply__free_unpacked (reply, NULL);
}

static void test_put_from_dealer_and_req (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    Techfeed__Milestone record;
    s_record (&record, "change-4-far-side-landing");
    Techfeed__IngestReply *reply = s_put (f, &record);
    assert_int_equal (reply->code, TECHFEED__ERROR_CODE__OK);
    assert_int_equal (reply->n_results, 1);
    assert_int_equal (reply->results[0]->code, TECHFEED__ERROR_CODE__OK);
    assert_int_equal (reply->results[0]->revision, 1);
    assert_int_equal (reply->results[0]->sequence, 1);
    assert_int_equal (strlen (reply->epoch), 32);
    techfeed__ingest_reply__free_unpacked (reply, NULL);

    //  A REQ client adds the empty delimiter; the reply must come back to it.
    zsock_t *req = zsock_new_req (f->svc.ingest);
    zsock_set_rcvtimeo (req, 5000);
    record.title = (char *) "Chang'e-4 lands on the far side (revised)";
    tf_raw_one_put_t put;
    tf_raw_one_put (&put, &record);
    tf_raw_send_request (req, &put.request);
    reply = s_recv_reply (req);
    assert_int_equal (reply->results[0]->code, TECHFEED__ERROR_CODE__OK);
    assert_int_equal (reply->results[0]->revision, 2);
    techfeed__ingest_reply__free_unpacked (reply, NULL);
    zsock_destroy (&req);
    assert_int_equal (s_record_count (f), 1);
}

static void test_garbage_and_truncated (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_send_frames (f->ingest, "this is not protobuf at all", (size_t) 27, NULL);
    s_expect_error (s_recv_reply (f->ingest), TECHFEED__ERROR_CODE__MALFORMED, "IngestRequest");

    Techfeed__Milestone record;
    s_record (&record, "truncated");
    tf_raw_one_put_t put;
    tf_raw_one_put (&put, &record);
    size_t size;
    uint8_t *data = tf_wire_pack (&put.request.base, &size);
    s_send_frames (f->ingest, data, size - 5, NULL);
    free (data);
    s_expect_error (s_recv_reply (f->ingest), TECHFEED__ERROR_CODE__MALFORMED, "IngestRequest");
    assert_int_equal (s_record_count (f), 0);
}

static void test_wrong_frames (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_send_frames (f->ingest, "a", (size_t) 1, "b", (size_t) 1, "c", (size_t) 1, NULL);
    s_expect_error (s_recv_reply (f->ingest), TECHFEED__ERROR_CODE__MALFORMED, "body frame");
    s_send_frames (f->ingest, "", (size_t) 0, NULL);
    s_expect_error (s_recv_reply (f->ingest), TECHFEED__ERROR_CODE__MALFORMED, "empty body");
    //  Many frames in one message: refused the same way.
    zmsg_t *msg = zmsg_new ();
    for (int i = 0; i < 5000; i++)
        zmsg_addstr (msg, "x");
    zmsg_send (&msg, f->ingest);
    s_expect_error (s_recv_reply (f->ingest), TECHFEED__ERROR_CODE__MALFORMED, "5000");
    assert_int_equal (s_record_count (f), 0);
}

static void test_invalid_record (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    Techfeed__Milestone good, bad;
    s_record (&good, "good-one");
    s_record (&bad, "bad-one");
    bad.date = (char *) "2023-02-30";
    Techfeed__Operation op1 = TECHFEED__OPERATION__INIT, op2 = TECHFEED__OPERATION__INIT;
    Techfeed__Operation *ops[] = { &op1, &op2 };
    op1.has_kind = op2.has_kind = 1;
    op1.kind = op2.kind = TECHFEED__OP_KIND__OP_PUT;
    op1.record = &bad;
    op2.record = &good;
    Techfeed__IngestRequest request = TECHFEED__INGEST_REQUEST__INIT;
    request.ops = ops;
    request.n_ops = 2;
    //  Atomic: the bad record stops both.
    request.has_atomic = request.atomic = 1;
    tf_raw_send_request (f->ingest, &request);
    Techfeed__IngestReply *reply = s_recv_reply (f->ingest);
    assert_int_equal (reply->results[0]->code, TECHFEED__ERROR_CODE__INVALID);
    assert_string_equal (reply->results[0]->field, "/date");
    assert_int_equal (reply->results[1]->code, TECHFEED__ERROR_CODE__ABORTED);
    techfeed__ingest_reply__free_unpacked (reply, NULL);
    assert_int_equal (s_record_count (f), 0);
    //  Not atomic: the good one is stored, the bad one is not.
    request.atomic = 0;
    tf_raw_send_request (f->ingest, &request);
    reply = s_recv_reply (f->ingest);
    assert_int_equal (reply->results[0]->code, TECHFEED__ERROR_CODE__INVALID);
    assert_int_equal (reply->results[1]->code, TECHFEED__ERROR_CODE__OK);
    techfeed__ingest_reply__free_unpacked (reply, NULL);
    assert_int_equal (s_record_count (f), 1);
}

static void test_unknown_field_and_enum (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    Techfeed__Milestone record;
    s_record (&record, "enum-test");
    Techfeed__IngestReply *reply;
    //  Sector 99 is not in the enum: protobuf-c would accept it.
    record.sector = (Techfeed__Sector) 99;
    reply = s_put (f, &record);
    assert_int_equal (reply->code, TECHFEED__ERROR_CODE__MALFORMED);
    techfeed__ingest_reply__free_unpacked (reply, NULL);
    //  A field number this version does not know (field 15, varint 1).
    record.sector = TECHFEED__SECTOR__SECTOR_SPACE;
    tf_raw_one_put_t put;
    tf_raw_one_put (&put, &record);
    size_t size;
    uint8_t *data = tf_wire_pack (&put.request.base, &size);
    data = realloc (data, size + 2);
    data[size] = (15 << 3) | 0;
    data[size + 1] = 1;
    s_send_frames (f->ingest, data, size + 2, NULL);
    free (data);
    s_expect_error (s_recv_reply (f->ingest), TECHFEED__ERROR_CODE__MALFORMED, "unknown field");
    assert_int_equal (s_record_count (f), 0);
}

static void test_request_limits (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    Techfeed__IngestRequest request = TECHFEED__INGEST_REQUEST__INIT;
    request.request_id = (char *) "no-ops"; /* an empty message would be an empty frame */
    tf_raw_send_request (f->ingest, &request);
    Techfeed__IngestReply *refused = s_recv_reply (f->ingest);
    assert_non_null (refused->request_id); /* a refusal still names its request */
    assert_string_equal (refused->request_id, "no-ops");
    s_expect_error (refused, TECHFEED__ERROR_CODE__INVALID, "at least one");
    request.has_version = 1;
    request.version = 7;
    tf_raw_send_request (f->ingest, &request);
    s_expect_error (s_recv_reply (f->ingest), TECHFEED__ERROR_CODE__UNSUPPORTED, "version 7");
    //  More operations than --max-ops (1000 by default).
    Techfeed__Operation op = TECHFEED__OPERATION__INIT;
    op.has_kind = 1;
    op.kind = TECHFEED__OP_KIND__OP_DELETE;
    op.id = (char *) "x";
    Techfeed__Operation **ops = (Techfeed__Operation **) zmalloc (1001 * sizeof (void *));
    for (int i = 0; i < 1001; i++)
        ops[i] = &op;
    request.has_version = 0;
    request.request_id = NULL;
    request.ops = ops;
    request.n_ops = 1001;
    tf_raw_send_request (f->ingest, &request);
    free (ops);
    s_expect_error (s_recv_reply (f->ingest), TECHFEED__ERROR_CODE__TOO_LARGE, "max-ops");
    //  And the service still answers a good request.
    Techfeed__Milestone record;
    s_record (&record, "still-alive");
    Techfeed__IngestReply *reply = s_put (f, &record);
    assert_int_equal (reply->results[0]->code, TECHFEED__ERROR_CODE__OK);
    techfeed__ingest_reply__free_unpacked (reply, NULL);
    assert_int_equal (s_record_count (f), 1);
}

static int setup_short_cursors (void **state)
{
    const char *extra[] = { "--cursor-idle-ms", "200", "--http-addr", "127.0.0.1:0", NULL };
    return tf_raw_fixture_setup (state, extra);
}

static bool s_log_has_idle_close (void *arg)
{
    fixture_t *f = (fixture_t *) arg;
    return tf_test_file_has (f->svc.log, "closed idle cursor");
}

/*  A snapshot cursor left idle past --cursor-idle-ms is closed (logged
    and counted in /metrics): NEXT on it gets NOT_FOUND. */
static void test_idle_cursor_closed (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf (id, sizeof id, "cursor-%d", i);
        assert_int_equal (tf_raw_put (f->ingest, id, TECHFEED__SECTOR__SECTOR_SPACE), 0);
    }
    Techfeed__SyncRequest request = TECHFEED__SYNC_REQUEST__INIT;
    request.has_kind = request.has_chunk_size = 1;
    request.kind = TECHFEED__SYNC_KIND__SYNC_SNAPSHOT;
    request.chunk_size = 1;
    tf_raw_send_sync (f->sync, &request);
    Techfeed__SyncReply *reply = tf_raw_recv_sync (f->sync);
    assert_non_null (reply);
    assert_int_equal (reply->n_records, 1);
    assert_false (reply->end);
    uint64_t cursor = reply->cursor;
    techfeed__sync_reply__free_unpacked (reply, NULL);
    assert_true (tf_test_wait_for (s_log_has_idle_close, f, 10000));
    Techfeed__SyncRequest next = TECHFEED__SYNC_REQUEST__INIT;
    next.has_kind = next.has_cursor = 1;
    next.kind = TECHFEED__SYNC_KIND__SYNC_NEXT;
    next.cursor = cursor;
    tf_raw_send_sync (f->sync, &next);
    reply = tf_raw_recv_sync (f->sync);
    assert_non_null (reply);
    assert_int_equal (reply->code, TECHFEED__ERROR_CODE__NOT_FOUND);
    techfeed__sync_reply__free_unpacked (reply, NULL);
    static const char *names[] = { "techfeed_sync_cursors_closed_total{reason=\"idle\"}",
                                   "techfeed_sync_cursors_closed_total{reason=\"disconnected\"}" };
    double closed[2];
    assert_true (tf_service_metrics (&f->svc, names, closed, 2));
    assert_int_equal ((int) closed[0], 1);
    assert_int_equal ((int) closed[1], 0);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_put_from_dealer_and_req, setup, teardown),
        cmocka_unit_test_setup_teardown (test_garbage_and_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown (test_wrong_frames, setup, teardown),
        cmocka_unit_test_setup_teardown (test_invalid_record, setup, teardown),
        cmocka_unit_test_setup_teardown (test_unknown_field_and_enum, setup, teardown),
        cmocka_unit_test_setup_teardown (test_request_limits, setup, teardown),
        cmocka_unit_test_setup_teardown (test_idle_cursor_closed, setup_short_cursors, teardown),
    };
    return cmocka_run_group_tests_name ("ingest wire", tests, NULL, NULL);
}
