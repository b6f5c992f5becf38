/* test_worker_pool.c: unit tests for shared/worker_pool.c (threads, completion queue, eventfd,
 * classes, cancellation, deadlines, shutdown). */
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
    WorkerOutcome outcome;
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
    WorkerOutcome extra_outcome;
} Ctx;

static Ctx *g_ctx;

/* submit: an IO job without a deadline. */
static void submit(WorkerPool *pool, WorkerJobFn work, WorkerJobDoneFn done, void *arg)
{
    WorkerJobSpec spec = {.cls = WORKER_CLASS_IO};
    assert_non_null(worker_pool_start(pool, &spec, work, done, arg));
}

static bool pool_new(struct event_base *base, int threads, WorkerPool **out, Err *err)
{
    WorkerPoolConfig cfg = {.threads = threads};
    return worker_pool_new_config(base, &cfg, out, err);
}

static void job_work(WorkerJob *handle, void *arg)
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

static void extra_done(void *arg, WorkerOutcome outcome)
{
    Ctx *ctx = arg;
    ctx->extra_done++;
    ctx->extra_outcome = outcome;
}

static void extra_work(WorkerJob *handle, void *arg) {}

static void job_done(void *arg, WorkerOutcome outcome)
{
    Job *job = arg;
    Ctx *ctx = g_ctx;
    job->done_runs++;
    job->done_thread = pthread_self();
    job->outcome = outcome;
    /* the work must have finished before its done function runs; a cancelled job never ran */
    assert_int_equal(atomic_load(&job->work_runs), outcome == WORKER_RAN ? 1 : 0);
    if (ctx->order != NULL)
        ctx->order[ctx->done_total] = job->index;
    ctx->done_total++;
    if (ctx->submit_from_done && ctx->dying != NULL && !ctx->submitted) {
        ctx->submitted = true;
        submit(ctx->dying, extra_work, extra_done, ctx);
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
    assert_true(pool_new(ctx.base, 4, &ctx.pool, &err));
    for (int i = 0; i < MANY_JOBS; i++)
        submit(ctx.pool, job_work, job_done, &ctx.jobs[i]);
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
    assert_true(pool_new(ctx.base, 1, &ctx.pool, &err));
    for (int i = 0; i < 500; i++)
        submit(ctx.pool, job_work, job_done, &ctx.jobs[i]);
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
    assert_true(pool_new(ctx.base, 3, &ctx.pool, &err));
    assert_int_equal(worker_pool_pending(ctx.pool), 0);
    for (int i = 0; i < 50; i++)
        submit(ctx.pool, job_work, job_done, &ctx.jobs[i]);
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

/* count_ran: each job's done ran once, on the given thread; returns how many ran. */
static int count_ran(Ctx *ctx, pthread_t done_thread)
{
    int ran = 0;
    for (int i = 0; i < ctx->njobs; i++) {
        Job *job = &ctx->jobs[i];
        assert_int_equal(job->done_runs, 1);
        assert_true(pthread_equal(job->done_thread, done_thread));
        if (job->outcome == WORKER_RAN) {
            assert_int_equal(atomic_load(&job->work_runs), 1);
            ran++;
        } else {
            assert_int_equal(job->outcome, WORKER_CANCELLED);
            assert_int_equal(atomic_load(&job->work_runs), 0);
        }
    }
    return ran;
}

static void *open_gate_later(void *arg)
{
    struct timespec ts = {0, 200 * 1000000};
    nanosleep(&ts, NULL);
    ctx_open_gate(arg);
    return NULL;
}

static void test_free_drains_pending_jobs(void **state)
{
    Ctx ctx;
    ctx_init(&ctx, 2000, false);
    Err err;
    assert_true(pool_new(ctx.base, 2, &ctx.pool, &err));
    for (int i = 0; i < 2000; i++)
        submit(ctx.pool, job_work, job_done, &ctx.jobs[i]);
    submit(ctx.pool, extra_work, NULL, NULL); /* done may be NULL */
    assert_int_equal(worker_pool_pending(ctx.pool), 2001);
    struct timespec ts = {0, 1000000};
    /* two threads: one reserved for LATENCY, so one IO job runs at a time */
    for (int spins = 0; worker_pool_running(ctx.pool, WORKER_CLASS_IO) < 1 && spins < 10000;
         spins++)
        nanosleep(&ts, NULL);
    assert_int_equal(worker_pool_running(ctx.pool, WORKER_CLASS_IO), 1);
    /* the loop never runs: free cancels the queued jobs at once, waits for the running one (the
     * gate opens a little later, from another thread) and runs every done function here */
    pthread_t opener;
    assert_int_equal(pthread_create(&opener, NULL, open_gate_later, &ctx), 0);
    worker_pool_free(ctx.pool);
    pthread_join(opener, NULL);
    assert_int_equal(ctx.done_total, 2000);
    int ran = count_ran(&ctx, pthread_self());
    assert_true(ran >= 1);
    assert_true(ran < 2000);
    ctx_finish(&ctx);
}

static void test_free_from_done_callback(void **state)
{
    Ctx ctx;
    ctx_init(&ctx, 300, true);
    ctx.free_from_done = true;
    ctx.submit_from_done = true;
    /* the first done frees the pool, which delivers the other 299 itself */
    Err err;
    assert_true(pool_new(ctx.base, 2, &ctx.pool, &err));
    for (int i = 0; i < 300; i++)
        submit(ctx.pool, job_work, job_done, &ctx.jobs[i]);
    ctx_run_loop(&ctx);
    assert_null(ctx.pool);
    assert_int_equal(ctx.done_total, 300);
    assert_true(count_ran(&ctx, ctx.loop_thread) >= 1);
    /* the job started from a done function during free was cancelled, and told so */
    assert_int_equal(ctx.extra_done, 1);
    assert_int_equal(ctx.extra_outcome, WORKER_CANCELLED);
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
        assert_false(pool_new(base, counts[i], &pool, &err));
        assert_null(pool);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
    event_base_free(base);
}

/* ---- classes, cancellation, deadlines, shutdown ---- */

typedef struct Gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
} Gate;

static Gate g_gate;

static void gate_init(void)
{
    pthread_mutex_init(&g_gate.mu, NULL);
    pthread_cond_init(&g_gate.cv, NULL);
    g_gate.open = false;
}

static void gate_open(void)
{
    pthread_mutex_lock(&g_gate.mu);
    g_gate.open = true;
    pthread_cond_broadcast(&g_gate.cv);
    pthread_mutex_unlock(&g_gate.mu);
}

static void gate_destroy(void)
{
    pthread_mutex_destroy(&g_gate.mu);
    pthread_cond_destroy(&g_gate.cv);
}

typedef struct CJob {
    atomic_bool ran;
    atomic_bool saw_cancel;
    bool gated; /* wait for the gate (or a cancel) */
    int done_runs;
    WorkerOutcome outcome;
    WorkerJob *handle;
} CJob;

static int g_done;

/* cjob_work: a gated job waits until the gate opens or it is told to stop. */
static void cjob_work(WorkerJob *job, void *arg)
{
    CJob *j = arg;
    atomic_store(&j->ran, true);
    if (!j->gated)
        return;
    struct timespec ts = {0, 1000000};
    for (;;) {
        pthread_mutex_lock(&g_gate.mu);
        bool open = g_gate.open;
        pthread_mutex_unlock(&g_gate.mu);
        if (open)
            return;
        if (worker_job_cancelled(job)) {
            atomic_store(&j->saw_cancel, true);
            return;
        }
        nanosleep(&ts, NULL);
    }
}

static void cjob_done(void *arg, WorkerOutcome outcome)
{
    CJob *j = arg;
    j->done_runs++;
    j->outcome = outcome;
    g_done++;
}

static WorkerJob *start(WorkerPool *pool, WorkerClass cls, uint64_t deadline_ms, CJob *j)
{
    WorkerJobSpec spec = {.cls = cls, .deadline_ms = deadline_ms};
    j->handle = worker_pool_start(pool, &spec, cjob_work, cjob_done, j);
    return j->handle;
}

static void run_until_done(struct event_base *base, int target)
{
    struct timespec ts = {0, 1000000};
    for (int spins = 0; g_done < target && spins < 20000; spins++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        if (g_done < target)
            nanosleep(&ts, NULL);
    }
    assert_int_equal(g_done, target);
}

static void wait_running(WorkerPool *pool, WorkerClass cls, size_t n)
{
    struct timespec ts = {0, 1000000};
    for (int spins = 0; worker_pool_running(pool, cls) < n && spins < 10000; spins++)
        nanosleep(&ts, NULL);
    assert_int_equal(worker_pool_running(pool, cls), n);
}

/* wait_job_running: until the (gated) job's work function started. */
static void wait_job_running(const CJob *j)
{
    struct timespec ts = {0, 1000000};
    for (int spins = 0; !atomic_load(&j->ran) && spins < 10000; spins++)
        nanosleep(&ts, NULL);
    assert_true(atomic_load(&j->ran));
}

/* GateFx: what the tests of gated jobs share: the gate (closed), g_done 0, a loop and a pool of
 * config threads (the test may free and replace it; teardown frees whatever is there). */
typedef struct GateFx {
    struct event_base *base;
    WorkerPool *pool;
} GateFx;

static int gate_fx_setup(void **state, WorkerPoolConfig cfg)
{
    gate_init();
    g_done = 0;
    GateFx *fx = calloc(1, sizeof(*fx));
    fx->base = event_base_new();
    Err err;
    if (fx->base == NULL || !worker_pool_new_config(fx->base, &cfg, &fx->pool, &err)) {
        if (fx->base != NULL)
            event_base_free(fx->base);
        free(fx);
        gate_destroy();
        return -1;
    }
    *state = fx;
    return 0;
}

static int gate_fx_one_thread(void **state)
{
    return gate_fx_setup(state, (WorkerPoolConfig){.threads = 1});
}

static int gate_fx_four_threads(void **state)
{
    return gate_fx_setup(state, (WorkerPoolConfig){.threads = 4});
}

static int gate_fx_sync_threads(void **state)
{
    return gate_fx_setup(state, (WorkerPoolConfig){.threads = 2, .sync_threads = 3});
}

static int gate_fx_teardown(void **state)
{
    GateFx *fx = *state;
    worker_pool_free(fx->pool);
    event_base_free(fx->base);
    free(fx);
    gate_destroy();
    return 0;
}

/* A flood of BULK and IO jobs, all stuck, does not keep a LATENCY job from running at once. */
static void test_bulk_flood_does_not_delay_latency(void **state)
{
    GateFx *fx = *state;
    struct event_base *base = fx->base;
    WorkerPool *pool = fx->pool;
    enum { FLOOD = 40 };
    CJob *flood = calloc(FLOOD, sizeof(CJob));
    for (int i = 0; i < FLOOD / 2; i++) {
        flood[i].gated = true;
        start(pool, WORKER_CLASS_BULK, 0, &flood[i]);
    }
    wait_running(pool, WORKER_CLASS_BULK, 2);
    for (int i = FLOOD / 2; i < FLOOD; i++) {
        flood[i].gated = true;
        start(pool, WORKER_CLASS_IO, 0, &flood[i]);
    }
    wait_running(pool, WORKER_CLASS_IO, 1);
    CJob fast[5];
    memset(fast, 0, sizeof(fast));
    for (int i = 0; i < 5; i++)
        start(pool, WORKER_CLASS_LATENCY, 0, &fast[i]);
    run_until_done(base, 5); /* while every flood job is still stuck */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fast[i].outcome, WORKER_RAN);
        assert_int_equal(fast[i].done_runs, 1);
    }
    /* the limits held: two BULK (all of the 3 background threads but one), IO on the one left */
    assert_int_equal(worker_pool_running(pool, WORKER_CLASS_BULK), 2);
    assert_int_equal(worker_pool_running(pool, WORKER_CLASS_IO), 1);
    assert_int_equal(worker_pool_queued(pool, WORKER_CLASS_BULK), FLOOD / 2 - 2);
    assert_int_equal(worker_pool_queued(pool, WORKER_CLASS_IO), FLOOD / 2 - 1);
    gate_open();
    run_until_done(base, 5 + FLOOD);
    for (int i = 0; i < FLOOD; i++)
        assert_int_equal(flood[i].outcome, WORKER_RAN);
    free(flood);
}

