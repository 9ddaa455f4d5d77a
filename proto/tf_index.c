/*  tf_index — see tf_index.h. */
#include "tf_index.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TF_INDEX_MIN_SLOTS 64 /* power of two */

typedef struct {
    char *key; /* NULL: empty slot */
    uint64_t hash;
    tf_index_value_t value;
} s_slot_t;

struct _tf_index_t {
    s_slot_t *slots;
    size_t mask;      /* slots - 1 */
    size_t size;      /* keys */
    size_t key_bytes; /* bytes of key copies */
};

static void *s_calloc (size_t count, size_t size)
{
    void *p = calloc (count, size);
    if (!p) {
        fputs ("tf_index: out of memory\n", stderr);
        abort ();
    }
    return p;
}

/*  FNV-1a, 64 bits; the low bits pick the slot. */
static uint64_t s_hash (const char *key)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *) key; *p; p++)
        hash = (hash ^ *p) * 0x100000001b3ULL;
    return hash;
}

/*  Slot holding `key`, or the empty slot where it would go. */
static size_t s_find (const tf_index_t *self, const char *key, uint64_t hash)
{
    size_t i = hash & self->mask;
    while (self->slots[i].key &&
           (self->slots[i].hash != hash || strcmp (self->slots[i].key, key) != 0))
        i = (i + 1) & self->mask;
    return i;
}

static void s_grow (tf_index_t *self)
{
    s_slot_t *old = self->slots;
    size_t old_count = self->mask + 1;
    self->slots = (s_slot_t *) s_calloc (old_count * 2, sizeof *self->slots);
    self->mask = old_count * 2 - 1;
    for (size_t i = 0; i < old_count; i++)
        if (old[i].key)
            self->slots[s_find (self, old[i].key, old[i].hash)] = old[i];
    free (old);
}

tf_index_t *tf_index_new (void)
{
    tf_index_t *self = (tf_index_t *) s_calloc (1, sizeof *self);
    self->slots = (s_slot_t *) s_calloc (TF_INDEX_MIN_SLOTS, sizeof *self->slots);
    self->mask = TF_INDEX_MIN_SLOTS - 1;
    return self;
}

void tf_index_destroy (tf_index_t **self_p)
{
    assert (self_p);
    tf_index_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i <= self->mask; i++)
        free (self->slots[i].key);
    free (self->slots);
    free (self);
    *self_p = NULL;
}

bool tf_index_get (const tf_index_t *self, const char *key, tf_index_value_t *value)
{
    assert (self && key);
    size_t i = s_find (self, key, s_hash (key));
    if (!self->slots[i].key)
        return false;
    if (value)
        *value = self->slots[i].value;
    return true;
}

void tf_index_set (tf_index_t *self, const char *key, tf_index_value_t value)
{
    tf_index_swap (self, key, value, NULL);
}

bool tf_index_swap (tf_index_t *self, const char *key, tf_index_value_t value,
                    tf_index_value_t *old)
{
    assert (self && key);
    uint64_t hash = s_hash (key);
    size_t i = s_find (self, key, hash);
    bool existed = self->slots[i].key != NULL;
    if (existed && old)
        *old = self->slots[i].value;
    if (!existed) {
        //  Keep the table at most 3/4 full so probe runs stay short.
        if ((self->size + 1) * 4 > (self->mask + 1) * 3) {
            s_grow (self);
            i = s_find (self, key, hash);
        }
        size_t len = strlen (key) + 1;
        self->slots[i].key = (char *) s_calloc (1, len);
        memcpy (self->slots[i].key, key, len);
        self->slots[i].hash = hash;
        self->size++;
        self->key_bytes += len;
    }
    self->slots[i].value = value;
    return existed;
}

bool tf_index_remove (tf_index_t *self, const char *key)
{
    assert (self && key);
    size_t hole = s_find (self, key, s_hash (key));
    if (!self->slots[hole].key)
        return false;
    self->key_bytes -= strlen (self->slots[hole].key) + 1;
    free (self->slots[hole].key);
    self->slots[hole].key = NULL;
    self->size--;
    //  Move back every later entry of the run that may sit in the hole.
    for (size_t i = (hole + 1) & self->mask; self->slots[i].key; i = (i + 1) & self->mask) {
        size_t home = self->slots[i].hash & self->mask;
        bool reachable = hole <= i ? (home <= hole || home > i) : (home <= hole && home > i);
        if (reachable) {
            self->slots[hole] = self->slots[i];
            self->slots[i].key = NULL;
            hole = i;
        }
    }
    return true;
}

size_t tf_index_size (const tf_index_t *self)
{
    assert (self);
    return self->size;
}

bool tf_index_next (const tf_index_t *self, size_t *cursor, const char **key,
                    tf_index_value_t *value)
{
    assert (self && cursor);
    while (*cursor <= self->mask) {
        const s_slot_t *slot = &self->slots[(*cursor)++];
        if (slot->key) {
            if (key)
                *key = slot->key;
            if (value)
                *value = slot->value;
            return true;
        }
    }
    return false;
}

size_t tf_index_bytes (const tf_index_t *self)
{
    assert (self);
    return (self->mask + 1) * sizeof (s_slot_t) + self->key_bytes;
}
