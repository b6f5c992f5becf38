/*
 * defer.c: deferred calls on the event loop (see defer.h).
 *
 * Two intrusive FIFO lists: `queue` collects what is deferred; the event callback moves the whole
 * queue to `batch` and runs it, so what is deferred meanwhile waits for the next iteration (the
 * zero timer is re-armed). Cancelling unlinks an item from whichever list holds it. A deferred
 * call may free the LoopDefer; the drain learns it through `freed` and stops.
 */
#include <stdlib.h>

#include <event2/event.h>
#include <jansson.h>

#include "shared/log.h"
#include "shared/str.h"

#include "shared/defer.h"

typedef struct DeferList {
    LoopDeferItem *head, *tail;
} DeferList;

struct LoopDefer {
    struct event *ev;
    DeferList queue;
    DeferList batch;     /* being run */
    LoopDeferItem *free; /* pooled nodes, linked by next */
    size_t pending;
    bool *freed; /* set while a batch runs */
};

static void list_push(DeferList *l, LoopDeferItem *it)
{
    it->list = l;
    it->next = NULL;
    it->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
}

static void list_unlink(DeferList *l, LoopDeferItem *it)
{
    if (it->prev != NULL)
        it->prev->next = it->next;
    else
        l->head = it->next;
    if (it->next != NULL)
        it->next->prev = it->prev;
    else
        l->tail = it->prev;
    it->prev = it->next = NULL;
    it->list = NULL;
}

static void pooled_release(LoopDefer *d, LoopDeferItem *it)
{
    it->next = d->free;
    d->free = it;
}

static void defer_arm(LoopDefer *d)
{
    static const struct timeval zero = {0, 0};
    if (evtimer_add(d->ev, &zero) != 0) {
        log_error("loop_defer: evtimer_add failed");
        abort(); /* cannot happen for a timer; like an allocation failure */
    }
}

static void defer_event_cb(evutil_socket_t fd, short what, void *arg)
{
    LoopDefer *d = arg;
    d->batch = d->queue;
    d->queue.head = d->queue.tail = NULL;
    for (LoopDeferItem *it = d->batch.head; it != NULL; it = it->next)
        it->list = &d->batch;
    bool freed = false;
    d->freed = &freed;
    LoopDeferItem *it;
    while ((it = d->batch.head) != NULL) {
        list_unlink(&d->batch, it);
        d->pending--;
        LoopDeferFn fn = it->fn;
        void *fn_arg = it->arg;
        if (it->pooled)
            pooled_release(d, it);
        fn(fn_arg);
        if (freed)
            return;
    }
    d->freed = NULL;
}

LoopDefer *loop_defer_new(struct event_base *base)
{
    LoopDefer *d = xcalloc(1, sizeof(*d));
    d->ev = evtimer_new(base, defer_event_cb, d);
    if (d->ev == NULL) {
        log_error("loop_defer: evtimer_new failed");
        abort(); /* like an allocation failure */
    }
    return d;
}

static void drop_list(DeferList *l)
{
    LoopDeferItem *it;
    while ((it = l->head) != NULL) {
        list_unlink(l, it);
        if (it->pooled)
            free(it);
    }
}

void loop_defer_free(LoopDefer *d)
{
    if (d == NULL)
        return;
    if (d->freed != NULL)
        *d->freed = true;
    drop_list(&d->queue);
    drop_list(&d->batch);
    while (d->free != NULL) {
        LoopDeferItem *next = d->free->next;
        free(d->free);
        d->free = next;
    }
    event_free(d->ev);
    free(d);
}

void loop_defer_item_init(LoopDeferItem *item, LoopDeferFn fn, void *arg)
{
    item->fn = fn;
    item->arg = arg;
    item->prev = item->next = NULL;
    item->list = NULL;
    item->pooled = false;
}

bool loop_defer_item(LoopDefer *d, LoopDeferItem *item)
{
    if (item->list != NULL)
        return false;
    list_push(&d->queue, item);
    d->pending++;
    defer_arm(d);
    return true;
}

void loop_defer(LoopDefer *d, LoopDeferFn fn, void *arg)
{
    LoopDeferItem *it = d->free;
    if (it != NULL)
        d->free = it->next;
    else
        it = xmalloc(sizeof(*it));
    loop_defer_item_init(it, fn, arg);
    it->pooled = true;
    (void)loop_defer_item(d, it);
}

void loop_defer_cancel(LoopDefer *d, LoopDeferItem *item)
{
    if (item->list == NULL)
        return;
    list_unlink(item->list, item);
    d->pending--;
}

bool loop_defer_item_queued(const LoopDeferItem *item)
{
    return item->list != NULL;
}

size_t loop_defer_pending(const LoopDefer *d)
{
    return d->pending;
}

typedef struct DeferredCompletion {
    LoopDeferJsonFn json_cb;
    LoopDeferDoneFn done_cb;
    void *arg;
    json_t *result;
    Err err;
    bool failed;
} DeferredCompletion;

static void completion_run(void *arg)
{
    DeferredCompletion *c = arg;
    const Err *err = c->failed ? &c->err : NULL;
    if (c->json_cb != NULL)
        c->json_cb(err, c->result, c->arg);
    else
        c->done_cb(err, c->arg);
    free(c);
}

static void defer_completion(LoopDefer *d, LoopDeferJsonFn json_cb, LoopDeferDoneFn done_cb,
                             void *arg, const Err *err, json_t *result)
{
    DeferredCompletion *c = xcalloc(1, sizeof(*c));
    c->json_cb = json_cb;
    c->done_cb = done_cb;
    c->arg = arg;
    if (err != NULL) {
        c->err = *err;
        c->failed = true;
        json_decref(result);
    } else {
        c->result = result;
    }
    loop_defer(d, completion_run, c);
}

void loop_defer_json(LoopDefer *d, LoopDeferJsonFn cb, void *arg, const Err *err, json_t *result)
{
    defer_completion(d, cb, NULL, arg, err, result);
}

void loop_defer_done(LoopDefer *d, LoopDeferDoneFn cb, void *arg, const Err *err)
{
    defer_completion(d, NULL, cb, arg, err, NULL);
}
