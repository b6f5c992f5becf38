/*
 * location_list.c: the GET /v1/location_config answer as (tenant shard id, observed summary)
 * entries, by a single-pass scanner and by the tree decoder it is checked against (header).
 *
 * The scanner is a recursive descent over the text with one byte of lookahead. It follows
 * jansson's acceptance rules exactly, so that the two decoders agree on every input:
 *  - whitespace is space, tab, CR, LF; literals are true / false / null (a letter right after one
 *    makes the token invalid); numbers follow the JSON grammar, an integer must fit in a long long
 *    and a real must not overflow a double;
 *  - strings: no raw control characters (< 0x20), valid UTF-8 (no overlong forms, surrogates or
 *    code points above U+10FFFF), escapes \" \\ \/ \b \f \n \r \t \uXXXX, a high surrogate escape
 *    followed by a low one, no lone surrogate, no \u0000;
 *  - every value (scalars too) counts one level of nesting, at most 2048;
 *  - after the document only whitespace;
 *  - one NUL byte right after a number or a literal is ignored (skip_lookahead_nul);
 *  - a repeated key replaces the earlier value: each "tenant_shards" at the top level starts the
 *    list again, and the summary fields of a config are judged on their last values.
 * Problems of shape (an element that is not a pair, an id that does not parse) are remembered
 * while the scan goes on, so that a later "tenant_shards" can still replace the list; the text
 * itself must be valid to the end.
 */
#include "storcon/location_list.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/str.h"

#define SCAN_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */
#define SCAN_STR_MAX   64   /* decoded keys, ids and modes we look at; longer ones match nothing */

/* ---- the list ---- */

void location_list_finish(LocationList *l)
{
    free(l->entries);
    memset(l, 0, sizeof(*l));
}

static LocationListEntry *list_add(LocationList *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->entries = xrealloc(l->entries, l->cap * sizeof(*l->entries));
    }
    LocationListEntry *e = &l->entries[l->n++];
    memset(e, 0, sizeof(*e));
    return e;
}

bool location_list_equal(const LocationList *a, const LocationList *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const LocationListEntry *x = &a->entries[i], *y = &b->entries[i];
        if (!tsid_eq(&x->tsid, &y->tsid) || x->observed.known != y->observed.known)
            return false;
        if (x->observed.known && (x->observed.mode != y->observed.mode ||
                                  x->observed.generation != y->observed.generation ||
                                  x->observed.secondary_warm != y->observed.secondary_warm))
            return false;
    }
    return true;
}

/* ---- the reference: a parsed document ---- */

bool location_list_from_json(const json_t *doc, LocationList *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(doc)) {
        err_set(err, ERR_INTERNAL, "not a JSON object");
        return false;
    }
    const json_t *list = json_object_get(doc, "tenant_shards");
    if (!json_is_array(list)) {
        err_set(err, ERR_INTERNAL, "\"tenant_shards\" is not an array");
        return false;
    }
    size_t n = json_array_size(list);
    for (size_t i = 0; i < n; i++) {
        const json_t *pair = json_array_get(list, i);
        const json_t *cfg = json_array_get(pair, 1);
        if (!json_is_array(pair) || json_array_size(pair) != 2 ||
            !json_is_string(json_array_get(pair, 0)) ||
            !(json_is_object(cfg) || json_is_null(cfg))) {
            err_set(err, ERR_INTERNAL, "tenant_shards[%zu] is not [tsid, config or null]", i);
            location_list_finish(out);
            return false;
        }
        LocationListEntry *e = list_add(out);
        if (!tsid_parse(json_string_value(json_array_get(pair, 0)), &e->tsid, err)) {
            err_prefix(err, "tenant_shards[%zu]: ", i);
            err->code = ERR_INTERNAL;
            location_list_finish(out);
            return false;
        }
        Err ignored;
        if (!json_is_object(cfg) || !tenant_shard_observed_from_json(cfg, &e->observed, &ignored))
            e->observed.known = false;
    }
    return true;
}

/* ---- the scanner ---- */

typedef struct Scan {
    const char *start, *p, *end;
    int depth;
    Err *err;
} Scan;

