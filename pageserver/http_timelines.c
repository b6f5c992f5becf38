/*
 * http_timelines.c: the timeline routes of the management API (create, list, get, delete) and
 * getpage and the relation listing, with the getpage query parser (http_api.h).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/http_server.h"
#include "shared/key.h"
#include "shared/str.h"

#include "pageserver/app.h"
#include "pageserver/http_api.h"
#include "pageserver/import.h"
#include "pageserver/read_path.h"
#include "pageserver/tenant.h"
#include "pageserver/timeline.h"

/* parse_u32_field: decimal u32 in [min, max] or a 400 naming what. */
static bool parse_u32_field(const char *s, const char *what, uint64_t min, uint64_t max,
                            uint32_t *out, Err *err)
{
    uint64_t v;
    if (s == NULL || !parse_u64(s, min, max, &v)) {
        err_set(err, ERR_BAD_REQUEST,
                "%s: expected a decimal number in %" PRIu64 "..%" PRIu64 ", got \"%s\"", what, min,
                max, s ? s : "");
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

bool getpage_parse_query(const char *rel, const char *fork, const char *blkno, const char *lsn,
                         GetPageQuery *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (rel == NULL || fork == NULL || blkno == NULL) {
        err_set(err, ERR_BAD_REQUEST,
                "missing query parameter \"%s\" (need rel=<spc>/<db>/<rel>, "
                "fork=<n>, blkno=<n>, optional lsn=<X/X>)",
                rel == NULL    ? "rel"
                : fork == NULL ? "fork"
                               : "blkno");
        return false;
    }
    char parts[3][16];
    const char *p = rel;
    for (int i = 0; i < 3; i++) {
        size_t len = strcspn(p, "/");
        if (len == 0 || len >= sizeof(parts[i]) || (i < 2 && p[len] != '/') ||
            (i == 2 && p[len] != '\0')) {
            err_set(err, ERR_BAD_REQUEST, "rel: expected <spcnode>/<dbnode>/<relnode>, got \"%s\"",
                    rel);
            return false;
        }
        memcpy(parts[i], p, len);
        parts[i][len] = '\0';
        p += len + (i < 2 ? 1 : 0);
    }
    uint32_t f = 0;
    if (!parse_u32_field(parts[0], "rel (spcnode)", 0, UINT32_MAX, &out->rel.spc, err) ||
        !parse_u32_field(parts[1], "rel (dbnode)", 0, UINT32_MAX, &out->rel.db, err) ||
        !parse_u32_field(parts[2], "rel (relnode)", 1, UINT32_MAX, &out->rel.rel, err) ||
        !parse_u32_field(fork, "fork", 0, FORK_INIT, &f, err) ||
        !parse_u32_field(blkno, "blkno", 0, UINT32_MAX - 1, &out->blkno, err))
        return false;
    out->rel.fork = (uint8_t)f;
    out->lsn = LSN_INVALID;
    if (lsn != NULL && !lsn_parse(lsn, &out->lsn, err)) {
        err_prefix(err, "lsn: ");
        return false;
    }
    return true;
}

void http_handle_timeline_create(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    json_t *body = NULL;
    TimelineCreateParams p;
    if (!http_param_tsid(req, &tsid, &err) || !http_request_json(req, &body, &err) ||
        !timeline_create_params_decode(body, &p, &err)) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    timeline_create(app->tenants, &tsid, &p, http_json_201, http_await(req, app));
}

void http_handle_timeline_list(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    json_t *out = NULL;
    bool ok = http_param_tsid(req, &tsid, &err) && timeline_list(app->tenants, &tsid, &out, &err);
    http_reply_result(req, ok, out, &err);
}

void http_handle_timeline_get(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    TimelineId id;
    json_t *out = NULL;
    bool ok = http_param_timeline(req, &id, &err) && http_param_tsid(req, &tsid, &err) &&
              timeline_get(app->tenants, &tsid, &id, &out, &err);
    http_reply_result(req, ok, out, &err);
}

/* timeline_params: {tenant_shard_id} and {timeline_id}; false after replying 400. */
static bool timeline_params(HttpRequest *req, TenantShardId *tsid, TimelineId *id)
{
    Err err = {0};
    if (!http_param_timeline(req, id, &err) || !http_param_tsid(req, tsid, &err)) {
        http_reply_error(req, &err);
        return false;
    }
    return true;
}

void http_handle_timeline_delete(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    TenantShardId tsid;
    TimelineId id;
    if (timeline_params(req, &tsid, &id))
        timeline_delete(app->tenants, &tsid, &id, http_done_202, http_await(req, app));
}

void http_handle_timeline_activate_post_import(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    TenantShardId tsid;
    TimelineId id;
    if (timeline_params(req, &tsid, &id))
        import_activate(app->tenants, &tsid, &id, http_json_200, http_await(req, app));
}

static void on_page(const Err *err, const uint8_t *page, void *arg)
{
    PageserverApp *app = NULL;
    HttpRequest *req = http_pending_take(arg, &app);
    if (err != NULL)
        pageserver_reply_error(app, req, err);
    else
        pageserver_reply_raw(app, req, 200, "application/octet-stream", page, BLCKSZ);
}

void http_handle_getpage(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    TimelineId id;
    GetPageQuery q;
    if (!http_param_timeline(req, &id, &err) ||
        !getpage_parse_query(http_request_query(req, "rel"), http_request_query(req, "fork"),
                             http_request_query(req, "blkno"), http_request_query(req, "lsn"), &q,
                             &err) ||
        !http_param_tsid(req, &tsid, &err)) {
        http_reply_error(req, &err);
        return;
    }
    read_path_get_page(app->tenants, &tsid, &id, &q.rel, q.blkno, q.lsn, on_page,
                       http_await(req, app));
}

static void on_relations(const Err *err, const RelListEntry *rels, size_t n, Lsn lsn, void *arg)
{
    PageserverApp *app = NULL;
    HttpRequest *req = http_pending_take(arg, &app);
    if (err != NULL) {
        pageserver_reply_error(app, req, err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr, json_must(json_pack(
                     "{s:I, s:I, s:I, s:i, s:I}", "spcnode", (json_int_t)rels[i].rel.spc, "dbnode",
                     (json_int_t)rels[i].rel.db, "relnode", (json_int_t)rels[i].rel.rel, "forknum",
                     (int)rels[i].rel.fork, "nblocks", (json_int_t)rels[i].nblocks)));
    pageserver_reply_json(
        app, req, 200,
        json_must(json_pack("{s:o, s:o}", "lsn", json_from_lsn(lsn), "relations", arr)));
}

void http_handle_relations(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    TimelineId id;
    Lsn lsn = LSN_INVALID;
    const char *lsn_q = http_request_query(req, "lsn");
    if (!http_param_timeline(req, &id, &err) || !http_param_tsid(req, &tsid, &err) ||
        (lsn_q != NULL && !lsn_parse(lsn_q, &lsn, &err))) {
        http_reply_error(req, &err);
        return;
    }
    read_path_list_relations(app->tenants, &tsid, &id, lsn, on_relations, http_await(req, app));
}
