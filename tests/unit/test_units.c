/* test_units.c: unit tests for shared/units.c (human durations and byte sizes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/units.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#define SEC  1000ull
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)
#define WEEK (7 * DAY)

typedef struct ParseCase {
    const char *in;
    bool ok;
    uint64_t want;
} ParseCase;

static const ParseCase DURATION_CASES[] = {
    /* the spellings the tenant config uses */
    {"10m", true, 10 * MIN},
    {"1h", true, HOUR},
    {"20 s", true, 20 * SEC},
    {"7 days", true, 7 * DAY},
    {"1h 30m", true, HOUR + 30 * MIN},
    {"500ms", true, 500},
    /* every unit spelling */
    {"1ms", true, 1},
    {"2msec", true, 2},
    {"3msecs", true, 3},
    {"1s", true, SEC},
    {"2sec", true, 2 * SEC},
    {"3secs", true, 3 * SEC},
    {"1second", true, SEC},
    {"4seconds", true, 4 * SEC},
    {"1m", true, MIN},
    {"2min", true, 2 * MIN},
    {"3mins", true, 3 * MIN},
    {"1minute", true, MIN},
    {"5minutes", true, 5 * MIN},
    {"1h", true, HOUR},
    {"2hr", true, 2 * HOUR},
    {"3hrs", true, 3 * HOUR},
    {"1hour", true, HOUR},
    {"6hours", true, 6 * HOUR},
    {"1d", true, DAY},
    {"1day", true, DAY},
    {"2days", true, 2 * DAY},
    {"1w", true, WEEK},
    {"1week", true, WEEK},
    {"2weeks", true, 2 * WEEK},
    /* multi-term and whitespace */
    {"1h30m", true, HOUR + 30 * MIN},
    {"1 h 30 m", true, HOUR + 30 * MIN},
    {"1d 2h 3m 4s 5ms", true, DAY + 2 * HOUR + 3 * MIN + 4 * SEC + 5},
    {"1s 1s", true, 2 * SEC},
    {"  5s  ", true, 5 * SEC},
    {"1h\t15m", true, HOUR + 15 * MIN},
    {"0s", true, 0},
    {"0ms", true, 0},
    {"007s", true, 7 * SEC},
    {"18446744073709551615ms", true, UINT64_MAX},
    /* rejects */
    {"", false, 0},
    {"   ", false, 0},
    {"10", false, 0},
    {"0", false, 0},
    {"1h 30", false, 0},
    {"10 parsecs", false, 0},
    {"1H", false, 0},
    {"1 Day", false, 0},
    {"1y", false, 0},
    {"1us", false, 0},
    {"-1s", false, 0},
    {"+1s", false, 0},
    {"1.5h", false, 0},
    {"h", false, 0},
    {"s1", false, 0},
    {"1s,2s", false, 0},
    {"1 s s", false, 0},
    {"1s-", false, 0},
    {"18446744073709551616ms", false, 0},     /* the number overflows */
    {"18446744073709551615s", false, 0},      /* number * unit overflows */
    {"18446744073709551615ms 1ms", false, 0}, /* the sum overflows */
    {"30500568904w", true, 30500568904ull * WEEK},
    {"30500568905w", false, 0},
};

static void test_duration_parse(void **state)
{
    for (size_t i = 0; i < COUNT_OF(DURATION_CASES); i++) {
        const ParseCase *c = &DURATION_CASES[i];
        uint64_t ms = 12345;
        Err err = {0};
        bool ok = duration_parse_ms(c->in, &ms, &err);
        if (ok != c->ok)
            fail_msg("duration \"%s\": ok=%d, want %d (%s)", c->in, ok, c->ok, err.msg);
        if (ok) {
            if (ms != c->want)
                fail_msg("duration \"%s\": %llu, want %llu", c->in, (unsigned long long)ms,
                         (unsigned long long)c->want);
        } else {
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            assert_int_equal(ms, 12345); /* untouched on failure */
            char quoted[128];
            snprintf(quoted, sizeof(quoted), "invalid duration \"%s\"", c->in);
            if (strstr(err.msg, quoted) == NULL)
                fail_msg("duration \"%s\": message does not quote the input: %s", c->in, err.msg);
        }
    }
}

