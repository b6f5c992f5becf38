/*
 * commands_storage.c: storconctl's commands for nodes, tenants and timelines (the rows
 * "nodes list", "tenants create", ... of CTL_COMMANDS in commands.c). Each prints a table for
 * people, or with --json the controller's JSON answer unchanged, for scripts; an error answer is
 * printed as "storconctl: <status> <msg>" with exit code 1 (2 when there is no answer).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/str.h"

#include "storconctl/ctl.h"

#define PATH_SIZE 512

/* ---- helpers ---- */

/* print_json_doc: --json output: the document as the controller sent it (indented). Steals j. */
static void print_json_doc(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    json_decref(j);
    if (text != NULL) {
        printf("%s\n", text);
        free(text);
    }
}

/* call: one request; a failure is reported and its exit code returned. On success *out (may be
 * NULL to discard) receives the parsed answer (null when the body is not JSON). */
static int call(Ctl *ctl, const char *method, const char *path, const json_t *body, json_t **out)
{
    CtlResponse resp;
    ctl_http(ctl, method, path, body, &resp);
    if (!ctl_response_ok(&resp)) {
        int code = ctl_report_failure(ctl, method, path, &resp);
        ctl_response_finish(&resp);
        return code;
    }
    if (out != NULL) {
        *out = json_loadb(resp.body, resp.body_len, JSON_DECODE_ANY, NULL);
        if (*out == NULL)
            *out = json_null();
    }
    ctl_response_finish(&resp);
    return CTL_EXIT_OK;
}

/* call_and_print: for commands whose human output is one line: --json prints the answer, else
 * "<done> <what>". */
static int call_and_print(Ctl *ctl, const char *method, const char *path, const json_t *body,
                          const char *done, const char *what)
{
    json_t *out = NULL;
    int code = call(ctl, method, path, body, &out);
    if (code != CTL_EXIT_OK)
        return code;
    if (ctl->json) {
        print_json_doc(out);
    } else {
        json_decref(out);
        printf("%s %s\n", done, what);
    }
    return CTL_EXIT_OK;
}

static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : dflt;
}

/* num_text: a JSON number (or null) as text, for table cells. */
static void num_text(const json_t *v, char *out, size_t cap)
{
    if (json_is_integer(v))
        snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_string(v))
        snprintf(out, cap, "%s", json_string_value(v));
    else
        snprintf(out, cap, "-");
}

static bool parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    return s != NULL && parse_u64(s, min, max, out);
}

/* parse_placement: '{"Attached": 1}' / '"Secondary"' as JSON, or the shorthands "Attached:N",
 * "Attached" (= 0 secondaries), "Secondary", "Detached". NULL when malformed. */
static json_t *parse_placement(const char *s)
{
    if (strcmp(s, "Secondary") == 0 || strcmp(s, "Detached") == 0)
        return json_string(s);
    if (strcmp(s, "Attached") == 0)
        return json_pack("{s:i}", "Attached", 0);
    if (str_has_prefix(s, "Attached:")) {
        uint64_t n = 0;
        if (!parse_u64(s + 9, 0, 255, &n))
            return NULL;
        return json_pack("{s:I}", "Attached", (json_int_t)n);
    }
    return json_loads(s, JSON_DECODE_ANY, NULL);
}

/* ---- nodes ---- */

int ctl_cmd_nodes_list(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("nodes list");
    char *pos[1];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, NULL, 0, pos, 0, &n_pos, &code))
        return code;
    json_t *out = NULL;
    code = call(ctl, "GET", "/control/v1/node", NULL, &out);
    if (code != CTL_EXIT_OK)
        return code;
    if (ctl->json) {
        print_json_doc(out);
        return CTL_EXIT_OK;
    }
    printf("%-6s %-12s %-16s %-12s %-24s %-24s\n", "ID", "AVAILABILITY", "SCHEDULING", "AZ", "HTTP",
           "PG");
    size_t i;
    json_t *n;
    json_array_foreach(out, i, n)
    {
        char id[32], hp[32], pp[32], http[HOST_MAX + 40], pg[HOST_MAX + 40];
        num_text(json_object_get(n, "id"), id, sizeof(id));
        num_text(json_object_get(n, "listen_http_port"), hp, sizeof(hp));
        num_text(json_object_get(n, "listen_pg_port"), pp, sizeof(pp));
        snprintf(http, sizeof(http), "%s:%s", str_or(n, "listen_http_addr", "?"), hp);
        snprintf(pg, sizeof(pg), "%s:%s", str_or(n, "listen_pg_addr", "?"), pp);
        printf("%-6s %-12s %-16s %-12s %-24s %-24s\n", id, str_or(n, "availability", "?"),
               str_or(n, "scheduling", "?"), str_or(n, "availability_zone_id", "?"), http, pg);
    }
    json_decref(out);
    return CTL_EXIT_OK;
}

