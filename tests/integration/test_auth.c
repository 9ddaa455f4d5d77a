/*  CURVE access control of the real service: the auth matrix of issue 4.
    Keys are made here with zcert; the service runs with --curve-secret,
    --writers and --readers (restricted). Only a writer's key stores
    anything, unauthorised subscribers receive nothing, and a key removed
    from the writers' directory stops working without a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <czmq.h>

#include "tf_rawclient.h"
#include "tf_testkit.h"
#include "tf_wire.h"

#define NO_REPLY_MS 1500 /* how long a refused handshake is given to answer anyway */
#define REPLY_MS 5000    /* bound on a reply that must come */

typedef struct {
    tf_service_t svc;
    char keys[300];    /* svc.dir/keys */
    zcert_t *server;   /* the service's certificate */
    zcert_t *writer;   /* in writers/ and readers/ */
    zcert_t *reader;   /* in readers/ only */
    zcert_t *stranger; /* nowhere */
} fixture_t;

static void s_save_public (zcert_t *cert, const char *dir, const char *name)
{
    char path[400];
    snprintf (path, sizeof path, "%s/%s.key", dir, name);
    assert_int_equal (zcert_save_public (cert, path), 0);
}

/*  Keys and a CURVE service; readers restricted unless `open_readers`. The
    writer is not listed among the readers: writers are admitted anyway. */
static int s_setup (void **state, bool open_readers)
{
    fixture_t *f = (fixture_t *) zmalloc (sizeof *f);
    char *dir = tf_test_tempdir ();
    snprintf (f->svc.dir, sizeof f->svc.dir, "%s", dir);
    free (dir);
    char writers[400], readers[400], secret[400];
    snprintf (writers, sizeof writers, "%s/writers", f->svc.dir);
    snprintf (readers, sizeof readers, "%s/readers", f->svc.dir);
    snprintf (secret, sizeof secret, "%s/server.cert", f->svc.dir);
    assert_int_equal (zsys_dir_create ("%s", writers), 0);
    assert_int_equal (zsys_dir_create ("%s", readers), 0);
    f->server = zcert_new ();
    f->writer = zcert_new ();
    f->reader = zcert_new ();
    f->stranger = zcert_new ();
    assert_int_equal (zcert_save (f->server, secret), 0);
    s_save_public (f->writer, writers, "writer");
    s_save_public (f->reader, readers, "reader");
    const char *extra[] = {
        "--curve-secret", secret, "--writers", writers, open_readers ? NULL : "--readers",
        readers,          NULL
    };
    assert_int_equal (tf_service_start (&f->svc, extra), 0);
    *state = f;
    return 0;
}

static int setup (void **state)
{
    return s_setup (state, false);
}

static int setup_open (void **state)
{
    return s_setup (state, true);
}

static int teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
    tf_service_cleanup (&f->svc);
    zcert_destroy (&f->server);
    zcert_destroy (&f->writer);
    zcert_destroy (&f->reader);
    zcert_destroy (&f->stranger);
    free (f);
    return 0;
}

/*  A client socket with `cert` (NULL: plain) trusting `server_key`,
    receiving with the short timeout of expected silence (NO_REPLY_MS):
    set REPLY_MS where a reply must come. */
static zsock_t *s_client (int type, const char *endpoint, zcert_t *cert, const char *server_key)
{
    zsock_t *socket = zsock_new (type);
    if (cert) {
        zcert_apply (cert, socket);
        zsock_set_curve_serverkey (socket, server_key);
    }
    zsock_set_rcvtimeo (socket, NO_REPLY_MS);
    zsock_set_linger (socket, 0);
    assert_int_equal (zsock_connect (socket, "%s", endpoint), 0);
    return socket;
}

/*  Record count as a reader sees it. */
static uint64_t s_count (fixture_t *f)
{
    zsock_t *sync = s_client (ZMQ_DEALER, f->svc.sync, f->reader, zcert_public_txt (f->server));
    zsock_set_rcvtimeo (sync, REPLY_MS);
    Techfeed__SyncReply *reply = tf_raw_status (sync);
    assert_non_null (reply);
    assert_non_null (reply->status);
    uint64_t count = reply->status->record_count;
    techfeed__sync_reply__free_unpacked (reply, NULL);
    zsock_destroy (&sync);
    return count;
}

static void test_matrix (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    const char *server_key = zcert_public_txt (f->server);
    zcert_t *wrong_server = zcert_new ();
    struct {
        const char *who;
        zcert_t *cert;
        const char *server_key;
        int expected; /* -1: no answer at all */
    } cases[] = {
        { "no keys", NULL, NULL, -1 },
        { "unknown key", f->stranger, server_key, -1 },
        { "reader key", f->reader, server_key, TECHFEED__ERROR_CODE__UNAUTHORIZED },
        { "wrong server key", f->writer, zcert_public_txt (wrong_server), -1 },
        { "writer key", f->writer, server_key, TECHFEED__ERROR_CODE__OK },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        zsock_t *socket = s_client (ZMQ_DEALER, f->svc.ingest, cases[i].cert, cases[i].server_key);
        //  The short timeout only where no answer is the expected outcome
        zsock_set_rcvtimeo (socket, cases[i].expected == -1 ? NO_REPLY_MS : REPLY_MS);
        char id[32];
        snprintf (id, sizeof id, "micius-%zu", i);
        int code = tf_raw_put (socket, id, TECHFEED__SECTOR__SECTOR_QUANTUM);
        print_message ("%-17s -> %d\n", cases[i].who, code);
        assert_int_equal (code, cases[i].expected);
        zsock_destroy (&socket);
    }
    zcert_destroy (&wrong_server);
    assert_int_equal (s_count (f), 1); /* only the writer's record */
}

