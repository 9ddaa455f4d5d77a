/*  bench_nats — NATS JetStream as the peer: nats-server -js on 127.0.0.1
    with a file store in a temporary directory; libnats clients; the same
    packed records (payload = 8-byte put number + Milestone bytes).

    nats-server 2.9 acknowledges a publish once the message is in the
    store's buffers, before it reaches the disk (the file store syncs on a
    timer), so its acks are not durable in the sense techfeed's are.

    - serial publish with ack: js_Publish, 1 in flight (rate, p50, p99);
    - 8 x 64: 8 connections, js_PublishAsync with MaxPending 64 each,
      round robin from one thread (rate, ack p99);
    - publish -> consumer: a publisher paced at 1k/s (open loop), a push
      consumer (AckNone) whose callback decodes each body and keeps it in
      a table by id, latency from the put's due time.

    Keys: nats.{serial,c8x64,consumer}.*
*/
#include "bench.h"

#include <nats/nats.h>

#define S_CONNS 8
#define S_PENDING 64
#define S_RING 256

typedef struct {
    bench_peer_t peer;
    char url[64];
} s_nats_t;

/*  `asap`: every publish is sent at once instead of waiting for the
    library's flusher (what a latency-minded publisher sets). */
static natsConnection *s_connect_with (const char *url, bool asap)
{
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    if (natsOptions_Create (&opts) != NATS_OK)
        return NULL;
    natsOptions_SetURL (opts, url);
    natsOptions_SetSendAsap (opts, asap);
    if (natsConnection_Connect (&nc, opts) != NATS_OK)
        nc = NULL;
    natsOptions_Destroy (opts);
    return nc;
}

static natsConnection *s_connect (const char *url)
{
    return s_connect_with (url, false);
}

static bool s_ready (const bench_peer_t *peer)
{
    char url[64];
    snprintf (url, sizeof url, "nats://127.0.0.1:%d", peer->port);
    natsConnection *nc = s_connect (url);
    if (nc)
        natsConnection_Destroy (nc);
    return nc != NULL;
}

static int s_start (s_nats_t *n)
{
    bench_peer_init (&n->peer, "nats");
    char port[16];
    snprintf (port, sizeof port, "%d", n->peer.port);
    snprintf (n->url, sizeof n->url, "nats://127.0.0.1:%d", n->peer.port);
    const char *argv[] = { "nats-server", "-js", "-sd", n->peer.dir, "-a",
                           "127.0.0.1",   "-p",  port,  NULL };
    return bench_peer_start (&n->peer, argv, s_ready);
}

/*  8-byte put number + record k; caller's buffer. */
static int s_payload (uint8_t *buf, size_t size, uint64_t n, uint32_t k)
{
    size_t body_size;
    const uint8_t *body = bench_record_bytes (k, &body_size);
    if (body_size + 8 > size)
        return 0;
    memcpy (buf, &n, 8);
    memcpy (buf + 8, body, body_size);
    return (int) (body_size + 8);
}

static uint64_t s_number (const natsMsg *msg)
{
    uint64_t n = UINT64_MAX;
    if (natsMsg_GetDataLength (msg) >= 8)
        memcpy (&n, natsMsg_GetData (msg), 8);
    return n;
}

static int s_stream (natsConnection *nc)
{
    jsCtx *js = NULL;
    natsConnection_JetStream (&js, nc, NULL);
    jsStreamConfig cfg;
    jsStreamConfig_Init (&cfg);
    const char *subjects[] = { "tf.>" };
    cfg.Name = "TF";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream (&info, js, &cfg, NULL, &jerr);
    if (info)
        jsStreamInfo_Destroy (info);
    jsCtx_Destroy (js);
    if (s != NATS_OK) {
        bench_note ("nats: cannot create the stream: %s", natsStatus_GetText (s));
        return -1;
    }
    return 0;
}

// ------------------------------------------------------------------ serial

static void s_serial (natsConnection *nc)
{
    jsCtx *js = NULL;
    natsConnection_JetStream (&js, nc, NULL);
    bench_lat_t lat = { 0 };
    uint64_t count = 0;
    uint8_t buf[8192];
    int64_t warm = bench_now_ns () + 300000000, end = warm + bench_window_ns (2.0), now;
    for (uint64_t n = 0; (now = bench_now_ns ()) < end; n++) {
        int size = s_payload (buf, sizeof buf, n, (uint32_t) (n % BENCH_IDS_MAX));
        jsPubAck *ack = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_Publish (&ack, js, "tf.serial", buf, size, NULL, &jerr);
        int64_t t1 = bench_now_ns ();
        if (ack)
            jsPubAck_Destroy (ack);
        if (s != NATS_OK) {
            bench_note ("nats publish: %s", natsStatus_GetText (s));
            break;
        }
        if (now >= warm) {
            bench_lat_add (&lat, t1 - now);
            count++;
        }
    }
    if (count)
        bench_put ("nats.serial.rate", (double) count / ((double) (now - warm) / 1e9));
    bench_lat_put (&lat, "nats.serial");
    bench_lat_free (&lat);
    jsCtx_Destroy (js);
}

