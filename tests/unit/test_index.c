/*  Unit tests for proto/tf_index: get/set/remove on an empty and a small
    table, overwrite, key copies, growth to 50,000 keys, byte accounting,
    keys whose hashes share their low bits (long runs that wrap around the
    end of the table, emptied from the middle), and long randomized runs
    of set/remove/get checked after every operation against a plain array,
    with walks (tf_index_next) checked against it along the way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tf_index.h"

// --------------------------------------------------------------- helpers

/*  xorshift64*, so every run makes the same operations */
static uint64_t s_next (uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545f4914f6cdd1dULL;
}

static tf_index_value_t s_value (uint64_t a, uint64_t b)
{
    tf_index_value_t value = { a, b };
    return value;
}

/*  Fails unless `key` is present with exactly (a, b). */
static void s_expect (const tf_index_t *index, const char *key, uint64_t a, uint64_t b)
{
    tf_index_value_t value = s_value (~a, ~b);
    if (!tf_index_get (index, key, &value))
        fail_msg ("key '%s' missing", key);
    if (value.a != a || value.b != b)
        fail_msg ("key '%s': (%llu, %llu), expected (%llu, %llu)", key,
                  (unsigned long long) value.a, (unsigned long long) value.b,
                  (unsigned long long) a, (unsigned long long) b);
}

static void s_expect_absent (const tf_index_t *index, const char *key)
{
    tf_index_value_t value = s_value (7, 9);
    if (tf_index_get (index, key, &value))
        fail_msg ("key '%s' present, should be absent", key);
    assert_int_equal (value.a, 7); // untouched on a miss
    assert_int_equal (value.b, 9);
}

/*  The hash tf_index.c uses (FNV-1a, 64 bits; the low bits pick the slot),
    to build keys that land on the same home slot. Should the table change
    its hash, the collision tests still check behaviour, only less sharply. */
static uint64_t s_fnv1a (const char *key)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *) key; *p; p++)
        hash = (hash ^ *p) * 0x100000001b3ULL;
    return hash;
}

#define KEY_MAX 24
#define LOW_MASK 0x3ff /* tables up to 1,024 slots see the same home */

/*  Fills keys[count] with distinct keys whose hash has low bits `low`
    (masked by LOW_MASK); *cursor carries the candidate counter on. */
static void s_colliding_keys (char (*keys)[KEY_MAX], size_t count, uint64_t low, uint64_t *cursor)
{
    for (size_t found = 0; found < count; (*cursor)++) {
        char key[KEY_MAX];
        snprintf (key, sizeof key, "c%llu", (unsigned long long) *cursor);
        if ((s_fnv1a (key) & LOW_MASK) == low)
            memcpy (keys[found++], key, sizeof key);
    }
}

/*  Keys in three groups: home at the last slot, the one before it and
    slot 0 (for any table of 64 to 1,024 slots), so runs interleave and
    wrap around the end of the table. */
#define GROUP 40
#define COLLIDING (3 * GROUP)
static char s_collide[COLLIDING][KEY_MAX];

static int s_setup (void **state)
{
    uint64_t cursor = 0;
    s_colliding_keys (s_collide, GROUP, LOW_MASK, &cursor);
    s_colliding_keys (s_collide + GROUP, GROUP, LOW_MASK - 1, &cursor);
    s_colliding_keys (s_collide + 2 * GROUP, GROUP, 0, &cursor);
    return 0;
}

