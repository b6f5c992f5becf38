/*
 * json.c: the table-driven strict decoder, typed getters and identifier encoders (see json.h).
 *
 * One conversion function (json_convert) turns a present, non-null JSON value into a member of a
 * given field type; json_decode (for whole objects) and json_get (for one key) both go through
 * field_apply, which adds the absent / null / presence rules around it. Keeping a single path
 * means a hand-walked body is exactly as strict as a table-decoded one.
 */
#include "shared/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/log.h"
#include "shared/str.h"
#include "shared/units.h"

#define JSON_KNOWN_FLAGS (JSON_REQUIRED | JSON_NULLABLE | JSON_NONZERO)

/* Longest part of a string value quoted back in an error message. */
#define GOT_STR_MAX 40

typedef struct JsonTypeInfo {
    const char *name;     /* for spec errors */
    size_t size;          /* required member size; 0 = checked separately */
    bool numeric;         /* JSON_NONZERO applies */
    const char *expected; /* "expected <this>, got ..." */
} JsonTypeInfo;

static const JsonTypeInfo TYPE_INFO[JSON_FIELD_TYPE_COUNT] = {
    [JSON_FIELD_STRING] = {"string", 0, false, "a string"},
    [JSON_FIELD_BOOL] = {"bool", sizeof(bool), false, "true or false"},
    [JSON_FIELD_U8] = {"u8", sizeof(uint8_t), true, "an integer in [0, 255]"},
    [JSON_FIELD_U32] = {"u32", sizeof(uint32_t), true, "an integer in [0, 4294967295]"},
    [JSON_FIELD_U64] = {"u64", sizeof(uint64_t), true, "a non-negative integer"},
    [JSON_FIELD_I64] = {"i64", sizeof(int64_t), true, "an integer"},
    [JSON_FIELD_DOUBLE] = {"double", sizeof(double), true, "a number"},
    [JSON_FIELD_TENANT_ID] = {"tenant id", sizeof(TenantId), false,
                              "a tenant id (32 hex characters)"},
    [JSON_FIELD_TIMELINE_ID] = {"timeline id", sizeof(TimelineId), false,
                                "a timeline id (32 hex characters)"},
    [JSON_FIELD_TSID] = {"tenant shard id", sizeof(TenantShardId), false,
                         "a tenant shard id string"},
    [JSON_FIELD_SHARD_INDEX] = {"shard index", sizeof(ShardIndex), false,
                                "a shard index string \"NNCC\""},
    [JSON_FIELD_LSN] = {"lsn", sizeof(Lsn), false, "an LSN string \"X/X\""},
    [JSON_FIELD_NODE_ID] = {"node id", sizeof(NodeId), true, "a node id (non-negative integer)"},
    [JSON_FIELD_GENERATION] = {"generation", sizeof(Generation), false,
                               "a generation (integer in [0, 4294967295])"},
    [JSON_FIELD_DURATION] = {"duration", sizeof(uint64_t), true,
                             "a duration string such as \"10m\""},
    [JSON_FIELD_BYTES] = {"bytes", sizeof(uint64_t), true,
                          "a byte size (non-negative integer or a string such as \"64MiB\")"},
    [JSON_FIELD_OBJECT] = {"object", sizeof(json_t *), false, "an object"},
    [JSON_FIELD_ARRAY] = {"array", sizeof(json_t *), false, "an array"},
    [JSON_FIELD_ANY] = {"any", sizeof(json_t *), false, "a value"},
    [JSON_FIELD_NESTED] = {"nested", 0, false, "an object"},
    [JSON_FIELD_FLATTEN] = {"flatten", 0, false, "an object"},
};

/* A converted value before it is copied into the member (so a failure never half-writes it). */
typedef union JsonValue {
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
    json_t *ptr;
} JsonValue;

static bool decode_object(const json_t *obj, const JsonSpec *spec, void *out, Err *err);

/* is_container: row types that carry another spec instead of a value of their own. */
static bool is_container(JsonFieldType type)
{
    return type == JSON_FIELD_NESTED || type == JSON_FIELD_FLATTEN;
}

