/*  Fault: views that join late, one of them filtered to two sectors,
    while a continuous stream of puts, updates and deletes goes on.

    Two writer threads put and re-put records of every sector; the main
    thread puts and deletes records of its own (tombstones in the stream).
    A view of all sectors starts with the stream, a late joiner of all
    sectors once S_LATE_AT puts were acknowledged, a view of space + rail
    S_FILTERED_AFTER puts later. Each late view loads its snapshot while
    changes keep coming, and the stream goes on until each has applied
    live changes (an update or a delete after its snapshot) and
    S_AFTER_FILTERED more puts were acknowledged. Each view must end
    equal to the database restricted to its sectors: same digest and count
    as a snapshot with the same filter (PROTOCOL.md §10), position at the
    head, every change applied in sequence order.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tf_faultkit.h"
#include "tf_wire.h"

#define S_LATE_AT 2000        /* puts acknowledged when the late joiner starts */
#define S_FILTERED_AFTER 1000 /* and then when the space + rail view starts */
#define S_AFTER_FILTERED 1000 /* at least this many more before the stream ends */
#define S_PHASE_MS 60000      /* bound on each phase of the stream */

/*  Puts and deletes one record of the main thread; its number picks the
    sector, so the filtered view sees tombstones too. */
static void s_put_delete (tf_fk_fixture_t *f, int n, uint64_t *deletes)
{
    char id[40];
    snprintf (id, sizeof id, "gone-%d", n);
    Techfeed__Milestone *record = tf_fk_record_new (id, 1 + n % TF_SECTOR_MAX, 0);
    tf_result_t result;
    assert_int_equal (tf_writer_put (f->writer, &record, 1, false, &result), 0);
    assert_int_equal (result.code, TECHFEED__ERROR_CODE__OK);
    techfeed__milestone__free_unpacked (record, NULL);
    if (n % 3 != 0) { // every third stays
        assert_int_equal (tf_writer_delete (f->writer, id, false, 0, &result), 0);
        assert_int_equal (result.code, TECHFEED__ERROR_CODE__OK);
        (*deletes)++;
    }
}

/*  What ends a phase of the stream. */
typedef struct {
    tf_fk_fixture_t *f;
    uint64_t acked;   /* the writers acknowledged at least this many puts */
    const int *views; /* and these views (n) are LIVE and applied live changes */
    int n;
} s_phase_t;

/*  A view that loaded its snapshot (an ADD per record) applied live
    changes when it counts more changes than records: only an update or a
    delete after the snapshot makes the difference. */
static bool s_phase_done (const s_phase_t *phase)
{
    if (tf_fk_load_acked (phase->f->load) < phase->acked)
        return false;
    for (int i = 0; i < phase->n; i++) {
        tf_fk_view_info_t info;
        tf_fk_views_info (phase->f->views, phase->views[i], &info);
        if (info.state != TF_STATE_LIVE || info.stats.changes <= info.count)
            return false;
    }
    return true;
}

/*  The main thread's part of the stream until `phase` is done; false
    after S_PHASE_MS. */
static bool s_stream (const s_phase_t *phase, int *n, uint64_t *deletes)
{
    int64_t deadline = tf_fk_now_ms () + S_PHASE_MS;
    while (!s_phase_done (phase)) {
        if (tf_fk_now_ms () >= deadline)
            return false;
        s_put_delete (phase->f, (*n)++, deletes);
        usleep (5000);
    }
    return true;
}

static void s_report (const char *name, const tf_fk_view_info_t *info, uint64_t digest,
                      uint64_t count)
{
    print_message ("%-20s digest %016" PRIx64 " vs database %016" PRIx64 ", %" PRIu64 " of %" PRIu64
                   " records, position %" PRIu64 ", snapshots %" PRIu64 ", changes applied "
                   "%" PRIu64 ", catch-ups %" PRIu64 ", order errors %" PRIu64 "\n",
                   name, info->digest, digest, info->count, count, info->position,
                   info->stats.snapshots, info->stats.changes, info->stats.catchups,
                   info->order_errors);
}

