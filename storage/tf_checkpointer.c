/*  tf_checkpointer — see tf_checkpointer.h. */
#include "tf_checkpointer.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct _tf_checkpointer_t {
    sqlite3 *db; /* own connection, used by the thread only */
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop */
    pthread_cond_t wake;  /* signalled to stop early */
    bool stop;            /* set by destroy */
    int interval_ms;
    _Atomic uint64_t runs; /* checkpoints made */
};

static void *s_run (void *arg)
{
    tf_checkpointer_t *self = (tf_checkpointer_t *) arg;
    pthread_mutex_lock (&self->lock);
    while (!self->stop) {
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_sec += self->interval_ms / 1000;
        until.tv_nsec += (long) (self->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int rc = pthread_cond_timedwait (&self->wake, &self->lock, &until);
        if (self->stop || rc != ETIMEDOUT)
            continue;
        pthread_mutex_unlock (&self->lock);
        int frames = 0, copied = 0;
        if (sqlite3_wal_checkpoint_v2 (self->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames,
                                       &copied) == SQLITE_OK)
            self->runs++;
        pthread_mutex_lock (&self->lock);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

tf_checkpointer_t *tf_checkpointer_new (const char *path, int interval_ms)
{
    tf_checkpointer_t *self = (tf_checkpointer_t *) calloc (1, sizeof *self);
    if (!self)
        abort ();
    self->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    if (sqlite3_open_v2 (path, &self->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        sqlite3_close (self->db);
        free (self);
        return NULL;
    }
    sqlite3_busy_timeout (self->db, 1000);
    //  A connection only joins the WAL once it has read the database.
    if (sqlite3_exec (self->db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) !=
        SQLITE_OK) {
        sqlite3_close (self->db);
        free (self);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    if (pthread_create (&self->thread, NULL, s_run, self) != 0) {
        sqlite3_close (self->db);
        free (self);
        return NULL;
    }
    return self;
}

void tf_checkpointer_destroy (tf_checkpointer_t **self_p)
{
    tf_checkpointer_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    self->stop = true;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->thread, NULL);
    pthread_cond_destroy (&self->wake);
    pthread_mutex_destroy (&self->lock);
    sqlite3_close (self->db);
    free (self);
    *self_p = NULL;
}

uint64_t tf_checkpointer_runs (tf_checkpointer_t *self)
{
    return self->runs;
}
