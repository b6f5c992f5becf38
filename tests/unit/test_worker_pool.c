/* test_worker_pool.c: unit tests for shared/worker_pool.c (threads, completion queue, eventfd). */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <event2/event.h>

#include "shared/err.h"
#include "shared/worker_pool.h"

#define MANY_JOBS 10000

typedef struct Job {
    int index;
    atomic_int work_runs;
    int done_runs;
    pthread_t work_thread;
    pthread_t done_thread;
    bool work_sigterm_blocked;
    bool work_sighup_blocked;
} Job;

typedef struct Ctx {
    struct event_base *base;
    WorkerPool *pool;
    Job *jobs;
    int njobs;
    int done_total;
    int target; /* break the loop when done_total reaches it */
    int *order; /* indexes in the order done functions ran */
    pthread_t loop_thread;
    /* gate: work functions wait until opened */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    bool gate_open;
    atomic_int work_finished;
    bool free_from_done;   /* first done function frees the pool */
    bool submit_from_done; /* a done function run by free submits one extra job */
    WorkerPool *dying;     /* the pool being freed from a done function */
    bool submitted;
    int extra_done;
} Ctx;

static Ctx *g_ctx;

static void job_work(void *arg)
{
    Job *job = arg;
    Ctx *ctx = g_ctx;
    job->work_thread = pthread_self();
    sigset_t set;
    pthread_sigmask(SIG_BLOCK, NULL, &set);
    job->work_sigterm_blocked = sigismember(&set, SIGTERM) == 1;
    job->work_sighup_blocked = sigismember(&set, SIGHUP) == 1;
    pthread_mutex_lock(&ctx->gate_mu);
    while (!ctx->gate_open)
        pthread_cond_wait(&ctx->gate_cv, &ctx->gate_mu);
    pthread_mutex_unlock(&ctx->gate_mu);
    atomic_fetch_add(&job->work_runs, 1);
    atomic_fetch_add(&ctx->work_finished, 1);
}

static void extra_done(void *arg)
{
    Ctx *ctx = arg;
    ctx->extra_done++;
}

static void extra_work(void *arg) {}

static void job_done(void *arg)
{
    Job *job = arg;
    Ctx *ctx = g_ctx;
    job->done_runs++;
    job->done_thread = pthread_self();
    /* the work must have finished before its done function runs */
    assert_int_equal(atomic_load(&job->work_runs), 1);
    if (ctx->order != NULL)
        ctx->order[ctx->done_total] = job->index;
    ctx->done_total++;
    if (ctx->submit_from_done && ctx->dying != NULL && !ctx->submitted) {
        ctx->submitted = true;
        worker_pool_submit(ctx->dying, extra_work, extra_done, ctx);
    }
    if (ctx->free_from_done && ctx->pool != NULL) {
        ctx->dying = ctx->pool;
        ctx->pool = NULL;
        worker_pool_free(ctx->dying);
        ctx->dying = NULL;
    }
    if (ctx->done_total == ctx->target)
        event_base_loopbreak(ctx->base);
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    fail_msg("watchdog: event loop did not finish in time");
}

static void ctx_init(Ctx *ctx, int njobs, bool gate_open)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->base = event_base_new();
    assert_non_null(ctx->base);
    ctx->jobs = calloc((size_t)njobs, sizeof(Job));
    assert_non_null(ctx->jobs);
    ctx->njobs = njobs;
    ctx->target = njobs;
    for (int i = 0; i < njobs; i++)
        ctx->jobs[i].index = i;
    ctx->loop_thread = pthread_self();
    pthread_mutex_init(&ctx->gate_mu, NULL);
    pthread_cond_init(&ctx->gate_cv, NULL);
    ctx->gate_open = gate_open;
    g_ctx = ctx;
}

static void ctx_open_gate(Ctx *ctx)
{
    pthread_mutex_lock(&ctx->gate_mu);
    ctx->gate_open = true;
    pthread_cond_broadcast(&ctx->gate_cv);
    pthread_mutex_unlock(&ctx->gate_mu);
}

static void ctx_run_loop(Ctx *ctx)
{
    struct event *wd = evtimer_new(ctx->base, watchdog_cb, NULL);
    struct timeval tv = {30, 0};
    evtimer_add(wd, &tv);
    event_base_dispatch(ctx->base);
    event_free(wd);
}

static void ctx_finish(Ctx *ctx)
{
    free(ctx->jobs);
    free(ctx->order);
    pthread_mutex_destroy(&ctx->gate_mu);
    pthread_cond_destroy(&ctx->gate_cv);
    event_base_free(ctx->base);
    g_ctx = NULL;
}

static void assert_each_job_once(Ctx *ctx, pthread_t done_thread)
{
    for (int i = 0; i < ctx->njobs; i++) {
        Job *job = &ctx->jobs[i];
        assert_int_equal(atomic_load(&job->work_runs), 1);
        assert_int_equal(job->done_runs, 1);
        assert_true(pthread_equal(job->done_thread, done_thread));
        assert_false(pthread_equal(job->work_thread, done_thread));
    }
}

