/*
 * fuzz_json: the strict JSON decoder (shared/json.c): json_parse_text (duplicate keys rejected),
 * json_decode over a field table that has every field type, flag, a nested object and a flattened
 * one, and the json_get_* getters. A decoded request re-encodes with the json_from_* encoders to
 * values that decode to the same thing.
 */
#include "tests/fuzz/fuzz_util.h"

#include "shared/json.h"

typedef struct Inner {
    uint8_t count;
    uint32_t stripe;
    char label[8];
} Inner;

typedef struct Flat {
    bool flag;
    JsonPresence flag_p;
    uint64_t bytes;
} Flat;

typedef struct Req {
    char name[16];
    bool enabled;
    uint8_t u8;
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    double dbl;
    TenantId tenant;
    TimelineId timeline;
    JsonPresence timeline_p;
    TenantShardId tsid;
    ShardIndex shard;
    Lsn lsn;
    JsonPresence lsn_p;
    NodeId node;
    Generation gen;
    JsonPresence gen_p;
    uint64_t duration_ms;
    uint64_t bytes;
    json_t *object;
    json_t *array;
    json_t *any;
    JsonPresence any_p;
    Inner inner;
    JsonPresence inner_p;
    Flat flat;
} Req;

static const JsonField INNER_FIELDS[] = {
    JSON_FIELD(Inner, count, "count", JSON_FIELD_U8, JSON_REQUIRED),
    JSON_FIELD(Inner, stripe, "stripe", JSON_FIELD_U32, JSON_NONZERO),
    JSON_FIELD(Inner, label, "label", JSON_FIELD_STRING, JSON_NULLABLE),
};
static const JsonSpec INNER_SPEC = JSON_SPEC("inner", INNER_FIELDS, JSON_UNKNOWN_REJECT);

static const JsonField FLAT_FIELDS[] = {
    JSON_FIELD_P(Flat, flag, flag_p, "flag", JSON_FIELD_BOOL, JSON_NULLABLE),
    JSON_FIELD(Flat, bytes, "flat_bytes", JSON_FIELD_BYTES, 0),
};
static const JsonSpec FLAT_SPEC = JSON_SPEC("flat", FLAT_FIELDS, JSON_UNKNOWN_REJECT);

static const JsonField REQ_FIELDS[] = {
    JSON_FIELD(Req, name, "name", JSON_FIELD_STRING, 0),
    JSON_FIELD(Req, enabled, "enabled", JSON_FIELD_BOOL, 0),
    JSON_FIELD(Req, u8, "u8", JSON_FIELD_U8, JSON_NONZERO),
    JSON_FIELD(Req, u32, "u32", JSON_FIELD_U32, 0),
    JSON_FIELD(Req, u64, "u64", JSON_FIELD_U64, JSON_NULLABLE),
    JSON_FIELD(Req, i64, "i64", JSON_FIELD_I64, 0),
    JSON_FIELD(Req, dbl, "dbl", JSON_FIELD_DOUBLE, 0),
    JSON_FIELD(Req, tenant, "tenant_id", JSON_FIELD_TENANT_ID, 0),
    JSON_FIELD_P(Req, timeline, timeline_p, "timeline_id", JSON_FIELD_TIMELINE_ID, JSON_NULLABLE),
    JSON_FIELD(Req, tsid, "tenant_shard_id", JSON_FIELD_TSID, 0),
    JSON_FIELD(Req, shard, "shard", JSON_FIELD_SHARD_INDEX, 0),
    JSON_FIELD_P(Req, lsn, lsn_p, "lsn", JSON_FIELD_LSN, JSON_NULLABLE),
    JSON_FIELD(Req, node, "node_id", JSON_FIELD_NODE_ID, 0),
    JSON_FIELD_P(Req, gen, gen_p, "generation", JSON_FIELD_GENERATION,
                 JSON_REQUIRED | JSON_NULLABLE),
    JSON_FIELD(Req, duration_ms, "duration", JSON_FIELD_DURATION, 0),
    JSON_FIELD(Req, bytes, "bytes", JSON_FIELD_BYTES, JSON_NONZERO),
    JSON_FIELD(Req, object, "object", JSON_FIELD_OBJECT, JSON_NULLABLE),
    JSON_FIELD(Req, array, "array", JSON_FIELD_ARRAY, 0),
    JSON_FIELD_P(Req, any, any_p, "any", JSON_FIELD_ANY, JSON_NULLABLE),
    JSON_NESTED_P(Req, inner, inner_p, "inner", &INNER_SPEC, JSON_NULLABLE),
    JSON_FLATTEN(Req, flat, &FLAT_SPEC),
};
static const JsonSpec REQ_SPEC = JSON_SPEC("fuzz request", REQ_FIELDS, JSON_UNKNOWN_REJECT);
static const JsonSpec REQ_LENIENT_SPEC =
    JSON_SPEC("fuzz request", REQ_FIELDS, JSON_UNKNOWN_IGNORE_LOG);

