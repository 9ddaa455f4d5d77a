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

/*  Sends [identity][packed msg] on `router` (identity is copied). */
void tf_fake_reply (zsock_t *router, zframe_t *identity, const ProtobufCMessage *msg);

#endif
