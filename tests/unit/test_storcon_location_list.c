/*
 * test_storcon_location_list.c: the GET /v1/location_config decoders (storcon/location_list.h):
 * the single-pass scanner on valid shapes and malformed input, and its agreement with the tree
 * decoder (json_loadb + location_list_from_json) on every input of the tables.
 */
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
#include "shared/str.h"
#include "storcon/location_list.h"

#define T1 "0123456789abcdef0123456789abcdef"
#define T2 "fedcba9876543210fedcba9876543210"

/* tree: the reference decode of text; false when either step fails. */
static bool tree(const char *text, size_t len, LocationList *out)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    memset(out, 0, sizeof(*out));
    if (doc == NULL)
        return false;
    Err err;
    bool ok = location_list_from_json(doc, out, &err);
    json_decref(doc);
    return ok;
}

/* agree: scan and tree accept or refuse text alike, with equal lists; returns the scan's verdict
 * and leaves its list in *out (empty on failure). */
static bool agree_len(const char *text, size_t len, LocationList *out)
{
    LocationList ref;
    Err err;
    bool ok = location_list_scan(text, len, out, &err);
    bool ref_ok = tree(text, len, &ref);
    if (ok != ref_ok)
        fail_msg("scan %s, tree %s on: %.*s (%s)", ok ? "accepts" : "refuses",
                 ref_ok ? "accepts" : "refuses", (int)(len > 300 ? 300 : len), text,
                 ok ? "" : err.msg);
    if (ok) {
        assert_true(location_list_equal(out, &ref));
    } else {
        assert_int_equal(err.code, ERR_INTERNAL);
        assert_true(err.msg[0] != '\0');
        assert_int_equal(out->n, 0);
    }
    location_list_finish(&ref);
    return ok;
}

static bool agree(const char *text, LocationList *out)
{
    return agree_len(text, strlen(text), out);
}

static void test_valid_shapes(void **state)
{
    LocationList l;
    /* the pageserver's own form: every key, Neon's order */
    assert_true(agree("{\"tenant_shards\": [[\"" T1 "-0104\", {\"mode\": \"AttachedSingle\", "
                      "\"generation\": 7, \"secondary_conf\": null, \"shard_number\": 1, "
                      "\"shard_count\": 4, \"shard_stripe_size\": 32768, \"tenant_conf\": "
                      "{\"gc_period\": \"1h\", \"pitr_interval\": \"7 days\", \"x\": [1, 2.5e3, "
                      "true, false, null, {}, []]}}], [\"" T2 "\", null], [\"" T1
                      "-0204\", {\"mode\": \"Secondary\", \"generation\": null, "
                      "\"secondary_conf\": {\"warm\": true}}]]}",
                      &l));
    assert_int_equal(l.n, 3);
    assert_true(l.entries[0].observed.known);
    assert_int_equal(l.entries[0].observed.mode, SHARD_LOCATION_ATTACHED_SINGLE);
    assert_int_equal(l.entries[0].observed.generation, 7);
    assert_int_equal(l.entries[0].tsid.number, 1);
    assert_int_equal(l.entries[0].tsid.count, 4);
    assert_false(l.entries[1].observed.known);
    assert_int_equal(l.entries[1].tsid.count, 0);
    assert_true(l.entries[2].observed.known);
    assert_int_equal(l.entries[2].observed.mode, SHARD_LOCATION_SECONDARY);
    assert_int_equal(l.entries[2].observed.generation, GENERATION_NONE);
    assert_true(l.entries[2].observed.secondary_warm);
    location_list_finish(&l);

    static const char *const ok[] = {
        "{\"tenant_shards\":[]}",
        " \t\r\n{ \"tenant_shards\" : [ ] } \n",
        "{\"other\":{\"tenant_shards\":3},\"tenant_shards\":[]}",
        /* the last "tenant_shards" counts, even after a malformed one */
        "{\"tenant_shards\":[[\"bad\",null]],\"tenant_shards\":[[\"" T1 "\",null]]}",
        "{\"tenant_shards\":7,\"tenant_shards\":[]}",
        /* escapes in keys, ids and modes decode before they are compared */
        "{\"tenant_\\u0073hards\":[[\"0123456789abcdef0123456789abcde\\u0066\","
        "{\"m\\u006fde\":\"Attached\\u0053ingle\",\"generation\":1}]]}",
        /* config summaries: repeated keys, the last wins; odd values make it unknown */
        "{\"tenant_shards\":[[\"" T1 "\",{\"mode\":3,\"mode\":\"AttachedMulti\",\"generation\":"
        "\"x\",\"generation\":-0}]]}",
        "{\"tenant_shards\":[[\"" T1 "\",{\"mode\":\"Bogus\"}]]}",
        "{\"tenant_shards\":[[\"" T1 "\",{\"mode\":\"AttachedSingle\",\"generation\":1.0}]]}",
        "{\"tenant_shards\":[[\"" T1
        "\",{\"mode\":\"AttachedSingle\",\"generation\":4294967296}]]}",
        "{\"tenant_shards\":[[\"" T1
        "\",{\"mode\":\"AttachedSingle\",\"generation\":4294967295}]]}",
        "{\"tenant_shards\":[[\"" T1 "\",{\"mode\":\"AttachedSingle\",\"generation\":-1}]]}",
        "{\"tenant_shards\":[[\"" T1 "\",{\"mode\":\"Secondary\",\"secondary_conf\":[]}]]}",
        "{\"tenant_shards\":[[\"" T1
        "\",{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":1}}]]}",
        "{\"tenant_shards\":[[\"" T1 "\",{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":"
        "true},\"secondary_conf\":{}}]]}",
        "{\"tenant_shards\":[[\"" T1 "\",{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":"
        "false,\"warm\":true,\"x\":{\"warm\":false}}}]]}",
        "{\"tenant_shards\":[[\"" T1 "\",{\"mode\":\"" T1 T1 T1 "\"}]]}",
        "{\"tenant_shards\":[[\"" T1 "\",{}]]}",
        /* numbers and strings jansson takes */
        "{\"x\":[-0,0.5e-3,1E+2,-9223372036854775808,9223372036854775807,1e-400],"
        "\"tenant_shards\":[]}",
        "{\"x\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00 \xc3\xa9 \xe2\x82\xac "
        "\xf0\x9f\x98"
        "\x80 \x7f\",\"tenant_shards\":[]}",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!agree(ok[i], &l))
            fail_msg("refused: %s", ok[i]);
        location_list_finish(&l);
    }
}

