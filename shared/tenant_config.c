/*
 * tenant_config.c: the tenant config field table and everything that walks it (see
 * tenant_config.h).
 *
 * TENANT_CONFIG_FIELDS is the only list of fields: json_decode reads through it, and rendering,
 * effective values, equality and patching loop over the same rows using each row's offset, size,
 * presence offset and type. Adding a field is one struct member pair, one row and one default.
 */
#include "shared/tenant_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/json.h"
#include "shared/str.h"

/* Every row is nullable: null means "the default" (PUT) or "remove the override" (PATCH). */
#define TC_ROW(member, presence, name, type, flags)                                                \
    JSON_FIELD_P(TenantConfig, member, presence, name, type, JSON_NULLABLE | (flags))

static const JsonField TENANT_CONFIG_FIELDS[] = {
    TC_ROW(checkpoint_distance, checkpoint_distance_p, "checkpoint_distance", JSON_FIELD_BYTES, 0),
    TC_ROW(checkpoint_timeout_ms, checkpoint_timeout_p, "checkpoint_timeout", JSON_FIELD_DURATION,
           0),
    TC_ROW(compaction_target_size, compaction_target_size_p, "compaction_target_size",
           JSON_FIELD_BYTES, 0),
    TC_ROW(compaction_period_ms, compaction_period_p, "compaction_period", JSON_FIELD_DURATION, 0),
    TC_ROW(compaction_threshold, compaction_threshold_p, "compaction_threshold", JSON_FIELD_U32, 0),
    TC_ROW(gc_horizon, gc_horizon_p, "gc_horizon", JSON_FIELD_BYTES, 0),
    TC_ROW(gc_period_ms, gc_period_p, "gc_period", JSON_FIELD_DURATION, 0),
    TC_ROW(image_creation_threshold, image_creation_threshold_p, "image_creation_threshold",
           JSON_FIELD_U32, 0),
    TC_ROW(pitr_interval_ms, pitr_interval_p, "pitr_interval", JSON_FIELD_DURATION, 0),
    TC_ROW(walreceiver_connect_timeout_ms, walreceiver_connect_timeout_p,
           "walreceiver_connect_timeout", JSON_FIELD_DURATION, 0),
    TC_ROW(lagging_wal_timeout_ms, lagging_wal_timeout_p, "lagging_wal_timeout",
           JSON_FIELD_DURATION, 0),
    /* U64, not BYTES: a JSON integer only, as in Neon ("1000" as a string is a type error) */
    TC_ROW(max_lsn_wal_lag, max_lsn_wal_lag_p, "max_lsn_wal_lag", JSON_FIELD_U64, JSON_NONZERO),
    TC_ROW(heatmap_period_ms, heatmap_period_p, "heatmap_period", JSON_FIELD_DURATION, 0),
    TC_ROW(lsn_lease_length_ms, lsn_lease_length_p, "lsn_lease_length", JSON_FIELD_DURATION, 0),
    TC_ROW(lsn_lease_length_for_ts_ms, lsn_lease_length_for_ts_p, "lsn_lease_length_for_ts",
           JSON_FIELD_DURATION, 0),
    TC_ROW(image_compression, image_compression_p, "image_compression", JSON_FIELD_STRING, 0),
    TC_ROW(image_layer_creation_check_threshold, image_layer_creation_check_threshold_p,
           "image_layer_creation_check_threshold", JSON_FIELD_U8, 0),
    TC_ROW(min_resident_size_override, min_resident_size_override_p, "min_resident_size_override",
           JSON_FIELD_BYTES, 0),
    TC_ROW(evictions_low_residence_duration_metric_threshold_ms,
           evictions_low_residence_duration_metric_threshold_p,
           "evictions_low_residence_duration_metric_threshold", JSON_FIELD_DURATION, 0),
    TC_ROW(timeline_offloading, timeline_offloading_p, "timeline_offloading", JSON_FIELD_BOOL, 0),
};

