/*
 * passthrough.c: GET proxy to the pageserver holding a tenant's shard (see passthrough.h).
 *
 * States: READ_BEFORE (database read of the attachment) -> CALL (the pageserver GET) -> RECHECK
 * (timeline_fanout_recheck) -> done. Linear, so the state is implied by which callback runs.
 */
#include "storcon/passthrough.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "shared/log.h"
#include "shared/str.h"
#include "storcon/pageserver_client.h"
#include "storcon/timeline_fanout.h"

typedef struct Passthrough {
    Service *svc;
    struct event_base *base;
    TenantShardId tsid;
    char *rest;
    char *query;
    PassthroughDone done;
    void *arg;
    ServiceShardMapSnapshot before;
    size_t shard; /* index into before */
    int status;
    char *body;
    size_t body_len;
    Err err; /* set: the answer is this error */
} Passthrough;

static void pt_finish(Passthrough *p, const Err *err)
{
    p->done(err, p->status, p->body != NULL ? p->body : "", p->body_len, p->arg);
    service_snapshot_finish(&p->before);
    free(p->rest);
    free(p->query);
    free(p->body);
    free(p);
}

bool passthrough_tenant_missing(const char *msg)
{
    if (msg == NULL)
        return false;
    /* "tenant shard X not found", "tenant X not found on this pageserver", "tenant shard X is not
     * attached here", possibly after a "METHOD URL: 404 " prefix; "tenant/" inside a URL does not
     * count, nor does a clause about a timeline ("timeline X not found"). */
    for (const char *p = strcasestr(msg, "tenant "); p != NULL; p = strcasestr(p + 1, "tenant ")) {
        const char *nf = strstr(p, "not found");
        if (nf == NULL)
            nf = strstr(p, "not attached");
        if (nf == NULL)
            return false;
        const char *tl = strstr(p, "timeline ");
        if (tl == NULL || tl > nf)
            return true;
    }
    return false;
}

static void on_recheck(const Err *err, void *arg)
{
    Passthrough *p = arg;
    if (err != NULL) {
        pt_finish(p, err);
        return;
    }
    pt_finish(p, err_is_set(&p->err) ? &p->err : NULL);
}

/* body_msg: the {"msg"} of an error body, else the text itself (bounded). */
static void body_msg(const char *body, size_t len, char *out, size_t cap)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *msg = j != NULL ? json_string_value(json_object_get(j, "msg")) : NULL;
    if (msg != NULL)
        str_copy(out, cap, msg); /* truncation is fine for a message */
    else
        snprintf(out, cap, "%.*s", (int)(len < 400 ? len : 400), body);
    json_decref(j);
}

/* wants_attached: the tenant's policy is Attached(n), so a pageserver not having it is a transient
 * state (being attached or migrated), not the answer. */
static bool wants_attached(Passthrough *p)
{
    json_t *d = NULL;
    Err err;
    err_clear(&err);
    if (!service_tenant_describe(p->svc, &p->tsid.tenant_id, &d, &err))
        return false;
    const json_t *policy = json_object_get(d, "policy");
    bool attached = json_is_object(policy) && json_object_get(policy, "Attached") != NULL;
    json_decref(d);
    return attached;
}

static void on_get(const PageserverResult *res, void *arg)
{
    Passthrough *p = arg;
    char tsid[TSID_STR_SIZE];
    tsid_format(&p->before.shards[p->shard].tsid, tsid);
    if (!res->ok || res->status == 0) {
        p->err = pageserver_client_translate_error(res->status, &res->err);
        err_prefix(&p->err, "pageserver (shard %s): ", tsid);
    } else if (res->status >= 200 && res->status < 300) {
        p->status = res->status;
        p->body =
            xstrndup(res->passthrough.body ? res->passthrough.body : "", res->passthrough.body_len);
        p->body_len = res->passthrough.body_len;
    } else {
        char msg[ERR_MSG_SIZE];
        body_msg(res->passthrough.body ? res->passthrough.body : "", res->passthrough.body_len, msg,
                 sizeof(msg) - 64);
        Err e;
        err_clear(&e);
        err_set(&e, err_code_from_http_status(res->status), "%s", msg);
        if (res->status == 404 && passthrough_tenant_missing(msg) && wants_attached(p)) {
            err_set(&p->err, ERR_UNAVAILABLE,
                    "shard %s is not on its pageserver yet (attachment in progress), "
                    "retry: %s",
                    tsid, msg);
        } else {
            p->err = pageserver_client_translate_error(res->status, &e);
        }
    }
    timeline_fanout_recheck(p->svc, p->base, &p->before, on_recheck, p);
}

/* on_before: choose the shard, rewrite the path, call. */
static void on_before(const Err *err, const ServiceShardMapSnapshot *snap, void *arg)
{
    Passthrough *p = arg;
    if (err != NULL) {
        pt_finish(p, err);
        return;
    }
    timeline_fanout_snapshot_copy(&p->before, snap);
    Err e;
    err_clear(&e);
    char want[TSID_STR_SIZE];
    tsid_format(&p->tsid, want);
    if (p->tsid.count == 0) {
        p->shard = 0;
    } else if (p->tsid.count == snap->shard_count && p->tsid.number < snap->n) {
        p->shard = p->tsid.number;
    } else {
        err_set(&e, ERR_NOT_FOUND, "tenant shard %s not found", want);
        pt_finish(p, &e);
        return;
    }
    const ServiceShardLocation *loc = &p->before.shards[p->shard];
    char tsid[TSID_STR_SIZE];
    tsid_format(&loc->tsid, tsid);
    char path[PASSTHROUGH_PATH_MAX];
    if (!str_printf(path, sizeof(path), "/v1/tenant/%s%s%s%s", tsid, p->rest,
                    p->query[0] ? "?" : "", p->query)) {
        err_set(&e, ERR_BAD_REQUEST, "request path too long");
        pt_finish(p, &e);
        return;
    }
    HttpRetryPolicy retry = {.max_attempts = 2, .base_ms = 100, .max_ms = 1000};
    PageserverTarget t;
    char url[SERVICE_URL_SIZE];
    if (!service_pageserver_target(p->svc, loc->node, PASSTHROUGH_CALL_TIMEOUT_MS, &retry, &t, url,
                                   &e)) {
        err_prefix(&e, "shard %s: ", tsid); /* 503: the node is gone or Offline */
        pt_finish(p, &e);
        return;
    }
    log_debug("passthrough GET %s to node %llu", path, (unsigned long long)loc->node);
    (void)pageserver_client_get(service_pageserver_client(p->svc), &t, path, on_get, p);
}

void passthrough_get(Service *svc, struct event_base *base, const TenantShardId *tsid,
                     const char *rest, const char *query, PassthroughDone done, void *arg)
{
    Passthrough *p = xcalloc(1, sizeof(*p));
    p->svc = svc;
    p->base = base;
    p->tsid = *tsid;
    p->rest = xstrdup(rest != NULL ? rest : "");
    p->query = xstrdup(query != NULL ? query : "");
    p->done = done;
    p->arg = arg;
    service_tenant_snapshot_db(svc, &tsid->tenant_id, on_before, p);
}
