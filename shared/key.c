/*
 * key.c: the 18-byte storage key: encodings, ordering, constructors, predicates, the key-to-shard
 * mapping and shard-split arithmetic (wire.md "The key", "Key to shard", shard split rule).
 *
 * The hash functions and the shard-0-only rule must match wire.md bit for bit: the storage
 * controller, every pageserver shard and the import planner all compute the same mapping
 * independently, and a disagreement would lose pages.
 */
#include <string.h>

#include "shared/bytes.h"
#include "shared/str.h"

#include "shared/key.h"

const Key KEY_MIN = {0, 0, 0, 0, 0, 0};
const Key KEY_MAX = {0xFF, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFF, 0xFFFFFFFFu};

static const char HEX_UPPER[] = "0123456789ABCDEF";

void key_to_bytes(const Key *k, uint8_t out[KEY_SIZE])
{
    out[0] = k->f1;
    be_put_u32(out + 1, k->f2);
    be_put_u32(out + 5, k->f3);
    be_put_u32(out + 9, k->f4);
    out[13] = k->f5;
    be_put_u32(out + 14, k->f6);
}

Key key_from_bytes(const uint8_t in[KEY_SIZE])
{
    Key k = {
        .f1 = in[0],
        .f2 = be_get_u32(in + 1),
        .f3 = be_get_u32(in + 5),
        .f4 = be_get_u32(in + 9),
        .f5 = in[13],
        .f6 = be_get_u32(in + 14),
    };
    return k;
}

void key_format(const Key *k, char out[KEY_STR_SIZE])
{
    uint8_t b[KEY_SIZE];
    key_to_bytes(k, b);
    for (size_t i = 0; i < KEY_SIZE; i++) {
        out[2 * i] = HEX_UPPER[b[i] >> 4];
        out[2 * i + 1] = HEX_UPPER[b[i] & 0xf];
    }
    out[KEY_HEX_LEN] = '\0';
}

/* key_parse: keys arrive in layer file names and debug routes; the parser is strict about the
 * length and the alphabet, lenient only about case. */
bool key_parse(const char *s, Key *out, Err *err)
{
    if (s == NULL) {
        err_set(err, ERR_BAD_REQUEST, "missing key");
        return false;
    }
    char q[STR_QUOTE_SIZE];
    size_t len = strlen(s);
    if (len != KEY_HEX_LEN) {
        str_quote(s, q);
        err_set(err, ERR_BAD_REQUEST, "invalid key \"%s\": expected 36 hex digits, got %zu", q,
                len);
        return false;
    }
    uint8_t b[KEY_SIZE];
    for (size_t i = 0; i < KEY_HEX_LEN; i++) {
        int d = str_hex_digit((unsigned char)s[i]);
        if (d < 0) {
            str_quote(s, q);
            err_set(err, ERR_BAD_REQUEST, "invalid key \"%s\": non-hex character at position %zu",
                    q, i);
            return false;
        }
        if (i % 2 == 0)
            b[i / 2] = (uint8_t)(d << 4);
        else
            b[i / 2] |= (uint8_t)d;
    }
    *out = key_from_bytes(b);
    return true;
}

#define CMP_FIELD(x, y)                                                                            \
    do {                                                                                           \
        if ((x) != (y))                                                                            \
            return (x) < (y) ? -1 : 1;                                                             \
    } while (0)

/* key_cmp: comparing the fields in order is the byte order because every field is big-endian
 * and fixed-width. */
int key_cmp(const Key *a, const Key *b)
{
    CMP_FIELD(a->f1, b->f1);
    CMP_FIELD(a->f2, b->f2);
    CMP_FIELD(a->f3, b->f3);
    CMP_FIELD(a->f4, b->f4);
    CMP_FIELD(a->f5, b->f5);
    CMP_FIELD(a->f6, b->f6);
    return 0;
}

bool key_eq(const Key *a, const Key *b)
{
    return key_cmp(a, b) == 0;
}

