/*
 * storcon_client.c: re-attach and validate upcalls with retry until success or shutdown.
 *
 * One Upcall object per logical call: it sends one HTTP attempt at a time (the shared client's
 * own retries are not used, because they give up), and after a failure arms a timer with
 * backoff_delay_ms and tries again. A validate of more than one batch is a sequence of requests
 * driven by the same object. Every live Upcall is on the client's list so that
 * storcon_client_stop can cancel them all.
 */
#include "pageserver/storcon_client.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "shared/http_client.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/str.h"

#include "pageserver/app.h"
#include "pageserver/defaults.h"
#include "pageserver/node_metadata.h"

typedef enum UpcallKind { UPCALL_REATTACH, UPCALL_VALIDATE } UpcallKind;

typedef struct Upcall {
    StorconClient *client;
    UpcallKind kind;
    char url[PAGESERVER_URL_MAX + 32];
    HttpCall *call;
    struct event *timer;
    int attempt;
    /* validate */
    ValidateItem *items;
    size_t n_items;
    size_t batch_start, batch_end; /* the request in flight covers [start, end) */
    ValidateDoneFn validate_done;
    /* re-attach */
    ReattachDoneFn reattach_done;
    void *arg;
    struct Upcall *next;
} Upcall;

struct StorconClient {
    PageserverApp *app;
    Upcall *live;
    bool stopped;
};

StorconClient *storcon_client_new(PageserverApp *app)
{
    StorconClient *c = xcalloc(1, sizeof(*c));
    c->app = app;
    return c;
}

static void upcall_unlink(Upcall *u)
{
    for (Upcall **p = &u->client->live; *p != NULL; p = &(*p)->next) {
        if (*p == u) {
            *p = u->next;
            break;
        }
    }
}

static void upcall_free(Upcall *u)
{
    upcall_unlink(u);
    if (u->call != NULL)
        http_call_cancel(u->call);
    if (u->timer != NULL)
        event_free(u->timer);
    free(u->items);
    free(u);
}

void storcon_client_stop(StorconClient *c)
{
    if (c == NULL)
        return;
    c->stopped = true;
    while (c->live != NULL)
        upcall_free(c->live);
}

void storcon_client_free(StorconClient *c)
{
    storcon_client_stop(c);
    free(c);
}

static void upcall_send(Upcall *u);

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    upcall_send(arg);
}

/* upcall_retry_later: log the failure (every attempt at debug, the first and every tenth at
 * warn, so a controller that is down does not flood the log) and arm the backoff timer. */
static void upcall_retry_later(Upcall *u, const Err *err)
{
    u->attempt++;
    long delay = backoff_delay_ms(u->attempt, PAGESERVER_UPCALL_BACKOFF_BASE_MS,
                                  PAGESERVER_UPCALL_BACKOFF_MAX_MS);
    if (u->attempt == 1 || u->attempt % 10 == 0)
        log_warn("upcall %s failed (attempt %d): %s; retrying in %ld ms", u->url, u->attempt,
                 err->msg, delay);
    else
        log_debug("upcall %s failed (attempt %d): %s", u->url, u->attempt, err->msg);
    metric_counter_add(u->client->app->m.upcall_retries, 1);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(u->timer, &tv);
}

