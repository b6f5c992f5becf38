/*
 * config.c: daemon options from defaults, a JSON config file and command-line flags.
 *
 * config_load works in three steps so that precedence is simple: first every flag in argv is
 * resolved against the option table (unknown flags, missing values and stray positional
 * arguments fail here, and "--help" wins over everything else); then the defaults are applied,
 * then the "--config" file, then the flag values in argv order (a repeated flag: the last wins).
 * Names compare with '-' and '_' as the same character, so "--listen-http", "--listen_http" and
 * the file key "listen_http" all name one option. "--config" is built in and is not a file key.
 */
#include "shared/config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/str.h"
#include "shared/units.h"

#define CONFIG_FILE_MAX_KEY 128

/* A flag found in argv: the option it sets and its text (NULL for a bare bool flag). */
typedef struct ConfigFlag {
    const ConfigOption *opt;
    const char *value;
    const char *spelled; /* as written, for messages */
} ConfigFlag;

/* name_equal: a == b with '-' and '_' interchangeable; b may stop early at b_len. */
static bool name_equal(const char *a, const char *b, size_t b_len)
{
    size_t i = 0;
    for (; i < b_len && a[i] != '\0'; i++) {
        char ca = a[i] == '_' ? '-' : a[i];
        char cb = b[i] == '_' ? '-' : b[i];
        if (ca != cb)
            return false;
    }
    return i == b_len && a[i] == '\0';
}

static const ConfigOption *option_find(const ConfigSpec *spec, const char *name, size_t len)
{
    for (size_t i = 0; i < spec->n_options; i++) {
        if (name_equal(spec->options[i].name, name, len))
            return &spec->options[i];
    }
    return NULL;
}

