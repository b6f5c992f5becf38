/* test_json.c: unit tests for shared/json.c (strict table-driven decoding, getters, encoders). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/json.h"
#include "shared/log.h"
#include "tests/unit/json_util.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#define TENANT_HEX   "1f359dd625e519a1a4e8d7509690f6fc"
#define TIMELINE_HEX "de200bd42b49cc1814412c7e592dd6e9"

/* ---- a tenant config resembling the pageserver's (PUT strict, PATCH tri-state) ---- */

typedef struct TenantConf {
    uint64_t pitr_interval_ms;
    JsonPresence pitr_interval_p;
    uint64_t gc_horizon;
    JsonPresence gc_horizon_p;
    uint64_t max_lsn_wal_lag;
    JsonPresence max_lsn_wal_lag_p;
    uint64_t checkpoint_distance;
    JsonPresence checkpoint_distance_p;
    uint32_t compaction_threshold;
    JsonPresence compaction_threshold_p;
    char image_compression[16];
    JsonPresence image_compression_p;
} TenantConf;

static const JsonField TENANT_CONF_FIELDS[] = {
    JSON_FIELD_P(TenantConf, pitr_interval_ms, pitr_interval_p, "pitr_interval",
                 JSON_FIELD_DURATION, JSON_NULLABLE),
    JSON_FIELD_P(TenantConf, gc_horizon, gc_horizon_p, "gc_horizon", JSON_FIELD_BYTES,
                 JSON_NULLABLE),
    JSON_FIELD_P(TenantConf, max_lsn_wal_lag, max_lsn_wal_lag_p, "max_lsn_wal_lag", JSON_FIELD_U64,
                 JSON_NULLABLE | JSON_NONZERO),
    JSON_FIELD_P(TenantConf, checkpoint_distance, checkpoint_distance_p, "checkpoint_distance",
                 JSON_FIELD_BYTES, JSON_NULLABLE),
    JSON_FIELD_P(TenantConf, compaction_threshold, compaction_threshold_p, "compaction_threshold",
                 JSON_FIELD_U32, JSON_NULLABLE),
    JSON_FIELD_P(TenantConf, image_compression, image_compression_p, "image_compression",
                 JSON_FIELD_STRING, JSON_NULLABLE),
};

static const JsonSpec TENANT_CONF_SPEC =
    JSON_SPEC("tenant config", TENANT_CONF_FIELDS, JSON_UNKNOWN_REJECT);
/* location_config.tenant_conf: the same fields, unknown ones tolerated (forward compatibility). */
static const JsonSpec TENANT_CONF_LENIENT_SPEC =
    JSON_SPEC("location_config.tenant_conf", TENANT_CONF_FIELDS, JSON_UNKNOWN_IGNORE_LOG);

/* ---- a create request: required ids, a nested object, flattened tenant config ---- */

typedef struct ShardParams {
    uint8_t count;
    uint32_t stripe_size;
} ShardParams;

static const JsonField SHARD_PARAMS_FIELDS[] = {
    JSON_FIELD(ShardParams, count, "count", JSON_FIELD_U8, JSON_REQUIRED),
    JSON_FIELD(ShardParams, stripe_size, "stripe_size", JSON_FIELD_U32, JSON_NONZERO),
};
static const JsonSpec SHARD_PARAMS_SPEC =
    JSON_SPEC("shard parameters", SHARD_PARAMS_FIELDS, JSON_UNKNOWN_REJECT);

typedef struct CreateReq {
    TenantId new_tenant_id;
    TimelineId timeline_id;
    Generation generation;
    JsonPresence generation_p;
    ShardParams shard;
    JsonPresence shard_p;
    json_t *placement_policy;
    TenantConf conf;
} CreateReq;

static const JsonField CREATE_FIELDS[] = {
    JSON_FIELD(CreateReq, new_tenant_id, "new_tenant_id", JSON_FIELD_TENANT_ID, JSON_REQUIRED),
    JSON_FIELD(CreateReq, timeline_id, "timeline_id", JSON_FIELD_TIMELINE_ID, JSON_REQUIRED),
    JSON_FIELD_P(CreateReq, generation, generation_p, "generation", JSON_FIELD_GENERATION,
                 JSON_NULLABLE),
    JSON_NESTED_P(CreateReq, shard, shard_p, "shard_parameters", &SHARD_PARAMS_SPEC, 0),
    JSON_FIELD(CreateReq, placement_policy, "placement_policy", JSON_FIELD_ANY, 0),
    JSON_FLATTEN(CreateReq, conf, &TENANT_CONF_SPEC),
};
static const JsonSpec CREATE_SPEC = JSON_SPEC("tenant create", CREATE_FIELDS, JSON_UNKNOWN_REJECT);

/* ---- one field of every type, all optional ---- */

typedef struct Inner {
    uint8_t a;
    char s[8];
} Inner;

static const JsonField INNER_FIELDS[] = {
    JSON_FIELD(Inner, a, "a", JSON_FIELD_U8, JSON_REQUIRED),
    JSON_FIELD(Inner, s, "s", JSON_FIELD_STRING, 0),
};
static const JsonSpec INNER_SPEC = JSON_SPEC("inner", INNER_FIELDS, JSON_UNKNOWN_REJECT);

typedef struct All {
    char str[8];
    bool b;
    uint8_t u8;
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    double d;
    TenantId tenant;
    TimelineId timeline;
    TenantShardId tsid;
    ShardIndex shard;
    Lsn lsn;
    NodeId node;
    Generation gen;
    uint64_t dur;
    uint64_t bytes;
    json_t *obj;
    json_t *arr;
    json_t *any;
    Inner nested;
} All;

