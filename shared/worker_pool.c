/*
 * worker_pool.c: a fixed set of threads running blocking jobs for the event loop, in classes.
 *
 * Jobs wait in one FIFO queue per class (mutex + condition variable). A free worker takes the
 * first job of the first class, in LATENCY, IO, BULK order, whose limit allows one more (see
 * worker_pool.h); a sync worker takes only SYNC jobs, which no other worker takes, skips the work
 * when the job's deadline has passed, moves the job to the completion queue and, when that queue
 * was empty, writes to an eventfd; the loop watches the eventfd with a persistent event, drains it
 * and runs the done functions on the loop thread in completion order. A worker that finishes a job
 * wakes the others while jobs wait, since a class that was at its limit may have room now. Worker
 * threads block every asynchronous signal, so SIGTERM, SIGHUP and friends are delivered to the main
 * (loop) thread where the daemons handle them as events.
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
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "shared/fsm.h"
#include "shared/log.h"
#include "shared/str.h"

#include "shared/worker_pool.h"

#define WORKER_POOL_MAX_THREADS 256

typedef enum JobWhere { JOB_QUEUED, JOB_RUNNING, JOB_DONE } JobWhere;

static const char *const JOB_WHERE_NAMES[] = {
    [JOB_QUEUED] = "Queued", [JOB_RUNNING] = "Running", [JOB_DONE] = "Done"};

static const FsmTransition JOB_TRANSITIONS[] = {
    {JOB_QUEUED, JOB_RUNNING, "a worker of its class took it"},
    {JOB_QUEUED, JOB_DONE, "cancelled while queued, or pool stopped"},
    {JOB_RUNNING, JOB_DONE, "work returned, or its deadline had passed"},
};

static const int JOB_TERMINAL[] = {JOB_DONE};

/* worker_job: changed under mu, from the loop or a worker thread */
static const FsmDef JOB_FSM = {
    .name = "worker_job",
    .doc = "docs/state-machines.md",
    .state_names = JOB_WHERE_NAMES,
    .n_states = FSM_COUNT(JOB_WHERE_NAMES),
    .initial = JOB_QUEUED,
    .terminal = JOB_TERMINAL,
    .n_terminal = FSM_COUNT(JOB_TERMINAL),
    .transitions = JOB_TRANSITIONS,
    .n_transitions = FSM_COUNT(JOB_TRANSITIONS),
};
FSM_REGISTER(JOB_FSM)

struct WorkerJob {
    WorkerPool *pool;
    WorkerClass cls;
    WorkerJobFn work;
    WorkerJobDoneFn done;
    void *arg;
    uint64_t deadline_ms; /* CLOCK_MONOTONIC; 0 = none */
    atomic_bool cancel;
    JobWhere where; /* under mu */
    WorkerOutcome outcome;
    struct WorkerJob *prev, *next;
};

/* WorkerThread: what one thread may take. */
typedef struct WorkerThread {
    struct WorkerPool *pool;
    bool sync; /* SYNC jobs only */
} WorkerThread;

typedef struct JobQueue {
    WorkerJob *head;
    WorkerJob *tail;
    size_t len;
} JobQueue;

struct WorkerPool {
    struct event_base *base;
    pthread_mutex_t mu;
    /* Idle general threads wait on cv, idle sync threads on sync_cv: a job wakes only threads
     * that may take it (one shared variable woke all twelve default threads per job, most of them
     * to find nothing and sleep again: that was a fifth of a pageserver's CPU during a burst of
     * location configs). */
    pthread_cond_t cv;
    pthread_cond_t sync_cv;
    JobQueue todo[WORKER_CLASS_COUNT];  /* under mu */
    JobQueue done;                      /* under mu */
    size_t running[WORKER_CLASS_COUNT]; /* under mu */
    bool stopping;                      /* under mu */
    atomic_bool shutting_down;          /* stopping, for worker_job_cancelled */
    int limit[WORKER_CLASS_COUNT];
    int background_max; /* IO + BULK together */
    pthread_t *threads;
    WorkerThread *thread_args; /* one per thread */
    int nthreads;
    int n_sync; /* of which sync threads (the last ones) */
    int efd;
    struct event *ev;
    atomic_size_t pending;
    bool *dispatch_freed; /* set while completions run from the loop, see pool_event_cb */
};

static const char *const OUTCOME_NAMES[WORKER_OUTCOME_COUNT] = {
    [WORKER_RAN] = "ran",
    [WORKER_CANCELLED] = "cancelled",
    [WORKER_DEADLINE_EXPIRED] = "deadline_expired",
};

