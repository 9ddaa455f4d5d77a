/*  Fault: the service killed with SIGKILL at random moments under load.

    Four writer threads (library writers with retries, one request of
    several records at a time, so the service commits groups of requests
    with many records each) put records over and over. The service is
    killed with -9 at a random moment, N times, and restarted each time on
    the same data directory and endpoints; writers that got no reply send
    the same request_id again until it is answered. Each incarnation must
    acknowledge a put within 10 s; after a random time the kill waits for
    the next ack (bounded) and follows it at once, so every kill lands
    while the writers are busy, at random points of group commits under
    concurrent load, which covers
    "kill -9 mid-batch": some groups are cut before COMMIT (nothing of them
    may be acknowledged), some after COMMIT and before the replies (the
    retry must get the stored reply, not a second change).

    After the last restart:
      - acknowledged writes lost = 0: every acknowledged put is stored with
        at least the acknowledged revision;
      - duplicates = 0: each record's revision equals the number of puts
        acknowledged for it (each request applied exactly once);
      - the log has no gap: a catch-up from 0 returns head_sequence changes,
        and their number is the number of acknowledged puts;
      - every view (all sectors, two sectors, and all sectors kept in an
        SQLite file) has the server's digest, the file too.

    20 rounds in `make test`; TF_SOAK=1 runs 200. TF_SEED replays the
    random moments of a failed run (the seed is printed).
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tf_faultkit.h"
#include "tf_wire.h"

static const char *s_args[] = { "--heartbeat-ms", "200", NULL };

#define S_ACK_MS 10000 /* an incarnation acknowledges a put within this */

static int setup (void **state)
{
    return tf_fk_setup_with (state, s_args);
}

/*  Waits up to S_ACK_MS until `load` has acknowledged more than `acked`. */
static bool s_ack_after (tf_fk_load_t *load, uint64_t acked)
{
    int64_t deadline = tf_fk_now_ms () + S_ACK_MS;
    while (tf_fk_load_acked (load) == acked) {
        if (tf_fk_now_ms () >= deadline)
            return false;
        usleep (1000);
    }
    return true;
}

