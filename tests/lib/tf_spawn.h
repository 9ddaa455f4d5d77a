/*  tf_spawn — a program of the build running in the background for an
    integration test (a mirror, a watch): started with the service's
    endpoints and more environment, its stdout and stderr in files the test
    reads while it runs, stopped with a signal, every wait bounded.
*/
#ifndef TF_SPAWN_H_INCLUDED
#define TF_SPAWN_H_INCLUDED

#include <stdbool.h>
#include <sys/types.h>

#include "tf_testkit.h"

typedef struct {
    pid_t pid;     /* 0 when not running */
    char out[400]; /* file of its stdout */
    char err[400]; /* file of its stderr */
} tf_spawn_t;

/*  Starts argv (argv[0] a path) with the TECHFEED_* endpoint variables of
    `svc` (if not NULL) and the "NAME=value" strings of `env` (NULL or
    NULL-terminated); stdout and stderr go to `dir`/NAME.out and .err
    (appended: a restart keeps what the last run wrote). 0 or -1. */
int tf_spawn_start (tf_spawn_t *self, const tf_service_t *svc, const char *dir, const char *name,
                    const char *const *argv, const char *const *env);

/*  Sends `sig` (0: none) and waits up to timeout_ms for the exit: its
    status (128 + signal when killed by one), or -1 when it did not exit
    (then it is killed with SIGKILL). */
int tf_spawn_stop (tf_spawn_t *self, int sig, int timeout_ms);

/*  What a file holds now, NUL-terminated ("" when missing); caller frees. */
char *tf_spawn_read (const char *path);

/*  Waits up to timeout_ms until `path` holds `text` at least `times` times. */
bool tf_spawn_wait_text (const char *path, const char *text, int times, int timeout_ms);

/*  How often `text` occurs in `path`. */
int tf_spawn_count_text (const char *path, const char *text);

#endif
