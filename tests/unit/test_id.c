/* test_id.c: unit tests for shared/id.c (wire.md "Identifiers"): round trips, canonical output,
 * ordering, and a long table of malformed inputs that must each be rejected with a 400 that names
 * the bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/id.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

#define TENANT_HEX "1f359dd625e519a1a4e8d7509690f6fc"

/* assert_rejected: a parse failed with a 400 whose message quotes the input (short printable
 * inputs only: longer ones are shortened, unprintable ones escaped). */
static void assert_rejected(bool ok, const Err *err, const char *input)
{
    assert_false(ok);
    assert_int_equal(err->code, ERR_BAD_REQUEST);
    assert_true(err->msg[0] != '\0');
    bool printable = true;
    for (const char *p = input; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"' || *p == '\\')
            printable = false;
    }
    if (printable && strlen(input) <= 48 && input[0] != '\0') {
        if (strstr(err->msg, input) == NULL)
            fail_msg("message \"%s\" does not name input \"%s\"", err->msg, input);
    }
}

static void test_tenant_timeline_round_trip(void **state)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {TENANT_HEX, TENANT_HEX},
        {"1F359DD625E519A1A4E8D7509690F6FC", TENANT_HEX},
        {"1F359dd625E519a1a4e8d7509690f6FC", TENANT_HEX},
        {"00000000000000000000000000000000", "00000000000000000000000000000000"},
        {"ffffffffffffffffffffffffffffffff", "ffffffffffffffffffffffffffffffff"},
        {"0123456789abcdefABCDEF0123456789", "0123456789abcdefabcdef0123456789"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        Err err = {0};
        TenantId t;
        TimelineId tl;
        char buf[ID_STR_SIZE];
        assert_true(tenant_id_parse(cases[i].in, &t, &err));
        tenant_id_format(&t, buf);
        assert_string_equal(buf, cases[i].out);
        assert_true(timeline_id_parse(cases[i].in, &tl, &err));
        timeline_id_format(&tl, buf);
        assert_string_equal(buf, cases[i].out);
    }
    TenantId t;
    Err err = {0};
    assert_true(tenant_id_parse(TENANT_HEX, &t, &err));
    assert_int_equal(t.b[0], 0x1f);
    assert_int_equal(t.b[1], 0x35);
    assert_int_equal(t.b[15], 0xfc);
}

