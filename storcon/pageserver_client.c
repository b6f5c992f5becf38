/*
 * pageserver_client.c: typed pageserver management calls (see pageserver_client.h).
 *
 * Each call is a small context linked into its PageserverClient: it starts one HttpCall (which
 * does the retrying), and when that completes decodes the body according to the operation into
 * a PageserverResult, unlinks itself, runs the caller's callback and frees everything the result
 * pointed to. Failures found before any request (a malformed passthrough path) and calls failed by
 * pageserver_client_cancel_node are delivered through the client's LoopDefer, so that callbacks
 * never run inside a start function or inside the cancellation.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "shared/defer.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/str.h"

#include "storcon/pageserver_client.h"

/* Defaults (to move to storcon/defaults.h): none yet; timeouts and retry policies are the
 * caller's (reconciler, heartbeats, API), per call. */

struct PageserverCall {
    PageserverClient *pc;
    PageserverCall *prev, *next; /* in pc->calls */
    PageserverOp op;
    TenantShardId tsid;
    NodeId node;             /* the target's node (NODE_ID_NONE: not cancellable by node) */
    ShardCount new_count;    /* SHARD_SPLIT: the count the children must have */
    HttpCall *http;          /* while the request runs */
    struct ListParse *parse; /* LOCATION_CONFIG_LIST: while its answer is scanned on a worker */
    LoopDeferItem fail;      /* delivers a local failure from the loop */
    Err fail_err;
    bool in_callback;
    PageserverDone done;
    void *arg;
};

struct PageserverClient {
    HttpClient *http;
    WorkerPool *workers; /* NULL: answers are decoded on the loop */
    LoopDefer *defer;    /* local failures are delivered through it */
    PageserverCall *calls;
    size_t inflight;
};

static const char *const OP_NAMES[PAGESERVER_OP_COUNT] = {
    [PAGESERVER_OP_LOCATION_CONFIG_PUT] = "location_config_put",
    [PAGESERVER_OP_LOCATION_CONFIG_GET] = "location_config_get",
    [PAGESERVER_OP_LOCATION_CONFIG_LIST] = "location_config_list",
    [PAGESERVER_OP_TIMELINE_CREATE] = "timeline_create",
    [PAGESERVER_OP_TIMELINE_DELETE] = "timeline_delete",
    [PAGESERVER_OP_TENANT_DELETE] = "tenant_delete",
    [PAGESERVER_OP_UTILIZATION] = "utilization",
    [PAGESERVER_OP_SECONDARY_DOWNLOAD] = "secondary_download",
    [PAGESERVER_OP_WAIT_LSN] = "wait_lsn",
    [PAGESERVER_OP_SHARD_SPLIT] = "shard_split",
    [PAGESERVER_OP_ACTIVATE_POST_IMPORT] = "activate_post_import",
    [PAGESERVER_OP_PASSTHROUGH_GET] = "passthrough_get",
};

const char *pageserver_op_name(PageserverOp op)
{
    if ((int)op < 0 || op >= PAGESERVER_OP_COUNT)
        return "?";
    return OP_NAMES[op];
}

const char *pageserver_timeline_delete_name(PageserverTimelineDelete d)
{
    switch (d) {
    case PAGESERVER_TIMELINE_DELETE_STARTED:
        return "started";
    case PAGESERVER_TIMELINE_DELETE_GONE:
        return "gone";
    case PAGESERVER_TIMELINE_DELETE_IN_PROGRESS:
        return "in_progress";
    case PAGESERVER_TIMELINE_DELETE_PRECONDITION:
        return "precondition";
    case PAGESERVER_TIMELINE_DELETE_COUNT:
    default:
        return "?";
    }
}

PageserverClient *pageserver_client_new(struct event_base *base, HttpClient *http)
{
    PageserverClient *pc = xcalloc(1, sizeof(*pc));
    pc->http = http;
    pc->defer = loop_defer_new(base);
    return pc;
}

static void calls_unlink(PageserverClient *pc, PageserverCall *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        pc->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    pc->inflight--;
}

static void call_destroy(PageserverCall *call)
{
    if (call->pc != NULL)
        loop_defer_cancel(call->pc->defer, &call->fail);
    free(call);
}

static void list_parse_detach(PageserverCall *call);

