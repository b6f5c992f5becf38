/* test_pageserver_index_part.c: unit tests for pageserver/index_part.c (parse, serialise, layer
 * helpers, forward compatibility, malformed input) and pageserver/remote_layout.c (exact object
 * keys for sample ids, index key parsing, index generation choice). */
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

#include "pageserver/index_part.h"
#include "pageserver/remote_layout.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#define TENANT_HEX   "1f359dd625e519a1a4e8d7509690f6fc"
#define TIMELINE_HEX "de200bd42b49cc1814412c7e592dd6e9"
#define ANCESTOR_HEX "aabbccddeeff00112233445566778899"

#define KEY_MIN "000000000000000000000000000000000000"
#define KEY_REL "000000067F000032BE0000400C0000000080"
#define KEY_MAX "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"

#define IMAGE_LAYER KEY_MIN "-" KEY_REL "__00000000016960E8"
#define DELTA_LAYER KEY_MIN "-" KEY_MAX "__00000000016960E8-000000000169C0E8"
#define OTHER_LAYER KEY_REL "-" KEY_MAX "__000000000169C0E8"

/* The spec's shape, in the order and form index_part_serialize writes. */
static const char SAMPLE[] =
    "{\"version\":1,\"layer_metadata\":{"
    "\"" IMAGE_LAYER "\":{\"file_size\":25600000,\"generation\":1,\"shard\":\"0104\"},"
    "\"" DELTA_LAYER "\":{\"file_size\":9007199254741001,\"generation\":2,\"shard\":\"0004\"}},"
    "\"disk_consistent_lsn\":\"0/169C0E8\","
    "\"metadata\":{\"disk_consistent_lsn\":\"0/169C0E8\",\"prev_record_lsn\":\"0/169C0A0\","
    "\"ancestor_timeline\":null,\"ancestor_lsn\":\"0/0\",\"latest_gc_cutoff_lsn\":\"0/16960E8\","
    "\"initdb_lsn\":\"0/16960E8\",\"pg_version\":16}}";

static IndexPart *parse_ok(const char *text)
{
    IndexPart *p = NULL;
    Err err = {0};
    if (!index_part_parse(text, strlen(text), &p, &err))
        fail_msg("rejected: %s\n%s", err.msg, text);
    return p;
}

static void assert_serializes_to(const IndexPart *p, const char *want)
{
    char *got = index_part_serialize(p);
    if (strcmp(got, want) != 0)
        fail_msg("serialised\n  got  %s\n  want %s", got, want);
    free(got);
}

/* ---- index_part ---- */

static void test_sample(void **state)
{
    IndexPart *p = parse_ok(SAMPLE);
    assert_int_equal(p->version, 1);
    assert_int_equal(p->n_layers, 2);
    assert_string_equal(p->layers[0].name, IMAGE_LAYER); /* sorted: '0' < 'F' at position 37 */
    assert_string_equal(p->layers[1].name, DELTA_LAYER);
    assert_true(p->layers[1].file_size == 9007199254741001ull);
    assert_true(p->layers[1].generation == 2);
    assert_int_equal(p->layers[1].shard.number, 0);
    assert_int_equal(p->layers[1].shard.count, 4);
    assert_true(p->layers[0].generation == 1);
    assert_int_equal(p->layers[0].shard.number, 1);
    assert_int_equal(p->layers[0].shard.count, 4);
    assert_true(p->disk_consistent_lsn == 0x169C0E8);
    assert_true(p->metadata.disk_consistent_lsn == 0x169C0E8);
    assert_true(p->metadata.prev_record_lsn == 0x169C0A0);
    assert_false(p->metadata.has_ancestor);
    assert_true(p->metadata.ancestor_lsn == LSN_INVALID);
    assert_true(p->metadata.latest_gc_cutoff_lsn == 0x16960E8);
    assert_true(p->metadata.initdb_lsn == 0x16960E8);
    assert_int_equal(p->metadata.pg_version, 16);
    assert_false(p->has_deleted_at);
    assert_null(p->import_pgdata);
    assert_serializes_to(p, SAMPLE);
    index_part_free(p);

    /* layers given out of order are sorted on read and written in order */
    const char *unsorted =
        "{\"version\":1,\"layer_metadata\":{"
        "\"" DELTA_LAYER "\":{\"file_size\":9007199254741001,\"generation\":2,\"shard\":\"0004\"},"
        "\"" IMAGE_LAYER "\":{\"file_size\":25600000,\"generation\":1,\"shard\":\"0104\"}},"
        "\"disk_consistent_lsn\":\"0/169C0E8\","
        "\"metadata\":{\"disk_consistent_lsn\":\"0/169C0E8\",\"prev_record_lsn\":\"0/169C0A0\","
        "\"ancestor_lsn\":\"0/0\",\"latest_gc_cutoff_lsn\":\"0/16960E8\","
        "\"initdb_lsn\":\"0/16960E8\",\"pg_version\":16}}";
    p = parse_ok(unsorted);
    assert_string_equal(p->layers[0].name, IMAGE_LAYER);
    assert_serializes_to(p, SAMPLE);
    index_part_free(p);
}

