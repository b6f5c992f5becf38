/*
 * units.c: human durations and byte sizes (see units.h).
 *
 * Durations follow humantime/Neon tenant config spelling: one or more "<integer><unit>" terms,
 * optionally separated by whitespace, with optional whitespace between a number and its unit.
 * Units are case-sensitive (as in humantime). Byte units are matched case-insensitively because no
 * two of them differ only by case. Every rejection is ERR_BAD_REQUEST quoting the input.
 */
#include "shared/units.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "shared/str.h"

#define MS_PER_SECOND 1000ull
#define MS_PER_MINUTE (60ull * MS_PER_SECOND)
#define MS_PER_HOUR   (60ull * MS_PER_MINUTE)
#define MS_PER_DAY    (24ull * MS_PER_HOUR)
#define MS_PER_WEEK   (7ull * MS_PER_DAY)

/* Longest part of the input quoted back in an error message. */
#define QUOTE_MAX 64

typedef struct UnitName {
    const char *name;
    uint64_t mult;
} UnitName;

static const UnitName DURATION_UNITS[] = {
    {"ms", 1},
    {"msec", 1},
    {"msecs", 1},
    {"s", MS_PER_SECOND},
    {"sec", MS_PER_SECOND},
    {"secs", MS_PER_SECOND},
    {"second", MS_PER_SECOND},
    {"seconds", MS_PER_SECOND},
    {"m", MS_PER_MINUTE},
    {"min", MS_PER_MINUTE},
    {"mins", MS_PER_MINUTE},
    {"minute", MS_PER_MINUTE},
    {"minutes", MS_PER_MINUTE},
    {"h", MS_PER_HOUR},
    {"hr", MS_PER_HOUR},
    {"hrs", MS_PER_HOUR},
    {"hour", MS_PER_HOUR},
    {"hours", MS_PER_HOUR},
    {"d", MS_PER_DAY},
    {"day", MS_PER_DAY},
    {"days", MS_PER_DAY},
    {"w", MS_PER_WEEK},
    {"week", MS_PER_WEEK},
    {"weeks", MS_PER_WEEK},
};

static const UnitName BYTE_UNITS[] = {
    {"b", 1},
    {"k", 1ull << 10},
    {"kib", 1ull << 10},
    {"kb", 1000ull},
    {"m", 1ull << 20},
    {"mib", 1ull << 20},
    {"mb", 1000ull * 1000},
    {"g", 1ull << 30},
    {"gib", 1ull << 30},
    {"gb", 1000ull * 1000 * 1000},
    {"t", 1ull << 40},
    {"tib", 1ull << 40},
    {"tb", 1000ull * 1000 * 1000 * 1000},
};

/* Formatting, largest first; weeks are left out so that "8d" is not written "1w 1d". */
static const UnitName FORMAT_UNITS[] = {
    {"d", MS_PER_DAY}, {"h", MS_PER_HOUR}, {"m", MS_PER_MINUTE}, {"s", MS_PER_SECOND}, {"ms", 1},
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_space(const char *p)
{
    while (is_space(*p))
        p++;
    return p;
}

/* quote_input: s cut to QUOTE_MAX bytes with "..." appended when longer, for error messages. */
static void quote_input(const char *s, char out[QUOTE_MAX + 4])
{
    if (!str_copy(out, QUOTE_MAX + 1, s))
        memcpy(out + QUOTE_MAX, "...", 4);
}

/* read_u64: decimal digits at *pp, advancing it; false on overflow. */
static bool read_u64(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    while (is_digit(*p)) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        p++;
    }
    *pp = p;
    *out = v;
    return true;
}

/* find_unit: the multiplier of the unit spelt by s[0..len), compared exactly or ignoring case. */
static bool find_unit(const UnitName *units, size_t n, const char *s, size_t len, bool ignore_case,
                      uint64_t *mult)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(units[i].name) != len)
            continue;
        int cmp = ignore_case ? strncasecmp(units[i].name, s, len) : strncmp(units[i].name, s, len);
        if (cmp == 0) {
            *mult = units[i].mult;
            return true;
        }
    }
    return false;
}

