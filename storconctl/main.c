/*
 * main.c: storconctl, the operators' command-line client of the storage controller.
 *
 *   storconctl [--api URL] [--token JWT] [--json] COMMAND [ARGS...]
 *
 * Global options may also follow the command. --api defaults to $STORCON_API, else
 * http://127.0.0.1:1234; --token to $STORCON_TOKEN. Commands are rows of CTL_COMMANDS
 * (commands.c); this file parses the global options and dispatches.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/log.h"
#include "shared/str.h"

#include "storconctl/ctl.h"

void ctl_print_usage(FILE *f)
{
    fprintf(f,
            "usage: %s [--api URL] [--token JWT] [--json] COMMAND [ARGS...]\n"
            "Operate the storage controller.\n\n"
            "Global options (also accepted after the command):\n"
            "  --api URL    storage controller API (default $%s, else %s)\n"
            "  --token JWT  bearer token (default $%s)\n"
            "  --json       machine-readable output\n"
            "  --help       this help\n\n"
            "Commands:\n",
            CTL_PROGRAM, CTL_ENV_API, CTL_DEFAULT_API, CTL_ENV_TOKEN);
    for (size_t i = 0; i < CTL_COMMANDS_COUNT; i++)
        fprintf(f, "  %-17s %s\n", CTL_COMMANDS[i].name, CTL_COMMANDS[i].summary);
    fprintf(f, "\nRun '%s help COMMAND' for a command's arguments.\n", CTL_PROGRAM);
}

void ctl_print_command_usage(const CtlCommand *cmd, FILE *f)
{
    fprintf(f, "usage: %s [global options] %s%s%s\n%s\n", CTL_PROGRAM, cmd->name,
            cmd->usage[0] ? " " : "", cmd->usage, cmd->summary);
}

bool ctl_print_group_usage(const char *group, FILE *f)
{
    size_t glen = strlen(group);
    bool any = false;
    for (size_t i = 0; i < CTL_COMMANDS_COUNT; i++) {
        const char *name = CTL_COMMANDS[i].name;
        if (strncmp(name, group, glen) != 0 || name[glen] != ' ')
            continue;
        if (!any)
            fprintf(f, "usage: %s [global options] %s SUBCOMMAND [ARGS...]\n", CTL_PROGRAM, group);
        any = true;
        fprintf(f, "  %s%s%s\n      %s\n", name, CTL_COMMANDS[i].usage[0] ? " " : "",
                CTL_COMMANDS[i].usage, CTL_COMMANDS[i].summary);
    }
    return any;
}

/* ctl_command_lookup: the command named by argv[0] alone or, for the two-word commands
 * ("nodes list"), by argv[0] and argv[1]; *words says how many were used. */
static const CtlCommand *ctl_command_lookup(int argc, char **argv, int *words)
{
    if (argc >= 2) {
        char two[128];
        if (str_printf(two, sizeof(two), "%s %s", argv[0], argv[1])) {
            const CtlCommand *cmd = ctl_command_find(two);
            if (cmd != NULL) {
                *words = 2;
                return cmd;
            }
        }
    }
    *words = 1;
    return ctl_command_find(argv[0]);
}

const CtlCommand *ctl_command_find(const char *name)
{
    for (size_t i = 0; i < CTL_COMMANDS_COUNT; i++) {
        if (strcmp(CTL_COMMANDS[i].name, name) == 0)
            return &CTL_COMMANDS[i];
    }
    return NULL;
}

int ctl_usage_error(const CtlCommand *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); /* truncating a usage message is harmless */
    va_end(ap);
    fprintf(stderr, "%s: %s\n", CTL_PROGRAM, msg);
    if (cmd != NULL)
        ctl_print_command_usage(cmd, stderr);
    else
        fprintf(stderr, "Run '%s --help' for usage.\n", CTL_PROGRAM);
    return CTL_EXIT_USAGE;
}

/* split_opt: "--name=value" -> name (into buf) and value; "--name" -> name, value NULL. */
static bool split_opt(const char *arg, char *name, size_t cap, const char **value)
{
    const char *body = arg + 2;
    const char *eq = strchr(body, '=');
    *value = eq != NULL ? eq + 1 : NULL;
    size_t len = eq != NULL ? (size_t)(eq - body) : strlen(body);
    if (len + 1 > cap)
        return false;
    memcpy(name, body, len);
    name[len] = '\0';
    return true;
}

/* take_value: the value of an option given inline or as the next argument. */
static const char *take_value(const char *inline_value, int argc, char **argv, int *i)
{
    if (inline_value != NULL)
        return inline_value;
    if (*i + 1 < argc)
        return argv[++*i];
    return NULL;
}

/* set_api: keep the base without trailing '/', so that paths ("/status") append cleanly. */
static bool set_api(Ctl *ctl, const char *url)
{
    if (!str_has_prefix(url, "http://") && !str_has_prefix(url, "https://"))
        return false;
    if (!str_copy(ctl->api, sizeof(ctl->api), url))
        return false;
    size_t n = strlen(ctl->api);
    while (n > 0 && ctl->api[n - 1] == '/')
        ctl->api[--n] = '\0';
    return true;
}

