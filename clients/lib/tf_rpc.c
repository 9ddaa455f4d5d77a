/*  tf_rpc — request/reply over a DEALER socket with Lazy Pirate retries.
    See tf_rpc.h.
*/
#include <errno.h>

#include "tf_curve.h"
#include "tf_rpc.h"
#include "tf_wire.h"
#include "techfeed.h"

#define TF_RPC_ARENA_FIRST (64u << 10) /* the stream arena's first block */
#define TF_RPC_ARENA_KEEP (16u << 20)  /* kept between chunks, at most */
#define TF_RPC_CLOSE_LINGER_MS 200     /* a stream given up still says CLOSE this long */

struct _tf_rpc_t {
    char *endpoint;          /* where the DEALER connects */
    zsock_t *socket;         /* current DEALER; replaced after a timeout */
    size_t max_reply;        /* decode budget cap for one reply, bytes */
    int timeout_ms;          /* wait for one reply */
    int tries;               /* tries per request, the first included */
    const tf_curve_t *curve; /* CURVE settings (borrowed), or NULL: plain */
    tf_arena_t *arena;       /* what stream replies decode into */
    bool read_ahead;         /* stream: ask for the next chunk before handing one out */
    char errstr[256];        /* last error */
};

/*  Decode budget for a frame of `size` bytes: generous for real replies,
    bounded for hostile length prefixes. */
static size_t s_budget (tf_rpc_t *self, size_t size)
{
    size_t budget = size * 32 + 64 * 1024;
    return budget < self->max_reply ? budget : self->max_reply;
}

static zsock_t *s_connect (const char *endpoint, size_t max_reply, const tf_curve_t *curve)
{
    zsock_t *socket = zsock_new (ZMQ_DEALER);
    if (!socket)
        return NULL;
    if (curve)
        tf_curve_apply (curve, socket);
    zsock_set_linger (socket, 0);
    if (strncmp (endpoint, "tcp://[", 7) == 0)
        zsock_set_ipv6 (socket, 1); // an IPv6 address, [::1]:5562
    zsock_set_maxmsgsize (socket, max_reply > INT_MAX ? INT_MAX : (int) max_reply);
    if (zsock_connect (socket, "%s", endpoint) != 0) {
        zsock_destroy (&socket);
        return NULL;
    }
    return socket;
}

tf_rpc_t *tf_rpc_new (const char *endpoint, size_t max_reply)
{
    assert (endpoint);
    zsock_t *socket = s_connect (endpoint, max_reply, NULL);
    if (!socket)
        return NULL;
    tf_rpc_t *self = (tf_rpc_t *) zmalloc (sizeof (tf_rpc_t));
    self->endpoint = strdup (endpoint);
    if (!self->endpoint)
        abort ();
    self->socket = socket;
    self->max_reply = max_reply;
    self->timeout_ms = TF_DEFAULT_TIMEOUT_MS;
    self->tries = TF_DEFAULT_TRIES;
    self->arena = tf_arena_new (TF_RPC_ARENA_FIRST, TF_RPC_ARENA_KEEP);
    return self;
}

void tf_rpc_destroy (tf_rpc_t **self_p)
{
    assert (self_p);
    tf_rpc_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->socket);
    free (self->endpoint);
    tf_arena_destroy (&self->arena);
    free (self);
    *self_p = NULL;
}

void tf_rpc_set_timeout (tf_rpc_t *self, int timeout_ms)
{
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
}

void tf_rpc_set_tries (tf_rpc_t *self, int tries)
{
    self->tries = tries > 0 ? tries : 1;
}

void tf_rpc_set_read_ahead (tf_rpc_t *self, bool read_ahead)
{
    self->read_ahead = read_ahead;
}

int tf_rpc_tries (tf_rpc_t *self)
{
    return self->tries;
}

const char *tf_rpc_endpoint (tf_rpc_t *self)
{
    return self->endpoint;
}

const char *tf_rpc_errstr (tf_rpc_t *self)
{
    return self->errstr;
}

/*  Closes the socket (linger 0: a late reply dies with it) and connects a
    new one. The endpoint connected before, so only OOM-like failures can
    stop it, and those abort. */
static void s_reset (tf_rpc_t *self)
{
    zsock_destroy (&self->socket);
    self->socket = s_connect (self->endpoint, self->max_reply, self->curve);
    if (!self->socket)
        abort ();
}

void tf_rpc_set_curve (tf_rpc_t *self, const tf_curve_t *curve)
{
    self->curve = curve;
    s_reset (self);
}

int tf_rpc_use_curve (tf_rpc_t *self, tf_curve_t **slot, const char *server_key,
                      const char *client_cert, char *err, size_t errlen)
{
    if (tf_curve_replace (slot, server_key, client_cert, err, errlen) != 0)
        return -1;
    tf_rpc_set_curve (self, *slot);
    return 0;
}