/* key_next: increment the 18-byte big-endian number; saturate at KEY_MAX. */
Key key_next(const Key *k)
{
    if (key_eq(k, &KEY_MAX))
        return KEY_MAX;
    uint8_t b[KEY_SIZE];
    key_to_bytes(k, b);
    for (int i = KEY_SIZE - 1; i >= 0; i--) {
        if (++b[i] != 0)
            break;
    }
    return key_from_bytes(b);
}

static Key key_make(uint8_t f1, uint32_t f2, uint32_t f3, uint32_t f4, uint8_t f5, uint32_t f6)
{
    Key k = {.f1 = f1, .f2 = f2, .f3 = f3, .f4 = f4, .f5 = f5, .f6 = f6};
    return k;
}

Key key_dbdir(void)
{
    return key_make(KEY_F1_REL, 0, 0, 0, 0, 0);
}

Key key_relmap(uint32_t spc, uint32_t db)
{
    return key_make(KEY_F1_REL, spc, db, 0, 0, 0);
}

Key key_reldir(uint32_t spc, uint32_t db)
{
    return key_make(KEY_F1_REL, spc, db, 0, 0, KEY_F6_RELDIR);
}

Key key_rel_block(uint32_t spc, uint32_t db, uint32_t rel, uint8_t fork, uint32_t blk)
{
    return key_make(KEY_F1_REL, spc, db, rel, fork, blk);
}

Key key_rel_size(uint32_t spc, uint32_t db, uint32_t rel, uint8_t fork)
{
    return key_make(KEY_F1_REL, spc, db, rel, fork, KEY_F6_SIZE);
}

Key key_slru_dir(SlruKind kind)
{
    return key_make(KEY_F1_SLRU, (uint32_t)kind, 0, 0, 0, 0);
}

Key key_slru_block(SlruKind kind, uint32_t segno, uint32_t blk)
{
    return key_make(KEY_F1_SLRU, (uint32_t)kind, 1, segno, 0, blk);
}

Key key_slru_segment_size(SlruKind kind, uint32_t segno)
{
    return key_make(KEY_F1_SLRU, (uint32_t)kind, 1, segno, 0, KEY_F6_SIZE);
}

Key key_twophase_dir(void)
{
    return key_make(KEY_F1_TWOPHASE, 0, 0, 0, 0, 0);
}

Key key_controlfile(void)
{
    return key_make(KEY_F1_CONTROL, 0, 0, 0, 0, 0);
}

Key key_checkpoint(void)
{
    return key_make(KEY_F1_CONTROL, 0, 0, 0, 0, KEY_F6_CHECKPOINT);
}

bool key_is_rel_block(const Key *k)
{
    return k->f1 == KEY_F1_REL && k->f4 != 0 && k->f6 != KEY_F6_SIZE;
}

bool key_is_rel_size(const Key *k)
{
    return k->f1 == KEY_F1_REL && k->f4 != 0 && k->f6 == KEY_F6_SIZE;
}

bool key_is_slru(const Key *k)
{
    return k->f1 == KEY_F1_SLRU;
}

/* key_is_shard0_only: init-fork blocks stay on shard 0 because unlogged relations' init forks
 * are tiny and basebackup (served by shard 0) must include them. */
bool key_is_shard0_only(const Key *k)
{
    return !key_is_rel_block(k) || k->f5 == FORK_INIT;
}

/* key_is_global: a positive list of the families wire.md names, so that a key family added later
 * (or an aux file) is not silently replicated to every shard. */
bool key_is_global(const Key *k)
{
    switch (k->f1) {
    case KEY_F1_REL:
        return !key_is_rel_block(k); /* dbdir, relmap, reldir, relation sizes */
    case KEY_F1_TWOPHASE:
    case KEY_F1_CONTROL:
        return true;
    default:
        return false; /* SLRU, aux files, unknown */
    }
}

bool key_range_is_empty(const KeyRange *r)
{
    return key_cmp(&r->start, &r->end) >= 0;
}

bool key_range_contains(const KeyRange *r, const Key *k)
{
    return key_cmp(&r->start, k) <= 0 && key_cmp(k, &r->end) < 0;
}

bool key_range_overlaps(const KeyRange *a, const KeyRange *b)
{
    if (key_range_is_empty(a) || key_range_is_empty(b))
        return false;
    return key_cmp(&a->start, &b->end) < 0 && key_cmp(&b->start, &a->end) < 0;
}