const char *worker_outcome_name(WorkerOutcome o)
{
    return (unsigned)o < WORKER_OUTCOME_COUNT ? OUTCOME_NAMES[o] : "?";
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void queue_push(JobQueue *q, WorkerJob *job)
{
    job->next = NULL;
    job->prev = q->tail;
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    q->len++;
}

static void queue_unlink(JobQueue *q, WorkerJob *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        q->head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        q->tail = job->prev;
    job->prev = job->next = NULL;
    q->len--;
}

static WorkerJob *queue_pop(JobQueue *q)
{
    WorkerJob *job = q->head;
    if (job != NULL)
        queue_unlink(q, job);
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

/* pool_complete: under mu: hand a job to the loop with its outcome. */
static void pool_complete(WorkerPool *pool, WorkerJob *job, WorkerOutcome outcome)
{
    job->outcome = outcome;
    (void)fsm_set_state(&JOB_FSM, &job->where, JOB_DONE, NULL);
    bool was_empty = pool->done.head == NULL;
    queue_push(&pool->done, job);
    if (was_empty)
        pool_notify(pool); /* the loop takes completions under mu, so one wakeup suffices */
}

/* general_todo_empty: under mu: no job for the general threads queued. */
static bool general_todo_empty(const WorkerPool *pool)
{
    for (int c = 0; c < WORKER_CLASS_COUNT; c++) {
        if (c != WORKER_CLASS_SYNC && pool->todo[c].head != NULL)
            return false;
    }
    return true;
}

static bool todo_empty(const WorkerPool *pool)
{
    for (int c = 0; c < WORKER_CLASS_COUNT; c++) {
        if (pool->todo[c].head != NULL)
            return false;
    }
    return true;
}

/* pool_pick: under mu: the next job a free worker (a sync one: sync) may start, or NULL. */
static WorkerJob *pool_pick(WorkerPool *pool, bool sync)
{
    if (sync)
        return queue_pop(&pool->todo[WORKER_CLASS_SYNC]);
    size_t background = pool->running[WORKER_CLASS_IO] + pool->running[WORKER_CLASS_BULK];
    for (int c = 0; c < WORKER_CLASS_COUNT; c++) {
        if (c == WORKER_CLASS_SYNC || pool->todo[c].head == NULL ||
            pool->running[c] >= (size_t)pool->limit[c])
            continue;
        if (c != WORKER_CLASS_LATENCY && background >= (size_t)pool->background_max)
            continue;
        return queue_pop(&pool->todo[c]);
    }
    return NULL;
}

/* worker_main: take jobs until the pool stops (worker_pool_free has emptied the queues by then). */
static void *worker_main(void *arg)
{
    const WorkerThread *self = arg;
    WorkerPool *pool = self->pool;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        WorkerJob *job = pool_pick(pool, self->sync);
        if (job == NULL) {
            if (pool->stopping && todo_empty(pool))
                break;
            pthread_cond_wait(self->sync ? &pool->sync_cv : &pool->cv, &pool->mu);
            continue;
        }
        (void)fsm_set_state(&JOB_FSM, &job->where, JOB_RUNNING, NULL);
        pool->running[job->cls]++;
        pthread_mutex_unlock(&pool->mu);
        WorkerOutcome outcome = WORKER_RAN;
        if (job->deadline_ms != 0 && monotonic_ms() >= job->deadline_ms)
            outcome = WORKER_DEADLINE_EXPIRED;
        else
            job->work(job, job->arg);
        pthread_mutex_lock(&pool->mu);
        pool->running[job->cls]--;
        pool_complete(pool, job, outcome);
        /* A class at its limit may have room now: for the general threads. A sync job that waits
         * has no idle sync thread to wake (it would have been woken when it was queued): this
         * thread, one of them, takes it next. */
        if (!general_todo_empty(pool))
            pthread_cond_broadcast(&pool->cv);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

static WorkerJob *pool_pop_done(WorkerPool *pool)
{
    pthread_mutex_lock(&pool->mu);
    WorkerJob *job = queue_pop(&pool->done);
    pthread_mutex_unlock(&pool->mu);
    return job;
}

static void pool_run_done(WorkerPool *pool, WorkerJob *job)
{
    WorkerJob copy = *job;
    free(job);
    atomic_fetch_sub(&pool->pending, 1);
    if (copy.done != NULL)
        copy.done(copy.arg, copy.outcome);
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
    WorkerJob *job;
    while ((job = pool_pop_done(pool)) != NULL) {
        pool_run_done(pool, job);
        if (freed)
            return;
    }
    pool->dispatch_freed = NULL;
}

/* worker_pool_config_resolve: fill the defaults of worker_pool.h and check the values. */
bool worker_pool_config_resolve(const WorkerPoolConfig *in, WorkerPoolConfig *out, Err *err)
{
    *out = *in;
    int t = out->threads;
    if (t < 1 || t > WORKER_POOL_MAX_THREADS) {
        err_set(err, ERR_BAD_REQUEST, "worker pool: %d threads (want 1..%d)", t,
                WORKER_POOL_MAX_THREADS);
        return false;
    }
    if (out->latency_reserved == 0)
        out->latency_reserved = t < 2 ? 0 : (t / 4 > 1 ? t / 4 : 1);
    int background = t - out->latency_reserved;
    if (out->max_io == 0)
        out->max_io = background;
    if (out->max_bulk == 0) /* all background threads but one: IO never waits behind BULK */
        out->max_bulk = background > 2 ? background - 1 : 1;
    if (out->sync_threads < 0 || out->sync_threads > WORKER_POOL_MAX_THREADS) {
        err_set(err, ERR_BAD_REQUEST, "worker pool: %d sync threads (want 0..%d)",
                out->sync_threads, WORKER_POOL_MAX_THREADS);
        return false;
    }
    bool reserved_ok = out->latency_reserved >= 0 &&
                       (out->latency_reserved < t || (t == 1 && out->latency_reserved == 0));
    if (!reserved_ok || out->max_io < 1 || out->max_bulk < 1 || out->max_io > t ||
        out->max_bulk > t) {
        err_set(err, ERR_BAD_REQUEST,
                "worker pool: bad limits (threads %d, latency_reserved %d, max_io %d, "
                "max_bulk %d)",
                t, out->latency_reserved, out->max_io, out->max_bulk);
        return false;
    }
    return true;
}

bool worker_pool_new_config(struct event_base *base, const WorkerPoolConfig *cfg_in,
                            WorkerPool **out, Err *err)
{
    *out = NULL;
    WorkerPoolConfig cfg;
    if (!worker_pool_config_resolve(cfg_in, &cfg, err))
        return false;
    int threads = cfg.threads;
    WorkerPool *pool = xcalloc(1, sizeof(*pool));
    pool->base = base;
    pool->limit[WORKER_CLASS_LATENCY] = threads;
    pool->limit[WORKER_CLASS_IO] = cfg.max_io;
    pool->limit[WORKER_CLASS_BULK] = cfg.max_bulk;
    pool->limit[WORKER_CLASS_SYNC] = cfg.sync_threads;
    pool->n_sync = cfg.sync_threads;
    pool->background_max = threads - cfg.latency_reserved; /* >= 1, see the resolve */
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->shutting_down, false);
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pthread_cond_init(&pool->sync_cv, NULL);
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
    int total = threads + cfg.sync_threads;
    pool->threads = xcalloc((size_t)total, sizeof(pthread_t));
    pool->thread_args = xcalloc((size_t)total, sizeof(WorkerThread));
    int rc = 0;
    for (; pool->nthreads < total; pool->nthreads++) {
        WorkerThread *ta = &pool->thread_args[pool->nthreads];
        ta->pool = pool;
        ta->sync = pool->nthreads >= threads;
        rc = pthread_create(&pool->threads[pool->nthreads], NULL, worker_main, ta);
        if (rc != 0)
            break;
        char name[16];
        snprintf(name, sizeof(name), "%s-%d", ta->sync ? "sync" : "worker",
                 ta->sync ? pool->nthreads - threads : pool->nthreads); /* short; fits */
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
    pthread_cond_broadcast(&pool->sync_cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    free(pool->thread_args);
    if (pool->ev)
        event_free(pool->ev);
    if (pool->efd >= 0)
        close(pool->efd);
    pthread_cond_destroy(&pool->cv);
    pthread_cond_destroy(&pool->sync_cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
    return false;
}

/* worker_pool_start: during worker_pool_free (a done function starting more work) no worker is
 * left to take the job: it is queued all the same and the free's drain cancels it. */
WorkerJob *worker_pool_start(WorkerPool *pool, const WorkerJobSpec *spec, WorkerJobFn work,
                             WorkerJobDoneFn done, void *arg)
{
    WorkerJob *job = xcalloc(1, sizeof(*job));
    job->pool = pool;
    job->cls = (unsigned)spec->cls < WORKER_CLASS_COUNT ? spec->cls : WORKER_CLASS_IO;
    if (job->cls == WORKER_CLASS_SYNC && pool->n_sync == 0)
        job->cls = WORKER_CLASS_IO; /* no sync threads: the general ones run it */
    job->work = work;
    job->done = done;
    job->arg = arg;
    job->deadline_ms = spec->deadline_ms != 0 ? monotonic_ms() + spec->deadline_ms : 0;
    atomic_init(&job->cancel, false);
    atomic_fetch_add(&pool->pending, 1);
    pthread_mutex_lock(&pool->mu);
    job->where = JOB_QUEUED;
    queue_push(&pool->todo[job->cls], job);
    /* one waiting thread of the kind that takes the job: any general thread may take any
     * general job (the limits are the pool's, not a thread's), so if the one woken finds its
     * class at the limit, no other could take it either; a completion wakes them again */
    pthread_cond_signal(job->cls == WORKER_CLASS_SYNC ? &pool->sync_cv : &pool->cv);
    pthread_mutex_unlock(&pool->mu);
    return job;
}

void worker_job_cancel(WorkerPool *pool, WorkerJob *job)
{
    pthread_mutex_lock(&pool->mu);
    if (job->where == JOB_QUEUED) {
        queue_unlink(&pool->todo[job->cls], job);
        pool_complete(pool, job, WORKER_CANCELLED);
    } else {
        atomic_store(&job->cancel, true);
    }
    pthread_mutex_unlock(&pool->mu);
}

bool worker_job_cancelled(const WorkerJob *job)
{
    return atomic_load(&((WorkerJob *)job)->cancel) || atomic_load(&job->pool->shutting_down) ||
           (job->deadline_ms != 0 && monotonic_ms() >= job->deadline_ms);
}

size_t worker_pool_running(WorkerPool *pool, WorkerClass cls)
{
    pthread_mutex_lock(&pool->mu);
    size_t n = (unsigned)cls < WORKER_CLASS_COUNT ? pool->running[cls] : 0;
    pthread_mutex_unlock(&pool->mu);
    return n;
}

size_t worker_pool_queued(WorkerPool *pool, WorkerClass cls)
{
    pthread_mutex_lock(&pool->mu);
    size_t n = (unsigned)cls < WORKER_CLASS_COUNT ? pool->todo[cls].len : 0;
    pthread_mutex_unlock(&pool->mu);
    return n;
}

size_t worker_pool_pending(const WorkerPool *pool)
{
    return atomic_load(&((WorkerPool *)pool)->pending);
}

bool worker_outcome_err(WorkerOutcome o, const char *what, Err *err)
{
    switch (o) {
    case WORKER_RAN:
        return true;
    case WORKER_DEADLINE_EXPIRED:
        err_set(err, ERR_UNAVAILABLE,
                "%s: no worker was free before the deadline (the worker pool is busy); retry",
                what);
        return false;
    default:
        err_set(err, ERR_UNAVAILABLE, "%s: cancelled (shutting down); retry", what);
        return false;
    }
}

/* cancel_queued: under mu: every queued job completes CANCELLED. */
static void cancel_queued(WorkerPool *pool)
{
    for (int c = 0; c < WORKER_CLASS_COUNT; c++) {
        WorkerJob *job;
        while ((job = queue_pop(&pool->todo[c])) != NULL)
            pool_complete(pool, job, WORKER_CANCELLED);
    }
}

/* worker_pool_free: cancel what waits, let the workers finish what runs, join them, then run the
 * remaining done functions here. A job a done function starts during the drain is cancelled, since
 * no worker is left to take it. */
void worker_pool_free(WorkerPool *pool)
{
    if (pool == NULL)
        return;
    if (pool->dispatch_freed != NULL)
        *pool->dispatch_freed = true;
    event_del(pool->ev);

    pthread_mutex_lock(&pool->mu);
    pool->stopping = true;
    atomic_store(&pool->shutting_down, true);
    cancel_queued(pool);
    pthread_cond_broadcast(&pool->cv);
    pthread_cond_broadcast(&pool->sync_cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);

    for (;;) {
        WorkerJob *job = queue_pop(&pool->done);
        if (job == NULL) {
            cancel_queued(pool); /* started by a done function of this drain */
            job = queue_pop(&pool->done);
            if (job == NULL)
                break;
        }
        pool_run_done(pool, job);
    }

    event_free(pool->ev);
    close(pool->efd);
    free(pool->threads);
    free(pool->thread_args);
    pthread_cond_destroy(&pool->cv);
    pthread_cond_destroy(&pool->sync_cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
}
