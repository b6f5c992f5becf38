/*
 * fuzz_pgwire: the Postgres wire protocol framing and decoders (shared/pgwire.c) over bytes a
 * client or a server sends, and the pagestream request and response decoders. The first byte
 * picks the mode; the rest is the stream. Whatever decodes encodes back to the same bytes (a
 * response's non-zero "exists" byte becomes 1).
 */
#include "tests/fuzz/fuzz_util.h"

#include "shared/pgwire.h"

static void check_request(PagestreamVersion v, const uint8_t *p, size_t n)
{
    PagestreamRequest req;
    Err err = {0};
    if (!pagestream_request_decode(v, p, n, &req, &err))
        return;
    uint8_t out[PAGESTREAM_REQUEST_MAX];
    size_t len = pagestream_request_encode(v, &req, out);
    FUZZ_CHECK(len == n && memcmp(out, p, n) == 0);
}

static void check_response(PagestreamVersion v, const uint8_t *p, size_t n)
{
    PagestreamResponse resp;
    Err err = {0};
    if (!pagestream_response_decode(v, p, n, &resp, &err))
        return;
    /* re-encoded: the same length, and the same bytes except a non-zero "exists" byte, which
     * decodes as true and encodes as 1 */
    StrBuf b = STRBUF_INIT;
    pagestream_put_response(&b, v, &resp);
    FUZZ_CHECK(b.len == n + PGWIRE_HEADER_SIZE);
    const uint8_t *q = (const uint8_t *)b.data + PGWIRE_HEADER_SIZE;
    size_t cmp = resp.tag == PAGESTREAM_RESP_EXISTS ? n - 1 : n;
    FUZZ_CHECK(memcmp(q, p, cmp) == 0);
    PagestreamResponse again;
    FUZZ_CHECK(pagestream_response_decode(v, q, n, &again, &err));
    FUZZ_CHECK(again.tag == resp.tag && again.exists == resp.exists);
    strbuf_finish(&b);
}

static void check_message(const PgwireMsg *m)
{
    Err err = {0};
    if (m->type == 0) {
        PgwireStartup s;
        if (pgwire_decode_startup(m, &s, &err) && s.code == PGWIRE_PROTOCOL_V3) {
            StrBuf b = STRBUF_INIT;
            pgwire_put_startup(&b, s.n_params, s.names, s.values);
            FUZZ_CHECK(b.len == m->len + 4 && memcmp(b.data + 4, m->payload, m->len) == 0);
            strbuf_finish(&b);
        }
        return;
    }
    const char *s;
    PgwireError e;
    uint32_t code;
    switch (m->type) {
    case 'Q':
    case 'p':
        if (pgwire_decode_cstring(m, &s, &err))
            FUZZ_CHECK(strlen(s) + 1 == m->len);
        break;
    case 'E':
        (void)pgwire_decode_error(m, &e, &err);
        break;
    case 'R':
        (void)pgwire_decode_auth(m, &code, &err);
        break;
    case 'd':
        check_request(PAGESTREAM_V2, m->payload, m->len);
        check_request(PAGESTREAM_V3, m->payload, m->len);
        check_response(PAGESTREAM_V2, m->payload, m->len);
        check_response(PAGESTREAM_V3, m->payload, m->len);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    /* mode bit 0: start in startup mode (a server's view); bits 1..3: feed chunk size - 1 */
    PgwireParser p;
    pgwire_parser_init(&p, mode & 1, 64 * 1024);
    size_t chunk = ((mode >> 1) & 7) + 1;
    bool failed = false;
    for (size_t off = 0; off < size && !failed; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        pgwire_parser_feed(&p, data + off, n);
        PgwireMsg m;
        Err err = {0};
        PgwireFrameResult r;
        while ((r = pgwire_parser_next(&p, &m, &err)) == PGWIRE_MSG) {
            FUZZ_CHECK(m.len <= 64 * 1024);
            check_message(&m);
        }
        failed = r == PGWIRE_ERROR;
    }
    pgwire_parser_finish(&p);
    /* the whole input as one CopyData payload, too */
    check_request(PAGESTREAM_V2, data, size);
    check_request(PAGESTREAM_V3, data, size);
    check_response(PAGESTREAM_V2, data, size);
    check_response(PAGESTREAM_V3, data, size);
    return 0;
}
