/* test_pageserver_tenant_config.c: unit tests for shared/tenant_config.c: every field's valid
 * and invalid forms, strict vs lenient unknown fields, defaults and effective config, rendering,
 * PATCH semantics, the PUT/PATCH envelope and flattening the table into another request. */
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

#include "shared/tenant_config.h"
#include "tests/unit/json_util.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#define TENANT_HEX "1f359dd625e519a1a4e8d7509690f6fc"

/* parse: test JSON text into a value the test owns. */
static bool decode_text(const char *text, bool strict, TenantConfig *out, Err *err)
{
    json_t *v = test_json(text);
    bool ok = tenant_config_decode(v, strict, out, err);
    json_decref(v);
    return ok;
}

/* dump: compact text of v (consumed); the caller frees the string. */
static char *dump(json_t *v)
{
    char *s = json_dumps_compact(v);
    json_decref(v);
    return s;
}

static void assert_json_text(json_t *v, const char *want)
{
    char *got = dump(v);
    if (strcmp(got, want) != 0)
        fail_msg("got %s, want %s", got, want);
    free(got);
}

/* ---- every field: valid forms ---- */

static void test_valid_fields(void **state)
{
    static const struct {
        const char *body;
        const char *rendered; /* tenant_config_to_json of the decoded config */
    } cases[] = {
        {"{\"checkpoint_distance\": 1048576}", "{\"checkpoint_distance\":1048576}"},
        {"{\"checkpoint_distance\": \"1 MiB\"}", "{\"checkpoint_distance\":1048576}"},
        {"{\"checkpoint_distance\": \"256MiB\"}", "{\"checkpoint_distance\":268435456}"},
        {"{\"checkpoint_distance\": 0}", "{\"checkpoint_distance\":0}"},
        {"{\"checkpoint_timeout\": \"5m\"}", "{\"checkpoint_timeout\":\"5m\"}"},
        {"{\"checkpoint_timeout\": \"300 s\"}", "{\"checkpoint_timeout\":\"5m\"}"},
        {"{\"compaction_target_size\": \"128MiB\"}", "{\"compaction_target_size\":134217728}"},
        {"{\"compaction_target_size\": \"1 GB\"}", "{\"compaction_target_size\":1000000000}"},
        {"{\"compaction_period\": \"20 s\"}", "{\"compaction_period\":\"20s\"}"},
        {"{\"compaction_period\": \"1h 30m\"}", "{\"compaction_period\":\"1h 30m\"}"},
        {"{\"compaction_period\": \"0s\"}", "{\"compaction_period\":\"0s\"}"},
        {"{\"compaction_threshold\": 5}", "{\"compaction_threshold\":5}"},
        {"{\"compaction_threshold\": 4294967295}", "{\"compaction_threshold\":4294967295}"},
        {"{\"gc_horizon\": \"64MiB\"}", "{\"gc_horizon\":67108864}"},
        {"{\"gc_horizon\": 0}", "{\"gc_horizon\":0}"},
        {"{\"gc_period\": \"2 hours\"}", "{\"gc_period\":\"2h\"}"},
        {"{\"image_creation_threshold\": 0}", "{\"image_creation_threshold\":0}"},
        {"{\"image_creation_threshold\": 3}", "{\"image_creation_threshold\":3}"},
        {"{\"pitr_interval\": \"7 days\"}", "{\"pitr_interval\":\"7d\"}"},
        {"{\"pitr_interval\": \"1w\"}", "{\"pitr_interval\":\"7d\"}"},
        {"{\"pitr_interval\": \"0s\"}", "{\"pitr_interval\":\"0s\"}"},
        {"{\"walreceiver_connect_timeout\": \"2s\"}", "{\"walreceiver_connect_timeout\":\"2s\"}"},
        {"{\"lagging_wal_timeout\": \"1500ms\"}", "{\"lagging_wal_timeout\":\"1s 500ms\"}"},
        {"{\"max_lsn_wal_lag\": 1000}", "{\"max_lsn_wal_lag\":1000}"},
        {"{\"max_lsn_wal_lag\": 10737418240}", "{\"max_lsn_wal_lag\":10737418240}"},
        {"{\"heatmap_period\": \"60s\"}", "{\"heatmap_period\":\"1m\"}"},
        {"{\"heatmap_period\": \"0s\"}", "{\"heatmap_period\":\"0s\"}"},
        {"{\"lsn_lease_length\": \"10m\"}", "{\"lsn_lease_length\":\"10m\"}"},
        {"{\"lsn_lease_length_for_ts\": \"1 second\"}", "{\"lsn_lease_length_for_ts\":\"1s\"}"},
        {"{\"image_compression\": \"disabled\"}", "{\"image_compression\":\"disabled\"}"},
        {"{\"image_compression\": \"zstd\"}", "{\"image_compression\":\"zstd\"}"},
        {"{\"image_compression\": \"zstd(3)\"}", "{\"image_compression\":\"zstd(3)\"}"},
        {"{\"image_compression\": \"zstd(-5)\"}", "{\"image_compression\":\"zstd(-5)\"}"},
        {"{\"image_compression\": \"zstd(22)\"}", "{\"image_compression\":\"zstd(22)\"}"},
        {"{\"image_compression\": \"zstd(-128)\"}", "{\"image_compression\":\"zstd(-128)\"}"},
        {"{\"image_compression\": \"zstd(007)\"}", "{\"image_compression\":\"zstd(7)\"}"},
        {"{\"image_layer_creation_check_threshold\": 255}",
         "{\"image_layer_creation_check_threshold\":255}"},
        {"{\"min_resident_size_override\": \"1GiB\"}",
         "{\"min_resident_size_override\":1073741824}"},
        {"{\"evictions_low_residence_duration_metric_threshold\": \"24h\"}",
         "{\"evictions_low_residence_duration_metric_threshold\":\"1d\"}"},
        {"{\"timeline_offloading\": false}", "{\"timeline_offloading\":false}"},
        /* null is "the default": no override */
        {"{\"pitr_interval\": null}", "{}"},
        {"{\"max_lsn_wal_lag\": null, \"image_compression\": null}", "{}"},
        {"{}", "{}"},
        /* rendering follows the table order, not the body's */
        {"{\"pitr_interval\": \"1d\", \"checkpoint_distance\": 1}",
         "{\"checkpoint_distance\":1,\"pitr_interval\":\"1d\"}"},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        for (int strict = 0; strict <= 1; strict++) {
            TenantConfig cfg;
            Err err = {0};
            if (!decode_text(cases[i].body, strict, &cfg, &err))
                fail_msg("case %zu %s rejected: %s", i, cases[i].body, err.msg);
            assert_json_text(tenant_config_to_json(&cfg), cases[i].rendered);
        }
    }
}

