/*  tf_wire — protobuf helpers shared by the service and the clients.
    See tf_wire.h.
*/
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tf_wire.h"

/*  Slugs by sector value (PROTOCOL.md §3). Prefix-free: each one is a
    ZeroMQ topic, and none is a prefix of "heartbeat" either. */
static const char *s_sector_slugs[TF_SECTOR_MAX + 1] = {
    NULL,   "ai",      "telecom", "fintech", "energy", "space",
    "rail", "biotech", "quantum", "chips",   "other",
};

static const char *s_status_names[TF_STATUS_MAX + 1] = {
    NULL, "announced", "in_progress", "achieved", "operational", "claimed",
};

/*  Name of `value` in a table indexed 1..max, or NULL. */
static const char *s_name_of (const char *const *table, int max, int value)
{
    return value >= 1 && value <= max ? table[value] : NULL;
}

/*  Value of `name` (case-insensitive) in a table indexed 1..max, or -1. */
static int s_value_of (const char *const *table, int max, const char *name)
{
    for (int i = 1; i <= max; i++)
        if (strcasecmp (name, table[i]) == 0)
            return i;
    return -1;
}

const char *tf_sector_slug (int sector)
{
    return s_name_of (s_sector_slugs, TF_SECTOR_MAX, sector);
}

int tf_sector_from_slug (const char *slug)
{
    if (!slug)
        return -1;
    int sector = s_value_of (s_sector_slugs, TF_SECTOR_MAX, slug);
    if (sector > 0)
        return sector;
    //  Enum names from the descriptor, so they can never drift from the .proto
    const ProtobufCEnumDescriptor *desc = &techfeed__sector__descriptor;
    const size_t prefix = strlen ("SECTOR_");
    for (unsigned i = 0; i < desc->n_values; i++) {
        const ProtobufCEnumValue *v = &desc->values[i];
        if (v->value >= 1 && v->value <= TF_SECTOR_MAX && strlen (v->name) > prefix &&
            strcasecmp (slug, v->name + prefix) == 0)
            return v->value;
    }
    return -1;
}

const char *tf_status_name (int status)
{
    return s_name_of (s_status_names, TF_STATUS_MAX, status);
}

int tf_status_from_name (const char *name)
{
    if (!name)
        return -1;
    if (strcasecmp (name, "in-progress") == 0)
        return TECHFEED__MILESTONE_STATUS__STATUS_IN_PROGRESS;
    return s_value_of (s_status_names, TF_STATUS_MAX, name);
}

const char *tf_error_name (int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value (&techfeed__error_code__descriptor, code);
    return v ? v->name : "UNKNOWN";
}

// --------------------------------------------------------------- unpack

/*  Allocator state for one unpack. The budget counts every allocation,
    protobuf-c's temporary slabs included, and refunds nothing on free:
    "at most max_alloc bytes in total". Memory is plain malloc, so the
    result is freed with the system allocator (tf_wire_free), or comes
    from an arena, which takes it back at its next reset. */
typedef struct {
    size_t budget;     /* bytes allowed in total */
    size_t used;       /* bytes handed out so far */
    bool exceeded;     /* an allocation was refused */
    tf_arena_t *arena; /* where memory comes from; NULL: malloc */
} s_budget_t;

static void *s_budget_alloc (void *data, size_t size)
{
    s_budget_t *self = data;
    if (size > self->budget - self->used) {
        self->exceeded = true;
        return NULL; // protobuf-c fails the unpack and frees what it built
    }
    self->used += size;
    if (self->arena)
        return tf_arena_alloc (self->arena, size);
    void *p = malloc (size ? size : 1);
    if (!p)
        abort ();
    return p;
}

static void s_budget_free (void *data, void *pointer)
{
    s_budget_t *self = data;
    if (!self->arena)
        free (pointer);
}

/*  True when a non-repeated field holds a value. */
static bool s_field_present (const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *) msg;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *) (base + f->quantifier_offset) == f->id;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(void *const *) (base + f->offset) != NULL;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
        return *(const protobuf_c_boolean *) (base + f->quantifier_offset);
    return true;
}

