/*
 * config.h: daemon configuration from command-line flags and an optional JSON config file.
 *
 * Each daemon declares a table of options, one row per setting: the flag "--listen-http" is the
 * JSON key "listen_http" in the file given by "--config PATH". Flags win over the file, the file
 * over the defaults. Both "--name value" and "--name=value" work; a bool flag alone means true.
 * Unknown flags and unknown file keys are errors that name the offender. "--help" prints the
 * generated usage (from the same table) to stdout.
 */
#ifndef SHARED_CONFIG_H
#define SHARED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "shared/err.h"

typedef enum ConfigType {
    CONFIG_STRING,      /* char array member; `size` is its capacity */
    CONFIG_U64,         /* uint64_t member, range [min, max] */
    CONFIG_BOOL,        /* bool member */
    CONFIG_HOSTPORT,    /* HostPort member (shared/str.h) */
    CONFIG_DURATION_MS, /* uint64_t member, human duration (shared/units.h) */
    CONFIG_TYPE_COUNT
} ConfigType;

typedef struct ConfigOption {
    const char *name; /* flag name without "--" */
    ConfigType type;
    size_t offset;             /* of the member in the daemon's config struct */
    size_t size;               /* capacity of a CONFIG_STRING member */
    const char *default_value; /* text form; NULL = empty / 0 / false */
    const char *metavar;
    const char *help;
    uint64_t min, max; /* CONFIG_U64 range; both 0 = any */
    bool required;
} ConfigOption;

#define CONFIG_OPT(type_, struct_, member, name, def, metavar, help)                               \
    {                                                                                              \
        (name), (type_), offsetof(struct_, member), sizeof(((struct_ *)0)->member), (def),         \
            (metavar), (help), 0, 0, false                                                         \
    }

typedef struct ConfigSpec {
    const char *program;
    const char *summary; /* one line under the usage line */
    const ConfigOption *options;
    size_t n_options;
} ConfigSpec;

typedef enum ConfigResult { CONFIG_OK, CONFIG_HELP, CONFIG_ERROR } ConfigResult;

/* config_load: fill *out from defaults, then the --config file, then flags. CONFIG_HELP: usage was
 * printed, exit 0. CONFIG_ERROR: err says which flag or key and why. */
ConfigResult config_load(const ConfigSpec *spec, int argc, char **argv, void *out, Err *err);
void config_print_help(const ConfigSpec *spec, FILE *f);

#endif
