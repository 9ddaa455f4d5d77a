/*  Fault: the service restarted on an older copy of its database (a
    restore from backup).

    1. Stopped cleanly, the file copied aside, more written, stopped, the
       old copy put back (its -wal and -shm removed), started: the service
       finds its database below the high-water file (<db>.hwm) and takes a
       new epoch; views that ran all along (all sectors in memory, space +
       rail in memory, all sectors in a file) see the new epoch, resync
       (RESYNC callback) and end equal to the restored database, then
       follow new writes. A catch-up in the old epoch is answered TRIMMED.
       The same copy restored a second time (the high-water file now names
       the second epoch) makes a new epoch again.
    2. Killed with -9, and a copy taken online between the last heartbeat
       and the kill restored: the copy is newer than what the high-water
       file says was served, but older than what a persistent view holds.
       That view, down during the restore, comes back after more writes:
       it must still end equal to the database.
*/
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tf_faultkit.h"
#include "tf_wire.h"

typedef struct {
    tf_service_t svc;
    tf_fk_views_t *views;
    tf_fk_subscriber_t sub;
    char db[400];     /* the service's database */
    char backup[400]; /* the copy */
} fixture_t;

static int setup (void **state)
{
    fixture_t *f = (fixture_t *) zmalloc (sizeof *f);
    f->sub.fd = -1;
    *state = f;
    return 0;
}

static int teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_fk_views_destroy (&f->views);
    tf_fk_subscriber_stop (&f->sub);
    tf_service_cleanup (&f->svc);
    free (f);
    return 0;
}

static void s_start (fixture_t *f, const char *heartbeat_ms)
{
    const char *args[] = { "--heartbeat-ms", heartbeat_ms, NULL };
    assert_int_equal (tf_service_start (&f->svc, args), 0);
    snprintf (f->db, sizeof f->db, "%s/data/techfeed.db", f->svc.dir);
    snprintf (f->backup, sizeof f->backup, "%s/backup.db", f->svc.dir);
}

/*  The old copy back in place of the database, without its WAL. */
static void s_restore (fixture_t *f)
{
    tf_test_remove_db (f->db);
    assert_int_equal (tf_fk_copy_file (f->backup, f->db), 0);
}

/*  Waits until each of the three views (all, space + rail, all in a
    file) is live at the head with the database's digest of its sectors;
    `when` names the moment in the report. */
static void s_wait_views (fixture_t *f, const Techfeed__Sector *two, const int *index,
                          const char *const *names, const char *when)
{
    uint64_t digests[3];
    assert_int_equal (tf_fk_digest (&f->svc, NULL, 0, &digests[0], NULL), 0);
    assert_int_equal (tf_fk_digest (&f->svc, two, 2, &digests[1], NULL), 0);
    digests[2] = digests[0];
    tf_status_t status;
    assert_int_equal (tf_fk_status (&f->svc, &status), 0);
    for (size_t i = 0; i < 3; i++) {
        tf_fk_view_info_t info;
        bool ok =
            tf_fk_view_wait (f->views, index[i], digests[i], status.head_sequence, 15000, &info);
        print_message ("%s, %-16s digest %016" PRIx64 " (database %016" PRIx64 "), position "
                       "%" PRIu64 "/%" PRIu64 ", epoch %.8s…, resyncs %" PRIu64 ", snapshots "
                       "%" PRIu64 "\n",
                       when, names[i], info.digest, digests[i], info.position, status.head_sequence,
                       info.epoch, info.resync_events, info.stats.snapshots);
        assert_true (ok);
        assert_string_equal (info.epoch, status.epoch);
        assert_int_equal (info.order_errors, 0);
    }
}

