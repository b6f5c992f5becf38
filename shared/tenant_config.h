/*
 * tenant_config.h: per-tenant settings (pageserver.md "Tenant config"): the TenantConfig struct,
 * its one JSON field table, defaults, strict and lenient decoding, rendering, PATCH semantics.
 *
 * Every field is optional. A TenantConfig holds only overrides: a field whose presence is
 * JSON_PRESENCE_SET overrides the pageserver default, anything else means "use the default"
 * (tenant_config_effective fills the gaps). TenantConfig is a plain value (no heap): copy it with
 * `=`.
 *
 * There is one field table (TENANT_CONFIG_SPEC); it is used for
 *   - PUT /v1/tenant/config and storcon's tenant create: strict, unknown field -> 400
 *     `unknown field "<name>"` (a misspelt retention setting must not silently fall back to the
 *     default), through tenant_config_request_decode or by JSON_FLATTEN-ing TENANT_CONFIG_SPEC
 *     into another request spec (then call tenant_config_validate);
 *   - location_config.tenant_conf: lenient (TENANT_CONFIG_LENIENT_SPEC, same rows), unknown
 *     fields ignored and logged, for forward compatibility;
 *   - rendering (tenant_config_to_json / tenant_config_effective_json), equality and patching,
 *     which walk the same rows.
 *
 * Values are validated by type: bytes fields take an integer or a string such as "64MiB",
 * durations a human string ("10m", "1h", "20 s", "7 days"), max_lsn_wal_lag a non-zero JSON
 * integer (the string "1000" is rejected), image_compression "disabled", "zstd" or "zstd(<level>)"
 * with level in [TENANT_CONFIG_ZSTD_LEVEL_MIN, TENANT_CONFIG_ZSTD_LEVEL_MAX]. null on any field
 * means "the default" (PUT) or "remove the override" (PATCH).
 *
 * Defaults (Neon's; see TENANT_CONFIG_DEFAULT_* below): checkpoint_distance 256 MiB,
 * checkpoint_timeout 10m, compaction_target_size 128 MiB, compaction_period 20s,
 * compaction_threshold 10, gc_horizon 64 MiB, gc_period 1h, image_creation_threshold 3,
 * pitr_interval 7 days, walreceiver_connect_timeout 10s, lagging_wal_timeout 10s,
 * max_lsn_wal_lag 10 GiB, heatmap_period 0 (no heatmap uploads; the controller sets 60s when the
 * shard has secondaries), lsn_lease_length 10m, lsn_lease_length_for_ts 1s,
 * image_compression "zstd(1)" (Neon's current default: cheap and effective on page images),
 * image_layer_creation_check_threshold 2, min_resident_size_override none (null),
 * evictions_low_residence_duration_metric_threshold 24h, timeline_offloading true.
 */
#ifndef SHARED_TENANT_CONFIG_H
#define SHARED_TENANT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/json.h"

#define TENANT_CONFIG_DEFAULT_CHECKPOINT_DISTANCE            (256ull * 1024 * 1024)
#define TENANT_CONFIG_DEFAULT_CHECKPOINT_TIMEOUT_MS          (10 * 60 * 1000ull)
#define TENANT_CONFIG_DEFAULT_COMPACTION_TARGET_SIZE         (128ull * 1024 * 1024)
#define TENANT_CONFIG_DEFAULT_COMPACTION_PERIOD_MS           (20 * 1000ull)
#define TENANT_CONFIG_DEFAULT_COMPACTION_THRESHOLD           10u
#define TENANT_CONFIG_DEFAULT_GC_HORIZON                     (64ull * 1024 * 1024)
#define TENANT_CONFIG_DEFAULT_GC_PERIOD_MS                   (60 * 60 * 1000ull)
#define TENANT_CONFIG_DEFAULT_IMAGE_CREATION_THRESHOLD       3u
#define TENANT_CONFIG_DEFAULT_PITR_INTERVAL_MS               (7 * 24 * 60 * 60 * 1000ull)
#define TENANT_CONFIG_DEFAULT_WALRECEIVER_CONNECT_TIMEOUT_MS (10 * 1000ull)
#define TENANT_CONFIG_DEFAULT_LAGGING_WAL_TIMEOUT_MS         (10 * 1000ull)
#define TENANT_CONFIG_DEFAULT_MAX_LSN_WAL_LAG                (10ull * 1024 * 1024 * 1024)
#define TENANT_CONFIG_DEFAULT_HEATMAP_PERIOD_MS              0ull
#define TENANT_CONFIG_DEFAULT_LSN_LEASE_LENGTH_MS            (10 * 60 * 1000ull)
#define TENANT_CONFIG_DEFAULT_LSN_LEASE_LENGTH_FOR_TS_MS     (1000ull)
#define TENANT_CONFIG_DEFAULT_IMAGE_COMPRESSION              "zstd(1)"
#define TENANT_CONFIG_DEFAULT_IMAGE_LAYER_CHECK_THRESHOLD    2u
#define TENANT_CONFIG_DEFAULT_EVICTIONS_LOW_RESIDENCE_MS     (24 * 60 * 60 * 1000ull)
#define TENANT_CONFIG_DEFAULT_TIMELINE_OFFLOADING            true

