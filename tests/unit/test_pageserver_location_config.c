/* test_pageserver_location_config.c: unit tests for pageserver/location_config.c: each mode valid
 * and invalid, the generation and secondary_conf rules, shard parameters, unknown fields, the
 * byte-exact echo, and the upsert classification table. */
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

#include "pageserver/location_config.h"
#include "shared/tenant_config.h"
#include "tests/unit/json_util.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#define TENANT_HEX "1f359dd625e519a1a4e8d7509690f6fc"

static bool decode_text(const char *text, LocationConfig *out, Err *err)
{
    json_t *v = test_json(text);
    bool ok = location_config_decode(v, out, err);
    json_decref(v);
    return ok;
}

static char *echo(const LocationConfig *cfg)
{
    json_t *j = location_config_to_json(cfg);
    char *s = json_dumps_compact(j);
    json_decref(j);
    return s;
}

/* ---- modes ---- */

static void test_mode_names(void **state)
{
    static const struct {
        const char *name;
        LocationMode mode;
        bool attached;
    } modes[] = {
        {"AttachedSingle", LOCATION_MODE_ATTACHED_SINGLE, true},
        {"AttachedMulti", LOCATION_MODE_ATTACHED_MULTI, true},
        {"AttachedStale", LOCATION_MODE_ATTACHED_STALE, true},
        {"Secondary", LOCATION_MODE_SECONDARY, false},
        {"Detached", LOCATION_MODE_DETACHED, false},
    };
    assert_int_equal(COUNT_OF(modes), LOCATION_MODE_COUNT);
    for (size_t i = 0; i < COUNT_OF(modes); i++) {
        LocationMode m;
        Err err = {0};
        assert_true(location_config_mode_parse(modes[i].name, &m, &err));
        assert_int_equal(m, modes[i].mode);
        assert_string_equal(location_config_mode_name(m), modes[i].name);
        assert_int_equal(location_config_mode_is_attached(m), modes[i].attached);
    }
    static const char *const bad[] = {"attachedsingle", "ATTACHEDSINGLE",   "Attached", "",
                                      "Secondary ",     "AttachedSingle\n", "detached"};
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        LocationMode m = LOCATION_MODE_COUNT;
        Err err = {0};
        assert_false(location_config_mode_parse(bad[i], &m, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_int_equal(m, LOCATION_MODE_COUNT);
    }
    assert_string_equal(location_config_mode_name(LOCATION_MODE_COUNT), "?");
}

/* ---- valid bodies ---- */

static void test_valid(void **state)
{
    static const struct {
        const char *body;
        LocationMode mode;
        Generation gen;
        bool has_secondary_conf;
        bool warm;
        int number, count;
        uint32_t stripe;
    } cases[] = {
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"tenant_conf\":{}}",
         LOCATION_MODE_ATTACHED_SINGLE, 1, false, false, 0, 0, 0},
        {"{\"mode\":\"AttachedMulti\",\"generation\":4294967295,\"tenant_conf\":{}}",
         LOCATION_MODE_ATTACHED_MULTI, GENERATION_MAX, false, false, 0, 0, 0},
        {"{\"mode\":\"AttachedStale\",\"generation\":1,\"tenant_conf\":{}}",
         LOCATION_MODE_ATTACHED_STALE, 1, false, false, 0, 0, 0},
        {"{\"mode\":\"AttachedSingle\",\"generation\":7,\"secondary_conf\":null,"
         "\"shard_number\":3,\"shard_count\":4,\"shard_stripe_size\":2048,\"tenant_conf\":{}}",
         LOCATION_MODE_ATTACHED_SINGLE, 7, false, false, 3, 4, 2048},
        {"{\"mode\":\"Secondary\",\"tenant_conf\":{}}", LOCATION_MODE_SECONDARY, GENERATION_NONE,
         false, false, 0, 0, 0},
        {"{\"mode\":\"Secondary\",\"generation\":null,\"secondary_conf\":{\"warm\":true},"
         "\"tenant_conf\":{}}",
         LOCATION_MODE_SECONDARY, GENERATION_NONE, true, true, 0, 0, 0},
        {"{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":false},\"tenant_conf\":{}}",
         LOCATION_MODE_SECONDARY, GENERATION_NONE, true, false, 0, 0, 0},
        {"{\"mode\":\"Secondary\",\"secondary_conf\":null,\"shard_number\":0,"
         "\"shard_count\":1,\"shard_stripe_size\":32768,\"tenant_conf\":{}}",
         LOCATION_MODE_SECONDARY, GENERATION_NONE, false, false, 0, 1, 32768},
        {"{\"mode\":\"Detached\",\"tenant_conf\":{}}", LOCATION_MODE_DETACHED, GENERATION_NONE,
         false, false, 0, 0, 0},
        {"{\"mode\":\"Detached\",\"generation\":9,\"tenant_conf\":{}}", LOCATION_MODE_DETACHED, 9,
         false, false, 0, 0, 0},
        /* unsharded with a stripe size (Neon's controller sends one) */
        {"{\"mode\":\"AttachedSingle\",\"generation\":2,\"shard_count\":0,"
         "\"shard_stripe_size\":2048,\"tenant_conf\":{}}",
         LOCATION_MODE_ATTACHED_SINGLE, 2, false, false, 0, 0, 2048},
        {"{\"mode\":\"AttachedSingle\",\"generation\":2,\"shard_number\":254,"
         "\"shard_count\":255,\"shard_stripe_size\":1,\"tenant_conf\":{}}",
         LOCATION_MODE_ATTACHED_SINGLE, 2, false, false, 254, 255, 1},
        /* tenant_conf is lenient: unknown fields are ignored */
        {"{\"mode\":\"AttachedSingle\",\"generation\":3,"
         "\"tenant_conf\":{\"pitr_interval\":\"1d\",\"some_future_knob\":[1,2]}}",
         LOCATION_MODE_ATTACHED_SINGLE, 3, false, false, 0, 0, 0},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        LocationConfig cfg;
        Err err = {0};
        if (!decode_text(cases[i].body, &cfg, &err))
            fail_msg("case %zu %s rejected: %s", i, cases[i].body, err.msg);
        assert_int_equal(cfg.mode, cases[i].mode);
        assert_true(cfg.generation == cases[i].gen);
        assert_int_equal(cfg.has_secondary_conf, cases[i].has_secondary_conf);
        assert_int_equal(cfg.secondary_warm, cases[i].warm);
        assert_int_equal(cfg.shard_number, cases[i].number);
        assert_int_equal(cfg.shard_count, cases[i].count);
        assert_int_equal(cfg.shard_stripe_size, cases[i].stripe);
        assert_non_null(cfg.tenant_conf_json);
        assert_int_equal(location_config_is_attached(&cfg),
                         location_config_mode_is_attached(cases[i].mode));
        ShardIndex idx = location_config_shard_index(&cfg);
        assert_int_equal(idx.number, cases[i].number);
        assert_int_equal(idx.count, cases[i].count);
        location_config_finish(&cfg);
        assert_null(cfg.tenant_conf_json);
    }
}

