/*  Faults of a persistent view (a library view backed by an SQLite file,
    tf_view_set_store), run in a process of its own (this test binary
    again, with --subscriber) so it can be stopped and killed:

    1. The log trimmed below its position while it is down (service with
       --log-keep 10 --maintenance-ms 100; the view down while more than 10
       changes are made): the service answers its catch-up TRIMMED, and on
       return the view falls back to a snapshot and converges. A second
       absence that the log still covers ends with a catch-up, no snapshot.
       Once with the library view, once with `techfeed mirror`.
    2. Killed with -9 during a catch-up, three times: each time its file is
       intact (opens, passes quick_check) and holds exactly the records of
       the position it stores (checked against the log replayed up to that
       position); restarted, it resumes from there by catch-up and
       converges. Once with the library view, once with `techfeed mirror`
       (whose `--status` must read the file after each kill).
*/
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <sys/wait.h>

#include "tf_faultkit.h"
#include "tf_wire.h"

typedef struct {
    tf_service_t svc;
    tf_fk_subscriber_t sub;
    pid_t mirror;    /* `techfeed mirror`, 0 when not running */
    char store[400]; /* the view's file */
    char log[400];   /* the last `techfeed mirror`'s output */
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
    if (f->mirror > 0)
        tf_fk_terminate (f->mirror, 10000);
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
    tf_service_cleanup (&f->svc);
    free (f);
    return 0;
}

static void s_store_status (fixture_t *f, tf_view_store_status_t *stored)
{
    char err[300];
    int rc = tf_view_store_status (f->store, stored, err, sizeof err);
    if (rc)
        print_message ("mirror file: %s\n", err);
    assert_int_equal (rc, 0);
}

/*  The persistent view under test: the library's in a child process, or
    the CLI's `techfeed mirror`; both on f->store. */
static void s_mirror_start (fixture_t *f, bool cli, int run)
{
    if (!cli) {
        assert_int_equal (tf_fk_subscriber_start (&f->sub, &f->svc, NULL, 0, f->store), 0);
        return;
    }
    snprintf (f->log, sizeof f->log, "%s/mirror-%d.log", f->svc.dir, run);
    const char *argv[] = { tf_test_program ("techfeed"), "mirror", "--db", f->store, NULL };
    f->mirror = tf_fk_spawn (&f->svc, argv, f->log);
    assert_true (f->mirror > 0);
}

static pid_t s_mirror_pid (fixture_t *f, bool cli)
{
    return cli ? f->mirror : f->sub.pid;
}

/*  SIGTERM: exit 0 expected. */
static int s_mirror_stop (fixture_t *f, bool cli)
{
    if (!cli)
        return tf_fk_subscriber_stop (&f->sub);
    int rc = tf_fk_terminate (f->mirror, 10000);
    f->mirror = 0;
    return rc;
}

/*  Waits until the file is at the database's head with its digest (and
    the library view in the child says so too). */
static void s_mirror_converges (fixture_t *f, bool cli, tf_status_t *status)
{
    assert_int_equal (tf_fk_status (&f->svc, status), 0);
    tf_view_store_status_t stored = { 0 };
    int64_t deadline = tf_fk_now_ms () + 20000;
    do {
        char err[300];
        if (tf_view_store_status (f->store, &stored, err, sizeof err) == 0 &&
            stored.position == status->head_sequence && stored.digest == status->digest) {
            if (!cli)
                assert_true (
                    tf_fk_subscriber_wait (&f->sub, status->digest, status->head_sequence, 10000));
            return;
        }
        usleep (10000);
    } while (tf_fk_now_ms () < deadline);
    if (cli) {
        fprintf (stderr, "%s ends:\n", f->log);
        tf_test_print_tail (f->log, 2000);
    }
    fail_msg ("mirror file at position %" PRIu64 " digest %016" PRIx64 ", database at %" PRIu64
              " digest %016" PRIx64,
              stored.position, stored.digest, status->head_sequence, status->digest);
}

/*  `techfeed mirror --status --json`: exit 0 (the file opens and passes
    its checks) and the figures it prints. */
