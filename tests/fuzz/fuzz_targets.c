/*  fuzz_targets — what each fuzz target does with one input, and the
    properties it checks. See fuzz_targets.h.

    ingest_request  IngestRequest bytes as tf_ingest.c takes them: the capped
                    unpack with the service's budget (tf_decode_budget), the
                    request checks, tf_validate_milestone on each put and
                    tf_valid_id on each delete; accepted operations are
                    applied to the scratch database in a transaction that is
                    rolled back.
    sync_request    SyncRequest bytes as tf_sync.c takes them: the unpack,
                    the filter checks, then the snapshot, catch-up or get
                    against the scratch database.
    json_record     one JSON document as the CLI imports a record:
                    tf_json_to_milestone, then tf_validate_milestone.
    ndjson          an import file through tf_reader (object, array or
                    NDJSON), each object as json_record.

    Properties, whatever the input:
    - a refusal comes with a reason that is valid UTF-8 (it goes into a
      protobuf reply or a JSON error); a field error names a JSON pointer;
    - a decoded message re-packs to bytes that decode again under the same
      rule and pack to the same bytes (the encoder is canonical), and
      carries no string that held a NUL byte on the wire (protobuf-c would
      have cut it short silently);
    - an accepted record survives every path it takes next: packed into a
      ChangeEvent and decoded by a subscriber, written as JSON and imported
      again, stored and read back — each time equal and still valid;
    - a sync filter that passes the checks opens a cursor, and the cursor
      returns exactly the records or changes the filter selects;
    - the import reader makes progress on every call and reports lines that
      exist.
*/
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_targets.h"
#include "tf_json.h"
#include "tf_reader.h"
#include "tf_server_int.h"
#include "tf_store.h"
#include "tf_validate.h"
#include "tf_wire.h"

#define S_MAX_OPS 1000           /* techfeed-ingestd --max-ops default */
#define S_GET_MAX 1000           /* tf_sync.c TF_GET_MAX */
#define S_NOW_MS 1795887738123LL /* a fixed clock: same input, same run */
#define S_RECORDS_MAX 16         /* records in the scratch database */
#define S_CHANGES_MAX 16         /* changes in its log */

static char s_error[1024];

const char *fuzz_last_error (void)
{
    return s_error;
}

/*  Records the broken property; returns -1 for `return s_fail (...)`. */
static int s_fail (const char *format, ...) __attribute__ ((format (printf, 1, 2)));
static int s_fail (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (s_error, sizeof s_error, format, args);
    va_end (args);
    return -1;
}

// --------------------------------------------------------------- reasons

/*  Well-formed UTF-8, which is what a JSON string (the CLI's --json
    output) and a protobuf string may hold. Control characters pass: they
    are the printer's to escape. */
static bool s_utf8 (const char *text)
{
    json_t *string = json_string (text);
    json_decref (string);
    return string != NULL;
}

/*  A refusal's reason: present, and text a reply or a JSON error can carry. */
static int s_reason_ok (const char *who, const char *reason)
{
    if (!reason || !*reason)
        return s_fail ("%s refused the input without a reason", who);
    if (!s_utf8 (reason))
        return s_fail ("%s: reason is not valid UTF-8: \"%s\"", who, reason);
    return 0;
}

static int s_verror_ok (const char *who, const tf_verror_t *err)
{
    if (err->field[0] && err->field[0] != '/')
        return s_fail ("%s: field \"%s\" is not a JSON pointer", who, err->field);
    if (!s_utf8 (err->field))
        return s_fail ("%s: field is not valid UTF-8: \"%s\"", who, err->field);
    return s_reason_ok (who, err->message);
}

// --------------------------------------------------------------- wire

/*  Reads a varint at *pos; false when the bytes end inside it. */
static bool s_varint (const uint8_t *data, size_t size, size_t *pos, uint64_t *value)
{
    *value = 0;
    for (int shift = 0; shift < 64 && *pos < size; shift += 7) {
        uint8_t byte = data[(*pos)++];
        *value |= (uint64_t) (byte & 0x7F) << shift;
        if (!(byte & 0x80))
            return true;
    }
    return false;
}

