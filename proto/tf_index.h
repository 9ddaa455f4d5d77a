/*  tf_index — a string-keyed hash table in memory, two integers per key.

    The store keeps what the write path must look up in memory instead of
    in a random-key SQLite index: id -> (revision, sector) of every stored
    record, request id -> (reply row, creation time). A view keeps its
    records by id (the record's address in `a`). Open addressing with
    linear probing; removal shifts the following entries back, so there
    are no tombstones and lookups stay short.

    Keys are copied. Not thread-safe: owned by one thread.
*/
#ifndef TF_INDEX_H_INCLUDED
#define TF_INDEX_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _tf_index_t tf_index_t;

/*  The two integers kept for a key. */
typedef struct {
    uint64_t a;
    uint64_t b;
} tf_index_value_t;

tf_index_t *tf_index_new (void);
void tf_index_destroy (tf_index_t **self_p);

/*  true with *value set when `key` is present. */
bool tf_index_get (const tf_index_t *self, const char *key, tf_index_value_t *value);
/*  Inserts or overwrites. */
void tf_index_set (tf_index_t *self, const char *key, tf_index_value_t value);
/*  tf_index_set that also says what was there: true with *old set (when
    not NULL) when the key was present. One probe, where a get before the
    set makes two. */
bool tf_index_swap (tf_index_t *self, const char *key, tf_index_value_t value,
                    tf_index_value_t *old);
/*  true when the key was there. */
bool tf_index_remove (tf_index_t *self, const char *key);
size_t tf_index_size (const tf_index_t *self);
/*  Walks the entries in slot order: *cursor = 0 to start; true with *key
    and *value set for each entry, false at the end. A set or a remove
    ends the walk. */
bool tf_index_next (const tf_index_t *self, size_t *cursor, const char **key,
                    tf_index_value_t *value);
/*  Bytes the table holds (slots and key copies), for memory figures. */
size_t tf_index_bytes (const tf_index_t *self);

#endif
