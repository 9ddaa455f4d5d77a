/*  tf_testkit — see tf_testkit.h. */
#include "tf_testkit.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

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

void tf_test_remove_db (const char *path)
{
    char name[1100];
    unlink (path);
    snprintf (name, sizeof name, "%s-wal", path);
    unlink (name);
    snprintf (name, sizeof name, "%s-shm", path);
    unlink (name);
}

long long tf_test_file_size (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 ? (long long) st.st_size : -1;
}

bool tf_test_file_has (const char *path, const char *text)
{
    FILE *file = fopen (path, "r");
    char line[1024];
    bool found = false;
    while (file && !found && fgets (line, sizeof line, file))
        found = strstr (line, text) != NULL;
    if (file)
        fclose (file);
    return found;
}

bool tf_test_fsize_limit (tf_test_fsize_t *guard, long bytes)
{
    if (getrlimit (RLIMIT_FSIZE, &guard->saved) != 0)
        return false;
    if (guard->saved.rlim_cur != RLIM_INFINITY && guard->saved.rlim_cur < (rlim_t) bytes)
        return false;
    struct rlimit limit = guard->saved;
    limit.rlim_cur = (rlim_t) bytes;
    guard->handler = signal (SIGXFSZ, SIG_IGN);
    if (setrlimit (RLIMIT_FSIZE, &limit) != 0) {
        signal (SIGXFSZ, guard->handler);
        return false;
    }
    return true;
}

void tf_test_fsize_restore (tf_test_fsize_t *guard)
{
    setrlimit (RLIMIT_FSIZE, &guard->saved);
    signal (SIGXFSZ, guard->handler);
}

/*  The endpoint a test service binds when it has none yet: a random free
    port (CZMQ's "!"), not the lowest free one ("*") that every other test
    service takes too, and above the kernel's range for outgoing
    connections, where any client may hold it as its source port. A
    service restarted on its ports finds them free. */
static const char *s_any_port (void)
{
    static char endpoint[64];
    if (endpoint[0])
        return endpoint;
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:!");
    FILE *file = fopen ("/proc/sys/net/ipv4/ip_local_port_range", "r");
    int low, high;
    if (file && fscanf (file, "%d %d", &low, &high) == 2 && high < 64535)
        snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:![%d-65535]", high + 1);
    if (file)
        fclose (file);
    return endpoint;
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

int tf_test_exit_code (int wait_status)
{
    return WIFEXITED (wait_status) ? WEXITSTATUS (wait_status) : 128 + WTERMSIG (wait_status);
}

/*  The last `bytes` of a file on stderr (the cleanup removes it). */
void tf_test_print_tail (const char *path, long bytes)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return;
    if (fseek (file, -bytes, SEEK_END) != 0)
        rewind (file);
    char chunk[512];
    size_t n;
    while ((n = fread (chunk, 1, sizeof chunk, file)) > 0)
        fwrite (chunk, 1, n, stderr);
    fclose (file);
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
                             svc->ingest[0] ? svc->ingest : s_any_port (),
                             "--events",
                             svc->events[0] ? svc->events : s_any_port (),
                             "--sync",
                             svc->sync[0] ? svc->sync : s_any_port (),
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
        //  A failed or crashed test must not leave its programs running.
        prctl (PR_SET_PDEATHSIG, SIGKILL);
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
            fprintf (stderr, "testkit: service exited during start-up (status %d); %s ends:\n",
                     tf_test_exit_code (status), svc->log);
            tf_test_print_tail (svc->log, 2000);
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
            return tf_test_exit_code (status);
        }
        usleep (5000);
    }
    fprintf (stderr, "testkit: service %d did not stop within %d ms of SIGTERM; killed\n",
             (int) svc->pid, timeout_ms);
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

int tf_test_service_end (tf_service_t *svc)
{
    int status = tf_service_stop (svc, 10000);
    if (status != 0) {
        //  The log goes with the directory: what it says is printed first
        fprintf (stderr, "testkit: service exit status %d; %s ends:\n", status, svc->log);
        tf_test_print_tail (svc->log, 4000);
    }
    tf_service_cleanup (svc);
    return status == 0 ? 0 : -1;
}

