/*
 * commands_nodes_ops.c: `storconctl nodes drain|fill|delete ID [--wait] [--cancel]`
 * (docs/operations.md "Node maintenance").
 *
 * Without --wait the command starts the operation (PUT /control/v1/node/{id}/<op>) and returns;
 * with --wait it follows the "operation" of GET /control/v1/node/{id} (a progress bar on a
 * terminal, a line per change otherwise) until it ended, then prints the final placement: the
 * node's scheduling policy and how many shards are attached / secondary there (or that the node
 * is gone, for a delete). --cancel stops a running operation (DELETE on the same path). Exit 1
 * when the operation did not end where it should (a drain not in PauseForRestart, a fill not
 * Active, a deleted node still registered).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/str.h"
#include "storconctl/ctl.h"

#define OPS_PATH_SIZE  256
#define OPS_POLL_MS    500
#define OPS_WAIT_LIMIT (6L * 3600 * 1000) /* --wait gives up after 6 hours */

/* get_json: GET path; *status the HTTP status (0: transport error); *out the parsed body. */
static void get_json(Ctl *ctl, const char *path, int *status, json_t **out)
{
    CtlResponse resp;
    ctl_http(ctl, "GET", path, NULL, &resp);
    *status = resp.status;
    *out = NULL;
    if (resp.status != 0 && resp.body != NULL)
        *out = json_loadb(resp.body, resp.body_len, JSON_DECODE_ANY, NULL);
    ctl_response_finish(&resp);
}

/* placement: attached and secondary shards the node's intent holds (GET .../shards). */
static bool placement(Ctl *ctl, const char *id, long *attached, long *secondary)
{
    char path[OPS_PATH_SIZE];
    snprintf(path, sizeof(path), "/control/v1/node/%s/shards", id);
    int status = 0;
    json_t *doc = NULL;
    get_json(ctl, path, &status, &doc);
    *attached = *secondary = 0;
    bool ok = status == 200 && json_is_array(json_object_get(doc, "shards"));
    size_t i;
    json_t *e;
    if (ok) {
        json_array_foreach(json_object_get(doc, "shards"), i, e)
        {
            json_t *sec = json_object_get(e, "is_intended_secondary");
            if (json_is_true(sec))
                (*secondary)++;
            else if (json_is_false(sec))
                (*attached)++;
        }
    }
    json_decref(doc);
    return ok;
}

/* wait_end: poll until the node shows no operation (or is gone). Returns the final node
 * document (NULL: the node is gone) through *node; false on a transport error or timeout. */
static bool wait_end(Ctl *ctl, const char *id, const char *op_name, json_t **node)
{
    char path[OPS_PATH_SIZE];
    snprintf(path, sizeof(path), "/control/v1/node/%s", id);
    bool tty = isatty(STDOUT_FILENO) && !ctl->json;
    long waited = 0;
    char last[160] = "";
    *node = NULL;
    for (;;) {
        int status = 0;
        json_t *doc = NULL;
        get_json(ctl, path, &status, &doc);
        if (status == 404) {
            json_decref(doc);
            if (tty)
                printf("\n");
            return true;
        }
        if (status != 200) {
            json_decref(doc);
            fprintf(stderr, "%s: GET %s: %s\n", CTL_PROGRAM, path,
                    status == 0 ? "no answer" : "unexpected status");
            return false;
        }
        json_t *op = json_object_get(doc, "operation");
        if (!json_is_object(op) || strcmp(json_string_value(json_object_get(op, "kind")) != NULL
                                              ? json_string_value(json_object_get(op, "kind"))
                                              : "",
                                          op_name) != 0) {
            if (tty)
                printf("\n");
            *node = doc;
            return true;
        }
        json_int_t done = json_integer_value(json_object_get(op, "done"));
        json_int_t total = json_integer_value(json_object_get(op, "total"));
        json_int_t flight = json_integer_value(json_object_get(op, "in_flight"));
        json_int_t failed = json_integer_value(json_object_get(op, "failed"));
        const char *step = json_string_value(json_object_get(op, "step"));
        char line[160];
        snprintf(line, sizeof(line),
                 "%s: %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
                 " shards moved, %" JSON_INTEGER_FORMAT " in flight, %" JSON_INTEGER_FORMAT
                 " failed",
                 step != NULL ? step : "", done, total, flight, failed);
        if (tty)
            ctl_progress_bar(total > 0 ? (double)done / (double)total : 0.0, line);
        else if (!ctl->json && strcmp(line, last) != 0)
            printf("%s\n", line);
        snprintf(last, sizeof(last), "%s", line);
        json_decref(doc);
        if (waited >= OPS_WAIT_LIMIT) {
            fprintf(stderr, "%s: still running after %ld s: stopped waiting\n", CTL_PROGRAM,
                    waited / 1000);
            return false;
        }
        ctl_sleep_ms(OPS_POLL_MS);
        waited += OPS_POLL_MS;
    }
}