/* json_describe: a short description of what a value was, for "expected X, got Y" messages. */
static void json_describe(const json_t *v, char *out, size_t cap)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        str_copy(out, cap, "an object");
        break;
    case JSON_ARRAY:
        str_copy(out, cap, "an array");
        break;
    case JSON_STRING: {
        const char *s = json_string_value(v);
        if (json_string_length(v) > GOT_STR_MAX)
            snprintf(out, cap, "the string \"%.*s...\"", GOT_STR_MAX, s);
        else
            snprintf(out, cap, "the string \"%s\"", s);
        break;
    }
    case JSON_INTEGER:
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL: {
        /* "1.0" must not read as "1" in "expected an integer, got 1.0" */
        char num[40];
        snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        bool plain = strspn(num, "-0123456789") == strlen(num);
        snprintf(out, cap, "%s%s", num, plain ? ".0" : "");
        break;
    }
    case JSON_TRUE:
        str_copy(out, cap, "true");
        break;
    case JSON_FALSE:
        str_copy(out, cap, "false");
        break;
    case JSON_NULL:
    default:
        str_copy(out, cap, "null");
        break;
    }
}

/* type_error: 400 `field "<name>": expected <what the type wants>, got <what v was>`. */
static bool type_error(const JsonField *f, const json_t *v, Err *err)
{
    char got[GOT_STR_MAX + 32];
    json_describe(v, got, sizeof(got));
    err_set(err, ERR_BAD_REQUEST, "field \"%s\": expected %s, got %s", f->name,
            TYPE_INFO[f->type].expected, got);
    return false;
}

/* get_integer: an integer JSON value in [min, max]; reals such as 1.0 are not integers. */
static bool get_integer(const JsonField *f, const json_t *v, json_int_t min, json_int_t max,
                        json_int_t *out, Err *err)
{
    if (!json_is_integer(v))
        return type_error(f, v, err);
    json_int_t n = json_integer_value(v);
    if (n < min || n > max)
        return type_error(f, v, err);
    *out = n;
    return true;
}

/* get_string: a string JSON value without NUL inside (a NUL would silently cut an id short). */
static bool get_string(const JsonField *f, const json_t *v, const char **out, Err *err)
{
    if (!json_is_string(v))
        return type_error(f, v, err);
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v)) {
        err_set(err, ERR_BAD_REQUEST, "field \"%s\": string contains a NUL character", f->name);
        return false;
    }
    *out = s;
    return true;
}

/* parsed: prefix a parser's own message (it already quotes the input) with the field name. */
static bool parsed(const JsonField *f, bool ok, Err *err)
{
    if (!ok)
        err_prefix(err, "field \"%s\": ", f->name);
    return ok;
}

/* json_convert: v (present, not null) as field type f->type into dst (f->size bytes). The one
 * conversion used by json_decode and every getter. */
