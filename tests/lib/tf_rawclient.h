/*  tf_rawclient — the protocol spoken by hand over plain ZeroMQ sockets,
    for tests that must not depend on libtechfeed (hostile input, access
    control, metrics). */
#ifndef TF_RAWCLIENT_H_INCLUDED
#define TF_RAWCLIENT_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#include "techfeed.pb-c.h"
#include "tf_testkit.h"

/*  A cmocka fixture: the real service and a DEALER on each of its ingest
    and sync sockets (5 s receive timeouts). */
typedef struct {
    tf_service_t svc; /* first, for tf_test_fixture_new */
    zsock_t *ingest;
    zsock_t *sync;
} tf_raw_fixture_t;

/*  Starts the service with `extra` arguments (NULL-terminated, or NULL). */
int tf_raw_fixture_setup (void **state, const char *const *extra);
/*  Stops the service (exit status 0 expected, else -1), unless the test
    stopped it itself (pid 0). */
int tf_raw_fixture_teardown (void **state);

/*  A minimal valid record in `sector`; its strings are literals except
    id, which must outlive the record. Never free_unpacked. */
void tf_raw_record (Techfeed__Milestone *record, const char *id, Techfeed__Sector sector);

/*  An IngestRequest of one put of a borrowed record, built in place
    (tf_raw_one_put): send `request`, or pack it. */
typedef struct {
    Techfeed__Operation op;
    Techfeed__Operation *ops[1];
    Techfeed__IngestRequest request;
} tf_raw_one_put_t;
void tf_raw_one_put (tf_raw_one_put_t *self, Techfeed__Milestone *record);

/*  Sends one IngestRequest on a DEALER. */
void tf_raw_send_request (zsock_t *dealer, const Techfeed__IngestRequest *request);
/*  Sends one IngestRequest of a put of each of `records` (borrowed). */
void tf_raw_send_puts (zsock_t *dealer, Techfeed__Milestone *records, size_t count);
/*  Receives the reply to `count` puts: true when each was stored; false
    (saying why on stderr) otherwise or on timeout. */
bool tf_raw_recv_stored (zsock_t *dealer, size_t count);
/*  Receives one IngestReply (caller frees with free_unpacked), NULL on timeout. */
Techfeed__IngestReply *tf_raw_recv_reply (zsock_t *dealer);

/*  Sends a put of one record with id (tf_raw_record), with request_id
    unless NULL; does not wait for the reply. */
void tf_raw_send_put (zsock_t *dealer, const char *id, Techfeed__Sector sector,
                      const char *request_id);

/*  Puts `record` alone; the reply (caller frees), NULL on timeout. */
Techfeed__IngestReply *tf_raw_put_record (zsock_t *dealer, Techfeed__Milestone *record);

/*  Record count from SYNC_STATUS; UINT64_MAX when no reply came. */
uint64_t tf_raw_count (zsock_t *sync);

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