int ctl_set_global(Ctl *ctl, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    if (!str_has_prefix(arg, "--"))
        return 0;
    char name[64];
    const char *inline_value;
    if (!split_opt(arg, name, sizeof(name), &inline_value))
        return 0;
    if (strcmp(name, "json") == 0) {
        if (inline_value != NULL) {
            ctl_usage_error(NULL, "--json takes no value");
            return -1;
        }
        ctl->json = true;
        return 1;
    }
    if (strcmp(name, "api") != 0 && strcmp(name, "token") != 0)
        return 0;
    const char *value = take_value(inline_value, argc, argv, i);
    if (value == NULL) {
        ctl_usage_error(NULL, "--%s needs a value", name);
        return -1;
    }
    if (strcmp(name, "api") == 0) {
        if (!set_api(ctl, value)) {
            ctl_usage_error(NULL, "--api: \"%s\" is not an http:// or https:// URL", value);
            return -1;
        }
    } else {
        ctl_set_token(ctl, value);
    }
    return 1;
}

bool ctl_parse_args(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv, const CtlOpt *opts,
                    size_t n_opts, char **pos, int max_pos, int *n_pos, int *exit_code)
{
    *n_pos = 0;
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        bool is_opt = !only_positional && arg[0] == '-' && arg[1] != '\0';
        if (is_opt && strcmp(arg, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (!is_opt) {
            if (*n_pos >= max_pos) {
                *exit_code = ctl_usage_error(cmd, "unexpected argument \"%s\"", arg);
                return false;
            }
            pos[(*n_pos)++] = argv[i];
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            ctl_print_command_usage(cmd, stdout);
            *exit_code = CTL_EXIT_OK;
            return false;
        }
        int g = ctl_set_global(ctl, argc, argv, &i);
        if (g < 0) {
            *exit_code = CTL_EXIT_USAGE;
            return false;
        }
        if (g > 0)
            continue;
        char name[64];
        const char *inline_value = NULL;
        const CtlOpt *opt = NULL;
        if (str_has_prefix(arg, "--") && split_opt(arg, name, sizeof(name), &inline_value)) {
            for (size_t k = 0; k < n_opts; k++) {
                if (strcmp(opts[k].name, name) == 0)
                    opt = &opts[k];
            }
        }
        if (opt == NULL) {
            *exit_code = ctl_usage_error(cmd, "unknown option %s", arg);
            return false;
        }
        if (opt->value == NULL) {
            if (inline_value != NULL) {
                *exit_code = ctl_usage_error(cmd, "--%s takes no value", opt->name);
                return false;
            }
            *opt->flag = true;
            continue;
        }
        const char *value = take_value(inline_value, argc, argv, &i);
        if (value == NULL) {
            *exit_code = ctl_usage_error(cmd, "--%s needs a value", opt->name);
            return false;
        }
        *opt->value = value;
    }
    return true;
}

int main(int argc, char **argv)
{
    Ctl ctl;
    memset(&ctl, 0, sizeof(ctl));
    Err err = {0};
    /* Library code logs through shared/log.h; a CLI only wants its warnings and errors. */
    if (!log_init(CTL_PROGRAM, LOG_WARN, NULL, &err)) {
        fprintf(stderr, "%s: %s\n", CTL_PROGRAM, err.msg);
        return CTL_EXIT_USAGE;
    }

    const char *env_api = getenv(CTL_ENV_API);
    const char *api = (env_api != NULL && env_api[0] != '\0') ? env_api : CTL_DEFAULT_API;
    if (!set_api(&ctl, api))
        return ctl_usage_error(NULL, "$%s: \"%s\" is not an http:// or https:// URL", CTL_ENV_API,
                               api);
    ctl_set_token(&ctl, getenv(CTL_ENV_TOKEN));

    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            ctl_print_usage(stdout);
            ctl_finish(&ctl);
            return CTL_EXIT_OK;
        }
        int g = ctl_set_global(&ctl, argc, argv, &i);
        if (g < 0) {
            ctl_finish(&ctl);
            return CTL_EXIT_USAGE;
        }
        if (g == 0)
            break;
    }
    int rc;
    if (i >= argc) {
        rc = ctl_usage_error(NULL, "no command given");
    } else if (argv[i][0] == '-') {
        rc = ctl_usage_error(NULL, "unknown option %s", argv[i]);
    } else {
        int words = 1;
        const CtlCommand *cmd = ctl_command_lookup(argc - i, argv + i, &words);
        if (cmd != NULL) {
            rc = cmd->handler(&ctl, argc - i - (words - 1), argv + i + (words - 1));
        } else if (ctl_print_group_usage(argv[i], stderr)) {
            if (i + 1 < argc)
                fprintf(stderr, "%s: unknown %s subcommand \"%s\"\n", CTL_PROGRAM, argv[i],
                        argv[i + 1]);
            rc = CTL_EXIT_USAGE;
        } else {
            rc = ctl_usage_error(NULL, "unknown command \"%s\"", argv[i]);
        }
    }
    ctl_finish(&ctl);
    return rc;
}
