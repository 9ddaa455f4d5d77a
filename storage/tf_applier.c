/*  tf_applier — see tf_applier.h. */
#include "tf_applier.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "tf_worker.h"

#define TF_APPLIER_DELAY_US 5000   /* a batch not full waits at most this */
#define TF_APPLIER_RETRY_US 100000 /* after a failed batch */

struct _tf_applier_t {
    tf_worker_t worker;
    tf_store_t *store;
    size_t batch;
    pthread_mutex_t lock; /* guards failures, error */
    uint64_t failures;
    char error[512];
};

static void *s_run (void *arg)
{
    tf_applier_t *self = (tf_applier_t *) arg;
    char err[512];
    long pause = 0;
    while (tf_worker_sleep (&self->worker, pause)) {
        //  Like group commit: a full batch at once, a smaller one (or
        //  none) after a pause, so a quiet service wakes it rarely.
        uint64_t backlog = tf_store_unapplied (self->store);
        pause = backlog >= self->batch ? 0 : TF_APPLIER_DELAY_US;
        if (backlog && tf_store_apply_from (self->store, self->batch, err, sizeof err)) {
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
