/* test_pageserver_import.c: unit tests for the parsers of pageserver/import.c: the create
 * request's import_pgdata (strict), the index's import_pgdata forms (InProgress -> Done round
 * trip), storcon's ShardImportStatus and the source's status/pgdata, plus the create request's
 * mode exclusion (timeline_create_params_decode). */
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
#include "shared/json.h"

#include "pageserver/import.h"
#include "pageserver/index_part.h"
#include "pageserver/timeline.h"
#include "tests/unit/json_util.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_spec_decode_good(void **state)
{
    (void)state;
    Err err = {0};
    ImportPgdataSpec spec;
    json_t *v = test_json("{\"idempotency_key\": \"k1\", \"location\": {\"LocalFs\": {\"path\": "
                          "\"/src/dir\"}}}");
    assert_true(import_pgdata_spec_decode(v, &spec, &err));
    assert_string_equal(spec.idempotency_key, "k1");
    assert_int_equal(spec.location.kind, IMPORT_LOCATION_LOCAL_FS);
    assert_string_equal(spec.location.path, "/src/dir");
    json_t *loc = import_location_json(&spec.location);
    assert_true(json_equal(loc, json_object_get(v, "location")));
    json_decref(loc);
    json_decref(v);

    v = test_json("{\"location\": {\"AwsS3\": {\"region\": \"eu\", \"bucket\": \"b\", \"key\": "
                  "\"p/x\"}}, \"idempotency_key\": \"k2\"}");
    assert_true(import_pgdata_spec_decode(v, &spec, &err));
    assert_int_equal(spec.location.kind, IMPORT_LOCATION_AWS_S3);
    assert_string_equal(spec.location.region, "eu");
    assert_string_equal(spec.location.bucket, "b");
    assert_string_equal(spec.location.key, "p/x");
    loc = import_location_json(&spec.location);
    assert_true(json_equal(loc, json_object_get(v, "location")));
    json_decref(loc);
    json_decref(v);
}

static void test_spec_decode_bad(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *msg_part;
    } cases[] = {
        {"null", "expected an object"},
        {"\"LocalFs\"", "expected an object"},
        {"{}", "missing field"},
        {"{\"idempotency_key\": \"k\"}", "location"},
        {"{\"location\": {\"LocalFs\": {\"path\": \"/x\"}}}", "idempotency_key"},
        {"{\"idempotency_key\": 5, \"location\": {\"LocalFs\": {\"path\": \"/x\"}}}",
         "idempotency_key"},
        {"{\"idempotency_key\": \"\", \"location\": {\"LocalFs\": {\"path\": \"/x\"}}}",
         "must not be empty"},
        {"{\"idempotency_key\": \"k\", \"location\": {}}", "exactly one"},
        {"{\"idempotency_key\": \"k\", \"location\": {\"LocalFs\": {\"path\": \"/x\"}, "
         "\"AwsS3\": {\"region\": \"r\", \"bucket\": \"b\", \"key\": \"k\"}}}",
         "exactly one"},
        {"{\"idempotency_key\": \"k\", \"location\": {\"LocalFs\": {\"path\": \"rel\"}}}",
         "absolute"},
        {"{\"idempotency_key\": \"k\", \"location\": {\"LocalFs\": {}}}", "path"},
        {"{\"idempotency_key\": \"k\", \"location\": {\"LocalFs\": {\"path\": \"/x\", \"y\": 1}}}",
         "unknown field"},
        {"{\"idempotency_key\": \"k\", \"location\": {\"Local\": {\"path\": \"/x\"}}}",
         "unknown field"},
        {"{\"idempotency_key\": \"k\", \"location\": {\"AwsS3\": {\"region\": \"r\"}}}", "bucket"},
        {"{\"idempotency_key\": \"k\", \"location\": {\"LocalFs\": {\"path\": \"/x\"}}, \"z\": 1}",
         "unknown field"},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        Err err = {0};
        ImportPgdataSpec spec;
        json_t *v = test_json(cases[i].json);
        if (import_pgdata_spec_decode(v, &spec, &err))
            fail_msg("accepted %s", cases[i].json);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        if (strstr(err.msg, cases[i].msg_part) == NULL)
            fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].json, err.msg, cases[i].msg_part);
        json_decref(v);
    }
}