/* image_compression levels: Neon keeps the level in an i8; zstd's strongest level is 22. */
#define TENANT_CONFIG_ZSTD_LEVEL_MIN   (-128)
#define TENANT_CONFIG_ZSTD_LEVEL_MAX   22
#define TENANT_CONFIG_COMPRESSION_SIZE 16 /* "zstd(-128)" + NUL fits with room */

/* Each value member is followed by its presence: SET = override, otherwise the default applies
 * (NULL only appears in a decoded PATCH body, where it means "remove the override"). */
typedef struct TenantConfig {
    uint64_t checkpoint_distance; /* bytes */
    JsonPresence checkpoint_distance_p;
    uint64_t checkpoint_timeout_ms;
    JsonPresence checkpoint_timeout_p;
    uint64_t compaction_target_size; /* bytes */
    JsonPresence compaction_target_size_p;
    uint64_t compaction_period_ms;
    JsonPresence compaction_period_p;
    uint32_t compaction_threshold;
    JsonPresence compaction_threshold_p;
    uint64_t gc_horizon; /* bytes */
    JsonPresence gc_horizon_p;
    uint64_t gc_period_ms;
    JsonPresence gc_period_p;
    uint32_t image_creation_threshold;
    JsonPresence image_creation_threshold_p;
    uint64_t pitr_interval_ms;
    JsonPresence pitr_interval_p;
    uint64_t walreceiver_connect_timeout_ms;
    JsonPresence walreceiver_connect_timeout_p;
    uint64_t lagging_wal_timeout_ms;
    JsonPresence lagging_wal_timeout_p;
    uint64_t max_lsn_wal_lag; /* bytes of WAL; non-zero JSON integer */
    JsonPresence max_lsn_wal_lag_p;
    uint64_t heatmap_period_ms; /* 0 = no heatmap uploads */
    JsonPresence heatmap_period_p;
    uint64_t lsn_lease_length_ms;
    JsonPresence lsn_lease_length_p;
    uint64_t lsn_lease_length_for_ts_ms;
    JsonPresence lsn_lease_length_for_ts_p;
    char image_compression[TENANT_CONFIG_COMPRESSION_SIZE]; /* canonical text, see below */
    JsonPresence image_compression_p;
    uint8_t image_layer_creation_check_threshold;
    JsonPresence image_layer_creation_check_threshold_p;
    uint64_t min_resident_size_override; /* bytes; default none */
    JsonPresence min_resident_size_override_p;
    uint64_t evictions_low_residence_duration_metric_threshold_ms;
    JsonPresence evictions_low_residence_duration_metric_threshold_p;
    bool timeline_offloading;
    JsonPresence timeline_offloading_p;
} TenantConfig;

/* The field table: strict (unknown -> 400) and lenient (unknown ignored, logged) views of the same
 * rows. For JSON_FLATTEN into other request specs; call tenant_config_validate afterwards. */
extern const JsonSpec TENANT_CONFIG_SPEC;
extern const JsonSpec TENANT_CONFIG_LENIENT_SPEC;

