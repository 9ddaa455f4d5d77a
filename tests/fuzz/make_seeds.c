/*  make_seeds — writes the fuzzers' seed corpora (tests/fuzz/corpus/), so
    they can be regenerated and reviewed rather than hand-edited:

        make fuzz-seeds    (make_seeds clients/demo/milestones.ndjson tests/fuzz/corpus)

    Valid inputs come from the demo records; the known-nasty ones are built
    byte by byte: truncated, overlong varints, huge length prefixes, unknown
    fields, out-of-range enums, invalid UTF-8, embedded NUL, deep nesting,
    100k repeated elements. Output is deterministic. The files are
    committed; a fuzz run works on a copy.
*/
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tf_json.h"
#include "tf_reader.h"
#include "tf_wire.h"

#define S_RECORDS_MAX 64

static const char *s_out; /* corpus directory */

// --------------------------------------------------------------- output

static void s_write (const char *target, const char *name, const void *data, size_t size)
{
    char path[512];
    snprintf (path, sizeof path, "%s/%s", s_out, target);
    if (mkdir (path, 0755) && errno != EEXIST) {
        perror (path);
        exit (1);
    }
    snprintf (path, sizeof path, "%s/%s/%s", s_out, target, name);
    FILE *file = fopen (path, "wb");
    if (!file || fwrite (data, 1, size, file) != size || fclose (file)) {
        perror (path);
        exit (1);
    }
}

static void s_write_msg (const char *target, const char *name, const ProtobufCMessage *msg)
{
    size_t size;
    uint8_t *bytes = tf_wire_pack (msg, &size);
    s_write (target, name, bytes, size);
    free (bytes);
}

static void s_write_text (const char *target, const char *name, const char *text)
{
    s_write (target, name, text, strlen (text));
}

/*  A growing byte buffer for inputs no encoder would write. */
typedef struct {
    uint8_t *data;
    size_t size, cap;
} s_buf_t;

static void s_put (s_buf_t *b, const void *data, size_t size)
{
    if (size == 0)
        return;
    if (b->size + size > b->cap) {
        b->cap = (b->size + size) * 2;
        b->data = realloc (b->data, b->cap);
        if (!b->data)
            abort ();
    }
    memcpy (b->data + b->size, data, size);
    b->size += size;
}

static void s_varint (s_buf_t *b, uint64_t value)
{
    do {
        uint8_t byte = (uint8_t) (value & 0x7F) | (value > 0x7F ? 0x80 : 0);
        s_put (b, &byte, 1);
        value >>= 7;
    } while (value);
}

static void s_key (s_buf_t *b, unsigned field, unsigned wire)
{
    s_varint (b, (uint64_t) field << 3 | wire);
}

/*  Field `field` as length-delimited `size` bytes of `data`. */
static void s_field_bytes (s_buf_t *b, unsigned field, const void *data, size_t size)
{
    s_key (b, field, 2);
    s_varint (b, size);
    s_put (b, data, size);
}

static void s_field_varint (s_buf_t *b, unsigned field, uint64_t value)
{
    s_key (b, field, 0);
    s_varint (b, value);
}

static void s_flush (s_buf_t *b, const char *target, const char *name)
{
    s_write (target, name, b->data, b->size);
    free (b->data);
    *b = (s_buf_t){ 0 };
}

// --------------------------------------------------------------- records

static Techfeed__Milestone *s_records[S_RECORDS_MAX];
static size_t s_count;

static void s_load (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        perror (path);
        exit (1);
    }
    static char text[1 << 20];
    size_t size = fread (text, 1, sizeof text, file);
    fclose (file);
    tf_reader_t *reader = tf_reader_new (text, size);
    json_t *value;
    size_t line;
    char err[200];
    int rc;
    while (s_count < S_RECORDS_MAX &&
           (rc = tf_reader_next (reader, &value, &line, err, sizeof err)) != 0) {
        tf_verror_t verr;
        Techfeed__Milestone *m = rc > 0 ? tf_json_to_milestone (value, &verr) : NULL;
        json_decref (value);
        if (!m || tf_validate_milestone (m, &verr)) {
            fprintf (stderr, "%s:%zu: not a valid record\n", path, line);
            exit (1);
        }
        s_records[s_count++] = m;
    }
    tf_reader_destroy (&reader);
    if (s_count < 8) {
        fprintf (stderr, "%s: too few records\n", path);
        exit (1);
    }
}

