/*  The demo behind `make run` (clients/demo/run-demo.sh), run for real
    twice on the same data directory: the first run loads the demo
    milestones, the second finds them and does not store a new revision of
    each. Ports: three free ones, found by starting the service once. The
    script runs in a session of its own, so a SIGINT to its process group
    is the Ctrl-C it expects. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tf_spawn.h"

#define S_DEMO_RECORDS 54

typedef struct {
    tf_service_t ports; /* endpoints for the demo's service and clients */
    char *dir;          /* the data directory and the demo's output */
    char script[PATH_MAX + 32];
    char build[PATH_MAX];
} fixture_t;

static int setup (void **state)
{
    fixture_t *f = (fixture_t *) calloc (1, sizeof *f);
    const char *src = getenv ("TF_SOURCE_DIR");
    char root[PATH_MAX];
    if (!realpath (src && *src ? src : ".", root) || !realpath (tf_test_program (""), f->build))
        return -1;
    snprintf (f->script, sizeof f->script, "%s/clients/demo/run-demo.sh", root);
    if (tf_service_start (&f->ports, NULL) || tf_service_stop (&f->ports, 10000) != 0)
        return -1;
    f->dir = tf_test_tempdir ();
    *state = f;
    return 0;
}

static int teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_test_rmtree (f->dir);
    free (f->dir);
    tf_service_cleanup (&f->ports);
    free (f);
    return 0;
}

static bool s_group_gone (void *arg)
{
    return kill (-*(pid_t *) arg, 0) != 0 && errno == ESRCH;
}

/*  The processes of `group` still running, "PID (COMMAND)" on stderr. */
static void s_print_group (pid_t group)
{
    DIR *proc = opendir ("/proc");
    struct dirent *entry;
    while (proc && (entry = readdir (proc))) {
        char path[300], stat[600];
        snprintf (path, sizeof path, "/proc/%s/stat", entry->d_name);
        FILE *file = fopen (path, "r");
        if (!file)
            continue;
        size_t n = fread (stat, 1, sizeof stat - 1, file);
        fclose (file);
        stat[n] = 0;
        //  PID (COMMAND) STATE PPID PGRP ...; COMMAND may hold ") "
        char *end = strrchr (stat, ')'), state;
        int parent, pgrp;
        if (end && sscanf (end + 1, " %c %d %d", &state, &parent, &pgrp) == 3 && pgrp == group)
            fprintf (stderr, "  still running: %.*s, parent %d\n", (int) (end + 1 - stat), stat,
                     parent);
    }
    if (proc)
        closedir (proc);
}

/*  One run of the demo until it watches (its updates an hour apart, so
    none comes), then Ctrl-C. Returns its stdout; caller frees. */
static char *s_run_demo (fixture_t *f, const char *name)
{
    char data[PATH_MAX + 16];
    snprintf (data, sizeof data, "TECHFEED_DATA_DIR=%s/data", f->dir);
    const char *argv[] = { "/usr/bin/setsid", "/bin/sh", f->script, f->build, "3600", NULL };
    const char *env[] = { data, NULL };
    tf_spawn_t demo;
    assert_int_equal (tf_spawn_start (&demo, &f->ports, f->dir, name, argv, env), 0);
    bool watching = tf_spawn_wait_text (demo.out, "watching (Ctrl-C to stop", 1, 30000);
    pid_t group = demo.pid;
    kill (-group, SIGINT);
    int status = tf_spawn_stop (&demo, 0, 20000);
    char *out = tf_spawn_read (demo.out);
    if (!watching || status < 0) {
        char *err = tf_spawn_read (demo.err);
        fprintf (stderr, "stdout:\n%s\nstderr:\n%s\n", out, err);
        free (out);
        free (err);
        fail_msg ("demo %s: watching %d, exit %d (its output above)", name, watching, status);
    }
    //  The service it started was stopped with it, by the script's trap,
    //  and nothing it started outlives it (the feeder's pause either)
    assert_non_null (strstr (out, "demo stopped"));
    if (!tf_test_wait_for (s_group_gone, &group, 5000)) {
        s_print_group (group);
        kill (-group, SIGKILL);
        free (out);
        fail_msg ("demo %s: processes of its group are still running", name);
    }
    return out;
}

/*  The head of the database the demo left, from a service started on it. */
static void s_assert_head (fixture_t *f, uint64_t head)
{
    tf_service_t again = f->ports; // its data directory is DIR/data, the demo's
    snprintf (again.dir, sizeof again.dir, "%s", f->dir);
    assert_int_equal (tf_service_start (&again, NULL), 0);
    char *status = NULL, *err = NULL;
    assert_int_equal (tf_test_cli (&again, NULL, &status, &err, "status", "--json", NULL), 0);
    char expected[64];
    snprintf (expected, sizeof expected, "\"head_sequence\":%llu,", (unsigned long long) head);
    if (!strstr (status, expected))
        fail_msg ("%s expected in %s", expected, status);
    free (status);
    free (err);
    assert_int_equal (tf_service_stop (&again, 10000), 0);
}

static void test_second_run_keeps_the_records (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    char *first = s_run_demo (f, "first");
    assert_non_null (strstr (first, "loaded 54 demo milestones"));
    free (first);
    char *second = s_run_demo (f, "second");
    if (!strstr (second, "holds 54 records already; demo milestones not loaded again"))
        fail_msg ("second run: %s", second);
    free (second);
    //  Nothing was stored again: the head is still the first load's
    s_assert_head (f, S_DEMO_RECORDS);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_second_run_keeps_the_records, setup, teardown),
    };
    return cmocka_run_group_tests_name ("make run's demo", tests, NULL, NULL);
}
