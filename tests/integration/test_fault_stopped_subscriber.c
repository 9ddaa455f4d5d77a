/*  Fault: a subscriber stopped (SIGSTOP) for several seconds while the
    writers go on, then resumed (SIGCONT).

    The subscriber is a library view in a process of its own (this test
    binary run again with --subscriber), so stopping it stops its ZeroMQ
    I/O thread too: its socket buffers fill, and the service's PUB queue
    for it reaches the high-water mark (--pub-hwm 500 here) and drops
    events. Ingest must not notice (PROTOCOL.md §7, GUIDE §3.8): acks
    keep coming in every part of the stop window, and no write needed a
    retry or went unanswered. The latency figures are printed, not
    asserted (only p99 below the writers' timeout, a guard against a hang).
    After SIGCONT the subscriber detects what it lost (its gaps, catch-ups
    or snapshots rise), repairs from the log and ends with the server's
    digest.

    Stopped for longer than --peer-timeout-ms (1 s in the second case), it
    answers none of the service's ZeroMQ heartbeats: the service drops its
    connection (/metrics counts no subscriber) rather than keep a queue for
    it. After SIGCONT it connects again, repairs what it missed meanwhile,
    and ends with the server's digest too.
*/
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tf_faultkit.h"

#define S_BEFORE_MS 2000
#define S_STOPPED_MS 4000
#define S_PARTS 4         /* the stop window in parts, each of which must see acks */
#define S_PEER_MS "1000"  /* the second case's --peer-timeout-ms */
#define S_DROPPED_MS 5000 /* the stopped subscriber is dropped within this */
#define S_MISSED 50       /* records put while it is dropped */

typedef struct {
    tf_service_t svc;
    tf_fk_subscriber_t sub;
    tf_fk_load_t *load;
} fixture_t;

/*  The service started with `args`, no subscriber yet. */
static int s_setup_with (void **state, const char *const *args)
{
    fixture_t *f = (fixture_t *) zmalloc (sizeof *f);
    f->sub.fd = -1;
    assert_int_equal (tf_service_start (&f->svc, args), 0);
    *state = f;
    return 0;
}

static int setup (void **state)
{
    const char *args[] = { "--heartbeat-ms", "200", "--pub-hwm", "500", NULL };
    return s_setup_with (state, args);
}

/*  With heartbeats that give up on a silent peer after S_PEER_MS, and
    /metrics. */
static int setup_heartbeats (void **state)
{
    const char *args[] = { "--heartbeat-ms", "200", "--peer-timeout-ms", S_PEER_MS, "--http-addr",
                           "127.0.0.1:0",    NULL };
    return s_setup_with (state, args);
}

static int teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_fk_subscriber_stop (&f->sub);
    tf_fk_load_destroy (&f->load);
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
    tf_service_cleanup (&f->svc);
    free (f);
    return 0;
}

