/*  bench_techfeed — techfeed-ingestd (from the bench build) on loopback
    with a fresh data directory per scenario, driven three ways:

    - libtechfeed's writer for the serial put (what an application uses);
    - DEALER sockets speaking PROTOCOL.md §5 directly (protobuf-c, one
      operation per request, request_id set) for pipelined load: the
      concurrent put (8 writers x 64 in flight), the bulk load, and the
      open-loop paced writer;
    - libtechfeed views for ingest-to-view latency and the snapshot; the
      views' sync stream (tf_rpc_stream) for the catch-up, applied into
      an id -> revision table with the digest; raw SUB sockets for the
      memory figure.

    Keys: tf.serial.*, tf.concurrent.* (lock_*_us: the writer connection
    per put), tf.load.rate, tf.view.<rate>.<subs>.*
    (tf.serial and tf.view.* with .service_us and .commit_us: the service's
    own mean receive -> reply and COMMIT times, from /metrics),
    tf.snapshot.s, tf.snapshot_busy.{s,put_rate} (under the concurrent put),
    tf.catchup.rate, tf.catchup5k.rate, tf.ack_idle.*, tf.ack_snap.* and
    tf.ack_snap0.* (snapshot client at SCHED_IDLE and nice 0; .ratio,
    .snapshots),
    tf.rss_per_sub.kib, tf.digest.{ok,total}.
*/
#include "bench.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>

#include "techfeed.h"
#include "tf_rpc.h"
#include "tf_testkit.h"
#include "tf_wire.h"

#define S_WRITERS 8      /* concurrent put: DEALER sockets */
#define S_DEPTH 64       /* concurrent put: requests in flight per socket */
#define S_RING 256       /* send times kept per socket (> S_DEPTH) */
#define S_LOAD_OPS 1000  /* bulk load: operations per request (the service's max) */
#define S_LOAD_DEPTH 4   /* bulk load: requests in flight */
#define S_BUF (2 << 20)  /* request buffer, fits S_LOAD_OPS records */
#define S_VIEW_THREADS 2 /* threads that poll the views */

// ------------------------------------------------------------------ service

static int s_start (tf_service_t *svc)
{
    memset (svc, 0, sizeof *svc);
    const char *http[] = { "--http-addr", "127.0.0.1:0", NULL }; /* for s_service_time */
    if (tf_service_start (svc, http)) {
        bench_note ("techfeed-ingestd did not start (see a service.log under %s)", bench_opts.tmp);
        return -1;
    }
    bench_child_add (svc->pid);
    return 0;
}

static void s_stop (tf_service_t *svc)
{
    pid_t pid = svc->pid;
    if (pid && tf_service_stop (svc, 10000) != 0)
        bench_note ("techfeed-ingestd did not exit 0 on SIGTERM");
    bench_child_remove (pid);
    tf_service_cleanup (svc);
}

static int s_status (const tf_service_t *svc, tf_status_t *status)
{
    tf_query_t *query = tf_query_new (svc->sync);
    tf_query_set_timeout (query, 10000);
    int rc = tf_query_status (query, status);
    if (rc)
        bench_note ("status query failed: %s", tf_query_errstr (query));
    tf_query_destroy (&query);
    return rc;
}

static zsock_t *s_dealer (const char *endpoint)
{
    zsock_t *dealer = zsock_new_dealer (endpoint);
    assert (dealer);
    zsock_set_linger (dealer, 0);
    zsock_set_sndhwm (dealer, 0);
    zsock_set_rcvhwm (dealer, 0);
    return dealer;
}

