/*  tf_arena — a bump allocator whose memory is given back all at once.

    Decoding a protobuf message with protobuf-c's default allocator costs one
    malloc per string, array and sub-message, plus a temporary slab of 1 KiB
    or more for messages with many fields, and as many frees later. A
    message that only lives while it is handled (a live event, a sync reply)
    is decoded into an arena instead (tf_wire_unpack_in): every allocation
    is a pointer bump, and tf_arena_reset() takes them all back. What must
    outlive the reset is copied out with tf_clone().

    Blocks double in size while one message needs more; after a reset the
    newest (largest) block is kept for the next message, unless it is larger
    than the keep limit, so a steady stream of similar messages allocates
    nothing. Not thread-safe: one arena per thread or per object.
*/
#ifndef TF_ARENA_H_INCLUDED
#define TF_ARENA_H_INCLUDED

#include <stddef.h>

typedef struct _tf_arena_t tf_arena_t;

/*  An arena whose first block holds `first` bytes and which keeps at most
    `keep_max` bytes across resets. Aborts on out-of-memory. */
tf_arena_t *tf_arena_new (size_t first, size_t keep_max);
void tf_arena_destroy (tf_arena_t **self_p);

/*  `size` bytes aligned for any type; valid until the next reset. Never
    NULL (aborts on out-of-memory). */
void *tf_arena_alloc (tf_arena_t *self, size_t size);

/*  A copy of `size` bytes of `data` in the arena with a NUL after them
    (a string, or a blob read as one); `data` may be NULL when `size` is 0. */
void *tf_arena_copy (tf_arena_t *self, const void *data, size_t size);

/*  Takes back everything allocated since the last reset. */
void tf_arena_reset (tf_arena_t *self);

/*  The same, and every block goes back to the system: for an arena that
    sits idle until its next burst. */
void tf_arena_release (tf_arena_t *self);

/*  Bytes in the arena's blocks now (what it holds from the system). */
size_t tf_arena_capacity (const tf_arena_t *self);

#endif
