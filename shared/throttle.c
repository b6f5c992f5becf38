/* throttle.c: the byte-rate limiter (throttle.h). */
#include "shared/throttle.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "shared/str.h"

struct Throttle {
    pthread_mutex_t mu;
    uint64_t rate;    /* bytes per second */
    int64_t burst_ns; /* the burst, as time at rate */
    int64_t tat_ns;   /* theoretical arrival time of the next byte (monotonic ns) */
    _Atomic uint64_t slept_us;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* bytes_ns: how long n bytes take at rate, in ns (saturating far beyond any real wait). */
static int64_t bytes_ns(uint64_t n, uint64_t rate)
{
    long double ns = (long double)n * 1e9L / (long double)rate;
    return ns > 1e18L ? (int64_t)1000000000000000000 : (int64_t)ns;
}

Throttle *throttle_new(uint64_t rate, uint64_t burst)
{
    Throttle *t = xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    t->rate = rate > 0 ? rate : 1;
    if (burst == 0) {
        burst = t->rate / 10;
        if (burst < 64 * 1024)
            burst = 64 * 1024;
    }
    t->burst_ns = bytes_ns(burst, t->rate);
    t->tat_ns = now_ns();
    atomic_init(&t->slept_us, 0);
    return t;
}

void throttle_free(Throttle *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

bool throttle_take(Throttle *t, uint64_t n, const atomic_bool *cancel, int64_t deadline_ms)
{
    int64_t now = now_ns();
    pthread_mutex_lock(&t->mu);
    if (t->tat_ns < now)
        t->tat_ns = now; /* idle time does not build up credit beyond the burst */
    t->tat_ns += bytes_ns(n, t->rate);
    int64_t until = t->tat_ns - t->burst_ns;
    pthread_mutex_unlock(&t->mu);

    bool ok = true;
    while (now < until) {
        if (cancel != NULL && atomic_load(cancel)) {
            ok = false;
            break;
        }
        if (deadline_ms > 0 && now / 1000000 >= deadline_ms) {
            ok = false;
            break;
        }
        int64_t slice = until - now;
        if (slice > (int64_t)THROTTLE_SLICE_MS * 1000000)
            slice = (int64_t)THROTTLE_SLICE_MS * 1000000;
        struct timespec ts = {.tv_sec = slice / 1000000000, .tv_nsec = slice % 1000000000};
        nanosleep(&ts, NULL);
        int64_t after = now_ns();
        atomic_fetch_add(&t->slept_us, (uint64_t)(after - now) / 1000);
        now = after;
    }
    return ok;
}

uint64_t throttle_slept_us(const Throttle *t)
{
    return atomic_load(&((Throttle *)t)->slept_us);
}
