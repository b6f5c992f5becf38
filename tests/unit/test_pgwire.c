/* test_pgwire.c: unit tests for shared/pgwire.c: framing (startup and typed messages, split
 * arbitrarily, oversized and malformed lengths), the builders read back by the decoders, and the
 * pagestream v2/v3 encodings of every tag with their exact byte layouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/pgwire.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* frame_one: frame exactly one whole message from b (asserting nothing is left). */
static PgwireMsg frame_one(const StrBuf *b, bool startup)
{
    PgwireMsg m;
    size_t used = 0;
    Err err = {0};
    assert_int_equal(pgwire_frame((const uint8_t *)b->data, b->len, startup, PGWIRE_DEFAULT_MAX_LEN,
                                  &m, &used, &err),
                     PGWIRE_MSG);
    assert_int_equal(used, b->len);
    return m;
}

static void test_big_endian(void **state)
{
    uint8_t p[8];
    be_put_u16(p, 0x1234);
    assert_int_equal(p[0], 0x12);
    assert_int_equal(be_get_u16(p), 0x1234);
    be_put_u32(p, 0xA1B2C3D4u);
    assert_memory_equal(p, "\xA1\xB2\xC3\xD4", 4);
    assert_int_equal(be_get_u32(p), 0xA1B2C3D4u);
    be_put_u64(p, 0x0102030405060708ull);
    assert_memory_equal(p, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_true(be_get_u64(p) == 0x0102030405060708ull);
}

static void test_startup_roundtrip(void **state)
{
    StrBuf b = STRBUF_INIT;
    const char *names[] = {"user", "database"};
    const char *values[] = {"cloud_admin", "postgres"};
    pgwire_put_startup(&b, 2, names, values);
    assert_int_equal(be_get_u32((const uint8_t *)b.data), b.len);
    PgwireMsg m = frame_one(&b, true);
    assert_int_equal(m.type, 0);
    PgwireStartup s;
    Err err = {0};
    assert_true(pgwire_decode_startup(&m, &s, &err));
    assert_int_equal(s.code, PGWIRE_PROTOCOL_V3);
    assert_int_equal(s.n_params, 2);
    assert_string_equal(pgwire_startup_param(&s, "database"), "postgres");
    assert_null(pgwire_startup_param(&s, "options"));

    strbuf_reset(&b);
    pgwire_put_ssl_request(&b);
    assert_int_equal(b.len, 8);
    m = frame_one(&b, true);
    assert_true(pgwire_decode_startup(&m, &s, &err));
    assert_int_equal(s.code, PGWIRE_SSL_REQUEST);
    strbuf_finish(&b);
}

static void test_startup_malformed(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
    } CASES[] = {
        {"\x00\x03\x00\x00user\x00x", 10},       /* unterminated value */
        {"\x00\x03\x00\x00user\x00x\x00", 11},   /* no final empty name */
        {"\x00\x03\x00\x00\x00junk", 9},         /* bytes after the terminator */
        {"\x00\x02\x00\x00\x00", 5},             /* protocol 2 */
        {"\x04\xd2\x16\x2f\x00", 5},             /* SSLRequest with extra bytes */
        {"\x04\xd2\x16\x2e\x00\x00\x00\x01", 8}, /* cancel of the wrong size */
    };
    for (size_t i = 0; i < N_ELEMS(CASES); i++) {
        PgwireMsg m = {.type = 0, .payload = (const uint8_t *)CASES[i].bytes, .len = CASES[i].len};
        PgwireStartup s;
        Err err = {0};
        assert_false(pgwire_decode_startup(&m, &s, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
}

static void test_frame_lengths(void **state)
{
    PgwireMsg m;
    size_t used = 0;
    Err err = {0};
    /* typed: length below 4 */
    assert_int_equal(
        pgwire_frame((const uint8_t *)"d\x00\x00\x00\x03", 5, false, 1024, &m, &used, &err),
        PGWIRE_ERROR);
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    /* typed: over the limit, refused from the header alone */
    err_clear(&err);
    assert_int_equal(
        pgwire_frame((const uint8_t *)"d\x7f\xff\xff\xff", 5, false, 1024, &m, &used, &err),
        PGWIRE_ERROR);
    assert_int_equal(err.code, ERR_PAYLOAD_TOO_LARGE);
    /* untyped: below 8 */
    assert_int_equal(
        pgwire_frame((const uint8_t *)"\x00\x00\x00\x04", 4, true, 1024, &m, &used, &err),
        PGWIRE_ERROR);
    /* partial header and partial body */
    assert_int_equal(pgwire_frame((const uint8_t *)"d\x00\x00", 3, false, 1024, &m, &used, &err),
                     PGWIRE_NEED_MORE);
    assert_int_equal(pgwire_frame((const uint8_t *)"d\x00\x00\x00\x08"
                                                   "ab",
                                  7, false, 1024, &m, &used, &err),
                     PGWIRE_NEED_MORE);
    assert_int_equal(pgwire_frame_need((const uint8_t *)"d\x00\x00\x00\x08", 5, false), 9);
    assert_int_equal(pgwire_frame_need((const uint8_t *)"d\x00", 2, false), 0);
    /* exactly the limit is accepted */
    assert_int_equal(
        pgwire_frame((const uint8_t *)"c\x00\x00\x00\x04", 5, false, 4, &m, &used, &err),
        PGWIRE_MSG);
    assert_int_equal(m.type, 'c');
    assert_int_equal(m.len, 0);
}

/* The parser yields the same messages whatever the split of the stream. */
static void test_parser_any_split(void **state)
{
    StrBuf b = STRBUF_INIT;
    const char *names[] = {"user"};
    const char *values[] = {"u"};
    pgwire_put_ssl_request(&b);
    pgwire_put_startup(&b, 1, names, values);
    pgwire_put_password(&b, "secret");
    pgwire_put_query(&b, "pagestream_v2 a b");
    pgwire_put_copy_data(&b, "xyz", 3);
    pgwire_put_copy_done(&b);
    pgwire_put_terminate(&b);
    static const uint8_t WANT[] = {0, 0, 'p', 'Q', 'd', 'c', 'X'};
    for (size_t step = 1; step <= b.len; step += (step < 8 ? 1 : 7)) {
        PgwireParser p;
        pgwire_parser_init(&p, true, 0);
        size_t got = 0;
        for (size_t off = 0; off < b.len; off += step) {
            size_t n = b.len - off < step ? b.len - off : step;
            pgwire_parser_feed(&p, b.data + off, n);
            PgwireMsg m;
            Err err = {0};
            PgwireFrameResult r;
            while ((r = pgwire_parser_next(&p, &m, &err)) == PGWIRE_MSG) {
                assert_true(got < N_ELEMS(WANT));
                assert_int_equal(m.type, WANT[got]);
                if (m.type == 'Q') {
                    const char *q;
                    assert_true(pgwire_decode_cstring(&m, &q, &err));
                    assert_string_equal(q, "pagestream_v2 a b");
                }
                if (m.type == 'd')
                    assert_memory_equal(m.payload, "xyz", 3);
                got++;
            }
            assert_int_equal(r, PGWIRE_NEED_MORE);
        }
        assert_int_equal(got, N_ELEMS(WANT));
        pgwire_parser_finish(&p);
    }
    strbuf_finish(&b);
}

static void test_parser_rejects_oversized(void **state)
{
    PgwireParser p;
    pgwire_parser_init(&p, false, 100);
    pgwire_parser_feed(&p, "d\x00\x00\x10\x00", 5);
    PgwireMsg m;
    Err err = {0};
    assert_int_equal(pgwire_parser_next(&p, &m, &err), PGWIRE_ERROR);
    assert_int_equal(err.code, ERR_PAYLOAD_TOO_LARGE);
    /* stays failed: the stream cannot be resynchronised */
    pgwire_parser_feed(&p, "c\x00\x00\x00\x04", 5);
    assert_int_equal(pgwire_parser_next(&p, &m, &err), PGWIRE_ERROR);
    pgwire_parser_finish(&p);
    /* a huge startup packet is bounded by PGWIRE_STARTUP_MAX_LEN */
    pgwire_parser_init(&p, true, 0);
    pgwire_parser_feed(&p, "\x00\x01\x00\x00", 4);
    assert_int_equal(pgwire_parser_next(&p, &m, &err), PGWIRE_ERROR);
    pgwire_parser_finish(&p);
}

static void test_backend_messages(void **state)
{
    StrBuf b = STRBUF_INIT;
    Err err = {0};
    uint32_t code = 99;

    pgwire_put_auth_cleartext(&b);
    assert_memory_equal(b.data, "R\x00\x00\x00\x08\x00\x00\x00\x03", 9);
    PgwireMsg m = frame_one(&b, false);
    assert_true(pgwire_decode_auth(&m, &code, &err));
    assert_int_equal(code, PGWIRE_AUTH_CLEARTEXT_PASSWORD);
    strbuf_reset(&b);
    pgwire_put_auth_ok(&b);
    m = frame_one(&b, false);
    assert_true(pgwire_decode_auth(&m, &code, &err));
    assert_int_equal(code, PGWIRE_AUTH_OK);

    strbuf_reset(&b);
    pgwire_put_ready_for_query(&b);
    assert_memory_equal(b.data, "Z\x00\x00\x00\x05I", 6);

    strbuf_reset(&b);
    pgwire_put_error(&b, "ERROR", PGWIRE_SQLSTATE_PROTOCOL_VIOLATION, "bad length");
    m = frame_one(&b, false);
    assert_int_equal(m.type, 'E');
    PgwireError e;
    assert_true(pgwire_decode_error(&m, &e, &err));
    assert_string_equal(e.severity, "ERROR");
    assert_string_equal(e.code, "08P01");
    assert_string_equal(e.message, "bad length");

    strbuf_reset(&b);
    pgwire_put_copy_both_response(&b);
    assert_memory_equal(b.data, "W\x00\x00\x00\x07\x01\x00\x00", 8);
    strbuf_reset(&b);
    pgwire_put_copy_out_response(&b);
    assert_memory_equal(b.data, "H\x00\x00\x00\x07\x01\x00\x00", 8);
    strbuf_reset(&b);
    pgwire_put_copy_done(&b);
    assert_memory_equal(b.data, "c\x00\x00\x00\x04", 5);
    strbuf_reset(&b);
    pgwire_put_empty_query_response(&b);
    assert_memory_equal(b.data, "I\x00\x00\x00\x04", 5);
    strbuf_reset(&b);
    pgwire_put_command_complete(&b, "SELECT 1");
    assert_memory_equal(b.data, "C\x00\x00\x00\x0dSELECT 1\x00", 14);
    strbuf_reset(&b);
    pgwire_put_parameter_status(&b, "server_version", "15");
    assert_memory_equal(b.data,
                        "S\x00\x00\x00\x16server_version\x00"
                        "15\x00",
                        23);
    strbuf_reset(&b);
    pgwire_put_backend_key_data(&b, 7, 9);
    assert_memory_equal(b.data, "K\x00\x00\x00\x0c\x00\x00\x00\x07\x00\x00\x00\x09", 13);

    strbuf_reset(&b);
    const char *cols[] = {"a", "b"};
    pgwire_put_row_description(&b, 2, cols);
    m = frame_one(&b, false);
    assert_int_equal(m.type, 'T');
    assert_int_equal(m.len, 2 + 2 * (2 + 18));
    assert_int_equal(be_get_u16(m.payload), 2);
    strbuf_reset(&b);
    const char *vals[] = {"xy", NULL};
    pgwire_put_data_row(&b, 2, vals);
    m = frame_one(&b, false);
    assert_int_equal(m.len, 2 + 4 + 2 + 4);
    assert_memory_equal(m.payload, "\x00\x02\x00\x00\x00\x02xy\xff\xff\xff\xff", 12);
    strbuf_finish(&b);
}

static void test_decode_malformed_backend(void **state)
{
    Err err = {0};
    PgwireError e;
    PgwireMsg m = {.type = 'E', .payload = (const uint8_t *)"Mabc", .len = 4};
    assert_false(pgwire_decode_error(&m, &e, &err));
    m.payload = (const uint8_t *)"Mabc\x00";
    m.len = 5;
    assert_false(pgwire_decode_error(&m, &e, &err)); /* no final terminator */
    const char *s;
    m.type = 'Q';
    m.payload = (const uint8_t *)"a\x00"
                                 "b";
    m.len = 3;
    assert_false(pgwire_decode_cstring(&m, &s, &err));
    m.len = 0;
    assert_false(pgwire_decode_cstring(&m, &s, &err));
    uint32_t code;
    m.type = 'R';
    m.len = 2;
    assert_false(pgwire_decode_auth(&m, &code, &err));
}

/* ---- pagestream ---- */

static PagestreamRequest sample_request(PagestreamTag tag)
{
    PagestreamRequest r = {
        .tag = tag,
        .reqid = 0x1122334455667788ull,
        .request_lsn = 0x169AD58ull,
        .not_modified_since = 0x1000ull,
        .rel = {.spc = 1663, .db = 5, .rel = 16384, .fork = 0},
        .blkno = 42,
        .dbnode = 5,
        .slru_kind = 0,
        .segno = 3,
    };
    /* only the fields the tag carries survive a round trip */
    if (tag != PAGESTREAM_EXISTS && tag != PAGESTREAM_NBLOCKS && tag != PAGESTREAM_GET_PAGE)
        memset(&r.rel, 0, sizeof(r.rel));
    if (tag != PAGESTREAM_GET_PAGE)
        r.blkno = 0;
    if (tag != PAGESTREAM_DB_SIZE)
        r.dbnode = 0;
    if (tag != PAGESTREAM_GET_SLRU_SEGMENT)
        r.segno = 0;
    return r;
}

/* assert_req_equal: field by field (the struct has padding). */
static void assert_req_equal(const PagestreamRequest *a, const PagestreamRequest *b)
{
    assert_int_equal(a->tag, b->tag);
    assert_true(a->reqid == b->reqid);
    assert_true(a->request_lsn == b->request_lsn);
    assert_true(a->not_modified_since == b->not_modified_since);
    assert_int_equal(a->rel.spc, b->rel.spc);
    assert_int_equal(a->rel.db, b->rel.db);
    assert_int_equal(a->rel.rel, b->rel.rel);
    assert_int_equal(a->rel.fork, b->rel.fork);
    assert_int_equal(a->blkno, b->blkno);
    assert_int_equal(a->dbnode, b->dbnode);
    assert_int_equal(a->slru_kind, b->slru_kind);
    assert_int_equal(a->segno, b->segno);
}

static void test_request_layouts(void **state)
{
    static const size_t LEN_V2[] = {30, 30, 34, 21, 22};
    Err err = {0};
    for (int v = PAGESTREAM_V2; v <= PAGESTREAM_V3; v++) {
        for (int t = 0; t < PAGESTREAM_TAG_COUNT; t++) {
            PagestreamRequest r = sample_request((PagestreamTag)t), back;
            if (v == PAGESTREAM_V2)
                r.reqid = 0;
            uint8_t buf[PAGESTREAM_REQUEST_MAX];
            size_t n = pagestream_request_encode((PagestreamVersion)v, &r, buf);
            assert_int_equal(n, LEN_V2[t] + (v == PAGESTREAM_V3 ? 8 : 0));
            assert_int_equal(buf[0], t);
            size_t lsn_at = v == PAGESTREAM_V3 ? 9 : 1;
            assert_true(be_get_u64(buf + lsn_at) == r.request_lsn);
            assert_true(be_get_u64(buf + lsn_at + 8) == r.not_modified_since);
            assert_true(pagestream_request_decode((PagestreamVersion)v, buf, n, &back, &err));
            assert_req_equal(&r, &back);
            /* one byte short or long is refused */
            assert_false(pagestream_request_decode((PagestreamVersion)v, buf, n - 1, &back, &err));
            assert_false(pagestream_request_decode((PagestreamVersion)v, buf, n + 1, &back, &err));
        }
    }
    /* GetPage v2 byte for byte */
    PagestreamRequest g = sample_request(PAGESTREAM_GET_PAGE);
    uint8_t buf[PAGESTREAM_REQUEST_MAX];
    assert_int_equal(pagestream_request_encode(PAGESTREAM_V2, &g, buf), 34);
    assert_memory_equal(buf,
                        "\x02"
                        "\x00\x00\x00\x00\x01\x69\xAD\x58"
                        "\x00\x00\x00\x00\x00\x00\x10\x00"
                        "\x00\x00\x06\x7F"
                        "\x00\x00\x00\x05"
                        "\x00\x00\x40\x00"
                        "\x00"
                        "\x00\x00\x00\x2A",
                        34);
    uint8_t bad = 9;
    PagestreamRequest back;
    assert_false(pagestream_request_decode(PAGESTREAM_V2, &bad, 1, &back, &err));
    assert_false(pagestream_request_decode(PAGESTREAM_V2, buf, 0, &back, &err));
    assert_false(pagestream_request_decode((PagestreamVersion)4, buf, 34, &back, &err));
}

static void test_response_roundtrip(void **state)
{
    static uint8_t page[BLCKSZ * 2];
    for (size_t i = 0; i < sizeof(page); i++)
        page[i] = (uint8_t)(i * 7);
    Err err = {0};
    for (int v = PAGESTREAM_V2; v <= PAGESTREAM_V3; v++) {
        for (int t = 0; t <= PAGESTREAM_TAG_COUNT; t++) {
            bool is_err = t == PAGESTREAM_TAG_COUNT;
            PagestreamRequest req = sample_request(is_err ? PAGESTREAM_GET_PAGE : (PagestreamTag)t);
            PagestreamResponse resp = {
                .tag = (uint8_t)(is_err ? PAGESTREAM_RESP_ERROR
                                        : pagestream_response_tag((PagestreamTag)t)),
                .req = req,
                .exists = true,
                .nblocks = t == PAGESTREAM_GET_SLRU_SEGMENT ? 2 : 77,
                .db_size = 123456789,
                .message = "relation not found",
            };
            if (t == PAGESTREAM_GET_PAGE) {
                resp.data = page;
                resp.data_len = BLCKSZ;
            } else if (t == PAGESTREAM_GET_SLRU_SEGMENT) {
                resp.data = page;
                resp.data_len = 2 * BLCKSZ;
            }
            StrBuf b = STRBUF_INIT;
            pagestream_put_response(&b, (PagestreamVersion)v, &resp);
            PgwireMsg m = frame_one(&b, false);
            assert_int_equal(m.type, 'd');
            PagestreamResponse back;
            assert_true(
                pagestream_response_decode((PagestreamVersion)v, m.payload, m.len, &back, &err));
            assert_int_equal(back.tag, resp.tag);
            if (v == PAGESTREAM_V3) {
                assert_true(back.req.reqid == req.reqid);
                assert_true(back.req.request_lsn == req.request_lsn);
                assert_true(back.req.not_modified_since == req.not_modified_since);
                if (!is_err)
                    assert_req_equal(&back.req, &req);
            }
            switch (t) {
            case PAGESTREAM_EXISTS:
                assert_true(back.exists);
                assert_int_equal(m.len, 2 + (v == PAGESTREAM_V3 ? 24 + 13 : 0));
                break;
            case PAGESTREAM_NBLOCKS:
                assert_int_equal(back.nblocks, 77);
                break;
            case PAGESTREAM_GET_PAGE:
                assert_int_equal(back.data_len, BLCKSZ);
                assert_memory_equal(back.data, page, BLCKSZ);
                assert_int_equal(m.len, 1 + BLCKSZ + (v == PAGESTREAM_V3 ? 24 + 17 : 0));
                break;
            case PAGESTREAM_DB_SIZE:
                assert_true(back.db_size == 123456789);
                break;
            case PAGESTREAM_GET_SLRU_SEGMENT:
                assert_int_equal(back.nblocks, 2);
                assert_int_equal(back.data_len, 2 * BLCKSZ);
                assert_memory_equal(back.data, page, 2 * BLCKSZ);
                break;
            default:
                assert_string_equal(back.message, "relation not found");
                assert_int_equal(m.len, 1 + 19 + (v == PAGESTREAM_V3 ? 24 : 0));
                break;
            }
            /* truncated by one byte: refused */
            assert_false(pagestream_response_decode((PagestreamVersion)v, m.payload, m.len - 1,
                                                    &back, &err));
            strbuf_finish(&b);
        }
    }
    uint8_t bad[2] = {99, 0};
    PagestreamResponse back;
    assert_false(pagestream_response_decode(PAGESTREAM_V2, bad, 2, &back, &err));
    /* an error message with bytes after its NUL */
    uint8_t trailing[4] = {103, 'a', 0, 'b'};
    assert_false(pagestream_response_decode(PAGESTREAM_V2, trailing, 4, &back, &err));
    assert_string_equal(pagestream_tag_name(PAGESTREAM_GET_PAGE), "get_page");
    static const uint8_t WANT_TAGS[] = {100, 101, 102, 104, 105};
    for (int t = 0; t < PAGESTREAM_TAG_COUNT; t++)
        assert_int_equal(pagestream_response_tag((PagestreamTag)t), WANT_TAGS[t]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_endian),        cmocka_unit_test(test_startup_roundtrip),
        cmocka_unit_test(test_startup_malformed), cmocka_unit_test(test_frame_lengths),
        cmocka_unit_test(test_parser_any_split),  cmocka_unit_test(test_parser_rejects_oversized),
        cmocka_unit_test(test_backend_messages),  cmocka_unit_test(test_decode_malformed_backend),
        cmocka_unit_test(test_request_layouts),   cmocka_unit_test(test_response_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
