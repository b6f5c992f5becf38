/*
 * pgwire.c: Postgres protocol v3 framing, message builders and decoders, and the pagestream
 * v2/v3 encodings (pgwire.h). Every decoder checks lengths before it reads: the bytes come from
 * the network.
 */
#include <string.h>

#include "shared/pgwire.h"

/* ---- framing ---- */

size_t pgwire_frame_need(const uint8_t *data, size_t len, bool startup)
{
    if (startup)
        return len < 4 ? 0 : (size_t)be_get_u32(data);
    return len < PGWIRE_HEADER_SIZE ? 0 : 1 + (size_t)be_get_u32(data + 1);
}

PgwireFrameResult pgwire_frame(const uint8_t *data, size_t len, bool startup, uint32_t max_len,
                               PgwireMsg *out, size_t *consumed, Err *err)
{
    size_t hdr = startup ? 4 : PGWIRE_HEADER_SIZE;
    if (len < hdr)
        return PGWIRE_NEED_MORE;
    uint32_t mlen = be_get_u32(data + hdr - 4);
    uint32_t min = startup ? 8 : 4;
    if (mlen < min) {
        err_set(err, ERR_BAD_REQUEST, "invalid message length %u (minimum %u)", mlen, min);
        return PGWIRE_ERROR;
    }
    if (mlen > max_len) {
        err_set(err, ERR_PAYLOAD_TOO_LARGE, "message length %u exceeds the limit of %u bytes", mlen,
                max_len);
        return PGWIRE_ERROR;
    }
    size_t total = hdr - 4 + (size_t)mlen;
    if (len < total)
        return PGWIRE_NEED_MORE;
    out->type = startup ? 0 : data[0];
    out->payload = data + hdr;
    out->len = (size_t)mlen - 4;
    *consumed = total;
    return PGWIRE_MSG;
}

void pgwire_parser_init(PgwireParser *p, bool startup, uint32_t max_len)
{
    memset(p, 0, sizeof(*p));
    strbuf_init(&p->buf);
    p->startup = startup;
    p->max_len = max_len ? max_len : PGWIRE_DEFAULT_MAX_LEN;
}

void pgwire_parser_finish(PgwireParser *p)
{
    strbuf_finish(&p->buf);
}

void pgwire_parser_feed(PgwireParser *p, const void *data, size_t len)
{
    if (p->failed || len == 0)
        return;
    if (p->pos > 0) { /* drop what was returned already */
        memmove(p->buf.data, p->buf.data + p->pos, p->buf.len - p->pos);
        p->buf.len -= p->pos;
        p->buf.data[p->buf.len] = '\0';
        p->pos = 0;
    }
    strbuf_append(&p->buf, data, len);
}

PgwireFrameResult pgwire_parser_next(PgwireParser *p, PgwireMsg *out, Err *err)
{
    if (p->failed) {
        err_set(err, ERR_BAD_REQUEST, "the stream was rejected earlier");
        return PGWIRE_ERROR;
    }
    size_t consumed = 0;
    uint32_t max =
        p->startup && p->max_len > PGWIRE_STARTUP_MAX_LEN ? PGWIRE_STARTUP_MAX_LEN : p->max_len;
    PgwireFrameResult r = pgwire_frame((const uint8_t *)p->buf.data + p->pos, p->buf.len - p->pos,
                                       p->startup, max, out, &consumed, err);
    if (r == PGWIRE_ERROR) {
        p->failed = true;
        return r;
    }
    if (r == PGWIRE_MSG) {
        p->pos += consumed;
        if (p->startup && out->len >= 4 && be_get_u32(out->payload) == PGWIRE_PROTOCOL_V3)
            p->startup = false;
    }
    return r;
}

/* ---- decoders ---- */

/* next_cstring: the NUL-terminated string at *pos in payload, advancing past it; NULL when there
 * is no NUL before the end. */
