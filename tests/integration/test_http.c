/*  Health and metrics over HTTP, scraped with curl from the real service:
    /healthz and /readyz answer, /metrics is valid Prometheus text (every
    sample has a preceding TYPE, names are valid) and its counters move
    as records are put. Through the WAL gauges: a snapshot held open keeps
    the WAL from starting over, the writer then retries its checkpoint a
    step later instead of after every group, and the WAL starts over once
    the snapshot is closed. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <czmq.h>

#include "tf_faultkit.h"
#include "tf_rawclient.h"
#include "tf_testkit.h"

/*  The service with an HTTP listener on a free port, and raw sockets. */
static int setup (void **state)
{
    const char *extra[] = { "--http-addr", "127.0.0.1:0", NULL };
    if (tf_raw_fixture_setup (state, extra) != 0)
        return -1;
    assert_true (((tf_raw_fixture_t *) *state)->svc.http[0]);
    return 0;
}

/*  Same, and snapshot cursors stay open for two minutes unused. */
static int setup_long_cursors (void **state)
{
    const char *extra[] = { "--http-addr", "127.0.0.1:0", "--cursor-idle-ms", "120000", NULL };
    return tf_raw_fixture_setup (state, extra);
}

/*  GET PATH; returns the body (caller frees) and the HTTP status. */
static char *s_get (tf_raw_fixture_t *f, const char *path, int *status)
{
    char *body = tf_service_http_get (&f->svc, path, status);
    assert_non_null (body);
    return body;
}

/*  Value of the sample line `name`; the test fails when there is none. */
static double s_sample (const char *text, const char *name)
{
    double value = -1;
    if (!tf_metrics_sample (text, name, &value))
        fail_msg ("no sample %s", name);
    return value;
}

static bool s_valid_name (const char *name, size_t len)
{
    if (!len || !(isalpha ((unsigned char) name[0]) || name[0] == '_' || name[0] == ':'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum ((unsigned char) name[i]) || name[i] == '_' || name[i] == ':'))
            return false;
    return true;
}

/*  Checks the exposition: each sample's family was TYPEd before it. */
static void s_check_exposition (const char *text)
{
    zhashx_t *typed = zhashx_new ();
    char *copy = strdup (text);
    char *save = NULL;
    size_t samples = 0;
    for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        char name[128];
        if (sscanf (line, "# TYPE %127s", name) == 1) {
            zhashx_insert (typed, name, (void *) 1);
            continue;
        }
        if (line[0] == '#')
            continue;
        size_t len = strcspn (line, "{ ");
        assert_true (s_valid_name (line, len));
        snprintf (name, sizeof name, "%.*s", (int) len, line);
        //  Histogram samples belong to the family without their suffix.
        const char *suffixes[] = { "_bucket", "_sum", "_count" };
        bool found = zhashx_lookup (typed, name) != NULL;
        for (int i = 0; i < 3 && !found; i++) {
            size_t n = strlen (name), s = strlen (suffixes[i]);
            if (n > s && strcmp (name + n - s, suffixes[i]) == 0) {
                name[n - s] = 0;
                found = zhashx_lookup (typed, name) != NULL;
            }
        }
        if (!found)
            fail_msg ("sample without a preceding TYPE: %s", line);
        samples++;
    }
    assert_true (samples > 20);
    free (copy);
    zhashx_destroy (&typed);
}

/*  The metric `name` now. */
static double s_metric_now (tf_raw_fixture_t *f, const char *name)
{
    int status;
    char *text = s_get (f, "/metrics", &status);
    assert_int_equal (status, 200);
    double value = s_sample (text, name);
    free (text);
    return value;
}

static void test_health_and_ready (void **state)
{
    tf_raw_fixture_t *f = (tf_raw_fixture_t *) *state;
    int status;
    char *body = s_get (f, "/healthz", &status);
    assert_int_equal (status, 200);
    assert_string_equal (body, "ok\n");
    free (body);
    body = s_get (f, "/readyz", &status);
    assert_int_equal (status, 200);
    free (body);
    body = s_get (f, "/nope", &status);
    assert_int_equal (status, 404);
    free (body);
    //  Another method: 405, saying which are allowed
    char url[200];
    snprintf (url, sizeof url, "%s/metrics", f->svc.http);
    const char *argv[] = { "/usr/bin/curl", "-s", "-i", "-X", "POST", url, NULL };
    char *out = NULL, *err = NULL;
    assert_int_equal (tf_test_run (NULL, argv, NULL, &out, &err, 10000), 0);
    assert_non_null (strstr (out, " 405 "));
    assert_non_null (strstr (out, "Allow: GET, HEAD"));
    free (out);
    free (err);
}

/*  A scrape of /metrics awaited until the counters have moved. */
typedef struct {
    tf_raw_fixture_t *f;
    double loop_held; /* the loop's lock account before the puts */
    char *text;       /* the last scrape (caller frees) */
} s_moved_t;

static const char s_loop_held[] = "techfeed_store_lock_held_seconds_total{thread=\"loop\"}";

