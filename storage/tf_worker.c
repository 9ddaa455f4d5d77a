/*  tf_worker — see tf_worker.h. */
#include "tf_worker.h"

#include <errno.h>
#include <time.h>

int tf_worker_start (tf_worker_t *self, void *(*fn) (void *), void *arg)
{
    self->stop = self->woken = false;
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    if (pthread_create (&self->thread, NULL, fn, arg) == 0)
        return 0;
    pthread_cond_destroy (&self->wake);
    pthread_mutex_destroy (&self->lock);
    return -1;
}

bool tf_worker_sleep (tf_worker_t *self, long us)
{
    struct timespec until;
    clock_gettime (CLOCK_REALTIME, &until);
    until.tv_nsec += us % 1000000L * 1000L;
    until.tv_sec += us / 1000000L + until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock (&self->lock);
    while (!self->stop && !self->woken &&
           pthread_cond_timedwait (&self->wake, &self->lock, &until) != ETIMEDOUT)
        ;
    self->woken = false;
    bool running = !self->stop;
    pthread_mutex_unlock (&self->lock);
    return running;
}

void tf_worker_wake (tf_worker_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->woken = true;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
}

void tf_worker_stop (tf_worker_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->stop = true;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->thread, NULL);
    pthread_cond_destroy (&self->wake);
    pthread_mutex_destroy (&self->lock);
}
