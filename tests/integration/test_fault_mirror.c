/*  Faults of a persistent view (a library view backed by an SQLite file,
    tf_view_set_store), run in a process of its own (this test binary
    again, with --subscriber) so it can be stopped and killed:

    1. The log trimmed below its position while it is down (service with
       --log-keep 10 --maintenance-ms 100; the view down while more than 10
       changes are made): the service answers its catch-up TRIMMED, and on
       return the view falls back to a snapshot and converges. A second
       absence that the log still covers ends with a catch-up, no snapshot.
    2. Killed with -9 during a catch-up, three times: each time its file is
       intact (opens, passes quick_check) and holds exactly the records of
       the position it stores (checked against the log replayed up to that
       position); restarted, it resumes from there by catch-up and
       converges.
*/
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tf_faultkit.h"
#include "tf_wire.h"

typedef struct {
    tf_service_t svc;
    tf_fk_subscriber_t sub;
    char store[400]; /* the view's file */
} fixture_t;

static int s_setup (void **state, const char *const *args)
{
    fixture_t *f = (fixture_t *) zmalloc (sizeof *f);
    f->sub.fd = -1;
    assert_int_equal (tf_service_start (&f->svc, args), 0);
    snprintf (f->store, sizeof f->store, "%s/mirror.db", f->svc.dir);
    *state = f;
    return 0;
}

static int setup_trimming (void **state)
{
    const char *args[] = { "--heartbeat-ms",   "200", "--log-keep", "10",
                           "--maintenance-ms", "100", NULL };
    return s_setup (state, args);
}

static int setup_plain (void **state)
{
    const char *args[] = { "--heartbeat-ms", "200", NULL };
    return s_setup (state, args);
}

static int teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_fk_subscriber_stop (&f->sub);
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
    tf_service_cleanup (&f->svc);
    free (f);
    return 0;
}

/*  Starts the persistent view and waits until it equals the database. */
static void s_view_converges (fixture_t *f, tf_status_t *status)
{
    assert_int_equal (tf_fk_status (&f->svc, status), 0);
    assert_int_equal (tf_fk_subscriber_start (&f->sub, &f->svc, NULL, 0, f->store), 0);
    bool ok = tf_fk_subscriber_wait (&f->sub, status->digest, status->head_sequence, 20000);
    if (!ok)
        print_message ("view: state %s position %" PRIu64 " digest %016" PRIx64 ", server head "
                       "%" PRIu64 " digest %016" PRIx64 "\n",
                       tf_view_state_name (f->sub.info.state), f->sub.info.position,
                       f->sub.info.digest, status->head_sequence, status->digest);
    assert_true (ok);
}

static void s_store_status (fixture_t *f, tf_view_store_status_t *stored)
{
    char err[300];
    int rc = tf_view_store_status (f->store, stored, err, sizeof err);
    if (rc)
        print_message ("mirror file: %s\n", err);
    assert_int_equal (rc, 0);
}

static bool s_trimmed_below (void *arg)
{
    void **pair = (void **) arg;
    tf_status_t status;
    return tf_fk_status ((const tf_service_t *) pair[0], &status) == 0 &&
           status.log_first_sequence > *(uint64_t *) pair[1] + 1;
}

static void test_trimmed_while_down (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_status_t status;
    tf_view_store_status_t stored;
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "trim", 0, 20, 10, 100), 0);
    s_view_converges (f, &status);
    assert_int_equal (tf_fk_subscriber_stop (&f->sub), 0); // down, its position in its file
    s_store_status (f, &stored);
    uint64_t position = stored.position;
    assert_int_equal (position, status.head_sequence);
    assert_int_equal (stored.digest, status.digest);

    //  30 changes while it is down (10 updates, 20 new); the log keeps 10
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "trim", 10, 30, 10, 100), 0);
    void *pair[] = { &f->svc, &position };
    assert_true (tf_test_wait_for (s_trimmed_below, pair, 5000));
    assert_int_equal (tf_fk_status (&f->svc, &status), 0);
    uint64_t changes = 0;
    int code = tf_fk_catchup_count (&f->svc, position, stored.epoch, &changes, NULL);
    print_message ("down at position %" PRIu64 "; log now %" PRIu64 "..%" PRIu64
                   ": a catch-up since %" PRIu64 " is answered %s\n",
                   position, status.log_first_sequence, status.head_sequence, position,
                   tf_error_name (code));
    assert_int_equal (code, TECHFEED__ERROR_CODE__TRIMMED);

    s_view_converges (f, &status);
    tf_fk_view_info_t back = f->sub.info;
    s_store_status (f, &stored);
    print_message ("back: snapshots %" PRIu64 ", catch-ups %" PRIu64 ", digest %016" PRIx64
                   " = server %016" PRIx64 ", file at position %" PRIu64 " with %" PRIu64
                   " records\n",
                   back.stats.snapshots, back.stats.catchups, back.digest, status.digest,
                   stored.position, stored.record_count);
    assert_int_equal (back.stats.snapshots, 1); // the fallback
    assert_int_equal (back.count, status.record_count);
    assert_int_equal (back.order_errors, 0);
    assert_int_equal (stored.digest, status.digest);
    assert_int_equal (stored.record_count, status.record_count);

    //  Down again for 5 changes: the log still holds them, a catch-up does
    assert_int_equal (tf_fk_subscriber_stop (&f->sub), 0);
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "trim", 35, 5, 5, 100), 0);
    usleep (300000); // a few maintenance rounds
    s_view_converges (f, &status);
    back = f->sub.info;
    print_message ("down for 5 changes (log %" PRIu64 "..%" PRIu64 "): snapshots %" PRIu64
                   ", catch-ups %" PRIu64 ", digest equal\n",
                   status.log_first_sequence, status.head_sequence, back.stats.snapshots,
                   back.stats.catchups);
    assert_int_equal (back.stats.snapshots, 0);
    assert_true (back.stats.catchups >= 1);
}

