/*  Ingest: validate, store, reply, publish — in that order.

    Requests that are waiting when the ingest socket becomes readable are
    taken together (up to group_max) into one write transaction, so one
    fsync acknowledges all of them (group commit). Replies go out only after
    COMMIT, and the change events after the replies, in sequence order. If
    the database fails, the whole group is rolled back and every operation
    in it is answered STORAGE or STORAGE_FULL: nothing is acknowledged that
    was not stored.
*/
#include "tf_log.h"
#include "tf_server_int.h"
#include "tf_validate.h"

/*  A change to publish once the transaction has committed. */
typedef struct {
    const char *topic; /* sector slug, static */
    uint64_t sequence; /* of the change */
    uint8_t *data;     /* packed ChangeEvent */
    size_t size;
} s_event_t;

/*  One request of a group, from arrival to reply. It and what it points
    to live in the group's arena (self->requests), reset once every
    request of the group is answered; only the envelope's frames and a
    replayed reply are the request's own. */
typedef struct {
    tf_arena_t *arena;
    tf_envelope_t envelope;
    Techfeed__IngestRequest *request; /* NULL when refused whole */
    Techfeed__IngestReply reply;      /* built while processing */
    Techfeed__ItemResult *items;      /* reply.results point into this */
    uint8_t *replayed;                /* packed cached reply (malloc'd), if a replay */
    size_t replayed_size;
    uint8_t *packed; /* the reply packed for the cache, sent as it is */
    size_t packed_size;
    s_event_t *events; /* this request's changes, one per operation at most */
    size_t n_events;
    int64_t received_ns; /* monotonic arrival time, for the latency histogram */
} s_pending_t;

/*  Why an item was refused. Strings are copied into the reply. */
static void s_item_error (tf_arena_t *arena, Techfeed__ItemResult *item, Techfeed__ErrorCode code,
                          const char *field, const char *format, ...)
{
    char message[300];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    item->has_code = 1;
    item->code = code;
    item->field = field && *field ? tf_arena_copy (arena, field, strlen (field)) : NULL;
    item->message = tf_arena_copy (arena, message, strlen (message));
}

static void s_pending_destroy (s_pending_t *pending)
{
    free (pending->replayed);
    tf_envelope_clear (&pending->envelope);
}

static void s_reply_error (s_pending_t *pending, Techfeed__ErrorCode code, const char *message)
{
    pending->reply.has_code = 1;
    pending->reply.code = code;
    pending->reply.message = tf_arena_copy (pending->arena, message, strlen (message));
}

/*  Checks what one operation says on its own, before the transaction:
    the item is refused here, or left without a code for s_apply. */
static void s_precheck (tf_arena_t *arena, Techfeed__Operation *op, Techfeed__ItemResult *item)
{
    tf_verror_t verr;
    if (op->kind == TECHFEED__OP_KIND__OP_PUT) {
        if (!op->record) {
            s_item_error (arena, item, TECHFEED__ERROR_CODE__INVALID, "/record",
                          "a put needs a record");
            return;
        }
        if (op->record->id && tf_valid_id (op->record->id))
            item->id = op->record->id; // the decoded request lives in the same arena
        if (tf_validate_milestone (op->record, &verr))
            s_item_error (arena, item, TECHFEED__ERROR_CODE__INVALID, verr.field, "%s",
                          verr.message);
    } else if (op->kind == TECHFEED__OP_KIND__OP_DELETE) {
        if (!op->id || !tf_valid_id (op->id)) {
            s_item_error (arena, item, TECHFEED__ERROR_CODE__INVALID, "/id",
                          "a delete needs an id of [a-z0-9][a-z0-9._-]*, 1 to %d bytes", TF_ID_MAX);
            return;
        }
        item->id = op->id;
    } else
        s_item_error (arena, item, TECHFEED__ERROR_CODE__INVALID, "/kind",
                      "operation kind must be OP_PUT or OP_DELETE");
}

/*  The reply's items, each checked on its own: validation is CPU work
    that needs no database, so it stays out of the write transaction. */
static void s_items_new (s_pending_t *pending)
{
    size_t count = pending->request->n_ops;
    pending->items =
        (Techfeed__ItemResult *) tf_arena_alloc (pending->arena, count * sizeof *pending->items);
    pending->reply.results =
        (Techfeed__ItemResult **) tf_arena_alloc (pending->arena, count * sizeof (void *));
    pending->events = (s_event_t *) tf_arena_alloc (pending->arena, count * sizeof (s_event_t));
    pending->reply.n_results = count;
    for (size_t i = 0; i < count; i++) {
        techfeed__item_result__init (&pending->items[i]);
        pending->reply.results[i] = &pending->items[i];
        s_precheck (pending->arena, pending->request->ops[i], &pending->items[i]);
    }
}