/* set_host_port: "host:port" into the body's <prefix>_addr / <prefix>_port. */
static bool set_host_port(json_t *body, const char *prefix, const char *value)
{
    HostPort hp;
    Err err = {0};
    if (!host_port_parse(value, &hp, &err) || hp.port == 0)
        return false;
    char key[64];
    snprintf(key, sizeof(key), "%s_addr", prefix);
    json_object_set_new(body, key, json_string(hp.host));
    snprintf(key, sizeof(key), "%s_port", prefix);
    json_object_set_new(body, key, json_integer(hp.port));
    return true;
}

int ctl_cmd_nodes_register(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("nodes register");
    const char *id_s = NULL, *http = NULL, *pg = NULL, *az = NULL, *https = NULL;
    const CtlOpt opts[] = {
        {"id", &id_s, NULL}, {"http", &http, NULL},        {"pg", &pg, NULL},
        {"az", &az, NULL},   {"https-port", &https, NULL},
    };
    char *pos[1];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 0, &n_pos,
                        &code))
        return code;
    uint64_t id = 0, https_port = 0;
    if (!parse_number(id_s, 0, INT64_MAX, &id))
        return ctl_usage_error(self, "--id N is required (a node id)");
    if (http == NULL || pg == NULL || az == NULL)
        return ctl_usage_error(self, "--http, --pg and --az are required");
    if (https != NULL && !parse_number(https, 1, 65535, &https_port))
        return ctl_usage_error(self, "--https-port: not a port number");
    json_t *body = json_pack("{s:I, s:s}", "node_id", (json_int_t)id, "availability_zone_id", az);
    if (body == NULL || !set_host_port(body, "listen_http", http) ||
        !set_host_port(body, "listen_pg", pg)) {
        json_decref(body);
        return ctl_usage_error(self, "--http / --pg: expected HOST:PORT");
    }
    if (https != NULL)
        json_object_set_new(body, "listen_https_port", json_integer((json_int_t)https_port));
    char what[32];
    snprintf(what, sizeof(what), "%" PRIu64, id);
    code = call_and_print(ctl, "POST", "/control/v1/node", body, "registered node", what);
    json_decref(body);
    return code;
}

int ctl_cmd_nodes_configure(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("nodes configure");
    const char *avail = NULL, *sched = NULL;
    const CtlOpt opts[] = {{"availability", &avail, NULL}, {"scheduling", &sched, NULL}};
    char *pos[1];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 1, &n_pos,
                        &code))
        return code;
    uint64_t id = 0;
    if (n_pos != 1 || !parse_number(pos[0], 0, INT64_MAX, &id))
        return ctl_usage_error(self, "give the node id");
    if (avail == NULL && sched == NULL)
        return ctl_usage_error(self, "give --availability and/or --scheduling");
    json_t *body = json_pack("{s:I}", "node_id", (json_int_t)id);
    if (avail != NULL)
        json_object_set_new(body, "availability", json_string(avail));
    if (sched != NULL)
        json_object_set_new(body, "scheduling", json_string(sched));
    char path[PATH_SIZE];
    snprintf(path, sizeof(path), "/control/v1/node/%" PRIu64 "/config", id);
    code = call_and_print(ctl, "PUT", path, body, "configured node", pos[0]);
    json_decref(body);
    return code;
}

/* ---- tenants ---- */

/* tenant_arg: a positional tenant id checked locally, so a typo is a usage error (64), not a
 * round trip. */
static bool tenant_arg(const CtlCommand *self, const char *s, TenantId *out, int *code)
{
    Err err = {0};
    if (!tenant_id_parse(s, out, &err)) {
        *code = ctl_usage_error(self, "%s", err.msg);
        return false;
    }
    return true;
}

/* tenant_command_args: parse a command's arguments whose first positional is a tenant id (a
 * missing or malformed one is a usage error: *code 64). */
static bool tenant_command_args(Ctl *ctl, const CtlCommand *self, int argc, char **argv,
                                const CtlOpt *opts, size_t n_opts, char **pos, int max_pos,
                                int *n_pos, int *code)
{
    if (!ctl_parse_args(ctl, self, argc, argv, opts, n_opts, pos, max_pos, n_pos, code))
        return false;
    if (*n_pos < 1) {
        *code = ctl_usage_error(self, "give the tenant id");
        return false;
    }
    TenantId t;
    return tenant_arg(self, pos[0], &t, code);
}

