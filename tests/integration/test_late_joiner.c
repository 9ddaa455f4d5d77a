/*  A late joiner against the real techfeed-ingestd: records are written,
    then views start while a writer keeps putting, re-putting and deleting.
    Each gets the snapshot plus every change after it — no gap, no
    duplicate: an unfiltered view applies exactly the sequences after its
    snapshot, and at the end every view holds what `techfeed list --json`
    prints (ids and revisions) and has the digest `techfeed status` says. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tf_viewkit.h"

#define SPACE TECHFEED__SECTOR__SECTOR_SPACE
#define QUANTUM TECHFEED__SECTOR__SECTOR_QUANTUM
#define BEFORE 300      /* operations before the views join */
#define AFTER_READY 150 /* operations at least after the last view is ready */

/*  `techfeed list --json` and `techfeed status --json` with `sectors`
    ("--sector S" pairs, or none): the view holds what the list prints (ids
    and revisions), and has the count, digest and epoch the status says. */
static void s_check_against_cli (tf_service_t *svc, tf_watcher_t *w, const char *s1, const char *s2)
{
    char *out = NULL, *err = NULL;
    int rc = s1 ? tf_test_cli (svc, NULL, &out, &err, "list", "--json", "--sector", s1, "--sector",
                               s2, NULL)
                : tf_test_cli (svc, NULL, &out, &err, "list", "--json", NULL);
    if (rc != 0)
        fail_msg ("techfeed list: exit %d: %s", rc, err);
    json_t *records = tf_test_ndjson (out);
    free (out);
    free (err);
    assert_non_null (records);
    char why[400];
    if (!tf_watcher_equals_json (w, records, why, sizeof why))
        fail_msg ("%s", why);
    print_message ("%s: %zu records, equal to `techfeed list`\n", w->name,
                   json_array_size (records));
    json_decref (records);

    rc = s1 ? tf_test_cli (svc, NULL, &out, &err, "status", "--json", "--sector", s1, "--sector",
                           s2, NULL)
            : tf_test_cli (svc, NULL, &out, &err, "status", "--json", NULL);
    if (rc != 0)
        fail_msg ("techfeed status: exit %d: %s", rc, err);
    json_t *st = json_loads (out, 0, NULL);
    free (out);
    free (err);
    assert_non_null (st);
    char mine[17];
    snprintf (mine, sizeof mine, "%016" PRIx64, tf_view_digest (w->view));
    assert_string_equal (json_string_value (json_object_get (st, "digest")), mine);
    assert_int_equal (json_integer_value (json_object_get (st, "record_count")),
                      tf_view_count (w->view));
    assert_string_equal (json_string_value (json_object_get (st, "epoch")),
                         tf_view_epoch (w->view));
    json_decref (st);
}

/*  Enough writing after the last view became ready. */
typedef struct {
    tf_load_t *load;
    size_t until;
} s_progress_t;

static bool s_written (void *arg)
{
    s_progress_t *p = (s_progress_t *) arg;
    return atomic_load (&p->load->done) >= p->until || p->load->failed;
}