/* call_abort: take a call off its client and stop whatever it waits for, without a callback. */
static void call_abort(PageserverCall *call)
{
    if (call->http != NULL) {
        http_call_cancel(call->http);
        call->http = NULL;
    }
    list_parse_detach(call);
    calls_unlink(call->pc, call);
    call_destroy(call);
}

void pageserver_client_free(PageserverClient *pc)
{
    if (pc == NULL)
        return;
    while (pc->calls != NULL)
        call_abort(pc->calls);
    loop_defer_free(pc->defer);
    free(pc);
}

void pageserver_client_set_workers(PageserverClient *pc, WorkerPool *workers)
{
    pc->workers = workers;
}

size_t pageserver_client_inflight(const PageserverClient *pc)
{
    return pc->inflight;
}

void pageserver_call_cancel(PageserverCall *call)
{
    if (call == NULL || call->in_callback)
        return;
    call_abort(call);
}

static PageserverCall *call_new(PageserverClient *pc, PageserverOp op, const TenantShardId *tsid,
                                PageserverDone done, void *arg)
{
    PageserverCall *call = xcalloc(1, sizeof(*call));
    call->pc = pc;
    call->op = op;
    call->node = NODE_ID_NONE;
    if (tsid != NULL)
        call->tsid = *tsid;
    call->done = done;
    call->arg = arg;
    call->next = pc->calls;
    if (pc->calls)
        pc->calls->prev = call;
    pc->calls = call;
    pc->inflight++;
    return call;
}

/* call_finish: unlink, run the callback once, free. The call is unlinked before the callback so
 * that the callback may free the whole PageserverClient. */
static void call_finish(PageserverCall *call, const PageserverResult *res)
{
    calls_unlink(call->pc, call);
    call->pc = NULL;
    call->in_callback = true;
    call->done(res, call->arg);
    call_destroy(call);
}

static void fail_event_cb(void *arg)
{
    PageserverCall *call = arg;
    PageserverResult res;
    memset(&res, 0, sizeof(res));
    res.op = call->op;
    res.tsid = call->tsid;
    res.err = call->fail_err;
    call_finish(call, &res);
}

/* call_fail_async: deliver a failure found before any request, or a cancellation, on a later loop
 * iteration. */
static PageserverCall *call_fail_async(PageserverCall *call, const Err *err)
{
    call->fail_err = *err;
    loop_defer_item_init(&call->fail, fail_event_cb, call);
    (void)loop_defer_item(call->pc->defer, &call->fail);
    return call;
}

/* pageserver_client_cancel_node: see the header. The list holds the newest call first; it is
 * walked from its tail so that the failures are delivered in the order the calls started. */
size_t pageserver_client_cancel_node(PageserverClient *pc, NodeId node, const Err *err)
{
    if (pc == NULL || node == NODE_ID_NONE)
        return 0;
    PageserverCall *call = pc->calls;
    while (call != NULL && call->next != NULL)
        call = call->next;
    size_t n = 0;
    for (; call != NULL; call = call->prev) {
        if (call->node != node || call->http == NULL)
            continue; /* another node, or its answer is on its way (a deferred failure, a scan) */
        http_call_cancel(call->http);
        call->http = NULL;
        (void)call_fail_async(call, err);
        n++;
    }
    if (n > 0)
        log_info("pageserver node %llu: %zu calls cancelled: %s", (unsigned long long)node, n,
                 err->msg);
    return n;
}

/* ---- decoding, one function per operation; each fills res (ok) or err ---- */

/* bad_body: ERR_INTERNAL naming the call and what was wrong with a 2xx body. */
static void bad_body(const HttpClientResponse *resp, const Err *why, Err *err)
{
    err_set(err, ERR_INTERNAL, "%s %s: %d with an unexpected body: %s", resp->method, resp->url,
            resp->status, why->msg);
}

static bool decode_json(const HttpClientResponse *resp, json_t **out, Err *err)
{
    Err why;
    json_error_t jerr;
    *out = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, &jerr);
    if (*out == NULL) {
        err_set(&why, ERR_INTERNAL, "invalid JSON: %s", jerr.text);
        bad_body(resp, &why, err);
        return false;
    }
    return true;
}

static bool decode_object(const HttpClientResponse *resp, json_t **out, Err *err)
{
    if (!decode_json(resp, out, err))
        return false;
    if (!json_is_object(*out)) {
        Err why;
        err_set(&why, ERR_INTERNAL, "not a JSON object");
        bad_body(resp, &why, err);
        json_decref(*out);
        *out = NULL;
        return false;
    }
    return true;
}