static void test_round_trip_built(void **state)
{
    IndexPart *p = index_part_new();
    assert_int_equal(p->version, INDEX_PART_VERSION);
    Err err = {0};
    IndexLayer l = {.file_size = 100, .generation = GENERATION_NONE, .shard = {0, 0}};
    snprintf(l.name, sizeof(l.name), "%s", OTHER_LAYER);
    assert_true(index_part_add_layer(p, &l, &err));
    l.file_size = 7;
    l.generation = 0xdeadbeef;
    l.shard = (ShardIndex){3, 8};
    snprintf(l.name, sizeof(l.name), "%s", IMAGE_LAYER);
    assert_true(index_part_add_layer(p, &l, &err));
    p->disk_consistent_lsn = 0x100000000ull;
    p->metadata.disk_consistent_lsn = 0x100000000ull;
    p->metadata.has_ancestor = true;
    assert_true(timeline_id_parse(ANCESTOR_HEX, &p->metadata.ancestor_timeline, &err));
    p->metadata.ancestor_lsn = 0x16B5A50;
    p->metadata.pg_version = 15;
    index_part_set_deleted_at(p, 1706704496789LL);
    json_t *imp = NULL;
    const char *imp_text = "{\"V1\":{\"Done\":{\"idempotency_key\":\"k\"}}}";
    assert_true(json_parse_text(imp_text, strlen(imp_text), &imp, &err));
    index_part_set_import_pgdata(p, imp);
    json_decref(imp);

    const char *want =
        "{\"version\":1,\"layer_metadata\":{"
        "\"" IMAGE_LAYER "\":{\"file_size\":7,\"generation\":3735928559,\"shard\":\"0308\"},"
        "\"" OTHER_LAYER "\":{\"file_size\":100,\"shard\":\"0000\"}},"
        "\"disk_consistent_lsn\":\"1/0\","
        "\"metadata\":{\"disk_consistent_lsn\":\"1/0\",\"prev_record_lsn\":null,"
        "\"ancestor_timeline\":\"" ANCESTOR_HEX "\",\"ancestor_lsn\":\"0/16B5A50\","
        "\"latest_gc_cutoff_lsn\":\"0/0\",\"initdb_lsn\":\"0/0\",\"pg_version\":15},"
        "\"deleted_at\":\"2024-01-31T12:34:56.789Z\","
        "\"import_pgdata\":{\"V1\":{\"Done\":{\"idempotency_key\":\"k\"}}}}";
    assert_serializes_to(p, want);

    IndexPart *q = parse_ok(want);
    assert_serializes_to(q, want);
    assert_true(q->metadata.has_ancestor);
    assert_memory_equal(&q->metadata.ancestor_timeline, &p->metadata.ancestor_timeline,
                        sizeof(TimelineId));
    assert_true(q->has_deleted_at);
    assert_string_equal(q->deleted_at, "2024-01-31T12:34:56.789Z");
    assert_true(index_part_find_layer(q, OTHER_LAYER)->generation == GENERATION_NONE);
    assert_non_null(q->import_pgdata);
    assert_true(json_equal(q->import_pgdata, p->import_pgdata));

    /* a clone is independent of the original */
    IndexPart *c = index_part_clone(q);
    index_part_free(q);
    assert_serializes_to(c, want);
    assert_true(index_part_remove_layer(c, OTHER_LAYER));
    assert_int_equal(c->n_layers, 1);
    assert_int_equal(p->n_layers, 2);
    index_part_free(c);

    index_part_set_import_pgdata(p, NULL);
    assert_null(p->import_pgdata);
    index_part_free(p);
    index_part_free(NULL);
}

static void test_empty_index(void **state)
{
    IndexPart *p = index_part_new();
    const char *want = "{\"version\":1,\"layer_metadata\":{},\"disk_consistent_lsn\":\"0/0\","
                       "\"metadata\":{\"disk_consistent_lsn\":\"0/0\",\"prev_record_lsn\":null,"
                       "\"ancestor_timeline\":null,\"ancestor_lsn\":\"0/0\","
                       "\"latest_gc_cutoff_lsn\":\"0/0\",\"initdb_lsn\":\"0/0\",\"pg_version\":0}}";
    assert_serializes_to(p, want);
    IndexPart *q = parse_ok(want);
    assert_int_equal(q->n_layers, 0);
    assert_true(q->disk_consistent_lsn == LSN_INVALID);
    index_part_free(q);
    index_part_free(p);
}

