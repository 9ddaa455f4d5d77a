/*  tf_applier — see tf_applier.h. */
#include "tf_applier.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tf_worker.h"

#define TF_APPLIER_IDLE_US 1000    /* backlog poll */
#define TF_APPLIER_DELAY_US 20000  /* a batch not full waits at most this */
#define TF_APPLIER_RETRY_US 100000 /* after a failed batch */

struct _tf_applier_t {
    tf_worker_t worker;
    tf_store_t *store;
    size_t batch;
    pthread_mutex_t lock; /* guards failures, error */
    uint64_t failures;
    char error[512];
};

static int64_t s_now_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

static void *s_run (void *arg)
{
    tf_applier_t *self = (tf_applier_t *) arg;
    char err[512];
    int64_t since = 0; /* when the backlog was first seen */
    long pause = 0;
    while (tf_worker_sleep (&self->worker, pause)) {
        uint64_t backlog = tf_store_unapplied (self->store);
        if (backlog == 0)
            since = 0;
        else if (since == 0)
            since = s_now_us ();
        pause = TF_APPLIER_IDLE_US;
        //  Like group commit: a full batch, or whatever waited long enough.
        if (backlog == 0 || (backlog < self->batch && s_now_us () - since < TF_APPLIER_DELAY_US))
            continue;
        since = 0;
        pause = 0;
        if (tf_store_apply_from (self->store, self->batch, err, sizeof err)) {
            pthread_mutex_lock (&self->lock);
            self->failures++;
            snprintf (self->error, sizeof self->error, "%s", err);
            pthread_mutex_unlock (&self->lock);
            pause = TF_APPLIER_RETRY_US;
        }
    }
    return NULL;
}

tf_applier_t *tf_applier_new (tf_store_t *store, size_t batch)
{
    tf_applier_t *self = (tf_applier_t *) calloc (1, sizeof *self);
    if (!self)
        abort ();
    self->store = store;
    self->batch = batch ? batch : 1;
    pthread_mutex_init (&self->lock, NULL);
    if (tf_worker_start (&self->worker, s_run, self)) {
        pthread_mutex_destroy (&self->lock);
        free (self);
        return NULL;
    }
    return self;
}

void tf_applier_destroy (tf_applier_t **self_p)
{
    tf_applier_t *self = *self_p;
    if (!self)
        return;
    tf_worker_stop (&self->worker);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

uint64_t tf_applier_failures (tf_applier_t *self, char *err, size_t errlen)
{
    pthread_mutex_lock (&self->lock);
    uint64_t failures = self->failures;
    if (err && errlen)
        snprintf (err, errlen, "%s", self->error);
    pthread_mutex_unlock (&self->lock);
    return failures;
}
