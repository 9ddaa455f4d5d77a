/*  tf_arena — a bump allocator whose memory is given back all at once.
    See tf_arena.h.
*/
#include <assert.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tf_arena.h"

#define S_ALIGN alignof (max_align_t)

typedef struct s_block_t {
    struct s_block_t *next; /* older block */
    size_t size;            /* bytes in data */
    size_t used;            /* bytes handed out */
    alignas (max_align_t) unsigned char data[];
} s_block_t;

struct _tf_arena_t {
    s_block_t *blocks; /* newest first: allocations come from the head */
    size_t first;      /* size of the first block after a reset */
    size_t keep_max;   /* largest block kept across a reset */
};

static s_block_t *s_block_new (size_t size, s_block_t *next)
{
    s_block_t *block = (s_block_t *) malloc (sizeof (s_block_t) + size);
    if (!block)
        abort ();
    block->next = next;
    block->size = size;
    block->used = 0;
    return block;
}

tf_arena_t *tf_arena_new (size_t first, size_t keep_max)
{
    tf_arena_t *self = (tf_arena_t *) calloc (1, sizeof (tf_arena_t));
    if (!self)
        abort ();
    self->first = first ? first : 4096;
    self->keep_max = keep_max;
    return self;
}

static void s_free_blocks (s_block_t *block)
{
    while (block) {
        s_block_t *next = block->next;
        free (block);
        block = next;
    }
}

void tf_arena_destroy (tf_arena_t **self_p)
{
    assert (self_p);
    if (!*self_p)
        return;
    s_free_blocks ((*self_p)->blocks);
    free (*self_p);
    *self_p = NULL;
}

void *tf_arena_alloc (tf_arena_t *self, size_t size)
{
    assert (self);
    if (size > SIZE_MAX / 2)
        abort (); // no caller asks for half the address space
    size = (size + S_ALIGN - 1) & ~(S_ALIGN - 1);
    s_block_t *head = self->blocks;
    if (!head || head->size - head->used < size) {
        size_t want = head ? head->size * 2 : self->first;
        if (want < size)
            want = size;
        head = self->blocks = s_block_new (want, head);
    }
    void *p = head->data + head->used;
    head->used += size;
    return p;
}

void *tf_arena_copy (tf_arena_t *self, const void *data, size_t size)
{
    char *copy = (char *) tf_arena_alloc (self, size + 1);
    if (size)
        memcpy (copy, data, size);
    copy[size] = 0;
    return copy;
}

void tf_arena_reset (tf_arena_t *self)
{
    assert (self);
    s_block_t *head = self->blocks;
    if (!head)
        return;
    //  The newest block is the largest: keep it alone, if not too large
    s_free_blocks (head->next);
    head->next = NULL;
    head->used = 0;
    if (head->size > self->keep_max && head->size > self->first) {
        free (head);
        self->blocks = NULL;
    }
}

void tf_arena_release (tf_arena_t *self)
{
    assert (self);
    s_free_blocks (self->blocks);
    self->blocks = NULL;
}

size_t tf_arena_capacity (const tf_arena_t *self)
{
    size_t total = 0;
    for (const s_block_t *block = self->blocks; block; block = block->next)
        total += block->size;
    return total;
}