/* Fields a newer writer (or Neon) adds are tolerated at every level and dropped on rewrite. */
static void test_unknown_fields_tolerated(void **state)
{
    const char *text =
        "{\"version\":14,\"archived_at\":null,\"lineage\":{\"reparenting_history\":[]},"
        "\"gc_blocking\":null,\"last_aux_file_policy\":\"V2\","
        "\"layer_metadata\":{\"" IMAGE_LAYER "\":{\"file_size\":5,\"generation\":3,"
        "\"shard\":\"0102\",\"compression\":\"zstd\"},"
        "\"" OTHER_LAYER "\":{\"file_size\":6}},"
        "\"disk_consistent_lsn\":\"0/169C0E8\","
        "\"metadata\":{\"disk_consistent_lsn\":\"0/169C0E8\",\"prev_record_lsn\":null,"
        "\"ancestor_timeline\":null,\"ancestor_lsn\":\"0/0\",\"latest_gc_cutoff_lsn\":\"0/0\","
        "\"initdb_lsn\":\"0/16960E8\",\"pg_version\":17,\"future_meta\":true},"
        "\"deleted_at\":null,\"import_pgdata\":null,\"rel_size_migration\":\"legacy\"}";
    IndexPart *p = parse_ok(text);
    assert_int_equal(p->version, 14); /* kept as read */
    assert_int_equal(p->n_layers, 2);
    const IndexLayer *l = index_part_find_layer(p, OTHER_LAYER);
    assert_non_null(l);
    assert_true(l->generation == GENERATION_NONE); /* absent: legacy none */
    assert_int_equal(l->shard.count, 0);           /* absent: unsharded */
    assert_int_equal(l->shard.number, 0);
    assert_true(p->metadata.prev_record_lsn == LSN_INVALID);
    assert_false(p->has_deleted_at);
    assert_null(p->import_pgdata);
    char *out = index_part_serialize(p);
    assert_null(strstr(out, "lineage"));
    assert_null(strstr(out, "future_meta"));
    assert_null(strstr(out, "compression"));
    free(out);
    index_part_free(p);

    /* Neon's naive (offset-less) deleted_at and an explicit null generation */
    p = parse_ok("{\"version\":1,\"layer_metadata\":{\"" IMAGE_LAYER
                 "\":{\"file_size\":1,\"generation\":null}},\"disk_consistent_lsn\":\"0/1\","
                 "\"metadata\":{\"disk_consistent_lsn\":\"0/1\",\"pg_version\":14},"
                 "\"deleted_at\":\"2023-10-10T12:00:00.123456\"}");
    assert_true(p->layers[0].generation == GENERATION_NONE);
    assert_true(p->has_deleted_at);
    assert_string_equal(p->deleted_at, "2023-10-10T12:00:00.123456");
    index_part_free(p);
}

static void test_deleted_at_forms(void **state)
{
    static const struct {
        const char *ts;
        bool ok;
    } cases[] = {
        {"2024-01-31T12:34:56Z", true},
        {"2024-01-31T12:34:56.789Z", true},
        {"2024-01-31T12:34:56.123456789+02:00", true},
        {"2024-01-31t12:34:56z", true},
        {"2024-01-31T12:34:56-05:30", true},
        {"2024-01-31T12:34:56", true},
        {"2024-12-31T23:59:60Z", true},
        {"yesterday", false},
        {"", false},
        {"2024-13-01T00:00:00Z", false},
        {"2024-00-01T00:00:00Z", false},
        {"2024-01-32T00:00:00Z", false},
        {"2024-01-31 12:34:56Z", false},
        {"2024-01-31T24:00:00Z", false},
        {"2024-01-31T12:34:56.Z", false},
        {"2024-01-31T12:34:56.1234567890Z", false},
        {"2024-01-31T12:34:56+0200", false},
        {"2024-01-31T12:34:56ZZ", false},
        {"2024-1-31T12:34:56Z", false},
        {"2024-01-31", false},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "{\"version\":1,\"layer_metadata\":{},\"disk_consistent_lsn\":\"0/1\","
                 "\"metadata\":{\"disk_consistent_lsn\":\"0/1\",\"pg_version\":16},"
                 "\"deleted_at\":\"%s\"}",
                 cases[i].ts);
        IndexPart *p = NULL;
        Err err = {0};
        bool ok = index_part_parse(text, strlen(text), &p, &err);
        if (ok != cases[i].ok)
            fail_msg("case %zu \"%s\": ok %d (%s)", i, cases[i].ts, ok, err.msg);
        if (ok) {
            assert_string_equal(p->deleted_at, cases[i].ts);
            index_part_free(p);
        } else {
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            assert_non_null(strstr(err.msg, "deleted_at"));
            assert_null(p);
        }
    }
}