static bool s_enum_ok (const ProtobufCFieldDescriptor *f, int value, char *err, size_t errlen)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    if (protobuf_c_enum_descriptor_get_value (ed, value))
        return true;
    if (err)
        snprintf (err, errlen, "value %d out of range for %s in field %s", value, ed->name,
                  f->name);
    return false;
}

/*  What s_walk refuses: any unknown field, enum values outside their
    enum. With neither it still refuses an unknown field whose number no
    message can have (0, or above 2^29 - 1): protobuf-c reads some from
    keys it cannot write back (a tag 0 in two bytes). */
#define S_WALK_UNKNOWN 1
#define S_WALK_ENUMS 2
#define S_FIELD_MAX 536870911u /* highest protobuf field number */

/*  Walks the message tree; false at the first field or value `what`
    refuses. `err` may be NULL. The schema has no recursive messages, so
    depth is bounded. */
static bool s_walk (const ProtobufCMessage *msg, int what, char *err, size_t errlen)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    for (size_t i = 0; i < msg->n_unknown_fields; i++) {
        uint32_t tag = msg->unknown_fields[i].tag;
        if ((what & S_WALK_UNKNOWN) || tag == 0 || tag > S_FIELD_MAX) {
            if (err)
                snprintf (err, errlen, "%s field %" PRIu32 " in %s",
                          what & S_WALK_UNKNOWN ? "unknown" : "invalid", tag, desc->name);
            return false;
        }
    }
    bool enums = what & S_WALK_ENUMS;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE && !(enums && f->type == PROTOBUF_C_TYPE_ENUM))
            continue;
        const char *member = (const char *) msg + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) ((const char *) msg + f->quantifier_offset);
            const void *array = *(void *const *) member;
            for (size_t j = 0; j < n; j++) {
                if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                    if (!s_walk (((ProtobufCMessage *const *) array)[j], what, err, errlen))
                        return false;
                } else if (!s_enum_ok (f, ((const int *) array)[j], err, errlen))
                    return false;
            }
        } else if (s_field_present (msg, f)) {
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (!s_walk (*(ProtobufCMessage *const *) member, what, err, errlen))
                    return false;
            } else if (!s_enum_ok (f, *(const int *) member, err, errlen))
                return false;
        }
    }
    return true;
}

/*  Reads the varint at data[*pos]; false when the bytes end inside it. */
static bool s_varint_at (const uint8_t *data, size_t size, size_t *pos, uint64_t *value)
{
    *value = 0;
    for (unsigned shift = 0; shift < 64 && *pos < size; shift += 7) {
        uint8_t byte = data[(*pos)++];
        *value |= (uint64_t) (byte & 0x7F) << shift;
        if (!(byte & 0x80))
            return true;
    }
    return false;
}

/*  False, with the field named in `err`, when a string field anywhere in
    the encoded message holds a NUL byte: protobuf-c copies strings into C
    strings, so "abc\0xyz" would arrive as "abc" without a word. Runs on
    bytes that have just unpacked, so they are well-formed; `desc` gives
    the types of nested messages (the schema has no recursion). */
static bool s_no_nul (const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size,
                      char *err, size_t errlen)
{
    size_t pos = 0;
    uint64_t key, value;
    while (pos < size && s_varint_at (data, size, &pos, &key)) {
        unsigned wire = key & 7;
        if (wire == 0 || wire == 1 || wire == 5) {
            if (wire == 0)
                s_varint_at (data, size, &pos, &value);
            else
                pos += wire == 1 ? 8 : 4;
            continue;
        }
        if (wire != 2 || !s_varint_at (data, size, &pos, &value) || value > size - pos)
            break;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field (desc, (unsigned) (key >> 3));
        if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr (data + pos, 0, value)) {
            snprintf (err, errlen, "%s.%s contains a NUL byte", desc->name, f->name);
            return false;
        }
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
            !s_no_nul (f->descriptor, data + pos, value, err, errlen))
            return false;
        pos += value;
    }
    return true;
}

