/*
 * http_split.c: PUT /v1/tenant/{tsid}/shard_split (http_api.h): the TenantShardSplitRequest body
 * (shared/shard_split.h), then tenant_shard_split (shard_split.h); 200 {"new_shards": [...]}.
 */
#include "pageserver/http_api.h"

#include "shared/shard_split.h"

#include "pageserver/app.h"
#include "pageserver/shard_split.h"

void http_handle_shard_split(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    json_t *body = NULL;
    ShardSplitRequest r;
    bool ok = http_param_tsid(req, &tsid, &err) && http_request_json(req, &body, &err) &&
              shard_split_request_decode(body, &r, &err);
    json_decref(body);
    if (!ok) {
        http_reply_error(req, &err);
        return;
    }
    tenant_shard_split(app->tenants, &tsid, &r, http_json_200, http_await(req, app));
}