static const JsonField ALL_FIELDS[] = {
    JSON_FIELD(All, str, "str", JSON_FIELD_STRING, 0),
    JSON_FIELD(All, b, "b", JSON_FIELD_BOOL, 0),
    JSON_FIELD(All, u8, "u8", JSON_FIELD_U8, 0),
    JSON_FIELD(All, u32, "u32", JSON_FIELD_U32, 0),
    JSON_FIELD(All, u64, "u64", JSON_FIELD_U64, 0),
    JSON_FIELD(All, i64, "i64", JSON_FIELD_I64, 0),
    JSON_FIELD(All, d, "d", JSON_FIELD_DOUBLE, 0),
    JSON_FIELD(All, tenant, "tenant", JSON_FIELD_TENANT_ID, 0),
    JSON_FIELD(All, timeline, "timeline", JSON_FIELD_TIMELINE_ID, 0),
    JSON_FIELD(All, tsid, "tsid", JSON_FIELD_TSID, 0),
    JSON_FIELD(All, shard, "shard", JSON_FIELD_SHARD_INDEX, 0),
    JSON_FIELD(All, lsn, "lsn", JSON_FIELD_LSN, 0),
    JSON_FIELD(All, node, "node", JSON_FIELD_NODE_ID, 0),
    JSON_FIELD(All, gen, "gen", JSON_FIELD_GENERATION, 0),
    JSON_FIELD(All, dur, "dur", JSON_FIELD_DURATION, 0),
    JSON_FIELD(All, bytes, "bytes", JSON_FIELD_BYTES, 0),
    JSON_FIELD(All, obj, "obj", JSON_FIELD_OBJECT, 0),
    JSON_FIELD(All, arr, "arr", JSON_FIELD_ARRAY, 0),
    JSON_FIELD(All, any, "any", JSON_FIELD_ANY, 0),
    JSON_NESTED(All, nested, "nested", &INNER_SPEC, 0),
};
static const JsonSpec ALL_SPEC = JSON_SPEC("all types", ALL_FIELDS, JSON_UNKNOWN_REJECT);

/* ---- helpers ---- */

/* decode_text: parse text and decode it with spec; returns whether decoding succeeded. */
static bool decode_text(const char *text, const JsonSpec *spec, void *out, Err *err)
{
    json_t *v = test_json(text);
    bool ok = json_decode(v, spec, out, err);
    json_decref(v);
    return ok;
}

static void expect_error(const char *text, const JsonSpec *spec, void *out, const char *want)
{
    Err err = {0};
    if (decode_text(text, spec, out, &err))
        fail_msg("%s: decoded, expected error containing: %s", text, want);
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    if (strstr(err.msg, want) == NULL)
        fail_msg("%s: error \"%s\" does not contain \"%s\"", text, err.msg, want);
}

/* member_json: the All member of field `name` re-encoded as compact JSON text (heap; caller
 * frees), through the json_from_* encoders where they apply. */
static char *member_json(const All *a, const char *name)
{
    json_t *v = NULL;
    if (strcmp(name, "str") == 0)
        v = json_string(a->str);
    else if (strcmp(name, "b") == 0)
        v = json_boolean(a->b);
    else if (strcmp(name, "u8") == 0)
        v = json_integer(a->u8);
    else if (strcmp(name, "u32") == 0)
        v = json_integer(a->u32);
    else if (strcmp(name, "u64") == 0)
        v = json_integer((json_int_t)a->u64);
    else if (strcmp(name, "i64") == 0)
        v = json_integer(a->i64);
    else if (strcmp(name, "d") == 0)
        v = json_real(a->d);
    else if (strcmp(name, "tenant") == 0)
        v = json_from_tenant_id(&a->tenant);
    else if (strcmp(name, "timeline") == 0)
        v = json_from_timeline_id(&a->timeline);
    else if (strcmp(name, "tsid") == 0)
        v = json_from_tsid(&a->tsid);
    else if (strcmp(name, "shard") == 0)
        v = json_from_shard_index(a->shard);
    else if (strcmp(name, "lsn") == 0)
        v = json_from_lsn(a->lsn);
    else if (strcmp(name, "node") == 0)
        v = json_integer((json_int_t)a->node);
    else if (strcmp(name, "gen") == 0)
        v = json_from_generation(a->gen);
    else if (strcmp(name, "dur") == 0)
        v = json_from_duration_ms(a->dur);
    else if (strcmp(name, "bytes") == 0)
        v = json_integer((json_int_t)a->bytes);
    else if (strcmp(name, "obj") == 0)
        v = json_incref(a->obj);
    else if (strcmp(name, "arr") == 0)
        v = json_incref(a->arr);
    else if (strcmp(name, "any") == 0)
        v = json_incref(a->any);
    else if (strcmp(name, "nested") == 0)
        v = json_pack("{s:i, s:s}", "a", (int)a->nested.a, "s", a->nested.s);
    if (v == NULL)
        fail_msg("member_json: no member %s", name);
    char *s = json_dumps_compact(v);
    json_decref(v);
    return s;
}

/* ---- every field type: accepted values ---- */