bool storcon_reattach_parse(const json_t *body, ReattachTenant **out, size_t *n, Err *err)
{
    *out = NULL;
    *n = 0;
    const json_t *arr = json_is_object(body) ? json_object_get(body, "tenants") : NULL;
    if (!json_is_array(arr)) {
        err_set(err, ERR_BAD_REQUEST, "re-attach response: \"tenants\" must be an array");
        return false;
    }
    size_t count = json_array_size(arr);
    ReattachTenant *ts = xcalloc(count ? count : 1, sizeof(*ts));
    for (size_t i = 0; i < count; i++) {
        const json_t *t = json_array_get(arr, i);
        ReattachTenant *r = &ts[i];
        bool has_gen = false, has_mode = false;
        char mode[32] = "";
        r->gen = GENERATION_NONE;
        if (!json_get_tsid(t, "id", &r->tsid, true, NULL, err) ||
            !json_get_generation(t, "gen", &r->gen, false, &has_gen, err) ||
            !json_get_string(t, "mode", mode, sizeof(mode), false, &has_mode, err) ||
            !json_get_u32(t, "stripe_size", &r->stripe_size, false, &r->has_stripe_size, err)) {
            err_prefix(err, "re-attach response: tenants[%zu]: ", i);
            free(ts);
            return false;
        }
        if (!has_mode) {
            r->mode =
                r->gen == GENERATION_NONE ? LOCATION_MODE_SECONDARY : LOCATION_MODE_ATTACHED_SINGLE;
        } else if (!location_config_mode_parse(mode, &r->mode, err)) {
            err_prefix(err, "re-attach response: tenants[%zu]: ", i);
            free(ts);
            return false;
        }
        if (r->mode != LOCATION_MODE_SECONDARY && r->mode != LOCATION_MODE_DETACHED &&
            r->gen == GENERATION_NONE) {
            err_set(err, ERR_BAD_REQUEST,
                    "re-attach response: tenants[%zu]: an attached shard needs a generation", i);
            free(ts);
            return false;
        }
        if (r->has_stripe_size && r->stripe_size == 0)
            r->has_stripe_size = false;
    }
    *out = ts;
    *n = count;
    return true;
}

bool storcon_validate_apply(const json_t *body, ValidateItem *items, size_t n, Err *err)
{
    const json_t *arr = json_is_object(body) ? json_object_get(body, "tenants") : NULL;
    if (!json_is_array(arr)) {
        err_set(err, ERR_BAD_REQUEST, "validate response: \"tenants\" must be an array");
        return false;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *t = json_array_get(arr, i);
        TenantShardId id;
        bool valid = false;
        if (!json_get_tsid(t, "id", &id, true, NULL, err) ||
            !json_get_bool(t, "valid", &valid, true, NULL, err)) {
            err_prefix(err, "validate response: tenants[%zu]: ", i);
            return false;
        }
        for (size_t k = 0; k < n; k++) {
            if (tsid_eq(&items[k].tsid, &id))
                items[k].valid = valid;
        }
    }
    return true;
}

static void on_reattach_response(const HttpClientResponse *resp, void *arg)
{
    Upcall *u = arg;
    u->call = NULL;
    Err err = {0};
    json_t *body = NULL;
    ReattachTenant *ts = NULL;
    size_t n = 0;
    if (resp->status < 200 || resp->status >= 300) {
        http_response_err(resp, &err);
        upcall_retry_later(u, &err);
        return;
    }
    if (!http_response_json(resp, &body, &err) || !storcon_reattach_parse(body, &ts, &n, &err)) {
        json_decref(body);
        upcall_retry_later(u, &err);
        return;
    }
    json_decref(body);
    log_info("re-attach answered after %d retries: %zu tenant shards", u->attempt, n);
    ReattachDoneFn done = u->reattach_done;
    void *done_arg = u->arg;
    upcall_free(u);
    done(done_arg, ts, n);
    free(ts);
}

/* validate_next_batch: [batch_start, batch_end) gets at most the batch size and never the same
 * tenant shard twice, because the answer names shards, not (shard, generation) pairs. */
static void validate_next_batch(Upcall *u)
{
    size_t end = u->batch_start;
    while (end < u->n_items && end - u->batch_start < PAGESERVER_DELETION_VALIDATE_BATCH) {
        bool dup = false;
        for (size_t k = u->batch_start; k < end && !dup; k++)
            dup = tsid_eq(&u->items[k].tsid, &u->items[end].tsid);
        if (dup)
            break;
        end++;
    }
    u->batch_end = end;
}

