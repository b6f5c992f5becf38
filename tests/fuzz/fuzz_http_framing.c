/*
 * fuzz_http_framing: the HTTP/1.x request-stream scanner (shared/http_framing.c) that sees every
 * byte a client sends to either daemon before evhttp does. Invariants: the outcome does not
 * depend on how the stream is cut into reads (the bytes fed at once, or in pieces whose sizes
 * come from the input); a rejection has one of the documented statuses and a message; a
 * rejected scanner stays rejected; requests framed never decrease, and every byte is counted.
 */
#include "tests/fuzz/fuzz_util.h"

#include <string.h>

#include "shared/http_framing.h"

#define MAX_BODY 1000u
#define MAX_HEAD 512u

static bool status_documented(int s)
{
    return s == 400 || s == 413 || s == 417 || s == 431 || s == 501 || s == 505;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* the first byte seeds the cut sizes; the rest is the stream */
    uint32_t seed = data[0] | 1u;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;

    HttpFraming whole;
    http_framing_init(&whole, MAX_BODY, MAX_HEAD);
    bool ok = http_framing_feed(&whole, s, n);

    HttpFraming cut;
    http_framing_init(&cut, MAX_BODY, MAX_HEAD);
    bool cut_ok = true;
    uint64_t requests = 0;
    for (size_t off = 0; off < n && cut_ok;) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 64;
        if (piece > n - off)
            piece = n - off;
        cut_ok = http_framing_feed(&cut, s + off, piece);
        FUZZ_CHECK(cut.requests >= requests);
        requests = cut.requests;
        off += piece;
    }

    FUZZ_CHECK(ok == cut_ok);
    FUZZ_CHECK(whole.state == cut.state);
    FUZZ_CHECK(whole.requests == cut.requests);
    if (!ok) {
        FUZZ_CHECK(whole.state == HTTP_FRAME_ERROR);
        FUZZ_CHECK(status_documented(whole.status));
        FUZZ_CHECK(whole.status == cut.status);
        FUZZ_CHECK(whole.msg[0] != '\0');
        FUZZ_CHECK(strcmp(whole.msg, cut.msg) == 0);
        FUZZ_CHECK(!http_framing_feed(&whole, "GET / HTTP/1.1\r\n\r\n", 18));
        FUZZ_CHECK(whole.state == HTTP_FRAME_ERROR);
    } else {
        FUZZ_CHECK(whole.offset == n && cut.offset == n);
        FUZZ_CHECK(whole.request_start == cut.request_start);
    }
    http_framing_finish(&whole);
    http_framing_finish(&cut);
    return 0;
}
