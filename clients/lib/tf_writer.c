/*  tf_writer — puts and deletes on the ingest socket. See techfeed.h.

    Every request carries a request_id (a fresh UUID unless the caller set
    one), so the retries of tf_rpc_call (same bytes on a fresh socket) are
    idempotent on the service, and replies are matched to it: a late reply
    to an earlier request on a reused socket is dropped.
*/
#include "techfeed.h"
#include "tf_rpc.h"
#include "tf_validate.h"
#include "tf_wire.h"

#define TF_MAX_OPS 1000                 /* operations per request (PROTOCOL.md §5) */
#define TF_INGEST_REPLY_MAX (64u << 20) /* decode budget of one reply */
#define TF_UNAVAILABLE_PAUSE_MS 200     /* first pause before resending after UNAVAILABLE */

struct _tf_writer_t {
    tf_rpc_t *rpc;                          /* DEALER to the ingest endpoint */
    char next_id[TF_REQUEST_ID_MAX + 1];    /* caller's id for the next request, "" = none */
    char request_id[TF_REQUEST_ID_MAX + 1]; /* id of the last request sent */
    bool replayed;                          /* last reply came from the idempotency cache */
    tf_curve_t *curve;                      /* CURVE settings, or NULL: plain */
    size_t max_frame;                       /* largest request sent, bytes */
    char errstr[300];                       /* last error */
};

tf_writer_t *tf_writer_new (const char *ingest_endpoint)
{
    tf_rpc_t *rpc =
        tf_rpc_new (ingest_endpoint ? ingest_endpoint : TF_DEFAULT_INGEST, TF_INGEST_REPLY_MAX);
    if (!rpc)
        return NULL;
    tf_writer_t *self = (tf_writer_t *) zmalloc (sizeof (tf_writer_t));
    self->rpc = rpc;
    self->max_frame = TF_DEFAULT_MAX_FRAME;
    return self;
}

void tf_writer_destroy (tf_writer_t **self_p)
{
    assert (self_p);
    tf_writer_t *self = *self_p;
    if (!self)
        return;
    tf_rpc_destroy (&self->rpc);
    tf_curve_destroy (&self->curve);
    free (self);
    *self_p = NULL;
}

void tf_writer_set_timeout (tf_writer_t *self, int timeout_ms)
{
    tf_rpc_set_timeout (self->rpc, timeout_ms);
}

void tf_writer_set_retries (tf_writer_t *self, int tries)
{
    tf_rpc_set_tries (self->rpc, tries);
}

void tf_writer_set_max_frame (tf_writer_t *self, size_t bytes)
{
    self->max_frame = bytes ? bytes : TF_DEFAULT_MAX_FRAME;
}

int tf_writer_set_curve (tf_writer_t *self, const char *server_key, const char *client_cert)
{
    assert (self && server_key);
    return tf_rpc_use_curve (self->rpc, &self->curve, server_key, client_cert, self->errstr,
                             sizeof self->errstr);
}

int tf_writer_set_request_id (tf_writer_t *self, const char *request_id)
{
    if (!request_id || !tf_valid_request_id (request_id)) {
        snprintf (self->errstr, sizeof self->errstr,
                  "not a request id: 1 to 64 printable ASCII characters, no space");
        return -1;
    }
    snprintf (self->next_id, sizeof self->next_id, "%s", request_id);
    return 0;
}

const char *tf_writer_request_id (tf_writer_t *self)
{
    return self->request_id;
}

bool tf_writer_replayed (tf_writer_t *self)
{
    return self->replayed;
}

const char *tf_writer_errstr (tf_writer_t *self)
{
    return self->errstr;
}

/*  A reply answers our request when it carries our request_id, or carries
    none and refuses a request as a whole: the service could not read the
    id (MALFORMED) or did not get that far (UNAUTHORIZED). A late reply to
    an earlier request cannot be that one: a request that got no reply
    leaves its socket closed behind it (tf_rpc_call). */
