/*
 * json.h: strict JSON decoding on jansson, typed getters, and encoders for our identifiers.
 *
 * A request body is described by a static table of fields and decoded in one call:
 *
 *   typedef struct ShardParams { uint8_t count; uint32_t stripe_size; } ShardParams;
 *   typedef struct CreateReq {
 *       TenantId tenant_id;
 *       uint64_t pitr_ms;
 *       JsonPresence pitr_presence;
 *       ShardParams shard;
 *   } CreateReq;
 *
 *   static const JsonField SHARD_FIELDS[] = {
 *       JSON_FIELD(ShardParams, count, "count", JSON_FIELD_U8, JSON_REQUIRED),
 *       JSON_FIELD(ShardParams, stripe_size, "stripe_size", JSON_FIELD_U32, 0),
 *   };
 *   static const JsonSpec SHARD_SPEC = JSON_SPEC("shard parameters", SHARD_FIELDS,
 *                                                JSON_UNKNOWN_REJECT);
 *   static const JsonField CREATE_FIELDS[] = {
 *       JSON_FIELD(CreateReq, tenant_id, "new_tenant_id", JSON_FIELD_TENANT_ID, JSON_REQUIRED),
 *       JSON_FIELD_P(CreateReq, pitr_ms, pitr_presence, "pitr_interval", JSON_FIELD_DURATION,
 *                    JSON_NULLABLE),
 *       JSON_NESTED(CreateReq, shard, "shard_parameters", &SHARD_SPEC, 0),
 *   };
 *   static const JsonSpec CREATE_SPEC = JSON_SPEC("tenant create", CREATE_FIELDS,
 *                                                 JSON_UNKNOWN_REJECT);
 *
 *   CreateReq req = {.shard = {.count = 0, .stripe_size = 2048}};  // defaults: absent = kept
 *   if (!json_decode(body, &CREATE_SPEC, &req, err)) ...
 *
 * Rules of json_decode:
 * - Absent field: the member is left as the caller initialised it (its default); presence
 *   JSON_PRESENCE_ABSENT. Absent and JSON_REQUIRED -> 400 `missing field "<name>"`.
 * - null: 400 `field "<name>": must not be null` unless JSON_NULLABLE. On a nullable field the
 *   member is left unchanged, except GENERATION (set to GENERATION_NONE) and OBJECT/ARRAY/ANY (set
 *   to NULL); presence JSON_PRESENCE_NULL.
 * - JSON_REQUIRED | JSON_NULLABLE: the key must be there, its value may be null.
 * - A value: converted strictly by type (below), written to the member; presence JSON_PRESENCE_SET.
 * - Unknown keys: JSON_UNKNOWN_REJECT -> 400 `unknown field "<name>"`; JSON_UNKNOWN_IGNORE_LOG ->
 *   skipped, each name logged once (log_warn) per call.
 * - Errors inside a nested object are prefixed with the field name: `shard_parameters: unknown
 *   field "x"`, `shard_parameters: field "count": ...`.
 * - On failure *out may be partially written (a scalar member is written whole or not at all).
 *
 * Conversions (also used by the json_get_* getters; one implementation):
 *   STRING       JSON string, no NUL inside, strlen < size of the member, which must be a char
 *                array (a `char *` member would be taken for an 8-byte array)
 *   BOOL         true / false                                    -> bool
 *   U8, U32      JSON integer in range (1.5, 1.0, "1" rejected)  -> uint8_t, uint32_t
 *   U64, I64     JSON integer (U64: >= 0)                        -> uint64_t, int64_t
 *   DOUBLE       any JSON number                                 -> double
 *   TENANT_ID, TIMELINE_ID, TSID, SHARD_INDEX, LSN   strings parsed with shared/id.h
 *   NODE_ID      integer >= 0 -> NodeId;  GENERATION  integer in [0, 2^32-1] -> Generation
 *   DURATION     string via duration_parse_ms -> uint64_t milliseconds
 *   BYTES        integer >= 0, or string via bytes_parse -> uint64_t
 *   OBJECT, ARRAY, ANY   borrowed `json_t *` (valid while the parsed document lives; no incref)
 *   NESTED       an object decoded with field->nested into the sub-struct member
 *   FLATTEN      no key of its own: the keys of field->nested are accepted at this level and
 *                decoded into the sub-struct member (serde's #[serde(flatten)]; e.g. tenant create
 *                = its own fields + TenantConfig). The outer spec's unknown policy applies.
 * Flag JSON_NONZERO additionally rejects 0 for the numeric types.
 * Note: jansson integers are signed 64-bit, so U64 / NODE_ID / BYTES numbers top out at
 * INT64_MAX (larger numbers are rejected by the parser); BYTES strings reach UINT64_MAX.
 */
