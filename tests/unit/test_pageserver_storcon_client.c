/* test_pageserver_storcon_client.c: unit tests for the upcall answers of
 * pageserver/storcon_client.c (re-attach and validate parsing) and the utilization score of
 * pageserver/utilization.c. */
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
#include "shared/id.h"
#include "shared/json.h"

#include "pageserver/storcon_client.h"
#include "pageserver/utilization.h"
#include "tests/unit/json_util.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#define T "1f359dd625e519a1a4e8d7509690f6fc"

static void test_reattach_ok(void **state)
{
    (void)state;
    json_t *body = test_json("{\"tenants\":["
                             "{\"id\":\"" T "-0004\",\"gen\":7,\"mode\":\"AttachedSingle\","
                             "\"stripe_size\":2048},"
                             "{\"id\":\"" T "-0104\",\"gen\":null,\"mode\":\"Secondary\"},"
                             "{\"id\":\"" T "\",\"gen\":3,\"future_field\":[1]},"
                             "{\"id\":\"" T "-0204\",\"gen\":null}"
                             "]}");
    ReattachTenant *ts = NULL;
    size_t n = 0;
    Err err = {0};
    assert_true(storcon_reattach_parse(body, &ts, &n, &err));
    assert_int_equal(n, 4);
    assert_int_equal(ts[0].gen, 7);
    assert_int_equal(ts[0].mode, LOCATION_MODE_ATTACHED_SINGLE);
    assert_true(ts[0].has_stripe_size);
    assert_int_equal(ts[0].stripe_size, 2048);
    assert_int_equal(ts[0].tsid.number, 0);
    assert_int_equal(ts[0].tsid.count, 4);
    assert_int_equal(ts[1].mode, LOCATION_MODE_SECONDARY);
    assert_int_equal(ts[1].gen, GENERATION_NONE);
    assert_int_equal(ts[2].mode, LOCATION_MODE_ATTACHED_SINGLE); /* mode absent, gen set */
    assert_int_equal(ts[2].tsid.count, 0);
    assert_false(ts[2].has_stripe_size);
    assert_int_equal(ts[3].mode, LOCATION_MODE_SECONDARY); /* mode absent, gen null */
    free(ts);
    json_decref(body);
}

static void test_reattach_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{}",
        "[]",
        "{\"tenants\":{}}",
        "{\"tenants\":[{\"gen\":1}]}",
        "{\"tenants\":[{\"id\":\"nope\",\"gen\":1}]}",
        "{\"tenants\":[{\"id\":\"" T "\",\"gen\":-1}]}",
        "{\"tenants\":[{\"id\":\"" T "\",\"gen\":\"1\"}]}",
        "{\"tenants\":[{\"id\":\"" T "\",\"gen\":1,\"mode\":\"Attached\"}]}",
        "{\"tenants\":[{\"id\":\"" T "\",\"gen\":null,\"mode\":\"AttachedSingle\"}]}",
    };
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        json_t *body = test_json(bad[i]);
        ReattachTenant *ts = NULL;
        size_t n = 0;
        Err err = {0};
        if (storcon_reattach_parse(body, &ts, &n, &err))
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_null(ts);
        json_decref(body);
    }
}

static void test_validate_apply(void **state)
{
    (void)state;
    ValidateItem items[3];
    Err err = {0};
    assert_true(tsid_parse(T "-0004", &items[0].tsid, &err));
    assert_true(tsid_parse(T "-0104", &items[1].tsid, &err));
    assert_true(tsid_parse(T "-0204", &items[2].tsid, &err));
    for (size_t i = 0; i < 3; i++) {
        items[i].gen = 2;
        items[i].valid = false;
    }
    json_t *body = test_json("{\"tenants\":[{\"id\":\"" T "-0004\",\"valid\":true},"
                             "{\"id\":\"" T "-0104\",\"valid\":false}]}");
    assert_true(storcon_validate_apply(body, items, 3, &err));
    assert_true(items[0].valid);
    assert_false(items[1].valid);
    assert_false(items[2].valid); /* not named: invalid */
    json_decref(body);
    body = test_json("{\"tenants\":[{\"id\":\"" T "-0004\",\"valid\":\"yes\"}]}");
    assert_false(storcon_validate_apply(body, items, 3, &err));
    json_decref(body);
    body = test_json("{\"nope\":[]}");
    assert_false(storcon_validate_apply(body, items, 3, &err));
    json_decref(body);
}

typedef struct UtilCase {
    uint64_t usage, free_bytes;
    uint32_t pct, shards, max_shards;
    uint64_t score;
} UtilCase;

static void test_utilization_score(void **state)
{
    (void)state;
    static const UtilCase cases[] = {
        {0, 1000, 100, 0, 100, 0},         {500, 500, 100, 0, 100, 500000}, /* half the disk */
        {500, 500, 50, 0, 100, 1000000},   /* half the disk, half usable: full */
        {100, 900, 100, 50, 100, 500000},  /* shards dominate */
        {1000, 0, 100, 300, 100, 3000000}, /* overloaded by shards */
        {1000, 0, 100, 1, 100, 1000000},   /* disk full */
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        Utilization u = {.disk_usage_bytes = cases[i].usage,
                         .free_space_bytes = cases[i].free_bytes,
                         .disk_usable_pct = cases[i].pct,
                         .shard_count = cases[i].shards,
                         .max_shard_count = cases[i].max_shards,
                         .captured_at_ms = 1700000000123};
        utilization_compute(&u);
        assert_int_equal(u.utilization_score, cases[i].score);
        assert_int_equal(u.disk_wanted_bytes, cases[i].usage);
    }
    Utilization u = {.disk_usage_bytes = 1,
                     .free_space_bytes = 1,
                     .disk_usable_pct = 100,
                     .shard_count = 1,
                     .max_shard_count = 10,
                     .captured_at_ms = 1700000000123};
    utilization_compute(&u);
    json_t *j = utilization_to_json(&u);
    assert_string_equal(json_string_value(json_object_get(j, "captured_at")),
                        "2023-11-14T22:13:20.123Z");
    assert_int_equal(json_integer_value(json_object_get(j, "utilization_score")), 500000);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reattach_ok),
        cmocka_unit_test(test_reattach_rejects),
        cmocka_unit_test(test_validate_apply),
        cmocka_unit_test(test_utilization_score),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
