/*
 * location_config.c: LocationConfig decoding, echo, and the upsert classification (see
 * location_config.h).
 *
 * Decoding goes through one strict json.h table into a wire struct (mode as text, tenant_conf as
 * a borrowed object), then the cross-field rules (generation per mode, secondary_conf only for
 * Secondary, shard parameters) and a lenient TenantConfig decode of tenant_conf.
 */
#include "pageserver/location_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/json.h"
#include "shared/str.h"

#define MODE_NAME_SIZE 32

typedef struct SecondaryWire {
    bool warm;
} SecondaryWire;

/* What the body says, before the cross-field rules. */
typedef struct LocationConfigWire {
    char mode[MODE_NAME_SIZE];
    Generation generation;
    JsonPresence generation_p;
    SecondaryWire secondary;
    JsonPresence secondary_p;
    uint8_t shard_number;
    uint8_t shard_count;
    uint32_t shard_stripe_size;
    json_t *tenant_conf; /* borrowed from the document */
} LocationConfigWire;

static const JsonField SECONDARY_FIELDS[] = {
    JSON_FIELD(SecondaryWire, warm, "warm", JSON_FIELD_BOOL, JSON_REQUIRED),
};
static const JsonSpec SECONDARY_SPEC =
    JSON_SPEC("secondary_conf", SECONDARY_FIELDS, JSON_UNKNOWN_REJECT);

static const JsonField LOCATION_FIELDS[] = {
    JSON_FIELD(LocationConfigWire, mode, "mode", JSON_FIELD_STRING, JSON_REQUIRED),
    JSON_FIELD_P(LocationConfigWire, generation, generation_p, "generation", JSON_FIELD_GENERATION,
                 JSON_NULLABLE),
    JSON_NESTED_P(LocationConfigWire, secondary, secondary_p, "secondary_conf", &SECONDARY_SPEC,
                  JSON_NULLABLE),
    JSON_FIELD(LocationConfigWire, shard_number, "shard_number", JSON_FIELD_U8, 0),
    JSON_FIELD(LocationConfigWire, shard_count, "shard_count", JSON_FIELD_U8, 0),
    JSON_FIELD(LocationConfigWire, shard_stripe_size, "shard_stripe_size", JSON_FIELD_U32, 0),
    JSON_FIELD(LocationConfigWire, tenant_conf, "tenant_conf", JSON_FIELD_OBJECT, JSON_REQUIRED),
};
static const JsonSpec LOCATION_SPEC =
    JSON_SPEC("location config", LOCATION_FIELDS, JSON_UNKNOWN_REJECT);

static const char *const MODE_NAMES[LOCATION_MODE_COUNT] = {
    [LOCATION_MODE_ATTACHED_SINGLE] = "AttachedSingle",
    [LOCATION_MODE_ATTACHED_MULTI] = "AttachedMulti",
    [LOCATION_MODE_ATTACHED_STALE] = "AttachedStale",
    [LOCATION_MODE_SECONDARY] = "Secondary",
    [LOCATION_MODE_DETACHED] = "Detached",
};

static const char *const CHANGE_NAMES[LOCATION_CHANGE_COUNT] = {
    [LOCATION_CHANGE_NEW] = "new",
    [LOCATION_CHANGE_SAME_GENERATION_SWAP] = "same_generation_swap",
    [LOCATION_CHANGE_LOWER_GENERATION] = "lower_generation",
    [LOCATION_CHANGE_RESTART] = "restart",
    [LOCATION_CHANGE_SECONDARY_UPDATE] = "secondary_update",
    [LOCATION_CHANGE_DETACH] = "detach",
};

const char *location_config_mode_name(LocationMode mode)
{
    if ((unsigned)mode >= LOCATION_MODE_COUNT)
        return "?";
    return MODE_NAMES[mode];
}

bool location_config_mode_parse(const char *s, LocationMode *out, Err *err)
{
    for (int m = 0; m < LOCATION_MODE_COUNT; m++) {
        if (strcmp(s, MODE_NAMES[m]) == 0) {
            *out = (LocationMode)m;
            return true;
        }
    }
    err_set(err, ERR_BAD_REQUEST,
            "unknown location mode \"%.40s\" (expected AttachedSingle, AttachedMulti, "
            "AttachedStale, Secondary or Detached)",
            s);
    return false;
}