#define N_FIELDS (sizeof(TENANT_CONFIG_FIELDS) / sizeof(TENANT_CONFIG_FIELDS[0]))

const JsonSpec TENANT_CONFIG_SPEC =
    JSON_SPEC("tenant config", TENANT_CONFIG_FIELDS, JSON_UNKNOWN_REJECT);
const JsonSpec TENANT_CONFIG_LENIENT_SPEC =
    JSON_SPEC("location_config.tenant_conf", TENANT_CONFIG_FIELDS, JSON_UNKNOWN_IGNORE_LOG);

static const JsonField REQUEST_FIELDS[] = {
    JSON_FIELD(TenantConfigRequest, tenant_id, "tenant_id", JSON_FIELD_TENANT_ID, JSON_REQUIRED),
    JSON_FLATTEN(TenantConfigRequest, config, &TENANT_CONFIG_SPEC),
};
static const JsonSpec REQUEST_SPEC =
    JSON_SPEC("tenant config request", REQUEST_FIELDS, JSON_UNKNOWN_REJECT);

#define SET JSON_PRESENCE_SET

static const TenantConfig DEFAULTS = {
    .checkpoint_distance = TENANT_CONFIG_DEFAULT_CHECKPOINT_DISTANCE,
    .checkpoint_distance_p = SET,
    .checkpoint_timeout_ms = TENANT_CONFIG_DEFAULT_CHECKPOINT_TIMEOUT_MS,
    .checkpoint_timeout_p = SET,
    .compaction_target_size = TENANT_CONFIG_DEFAULT_COMPACTION_TARGET_SIZE,
    .compaction_target_size_p = SET,
    .compaction_period_ms = TENANT_CONFIG_DEFAULT_COMPACTION_PERIOD_MS,
    .compaction_period_p = SET,
    .compaction_threshold = TENANT_CONFIG_DEFAULT_COMPACTION_THRESHOLD,
    .compaction_threshold_p = SET,
    .gc_horizon = TENANT_CONFIG_DEFAULT_GC_HORIZON,
    .gc_horizon_p = SET,
    .gc_period_ms = TENANT_CONFIG_DEFAULT_GC_PERIOD_MS,
    .gc_period_p = SET,
    .image_creation_threshold = TENANT_CONFIG_DEFAULT_IMAGE_CREATION_THRESHOLD,
    .image_creation_threshold_p = SET,
    .pitr_interval_ms = TENANT_CONFIG_DEFAULT_PITR_INTERVAL_MS,
    .pitr_interval_p = SET,
    .walreceiver_connect_timeout_ms = TENANT_CONFIG_DEFAULT_WALRECEIVER_CONNECT_TIMEOUT_MS,
    .walreceiver_connect_timeout_p = SET,
    .lagging_wal_timeout_ms = TENANT_CONFIG_DEFAULT_LAGGING_WAL_TIMEOUT_MS,
    .lagging_wal_timeout_p = SET,
    .max_lsn_wal_lag = TENANT_CONFIG_DEFAULT_MAX_LSN_WAL_LAG,
    .max_lsn_wal_lag_p = SET,
    .heatmap_period_ms = TENANT_CONFIG_DEFAULT_HEATMAP_PERIOD_MS,
    .heatmap_period_p = SET,
    .lsn_lease_length_ms = TENANT_CONFIG_DEFAULT_LSN_LEASE_LENGTH_MS,
    .lsn_lease_length_p = SET,
    .lsn_lease_length_for_ts_ms = TENANT_CONFIG_DEFAULT_LSN_LEASE_LENGTH_FOR_TS_MS,
    .lsn_lease_length_for_ts_p = SET,
    .image_compression = TENANT_CONFIG_DEFAULT_IMAGE_COMPRESSION,
    .image_compression_p = SET,
    .image_layer_creation_check_threshold = TENANT_CONFIG_DEFAULT_IMAGE_LAYER_CHECK_THRESHOLD,
    .image_layer_creation_check_threshold_p = SET,
    .min_resident_size_override = 0,
    .min_resident_size_override_p = JSON_PRESENCE_ABSENT, /* none */
    .evictions_low_residence_duration_metric_threshold_ms =
        TENANT_CONFIG_DEFAULT_EVICTIONS_LOW_RESIDENCE_MS,
    .evictions_low_residence_duration_metric_threshold_p = SET,
    .timeline_offloading = TENANT_CONFIG_DEFAULT_TIMELINE_OFFLOADING,
    .timeline_offloading_p = SET,
};

