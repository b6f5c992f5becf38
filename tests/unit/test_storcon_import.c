/* test_storcon_import.c: unit tests for storcon/import.c: the ShardImportStatus check, the
 * summary of a row and the finalisation decision, the operator's view, and the split guard. */
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
#include "storcon/import.h"
#include "tests/unit/json_util.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- ShardImportStatus ---- */

typedef struct StatusCase {
    const char *text;
    ImportStatusKind kind;
    bool has_progress;
    uint64_t jobs, completed;
} StatusCase;

static const StatusCase STATUS_OK[] = {
    {"{\"InProgress\": null}", IMPORT_STATUS_IN_PROGRESS, false, 0, 0},
    {"{\"InProgress\": {\"V1\": {\"jobs\": 10, \"completed\": 3, \"import_plan_hash\": "
     "9223372036854775807, \"job_soft_size_limit\": 268435456}}}",
     IMPORT_STATUS_IN_PROGRESS, true, 10, 3},
    {"{\"InProgress\": {\"V1\": {\"jobs\": 0, \"completed\": 0, \"import_plan_hash\": 0, "
     "\"job_soft_size_limit\": 1}}}",
     IMPORT_STATUS_IN_PROGRESS, true, 0, 0},
    {"\"Done\"", IMPORT_STATUS_DONE, false, 0, 0},
    {"{\"Error\": \"bad pg_control\"}", IMPORT_STATUS_ERROR, false, 0, 0},
    {"{\"Error\": \"\"}", IMPORT_STATUS_ERROR, false, 0, 0},
};

static void test_status_decode_ok(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT_OF(STATUS_OK); i++) {
        const StatusCase *c = &STATUS_OK[i];
        json_t *v = test_json(c->text);
        ImportStatus st;
        Err err;
        err_clear(&err);
        if (!import_status_decode(v, &st, &err))
            fail_msg("%s: %s", c->text, err.msg);
        assert_int_equal(st.kind, c->kind);
        assert_int_equal(st.has_progress, c->has_progress);
        assert_int_equal(st.jobs, c->jobs);
        assert_int_equal(st.completed, c->completed);
        if (c->kind == IMPORT_STATUS_ERROR)
            assert_non_null(st.error);
        json_decref(v);
    }
}

static const char *const STATUS_BAD[] = {
    "\"InProgress\"", /* serde needs the payload: {"InProgress": null} */
    "\"done\"",
    "\"Error\"",
    "null",
    "5",
    "[]",
    "{}",
    "{\"Done\": null}",
    "{\"InProgress\": null, \"Done\": null}",
    "{\"InProgress\": 1}",
    "{\"InProgress\": {}}",
    "{\"InProgress\": {\"V2\": {}}}",
    "{\"InProgress\": {\"V1\": null}}",
    "{\"InProgress\": {\"V1\": {\"jobs\": 1, \"completed\": 0, \"import_plan_hash\": 1}}}",
    "{\"InProgress\": {\"V1\": {\"jobs\": 1, \"completed\": 2, \"import_plan_hash\": 1, "
    "\"job_soft_size_limit\": 1}}}",
    "{\"InProgress\": {\"V1\": {\"jobs\": -1, \"completed\": 0, \"import_plan_hash\": 1, "
    "\"job_soft_size_limit\": 1}}}",
    "{\"InProgress\": {\"V1\": {\"jobs\": 1.5, \"completed\": 0, \"import_plan_hash\": 1, "
    "\"job_soft_size_limit\": 1}}}",
    "{\"InProgress\": {\"V1\": {\"jobs\": 1, \"completed\": 0, \"import_plan_hash\": 1, "
    "\"job_soft_size_limit\": 1, \"extra\": 1}}}",
    "{\"Error\": null}",
    "{\"Error\": 5}",
};

static void test_status_decode_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT_OF(STATUS_BAD); i++) {
        json_t *v = test_json(STATUS_BAD[i]);
        ImportStatus st;
        Err err;
        err_clear(&err);
        if (import_status_decode(v, &st, &err))
            fail_msg("accepted %s", STATUS_BAD[i]);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_true(strstr(err.msg, "status") != NULL);
        json_decref(v);
    }
}