static bool s_match_request_id (const ProtobufCMessage *reply, const void *arg)
{
    const Techfeed__IngestReply *r = (const Techfeed__IngestReply *) reply;
    if (!r->request_id)
        return r->has_code && r->code != TECHFEED__ERROR_CODE__OK && r->n_results == 0;
    return strcmp (r->request_id, (const char *) arg) == 0;
}

/*  Copies one ItemResult into a tf_result_t. */
static void s_copy_result (tf_result_t *out, const Techfeed__ItemResult *in)
{
    memset (out, 0, sizeof *out);
    out->code = in->has_code ? (int) in->code : TECHFEED__ERROR_CODE__OK;
    snprintf (out->id, sizeof out->id, "%s", in->id ? in->id : "");
    out->sequence = in->has_sequence ? in->sequence : 0;
    out->revision = in->has_revision ? in->revision : 0;
    out->current_revision = in->has_current_revision ? in->current_revision : 0;
    snprintf (out->field, sizeof out->field, "%s", in->field ? in->field : "");
    snprintf (out->message, sizeof out->message, "%s", in->message ? in->message : "");
}

/*  A whole-request error, copied into every result (with each op's id). */
static void s_fill_results (tf_result_t *results, const tf_op_t *ops, size_t n, int code,
                            const char *message)
{
    for (size_t i = 0; i < n; i++) {
        tf_result_t *r = &results[i];
        memset (r, 0, sizeof *r);
        r->code = code;
        const char *id = ops[i].record ? ops[i].record->id : ops[i].id;
        snprintf (r->id, sizeof r->id, "%s", id ? id : "");
        snprintf (r->message, sizeof r->message, "%s", message ? message : tf_error_name (code));
    }
}

/*  A request over max_frame, not sent: TOO_LARGE for each operation. */
static int s_refuse_size (tf_writer_t *self, const tf_op_t *ops, size_t n, size_t size,
                          tf_result_t *results)
{
    char message[200];
    snprintf (message, sizeof message,
              "the request is %zu bytes, over the %zu a request may be (the service's "
              "--max-frame): send fewer records at a time",
              size, self->max_frame);
    snprintf (self->errstr, sizeof self->errstr, "TOO_LARGE: %s", message);
    s_fill_results (results, ops, n, TECHFEED__ERROR_CODE__TOO_LARGE, message);
    return 0;
}

/*  Sends the request, resending (same request_id) while the service says
    UNAVAILABLE and tries remain. The reply or NULL (errstr set). */
static Techfeed__IngestReply *s_exchange (tf_writer_t *self, const Techfeed__IngestRequest *request)
{
    int tries = tf_rpc_tries (self->rpc);
    int pause = TF_UNAVAILABLE_PAUSE_MS;
    for (int round = 1;; round++) {
        Techfeed__IngestReply *reply = (Techfeed__IngestReply *) tf_rpc_call (
            self->rpc, &request->base, &techfeed__ingest_reply__descriptor, 0, s_match_request_id,
            request->request_id);
        if (!reply) {
            snprintf (self->errstr, sizeof self->errstr, "%s", tf_rpc_errstr (self->rpc));
            return NULL;
        }
        bool unavailable = reply->has_code && reply->code == TECHFEED__ERROR_CODE__UNAVAILABLE;
        if (!unavailable || round >= tries || zsys_interrupted)
            return reply;
        tf_wire_free (&reply->base);
        zclock_sleep (pause);
        pause *= 2;
    }
}

