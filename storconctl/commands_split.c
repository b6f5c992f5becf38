/*
 * commands_split.c: `storconctl tenants split TENANT_ID COUNT [--stripe-size N] [--wait]`
 * (docs/split.md): PUT /control/v1/tenant/{id}/shard_split, then the new placement from
 * GET /control/v1/tenant/{id} (one line per shard: its node and secondaries). --wait first waits
 * until every child is attached, reconciled and its compute notification delivered.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/str.h"

#include "storconctl/ctl.h"

#define SPLIT_WAIT_MS    120000L
#define SPLIT_POLL_MS    500L
#define SPLIT_PATH_SIZE  256
#define SPLIT_MAX_STRIPE 2147483647u
#define SPLIT_MAX_COUNT  255u

/* describe: GET the tenant's TenantDescribe into *out; an exit code. */
static int describe(Ctl *ctl, const char *tenant, json_t **out)
{
    char path[SPLIT_PATH_SIZE];
    (void)str_printf(path, sizeof(path), "/control/v1/tenant/%s", tenant);
    CtlResponse resp;
    ctl_http(ctl, "GET", path, NULL, &resp);
    if (!ctl_response_ok(&resp)) {
        int code = ctl_report_failure(ctl, "GET", path, &resp);
        ctl_response_finish(&resp);
        return code;
    }
    *out = json_loads(resp.body, 0, NULL);
    ctl_response_finish(&resp);
    if (*out == NULL) {
        fprintf(stderr, CTL_PROGRAM ": GET %s: the answer is not JSON\n", path);
        return CTL_EXIT_ERROR;
    }
    return CTL_EXIT_OK;
}

/* settled: every shard attached, not reconciling, no notification pending. */
static bool settled(const json_t *desc)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(desc, "shards"), i, s)
    {
        if (!json_is_integer(json_object_get(s, "node_attached")) ||
            json_is_true(json_object_get(s, "is_reconciling")) ||
            json_is_true(json_object_get(s, "is_pending_compute_notification")) ||
            json_is_true(json_object_get(s, "is_splitting")))
            return false;
    }
    return json_array_size(json_object_get(desc, "shards")) > 0;
}

static void print_placement(const json_t *desc, const char *tenant)
{
    json_t *shards = json_object_get(desc, "shards");
    printf("tenant %s: %zu shards, stripe size %lld\n", tenant, json_array_size(shards),
           (long long)json_integer_value(json_object_get(desc, "stripe_size")));
    printf("%-40s %-8s %s\n", "SHARD", "NODE", "SECONDARIES");
    size_t i;
    json_t *s;
    json_array_foreach(shards, i, s)
    {
        char node[32] = "-";
        json_t *a = json_object_get(s, "node_attached");
        if (json_is_integer(a))
            (void)str_printf(node, sizeof(node), "%lld", (long long)json_integer_value(a));
        char *sec =
            json_dumps(json_object_get(s, "node_secondary"), JSON_COMPACT | JSON_ENCODE_ANY);
        const char *id = json_string_value(json_object_get(s, "tenant_shard_id"));
        printf("%-40s %-8s %s\n", id != NULL ? id : "?", node, sec != NULL ? sec : "[]");
        free(sec);
    }
}

int ctl_cmd_tenants_split(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("tenants split");
    const char *stripe_s = NULL;
    bool wait = false;
    const CtlOpt opts[] = {{"stripe-size", &stripe_s, NULL}, {"wait", NULL, &wait}};
    char *pos[2];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 2, &n_pos,
                        &code))
        return code;
    if (n_pos != 2)
        return ctl_usage_error(self, "give a tenant id and the new shard count");
    TenantId tenant;
    Err err = {0};
    if (!tenant_id_parse(pos[0], &tenant, &err))
        return ctl_usage_error(self, "%s", err.msg);
    uint64_t count = 0, stripe = 0;
    if (!parse_u64(pos[1], 1, SPLIT_MAX_COUNT, &count))
        return ctl_usage_error(self, "COUNT: a shard count from 1 to %u", SPLIT_MAX_COUNT);
    if (stripe_s != NULL && !parse_u64(stripe_s, 1, SPLIT_MAX_STRIPE, &stripe))
        return ctl_usage_error(self, "--stripe-size: a number of 8 KiB pages above 0");
    char id[ID_STR_SIZE];
    tenant_id_format(&tenant, id);

    json_t *body = json_object();
    json_object_set_new(body, "new_shard_count", json_integer((json_int_t)count));
    if (stripe_s != NULL)
        json_object_set_new(body, "new_stripe_size", json_integer((json_int_t)stripe));
    char path[SPLIT_PATH_SIZE];
    (void)str_printf(path, sizeof(path), "/control/v1/tenant/%s/shard_split", id);
    CtlResponse resp;
    ctl_http(ctl, "PUT", path, body, &resp);
    json_decref(body);
    if (!ctl_response_ok(&resp)) {
        code = ctl_report_failure(ctl, "PUT", path, &resp);
        ctl_response_finish(&resp);
        return code;
    }
    ctl_response_finish(&resp);

    json_t *desc = NULL;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        code = describe(ctl, id, &desc);
        if (code != CTL_EXIT_OK)
            return code;
        if (!wait || settled(desc))
            break;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (long)(now.tv_sec - start.tv_sec) * 1000L +
                       (long)(now.tv_nsec - start.tv_nsec) / 1000000L;
        if (elapsed > SPLIT_WAIT_MS) {
            fprintf(stderr, CTL_PROGRAM ": the children of %s did not settle within %ld s\n", id,
                    SPLIT_WAIT_MS / 1000);
            json_decref(desc);
            return CTL_EXIT_ERROR;
        }
        json_decref(desc);
        desc = NULL;
        ctl_sleep_ms(SPLIT_POLL_MS);
    }
    if (ctl->json) {
        char *text = json_dumps(desc, JSON_INDENT(2));
        printf("%s\n", text != NULL ? text : "{}");
        free(text);
    } else {
        print_placement(desc, id);
    }
    json_decref(desc);
    return CTL_EXIT_OK;
}
