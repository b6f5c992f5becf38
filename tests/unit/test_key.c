/* test_key.c: unit tests for shared/key.c: the wire.md key layout and test vectors, encodings,
 * ordering, ranges, shard classification and shard-split arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/key.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

/* ---- hashing and the wire.md key-to-shard table ---- */

static void test_hash_vectors(void **state)
{
    assert_int_equal(shard_murmur32(0), 0);
    assert_int_equal(shard_hash_combine(0xb1ff3b40u, 0), 0xfb7923c9u);
    /* murmur32 mixes: distinct small inputs give distinct, non-identity outputs */
    assert_int_not_equal(shard_murmur32(1), 1);
    assert_int_not_equal(shard_murmur32(1), shard_murmur32(2));
}

static const struct {
    ShardCount count;
    uint32_t stripe;
    uint32_t rel;
    uint32_t blk;
    ShardNumber shard;
} SHARD_VECTORS[] = {
    {10, 32768, 0x400C, 0x7D06, 8}, {4, 2048, 16384, 0, 0}, {4, 2048, 16384, 2048, 3},
    {4, 2048, 16384, 4096, 2},      {8, 2048, 16385, 0, 1}, {8, 2048, 16385, 123456, 4},
    {2, 2048, 1259, 0, 0},          {8, 1, 16397, 7, 4},    {16, 2048, 24576, 99999, 6},
    {4, 32768, 16384, 40000, 3},
};

static void test_key_to_shard_vectors(void **state)
{
    for (size_t i = 0; i < N_ELEMS(SHARD_VECTORS); i++) {
        /* spc, db and fork (other than init) are not hashed */
        static const struct {
            uint32_t spc, db;
            uint8_t fork;
        } places[] = {
            {DEFAULTTABLESPACE_OID, 5, FORK_MAIN},
            {DEFAULTTABLESPACE_OID, 16400, FORK_FSM},
            {GLOBALTABLESPACE_OID, 0, FORK_VM},
            {0, 0, FORK_MAIN},
        };
        for (size_t p = 0; p < N_ELEMS(places); p++) {
            Key k = key_rel_block(places[p].spc, places[p].db, SHARD_VECTORS[i].rel, places[p].fork,
                                  SHARD_VECTORS[i].blk);
            ShardNumber got =
                key_to_shard_number(SHARD_VECTORS[i].count, SHARD_VECTORS[i].stripe, &k);
            if (got != SHARD_VECTORS[i].shard)
                fail_msg("vector %zu place %zu: got shard %u, want %u", i, p, got,
                         SHARD_VECTORS[i].shard);
        }
        /* every block in the same stripe maps to the same shard */
        Key first =
            key_rel_block(DEFAULTTABLESPACE_OID, 5, SHARD_VECTORS[i].rel, FORK_MAIN,
                          SHARD_VECTORS[i].blk - SHARD_VECTORS[i].blk % SHARD_VECTORS[i].stripe);
        assert_int_equal(
            key_to_shard_number(SHARD_VECTORS[i].count, SHARD_VECTORS[i].stripe, &first),
            SHARD_VECTORS[i].shard);
        /* init fork blocks and unsharded tenants always go to shard 0 */
        Key init = key_rel_block(DEFAULTTABLESPACE_OID, 5, SHARD_VECTORS[i].rel, FORK_INIT,
                                 SHARD_VECTORS[i].blk);
        assert_int_equal(
            key_to_shard_number(SHARD_VECTORS[i].count, SHARD_VECTORS[i].stripe, &init), 0);
        Key main_k = key_rel_block(DEFAULTTABLESPACE_OID, 5, SHARD_VECTORS[i].rel, FORK_MAIN,
                                   SHARD_VECTORS[i].blk);
        assert_int_equal(key_to_shard_number(0, SHARD_VECTORS[i].stripe, &main_k), 0);
        assert_int_equal(key_to_shard_number(1, SHARD_VECTORS[i].stripe, &main_k), 0);
    }
    /* the vectors are not all shard 0: the mapping really spreads (sanity of the table) */
    Key k = key_rel_block(DEFAULTTABLESPACE_OID, 5, 16384, FORK_MAIN, 2048);
    assert_int_equal(key_to_shard_number(4, 2048, &k), 3);
    /* stripe 0 never divides by zero */
    assert_int_equal(key_to_shard_number(4, 0, &k), 0);
}

