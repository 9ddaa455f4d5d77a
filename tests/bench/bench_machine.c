/*  bench_machine — what this machine allows, measured in the same run:
    fdatasync of 4 KiB in the temporary directory's filesystem, raw
    ZeroMQ request/reply and PUB/SUB over loopback, SQLite's own batched
    insert rate with synchronous=FULL in WAL mode.

    Keys: machine.fsync.{rate,p50,p99}, machine.fsync_paced.{p50,p99} (one
    every ms), machine.fsync_append.p50,
    machine.fsync_mib.rate (MiB/s appended in 1 MiB writes + fdatasync),
    machine.zmq_rtt.{p50,p99}, machine.zmq_pubsub.rate,
    machine.sqlite.rate, machine.sqlite_idkey.rate.
*/
#include "bench.h"
#include "tf_testkit.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

#define S_BLOCK 4096
#define S_FSYNC_FILE (4 << 20) /* overwritten in a ring, like a reused WAL */
#define S_ZMQ_MSG 500          /* bytes, the size the issue names */
#define S_SQLITE_BATCH 100     /* rows per transaction */

// ------------------------------------------------------------------ fdatasync

/*  Writes 4 KiB and fdatasyncs, in a loop, for the window. `append`: the
    file grows (metadata changes too); else a preallocated file is
    overwritten in a ring. `pace_ns`: one write every pace_ns (the paced
    scenarios' shape: the machine is idle between syncs), or 0: back to
    back. */
static void s_fsync (const char *dir, bool append, int64_t pace_ns, const char *key)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/fsync-%s.bin", dir, append ? "append" : "ring");
    int fd = open (path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        bench_note ("fdatasync: cannot open %s", path);
        return;
    }
    char block[S_BLOCK];
    memset (block, 0xa5, sizeof block);
    if (!append) {
        for (off_t off = 0; off < S_FSYNC_FILE; off += S_BLOCK)
            if (pwrite (fd, block, S_BLOCK, off) != S_BLOCK)
                break;
        fsync (fd);
    }
    bench_lat_t lat = { 0 };
    int64_t start = bench_now_ns ();
    int64_t warm = start + 100000000, end = warm + bench_window_ns (2.0);
    uint64_t count = 0;
    off_t off = 0;
    int64_t now = start, due = start;
    while (now < end) {
        if (pace_ns)
            bench_sleep_until (due += pace_ns);
        int64_t t0 = bench_now_ns ();
        if (pwrite (fd, block, S_BLOCK, off) != S_BLOCK || fdatasync (fd) != 0) {
            bench_note ("fdatasync: write failed in %s", dir);
            break;
        }
        now = bench_now_ns ();
        off += S_BLOCK;
        if (!append && off >= S_FSYNC_FILE)
            off = 0;
        if (t0 >= warm) {
            bench_lat_add (&lat, now - t0);
            count++;
        }
    }
    close (fd);
    unlink (path);
    if (count)
        bench_putf ((double) count / ((double) (now - warm) / 1e9), "%s.rate", key);
    bench_lat_put (&lat, key);
    bench_lat_free (&lat);
}

/*  Appends 1 MiB and fdatasyncs, in a loop: how many bytes a sync can
    carry per second (what a group commit of large transactions meets). */
static void s_fsync_bandwidth (const char *dir)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/fsync-mib.bin", dir);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return;
    size_t size = 1 << 20;
    char *block = (char *) malloc (size);
    memset (block, 0x5a, size);
    int64_t start = bench_now_ns (), end = start + bench_window_ns (1.5), now = start;
    double bytes = 0;
    while (now < end) {
        if (write (fd, block, size) != (ssize_t) size || fdatasync (fd) != 0)
            break;
        bytes += (double) size;
        now = bench_now_ns ();
    }
    close (fd);
    unlink (path);
    free (block);
    if (bytes > 0)
        bench_put ("machine.fsync_mib.rate", bytes / (1 << 20) / ((double) (now - start) / 1e9));
}

// ------------------------------------------------------------------ ZeroMQ

typedef struct {
    void *ctx;          /* its own context: its own I/O thread, as another process has */
    char endpoint[128]; /* bound endpoint */
    atomic_bool stop;   /* set by the measuring thread */
    atomic_bool ready;  /* bound */
} s_peer_t;

