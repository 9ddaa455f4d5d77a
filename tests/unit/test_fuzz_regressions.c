/*  Replays every committed fuzz input — the seed corpora in
    tests/fuzz/corpus/<target>/ and the kept crash inputs in
    tests/fuzz/regressions/<target>/ — through the harness bodies the
    fuzzers run (tests/fuzz/fuzz_targets.c), under this build's sanitizers.
    A regression input that fails here is a fixed bug come back. Each input
    is given in a buffer of exactly its size, as libFuzzer does, so a read
    past its end is caught. Runs from the repository root. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../fuzz/fuzz_targets.h"

#define S_FUZZ_DIR "tests/fuzz"
#define S_TESTS_MAX 16

static int s_is_input (const struct dirent *entry)
{
    return entry->d_name[0] != '.';
}

/*  The file's bytes in a buffer of exactly its size (1 for an empty file,
    of which none is read). */
static uint8_t *s_slurp (const char *path, size_t *size)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        fail_msg ("%s: %s", path, strerror (errno));
    struct stat st;
    assert_int_equal (fstat (fileno (file), &st), 0);
    *size = (size_t) st.st_size;
    uint8_t *data = malloc (*size ? *size : 1);
    assert_non_null (data);
    assert_int_equal (fread (data, 1, *size, file), *size);
    fclose (file);
    return data;
}

/*  Runs every file of tests/fuzz/<kind>/<target>/ in name order; returns
    how many. A missing directory counts none. */
static size_t s_replay (const fuzz_target_t *target, const char *kind)
{
    char dir[256], path[512];
    snprintf (dir, sizeof dir, "%s/%s/%s", S_FUZZ_DIR, kind, target->name);
    struct dirent **names;
    int n = scandir (dir, &names, s_is_input, alphasort);
    if (n < 0)
        return 0;
    for (int i = 0; i < n; i++) {
        snprintf (path, sizeof path, "%s/%s", dir, names[i]->d_name);
        size_t size;
        uint8_t *data = s_slurp (path, &size);
        if (target->run (data, size))
            fail_msg ("%s: %s", path, fuzz_last_error ());
        free (data);
        free (names[i]);
    }
    free (names);
    return (size_t) n;
}

static void test_replay (void **state)
{
    const fuzz_target_t *target = (const fuzz_target_t *) *state;
    size_t seeds = s_replay (target, "corpus");
    size_t kept = s_replay (target, "regressions");
    print_message ("%s: %zu seed(s), %zu regression input(s)\n", target->name, seeds, kept);
    if (seeds == 0)
        fail_msg ("%s/corpus/%s has no seeds (run from the repository root)", S_FUZZ_DIR,
                  target->name);
}

int main (void)
{
    struct CMUnitTest tests[S_TESTS_MAX];
    static char names[S_TESTS_MAX][64];
    size_t n = 0;
    for (const fuzz_target_t *t = fuzz_targets; t->name && n < S_TESTS_MAX; t++, n++) {
        snprintf (names[n], sizeof names[n], "replay_%s", t->name);
        tests[n] = (struct CMUnitTest) cmocka_unit_test_prestate (test_replay, (void *) t);
        tests[n].name = names[n];
    }
    return _cmocka_run_group_tests ("fuzz_regressions", tests, n, NULL, NULL);
}