#undef SET

/* ---- row access ---- */

static JsonPresence row_presence(const JsonField *f, const TenantConfig *cfg)
{
    return *(const JsonPresence *)((const char *)cfg + f->presence_offset);
}

static void row_set_presence(const JsonField *f, TenantConfig *cfg, JsonPresence p)
{
    *(JsonPresence *)((char *)cfg + f->presence_offset) = p;
}

static const void *row_value(const JsonField *f, const TenantConfig *cfg)
{
    return (const char *)cfg + f->offset;
}

/* row_copy: the value and presence of one row from src into dst. */
static void row_copy(const JsonField *f, TenantConfig *dst, const TenantConfig *src)
{
    memcpy((char *)dst + f->offset, row_value(f, src), f->size);
    row_set_presence(f, dst, row_presence(f, src));
}

/* row_clear: no override; the value is zeroed so stale bytes never leak into a comparison. */
static void row_clear(const JsonField *f, TenantConfig *cfg)
{
    memset((char *)cfg + f->offset, 0, f->size);
    row_set_presence(f, cfg, JSON_PRESENCE_ABSENT);
}

/* row_to_json: one row's value rendered as on the wire (durations as human strings, byte sizes
 * and counts as integers). */
static json_t *row_to_json(const JsonField *f, const TenantConfig *cfg)
{
    const void *p = row_value(f, cfg);
    switch (f->type) {
    case JSON_FIELD_BYTES:
    case JSON_FIELD_U64: {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        return json_must(json_integer((json_int_t)v)); /* validate keeps it <= INT64_MAX */
    }
    case JSON_FIELD_U32: {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return json_must(json_integer((json_int_t)v));
    }
    case JSON_FIELD_U8: {
        uint8_t v;
        memcpy(&v, p, sizeof(v));
        return json_must(json_integer((json_int_t)v));
    }
    case JSON_FIELD_DURATION: {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        return json_from_duration_ms(v);
    }
    case JSON_FIELD_BOOL: {
        bool v;
        memcpy(&v, p, sizeof(v));
        return json_must(json_boolean(v));
    }
    case JSON_FIELD_STRING:
        return json_must(json_stringn((const char *)p, strnlen((const char *)p, f->size)));
    default:
        /* a row type this file does not render: a programming error caught by the unit tests */
        fprintf(stderr, "fatal: tenant config field \"%s\" has an unrenderable type\n", f->name);
        abort();
    }
}

/* render: the rows of cfg into a new object; with_unset, rows without a value render as null. */
static json_t *render(const TenantConfig *cfg, bool with_unset)
{
    json_t *obj = json_must(json_object());
    for (size_t i = 0; i < N_FIELDS; i++) {
        const JsonField *f = &TENANT_CONFIG_FIELDS[i];
        json_t *v = NULL;
        if (row_presence(f, cfg) == JSON_PRESENCE_SET)
            v = row_to_json(f, cfg);
        else if (with_unset)
            v = json_must(json_null());
        if (v != NULL)
            json_set_new(obj, f->name, v);
    }
    return obj;
}

/* normalize: null presences (decoded from a PUT body) mean the same as absent. */
static void normalize(TenantConfig *cfg)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        const JsonField *f = &TENANT_CONFIG_FIELDS[i];
        if (row_presence(f, cfg) != JSON_PRESENCE_SET)
            row_clear(f, cfg);
    }
}

/* ---- public ---- */

