/*  Unit tests for proto/tf_arena.c, proto/tf_clone.c and
    tf_wire_unpack_in: decoding into an arena gives the same message as
    decoding on the heap, and a clone packs to the same bytes as its
    original, with everything inside its one block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../lib/tf_fixture.h"
#include "tf_arena.h"
#include "tf_clone.h"
#include "tf_wire.h"

#define BUDGET (1024 * 1024)

static char s_err[256];

/*  Asserts `a` and `b` pack to the same bytes. */
static void s_assert_same_bytes (const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t size_a, size_b;
    uint8_t *bytes_a = tf_wire_pack (a, &size_a);
    uint8_t *bytes_b = tf_wire_pack (b, &size_b);
    assert_int_equal (size_a, size_b);
    assert_memory_equal (bytes_a, bytes_b, size_a);
    free (bytes_a);
    free (bytes_b);
}

static void s_assert_inside (const void *p, const void *block, size_t size)
{
    assert_true ((const char *) p >= (const char *) block &&
                 (const char *) p < (const char *) block + size);
}

/*  A sync reply with `n` records and `n` changes, every record the
    fixture under another id. Free with free_unpacked. */
static Techfeed__SyncReply *s_reply (size_t n)
{
    Techfeed__SyncReply *reply = calloc (1, sizeof *reply);
    techfeed__sync_reply__init (reply);
    reply->epoch = strdup ("e1");
    reply->has_end = reply->end = 1;
    reply->n_records = reply->n_changes = n;
    reply->records = calloc (n, sizeof *reply->records);
    reply->changes = calloc (n, sizeof *reply->changes);
    for (size_t i = 0; i < n; i++) {
        reply->records[i] = tf_fixture_milestone ();
        free (reply->records[i]->id);
        reply->records[i]->id = malloc (32);
        snprintf (reply->records[i]->id, 32, "rec-%zu", i);
        Techfeed__ChangeEvent *change = calloc (1, sizeof *change);
        techfeed__change_event__init (change);
        change->id = strdup (reply->records[i]->id);
        change->has_sequence = 1;
        change->sequence = i + 1;
        change->has_kind = 1;
        change->kind =
            i % 3 ? TECHFEED__CHANGE_KIND__CHANGE_PUT : TECHFEED__CHANGE_KIND__CHANGE_DELETE;
        if (change->kind == TECHFEED__CHANGE_KIND__CHANGE_PUT)
            change->record = tf_fixture_milestone ();
        reply->changes[i] = change;
    }
    return reply;
}

// --------------------------------------------------------------- tf_clone

static void test_clone_milestone (void **state)
{
    Techfeed__Milestone *m = tf_fixture_milestone ();
    Techfeed__Milestone *copy = (Techfeed__Milestone *) tf_clone (&m->base);
    s_assert_same_bytes (&m->base, &copy->base);
    //  Everything the copy points to is in its block, nothing in the original's
    size_t size = tf_clone_size (&m->base);
    assert_true (size >= sizeof *copy);
    s_assert_inside (copy->id, copy, size);
    s_assert_inside (copy->title, copy, size);
    assert_true (copy->n_organizations > 0 && copy->n_metrics > 0 && copy->n_tags > 0);
    s_assert_inside (copy->organizations, copy, size);
    s_assert_inside (copy->organizations[0], copy, size);
    s_assert_inside (copy->metrics[0], copy, size);
    s_assert_inside (copy->metrics[0]->name, copy, size);
    s_assert_inside (copy->tags[copy->n_tags - 1], copy, size);
    assert_ptr_not_equal (copy->title, m->title);
    //  The copy stands alone once the original is gone
    techfeed__milestone__free_unpacked (m, NULL);
    Techfeed__Milestone *again = (Techfeed__Milestone *) tf_clone (&copy->base);
    s_assert_same_bytes (&copy->base, &again->base);
    free (copy);
    free (again);
}

static void test_clone_nested_repeated (void **state)
{
    Techfeed__SyncReply *reply = s_reply (40);
    ProtobufCMessage *copy = tf_clone (&reply->base);
    s_assert_same_bytes (&reply->base, copy);
    Techfeed__SyncReply *c = (Techfeed__SyncReply *) copy;
    assert_int_equal (c->n_changes, 40);
    assert_null (c->changes[0]->record); // a delete keeps its NULL
    s_assert_inside (c->changes[38]->record->summary, copy, tf_clone_size (copy));
    techfeed__sync_reply__free_unpacked (reply, NULL);
    free (copy);
}