const char *location_change_name(LocationChange change)
{
    if ((unsigned)change >= LOCATION_CHANGE_COUNT)
        return "?";
    return CHANGE_NAMES[change];
}

bool location_config_mode_is_attached(LocationMode mode)
{
    return mode == LOCATION_MODE_ATTACHED_SINGLE || mode == LOCATION_MODE_ATTACHED_MULTI ||
           mode == LOCATION_MODE_ATTACHED_STALE;
}

bool location_config_is_attached(const LocationConfig *cfg)
{
    return location_config_mode_is_attached(cfg->mode);
}

ShardIndex location_config_shard_index(const LocationConfig *cfg)
{
    return (ShardIndex){cfg->shard_number, cfg->shard_count};
}

void location_config_init(LocationConfig *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->mode = LOCATION_MODE_DETACHED;
    cfg->generation = GENERATION_NONE;
    tenant_config_init(&cfg->tenant_conf);
    cfg->tenant_conf_json = NULL;
}

void location_config_finish(LocationConfig *cfg)
{
    json_decref(cfg->tenant_conf_json);
    location_config_init(cfg);
}

void location_config_copy(LocationConfig *dst, const LocationConfig *src)
{
    *dst = *src;
    json_incref(dst->tenant_conf_json);
}

void location_config_set_tenant_conf(LocationConfig *cfg, const TenantConfig *conf)
{
    json_decref(cfg->tenant_conf_json);
    cfg->tenant_conf = *conf;
    cfg->tenant_conf_json = tenant_config_to_json(conf);
}

/* check_shard: see the header. A count-0 (unsharded) location may carry any stripe size, 0
 * included, because Neon's controller sends its stripe for unsharded tenants too and the field
 * defaults to 0 when absent. */
static bool check_shard(const LocationConfigWire *w, Err *err)
{
    if (w->shard_count == 0) {
        if (w->shard_number != 0) {
            err_set(err, ERR_BAD_REQUEST,
                    "invalid shard parameters: shard_number %u with shard_count 0 (unsharded)",
                    (unsigned)w->shard_number);
            return false;
        }
        return true;
    }
    if (!shard_params_validate(w->shard_number, w->shard_count, w->shard_stripe_size, err)) {
        err_prefix(err, "invalid shard parameters: ");
        return false;
    }
    return true;
}

/* check_mode_fields: the per-mode rules for generation (never 0: generations start at 1) and
 * secondary_conf. */
static bool check_mode_fields(LocationMode mode, const LocationConfigWire *w, Err *err)
{
    if (location_config_mode_is_attached(mode) && w->generation_p != JSON_PRESENCE_SET) {
        err_set(err, ERR_BAD_REQUEST, "field \"generation\": required for mode %s",
                MODE_NAMES[mode]);
        return false;
    }
    if (mode == LOCATION_MODE_SECONDARY && w->generation_p == JSON_PRESENCE_SET) {
        err_set(err, ERR_BAD_REQUEST, "field \"generation\": must be null for mode Secondary");
        return false;
    }
    if (w->generation_p == JSON_PRESENCE_SET && w->generation == 0) {
        err_set(err, ERR_BAD_REQUEST, "field \"generation\": generations start at 1, got 0");
        return false;
    }
    if (mode != LOCATION_MODE_SECONDARY && w->secondary_p == JSON_PRESENCE_SET) {
        err_set(err, ERR_BAD_REQUEST, "field \"secondary_conf\": only allowed for mode Secondary");
        return false;
    }
    return true;
}

bool location_config_decode(const json_t *obj, LocationConfig *out, Err *err)
{
    location_config_init(out);
    LocationConfigWire w;
    memset(&w, 0, sizeof(w));
    w.generation = GENERATION_NONE;
    if (!json_decode(obj, &LOCATION_SPEC, &w, err))
        return false;
    LocationMode mode;
    if (!location_config_mode_parse(w.mode, &mode, err)) {
        err_prefix(err, "field \"mode\": ");
        return false;
    }
    if (!check_mode_fields(mode, &w, err) || !check_shard(&w, err))
        return false;
    TenantConfig conf;
    if (!tenant_config_decode(w.tenant_conf, false, &conf, err)) {
        err_prefix(err, "tenant_conf: ");
        return false;
    }
    out->mode = mode;
    out->generation = w.generation_p == JSON_PRESENCE_SET ? w.generation : GENERATION_NONE;
    out->has_secondary_conf = w.secondary_p == JSON_PRESENCE_SET;
    out->secondary_warm = out->has_secondary_conf && w.secondary.warm;
    out->shard_number = w.shard_number;
    out->shard_count = w.shard_count;
    out->shard_stripe_size = w.shard_stripe_size;
    out->tenant_conf = conf;
    out->tenant_conf_json = json_incref(w.tenant_conf);
    return true;
}

