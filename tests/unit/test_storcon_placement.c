/* test_storcon_placement.c: unit tests for storcon/placement.c (policy and state enums and their
 * JSON / text encodings). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "shared/err.h"
#include "storcon/node.h"
#include "storcon/placement.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- placement policy ---- */

typedef struct PolicyCase {
    const char *text;      /* input JSON text */
    PlacementKind kind;    /* expected */
    uint8_t secondaries;   /* expected */
    const char *canonical; /* expected compact text form */
} PolicyCase;

static const PolicyCase POLICY_OK[] = {
    {"{\"Attached\": 0}", PLACEMENT_ATTACHED, 0, "{\"Attached\":0}"},
    {"{\"Attached\":1}", PLACEMENT_ATTACHED, 1, "{\"Attached\":1}"},
    {"{ \"Attached\" : 3 }", PLACEMENT_ATTACHED, 3, "{\"Attached\":3}"},
    {"\"Secondary\"", PLACEMENT_SECONDARY, 0, "\"Secondary\""},
    {"\"Detached\"", PLACEMENT_DETACHED, 0, "\"Detached\""},
};

static void test_placement_policy_round_trip(void **state)
{
    for (size_t i = 0; i < COUNT_OF(POLICY_OK); i++) {
        const PolicyCase *c = &POLICY_OK[i];
        PlacementPolicy p;
        Err err;
        err_clear(&err);
        if (!placement_policy_parse_text(c->text, &p, &err))
            fail_msg("case %zu (%s): %s", i, c->text, err.msg);
        assert_int_equal(p.kind, c->kind);
        assert_int_equal(p.secondaries, c->secondaries);

        char text[PLACEMENT_POLICY_TEXT_SIZE];
        placement_policy_format_text(p, text);
        assert_string_equal(text, c->canonical);

        /* JSON value form: to_json then from_json gives the same policy and the same text */
        json_t *j = placement_policy_to_json(p);
        char *dumped = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        assert_string_equal(dumped, c->canonical);
        free(dumped);
        PlacementPolicy back;
        assert_true(placement_policy_from_json(j, &back, &err));
        assert_true(placement_policy_eq(p, back));
        json_decref(j);
    }
}

static const char *const POLICY_BAD[] = {
    "\"Attached\"",                /* the variant needs its count */
    "{\"Attached\": -1}",          /* negative */
    "{\"Attached\": 4}",           /* above PLACEMENT_MAX_SECONDARIES */
    "{\"Attached\": 1.0}",         /* not an integer */
    "{\"Attached\": \"1\"}",       /* string */
    "{\"Attached\": null}",        /* null */
    "{\"Attached\": 1, \"x\": 2}", /* extra key */
    "{}",                          /* no key */
    "{\"Secondary\": null}",       /* unit variant as a map */
    "{\"attached\": 1}",           /* case */
    "\"secondary\"",               /* case */
    "\"Detached \"",               /* trailing space */
    "\"\"",                        /* empty */
    "null",                        /* wrong types */
    "1",
    "[]",
    "[{\"Attached\": 1}]",
    "{\"Attached\": 1", /* malformed JSON */
    "",
    "{\"Attached\": 1, \"Attached\": 2}", /* duplicate key */
};