static void test_create_request_modes(void **state)
{
    (void)state;
    const char *tl = "de200bd42b49cc1814412c7e592dd6e9";
    char text[1024];
    TimelineCreateParams p;
    Err err = {0};
    snprintf(text, sizeof(text),
             "{\"new_timeline_id\": \"%s\", \"import_pgdata\": {\"idempotency_key\": \"k\", "
             "\"location\": {\"LocalFs\": {\"path\": \"/x\"}}}}",
             tl);
    json_t *v = test_json(text);
    assert_true(timeline_create_params_decode(v, &p, &err));
    assert_true(p.import);
    assert_false(p.branch);
    assert_string_equal(p.import_spec.idempotency_key, "k");
    json_decref(v);

    static const char *const bad[] = {
        "\"import_pgdata\": null",
        "\"import_pgdata\": \"yes\"",
        "\"import_pgdata\": {}",
        "\"pg_version\": 15, \"import_pgdata\": {\"idempotency_key\": \"k\", \"location\": "
        "{\"LocalFs\": {\"path\": \"/x\"}}}",
        "\"ancestor_timeline_id\": \"aabbccddeeff00112233445566778899\", \"import_pgdata\": "
        "{\"idempotency_key\": \"k\", \"location\": {\"LocalFs\": {\"path\": \"/x\"}}}",
    };
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        snprintf(text, sizeof(text), "{\"new_timeline_id\": \"%s\", %s}", tl, bad[i]);
        v = test_json(text);
        err_clear(&err);
        if (timeline_create_params_decode(v, &p, &err))
            fail_msg("accepted %s", text);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        json_decref(v);
    }
}

static void test_index_forms(void **state)
{
    (void)state;
    Err err = {0};
    ImportPgdataSpec spec, back;
    json_t *v = test_json(
        "{\"idempotency_key\": \"key\", \"location\": {\"LocalFs\": {\"path\": \"/p\"}}}");
    assert_true(import_pgdata_spec_decode(v, &spec, &err));
    json_decref(v);

    IndexPart *index = index_part_new();
    char key[IMPORT_IDEMPOTENCY_KEY_SIZE];
    assert_int_equal(import_index_state(index, key), IMPORT_INDEX_NONE);

    json_t *ip = import_index_in_progress(&spec, 1700000000123LL);
    json_t *want =
        test_json("{\"V1\": {\"InProgress\": {\"idempotency_key\": \"key\", \"location\": "
                  "{\"LocalFs\": {\"path\": \"/p\"}}, \"started_at\": "
                  "\"2023-11-14T22:13:20.123Z\"}}}");
    assert_true(json_equal(ip, want));
    json_decref(want);
    index_part_set_import_pgdata(index, ip);
    assert_int_equal(import_index_state(index, key), IMPORT_INDEX_IN_PROGRESS);
    assert_string_equal(key, "key");
    assert_true(import_index_spec(index, &back, &err));
    assert_string_equal(back.location.path, "/p");

    /* the form survives the index's serialisation */
    char *text = index_part_serialize(index);
    IndexPart *reread = NULL;
    assert_true(index_part_parse(text, strlen(text), &reread, &err));
    assert_int_equal(import_index_state(reread, key), IMPORT_INDEX_IN_PROGRESS);
    index_part_free(reread);
    free(text);

    json_t *done = import_index_done(ip, 1700000060000LL);
    want =
        test_json("{\"V1\": {\"Done\": {\"idempotency_key\": \"key\", \"started_at\": "
                  "\"2023-11-14T22:13:20.123Z\", \"finished_at\": \"2023-11-14T22:14:20.000Z\"}}}");
    assert_true(json_equal(done, want));
    json_decref(want);
    assert_null(import_index_done(done, 0)); /* only an InProgress value converts */
    index_part_set_import_pgdata(index, done);
    assert_int_equal(import_index_state(index, key), IMPORT_INDEX_DONE);
    assert_string_equal(key, "key");
    assert_false(import_index_spec(index, &back, &err));

    /* an unrecognised value is never taken for a finished import */
    json_t *odd = test_json("{\"V2\": {}}");
    index_part_set_import_pgdata(index, odd);
    assert_int_equal(import_index_state(index, key), IMPORT_INDEX_IN_PROGRESS);
    assert_string_equal(key, "");
    json_decref(odd);
    json_decref(done);
    json_decref(ip);
    index_part_free(index);
}