static const char *next_cstring(const PgwireMsg *msg, size_t *pos)
{
    if (*pos >= msg->len)
        return NULL;
    const uint8_t *start = msg->payload + *pos;
    const uint8_t *nul = memchr(start, '\0', msg->len - *pos);
    if (!nul)
        return NULL;
    *pos += (size_t)(nul - start) + 1;
    return (const char *)start;
}

bool pgwire_decode_startup(const PgwireMsg *msg, PgwireStartup *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (msg->type != 0 || msg->len < 4) {
        err_set(err, ERR_BAD_REQUEST, "not a startup packet");
        return false;
    }
    out->code = be_get_u32(msg->payload);
    switch (out->code) {
    case PGWIRE_SSL_REQUEST:
    case PGWIRE_GSSENC_REQUEST:
        if (msg->len != 4) {
            err_set(err, ERR_BAD_REQUEST, "malformed SSL/GSS encryption request");
            return false;
        }
        return true;
    case PGWIRE_CANCEL_REQUEST:
        if (msg->len != 12) {
            err_set(err, ERR_BAD_REQUEST, "malformed cancel request");
            return false;
        }
        out->cancel_pid = be_get_u32(msg->payload + 4);
        out->cancel_key = be_get_u32(msg->payload + 8);
        return true;
    case PGWIRE_PROTOCOL_V3:
        break;
    default:
        err_set(err, ERR_BAD_REQUEST, "unsupported frontend protocol %u.%u: only 3.0 is served",
                out->code >> 16, out->code & 0xFFFF);
        return false;
    }
    size_t pos = 4;
    for (;;) {
        const char *name = next_cstring(msg, &pos);
        if (!name) {
            err_set(err, ERR_BAD_REQUEST, "malformed startup packet: unterminated parameter");
            return false;
        }
        if (name[0] == '\0')
            break;
        const char *value = next_cstring(msg, &pos);
        if (!value) {
            err_set(err, ERR_BAD_REQUEST, "malformed startup packet: parameter without a value");
            return false;
        }
        if (out->n_params == PGWIRE_MAX_PARAMS) {
            err_set(err, ERR_BAD_REQUEST, "too many startup parameters (at most %d)",
                    PGWIRE_MAX_PARAMS);
            return false;
        }
        out->names[out->n_params] = name;
        out->values[out->n_params] = value;
        out->n_params++;
    }
    if (pos != msg->len) {
        err_set(err, ERR_BAD_REQUEST, "malformed startup packet: bytes after the terminator");
        return false;
    }
    return true;
}

const char *pgwire_startup_param(const PgwireStartup *s, const char *name)
{
    for (size_t i = 0; i < s->n_params; i++)
        if (strcmp(s->names[i], name) == 0)
            return s->values[i];
    return NULL;
}

bool pgwire_decode_cstring(const PgwireMsg *msg, const char **out, Err *err)
{
    size_t pos = 0;
    const char *s = next_cstring(msg, &pos);
    if (!s || pos != msg->len) {
        err_set(err, ERR_BAD_REQUEST, "malformed '%c' message: expected one NUL-terminated string",
                msg->type >= 0x20 && msg->type < 0x7F ? msg->type : '?');
        return false;
    }
    *out = s;
    return true;
}

bool pgwire_decode_error(const PgwireMsg *msg, PgwireError *out, Err *err)
{
    out->severity = out->code = out->message = "";
    size_t pos = 0;
    for (;;) {
        if (pos >= msg->len) {
            err_set(err, ERR_BAD_REQUEST, "malformed error response: no terminator");
            return false;
        }
        uint8_t field = msg->payload[pos++];
        if (field == 0)
            break;
        const char *v = next_cstring(msg, &pos);
        if (!v) {
            err_set(err, ERR_BAD_REQUEST, "malformed error response: unterminated field");
            return false;
        }
        if (field == 'S')
            out->severity = v;
        else if (field == 'C')
            out->code = v;
        else if (field == 'M')
            out->message = v;
    }
    if (pos != msg->len) {
        err_set(err, ERR_BAD_REQUEST, "malformed error response: bytes after the terminator");
        return false;
    }
    return true;
}

