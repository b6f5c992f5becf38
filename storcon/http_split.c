/*
 * http_split.c: PUT /control/v1/tenant/{tenant_id}/shard_split (http_api.h): the
 * TenantShardSplitRequest body (shared/shard_split.h), then service_tenant_shard_split
 * (service_split.h); 200 TenantShardSplitResponse {"new_shards": [tsid, ...]}.
 */
#include "storcon/http_api.h"

#include "shared/shard_split.h"
#include "storcon/service_split.h"

void http_tenants_shard_split(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    TenantId tenant;
    json_t *body = NULL;
    ShardSplitRequest r;
    bool ok = http_api_param_tenant_id(req, &tenant, &err) && http_request_json(req, &body, &err) &&
              shard_split_request_decode(body, &r, &err);
    json_decref(body);
    if (!ok) {
        http_reply_error(req, &err);
        return;
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    service_tenant_shard_split(svc, &tenant, &r, http_api_op_json_done,
                               http_api_op_new(req, app, svc, 200));
}
