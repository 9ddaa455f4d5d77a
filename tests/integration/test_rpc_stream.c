/*  tf_rpc_stream (libtechfeed's private cursor loop) against the real
    techfeed-ingestd, with and without read-ahead.

    The service holds S_RECORDS records (ids rs-100 .. rs-149, so id order
    is number order); every stream is a SNAPSHOT of S_CHUNK records per
    reply, so it takes several chunks. Each case runs twice, read-ahead off
    and on:

    - a whole stream hands every record once, in id order, the end mark
      last, and returns 0;
    - the handler stops (STOP: 0) or fails (ERROR: -1) after the 2nd chunk,
      and the next call on the same handle gets its own reply — a status,
      then a whole new snapshot — never the chunk read-ahead had asked for;
    - what the handler copies out of the borrowed replies (ids, whole
      records cloned) is intact after the stream, and nothing leaks;
    - the service stopped (SIGSTOP) after the 2nd chunk: the stream gives
      up after one timeout with "service unavailable", and once the
      service continues (SIGCONT) the same handle streams everything again;
    - however a stream ends early (its handler, a signal, a timeout), the
      service closes its cursor at once (its /metrics count no open
      cursor within S_CLOSED_MS), not at its idle timeout: an open cursor
      holds a read transaction, and the service's WAL cannot start over;
    - so does a client that vanishes without a word: a process killed
      (SIGKILL) in its handler with a cursor open, and a socket closed
      mid-stream, each time followed at once by another client whose
      connection most likely gets the same descriptor in the service:
      that one's own stream is never cut;
    - and a client whose process hangs whole (SIGSTOP: its ZeroMQ I/O
      thread answers no heartbeat, like a host gone) loses its cursor
      after --peer-timeout-ms (S_PEER_MS here), not the idle timeout;
    - a CLOSE for a cursor of the service's previous run, sent after a
      restart, closes no cursor of the new run.
*/
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tf_clone.h"
#include "tf_faultkit.h"
#include "tf_rawclient.h"
#include "tf_rpc.h"
#include "tf_spawn.h"
#include "tf_wire.h"

#define S_PREFIX "rs"
#define S_FIRST 100       /* ids rs-100 .. rs-149: id order is number order */
#define S_RECORDS 50      /* records in the service */
#define S_CHUNK 7         /* records per reply: 8 replies */
#define S_SUMMARY 300     /* bytes of each record's summary */
#define S_KEEP 64         /* copies a sink keeps, at most */
#define S_TIMEOUT_MS 5000 /* per reply, when the service runs */
#define S_STOPPED_MS 300  /* per reply, when the service is stopped */
#define S_REPLY_MAX (1u << 24)
#define S_CLOSED_MS 5000            /* a cursor given up is closed within this, */
#define S_IDLE_MS "60000"           /* not by the service's idle timeout; */
#define S_BEAT_MS "50"              /* /metrics' cursor gauge moves at each heartbeat */
#define S_PEER_MS "1000"            /* a client silent to ZeroMQ's heartbeats goes after this */
#define S_HOLD_ROLE "--hold-cursor" /* argv[1] of this program as a client that hangs */
#define S_VANISHED 20               /* clients that vanish mid-stream, one after another */
#define S_BUSY_GETS 8               /* GETs of ... */
#define S_BUSY_IDS 1000             /* ... this many ids keep the service busy meanwhile */

// ------------------------------------------------------------------ fixture

static const char *const s_extra[] = { "--http-addr",       "127.0.0.1:0",    "--cursor-idle-ms",
                                       S_IDLE_MS,           "--heartbeat-ms", S_BEAT_MS,
                                       "--peer-timeout-ms", S_PEER_MS,        NULL };

/*  The service with its records, for every case. */
static int setup (void **state)
{
    tf_service_t *svc = (tf_service_t *) tf_test_fixture_new (sizeof (tf_service_t), s_extra);
    if (!svc)
        return -1;
    *state = svc;
    if (tf_fk_put_many (svc->ingest, S_PREFIX, S_FIRST, S_RECORDS, 25, S_SUMMARY) != 0) {
        tf_test_teardown_service (state);
        return -1;
    }
    return 0;
}