static void s_bind_any (void *socket, s_peer_t *peer)
{
    int rc = zmq_bind (socket, "tcp://127.0.0.1:*");
    assert (rc == 0);
    size_t len = sizeof peer->endpoint;
    zmq_getsockopt (socket, ZMQ_LAST_ENDPOINT, peer->endpoint, &len);
    atomic_store (&peer->ready, true);
}

static void s_wait_ready (s_peer_t *peer)
{
    while (!atomic_load (&peer->ready))
        bench_sleep_ms (1);
}

/*  ROUTER that echoes every message (identity + body) back. */
static void *s_echo (void *arg)
{
    s_peer_t *peer = (s_peer_t *) arg;
    void *router = zmq_socket (peer->ctx, ZMQ_ROUTER);
    int timeout = 100, linger = 0;
    zmq_setsockopt (router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt (router, ZMQ_LINGER, &linger, sizeof linger);
    s_bind_any (router, peer);
    char id[256], body[S_ZMQ_MSG * 2];
    while (!atomic_load (&peer->stop)) {
        int n = zmq_recv (router, id, sizeof id, 0);
        if (n < 0)
            continue;
        int m = zmq_recv (router, body, sizeof body, 0);
        if (m < 0)
            continue;
        zmq_send (router, id, (size_t) n, ZMQ_SNDMORE);
        zmq_send (router, body, (size_t) m, 0);
    }
    zmq_close (router);
    return NULL;
}

static void s_zmq_rtt (void)
{
    s_peer_t peer = { .ctx = zmq_ctx_new () };
    pthread_t thread;
    pthread_create (&thread, NULL, s_echo, &peer);
    s_wait_ready (&peer);
    void *ctx = zmq_ctx_new ();
    void *dealer = zmq_socket (ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt (dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect (dealer, peer.endpoint);
    char body[S_ZMQ_MSG], back[S_ZMQ_MSG * 2];
    memset (body, 'x', sizeof body);
    bench_lat_t lat = { 0 };
    int64_t start = bench_now_ns ();
    int64_t warm = start + 200000000, end = warm + bench_window_ns (1.0);
    for (int64_t now = start; now < end;) {
        int64_t t0 = bench_now_ns ();
        zmq_send (dealer, body, sizeof body, 0);
        if (zmq_recv (dealer, back, sizeof back, 0) < 0)
            break;
        now = bench_now_ns ();
        if (t0 >= warm)
            bench_lat_add (&lat, now - t0);
    }
    bench_lat_put (&lat, "machine.zmq_rtt");
    bench_lat_free (&lat);
    atomic_store (&peer.stop, true);
    pthread_join (thread, NULL);
    zmq_close (dealer);
    zmq_ctx_term (ctx);
    zmq_ctx_term (peer.ctx);
}

/*  PUB that sends 500-byte messages as fast as it can. */
static void *s_publisher (void *arg)
{
    s_peer_t *peer = (s_peer_t *) arg;
    void *pub = zmq_socket (peer->ctx, ZMQ_PUB);
    int hwm = 100000, linger = 0;
    zmq_setsockopt (pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (pub, ZMQ_LINGER, &linger, sizeof linger);
    s_bind_any (pub, peer);
    char body[S_ZMQ_MSG];
    memset (body, 'p', sizeof body);
    while (!atomic_load (&peer->stop))
        for (int i = 0; i < 1000; i++)
            zmq_send (pub, body, sizeof body, 0);
    zmq_close (pub);
    return NULL;
}

static void s_zmq_pubsub (void)
{
    s_peer_t peer = { .ctx = zmq_ctx_new () };
    pthread_t thread;
    pthread_create (&thread, NULL, s_publisher, &peer);
    s_wait_ready (&peer);
    void *ctx = zmq_ctx_new ();
    void *sub = zmq_socket (ctx, ZMQ_SUB);
    int hwm = 100000, timeout = 1000, linger = 0;
    zmq_setsockopt (sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt (sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "", 0);
    zmq_connect (sub, peer.endpoint);
    char body[S_ZMQ_MSG * 2];
    //  Wait for the flow, warm up, then count over the window.
    bool flowing = zmq_recv (sub, body, sizeof body, 0) >= 0;
    int64_t warm = bench_now_ns () + 200000000;
    while (flowing && bench_now_ns () < warm)
        flowing = zmq_recv (sub, body, sizeof body, 0) >= 0;
    int64_t start = bench_now_ns (), end = start + bench_window_ns (1.5), now = start;
    uint64_t count = 0;
    while (flowing && now < end) {
        for (int i = 0; i < 1000 && flowing; i++, count++)
            flowing = zmq_recv (sub, body, sizeof body, 0) >= 0;
        now = bench_now_ns ();
    }
    if (flowing && count)
        bench_put ("machine.zmq_pubsub.rate", (double) count / ((double) (now - start) / 1e9));
    atomic_store (&peer.stop, true);
    pthread_join (thread, NULL);
    zmq_close (sub);
    zmq_ctx_term (ctx);
    zmq_ctx_term (peer.ctx);
}

// ------------------------------------------------------------------ SQLite

/*  Rows of the records' size, 100 per transaction, synchronous=FULL in
    WAL mode. `id_key`: the id is the primary key (a random-key B-tree
    insert per row); else rows are keyed by an integer sequence. */
static void s_sqlite (const char *dir, bool id_key, const char *key)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/batch-%d.db", dir, id_key);
    sqlite3 *db;
    if (sqlite3_open (path, &db) != SQLITE_OK) {
        bench_note ("SQLite: cannot open %s", path);
        return;
    }
    const char *schema =
        id_key ? "CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, body BLOB NOT NULL) STRICT"
               : "CREATE TABLE t (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, body BLOB NOT NULL)"
                 " STRICT";
    sqlite3_exec (db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL", NULL, NULL, NULL);
    sqlite3_exec (db, schema, NULL, NULL, NULL);
    sqlite3_stmt *insert;
    sqlite3_prepare_v2 (db, "INSERT INTO t (id, body) VALUES (?1, ?2)", -1, &insert, NULL);
    //  Records in a scattered order, as ids arrive from many writers; a
    //  suffix keeps ids unique past BENCH_IDS_MAX rows.
    uint64_t rows = 0, counted = 0;
    int64_t warm = bench_now_ns () + 200000000, start = 0, now = 0;
    bool ok = true;
    while (ok && (!start || now < start + bench_window_ns (1.5))) {
        ok = sqlite3_exec (db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
        for (int i = 0; ok && i < S_SQLITE_BATCH; i++, rows++) {
            uint32_t k = (uint32_t) ((rows * 7919) % BENCH_IDS_MAX);
            Techfeed__Milestone record;
            char id[160], unique[180];
            bench_record (k, &record, id);
            snprintf (unique, sizeof unique, "%s.%u", id, (unsigned) (rows / BENCH_IDS_MAX));
            size_t size;
            const uint8_t *body = bench_record_bytes (k, &size);
            sqlite3_bind_text (insert, 1, unique, -1, SQLITE_TRANSIENT);
            sqlite3_bind_blob (insert, 2, body, (int) size, SQLITE_STATIC);
            ok = sqlite3_step (insert) == SQLITE_DONE;
            sqlite3_reset (insert);
        }
        ok = ok && sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
        now = bench_now_ns ();
        if (start)
            counted += S_SQLITE_BATCH;
        else if (now >= warm)
            start = now;
    }
    if (!ok)
        bench_note ("SQLite batched insert failed: %s", sqlite3_errmsg (db));
    else if (counted)
        bench_putf ((double) counted / ((double) (now - start) / 1e9), "%s.rate", key);
    sqlite3_finalize (insert);
    sqlite3_close (db);
    tf_test_remove_db (path);
}

void bench_machine_run (int run)
{
    char *dir = bench_tempdir ("machine");
    s_fsync (dir, false, 0, "machine.fsync");
    s_fsync (dir, false, 1000000, "machine.fsync_paced");
    s_fsync (dir, true, 0, "machine.fsync_append");
    s_fsync_bandwidth (dir);
    s_zmq_rtt ();
    s_zmq_pubsub ();
    s_sqlite (dir, false, "machine.sqlite");
    s_sqlite (dir, true, "machine.sqlite_idkey");
    rmdir (dir);
    free (dir);
}