static void test_placement_policy_rejections(void **state)
{
    for (size_t i = 0; i < COUNT_OF(POLICY_BAD); i++) {
        PlacementPolicy p = {PLACEMENT_DETACHED, 0};
        Err err;
        err_clear(&err);
        if (placement_policy_parse_text(POLICY_BAD[i], &p, &err))
            fail_msg("case %zu (%s) was accepted", i, POLICY_BAD[i]);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_non_null(strstr(err.msg, "placement policy"));
    }
    /* from_json of NULL (a missing field) is a 400, not a crash */
    PlacementPolicy p;
    Err err;
    err_clear(&err);
    assert_false(placement_policy_from_json(NULL, &p, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
}

static void test_placement_policy_helpers(void **state)
{
    PlacementPolicy def = PLACEMENT_POLICY_DEFAULT;
    assert_int_equal(def.kind, PLACEMENT_ATTACHED);
    assert_int_equal(def.secondaries, 0);

    static const struct {
        PlacementPolicy p;
        bool attached;
        unsigned secondaries;
    } cases[] = {
        {{PLACEMENT_ATTACHED, 0}, true, 0},
        {{PLACEMENT_ATTACHED, 2}, true, 2},
        {{PLACEMENT_SECONDARY, 0}, false, 1},
        {{PLACEMENT_DETACHED, 0}, false, 0},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        assert_int_equal(placement_policy_wants_attached(cases[i].p), cases[i].attached);
        assert_int_equal(placement_policy_wanted_secondaries(cases[i].p), cases[i].secondaries);
    }
    PlacementPolicy a1 = {PLACEMENT_ATTACHED, 1};
    PlacementPolicy a2 = {PLACEMENT_ATTACHED, 2};
    PlacementPolicy sec = {PLACEMENT_SECONDARY, 0};
    assert_true(placement_policy_eq(a1, a1));
    assert_false(placement_policy_eq(a1, a2));
    assert_false(placement_policy_eq(a1, sec));
}

/* ---- name tables ---- */

/* One generic driver over every name table: each value's name parses back to the value, the JSON
 * encoding is the name as a string, and near misses are rejected with a 400. */
typedef struct EnumTable {
    const char *what;
    int count;
    const char *const *names; /* expected spelling of each value, in order */
    const char *(*name)(int v);
    bool (*parse)(const char *s, int *out, Err *err);
    json_t *(*to_json)(int v);                              /* NULL: no JSON form */
    bool (*from_json)(const json_t *v, int *out, Err *err); /* NULL: no JSON form */
} EnumTable;

#define WRAP_ENUM(prefix, T)                                                                       \
    static const char *prefix##_name_w(int v)                                                      \
    {                                                                                              \
        return prefix##_name((T)v);                                                                \
    }                                                                                              \
    static bool prefix##_parse_w(const char *s, int *out, Err *err)                                \
    {                                                                                              \
        T x;                                                                                       \
        if (!prefix##_parse(s, &x, err))                                                           \
            return false;                                                                          \
        *out = (int)x;                                                                             \
        return true;                                                                               \
    }
#define WRAP_JSON(prefix, T)                                                                       \
    static json_t *prefix##_to_json_w(int v)                                                       \
    {                                                                                              \
        return prefix##_to_json((T)v);                                                             \
    }                                                                                              \
    static bool prefix##_from_json_w(const json_t *j, int *out, Err *err)                          \
    {                                                                                              \
        T x;                                                                                       \
        if (!prefix##_from_json(j, &x, err))                                                       \
            return false;                                                                          \
        *out = (int)x;                                                                             \
        return true;                                                                               \
    }

WRAP_ENUM(shard_scheduling_policy, ShardSchedulingPolicy)
WRAP_JSON(shard_scheduling_policy, ShardSchedulingPolicy)
WRAP_ENUM(node_availability, NodeAvailability)
WRAP_JSON(node_availability, NodeAvailability)
WRAP_ENUM(node_scheduling_policy, NodeSchedulingPolicy)
WRAP_JSON(node_scheduling_policy, NodeSchedulingPolicy)
WRAP_ENUM(node_lifecycle, NodeLifecycle)
WRAP_ENUM(shard_location_mode, ShardLocationMode)

static const char *const SHARD_SCHED_NAMES[] = {"Active", "Essential", "Pause", "Stop"};
static const char *const AVAILABILITY_NAMES[] = {"Active", "WarmingUp", "Offline"};
static const char *const NODE_SCHED_NAMES[] = {"Active",          "Filling",  "Pause",
                                               "PauseForRestart", "Draining", "Deleting"};
static const char *const LIFECYCLE_NAMES[] = {"active", "deleted"};
static const char *const MODE_NAMES[] = {"AttachedSingle", "AttachedMulti", "AttachedStale",
                                         "Secondary", "Detached"};

static const EnumTable TABLES[] = {
    {"shard scheduling policy", SHARD_SCHEDULING_COUNT, SHARD_SCHED_NAMES,
     shard_scheduling_policy_name_w, shard_scheduling_policy_parse_w,
     shard_scheduling_policy_to_json_w, shard_scheduling_policy_from_json_w},
    {"node availability", NODE_AVAILABILITY_COUNT, AVAILABILITY_NAMES, node_availability_name_w,
     node_availability_parse_w, node_availability_to_json_w, node_availability_from_json_w},
    {"node scheduling policy", NODE_SCHEDULING_COUNT, NODE_SCHED_NAMES,
     node_scheduling_policy_name_w, node_scheduling_policy_parse_w,
     node_scheduling_policy_to_json_w, node_scheduling_policy_from_json_w},
    {"node lifecycle", NODE_LIFECYCLE_COUNT, LIFECYCLE_NAMES, node_lifecycle_name_w,
     node_lifecycle_parse_w, NULL, NULL},
    {"location mode", SHARD_LOCATION_COUNT, MODE_NAMES, shard_location_mode_name_w,
     shard_location_mode_parse_w, NULL, NULL},
};

/* near_misses: spellings no table accepts. */
static const char *const NEAR_MISSES[] = {"", "active ", " Active", "ACTIVE", "Unknown", "0"};

static void test_name_tables(void **state)
{
    for (size_t t = 0; t < COUNT_OF(TABLES); t++) {
        const EnumTable *tab = &TABLES[t];
        for (int v = 0; v < tab->count; v++) {
            assert_string_equal(tab->name(v), tab->names[v]);
            int back = -1;
            Err err;
            err_clear(&err);
            if (!tab->parse(tab->names[v], &back, &err))
                fail_msg("%s: %s rejected: %s", tab->what, tab->names[v], err.msg);
            assert_int_equal(back, v);
            if (tab->to_json != NULL) {
                json_t *j = tab->to_json(v);
                assert_true(json_is_string(j));
                assert_string_equal(json_string_value(j), tab->names[v]);
                back = -1;
                assert_true(tab->from_json(j, &back, &err));
                assert_int_equal(back, v);
                json_decref(j);
            }
        }
        /* out-of-range values have a placeholder name rather than crashing */
        assert_string_equal(tab->name(tab->count), "?");
        assert_string_equal(tab->name(-1), "?");
        for (size_t i = 0; i < COUNT_OF(NEAR_MISSES); i++) {
            int out = -1;
            Err err;
            err_clear(&err);
            if (tab->parse(NEAR_MISSES[i], &out, &err))
                fail_msg("%s: \"%s\" accepted", tab->what, NEAR_MISSES[i]);
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            assert_int_equal(out, -1);
        }
        if (tab->from_json != NULL) {
            json_t *wrong[] = {json_integer(0), json_null(), json_true(), json_object(),
                               json_stringn("Active\0x", 8)};
            for (size_t i = 0; i < COUNT_OF(wrong); i++) {
                int out = -1;
                Err err;
                err_clear(&err);
                assert_false(tab->from_json(wrong[i], &out, &err));
                assert_int_equal(err.code, ERR_BAD_REQUEST);
                json_decref(wrong[i]);
            }
        }
    }
}

static void test_parse_error_message_names_value(void **state)
{
    ShardSchedulingPolicy p;
    Err err;
    err_clear(&err);
    assert_false(shard_scheduling_policy_parse("Paused", &p, &err));
    assert_non_null(strstr(err.msg, "\"Paused\""));
    assert_non_null(strstr(err.msg, "Essential"));
    /* hostile input is quoted safely and shortened */
    char longbad[300];
    memset(longbad, 'x', sizeof(longbad) - 1);
    longbad[sizeof(longbad) - 1] = '\0';
    longbad[3] = '"';
    err_clear(&err);
    assert_false(shard_scheduling_policy_parse(longbad, &p, &err));
    assert_null(strstr(err.msg, "xxx\"x"));
    assert_non_null(strstr(err.msg, "..."));
}

static void test_scheduling_policy_text(void **state)
{
    for (int v = 0; v < SHARD_SCHEDULING_COUNT; v++) {
        char text[SHARD_SCHEDULING_POLICY_TEXT_SIZE];
        shard_scheduling_policy_format_text((ShardSchedulingPolicy)v, text);
        char want[32];
        snprintf(want, sizeof(want), "\"%s\"", SHARD_SCHED_NAMES[v]);
        assert_string_equal(text, want);
        ShardSchedulingPolicy back;
        Err err;
        err_clear(&err);
        assert_true(shard_scheduling_policy_parse_text(text, &back, &err));
        assert_int_equal(back, v);
    }
    static const char *const bad[] = {"Active", "\"active\"", "{\"Active\": 1}", "", "null"};
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        ShardSchedulingPolicy back;
        Err err;
        err_clear(&err);
        if (shard_scheduling_policy_parse_text(bad[i], &back, &err))
            fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
}

static void test_location_mode_is_attached(void **state)
{
    static const bool want[SHARD_LOCATION_COUNT] = {true, true, true, false, false};
    for (int m = 0; m < SHARD_LOCATION_COUNT; m++)
        assert_int_equal(shard_location_mode_is_attached((ShardLocationMode)m), want[m]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placement_policy_round_trip),
        cmocka_unit_test(test_placement_policy_rejections),
        cmocka_unit_test(test_placement_policy_helpers),
        cmocka_unit_test(test_name_tables),
        cmocka_unit_test(test_parse_error_message_names_value),
        cmocka_unit_test(test_scheduling_policy_text),
        cmocka_unit_test(test_location_mode_is_attached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
