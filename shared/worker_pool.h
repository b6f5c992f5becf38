/*
 * worker_pool.h: threads that run blocking work (fsync, disk reads, zstd, initdb) off the event
 * loop. A job's work function runs on a worker thread; its done function then runs on the loop
 * thread, delivered through a completion queue and an eventfd watched by the loop.
 *
 * Jobs belong to a class, each with its own FIFO queue and concurrency limit, so that a flood of
 * slow jobs cannot delay page reads:
 *   LATENCY  page reads: picked first; may use every thread;
 *   IO       layer uploads and downloads, heatmaps;
 *   BULK     initdb, imports, splits;
 *   SYNC     small durable writes a caller waits for (a location config: write, fsync, rename,
 *            fsync the directory): run by threads of their own (sync_threads), never by the
 *            others, so they neither wait behind uploads nor hold a thread other work needs. Such
 *            a job spends its time waiting in fsync; running many at once lets the filesystem
 *            commit their journal updates together (group commit) instead of one after another.
 * IO and BULK jobs together never occupy more than threads - latency_reserved threads, so a
 * LATENCY job waits at most for one job to end when every thread is busy with LATENCY work.
 * With sync_threads 0, SYNC jobs run as IO jobs.
 *
 * A job may have a deadline: if it passed before a worker took the job, the work is not run
 * (outcome WORKER_DEADLINE_EXPIRED). A queued job can be cancelled (WORKER_CANCELLED, not run);
 * a running one is only told: its work function polls worker_job_cancelled(). The done function
 * always runs exactly once, on the loop thread, with the outcome, so it can free what the job
 * owns. worker_pool_free cancels every queued job; worker_outcome_err turns an outcome other than
 * WORKER_RAN into the error a done function reports.
 */
#ifndef SHARED_WORKER_POOL_H
#define SHARED_WORKER_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

struct event_base;

typedef struct WorkerPool WorkerPool;
typedef struct WorkerJob WorkerJob;

typedef enum WorkerClass {
    WORKER_CLASS_LATENCY, /* page reads */
    WORKER_CLASS_IO,      /* uploads, downloads, heatmaps */
    WORKER_CLASS_BULK,    /* initdb, import, split */
    WORKER_CLASS_SYNC,    /* durable metadata writes, on their own threads */
    WORKER_CLASS_COUNT
} WorkerClass;

typedef enum WorkerOutcome {
    WORKER_RAN,              /* the work function ran (it may have stopped early on a cancel) */
    WORKER_CANCELLED,        /* cancelled (worker_job_cancel or pool shutdown) before it started */
    WORKER_DEADLINE_EXPIRED, /* its deadline passed before a worker took it */
    WORKER_OUTCOME_COUNT
} WorkerOutcome;

typedef void (*WorkerJobFn)(WorkerJob *job, void *arg); /* on a worker thread */
/* on the loop thread, exactly once per job, after the work function returned (or instead of it) */
typedef void (*WorkerJobDoneFn)(void *arg, WorkerOutcome outcome);

/* WorkerPoolConfig: zero fields take the defaults computed from threads: latency_reserved
 * threads / 4 (at least 1 with two threads or more), IO up to threads - latency_reserved, BULK up
 * to one less than that (at least 1), so IO always has a thread BULK cannot take. LATENCY may
 * always use every thread. */
typedef struct WorkerPoolConfig {
    int threads; /* 1..256 */
    int latency_reserved;
    int max_io;
    int max_bulk;
    int sync_threads; /* 0..256 more threads, for SYNC jobs only (0: SYNC jobs run as IO) */
} WorkerPoolConfig;

typedef struct WorkerJobSpec {
    WorkerClass cls;
    uint64_t deadline_ms; /* from submission; 0 = none */
} WorkerJobSpec;

/* worker_pool_config_resolve: in with its zero fields replaced by the defaults, into out; false
 * (ERR_BAD_REQUEST) when the values cannot work together. worker_pool_new_config does the same. */
bool worker_pool_config_resolve(const WorkerPoolConfig *in, WorkerPoolConfig *out,
                                Err *err) MUST_CHECK;
bool worker_pool_new_config(struct event_base *base, const WorkerPoolConfig *cfg, WorkerPool **out,
                            Err *err) MUST_CHECK;
/* worker_pool_start: queue a job of spec's class; done may be NULL. The handle is valid until
 * done has run (for worker_job_cancel from the loop thread; workers get it as their argument). */
WorkerJob *worker_pool_start(WorkerPool *pool, const WorkerJobSpec *spec, WorkerJobFn work,
                             WorkerJobDoneFn done, void *arg);
/* worker_job_cancel: loop thread. A queued job is taken off its queue (done runs later with
 * WORKER_CANCELLED, never inside this call); a running one sees worker_job_cancelled() true. */
void worker_job_cancel(WorkerPool *pool, WorkerJob *job);
/* worker_job_cancelled: from the work function: stop early: cancelled, deadline passed or the pool
 * shutting down. */
bool worker_job_cancelled(const WorkerJob *job);

/* worker_pool_running / worker_pool_queued: jobs of a class on a thread / waiting. */
size_t worker_pool_running(WorkerPool *pool, WorkerClass cls);
size_t worker_pool_queued(WorkerPool *pool, WorkerClass cls);
/* worker_pool_pending: jobs started whose done function has not run yet. */
size_t worker_pool_pending(const WorkerPool *pool);
const char *worker_outcome_name(WorkerOutcome o);
/* worker_outcome_err: true for WORKER_RAN. Otherwise false, and err is ERR_UNAVAILABLE (503,
 * retry later) saying that what ("reading a page", ...) was cancelled or waited past its deadline
 * for a free worker. */
bool worker_outcome_err(WorkerOutcome o, const char *what, Err *err) MUST_CHECK;

/* worker_pool_free: cancel every queued job, tell running jobs to stop, join the threads, then run
 * the remaining done functions here. Must be called on the loop thread (a done function may call
 * it); it does not need the loop to be running. NULL ok. */
void worker_pool_free(WorkerPool *pool);

#endif