/* decode_location_put: {"shards": [{"shard_id", "node_id"}], "stripe_size": n or null}. */
static bool decode_location_put(const HttpClientResponse *resp, json_t *doc, PageserverResult *res,
                                Err *err)
{
    Err why;
    json_t *shards = json_object_get(doc, "shards");
    if (!json_is_array(shards)) {
        err_set(&why, ERR_INTERNAL, "\"shards\" is not an array");
        goto bad;
    }
    size_t n = json_array_size(shards);
    res->location_put.shards = xcalloc(n ? n : 1, sizeof(PageserverShardNode));
    res->location_put.n_shards = n;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(shards, i);
        PageserverShardNode *dst = &res->location_put.shards[i];
        uint64_t node = 0;
        if (!json_get_tsid(s, "shard_id", &dst->shard_id, true, NULL, &why) ||
            !json_get_u64(s, "node_id", &node, true, NULL, &why)) {
            err_prefix(&why, "shards[%zu]: ", i);
            goto bad;
        }
        dst->node_id = node;
    }
    bool present = false;
    if (!json_get_u32(doc, "stripe_size", &res->location_put.stripe_size, false, &present, &why))
        goto bad;
    res->location_put.has_stripe_size = present;
    return true;
bad:
    bad_body(resp, &why, err);
    return false;
}

/* decode_location_list: {"tenant_shards": [[tsid, LocationConfig or null], ...]}, scanned
 * without a JSON tree (storcon/location_list.h). */
static bool decode_location_list(const HttpClientResponse *resp, PageserverResult *res, Err *err)
{
    Err why;
    LocationList list;
    if (!location_list_scan(resp->body, resp->body_len, &list, &why)) {
        bad_body(resp, &why, err);
        return false;
    }
    res->location_list.locations = list.entries;
    res->location_list.n_locations = list.n;
    return true;
}

/* decode_utilization: utilization_score required, the rest optional. */
static bool decode_utilization(const HttpClientResponse *resp, json_t *doc, PageserverResult *res,
                               Err *err)
{
    Err why;
    PageserverUtilization *u = &res->utilization;
    if (!json_get_u64(doc, "utilization_score", &u->utilization_score, true, NULL, &why) ||
        !json_get_u64(doc, "disk_usage_bytes", &u->disk_usage_bytes, false, NULL, &why) ||
        !json_get_u64(doc, "free_space_bytes", &u->free_space_bytes, false, NULL, &why) ||
        !json_get_u64(doc, "disk_wanted_bytes", &u->disk_wanted_bytes, false, NULL, &why) ||
        !json_get_u64(doc, "disk_usable_pct", &u->disk_usable_pct, false, NULL, &why) ||
        !json_get_u64(doc, "shard_count", &u->shard_count, false, NULL, &why) ||
        !json_get_u64(doc, "max_shard_count", &u->max_shard_count, false, NULL, &why) ||
        !json_get_string(doc, "captured_at", u->captured_at, sizeof(u->captured_at), false, NULL,
                         &why)) {
        bad_body(resp, &why, err);
        return false;
    }
    return true;
}

/* decode_secondary_progress: every field optional (a download that has not found a heatmap yet
 * reports little). */
static bool decode_secondary_progress(const HttpClientResponse *resp, json_t *doc,
                                      PageserverResult *res, Err *err)
{
    Err why;
    PageserverSecondaryProgress *p = &res->secondary_download.progress;
    if (!json_get_string(doc, "heatmap_mtime", p->heatmap_mtime, sizeof(p->heatmap_mtime), false,
                         NULL, &why) ||
        !json_get_u64(doc, "layers_downloaded", &p->layers_downloaded, false, NULL, &why) ||
        !json_get_u64(doc, "layers_total", &p->layers_total, false, NULL, &why) ||
        !json_get_u64(doc, "bytes_downloaded", &p->bytes_downloaded, false, NULL, &why) ||
        !json_get_u64(doc, "bytes_total", &p->bytes_total, false, NULL, &why)) {
        bad_body(resp, &why, err);
        return false;
    }
    return true;
}

/* decode_split: {"new_shards": [tsid, ...]}, each a child of the parent's tenant with the count
 * that was asked for (anything else would make the caller record wrong shards). */