/*  True when a string field anywhere in the encoded message holds a NUL
    byte. The oracle for "no string is cut short": it reads the bytes
    itself rather than trusting the decoder under test. */
static bool s_wire_has_nul (const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                            size_t size)
{
    size_t pos = 0;
    uint64_t key, len;
    while (pos < size && s_varint (data, size, &pos, &key)) {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field (desc, (unsigned) (key >> 3));
        switch (key & 7) {
            case 0:
                if (!s_varint (data, size, &pos, &len))
                    return false;
                break;
            case 1: pos += 8; break;
            case 5: pos += 4; break;
            case 2:
                if (!s_varint (data, size, &pos, &len) || len > size - pos)
                    return false;
                if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr (data + pos, 0, len))
                    return true;
                if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                    s_wire_has_nul (f->descriptor, data + pos, len))
                    return true;
                pos += len;
                break;
            default: return false;
        }
    }
    return false;
}

/*  Properties of any message tf_wire_unpack accepted from `data`: no
    string was cut at a NUL, and the message round-trips. The second decode
    gets the budget of the larger encoding (a packed repeated field grows
    when re-packed unpacked). */
static int s_decoded_ok (const ProtobufCMessage *msg, const uint8_t *data, size_t size)
{
    const char *name = msg->descriptor->name;
    if (s_wire_has_nul (msg->descriptor, data, size))
        return s_fail ("%s: accepted a string holding a NUL byte (decoded cut short)", name);
    size_t packed_size, again_size;
    uint8_t *packed = tf_wire_pack (msg, &packed_size);
    char err[256];
    ProtobufCMessage *copy = tf_wire_unpack (
        msg->descriptor, packed, packed_size,
        tf_decode_budget (packed_size > size ? packed_size : size), err, sizeof err);
    int rc = 0;
    if (!copy)
        rc = s_fail ("%s: the re-packed %zu bytes do not decode: %s", name, packed_size, err);
    else {
        uint8_t *again = tf_wire_pack (copy, &again_size);
        if (again_size != packed_size || memcmp (again, packed, packed_size) != 0)
            rc = s_fail ("%s: packing the decoded copy gives other bytes (%zu, was %zu)", name,
                         again_size, packed_size);
        free (again);
        tf_wire_free (copy);
    }
    free (packed);
    return rc;
}

/*  Unpacks `data` as the service does. NULL when it was refused, with *rc
    saying whether properly, or when the decoded message breaks a property
    (*rc -1). */
static ProtobufCMessage *s_unpack (const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                   size_t size, int *rc)
{
    char err[256];
    ProtobufCMessage *msg =
        tf_wire_unpack (desc, data, size, tf_decode_budget (size), err, sizeof err);
    *rc = msg ? s_decoded_ok (msg, data, size) : s_reason_ok ("tf_wire_unpack", err);
    if (msg && *rc) {
        tf_wire_free (msg);
        return NULL;
    }
    return msg;
}

// --------------------------------------------------------------- records

static bool s_str_eq (const char *a, const char *b)
{
    return a == b || (a && b && strcmp (a, b) == 0);
}

static bool s_list_eq (char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!s_str_eq (a[i], b[i]))
            return false;
    return true;
}

static bool s_metric_eq (const Techfeed__Metric *a, const Techfeed__Metric *b)
{
    //  == on values: JSON writes -0 as 0, which is the same number
    return s_str_eq (a->name, b->name) && s_str_eq (a->unit, b->unit) &&
           a->has_value == b->has_value && (!a->has_value || a->value == b->value);
}

/*  Name of the first member in which the two records differ, or NULL.
    Server-assigned members count only with `server`. */
