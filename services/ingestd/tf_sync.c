/*  Sync: snapshots, catch-ups, gets and status on the sync ROUTER.

    Snapshots and catch-ups are cursors: each holds a read transaction on a
    connection of its own, and the client pulls one bounded chunk per
    request (SYNC_NEXT), so a 100k-record snapshot is never built in memory
    and writers go on meanwhile (WAL).

    Cursors are opened and their chunks read ahead by the reader, an actor
    whose thread runs at a lower priority (TF_READER_NICE): the loop thread
    stays free for writes, and when the cores are busy the scheduler lets
    writes go first (docs/bench/RESULTS.md measures what that does to the
    ack p99 while snapshots are served). The loop lends the reader a cursor
    (up to TF_LENT_MAX at once, the rest queue) and gets it back with the
    next chunk complete; a request for a chunk not yet complete waits in
    its cursor and is answered then. The first lend opens the cursor's
    read transaction (a connection, and a snapshot's unapplied tail).

    A client whose connection ends (its socket closed, its process gone,
    killed or not) loses its cursors at once: left to --cursor-idle-ms,
    their read transactions would keep the WAL from starting over. The
    sync socket's monitor reports each disconnect with the connection's
    descriptor, which every request carries (ZMQ_SRCFD). The kernel may
    give that descriptor to the next connection, but ZeroMQ reports the
    disconnect before it closes the descriptor, so the loop reads the
    monitor before each request: a request on a reused descriptor is then
    always handled after the disconnect of the connection before it.

    Every reply carries its request's request_id when the request had a
    valid one (an invalid one is INVALID), chunks answered later from a
    cursor's waiting requests too: a request answered at once overtakes
    those, and a client that pipelines tells its replies apart by it. At
    shutdown, requests still waiting for chunks, and those not read yet,
    are answered UNAVAILABLE before the cursors go.
*/
#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tf_log.h"
#include "tf_server_int.h"
#include "tf_validate.h"

#define TF_CHUNK_DEFAULT 500
#define TF_CHUNK_BYTES (1024 * 1024) /* a chunk stops growing past this */
#define TF_GET_MAX 1000
#define TF_ASKERS_MAX 8   /* requests for chunks waiting on one cursor */
#define TF_READER_NICE 10 /* the reader thread's nice value: writes come first */
#define TF_LENT_MAX 2     /* cursors lent at once (the rest queue): the reader's pipe never fills */

/*  A growing byte buffer for a snapshot chunk. */
typedef struct {
    uint8_t *data;
    size_t size, used;
} s_bytes_t;

/*  A cursor. While `reading`, the reader thread owns `cursor`, the
    `next` fields and `begun`/`begin_rc`; the loop thread owns the rest. */
typedef struct {
    uint64_t id;                         /* what the client sends back in SYNC_NEXT */
    void *handle;                        /* in tf_sync_t.cursors; NULL once closed */
    tf_store_cursor_t *cursor;           /* the read transaction */
    bool changes;                        /* catch-up (changes) or snapshot (records) */
    uint64_t since;                      /* catch-up: the client's position */
    uint32_t chunk;                      /* records per reply */
    int64_t last_used_ms;                /* for the idle timeout */
    uint64_t sent;                       /* items sent so far, for the log */
    s_bytes_t next;                      /* the next chunk, read ahead */
    size_t next_count;                   /* items in it */
    int next_rc;                         /* its last cursor result */
    bool begun;                          /* the reader has tried to open it ... */
    int begin_rc;                        /* ... with this result (tf_store_cursor_begin) */
    bool counted;                        /* the loop has logged and counted it open */
    bool reading;                        /* lent to the reader */
    void *queued;                        /* in tf_sync_t.queue, waiting to be lent */
    bool read_ahead;                     /* next is complete */
    tf_envelope_t askers[TF_ASKERS_MAX]; /* waiting, oldest first (identity, request_id) */
    size_t n_askers;
    int peer_fd; /* the connection that asked last (its descriptor), -1 unknown */
} s_cursor_t;

struct _tf_sync_t {
    zlistx_t *cursors; /* s_cursor_t, few (max_cursors) */
    uint64_t next_id;  /* cursor ids are not reused, across restarts either (random start) */
    zactor_t *reader;  /* fills chunks: s_reader_actor */
    size_t lent;       /* cursors the reader has, closed ones included */
    zlistx_t *queue;   /* s_cursor_t waiting to be lent, oldest first */
    zsock_t *peers;    /* PAIR: the sync socket's monitor, disconnects only */
};