static void test_malformed(void **state)
{
#define META_OK "\"metadata\":{\"disk_consistent_lsn\":\"0/1\",\"pg_version\":16}"
#define HEAD_OK "\"version\":1,\"disk_consistent_lsn\":\"0/1\","
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"", "invalid JSON"},
        {"{\"version\":1,", "invalid JSON"},
        {"[]", "object"},
        {"{\"version\":1,\"version\":1,\"layer_metadata\":{},\"disk_consistent_lsn\":\"0/"
         "1\"," META_OK "}",
         "invalid JSON"},
        {"{\"layer_metadata\":{},\"disk_consistent_lsn\":\"0/1\"," META_OK "}",
         "missing field \"version\""},
        {"{\"version\":\"1\",\"layer_metadata\":{},\"disk_consistent_lsn\":\"0/1\"," META_OK "}",
         "\"version\""},
        {"{\"version\":-1,\"layer_metadata\":{},\"disk_consistent_lsn\":\"0/1\"," META_OK "}",
         "\"version\""},
        {"{" HEAD_OK META_OK "}", "missing field \"layer_metadata\""},
        {"{" HEAD_OK "\"layer_metadata\":[]," META_OK "}", "\"layer_metadata\""},
        {"{" HEAD_OK "\"layer_metadata\":{}}", "missing field \"metadata\""},
        {"{" HEAD_OK "\"layer_metadata\":{},\"metadata\":[]}", "\"metadata\""},
        {"{\"version\":1,\"layer_metadata\":{}," META_OK "}",
         "missing field \"disk_consistent_lsn\""},
        {"{\"version\":1,\"layer_metadata\":{},\"disk_consistent_lsn\":\"xyz\"," META_OK "}",
         "\"disk_consistent_lsn\""},
        {"{\"version\":1,\"layer_metadata\":{},\"disk_consistent_lsn\":5," META_OK "}",
         "\"disk_consistent_lsn\""},
        {"{" HEAD_OK "\"layer_metadata\":{},\"metadata\":{\"pg_version\":16}}",
         "metadata: missing field \"disk_consistent_lsn\""},
        {"{" HEAD_OK "\"layer_metadata\":{},\"metadata\":{\"disk_consistent_lsn\":\"0/1\"}}",
         "metadata: missing field \"pg_version\""},
        {"{" HEAD_OK "\"layer_metadata\":{},\"metadata\":{\"disk_consistent_lsn\":\"0/1\","
         "\"pg_version\":\"16\"}}",
         "\"pg_version\""},
        {"{" HEAD_OK "\"layer_metadata\":{},\"metadata\":{\"disk_consistent_lsn\":\"0/1\","
         "\"pg_version\":16,\"ancestor_timeline\":\"zz\"}}",
         "\"ancestor_timeline\""},
        {"{" HEAD_OK "\"layer_metadata\":{},\"metadata\":{\"disk_consistent_lsn\":\"0/1\","
         "\"pg_version\":16,\"ancestor_lsn\":\"1/\"}}",
         "\"ancestor_lsn\""},
        {"{" HEAD_OK "\"layer_metadata\":{},\"metadata\":{\"disk_consistent_lsn\":\"0/1\","
         "\"pg_version\":16,\"prev_record_lsn\":12}}",
         "\"prev_record_lsn\""},
        {"{" HEAD_OK "\"layer_metadata\":{},\"metadata\":{\"disk_consistent_lsn\":\"0/1\","
         "\"pg_version\":16,\"initdb_lsn\":\"G/1\"}}",
         "\"initdb_lsn\""},
        {"{" HEAD_OK "\"layer_metadata\":{},\"metadata\":{\"disk_consistent_lsn\":\"0/1\","
         "\"pg_version\":16,\"latest_gc_cutoff_lsn\":\"123456789/1\"}}",
         "\"latest_gc_cutoff_lsn\""},
        /* layers */
        {"{" HEAD_OK "\"layer_metadata\":{\"" IMAGE_LAYER "\":5}," META_OK "}", "layer_metadata"},
        {"{" HEAD_OK "\"layer_metadata\":{\"" IMAGE_LAYER "\":{}}," META_OK "}",
         "missing field \"file_size\""},
        {"{" HEAD_OK "\"layer_metadata\":{\"" IMAGE_LAYER "\":{\"file_size\":\"10\"}}," META_OK "}",
         "\"file_size\""},
        {"{" HEAD_OK "\"layer_metadata\":{\"" IMAGE_LAYER "\":{\"file_size\":-1}}," META_OK "}",
         "\"file_size\""},
        {"{" HEAD_OK "\"layer_metadata\":{\"" IMAGE_LAYER
         "\":{\"file_size\":1,\"generation\":\"1\"}}," META_OK "}",
         "\"generation\""},
        {"{" HEAD_OK "\"layer_metadata\":{\"" IMAGE_LAYER
         "\":{\"file_size\":1,\"generation\":4294967296}}," META_OK "}",
         "\"generation\""},
        {"{" HEAD_OK "\"layer_metadata\":{\"" IMAGE_LAYER
         "\":{\"file_size\":1,\"shard\":\"01\"}}," META_OK "}",
         "\"shard\""},
        {"{" HEAD_OK "\"layer_metadata\":{\"" IMAGE_LAYER
         "\":{\"file_size\":1,\"shard\":\"0202\"}}," META_OK "}",
         "\"shard\""},
        {"{" HEAD_OK "\"layer_metadata\":{\"a/b\":{\"file_size\":1}}," META_OK "}",
         "invalid layer name"},
        {"{" HEAD_OK "\"layer_metadata\":{\"\":{\"file_size\":1}}," META_OK "}",
         "invalid layer name"},
        {"{" HEAD_OK "\"layer_metadata\":{\"..\":{\"file_size\":1}}," META_OK "}",
         "invalid layer name"},
        /* deleted_at and import_pgdata */
        {"{" HEAD_OK "\"layer_metadata\":{}," META_OK ",\"deleted_at\":5}", "\"deleted_at\""},
        {"{" HEAD_OK "\"layer_metadata\":{}," META_OK ",\"deleted_at\":\"now\"}", "deleted_at"},
        {"{" HEAD_OK "\"layer_metadata\":{}," META_OK ",\"import_pgdata\":\"x\"}",
         "\"import_pgdata\""},
        {"{" HEAD_OK "\"layer_metadata\":{}," META_OK ",\"import_pgdata\":[]}",
         "\"import_pgdata\""},
    };
