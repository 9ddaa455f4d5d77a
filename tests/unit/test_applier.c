/*  tf_applier: the records table follows the log on its own thread while
    the writer goes on: a full batch is applied at once, a small backlog
    after its delay, and under concurrent writes nothing is left behind and
    no write of the writer fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tf_applier.h"
#include "tf_fixture.h"
#include "tf_sqlcheck.h"
#include "tf_store.h"
#include "tf_testkit.h"

typedef struct {
    char *dir;
    char path[300];
    tf_store_t *store;
} fixture_t;

static int setup (void **state)
{
    fixture_t *fx = (fixture_t *) calloc (1, sizeof *fx);
    fx->dir = tf_test_tempdir ();
    snprintf (fx->path, sizeof fx->path, "%s/applier.db", fx->dir);
    char err[256];
    fx->store = tf_store_new (fx->path, err, sizeof err);
    if (!fx->store)
        fail_msg ("%s", err);
    *state = fx;
    return 0;
}

static int teardown (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    tf_store_destroy (&fx->store);
    tf_test_rmtree (fx->dir);
    free (fx->dir);
    free (fx);
    return 0;
}

static int64_t s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/*  Puts records first..first+n-1 (ids "r<k>", k mod `distinct`) in one
    transaction. */
static void s_put_group (tf_store_t *store, int first, int n, int distinct)
{
    Techfeed__Milestone *record = tf_fixture_milestone ();
    char *fixture_id = record->id;
    char id[32];
    record->id = id;
    assert_int_equal (tf_store_begin (store), 0);
    for (int k = first; k < first + n; k++) {
        snprintf (id, sizeof id, "r%05d", k % distinct);
        assert_int_equal (tf_store_put (store, record, false, 0, 1000 + k, NULL), 0);
    }
    assert_int_equal (tf_store_commit (store), 0);
    record->id = fixture_id;
    techfeed__milestone__free_unpacked (record, NULL);
}

/*  Waits up to `ms` for the backlog to empty; the milliseconds it took,
    or -1. */
static int64_t s_wait_applied (tf_store_t *store, int64_t ms)
{
    int64_t start = s_now_ms ();
    while (tf_store_unapplied (store) != 0) {
        if (s_now_ms () - start > ms)
            return -1;
        struct timespec pause = { 0, 1000000 };
        nanosleep (&pause, NULL);
    }
    return s_now_ms () - start;
}

static int64_t s_records (const char *path)
{
    int64_t count = -1;
    assert_int_equal (tf_sql_int (path, "SELECT count(*) FROM records", &count), 0);
    return count;
}

static void test_full_batches_then_the_rest (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    s_put_group (fx->store, 0, 1050, 100000);
    assert_int_equal (tf_store_unapplied (fx->store), 1050);
    tf_applier_t *applier = tf_applier_new (fx->store, 100);
    assert_non_null (applier);
    assert_true (s_wait_applied (fx->store, 10000) >= 0);
    assert_int_equal (s_records (fx->path), 1050);
    assert_int_equal (tf_applier_failures (applier, NULL, 0), 0);
    tf_applier_destroy (&applier);
    tf_applier_destroy (&applier); /* safe twice */
}

static void test_small_backlog_waits_then_goes (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    tf_applier_t *applier = tf_applier_new (fx->store, 1000);
    assert_non_null (applier);
    s_put_group (fx->store, 0, 3, 100000);
    int64_t took = s_wait_applied (fx->store, 5000);
    print_message ("3 changes applied after %lld ms\n", (long long) took);
    assert_true (took >= 0);
    assert_int_equal (s_records (fx->path), 3);
    tf_applier_destroy (&applier);
}

static void test_writer_and_applier_together (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    tf_applier_t *applier = tf_applier_new (fx->store, 64);
    assert_non_null (applier);
    //  Updates of 500 ids and inserts of new ones, while batches run.
    for (int g = 0; g < 200; g++)
        s_put_group (fx->store, g * 10, 10, g % 2 ? 500 : 100000);
    assert_true (s_wait_applied (fx->store, 10000) >= 0);
    tf_store_state_t state_now;
    assert_int_equal (tf_store_state (fx->store, &state_now), 0);
    assert_int_equal (s_records (fx->path), (int64_t) state_now.record_count);
    int64_t applied = -1;
    assert_int_equal (tf_sql_int (fx->path, "SELECT applied FROM state", &applied), 0);
    assert_int_equal (applied, (int64_t) state_now.head_sequence);
    assert_int_equal (tf_applier_failures (applier, NULL, 0), 0);
    tf_applier_destroy (&applier);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_full_batches_then_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown (test_small_backlog_waits_then_goes, setup, teardown),
        cmocka_unit_test_setup_teardown (test_writer_and_applier_together, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
