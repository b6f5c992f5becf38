/*
 * location_config.h: the declarative LocationConfig the storage controller PUTs to
 * /v1/tenant/{tsid}/location_config (pageserver.md "LocationConfig"), its decoding and echo, and
 * the classification of a new config against the running one (the upsert rules).
 *
 * Wire form, all keys at the top level, unknown keys -> 400:
 *   mode               "AttachedSingle" | "AttachedMulti" | "AttachedStale" | "Secondary" |
 *                      "Detached" (required)
 *   generation         u32 or null: required (non-null) for Attached*, null or absent for
 * Secondary, either for Detached (ignored there) secondary_conf     {"warm": bool} or null: only
 * with Secondary (any other mode -> 400); missing -> warm false shard_number, shard_count,
 * shard_stripe_size   u8, u8, u32; default 0 tenant_conf        TenantConfig object (required),
 * decoded leniently (unknown fields ignored and logged, known fields type-checked)
 *
 * Shard parameters: shard_count 0 is the unsharded (legacy) tenant: shard_number must be 0 and the
 * stripe size may be 0 (absent; there is nothing to stripe) or any value (kept and echoed). With
 * shard_count >= 1, shard_number < shard_count and shard_stripe_size != 0 (wire.md validity).
 * Anything else -> 400.
 *
 * Echo: GET /v1/location_config/{tsid} must return exactly what was set because the controller
 * compares it for equality. location_config_to_json emits every key in one fixed order (mode,
 * generation, secondary_conf, shard_number, shard_count, shard_stripe_size, tenant_conf; Neon's
 * order), null for an absent generation or secondary_conf, and tenant_conf as the very object that
 * was given (a held reference, so unknown and differently spelt fields survive). A body given in
 * that order with every key therefore echoes byte for byte.
 */
#ifndef PAGESERVER_LOCATION_CONFIG_H
#define PAGESERVER_LOCATION_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"

#include "shared/tenant_config.h"

typedef enum LocationMode {
    LOCATION_MODE_ATTACHED_SINGLE,
    LOCATION_MODE_ATTACHED_MULTI,
    LOCATION_MODE_ATTACHED_STALE,
    LOCATION_MODE_SECONDARY,
    LOCATION_MODE_DETACHED,
    LOCATION_MODE_COUNT
} LocationMode;

typedef struct LocationConfig {
    LocationMode mode;
    Generation generation;   /* GENERATION_NONE when null or absent */
    bool has_secondary_conf; /* secondary_conf was an object (echoed); else echoed as null */
    bool secondary_warm;     /* false when secondary_conf is missing */
    ShardNumber shard_number;
    ShardCount shard_count;
    uint32_t shard_stripe_size;
    TenantConfig tenant_conf; /* decoded from tenant_conf_json */
    json_t *tenant_conf_json; /* the object as given: an owned reference, or NULL when the
                                 config was built in code (then rendered from tenant_conf) */
} LocationConfig;

/* How a new config relates to the running one (location_config_classify_change). */
typedef enum LocationChange {
    LOCATION_CHANGE_NEW,                  /* no slot yet (or only a detached one): create it */
    LOCATION_CHANGE_SAME_GENERATION_SWAP, /* attached -> attached, equal generation and shard
                                             identity: swap mode and config in place, no restart */
    LOCATION_CHANGE_LOWER_GENERATION,     /* attached -> attached with a lower generation: 400 */
    LOCATION_CHANGE_RESTART,              /* higher generation, attached <-> secondary, or a
                                             different shard identity: shut the slot down, persist
                                             the new config, load from remote storage */
    LOCATION_CHANGE_SECONDARY_UPDATE,     /* secondary -> secondary: update warm and config in
                                             place */
    LOCATION_CHANGE_DETACH,               /* new mode Detached: remove the slot and local data
                                             (also when there is no slot: idempotent) */
    LOCATION_CHANGE_COUNT
} LocationChange;

/* location_config_init: an empty Detached config with no tenant_conf reference. */
void location_config_init(LocationConfig *cfg);

/* location_config_finish: drop the tenant_conf reference; cfg is then as after init. */
void location_config_finish(LocationConfig *cfg);

/* location_config_copy: *dst (initialised or finished: its old contents are not released)
 * becomes a copy of *src sharing the tenant_conf object (one more reference). */
void location_config_copy(LocationConfig *dst, const LocationConfig *src);

/* location_config_decode: obj into *out, which is initialised here (finish an old value first).
 * On success *out holds a reference to obj's tenant_conf object: release it with
 * location_config_finish. On failure *out is left initialised (nothing to release). 400 for any
 * invalid input, naming the field. */
bool location_config_decode(const json_t *obj, LocationConfig *out, Err *err) MUST_CHECK;

/* location_config_to_json: the echo (see above). New reference; the caller owns it. */
json_t *location_config_to_json(const LocationConfig *cfg);

/* location_config_equal: equal echoes (what the controller compares). */
bool location_config_equal(const LocationConfig *a, const LocationConfig *b);

/* location_config_mode_name: the wire name ("AttachedSingle"); static storage. */
const char *location_config_mode_name(LocationMode mode);

/* location_config_mode_parse: exact wire names only; 400 `unknown location mode "<s>"`. */
bool location_config_mode_parse(const char *s, LocationMode *out, Err *err) MUST_CHECK;

/* location_config_mode_is_attached / location_config_is_attached: AttachedSingle, AttachedMulti
 * or AttachedStale. */
bool location_config_mode_is_attached(LocationMode mode);
bool location_config_is_attached(const LocationConfig *cfg);

/* location_config_shard_index: (shard_number, shard_count). */
ShardIndex location_config_shard_index(const LocationConfig *cfg);

/* location_config_check_tsid: the body's shard_number and shard_count are those of the tenant
 * shard id in the URL; 400 otherwise. */
bool location_config_check_tsid(const LocationConfig *cfg, const TenantShardId *tsid,
                                Err *err) MUST_CHECK;

/* location_config_set_tenant_conf: replace the tenant config (and its echoed object, rendered
 * from conf's overrides). For configs built in code, e.g. from a re-attach response. */
void location_config_set_tenant_conf(LocationConfig *cfg, const TenantConfig *conf);

/* location_config_classify_change: what to do with new_cfg given the running config old (NULL
 * when there is no slot). See LocationChange for each case. */
LocationChange location_config_classify_change(const LocationConfig *old,
                                               const LocationConfig *new_cfg);

/* location_change_name: a short stable name ("same_generation_swap") for logs; static storage. */
const char *location_change_name(LocationChange change);

#endif