static void test_tenant_conf_decoded(void **state)
{
    LocationConfig cfg;
    Err err = {0};
    assert_true(decode_text("{\"mode\":\"AttachedSingle\",\"generation\":3,"
                            "\"tenant_conf\":{\"pitr_interval\":\"1d\",\"heatmap_period\":\"60s\","
                            "\"future\":1}}",
                            &cfg, &err));
    assert_int_equal(cfg.tenant_conf.pitr_interval_p, JSON_PRESENCE_SET);
    assert_true(cfg.tenant_conf.pitr_interval_ms == 86400000);
    assert_true(cfg.tenant_conf.heatmap_period_ms == 60000);
    assert_int_equal(cfg.tenant_conf.gc_horizon_p, JSON_PRESENCE_ABSENT);
    location_config_finish(&cfg);
}

/* ---- invalid bodies ---- */

static void test_invalid(void **state)
{
    static const struct {
        const char *body;
        const char *msg;
    } cases[] = {
        {"{\"generation\":1,\"tenant_conf\":{}}", "missing field \"mode\""},
        {"{\"mode\":null,\"generation\":1,\"tenant_conf\":{}}", "\"mode\""},
        {"{\"mode\":1,\"generation\":1,\"tenant_conf\":{}}", "\"mode\""},
        {"{\"mode\":\"Attached\",\"generation\":1,\"tenant_conf\":{}}", "\"Attached\""},
        {"{\"mode\":\"attachedsingle\",\"generation\":1,\"tenant_conf\":{}}", "\"mode\""},
        /* generation rules */
        {"{\"mode\":\"AttachedSingle\",\"tenant_conf\":{}}", "required for mode AttachedSingle"},
        {"{\"mode\":\"AttachedMulti\",\"generation\":null,\"tenant_conf\":{}}",
         "required for mode AttachedMulti"},
        {"{\"mode\":\"AttachedStale\",\"tenant_conf\":{}}", "required for mode AttachedStale"},
        {"{\"mode\":\"Secondary\",\"generation\":5,\"tenant_conf\":{}}",
         "must be null for mode Secondary"},
        {"{\"mode\":\"Secondary\",\"generation\":0,\"tenant_conf\":{}}",
         "must be null for mode Secondary"},
        {"{\"mode\":\"AttachedSingle\",\"generation\":0,\"tenant_conf\":{}}",
         "generations start at 1"},
        {"{\"mode\":\"AttachedStale\",\"generation\":0,\"tenant_conf\":{}}",
         "generations start at 1"},
        {"{\"mode\":\"Detached\",\"generation\":0,\"tenant_conf\":{}}", "generations start at 1"},
        {"{\"mode\":\"AttachedSingle\",\"generation\":-1,\"tenant_conf\":{}}", "\"generation\""},
        {"{\"mode\":\"AttachedSingle\",\"generation\":4294967296,\"tenant_conf\":{}}",
         "\"generation\""},
        {"{\"mode\":\"AttachedSingle\",\"generation\":\"5\",\"tenant_conf\":{}}", "\"generation\""},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1.0,\"tenant_conf\":{}}", "\"generation\""},
        /* secondary_conf rules */
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"secondary_conf\":{\"warm\":true},"
         "\"tenant_conf\":{}}",
         "only allowed for mode Secondary"},
        {"{\"mode\":\"Detached\",\"secondary_conf\":{\"warm\":true},\"tenant_conf\":{}}",
         "only allowed for mode Secondary"},
        {"{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":\"yes\"},\"tenant_conf\":{}}",
         "secondary_conf: field \"warm\""},
        {"{\"mode\":\"Secondary\",\"secondary_conf\":{},\"tenant_conf\":{}}",
         "secondary_conf: missing field \"warm\""},
        {"{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":true,\"hot\":1},\"tenant_conf\":{}}",
         "secondary_conf: unknown field \"hot\""},
        {"{\"mode\":\"Secondary\",\"secondary_conf\":true,\"tenant_conf\":{}}",
         "\"secondary_conf\""},
        /* shard parameters */
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"shard_number\":2,\"shard_count\":2,"
         "\"shard_stripe_size\":2048,\"tenant_conf\":{}}",
         "invalid shard parameters"},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"shard_number\":1,\"shard_count\":0,"
         "\"tenant_conf\":{}}",
         "invalid shard parameters"},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"shard_number\":0,\"shard_count\":4,"
         "\"tenant_conf\":{}}",
         "invalid shard parameters"},
        {"{\"mode\":\"Secondary\",\"shard_number\":0,\"shard_count\":1,\"shard_stripe_size\":0,"
         "\"tenant_conf\":{}}",
         "invalid shard parameters"},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"shard_count\":256,\"tenant_conf\":{}}",
         "\"shard_count\""},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"shard_number\":-1,\"tenant_conf\":{}}",
         "\"shard_number\""},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"shard_stripe_size\":4294967296,"
         "\"tenant_conf\":{}}",
         "\"shard_stripe_size\""},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"shard_count\":null,\"tenant_conf\":{}}",
         "\"shard_count\""},
        /* unknown top-level fields */
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"tenant_conf\":{},\"flush_ms\":5}",
         "unknown field \"flush_ms\""},
        {"{\"mode\":\"Secondary\",\"tenant_config\":{}}", "unknown field \"tenant_config\""},
        /* tenant_conf */
        {"{\"mode\":\"AttachedSingle\",\"generation\":1}", "missing field \"tenant_conf\""},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"tenant_conf\":null}", "\"tenant_conf\""},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"tenant_conf\":[]}", "\"tenant_conf\""},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"tenant_conf\":"
         "{\"max_lsn_wal_lag\":\"1000\"}}",
         "tenant_conf: field \"max_lsn_wal_lag\""},
        {"{\"mode\":\"Secondary\",\"tenant_conf\":{\"pitr_interval\":7}}",
         "tenant_conf: field \"pitr_interval\""},
        {"[]", "object"},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        LocationConfig cfg;
        Err err = {0};
        if (decode_text(cases[i].body, &cfg, &err))
            fail_msg("case %zu %s accepted", i, cases[i].body);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        if (strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, cases[i].msg);
        /* nothing to release after a failure */
        assert_null(cfg.tenant_conf_json);
    }
}

