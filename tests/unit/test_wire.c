/*  Unit tests for proto/tf_wire.c: codec round trips, hostile bytes,
    slugs and the digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../lib/tf_fixture.h"
#include "tf_wire.h"

#define BUDGET (1024 * 1024)

static char s_err[256];
static Techfeed__Milestone *s_record; /* the fixture, every field set */

static int s_setup (void **state)
{
    s_record = tf_fixture_milestone ();
    return 0;
}

static int s_teardown (void **state)
{
    techfeed__milestone__free_unpacked (s_record, NULL);
    return 0;
}

/*  Packs, unpacks through tf_wire_unpack, packs again: same bytes. */
static void s_round_trip (const ProtobufCMessage *msg)
{
    size_t size, size2;
    uint8_t *bytes = tf_wire_pack (msg, &size);
    ProtobufCMessage *copy =
        tf_wire_unpack (msg->descriptor, bytes, size, BUDGET, s_err, sizeof s_err);
    if (!copy)
        fail_msg ("%s: %s", msg->descriptor->name, s_err);
    assert_ptr_equal (copy->descriptor, msg->descriptor);
    uint8_t *bytes2 = tf_wire_pack (copy, &size2);
    assert_int_equal (size, size2);
    assert_memory_equal (bytes, bytes2, size);
    free (bytes);
    free (bytes2);
    tf_wire_free (copy);
}

static void test_round_trip_milestone (void **state)
{
    Techfeed__Milestone *m = s_record;
    s_round_trip (&m->base);
    s_round_trip (&m->metrics[0]->base);

    size_t size;
    uint8_t *bytes = tf_wire_pack (&m->base, &size);
    Techfeed__Milestone *copy = (Techfeed__Milestone *) tf_wire_unpack (
        &techfeed__milestone__descriptor, bytes, size, BUDGET, s_err, sizeof s_err);
    assert_non_null (copy);
    assert_string_equal (copy->id, m->id);
    assert_int_equal (copy->sector, TECHFEED__SECTOR__SECTOR_SPACE);
    assert_int_equal (copy->n_organizations, 2);
    assert_string_equal (copy->organizations[1], "CAST");
    assert_true (copy->metrics[0]->value == 140.0);
    assert_int_equal (copy->updated_at_ms, 1795887738123);
    tf_wire_free (&copy->base);
    free (bytes);

    Techfeed__Milestone *dup = tf_milestone_dup (m);
    assert_string_equal (dup->title, m->title);
    assert_string_equal (dup->tags[1], "far-side");
    assert_int_equal (dup->revision, 7);
    techfeed__milestone__free_unpacked (dup, NULL);
}

static void test_round_trip_ingest (void **state)
{
    Techfeed__Operation put, del, *ops[] = { &put, &del };
    techfeed__operation__init (&put);
    put.has_kind = 1;
    put.kind = TECHFEED__OP_KIND__OP_PUT;
    put.record = s_record;
    put.has_expected_revision = 1;
    put.expected_revision = 0;
    techfeed__operation__init (&del);
    del.has_kind = 1;
    del.kind = TECHFEED__OP_KIND__OP_DELETE;
    del.id = "old-record";
    s_round_trip (&put.base);

    Techfeed__IngestRequest req;
    techfeed__ingest_request__init (&req);
    req.has_version = 1;
    req.version = TF_PROTOCOL_VERSION;
    req.request_id = "6b1f0c5e-1c1e-4a51-9d0a-2f7b4e1c9a11";
    req.n_ops = 2;
    req.ops = ops;
    req.has_atomic = 1;
    req.atomic = 1;
    s_round_trip (&req.base);

    Techfeed__ItemResult ok, bad, *results[] = { &ok, &bad };
    techfeed__item_result__init (&ok);
    ok.has_code = 1;
    ok.code = TECHFEED__ERROR_CODE__OK;
    ok.id = "change-4-far-side-landing";
    ok.has_sequence = 1;
    ok.sequence = 42;
    ok.has_revision = 1;
    ok.revision = 1;
    techfeed__item_result__init (&bad);
    bad.has_code = 1;
    bad.code = TECHFEED__ERROR_CODE__CONFLICT;
    bad.id = "old-record";
    bad.field = "/id";
    bad.message = "stale";
    bad.has_current_revision = 1;
    bad.current_revision = 3;
    s_round_trip (&bad.base);

    Techfeed__IngestReply reply;
    techfeed__ingest_reply__init (&reply);
    reply.has_version = 1;
    reply.version = 1;
    reply.request_id = req.request_id;
    reply.has_code = 1;
    reply.code = TECHFEED__ERROR_CODE__OK;
    reply.message = "";
    reply.n_results = 2;
    reply.results = results;
    reply.epoch = "0123456789abcdef0123456789abcdef";
    reply.has_replayed = 1;
    reply.replayed = 1;
    s_round_trip (&reply.base);
}