static int teardown (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    if (svc->pid)
        kill (svc->pid, SIGCONT); // a failed case may have left it stopped
    return tf_test_teardown_service (state);
}

/*  After a case that stops the service: it continues, whatever happened. */
static int s_continue (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    if (svc->pid)
        kill (svc->pid, SIGCONT);
    return 0;
}

/*  One read of /metrics: heartbeats so far and the open cursor gauge. */
typedef struct {
    const tf_service_t *svc;
    double want;       /* cursors open, waited for */
    double beats_from; /* heartbeats at the first read */
    double beats, open;
} s_cursor_gauge_t;

static bool s_read_gauge (s_cursor_gauge_t *g)
{
    //  The heartbeat count comes before the gauge in the text
    static const char *names[] = { "techfeed_heartbeats_total", "techfeed_sync_cursors" };
    double values[2];
    if (!tf_service_metrics (g->svc, names, values, 2))
        return false;
    g->beats = values[0];
    g->open = values[1];
    return true;
}

/*  `want` cursors open, by a gauge set after the first read: the loop
    sets it just before it counts a heartbeat, so a count two past the
    first read's means a gauge set since. */
static bool s_cursors_open (void *arg)
{
    s_cursor_gauge_t *g = (s_cursor_gauge_t *) arg;
    return s_read_gauge (g) && g->beats >= g->beats_from + 2 && g->open == g->want;
}

/*  Waits until the service has `want` cursors open; false after
    S_CLOSED_MS, with *open the last count read. */
static bool s_wait_cursors (const tf_service_t *svc, double want, double *open)
{
    s_cursor_gauge_t gauge = { .svc = svc, .want = want };
    assert_true (s_read_gauge (&gauge));
    gauge.beats_from = gauge.beats;
    bool reached = tf_test_wait_for (s_cursors_open, &gauge, S_CLOSED_MS);
    *open = gauge.open;
    return reached;
}

/*  The streams that ended left no cursor open in the service. */
static void s_check_cursors_closed (const tf_service_t *svc)
{
    double open;
    if (!s_wait_cursors (svc, 0, &open))
        fail_msg ("%.0f cursor(s) still open in the service %d ms after their streams ended", open,
                  S_CLOSED_MS);
}

static tf_rpc_t *s_rpc (const tf_service_t *svc, bool read_ahead)
{
    tf_rpc_t *rpc = tf_rpc_new (svc->sync, S_REPLY_MAX);
    assert_non_null (rpc);
    tf_rpc_set_timeout (rpc, S_TIMEOUT_MS);
    tf_rpc_set_read_ahead (rpc, read_ahead);
    return rpc;
}

static void s_snapshot_request (Techfeed__SyncRequest *request)
{
    techfeed__sync_request__init (request);
    request->has_version = request->has_kind = request->has_chunk_size = 1;
    request->version = TF_PROTOCOL_VERSION;
    request->kind = TECHFEED__SYNC_KIND__SYNC_SNAPSHOT;
    request->chunk_size = S_CHUNK;
}

// ------------------------------------------------------------------ sink

/*  What a chunk handler saw, and what it does. */
typedef struct {
    //  Script
    size_t stop_after; /* answer `verdict` to this chunk (1 = the first); 0: never */
    int verdict;       /* TF_STREAM_STOP or TF_STREAM_ERROR */
    pid_t freeze;      /* instead: SIGSTOP this process at that chunk, answer MORE */
    bool interrupt;    /* instead: raise zsys_interrupted at that chunk, answer MORE */
    bool clone;        /* keep a tf_clone of every record */
    //  Seen
    size_t chunks;     /* replies handed */
    size_t ends;       /* end marks among them */
    size_t after_end;  /* replies handed after an end mark */
    size_t errors;     /* replies with a code other than OK */
    size_t no_cursor;  /* replies that are not the end and have no cursor */
    bool last_end;     /* the last reply was an end mark */
    bool frozen;       /* `freeze` was seen stopped */
    size_t records;    /* records handed */
    char *ids[S_KEEP]; /* copies of the first S_KEEP ids, in order */
    Techfeed__Milestone *clones[S_KEEP];
    size_t kept;
} s_sink_t;