static const struct {
    const char *field;
    const char *value;  /* JSON text */
    const char *stored; /* the member re-encoded */
} GOOD_VALUES[] = {
    {"str", "\"\"", "\"\""},
    {"str", "\"1234567\"", "\"1234567\""},
    {"str", "\"h\\u00e9\"", "\"h\xc3\xa9\""},
    {"b", "true", "true"},
    {"b", "false", "false"},
    {"u8", "0", "0"},
    {"u8", "255", "255"},
    {"u32", "4294967295", "4294967295"},
    {"u64", "0", "0"},
    {"u64", "9223372036854775807", "9223372036854775807"},
    {"i64", "-9223372036854775808", "-9223372036854775808"},
    {"i64", "-5", "-5"},
    {"d", "1.5", "1.5"},
    {"d", "3", "3.0"},
    {"d", "-2e3", "-2000.0"},
    {"tenant", "\"" TENANT_HEX "\"", "\"" TENANT_HEX "\""},
    {"tenant", "\"1F359DD625E519A1A4E8D7509690F6FC\"", "\"" TENANT_HEX "\""},
    {"timeline", "\"" TIMELINE_HEX "\"", "\"" TIMELINE_HEX "\""},
    {"tsid", "\"" TENANT_HEX "\"", "\"" TENANT_HEX "\""},
    {"tsid", "\"" TENANT_HEX "-070a\"", "\"" TENANT_HEX "-070a\""},
    {"tsid", "\"" TENANT_HEX "-0001\"", "\"" TENANT_HEX "-0001\""},
    {"shard", "\"0104\"", "\"0104\""},
    {"shard", "\"0000\"", "\"0000\""},
    {"lsn", "\"0/16960e8\"", "\"0/16960E8\""},
    {"lsn", "\"1/2\"", "\"1/2\""},
    {"node", "7", "7"},
    {"gen", "0", "0"},
    {"gen", "4294967295", "4294967295"},
    {"dur", "\"90 minutes\"", "\"1h 30m\""},
    {"dur", "\"0s\"", "\"0s\""},
    {"bytes", "123", "123"},
    {"bytes", "\"64MiB\"", "67108864"},
    {"bytes", "\"1 GB\"", "1000000000"},
    {"obj", "{}", "{}"},
    {"obj", "{\"k\":[1]}", "{\"k\":[1]}"},
    {"arr", "[]", "[]"},
    {"arr", "[1,\"x\"]", "[1,\"x\"]"},
    {"any", "1", "1"},
    {"any", "\"x\"", "\"x\""},
    {"any", "[{}]", "[{}]"},
    {"nested", "{\"a\":3}", "{\"a\":3,\"s\":\"\"}"},
    {"nested", "{\"a\":255,\"s\":\"abc\"}", "{\"a\":255,\"s\":\"abc\"}"},
};

static void test_every_type_accepts(void **state)
{
    for (size_t i = 0; i < COUNT_OF(GOOD_VALUES); i++) {
        char text[256];
        snprintf(text, sizeof(text), "{\"%s\": %s}", GOOD_VALUES[i].field, GOOD_VALUES[i].value);
        json_t *body = test_json(text);
        All a;
        memset(&a, 0, sizeof(a));
        Err err = {0};
        if (!json_decode(body, &ALL_SPEC, &a, &err))
            fail_msg("%s: %s", text, err.msg);
        char *got = member_json(&a, GOOD_VALUES[i].field);
        if (strcmp(got, GOOD_VALUES[i].stored) != 0)
            fail_msg("%s: stored %s, want %s", text, got, GOOD_VALUES[i].stored);
        free(got);
        json_decref(body);
    }
}

/* ---- every field type: rejected values, with the field named in the message ---- */

