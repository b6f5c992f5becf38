/*
 * http_tenants.c: tenant routes: the /v1 "virtual pageserver" (create, delete, config,
 * location_config, timeline create / delete, the GET passthrough) and the /control/v1 tenant routes
 * (paged list, describe, policy).
 *
 * The service takes the per-tenant locks its operations need (storcon/operation.h); these handlers
 * only decode, validate and reply. Reads (config get, describe, list, passthrough) take none: they
 * answer from memory, or re-check the attachment themselves (passthrough).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/tenant_config.h"
#include "shared/err.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/str.h"
#include "storcon/app.h"
#include "storcon/defaults.h"
#include "storcon/http_api.h"
#include "storcon/passthrough.h"
#include "storcon/placement.h"
#include "storcon/service.h"
#include "storcon/timeline_fanout.h"

#define POLICY_NAME_SIZE 32

static struct event_base *app_base(void *app)
{
    return ((StorconApp *)app)->base;
}

/* ---- POST /v1/tenant ---- */

typedef struct ShardParamsBody {
    uint8_t count;
    uint32_t stripe_size;
} ShardParamsBody;

static const JsonField SHARD_PARAMS_FIELDS[] = {
    JSON_FIELD(ShardParamsBody, count, "count", JSON_FIELD_U8, 0),
    JSON_FIELD(ShardParamsBody, stripe_size, "stripe_size", JSON_FIELD_U32, 0),
};
static const JsonSpec SHARD_PARAMS_SPEC =
    JSON_SPEC("shard_parameters", SHARD_PARAMS_FIELDS, JSON_UNKNOWN_REJECT);

typedef struct TenantCreateBody {
    TenantId tenant_id;
    Generation generation;
    JsonPresence generation_p;
    ShardParamsBody shard;
    json_t *placement; /* borrowed from the document */
    char scheduling[POLICY_NAME_SIZE];
    JsonPresence scheduling_p;
    TenantConfig config;
} TenantCreateBody;

static const JsonField TENANT_CREATE_FIELDS[] = {
    JSON_FIELD(TenantCreateBody, tenant_id, "new_tenant_id", JSON_FIELD_TENANT_ID, JSON_REQUIRED),
    JSON_FIELD_P(TenantCreateBody, generation, generation_p, "generation", JSON_FIELD_GENERATION,
                 JSON_NULLABLE),
    JSON_NESTED(TenantCreateBody, shard, "shard_parameters", &SHARD_PARAMS_SPEC, 0),
    JSON_FIELD(TenantCreateBody, placement, "placement_policy", JSON_FIELD_ANY, JSON_NULLABLE),
    JSON_FIELD_P(TenantCreateBody, scheduling, scheduling_p, "scheduling_policy", JSON_FIELD_STRING,
                 JSON_NULLABLE),
    JSON_FLATTEN(TenantCreateBody, config, &TENANT_CONFIG_SPEC),
};
static const JsonSpec TENANT_CREATE_SPEC =
    JSON_SPEC("tenant create", TENANT_CREATE_FIELDS, JSON_UNKNOWN_REJECT);

void http_tenants_create(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    json_t *doc = NULL;
    TenantCreateBody body;
    memset(&body, 0, sizeof(body));
    body.shard.count = 0;
    body.shard.stripe_size = STRIPE_SIZE_DEFAULT;
    tenant_config_init(&body.config);
    ServiceTenantCreate sc;
    memset(&sc, 0, sizeof(sc));
    sc.placement = PLACEMENT_POLICY_DEFAULT;
    json_t *config = NULL;
    if (!http_api_body(req, &TENANT_CREATE_SPEC, &body, &doc, &err) ||
        !tenant_config_validate(&body.config, &err))
        goto fail;
    if (body.placement != NULL &&
        !placement_policy_from_json(body.placement, &sc.placement, &err)) {
        err_prefix(&err, "placement_policy: ");
        goto fail;
    }
    if (body.scheduling_p == JSON_PRESENCE_SET) {
        sc.has_scheduling = true;
        if (!shard_scheduling_policy_parse(body.scheduling, &sc.scheduling, &err)) {
            err_prefix(&err, "scheduling_policy: ");
            goto fail;
        }
    }
    sc.tenant_id = body.tenant_id;
    sc.has_generation = body.generation_p == JSON_PRESENCE_SET;
    sc.generation = body.generation;
    sc.shard_count = body.shard.count;
    sc.stripe_size = body.shard.stripe_size;
    json_decref(doc);
    doc = NULL;
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    config = tenant_config_to_json(&body.config);
    sc.config = config; /* copied by the service */
    service_tenant_create(svc, &sc, http_api_op_json_done, http_api_op_new(req, app, svc, 201));
    json_decref(config);
    return;
fail:
    json_decref(doc);
    http_reply_error(req, &err);
}