static void s_cursor_destroy (void **item)
{
    s_cursor_t *cursor = (s_cursor_t *) *item;
    if (cursor) {
        tf_store_cursor_destroy (&cursor->cursor);
        free (cursor->next.data);
        for (size_t i = 0; i < cursor->n_askers; i++)
            tf_envelope_clear (&cursor->askers[i]);
        free (cursor);
        *item = NULL;
    }
}

static void s_reader_actor (zsock_t *pipe, void *args);

/*  A random cursor id below 2^62, not 0 (no cursor): a run opens far
    fewer cursors than would take it near another run's. */
static uint64_t s_random_id_start (void)
{
    zuuid_t *uuid = zuuid_new ();
    uint64_t id;
    memcpy (&id, zuuid_data (uuid), sizeof id);
    zuuid_destroy (&uuid);
    id &= (UINT64_C (1) << 62) - 1;
    return id ? id : 1;
}

tf_sync_t *tf_sync_new (void)
{
    tf_sync_t *self = (tf_sync_t *) zmalloc (sizeof *self);
    self->cursors = zlistx_new ();
    zlistx_set_destructor (self->cursors, s_cursor_destroy);
    //  Ids start at a random point of 2^62: a client's NEXT or CLOSE
    //  queued while the service restarts reaches the new run when its
    //  DEALER connects again, and must not take another client's cursor.
    //  (Time-based ids would repeat after the clock steps back.)
    self->next_id = s_random_id_start ();
    self->reader = zactor_new (s_reader_actor, NULL);
    assert (self->reader);
    self->queue = zlistx_new ();
    return self;
}

/*  Lends the cursor to the reader for its next chunk, or queues it when
    TF_LENT_MAX are lent already. */
static void s_lend (tf_sync_t *self, s_cursor_t *c)
{
    assert (!c->reading && !c->read_ahead && !c->queued);
    if (self->lent >= TF_LENT_MAX) {
        c->queued = zlistx_add_end (self->queue, c);
        return;
    }
    c->reading = true;
    self->lent++;
    zsock_send (self->reader, "sp", "READ", c);
}

/*  Takes back a cursor from the reader, its chunk complete; NULL when it
    was closed meanwhile (then it is gone). */
static s_cursor_t *s_cursor_returned (tf_sync_t *self)
{
    void *item = NULL;
    int rc;
    while ((rc = zsock_recv (self->reader, "p", &item)) != 0 && errno == EINTR)
        ; //  a second SIGTERM during the stop: the cursor is still to come
    if (rc != 0 || !item)
        return NULL;
    self->lent--;
    s_cursor_t *next = (s_cursor_t *) zlistx_first (self->queue);
    if (next) {
        zlistx_delete (self->queue, next->queued);
        next->queued = NULL;
        s_lend (self, next);
    }
    s_cursor_t *c = (s_cursor_t *) item;
    c->reading = false;
    if (!c->handle) {
        s_cursor_destroy (&item);
        return NULL;
    }
    c->read_ahead = true;
    return c;
}

void tf_sync_destroy (tf_sync_t **self_p)
{
    tf_sync_t *self = *self_p;
    if (self) {
        //  The reader ends the chunks it has before it hears $TERM.
        zlistx_purge (self->queue);
        for (size_t lent = self->lent; lent > 0; lent--)
            s_cursor_returned (self);
        zlistx_destroy (&self->queue);
        zactor_destroy (&self->reader);
        zlistx_destroy (&self->cursors);
        assert (!self->peers); // tf_sync_unwatch_peers first
        free (self);
        *self_p = NULL;
    }
}

void *tf_sync_reader (tf_server_t *self)
{
    return self->cursors->reader;
}

size_t tf_sync_open_cursors (tf_server_t *self)
{
    return zlistx_size (self->cursors->cursors);
}

/*  Frees the records a GET reply owns. The struct is the caller's. */
static void s_reply_clear (Techfeed__SyncReply *reply)
{
    for (size_t i = 0; i < reply->n_records; i++)
        techfeed__milestone__free_unpacked (reply->records[i], NULL);
    free (reply->records);
}

/*  A reply to the request of `envelope`, its request_id echoed (borrowed). */
static void s_reply_init (tf_server_t *self, const tf_envelope_t *envelope,
                          Techfeed__SyncReply *reply)
{
    techfeed__sync_reply__init (reply);
    reply->has_version = reply->has_code = 1;
    reply->version = TF_PROTOCOL_VERSION;
    reply->code = TECHFEED__ERROR_CODE__OK;
    reply->epoch = self->epoch;
    reply->request_id = envelope->request_id;
}

/*  An error reply with the formatted message; `refused`: logged too, as
    a request the service refuses (not a waiting one told its cursor went). */