/* The PUT / PATCH /v1/tenant/config body: {"tenant_id": ..., <TenantConfig fields>} (strict). */
typedef struct TenantConfigRequest {
    TenantId tenant_id;
    TenantConfig config; /* presences as given: NULL = remove the override (PATCH) */
} TenantConfigRequest;

typedef enum ImageCompressionAlgo {
    IMAGE_COMPRESSION_DISABLED,
    IMAGE_COMPRESSION_ZSTD,
    IMAGE_COMPRESSION_ALGO_COUNT
} ImageCompressionAlgo;

typedef struct ImageCompression {
    ImageCompressionAlgo algo;
    bool has_level; /* "zstd" alone: zstd's default level */
    int level;
} ImageCompression;

/* tenant_config_init: no overrides (every field absent). */
void tenant_config_init(TenantConfig *cfg);

/* tenant_config_defaults: the pageserver defaults, every field with a default SET (static
 * storage; do not free). min_resident_size_override has no default and stays absent. */
const TenantConfig *tenant_config_defaults(void);

/* tenant_config_decode: obj (a JSON object) into *out. strict: unknown field -> 400 `unknown field
 * "<name>"`; otherwise unknown fields are skipped and logged. Type and value errors -> 400 naming
 * the field. null = absent. *out is written only on success. */
bool tenant_config_decode(const json_t *obj, bool strict, TenantConfig *out, Err *err) MUST_CHECK;

/* tenant_config_validate: the checks a typed decode cannot make (image_compression syntax, byte
 * sizes that fit a JSON integer), and image_compression rewritten to its canonical form. For
 * callers that decoded TENANT_CONFIG_SPEC themselves (JSON_FLATTEN); decode functions here call
 * it already. */
bool tenant_config_validate(TenantConfig *cfg, Err *err) MUST_CHECK;

/* tenant_config_request_decode: the strict PUT / PATCH envelope. tenant_id is required. The
 * config keeps null presences so PATCH can tell "remove" from "keep"; for PUT apply it to an empty
 * config with tenant_config_apply_patch. */
bool tenant_config_request_decode(const json_t *obj, TenantConfigRequest *out, Err *err) MUST_CHECK;

/* tenant_config_to_json: the overrides only, in table order; durations as human strings ("10m"),
 * byte sizes as integers. New reference; the caller owns it. */
json_t *tenant_config_to_json(const TenantConfig *cfg);

/* tenant_config_effective: the defaults overlaid with cfg's overrides, into *out. */
void tenant_config_effective(const TenantConfig *cfg, TenantConfig *out);

/* tenant_config_effective_json: every field, defaults overlaid with overrides (a field without a
 * default and without an override renders as null). New reference; the caller owns it. */
json_t *tenant_config_effective_json(const TenantConfig *cfg);

/* tenant_config_apply_patch: per field of patch: SET -> set the override, NULL -> remove it,
 * ABSENT -> keep. */
void tenant_config_apply_patch(TenantConfig *cfg, const TenantConfig *patch);

/* tenant_config_patch: decode obj strictly (as a PATCH body without the tenant_id envelope) and
 * apply it to *cfg. On failure *cfg is unchanged. */
bool tenant_config_patch(TenantConfig *cfg, const json_t *obj, Err *err) MUST_CHECK;

/* tenant_config_equal: the same overrides with the same values (unset values are ignored). */
bool tenant_config_equal(const TenantConfig *a, const TenantConfig *b);

/* tenant_config_field_count / tenant_config_field_name: the JSON names in table order. */
size_t tenant_config_field_count(void);
const char *tenant_config_field_name(size_t i);

/* tenant_config_image_compression_parse: "disabled", "zstd", "zstd(<level>)"; 400 otherwise. */
bool tenant_config_image_compression_parse(const char *s, ImageCompression *out,
                                           Err *err) MUST_CHECK;
/* tenant_config_image_compression_format: the canonical text of c. */
void tenant_config_image_compression_format(ImageCompression c,
                                            char out[TENANT_CONFIG_COMPRESSION_SIZE]);
/* tenant_config_image_compression: the effective setting of cfg (override or default). */
ImageCompression tenant_config_image_compression(const TenantConfig *cfg);

#endif
