/*  bench_redis — Redis 7 Streams as the peer: redis-server on 127.0.0.1
    with a temporary directory, AOF on (appendfsync always, then
    everysec), RDB snapshots off; hiredis clients; the same packed records
    techfeed stores (XADD key * n <number> body <Milestone bytes>).

    - serial XADD: 1 connection, 1 in flight (rate, p50, p99);
    - 50 clients: 50 connections, one XADD in flight on each (not
      pipelined), driven from one thread (rate, ack p99);
    - XADD -> XREAD BLOCK: a writer paced at 1k/s (open loop), a reader
      blocked in XREAD that decodes each body and keeps it in a table by
      id, latency from the put's due time (p50, p99, p99.9).

    Keys: redis.<always|everysec>.{serial,c50,xread}.*
*/
#include "bench.h"

#include <hiredis.h>
#include <poll.h>
#include <pthread.h>

#define S_CLIENTS 50

typedef bench_peer_t s_redis_t;

static redisContext *s_connect (int port)
{
    struct timeval tv = { 5, 0 };
    redisContext *c = redisConnectWithTimeout ("127.0.0.1", port, tv);
    if (!c || c->err) {
        if (c)
            redisFree (c);
        return NULL;
    }
    return c;
}

static bool s_ready (const bench_peer_t *peer)
{
    redisContext *c = s_connect (peer->port);
    redisReply *reply = c ? (redisReply *) redisCommand (c, "PING") : NULL;
    bool ok = reply && reply->type == REDIS_REPLY_STATUS;
    if (reply)
        freeReplyObject (reply);
    if (c)
        redisFree (c);
    return ok;
}

/*  AOF on with `fsync_mode`, RDB snapshots off. */
static int s_start (s_redis_t *r, const char *fsync_mode)
{
    bench_peer_init (r, "redis");
    char port[16];
    snprintf (port, sizeof port, "%d", r->port);
    const char *argv[] = { "redis-server",
                           "--bind",
                           "127.0.0.1",
                           "--port",
                           port,
                           "--save",
                           "",
                           "--appendonly",
                           "yes",
                           "--appendfsync",
                           fsync_mode,
                           "--dir",
                           r->dir,
                           "--daemonize",
                           "no",
                           "--protected-mode",
                           "yes",
                           NULL };
    return bench_peer_start (r, argv, s_ready);
}

/*  Appends XADD key * n <n> body <record k> to the context's buffer. */
static void s_append_xadd (redisContext *c, const char *key, uint64_t n, uint32_t k)
{
    size_t size;
    const uint8_t *body = bench_record_bytes (k, &size);
    char number[24];
    snprintf (number, sizeof number, "%" PRIu64, n);
    const char *argv[] = { "XADD", key, "*", "n", number, "body", (const char *) body };
    size_t lens[] = { 4, strlen (key), 1, 1, strlen (number), 4, size };
    redisAppendCommandArgv (c, 7, argv, lens);
}

static bool s_flush (redisContext *c)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite (c, &done) != REDIS_OK)
            return false;
    return true;
}

static bool s_reply_ok (redisReply *reply, const char *what)
{
    if (reply && reply->type != REDIS_REPLY_ERROR)
        return true;
    bench_note ("redis %s: %s", what, reply ? reply->str : "no reply");
    return false;
}

// ------------------------------------------------------------------ serial, 50 clients

static void s_serial (const s_redis_t *r, const char *mode)
{
    redisContext *c = s_connect (r->port);
    if (!c)
        return;
    bench_lat_t lat = { 0 };
    uint64_t count = 0;
    int64_t warm = bench_now_ns () + 300000000, end = warm + bench_window_ns (2.0), now;
    for (uint64_t n = 0; (now = bench_now_ns ()) < end; n++) {
        s_append_xadd (c, "serial", n, (uint32_t) (n % BENCH_IDS_MAX));
        redisReply *reply = NULL;
        if (redisGetReply (c, (void **) &reply) != REDIS_OK || !s_reply_ok (reply, "XADD"))
            break;
        freeReplyObject (reply);
        int64_t t1 = bench_now_ns ();
        if (now >= warm) {
            bench_lat_add (&lat, t1 - now);
            count++;
        }
    }
    char key[64];
    snprintf (key, sizeof key, "redis.%s.serial", mode);
    if (count)
        bench_putf ((double) count / ((double) (now - warm) / 1e9), "%s.rate", key);
    bench_lat_put (&lat, key);
    bench_lat_free (&lat);
    redisFree (c);
}