static const struct {
    const char *field;
    const char *value;
    const char *msg; /* a substring of the error */
} BAD_VALUES[] = {
    {"str", "5", "field \"str\": expected a string, got 5"},
    {"str", "\"12345678\"", "field \"str\": string longer than 7 bytes"},
    {"str", "[]", "field \"str\": expected a string, got an array"},
    {"b", "1", "field \"b\": expected true or false, got 1"},
    {"b", "\"true\"", "field \"b\": expected true or false, got the string \"true\""},
    {"u8", "256", "field \"u8\": expected an integer in [0, 255], got 256"},
    {"u8", "-1", "field \"u8\": expected an integer in [0, 255], got -1"},
    {"u8", "1.5", "got 1.5"},
    {"u8", "1.0", "got 1.0"},
    {"u8", "\"1\"", "got the string \"1\""},
    {"u32", "4294967296", "field \"u32\": expected an integer in [0, 4294967295], got 4294967296"},
    {"u32", "-1", "field \"u32\""},
    {"u64", "-1", "field \"u64\": expected a non-negative integer, got -1"},
    {"u64", "\"1000\"", "field \"u64\": expected a non-negative integer, got the string \"1000\""},
    {"u64", "1e3", "got 1000.0"},
    {"u64", "false", "got false"},
    {"i64", "1.5", "field \"i64\": expected an integer, got 1.5"},
    {"i64", "\"-5\"", "field \"i64\""},
    {"d", "\"1.5\"", "field \"d\": expected a number"},
    {"d", "true", "field \"d\": expected a number, got true"},
    {"tenant", "5", "field \"tenant\": expected a tenant id (32 hex characters), got 5"},
    {"tenant", "\"xyz\"", "field \"tenant\": invalid tenant id \"xyz\""},
    {"tenant", "\"" TENANT_HEX "-0104\"", "field \"tenant\": invalid tenant id"},
    {"timeline", "\"" TENANT_HEX "0\"", "field \"timeline\": invalid timeline id"},
    {"timeline", "{}", "field \"timeline\": expected a timeline id"},
    {"tsid", "\"" TENANT_HEX "-0000\"", "field \"tsid\": invalid tenant shard id"},
    {"tsid", "\"" TENANT_HEX "-0404\"", "field \"tsid\""},
    {"tsid", "1", "field \"tsid\": expected a tenant shard id string, got 1"},
    {"shard", "\"0401\"", "field \"shard\": invalid shard \"0401\": shard number 4 is not below"},
    {"shard", "\"104\"", "field \"shard\": invalid shard index"},
    {"shard", "260", "field \"shard\": expected a shard index string"},
    {"lsn", "\"0/0\"", "field \"lsn\": invalid LSN \"0/0\""},
    {"lsn", "\"16960E8\"", "field \"lsn\": invalid LSN"},
    {"lsn", "23", "field \"lsn\": expected an LSN string \"X/X\", got 23"},
    {"node", "-1", "field \"node\": expected a node id (non-negative integer), got -1"},
    {"node", "\"1\"", "field \"node\""},
    {"node", "1.5", "field \"node\""},
    {"gen", "4294967296", "field \"gen\": expected a generation (integer in [0, 4294967295])"},
    {"gen", "-1", "field \"gen\""},
    {"gen", "\"1\"", "field \"gen\""},
    {"dur", "\"10 parsecs\"", "field \"dur\": invalid duration \"10 parsecs\""},
    {"dur", "\"10\"", "field \"dur\": invalid duration \"10\""},
    {"dur", "600", "field \"dur\": expected a duration string such as \"10m\", got 600"},
    {"bytes", "-1", "field \"bytes\": expected a byte size"},
    {"bytes", "1.5", "field \"bytes\": expected a byte size"},
    {"bytes", "true", "field \"bytes\""},
    {"bytes", "\"1 PB\"", "field \"bytes\": invalid byte size \"1 PB\""},
    {"obj", "[]", "field \"obj\": expected an object, got an array"},
    {"obj", "\"{}\"", "field \"obj\": expected an object"},
    {"arr", "{}", "field \"arr\": expected an array, got an object"},
    {"nested", "5", "field \"nested\": expected an object, got 5"},
    {"nested", "{\"a\": 256}", "nested: field \"a\": expected an integer in [0, 255], got 256"},
    {"nested", "{\"a\": 1, \"zz\": 1}", "nested: unknown field \"zz\""},
    {"nested", "{\"s\": \"x\"}", "nested: missing field \"a\""},
    {"nested", "{\"a\": 1, \"s\": null}", "nested: field \"s\": must not be null"},
};

static void test_every_type_rejects(void **state)
{
    for (size_t i = 0; i < COUNT_OF(BAD_VALUES); i++) {
        char text[256];
        snprintf(text, sizeof(text), "{\"%s\": %s}", BAD_VALUES[i].field, BAD_VALUES[i].value);
        All a;
        memset(&a, 0, sizeof(a));
        expect_error(text, &ALL_SPEC, &a, BAD_VALUES[i].msg);
    }
    /* null is rejected on every non-nullable field, whatever its type */
    for (size_t i = 0; i < COUNT_OF(ALL_FIELDS); i++) {
        char text[128];
        char want[128];
        snprintf(text, sizeof(text), "{\"%s\": null}", ALL_FIELDS[i].name);
        snprintf(want, sizeof(want), "field \"%s\": must not be null", ALL_FIELDS[i].name);
        All a;
        memset(&a, 0, sizeof(a));
        Err err = {0};
        assert_false(decode_text(text, &ALL_SPEC, &a, &err));
        assert_string_equal(err.msg, want);
    }
}

static void test_failed_member_untouched(void **state)
{
    All a;
    memset(&a, 0, sizeof(a));
    a.u8 = 42;
    a.dur = 1000;
    memcpy(a.str, "keep", 5);
    Err err = {0};
    assert_false(decode_text("{\"u8\": 256}", &ALL_SPEC, &a, &err));
    assert_int_equal(a.u8, 42);
    assert_false(decode_text("{\"dur\": \"5 fortnights\"}", &ALL_SPEC, &a, &err));
    assert_int_equal(a.dur, 1000);
    assert_false(decode_text("{\"str\": \"too long!\"}", &ALL_SPEC, &a, &err));
    assert_string_equal(a.str, "keep");
    /* absent fields keep the caller's defaults */
    assert_true(decode_text("{\"b\": true}", &ALL_SPEC, &a, &err));
    assert_int_equal(a.u8, 42);
    assert_int_equal(a.dur, 1000);
    assert_string_equal(a.str, "keep");
    assert_true(a.b);
}

