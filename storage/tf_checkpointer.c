/*  tf_checkpointer — see tf_checkpointer.h. */
#include "tf_checkpointer.h"

#include <sqlite3.h>
#include <stdlib.h>

#include "tf_worker.h"

struct _tf_checkpointer_t {
    tf_worker_t worker;
    sqlite3 *db; /* own connection, used by the thread only */
    int interval_ms;
    _Atomic uint64_t runs; /* checkpoints made */
};

static void *s_run (void *arg)
{
    tf_checkpointer_t *self = (tf_checkpointer_t *) arg;
    while (tf_worker_sleep (&self->worker, (long) self->interval_ms * 1000L)) {
        int frames = 0, copied = 0;
        if (sqlite3_wal_checkpoint_v2 (self->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames,
                                       &copied) == SQLITE_OK)
            self->runs++;
    }
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
            SQLITE_OK ||
        tf_worker_start (&self->worker, s_run, self)) {
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
    tf_worker_stop (&self->worker);
    sqlite3_close (self->db);
    free (self);
    *self_p = NULL;
}

void tf_checkpointer_kick (tf_checkpointer_t *self)
{
    tf_worker_wake (&self->worker);
}

uint64_t tf_checkpointer_runs (tf_checkpointer_t *self)
{
    return self->runs;
}