static void test_shard_status(void **state)
{
    (void)state;
    Err err = {0};
    ImportShardStatus st;
    json_t *v = test_json("{\"InProgress\": null}");
    assert_true(import_shard_status_parse(v, &st, &err));
    assert_int_equal(st.kind, IMPORT_SHARD_IN_PROGRESS);
    assert_false(st.has_progress);
    json_decref(v);

    v = test_json(
        "{\"InProgress\": {\"V1\": {\"jobs\": 10, \"completed\": 4, \"import_plan_hash\": "
        "123456789, \"job_soft_size_limit\": 65536}}}");
    assert_true(import_shard_status_parse(v, &st, &err));
    assert_true(st.has_progress);
    assert_int_equal(st.jobs, 10);
    assert_int_equal(st.completed, 4);
    assert_int_equal(st.plan_hash, 123456789);
    assert_int_equal(st.job_soft_size_limit, 65536);
    json_decref(v);

    v = test_json("\"Done\"");
    assert_true(import_shard_status_parse(v, &st, &err));
    assert_int_equal(st.kind, IMPORT_SHARD_DONE);
    json_decref(v);

    v = test_json("{\"Error\": \"bad pg_control\"}");
    assert_true(import_shard_status_parse(v, &st, &err));
    assert_int_equal(st.kind, IMPORT_SHARD_ERROR);
    assert_string_equal(st.error, "bad pg_control");
    json_decref(v);

    static const char *const bad[] = {
        "null",
        "\"done\"",
        "{}",
        "{\"InProgress\": 5}",
        "{\"InProgress\": {\"V2\": {}}}",
        "{\"InProgress\": {\"V1\": {\"jobs\": 1}}}",
        "{\"InProgress\": {\"V1\": {\"jobs\": 1, \"completed\": 2, \"import_plan_hash\": 3}}}",
        "{\"InProgress\": {\"V1\": {\"jobs\": -1, \"completed\": 0, \"import_plan_hash\": 3}}}",
        "{\"Error\": 5}",
        "{\"InProgress\": null, \"Done\": null}",
        "[]",
    };
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        v = test_json(bad[i]);
        err_clear(&err);
        if (import_shard_status_parse(v, &st, &err))
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        json_decref(v);
    }
}

static void test_source_status(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool ok, done;
    } cases[] = {
        {"{\"done\": true}", true, true},
        {"{\"done\": false}", true, false},
        {"{\"done\": true, \"other\": 1}", true, true},
        {"{\"done\": 1}", false, false},
        {"{}", false, false},
        {"[true]", false, false},
        {"not json", false, false},
        {"", false, false},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        Err err = {0};
        bool done = true;
        bool ok = import_source_status_parse(cases[i].text, strlen(cases[i].text), &done, &err);
        if (ok != cases[i].ok || (ok && done != cases[i].done))
            fail_msg("%s: ok %d done %d (%s)", cases[i].text, ok, done, err.msg);
        if (!ok) {
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            assert_non_null(strstr(err.msg, "status/pgdata"));
        }
    }
    /* oversized: refused without parsing */
    size_t big = 64 * 1024;
    char *buf = malloc(big);
    assert_non_null(buf);
    memset(buf, ' ', big);
    Err err = {0};
    bool done = false;
    assert_false(import_source_status_parse(buf, big, &done, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_decode_good),     cmocka_unit_test(test_spec_decode_bad),
        cmocka_unit_test(test_create_request_modes), cmocka_unit_test(test_index_forms),
        cmocka_unit_test(test_shard_status),         cmocka_unit_test(test_source_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