static void test_clone_empty_message (void **state)
{
    Techfeed__Milestone empty = TECHFEED__MILESTONE__INIT;
    ProtobufCMessage *copy = tf_clone (&empty.base);
    assert_int_equal (tf_clone_size (&empty.base), (sizeof empty + 7) & ~(size_t) 7);
    s_assert_same_bytes (&empty.base, copy);
    free (copy);
}

/*  Fields this build does not know are kept by protobuf-c's own unpack;
    the clone copies them too. */
static void test_clone_unknown_fields (void **state)
{
    Techfeed__Milestone *m = tf_fixture_milestone ();
    size_t size;
    uint8_t *bytes = tf_wire_pack (&m->base, &size);
    static const uint8_t extra[] = { 0xF8, 0x06, 0x2A,                  // field 111, varint 42
                                     0x82, 0x07, 0x03, 'a', 'b', 'c' }; // field 112, "abc"
    uint8_t *longer = malloc (size + sizeof extra);
    memcpy (longer, bytes, size);
    memcpy (longer + size, extra, sizeof extra);
    Techfeed__Milestone *decoded = techfeed__milestone__unpack (NULL, size + sizeof extra, longer);
    assert_non_null (decoded);
    assert_int_equal (decoded->base.n_unknown_fields, 2);
    ProtobufCMessage *copy = tf_clone (&decoded->base);
    assert_int_equal (copy->n_unknown_fields, 2);
    s_assert_inside (copy->unknown_fields[1].data, copy, tf_clone_size (copy));
    s_assert_same_bytes (&decoded->base, copy);
    free (copy);
    free (longer);
    free (bytes);
    techfeed__milestone__free_unpacked (decoded, NULL);
    techfeed__milestone__free_unpacked (m, NULL);
}

// --------------------------------------------------------------- tf_arena

static void test_arena_alignment_and_growth (void **state)
{
    tf_arena_t *arena = tf_arena_new (256, 4096);
    char *a = tf_arena_alloc (arena, 1);
    char *b = tf_arena_alloc (arena, 3);
    assert_int_equal ((uintptr_t) a % _Alignof(max_align_t), 0);
    assert_int_equal ((uintptr_t) b % _Alignof(max_align_t), 0);
    assert_true (b > a);
    //  More than a block holds: a new block, as large as asked
    char *big = tf_arena_alloc (arena, 10000);
    memset (big, 0xAB, 10000); // ASan: all of it is ours
    assert_true (tf_arena_capacity (arena) >= 10000 + 256);
    //  The largest block (above keep_max) goes back at the reset
    tf_arena_reset (arena);
    assert_int_equal (tf_arena_capacity (arena), 0);
    //  Blocks within keep_max stay for the next message
    tf_arena_alloc (arena, 100);
    tf_arena_alloc (arena, 300);
    size_t held = tf_arena_capacity (arena);
    assert_true (held >= 400 && held <= 4096 + 256);
    tf_arena_reset (arena);
    assert_true (tf_arena_capacity (arena) > 0 && tf_arena_capacity (arena) <= held);
    size_t kept = tf_arena_capacity (arena);
    tf_arena_alloc (arena, 300);
    assert_int_equal (tf_arena_capacity (arena), kept); // no new block
    //  Release: every block back to the system, the arena still usable
    tf_arena_release (arena);
    assert_int_equal (tf_arena_capacity (arena), 0);
    memset (tf_arena_alloc (arena, 64), 0, 64);
    assert_true (tf_arena_capacity (arena) >= 64);
    tf_arena_destroy (&arena);
    assert_null (arena);
    tf_arena_destroy (&arena); // NULL is fine
}