// --------------------------------------------------------------- ingest

/*  A request of one put per record in `records`. */
static void s_ingest_puts (const char *name, Techfeed__Milestone **records, size_t n, bool atomic,
                           const char *request_id)
{
    Techfeed__Operation ops[S_RECORDS_MAX], *op_ptrs[S_RECORDS_MAX];
    for (size_t i = 0; i < n; i++) {
        techfeed__operation__init (&ops[i]);
        ops[i].has_kind = 1;
        ops[i].kind = TECHFEED__OP_KIND__OP_PUT;
        ops[i].record = records[i];
        op_ptrs[i] = &ops[i];
    }
    Techfeed__IngestRequest request = TECHFEED__INGEST_REQUEST__INIT;
    request.has_version = 1;
    request.version = TF_PROTOCOL_VERSION;
    request.request_id = (char *) request_id;
    request.n_ops = n;
    request.ops = op_ptrs;
    request.has_atomic = atomic;
    request.atomic = atomic;
    s_write_msg ("ingest_request", name, &request.base);
}

/*  One put of `m` after `edit` changed a copy of it. */
static void s_ingest_edited (const char *name, void (*edit) (Techfeed__Milestone *m))
{
    Techfeed__Milestone *m = tf_milestone_dup (s_records[0]);
    edit (m);
    s_ingest_puts (name, &m, 1, false, NULL);
    techfeed__milestone__free_unpacked (m, NULL);
}

static void s_set_text (char **field, const char *text, size_t size)
{
    free (*field);
    *field = malloc (size + 1);
    memcpy (*field, text, size);
    (*field)[size] = '\0';
}

static void s_edit_utf8 (Techfeed__Milestone *m)
{
    s_set_text (&m->title, "bad \xC3\x28 utf-8", 12); // a lead byte without its continuation
}
static void s_edit_overlong (Techfeed__Milestone *m)
{
    s_set_text (&m->title, "overlong \xC0\xAF slash", 17);
}
static void s_edit_surrogate (Techfeed__Milestone *m)
{
    s_set_text (&m->summary, "surrogate \xED\xA0\x80 half", 17);
}
static void s_edit_control (Techfeed__Milestone *m)
{
    s_set_text (&m->title, "escape \x1b[31m red", 17);
}
static void s_edit_sector (Techfeed__Milestone *m)
{
    m->sector = (Techfeed__Sector) 99;
}
static void s_edit_status (Techfeed__Milestone *m)
{
    m->has_status = 1;
    m->status = (Techfeed__MilestoneStatus) 6;
}
static void s_edit_date (Techfeed__Milestone *m)
{
    s_set_text (&m->date, "2019-02-29", 10);
}
static void s_edit_id (Techfeed__Milestone *m)
{
    s_set_text (&m->id, "Upper-Case", 10);
}
static void s_edit_url (Techfeed__Milestone *m)
{
    s_set_text (&m->sources[0], "javascript:alert(1)", 19);
}

static void s_ingest_valid (void)
{
    char name[64];
    for (size_t i = 0; i < s_count; i++) {
        snprintf (name, sizeof name, "put-%02zu", i);
        s_ingest_puts (name, &s_records[i], 1, false, NULL);
    }
    s_ingest_puts ("put-batch-atomic", s_records, 8, true, "seed-batch-1");

    Techfeed__Operation del = TECHFEED__OPERATION__INIT, put = TECHFEED__OPERATION__INIT;
    del.has_kind = put.has_kind = 1;
    del.kind = TECHFEED__OP_KIND__OP_DELETE;
    del.id = s_records[1]->id;
    del.has_expected_revision = 1;
    del.expected_revision = 3;
    put.kind = TECHFEED__OP_KIND__OP_PUT;
    put.record = s_records[2];
    put.has_expected_revision = 1;
    put.expected_revision = 0;
    Techfeed__Operation *ops[] = { &put, &del };
    Techfeed__IngestRequest request = TECHFEED__INGEST_REQUEST__INIT;
    request.has_version = 1;
    request.version = TF_PROTOCOL_VERSION;
    request.request_id = "seed-put-delete";
    request.n_ops = 2;
    request.ops = ops;
    s_write_msg ("ingest_request", "put-and-delete-expected", &request.base);
    request.n_ops = 1;
    request.ops = &ops[1];
    s_write_msg ("ingest_request", "delete", &request.base);
}