static void s_error_reply_v (tf_server_t *self, const tf_envelope_t *envelope, bool refused,
                             Techfeed__ErrorCode code, const char *format, va_list args)
{
    char message[300];
    vsnprintf (message, sizeof message, format, args);
    if (refused)
        tf_info ("refused sync request: %s: %s", tf_error_name (code), message);
    Techfeed__SyncReply reply;
    s_reply_init (self, envelope, &reply);
    reply.code = code;
    reply.message = message;
    tf_envelope_reply (self->sync, envelope, &reply.base);
}

/*  Refuses the request of `envelope`, and logs why. */
static void s_reply_error (tf_server_t *self, const tf_envelope_t *envelope,
                           Techfeed__ErrorCode code, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    s_error_reply_v (self, envelope, true, code, format, args);
    va_end (args);
}

/*  Tells a request waiting on a cursor why it gets no chunk (the cursor
    went, or the service stops: logged once for all of them). */
static void s_tell_waiting (tf_server_t *self, const tf_envelope_t *envelope,
                            Techfeed__ErrorCode code, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    s_error_reply_v (self, envelope, false, code, format, args);
    va_end (args);
}

/*  Deletes the cursor; requests still waiting for its chunks learn why.
    One lent to the reader leaves the list now and is deleted when it
    comes back (s_cursor_returned). */
static void s_cursor_close (tf_server_t *self, void *handle, const char *why)
{
    s_cursor_t *c = (s_cursor_t *) zlistx_handle_item (handle);
    for (size_t i = 0; i < c->n_askers; i++)
        s_tell_waiting (self, &c->askers[i], TECHFEED__ERROR_CODE__NOT_FOUND,
                        "cursor %" PRIu64 " %s", c->id, why);
    c->handle = NULL;
    if (c->queued) {
        zlistx_delete (self->cursors->queue, c->queued);
        c->queued = NULL;
    }
    if (c->reading)
        zlistx_detach (self->cursors->cursors, handle);
    else
        zlistx_delete (self->cursors->cursors, handle);
}

/*  Why cursors are closed without being asked: each test says whether
    one is, by `arg`. */
typedef struct {
    const char *adjective; /* in the log: "closed <adjective> cursor" */
    const char *why;       /* to the requests still waiting for it */
    int reason;            /* TF_METRICS_CLOSE_* */
    bool (*test) (tf_server_t *self, const s_cursor_t *c, int64_t arg);
} s_doom_t;

static bool s_idle_at (tf_server_t *self, const s_cursor_t *c, int64_t now_ms)
{
    return now_ms - c->last_used_ms > self->config->cursor_idle_ms;
}

static bool s_asked_on (tf_server_t *self, const s_cursor_t *c, int64_t fd)
{
    (void) self;
    return c->peer_fd == fd;
}

static const s_doom_t s_idle = { "idle", "was idle too long", TF_METRICS_CLOSE_IDLE, s_idle_at };
static const s_doom_t s_orphaned = { "orphaned", "lost its client (it disconnected)",
                                     TF_METRICS_CLOSE_DISCONNECTED, s_asked_on };

static void s_close_doomed (tf_server_t *self, const s_doom_t *doom, int64_t arg)
{
    zlistx_t *list = self->cursors->cursors;
    void *handle = zlistx_first (list) ? zlistx_cursor (list) : NULL;
    while (handle) {
        s_cursor_t *c = (s_cursor_t *) zlistx_handle_item (handle);
        void *next = zlistx_next (list) ? zlistx_cursor (list) : NULL;
        if (doom->test (self, c, arg)) {
            tf_info ("closed %s cursor %" PRIu64 " after %" PRIu64 " items", doom->adjective, c->id,
                     c->sent);
            s_cursor_close (self, handle, doom->why);
            atomic_fetch_add (&self->metrics.cursors_closed[doom->reason], 1);
        }
        handle = next;
    }
}

void tf_sync_expire (tf_server_t *self, int64_t now_ms)
{
    s_close_doomed (self, &s_idle, now_ms);
}

// --------------------------------------------------------------- peers

int tf_sync_watch_peers (tf_server_t *self)
{
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "inproc://techfeed-sync-peers-%p", (void *) self);
    if (zmq_socket_monitor (zsock_resolve (self->sync), endpoint, ZMQ_EVENT_DISCONNECTED)) {
        tf_error ("cannot monitor the sync socket: %s", zmq_strerror (zmq_errno ()));
        return -1;
    }
    //  No high-water mark: the monitor's sends block ZeroMQ's I/O thread
    //  when the queue is full, until the loop reads it.
    self->cursors->peers = zsock_new (ZMQ_PAIR);
    if (self->cursors->peers)
        zsock_set_rcvhwm (self->cursors->peers, 0);
    if (!self->cursors->peers || zsock_connect (self->cursors->peers, "%s", endpoint)) {
        tf_error ("cannot connect to the sync socket's monitor");
        return -1;
    }
    return 0;
}