static bool decode_split(const HttpClientResponse *resp, json_t *doc, const PageserverCall *call,
                         PageserverResult *res, Err *err)
{
    Err why;
    json_t *list = json_object_get(doc, "new_shards");
    if (!json_is_array(list) || json_array_size(list) == 0) {
        err_set(&why, ERR_INTERNAL, "\"new_shards\" is not a non-empty array");
        goto bad;
    }
    size_t n = json_array_size(list);
    res->split.children = xcalloc(n, sizeof(TenantShardId));
    res->split.n_children = n;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(list, i);
        TenantShardId *child = &res->split.children[i];
        if (!json_is_string(v)) {
            err_set(&why, ERR_INTERNAL, "new_shards[%zu] is not a string", i);
            goto bad;
        }
        if (!tsid_parse(json_string_value(v), child, &why)) {
            err_prefix(&why, "new_shards[%zu]: ", i);
            goto bad;
        }
        if (!tenant_id_eq(&child->tenant_id, &call->tsid.tenant_id) ||
            child->count != call->new_count) {
            err_set(&why, ERR_INTERNAL, "new_shards[%zu] %s is not a child of the split to %u", i,
                    json_string_value(v), (unsigned)call->new_count);
            goto bad;
        }
    }
    return true;
bad:
    bad_body(resp, &why, err);
    return false;
}

/* decode_response: turn a finished HTTP response into res for call->op; *doc receives the parsed
 * document (freed by the caller after the callback). */
static void decode_response(const PageserverCall *call, const HttpClientResponse *resp,
                            PageserverResult *res, json_t **doc)
{
    int st = resp->status;
    bool is2xx = st >= 200 && st < 300;
    bool ok = false;
    if (st == 0) {
        http_response_err(resp, &res->err);
        return;
    }
    switch (call->op) {
    case PAGESERVER_OP_LOCATION_CONFIG_PUT:
        if (is2xx)
            ok = decode_object(resp, doc, &res->err) &&
                 decode_location_put(resp, *doc, res, &res->err);
        break;
    case PAGESERVER_OP_LOCATION_CONFIG_GET:
        if (st == 404) {
            res->location_get.absent = true;
            ok = true;
        } else if (is2xx) {
            ok = decode_object(resp, doc, &res->err);
            res->location_get.config = *doc;
        }
        break;
    case PAGESERVER_OP_LOCATION_CONFIG_LIST:
        if (is2xx)
            ok = decode_location_list(resp, res, &res->err);
        break;
    case PAGESERVER_OP_TIMELINE_CREATE:
    case PAGESERVER_OP_ACTIVATE_POST_IMPORT:
        if (is2xx) {
            ok = decode_object(resp, doc, &res->err);
            res->timeline_info = *doc;
        }
        break;
    case PAGESERVER_OP_TIMELINE_DELETE:
        ok = true;
        if (st == 200 || st == 202)
            res->timeline_delete = PAGESERVER_TIMELINE_DELETE_STARTED;
        else if (st == 404)
            res->timeline_delete = PAGESERVER_TIMELINE_DELETE_GONE;
        else if (st == 409)
            res->timeline_delete = PAGESERVER_TIMELINE_DELETE_IN_PROGRESS;
        else if (st == 412)
            res->timeline_delete = PAGESERVER_TIMELINE_DELETE_PRECONDITION;
        else
            ok = false;
        break;
    case PAGESERVER_OP_TENANT_DELETE:
        ok = is2xx;
        break;
    case PAGESERVER_OP_UTILIZATION:
        if (is2xx)
            ok = decode_object(resp, doc, &res->err) &&
                 decode_utilization(resp, *doc, res, &res->err);
        break;
    case PAGESERVER_OP_SECONDARY_DOWNLOAD:
        if (st == 200 || st == 202) {
            res->secondary_download.complete = st == 200;
            ok = decode_object(resp, doc, &res->err) &&
                 decode_secondary_progress(resp, *doc, res, &res->err);
        }
        break;
    case PAGESERVER_OP_WAIT_LSN:
        if (st == 200 || st == 202) {
            res->wait_lsn.reached = st == 200;
            ok = true;
        }
        break;
    case PAGESERVER_OP_SHARD_SPLIT:
        if (is2xx)
            ok = decode_object(resp, doc, &res->err) &&
                 decode_split(resp, *doc, call, res, &res->err);
        break;
    case PAGESERVER_OP_PASSTHROUGH_GET:
        res->passthrough.body = resp->body;
        res->passthrough.body_len = resp->body_len;
        ok = true;
        break;
    case PAGESERVER_OP_COUNT:
    default:
        err_set(&res->err, ERR_INTERNAL, "unknown pageserver operation %d", (int)call->op);
        return;
    }
    if (ok) {
        err_clear(&res->err);
        res->ok = true;
    } else if (!err_is_set(&res->err)) {
        http_response_err(resp, &res->err); /* a status that is not a result of this operation */
    }
}

