/*  tf_server — lifecycle, heartbeats and housekeeping of techfeed-ingestd.
    Writes are in tf_ingest.c, reads in tf_sync.c.
*/
#include "tf_log.h"
#include "tf_server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

/*  Largest message the events socket accepts: subscriptions, and the
    handshake (a CURVE INITIATE is a few hundred bytes, so not less). */
#define TF_SUBSCRIPTION_MAX 4096

/*  WAL pages (4 KiB) past which the writer checkpoints between groups, so
    the next commit rewinds the WAL. Under steady writes the checkpointer
    thread never finds the WAL fully copied at the moment a write starts,
    so only this rewinds it. The file keeps its size between rounds
    (journal_size_limit), so commits overwrite WAL space instead of
    growing the file, which would double their fdatasync.

    32 MiB: the checkpointer has copied nearly all of it by then (it is
    kicked at each step of the last 4 MiB, at any rate), so the writer's
    own checkpoint (under the store's lock, with two fsyncs) is short and
    rare. At 4 MiB it came every 0.3 s at 1k puts/s: ack p99 1.41-1.64 ms
    there, 1.14-1.21 ms with 32 MiB (techfeed-bench --only techfeed.sync,
    medians of 3, same hour). At 1k puts/s, when the checkpointer ran on
    its timer only, the writer's fdatasync of the database file alone took
    2.6-3.3 ms; with the kicks its whole checkpoint takes 1.2-1.6 ms, and
    the 1-view p99.9 went from 3.85-3.88 ms to 2.14-3.09 ms (sessions 5
    and 6, docs/bench/RESULTS.md). */
#define TF_WAL_PAGES_MAX 8192 /* 32.2 MiB with frame headers: --wal-reserve's 36 cover it */
#define TF_WAL_PAGES_KICK 256 /* the checkpointer copies each such step, */
#define TF_GROUP_BUSY 8       /* when the groups are this large (a queue), */
#define TF_WAL_PAGES_PREPARE (TF_WAL_PAGES_MAX - 1024) /* and at any rate past this */
#define TF_REQUESTS_ARENA_FIRST (256u << 10)           /* a group of small puts decodes into this */
#define TF_REQUESTS_ARENA_KEEP (8u << 20)              /* kept between groups, at most */
#define TF_LAG_BATCHES 8 /* the loop's batches per turn while writes wait for records */

/*  Binds `socket` to each comma-separated endpoint; the bound endpoints
    (ports resolved when given as '*') are appended to `bound`. */
static int s_bind_all (zsock_t *socket, const char *name, const char *endpoints, char *bound,
                       size_t bound_size)
{
    char *list = strdup (endpoints);
    char *save = NULL;
    int rc = 0;
    //  Only then: with it a wildcard binds IPv6, which a host may lack.
    //  (A bracket elsewhere is CZMQ's port range, tcp://127.0.0.1:![a-b].)
    if (strstr (endpoints, "tcp://["))
        zsock_set_ipv6 (socket, 1);
    for (char *ep = strtok_r (list, ",", &save); ep; ep = strtok_r (NULL, ",", &save)) {
        if (zsock_bind (socket, "%s", ep) == -1) {
            tf_error ("cannot bind %s socket to %s: %s", name, ep, zmq_strerror (zmq_errno ()));
            rc = -1;
            break;
        }
        char *last = zsock_last_endpoint (socket);
        size_t used = strlen (bound);
        snprintf (bound + used, bound_size - used, "%s%s", used ? "," : "", last);
        zstr_free (&last);
    }
    free (list);
    return rc;
}

/*  http://HOST:PORT of the HTTP endpoint as bound: the port the system
    picked for 0, 0.0.0.0 for an empty host (all IPv4 interfaces). */
static void s_http_url (const tf_server_t *self, char *out, size_t size)
{
    const char *addr = self->config->http_addr;
    int host_len = (int) (strrchr (addr, ':') - addr); // tf_http_new took it: there is one
    snprintf (out, size, "http://%.*s:%d", host_len ? host_len : 7, host_len ? addr : "0.0.0.0",
              tf_http_port (self->http));
}