bool pgwire_decode_auth(const PgwireMsg *msg, uint32_t *code, Err *err)
{
    if (msg->type != 'R' || msg->len < 4) {
        err_set(err, ERR_BAD_REQUEST, "malformed authentication message");
        return false;
    }
    *code = be_get_u32(msg->payload);
    return true;
}

/* ---- builders ---- */

void pgwire_msg_header(uint8_t out[PGWIRE_HEADER_SIZE], uint8_t type, size_t payload_len)
{
    out[0] = type;
    be_put_u32(out + 1, (uint32_t)(payload_len + 4));
}

/* put_msg: type + length + the payload parts; a NULL part with a length is skipped. */
static void put_msg(StrBuf *b, uint8_t type, const void *payload, size_t len)
{
    uint8_t hdr[PGWIRE_HEADER_SIZE];
    pgwire_msg_header(hdr, type, len);
    strbuf_append(b, hdr, sizeof(hdr));
    if (len)
        strbuf_append(b, payload, len);
}

static void put_u32_msg(StrBuf *b, uint8_t type, uint32_t v)
{
    uint8_t p[4];
    be_put_u32(p, v);
    put_msg(b, type, p, sizeof(p));
}

static void append_cstring(StrBuf *b, const char *s)
{
    strbuf_append(b, s, strlen(s) + 1);
}

/* Messages whose length is known only after the payload: reserve the header, patch it. */
static size_t begin_msg(StrBuf *b, uint8_t type)
{
    size_t at = b->len;
    uint8_t hdr[PGWIRE_HEADER_SIZE] = {type, 0, 0, 0, 0};
    strbuf_append(b, hdr, type ? sizeof(hdr) : 4);
    return at;
}

static void end_msg(StrBuf *b, size_t at, bool typed)
{
    size_t len_at = typed ? at + 1 : at;
    be_put_u32((uint8_t *)b->data + len_at, (uint32_t)(b->len - len_at));
}

void pgwire_put_auth_ok(StrBuf *b)
{
    put_u32_msg(b, 'R', PGWIRE_AUTH_OK);
}

void pgwire_put_auth_cleartext(StrBuf *b)
{
    put_u32_msg(b, 'R', PGWIRE_AUTH_CLEARTEXT_PASSWORD);
}

void pgwire_put_parameter_status(StrBuf *b, const char *name, const char *value)
{
    size_t at = begin_msg(b, 'S');
    append_cstring(b, name);
    append_cstring(b, value);
    end_msg(b, at, true);
}

void pgwire_put_backend_key_data(StrBuf *b, uint32_t pid, uint32_t key)
{
    uint8_t p[8];
    be_put_u32(p, pid);
    be_put_u32(p + 4, key);
    put_msg(b, 'K', p, sizeof(p));
}

void pgwire_put_ready_for_query(StrBuf *b)
{
    put_msg(b, 'Z', "I", 1);
}

void pgwire_put_error(StrBuf *b, const char *severity, const char *sqlstate, const char *message)
{
    size_t at = begin_msg(b, 'E');
    strbuf_append(b, "S", 1);
    append_cstring(b, severity);
    strbuf_append(b, "V", 1); /* the non-localized severity (protocol 3.0, Postgres 9.6+) */
    append_cstring(b, severity);
    strbuf_append(b, "C", 1);
    append_cstring(b, sqlstate);
    strbuf_append(b, "M", 1);
    append_cstring(b, message);
    strbuf_append(b, "", 1);
    end_msg(b, at, true);
}

void pgwire_put_command_complete(StrBuf *b, const char *tag)
{
    put_msg(b, 'C', tag, strlen(tag) + 1);
}