static void test_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        " ",
        "[]",
        "null",
        "{}",
        "{\"tenant_shards\":{}}",
        "{\"tenant_shards\":[],\"tenant_shards\":null}",
        "{\"tenant_shards\":[[\"" T1 "\"]]}",
        "{\"tenant_shards\":[[\"" T1 "\",3]]}",
        "{\"tenant_shards\":[[\"" T1 "\",null,null]]}",
        "{\"tenant_shards\":[[3,null]]}",
        "{\"tenant_shards\":[\"" T1 "\"]}",
        "{\"tenant_shards\":[[\"nope\",null]]}",
        "{\"tenant_shards\":[[\"" T1 "-0000\",null]]}",
        "{\"tenant_shards\":[[\"" T1 T1 T1 "\",null]]}",
        /* syntax */
        "{\"tenant_shards\":[]",
        "{\"tenant_shards\":[]}x",
        "{\"tenant_shards\":[]}{}",
        "{\"tenant_shards\":[],}",
        "{\"tenant_shards\":[,]}",
        "{\"tenant_shards\":[[\"" T1 "\",null],]}",
        "{\"tenant_shards\" []}",
        "{tenant_shards:[]}",
        "{\"tenant_shards\":[[\"" T1 "\",nul]]}",
        "{\"tenant_shards\":[[\"" T1 "\",nullx]]}",
        "{\"x\":truefalse,\"tenant_shards\":[]}",
        "{\"x\":01,\"tenant_shards\":[]}",
        "{\"x\":-,\"tenant_shards\":[]}",
        "{\"x\":1.,\"tenant_shards\":[]}",
        "{\"x\":1e,\"tenant_shards\":[]}",
        "{\"x\":.5,\"tenant_shards\":[]}",
        "{\"x\":+1,\"tenant_shards\":[]}",
        "{\"x\":9223372036854775808,\"tenant_shards\":[]}",
        "{\"x\":-9223372036854775809,\"tenant_shards\":[]}",
        "{\"x\":99999999999999999999999,\"tenant_shards\":[]}",
        "{\"x\":1e999,\"tenant_shards\":[]}",
        "{\"x\":-1e999,\"tenant_shards\":[]}",
        /* strings */
        "{\"x\":\"\\u0000\",\"tenant_shards\":[]}",
        "{\"x\":\"\\ud83d\",\"tenant_shards\":[]}",
        "{\"x\":\"\\ud83dx\",\"tenant_shards\":[]}",
        "{\"x\":\"\\ud83d\\u0041\",\"tenant_shards\":[]}",
        "{\"x\":\"\\ude00\",\"tenant_shards\":[]}",
        "{\"x\":\"\\u12\",\"tenant_shards\":[]}",
        "{\"x\":\"\\x\",\"tenant_shards\":[]}",
        "{\"x\":\"a\tb\",\"tenant_shards\":[]}",
        "{\"x\":\"\xc0\x80\",\"tenant_shards\":[]}",
        "{\"x\":\"\xed\xa0\x80\",\"tenant_shards\":[]}",
        "{\"x\":\"\xf4\x90\x80\x80\",\"tenant_shards\":[]}",
        "{\"x\":\"\xe2\x82\",\"tenant_shards\":[]}",
        "{\"x\":\"\xff\",\"tenant_shards\":[]}",
        "{\"x\":\"abc",
        "{\"tenant_shards\":[]}\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        LocationList l;
        if (agree(bad[i], &l))
            fail_msg("accepted: %s", bad[i]);
    }
    /* a NUL byte inside and outside a string */
    static const char nul1[] = "{\"x\":\"a\0b\",\"tenant_shards\":[]}";
    static const char nul2[] = "{\"tenant_shards\":[]}\0";
    LocationList l;
    assert_false(agree_len(nul1, sizeof(nul1) - 1, &l));
    assert_false(agree_len(nul2, sizeof(nul2) - 1, &l));
    /* jansson ignores one NUL right after a number or literal (its lookahead is lost), not two:
     * the scanner agrees (fuzzer-found) */
    static const char nul3[] = "{\"x\":[0\0],\"y\":true\0,\"tenant_shards\":[]}";
    static const char nul4[] = "{\"x\":[0\0\0],\"tenant_shards\":[]}";
    assert_true(agree_len(nul3, sizeof(nul3) - 1, &l));
    location_list_finish(&l);
    assert_false(agree_len(nul4, sizeof(nul4) - 1, &l));
}