/* ---- the location listing on a worker ---- */

/* ListParse: a listing answer being scanned on a worker. It owns a copy of the body (the HTTP
 * client frees its own after the callback) and outlives a call cancelled meanwhile (call NULL). */
typedef struct ListParse {
    PageserverCall *call;
    PageserverClient *pc;
    WorkerJob *job;
    char *body;
    size_t body_len;
    char *what; /* "GET <url>: 200" for the error message */
    int status, attempts;
    bool ok;
    LocationList list;
    Err err;
} ListParse;

static void list_parse_work(WorkerJob *job, void *arg)
{
    ListParse *lp = arg;
    Err why;
    if (worker_job_cancelled(job)) { /* its call went away: nobody reads the result */
        lp->ok = false;
        err_set(&lp->err, ERR_UNAVAILABLE, "%s: cancelled", lp->what);
        return;
    }
    lp->ok = location_list_scan(lp->body, lp->body_len, &lp->list, &why);
    if (!lp->ok)
        err_set(&lp->err, ERR_INTERNAL, "%s with an unexpected body: %s", lp->what, why.msg);
}

static void list_parse_free(ListParse *lp)
{
    location_list_finish(&lp->list);
    free(lp->body);
    free(lp->what);
    free(lp);
}

static void list_parse_done(void *arg, WorkerOutcome outcome)
{
    ListParse *lp = arg;
    PageserverCall *call = lp->call;
    if (call == NULL) { /* cancelled meanwhile */
        list_parse_free(lp);
        return;
    }
    call->parse = NULL;
    PageserverResult res;
    memset(&res, 0, sizeof(res));
    res.op = call->op;
    res.tsid = call->tsid;
    res.status = lp->status;
    res.attempts = lp->attempts;
    if (!worker_outcome_err(outcome, "scanning the location listing", &res.err)) {
        res.ok = false;
    } else if (lp->ok) {
        res.ok = true;
        res.location_list.locations = lp->list.entries;
        res.location_list.n_locations = lp->list.n;
    } else {
        res.err = lp->err;
    }
    if (!res.ok)
        log_debug("pageserver %s: %s", pageserver_op_name(call->op), res.err.msg);
    call_finish(call, &res);
    list_parse_free(lp);
}

/* list_parse_start: hand a 2xx listing answer to the worker pool. */
static void list_parse_start(PageserverCall *call, const HttpClientResponse *resp)
{
    ListParse *lp = xcalloc(1, sizeof(*lp));
    lp->call = call;
    lp->pc = call->pc;
    lp->body = xmalloc(resp->body_len + 1);
    memcpy(lp->body, resp->body, resp->body_len);
    lp->body[resp->body_len] = '\0';
    lp->body_len = resp->body_len;
    lp->what = str_dup_printf("%s %s: %d", resp->method, resp->url, resp->status);
    lp->status = resp->status;
    lp->attempts = resp->attempts;
    call->parse = lp;
    WorkerJobSpec spec = {.cls = WORKER_CLASS_LATENCY};
    lp->job = worker_pool_start(call->pc->workers, &spec, list_parse_work, list_parse_done, lp);
}

/* list_parse_detach: the call goes away while its answer is scanned: the scan's completion frees
 * what it holds. */
static void list_parse_detach(PageserverCall *call)
{
    ListParse *lp = call->parse;
    if (lp == NULL)
        return;
    call->parse = NULL;
    lp->call = NULL;
    worker_job_cancel(lp->pc->workers, lp->job);
}

