/* test_str.c: unit tests for shared/str.c and shared/err.c. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/str.h"

static void test_str_copy_truncates(void **state)
{
    char buf[4];
    assert_true(str_copy(buf, sizeof(buf), "abc"));
    assert_string_equal(buf, "abc");
    assert_false(str_copy(buf, sizeof(buf), "abcd"));
    assert_string_equal(buf, "abc");
    assert_false(str_printf(buf, sizeof(buf), "%d", 12345));
    assert_true(str_printf(buf, sizeof(buf), "%d", 123));
}

static void test_parse_numbers(void **state)
{
    static const struct {
        const char *in;
        bool ok;
        uint64_t v;
    } cases[] = {
        {"0", true, 0},
        {"42", true, 42},
        {"18446744073709551615", true, UINT64_MAX},
        {"18446744073709551616", false, 0},
        {"", false, 0},
        {"-1", false, 0},
        {"+1", false, 0},
        {" 1", false, 0},
        {"1 ", false, 0},
        {"0x10", false, 0},
        {"1e3", false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 7;
        bool ok = parse_u64(cases[i].in, 0, UINT64_MAX, &v);
        assert_int_equal(ok, cases[i].ok);
        if (ok)
            assert_int_equal(v, cases[i].v);
    }
    uint64_t v;
    assert_false(parse_u64("11", 0, 10, &v));
    int64_t i;
    assert_true(parse_i64("-5", -10, 10, &i));
    assert_int_equal(i, -5);
    assert_false(parse_i64("-", -10, 10, &i));
    assert_false(parse_i64("-11", -10, 10, &i));
}

static void test_host_port(void **state)
{
    HostPort hp;
    Err err = {0};
    assert_true(host_port_parse("127.0.0.1:9898", &hp, &err));
    assert_string_equal(hp.host, "127.0.0.1");
    assert_int_equal(hp.port, 9898);
    assert_true(host_port_parse("[::1]:80", &hp, &err));
    assert_string_equal(hp.host, "::1");
    char out[64];
    host_port_format(&hp, out, sizeof(out));
    assert_string_equal(out, "[::1]:80");
    assert_true(host_port_parse(":0", &hp, &err));
    assert_string_equal(hp.host, "0.0.0.0");
    assert_false(host_port_parse("localhost", &hp, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_false(host_port_parse("localhost:65536", &hp, &err));
    assert_false(host_port_parse("[::1]80", &hp, &err));
}

static void test_strbuf(void **state)
{
    StrBuf b = STRBUF_INIT;
    for (int i = 0; i < 1000; i++)
        strbuf_printf(&b, "%d,", i);
    assert_int_equal(b.len, strlen(b.data));
    assert_true(str_has_prefix(b.data, "0,1,2,"));
    assert_true(str_has_suffix(b.data, "999,"));
    char *s = strbuf_detach(&b);
    assert_null(b.data);
    free(s);
    strbuf_finish(&b);
}

static void test_str_quote(void **state)
{
    char q[STR_QUOTE_SIZE];
    assert_string_equal(str_quote("abc-0104", q), "abc-0104");
    assert_string_equal(str_quote("a\"b\\c\n\xff", q), "a\\x22b\\x5cc\\x0a\\xff");
    char long_in[STR_QUOTE_MAX_INPUT + 10];
    memset(long_in, 'x', sizeof(long_in) - 1);
    long_in[sizeof(long_in) - 1] = '\0';
    str_quote(long_in, q);
    assert_int_equal(strlen(q), STR_QUOTE_MAX_INPUT + 3);
    assert_true(str_has_suffix(q, "x..."));
    /* the worst case (every byte escaped, then "...") fits the buffer */
    memset(long_in, 0x01, sizeof(long_in) - 1);
    str_quote(long_in, q);
    assert_int_equal(strlen(q), STR_QUOTE_MAX_INPUT * 4 + 3);
}

static void test_err_status_table(void **state)
{
    static const struct {
        ErrCode code;
        int status;
    } rows[] = {
        {ERR_BAD_REQUEST, 400},         {ERR_UNAUTHORIZED, 401},      {ERR_FORBIDDEN, 403},
        {ERR_NOT_FOUND, 404},           {ERR_TIMEOUT, 408},           {ERR_CONFLICT, 409},
        {ERR_PRECONDITION_FAILED, 412}, {ERR_TOO_MANY_REQUESTS, 429}, {ERR_INTERNAL, 500},
        {ERR_UNAVAILABLE, 503},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(err_http_status(rows[i].code), rows[i].status);
        assert_int_equal(err_code_from_http_status(rows[i].status), rows[i].code);
    }
    assert_int_equal(err_code_from_http_status(418), ERR_BAD_REQUEST);
    assert_int_equal(err_code_from_http_status(502), ERR_INTERNAL);

    Err e = {0};
    assert_false(err_is_set(&e));
    err_set(&e, ERR_NOT_FOUND, "tenant %s not found", "abc");
    assert_true(err_is_set(&e));
    assert_non_null(strstr(e.file, "test_str.c"));
    err_prefix(&e, "locate: ");
    assert_string_equal(e.msg, "locate: tenant abc not found");
    char *body = err_to_json_body(&e);
    assert_string_equal(body, "{\"msg\":\"locate: tenant abc not found\"}");
    free(body);
    err_set(&e, ERR_INTERNAL, "bad \xff utf8");
    body = err_to_json_body(&e);
    assert_non_null(strstr(body, "msg"));
    free(body);
}

static void test_hex_digit(void **state)
{
    (void)state;
    const char *digits = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        assert_int_equal(str_hex_digit(digits[i]), i);
        assert_int_equal(str_hex_digit(toupper((unsigned char)digits[i])), i);
    }
    const char *bad = "gG/:@`xX -";
    for (size_t i = 0; bad[i] != '\0'; i++)
        assert_int_equal(str_hex_digit(bad[i]), -1);
    assert_int_equal(str_hex_digit(0), -1);
    assert_int_equal(str_hex_digit(0xff), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_str_copy_truncates), cmocka_unit_test(test_parse_numbers),
        cmocka_unit_test(test_host_port),          cmocka_unit_test(test_strbuf),
        cmocka_unit_test(test_err_status_table),   cmocka_unit_test(test_str_quote),
        cmocka_unit_test(test_hex_digit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