static void test_status_terminal(void **state)
{
    (void)state;
    assert_false(import_status_terminal(IMPORT_STATUS_IN_PROGRESS));
    assert_true(import_status_terminal(IMPORT_STATUS_DONE));
    assert_true(import_status_terminal(IMPORT_STATUS_ERROR));
    assert_string_equal(import_status_kind_name(IMPORT_STATUS_DONE), "Done");
}

/* ---- initial row ---- */

static void test_statuses_initial(void **state)
{
    (void)state;
    char *one = import_statuses_initial(0);
    assert_string_equal(one, "{\"0000\":{\"InProgress\":null}}");
    free(one);
    char *four = import_statuses_initial(4);
    assert_string_equal(four, "{\"0004\":{\"InProgress\":null},\"0104\":{\"InProgress\":null},"
                              "\"0204\":{\"InProgress\":null},\"0304\":{\"InProgress\":null}}");
    ImportSummary s;
    Err err;
    err_clear(&err);
    assert_true(import_summarise(four, &s, &err));
    assert_int_equal(s.shards, 4);
    assert_int_equal(s.terminal, 0);
    assert_int_equal(import_decide(&s), IMPORT_DECISION_WAIT);
    import_summary_finish(&s);
    free(four);
}

/* ---- summary and decision ---- */

typedef struct DecideCase {
    const char *row;
    ImportDecision decision;
    size_t shards, terminal, done, failed;
    const char *errors; /* NULL: none */
} DecideCase;

static const DecideCase DECIDE[] = {
    /* never before every shard is terminal */
    {"{\"0002\": {\"InProgress\": null}, \"0102\": \"Done\"}", IMPORT_DECISION_WAIT, 2, 1, 1, 0,
     NULL},
    {"{\"0002\": {\"Error\": \"x\"}, \"0102\": {\"InProgress\": null}}", IMPORT_DECISION_WAIT, 2, 1,
     0, 1, "0002: x"},
    {"{\"0002\": \"Done\", \"0102\": {\"InProgress\": {\"V1\": {\"jobs\": 2, \"completed\": 2, "
     "\"import_plan_hash\": 7, \"job_soft_size_limit\": 8}}}}",
     IMPORT_DECISION_WAIT, 2, 1, 1, 0, NULL},
    {"{}", IMPORT_DECISION_WAIT, 0, 0, 0, 0, NULL},
    /* all done: activate, then notify success */
    {"{\"0000\": \"Done\"}", IMPORT_DECISION_ACTIVATE, 1, 1, 1, 0, NULL},
    {"{\"0102\": \"Done\", \"0002\": \"Done\"}", IMPORT_DECISION_ACTIVATE, 2, 2, 2, 0, NULL},
    /* all terminal, some failed: the errors in shard order */
    {"{\"0104\": {\"Error\": \"disk full\"}, \"0004\": \"Done\", \"0304\": {\"Error\": \"bad "
     "file\"}, \"0204\": \"Done\"}",
     IMPORT_DECISION_NOTIFY_ERROR, 4, 4, 2, 2, "0104: disk full; 0304: bad file"},
    {"{\"0000\": {\"Error\": \"bad pg_control\"}}", IMPORT_DECISION_NOTIFY_ERROR, 1, 1, 0, 1,
     "0000: bad pg_control"},
};

static void test_summarise_decide(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT_OF(DECIDE); i++) {
        const DecideCase *c = &DECIDE[i];
        ImportSummary s;
        Err err;
        err_clear(&err);
        if (!import_summarise(c->row, &s, &err))
            fail_msg("%s: %s", c->row, err.msg);
        assert_int_equal(s.shards, c->shards);
        assert_int_equal(s.terminal, c->terminal);
        assert_int_equal(s.done, c->done);
        assert_int_equal(s.failed, c->failed);
        if (c->errors == NULL)
            assert_null(s.errors);
        else
            assert_string_equal(s.errors, c->errors);
        assert_int_equal(import_decide(&s), c->decision);
        import_summary_finish(&s);
    }
}