/* A decoded string, cut at SCAN_STR_MAX - 1 bytes (then `cut`). */
typedef struct ScanStr {
    char s[SCAN_STR_MAX];
    size_t len;
    bool cut;
} ScanStr;

static bool fail(Scan *sc, const char *what)
{
    err_set(sc->err, ERR_INTERNAL, "invalid JSON at offset %zu: %s", (size_t)(sc->p - sc->start),
            what);
    return false;
}

static void ws(Scan *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\n' || *sc->p == '\r' || *sc->p == '\t'))
        sc->p++;
}

static int peek(const Scan *sc)
{
    return sc->p < sc->end ? (unsigned char)*sc->p : -1;
}

static bool enter(Scan *sc)
{
    if (++sc->depth > SCAN_MAX_DEPTH)
        return fail(sc, "maximum nesting depth reached");
    return true;
}

static void str_put(ScanStr *out, const char *b, size_t n)
{
    if (out == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        if (out->len + 1 < sizeof(out->s))
            out->s[out->len++] = b[i];
        else
            out->cut = true;
    }
    out->s[out->len] = '\0';
}

/* hex4: four hex digits at p (inside the text) -> value, or -1. */
static long hex4(const Scan *sc, const char *p)
{
    if (sc->end - p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = str_hex_digit((unsigned char)p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* utf8_seq: the length of the valid UTF-8 sequence at p (first byte >= 0x80), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (n == 3 && v < 0x800) ||
        (n == 4 && v < 0x10000))
        return 0;
    return n;
}

static void utf8_put(ScanStr *out, uint32_t v)
{
    char b[4];
    size_t n;
    if (v < 0x80) {
        b[0] = (char)v;
        n = 1;
    } else if (v < 0x800) {
        b[0] = (char)(0xC0 | (v >> 6));
        b[1] = (char)(0x80 | (v & 0x3F));
        n = 2;
    } else if (v < 0x10000) {
        b[0] = (char)(0xE0 | (v >> 12));
        b[1] = (char)(0x80 | ((v >> 6) & 0x3F));
        b[2] = (char)(0x80 | (v & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (v >> 18));
        b[1] = (char)(0x80 | ((v >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((v >> 6) & 0x3F));
        b[3] = (char)(0x80 | (v & 0x3F));
        n = 4;
    }
    str_put(out, b, n);
}

/* scan_string: the string at sc->p (which is '"'), decoded into out (NULL: only checked). */
static bool scan_string(Scan *sc, ScanStr *out)
{
    if (out != NULL) {
        out->len = 0;
        out->cut = false;
        out->s[0] = '\0';
    }
    sc->p++; /* '"' */
    for (;;) {
        const char *run = sc->p;
        while (sc->p < sc->end) {
            unsigned char c = (unsigned char)*sc->p;
            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
                break;
            sc->p++;
        }
        str_put(out, run, (size_t)(sc->p - run));
        if (sc->p >= sc->end)
            return fail(sc, "premature end of input in a string");
        unsigned char c = (unsigned char)*sc->p;
        if (c == '"') {
            sc->p++;
            return true;
        }
        if (c < 0x20)
            return fail(sc, "control character in a string");
        if (c >= 0x80) {
            size_t n = utf8_seq((const unsigned char *)sc->p, (const unsigned char *)sc->end);
            if (n == 0)
                return fail(sc, "invalid UTF-8");
            str_put(out, sc->p, n);
            sc->p += n;
            continue;
        }
        /* an escape */
        if (sc->end - sc->p < 2)
            return fail(sc, "premature end of input in an escape");
        char e = sc->p[1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e != '\0' && simple != NULL) {
            static const char DECODED[] = "\"\\/\b\f\n\r\t";
            str_put(out, &DECODED[simple - "\"\\/bfnrt"], 1);
            sc->p += 2;
            continue;
        }
        if (e != 'u')
            return fail(sc, "invalid escape");
        long v = hex4(sc, sc->p + 2);
        if (v < 0)
            return fail(sc, "invalid \\u escape");
        sc->p += 6;
        if (v >= 0xD800 && v <= 0xDBFF) {
            long lo = sc->end - sc->p >= 2 && sc->p[0] == '\\' && sc->p[1] == 'u'
                          ? hex4(sc, sc->p + 2)
                          : -2;
            if (lo == -1)
                return fail(sc, "invalid \\u escape");
            if (lo < 0xDC00 || lo > 0xDFFF)
                return fail(sc, "lone high surrogate");
            sc->p += 6;
            v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
        } else if (v >= 0xDC00 && v <= 0xDFFF) {
            return fail(sc, "lone low surrogate");
        } else if (v == 0) {
            return fail(sc, "\\u0000 is not allowed");
        }
        utf8_put(out, (uint32_t)v);
    }
}

/* skip_lookahead_nul: jansson's quirk, copied so that the decoders agree: the byte after a
 * number or a literal is read ahead and pushed back, and a NUL byte pushed back is lost (its
 * stream buffer takes NUL for "empty"), so ONE NUL byte right after a number or literal is
 * ignored. */
static void skip_lookahead_nul(Scan *sc)
{
    if (sc->p < sc->end && *sc->p == '\0')
        sc->p++;
}

typedef enum NumKind { NUM_INTEGER, NUM_REAL } NumKind;

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* scan_number: a number at sc->p; an integer's value in *ival (it fits in a long long). */
static bool scan_number(Scan *sc, NumKind *kind, long long *ival)
{
    const char *begin = sc->p;
    bool neg = false;
    if (peek(sc) == '-') {
        neg = true;
        sc->p++;
    }
    unsigned long long mag = 0;
    bool overflow = false;
    if (peek(sc) == '0') {
        sc->p++;
        if (is_digit(peek(sc)))
            return fail(sc, "invalid number");
    } else if (is_digit(peek(sc))) {
        while (is_digit(peek(sc))) {
            unsigned d = (unsigned)(*sc->p - '0');
            if (mag > (ULLONG_MAX - d) / 10)
                overflow = true;
            else
                mag = mag * 10 + d;
            sc->p++;
        }
    } else {
        return fail(sc, "invalid number");
    }
    int c = peek(sc);
    if (c != '.' && c != 'e' && c != 'E') {
        unsigned long long limit = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
        if (overflow || mag > limit)
            return fail(sc, "integer out of range");
        *kind = NUM_INTEGER;
        *ival = neg ? (mag == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)mag)
                    : (long long)mag;
        skip_lookahead_nul(sc);
        return true;
    }
    if (c == '.') {
        sc->p++;
        if (!is_digit(peek(sc)))
            return fail(sc, "invalid number");
        while (is_digit(peek(sc)))
            sc->p++;
    }
    c = peek(sc);
    if (c == 'e' || c == 'E') {
        sc->p++;
        if (peek(sc) == '+' || peek(sc) == '-')
            sc->p++;
        if (!is_digit(peek(sc)))
            return fail(sc, "invalid number");
        while (is_digit(peek(sc)))
            sc->p++;
    }
    /* a real: it must not overflow a double (strtod wants a terminated copy) */
    size_t n = (size_t)(sc->p - begin);
    char small[128];
    char *copy = n < sizeof(small) ? small : xmalloc(n + 1);
    memcpy(copy, begin, n);
    copy[n] = '\0';
    errno = 0;
    double d = strtod(copy, NULL);
    bool huge = errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL);
    if (copy != small)
        free(copy);
    if (huge)
        return fail(sc, "real number overflow");
    *kind = NUM_REAL;
    skip_lookahead_nul(sc);
    return true;
}

/* scan_literal: true / false / null at sc->p. */
static bool scan_literal(Scan *sc, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n) != 0)
        return fail(sc, "invalid token");
    sc->p += n;
    int c = peek(sc);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return fail(sc, "invalid token");
    skip_lookahead_nul(sc);
    return true;
}