/*  Whether the request as a whole may be processed: OK, or the code of
    the refusal with `err` saying why. */
static Techfeed__ErrorCode s_check_request (tf_server_t *self,
                                            const Techfeed__IngestRequest *request,
                                            const char *user_id, char *err, size_t errlen)
{
    if (!tf_auth_may_write (self, user_id, err, errlen))
        return TECHFEED__ERROR_CODE__UNAUTHORIZED;
    if (request->request_id && !tf_valid_request_id (request->request_id)) {
        snprintf (err, errlen, "/request_id: must be 1 to 64 printable ASCII characters, no space");
        return TECHFEED__ERROR_CODE__INVALID;
    }
    if (request->has_version && request->version != TF_PROTOCOL_VERSION) {
        snprintf (err, errlen, "protocol version %u is not supported (this service speaks %d)",
                  request->version, TF_PROTOCOL_VERSION);
        return TECHFEED__ERROR_CODE__UNSUPPORTED;
    }
    if (request->n_ops == 0) {
        snprintf (err, errlen, "/ops: a request needs at least one operation");
        return TECHFEED__ERROR_CODE__INVALID;
    }
    if ((int64_t) request->n_ops > self->config->max_ops) {
        snprintf (err, errlen,
                  "/ops: %zu operations exceed the limit of %" PRId64 " per request (--max-ops)",
                  request->n_ops, self->config->max_ops);
        return TECHFEED__ERROR_CODE__TOO_LARGE;
    }
    return TECHFEED__ERROR_CODE__OK;
}

/*  Decodes and checks the request as a whole; on failure the reply says
    why (echoing a valid request id) and pending->request stays NULL. */
static void s_pending_decode (tf_server_t *self, s_pending_t *pending)
{
    tf_envelope_t *envelope = &pending->envelope;
    size_t size;
    const uint8_t *body = tf_envelope_body (envelope, &size);
    if (!body) {
        s_reply_error (pending, TECHFEED__ERROR_CODE__MALFORMED, envelope->error);
        return;
    }
    char err[256];
    Techfeed__IngestRequest *request = (Techfeed__IngestRequest *) tf_wire_unpack_in (
        self->requests, &techfeed__ingest_request__descriptor, body, size, tf_decode_budget (size),
        err, sizeof err);
    if (!request) {
        s_reply_error (pending, TECHFEED__ERROR_CODE__MALFORMED, err);
        return;
    }
    if (request->request_id && tf_valid_request_id (request->request_id))
        pending->reply.request_id = request->request_id;
    Techfeed__ErrorCode code = s_check_request (self, request, envelope->user_id, err, sizeof err);
    if (code == TECHFEED__ERROR_CODE__OK) {
        pending->request = request;
        s_items_new (pending);
    } else
        s_reply_error (pending, code, err);
}

/*  The change event for a stored put or delete, packed once: a put's
    record is the store's own bytes, appended as field 7. */
static void s_event_add (s_pending_t *pending, const tf_server_t *self, const char *id,
                         const tf_change_t *change, bool is_delete)
{
    Techfeed__ChangeEvent event = TECHFEED__CHANGE_EVENT__INIT;
    event.epoch = (char *) self->epoch;
    event.has_sequence = event.has_kind = event.has_sector = event.has_revision = 1;
    event.has_sector_prev_sequence = event.has_timestamp_ms = 1;
    event.sequence = change->sequence;
    event.kind =
        is_delete ? TECHFEED__CHANGE_KIND__CHANGE_DELETE : TECHFEED__CHANGE_KIND__CHANGE_PUT;
    event.sector = (Techfeed__Sector) change->sector;
    event.id = (char *) id;
    event.revision = change->revision;
    event.sector_prev_sequence = change->sector_prev_sequence;
    event.timestamp_ms = change->timestamp_ms;
    s_event_t *packed = &pending->events[pending->n_events++];
    packed->topic = tf_sector_slug (change->sector);
    packed->sequence = change->sequence;
    if (is_delete)
        packed->data = tf_wire_pack_in (pending->arena, &event.base, &packed->size);
    else
        packed->data = tf_wire_pack_with_in (pending->arena, &event.base, 7, change->body,
                                             change->body_size, &packed->size);
}

/*  Applies one checked operation inside the open transaction. Returns 0
    when the item is done (stored or refused, the item says which), -1
    when the database failed and the whole group must be rolled back. */