static void test_round_trip_events_and_sync (void **state)
{
    Techfeed__ChangeEvent ev, *changes[] = { &ev };
    tf_fixture_change (&ev, TECHFEED__CHANGE_KIND__CHANGE_PUT, 9);
    ev.record = s_record;
    ev.has_sector_prev_sequence = 1;
    ev.sector_prev_sequence = 4;
    ev.has_timestamp_ms = 1;
    ev.timestamp_ms = -5; // negative int64 survives
    s_round_trip (&ev.base);

    Techfeed__SectorHead h1, h2, *heads[] = { &h1, &h2 };
    techfeed__sector_head__init (&h1);
    h1.has_sector = 1;
    h1.sector = TECHFEED__SECTOR__SECTOR_AI;
    h1.has_sequence = 1;
    h1.sequence = 3;
    techfeed__sector_head__init (&h2);
    h2.has_sector = 1;
    h2.sector = TECHFEED__SECTOR__SECTOR_OTHER;
    h2.has_sequence = 1;
    h2.sequence = 9;
    s_round_trip (&h1.base);

    Techfeed__Heartbeat hb;
    techfeed__heartbeat__init (&hb);
    hb.epoch = ev.epoch;
    hb.has_head_sequence = 1;
    hb.head_sequence = 9;
    hb.n_sector_heads = 2;
    hb.sector_heads = heads;
    hb.has_interval_ms = 1;
    hb.interval_ms = 1000;
    hb.has_timestamp_ms = 1;
    hb.timestamp_ms = tf_now_ms ();
    hb.has_log_first_sequence = 1;
    hb.log_first_sequence = 1;
    s_round_trip (&hb.base);

    Techfeed__Sector sectors[] = { TECHFEED__SECTOR__SECTOR_AI,
                                   TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL };
    Techfeed__Filter filter;
    techfeed__filter__init (&filter);
    filter.n_sectors = 2;
    filter.sectors = sectors;
    filter.organization = "CNSA";
    filter.country = "CN";
    filter.date_from = "2019";
    filter.date_to = "2024-06";
    s_round_trip (&filter.base);

    char *ids[] = { "a", "b.c", "d_e" };
    Techfeed__SyncRequest sreq;
    techfeed__sync_request__init (&sreq);
    sreq.has_version = 1;
    sreq.version = 1;
    sreq.has_kind = 1;
    sreq.kind = TECHFEED__SYNC_KIND__SYNC_CATCHUP;
    sreq.filter = &filter;
    sreq.has_since_sequence = 1;
    sreq.since_sequence = 5;
    sreq.has_cursor = 1;
    sreq.cursor = 77;
    sreq.n_ids = 3;
    sreq.ids = ids;
    sreq.has_chunk_size = 1;
    sreq.chunk_size = 500;
    sreq.epoch = ev.epoch;
    s_round_trip (&sreq.base);

    Techfeed__ServerStatus st;
    techfeed__server_status__init (&st);
    st.epoch = ev.epoch;
    st.has_head_sequence = 1;
    st.head_sequence = 9;
    st.has_record_count = 1;
    st.record_count = 1;
    st.digest = "6df36a90991393df";
    st.has_log_first_sequence = 1;
    st.log_first_sequence = 1;
    st.n_sector_heads = 2;
    st.sector_heads = heads;
    st.version = "0.1.0";
    s_round_trip (&st.base);

    Techfeed__Milestone *records[] = { s_record };
    Techfeed__SyncReply srep;
    techfeed__sync_reply__init (&srep);
    srep.has_version = 1;
    srep.version = 1;
    srep.has_code = 1;
    srep.code = TECHFEED__ERROR_CODE__OK;
    srep.message = "ok";
    srep.epoch = ev.epoch;
    srep.has_cursor = 1;
    srep.cursor = 0;
    srep.n_records = 1;
    srep.records = records;
    srep.n_changes = 1;
    srep.changes = changes;
    srep.has_end = 1;
    srep.end = 1;
    srep.has_sequence = 1;
    srep.sequence = 9;
    srep.status = &st;
    srep.n_sector_heads = 2;
    srep.sector_heads = heads;
    s_round_trip (&srep.base);
}