/* ---- every field: invalid forms (strict and lenient alike: known fields are typed) ---- */

static void test_invalid_fields(void **state)
{
    static const struct {
        const char *body;
        const char *msg; /* substring of the error */
    } cases[] = {
        {"{\"checkpoint_distance\": -1}", "\"checkpoint_distance\""},
        {"{\"checkpoint_distance\": 1.5}", "\"checkpoint_distance\""},
        {"{\"checkpoint_distance\": \"lots\"}", "\"checkpoint_distance\""},
        {"{\"checkpoint_distance\": true}", "\"checkpoint_distance\""},
        {"{\"checkpoint_distance\": \"9223372036854775808\"}", "too large"},
        {"{\"checkpoint_timeout\": 600}", "\"checkpoint_timeout\""},
        {"{\"checkpoint_timeout\": \"10\"}", "\"checkpoint_timeout\""},
        {"{\"checkpoint_timeout\": \"10 parsecs\"}", "\"checkpoint_timeout\""},
        {"{\"checkpoint_timeout\": \"\"}", "\"checkpoint_timeout\""},
        {"{\"compaction_target_size\": [1]}", "\"compaction_target_size\""},
        {"{\"compaction_period\": \"-1s\"}", "\"compaction_period\""},
        {"{\"compaction_threshold\": -1}", "\"compaction_threshold\""},
        {"{\"compaction_threshold\": \"5\"}", "\"compaction_threshold\""},
        {"{\"compaction_threshold\": 4294967296}", "\"compaction_threshold\""},
        {"{\"gc_horizon\": \"64 XB\"}", "\"gc_horizon\""},
        {"{\"gc_period\": {}}", "\"gc_period\""},
        {"{\"image_creation_threshold\": 1.0}", "\"image_creation_threshold\""},
        {"{\"pitr_interval\": 7}", "\"pitr_interval\""},
        {"{\"pitr_interval\": \"7 dayz\"}", "\"pitr_interval\""},
        {"{\"walreceiver_connect_timeout\": false}", "\"walreceiver_connect_timeout\""},
        {"{\"lagging_wal_timeout\": \"s\"}", "\"lagging_wal_timeout\""},
        {"{\"max_lsn_wal_lag\": \"1000\"}", "\"max_lsn_wal_lag\""},
        {"{\"max_lsn_wal_lag\": 0}", "non-zero"},
        {"{\"max_lsn_wal_lag\": -5}", "\"max_lsn_wal_lag\""},
        {"{\"max_lsn_wal_lag\": 1e3}", "\"max_lsn_wal_lag\""},
        {"{\"heatmap_period\": 60}", "\"heatmap_period\""},
        {"{\"lsn_lease_length\": \"10 m x\"}", "\"lsn_lease_length\""},
        {"{\"lsn_lease_length_for_ts\": null, \"lsn_lease_length\": []}", "\"lsn_lease_length\""},
        {"{\"image_compression\": \"lz4\"}", "\"image_compression\""},
        {"{\"image_compression\": \"zstd()\"}", "\"image_compression\""},
        {"{\"image_compression\": \"zstd(23)\"}", "[-128, 22]"},
        {"{\"image_compression\": \"zstd(-129)\"}", "[-128, 22]"},
        {"{\"image_compression\": \"zstd(1\"}", "\"image_compression\""},
        {"{\"image_compression\": \"zstd( 1)\"}", "\"image_compression\""},
        {"{\"image_compression\": \"ZSTD\"}", "\"image_compression\""},
        {"{\"image_compression\": \"zstd(1)x\"}", "\"image_compression\""},
        {"{\"image_compression\": 1}", "\"image_compression\""},
        {"{\"image_compression\": \"zstd(1111111111111111111)\"}", "\"image_compression\""},
        {"{\"image_layer_creation_check_threshold\": 256}",
         "\"image_layer_creation_check_threshold\""},
        {"{\"min_resident_size_override\": -1}", "\"min_resident_size_override\""},
        {"{\"evictions_low_residence_duration_metric_threshold\": 1}",
         "\"evictions_low_residence_duration_metric_threshold\""},
        {"{\"timeline_offloading\": \"true\"}", "\"timeline_offloading\""},
        {"{\"timeline_offloading\": 1}", "\"timeline_offloading\""},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        for (int strict = 0; strict <= 1; strict++) {
            TenantConfig cfg;
            tenant_config_init(&cfg);
            cfg.gc_horizon = 77;
            cfg.gc_horizon_p = JSON_PRESENCE_SET;
            TenantConfig before = cfg;
            Err err = {0};
            if (decode_text(cases[i].body, strict, &cfg, &err))
                fail_msg("case %zu %s accepted", i, cases[i].body);
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            if (strstr(err.msg, cases[i].msg) == NULL)
                fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, cases[i].msg);
            /* the output is written only on success */
            assert_memory_equal(&cfg, &before, sizeof(cfg));
        }
    }
}

