/*  tf_fake — pieces of fake services for the client library's unit tests:
    a ROUTER bound on an ephemeral loopback port, and a protobuf reply to
    one peer. The scripts (what to answer) stay in each test.
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

/*  Sends [identity][packed msg] on `router` (identity is copied). */
void tf_fake_reply (zsock_t *router, zframe_t *identity, const ProtobufCMessage *msg);

#endif