static void test_removed_writer (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    const char *server_key = zcert_public_txt (f->server);
    zsock_t *socket = s_client (ZMQ_DEALER, f->svc.ingest, f->writer, server_key);
    zsock_set_rcvtimeo (socket, REPLY_MS);
    assert_int_equal (tf_raw_put (socket, "before-removal", TECHFEED__SECTOR__SECTOR_QUANTUM),
                      TECHFEED__ERROR_CODE__OK);
    char path[400];
    snprintf (path, sizeof path, "%s/writers/writer.key", f->svc.dir);
    assert_int_equal (unlink (path), 0);
    //  zcertstore notices a changed directory by its mtime, at second
    //  resolution on some filesystems: retry within a bound.
    int code = TECHFEED__ERROR_CODE__OK;
    for (int tries = 0; tries < 40 && code == TECHFEED__ERROR_CODE__OK; tries++) {
        char id[32];
        snprintf (id, sizeof id, "after-removal-%d", tries);
        code = tf_raw_put (socket, id, TECHFEED__SECTOR__SECTOR_QUANTUM);
        if (code == TECHFEED__ERROR_CODE__OK)
            zclock_sleep (100);
    }
    assert_int_equal (code, TECHFEED__ERROR_CODE__UNAUTHORIZED);
    zsock_destroy (&socket);
}

/*  Both subscribe; a writer puts; only the reader hears the event. */
static void test_subscribers (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    const char *server_key = zcert_public_txt (f->server);
    zsock_t *reader = s_client (ZMQ_SUB, f->svc.events, f->reader, server_key);
    zsock_t *stranger = s_client (ZMQ_SUB, f->svc.events, f->stranger, server_key);
    zsock_set_subscribe (reader, "quantum");
    zsock_set_subscribe (stranger, "");
    zsock_t *writer = s_client (ZMQ_DEALER, f->svc.ingest, f->writer, server_key);
    zsock_set_rcvtimeo (writer, REPLY_MS);
    //  Keep writing until the reader hears one (its subscription takes a
    //  moment to arrive): bounded.
    zmsg_t *heard = NULL;
    for (int i = 0; i < 50 && !heard; i++) {
        char id[32];
        snprintf (id, sizeof id, "event-%d", i);
        assert_int_equal (tf_raw_put (writer, id, TECHFEED__SECTOR__SECTOR_QUANTUM),
                          TECHFEED__ERROR_CODE__OK);
        zsock_set_rcvtimeo (reader, 100);
        heard = zmsg_recv (reader);
    }
    assert_non_null (heard);
    char *topic = zmsg_popstr (heard);
    assert_string_equal (topic, "quantum");
    zstr_free (&topic);
    zmsg_destroy (&heard);
    //  The stranger, subscribed to everything, got nothing at all.
    zsock_set_rcvtimeo (stranger, 200);
    zmsg_t *leaked = zmsg_recv (stranger);
    assert_null (leaked);
    zsock_destroy (&reader);
    zsock_destroy (&stranger);
    zsock_destroy (&writer);
}

/*  Readers open: any key reads, and the service still tells writers from
    the rest (the key each request came with). */
static void test_open_readers (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    const char *server_key = zcert_public_txt (f->server);
    zsock_t *writer = s_client (ZMQ_DEALER, f->svc.ingest, f->writer, server_key);
    zsock_t *stranger = s_client (ZMQ_DEALER, f->svc.ingest, f->stranger, server_key);
    zsock_set_rcvtimeo (writer, REPLY_MS);
    zsock_set_rcvtimeo (stranger, REPLY_MS);
    assert_int_equal (tf_raw_put (writer, "open-1", TECHFEED__SECTOR__SECTOR_QUANTUM), 0);
    assert_int_equal (tf_raw_put (stranger, "open-2", TECHFEED__SECTOR__SECTOR_QUANTUM),
                      TECHFEED__ERROR_CODE__UNAUTHORIZED);
    zsock_destroy (&writer);
    zsock_destroy (&stranger);
    //  The stranger may read: its status shows the writer's record.
    zsock_t *sync = s_client (ZMQ_DEALER, f->svc.sync, f->stranger, server_key);
    zsock_set_rcvtimeo (sync, REPLY_MS);
    Techfeed__SyncReply *reply = tf_raw_status (sync);
    assert_non_null (reply);
    assert_int_equal (reply->status->record_count, 1);
    techfeed__sync_reply__free_unpacked (reply, NULL);
    zsock_destroy (&sync);
}

/*  Plain TCP beyond loopback is refused before anything is bound. */
static void test_refuses_exposed_plain (void **state)
{
    const char *argv[] = { tf_test_program ("techfeed-ingestd"),
                           "--data-dir",
                           "/nonexistent/x",
                           "--ingest",
                           "tcp://0.0.0.0:5560",
                           NULL };
    char *out = NULL, *err = NULL;
    int status = tf_test_run (NULL, argv, NULL, &out, &err, 20000);
    assert_int_equal (status, 78);
    assert_non_null (strstr (err, "refusing to listen beyond loopback without CURVE"));
    free (out);
    free (err);
}

int main (void)
{
    zsys_init ();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_matrix, setup, teardown),
        cmocka_unit_test_setup_teardown (test_removed_writer, setup, teardown),
        cmocka_unit_test_setup_teardown (test_subscribers, setup, teardown),
        cmocka_unit_test_setup_teardown (test_open_readers, setup_open, teardown),
        cmocka_unit_test (test_refuses_exposed_plain),
    };
    return cmocka_run_group_tests_name ("CURVE access control", tests, NULL, NULL);
}
