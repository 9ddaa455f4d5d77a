/*  Bounded fuzzing as part of `make test` (issue 4: "CI runs each for a
    bounded time under ASan+UBSan"): every libFuzzer harness in
    $TF_BUILD_DIR/fuzz/ runs for FUZZ_TEST_SECONDS (default 20) through
    tests/fuzz/run-fuzzers.sh, all at once, and must end without a crash,
    leak, timeout or broken property. `make check` builds the harnesses only
    where clang can link libFuzzer; without them each test is skipped and
    says why. A failure prints the fuzzer's report and where the crash input
    was saved. The targets are the directories of tests/fuzz/corpus/. Runs
    from the repository root. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define S_RUNNER "tests/fuzz/run-fuzzers.sh"
#define S_CORPUS "tests/fuzz/corpus"
#define S_TARGETS 16

static struct {
    char fuzz_dir[512];
    char seconds[16];
    char targets[S_TARGETS][256]; /* names, from the corpus directories */
    size_t count;
    pid_t pids[S_TARGETS]; /* running runners, 0 once waited for */
    FILE *logs[S_TARGETS]; /* each runner's output, unlinked temp files */
} s_run;

/*  Starts the runner for target `i` with its output in a temp file. */
static void s_start (size_t i)
{
    s_run.logs[i] = tmpfile ();
    assert_non_null (s_run.logs[i]);
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        setpgid (0, 0); // a group of its own, so teardown can stop the fuzzer too
        dup2 (fileno (s_run.logs[i]), STDOUT_FILENO);
        dup2 (fileno (s_run.logs[i]), STDERR_FILENO);
        execl ("/bin/sh", "sh", S_RUNNER, s_run.fuzz_dir, s_run.seconds, s_run.targets[i],
               (char *) NULL);
        fprintf (stderr, "cannot run %s: %s\n", S_RUNNER, strerror (errno));
        _exit (127);
    }
    s_run.pids[i] = pid;
}

static int s_group_setup (void **state)
{
    const char *build = getenv ("TF_BUILD_DIR");
    snprintf (s_run.fuzz_dir, sizeof s_run.fuzz_dir, "%s/fuzz", build && *build ? build : "build");
    const char *seconds = getenv ("FUZZ_TEST_SECONDS");
    snprintf (s_run.seconds, sizeof s_run.seconds, "%d",
              seconds && atoi (seconds) > 0 ? atoi (seconds) : 20);
    for (size_t i = 0; i < s_run.count; i++) {
        char bin[600];
        snprintf (bin, sizeof bin, "%s/fuzz_%s", s_run.fuzz_dir, s_run.targets[i]);
        if (access (bin, X_OK) == 0)
            s_start (i);
    }
    return 0;
}

static int s_group_teardown (void **state)
{
    for (size_t i = 0; i < s_run.count; i++) {
        if (s_run.pids[i] > 0) { // a test failed before waiting: stop the runner
            kill (-s_run.pids[i], SIGTERM);
            waitpid (s_run.pids[i], NULL, 0);
        }
        if (s_run.logs[i])
            fclose (s_run.logs[i]);
    }
    return 0;
}

/*  Copies the runner's output to ours. */
static void s_print_log (FILE *log)
{
    char line[1024];
    rewind (log);
    while (fgets (line, sizeof line, log))
        print_message ("%s", line);
}

static void test_fuzz (void **state)
{
    size_t i = (size_t) (uintptr_t) *state;
    if (s_run.pids[i] == 0) {
        print_message ("skipped: %s/fuzz_%s is not built (needs clang with libFuzzer: "
                       "apt-get install clang libclang-rt-dev; make fuzz-build)\n",
                       s_run.fuzz_dir, s_run.targets[i]);
        skip ();
    }
    int status;
    pid_t pid = s_run.pids[i];
    while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
        ;
    s_run.pids[i] = 0;
    s_print_log (s_run.logs[i]);
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        fail_msg ("fuzz_%s failed (status 0x%x); see above", s_run.targets[i], status);
}

static int s_is_target (const struct dirent *entry)
{
    return entry->d_name[0] != '.';
}

int main (void)
{
    struct dirent **names;
    int n = scandir (S_CORPUS, &names, s_is_target, alphasort);
    if (n <= 0) {
        fprintf (stderr, "%s: no fuzz targets (run from the repository root)\n", S_CORPUS);
        return 1;
    }
    struct CMUnitTest tests[S_TARGETS];
    static char test_names[S_TARGETS][264];
    for (int i = 0; i < n; i++) {
        if (s_run.count < S_TARGETS) {
            size_t k = s_run.count++;
            snprintf (s_run.targets[k], sizeof s_run.targets[k], "%s", names[i]->d_name);
            snprintf (test_names[k], sizeof test_names[k], "fuzz_%s", names[i]->d_name);
            tests[k] = (struct CMUnitTest) cmocka_unit_test_prestate (test_fuzz, (void *) k);
            tests[k].name = test_names[k];
        }
        free (names[i]);
    }
    free (names);
    return _cmocka_run_group_tests ("fuzz_run", tests, s_run.count, s_group_setup,
                                    s_group_teardown);
}