json_t *location_config_to_json(const LocationConfig *cfg)
{
    json_t *obj = json_must(json_object());
    json_set_new(obj, "mode", json_must(json_string(location_config_mode_name(cfg->mode))));
    json_set_new(obj, "generation", json_from_generation(cfg->generation));
    if (cfg->has_secondary_conf) {
        json_t *sec = json_must(json_object());
        json_set_new(sec, "warm", json_must(json_boolean(cfg->secondary_warm)));
        json_set_new(obj, "secondary_conf", sec);
    } else {
        json_set_new(obj, "secondary_conf", json_must(json_null()));
    }
    json_set_new(obj, "shard_number", json_must(json_integer(cfg->shard_number)));
    json_set_new(obj, "shard_count", json_must(json_integer(cfg->shard_count)));
    json_set_new(obj, "shard_stripe_size",
                 json_must(json_integer((json_int_t)cfg->shard_stripe_size)));
    if (cfg->tenant_conf_json != NULL)
        json_set_new(obj, "tenant_conf", json_incref(cfg->tenant_conf_json));
    else
        json_set_new(obj, "tenant_conf", tenant_config_to_json(&cfg->tenant_conf));
    return obj;
}

bool location_config_equal(const LocationConfig *a, const LocationConfig *b)
{
    json_t *ja = location_config_to_json(a);
    json_t *jb = location_config_to_json(b);
    bool eq = json_equal(ja, jb) != 0;
    json_decref(ja);
    json_decref(jb);
    return eq;
}

bool location_config_check_tsid(const LocationConfig *cfg, const TenantShardId *tsid, Err *err)
{
    if (cfg->shard_number == tsid->number && cfg->shard_count == tsid->count)
        return true;
    char id[TSID_STR_SIZE];
    tsid_format(tsid, id);
    err_set(err, ERR_BAD_REQUEST,
            "shard_number %u and shard_count %u in the body do not match tenant shard %s",
            (unsigned)cfg->shard_number, (unsigned)cfg->shard_count, id);
    return false;
}

/* same_shard_identity: number, count and stripe; a change of any of them cannot be applied to a
 * running attached slot (its layers and key ownership depend on them). */
static bool same_shard_identity(const LocationConfig *a, const LocationConfig *b)
{
    return a->shard_number == b->shard_number && a->shard_count == b->shard_count &&
           a->shard_stripe_size == b->shard_stripe_size;
}

/* location_config_classify_change: the upsert rules of pageserver.md. Detach wins over everything
 * (idempotent); a missing or detached slot is new; between attached configs the generation
 * decides (lower = a stale controller decision, refused); any change between attached and
 * secondary is a restart because the slot's machinery differs. */
LocationChange location_config_classify_change(const LocationConfig *old,
                                               const LocationConfig *new_cfg)
{
    if (new_cfg->mode == LOCATION_MODE_DETACHED)
        return LOCATION_CHANGE_DETACH;
    if (old == NULL || old->mode == LOCATION_MODE_DETACHED)
        return LOCATION_CHANGE_NEW;
    bool old_attached = location_config_is_attached(old);
    bool new_attached = location_config_is_attached(new_cfg);
    if (old_attached && new_attached) {
        if (new_cfg->generation < old->generation)
            return LOCATION_CHANGE_LOWER_GENERATION;
        if (new_cfg->generation > old->generation || !same_shard_identity(old, new_cfg))
            return LOCATION_CHANGE_RESTART;
        return LOCATION_CHANGE_SAME_GENERATION_SWAP;
    }
    if (!old_attached && !new_attached)
        return LOCATION_CHANGE_SECONDARY_UPDATE;
    return LOCATION_CHANGE_RESTART;
}
