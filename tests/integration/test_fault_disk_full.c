/*  Fault: the disk fills up (issue 4).

    The database lives on a 2 MiB tmpfs mounted by the test (root only).
    Where mounting is not permitted (or with TF_FAULT_RLIMIT=1), the
    service runs under RLIMIT_FSIZE = 2 MiB instead (SIGXFSZ ignored, so a
    write past the limit fails with EFBIG, which the store reports as
    full), and "space returns" means a restart without the limit.

    Writers put records of 3 KB until the service answers STORAGE_FULL,
    and a little longer. Then:
      - the error is explicit: refused operations are STORAGE_FULL;
      - no acknowledgement for what was not stored: every OK is stored, no
        refused put is (each id's revision equals its acknowledged puts);
      - reads go on while full: status, a full listing, and a new view's
        snapshot; the view that ran all along is equal to the database;
      - the WAL space the service writes ahead at start does not fit: it
        warns and serves without it;
      - /readyz says 503 while full; when space returns (tmpfs remounted
        at 64 MiB, without a restart) it says 200 before anyone writes,
        puts are acknowledged again, and the views follow.
*/
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "tf_faultkit.h"
#include "tf_wire.h"

#define S_LIMIT (2 * 1024 * 1024)

typedef struct {
    tf_service_t svc;
    tf_fk_views_t *views;
    tf_fk_load_t *load;
    zhashx_t *stored;
    char mount[300]; /* the tmpfs, "" when the RLIMIT way is used */
    char db[400];
} fixture_t;

static int setup (void **state)
{
    fixture_t *f = (fixture_t *) zmalloc (sizeof *f);
    char *dir = tf_test_tempdir ();
    snprintf (f->svc.dir, sizeof f->svc.dir, "%s", dir);
    free (dir);
    snprintf (f->mount, sizeof f->mount, "%s/full", f->svc.dir);
    mkdir (f->mount, 0755);
    char size[32];
    snprintf (size, sizeof size, "size=%d", S_LIMIT);
    if (getenv ("TF_FAULT_RLIMIT") || mount ("tmpfs", f->mount, "tmpfs", 0, size) != 0) {
        print_message ("no tmpfs (%s): RLIMIT_FSIZE of %d bytes on the service instead\n",
                       getenv ("TF_FAULT_RLIMIT") ? "TF_FAULT_RLIMIT set" : strerror (errno),
                       S_LIMIT);
        f->mount[0] = 0;
        snprintf (f->db, sizeof f->db, "%s/data-full.db", f->svc.dir);
    } else
        snprintf (f->db, sizeof f->db, "%s/techfeed.db", f->mount);
    *state = f;
    return 0;
}

static int teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_fk_views_destroy (&f->views);
    tf_fk_load_destroy (&f->load);
    zhashx_destroy (&f->stored);
    if (f->svc.pid)
        tf_service_stop (&f->svc, 10000);
    if (f->mount[0])
        umount2 (f->mount, MNT_DETACH);
    tf_service_cleanup (&f->svc);
    free (f);
    return 0;
}

/*  Starts the service on f->db; with `limit`, under RLIMIT_FSIZE (set in
    this process around the fork: the child keeps it, and SIGXFSZ ignored
    across exec). */
static void s_start (fixture_t *f, bool limit)
{
    const char *args[] = { "--db",        f->db, "--heartbeat-ms", "200", "--http-addr",
                           "127.0.0.1:0", NULL };
    struct rlimit saved;
    getrlimit (RLIMIT_FSIZE, &saved);
    void (*old_handler) (int) = SIG_DFL;
    if (limit) {
        struct rlimit lowered = { S_LIMIT, saved.rlim_max };
        assert_int_equal (setrlimit (RLIMIT_FSIZE, &lowered), 0);
        old_handler = signal (SIGXFSZ, SIG_IGN);
    }
    int rc = tf_service_start (&f->svc, args);
    if (limit) {
        setrlimit (RLIMIT_FSIZE, &saved);
        signal (SIGXFSZ, old_handler);
    }
    assert_int_equal (rc, 0); // the testkit printed the log's tail
}

static void s_check_stored (fixture_t *f, const char *when, uint64_t *acked)
{
    zhashx_destroy (&f->stored);
    f->stored = tf_fk_revisions (&f->svc);
    assert_non_null (f->stored); // a full listing works
    uint64_t lost, doubled, ids;
    tf_fk_load_check (f->load, f->stored, &lost, &doubled, &ids);
    tf_fk_load_stats_t stats;
    tf_fk_load_stats (f->load, &stats);
    print_message ("%s: acked lost: %" PRIu64 " of %" PRIu64 "; refused puts stored anyway: "
                   "%" PRIu64 "; %zu records listed\n",
                   when, lost, stats.acked, doubled, zhashx_size (f->stored));
    assert_int_equal (lost, 0);
    assert_int_equal (doubled, 0);
    assert_int_equal (stats.mismatches, 0);
    *acked = stats.acked;
}

static void s_views_equal (fixture_t *f, const int *index, int n, const char *when)
{
    tf_status_t status;
    assert_int_equal (tf_fk_status (&f->svc, &status), 0);
    for (int i = 0; i < n; i++) {
        tf_fk_view_info_t info;
        bool ok =
            tf_fk_view_wait (f->views, index[i], status.digest, status.head_sequence, 15000, &info);
        print_message ("%s: view %d digest %016" PRIx64 " vs %016" PRIx64 ", %" PRIu64 " records\n",
                       when, i, info.digest, status.digest, info.count);
        assert_true (ok);
    }
}

