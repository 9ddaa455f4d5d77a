/*  The real techfeed-ingestd against raw ZeroMQ sockets: well-formed puts
    from DEALER and REQ clients, and malformed input of every shape — each
    gets an error reply naming the problem, nothing is stored, and the
    service goes on serving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

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

/*  `message` packed, with field 20 = 1 appended (a field this version
    does not know; key 20 << 3 | 0 = 0xa0 0x01), sent as one frame. */
static void s_send_with_field_20 (zsock_t *socket, const ProtobufCMessage *message)
{
    size_t size;
    uint8_t *data = tf_wire_pack (message, &size);
    data = realloc (data, size + 3);
    assert_non_null (data);
    memcpy (data + size, "\xa0\x01\x01", 3);
    s_send_frames (socket, data, size + 3, NULL);
    free (data);
}

static void s_expect_sync_error (zsock_t *sync, Techfeed__ErrorCode code, const char *text)
{
    Techfeed__SyncReply *reply = tf_raw_recv_sync (sync);
    assert_non_null (reply);
    assert_int_equal (reply->code, code);
    assert_non_null (reply->message);
    if (!strstr (reply->message, text))
        fail_msg ("expected \"%s\" in \"%s\"", text, reply->message);
    techfeed__sync_reply__free_unpacked (reply, NULL);
}

/*  A request of another version gets UNSUPPORTED on either socket even
    with fields (and enum values) this version does not know; one of
    version 1 with such a field stays MALFORMED. */
static void test_other_version_unknown_field (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    const char *unsupported = "protocol version 2 is not supported (this service speaks 1)";
    Techfeed__Milestone record;
    s_record (&record, "from-version-2");
    tf_raw_one_put_t put;
    tf_raw_one_put (&put, &record);
    put.request.has_version = 1;
    put.request.version = 2;
    s_send_with_field_20 (f->ingest, &put.request.base);
    s_expect_error (s_recv_reply (f->ingest), TECHFEED__ERROR_CODE__UNSUPPORTED, unsupported);
    record.sector = (Techfeed__Sector) 99; // and an enum value of version 2
    s_send_with_field_20 (f->ingest, &put.request.base);
    s_expect_error (s_recv_reply (f->ingest), TECHFEED__ERROR_CODE__UNSUPPORTED, unsupported);
    record.sector = TECHFEED__SECTOR__SECTOR_SPACE;
    put.request.version = 1;
    s_send_with_field_20 (f->ingest, &put.request.base);
    s_expect_error (s_recv_reply (f->ingest), TECHFEED__ERROR_CODE__MALFORMED,
                    "unknown field 20 in techfeed.IngestRequest");

    Techfeed__SyncRequest request = TECHFEED__SYNC_REQUEST__INIT;
    request.has_version = request.has_kind = 1;
    request.version = 2;
    request.kind = TECHFEED__SYNC_KIND__SYNC_STATUS;
    s_send_with_field_20 (f->sync, &request.base);
    s_expect_sync_error (f->sync, TECHFEED__ERROR_CODE__UNSUPPORTED, unsupported);
    request.version = 1;
    s_send_with_field_20 (f->sync, &request.base);
    s_expect_sync_error (f->sync, TECHFEED__ERROR_CODE__MALFORMED,
                         "unknown field 20 in techfeed.SyncRequest");
    assert_int_equal (s_record_count (f), 0);
}

static int setup_short_cursors (void **state)
{
    const char *extra[] = { "--cursor-idle-ms", "200", "--http-addr", "127.0.0.1:0", NULL };
    return tf_raw_fixture_setup (state, extra);
}