static void http_done_cb(const HttpClientResponse *resp, void *arg)
{
    PageserverCall *call = arg;
    call->http = NULL; /* the HTTP client frees it after this callback */
    if (call->op == PAGESERVER_OP_LOCATION_CONFIG_LIST && call->pc->workers != NULL &&
        resp->status >= 200 && resp->status < 300) {
        list_parse_start(call, resp);
        return;
    }
    PageserverResult res;
    memset(&res, 0, sizeof(res));
    res.op = call->op;
    res.tsid = call->tsid;
    res.status = resp->status;
    res.attempts = resp->attempts;
    json_t *doc = NULL;
    decode_response(call, resp, &res, &doc);
    if (!res.ok) {
        /* a failed decode may have left partial members behind: the caller sees only err */
        log_debug("pageserver %s: %s", pageserver_op_name(call->op), res.err.msg);
    }
    PageserverShardNode *put_shards =
        call->op == PAGESERVER_OP_LOCATION_CONFIG_PUT ? res.location_put.shards : NULL;
    PageserverLocation *locations =
        call->op == PAGESERVER_OP_LOCATION_CONFIG_LIST ? res.location_list.locations : NULL;
    TenantShardId *children = call->op == PAGESERVER_OP_SHARD_SPLIT ? res.split.children : NULL;
    call_finish(call, &res);
    free(put_shards);
    free(locations);
    free(children);
    json_decref(doc);
}

/* ---- starting calls ---- */

/* target_url: base URL (without a trailing '/') + path, on the heap; the caller frees. */
static char *target_url(const PageserverTarget *t, const char *path)
{
    const char *base = t->base_url ? t->base_url : "";
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    return str_dup_printf("%.*s%s", (int)n, base, path);
}

/* call_start_http: begin the request of a call (body borrowed, serialised now). */
static PageserverCall *call_start_http(PageserverCall *call, const PageserverTarget *t,
                                       const char *method, const char *path, const json_t *body)
{
    char *url = target_url(t, path);
    call->node = t->node;
    call->http = http_client_start_json(call->pc->http, method, url, body, t->token, t->timeout_ms,
                                        t->retry, http_done_cb, call);
    free(url);
    return call;
}

PageserverCall *pageserver_client_location_config_put(PageserverClient *pc,
                                                      const PageserverTarget *t,
                                                      const TenantShardId *tsid,
                                                      const json_t *config, long flush_ms,
                                                      bool lazy, PageserverDone done, void *arg)
{
    char id[TSID_STR_SIZE];
    char path[256];
    tsid_format(tsid, id);
    PageserverCall *call = call_new(pc, PAGESERVER_OP_LOCATION_CONFIG_PUT, tsid, done, arg);
    StrBuf q = STRBUF_INIT;
    if (flush_ms > 0)
        strbuf_printf(&q, "%sflush_ms=%ld", q.len ? "&" : "?", flush_ms);
    if (lazy)
        strbuf_printf(&q, "%slazy=true", q.len ? "&" : "?");
    bool fits =
        str_printf(path, sizeof(path), "/v1/tenant/%s/location_config%s", id, q.data ? q.data : "");
    strbuf_finish(&q);
    if (!fits) { /* cannot happen with bounded ids and numbers; kept for the rule */
        Err e;
        err_set(&e, ERR_INTERNAL, "location_config path too long");
        return call_fail_async(call, &e);
    }
    return call_start_http(call, t, "PUT", path, config);
}

PageserverCall *pageserver_client_location_config_get(PageserverClient *pc,
                                                      const PageserverTarget *t,
                                                      const TenantShardId *tsid,
                                                      PageserverDone done, void *arg)
{
    char id[TSID_STR_SIZE];
    char path[128];
    tsid_format(tsid, id);
    (void)str_printf(path, sizeof(path), "/v1/location_config/%s", id); /* fits: bounded id */
    PageserverCall *call = call_new(pc, PAGESERVER_OP_LOCATION_CONFIG_GET, tsid, done, arg);
    return call_start_http(call, t, "GET", path, NULL);
}

PageserverCall *pageserver_client_location_config_list(PageserverClient *pc,
                                                       const PageserverTarget *t,
                                                       PageserverDone done, void *arg)
{
    PageserverCall *call = call_new(pc, PAGESERVER_OP_LOCATION_CONFIG_LIST, NULL, done, arg);
    return call_start_http(call, t, "GET", "/v1/location_config", NULL);
}