void tf_sync_unwatch_peers (tf_server_t *self)
{
    //  The monitor stops before its reader goes: with no reader, ZeroMQ's
    //  I/O thread would block for good in the send of the next disconnect.
    if (self->sync)
        zmq_socket_monitor (zsock_resolve (self->sync), NULL, 0);
    if (self->cursors)
        zsock_destroy (&self->cursors->peers);
}

void *tf_sync_peers (tf_server_t *self)
{
    return self->cursors->peers;
}

void tf_sync_forget_peers (tf_server_t *self)
{
    zsock_t *peers = self->cursors->peers;
    //  Each event is two frames: the 16-bit event with its 32-bit value
    //  (here the descriptor), then the endpoint.
    zframe_t *event;
    while (peers && (zsock_events (peers) & ZMQ_POLLIN) && (event = zframe_recv (peers))) {
        uint16_t kind = 0;
        int32_t fd = -1;
        if (zframe_size (event) == 6) {
            memcpy (&kind, zframe_data (event), 2);
            memcpy (&fd, zframe_data (event) + 2, 4);
        }
        while (zsock_rcvmore (peers)) {
            zframe_t *rest = zframe_recv (peers);
            zframe_destroy (&rest);
        }
        zframe_destroy (&event);
        //  The cursors that connection asked for last.
        if (kind == ZMQ_EVENT_DISCONNECTED && fd >= 0)
            s_close_doomed (self, &s_orphaned, fd);
    }
}

static void s_bytes_add (s_bytes_t *bytes, const void *data, size_t size)
{
    if (bytes->used + size > bytes->size) {
        bytes->size = (bytes->used + size) * 2;
        bytes->data = (uint8_t *) realloc (bytes->data, bytes->size);
        if (!bytes->data)
            abort ();
    }
    memcpy (bytes->data + bytes->used, data, size);
    bytes->used += size;
}

/*  Appends the key and length of one element of the length-delimited
    field `field`; its `length` bytes must follow. */
static void s_bytes_add_head (s_bytes_t *bytes, uint32_t field, size_t length)
{
    uint8_t head[TF_WIRE_HEAD_MAX];
    s_bytes_add (bytes, head, tf_wire_field_head (head, field, length));
}

static void s_bytes_add_field (s_bytes_t *bytes, uint32_t field, const void *body, size_t size)
{
    s_bytes_add_head (bytes, field, size);
    s_bytes_add (bytes, body, size);
}

/*  One catch-up change as SyncReply field 7: the event's own fields packed,
    then the stored record bytes as its field 7 (record). */
static void s_bytes_add_change (s_bytes_t *bytes, const Techfeed__ChangeEvent *event,
                                const void *body, size_t size)
{
    uint8_t fields[512];
    size_t packed = protobuf_c_message_get_packed_size (&event->base);
    uint8_t *head = packed <= sizeof fields ? fields : (uint8_t *) malloc (packed);
    if (!head)
        abort ();
    protobuf_c_message_pack (&event->base, head);
    uint8_t record_head[TF_WIRE_HEAD_MAX];
    size_t record = body ? tf_wire_field_head (record_head, 7, size) + size : 0;
    s_bytes_add_head (bytes, 7, packed + record);
    s_bytes_add (bytes, head, packed);
    if (body)
        s_bytes_add_field (bytes, 7, body, size);
    if (head != fields)
        free (head);
}

/*  Reads the next chunk into c->next as the bytes the database holds:
    records as SyncReply field 6, changes as field 7 around their stored
    record bytes. Protobuf merges concatenated encodings, so the client
    decodes one SyncReply and the service decodes nothing. The chunk ends
    when full or with the cursor (c->next_rc: 1 more to come, 0 at the
    end, < 0 on error). On the reader's thread. */
static void s_read_chunk (s_cursor_t *c)
{
    if (!c->begun) {
        c->begun = true;
        c->begin_rc = tf_store_cursor_begin (c->cursor);
        if (c->begin_rc != TF_STORE_OK)
            return;
    }
    int rc = 1;
    while (c->next_count < c->chunk && c->next.used < TF_CHUNK_BYTES) {
        const void *body = NULL;
        size_t size = 0;
        if (c->changes) {
            Techfeed__ChangeEvent event;
            if ((rc = tf_store_cursor_next_change_body (c->cursor, &event, &body, &size)) != 1)
                break;
            s_bytes_add_change (&c->next, &event, body, size);
        } else {
            if ((rc = tf_store_cursor_next_body (c->cursor, &body, &size)) != 1)
                break;
            s_bytes_add_field (&c->next, 6, body, size);
        }
        c->next_count++;
    }
    c->next_rc = rc;
}

