/*
 * loop_util.h: helpers for unit tests that drive an event loop until callbacks have run.
 * Header-only (static functions) because every test is its own executable.
 */
#ifndef TESTS_UNIT_LOOP_UTIL_H
#define TESTS_UNIT_LOOP_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

static void loop_util_expire_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* loop_run_until: run base until *counter reaches target or timeout_ms passes; true if reached. */
static bool loop_run_until(struct event_base *base, const int *counter, int target, long timeout_ms)
{
    bool expired = false;
    struct event *wd = evtimer_new(base, loop_util_expire_cb, &expired);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(wd, &tv);
    while (*counter < target && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(wd);
    return *counter >= target;
}

/* loop_run_for: run base for ms milliseconds. */
static inline void loop_run_for(struct event_base *base, long ms)
{
    static const int never = 0;
    (void)loop_run_until(base, &never, INT32_MAX, ms);
}

#endif