static bool json_convert(const JsonField *f, const json_t *v, void *dst, Err *err)
{
    JsonValue val;
    memset(&val, 0, sizeof(val));
    json_int_t n = 0;
    const char *s = NULL;
    bool zero = false;

    switch (f->type) {
    case JSON_FIELD_STRING: {
        if (!get_string(f, v, &s, err))
            return false;
        size_t len = json_string_length(v);
        if (len >= f->size) {
            err_set(err, ERR_BAD_REQUEST, "field \"%s\": string longer than %zu bytes", f->name,
                    f->size - 1);
            return false;
        }
        memcpy(dst, s, len + 1);
        return true;
    }
    case JSON_FIELD_BOOL:
        if (!json_is_boolean(v))
            return type_error(f, v, err);
        val.b = json_is_true(v);
        break;
    case JSON_FIELD_U8:
        if (!get_integer(f, v, 0, UINT8_MAX, &n, err))
            return false;
        val.u8 = (uint8_t)n;
        zero = n == 0;
        break;
    case JSON_FIELD_U32:
        if (!get_integer(f, v, 0, UINT32_MAX, &n, err))
            return false;
        val.u32 = (uint32_t)n;
        zero = n == 0;
        break;
    case JSON_FIELD_U64:
    case JSON_FIELD_NODE_ID:
        if (!get_integer(f, v, 0, INT64_MAX, &n, err))
            return false;
        val.u64 = (uint64_t)n;
        zero = n == 0;
        break;
    case JSON_FIELD_I64:
        if (!get_integer(f, v, INT64_MIN, INT64_MAX, &n, err))
            return false;
        val.i64 = (int64_t)n;
        zero = n == 0;
        break;
    case JSON_FIELD_DOUBLE:
        if (!json_is_number(v))
            return type_error(f, v, err);
        val.d = json_number_value(v);
        zero = val.d == 0.0;
        break;
    case JSON_FIELD_GENERATION:
        if (!get_integer(f, v, 0, UINT32_MAX, &n, err))
            return false;
        val.gen = (Generation)n;
        break;
    case JSON_FIELD_TENANT_ID:
        if (!get_string(f, v, &s, err) || !parsed(f, tenant_id_parse(s, &val.tenant, err), err))
            return false;
        break;
    case JSON_FIELD_TIMELINE_ID:
        if (!get_string(f, v, &s, err) || !parsed(f, timeline_id_parse(s, &val.timeline, err), err))
            return false;
        break;
    case JSON_FIELD_TSID:
        if (!get_string(f, v, &s, err) || !parsed(f, tsid_parse(s, &val.tsid, err), err))
            return false;
        break;
    case JSON_FIELD_SHARD_INDEX:
        if (!get_string(f, v, &s, err) || !parsed(f, shard_index_parse(s, &val.shard, err), err))
            return false;
        break;
    case JSON_FIELD_LSN:
        if (!get_string(f, v, &s, err) || !parsed(f, lsn_parse(s, &val.lsn, err), err))
            return false;
        break;
    case JSON_FIELD_DURATION:
        if (!get_string(f, v, &s, err) || !parsed(f, duration_parse_ms(s, &val.u64, err), err))
            return false;
        zero = val.u64 == 0;
        break;
    case JSON_FIELD_BYTES:
        if (json_is_integer(v)) {
            if (!get_integer(f, v, 0, INT64_MAX, &n, err))
                return false;
            val.u64 = (uint64_t)n;
        } else if (json_is_string(v)) {
            if (!get_string(f, v, &s, err) || !parsed(f, bytes_parse(s, &val.u64, err), err))
                return false;
        } else {
            return type_error(f, v, err);
        }
        zero = val.u64 == 0;
        break;
    case JSON_FIELD_OBJECT:
    case JSON_FIELD_ARRAY:
    case JSON_FIELD_ANY:
        if ((f->type == JSON_FIELD_OBJECT && !json_is_object(v)) ||
            (f->type == JSON_FIELD_ARRAY && !json_is_array(v)))
            return type_error(f, v, err);
        val.ptr = (json_t *)v; /* borrowed; the member type is `json_t *` */
        break;
    case JSON_FIELD_NESTED:
        if (!json_is_object(v))
            return type_error(f, v, err);
        if (!decode_object(v, f->nested, dst, err)) {
            err_prefix(err, "%s: ", f->name);
            return false;
        }
        return true;
    case JSON_FIELD_FLATTEN: /* has no value of its own; decode_fields handles it */
    case JSON_FIELD_TYPE_COUNT:
    default:
        err_set(err, ERR_INTERNAL, "field \"%s\": bad field type %d", f->name, (int)f->type);
        return false;
    }
    if ((f->flags & JSON_NONZERO) && zero) {
        err_set(err, ERR_BAD_REQUEST, "field \"%s\": must be non-zero", f->name);
        return false;
    }
    memcpy(dst, &val, f->size);
    return true;
}

/* null_value: what a nullable field's member becomes on null. Most types keep the caller's value
 * (presence says it was null); generations and borrowed pointers have a natural "none". */
static void null_value(const JsonField *f, void *dst)
{
    if (f->type == JSON_FIELD_GENERATION) {
        Generation none = GENERATION_NONE;
        memcpy(dst, &none, sizeof(none));
    } else if (f->type == JSON_FIELD_OBJECT || f->type == JSON_FIELD_ARRAY ||
               f->type == JSON_FIELD_ANY) {
        json_t *nothing = NULL;
        memcpy(dst, &nothing, sizeof(nothing));
    }
}

/* field_apply: the absent / null / value rules for one field whose JSON value is v (NULL when the
 * key is absent). */
static bool field_apply(const JsonField *f, const json_t *v, void *dst, JsonPresence *presence,
                        Err *err)
{
    if (v == NULL) {
        if (f->flags & JSON_REQUIRED) {
            err_set(err, ERR_BAD_REQUEST, "missing field \"%s\"", f->name);
            return false;
        }
        if (presence != NULL)
            *presence = JSON_PRESENCE_ABSENT;
        return true;
    }
    if (json_is_null(v)) {
        if (!(f->flags & JSON_NULLABLE)) {
            err_set(err, ERR_BAD_REQUEST, "field \"%s\": must not be null", f->name);
            return false;
        }
        null_value(f, dst);
        if (presence != NULL)
            *presence = JSON_PRESENCE_NULL;
        return true;
    }
    if (!json_convert(f, v, dst, err))
        return false;
    if (presence != NULL)
        *presence = JSON_PRESENCE_SET;
    return true;
}