static void s_ingest_nasty (void)
{
    const char *t = "ingest_request";
    s_ingest_edited ("nasty-utf8-lead-byte", s_edit_utf8);
    s_ingest_edited ("nasty-utf8-overlong", s_edit_overlong);
    s_ingest_edited ("nasty-utf8-surrogate", s_edit_surrogate);
    s_ingest_edited ("nasty-control-char", s_edit_control);
    s_ingest_edited ("nasty-enum-sector-99", s_edit_sector);
    s_ingest_edited ("nasty-enum-status-6", s_edit_status);
    s_ingest_edited ("nasty-date-feb-29", s_edit_date);
    s_ingest_edited ("nasty-id-upper-case", s_edit_id);
    s_ingest_edited ("nasty-url-scheme", s_edit_url);

    //  A valid request, cut short at several places
    size_t size;
    Techfeed__Operation op = TECHFEED__OPERATION__INIT, *ops[] = { &op };
    op.has_kind = 1;
    op.kind = TECHFEED__OP_KIND__OP_PUT;
    op.record = s_records[1];
    Techfeed__IngestRequest request = TECHFEED__INGEST_REQUEST__INIT;
    request.has_version = 1;
    request.version = 1;
    request.n_ops = 1;
    request.ops = ops;
    uint8_t *bytes = tf_wire_pack (&request.base, &size);
    s_write (t, "nasty-truncated-end", bytes, size - 3);
    s_write (t, "nasty-truncated-middle", bytes, size / 2);
    s_write (t, "nasty-truncated-in-key", bytes, 1);

    s_buf_t b = { 0 };
    //  An unknown field after a valid request, and one inside the record
    s_put (&b, bytes, size);
    s_field_varint (&b, 99, 1);
    s_flush (&b, t, "nasty-unknown-field-top");
    free (bytes);

    s_buf_t record = { 0 }, opb = { 0 };
    s_field_bytes (&record, 1, "some-id", 7);
    s_field_varint (&record, 2, 5);
    s_field_bytes (&record, 50, "hidden", 6);
    s_field_varint (&opb, 1, 1);
    s_field_bytes (&opb, 2, record.data, record.size);
    s_field_bytes (&b, 3, opb.data, opb.size);
    s_flush (&b, t, "nasty-unknown-field-in-record");

    //  Op kind out of range, and a negative enum (ten-byte varint)
    s_buf_t kind = { 0 };
    s_field_varint (&kind, 1, 7);
    s_field_bytes (&kind, 3, "x", 1);
    s_field_bytes (&b, 3, kind.data, kind.size);
    s_flush (&b, t, "nasty-enum-op-kind-7");
    free (kind.data);
    s_buf_t neg = { 0 };
    s_field_bytes (&neg, 1, "neg", 3);
    s_field_varint (&neg, 2, (uint64_t) -1);
    s_buf_t negop = { 0 };
    s_field_varint (&negop, 1, 1);
    s_field_bytes (&negop, 2, neg.data, neg.size);
    s_field_bytes (&b, 3, negop.data, negop.size);
    s_flush (&b, t, "nasty-enum-negative-sector");
    free (neg.data);
    free (negop.data);

    //  Overlong varints: version 1 in ten bytes (legal), and in eleven (not)
    s_key (&b, 1, 0);
    s_put (&b, "\x81\x80\x80\x80\x80\x80\x80\x80\x80\x00", 10);
    s_field_bytes (&b, 3, opb.data, opb.size);
    s_flush (&b, t, "nasty-varint-ten-bytes");
    s_key (&b, 1, 0);
    s_put (&b, "\x81\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 11);
    s_flush (&b, t, "nasty-varint-eleven-bytes");
    //  A length prefix with redundant continuation bytes
    s_key (&b, 2, 2);
    s_put (&b, "\x83\x80\x80\x00", 4);
    s_put (&b, "abc", 3);
    s_field_bytes (&b, 3, opb.data, opb.size);
    s_flush (&b, t, "nasty-length-overlong");

    //  Length prefixes far beyond the data
    s_key (&b, 2, 2);
    s_varint (&b, 0xFFFFFFFFu);
    s_put (&b, "abc", 3);
    s_flush (&b, t, "nasty-length-4g");
    s_key (&b, 3, 2);
    s_varint (&b, UINT64_MAX);
    s_put (&b, "abc", 3);
    s_flush (&b, t, "nasty-length-max");
    s_key (&b, 3, 2);
    s_varint (&b, 1u << 30);
    s_key (&b, 2, 2);
    s_varint (&b, (1u << 30) - 2);
    s_flush (&b, t, "nasty-length-nested-1g");

    //  Wrong wire types, a group (protobuf-c has none), an end-group alone
    s_field_bytes (&b, 1, "\x01", 1);
    s_flush (&b, t, "nasty-wire-type-version-bytes");
    s_key (&b, 2, 0);
    s_varint (&b, 5);
    s_flush (&b, t, "nasty-wire-type-string-varint");
    for (int i = 0; i < 2000; i++)
        s_key (&b, 3, 3);
    s_flush (&b, t, "nasty-deep-start-groups");
    s_key (&b, 3, 4);
    s_flush (&b, t, "nasty-end-group");
    //  Nesting as deep as the schema goes, then deeper inside an unknown field
    s_buf_t deep = { 0 }, next = { 0 };
    for (int i = 0; i < 1000; i++) {
        s_field_bytes (&next, 7, deep.data, deep.size);
        free (deep.data);
        deep = next;
        next = (s_buf_t){ 0 };
    }
    s_field_varint (&b, 1, 1);
    s_field_bytes (&b, 40, deep.data, deep.size);
    s_field_bytes (&b, 3, opb.data, opb.size);
    s_flush (&b, t, "nasty-deep-unknown-nesting");
    free (deep.data);
    free (record.data);
    free (opb.data);

    //  Embedded NUL: protobuf-c would keep only "seed" and "Moon"
    s_field_bytes (&b, 2, "seed\0other", 10);
    s_buf_t nul = { 0 }, nulop = { 0 };
    s_field_bytes (&nul, 1, "nul-title", 9);
    s_field_varint (&nul, 2, 5);
    s_field_bytes (&nul, 3, "Moon\0hidden", 11);
    s_field_bytes (&nul, 7, "2019", 4);
    s_field_varint (&nulop, 1, 1);
    s_field_bytes (&nulop, 2, nul.data, nul.size);
    s_field_bytes (&b, 3, nulop.data, nulop.size);
    s_flush (&b, t, "nasty-embedded-nul");
    free (nul.data);
    free (nulop.data);

    //  100k tags in one record (decodes within budget, fails validation),
    //  and 20k empty operations (over the decode budget)
    s_buf_t tags = { 0 }, tagop = { 0 };
    s_field_bytes (&tags, 1, "many-tags", 9);
    for (int i = 0; i < 100000; i++)
        s_field_bytes (&tags, 11, "", 0);
    s_field_varint (&tagop, 1, 1);
    s_field_bytes (&tagop, 2, tags.data, tags.size);
    s_field_bytes (&b, 3, tagop.data, tagop.size);
    s_flush (&b, t, "nasty-100k-tags");
    free (tags.data);
    free (tagop.data);
    for (int i = 0; i < 20000; i++)
        s_field_bytes (&b, 3, "", 0);
    s_flush (&b, t, "nasty-20k-empty-ops");

    s_write (t, "nasty-empty", "", 0);
    s_write_text (t, "nasty-not-protobuf", "this is not protobuf at all");
}

// --------------------------------------------------------------- sync

static void s_sync_valid (void)
{
    const char *t = "sync_request";
    Techfeed__SyncRequest r = TECHFEED__SYNC_REQUEST__INIT;
    r.has_version = r.has_kind = 1;
    r.version = TF_PROTOCOL_VERSION;
    r.kind = TECHFEED__SYNC_KIND__SYNC_SNAPSHOT;
    s_write_msg (t, "snapshot", &r.base);
    r.has_chunk_size = 1;
    r.chunk_size = 2;
    Techfeed__Filter f = TECHFEED__FILTER__INIT;
    Techfeed__Sector sectors[] = { TECHFEED__SECTOR__SECTOR_SPACE,
                                   TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL };
    f.n_sectors = 2;
    f.sectors = sectors;
    r.filter = &f;
    s_write_msg (t, "snapshot-sectors", &r.base);
    f.organization = "CNSA";
    s_write_msg (t, "snapshot-organization", &r.base);
    f.n_sectors = 0;
    f.organization = NULL;
    f.country = "CN";
    f.date_from = "2019";
    f.date_to = "2021-12";
    s_write_msg (t, "snapshot-country-dates", &r.base);

    r.kind = TECHFEED__SYNC_KIND__SYNC_CATCHUP;
    r.has_since_sequence = 1;
    r.since_sequence = 0;
    r.filter = NULL;
    s_write_msg (t, "catchup-0", &r.base);
    r.since_sequence = 3;
    r.epoch = "00112233445566778899aabbccddeeff";
    f.country = f.date_from = f.date_to = NULL;
    f.n_sectors = 1;
    r.filter = &f;
    s_write_msg (t, "catchup-3-space", &r.base);
    r.since_sequence = UINT64_MAX;
    s_write_msg (t, "catchup-max", &r.base);

    Techfeed__SyncRequest n = TECHFEED__SYNC_REQUEST__INIT;
    n.has_kind = n.has_cursor = 1;
    n.kind = TECHFEED__SYNC_KIND__SYNC_NEXT;
    n.cursor = 1;
    s_write_msg (t, "next", &n.base);
    n.kind = TECHFEED__SYNC_KIND__SYNC_CLOSE;
    s_write_msg (t, "close", &n.base);
    n.has_cursor = 0;
    n.kind = TECHFEED__SYNC_KIND__SYNC_STATUS;
    s_write_msg (t, "status", &n.base);
    char *ids[] = { s_records[0]->id, "change-4-far-side-landing", "hsr-40000-km", "missing" };
    n.kind = TECHFEED__SYNC_KIND__SYNC_GET;
    n.n_ids = 4;
    n.ids = ids;
    s_write_msg (t, "get", &n.base);
}

static void s_sync_nasty (void)
{
    const char *t = "sync_request";
    s_buf_t b = { 0 }, f = { 0 };
    s_field_varint (&b, 1, 2);
    s_field_varint (&b, 2, 5);
    s_flush (&b, t, "nasty-version-2");
    s_field_varint (&b, 2, 99);
    s_flush (&b, t, "nasty-enum-kind-99");
    s_field_varint (&f, 1, 0);
    s_field_varint (&b, 2, 1);
    s_field_bytes (&b, 3, f.data, f.size);
    s_flush (&b, t, "nasty-filter-sector-0");
    free (f.data);
    f = (s_buf_t){ 0 };
    for (int i = 0; i < 41; i++)
        s_field_varint (&f, 1, 1 + i % 10);
    s_field_varint (&b, 2, 1);
    s_field_bytes (&b, 3, f.data, f.size);
    s_flush (&b, t, "nasty-filter-41-sectors");
    free (f.data);

    //  Filter strings: a bad date, a lower-case country, invalid UTF-8, NUL
    const struct {
        const char *name;
        unsigned field;
        const char *value;
        size_t size;
    } strings[] = {
        { "nasty-filter-date-feb-30", 4, "2019-02-30", 10 },
        { "nasty-filter-date-to-year-0", 5, "0999", 4 },
        { "nasty-filter-country-lower", 3, "cn", 2 },
        { "nasty-filter-organization-utf8", 2, "CN\xC3\x28SA", 6 },
        { "nasty-filter-organization-nul", 2, "CNSA\0x", 6 },
        { "nasty-filter-organization-quote", 2, "' OR 1=1 --", 11 },
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        f = (s_buf_t){ 0 };
        s_field_bytes (&f, strings[i].field, strings[i].value, strings[i].size);
        s_field_varint (&b, 2, 1);
        s_field_bytes (&b, 3, f.data, f.size);
        s_flush (&b, t, strings[i].name);
        free (f.data);
    }

    //  Catch-up from another epoch, with an epoch that is not text
    s_field_varint (&b, 2, 2);
    s_field_varint (&b, 4, 1);
    s_field_bytes (&b, 8, "\xff\xfe not an epoch", 16);
    s_flush (&b, t, "nasty-catchup-epoch-binary");
    //  Get: a bad id, a NUL inside an id, 1001 ids
    s_field_varint (&b, 2, 4);
    s_field_bytes (&b, 6, "../etc/passwd", 13);
    s_flush (&b, t, "nasty-get-bad-id");
    s_field_varint (&b, 2, 4);
    s_field_bytes (&b, 6, "jiuzhang\0x", 10);
    s_flush (&b, t, "nasty-get-id-nul");
    s_field_varint (&b, 2, 4);
    for (int i = 0; i < 1001; i++)
        s_field_bytes (&b, 6, "jiuzhang", 8);
    s_flush (&b, t, "nasty-get-1001-ids");
    //  100k sectors in one packed field; a truncated packed field
    f = (s_buf_t){ 0 };
    s_key (&f, 1, 2);
    s_varint (&f, 100000);
    for (int i = 0; i < 100000; i++)
        s_put (&f, "\x05", 1);
    s_field_varint (&b, 2, 1);
    s_field_bytes (&b, 3, f.data, f.size);
    s_flush (&b, t, "nasty-100k-packed-sectors");
    free (f.data);
    s_field_varint (&b, 2, 1);
    s_key (&b, 3, 2);
    s_varint (&b, 4);
    s_key (&b, 1, 2);
    s_varint (&b, 10);
    s_put (&b, "\x05\x06", 2);
    s_flush (&b, t, "nasty-packed-truncated");
    //  Unknown field, huge length, overlong varint
    s_field_varint (&b, 2, 5);
    s_field_bytes (&b, 15, "x", 1);
    s_flush (&b, t, "nasty-unknown-field");
    s_key (&b, 6, 2);
    s_varint (&b, 0xFFFFFFFFFFull);
    s_flush (&b, t, "nasty-length-huge");
    s_key (&b, 2, 0);
    s_put (&b, "\x85\x80\x80\x80\x80\x80\x80\x80\x80\x00", 10);
    s_flush (&b, t, "nasty-varint-ten-bytes");
}

// --------------------------------------------------------------- JSON

static char *s_record_json (const Techfeed__Milestone *m)
{
    json_t *object = tf_json_from_milestone (m);
    char *text = json_dumps (object, JSON_COMPACT);
    json_decref (object);
    return text;
}

/*  `count` copies of `item` separated by `sep`, between `head` and `tail`. */
static char *s_repeat (const char *head, const char *item, const char *sep, size_t count,
                       const char *tail)
{
    size_t n = strlen (head) + count * (strlen (item) + strlen (sep)) + strlen (tail) + 1;
    char *text = malloc (n), *p = text;
    p += sprintf (p, "%s", head);
    for (size_t i = 0; i < count; i++)
        p += sprintf (p, "%s%s", i ? sep : "", item);
    sprintf (p, "%s", tail);
    return text;
}

static void s_json (void)
{
    const char *t = "json_record";
    char name[64];
    for (size_t i = 0; i < s_count; i += 3) {
        char *text = s_record_json (s_records[i]);
        snprintf (name, sizeof name, "record-%02zu", i);
        s_write_text (t, name, text);
        if (i == 0)
            s_write (t, "nasty-truncated", text, strlen (text) / 2);
        free (text);
    }
    const char *base = "{\"id\":\"x-1\",\"sector\":\"space\",\"title\":\"T\",\"date\":\"2020\"";
    const struct {
        const char *name, *tail;
    } edits[] = {
        { "minimal", "}" },
        { "sector-enum-name", ",\"sector\":\"HIGH_SPEED_RAIL\"}" },
        { "status-in-progress", ",\"status\":\"in-progress\",\"revision\":4,\"updated_at\":1}" },
        { "metrics-numbers",
          ",\"metrics\":[{\"name\":\"a\",\"value\":-0.0},{\"name\":\"b\",\"value\":1e-320},"
          "{\"name\":\"c\",\"value\":9007199254740993},{\"name\":\"d\",\"value\":1."
          "7976931348623157e308,"
          "\"unit\":\"km\"}]}" },
        { "nasty-duplicate-key", ",\"title\":\"again\"}" },
        { "nasty-unknown-member", ",\"colour\":\"red\"}" },
        { "nasty-nul-escape", ",\"summary\":\"a\\u0000b\"}" },
        { "nasty-lone-surrogate", ",\"summary\":\"\\ud800\"}" },
        { "nasty-number-overflow", ",\"metrics\":[{\"name\":\"a\",\"value\":1e400}]}" },
        { "nasty-wrong-types", ",\"tags\":\"moon\",\"organizations\":[1]}" },
        { "nasty-tilde-slash-key", ",\"a~b/c\":1}" },
        { "nasty-null-members", ",\"country\":null,\"metrics\":[null]}" },
        { "nasty-control-in-title", ",\"title\":\"bell\\u0007\"}" },
        { "nasty-unterminated-string", ",\"sources\":[\"https://" },
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char text[512];
        snprintf (text, sizeof text, "%s%s", base, edits[i].tail);
        s_write_text (t, edits[i].name, text);
    }
    s_write_text (t, "nasty-invalid-utf8", "{\"id\":\"x\",\"title\":\"\xC3\x28\"}");
    s_write_text (t, "nasty-not-object", "[1,2,3]");
    //  A key longer than an error pointer holds, multi-byte where it is cut
    char *key = s_repeat ("{\"", "\xC3\xA9", "", 60, "\":[1]}");
    s_write_text (t, "nasty-long-key-utf8", key);
    free (key);
    char *deep = s_repeat ("{\"tags\":", "[", "", 10000, "");
    s_write_text (t, "nasty-deep-nesting", deep);
    free (deep);
    char *many = s_repeat ("{\"id\":\"many\",\"tags\":[", "0", ",", 100000, "]}");
    s_write_text (t, "nasty-100k-tags", many);
    free (many);
}

static void s_ndjson (const char *demo)
{
    const char *t = "ndjson";
    FILE *file = fopen (demo, "rb");
    static char text[1 << 20];
    size_t size = file ? fread (text, 1, sizeof text, file) : 0;
    if (file)
        fclose (file);
    s_write (t, "demo", text, size);

    char *a = s_record_json (s_records[0]), *b = s_record_json (s_records[1]);
    char buf[8192];
    snprintf (buf, sizeof buf, "[%s,\n %s]\n", a, b);
    s_write_text (t, "array", buf);
    snprintf (buf, sizeof buf, "\xEF\xBB\xBF%s\r\n%s\r\n", a, b);
    s_write_text (t, "bom-crlf", buf);
    snprintf (buf, sizeof buf, "{\n  \"id\": \"x-1\",\n  \"title\": \"T\"\n}\n\n%s\n", b);
    s_write_text (t, "multi-line", buf);
    snprintf (buf, sizeof buf, "%s\n{\"id\": \"broken\",\n\"title\": }\n%s\n", a, b);
    s_write_text (t, "nasty-syntax-error-mid-stream", buf);
    snprintf (buf, sizeof buf, "[%s,\n %s] trailing", a, b);
    s_write_text (t, "nasty-array-trailing-data", buf);
    snprintf (buf, sizeof buf, "[%s,\n", a);
    s_write_text (t, "nasty-array-unterminated", buf);
    snprintf (buf, sizeof buf, "[%s %s]", a, b);
    s_write_text (t, "nasty-array-missing-comma", buf);
    s_write (t, "nasty-nul-bytes", "{\"id\":\"a\"}\n\0\0\n{\"id\":\"b\"}\n", 24);
    s_write_text (t, "nasty-scalars", "1\n\"two\"\nnull\n[3]\n{}\n");
    s_write_text (t, "nasty-whitespace-only", " \n\t\r\n ");
    s_write (t, "nasty-empty", "", 0);
    free (a);
    free (b);
    char *many = s_repeat ("", "{}\n", "", 10000, "");
    s_write_text (t, "nasty-10k-empty-objects", many);
    free (many);
}

int main (int argc, char **argv)
{
    if (argc != 3) {
        fprintf (stderr, "usage: make_seeds RECORDS.ndjson CORPUS_DIR\n");
        return 2;
    }
    s_out = argv[2];
    if (mkdir (s_out, 0755) && errno != EEXIST) {
        perror (s_out);
        return 1;
    }
    s_load (argv[1]);
    s_ingest_valid ();
    s_ingest_nasty ();
    s_sync_valid ();
    s_sync_nasty ();
    s_json ();
    s_ndjson (argv[1]);
    for (size_t i = 0; i < s_count; i++)
        techfeed__milestone__free_unpacked (s_records[i], NULL);
    return 0;
}
