/*  tf_checkpointer — WAL checkpoints off the commit path.

    SQLite normally checkpoints inside the COMMIT that pushes the WAL past
    1000 pages, so one unlucky writer waits for it. The service turns that
    off (wal_autocheckpoint=0 on its writer connection) and runs this
    instead: a thread with a connection of its own that makes a PASSIVE
    checkpoint every interval. PASSIVE never waits for the writer or the
    readers; it copies what it can. The thread touches nothing but its own
    connection.
*/
#ifndef TF_CHECKPOINTER_H_INCLUDED
#define TF_CHECKPOINTER_H_INCLUDED

#include <stdint.h>

typedef struct _tf_checkpointer_t tf_checkpointer_t;

/*  Starts checkpointing `path` every interval_ms. NULL when the database
    cannot be opened (the caller may keep SQLite's automatic checkpoints). */
tf_checkpointer_t *tf_checkpointer_new (const char *path, int interval_ms);
/*  Stops the thread (waits for a running checkpoint) and closes. */
void tf_checkpointer_destroy (tf_checkpointer_t **self_p);
/*  Checkpoints now instead of at the end of the interval: the writer
    calls it when its WAL fills, so the copying happens on this thread and
    the writer's own rewinding checkpoint finds little left to copy. */
void tf_checkpointer_kick (tf_checkpointer_t *self);

/*  Checkpoints made so far (for metrics and tests). */
uint64_t tf_checkpointer_runs (tf_checkpointer_t *self);

#endif