/*  Puts `count` records PREFIX-0 ... in sector space, one at a time. */
static void s_put_space (fixture_t *f, const char *prefix, int count)
{
    for (int i = 0; i < count; i++) {
        char id[32];
        snprintf (id, sizeof id, "%s-%d", prefix, i);
        assert_int_equal (tf_raw_put (f->ingest, id, TECHFEED__SECTOR__SECTOR_SPACE), 0);
    }
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
    s_put_space (f, "cursor", 3);
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

// --------------------------------------------------------------- sync requests

static int setup_metrics (void **state)
{
    const char *extra[] = { "--http-addr", "127.0.0.1:0", NULL };
    return tf_raw_fixture_setup (state, extra);
}

/*  One sample of the service's /metrics. */
static double s_metric (fixture_t *f, const char *name)
{
    const char *names[] = { name };
    double value = -1;
    assert_true (tf_service_metrics (&f->svc, names, &value, 1));
    return value;
}

/*  The epoch, from SYNC_STATUS; caller frees. */
static char *s_epoch (fixture_t *f)
{
    Techfeed__SyncReply *status = tf_raw_status (f->sync);
    assert_non_null (status);
    assert_non_null (status->status);
    char *epoch = strdup (status->status->epoch);
    techfeed__sync_reply__free_unpacked (status, NULL);
    return epoch;
}

static void s_catchup_request (Techfeed__SyncRequest *request, const char *epoch)
{
    techfeed__sync_request__init (request);
    request->has_kind = request->has_since_sequence = 1;
    request->kind = TECHFEED__SYNC_KIND__SYNC_CATCHUP;
    request->since_sequence = 0;
    request->epoch = (char *) epoch;
}

/*  The reply to `request`: INVALID naming `field` first in its message,
    with no cursor and nothing of the log. */
static void s_expect_invalid (fixture_t *f, const Techfeed__SyncRequest *request, const char *field)
{
    tf_raw_send_sync (f->sync, request);
    Techfeed__SyncReply *reply = tf_raw_recv_sync (f->sync);
    assert_non_null (reply);
    if (reply->code != TECHFEED__ERROR_CODE__INVALID || !reply->message ||
        strncmp (reply->message, field, strlen (field)) != 0 ||
        reply->message[strlen (field)] != ':')
        fail_msg ("code %d, message \"%s\": INVALID naming %s expected", (int) reply->code,
                  reply->message ? reply->message : "", field);
    assert_false (reply->has_cursor && reply->cursor);
    assert_int_equal (reply->n_changes + reply->n_records, 0);
    techfeed__sync_reply__free_unpacked (reply, NULL);
}

/*  A catch-up with the request as given: OK, one change, the end mark. */
static void s_expect_one_change (fixture_t *f, const Techfeed__SyncRequest *request)
{
    tf_raw_send_sync (f->sync, request);
    Techfeed__SyncReply *reply = tf_raw_recv_sync (f->sync);
    assert_non_null (reply);
    assert_int_equal (reply->code, TECHFEED__ERROR_CODE__OK);
    assert_int_equal (reply->n_changes, 1);
    assert_true (reply->end);
    techfeed__sync_reply__free_unpacked (reply, NULL);
}

/*  A catch-up without its epoch (absent or empty) is INVALID, naming
    /epoch, and opens nothing: a client that forgot it would otherwise
    apply sequences of another epoch. With the epoch it is served. */
static void test_catchup_needs_its_epoch (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_int_equal (tf_raw_put (f->ingest, "epoch-one", TECHFEED__SECTOR__SECTOR_SPACE), 0);
    char *epoch = s_epoch (f);
    Techfeed__SyncRequest request;
    s_catchup_request (&request, NULL);
    s_expect_invalid (f, &request, "/epoch");
    request.epoch = (char *) "";
    s_expect_invalid (f, &request, "/epoch");
    //  Not an epoch at all is a client's mistake, not a trimmed log
    request.epoch = (char *) "not-hex";
    s_expect_invalid (f, &request, "/epoch");
    request.epoch = (char *) "0123456789ABCDEF0123456789ABCDEF";
    s_expect_invalid (f, &request, "/epoch");
    assert_int_equal ((int) s_metric (f, "techfeed_catchups_served_total"), 0);
    assert_int_equal ((int) s_metric (f, "techfeed_catchups_trimmed_total"), 0);
    request.epoch = epoch;
    s_expect_one_change (f, &request);
    assert_int_equal ((int) s_metric (f, "techfeed_catchups_served_total"), 1);
    free (epoch);
}

/*  SYNC_STATUS is of the whole database: a filter in it would be
    silently ignored, so it is INVALID (and the log says so). */
static void test_status_takes_no_filter (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    Techfeed__Sector space = TECHFEED__SECTOR__SECTOR_SPACE;
    Techfeed__Filter filter = TECHFEED__FILTER__INIT;
    filter.n_sectors = 1;
    filter.sectors = &space;
    Techfeed__SyncRequest request = TECHFEED__SYNC_REQUEST__INIT;
    request.has_version = request.has_kind = 1;
    request.version = 1;
    request.kind = TECHFEED__SYNC_KIND__SYNC_STATUS;
    request.filter = &filter;
    s_expect_invalid (f, &request, "/filter");
    //  Logged with its reason before the reply went
    assert_true (tf_test_file_has (f->svc.log, "refused sync request: INVALID: /filter"));
    Techfeed__SyncReply *reply = tf_raw_status (f->sync);
    assert_non_null (reply);
    assert_int_equal (reply->code, TECHFEED__ERROR_CODE__OK);
    assert_non_null (reply->status);
    techfeed__sync_reply__free_unpacked (reply, NULL);
}

/*  A catch-up filters by sector only (the log has no organization,
    country or date to filter by): any other filter field given is
    INVALID, naming it, and opens nothing. Sectors alone are served. */
static void test_catchup_filters_by_sector_only (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_int_equal (tf_raw_put (f->ingest, "filter-one", TECHFEED__SECTOR__SECTOR_SPACE), 0);
    char *epoch = s_epoch (f);
    Techfeed__Sector space = TECHFEED__SECTOR__SECTOR_SPACE;
    Techfeed__Filter filter = TECHFEED__FILTER__INIT;
    filter.n_sectors = 1;
    filter.sectors = &space;
    Techfeed__SyncRequest request;
    s_catchup_request (&request, epoch);
    request.filter = &filter;
    struct {
        char **member;
        const char *value, *field;
    } given[] = { { &filter.organization, "CNSA", "/filter/organization" },
                  { &filter.country, "CN", "/filter/country" },
                  { &filter.date_from, "2019", "/filter/date_from" },
                  { &filter.date_to, "2019-12", "/filter/date_to" } };
    for (size_t i = 0; i < sizeof given / sizeof given[0]; i++) {
        *given[i].member = (char *) given[i].value;
        s_expect_invalid (f, &request, given[i].field);
        *given[i].member = NULL;
    }
    assert_int_equal ((int) s_metric (f, "techfeed_catchups_served_total"), 0);
    s_expect_one_change (f, &request);
    assert_int_equal ((int) s_metric (f, "techfeed_catchups_served_total"), 1);
    free (epoch);
}

/*  Sends a sync request of `kind` with `request_id` (NULL: none). */
static void s_send_sync_id (zsock_t *sync, Techfeed__SyncKind kind, uint64_t cursor,
                            const char *request_id)
{
    Techfeed__SyncRequest request = TECHFEED__SYNC_REQUEST__INIT;
    request.has_kind = request.has_chunk_size = 1;
    request.kind = kind;
    request.chunk_size = 1;
    request.has_cursor = cursor != 0;
    request.cursor = cursor;
    request.request_id = (char *) request_id;
    tf_raw_send_sync (sync, &request);
}

/*  The next reply, which must carry `request_id` (NULL: none). */
static Techfeed__SyncReply *s_recv_sync_id (zsock_t *sync, const char *request_id)
{
    Techfeed__SyncReply *reply = tf_raw_recv_sync (sync);
    assert_non_null (reply);
    if (request_id)
        assert_string_equal (reply->request_id ? reply->request_id : "(none)", request_id);
    else
        assert_null (reply->request_id);
    return reply;
}

/*  Every sync reply carries its request's request_id, so a client that
    pipelines can match them: a SNAPSHOT ("a", answered once its chunk is
    read) and a STATUS ("b", answered at once) each get their own,
    whichever comes first; so do chunks that waited in the cursor (NEXTs
    sent together) and errors. A request without one gets a reply
    without one; an invalid one is INVALID. */
static void test_sync_replies_carry_request_id (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_put_space (f, "request-id", 3);
    s_send_sync_id (f->sync, TECHFEED__SYNC_KIND__SYNC_SNAPSHOT, 0, "a");
    s_send_sync_id (f->sync, TECHFEED__SYNC_KIND__SYNC_STATUS, 0, "b");
    uint64_t cursor = 0;
    bool got_a = false, got_b = false;
    for (int i = 0; i < 2; i++) {
        Techfeed__SyncReply *reply = tf_raw_recv_sync (f->sync);
        assert_non_null (reply);
        assert_non_null (reply->request_id);
        assert_int_equal (reply->code, TECHFEED__ERROR_CODE__OK);
        if (reply->status) {
            assert_string_equal (reply->request_id, "b");
            got_b = true;
        } else {
            assert_string_equal (reply->request_id, "a");
            assert_int_equal (reply->n_records, 1);
            cursor = reply->cursor;
            got_a = true;
        }
        techfeed__sync_reply__free_unpacked (reply, NULL);
    }
    assert_true (got_a && got_b && cursor);

    //  Chunks asked for together wait in the cursor, answered in order.
    s_send_sync_id (f->sync, TECHFEED__SYNC_KIND__SYNC_NEXT, cursor, "next-1");
    s_send_sync_id (f->sync, TECHFEED__SYNC_KIND__SYNC_NEXT, cursor, "next-2");
    s_send_sync_id (f->sync, TECHFEED__SYNC_KIND__SYNC_NEXT, cursor, "next-3");
    Techfeed__SyncReply *reply = s_recv_sync_id (f->sync, "next-1");
    assert_int_equal (reply->n_records, 1);
    techfeed__sync_reply__free_unpacked (reply, NULL);
    reply = s_recv_sync_id (f->sync, "next-2");
    assert_int_equal (reply->n_records, 1);
    techfeed__sync_reply__free_unpacked (reply, NULL);
    reply = s_recv_sync_id (f->sync, "next-3");
    assert_true (reply->end);
    techfeed__sync_reply__free_unpacked (reply, NULL);

    //  Errors, and a request without one.
    s_send_sync_id (f->sync, TECHFEED__SYNC_KIND__SYNC_NEXT, cursor, "gone");
    reply = s_recv_sync_id (f->sync, "gone");
    assert_int_equal (reply->code, TECHFEED__ERROR_CODE__NOT_FOUND);
    techfeed__sync_reply__free_unpacked (reply, NULL);
    s_send_sync_id (f->sync, (Techfeed__SyncKind) 0, 0, "no-kind");
    reply = s_recv_sync_id (f->sync, "no-kind");
    assert_int_equal (reply->code, TECHFEED__ERROR_CODE__UNSUPPORTED);
    techfeed__sync_reply__free_unpacked (reply, NULL);
    s_send_sync_id (f->sync, TECHFEED__SYNC_KIND__SYNC_STATUS, 0, NULL);
    reply = s_recv_sync_id (f->sync, NULL);
    assert_non_null (reply->status);
    techfeed__sync_reply__free_unpacked (reply, NULL);
    const char *invalid[] = { "", "with space",
                              "x123456789x123456789x123456789x123456789x123456789"
                              "x123456789x123456789" };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        s_send_sync_id (f->sync, TECHFEED__SYNC_KIND__SYNC_STATUS, 0, invalid[i]);
        reply = s_recv_sync_id (f->sync, NULL);
        assert_int_equal (reply->code, TECHFEED__ERROR_CODE__INVALID);
        assert_non_null (strstr (reply->message, "/request_id: "));
        assert_null (reply->status);
        techfeed__sync_reply__free_unpacked (reply, NULL);
    }
}