static void test_late_joiner_while_writing (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    //  The history: puts, re-puts and deletes in every sector
    tf_load_t before;
    tf_load_init (&before, svc, "old", BEFORE);
    before.update_every = 4;
    before.delete_every = 9;
    tf_load_run (&before);
    assert_int_equal (before.failed, 0);
    assert_int_equal (atomic_load (&before.done), BEFORE);
    tf_load_free (&before);

    //  A writer that goes on while the views join
    tf_load_t live;
    tf_load_init (&live, svc, "live", 0);
    live.update_every = 3;
    live.delete_every = 7;
    assert_int_equal (tf_load_start (&live), 0);
    s_progress_t progress = { &live, 20 };
    assert_true (tf_test_wait_for (s_written, &progress, 10000));

    const Techfeed__Sector some[] = { SPACE, QUANTUM };
    tf_watcher_t *views[2] = { tf_watcher_new (svc, "late-all", NULL, 0),
                               tf_watcher_new (svc, "late-sq", some, 2) };
    size_t at_start[2], at_ready[2];
    for (int i = 0; i < 2; i++) {
        at_start[i] = atomic_load (&live.done);
        assert_int_equal (tf_watcher_start (views[i]), 0);
        at_ready[i] = atomic_load (&live.done);
        print_message ("%s joined at seq %llu; the writer had %zu operations done when it "
                       "started, %zu when it was ready\n",
                       views[i]->name, (unsigned long long) views[i]->ready_position, at_start[i],
                       at_ready[i]);
        //  Keep the first view polled while the second joins
        progress.until = at_ready[i] + 30;
        assert_true (tf_watchers_poll_until (views, i + 1, s_written, &progress, 15000));
    }
    progress.until = at_ready[1] + AFTER_READY;
    assert_true (tf_watchers_poll_until (views, 2, s_written, &progress, 20000));
    tf_load_stop (&live);
    tf_load_join (&live);
    if (live.failed)
        fail_msg ("writer: %s", live.error);

    assert_true (tf_watchers_converge (views, 2, svc, 15000));
    tf_status_t status;
    assert_int_equal (tf_kit_status (svc, &status), 0);
    print_message ("service: head %llu, %llu records; writer did %zu operations while the views "
                   "joined\n",
                   (unsigned long long) status.head_sequence,
                   (unsigned long long) status.record_count, atomic_load (&live.done));
    for (int i = 0; i < 2; i++)
        print_message ("%s\n", tf_watcher_summary (views[i]));

    //  Nothing missed, nothing twice: the changes after each snapshot are
    //  exactly the acknowledged ones in its sectors, each applied once
    size_t n_acks = atomic_load (&live.done);
    for (int i = 0; i < 2; i++) {
        tf_watcher_t *w = views[i];
        uint64_t *expected = (uint64_t *) calloc (n_acks + 1, sizeof *expected);
        size_t n = 0;
        for (size_t k = 0; k < n_acks; k++) {
            const tf_ack_t *a = &live.acks[k];
            bool held = w->n_sectors == 0 || a->sector == SPACE || a->sector == QUANTUM;
            if (held && a->sequence > w->ready_position)
                expected[n++] = a->sequence;
        }
        char why[400];
        if (!tf_watcher_applied_exactly (w, expected, n, why, sizeof why))
            fail_msg ("%s", why);
        free (expected);
        if (!tf_watcher_consistent (w, why, sizeof why))
            fail_msg ("%s", why);
        assert_int_equal (w->readys, 1);
        assert_int_equal (w->resyncs, 0);
    }
    //  The unfiltered one: exactly ready_position + 1 .. head
    assert_int_equal (views[0]->n_sequences, status.head_sequence - views[0]->ready_position);

    s_check_against_cli (svc, views[0], NULL, NULL);
    s_check_against_cli (svc, views[1], "space", "quantum");
    tf_load_free (&live);
    for (int i = 0; i < 2; i++)
        tf_watcher_destroy (&views[i]);
}

static void test_late_joiner_of_empty_and_busy_service (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    //  Joining an empty service: an empty snapshot, then everything live
    tf_watcher_t *view = tf_watcher_new (svc, "first", NULL, 0);
    assert_int_equal (tf_watcher_start (view), 0);
    assert_int_equal (view->ready_position, 0);
    assert_int_equal (tf_view_count (view->view), 0);
    tf_load_t load;
    tf_load_init (&load, svc, "rec", 120);
    load.update_every = 5;
    assert_int_equal (tf_load_start (&load), 0);
    //  Joins during the writes, polled meanwhile with the first
    s_progress_t progress = { &load, 40 };
    assert_true (tf_watchers_poll_until (&view, 1, s_written, &progress, 15000));
    tf_watcher_t *late = tf_watcher_new (svc, "second", NULL, 0);
    assert_int_equal (tf_watcher_start (late), 0);
    tf_watcher_t *views[2] = { view, late };
    progress.until = 120;
    assert_true (tf_watchers_poll_until (views, 2, s_written, &progress, 20000));
    tf_load_join (&load);
    assert_int_equal (load.failed, 0);
    assert_true (tf_watchers_converge (views, 2, svc, 15000));
    for (int i = 0; i < 2; i++) {
        print_message ("%s\n", tf_watcher_summary (views[i]));
        char why[400];
        if (!tf_watcher_consistent (views[i], why, sizeof why))
            fail_msg ("%s", why);
    }
    //  The first saw all 120 changes live, the second those after its snapshot
    assert_int_equal (view->n_sequences, 120);
    assert_int_equal (late->n_sequences, 120 - late->ready_position);
    assert_int_equal (tf_view_digest (view->view), tf_view_digest (late->view));
    tf_load_free (&load);
    tf_watcher_destroy (&view);
    tf_watcher_destroy (&late);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_late_joiner_while_writing, tf_test_setup_service,
                                         tf_test_teardown_service),
        cmocka_unit_test_setup_teardown (test_late_joiner_of_empty_and_busy_service,
                                         tf_test_setup_service, tf_test_teardown_service),
    };
    return cmocka_run_group_tests_name ("late joiner", tests, NULL, NULL);
}
