/*  tf_fake — see tf_fake.h. */
#include "tf_fake.h"
#include "tf_wire.h"

zsock_t *tf_fake_router (char *endpoint, size_t size)
{
    return tf_fake_router_curve (endpoint, size, NULL);
}

zsock_t *tf_fake_router_curve (char *endpoint, size_t size, zcert_t *cert)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert (router);
    if (cert) {
        zcert_apply (cert, router);
        zsock_set_curve_server (router, 1);
    }
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    assert (port > 0);
    snprintf (endpoint, size, "tcp://127.0.0.1:%d", port);
    return router;
}

ProtobufCMessage *tf_fake_recv (zsock_t *router, const ProtobufCMessageDescriptor *descriptor,
                                zframe_t **identity)
{
    zmsg_t *msg = zmsg_recv (router);
    *identity = zmsg_pop (msg);
    zframe_t *body = zmsg_pop (msg);
    ProtobufCMessage *request =
        body ? protobuf_c_message_unpack (descriptor, NULL, zframe_size (body), zframe_data (body))
             : NULL;
    zframe_destroy (&body);
    zmsg_destroy (&msg);
    return request;
}

void tf_fake_snapshot_chunk (Techfeed__SyncReply *reply, const char *epoch,
                             Techfeed__Milestone **records, size_t n, bool end, uint64_t sequence,
                             Techfeed__SectorHead **heads, size_t n_heads)
{
    techfeed__sync_reply__init (reply);
    reply->has_code = reply->has_end = reply->has_sequence = reply->has_cursor = 1;
    reply->code = TECHFEED__ERROR_CODE__OK;
    reply->epoch = (char *) epoch;
    reply->records = records;
    reply->n_records = n;
    reply->end = end;
    reply->cursor = end ? 0 : 42;
    reply->sequence = end ? sequence : 0;
    reply->n_sector_heads = end ? n_heads : 0;
    reply->sector_heads = heads;
}

void tf_fake_reply (zsock_t *router, zframe_t *identity, const ProtobufCMessage *msg)
{
    size_t size;
    uint8_t *data = tf_wire_pack (msg, &size);
    zmsg_t *reply = zmsg_new ();
    zmsg_append (reply, &(zframe_t *){ zframe_dup (identity) });
    zmsg_addmem (reply, data, size);
    zmsg_send (&reply, router);
    free (data);
}
