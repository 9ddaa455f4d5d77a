/*  tf_rpc — request/reply over a DEALER socket, private to libtechfeed.

    One frame out (the packed request), one frame back (the packed reply),
    as PROTOCOL.md §2 says for a DEALER client. A request that gets no
    reply in time is sent again on a fresh socket (Lazy Pirate): the old
    socket is closed with linger 0, so a late reply to it is never read.
    Replies are decoded with tf_wire_unpack under a size budget; bytes that
    do not decode are logged and skipped, never trusted.

    The sync conversation's cursor loop (SNAPSHOT / CATCHUP, then NEXT until
    the end mark) lives here once: tf_rpc_stream, used by tf_query_list and
    by the view.
*/
#ifndef TF_RPC_H_INCLUDED
#define TF_RPC_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#include "techfeed.pb-c.h"
#include "tf_curve.h"

typedef struct _tf_rpc_t tf_rpc_t;

/*  Tells whether `reply` answers the request `arg` stands for; replies
    that do not (stale ones from an earlier try) are dropped. */
typedef bool (tf_rpc_match_fn) (const ProtobufCMessage *reply, const void *arg);

/*  Connects a DEALER to `endpoint`. Replies may decode to at most
    `max_reply` bytes of memory. NULL when the endpoint is not valid. */
tf_rpc_t *tf_rpc_new (const char *endpoint, size_t max_reply);
void tf_rpc_destroy (tf_rpc_t **self_p);

void tf_rpc_set_timeout (tf_rpc_t *self, int timeout_ms);
/*  From now on every socket is a CURVE client with `curve` (borrowed: it
    must outlive the handle; NULL: plain); the current one is replaced. */
void tf_rpc_set_curve (tf_rpc_t *self, const tf_curve_t *curve);
/*  What tf_writer_set_curve and tf_query_set_curve do: tf_curve_replace
    into the handle's *slot, then tf_rpc_set_curve with it. 0 or -1. */
int tf_rpc_use_curve (tf_rpc_t *self, tf_curve_t **slot, const char *server_key,
                      const char *client_cert, char *err, size_t errlen);
void tf_rpc_set_tries (tf_rpc_t *self, int tries);
/*  With read-ahead, tf_rpc_stream asks for the next chunk before handing
    a reply to `fn`, so the service reads it while fn works; fn must then
    not make calls of its own on this handle (their reply would be that
    chunk). Off by default. */
void tf_rpc_set_read_ahead (tf_rpc_t *self, bool read_ahead);
int tf_rpc_tries (tf_rpc_t *self);
const char *tf_rpc_endpoint (tf_rpc_t *self);
const char *tf_rpc_errstr (tf_rpc_t *self);

/*  Sends `request` and waits for a reply of type `reply_type` that
    `match` accepts (NULL: any), up to `tries` times (0 = the handle's
    setting), each on a fresh socket after a timeout. Returns the reply
    (caller frees with tf_wire_free) or NULL: "service unavailable at EP
    after N tries", or "interrupted". */
ProtobufCMessage *tf_rpc_call (tf_rpc_t *self, const ProtobufCMessage *request,
                               const ProtobufCMessageDescriptor *reply_type, int tries,
                               tf_rpc_match_fn *match, const void *arg);

/*  What a chunk handler tells tf_rpc_stream. */
#define TF_STREAM_MORE 0 /* go on: ask for the next chunk */
#define TF_STREAM_STOP 1 /* done (or abandon the cursor) */
#define TF_STREAM_ERROR -1

/*  Called for every SyncReply of a cursor, whatever its code; `reply` is
    borrowed for the call (it lives in the handle's arena, so fn must not
    start another stream on the same handle). */
typedef int (tf_rpc_chunk_fn) (const Techfeed__SyncReply *reply, void *arg);

/*  Opens a cursor with `request` (SNAPSHOT or CATCHUP; retried like
    tf_rpc_call), hands every reply to `fn`, and asks for the next chunk
    with SYNC_NEXT while `fn` says MORE and the reply is not the end mark
    nor an error. NEXT is not retried (a cursor moves on the service).
    When `fn` stops early (STOP or ERROR), the cursor is closed with
    SYNC_CLOSE, one try, errstr unchanged. Returns 0
    when the conversation ended by the rules (end mark, an error reply
    handed to fn, or fn stopping), -1 when fn said ERROR or the service
    stopped answering (errstr). */
int tf_rpc_stream (tf_rpc_t *self, const Techfeed__SyncRequest *request, tf_rpc_chunk_fn *fn,
                   void *arg);

#endif
