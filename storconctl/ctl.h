/*
 * ctl.h: storconctl's internals shared by its files: the global options, the command table
 * (a command is one row {name, usage, summary, handler}), argument parsing helpers, and a
 * synchronous HTTP call to the storage controller built on shared/http_client.h with a private
 * event loop.
 *
 * Exit codes: 0 success; 1 the controller answered an error (or, for status, is not ready);
 * 2 transport error (cannot connect, timeout); 64 usage error.
 */
#ifndef STORCONCTL_CTL_H
#define STORCONCTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/http_client.h"

struct event_base;

enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_ERROR = 1,     /* the controller said no (or not ready) */
    CTL_EXIT_TRANSPORT = 2, /* no answer */
    CTL_EXIT_USAGE = 64,
};

#define CTL_PROGRAM         "storconctl"
#define CTL_DEFAULT_API     "http://127.0.0.1:1234"
#define CTL_ENV_API         "STORCON_API"
#define CTL_ENV_TOKEN       "STORCON_TOKEN"
#define CTL_HTTP_TIMEOUT_MS 30000L
#define CTL_API_MAX         1024
#define CTL_MAX_POSITIONAL  256

typedef struct Ctl {
    char api[CTL_API_MAX];   /* base URL without trailing '/' */
    char *token;             /* bearer token or NULL; owned (free) */
    bool json;               /* machine output */
    struct event_base *base; /* created by the first HTTP call */
    HttpClient *client;
} Ctl;

typedef int (*CtlHandler)(Ctl *ctl, int argc, char **argv);

typedef struct CtlCommand {
    const char *name;
    const char *usage;   /* arguments after the name, "" if none */
    const char *summary; /* one line for `storconctl help` */
    CtlHandler handler;  /* argv[0] is the command name */
} CtlCommand;

extern const CtlCommand CTL_COMMANDS[];
extern const size_t CTL_COMMANDS_COUNT;

/* ctl_command_find: by full name; two-word commands are named "nodes list". */
const CtlCommand *ctl_command_find(const char *name);
/* ctl_print_group_usage: the commands "<group> ..." with their usage; false if there are none. */
bool ctl_print_group_usage(const char *group, FILE *f);
void ctl_print_usage(FILE *f);
void ctl_print_command_usage(const CtlCommand *cmd, FILE *f);

/* A command option: "--name VALUE" / "--name=VALUE" stores into *value (borrowed from argv); a
 * flag (value == NULL) sets *flag. */
typedef struct CtlOpt {
    const char *name; /* without "--" */
    const char **value;
    bool *flag;
} CtlOpt;

/* ctl_set_global: try argv[*i] as a global option (--api, --token, --json), advancing *i past a
 * separate value. Returns 1 if consumed, 0 if not a global option, -1 after printing a usage
 * error. */
int ctl_set_global(Ctl *ctl, int argc, char **argv, int *i);

/* ctl_parse_args: parse argv[1..] of a command: its own options, the global options (accepted
 * after the command too), "--help", and up to max_pos positional arguments into pos[]. false:
 * the command must return *exit_code now (0 after --help printed the usage, 64 after a usage
 * error was printed). */
bool ctl_parse_args(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv, const CtlOpt *opts,
                    size_t n_opts, char **pos, int max_pos, int *n_pos, int *exit_code) MUST_CHECK;

/* ctl_usage_error: print "storconctl: <msg>" and the command's usage to stderr; returns 64. */
int ctl_usage_error(const CtlCommand *cmd, const char *fmt, ...) PRINTF_LIKE(2, 3);

void ctl_set_token(Ctl *ctl, const char *token);
void ctl_finish(Ctl *ctl);

/* A finished call. body is NUL-terminated and owned (ctl_response_finish). */
typedef struct CtlResponse {
    int status; /* 0 = transport error, see err */
    char *body;
    size_t body_len;
    Err err;
} CtlResponse;

/* ctl_http: one call to <api><path> with the token, run to completion on the private loop. body
 * may be NULL. Always fills *out (free it with ctl_response_finish). */
void ctl_http(Ctl *ctl, const char *method, const char *path, const json_t *body, CtlResponse *out);
/* ctl_http_url: the same to a whole URL (a pageserver's, for what only it knows). */
void ctl_http_url(Ctl *ctl, const char *method, const char *url, const json_t *body,
                  CtlResponse *out);
void ctl_response_finish(CtlResponse *resp);
bool ctl_response_ok(const CtlResponse *resp); /* 2xx */

/* ctl_response_msg: the {"msg"} of an error body, else the body text, as one printable line. */
void ctl_response_msg(const CtlResponse *resp, char *out, size_t cap);

/* ctl_report_failure: print the failure of a call to stderr ("storconctl: <status> <msg>" or a
 * transport message) and return the exit code (1 or 2). */
int ctl_report_failure(const Ctl *ctl, const char *method, const char *path,
                       const CtlResponse *resp);

/* ctl_progress_bar: redraw "[####......]  42% text" on the current terminal line. */
void ctl_progress_bar(double fraction, const char *text);
/* ctl_sleep_ms: sleep, resumed after signals. */
void ctl_sleep_ms(long ms);

/* Commands of commands_storage.c (rows of CTL_COMMANDS). */
int ctl_cmd_nodes_list(Ctl *ctl, int argc, char **argv);
int ctl_cmd_nodes_register(Ctl *ctl, int argc, char **argv);
int ctl_cmd_nodes_configure(Ctl *ctl, int argc, char **argv);
int ctl_cmd_tenants_create(Ctl *ctl, int argc, char **argv);
int ctl_cmd_tenants_describe(Ctl *ctl, int argc, char **argv);
int ctl_cmd_tenants_list(Ctl *ctl, int argc, char **argv);
int ctl_cmd_tenants_locate(Ctl *ctl, int argc, char **argv);
int ctl_cmd_tenants_delete(Ctl *ctl, int argc, char **argv);
int ctl_cmd_tenants_policy(Ctl *ctl, int argc, char **argv);
int ctl_cmd_timelines_create(Ctl *ctl, int argc, char **argv);
int ctl_cmd_timelines_delete(Ctl *ctl, int argc, char **argv);
/* commands_import.c */
int ctl_cmd_timelines_import(Ctl *ctl, int argc, char **argv);
/* commands_migrate.c */
int ctl_cmd_tenants_migrate(Ctl *ctl, int argc, char **argv);
int ctl_cmd_tenants_migrate_secondary(Ctl *ctl, int argc, char **argv);
/* commands_export.c */
int ctl_cmd_timelines_export(Ctl *ctl, int argc, char **argv);
/* commands_split.c */
int ctl_cmd_tenants_split(Ctl *ctl, int argc, char **argv);
/* commands_nodes_ops.c */
int ctl_cmd_nodes_drain(Ctl *ctl, int argc, char **argv);
int ctl_cmd_nodes_fill(Ctl *ctl, int argc, char **argv);
int ctl_cmd_nodes_delete(Ctl *ctl, int argc, char **argv);

#endif
