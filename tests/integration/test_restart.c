/*  Restart of the real techfeed-ingestd on the same data directory and
    endpoints (tf_service_stop, then tf_service_start with the same
    tf_service_t): the records and the epoch are kept, the sequence goes
    on from the old head, and views that kept running notice the outage
    (LOST, then RECOVERED) or the changes they missed (catch-up), and end
    equal to the database — by catching up, not by a new snapshot. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tf_rawclient.h"
#include "tf_viewkit.h"

#define RAIL TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL
#define AI TECHFEED__SECTOR__SECTOR_AI
#define N_VIEWS 2
#define HEARTBEAT_MS "250"

typedef struct {
    tf_service_t svc;
    tf_watcher_t *views[N_VIEWS]; /* all, rail */
} fixture_t;

static const char *s_extra[] = { "--heartbeat-ms", HEARTBEAT_MS, NULL };

static int teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_watchers_destroy (f->views, N_VIEWS);
    int rc = tf_test_service_end (&f->svc);
    free (f);
    return rc;
}

static int setup (void **state)
{
    fixture_t *f = (fixture_t *) tf_test_fixture_new (sizeof *f, s_extra);
    *state = f;
    if (!f)
        return -1;
    const Techfeed__Sector rail[] = { RAIL };
    f->views[0] = tf_watcher_new (&f->svc, "all", NULL, 0);
    f->views[1] = tf_watcher_new (&f->svc, "rail", rail, 1);
    if (tf_watchers_start (f->views, N_VIEWS) != 0) {
        teardown (state); // cmocka runs no teardown after a failed setup
        return -1;
    }
    return 0;
}

/*  Writes `count` operations (puts, re-puts, deletes) with ids PREFIX-N. */
static void s_write (fixture_t *f, const char *prefix, size_t count)
{
    tf_load_t load;
    tf_load_init (&load, &f->svc, prefix, count);
    load.update_every = 4;
    load.delete_every = 6;
    tf_load_run (&load);
    if (load.failed)
        fail_msg ("writing %s: %s", prefix, load.error);
    tf_load_free (&load);
}

/*  Puts one record, which must get sequence `expected`. */
static void s_put_at (fixture_t *f, const char *id, Techfeed__Sector sector, uint64_t expected)
{
    tf_writer_t *writer = tf_writer_new (f->svc.ingest);
    tf_writer_set_timeout (writer, 5000);
    Techfeed__Milestone record, *records[] = { &record };
    tf_raw_record (&record, id, sector);
    tf_result_t result;
    assert_int_equal (tf_writer_put (writer, records, 1, false, &result), 0);
    assert_int_equal (result.code, TECHFEED__ERROR_CODE__OK);
    tf_writer_destroy (&writer);
    print_message ("put %s: seq %" PRIu64 "\n", id, result.sequence);
    assert_int_equal (result.sequence, expected);
}

static bool s_all_lost (void *arg)
{
    fixture_t *f = (fixture_t *) arg;
    for (int i = 0; i < N_VIEWS; i++)
        if (f->views[i]->losts == 0)
            return false;
    return true;
}

/*  Stops the service (exit 0), restarts it on the same directory and
    ports, and checks it kept records, epoch and head; returns the head. */
static uint64_t s_restart (fixture_t *f, bool wait_for_lost)
{
    tf_status_t before, after;
    assert_int_equal (tf_kit_status (&f->svc, &before), 0);
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
    if (wait_for_lost) //  3 heartbeats of silence: every view says LOST
        assert_true (tf_watchers_poll_until (f->views, N_VIEWS, s_all_lost, f, 10000));
    for (int i = 0; i < N_VIEWS; i++)
        assert_int_equal (f->views[i]->losts, wait_for_lost ? 1 : 0);
    assert_int_equal (tf_service_start (&f->svc, s_extra), 0);
    assert_int_equal (tf_kit_status (&f->svc, &after), 0);
    print_message ("restarted: epoch %s, head %" PRIu64 ", %" PRIu64 " records, digest %016" PRIx64
                   "\n",
                   after.epoch, after.head_sequence, after.record_count, after.digest);
    assert_string_equal (after.epoch, before.epoch);
    assert_int_equal (after.head_sequence, before.head_sequence);
    assert_int_equal (after.record_count, before.record_count);
    assert_int_equal (after.digest, before.digest);
    return after.head_sequence;
}