static void test_kill_9_under_load (void **state)
{
    tf_fk_fixture_t *f = (tf_fk_fixture_t *) *state;
    unsigned seed = tf_fk_seed ();
    int rounds = tf_fk_soak () ? 200 : 20;
    print_message ("seed %u (TF_SEED=%u replays it), %d rounds\n", seed, seed, rounds);

    Techfeed__Sector two[] = { TECHFEED__SECTOR__SECTOR_SPACE,
                               TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL };
    tf_fk_views_t *views = f->views = tf_fk_views_new (f->svc.events, f->svc.sync);
    int all = tf_fk_views_add (views, NULL, 0, NULL);
    int filtered = tf_fk_views_add (views, two, 2, NULL);
    char store[400];
    snprintf (store, sizeof store, "%s/view.db", f->svc.dir);
    int persistent = tf_fk_views_add (views, NULL, 0, store);

    tf_fk_load_config_t config = { .endpoint = f->svc.ingest,
                                   .prefix = "kill",
                                   .writers = 4,
                                   .ids = 300,
                                   .ops = 5,
                                   .timeout_ms = 250,
                                   .tries = 3,
                                   .persist = true,
                                   .give_up_ms = 60000,
                                   .summary_bytes = 200 };
    tf_fk_load_t *load = f->load = tf_fk_load_start (&config);
    uint64_t fewest = UINT64_MAX, most = 0; // puts acknowledged between the wait and the kill
    for (int round = 0; round <= rounds; round++) {
        //  This incarnation (the first, or a restart) acknowledges writes
        uint64_t acked = tf_fk_load_acked (load);
        if (!s_ack_after (load, acked))
            fail_msg ("incarnation %d acknowledged no put within %d ms", round + 1, S_ACK_MS);
        if (round == rounds)
            break; // writes on the last incarnation too
        //  A random moment later, right after the next ack: under load
        usleep ((useconds_t) tf_fk_rand (&seed, 0, 400) * 1000);
        acked = tf_fk_load_acked (load);
        if (!s_ack_after (load, acked))
            fail_msg ("incarnation %d stopped acknowledging puts for %d ms", round + 1, S_ACK_MS);
        tf_service_kill (&f->svc);
        uint64_t since = tf_fk_load_acked (load) - acked;
        fewest = since < fewest ? since : fewest;
        most = since > most ? since : most;
        usleep ((useconds_t) tf_fk_rand (&seed, 0, 200) * 1000);
        if (tf_service_start (&f->svc, s_args) != 0)
            fail_msg ("restart %d failed", round + 1);
    }
    tf_fk_load_stop (load);
    tf_fk_load_stats_t stats;
    tf_fk_load_stats (load, &stats);

    zhashx_t *stored = f->stored = tf_fk_revisions (&f->svc);
    assert_non_null (stored);
    uint64_t lost, doubled, ids, sum = 0;
    tf_fk_load_check (load, stored, &lost, &doubled, &ids);
    for (void *r = zhashx_first (stored); r; r = zhashx_next (stored))
        sum += (uintptr_t) r;
    tf_status_t status;
    assert_int_equal (tf_fk_status (&f->svc, &status), 0);
    uint64_t changes = 0;
    assert_int_equal (tf_fk_catchup_count (&f->svc, 0, status.epoch, &changes, NULL), 0);

    print_message ("kills: %d, each right after an ack (puts acknowledged between the wait and the "
                   "kill: %" PRIu64 "..%" PRIu64 ")\n",
                   rounds, fewest, most);
    print_message ("requests cut by a kill and retried: %" PRIu64 " (committed before the kill, "
                   "answered from the idempotency cache: %" PRIu64 "; not committed, applied on "
                   "retry: %" PRIu64 "); calls sent again after every try failed: %" PRIu64 "\n",
                   stats.retried, stats.retried_replayed, stats.retried - stats.retried_replayed,
                   stats.no_reply);
    print_message ("acked lost: %" PRIu64 " of %" PRIu64 " (%" PRIu64 " ids)\n", lost, stats.acked,
                   ids);
    print_message ("duplicates: %" PRIu64 " (revisions above the puts acknowledged: %" PRIu64
                   ", replies with an unexpected revision: %" PRIu64 ")\n",
                   doubled + stats.mismatches, doubled, stats.mismatches);
    print_message ("log: head %" PRIu64 ", changes from 0: %" PRIu64 ", sum of revisions: %" PRIu64
                   ", puts acknowledged: %" PRIu64 "\n",
                   status.head_sequence, changes, sum, stats.acked);
    assert_int_equal (stats.uncertain, 0);
    assert_int_equal (stats.refused, 0);
    assert_int_equal (lost, 0);
    assert_int_equal (doubled, 0);
    assert_int_equal (stats.mismatches, 0);
    assert_int_equal (changes, status.head_sequence);
    assert_int_equal (sum, stats.acked);
    assert_int_equal (status.head_sequence, stats.acked);

    //  Views: the whole database, and its space + rail part
    uint64_t two_digest, two_count;
    assert_int_equal (tf_fk_digest (&f->svc, two, 2, &two_digest, &two_count), 0);
    tf_fk_view_info_t a, b, c;
    bool a_ok = tf_fk_view_wait (views, all, status.digest, status.head_sequence, 15000, &a);
    bool b_ok = tf_fk_view_wait (views, filtered, two_digest, status.head_sequence, 15000, &b);
    bool c_ok = tf_fk_view_wait (views, persistent, status.digest, status.head_sequence, 15000, &c);
    tf_view_store_status_t file = { 0 };
    char err[300] = "";
    int file_rc = tf_view_store_status (store, &file, err, sizeof err);
    print_message ("view (all): digest %016" PRIx64 " vs server %016" PRIx64 ", %" PRIu64
                   " records, %" PRIu64 " catch-ups, %" PRIu64 " lost, %" PRIu64
                   " snapshots, order errors %" PRIu64 "\n",
                   a.digest, status.digest, a.count, a.stats.catchups, a.stats.lost,
                   a.stats.snapshots, a.order_errors);
    print_message ("view (space, rail): digest %016" PRIx64 " vs server %016" PRIx64 ", %" PRIu64
                   " of %" PRIu64 " records, %" PRIu64 " catch-ups, order errors %" PRIu64 "\n",
                   b.digest, two_digest, b.count, two_count, b.stats.catchups, b.order_errors);
    print_message ("view (all, in a file): digest %016" PRIx64 ", file at position %" PRIu64
                   " with digest %016" PRIx64 "%s%s, %" PRIu64 " batches saved\n",
                   c.digest, file.position, file.digest, err[0] ? ": " : "", err, c.saved_events);
    assert_true (a_ok);
    assert_true (b_ok);
    assert_true (c_ok);
    assert_int_equal (file_rc, 0);
    assert_int_equal (file.digest, status.digest);
    assert_int_equal (file.position, status.head_sequence);
    assert_int_equal (c.order_errors, 0);
    assert_int_equal (a.count, status.record_count);
    assert_int_equal (b.count, two_count);
    assert_int_equal (a.order_errors, 0);
    assert_int_equal (b.order_errors, 0);
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_kill_9_under_load, setup, tf_fk_teardown_any_exit),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
