/*  Fault: replies lost between the service and its writers.

    A proxy in the test (ROUTER for the writers, DEALER to the real
    service) forwards every request and throws away every third reply.
    Library writers time out and retry with the same request_id on a fresh
    socket (Lazy Pirate); the service answers retries from its idempotency
    cache. Exactly one change per request must be stored: the log, read by
    a catch-up from 0, holds one change per operation, each id once.

    A second case sends one request three times back to back on a raw
    socket, so the copies land in the same group commit as the original.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tf_faultkit.h"
#include "tf_rawclient.h"
#include "tf_wire.h"

#define S_WRITERS 4
#define S_REQUESTS 40 /* per writer */
#define S_OPS 2       /* records per request */

static void test_dropped_replies_store_once (void **state)
{
    tf_fk_fixture_t *f = (tf_fk_fixture_t *) *state;
    tf_fk_proxy_t *proxy = tf_fk_proxy_new (f->svc.ingest, 3);
    tf_fk_load_config_t config = { .endpoint = tf_fk_proxy_endpoint (proxy),
                                   .prefix = "reply",
                                   .writers = S_WRITERS,
                                   .ids = S_REQUESTS * S_OPS, // each id written once
                                   .ops = S_OPS,
                                   .timeout_ms = 250,
                                   .tries = 4,
                                   .persist = true,
                                   .give_up_ms = 20000,
                                   .max_requests = S_REQUESTS };
    tf_fk_load_t *load = tf_fk_load_start (&config);
    tf_fk_load_wait (load); // returns when every writer did its requests
    tf_fk_load_stats_t stats;
    tf_fk_load_stats (load, &stats);
    uint64_t forwarded, replies, dropped;
    tf_fk_proxy_counts (proxy, &forwarded, &replies, &dropped);
    tf_fk_proxy_destroy (&proxy);

    tf_status_t status;
    assert_int_equal (tf_fk_status (&f->svc, &status), 0);
    zhashx_t *per_id = zhashx_new ();
    uint64_t changes = 0;
    assert_int_equal (tf_fk_catchup_count (&f->svc, 0, status.epoch, &changes, per_id), 0);
    uint64_t twice = 0;
    for (void *n = zhashx_first (per_id); n; n = zhashx_next (per_id))
        twice += (uintptr_t) n > 1;
    zhashx_t *stored = tf_fk_revisions (&f->svc);
    assert_non_null (stored);
    uint64_t lost, doubled, ids;
    tf_fk_load_check (load, stored, &lost, &doubled, &ids);

    uint64_t requests = S_WRITERS * S_REQUESTS, ops = requests * S_OPS;
    print_message ("requests: %" PRIu64 " (%" PRIu64 " sent through the proxy), replies dropped: "
                   "%" PRIu64 ", answered from the idempotency cache: %" PRIu64 "\n",
                   requests, forwarded, dropped, stats.replayed);
    print_message ("changes stored: %" PRIu64 " for %" PRIu64 " operations; ids changed twice: "
                   "%" PRIu64 "; acked lost: %" PRIu64 " of %" PRIu64 "; duplicates: %" PRIu64 "\n",
                   changes, ops, twice, lost, stats.acked, doubled + stats.mismatches);
    assert_true (dropped >= requests / 4); // the fault really happened
    assert_true (stats.replayed > 0);
    assert_int_equal (stats.requests, requests);
    assert_int_equal (stats.acked, ops);
    assert_int_equal (stats.uncertain, 0);
    assert_int_equal (stats.mismatches, 0);
    assert_int_equal (changes, ops);
    assert_int_equal (status.head_sequence, ops);
    assert_int_equal (zhashx_size (per_id), ops);
    assert_int_equal (twice, 0);
    assert_int_equal (lost, 0);
    assert_int_equal (doubled, 0);
    assert_int_equal (ids, ops);
    zhashx_destroy (&per_id);
    zhashx_destroy (&stored);
    tf_fk_load_destroy (&load);
}

/*  The original and its retries in one group commit: the copies are
    answered from the cache written by the same, still open transaction. */
static void test_retries_in_one_group (void **state)
{
    tf_fk_fixture_t *f = (tf_fk_fixture_t *) *state;
    tf_status_t before, after;
    assert_int_equal (tf_fk_status (&f->svc, &before), 0);
    zsock_t *dealer = zsock_new_dealer (f->svc.ingest);
    zsock_set_rcvtimeo (dealer, 5000);
    for (int i = 0; i < 3; i++)
        tf_raw_send_put (dealer, "same-group-retry", TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL,
                         "3f1c-same-group-retry");
    uint64_t sequence = 0;
    int replayed = 0;
    for (int i = 0; i < 3; i++) {
        Techfeed__IngestReply *reply = tf_raw_recv_reply (dealer);
        assert_non_null (reply);
        assert_int_equal (reply->n_results, 1);
        assert_int_equal (reply->results[0]->code, TECHFEED__ERROR_CODE__OK);
        assert_int_equal (reply->results[0]->revision, 1);
        if (i == 0)
            sequence = reply->results[0]->sequence;
        assert_int_equal (reply->results[0]->sequence, sequence);
        replayed += reply->replayed;
        techfeed__ingest_reply__free_unpacked (reply, NULL);
    }
    zsock_destroy (&dealer);
    assert_int_equal (tf_fk_status (&f->svc, &after), 0);
    print_message ("one request sent 3 times back to back: %" PRIu64 " change stored, %d replies "
                   "replayed\n",
                   after.head_sequence - before.head_sequence, replayed);
    assert_int_equal (after.head_sequence, before.head_sequence + 1);
    assert_int_equal (replayed, 2);
}

int main (int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_dropped_replies_store_once, tf_fk_setup,
                                         tf_fk_teardown),
        cmocka_unit_test_setup_teardown (test_retries_in_one_group, tf_fk_setup, tf_fk_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