static int s_apply (tf_server_t *self, s_pending_t *pending, size_t index, int64_t now_ms)
{
    Techfeed__Operation *op = pending->request->ops[index];
    Techfeed__ItemResult *item = &pending->items[index];
    if (item->has_code) // refused by s_precheck
        return 0;
    tf_change_t change = { 0 };
    const char *id = item->id;
    int rc = op->kind == TECHFEED__OP_KIND__OP_PUT
                 ? tf_store_put (self->store, op->record, op->has_expected_revision,
                                 op->expected_revision, now_ms, &change)
                 : tf_store_delete (self->store, id, op->has_expected_revision,
                                    op->expected_revision, now_ms, &change);

    switch (rc) {
        case TF_STORE_OK:
            item->has_code = item->has_sequence = item->has_revision = 1;
            item->code = TECHFEED__ERROR_CODE__OK;
            item->sequence = change.sequence;
            item->revision = change.revision;
            s_event_add (pending, self, id, &change, op->kind == TECHFEED__OP_KIND__OP_DELETE);
            return 0;
        case TF_STORE_CONFLICT:
            s_item_error (pending->arena, item, TECHFEED__ERROR_CODE__CONFLICT,
                          "/expected_revision",
                          "expected revision %" PRIu64 ", stored revision is %" PRIu64,
                          op->expected_revision, change.current_revision);
            item->has_current_revision = 1;
            item->current_revision = change.current_revision;
            return 0;
        case TF_STORE_NOT_FOUND:
            s_item_error (pending->arena, item, TECHFEED__ERROR_CODE__NOT_FOUND, "/id",
                          "no milestone with id '%s'", id);
            return 0;
        case TF_STORE_IMMUTABLE:
            s_item_error (pending->arena, item, TECHFEED__ERROR_CODE__INVALID, "/sector",
                          "'%s' is stored in sector %s; a sector cannot change (delete the "
                          "record and put it again)",
                          id,
                          tf_sector_slug (change.sector) ? tf_sector_slug (change.sector) : "?");
            return 0;
        default: return rc == TF_STORE_FULL ? TF_STORE_FULL : TF_STORE_ERROR;
    }
}

/*  Processes one decoded request: replay, or apply every operation. */
static int s_process (tf_server_t *self, s_pending_t *pending, int64_t now_ms)
{
    Techfeed__IngestRequest *request = pending->request;
    if (request->request_id &&
        tf_store_request_get (self->store, request->request_id, &pending->replayed,
                              &pending->replayed_size) == TF_STORE_OK)
        return 0;

    size_t count = request->n_ops;
    int rc = request->atomic ? tf_store_savepoint (self->store) : 0;
    if (rc)
        return rc;
    size_t failed = 0;
    for (size_t i = 0; i < count; i++) {
        if ((rc = s_apply (self, pending, i, now_ms)))
            return rc;
        failed += pending->items[i].code != TECHFEED__ERROR_CODE__OK;
    }
    if (request->atomic) {
        rc = failed ? tf_store_rollback_to (self->store) : tf_store_release (self->store);
        if (rc)
            return rc;
        for (size_t i = 0; failed && i < count; i++)
            if (pending->items[i].code == TECHFEED__ERROR_CODE__OK) {
                pending->items[i].has_sequence = pending->items[i].has_revision = 0;
                s_item_error (
                    pending->arena, &pending->items[i], TECHFEED__ERROR_CODE__ABORTED, NULL,
                    "not stored: %zu other operation(s) of this atomic request failed", failed);
            }
        if (failed)
            pending->n_events = 0;
    }
    if (request->request_id) {
        //  Packed once: these bytes are cached and, after COMMIT, sent.
        pending->packed =
            tf_wire_pack_in (pending->arena, &pending->reply.base, &pending->packed_size);
        rc = tf_store_request_put (self->store, request->request_id, pending->packed,
                                   pending->packed_size, now_ms);
    }
    return rc;
}

/*  The database failed: nothing of the group was stored. */
static void s_fail_group (zlistx_t *group, Techfeed__ErrorCode code, const char *why)
{
    for (s_pending_t *p = (s_pending_t *) zlistx_first (group); p;
         p = (s_pending_t *) zlistx_next (group)) {
        if (!p->request)
            continue;
        //  A replay may come from a request of this same, failed group.
        free (p->replayed);
        p->replayed = NULL;
        p->packed = NULL; // the reply changes below
        for (size_t i = 0; i < p->reply.n_results; i++) {
            p->items[i].has_sequence = p->items[i].has_revision = 0;
            s_item_error (p->arena, &p->items[i], code, NULL, "not stored: %s", why);
        }
        s_reply_error (p, code, why);
        p->n_events = 0;
    }
}