/*  The endpoints file lets a test or a supervisor find ports bound as '*'.
    Written to a temporary name and renamed, so readers never see half. */
static int s_write_endpoints (tf_server_t *self, const char *ingest, const char *events,
                              const char *sync)
{
    const char *path = self->config->endpoints_file;
    char tmp[4096];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    FILE *file = fopen (tmp, "w");
    if (!file)
        return -1;
    fprintf (file, "ingest=%s\nevents=%s\nsync=%s\n", ingest, events, sync);
    if (self->http) {
        char url[300];
        s_http_url (self, url, sizeof url);
        fprintf (file, "http=%s\n", url);
    }
    if (fclose (file) != 0 || rename (tmp, path) != 0)
        return -1;
    struct stat written;
    self->endpoints_written = stat (path, &written) == 0;
    self->endpoints_ino = self->endpoints_written ? written.st_ino : 0;
    self->endpoints_dev = self->endpoints_written ? written.st_dev : 0;
    return 0;
}

/*  High-water file beside the database: "epoch head". If the database's
    head is below what this file says was served, the database went back in
    time (restored from a copy): the service takes a new epoch so clients
    resync instead of trusting sequences that now mean other changes. */
static void s_hwm_path (const tf_server_t *self, char *out, size_t size)
{
    snprintf (out, size, "%s.hwm", tf_store_path (self->store));
}

/*  One fixed-width line, rewritten in place: a pwrite per committed group
    is cheap, and a crash cannot leave half a rename behind. */
void tf_server_served (tf_server_t *self, uint64_t head)
{
    if (self->hwm_fd < 0 || head == self->hwm_written)
        return;
    char line[64];
    int n = snprintf (line, sizeof line, "%s %020" PRIu64 "\n", self->epoch, head);
    if (pwrite (self->hwm_fd, line, (size_t) n, 0) != n)
        tf_warn ("cannot write the high-water file: %s", strerror (errno));
    else
        self->hwm_written = head;
}

static int s_hwm_check (tf_server_t *self)
{
    char path[4096], epoch[64] = "";
    uint64_t served = 0;
    s_hwm_path (self, path, sizeof path);
    FILE *file = fopen (path, "r");
    if (!file)
        return 0;
    int fields = fscanf (file, "%63s %" SCNu64, epoch, &served);
    fclose (file);
    if (fields != 2)
        return 0;
    //  Another epoch than the one served last: a copy from before an epoch
    //  change (the same old backup restored twice) or another database.
    //  Its views may hold positions past its head too.
    if (strcmp (epoch, self->epoch) != 0)
        tf_warn ("database epoch %s is not %s, the one served last (up to %" PRIu64 "): a copy "
                 "from before that epoch, or another database; starting a new epoch",
                 self->epoch, epoch, served);
    else if (served > self->head)
        tf_warn ("database head %" PRIu64 " is below the %" PRIu64 " already served in epoch %s: "
                 "it was restored from an older copy; starting a new epoch",
                 self->head, served, self->epoch);
    else
        return 0;
    if (tf_store_new_epoch (self->store)) {
        tf_error ("cannot change the epoch: %s", tf_store_errstr (self->store));
        return -1;
    }
    snprintf (self->epoch, sizeof self->epoch, "%s", tf_store_epoch (self->store));
    return 0;
}

/*  Gauges for /metrics that only the server thread can read. */
static void s_update_gauges (tf_server_t *self, const tf_store_state_t *state)
{
    tf_metrics_t *m = &self->metrics;
    atomic_store (&m->head, state->head_sequence);
    atomic_store (&m->records, state->record_count);
    atomic_store (&m->records_behind, state->head_sequence - state->applied_sequence);
    atomic_store (&m->index_bytes, state->index_bytes);
    atomic_store (&m->cursors, tf_sync_open_cursors (self));
    uint64_t bytes = 0;
    const char *suffixes[] = { "", "-wal" };
    for (int i = 0; i < 2; i++) {
        char path[4200];
        struct stat st;
        snprintf (path, sizeof path, "%s%s", tf_store_path (self->store), suffixes[i]);
        if (stat (path, &st) == 0)
            bytes += (uint64_t) st.st_size;
    }
    atomic_store (&m->db_bytes, bytes);
}

