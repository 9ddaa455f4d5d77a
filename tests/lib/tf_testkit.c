/*  tf_testkit — see tf_testkit.h. */
#include "tf_testkit.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *tf_test_program (const char *name)
{
    static char path[4][512];
    static int next = 0;
    const char *dir = getenv ("TF_BUILD_DIR");
    char *slot = path[next++ % 4];
    snprintf (slot, 512, "%s/%s", dir && *dir ? dir : "build", name);
    return slot;
}

char *tf_test_tempdir (void)
{
    const char *base = getenv ("TMPDIR");
    char *path = NULL;
    if (asprintf (&path, "%s/techfeed-test-XXXXXX", base && *base ? base : "/tmp") < 0)
        abort ();
    if (!mkdtemp (path)) {
        perror ("mkdtemp");
        abort ();
    }
    return path;
}

static int s_remove (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove (path);
}

void tf_test_rmtree (const char *path)
{
    if (path && *path)
        nftw (path, s_remove, 16, FTW_DEPTH | FTW_PHYS);
}

/*  Reads "name=endpoint" lines of the endpoints file into svc. */
static bool s_read_endpoints (tf_service_t *svc, const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return false;
    char line[300];
    while (fgets (line, sizeof line, file)) {
        line[strcspn (line, "\n")] = 0;
        char *eq = strchr (line, '=');
        if (!eq)
            continue;
        *eq = 0;
        char *target = !strcmp (line, "ingest")   ? svc->ingest
                       : !strcmp (line, "events") ? svc->events
                       : !strcmp (line, "sync")   ? svc->sync
                       : !strcmp (line, "http")   ? svc->http
                                                  : NULL;
        if (target)
            snprintf (target, 128, "%s", eq + 1);
    }
    fclose (file);
    return svc->ingest[0] && svc->events[0] && svc->sync[0];
}

