/*  tf_worker — a background thread that sleeps between rounds and stops
    on request: what tf_checkpointer and tf_applier share.

    The thread's function calls tf_worker_sleep between rounds; it returns
    false once tf_worker_stop was called, and the function returns then.
*/
#ifndef TF_WORKER_H_INCLUDED
#define TF_WORKER_H_INCLUDED

#include <pthread.h>
#include <stdbool.h>

typedef struct {
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop */
    pthread_cond_t wake;  /* signalled to stop early */
    bool stop;
    bool woken; /* tf_worker_wake since the last sleep */
} tf_worker_t;

/*  Starts fn (arg) on a new thread. 0, or -1 when it cannot start. */
int tf_worker_start (tf_worker_t *self, void *(*fn) (void *), void *arg);
/*  Waits `us` microseconds, or less when stopped or woken. false once
    stopped. */
bool tf_worker_sleep (tf_worker_t *self, long us);

/*  Ends the thread's current sleep early (or its next one, if awake). */
void tf_worker_wake (tf_worker_t *self);
/*  Asks the thread to stop, waits for it to return. */
void tf_worker_stop (tf_worker_t *self);

#endif
