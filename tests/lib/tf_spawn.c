/*  tf_spawn — see tf_spawn.h. */
#include "tf_spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tf_spawn_start (tf_spawn_t *self, const tf_service_t *svc, const char *dir, const char *name,
                    const char *const *argv, const char *const *env)
{
    snprintf (self->out, sizeof self->out, "%s/%s.out", dir, name);
    snprintf (self->err, sizeof self->err, "%s/%s.err", dir, name);
    int out = open (self->out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int err = open (self->err, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0 || err < 0)
        return -1;
    pid_t pid = fork ();
    if (pid == 0) {
        //  A failed or crashed test must not leave its programs running.
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        dup2 (out, STDOUT_FILENO);
        dup2 (err, STDERR_FILENO);
        int null = open ("/dev/null", O_RDONLY);
        dup2 (null, STDIN_FILENO);
        if (svc) {
            setenv ("TECHFEED_INGEST", svc->ingest, 1);
            setenv ("TECHFEED_EVENTS", svc->events, 1);
            setenv ("TECHFEED_SYNC", svc->sync, 1);
        }
        for (size_t i = 0; env && env[i]; i++)
            putenv ((char *) env[i]);
        execv (argv[0], (char *const *) argv);
        _exit (127);
    }
    close (out);
    close (err);
    if (pid < 0)
        return -1;
    self->pid = pid;
    return 0;
}

int tf_spawn_stop (tf_spawn_t *self, int sig, int timeout_ms)
{
    if (!self->pid)
        return -1;
    if (sig)
        kill (self->pid, sig);
    long long deadline = s_now_ms () + timeout_ms;
    int status;
    do {
        if (waitpid (self->pid, &status, WNOHANG) == self->pid) {
            self->pid = 0;
            return tf_test_exit_code (status);
        }
        usleep (5000);
    } while (s_now_ms () < deadline);
    kill (self->pid, SIGKILL);
    waitpid (self->pid, NULL, 0);
    self->pid = 0;
    return -1;
}

char *tf_spawn_read (const char *path)
{
    FILE *file = fopen (path, "r");
    size_t size = 0, cap = 4096;
    char *text = malloc (cap);
    if (!text)
        abort ();
    while (file && !feof (file)) {
        if (size + 1024 >= cap && !(text = realloc (text, cap *= 2)))
            abort ();
        size += fread (text + size, 1, cap - size - 1, file);
        if (ferror (file))
            break;
    }
    if (file)
        fclose (file);
    text[size] = 0;
    return text;
}

int tf_spawn_count_text (const char *path, const char *text)
{
    char *all = tf_spawn_read (path);
    int count = tf_test_count_text (all, text);
    free (all);
    return count;
}

bool tf_spawn_wait_text (const char *path, const char *text, int times, int timeout_ms)
{
    long long deadline = s_now_ms () + timeout_ms;
    do {
        if (tf_spawn_count_text (path, text) >= times)
            return true;
        usleep (10000);
    } while (s_now_ms () < deadline);
    return tf_spawn_count_text (path, text) >= times;
}
