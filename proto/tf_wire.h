/*  tf_wire — protobuf helpers shared by the service and the clients.

    Untrusted bytes are unpacked with a capped allocator (protobuf-c itself
    allocates whatever a length prefix claims) and checked for unknown fields,
    which protobuf-c keeps silently. Sector and status enums map to the slugs
    used on the wire (topic frames) and in JSON.
*/
#ifndef TF_WIRE_H_INCLUDED
#define TF_WIRE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "techfeed.pb-c.h"
#include "tf_arena.h"

#define TF_PROTOCOL_VERSION 1
#define TF_HEARTBEAT_TOPIC "heartbeat"
#define TF_SECTOR_MAX 10 /* highest Techfeed__Sector value */
#define TF_STATUS_MAX 5  /* highest Techfeed__MilestoneStatus value */

/*  Sector slug ("ai", "space", ...) for a sector value, or NULL when the
    value is not a defined sector (0 included). Static string. */
const char *tf_sector_slug (int sector);

/*  Sector value for a slug, or -1. Also accepts the enum name without
    prefix, case-insensitive ("SPACE", "high_speed_rail"). */
int tf_sector_from_slug (const char *slug);

/*  Status name ("achieved", ...) or NULL for undefined values (0 included). */
const char *tf_status_name (int status);
int tf_status_from_name (const char *name);

/*  Error code name ("INVALID", ...) for logs and CLI output. Static. */
const char *tf_error_name (int code);

/*  Unpacks `size` bytes as `descriptor`'s message, allocating at most
    `max_alloc` bytes in total. Returns NULL and writes a reason to `err`
    when the bytes are not a valid message, exceed the budget, or carry
    unknown fields, enum values outside their enum or a string holding a
    NUL byte anywhere in the tree. A request (IngestRequest, SyncRequest)
    whose version is present and not TF_PROTOCOL_VERSION is returned
    without the unknown-field and enum checks (a field number no message
    can have, 0 or above 2^29 - 1, is still refused): the caller MUST
    check its version before it acts on anything else in it, and refuse
    it (UNSUPPORTED). Free with tf_wire_free(). */
ProtobufCMessage *tf_wire_unpack (const ProtobufCMessageDescriptor *descriptor, const uint8_t *data,
                                  size_t size, size_t max_alloc, char *err, size_t errlen);
void tf_wire_free (ProtobufCMessage *message);

/*  The same checks, with every allocation taken from `arena`: the message
    lives until the arena's next reset and is never freed on its own. For
    messages handled and dropped (live events, sync replies); what must
    outlive them is copied out with tf_clone(). */
ProtobufCMessage *tf_wire_unpack_in (tf_arena_t *arena,
                                     const ProtobufCMessageDescriptor *descriptor,
                                     const uint8_t *data, size_t size, size_t max_alloc, char *err,
                                     size_t errlen);

/*  protobuf-c's own unpack with every allocation taken from `arena`,
    without the checks above: for bytes this program packed and stored
    itself (the change log's bodies). NULL when they do not decode. */
ProtobufCMessage *tf_wire_decode_in (tf_arena_t *arena,
                                     const ProtobufCMessageDescriptor *descriptor,
                                     const uint8_t *data, size_t size);

/*  True when the message or any nested message holds unknown fields. */
bool tf_wire_has_unknown_fields (const ProtobufCMessage *message);

/*  Packs into a new malloc'd buffer; caller frees. Never NULL. */
uint8_t *tf_wire_pack (const ProtobufCMessage *message, size_t *size);
/*  The same in `arena` (valid until its reset). */
uint8_t *tf_wire_pack_in (tf_arena_t *arena, const ProtobufCMessage *message, size_t *size);

/*  The key and length of one length-delimited field (wire type 2) of
    `length` bytes, into out (TF_WIRE_HEAD_MAX bytes at most); returns how
    many. What follows them is the field's value. */
#define TF_WIRE_HEAD_MAX 16
size_t tf_wire_field_head (uint8_t *out, uint32_t field, size_t length);

/*  `message` packed, then `value` (a sub-message already packed) appended
    as its field `field`: protobuf reads the result as if that field had
    been set, without packing the sub-message again. malloc'd; *size set. */
uint8_t *tf_wire_pack_with (const ProtobufCMessage *message, uint32_t field, const uint8_t *value,
                            size_t length, size_t *size);
/*  The same in `arena` (valid until its reset). */
uint8_t *tf_wire_pack_with_in (tf_arena_t *arena, const ProtobufCMessage *message, uint32_t field,
                               const uint8_t *value, size_t length, size_t *size);

/*  Deep copy of a milestone (pack + unpack). Caller frees with
    techfeed__milestone__free_unpacked (copy, NULL). */
Techfeed__Milestone *tf_milestone_dup (const Techfeed__Milestone *record);

/*  Convergence digest (PROTOCOL.md "Digest"): the sum modulo 2^64 of
    tf_digest_item() over every record. Order-independent, so views update
    it incrementally: add the new item, subtract the old one. */
uint64_t tf_digest_item (const char *id, uint64_t revision);
/*  16 lower-case hex digits plus NUL into `out` (17 bytes). */
void tf_digest_format (uint64_t digest, char out[17]);

/*  Wall clock in Unix milliseconds. */
int64_t tf_now_ms (void);

#endif
