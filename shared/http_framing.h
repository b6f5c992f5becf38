/*
 * http_framing.h: a strict scanner of the HTTP/1.x request stream of one connection, run on the
 * raw bytes before libevent's evhttp parses them (see http_server.c). It follows message
 * boundaries exactly as evhttp 2.1 does (a body for every method but HEAD and TRACE, GET
 * included; Content-Length or chunked) and rejects, with a status and a message, everything evhttp
 * would answer with its own HTML error page or could not bound:
 *
 *   400  malformed request line, header line, Content-Length ("+5", "-1", "abc", "1, 2", two of
 *        them), Transfer-Encoding other than chunked, both Content-Length and Transfer-Encoding,
 *        bad chunk framing, control characters in the head
 *   413  a declared Content-Length, or chunks adding up to, more than max_body bytes (at once,
 *        before any of the body is read)
 *   417  an Expect other than 100-continue
 *   431  a request head (request line and headers, or chunked trailers) over max_head bytes
 *   501  an unknown method
 *   505  an HTTP version other than 1.0 and 1.1
 *
 * Anything it accepts, evhttp accepts too. The scanner keeps only the current line (bounded by
 * max_head); body bytes are counted, not copied.
 */
#ifndef SHARED_HTTP_FRAMING_H
#define SHARED_HTTP_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/str.h"

#define HTTP_MAX_HEAD_BYTES (64u * 1024)

typedef enum HttpFrameState {
    HTTP_FRAME_HEAD,       /* request line and headers */
    HTTP_FRAME_BODY,       /* Content-Length body bytes */
    HTTP_FRAME_CHUNK_SIZE, /* a chunk-size line */
    HTTP_FRAME_CHUNK_DATA, /* chunk bytes */
    HTTP_FRAME_CHUNK_END,  /* the line end after a chunk */
    HTTP_FRAME_TRAILER,    /* trailer lines after the last chunk */
    HTTP_FRAME_ERROR       /* rejected: status and msg are set; nothing more is scanned */
} HttpFrameState;

typedef struct HttpFraming {
    uint64_t max_body;
    size_t max_head;
    HttpFrameState state;
    StrBuf line;       /* the current line, without its end */
    size_t head_bytes; /* bytes of the current head (or trailer) so far */
    unsigned lines;    /* lines of the current head so far */
    bool body_method;  /* not HEAD or TRACE: evhttp reads a body */
    bool has_length, chunked, expect_bad;
    bool last_framing_header; /* the previous header was Content-Length or Transfer-Encoding */
    uint64_t remaining;       /* bytes left in the body or chunk */
    uint64_t body_total;      /* chunked: bytes so far */
    uint64_t offset;          /* bytes scanned since the connection opened */
    uint64_t request_start;   /* offset of the current request's first byte */
    uint64_t requests;        /* requests completely framed so far */
    int status;               /* HTTP_FRAME_ERROR: the status to answer */
    char msg[200];            /* HTTP_FRAME_ERROR: why */
} HttpFraming;

void http_framing_init(HttpFraming *f, uint64_t max_body, size_t max_head);
void http_framing_finish(HttpFraming *f);
/* http_framing_feed: scan the next len bytes of the stream; false once the stream is rejected
 * (state HTTP_FRAME_ERROR, status and msg set). */
bool http_framing_feed(HttpFraming *f, const char *data, size_t len);
/* http_framing_in_head: true while a request head has started but not ended (the header-read
 * timeout runs then). */
bool http_framing_in_head(const HttpFraming *f);
/* http_framing_reason: the reason phrase for a status this module or the server answers. */
const char *http_framing_reason(int status);

#endif