/* ---- echo ---- */

static void test_echo_byte_identical(void **state)
{
    static const char *const bodies[] = {
        "{\"mode\":\"AttachedSingle\",\"generation\":1,\"secondary_conf\":null,"
        "\"shard_number\":0,\"shard_count\":0,\"shard_stripe_size\":0,\"tenant_conf\":{}}",
        "{\"mode\":\"AttachedMulti\",\"generation\":12,\"secondary_conf\":null,"
        "\"shard_number\":3,\"shard_count\":8,\"shard_stripe_size\":2048,"
        "\"tenant_conf\":{\"pitr_interval\":\"7 days\",\"gc_horizon\":\"64MiB\","
        "\"heatmap_period\":\"60s\"}}",
        "{\"mode\":\"AttachedStale\",\"generation\":4294967295,\"secondary_conf\":null,"
        "\"shard_number\":0,\"shard_count\":1,\"shard_stripe_size\":32768,"
        "\"tenant_conf\":{\"unknown_knob\":{\"nested\":[1,2,3]},\"checkpoint_distance\":1}}",
        "{\"mode\":\"Secondary\",\"generation\":null,\"secondary_conf\":{\"warm\":true},"
        "\"shard_number\":1,\"shard_count\":2,\"shard_stripe_size\":2048,"
        "\"tenant_conf\":{\"pitr_interval\":null,\"image_compression\":\"zstd(01)\"}}",
        "{\"mode\":\"Secondary\",\"generation\":null,\"secondary_conf\":{\"warm\":false},"
        "\"shard_number\":0,\"shard_count\":0,\"shard_stripe_size\":0,\"tenant_conf\":{}}",
        "{\"mode\":\"Detached\",\"generation\":null,\"secondary_conf\":null,"
        "\"shard_number\":0,\"shard_count\":0,\"shard_stripe_size\":0,\"tenant_conf\":{}}",
    };
    for (size_t i = 0; i < COUNT_OF(bodies); i++) {
        LocationConfig cfg;
        Err err = {0};
        if (!decode_text(bodies[i], &cfg, &err))
            fail_msg("case %zu rejected: %s", i, err.msg);
        char *out = echo(&cfg);
        if (strcmp(out, bodies[i]) != 0)
            fail_msg("case %zu echo\n  got  %s\n  want %s", i, out, bodies[i]);
        /* the echo decodes to an equal config, and a copy echoes the same */
        LocationConfig again, copy;
        assert_true(decode_text(out, &again, &err));
        assert_true(location_config_equal(&cfg, &again));
        location_config_copy(&copy, &cfg);
        location_config_finish(&cfg); /* the copy holds its own reference */
        char *out2 = echo(&copy);
        assert_string_equal(out2, bodies[i]);
        free(out2);
        free(out);
        location_config_finish(&again);
        location_config_finish(&copy);
    }
}