/* What a value we look at turned out to be. */
typedef enum ValKind {
    VAL_NONE, /* absent */
    VAL_NULL,
    VAL_TRUE,
    VAL_FALSE,
    VAL_INTEGER,
    VAL_STRING,
    VAL_OTHER /* real, object, array (or a string / integer where none is wanted) */
} ValKind;

static bool skip_value(Scan *sc);

/* value_begin: whitespace, then the nesting check every value makes. */
static bool value_begin(Scan *sc)
{
    ws(sc);
    return enter(sc);
}

/* scalar_value: a value that must be a scalar for us (kind, an integer's value, a string decoded
 * into str when given); containers are skipped as VAL_OTHER. */
static bool scalar_value(Scan *sc, ValKind *kind, long long *ival, ScanStr *str)
{
    if (!value_begin(sc))
        return false;
    int c = peek(sc);
    bool ok = true;
    switch (c) {
    case '"':
        ok = scan_string(sc, str);
        *kind = VAL_STRING;
        break;
    case 't':
        ok = scan_literal(sc, "true");
        *kind = VAL_TRUE;
        break;
    case 'f':
        ok = scan_literal(sc, "false");
        *kind = VAL_FALSE;
        break;
    case 'n':
        ok = scan_literal(sc, "null");
        *kind = VAL_NULL;
        break;
    case '{':
    case '[':
        sc->depth--; /* skip_value counts it */
        ok = skip_value(sc);
        *kind = VAL_OTHER;
        return ok;
    default:
        if (c == '-' || is_digit(c)) {
            NumKind nk = NUM_REAL;
            long long v = 0;
            ok = scan_number(sc, &nk, &v);
            *kind = nk == NUM_INTEGER ? VAL_INTEGER : VAL_OTHER;
            if (ival != NULL)
                *ival = v;
        } else {
            ok = fail(sc, c < 0 ? "premature end of input" : "unexpected character");
        }
        break;
    }
    sc->depth--;
    return ok;
}