bool shard_identity_new(ShardNumber number, ShardCount count, uint32_t stripe_size,
                        ShardIdentity *out, Err *err)
{
    if (!shard_params_validate(number, count, stripe_size, err))
        return false;
    out->number = number;
    out->count = count;
    out->stripe_size = stripe_size;
    return true;
}

ShardIdentity shard_identity_unsharded(void)
{
    ShardIdentity id = {.number = 0, .count = 0, .stripe_size = STRIPE_SIZE_DEFAULT};
    return id;
}

uint32_t shard_murmur32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

uint32_t shard_hash_combine(uint32_t a, uint32_t b)
{
    return a ^ (b + 0x9e3779b9u + (a << 6) + (a >> 2));
}

/* key_to_shard_number: only relNode and block / stripe are hashed, so all forks and all
 * databases' copies of a stripe land together and a sequential scan spreads stripe by stripe. */
ShardNumber key_to_shard_number(ShardCount count, uint32_t stripe_size, const Key *k)
{
    if (count < 2 || stripe_size == 0 || key_is_shard0_only(k))
        return 0;
    uint32_t h = shard_murmur32(k->f4);
    h = shard_hash_combine(h, shard_murmur32(k->f6 / stripe_size));
    return (ShardNumber)(h % count);
}

KeyShardClass key_shard_class(const ShardIdentity *id, const Key *k)
{
    if (key_is_global(k))
        return KEY_SHARD_GLOBAL;
    if (id->count < 2)
        return KEY_SHARD_LOCAL;
    return key_to_shard_number(id->count, id->stripe_size, k) == id->number ? KEY_SHARD_LOCAL
                                                                            : KEY_SHARD_DISPOSABLE;
}

const char *key_shard_class_name(KeyShardClass c)
{
    switch (c) {
    case KEY_SHARD_LOCAL:
        return "local";
    case KEY_SHARD_GLOBAL:
        return "global";
    case KEY_SHARD_DISPOSABLE:
        return "disposable";
    case KEY_SHARD_CLASS_COUNT:
        break;
    }
    return "unknown";
}

bool shard_identity_is_key_local(const ShardIdentity *id, const Key *k)
{
    return key_shard_class(id, k) == KEY_SHARD_LOCAL;
}

bool shard_identity_stores_key(const ShardIdentity *id, const Key *k)
{
    return key_shard_class(id, k) != KEY_SHARD_DISPOSABLE;
}

bool shard_split_validate(uint32_t old_count, uint32_t new_count, Err *err)
{
    uint32_t old_eff = old_count == 0 ? 1 : old_count;
    if (old_count > 255 || new_count > 255) {
        err_set(err, ERR_BAD_REQUEST, "invalid shard split %u -> %u: shard counts are at most 255",
                old_count, new_count);
        return false;
    }
    if (new_count <= old_eff) {
        err_set(err, ERR_BAD_REQUEST,
                "invalid shard split %u -> %u: the new count must be greater than the old",
                old_count, new_count);
        return false;
    }
    uint32_t ratio = new_count / old_eff;
    if (new_count % old_eff != 0 || (ratio & (ratio - 1)) != 0) {
        err_set(err, ERR_BAD_REQUEST,
                "invalid shard split %u -> %u: the new count must be the old times a power of two",
                old_count, new_count);
        return false;
    }
    return true;
}

bool shard_split_children(ShardNumber parent_number, uint32_t old_count, uint32_t new_count,
                          ShardNumber out[], size_t *n_out, Err *err)
{
    if (!shard_split_validate(old_count, new_count, err))
        return false;
    uint32_t old_eff = old_count == 0 ? 1 : old_count;
    if (parent_number >= old_eff) {
        err_set(err, ERR_BAD_REQUEST,
                "invalid shard split %u -> %u: parent shard %u is not below the old count",
                old_count, new_count, (unsigned)parent_number);
        return false;
    }
    size_t n = 0;
    for (uint32_t c = parent_number; c < new_count; c += old_eff)
        out[n++] = (ShardNumber)c;
    *n_out = n;
    return true;
}