int ctl_cmd_tenants_create(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("tenants create");
    const char *count_s = NULL, *stripe_s = NULL, *placement_s = NULL, *config_s = NULL,
               *gen_s = NULL;
    const CtlOpt opts[] = {
        {"shard-count", &count_s, NULL},   {"stripe-size", &stripe_s, NULL},
        {"placement", &placement_s, NULL}, {"config", &config_s, NULL},
        {"generation", &gen_s, NULL},
    };
    char *pos[1];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 1, &n_pos,
                        &code))
        return code;
    TenantId tenant;
    if (n_pos == 1) {
        if (!tenant_arg(self, pos[0], &tenant, &code))
            return code;
    } else {
        tenant_id_generate(&tenant);
    }
    char tid[ID_STR_SIZE];
    tenant_id_format(&tenant, tid);
    json_t *body = NULL;
    if (config_s != NULL) {
        body = json_loads(config_s, 0, NULL);
        if (!json_is_object(body)) {
            json_decref(body);
            return ctl_usage_error(self, "--config: expected a JSON object of tenant settings");
        }
    } else {
        body = json_object();
    }
    json_object_set_new(body, "new_tenant_id", json_string(tid));
    uint64_t count = 0, stripe = 0, gen = 0;
    if (count_s != NULL || stripe_s != NULL) {
        if (count_s != NULL && !parse_number(count_s, 0, 255, &count)) {
            json_decref(body);
            return ctl_usage_error(self, "--shard-count: a number in [0, 255]");
        }
        if (stripe_s != NULL && !parse_number(stripe_s, 1, UINT32_MAX, &stripe)) {
            json_decref(body);
            return ctl_usage_error(self, "--stripe-size: a positive number of 8 KiB pages");
        }
        json_t *sp = json_pack("{s:I}", "count", (json_int_t)count);
        if (stripe_s != NULL)
            json_object_set_new(sp, "stripe_size", json_integer((json_int_t)stripe));
        json_object_set_new(body, "shard_parameters", sp);
    }
    if (placement_s != NULL) {
        json_t *p = parse_placement(placement_s);
        if (p == NULL) {
            json_decref(body);
            return ctl_usage_error(self, "--placement: Attached:N, Secondary, Detached or JSON");
        }
        json_object_set_new(body, "placement_policy", p);
    }
    if (gen_s != NULL) {
        if (!parse_number(gen_s, 0, UINT32_MAX, &gen)) {
            json_decref(body);
            return ctl_usage_error(self, "--generation: a number");
        }
        json_object_set_new(body, "generation", json_integer((json_int_t)gen));
    }
    json_t *out = NULL;
    code = call(ctl, "POST", "/v1/tenant", body, &out);
    json_decref(body);
    if (code != CTL_EXIT_OK)
        return code;
    if (ctl->json) {
        print_json_doc(out);
        return CTL_EXIT_OK;
    }
    printf("created tenant %s\n%-40s %-8s %s\n", tid, "SHARD", "NODE", "GENERATION");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(out, "shards"), i, s)
    {
        char node[32], g[32];
        num_text(json_object_get(s, "node_id"), node, sizeof(node));
        num_text(json_object_get(s, "generation"), g, sizeof(g));
        printf("%-40s %-8s %s\n", str_or(s, "shard_id", "?"), node, g);
    }
    json_decref(out);
    return CTL_EXIT_OK;
}

/* print_describe: one TenantDescribe as a header and a shard table. */
/* secondary_warmth: how much of its heatmap a secondary location holds, from its pageserver's
 * GET /v1/tenant/{tsid}/secondary/status (SecondaryProgress): "<downloaded>/<total> layers";
 * "?" when the node is unknown or its pageserver does not answer (down, or a token it refuses). */
