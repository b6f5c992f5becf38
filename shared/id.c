/*
 * id.c: parsing and formatting of identifiers (wire.md "Identifiers").
 *
 * Every parser is strict: the whole string must be exactly the canonical form (case aside, where
 * wire.md allows either case), with no surrounding spaces, signs, "0x" prefixes or extra
 * characters, so that parse(format(x)) == x and format(parse(s)) is unique up to case. Failures
 * are ERR_BAD_REQUEST with a message that quotes the offending input (escaped and shortened, as
 * it may come straight from a URL or a JSON body).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "shared/log.h"
#include "shared/str.h"

#include "shared/id.h"

/* Longest part of a bad input quoted back in an error message. */

static const char HEX_LOWER[] = "0123456789abcdef";
static const char HEX_UPPER[] = "0123456789ABCDEF";

/* hex_value: the value of one hex digit; lower/upper select which cases are accepted; -1 when c is
 * not an accepted digit. */
static int hex_value(char c, bool lower, bool upper)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (lower && c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (upper && c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* describe_char: a short printable rendering of one bad character for messages. */
static void describe_char(char c, char out[8])
{
    unsigned char u = (unsigned char)c;
    if (u >= 0x20 && u < 0x7f)
        str_printf(out, 8, "'%c'", c);
    else
        str_printf(out, 8, "0x%02x", u);
}

/* parse_hex_exact: decode exactly n hex digits (n <= 16) at s into *out. what names the value for
 * the error message, whole is the full input (quoted in the message), and pos is the offset of s
 * within whole. */
static bool parse_hex_exact(const char *s, size_t n, bool lower, bool upper, const char *what,
                            const char *whole, size_t pos, uint64_t *out, Err *err)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = hex_value(s[i], lower, upper);
        if (d < 0) {
            char q[STR_QUOTE_SIZE];
            char c[8];
            str_quote(whole, q);
            describe_char(s[i], c);
            const char *kind = lower && upper ? "hex" : upper ? "uppercase hex" : "lowercase hex";
            err_set(err, ERR_BAD_REQUEST, "invalid %s \"%s\": %s at position %zu is not a %s digit",
                    what, q, c, pos + i, kind);
            return false;
        }
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return true;
}

/* check_length: fail unless strlen(s) is one of the expected lengths (alt 0 = only want). */
static bool check_length(const char *s, const char *what, size_t want, size_t alt,
                         const char *expected, Err *err)
{
    size_t len = strlen(s);
    if (len == want || (alt != 0 && len == alt))
        return true;
    char q[STR_QUOTE_SIZE];
    str_quote(s, q);
    err_set(err, ERR_BAD_REQUEST, "invalid %s \"%s\": expected %s, got %zu characters", what, q,
            expected, len);
    return false;
}

/* check_present: fail on a NULL input (a missing field reaching a parser). */
static bool check_present(const char *s, const char *what, Err *err)
{
    if (s != NULL)
        return true;
    err_set(err, ERR_BAD_REQUEST, "missing %s", what);
    return false;
}

/* parse_id16: the 32-hex-char form shared by tenant and timeline ids. */
static bool parse_id16(const char *s, const char *what, uint8_t out[ID_BYTES], Err *err)
{
    if (!check_present(s, what, err) ||
        !check_length(s, what, ID_HEX_LEN, 0, "32 hex characters", err))
        return false;
    uint8_t b[ID_BYTES];
    for (size_t i = 0; i < ID_BYTES; i++) {
        uint64_t v;
        if (!parse_hex_exact(s + 2 * i, 2, true, true, what, s, 2 * i, &v, err))
            return false;
        b[i] = (uint8_t)v;
    }
    memcpy(out, b, ID_BYTES);
    return true;
}

static void format_id16(const uint8_t b[ID_BYTES], char out[ID_STR_SIZE])
{
    for (size_t i = 0; i < ID_BYTES; i++) {
        out[2 * i] = HEX_LOWER[b[i] >> 4];
        out[2 * i + 1] = HEX_LOWER[b[i] & 0xf];
    }
    out[ID_HEX_LEN] = '\0';
}

/* random_fill: ids must be unguessable and collision-free across processes, so they come from
 * the OpenSSL CSPRNG. A failing CSPRNG leaves no safe fallback: abort. */
static void random_fill(uint8_t *b, size_t n)
{
    if (RAND_bytes(b, (int)n) != 1) {
        log_error("RAND_bytes failed: cannot generate a random identifier");
        abort();
    }
}

bool tenant_id_parse(const char *s, TenantId *out, Err *err)
{
    return parse_id16(s, "tenant id", out->b, err);
}

void tenant_id_format(const TenantId *id, char out[ID_STR_SIZE])
{
    format_id16(id->b, out);
}

bool tenant_id_eq(const TenantId *a, const TenantId *b)
{
    return memcmp(a->b, b->b, ID_BYTES) == 0;
}

int tenant_id_cmp(const TenantId *a, const TenantId *b)
{
    int c = memcmp(a->b, b->b, ID_BYTES);
    return (c > 0) - (c < 0);
}

void tenant_id_generate(TenantId *out)
{
    random_fill(out->b, ID_BYTES);
}

bool timeline_id_parse(const char *s, TimelineId *out, Err *err)
{
    return parse_id16(s, "timeline id", out->b, err);
}

void timeline_id_format(const TimelineId *id, char out[ID_STR_SIZE])
{
    format_id16(id->b, out);
}

bool timeline_id_eq(const TimelineId *a, const TimelineId *b)
{
    return memcmp(a->b, b->b, ID_BYTES) == 0;
}

int timeline_id_cmp(const TimelineId *a, const TimelineId *b)
{
    int c = memcmp(a->b, b->b, ID_BYTES);
    return (c > 0) - (c < 0);
}

void timeline_id_generate(TimelineId *out)
{
    random_fill(out->b, ID_BYTES);
}

/* shard_number_check: the (number, count) rule; whole is the text being parsed, for the message
 * (NULL when validating numbers that did not come from text). */
static bool shard_number_check(ShardNumber number, ShardCount count, const char *whole, Err *err)
{
    char ctx[STR_QUOTE_SIZE + 4] = "";
    if (whole != NULL) {
        char q[STR_QUOTE_SIZE];
        str_quote(whole, q);
        str_printf(ctx, sizeof(ctx), " \"%s\"", q); /* cannot truncate: sized for it */
    }
    if (count == 0 && number != 0) {
        err_set(err, ERR_BAD_REQUEST,
                "invalid shard%s: shard number %u with count 0 (unsharded is number 0)", ctx,
                (unsigned)number);
        return false;
    }
    if (count >= 1 && number >= count) {
        err_set(err, ERR_BAD_REQUEST, "invalid shard%s: shard number %u is not below count %u", ctx,
                (unsigned)number, (unsigned)count);
        return false;
    }
    return true;
}

/* parse_nncc: four hex digits NNCC at s (within whole at pos) plus the number < count rule. */
static bool parse_nncc(const char *s, const char *whole, size_t pos, ShardIndex *out, Err *err)
{
    uint64_t number;
    uint64_t count;
    if (!parse_hex_exact(s, 2, true, true, "shard index", whole, pos, &number, err) ||
        !parse_hex_exact(s + 2, 2, true, true, "shard index", whole, pos + 2, &count, err))
        return false;
    if (!shard_number_check((ShardNumber)number, (ShardCount)count, whole, err))
        return false;
    out->number = (ShardNumber)number;
    out->count = (ShardCount)count;
    return true;
}

bool shard_index_parse(const char *s, ShardIndex *out, Err *err)
{
    if (!check_present(s, "shard index", err) ||
        !check_length(s, "shard index", 4, 0, "4 hex characters NNCC", err))
        return false;
    ShardIndex idx;
    if (!parse_nncc(s, s, 0, &idx, err))
        return false;
    *out = idx;
    return true;
}

void shard_index_format(ShardIndex idx, char out[SHARD_INDEX_STR_SIZE])
{
    out[0] = HEX_LOWER[idx.number >> 4];
    out[1] = HEX_LOWER[idx.number & 0xf];
    out[2] = HEX_LOWER[idx.count >> 4];
    out[3] = HEX_LOWER[idx.count & 0xf];
    out[4] = '\0';
}

/* tsid_parse: the length decides the form; a 37-character id must name a count >= 1, because
 * count 0 is always written as the bare tenant id (one canonical text per id). */
bool tsid_parse(const char *s, TenantShardId *out, Err *err)
{
    const char *what = "tenant shard id";
    if (!check_present(s, what, err) ||
        !check_length(s, what, ID_HEX_LEN, ID_HEX_LEN + 5,
                      "32 hex characters or 32 hex characters and \"-NNCC\"", err))
        return false;
    TenantShardId id = {0};
    for (size_t i = 0; i < ID_BYTES; i++) {
        uint64_t v;
        if (!parse_hex_exact(s + 2 * i, 2, true, true, what, s, 2 * i, &v, err))
            return false;
        id.tenant_id.b[i] = (uint8_t)v;
    }
    if (s[ID_HEX_LEN] != '\0') {
        char q[STR_QUOTE_SIZE];
        if (s[ID_HEX_LEN] != '-') {
            char c[8];
            str_quote(s, q);
            describe_char(s[ID_HEX_LEN], c);
            err_set(err, ERR_BAD_REQUEST, "invalid %s \"%s\": expected '-' at position %d, got %s",
                    what, q, ID_HEX_LEN, c);
            return false;
        }
        ShardIndex idx;
        if (!parse_nncc(s + ID_HEX_LEN + 1, s, ID_HEX_LEN + 1, &idx, err))
            return false;
        if (idx.count == 0) {
            str_quote(s, q);
            err_set(err, ERR_BAD_REQUEST,
                    "invalid %s \"%s\": shard count 0 is written as the bare tenant id", what, q);
            return false;
        }
        id.number = idx.number;
        id.count = idx.count;
    }
    *out = id;
    return true;
}

void tsid_format(const TenantShardId *id, char out[TSID_STR_SIZE])
{
    format_id16(id->tenant_id.b, out);
    if (id->count == 0)
        return;
    out[ID_HEX_LEN] = '-';
    shard_index_format(tsid_shard_index(id), out + ID_HEX_LEN + 1);
}

bool tsid_eq(const TenantShardId *a, const TenantShardId *b)
{
    return tenant_id_eq(&a->tenant_id, &b->tenant_id) && a->number == b->number &&
           a->count == b->count;
}

int tsid_cmp(const TenantShardId *a, const TenantShardId *b)
{
    int c = tenant_id_cmp(&a->tenant_id, &b->tenant_id);
    if (c != 0)
        return c;
    if (a->number != b->number)
        return a->number < b->number ? -1 : 1;
    if (a->count != b->count)
        return a->count < b->count ? -1 : 1;
    return 0;
}

ShardIndex tsid_shard_index(const TenantShardId *id)
{
    ShardIndex idx = {.number = id->number, .count = id->count};
    return idx;
}

TenantShardId tsid_unsharded(const TenantId *tenant)
{
    TenantShardId id = {.tenant_id = *tenant, .number = 0, .count = 0};
    return id;
}

/* shard_params_validate: besides wire.md's rule (count >= 1 implies number < count) an unsharded
 * count 0 only has shard number 0, the "0000" index. */
bool shard_params_validate(ShardNumber number, ShardCount count, uint32_t stripe_size, Err *err)
{
    if (!shard_number_check(number, count, NULL, err))
        return false;
    if (stripe_size == 0) {
        err_set(err, ERR_BAD_REQUEST, "invalid stripe size 0: must be at least 1 page");
        return false;
    }
    return true;
}

/* lsn_parse_half: 1 to 8 hex digits, either case, for one side of "X/X". */
static bool lsn_parse_half(const char *s, size_t len, const char *whole, size_t pos,
                           const char *side, uint32_t *out, Err *err)
{
    if (len == 0 || len > 8) {
        char q[STR_QUOTE_SIZE];
        str_quote(whole, q);
        err_set(err, ERR_BAD_REQUEST,
                "invalid LSN \"%s\": %s half has %zu hex digits, expected 1 to 8", q, side, len);
        return false;
    }
    uint64_t v;
    if (!parse_hex_exact(s, len, true, true, "LSN", whole, pos, &v, err))
        return false;
    *out = (uint32_t)v;
    return true;
}

bool lsn_parse(const char *s, Lsn *out, Err *err)
{
    if (!check_present(s, "LSN", err))
        return false;
    const char *slash = strchr(s, '/');
    char q[STR_QUOTE_SIZE];
    if (slash == NULL) {
        str_quote(s, q);
        err_set(err, ERR_BAD_REQUEST, "invalid LSN \"%s\": expected \"X/X\" (missing '/')", q);
        return false;
    }
    size_t hi_len = (size_t)(slash - s);
    size_t lo_len = strlen(slash + 1);
    uint32_t hi;
    uint32_t lo;
    if (!lsn_parse_half(s, hi_len, s, 0, "high", &hi, err) ||
        !lsn_parse_half(slash + 1, lo_len, s, hi_len + 1, "low", &lo, err))
        return false;
    Lsn lsn = ((Lsn)hi << 32) | lo;
    if (lsn == LSN_INVALID) {
        str_quote(s, q);
        err_set(err, ERR_BAD_REQUEST, "invalid LSN \"%s\": 0/0 is not a valid LSN", q);
        return false;
    }
    *out = lsn;
    return true;
}

void lsn_format(Lsn lsn, char out[LSN_STR_SIZE])
{
    snprintf(out, LSN_STR_SIZE, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}

/* lsn_parse_file: file names are generated by lsn_format_file, so only its exact output (16
 * uppercase digits) is accepted; a lowercase name is not one of ours. */
bool lsn_parse_file(const char *s, Lsn *out, Err *err)
{
    const char *what = "file-name LSN";
    if (!check_present(s, what, err) ||
        !check_length(s, what, 16, 0, "16 uppercase hex digits", err))
        return false;
    uint64_t v;
    if (!parse_hex_exact(s, 16, false, true, what, s, 0, &v, err))
        return false;
    if (v == LSN_INVALID) {
        char q[STR_QUOTE_SIZE];
        str_quote(s, q);
        err_set(err, ERR_BAD_REQUEST, "invalid %s \"%s\": 0 is not a valid LSN", what, q);
        return false;
    }
    *out = v;
    return true;
}

void lsn_format_file(Lsn lsn, char out[LSN_FILE_STR_SIZE])
{
    for (int i = 15; i >= 0; i--) {
        out[i] = HEX_UPPER[lsn & 0xf];
        lsn >>= 4;
    }
    out[16] = '\0';
}

/* generation_suffix: values above GENERATION_MAX cannot come out of any parser; if one is passed
 * anyway only its low 32 bits are written, so the output stays "-%08x" shaped. */
void generation_suffix(Generation g, char out[GENERATION_SUFFIX_SIZE])
{
    if (generation_is_none(g)) {
        out[0] = '\0';
        return;
    }
    uint32_t v = (uint32_t)g;
    out[0] = '-';
    for (int i = 8; i >= 1; i--) {
        out[i] = HEX_LOWER[v & 0xf];
        v >>= 4;
    }
    out[9] = '\0';
}

bool generation_parse_suffix(const char *s, Generation *out, Err *err)
{
    const char *what = "generation suffix";
    if (!check_present(s, what, err))
        return false;
    if (s[0] == '\0') {
        *out = GENERATION_NONE;
        return true;
    }
    if (!check_length(s, what, 9, 0, "\"\" or \"-\" and 8 lowercase hex digits", err))
        return false;
    if (s[0] != '-') {
        char q[STR_QUOTE_SIZE];
        char c[8];
        str_quote(s, q);
        describe_char(s[0], c);
        err_set(err, ERR_BAD_REQUEST, "invalid %s \"%s\": expected '-' at position 0, got %s", what,
                q, c);
        return false;
    }
    uint64_t v;
    if (!parse_hex_exact(s + 1, 8, true, false, what, s, 1, &v, err))
        return false;
    *out = (Generation)v;
    return true;
}

/* generation_is_none: any negative value is treated as none, so a stray negative never formats
 * as a huge hex number. */
bool generation_is_none(Generation g)
{
    return g < 0;
}