// --------------------------------------------------------------- shutdown

#define S_SCAN_RECORDS 50000 /* records a slow snapshot's second chunk reads through */
#define S_SCAN_OPS 1000      /* puts per request (--max-ops) */
#define S_SCAN_CURSORS 3     /* two lent to the service's reader, one queued */
#define S_ASKERS 8           /* NEXTs per cursor: as many as may wait (TF_ASKERS_MAX) */

/*  S_SCAN_RECORDS records scan-000000 ..., in id order; only the first
    and the last name the organization "Match". */
static void s_put_scan_records (fixture_t *f)
{
    static char ids[S_SCAN_OPS][32];
    static Techfeed__Milestone records[S_SCAN_OPS];
    char *match = (char *) "Match", *other = (char *) "Other";
    for (int first = 0; first < S_SCAN_RECORDS; first += S_SCAN_OPS) {
        for (int i = 0; i < S_SCAN_OPS; i++) {
            int n = first + i;
            snprintf (ids[i], sizeof ids[i], "scan-%06d", n);
            tf_raw_record (&records[i], ids[i], TECHFEED__SECTOR__SECTOR_SPACE);
            records[i].n_organizations = 1;
            records[i].organizations = n == 0 || n == S_SCAN_RECORDS - 1 ? &match : &other;
        }
        tf_raw_send_puts (f->ingest, records, S_SCAN_OPS);
        assert_true (tf_raw_recv_stored (f->ingest, S_SCAN_OPS));
    }
}

