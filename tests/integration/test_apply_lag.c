/*  A bulk load faster than the records table follows (--apply-max 1: one
    change per applier transaction). With --apply-lag-max the table is
    never further behind the log than the bound and one request: writes
    wait while the loop applies batches itself (/metrics counts the turns),
    a write group stops taking requests at the bound, every put is stored,
    and the table catches up. With the bound off the same load leaves it
    far further behind; with a table that cannot catch up, writes go on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <czmq.h>

#include "tf_rawclient.h"
#include "tf_sqlcheck.h"
#include "tf_testkit.h"

#define S_REQUESTS 60
#define S_OPS 100     /* puts per request (--max-ops) */
#define S_GROUP 2     /* requests per write group (--group-max) */
#define S_LAG_MAX 500 /* --apply-lag-max */
#define S_SLACK S_OPS /* one request past the bound */
#define S_TOTAL (S_REQUESTS * S_OPS)
#define S_STR(x) #x
#define S_ARG(x) S_STR (x)

static int s_setup (void **state, const char *lag_max)
{
    const char *extra[] = { "--apply-max", "1",           "--apply-lag-max",
                            lag_max,       "--group-max", S_ARG (S_GROUP),
                            "--max-ops",   S_ARG (S_OPS), "--http-addr",
                            "127.0.0.1:0", NULL };
    return tf_raw_fixture_setup (state, extra);
}

static int setup_bounded (void **state)
{
    return s_setup (state, S_ARG (S_LAG_MAX));
}

static int setup_unbounded (void **state)
{
    return s_setup (state, "0");
}

static int teardown (void **state)
{
    return tf_raw_fixture_teardown (state);
}

/*  Sends every request at once, then takes every reply: all puts stored. */
static void s_bulk_load (tf_raw_fixture_t *f)
{
    Techfeed__Milestone records[S_OPS];
    char ids[S_OPS][32];
    for (int r = 0; r < S_REQUESTS; r++) {
        for (int i = 0; i < S_OPS; i++) {
            snprintf (ids[i], sizeof ids[i], "bulk-%03d-%03d", r, i);
            tf_raw_record (&records[i], ids[i], TECHFEED__SECTOR__SECTOR_SPACE);
        }
        tf_raw_send_puts (f->ingest, records, S_OPS);
    }
    for (int r = 0; r < S_REQUESTS; r++)
        assert_true (tf_raw_recv_stored (f->ingest, S_OPS));
}

static bool s_caught_up (void *arg)
{
    tf_raw_fixture_t *f = (tf_raw_fixture_t *) arg;
    Techfeed__SyncReply *reply = tf_raw_status (f->sync);
    bool done = reply && reply->status && reply->status->has_records_applied &&
                reply->status->records_applied == S_TOTAL;
    if (reply)
        techfeed__sync_reply__free_unpacked (reply, NULL);
    return done;
}

/*  The most the records table was behind, and the turns writes waited. */
static void s_lag_metrics (tf_raw_fixture_t *f, double *peak, double *held)
{
    const char *names[] = { "techfeed_records_table_behind_peak", "techfeed_writes_held_total" };
    double values[2];
    assert_true (tf_service_metrics (&f->svc, names, values, 2));
    *peak = values[0];
    *held = values[1];
}

static void test_bulk_load_bounded (void **state)
{
    tf_raw_fixture_t *f = (tf_raw_fixture_t *) *state;
    s_bulk_load (f);
    double peak, held;
    s_lag_metrics (f, &peak, &held);
    print_message ("bounded: at most %.0f changes behind, writes held on %.0f turns\n", peak, held);
    assert_true (peak <= S_LAG_MAX + S_SLACK);
    assert_true (held > 0);
    assert_true (tf_test_wait_for (s_caught_up, f, 20000));
    assert_int_equal (tf_raw_count (f->sync), S_TOTAL);
}

/*  A records table that refuses a change (a trigger another program
    added) cannot catch up: writes go on past the bound all the same, the
    log says why, and once the trigger is gone the table catches up. */
static void test_stuck_table_holds_no_write (void **state)
{
    tf_raw_fixture_t *f = (tf_raw_fixture_t *) *state;
    char db[320], why[256];
    snprintf (db, sizeof db, "%s/data/techfeed.db", f->svc.dir);
    if (tf_sql_exec (db,
                     "CREATE TRIGGER refuse BEFORE INSERT ON records WHEN NEW.id = 'bulk-000-000'"
                     " BEGIN SELECT RAISE (ABORT, 'refused by the test'); END",
                     why, sizeof why))
        fail_msg ("%s", why);
    s_bulk_load (f);
    double peak, held;
    s_lag_metrics (f, &peak, &held);
    print_message ("stuck: at most %.0f changes behind\n", peak);
    assert_true (peak > S_LAG_MAX + S_SLACK);
    assert_true (tf_test_file_has (f->svc.log, "writes go on"));
    assert_int_equal (tf_raw_count (f->sync), S_TOTAL);
    if (tf_sql_exec (db, "DROP TRIGGER refuse", why, sizeof why))
        fail_msg ("%s", why);
    assert_true (tf_test_wait_for (s_caught_up, f, 60000));
}

static void test_bulk_load_unbounded (void **state)
{
    tf_raw_fixture_t *f = (tf_raw_fixture_t *) *state;
    s_bulk_load (f);
    double peak, held;
    s_lag_metrics (f, &peak, &held);
    print_message ("unbounded: at most %.0f changes behind\n", peak);
    assert_true (peak > S_LAG_MAX + S_SLACK);
    assert_true (held == 0);
    assert_true (tf_test_wait_for (s_caught_up, f, 60000));
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_bulk_load_bounded, setup_bounded, teardown),
        cmocka_unit_test_setup_teardown (test_stuck_table_holds_no_write, setup_bounded, teardown),
        cmocka_unit_test_setup_teardown (test_bulk_load_unbounded, setup_unbounded, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