/*  Receives one reply without waiting; decodes it. NULL when none. */
static Techfeed__IngestReply *s_recv_reply (void *handle)
{
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    if (zmq_msg_recv (&msg, handle, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close (&msg);
        return NULL;
    }
    Techfeed__IngestReply *reply = techfeed__ingest_reply__unpack (
        NULL, zmq_msg_size (&msg), (const uint8_t *) zmq_msg_data (&msg));
    zmq_msg_close (&msg);
    return reply;
}

/*  OK results of a reply (and the highest sequence); errors counted. */
static size_t s_reply_ok (const Techfeed__IngestReply *reply, uint64_t *max_seq, uint64_t *errors)
{
    size_t ok = 0;
    for (size_t i = 0; i < reply->n_results; i++) {
        const Techfeed__ItemResult *item = reply->results[i];
        if (item->code == TECHFEED__ERROR_CODE__OK) {
            ok++;
            if (item->sequence > *max_seq)
                *max_seq = item->sequence;
        } else if (++*errors <= 3)
            bench_note ("techfeed refused a put: %s %s", tf_error_name (item->code),
                        item->message ? item->message : "");
    }
    if (!reply->n_results && ++*errors <= 3)
        bench_note ("techfeed refused a request: %s %s", tf_error_name (reply->code),
                    reply->message ? reply->message : "");
    return ok;
}

/*  The samples `names` (n of them) from one read of the service's
    /metrics into `values`; false, with a note, when one is missing. */
static bool s_metrics (const tf_service_t *svc, const char *const *names, double *values, int n)
{
    bool ok = tf_service_metrics (svc, names, values, n);
    if (!ok)
        bench_note ("the service's /metrics could not be read");
    return ok;
}

/*  The service's own account of its time: the sums and counts of its
    receive -> reply and COMMIT histograms. */
typedef struct {
    double reply_s, replies, commit_s, commits;
} s_service_time_t;

static bool s_service_time (const tf_service_t *svc, s_service_time_t *t)
{
    static const char *names[] = { "techfeed_ingest_latency_seconds_sum",
                                   "techfeed_ingest_latency_seconds_count",
                                   "techfeed_commit_duration_seconds_sum",
                                   "techfeed_commit_duration_seconds_count" };
    double v[4];
    if (!s_metrics (svc, names, v, 4))
        return false;
    *t = (s_service_time_t){ v[0], v[1], v[2], v[3] };
    return true;
}

/*  Means between two readings: <key>.service_us (receive -> reply) and
    <key>.commit_us (one COMMIT, fsync included). */
static void s_service_time_put (const s_service_time_t *from, const s_service_time_t *to,
                                const char *key)
{
    if (to->replies > from->replies)
        bench_putf ((to->reply_s - from->reply_s) / (to->replies - from->replies) * 1e6,
                    "%s.service_us", key);
    if (to->commits > from->commits)
        bench_putf ((to->commit_s - from->commit_s) / (to->commits - from->commits) * 1e6,
                    "%s.commit_us", key);
}

// ------------------------------------------------------------------ serial put

static void s_serial (const tf_service_t *svc)
{
    double written0 = -1;
    s_service_time_t time0, time1;
    bool timed = s_service_time (svc, &time0); // warm-up included, as in s_view_latency
    tf_writer_t *writer = tf_writer_new (svc->ingest);
    tf_writer_set_timeout (writer, 10000);
    bench_lat_t lat = { 0 };
    uint64_t count = 0, errors = 0;
    int64_t warm = bench_now_ns () + 300000000, end = warm + bench_window_ns (2.0), now = 0;
    for (uint32_t k = 0; (now = bench_now_ns ()) < end; k++) {
        Techfeed__Milestone record, *records[1] = { &record };
        char id[160];
        bench_record (k, &record, id);
        tf_result_t result;
        int64_t t0 = now;
        int rc = tf_writer_put (writer, records, 1, false, &result);
        int64_t t1 = bench_now_ns ();
        if (rc || result.code) {
            if (++errors <= 3)
                bench_note ("serial put failed: %s %s", tf_writer_errstr (writer), result.message);
            continue;
        }
        if (t0 >= warm) {
            if (written0 < 0)
                written0 = bench_write_bytes (svc->pid);
            bench_lat_add (&lat, t1 - t0);
            count++;
        }
    }
    double written = bench_write_bytes (svc->pid) - written0;
    if (timed && s_service_time (svc, &time1))
        s_service_time_put (&time0, &time1, "tf.serial");
    if (count)
        bench_put ("tf.serial.rate", (double) count / ((double) (now - warm) / 1e9));
    if (count && written0 >= 0)
        bench_put ("tf.serial.written_kib", written / 1024 / (double) count);
    bench_lat_put (&lat, "tf.serial");
    bench_lat_free (&lat);
    tf_writer_destroy (&writer);
}

// ------------------------------------------------------------------ pipelined writers

/*  One engine for the concurrent put and the bulk load: `conns` DEALER
    sockets, each keeping `depth` requests of `ops` puts in flight, from
    one thread (the client then costs one core at most). Time-bounded
    (warm-up, window) or count-bounded (total requests). */
typedef struct {
    const char *endpoint;
    int conns, depth, ops;
    uint64_t total; /* requests to send, 0 = time-bounded */
    int64_t warm_ns, window_ns;
    pid_t server; /* for its CPU share */
    //  Results.
    bench_lat_t lat;    /* ack latency of requests sent in the window */
    uint64_t acked_ops; /* in the window (count-bounded: all) */
    double seconds;     /* window length */
    double server_cpu;  /* server CPU seconds per wall second in the window */
    double written;     /* bytes the server wrote to storage in the window */
    double client_cpu;  /* this process, same */
    uint64_t errors, max_seq;
} s_pipe_t;

typedef struct {
    zsock_t *sock;
    void *handle;
    uint64_t next; /* next request number */
    int inflight;
    int64_t sent[S_RING]; /* send time by request number % S_RING */
} s_conn_t;

static double s_self_cpu (void)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    return (double) usage.ru_utime.tv_sec + (double) usage.ru_utime.tv_usec / 1e6 +
           (double) usage.ru_stime.tv_sec + (double) usage.ru_stime.tv_usec / 1e6;
}

static void s_pipeline (s_pipe_t *p)
{
    s_conn_t *conns = (s_conn_t *) calloc ((size_t) p->conns, sizeof *conns);
    zmq_pollitem_t *items = (zmq_pollitem_t *) calloc ((size_t) p->conns, sizeof *items);
    uint8_t *buf = (uint8_t *) malloc (S_BUF);
    static uint32_t next_k; /* records cycle through the distinct ids */
    uint64_t sent_total = 0;
    for (int c = 0; c < p->conns; c++) {
        conns[c].sock = s_dealer (p->endpoint);
        conns[c].handle = zsock_resolve (conns[c].sock);
        items[c] = (zmq_pollitem_t){ conns[c].handle, 0, ZMQ_POLLIN, 0 };
    }
    int64_t t0 = bench_now_ns ();
    int64_t window_start = p->total ? t0 : t0 + p->warm_ns;
    int64_t window_end = p->total ? INT64_MAX : window_start + p->window_ns;
    int64_t give_up = p->total ? INT64_MAX : window_end + 10000000000LL;
    bool measuring = p->total != 0, sending = true;
    double cpu0 = bench_cpu_seconds (p->server), self0 = s_self_cpu ();
    double written0 = bench_write_bytes (p->server);
    int inflight = 0;
    int64_t now = t0, last_ack = t0;
    while (true) {
        //  Top every connection up.
        for (int c = 0; sending && c < p->conns; c++)
            while (conns[c].inflight < p->depth && (!p->total || sent_total < p->total)) {
                char rid[32];
                snprintf (rid, sizeof rid, "w%d-%" PRIu64, c, conns[c].next);
                size_t size = bench_ingest_request (buf, S_BUF, rid, next_k, (size_t) p->ops);
                next_k = (next_k + (uint32_t) p->ops) % BENCH_IDS_MAX;
                conns[c].sent[conns[c].next % S_RING] = bench_now_ns ();
                conns[c].next++;
                zmq_send (conns[c].handle, buf, size, 0);
                conns[c].inflight++;
                inflight++;
                sent_total++;
            }
        if (!inflight && (!sending || (p->total && sent_total >= p->total)))
            break;
        if (zmq_poll (items, p->conns, 1000) < 0)
            break;
        now = bench_now_ns ();
        if (now > give_up || now - last_ack > 30000000000LL) {
            bench_note ("techfeed: %d requests unanswered, gave up", inflight);
            break;
        }
        for (int c = 0; c < p->conns; c++) {
            if (!(items[c].revents & ZMQ_POLLIN))
                continue;
            Techfeed__IngestReply *reply;
            while ((reply = s_recv_reply (conns[c].handle))) {
                now = bench_now_ns ();
                last_ack = now;
                uint64_t n = 0;
                const char *dash = reply->request_id ? strchr (reply->request_id, '-') : NULL;
                if (dash)
                    n = strtoull (dash + 1, NULL, 10);
                int64_t sent_at = conns[c].sent[n % S_RING];
                size_t ok = s_reply_ok (reply, &p->max_seq, &p->errors);
                if (measuring && sent_at >= window_start && now <= window_end) {
                    bench_lat_add (&p->lat, now - sent_at);
                    p->acked_ops += ok;
                }
                techfeed__ingest_reply__free_unpacked (reply, NULL);
                conns[c].inflight--;
                inflight--;
            }
        }
        if (!measuring && now >= window_start) {
            measuring = true;
            window_start = now;
            window_end = now + p->window_ns;
            cpu0 = bench_cpu_seconds (p->server);
            self0 = s_self_cpu ();
            written0 = bench_write_bytes (p->server);
        }
        if (!p->total && sending && now >= window_end) {
            sending = false;
            double wall = (double) (now - window_start) / 1e9;
            p->server_cpu = (bench_cpu_seconds (p->server) - cpu0) / wall;
            p->client_cpu = (s_self_cpu () - self0) / wall;
            p->written = bench_write_bytes (p->server) - written0;
        }
    }
    now = bench_now_ns ();
    if (p->total) {
        window_end = now;
        double wall = (double) (now - window_start) / 1e9;
        p->server_cpu = (bench_cpu_seconds (p->server) - cpu0) / wall;
        p->client_cpu = (s_self_cpu () - self0) / wall;
        p->written = bench_write_bytes (p->server) - written0;
    }
    p->seconds = (double) (window_end - window_start) / 1e9;
    for (int c = 0; c < p->conns; c++)
        zsock_destroy (&conns[c].sock);
    free (conns);
    free (items);
    free (buf);
}