static void s_heartbeat (tf_server_t *self)
{
    tf_store_state_t state;
    if (tf_store_state (self->store, &state)) {
        tf_error ("cannot read state for the heartbeat: %s", tf_store_errstr (self->store));
        return;
    }
    self->head = state.head_sequence;
    s_update_gauges (self, &state);
    Techfeed__SectorHead heads[TF_SECTOR_MAX], *head_ptrs[TF_SECTOR_MAX];
    Techfeed__Heartbeat beat = TECHFEED__HEARTBEAT__INIT;
    beat.epoch = self->epoch;
    beat.has_head_sequence = beat.has_interval_ms = beat.has_timestamp_ms = 1;
    beat.has_log_first_sequence = 1;
    beat.head_sequence = state.head_sequence;
    beat.interval_ms = (uint32_t) self->config->heartbeat_ms;
    beat.timestamp_ms = tf_now_ms ();
    beat.log_first_sequence = state.log_first_sequence;
    beat.n_sector_heads = tf_sector_heads_fill (state.sector_heads, heads, head_ptrs);
    beat.sector_heads = head_ptrs;
    size_t size;
    uint8_t *data = tf_wire_pack (&beat.base, &size);
    void *handle = zsock_resolve (self->events);
    zmq_send (handle, TF_HEARTBEAT_TOPIC, strlen (TF_HEARTBEAT_TOPIC), ZMQ_SNDMORE);
    zmq_send (handle, data, size, 0);
    free (data);
    atomic_fetch_add (&self->metrics.heartbeats, 1);
    tf_server_served (self, self->head);
}

double tf_server_free_bytes (const tf_server_t *self)
{
    struct statvfs fs;
    if (statvfs (tf_store_path (self->store), &fs) != 0)
        return -1;
    return (double) fs.f_bavail * (double) fs.f_frsize;
}

/*  Not ready since a write failed: tried again once a heartbeat, so that
    /readyz says 200 when writes would succeed again, not only after a
    writer dared one. After a full disk, only once a request's worth of
    space has come back: a one-page probe can fit in WAL space written
    before and succeed while a write group would not. */
static void s_probe_readiness (tf_server_t *self)
{
    if (atomic_load (&self->metrics.ready))
        return;
    if (self->full_free_bytes >= 0 &&
        tf_server_free_bytes (self) < self->full_free_bytes + (double) self->config->max_frame)
        return;
    if (tf_store_probe_write (self->store) == 0) {
        atomic_store (&self->metrics.ready, 1);
        tf_info ("a write succeeds again: ready");
    }
}

/*  Says once per new failure that the records table is behind the log
    (the applier retries on its own; reads merge the log meanwhile). */
static void s_check_applier (tf_server_t *self)
{
    char err[512];
    uint64_t failures = self->applier ? tf_applier_failures (self->applier, err, sizeof err) : 0;
    if (failures > self->applier_failures)
        tf_warn ("records table behind the log by %" PRIu64 " change(s): %s",
                 tf_store_unapplied (self->store), err);
    self->applier_failures = failures;
}

/*  Whether the next write group may go: writes wait while the records
    table is more than --apply-lag-max changes behind the log. Under a bulk
    load the loop would otherwise take the connection from the applier
    group after group, and the backlog would grow without end: a snapshot
    holds the backlog in memory, and plain-SQL readers see records that
    old. So the loop applies batches itself (a few, then it serves the
    sync socket) until the table is close enough. A batch that fails holds
    no write for a second: the applier reports it and retries, and the
    log is all that writes need. */