/*  protobuf-c's unpack, its memory counted by `budget`. */
static ProtobufCMessage *s_decode (s_budget_t *budget, const ProtobufCMessageDescriptor *descriptor,
                                   const uint8_t *data, size_t size)
{
    assert (descriptor);
    assert (data || size == 0);
    ProtobufCAllocator allocator = { .alloc = s_budget_alloc,
                                     .free = s_budget_free,
                                     .allocator_data = budget };
    static const uint8_t empty = 0;
    return protobuf_c_message_unpack (descriptor, &allocator, size, data ? data : &empty);
}

/*  The requests, each with `optional uint32 version` (PROTOCOL.md §1). */
static const ProtobufCMessageDescriptor *const s_requests[] = {
    &techfeed__ingest_request__descriptor,
    &techfeed__sync_request__descriptor,
};

/*  True for a request whose version is present and not this one's: the
    service reads nothing of it but that and answers UNSUPPORTED, so what
    the other version has and this one does not know (fields, enum
    values) does not make it MALFORMED. */
static bool s_other_version (const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    for (size_t i = 0; i < sizeof s_requests / sizeof s_requests[0]; i++) {
        if (desc != s_requests[i])
            continue;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name (desc, "version");
        return f && f->type == PROTOBUF_C_TYPE_UINT32 && f->label == PROTOBUF_C_LABEL_OPTIONAL &&
               s_field_present (msg, f) &&
               *(const uint32_t *) ((const char *) msg + f->offset) != TF_PROTOCOL_VERSION;
    }
    return false;
}

/*  tf_wire_unpack and tf_wire_unpack_in: memory from `arena`, or malloc
    when it is NULL. */
static ProtobufCMessage *s_unpack (tf_arena_t *arena, const ProtobufCMessageDescriptor *descriptor,
                                   const uint8_t *data, size_t size, size_t max_alloc, char *err,
                                   size_t errlen)
{
    s_budget_t budget = { .budget = max_alloc, .arena = arena };
    ProtobufCMessage *msg = s_decode (&budget, descriptor, data, size);
    if (!msg) {
        if (budget.exceeded)
            snprintf (err, errlen, "message exceeds the decode budget of %zu bytes", max_alloc);
        else
            snprintf (err, errlen, "not a valid %s (truncated or malformed)", descriptor->name);
        return NULL;
    }
    int what = s_other_version (msg) ? 0 : S_WALK_UNKNOWN | S_WALK_ENUMS;
    if (!s_walk (msg, what, err, errlen) || !s_no_nul (descriptor, data, size, err, errlen)) {
        if (!arena)
            tf_wire_free (msg);
        return NULL;
    }
    return msg;
}

ProtobufCMessage *tf_wire_decode_in (tf_arena_t *arena,
                                     const ProtobufCMessageDescriptor *descriptor,
                                     const uint8_t *data, size_t size)
{
    assert (arena);
    s_budget_t budget = { .budget = SIZE_MAX, .arena = arena };
    return s_decode (&budget, descriptor, data, size);
}

ProtobufCMessage *tf_wire_unpack (const ProtobufCMessageDescriptor *descriptor, const uint8_t *data,
                                  size_t size, size_t max_alloc, char *err, size_t errlen)
{
    return s_unpack (NULL, descriptor, data, size, max_alloc, err, errlen);
}

ProtobufCMessage *tf_wire_unpack_in (tf_arena_t *arena,
                                     const ProtobufCMessageDescriptor *descriptor,
                                     const uint8_t *data, size_t size, size_t max_alloc, char *err,
                                     size_t errlen)
{
    assert (arena);
    return s_unpack (arena, descriptor, data, size, max_alloc, err, errlen);
}

void tf_wire_free (ProtobufCMessage *message)
{
    if (message)
        protobuf_c_message_free_unpacked (message, NULL);
}

bool tf_wire_has_unknown_fields (const ProtobufCMessage *message)
{
    return !s_walk (message, S_WALK_UNKNOWN, NULL, 0);
}

/*  `size` bytes from `arena`, or malloc'd when it is NULL. */
static uint8_t *s_buffer (tf_arena_t *arena, size_t size)
{
    if (arena)
        return (uint8_t *) tf_arena_alloc (arena, size ? size : 1);
    uint8_t *buffer = (uint8_t *) malloc (size ? size : 1);
    if (!buffer)
        abort ();
    return buffer;
}