static void secondary_warmth(Ctl *ctl, const json_t *nodes, const json_t *node_id, const char *tsid,
                             char *out, size_t cap)
{
    str_copy(out, cap, "?");
    size_t i;
    const json_t *n, *found = NULL;
    json_array_foreach(nodes, i, n)
    {
        if (json_equal(json_object_get(n, "id"), node_id))
            found = n;
    }
    const char *addr = json_string_value(json_object_get(found, "listen_http_addr"));
    json_int_t port = json_integer_value(json_object_get(found, "listen_http_port"));
    if (addr == NULL || port <= 0)
        return;
    char *url =
        str_dup_printf("http://%s:%lld/v1/tenant/%s/secondary/status", addr, (long long)port, tsid);
    CtlResponse resp;
    ctl_http_url(ctl, "GET", url, NULL, &resp);
    free(url);
    json_t *p = ctl_response_ok(&resp) ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
    const json_t *done = json_object_get(p, "layers_downloaded");
    const json_t *total = json_object_get(p, "layers_total");
    if (json_is_integer(done) && json_is_integer(total))
        snprintf(out, cap, "%lld/%lld layers", (long long)json_integer_value(done),
                 (long long)json_integer_value(total));
    json_decref(p);
    ctl_response_finish(&resp);
}

/* print_describe: the shard table; each secondary with its warmth, read from its pageserver (the
 * storage controller does not track download progress). */
static void print_describe(Ctl *ctl, const json_t *t)
{
    char stripe[32];
    num_text(json_object_get(t, "stripe_size"), stripe, sizeof(stripe));
    char *policy = json_dumps(json_object_get(t, "policy"), JSON_COMPACT | JSON_ENCODE_ANY);
    printf("tenant %s  stripe_size %s  policy %s\n", str_or(t, "tenant_id", "?"), stripe,
           policy != NULL ? policy : "-");
    free(policy);
    json_t *nodes = NULL;
    CtlResponse resp;
    ctl_http(ctl, "GET", "/control/v1/node", NULL, &resp);
    if (ctl_response_ok(&resp))
        nodes = json_loadb(resp.body, resp.body_len, 0, NULL);
    ctl_response_finish(&resp);
    printf("%-40s %-8s %-24s %-11s %-10s %s\n", "SHARD", "ATTACHED", "SECONDARIES (WARMTH)",
           "RECONCILING", "SCHEDULING", "LAST ERROR");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(t, "shards"), i, s)
    {
        char att[32];
        num_text(json_object_get(s, "node_attached"), att, sizeof(att));
        const char *tsid = str_or(s, "tenant_shard_id", "?");
        char sec[256] = "";
        size_t k;
        json_t *n;
        json_array_foreach(json_object_get(s, "node_secondary"), k, n)
        {
            char one[32], warmth[48];
            num_text(n, one, sizeof(one));
            secondary_warmth(ctl, nodes, n, tsid, warmth, sizeof(warmth));
            size_t len = strlen(sec);
            snprintf(sec + len, sizeof(sec) - len, "%s%s (%s)", len ? ", " : "", one, warmth);
        }
        const char *err = str_or(s, "last_error", "");
        printf("%-40s %-8s %-24s %-11s %-10s %s\n", tsid, att, sec[0] ? sec : "-",
               json_is_true(json_object_get(s, "is_reconciling")) ? "yes" : "no",
               str_or(s, "scheduling_policy", "?"), err[0] ? err : "-");
    }
    json_decref(nodes);
}

/* tenant_get_command: the whole of a command that takes one tenant id, GETs
 * <path_prefix><id><path_suffix> and prints the answer with print (or as JSON with --json). */
static int tenant_get_command(Ctl *ctl, const char *name, int argc, char **argv,
                              const char *path_prefix, const char *path_suffix,
                              void (*print)(Ctl *, const json_t *, const char *))
{
    const CtlCommand *self = ctl_command_find(name);
    char *pos[1];
    int n_pos = 0, code = 0;
    if (!tenant_command_args(ctl, self, argc, argv, NULL, 0, pos, 1, &n_pos, &code))
        return code;
    char path[PATH_SIZE];
    snprintf(path, sizeof(path), "%s%s%s", path_prefix, pos[0], path_suffix);
    json_t *out = NULL;
    code = call(ctl, "GET", path, NULL, &out);
    if (code != CTL_EXIT_OK)
        return code;
    if (ctl->json) {
        print_json_doc(out);
        return CTL_EXIT_OK;
    }
    print(ctl, out, pos[0]);
    json_decref(out);
    return CTL_EXIT_OK;
}

static void print_describe_doc(Ctl *ctl, const json_t *out, const char *tenant)
{
    (void)tenant;
    print_describe(ctl, out);
}

int ctl_cmd_tenants_describe(Ctl *ctl, int argc, char **argv)
{
    return tenant_get_command(ctl, "tenants describe", argc, argv, "/control/v1/tenant/", "",
                              print_describe_doc);
}