void pgwire_put_row_description(StrBuf *b, size_t n, const char *const names[])
{
    size_t at = begin_msg(b, 'T');
    uint8_t cnt[2];
    be_put_u16(cnt, (uint16_t)n);
    strbuf_append(b, cnt, 2);
    for (size_t i = 0; i < n; i++) {
        append_cstring(b, names[i]);
        /* table oid u32, column u16, type oid u32 (25 text), size i16 (-1), modifier i32 (-1),
         * format u16 (0 text) */
        uint8_t f[18] = {0};
        be_put_u32(f + 6, 25);
        be_put_u16(f + 10, 0xFFFF);
        be_put_u32(f + 12, 0xFFFFFFFFu);
        strbuf_append(b, f, sizeof(f));
    }
    end_msg(b, at, true);
}

void pgwire_put_data_row(StrBuf *b, size_t n, const char *const values[])
{
    size_t at = begin_msg(b, 'D');
    uint8_t cnt[4];
    be_put_u16(cnt, (uint16_t)n);
    strbuf_append(b, cnt, 2);
    for (size_t i = 0; i < n; i++) {
        size_t len = values[i] ? strlen(values[i]) : 0;
        be_put_u32(cnt, values[i] ? (uint32_t)len : 0xFFFFFFFFu);
        strbuf_append(b, cnt, 4);
        if (len)
            strbuf_append(b, values[i], len);
    }
    end_msg(b, at, true);
}

static void put_copy_response(StrBuf *b, uint8_t type)
{
    uint8_t p[3] = {1, 0, 0}; /* binary, zero columns */
    put_msg(b, type, p, sizeof(p));
}

void pgwire_put_copy_both_response(StrBuf *b)
{
    put_copy_response(b, 'W');
}

void pgwire_put_copy_out_response(StrBuf *b)
{
    put_copy_response(b, 'H');
}

void pgwire_put_copy_data(StrBuf *b, const void *data, size_t len)
{
    put_msg(b, 'd', data, len);
}

void pgwire_put_copy_done(StrBuf *b)
{
    put_msg(b, 'c', NULL, 0);
}

void pgwire_put_empty_query_response(StrBuf *b)
{
    put_msg(b, 'I', NULL, 0);
}

void pgwire_put_ssl_request(StrBuf *b)
{
    uint8_t p[8];
    be_put_u32(p, 8);
    be_put_u32(p + 4, PGWIRE_SSL_REQUEST);
    strbuf_append(b, p, sizeof(p));
}

void pgwire_put_startup(StrBuf *b, size_t n, const char *const names[], const char *const values[])
{
    size_t at = begin_msg(b, 0);
    uint8_t code[4];
    be_put_u32(code, PGWIRE_PROTOCOL_V3);
    strbuf_append(b, code, 4);
    for (size_t i = 0; i < n; i++) {
        append_cstring(b, names[i]);
        append_cstring(b, values[i]);
    }
    strbuf_append(b, "", 1);
    end_msg(b, at, false);
}

void pgwire_put_password(StrBuf *b, const char *password)
{
    put_msg(b, 'p', password, strlen(password) + 1);
}

void pgwire_put_query(StrBuf *b, const char *sql)
{
    put_msg(b, 'Q', sql, strlen(sql) + 1);
}

void pgwire_put_terminate(StrBuf *b)
{
    put_msg(b, 'X', NULL, 0);
}

/* ---- pagestream ---- */

static const char *const TAG_NAMES[PAGESTREAM_TAG_COUNT] = {
    [PAGESTREAM_EXISTS] = "exists",
    [PAGESTREAM_NBLOCKS] = "nblocks",
    [PAGESTREAM_GET_PAGE] = "get_page",
    [PAGESTREAM_DB_SIZE] = "db_size",
    [PAGESTREAM_GET_SLRU_SEGMENT] = "get_slru_segment",
};