static void test_echo_canonical_order(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"{\"tenant_conf\":{\"b\":1,\"a\":2},\"generation\":5,\"mode\":\"AttachedSingle\"}",
         "{\"mode\":\"AttachedSingle\",\"generation\":5,\"secondary_conf\":null,"
         "\"shard_number\":0,\"shard_count\":0,\"shard_stripe_size\":0,"
         "\"tenant_conf\":{\"b\":1,\"a\":2}}"},
        {"{\"mode\":\"Secondary\",\"tenant_conf\":{}}",
         "{\"mode\":\"Secondary\",\"generation\":null,\"secondary_conf\":null,"
         "\"shard_number\":0,\"shard_count\":0,\"shard_stripe_size\":0,\"tenant_conf\":{}}"},
        {"{\"shard_stripe_size\":2048,\"shard_count\":4,\"shard_number\":2,"
         "\"secondary_conf\":{\"warm\":true},\"mode\":\"Secondary\",\"tenant_conf\":{}}",
         "{\"mode\":\"Secondary\",\"generation\":null,\"secondary_conf\":{\"warm\":true},"
         "\"shard_number\":2,\"shard_count\":4,\"shard_stripe_size\":2048,\"tenant_conf\":{}}"},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        LocationConfig cfg;
        Err err = {0};
        assert_true(decode_text(cases[i].in, &cfg, &err));
        char *out = echo(&cfg);
        if (strcmp(out, cases[i].out) != 0)
            fail_msg("case %zu echo\n  got  %s\n  want %s", i, out, cases[i].out);
        free(out);
        location_config_finish(&cfg);
    }
}