void *tf_test_fixture_new (size_t size, const char *const *extra)
{
    tf_service_t *svc = (tf_service_t *) calloc (1, size);
    if (!svc)
        abort ();
    if (tf_service_start (svc, extra) != 0) {
        tf_service_cleanup (svc);
        free (svc);
        return NULL;
    }
    return svc;
}

int tf_test_setup_service (void **state)
{
    *state = tf_test_fixture_new (sizeof (tf_service_t), NULL);
    return *state ? 0 : -1;
}

int tf_test_teardown_service (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    int rc = tf_test_service_end (svc);
    free (svc);
    return rc;
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
    //  Close-on-exec: a program started meanwhile from another thread must
    //  not inherit these pipes (it would hold our reader's EOF back)
    int in_pipe[2], out_pipe[2], err_pipe[2];
    if (pipe2 (in_pipe, O_CLOEXEC) || pipe2 (out_pipe, O_CLOEXEC) || pipe2 (err_pipe, O_CLOEXEC))
        return -1;
    pid_t pid = fork ();
    if (pid == 0) {
        //  A failed or crashed test must not leave its programs running.
        prctl (PR_SET_PDEATHSIG, SIGKILL);
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
    return tf_test_exit_code (status);
}

char *tf_service_http_get (const tf_service_t *svc, const char *path, int *status)
{
    char url[300];
    snprintf (url, sizeof url, "%s%s", svc->http, path);
    const char *argv[] = { "/usr/bin/curl", "-s", "-w", "\n%{http_code}", url, NULL };
    char *out = NULL;
    char *last = NULL;
    if (tf_test_run (NULL, argv, NULL, &out, NULL, 10000) != 0 || !(last = strrchr (out, '\n'))) {
        free (out);
        return NULL;
    }
    *status = atoi (last + 1);
    *last = 0;
    return out;
}

bool tf_metrics_sample (const char *text, const char *name, double *value)
{
    size_t len = strlen (name);
    for (const char *line = text; line && *line; line = strchr (line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp (line, name, len) == 0 && line[len] == ' ') {
            *value = atof (line + len + 1);
            return true;
        }
    }
    return false;
}

bool tf_service_metrics (const tf_service_t *svc, const char *const *names, double *values, int n)
{
    int status = 0;
    char *text = tf_service_http_get (svc, "/metrics", &status);
    bool ok = text && status == 200;
    for (int i = 0; ok && i < n; i++)
        ok = tf_metrics_sample (text, names[i], &values[i]);
    free (text);
    return ok;
}

int tf_test_cli (const tf_service_t *svc, const char *input, char **out, char **err, ...)
{
    const char *argv[64] = { tf_test_program ("techfeed") };
    size_t argc = 1;
    va_list args;
    va_start (args, err);
    const char *arg;
    while ((arg = va_arg (args, const char *)) && argc < 63)
        argv[argc++] = arg;
    va_end (args);
    argv[argc] = NULL;
    return tf_test_run (svc, argv, input, out, err, 20000);
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

int tf_test_count_text (const char *text, const char *what)
{
    int count = 0;
    for (const char *at = strstr (text, what); at; at = strstr (at + 1, what))
        count++;
    return count;
}

json_t *tf_test_ndjson (const char *text)
{
    json_t *array = json_array ();
    const char *line = text ? text : "";
    while (*line) {
        size_t length = strcspn (line, "\n");
        json_error_t error;
        json_t *value = json_loadb (line, length, 0, &error);
        if (!json_is_object (value)) {
            fprintf (stderr, "testkit: not a JSON object: %.*s\n", (int) length, line);
            json_decref (value);
            json_decref (array);
            return NULL;
        }
        json_array_append_new (array, value);
        line += length + (line[length] == '\n');
    }
    return array;
}
