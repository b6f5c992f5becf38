/*
 * commands_migrate.c: `storconctl tenants migrate` and `tenants migrate-secondary`
 * (PUT /control/v1/tenant/{tsid}/migrate, .../migrate_secondary; docs/secondaries.md).
 *
 * --wait follows the move in the tenant describe: until the shard's intent has the node in the
 * asked role and no reconcile runs, printing the elapsed time while it waits; a reconcile that
 * ended with an error (last_error) ends the wait with exit code 1 (the controller retries it in
 * its background pass; run the command again with --wait to keep following).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "shared/id.h"
#include "shared/str.h"
#include "storconctl/ctl.h"

#define MIGRATE_POLL_MS        250
#define MIGRATE_WAIT_DEFAULT_S 300
#define MIGRATE_PATH_SIZE      256

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* shard_json: the describe entry of tsid (borrowed from desc), or NULL. */
static const json_t *shard_json(const json_t *desc, const char *tsid)
{
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(desc, "shards"), i, s)
    {
        const char *id = json_string_value(json_object_get(s, "tenant_shard_id"));
        if (id != NULL && strcmp(id, tsid) == 0)
            return s;
    }
    return NULL;
}

static bool has_secondary(const json_t *s, uint64_t node)
{
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(s, "node_secondary"), i, v)
    {
        if (json_is_integer(v) && (uint64_t)json_integer_value(v) == node)
            return true;
    }
    return false;
}