/* The typed values of a decoded request encode to JSON that decodes to the same values. */
static void check_reencode(const Req *r)
{
    json_t *o = json_must(json_object());
    json_set_new(o, "tenant_id", json_from_tenant_id(&r->tenant));
    json_set_new(o, "tenant_shard_id", json_from_tsid(&r->tsid));
    json_set_new(o, "shard", json_from_shard_index(r->shard));
    json_set_new(o, "lsn", json_from_lsn(r->lsn));
    json_set_new(o, "generation", json_from_generation(r->gen));
    json_set_new(o, "duration", json_from_duration_ms(r->duration_ms));
    Req back = {0};
    Err err = {0};
    FUZZ_CHECK(json_decode(o, &REQ_SPEC, &back, &err));
    FUZZ_CHECK(tenant_id_eq(&back.tenant, &r->tenant));
    FUZZ_CHECK(tsid_eq(&back.tsid, &r->tsid));
    FUZZ_CHECK(back.shard.number == r->shard.number && back.shard.count == r->shard.count);
    FUZZ_CHECK(back.lsn == r->lsn);
    FUZZ_CHECK(back.gen == r->gen);
    FUZZ_CHECK(back.duration_ms == r->duration_ms);
    char *text = json_dumps_compact(o);
    json_t *parsed = NULL;
    FUZZ_CHECK(json_parse_text(text, strlen(text), &parsed, &err));
    json_decref(parsed);
    free(text);
    json_decref(o);
}

/* Every getter on every key of obj (their results are only checked by the sanitizers). */
static void run_getters(const json_t *obj)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        (void)v;
        Err err = {0};
        bool present = false;
        char s[24];
        bool b;
        uint32_t u32;
        uint64_t u64;
        int64_t i64;
        TenantId t;
        TimelineId tl;
        TenantShardId ts;
        Lsn lsn;
        Generation g;
        (void)!json_get_string(obj, key, s, sizeof s, false, &present, &err);
        (void)!json_get_bool(obj, key, &b, false, &present, &err);
        (void)!json_get_u32(obj, key, &u32, false, &present, &err);
        (void)!json_get_u64(obj, key, &u64, false, &present, &err);
        (void)!json_get_i64(obj, key, &i64, false, &present, &err);
        (void)!json_get_tenant_id(obj, key, &t, false, &present, &err);
        (void)!json_get_timeline_id(obj, key, &tl, false, &present, &err);
        (void)!json_get_tsid(obj, key, &ts, false, &present, &err);
        (void)!json_get_lsn(obj, key, &lsn, false, &present, &err);
        (void)!json_get_generation(obj, key, &g, true, &present, &err);
        (void)!json_get_duration_ms(obj, key, &u64, false, &present, &err);
        (void)!json_get_bytes(obj, key, &u64, true, &present, &err);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = NULL;
    Err err = {0};
    if (!json_parse_text((const char *)data, size, &doc, &err)) {
        FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
        return 0;
    }
    Req req = {.gen = GENERATION_NONE};
    if (json_decode(doc, &REQ_SPEC, &req, &err))
        check_reencode(&req);
    else
        FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
    Req lenient = {0};
    (void)!json_decode(doc, &REQ_LENIENT_SPEC, &lenient, &err);
    if (json_is_object(doc))
        run_getters(doc);
    json_decref(doc);
    return 0;
}
