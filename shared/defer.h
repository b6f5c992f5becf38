/*
 * defer.h: the one way to run something "soon" on the event loop: fn(arg) runs on the loop
 * thread on a later loop iteration, never from inside the caller, in the order deferred.
 *
 * A LoopDefer is one zero-timeout event plus a FIFO queue; an owner (a service, a hook, a
 * reconciler) holds one and defers through it. Two ways to defer:
 *   loop_defer(d, fn, arg)          fire and forget (nodes come from a free list: no allocation
 *                                   in the steady state);
 *   loop_defer_item(d, &item)       an item embedded in the caller's object: queued at most once
 *                                   (deferring it again while queued is a no-op, which makes it a
 *                                   coalescing "kick"), and cancellable with loop_defer_cancel.
 * Calls deferred while the queue is being run go to the next iteration, so a callback that
 * defers itself again cannot starve the loop. Loop-thread only.
 */
#ifndef SHARED_DEFER_H
#define SHARED_DEFER_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"

struct event_base;
struct json_t;

typedef struct LoopDefer LoopDefer;
typedef void (*LoopDeferFn)(void *arg);
/* the two completion shapes of the domain layers (storcon's service, the pageserver's domain) */
typedef void (*LoopDeferJsonFn)(const Err *err, struct json_t *result, void *arg);
typedef void (*LoopDeferDoneFn)(const Err *err, void *arg);

/* LoopDeferItem: caller-owned; initialise with loop_defer_item_init. Fields are private. */
typedef struct LoopDeferItem {
    LoopDeferFn fn;
    void *arg;
    struct LoopDeferItem *prev, *next;
    void *list;  /* the private list holding it; NULL = not queued */
    bool pooled; /* a node of loop_defer's free list, not a caller's item */
} LoopDeferItem;

/* loop_defer_new: never NULL; the caller frees with loop_defer_free. */
LoopDefer *loop_defer_new(struct event_base *base);
/* loop_defer_free: calls not run yet never run; queued items become unqueued. Allowed from inside
 * a deferred call (the rest of that batch is dropped). NULL ok. */
void loop_defer_free(LoopDefer *d);

/* loop_defer: run fn(arg) on a later iteration. */
void loop_defer(LoopDefer *d, LoopDeferFn fn, void *arg);

void loop_defer_item_init(LoopDeferItem *item, LoopDeferFn fn, void *arg);
/* loop_defer_item: queue item unless it is queued already; true when it was queued now. The item
 * is unqueued just before its function runs, so the function may queue it again. */
bool loop_defer_item(LoopDefer *d, LoopDeferItem *item);
/* loop_defer_cancel: unqueue item (no-op when not queued); it will not run. */
void loop_defer_cancel(LoopDefer *d, LoopDeferItem *item);
bool loop_defer_item_queued(const LoopDeferItem *item);

/* loop_defer_pending: calls queued and not run yet. */
size_t loop_defer_pending(const LoopDefer *d);

/* loop_defer_json / loop_defer_done: run a completion later with a copy of err (NULL: success) and
 * result (stolen; dropped when err is set). The way a domain call answers without ever calling
 * its caller back from inside the call. */
void loop_defer_json(LoopDefer *d, LoopDeferJsonFn cb, void *arg, const Err *err,
                     struct json_t *result);
void loop_defer_done(LoopDefer *d, LoopDeferDoneFn cb, void *arg, const Err *err);

#endif