static void test_tenant_timeline_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "1",
        "1f359dd625e519a1a4e8d7509690f6f",                    /* 31 */
        "1f359dd625e519a1a4e8d7509690f6fc0",                  /* 33 */
        "1f359dd625e519a1a4e8d7509690f6fc-0104",              /* a tsid, not an id */
        "g f359dd625e519a1a4e8d7509690f6f",                   /* non-hex */
        "1f359dd625e519a1a4e8d7509690f6fg",                   /* non-hex last */
        "1f359dd625e519a1a4e8d7509690f6f ",                   /* trailing space */
        " 1f359dd625e519a1a4e8d7509690f6f",                   /* leading space */
        "+1f359dd625e519a1a4e8d7509690f6f",                   /* sign */
        "-1f359dd625e519a1a4e8d7509690f6f",                   /* sign */
        "0x1f359dd625e519a1a4e8d7509690f6",                   /* prefix */
        "1f359dd6-25e5-19a1-a4e8-d7509690",                   /* uuid-style dashes */
        "1f359dd625e519a1a4e8d7509690f6\xc3\xa9",             /* UTF-8 */
        "1f359dd625e519a1a4e8d7509690f6\n",                   /* control */
        "1f359dd625e519a1a4e8d7509690f6fc1f359dd625e519a1a4", /* long */
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        Err err = {0};
        TenantId t;
        TimelineId tl;
        assert_rejected(tenant_id_parse(bad[i], &t, &err), &err, bad[i]);
        assert_non_null(strstr(err.msg, "tenant id"));
        err_clear(&err);
        assert_rejected(timeline_id_parse(bad[i], &tl, &err), &err, bad[i]);
        assert_non_null(strstr(err.msg, "timeline id"));
    }
    Err err = {0};
    TenantId t;
    assert_false(tenant_id_parse(NULL, &t, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    /* an unprintable character is escaped, not copied into the message */
    assert_false(tenant_id_parse("1f359dd625e519a1a4e8d7509690f6\n", &t, &err));
    assert_null(strchr(err.msg, '\n'));
    assert_non_null(strstr(err.msg, "\\x0a"));
    /* the position of the bad digit is named */
    assert_false(tenant_id_parse("1f359dd625e519a1a4e8d7509690f6fg", &t, &err));
    assert_non_null(strstr(err.msg, "position 31"));
    /* a failed parse leaves the output untouched */
    TenantId keep;
    memset(&keep, 0xab, sizeof(keep));
    assert_false(tenant_id_parse("1f359dd625e519a1a4e8d7509690f6fg", &keep, &err));
    for (size_t i = 0; i < ID_BYTES; i++)
        assert_int_equal(keep.b[i], 0xab);
}

static void test_id_eq_cmp_generate(void **state)
{
    Err err = {0};
    TenantId a;
    TenantId b;
    TenantId c;
    assert_true(tenant_id_parse("00000000000000000000000000000001", &a, &err));
    assert_true(tenant_id_parse("00000000000000000000000000000002", &b, &err));
    assert_true(tenant_id_parse("10000000000000000000000000000000", &c, &err));
    assert_true(tenant_id_cmp(&a, &b) < 0);
    assert_true(tenant_id_cmp(&b, &a) > 0);
    assert_true(tenant_id_cmp(&b, &c) < 0);
    assert_int_equal(tenant_id_cmp(&a, &a), 0);
    assert_true(tenant_id_eq(&a, &a));
    assert_false(tenant_id_eq(&a, &b));

    TimelineId x;
    TimelineId y;
    assert_true(timeline_id_parse("ff000000000000000000000000000000", &x, &err));
    assert_true(timeline_id_parse("fe000000000000000000000000000000", &y, &err));
    assert_true(timeline_id_cmp(&x, &y) > 0);
    assert_false(timeline_id_eq(&x, &y));

    /* generated ids are random: distinct, and they survive a text round trip */
    TenantId g1;
    TenantId g2;
    tenant_id_generate(&g1);
    tenant_id_generate(&g2);
    assert_false(tenant_id_eq(&g1, &g2));
    char buf[ID_STR_SIZE];
    tenant_id_format(&g1, buf);
    assert_int_equal(strlen(buf), ID_HEX_LEN);
    TenantId back;
    assert_true(tenant_id_parse(buf, &back, &err));
    assert_true(tenant_id_eq(&g1, &back));
    TimelineId t1;
    TimelineId t2;
    timeline_id_generate(&t1);
    timeline_id_generate(&t2);
    assert_false(timeline_id_eq(&t1, &t2));
}

static void test_shard_index(void **state)
{
    static const struct {
        const char *in;
        uint8_t number, count;
        const char *out;
    } good[] = {
        {"0000", 0, 0, "0000"},  {"0001", 0, 1, "0001"},  {"0104", 1, 4, "0104"},
        {"070a", 7, 10, "070a"}, {"070A", 7, 10, "070a"}, {"feff", 254, 255, "feff"},
        {"0008", 0, 8, "0008"},
    };
    for (size_t i = 0; i < N_ELEMS(good); i++) {
        Err err = {0};
        ShardIndex idx;
        assert_true(shard_index_parse(good[i].in, &idx, &err));
        assert_int_equal(idx.number, good[i].number);
        assert_int_equal(idx.count, good[i].count);
        char buf[SHARD_INDEX_STR_SIZE];
        shard_index_format(idx, buf);
        assert_string_equal(buf, good[i].out);
    }
    static const char *const bad[] = {
        "",     "0",    "010",  "01040", "0404", "0504", "ffff", "0100",   "0g04", "g004",
        " 104", "104 ", "+104", "-104",  "01-4", "0x04", "01 4", "0104\t", "ff00", "0201",
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        Err err = {0};
        ShardIndex idx;
        assert_rejected(shard_index_parse(bad[i], &idx, &err), &err, bad[i]);
    }
    Err err = {0};
    ShardIndex idx;
    assert_false(shard_index_parse(NULL, &idx, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
}

static void test_tsid(void **state)
{
    static const struct {
        const char *in;
        uint8_t number, count;
        const char *out;
    } good[] = {
        {TENANT_HEX, 0, 0, TENANT_HEX},
        {TENANT_HEX "-0001", 0, 1, TENANT_HEX "-0001"},
        {TENANT_HEX "-070a", 7, 10, TENANT_HEX "-070a"},
        {"1F359DD625E519A1A4E8D7509690F6FC-070A", 7, 10, TENANT_HEX "-070a"},
        {TENANT_HEX "-0104", 1, 4, TENANT_HEX "-0104"},
        {TENANT_HEX "-feff", 254, 255, TENANT_HEX "-feff"},
    };
    for (size_t i = 0; i < N_ELEMS(good); i++) {
        Err err = {0};
        TenantShardId id;
        assert_true(tsid_parse(good[i].in, &id, &err));
        assert_int_equal(id.number, good[i].number);
        assert_int_equal(id.count, good[i].count);
        char buf[TSID_STR_SIZE];
        tsid_format(&id, buf);
        assert_string_equal(buf, good[i].out);
        ShardIndex idx = tsid_shard_index(&id);
        assert_int_equal(idx.number, good[i].number);
        assert_int_equal(idx.count, good[i].count);
    }
    static const char *const bad[] = {
        "",
        TENANT_HEX "-0000",                      /* count 0 must be the bare form */
        TENANT_HEX "-0404",                      /* number >= count */
        TENANT_HEX "-0a0a",                      /* number >= count */
        TENANT_HEX "-0100",                      /* count 0 with number 1 */
        TENANT_HEX "_0104",                      /* wrong separator */
        TENANT_HEX "0104",                       /* missing separator: 36 chars */
        TENANT_HEX "-104",                       /* 36 chars */
        TENANT_HEX "-01040",                     /* 38 chars */
        TENANT_HEX "-01g4",                      /* non-hex shard */
        TENANT_HEX "-+104",                      /* sign */
        TENANT_HEX "- 104",                      /* space */
        TENANT_HEX "-0104 ",                     /* trailing space */
        (" " TENANT_HEX),                        /* leading space: 33 chars */
        "1f359dd625e519a1a4e8d7509690f6fz-0104", /* non-hex tenant */
        "1f359dd625e519a1a4e8d7509690f6f",       /* 31 */
        "-1f359dd625e519a1a4e8d7509690f6f",      /* sign, 32 chars */
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        Err err = {0};
        TenantShardId id;
        assert_rejected(tsid_parse(bad[i], &id, &err), &err, bad[i]);
    }

    /* count 1 is a distinct id from count 0 */
    Err err = {0};
    TenantShardId u;
    TenantShardId one;
    assert_true(tsid_parse(TENANT_HEX, &u, &err));
    assert_true(tsid_parse(TENANT_HEX "-0001", &one, &err));
    assert_false(tsid_eq(&u, &one));
    assert_true(tsid_cmp(&u, &one) < 0);
    TenantShardId un = tsid_unsharded(&one.tenant_id);
    assert_true(tsid_eq(&un, &u));
    assert_true(tenant_id_eq(&u.tenant_id, &one.tenant_id));

    /* ordering: tenant, then number, then count */
    static const char *const ordered[] = {
        "0f359dd625e519a1a4e8d7509690f6fc-0304",
        TENANT_HEX,
        TENANT_HEX "-0001",
        TENANT_HEX "-0002",
        TENANT_HEX "-0004",
        TENANT_HEX "-0102",
        TENANT_HEX "-0104",
        TENANT_HEX "-0308",
        "2f359dd625e519a1a4e8d7509690f6fc",
    };
    for (size_t i = 0; i < N_ELEMS(ordered); i++) {
        for (size_t j = 0; j < N_ELEMS(ordered); j++) {
            TenantShardId a;
            TenantShardId b;
            if (!tsid_parse(ordered[i], &a, &err) || !tsid_parse(ordered[j], &b, &err))
                fail_msg("parse: %s", err.msg);
            int c = tsid_cmp(&a, &b);
            if (i < j)
                assert_true(c < 0);
            else if (i > j)
                assert_true(c > 0);
            else
                assert_int_equal(c, 0);
            assert_int_equal(tsid_eq(&a, &b), i == j);
        }
    }
}

static void test_shard_params_validate(void **state)
{
    static const struct {
        uint8_t number, count;
        uint32_t stripe;
        bool ok;
    } cases[] = {
        {0, 0, 2048, true},      {0, 1, 2048, true},  {0, 4, 2048, true},  {3, 4, 1, true},
        {254, 255, 32768, true}, {4, 4, 2048, false}, {5, 4, 2048, false}, {1, 0, 2048, false},
        {0, 0, 0, false},        {0, 4, 0, false},    {1, 1, 2048, false}, {255, 255, 1, false},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        Err err = {0};
        bool ok = shard_params_validate(cases[i].number, cases[i].count, cases[i].stripe, &err);
        if (ok != cases[i].ok)
            fail_msg("case %zu: (%u, %u, %u) expected %d", i, cases[i].number, cases[i].count,
                     cases[i].stripe, cases[i].ok);
        if (!ok)
            assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
}

static void test_lsn(void **state)
{
    static const struct {
        const char *in;
        Lsn v;
        const char *out;
        const char *file;
    } good[] = {
        {"0/16960E8", 0x16960E8, "0/16960E8", "00000000016960E8"},
        {"0/16960e8", 0x16960E8, "0/16960E8", "00000000016960E8"},
        {"0/1", 1, "0/1", "0000000000000001"},
        {"1/0", 0x100000000ull, "1/0", "0000000100000000"},
        {"00000000/00000001", 1, "0/1", "0000000000000001"},
        {"FFFFFFFF/FFFFFFFF", UINT64_MAX, "FFFFFFFF/FFFFFFFF", "FFFFFFFFFFFFFFFF"},
        {"ffffffff/ffffffff", UINT64_MAX, "FFFFFFFF/FFFFFFFF", "FFFFFFFFFFFFFFFF"},
        {"AbC/dEf0", 0xABC0000DEF0ull, "ABC/DEF0", "00000ABC0000DEF0"},
        {"12345678/9ABCDEF0", 0x123456789ABCDEF0ull, "12345678/9ABCDEF0", "123456789ABCDEF0"},
    };
    for (size_t i = 0; i < N_ELEMS(good); i++) {
        Err err = {0};
        Lsn v = 0;
        assert_true(lsn_parse(good[i].in, &v, &err));
        assert_int_equal(v, good[i].v);
        char buf[LSN_STR_SIZE];
        lsn_format(v, buf);
        assert_string_equal(buf, good[i].out);
        char fbuf[LSN_FILE_STR_SIZE];
        lsn_format_file(v, fbuf);
        assert_string_equal(fbuf, good[i].file);
        Lsn fv = 0;
        assert_true(lsn_parse_file(fbuf, &fv, &err));
        assert_int_equal(fv, v);
    }
    static const char *const bad[] = {
        "",
        "0/0",
        "00000000/00000000",
        "0/00",
        "/",
        "1/",
        "/1",
        "1",
        "16960E8",
        "1//1",
        "1/1/1",
        "123456789/0",
        "0/123456789",
        " 0/1",
        "0/1 ",
        "0 /1",
        "0/ 1",
        "+0/1",
        "-0/1",
        "0/-1",
        "0/+1",
        "0x1/1",
        "0/0x1",
        "0/g",
        "g/0",
        "0/1\n",
        "0\\1",
        "0:1",
        "0/1.",
        "FFFFFFFF/FFFFFFFFF",
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        Err err = {0};
        Lsn v = 42;
        assert_rejected(lsn_parse(bad[i], &v, &err), &err, bad[i]);
        assert_int_equal(v, 42);
    }
    static const char *const bad_file[] = {
        "",
        "00000000016960e8",  /* lowercase */
        "0000000016960E8",   /* 15 */
        "000000000016960E8", /* 17 */
        "0000000000000000",  /* zero */
        "0/16960E8",
        " 00000000016960E",
        "00000000016960E ",
        "+00000000016960E",
        "-00000000016960E",
        "0x000000016960E8",
        "00000000016960G8",
    };
    for (size_t i = 0; i < N_ELEMS(bad_file); i++) {
        Err err = {0};
        Lsn v = 42;
        assert_rejected(lsn_parse_file(bad_file[i], &v, &err), &err, bad_file[i]);
        assert_int_equal(v, 42);
    }
    Err err = {0};
    Lsn v;
    assert_false(lsn_parse(NULL, &v, &err));
    assert_false(lsn_parse_file(NULL, &v, &err));
    /* the message says which half is wrong */
    assert_false(lsn_parse("123456789/0", &v, &err));
    assert_non_null(strstr(err.msg, "high"));
    assert_false(lsn_parse("0/", &v, &err));
    assert_non_null(strstr(err.msg, "low"));
    char buf[LSN_STR_SIZE];
    lsn_format(LSN_INVALID, buf);
    assert_string_equal(buf, "0/0");
}

static void test_generation(void **state)
{
    static const struct {
        Generation g;
        const char *suffix;
    } good[] = {
        {GENERATION_NONE, ""}, {0, "-00000000"},          {1, "-00000001"},
        {0xa, "-0000000a"},    {0xdeadbeef, "-deadbeef"}, {GENERATION_MAX, "-ffffffff"},
    };
    for (size_t i = 0; i < N_ELEMS(good); i++) {
        char buf[GENERATION_SUFFIX_SIZE];
        generation_suffix(good[i].g, buf);
        assert_string_equal(buf, good[i].suffix);
        Err err = {0};
        Generation back = 12345;
        assert_true(generation_parse_suffix(good[i].suffix, &back, &err));
        assert_int_equal(back, good[i].g);
    }
    static const char *const bad[] = {
        "-0000000A",  /* uppercase */
        "-DEADBEEF",  /* uppercase */
        "-1",         /* not padded */
        "-0000001",   /* 8 chars */
        "00000001",   /* no dash */
        "x00000001",  /* wrong first char */
        "+00000001",  /* sign */
        "-000000001", /* 10 chars */
        "--0000001",  /* sign inside */
        "-+0000001",  /* sign inside */
        "- 0000001",  /* space */
        " -0000001",  /* leading space */
        "-0000001 ",  /* trailing space */
        "-0000000g",  /* non-hex */
        "-",          /* dash only */
        " ",          /* space only */
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        Err err = {0};
        Generation g = 7;
        assert_rejected(generation_parse_suffix(bad[i], &g, &err), &err, bad[i]);
        assert_int_equal(g, 7);
    }
    Err err = {0};
    Generation g;
    assert_false(generation_parse_suffix(NULL, &g, &err));

    /* none sorts below every number */
    assert_true(generation_is_none(GENERATION_NONE));
    assert_false(generation_is_none(0));
    assert_false(generation_is_none(GENERATION_MAX));
    static const Generation ordered[] = {GENERATION_NONE, 0, 1, 2, 0xdeadbeef, GENERATION_MAX};
    for (size_t i = 0; i + 1 < N_ELEMS(ordered); i++)
        assert_true(ordered[i] < ordered[i + 1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_timeline_round_trip),
        cmocka_unit_test(test_tenant_timeline_malformed),
        cmocka_unit_test(test_id_eq_cmp_generate),
        cmocka_unit_test(test_shard_index),
        cmocka_unit_test(test_tsid),
        cmocka_unit_test(test_shard_params_validate),
        cmocka_unit_test(test_lsn),
        cmocka_unit_test(test_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
