/*  Request/reply envelopes on the ROUTER sockets (see tf_server_int.h). */
#include "tf_server_int.h"

/*  The peer's descriptor and key, from the first frame that tells them.
    The routing id never does: ZeroMQ makes that frame when it looks ahead
    for the poller. */
static void s_note_peer (zmq_msg_t *part, tf_envelope_t *envelope)
{
    if (envelope->peer_fd < 0)
        envelope->peer_fd = zmq_msg_get (part, ZMQ_SRCFD);
    const char *user_id = envelope->user_id ? NULL : zmq_msg_gets (part, "User-Id");
    if (user_id)
        envelope->user_id = strdup (user_id);
}

/*  Receives the frames after the routing id: the first two go into
    parts[] (initialised, empty), the rest are only counted. How many there
    were. */
static size_t s_recv_rest (void *handle, zmq_msg_t parts[2], tf_envelope_t *envelope)
{
    size_t frames = 0;
    bool more = true;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init (&part);
        if (zmq_msg_recv (&part, handle, 0) < 0)
            more = false; // cannot happen mid-message: all of it arrived
        else {
            s_note_peer (&part, envelope);
            more = zmq_msg_more (&part);
            if (frames < 2)
                zmq_msg_move (&parts[frames], &part);
            frames++;
        }
        zmq_msg_close (&part);
    }
    return frames;
}

int tf_envelope_recv (zsock_t *socket, tf_envelope_t *envelope)
{
    memset (envelope, 0, sizeof *envelope);
    envelope->peer_fd = -1;
    envelope->identity = zframe_recv (socket);
    if (!envelope->identity)
        return -1;
    zmq_msg_t parts[2];
    zmq_msg_init (&parts[0]);
    zmq_msg_init (&parts[1]);
    size_t frames =
        zsock_rcvmore (socket) ? s_recv_rest (zsock_resolve (socket), parts, envelope) : 0;
    zmq_msg_t *body = &parts[0];
    if (frames >= 2 && zmq_msg_size (&parts[0]) == 0) {
        envelope->delimiter = true;
        body = &parts[1];
        frames--;
    }
    if (frames != 1)
        snprintf (envelope->error, sizeof envelope->error, "expected 1 body frame, got %zu",
                  frames);
    else if (zmq_msg_size (body) == 0)
        snprintf (envelope->error, sizeof envelope->error, "empty body frame");
    else {
        zmq_msg_init (&envelope->body);
        zmq_msg_move (&envelope->body, body);
        envelope->has_body = true;
    }
    zmq_msg_close (&parts[0]);
    zmq_msg_close (&parts[1]);
    return 0;
}

static void s_free (void *data, void *hint)
{
    free (data);
}

void tf_envelope_send_owned (zsock_t *socket, const tf_envelope_t *envelope, uint8_t *data,
                             size_t size)
{
    void *handle = zsock_resolve (socket);
    zmq_msg_t body;
    if (zmq_msg_init_data (&body, data, size, s_free, NULL) != 0) {
        free (data);
        return;
    }
    zmq_send (handle, zframe_data (envelope->identity), zframe_size (envelope->identity),
              ZMQ_SNDMORE);
    if (envelope->delimiter)
        zmq_send (handle, NULL, 0, ZMQ_SNDMORE);
    //  ROUTER drops replies to peers that are gone; that is fine here.
    if (zmq_msg_send (&body, handle, 0) < 0)
        zmq_msg_close (&body); // not sent: frees data
}

void tf_envelope_send_bytes (zsock_t *socket, const tf_envelope_t *envelope, const uint8_t *data,
                             size_t size)
{
    uint8_t *copy = (uint8_t *) malloc (size ? size : 1);
    if (!copy)
        abort ();
    if (size)
        memcpy (copy, data, size);
    tf_envelope_send_owned (socket, envelope, copy, size);
}

void tf_envelope_reply (zsock_t *socket, const tf_envelope_t *envelope,
                        const ProtobufCMessage *message)
{
    size_t size;
    uint8_t *data = tf_wire_pack (message, &size);
    tf_envelope_send_owned (socket, envelope, data, size);
}

void tf_envelope_clear (tf_envelope_t *envelope)
{
    zframe_destroy (&envelope->identity);
    if (envelope->has_body)
        zmq_msg_close (&envelope->body);
    envelope->has_body = false;
    free (envelope->user_id);
    envelope->user_id = NULL;
    free (envelope->request_id);
    envelope->request_id = NULL;
}

bool tf_endpoint_find (const char *endpoints, bool (*fails) (const char *endpoint), char *out,
                       size_t outlen)
{
    char *list = strdup (endpoints);
    if (!list)
        abort ();
    char *save = NULL;
    bool found = false;
    for (char *ep = strtok_r (list, ",", &save); ep && !found; ep = strtok_r (NULL, ",", &save))
        if ((found = fails (ep)))
            snprintf (out, outlen, "%s", ep);
    free (list);
    return found;
}

size_t tf_decode_budget (size_t frame_size)
{
    return frame_size * 32 + 64 * 1024;
}

size_t tf_sector_heads_fill (const uint64_t *heads, Techfeed__SectorHead *storage,
                             Techfeed__SectorHead **pointers)
{
    for (int s = 1; s <= TF_SECTOR_MAX; s++) {
        Techfeed__SectorHead *head = &storage[s - 1];
        techfeed__sector_head__init (head);
        head->has_sector = head->has_sequence = 1;
        head->sector = (Techfeed__Sector) s;
        head->sequence = heads[s];
        pointers[s - 1] = head;
    }
    return TF_SECTOR_MAX;
}