int ctl_cmd_tenants_list(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("tenants list");
    const char *limit_s = NULL, *after_s = NULL;
    const CtlOpt opts[] = {{"limit", &limit_s, NULL}, {"start-after", &after_s, NULL}};
    char *pos[1];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 0, &n_pos,
                        &code))
        return code;
    uint64_t limit = 0;
    TenantId after;
    if (limit_s != NULL && !parse_number(limit_s, 1, 1000000, &limit))
        return ctl_usage_error(self, "--limit: a positive number");
    if (after_s != NULL && !tenant_arg(self, after_s, &after, &code))
        return code;
    StrBuf path = STRBUF_INIT;
    strbuf_append_str(&path, "/control/v1/tenant");
    char sep = '?';
    if (limit_s != NULL) {
        strbuf_printf(&path, "%climit=%s", sep, limit_s); /* digits, checked above */
        sep = '&';
    }
    if (after_s != NULL)
        strbuf_printf(&path, "%cstart_after=%s", sep, after_s); /* hex, checked above */
    json_t *out = NULL;
    code = call(ctl, "GET", path.data, NULL, &out);
    strbuf_finish(&path);
    if (code != CTL_EXIT_OK)
        return code;
    if (ctl->json) {
        print_json_doc(out);
        return CTL_EXIT_OK;
    }
    printf("%-32s %-6s %-8s %-10s %s\n", "TENANT", "SHARDS", "STRIPE", "ATTACHED", "POLICY");
    size_t i;
    json_t *t;
    json_array_foreach(out, i, t)
    {
        char stripe[32];
        num_text(json_object_get(t, "stripe_size"), stripe, sizeof(stripe));
        size_t n = json_array_size(json_object_get(t, "shards"));
        size_t attached = 0, k;
        json_t *s;
        json_array_foreach(json_object_get(t, "shards"), k, s)
        {
            if (json_is_integer(json_object_get(s, "node_attached")))
                attached++;
        }
        char *policy = json_dumps(json_object_get(t, "policy"), JSON_COMPACT | JSON_ENCODE_ANY);
        char att[32];
        snprintf(att, sizeof(att), "%zu/%zu", attached, n);
        printf("%-32s %-6zu %-8s %-10s %s\n", str_or(t, "tenant_id", "?"), n, stripe, att,
               policy != NULL ? policy : "-");
        free(policy);
    }
    json_decref(out);
    return CTL_EXIT_OK;
}

/* print_locate: the table of where each shard of a tenant is attached. */
static void print_locate(Ctl *ctl, const json_t *out, const char *tenant)
{
    (void)ctl;
    json_t *params = json_object_get(out, "shard_params");
    char count[32], stripe[32];
    num_text(json_object_get(params, "count"), count, sizeof(count));
    num_text(json_object_get(params, "stripe_size"), stripe, sizeof(stripe));
    printf("tenant %s  shard count %s  stripe_size %s\n", tenant, count, stripe);
    printf("%-40s %-6s %-24s %-24s\n", "SHARD", "NODE", "HTTP", "PG");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(out, "shards"), i, s)
    {
        char node[32], hp[32], pp[32], http[HOST_MAX + 40], pg[HOST_MAX + 40];
        num_text(json_object_get(s, "node_id"), node, sizeof(node));
        num_text(json_object_get(s, "listen_http_port"), hp, sizeof(hp));
        num_text(json_object_get(s, "listen_pg_port"), pp, sizeof(pp));
        snprintf(http, sizeof(http), "%s:%s", str_or(s, "listen_http_addr", "?"), hp);
        snprintf(pg, sizeof(pg), "%s:%s", str_or(s, "listen_pg_addr", "?"), pp);
        printf("%-40s %-6s %-24s %-24s\n", str_or(s, "shard_id", "?"), node, http, pg);
    }
}

int ctl_cmd_tenants_locate(Ctl *ctl, int argc, char **argv)
{
    return tenant_get_command(ctl, "tenants locate", argc, argv, "/debug/v1/tenant/", "/locate",
                              print_locate);
}

int ctl_cmd_tenants_delete(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("tenants delete");
    char *pos[1];
    int n_pos = 0, code = 0;
    if (!tenant_command_args(ctl, self, argc, argv, NULL, 0, pos, 1, &n_pos, &code))
        return code;
    char path[PATH_SIZE];
    snprintf(path, sizeof(path), "/v1/tenant/%s", pos[0]);
    return call_and_print(ctl, "DELETE", path, NULL, "deleted tenant", pos[0]);
}