/* ObjectFn: the value of `key` in an object being scanned starts at sc->p (after the ':'). */
typedef bool (*ObjectFn)(Scan *sc, const ScanStr *key, void *ctx);

/* scan_object: an object at sc->p ('{'), each member's value handed to fn. */
static bool scan_object(Scan *sc, ObjectFn fn, void *ctx)
{
    sc->p++; /* '{' */
    ws(sc);
    if (peek(sc) == '}') {
        sc->p++;
        return true;
    }
    for (;;) {
        ws(sc);
        if (peek(sc) != '"')
            return fail(sc, "string or '}' expected");
        ScanStr key;
        if (!scan_string(sc, &key))
            return false;
        ws(sc);
        if (peek(sc) != ':')
            return fail(sc, "':' expected");
        sc->p++;
        if (!fn(sc, &key, ctx))
            return false;
        ws(sc);
        int c = peek(sc);
        if (c == '}') {
            sc->p++;
            return true;
        }
        if (c != ',')
            return fail(sc, "',' or '}' expected");
        sc->p++;
    }
}

static bool skip_member(Scan *sc, const ScanStr *key, void *ctx)
{
    return skip_value(sc);
}

/* skip_value: any value, checked and discarded. */
static bool skip_value(Scan *sc)
{
    if (!value_begin(sc))
        return false;
    int c = peek(sc);
    bool ok;
    if (c == '{') {
        ok = scan_object(sc, skip_member, NULL);
    } else if (c == '[') {
        sc->p++;
        ws(sc);
        if (peek(sc) == ']') {
            sc->p++;
            ok = true;
        } else {
            for (;;) {
                if (!skip_value(sc)) {
                    ok = false;
                    break;
                }
                ws(sc);
                c = peek(sc);
                if (c == ']') {
                    sc->p++;
                    ok = true;
                    break;
                }
                if (c != ',') {
                    ok = fail(sc, "',' or ']' expected");
                    break;
                }
                sc->p++;
            }
        }
    } else {
        sc->depth--;
        ValKind k;
        return scalar_value(sc, &k, NULL, NULL);
    }
    sc->depth--;
    return ok;
}

/* The summary fields of one LocationConfig, as last seen. */
typedef struct ConfigFields {
    ValKind mode;
    ScanStr mode_str;
    ValKind generation;
    long long generation_value;
    ValKind secondary; /* VAL_NONE, VAL_NULL, VAL_OTHER (not an object) or VAL_STRING: an
                          object (its warm below) */
    ValKind warm;      /* inside the last secondary_conf object */
} ConfigFields;

