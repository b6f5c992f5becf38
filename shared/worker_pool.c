/*
 * worker_pool.c: a fixed set of threads running blocking jobs for the event loop.
 *
 * Jobs wait in a FIFO queue (mutex + condition variable). A worker runs the work function, moves
 * the job to the completion queue and, when that queue was empty, writes to an eventfd; the loop
 * watches the eventfd with a persistent event, drains it and runs the done functions on the loop
 * thread in completion order. Worker threads block every asynchronous signal, so SIGTERM, SIGHUP
 * and friends are delivered to the main (loop) thread where the daemons handle them as events.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "shared/log.h"
#include "shared/str.h"

#include "shared/worker_pool.h"

#define WORKER_POOL_MAX_THREADS 256

typedef struct Job {
    WorkFn work;
    WorkDoneFn done;
    void *arg;
    struct Job *next;
} Job;

typedef struct JobQueue {
    Job *head;
    Job *tail;
} JobQueue;

struct WorkerPool {
    struct event_base *base;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    JobQueue todo; /* under mu */
    JobQueue done; /* under mu */
    bool stopping; /* under mu */
    pthread_t *threads;
    int nthreads;
    int efd;
    struct event *ev;
    atomic_size_t pending;
    bool *dispatch_freed; /* set while completions run from the loop, see pool_event_cb */
};

static void queue_push(JobQueue *q, Job *job)
{
    job->next = NULL;
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
}

static Job *queue_pop(JobQueue *q)
{
    Job *job = q->head;
    if (job != NULL) {
        q->head = job->next;
        if (q->head == NULL)
            q->tail = NULL;
    }
    return job;
}

static void pool_notify(WorkerPool *pool)
{
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(pool->efd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    /* EAGAIN means the counter is already huge: the loop has a wakeup pending anyway. */
}

/* worker_main: take jobs until the pool stops and the queue is empty, so that every job queued
 * before worker_pool_free still runs. */
static void *worker_main(void *arg)
{
    WorkerPool *pool = arg;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        Job *job = queue_pop(&pool->todo);
        if (job == NULL) {
            if (pool->stopping)
                break;
            pthread_cond_wait(&pool->cv, &pool->mu);
            continue;
        }
        pthread_mutex_unlock(&pool->mu);
        job->work(job->arg);
        pthread_mutex_lock(&pool->mu);
        bool was_empty = pool->done.head == NULL;
        queue_push(&pool->done, job);
        if (was_empty)
            pool_notify(pool); /* the loop takes completions under mu, so one wakeup suffices */
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

static Job *pool_pop_done(WorkerPool *pool)
{
    pthread_mutex_lock(&pool->mu);
    Job *job = queue_pop(&pool->done);
    pthread_mutex_unlock(&pool->mu);
    return job;
}

static void pool_run_done(WorkerPool *pool, Job *job)
{
    WorkDoneFn done = job->done;
    void *arg = job->arg;
    free(job);
    atomic_fetch_sub(&pool->pending, 1);
    if (done != NULL)
        done(arg);
}

/* pool_event_cb: run completions one at a time. A done function may call worker_pool_free; the
 * free then drains what is left itself and tells us through dispatch_freed to stop touching the
 * pool. */
static void pool_event_cb(evutil_socket_t fd, short what, void *arg)
{
    WorkerPool *pool = arg;
    uint64_t count;
    ssize_t n;
    do {
        n = read(pool->efd, &count, sizeof(count));
    } while (n < 0 && errno == EINTR);

    bool freed = false;
    pool->dispatch_freed = &freed;
    Job *job;
    while ((job = pool_pop_done(pool)) != NULL) {
        pool_run_done(pool, job);
        if (freed)
            return;
    }
    pool->dispatch_freed = NULL;
}

bool worker_pool_new(struct event_base *base, int threads, WorkerPool **out, Err *err)
{
    *out = NULL;
    if (threads < 1 || threads > WORKER_POOL_MAX_THREADS) {
        err_set(err, ERR_BAD_REQUEST, "worker pool: %d threads (want 1..%d)", threads,
                WORKER_POOL_MAX_THREADS);
        return false;
    }
    WorkerPool *pool = xcalloc(1, sizeof(*pool));
    pool->base = base;
    atomic_init(&pool->pending, 0);
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pool->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pool->efd < 0) {
        err_set(err, ERR_INTERNAL, "worker pool: eventfd: %s", strerror(errno));
        goto fail;
    }
    pool->ev = event_new(base, pool->efd, EV_READ | EV_PERSIST, pool_event_cb, pool);
    if (pool->ev == NULL || event_add(pool->ev, NULL) != 0) {
        err_set(err, ERR_INTERNAL, "worker pool: cannot watch the eventfd");
        goto fail;
    }

    /* Threads inherit the creator's mask: block everything but synchronous faults around
     * pthread_create so no signal can reach a worker, even before it runs a line of code. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pool->threads = xcalloc((size_t)threads, sizeof(pthread_t));
    int rc = 0;
    for (; pool->nthreads < threads; pool->nthreads++) {
        rc = pthread_create(&pool->threads[pool->nthreads], NULL, worker_main, pool);
        if (rc != 0)
            break;
        char name[16];
        snprintf(name, sizeof(name), "worker-%d", pool->nthreads); /* short; fits */
        pthread_setname_np(pool->threads[pool->nthreads], name);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        err_set(err, ERR_INTERNAL, "worker pool: pthread_create: %s", strerror(rc));
        goto fail;
    }
    *out = pool;
    return true;

fail:
    pthread_mutex_lock(&pool->mu);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    if (pool->ev)
        event_free(pool->ev);
    if (pool->efd >= 0)
        close(pool->efd);
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
    return false;
}

void worker_pool_submit(WorkerPool *pool, WorkFn work, WorkDoneFn done, void *arg)
{
    Job *job = xmalloc(sizeof(*job));
    job->work = work;
    job->done = done;
    job->arg = arg;
    atomic_fetch_add(&pool->pending, 1);
    pthread_mutex_lock(&pool->mu);
    queue_push(&pool->todo, job);
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

size_t worker_pool_pending(const WorkerPool *pool)
{
    return atomic_load(&((WorkerPool *)pool)->pending);
}

/* worker_pool_free: let the workers empty the queue, join them, then run the remaining done
 * functions here. A done function that submits more work during the drain gets it run inline,
 * since no worker is left to take it. */
void worker_pool_free(WorkerPool *pool)
{
    if (pool == NULL)
        return;
    if (pool->dispatch_freed != NULL)
        *pool->dispatch_freed = true;
    event_del(pool->ev);

    pthread_mutex_lock(&pool->mu);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);

    for (;;) {
        Job *job = queue_pop(&pool->done);
        if (job == NULL) {
            job = queue_pop(&pool->todo);
            if (job == NULL)
                break;
            job->work(job->arg);
        }
        pool_run_done(pool, job);
    }

    event_free(pool->ev);
    close(pool->efd);
    free(pool->threads);
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
}