/* node_op: the three commands. want: the policy the node must end in ("" for delete: gone). */
static int node_op(Ctl *ctl, int argc, char **argv, const char *cmd_name, const char *op_name,
                   const char *want)
{
    const CtlCommand *self = ctl_command_find(cmd_name);
    bool wait = false, cancel = false;
    const CtlOpt opts[] = {{"wait", NULL, &wait}, {"cancel", NULL, &cancel}};
    char *pos[1];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 1, &n_pos,
                        &code))
        return code;
    uint64_t id = 0;
    if (n_pos != 1 || !parse_u64(pos[0], 0, INT64_MAX, &id))
        return ctl_usage_error(self, "give the node id");
    if (wait && cancel)
        return ctl_usage_error(self, "--wait and --cancel do not go together");
    char idtext[24];
    snprintf(idtext, sizeof(idtext), "%" PRIu64, id);
    char path[OPS_PATH_SIZE];
    snprintf(path, sizeof(path), "/control/v1/node/%s/%s", idtext, op_name);
    const char *method = cancel ? "DELETE" : "PUT";
    CtlResponse resp;
    ctl_http(ctl, method, path, NULL, &resp);
    if (!ctl_response_ok(&resp)) {
        code = ctl_report_failure(ctl, method, path, &resp);
        ctl_response_finish(&resp);
        return code;
    }
    ctl_response_finish(&resp);
    if (cancel || !wait) {
        if (ctl->json)
            printf("{\"node_id\": %s, \"%s\": \"%s\"}\n", idtext, op_name,
                   cancel ? "cancelled" : "started");
        else
            printf("%s of node %s %s\n", op_name, idtext, cancel ? "cancelled" : "started");
        return CTL_EXIT_OK;
    }
    json_t *node = NULL;
    if (!wait_end(ctl, idtext, op_name, &node))
        return CTL_EXIT_TRANSPORT;
    if (node == NULL) {
        bool ok = want[0] == '\0';
        if (ctl->json)
            printf("{\"node_id\": %s, \"deleted\": true}\n", idtext);
        else
            printf("node %s %s\n", idtext, ok ? "deleted (tombstone)" : "is gone");
        return ok ? CTL_EXIT_OK : CTL_EXIT_ERROR;
    }
    const char *sched = json_string_value(json_object_get(node, "scheduling"));
    char policy[32];
    snprintf(policy, sizeof(policy), "%s", sched != NULL ? sched : "?");
    json_decref(node);
    long attached = 0, secondary = 0;
    (void)placement(ctl, idtext, &attached, &secondary);
    bool ok = want[0] != '\0' && strcmp(policy, want) == 0;
    if (ctl->json)
        printf("{\"node_id\": %s, \"scheduling\": \"%s\", \"attached\": %ld, \"secondary\": %ld}\n",
               idtext, policy, attached, secondary);
    else
        printf("node %s: %s, %ld attached, %ld secondary%s\n", idtext, policy, attached, secondary,
               ok ? "" : " (the operation did not complete: see the controller's log)");
    return ok ? CTL_EXIT_OK : CTL_EXIT_ERROR;
}

int ctl_cmd_nodes_drain(Ctl *ctl, int argc, char **argv)
{
    return node_op(ctl, argc, argv, "nodes drain", "drain", "PauseForRestart");
}

int ctl_cmd_nodes_fill(Ctl *ctl, int argc, char **argv)
{
    return node_op(ctl, argc, argv, "nodes fill", "fill", "Active");
}

int ctl_cmd_nodes_delete(Ctl *ctl, int argc, char **argv)
{
    return node_op(ctl, argc, argv, "nodes delete", "delete", "");
}
