/*  tf_view_internal — the view's state machine without sockets, for unit
    tests (and, later, for a persistent view that drives it itself).

    tf_view_poll does exactly this: decode what the SUB socket delivers and
    feed it here; when tf_view_sync_begin returns a request, run it with
    tf_rpc_stream and hand each reply to tf_view_sync_reply. A test does
    the same with messages it builds, and a clock it chooses.
*/
#ifndef TF_VIEW_INTERNAL_H_INCLUDED
#define TF_VIEW_INTERNAL_H_INCLUDED

#include "techfeed.h"

/*  What tf_view_sync_reply tells the driver (as tf_rpc_stream wants it). */
#define TF_VIEW_SYNC_MORE 0  /* send SYNC_NEXT with the reply's cursor */
#define TF_VIEW_SYNC_DONE 1  /* this sync is over (see tf_view_state for what next) */
#define TF_VIEW_SYNC_FAIL -1 /* this sync failed; the view retries it later */

/*  A view with no sockets, in state SNAPSHOT (as if just started) at
    monotonic time now_ms. Destroy with tf_view_destroy. */
tf_view_t *tf_view_new_detached (const Techfeed__Sector *sectors, size_t n, int64_t now_ms);

/*  One PUB message: topic frame and body bytes (untrusted: decoded with
    tf_wire_unpack, bad ones counted and ignored). */
void tf_view_feed_message (tf_view_t *self, const char *topic, size_t topic_size,
                           const uint8_t *data, size_t size, int64_t now_ms);
/*  Already decoded messages (borrowed; the view copies what it keeps). */
void tf_view_feed_event (tf_view_t *self, const Techfeed__ChangeEvent *event, int64_t now_ms);
void tf_view_feed_heartbeat (tf_view_t *self, const Techfeed__Heartbeat *heartbeat, int64_t now_ms);
/*  Time passes: LOST after 3 heartbeat intervals of silence. */
void tf_view_feed_tick (tf_view_t *self, int64_t now_ms);

/*  The sync request the view needs now (SNAPSHOT or CATCHUP), or NULL
    when none (LIVE, LOST, one already running, or a retry not yet due).
    Borrowed until the sync ends. Marks the sync as running. */
const Techfeed__SyncRequest *tf_view_sync_begin (tf_view_t *self, int64_t now_ms);
/*  One reply of the running sync (any code); returns TF_VIEW_SYNC_*. */
int tf_view_sync_reply (tf_view_t *self, const Techfeed__SyncReply *reply, int64_t now_ms);
/*  The running sync got no reply: retry after a pause. */
void tf_view_sync_failed (tf_view_t *self, const char *reason, int64_t now_ms);

/*  Ends a persistent view's batch (tf_view_poll does it after each read
    of the socket, tf_view_sync_reply after each reply): commits the
    changes written since and the position. 0, or -1 when the file failed. */
int tf_view_flush (tf_view_t *self);

/*  last[s] of PROTOCOL.md §9 (0 for sectors not held). */
uint64_t tf_view_last (tf_view_t *self, int sector);
/*  Events waiting in the buffer (during SNAPSHOT / CATCHUP / LOST). */
size_t tf_view_buffered (tf_view_t *self);

#endif