/*  The service's records table position and head (raw SYNC_STATUS: the
    library's tf_status_t does not carry records_applied). 0 when read. */
static int s_applied (const tf_service_t *svc, uint64_t *applied, uint64_t *head)
{
    zsock_t *sock = s_dealer (svc->sync);
    zsock_set_rcvtimeo (sock, 10000);
    Techfeed__SyncRequest request = TECHFEED__SYNC_REQUEST__INIT;
    request.has_version = request.has_kind = 1;
    request.version = 1;
    request.kind = TECHFEED__SYNC_KIND__SYNC_STATUS;
    size_t size;
    uint8_t *data = tf_wire_pack (&request.base, &size);
    zmq_send (zsock_resolve (sock), data, size, 0);
    free (data);
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    Techfeed__SyncReply *reply = NULL;
    if (zmq_msg_recv (&msg, zsock_resolve (sock), 0) >= 0)
        reply = techfeed__sync_reply__unpack (NULL, zmq_msg_size (&msg),
                                              (const uint8_t *) zmq_msg_data (&msg));
    zmq_msg_close (&msg);
    zsock_destroy (&sock);
    int rc = reply && reply->status && reply->status->has_records_applied ? 0 : -1;
    if (rc == 0) {
        *applied = reply->status->records_applied;
        *head = reply->status->head_sequence;
    }
    if (reply)
        techfeed__sync_reply__free_unpacked (reply, NULL);
    return rc;
}

/*  Waits (up to 120 s) until the records table has every committed
    change; the seconds that took, or -1 (with a note). */
static double s_until_applied (const tf_service_t *svc)
{
    int64_t t0 = bench_now_ns (), deadline = t0 + 120000000000LL;
    uint64_t applied = 0, head = 1;
    while (bench_now_ns () < deadline && s_applied (svc, &applied, &head) == 0 && applied < head)
        bench_sleep_ms (20);
    if (applied < head) {
        bench_note ("the records table was still %" PRIu64 " changes behind after 120 s",
                    head - applied);
        return -1;
    }
    return (double) (bench_now_ns () - t0) / 1e9;
}

/*  After a bulk load the service's records table is still catching up on
    its own thread: the sync rows are measured once it has (their subject
    is the sync, not that catch-up), and how long it took is a row. */
static void s_wait_applied (const tf_service_t *svc)
{
    double seconds = s_until_applied (svc);
    if (seconds >= 0)
        bench_put ("tf.load.applied_s", seconds);
}

/*  The writer connection's accounts in /metrics: seconds held by the
    loop and by the applier, the loop's wait, and the operations stored. */
static bool s_lock_accounts (const tf_service_t *svc, double v[5])
{
    static const char *names[] = { "techfeed_store_lock_held_seconds_total{thread=\"loop\"}",
                                   "techfeed_store_lock_held_seconds_total{thread=\"applier\"}",
                                   "techfeed_store_lock_wait_seconds_total",
                                   "techfeed_records_ingested_total", "techfeed_commits_total" };
    return s_metrics (svc, names, v, 5);
}

static void s_concurrent (const tf_service_t *svc)
{
    s_pipe_t p = { .endpoint = svc->ingest, .conns = S_WRITERS, .depth = S_DEPTH, .ops = 1 };
    p.warm_ns = 500000000;
    p.window_ns = bench_window_ns (3.0);
    p.server = svc->pid;
    double before[5], after[5];
    bool accounted = s_lock_accounts (svc, before);
    s_pipeline (&p);
    if (p.acked_ops && p.seconds > 0)
        bench_put ("tf.concurrent.rate", (double) p.acked_ops / p.seconds);
    //  The rate holds only as long as the applier keeps up: how far the
    //  records table was behind when the writers stopped, and how long it
    //  took to catch up.
    uint64_t applied, head;
    if (s_applied (svc, &applied, &head) == 0)
        bench_put ("tf.concurrent.behind", (double) (head - applied));
    double catch_up = s_until_applied (svc);
    if (catch_up >= 0)
        bench_put ("tf.concurrent.applied_s", catch_up);
    //  Per put, once the records table has them all: who held the one
    //  writer connection. The loop copies the accounts into /metrics each
    //  turn; one more SYNC_STATUS is a turn after the applier's last batch.
    if (accounted && catch_up >= 0 && s_applied (svc, &applied, &head) == 0 &&
        s_lock_accounts (svc, after) && after[3] > before[3]) {
        double puts = after[3] - before[3];
        bench_put ("tf.concurrent.lock_loop_us", (after[0] - before[0]) / puts * 1e6);
        bench_put ("tf.concurrent.lock_applier_us", (after[1] - before[1]) / puts * 1e6);
        bench_put ("tf.concurrent.lock_wait_us", (after[2] - before[2]) / puts * 1e6);
        if (after[4] > before[4])
            bench_put ("tf.concurrent.group", puts / (after[4] - before[4]));
    }
    bench_lat_put (&p.lat, "tf.concurrent");
    bench_put ("tf.concurrent.server_cpu", p.server_cpu * 100);
    if (p.acked_ops) {
        double rate = (double) p.acked_ops / p.seconds;
        bench_put ("tf.concurrent.cpu_us", p.server_cpu * 1e6 / rate);
        if (p.written >= 0)
            bench_put ("tf.concurrent.written_kib", p.written / 1024 / (double) p.acked_ops);
    }
    bench_put ("tf.concurrent.client_cpu", p.client_cpu * 100);
    bench_lat_free (&p.lat);
}

