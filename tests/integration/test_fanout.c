/*  Fan-out through the real techfeed-ingestd: one put is seen by every
    library view whose sectors hold it — exactly once — and by no other.
    Views: {space}, {space, rail}, {ai} and one of all sectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tf_rawclient.h"
#include "tf_viewkit.h"

#define SPACE TECHFEED__SECTOR__SECTOR_SPACE
#define RAIL TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL
#define AI TECHFEED__SECTOR__SECTOR_AI
#define OTHER TECHFEED__SECTOR__SECTOR_OTHER
#define N_VIEWS 4

typedef struct {
    tf_service_t svc;
    tf_writer_t *writer;
    tf_watcher_t *views[N_VIEWS]; /* space, space+rail, ai, all */
} fixture_t;

/*  Which views hold which sector. */
static const Techfeed__Sector s_space[] = { SPACE };
static const Techfeed__Sector s_space_rail[] = { SPACE, RAIL };
static const Techfeed__Sector s_ai[] = { AI };

static bool s_holds (int view, Techfeed__Sector sector)
{
    switch (view) {
        case 0: return sector == SPACE;
        case 1: return sector == SPACE || sector == RAIL;
        case 2: return sector == AI;
        default: return true;
    }
}

static int teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_watchers_destroy (f->views, N_VIEWS);
    tf_writer_destroy (&f->writer);
    int rc = tf_test_service_end (&f->svc);
    free (f);
    return rc;
}

static int setup (void **state)
{
    const char *extra[] = { "--heartbeat-ms", "300", NULL };
    fixture_t *f = (fixture_t *) tf_test_fixture_new (sizeof *f, extra);
    *state = f;
    if (!f)
        return -1;
    f->writer = tf_writer_new (f->svc.ingest);
    tf_writer_set_timeout (f->writer, 5000);
    f->views[0] = tf_watcher_new (&f->svc, "space", s_space, 1);
    f->views[1] = tf_watcher_new (&f->svc, "space+rail", s_space_rail, 2);
    f->views[2] = tf_watcher_new (&f->svc, "ai", s_ai, 1);
    f->views[3] = tf_watcher_new (&f->svc, "all", NULL, 0);
    if (tf_watchers_start (f->views, N_VIEWS) != 0) {
        teardown (state); // cmocka runs no teardown after a failed setup
        return -1;
    }
    return 0;
}

/*  Puts one record; returns its sequence. */
static uint64_t s_put (fixture_t *f, const char *id, Techfeed__Sector sector)
{
    Techfeed__Milestone record, *records[] = { &record };
    tf_raw_record (&record, id, sector);
    tf_result_t result;
    assert_int_equal (tf_writer_put (f->writer, records, 1, false, &result), 0);
    assert_int_equal (result.code, TECHFEED__ERROR_CODE__OK);
    return result.sequence;
}

/*  Every view has heard everything up to `sequence`. */
typedef struct {
    fixture_t *f;
    uint64_t sequence;
} s_barrier_t;

static bool s_all_at (void *arg)
{
    s_barrier_t *b = (s_barrier_t *) arg;
    for (int i = 0; i < N_VIEWS; i++)
        if (tf_view_position (b->f->views[i]->view) < b->sequence)
            return false;
    return true;
}

/*  A put in a sector no filtered view holds, and every view past it: what
    each was going to see of the puts before has arrived. */
static void s_barrier (fixture_t *f, const char *marker)
{
    s_barrier_t barrier = { f, s_put (f, marker, OTHER) };
    assert_true (tf_watchers_poll_until (f->views, N_VIEWS, s_all_at, &barrier, 10000));
}