static const char *s_milestone_diff (const Techfeed__Milestone *a, const Techfeed__Milestone *b,
                                     bool server)
{
    if (!s_str_eq (a->id, b->id))
        return "id";
    if (a->has_sector != b->has_sector || a->sector != b->sector)
        return "sector";
    if (!s_str_eq (a->title, b->title))
        return "title";
    if (!s_str_eq (a->summary, b->summary))
        return "summary";
    if (!s_list_eq (a->organizations, a->n_organizations, b->organizations, b->n_organizations))
        return "organizations";
    if (!s_str_eq (a->country, b->country))
        return "country";
    if (!s_str_eq (a->date, b->date))
        return "date";
    if (a->has_status != b->has_status || (a->has_status && a->status != b->status))
        return "status";
    if (a->n_metrics != b->n_metrics)
        return "metrics";
    for (size_t i = 0; i < a->n_metrics; i++)
        if (!s_metric_eq (a->metrics[i], b->metrics[i]))
            return "metrics";
    if (!s_list_eq (a->sources, a->n_sources, b->sources, b->n_sources))
        return "sources";
    if (!s_list_eq (a->tags, a->n_tags, b->tags, b->n_tags))
        return "tags";
    if (server && (a->has_revision != b->has_revision || a->revision != b->revision))
        return "revision";
    if (server &&
        (a->has_updated_at_ms != b->has_updated_at_ms || a->updated_at_ms != b->updated_at_ms))
        return "updated_at_ms";
    return NULL;
}

/*  A record copy that came back from somewhere: equal and still valid. */
static int s_copy_ok (const char *path, const Techfeed__Milestone *record,
                      const Techfeed__Milestone *copy, bool server)
{
    tf_verror_t verr;
    const char *diff = s_milestone_diff (record, copy, server);
    if (diff)
        return s_fail ("%s: the copy differs in %s", path, diff);
    if (tf_validate_milestone (copy, &verr))
        return s_fail ("%s: the copy is no longer valid: %s: %s", path, verr.field, verr.message);
    return 0;
}

/*  A valid record as a subscriber gets it: in a ChangeEvent with the
    server's fields set, decoded under the budget rule. */
static int s_event_path (const Techfeed__Milestone *record)
{
    Techfeed__Milestone stored = *record; // shallow, as tf_ingest.c does
    stored.has_revision = stored.has_updated_at_ms = 1;
    stored.revision = 1;
    stored.updated_at_ms = S_NOW_MS;
    Techfeed__ChangeEvent event = TECHFEED__CHANGE_EVENT__INIT;
    event.epoch = "00112233445566778899aabbccddeeff";
    event.has_sequence = event.has_kind = event.has_sector = event.has_revision = 1;
    event.sequence = 1;
    event.kind = TECHFEED__CHANGE_KIND__CHANGE_PUT;
    event.sector = record->sector;
    event.id = record->id;
    event.revision = 1;
    event.record = &stored;
    size_t size;
    uint8_t *bytes = tf_wire_pack (&event.base, &size);
    char err[256];
    Techfeed__ChangeEvent *copy = (Techfeed__ChangeEvent *) tf_wire_unpack (
        &techfeed__change_event__descriptor, bytes, size, tf_decode_budget (size), err, sizeof err);
    free (bytes);
    if (!copy)
        return s_fail ("event: a valid record's ChangeEvent does not decode: %s", err);
    int rc = copy->record ? s_copy_ok ("event", &stored, copy->record, true)
                          : s_fail ("event: the record is missing");
    tf_wire_free (&copy->base);
    return rc;
}

/*  A valid record as the CLI writes it and imports it again. */
static int s_json_path (const Techfeed__Milestone *record)
{
    json_t *object = tf_json_from_milestone (record);
    char *text = object ? json_dumps (object, JSON_COMPACT) : NULL;
    json_decref (object);
    if (!text)
        return s_fail ("json: tf_json_from_milestone gave nothing to write");
    json_error_t jerr;
    json_t *parsed = json_loads (text, JSON_REJECT_DUPLICATES, &jerr);
    free (text);
    if (!parsed)
        return s_fail ("json: the written record does not parse: %s", jerr.text);
    tf_verror_t verr;
    Techfeed__Milestone *copy = tf_json_to_milestone (parsed, &verr);
    json_decref (parsed);
    if (!copy)
        return s_fail ("json: the written record is refused: %s: %s", verr.field, verr.message);
    int rc = s_copy_ok ("json", record, copy, false);
    techfeed__milestone__free_unpacked (copy, NULL);
    return rc;
}