static void s_sink_free (s_sink_t *sink)
{
    for (size_t i = 0; i < sink->kept; i++) {
        free (sink->ids[i]);
        free (sink->clones[i]);
    }
    sink->kept = 0;
}

/*  Whether a process is stopped (state T in /proc/PID/stat). */
static bool s_stopped (void *arg)
{
    char path[64], line[512];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) *(pid_t *) arg);
    FILE *file = fopen (path, "r");
    if (!file)
        return false;
    bool stopped = false;
    if (fgets (line, sizeof line, file)) {
        const char *paren = strrchr (line, ')'); // the name may hold spaces
        stopped = paren && paren[1] == ' ' && paren[2] == 'T';
    }
    fclose (file);
    return stopped;
}

static int s_chunk (const Techfeed__SyncReply *reply, void *arg)
{
    s_sink_t *sink = (s_sink_t *) arg;
    bool end = reply->has_end && reply->end;
    if (sink->ends)
        sink->after_end++;
    sink->chunks++;
    sink->ends += end;
    sink->last_end = end;
    if (reply->has_code && reply->code != TECHFEED__ERROR_CODE__OK)
        sink->errors++;
    if (!end && (!reply->has_cursor || reply->cursor == 0))
        sink->no_cursor++;
    for (size_t i = 0; i < reply->n_records; i++, sink->records++) {
        if (sink->kept == S_KEEP)
            continue;
        sink->ids[sink->kept] = strdup (reply->records[i]->id);
        sink->clones[sink->kept] =
            sink->clone ? (Techfeed__Milestone *) tf_clone (&reply->records[i]->base) : NULL;
        sink->kept++;
    }
    if (sink->stop_after == 0 || sink->chunks != sink->stop_after)
        return TF_STREAM_MORE;
    if (sink->interrupt) {
        zsys_interrupted = 1; // as SIGINT's handler does
        return TF_STREAM_MORE;
    }
    if (sink->freeze) {
        //  Stopped before we ask for more (read-ahead asked for one already)
        if (kill (sink->freeze, SIGSTOP) == 0)
            sink->frozen = tf_test_wait_for (s_stopped, &sink->freeze, 5000);
        return TF_STREAM_MORE;
    }
    return sink->verdict;
}

/*  The sink holds ids rs-FIRST.. in order, `count` of them. */
static void s_check_ids (const s_sink_t *sink, size_t count)
{
    assert_int_equal (sink->records, count);
    assert_int_equal (sink->kept, count);
    for (size_t i = 0; i < count; i++) {
        char id[32];
        snprintf (id, sizeof id, S_PREFIX "-%zu", S_FIRST + i);
        if (strcmp (sink->ids[i], id) != 0)
            fail_msg ("record %zu of the stream is %s, expected %s", i, sink->ids[i], id);
    }
}

/*  A whole snapshot on `rpc`: every record once, in id order, the end
    mark last. */
static void s_stream_all (tf_rpc_t *rpc)
{
    Techfeed__SyncRequest request;
    s_snapshot_request (&request);
    s_sink_t sink = { 0 };
    int rc = tf_rpc_stream (rpc, &request, s_chunk, &sink);
    if (rc != 0)
        fail_msg ("tf_rpc_stream: %d: %s", rc, tf_rpc_errstr (rpc));
    assert_int_equal (sink.chunks, (S_RECORDS + S_CHUNK) / S_CHUNK); // the end mark holds the rest
    assert_int_equal (sink.ends, 1);
    assert_true (sink.last_end);
    assert_int_equal (sink.after_end, 0);
    assert_int_equal (sink.errors, 0);
    assert_int_equal (sink.no_cursor, 0);
    s_check_ids (&sink, S_RECORDS);
    s_sink_free (&sink);
}