static void test_one_put_each_view_once (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    struct {
        const char *id;
        Techfeed__Sector sector;
    } puts[] = { { "fan-space", SPACE }, { "fan-rail", RAIL }, { "fan-ai", AI } };
    for (size_t p = 0; p < 3; p++) {
        uint64_t sequence = s_put (f, puts[p].id, puts[p].sector);
        print_message ("put %s (%s) at seq %llu\n", puts[p].id,
                       puts[p].sector == SPACE  ? "space"
                       : puts[p].sector == RAIL ? "rail"
                                                : "ai",
                       (unsigned long long) sequence);
        s_barrier (f, p == 0 ? "marker-1" : p == 1 ? "marker-2" : "marker-3");
        for (int v = 0; v < N_VIEWS; v++) {
            tf_watcher_t *w = f->views[v];
            size_t expected = s_holds (v, puts[p].sector) ? 1 : 0;
            if (tf_watcher_seen (w, puts[p].id) != expected)
                fail_msg ("view %s saw %s %zu times, expected %zu", w->name, puts[p].id,
                          tf_watcher_seen (w, puts[p].id), expected);
            const Techfeed__Milestone *r = tf_view_get (w->view, puts[p].id);
            if (expected) {
                assert_non_null (r);
                assert_string_equal (r->title, "Chang'e-4 lands on the far side of the Moon");
                assert_int_equal (r->revision, 1);
            } else
                assert_null (r);
        }
    }
    //  Each view holds what its sectors hold, and heard nothing twice
    size_t held[N_VIEWS] = { 1, 2, 1, 6 }; /* all: three records and three markers */
    for (int v = 0; v < N_VIEWS; v++) {
        tf_watcher_t *w = f->views[v];
        print_message ("%s\n", tf_watcher_summary (w));
        char why[400];
        if (!tf_watcher_consistent (w, why, sizeof why))
            fail_msg ("%s", why);
        assert_int_equal (tf_view_count (w->view), held[v]);
        assert_int_equal (w->adds, held[v]);
        assert_int_equal (w->updates + w->deletes, 0);
        assert_int_equal (w->n_sequences, held[v]);
    }
    assert_true (tf_watchers_converge (f->views, N_VIEWS, &f->svc, 10000));
}

static void test_update_and_delete_fan_out (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    //  One request with a record per sector of interest
    Techfeed__Milestone space, rail, ai, *records[] = { &space, &rail, &ai };
    tf_raw_record (&space, "batch-space", SPACE);
    tf_raw_record (&rail, "batch-rail", RAIL);
    tf_raw_record (&ai, "batch-ai", AI);
    tf_result_t results[3];
    assert_int_equal (tf_writer_put (f->writer, records, 3, false, results), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal (results[i].code, TECHFEED__ERROR_CODE__OK);
    //  Then an update of the rail one and a delete of the space one
    rail.title = (char *) "Beijing-Shanghai high-speed railway opens";
    tf_result_t result;
    Techfeed__Milestone *update[] = { &rail };
    assert_int_equal (tf_writer_put (f->writer, update, 1, false, &result), 0);
    assert_int_equal (result.code, TECHFEED__ERROR_CODE__OK);
    assert_int_equal (result.revision, 2);
    assert_int_equal (tf_writer_delete (f->writer, "batch-space", false, 0, &result), 0);
    assert_int_equal (result.code, TECHFEED__ERROR_CODE__OK);
    s_barrier (f, "marker-batch");

    for (int v = 0; v < N_VIEWS; v++) {
        tf_watcher_t *w = f->views[v];
        print_message ("%s\n", tf_watcher_summary (w));
        //  space: add + delete; rail: add + update; ai: add
        assert_int_equal (tf_watcher_seen (w, "batch-space"), s_holds (v, SPACE) ? 2 : 0);
        assert_int_equal (tf_watcher_seen (w, "batch-rail"), s_holds (v, RAIL) ? 2 : 0);
        assert_int_equal (tf_watcher_seen (w, "batch-ai"), s_holds (v, AI) ? 1 : 0);
        assert_null (tf_view_get (w->view, "batch-space"));
        const Techfeed__Milestone *r = tf_view_get (w->view, "batch-rail");
        if (s_holds (v, RAIL)) {
            assert_non_null (r);
            assert_int_equal (r->revision, 2);
            assert_string_equal (r->title, "Beijing-Shanghai high-speed railway opens");
        } else
            assert_null (r);
        char why[400];
        if (!tf_watcher_consistent (w, why, sizeof why))
            fail_msg ("%s", why);
        assert_int_equal (w->resyncs, 0);
    }
    assert_true (tf_watchers_converge (f->views, N_VIEWS, &f->svc, 10000));
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_one_put_each_view_once, setup, teardown),
        cmocka_unit_test_setup_teardown (test_update_and_delete_fan_out, setup, teardown),
    };
    return cmocka_run_group_tests_name ("fanout", tests, NULL, NULL);
}
