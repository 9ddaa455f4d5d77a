/*  tf_query — status, get and list on the sync socket. See techfeed.h.
*/
#include "techfeed.h"
#include "tf_rpc.h"
#include "tf_wire.h"

#define TF_SYNC_REPLY_MAX (512u << 20) /* decode budget of one sync reply */
#define TF_LIST_CHUNK 500              /* records per chunk we ask for */
#define TF_GET_MAX 1000                /* ids per GET (PROTOCOL.md §8) */

struct _tf_query_t {
    tf_rpc_t *rpc;     /* DEALER to the sync endpoint */
    int code;          /* last failure: Techfeed__ErrorCode, TF_NO_REPLY or TF_MISUSE */
    bool listing;      /* inside tf_query_list */
    tf_curve_t *curve; /* CURVE settings, or NULL: plain */
    char errstr[300];  /* last error */
};

/*  State of one tf_query_list: the caller's callback. */
typedef struct {
    tf_query_t *query; /* whose errstr/code a refusal sets */
    tf_record_fn *fn;  /* per record */
    void *arg;         /* for fn */
    bool stopped;      /* fn asked to stop */
} s_list_t;

tf_query_t *tf_query_new (const char *sync_endpoint)
{
    tf_rpc_t *rpc = tf_rpc_new (sync_endpoint ? sync_endpoint : TF_DEFAULT_SYNC, TF_SYNC_REPLY_MAX);
    if (!rpc)
        return NULL;
    tf_query_t *self = (tf_query_t *) zmalloc (sizeof (tf_query_t));
    self->rpc = rpc;
    return self;
}

void tf_query_destroy (tf_query_t **self_p)
{
    assert (self_p);
    tf_query_t *self = *self_p;
    if (!self)
        return;
    tf_rpc_destroy (&self->rpc);
    tf_curve_destroy (&self->curve);
    free (self);
    *self_p = NULL;
}

void tf_query_set_timeout (tf_query_t *self, int timeout_ms)
{
    tf_rpc_set_timeout (self->rpc, timeout_ms);
}

void tf_query_set_retries (tf_query_t *self, int tries)
{
    tf_rpc_set_tries (self->rpc, tries);
}

int tf_query_set_curve (tf_query_t *self, const char *server_key, const char *client_cert)
{
    assert (self && server_key);
    return tf_rpc_use_curve (self->rpc, &self->curve, server_key, client_cert, self->errstr,
                             sizeof self->errstr);
}

int tf_query_code (tf_query_t *self)
{
    return self->code;
}

const char *tf_query_errstr (tf_query_t *self)
{
    return self->errstr;
}

static void s_no_reply (tf_query_t *self)
{
    self->code = TF_NO_REPLY;
    snprintf (self->errstr, sizeof self->errstr, "%s", tf_rpc_errstr (self->rpc));
}

/*  -1 with code and errstr set when the reply is an error. */
static int s_check (tf_query_t *self, const Techfeed__SyncReply *reply)
{
    if (!reply->has_code || reply->code == TECHFEED__ERROR_CODE__OK)
        return 0;
    self->code = reply->code;
    snprintf (self->errstr, sizeof self->errstr, "%s: %s", tf_error_name (reply->code),
              reply->message ? reply->message : "refused");
    return -1;
}

/*  A request/reply round (GET, STATUS): the reply or NULL. */
static Techfeed__SyncReply *s_call (tf_query_t *self, const Techfeed__SyncRequest *request)
{
    self->code = TECHFEED__ERROR_CODE__OK;
    self->errstr[0] = 0;
    Techfeed__SyncReply *reply = (Techfeed__SyncReply *) tf_rpc_call (
        self->rpc, &request->base, &techfeed__sync_reply__descriptor, 0, NULL, NULL);
    if (!reply)
        s_no_reply (self);
    else if (s_check (self, reply) != 0) {
        tf_wire_free (&reply->base);
        reply = NULL;
    }
    return reply;
}