/*  SYNC_STATUS on `rpc`: the status of S_RECORDS records, not a chunk. */
static void s_check_status (tf_rpc_t *rpc)
{
    Techfeed__SyncRequest request;
    techfeed__sync_request__init (&request);
    request.has_version = request.has_kind = 1;
    request.version = TF_PROTOCOL_VERSION;
    request.kind = TECHFEED__SYNC_KIND__SYNC_STATUS;
    Techfeed__SyncReply *reply = (Techfeed__SyncReply *) tf_rpc_call (
        rpc, &request.base, &techfeed__sync_reply__descriptor, 0, NULL, NULL);
    if (!reply)
        fail_msg ("status: %s", tf_rpc_errstr (rpc));
    size_t records = reply->n_records;
    bool has_status = reply->status != NULL;
    uint64_t count = has_status ? reply->status->record_count : 0;
    tf_wire_free (&reply->base);
    if (!has_status)
        fail_msg ("the status request got a reply without status (%zu records: a chunk)", records);
    assert_int_equal (records, 0);
    assert_int_equal (count, S_RECORDS);
}

/*  After a stream that ended early, the same handle answers its own
    requests (a status, a whole snapshot, a status), then is destroyed. */
static void s_handle_still_right (tf_rpc_t **rpc_p)
{
    s_check_status (*rpc_p);
    s_stream_all (*rpc_p);
    s_check_status (*rpc_p);
    tf_rpc_destroy (rpc_p);
}

// ------------------------------------------------------------------ cases

static void s_whole (void **state, bool read_ahead)
{
    tf_service_t *svc = (tf_service_t *) *state;
    tf_rpc_t *rpc = s_rpc (svc, read_ahead);
    s_stream_all (rpc);
    s_stream_all (rpc); // the handle is ready for the next one
    tf_rpc_destroy (&rpc);
}

static void test_whole_stream (void **state)
{
    s_whole (state, false);
}

static void test_whole_stream_read_ahead (void **state)
{
    s_whole (state, true);
}

/*  The handler's script ends the stream at the 2nd chunk; the stream
    returns `expected` (and, when given, says `why`). */
static void s_end_early (tf_rpc_t *rpc, s_sink_t script, int expected, const char *why)
{
    Techfeed__SyncRequest request;
    s_snapshot_request (&request);
    s_sink_t sink = script;
    sink.stop_after = 2;
    int rc = tf_rpc_stream (rpc, &request, s_chunk, &sink);
    zsys_interrupted = 0; // what the interrupting script raised
    if (rc != expected)
        fail_msg ("tf_rpc_stream returned %d, expected %d (%s)", rc, expected, tf_rpc_errstr (rpc));
    if (why)
        assert_string_equal (tf_rpc_errstr (rpc), why);
    assert_int_equal (sink.chunks, 2); // nothing after the verdict
    assert_int_equal (sink.ends, 0);
    s_check_ids (&sink, 2 * S_CHUNK);
    s_sink_free (&sink);
}

/*  s_end_early, then the same handle gets a status and a whole snapshot. */
static void s_early (void **state, bool read_ahead, s_sink_t script, int expected, const char *why)
{
    tf_service_t *svc = (tf_service_t *) *state;
    tf_rpc_t *rpc = s_rpc (svc, read_ahead);
    s_end_early (rpc, script, expected, why);
    s_check_cursors_closed (svc);
    s_handle_still_right (&rpc);
}

/*  Interrupted while a chunk is on its way (asked for ahead, or just
    asked for): the stream ends with "interrupted", and once the signal is
    dealt with, the same handle answers its own requests, not with that
    chunk. */
static void test_interrupted (void **state)
{
    s_early (state, false, (s_sink_t){ .interrupt = true }, -1, "interrupted");
}

