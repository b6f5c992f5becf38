/*
 * key.h: the 18-byte storage key, its constructors and predicates, and the key-to-shard mapping
 * (wire.md "The key" and "Key to shard").
 *
 * A Key is a value type (no heap). Its byte form is the six fields big-endian and concatenated;
 * its text form is 36 uppercase hex digits; ordering is lexicographic over the bytes, which is
 * the same as comparing the fields in order. Key ranges are half-open [start, end).
 *
 * Sharding: a tenant with count < 2 keeps everything on shard 0. Otherwise relation blocks (but
 * not init-fork blocks) are striped across shards by relNode and block / stripe_size; every other
 * key belongs to shard 0. "Global" keys (directories, relmap, relation sizes, two-phase
 * directory, control file, checkpoint) are stored on every shard, shard 0 being authoritative.
 * A key that is neither global nor owned by a shard is "disposable" there (dropped when layers
 * are rewritten, e.g. after a split).
 */
#ifndef SHARED_KEY_H
#define SHARED_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"

#define KEY_SIZE     18 /* bytes: 1 + 4 + 4 + 4 + 1 + 4 */
#define KEY_HEX_LEN  36
#define KEY_STR_SIZE 37 /* 36 hex + NUL */

typedef struct Key {
    uint8_t f1;
    uint32_t f2;
    uint32_t f3;
    uint32_t f4;
    uint8_t f5;
    uint32_t f6;
} Key;

/* Page size, relation forks, tablespaces, SLRUs (Postgres constants). */
#define BLCKSZ                 8192
#define FORK_MAIN              0
#define FORK_FSM               1
#define FORK_VM                2
#define FORK_INIT              3
#define DEFAULTTABLESPACE_OID  1663u   /* base/<db>/ */
#define GLOBALTABLESPACE_OID   1664u   /* global/, db 0 */
#define RELSEG_BLOCKS          131072u /* blocks per relation segment file (1 GiB) */
#define SLRU_PAGES_PER_SEGMENT 32u

typedef enum SlruKind {
    SLRU_CLOG = 0,              /* pg_xact */
    SLRU_MULTIXACT_MEMBERS = 1, /* pg_multixact/members */
    SLRU_MULTIXACT_OFFSETS = 2, /* pg_multixact/offsets */
    SLRU_KIND_COUNT
} SlruKind;

/* RelTag: a relation fork (spcnode, dbnode, relnode, forknum). */
typedef struct RelTag {
    uint32_t spc, db, rel;
    uint8_t fork;
} RelTag;

/* Field 1 values (key families). */
#define KEY_F1_REL        0x00
#define KEY_F1_SLRU       0x01
#define KEY_F1_TWOPHASE   0x02
#define KEY_F1_CONTROL    0x03
#define KEY_F6_SIZE       0xFFFFFFFFu /* f6 of relation and SLRU segment size keys */
#define KEY_F6_RELDIR     1u          /* f6 of the relation directory key */
#define KEY_F6_CHECKPOINT 1u          /* f6 of the checkpoint key */

/* The smallest (all zero bytes) and largest (all 0xFF bytes) keys. */
extern const Key KEY_MIN;
extern const Key KEY_MAX;

/* key_to_bytes / key_from_bytes: the 18-byte big-endian form. */
void key_to_bytes(const Key *k, uint8_t out[KEY_SIZE]);
Key key_from_bytes(const uint8_t in[KEY_SIZE]);

/* key_format: 36 uppercase hex digits. key_parse: exactly 36 hex digits, either case; err 400. */
void key_format(const Key *k, char out[KEY_STR_SIZE]);
bool key_parse(const char *s, Key *out, Err *err) MUST_CHECK;

/* key_cmp: <0, 0, >0 in byte order. key_eq: all fields equal. */
int key_cmp(const Key *a, const Key *b);
bool key_eq(const Key *a, const Key *b);

/* key_next: the smallest key greater than k (the exclusive end of a range ending at k).
 * key_next(KEY_MAX) is KEY_MAX (there is no successor). */
Key key_next(const Key *k);

/* Constructors, one per row of wire.md's key table. blk must not be 0xFFFFFFFF (that is the
 * size key), which Postgres never uses as a block number. */
Key key_dbdir(void);
Key key_relmap(uint32_t spc, uint32_t db);
Key key_reldir(uint32_t spc, uint32_t db);
Key key_rel_block(uint32_t spc, uint32_t db, uint32_t rel, uint8_t fork, uint32_t blk);
Key key_rel_size(uint32_t spc, uint32_t db, uint32_t rel, uint8_t fork);
Key key_slru_dir(SlruKind kind);
Key key_slru_block(SlruKind kind, uint32_t segno, uint32_t blk);
Key key_slru_segment_size(SlruKind kind, uint32_t segno);
Key key_twophase_dir(void);
Key key_controlfile(void);
Key key_checkpoint(void);