/*  tf_arena_copy: the bytes and a NUL after them, an empty copy of NULL. */
static void test_arena_copy (void **state)
{
    tf_arena_t *arena = tf_arena_new (256, 4096);
    const char blob[4] = { 'a', 0, 'b', 'c' };
    char *copy = tf_arena_copy (arena, blob, sizeof blob);
    assert_ptr_not_equal (copy, blob);
    assert_memory_equal (copy, blob, sizeof blob);
    assert_int_equal (copy[sizeof blob], 0);
    char *empty = tf_arena_copy (arena, NULL, 0);
    assert_string_equal (empty, "");
    tf_arena_destroy (&arena);
}

// --------------------------------------------------------------- tf_wire_unpack_in

static void test_unpack_in_arena_equals_heap (void **state)
{
    Techfeed__SyncReply *reply = s_reply (25);
    size_t size;
    uint8_t *bytes = tf_wire_pack (&reply->base, &size);
    tf_arena_t *arena = tf_arena_new (1024, 1 << 20);
    for (int round = 0; round < 3; round++) {
        ProtobufCMessage *in_arena = tf_wire_unpack_in (arena, &techfeed__sync_reply__descriptor,
                                                        bytes, size, BUDGET, s_err, sizeof s_err);
        if (!in_arena)
            fail_msg ("%s", s_err);
        ProtobufCMessage *on_heap = tf_wire_unpack (&techfeed__sync_reply__descriptor, bytes, size,
                                                    BUDGET, s_err, sizeof s_err);
        assert_non_null (on_heap);
        s_assert_same_bytes (in_arena, on_heap);
        //  A clone outlives the arena's reset
        ProtobufCMessage *kept = tf_clone (in_arena);
        tf_arena_reset (arena);
        s_assert_same_bytes (kept, on_heap);
        free (kept);
        tf_wire_free (on_heap);
    }
    tf_arena_destroy (&arena);
    free (bytes);
    techfeed__sync_reply__free_unpacked (reply, NULL);
}

/*  The checks of tf_wire_unpack hold in an arena too, and a refused
    message leaves the arena usable. */
static void test_unpack_in_arena_refuses (void **state)
{
    tf_arena_t *arena = tf_arena_new (1024, 1 << 20);
    Techfeed__SyncReply *reply = s_reply (25);
    size_t size;
    uint8_t *bytes = tf_wire_pack (&reply->base, &size);
    assert_null (tf_wire_unpack_in (arena, &techfeed__sync_reply__descriptor, bytes, size, 2000,
                                    s_err, sizeof s_err));
    assert_non_null (strstr (s_err, "decode budget of 2000 bytes"));
    assert_null (tf_wire_unpack_in (arena, &techfeed__sync_reply__descriptor, bytes, size - 3,
                                    BUDGET, s_err, sizeof s_err));
    assert_non_null (strstr (s_err, "not a valid techfeed.SyncReply"));
    //  A NUL inside a string: "ab\0" as the id of a milestone
    static const uint8_t nul[] = { 0x0A, 0x03, 'a', 'b', 0x00 };
    assert_null (tf_wire_unpack_in (arena, &techfeed__milestone__descriptor, nul, sizeof nul,
                                    BUDGET, s_err, sizeof s_err));
    assert_non_null (strstr (s_err, "NUL"));
    //  An unknown field
    static const uint8_t unknown[] = { 0xF8, 0x06, 0x2A };
    assert_null (tf_wire_unpack_in (arena, &techfeed__milestone__descriptor, unknown,
                                    sizeof unknown, BUDGET, s_err, sizeof s_err));
    ProtobufCMessage *ok = tf_wire_unpack_in (arena, &techfeed__sync_reply__descriptor, bytes, size,
                                              BUDGET, s_err, sizeof s_err);
    assert_non_null (ok);
    s_assert_same_bytes (ok, &reply->base);
    tf_arena_destroy (&arena);
    free (bytes);
    techfeed__sync_reply__free_unpacked (reply, NULL);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_clone_milestone),
        cmocka_unit_test (test_clone_nested_repeated),
        cmocka_unit_test (test_clone_empty_message),
        cmocka_unit_test (test_clone_unknown_fields),
        cmocka_unit_test (test_arena_alignment_and_growth),
        cmocka_unit_test (test_arena_copy),
        cmocka_unit_test (test_unpack_in_arena_equals_heap),
        cmocka_unit_test (test_unpack_in_arena_refuses),
    };
    return cmocka_run_group_tests_name ("clone", tests, NULL, NULL);
}