/*  Every path a record the service would store takes next. */
static int s_accepted_record (const Techfeed__Milestone *record)
{
    if (s_event_path (record) || s_json_path (record))
        return -1;
    return 0;
}

// --------------------------------------------------------------- scratch database

/*  Records the scratch database starts with: several sectors, countries,
    organisations and date precisions, so filters have something to tell
    apart. The last one is deleted again (a tombstone in the log). */
static const char *s_seed_records[] = {
    "{\"id\":\"change-4-far-side-landing\",\"sector\":\"space\",\"title\":\"Chang'e-4 lands\","
    "\"organizations\":[\"CNSA\",\"CAST\"],\"country\":\"CN\",\"date\":\"2019-01-03\"}",
    "{\"id\":\"hsr-40000-km\",\"sector\":\"rail\",\"title\":\"40,000 km of high-speed rail\","
    "\"organizations\":[\"China State Railway Group\"],\"country\":\"CN\",\"date\":\"2021-12\","
    "\"metrics\":[{\"name\":\"network length\",\"value\":40000,\"unit\":\"km\"}]}",
    "{\"id\":\"apollo-go-wuhan\",\"sector\":\"ai\",\"title\":\"Apollo Go opens in Wuhan\","
    "\"organizations\":[\"Baidu\"],\"country\":\"CN\",\"date\":\"2022\"}",
    "{\"id\":\"jiuzhang\",\"sector\":\"quantum\",\"title\":\"Jiuzhang\",\"date\":\"2020-12-03\","
    "\"organizations\":[\"USTC\"]}",
    "{\"id\":\"kirin-9000s\",\"sector\":\"chips\",\"title\":\"Kirin 9000S\",\"country\":\"CN\","
    "\"organizations\":[\"HiSilicon\",\"SMIC\"],\"date\":\"2023-08-29\"}",
    "{\"id\":\"deleted-again\",\"sector\":\"space\",\"title\":\"Gone\",\"date\":\"2024\"}",
};
#define S_SEEDS (sizeof s_seed_records / sizeof s_seed_records[0])

static struct {
    tf_store_t *store;
    char dir[256];
    char path[300];
    Techfeed__Milestone *records[S_RECORDS_MAX]; /* what a snapshot holds, id order */
    size_t n_records;
    Techfeed__ChangeEvent *changes[S_CHANGES_MAX]; /* the whole log, seq order */
    size_t n_changes;
} s_db;

static void s_db_remove (void)
{
    for (size_t i = 0; i < s_db.n_records; i++)
        techfeed__milestone__free_unpacked (s_db.records[i], NULL);
    for (size_t i = 0; i < s_db.n_changes; i++)
        techfeed__change_event__free_unpacked (s_db.changes[i], NULL);
    tf_store_destroy (&s_db.store);
    const char *suffixes[] = { "", "-wal", "-shm", "-journal" };
    char file[320];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf (file, sizeof file, "%s%s", s_db.path, suffixes[i]);
        unlink (file);
    }
    rmdir (s_db.dir);
}

/*  Harness set-up failed: nothing to fuzz. */
static void s_db_fatal (const char *what, const char *why)
{
    fprintf (stderr, "fuzz_targets: scratch database: %s: %s\n", what, why);
    abort ();
}