int tf_writer_send (tf_writer_t *self, const tf_op_t *ops, size_t n, bool atomic,
                    tf_result_t *results)
{
    assert (self);
    assert (ops || n == 0);
    assert (results || n == 0);
    self->errstr[0] = 0;
    self->replayed = false;
    if (n == 0 || n > TF_MAX_OPS) {
        snprintf (self->errstr, sizeof self->errstr, "a request takes 1 to %d operations, not %zu",
                  TF_MAX_OPS, n);
        return -1;
    }
    if (self->next_id[0]) {
        snprintf (self->request_id, sizeof self->request_id, "%s", self->next_id);
        self->next_id[0] = 0;
    } else {
        zuuid_t *uuid = zuuid_new ();
        snprintf (self->request_id, sizeof self->request_id, "%s", zuuid_str_canonical (uuid));
        zuuid_destroy (&uuid);
    }
    //  The request points into the caller's records; nothing is copied
    Techfeed__Operation *storage = (Techfeed__Operation *) zmalloc (n * sizeof *storage);
    Techfeed__Operation **pointers = (Techfeed__Operation **) zmalloc (n * sizeof *pointers);
    for (size_t i = 0; i < n; i++) {
        Techfeed__Operation *op = &storage[i];
        techfeed__operation__init (op);
        op->has_kind = 1;
        if (ops[i].record) {
            op->kind = TECHFEED__OP_KIND__OP_PUT;
            op->record = (Techfeed__Milestone *) ops[i].record;
        } else {
            op->kind = TECHFEED__OP_KIND__OP_DELETE;
            op->id = (char *) (ops[i].id ? ops[i].id : "");
        }
        op->has_expected_revision = ops[i].has_expected_revision;
        op->expected_revision = ops[i].expected_revision;
        pointers[i] = op;
    }
    Techfeed__IngestRequest request = TECHFEED__INGEST_REQUEST__INIT;
    request.has_version = 1;
    request.version = TF_PROTOCOL_VERSION;
    request.request_id = self->request_id;
    request.n_ops = n;
    request.ops = pointers;
    request.has_atomic = 1;
    request.atomic = atomic;

    //  Larger, the service would drop the connection: no reply, only tries
    size_t size = techfeed__ingest_request__get_packed_size (&request);
    Techfeed__IngestReply *reply = size <= self->max_frame ? s_exchange (self, &request) : NULL;
    free (pointers);
    free (storage);
    if (size > self->max_frame)
        return s_refuse_size (self, ops, n, size, results);
    if (!reply)
        return -1;

    int rc = 0;
    self->replayed = reply->has_replayed && reply->replayed;
    int code = reply->has_code ? (int) reply->code : TECHFEED__ERROR_CODE__OK;
    if (code != TECHFEED__ERROR_CODE__OK) {
        snprintf (self->errstr, sizeof self->errstr, "%s: %s", tf_error_name (code),
                  reply->message ? reply->message : "request refused");
        s_fill_results (results, ops, n, code, reply->message);
    } else if (reply->n_results != n) {
        snprintf (self->errstr, sizeof self->errstr,
                  "bad reply from %s: %zu results for %zu operations", tf_rpc_endpoint (self->rpc),
                  reply->n_results, n);
        rc = -1;
    } else
        for (size_t i = 0; i < n; i++)
            s_copy_result (&results[i], reply->results[i]);
    tf_wire_free (&reply->base);
    return rc;
}

int tf_writer_put (tf_writer_t *self, Techfeed__Milestone *const *records, size_t n, bool atomic,
                   tf_result_t *results)
{
    assert (records || n == 0);
    tf_op_t *ops = (tf_op_t *) zmalloc ((n ? n : 1) * sizeof *ops);
    for (size_t i = 0; i < n; i++)
        ops[i].record = records[i];
    int rc = tf_writer_send (self, ops, n, atomic, results);
    free (ops);
    return rc;
}

int tf_writer_delete (tf_writer_t *self, const char *id, bool has_expected, uint64_t expected,
                      tf_result_t *result)
{
    assert (id);
    tf_op_t op = { .id = id, .has_expected_revision = has_expected, .expected_revision = expected };
    return tf_writer_send (self, &op, 1, false, result);
}

const char *techfeed_version (void)
{
#define TF_STR_(x) #x
#define TF_STR(x) TF_STR_ (x)
    return TF_STR (TECHFEED_VERSION_MAJOR) "." TF_STR (TECHFEED_VERSION_MINOR) "." TF_STR (
        TECHFEED_VERSION_PATCH);
}
