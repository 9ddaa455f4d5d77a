/*  Hostile input against the real service (issue 4): frames over the
    limit, a 100k-element repeated field, invalid UTF-8, an embedded NUL, a
    huge subscription topic, a corrupt or foreign database file. Each is
    refused with the right error (or the connection is dropped where libzmq
    allows no reply), nothing is stored, other clients are unaffected and
    the service's memory stays bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <czmq.h>

#include "tf_rawclient.h"
#include "tf_testkit.h"
#include "tf_wire.h"

#define MAX_FRAME 65536

typedef tf_raw_fixture_t fixture_t;

static int setup (void **state)
{
    const char *extra[] = { "--max-frame", "65536", NULL };
    return tf_raw_fixture_setup (state, extra);
}

static int teardown (void **state)
{
    return tf_raw_fixture_teardown (state);
}

static uint64_t s_count (fixture_t *f)
{
    return tf_raw_count (f->sync);
}

/*  Resident memory of the service, KiB. */
static long s_rss_kib (pid_t pid)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *file = fopen (path, "r");
    assert_non_null (file);
    long kib = -1;
    while (fgets (line, sizeof line, file))
        if (sscanf (line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose (file);
    return kib;
}

/*  Sends a put of `record` and returns the reply (caller frees). */
static Techfeed__IngestReply *s_put_record (fixture_t *f, Techfeed__Milestone *record)
{
    Techfeed__IngestReply *reply = tf_raw_put_record (f->ingest, record);
    assert_non_null (reply);
    return reply;
}

static void test_oversized_frame_drops_only_that_peer (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    zsock_t *hostile = zsock_new_dealer (f->svc.ingest);
    zsock_set_rcvtimeo (hostile, 1000);
    size_t size = MAX_FRAME * 4;
    uint8_t *junk = (uint8_t *) zmalloc (size);
    memset (junk, 0x0a, size);
    zframe_t *frame = zframe_new (junk, size);
    free (junk);
    zframe_send (&frame, hostile, 0);
    //  libzmq drops a peer that sends more than ZMQ_MAXMSGSIZE: no reply.
    zframe_t *reply = zframe_recv (hostile);
    assert_null (reply);
    zsock_destroy (&hostile);
    //  Everyone else goes on.
    assert_int_equal (tf_raw_put (f->ingest, "after-oversized", TECHFEED__SECTOR__SECTOR_AI), 0);
    assert_int_equal (s_count (f), 1);
}

static void test_huge_repeated_field (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    long rss_before = s_rss_kib (f->svc.pid);
    Techfeed__Milestone record;
    tf_raw_record (&record, "many-tags", TECHFEED__SECTOR__SECTOR_AI);
    //  100,000 one-letter tags: about 300 KB packed, over --max-frame.
    enum { N = 100000 };
    char **tags = (char **) zmalloc (N * sizeof (char *));
    for (size_t i = 0; i < N; i++)
        tags[i] = (char *) "a";
    record.tags = tags;
    record.n_tags = N;
    zsock_t *hostile = zsock_new_dealer (f->svc.ingest);
    zsock_set_rcvtimeo (hostile, 1000);
    tf_raw_one_put_t put;
    tf_raw_one_put (&put, &record);
    tf_raw_send_request (hostile, &put.request);
    assert_null (tf_raw_recv_reply (hostile)); /* over the frame limit: dropped */
    zsock_destroy (&hostile);
    //  Under the frame limit, a list over its rule is named.
    record.n_tags = 1000;
    Techfeed__IngestReply *reply = s_put_record (f, &record);
    assert_int_equal (reply->results[0]->code, TECHFEED__ERROR_CODE__INVALID);
    assert_string_equal (reply->results[0]->field, "/tags");
    techfeed__ingest_reply__free_unpacked (reply, NULL);
    free (tags);
    assert_int_equal (s_count (f), 0);
    long rss_after = s_rss_kib (f->svc.pid);
    print_message ("service RSS %ld KiB -> %ld KiB\n", rss_before, rss_after);
    assert_true (rss_after < rss_before + 64 * 1024);
}

static void test_bad_text (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    Techfeed__Milestone record;
    tf_raw_record (&record, "bad-utf8", TECHFEED__SECTOR__SECTOR_AI);
    record.title = (char *) "overlong \xc0\xaf slash";
    Techfeed__IngestReply *reply = s_put_record (f, &record);
    assert_int_equal (reply->results[0]->code, TECHFEED__ERROR_CODE__INVALID);
    assert_string_equal (reply->results[0]->field, "/title");
    assert_non_null (strstr (reply->results[0]->message, "UTF-8"));
    techfeed__ingest_reply__free_unpacked (reply, NULL);

    //  An embedded NUL: packed by hand, since C strings stop at it.
    tf_raw_record (&record, "nul-title", TECHFEED__SECTOR__SECTOR_AI);
    record.title = (char *) "0123456789";
    tf_raw_one_put_t put;
    tf_raw_one_put (&put, &record);
    size_t size;
    uint8_t *data = tf_wire_pack (&put.request.base, &size);
    uint8_t *at = (uint8_t *) memmem (data, size, "0123456789", 10);
    assert_non_null (at);
    at[4] = 0;
    zframe_t *frame = zframe_new (data, size);
    free (data);
    zframe_send (&frame, f->ingest, 0);
    reply = tf_raw_recv_reply (f->ingest);
    assert_non_null (reply);
    assert_int_equal (reply->code, TECHFEED__ERROR_CODE__MALFORMED);
    techfeed__ingest_reply__free_unpacked (reply, NULL);
    assert_int_equal (s_count (f), 0);
}

static void test_huge_subscription (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    long rss_before = s_rss_kib (f->svc.pid);
    //  It also asks for everything: were the huge topic accepted, it would
    //  hear every event. Refused, its connection drops each time it sends
    //  its subscriptions, and it hears nothing.
    zsock_t *hostile = zsock_new_sub (f->svc.events, "");
    //  16 KiB: 64 times the service's limit. (Much longer topics crash the
    //  *subscriber*: libzmq keeps subscriptions in a trie it walks
    //  recursively, one frame per byte.)
    char *topic = (char *) zmalloc (16 * 1024 + 1);
    memset (topic, 'a', 16 * 1024);
    zsock_set_subscribe (hostile, topic);
    free (topic);
    zsock_t *good = zsock_new_sub (f->svc.events, "ai");
    zsock_set_rcvtimeo (good, 200);
    //  The good subscriber hears events; the service is unharmed.
    zmsg_t *heard = NULL;
    for (int i = 0; i < 50 && !heard; i++) {
        char id[32];
        snprintf (id, sizeof id, "sub-%d", i);
        assert_int_equal (tf_raw_put (f->ingest, id, TECHFEED__SECTOR__SECTOR_AI), 0);
        heard = zmsg_recv (good);
    }
    assert_non_null (heard);
    zmsg_destroy (&heard);
    zsock_set_rcvtimeo (hostile, 300);
    zmsg_t *leaked = zmsg_recv (hostile);
    assert_null (leaked);
    long rss_after = s_rss_kib (f->svc.pid);
    print_message ("service RSS %ld KiB -> %ld KiB\n", rss_before, rss_after);
    assert_true (rss_after < rss_before + 64 * 1024);
    zsock_destroy (&hostile);
    zsock_destroy (&good);
}

/*  A service started on `bytes` as its database must refuse to start. */
static void s_expect_refusal (const void *bytes, size_t size, const char *expect)
{
    char *dir = tf_test_tempdir ();
    char data[300], db[340];
    snprintf (data, sizeof data, "%s/data", dir);
    snprintf (db, sizeof db, "%s/techfeed.db", data);
    assert_int_equal (zsys_dir_create ("%s", data), 0);
    FILE *file = fopen (db, "wb");
    assert_non_null (file);
    assert_int_equal (fwrite (bytes, 1, size, file), size);
    fclose (file);
    const char *argv[] = { tf_test_program ("techfeed-ingestd"),
                           "--data-dir",
                           data,
                           "--ingest",
                           "ipc://@techfeed-hostile-i",
                           "--events",
                           "ipc://@techfeed-hostile-e",
                           "--sync",
                           "ipc://@techfeed-hostile-s",
                           NULL };
    char *out = NULL, *err = NULL;
    int status = tf_test_run (NULL, argv, NULL, &out, &err, 20000);
    print_message ("exit %d: %s", status, err);
    assert_true (status > 0 && status < 128); /* an exit, not a crash */
    assert_non_null (strstr (err, expect));
    assert_non_null (strstr (err, db));
    free (out);
    free (err);
    tf_test_rmtree (dir);
    free (dir);
}

static void test_corrupt_database_refused (void **state)
{
    //  Not a database at all.
    const char garbage[] = "this file is not an SQLite database, it is a grocery list";
    s_expect_refusal (garbage, sizeof garbage, "not a techfeed database");

    //  A real techfeed database, truncated and then with its header bit-flipped.
    tf_service_t svc = { 0 };
    assert_int_equal (tf_service_start (&svc, NULL), 0);
    zsock_t *dealer = zsock_new_dealer (svc.ingest);
    zsock_set_rcvtimeo (dealer, 5000);
    for (int i = 0; i < 200; i++) {
        char id[32];
        snprintf (id, sizeof id, "record-%d", i);
        assert_int_equal (tf_raw_put (dealer, id, TECHFEED__SECTOR__SECTOR_SPACE), 0);
    }
    zsock_destroy (&dealer);
    assert_int_equal (tf_service_stop (&svc, 10000), 0);
    char path[400];
    snprintf (path, sizeof path, "%s/data/techfeed.db", svc.dir);
    size_t size;
    char *bytes = NULL;
    FILE *file = fopen (path, "rb");
    assert_non_null (file);
    fseek (file, 0, SEEK_END);
    size = (size_t) ftell (file);
    fseek (file, 0, SEEK_SET);
    bytes = (char *) zmalloc (size);
    assert_int_equal (fread (bytes, 1, size, file), size);
    fclose (file);
    assert_true (size > 8192);
    s_expect_refusal (bytes, size / 2, "corrupt");
    bytes[16] ^= 0x5a; /* page size field of the header */
    s_expect_refusal (bytes, size, "techfeed.db");
    free (bytes);
    tf_service_cleanup (&svc);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_oversized_frame_drops_only_that_peer, setup,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_huge_repeated_field, setup, teardown),
        cmocka_unit_test_setup_teardown (test_bad_text, setup, teardown),
        cmocka_unit_test_setup_teardown (test_huge_subscription, setup, teardown),
        cmocka_unit_test (test_corrupt_database_refused),
    };
    return cmocka_run_group_tests_name ("hostile input", tests, NULL, NULL);
}