/*  Puts records 0..n-1 in requests of S_LOAD_OPS. 0 when all stored. */
static int s_load (const tf_service_t *svc, int n)
{
    s_pipe_t p = { .endpoint = svc->ingest, .conns = 1, .depth = S_LOAD_DEPTH, .ops = S_LOAD_OPS };
    p.total = (uint64_t) ((n + S_LOAD_OPS - 1) / S_LOAD_OPS);
    p.server = svc->pid;
    s_pipeline (&p);
    if (p.errors || p.acked_ops != p.total * S_LOAD_OPS) {
        bench_note ("bulk load stored %" PRIu64 " of %d records", p.acked_ops, n);
        bench_lat_free (&p.lat);
        return -1;
    }
    bench_put ("tf.load.rate", (double) p.acked_ops / p.seconds);
    bench_lat_free (&p.lat);
    return 0;
}

// ------------------------------------------------------------------ paced writer

/*  Open loop: request n is due at t0 + n / rate and is sent then, late or
    not; latency is measured from that due time, so a stall delays every
    request behind it and shows (no coordinated omission). When the
    service falls more than a second of puts behind, the rate is beyond
    what it sustains: the schedule stops there (saturated) so the backlog
    does not grow for the rest of the window. */
typedef struct {
    const char *endpoint;
    const char *prefix; /* request_id prefix, unique per server */
    double rate;
    int64_t warm_ns, window_ns;
    bench_schedule_t *sched; /* slot[k] = due time of record k's put */
    int64_t t0;              /* when request 0 is due; 0 = 20 ms from now */
    int64_t measure_from;    /* due times before this are warm-up (set by s_paced) */
    bench_lat_t acks;        /* ack latency from the due time */
    uint64_t sent, acked, errors, max_seq;
    double achieved; /* acks per second while the schedule ran */
    bool saturated;  /* fell a second behind: the schedule was cut short */
} s_paced_t;

static void s_paced (s_paced_t *p)
{
    zsock_t *sock = s_dealer (p->endpoint);
    void *handle = zsock_resolve (sock);
    int fd = zsock_fd (sock);
    uint64_t total = (uint64_t) (p->rate * (double) (p->warm_ns + p->window_ns) / 1e9);
    int64_t *due = (int64_t *) calloc (total + 1, sizeof *due);
    double period = 1e9 / p->rate;
    uint8_t buf[4096];
    int64_t t0 = p->t0 ? p->t0 : bench_now_ns () + 20000000;
    p->measure_from = t0 + p->warm_ns;
    int64_t give_up = t0 + p->warm_ns + p->window_ns + 20000000000LL;
    long slack = bench_slack_tight ();
    uint64_t n = 0;
    while (n < total || p->acked + p->errors < n) {
        int64_t now = bench_now_ns ();
        if (now > give_up) {
            bench_note ("paced writer: %" PRIu64 " puts unanswered, gave up",
                        n - p->acked - p->errors);
            break;
        }
        if (n < total && n - p->acked - p->errors > (uint64_t) p->rate) {
            p->saturated = true;
            p->achieved = (double) p->acked / ((double) (now - t0) / 1e9);
            total = n;
        }
        while (n < total && (due[n] = t0 + (int64_t) ((double) n * period)) <= now) {
            uint32_t k = (uint32_t) (n % BENCH_IDS_MAX);
            atomic_store_explicit (&p->sched->slot[k], due[n], memory_order_relaxed);
            char rid[48];
            snprintf (rid, sizeof rid, "%s-%" PRIu64, p->prefix, n);
            size_t size = bench_ingest_request (buf, sizeof buf, rid, k, 1);
            zmq_send (handle, buf, size, 0);
            n++;
        }
        Techfeed__IngestReply *reply;
        while ((reply = s_recv_reply (handle))) {
            now = bench_now_ns ();
            const char *dash = reply->request_id ? strrchr (reply->request_id, '-') : NULL;
            uint64_t i = dash ? strtoull (dash + 1, NULL, 10) : total;
            if (s_reply_ok (reply, &p->max_seq, &p->errors))
                p->acked++;
            if (i < total && due[i] >= p->measure_from)
                bench_lat_add (&p->acks, now - due[i]);
            techfeed__ingest_reply__free_unpacked (reply, NULL);
        }
        //  ZMQ_FD signals edges: sleep only when nothing is readable.
        if (zsock_events (sock) & ZMQ_POLLIN)
            continue;
        int64_t next = n < total ? t0 + (int64_t) ((double) n * period) : now + 100000000;
        bench_wait_fd (fd, next);
    }
    bench_slack_restore (slack);
    p->sent = n;
    if (!p->saturated && n)
        p->achieved = (double) p->acked / ((double) (due[n - 1] - t0) / 1e9 + 1e-9);
    free (due);
    zsock_destroy (&sock);
}

// ------------------------------------------------------------------ views

typedef struct {
    tf_view_t **views;
    int n;
    bench_schedule_t *sched;
    int64_t measure_from;    /* due times before this are warm-up */
    bench_lat_t lat;         /* put due time -> change applied in a view */
    _Atomic uint64_t target; /* head the views must reach, 0 = not known yet */
    atomic_bool stop;        /* give up */
    atomic_bool done;        /* every view reached target */
    pthread_t thread;
} s_group_t;