/* wait_moved: poll the describe until the shard is settled in its new place. */
static int wait_moved(Ctl *ctl, const TenantShardId *tsid, const char *tsid_s, uint64_t node,
                      bool secondary, long timeout_s)
{
    char tenant[ID_STR_SIZE], path[MIGRATE_PATH_SIZE];
    tenant_id_format(&tsid->tenant_id, tenant);
    snprintf(path, sizeof(path), "/control/v1/tenant/%s", tenant);
    double start = now_s();
    for (;;) {
        CtlResponse resp;
        ctl_http(ctl, "GET", path, NULL, &resp);
        if (!ctl_response_ok(&resp)) {
            int code = ctl_report_failure(ctl, "GET", path, &resp);
            ctl_response_finish(&resp);
            return code;
        }
        json_t *desc = json_loadb(resp.body, resp.body_len, 0, NULL);
        ctl_response_finish(&resp);
        const json_t *s = shard_json(desc, tsid_s);
        if (s == NULL) {
            json_decref(desc);
            fprintf(stderr, "%s: shard %s is gone from the tenant\n", CTL_PROGRAM, tsid_s);
            return CTL_EXIT_ERROR;
        }
        bool reconciling = json_is_true(json_object_get(s, "is_reconciling"));
        const char *last_error = json_string_value(json_object_get(s, "last_error"));
        json_t *att = json_object_get(s, "node_attached");
        bool placed = secondary ? has_secondary(s, node)
                                : json_is_integer(att) && (uint64_t)json_integer_value(att) == node;
        double elapsed = now_s() - start;
        if (!reconciling && last_error != NULL && last_error[0] != '\0') {
            fprintf(stderr, "%s: the move of %s stopped: %s\n", CTL_PROGRAM, tsid_s, last_error);
            json_decref(desc);
            return CTL_EXIT_ERROR;
        }
        if (placed && !reconciling) {
            if (ctl->json) {
                char *text = json_dumps(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                if (text != NULL)
                    printf("%s\n", text);
                free(text);
            } else {
                printf("%s is %s on node %" PRIu64 " (%.1f s)\n", tsid_s,
                       secondary ? "secondary" : "attached", node, elapsed);
            }
            json_decref(desc);
            return CTL_EXIT_OK;
        }
        json_decref(desc);
        if (!placed) {
            fprintf(stderr, "%s: the intent of %s no longer has node %" PRIu64 " (moved again?)\n",
                    CTL_PROGRAM, tsid_s, node);
            return CTL_EXIT_ERROR;
        }
        if (elapsed > (double)timeout_s) {
            fprintf(stderr, "%s: %s still moving after %ld s\n", CTL_PROGRAM, tsid_s, timeout_s);
            return CTL_EXIT_ERROR;
        }
        if (!ctl->json)
            fprintf(stderr, "\rmoving %s to node %" PRIu64 ": %.1f s", tsid_s, node, elapsed);
        ctl_sleep_ms(MIGRATE_POLL_MS);
        if (!ctl->json)
            fprintf(stderr, "\r%*s\r", 70, "");
    }
}

static int migrate(Ctl *ctl, int argc, char **argv, bool secondary)
{
    const CtlCommand *self =
        ctl_command_find(secondary ? "tenants migrate-secondary" : "tenants migrate");
    const char *origin_s = NULL, *timeout_str = NULL;
    bool wait = false, prewarm = false;
    const CtlOpt opts[] = {{"wait", NULL, &wait},
                           {"timeout", &timeout_str, NULL},
                           {"origin", &origin_s, NULL}, /* migrate only */
                           {"prewarm", NULL, &prewarm}};
    char *pos[2];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, opts, secondary ? 2 : 4, pos, 2, &n_pos, &code))
        return code;
    if (n_pos != 2)
        return ctl_usage_error(self, "expected TENANT_SHARD_ID NODE_ID");
    TenantShardId tsid;
    Err err = {0};
    if (!tsid_parse(pos[0], &tsid, &err))
        return ctl_usage_error(self, "TENANT_SHARD_ID: %s", err.msg);
    uint64_t node = 0, origin = 0, timeout_s = MIGRATE_WAIT_DEFAULT_S;
    if (!parse_u64(pos[1], 0, INT64_MAX, &node))
        return ctl_usage_error(self, "NODE_ID: a node id");
    if (origin_s != NULL && !parse_u64(origin_s, 0, INT64_MAX, &origin))
        return ctl_usage_error(self, "--origin: a node id");
    if (timeout_str != NULL && !parse_u64(timeout_str, 1, 86400, &timeout_s))
        return ctl_usage_error(self, "--timeout: seconds (1 to 86400)");
    json_t *body = json_pack("{s:I}", "node_id", (json_int_t)node);
    if (origin_s != NULL)
        json_object_set_new(body, "origin_node_id", json_integer((json_int_t)origin));
    if (!secondary) /* as Neon's CLI: prewarm only when asked */
        json_object_set_new(body, "migration_config", json_pack("{s:b}", "prewarm", prewarm));
    char tsid_s[TSID_STR_SIZE], path[MIGRATE_PATH_SIZE];
    tsid_format(&tsid, tsid_s);
    snprintf(path, sizeof(path), "/control/v1/tenant/%s/%s", tsid_s,
             secondary ? "migrate_secondary" : "migrate");
    CtlResponse resp;
    ctl_http(ctl, "PUT", path, body, &resp);
    json_decref(body);
    if (!ctl_response_ok(&resp)) {
        code = ctl_report_failure(ctl, "PUT", path, &resp);
        ctl_response_finish(&resp);
        return code;
    }
    if (ctl->json && !wait)
        printf("%s\n", resp.body);
    ctl_response_finish(&resp);
    if (!wait) {
        if (!ctl->json)
            printf("moving %s %s to node %" PRIu64 "\n", tsid_s,
                   secondary ? "(secondary)" : "(attached)", node);
        return CTL_EXIT_OK;
    }
    return wait_moved(ctl, &tsid, tsid_s, node, secondary, (long)timeout_s);
}

int ctl_cmd_tenants_migrate(Ctl *ctl, int argc, char **argv)
{
    return migrate(ctl, argc, argv, false);
}

int ctl_cmd_tenants_migrate_secondary(Ctl *ctl, int argc, char **argv)
{
    return migrate(ctl, argc, argv, true);
}