// ------------------------------------------------------------------ 8 x 64 async

typedef struct {
    natsConnection *nc;
    jsCtx *js;
    _Atomic int64_t sent[S_RING]; /* send time by put number % S_RING */
    pthread_mutex_t *lock;        /* guards the shared results below */
    bench_lat_t *lat;
    uint64_t *count, *errors;
    int64_t warm, end;
} s_pub_t;

static void s_on_ack (jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    s_pub_t *p = (s_pub_t *) closure;
    int64_t now = bench_now_ns ();
    uint64_t n = s_number (msg);
    int64_t sent = n != UINT64_MAX ? atomic_load (&p->sent[n % S_RING]) : 0;
    pthread_mutex_lock (p->lock);
    if (!pa)
        ++*p->errors;
    else if (sent >= p->warm && now <= p->end) {
        bench_lat_add (p->lat, now - sent);
        ++*p->count;
    }
    pthread_mutex_unlock (p->lock);
    natsMsg_Destroy (msg);
}

static void s_async (const s_nats_t *server)
{
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    bench_lat_t lat = { 0 };
    uint64_t count = 0, errors = 0;
    s_pub_t *pubs = (s_pub_t *) calloc (S_CONNS, sizeof *pubs);
    int64_t warm = bench_now_ns () + 500000000, end = warm + bench_window_ns (3.0);
    bool ok = true;
    for (int i = 0; i < S_CONNS && ok; i++) {
        s_pub_t *p = &pubs[i];
        p->lock = &lock;
        p->lat = &lat;
        p->count = &count;
        p->errors = &errors;
        p->warm = warm;
        p->end = end;
        p->nc = s_connect (server->url);
        jsOptions opts;
        jsOptions_Init (&opts);
        opts.PublishAsync.MaxPending = S_PENDING;
        opts.PublishAsync.AckHandler = s_on_ack;
        opts.PublishAsync.AckHandlerClosure = p;
        opts.PublishAsync.StallWait = 10000;
        ok = p->nc && natsConnection_JetStream (&p->js, p->nc, &opts) == NATS_OK;
    }
    uint8_t buf[8192];
    uint64_t n[S_CONNS] = { 0 };
    for (int64_t now = bench_now_ns (); ok && now < end; now = bench_now_ns ())
        for (int i = 0; i < S_CONNS && ok; i++) {
            //  Put numbers are per connection: i + S_CONNS * n.
            uint64_t number = (uint64_t) i + S_CONNS * n[i];
            int size = s_payload (buf, sizeof buf, n[i], (uint32_t) (number % BENCH_IDS_MAX));
            atomic_store (&pubs[i].sent[n[i] % S_RING], bench_now_ns ());
            natsStatus s = js_PublishAsync (pubs[i].js, "tf.c", buf, size, NULL);
            if (s != NATS_OK) {
                bench_note ("nats async publish: %s", natsStatus_GetText (s));
                ok = false;
            }
            n[i]++;
        }
    for (int i = 0; i < S_CONNS; i++) {
        if (pubs[i].js) {
            jsPubOptions po;
            jsPubOptions_Init (&po);
            po.MaxWait = 10000;
            js_PublishAsyncComplete (pubs[i].js, &po);
            jsCtx_Destroy (pubs[i].js);
        }
        if (pubs[i].nc)
            natsConnection_Destroy (pubs[i].nc);
    }
    pthread_mutex_lock (&lock);
    if (ok && count)
        bench_put ("nats.c8x64.rate", (double) count / ((double) (end - warm) / 1e9));
    bench_lat_put (&lat, "nats.c8x64");
    if (errors)
        bench_note ("nats async publish: %" PRIu64 " negative acks", errors);
    pthread_mutex_unlock (&lock);
    bench_lat_free (&lat);
    free (pubs);
}

// ------------------------------------------------------------------ publish -> consumer

static bench_schedule_t s_due;

typedef struct {
    int64_t measure_from;
    zhashx_t *table; /* id -> Milestone, as a view holds them */
    bench_lat_t lat;
    atomic_uint_fast64_t got;
} s_consumer_t;

static void s_record_destroy (void **item)
{
    techfeed__milestone__free_unpacked ((Techfeed__Milestone *) *item, NULL);
    *item = NULL;
}