static int s_strcmp_p (const void *a, const void *b)
{
    return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/*  tf_index_next walks each present key once, with its value, and no
    other: the walked keys and the present ones, both sorted, are equal. */
static void s_check_walk (const tf_index_t *index, char (*keys)[KEY_MAX], size_t count,
                          const bool *present, const tf_index_value_t *values)
{
    const char **walked = calloc (count + 1, sizeof *walked);
    const char **expected = calloc (count + 1, sizeof *expected);
    assert_non_null (walked);
    assert_non_null (expected);
    size_t n = 0, m = 0, cursor = 0;
    const char *key;
    tf_index_value_t value;
    while (tf_index_next (index, &cursor, &key, &value)) {
        if (n == count)
            fail_msg ("the walk gave more than the %zu possible keys", count);
        tf_index_value_t got;
        assert_true (tf_index_get (index, key, &got));
        assert_true (got.a == value.a && got.b == value.b);
        walked[n++] = key;
    }
    assert_false (tf_index_next (index, &cursor, &key, &value)); // stays at the end
    for (size_t k = 0; k < count; k++)
        if (present[k]) {
            s_expect (index, keys[k], values[k].a, values[k].b);
            expected[m++] = keys[k];
        }
    assert_int_equal (n, m);
    assert_int_equal (n, tf_index_size (index));
    qsort (walked, n, sizeof *walked, s_strcmp_p);
    qsort (expected, m, sizeof *expected, s_strcmp_p);
    for (size_t i = 0; i < n; i++)
        assert_string_equal (walked[i], expected[i]);
    free (walked);
    free (expected);
}

/*  Random set/remove/get on keys[count], checked after every operation
    against present[]/values[] and the size; then every key is checked.
    Sets dominate for `phase` operations, then removals, and so on, so the
    table fills up (long runs) and empties again many times. */
static void s_random_run (char (*keys)[KEY_MAX], size_t count, size_t ops, size_t phase,
                          uint64_t seed)
{
    tf_index_t *index = tf_index_new ();
    bool *present = calloc (count, sizeof *present);
    tf_index_value_t *values = calloc (count, sizeof *values);
    assert_non_null (present);
    assert_non_null (values);
    size_t size = 0;
    size_t removed = 0, overwritten = 0, hits = 0, misses = 0;
    uint64_t rng = seed;

    for (size_t op = 0; op < ops; op++) {
        size_t k = s_next (&rng) % count;
        unsigned roll = s_next (&rng) % 10;
        bool filling = (op / phase) % 2 == 0;
        if (roll < (filling ? 6u : 2u)) {
            tf_index_value_t value = s_value (s_next (&rng), op);
            tf_index_set (index, keys[k], value);
            if (present[k])
                overwritten++;
            else
                size++;
            present[k] = true;
            values[k] = value;
        } else if (roll < 8) {
            bool was = tf_index_remove (index, keys[k]);
            if (was != present[k])
                fail_msg ("op %zu: remove '%s' returned %d, expected %d", op, keys[k], was,
                          present[k]);
            if (was) {
                size--;
                removed++;
            }
            present[k] = false;
        } else if (present[k]) {
            s_expect (index, keys[k], values[k].a, values[k].b);
            hits++;
        } else {
            s_expect_absent (index, keys[k]);
            misses++;
        }
        if (tf_index_size (index) != size)
            fail_msg ("op %zu: size %zu, expected %zu", op, tf_index_size (index), size);
        if (op % (ops / 8) == 0)
            s_check_walk (index, keys, count, present, values);
    }
    s_check_walk (index, keys, count, present, values);
    for (size_t k = 0; k < count; k++) {
        if (present[k])
            s_expect (index, keys[k], values[k].a, values[k].b);
        else
            s_expect_absent (index, keys[k]);
    }
    //  The run did exercise every path.
    assert_true (removed > ops / 20);
    assert_true (overwritten > ops / 20);
    assert_true (hits > 0 && misses > 0);

    tf_index_destroy (&index);
    assert_null (index);
    free (present);
    free (values);
}

// ----------------------------------------------------------------- tests

static void test_empty (void **state)
{
    tf_index_t *index = tf_index_new ();
    assert_non_null (index);
    assert_int_equal (tf_index_size (index), 0);
    assert_true (tf_index_bytes (index) > 0); // the slots
    s_expect_absent (index, "a");
    s_expect_absent (index, "");
    assert_false (tf_index_remove (index, "a"));
    assert_false (tf_index_remove (index, ""));
    assert_int_equal (tf_index_size (index), 0);
    size_t cursor = 0;
    assert_false (tf_index_next (index, &cursor, NULL, NULL));
    tf_index_destroy (&index);
    assert_null (index);
}

static void test_set_get (void **state)
{
    tf_index_t *index = tf_index_new ();
    tf_index_set (index, "m-1", s_value (1, 100));
    tf_index_set (index, "m-2", s_value (2, UINT64_MAX));
    tf_index_set (index, "", s_value (0, 3)); // the empty key is a key
    assert_int_equal (tf_index_size (index), 3);
    s_expect (index, "m-1", 1, 100);
    s_expect (index, "m-2", 2, UINT64_MAX);
    s_expect (index, "", 0, 3);
    s_expect_absent (index, "m-3");
    s_expect_absent (index, "m-");
    s_expect_absent (index, "m-10");
    tf_index_destroy (&index);
}

/*  tf_index_swap sets like tf_index_set and says what was there. */
static void test_swap (void **state)
{
    tf_index_t *index = tf_index_new ();
    tf_index_value_t old = s_value (9, 9);
    assert_false (tf_index_swap (index, "m-1", s_value (1, 100), &old));
    assert_int_equal (old.a, 9); // untouched when absent
    assert_int_equal (old.b, 9);
    s_expect (index, "m-1", 1, 100);
    assert_true (tf_index_swap (index, "m-1", s_value (2, 200), &old));
    assert_int_equal (old.a, 1);
    assert_int_equal (old.b, 100);
    s_expect (index, "m-1", 2, 200);
    assert_true (tf_index_swap (index, "m-1", s_value (3, 300), NULL));
    s_expect (index, "m-1", 3, 300);
    assert_int_equal (tf_index_size (index), 1);
    tf_index_destroy (&index);
}

static void test_key_is_copied (void **state)
{
    tf_index_t *index = tf_index_new ();
    char key[16] = "record-1";
    tf_index_set (index, key, s_value (5, 6));
    key[7] = '2';
    s_expect_absent (index, key);
    s_expect (index, "record-1", 5, 6);
    tf_index_set (index, key, s_value (7, 8));
    memset (key, 'x', sizeof key - 1);
    s_expect (index, "record-1", 5, 6);
    s_expect (index, "record-2", 7, 8);
    tf_index_destroy (&index);
}

static void test_overwrite (void **state)
{
    tf_index_t *index = tf_index_new ();
    tf_index_set (index, "id", s_value (1, 1));
    tf_index_set (index, "other", s_value (9, 9));
    size_t bytes = tf_index_bytes (index);
    tf_index_set (index, "id", s_value (2, 20));
    assert_int_equal (tf_index_size (index), 2);
    assert_int_equal (tf_index_bytes (index), bytes);
    s_expect (index, "id", 2, 20);
    s_expect (index, "other", 9, 9);
    tf_index_set (index, "id", s_value (0, 0));
    assert_int_equal (tf_index_size (index), 2);
    s_expect (index, "id", 0, 0);
    tf_index_destroy (&index);
}

static void test_remove_once (void **state)
{
    tf_index_t *index = tf_index_new ();
    tf_index_set (index, "a", s_value (1, 2));
    tf_index_set (index, "b", s_value (3, 4));
    assert_true (tf_index_remove (index, "a"));
    assert_int_equal (tf_index_size (index), 1);
    assert_false (tf_index_remove (index, "a"));
    assert_int_equal (tf_index_size (index), 1);
    s_expect_absent (index, "a");
    s_expect (index, "b", 3, 4);
    //  Back again after removal, with the new value.
    tf_index_set (index, "a", s_value (5, 6));
    assert_int_equal (tf_index_size (index), 2);
    s_expect (index, "a", 5, 6);
    assert_true (tf_index_remove (index, "b"));
    assert_true (tf_index_remove (index, "a"));
    assert_false (tf_index_remove (index, "b"));
    assert_int_equal (tf_index_size (index), 0);
    tf_index_destroy (&index);
}

#define MANY 50000

static void test_growth (void **state)
{
    tf_index_t *index = tf_index_new ();
    char key[32];
    size_t key_bytes = 0;
    for (uint64_t i = 0; i < MANY; i++) {
        snprintf (key, sizeof key, "milestone-%llu", (unsigned long long) i);
        tf_index_set (index, key, s_value (i, i * 31 + 7));
        key_bytes += strlen (key) + 1;
        assert_int_equal (tf_index_size (index), i + 1);
    }
    //  Slots and key copies: at least every key and its two integers.
    assert_true (tf_index_bytes (index) >= key_bytes + MANY * sizeof (tf_index_value_t));
    for (uint64_t i = 0; i < MANY; i++) {
        snprintf (key, sizeof key, "milestone-%llu", (unsigned long long) i);
        s_expect (index, key, i, i * 31 + 7);
    }
    s_expect_absent (index, "milestone-50000");
    s_expect_absent (index, "milestone-");
    //  Remove the odd ones: the even ones stay, with their values.
    for (uint64_t i = 1; i < MANY; i += 2) {
        snprintf (key, sizeof key, "milestone-%llu", (unsigned long long) i);
        assert_true (tf_index_remove (index, key));
    }
    assert_int_equal (tf_index_size (index), MANY / 2);
    for (uint64_t i = 0; i < MANY; i++) {
        snprintf (key, sizeof key, "milestone-%llu", (unsigned long long) i);
        if (i % 2)
            s_expect_absent (index, key);
        else
            s_expect (index, key, i, i * 31 + 7);
    }
    tf_index_destroy (&index);
}

static void test_bytes (void **state)
{
    tf_index_t *index = tf_index_new ();
    size_t empty = tf_index_bytes (index);
    char key[32];
    tf_index_set (index, "k0", s_value (0, 0));
    size_t one = tf_index_bytes (index);
    assert_true (one > empty);
    for (unsigned i = 1; i < 1000; i++) {
        snprintf (key, sizeof key, "k%u", i);
        tf_index_set (index, key, s_value (i, i));
    }
    size_t full = tf_index_bytes (index);
    assert_true (full >= one + 999 * (sizeof (tf_index_value_t) + 3));
    //  Every removal gives back at least its key copy.
    size_t last = full;
    for (unsigned i = 0; i < 1000; i++) {
        snprintf (key, sizeof key, "k%u", i);
        assert_true (tf_index_remove (index, key));
        size_t now = tf_index_bytes (index);
        if (now >= last)
            fail_msg ("removing %s: bytes %zu, before %zu", key, now, last);
        last = now;
    }
    assert_int_equal (tf_index_size (index), 0);
    assert_true (last < full);
    //  A miss changes nothing.
    assert_false (tf_index_remove (index, "k0"));
    assert_int_equal (tf_index_bytes (index), last);
    tf_index_destroy (&index);
}

static void test_destroy_null (void **state)
{
    tf_index_t *index = NULL;
    tf_index_destroy (&index);
    assert_null (index);
    tf_index_destroy (&index); // twice
    assert_null (index);
}

/*  Every colliding key is present with want[k], or absent where
    present[k] is false. */
static void s_check_colliding (const tf_index_t *index, const bool *present,
                               const tf_index_value_t *want)
{
    size_t count = 0;
    for (size_t k = 0; k < COLLIDING; k++) {
        if (present[k]) {
            s_expect (index, s_collide[k], want[k].a, want[k].b);
            count++;
        } else
            s_expect_absent (index, s_collide[k]);
    }
    assert_int_equal (tf_index_size (index), count);
}

/*  The keys sharing their low hash bits, inserted, then removed from the
    middle of their runs: everything else must still be found. */
static void test_colliding_keys (void **state)
{
    //  The keys really do collide (with FNV-1a, see s_fnv1a).
    for (size_t k = 1; k < GROUP; k++)
        assert_int_equal (s_fnv1a (s_collide[k]) & LOW_MASK, s_fnv1a (s_collide[0]) & LOW_MASK);

    tf_index_t *index = tf_index_new ();
    bool present[COLLIDING];
    tf_index_value_t want[COLLIDING];
    //  Interleaved insertion, so the three runs mix.
    for (size_t i = 0; i < GROUP; i++)
        for (size_t g = 0; g < 3; g++) {
            size_t k = g * GROUP + i;
            want[k] = s_value (k, k + 1000);
            present[k] = true;
            tf_index_set (index, s_collide[k], want[k]);
        }
    s_check_colliding (index, present, want);
    //  Remove from the middle outwards, checking all keys each time.
    size_t order[] = { 20, 60, 100, 19, 61, 101, 0, 40, 80, 39, 79, 119, 5, 55, 105 };
    size_t removals = sizeof order / sizeof order[0];
    for (size_t r = 0; r < removals; r++) {
        assert_true (tf_index_remove (index, s_collide[order[r]]));
        assert_false (tf_index_remove (index, s_collide[order[r]]));
        present[order[r]] = false;
        s_check_colliding (index, present, want);
    }
    //  Back in, with new values; then remove every even one.
    for (size_t r = 0; r < removals; r++) {
        want[order[r]] = s_value (order[r], 7);
        present[order[r]] = true;
        tf_index_set (index, s_collide[order[r]], want[order[r]]);
    }
    assert_int_equal (tf_index_size (index), COLLIDING);
    for (size_t k = 0; k < COLLIDING; k += 2) {
        assert_true (tf_index_remove (index, s_collide[k]));
        present[k] = false;
    }
    s_check_colliding (index, present, want);
    //  Empty the middle group (home just before the last slot) one by one:
    //  holes open before the wrapped part of the last slot's run.
    for (size_t k = GROUP + 1; k < 2 * GROUP; k += 2) {
        assert_true (tf_index_remove (index, s_collide[k]));
        present[k] = false;
        s_check_colliding (index, present, want);
    }
    assert_int_equal (tf_index_size (index), COLLIDING / 2 - GROUP / 2);
    tf_index_destroy (&index);
}

#define POOL 5000
#define POOL_OPS 200000

/*  200,000 operations on a pool of 5,000 keys; the size swings up and
    down through the table's growth points, so removals land in runs of
    every length the load allows. */
static void test_random_pool (void **state)
{
    char (*keys)[KEY_MAX] = calloc (POOL, sizeof *keys);
    assert_non_null (keys);
    for (size_t k = 0; k < POOL; k++)
        snprintf (keys[k], KEY_MAX, "rec-%zu", k);
    s_random_run (keys, POOL, POOL_OPS, 7000, 0x9e3779b97f4a7c15ULL);
    free (keys);
}

/*  The same on the colliding keys only: every run is long and wraps. */
static void test_random_colliding (void **state)
{
    s_random_run (s_collide, COLLIDING, 100000, 300, 0x243f6a8885a308d3ULL);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_empty),
        cmocka_unit_test (test_set_get),
        cmocka_unit_test (test_swap),
        cmocka_unit_test (test_key_is_copied),
        cmocka_unit_test (test_overwrite),
        cmocka_unit_test (test_remove_once),
        cmocka_unit_test (test_growth),
        cmocka_unit_test (test_bytes),
        cmocka_unit_test (test_destroy_null),
        cmocka_unit_test (test_colliding_keys),
        cmocka_unit_test (test_random_pool),
        cmocka_unit_test (test_random_colliding),
    };
    return cmocka_run_group_tests (tests, s_setup, NULL);
}