PageserverCall *pageserver_client_timeline_create(PageserverClient *pc, const PageserverTarget *t,
                                                  const TenantShardId *tsid, const json_t *body,
                                                  PageserverDone done, void *arg)
{
    char id[TSID_STR_SIZE];
    char path[128];
    tsid_format(tsid, id);
    (void)str_printf(path, sizeof(path), "/v1/tenant/%s/timeline", id);
    PageserverCall *call = call_new(pc, PAGESERVER_OP_TIMELINE_CREATE, tsid, done, arg);
    return call_start_http(call, t, "POST", path, body);
}

PageserverCall *pageserver_client_timeline_delete(PageserverClient *pc, const PageserverTarget *t,
                                                  const TenantShardId *tsid,
                                                  const TimelineId *timeline, PageserverDone done,
                                                  void *arg)
{
    char id[TSID_STR_SIZE], tl[ID_STR_SIZE];
    char path[160];
    tsid_format(tsid, id);
    timeline_id_format(timeline, tl);
    (void)str_printf(path, sizeof(path), "/v1/tenant/%s/timeline/%s", id, tl);
    PageserverCall *call = call_new(pc, PAGESERVER_OP_TIMELINE_DELETE, tsid, done, arg);
    return call_start_http(call, t, "DELETE", path, NULL);
}

PageserverCall *pageserver_client_tenant_delete(PageserverClient *pc, const PageserverTarget *t,
                                                const TenantShardId *tsid, PageserverDone done,
                                                void *arg)
{
    char id[TSID_STR_SIZE];
    char path[128];
    tsid_format(tsid, id);
    (void)str_printf(path, sizeof(path), "/v1/tenant/%s", id);
    PageserverCall *call = call_new(pc, PAGESERVER_OP_TENANT_DELETE, tsid, done, arg);
    return call_start_http(call, t, "DELETE", path, NULL);
}

PageserverCall *pageserver_client_utilization(PageserverClient *pc, const PageserverTarget *t,
                                              PageserverDone done, void *arg)
{
    PageserverCall *call = call_new(pc, PAGESERVER_OP_UTILIZATION, NULL, done, arg);
    return call_start_http(call, t, "GET", "/v1/utilization", NULL);
}

PageserverCall *pageserver_client_secondary_download(PageserverClient *pc,
                                                     const PageserverTarget *t,
                                                     const TenantShardId *tsid, long wait_ms,
                                                     PageserverDone done, void *arg)
{
    char id[TSID_STR_SIZE];
    char path[160];
    tsid_format(tsid, id);
    (void)str_printf(path, sizeof(path), "/v1/tenant/%s/secondary/download?wait_ms=%ld", id,
                     wait_ms > 0 ? wait_ms : 0L);
    PageserverCall *call = call_new(pc, PAGESERVER_OP_SECONDARY_DOWNLOAD, tsid, done, arg);
    return call_start_http(call, t, "POST", path, NULL);
}

/* pageserver_client_wait_lsn: the body maps each timeline id to its LSN, plus "timeout" in ms
 * (pageserver.md); an invalid LSN is sent as null, which the pageserver rejects with a 400. */
PageserverCall *pageserver_client_wait_lsn(PageserverClient *pc, const PageserverTarget *t,
                                           const TenantShardId *tsid,
                                           const PageserverTimelineLsn *lsns, size_t n_lsns,
                                           long timeout_ms, PageserverDone done, void *arg)
{
    char id[TSID_STR_SIZE];
    char path[128];
    tsid_format(tsid, id);
    (void)str_printf(path, sizeof(path), "/v1/tenant/%s/wait_lsn", id);
    json_t *body = json_object();
    for (size_t i = 0; i < n_lsns; i++) {
        char tl[ID_STR_SIZE];
        timeline_id_format(&lsns[i].timeline_id, tl);
        json_object_set_new(body, tl, json_from_lsn(lsns[i].lsn));
    }
    json_object_set_new(body, "timeout",
                        json_integer((json_int_t)(timeout_ms > 0 ? timeout_ms : 0)));
    PageserverCall *call = call_new(pc, PAGESERVER_OP_WAIT_LSN, tsid, done, arg);
    call_start_http(call, t, "POST", path, body);
    json_decref(body);
    return call;
}