/*  The reader: reads a chunk of each cursor the loop lends it ("READ",
    pointer) and gives the cursor back (pointer). */
static void s_reader_actor (zsock_t *pipe, void *args)
{
    //  On Linux a thread has a nice value of its own (setpriority by tid).
    if (setpriority (PRIO_PROCESS, (id_t) gettid (), TF_READER_NICE))
        tf_warn ("snapshots are read at the writers' priority: %s", strerror (errno));
    zsock_signal (pipe, 0);
    while (true) {
        char *command = NULL;
        void *item = NULL;
        //  Only $TERM ends the reader: a signal handled on this thread must
        //  not, while the loop still lends it cursors to give back.
        int rc = zsock_recv (pipe, "sp", &command, &item);
        if (rc != 0 && errno == EINTR)
            continue;
        if (rc != 0 || !command || streq (command, "$TERM")) {
            zstr_free (&command);
            break;
        }
        zstr_free (&command);
        s_read_chunk ((s_cursor_t *) item);
        zsock_send (pipe, "p", item);
    }
}

/*  Answers the cursor's oldest waiting request with its complete chunk;
    the cursor is deleted when that was the end (or an error), and the
    requests still waiting learn it has gone. */
static void s_send_chunk (tf_server_t *self, void *handle)
{
    s_cursor_t *c = (s_cursor_t *) zlistx_handle_item (handle);
    assert (c->read_ahead && c->n_askers > 0);
    tf_envelope_t asker = c->askers[0];
    memmove (c->askers, c->askers + 1, --c->n_askers * sizeof asker);
    const tf_envelope_t *envelope = &asker;
    s_bytes_t records = c->next;
    int rc = c->next_rc;
    c->sent += c->next_count;
    memset (&c->next, 0, sizeof c->next);
    c->next_count = 0;
    c->read_ahead = false;
    c->last_used_ms = tf_now_ms ();
    Techfeed__SyncReply reply;
    s_reply_init (self, envelope, &reply);
    Techfeed__SectorHead heads[TF_SECTOR_MAX], *head_ptrs[TF_SECTOR_MAX];
    if (rc < 0) {
        reply.code = TECHFEED__ERROR_CODE__STORAGE;
        reply.message = (char *) tf_store_cursor_errstr (c->cursor);
        tf_error ("cursor %" PRIu64 " failed: %s", c->id, reply.message);
    }
    if (rc == 1) {
        reply.has_cursor = 1;
        reply.cursor = c->id;
    } else {
        reply.has_end = reply.end = 1;
        reply.has_sequence = 1;
        reply.sequence = tf_store_cursor_sequence (c->cursor);
        reply.n_sector_heads =
            tf_sector_heads_fill (tf_store_cursor_sector_heads (c->cursor), heads, head_ptrs);
        reply.sector_heads = head_ptrs;
    }
    //  A full chunk may have been the last one; the client learns it from
    //  the next (empty) end mark. The reply's own fields go after the
    //  records (protobuf merges fields in any order), so the chunk's
    //  buffer is sent as it is.
    size_t size;
    uint8_t *fields = tf_wire_pack (&reply.base, &size);
    s_bytes_add (&records, fields, size);
    free (fields);
    tf_envelope_send_owned (self->sync, envelope, records.data, records.used);
    tf_envelope_clear (&asker);
    if (rc == 1)
        s_lend (self->cursors, c);
    else {
        tf_info ("%s %" PRIu64 " done: %" PRIu64 " items up to seq %" PRIu64,
                 c->changes ? "catch-up" : "snapshot", c->id, c->sent, reply.sequence);
        s_cursor_close (self, handle, "ended with the chunk before");
    }
}

/*  Sends what the cursor's waiting requests can have now. */
static void s_answer (tf_server_t *self, void *handle)
{
    s_cursor_t *c = (s_cursor_t *) zlistx_handle_item (handle);
    if (c->read_ahead && c->n_askers > 0)
        s_send_chunk (self, handle); // may delete the cursor
}

/*  A request for the cursor's next chunk: it waits in the cursor (only the
    identity kept) until the chunk is complete. */
static void s_ask (tf_server_t *self, const tf_envelope_t *envelope, void *handle)
{
    s_cursor_t *c = (s_cursor_t *) zlistx_handle_item (handle);
    c->last_used_ms = tf_now_ms ();
    if (c->n_askers == TF_ASKERS_MAX) {
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__UNAVAILABLE,
                       "%d requests already wait for chunks of cursor %" PRIu64, TF_ASKERS_MAX,
                       c->id);
        return;
    }
    tf_envelope_t *kept = &c->askers[c->n_askers++];
    memset (kept, 0, sizeof *kept);
    kept->identity = zframe_dup (envelope->identity);
    kept->delimiter = envelope->delimiter;
    kept->request_id = envelope->request_id ? strdup (envelope->request_id) : NULL;
    c->peer_fd = envelope->peer_fd;
    s_answer (self, handle);
}