static void test_empty_and_null (void **state)
{
    Techfeed__Milestone m;
    techfeed__milestone__init (&m);
    size_t size = 99;
    uint8_t *bytes = tf_wire_pack (&m.base, &size);
    assert_non_null (bytes);
    assert_int_equal (size, 0);
    free (bytes);

    ProtobufCMessage *msg =
        tf_wire_unpack (&techfeed__milestone__descriptor, NULL, 0, BUDGET, s_err, sizeof s_err);
    assert_non_null (msg);
    tf_wire_free (msg);
    tf_wire_free (NULL);
}

static void test_truncated (void **state)
{
    size_t size;
    uint8_t *bytes = tf_wire_pack (&s_record->base, &size);
    int failures = 0;
    //  A cut at a field boundary is itself a valid (shorter) message; any
    //  other cut must be refused cleanly.
    for (size_t n = 1; n < size; n++) {
        uint8_t *copy = malloc (n); // exact size, so ASan sees any overread
        memcpy (copy, bytes, n);
        ProtobufCMessage *msg =
            tf_wire_unpack (&techfeed__milestone__descriptor, copy, n, BUDGET, s_err, sizeof s_err);
        if (msg)
            tf_wire_free (msg);
        else {
            assert_string_equal (s_err, "not a valid techfeed.Milestone (truncated or malformed)");
            failures++;
        }
        free (copy);
    }
    assert_true (failures > (int) size / 2);
    //  The last field is a multi-byte varint: cutting its last byte leaves it open
    ProtobufCMessage *msg = tf_wire_unpack (&techfeed__milestone__descriptor, bytes, size - 1,
                                            BUDGET, s_err, sizeof s_err);
    assert_null (msg);
    free (bytes);

    const uint8_t request[] = { 0x1a, 0x05, 0x08, 0x01 }; // ops claims 5 bytes, has 2
    msg = tf_wire_unpack (&techfeed__ingest_request__descriptor, request, sizeof request, BUDGET,
                          s_err, sizeof s_err);
    assert_null (msg);
    assert_string_equal (s_err, "not a valid techfeed.IngestRequest (truncated or malformed)");
}

/*  xorshift64*, so the garbage is the same on every run */
static uint64_t s_rand (uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void test_random_garbage (void **state)
{
    const ProtobufCMessageDescriptor *descs[] = {
        &techfeed__ingest_request__descriptor, &techfeed__sync_request__descriptor,
        &techfeed__change_event__descriptor,   &techfeed__heartbeat__descriptor,
        &techfeed__sync_reply__descriptor,
    };
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n = s_rand (&seed) % 200;
        uint8_t *buf = malloc (n ? n : 1);
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t) s_rand (&seed);
        //  Half the time start with a plausible key so the parser goes deeper
        if (n > 2 && (i & 1))
            buf[0] = 0x1a;
        const ProtobufCMessageDescriptor *d = descs[i % 5];
        ProtobufCMessage *msg = tf_wire_unpack (d, buf, n, 64 * 1024, s_err, sizeof s_err);
        if (msg) {
            accepted++;
            assert_false (tf_wire_has_unknown_fields (msg));
            tf_wire_free (msg);
        } else
            assert_true (strlen (s_err) > 0);
        free (buf);
    }
    assert_true (accepted < 20000);
}