static void test_restored_older_copy (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_start (f, "200");
    Techfeed__Sector two[] = { TECHFEED__SECTOR__SECTOR_SPACE,
                               TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL };
    char store[400];
    snprintf (store, sizeof store, "%s/view.db", f->svc.dir);
    f->views = tf_fk_views_new (f->svc.events, f->svc.sync);
    int index[3] = { tf_fk_views_add (f->views, NULL, 0, NULL),
                     tf_fk_views_add (f->views, two, 2, NULL),
                     tf_fk_views_add (f->views, NULL, 0, store) };
    const char *names[] = { "all", "space + rail", "all, in a file" };

    assert_int_equal (tf_fk_put_many (f->svc.ingest, "restore", 0, 100, 20, 100), 0);
    tf_status_t old;
    assert_int_equal (tf_fk_status (&f->svc, &old), 0);
    s_wait_views (f, two, index, names, "before the copy");
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
    assert_int_equal (tf_fk_copy_file (f->db, f->backup), 0);

    s_start (f, "200");
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "restore", 50, 150, 25, 100), 0);
    tf_status_t newer;
    assert_int_equal (tf_fk_status (&f->svc, &newer), 0);
    s_wait_views (f, two, index, names, "after more writes");
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);

    s_restore (f);
    s_start (f, "200");
    tf_status_t restored;
    assert_int_equal (tf_fk_status (&f->svc, &restored), 0);
    print_message ("served head %" PRIu64 " in epoch %s; restored copy: head %" PRIu64 ", "
                   "epoch %s\n",
                   newer.head_sequence, newer.epoch, restored.head_sequence, restored.epoch);
    assert_string_not_equal (restored.epoch, old.epoch);
    assert_int_equal (restored.head_sequence, old.head_sequence);
    assert_int_equal (restored.digest, old.digest);
    s_wait_views (f, two, index, names, "after the restore");
    for (int i = 0; i < 3; i++) {
        tf_fk_view_info_t info;
        tf_fk_views_info (f->views, index[i], &info);
        assert_true (info.resync_events >= 1);
    }
    uint64_t changes;
    int code = tf_fk_catchup_count (&f->svc, old.head_sequence, old.epoch, &changes, NULL);
    print_message ("catch-up in the old epoch: %s\n", tf_error_name (code));
    assert_int_equal (code, TECHFEED__ERROR_CODE__TRIMMED);

    //  Live in the new epoch
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "after", 0, 30, 10, 100), 0);
    s_wait_views (f, two, index, names, "new writes");
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);

    //  The same old copy restored again: its epoch is the first one, not
    //  the one the high-water file names, and views of the first may hold
    //  positions past its head. A new epoch again, and the views follow.
    s_restore (f);
    s_start (f, "200");
    tf_status_t again;
    assert_int_equal (tf_fk_status (&f->svc, &again), 0);
    print_message ("the copy restored again: head %" PRIu64 ", epoch %s\n", again.head_sequence,
                   again.epoch);
    assert_string_not_equal (again.epoch, old.epoch);
    assert_string_not_equal (again.epoch, restored.epoch);
    assert_true (tf_test_file_has (f->svc.log, "a copy from before that epoch"));
    s_wait_views (f, two, index, names, "restored again");
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
}

static void s_read_hwm (fixture_t *f, char *epoch, uint64_t *head)
{
    char path[450];
    snprintf (path, sizeof path, "%s.hwm", f->db);
    FILE *file = fopen (path, "r");
    *head = 0;
    epoch[0] = 0;
    if (file) {
        if (fscanf (file, "%64s %" SCNu64, epoch, head) != 2)
            epoch[0] = 0;
        fclose (file);
    }
}

static void test_restored_copy_newer_than_hwm (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_start (f, "5000"); // heartbeats 5 s apart: the high-water file must not wait for them
    char store[400], epoch[65];
    snprintf (store, sizeof store, "%s/view.db", f->svc.dir);
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "hwm", 0, 100, 20, 100), 0);
    assert_int_equal (tf_fk_backup_db (f->db, f->backup), 0); // head 100
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "hwm", 50, 100, 20, 100), 0);
    tf_status_t served;
    assert_int_equal (tf_fk_status (&f->svc, &served), 0);
    assert_int_equal (tf_fk_subscriber_start (&f->sub, &f->svc, NULL, 0, store), 0);
    assert_true (tf_fk_subscriber_wait (&f->sub, served.digest, served.head_sequence, 15000));
    assert_int_equal (tf_fk_subscriber_stop (&f->sub), 0); // down, at head 200 in its file
    uint64_t hwm;
    s_read_hwm (f, epoch, &hwm);
    tf_service_kill (&f->svc);

    s_restore (f);
    s_start (f, "200");
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "hwm", 200, 150, 25, 100), 0);
    tf_status_t now;
    assert_int_equal (tf_fk_status (&f->svc, &now), 0);
    print_message ("served head %" PRIu64 " (epoch %.8s…), high-water file at the kill: %" PRIu64
                   "; restored copy at 100, now head %" PRIu64 " in epoch %.8s…\n",
                   served.head_sequence, served.epoch, hwm, now.head_sequence, now.epoch);
    assert_int_equal (tf_fk_subscriber_start (&f->sub, &f->svc, NULL, 0, store), 0);
    bool ok = tf_fk_subscriber_wait (&f->sub, now.digest, now.head_sequence, 10000);
    print_message ("persistent view back: epoch %.8s…, position %" PRIu64 ", digest %016" PRIx64
                   " vs database %016" PRIx64 ", %" PRIu64 " records vs %" PRIu64
                   ", snapshots %" PRIu64 "\n",
                   f->sub.info.epoch, f->sub.info.position, f->sub.info.digest, now.digest,
                   f->sub.info.count, now.record_count, f->sub.info.stats.snapshots);
    assert_true (ok);
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
}

int main (int argc, char **argv)
{
    tf_fk_subscriber_dispatch (argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_restored_older_copy, setup, teardown),
        cmocka_unit_test_setup_teardown (test_restored_copy_newer_than_hwm, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