static void s_db_seed (void)
{
    for (size_t i = 0; i < S_SEEDS; i++) {
        json_error_t jerr;
        tf_verror_t verr;
        json_t *object = json_loads (s_seed_records[i], 0, &jerr);
        Techfeed__Milestone *m = object ? tf_json_to_milestone (object, &verr) : NULL;
        json_decref (object);
        if (!m || tf_validate_milestone (m, &verr))
            s_db_fatal ("seed record", s_seed_records[i]);
        if (tf_store_put (s_db.store, m, false, 0, S_NOW_MS, NULL))
            s_db_fatal ("put", tf_store_errstr (s_db.store));
        if (i + 1 == S_SEEDS && tf_store_delete (s_db.store, m->id, false, 0, S_NOW_MS, NULL))
            s_db_fatal ("delete", tf_store_errstr (s_db.store));
        techfeed__milestone__free_unpacked (m, NULL);
    }
    //  What the cursors must return, read once through unfiltered cursors
    tf_store_cursor_t *cursor = tf_store_snapshot_open (s_db.store, NULL);
    while (cursor && s_db.n_records < S_RECORDS_MAX &&
           tf_store_cursor_next_record (cursor, &s_db.records[s_db.n_records]) == 1)
        s_db.n_records++;
    tf_store_cursor_destroy (&cursor);
    cursor = tf_store_changes_open (s_db.store, 0, NULL, NULL);
    while (cursor && s_db.n_changes < S_CHANGES_MAX &&
           tf_store_cursor_next_change (cursor, &s_db.changes[s_db.n_changes]) == 1)
        s_db.n_changes++;
    tf_store_cursor_destroy (&cursor);
    if (s_db.n_records != S_SEEDS - 1 || s_db.n_changes != S_SEEDS + 1)
        s_db_fatal ("read back", "unexpected record or change count");
}

