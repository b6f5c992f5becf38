/* test_throttle.c: unit tests for shared/throttle.c (the byte-rate limiter of secondary downloads).
 * Bounds on time are one-sided where the limiter guarantees them (it never lets bytes through
 * faster than the rate beyond the burst); upper bounds are generous, for loaded machines. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "shared/throttle.h"

#define KIB 1024ull
#define MIB (1024 * KIB)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t now_ms(void)
{
    return (int64_t)(now_s() * 1000);
}

static void burst_passes_without_sleeping(void **state)
{
    (void)state;
    Throttle *t = throttle_new(1 * MIB, 256 * KIB);
    assert_true(throttle_take(t, 256 * KIB, NULL, 0));
    assert_int_equal(throttle_slept_us(t), 0);
    throttle_free(t);
}

typedef struct Taker {
    Throttle *t;
    uint64_t bytes, chunk;
    bool ok;
} Taker;

static void *take_all(void *arg)
{
    Taker *k = arg;
    k->ok = true;
    for (uint64_t done = 0; done < k->bytes; done += k->chunk)
        k->ok = throttle_take(k->t, k->chunk, NULL, 0) && k->ok;
    return NULL;
}

static void threads_share_one_rate(void **state)
{
    (void)state;
    Throttle *t = throttle_new(4 * MIB, 64 * KIB);
    Taker k[2] = {{.t = t, .bytes = 1 * MIB, .chunk = 64 * KIB},
                  {.t = t, .bytes = 1 * MIB, .chunk = 64 * KIB}};
    pthread_t th[2];
    double t0 = now_s();
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, take_all, &k[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    double took = now_s() - t0;
    assert_true(k[0].ok && k[1].ok);
    /* 2 MiB at 4 MiB/s with 64 KiB of burst: at least (2 MiB - 64 KiB) / 4 MiB/s */
    assert_true(took >= 0.47);
    assert_true(took < 10.0);
    assert_true(throttle_slept_us(t) >= 470000);
    throttle_free(t);
}

static void idle_time_builds_no_credit_beyond_the_burst(void **state)
{
    (void)state;
    Throttle *t = throttle_new(1 * MIB, 100 * KIB);
    struct timespec idle = {.tv_sec = 0, .tv_nsec = 300 * 1000 * 1000};
    nanosleep(&idle, NULL);
    double t0 = now_s();
    assert_true(throttle_take(t, 300 * KIB, NULL, 0)); /* 200 KiB over the burst: ~0.2 s */
    assert_true(now_s() - t0 >= 0.18);
    throttle_free(t);
}

static atomic_bool g_cancel;

static void *cancel_soon(void *arg)
{
    (void)arg;
    struct timespec d = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
    nanosleep(&d, NULL);
    atomic_store(&g_cancel, true);
    return NULL;
}

static void cancel_ends_a_wait(void **state)
{
    (void)state;
    Throttle *t = throttle_new(1 * KIB, 1 * KIB); /* 1 MiB would take 17 minutes */
    atomic_init(&g_cancel, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_soon, NULL), 0);
    double t0 = now_s();
    assert_false(throttle_take(t, 1 * MIB, &g_cancel, 0));
    assert_true(now_s() - t0 < 5.0);
    pthread_join(th, NULL);
    throttle_free(t);
}

static void deadline_ends_a_wait(void **state)
{
    (void)state;
    Throttle *t = throttle_new(1 * KIB, 1 * KIB);
    double t0 = now_s();
    assert_false(throttle_take(t, 1 * MIB, NULL, now_ms() + 100));
    double took = now_s() - t0;
    assert_true(took >= 0.09 && took < 5.0);
    throttle_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_passes_without_sleeping),
        cmocka_unit_test(threads_share_one_rate),
        cmocka_unit_test(idle_time_builds_no_credit_beyond_the_burst),
        cmocka_unit_test(cancel_ends_a_wait),
        cmocka_unit_test(deadline_ends_a_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