const char *pagestream_tag_name(PagestreamTag tag)
{
    return (unsigned)tag < PAGESTREAM_TAG_COUNT ? TAG_NAMES[tag] : "unknown";
}

static const uint8_t RESPONSE_TAG[PAGESTREAM_TAG_COUNT] = {
    [PAGESTREAM_EXISTS] = PAGESTREAM_RESP_EXISTS,
    [PAGESTREAM_NBLOCKS] = PAGESTREAM_RESP_NBLOCKS,
    [PAGESTREAM_GET_PAGE] = PAGESTREAM_RESP_GET_PAGE,
    [PAGESTREAM_DB_SIZE] = PAGESTREAM_RESP_DB_SIZE,
    [PAGESTREAM_GET_SLRU_SEGMENT] = PAGESTREAM_RESP_GET_SLRU_SEGMENT,
};

uint8_t pagestream_response_tag(PagestreamTag tag)
{
    return (unsigned)tag < PAGESTREAM_TAG_COUNT ? RESPONSE_TAG[tag] : PAGESTREAM_RESP_ERROR;
}

/* request_tag_of: the request tag of a (non-error, valid) response tag. */
static PagestreamTag request_tag_of(uint8_t resp_tag)
{
    for (int t = 0; t < PAGESTREAM_TAG_COUNT; t++)
        if (RESPONSE_TAG[t] == resp_tag)
            return (PagestreamTag)t;
    return PAGESTREAM_TAG_COUNT;
}

/* The size of the fields after the common header, by request tag. */
static const size_t BODY_SIZE[PAGESTREAM_TAG_COUNT] = {
    [PAGESTREAM_EXISTS] = 13, [PAGESTREAM_NBLOCKS] = 13,         [PAGESTREAM_GET_PAGE] = 17,
    [PAGESTREAM_DB_SIZE] = 4, [PAGESTREAM_GET_SLRU_SEGMENT] = 5,
};

static size_t header_size(PagestreamVersion v)
{
    return v == PAGESTREAM_V3 ? 24 : 16;
}

/* put_req_header / put_req_body: the request's common header (after the tag) and its fields. */
static size_t put_req_header(PagestreamVersion v, const PagestreamRequest *r, uint8_t *p)
{
    size_t n = 0;
    if (v == PAGESTREAM_V3) {
        be_put_u64(p, r->reqid);
        n = 8;
    }
    be_put_u64(p + n, r->request_lsn);
    be_put_u64(p + n + 8, r->not_modified_since);
    return n + 16;
}

static size_t put_rel(const RelTag *rel, uint8_t *p)
{
    be_put_u32(p, rel->spc);
    be_put_u32(p + 4, rel->db);
    be_put_u32(p + 8, rel->rel);
    p[12] = rel->fork;
    return 13;
}

static size_t put_req_body(const PagestreamRequest *r, uint8_t *p)
{
    switch (r->tag) {
    case PAGESTREAM_EXISTS:
    case PAGESTREAM_NBLOCKS:
        return put_rel(&r->rel, p);
    case PAGESTREAM_GET_PAGE:
        put_rel(&r->rel, p);
        be_put_u32(p + 13, r->blkno);
        return 17;
    case PAGESTREAM_DB_SIZE:
        be_put_u32(p, r->dbnode);
        return 4;
    case PAGESTREAM_GET_SLRU_SEGMENT:
        p[0] = r->slru_kind;
        be_put_u32(p + 1, r->segno);
        return 5;
    case PAGESTREAM_TAG_COUNT:
        break;
    }
    return 0;
}

static void get_req_header(PagestreamVersion v, const uint8_t *p, PagestreamRequest *r)
{
    size_t n = 0;
    r->reqid = 0;
    if (v == PAGESTREAM_V3) {
        r->reqid = be_get_u64(p);
        n = 8;
    }
    r->request_lsn = be_get_u64(p + n);
    r->not_modified_since = be_get_u64(p + n + 8);
}