static int s_send (tf_rpc_t *self, const ProtobufCMessage *request)
{
    size_t size;
    uint8_t *data = tf_wire_pack (request, &size);
    zframe_t *frame = zframe_new (data, size);
    free (data);
    //  DEALER queues the frame even before the connection is up
    if (zframe_send (&frame, self->socket, ZFRAME_DONTWAIT) != 0) {
        zframe_destroy (&frame);
        snprintf (self->errstr, sizeof self->errstr, "cannot send to %s: %s", self->endpoint,
                  zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

/*  Waits until `deadline` (zclock_mono) for a reply that decodes as
    `type`, into `arena` (NULL: the heap). 0 with *reply, 1 at the
    deadline, -1 when interrupted. Undecodable replies are logged and
    skipped. */
static int s_recv (tf_rpc_t *self, const ProtobufCMessageDescriptor *type, int64_t deadline,
                   tf_arena_t *arena, ProtobufCMessage **reply)
{
    while (true) {
        int64_t wait = deadline - zclock_mono ();
        if (wait < 0)
            wait = 0;
        zmq_pollitem_t item = { zsock_resolve (self->socket), 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, (long) wait);
        if (rc < 0 && zmq_errno () == EINTR && !zsys_interrupted)
            continue; // another signal (SIGCHLD, SIGWINCH...)
        if (rc < 0 || zsys_interrupted) {
            snprintf (self->errstr, sizeof self->errstr, "interrupted");
            return -1;
        }
        if (rc == 0)
            return 1;
        zmsg_t *msg = zmsg_recv (self->socket);
        if (!msg) {
            snprintf (self->errstr, sizeof self->errstr, "interrupted");
            return -1;
        }
        //  A REQ-style envelope (empty delimiter) is tolerated
        if (zmsg_size (msg) == 2 && zframe_size (zmsg_first (msg)) == 0) {
            zframe_t *empty = zmsg_pop (msg);
            zframe_destroy (&empty);
        }
        char err[200] = "";
        ProtobufCMessage *decoded = NULL;
        if (zmsg_size (msg) != 1)
            snprintf (err, sizeof err, "%zu frames instead of 1", zmsg_size (msg));
        else {
            zframe_t *body = zmsg_first (msg);
            size_t budget = s_budget (self, zframe_size (body));
            decoded = arena ? tf_wire_unpack_in (arena, type, zframe_data (body),
                                                 zframe_size (body), budget, err, sizeof err)
                            : tf_wire_unpack (type, zframe_data (body), zframe_size (body), budget,
                                              err, sizeof err);
        }
        zmsg_destroy (&msg);
        if (decoded) {
            *reply = decoded;
            return 0;
        }
        zsys_warning ("techfeed: bad reply from %s ignored: %s", self->endpoint, err);
    }
}

/*  errstr for no reply after `tries`. */
static void s_say_unavailable (tf_rpc_t *self, int tries)
{
    snprintf (self->errstr, sizeof self->errstr, "service unavailable at %s after %d %s",
              self->endpoint, tries, tries == 1 ? "try" : "tries");
}

/*  No reply after `tries`: says so, and drops the socket, so a late
    reply never answers the next request. */
static void s_unavailable (tf_rpc_t *self, int tries)
{
    s_say_unavailable (self, tries);
    s_reset (self);
}

/*  tf_rpc_call, the reply decoded into `arena` (NULL: the heap). */
static ProtobufCMessage *s_call (tf_rpc_t *self, const ProtobufCMessage *request,
                                 const ProtobufCMessageDescriptor *reply_type, int tries,
                                 tf_rpc_match_fn *match, const void *arg, tf_arena_t *arena)
{
    if (tries <= 0)
        tries = self->tries;
    for (int attempt = 1; attempt <= tries; attempt++) {
        if (attempt > 1)
            s_reset (self);
        if (s_send (self, request) != 0)
            return NULL;
        int64_t deadline = zclock_mono () + self->timeout_ms;
        while (true) {
            ProtobufCMessage *reply = NULL;
            int rc = s_recv (self, reply_type, deadline, arena, &reply);
            if (rc < 0) {
                s_reset (self); // the reply on its way must not answer the next call
                return NULL;
            }
            if (rc > 0)
                break; // timeout: next try on a fresh socket
            if (!match || match (reply, arg))
                return reply;
            if (!arena)
                tf_wire_free (reply); // a stale reply to an earlier request
        }
    }
    s_unavailable (self, tries);
    return NULL;
}

ProtobufCMessage *tf_rpc_call (tf_rpc_t *self, const ProtobufCMessage *request,
                               const ProtobufCMessageDescriptor *reply_type, int tries,
                               tf_rpc_match_fn *match, const void *arg)
{
    return s_call (self, request, reply_type, tries, match, arg, NULL);
}

static void s_cursor_request (Techfeed__SyncRequest *request, Techfeed__SyncKind kind,
                              uint64_t cursor)
{
    techfeed__sync_request__init (request);
    request->has_version = request->has_kind = request->has_cursor = 1;
    request->version = TF_PROTOCOL_VERSION;
    request->kind = kind;
    request->cursor = cursor;
}

/*  Closes `cursor`; errstr is kept (it may say why the stream ended).
    `await`: one try, the reply dropped. Otherwise the stream was given up
    while a chunk is on its way (a timeout, a signal): CLOSE goes on the
    connection the stream used, unanswered, and that socket is replaced so
    neither the chunk nor the answer reaches the next request. Either way
    the service ends the cursor's read transaction now, which would
    otherwise keep its WAL from starting over until the idle timeout
    (--cursor-idle-ms). */
static void s_cursor_close (tf_rpc_t *self, uint64_t cursor, bool await)
{
    char why[sizeof self->errstr];
    memcpy (why, self->errstr, sizeof why);
    Techfeed__SyncRequest request;
    s_cursor_request (&request, TECHFEED__SYNC_KIND__SYNC_CLOSE, cursor);
    if (await)
        tf_wire_free (
            tf_rpc_call (self, &request.base, &techfeed__sync_reply__descriptor, 1, NULL, NULL));
    else {
        //  Sent by the I/O thread after the socket is closed, for a while
        zsock_set_linger (self->socket, TF_RPC_CLOSE_LINGER_MS);
        (void) s_send (self, &request.base);
        s_reset (self);
    }
    memcpy (self->errstr, why, sizeof why);
}

/*  Sends NEXT for `cursor`; 0 or -1 (errstr). */
static int s_ask_next (tf_rpc_t *self, uint64_t cursor)
{
    Techfeed__SyncRequest request;
    s_cursor_request (&request, TECHFEED__SYNC_KIND__SYNC_NEXT, cursor);
    return s_send (self, &request.base);
}

/*  The reply to a NEXT already sent, into the arena; NULL (errstr) when
    none comes in time or the wait is interrupted (the caller then drops
    the socket, with the chunk on its way). */
static Techfeed__SyncReply *s_await_next (tf_rpc_t *self)
{
    ProtobufCMessage *reply = NULL;
    int rc = s_recv (self, &techfeed__sync_reply__descriptor, zclock_mono () + self->timeout_ms,
                     self->arena, &reply);
    if (rc > 0)
        s_say_unavailable (self, 1);
    return rc == 0 ? (Techfeed__SyncReply *) reply : NULL;
}

static int s_stream (tf_rpc_t *self, const Techfeed__SyncRequest *request, tf_rpc_chunk_fn *fn,
                     void *arg)
{
    Techfeed__SyncReply *reply = (Techfeed__SyncReply *) s_call (
        self, &request->base, &techfeed__sync_reply__descriptor, 0, NULL, NULL, self->arena);
    while (reply) {
        bool error = reply->has_code && reply->code != TECHFEED__ERROR_CODE__OK;
        bool end = reply->has_end && reply->end;
        uint64_t cursor = reply->has_cursor ? reply->cursor : 0;
        if (!error && !end && cursor == 0) {
            snprintf (self->errstr, sizeof self->errstr,
                      "bad reply from %s: a chunk that is not the end has no cursor",
                      self->endpoint);
            return -1;
        }
        //  The service reads the next chunk while fn handles this one
        bool asked = self->read_ahead && !error && !end;
        if (asked && s_ask_next (self, cursor) != 0)
            return -1;
        int verdict = fn (reply, arg);
        if (error || end)
            return verdict == TF_STREAM_ERROR ? -1 : 0;
        if (verdict != TF_STREAM_MORE) {
            if (asked)
                s_reset (self); // the chunk asked for dies with the socket
            //  Closed either way: an abandoned cursor would count against
            //  the service's --max-cursors until its idle timeout.
            s_cursor_close (self, cursor, true);
            return verdict == TF_STREAM_ERROR ? -1 : 0;
        }
        tf_arena_reset (self->arena); // fn is done with the reply
        if (!asked && s_ask_next (self, cursor) != 0)
            return -1;
        reply = s_await_next (self);
        if (!reply)
            s_cursor_close (self, cursor, false);
    }
    return -1; // errstr set by s_call or s_await_next
}

int tf_rpc_stream (tf_rpc_t *self, const Techfeed__SyncRequest *request, tf_rpc_chunk_fn *fn,
                   void *arg)
{
    int rc = s_stream (self, request, fn, arg);
    tf_arena_release (self->arena); // a view may hold the handle idle for hours
    return rc;
}
