/*
 * config.h: the storage controller's settings (flags and --config JSON file).
 *
 * The option table in config.c is the single list of settings: it generates --help and names the
 * JSON keys of the --config file (flag "--db-pool-size" is key "db_pool_size"). Defaults live in
 * storcon/defaults.h.
 */
#ifndef STORCON_CONFIG_H
#define STORCON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/config.h"
#include "shared/err.h"
#include "shared/log.h"
#include "shared/str.h"
#include "storcon/defaults.h"

typedef struct StorconConfig {
    /* ---- from the option table ---- */
    HostPort listen;                         /* --listen */
    char database_url[STORCON_URL_MAX];      /* --database-url (required) */
    char control_plane_url[STORCON_URL_MAX]; /* --control-plane-url ("" = none) */
    char public_key[STORCON_PATH_MAX];       /* --public-key: verifies incoming tokens */
    char private_key[STORCON_PATH_MAX];      /* --private-key: signs calls to pageservers */
    bool dev;                                /* --dev: allow running without auth */
    char log_level_name[16];                 /* --log-level */
    char log_file[STORCON_PATH_MAX];         /* --log-file ("" = stderr) */
    char failpoints[STORCON_FAILPOINTS_MAX]; /* --failpoints "name=action;..." */
    uint64_t db_pool_size;                   /* --db-pool-size */
    uint64_t http_max_connections;           /* --http-max-connections */
    uint64_t db_connect_timeout_ms;          /* --db-connect-timeout */
    uint64_t max_shards_per_tenant;          /* --max-shards-per-tenant */
    uint64_t background_interval_ms;         /* --background-interval (reconcile + optimise) */
    char migrate_to_text[24];                /* --migrate-to ("" = not given) */

    /* ---- derived by storcon_config_load ---- */
    LogLevel log_level;
    bool migrate_only; /* --migrate-to given: migrate to migrate_to, print, exit */
    int migrate_to;
} StorconConfig;

/* storcon_config_load: defaults, then the --config file, then flags, then the cross-checks.
 * CONFIG_HELP: usage printed to stdout, exit 0. CONFIG_ERROR: err holds one line naming the flag,
 * *exit_code is EXIT_CODE_BAD_ARGS (bad value, unknown flag) or EXIT_CODE_CONFIG (inconsistent
 * settings, e.g. no --public-key without --dev). */
ConfigResult storcon_config_load(int argc, char **argv, StorconConfig *out, int *exit_code,
                                 Err *err);

/* storcon_config_spec: the option table, for --help and tests. Static storage. */
const ConfigSpec *storcon_config_spec(void);

#endif