static bool s_records_close_enough (tf_server_t *self)
{
    uint64_t max = (uint64_t) self->config->apply_lag_max;
    if (max == 0 || tf_store_unapplied (self->store) <= max ||
        tf_now_ms () < self->lag_bound_from_ms)
        return true;
    atomic_fetch_add (&self->metrics.writes_held, 1);
    for (int batch = 0; batch < TF_LAG_BATCHES && tf_store_unapplied (self->store) > max; batch++)
        if (tf_store_apply (self->store, (size_t) self->config->apply_max)) {
            tf_warn ("records table behind the log by %" PRIu64 " change(s), writes go on: %s",
                     tf_store_unapplied (self->store), tf_store_errstr (self->store));
            self->lag_bound_from_ms = tf_now_ms () + 1000;
            return true;
        }
    return tf_store_unapplied (self->store) <= max;
}

/*  After a write group: the most the records table was behind, for /metrics. */
static void s_note_lag (tf_server_t *self)
{
    uint64_t behind = tf_store_unapplied (self->store);
    if (behind > atomic_load (&self->metrics.records_behind_peak))
        atomic_store (&self->metrics.records_behind_peak, behind);
}

/*  One step of each housekeeping task (the store bounds a step's rows).
    True when a step was full: the loop runs the next one on its next
    turn, after the writes waiting meanwhile. */
static bool s_maintenance (tf_server_t *self)
{
    const tf_server_config_t *config = self->config;
    int64_t now = tf_now_ms ();
    int expired = tf_store_request_expire (self->store, now - config->idempotency_ms,
                                           (uint64_t) config->idempotency_max);
    if (expired < 0)
        tf_warn ("cannot expire request ids: %s", tf_store_errstr (self->store));
    int trimmed = 0;
    if (config->log_keep || config->log_max_age_ms)
        trimmed = tf_store_trim (self->store, (uint64_t) config->log_keep,
                                 config->log_max_age_ms ? now - config->log_max_age_ms : 0);
    if (trimmed < 0)
        tf_warn ("cannot trim the log: %s", tf_store_errstr (self->store));
    return expired == 1 || trimmed == 1;
}

static zsock_t *s_socket (int type, const tf_server_config_t *config)
{
    zsock_t *socket = zsock_new (type);
    assert (socket);
    zsock_set_linger (socket, 1000);
    if (type == ZMQ_PUB) {
        zsock_set_sndhwm (socket, (int) config->pub_hwm);
        //  What a PUB receives is subscriptions: a topic is a sector slug
        //  or "heartbeat", so a long one is hostile and drops its peer.
        zsock_set_maxmsgsize (socket, TF_SUBSCRIPTION_MAX);
    } else
        zsock_set_maxmsgsize (socket, config->max_frame);
    //  A peer whose host or network vanished sends no FIN: only ZeroMQ's
    //  own PINGs, unanswered, end its connection (and its cursors) before
    //  TCP gives up, minutes later.
    if (config->peer_timeout_ms > 0) {
        int timeout = (int) config->peer_timeout_ms;
        zsock_set_heartbeat_ivl (socket, timeout / 3 > 0 ? timeout / 3 : 1);
        zsock_set_heartbeat_timeout (socket, timeout);
    }
    return socket;
}

static int s_ensure_dir (const char *dir)
{
    if (mkdir (dir, 0750) == 0 || errno == EEXIST)
        return 0;
    tf_error ("cannot create data directory %s: %s", dir, strerror (errno));
    return -1;
}

