/* wait_lsn.c: waiting for timelines of an attached shard to reach LSNs (wait_lsn.h). */
#include "pageserver/wait_lsn.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "shared/json.h"
#include "shared/str.h"
#include "shared/units.h"

#include "pageserver/slot.h"
#include "pageserver/tenant.h"
#include "pageserver/timeline.h"

#define WAIT_LSN_POLL_MS 20

/* timeout_decode: integer ms, a duration string, or {"secs", "nanos"}. */
static bool timeout_decode(const json_t *v, long *out, Err *err)
{
    uint64_t ms = 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        ms = (uint64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        if (!duration_parse_ms(json_string_value(v), &ms, err))
            return false;
    } else if (json_is_object(v)) {
        uint64_t secs = 0, nanos = 0;
        if (!json_get_u64(v, "secs", &secs, true, NULL, err) ||
            !json_get_u64(v, "nanos", &nanos, false, NULL, err))
            return false;
        ms = secs > (uint64_t)WAIT_LSN_MAX_MS ? (uint64_t)WAIT_LSN_MAX_MS
                                              : secs * 1000 + nanos / 1000000;
    } else {
        err_set(err, ERR_BAD_REQUEST,
                "expected milliseconds, a duration string or {\"secs\", \"nanos\"}");
        return false;
    }
    *out = ms > (uint64_t)WAIT_LSN_MAX_MS ? WAIT_LSN_MAX_MS : (long)ms;
    return true;
}

bool wait_lsn_request_decode(const json_t *body, WaitLsnRequest *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(body)) {
        err_set(err, ERR_BAD_REQUEST, "wait_lsn: expected a JSON object");
        return false;
    }
    const json_t *timeout = json_object_get(body, "timeout");
    if (timeout == NULL) {
        err_set(err, ERR_BAD_REQUEST, "wait_lsn: missing field \"timeout\"");
        return false;
    }
    if (!timeout_decode(timeout, &out->timeout_ms, err)) {
        err_prefix(err, "wait_lsn: timeout: ");
        return false;
    }
    size_t n = json_object_size(body) - 1;
    if (n > WAIT_LSN_MAX_TIMELINES) {
        err_set(err, ERR_BAD_REQUEST, "wait_lsn: more than %d timelines", WAIT_LSN_MAX_TIMELINES);
        return false;
    }
    out->targets = xcalloc(n ? n : 1, sizeof(*out->targets));
    const char *key = NULL;
    json_t *v = NULL;
    json_object_foreach((json_t *)body, key, v)
    {
        if (strcmp(key, "timeout") == 0)
            continue;
        WaitLsnTarget *t = &out->targets[out->n];
        if (!timeline_id_parse(key, &t->timeline, err) || !json_is_string(v) ||
            !lsn_parse(json_string_value(v), &t->lsn, err)) {
            if (!err_is_set(err))
                err_set(err, ERR_BAD_REQUEST, "expected an LSN string \"X/X\"");
            err_prefix(err, "wait_lsn: \"%.40s\": ", key);
            wait_lsn_request_finish(out);
            return false;
        }
        out->n++;
    }
    return true;
}

void wait_lsn_request_finish(WaitLsnRequest *r)
{
    free(r->targets);
    memset(r, 0, sizeof(*r));
}

typedef struct LsnWaiter {
    struct TenantManager *mgr;
    TenantShardId tsid;
    WaitLsnRequest req;
    int64_t deadline_ms;
    struct event *ev;
    WaitLsnFn cb;
    void *arg;
} LsnWaiter;

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* check: false with err set (404 and friends), else *reached. */
static bool check(const LsnWaiter *w, bool *reached, Err *err)
{
    TenantSlot *slot = NULL;
    if (!tenant_manager_readable_slot(w->mgr, &w->tsid, &slot, err))
        return false;
    *reached = true;
    for (size_t i = 0; i < w->req.n; i++) {
        const Timeline *tl = slot_find_timeline(slot, &w->req.targets[i].timeline);
        if (tl == NULL || !timeline_is_served(tl)) {
            char id[ID_STR_SIZE];
            timeline_id_format(&w->req.targets[i].timeline, id);
            err_set(err, ERR_NOT_FOUND, "timeline %s not found", id);
            return false;
        }
        if (tl->last_record_lsn < w->req.targets[i].lsn)
            *reached = false;
    }
    return true;
}

static void waiter_end(LsnWaiter *w, const Err *err, bool reached)
{
    if (w->ev != NULL)
        event_free(w->ev);
    w->cb(err, reached, w->arg);
    wait_lsn_request_finish(&w->req);
    free(w);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    LsnWaiter *w = arg;
    Err err;
    err_clear(&err);
    bool reached = false;
    if (!check(w, &reached, &err))
        waiter_end(w, &err, false);
    else if (reached || mono_ms() >= w->deadline_ms || w->mgr->stopping)
        waiter_end(w, NULL, reached);
}

void tenant_wait_lsn(struct TenantManager *mgr, const TenantShardId *tsid, const WaitLsnRequest *r,
                     WaitLsnFn cb, void *arg)
{
    LsnWaiter *w = xcalloc(1, sizeof(*w));
    w->mgr = mgr;
    w->tsid = *tsid;
    w->req = *r;
    w->req.targets = xcalloc(r->n ? r->n : 1, sizeof(*r->targets));
    memcpy(w->req.targets, r->targets, r->n * sizeof(*r->targets));
    w->deadline_ms = mono_ms() + r->timeout_ms;
    w->cb = cb;
    w->arg = arg;
    /* the first check runs from the loop too: the callback never runs inside this call */
    w->ev = event_new(mgr->app->base, -1, EV_PERSIST, on_tick, w);
    struct timeval tick = {0, WAIT_LSN_POLL_MS * 1000};
    event_add(w->ev, &tick);
    event_active(w->ev, EV_TIMEOUT, 0);
}