static bool bool_parse(const char *s, bool *out)
{
    static const char *TRUE_WORDS[] = {"true", "1", "yes", "on"};
    static const char *FALSE_WORDS[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < sizeof(TRUE_WORDS) / sizeof(TRUE_WORDS[0]); i++) {
        if (strcmp(s, TRUE_WORDS[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(s, FALSE_WORDS[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* option_set_text: parse text for opt into its member of out. A NULL text is the empty value
 * (the default of an option without one): "", 0, false, an unset HostPort. On failure err has
 * the reason only; the caller adds where the value came from. */
static bool option_set_text(const ConfigOption *opt, const char *text, void *out, Err *err)
{
    char *member = (char *)out + opt->offset;
    switch (opt->type) {
    case CONFIG_STRING:
        if (!str_copy(member, opt->size, text ? text : "")) {
            err_set(err, ERR_BAD_REQUEST, "too long (at most %zu bytes)",
                    opt->size ? opt->size - 1 : 0);
            return false;
        }
        return true;
    case CONFIG_U64:
    case CONFIG_DURATION_MS: {
        uint64_t v = 0;
        if (text == NULL) {
            memcpy(member, &v, sizeof(v));
            return true;
        }
        if (opt->type == CONFIG_DURATION_MS) {
            if (!duration_parse_ms(text, &v, err))
                return false;
        } else {
            uint64_t min = opt->min, max = opt->max;
            if (min == 0 && max == 0)
                max = UINT64_MAX;
            if (!parse_u64(text, min, max, &v)) {
                err_set(err, ERR_BAD_REQUEST, "expected an integer in [%" PRIu64 ", %" PRIu64 "]",
                        min, max);
                return false;
            }
        }
        memcpy(member, &v, sizeof(v));
        return true;
    }
    case CONFIG_BOOL: {
        bool v = false;
        if (text != NULL && !bool_parse(text, &v)) {
            err_set(err, ERR_BAD_REQUEST, "expected true or false");
            return false;
        }
        memcpy(member, &v, sizeof(v));
        return true;
    }
    case CONFIG_HOSTPORT: {
        HostPort hp;
        memset(&hp, 0, sizeof(hp));
        if (text != NULL && !host_port_parse(text, &hp, err))
            return false;
        memcpy(member, &hp, sizeof(hp));
        return true;
    }
    case CONFIG_TYPE_COUNT:
        break;
    }
    err_set(err, ERR_INTERNAL, "option has an unknown type");
    return false;
}

/* config_scan_args: resolve argv into flags[] (argc entries at most) and find --config and
 * --help. Nothing is applied yet. */
static ConfigResult config_scan_args(const ConfigSpec *spec, int argc, char **argv,
                                     ConfigFlag *flags, size_t *n_flags, const char **config_path,
                                     Err *err)
{
    bool help = false;
    ConfigResult result = CONFIG_OK;
    *n_flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            help = true;
            continue;
        }
        if (result == CONFIG_ERROR)
            continue; /* keep looking for --help only */
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            err_set(err, ERR_BAD_REQUEST, "unexpected argument \"%s\"", arg);
            result = CONFIG_ERROR;
            continue;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;
        bool is_config = name_equal("config", name, name_len);
        const ConfigOption *opt = is_config ? NULL : option_find(spec, name, name_len);
        if (!is_config && opt == NULL) {
            if (eq != NULL)
                err_set(err, ERR_BAD_REQUEST, "unknown flag \"--%.*s\"", (int)name_len, name);
            else
                err_set(err, ERR_BAD_REQUEST, "unknown flag \"%s\"", arg);
            result = CONFIG_ERROR;
            continue;
        }
        bool needs_value = is_config || opt->type != CONFIG_BOOL;
        if (value == NULL && needs_value) {
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
                err_set(err, ERR_BAD_REQUEST, "flag \"--%.*s\" needs a value", (int)name_len, name);
                result = CONFIG_ERROR;
                continue;
            }
            value = argv[++i];
        }
        if (is_config) {
            *config_path = value;
            continue;
        }
        flags[*n_flags] = (ConfigFlag){opt, value, arg};
        (*n_flags)++;
    }
    if (help) {
        err_clear(err);
        return CONFIG_HELP;
    }
    return result;
}

/* json_value_text: the text form of a file value for opt, checking the JSON type per option
 * type: strings for STRING/HOSTPORT/DURATION, a non-negative integer or a string for U64, a
 * bool for BOOL. Writes into buf[cap] where a number has to be rendered. */
static bool json_value_text(const ConfigOption *opt, const json_t *v, char *buf, size_t cap,
                            const char **out, Err *err)
{
    switch (opt->type) {
    case CONFIG_STRING:
    case CONFIG_HOSTPORT:
    case CONFIG_DURATION_MS:
        if (!json_is_string(v)) {
            err_set(err, ERR_BAD_REQUEST, "expected a string");
            return false;
        }
        *out = json_string_value(v);
        return true;
    case CONFIG_U64:
        if (json_is_string(v)) {
            *out = json_string_value(v);
            return true;
        }
        if (json_is_integer(v) && json_integer_value(v) >= 0) {
            snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            *out = buf;
            return true;
        }
        err_set(err, ERR_BAD_REQUEST, "expected a non-negative integer");
        return false;
    case CONFIG_BOOL:
        if (!json_is_boolean(v)) {
            err_set(err, ERR_BAD_REQUEST, "expected true or false");
            return false;
        }
        *out = json_is_true(v) ? "true" : "false";
        return true;
    case CONFIG_TYPE_COUNT:
        break;
    }
    err_set(err, ERR_INTERNAL, "option has an unknown type");
    return false;
}

/* config_apply_file: every key of the top-level object must name an option. */
static bool config_apply_file(const ConfigSpec *spec, const char *path, void *out, bool *set,
                              Err *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (jerr.line <= 0)
            err_set(err, ERR_BAD_REQUEST, "config file %s: %s", path, jerr.text);
        else
            err_set(err, ERR_BAD_REQUEST, "config file %s: line %d: %s", path, jerr.line,
                    jerr.text);
        return false;
    }
    bool ok = true;
    if (!json_is_object(root)) {
        err_set(err, ERR_BAD_REQUEST, "config file %s: expected a JSON object", path);
        ok = false;
        goto cleanup;
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        const ConfigOption *opt = option_find(spec, key, strlen(key));
        if (opt == NULL) {
            err_set(err, ERR_BAD_REQUEST, "config file %s: unknown key \"%s\"", path, key);
            ok = false;
            goto cleanup;
        }
        char num[32];
        const char *text = NULL;
        if (!json_value_text(opt, value, num, sizeof(num), &text, err) ||
            !option_set_text(opt, text, out, err)) {
            err_prefix(err, "config file %s: key \"%s\": ", path, key);
            ok = false;
            goto cleanup;
        }
        set[opt - spec->options] = true;
    }
cleanup:
    json_decref(root);
    return ok;
}

ConfigResult config_load(const ConfigSpec *spec, int argc, char **argv, void *out, Err *err)
{
    ConfigFlag *flags = xcalloc(argc > 0 ? (size_t)argc : 1, sizeof(ConfigFlag));
    bool *set = xcalloc(spec->n_options ? spec->n_options : 1, sizeof(bool));
    const char *config_path = NULL;
    size_t n_flags = 0;
    ConfigResult result = config_scan_args(spec, argc, argv, flags, &n_flags, &config_path, err);
    if (result == CONFIG_HELP)
        config_print_help(spec, stdout);
    if (result != CONFIG_OK)
        goto cleanup;
    result = CONFIG_ERROR;

    for (size_t i = 0; i < spec->n_options; i++) {
        const ConfigOption *opt = &spec->options[i];
        if (!option_set_text(opt, opt->default_value, out, err)) {
            err_prefix(err, "default value \"%s\" of --%s: ", opt->default_value, opt->name);
            goto cleanup;
        }
    }
    if (config_path != NULL && !config_apply_file(spec, config_path, out, set, err))
        goto cleanup;
    for (size_t i = 0; i < n_flags; i++) {
        const ConfigFlag *f = &flags[i];
        if (!option_set_text(f->opt, f->value ? f->value : "true", out, err)) {
            err_prefix(err,
                       "invalid value \"%s\" for flag \"--%s\": ", f->value ? f->value : "true",
                       f->opt->name);
            goto cleanup;
        }
        set[f->opt - spec->options] = true;
    }
    for (size_t i = 0; i < spec->n_options; i++) {
        if (spec->options[i].required && !set[i]) {
            err_set(err, ERR_BAD_REQUEST, "missing required option \"--%s\"",
                    spec->options[i].name);
            goto cleanup;
        }
    }
    result = CONFIG_OK;
cleanup:
    free(flags);
    free(set);
    return result;
}

static const char *default_metavar(ConfigType t)
{
    switch (t) {
    case CONFIG_STRING:
        return "STRING";
    case CONFIG_U64:
        return "N";
    case CONFIG_HOSTPORT:
        return "HOST:PORT";
    case CONFIG_DURATION_MS:
        return "DURATION";
    case CONFIG_BOOL:
    case CONFIG_TYPE_COUNT:
        break;
    }
    return NULL;
}

/* option_left: the "--name METAVAR" column of the help into buf[cap]. */
static void option_left(const ConfigOption *opt, char *buf, size_t cap)
{
    const char *metavar = opt->metavar ? opt->metavar : default_metavar(opt->type);
    if (opt->type == CONFIG_BOOL || metavar == NULL)
        snprintf(buf, cap, "--%s", opt->name);
    else
        snprintf(buf, cap, "--%s %s", opt->name, metavar);
}

void config_print_help(const ConfigSpec *spec, FILE *f)
{
    char left[160];
    int width = (int)strlen("--config PATH");
    for (size_t i = 0; i < spec->n_options; i++) {
        option_left(&spec->options[i], left, sizeof(left));
        int len = (int)strlen(left);
        if (len > width)
            width = len;
    }
    fprintf(f, "usage: %s [--config PATH] [options]\n", spec->program ? spec->program : "daemon");
    if (spec->summary != NULL && spec->summary[0] != '\0')
        fprintf(f, "%s\n", spec->summary);
    fprintf(f, "\noptions:\n");
    fprintf(f, "  %-*s   %s\n", width, "--config PATH",
            "JSON file with any of these options as keys (flags override it)");
    for (size_t i = 0; i < spec->n_options; i++) {
        const ConfigOption *opt = &spec->options[i];
        option_left(opt, left, sizeof(left));
        fprintf(f, "  %-*s   %s", width, left, opt->help ? opt->help : "");
        if (opt->required)
            fprintf(f, " (required)");
        else if (opt->default_value != NULL && opt->default_value[0] != '\0')
            fprintf(f, " (default: %s)", opt->default_value);
        if (opt->type == CONFIG_U64 && (opt->min != 0 || opt->max != 0))
            fprintf(f, " [%" PRIu64 "..%" PRIu64 "]", opt->min, opt->max);
        fprintf(f, "\n");
    }
    fprintf(f, "  %-*s   %s\n", width, "--help", "print this help and exit");
}