#undef META_OK
#undef HEAD_OK
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        IndexPart *p = NULL;
        Err err = {0};
        if (index_part_parse(cases[i].text, strlen(cases[i].text), &p, &err))
            fail_msg("case %zu accepted: %s", i, cases[i].text);
        assert_null(p);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        if (strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, cases[i].msg);
        assert_non_null(strstr(err.msg, "index_part"));
    }
}

static void test_layer_helpers(void **state)
{
    IndexPart *p = index_part_new();
    Err err = {0};
    static const char *const names[] = {"m", "c", "x", "a", "k", "b", "z", "d"};
    for (size_t i = 0; i < COUNT_OF(names); i++) {
        IndexLayer l = {.file_size = i, .generation = (Generation)i, .shard = {0, 0}};
        snprintf(l.name, sizeof(l.name), "%s", names[i]);
        assert_true(index_part_add_layer(p, &l, &err));
    }
    /* grow past the initial capacity */
    for (int i = 0; i < 40; i++) {
        IndexLayer l = {.file_size = 1, .generation = 1, .shard = {0, 0}};
        snprintf(l.name, sizeof(l.name), "n%02d", 39 - i);
        assert_true(index_part_add_layer(p, &l, &err));
    }
    assert_int_equal(p->n_layers, COUNT_OF(names) + 40);
    for (size_t i = 1; i < p->n_layers; i++)
        assert_true(strcmp(p->layers[i - 1].name, p->layers[i].name) < 0);

    /* replace keeps one entry */
    IndexLayer r = {.file_size = 999, .generation = 77, .shard = {1, 2}};
    snprintf(r.name, sizeof(r.name), "k");
    assert_true(index_part_add_layer(p, &r, &err));
    assert_int_equal(p->n_layers, COUNT_OF(names) + 40);
    const IndexLayer *f = index_part_find_layer(p, "k");
    assert_non_null(f);
    assert_true(f->file_size == 999);
    assert_true(f->generation == 77);
    assert_int_equal(f->shard.count, 2);

    assert_null(index_part_find_layer(p, "kk"));
    assert_null(index_part_find_layer(p, ""));
    assert_true(index_part_remove_layer(p, "a"));
    assert_true(index_part_remove_layer(p, "z"));
    assert_true(index_part_remove_layer(p, "n17"));
    assert_false(index_part_remove_layer(p, "n17"));
    assert_false(index_part_remove_layer(p, "nope"));
    assert_null(index_part_find_layer(p, "a"));
    assert_non_null(index_part_find_layer(p, "b"));
    assert_non_null(index_part_find_layer(p, "x"));
    assert_int_equal(p->n_layers, COUNT_OF(names) + 40 - 3);
    assert_string_equal(p->layers[0].name, "b");
    assert_string_equal(p->layers[p->n_layers - 1].name, "x");

    /* invalid names are refused and change nothing */
    static const char *const bad[] = {"", "a/b", ".", "..", "sp ace", "q\"uote", "tab\t"};
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        IndexLayer l = {.file_size = 1, .generation = 1, .shard = {0, 0}};
        snprintf(l.name, sizeof(l.name), "%s", bad[i]);
        assert_false(index_part_add_layer(p, &l, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
    IndexLayer big = {.file_size = (uint64_t)INT64_MAX + 1, .generation = 1, .shard = {0, 0}};
    snprintf(big.name, sizeof(big.name), "big");
    assert_false(index_part_add_layer(p, &big, &err));
    assert_int_equal(p->n_layers, COUNT_OF(names) + 40 - 3);

    /* the longest allowed name, and one longer */
    char name[INDEX_LAYER_NAME_SIZE + 1];
    memset(name, 'A', sizeof(name));
    name[INDEX_LAYER_NAME_SIZE - 1] = '\0';
    assert_true(index_part_layer_name_check(name, &err));
    name[INDEX_LAYER_NAME_SIZE - 1] = 'A';
    name[INDEX_LAYER_NAME_SIZE] = '\0';
    assert_false(index_part_layer_name_check(name, &err));

    /* a serialised index lists layers in name order and parses back identically */
    char *text = index_part_serialize(p);
    IndexPart *q = parse_ok(text);
    assert_int_equal(q->n_layers, p->n_layers);
    for (size_t i = 0; i < p->n_layers; i++)
        assert_memory_equal(&q->layers[i], &p->layers[i], sizeof(IndexLayer));
    free(text);
    index_part_free(q);
    index_part_free(p);
}

static void test_deleted_at_format(void **state)
{
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1706704496789LL, "2024-01-31T12:34:56.789Z"},
        {1706704496001LL, "2024-01-31T12:34:56.001Z"},
        {951782400000LL, "2000-02-29T00:00:00.000Z"},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        IndexPart *p = index_part_new();
        index_part_set_deleted_at(p, cases[i].ms);
        assert_true(p->has_deleted_at);
        assert_string_equal(p->deleted_at, cases[i].want);
        /* what we write we can read */
        char *text = index_part_serialize(p);
        IndexPart *q = parse_ok(text);
        assert_string_equal(q->deleted_at, cases[i].want);
        free(text);
        index_part_free(q);
        index_part_free(p);
    }
}