static void test_summarise_corrupt_row(void **state)
{
    (void)state;
    static const char *const BAD[] = {
        "not json", "[]", "\"Done\"", "{\"zz\": \"Done\"}", "{\"0002\": \"Finished\"}", NULL,
    };
    for (size_t i = 0; i < COUNT_OF(BAD); i++) {
        ImportSummary s;
        Err err;
        err_clear(&err);
        assert_false(import_summarise(BAD[i], &s, &err));
        assert_int_equal(err.code, ERR_INTERNAL);
        assert_null(s.errors);
    }
}

static void test_error_messages_are_cut(void **state)
{
    (void)state;
    size_t len = IMPORT_ERROR_MSG_MAX * 2;
    char *msg = malloc(len + 1);
    memset(msg, 'e', len);
    msg[len] = '\0';
    json_t *row = json_pack("{s:{s:s}}", "0000", "Error", msg);
    char *text = json_dumps(row, JSON_COMPACT);
    ImportSummary s;
    Err err;
    err_clear(&err);
    assert_true(import_summarise(text, &s, &err));
    assert_int_equal(strlen(s.errors), strlen("0000: ") + IMPORT_ERROR_MSG_MAX);
    import_summary_finish(&s);
    free(text);
    json_decref(row);
    free(msg);
}

/* ---- one shard's status and the operator's view ---- */

