/*  tf_clone — a protobuf-c message deep-copied into one malloc block.

    protobuf-c's own copies (unpack, or pack then unpack) give every
    string, array and sub-message an allocation of its own, and freeing
    one walks the tree. A view holds one record per id for as long as it
    runs and replaces one per change, so it keeps clones instead: the
    message struct is at the start of the block, everything it points to
    follows it, and free() on the message frees it all.

    Clones are read-only by convention: a field pointer replaced later
    would point outside the block and leak or be freed twice.
*/
#ifndef TF_CLONE_H_INCLUDED
#define TF_CLONE_H_INCLUDED

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/*  A copy of `message` (any descriptor: strings, bytes, repeated fields,
    sub-messages, oneofs and unknown fields are copied). Free with free().
    Aborts on out-of-memory. */
ProtobufCMessage *tf_clone (const ProtobufCMessage *message);

/*  Bytes tf_clone allocates for `message`. */
size_t tf_clone_size (const ProtobufCMessage *message);

#endif
