/*  Concurrent writers against the real techfeed-ingestd: 1,000 puts from 4
    threads, each with its own tf_writer. Every put is acknowledged and
    stored; the acknowledged sequences rise strictly per writer and are,
    all together, exactly 1..1000; three views running meanwhile (two of
    all sectors, one of rail+energy) apply each change once and end equal
    to the database (digests, the filtered one against `techfeed status
    --sector`). */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tf_viewkit.h"

#define WRITERS 4
#define PUTS 250 /* per writer */
#define TOTAL (WRITERS * PUTS)
#define UPDATE_EVERY 5 /* every 5th put of a writer re-puts one of its ids */
#define RAIL TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL
#define ENERGY TECHFEED__SECTOR__SECTOR_RENEWABLES_EV
#define N_VIEWS 3

/*  Every writer is through (or one failed). */
typedef struct {
    tf_load_t *loads;
} s_writers_t;

static bool s_all_written (void *arg)
{
    s_writers_t *w = (s_writers_t *) arg;
    for (int i = 0; i < WRITERS; i++)
        if (atomic_load (&w->loads[i].done) < PUTS && !w->loads[i].failed)
            return false;
    return true;
}

static void test_thousand_puts_four_writers (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    const Techfeed__Sector some[] = { RAIL, ENERGY };
    tf_watcher_t *views[N_VIEWS] = { tf_watcher_new (svc, "all-1", NULL, 0),
                                     tf_watcher_new (svc, "all-2", NULL, 0),
                                     tf_watcher_new (svc, "rail+nrg", some, 2) };
    for (int i = 0; i < N_VIEWS; i++)
        assert_int_equal (tf_watcher_start (views[i]), 0);

    tf_load_t loads[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        char prefix[16];
        snprintf (prefix, sizeof prefix, "w%d", i);
        tf_load_init (&loads[i], svc, prefix, PUTS);
        loads[i].update_every = UPDATE_EVERY;
    }
    int64_t started = zclock_mono ();
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal (tf_load_start (&loads[i]), 0);
    //  The views are polled while the writers run
    s_writers_t writers = { loads };
    bool through = tf_watchers_poll_until (views, N_VIEWS, s_all_written, &writers, 25000);
    int64_t took = zclock_mono () - started;
    for (int i = 0; i < WRITERS; i++)
        tf_load_join (&loads[i]);
    assert_true (through);
    print_message ("%d puts from %d writers acknowledged in %lld ms\n", TOTAL, WRITERS,
                   (long long) took);

    //  All acknowledged; per writer strictly rising; together exactly 1..TOTAL
    bool *seen = (bool *) calloc (TOTAL + 1, sizeof *seen);
    uint64_t *in_view = (uint64_t *) calloc (TOTAL + 1, sizeof *in_view);
    size_t n_filtered = 0, created = 0;
    for (int i = 0; i < WRITERS; i++) {
        tf_load_t *l = &loads[i];
        if (l->failed)
            fail_msg ("writer %d: %s", i, l->error);
        assert_int_equal (atomic_load (&l->done), PUTS);
        created += l->created;
        for (size_t k = 0; k < PUTS; k++) {
            uint64_t seq = l->acks[k].sequence;
            if (k > 0 && seq <= l->acks[k - 1].sequence)
                fail_msg ("writer %d: ack %zu has seq %" PRIu64 " after %" PRIu64, i, k, seq,
                          l->acks[k - 1].sequence);
            if (seq < 1 || seq > TOTAL || seen[seq])
                fail_msg ("writer %d: seq %" PRIu64 " out of 1..%d or acknowledged twice", i, seq,
                          TOTAL);
            seen[seq] = true;
            if (l->acks[k].sector == RAIL || l->acks[k].sector == ENERGY)
                in_view[n_filtered++] = seq;
        }
    }
    for (int s = 1; s <= TOTAL; s++)
        if (!seen[s])
            fail_msg ("seq %d was never acknowledged: a gap", s);

    //  All stored
    tf_status_t status;
    assert_int_equal (tf_kit_status (svc, &status), 0);
    print_message ("service: head %" PRIu64 ", %" PRIu64 " records (%zu ids, %d re-puts)\n",
                   status.head_sequence, status.record_count, created, TOTAL - (int) created);
    assert_int_equal (status.head_sequence, TOTAL);
    assert_int_equal (status.record_count, created);
    assert_int_equal (created, TOTAL - WRITERS * (PUTS / UPDATE_EVERY));

    //  Every view equals the database and applied each change once
    assert_true (tf_watchers_converge (views, N_VIEWS, svc, 15000));
    uint64_t *all = (uint64_t *) calloc (TOTAL + 1, sizeof *all);
    for (int s = 1; s <= TOTAL; s++)
        all[s - 1] = (uint64_t) s;
    char why[400];
    for (int i = 0; i < N_VIEWS; i++) {
        tf_watcher_t *w = views[i];
        print_message ("%s\n", tf_watcher_summary (w));
        if (!tf_watcher_consistent (w, why, sizeof why))
            fail_msg ("%s", why);
        bool ok = w->n_sectors
                      ? tf_watcher_applied_exactly (w, in_view, n_filtered, why, sizeof why)
                      : tf_watcher_applied_exactly (w, all, TOTAL, why, sizeof why);
        if (!ok)
            fail_msg ("%s", why);
        assert_int_equal (w->resyncs, 0);
    }
    assert_int_equal (tf_view_digest (views[0]->view), status.digest);
    assert_int_equal (tf_view_digest (views[1]->view), status.digest);

    //  The filtered view against the CLI's filtered status
    char *out = NULL, *err = NULL;
    assert_int_equal (tf_test_cli (svc, NULL, &out, &err, "status", "--json", "--sector", "rail",
                                   "--sector", "energy", NULL),
                      0);
    json_t *st = json_loads (out, 0, NULL);
    assert_non_null (st);
    char digest[17];
    snprintf (digest, sizeof digest, "%016" PRIx64, tf_view_digest (views[2]->view));
    assert_string_equal (json_string_value (json_object_get (st, "digest")), digest);
    assert_int_equal (json_integer_value (json_object_get (st, "record_count")),
                      tf_view_count (views[2]->view));
    print_message ("rail+energy: %zu records, digest %s, as `techfeed status --sector` says\n",
                   tf_view_count (views[2]->view), digest);
    json_decref (st);
    free (out);
    free (err);

    free (all);
    free (seen);
    free (in_view);
    for (int i = 0; i < WRITERS; i++)
        tf_load_free (&loads[i]);
    for (int i = 0; i < N_VIEWS; i++)
        tf_watcher_destroy (&views[i]);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_thousand_puts_four_writers, tf_test_setup_service,
                                         tf_test_teardown_service),
    };
    return cmocka_run_group_tests_name ("concurrency", tests, NULL, NULL);
}
