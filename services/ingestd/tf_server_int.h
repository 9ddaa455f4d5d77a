/*  Private to techfeed-ingestd: the server state shared by its parts
    (tf_server.c lifecycle and heartbeats, tf_ingest.c writes, tf_sync.c
    reads) and the request/reply envelope they both speak.
*/
#ifndef TF_SERVER_INT_H_INCLUDED
#define TF_SERVER_INT_H_INCLUDED

#include <sys/types.h>

#include "tf_applier.h"
#include "tf_checkpointer.h"
#include "tf_http.h"
#include "tf_metrics.h"
#include "tf_server.h"
#include "tf_store.h"
#include "tf_wire.h"

typedef struct _tf_sync_t tf_sync_t;

typedef struct {
    const tf_server_config_t *config;
    tf_store_t *store;
    tf_checkpointer_t *checkpointer; /* WAL checkpoints on their own thread */
    int wal_step;                    /* WAL pages / TF_WAL_PAGES_KICK, last seen */
    int wal_checkpoint_at;           /* WAL pages past which the writer checkpoints */
    tf_applier_t *applier;           /* the records table behind the log, same */
    uint64_t applier_failures;       /* as last reported */
    int64_t lag_bound_from_ms;       /* writes wait for records again from then */
    zsock_t *ingest;                 /* ROUTER: IngestRequest -> IngestReply */
    zsock_t *events;                 /* PUB: [sector][ChangeEvent], ["heartbeat"][Heartbeat] */
    zsock_t *sync;                   /* ROUTER: SyncRequest -> SyncReply */
    tf_sync_t *cursors;              /* open snapshot/catch-up cursors */
    tf_arena_t *requests;            /* the requests of the group being handled */
    char epoch[33];                  /* the database's epoch */
    uint64_t head;                   /* last committed sequence */
    zactor_t *monitor;               /* zmonitor of the events socket: counts subscribers */
    zactor_t *zap;                   /* ZAP handler thread when CURVE is on, else NULL */
    zcertstore_t *writers;           /* keys allowed to write; reloads when its directory changes */
    zhashx_t *writers_seen;          /* writer key -> when (ms) the store last confirmed it */
    tf_http_t *http;                 /* health and metrics, or NULL */
    tf_metrics_t metrics;            /* counters shared with the HTTP thread */
    int hwm_fd;                      /* the high-water file beside the database, or -1 */
    uint64_t hwm_written;            /* head last written to the high-water file */
    bool endpoints_written;          /* --endpoints-file is ours to remove at stop ... */
    ino_t endpoints_ino;             /* ... while it is the file we wrote */
    dev_t endpoints_dev;
    double full_free_bytes; /* free space when a write last failed full, or -1 */
} tf_server_t;

/*  A request as it arrived on a ROUTER socket:

    +----------+----------------+------+
    | identity | [empty frame]  | body |     the empty frame only from REQ clients
    +----------+----------------+------+
*/
typedef struct {
    zframe_t *identity; /* routing id, owned */
    int peer_fd;        /* the connection's descriptor in ZeroMQ's I/O thread, -1 unknown */
    char *user_id;      /* the client's CURVE key (ZAP's User-Id), owned; NULL without */
    char *request_id;   /* a sync request's valid request_id, echoed in its replies; owned */
    bool delimiter;     /* the client is REQ: echo the empty frame */
    bool has_body;      /* false when the shape was wrong */
    zmq_msg_t body;     /* the body frame as ZeroMQ received it, owned */
    char error[128];    /* why the shape was wrong */
} tf_envelope_t;

/*  The body's bytes; NULL when the shape was wrong. (libzmq's accessors
    take no const; they do not change the message.) */
static inline const uint8_t *tf_envelope_body (const tf_envelope_t *envelope, size_t *size)
{
    zmq_msg_t *body = (zmq_msg_t *) &envelope->body;
    *size = envelope->has_body ? zmq_msg_size (body) : 0;
    return envelope->has_body ? (const uint8_t *) zmq_msg_data (body) : NULL;
}

/*  Receives one message; 0 with the envelope filled (has_body false and error
    set when the frames are not a request), -1 when nothing could be read. */
