/*  tf_fake — pieces of fake services for the client library's unit tests:
    a ROUTER bound on an ephemeral loopback port, a protobuf request from
    one peer and a protobuf reply to it. The scripts (what to answer) stay
    in each test.
*/
#ifndef TF_FAKE_H_INCLUDED
#define TF_FAKE_H_INCLUDED

#include <czmq.h>

#include "techfeed.pb-c.h"

/*  ROUTER on tcp://127.0.0.1:*; its endpoint into `endpoint`. */
zsock_t *tf_fake_router (char *endpoint, size_t size);

/*  The same as a CURVE server with `cert` (no ZAP handler: any client
    key is admitted, a plain client never completes its handshake). */
zsock_t *tf_fake_router_curve (char *endpoint, size_t size, zcert_t *cert);

/*  Receives one request [identity][body] on `router`: the identity into
    *identity (caller destroys) and the body unpacked as a `descriptor`
    message (caller frees with protobuf_c_message_free_unpacked), NULL
    when it does not unpack. */
ProtobufCMessage *tf_fake_recv (zsock_t *router, const ProtobufCMessageDescriptor *descriptor,
                                zframe_t **identity);

/*  Fills `reply` as a chunk of a snapshot in `epoch` holding `records` (n):
    the last chunk (`end`) with the end mark at `sequence` and the sector
    `heads` (n_heads), the others with cursor 42. Arrays are borrowed. */
void tf_fake_snapshot_chunk (Techfeed__SyncReply *reply, const char *epoch,
                             Techfeed__Milestone **records, size_t n, bool end, uint64_t sequence,
                             Techfeed__SectorHead **heads, size_t n_heads);

/*  Sends [identity][packed msg] on `router` (identity is copied). */
void tf_fake_reply (zsock_t *router, zframe_t *identity, const ProtobufCMessage *msg);

#endif
