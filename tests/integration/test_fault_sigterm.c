/*  Fault: SIGTERM during a burst of writes (issue 5, graceful shutdown),
    a SIGHUP, which the service ignores, and the endpoints file of a
    stopped service.

    Four writer threads send requests of 20 records as fast as the
    service answers; SIGTERM arrives in the middle. The service must exit
    0 within 5 s, having answered what it took in, with its WAL
    checkpointed; after a restart every acknowledged record is stored
    (acked lost = 0) and nothing was stored twice. Requests it did not
    take in get no answer (the writers try once here): how many were
    stored anyway is printed — a request stored but never answered would
    be a write the client must retry blind.
*/
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tf_faultkit.h"
#include "tf_spawn.h"
#include "tf_wire.h"

#define S_WRITERS 4
#define S_OPS 20

/*  The service with its default settings. */
static int setup (void **state)
{
    return tf_fk_setup_with (state, NULL);
}

static void test_sigterm_during_burst (void **state)
{
    tf_fk_fixture_t *f = (tf_fk_fixture_t *) *state;
    tf_fk_load_config_t config = { .endpoint = f->svc.ingest,
                                   .prefix = "term",
                                   .writers = S_WRITERS,
                                   .ids = 2000,
                                   .ops = S_OPS,
                                   .timeout_ms = 3000,
                                   .tries = 1, // no retry: unanswered means unanswered
                                   .summary_bytes = 500 };
    f->load = tf_fk_load_start (&config);
    uint64_t acked;
    int64_t deadline = tf_fk_now_ms () + 10000;
    while ((acked = tf_fk_load_acked (f->load)) < 2000 && tf_fk_now_ms () < deadline)
        usleep (10000);
    assert_true (acked >= 2000); // a burst is under way

    int64_t sent = tf_fk_now_ms ();
    int rc = tf_service_stop (&f->svc, 5000); // SIGTERM, then waits up to 5 s
    int64_t exited = tf_fk_now_ms ();
    tf_fk_load_stop (f->load);
    tf_fk_load_stats_t stats;
    tf_fk_load_stats (f->load, &stats);
    char wal[400];
    snprintf (wal, sizeof wal, "%s/data/techfeed.db-wal", f->svc.dir);
    long long wal_size = tf_test_file_size (wal);

    assert_int_equal (tf_service_start (&f->svc, NULL), 0);
    f->stored = tf_fk_revisions (&f->svc);
    assert_non_null (f->stored);
    uint64_t lost, doubled, ids, revisions = 0;
    tf_fk_load_check (f->load, f->stored, &lost, &doubled, &ids);
    for (void *r = zhashx_first (f->stored); r; r = zhashx_next (f->stored))
        revisions += (uintptr_t) r;
    uint64_t unanswered_stored = revisions - stats.acked;
    print_message ("SIGTERM after %" PRIu64 " acknowledged puts: exit status %d after %" PRId64
                   " ms (bound 5000), WAL left: %lld bytes\n",
                   acked, rc, exited - sent, wal_size < 0 ? 0 : wal_size);
    print_message ("requests answered %" PRIu64 " (refused %" PRIu64 " operations%s%s), not "
                   "answered %" PRIu64 " (%" PRIu64 " operations, %" PRIu64 " of them stored)\n",
                   stats.requests, stats.refused, stats.refused ? ", last: " : "",
                   stats.refused ? tf_error_name (stats.last_refused) : "", stats.no_reply,
                   stats.uncertain, unanswered_stored);
    print_message ("acked lost: %" PRIu64 " of %" PRIu64 "; duplicates: %" PRIu64 "\n", lost,
                   stats.acked, doubled + stats.mismatches);
    assert_int_equal (rc, 0);
    assert_true (exited - sent < 5000);
    assert_true (wal_size <= 0); // checkpointed
    assert_int_equal (lost, 0);
    assert_int_equal (doubled, 0);
    assert_int_equal (stats.mismatches, 0);
    assert_true (stats.uncertain >= unanswered_stored);
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
}

/*  SIGHUP is ignored: no settings are read again, and a closed terminal
    must not stop the service without its clean stop. */
static void test_sighup_ignored (void **state)
{
    tf_service_t svc = { 0 };
    assert_int_equal (tf_service_start (&svc, NULL), 0);
    assert_int_equal (kill (svc.pid, SIGHUP), 0);
    char *out = NULL, *err = NULL;
    int rc = tf_test_cli (&svc, NULL, &out, &err, "health", NULL);
    if (rc != 0)
        fail_msg ("health after SIGHUP: exit %d: %s", rc, err);
    free (out);
    free (err);
    char endpoints[400];
    snprintf (endpoints, sizeof endpoints, "%s/endpoints", svc.dir);
    assert_true (tf_test_file_size (endpoints) > 0);
    assert_int_equal (tf_service_stop (&svc, 10000), 0);
    //  A clean stop takes its endpoints file away: it would send clients nowhere
    assert_int_equal (tf_test_file_size (endpoints), -1);
    tf_service_cleanup (&svc);
}

/*  Two services told to write the same endpoints file (a mistake, or a
    second instance): the one that stops removes the file only while it
    is the one it wrote, not the other's, which still runs. */
static void test_endpoints_file_of_another (void **state)
{
    tf_service_t first = { 0 };
    assert_int_equal (tf_service_start (&first, NULL), 0);
    char endpoints[400], data[420];
    snprintf (endpoints, sizeof endpoints, "%s/endpoints", first.dir);
    snprintf (data, sizeof data, "%s/second-data", first.dir);
    char *before = tf_spawn_read (endpoints);
    const char *argv[] = { tf_test_program ("techfeed-ingestd"),
                           "--data-dir",
                           data,
                           "--endpoints-file",
                           endpoints,
                           "--ingest",
                           "tcp://127.0.0.1:!",
                           "--events",
                           "tcp://127.0.0.1:!",
                           "--sync",
                           "tcp://127.0.0.1:!",
                           NULL };
    tf_spawn_t second;
    assert_int_equal (tf_spawn_start (&second, NULL, first.dir, "second", argv, NULL), 0);
    assert_true (tf_spawn_wait_text (second.err, "listening:", 1, 20000));
    char *after = tf_spawn_read (endpoints);
    assert_string_not_equal (after, before);
    //  The first stops: the file is the second's, and stays
    assert_int_equal (tf_service_stop (&first, 10000), 0);
    char *kept = tf_spawn_read (endpoints);
    assert_string_equal (kept, after);
    //  The second stops: its own file goes
    assert_int_equal (tf_spawn_stop (&second, SIGTERM, 10000), 0);
    assert_int_equal (tf_test_file_size (endpoints), -1);
    free (before);
    free (after);
    free (kept);
    tf_service_cleanup (&first);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_sigterm_during_burst, setup, tf_fk_teardown_any_exit),
        cmocka_unit_test (test_sighup_ignored),
        cmocka_unit_test (test_endpoints_file_of_another),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