static void s_on_change (tf_view_t *view, tf_view_event_t what, const Techfeed__Milestone *record,
                         const char *id, void *arg)
{
    if ((what != TF_VIEW_ADD && what != TF_VIEW_UPDATE) || !tf_view_change_sequence (view))
        return;
    int64_t now = bench_now_ns ();
    s_group_t *group = (s_group_t *) arg;
    uint32_t k = bench_id_number (id);
    if (k == UINT32_MAX)
        return;
    int64_t due = atomic_load_explicit (&group->sched->slot[k], memory_order_relaxed);
    if (due >= group->measure_from)
        bench_lat_add (&group->lat, now - due);
}

/*  A group's thread: one poll() over its views' ZMQ_FD descriptors, then
    each view whose socket has an event waiting. zmq_poll asks each of its
    sockets for its events before it waits, a system call or two per
    socket; this way the 100-view p50 at 1k/s was 2.10-2.18 ms against
    2.41-2.43 ms (two runs of three each way). */
static void *s_group_run (void *arg)
{
    s_group_t *g = (s_group_t *) arg;
    struct pollfd *fds = (struct pollfd *) calloc ((size_t) g->n, sizeof *fds);
    for (int i = 0; i < g->n; i++)
        fds[i] = (struct pollfd){ zsock_fd (tf_view_socket (g->views[i])), POLLIN, 0 };
    int64_t tick = bench_now_ns ();
    while (!atomic_load (&g->stop)) {
        poll (fds, (nfds_t) g->n, 50);
        //  ZMQ_FD tells that something may have changed; the socket's
        //  events say what (and reading them clears the descriptor).
        for (int i = 0; i < g->n; i++)
            if ((fds[i].revents & POLLIN) &&
                (zsock_events (tf_view_socket (g->views[i])) & ZMQ_POLLIN))
                tf_view_poll (g->views[i], 0);
        int64_t now = bench_now_ns ();
        if (now - tick > 200000000) {
            //  Heartbeats and timers of the quiet views.
            for (int i = 0; i < g->n; i++)
                tf_view_poll (g->views[i], 0);
            tick = now;
        }
        uint64_t target = atomic_load (&g->target);
        if (target) {
            int behind = 0;
            for (int i = 0; i < g->n; i++)
                behind += tf_view_position (g->views[i]) < target;
            if (!behind) {
                atomic_store (&g->done, true);
                break;
            }
        }
    }
    free (fds);
    return NULL;
}

/*  Creates and starts n views; NULL entries where one failed. */
static tf_view_t **s_views_new (const tf_service_t *svc, int n, s_group_t *groups, int ngroups)
{
    tf_view_t **views = (tf_view_t **) calloc ((size_t) n, sizeof *views);
    for (int i = 0; i < n; i++) {
        s_group_t *group = &groups[i % ngroups];
        views[i] = tf_view_new (svc->events, svc->sync);
        tf_view_set_timeout (views[i], 20000);
        tf_view_set_callback (views[i], s_on_change, group);
        if (tf_view_start (views[i])) {
            bench_note ("a view did not start: %s", tf_view_errstr (views[i]));
            tf_view_destroy (&views[i]);
            continue;
        }
        group->views[group->n++] = views[i];
    }
    return views;
}

/*  This run's views: digest equal to the service's, checked (at the
    head), not at the head when checked. */
static int s_digest_ok, s_digest_total, s_digest_lagging;

/*  Every view's digest against the service's; stats into notes. Returns
    the changes the views applied, in all. */
static uint64_t s_views_check (const tf_service_t *svc, tf_view_t **views, int n)
{
    tf_status_t status;
    if (s_status (svc, &status))
        return 0;
    int ok = 0, lagging = 0;
    tf_view_stats_t sum = { 0 };
    for (int i = 0; i < n; i++) {
        if (!views[i])
            continue;
        //  A view that has not reached the head yet cannot equal it.
        if (tf_view_position (views[i]) < status.head_sequence)
            lagging++;
        else
            ok += tf_view_digest (views[i]) == status.digest &&
                  tf_view_count (views[i]) == status.record_count;
        tf_view_stats_t stats;
        tf_view_stats (views[i], &stats);
        sum.gaps += stats.gaps;
        sum.catchups += stats.catchups;
        sum.resyncs += stats.resyncs;
        sum.dropped += stats.dropped;
        sum.changes += stats.changes;
    }
    s_digest_ok += ok;
    s_digest_total += n - lagging;
    s_digest_lagging += lagging;
    if (sum.gaps || sum.resyncs || sum.dropped)
        bench_note ("views (%d): %" PRIu64 " gaps, %" PRIu64 " catch-ups, %" PRIu64
                    " resyncs, %" PRIu64 " events dropped from full buffers",
                    n, sum.gaps, sum.catchups, sum.resyncs, sum.dropped);
    return sum.changes;
}

static bench_schedule_t s_schedule;