static void on_validate_response(const HttpClientResponse *resp, void *arg)
{
    Upcall *u = arg;
    u->call = NULL;
    Err err = {0};
    json_t *body = NULL;
    if (resp->status < 200 || resp->status >= 300) {
        http_response_err(resp, &err);
        upcall_retry_later(u, &err);
        return;
    }
    ValidateItem *batch = u->items + u->batch_start;
    size_t bn = u->batch_end - u->batch_start;
    for (size_t i = 0; i < bn; i++)
        batch[i].valid = false;
    if (!http_response_json(resp, &body, &err) || !storcon_validate_apply(body, batch, bn, &err)) {
        json_decref(body);
        upcall_retry_later(u, &err);
        return;
    }
    json_decref(body);
    metric_counter_add(u->client->app->m.deletion_validations, 1);
    u->attempt = 0;
    u->batch_start = u->batch_end;
    if (u->batch_start < u->n_items) {
        validate_next_batch(u);
        upcall_send(u);
        return;
    }
    ValidateDoneFn done = u->validate_done;
    void *done_arg = u->arg;
    ValidateItem *items = u->items;
    size_t n = u->n_items;
    u->items = NULL;
    upcall_free(u);
    done(done_arg, items, n);
    free(items);
}

/* upcall_body: the JSON of the current attempt. */
static json_t *upcall_body(Upcall *u)
{
    PageserverApp *app = u->client->app;
    if (u->kind == UPCALL_REATTACH) {
        return json_pack("{s:I,s:o}", "node_id", (json_int_t)app->cfg.id, "register",
                         node_metadata_to_json(&app->metadata));
    }
    json_t *arr = json_array();
    for (size_t i = u->batch_start; i < u->batch_end; i++) {
        json_array_append_new(arr, json_pack("{s:o,s:o}", "id", json_from_tsid(&u->items[i].tsid),
                                             "gen", json_from_generation(u->items[i].gen)));
    }
    return json_pack("{s:o}", "tenants", arr);
}

static void upcall_send(Upcall *u)
{
    PageserverApp *app = u->client->app;
    if (u->client->stopped || app->http_client == NULL)
        return;
    json_t *body = upcall_body(u);
    HttpRetryPolicy once = {.max_attempts = 1};
    u->call = http_client_start_json(
        app->http_client, "POST", u->url, body, app->control_plane_token,
        PAGESERVER_UPCALL_TIMEOUT_MS, once,
        u->kind == UPCALL_REATTACH ? on_reattach_response : on_validate_response, u);
    json_decref(body);
}

static Upcall *upcall_new(StorconClient *c, UpcallKind kind, const char *name)
{
    Upcall *u = xcalloc(1, sizeof(*u));
    u->client = c;
    u->kind = kind;
    str_printf(u->url, sizeof(u->url), "%s%s", c->app->cfg.control_plane_api, name);
    u->timer = evtimer_new(c->app->base, on_retry_timer, u);
    u->next = c->live;
    c->live = u;
    return u;
}

void storcon_reattach_start(StorconClient *c, ReattachDoneFn done, void *arg)
{
    if (c->stopped)
        return;
    Upcall *u = upcall_new(c, UPCALL_REATTACH, "re-attach");
    u->reattach_done = done;
    u->arg = arg;
    log_info("re-attach: POST %s", u->url);
    upcall_send(u);
}

static void on_validate_empty(evutil_socket_t fd, short what, void *arg)
{
    Upcall *u = arg;
    ValidateDoneFn done = u->validate_done;
    void *done_arg = u->arg;
    upcall_free(u);
    done(done_arg, NULL, 0);
}

void storcon_validate_start(StorconClient *c, const ValidateItem *items, size_t n,
                            ValidateDoneFn done, void *arg)
{
    if (c->stopped)
        return;
    Upcall *u = upcall_new(c, UPCALL_VALIDATE, "validate");
    u->validate_done = done;
    u->arg = arg;
    if (n == 0) {
        event_free(u->timer);
        u->timer = evtimer_new(c->app->base, on_validate_empty, u);
        struct timeval zero = {0, 0};
        evtimer_add(u->timer, &zero);
        return;
    }
    u->items = xcalloc(n, sizeof(*items));
    memcpy(u->items, items, n * sizeof(*items));
    u->n_items = n;
    validate_next_batch(u);
    upcall_send(u);
}