#ifndef SHARED_JSON_H
#define SHARED_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"

typedef enum JsonFieldType {
    JSON_FIELD_STRING,
    JSON_FIELD_BOOL,
    JSON_FIELD_U8,
    JSON_FIELD_U32,
    JSON_FIELD_U64,
    JSON_FIELD_I64,
    JSON_FIELD_DOUBLE,
    JSON_FIELD_TENANT_ID,
    JSON_FIELD_TIMELINE_ID,
    JSON_FIELD_TSID,
    JSON_FIELD_SHARD_INDEX,
    JSON_FIELD_LSN,
    JSON_FIELD_NODE_ID,
    JSON_FIELD_GENERATION,
    JSON_FIELD_DURATION,
    JSON_FIELD_BYTES,
    JSON_FIELD_OBJECT,
    JSON_FIELD_ARRAY,
    JSON_FIELD_ANY,
    JSON_FIELD_NESTED,
    JSON_FIELD_FLATTEN, /* another spec's fields at this level, into a sub-struct (JSON_FLATTEN) */
    JSON_FIELD_TYPE_COUNT
} JsonFieldType;

/* Field flags (bitwise or). */
#define JSON_REQUIRED 0x1u /* the key must be present */
#define JSON_NULLABLE 0x2u /* null is accepted (see the rules above) */
#define JSON_NONZERO  0x4u /* numeric types: 0 is rejected */

/* What a field looked like in the input; for PATCH: absent = keep, null = remove, value = set. */
typedef enum JsonPresence {
    JSON_PRESENCE_ABSENT = 0,
    JSON_PRESENCE_NULL, /* JSON_NULL itself is taken by jansson */
    JSON_PRESENCE_SET
} JsonPresence;

/* presence_offset of a field that has no JsonPresence member. */
#define JSON_NO_PRESENCE ((size_t)-1)

typedef enum JsonUnknownPolicy { JSON_UNKNOWN_REJECT, JSON_UNKNOWN_IGNORE_LOG } JsonUnknownPolicy;

typedef struct JsonSpec JsonSpec;

typedef struct JsonField {
    const char *name;
    JsonFieldType type;
    unsigned flags;
    size_t offset;          /* of the value member */
    size_t size;            /* sizeof the value member: capacity of STRING, checked for others */
    size_t presence_offset; /* of a JsonPresence member, or JSON_NO_PRESENCE */
    const JsonSpec *nested; /* NESTED only */
} JsonField;

struct JsonSpec {
    const char *what; /* for logs and spec errors, e.g. "tenant config" */
    const JsonField *fields;
    size_t n_fields;
    JsonUnknownPolicy unknown;
};

#define JSON_MEMBER_SIZE_(T, m) sizeof(((T *)0)->m)

/* JSON_FIELD: the key `name` of JSON type `type` into member `m` of struct T. */
#define JSON_FIELD(T, m, name, type, flags)                                                        \
    {                                                                                              \
        (name), (type), (flags), offsetof(T, m), JSON_MEMBER_SIZE_(T, m), JSON_NO_PRESENCE, NULL   \
    }

/* JSON_FIELD_P: the same, also records ABSENT / NULL / SET in JsonPresence member `pm`. */
#define JSON_FIELD_P(T, m, pm, name, type, flags)                                                  \
    {                                                                                              \
        (name), (type), (flags), offsetof(T, m), JSON_MEMBER_SIZE_(T, m), offsetof(T, pm), NULL    \
    }

/* JSON_NESTED / JSON_NESTED_P: an object decoded with *spec into the struct member `m`. */
#define JSON_NESTED(T, m, name, spec, flags)                                                       \
    {                                                                                              \
        (name), JSON_FIELD_NESTED, (flags), offsetof(T, m), JSON_MEMBER_SIZE_(T, m),               \
            JSON_NO_PRESENCE, (spec)                                                               \
    }
#define JSON_NESTED_P(T, m, pm, name, spec, flags)                                                 \
    {                                                                                              \
        (name), JSON_FIELD_NESTED, (flags), offsetof(T, m), JSON_MEMBER_SIZE_(T, m),               \
            offsetof(T, pm), (spec)                                                                \
    }

/* JSON_FLATTEN: the fields of *spec, at this object's level, into the struct member `m`. */
#define JSON_FLATTEN(T, m, spec)                                                                   \
    {                                                                                              \
#m, JSON_FIELD_FLATTEN, 0, offsetof(T, m), JSON_MEMBER_SIZE_(T, m), JSON_NO_PRESENCE,      \
            (spec)                                                                                 \
    }

