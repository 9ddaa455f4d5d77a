/*  tf_clone — a protobuf-c message deep-copied into one malloc block.
    See tf_clone.h.

    Two walks over the same tree: the first adds up the bytes (every piece
    rounded up to 8, so pointers and 64-bit scalars stay aligned), the
    second copies into them in the same order.
*/
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tf_clone.h"

/*  Where the second walk writes next. */
typedef struct {
    char *next;
} s_space_t;

static size_t s_round (size_t n)
{
    return (n + 7) & ~(size_t) 7;
}

static void *s_take (s_space_t *space, size_t n)
{
    void *p = space->next;
    space->next += s_round (n);
    return p;
}

/*  Bytes one element of a repeated field of `type` takes in its array. */
static size_t s_element_size (ProtobufCType type)
{
    switch (type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
        case PROTOBUF_C_TYPE_ENUM: return 4;
        case PROTOBUF_C_TYPE_FLOAT: return sizeof (float);
        case PROTOBUF_C_TYPE_BOOL: return sizeof (protobuf_c_boolean);
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64: return 8;
        case PROTOBUF_C_TYPE_DOUBLE: return sizeof (double);
        case PROTOBUF_C_TYPE_STRING: return sizeof (char *);
        case PROTOBUF_C_TYPE_BYTES: return sizeof (ProtobufCBinaryData);
        case PROTOBUF_C_TYPE_MESSAGE: return sizeof (ProtobufCMessage *);
    }
    abort (); // a type protobuf-c does not have
}

/*  False for a oneof member that is not the one set: its bytes belong to
    another member. */
static bool s_member_active (const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return true;
    return *(const uint32_t *) ((const char *) msg + f->quantifier_offset) == f->id;
}

/*  A string that points at the field's static default stays shared. */
static bool s_string_owned (const char *s, const ProtobufCFieldDescriptor *f)
{
    return s && s != (const char *) f->default_value;
}

static bool s_bytes_owned (const ProtobufCBinaryData *b, const ProtobufCFieldDescriptor *f)
{
    const ProtobufCBinaryData *dflt = (const ProtobufCBinaryData *) f->default_value;
    return b->data && !(dflt && b->data == dflt->data);
}

static size_t s_message_size (const ProtobufCMessage *msg);

/*  Bytes of what one value of field `f` at `member` points to. */
static size_t s_value_size (const ProtobufCFieldDescriptor *f, const void *member)
{
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(char *const *) member;
        return s_string_owned (s, f) ? s_round (strlen (s) + 1) : 0;
    }
    if (f->type == PROTOBUF_C_TYPE_BYTES) {
        const ProtobufCBinaryData *b = (const ProtobufCBinaryData *) member;
        return s_bytes_owned (b, f) ? s_round (b->len) : 0;
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *) member;
        return sub ? s_message_size (sub) : 0;
    }
    return 0;
}

static size_t s_message_size (const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    const char *base = (const char *) msg;
    size_t total = s_round (desc->sizeof_message);
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (!s_member_active (msg, f))
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) (base + f->quantifier_offset);
            const char *array = *(char *const *) (base + f->offset);
            if (n == 0 || !array)
                continue;
            size_t element = s_element_size (f->type);
            total += s_round (n * element);
            for (size_t j = 0; j < n; j++)
                total += s_value_size (f, array + j * element);
        } else
            total += s_value_size (f, base + f->offset);
    }
    if (msg->n_unknown_fields) {
        total += s_round (msg->n_unknown_fields * sizeof (ProtobufCMessageUnknownField));
        for (unsigned i = 0; i < msg->n_unknown_fields; i++)
            total += s_round (msg->unknown_fields[i].len);
    }
    return total;
}

static ProtobufCMessage *s_message_copy (const ProtobufCMessage *msg, s_space_t *space);

/*  Copies what the value at `member` (already copied bitwise) points to. */
static void s_value_copy (const ProtobufCFieldDescriptor *f, void *member, s_space_t *space)
{
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        char **s = (char **) member;
        if (s_string_owned (*s, f)) {
            size_t n = strlen (*s) + 1;
            *s = memcpy (s_take (space, n), *s, n);
        }
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        ProtobufCBinaryData *b = (ProtobufCBinaryData *) member;
        if (s_bytes_owned (b, f))
            b->data = b->len ? memcpy (s_take (space, b->len), b->data, b->len)
                             : (uint8_t *) s_take (space, 0);
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage **sub = (ProtobufCMessage **) member;
        if (*sub)
            *sub = s_message_copy (*sub, space);
    }
}

static ProtobufCMessage *s_message_copy (const ProtobufCMessage *msg, s_space_t *space)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    char *copy = memcpy (s_take (space, desc->sizeof_message), msg, desc->sizeof_message);
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (!s_member_active (msg, f))
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) (copy + f->quantifier_offset);
            char **array = (char **) (copy + f->offset);
            if (n == 0 || !*array)
                continue;
            size_t element = s_element_size (f->type);
            *array = memcpy (s_take (space, n * element), *array, n * element);
            for (size_t j = 0; j < n; j++)
                s_value_copy (f, *array + j * element, space);
        } else
            s_value_copy (f, copy + f->offset, space);
    }
    ProtobufCMessage *out = (ProtobufCMessage *) copy;
    if (msg->n_unknown_fields) {
        size_t n = msg->n_unknown_fields;
        out->unknown_fields = memcpy (s_take (space, n * sizeof *out->unknown_fields),
                                      msg->unknown_fields, n * sizeof *out->unknown_fields);
        for (size_t i = 0; i < n; i++) {
            ProtobufCMessageUnknownField *u = &out->unknown_fields[i];
            u->data = u->len ? memcpy (s_take (space, u->len), u->data, u->len) : NULL;
        }
    }
    return out;
}

size_t tf_clone_size (const ProtobufCMessage *message)
{
    assert (message);
    return s_message_size (message);
}

ProtobufCMessage *tf_clone (const ProtobufCMessage *message)
{
    size_t size = tf_clone_size (message);
    s_space_t space = { (char *) malloc (size) };
    if (!space.next)
        abort ();
    char *start = space.next;
    ProtobufCMessage *copy = s_message_copy (message, &space);
    assert ((size_t) (space.next - start) == size);
    (void) start;
    return copy;
}