/* ---- remote_layout ---- */

static void sample_ids(TenantShardId *sharded, TenantShardId *unsharded, TimelineId *tl)
{
    Err err = {0};
    assert_true(tsid_parse(TENANT_HEX "-0104", sharded, &err));
    assert_true(tsid_parse(TENANT_HEX, unsharded, &err));
    assert_true(timeline_id_parse(TIMELINE_HEX, tl, &err));
}

static void test_keys(void **state)
{
    TenantShardId s, u;
    TimelineId tl;
    sample_ids(&s, &u, &tl);
    char k[REMOTE_KEY_SIZE];

    remote_layout_index_key(&s, &tl, 7, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "-0104/timelines/" TIMELINE_HEX
                           "/index_part.json-00000007");
    remote_layout_index_key(&u, &tl, 0xDEADBEEF, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "/timelines/" TIMELINE_HEX
                           "/index_part.json-deadbeef");
    remote_layout_index_key(&u, &tl, GENERATION_NONE, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "/timelines/" TIMELINE_HEX "/index_part.json");
    remote_layout_index_key(&s, &tl, 0, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "-0104/timelines/" TIMELINE_HEX
                           "/index_part.json-00000000");

    remote_layout_manifest_key(&s, 0x1a, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "-0104/tenant-manifest-0000001a.json");
    remote_layout_manifest_key(&u, GENERATION_NONE, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "/tenant-manifest.json");

    remote_layout_heatmap_key(&s, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "-0104/heatmap-v1.json");
    remote_layout_heatmap_key(&u, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "/heatmap-v1.json");

    remote_layout_initdb_key(&s.tenant_id, &tl, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "/timelines/" TIMELINE_HEX "/initdb.tar.zst");

    remote_layout_tenant_shard_prefix(&s, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "-0104/");
    remote_layout_tenant_shard_prefix(&u, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "/");
    remote_layout_tenant_all_shards_prefix(&s.tenant_id, k);
    assert_string_equal(k, "tenants/" TENANT_HEX);
    remote_layout_timelines_prefix(&s, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "-0104/timelines/");
    remote_layout_timeline_prefix(&s, &tl, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "-0104/timelines/" TIMELINE_HEX "/");
    remote_layout_index_prefix(&u, &tl, k);
    assert_string_equal(k, "tenants/" TENANT_HEX "/timelines/" TIMELINE_HEX "/index_part.json");

    /* the all-shards prefix covers every shard's keys; a shard prefix only its own */
    char all[REMOTE_KEY_SIZE], one[REMOTE_KEY_SIZE], key[REMOTE_KEY_SIZE];
    remote_layout_tenant_all_shards_prefix(&u.tenant_id, all);
    remote_layout_tenant_shard_prefix(&u, one);
    remote_layout_heatmap_key(&s, key);
    assert_true(strncmp(key, all, strlen(all)) == 0);
    assert_false(strncmp(key, one, strlen(one)) == 0);
}

