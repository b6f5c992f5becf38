/* test_pageserver_deletion_queue.c: unit tests for the persisted parts of
 * pageserver/deletion_queue.c: list grouping, serialisation round trips, rejection of malformed
 * lists, dropping stale generations after validation, list file names and the header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/id.h"

#include "pageserver/deletion_queue.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#define T0 "1f359dd625e519a1a4e8d7509690f6fc-0004"
#define T1 "1f359dd625e519a1a4e8d7509690f6fc-0104"

static TenantShardId tsid(const char *s)
{
    TenantShardId id;
    Err err = {0};
    if (!tsid_parse(s, &id, &err))
        fail_msg("%s", err.msg);
    return id;
}

static void build(DeletionList *l)
{
    TenantShardId a = tsid(T0), b = tsid(T1);
    deletion_list_init(l);
    l->sequence = 7;
    deletion_list_add(l, &a, 3, "tenants/" T0 "/timelines/x/l1-00000003");
    deletion_list_add(l, &b, 3, "tenants/" T1 "/timelines/x/l2-00000003");
    deletion_list_add(l, &a, 3, "tenants/" T0 "/timelines/x/index_part.json-00000003");
    deletion_list_add(l, &a, 4, "tenants/" T0 "/timelines/x/l3-00000004");
}

static void test_grouping_keeps_push_order(void **state)
{
    (void)state;
    DeletionList l;
    build(&l);
    assert_int_equal(l.n_items, 3);
    assert_int_equal(deletion_list_object_count(&l), 4);
    assert_int_equal(l.items[0].gen, 3);
    assert_int_equal(l.items[0].n_objects, 2);
    /* within an item the push order is kept: the index after the layer */
    assert_string_equal(l.items[0].objects[1],
                        "tenants/" T0 "/timelines/x/index_part.json-00000003");
    assert_int_equal(l.items[2].gen, 4);
    deletion_list_finish(&l);
    assert_int_equal(l.n_items, 0);
}

static void test_roundtrip(void **state)
{
    (void)state;
    DeletionList l, back;
    build(&l);
    char *text = deletion_list_serialize(&l);
    Err err = {0};
    assert_true(deletion_list_parse(text, strlen(text), &back, &err));
    assert_int_equal(back.sequence, 7);
    assert_int_equal(back.n_items, l.n_items);
    for (size_t i = 0; i < l.n_items; i++) {
        assert_true(tsid_eq(&back.items[i].tsid, &l.items[i].tsid));
        assert_int_equal(back.items[i].gen, l.items[i].gen);
        assert_int_equal(back.items[i].n_objects, l.items[i].n_objects);
        for (size_t k = 0; k < l.items[i].n_objects; k++)
            assert_string_equal(back.items[i].objects[k], l.items[i].objects[k]);
    }
    char *again = deletion_list_serialize(&back);
    assert_string_equal(text, again);
    free(again);
    free(text);
    deletion_list_finish(&back);
    deletion_list_finish(&l);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{\"version\":1,\"items\":[]}",
        "{\"version\":2,\"sequence\":1,\"items\":[]}",
        "{\"version\":1,\"sequence\":1,\"items\":{}}",
        "{\"version\":1,\"sequence\":1,\"items\":[{\"generation\":1,\"objects\":[]}]}",
        "{\"version\":1,\"sequence\":1,\"items\":[{\"tenant_shard_id\":\"zz\",\"generation\":1,"
        "\"objects\":[]}]}",
        "{\"version\":1,\"sequence\":1,\"items\":[{\"tenant_shard_id\":\"" T0
        "\",\"generation\":1,\"objects\":[5]}]}",
        "{\"version\":1,\"sequence\":1,\"items\":[{\"tenant_shard_id\":\"" T0
        "\",\"generation\":1,\"objects\":[\"/abs/key\"]}]}",
        "{\"version\":1,\"sequence\":1,\"items\":[{\"tenant_shard_id\":\"" T0
        "\",\"generation\":1,\"objects\":[\"a/../b\"]}]}",
        "{\"version\":1,\"sequence\":-1,\"items\":[]}",
    };
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        DeletionList l;
        Err err = {0};
        if (deletion_list_parse(bad[i], strlen(bad[i]), &l, &err))
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_int_equal(l.n_items, 0);
    }
}

static void test_drop_invalid(void **state)
{
    (void)state;
    DeletionList l;
    build(&l);
    ValidateItem answers[] = {
        {.tsid = tsid(T0), .gen = 3, .valid = false}, /* stale: dropped (2 objects) */
        {.tsid = tsid(T1), .gen = 3, .valid = true},  /* kept */
        {.tsid = tsid(T0), .gen = 4, .valid = true},  /* kept */
    };
    size_t dropped = deletion_list_drop_invalid(&l, answers, COUNT_OF(answers));
    assert_int_equal(dropped, 2);
    assert_int_equal(l.n_items, 2);
    assert_true(tsid_eq(&l.items[0].tsid, &answers[1].tsid));
    assert_int_equal(l.items[1].gen, 4);
    /* an item the answer does not name is invalid */
    dropped = deletion_list_drop_invalid(&l, answers + 1, 1);
    assert_int_equal(dropped, 1);
    assert_int_equal(l.n_items, 1);
    /* a valid answer for another generation does not validate the item */
    ValidateItem other = {.tsid = tsid(T1), .gen = 4, .valid = true};
    dropped = deletion_list_drop_invalid(&l, &other, 1);
    assert_int_equal(dropped, 1);
    assert_int_equal(l.n_items, 0);
    deletion_list_finish(&l);
}

typedef struct NameCase {
    const char *name;
    bool ok;
    uint64_t seq;
} NameCase;

static void test_file_names(void **state)
{
    (void)state;
    char name[64];
    deletion_list_file_name(0x2a, name, sizeof(name));
    assert_string_equal(name, "000000000000002a.list");
    static const NameCase cases[] = {
        {"000000000000002a.list", true, 0x2a},
        {"ffffffffffffffff.list", true, UINT64_MAX},
        {"000000000000002A.list", false, 0},
        {"00000000000002a.list", false, 0},
        {"000000000000002a.lst", false, 0},
        {"000000000000002a.list.tmp.1.2", false, 0},
        {"header.json", false, 0},
        {"", false, 0},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        uint64_t seq = 0;
        assert_int_equal(deletion_list_file_parse(cases[i].name, &seq), cases[i].ok);
        if (cases[i].ok)
            assert_int_equal(seq, cases[i].seq);
    }
}

static void test_header(void **state)
{
    (void)state;
    char *text = deletion_header_serialize(12345);
    uint64_t seq = 0;
    Err err = {0};
    assert_true(deletion_header_parse(text, strlen(text), &seq, &err));
    assert_int_equal(seq, 12345);
    free(text);
    static const char *const bad[] = {"{}", "{\"version\":1}",
                                      "{\"version\":9,\"validated_sequence\":1}",
                                      "{\"version\":1,\"validated_sequence\":\"1\"}", "nope"};
    for (size_t i = 0; i < COUNT_OF(bad); i++)
        assert_false(deletion_header_parse(bad[i], strlen(bad[i]), &seq, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grouping_keeps_push_order),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_drop_invalid),
        cmocka_unit_test(test_file_names),
        cmocka_unit_test(test_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
