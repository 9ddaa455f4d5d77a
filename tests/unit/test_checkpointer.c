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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tf_checkpointer.h"
#include "tf_store.h"
#include "tf_testkit.h"

static long s_size (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 ? (long) st.st_size : -1;
}

static void test_checkpoints_off_the_commit_path (void **state)
{
    char *dir = tf_test_tempdir ();
    char path[300], err[256];
    snprintf (path, sizeof path, "%s/ck.db", dir);
    tf_store_t *store = tf_store_new (path, err, sizeof err);
    assert_non_null (store);
    tf_store_set_autocheckpoint (store, 0);
    long before = s_size (path);

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
    //  Nothing copied yet: automatic checkpoints are off.
    assert_int_equal (s_size (path), before);

    tf_checkpointer_t *checkpointer = tf_checkpointer_new (path, 20);
    assert_non_null (checkpointer);
    struct timespec start, now;
    clock_gettime (CLOCK_MONOTONIC, &start);
    do {
        usleep (10000);
        clock_gettime (CLOCK_MONOTONIC, &now);
    } while ((s_size (path) <= before + 100000 || tf_checkpointer_runs (checkpointer) == 0) &&
             now.tv_sec - start.tv_sec < 10);
    print_message ("database file %ld -> %ld bytes after %llu checkpoint(s)\n", before,
                   s_size (path), (unsigned long long) tf_checkpointer_runs (checkpointer));
    assert_true (s_size (path) > before + 100000);
    assert_true (tf_checkpointer_runs (checkpointer) >= 1);
    tf_checkpointer_destroy (&checkpointer);
    tf_checkpointer_destroy (&checkpointer); /* safe twice */
    tf_store_destroy (&store);
    tf_test_rmtree (dir);
    free (dir);
}

/*  The writer's own checkpoint between transactions copies the whole WAL,
    and the next commit starts it over. */
static void test_writer_checkpoint_rewinds_the_wal (void **state)
{
    char *dir = tf_test_tempdir ();
    char path[300], err[256];
    snprintf (path, sizeof path, "%s/wal.db", dir);
    tf_store_t *store = tf_store_new (path, err, sizeof err);
    assert_non_null (store);
    tf_store_set_autocheckpoint (store, 0);
    Techfeed__Milestone record = TECHFEED__MILESTONE__INIT;
    record.has_sector = 1;
    record.sector = TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL;
    record.title = (char *) "Beijing-Shanghai high-speed railway opens";
    record.date = (char *) "2011-06-30";
    char id[32];
    assert_int_equal (tf_store_begin (store), 0);
    for (int i = 0; i < 2000; i++) {
        snprintf (id, sizeof id, "line-%d", i);
        record.id = id;
        assert_int_equal (tf_store_put (store, &record, false, 0, 1, NULL), 0);
    }
    assert_int_equal (tf_store_commit (store), 0);
    assert_int_equal (tf_store_apply (store, 0), 0); /* the records table, too */
    int grown = tf_store_wal_pages (store);
    assert_true (grown > 100);
    assert_int_equal (tf_store_checkpoint (store), 0);
    assert_int_equal (tf_store_wal_pages (store), 0);
    record.id = (char *) "one-more";
    assert_int_equal (tf_store_put (store, &record, false, 0, 1, NULL), 0);
    print_message ("WAL %d pages, after the checkpoint and one put %d\n", grown,
                   tf_store_wal_pages (store));
    assert_true (tf_store_wal_pages (store) < 20);
    tf_store_destroy (&store);
    tf_test_rmtree (dir);
    free (dir);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_checkpoints_off_the_commit_path),
        cmocka_unit_test (test_writer_checkpoint_rewinds_the_wal),
    };
    return cmocka_run_group_tests_name ("checkpointer", tests, NULL, NULL);
}
