/* test_http_framing.c: the request-stream scanner, fed whole and byte by byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "shared/http_framing.h"

typedef struct Case {
    const char *input;
    int status;        /* 0: accepted */
    uint64_t requests; /* complete requests framed (accepted cases) */
    const char *msg;   /* part of the message (rejected cases) */
} Case;

static const Case CASES[] = {
    {"GET / HTTP/1.1\r\n\r\n", 0, 1, NULL},
    {"GET /a HTTP/1.0\n\n", 0, 1, NULL},
    {"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n", 0, 2, NULL},
    {"POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0, 1, NULL},
    /* evhttp reads a body for GET, DELETE, OPTIONS and CONNECT too (libevent 2.1), but none for
     * HEAD and TRACE: there the bytes after the head are the next request */
    {"GET /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyzGET / HTTP/1.1\r\n\r\n", 0, 2, NULL},
    {"DELETE /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyzGET / HTTP/1.1\r\n\r\n", 0, 2, NULL},
    {"OPTIONS /x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 0, 1, NULL},
    {"HEAD /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0, 2, NULL},
    {"GET /x HTTP/1.1\r\nContent-Length: 20000000\r\n\r\nab", 413, 0, "over the limit of 1000"},
    {"DELETE /x HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n", 413, 0, "over the limit"},
    {"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nA\r\n0123456789\r\n0\r\n"
     "X-Trailer: 1\r\n\r\n",
     0, 1, NULL},
    {"POST /x HTTP/1.1\r\nContent-Length:  7 \r\nX-A: b\r\n  folded\r\n\r\n1234567", 0, 1, NULL},
    {"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", 0, 1, NULL},
    {"POST /x HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\nab", 413, 0,
     "over the limit"},
    {"POST /x HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\nab", 413, 0, "over the limit"},
    {"POST /x HTTP/1.1\r\nContent-Length: 20000000\r\n\r\nab", 413, 0, "over the limit of 1000"},
    {"POST /x HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", 400, 0, "invalid Content-Length"},
    {"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, 0, "invalid Content-Length"},
    {"POST /x HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, 0, "invalid Content-Length"},
    {"POST /x HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", 400, 0, "invalid Content-Length"},
    {"POST /x HTTP/1.1\r\nContent-Length:\r\n\r\n", 400, 0, "invalid Content-Length"},
    {"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400, 0,
     "more than one"},
    {"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400, 0, "Transfer-Encoding"},
    {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", 400, 0, "both"},
    {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, 0, "chunk size"},
    {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 400, 0, "chunk size"},
    {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n", 400, 0, "chunk size"},
    {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n", 400, 0, "longer"},
    {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n", 413, 0, "over the limit"},
    {"POST /x HTTP/1.1\r\nExpect: magic\r\nContent-Length: 1\r\n\r\nx", 417, 0, "Expect"},
    {"BREW /pot HTTP/1.1\r\n\r\n", 501, 0, "not implemented"},
    {"GET / HTTP/2.0\r\n\r\n", 505, 0, "not supported"},
    {"GET / FOO/1.1\r\n\r\n", 400, 0, "malformed request line"},
    {"GET\r\n\r\n", 400, 0, "malformed request line"},
    {"\r\n", 400, 0, "malformed request line"},
    {"GET http://x/ HTTP/1.1\r\n\r\n", 400, 0, "absolute path"},
    {"GET //x HTTP/1.1\r\n\r\n", 400, 0, "absolute path"},
    {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, 0, "malformed header"},
    {"GET / HTTP/1.1\r\n folded-first\r\n\r\n", 400, 0, "continuation"},
    {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, 0, "header name"},
    {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, 0, "control character"},
};

static void check(const Case *c, bool bytewise)
{
    HttpFraming f;
    http_framing_init(&f, 1000, 0);
    size_t len = strlen(c->input);
    bool ok = true;
    if (bytewise) {
        for (size_t i = 0; i < len && ok; i++)
            ok = http_framing_feed(&f, c->input + i, 1);
    } else {
        ok = http_framing_feed(&f, c->input, len);
    }
    if (c->status == 0) {
        if (!ok)
            fail_msg("'%s' rejected: %d %s", c->input, f.status, f.msg);
        assert_int_equal(f.requests, c->requests);
        assert_false(http_framing_in_head(&f));
    } else {
        if (ok)
            fail_msg("'%s' accepted", c->input);
        assert_int_equal(f.status, c->status);
        if (strstr(f.msg, c->msg) == NULL)
            fail_msg("'%s': message '%s' lacks '%s'", c->input, f.msg, c->msg);
        assert_false(http_framing_feed(&f, "GET / HTTP/1.1\r\n\r\n", 18)); /* stays rejected */
    }
    http_framing_finish(&f);
}

static void test_cases(void **state)
{
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        check(&CASES[i], false);
        check(&CASES[i], true);
    }
}

static void test_head_limit_and_offsets(void **state)
{
    HttpFraming f;
    http_framing_init(&f, 1000, 0);
    assert_true(http_framing_feed(&f, "GET / HTTP/1.1\r\n", 16));
    assert_true(http_framing_in_head(&f));
    char line[1024];
    memset(line, 'a', sizeof(line));
    memcpy(line, "X-Big: ", 7);
    line[1022] = '\r';
    line[1023] = '\n';
    bool ok = true;
    size_t sent = 16;
    while (ok && sent < 2 * HTTP_MAX_HEAD_BYTES) {
        ok = http_framing_feed(&f, line, sizeof(line));
        sent += sizeof(line);
    }
    assert_false(ok);
    assert_int_equal(f.status, 431);
    assert_true(sent <= HTTP_MAX_HEAD_BYTES + sizeof(line)); /* cut as soon as it is over */
    http_framing_finish(&f);

    /* one never-ending line is cut too */
    http_framing_init(&f, 1000, 0);
    ok = http_framing_feed(&f, "GET / HTTP/1.1\r\nX: ", 19);
    for (int i = 0; ok && i < 200; i++)
        ok = http_framing_feed(&f, line, 1000);
    assert_false(ok);
    assert_int_equal(f.status, 431);
    http_framing_finish(&f);

    /* request_start follows message boundaries */
    http_framing_init(&f, 1000, 0);
    const char *two = "POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nokGET /y HTTP/1.1\r\n";
    assert_true(http_framing_feed(&f, two, strlen(two)));
    assert_int_equal(f.requests, 1);
    assert_int_equal(f.request_start, strlen("POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"));
    assert_int_equal(f.offset, strlen(two));
    assert_true(http_framing_in_head(&f));
    http_framing_finish(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_head_limit_and_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
