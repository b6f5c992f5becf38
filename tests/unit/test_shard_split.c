/* test_shard_split.c: unit tests for shared/shard_split.c (the TenantShardSplitRequest decoder)
 * and the split arithmetic both daemons rely on (shared/key.h: which counts are valid, which
 * children a parent has, and that the children of a split own exactly the parent's keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "shared/key.h"
#include "shared/shard_split.h"

static bool decode(const char *text, ShardSplitRequest *out, Err *err)
{
    json_t *body = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(body);
    bool ok = shard_split_request_decode(body, out, err);
    json_decref(body);
    return ok;
}

static void decodes_neon_shapes(void **state)
{
    (void)state;
    ShardSplitRequest r;
    Err err = {0};
    assert_true(decode("{\"new_shard_count\": 4}", &r, &err));
    assert_int_equal(r.new_shard_count, 4);
    assert_int_equal(r.new_stripe_size, 0);
    assert_true(decode("{\"new_shard_count\": 8, \"new_stripe_size\": null}", &r, &err));
    assert_int_equal(r.new_shard_count, 8);
    assert_int_equal(r.new_stripe_size, 0);
    assert_true(decode("{\"new_shard_count\": 2, \"new_stripe_size\": 32768}", &r, &err));
    assert_int_equal(r.new_stripe_size, 32768);
    /* out-of-range counts reach shard_split_validate (400 there), they are not truncated */
    assert_true(decode("{\"new_shard_count\": 256}", &r, &err));
    assert_int_equal(r.new_shard_count, 256);
}

static void rejects_bad_bodies(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{}",
        "[]",
        "4",
        "{\"new_shard_count\": null}",
        "{\"new_shard_count\": \"4\"}",
        "{\"new_shard_count\": -1}",
        "{\"new_shard_count\": 1.5}",
        "{\"new_shard_count\": 4, \"new_stripe_size\": 0}",
        "{\"new_shard_count\": 4, \"new_stripe_size\": -3}",
        "{\"new_shard_count\": 4, \"unknown\": 1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ShardSplitRequest r;
        Err err = {0};
        assert_false(decode(bad[i], &r, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_true(err.msg[0] != '\0');
    }
}

static void counts(void **state)
{
    (void)state;
    Err err = {0};
    static const uint32_t good[][2] = {{0, 2},  {0, 4}, {1, 2},  {1, 128}, {2, 8},
                                       {4, 16}, {3, 6}, {3, 12}, {0, 128}, {127, 254}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(shard_split_validate(good[i][0], good[i][1], &err));
    static const uint32_t bad[][2] = {{0, 0}, {0, 1},  {1, 1},   {4, 4},     {4, 2}, {0, 3},
                                      {2, 6}, {4, 12}, {0, 256}, {128, 256}, {1, 0}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.code = ERR_NONE;
        assert_false(shard_split_validate(bad[i][0], bad[i][1], &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
}

/* Every child of a parent owns only keys the parent owned, and every key the parent owned is
 * owned by exactly one of its children (so the children together serve the parent's keys; the
 * stripe size stays the same). */
static void children_partition_the_parents_keys(void **state)
{
    (void)state;
    static const uint32_t splits[][2] = {{2, 4}, {2, 8}, {4, 8}, {4, 16}, {1, 4}, {0, 8}};
    for (size_t s = 0; s < sizeof(splits) / sizeof(splits[0]); s++) {
        uint32_t old = splits[s][0], nw = splits[s][1], old_eff = old ? old : 1;
        for (ShardNumber p = 0; p < old_eff; p++) {
            ShardNumber kids[SHARD_SPLIT_MAX_CHILDREN];
            size_t n = 0;
            Err err = {0};
            assert_true(shard_split_children(p, old, nw, kids, &n, &err));
            assert_int_equal(n, nw / old_eff);
            for (size_t i = 0; i < n; i++)
                assert_int_equal(kids[i] % old_eff, p);
            for (uint32_t rel = 16384; rel < 16400; rel++) {
                for (uint32_t blk = 0; blk < 5000; blk += 97) {
                    Key k = key_rel_block(1663, 5, rel, 0, blk);
                    bool parent_owns = key_to_shard_number((ShardCount)old, 2048, &k) == p;
                    size_t owners = 0;
                    for (size_t i = 0; i < n; i++)
                        owners += key_to_shard_number((ShardCount)nw, 2048, &k) == kids[i];
                    assert_int_equal(owners, parent_owns ? 1 : 0);
                }
            }
        }
    }
    Err err = {0};
    ShardNumber kids[SHARD_SPLIT_MAX_CHILDREN];
    size_t n = 0;
    assert_false(shard_split_children(2, 2, 4, kids, &n, &err)); /* parent not below the count */
    assert_int_equal(err.code, ERR_BAD_REQUEST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decodes_neon_shapes),
        cmocka_unit_test(rejects_bad_bodies),
        cmocka_unit_test(counts),
        cmocka_unit_test(children_partition_the_parents_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
