/*
 * id.h: identifiers and their text encodings (wire.md "Identifiers").
 *
 * Fixed-size values, no heap: TenantId and TimelineId (16 bytes, 32 hex chars), ShardIndex
 * ("NNCC"), TenantShardId (bare 32-hex tenant id for count 0, "<tenant>-NNCC" otherwise), Lsn
 * ("X/X"; 16 uppercase hex digits in file names), Generation (u32 or none, "-%08x" object suffix),
 * NodeId, stripe size. Parsers reject every malformed form with ERR_BAD_REQUEST and a message
 * that names what was wrong.
 */
#ifndef SHARED_ID_H
#define SHARED_ID_H

#include <stdbool.h>
#include <stdint.h>

#include "shared/err.h"

#define ID_BYTES    16
#define ID_HEX_LEN  32
#define ID_STR_SIZE 33 /* 32 hex + NUL */

typedef struct TenantId {
    uint8_t b[ID_BYTES];
} TenantId;

typedef struct TimelineId {
    uint8_t b[ID_BYTES];
} TimelineId;

typedef uint8_t ShardNumber;
typedef uint8_t ShardCount;

typedef struct ShardIndex {
    ShardNumber number;
    ShardCount count; /* 0 = unsharded (legacy) */
} ShardIndex;

#define SHARD_INDEX_STR_SIZE 5 /* "NNCC" + NUL */

typedef struct TenantShardId {
    TenantId tenant_id;
    ShardNumber number;
    ShardCount count; /* 0 = unsharded: formats as the bare tenant id */
} TenantShardId;

#define TSID_STR_SIZE 38 /* 32 + "-NNCC" + NUL */

typedef uint64_t Lsn;
#define LSN_INVALID       ((Lsn)0)
#define LSN_STR_SIZE      18 /* "FFFFFFFF/FFFFFFFF" + NUL */
#define LSN_FILE_STR_SIZE 17 /* 16 hex + NUL */

/* Generation: a u32, or "none" (legacy) which sorts below every number. Plain integer compare
 * orders them correctly. */
typedef int64_t Generation;
#define GENERATION_NONE        ((Generation)-1)
#define GENERATION_MAX         ((Generation)UINT32_MAX)
#define GENERATION_SUFFIX_SIZE 10 /* "-%08x" + NUL */

typedef uint64_t NodeId;

#define STRIPE_SIZE_DEFAULT 2048u  /* pages of 8 KiB: 16 MiB */
#define STRIPE_SIZE_LEGACY  32768u /* assumed when a stored stripe size is unknown */

/* TenantId / TimelineId: 32 hex chars, either case on input; lowercase on output. */
bool tenant_id_parse(const char *s, TenantId *out, Err *err) MUST_CHECK;
void tenant_id_format(const TenantId *id, char out[ID_STR_SIZE]);
bool tenant_id_eq(const TenantId *a, const TenantId *b);
int tenant_id_cmp(const TenantId *a, const TenantId *b);
void tenant_id_generate(TenantId *out); /* random (openssl RAND_bytes) */

bool timeline_id_parse(const char *s, TimelineId *out, Err *err) MUST_CHECK;
void timeline_id_format(const TimelineId *id, char out[ID_STR_SIZE]);
bool timeline_id_eq(const TimelineId *a, const TimelineId *b);
int timeline_id_cmp(const TimelineId *a, const TimelineId *b);
void timeline_id_generate(TimelineId *out);

/* ShardIndex: exactly 4 hex chars "NNCC"; count >= 1 implies number < count; "0000" is the
 * unsharded index. */
bool shard_index_parse(const char *s, ShardIndex *out, Err *err) MUST_CHECK;
void shard_index_format(ShardIndex idx, char out[SHARD_INDEX_STR_SIZE]);

/* TenantShardId: parsed by length, 32 (count 0) or 37 ("-NNCC", count >= 1). */
bool tsid_parse(const char *s, TenantShardId *out, Err *err) MUST_CHECK;
void tsid_format(const TenantShardId *id, char out[TSID_STR_SIZE]);
bool tsid_eq(const TenantShardId *a, const TenantShardId *b);
int tsid_cmp(const TenantShardId *a, const TenantShardId *b); /* tenant, then number, then count */
ShardIndex tsid_shard_index(const TenantShardId *id);
TenantShardId tsid_unsharded(const TenantId *tenant);

/* shard_params_validate: count >= 1 implies number < count; stripe_size != 0. */
bool shard_params_validate(ShardNumber number, ShardCount count, uint32_t stripe_size,
                           Err *err) MUST_CHECK;

/* Lsn: "X/X" (either case in, uppercase out, no zero padding); 0 is invalid. */
bool lsn_parse(const char *s, Lsn *out, Err *err) MUST_CHECK;
void lsn_format(Lsn lsn, char out[LSN_STR_SIZE]);
/* File-name form: exactly 16 uppercase hex digits. */
bool lsn_parse_file(const char *s, Lsn *out, Err *err) MUST_CHECK;
void lsn_format_file(Lsn lsn, char out[LSN_FILE_STR_SIZE]);

/* Generation suffix: "-%08x" lowercase, "" for none. Parse takes exactly that form (9 chars) or
 * the empty string (none). */
void generation_suffix(Generation g, char out[GENERATION_SUFFIX_SIZE]);
bool generation_parse_suffix(const char *s, Generation *out, Err *err) MUST_CHECK;
bool generation_is_none(Generation g);

#endif
