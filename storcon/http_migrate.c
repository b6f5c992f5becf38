/*
 * http_migrate.c: PUT /control/v1/tenant/{tenant_shard_id}/migrate and .../migrate_secondary
 * (Neon's TenantShardMigrateRequest -> TenantShardMigrateResponse {}; docs/api.md "Shard
 * migration"). Decoding only; the operation is storcon/service_migrate.c.
 */
#include <string.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/json.h"
#include "storcon/http_api.h"
#include "storcon/service_migrate.h"

/* MigrationConfig: validated; secondary_warmup_timeout bounds the migration's warm-up step
 * (storcon/reconcile_migrate.h); prewarm (default true, as in Neon) false moves a shard whose
 * destination holds no secondary at once, without waiting for a warm-up; override_scheduler and
 * secondary_download_request_timeout are accepted and have no effect here. */
#define MIGRATE_WARMUP_MAX_MS (3600 * 1000ull)

typedef struct MigrationConfigBody {
    bool override_scheduler;
    bool prewarm;
    JsonPresence prewarm_p;
    uint64_t warmup_ms;
    JsonPresence warmup_p;
    uint64_t request_ms;
} MigrationConfigBody;

static const JsonField MIGRATION_CONFIG_FIELDS[] = {
    JSON_FIELD(MigrationConfigBody, override_scheduler, "override_scheduler", JSON_FIELD_BOOL, 0),
    JSON_FIELD_P(MigrationConfigBody, prewarm, prewarm_p, "prewarm", JSON_FIELD_BOOL, 0),
    JSON_FIELD_P(MigrationConfigBody, warmup_ms, warmup_p, "secondary_warmup_timeout",
                 JSON_FIELD_DURATION, JSON_NULLABLE),
    JSON_FIELD(MigrationConfigBody, request_ms, "secondary_download_request_timeout",
               JSON_FIELD_DURATION, JSON_NULLABLE),
};
static const JsonSpec MIGRATION_CONFIG_SPEC =
    JSON_SPEC("migration_config", MIGRATION_CONFIG_FIELDS, JSON_UNKNOWN_REJECT);

typedef struct MigrateBody {
    NodeId node_id;
    NodeId origin_node_id;
    MigrationConfigBody config;
} MigrateBody;

static const JsonField MIGRATE_FIELDS[] = {
    JSON_FIELD(MigrateBody, node_id, "node_id", JSON_FIELD_NODE_ID, JSON_REQUIRED),
    JSON_FIELD(MigrateBody, origin_node_id, "origin_node_id", JSON_FIELD_NODE_ID, JSON_NULLABLE),
    JSON_NESTED(MigrateBody, config, "migration_config", &MIGRATION_CONFIG_SPEC, JSON_NULLABLE),
};
static const JsonSpec MIGRATE_SPEC = JSON_SPEC("migrate", MIGRATE_FIELDS, JSON_UNKNOWN_REJECT);

static void migrate(HttpRequest *req, void *app, bool secondary)
{
    Err err;
    err_clear(&err);
    json_t *doc = NULL;
    ServiceShardMigrate m;
    memset(&m, 0, sizeof(m));
    m.secondary = secondary;
    if (!http_api_param_tsid(req, &m.tsid, &err))
        goto fail;
    /* both routes take Neon's TenantShardMigrateRequest; migrate_secondary uses node_id only */
    MigrateBody body;
    memset(&body, 0, sizeof(body));
    body.origin_node_id = NODE_ID_NONE;
    if (!http_api_body(req, &MIGRATE_SPEC, &body, &doc, &err))
        goto fail;
    m.node = body.node_id;
    if (!secondary) {
        m.origin = body.origin_node_id;
        m.prewarm = body.config.prewarm_p != JSON_PRESENCE_SET || body.config.prewarm;
        m.warmup_set = body.config.warmup_p == JSON_PRESENCE_SET;
        m.warmup_ms = body.config.warmup_ms;
        if (m.warmup_set && m.warmup_ms > MIGRATE_WARMUP_MAX_MS) {
            err_set(&err, ERR_BAD_REQUEST,
                    "migration_config: field \"secondary_warmup_timeout\": at most 1h");
            goto fail;
        }
    }
    if (m.node == NODE_ID_NONE) {
        err_set(&err, ERR_BAD_REQUEST, "node_id: expected a node id");
        goto fail;
    }
    json_decref(doc);
    doc = NULL;
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    service_shard_migrate(svc, &m, http_api_op_json_done, http_api_op_new(req, app, svc, 200));
    return;
fail:
    json_decref(doc);
    http_reply_error(req, &err);
}

void http_migrate_shard(HttpRequest *req, void *app)
{
    migrate(req, app, false);
}

void http_migrate_secondary(HttpRequest *req, void *app)
{
    migrate(req, app, true);
}