/*  After the reader's first turn with a cursor: counted and logged when
    it opened, else its request is answered with why and it is closed.
    Whether it is still open. */
static bool s_opened (tf_server_t *self, s_cursor_t *c)
{
    if (c->counted)
        return true;
    if (c->begin_rc == TF_STORE_OK) {
        c->counted = true;
        atomic_fetch_add (c->changes ? &self->metrics.catchups : &self->metrics.snapshots, 1);
        tf_info ("%s %" PRIu64 " opened at seq %" PRIu64, c->changes ? "catch-up" : "snapshot",
                 c->id, tf_store_cursor_sequence (c->cursor));
        return true;
    }
    const char *why = tf_store_cursor_errstr (c->cursor);
    bool trimmed = c->begin_rc == TF_STORE_TRIMMED;
    if (trimmed)
        atomic_fetch_add (&self->metrics.trimmed, 1);
    else
        tf_error ("cannot open a cursor: %s", why);
    for (size_t i = 0; i < c->n_askers; i++) {
        if (trimmed)
            s_tell_waiting (self, &c->askers[i], TECHFEED__ERROR_CODE__TRIMMED,
                            "the log no longer holds every change after %" PRIu64
                            ": take a snapshot (%s)",
                            c->since, why);
        else
            s_tell_waiting (self, &c->askers[i], TECHFEED__ERROR_CODE__STORAGE, "%s", why);
        tf_envelope_clear (&c->askers[i]);
    }
    c->n_askers = 0;
    s_cursor_close (self, c->handle, "could not be opened");
    return false;
}

void tf_sync_take_chunks (tf_server_t *self)
{
    tf_sync_t *sync = self->cursors;
    while (sync->lent > 0 && (zsock_events (sync->reader) & ZMQ_POLLIN)) {
        s_cursor_t *c = s_cursor_returned (sync);
        if (c && s_opened (self, c))
            s_answer (self, c->handle);
    }
}

/*  The first filter field a catch-up cannot apply, NULL when none: it
    reads the log, whose changes it filters by sector only. An empty
    string filters nothing, as in a snapshot. */
static const char *s_filter_beyond_sectors (const Techfeed__Filter *filter)
{
    if (!filter)
        return NULL;
    const char *given[][2] = { { "organization", filter->organization },
                               { "country", filter->country },
                               { "date_from", filter->date_from },
                               { "date_to", filter->date_to } };
    for (size_t i = 0; i < sizeof given / sizeof given[0]; i++)
        if (given[i][1] && *given[i][1])
            return given[i][0];
    return NULL;
}

/*  What a catch-up request must hold, else INVALID (true: refused). */
static bool s_catchup_refused (tf_server_t *self, const tf_envelope_t *envelope,
                               const Techfeed__SyncRequest *request)
{
    const char *beyond = s_filter_beyond_sectors (request->filter);
    if (!request->has_since_sequence)
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__INVALID,
                       "/since_sequence: a catch-up needs a position");
    else if (!request->epoch || !*request->epoch)
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__INVALID,
                       "/epoch: a catch-up needs the epoch its position belongs to");
    else if (!tf_valid_epoch (request->epoch))
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__INVALID,
                       "/epoch: not an epoch (32 lower-case hex digits)");
    else if (beyond)
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__INVALID,
                       "/filter/%s: a catch-up filters by sector only", beyond);
    else
        return false;
    return true;
}

static void s_open_cursor (tf_server_t *self, const tf_envelope_t *envelope,
                           const Techfeed__SyncRequest *request)
{
    bool changes = request->kind == TECHFEED__SYNC_KIND__SYNC_CATCHUP;
    tf_verror_t verr;
    if (tf_validate_filter (request->filter, &verr)) {
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__INVALID, "%s: %s", verr.field,
                       verr.message);
        return;
    }
    if (changes && s_catchup_refused (self, envelope, request))
        return;
    if ((int64_t) tf_sync_open_cursors (self) >= self->config->max_cursors) {
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__UNAVAILABLE,
                       "%zu cursors are open (--max-cursors); retry later",
                       tf_sync_open_cursors (self));
        return;
    }
    if (changes && strcmp (request->epoch, self->epoch) != 0) {
        atomic_fetch_add (&self->metrics.trimmed, 1);
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__TRIMMED,
                       "epoch %s is not this database's epoch %s: take a snapshot", request->epoch,
                       self->epoch);
        return;
    }
    s_cursor_t *c = (s_cursor_t *) zmalloc (sizeof *c);
    c->id = self->cursors->next_id++;
    c->peer_fd = -1;
    c->changes = changes;
    c->since = changes ? request->since_sequence : 0;
    c->cursor = tf_store_cursor_new (self->store, changes, c->since, request->filter);
    c->last_used_ms = tf_now_ms ();
    uint32_t chunk =
        request->has_chunk_size && request->chunk_size ? request->chunk_size : TF_CHUNK_DEFAULT;
    c->chunk =
        chunk > (uint32_t) self->config->chunk_max ? (uint32_t) self->config->chunk_max : chunk;
    c->handle = zlistx_add_end (self->cursors->cursors, c);
    s_lend (self->cursors, c);
    s_ask (self, envelope, c->handle);
}