static void test_stopped_subscriber (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_int_equal (tf_fk_subscriber_start (&f->sub, &f->svc, NULL, 0, NULL), 0);
    assert_true (tf_fk_subscriber_wait (&f->sub, 0, 0, 20000)); // live on the empty database

    tf_fk_load_config_t config = { .endpoint = f->svc.ingest,
                                   .prefix = "stop",
                                   .writers = 2,
                                   .ids = 400,
                                   .ops = 1,
                                   .timeout_ms = 3000,
                                   .tries = 3,
                                   .persist = true,
                                   .give_up_ms = 30000,
                                   .summary_bytes = 3000 }; // big events fill buffers sooner
    f->load = tf_fk_load_start (&config);
    int64_t start = tf_fk_now_ms ();
    while (tf_fk_now_ms () - start < S_BEFORE_MS)
        tf_fk_subscriber_read (&f->sub, 100);
    tf_fk_view_info_t before = f->sub.info;
    uint64_t acked_before = tf_fk_load_acked (f->load);

    int64_t stopped = tf_fk_now_ms ();
    assert_int_equal (kill (f->sub.pid, SIGSTOP), 0);
    //  The fault lasts S_STOPPED_MS; the acks are counted at the end of
    //  each part of it
    uint64_t acked_at[S_PARTS + 1] = { tf_fk_load_acked (f->load) };
    for (int part = 1; part <= S_PARTS; part++) {
        int64_t end = stopped + (int64_t) S_STOPPED_MS * part / S_PARTS;
        while (tf_fk_now_ms () < end)
            usleep (10000);
        acked_at[part] = tf_fk_load_acked (f->load);
    }
    uint64_t acked_stopped = acked_at[S_PARTS] - acked_before;
    int64_t resumed = tf_fk_now_ms ();
    assert_int_equal (kill (f->sub.pid, SIGCONT), 0);
    //  Writes go on while the subscriber repairs: at least one more ack
    //  after the resume, and a report from the resumed subscriber
    uint64_t acked_resumed = tf_fk_load_acked (f->load);
    bool reported = false;
    while (tf_fk_now_ms () - resumed < 10000 &&
           (!reported || tf_fk_load_acked (f->load) == acked_resumed))
        reported |= tf_fk_subscriber_read (&f->sub, 100);
    bool acked_after = tf_fk_load_acked (f->load) > acked_resumed;
    tf_fk_load_stop (f->load);
    tf_fk_load_stats_t stats;
    tf_fk_load_stats (f->load, &stats);

    tf_status_t status;
    assert_int_equal (tf_fk_status (&f->svc, &status), 0);
    bool converged = tf_fk_subscriber_wait (&f->sub, status.digest, status.head_sequence, 20000);
    const tf_fk_view_info_t *after = &f->sub.info;

    size_t n_before, n_stopped;
    int64_t p99_before = tf_fk_load_latency (f->load, start + 500, stopped, 99, &n_before);
    int64_t p99_stopped = tf_fk_load_latency (f->load, stopped, resumed, 99, &n_stopped);
    int64_t p50_before = tf_fk_load_latency (f->load, start + 500, stopped, 50, NULL);
    int64_t p50_stopped = tf_fk_load_latency (f->load, stopped, resumed, 50, NULL);
    print_message ("subscriber stopped %d ms while %" PRIu64 " puts were acknowledged (",
                   S_STOPPED_MS, acked_stopped);
    for (int part = 1; part <= S_PARTS; part++)
        print_message ("%s%" PRIu64, part > 1 ? ", " : "", acked_at[part] - acked_at[part - 1]);
    print_message (" in its %d parts)\n", S_PARTS);
    print_message ("ack latency p50/p99 (information only): before %.2f/%.2f ms (%zu puts), while "
                   "stopped %.2f/%.2f ms (%zu puts)\n",
                   p50_before / 1000.0, p99_before / 1000.0, n_before, p50_stopped / 1000.0,
                   p99_stopped / 1000.0, n_stopped);
    print_message ("writers: %" PRIu64 " requests, %" PRIu64 " retried, %" PRIu64
                   " calls without a reply, %" PRIu64 " uncertain puts\n",
                   stats.requests, stats.retried, stats.no_reply, stats.uncertain);
    print_message ("subscriber after SIGCONT: digest %016" PRIx64 " vs server %016" PRIx64
                   ", position %" PRIu64 " of %" PRIu64 "; gaps %" PRIu64 " (before the stop "
                   "%" PRIu64 "), catch-ups %" PRIu64 " (%" PRIu64 "), snapshots %" PRIu64
                   " (%" PRIu64 "), lost %" PRIu64 ", order errors %" PRIu64 "\n",
                   after->digest, status.digest, after->position, status.head_sequence,
                   after->stats.gaps, before.stats.gaps, after->stats.catchups,
                   before.stats.catchups, after->stats.snapshots, before.stats.snapshots,
                   after->stats.lost, after->order_errors);
    assert_true (acked_before > 0);
    //  Ingest never blocked on the stopped subscriber: acks in every part
    //  of the stop window, none needed a retry or went unanswered
    for (int part = 1; part <= S_PARTS; part++)
        if (acked_at[part] <= acked_at[part - 1])
            fail_msg ("no put acknowledged in part %d of %d of the stop window", part, S_PARTS);
    assert_true (acked_after);
    assert_int_equal (stats.retried, 0);
    assert_int_equal (stats.no_reply, 0);
    assert_int_equal (stats.uncertain, 0);
    assert_int_equal (stats.mismatches, 0);
    assert_int_equal (stats.refused, 0);
    //  A hang guard, not a benchmark: below the writers' timeout
    assert_true (p99_stopped < (int64_t) config.timeout_ms * 1000);
    //  The stopped subscriber really lost events, and repaired
    assert_true (after->stats.gaps > before.stats.gaps ||
                 after->stats.catchups > before.stats.catchups ||
                 after->stats.snapshots > before.stats.snapshots);
    assert_true (converged);
    assert_int_equal (after->count, status.record_count);
    assert_int_equal (after->order_errors, 0);
}