/*  The scratch database, made on first use in a directory of its own. */
static tf_store_t *s_store (void)
{
    if (s_db.store)
        return s_db.store;
    const char *tmp = getenv ("TMPDIR");
    snprintf (s_db.dir, sizeof s_db.dir, "%s/tf-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp (s_db.dir))
        s_db_fatal (s_db.dir, "cannot make the directory");
    snprintf (s_db.path, sizeof s_db.path, "%s/scratch.db", s_db.dir);
    char err[256];
    s_db.store = tf_store_new (s_db.path, err, sizeof err);
    if (!s_db.store)
        s_db_fatal (s_db.path, err);
    atexit (s_db_remove);
    s_db_seed ();
    return s_db.store;
}

// --------------------------------------------------------------- ingest

static int s_store_put (tf_store_t *store, const Techfeed__Operation *op)
{
    tf_change_t change;
    int rc = tf_store_put (store, op->record, op->has_expected_revision, op->expected_revision,
                           S_NOW_MS, &change);
    if (rc == TF_STORE_CONFLICT || rc == TF_STORE_IMMUTABLE)
        return 0;
    if (rc != TF_STORE_OK)
        return s_fail ("store: a valid record was not stored (%d): %s", rc,
                       tf_store_errstr (store));
    Techfeed__Milestone *stored = NULL;
    if (tf_store_get (store, op->record->id, &stored) != TF_STORE_OK)
        return s_fail ("store: a stored record cannot be read back: %s", tf_store_errstr (store));
    rc = s_copy_ok ("store", op->record, stored, false);
    if (!rc && (!stored->has_revision || stored->revision != change.revision))
        rc = s_fail ("store: revision %" PRIu64 " read back, %" PRIu64 " reported",
                     stored->revision, change.revision);
    techfeed__milestone__free_unpacked (stored, NULL);
    return rc;
}

static int s_store_delete (tf_store_t *store, const Techfeed__Operation *op)
{
    int rc = tf_store_delete (store, op->id, op->has_expected_revision, op->expected_revision,
                              S_NOW_MS, NULL);
    if (rc == TF_STORE_NOT_FOUND || rc == TF_STORE_CONFLICT)
        return 0;
    if (rc != TF_STORE_OK)
        return s_fail ("store: delete failed (%d): %s", rc, tf_store_errstr (store));
    Techfeed__Milestone *stored = NULL;
    if (tf_store_get (store, op->id, &stored) != TF_STORE_NOT_FOUND) {
        techfeed__milestone__free_unpacked (stored, NULL);
        return s_fail ("store: '%s' is still there after its delete", op->id);
    }
    return 0;
}

/*  The operations as tf_ingest.c s_apply takes them, in one transaction
    that is rolled back so the scratch database stays as it was. */
static int s_ingest_ops (const Techfeed__IngestRequest *request)
{
    tf_store_t *store = s_store ();
    if (tf_store_begin (store))
        return s_fail ("store: begin: %s", tf_store_errstr (store));
    int rc = 0;
    for (size_t i = 0; i < request->n_ops && !rc; i++) {
        const Techfeed__Operation *op = request->ops[i];
        tf_verror_t verr;
        if (op->kind == TECHFEED__OP_KIND__OP_PUT && op->record) {
            if (tf_validate_milestone (op->record, &verr))
                rc = s_verror_ok ("tf_validate_milestone", &verr);
            else if (!tf_valid_id (op->record->id))
                rc = s_fail ("tf_validate_milestone accepted id '%s'", op->record->id);
            else
                rc = s_accepted_record (op->record) || s_store_put (store, op) ? -1 : 0;
        } else if (op->kind == TECHFEED__OP_KIND__OP_DELETE && tf_valid_id (op->id))
            rc = s_store_delete (store, op);
    }
    if (tf_store_rollback (store) && !rc)
        rc = s_fail ("store: rollback: %s", tf_store_errstr (store));
    return rc;
}

int fuzz_ingest_request_one (const uint8_t *data, size_t size)
{
    int rc;
    Techfeed__IngestRequest *request = (Techfeed__IngestRequest *) s_unpack (
        &techfeed__ingest_request__descriptor, data, size, &rc);
    if (!request)
        return rc;
    //  The request as a whole (tf_ingest.c s_pending_decode)
    bool taken = (!request->request_id || tf_valid_request_id (request->request_id)) &&
                 (!request->has_version || request->version == TF_PROTOCOL_VERSION) &&
                 request->n_ops >= 1 && request->n_ops <= S_MAX_OPS;
    if (taken)
        rc = s_ingest_ops (request);
    tf_wire_free (&request->base);
    return rc;
}

// --------------------------------------------------------------- sync

/*  The service's own filter rules (tf_sync.c uses the same call). */
static bool s_filter_ok (const Techfeed__Filter *filter)
{
    return tf_validate_filter (filter, NULL) == 0;
}

static bool s_given (const char *text)
{
    return text && *text;
}

static bool s_sector_in (const Techfeed__Filter *filter, int sector)
{
    if (!filter || !filter->n_sectors)
        return true;
    for (size_t i = 0; i < filter->n_sectors; i++)
        if ((int) filter->sectors[i] == sector)
            return true;
    return false;
}

/*  The filter's meaning (PROTOCOL.md, tf_store.h), written plainly. */
static bool s_filter_selects (const Techfeed__Filter *filter, const Techfeed__Milestone *m)
{
    if (!s_sector_in (filter, m->sector))
        return false;
    if (!filter)
        return true;
    if (s_given (filter->organization)) {
        bool found = false;
        for (size_t i = 0; i < m->n_organizations; i++)
            found = found || strcmp (m->organizations[i], filter->organization) == 0;
        if (!found)
            return false;
    }
    if (s_given (filter->country) && !s_str_eq (m->country, filter->country))
        return false;
    if (s_given (filter->date_from) && strcmp (m->date, filter->date_from) < 0)
        return false;
    if (s_given (filter->date_to) &&
        strncmp (m->date, filter->date_to, strlen (filter->date_to)) > 0)
        return false;
    return true;
}

static int s_snapshot (tf_store_t *store, const Techfeed__Filter *filter)
{
    tf_store_cursor_t *cursor = tf_store_snapshot_open (store, filter);
    if (!cursor)
        return s_fail ("snapshot: a checked filter does not open: %s", tf_store_errstr (store));
    size_t expected = 0, got = 0;
    for (size_t i = 0; i < s_db.n_records; i++)
        expected += s_filter_selects (filter, s_db.records[i]);
    int rc = 0, step;
    Techfeed__Milestone *m;
    while (!rc && (step = tf_store_cursor_next_record (cursor, &m)) == 1) {
        got++;
        if (!s_filter_selects (filter, m))
            rc = s_fail ("snapshot: '%s' does not match the filter", m->id);
        techfeed__milestone__free_unpacked (m, NULL);
    }
    if (!rc && step < 0)
        rc = s_fail ("snapshot: %s", tf_store_cursor_errstr (cursor));
    if (!rc && got != expected)
        rc = s_fail ("snapshot: %zu records, the filter selects %zu", got, expected);
    tf_store_cursor_destroy (&cursor);
    return rc;
}

static int s_catchup (tf_store_t *store, const Techfeed__SyncRequest *request)
{
    uint64_t since = request->since_sequence;
    uint64_t head = s_db.n_changes ? s_db.changes[s_db.n_changes - 1]->sequence : 0;
    int why;
    tf_store_cursor_t *cursor = tf_store_changes_open (store, since, request->filter, &why);
    if (!cursor && why == TF_STORE_TRIMMED && since > head)
        return 0; // beyond the head: the client must take a snapshot
    if (!cursor)
        return s_fail ("catch-up from %" PRIu64 " (head %" PRIu64 ") refused: %s", since, head,
                       tf_store_errstr (store));
    size_t expected = 0, got = 0;
    for (size_t i = 0; i < s_db.n_changes; i++)
        expected += s_db.changes[i]->sequence > since &&
                    s_sector_in (request->filter, s_db.changes[i]->sector);
    uint64_t last = since;
    int rc = 0, step;
    Techfeed__ChangeEvent *event;
    while (!rc && (step = tf_store_cursor_next_change (cursor, &event)) == 1) {
        got++;
        if (event->sequence <= last)
            rc = s_fail ("catch-up: sequence %" PRIu64 " after %" PRIu64, event->sequence, last);
        else if (!s_sector_in (request->filter, event->sector))
            rc = s_fail ("catch-up: change %" PRIu64 " is outside the filter's sectors",
                         event->sequence);
        last = event->sequence;
        techfeed__change_event__free_unpacked (event, NULL);
    }
    if (!rc && step < 0)
        rc = s_fail ("catch-up: %s", tf_store_cursor_errstr (cursor));
    if (!rc && got != expected)
        rc = s_fail ("catch-up from %" PRIu64 ": %zu changes, the filter selects %zu", since, got,
                     expected);
    tf_store_cursor_destroy (&cursor);
    return rc;
}

static int s_get (tf_store_t *store, const Techfeed__SyncRequest *request)
{
    if (request->n_ids > S_GET_MAX)
        return 0;
    for (size_t i = 0; i < request->n_ids; i++)
        if (!tf_valid_id (request->ids[i]))
            return 0;
    for (size_t i = 0; i < request->n_ids; i++) {
        const char *id = request->ids[i];
        bool known = false;
        for (size_t j = 0; j < s_db.n_records; j++)
            known = known || strcmp (s_db.records[j]->id, id) == 0;
        Techfeed__Milestone *m = NULL;
        int found = tf_store_get (store, id, &m), rc = 0;
        if (found == TF_STORE_OK && (!known || !s_str_eq (m->id, id)))
            rc = s_fail ("get: asked for '%s', got '%s'", id, m->id);
        else if (found == TF_STORE_NOT_FOUND && known)
            rc = s_fail ("get: '%s' not found", id);
        else if (found != TF_STORE_OK && found != TF_STORE_NOT_FOUND)
            rc = s_fail ("get: %s", tf_store_errstr (store));
        if (m)
            techfeed__milestone__free_unpacked (m, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

int fuzz_sync_request_one (const uint8_t *data, size_t size)
{
    int rc;
    Techfeed__SyncRequest *request =
        (Techfeed__SyncRequest *) s_unpack (&techfeed__sync_request__descriptor, data, size, &rc);
    if (!request)
        return rc;
    bool taken = !request->has_version || request->version == TF_PROTOCOL_VERSION;
    if (taken) {
        switch (request->kind) {
            case TECHFEED__SYNC_KIND__SYNC_SNAPSHOT:
                if (s_filter_ok (request->filter))
                    rc = s_snapshot (s_store (), request->filter);
                break;
            case TECHFEED__SYNC_KIND__SYNC_CATCHUP:
                if (s_filter_ok (request->filter) && request->has_since_sequence)
                    rc = s_catchup (s_store (), request);
                break;
            case TECHFEED__SYNC_KIND__SYNC_GET: rc = s_get (s_store (), request); break;
            default: break; // NEXT, CLOSE, STATUS read nothing from the request but numbers
        }
    }
    tf_wire_free (&request->base);
    return rc;
}

// --------------------------------------------------------------- JSON

/*  One JSON value as the CLI imports a record. */
static int s_json_record (const json_t *value)
{
    tf_verror_t verr;
    Techfeed__Milestone *m = tf_json_to_milestone (value, &verr);
    if (!m)
        return s_verror_ok ("tf_json_to_milestone", &verr);
    int rc;
    if (tf_validate_milestone (m, &verr)) {
        rc = s_verror_ok ("tf_validate_milestone", &verr);
        //  An invalid record is still printable (the CLI echoes what it refused)
        json_t *object = tf_json_from_milestone (m);
        char *text = json_dumps (object, JSON_COMPACT);
        if (!rc && !text)
            rc = s_fail ("json: an invalid record cannot be written back");
        free (text);
        json_decref (object);
    } else
        rc = s_accepted_record (m);
    techfeed__milestone__free_unpacked (m, NULL);
    return rc;
}

int fuzz_json_record_one (const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *value =
        json_loadb ((const char *) data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!value)
        return 0; // jansson's own errors are jansson's
    int rc = s_json_record (value);
    json_decref (value);
    return rc;
}

int fuzz_ndjson_one (const uint8_t *data, size_t size)
{
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    tf_reader_t *reader = tf_reader_new ((const char *) data, size);
    int rc = 0;
    //  Each call consumes at least a byte, so size + 2 calls reach the end
    for (size_t calls = 0; !rc; calls++) {
        json_t *value = NULL;
        size_t line = 0;
        char err[256] = "";
        int got = tf_reader_next (reader, &value, &line, err, sizeof err);
        if (got == 0)
            break;
        if (calls > size + 2)
            rc = s_fail ("tf_reader_next: still returning after %zu calls on %zu bytes", calls,
                         size);
        else if (line < 1 || line > lines)
            rc = s_fail ("tf_reader_next: line %zu, the input has %zu", line, lines);
        else if (got < 0 && !err[0])
            rc = s_fail ("tf_reader_next: an error without a message at line %zu", line);
        else if (got > 0 && !value)
            rc = s_fail ("tf_reader_next: a value that is NULL at line %zu", line);
        else if (got > 0 && json_is_object (value))
            rc = s_json_record (value);
        json_decref (value);
    }
    tf_reader_destroy (&reader);
    return rc;
}

// --------------------------------------------------------------- table

const fuzz_target_t fuzz_targets[] = {
    { "ingest_request", fuzz_ingest_request_one },
    { "sync_request", fuzz_sync_request_one },
    { "json_record", fuzz_json_record_one },
    { "ndjson", fuzz_ndjson_one },
    { NULL, NULL },
};

int fuzz_main_one (fuzz_target_fn *target, const uint8_t *data, size_t size)
{
    if (target (data, size)) {
        fprintf (stderr, "fuzz property broken: %s\n", fuzz_last_error ());
        abort ();
    }
    return 0;
}