static void s_cli_status (fixture_t *f, uint64_t *position, uint64_t *digest, uint64_t *count)
{
    char *out = NULL, *err = NULL;
    int rc = tf_test_cli (&f->svc, NULL, &out, &err, "mirror", "--db", f->store, "--status",
                          "--json", NULL);
    if (rc != 0)
        print_message ("techfeed mirror --status: exit %d: %s\n", rc, err);
    assert_int_equal (rc, 0);
    json_error_t error;
    json_t *json = json_loads (out, 0, &error);
    assert_non_null (json);
    const char *hex = json_string_value (json_object_get (json, "digest"));
    assert_non_null (hex);
    *digest = strtoull (hex, NULL, 16);
    *position = (uint64_t) json_integer_value (json_object_get (json, "position"));
    *count = (uint64_t) json_integer_value (json_object_get (json, "record_count"));
    json_decref (json);
    free (out);
    free (err);
}

/*  Polls the file until the view committed a batch at or past `target`,
    waits a random moment more and kills the view with -9. The position
    the file holds after the kill (what the kill left), 0 when `target`
    was not reached within 20 s (the view is then left running). */
static uint64_t s_kill_during_catchup (fixture_t *f, bool cli, uint64_t target, unsigned *seed)
{
    int64_t deadline = tf_fk_now_ms () + 20000;
    while (tf_fk_now_ms () < deadline) {
        tf_view_store_status_t stored;
        char err[300];
        if (tf_view_store_status (f->store, &stored, err, sizeof err) == 0 &&
            stored.position >= target) {
            usleep ((useconds_t) tf_fk_rand (seed, 0, 20000)); // anywhere in the next batch
            pid_t pid = s_mirror_pid (f, cli);
            kill (pid, SIGKILL);
            waitpid (pid, NULL, 0);
            if (cli)
                f->mirror = 0;
            else {
                f->sub.pid = 0;
                tf_fk_subscriber_stop (&f->sub); // closes the pipe
            }
            s_store_status (f, &stored);
            return stored.position;
        }
        usleep (1000);
    }
    return 0;
}

static void s_killed_during_catchup (fixture_t *f, bool cli)
{
    const char *what = cli ? "techfeed mirror" : "library view";
    tf_status_t status;
    tf_view_store_status_t stored;
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "mk", 0, 100, 100, 200), 0);
    s_mirror_start (f, cli, 0);
    s_mirror_converges (f, cli, &status);
    assert_int_equal (s_mirror_stop (f, cli), 0);
    unsigned seed = tf_fk_seed ();
    print_message ("%s; seed %u (TF_SEED replays it)\n", what, seed);
    for (int round = 1; round <= 3; round++) {
        //  A backlog the view must catch up with (chunks of 500, one batch
        //  each): updates of every record and new ones. Again (up to 3
        //  attempts) when the catch-up ended before the kill reached it.
        uint64_t from = 0, at = 0;
        bool midway = false;
        for (int attempt = 0; attempt < 3 && !midway; attempt++) {
            assert_int_equal (tf_fk_put_many (f->svc.ingest, "mk", 0, 6000, 500, 200), 0);
            s_store_status (f, &stored);
            from = stored.position;
            assert_int_equal (tf_fk_status (&f->svc, &status), 0);
            s_mirror_start (f, cli, round * 10 + attempt);
            uint64_t target = from + (uint64_t) tf_fk_rand (&seed, 1, 3000);
            at = s_kill_during_catchup (f, cli, target, &seed);
            if (at == 0)
                fail_msg ("round %d: the file did not reach position %" PRIu64 " within 20 s",
                          round, target);
            midway = at < status.head_sequence;
            if (!midway)
                print_message ("round %d: the catch-up ended before the kill; again\n", round);
        }
        //  Killed after a batch of the catch-up, before its end
        assert_true (midway);
        assert_true (at > from);

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
        if (cli) {
            uint64_t cli_position, cli_digest, cli_count;
            s_cli_status (f, &cli_position, &cli_digest, &cli_count);
            assert_int_equal (cli_position, stored.position);
            assert_int_equal (cli_digest, digest);
            assert_int_equal (cli_count, count);
        }
    }
    s_mirror_start (f, cli, 4);
    s_mirror_converges (f, cli, &status);
    s_store_status (f, &stored);
    if (cli) {
        char *log = NULL;
        size_t size = 0;
        FILE *file = fopen (f->log, "r");
        assert_non_null (file);
        assert_true (getdelim (&log, &size, 0, file) >= 0);
        fclose (file);
        bool snapshot = strstr (log, "snapshot") != NULL;
        print_message ("restarted: converged %s a snapshot, digest %016" PRIx64
                       " = server, file position %" PRIu64 "\n",
                       snapshot ? "WITH" : "without", stored.digest, stored.position);
        free (log);
        assert_false (snapshot);
    } else {
        tf_fk_view_info_t back = f->sub.info;
        print_message ("restarted: converged by catch-up (snapshots %" PRIu64 ", catch-ups "
                       "%" PRIu64 "), digest %016" PRIx64 " = server, file position %" PRIu64 "\n",
                       back.stats.snapshots, back.stats.catchups, back.digest, stored.position);
        assert_int_equal (back.stats.snapshots, 0);
    }
    assert_int_equal (stored.digest, status.digest);
    assert_int_equal (stored.position, status.head_sequence);
    assert_int_equal (s_mirror_stop (f, cli), 0);
}