static void s_on_msg (natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    s_consumer_t *c = (s_consumer_t *) closure;
    uint64_t n = s_number (msg);
    int length = natsMsg_GetDataLength (msg);
    Techfeed__Milestone *record =
        length > 8 ? techfeed__milestone__unpack (NULL, (size_t) length - 8,
                                                  (const uint8_t *) natsMsg_GetData (msg) + 8)
                   : NULL;
    if (record)
        zhashx_update (c->table, record->id, record);
    int64_t now = bench_now_ns ();
    if (n < BENCH_IDS_MAX) {
        int64_t due = atomic_load_explicit (&s_due.slot[n], memory_order_relaxed);
        if (due >= c->measure_from)
            bench_lat_add (&c->lat, now - due);
    }
    atomic_fetch_add (&c->got, 1);
    natsMsg_Destroy (msg);
}

/*  Publisher and consumer on connections of their own (as two processes
    would have), the publisher sending each message at once. */
static void s_consumer (const s_nats_t *server)
{
    jsCtx *js = NULL, *sub_js = NULL;
    jsOptions opts;
    jsOptions_Init (&opts);
    opts.PublishAsync.MaxPending = 4096;
    natsConnection *nc = s_connect_with (server->url, true);
    natsConnection *sub_nc = s_connect (server->url);
    if (!nc || !sub_nc || natsConnection_JetStream (&js, nc, &opts) != NATS_OK ||
        natsConnection_JetStream (&sub_js, sub_nc, NULL) != NATS_OK) {
        bench_note ("nats: cannot connect the consumer test");
        jsCtx_Destroy (js);
        jsCtx_Destroy (sub_js);
        natsConnection_Destroy (nc);
        natsConnection_Destroy (sub_nc);
        return;
    }
    s_consumer_t c = { 0 };
    c.table = zhashx_new ();
    zhashx_set_destructor (c.table, s_record_destroy);
    double rate = 1000, period = 1e9 / rate;
    int64_t warm_ns = 500000000, window_ns = bench_window_ns (3.0);
    uint64_t total = (uint64_t) (rate * (double) (warm_ns + window_ns) / 1e9);
    int64_t t0 = bench_now_ns () + 100000000;
    c.measure_from = t0 + warm_ns;
    jsSubOptions so;
    jsSubOptions_Init (&so);
    so.Config.AckPolicy = js_AckNone;
    so.Config.DeliverPolicy = js_DeliverNew;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_Subscribe (&sub, sub_js, "tf.lat", s_on_msg, &c, NULL, &so, &jerr);
    if (s != NATS_OK) {
        bench_note ("nats subscribe: %s", natsStatus_GetText (s));
        zhashx_destroy (&c.table);
        jsCtx_Destroy (js);
        jsCtx_Destroy (sub_js);
        natsConnection_Destroy (nc);
        natsConnection_Destroy (sub_nc);
        return;
    }
    uint8_t buf[8192];
    long slack = bench_slack_tight ();
    for (uint64_t n = 0; n < total; n++) {
        int64_t due = t0 + (int64_t) ((double) n * period);
        bench_sleep_until (due);
        atomic_store_explicit (&s_due.slot[n], due, memory_order_relaxed);
        int size = s_payload (buf, sizeof buf, n, (uint32_t) (n % BENCH_IDS_MAX));
        s = js_PublishAsync (js, "tf.lat", buf, size, NULL);
        if (s != NATS_OK) {
            bench_note ("nats async publish: %s", natsStatus_GetText (s));
            break;
        }
    }
    bench_slack_restore (slack);
    jsPubOptions po;
    jsPubOptions_Init (&po);
    po.MaxWait = 10000;
    js_PublishAsyncComplete (js, &po);
    int64_t deadline = bench_now_ns () + 10000000000LL;
    while (atomic_load (&c.got) < total && bench_now_ns () < deadline)
        bench_sleep_ms (5);
    natsSubscription_Unsubscribe (sub);
    natsSubscription_Destroy (sub);
    if (atomic_load (&c.got) < total)
        bench_note ("nats: the consumer got %" PRIu64 " of %" PRIu64 " messages",
                    (uint64_t) atomic_load (&c.got), total);
    bench_lat_put (&c.lat, "nats.consumer");
    bench_lat_free (&c.lat);
    zhashx_destroy (&c.table);
    jsCtx_Destroy (js);
    jsCtx_Destroy (sub_js);
    natsConnection_Destroy (nc);
    natsConnection_Destroy (sub_nc);
}

void bench_nats_run (int run)
{
    s_nats_t server;
    if (s_start (&server) == 0) {
        natsConnection *nc = s_connect (server.url);
        if (nc && s_stream (nc) == 0) {
            s_serial (nc);
            s_async (&server);
            s_consumer (&server);
        }
        if (nc)
            natsConnection_Destroy (nc);
    }
    bench_peer_stop (&server.peer);
}