static void test_budget (void **state)
{
    enum { N = 100000 };
    char **ids = malloc (N * sizeof *ids);
    for (int i = 0; i < N; i++)
        ids[i] = "x";
    Techfeed__SyncRequest req;
    techfeed__sync_request__init (&req);
    req.n_ids = N;
    req.ids = ids;
    size_t size;
    uint8_t *bytes = tf_wire_pack (&req.base, &size);
    free (ids);
    assert_int_equal (size, N * 3);

    ProtobufCMessage *msg = tf_wire_unpack (&techfeed__sync_request__descriptor, bytes, size,
                                            64 * 1024, s_err, sizeof s_err);
    assert_null (msg);
    assert_string_equal (s_err, "message exceeds the decode budget of 65536 bytes");

    //  Budget too small for even the top-level struct
    msg = tf_wire_unpack (&techfeed__sync_request__descriptor, bytes, size, 8, s_err, sizeof s_err);
    assert_null (msg);
    assert_string_equal (s_err, "message exceeds the decode budget of 8 bytes");

    msg = tf_wire_unpack (&techfeed__sync_request__descriptor, bytes, size, 32 * 1024 * 1024, s_err,
                          sizeof s_err);
    assert_non_null (msg);
    assert_int_equal (((Techfeed__SyncRequest *) msg)->n_ids, N);
    tf_wire_free (msg);
    free (bytes);
}

/*  Wraps `inner` as length-delimited field `number` (lengths < 128). */
static size_t s_wrap (uint8_t *out, unsigned number, const uint8_t *inner, size_t size)
{
    assert_true (size < 128 && number < 16);
    out[0] = (uint8_t) (number << 3 | 2);
    out[1] = (uint8_t) size;
    memcpy (out + 2, inner, size);
    return size + 2;
}

static void test_unknown_field (void **state)
{
    //  Field 99, varint 1: key (99 << 3 | 0) = 792 = 0x98 0x06
    const uint8_t unknown[] = { 0x98, 0x06, 0x01 };
    Techfeed__Milestone m;
    techfeed__milestone__init (&m);
    m.id = "change-4";
    m.date = "2019";
    size_t size;
    uint8_t *packed = tf_wire_pack (&m.base, &size);
    uint8_t record[64];
    memcpy (record, packed, size);
    memcpy (record + size, unknown, sizeof unknown);
    size_t record_size = size + sizeof unknown;
    free (packed);

    ProtobufCMessage *msg = tf_wire_unpack (&techfeed__milestone__descriptor, record, record_size,
                                            BUDGET, s_err, sizeof s_err);
    assert_null (msg);
    assert_string_equal (s_err, "unknown field 99 in techfeed.Milestone");

    //  Nested: IngestRequest.ops[0].record carries it
    uint8_t op[96], request[128];
    size_t op_size = s_wrap (op, 2, record, record_size);
    size_t request_size = s_wrap (request, 3, op, op_size);
    msg = tf_wire_unpack (&techfeed__ingest_request__descriptor, request, request_size, BUDGET,
                          s_err, sizeof s_err);
    assert_null (msg);
    assert_string_equal (s_err, "unknown field 99 in techfeed.Milestone");

    //  protobuf-c alone keeps it; tf_wire_has_unknown_fields finds it
    ProtobufCMessage *plain = protobuf_c_message_unpack (&techfeed__ingest_request__descriptor,
                                                         NULL, request_size, request);
    assert_non_null (plain);
    assert_true (tf_wire_has_unknown_fields (plain));
    protobuf_c_message_free_unpacked (plain, NULL);

    //  Without the unknown field the same nesting is accepted
    op_size = s_wrap (op, 2, record, size);
    request_size = s_wrap (request, 3, op, op_size);
    msg = tf_wire_unpack (&techfeed__ingest_request__descriptor, request, request_size, BUDGET,
                          s_err, sizeof s_err);
    assert_non_null (msg);
    assert_false (tf_wire_has_unknown_fields (msg));
    tf_wire_free (msg);

    //  An unknown length-delimited field at the top level (field 15)
    const uint8_t top[] = { 0x08, 0x01, 0x7a, 0x02, 'h', 'i' };
    msg = tf_wire_unpack (&techfeed__sync_request__descriptor, top, sizeof top, BUDGET, s_err,
                          sizeof s_err);
    assert_null (msg);
    assert_string_equal (s_err, "unknown field 15 in techfeed.SyncRequest");
}

