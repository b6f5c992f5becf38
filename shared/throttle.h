/*
 * throttle.h: a byte-rate limiter shared by threads (GCRA: one "theoretical arrival time" under a
 * mutex). Each caller accounts the bytes it just moved with throttle_take, which sleeps as long as
 * the average rate since the limiter was last idle exceeds the limit, allowing a burst of `burst`
 * bytes. Sleeps run outside the lock, in slices, so that a cancel flag or a deadline ends them
 * within THROTTLE_SLICE_MS.
 *
 * Used for the pageserver's secondary downloads (RemoteOpts.throttle): every chunk a download
 * writes is taken from the one limiter, whatever the number of passes running.
 */
#ifndef SHARED_THROTTLE_H
#define SHARED_THROTTLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define THROTTLE_SLICE_MS 50

typedef struct Throttle Throttle;

/* throttle_new: a limiter of rate bytes per second (> 0) with a burst of burst bytes (0: one
 * tenth of a second at rate, at least 64 KiB). Never NULL; free with throttle_free (NULL ok). */
Throttle *throttle_new(uint64_t rate, uint64_t burst);
void throttle_free(Throttle *t);

/* throttle_take: account n bytes and sleep until the rate allows them. false when *cancel (not
 * NULL) became true or the CLOCK_MONOTONIC deadline_ms (0: none) passed while sleeping; the bytes
 * stay accounted (they were moved). */
bool throttle_take(Throttle *t, uint64_t n, const atomic_bool *cancel, int64_t deadline_ms);

/* throttle_slept_us: the total time callers have slept in throttle_take, in microseconds. */
uint64_t throttle_slept_us(const Throttle *t);

#endif