static void test_interrupted_read_ahead (void **state)
{
    s_early (state, true, (s_sink_t){ .interrupt = true }, -1, "interrupted");
}

static void test_stop (void **state)
{
    s_early (state, false, (s_sink_t){ .verdict = TF_STREAM_STOP }, 0, NULL);
}

static void test_stop_read_ahead (void **state)
{
    s_early (state, true, (s_sink_t){ .verdict = TF_STREAM_STOP }, 0, NULL);
}

static void test_error (void **state)
{
    s_early (state, false, (s_sink_t){ .verdict = TF_STREAM_ERROR }, -1, NULL);
}

static void test_error_read_ahead (void **state)
{
    s_early (state, true, (s_sink_t){ .verdict = TF_STREAM_ERROR }, -1, NULL);
}

/*  A stream its handler ends (STOP or ERROR) closes its cursor: more
    such streams than the service keeps cursors (--max-cursors, 64) all
    get their chunks, where abandoned cursors would run out until their
    30 s idle timeout. */
static void test_ended_streams_close_their_cursors (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    for (int read_ahead = 0; read_ahead < 2; read_ahead++) {
        tf_rpc_t *rpc = s_rpc (svc, read_ahead);
        for (int i = 0; i < 40; i++)
            s_end_early (rpc, (s_sink_t){ .verdict = i % 4 ? TF_STREAM_ERROR : TF_STREAM_STOP },
                         i % 4 ? -1 : 0, NULL);
        tf_rpc_destroy (&rpc);
    }
    s_check_cursors_closed (svc);
}

/*  Whole records cloned out of the borrowed replies, checked after the
    stream (its arena is gone by then). */
static void s_copies (void **state, bool read_ahead)
{
    tf_service_t *svc = (tf_service_t *) *state;
    tf_rpc_t *rpc = s_rpc (svc, read_ahead);
    Techfeed__SyncRequest request;
    s_snapshot_request (&request);
    s_sink_t sink = { .clone = true };
    assert_int_equal (tf_rpc_stream (rpc, &request, s_chunk, &sink), 0);
    tf_rpc_destroy (&rpc); // the copies do not depend on the handle either
    s_check_ids (&sink, S_RECORDS);
    for (size_t i = 0; i < S_RECORDS; i++) {
        const Techfeed__Milestone *record = sink.clones[i];
        char title[64];
        snprintf (title, sizeof title, "Fault test milestone %s", sink.ids[i]);
        assert_string_equal (record->id, sink.ids[i]);
        assert_string_equal (record->title, title);
        assert_non_null (record->summary);
        assert_int_equal (strlen (record->summary), S_SUMMARY);
        assert_string_equal (record->country, "CN");
        assert_int_equal (record->sector, 1 + (S_FIRST + i) % TF_SECTOR_MAX);
        assert_int_equal (record->revision, 1);
    }
    s_sink_free (&sink);
}

static void test_copies_outlive_stream (void **state)
{
    s_copies (state, false);
}

static void test_copies_outlive_stream_read_ahead (void **state)
{
    s_copies (state, true);
}

/*  The service stopped after the 2nd chunk: one timeout, then -1 with
    "service unavailable"; once it continues, the same handle streams
    everything. */