static void test_not_an_object(void **state)
{
    static const char *bodies[] = {"[]", "1", "\"x\"", "null", "true"};
    for (size_t i = 0; i < COUNT_OF(bodies); i++) {
        All a;
        Err err = {0};
        assert_false(decode_text(bodies[i], &ALL_SPEC, &a, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_string_equal(err.msg, "expected a JSON object");
    }
    All a;
    Err err = {0};
    assert_false(json_decode(NULL, &ALL_SPEC, &a, &err));
    assert_string_equal(err.msg, "expected a JSON object");
}

/* ---- the realistic tenant config ---- */

static void test_tenant_config_put(void **state)
{
    TenantConf c;
    memset(&c, 0, sizeof(c));
    Err err = {0};
    assert_true(decode_text("{\"pitr_interval\": \"7 days\", \"gc_horizon\": \"64MiB\", "
                            "\"max_lsn_wal_lag\": 1000, \"checkpoint_distance\": 268435456, "
                            "\"image_compression\": \"zstd\"}",
                            &TENANT_CONF_SPEC, &c, &err));
    assert_true(c.pitr_interval_ms == 7ull * 24 * 3600 * 1000);
    assert_int_equal(c.pitr_interval_p, JSON_PRESENCE_SET);
    assert_true(c.gc_horizon == 64ull << 20);
    assert_true(c.max_lsn_wal_lag == 1000);
    assert_true(c.checkpoint_distance == 268435456);
    assert_string_equal(c.image_compression, "zstd");
    assert_int_equal(c.compaction_threshold_p, JSON_PRESENCE_ABSENT);

    /* a misspelt retention setting must not be silently ignored */
    err_clear(&err);
    assert_false(decode_text("{\"pitr_intervall\": \"7 days\"}", &TENANT_CONF_SPEC, &c, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_string_equal(err.msg, "unknown field \"pitr_intervall\"");
    /* the unknown field wins over other problems in the same body */
    assert_false(
        decode_text("{\"gc_horizon\": \"lots\", \"gc_horizn\": 1}", &TENANT_CONF_SPEC, &c, &err));
    assert_string_equal(err.msg, "unknown field \"gc_horizn\"");

    expect_error("{\"max_lsn_wal_lag\": \"1000\"}", &TENANT_CONF_SPEC, &c,
                 "field \"max_lsn_wal_lag\": expected a non-negative integer, got the string "
                 "\"1000\"");
    expect_error("{\"max_lsn_wal_lag\": 0}", &TENANT_CONF_SPEC, &c,
                 "field \"max_lsn_wal_lag\": must be non-zero");
    expect_error("{\"pitr_interval\": \"10 parsecs\"}", &TENANT_CONF_SPEC, &c,
                 "field \"pitr_interval\": invalid duration \"10 parsecs\"");
    expect_error("{\"pitr_interval\": 600}", &TENANT_CONF_SPEC, &c, "field \"pitr_interval\"");
    expect_error("{\"gc_horizon\": -5}", &TENANT_CONF_SPEC, &c, "field \"gc_horizon\"");
    expect_error("{\"compaction_threshold\": 4294967296}", &TENANT_CONF_SPEC, &c,
                 "field \"compaction_threshold\"");
    expect_error("{\"image_compression\": \"a-very-long-algorithm\"}", &TENANT_CONF_SPEC, &c,
                 "field \"image_compression\": string longer than 15 bytes");
}

static void test_tenant_config_patch_presence(void **state)
{
    TenantConf c;
    memset(&c, 0, sizeof(c));
    c.pitr_interval_ms = 111;
    c.gc_horizon = 222;
    c.max_lsn_wal_lag = 333;
    memcpy(c.image_compression, "lz4", 4);
    /* stale presence values from an earlier decode are overwritten */
    c.max_lsn_wal_lag_p = JSON_PRESENCE_SET;
    Err err = {0};
    assert_true(decode_text("{\"pitr_interval\": null, \"gc_horizon\": 5, "
                            "\"image_compression\": null}",
                            &TENANT_CONF_SPEC, &c, &err));
    assert_int_equal(c.pitr_interval_p, JSON_PRESENCE_NULL);
    assert_true(c.pitr_interval_ms == 111); /* null: member kept, presence says remove */
    assert_int_equal(c.gc_horizon_p, JSON_PRESENCE_SET);
    assert_true(c.gc_horizon == 5);
    assert_int_equal(c.max_lsn_wal_lag_p, JSON_PRESENCE_ABSENT);
    assert_true(c.max_lsn_wal_lag == 333);
    assert_int_equal(c.image_compression_p, JSON_PRESENCE_NULL);
    assert_int_equal(c.checkpoint_distance_p, JSON_PRESENCE_ABSENT);
}

/* read_file: the whole file at path as a heap string (caller frees). */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t count_substr(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_ignore_log_policy(void **state)
{
    char path[] = "/tmp/test_json_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    Err err = {0};
    assert_true(log_init("test_json", LOG_DEBUG, path, &err));

    TenantConf c;
    memset(&c, 0, sizeof(c));
    const char *body = "{\"pitr_interval\": \"1h\", \"future_knob\": 1, \"other_new_knob\": {}}";
    assert_true(decode_text(body, &TENANT_CONF_LENIENT_SPEC, &c, &err));
    assert_true(c.pitr_interval_ms == 3600000);
    /* known fields stay strict under the lenient policy */
    expect_error("{\"pitr_interval\": 5, \"future_knob\": 1}", &TENANT_CONF_LENIENT_SPEC, &c,
                 "field \"pitr_interval\"");
    /* the same body under the strict policy is rejected */
    expect_error(body, &TENANT_CONF_SPEC, &c, "unknown field \"future_knob\"");

    assert_true(log_init("test_json", LOG_INFO, NULL, &err));
    char *log = read_file(path);
    unlink(path);
    /* each unknown name logged once per call: the lenient body was decoded twice */
    assert_int_equal(count_substr(log, "\"future_knob\""), 2);
    assert_int_equal(count_substr(log, "\"other_new_knob\""), 1);
    assert_non_null(strstr(log, "location_config.tenant_conf"));
    assert_null(strstr(log, "pitr_interval\"")); /* known fields are not logged */
    free(log);
}

/* ---- the create request: required ids, nested object, flattened config ---- */

static void test_create_request(void **state)
{
    CreateReq r;
    memset(&r, 0, sizeof(r));
    r.generation = 99;
    r.shard.stripe_size = 2048; /* default when absent */
    Err err = {0};
    json_t *body =
        test_json("{\"new_tenant_id\": \"" TENANT_HEX "\", \"timeline_id\": \"" TIMELINE_HEX
                  "\", \"generation\": null, \"shard_parameters\": {\"count\": 4}, "
                  "\"placement_policy\": {\"Attached\": 1}, \"pitr_interval\": \"1h\", "
                  "\"gc_horizon\": 1024}");
    assert_true(json_decode(body, &CREATE_SPEC, &r, &err));
    char hex[ID_STR_SIZE];
    tenant_id_format(&r.new_tenant_id, hex);
    assert_string_equal(hex, TENANT_HEX);
    timeline_id_format(&r.timeline_id, hex);
    assert_string_equal(hex, TIMELINE_HEX);
    assert_true(r.generation == GENERATION_NONE);
    assert_int_equal(r.generation_p, JSON_PRESENCE_NULL);
    assert_int_equal(r.shard_p, JSON_PRESENCE_SET);
    assert_int_equal(r.shard.count, 4);
    assert_int_equal(r.shard.stripe_size, 2048);
    assert_non_null(r.placement_policy);
    assert_true(json_is_object(r.placement_policy));
    assert_int_equal(json_integer_value(json_object_get(r.placement_policy, "Attached")), 1);
    assert_true(r.conf.pitr_interval_ms == 3600000);
    assert_int_equal(r.conf.pitr_interval_p, JSON_PRESENCE_SET);
    assert_true(r.conf.gc_horizon == 1024);
    assert_int_equal(r.conf.max_lsn_wal_lag_p, JSON_PRESENCE_ABSENT);
    json_decref(body);

    /* generation given as a number */
    assert_true(decode_text("{\"new_tenant_id\": \"" TENANT_HEX
                            "\", \"timeline_id\": \"" TIMELINE_HEX "\", \"generation\": 7}",
                            &CREATE_SPEC, &r, &err));
    assert_true(r.generation == 7);
    assert_int_equal(r.shard_p, JSON_PRESENCE_ABSENT);

    static const struct {
        const char *body;
        const char *msg;
    } bad[] = {
        {"{\"timeline_id\": \"" TIMELINE_HEX "\"}", "missing field \"new_tenant_id\""},
        {"{\"new_tenant_id\": \"" TENANT_HEX "\"}", "missing field \"timeline_id\""},
        {"{\"new_tenant_id\": null, \"timeline_id\": \"" TIMELINE_HEX "\"}",
         "field \"new_tenant_id\": must not be null"},
        {"{\"new_tenant_id\": \"" TENANT_HEX "\", \"timeline_id\": \"" TIMELINE_HEX
         "\", \"pitr_intervall\": \"1h\"}",
         "unknown field \"pitr_intervall\""},
        {"{\"new_tenant_id\": \"" TENANT_HEX "\", \"timeline_id\": \"" TIMELINE_HEX
         "\", \"shard_parameters\": {\"count\": 2, \"x\": 1}}",
         "shard_parameters: unknown field \"x\""},
        {"{\"new_tenant_id\": \"" TENANT_HEX "\", \"timeline_id\": \"" TIMELINE_HEX
         "\", \"shard_parameters\": {\"stripe_size\": 8}}",
         "shard_parameters: missing field \"count\""},
        {"{\"new_tenant_id\": \"" TENANT_HEX "\", \"timeline_id\": \"" TIMELINE_HEX
         "\", \"shard_parameters\": {\"count\": 256}}",
         "shard_parameters: field \"count\": expected an integer in [0, 255], got 256"},
        {"{\"new_tenant_id\": \"" TENANT_HEX "\", \"timeline_id\": \"" TIMELINE_HEX
         "\", \"shard_parameters\": {\"count\": 2, \"stripe_size\": 0}}",
         "shard_parameters: field \"stripe_size\": must be non-zero"},
        {"{\"new_tenant_id\": \"" TENANT_HEX "\", \"timeline_id\": \"" TIMELINE_HEX
         "\", \"shard_parameters\": null}",
         "field \"shard_parameters\": must not be null"},
        {"{\"new_tenant_id\": \"" TENANT_HEX "\", \"timeline_id\": \"" TIMELINE_HEX
         "\", \"generation\": 4294967296}",
         "field \"generation\""},
        {"{\"new_tenant_id\": \"" TENANT_HEX "\", \"timeline_id\": \"" TIMELINE_HEX
         "\", \"max_lsn_wal_lag\": \"1000\"}",
         "field \"max_lsn_wal_lag\""},
        {"{\"new_tenant_id\": \"" TENANT_HEX "\", \"timeline_id\": \"" TIMELINE_HEX
         "\", \"placement_policy\": null}",
         "field \"placement_policy\": must not be null"},
        {"{\"new_tenant_id\": \"" TENANT_HEX "x\", \"timeline_id\": \"" TIMELINE_HEX "\"}",
         "field \"new_tenant_id\": invalid tenant id"},
    };
    for (size_t i = 0; i < COUNT_OF(bad); i++)
        expect_error(bad[i].body, &CREATE_SPEC, &r, bad[i].msg);
}

/* ---- spec validation (programming errors -> ERR_INTERNAL) ---- */

typedef struct Wrong {
    uint32_t small;
    char name[4];
    uint64_t big;
    TenantConf conf;
} Wrong;

static void test_spec_check(void **state)
{
    Err err = {0};
    assert_true(json_spec_check(&CREATE_SPEC, &err));
    assert_true(json_spec_check(&ALL_SPEC, &err));

    static const JsonField size_mismatch[] = {
        JSON_FIELD(Wrong, small, "small", JSON_FIELD_U64, 0),
    };
    static const JsonSpec s1 = JSON_SPEC("size mismatch", size_mismatch, JSON_UNKNOWN_REJECT);
    assert_false(json_spec_check(&s1, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "\"small\""));
    /* json_decode refuses a bad spec before looking at the input */
    Wrong w;
    memset(&w, 0, sizeof(w));
    json_t *body = test_json("{}");
    err_clear(&err);
    assert_false(json_decode(body, &s1, &w, &err));
    assert_int_equal(err.code, ERR_INTERNAL);

    static const JsonField duplicate[] = {
        JSON_FIELD(Wrong, big, "x", JSON_FIELD_U64, 0),
        JSON_FIELD(Wrong, small, "x", JSON_FIELD_U32, 0),
    };
    static const JsonSpec s2 = JSON_SPEC("duplicate", duplicate, JSON_UNKNOWN_REJECT);
    assert_false(json_spec_check(&s2, &err));
    assert_non_null(strstr(err.msg, "listed twice"));

    /* a flattened field clashing with an outer one */
    static const JsonField flat_clash[] = {
        JSON_FIELD(Wrong, big, "gc_horizon", JSON_FIELD_U64, 0),
        JSON_FLATTEN(Wrong, conf, &TENANT_CONF_SPEC),
    };
    static const JsonSpec s3 = JSON_SPEC("flat clash", flat_clash, JSON_UNKNOWN_REJECT);
    assert_false(json_spec_check(&s3, &err));
    assert_non_null(strstr(err.msg, "gc_horizon"));

    static const JsonField nonzero_string[] = {
        JSON_FIELD(Wrong, name, "name", JSON_FIELD_STRING, JSON_NONZERO),
    };
    static const JsonSpec s4 = JSON_SPEC("nonzero string", nonzero_string, JSON_UNKNOWN_REJECT);
    assert_false(json_spec_check(&s4, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    json_decref(body);
}

/* ---- typed getters ---- */

static void test_getters(void **state)
{
    json_t *o = test_json("{\"n\": 5, \"nul\": null, \"s\": \"hello\", \"t\": \"" TENANT_HEX "\", "
                          "\"lsn\": \"0/16960E8\", \"g\": null, \"g2\": 3, \"d\": \"1m\", "
                          "\"by\": \"1KiB\", \"neg\": -3, \"b\": true, \"str_n\": \"5\"}");
    Err err = {0};
    bool present = true;

    uint64_t u = 9;
    assert_true(json_get_u64(o, "n", &u, true, &present, &err));
    assert_true(u == 5 && present);
    assert_true(json_get_u64(o, "absent", &u, false, &present, &err));
    assert_true(u == 5 && !present);
    assert_true(json_get_u64(o, "nul", &u, false, &present, &err));
    assert_true(u == 5 && !present);
    assert_false(json_get_u64(o, "absent", &u, true, &present, &err));
    assert_string_equal(err.msg, "missing field \"absent\"");
    assert_false(json_get_u64(o, "nul", &u, true, NULL, &err));
    assert_string_equal(err.msg, "field \"nul\": must not be null");
    assert_false(json_get_u64(o, "neg", &u, true, NULL, &err));
    assert_string_equal(err.msg, "field \"neg\": expected a non-negative integer, got -3");
    assert_false(json_get_u64(o, "str_n", &u, true, NULL, &err));

    uint32_t u32 = 0;
    assert_true(json_get_u32(o, "n", &u32, true, NULL, &err));
    assert_int_equal(u32, 5);
    int64_t i = 0;
    assert_true(json_get_i64(o, "neg", &i, true, NULL, &err));
    assert_int_equal(i, -3);
    bool b = false;
    assert_true(json_get_bool(o, "b", &b, true, NULL, &err));
    assert_true(b);

    char small[5];
    assert_false(json_get_string(o, "s", small, sizeof(small), true, NULL, &err));
    assert_string_equal(err.msg, "field \"s\": string longer than 4 bytes");
    char big[16];
    assert_true(json_get_string(o, "s", big, sizeof(big), true, &present, &err));
    assert_string_equal(big, "hello");

    TenantId t;
    assert_true(json_get_tenant_id(o, "t", &t, true, NULL, &err));
    char hex[ID_STR_SIZE];
    tenant_id_format(&t, hex);
    assert_string_equal(hex, TENANT_HEX);
    TimelineId tl;
    assert_false(json_get_timeline_id(o, "s", &tl, true, NULL, &err));
    assert_non_null(strstr(err.msg, "field \"s\": invalid timeline id"));
    TenantShardId ts;
    assert_true(json_get_tsid(o, "t", &ts, true, NULL, &err));
    assert_int_equal(ts.count, 0);

    Lsn lsn = 0;
    assert_true(json_get_lsn(o, "lsn", &lsn, true, NULL, &err));
    assert_true(lsn == 0x16960E8);

    Generation g = 5;
    assert_true(json_get_generation(o, "g", &g, false, &present, &err));
    assert_true(g == GENERATION_NONE && !present);
    assert_true(json_get_generation(o, "g2", &g, false, &present, &err));
    assert_true(g == 3 && present);

    uint64_t ms = 0;
    assert_true(json_get_duration_ms(o, "d", &ms, true, NULL, &err));
    assert_true(ms == 60000);
    assert_false(json_get_duration_ms(o, "n", &ms, true, NULL, &err));
    uint64_t by = 0;
    assert_true(json_get_bytes(o, "by", &by, true, NULL, &err));
    assert_true(by == 1024);
    assert_true(json_get_bytes(o, "n", &by, true, NULL, &err));
    assert_true(by == 5);

    /* generic getter with presence and a mismatched out size (a programming error) */
    JsonPresence p = JSON_PRESENCE_SET;
    assert_true(json_get(o, "nul", JSON_FIELD_U64, JSON_NULLABLE, &u, sizeof(u), &p, &err));
    assert_int_equal(p, JSON_PRESENCE_NULL);
    err_clear(&err);
    assert_false(json_get(o, "n", JSON_FIELD_U64, 0, &u32, sizeof(u32), NULL, &err));
    assert_int_equal(err.code, ERR_INTERNAL);

    /* not an object */
    json_t *arr = test_json("[1]");
    assert_false(json_get_u64(arr, "n", &u, false, NULL, &err));
    assert_string_equal(err.msg, "expected a JSON object");
    json_decref(arr);
    json_decref(o);
}

/* ---- encoders ---- */

static void expect_dump(json_t *v, const char *want)
{
    char *s = json_dumps_compact(v);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
    json_decref(v);
}

static void test_encoders(void **state)
{
    Err err = {0};
    TenantShardId ts;
    assert_true(tsid_parse(TENANT_HEX "-070a", &ts, &err));
    expect_dump(json_from_tsid(&ts), "\"" TENANT_HEX "-070a\"");
    TenantShardId bare = tsid_unsharded(&ts.tenant_id);
    expect_dump(json_from_tsid(&bare), "\"" TENANT_HEX "\"");
    expect_dump(json_from_tenant_id(&ts.tenant_id), "\"" TENANT_HEX "\"");
    TimelineId tl;
    assert_true(timeline_id_parse(TIMELINE_HEX, &tl, &err));
    expect_dump(json_from_timeline_id(&tl), "\"" TIMELINE_HEX "\"");
    expect_dump(json_from_shard_index((ShardIndex){.number = 1, .count = 4}), "\"0104\"");
    expect_dump(json_from_lsn(LSN_INVALID), "null");
    expect_dump(json_from_lsn(0x16960E8), "\"0/16960E8\"");
    expect_dump(json_from_lsn(0xABCDEF0012345678ull), "\"ABCDEF00/12345678\"");
    expect_dump(json_from_generation(GENERATION_NONE), "null");
    expect_dump(json_from_generation(0), "0");
    expect_dump(json_from_generation(GENERATION_MAX), "4294967295");
    expect_dump(json_from_duration_ms(5400000), "\"1h 30m\"");

    json_t *o = json_object();
    json_object_set_new(o, "a", json_integer(1));
    json_object_set_new(o, "b", json_pack("[b,n]", 1));
    json_object_set_new(o, "c", json_string("x\"y"));
    expect_dump(o, "{\"a\":1,\"b\":[true,null],\"c\":\"x\\\"y\"}");
    assert_null(json_dumps_compact(NULL));

    /* encode -> decode round trip through a spec */
    json_t *body = json_object();
    json_object_set_new(body, "lsn", json_from_lsn(0x100000002ull));
    json_object_set_new(body, "tsid", json_from_tsid(&ts));
    json_object_set_new(body, "gen", json_from_generation(12));
    All a;
    memset(&a, 0, sizeof(a));
    assert_true(json_decode(body, &ALL_SPEC, &a, &err));
    assert_true(a.lsn == 0x100000002ull);
    assert_true(tsid_eq(&a.tsid, &ts));
    assert_true(a.gen == 12);
    json_decref(body);
}

/* ---- parsing text ---- */

static void test_parse_text(void **state)
{
    static const struct {
        const char *text;
        const char *msg; /* NULL = parses */
    } cases[] = {
        {"{\"a\": 1}", NULL},
        {"42", NULL},
        {"\"s\"", NULL},
        {"[1, 2]", NULL},
        {"{\"a\": 1, \"a\": 2}", "duplicate"},
        {"{\"x\": {\"a\": 1, \"a\": 1}}", "duplicate"},
        {"{\"a\": ", "invalid JSON at line 1"},
        {"", "invalid JSON"},
        {"{\"a\": 1} trailing", "invalid JSON"},
        {"{\"a\": \"\\u0000\"}", "invalid JSON"},
        {"{'a': 1}", "invalid JSON"},
        {"{\n  \"a\": 1,\n  \"a\": 2\n}", "line 3"},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        json_t *v = NULL;
        Err err = {0};
        bool ok = json_parse_text(cases[i].text, strlen(cases[i].text), &v, &err);
        if (cases[i].msg == NULL) {
            if (!ok)
                fail_msg("%s: %s", cases[i].text, err.msg);
            assert_non_null(v);
            json_decref(v);
        } else {
            if (ok)
                fail_msg("%s: parsed, expected %s", cases[i].text, cases[i].msg);
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            if (strstr(err.msg, cases[i].msg) == NULL)
                fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].text, err.msg, cases[i].msg);
        }
    }
    /* only len bytes are read: a body buffer need not be NUL-terminated */
    json_t *v = NULL;
    Err err = {0};
    assert_true(json_parse_text("{\"a\":1}garbage", 7, &v, &err));
    json_decref(v);
    assert_false(json_parse_text(NULL, 0, &v, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_accepts),
        cmocka_unit_test(test_every_type_rejects),
        cmocka_unit_test(test_failed_member_untouched),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_tenant_config_put),
        cmocka_unit_test(test_tenant_config_patch_presence),
        cmocka_unit_test(test_ignore_log_policy),
        cmocka_unit_test(test_create_request),
        cmocka_unit_test(test_spec_check),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_encoders),
        cmocka_unit_test(test_parse_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
