/*
 * storcon_client.c: the upcalls to the storage controller, as a table, with retry until success
 * or shutdown.
 *
 * Each upcall is a row of UPCALLS: its path under the control-plane API, the body builder for
 * the current request, the answer handler (parse and apply; false retries the request), what to
 * do once every request was answered, and the batch size when the call carries items (a call of
 * n items is a sequence of requests of at most `batch` items; a batch never holds two items with
 * the same key, because answers name keys). A new upcall (e.g. import progress) is one more row
 * and a typed start function.
 *
 * One Upcall object per logical call: it sends one HTTP attempt at a time (the shared client's
 * own retries are not used, because they give up), and after a failure arms a timer with
 * backoff_delay_ms and tries again. Every live Upcall is on the client's list so that
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

typedef struct Upcall Upcall;

typedef struct UpcallDef {
    const char *path;   /* under --control-plane-api */
    const char *method; /* NULL = POST */
    /* final_statuses: 404 and 412 end the call (finish with u->final_err) instead of a retry:
     * the thing the call is about is gone, or our generation is stale */
    bool final_statuses;
    size_t batch; /* items per request; 0 = the call carries no items */
    size_t item_size;
    /* same_key: two items that must not share a request (NULL = none) */
    bool (*same_key)(const void *a, const void *b);
    /* body: the JSON of the current request (items [batch_start, batch_end)) */
    json_t *(*body)(Upcall *u);
    /* answered: a 2xx answer's body; false (err set) retries the request */
    bool (*answered)(Upcall *u, const json_t *body, Err *err);
    /* finish: every request answered: unlink and free u (upcall_free) and call the done function */
    void (*finish)(Upcall *u);
} UpcallDef;

struct Upcall {
    StorconClient *client;
    const UpcallDef *def;
    char url[PAGESERVER_URL_MAX + 32];
    HttpCall *call;
    struct event *timer;       /* retry backoff */
    LoopDeferItem finish_soon; /* an empty batched call finishes from the loop (app->defer) */
    int attempt;
    void *items; /* n_items of def->item_size, owned */
    size_t n_items;
    size_t batch_start, batch_end; /* the request in flight covers [start, end) */
    union {
        ReattachDoneFn reattach;
        ValidateDoneFn validate;
        ImportStatusDoneFn import;
    } done;
    json_t *body;   /* a call with a fixed body (import status and progress): owned */
    json_t *answer; /* import status: the answer, handed to done */
    Err final_err;  /* final_statuses: the 404 / 412 that ended the call */
    void *arg;
    /* re-attach: the parsed answer, handed to done */
    ReattachTenant *tenants;
    size_t n_tenants;
    struct Upcall *next;
};

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
    loop_defer_cancel(u->client->app->defer, &u->finish_soon);
    free(u->items);
    free(u->tenants);
    json_decref(u->body);
    json_decref(u->answer);
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