/*  A request of another version is left to the caller's version check
    (UNSUPPORTED) whatever that version adds; of version 1, and any reply,
    what this version does not know is still refused, and so is a NUL. */
static void test_other_version (void **state)
{
    //  version (field 1) = 2, then field 20 = 1: key 20 << 3 | 0 = 0xa0 0x01
    const uint8_t v2[] = { 0x08, 0x02, 0xa0, 0x01, 0x01 };
    ProtobufCMessage *msg = tf_wire_unpack (&techfeed__ingest_request__descriptor, v2, sizeof v2,
                                            BUDGET, s_err, sizeof s_err);
    assert_non_null (msg);
    assert_int_equal (((Techfeed__IngestRequest *) msg)->version, 2);
    tf_wire_free (msg);
    //  Also nested (ops[0] holds field 20) and with SyncRequest.kind 99
    const uint8_t nested[] = { 0x08, 0x07, 0x1a, 0x03, 0xa0, 0x01, 0x01 };
    msg = tf_wire_unpack (&techfeed__ingest_request__descriptor, nested, sizeof nested, BUDGET,
                          s_err, sizeof s_err);
    assert_non_null (msg);
    tf_wire_free (msg);
    const uint8_t sync[] = { 0x08, 0x02, 0x10, 0x63, 0xa0, 0x01, 0x01 };
    msg = tf_wire_unpack (&techfeed__sync_request__descriptor, sync, sizeof sync, BUDGET, s_err,
                          sizeof s_err);
    assert_non_null (msg);
    assert_int_equal (((Techfeed__SyncRequest *) msg)->version, 2);
    tf_wire_free (msg);

    //  Version 1, said or not: MALFORMED as before
    const uint8_t v1[] = { 0x08, 0x01, 0xa0, 0x01, 0x01 };
    assert_null (tf_wire_unpack (&techfeed__ingest_request__descriptor, v1, sizeof v1, BUDGET,
                                 s_err, sizeof s_err));
    assert_string_equal (s_err, "unknown field 20 in techfeed.IngestRequest");
    assert_null (tf_wire_unpack (&techfeed__ingest_request__descriptor, v2 + 2, sizeof v2 - 2,
                                 BUDGET, s_err, sizeof s_err));
    assert_string_equal (s_err, "unknown field 20 in techfeed.IngestRequest");
    const uint8_t sync_v1[] = { 0x08, 0x01, 0x10, 0x63 };
    assert_null (tf_wire_unpack (&techfeed__sync_request__descriptor, sync_v1, sizeof sync_v1,
                                 BUDGET, s_err, sizeof s_err));
    assert_string_equal (s_err, "value 99 out of range for techfeed.SyncKind in field kind");
    //  A field number no version can have: 0 in a two-byte key (protobuf-c
    //  would write it back in one, which it refuses), 2^29 (nested)
    const uint8_t zero[] = { 0x08, 0x02, 0x80, 0x00, 0x05 };
    assert_null (tf_wire_unpack (&techfeed__sync_request__descriptor, zero, sizeof zero, BUDGET,
                                 s_err, sizeof s_err));
    assert_string_equal (s_err, "invalid field 0 in techfeed.SyncRequest");
    const uint8_t huge[] = { 0x08, 0x02, 0x1a, 0x06, 0x80, 0x80, 0x80, 0x80, 0x10, 0x01 };
    assert_null (tf_wire_unpack (&techfeed__ingest_request__descriptor, huge, sizeof huge, BUDGET,
                                 s_err, sizeof s_err));
    assert_string_equal (s_err, "invalid field 536870912 in techfeed.Operation");
    //  A reply of another version is not a request: still refused
    assert_null (tf_wire_unpack (&techfeed__ingest_reply__descriptor, v2, sizeof v2, BUDGET, s_err,
                                 sizeof s_err));
    assert_string_equal (s_err, "unknown field 20 in techfeed.IngestReply");
    //  The NUL check stays: request_id (field 2) "a\0b"
    const uint8_t nul[] = { 0x08, 0x02, 0x12, 0x03, 'a', 0x00, 'b', 0xa0, 0x01, 0x01 };
    assert_null (tf_wire_unpack (&techfeed__ingest_request__descriptor, nul, sizeof nul, BUDGET,
                                 s_err, sizeof s_err));
    assert_string_equal (s_err, "techfeed.IngestRequest.request_id contains a NUL byte");
}