/*  Ingest-to-view latency: paced puts at `rate`, `subs` views. */
static void s_view_latency (int rate, int subs)
{
    tf_service_t svc;
    if (s_start (&svc))
        return;
    int ngroups = subs < S_VIEW_THREADS ? subs : S_VIEW_THREADS;
    s_group_t groups[S_VIEW_THREADS];
    memset (groups, 0, sizeof groups);
    for (int g = 0; g < ngroups; g++) {
        groups[g].views = (tf_view_t **) calloc ((size_t) subs, sizeof (tf_view_t *));
        groups[g].sched = &s_schedule;
        groups[g].measure_from = INT64_MAX;
    }
    tf_view_t **views = s_views_new (&svc, subs, groups, ngroups);
    s_service_time_t time0, time1;
    bool timed = s_service_time (&svc, &time0); // before the schedule starts
    s_paced_t paced = { .endpoint = svc.ingest, .prefix = "v", .rate = rate };
    paced.warm_ns = 500000000;
    paced.window_ns = bench_window_ns (rate >= 10000 ? 2.0 : 4.0);
    paced.sched = &s_schedule;
    paced.t0 = bench_now_ns () + 50000000;
    for (int g = 0; g < ngroups; g++) {
        groups[g].measure_from = paced.t0 + paced.warm_ns;
        pthread_create (&groups[g].thread, NULL, s_group_run, &groups[g]);
    }
    double server0 = bench_cpu_seconds (svc.pid), self0 = s_self_cpu ();
    int64_t wall0 = bench_now_ns ();
    s_paced (&paced);
    char key[64];
    snprintf (key, sizeof key, "tf.view.%dk.%d", rate / 1000, subs);
    if (timed && s_service_time (&svc, &time1))
        s_service_time_put (&time0, &time1, key); // warm-up included
    for (int g = 0; g < ngroups; g++)
        atomic_store (&groups[g].target, paced.max_seq ? paced.max_seq : 1);
    int64_t deadline = bench_now_ns () + 30000000000LL;
    for (int g = 0; g < ngroups; g++) {
        while (!atomic_load (&groups[g].done) && bench_now_ns () < deadline)
            bench_sleep_ms (10);
        if (!atomic_load (&groups[g].done))
            bench_note ("ingest→view %d/s × %d views: some views had not caught up 30 s after "
                        "the last put (the bench process is short of CPU)",
                        rate, subs);
        atomic_store (&groups[g].stop, true);
        pthread_join (groups[g].thread, NULL);
    }
    double wall = (double) (bench_now_ns () - wall0) / 1e9;
    double server_cpu = (bench_cpu_seconds (svc.pid) - server0) / wall;
    double self_cpu = s_self_cpu () - self0;
    bench_lat_t all = { 0 };
    for (int g = 0; g < ngroups; g++) {
        bench_lat_merge (&all, &groups[g].lat);
        bench_lat_free (&groups[g].lat);
        free (groups[g].views);
    }
    bench_lat_put (&all, key);
    bench_lat_free (&all);
    snprintf (key, sizeof key, "tf.view.%dk.%d.sent", rate / 1000, subs);
    bench_put (key, (double) paced.sent);
    snprintf (key, sizeof key, "tf.view.%dk.%d.achieved", rate / 1000, subs);
    bench_put (key, paced.achieved);
    snprintf (key, sizeof key, "tf.view.%dk.%d.saturated", rate / 1000, subs);
    bench_put (key, paced.saturated);
    uint64_t applied = s_views_check (&svc, views, subs);
    snprintf (key, sizeof key, "tf.view.%dk.%d.server_cpu", rate / 1000, subs);
    bench_put (key, server_cpu * 100);
    //  The bench's own CPU (writer + views) per change a view applied.
    snprintf (key, sizeof key, "tf.view.%dk.%d.client_us", rate / 1000, subs);
    if (applied)
        bench_put (key, self_cpu * 1e6 / (double) applied);
    for (int i = 0; i < subs; i++)
        tf_view_destroy (&views[i]);
    free (views);
    bench_lat_free (&paced.acks);
    s_stop (&svc);
}

// ------------------------------------------------------------------ snapshot, catch-up

static void s_snapshot (const tf_service_t *svc, int records)
{
    double server0 = bench_cpu_seconds (svc->pid), self0 = s_self_cpu ();
    int64_t t0 = bench_now_ns ();
    tf_view_t *view = tf_view_new (svc->events, svc->sync);
    tf_view_set_timeout (view, 30000);
    int rc = tf_view_start (view);
    int64_t t1 = bench_now_ns ();
    if (rc || tf_view_count (view) < (size_t) records)
        bench_note ("snapshot view: %s, %zu records", rc ? tf_view_errstr (view) : "started",
                    tf_view_count (view));
    else {
        bench_put ("tf.snapshot.s", (double) (t1 - t0) / 1e9);
        bench_put ("tf.snapshot.server_s", bench_cpu_seconds (svc->pid) - server0);
        bench_put ("tf.snapshot.client_s", s_self_cpu () - self0);
    }
    s_views_check (svc, &view, 1);
    tf_view_destroy (&view);
}

/*  What the catch-up client keeps: id -> revision and the digest. */
typedef struct {
    uint64_t *revision; /* by bench id number */
    uint64_t digest;
    uint64_t applied; /* changes applied */
    bool refused;     /* a reply with an error code */
} s_catchup_t;

static int s_catchup_chunk (const Techfeed__SyncReply *reply, void *arg)
{
    s_catchup_t *c = (s_catchup_t *) arg;
    if (reply->has_code && reply->code != TECHFEED__ERROR_CODE__OK) {
        c->refused = true;
        return TF_STREAM_ERROR;
    }
    for (size_t i = 0; i < reply->n_changes; i++) {
        const Techfeed__ChangeEvent *change = reply->changes[i];
        uint32_t k = bench_id_number (change->id);
        if (k == UINT32_MAX)
            continue;
        if (c->revision[k])
            c->digest -= tf_digest_item (change->id, c->revision[k]);
        c->revision[k] =
            change->kind == TECHFEED__CHANGE_KIND__CHANGE_DELETE ? 0 : change->revision;
        if (c->revision[k])
            c->digest += tf_digest_item (change->id, c->revision[k]);
        c->applied++;
    }
    return TF_STREAM_MORE;
}

/*  Catch-up from sequence 0 over a log of exactly `records` puts, read
    the way views read it (libtechfeed's tf_rpc_stream: replies decoded
    into an arena, the next chunk asked for before one is applied); every
    change applied to an id -> revision table with the digest, which must
    then equal the service's. */
static void s_catchup (const tf_service_t *svc, int records, uint32_t chunk, const char *key)
{
    tf_status_t status;
    if (s_status (svc, &status))
        return;
    s_catchup_t c = { .revision = (uint64_t *) calloc (BENCH_IDS_MAX, sizeof (uint64_t)) };
    tf_rpc_t *rpc = tf_rpc_new (svc->sync, 512u << 20);
    tf_rpc_set_timeout (rpc, 30000);
    tf_rpc_set_read_ahead (rpc, true);
    Techfeed__SyncRequest request = TECHFEED__SYNC_REQUEST__INIT;
    request.has_version = request.has_kind = request.has_since_sequence = 1;
    request.has_chunk_size = 1;
    request.version = TF_PROTOCOL_VERSION;
    request.kind = TECHFEED__SYNC_KIND__SYNC_CATCHUP;
    request.since_sequence = 0;
    request.epoch = status.epoch;
    request.chunk_size = chunk;
    double server0 = bench_cpu_seconds (svc->pid), self0 = s_self_cpu ();
    int64_t t0 = bench_now_ns ();
    int rc = tf_rpc_stream (rpc, &request, s_catchup_chunk, &c);
    int64_t t1 = bench_now_ns ();
    double server_s = bench_cpu_seconds (svc->pid) - server0, client_s = s_self_cpu () - self0;
    if (rc != 0 || c.refused || c.applied < (uint64_t) records)
        bench_note ("catch-up (%u per chunk) failed after %" PRIu64 " changes: %s", chunk,
                    c.applied, c.refused ? "refused" : tf_rpc_errstr (rpc));
    else {
        bench_putf ((double) c.applied / ((double) (t1 - t0) / 1e9), "%s.rate", key);
        bench_putf (server_s, "%s.server_s", key);
        bench_putf (client_s, "%s.client_s", key);
        s_digest_ok += c.digest == status.digest;
        s_digest_total++;
    }
    tf_rpc_destroy (&rpc);
    free (c.revision);
}