static void test_shard_status(void **state)
{
    (void)state;
    const char *row = "{\"0002\": {\"InProgress\": null}, \"0102\": {\"Error\": \"x\"}}";
    json_t *out = NULL;
    Err err;
    err_clear(&err);
    assert_true(import_shard_status(row, (ShardIndex){.number = 1, .count = 2}, &out, &err));
    json_t *want = test_json("{\"Error\": \"x\"}");
    assert_true(json_equal(out, want));
    json_decref(want);
    json_decref(out);
    assert_false(import_shard_status(row, (ShardIndex){.number = 0, .count = 4}, &out, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_null(out);
}

static void test_progress_json(void **state)
{
    (void)state;
    TenantId t;
    TimelineId tl;
    Err err;
    err_clear(&err);
    assert_true(tenant_id_parse("1f359dd625e519a1a4e8d7509690f6fc", &t, &err));
    assert_true(timeline_id_parse("de200bd42b49cc1814412c7e592dd6e9", &tl, &err));
    const char *row = "{\"0102\": {\"InProgress\": {\"V1\": {\"jobs\": 4, \"completed\": 1, "
                      "\"import_plan_hash\": 3, \"job_soft_size_limit\": 5}}}, \"0002\": \"Done\"}";
    json_t *out = NULL;
    assert_true(import_progress_json(&t, &tl, row, &out, &err));
    json_t *want = test_json(
        "{\"tenant_id\": \"1f359dd625e519a1a4e8d7509690f6fc\", \"timeline_id\": "
        "\"de200bd42b49cc1814412c7e592dd6e9\", \"shards\": [{\"shard_id\": "
        "\"1f359dd625e519a1a4e8d7509690f6fc-0002\", \"status\": \"Done\", \"state\": \"Done\", "
        "\"jobs\": null, \"completed\": null, \"error\": null}, {\"shard_id\": "
        "\"1f359dd625e519a1a4e8d7509690f6fc-0102\", \"status\": {\"InProgress\": {\"V1\": "
        "{\"jobs\": 4, \"completed\": 1, \"import_plan_hash\": 3, \"job_soft_size_limit\": 5}}}, "
        "\"state\": \"InProgress\", \"jobs\": 4, \"completed\": 1, \"error\": null}], "
        "\"shard_count\": 2, \"terminal\": 1, \"done\": 1, \"failed\": 0, \"complete\": false}");
    if (!json_equal(out, want)) {
        char *got = json_dumps(out, JSON_COMPACT);
        fail_msg("got %s", got);
    }
    json_decref(want);
    json_decref(out);
}

/* ---- the set of imports and the split guard ---- */

static void test_import_set_and_split_check(void **state)
{
    (void)state;
    TenantId a, b;
    TimelineId t1, t2;
    Err err;
    err_clear(&err);
    assert_true(tenant_id_parse("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &a, &err));
    assert_true(tenant_id_parse("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", &b, &err));
    assert_true(timeline_id_parse("11111111111111111111111111111111", &t1, &err));
    assert_true(timeline_id_parse("22222222222222222222222222222222", &t2, &err));
    ImportSet set = {0};
    assert_false(import_set_tenant_importing(&set, &a));
    assert_true(import_split_check(&set, &a, &err));

    bool added = false;
    ImportEntry *e1 = import_set_add(&set, &a, &t1, &added);
    assert_true(added);
    assert_ptr_equal(import_set_add(&set, &a, &t1, &added), e1); /* idempotent */
    assert_false(added);
    ImportEntry *e2 = import_set_add(&set, &a, &t2, &added);
    assert_true(added);
    assert_int_equal(set.n, 2);
    assert_true(import_set_tenant_importing(&set, &a));
    assert_false(import_set_tenant_importing(&set, &b));
    assert_true(import_split_check(&set, &b, &err)); /* another tenant may split */
    assert_false(import_split_check(&set, &a, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_true(strstr(err.msg, "importing") != NULL);

    assert_ptr_equal(import_set_remove(&set, &a, &t1), e1);
    assert_null(import_set_remove(&set, &a, &t1));
    free(e1);
    err_clear(&err);
    assert_false(import_split_check(&set, &a, &err)); /* t2 still runs */
    assert_ptr_equal(import_set_find(&set, &a, &t2), e2);
    assert_ptr_equal(import_set_remove(&set, &a, &t2), e2);
    free(e2);
    assert_int_equal(set.n, 0);
    assert_false(import_set_tenant_importing(&set, &a));
    assert_true(import_split_check(&set, &a, &err));
}

/* ---- the create request ---- */

static void test_import_pgdata_decode(void **state)
{
    (void)state;
    json_t *v = test_json("{\"idempotency_key\": \"k1\", \"location\": {\"LocalFs\": {\"path\": "
                          "\"/srv/import/x\"}}}");
    ImportPgdataSpec spec;
    Err err;
    err_clear(&err);
    assert_true(import_pgdata_decode(v, &spec, &err));
    assert_int_equal(spec.kind, IMPORT_LOCATION_LOCAL_FS);
    assert_string_equal(spec.path, "/srv/import/x");
    json_t *back = import_pgdata_to_json(&spec);
    assert_true(json_equal(back, v));
    json_decref(back);
    json_decref(v);

    v = test_json("{\"idempotency_key\": \"k\", \"location\": {\"AwsS3\": {\"region\": \"r\", "
                  "\"bucket\": \"b\", \"key\": \"p/q\"}}}");
    assert_true(import_pgdata_decode(v, &spec, &err));
    assert_int_equal(spec.kind, IMPORT_LOCATION_AWS_S3);
    back = import_pgdata_to_json(&spec);
    assert_true(json_equal(back, v));
    json_decref(back);
    json_decref(v);

    static const char *const BAD[] = {
        "\"x\"",
        "{}",
        "{\"idempotency_key\": \"k\"}",
        "{\"location\": {\"LocalFs\": {\"path\": \"/a\"}}}",
        "{\"idempotency_key\": \"\", \"location\": {\"LocalFs\": {\"path\": \"/a\"}}}",
        "{\"idempotency_key\": 5, \"location\": {\"LocalFs\": {\"path\": \"/a\"}}}",
        "{\"idempotency_key\": \"k\", \"location\": {}}",
        "{\"idempotency_key\": \"k\", \"location\": {\"Gcs\": {}}}",
        "{\"idempotency_key\": \"k\", \"location\": {\"LocalFs\": {\"path\": \"/a\"}, "
        "\"AwsS3\": {}}}",
        "{\"idempotency_key\": \"k\", \"location\": {\"LocalFs\": {\"path\": \"rel\"}}}",
        "{\"idempotency_key\": \"k\", \"location\": {\"LocalFs\": {\"path\": \"\"}}}",
        "{\"idempotency_key\": \"k\", \"location\": {\"LocalFs\": \"/a\"}}",
        "{\"idempotency_key\": \"k\", \"location\": {\"LocalFs\": {\"path\": \"/a\", \"x\": 1}}}",
        "{\"idempotency_key\": \"k\", \"location\": {\"AwsS3\": {\"region\": \"r\", \"bucket\": "
        "\"b\"}}}",
        "{\"idempotency_key\": \"k\", \"location\": {\"AwsS3\": {\"region\": \"\", \"bucket\": "
        "\"b\", \"key\": \"k\"}}}",
        "{\"idempotency_key\": \"k\", \"location\": {\"LocalFs\": {\"path\": \"/a\"}}, \"x\": 1}",
    };
    for (size_t i = 0; i < COUNT_OF(BAD); i++) {
        v = test_json(BAD[i]);
        err_clear(&err);
        if (import_pgdata_decode(v, &spec, &err))
            fail_msg("accepted %s", BAD[i]);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_true(strncmp(err.msg, "import_pgdata", 13) == 0);
        json_decref(v);
    }
}

/* ---- import_complete ---- */

static void test_import_complete_render(void **state)
{
    (void)state;
    ImportComplete c;
    Err err;
    err_clear(&err);
    assert_true(tenant_id_parse("1f359dd625e519a1a4e8d7509690f6fc", &c.tenant_id, &err));
    assert_true(timeline_id_parse("de200bd42b49cc1814412c7e592dd6e9", &c.timeline_id, &err));
    c.error = NULL;
    char *body = NULL;
    assert_true(import_complete_render(&c, &body, &err));
    assert_string_equal(body, "{\"tenant_id\":\"1f359dd625e519a1a4e8d7509690f6fc\",\"timeline_id\":"
                              "\"de200bd42b49cc1814412c7e592dd6e9\",\"error\":null}");
    free(body);
    c.error = "0002: bad \"file\"";
    assert_true(import_complete_render(&c, &body, &err));
    assert_string_equal(body, "{\"tenant_id\":\"1f359dd625e519a1a4e8d7509690f6fc\",\"timeline_id\":"
                              "\"de200bd42b49cc1814412c7e592dd6e9\",\"error\":\"0002: bad "
                              "\\\"file\\\"\"}");
    free(body);
}

/* A message cut at the limit never splits a UTF-8 character (the body must stay valid JSON). */
static void test_error_cut_keeps_utf8(void **state)
{
    (void)state;
    size_t n = IMPORT_ERROR_MSG_MAX / 2 + 1; /* two-byte characters across the limit */
    char *msg = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        msg[2 * i] = (char)0xC3;
        msg[2 * i + 1] = (char)0xA9; /* e acute */
    }
    msg[2 * n] = '\0';
    json_t *row = json_pack("{s:{s:s}}", "0000", "Error", msg);
    assert_non_null(row);
    char *text = json_dumps(row, JSON_COMPACT);
    ImportSummary s;
    Err err;
    err_clear(&err);
    assert_true(import_summarise(text, &s, &err));
    json_t *valid = json_string(s.errors);
    assert_non_null(valid);
    json_decref(valid);
    import_summary_finish(&s);
    free(text);
    json_decref(row);
    free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_decode_ok),
        cmocka_unit_test(test_status_decode_bad),
        cmocka_unit_test(test_status_terminal),
        cmocka_unit_test(test_statuses_initial),
        cmocka_unit_test(test_summarise_decide),
        cmocka_unit_test(test_summarise_corrupt_row),
        cmocka_unit_test(test_error_messages_are_cut),
        cmocka_unit_test(test_shard_status),
        cmocka_unit_test(test_progress_json),
        cmocka_unit_test(test_import_set_and_split_check),
        cmocka_unit_test(test_import_pgdata_decode),
        cmocka_unit_test(test_import_complete_render),
        cmocka_unit_test(test_error_cut_keeps_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