static void s_service_stopped (void **state, bool read_ahead)
{
    tf_service_t *svc = (tf_service_t *) *state;
    tf_rpc_t *rpc = s_rpc (svc, read_ahead);
    tf_rpc_set_timeout (rpc, S_STOPPED_MS);
    Techfeed__SyncRequest request;
    s_snapshot_request (&request);
    s_sink_t sink = { .stop_after = 2, .freeze = svc->pid };
    int64_t start = zclock_mono ();
    int rc = tf_rpc_stream (rpc, &request, s_chunk, &sink);
    int64_t elapsed = zclock_mono () - start;
    print_message ("read-ahead %s: stream gave up after %" PRId64 " ms, %zu chunks: %s\n",
                   read_ahead ? "on" : "off", elapsed, sink.chunks, tf_rpc_errstr (rpc));
    assert_int_equal (kill (svc->pid, SIGCONT), 0);
    assert_true (sink.frozen);
    assert_int_equal (rc, -1);
    assert_non_null (strstr (tf_rpc_errstr (rpc), "service unavailable"));
    //  Read-ahead may have had the 3rd chunk asked for and answered before
    //  the stop; without it, the NEXT after the 2nd gets no answer
    assert_true (sink.chunks >= 2 && sink.chunks <= (read_ahead ? 3u : 2u));
    assert_int_equal (sink.ends, 0);
    s_check_ids (&sink, sink.chunks * S_CHUNK);
    s_sink_free (&sink);
    assert_true (elapsed >= S_STOPPED_MS);
    assert_true (elapsed < 10 * S_STOPPED_MS);
    s_check_cursors_closed (svc); // the CLOSE waited in the connection

    tf_rpc_set_timeout (rpc, S_TIMEOUT_MS);
    s_check_status (rpc);
    s_stream_all (rpc);
    tf_rpc_destroy (&rpc);
}

static void test_service_stopped (void **state)
{
    s_service_stopped (state, false);
}

static void test_service_stopped_read_ahead (void **state)
{
    s_service_stopped (state, true);
}

// ------------------------------------------------------------------ clients that vanish

/*  The hanging client's handler: says OPEN after the first chunk, then
    waits for its end. */
static int s_hang (const Techfeed__SyncReply *reply, void *arg)
{
    (void) reply;
    (void) arg;
    printf ("OPEN\n");
    fflush (stdout);
    while (true)
        pause ();
    return TF_STREAM_ERROR;
}

/*  In main(): argv S_HOLD_ROLE SYNC makes this program a libtechfeed
    client whose handler hangs in a snapshot's first chunk. */
static void s_hold_dispatch (int argc, char **argv)
{
    if (argc != 3 || strcmp (argv[1], S_HOLD_ROLE) != 0)
        return;
    tf_rpc_t *rpc = tf_rpc_new (argv[2], S_REPLY_MAX);
    tf_rpc_set_timeout (rpc, S_TIMEOUT_MS);
    Techfeed__SyncRequest request;
    s_snapshot_request (&request);
    int rc = tf_rpc_stream (rpc, &request, s_hang, NULL);
    fprintf (stderr, "the stream ended before its first chunk: %d: %s\n", rc, tf_rpc_errstr (rpc));
    exit (1);
}

/*  A client process with a cursor open, hanging in its handler, gets
    `sig`: the service closes the cursor soon after (S_CLOSED_MS), though
    it would keep it for a minute idle. */
static void s_client_gets (void **state, int sig)
{
    tf_service_t *svc = (tf_service_t *) *state;
    char *dir = tf_test_tempdir ();
    const char *argv[] = { "/proc/self/exe", S_HOLD_ROLE, svc->sync, NULL };
    tf_spawn_t client;
    assert_int_equal (tf_spawn_start (&client, NULL, dir, "client", argv, NULL), 0);
    bool hanging = tf_spawn_wait_text (client.out, "OPEN", 1, S_TIMEOUT_MS);
    double open = -1;
    bool held = hanging && s_wait_cursors (svc, 1, &open);
    static const char *counter[] = {
        "techfeed_sync_cursors_closed_total{reason=\"disconnected\"}"
    };
    double before = -1, after = -1;
    bool counted = tf_service_metrics (svc, counter, &before, 1);
    bool signalled = held && kill (client.pid, sig) == 0;
    double left = -1;
    bool closed = signalled && s_wait_cursors (svc, 0, &left);
    counted = counted && tf_service_metrics (svc, counter, &after, 1);
    int status = tf_spawn_stop (&client, SIGKILL, S_TIMEOUT_MS);
    char *err = tf_spawn_read (client.err);
    tf_test_rmtree (dir);
    free (dir);
    if (!hanging)
        fail_msg ("the client never had its first chunk: %s", err);
    free (err);
    if (!held)
        fail_msg ("the hanging client's cursor is not counted open (%.0f open)", open);
    assert_true (signalled);
    assert_int_equal (status, 128 + SIGKILL);
    if (!closed)
        fail_msg ("%.0f cursor(s) still open %d ms after the client got signal %d", left,
                  S_CLOSED_MS, sig);
    assert_true (counted);
    assert_int_equal ((int) (after - before), 1); // closed as its client's, not as idle
}