static void *s_find_cursor (tf_server_t *self, uint64_t id)
{
    zlistx_t *list = self->cursors->cursors;
    for (s_cursor_t *c = (s_cursor_t *) zlistx_first (list); c;
         c = (s_cursor_t *) zlistx_next (list))
        if (c->id == id)
            return zlistx_cursor (list);
    return NULL;
}

static void s_next (tf_server_t *self, const tf_envelope_t *envelope,
                    const Techfeed__SyncRequest *request, bool close)
{
    void *handle = s_find_cursor (self, request->cursor);
    if (!handle) {
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__NOT_FOUND,
                       "cursor %" PRIu64
                       " is not open (finished, closed, idle too long or its client "
                       "disconnected)",
                       request->cursor);
        return;
    }
    if (!close) {
        s_ask (self, envelope, handle);
        return;
    }
    s_cursor_close (self, handle, "was closed");
    Techfeed__SyncReply reply;
    s_reply_init (self, envelope, &reply);
    reply.has_end = reply.end = 1;
    tf_envelope_reply (self->sync, envelope, &reply.base);
}

static void s_get (tf_server_t *self, const tf_envelope_t *envelope,
                   const Techfeed__SyncRequest *request)
{
    if (request->n_ids > TF_GET_MAX) {
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__TOO_LARGE,
                       "/ids: %zu ids exceed the limit of %d per request", request->n_ids,
                       TF_GET_MAX);
        return;
    }
    for (size_t i = 0; i < request->n_ids; i++)
        if (!tf_valid_id (request->ids[i])) {
            s_reply_error (self, envelope, TECHFEED__ERROR_CODE__INVALID,
                           "/ids/%zu: not a milestone id", i);
            return;
        }
    Techfeed__SyncReply reply;
    s_reply_init (self, envelope, &reply);
    reply.records = (Techfeed__Milestone **) zmalloc ((request->n_ids + 1) * sizeof (void *));
    for (size_t i = 0; i < request->n_ids; i++) {
        int rc = tf_store_get (self->store, request->ids[i], &reply.records[reply.n_records]);
        if (rc == TF_STORE_OK)
            reply.n_records++;
        else if (rc != TF_STORE_NOT_FOUND) {
            reply.code = TECHFEED__ERROR_CODE__STORAGE;
            reply.message = (char *) tf_store_errstr (self->store);
            break;
        }
    }
    reply.has_end = reply.end = 1;
    tf_envelope_reply (self->sync, envelope, &reply.base);
    s_reply_clear (&reply);
}

static void s_status (tf_server_t *self, const tf_envelope_t *envelope)
{
    tf_store_state_t state;
    if (tf_store_state (self->store, &state)) {
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__STORAGE, "%s",
                       tf_store_errstr (self->store));
        return;
    }
    char digest[17];
    tf_digest_format (state.digest, digest);
    Techfeed__SectorHead heads[TF_SECTOR_MAX], *head_ptrs[TF_SECTOR_MAX];
    Techfeed__ServerStatus status = TECHFEED__SERVER_STATUS__INIT;
    status.epoch = self->epoch;
    status.has_head_sequence = status.has_record_count = status.has_log_first_sequence = 1;
    status.has_records_applied = 1;
    status.records_applied = state.applied_sequence;
    status.head_sequence = state.head_sequence;
    status.record_count = state.record_count;
    status.log_first_sequence = state.log_first_sequence;
    status.digest = digest;
    status.version = (char *) TF_VERSION;
    status.n_sector_heads = tf_sector_heads_fill (state.sector_heads, heads, head_ptrs);
    status.sector_heads = head_ptrs;
    Techfeed__SyncReply reply;
    s_reply_init (self, envelope, &reply);
    reply.status = &status;
    reply.has_end = reply.end = 1;
    reply.has_sequence = 1;
    reply.sequence = state.head_sequence;
    tf_envelope_reply (self->sync, envelope, &reply.base);
}