static void s_server_destroy (tf_server_t **self_p)
{
    tf_server_t *self = *self_p;
    if (!self)
        return;
    if (self->hwm_fd >= 0)
        close (self->hwm_fd);
    //  Endpoints of a service that stopped would send clients nowhere; a
    //  file another service has written since is that one's
    struct stat now;
    if (self->endpoints_written && stat (self->config->endpoints_file, &now) == 0 &&
        now.st_ino == self->endpoints_ino && now.st_dev == self->endpoints_dev)
        unlink (self->config->endpoints_file);
    tf_http_destroy (&self->http);
    zactor_destroy (&self->monitor);
    tf_auth_stop (self);
    tf_sync_unwatch_peers (self);
    tf_sync_destroy (&self->cursors);
    tf_arena_destroy (&self->requests);
    zsock_destroy (&self->ingest);
    zsock_destroy (&self->events);
    zsock_destroy (&self->sync);
    tf_checkpointer_destroy (&self->checkpointer);
    tf_applier_destroy (&self->applier);
    //  Plain-SQL readers of the file find records complete after a stop.
    if (self->store && tf_store_apply (self->store, 0))
        tf_warn ("records table left behind the log: %s", tf_store_errstr (self->store));
    tf_store_destroy (&self->store); /* last close checkpoints the WAL */
    free (self);
    *self_p = NULL;
}

/*  /healthz, /readyz and /metrics, on the HTTP thread: atomics only. */
static char *s_http_handler (const char *path, int *status, const char **content_type, void *arg)
{
    tf_metrics_t *metrics = (tf_metrics_t *) arg;
    if (streq (path, "/healthz"))
        return strdup ("ok\n");
    if (streq (path, "/readyz")) {
        bool ready = atomic_load (&metrics->ready);
        *status = ready ? 200 : 503;
        return strdup (ready ? "ready\n" : "not ready: the last write to the database failed\n");
    }
    if (streq (path, "/metrics")) {
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        return tf_metrics_render (metrics);
    }
    return NULL;
}

/*  Subscriber count from the events socket's connect/disconnect events. */
static void s_monitor_start (tf_server_t *self)
{
    self->monitor = zactor_new (zmonitor, self->events);
    zstr_sendx (self->monitor, "LISTEN", "ACCEPTED", NULL);
    zstr_sendx (self->monitor, "LISTEN", "DISCONNECTED", NULL);
    zstr_sendx (self->monitor, "START", NULL);
    zsock_wait (self->monitor);
}

static void s_monitor_event (tf_server_t *self)
{
    zmsg_t *msg = zmsg_recv (self->monitor);
    char *event = msg ? zmsg_popstr (msg) : NULL;
    if (event && streq (event, "ACCEPTED"))
        atomic_fetch_add (&self->metrics.subscribers, 1);
    else if (event && streq (event, "DISCONNECTED") && atomic_load (&self->metrics.subscribers))
        atomic_fetch_sub (&self->metrics.subscribers, 1);
    zstr_free (&event);
    zmsg_destroy (&msg);
}

/*  WAL space written ahead (--wal-reserve), or a warning: the service
    runs without it, each commit that grows the WAL a little slower. On a
    small disk it takes at most a quarter of the free space, which a
    quiet service might not have filled with its WAL in a long time. */
static void s_reserve_wal (tf_server_t *self)
{
    int64_t bytes = self->config->wal_reserve << 20;
    if (!bytes)
        return;
    const char *path = tf_store_path (self->store);
    double free_bytes = tf_server_free_bytes (self);
    if (free_bytes >= 0 && free_bytes < 4.0 * (double) bytes)
        tf_warn ("%s: %.1f MiB free: the WAL is not written ahead (--wal-reserve takes at most "
                 "a quarter of the free space)",
                 path, free_bytes / (1 << 20));
    else if (tf_store_reserve_wal (self->store, bytes))
        tf_warn ("%s; the WAL is not written ahead", tf_store_errstr (self->store));
}

/*  Whether `endpoint` is one the service can bind as meant: ipc:// or
    inproc://, or tcp://HOST:PORT whose port is a number up to 65535, * or
    CZMQ's !-range (libzmq binds other ports to something else, silently). */
static bool s_endpoint_ok (const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) == 0)
        return endpoint[6] != 0;
    if (strncmp (endpoint, "inproc://", 9) == 0)
        return endpoint[9] != 0;
    const char *colon = strrchr (endpoint, ':');
    if (strncmp (endpoint, "tcp://", 6) != 0 || colon < endpoint + 7)
        return false;
    const char *port = colon + 1;
    if (streq (port, "*") || port[0] == '!')
        return true;
    char *end;
    long number = strtol (port, &end, 10);
    return *port >= '0' && *port <= '9' && *end == 0 && number <= 65535;
}

