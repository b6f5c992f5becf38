/*
 * http_framing.c: the request-stream scanner (contract in http_framing.h).
 *
 * Lines end with "\n" or "\r\n" (evhttp accepts both). Line-based states (head, chunk size, chunk
 * end, trailer) collect one line at a time; body and chunk data are skipped in bulk. The rules are
 * deliberately stricter than evhttp's: a request passing here never reaches one of evhttp's own
 * error pages.
 */
#include "shared/http_framing.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "shared/str.h"

#define HTTP_CHUNK_LINE_MAX 64

void http_framing_init(HttpFraming *f, uint64_t max_body, size_t max_head)
{
    memset(f, 0, sizeof(*f));
    f->max_body = max_body;
    f->max_head = max_head ? max_head : HTTP_MAX_HEAD_BYTES;
    f->state = HTTP_FRAME_HEAD;
    strbuf_init(&f->line);
}

void http_framing_finish(HttpFraming *f)
{
    strbuf_finish(&f->line);
}

bool http_framing_in_head(const HttpFraming *f)
{
    return f->state == HTTP_FRAME_HEAD && f->head_bytes > 0;
}

const char *http_framing_reason(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

static bool reject(HttpFraming *f, int status, const char *fmt, ...) PRINTF_LIKE(3, 4);
static bool reject(HttpFraming *f, int status, const char *fmt, ...)
{
    f->state = HTTP_FRAME_ERROR;
    f->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
    va_end(ap);
    strbuf_reset(&f->line);
    return false;
}

/* request_done: one request completely framed; the next byte starts a new one. */
static void request_done(HttpFraming *f)
{
    f->requests++;
    f->state = HTTP_FRAME_HEAD;
    f->head_bytes = 0;
    f->lines = 0;
    f->body_method = f->has_length = f->chunked = f->expect_bad = false;
    f->last_framing_header = false;
    f->remaining = f->body_total = 0;
    f->request_start = f->offset;
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* trim: the value of a header without surrounding spaces and tabs. */
static void trim(const char **s, size_t *len)
{
    while (*len > 0 && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

static bool request_line(HttpFraming *f, const char *s, size_t len)
{
    static const char *const METHODS[] = {"GET",     "POST",  "HEAD",    "PUT",  "DELETE",
                                          "OPTIONS", "TRACE", "CONNECT", "PATCH"};
    const char *sp1 = memchr(s, ' ', len);
    if (len == 0 || sp1 == NULL)
        return reject(f, 400, "malformed request line");
    size_t mlen = (size_t)(sp1 - s);
    bool known = false;
    for (size_t i = 0; i < sizeof(METHODS) / sizeof(METHODS[0]); i++) {
        if (strlen(METHODS[i]) == mlen && memcmp(METHODS[i], s, mlen) == 0)
            known = true;
    }
    if (!known)
        return reject(f, 501, "method '%.*s' is not implemented", (int)(mlen > 20 ? 20 : mlen), s);
    /* libevent 2.1 (evhttp_method_may_have_body) reads a body for every method but HEAD and
     * TRACE: a GET with a JSON body (Neon's timeline_import_status upcall) carries one */
    f->body_method =
        !(mlen == 4 && memcmp(s, "HEAD", 4) == 0) && !(mlen == 5 && memcmp(s, "TRACE", 5) == 0);
    const char *target = sp1 + 1;
    const char *end = s + len;
    const char *sp2 = memchr(target, ' ', (size_t)(end - target));
    if (sp2 == NULL || sp2 == target)
        return reject(f, 400, "malformed request line");
    if (target[0] != '/' || (sp2 - target > 1 && target[1] == '/'))
        return reject(f, 400, "request target must be an absolute path");
    for (const char *p = target; p < sp2; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return reject(f, 400, "invalid character in the request target");
    }
    const char *version = sp2 + 1;
    size_t vlen = (size_t)(end - version);
    if (vlen == 8 && (memcmp(version, "HTTP/1.1", 8) == 0 || memcmp(version, "HTTP/1.0", 8) == 0))
        return true;
    if (vlen > 5 && memcmp(version, "HTTP/", 5) == 0)
        return reject(f, 505, "HTTP version '%.*s' is not supported", (int)(vlen > 20 ? 20 : vlen),
                      version);
    return reject(f, 400, "malformed request line");
}

/* content_length: exactly 1*DIGIT; over the limit (or over 19 digits) is a 413. */
static bool content_length(HttpFraming *f, const char *v, size_t len)
{
    if (f->has_length)
        return reject(f, 400, "more than one Content-Length header");
    f->has_length = true;
    if (len == 0)
        return reject(f, 400, "invalid Content-Length ''");
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return reject(f, 400, "invalid Content-Length '%.*s'", (int)(len > 40 ? 40 : len), v);
    }
    uint64_t n = 0;
    bool over = len > 19;
    for (size_t i = 0; i < len && !over; i++)
        n = n * 10 + (uint64_t)(v[i] - '0');
    if (over || n > f->max_body)
        return reject(f, 413, "declared body of %.*s bytes is over the limit of %llu bytes",
                      (int)(len > 40 ? 40 : len), v, (unsigned long long)f->max_body);
    f->remaining = n;
    return true;
}

static bool header_line(HttpFraming *f, const char *s, size_t len, bool trailer)
{
    if (s[0] == ' ' || s[0] == '\t') {
        if (f->lines <= 2 || trailer || f->last_framing_header)
            return reject(f, 400, "unexpected header continuation line");
        return true;
    }
    const char *colon = memchr(s, ':', len);
    if (colon == NULL || colon == s)
        return reject(f, 400, "malformed header line");
    for (const char *p = s; p < colon; p++) {
        if (!is_tchar(*p))
            return reject(f, 400, "invalid character in a header name");
    }
    size_t nlen = (size_t)(colon - s);
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    trim(&v, &vlen);
    f->last_framing_header = false;
    if (trailer)
        return true;
    if (nlen == 14 && strncasecmp(s, "Content-Length", 14) == 0) {
        f->last_framing_header = true;
        return content_length(f, v, vlen);
    }
    if (nlen == 17 && strncasecmp(s, "Transfer-Encoding", 17) == 0) {
        f->last_framing_header = true;
        if (f->chunked)
            return reject(f, 400, "more than one Transfer-Encoding header");
        if (vlen != 7 || strncasecmp(v, "chunked", 7) != 0)
            return reject(f, 400, "unsupported Transfer-Encoding '%.*s' (only chunked)",
                          (int)(vlen > 40 ? 40 : vlen), v);
        f->chunked = true;
        return true;
    }
    if (nlen == 6 && strncasecmp(s, "Expect", 6) == 0 &&
        !(vlen == 12 && strncasecmp(v, "100-continue", 12) == 0))
        f->expect_bad = true;
    return true;
}

/* head_end: the empty line after the headers; decide how the body is framed. */
static bool head_end(HttpFraming *f)
{
    if (f->has_length && f->chunked)
        return reject(f, 400, "both Content-Length and Transfer-Encoding");
    if (!f->body_method) {
        request_done(f); /* evhttp reads no body for HEAD and TRACE */
        return true;
    }
    if (f->expect_bad)
        return reject(f, 417, "only 'Expect: 100-continue' is supported");
    if (f->chunked) {
        f->state = HTTP_FRAME_CHUNK_SIZE;
    } else if (f->remaining > 0) {
        f->state = HTTP_FRAME_BODY;
    } else {
        request_done(f);
    }
    return true;
}

static bool chunk_size(HttpFraming *f, const char *s, size_t len)
{
    if (len == 0 || len > 15)
        return reject(f, 400, "invalid chunk size line");
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int d = str_hex_digit((unsigned char)s[i]);
        if (d < 0)
            return reject(f, 400, "invalid chunk size line");
        n = n * 16 + (uint64_t)d;
    }
    if (n == 0) {
        f->state = HTTP_FRAME_TRAILER;
        f->head_bytes = 0;
        f->lines = 0;
        return true;
    }
    if (n > f->max_body - f->body_total)
        return reject(f, 413, "chunked body is over the limit of %llu bytes",
                      (unsigned long long)f->max_body);
    f->body_total += n;
    f->remaining = n;
    f->state = HTTP_FRAME_CHUNK_DATA;
    return true;
}

/* line_end: a complete line (without its end) in a line-based state. */
static bool line_end(HttpFraming *f)
{
    const char *s = f->line.data ? f->line.data : "";
    size_t len = f->line.len;
    if (len > 0 && s[len - 1] == '\r')
        len--;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return reject(f, 400, "control character in the request head");
    }
    bool ok = true;
    switch (f->state) {
    case HTTP_FRAME_HEAD:
        f->lines++;
        if (f->lines == 1)
            ok = request_line(f, s, len);
        else if (len == 0)
            ok = head_end(f);
        else
            ok = header_line(f, s, len, false);
        break;
    case HTTP_FRAME_CHUNK_SIZE:
        ok = chunk_size(f, s, len);
        break;
    case HTTP_FRAME_CHUNK_END:
        if (len != 0)
            return reject(f, 400, "chunk data longer than its declared size");
        f->state = HTTP_FRAME_CHUNK_SIZE;
        break;
    case HTTP_FRAME_TRAILER:
        f->lines++;
        if (len == 0)
            request_done(f);
        else
            ok = header_line(f, s, len, true);
        break;
    default:
        break;
    }
    strbuf_reset(&f->line);
    return ok;
}

bool http_framing_feed(HttpFraming *f, const char *data, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (f->state == HTTP_FRAME_ERROR)
            return false;
        if (f->state == HTTP_FRAME_BODY || f->state == HTTP_FRAME_CHUNK_DATA) {
            size_t n = len - i;
            if ((uint64_t)n > f->remaining)
                n = (size_t)f->remaining;
            f->remaining -= n;
            f->offset += n;
            i += n;
            if (f->remaining == 0) {
                if (f->state == HTTP_FRAME_BODY)
                    request_done(f);
                else
                    f->state = HTTP_FRAME_CHUNK_END;
            }
            continue;
        }
        /* a line-based state: take bytes up to and including the next '\n' */
        const char *nl = memchr(data + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (data + i)) : len - i;
        bool head = f->state == HTTP_FRAME_HEAD || f->state == HTTP_FRAME_TRAILER;
        size_t cap = head ? f->max_head : HTTP_CHUNK_LINE_MAX;
        if (head && f->head_bytes + n + (nl ? 1 : 0) > f->max_head) {
            f->offset += n;
            return reject(f, 431, "request head is over the limit of %zu bytes", f->max_head);
        }
        if (!head && f->line.len + n > cap) {
            f->offset += n;
            return reject(f, 400, "chunk size line too long");
        }
        strbuf_append(&f->line, data + i, n);
        f->offset += n;
        i += n;
        if (head)
            f->head_bytes += n;
        if (nl == NULL)
            break;
        f->offset++;
        i++;
        if (head)
            f->head_bytes++;
        if (!line_end(f))
            return false;
    }
    return f->state != HTTP_FRAME_ERROR;
}
