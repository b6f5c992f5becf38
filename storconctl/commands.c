/*
 * commands.c: storconctl's command table and handlers. A new command is one handler plus one row
 * in CTL_COMMANDS; `storconctl help` and the usage texts come from the table.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "shared/auth.h"
#include "shared/err.h"
#include "shared/id.h"
#include "shared/str.h"
#include "shared/units.h"

#include "storconctl/ctl.h"

/* print_json: one JSON document on stdout (--json output). Steals j. */
static void print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    json_decref(j);
    if (text != NULL) {
        printf("%s\n", text);
        free(text);
    }
}

static int cmd_help(Ctl *ctl, int argc, char **argv);

/* cmd_status: GET /status (is it listening) and GET /ready (has the startup reconcile finished);
 * the exit code answers "ready?" so scripts can poll it. */
static int cmd_status(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("status");
    char *pos[1];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, NULL, 0, pos, 0, &n_pos, &code))
        return code;

    CtlResponse st, rd;
    ctl_http(ctl, "GET", "/status", NULL, &st);
    if (!ctl_response_ok(&st)) {
        code = ctl_report_failure(ctl, "GET", "/status", &st);
        ctl_response_finish(&st);
        return code;
    }
    ctl_http(ctl, "GET", "/ready", NULL, &rd);
    if (rd.status == 0) {
        code = ctl_report_failure(ctl, "GET", "/ready", &rd);
        ctl_response_finish(&st);
        ctl_response_finish(&rd);
        return code;
    }
    bool ready = ctl_response_ok(&rd);
    char msg[ERR_MSG_SIZE] = "";
    if (!ready)
        ctl_response_msg(&rd, msg, sizeof(msg));
    if (ctl->json) {
        json_t *out = json_pack("{s:s, s:b, s:i, s:b, s:i}", "api", ctl->api, "up", 1, "status",
                                st.status, "ready", ready, "ready_status", rd.status);
        if (!ready && out != NULL)
            json_object_set_new(out, "ready_msg", json_string(msg));
        print_json(out);
    } else {
        printf("%-8s %s\n", "api", ctl->api);
        printf("%-8s up (%d)\n", "status", st.status);
        if (ready)
            printf("%-8s yes (%d)\n", "ready", rd.status);
        else
            printf("%-8s no (%d%s%s)\n", "ready", rd.status, msg[0] ? ": " : "", msg);
    }
    ctl_response_finish(&st);
    ctl_response_finish(&rd);
    return ready ? CTL_EXIT_OK : CTL_EXIT_ERROR;
}

/* cmd_token: sign a JWT locally (no HTTP): operators and tests mint tokens with the private key
 * whose public half the daemons verify with. */
static int cmd_token(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("token");
    const char *key = NULL, *scope_s = NULL, *tenant_s = NULL, *ttl_s = NULL;
    const CtlOpt opts[] = {
        {"private-key", &key, NULL},
        {"scope", &scope_s, NULL},
        {"tenant-id", &tenant_s, NULL},
        {"ttl", &ttl_s, NULL},
    };
    char *pos[1];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 0, &n_pos,
                        &code))
        return code;
    if (key == NULL)
        return ctl_usage_error(self, "--private-key is required");
    if (scope_s == NULL)
        return ctl_usage_error(self, "--scope is required");
    AuthScope scope;
    if (!auth_scope_parse(scope_s, &scope) || scope == AUTH_SCOPE_NONE)
        return ctl_usage_error(self, "--scope: unknown scope \"%s\"", scope_s);
    Err err = {0};
    TenantId tenant;
    if (tenant_s != NULL && !tenant_id_parse(tenant_s, &tenant, &err))
        return ctl_usage_error(self, "--tenant-id: %s", err.msg);
    int64_t exp = 0;
    if (ttl_s != NULL) {
        uint64_t ttl_ms = 0;
        if (!duration_parse_ms(ttl_s, &ttl_ms, &err))
            return ctl_usage_error(self, "--ttl: %s", err.msg);
        if (ttl_ms == 0)
            return ctl_usage_error(self, "--ttl must be positive");
        uint64_t ttl_s_up = (ttl_ms + 999) / 1000;
        if (ttl_s_up > (uint64_t)(INT64_MAX / 2))
            return ctl_usage_error(self, "--ttl is too long");
        exp = (int64_t)time(NULL) + (int64_t)ttl_s_up;
    }

    AuthSigner *signer = NULL;
    if (!auth_signer_new_from_file(key, &signer, &err)) {
        fprintf(stderr, "%s: --private-key: %s\n", CTL_PROGRAM, err.msg);
        return CTL_EXIT_ERROR;
    }
    char *jwt = NULL;
    bool ok = auth_sign(signer, scope, tenant_s != NULL ? &tenant : NULL, exp, &jwt, &err);
    auth_signer_free(signer);
    if (!ok) {
        fprintf(stderr, "%s: cannot sign the token: %s\n", CTL_PROGRAM, err.msg);
        return CTL_EXIT_ERROR;
    }
    if (ctl->json)
        print_json(json_pack("{s:s}", "token", jwt));
    else
        printf("%s\n", jwt);
    free(jwt);
    return CTL_EXIT_OK;
}