static void test_late_joiner_and_filtered (void **state)
{
    tf_fk_fixture_t *f = (tf_fk_fixture_t *) *state;
    Techfeed__Sector two[] = { TECHFEED__SECTOR__SECTOR_SPACE,
                               TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL };
    f->views = tf_fk_views_new (f->svc.events, f->svc.sync);
    int early = tf_fk_views_add (f->views, NULL, 0, NULL);
    f->writer = tf_writer_new (f->svc.ingest);
    tf_fk_load_config_t config = { .endpoint = f->svc.ingest,
                                   .prefix = "late",
                                   .writers = 2,
                                   .ids = 400, // cycled: puts first, then updates
                                   .ops = 4,
                                   .timeout_ms = 3000,
                                   .tries = 3,
                                   .persist = true,
                                   .give_up_ms = 30000,
                                   .summary_bytes = 300,
                                   .pause_us = 2000 };
    f->load = tf_fk_load_start (&config);
    assert_true (early >= 0);
    int n = 0;
    uint64_t deletes = 0;
    s_phase_t phase = { .f = f, .acked = S_LATE_AT };
    if (!s_stream (&phase, &n, &deletes))
        fail_msg ("%" PRIu64 " of %d puts acknowledged in %d ms", tf_fk_load_acked (f->load),
                  S_LATE_AT, S_PHASE_MS);
    int late = tf_fk_views_add (f->views, NULL, 0, NULL);
    uint64_t at_late = tf_fk_load_acked (f->load);
    assert_true (late >= 0);
    phase.acked = at_late + S_FILTERED_AFTER;
    if (!s_stream (&phase, &n, &deletes))
        fail_msg ("%" PRIu64 " of %" PRIu64 " puts acknowledged in %d ms",
                  tf_fk_load_acked (f->load), phase.acked, S_PHASE_MS);
    int filtered = tf_fk_views_add (f->views, two, 2, NULL);
    uint64_t at_filtered = tf_fk_load_acked (f->load);
    assert_true (filtered >= 0);
    int joined[] = { late, filtered };
    phase = (s_phase_t){ .f = f, .acked = at_filtered + S_AFTER_FILTERED, .views = joined, .n = 2 };
    bool applied = s_stream (&phase, &n, &deletes);
    tf_fk_load_stop (f->load);
    tf_fk_load_stats_t stats;
    tf_fk_load_stats (f->load, &stats);

    tf_status_t status;
    assert_int_equal (tf_fk_status (&f->svc, &status), 0);
    uint64_t two_digest, two_count;
    assert_int_equal (tf_fk_digest (&f->svc, two, 2, &two_digest, &two_count), 0);
    tf_fk_view_info_t a, b, c;
    bool a_ok = tf_fk_view_wait (f->views, early, status.digest, status.head_sequence, 15000, &a);
    bool b_ok = tf_fk_view_wait (f->views, late, status.digest, status.head_sequence, 15000, &b);
    bool c_ok = tf_fk_view_wait (f->views, filtered, two_digest, status.head_sequence, 15000, &c);
    print_message ("stream: %" PRIu64 " changes (%" PRIu64 " puts by the writers, %d put and "
                   "%" PRIu64 " deletes by the test); late joiner started after %" PRIu64
                   " puts, the space+rail view after %" PRIu64 "\n",
                   status.head_sequence, stats.acked, n, deletes, at_late, at_filtered);
    s_report ("view from the start", &a, status.digest, status.record_count);
    s_report ("late joiner", &b, status.digest, status.record_count);
    s_report ("space + rail", &c, two_digest, two_count);
    if (!applied)
        fail_msg ("the late views did not both apply live changes within %d ms", S_PHASE_MS);
    assert_true (a_ok && b_ok && c_ok);
    assert_int_equal (a.count, status.record_count);
    assert_int_equal (b.count, status.record_count);
    assert_int_equal (c.count, two_count);
    assert_int_equal (a.order_errors + b.order_errors + c.order_errors, 0);
    //  The late views joined a running stream: a snapshot, then live changes
    assert_true (at_late >= S_LATE_AT && at_filtered >= at_late + S_FILTERED_AFTER);
    assert_true (b.stats.changes > b.count && c.stats.changes > c.count);
    assert_int_equal (b.resync_events + c.resync_events, 0);
    assert_true (two_count > 0 && two_count < status.record_count);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_late_joiner_and_filtered, tf_fk_setup,
                                         tf_fk_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