static void test_enum_out_of_range (void **state)
{
    //  Milestone.sector (field 2) = 99
    const uint8_t sector[] = { 0x0a, 0x01, 'a', 0x10, 0x63 };
    ProtobufCMessage *msg = tf_wire_unpack (&techfeed__milestone__descriptor, sector, sizeof sector,
                                            BUDGET, s_err, sizeof s_err);
    assert_null (msg);
    assert_string_equal (s_err, "value 99 out of range for techfeed.Sector in field sector");

    //  -1, a ten-byte varint
    const uint8_t negative[] = { 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
    msg = tf_wire_unpack (&techfeed__milestone__descriptor, negative, sizeof negative, BUDGET,
                          s_err, sizeof s_err);
    assert_null (msg);
    assert_string_equal (s_err, "value -1 out of range for techfeed.Sector in field sector");

    //  Repeated and nested: SyncRequest.filter (3).sectors (1) = [1, 42]
    const uint8_t filter[] = { 0x08, 0x01, 0x1a, 0x04, 0x08, 0x01, 0x08, 0x2a };
    msg = tf_wire_unpack (&techfeed__sync_request__descriptor, filter, sizeof filter, BUDGET, s_err,
                          sizeof s_err);
    assert_null (msg);
    assert_string_equal (s_err, "value 42 out of range for techfeed.Sector in field sectors");

    //  Packed encoding of the same repeated enum
    const uint8_t packed[] = { 0x1a, 0x04, 0x0a, 0x02, 0x05, 0x0b };
    msg = tf_wire_unpack (&techfeed__sync_request__descriptor, packed, sizeof packed, BUDGET, s_err,
                          sizeof s_err);
    assert_null (msg);
    assert_string_equal (s_err, "value 11 out of range for techfeed.Sector in field sectors");

    //  ItemResult.code (1) = 13 inside IngestReply.results (5)
    const uint8_t reply[] = { 0x2a, 0x02, 0x08, 0x0d };
    msg = tf_wire_unpack (&techfeed__ingest_reply__descriptor, reply, sizeof reply, BUDGET, s_err,
                          sizeof s_err);
    assert_null (msg);
    assert_string_equal (s_err, "value 13 out of range for techfeed.ErrorCode in field code");

    //  0 (UNSPECIFIED) is a defined value: refusing it is validation's job
    const uint8_t zero[] = { 0x10, 0x00 };
    msg = tf_wire_unpack (&techfeed__milestone__descriptor, zero, sizeof zero, BUDGET, s_err,
                          sizeof s_err);
    assert_non_null (msg);
    tf_wire_free (msg);
}

static void test_digest (void **state)
{
    //  Pins the algorithm of PROTOCOL.md "Digest"; clients in other
    //  languages check against the same values.
    assert_true (tf_digest_item ("change-4-far-side-landing", 1) == 0x6df36a90991393dfULL);
    assert_true (tf_digest_item ("", 0) == 0xefd01f60ba992926ULL);
    assert_true (tf_digest_item ("a", 2) == 0x4bb1f169e92be9afULL);

    const char *ids[] = { "change-4-far-side-landing", "cr-40000-km", "apollo-go-wuhan" };
    const uint64_t revs[] = { 1, 3, 2 };
    uint64_t forward = 0, backward = 0;
    for (int i = 0; i < 3; i++)
        forward += tf_digest_item (ids[i], revs[i]);
    for (int i = 2; i >= 0; i--)
        backward += tf_digest_item (ids[i], revs[i]);
    assert_true (forward == backward);
    char hex[17];
    tf_digest_format (forward, hex);
    assert_string_equal (hex, "0403c869cc2c28f0");

    //  Incremental update: replace revision 3 by 4, then back
    uint64_t d = forward - tf_digest_item ("cr-40000-km", 3) + tf_digest_item ("cr-40000-km", 4);
    assert_true (d != forward);
    d = d - tf_digest_item ("cr-40000-km", 4) + tf_digest_item ("cr-40000-km", 3);
    assert_true (d == forward);

    //  Stable across calls, sensitive to both inputs
    assert_true (tf_digest_item ("x", 1) == tf_digest_item ("x", 1));
    assert_true (tf_digest_item ("x", 1) != tf_digest_item ("x", 2));
    assert_true (tf_digest_item ("x", 1) != tf_digest_item ("y", 1));

    tf_digest_format (0, hex);
    assert_string_equal (hex, "0000000000000000");
    tf_digest_format (UINT64_MAX, hex);
    assert_string_equal (hex, "ffffffffffffffff");
}

static void test_sector_slugs (void **state)
{
    const char *expected[] = { NULL,   "ai",      "telecom", "fintech", "energy", "space",
                               "rail", "biotech", "quantum", "chips",   "other" };
    for (int i = 1; i <= TF_SECTOR_MAX; i++) {
        assert_string_equal (tf_sector_slug (i), expected[i]);
        assert_int_equal (tf_sector_from_slug (expected[i]), i);
        //  Each slug is a topic: none is a prefix of another or of "heartbeat"
        for (int j = 1; j <= TF_SECTOR_MAX; j++)
            if (j != i)
                assert_int_not_equal (
                    strncmp (tf_sector_slug (i), tf_sector_slug (j), strlen (tf_sector_slug (i))),
                    0);
        assert_int_not_equal (
            strncmp (tf_sector_slug (i), TF_HEARTBEAT_TOPIC, strlen (tf_sector_slug (i))), 0);
        assert_int_not_equal (
            strncmp (TF_HEARTBEAT_TOPIC, tf_sector_slug (i), strlen (TF_HEARTBEAT_TOPIC)), 0);
    }
    assert_null (tf_sector_slug (0));
    assert_null (tf_sector_slug (11));
    assert_null (tf_sector_slug (-1));

    assert_int_equal (tf_sector_from_slug ("SPACE"), 5);
    assert_int_equal (tf_sector_from_slug ("Chips"), 9);
    assert_int_equal (tf_sector_from_slug ("HIGH_SPEED_RAIL"), 6);
    assert_int_equal (tf_sector_from_slug ("renewables_ev"), 4);
    assert_int_equal (tf_sector_from_slug ("ecommerce_fintech"), 3);
    assert_int_equal (tf_sector_from_slug ("semiconductors"), 9);
    assert_int_equal (tf_sector_from_slug ("unspecified"), -1);
    assert_int_equal (tf_sector_from_slug ("SECTOR_AI"), -1);
    assert_int_equal (tf_sector_from_slug ("mars"), -1);
    assert_int_equal (tf_sector_from_slug ("spac"), -1);
    assert_int_equal (tf_sector_from_slug (""), -1);
    assert_int_equal (tf_sector_from_slug (NULL), -1);
}

static void test_status_and_error_names (void **state)
{
    const char *expected[] = { NULL,       "announced",   "in_progress",
                               "achieved", "operational", "claimed" };
    for (int i = 1; i <= TF_STATUS_MAX; i++) {
        assert_string_equal (tf_status_name (i), expected[i]);
        assert_int_equal (tf_status_from_name (expected[i]), i);
    }
    assert_null (tf_status_name (0));
    assert_null (tf_status_name (6));
    assert_int_equal (tf_status_from_name ("in-progress"), 2);
    assert_int_equal (tf_status_from_name ("ACHIEVED"), 3);
    assert_int_equal (tf_status_from_name ("done"), -1);
    assert_int_equal (tf_status_from_name (NULL), -1);

    assert_string_equal (tf_error_name (0), "OK");
    assert_string_equal (tf_error_name (1), "MALFORMED");
    assert_string_equal (tf_error_name (2), "INVALID");
    assert_string_equal (tf_error_name (7), "STORAGE_FULL");
    assert_string_equal (tf_error_name (12), "UNSUPPORTED");
    assert_string_equal (tf_error_name (13), "UNKNOWN");
    assert_string_equal (tf_error_name (-1), "UNKNOWN");
}

static void test_now (void **state)
{
    int64_t a = tf_now_ms ();
    int64_t b = tf_now_ms ();
    assert_true (a > 1577836800000LL); // after 2020-01-01
    assert_true (b >= a);
}

/*  Keys and lengths as varints: one byte up to 127, more past it. */
static void test_field_head (void **state)
{
    uint8_t head[TF_WIRE_HEAD_MAX];
    assert_int_equal (tf_wire_field_head (head, 7, 0), 2);
    assert_int_equal (head[0], 7 << 3 | 2);
    assert_int_equal (head[1], 0);
    assert_int_equal (tf_wire_field_head (head, 7, 127), 2);
    assert_int_equal (head[1], 127);
    assert_int_equal (tf_wire_field_head (head, 7, 128), 3);
    assert_int_equal (head[1], 0x80);
    assert_int_equal (head[2], 0x01);
    assert_int_equal (tf_wire_field_head (head, 7, 16384), 4);
    assert_int_equal (tf_wire_field_head (head, 16, 1), 3); // key 130 takes two bytes
    assert_int_equal (head[0], 0x82);
    assert_int_equal (head[1], 0x01);
}

/*  An event with its record appended as stored bytes decodes like the
    event packed with the record set. */
static void test_pack_with (void **state)
{
    size_t body_size;
    uint8_t *body = tf_wire_pack (&s_record->base, &body_size);
    Techfeed__ChangeEvent event = TECHFEED__CHANGE_EVENT__INIT;
    event.epoch = (char *) "0123456789abcdef0123456789abcdef";
    event.has_sequence = event.has_kind = 1;
    event.sequence = 300;
    event.kind = TECHFEED__CHANGE_KIND__CHANGE_PUT;
    event.id = s_record->id;
    size_t size;
    uint8_t *data = tf_wire_pack_with (&event.base, 7, body, body_size, &size);
    event.record = s_record;
    size_t expected_size;
    uint8_t *expected = tf_wire_pack (&event.base, &expected_size);
    assert_int_equal (size, expected_size);
    assert_memory_equal (data, expected, size);
    Techfeed__ChangeEvent *decoded = techfeed__change_event__unpack (NULL, size, data);
    assert_non_null (decoded);
    assert_non_null (decoded->record);
    assert_string_equal (decoded->record->title, s_record->title);
    techfeed__change_event__free_unpacked (decoded, NULL);
    free (expected);
    free (data);
    free (body);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_round_trip_milestone),
        cmocka_unit_test (test_round_trip_ingest),
        cmocka_unit_test (test_round_trip_events_and_sync),
        cmocka_unit_test (test_empty_and_null),
        cmocka_unit_test (test_truncated),
        cmocka_unit_test (test_random_garbage),
        cmocka_unit_test (test_budget),
        cmocka_unit_test (test_unknown_field),
        cmocka_unit_test (test_other_version),
        cmocka_unit_test (test_enum_out_of_range),
        cmocka_unit_test (test_digest),
        cmocka_unit_test (test_sector_slugs),
        cmocka_unit_test (test_status_and_error_names),
        cmocka_unit_test (test_now),
        cmocka_unit_test (test_field_head),
        cmocka_unit_test (test_pack_with),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
