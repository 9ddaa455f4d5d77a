/*  Fault: the service falls silent (SIGSTOP) while views and a writer run,
    then continues (SIGCONT).

    Heartbeats every 200 ms. Library views (all sectors, and ai alone)
    must report LOST after three intervals without a heartbeat (PROTOCOL.md
    §9 rule 6). The last heartbeat came at most one interval before the
    stop, so LOST comes no earlier than two intervals after it (less half
    an interval of margin for the service's timer and the millisecond
    clock); the upper bounds are guards against a hang, not timings. Once
    the service continues, the views catch up (RECOVERED) and end equal to
    the database, including what the writer put while the service was
    stopped (its requests waited in the socket).
*/
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tf_faultkit.h"

#define S_INTERVAL_MS 200
#define S_VIEWS 2
#define S_LOST_MIN_MS (2 * S_INTERVAL_MS - S_INTERVAL_MS / 2) /* see above */
#define S_GUARD_MS 10000 /* hang guard for LOST and RECOVERED */

/*  tf_fk_teardown, after a SIGCONT in case the test stopped midway. */
static int teardown (void **state)
{
    tf_fk_fixture_t *f = (tf_fk_fixture_t *) *state;
    if (f->svc.pid)
        kill (f->svc.pid, SIGCONT);
    return tf_fk_teardown (state);
}

/*  What the waits below look at: the views of `f` (`index`) and its
    writers. */
typedef struct {
    tf_fk_fixture_t *f;
    const int *index;
    uint64_t acked;    /* (s_acked) acknowledged puts to exceed */
    uint64_t position; /* (s_heartbeat_heard) position of the ai view to exceed */
} s_views_arg_t;

static bool s_all (tf_fk_fixture_t *f, const int *index, bool recovered)
{
    for (int i = 0; i < S_VIEWS; i++) {
        tf_fk_view_info_t info;
        tf_fk_views_info (f->views, index[i], &info);
        if (recovered ? info.recovered_events == 0 : info.lost_events == 0)
            return false;
    }
    return true;
}

/*  Every view is LIVE. */
static bool s_all_live (void *arg)
{
    s_views_arg_t *a = (s_views_arg_t *) arg;
    for (int i = 0; i < S_VIEWS; i++) {
        tf_fk_view_info_t info;
        tf_fk_views_info (a->f->views, a->index[i], &info);
        if (info.state != TF_STATE_LIVE)
            return false;
    }
    return true;
}

/*  Every view reported LOST. */
static bool s_all_lost (void *arg)
{
    s_views_arg_t *a = (s_views_arg_t *) arg;
    return s_all (a->f, a->index, false);
}

/*  The writer got an ack past `acked`. */
static bool s_acked (void *arg)
{
    s_views_arg_t *a = (s_views_arg_t *) arg;
    return tf_fk_load_acked (a->f->load) > a->acked;
}

/*  The ai view (index[1], filtered) moved past `position`. */
static bool s_heartbeat_heard (void *arg)
{
    s_views_arg_t *a = (s_views_arg_t *) arg;
    tf_fk_view_info_t info;
    tf_fk_views_info (a->f->views, a->index[1], &info);
    return info.state == TF_STATE_LIVE && info.position > a->position;
}

/*  Every view reported RECOVERED, and the writer got an ack past `acked`. */
static bool s_recovered_and_acked (void *arg)
{
    s_views_arg_t *a = (s_views_arg_t *) arg;
    return s_all (a->f, a->index, true) && s_acked (arg);
}