/* cmd_failpoints: arm failpoints in the controller (tests); NAME=ACTION splits at the first '='
 * because actions such as "return(a=b)" may contain one. */
static int cmd_failpoints(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("failpoints");
    char *pos[CTL_MAX_POSITIONAL];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, NULL, 0, pos, CTL_MAX_POSITIONAL, &n_pos, &code))
        return code;
    if (n_pos == 0)
        return ctl_usage_error(self, "give at least one NAME=ACTION");
    json_t *body = json_array();
    for (int i = 0; i < n_pos; i++) {
        const char *eq = strchr(pos[i], '=');
        if (eq == NULL || eq == pos[i] || eq[1] == '\0') {
            json_decref(body);
            return ctl_usage_error(self, "\"%s\": expected NAME=ACTION", pos[i]);
        }
        json_t *name = json_stringn(pos[i], (size_t)(eq - pos[i]));
        json_t *actions = json_string(eq + 1);
        if (name == NULL || actions == NULL) {
            json_decref(name);
            json_decref(actions);
            json_decref(body);
            return ctl_usage_error(self, "\"%s\": not valid UTF-8", pos[i]);
        }
        json_array_append_new(body, json_pack("{s:o, s:o}", "name", name, "actions", actions));
    }
    CtlResponse resp;
    ctl_http(ctl, "PUT", "/debug/v1/failpoints", body, &resp);
    json_decref(body);
    if (!ctl_response_ok(&resp)) {
        code = ctl_report_failure(ctl, "PUT", "/debug/v1/failpoints", &resp);
        ctl_response_finish(&resp);
        return code;
    }
    if (ctl->json) {
        json_t *j = json_loadb(resp.body, resp.body_len, JSON_DECODE_ANY, NULL);
        print_json(j != NULL ? j : json_object());
    } else {
        printf("configured %d failpoint%s\n", n_pos, n_pos == 1 ? "" : "s");
    }
    ctl_response_finish(&resp);
    return CTL_EXIT_OK;
}