/* field_check: one row of a spec (or a getter's synthetic row) is well formed. */
static bool field_check(const JsonSpec *spec, const JsonField *f, Err *err)
{
    const char *what = spec ? spec->what : "getter";
    if (f->name == NULL || f->name[0] == '\0') {
        err_set(err, ERR_INTERNAL, "json spec \"%s\": field without a name", what);
        return false;
    }
    if ((unsigned)f->type >= JSON_FIELD_TYPE_COUNT) {
        err_set(err, ERR_INTERNAL, "json spec \"%s\": field \"%s\": bad type %d", what, f->name,
                (int)f->type);
        return false;
    }
    if (f->flags & ~JSON_KNOWN_FLAGS) {
        err_set(err, ERR_INTERNAL, "json spec \"%s\": field \"%s\": unknown flags 0x%x", what,
                f->name, f->flags);
        return false;
    }
    if ((f->flags & JSON_NONZERO) && !TYPE_INFO[f->type].numeric) {
        err_set(err, ERR_INTERNAL, "json spec \"%s\": field \"%s\": JSON_NONZERO on a %s", what,
                f->name, TYPE_INFO[f->type].name);
        return false;
    }
    size_t want = TYPE_INFO[f->type].size;
    if ((want != 0 && f->size != want) || (f->type == JSON_FIELD_STRING && f->size == 0)) {
        err_set(err, ERR_INTERNAL,
                "json spec \"%s\": field \"%s\": member size %zu does not fit type %s", what,
                f->name, f->size, TYPE_INFO[f->type].name);
        return false;
    }
    if (is_container(f->type) && f->nested == NULL) {
        err_set(err, ERR_INTERNAL, "json spec \"%s\": field \"%s\": %s without a spec", what,
                f->name, TYPE_INFO[f->type].name);
        return false;
    }
    if (f->type == JSON_FIELD_FLATTEN &&
        (f->flags != 0 || f->presence_offset != JSON_NO_PRESENCE)) {
        err_set(err, ERR_INTERNAL, "json spec \"%s\": field \"%s\": flatten takes no flags", what,
                f->name);
        return false;
    }
    return true;
}

#define SPEC_MAX_DEPTH 16

/* level_find: the field that takes key `name` at the level of spec, looking through FLATTEN
 * rows (the first match, so the spec check can spot a name listed twice). */