static void s_clients (const s_redis_t *r, const char *mode)
{
    redisContext *c[S_CLIENTS];
    struct pollfd fds[S_CLIENTS];
    int64_t sent[S_CLIENTS];
    for (int i = 0; i < S_CLIENTS; i++) {
        c[i] = s_connect (r->port);
        if (!c[i]) {
            bench_note ("redis: cannot open %d connections", S_CLIENTS);
            for (int j = 0; j < i; j++)
                redisFree (c[j]);
            return;
        }
        fds[i] = (struct pollfd){ c[i]->fd, POLLIN, 0 };
    }
    bench_lat_t lat = { 0 };
    uint64_t n = 0, count = 0;
    int inflight = 0;
    int64_t warm = bench_now_ns () + 500000000, end = warm + bench_window_ns (3.0);
    bool sending = true, ok = true;
    for (int i = 0; i < S_CLIENTS; i++) {
        s_append_xadd (c[i], "c50", n, (uint32_t) (n % BENCH_IDS_MAX));
        n++;
        sent[i] = bench_now_ns ();
        ok = ok && s_flush (c[i]);
        inflight++;
    }
    while (ok && inflight) {
        if (poll (fds, S_CLIENTS, 1000) <= 0)
            break;
        for (int i = 0; i < S_CLIENTS; i++) {
            if (!(fds[i].revents & POLLIN))
                continue;
            if (redisBufferRead (c[i]) != REDIS_OK) {
                ok = false;
                break;
            }
            redisReply *reply = NULL;
            while (redisGetReplyFromReader (c[i], (void **) &reply) == REDIS_OK && reply) {
                int64_t now = bench_now_ns ();
                ok = ok && s_reply_ok (reply, "XADD");
                freeReplyObject (reply);
                reply = NULL;
                inflight--;
                if (sent[i] >= warm && now <= end) {
                    bench_lat_add (&lat, now - sent[i]);
                    count++;
                }
                if (now >= end)
                    sending = false;
                if (sending) {
                    s_append_xadd (c[i], "c50", n, (uint32_t) (n % BENCH_IDS_MAX));
                    n++;
                    sent[i] = now;
                    ok = ok && s_flush (c[i]);
                    inflight++;
                }
            }
        }
    }
    char key[64];
    snprintf (key, sizeof key, "redis.%s.c50", mode);
    if (ok && count)
        bench_putf ((double) count / ((double) (end - warm) / 1e9), "%s.rate", key);
    bench_lat_put (&lat, key);
    bench_lat_free (&lat);
    for (int i = 0; i < S_CLIENTS; i++)
        redisFree (c[i]);
}

// ------------------------------------------------------------------ XADD -> XREAD BLOCK

static bench_schedule_t s_due; /* slot[n] = due time of put n */

typedef struct {
    int port;
    int64_t measure_from;
    uint64_t expected; /* entries to read, 0 until the writer knows */
    atomic_uint_fast64_t got;
    atomic_bool stop;
    bench_lat_t lat;
} s_reader_t;

static void s_record_destroy (void **item)
{
    techfeed__milestone__free_unpacked ((Techfeed__Milestone *) *item, NULL);
    *item = NULL;
}