static void test_not_an_object(void **state)
{
    static const char *const bodies[] = {"[]", "null", "1", "\"pitr_interval\""};
    for (size_t i = 0; i < COUNT_OF(bodies); i++) {
        TenantConfig cfg;
        Err err = {0};
        assert_false(decode_text(bodies[i], true, &cfg, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_false(decode_text(bodies[i], false, &cfg, &err));
    }
}

/* ---- unknown fields: strict rejects naming them, lenient ignores and logs ---- */

static char *read_whole_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_unknown_fields(void **state)
{
    const char *body = "{\"pitr_intervall\": \"30d\", \"gc_horizon\": 1024}";
    TenantConfig cfg;
    Err err = {0};

    assert_false(decode_text(body, true, &cfg, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_string_equal(err.msg, "unknown field \"pitr_intervall\"");
    assert_int_equal(err_http_status(err.code), 400);

    char path[] = "/tmp/test_pageserver_tenant_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_true(log_init("test_tenant_config", LOG_DEBUG, path, &err));
    assert_true(decode_text(body, false, &cfg, &err));
    assert_true(log_init("test_tenant_config", LOG_INFO, NULL, &err));
    char *log = read_whole_file(path);
    unlink(path);
    assert_non_null(strstr(log, "pitr_intervall"));
    free(log);

    /* the misspelt field was ignored: pitr_interval keeps its default, gc_horizon is set */
    assert_int_equal(cfg.pitr_interval_p, JSON_PRESENCE_ABSENT);
    assert_int_equal(cfg.gc_horizon_p, JSON_PRESENCE_SET);
    assert_true(cfg.gc_horizon == 1024);
    TenantConfig eff;
    tenant_config_effective(&cfg, &eff);
    assert_true(eff.pitr_interval_ms == TENANT_CONFIG_DEFAULT_PITR_INTERVAL_MS);
    assert_json_text(tenant_config_to_json(&cfg), "{\"gc_horizon\":1024}");
}

/* ---- defaults and the effective config ---- */

static void test_defaults(void **state)
{
    const TenantConfig *d = tenant_config_defaults();
    assert_true(d->checkpoint_distance == 256ull * 1024 * 1024);
    assert_true(d->checkpoint_timeout_ms == 10 * 60 * 1000);
    assert_true(d->compaction_target_size == 128ull * 1024 * 1024);
    assert_true(d->compaction_period_ms == 20 * 1000);
    assert_int_equal(d->compaction_threshold, 10);
    assert_true(d->gc_horizon == 64ull * 1024 * 1024);
    assert_true(d->gc_period_ms == 60 * 60 * 1000);
    assert_int_equal(d->image_creation_threshold, 3);
    assert_true(d->pitr_interval_ms == 7ull * 24 * 60 * 60 * 1000);
    assert_true(d->walreceiver_connect_timeout_ms == 10 * 1000);
    assert_true(d->lagging_wal_timeout_ms == 10 * 1000);
    assert_true(d->max_lsn_wal_lag == 10ull * 1024 * 1024 * 1024);
    assert_true(d->heatmap_period_ms == 0);
    assert_true(d->lsn_lease_length_ms == 10 * 60 * 1000);
    assert_string_equal(d->image_compression, "zstd(1)");
    assert_int_equal(d->min_resident_size_override_p, JSON_PRESENCE_ABSENT);

    TenantConfig empty;
    tenant_config_init(&empty);
    assert_json_text(tenant_config_to_json(&empty), "{}");
    assert_json_text(
        tenant_config_effective_json(&empty),
        "{\"checkpoint_distance\":268435456,\"checkpoint_timeout\":\"10m\","
        "\"compaction_target_size\":134217728,\"compaction_period\":\"20s\","
        "\"compaction_threshold\":10,\"gc_horizon\":67108864,\"gc_period\":\"1h\","
        "\"image_creation_threshold\":3,\"pitr_interval\":\"7d\","
        "\"walreceiver_connect_timeout\":\"10s\",\"lagging_wal_timeout\":\"10s\","
        "\"max_lsn_wal_lag\":10737418240,\"heatmap_period\":\"0s\",\"lsn_lease_length\":\"10m\","
        "\"lsn_lease_length_for_ts\":\"1s\",\"image_compression\":\"zstd(1)\","
        "\"image_layer_creation_check_threshold\":2,\"min_resident_size_override\":null,"
        "\"evictions_low_residence_duration_metric_threshold\":\"1d\","
        "\"timeline_offloading\":true}");

    /* every field of the table appears in the effective config, and only those */
    json_t *eff = tenant_config_effective_json(&empty);
    assert_int_equal(json_object_size(eff), tenant_config_field_count());
    for (size_t i = 0; i < tenant_config_field_count(); i++)
        assert_non_null(json_object_get(eff, tenant_config_field_name(i)));
    assert_null(tenant_config_field_name(tenant_config_field_count()));
    json_decref(eff);
}

static void test_effective_overlays(void **state)
{
    TenantConfig cfg;
    Err err = {0};
    assert_true(decode_text("{\"pitr_interval\": \"1d\", \"heatmap_period\": \"60s\", "
                            "\"min_resident_size_override\": 5, \"image_compression\": "
                            "\"disabled\"}",
                            true, &cfg, &err));
    TenantConfig eff;
    tenant_config_effective(&cfg, &eff);
    assert_true(eff.pitr_interval_ms == 24ull * 60 * 60 * 1000);
    assert_true(eff.heatmap_period_ms == 60000);
    assert_true(eff.gc_horizon == TENANT_CONFIG_DEFAULT_GC_HORIZON);
    assert_int_equal(eff.gc_horizon_p, JSON_PRESENCE_SET);
    assert_true(eff.min_resident_size_override == 5);

    json_t *j = tenant_config_effective_json(&cfg);
    assert_string_equal(json_string_value(json_object_get(j, "pitr_interval")), "1d");
    assert_string_equal(json_string_value(json_object_get(j, "heatmap_period")), "1m");
    assert_string_equal(json_string_value(json_object_get(j, "checkpoint_timeout")), "10m");
    assert_string_equal(json_string_value(json_object_get(j, "image_compression")), "disabled");
    assert_int_equal(json_integer_value(json_object_get(j, "min_resident_size_override")), 5);
    assert_int_equal(json_object_size(j), tenant_config_field_count());
    json_decref(j);

    ImageCompression c = tenant_config_image_compression(&cfg);
    assert_int_equal(c.algo, IMAGE_COMPRESSION_DISABLED);
    TenantConfig empty;
    tenant_config_init(&empty);
    c = tenant_config_image_compression(&empty);
    assert_int_equal(c.algo, IMAGE_COMPRESSION_ZSTD);
    assert_true(c.has_level);
    assert_int_equal(c.level, 1);
}

/* ---- round trip of a config with every field set ---- */

static const char FULL_CONFIG[] =
    "{\"checkpoint_distance\":1,\"checkpoint_timeout\":\"1s\",\"compaction_target_size\":2,"
    "\"compaction_period\":\"2s\",\"compaction_threshold\":3,\"gc_horizon\":4,"
    "\"gc_period\":\"4s\",\"image_creation_threshold\":5,\"pitr_interval\":\"5m\","
    "\"walreceiver_connect_timeout\":\"6s\",\"lagging_wal_timeout\":\"7s\","
    "\"max_lsn_wal_lag\":8,\"heatmap_period\":\"9s\",\"lsn_lease_length\":\"10s\","
    "\"lsn_lease_length_for_ts\":\"11ms\",\"image_compression\":\"zstd(12)\","
    "\"image_layer_creation_check_threshold\":13,\"min_resident_size_override\":14,"
    "\"evictions_low_residence_duration_metric_threshold\":\"15h\","
    "\"timeline_offloading\":false}";

static void test_round_trip(void **state)
{
    TenantConfig a, b;
    Err err = {0};
    assert_true(decode_text(FULL_CONFIG, true, &a, &err));
    char *text = dump(tenant_config_to_json(&a));
    assert_string_equal(text, FULL_CONFIG);
    /* the full override set is also the effective config */
    assert_json_text(tenant_config_effective_json(&a), FULL_CONFIG);
    assert_true(decode_text(text, true, &b, &err));
    free(text);
    assert_true(tenant_config_equal(&a, &b));
    json_t *j = test_json(FULL_CONFIG);
    assert_int_equal(json_object_size(j), tenant_config_field_count());
    json_decref(j);

    /* human spellings come back in canonical form and still decode to the same values */
    assert_true(decode_text("{\"pitr_interval\": \"90 minutes\", \"gc_horizon\": \"1 KiB\"}", true,
                            &a, &err));
    text = dump(tenant_config_to_json(&a));
    assert_string_equal(text, "{\"gc_horizon\":1024,\"pitr_interval\":\"1h 30m\"}");
    assert_true(decode_text(text, true, &b, &err));
    free(text);
    assert_true(tenant_config_equal(&a, &b));
}

static void test_equal(void **state)
{
    static const struct {
        const char *a, *b;
        bool equal;
    } cases[] = {
        {"{}", "{}", true},
        {"{}", "{\"pitr_interval\": null}", true},
        {"{\"pitr_interval\": \"1h\"}", "{\"pitr_interval\": \"60m\"}", true},
        {"{\"pitr_interval\": \"1h\"}", "{\"pitr_interval\": \"61m\"}", false},
        {"{\"pitr_interval\": \"1h\"}", "{}", false},
        /* an override equal to the default is still an override */
        {"{\"pitr_interval\": \"7d\"}", "{}", false},
        {"{\"image_compression\": \"zstd(1)\"}", "{\"image_compression\": \"zstd(01)\"}", true},
        {"{\"image_compression\": \"zstd\"}", "{\"image_compression\": \"zstd(1)\"}", false},
        {"{\"gc_horizon\": 1024, \"timeline_offloading\": true}",
         "{\"timeline_offloading\": true, \"gc_horizon\": \"1KiB\"}", true},
        {"{\"timeline_offloading\": true}", "{\"timeline_offloading\": false}", false},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        TenantConfig a, b;
        Err err = {0};
        assert_true(decode_text(cases[i].a, true, &a, &err));
        assert_true(decode_text(cases[i].b, true, &b, &err));
        if (tenant_config_equal(&a, &b) != cases[i].equal)
            fail_msg("case %zu: %s vs %s", i, cases[i].a, cases[i].b);
        assert_true(tenant_config_equal(&b, &a) == cases[i].equal);
    }
}

/* ---- PATCH: absent = keep, null = remove, value = set ---- */

static void test_patch(void **state)
{
    TenantConfig cfg;
    Err err = {0};
    assert_true(decode_text("{\"pitr_interval\": \"1d\", \"gc_horizon\": 100, "
                            "\"compaction_threshold\": 5}",
                            true, &cfg, &err));

    json_t *patch = test_json("{\"pitr_interval\": null, \"gc_horizon\": 200, "
                              "\"image_compression\": \"zstd(2)\"}");
    assert_true(tenant_config_patch(&cfg, patch, &err));
    json_decref(patch);
    assert_json_text(tenant_config_to_json(&cfg), "{\"compaction_threshold\":5,\"gc_horizon\":200,"
                                                  "\"image_compression\":\"zstd(2)\"}");

    /* removing an override that is not there is fine; an empty patch changes nothing */
    patch = test_json("{\"heatmap_period\": null}");
    assert_true(tenant_config_patch(&cfg, patch, &err));
    json_decref(patch);
    patch = test_json("{}");
    assert_true(tenant_config_patch(&cfg, patch, &err));
    json_decref(patch);
    assert_json_text(tenant_config_to_json(&cfg), "{\"compaction_threshold\":5,\"gc_horizon\":200,"
                                                  "\"image_compression\":\"zstd(2)\"}");

    /* a bad patch leaves the config untouched, even when some of its fields were valid */
    static const char *const bad[] = {
        "{\"gc_horizon\": 1, \"max_lsn_wal_lag\": \"1000\"}",
        "{\"gc_horizon\": 1, \"pitr_intervall\": null}",
        "{\"gc_horizon\": 1, \"image_compression\": \"brotli\"}",
        "{\"tenant_id\": \"" TENANT_HEX "\"}",
        "[]",
    };
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        TenantConfig before = cfg;
        patch = test_json(bad[i]);
        assert_false(tenant_config_patch(&cfg, patch, &err));
        json_decref(patch);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_memory_equal(&cfg, &before, sizeof(cfg));
    }

    /* removing every override returns to the defaults */
    patch = test_json("{\"compaction_threshold\": null, \"gc_horizon\": null, "
                      "\"image_compression\": null}");
    assert_true(tenant_config_patch(&cfg, patch, &err));
    json_decref(patch);
    TenantConfig empty;
    tenant_config_init(&empty);
    assert_true(tenant_config_equal(&cfg, &empty));
}

/* ---- the PUT / PATCH envelope shares the table ---- */

static void test_request_envelope(void **state)
{
    TenantConfigRequest req;
    Err err = {0};
    json_t *body = test_json("{\"tenant_id\": \"" TENANT_HEX "\", \"pitr_interval\": \"2d\", "
                             "\"gc_horizon\": null, \"image_compression\": \"zstd(05)\"}");
    assert_true(tenant_config_request_decode(body, &req, &err));
    json_decref(body);
    char id[ID_STR_SIZE];
    tenant_id_format(&req.tenant_id, id);
    assert_string_equal(id, TENANT_HEX);
    assert_int_equal(req.config.pitr_interval_p, JSON_PRESENCE_SET);
    assert_int_equal(req.config.gc_horizon_p, JSON_PRESENCE_NULL); /* kept for PATCH */
    assert_string_equal(req.config.image_compression, "zstd(5)");  /* canonical */

    /* PUT: the body replaces the config */
    TenantConfig put;
    tenant_config_init(&put);
    tenant_config_apply_patch(&put, &req.config);
    assert_json_text(tenant_config_to_json(&put),
                     "{\"pitr_interval\":\"2d\",\"image_compression\":\"zstd(5)\"}");

    /* PATCH: the same body applied to an existing config removes gc_horizon */
    TenantConfig existing;
    assert_true(decode_text("{\"gc_horizon\": 5, \"gc_period\": \"1m\"}", true, &existing, &err));
    tenant_config_apply_patch(&existing, &req.config);
    assert_json_text(tenant_config_to_json(&existing),
                     "{\"gc_period\":\"1m\",\"pitr_interval\":\"2d\","
                     "\"image_compression\":\"zstd(5)\"}");

    static const struct {
        const char *body;
        const char *msg;
    } bad[] = {
        {"{\"pitr_interval\": \"2d\"}", "missing field \"tenant_id\""},
        {"{\"tenant_id\": null}", "\"tenant_id\""},
        {"{\"tenant_id\": \"xyz\"}", "\"tenant_id\""},
        {"{\"tenant_id\": \"" TENANT_HEX "\", \"pitr_intervall\": \"2d\"}",
         "unknown field \"pitr_intervall\""},
        {"{\"tenant_id\": \"" TENANT_HEX "\", \"max_lsn_wal_lag\": \"1000\"}",
         "\"max_lsn_wal_lag\""},
        {"{\"tenant_id\": \"" TENANT_HEX "\", \"image_compression\": \"zstd(99)\"}",
         "\"image_compression\""},
    };
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        body = test_json(bad[i].body);
        assert_false(tenant_config_request_decode(body, &req, &err));
        json_decref(body);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        if (strstr(err.msg, bad[i].msg) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, bad[i].msg);
    }
}

/* ---- another request flattening the table (storcon's tenant create) ---- */

typedef struct CreateLike {
    TenantId new_tenant_id;
    uint8_t count;
    TenantConfig config;
} CreateLike;

static const JsonField CREATE_FIELDS[] = {
    JSON_FIELD(CreateLike, new_tenant_id, "new_tenant_id", JSON_FIELD_TENANT_ID, JSON_REQUIRED),
    JSON_FIELD(CreateLike, count, "count", JSON_FIELD_U8, 0),
    JSON_FLATTEN(CreateLike, config, &TENANT_CONFIG_SPEC),
};
static const JsonSpec CREATE_SPEC = JSON_SPEC("create", CREATE_FIELDS, JSON_UNKNOWN_REJECT);

static void test_flatten_into_request(void **state)
{
    CreateLike c;
    memset(&c, 0, sizeof(c));
    Err err = {0};
    json_t *body = test_json("{\"new_tenant_id\": \"" TENANT_HEX "\", \"count\": 4, "
                             "\"pitr_interval\": \"3d\", \"image_compression\": \"zstd\"}");
    assert_true(json_decode(body, &CREATE_SPEC, &c, &err));
    json_decref(body);
    assert_true(tenant_config_validate(&c.config, &err));
    assert_int_equal(c.count, 4);
    assert_true(c.config.pitr_interval_ms == 3ull * 24 * 3600 * 1000);

    body = test_json("{\"new_tenant_id\": \"" TENANT_HEX "\", \"pitr_intervall\": \"3d\"}");
    assert_false(json_decode(body, &CREATE_SPEC, &c, &err));
    json_decref(body);
    assert_string_equal(err.msg, "unknown field \"pitr_intervall\"");

    /* what the typed decode cannot see, tenant_config_validate does */
    body = test_json("{\"new_tenant_id\": \"" TENANT_HEX "\", \"image_compression\": \"snappy\"}");
    assert_true(json_decode(body, &CREATE_SPEC, &c, &err));
    json_decref(body);
    assert_false(tenant_config_validate(&c.config, &err));
    assert_non_null(strstr(err.msg, "image_compression"));
}

/* ---- image_compression parsing ---- */

static void test_image_compression_parse(void **state)
{
    static const struct {
        const char *in;
        bool ok;
        ImageCompressionAlgo algo;
        bool has_level;
        int level;
        const char *canonical;
    } cases[] = {
        {"disabled", true, IMAGE_COMPRESSION_DISABLED, false, 0, "disabled"},
        {"zstd", true, IMAGE_COMPRESSION_ZSTD, false, 0, "zstd"},
        {"zstd(0)", true, IMAGE_COMPRESSION_ZSTD, true, 0, "zstd(0)"},
        {"zstd(1)", true, IMAGE_COMPRESSION_ZSTD, true, 1, "zstd(1)"},
        {"zstd(-7)", true, IMAGE_COMPRESSION_ZSTD, true, -7, "zstd(-7)"},
        {"zstd(22)", true, IMAGE_COMPRESSION_ZSTD, true, 22, "zstd(22)"},
        {"zstd(-128)", true, IMAGE_COMPRESSION_ZSTD, true, -128, "zstd(-128)"},
        {"", false, 0, false, 0, NULL},
        {"Disabled", false, 0, false, 0, NULL},
        {"zstd(", false, 0, false, 0, NULL},
        {"zstd)", false, 0, false, 0, NULL},
        {"zstd()", false, 0, false, 0, NULL},
        {"zstd(+1)", false, 0, false, 0, NULL},
        {"zstd(1.5)", false, 0, false, 0, NULL},
        {"zstd(23)", false, 0, false, 0, NULL},
        {"zstd(-129)", false, 0, false, 0, NULL},
        {"zstd(1)(2)", false, 0, false, 0, NULL},
        {"lz4", false, 0, false, 0, NULL},
        {"zstd 1", false, 0, false, 0, NULL},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        ImageCompression c = {IMAGE_COMPRESSION_ALGO_COUNT, false, 99};
        Err err = {0};
        bool ok = tenant_config_image_compression_parse(cases[i].in, &c, &err);
        if (ok != cases[i].ok)
            fail_msg("case %zu \"%s\": ok %d", i, cases[i].in, ok);
        if (!ok) {
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            continue;
        }
        assert_int_equal(c.algo, cases[i].algo);
        assert_int_equal(c.has_level, cases[i].has_level);
        if (c.has_level)
            assert_int_equal(c.level, cases[i].level);
        char out[TENANT_CONFIG_COMPRESSION_SIZE];
        tenant_config_image_compression_format(c, out);
        assert_string_equal(out, cases[i].canonical);
    }
}

static void test_spec_is_well_formed(void **state)
{
    Err err = {0};
    assert_true(json_spec_check(&TENANT_CONFIG_SPEC, &err));
    assert_true(json_spec_check(&TENANT_CONFIG_LENIENT_SPEC, &err));
    assert_int_equal(TENANT_CONFIG_SPEC.n_fields, tenant_config_field_count());
    /* the spec's minimum field list */
    static const char *const required[] = {
        "checkpoint_distance",
        "checkpoint_timeout",
        "compaction_target_size",
        "compaction_period",
        "compaction_threshold",
        "gc_horizon",
        "gc_period",
        "image_creation_threshold",
        "pitr_interval",
        "walreceiver_connect_timeout",
        "lagging_wal_timeout",
        "max_lsn_wal_lag",
        "heatmap_period",
        "lsn_lease_length",
        "image_compression",
    };
    for (size_t i = 0; i < COUNT_OF(required); i++) {
        bool found = false;
        for (size_t j = 0; j < tenant_config_field_count(); j++)
            found = found || strcmp(tenant_config_field_name(j), required[i]) == 0;
        if (!found)
            fail_msg("field %s missing", required[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_fields),
        cmocka_unit_test(test_invalid_fields),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_effective_overlays),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_patch),
        cmocka_unit_test(test_request_envelope),
        cmocka_unit_test(test_flatten_into_request),
        cmocka_unit_test(test_image_compression_parse),
        cmocka_unit_test(test_spec_is_well_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