/* JSON_SPEC: a JsonSpec initialiser over a static array of JsonField. */
#define JSON_SPEC(what, fields, unknown)                                                           \
    {                                                                                              \
        (what), (fields), sizeof(fields) / sizeof((fields)[0]), (unknown)                          \
    }

/* json_decode: decode obj into *out per spec (rules above). 400 for bad input; ERR_INTERNAL when
 * the spec itself is malformed (see json_spec_check). */
bool json_decode(const json_t *obj, const JsonSpec *spec, void *out, Err *err) MUST_CHECK;

/* json_spec_check: verify a spec (recursively): member sizes match the field types, NESTED and
 * FLATTEN have a spec, names are unique at each level (flattened fields included). ERR_INTERNAL
 * naming the bad row. json_decode runs it on every call. */
bool json_spec_check(const JsonSpec *spec, Err *err) MUST_CHECK;

/* json_get: one key of obj converted like a JsonField of `type` with `flags` into out (out_size =
 * sizeof *out; the capacity for STRING). presence may be NULL. Errors as in json_decode. */
bool json_get(const json_t *obj, const char *key, JsonFieldType type, unsigned flags, void *out,
              size_t out_size, JsonPresence *presence, Err *err) MUST_CHECK;

/* Typed getters for code that walks JSON by hand. required: absent -> 400 `missing field`, null ->
 * 400. Not required: absent or null -> *present = false and *out untouched (except generation:
 * null -> GENERATION_NONE). present may be NULL. obj not an object -> 400. */
bool json_get_string(const json_t *obj, const char *key, char *out, size_t cap, bool required,
                     bool *present, Err *err) MUST_CHECK;
bool json_get_bool(const json_t *obj, const char *key, bool *out, bool required, bool *present,
                   Err *err) MUST_CHECK;
bool json_get_u32(const json_t *obj, const char *key, uint32_t *out, bool required, bool *present,
                  Err *err) MUST_CHECK;
bool json_get_u64(const json_t *obj, const char *key, uint64_t *out, bool required, bool *present,
                  Err *err) MUST_CHECK;
bool json_get_i64(const json_t *obj, const char *key, int64_t *out, bool required, bool *present,
                  Err *err) MUST_CHECK;
bool json_get_tenant_id(const json_t *obj, const char *key, TenantId *out, bool required,
                        bool *present, Err *err) MUST_CHECK;
bool json_get_timeline_id(const json_t *obj, const char *key, TimelineId *out, bool required,
                          bool *present, Err *err) MUST_CHECK;
bool json_get_tsid(const json_t *obj, const char *key, TenantShardId *out, bool required,
                   bool *present, Err *err) MUST_CHECK;
bool json_get_lsn(const json_t *obj, const char *key, Lsn *out, bool required, bool *present,
                  Err *err) MUST_CHECK;
bool json_get_generation(const json_t *obj, const char *key, Generation *out, bool required,
                         bool *present, Err *err) MUST_CHECK;
bool json_get_duration_ms(const json_t *obj, const char *key, uint64_t *out_ms, bool required,
                          bool *present, Err *err) MUST_CHECK;
bool json_get_bytes(const json_t *obj, const char *key, uint64_t *out, bool required, bool *present,
                    Err *err) MUST_CHECK;

/* Encoders: each returns a new reference the caller owns (json_decref, or steal it with
 * json_object_set_new). Never NULL (allocation failure aborts). */
json_t *json_from_tenant_id(const TenantId *id);
json_t *json_from_timeline_id(const TimelineId *id);
json_t *json_from_tsid(const TenantShardId *id);
json_t *json_from_shard_index(ShardIndex idx);
json_t *json_from_lsn(Lsn lsn);               /* "X/X"; LSN_INVALID -> null */
json_t *json_from_generation(Generation gen); /* number; GENERATION_NONE -> null */
json_t *json_from_duration_ms(uint64_t ms);   /* "1h 30m" (duration_format_ms) */

/* json_dumps_compact: compact text of any JSON value; the caller frees it with free(). NULL only
 * when v is NULL; allocation failure (or a reference cycle, a programming error) aborts. */
char *json_dumps_compact(const json_t *v);

/* json_must: a jansson constructor's result, aborting the process when it is NULL (jansson
 * returns NULL only when out of memory; treated like xmalloc does). */
json_t *json_must(json_t *v);
/* json_set_new: json_object_set_new that aborts on out-of-memory (it steals v). */
void json_set_new(json_t *obj, const char *key, json_t *v);

/* json_parse_text: parse text[0..len) as any JSON value, rejecting duplicate object keys. 400
 * `invalid JSON at line L, column C: <jansson's message>`. The caller owns *out (json_decref). */
bool json_parse_text(const char *text, size_t len, json_t **out, Err *err) MUST_CHECK;

#endif