static void s_send_reply (tf_server_t *self, s_pending_t *pending)
{
    if (pending->replayed) {
        Techfeed__IngestReply *cached =
            techfeed__ingest_reply__unpack (NULL, pending->replayed_size, pending->replayed);
        if (cached) {
            cached->has_replayed = cached->replayed = 1;
            tf_envelope_reply (self->ingest, &pending->envelope, &cached->base);
            techfeed__ingest_reply__free_unpacked (cached, NULL);
            return;
        }
        s_reply_error (pending, TECHFEED__ERROR_CODE__STORAGE, "cached reply is unreadable");
    }
    if (pending->packed)
        tf_envelope_send_bytes (self->ingest, &pending->envelope, pending->packed,
                                pending->packed_size);
    else
        tf_envelope_reply (self->ingest, &pending->envelope, &pending->reply.base);
}

static void s_publish (tf_server_t *self, s_pending_t *pending)
{
    void *handle = zsock_resolve (self->events);
    for (size_t i = 0; i < pending->n_events; i++) {
        const s_event_t *e = &pending->events[i];
        //  PUB never blocks: past the high-water mark the subscriber loses
        //  the event and repairs from the log (PROTOCOL.md §9).
        zmq_send (handle, e->topic, strlen (e->topic), ZMQ_SNDMORE);
        zmq_send (handle, e->data, e->size, 0);
        self->head = e->sequence;
    }
    atomic_fetch_add (&self->metrics.published, pending->n_events);
}

static s_pending_t *s_pending_new (tf_server_t *self)
{
    s_pending_t *pending = (s_pending_t *) tf_arena_alloc (self->requests, sizeof *pending);
    memset (pending, 0, sizeof *pending);
    pending->arena = self->requests;
    pending->received_ns = zclock_usecs () * 1000;
    if (tf_envelope_recv (self->ingest, &pending->envelope))
        return NULL;
    techfeed__ingest_reply__init (&pending->reply);
    pending->reply.has_version = 1;
    pending->reply.version = TF_PROTOCOL_VERSION;
    pending->reply.has_code = 1;
    pending->reply.epoch = self->epoch;
    s_pending_decode (self, pending);
    return pending;
}

static void s_log_refusals (const s_pending_t *pending)
{
    if (pending->replayed) // answered from the cache: its items were not applied
        return;
    if (!pending->request) {
        tf_info ("refused request: %s: %s", tf_error_name (pending->reply.code),
                 pending->reply.message);
        return;
    }
    for (size_t i = 0; i < pending->reply.n_results; i++) {
        const Techfeed__ItemResult *item = &pending->items[i];
        if (item->code != TECHFEED__ERROR_CODE__OK && item->code != TECHFEED__ERROR_CODE__ABORTED)
            tf_info ("refused op %zu id=%s: %s %s%s%s", i, item->id ? item->id : "-",
                     tf_error_name (item->code), item->field ? item->field : "",
                     item->field ? ": " : "", item->message ? item->message : "");
    }
}

/*  Last sequence the group committed (`head` when it changed nothing). */
static uint64_t s_group_head (zlistx_t *group, uint64_t head)
{
    for (s_pending_t *p = (s_pending_t *) zlistx_first (group); p;
         p = (s_pending_t *) zlistx_next (group)) {
        if (p->n_events && p->events[p->n_events - 1].sequence > head)
            head = p->events[p->n_events - 1].sequence;
    }
    return head;
}

/*  Counts what a reply says, for /metrics. */
static void s_count_reply (tf_server_t *self, const s_pending_t *pending)
{
    tf_metrics_t *m = &self->metrics;
    atomic_fetch_add (&m->requests, 1);
    if (pending->replayed)
        atomic_fetch_add (&m->replayed, 1);
    else if (!pending->request && pending->reply.code < TF_METRICS_CODES)
        atomic_fetch_add (&m->rejected[pending->reply.code], 1);
    for (size_t i = 0; !pending->replayed && i < pending->reply.n_results; i++) {
        Techfeed__ErrorCode code = pending->items[i].code;
        if (code == TECHFEED__ERROR_CODE__OK)
            atomic_fetch_add (&m->ingested, 1);
        else if (code < TF_METRICS_CODES)
            atomic_fetch_add (&m->rejected[code], 1);
    }
    tf_metrics_observe (&m->latency, (uint64_t) (zclock_usecs () * 1000 - pending->received_ns));
}