int tf_envelope_recv (zsock_t *socket, tf_envelope_t *envelope);
/*  Sends `message` packed as the reply to `envelope`. */
void tf_envelope_reply (zsock_t *socket, const tf_envelope_t *envelope,
                        const ProtobufCMessage *message);
void tf_envelope_send_bytes (zsock_t *socket, const tf_envelope_t *envelope, const uint8_t *data,
                             size_t size);
/*  Same, but `data` (malloc'd) is handed to ZeroMQ, which frees it once
    sent: a megabyte of sync chunk is neither copied nor allocated twice. */
void tf_envelope_send_owned (zsock_t *socket, const tf_envelope_t *envelope, uint8_t *data,
                             size_t size);
void tf_envelope_clear (tf_envelope_t *envelope);

/*  Bytes a decoded request may allocate: generous for valid input,
    bounded for hostile input. */
size_t tf_decode_budget (size_t frame_size);

/*  The first endpoint of a comma-separated setting for which `fails` is
    true, copied into `out`; false when there is none. */
bool tf_endpoint_find (const char *endpoints, bool (*fails) (const char *endpoint), char *out,
                       size_t outlen);

/*  Records in the high-water file that changes up to `head` were
    committed and are about to be acknowledged (tf_server.c). */
void tf_server_served (tf_server_t *self, uint64_t head);

/*  Bytes free beside the database for the service, or -1 unknown. */
double tf_server_free_bytes (const tf_server_t *self);

/*  Access (tf_auth.c). check_config: -1 with why in err, naming the
    setting, when the CURVE settings cannot be used (an unreadable
    certificate, a missing key directory, key directories without CURVE)
    or plain TCP would reach beyond loopback without --insecure.
    warn_exposure: logs that --insecure does. start: CURVE and ZAP on the
    sockets, before they bind. may_write: false with a reason when the
    request's key (`user_id`: its envelope's, NULL without CURVE) is not a
    writer. */
int tf_auth_check_config (const tf_server_config_t *config, char *err, size_t errlen);
void tf_auth_warn_exposure (const tf_server_config_t *config);
int tf_auth_start (tf_server_t *self);
void tf_auth_stop (tf_server_t *self);
bool tf_auth_may_write (tf_server_t *self, const char *user_id, char *why, size_t whylen);

/*  Ingest (tf_ingest.c): drains pending requests into one transaction;
    returns how many it took. */
size_t tf_ingest_handle (tf_server_t *self);
/*  At shutdown: answers what is still waiting UNAVAILABLE, storing nothing. */
void tf_ingest_refuse_waiting (tf_server_t *self);

/*  Sync (tf_sync.c). */
tf_sync_t *tf_sync_new (void);
void tf_sync_destroy (tf_sync_t **self_p);
void tf_sync_handle (tf_server_t *self);
void tf_sync_expire (tf_server_t *self, int64_t now_ms);
/*  At shutdown: answers UNAVAILABLE the requests waiting for chunks of
    open cursors, then those still unread on the sync socket. */
void tf_sync_refuse_waiting (tf_server_t *self);
/*  Starts watching the sync socket's disconnects (before it binds); 0 or -1. */
int tf_sync_watch_peers (tf_server_t *self);
/*  Stops that, before the sync socket or the cursors are destroyed. */
void tf_sync_unwatch_peers (tf_server_t *self);
/*  The socket the disconnects arrive on, for the loop's poller. */
void *tf_sync_peers (tf_server_t *self);
/*  Closes the cursors of every client that disconnected so far. */
void tf_sync_forget_peers (tf_server_t *self);
size_t tf_sync_open_cursors (tf_server_t *self);
/*  The actor that reads chunks ahead, for the loop's poller; and what
    the loop calls on each wake-up to send the chunks it has read. */
void *tf_sync_reader (tf_server_t *self);
void tf_sync_take_chunks (tf_server_t *self);

/*  Per-sector heads 1..TF_SECTOR_MAX as SectorHead messages in `storage`,
    pointed to by `pointers`. Returns the count. */
size_t tf_sector_heads_fill (const uint64_t *heads, Techfeed__SectorHead *storage,
                             Techfeed__SectorHead **pointers);

#endif