/*  The HTTP status of /readyz. */
static int s_readyz (fixture_t *f)
{
    int status = 0;
    free (tf_service_http_get (&f->svc, "/readyz", &status));
    return status;
}

static bool s_ready (void *arg)
{
    return s_readyz ((fixture_t *) arg) == 200;
}

/*  Heartbeats published so far: each one probes whether it is ready
    again, while it is not. -1 when /metrics cannot be read. */
static double s_heartbeats (fixture_t *f)
{
    const char *name = "techfeed_heartbeats_total";
    double beats;
    return tf_service_metrics (&f->svc, &name, &beats, 1) ? beats : -1;
}

typedef struct {
    fixture_t *f;
    double beats; /* heartbeats to wait for */
} s_beats_t;

static bool s_beats_past (void *arg)
{
    s_beats_t *b = (s_beats_t *) arg;
    return s_heartbeats (b->f) >= b->beats;
}

static void test_disk_full (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    bool rlimit = !f->mount[0];
    s_start (f, rlimit);
    //  No room for the WAL's 36 MiB written ahead: said, and the service
    //  runs (the tmpfs has too little free space to try; under the limit
    //  the writes fail).
    assert_true (tf_test_file_has (f->svc.log, "the WAL is not written ahead"));
    f->views = tf_fk_views_new (f->svc.events, f->svc.sync);
    int index[2] = { tf_fk_views_add (f->views, NULL, 0, NULL), -1 };
    tf_fk_load_config_t config = { .endpoint = f->svc.ingest,
                                   .prefix = "full",
                                   .writers = 2,
                                   .ids = 5000,
                                   .ops = 10,
                                   .timeout_ms = 5000,
                                   .tries = 1,
                                   .summary_bytes = 3000,
                                   .pause_us = 1000 };
    f->load = tf_fk_load_start (&config);
    tf_fk_load_stats_t stats;
    int64_t deadline = tf_fk_now_ms () + 30000;
    do {
        usleep (20000);
        tf_fk_load_stats (f->load, &stats); // racy read of counters: only a trigger
    } while (stats.refused == 0 && tf_fk_now_ms () < deadline);
    usleep (500000); // writes go on against the full disk
    tf_fk_load_stop (f->load);
    tf_fk_load_stats (f->load, &stats);
    tf_status_t status;
    int status_rc = tf_fk_status (&f->svc, &status);
    char wal[450];
    snprintf (wal, sizeof wal, "%s-wal", f->db);
    print_message ("disk full after %" PRIu64 " puts acknowledged (database %lld bytes, WAL "
                   "%lld); then %" PRIu64 " refused (%" PRIu64 " STORAGE_FULL, %" PRIu64
                   " STORAGE; last: %s), %" PRIu64 " unanswered\n",
                   stats.acked, tf_test_file_size (f->db), tf_test_file_size (wal), stats.refused,
                   stats.full, stats.storage, stats.last_error, stats.uncertain);
    assert_true (stats.refused > 0);
    //  Either way the error names the cause: ENOSPC on the tmpfs, EFBIG
    //  past RLIMIT_FSIZE (the store reads it from errno).
    assert_int_equal (stats.refused, stats.full);
    assert_int_equal (stats.uncertain, 0);
    assert_int_equal (status_rc, 0); // status while full
    uint64_t acked;
    s_check_stored (f, "while full", &acked);
    assert_int_equal (status.record_count, zhashx_size (f->stored));
    index[1] = tf_fk_views_add (f->views, NULL, 0, NULL); // a snapshot while full
    s_views_equal (f, index, 2, "while full");
    //  The last write failed, and a few heartbeats' probes later the
    //  service still says so: space has not come back (a one-page probe
    //  fitting in WAL space written before is no proof that writes would)
    s_beats_t beats = { f, s_heartbeats (f) + 3 };
    assert_true (beats.beats >= 3);
    assert_true (tf_test_wait_for (s_beats_past, &beats, 10000));
    assert_int_equal (s_readyz (f), 503);

    //  Space returns
    if (rlimit) {
        tf_fk_views_destroy (&f->views);
        assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
        s_start (f, false);
        f->views = tf_fk_views_new (f->svc.events, f->svc.sync);
        index[0] = tf_fk_views_add (f->views, NULL, 0, NULL);
        index[1] = tf_fk_views_add (f->views, NULL, 0, NULL);
    } else {
        char size[32];
        snprintf (size, sizeof size, "size=%d", 32 * S_LIMIT);
        assert_int_equal (mount ("tmpfs", f->mount, "tmpfs", MS_REMOUNT, size), 0);
        //  Ready again before anyone writes: the service tries on its own
        if (!tf_test_wait_for (s_ready, f, 10000))
            fail_msg ("/readyz still %d 10 s after space returned", s_readyz (f));
    }
    assert_int_equal (tf_fk_put_many (f->svc.ingest, "after", 0, 50, 10, 3000), 0);
    s_check_stored (f, rlimit ? "restarted without the limit" : "space back", &acked);
    print_message ("space back (%s): 50 puts acknowledged again\n",
                   rlimit ? "restart without RLIMIT_FSIZE" : "tmpfs remounted, no restart");
    s_views_equal (f, index, 2, "space back");
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_disk_full, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