/* ---- constructors, encodings and predicates ---- */

typedef struct KeyCase {
    const char *name;
    Key key;
    const char *hex;
    bool rel_block, rel_size, slru, shard0_only, global;
} KeyCase;

static KeyCase *key_cases(size_t *n)
{
    static KeyCase cases[15];
    size_t i = 0;
#define KC(nm, k, hx, rb, rs, sl, s0, gl) cases[i++] = (KeyCase){nm, k, hx, rb, rs, sl, s0, gl}
    KC("dbdir", key_dbdir(), "00 00000000 00000000 00000000 00 00000000", false, false, false, true,
       true);
    KC("relmap", key_relmap(1663, 5), "00 0000067F 00000005 00000000 00 00000000", false, false,
       false, true, true);
    KC("reldir", key_reldir(1663, 5), "00 0000067F 00000005 00000000 00 00000001", false, false,
       false, true, true);
    KC("rel_block", key_rel_block(1663, 5, 16384, FORK_MAIN, 7),
       "00 0000067F 00000005 00004000 00 00000007", true, false, false, false, false);
    KC("rel_block_vm", key_rel_block(1663, 16400, 0x12345678, FORK_VM, 0xFFFFFFFE),
       "00 0000067F 00004010 12345678 02 FFFFFFFE", true, false, false, false, false);
    KC("rel_block_init", key_rel_block(1663, 5, 16384, FORK_INIT, 0),
       "00 0000067F 00000005 00004000 03 00000000", true, false, false, true, false);
    KC("rel_size", key_rel_size(1664, 0, 1262, FORK_MAIN),
       "00 00000680 00000000 000004EE 00 FFFFFFFF", false, true, false, true, true);
    KC("slru_dir", key_slru_dir(SLRU_MULTIXACT_OFFSETS),
       "01 00000002 00000000 00000000 00 00000000", false, false, true, true, false);
    KC("slru_block", key_slru_block(SLRU_CLOG, 3, 97), "01 00000000 00000001 00000003 00 00000061",
       false, false, true, true, false);
    KC("slru_segment_size", key_slru_segment_size(SLRU_MULTIXACT_MEMBERS, 0x10),
       "01 00000001 00000001 00000010 00 FFFFFFFF", false, false, true, true, false);
    KC("twophase_dir", key_twophase_dir(), "02 00000000 00000000 00000000 00 00000000", false,
       false, false, true, true);
    KC("controlfile", key_controlfile(), "03 00000000 00000000 00000000 00 00000000", false, false,
       false, true, true);
    KC("checkpoint", key_checkpoint(), "03 00000000 00000000 00000000 00 00000001", false, false,
       false, true, true);
#undef KC
    *n = i;
    return cases;
}

/* hex_strip: the expected strings above are spelled with an optional space for readability. */
static void hex_strip(const char *in, char out[KEY_STR_SIZE + 8])
{
    size_t o = 0;
    for (; *in && o < KEY_STR_SIZE + 7; in++) {
        if (*in != ' ')
            out[o++] = *in;
    }
    out[o] = '\0';
}