// ------------------------------------------------------------------ a snapshot under writes

static void *s_pipeline_run (void *arg)
{
    s_pipeline ((s_pipe_t *) arg);
    return NULL;
}

/*  A snapshot into a new view while the concurrent put's writers keep the
    cores busy: the service reads snapshots at a lower priority than it
    writes, and this is what that costs. The view then follows the
    writes to the head, and its digest must equal the service's. */
static void s_snapshot_under_writes (const tf_service_t *svc, int records)
{
    s_pipe_t p = { .endpoint = svc->ingest, .conns = S_WRITERS, .depth = S_DEPTH, .ops = 1 };
    p.warm_ns = 500000000;
    p.window_ns = bench_window_ns (3.0);
    p.server = svc->pid;
    pthread_t thread;
    pthread_create (&thread, NULL, s_pipeline_run, &p);
    bench_sleep_ms (500); /* the writers are at full rate */
    int64_t t0 = bench_now_ns ();
    tf_view_t *view = tf_view_new (svc->events, svc->sync);
    tf_view_set_timeout (view, 30000);
    int rc = tf_view_start (view);
    int64_t t1 = bench_now_ns ();
    pthread_join (thread, NULL);
    if (rc || tf_view_count (view) < (size_t) records)
        bench_note ("snapshot under writes: %s, %zu records",
                    rc ? tf_view_errstr (view) : "started", tf_view_count (view));
    else {
        bench_put ("tf.snapshot_busy.s", (double) (t1 - t0) / 1e9);
        if (t1 - t0 > p.window_ns)
            bench_note ("snapshot under writes: it outlasted the writers' %.1f s",
                        (double) p.window_ns / 1e9);
    }
    if (p.acked_ops && p.seconds > 0)
        bench_put ("tf.snapshot_busy.put_rate", (double) p.acked_ops / p.seconds);
    tf_status_t status;
    int64_t deadline = bench_now_ns () + 30000000000LL;
    if (s_status (svc, &status) == 0)
        while (tf_view_position (view) < status.head_sequence && bench_now_ns () < deadline)
            tf_view_poll (view, 100);
    s_views_check (svc, &view, 1);
    tf_view_destroy (&view);
    bench_lat_free (&p.lat);
}

// ------------------------------------------------------------------ ack p99 during a snapshot

/*  Runs the calling thread, and the threads it starts, at `priority`:
    "idle" (SCHED_IDLE) or a nice value. */
static int s_set_priority (const char *priority)
{
    if (streq (priority, "idle")) {
        struct sched_param param = { 0 };
        return sched_setscheduler (0, SCHED_IDLE, &param);
    }
    return setpriority (PRIO_PROCESS, 0, atoi (priority));
}

/*  Loads snapshots into new views, one after another, until SIGTERM. At
    SCHED_IDLE it stands in for a client on another machine: on a 2-core
    machine its decoding would otherwise take the CPU the paced writer and
    the service wait for. Nice 19 does not do that: under Linux 6's EEVDF
    scheduler a nice-19 task ran 0.4-0.6 ms stretches while the service's
    loop and the writer waited for the core (perf sched timehist), where
    a SCHED_IDLE one yields to them at once. */
int bench_snapshot_loop (const char *priority, const char *events, const char *sync)
{
    if (s_set_priority (priority))
        fprintf (stderr, "snapshot loop: cannot run at %s: %s\n", priority, strerror (errno));
    zsys_init ();
    while (!zsys_interrupted) {
        tf_view_t *view = tf_view_new (events, sync);
        tf_view_set_timeout (view, 30000);
        tf_view_start (view);
        tf_view_destroy (&view);
    }
    return 0;
}

/*  Snapshots the service has opened so far. */
static double s_snapshots_served (const tf_service_t *svc)
{
    static const char *name = "techfeed_snapshots_served_total";
    double served = 0;
    s_metrics (svc, &name, &served, 1);
    return served;
}

/*  Requests the service has taken over 1 ms to answer (receive -> reply)
    so far, from its latency histogram; -1 when /metrics cannot say. */
static double s_slow_replies (const tf_service_t *svc)
{
    static const char *names[] = { "techfeed_ingest_latency_seconds_count",
                                   "techfeed_ingest_latency_seconds_bucket{le=\"0.001\"}" };
    double v[2];
    return s_metrics (svc, names, v, 2) ? v[0] - v[1] : -1;
}

/*  Paced puts at 1k/s; returns their ack p99 (µs). <key>.slow_1ms: how
    many of them (warm-up included) the service itself took over 1 ms to
    answer, which tells a slow ack's time inside it from its time outside. */
static double s_ack_phase (const tf_service_t *svc, const char *prefix, const char *key)
{
    double slow = s_slow_replies (svc);
    s_paced_t paced = { .endpoint = svc->ingest, .prefix = prefix, .rate = 1000 };
    paced.warm_ns = 300000000;
    paced.window_ns = bench_window_ns (3.0);
    paced.sched = &s_schedule;
    s_paced (&paced);
    if (paced.saturated)
        bench_note ("ack test %s: the service fell a second behind 1k/s (acks at %.0f/s)", prefix,
                    paced.achieved);
    double slow_after = s_slow_replies (svc);
    if (slow >= 0 && slow_after >= 0)
        bench_putf (slow_after - slow, "%s.slow_1ms", key);
    bench_lat_put (&paced.acks, key);
    double p99 = bench_lat_pct (&paced.acks, 99);
    bench_lat_free (&paced.acks);
    return p99;
}