static void *s_reader_run (void *arg)
{
    s_reader_t *rd = (s_reader_t *) arg;
    redisContext *c = s_connect (rd->port);
    if (!c)
        return NULL;
    zhashx_t *table = zhashx_new ();
    zhashx_set_destructor (table, s_record_destroy);
    char last[64] = "0-0";
    while (!atomic_load (&rd->stop)) {
        redisReply *reply =
            (redisReply *) redisCommand (c, "XREAD COUNT 1000 BLOCK 200 STREAMS lat %s", last);
        if (!reply)
            break;
        //  [[key, [[id, [field, value, ...]], ...]]] or nil on timeout.
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
            redisReply *entries = reply->element[0]->element[1];
            for (size_t e = 0; e < entries->elements; e++) {
                redisReply *entry = entries->element[e];
                snprintf (last, sizeof last, "%s", entry->element[0]->str);
                redisReply *fields = entry->element[1];
                uint64_t n = UINT64_MAX;
                Techfeed__Milestone *record = NULL;
                for (size_t f = 0; f + 1 < fields->elements; f += 2) {
                    const char *name = fields->element[f]->str;
                    redisReply *value = fields->element[f + 1];
                    if (streq (name, "n"))
                        n = strtoull (value->str, NULL, 10);
                    else if (streq (name, "body"))
                        record = techfeed__milestone__unpack (NULL, value->len,
                                                              (const uint8_t *) value->str);
                }
                if (record)
                    zhashx_update (table, record->id, record);
                int64_t now = bench_now_ns ();
                if (n < BENCH_IDS_MAX) {
                    int64_t due = atomic_load_explicit (&s_due.slot[n], memory_order_relaxed);
                    if (due >= rd->measure_from)
                        bench_lat_add (&rd->lat, now - due);
                }
                atomic_fetch_add (&rd->got, 1);
            }
        }
        freeReplyObject (reply);
    }
    zhashx_destroy (&table);
    redisFree (c);
    return NULL;
}

static void s_xread (const s_redis_t *r, const char *mode)
{
    redisContext *c = s_connect (r->port);
    if (!c)
        return;
    s_reader_t rd = { .port = r->port };
    double rate = 1000, period = 1e9 / rate;
    int64_t warm_ns = 500000000, window_ns = bench_window_ns (3.0);
    uint64_t total = (uint64_t) (rate * (double) (warm_ns + window_ns) / 1e9);
    int64_t t0 = bench_now_ns () + 100000000;
    rd.measure_from = t0 + warm_ns;
    pthread_t thread;
    pthread_create (&thread, NULL, s_reader_run, &rd);
    uint64_t n = 0, acked = 0;
    bool ok = true;
    long slack = bench_slack_tight ();
    while (ok && (n < total || acked < n)) {
        int64_t now = bench_now_ns ();
        while (n < total && t0 + (int64_t) ((double) n * period) <= now) {
            atomic_store_explicit (&s_due.slot[n], t0 + (int64_t) ((double) n * period),
                                   memory_order_relaxed);
            s_append_xadd (c, "lat", n, (uint32_t) (n % BENCH_IDS_MAX));
            n++;
        }
        ok = s_flush (c);
        int64_t next = n < total ? t0 + (int64_t) ((double) n * period) : now + 100000000;
        if (bench_wait_fd (c->fd, next)) {
            ok = ok && redisBufferRead (c) == REDIS_OK;
            redisReply *reply = NULL;
            while (ok && redisGetReplyFromReader (c, (void **) &reply) == REDIS_OK && reply) {
                ok = s_reply_ok (reply, "XADD");
                freeReplyObject (reply);
                reply = NULL;
                acked++;
            }
        }
        if (now > t0 + warm_ns + window_ns + 20000000000LL)
            break;
    }
    bench_slack_restore (slack);
    int64_t deadline = bench_now_ns () + 10000000000LL;
    while (atomic_load (&rd.got) < n && bench_now_ns () < deadline)
        bench_sleep_ms (5);
    atomic_store (&rd.stop, true);
    pthread_join (thread, NULL);
    char key[64];
    snprintf (key, sizeof key, "redis.%s.xread", mode);
    if (atomic_load (&rd.got) < n)
        bench_note ("redis %s: the reader got %" PRIu64 " of %" PRIu64 " entries", mode,
                    (uint64_t) atomic_load (&rd.got), n);
    bench_lat_put (&rd.lat, key);
    bench_lat_free (&rd.lat);
    redisFree (c);
}

void bench_redis_run (int run)
{
    static const char *modes[] = { "always", "everysec" };
    for (int m = 0; m < 2; m++) {
        s_redis_t r;
        if (s_start (&r, modes[m]) == 0) {
            s_serial (&r, modes[m]);
            s_clients (&r, modes[m]);
            s_xread (&r, modes[m]);
        }
        bench_peer_stop (&r);
    }
}