static void test_equal(void **state)
{
    static const struct {
        const char *a, *b;
        bool equal;
    } cases[] = {
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"tenant_conf\":{}}",
         "{\"tenant_conf\":{},\"generation\":1,\"mode\":\"AttachedSingle\"}", true},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"tenant_conf\":{}}",
         "{\"mode\":\"AttachedSingle\",\"generation\":2,\"tenant_conf\":{}}", false},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"tenant_conf\":{}}",
         "{\"mode\":\"AttachedMulti\",\"generation\":1,\"tenant_conf\":{}}", false},
        {"{\"mode\":\"AttachedSingle\",\"generation\":1,\"tenant_conf\":{\"gc_horizon\":1}}",
         "{\"mode\":\"AttachedSingle\",\"generation\":1,\"tenant_conf\":{\"gc_horizon\":2}}",
         false},
        {"{\"mode\":\"Secondary\",\"tenant_conf\":{}}",
         "{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":false},\"tenant_conf\":{}}", false},
        {"{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":true},\"tenant_conf\":{}}",
         "{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":false},\"tenant_conf\":{}}", false},
        {"{\"mode\":\"Secondary\",\"shard_stripe_size\":2048,\"tenant_conf\":{}}",
         "{\"mode\":\"Secondary\",\"tenant_conf\":{}}", false},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        LocationConfig a, b;
        Err err = {0};
        assert_true(decode_text(cases[i].a, &a, &err));
        assert_true(decode_text(cases[i].b, &b, &err));
        if (location_config_equal(&a, &b) != cases[i].equal)
            fail_msg("case %zu", i);
        location_config_finish(&a);
        location_config_finish(&b);
    }
}