static void s_request_init (Techfeed__SyncRequest *request, Techfeed__SyncKind kind)
{
    techfeed__sync_request__init (request);
    request->has_version = request->has_kind = 1;
    request->version = TF_PROTOCOL_VERSION;
    request->kind = kind;
}

int tf_query_status (tf_query_t *self, tf_status_t *status)
{
    assert (self && status);
    Techfeed__SyncRequest request;
    s_request_init (&request, TECHFEED__SYNC_KIND__SYNC_STATUS);
    Techfeed__SyncReply *reply = s_call (self, &request);
    if (!reply)
        return -1;
    const Techfeed__ServerStatus *s = reply->status;
    int rc = 0;
    memset (status, 0, sizeof *status);
    if (!s || !s->epoch) {
        self->code = TECHFEED__ERROR_CODE__MALFORMED;
        snprintf (self->errstr, sizeof self->errstr, "bad reply from %s: no status",
                  tf_rpc_endpoint (self->rpc));
        rc = -1;
    } else {
        snprintf (status->epoch, sizeof status->epoch, "%s", s->epoch);
        status->head_sequence = s->head_sequence;
        status->record_count = s->record_count;
        status->log_first_sequence = s->log_first_sequence;
        if (s->digest)
            status->digest = strtoull (s->digest, NULL, 16);
        for (size_t i = 0; i < s->n_sector_heads; i++) {
            const Techfeed__SectorHead *h = s->sector_heads[i];
            if (h->sector >= 1 && h->sector <= TF_SECTOR_MAX)
                status->sector_heads[h->sector] = h->sequence;
        }
        snprintf (status->version, sizeof status->version, "%s", s->version ? s->version : "");
    }
    tf_wire_free (&reply->base);
    return rc;
}

int tf_query_get (tf_query_t *self, const char *const *ids, size_t n, tf_record_fn *fn, void *arg)
{
    assert (self && fn);
    if (n == 0 || n > TF_GET_MAX) {
        self->code = TF_MISUSE;
        snprintf (self->errstr, sizeof self->errstr, "a get takes 1 to %d ids, not %zu", TF_GET_MAX,
                  n);
        return -1;
    }
    Techfeed__SyncRequest request;
    s_request_init (&request, TECHFEED__SYNC_KIND__SYNC_GET);
    request.n_ids = n;
    request.ids = (char **) ids;
    Techfeed__SyncReply *reply = s_call (self, &request);
    if (!reply)
        return -1;
    for (size_t i = 0; i < reply->n_records; i++)
        if (fn (reply->records[i], arg) != 0)
            break;
    tf_wire_free (&reply->base);
    return 0;
}

static int s_list_chunk (const Techfeed__SyncReply *reply, void *arg)
{
    s_list_t *list = (s_list_t *) arg;
    if (s_check (list->query, reply) != 0)
        return TF_STREAM_ERROR;
    for (size_t i = 0; i < reply->n_records; i++)
        if (list->fn (reply->records[i], list->arg) != 0) {
            list->stopped = true;
            return TF_STREAM_STOP;
        }
    return TF_STREAM_MORE;
}

int tf_query_list (tf_query_t *self, const Techfeed__Filter *filter, tf_record_fn *fn, void *arg)
{
    assert (self && fn);
    if (self->listing) {
        self->code = TF_MISUSE;
        snprintf (self->errstr, sizeof self->errstr,
                  "tf_query_list called from its own callback: one list at a time per handle");
        return -1;
    }
    self->code = TECHFEED__ERROR_CODE__OK;
    self->errstr[0] = 0;
    Techfeed__SyncRequest request;
    s_request_init (&request, TECHFEED__SYNC_KIND__SYNC_SNAPSHOT);
    request.filter = (Techfeed__Filter *) filter;
    request.has_chunk_size = 1;
    request.chunk_size = TF_LIST_CHUNK;
    s_list_t list = { .query = self, .fn = fn, .arg = arg };
    self->listing = true;
    int rc = tf_rpc_stream (self->rpc, &request, s_list_chunk, &list);
    self->listing = false;
    if (rc != 0 && self->code == TECHFEED__ERROR_CODE__OK)
        s_no_reply (self);
    return rc;
}