/*  The records table has every change of the log (a snapshot then reads
    the table, not the log's tail). */
static bool s_all_applied (void *arg)
{
    Techfeed__SyncReply *reply = tf_raw_status ((zsock_t *) arg);
    bool applied =
        reply && reply->status && reply->status->records_applied == reply->status->head_sequence;
    if (reply)
        techfeed__sync_reply__free_unpacked (reply, NULL);
    return applied;
}

/*  The index of `request_id` "<prefix><n>" in 0..count-1, -1 otherwise. */
static int s_id_index (const char *request_id, const char *prefix, int count)
{
    size_t len = strlen (prefix);
    if (!request_id || strncmp (request_id, prefix, len) != 0)
        return -1;
    char *end;
    long n = strtol (request_id + len, &end, 10);
    return *end || end == request_id + len || n < 0 || n >= count ? -1 : (int) n;
}

/*  The service's exit, once it has (reaped: pid 0 then). */
typedef struct {
    tf_service_t *svc;
    int status; /* exit status, or 128 + the signal that ended it */
} s_exit_t;

static bool s_exited (void *arg)
{
    s_exit_t *exit = (s_exit_t *) arg;
    int status;
    if (waitpid (exit->svc->pid, &status, WNOHANG) != exit->svc->pid)
        return false;
    exit->svc->pid = 0;
    exit->status = WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
    return true;
}