static void test_built_in_code(void **state)
{
    LocationConfig cfg;
    location_config_init(&cfg);
    assert_int_equal(cfg.mode, LOCATION_MODE_DETACHED);
    assert_true(cfg.generation == GENERATION_NONE);
    assert_null(cfg.tenant_conf_json);
    cfg.mode = LOCATION_MODE_ATTACHED_SINGLE;
    cfg.generation = 3;
    cfg.shard_count = 2;
    cfg.shard_number = 1;
    cfg.shard_stripe_size = 2048;
    /* without a held object the echo renders tenant_conf from the struct */
    char *out = echo(&cfg);
    assert_string_equal(out,
                        "{\"mode\":\"AttachedSingle\",\"generation\":3,\"secondary_conf\":null,"
                        "\"shard_number\":1,\"shard_count\":2,\"shard_stripe_size\":2048,"
                        "\"tenant_conf\":{}}");
    free(out);

    TenantConfig tc;
    Err err = {0};
    json_t *j = test_json("{\"pitr_interval\":\"2d\"}");
    assert_true(tenant_config_decode(j, true, &tc, &err));
    json_decref(j);
    location_config_set_tenant_conf(&cfg, &tc);
    location_config_set_tenant_conf(&cfg, &tc); /* replacing releases the old object */
    out = echo(&cfg);
    assert_non_null(strstr(out, "\"tenant_conf\":{\"pitr_interval\":\"2d\"}"));
    LocationConfig back;
    assert_true(decode_text(out, &back, &err));
    free(out);
    assert_true(location_config_equal(&cfg, &back));
    assert_true(tenant_config_equal(&back.tenant_conf, &tc));
    location_config_finish(&back);
    location_config_finish(&cfg);
}

static void test_check_tsid(void **state)
{
    static const struct {
        const char *tsid;
        int number, count;
        bool ok;
    } cases[] = {
        {TENANT_HEX, 0, 0, true},          {TENANT_HEX "-0104", 1, 4, true},
        {TENANT_HEX "-0001", 0, 1, true},  {TENANT_HEX, 0, 1, false},
        {TENANT_HEX "-0104", 0, 4, false}, {TENANT_HEX "-0104", 1, 8, false},
        {TENANT_HEX "-0001", 0, 0, false},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        TenantShardId tsid;
        Err err = {0};
        assert_true(tsid_parse(cases[i].tsid, &tsid, &err));
        LocationConfig cfg;
        location_config_init(&cfg);
        cfg.shard_number = (ShardNumber)cases[i].number;
        cfg.shard_count = (ShardCount)cases[i].count;
        bool ok = location_config_check_tsid(&cfg, &tsid, &err);
        if (ok != cases[i].ok)
            fail_msg("case %zu", i);
        if (!ok) {
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            assert_non_null(strstr(err.msg, cases[i].tsid));
        }
    }
}

/* ---- the upsert rules ---- */

