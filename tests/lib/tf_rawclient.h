/*  tf_rawclient — the protocol spoken by hand over plain ZeroMQ sockets,
    for tests that must not depend on libtechfeed (hostile input, access
    control, metrics). */
#ifndef TF_RAWCLIENT_H_INCLUDED
#define TF_RAWCLIENT_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#include "techfeed.pb-c.h"

/*  A minimal valid record in `sector`; its strings are literals except
    id, which must outlive the record. Never free_unpacked. */
void tf_raw_record (Techfeed__Milestone *record, const char *id, Techfeed__Sector sector);

/*  Sends one IngestRequest on a DEALER. */
void tf_raw_send_request (zsock_t *dealer, const Techfeed__IngestRequest *request);
/*  Receives one IngestReply (caller frees with free_unpacked), NULL on timeout. */
Techfeed__IngestReply *tf_raw_recv_reply (zsock_t *dealer);

/*  Sends a put of one record with id (tf_raw_record), with request_id
    unless NULL; does not wait for the reply. */
void tf_raw_send_put (zsock_t *dealer, const char *id, Techfeed__Sector sector,
                      const char *request_id);

/*  Puts one record with id; returns the first item's code, the whole
    reply's code when it has no items, or -1 when no reply came within the
    socket's receive timeout. */
int tf_raw_put (zsock_t *dealer, const char *id, Techfeed__Sector sector);

/*  Sends one SyncRequest on a DEALER connected to the sync socket. */
void tf_raw_send_sync (zsock_t *dealer, const Techfeed__SyncRequest *request);
/*  Receives one SyncReply (caller frees with free_unpacked), NULL on timeout. */
Techfeed__SyncReply *tf_raw_recv_sync (zsock_t *dealer);

/*  SYNC_STATUS over a DEALER connected to the sync socket; NULL on timeout.
    Caller frees with techfeed__sync_reply__free_unpacked. */
Techfeed__SyncReply *tf_raw_status (zsock_t *dealer);

#endif