/* key_is_rel_block: f1 == 0 && f4 != 0 && f6 != 0xFFFFFFFF (includes init-fork blocks). */
bool key_is_rel_block(const Key *k);
/* key_is_rel_size: f1 == 0 && f4 != 0 && f6 == 0xFFFFFFFF. */
bool key_is_rel_size(const Key *k);
/* key_is_slru: any SLRU key (f1 == 1): directory, block or segment size. */
bool key_is_slru(const Key *k);
/* key_is_shard0_only: wire.md rule 1: everything but relation blocks, plus init-fork blocks. */
bool key_is_shard0_only(const Key *k);
/* key_is_global: stored on every shard: the database directory, relmap and relation directory
 * keys, relation sizes, the two-phase directory, the control file and the checkpoint. Relation
 * blocks, SLRU keys and any other family (aux files, unknown f1) are not global. */
bool key_is_global(const Key *k);

/* KeyRange: [start, end). An empty range (start >= end) contains and overlaps nothing. */
typedef struct KeyRange {
    Key start;
    Key end; /* exclusive */
} KeyRange;

bool key_range_contains(const KeyRange *r, const Key *k);
bool key_range_overlaps(const KeyRange *a, const KeyRange *b);
bool key_range_is_empty(const KeyRange *r);

/* ---- sharding ---- */

typedef struct ShardIdentity {
    ShardNumber number;
    ShardCount count; /* 0 or 1 = unsharded */
    uint32_t stripe_size;
} ShardIdentity;

/* shard_identity_new: validated by shard_params_validate (id.h); err 400. */
bool shard_identity_new(ShardNumber number, ShardCount count, uint32_t stripe_size,
                        ShardIdentity *out, Err *err) MUST_CHECK;
/* shard_identity_unsharded: number 0, count 0, the default stripe size. */
ShardIdentity shard_identity_unsharded(void);

/* shard_murmur32 / shard_hash_combine: the exact u32 functions of wire.md. */
uint32_t shard_murmur32(uint32_t h);
uint32_t shard_hash_combine(uint32_t a, uint32_t b);

/* key_to_shard_number: the shard owning key (wire.md). count < 2 and shard-0-only keys give 0.
 * stripe_size must be non-zero (0 is treated as "everything on shard 0" rather than dividing by
 * zero). */
ShardNumber key_to_shard_number(ShardCount count, uint32_t stripe_size, const Key *k);

typedef enum KeyShardClass {
    KEY_SHARD_LOCAL,      /* owned by this shard */
    KEY_SHARD_GLOBAL,     /* stored on every shard */
    KEY_SHARD_DISPOSABLE, /* belongs to another shard: drop it */
    KEY_SHARD_CLASS_COUNT
} KeyShardClass;

/* key_shard_class: GLOBAL for global keys; otherwise LOCAL on the owning shard (shard 0 for
 * shard-0-only keys) and DISPOSABLE elsewhere. Unsharded: every key LOCAL or GLOBAL. */
KeyShardClass key_shard_class(const ShardIdentity *id, const Key *k);
const char *key_shard_class_name(KeyShardClass c); /* static string */
bool shard_identity_is_key_local(const ShardIdentity *id, const Key *k);
bool shard_identity_stores_key(const ShardIdentity *id, const Key *k); /* local or global */

/* ---- shard split (wire.md "Identifiers") ---- */

/* The most children one parent can have: 1 -> 128 (the largest power of two <= 255). */
#define SHARD_SPLIT_MAX_CHILDREN 128

/* shard_split_validate: new > max(old, 1), new / max(old, 1) a power of two, new <= 255. Counts
 * are taken as u32 so that out-of-range requested counts are rejected, not truncated. err 400. */
bool shard_split_validate(uint32_t old_count, uint32_t new_count, Err *err) MUST_CHECK;

/* shard_split_children: the numbers n < new with n % max(old, 1) == parent, ascending, into out[]
 * (room for new / max(old, 1) entries, at most SHARD_SPLIT_MAX_CHILDREN); *n_out their count.
 * err 400 for an invalid split or a parent not below max(old, 1). */
bool shard_split_children(ShardNumber parent_number, uint32_t old_count, uint32_t new_count,
                          ShardNumber out[], size_t *n_out, Err *err) MUST_CHECK;

#endif