/*  Requests waiting in open cursors for chunks not yet read are answered
    when the service stops (SIGTERM), UNAVAILABLE, not left to their
    client's timeout. Each cursor's second chunk is slow: a snapshot of
    the organization "Match", one record a chunk, whose second record is
    the last of S_SCAN_RECORDS; the service's reader thread reads it
    ahead while S_ASKERS NEXTs on each cursor wait. A STATUS after them
    tells they all arrived; then SIGTERM. Every NEXT gets one reply (a
    chunk, the end mark, NOT_FOUND once the end mark closed the cursor, or
    UNAVAILABLE), and the service exits 0. Whether a scan still runs when
    the service handles SIGTERM is a race, so the test asserts what holds
    either way: each cursor either delivered its end mark (no UNAVAILABLE
    then: its waiting NEXTs got NOT_FOUND) or, cut by the shutdown, got
    UNAVAILABLE for its waiting NEXTs — none is left without an answer.
    How many took each way is printed. */
static void test_shutdown_answers_waiting_chunks (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_put_scan_records (f);
    assert_true (tf_test_wait_for (s_all_applied, f->sync, 20000));
    Techfeed__Filter filter = TECHFEED__FILTER__INIT;
    filter.organization = (char *) "Match";
    Techfeed__SyncRequest open = TECHFEED__SYNC_REQUEST__INIT;
    open.has_kind = open.has_chunk_size = 1;
    open.kind = TECHFEED__SYNC_KIND__SYNC_SNAPSHOT;
    open.chunk_size = 1;
    open.filter = &filter;
    char request_id[32];
    for (int c = 0; c < S_SCAN_CURSORS; c++) {
        snprintf (request_id, sizeof request_id, "open-%d", c);
        open.request_id = request_id;
        tf_raw_send_sync (f->sync, &open);
    }
    uint64_t cursors[S_SCAN_CURSORS] = { 0 };
    for (int i = 0; i < S_SCAN_CURSORS; i++) {
        Techfeed__SyncReply *reply = tf_raw_recv_sync (f->sync);
        assert_non_null (reply);
        int c = s_id_index (reply->request_id, "open-", S_SCAN_CURSORS);
        assert_true (c >= 0 && !cursors[c]);
        assert_int_equal (reply->code, TECHFEED__ERROR_CODE__OK);
        assert_int_equal (reply->n_records, 1);
        assert_true (reply->has_cursor && reply->cursor);
        cursors[c] = reply->cursor;
        techfeed__sync_reply__free_unpacked (reply, NULL);
    }
    int64_t asked = zclock_mono ();
    for (int c = 0; c < S_SCAN_CURSORS; c++)
        for (int i = 0; i < S_ASKERS; i++) {
            snprintf (request_id, sizeof request_id, "next-%d", c * S_ASKERS + i);
            s_send_sync_id (f->sync, TECHFEED__SYNC_KIND__SYNC_NEXT, cursors[c], request_id);
        }
    s_send_sync_id (f->sync, TECHFEED__SYNC_KIND__SYNC_STATUS, 0, "arrived");
    int replies[S_SCAN_CURSORS * S_ASKERS] = { 0 };
    int codes[TECHFEED__ERROR_CODE__UNSUPPORTED + 1] = { 0 };
    int unavailable[S_SCAN_CURSORS] = { 0 };
    bool ended[S_SCAN_CURSORS] = { false };
    int ended_before_term = 0; // cursors whose end mark came before SIGTERM
    bool stopped = false;
    int total = 0, others = 0;
    Techfeed__SyncReply *reply;
    while (total < S_SCAN_CURSORS * S_ASKERS && (reply = tf_raw_recv_sync (f->sync))) {
        int n = s_id_index (reply->request_id, "next-", S_SCAN_CURSORS * S_ASKERS);
        if (n >= 0) {
            replies[n]++;
            total++;
            int c = n / S_ASKERS;
            if (reply->code == TECHFEED__ERROR_CODE__UNAVAILABLE)
                unavailable[c]++;
            if (reply->code == TECHFEED__ERROR_CODE__OK && reply->has_end && reply->end) {
                ended[c] = true;
                ended_before_term += !stopped;
            }
            if ((int) reply->code <= TECHFEED__ERROR_CODE__UNSUPPORTED)
                codes[reply->code]++;
        } else if (reply->request_id && streq (reply->request_id, "arrived") && !stopped) {
            print_message ("NEXTs all in after %" PRId64 " ms, %d answered; SIGTERM\n",
                           zclock_mono () - asked, total);
            assert_int_equal (kill (f->svc.pid, SIGTERM), 0);
            stopped = true;
        } else
            others++;
        techfeed__sync_reply__free_unpacked (reply, NULL);
    }
    int cut = 0;
    for (int c = 0; c < S_SCAN_CURSORS; c++)
        cut += !ended[c];
    print_message ("%d NEXTs answered: %d OK, %d UNAVAILABLE, %d NOT_FOUND; of %d cursors %d "
                   "ended (%d before SIGTERM), %d cut by the shutdown%s\n",
                   total, codes[TECHFEED__ERROR_CODE__OK], codes[TECHFEED__ERROR_CODE__UNAVAILABLE],
                   codes[TECHFEED__ERROR_CODE__NOT_FOUND], S_SCAN_CURSORS, S_SCAN_CURSORS - cut,
                   ended_before_term, cut,
                   cut ? "" : " (every scan ended first: the UNAVAILABLE path did not run)");
    assert_true (stopped);
    assert_int_equal (others, 0);
    for (int n = 0; n < S_SCAN_CURSORS * S_ASKERS; n++)
        if (replies[n] != 1)
            fail_msg ("NEXT %d of cursor %d got %d replies", n % S_ASKERS, n / S_ASKERS,
                      replies[n]);
    assert_int_equal (codes[TECHFEED__ERROR_CODE__OK] + codes[TECHFEED__ERROR_CODE__UNAVAILABLE] +
                          codes[TECHFEED__ERROR_CODE__NOT_FOUND],
                      total);
    //  Each cursor: its end mark, or UNAVAILABLE for what waited on it
    for (int c = 0; c < S_SCAN_CURSORS; c++)
        if (ended[c] == (unavailable[c] > 0))
            fail_msg ("cursor %d: %s, %d UNAVAILABLE", c, ended[c] ? "ended" : "no end mark",
                      unavailable[c]);
    s_exit_t exit = { .svc = &f->svc, .status = -1 };
    assert_true (tf_test_wait_for (s_exited, &exit, 10000));
    assert_int_equal (exit.status, 0);
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
        cmocka_unit_test_setup_teardown (test_other_version_unknown_field, setup, teardown),
        cmocka_unit_test_setup_teardown (test_idle_cursor_closed, setup_short_cursors, teardown),
        cmocka_unit_test_setup_teardown (test_catchup_needs_its_epoch, setup_metrics, teardown),
        cmocka_unit_test_setup_teardown (test_status_takes_no_filter, setup, teardown),
        cmocka_unit_test_setup_teardown (test_catchup_filters_by_sector_only, setup_metrics,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_sync_replies_carry_request_id, setup, teardown),
        cmocka_unit_test_setup_teardown (test_shutdown_answers_waiting_chunks, setup, teardown),
    };
    return cmocka_run_group_tests_name ("ingest wire", tests, NULL, NULL);
}