/*  The reply to a put leaves before the loop moves its counters: true
    once a scrape shows the 5 records and the rejected one counted. */
static bool s_metrics_moved (void *arg)
{
    s_moved_t *m = (s_moved_t *) arg;
    int status;
    free (m->text);
    m->text = s_get (m->f, "/metrics", &status);
    assert_int_equal (status, 200);
    const char *t = m->text;
    double commits = s_sample (t, "techfeed_commits_total");
    return s_sample (t, "techfeed_records_ingested_total") == 5 &&
           s_sample (t, "techfeed_records_rejected_total{reason=\"INVALID\"}") == 1 &&
           s_sample (t, "techfeed_events_published_total") == 5 &&
           s_sample (t, "techfeed_ingest_latency_seconds_count") == 6 &&
           s_sample (t, "techfeed_ingest_requests_total") == 6 && commits >= 5 &&
           s_sample (t, "techfeed_commit_duration_seconds_count") == commits &&
           s_sample (t, s_loop_held) > m->loop_held;
}

static void test_metrics_move (void **state)
{
    tf_raw_fixture_t *f = (tf_raw_fixture_t *) *state;
    int status;
    char *before = s_get (f, "/metrics", &status);
    assert_int_equal (status, 200);
    s_check_exposition (before);
    assert_true (s_sample (before, "techfeed_records_ingested_total") == 0);

    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf (id, sizeof id, "metric-%d", i);
        assert_int_equal (tf_raw_put (f->ingest, id, TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL), 0);
    }
    //  An invalid record: counted as rejected, reason INVALID.
    assert_int_equal (
        tf_raw_put (f->ingest, "Not A Slug", TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL),
        TECHFEED__ERROR_CODE__INVALID);

    s_moved_t moved = { .f = f, .loop_held = s_sample (before, s_loop_held) };
    bool in_time = tf_test_wait_for (s_metrics_moved, &moved, 10000);
    char *after = moved.text;
    if (!in_time)
        print_message ("/metrics did not show the puts within 10 s; checking its last scrape\n");
    s_check_exposition (after);
    assert_true (s_sample (after, "techfeed_records_ingested_total") == 5);
    assert_true (s_sample (after, "techfeed_records_rejected_total{reason=\"INVALID\"}") == 1);
    assert_true (s_sample (after, "techfeed_events_published_total") == 5);
    assert_true (s_sample (after, "techfeed_ingest_latency_seconds_count") == 6);
    assert_true (s_sample (after, "techfeed_ingest_requests_total") == 6);
    //  One commit duration per committed group, each a real duration.
    double commits = s_sample (after, "techfeed_commits_total");
    assert_true (commits >= 5);
    assert_true (s_sample (after, "techfeed_commit_duration_seconds_count") == commits);
    assert_true (s_sample (after, "techfeed_commit_duration_seconds_bucket{le=\"+Inf\"}") ==
                 commits);
    assert_true (s_sample (after, "techfeed_commit_duration_seconds_sum") > 0);
    //  The loop held the writer connection for those groups
    const char *loop_held = s_loop_held;
    assert_true (s_sample (after, loop_held) > s_sample (before, loop_held));
    free (before);
    free (after);

    //  The records table follows the log on its own: once the gauges show
    //  the 5 changes (they move with heartbeats), the table has them all.
    int64_t deadline = zclock_mono () + 10000;
    double head = 0, behind = -1, index = 0;
    while ((head != 5 || behind != 0) && zclock_mono () < deadline) {
        char *now = s_get (f, "/metrics", &status);
        head = s_sample (now, "techfeed_head_sequence");
        behind = s_sample (now, "techfeed_records_table_behind");
        index = s_sample (now, "techfeed_index_bytes");
        free (now);
        if (head != 5 || behind != 0)
            zclock_sleep (50);
    }
    assert_true (head == 5);
    assert_true (behind == 0);
    //  5 ids and 6 request ids held in memory: some bytes, not megabytes
    assert_true (index > 0 && index < 1e6);

    //  And the applier held it for the records table (its account is added
    //  just after `applied` moves: polled, bounded). No account is longer
    //  than the service has run.
    const char *applier_held = "techfeed_store_lock_held_seconds_total{thread=\"applier\"}";
    double applier = 0;
    while ((applier = s_metric_now (f, applier_held)) == 0 && zclock_mono () < deadline)
        zclock_sleep (50);
    char *now = s_get (f, "/metrics", &status);
    double uptime = (double) zclock_time () / 1000 - s_sample (now, "techfeed_start_time_seconds");
    assert_true (applier > 0 && applier < uptime);
    assert_true (s_sample (now, loop_held) < uptime);
    double wait = s_sample (now, "techfeed_store_lock_wait_seconds_total");
    assert_true (wait >= 0 && wait < uptime);
    free (now);

    //  SYNC_STATUS says the same.
    Techfeed__SyncReply *reply = tf_raw_status (f->sync);
    assert_non_null (reply);
    assert_non_null (reply->status);
    assert_true (reply->status->has_records_applied);
    assert_int_equal (reply->status->records_applied, 5);
    assert_int_equal (reply->status->head_sequence, 5);
    techfeed__sync_reply__free_unpacked (reply, NULL);
}

