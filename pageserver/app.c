/* app.c: deferred completions for the domain modules (app.h). */
#include "pageserver/app.h"

#include <stdlib.h>

#include <event2/event.h>

#include "shared/str.h"

typedef struct Deferred {
    void (*fn)(void *arg);
    void *arg;
    struct event *ev;
} Deferred;

static void deferred_cb(evutil_socket_t fd, short what, void *arg)
{
    Deferred *d = arg;
    event_free(d->ev);
    void (*fn)(void *) = d->fn;
    void *fn_arg = d->arg;
    free(d);
    fn(fn_arg);
}

void pageserver_defer(PageserverApp *app, void (*fn)(void *arg), void *arg)
{
    Deferred *d = xcalloc(1, sizeof(*d));
    d->fn = fn;
    d->arg = arg;
    d->ev = event_new(app->base, -1, 0, deferred_cb, d);
    event_active(d->ev, 0, 0);
}

typedef struct DeferredResult {
    PageserverJsonFn json_cb;
    PageserverDoneFn done_cb;
    void *arg;
    json_t *result;
    Err err;
    bool failed;
} DeferredResult;

static void deferred_result_cb(void *arg)
{
    DeferredResult *d = arg;
    const Err *err = d->failed ? &d->err : NULL;
    if (d->json_cb != NULL)
        d->json_cb(err, d->result, d->arg);
    else
        d->done_cb(err, d->arg);
    free(d);
}

static void defer_result(PageserverApp *app, PageserverJsonFn json_cb, PageserverDoneFn done_cb,
                         void *arg, const Err *err, json_t *result)
{
    DeferredResult *d = xcalloc(1, sizeof(*d));
    d->json_cb = json_cb;
    d->done_cb = done_cb;
    d->arg = arg;
    if (err != NULL) {
        d->err = *err;
        d->failed = true;
        json_decref(result);
    } else {
        d->result = result;
    }
    pageserver_defer(app, deferred_result_cb, d);
}

void pageserver_defer_json(PageserverApp *app, PageserverJsonFn cb, void *arg, const Err *err,
                           json_t *result)
{
    defer_result(app, cb, NULL, arg, err, result);
}

void pageserver_defer_done(PageserverApp *app, PageserverDoneFn cb, void *arg, const Err *err)
{
    defer_result(app, NULL, cb, arg, err, NULL);
}