PageserverCall *pageserver_client_tenant_shard_split(PageserverClient *pc,
                                                     const PageserverTarget *t,
                                                     const TenantShardId *tsid,
                                                     ShardCount new_count, uint32_t new_stripe_size,
                                                     PageserverDone done, void *arg)
{
    char id[TSID_STR_SIZE];
    char path[128];
    tsid_format(tsid, id);
    (void)str_printf(path, sizeof(path), "/v1/tenant/%s/shard_split", id);
    json_t *body = json_object();
    json_object_set_new(body, "new_shard_count", json_integer(new_count));
    json_object_set_new(body, "new_stripe_size",
                        new_stripe_size ? json_integer((json_int_t)new_stripe_size) : json_null());
    PageserverCall *call = call_new(pc, PAGESERVER_OP_SHARD_SPLIT, tsid, done, arg);
    call->new_count = new_count;
    call_start_http(call, t, "PUT", path, body);
    json_decref(body);
    return call;
}

PageserverCall *
pageserver_client_activate_post_import(PageserverClient *pc, const PageserverTarget *t,
                                       const TenantShardId *tsid, const TimelineId *timeline,
                                       long activate_timeout_ms, PageserverDone done, void *arg)
{
    char id[TSID_STR_SIZE], tl[ID_STR_SIZE];
    char path[256];
    tsid_format(tsid, id);
    timeline_id_format(timeline, tl);
    if (activate_timeout_ms > 0)
        (void)str_printf(path, sizeof(path),
                         "/v1/tenant/%s/timeline/%s/activate_post_import"
                         "?timeline_activate_timeout_ms=%ld",
                         id, tl, activate_timeout_ms);
    else
        (void)str_printf(path, sizeof(path), "/v1/tenant/%s/timeline/%s/activate_post_import", id,
                         tl);
    PageserverCall *call = call_new(pc, PAGESERVER_OP_ACTIVATE_POST_IMPORT, tsid, done, arg);
    return call_start_http(call, t, "PUT", path, NULL);
}

/* path_ok: a passthrough path is forwarded verbatim, so refuse anything that could turn into a
 * different request line or URL (spaces, control characters, a scheme or host of its own). */
static bool path_ok(const char *path)
{
    if (path == NULL || path[0] != '/' || path[1] == '/')
        return false;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f || *p == '#')
            return false;
    }
    return true;
}

PageserverCall *pageserver_client_get(PageserverClient *pc, const PageserverTarget *t,
                                      const char *path, PageserverDone done, void *arg)
{
    PageserverCall *call = call_new(pc, PAGESERVER_OP_PASSTHROUGH_GET, NULL, done, arg);
    if (!path_ok(path)) {
        Err e;
        err_set(&e, ERR_BAD_REQUEST, "invalid passthrough path");
        return call_fail_async(call, &e);
    }
    return call_start_http(call, t, "GET", path, NULL);
}

/* ---- error translation ---- */

/* pageserver_client_translate_error: see the header. The original message is kept (it names the
 * call and carries the pageserver's {"msg"}), prefixed where the new status would mislead: a
 * 401/403 becomes our own internal error. */
Err pageserver_client_translate_error(int status, const Err *err)
{
    Err out;
    err_clear(&out);
    const char *msg = (err != NULL && err->msg[0] != '\0') ? err->msg : NULL;
    char fallback[64];
    if (msg == NULL) {
        if (status == 0)
            str_copy(fallback, sizeof(fallback), "pageserver unreachable");
        else
            str_printf(fallback, sizeof(fallback), "pageserver answered %d", status);
        msg = fallback;
    }
    if (status >= 200 && status < 300) {
        if (err != NULL && err->code != ERR_NONE)
            out = *err;
        return out;
    }
    ErrCode code;
    const char *prefix = "";
    if (status == 0)
        code = (err != NULL && err->code == ERR_TIMEOUT) ? ERR_TIMEOUT : ERR_UNAVAILABLE;
    else if (status == 503)
        code = ERR_UNAVAILABLE;
    else if (status == 404)
        code = ERR_NOT_FOUND;
    else if (status == 408)
        code = ERR_TIMEOUT;
    else if (status == 401 || status == 403) {
        code = ERR_INTERNAL;
        prefix = "pageserver refused the controller's credentials: ";
    } else
        code = ERR_CONFLICT; /* 429 and every other status */
    err_set(&out, code, "%s%s", prefix, msg);
    if (err != NULL && err->file != NULL) { /* keep where the error was first seen */
        out.file = err->file;
        out.line = err->line;
        out.func = err->func;
    }
    return out;
}