/*  Killed: its kernel closes the connection at once. */
static void test_killed_client_loses_its_cursor (void **state)
{
    s_client_gets (state, SIGKILL);
}

/*  Stopped: the connection stays, silent, until ZeroMQ's heartbeats give
    up on it after S_PEER_MS. */
static void test_hung_client_loses_its_cursor (void **state)
{
    s_client_gets (state, SIGSTOP);
}

static zsock_t *s_sync_dealer (const tf_service_t *svc)
{
    zsock_t *dealer = zsock_new_dealer (svc->sync);
    assert_non_null (dealer);
    zsock_set_rcvtimeo (dealer, S_TIMEOUT_MS);
    return dealer;
}

/*  A client on a new connection with a snapshot cursor open (its first
    chunk taken); the cursor's id into *cursor unless NULL. */
static zsock_t *s_open_cursor (const tf_service_t *svc, uint64_t *cursor)
{
    zsock_t *dealer = s_sync_dealer (svc);
    Techfeed__SyncRequest request;
    s_snapshot_request (&request);
    tf_raw_send_sync (dealer, &request);
    Techfeed__SyncReply *reply = tf_raw_recv_sync (dealer);
    assert_non_null (reply);
    uint64_t id = reply->has_cursor ? reply->cursor : 0;
    techfeed__sync_reply__free_unpacked (reply, NULL);
    assert_true (id != 0);
    if (cursor)
        *cursor = id;
    return dealer;
}

/*  Sends S_BUSY_GETS GETs of S_BUSY_IDS ids that are not there: the
    service reads them one after another, for milliseconds. */
static void s_send_busy_gets (zsock_t *dealer)
{
    static char ids[S_BUSY_IDS][16];
    static char *pointers[S_BUSY_IDS];
    for (int i = 0; i < S_BUSY_IDS; i++) {
        snprintf (ids[i], sizeof ids[i], "nx-%d", i);
        pointers[i] = ids[i];
    }
    Techfeed__SyncRequest request;
    techfeed__sync_request__init (&request);
    request.has_version = request.has_kind = 1;
    request.version = TF_PROTOCOL_VERSION;
    request.kind = TECHFEED__SYNC_KIND__SYNC_GET;
    request.n_ids = S_BUSY_IDS;
    request.ids = pointers;
    for (int i = 0; i < S_BUSY_GETS; i++)
        tf_raw_send_sync (dealer, &request);
}

/*  Each round: the service is kept busy, a client with a cursor open
    vanishes, and another client streams a whole snapshot at once. The
    second's connection often gets the first's descriptor while the
    service is busy, and the service then learns of the disconnect only
    after the new request has arrived: that request must still be handled
    after the disconnect, or the new cursor would be closed mid-stream.
    In the end every vanished client's cursor is closed. */
static void test_vanished_clients_lose_their_cursors (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    zsock_t *busy = s_sync_dealer (svc);
    for (int i = 0; i < S_VANISHED; i++) {
        zsock_t *gone = s_open_cursor (svc, NULL);
        s_send_busy_gets (busy);
        zsock_destroy (&gone);
        tf_rpc_t *rpc = s_rpc (svc, i % 2);
        s_stream_all (rpc);
        tf_rpc_destroy (&rpc);
        for (int j = 0; j < S_BUSY_GETS; j++) {
            Techfeed__SyncReply *reply = tf_raw_recv_sync (busy);
            assert_non_null (reply);
            techfeed__sync_reply__free_unpacked (reply, NULL);
        }
    }
    zsock_destroy (&busy);
    s_check_cursors_closed (svc);
}

