/* test_fsync_group.c: unit tests for shared/fsync_group.c, with a counting fake fsync; the last
 * test runs the real one on a temporary directory. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/fsync_group.h"
#include "shared/str.h"

#define THREADS 8

/* Fake: "changes" counts the callers' changes (each takes the next number); an fsync covers
 * every change numbered up to what the counter showed when it started, and when it ends that
 * coverage becomes durable. */
typedef struct Fake {
    pthread_mutex_t mu;
    long changes;
    long durable;  /* every change <= this is covered by an ended fsync */
    int calls;     /* fsyncs run */
    bool in_fsync; /* two at once would be a bug: the group runs one at a time */
    bool overlap;  /* seen two at once */
    int fail_call; /* this call (1-based) fails; 0 = none */
    FsyncGroup *g; /* hold_first: the first call waits until hold_first callers are pending */
    size_t hold_first;
    useconds_t sleep_us; /* widens the window for arrivals during an fsync */
} Fake;

static bool fake_fsync(const char *dir, void *arg, Err *err)
{
    (void)dir;
    Fake *f = arg;
    pthread_mutex_lock(&f->mu);
    if (f->in_fsync)
        f->overlap = true;
    f->in_fsync = true;
    int call = ++f->calls;
    long covered = f->changes;
    pthread_mutex_unlock(&f->mu);
    if (call == 1 && f->hold_first > 0) {
        while (fsync_group_pending(f->g) < f->hold_first)
            sched_yield();
    }
    if (f->sleep_us > 0)
        usleep(f->sleep_us);
    pthread_mutex_lock(&f->mu);
    f->in_fsync = false;
    bool ok = call != f->fail_call;
    if (ok && covered > f->durable)
        f->durable = covered;
    pthread_mutex_unlock(&f->mu);
    if (!ok)
        err_set(err, ERR_INTERNAL, "fake fsync %d failed", call);
    return ok;
}

typedef struct Caller {
    FsyncGroup *g;
    Fake *f;
    int rounds;
    int failures;
    int uncovered; /* returned success before its change was durable */
} Caller;

static void *caller_main(void *arg)
{
    Caller *c = arg;
    for (int i = 0; i < c->rounds; i++) {
        pthread_mutex_lock(&c->f->mu);
        long mine = ++c->f->changes;
        pthread_mutex_unlock(&c->f->mu);
        Err err = {0};
        bool ok = fsync_group_sync(c->g, &err);
        pthread_mutex_lock(&c->f->mu);
        if (!ok)
            c->failures++;
        else if (c->f->durable < mine)
            c->uncovered++;
        pthread_mutex_unlock(&c->f->mu);
    }
    return NULL;
}

/* run_callers: THREADS callers of rounds syncs each; the sums of their failures and uncovered
 * returns. */
static void run_callers(FsyncGroup *g, Fake *f, int rounds, int *failures, int *uncovered)
{
    pthread_t th[THREADS];
    Caller c[THREADS];
    for (int i = 0; i < THREADS; i++) {
        c[i] = (Caller){.g = g, .f = f, .rounds = rounds};
        assert_int_equal(pthread_create(&th[i], NULL, caller_main, &c[i]), 0);
    }
    *failures = *uncovered = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        *failures += c[i].failures;
        *uncovered += c[i].uncovered;
    }
}

static void fake_init(Fake *f, FsyncGroup *g)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->g = g;
    fsync_group_init(g, "/unused", fake_fsync, f);
}

static void fake_finish(Fake *f, FsyncGroup *g)
{
    assert_int_equal(fsync_group_pending(g), 0);
    fsync_group_destroy(g);
    pthread_mutex_destroy(&f->mu);
}

/* The first fsync is held until the seven other callers wait: they all arrived during it, so
 * none may count on it, and one more fsync serves all seven: two in all, not eight. */
static void test_coalesces(void **state)
{
    (void)state;
    FsyncGroup g;
    Fake f;
    fake_init(&f, &g);
    f.hold_first = THREADS - 1;
    int failures, uncovered;
    run_callers(&g, &f, 1, &failures, &uncovered);
    assert_int_equal(failures, 0);
    assert_int_equal(uncovered, 0);
    assert_int_equal(f.calls, 2);
    assert_false(f.overlap);
    fake_finish(&f, &g);
}

/* Many rounds with arrivals at every moment: every caller returns only after an fsync that
 * started after its change, fsyncs never overlap, and there are fewer fsyncs than calls. */
static void test_every_caller_covered(void **state)
{
    (void)state;
    FsyncGroup g;
    Fake f;
    fake_init(&f, &g);
    f.sleep_us = 200;
    f.hold_first = THREADS - 1; /* at least one batch of seven: fewer fsyncs than calls */
    const int rounds = 100;
    int failures, uncovered;
    run_callers(&g, &f, rounds, &failures, &uncovered);
    assert_int_equal(failures, 0);
    assert_int_equal(uncovered, 0);
    assert_false(f.overlap);
    assert_true(f.calls < THREADS * rounds);
    assert_true(f.calls >= 2);
    fake_finish(&f, &g);
}

/* A failed fsync fails exactly the callers of its batch: the held first one (one caller) passes,
 * the second (the seven others) fails for all seven; a later call succeeds again. */
static void test_failure_reaches_its_batch(void **state)
{
    (void)state;
    FsyncGroup g;
    Fake f;
    fake_init(&f, &g);
    f.hold_first = THREADS - 1;
    f.fail_call = 2;
    int failures, uncovered;
    run_callers(&g, &f, 1, &failures, &uncovered);
    assert_int_equal(f.calls, 2);
    assert_int_equal(failures, THREADS - 1);
    assert_int_equal(uncovered, 0);
    Err err = {0};
    f.fail_call = 0;
    assert_true(fsync_group_sync(&g, &err));
    f.fail_call = 4;
    assert_false(fsync_group_sync(&g, &err));
    assert_non_null(strstr(err.msg, "fake fsync 4 failed"));
    fake_finish(&f, &g);
}

/* The default function is fs_fsync_dir: fine on a directory, an error for a missing one. */
static void test_real_directory(void **state)
{
    (void)state;
    char dir[64];
    str_copy(dir, sizeof(dir), "/tmp/test_fsync_group.XXXXXX");
    assert_non_null(mkdtemp(dir));
    FsyncGroup g;
    fsync_group_init(&g, dir, NULL, NULL);
    Err err = {0};
    assert_true(fsync_group_sync(&g, &err));
    fsync_group_destroy(&g);
    assert_int_equal(rmdir(dir), 0);
    fsync_group_init(&g, dir, NULL, NULL);
    assert_false(fsync_group_sync(&g, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    fsync_group_destroy(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coalesces),
        cmocka_unit_test(test_every_caller_covered),
        cmocka_unit_test(test_failure_reaches_its_batch),
        cmocka_unit_test(test_real_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