/*  The envelope's request, decoded, its request_id kept in the envelope
    when valid (for every reply to it); NULL when it was not a request
    (answered MALFORMED). Caller frees with tf_wire_free. */
static Techfeed__SyncRequest *s_decode (tf_server_t *self, tf_envelope_t *envelope)
{
    size_t size;
    const uint8_t *body = tf_envelope_body (envelope, &size);
    if (!body) {
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__MALFORMED, "%s", envelope->error);
        return NULL;
    }
    char err[256];
    Techfeed__SyncRequest *request = (Techfeed__SyncRequest *) tf_wire_unpack (
        &techfeed__sync_request__descriptor, body, size, tf_decode_budget (size), err, sizeof err);
    if (!request) {
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__MALFORMED, "%s", err);
        return NULL;
    }
    if (tf_valid_request_id (request->request_id))
        envelope->request_id = strdup (request->request_id);
    return request;
}

static void s_handle_one (tf_server_t *self, tf_envelope_t *envelope)
{
    Techfeed__SyncRequest *request = s_decode (self, envelope);
    if (!request)
        return;
    if (request->has_version && request->version != TF_PROTOCOL_VERSION)
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__UNSUPPORTED,
                       "protocol version %u is not supported (this service speaks %d)",
                       request->version, TF_PROTOCOL_VERSION);
    else if (request->request_id && !envelope->request_id)
        s_reply_error (self, envelope, TECHFEED__ERROR_CODE__INVALID,
                       "/request_id: must be 1 to %d printable ASCII characters, no space",
                       TF_REQUEST_ID_MAX);
    else
        switch (request->kind) {
            case TECHFEED__SYNC_KIND__SYNC_SNAPSHOT:
            case TECHFEED__SYNC_KIND__SYNC_CATCHUP: s_open_cursor (self, envelope, request); break;
            case TECHFEED__SYNC_KIND__SYNC_NEXT:
            case TECHFEED__SYNC_KIND__SYNC_CLOSE:
                s_next (self, envelope, request, request->kind == TECHFEED__SYNC_KIND__SYNC_CLOSE);
                break;
            case TECHFEED__SYNC_KIND__SYNC_GET: s_get (self, envelope, request); break;
            case TECHFEED__SYNC_KIND__SYNC_STATUS:
                if (request->filter)
                    s_reply_error (self, envelope, TECHFEED__ERROR_CODE__INVALID,
                                   "/filter: a status is of the whole database (for some "
                                   "sectors, hash a snapshot with that filter)");
                else
                    s_status (self, envelope);
                break;
            default:
                s_reply_error (self, envelope, TECHFEED__ERROR_CODE__UNSUPPORTED,
                               "/kind: sync request kind %d is not supported", (int) request->kind);
        }
    tf_wire_free (&request->base);
}

void tf_sync_handle (tf_server_t *self)
{
    //  A few requests per wake-up, so ingest is never starved by readers.
    for (int i = 0; i < 16 && (zsock_events (self->sync) & ZMQ_POLLIN); i++) {
        tf_envelope_t envelope;
        if (tf_envelope_recv (self->sync, &envelope))
            break;
        tf_sync_forget_peers (self); // disconnects first: see the top of this file
        s_handle_one (self, &envelope);
        tf_envelope_clear (&envelope);
    }
}

void tf_sync_refuse_waiting (tf_server_t *self)
{
    size_t refused = 0;
    zlistx_t *list = self->cursors->cursors;
    for (s_cursor_t *c = (s_cursor_t *) zlistx_first (list); c;
         c = (s_cursor_t *) zlistx_next (list)) {
        for (size_t i = 0; i < c->n_askers; i++) {
            s_tell_waiting (self, &c->askers[i], TECHFEED__ERROR_CODE__UNAVAILABLE,
                            "the service is shutting down: cursor %" PRIu64
                            " closes with it; start the %s again",
                            c->id, c->changes ? "catch-up" : "snapshot");
            tf_envelope_clear (&c->askers[i]);
        }
        refused += c->n_askers;
        c->n_askers = 0;
    }
    //  What arrived meanwhile, so that no client waits for its timeout.
    tf_envelope_t envelope;
    while (refused < 100000 && (zsock_events (self->sync) & ZMQ_POLLIN) &&
           tf_envelope_recv (self->sync, &envelope) == 0) {
        Techfeed__SyncRequest *request = s_decode (self, &envelope);
        if (request) {
            s_tell_waiting (self, &envelope, TECHFEED__ERROR_CODE__UNAVAILABLE,
                            "the service is shutting down: retry later");
            tf_wire_free (&request->base);
        }
        tf_envelope_clear (&envelope);
        refused++;
    }
    if (refused)
        tf_info ("shutting down: %zu waiting sync request(s) answered UNAVAILABLE", refused);
}