/*  One write transaction for every decoded request of the group; 0 when
    it committed, else the store's error code (everything rolled back and
    every request answered STORAGE or STORAGE_FULL). */
static int s_commit_group (tf_server_t *self, zlistx_t *group, size_t decoded)
{
    int64_t now_ms = tf_now_ms ();
    int rc = tf_store_begin (self->store);
    for (s_pending_t *p = (s_pending_t *) zlistx_first (group); p && !rc;
         p = (s_pending_t *) zlistx_next (group))
        if (p->request)
            rc = s_process (self, p, now_ms);
    if (!rc) {
        int64_t start_us = zclock_usecs ();
        rc = tf_store_commit (self->store);
        if (!rc)
            tf_metrics_observe (&self->metrics.commit,
                                (uint64_t) (zclock_usecs () - start_us) * 1000);
    }
    if (!rc) {
        atomic_fetch_add (&self->metrics.groups, 1);
        atomic_store (&self->metrics.ready, 1);
        self->full_free_bytes = -1;
        return 0;
    }
    tf_error ("write transaction failed, %zu request(s) not stored: %s", decoded,
              tf_store_errstr (self->store));
    s_fail_group (group,
                  rc == TF_STORE_FULL ? TECHFEED__ERROR_CODE__STORAGE_FULL
                                      : TECHFEED__ERROR_CODE__STORAGE,
                  tf_store_errstr (self->store));
    tf_store_rollback (self->store);
    atomic_store (&self->metrics.ready, 0);
    if (rc == TF_STORE_FULL)
        self->full_free_bytes = tf_server_free_bytes (self);
    return rc;
}

/*  Operations a group may carry before the records table would be more
    than --apply-lag-max behind the log (the loop brought it within the
    bound before the group). */
static uint64_t s_lag_room (tf_server_t *self)
{
    uint64_t max = (uint64_t) self->config->apply_lag_max;
    uint64_t behind = tf_store_unapplied (self->store);
    return max == 0 ? UINT64_MAX : behind < max ? max - behind : 0;
}

size_t tf_ingest_handle (tf_server_t *self)
{
    zlistx_t *group = zlistx_new ();
    size_t decoded = 0;
    //  Take what is waiting now, up to the group bound and while the
    //  operations fit the records table's lag (the socket's receives do
    //  not wait, so the first missing request ends the group). The first
    //  request goes in whatever its size.
    uint64_t room = s_lag_room (self), ops = 0;
    while ((int64_t) zlistx_size (group) < self->config->group_max &&
           (zlistx_size (group) == 0 || ops < room)) {
        s_pending_t *pending = s_pending_new (self);
        if (!pending)
            break;
        zlistx_add_end (group, pending);
        decoded += pending->request != NULL;
        ops += pending->request ? pending->request->n_ops : 0;
    }
    if (decoded && s_commit_group (self, group, decoded) == 0)
        tf_server_served (self, s_group_head (group, self->head));
    for (s_pending_t *p = (s_pending_t *) zlistx_first (group); p;
         p = (s_pending_t *) zlistx_next (group)) {
        s_log_refusals (p);
        s_send_reply (self, p);
        s_count_reply (self, p);
    }
    uint64_t first = self->head + 1;
    for (s_pending_t *p = (s_pending_t *) zlistx_first (group); p;
         p = (s_pending_t *) zlistx_next (group)) {
        s_publish (self, p);
        s_pending_destroy (p);
    }
    if (self->head >= first)
        tf_debug ("committed %zu request(s), seq %" PRIu64 "..%" PRIu64, decoded, first,
                  self->head);
    atomic_store (&self->metrics.head, self->head);
    size_t taken = zlistx_size (group);
    zlistx_destroy (&group);
    tf_arena_reset (self->requests); // every request of the group is answered
    return taken;
}

void tf_ingest_refuse_waiting (tf_server_t *self)
{
    size_t refused = 0;
    while (refused < 100000 && (zsock_events (self->ingest) & ZMQ_POLLIN)) {
        s_pending_t *pending = s_pending_new (self);
        if (!pending)
            break;
        if (pending->request) {
            pending->request = NULL; // none was applied: the reply as a whole says why
            pending->reply.n_results = 0;
            s_reply_error (pending, TECHFEED__ERROR_CODE__UNAVAILABLE,
                           "the service is shutting down: retry with the same request_id");
        }
        s_send_reply (self, pending);
        s_pending_destroy (pending);
        tf_arena_reset (self->requests);
        refused++;
    }
    if (refused)
        tf_info ("shutting down: %zu waiting request(s) answered UNAVAILABLE", refused);
}
