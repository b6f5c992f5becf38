/* test_pageserver_tenant_lifecycle.c: unit tests for the bodies of the older lifecycle API
 * (pageserver/tenant_lifecycle.c): create, attach and load, valid and invalid, table-driven. */
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

#include "pageserver/tenant_lifecycle.h"
#include "tests/unit/json_util.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#define TENANT_HEX "1f359dd625e519a1a4e8d7509690f6fc"

typedef enum Body { CREATE, ATTACH, LOAD } Body;

typedef struct Case {
    Body body;
    const char *json; /* NULL: an empty body */
    bool ok;
    const char *msg_part; /* expected in the error message */
} Case;

static const Case CASES[] = {
    {CREATE, "{\"new_tenant_id\": \"" TENANT_HEX "\"}", true, NULL},
    {CREATE, "{\"new_tenant_id\": \"" TENANT_HEX "\", \"generation\": 3, \"gc_horizon\": 5}", true,
     NULL},
    {CREATE,
     "{\"new_tenant_id\": \"" TENANT_HEX "-0102\", \"shard_parameters\": {\"count\": 2, "
     "\"stripe_size\": 8}, \"placement_policy\": \"Single\"}",
     true, NULL},
    {CREATE, "{\"new_tenant_id\": \"" TENANT_HEX "\", \"bogus\": 1}", false, "bogus"},
    {CREATE, "{\"generation\": 1}", false, "new_tenant_id"},
    {CREATE, "{\"new_tenant_id\": \"" TENANT_HEX "\", \"generation\": 0}", false, "start at 1"},
    {CREATE,
     "{\"new_tenant_id\": \"" TENANT_HEX "\", \"shard_parameters\": {\"count\": 2, "
     "\"stripe_size\": 8}}",
     false, "does not match"},
    {CREATE,
     "{\"new_tenant_id\": \"" TENANT_HEX "-0102\", \"shard_parameters\": {\"count\": 2, "
     "\"stripe_size\": 0}}",
     false, "shard_parameters"},
    {CREATE,
     "{\"new_tenant_id\": \"" TENANT_HEX "\", \"shard_parameters\": {\"count\": 0, "
     "\"stripe_size\": 8, \"x\": 1}}",
     false, "x"},
    {ATTACH, NULL, true, NULL},
    {ATTACH, "null", true, NULL},
    {ATTACH, "{\"generation\": 4, \"config\": {\"pitr_interval\": \"1d\"}}", true, NULL},
    {ATTACH, "{\"generation\": 4, \"unknown_top_level\": 1}", true, NULL},
    {ATTACH, "{\"generation\": 4, \"config\": {\"bogus\": 1}}", false, "bogus"},
    {ATTACH, "{\"generation\": 4, \"config\": null}", false, "config"},
    {ATTACH, "{\"generation\": 0}", false, "start at 1"},
    {ATTACH, "{\"generation\": -1}", false, "generation"},
    {ATTACH, "[]", false, NULL},
    {LOAD, NULL, true, NULL},
    {LOAD, "{\"generation\": 7}", true, NULL},
    {LOAD, "{\"generation\": 7, \"x\": 1}", false, "x"},
    {LOAD, "{\"generation\": 0}", false, "start at 1"},
};

static void test_bodies(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT_OF(CASES); i++) {
        const Case *c = &CASES[i];
        json_t *v = NULL;
        Err err = {0};
        if (c->json != NULL && !json_parse_text(c->json, strlen(c->json), &v, &err))
            fail_msg("bad test JSON %s: %s", c->json, err.msg);
        bool ok = false;
        TenantCreateRequest cr;
        TenantAttachRequest ar;
        Generation gen = 0;
        switch (c->body) {
        case CREATE:
            ok = tenant_create_request_decode(v, &cr, &err);
            break;
        case ATTACH:
            ok = tenant_attach_request_decode(v, &ar, &err);
            break;
        case LOAD:
            ok = tenant_load_request_decode(v, &gen, &err);
            break;
        }
        json_decref(v);
        if (ok != c->ok)
            fail_msg("case %zu (%s): ok %d, expected %d (%s)", i, c->json ? c->json : "<empty>", ok,
                     c->ok, err.msg);
        if (!ok) {
            assert_int_equal(err_http_status(err.code), 400);
            if (c->msg_part != NULL && strstr(err.msg, c->msg_part) == NULL)
                fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, c->msg_part);
        }
    }
}

static void test_decoded_values(void **state)
{
    (void)state;
    Err err = {0};
    TenantCreateRequest cr;
    json_t *v = test_json("{\"new_tenant_id\": \"" TENANT_HEX "-0102\", \"generation\": 9}");
    assert_true(tenant_create_request_decode(v, &cr, &err));
    json_decref(v);
    assert_int_equal(cr.tsid.number, 1);
    assert_int_equal(cr.tsid.count, 2);
    assert_int_equal(cr.generation, 9);
    assert_int_equal(cr.stripe_size, STRIPE_SIZE_LEGACY); /* Neon's default ShardParameters */

    v = test_json("{\"new_tenant_id\": \"" TENANT_HEX "\"}");
    assert_true(tenant_create_request_decode(v, &cr, &err));
    json_decref(v);
    assert_int_equal(cr.generation, GENERATION_NONE);
    assert_int_equal(cr.stripe_size, 0);

    TenantAttachRequest ar;
    assert_true(tenant_attach_request_decode(NULL, &ar, &err));
    assert_int_equal(ar.generation, GENERATION_NONE);
    v = test_json("{\"generation\": 5, \"config\": {\"gc_horizon\": 77}}");
    assert_true(tenant_attach_request_decode(v, &ar, &err));
    json_decref(v);
    assert_int_equal(ar.generation, 5);
    assert_int_equal(ar.config.gc_horizon, 77);
    assert_int_equal(ar.config.gc_horizon_p, JSON_PRESENCE_SET);

    Generation gen = 0;
    assert_true(tenant_load_request_decode(NULL, &gen, &err));
    assert_int_equal(gen, GENERATION_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_decoded_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
