/*
 * worker_pool.h: threads that run blocking work (fsync, disk reads, zstd, initdb) off the event
 * loop. A job's work function runs on a worker thread; its done function then runs on the loop
 * thread, delivered through a completion queue and an eventfd watched by the loop.
 */
#ifndef SHARED_WORKER_POOL_H
#define SHARED_WORKER_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"

struct event_base;

typedef struct WorkerPool WorkerPool;

typedef void (*WorkFn)(void *arg);     /* on a worker thread */
typedef void (*WorkDoneFn)(void *arg); /* on the loop thread, after WorkFn returned */

bool worker_pool_new(struct event_base *base, int threads, WorkerPool **out, Err *err) MUST_CHECK;
/* worker_pool_submit: queue a job (FIFO). done may be NULL. */
void worker_pool_submit(WorkerPool *pool, WorkFn work, WorkDoneFn done, void *arg);
/* worker_pool_pending: jobs submitted whose done function has not run yet. */
size_t worker_pool_pending(const WorkerPool *pool);
/* worker_pool_free: finish every queued job (work and done), then join the threads. Must be
 * called on the loop thread; it does not need the loop to be running. */
void worker_pool_free(WorkerPool *pool);

#endif