#define S_WAL_MAX 8192 /* pages past which the writer checkpoints (tf_server.c) */
#define S_WAL_STEP 256 /* and, while a reader holds frames, again this many later */
#define S_SINGLE_PUTS 200

/*  SYNC_SNAPSHOT or SYNC_CLOSE of `cursor` on the fixture's sync socket;
    returns the reply's cursor (0 for none) after checking it is OK. */
static uint64_t s_sync (tf_raw_fixture_t *f, Techfeed__SyncKind kind, uint64_t cursor)
{
    Techfeed__SyncRequest request;
    techfeed__sync_request__init (&request);
    request.has_version = request.has_kind = request.has_chunk_size = request.has_cursor = 1;
    request.version = 1;
    request.kind = kind;
    request.chunk_size = 1;
    request.cursor = cursor;
    tf_raw_send_sync (f->sync, &request);
    Techfeed__SyncReply *reply = tf_raw_recv_sync (f->sync);
    assert_non_null (reply);
    assert_int_equal (reply->code, TECHFEED__ERROR_CODE__OK);
    uint64_t id = reply->has_cursor ? reply->cursor : 0;
    techfeed__sync_reply__free_unpacked (reply, NULL);
    return id;
}

static void test_wal_waits_for_a_reader (void **state)
{
    tf_raw_fixture_t *f = (tf_raw_fixture_t *) *state;
    //  Large records in large requests until the WAL passes `to` pages.
    double frames = 0;
    int first = 0;
    for (double to = S_WAL_MAX / 2; frames <= to && first < 40000; first += 500) {
        assert_int_equal (tf_fk_put_many (f->svc.ingest, "wal", first, 500, 100, 3000), 0);
        frames = s_metric_now (f, "techfeed_wal_frames");
    }
    //  A snapshot cursor left open after its first chunk: its read
    //  transaction holds the WAL's frames from here on, while those
    //  before it can be copied.
    uint64_t cursor = s_sync (f, TECHFEED__SYNC_KIND__SYNC_SNAPSHOT, 0);
    assert_true (cursor > 0);
    for (; frames <= S_WAL_MAX && first < 40000; first += 500) {
        assert_int_equal (tf_fk_put_many (f->svc.ingest, "wal", first, 500, 100, 3000), 0);
        frames = s_metric_now (f, "techfeed_wal_frames");
    }
    if (frames <= S_WAL_MAX)
        fail_msg ("the WAL stayed at %.0f pages after 40,000 puts", frames);

    //  Groups of one put each: the writer may not checkpoint after each,
    //  nor after each turn of its loop (a status request between puts
    //  makes a turn without a commit).
    double tries = s_metric_now (f, "techfeed_wal_checkpoints_total");
    for (int i = 0; i < S_SINGLE_PUTS; i++) {
        char id[32];
        snprintf (id, sizeof id, "wal-one-%d", i);
        assert_int_equal (tf_raw_put (f->ingest, id, TECHFEED__SECTOR__SECTOR_SPACE), 0);
        s_sync (f, TECHFEED__SYNC_KIND__SYNC_STATUS, 0);
    }
    double grown = s_metric_now (f, "techfeed_wal_frames") - frames;
    tries = s_metric_now (f, "techfeed_wal_checkpoints_total") - tries;
    print_message ("WAL past %d pages, snapshot open: %d puts, %.0f pages more, %.0f "
                   "checkpoints\n",
                   S_WAL_MAX, S_SINGLE_PUTS, grown, tries);
    assert_true (grown > 0);                       /* it could not start over */
    assert_true (tries <= grown / S_WAL_STEP + 1); /* one per step, */
    assert_true (tries < S_SINGLE_PUTS / 4);       /* not one per group, */
    if (grown > S_WAL_STEP)                        /* but it does retry */
        assert_true (tries >= 1);

    //  Once the snapshot is closed, the WAL starts over within some puts.
    assert_int_equal (s_sync (f, TECHFEED__SYNC_KIND__SYNC_CLOSE, cursor), 0);
    int puts = 0;
    while (frames > S_WAL_MAX && puts < 3000) {
        char id[32];
        snprintf (id, sizeof id, "wal-after-%d", puts++);
        assert_int_equal (tf_raw_put (f->ingest, id, TECHFEED__SECTOR__SECTOR_SPACE), 0);
        if (puts % 20 == 0)
            frames = s_metric_now (f, "techfeed_wal_frames");
    }
    print_message ("snapshot closed: the WAL at %.0f pages after %d puts\n", frames, puts);
    assert_true (frames <= S_WAL_MAX);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_health_and_ready, setup, tf_raw_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_metrics_move, setup, tf_raw_fixture_teardown),
        cmocka_unit_test_setup_teardown (test_wal_waits_for_a_reader, setup_long_cursors,
                                         tf_raw_fixture_teardown),
    };
    return cmocka_run_group_tests_name ("health and metrics", tests, NULL, NULL);
}
