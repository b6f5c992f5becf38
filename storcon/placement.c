/*
 * placement.c: name tables and JSON encodings of the controller's policy and state enums.
 *
 * Each enum has one table of names indexed by its value; names, parsers and JSON helpers are all
 * driven by that table, so adding a value is one line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/str.h"

#include "storcon/placement.h"

static const char *const SHARD_SCHEDULING_NAMES[SHARD_SCHEDULING_COUNT] = {
    [SHARD_SCHEDULING_ACTIVE] = "Active",
    [SHARD_SCHEDULING_ESSENTIAL] = "Essential",
    [SHARD_SCHEDULING_PAUSE] = "Pause",
    [SHARD_SCHEDULING_STOP] = "Stop",
};
static const NameTable SHARD_SCHEDULING_TABLE = {"scheduling policy", SHARD_SCHEDULING_NAMES,
                                                 SHARD_SCHEDULING_COUNT};

static const char *const LOCATION_MODE_NAMES[SHARD_LOCATION_COUNT] = {
    [SHARD_LOCATION_ATTACHED_SINGLE] = "AttachedSingle",
    [SHARD_LOCATION_ATTACHED_MULTI] = "AttachedMulti",
    [SHARD_LOCATION_ATTACHED_STALE] = "AttachedStale",
    [SHARD_LOCATION_SECONDARY] = "Secondary",
    [SHARD_LOCATION_DETACHED] = "Detached",
};
static const NameTable LOCATION_MODE_TABLE = {"location mode", LOCATION_MODE_NAMES,
                                              SHARD_LOCATION_COUNT};

/* Longest piece of a bad input quoted back in an error message. */
#define QUOTE_MAX 48

/* quote_bad: the input for an error message: printable ASCII kept, the rest as '?', cut at
 * QUOTE_MAX characters (inputs come straight from request bodies). */