/* duration_parse_ms: terms are summed; each step checks overflow so a huge input never wraps. */
bool duration_parse_ms(const char *s, uint64_t *out_ms, Err *err)
{
    char q[QUOTE_MAX + 4];
    quote_input(s, q);
    const char *p = skip_space(s);
    if (*p == '\0') {
        err_set(err, ERR_BAD_REQUEST, "invalid duration \"%s\": empty", q);
        return false;
    }
    uint64_t total = 0;
    while (*p != '\0') {
        if (!is_digit(*p)) {
            err_set(err, ERR_BAD_REQUEST,
                    "invalid duration \"%s\": expected a non-negative integer followed by a unit",
                    q);
            return false;
        }
        uint64_t n = 0;
        if (!read_u64(&p, &n)) {
            err_set(err, ERR_BAD_REQUEST, "invalid duration \"%s\": number too large", q);
            return false;
        }
        p = skip_space(p);
        const char *unit = p;
        while (is_alpha(*p))
            p++;
        size_t unit_len = (size_t)(p - unit);
        if (unit_len == 0) {
            if (*p == '\0')
                err_set(err, ERR_BAD_REQUEST,
                        "invalid duration \"%s\": missing unit (e.g. ms, s, m, h, d)", q);
            else
                err_set(err, ERR_BAD_REQUEST, "invalid duration \"%s\": unexpected '%c'", q, *p);
            return false;
        }
        uint64_t mult = 0;
        if (!find_unit(DURATION_UNITS, COUNT_OF(DURATION_UNITS), unit, unit_len, false, &mult)) {
            err_set(err, ERR_BAD_REQUEST, "invalid duration \"%s\": unknown unit \"%.*s\"", q,
                    (int)(unit_len > QUOTE_MAX ? QUOTE_MAX : unit_len), unit);
            return false;
        }
        if (n > UINT64_MAX / mult || total > UINT64_MAX - n * mult) {
            err_set(err, ERR_BAD_REQUEST, "invalid duration \"%s\": too large", q);
            return false;
        }
        total += n * mult;
        p = skip_space(p);
    }
    *out_ms = total;
    return true;
}

void duration_format_ms(uint64_t ms, char *out, size_t cap)
{
    if (cap == 0)
        return;
    if (ms == 0) {
        str_copy(out, cap, "0s");
        return;
    }
    char buf[96]; /* UINT64_MAX ms is "213503982334d 14h 25m 51s 615ms": 31 chars */
    size_t len = 0;
    for (size_t i = 0; i < COUNT_OF(FORMAT_UNITS); i++) {
        uint64_t n = ms / FORMAT_UNITS[i].mult;
        if (n == 0)
            continue;
        ms -= n * FORMAT_UNITS[i].mult;
        int w = snprintf(buf + len, sizeof(buf) - len, "%s%llu%s", len ? " " : "",
                         (unsigned long long)n, FORMAT_UNITS[i].name);
        if (w > 0)
            len += (size_t)w; /* cannot exceed buf: at most 5 terms of <= 25 chars */
    }
    str_copy(out, cap, buf); /* truncation is the caller's choice of cap */
}

/* bytes_parse: one integer and at most one unit; no multi-term sums (unlike durations). */
bool bytes_parse(const char *s, uint64_t *out, Err *err)
{
    char q[QUOTE_MAX + 4];
    quote_input(s, q);
    const char *p = skip_space(s);
    if (*p == '\0') {
        err_set(err, ERR_BAD_REQUEST, "invalid byte size \"%s\": empty", q);
        return false;
    }
    if (!is_digit(*p)) {
        err_set(err, ERR_BAD_REQUEST,
                "invalid byte size \"%s\": expected a non-negative integer with an optional unit "
                "(B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)",
                q);
        return false;
    }
    uint64_t n = 0;
    if (!read_u64(&p, &n)) {
        err_set(err, ERR_BAD_REQUEST, "invalid byte size \"%s\": number too large", q);
        return false;
    }
    p = skip_space(p);
    const char *unit = p;
    while (is_alpha(*p))
        p++;
    size_t unit_len = (size_t)(p - unit);
    p = skip_space(p);
    if (*p != '\0') {
        err_set(err, ERR_BAD_REQUEST, "invalid byte size \"%s\": unexpected '%c'", q, *p);
        return false;
    }
    uint64_t mult = 1;
    if (unit_len > 0 && !find_unit(BYTE_UNITS, COUNT_OF(BYTE_UNITS), unit, unit_len, true, &mult)) {
        err_set(err, ERR_BAD_REQUEST, "invalid byte size \"%s\": unknown unit \"%.*s\"", q,
                (int)(unit_len > QUOTE_MAX ? QUOTE_MAX : unit_len), unit);
        return false;
    }
    if (n > UINT64_MAX / mult) {
        err_set(err, ERR_BAD_REQUEST, "invalid byte size \"%s\": too large", q);
        return false;
    }
    *out = n * mult;
    return true;
}