static uint8_t *s_pack (tf_arena_t *arena, const ProtobufCMessage *message, size_t *size)
{
    size_t n = protobuf_c_message_get_packed_size (message);
    uint8_t *buffer = s_buffer (arena, n);
    size_t written = protobuf_c_message_pack (message, buffer);
    assert (written == n);
    *size = written;
    return buffer;
}

uint8_t *tf_wire_pack (const ProtobufCMessage *message, size_t *size)
{
    return s_pack (NULL, message, size);
}

uint8_t *tf_wire_pack_in (tf_arena_t *arena, const ProtobufCMessage *message, size_t *size)
{
    assert (arena);
    return s_pack (arena, message, size);
}

static size_t s_varint (uint8_t *out, uint64_t value)
{
    size_t n = 0;
    do {
        out[n++] = (uint8_t) ((value & 0x7f) | (value > 0x7f ? 0x80 : 0));
        value >>= 7;
    } while (value);
    return n;
}

size_t tf_wire_field_head (uint8_t *out, uint32_t field, size_t length)
{
    size_t n = s_varint (out, (uint64_t) field << 3 | 2);
    return n + s_varint (out + n, length);
}

static uint8_t *s_pack_with (tf_arena_t *arena, const ProtobufCMessage *message, uint32_t field,
                             const uint8_t *value, size_t length, size_t *size)
{
    uint8_t head[TF_WIRE_HEAD_MAX];
    size_t packed = protobuf_c_message_get_packed_size (message);
    size_t head_size = tf_wire_field_head (head, field, length);
    uint8_t *buffer = s_buffer (arena, packed + head_size + length);
    protobuf_c_message_pack (message, buffer);
    memcpy (buffer + packed, head, head_size);
    if (length)
        memcpy (buffer + packed + head_size, value, length);
    *size = packed + head_size + length;
    return buffer;
}

uint8_t *tf_wire_pack_with (const ProtobufCMessage *message, uint32_t field, const uint8_t *value,
                            size_t length, size_t *size)
{
    return s_pack_with (NULL, message, field, value, length, size);
}

uint8_t *tf_wire_pack_with_in (tf_arena_t *arena, const ProtobufCMessage *message, uint32_t field,
                               const uint8_t *value, size_t length, size_t *size)
{
    assert (arena);
    return s_pack_with (arena, message, field, value, length, size);
}

Techfeed__Milestone *tf_milestone_dup (const Techfeed__Milestone *record)
{
    assert (record);
    size_t size;
    uint8_t *buffer = tf_wire_pack (&record->base, &size);
    Techfeed__Milestone *copy = techfeed__milestone__unpack (NULL, size, buffer);
    free (buffer);
    if (!copy)
        abort (); // our own encoding decodes; only out-of-memory fails here
    return copy;
}

// --------------------------------------------------------------- digest

/*  The digest algorithm is part of the protocol (PROTOCOL.md §10); other
    clients reproduce it bit for bit:

        h    = FNV-1a 64 over the id's bytes (no terminating NUL):
               h = 0xcbf29ce484222325; for each byte b: h ^= b; h *= 0x100000001b3
        x    = h ^ (revision * 0x9E3779B97F4A7C15)            (all mod 2^64)
        item = fmix64 (x), MurmurHash3's finaliser:
               x ^= x >> 33; x *= 0xff51afd7ed558ccd;
               x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53; x ^= x >> 33
        digest = sum of item over all records, mod 2^64

    tf_digest_item ("change-4-far-side-landing", 1) == 0x6df36a90991393df
    (pinned in tests/unit/test_wire.c). */
uint64_t tf_digest_item (const char *id, uint64_t revision)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *) id; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    uint64_t x = h ^ (revision * 0x9E3779B97F4A7C15ULL);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

void tf_digest_format (uint64_t digest, char out[17])
{
    snprintf (out, 17, "%016" PRIx64, digest);
}

int64_t tf_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