int ctl_cmd_tenants_policy(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("tenants policy");
    const char *placement_s = NULL, *sched = NULL;
    const CtlOpt opts[] = {{"placement", &placement_s, NULL}, {"scheduling", &sched, NULL}};
    char *pos[1];
    int n_pos = 0, code = 0;
    if (!tenant_command_args(ctl, self, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 1,
                             &n_pos, &code))
        return code;
    if (placement_s == NULL && sched == NULL)
        return ctl_usage_error(self, "give --placement and/or --scheduling");
    json_t *body = json_object();
    if (placement_s != NULL) {
        json_t *p = parse_placement(placement_s);
        if (p == NULL) {
            json_decref(body);
            return ctl_usage_error(self, "--placement: Attached:N, Secondary, Detached or JSON");
        }
        json_object_set_new(body, "placement", p);
    }
    if (sched != NULL)
        json_object_set_new(body, "scheduling", json_string(sched));
    char path[PATH_SIZE];
    snprintf(path, sizeof(path), "/control/v1/tenant/%s/policy", pos[0]);
    code = call_and_print(ctl, "PUT", path, body, "updated the policy of tenant", pos[0]);
    json_decref(body);
    return code;
}

/* ---- timelines ---- */

int ctl_cmd_timelines_create(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("timelines create");
    const char *ancestor = NULL, *lsn_s = NULL, *pg_s = NULL;
    const CtlOpt opts[] = {
        {"ancestor", &ancestor, NULL}, {"ancestor-lsn", &lsn_s, NULL}, {"pg-version", &pg_s, NULL}};
    char *pos[2];
    int n_pos = 0, code = 0;
    if (!tenant_command_args(ctl, self, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 2,
                             &n_pos, &code))
        return code;
    Err err = {0};
    TimelineId tl, anc;
    Lsn lsn = 0;
    uint64_t pg = 0;
    if (n_pos == 2) {
        if (!timeline_id_parse(pos[1], &tl, &err))
            return ctl_usage_error(self, "%s", err.msg);
    } else {
        timeline_id_generate(&tl);
    }
    if (ancestor != NULL && !timeline_id_parse(ancestor, &anc, &err))
        return ctl_usage_error(self, "--ancestor: %s", err.msg);
    if (lsn_s != NULL && (ancestor == NULL || !lsn_parse(lsn_s, &lsn, &err)))
        return ctl_usage_error(self, "--ancestor-lsn needs --ancestor and an LSN (X/X)");
    if (pg_s != NULL && !parse_number(pg_s, 1, 1000, &pg))
        return ctl_usage_error(self, "--pg-version: a Postgres major version");
    char tls[ID_STR_SIZE];
    timeline_id_format(&tl, tls);
    json_t *body = json_pack("{s:s}", "new_timeline_id", tls);
    if (ancestor != NULL)
        json_object_set_new(body, "ancestor_timeline_id", json_string(ancestor));
    if (lsn_s != NULL)
        json_object_set_new(body, "ancestor_start_lsn", json_string(lsn_s));
    if (pg_s != NULL)
        json_object_set_new(body, "pg_version", json_integer((json_int_t)pg));
    char path[PATH_SIZE];
    snprintf(path, sizeof(path), "/v1/tenant/%s/timeline", pos[0]);
    json_t *out = NULL;
    code = call(ctl, "POST", path, body, &out);
    json_decref(body);
    if (code != CTL_EXIT_OK)
        return code;
    if (ctl->json) {
        print_json_doc(out);
        return CTL_EXIT_OK;
    }
    printf("created timeline %s of tenant %s at %s\n", tls, pos[0],
           str_or(out, "last_record_lsn", "?"));
    json_decref(out);
    return CTL_EXIT_OK;
}

int ctl_cmd_timelines_delete(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("timelines delete");
    char *pos[2];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, NULL, 0, pos, 2, &n_pos, &code))
        return code;
    TenantId t;
    TimelineId tl;
    Err err = {0};
    if (n_pos != 2)
        return ctl_usage_error(self, "give the tenant id and the timeline id");
    if (!tenant_arg(self, pos[0], &t, &code))
        return code;
    if (!timeline_id_parse(pos[1], &tl, &err))
        return ctl_usage_error(self, "%s", err.msg);
    char path[PATH_SIZE];
    snprintf(path, sizeof(path), "/v1/tenant/%s/timeline/%s", pos[0], pos[1]);
    return call_and_print(ctl, "DELETE", path, NULL, "deleted timeline", pos[1]);
}