/*  Connections to the events socket, from /metrics, is `want`. */
typedef struct {
    const tf_service_t *svc;
    double want, seen;
} s_subscribers_t;

static bool s_subscribers_are (void *arg)
{
    s_subscribers_t *s = (s_subscribers_t *) arg;
    const char *names[] = { "techfeed_subscribers" };
    return tf_service_metrics (s->svc, names, &s->seen, 1) && s->seen == s->want;
}

static void test_hung_subscriber_dropped (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_int_equal (tf_fk_subscriber_start (&f->sub, &f->svc, NULL, 0, NULL), 0);
    assert_true (tf_fk_subscriber_wait (&f->sub, 0, 0, 20000)); // live on the empty database
    s_subscribers_t subscribers = { .svc = &f->svc, .want = 1, .seen = -1 };
    assert_true (tf_test_wait_for (s_subscribers_are, &subscribers, S_DROPPED_MS));

    assert_int_equal (kill (f->sub.pid, SIGSTOP), 0);
    subscribers.want = 0;
    bool dropped = tf_test_wait_for (s_subscribers_are, &subscribers, S_DROPPED_MS);
    int put = tf_fk_put_many (f->svc.ingest, "gone", 1, S_MISSED, 10, 200);
    assert_int_equal (kill (f->sub.pid, SIGCONT), 0);
    if (!dropped)
        fail_msg ("the stopped subscriber still counted %.0f ms after it stopped: %.0f connected",
                  (double) S_DROPPED_MS, subscribers.seen);
    assert_int_equal (put, 0);

    tf_status_t status;
    assert_int_equal (tf_fk_status (&f->svc, &status), 0);
    assert_int_equal (status.record_count, S_MISSED);
    bool converged = tf_fk_subscriber_wait (&f->sub, status.digest, status.head_sequence, 20000);
    const tf_fk_view_info_t *after = &f->sub.info;
    print_message ("subscriber after SIGCONT: %" PRIu64 " records, position %" PRIu64 " of %" PRIu64
                   "; gaps %" PRIu64 ", catch-ups %" PRIu64 ", snapshots %" PRIu64 "\n",
                   after->count, after->position, status.head_sequence, after->stats.gaps,
                   after->stats.catchups, after->stats.snapshots);
    assert_true (converged);
    assert_int_equal (after->order_errors, 0);
    subscribers.want = 1;
    assert_true (tf_test_wait_for (s_subscribers_are, &subscribers, S_DROPPED_MS));
}

int main (int argc, char **argv)
{
    tf_fk_subscriber_dispatch (argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_stopped_subscriber, setup, teardown),
        cmocka_unit_test_setup_teardown (test_hung_subscriber_dropped, setup_heartbeats, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