static void get_rel(const uint8_t *p, RelTag *rel)
{
    rel->spc = be_get_u32(p);
    rel->db = be_get_u32(p + 4);
    rel->rel = be_get_u32(p + 8);
    rel->fork = p[12];
}

/* get_req_body: the fields of tag r->tag (BODY_SIZE bytes, checked by the caller). */
static void get_req_body(const uint8_t *p, PagestreamRequest *r)
{
    switch (r->tag) {
    case PAGESTREAM_EXISTS:
    case PAGESTREAM_NBLOCKS:
        get_rel(p, &r->rel);
        break;
    case PAGESTREAM_GET_PAGE:
        get_rel(p, &r->rel);
        r->blkno = be_get_u32(p + 13);
        break;
    case PAGESTREAM_DB_SIZE:
        r->dbnode = be_get_u32(p);
        break;
    case PAGESTREAM_GET_SLRU_SEGMENT:
        r->slru_kind = p[0];
        r->segno = be_get_u32(p + 1);
        break;
    case PAGESTREAM_TAG_COUNT:
        break;
    }
}

static bool check_version(PagestreamVersion v, Err *err)
{
    if (v != PAGESTREAM_V2 && v != PAGESTREAM_V3) {
        err_set(err, ERR_BAD_REQUEST, "unsupported pagestream version %d", (int)v);
        return false;
    }
    return true;
}

bool pagestream_request_decode(PagestreamVersion v, const uint8_t *data, size_t len,
                               PagestreamRequest *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (!check_version(v, err))
        return false;
    if (len < 1) {
        err_set(err, ERR_BAD_REQUEST, "empty pagestream request");
        return false;
    }
    if (data[0] >= PAGESTREAM_TAG_COUNT) {
        err_set(err, ERR_BAD_REQUEST, "unknown pagestream request tag %u", data[0]);
        return false;
    }
    out->tag = (PagestreamTag)data[0];
    size_t hs = header_size(v), want = 1 + hs + BODY_SIZE[out->tag];
    if (len != want) {
        err_set(err, ERR_BAD_REQUEST, "pagestream %s request of %zu bytes, expected %zu",
                pagestream_tag_name(out->tag), len, want);
        return false;
    }
    get_req_header(v, data + 1, out);
    get_req_body(data + 1 + hs, out);
    return true;
}

size_t pagestream_request_encode(PagestreamVersion v, const PagestreamRequest *req,
                                 uint8_t out[PAGESTREAM_REQUEST_MAX])
{
    out[0] = (uint8_t)req->tag;
    size_t n = 1 + put_req_header(v, req, out + 1);
    return n + put_req_body(req, out + n);
}

void pagestream_put_request(StrBuf *b, PagestreamVersion v, const PagestreamRequest *req)
{
    uint8_t p[PAGESTREAM_REQUEST_MAX];
    size_t n = pagestream_request_encode(v, req, p);
    pgwire_put_copy_data(b, p, n);
}

size_t pagestream_response_header_encode(PagestreamVersion v, const PagestreamResponse *resp,
                                         uint8_t out[PAGESTREAM_RESPONSE_HEADER_MAX])
{
    size_t n = 0;
    out[n++] = resp->tag;
    if (v == PAGESTREAM_V3) {
        n += put_req_header(v, &resp->req, out + n);
        if (resp->tag != PAGESTREAM_RESP_ERROR)
            n += put_req_body(&resp->req, out + n);
    }
    switch (resp->tag) {
    case PAGESTREAM_RESP_EXISTS:
        out[n++] = resp->exists ? 1 : 0;
        break;
    case PAGESTREAM_RESP_NBLOCKS:
    case PAGESTREAM_RESP_GET_SLRU_SEGMENT:
        be_put_u32(out + n, resp->nblocks);
        n += 4;
        break;
    case PAGESTREAM_RESP_DB_SIZE:
        be_put_u64(out + n, (uint64_t)resp->db_size);
        n += 8;
        break;
    default: /* GetPage and error: only bulk bytes follow */
        break;
    }
    return n;
}