void tenant_config_init(TenantConfig *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

const TenantConfig *tenant_config_defaults(void)
{
    return &DEFAULTS;
}

size_t tenant_config_field_count(void)
{
    return N_FIELDS;
}

const char *tenant_config_field_name(size_t i)
{
    return i < N_FIELDS ? TENANT_CONFIG_FIELDS[i].name : NULL;
}

/* tenant_config_image_compression_parse: Neon's spelling: lowercase, no spaces, the level an
 * optionally negative decimal integer. */
bool tenant_config_image_compression_parse(const char *s, ImageCompression *out, Err *err)
{
    static const char PREFIX[] = "zstd(";
    const size_t plen = sizeof(PREFIX) - 1;
    if (strcmp(s, "disabled") == 0) {
        *out = (ImageCompression){IMAGE_COMPRESSION_DISABLED, false, 0};
        return true;
    }
    if (strcmp(s, "zstd") == 0) {
        *out = (ImageCompression){IMAGE_COMPRESSION_ZSTD, false, 0};
        return true;
    }
    size_t len = strlen(s);
    if (len > plen + 1 && strncmp(s, PREFIX, plen) == 0 && s[len - 1] == ')') {
        char num[TENANT_CONFIG_COMPRESSION_SIZE];
        size_t nlen = len - plen - 1;
        int64_t level = 0;
        if (nlen < sizeof(num)) {
            memcpy(num, s + plen, nlen);
            num[nlen] = '\0';
            if (parse_i64(num, TENANT_CONFIG_ZSTD_LEVEL_MIN, TENANT_CONFIG_ZSTD_LEVEL_MAX,
                          &level)) {
                *out = (ImageCompression){IMAGE_COMPRESSION_ZSTD, true, (int)level};
                return true;
            }
        }
        err_set(err, ERR_BAD_REQUEST,
                "invalid image_compression \"%.32s\": the zstd level must be an integer in "
                "[%d, %d]",
                s, TENANT_CONFIG_ZSTD_LEVEL_MIN, TENANT_CONFIG_ZSTD_LEVEL_MAX);
        return false;
    }
    err_set(err, ERR_BAD_REQUEST,
            "invalid image_compression \"%.32s\": expected \"disabled\", \"zstd\" or "
            "\"zstd(<level>)\"",
            s);
    return false;
}

void tenant_config_image_compression_format(ImageCompression c,
                                            char out[TENANT_CONFIG_COMPRESSION_SIZE])
{
    if (c.algo == IMAGE_COMPRESSION_DISABLED)
        str_copy(out, TENANT_CONFIG_COMPRESSION_SIZE, "disabled");
    else if (!c.has_level)
        str_copy(out, TENANT_CONFIG_COMPRESSION_SIZE, "zstd");
    else
        snprintf(out, TENANT_CONFIG_COMPRESSION_SIZE, "zstd(%d)", c.level);
}

/* tenant_config_image_compression: values in a TenantConfig were validated when decoded; a value
 * that still does not parse (set by hand) falls back to the default rather than failing a write. */
ImageCompression tenant_config_image_compression(const TenantConfig *cfg)
{
    ImageCompression c;
    if (cfg->image_compression_p == JSON_PRESENCE_SET &&
        tenant_config_image_compression_parse(cfg->image_compression, &c, NULL))
        return c;
    if (!tenant_config_image_compression_parse(TENANT_CONFIG_DEFAULT_IMAGE_COMPRESSION, &c, NULL))
        c = (ImageCompression){IMAGE_COMPRESSION_ZSTD, true, 1};
    return c;
}

/* tenant_config_validate: byte sizes above INT64_MAX (reachable through strings such as
 * "16777216TiB") could not be rendered back as JSON integers, so they are refused here instead of
 * being echoed as a different number. */
bool tenant_config_validate(TenantConfig *cfg, Err *err)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        const JsonField *f = &TENANT_CONFIG_FIELDS[i];
        if (row_presence(f, cfg) != JSON_PRESENCE_SET || f->type != JSON_FIELD_BYTES)
            continue;
        uint64_t v;
        memcpy(&v, row_value(f, cfg), sizeof(v));
        if (v > (uint64_t)INT64_MAX) {
            err_set(err, ERR_BAD_REQUEST, "field \"%s\": %llu bytes is too large", f->name,
                    (unsigned long long)v);
            return false;
        }
    }
    if (cfg->image_compression_p == JSON_PRESENCE_SET) {
        ImageCompression c;
        if (!tenant_config_image_compression_parse(cfg->image_compression, &c, err)) {
            err_prefix(err, "field \"image_compression\": ");
            return false;
        }
        tenant_config_image_compression_format(c, cfg->image_compression);
    }
    return true;
}