static void test_constructors_and_encodings(void **state)
{
    size_t n;
    KeyCase *cases = key_cases(&n);
    for (size_t i = 0; i < n; i++) {
        const KeyCase *c = &cases[i];
        char want[KEY_STR_SIZE + 8];
        hex_strip(c->hex, want);
        char buf[KEY_STR_SIZE];
        key_format(&c->key, buf);
        if (strcmp(buf, want) != 0)
            fail_msg("%s: formatted %s, want %s", c->name, buf, want);

        /* bytes round trip, and the bytes are the big-endian fields */
        uint8_t b[KEY_SIZE];
        key_to_bytes(&c->key, b);
        for (size_t j = 0; j < KEY_SIZE; j++) {
            unsigned hi = (unsigned)(strchr("0123456789ABCDEF", buf[2 * j]) - "0123456789ABCDEF");
            unsigned lo =
                (unsigned)(strchr("0123456789ABCDEF", buf[2 * j + 1]) - "0123456789ABCDEF");
            assert_int_equal(b[j], hi * 16 + lo);
        }
        Key back = key_from_bytes(b);
        assert_true(key_eq(&back, &c->key));

        /* text round trip, either case */
        Err err = {0};
        Key parsed;
        assert_true(key_parse(buf, &parsed, &err));
        assert_true(key_eq(&parsed, &c->key));
        char lower[KEY_STR_SIZE];
        for (size_t j = 0; j <= KEY_HEX_LEN; j++)
            lower[j] = (buf[j] >= 'A' && buf[j] <= 'F') ? (char)(buf[j] - 'A' + 'a') : buf[j];
        assert_true(key_parse(lower, &parsed, &err));
        assert_true(key_eq(&parsed, &c->key));

        if (key_is_rel_block(&c->key) != c->rel_block || key_is_rel_size(&c->key) != c->rel_size ||
            key_is_slru(&c->key) != c->slru || key_is_shard0_only(&c->key) != c->shard0_only ||
            key_is_global(&c->key) != c->global)
            fail_msg("%s: predicates rb=%d rs=%d slru=%d s0=%d global=%d", c->name,
                     key_is_rel_block(&c->key), key_is_rel_size(&c->key), key_is_slru(&c->key),
                     key_is_shard0_only(&c->key), key_is_global(&c->key));
    }
    /* fields, spelled out for one key of each family */
    Key k = key_rel_block(1663, 5, 16384, FORK_FSM, 9);
    assert_int_equal(k.f1, 0);
    assert_int_equal(k.f2, 1663);
    assert_int_equal(k.f3, 5);
    assert_int_equal(k.f4, 16384);
    assert_int_equal(k.f5, 1);
    assert_int_equal(k.f6, 9);
    k = key_slru_segment_size(SLRU_MULTIXACT_OFFSETS, 4);
    assert_int_equal(k.f1, 1);
    assert_int_equal(k.f2, 2);
    assert_int_equal(k.f3, 1);
    assert_int_equal(k.f4, 4);
    assert_int_equal(k.f5, 0);
    assert_int_equal(k.f6, 0xFFFFFFFFu);

    char buf[KEY_STR_SIZE];
    key_format(&KEY_MIN, buf);
    assert_string_equal(buf, "000000000000000000000000000000000000");
    key_format(&KEY_MAX, buf);
    assert_string_equal(buf, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF");
    assert_int_equal(BLCKSZ, 8192);
    assert_int_equal(RELSEG_BLOCKS * (uint64_t)BLCKSZ, 1024ull * 1024 * 1024);
}

static void test_key_parse_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "0",
        "000000067F0000000500004000000000000",   /* 35 */
        "000000067F000000050000400000000000070", /* 37 */
        "00000006 7F0000000500004000000000007",  /* space inside */
        " 000000067F00000005000040000000000007", /* leading space */
        "000000067F00000005000040000000000007 ", /* trailing space */
        "+00000006F00000005000040000000000007",  /* sign */
        "-00000006F00000005000040000000000007",  /* sign */
        "0x000067F00000005000040000000000007",   /* prefix, 35 */
        "0x0000006F00000005000040000000000007",  /* prefix */
        "G00000067F00000005000040000000000007",  /* non-hex */
        "00000006F000000050000400000000000-07",  /* dash */
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        Err err = {0};
        Key k = KEY_MAX;
        assert_false(key_parse(bad[i], &k, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        if (bad[i][0] != '\0' && strstr(err.msg, bad[i]) == NULL)
            fail_msg("message \"%s\" does not name \"%s\"", err.msg, bad[i]);
        assert_true(key_eq(&k, &KEY_MAX));
    }
    Err err = {0};
    Key k;
    assert_false(key_parse(NULL, &k, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
}

/* ---- ordering ---- */

static void ordering_keys(Key *out, size_t *n)
{
    size_t i = 0;
    out[i++] = KEY_MIN;
    out[i++] = KEY_MAX;
    size_t kn;
    KeyCase *cases = key_cases(&kn);
    for (size_t j = 0; j < kn; j++)
        out[i++] = cases[j].key;
    /* values that straddle byte boundaries in every field, where a little-endian or signed
     * comparison would get it wrong */
    static const uint32_t vals[] = {0, 1, 0xFF, 0x100, 0x7FFFFFFF, 0x80000000u, 0xFFFFFFFFu};
    for (size_t v = 0; v < N_ELEMS(vals); v++) {
        out[i++] = (Key){0, vals[v], 0, 0, 0, 0};
        out[i++] = (Key){0, 0, vals[v], 0, 0, 0};
        out[i++] = (Key){0, 0, 0, vals[v], 0, 0};
        out[i++] = (Key){0, 0, 0, 0, 0, vals[v]};
        out[i++] = (Key){(uint8_t)vals[v], 0, 0, 0, (uint8_t)vals[v], 1};
        out[i++] = (Key){0, 1, 1, 1, 0x80, vals[v]};
    }
    *n = i;
}

static void test_ordering_is_byte_order(void **state)
{
    Key keys[80];
    size_t n;
    ordering_keys(keys, &n);
    assert_true(n <= N_ELEMS(keys));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            uint8_t a[KEY_SIZE];
            uint8_t b[KEY_SIZE];
            key_to_bytes(&keys[i], a);
            key_to_bytes(&keys[j], b);
            int want = sign(memcmp(a, b, KEY_SIZE));
            int got = sign(key_cmp(&keys[i], &keys[j]));
            if (want != got)
                fail_msg("keys %zu and %zu: key_cmp %d, byte order %d", i, j, got, want);
            assert_int_equal(key_eq(&keys[i], &keys[j]), want == 0);
            /* text order (uppercase hex) is byte order too: layer names sort like keys */
            char sa[KEY_STR_SIZE];
            char sb[KEY_STR_SIZE];
            key_format(&keys[i], sa);
            key_format(&keys[j], sb);
            assert_int_equal(sign(strcmp(sa, sb)), want);
        }
        assert_true(key_cmp(&KEY_MIN, &keys[i]) <= 0);
        assert_true(key_cmp(&keys[i], &KEY_MAX) <= 0);
    }
    /* the field order of the table: f1 dominates everything */
    Key rel = key_rel_size(0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFF);
    Key slru = key_slru_dir(SLRU_CLOG);
    assert_true(key_cmp(&rel, &slru) < 0);
    Key two = key_twophase_dir();
    Key ctl = key_controlfile();
    Key cp = key_checkpoint();
    assert_true(key_cmp(&slru, &two) < 0);
    assert_true(key_cmp(&two, &ctl) < 0);
    assert_true(key_cmp(&ctl, &cp) < 0);
    /* relation blocks sort before the relation's size key */
    Key blk = key_rel_block(1663, 5, 16384, FORK_MAIN, 0xFFFFFFFEu);
    Key size = key_rel_size(1663, 5, 16384, FORK_MAIN);
    assert_true(key_cmp(&blk, &size) < 0);
}

static void test_key_next(void **state)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"000000000000000000000000000000000000", "000000000000000000000000000000000001"},
        {"00 0000067F 00000005 00004000 00 00000007", "00 0000067F 00000005 00004000 00 00000008"},
        {"00 0000067F 00000005 00004000 00 FFFFFFFF", "00 0000067F 00000005 00004000 01 00000000"},
        {"00FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "010000000000000000000000000000000000"},
        {"FEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "FF0000000000000000000000000000000000"},
        {"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"},
        {"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char in[KEY_STR_SIZE + 8];
        char want[KEY_STR_SIZE + 8];
        hex_strip(cases[i].in, in);
        hex_strip(cases[i].out, want);
        Err err = {0};
        Key k;
        assert_true(key_parse(in, &k, &err));
        Key next = key_next(&k);
        char buf[KEY_STR_SIZE];
        key_format(&next, buf);
        if (strcmp(buf, want) != 0)
            fail_msg("key_next(%s) = %s, want %s", in, buf, want);
    }
    /* the successor is the exclusive end of a single-key range */
    Key k = key_rel_block(1663, 5, 16384, FORK_MAIN, 7);
    KeyRange one = {k, key_next(&k)};
    assert_true(key_range_contains(&one, &k));
    Key after = key_rel_block(1663, 5, 16384, FORK_MAIN, 8);
    assert_false(key_range_contains(&one, &after));
    assert_true(key_eq(&one.end, &after));
}

static void test_key_range(void **state)
{
    Key a = key_rel_block(1663, 5, 16384, FORK_MAIN, 0);
    Key b = key_rel_block(1663, 5, 16384, FORK_MAIN, 100);
    Key c = key_rel_block(1663, 5, 16384, FORK_MAIN, 200);
    Key d = key_rel_block(1663, 5, 16384, FORK_MAIN, 300);
    KeyRange ab = {a, b};
    KeyRange bc = {b, c};
    KeyRange ac = {a, c};
    KeyRange bd = {b, d};
    KeyRange cd = {c, d};
    KeyRange empty_b = {b, b};
    KeyRange reversed = {c, a};
    KeyRange all = {KEY_MIN, KEY_MAX};

    assert_true(key_range_contains(&ab, &a));
    assert_false(key_range_contains(&ab, &b)); /* end exclusive */
    Key mid = key_rel_block(1663, 5, 16384, FORK_MAIN, 50);
    assert_true(key_range_contains(&ab, &mid));
    Key before = key_rel_size(1663, 5, 16383, FORK_MAIN);
    assert_false(key_range_contains(&ab, &before));
    assert_false(key_range_contains(&empty_b, &b));
    assert_false(key_range_contains(&reversed, &b));
    assert_true(key_range_contains(&all, &mid));
    assert_false(key_range_contains(&all, &KEY_MAX));

    assert_true(key_range_is_empty(&empty_b));
    assert_true(key_range_is_empty(&reversed));
    assert_false(key_range_is_empty(&ab));

    const struct {
        const KeyRange *x, *y;
        bool overlaps;
    } pairs[] = {
        {&ab, &bc, false},      /* adjacent */
        {&ab, &cd, false},      /* disjoint */
        {&ac, &bd, true},       /* partial */
        {&ac, &ab, true},       /* containment */
        {&ab, &ab, true},       /* identical */
        {&ac, &empty_b, false}, /* empty inside */
        {&ac, &reversed, false}, {&all, &cd, true},
    };
    for (size_t i = 0; i < N_ELEMS(pairs); i++) {
        assert_int_equal(key_range_overlaps(pairs[i].x, pairs[i].y), pairs[i].overlaps);
        assert_int_equal(key_range_overlaps(pairs[i].y, pairs[i].x), pairs[i].overlaps);
    }
}

/* ---- classification ---- */

static void test_shard_identity_new(void **state)
{
    Err err = {0};
    ShardIdentity id;
    assert_true(shard_identity_new(3, 4, 2048, &id, &err));
    assert_int_equal(id.number, 3);
    assert_int_equal(id.count, 4);
    assert_int_equal(id.stripe_size, 2048);
    assert_false(shard_identity_new(4, 4, 2048, &id, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_false(shard_identity_new(0, 4, 0, &id, &err));
    assert_false(shard_identity_new(1, 0, 2048, &id, &err));
    ShardIdentity u = shard_identity_unsharded();
    assert_int_equal(u.count, 0);
    assert_int_equal(u.number, 0);
    assert_int_equal(u.stripe_size, STRIPE_SIZE_DEFAULT);
}

static void test_key_shard_class(void **state)
{
    enum { L = KEY_SHARD_LOCAL, G = KEY_SHARD_GLOBAL, D = KEY_SHARD_DISPOSABLE };
    /* block 2048 of rel 16384 with stripe 2048 lives on shard 3 of 4 (wire.md vector) */
    const Key owned3 = key_rel_block(1663, 5, 16384, FORK_MAIN, 2048);
    /* block 0 of rel 16385 lives on shard 1 of 8 (wire.md vector) */
    const Key owned1of8 = key_rel_block(1663, 5, 16385, FORK_VM, 0);
    const Key init = key_rel_block(1663, 5, 16384, FORK_INIT, 2048);
    const struct {
        const char *name;
        Key key;
        /* unsharded count 0, count 1; then shards 0..3 of 4 (stripe 2048) */
        int cls[6];
    } rows[] = {
        {"dbdir", key_dbdir(), {G, G, G, G, G, G}},
        {"relmap", key_relmap(1663, 5), {G, G, G, G, G, G}},
        {"reldir", key_reldir(1664, 0), {G, G, G, G, G, G}},
        {"rel_size", key_rel_size(1663, 5, 16384, FORK_MAIN), {G, G, G, G, G, G}},
        {"twophase_dir", key_twophase_dir(), {G, G, G, G, G, G}},
        {"controlfile", key_controlfile(), {G, G, G, G, G, G}},
        {"checkpoint", key_checkpoint(), {G, G, G, G, G, G}},
        {"rel_block@3", owned3, {L, L, D, D, D, L}},
        {"init_block", init, {L, L, L, D, D, D}},
        {"slru_dir", key_slru_dir(SLRU_CLOG), {L, L, L, D, D, D}},
        {"slru_block", key_slru_block(SLRU_MULTIXACT_MEMBERS, 1, 5), {L, L, L, D, D, D}},
        {"slru_size", key_slru_segment_size(SLRU_MULTIXACT_OFFSETS, 1), {L, L, L, D, D, D}},
        {"aux_or_unknown", ((Key){0x62, 0, 0, 0, 0, 1}), {L, L, L, D, D, D}},
    };
    for (size_t r = 0; r < N_ELEMS(rows); r++) {
        ShardIdentity ids[6] = {
            {0, 0, 2048}, {0, 1, 2048}, {0, 4, 2048}, {1, 4, 2048}, {2, 4, 2048}, {3, 4, 2048},
        };
        for (size_t s = 0; s < N_ELEMS(ids); s++) {
            KeyShardClass got = key_shard_class(&ids[s], &rows[r].key);
            if ((int)got != rows[r].cls[s])
                fail_msg("%s on identity %zu: %s, want %s", rows[r].name, s,
                         key_shard_class_name(got),
                         key_shard_class_name((KeyShardClass)rows[r].cls[s]));
            assert_int_equal(shard_identity_is_key_local(&ids[s], &rows[r].key), (int)got == L);
            assert_int_equal(shard_identity_stores_key(&ids[s], &rows[r].key), (int)got != D);
        }
    }
    /* exactly one shard owns each relation block; global keys are stored everywhere */
    for (ShardNumber s = 0; s < 8; s++) {
        ShardIdentity id = {s, 8, 2048};
        assert_int_equal(key_shard_class(&id, &owned1of8),
                         s == 1 ? KEY_SHARD_LOCAL : KEY_SHARD_DISPOSABLE);
        Key dbdir = key_dbdir();
        assert_true(shard_identity_stores_key(&id, &dbdir));
    }
    for (uint32_t blk = 0; blk < 20000; blk += 97) {
        Key k = key_rel_block(1663, 5, 24576, FORK_MAIN, blk);
        int owners = 0;
        for (ShardNumber s = 0; s < 16; s++) {
            ShardIdentity id = {s, 16, 2048};
            owners += shard_identity_is_key_local(&id, &k);
        }
        assert_int_equal(owners, 1);
    }
    assert_string_equal(key_shard_class_name(KEY_SHARD_LOCAL), "local");
    assert_string_equal(key_shard_class_name(KEY_SHARD_GLOBAL), "global");
    assert_string_equal(key_shard_class_name(KEY_SHARD_DISPOSABLE), "disposable");
}

/* ---- shard split ---- */

static void test_shard_split_validate(void **state)
{
    static const struct {
        uint32_t old_count, new_count;
        bool ok;
    } cases[] = {
        {0, 2, true},      {1, 2, true},    {0, 8, true},   {2, 4, true},      {2, 8, true},
        {3, 6, true},      {3, 12, true},   {1, 128, true}, {64, 128, true},   {0, 128, true},
        {3, 4, false},     {4, 4, false},   {4, 2, false},  {0, 1, false},     {1, 1, false},
        {0, 0, false},     {2, 6, false},   {4, 12, false}, {1, 3, false},     {1, 255, false},
        {128, 256, false}, {1, 256, false}, {2, 0, false},  {300, 600, false}, {3, 9, false},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        Err err = {0};
        bool ok = shard_split_validate(cases[i].old_count, cases[i].new_count, &err);
        if (ok != cases[i].ok)
            fail_msg("split %u -> %u: got %d, want %d (%s)", cases[i].old_count, cases[i].new_count,
                     ok, cases[i].ok, err.msg);
        if (!ok)
            assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
}

static void test_shard_split_children(void **state)
{
    static const struct {
        ShardNumber parent;
        uint32_t old_count, new_count;
        size_t n;
        ShardNumber children[8];
    } cases[] = {
        {1, 2, 8, 4, {1, 3, 5, 7}}, /* 0102 -> 0108 */
        {0, 2, 8, 4, {0, 2, 4, 6}}, {0, 0, 2, 2, {0, 1}}, {0, 1, 4, 4, {0, 1, 2, 3}},
        {2, 4, 8, 2, {2, 6}},       {2, 3, 6, 2, {2, 5}}, {0, 0, 8, 8, {0, 1, 2, 3, 4, 5, 6, 7}},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        Err err = {0};
        ShardNumber out[SHARD_SPLIT_MAX_CHILDREN];
        size_t n = 999;
        assert_true(shard_split_children(cases[i].parent, cases[i].old_count, cases[i].new_count,
                                         out, &n, &err));
        assert_int_equal(n, cases[i].n);
        for (size_t j = 0; j < n; j++)
            assert_int_equal(out[j], cases[i].children[j]);
    }
    static const struct {
        ShardNumber parent;
        uint32_t old_count, new_count;
    } bad[] = {
        {2, 2, 4},            /* parent not below old count */
        {1, 0, 2},            /* unsharded has only shard 0 */
        {1, 1, 2}, {0, 3, 4}, /* invalid split */
        {0, 4, 4}, {0, 4, 2},
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        Err err = {0};
        ShardNumber out[SHARD_SPLIT_MAX_CHILDREN];
        size_t n = 999;
        assert_false(
            shard_split_children(bad[i].parent, bad[i].old_count, bad[i].new_count, out, &n, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_int_equal(n, 999);
    }
    /* the largest fan-out fits SHARD_SPLIT_MAX_CHILDREN */
    Err err = {0};
    ShardNumber out[SHARD_SPLIT_MAX_CHILDREN];
    size_t n = 0;
    assert_true(shard_split_children(0, 1, 128, out, &n, &err));
    assert_int_equal(n, SHARD_SPLIT_MAX_CHILDREN);
    assert_int_equal(out[127], 127);
}

/* After a split N -> M every relation block a parent owned is owned by one of its children, and
 * the children of different parents partition 0..M-1 (so no key is lost or duplicated). */
static void test_shard_split_preserves_ownership(void **state)
{
    static const struct {
        uint32_t old_count, new_count;
    } splits[] = {{2, 4}, {2, 8}, {4, 16}, {3, 6}, {1, 8}, {8, 32}};
    for (size_t s = 0; s < N_ELEMS(splits); s++) {
        uint32_t N = splits[s].old_count;
        uint32_t M = splits[s].new_count;
        int seen[256] = {0};
        ShardNumber parent_of[256];
        for (ShardNumber p = 0; p < N; p++) {
            Err err = {0};
            ShardNumber out[SHARD_SPLIT_MAX_CHILDREN];
            size_t n = 0;
            assert_true(shard_split_children(p, N, M, out, &n, &err));
            assert_int_equal(n, M / N);
            for (size_t j = 0; j < n; j++) {
                seen[out[j]]++;
                parent_of[out[j]] = p;
            }
        }
        for (uint32_t c = 0; c < M; c++)
            assert_int_equal(seen[c], 1);
        for (uint32_t rel = 16384; rel < 16394; rel++) {
            for (uint32_t blk = 0; blk < 65536; blk += 1021) {
                Key k = key_rel_block(1663, 5, rel, FORK_MAIN, blk);
                ShardNumber before = key_to_shard_number((ShardCount)N, 2048, &k);
                ShardNumber after = key_to_shard_number((ShardCount)M, 2048, &k);
                if (N >= 2)
                    assert_int_equal(parent_of[after], before);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_vectors),
        cmocka_unit_test(test_key_to_shard_vectors),
        cmocka_unit_test(test_constructors_and_encodings),
        cmocka_unit_test(test_key_parse_malformed),
        cmocka_unit_test(test_ordering_is_byte_order),
        cmocka_unit_test(test_key_next),
        cmocka_unit_test(test_key_range),
        cmocka_unit_test(test_shard_identity_new),
        cmocka_unit_test(test_key_shard_class),
        cmocka_unit_test(test_shard_split_validate),
        cmocka_unit_test(test_shard_split_children),
        cmocka_unit_test(test_shard_split_preserves_ownership),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