/* SYNC jobs run on their own threads, all of them at once (the concurrency that lets the
 * filesystem commit their fsyncs together), while every general thread is stuck with IO and
 * LATENCY work; a stuck SYNC job does not take a general thread either. Without sync threads they
 * run as IO jobs. */
static void test_sync_jobs_have_their_own_threads(void **state)
{
    GateFx *fx = *state;
    struct event_base *base = fx->base;
    WorkerPool *pool = fx->pool;
    CJob busy[4];
    memset(busy, 0, sizeof(busy));
    for (int i = 0; i < 2; i++) {
        busy[i].gated = true;
        start(pool, WORKER_CLASS_IO, 0, &busy[i]);
    }
    wait_running(pool, WORKER_CLASS_IO, 1); /* 2 threads, 1 reserved for LATENCY */
    for (int i = 2; i < 4; i++) {
        busy[i].gated = true;
        start(pool, WORKER_CLASS_LATENCY, 0, &busy[i]);
    }
    wait_running(pool, WORKER_CLASS_LATENCY, 1);
    CJob stuck[3];
    memset(stuck, 0, sizeof(stuck));
    for (int i = 0; i < 3; i++) {
        stuck[i].gated = true;
        start(pool, WORKER_CLASS_SYNC, 0, &stuck[i]);
    }
    wait_running(pool, WORKER_CLASS_SYNC, 3); /* all at once, none on a general thread */
    assert_int_equal(worker_pool_running(pool, WORKER_CLASS_IO), 1);
    assert_int_equal(worker_pool_running(pool, WORKER_CLASS_LATENCY), 1);
    CJob more[5];
    memset(more, 0, sizeof(more));
    for (int i = 0; i < 5; i++)
        start(pool, WORKER_CLASS_SYNC, 0, &more[i]);
    assert_int_equal(worker_pool_queued(pool, WORKER_CLASS_SYNC), 5); /* every sync thread busy */
    gate_open();
    run_until_done(base, 4 + 3 + 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(more[i].outcome, WORKER_RAN);
    worker_pool_free(pool);
    fx->pool = NULL;

    /* no sync threads: a SYNC job is an IO job */
    g_done = 0;
    Err err;
    assert_true(pool_new(base, 2, &fx->pool, &err));
    CJob one;
    memset(&one, 0, sizeof(one));
    start(fx->pool, WORKER_CLASS_SYNC, 0, &one);
    run_until_done(base, 1);
    assert_int_equal(one.outcome, WORKER_RAN);
}

/* A queued job cancelled never runs (done says so, later, not inside the cancel); a running one
 * is told and stops. */
static void test_cancel(void **state)
{
    GateFx *fx = *state;
    WorkerPool *pool = fx->pool;
    CJob running = {.gated = true}, queued = {0};
    start(pool, WORKER_CLASS_IO, 0, &running);
    start(pool, WORKER_CLASS_IO, 0, &queued);
    wait_job_running(&running);
    worker_job_cancel(pool, queued.handle);
    assert_int_equal(queued.done_runs, 0);
    worker_job_cancel(pool, running.handle);
    run_until_done(fx->base, 2);
    assert_false(atomic_load(&queued.ran));
    assert_int_equal(queued.outcome, WORKER_CANCELLED);
    assert_true(atomic_load(&running.saw_cancel));
    assert_int_equal(running.outcome, WORKER_RAN);
    assert_string_equal(worker_outcome_name(WORKER_CANCELLED), "cancelled");
}

/* A job whose deadline passed while it waited is not run; one in time is. */
static void test_deadline(void **state)
{
    GateFx *fx = *state;
    WorkerPool *pool = fx->pool;
    CJob blocker = {.gated = true}, late = {0}, in_time = {0};
    start(pool, WORKER_CLASS_IO, 0, &blocker);
    start(pool, WORKER_CLASS_IO, 30, &late);
    start(pool, WORKER_CLASS_IO, 60000, &in_time);
    struct timespec ts = {0, 80 * 1000000};
    nanosleep(&ts, NULL);
    gate_open();
    run_until_done(fx->base, 3);
    assert_false(atomic_load(&late.ran));
    assert_int_equal(late.outcome, WORKER_DEADLINE_EXPIRED);
    assert_true(atomic_load(&in_time.ran));
    assert_int_equal(in_time.outcome, WORKER_RAN);
}

/* Shutdown cancels queued jobs (done still runs, told so) and stops the running one. */
static void test_shutdown_cancels_queued(void **state)
{
    GateFx *fx = *state;
    WorkerPool *pool = fx->pool;
    CJob running = {.gated = true}, queued[6];
    memset(queued, 0, sizeof(queued));
    start(pool, WORKER_CLASS_BULK, 0, &running);
    wait_job_running(&running);
    for (int i = 0; i < 6; i++)
        start(pool, (WorkerClass)(i % WORKER_CLASS_COUNT), 0, &queued[i]);
    assert_int_equal(worker_pool_pending(pool), 7);
    worker_pool_free(pool); /* the loop never runs: free delivers everything itself */
    fx->pool = NULL;
    assert_int_equal(g_done, 7);
    assert_true(atomic_load(&running.saw_cancel));
    assert_int_equal(running.outcome, WORKER_RAN);
    for (int i = 0; i < 6; i++) {
        assert_false(atomic_load(&queued[i].ran));
        assert_int_equal(queued[i].done_runs, 1);
        assert_int_equal(queued[i].outcome, WORKER_CANCELLED);
    }
}

static void test_outcome_err(void **state)
{
    (void)state;
    Err err = {0};
    assert_true(worker_outcome_err(WORKER_RAN, "reading a page", &err));
    assert_int_equal(err.code, ERR_NONE);
    assert_false(worker_outcome_err(WORKER_CANCELLED, "reading a page", &err));
    assert_int_equal(err.code, ERR_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "reading a page: cancelled"));
    err_clear(&err);
    assert_false(worker_outcome_err(WORKER_DEADLINE_EXPIRED, "persisting", &err));
    assert_int_equal(err.code, ERR_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "persisting: no worker was free before the deadline"));
}

static void test_bad_limits(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    static const WorkerPoolConfig bad[] = {
        {.threads = 4, .latency_reserved = 4},  {.threads = 4, .max_io = 5},
        {.threads = 2, .latency_reserved = -1}, {.threads = 2, .sync_threads = -1},
        {.threads = 2, .sync_threads = 257},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        WorkerPool *pool = (WorkerPool *)&pool;
        Err err;
        assert_false(worker_pool_new_config(base, &bad[i], &pool, &err));
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
        cmocka_unit_test_setup_teardown(test_bulk_flood_does_not_delay_latency,
                                        gate_fx_four_threads, gate_fx_teardown),
        cmocka_unit_test_setup_teardown(test_sync_jobs_have_their_own_threads, gate_fx_sync_threads,
                                        gate_fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, gate_fx_one_thread, gate_fx_teardown),
        cmocka_unit_test_setup_teardown(test_deadline, gate_fx_one_thread, gate_fx_teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_cancels_queued, gate_fx_one_thread,
                                        gate_fx_teardown),
        cmocka_unit_test(test_bad_limits),
        cmocka_unit_test(test_outcome_err),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