/*  Sends NEXT or CLOSE for `cursor` and takes the reply (NULL on timeout). */
static Techfeed__SyncReply *s_cursor_call (zsock_t *dealer, Techfeed__SyncKind kind,
                                           uint64_t cursor)
{
    Techfeed__SyncRequest request;
    techfeed__sync_request__init (&request);
    request.has_version = request.has_kind = request.has_cursor = 1;
    request.version = TF_PROTOCOL_VERSION;
    request.kind = kind;
    request.cursor = cursor;
    tf_raw_send_sync (dealer, &request);
    return tf_raw_recv_sync (dealer);
}

static void s_restart (tf_service_t *svc)
{
    assert_int_equal (tf_service_stop (svc, S_TIMEOUT_MS), 0);
    assert_int_equal (tf_service_start (svc, s_extra), 0);
}

/*  A CLOSE for a cursor of the service's last run, arriving after a
    restart (a DEALER sends what it queued once it connects again), closes
    no cursor of the new run: both cursors are their run's first, and the
    second streams every record after the stale CLOSE. */
static void test_stale_close_after_restart (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    s_restart (svc);
    uint64_t before, after;
    zsock_t *stale = s_open_cursor (svc, &before);
    s_restart (svc);
    zsock_t *fresh = s_open_cursor (svc, &after);
    print_message ("first cursor of each run: %" PRIu64 ", then %" PRIu64 "\n", before, after);

    Techfeed__SyncReply *reply = s_cursor_call (stale, TECHFEED__SYNC_KIND__SYNC_CLOSE, before);
    assert_non_null (reply);
    int code = reply->has_code ? (int) reply->code : 0;
    techfeed__sync_reply__free_unpacked (reply, NULL);
    zsock_destroy (&stale);
    size_t records = S_CHUNK; // the first chunk, taken by s_open_cursor
    bool end = false;
    while (!end && (reply = s_cursor_call (fresh, TECHFEED__SYNC_KIND__SYNC_NEXT, after))) {
        if (reply->has_code && reply->code != TECHFEED__ERROR_CODE__OK)
            fail_msg ("the new run's cursor %" PRIu64 " after the stale CLOSE: code %d: %s", after,
                      (int) reply->code, reply->message ? reply->message : "");
        records += reply->n_records;
        end = reply->has_end && reply->end;
        techfeed__sync_reply__free_unpacked (reply, NULL);
    }
    zsock_destroy (&fresh);
    assert_int_equal (code, TECHFEED__ERROR_CODE__NOT_FOUND);
    assert_true (end);
    assert_int_equal (records, S_RECORDS);
}

int main (int argc, char **argv)
{
    s_hold_dispatch (argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_whole_stream),
        cmocka_unit_test (test_whole_stream_read_ahead),
        cmocka_unit_test (test_stop),
        cmocka_unit_test (test_stop_read_ahead),
        cmocka_unit_test (test_error),
        cmocka_unit_test (test_error_read_ahead),
        cmocka_unit_test (test_ended_streams_close_their_cursors),
        cmocka_unit_test (test_interrupted),
        cmocka_unit_test (test_interrupted_read_ahead),
        cmocka_unit_test (test_copies_outlive_stream),
        cmocka_unit_test (test_copies_outlive_stream_read_ahead),
        cmocka_unit_test_teardown (test_service_stopped, s_continue),
        cmocka_unit_test_teardown (test_service_stopped_read_ahead, s_continue),
        cmocka_unit_test (test_killed_client_loses_its_cursor),
        cmocka_unit_test (test_hung_client_loses_its_cursor),
        cmocka_unit_test (test_vanished_clients_lose_their_cursors),
        cmocka_unit_test (test_stale_close_after_restart),
    };
    return cmocka_run_group_tests_name ("tf_rpc_stream", tests, setup, teardown);
}