static bool s_endpoint_bad (const char *endpoint)
{
    return !s_endpoint_ok (endpoint);
}

/*  The endpoints of one socket's setting, each checked. */
static int s_check_endpoints (const char *setting, const char *list, char *err, size_t errlen)
{
    char bad[256];
    if (!tf_endpoint_find (list, s_endpoint_bad, bad, sizeof bad))
        return 0;
    snprintf (err, errlen,
              "%s: '%s' is not an endpoint to bind: tcp://HOST:PORT (PORT 0-65535 or *), "
              "ipc://PATH or inproc://NAME",
              setting, bad);
    return -1;
}

int tf_server_check_config (const tf_server_config_t *config, char *err, size_t errlen)
{
    if (s_check_endpoints ("--ingest (TECHFEED_INGEST)", config->ingest, err, errlen) ||
        s_check_endpoints ("--events (TECHFEED_EVENTS)", config->events, err, errlen) ||
        s_check_endpoints ("--sync (TECHFEED_SYNC)", config->sync, err, errlen))
        return -1;
    char why[400];
    if (config->http_addr && *config->http_addr &&
        tf_http_check_address (config->http_addr, why, sizeof why)) {
        snprintf (err, errlen, "--http-addr (TECHFEED_HTTP_ADDR): %s", why);
        return -1;
    }
    return tf_auth_check_config (config, err, errlen);
}