static const JsonField *level_find(const JsonSpec *spec, const char *name, int depth)
{
    for (size_t i = 0; i < spec->n_fields && depth <= SPEC_MAX_DEPTH; i++) {
        const JsonField *f = &spec->fields[i];
        if (f->type == JSON_FIELD_FLATTEN && f->nested != NULL) {
            const JsonField *g = level_find(f->nested, name, depth + 1);
            if (g != NULL)
                return g;
        } else if (strcmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

/* spec_check_level: check the rows of spec, which are keys at the level of `top` (spec itself, or
 * a spec flattened into top). A NESTED row starts a new level. The depth bound turns a spec that
 * contains itself by mistake into an error instead of endless recursion. */
static bool spec_check_level(const JsonSpec *top, const JsonSpec *spec, int depth, Err *err)
{
    if (spec == NULL || (spec->fields == NULL && spec->n_fields > 0)) {
        err_set(err, ERR_INTERNAL, "json spec missing");
        return false;
    }
    if (depth > SPEC_MAX_DEPTH) {
        err_set(err, ERR_INTERNAL, "json spec \"%s\": nested too deep", spec->what);
        return false;
    }
    for (size_t i = 0; i < spec->n_fields; i++) {
        const JsonField *f = &spec->fields[i];
        if (!field_check(spec, f, err))
            return false;
        if (f->type == JSON_FIELD_FLATTEN) {
            if (!spec_check_level(top, f->nested, depth + 1, err))
                return false;
            continue;
        }
        if (level_find(top, f->name, 0) != f) {
            err_set(err, ERR_INTERNAL, "json spec \"%s\": field \"%s\" listed twice", top->what,
                    f->name);
            return false;
        }
        if (f->type == JSON_FIELD_NESTED && !spec_check_level(f->nested, f->nested, depth + 1, err))
            return false;
    }
    return true;
}

bool json_spec_check(const JsonSpec *spec, Err *err)
{
    return spec_check_level(spec, spec, 0, err);
}

/* decode_fields: apply every row of spec to obj, writing into out; FLATTEN rows recurse into their
 * sub-struct with the same object. */
static bool decode_fields(const json_t *obj, const JsonSpec *spec, char *out, Err *err)
{
    for (size_t i = 0; i < spec->n_fields; i++) {
        const JsonField *f = &spec->fields[i];
        if (f->type == JSON_FIELD_FLATTEN) {
            if (!decode_fields(obj, f->nested, out + f->offset, err))
                return false;
            continue;
        }
        JsonPresence *presence = NULL;
        if (f->presence_offset != JSON_NO_PRESENCE)
            presence = (JsonPresence *)(out + f->presence_offset);
        if (!field_apply(f, json_object_get(obj, f->name), out + f->offset, presence, err))
            return false;
    }
    return true;
}

/* decode_object: json_decode without the spec check (done once for the whole tree). Unknown keys
 * are looked at first: a misspelt optional field is the error worth reporting. */
static bool decode_object(const json_t *obj, const JsonSpec *spec, void *out, Err *err)
{
    if (!json_is_object(obj)) {
        err_set(err, ERR_BAD_REQUEST, "expected a JSON object");
        return false;
    }
    const char *key = NULL;
    json_t *value = NULL;
    json_object_foreach((json_t *)obj, key, value)
    {
        if (level_find(spec, key, 0) != NULL)
            continue;
        if (spec->unknown == JSON_UNKNOWN_REJECT) {
            err_set(err, ERR_BAD_REQUEST, "unknown field \"%s\"", key);
            return false;
        }
        log_warn("%s: ignoring unknown field \"%s\"", spec->what, key);
    }
    return decode_fields(obj, spec, out, err);
}

bool json_decode(const json_t *obj, const JsonSpec *spec, void *out, Err *err)
{
    if (!json_spec_check(spec, err))
        return false;
    return decode_object(obj, spec, out, err);
}

bool json_get(const json_t *obj, const char *key, JsonFieldType type, unsigned flags, void *out,
              size_t out_size, JsonPresence *presence, Err *err)
{
    JsonField f = {key, type, flags, 0, out_size, JSON_NO_PRESENCE, NULL};
    if (is_container(type)) {
        err_set(err, ERR_INTERNAL, "json_get: nested fields need json_decode");
        return false;
    }
    if (!field_check(NULL, &f, err))
        return false;
    if (!json_is_object(obj)) {
        err_set(err, ERR_BAD_REQUEST, "expected a JSON object");
        return false;
    }
    return field_apply(&f, json_object_get(obj, key), out, presence, err);
}

/* get_typed: the typed getters' common shape; required means present and not null. */
static bool get_typed(const json_t *obj, const char *key, JsonFieldType type, void *out,
                      size_t size, bool required, bool *present, Err *err)
{
    JsonPresence p = JSON_PRESENCE_ABSENT;
    if (!json_get(obj, key, type, required ? JSON_REQUIRED : JSON_NULLABLE, out, size, &p, err))
        return false;
    if (present != NULL)
        *present = p == JSON_PRESENCE_SET;
    return true;
}

bool json_get_string(const json_t *obj, const char *key, char *out, size_t cap, bool required,
                     bool *present, Err *err)
{
    return get_typed(obj, key, JSON_FIELD_STRING, out, cap, required, present, err);
}

bool json_get_bool(const json_t *obj, const char *key, bool *out, bool required, bool *present,
                   Err *err)
{
    return get_typed(obj, key, JSON_FIELD_BOOL, out, sizeof(*out), required, present, err);
}

bool json_get_u32(const json_t *obj, const char *key, uint32_t *out, bool required, bool *present,
                  Err *err)
{
    return get_typed(obj, key, JSON_FIELD_U32, out, sizeof(*out), required, present, err);
}

bool json_get_u64(const json_t *obj, const char *key, uint64_t *out, bool required, bool *present,
                  Err *err)
{
    return get_typed(obj, key, JSON_FIELD_U64, out, sizeof(*out), required, present, err);
}

bool json_get_i64(const json_t *obj, const char *key, int64_t *out, bool required, bool *present,
                  Err *err)
{
    return get_typed(obj, key, JSON_FIELD_I64, out, sizeof(*out), required, present, err);
}

bool json_get_tenant_id(const json_t *obj, const char *key, TenantId *out, bool required,
                        bool *present, Err *err)
{
    return get_typed(obj, key, JSON_FIELD_TENANT_ID, out, sizeof(*out), required, present, err);
}

bool json_get_timeline_id(const json_t *obj, const char *key, TimelineId *out, bool required,
                          bool *present, Err *err)
{
    return get_typed(obj, key, JSON_FIELD_TIMELINE_ID, out, sizeof(*out), required, present, err);
}

bool json_get_tsid(const json_t *obj, const char *key, TenantShardId *out, bool required,
                   bool *present, Err *err)
{
    return get_typed(obj, key, JSON_FIELD_TSID, out, sizeof(*out), required, present, err);
}

bool json_get_lsn(const json_t *obj, const char *key, Lsn *out, bool required, bool *present,
                  Err *err)
{
    return get_typed(obj, key, JSON_FIELD_LSN, out, sizeof(*out), required, present, err);
}

bool json_get_generation(const json_t *obj, const char *key, Generation *out, bool required,
                         bool *present, Err *err)
{
    return get_typed(obj, key, JSON_FIELD_GENERATION, out, sizeof(*out), required, present, err);
}

bool json_get_duration_ms(const json_t *obj, const char *key, uint64_t *out_ms, bool required,
                          bool *present, Err *err)
{
    return get_typed(obj, key, JSON_FIELD_DURATION, out_ms, sizeof(*out_ms), required, present,
                     err);
}

bool json_get_bytes(const json_t *obj, const char *key, uint64_t *out, bool required, bool *present,
                    Err *err)
{
    return get_typed(obj, key, JSON_FIELD_BYTES, out, sizeof(*out), required, present, err);
}

json_t *json_must(json_t *v)
{
    if (v == NULL) {
        fputs("fatal: out of memory (jansson)\n", stderr);
        abort();
    }
    return v;
}

json_t *json_from_tenant_id(const TenantId *id)
{
    char s[ID_STR_SIZE];
    tenant_id_format(id, s);
    return json_must(json_string(s));
}

json_t *json_from_timeline_id(const TimelineId *id)
{
    char s[ID_STR_SIZE];
    timeline_id_format(id, s);
    return json_must(json_string(s));
}

json_t *json_from_tsid(const TenantShardId *id)
{
    char s[TSID_STR_SIZE];
    tsid_format(id, s);
    return json_must(json_string(s));
}

json_t *json_from_shard_index(ShardIndex idx)
{
    char s[SHARD_INDEX_STR_SIZE];
    shard_index_format(idx, s);
    return json_must(json_string(s));
}

json_t *json_from_lsn(Lsn lsn)
{
    if (lsn == LSN_INVALID)
        return json_must(json_null());
    char s[LSN_STR_SIZE];
    lsn_format(lsn, s);
    return json_must(json_string(s));
}

json_t *json_from_generation(Generation gen)
{
    if (gen < 0 || gen > GENERATION_MAX)
        return json_must(json_null());
    return json_must(json_integer((json_int_t)gen));
}

json_t *json_from_duration_ms(uint64_t ms)
{
    char s[64];
    duration_format_ms(ms, s, sizeof(s));
    return json_must(json_string(s));
}

char *json_dumps_compact(const json_t *v)
{
    if (v == NULL)
        return NULL;
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL) {
        fputs("fatal: out of memory (json_dumps)\n", stderr);
        abort();
    }
    return s;
}

bool json_parse_text(const char *text, size_t len, json_t **out, Err *err)
{
    json_error_t jerr;
    json_t *v = json_loadb(text ? text : "", text ? len : 0,
                           JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        err_set(err, ERR_BAD_REQUEST, "invalid JSON at line %d, column %d: %s", jerr.line,
                jerr.column, jerr.text);
        return false;
    }
    *out = v;
    return true;
}

void json_set_new(json_t *obj, const char *key, json_t *v)
{
    if (json_object_set_new(obj, key, v) != 0) {
        fputs("fatal: out of memory (jansson)\n", stderr);
        abort();
    }
}