static void *upcall_item(const Upcall *u, size_t i)
{
    return (char *)u->items + i * u->def->item_size;
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

/* ---- the generic upcall ---- */

static void upcall_send(Upcall *u);

/* upcall_next_batch: [batch_start, batch_end) gets at most the batch size and never two items
 * with the same key. */
static void upcall_next_batch(Upcall *u)
{
    const UpcallDef *def = u->def;
    size_t end = u->batch_start;
    while (end < u->n_items && end - u->batch_start < def->batch) {
        bool dup = false;
        for (size_t k = u->batch_start; def->same_key != NULL && k < end && !dup; k++)
            dup = def->same_key(upcall_item(u, k), upcall_item(u, end));
        if (dup)
            break;
        end++;
    }
    u->batch_end = end;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    upcall_send(arg);
}

static void on_finish_soon(void *arg)
{
    Upcall *u = arg;
    u->def->finish(u);
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

/* on_response: a 2xx answer that the row accepts ends the request; the next batch follows, or
 * the call finishes. */
static void on_response(const HttpClientResponse *resp, void *arg)
{
    Upcall *u = arg;
    u->call = NULL;
    Err err = {0};
    json_t *body = NULL;
    if (resp->status < 200 || resp->status >= 300) {
        http_response_err(resp, &err);
        if (u->def->final_statuses && (resp->status == 404 || resp->status == 412)) {
            u->final_err = err;
            u->def->finish(u);
            return;
        }
        upcall_retry_later(u, &err);
        return;
    }
    if (!http_response_json(resp, &body, &err) || !u->def->answered(u, body, &err)) {
        json_decref(body);
        upcall_retry_later(u, &err);
        return;
    }
    json_decref(body);
    u->batch_start = u->batch_end;
    if (u->batch_start < u->n_items) {
        u->attempt = 0;
        upcall_next_batch(u);
        upcall_send(u);
        return;
    }
    u->def->finish(u);
}

static void upcall_send(Upcall *u)
{
    PageserverApp *app = u->client->app;
    if (u->client->stopped || app->http_client == NULL)
        return;
    json_t *body = u->def->body(u);
    HttpRetryPolicy once = {.max_attempts = 1};
    u->call = http_client_start_json(app->http_client, u->def->method ? u->def->method : "POST",
                                     u->url, body, app->control_plane_token,
                                     PAGESERVER_UPCALL_TIMEOUT_MS, once, on_response, u);
    json_decref(body);
}

/* upcall_start: a live Upcall for def with a copy of items[0..n); NULL after stop. A batched call
 * of no items finishes from a zero-delay timer, never inside the caller. */
static Upcall *upcall_start(StorconClient *c, const UpcallDef *def, const void *items, size_t n)
{
    if (c->stopped)
        return NULL;
    Upcall *u = xcalloc(1, sizeof(*u));
    u->client = c;
    u->def = def;
    str_printf(u->url, sizeof(u->url), "%s%s", c->app->cfg.control_plane_api, def->path);
    u->timer = evtimer_new(c->app->base, on_timer, u);
    loop_defer_item_init(&u->finish_soon, on_finish_soon, u);
    u->next = c->live;
    c->live = u;
    if (n > 0) {
        u->items = xcalloc(n, def->item_size);
        memcpy(u->items, items, n * def->item_size);
        u->n_items = n;
    }
    return u;
}

/* upcall_go: send the first request (after the caller filled done and arg). */
static void upcall_go(Upcall *u)
{
    if (u->def->batch > 0 && u->n_items == 0) {
        (void)loop_defer_item(u->client->app->defer, &u->finish_soon);
        return;
    }
    if (u->def->batch > 0)
        upcall_next_batch(u);
    upcall_send(u);
}

/* ---- re-attach ---- */

static json_t *reattach_body(Upcall *u)
{
    PageserverApp *app = u->client->app;
    return json_pack("{s:I,s:o}", "node_id", (json_int_t)app->cfg.id, "register",
                     node_metadata_to_json(&app->metadata));
}

static bool reattach_answered(Upcall *u, const json_t *body, Err *err)
{
    if (!storcon_reattach_parse(body, &u->tenants, &u->n_tenants, err))
        return false;
    log_info("re-attach answered after %d retries: %zu tenant shards", u->attempt, u->n_tenants);
    return true;
}

static void reattach_finish(Upcall *u)
{
    ReattachDoneFn done = u->done.reattach;
    void *arg = u->arg;
    ReattachTenant *ts = u->tenants;
    size_t n = u->n_tenants;
    u->tenants = NULL;
    upcall_free(u);
    done(arg, ts, n);
    free(ts);
}

/* ---- validate ---- */

static bool validate_same_key(const void *a, const void *b)
{
    return tsid_eq(&((const ValidateItem *)a)->tsid, &((const ValidateItem *)b)->tsid);
}

static json_t *validate_body(Upcall *u)
{
    json_t *arr = json_array();
    for (size_t i = u->batch_start; i < u->batch_end; i++) {
        const ValidateItem *it = upcall_item(u, i);
        json_array_append_new(arr, json_pack("{s:o,s:o}", "id", json_from_tsid(&it->tsid), "gen",
                                             json_from_generation(it->gen)));
    }
    return json_pack("{s:o}", "tenants", arr);
}

static bool validate_answered(Upcall *u, const json_t *body, Err *err)
{
    ValidateItem *batch = upcall_item(u, u->batch_start);
    size_t bn = u->batch_end - u->batch_start;
    for (size_t i = 0; i < bn; i++)
        batch[i].valid = false;
    if (!storcon_validate_apply(body, batch, bn, err))
        return false;
    metric_counter_add(u->client->app->m.deletion_validations, 1);
    return true;
}

static void validate_finish(Upcall *u)
{
    ValidateDoneFn done = u->done.validate;
    void *arg = u->arg;
    ValidateItem *items = u->items;
    size_t n = u->n_items;
    u->items = NULL;
    upcall_free(u);
    done(arg, items, n);
    free(items);
}

/* ---- import status and progress ---- */

static json_t *fixed_body(Upcall *u)
{
    return json_incref(u->body);
}

static bool import_answered(Upcall *u, const json_t *body, Err *err)
{
    (void)err;
    json_decref(u->answer);
    u->answer = json_incref((json_t *)body);
    return true;
}

static void import_finish(Upcall *u)
{
    ImportStatusDoneFn done = u->done.import;
    void *arg = u->arg;
    json_t *answer = u->answer;
    u->answer = NULL;
    Err err = u->final_err;
    upcall_free(u);
    done(arg, err_is_set(&err) ? &err : NULL, answer);
    json_decref(answer);
}

/* ---- the table ---- */

enum {
    UPCALL_REATTACH,
    UPCALL_VALIDATE,
    UPCALL_IMPORT_STATUS,
    UPCALL_IMPORT_PROGRESS,
    UPCALL_COUNT
};

static const UpcallDef UPCALLS[UPCALL_COUNT] = {
    [UPCALL_REATTACH] = {.path = "re-attach",
                         .body = reattach_body,
                         .answered = reattach_answered,
                         .finish = reattach_finish},
    [UPCALL_VALIDATE] = {.path = "validate",
                         .batch = PAGESERVER_DELETION_VALIDATE_BATCH,
                         .item_size = sizeof(ValidateItem),
                         .same_key = validate_same_key,
                         .body = validate_body,
                         .answered = validate_answered,
                         .finish = validate_finish},
    [UPCALL_IMPORT_STATUS] = {.path = "timeline_import_status",
                              .method = "GET",
                              .final_statuses = true,
                              .body = fixed_body,
                              .answered = import_answered,
                              .finish = import_finish},
    [UPCALL_IMPORT_PROGRESS] = {.path = "timeline_import_status",
                                .final_statuses = true,
                                .body = fixed_body,
                                .answered = import_answered,
                                .finish = import_finish},
};

void storcon_reattach_start(StorconClient *c, ReattachDoneFn done, void *arg)
{
    Upcall *u = upcall_start(c, &UPCALLS[UPCALL_REATTACH], NULL, 0);
    if (u == NULL)
        return;
    u->done.reattach = done;
    u->arg = arg;
    log_info("re-attach: POST %s", u->url);
    upcall_go(u);
}

void storcon_validate_start(StorconClient *c, const ValidateItem *items, size_t n,
                            ValidateDoneFn done, void *arg)
{
    Upcall *u = upcall_start(c, &UPCALLS[UPCALL_VALIDATE], items, n);
    if (u == NULL)
        return;
    u->done.validate = done;
    u->arg = arg;
    upcall_go(u);
}

static StorconCall *import_start(StorconClient *c, int row, const TenantShardId *tsid,
                                 const TimelineId *tl, Generation gen, const json_t *status,
                                 ImportStatusDoneFn done, void *arg)
{
    Upcall *u = upcall_start(c, &UPCALLS[row], NULL, 0);
    if (u == NULL)
        return NULL;
    u->body = json_pack("{s:o,s:o,s:o}", "tenant_shard_id", json_from_tsid(tsid), "timeline_id",
                        json_from_timeline_id(tl), "generation", json_from_generation(gen));
    if (status != NULL)
        json_set_new(u->body, "status", json_incref((json_t *)status));
    u->done.import = done;
    u->arg = arg;
    upcall_go(u);
    return (StorconCall *)u;
}

StorconCall *storcon_import_status_start(StorconClient *c, const TenantShardId *tsid,
                                         const TimelineId *tl, Generation gen,
                                         ImportStatusDoneFn done, void *arg)
{
    return import_start(c, UPCALL_IMPORT_STATUS, tsid, tl, gen, NULL, done, arg);
}

StorconCall *storcon_import_progress_start(StorconClient *c, const TenantShardId *tsid,
                                           const TimelineId *tl, Generation gen,
                                           const json_t *status, ImportStatusDoneFn done, void *arg)
{
    return import_start(c, UPCALL_IMPORT_PROGRESS, tsid, tl, gen, status, done, arg);
}

void storcon_call_cancel(StorconClient *c, StorconCall *call)
{
    for (Upcall *u = c->live; u != NULL; u = u->next) {
        if ((StorconCall *)u == call) {
            upcall_free(u);
            return;
        }
    }
}