static void test_many_jobs_done_on_loop_thread(void **state)
{
    Ctx ctx;
    ctx_init(&ctx, MANY_JOBS, true);
    Err err;
    assert_true(worker_pool_new(ctx.base, 4, &ctx.pool, &err));
    for (int i = 0; i < MANY_JOBS; i++)
        worker_pool_submit(ctx.pool, job_work, job_done, &ctx.jobs[i]);
    ctx_run_loop(&ctx);
    assert_int_equal(ctx.done_total, MANY_JOBS);
    assert_int_equal(worker_pool_pending(ctx.pool), 0);
    assert_each_job_once(&ctx, ctx.loop_thread);
    for (int i = 0; i < MANY_JOBS; i++) {
        assert_true(ctx.jobs[i].work_sigterm_blocked);
        assert_true(ctx.jobs[i].work_sighup_blocked);
    }
    worker_pool_free(ctx.pool);
    ctx_finish(&ctx);
}

static void test_single_thread_fifo_order(void **state)
{
    Ctx ctx;
    ctx_init(&ctx, 500, true);
    ctx.order = calloc(500, sizeof(int));
    Err err;
    assert_true(worker_pool_new(ctx.base, 1, &ctx.pool, &err));
    for (int i = 0; i < 500; i++)
        worker_pool_submit(ctx.pool, job_work, job_done, &ctx.jobs[i]);
    ctx_run_loop(&ctx);
    for (int i = 0; i < 500; i++)
        assert_int_equal(ctx.order[i], i);
    worker_pool_free(ctx.pool);
    ctx_finish(&ctx);
}

static void test_pending_counts_until_done_runs(void **state)
{
    Ctx ctx;
    ctx_init(&ctx, 50, false);
    Err err;
    assert_true(worker_pool_new(ctx.base, 3, &ctx.pool, &err));
    assert_int_equal(worker_pool_pending(ctx.pool), 0);
    for (int i = 0; i < 50; i++)
        worker_pool_submit(ctx.pool, job_work, job_done, &ctx.jobs[i]);
    assert_int_equal(worker_pool_pending(ctx.pool), 50);
    ctx_open_gate(&ctx);
    /* all work finishes, but done functions only run when the loop runs */
    struct timespec ts = {0, 1000000};
    for (int spins = 0; atomic_load(&ctx.work_finished) < 50 && spins < 10000; spins++)
        nanosleep(&ts, NULL);
    assert_int_equal(atomic_load(&ctx.work_finished), 50);
    assert_int_equal(worker_pool_pending(ctx.pool), 50);
    assert_int_equal(ctx.done_total, 0);
    ctx_run_loop(&ctx);
    assert_int_equal(worker_pool_pending(ctx.pool), 0);
    assert_each_job_once(&ctx, ctx.loop_thread);
    worker_pool_free(ctx.pool);
    ctx_finish(&ctx);
}

static void test_free_drains_pending_jobs(void **state)
{
    Ctx ctx;
    ctx_init(&ctx, 2000, false);
    Err err;
    assert_true(worker_pool_new(ctx.base, 2, &ctx.pool, &err));
    for (int i = 0; i < 2000; i++)
        worker_pool_submit(ctx.pool, job_work, job_done, &ctx.jobs[i]);
    worker_pool_submit(ctx.pool, extra_work, NULL, NULL); /* done may be NULL */
    assert_int_equal(worker_pool_pending(ctx.pool), 2001);
    ctx_open_gate(&ctx);
    /* the loop never runs: free itself finishes the work and runs the done functions here */
    worker_pool_free(ctx.pool);
    assert_int_equal(ctx.done_total, 2000);
    assert_each_job_once(&ctx, pthread_self());
    ctx_finish(&ctx);
}

static void test_free_from_done_callback(void **state)
{
    Ctx ctx;
    ctx_init(&ctx, 300, true);
    ctx.free_from_done = true;
    ctx.submit_from_done = true;
    /* the first done frees the pool, which runs the other 299 itself */
    Err err;
    assert_true(worker_pool_new(ctx.base, 2, &ctx.pool, &err));
    for (int i = 0; i < 300; i++)
        worker_pool_submit(ctx.pool, job_work, job_done, &ctx.jobs[i]);
    ctx_run_loop(&ctx);
    assert_null(ctx.pool);
    assert_int_equal(ctx.done_total, 300);
    assert_each_job_once(&ctx, ctx.loop_thread);
    /* the job submitted from a done function during free still ran */
    assert_int_equal(ctx.extra_done, 1);
    /* the loop has nothing of the pool left to run */
    assert_int_equal(event_base_loop(ctx.base, EVLOOP_NONBLOCK), 1);
    ctx_finish(&ctx);
}

static void test_bad_thread_count(void **state)
{
    struct event_base *base = event_base_new();
    static const int counts[] = {0, -1, 100000};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        WorkerPool *pool = (WorkerPool *)&pool;
        Err err;
        err_clear(&err);
        assert_false(worker_pool_new(base, counts[i], &pool, &err));
        assert_null(pool);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_jobs_done_on_loop_thread),
        cmocka_unit_test(test_single_thread_fifo_order),
        cmocka_unit_test(test_pending_counts_until_done_runs),
        cmocka_unit_test(test_free_drains_pending_jobs),
        cmocka_unit_test(test_free_from_done_callback),
        cmocka_unit_test(test_bad_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
