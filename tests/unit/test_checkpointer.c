/*  tf_checkpointer: with SQLite's automatic checkpoints off, the thread
    copies committed WAL frames into the database file by itself, and it
    stops cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tf_checkpointer.h"
#include "tf_store.h"
#include "tf_testkit.h"

/*  A store in a new directory, with SQLite's automatic checkpoints off. */
typedef struct {
    char *dir;
    char path[300];
    tf_store_t *store;
    long long before; /* the database file's size at open */
} s_fixture_t;

static void s_open (s_fixture_t *fx, const char *name)
{
    char err[256];
    fx->dir = tf_test_tempdir ();
    snprintf (fx->path, sizeof fx->path, "%s/%s", fx->dir, name);
    fx->store = tf_store_new (fx->path, err, sizeof err);
    assert_non_null (fx->store);
    tf_store_set_autocheckpoint (fx->store, 0);
    fx->before = tf_test_file_size (fx->path);
}

static void s_close (s_fixture_t *fx)
{
    tf_store_destroy (&fx->store);
    tf_test_rmtree (fx->dir);
    free (fx->dir);
}

/*  3,000 puts in one transaction: a WAL of a few hundred pages. */
static void s_fill_wal (tf_store_t *store)
{
    Techfeed__Milestone record = TECHFEED__MILESTONE__INIT;
    record.has_sector = 1;
    record.sector = TECHFEED__SECTOR__SECTOR_SPACE;
    record.title = (char *) "Tianhe core module launched";
    record.date = (char *) "2021-04-29";
    char id[32];
    assert_int_equal (tf_store_begin (store), 0);
    for (int i = 0; i < 3000; i++) {
        snprintf (id, sizeof id, "tianhe-%d", i);
        record.id = id;
        assert_int_equal (tf_store_put (store, &record, false, 0, 1, NULL), 0);
    }
    assert_int_equal (tf_store_commit (store), 0);
}

/*  Waits (10 s at most) until a checkpoint has copied the WAL into the
    database file, which was `before` bytes long. */
static void s_await_copied (tf_checkpointer_t *checkpointer, const char *path, long long before)
{
    struct timespec start, now;
    clock_gettime (CLOCK_MONOTONIC, &start);
    do {
        usleep (10000);
        clock_gettime (CLOCK_MONOTONIC, &now);
    } while (
        (tf_test_file_size (path) <= before + 100000 || tf_checkpointer_runs (checkpointer) == 0) &&
        now.tv_sec - start.tv_sec < 10);
    print_message ("database file %lld -> %lld bytes after %llu checkpoint(s)\n", before,
                   tf_test_file_size (path),
                   (unsigned long long) tf_checkpointer_runs (checkpointer));
    assert_true (tf_test_file_size (path) > before + 100000);
    assert_true (tf_checkpointer_runs (checkpointer) >= 1);
}

static void test_checkpoints_off_the_commit_path (void **state)
{
    s_fixture_t fx;
    s_open (&fx, "ck.db");
    s_fill_wal (fx.store);
    //  Nothing copied yet: automatic checkpoints are off.
    assert_int_equal (tf_test_file_size (fx.path), fx.before);

    tf_checkpointer_t *checkpointer = tf_checkpointer_new (fx.path, 20);
    assert_non_null (checkpointer);
    s_await_copied (checkpointer, fx.path, fx.before);
    tf_checkpointer_destroy (&checkpointer);
    tf_checkpointer_destroy (&checkpointer); /* safe twice */
    s_close (&fx);
}

/*  A kick checkpoints now, not at the end of a (here ten-minute)
    interval: the service kicks as its WAL grows. */
static void test_kick_checkpoints_now (void **state)
{
    s_fixture_t fx;
    s_open (&fx, "kick.db");
    tf_checkpointer_t *checkpointer = tf_checkpointer_new (fx.path, 600000);
    assert_non_null (checkpointer);
    s_fill_wal (fx.store);
    assert_int_equal (tf_checkpointer_runs (checkpointer), 0);
    tf_checkpointer_kick (checkpointer);
    s_await_copied (checkpointer, fx.path, fx.before);
    tf_checkpointer_destroy (&checkpointer);
    s_close (&fx);
}

/*  The writer's own checkpoint between transactions copies the whole WAL,
    and the next commit starts it over. */
static void test_writer_checkpoint_rewinds_the_wal (void **state)
{
    s_fixture_t fx;
    s_open (&fx, "wal.db");
    s_fill_wal (fx.store);
    assert_int_equal (tf_store_apply (fx.store, 0), 0); /* the records table, too */
    int grown = tf_store_wal_pages (fx.store);
    assert_true (grown > 100);
    assert_int_equal (tf_store_checkpoint (fx.store), 0);
    assert_int_equal (tf_store_wal_pages (fx.store), 0);
    Techfeed__Milestone record = TECHFEED__MILESTONE__INIT;
    record.has_sector = 1;
    record.sector = TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL;
    record.id = (char *) "one-more";
    record.title = (char *) "Beijing-Shanghai high-speed railway opens";
    record.date = (char *) "2011-06-30";
    assert_int_equal (tf_store_put (fx.store, &record, false, 0, 1, NULL), 0);
    print_message ("WAL %d pages, after the checkpoint and one put %d\n", grown,
                   tf_store_wal_pages (fx.store));
    assert_true (tf_store_wal_pages (fx.store) < 20);
    s_close (&fx);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_checkpoints_off_the_commit_path),
        cmocka_unit_test (test_kick_checkpoints_now),
        cmocka_unit_test (test_writer_checkpoint_rewinds_the_wal),
    };
    return cmocka_run_group_tests_name ("checkpointer", tests, NULL, NULL);
}