/*  Polls the file until the view committed a batch at or past `target`,
    waits a random moment more, and kills the view if it is not at `head`
    yet. The position the file had just before, 0 when the catch-up ended
    first. */
static uint64_t s_kill_during_catchup (fixture_t *f, uint64_t target, uint64_t head, unsigned *seed)
{
    int64_t deadline = tf_fk_now_ms () + 20000;
    while (tf_fk_now_ms () < deadline) {
        tf_view_store_status_t stored;
        char err[300];
        if (tf_view_store_status (f->store, &stored, err, sizeof err) == 0 &&
            stored.position >= target) {
            usleep ((useconds_t) tf_fk_rand (seed, 0, 20000)); // anywhere in the next batch
            if (stored.position >= head)
                return 0;
            kill (f->sub.pid, SIGKILL);
            waitpid (f->sub.pid, NULL, 0);
            f->sub.pid = 0;
            tf_fk_subscriber_stop (&f->sub); // closes the pipe
            return stored.position;
        }
        usleep (1000);
    }
    return 0;
}

static void test_killed_during_catchup (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_status_t status;
    tf_view_store_status_t stored;
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "mk", 0, 100, 100, 200), 0);
    s_view_converges (f, &status);
    assert_int_equal (tf_fk_subscriber_stop (&f->sub), 0);
    unsigned seed = tf_fk_seed ();
    print_message ("seed %u (TF_SEED replays it)\n", seed);
    for (int round = 1; round <= 3; round++) {
        //  A backlog the view must catch up with (chunks of 500, one batch each):
        //  updates of every record and new ones
        assert_int_equal (tf_fk_put_many (f->svc.ingest, "mk", 0, 6000, 500, 200), 0);
        s_store_status (f, &stored);
        uint64_t from = stored.position;
        assert_int_equal (tf_fk_status (&f->svc, &status), 0);
        assert_int_equal (tf_fk_subscriber_start (&f->sub, &f->svc, NULL, 0, f->store), 0);
        uint64_t target = from + (uint64_t) tf_fk_rand (&seed, 1, 3000);
        uint64_t at = s_kill_during_catchup (f, target, status.head_sequence, &seed);
        assert_true (at > from); // killed after a batch of the catch-up, before its end

        //  The file: opens, passes quick_check, holds exactly the state at its position
        s_store_status (f, &stored);
        uint64_t digest, count;
        assert_int_equal (tf_fk_digest_at (&f->svc, status.epoch, stored.position, &digest, &count),
                          0);
        print_message ("round %d: killed at position %" PRIu64 " of %" PRIu64 " (catch-up from "
                       "%" PRIu64 "); file at %" PRIu64 ": %" PRIu64 " records, digest %016" PRIx64
                       ", the log replayed to %" PRIu64 ": %" PRIu64 " records, %016" PRIx64 "\n",
                       round, at, status.head_sequence, from, stored.position, stored.record_count,
                       stored.digest, stored.position, count, digest);
        assert_true (stored.position >= at);
        assert_int_equal (stored.digest, digest);
        assert_int_equal (stored.record_count, count);
    }
    s_view_converges (f, &status);
    tf_fk_view_info_t back = f->sub.info;
    s_store_status (f, &stored);
    print_message ("restarted: converged by catch-up (snapshots %" PRIu64 ", catch-ups %" PRIu64
                   "), digest %016" PRIx64 " = server, file position %" PRIu64 "\n",
                   back.stats.snapshots, back.stats.catchups, back.digest, stored.position);
    assert_int_equal (back.stats.snapshots, 0);
    assert_int_equal (stored.digest, status.digest);
    assert_int_equal (stored.position, status.head_sequence);
}

int main (int argc, char **argv)
{
    tf_fk_subscriber_dispatch (argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_trimmed_while_down, setup_trimming, teardown),
        cmocka_unit_test_setup_teardown (test_killed_during_catchup, setup_plain, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