bool tenant_config_decode(const json_t *obj, bool strict, TenantConfig *out, Err *err)
{
    TenantConfig tmp;
    tenant_config_init(&tmp);
    if (!json_decode(obj, strict ? &TENANT_CONFIG_SPEC : &TENANT_CONFIG_LENIENT_SPEC, &tmp, err))
        return false;
    if (!tenant_config_validate(&tmp, err))
        return false;
    normalize(&tmp);
    *out = tmp;
    return true;
}

bool tenant_config_request_decode(const json_t *obj, TenantConfigRequest *out, Err *err)
{
    TenantConfigRequest tmp;
    memset(&tmp, 0, sizeof(tmp));
    if (!json_decode(obj, &REQUEST_SPEC, &tmp, err))
        return false;
    if (!tenant_config_validate(&tmp.config, err))
        return false;
    *out = tmp;
    return true;
}

json_t *tenant_config_to_json(const TenantConfig *cfg)
{
    return render(cfg, false);
}

void tenant_config_effective(const TenantConfig *cfg, TenantConfig *out)
{
    TenantConfig eff = DEFAULTS;
    for (size_t i = 0; i < N_FIELDS; i++) {
        const JsonField *f = &TENANT_CONFIG_FIELDS[i];
        if (row_presence(f, cfg) == JSON_PRESENCE_SET)
            row_copy(f, &eff, cfg);
    }
    *out = eff;
}

json_t *tenant_config_effective_json(const TenantConfig *cfg)
{
    TenantConfig eff;
    tenant_config_effective(cfg, &eff);
    return render(&eff, true);
}

void tenant_config_apply_patch(TenantConfig *cfg, const TenantConfig *patch)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        const JsonField *f = &TENANT_CONFIG_FIELDS[i];
        switch (row_presence(f, patch)) {
        case JSON_PRESENCE_SET:
            row_copy(f, cfg, patch);
            break;
        case JSON_PRESENCE_NULL:
            row_clear(f, cfg);
            break;
        case JSON_PRESENCE_ABSENT:
        default:
            break;
        }
    }
}

bool tenant_config_patch(TenantConfig *cfg, const json_t *obj, Err *err)
{
    TenantConfig patch;
    tenant_config_init(&patch);
    if (!json_decode(obj, &TENANT_CONFIG_SPEC, &patch, err))
        return false;
    if (!tenant_config_validate(&patch, err))
        return false;
    tenant_config_apply_patch(cfg, &patch);
    return true;
}

/* tenant_config_equal: row by row; strings compare as text, so bytes after the NUL of a string
 * member (left from an earlier, longer value) do not count. */
bool tenant_config_equal(const TenantConfig *a, const TenantConfig *b)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        const JsonField *f = &TENANT_CONFIG_FIELDS[i];
        bool set_a = row_presence(f, a) == JSON_PRESENCE_SET;
        bool set_b = row_presence(f, b) == JSON_PRESENCE_SET;
        if (set_a != set_b)
            return false;
        if (!set_a)
            continue;
        const void *va = row_value(f, a);
        const void *vb = row_value(f, b);
        if (f->type == JSON_FIELD_STRING) {
            if (strncmp((const char *)va, (const char *)vb, f->size) != 0)
                return false;
        } else if (memcmp(va, vb, f->size) != 0) {
            return false;
        }
    }
    return true;
}
