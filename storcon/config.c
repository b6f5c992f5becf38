/*
 * config.c: the storage controller's option table and the checks that span several options.
 */
#include "storcon/config.h"

#include <limits.h>
#include <string.h>

#include "shared/daemon.h"
#include "shared/str.h"
#include "storcon/migrations.h"

#define OPT(type, member, name, def, metavar, help)                                                \
    CONFIG_OPT(type, StorconConfig, member, name, def, metavar, help)

static const ConfigOption STORCON_OPTIONS[] = {
    OPT(CONFIG_HOSTPORT, listen, "listen", STORCON_DEFAULT_LISTEN, "HOST:PORT", "HTTP API address"),
    {.name = "database-url",
     .type = CONFIG_STRING,
     .offset = offsetof(StorconConfig, database_url),
     .size = sizeof(((StorconConfig *)0)->database_url),
     .metavar = "URL",
     .help = "Postgres connection string or URL holding the controller's state",
     .required = true},
    OPT(CONFIG_STRING, control_plane_url, "control-plane-url", NULL, "URL",
        "control plane base URL for compute notifications (none: notifications off)"),
    OPT(CONFIG_STRING, public_key, "public-key", NULL, "PATH",
        "PEM public key(s) (file or directory) verifying API tokens; required without --dev"),
    OPT(CONFIG_STRING, private_key, "private-key", NULL, "PATH",
        "PEM Ed25519 private key signing the controller's own calls to pageservers"),
    OPT(CONFIG_BOOL, dev, "dev", NULL, NULL,
        "development mode: allow running without --public-key (auth off); never in production"),
    OPT(CONFIG_STRING, log_level_name, "log-level", STORCON_DEFAULT_LOG_LEVEL, "LEVEL",
        "debug, info, warn or error"),
    OPT(CONFIG_STRING, log_file, "log-file", NULL, "PATH",
        "append logs to this file, reopened on SIGHUP (default: stderr)"),
    OPT(CONFIG_STRING, failpoints, "failpoints", NULL, "SPEC",
        "arm failpoints at startup: \"name=action;name2=action\""),
    {.name = "db-pool-size",
     .type = CONFIG_U64,
     .offset = offsetof(StorconConfig, db_pool_size),
     .size = sizeof(((StorconConfig *)0)->db_pool_size),
     .default_value = STORCON_DEFAULT_DB_POOL_SIZE,
     .metavar = "N",
     .help = "database connections in the pool",
     .min = STORCON_DB_POOL_SIZE_MIN,
     .max = STORCON_DB_POOL_SIZE_MAX},
    {.name = "http-max-connections",
     .type = CONFIG_U64,
     .offset = offsetof(StorconConfig, http_max_connections),
     .size = sizeof(((StorconConfig *)0)->http_max_connections),
     .default_value = "1000",
     .metavar = "N",
     .help = "open API connections at once; more are answered 503 and closed",
     .min = 1,
     .max = HTTP_MAX_CONNECTIONS_LIMIT},
    OPT(CONFIG_DURATION_MS, db_connect_timeout_ms, "db-connect-timeout",
        STORCON_DEFAULT_DB_CONNECT_TIMEOUT, "DURATION",
        "give up (exit 69) when the database cannot be reached at startup within this time"),
    {.name = "max-shards-per-tenant",
     .type = CONFIG_U64,
     .offset = offsetof(StorconConfig, max_shards_per_tenant),
     .size = sizeof(((StorconConfig *)0)->max_shards_per_tenant),
     .default_value = STORCON_DEFAULT_MAX_SHARDS,
     .metavar = "N",
     .help = "the highest shard count a tenant may be created with (create, location_config): "
             "more is answered 400",
     .min = 1,
     .max = 255},
    OPT(CONFIG_DURATION_MS, background_interval_ms, "background-interval",
        STORCON_DEFAULT_BACKGROUND_INTERVAL, "DURATION",
        "period of the background pass: reconcile every dirty shard, then one optimiser pass"),
    OPT(CONFIG_STRING, migrate_to_text, "migrate-to", NULL, "N",
        "apply migrations up or down to schema version N (0 drops everything), print what was "
        "done and exit"),
};

static const ConfigSpec STORCON_CONFIG_SPEC = {
    .program = "storcon",
    .summary = "storage controller: tenant placement, shard maps and generations",
    .options = STORCON_OPTIONS,
    .n_options = sizeof(STORCON_OPTIONS) / sizeof(STORCON_OPTIONS[0]),
};

const ConfigSpec *storcon_config_spec(void)
{
    return &STORCON_CONFIG_SPEC;
}

/* config_check: the rules that involve several options or need more than the table's parsing.
 * Sets *exit_code to BAD_ARGS for a malformed value, CONFIG for a combination that cannot work. */
static bool config_check(StorconConfig *c, int *exit_code, Err *err)
{
    *exit_code = EXIT_CODE_BAD_ARGS;
    if (!log_level_parse(c->log_level_name, &c->log_level)) {
        err_set(err, ERR_BAD_REQUEST, "--log-level %s: expected debug, info, warn or error",
                c->log_level_name);
        return false;
    }
    if (c->db_connect_timeout_ms == 0) {
        err_set(err, ERR_BAD_REQUEST, "--db-connect-timeout must be more than 0");
        return false;
    }
    if (c->control_plane_url[0] != '\0' && !str_has_prefix(c->control_plane_url, "http://") &&
        !str_has_prefix(c->control_plane_url, "https://")) {
        err_set(err, ERR_BAD_REQUEST, "--control-plane-url %s: expected an http:// or https:// URL",
                c->control_plane_url);
        return false;
    }
    c->migrate_only = c->migrate_to_text[0] != '\0';
    if (c->migrate_only) {
        uint64_t v = 0;
        if (!parse_u64(c->migrate_to_text, 0, INT_MAX, &v)) {
            err_set(err, ERR_BAD_REQUEST, "--migrate-to %s: expected a schema version number",
                    c->migrate_to_text);
            return false;
        }
        if (v > (uint64_t)MIGRATIONS_COUNT) {
            err_set(err, ERR_BAD_REQUEST,
                    "--migrate-to %s: this storcon knows schema versions 0 to %d",
                    c->migrate_to_text, MIGRATIONS_COUNT);
            return false;
        }
        c->migrate_to = (int)v;
        return true; /* migrating needs no keys and serves nothing */
    }
    *exit_code = EXIT_CODE_CONFIG;
    if (!c->dev && c->public_key[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST,
                "--public-key is required (or --dev for development without auth)");
        return false;
    }
    return true;
}

ConfigResult storcon_config_load(int argc, char **argv, StorconConfig *out, int *exit_code,
                                 Err *err)
{
    memset(out, 0, sizeof(*out));
    *exit_code = EXIT_CODE_BAD_ARGS;
    ConfigResult r = config_load(&STORCON_CONFIG_SPEC, argc, argv, out, err);
    if (r != CONFIG_OK)
        return r;
    if (!config_check(out, exit_code, err))
        return CONFIG_ERROR;
    *exit_code = EXIT_CODE_OK;
    return CONFIG_OK;
}