static bool secondary_member(Scan *sc, const ScanStr *key, void *ctx)
{
    ConfigFields *f = ctx;
    if (!key->cut && strcmp(key->s, "warm") == 0)
        return scalar_value(sc, &f->warm, NULL, NULL);
    return skip_value(sc);
}

static bool config_member(Scan *sc, const ScanStr *key, void *ctx)
{
    ConfigFields *f = ctx;
    if (key->cut)
        return skip_value(sc);
    if (strcmp(key->s, "mode") == 0)
        return scalar_value(sc, &f->mode, NULL, &f->mode_str);
    if (strcmp(key->s, "generation") == 0)
        return scalar_value(sc, &f->generation, &f->generation_value, NULL);
    if (strcmp(key->s, "secondary_conf") == 0) {
        if (!value_begin(sc))
            return false;
        if (peek(sc) != '{') {
            sc->depth--;
            ValKind k;
            if (!scalar_value(sc, &k, NULL, NULL))
                return false;
            f->secondary = k == VAL_NULL ? VAL_NULL : VAL_OTHER;
            return true;
        }
        f->secondary = VAL_STRING;
        f->warm = VAL_NONE;
        bool ok = scan_object(sc, secondary_member, f);
        sc->depth--;
        return ok;
    }
    return skip_value(sc);
}

/* config_observed: the summary tenant_shard_observed_from_json would make of those fields. */
static void config_observed(const ConfigFields *f, ObservedState *out)
{
    ObservedState st = {true, SHARD_LOCATION_DETACHED, GENERATION_NONE, false};
    Err ignored;
    out->known = false;
    if (f->mode != VAL_STRING || f->mode_str.cut ||
        strlen(f->mode_str.s) != f->mode_str.len || /* an escaped NUL cannot occur; be safe */
        !shard_location_mode_parse(f->mode_str.s, &st.mode, &ignored))
        return;
    if (f->generation != VAL_NONE && f->generation != VAL_NULL) {
        if (f->generation != VAL_INTEGER || f->generation_value < 0 ||
            f->generation_value > GENERATION_MAX)
            return;
        st.generation = (Generation)f->generation_value;
    }
    if (f->secondary != VAL_NONE && f->secondary != VAL_NULL) {
        if (f->secondary != VAL_STRING ||
            (f->warm != VAL_NONE && f->warm != VAL_TRUE && f->warm != VAL_FALSE))
            return;
        st.secondary_warm = f->warm == VAL_TRUE;
    }
    *out = st;
}

/* The state of one "tenant_shards" occurrence. */
typedef struct ListCtx {
    LocationList *list;
    bool have; /* the last "tenant_shards" was an array */
    Err shape; /* its first problem of shape (code 0: none) */
    bool shape_bad;
} ListCtx;

static void shape_fail(ListCtx *lc, size_t i, const char *fmt_what, const Err *why)
{
    if (lc->shape_bad)
        return;
    lc->shape_bad = true;
    if (why != NULL) {
        lc->shape = *why;
        err_prefix(&lc->shape, "tenant_shards[%zu]: ", i);
        lc->shape.code = ERR_INTERNAL;
    } else {
        err_set(&lc->shape, ERR_INTERNAL, "tenant_shards[%zu] %s", i, fmt_what);
    }
}