void pagestream_put_response(StrBuf *b, PagestreamVersion v, const PagestreamResponse *resp)
{
    uint8_t hdr[PAGESTREAM_RESPONSE_HEADER_MAX];
    size_t n = pagestream_response_header_encode(v, resp, hdr);
    const void *bulk = resp->data;
    size_t bulk_len = resp->data_len;
    if (resp->tag == PAGESTREAM_RESP_ERROR) {
        bulk = resp->message ? resp->message : "";
        bulk_len = strlen(bulk) + 1;
    }
    uint8_t mh[PGWIRE_HEADER_SIZE];
    pgwire_msg_header(mh, 'd', n + bulk_len);
    strbuf_append(b, mh, sizeof(mh));
    strbuf_append(b, hdr, n);
    if (bulk_len)
        strbuf_append(b, bulk, bulk_len);
}

bool pagestream_response_decode(PagestreamVersion v, const uint8_t *data, size_t len,
                                PagestreamResponse *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (!check_version(v, err))
        return false;
    if (len < 1) {
        err_set(err, ERR_BAD_REQUEST, "empty pagestream response");
        return false;
    }
    out->tag = data[0];
    bool is_error = out->tag == PAGESTREAM_RESP_ERROR;
    if (!is_error &&
        (out->tag < PAGESTREAM_RESP_EXISTS || out->tag > PAGESTREAM_RESP_GET_SLRU_SEGMENT)) {
        err_set(err, ERR_BAD_REQUEST, "unknown pagestream response tag %u", out->tag);
        return false;
    }
    size_t pos = 1;
    if (v == PAGESTREAM_V3) {
        size_t hs = header_size(v);
        if (len < pos + hs)
            goto short_msg;
        get_req_header(v, data + pos, &out->req);
        pos += hs;
        if (!is_error) {
            out->req.tag = request_tag_of(out->tag);
            size_t bs = BODY_SIZE[out->req.tag];
            if (len < pos + bs)
                goto short_msg;
            get_req_body(data + pos, &out->req);
            pos += bs;
        }
    }
    size_t rest = len - pos;
    const uint8_t *p = data + pos;
    switch (out->tag) {
    case PAGESTREAM_RESP_ERROR: {
        const uint8_t *nul = memchr(p, '\0', rest);
        if (!nul || nul != p + rest - 1) {
            err_set(err, ERR_BAD_REQUEST, "pagestream error response without its terminating NUL");
            return false;
        }
        out->message = (const char *)p;
        return true;
    }
    case PAGESTREAM_RESP_EXISTS:
        if (rest != 1)
            goto bad_len;
        out->exists = p[0] != 0;
        return true;
    case PAGESTREAM_RESP_NBLOCKS:
        if (rest != 4)
            goto bad_len;
        out->nblocks = be_get_u32(p);
        return true;
    case PAGESTREAM_RESP_GET_PAGE:
        if (rest != BLCKSZ)
            goto bad_len;
        out->data = p;
        out->data_len = BLCKSZ;
        return true;
    case PAGESTREAM_RESP_DB_SIZE:
        if (rest != 8)
            goto bad_len;
        out->db_size = (int64_t)be_get_u64(p);
        return true;
    default: /* GetSlruSegment */
        if (rest < 4)
            goto bad_len;
        out->nblocks = be_get_u32(p);
        if ((uint64_t)out->nblocks * BLCKSZ != rest - 4)
            goto bad_len;
        out->data = p + 4;
        out->data_len = rest - 4;
        return true;
    }
short_msg:
    err_set(err, ERR_BAD_REQUEST, "pagestream response of %zu bytes is too short", len);
    return false;
bad_len:
    err_set(err, ERR_BAD_REQUEST, "pagestream response tag %u with a payload of %zu bytes",
            out->tag, rest);
    return false;
}