static tf_server_t *s_server_new (const tf_server_config_t *config)
{
    char err[512];
    //  Before anything is created: a bad setting leaves no files behind
    if (tf_server_check_config (config, err, sizeof err)) {
        tf_error ("%s", err);
        return NULL;
    }
    tf_auth_warn_exposure (config);
    tf_server_t *self = (tf_server_t *) zmalloc (sizeof *self);
    //  Start-up (opening the database, writing the WAL ahead) counts in
    //  the uptime, as it does in the store's lock accounts.
    atomic_store (&self->metrics.started_ms, tf_now_ms ());
    self->config = config;
    self->cursors = tf_sync_new ();
    self->requests = tf_arena_new (TF_REQUESTS_ARENA_FIRST, TF_REQUESTS_ARENA_KEEP);
    self->hwm_written = UINT64_MAX;
    self->hwm_fd = -1;
    self->full_free_bytes = -1;
    self->wal_checkpoint_at = TF_WAL_PAGES_MAX;
    char path[4096];
    if (config->db && *config->db)
        snprintf (path, sizeof path, "%s", config->db);
    else {
        if (s_ensure_dir (config->data_dir)) {
            s_server_destroy (&self);
            return NULL;
        }
        snprintf (path, sizeof path, "%s/techfeed.db", config->data_dir);
    }
    self->store = tf_store_new (path, err, sizeof err);
    if (!self->store) {
        tf_error ("cannot open the database: %s", err);
        s_server_destroy (&self);
        return NULL;
    }
    tf_store_state_t state;
    if (tf_store_state (self->store, &state)) {
        tf_error ("cannot read %s: %s", path, tf_store_errstr (self->store));
        s_server_destroy (&self);
        return NULL;
    }
    snprintf (self->epoch, sizeof self->epoch, "%s", state.epoch);
    self->head = state.head_sequence;
    s_reserve_wal (self);
    self->applier = tf_applier_new (self->store, (size_t) self->config->apply_max);
    if (!self->applier)
        tf_warn ("the records table follows the log only at snapshots and stop: no thread");
    self->checkpointer = tf_checkpointer_new (path, 1000);
    if (self->checkpointer)
        tf_store_set_autocheckpoint (self->store, 0);
    else
        tf_warn ("checkpoints stay on the commit path: cannot open %s for a checkpointer", path);
    if (s_hwm_check (self)) {
        s_server_destroy (&self);
        return NULL;
    }
    char hwm[4200];
    s_hwm_path (self, hwm, sizeof hwm);
    self->hwm_fd = open (hwm, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (self->hwm_fd < 0)
        tf_warn ("cannot open %s: %s (a restored older copy would go unnoticed)", hwm,
                 strerror (errno));
    tf_server_served (self, self->head);
    self->ingest = s_socket (ZMQ_ROUTER, config);
    //  Receives never wait: a group takes requests until one is not there,
    //  without asking the socket's events before each (two system calls).
    zsock_set_rcvtimeo (self->ingest, 0);
    self->events = s_socket (ZMQ_PUB, config);
    self->sync = s_socket (ZMQ_ROUTER, config);
    if (tf_sync_watch_peers (self) || tf_auth_start (self)) {
        s_server_destroy (&self);
        return NULL;
    }
    char ingest[1024] = "", events[1024] = "", sync[1024] = "";
    if (s_bind_all (self->ingest, "ingest", config->ingest, ingest, sizeof ingest) ||
        s_bind_all (self->events, "events", config->events, events, sizeof events) ||
        s_bind_all (self->sync, "sync", config->sync, sync, sizeof sync)) {
        s_server_destroy (&self);
        return NULL;
    }
    s_monitor_start (self);
    if (config->http_addr && *config->http_addr) {
        self->http =
            tf_http_new (config->http_addr, s_http_handler, &self->metrics, err, sizeof err);
        if (!self->http) {
            tf_error ("%s", err);
            s_server_destroy (&self);
            return NULL;
        }
        char url[300];
        s_http_url (self, url, sizeof url);
        tf_info ("health and metrics on %s", url);
    }
    if (config->endpoints_file && *config->endpoints_file &&
        s_write_endpoints (self, ingest, events, sync)) {
        tf_error ("cannot write endpoints file %s: %s", config->endpoints_file, strerror (errno));
        s_server_destroy (&self);
        return NULL;
    }
    atomic_store (&self->metrics.ready, 1);
    char digest[17];
    tf_digest_format (state.digest, digest);
    tf_info ("techfeed-ingestd %s: database %s epoch %s head %" PRIu64 " records %" PRIu64
             " digest %s",
             TF_VERSION, path, self->epoch, state.head_sequence, state.record_count, digest);
    tf_info ("listening: ingest %s, events %s, sync %s", ingest, events, sync);
    return self;
}

/*  Keeps the WAL short: past TF_WAL_PAGES_MAX the writer checkpoints
    what is left so that its next commit starts the WAL over. Under load
    (`busy`) the checkpointer thread copies the WAL as it grows, off this
    thread; at a low rate its syncs of the database file would only delay
    the writer's own (measured: serial put ack p99 +13 %), so it is asked
    only in the round's last steps, before the writer's checkpoint, which
    then finds little left to copy and sync. */
static void s_tend_wal (tf_server_t *self, bool busy)
{
    int pages = tf_store_wal_pages (self->store);
    atomic_store (&self->metrics.wal_frames, (uint64_t) pages);
    int step = pages / TF_WAL_PAGES_KICK; // falls back to 0 when the WAL starts over
    int prepare = TF_WAL_PAGES_PREPARE / TF_WAL_PAGES_KICK;
    if (pages > self->wal_checkpoint_at) {
        atomic_fetch_add (&self->metrics.wal_checkpoints, 1);
        if (tf_store_checkpoint (self->store))
            tf_warn ("%s", tf_store_errstr (self->store));
        //  Frames a reader (a snapshot) still needs stay, and the WAL
        //  cannot start over: try again a step later, not at every group.
        if (tf_store_wal_pages (self->store) > 0)
            self->wal_checkpoint_at = pages + TF_WAL_PAGES_KICK;
    } else if (self->checkpointer && step > self->wal_step && (busy || step >= prepare))
        tf_checkpointer_kick (self->checkpointer);
    self->wal_step = step;
    if (pages <= TF_WAL_PAGES_MAX)
        self->wal_checkpoint_at = TF_WAL_PAGES_MAX;
}

/*  The connection lock's accounts into /metrics (the HTTP thread never
    reads the store), once per loop turn like the WAL's size. */
static void s_copy_lock_stats (tf_server_t *self)
{
    tf_store_lock_stats_t stats;
    tf_store_lock_stats (self->store, &stats);
    atomic_store (&self->metrics.lock_held_ns[0], stats.writer_held_ns);
    atomic_store (&self->metrics.lock_held_ns[1], stats.applier_held_ns);
    atomic_store (&self->metrics.lock_wait_ns, stats.writer_wait_ns);
}

/*  The loop: ingest first (writers wait on fsync), then sync requests,
    heartbeats on time, housekeeping now and then. Returns when `pipe`
    says $TERM or, without a pipe, when a signal interrupts. */
static void s_server_loop (tf_server_t *self, zsock_t *pipe)
{
    zpoller_t *poller = zpoller_new (self->ingest, self->sync, self->monitor, tf_sync_reader (self),
                                     tf_sync_peers (self), NULL);
    if (pipe)
        zpoller_add (poller, pipe);
    int64_t next_beat = 0, next_maintenance = tf_now_ms () + self->config->maintenance_ms;
    while (true) {
        int64_t now = tf_now_ms ();
        if (now >= next_beat) {
            s_heartbeat (self);
            tf_sync_expire (self, now);
            next_beat = now + self->config->heartbeat_ms;
            s_check_applier (self);
            s_probe_readiness (self);
        }
        if (now >= next_maintenance)
            next_maintenance = s_maintenance (self) ? now : now + self->config->maintenance_ms;
        int64_t wake = next_maintenance < next_beat ? next_maintenance : next_beat;
        void *which = zpoller_wait (poller, (int) (wake > now ? wake - now : 0));
        if (zpoller_terminated (poller))
            break;
        if (which == pipe && pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
        if (which == self->monitor)
            s_monitor_event (self);
        if (which == tf_sync_peers (self))
            tf_sync_forget_peers (self);
        //  Drain both sockets on every wake-up, writes first; then send
        //  the chunks the reader has read meanwhile.
        bool busy = (zsock_events (self->ingest) & ZMQ_POLLIN) && s_records_close_enough (self) &&
                    tf_ingest_handle (self) >= TF_GROUP_BUSY;
        s_note_lag (self);
        s_tend_wal (self, busy);
        s_copy_lock_stats (self);
        if (zsock_events (self->sync) & ZMQ_POLLIN)
            tf_sync_handle (self);
        tf_sync_take_chunks (self);
    }
    tf_ingest_refuse_waiting (self);
    tf_sync_refuse_waiting (self);
    zpoller_destroy (&poller);
}

static void s_apply_log_settings (const tf_server_config_t *config)
{
    int level = tf_log_level_from_name (config->log_level);
    int format = tf_log_format_from_name (config->log_format);
    if (level >= 0)
        tf_log_set_level ((tf_log_level_t) level);
    if (format >= 0)
        tf_log_set_format ((tf_log_format_t) format);
}

int tf_server_run (const tf_server_config_t *config)
{
    s_apply_log_settings (config);
    tf_server_t *self = s_server_new (config);
    if (!self)
        return -1;
    s_server_loop (self, NULL);
    tf_info ("stopping: %" PRIu64 " changes published, head %" PRIu64,
             (uint64_t) atomic_load (&self->metrics.published), self->head);
    s_server_destroy (&self);
    tf_info ("stopped");
    return 0;
}

void tf_server_actor (zsock_t *pipe, void *args)
{
    const tf_server_config_t *config = (const tf_server_config_t *) args;
    s_apply_log_settings (config);
    tf_server_t *self = s_server_new (config);
    zsock_signal (pipe, self ? 0 : 1);
    if (!self)
        return;
    s_server_loop (self, pipe);
    s_server_destroy (&self);
}