static void test_service_silent (void **state)
{
    tf_fk_fixture_t *f = (tf_fk_fixture_t *) *state;
    Techfeed__Sector ai[] = { TECHFEED__SECTOR__SECTOR_AI };
    f->views = tf_fk_views_new (f->svc.events, f->svc.sync);
    int index[S_VIEWS] = { tf_fk_views_add (f->views, NULL, 0, NULL),
                           tf_fk_views_add (f->views, ai, 1, NULL) };
    const char *names[S_VIEWS] = { "all", "ai" };
    tf_fk_load_config_t config = { .endpoint = f->svc.ingest,
                                   .prefix = "quiet",
                                   .writers = 1,
                                   .ids = 200,
                                   .ops = 2,
                                   .timeout_ms = 5000, // waits out the silence
                                   .tries = 3,
                                   .persist = true,
                                   .give_up_ms = 30000,
                                   .pause_us = 5000 };
    f->load = tf_fk_load_start (&config);
    s_views_arg_t views = { .f = f, .index = index };
    //  Both views LIVE and some puts acknowledged before the stop
    if (!tf_test_wait_for (s_all_live, &views, 20000))
        fail_msg ("the views were not both LIVE within 20 s");
    if (!tf_test_wait_for (s_acked, &views, 20000))
        fail_msg ("no put acknowledged within 20 s");
    //  The views learn the interval from the first heartbeat they hear
    //  (1 s until then). Once LIVE, the ai view's position moves only with
    //  heartbeats (§9 rule 4; a filtered view's events leave it) or a
    //  catch-up's end mark: wait until it did, so heartbeats reach the
    //  views before the stop
    tf_fk_view_info_t ai_info;
    tf_fk_views_info (f->views, index[1], &ai_info);
    views.position = ai_info.position;
    if (!tf_test_wait_for (s_heartbeat_heard, &views, 20000))
        fail_msg ("the ai view's position stayed at %" PRIu64 " for 20 s: no heartbeat heard",
                  views.position);
    for (int i = 0; i < S_VIEWS; i++) {
        tf_fk_view_info_t info;
        tf_fk_views_info (f->views, index[i], &info);
        assert_int_equal (info.lost_events, 0);
    }

    int64_t stopped = tf_fk_now_ms ();
    assert_int_equal (kill (f->svc.pid, SIGSTOP), 0);
    bool lost = tf_test_wait_for (s_all_lost, &views, S_GUARD_MS);
    //  Silent for at least four intervals in all (the fault's length)
    int64_t until = stopped + 4 * S_INTERVAL_MS;
    if (tf_fk_now_ms () < until)
        usleep ((useconds_t) (until - tf_fk_now_ms ()) * 1000);
    uint64_t acked_at_stop = tf_fk_load_acked (f->load);
    int64_t continued = tf_fk_now_ms ();
    assert_int_equal (kill (f->svc.pid, SIGCONT), 0);
    if (!lost)
        fail_msg ("the views did not both report LOST within %d ms of the stop", S_GUARD_MS);
    //  Both RECOVERED, and the writer goes on past what it had at the stop
    views.acked = acked_at_stop;
    if (!tf_test_wait_for (s_recovered_and_acked, &views, S_GUARD_MS))
        fail_msg ("no RECOVERED from both views, or no new ack, within %d ms of SIGCONT",
                  S_GUARD_MS);
    tf_fk_load_stop (f->load);
    tf_fk_load_stats_t stats;
    tf_fk_load_stats (f->load, &stats);

    tf_status_t status;
    uint64_t ai_digest;
    assert_int_equal (tf_fk_status (&f->svc, &status), 0);
    assert_int_equal (tf_fk_digest (&f->svc, ai, 1, &ai_digest, NULL), 0);
    uint64_t digests[S_VIEWS] = { status.digest, ai_digest };
    print_message ("service stopped for %" PRId64 " ms (heartbeat every %d ms); the writer had "
                   "%" PRIu64 " puts acknowledged by then, %" PRIu64 " at the end\n",
                   continued - stopped, S_INTERVAL_MS, acked_at_stop, stats.acked);
    for (int i = 0; i < S_VIEWS; i++) {
        tf_fk_view_info_t info;
        bool ok =
            tf_fk_view_wait (f->views, index[i], digests[i], status.head_sequence, 15000, &info);
        int64_t lost_after = info.lost_at_ms - stopped;
        int64_t recovered_after = info.recovered_at_ms - continued;
        print_message ("view %-4s LOST %" PRId64 " ms after the stop (%.1f intervals), "
                       "RECOVERED %" PRId64 " ms after SIGCONT; digest %016" PRIx64
                       " vs %016" PRIx64 ", LOST %" PRIu64 " time(s)\n",
                       names[i], lost_after, (double) lost_after / S_INTERVAL_MS, recovered_after,
                       info.digest, digests[i], info.lost_events);
        assert_true (info.lost_at_ms > 0 && info.recovered_at_ms > 0);
        assert_true (lost_after >= S_LOST_MIN_MS);
        assert_true (lost_after < S_GUARD_MS);
        assert_true (recovered_after >= 0 && recovered_after < S_GUARD_MS);
        assert_int_equal (info.lost_events, 1);
        assert_true (ok);
        assert_int_equal (info.order_errors, 0);
    }
    assert_int_equal (stats.mismatches, 0);
    assert_int_equal (stats.refused, 0);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_service_silent, tf_fk_setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