static bool s_trimmed_below (void *arg)
{
    void **pair = (void **) arg;
    tf_status_t status;
    return tf_fk_status ((const tf_service_t *) pair[0], &status) == 0 &&
           status.log_first_sequence > *(uint64_t *) pair[1] + 1;
}

/*  Snapshots the view took in its last run: from the child's report, or
    `techfeed mirror`'s lines ("snapshot: N changes..."). */
static uint64_t s_snapshots (fixture_t *f, bool cli)
{
    if (!cli)
        return f->sub.info.stats.snapshots; // as of s_mirror_converges
    FILE *file = fopen (f->log, "r");
    assert_non_null (file);
    char line[512];
    uint64_t n = 0;
    while (fgets (line, sizeof line, file))
        n += strstr (line, " snapshot: ") != NULL;
    fclose (file);
    return n;
}

static void s_trimmed_while_down (fixture_t *f, bool cli)
{
    tf_status_t status;
    tf_view_store_status_t stored;
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "trim", 0, 20, 10, 100), 0);
    s_mirror_start (f, cli, 0);
    s_mirror_converges (f, cli, &status);
    assert_int_equal (s_mirror_stop (f, cli), 0); // down, its position in its file
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
    print_message ("%s down at position %" PRIu64 "; log now %" PRIu64 "..%" PRIu64
                   ": a catch-up since %" PRIu64 " is answered %s\n",
                   cli ? "techfeed mirror" : "library view", position, status.log_first_sequence,
                   status.head_sequence, position, tf_error_name (code));
    assert_int_equal (code, TECHFEED__ERROR_CODE__TRIMMED);

    s_mirror_start (f, cli, 1);
    s_mirror_converges (f, cli, &status);
    uint64_t snapshots = s_snapshots (f, cli);
    assert_int_equal (s_mirror_stop (f, cli), 0);
    s_store_status (f, &stored);
    print_message ("back: %" PRIu64 " snapshot, file at position %" PRIu64 " with %" PRIu64
                   " records, digest %016" PRIx64 " = server %016" PRIx64 "\n",
                   snapshots, stored.position, stored.record_count, stored.digest, status.digest);
    assert_int_equal (snapshots, 1); // the fallback
    assert_int_equal (stored.digest, status.digest);
    assert_int_equal (stored.record_count, status.record_count);

    //  Down again for 5 changes: the log still holds them, a catch-up does
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "trim", 35, 5, 5, 100), 0);
    usleep (300000); // a few maintenance rounds
    s_mirror_start (f, cli, 2);
    s_mirror_converges (f, cli, &status);
    snapshots = s_snapshots (f, cli);
    assert_int_equal (s_mirror_stop (f, cli), 0);
    print_message ("down for 5 changes (log %" PRIu64 "..%" PRIu64 "): %" PRIu64
                   " snapshot, caught up to %" PRIu64 ", digest equal\n",
                   status.log_first_sequence, status.head_sequence, snapshots,
                   status.head_sequence);
    assert_int_equal (snapshots, 0);
}

static void test_view_trimmed_while_down (void **state)
{
    s_trimmed_while_down ((fixture_t *) *state, false);
}

static void test_cli_mirror_trimmed_while_down (void **state)
{
    s_trimmed_while_down ((fixture_t *) *state, true);
}

static void test_view_killed_during_catchup (void **state)
{
    s_killed_during_catchup ((fixture_t *) *state, false);
}

static void test_cli_mirror_killed_during_catchup (void **state)
{
    s_killed_during_catchup ((fixture_t *) *state, true);
}

int main (int argc, char **argv)
{
    tf_fk_subscriber_dispatch (argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_view_trimmed_while_down, setup_trimming, teardown),
        cmocka_unit_test_setup_teardown (test_cli_mirror_trimmed_while_down, setup_trimming,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_view_killed_during_catchup, setup_plain, teardown),
        cmocka_unit_test_setup_teardown (test_cli_mirror_killed_during_catchup, setup_plain,
                                         teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