int tf_service_start (tf_service_t *svc, const char *const *extra)
{
    if (!svc->dir[0]) {
        char *dir = tf_test_tempdir ();
        snprintf (svc->dir, sizeof svc->dir, "%s", dir);
        free (dir);
    }
    char endpoints[300], data[300];
    snprintf (endpoints, sizeof endpoints, "%s/endpoints", svc->dir);
    snprintf (data, sizeof data, "%s/data", svc->dir);
    snprintf (svc->log, sizeof svc->log, "%s/service.log", svc->dir);
    unlink (endpoints);
    const char *argv[64] = { tf_test_program ("techfeed-ingestd"),
                             "--data-dir",
                             data,
                             "--endpoints-file",
                             endpoints,
                             "--ingest",
                             svc->ingest[0] ? svc->ingest : "tcp://127.0.0.1:*",
                             "--events",
                             svc->events[0] ? svc->events : "tcp://127.0.0.1:*",
                             "--sync",
                             svc->sync[0] ? svc->sync : "tcp://127.0.0.1:*",
                             "--log-format",
                             "text" };
    size_t argc = 13;
    for (size_t i = 0; extra && extra[i] && argc < 62; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;

    pid_t pid = fork ();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int log = open (svc->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (log >= 0) {
            dup2 (log, STDERR_FILENO);
            dup2 (log, STDOUT_FILENO);
        }
        execv (argv[0], (char *const *) argv);
        _exit (127);
    }
    svc->pid = pid;
    long long deadline = s_now_ms () + 20000;
    while (s_now_ms () < deadline) {
        if (s_read_endpoints (svc, endpoints))
            return 0;
        int status;
        if (waitpid (pid, &status, WNOHANG) == pid) {
            svc->pid = 0;
            fprintf (stderr, "testkit: service exited during start-up (see %s)\n", svc->log);
            return -1;
        }
        usleep (10000);
    }
    fprintf (stderr, "testkit: service did not write %s within 20 s\n", endpoints);
    tf_service_kill (svc);
    return -1;
}

int tf_service_stop (tf_service_t *svc, int timeout_ms)
{
    if (!svc->pid)
        return -1;
    kill (svc->pid, SIGTERM);
    long long deadline = s_now_ms () + timeout_ms;
    int status;
    while (s_now_ms () < deadline) {
        pid_t done = waitpid (svc->pid, &status, WNOHANG);
        if (done == svc->pid) {
            svc->pid = 0;
            return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
        }
        usleep (5000);
    }
    tf_service_kill (svc);
    return -1;
}

void tf_service_kill (tf_service_t *svc)
{
    if (!svc->pid)
        return;
    kill (svc->pid, SIGKILL);
    waitpid (svc->pid, NULL, 0);
    svc->pid = 0;
}

void tf_service_cleanup (tf_service_t *svc)
{
    if (svc->pid)
        tf_service_stop (svc, 10000);
    tf_test_rmtree (svc->dir);
    svc->dir[0] = 0;
}

/*  Appends what is readable on fd to a growing buffer. false at EOF. */
static bool s_drain (int fd, char **buffer, size_t *size)
{
    char chunk[4096];
    ssize_t n = read (fd, chunk, sizeof chunk);
    if (n <= 0)
        return n < 0 && errno == EINTR;
    *buffer = realloc (*buffer, *size + (size_t) n + 1);
    memcpy (*buffer + *size, chunk, (size_t) n);
    *size += (size_t) n;
    (*buffer)[*size] = 0;
    return true;
}

int tf_test_run (const tf_service_t *svc, const char *const *argv, const char *input, char **out,
                 char **err, int timeout_ms)
{
    int in_pipe[2], out_pipe[2], err_pipe[2];
    if (pipe (in_pipe) || pipe (out_pipe) || pipe (err_pipe))
        return -1;
    pid_t pid = fork ();
    if (pid == 0) {
        dup2 (in_pipe[0], STDIN_FILENO);
        dup2 (out_pipe[1], STDOUT_FILENO);
        dup2 (err_pipe[1], STDERR_FILENO);
        close (in_pipe[1]);
        close (out_pipe[0]);
        close (err_pipe[0]);
        if (svc) {
            setenv ("TECHFEED_INGEST", svc->ingest, 1);
            setenv ("TECHFEED_EVENTS", svc->events, 1);
            setenv ("TECHFEED_SYNC", svc->sync, 1);
        }
        execv (argv[0], (char *const *) argv);
        _exit (127);
    }
    close (in_pipe[0]);
    close (out_pipe[1]);
    close (err_pipe[1]);
    signal (SIGPIPE, SIG_IGN);
    if (input) {
        //  Small inputs only: written before reading, so keep them under the pipe size.
        ssize_t unused = write (in_pipe[1], input, strlen (input));
        (void) unused;
    }
    close (in_pipe[1]);
    char *outbuf = calloc (1, 1), *errbuf = calloc (1, 1);
    size_t outsize = 0, errsize = 0;
    bool out_open = true, err_open = true;
    long long deadline = s_now_ms () + timeout_ms;
    bool timed_out = false;
    while (out_open || err_open) {
        long long left = deadline - s_now_ms ();
        if (left <= 0) {
            timed_out = true;
            kill (pid, SIGKILL);
            break;
        }
        struct pollfd fds[2] = { { out_open ? out_pipe[0] : -1, POLLIN, 0 },
                                 { err_open ? err_pipe[0] : -1, POLLIN, 0 } };
        if (poll (fds, 2, (int) left) <= 0)
            continue;
        if (fds[0].revents && !s_drain (out_pipe[0], &outbuf, &outsize))
            out_open = false;
        if (fds[1].revents && !s_drain (err_pipe[0], &errbuf, &errsize))
            err_open = false;
    }
    close (out_pipe[0]);
    close (err_pipe[0]);
    int status = 0;
    waitpid (pid, &status, 0);
    if (out)
        *out = outbuf;
    else
        free (outbuf);
    if (err)
        *err = errbuf;
    else
        free (errbuf);
    if (timed_out)
        return -1;
    return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

bool tf_test_wait_for (bool (*condition) (void *arg), void *arg, int timeout_ms)
{
    long long deadline = s_now_ms () + timeout_ms;
    do {
        if (condition (arg))
            return true;
        usleep (5000);
    } while (s_now_ms () < deadline);
    return condition (arg);
}

size_t tf_test_count_lines (const char *text)
{
    size_t lines = 0;
    for (; text && *text; text++)
        lines += *text == '\n';
    return lines;
}