static void quote_bad(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    size_t i = 0;
    for (; s[i] != '\0' && i < QUOTE_MAX && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    if (s[i] != '\0' && o + 4 <= cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

const char *name_table_name(const NameTable *t, int v)
{
    if (v < 0 || v >= t->count)
        return "?";
    return t->names[v];
}

/* name_table_parse: exact match against the table; 400 naming the value and the accepted names. */
bool name_table_parse(const NameTable *t, const char *s, int *out, Err *err)
{
    for (int i = 0; i < t->count; i++) {
        if (strcmp(s, t->names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    char bad[QUOTE_MAX + 8];
    quote_bad(s, bad, sizeof(bad));
    char expected[160];
    size_t o = 0;
    expected[0] = '\0';
    for (int i = 0; i < t->count; i++) {
        int n =
            snprintf(expected + o, sizeof(expected) - o, "%s%s", i == 0 ? "" : ", ", t->names[i]);
        if (n < 0 || (size_t)n >= sizeof(expected) - o)
            break;
        o += (size_t)n;
    }
    err_set(err, ERR_BAD_REQUEST, "invalid %s \"%s\" (expected one of %s)", t->what, bad, expected);
    return false;
}

/* name_table_from_json: a JSON string parsed with name_table_parse. */
bool name_table_from_json(const NameTable *t, const json_t *v, int *out, Err *err)
{
    if (!json_is_string(v)) {
        err_set(err, ERR_BAD_REQUEST, "invalid %s: expected a string", t->what);
        return false;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        err_set(err, ERR_BAD_REQUEST, "invalid %s: NUL in string", t->what);
        return false;
    }
    return name_table_parse(t, json_string_value(v), out, err);
}

json_t *name_table_to_json(const NameTable *t, int v)
{
    json_t *j = json_string(name_table_name(t, v));
    if (j == NULL)
        abort();
    return j;
}

/* parse_json_text: text as any JSON value (duplicate keys rejected); 400 on bad JSON. */
static json_t *parse_json_text(const char *text, const char *what, Err *err)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL)
        err_set(err, ERR_BAD_REQUEST, "invalid %s: %s", what, jerr.text);
    return v;
}

/* ---- placement policy ---- */

static void placement_error(Err *err, const char *detail)
{
    err_set(err, ERR_BAD_REQUEST,
            "invalid placement policy: %s (expected {\"Attached\": n} with n <= %d, \"Secondary\" "
            "or \"Detached\")",
            detail, PLACEMENT_MAX_SECONDARIES);
}

bool placement_policy_from_json(const json_t *v, PlacementPolicy *out, Err *err)
{
    if (v == NULL) {
        placement_error(err, "missing");
        return false;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strlen(s) == json_string_length(v)) {
            if (strcmp(s, "Secondary") == 0) {
                *out = (PlacementPolicy){PLACEMENT_SECONDARY, 0};
                return true;
            }
            if (strcmp(s, "Detached") == 0) {
                *out = (PlacementPolicy){PLACEMENT_DETACHED, 0};
                return true;
            }
        }
        char bad[QUOTE_MAX + 8];
        char detail[QUOTE_MAX + 32];
        quote_bad(s, bad, sizeof(bad));
        str_printf(detail, sizeof(detail), "\"%s\"", bad);
        placement_error(err, detail);
        return false;
    }
    if (!json_is_object(v)) {
        placement_error(err, "not a string or an object");
        return false;
    }
    if (json_object_size(v) != 1) {
        placement_error(err, "an object must have exactly one key");
        return false;
    }
    json_t *n = json_object_get(v, "Attached");
    if (n == NULL) {
        placement_error(err, "unknown key");
        return false;
    }
    if (!json_is_integer(n)) {
        placement_error(err, "\"Attached\" must be an integer");
        return false;
    }
    json_int_t count = json_integer_value(n);
    if (count < 0 || count > PLACEMENT_MAX_SECONDARIES) {
        char detail[64];
        str_printf(detail, sizeof(detail), "%lld secondaries", (long long)count);
        placement_error(err, detail);
        return false;
    }
    *out = (PlacementPolicy){PLACEMENT_ATTACHED, (uint8_t)count};
    return true;
}

json_t *placement_policy_to_json(PlacementPolicy p)
{
    json_t *j;
    switch (p.kind) {
    case PLACEMENT_ATTACHED:
        j = json_pack("{s:i}", "Attached", (int)p.secondaries);
        break;
    case PLACEMENT_SECONDARY:
        j = json_string("Secondary");
        break;
    case PLACEMENT_DETACHED:
    case PLACEMENT_KIND_COUNT:
    default:
        j = json_string("Detached");
        break;
    }
    if (j == NULL)
        abort();
    return j;
}

bool placement_policy_parse_text(const char *text, PlacementPolicy *out, Err *err)
{
    json_t *v = parse_json_text(text, "placement policy", err);
    if (v == NULL)
        return false;
    bool ok = placement_policy_from_json(v, out, err);
    json_decref(v);
    return ok;
}

void placement_policy_format_text(PlacementPolicy p, char out[PLACEMENT_POLICY_TEXT_SIZE])
{
    switch (p.kind) {
    case PLACEMENT_ATTACHED:
        snprintf(out, PLACEMENT_POLICY_TEXT_SIZE, "{\"Attached\":%u}", (unsigned)p.secondaries);
        break;
    case PLACEMENT_SECONDARY:
        str_copy(out, PLACEMENT_POLICY_TEXT_SIZE, "\"Secondary\"");
        break;
    case PLACEMENT_DETACHED:
    case PLACEMENT_KIND_COUNT:
    default:
        str_copy(out, PLACEMENT_POLICY_TEXT_SIZE, "\"Detached\"");
        break;
    }
}

bool placement_policy_eq(PlacementPolicy a, PlacementPolicy b)
{
    return a.kind == b.kind && (a.kind != PLACEMENT_ATTACHED || a.secondaries == b.secondaries);
}

bool placement_policy_wants_attached(PlacementPolicy p)
{
    return p.kind == PLACEMENT_ATTACHED;
}

unsigned placement_policy_wanted_secondaries(PlacementPolicy p)
{
    switch (p.kind) {
    case PLACEMENT_ATTACHED:
        return p.secondaries;
    case PLACEMENT_SECONDARY:
        return 1;
    case PLACEMENT_DETACHED:
    case PLACEMENT_KIND_COUNT:
    default:
        return 0;
    }
}

/* ---- shard scheduling policy ---- */

const char *shard_scheduling_policy_name(ShardSchedulingPolicy p)
{
    return name_table_name(&SHARD_SCHEDULING_TABLE, (int)p);
}

bool shard_scheduling_policy_parse(const char *s, ShardSchedulingPolicy *out, Err *err)
{
    int v = 0;
    if (!name_table_parse(&SHARD_SCHEDULING_TABLE, s, &v, err))
        return false;
    *out = (ShardSchedulingPolicy)v;
    return true;
}

bool shard_scheduling_policy_from_json(const json_t *v, ShardSchedulingPolicy *out, Err *err)
{
    int x = 0;
    if (!name_table_from_json(&SHARD_SCHEDULING_TABLE, v, &x, err))
        return false;
    *out = (ShardSchedulingPolicy)x;
    return true;
}

json_t *shard_scheduling_policy_to_json(ShardSchedulingPolicy p)
{
    return name_table_to_json(&SHARD_SCHEDULING_TABLE, (int)p);
}

bool shard_scheduling_policy_parse_text(const char *text, ShardSchedulingPolicy *out, Err *err)
{
    json_t *v = parse_json_text(text, "scheduling policy", err);
    if (v == NULL)
        return false;
    bool ok = shard_scheduling_policy_from_json(v, out, err);
    json_decref(v);
    return ok;
}

void shard_scheduling_policy_format_text(ShardSchedulingPolicy p,
                                         char out[SHARD_SCHEDULING_POLICY_TEXT_SIZE])
{
    snprintf(out, SHARD_SCHEDULING_POLICY_TEXT_SIZE, "\"%s\"", shard_scheduling_policy_name(p));
}

/* ---- location modes ---- */

const char *shard_location_mode_name(ShardLocationMode m)
{
    return name_table_name(&LOCATION_MODE_TABLE, (int)m);
}

bool shard_location_mode_parse(const char *s, ShardLocationMode *out, Err *err)
{
    int v = 0;
    if (!name_table_parse(&LOCATION_MODE_TABLE, s, &v, err))
        return false;
    *out = (ShardLocationMode)v;
    return true;
}

bool shard_location_mode_is_attached(ShardLocationMode m)
{
    return m == SHARD_LOCATION_ATTACHED_SINGLE || m == SHARD_LOCATION_ATTACHED_MULTI ||
           m == SHARD_LOCATION_ATTACHED_STALE;
}