static void test_layer_keys(void **state)
{
    TenantShardId s, u;
    TimelineId tl;
    sample_ids(&s, &u, &tl);
    static const struct {
        ShardIndex writer;
        Generation gen;
        const char *want;
    } cases[] = {
        /* the writer's shard, not the reader's (0104 reading a layer its parent 0002 wrote) */
        {{0, 2},
         5,
         "tenants/" TENANT_HEX "-0002/timelines/" TIMELINE_HEX "/" IMAGE_LAYER "-00000005"},
        {{1, 4},
         5,
         "tenants/" TENANT_HEX "-0104/timelines/" TIMELINE_HEX "/" IMAGE_LAYER "-00000005"},
        {{0, 1},
         0xabcdef12,
         "tenants/" TENANT_HEX "-0001/timelines/" TIMELINE_HEX "/" IMAGE_LAYER "-abcdef12"},
        /* an unsharded writer: no suffix on the tenant */
        {{0, 0}, 1, "tenants/" TENANT_HEX "/timelines/" TIMELINE_HEX "/" IMAGE_LAYER "-00000001"},
        /* generation none: no suffix on the name */
        {{0, 0}, GENERATION_NONE, "tenants/" TENANT_HEX "/timelines/" TIMELINE_HEX "/" IMAGE_LAYER},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        char k[REMOTE_KEY_SIZE];
        Err err = {0};
        assert_true(remote_layout_layer_key(&s.tenant_id, cases[i].writer, &tl, IMAGE_LAYER,
                                            cases[i].gen, k, &err));
        assert_string_equal(k, cases[i].want);
    }
    char long_name[400];
    memset(long_name, 'A', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    static const char *const bad[] = {"", "a/b", ".", ".."};
    for (size_t i = 0; i <= COUNT_OF(bad); i++) {
        const char *name = i < COUNT_OF(bad) ? bad[i] : long_name;
        char k[REMOTE_KEY_SIZE];
        Err err = {0};
        assert_false(
            remote_layout_layer_key(&s.tenant_id, (ShardIndex){0, 0}, &tl, name, 1, k, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
}

static void test_parse_index_key(void **state)
{
    static const struct {
        const char *key;
        bool ok;
        Generation gen;
    } cases[] = {
        {"index_part.json-0000000a", true, 10},
        {"index_part.json-00000000", true, 0},
        {"index_part.json-ffffffff", true, GENERATION_MAX},
        {"index_part.json", true, GENERATION_NONE},
        {"tenants/" TENANT_HEX "-0104/timelines/" TIMELINE_HEX "/index_part.json-00000007", true,
         7},
        {"tenants/" TENANT_HEX "/timelines/" TIMELINE_HEX "/index_part.json", true,
         GENERATION_NONE},
        {"index_part.json-1", false, 0},
        {"index_part.json-000000010", false, 0},
        {"index_part.json00000001", false, 0},
        {"index_part.jsonx", false, 0},
        {"index_part.json-0000000g", false, 0},
        {"index_part.json-", false, 0},
        {"heatmap-v1.json", false, 0},
        {"tenants/x/timelines/y/" IMAGE_LAYER "-00000001", false, 0},
        {"tenants/x/index_part.json-00000001/other", false, 0},
        {"", false, 0},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        Generation g = 12345;
        Err err = {0};
        bool ok = remote_layout_parse_index_key(cases[i].key, &g, &err);
        if (ok != cases[i].ok)
            fail_msg("case %zu \"%s\": ok %d", i, cases[i].key, ok);
        if (ok)
            assert_true(g == cases[i].gen);
        else
            assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
    /* what the builder writes, the parser reads */
    TenantShardId s, u;
    TimelineId tl;
    sample_ids(&s, &u, &tl);
    static const Generation gens[] = {GENERATION_NONE, 0, 1, 0x7fffffff, GENERATION_MAX};
    for (size_t i = 0; i < COUNT_OF(gens); i++) {
        char k[REMOTE_KEY_SIZE];
        Generation g = 0;
        Err err = {0};
        remote_layout_index_key(&s, &tl, gens[i], k);
        assert_true(remote_layout_parse_index_key(k, &g, &err));
        assert_true(g == gens[i]);
        remote_layout_manifest_key(&s, gens[i], k);
        assert_true(remote_layout_parse_manifest_key(k, &g, &err));
        assert_true(g == gens[i]);
    }
}

static void test_parse_manifest_key(void **state)
{
    static const struct {
        const char *key;
        bool ok;
        Generation gen;
    } cases[] = {
        {"tenant-manifest-00000003.json", true, 3},
        {"tenant-manifest.json", true, GENERATION_NONE},
        {"tenants/" TENANT_HEX "/tenant-manifest-0000000b.json", true, 11},
        {"tenant-manifest-3.json", false, 0},
        {"tenant-manifest-00000003", false, 0},
        {"tenant-manifest-00000003.jsonx", false, 0},
        {"tenant-manifest-0000000300000000000.json", false, 0},
        {"tenant-manifest", false, 0},
        {"heatmap-v1.json", false, 0},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        Generation g = 12345;
        Err err = {0};
        bool ok = remote_layout_parse_manifest_key(cases[i].key, &g, &err);
        if (ok != cases[i].ok)
            fail_msg("case %zu \"%s\": ok %d", i, cases[i].key, ok);
        if (ok)
            assert_true(g == cases[i].gen);
    }
}

#define NONE GENERATION_NONE

static void test_pick_index_generation(void **state)
{
    static const struct {
        Generation available[6];
        size_t n;
        Generation g;
        bool found;
        Generation picked;
    } cases[] = {
        {{0}, 0, 5, false, 0},                         /* nothing listed */
        {{5}, 1, 5, true, 5},                          /* g itself */
        {{3, 4, 6}, 3, 5, true, 4},                    /* g-1; never the newer 6 */
        {{4, 5, 6}, 3, 5, true, 5},                    /* g preferred over g-1 */
        {{1, 2, 9}, 3, 5, true, 2},                    /* gap: highest <= g */
        {{9, 2, 1}, 3, 5, true, 2},                    /* order does not matter */
        {{NONE}, 1, 5, true, NONE},                    /* only the legacy index */
        {{3, NONE}, 2, 1, true, NONE},                 /* legacy is below every number */
        {{NONE, 0}, 2, 0, true, 0},                    /* 0 beats none */
        {{NONE, 0}, 2, 1, true, 0},                    /* g-1 = 0 */
        {{7, 8}, 2, 5, false, 0},                      /* everything is newer */
        {{NONE, 1}, 2, NONE, true, NONE},              /* attaching without a generation */
        {{1, 2}, 2, NONE, false, 0},                   /* ... never reads numbered ones */
        {{4, 4, 2}, 3, 4, true, 4},                    /* duplicates */
        {{-5, (Generation)1 << 33, 3}, 3, 9, true, 3}, /* out-of-range values are ignored */
        {{GENERATION_MAX, 1}, 2, GENERATION_MAX, true, GENERATION_MAX},
        {{GENERATION_MAX - 1, 1}, 2, GENERATION_MAX, true, GENERATION_MAX - 1},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        Generation picked = 4242;
        bool found = !cases[i].found;
        remote_layout_pick_index_generation(cases[i].available, cases[i].n, cases[i].g, &picked,
                                            &found);
        if (found != cases[i].found)
            fail_msg("case %zu: found %d", i, found);
        if (found && picked != cases[i].picked)
            fail_msg("case %zu: picked %lld, want %lld", i, (long long)picked,
                     (long long)cases[i].picked);
        if (!found)
            assert_true(picked == 4242);
    }
}

static void test_index_candidates(void **state)
{
    Generation c[2];
    size_t n = 0;
    remote_layout_index_candidates(5, c, &n);
    assert_int_equal(n, 2);
    assert_true(c[0] == 5 && c[1] == 4);
    remote_layout_index_candidates(0, c, &n);
    assert_int_equal(n, 2);
    assert_true(c[0] == 0 && c[1] == GENERATION_NONE);
    remote_layout_index_candidates(GENERATION_NONE, c, &n);
    assert_int_equal(n, 1);
    assert_true(c[0] == GENERATION_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_round_trip_built),
        cmocka_unit_test(test_empty_index),
        cmocka_unit_test(test_unknown_fields_tolerated),
        cmocka_unit_test(test_deleted_at_forms),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_layer_helpers),
        cmocka_unit_test(test_deleted_at_format),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_layer_keys),
        cmocka_unit_test(test_parse_index_key),
        cmocka_unit_test(test_parse_manifest_key),
        cmocka_unit_test(test_pick_index_generation),
        cmocka_unit_test(test_index_candidates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