static void test_classify_change(void **state)
{
    static const char *const SINGLE5 =
        "{\"mode\":\"AttachedSingle\",\"generation\":5,\"tenant_conf\":{}}";
    static const struct {
        const char *old; /* NULL: no slot */
        const char *new_cfg;
        LocationChange want;
    } cases[] = {
        {NULL, "{\"mode\":\"AttachedSingle\",\"generation\":5,\"tenant_conf\":{}}",
         LOCATION_CHANGE_NEW},
        {NULL, "{\"mode\":\"Secondary\",\"tenant_conf\":{}}", LOCATION_CHANGE_NEW},
        {NULL, "{\"mode\":\"Detached\",\"tenant_conf\":{}}", LOCATION_CHANGE_DETACH},
        {"{\"mode\":\"Detached\",\"tenant_conf\":{}}",
         "{\"mode\":\"AttachedMulti\",\"generation\":1,\"tenant_conf\":{}}", LOCATION_CHANGE_NEW},
        /* attached -> attached */
        {SINGLE5, "{\"mode\":\"AttachedSingle\",\"generation\":5,\"tenant_conf\":{}}",
         LOCATION_CHANGE_SAME_GENERATION_SWAP},
        {SINGLE5, "{\"mode\":\"AttachedStale\",\"generation\":5,\"tenant_conf\":{}}",
         LOCATION_CHANGE_SAME_GENERATION_SWAP},
        {SINGLE5,
         "{\"mode\":\"AttachedMulti\",\"generation\":5,\"tenant_conf\":{\"pitr_interval\":\"1d\"}}",
         LOCATION_CHANGE_SAME_GENERATION_SWAP},
        {SINGLE5, "{\"mode\":\"AttachedSingle\",\"generation\":4,\"tenant_conf\":{}}",
         LOCATION_CHANGE_LOWER_GENERATION},
        {SINGLE5, "{\"mode\":\"AttachedStale\",\"generation\":1,\"tenant_conf\":{}}",
         LOCATION_CHANGE_LOWER_GENERATION},
        {SINGLE5, "{\"mode\":\"AttachedSingle\",\"generation\":6,\"tenant_conf\":{}}",
         LOCATION_CHANGE_RESTART},
        {SINGLE5, "{\"mode\":\"AttachedMulti\",\"generation\":4294967295,\"tenant_conf\":{}}",
         LOCATION_CHANGE_RESTART},
        /* equal generation but another stripe size: cannot swap in place */
        {SINGLE5,
         "{\"mode\":\"AttachedSingle\",\"generation\":5,\"shard_stripe_size\":2048,"
         "\"tenant_conf\":{}}",
         LOCATION_CHANGE_RESTART},
        /* attached <-> secondary */
        {SINGLE5, "{\"mode\":\"Secondary\",\"tenant_conf\":{}}", LOCATION_CHANGE_RESTART},
        {"{\"mode\":\"Secondary\",\"tenant_conf\":{}}",
         "{\"mode\":\"AttachedSingle\",\"generation\":1,\"tenant_conf\":{}}",
         LOCATION_CHANGE_RESTART},
        /* secondary -> secondary */
        {"{\"mode\":\"Secondary\",\"tenant_conf\":{}}",
         "{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":true},\"tenant_conf\":{}}",
         LOCATION_CHANGE_SECONDARY_UPDATE},
        {"{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":true},\"tenant_conf\":{}}",
         "{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":true},\"tenant_conf\":{}}",
         LOCATION_CHANGE_SECONDARY_UPDATE},
        /* detach from anything */
        {SINGLE5, "{\"mode\":\"Detached\",\"tenant_conf\":{}}", LOCATION_CHANGE_DETACH},
        {SINGLE5, "{\"mode\":\"Detached\",\"generation\":1,\"tenant_conf\":{}}",
         LOCATION_CHANGE_DETACH},
        {"{\"mode\":\"Secondary\",\"tenant_conf\":{}}",
         "{\"mode\":\"Detached\",\"tenant_conf\":{}}", LOCATION_CHANGE_DETACH},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        LocationConfig old, new_cfg;
        Err err = {0};
        location_config_init(&old);
        if (cases[i].old != NULL)
            assert_true(decode_text(cases[i].old, &old, &err));
        assert_true(decode_text(cases[i].new_cfg, &new_cfg, &err));
        LocationChange got = location_config_classify_change(cases[i].old ? &old : NULL, &new_cfg);
        if (got != cases[i].want)
            fail_msg("case %zu: got %s, want %s", i, location_change_name(got),
                     location_change_name(cases[i].want));
        location_config_finish(&old);
        location_config_finish(&new_cfg);
    }
    assert_string_equal(location_change_name(LOCATION_CHANGE_SAME_GENERATION_SWAP),
                        "same_generation_swap");
    assert_string_equal(location_change_name(LOCATION_CHANGE_COUNT), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mode_names),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_tenant_conf_decoded),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_echo_byte_identical),
        cmocka_unit_test(test_echo_canonical_order),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_built_in_code),
        cmocka_unit_test(test_check_tsid),
        cmocka_unit_test(test_classify_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
