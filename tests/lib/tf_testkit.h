/*  tf_testkit — what integration tests need to drive the real programs:
    start techfeed-ingestd on ephemeral loopback ports with a fresh data
    directory, stop it by PID, run the CLI and capture its output, and
    wait for conditions with a bound.
*/
#ifndef TF_TESTKIT_H_INCLUDED
#define TF_TESTKIT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <jansson.h>

typedef struct {
    pid_t pid;        /* 0 when not running */
    char dir[256];    /* data directory (owned by the test, removed by tf_service_cleanup) */
    char log[300];    /* the service's stderr */
    char ingest[128]; /* bound endpoints, read from the endpoints file */
    char events[128];
    char sync[128];
    char http[128]; /* http://HOST:PORT when started with --http-addr */
} tf_service_t;

/*  Path of a program built beside the tests ($TF_BUILD_DIR/name, default build/). */
const char *tf_test_program (const char *name);

/*  New temporary directory under $TMPDIR or /tmp; caller frees the path. */
char *tf_test_tempdir (void);
/*  rm -rf of a directory this test made. */
void tf_test_rmtree (const char *path);
/*  Removes an SQLite database file and its -wal and -shm files. */
void tf_test_remove_db (const char *path);
/*  Size of a file, -1 when missing. */
long long tf_test_file_size (const char *path);
/*  Whether a line of the file at `path` (a service's log) contains `text`. */
bool tf_test_file_has (const char *path, const char *text);
/*  The last `bytes` of the file at `path` (a log) to stderr, when a test
    fails for a reason the program wrote there. */
void tf_test_print_tail (const char *path, long bytes);
/*  A waitpid status as a shell says it: the exit code, or 128 + signal. */
int tf_test_exit_code (int wait_status);

/*  A full disk for this process: its files may grow to `bytes` at most
    (RLIMIT_FSIZE, SIGXFSZ ignored, so a write past it fails with EFBIG)
    until tf_test_fsize_restore. false, changing nothing, when a lower
    limit is set already (the test then skips). */
typedef struct {
    struct rlimit saved;
    void (*handler) (int);
} tf_test_fsize_t;
bool tf_test_fsize_limit (tf_test_fsize_t *guard, long bytes);
void tf_test_fsize_restore (tf_test_fsize_t *guard);

/*  Starts the service. `svc->dir` empty: a new temporary data directory.
    Endpoints: the ones already in svc (restart on the same ports) or a
    random free loopback port above the kernel's range for outgoing
    connections (tcp://127.0.0.1:![61000-65535]) for each that is empty.
    `extra` is a NULL-terminated list of more arguments, or NULL. Waits
    (bounded) for the endpoints file. 0 on success. */
int tf_service_start (tf_service_t *svc, const char *const *extra);
/*  SIGTERM, then waits up to timeout_ms; returns the exit status, or -1 if
    it had to be killed. */
int tf_service_stop (tf_service_t *svc, int timeout_ms);
/*  SIGKILL and reap. */
void tf_service_kill (tf_service_t *svc);
/*  Stops it if running and removes its directory. */
void tf_service_cleanup (tf_service_t *svc);

/*  Stops a service started by a test, expecting exit status 0, and
    removes its directory: 0, or -1 when it did not exit 0. */
int tf_test_service_end (tf_service_t *svc);

/*  A new zeroed fixture of `size` bytes whose first member is a
    tf_service_t, started with `extra` (as tf_service_start); NULL, with
    nothing left behind, when it does not start. Caller frees. */
void *tf_test_fixture_new (size_t size, const char *const *extra);

/*  A cmocka setup and teardown (usable as such, 0 or -1) for tests whose
    state is nothing but a started service: *state is a tf_service_t *. */
int tf_test_setup_service (void **state);
int tf_test_teardown_service (void **state);

/*  Runs argv (argv[0] a path) with the TECHFEED_* endpoint variables of
    `svc` (if not NULL) and `input` on stdin; collects stdout and stderr
    (caller frees) and returns the exit status, -1 on timeout (killed). */
int tf_test_run (const tf_service_t *svc, const char *const *argv, const char *input, char **out,
                 char **err, int timeout_ms);

/*  GET of `path` (say "/metrics") from a service started with
    --http-addr, through curl: the body (caller frees) and the HTTP status
    in *status, or NULL when curl failed. */
char *tf_service_http_get (const tf_service_t *svc, const char *path, int *status);

/*  The value of the Prometheus sample line `name` (labels included, as
    written) in `text`: true and *value, or false when there is none. */
bool tf_metrics_sample (const char *text, const char *name, double *value);
/*  The samples `names` (n of them) from one read of the service's
    /metrics into `values`: false when it cannot be read or one is
    missing. */
bool tf_service_metrics (const tf_service_t *svc, const char *const *names, double *values, int n);

/*  tf_test_run of the CLI ($TF_BUILD_DIR/techfeed) with the arguments
    that follow `err` (NULL-terminated), bounded at 20 s. */
int tf_test_cli (const tf_service_t *svc, const char *input, char **out, char **err, ...);

/*  Polls `condition` every few milliseconds until it holds or timeout_ms
    passes; returns whether it held. */
bool tf_test_wait_for (bool (*condition) (void *arg), void *arg, int timeout_ms);

/*  Number of lines in text. */
size_t tf_test_count_lines (const char *text);
/*  How often `what` occurs in `text`. */
int tf_test_count_text (const char *text, const char *what);

/*  NDJSON text (one JSON object per line) as a new JSON array; NULL (and
    the line on stderr) when a line is not an object. Caller decrefs. */
json_t *tf_test_ndjson (const char *text);

#endif