/*  The paced puts' (ids `prefix`-k) ack p99 while a snapshot client at
    `priority` loads snapshots; <key>.ratio to `idle`, <key>.snapshots
    served meanwhile. */
static void s_ack_with_snapshots (const tf_service_t *svc, const char *priority, double idle,
                                  const char *prefix, const char *key)
{
    char log[600];
    snprintf (log, sizeof log, "%s/snapshot-loop.log", bench_opts.tmp);
    const char *argv[] = { "/proc/self/exe", "--snapshot-loop", priority,
                           svc->events,      svc->sync,         NULL };
    double served = s_snapshots_served (svc);
    pid_t pid = bench_spawn (argv, log);
    bench_sleep_ms (100); /* the first snapshot is under way */
    double p99 = s_ack_phase (svc, prefix, key);
    bench_stop (&pid, 5000);
    served = s_snapshots_served (svc) - served;
    if (served < 1)
        bench_note ("%s: no snapshot was served (see %s)", key, log);
    bench_putf (served, "%s.snapshots", key);
    bench_putf (p99 / idle, "%s.ratio", key);
}

static void s_ack_during_snapshot (const tf_service_t *svc)
{
    double idle = s_ack_phase (svc, "idle", "tf.ack_idle");
    s_ack_with_snapshots (svc, "idle", idle, "snap", "tf.ack_snap");
    s_ack_with_snapshots (svc, "0", idle, "snap0", "tf.ack_snap0");
}

// ------------------------------------------------------------------ memory per subscriber

static void s_rss (int subs)
{
    tf_service_t svc;
    if (s_start (&svc))
        return;
    tf_writer_t *writer = tf_writer_new (svc.ingest);
    tf_writer_set_timeout (writer, 10000);
    Techfeed__Milestone record, *records[1] = { &record };
    char id[160];
    tf_result_t result;
    for (uint32_t k = 0; k < 100; k++) {
        bench_record (k, &record, id);
        tf_writer_put (writer, records, 1, false, &result);
    }
    bench_sleep_ms (300);
    long before = bench_rss_kib (svc.pid);
    zsock_t **socks = (zsock_t **) calloc ((size_t) subs, sizeof *socks);
    zmq_pollitem_t *items = (zmq_pollitem_t *) calloc ((size_t) subs, sizeof *items);
    int made = 0;
    for (; made < subs; made++) {
        socks[made] = zsock_new_sub (svc.events, "");
        if (!socks[made])
            break;
        zsock_set_linger (socks[made], 0);
        items[made] = (zmq_pollitem_t){ zsock_resolve (socks[made]), 0, ZMQ_POLLIN, 0 };
    }
    if (made < subs)
        bench_note ("memory: only %d SUB sockets could be made (fd or socket limit)", made);
    //  Connected = has received a heartbeat; then 100 events to all.
    bool *heard = (bool *) calloc ((size_t) made, sizeof *heard);
    for (int round = 0; round < 2; round++) {
        memset (heard, 0, (size_t) made * sizeof *heard);
        if (round == 1)
            for (uint32_t k = 100; k < 200; k++) {
                bench_record (k, &record, id);
                tf_writer_put (writer, records, 1, false, &result);
            }
        int count = 0;
        int64_t deadline = bench_now_ns () + 15000000000LL;
        while (count < made && bench_now_ns () < deadline) {
            zmq_poll (items, made, 100);
            for (int i = 0; i < made; i++) {
                if (!(items[i].revents & ZMQ_POLLIN))
                    continue;
                zmq_msg_t msg;
                zmq_msg_init (&msg);
                while (zmq_msg_recv (&msg, items[i].socket, ZMQ_DONTWAIT) >= 0)
                    ;
                zmq_msg_close (&msg);
                if (!heard[i]) {
                    heard[i] = true;
                    count++;
                }
            }
        }
        if (count < made)
            bench_note ("memory: %d of %d SUB sockets heard from the service", count, made);
    }
    bench_sleep_ms (300);
    long after = bench_rss_kib (svc.pid);
    if (before > 0 && after > 0 && made)
        bench_put ("tf.rss_per_sub.kib", (double) (after - before) / made);
    bench_put ("tf.rss.before_kib", (double) before);
    bench_put ("tf.rss.after_kib", (double) after);
    for (int i = 0; i < made; i++)
        zsock_destroy (&socks[i]);
    free (socks);
    free (items);
    free (heard);
    tf_writer_destroy (&writer);
    s_stop (&svc);
}

// ------------------------------------------------------------------ the suite

void bench_techfeed_run (int run)
{
    s_digest_ok = s_digest_total = s_digest_lagging = 0;
    tf_service_t svc;
    bool serial = bench_enabled ("techfeed.serial"),
         concurrent = bench_enabled ("techfeed.concurrent");
    if ((serial || concurrent) && s_start (&svc) == 0) {
        if (serial)
            s_serial (&svc);
        if (concurrent)
            s_concurrent (&svc);
        s_stop (&svc);
    }
    static const int rates[] = { 1000, 10000 };
    static const int subs[] = { 1, 10, 100 };
    for (size_t r = 0; r < 2; r++)
        for (size_t s = 0; s < 3; s++) {
            char one[64]; // one case alone: techfeed.views.1k.100
            snprintf (one, sizeof one, "techfeed.views.%dk.%d", rates[r] / 1000, subs[s]);
            if (bench_enabled ("techfeed.views") || bench_enabled (one))
                s_view_latency (rates[r], subs[s]);
        }
    if (bench_enabled ("techfeed.sync") && s_start (&svc) == 0) {
        if (s_load (&svc, bench_opts.records) == 0) {
            s_wait_applied (&svc);
            s_catchup (&svc, bench_opts.records, 500, "tf.catchup");
            s_catchup (&svc, bench_opts.records, 5000, "tf.catchup5k");
            s_snapshot (&svc, bench_opts.records);
            s_ack_during_snapshot (&svc);
            s_snapshot_under_writes (&svc, bench_opts.records);
        }
        s_stop (&svc);
    }
    if (bench_enabled ("techfeed.rss"))
        s_rss (bench_opts.rss_subscribers);
    bench_put ("tf.digest.ok", s_digest_ok);
    bench_put ("tf.digest.total", s_digest_total);
    bench_put ("tf.digest.lagging", s_digest_lagging);
}