const CtlCommand CTL_COMMANDS[] = {
    {"help", "[COMMAND [SUBCOMMAND]]", "list the commands, or show one command's arguments",
     cmd_help},
    {"status", "", "is the controller up and ready (exit 0 ready, 1 not ready)", cmd_status},
    {"token", "--private-key PATH --scope SCOPE [--tenant-id HEX] [--ttl DURATION]",
     "print a JWT signed with an Ed25519 private key", cmd_token},
    {"failpoints", "NAME=ACTION [NAME=ACTION...]",
     "arm failpoints in the controller (PUT /debug/v1/failpoints)", cmd_failpoints},
    {"nodes list", "", "list the registered pageservers", ctl_cmd_nodes_list},
    {"nodes register", "--id N --http HOST:PORT --pg HOST:PORT --az AZ [--https-port N]",
     "register a pageserver (POST /control/v1/node)", ctl_cmd_nodes_register},
    {"nodes configure", "ID [--availability Active|Offline] [--scheduling POLICY]",
     "set a node's availability and/or scheduling policy", ctl_cmd_nodes_configure},
    {"nodes drain", "ID [--wait] [--cancel]",
     "move every attached shard off a node (ends PauseForRestart)", ctl_cmd_nodes_drain},
    {"nodes fill", "ID [--wait] [--cancel]", "move shards back onto a node up to its fair share",
     ctl_cmd_nodes_fill},
    {"nodes delete", "ID [--wait] [--cancel]",
     "move everything off a node, then tombstone it for good", ctl_cmd_nodes_delete},
    {"tenants create",
     "[TENANT_ID] [--shard-count N] [--stripe-size PAGES] [--placement P] [--generation N] "
     "[--config JSON]",
     "create a tenant with all its shards (a random id when none is given)",
     ctl_cmd_tenants_create},
    {"tenants describe", "TENANT_ID",
     "show a tenant's shards, their nodes and state, and how warm each secondary is",
     ctl_cmd_tenants_describe},
    {"tenants list", "[--limit N] [--start-after TENANT_ID]", "list tenants (paged)",
     ctl_cmd_tenants_list},
    {"tenants locate", "TENANT_ID", "show where each shard of a tenant is attached",
     ctl_cmd_tenants_locate},
    {"tenants delete", "TENANT_ID", "delete a tenant everywhere, with its remote data",
     ctl_cmd_tenants_delete},
    {"tenants policy", "TENANT_ID [--placement P] [--scheduling Active|Essential|Pause|Stop]",
     "change a tenant's placement and/or scheduling policy", ctl_cmd_tenants_policy},
    {"tenants split", "TENANT_ID COUNT [--stripe-size PAGES] [--wait]",
     "split a tenant into COUNT shards and print the new placement", ctl_cmd_tenants_split},
    {"tenants migrate",
     "TENANT_SHARD_ID NODE_ID [--origin NODE_ID] [--prewarm] [--wait [--timeout S]]",
     "move a shard's attached location to a node (live onto a warm secondary); --wait follows "
     "it to the cut-over",
     ctl_cmd_tenants_migrate},
    {"tenants migrate-secondary", "TENANT_SHARD_ID NODE_ID [--wait [--timeout S]]",
     "move a shard's secondary location to a node", ctl_cmd_tenants_migrate_secondary},
    {"timelines create",
     "TENANT_ID [TIMELINE_ID] [--ancestor TIMELINE_ID [--ancestor-lsn LSN]] [--pg-version N]",
     "create a timeline on every shard (bootstrap, or a branch with --ancestor)",
     ctl_cmd_timelines_create},
    {"timelines delete", "TENANT_ID TIMELINE_ID", "delete a timeline on every shard",
     ctl_cmd_timelines_delete},
    {"timelines import", "TENANT_ID --pgdata DIR [--import-dir ROOT] [--timeline ID] [--wait]",
     "create a timeline from a cleanly shut down data directory (copied under ROOT, or used in "
     "place when named pgdata); --wait follows the import until it is finalised",
     ctl_cmd_timelines_import},
    {"timelines export",
     "TENANT_ID TIMELINE_ID --output DIR|FILE.tar [--lsn LSN] [--connections N] "
     "[--pageserver-token JWT]",
     "write a complete data directory (or tar) of a timeline, read from every shard; "
     "a vanilla Postgres starts on it",
     ctl_cmd_timelines_export},
};

const size_t CTL_COMMANDS_COUNT = sizeof(CTL_COMMANDS) / sizeof(CTL_COMMANDS[0]);

static int cmd_help(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("help");
    char *pos[2];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, NULL, 0, pos, 2, &n_pos, &code))
        return code;
    if (n_pos == 0) {
        ctl_print_usage(stdout);
        return CTL_EXIT_OK;
    }
    char name[128];
    if (!str_printf(name, sizeof(name), "%s%s%s", pos[0], n_pos == 2 ? " " : "",
                    n_pos == 2 ? pos[1] : ""))
        return ctl_usage_error(NULL, "unknown command \"%s\"", pos[0]);
    const CtlCommand *cmd = ctl_command_find(name);
    if (cmd != NULL) {
        ctl_print_command_usage(cmd, stdout);
        return CTL_EXIT_OK;
    }
    if (n_pos == 1 && ctl_print_group_usage(pos[0], stdout))
        return CTL_EXIT_OK;
    return ctl_usage_error(NULL, "unknown command \"%s\"", name);
}
