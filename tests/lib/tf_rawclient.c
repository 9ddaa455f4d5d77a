/*  tf_rawclient — see tf_rawclient.h. */
#include "tf_rawclient.h"
#include "tf_wire.h"

void tf_raw_record (Techfeed__Milestone *record, const char *id, Techfeed__Sector sector)
{
    techfeed__milestone__init (record);
    record->id = (char *) id;
    record->has_sector = 1;
    record->sector = sector;
    record->title = (char *) "Chang'e-4 lands on the far side of the Moon";
    record->date = (char *) "2019-01-03";
    record->country = (char *) "CN";
}

static void s_send (zsock_t *socket, const ProtobufCMessage *message)
{
    size_t size;
    uint8_t *data = tf_wire_pack (message, &size);
    zframe_t *frame = zframe_new (data, size);
    free (data);
    zframe_send (&frame, socket, 0);
}

void tf_raw_send_request (zsock_t *dealer, const Techfeed__IngestRequest *request)
{
    s_send (dealer, &request->base);
}

/*  Receives one message and unpacks its last frame as a `descriptor`
    message; NULL on timeout or when it does not unpack. */
static ProtobufCMessage *s_recv (zsock_t *socket, const ProtobufCMessageDescriptor *descriptor)
{
    zmsg_t *msg = zmsg_recv (socket);
    if (!msg)
        return NULL;
    zframe_t *body = zmsg_last (msg);
    ProtobufCMessage *message =
        protobuf_c_message_unpack (descriptor, NULL, zframe_size (body), zframe_data (body));
    zmsg_destroy (&msg);
    return message;
}

Techfeed__IngestReply *tf_raw_recv_reply (zsock_t *dealer)
{
    return (Techfeed__IngestReply *) s_recv (dealer, &techfeed__ingest_reply__descriptor);
}

void tf_raw_send_puts (zsock_t *dealer, Techfeed__Milestone *records, size_t count)
{
    Techfeed__Operation *ops = (Techfeed__Operation *) calloc (count, sizeof *ops);
    Techfeed__Operation **op_ptrs = (Techfeed__Operation **) calloc (count, sizeof *op_ptrs);
    if (!ops || !op_ptrs)
        abort ();
    for (size_t i = 0; i < count; i++) {
        techfeed__operation__init (&ops[i]);
        ops[i].has_kind = 1;
        ops[i].kind = TECHFEED__OP_KIND__OP_PUT;
        ops[i].record = &records[i];
        op_ptrs[i] = &ops[i];
    }
    Techfeed__IngestRequest request = TECHFEED__INGEST_REQUEST__INIT;
    request.n_ops = count;
    request.ops = op_ptrs;
    tf_raw_send_request (dealer, &request);
    free (op_ptrs);
    free (ops);
}

bool tf_raw_recv_stored (zsock_t *dealer, size_t count)
{
    Techfeed__IngestReply *reply = tf_raw_recv_reply (dealer);
    if (!reply) {
        fprintf (stderr, "rawclient: no reply to %zu puts\n", count);
        return false;
    }
    bool stored = reply->code == TECHFEED__ERROR_CODE__OK && reply->n_results == count;
    for (size_t i = 0; stored && i < count; i++)
        stored = reply->results[i]->code == TECHFEED__ERROR_CODE__OK;
    if (!stored)
        fprintf (stderr, "rawclient: %zu puts not all stored: code %d, %zu results: %s\n", count,
                 (int) reply->code, reply->n_results, reply->message ? reply->message : "");
    techfeed__ingest_reply__free_unpacked (reply, NULL);
    return stored;
}

void tf_raw_one_put (tf_raw_one_put_t *self, Techfeed__Milestone *record)
{
    techfeed__operation__init (&self->op);
    self->op.has_kind = 1;
    self->op.kind = TECHFEED__OP_KIND__OP_PUT;
    self->op.record = record;
    self->ops[0] = &self->op;
    techfeed__ingest_request__init (&self->request);
    self->request.ops = self->ops;
    self->request.n_ops = 1;
}

void tf_raw_send_put (zsock_t *dealer, const char *id, Techfeed__Sector sector,
                      const char *request_id)
{
    Techfeed__Milestone record;
    tf_raw_record (&record, id, sector);
    tf_raw_one_put_t put;
    tf_raw_one_put (&put, &record);
    put.request.request_id = (char *) request_id;
    tf_raw_send_request (dealer, &put.request);
}

Techfeed__IngestReply *tf_raw_put_record (zsock_t *dealer, Techfeed__Milestone *record)
{
    tf_raw_one_put_t put;
    tf_raw_one_put (&put, record);
    tf_raw_send_request (dealer, &put.request);
    return tf_raw_recv_reply (dealer);
}

int tf_raw_put (zsock_t *dealer, const char *id, Techfeed__Sector sector)
{
    Techfeed__Milestone record;
    tf_raw_record (&record, id, sector);
    Techfeed__IngestReply *reply = tf_raw_put_record (dealer, &record);
    if (!reply)
        return -1;
    int code = reply->n_results ? (int) reply->results[0]->code : (int) reply->code;
    techfeed__ingest_reply__free_unpacked (reply, NULL);
    return code;
}

uint64_t tf_raw_count (zsock_t *sync)
{
    Techfeed__SyncReply *reply = tf_raw_status (sync);
    uint64_t count = reply && reply->status ? reply->status->record_count : UINT64_MAX;
    if (reply)
        techfeed__sync_reply__free_unpacked (reply, NULL);
    return count;
}

int tf_raw_fixture_setup (void **state, const char *const *extra)
{
    tf_raw_fixture_t *f = (tf_raw_fixture_t *) tf_test_fixture_new (sizeof *f, extra);
    if (!f)
        return -1;
    f->ingest = zsock_new_dealer (f->svc.ingest);
    f->sync = zsock_new_dealer (f->svc.sync);
    zsock_set_rcvtimeo (f->ingest, 5000);
    zsock_set_rcvtimeo (f->sync, 5000);
    *state = f;
    return 0;
}

int tf_raw_fixture_teardown (void **state)
{
    tf_raw_fixture_t *f = (tf_raw_fixture_t *) *state;
    zsock_destroy (&f->ingest);
    zsock_destroy (&f->sync);
    //  A test that stopped the service itself (pid 0) checked its exit.
    int rc = 0;
    if (f->svc.pid)
        rc = tf_test_service_end (&f->svc);
    else
        tf_service_cleanup (&f->svc);
    free (f);
    return rc;
}

void tf_raw_send_sync (zsock_t *dealer, const Techfeed__SyncRequest *request)
{
    s_send (dealer, &request->base);
}

Techfeed__SyncReply *tf_raw_recv_sync (zsock_t *dealer)
{
    return (Techfeed__SyncReply *) s_recv (dealer, &techfeed__sync_reply__descriptor);
}

Techfeed__SyncReply *tf_raw_status (zsock_t *dealer)
{
    Techfeed__SyncRequest request = TECHFEED__SYNC_REQUEST__INIT;
    request.has_kind = 1;
    request.kind = TECHFEED__SYNC_KIND__SYNC_STATUS;
    tf_raw_send_sync (dealer, &request);
    return tf_raw_recv_sync (dealer);
}