/* ---- DELETE /v1/tenant/{tenant_id} ---- */

void http_tenants_delete(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    TenantId tenant;
    if (!http_api_param_tenant_id(req, &tenant, &err)) {
        http_reply_error(req, &err);
        return;
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    service_tenant_delete(svc, &tenant, http_api_op_json_done, http_api_op_new(req, app, svc, 200));
}
/* ---- PUT / PATCH /v1/tenant/config, GET /v1/tenant/{tenant_id}/config ---- */

/* config_patch_json: the canonical rendering of a decoded PATCH: set fields with their values,
 * removed fields as null, absent fields absent. */
static json_t *config_patch_json(const TenantConfig *cfg)
{
    json_t *out = tenant_config_to_json(cfg);
    for (size_t i = 0; i < TENANT_CONFIG_SPEC.n_fields; i++) {
        const JsonField *f = &TENANT_CONFIG_SPEC.fields[i];
        if (f->presence_offset == JSON_NO_PRESENCE)
            continue;
        JsonPresence p = *(const JsonPresence *)((const char *)cfg + f->presence_offset);
        if (p == JSON_PRESENCE_NULL)
            json_set_new(out, f->name, json_null());
    }
    return out;
}

static void handle_config_set(HttpRequest *req, void *app, bool patch)
{
    Err err;
    err_clear(&err);
    json_t *body = NULL;
    TenantConfigRequest tc;
    if (!http_request_json(req, &body, &err) || !tenant_config_request_decode(body, &tc, &err)) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    json_t *config;
    if (patch) {
        config = config_patch_json(&tc.config);
    } else {
        TenantConfig cfg;
        tenant_config_init(&cfg);
        tenant_config_apply_patch(&cfg, &tc.config); /* null = default = no override */
        config = tenant_config_to_json(&cfg);
    }
    service_tenant_config_set(svc, &tc.tenant_id, config, patch, http_api_op_json_done,
                              http_api_op_new(req, app, svc, 200));
    json_decref(config);
}

void http_tenants_config_put(HttpRequest *req, void *app)
{
    handle_config_set(req, app, false);
}

void http_tenants_config_patch(HttpRequest *req, void *app)
{
    handle_config_set(req, app, true);
}

void http_tenants_config_get(HttpRequest *req, void *app)
{
    http_api_tenant_read(req, app, service_tenant_config_get);
}

/* ---- PUT /v1/tenant/{tsid}/location_config ---- */

/* http_tenants_location_config: the LocationConfig body itself is checked by the service (it is the
 * pageserver's format); here only that it is an object and the id is usable. */
void http_tenants_location_config(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    TenantShardId tsid;
    json_t *body = NULL;
    if (!http_api_param_tsid(req, &tsid, &err) || !http_request_json(req, &body, &err))
        goto fail;
    if (!json_is_object(body)) {
        err_set(&err, ERR_BAD_REQUEST, "location_config: the body must be a JSON object");
        goto fail;
    }
    if (tsid.count > 1) {
        err_set(&err, ERR_BAD_REQUEST,
                "location_config takes an unsharded tenant id (or shard count 1)");
        goto fail;
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL) {
        json_decref(body);
        return;
    }
    service_tenant_location_config(svc, &tsid, body, http_api_op_json_done,
                                   http_api_op_new(req, app, svc, 200));
    json_decref(body);
    return;
fail:
    json_decref(body);
    http_reply_error(req, &err);
}

/* ---- timelines ---- */

void http_tenants_timeline_create(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    TenantId tenant;
    json_t *body = NULL;
    TimelineCreateSpec spec;
    if (!http_api_param_tenant_id(req, &tenant, &err) || !http_request_json(req, &body, &err) ||
        !timeline_fanout_create_decode(body, &spec, &err)) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    service_timeline_create(svc, &tenant, &spec, http_api_op_json_done,
                            http_api_op_new(req, app, svc, 201));
}

/* timeline_call: a request naming {tenant_id} and {timeline_id} and nothing else, answered 200
 * with what fn produces. */
static void timeline_call(HttpRequest *req, void *app,
                          void (*fn)(Service *, const TenantId *, const TimelineId *, ServiceJsonFn,
                                     void *))
{
    Err err;
    err_clear(&err);
    TenantId tenant;
    TimelineId timeline;
    if (!http_api_param_tenant_id(req, &tenant, &err) ||
        !http_api_param_timeline_id(req, &timeline, &err)) {
        http_reply_error(req, &err);
        return;
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    fn(svc, &tenant, &timeline, http_api_op_json_done, http_api_op_new(req, app, svc, 200));
}

void http_tenants_timeline_delete(HttpRequest *req, void *app)
{
    timeline_call(req, app, service_timeline_delete);
}

/* ---- GET passthrough ---- */

static void on_passthrough(const Err *err, int status, const char *body, size_t body_len, void *arg)
{
    HttpRequest *req = arg;
    if (err != NULL) {
        http_reply_error(req, err);
        return;
    }
    http_reply_raw(req, status, "application/json", body, body_len);
}

/* http_tenants_passthrough: the path after the id is rebuilt from the {p1}..{p5} segments (the
 * route rows of every depth name them so). */
void http_tenants_passthrough(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    TenantShardId tsid;
    if (!http_api_param_tsid(req, &tsid, &err)) {
        http_reply_error(req, &err);
        return;
    }
    /* A malformed timeline id is the caller's mistake: say so here (400) rather than forward it
     * and translate the pageserver's 400 into a 409 as wire.md's proxy table would. */
    const char *p1 = http_request_param(req, "p1");
    const char *p2 = http_request_param(req, "p2");
    TimelineId tl;
    if (p1 != NULL && p2 != NULL && strcmp(p1, "timeline") == 0 &&
        !timeline_id_parse(p2, &tl, &err)) {
        http_reply_error(req, &err);
        return;
    }
    StrBuf rest = STRBUF_INIT;
    static const char *const SEGS[] = {"p1", "p2", "p3", "p4", "p5"};
    for (size_t i = 0; i < sizeof(SEGS) / sizeof(SEGS[0]); i++) {
        const char *s = http_request_param(req, SEGS[i]);
        if (s == NULL)
            break;
        strbuf_printf(&rest, "/%s", s);
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL) {
        strbuf_finish(&rest);
        return;
    }
    passthrough_get(svc, app_base(app), &tsid, rest.data != NULL ? rest.data : "",
                    http_request_query_string(req), on_passthrough, req);
    strbuf_finish(&rest);
}

/* ---- /control/v1/tenant ---- */

void http_tenants_list(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    uint64_t limit = STORCON_TENANT_LIST_DEFAULT_LIMIT;
    const char *limit_s = http_request_query(req, "limit");
    const char *after_s = http_request_query(req, "start_after");
    TenantId after;
    if (limit_s != NULL && !parse_u64(limit_s, 1, STORCON_TENANT_LIST_MAX_LIMIT, &limit)) {
        err_set(&err, ERR_BAD_REQUEST, "limit: \"%.32s\" is not a number in [1, %d]", limit_s,
                STORCON_TENANT_LIST_MAX_LIMIT);
        http_reply_error(req, &err);
        return;
    }
    if (after_s != NULL && !tenant_id_parse(after_s, &after, &err)) {
        err_prefix(&err, "start_after: ");
        http_reply_error(req, &err);
        return;
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    http_reply_json(req, 200, service_tenant_list(svc, after_s != NULL ? &after : NULL, limit));
}

void http_tenants_describe(HttpRequest *req, void *app)
{
    http_api_tenant_read(req, app, service_tenant_describe);
}

typedef struct PolicyBody {
    json_t *placement; /* borrowed */
    char scheduling[POLICY_NAME_SIZE];
    JsonPresence scheduling_p;
} PolicyBody;

static const JsonField POLICY_FIELDS[] = {
    JSON_FIELD(PolicyBody, placement, "placement", JSON_FIELD_ANY, JSON_NULLABLE),
    JSON_FIELD_P(PolicyBody, scheduling, scheduling_p, "scheduling", JSON_FIELD_STRING,
                 JSON_NULLABLE),
};
static const JsonSpec POLICY_SPEC = JSON_SPEC("tenant policy", POLICY_FIELDS, JSON_UNKNOWN_REJECT);

void http_tenants_policy(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    json_t *doc = NULL;
    PolicyBody body;
    memset(&body, 0, sizeof(body));
    TenantId tenant;
    ServiceTenantPolicy policy;
    memset(&policy, 0, sizeof(policy));
    if (!http_api_param_tenant_id(req, &tenant, &err) ||
        !http_api_body(req, &POLICY_SPEC, &body, &doc, &err))
        goto fail;
    if (body.placement != NULL) {
        policy.has_placement = true;
        if (!placement_policy_from_json(body.placement, &policy.placement, &err)) {
            err_prefix(&err, "placement: ");
            goto fail;
        }
    }
    if (body.scheduling_p == JSON_PRESENCE_SET) {
        policy.has_scheduling = true;
        if (!shard_scheduling_policy_parse(body.scheduling, &policy.scheduling, &err)) {
            err_prefix(&err, "scheduling: ");
            goto fail;
        }
    }
    json_decref(doc);
    doc = NULL;
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    service_tenant_policy(svc, &tenant, &policy, http_api_op_json_done,
                          http_api_op_new(req, app, svc, 200));
    return;
fail:
    json_decref(doc);
    http_reply_error(req, &err);
}

/* ---- PUT /control/v1/preferred_azs ---- */

typedef struct PreferredAzsBody {
    json_t *ids; /* borrowed from the document */
} PreferredAzsBody;

static const JsonField PREFERRED_AZS_FIELDS[] = {
    JSON_FIELD(PreferredAzsBody, ids, "preferred_az_ids", JSON_FIELD_OBJECT, JSON_REQUIRED),
};
static const JsonSpec PREFERRED_AZS_SPEC =
    JSON_SPEC("preferred azs", PREFERRED_AZS_FIELDS, JSON_UNKNOWN_REJECT);

/* http_tenants_preferred_azs: {"preferred_az_ids": {"<tsid>": "<az>" or null}}. */
void http_tenants_preferred_azs(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    json_t *doc = NULL;
    PreferredAzsBody body = {0};
    ServicePreferredAz *items = NULL;
    if (!http_api_body(req, &PREFERRED_AZS_SPEC, &body, &doc, &err))
        goto fail;
    size_t n = json_object_size(body.ids), i = 0;
    items = xcalloc(n > 0 ? n : 1, sizeof(*items));
    const char *key;
    json_t *value;
    json_object_foreach(body.ids, key, value)
    {
        ServicePreferredAz *it = &items[i++];
        if (!tsid_parse(key, &it->tsid, &err)) {
            err_prefix(&err, "preferred_az_ids: ");
            goto fail;
        }
        if (json_is_null(value))
            continue;
        if (!json_is_string(value) || json_string_length(value) == 0 ||
            json_string_length(value) >= sizeof(it->az)) {
            err_set(&err, ERR_BAD_REQUEST,
                    "preferred_az_ids: %s: expected an AZ name (1 to %zu characters) or null", key,
                    sizeof(it->az) - 1);
            goto fail;
        }
        memcpy(it->az, json_string_value(value), json_string_length(value) + 1);
    }
    Service *svc = http_api_service(req, app);
    if (svc != NULL)
        service_preferred_azs(svc, items, n, http_api_op_json_done,
                              http_api_op_new(req, app, svc, 200));
    free(items);
    json_decref(doc);
    return;
fail:
    free(items);
    json_decref(doc);
    http_reply_error(req, &err);
}

/* ---- GET /control/v1/tenant/{tenant_id}/timeline/{timeline_id}/import ---- */

void http_tenants_import_describe(HttpRequest *req, void *app)
{
    timeline_call(req, app, service_import_describe);
}