/* nested: {"x": [[...[0]...]], "tenant_shards": []} with depth levels of arrays under the top
 * object. */
static char *nested(int depth)
{
    StrBuf b = STRBUF_INIT;
    strbuf_printf(&b, "{\"x\":");
    for (int i = 0; i < depth; i++)
        strbuf_printf(&b, "[");
    strbuf_printf(&b, "0");
    for (int i = 0; i < depth; i++)
        strbuf_printf(&b, "]");
    strbuf_printf(&b, ",\"tenant_shards\":[]}");
    return b.data;
}

static void test_depth_limit(void **state)
{
    /* the top object is level 1, each array one more, the 0 inside one more: 2048 levels pass */
    LocationList l;
    char *ok = nested(2046);
    assert_true(agree(ok, &l));
    location_list_finish(&l);
    free(ok);
    char *deep = nested(2047);
    assert_false(agree(deep, &l));
    free(deep);
    char *very = nested(100000);
    assert_false(agree(very, &l));
    free(very);
}

/* A large listing in the pageserver's form decodes to the same list both ways. */
static void test_large_equal(void **state)
{
    StrBuf b = STRBUF_INIT;
    strbuf_printf(&b, "{\"tenant_shards\":[");
    for (unsigned i = 0; i < 5000; i++) {
        strbuf_printf(&b,
                      "%s[\"%08x%024x-%02x04\",{\"mode\":\"%s\",\"generation\":%u,"
                      "\"secondary_conf\":%s,\"shard_number\":%u,\"shard_count\":4,"
                      "\"shard_stripe_size\":32768,\"tenant_conf\":{\"gc_period\":\"1h\"}}]",
                      i ? "," : "", i, 0, i % 4, i % 3 ? "AttachedSingle" : "Secondary", i,
                      i % 3 ? "null" : "{\"warm\":true}", i % 4);
    }
    strbuf_printf(&b, "]}");
    LocationList l;
    assert_true(agree_len(b.data, b.len, &l));
    assert_int_equal(l.n, 5000);
    location_list_finish(&l);
    strbuf_finish(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_shapes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_large_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