/*  Every view converged, by catch-up only, and its callbacks fit. */
static void s_check_views (fixture_t *f)
{
    assert_true (tf_watchers_converge (f->views, N_VIEWS, &f->svc, 15000));
    for (int i = 0; i < N_VIEWS; i++) {
        tf_watcher_t *w = f->views[i];
        print_message ("%s\n", tf_watcher_summary (w));
        char why[400];
        if (!tf_watcher_consistent (w, why, sizeof why))
            fail_msg ("%s", why);
        tf_view_stats_t st;
        tf_view_stats (w->view, &st);
        assert_int_equal (st.snapshots, 1);
        assert_int_equal (w->resyncs, 0);
    }
    //  The unfiltered view applied every change of the log exactly once
    tf_status_t status;
    assert_int_equal (tf_kit_status (&f->svc, &status), 0);
    uint64_t *all = (uint64_t *) calloc (status.head_sequence + 1, sizeof *all);
    for (uint64_t s = 1; s <= status.head_sequence; s++)
        all[s - 1] = s;
    char why[400];
    if (!tf_watcher_applied_exactly (f->views[0], all, status.head_sequence, why, sizeof why))
        fail_msg ("%s", why);
    free (all);
}

static void test_restart_after_outage (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_write (f, "before", 120);
    assert_true (tf_watchers_converge (f->views, N_VIEWS, &f->svc, 10000));
    //  Down long enough for every view to notice, then up again; the
    //  sequence goes on from the old head
    uint64_t head = s_restart (f, true);
    s_put_at (f, "after-restart", RAIL, head + 1);
    //  More changes after the restart, in every sector
    s_write (f, "after", 60);
    s_check_views (f);
    for (int i = 0; i < N_VIEWS; i++) {
        assert_int_equal (f->views[i]->losts, 1);
        assert_int_equal (f->views[i]->recovered, 1);
        assert_non_null (tf_view_get (f->views[i]->view, "after-restart"));
    }
}

static void test_quick_restart_then_writes (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_write (f, "before", 80);
    assert_true (tf_watchers_converge (f->views, N_VIEWS, &f->svc, 10000));
    //  Back before the views call it LOST; writes follow at once, most
    //  likely before the views' SUB sockets have reconnected: the events
    //  are lost for them, and the heartbeats' heads show it
    uint64_t head = s_restart (f, false);
    s_put_at (f, "quick-rail", RAIL, head + 1);
    s_put_at (f, "quick-ai", AI, head + 2);
    s_write (f, "after", 40);
    s_check_views (f);
    assert_non_null (tf_view_get (f->views[0]->view, "quick-ai"));
    assert_non_null (tf_view_get (f->views[1]->view, "quick-rail"));
    assert_null (tf_view_get (f->views[1]->view, "quick-ai"));
}

static void test_restart_twice_with_new_view (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_write (f, "one", 50);
    assert_int_equal (s_restart (f, false), 50);
    s_write (f, "two", 50);
    assert_int_equal (s_restart (f, true), 100);
    s_write (f, "three", 50);
    s_check_views (f);
    //  A view that starts now gets the same records
    tf_watcher_t *fresh = tf_watcher_new (&f->svc, "fresh", NULL, 0);
    assert_int_equal (tf_watcher_start (fresh), 0);
    assert_int_equal (tf_view_digest (fresh->view), tf_view_digest (f->views[0]->view));
    assert_int_equal (tf_view_count (fresh->view), tf_view_count (f->views[0]->view));
    assert_int_equal (tf_view_position (fresh->view), 150);
    tf_watcher_destroy (&fresh);
}

static long long s_wal_size (const tf_service_t *svc)
{
    char wal[400];
    snprintf (wal, sizeof wal, "%s/data/techfeed.db-wal", svc->dir);
    return tf_test_file_size (wal);
}

/*  The WAL is written ahead at start (--wal-reserve, 36 MiB by default)
    and commits stay inside it; SQLite deletes it at a clean stop; with
    --wal-reserve 0 it is only as long as the commits made it. */
static void test_wal_written_ahead (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_int_equal (s_wal_size (&f->svc), 36 << 20);
    s_write (f, "ahead", 300);
    s_check_views (f);
    assert_int_equal (s_wal_size (&f->svc), 36 << 20);
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
    assert_int_equal (s_wal_size (&f->svc), -1);
    const char *none[] = { "--heartbeat-ms", HEARTBEAT_MS, "--wal-reserve", "0", NULL };
    assert_int_equal (tf_service_start (&f->svc, none), 0);
    s_write (f, "small", 30);
    s_check_views (f);
    long long size = s_wal_size (&f->svc);
    print_message ("WAL without a reserve: %lld bytes\n", size);
    assert_true (size > 0 && size < (1 << 20));
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_restart_after_outage, setup, teardown),
        cmocka_unit_test_setup_teardown (test_quick_restart_then_writes, setup, teardown),
        cmocka_unit_test_setup_teardown (test_restart_twice_with_new_view, setup, teardown),
        cmocka_unit_test_setup_teardown (test_wal_written_ahead, setup, teardown),
    };
    return cmocka_run_group_tests_name ("restart", tests, NULL, NULL);
}