static void test_duration_messages(void **state)
{
    Err err = {0};
    uint64_t ms;
    assert_false(duration_parse_ms("10 parsecs", &ms, &err));
    assert_string_equal(err.msg, "invalid duration \"10 parsecs\": unknown unit \"parsecs\"");
    assert_false(duration_parse_ms("10", &ms, &err));
    assert_non_null(strstr(err.msg, "missing unit"));
    assert_false(duration_parse_ms("", &ms, &err));
    assert_string_equal(err.msg, "invalid duration \"\": empty");
    /* a long input is cut in the message, not allowed to overflow it */
    char big[300];
    memset(big, '9', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(duration_parse_ms(big, &ms, &err));
    assert_non_null(strstr(err.msg, "...\""));
    assert_true(strlen(err.msg) < 150);
}

static void test_duration_format(void **state)
{
    static const struct {
        uint64_t ms;
        const char *want;
    } cases[] = {
        {0, "0s"},           {1, "1ms"},
        {999, "999ms"},      {1500, "1s 500ms"},
        {10 * MIN, "10m"},   {HOUR + 30 * MIN, "1h 30m"},
        {HOUR, "1h"},        {7 * DAY, "7d"},
        {8 * DAY, "8d"},     {DAY + HOUR + MIN + SEC + 1, "1d 1h 1m 1s 1ms"},
        {DAY + 1, "1d 1ms"}, {UINT64_MAX, "213503982334d 14h 25m 51s 615ms"},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        char out[64];
        duration_format_ms(cases[i].ms, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
    }
    /* truncation keeps the buffer terminated; cap 0 writes nothing */
    char small[4] = "xyz";
    duration_format_ms(HOUR + 30 * MIN, small, sizeof(small));
    assert_string_equal(small, "1h ");
    duration_format_ms(HOUR, small, 0);
    assert_string_equal(small, "1h ");
}

static void test_duration_round_trip(void **state)
{
    static const uint64_t values[] = {
        0,          1,        999,           1000,
        1001,       59 * SEC, MIN,           61 * MIN + 1,
        DAY - 1,    WEEK,     365 * DAY + 7, 123456789012345,
        UINT64_MAX,
    };
    for (size_t i = 0; i < COUNT_OF(values); i++) {
        char text[64];
        duration_format_ms(values[i], text, sizeof(text));
        uint64_t back = 0;
        Err err = {0};
        if (!duration_parse_ms(text, &back, &err))
            fail_msg("\"%s\" does not parse back: %s", text, err.msg);
        assert_true(back == values[i]);
    }
    /* parse -> format gives the canonical form */
    uint64_t ms = 0;
    Err err = {0};
    assert_true(duration_parse_ms("90 minutes", &ms, &err));
    char text[64];
    duration_format_ms(ms, text, sizeof(text));
    assert_string_equal(text, "1h 30m");
}

static const ParseCase BYTES_CASES[] = {
    {"0", true, 0},
    {"123", true, 123},
    {"18446744073709551615", true, UINT64_MAX},
    {"1B", true, 1},
    {"10 B", true, 10},
    {"1K", true, 1024},
    {"1KB", true, 1000},
    {"1KiB", true, 1024},
    {"1M", true, 1ull << 20},
    {"1MB", true, 1000000},
    {"64MiB", true, 64ull << 20},
    {"64 MiB", true, 64ull << 20},
    {"1G", true, 1ull << 30},
    {"1 GB", true, 1000000000},
    {"2GiB", true, 2ull << 30},
    {"1T", true, 1ull << 40},
    {"1TB", true, 1000000000000ull},
    {"3TiB", true, 3ull << 40},
    {"1 gb", true, 1000000000}, /* units ignore case: no two differ only by case */
    {"1kib", true, 1024},
    {" 7 ", true, 7},
    {"16777215TiB", true, 16777215ull << 40},
    {"", false, 0},
    {" ", false, 0},
    {"-1", false, 0},
    {"+1", false, 0},
    {"1.5GiB", false, 0},
    {"1 PB", false, 0},
    {"1EiB", false, 0},
    {"1KiBs", false, 0},
    {"abc", false, 0},
    {"MiB", false, 0},
    {"1 2", false, 0},
    {"1MiB 1KiB", false, 0},
    {"0x10", false, 0},
    {"18446744073709551616", false, 0},
    {"16777216TiB", false, 0},
    {"17179869184 GiB", false, 0},
};

static void test_bytes_parse(void **state)
{
    for (size_t i = 0; i < COUNT_OF(BYTES_CASES); i++) {
        const ParseCase *c = &BYTES_CASES[i];
        uint64_t v = 777;
        Err err = {0};
        bool ok = bytes_parse(c->in, &v, &err);
        if (ok != c->ok)
            fail_msg("bytes \"%s\": ok=%d, want %d (%s)", c->in, ok, c->ok, err.msg);
        if (ok) {
            if (v != c->want)
                fail_msg("bytes \"%s\": %llu, want %llu", c->in, (unsigned long long)v,
                         (unsigned long long)c->want);
        } else {
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            assert_int_equal(v, 777);
            char quoted[128];
            snprintf(quoted, sizeof(quoted), "invalid byte size \"%s\"", c->in);
            if (strstr(err.msg, quoted) == NULL)
                fail_msg("bytes \"%s\": message does not quote the input: %s", c->in, err.msg);
        }
    }
    Err err = {0};
    uint64_t v;
    assert_false(bytes_parse("1 PB", &v, &err));
    assert_string_equal(err.msg, "invalid byte size \"1 PB\": unknown unit \"PB\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_parse),  cmocka_unit_test(test_duration_messages),
        cmocka_unit_test(test_duration_format), cmocka_unit_test(test_duration_round_trip),
        cmocka_unit_test(test_bytes_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