/* scan_pair: one element of the list at index i. */
static bool scan_pair(Scan *sc, ListCtx *lc, size_t i)
{
    static const char NOT_PAIR[] = "is not [tsid, config or null]";
    if (!value_begin(sc))
        return false;
    if (peek(sc) != '[') {
        sc->depth--;
        shape_fail(lc, i, NOT_PAIR, NULL);
        return skip_value(sc);
    }
    sc->p++;
    ws(sc);
    size_t n = 0;
    ScanStr id = {.len = 0};
    ValKind id_kind = VAL_NONE, cfg_kind = VAL_NONE;
    ObservedState obs = {0};
    if (peek(sc) == ']') {
        sc->p++;
    } else {
        for (;;) {
            bool ok;
            if (n == 0) {
                ok = scalar_value(sc, &id_kind, NULL, &id);
            } else if (n == 1) {
                if (!value_begin(sc))
                    return false;
                if (peek(sc) == '{') {
                    ConfigFields f;
                    memset(&f, 0, sizeof(f));
                    ok = scan_object(sc, config_member, &f);
                    sc->depth--;
                    cfg_kind = VAL_STRING; /* an object */
                    config_observed(&f, &obs);
                } else {
                    sc->depth--;
                    ok = scalar_value(sc, &cfg_kind, NULL, NULL);
                    if (cfg_kind != VAL_NULL)
                        cfg_kind = VAL_OTHER;
                }
            } else {
                ok = skip_value(sc);
            }
            if (!ok)
                return false;
            n++;
            ws(sc);
            int c = peek(sc);
            if (c == ']') {
                sc->p++;
                break;
            }
            if (c != ',')
                return fail(sc, "',' or ']' expected");
            sc->p++;
        }
    }
    sc->depth--;
    if (n != 2 || id_kind != VAL_STRING || (cfg_kind != VAL_STRING && cfg_kind != VAL_NULL)) {
        shape_fail(lc, i, NOT_PAIR, NULL);
        return true;
    }
    if (lc->shape_bad)
        return true; /* the list fails anyway; keep scanning for the syntax */
    LocationListEntry *e = list_add(lc->list);
    Err why;
    if (id.cut || strlen(id.s) != id.len) {
        err_set(&why, ERR_BAD_REQUEST, "invalid tenant shard id: too long");
        shape_fail(lc, i, NULL, &why);
        return true;
    }
    if (!tsid_parse(id.s, &e->tsid, &why)) {
        shape_fail(lc, i, NULL, &why);
        return true;
    }
    e->observed = obs;
    return true;
}

/* scan_list: the value of a top-level "tenant_shards". */
static bool scan_list(Scan *sc, ListCtx *lc)
{
    lc->list->n = 0;
    lc->shape_bad = false;
    lc->have = false;
    if (!value_begin(sc))
        return false;
    if (peek(sc) != '[') {
        sc->depth--;
        return skip_value(sc);
    }
    lc->have = true;
    sc->p++;
    ws(sc);
    bool ok = true;
    if (peek(sc) == ']') {
        sc->p++;
    } else {
        for (size_t i = 0;; i++) {
            if (!scan_pair(sc, lc, i)) {
                ok = false;
                break;
            }
            ws(sc);
            int c = peek(sc);
            if (c == ']') {
                sc->p++;
                break;
            }
            if (c != ',') {
                ok = fail(sc, "',' or ']' expected");
                break;
            }
            sc->p++;
        }
    }
    sc->depth--;
    return ok;
}

static bool top_member(Scan *sc, const ScanStr *key, void *ctx)
{
    if (!key->cut && strcmp(key->s, "tenant_shards") == 0)
        return scan_list(sc, ctx);
    return skip_value(sc);
}

bool location_list_scan(const char *text, size_t len, LocationList *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    Scan sc = {.start = text, .p = text, .end = text + len, .depth = 0, .err = err};
    ListCtx lc;
    memset(&lc, 0, sizeof(lc));
    lc.list = out;
    bool ok;
    if (!value_begin(&sc)) {
        ok = false;
    } else if (peek(&sc) == '{') {
        ok = scan_object(&sc, top_member, &lc);
        sc.depth--;
        if (ok) {
            ws(&sc);
            if (sc.p != sc.end)
                ok = fail(&sc, "end of input expected");
        }
        if (ok && !lc.have) {
            err_set(err, ERR_INTERNAL, "\"tenant_shards\" is not an array");
            ok = false;
        } else if (ok && lc.shape_bad) {
            *err = lc.shape;
            ok = false;
        }
    } else {
        sc.depth--;
        ok = skip_value(&sc);
        if (ok) {
            ws(&sc);
            if (sc.p != sc.end)
                ok = fail(&sc, "end of input expected");
        }
        if (ok) {
            err_set(err, ERR_INTERNAL, "not a JSON object");
            ok = false;
        }
    }
    if (!ok)
        location_list_finish(out);
    return ok;
}
