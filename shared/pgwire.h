/*
 * pgwire.h: the Postgres frontend/backend protocol v3 framing (both directions) and the
 * pagestream v2/v3 request and response encodings carried inside it (docs/page-service.md).
 *
 * Pure byte functions: nothing here does I/O, allocates beyond a StrBuf the caller passes, or
 * depends on libevent. The pageserver's page service, the export client (storconctl) and the
 * benchmark all use them.
 *
 * Framing (pgwire_frame, or the buffering PgwireParser around it):
 *   - the first message from a client is untyped: length u32 (counting itself) + payload, where
 *     the payload starts with a u32 code: 196608 (3.0 startup), 80877103 (SSLRequest),
 *     80877104 (GSSENCRequest) or 80877102 (CancelRequest). PgwireMsg.type is 0 for it.
 *   - every other message: type u8 + length u32 (counting itself, not the type) + payload.
 *   - a length below the minimum (4 typed, 8 untyped) or above max_len is PGWIRE_ERROR with
 *     err 400 (PAYLOAD_TOO_LARGE for "too long"): the stream cannot be resynchronised, so the
 *     caller answers an ErrorResponse with SQLSTATE 08P01 (protocol violation) and closes.
 *
 * Builders append one complete message (type, length, payload) to a StrBuf. For bulk payloads
 * (a page) pgwire_msg_header writes the 5-byte header alone so the caller can send the body from
 * its own buffer without a copy.
 *
 * Decoders take the payload of a framed message (PgwireMsg) and return pointers into it: the
 * results are valid as long as the message bytes are.
 *
 * Pagestream (inside CopyData; all integers big-endian):
 *   request:  tag u8, [v3: reqid u64], request_lsn u64, not_modified_since u64, then by tag
 *             0 Exists / 1 Nblocks: spcnode u32, dbnode u32, relnode u32, forknum u8
 *             2 GetPage: the same + blkno u32;  3 DbSize: dbnode u32;
 *             4 GetSlruSegment: kind u8, segno u32
 *   response: tag u8 (100 Exists, 101 Nblocks, 102 GetPage, 103 error, 104 DbSize,
 *             105 GetSlruSegment), [v3: reqid, request_lsn,
 *             not_modified_since and the request's fields echoed], then
 *             100 exists u8 | 101 n_blocks u32 | 102 page (8192 bytes) | 104 size i64 |
 *             105 n_blocks u32 + n_blocks * 8192 segment bytes | 103 message + NUL
 *             (a v3 error echoes the header only, not the request fields).
 */
#ifndef SHARED_PGWIRE_H
#define SHARED_PGWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/bytes.h"
#include "shared/err.h"
#include "shared/id.h"
#include "shared/key.h"
#include "shared/str.h"

/* ---- framing ---- */

#define PGWIRE_PROTOCOL_V3                   196608u   /* 3 << 16 */
#define PGWIRE_SSL_REQUEST                   80877103u /* 1234 << 16 | 5679 */
#define PGWIRE_GSSENC_REQUEST                80877104u
#define PGWIRE_CANCEL_REQUEST                80877102u
#define PGWIRE_DEFAULT_MAX_LEN               (1u << 20) /* largest message accepted by default: 1 MiB */
#define PGWIRE_STARTUP_MAX_LEN               10000u /* Postgres' own bound for the startup packet */
#define PGWIRE_HEADER_SIZE                   5u     /* type + length */
#define PGWIRE_SQLSTATE_PROTOCOL_VIOLATION   "08P01"
#define PGWIRE_SQLSTATE_INVALID_PASSWORD     "28P01"
#define PGWIRE_SQLSTATE_FEATURE_UNSUPPORTED  "0A000"
#define PGWIRE_SQLSTATE_INTERNAL             "XX000"
#define PGWIRE_SQLSTATE_TOO_MANY_CONNECTIONS "53300"
#define PGWIRE_SQLSTATE_SYNTAX_ERROR         "42601"
#define PGWIRE_SQLSTATE_UNDEFINED_OBJECT     "42704"
#define PGWIRE_SQLSTATE_ADMIN_SHUTDOWN       "57P01"

/* PgwireMsg: one framed message; payload points into the bytes it was framed from. */
typedef struct PgwireMsg {
    uint8_t type; /* 0: the untyped startup-phase packet */
    const uint8_t *payload;
    size_t len; /* payload bytes (the length field minus 4) */
} PgwireMsg;

typedef enum PgwireFrameResult {
    PGWIRE_NEED_MORE, /* not a whole message yet */
    PGWIRE_MSG,       /* *out holds one message of *consumed bytes */
    PGWIRE_ERROR      /* malformed or oversized length: err is set; close the connection */
} PgwireFrameResult;

/* pgwire_frame: frame the message at the start of data[0..len): untyped when startup is true.
 * max_len bounds the length field (which counts itself). On PGWIRE_MSG *consumed is the whole
 * message's size. Never reads past len. */
PgwireFrameResult pgwire_frame(const uint8_t *data, size_t len, bool startup, uint32_t max_len,
                               PgwireMsg *out, size_t *consumed, Err *err);

/* pgwire_frame_need: once the header is there (5 bytes typed, 4 untyped), the total size of the
 * message at data; 0 when the header is not complete yet. Does not validate the length. */
size_t pgwire_frame_need(const uint8_t *data, size_t len, bool startup);

/* PgwireParser: an incremental parser over a byte stream. Feed bytes as they arrive, then call
 * pgwire_parser_next until it returns PGWIRE_NEED_MORE. A message returned stays valid until the
 * next feed or next call. The parser starts in startup mode when startup is true (a server) and
 * leaves it itself after a startup packet with PGWIRE_PROTOCOL_V3 (an SSLRequest or
 * GSSENCRequest keeps it there: another startup packet follows). */
typedef struct PgwireParser {
    StrBuf buf;
    size_t pos; /* bytes of buf already returned */
    uint32_t max_len;
    bool startup;
    bool failed;
} PgwireParser;

void pgwire_parser_init(PgwireParser *p, bool startup, uint32_t max_len);
void pgwire_parser_finish(PgwireParser *p);
void pgwire_parser_feed(PgwireParser *p, const void *data, size_t len);
PgwireFrameResult pgwire_parser_next(PgwireParser *p, PgwireMsg *out, Err *err);

/* ---- decoders (frontend and backend messages) ---- */

#define PGWIRE_MAX_PARAMS 32

/* PgwireStartup: a decoded untyped packet. */
typedef struct PgwireStartup {
    uint32_t code; /* PGWIRE_PROTOCOL_V3, PGWIRE_SSL_REQUEST, ... */
    /* PGWIRE_PROTOCOL_V3 only: name/value pairs (pointers into the payload). */
    size_t n_params;
    const char *names[PGWIRE_MAX_PARAMS];
    const char *values[PGWIRE_MAX_PARAMS];
    /* PGWIRE_CANCEL_REQUEST only */
    uint32_t cancel_pid, cancel_key;
} PgwireStartup;

/* pgwire_decode_startup: a startup-phase packet (msg.type 0): a v3 startup message must be NUL
 * terminated name/value strings ending with an empty name; an unknown code or another protocol
 * version is err 400. */
bool pgwire_decode_startup(const PgwireMsg *msg, PgwireStartup *out, Err *err) MUST_CHECK;

/* pgwire_startup_param: the value of a startup parameter, NULL when absent. */
const char *pgwire_startup_param(const PgwireStartup *s, const char *name);

/* pgwire_decode_cstring: a payload that is exactly one NUL-terminated string (Query 'Q',
 * PasswordMessage 'p'); *out points into the payload. err 400 otherwise. */
bool pgwire_decode_cstring(const PgwireMsg *msg, const char **out, Err *err) MUST_CHECK;

/* PgwireError: a decoded ErrorResponse 'E' or NoticeResponse 'N' (fields absent: ""). */
typedef struct PgwireError {
    const char *severity, *code, *message;
} PgwireError;
bool pgwire_decode_error(const PgwireMsg *msg, PgwireError *out, Err *err) MUST_CHECK;

/* pgwire_decode_auth: an Authentication 'R' message's request code (0 ok, 3 cleartext, ...). */
#define PGWIRE_AUTH_OK                 0u
#define PGWIRE_AUTH_CLEARTEXT_PASSWORD 3u
bool pgwire_decode_auth(const PgwireMsg *msg, uint32_t *code, Err *err) MUST_CHECK;

/* ---- builders: each appends one whole message to b ---- */

/* pgwire_msg_header: the type byte and length (4 + payload_len) into out[5]. */
void pgwire_msg_header(uint8_t out[PGWIRE_HEADER_SIZE], uint8_t type, size_t payload_len);

/* backend */
void pgwire_put_auth_ok(StrBuf *b);
void pgwire_put_auth_cleartext(StrBuf *b);
void pgwire_put_parameter_status(StrBuf *b, const char *name, const char *value);
void pgwire_put_backend_key_data(StrBuf *b, uint32_t pid, uint32_t key);
void pgwire_put_ready_for_query(StrBuf *b); /* status 'I' (idle) */
void pgwire_put_error(StrBuf *b, const char *severity, const char *sqlstate, const char *message);
void pgwire_put_command_complete(StrBuf *b, const char *tag);
/* pgwire_put_row_description: n text columns (type oid 25, format 0). */
void pgwire_put_row_description(StrBuf *b, size_t n, const char *const names[]);
/* pgwire_put_data_row: n text values (NULL is SQL NULL). */
void pgwire_put_data_row(StrBuf *b, size_t n, const char *const values[]);
/* pgwire_put_copy_both_response / pgwire_put_copy_out_response: overall format binary (1), no
 * columns. */
void pgwire_put_copy_both_response(StrBuf *b);
void pgwire_put_copy_out_response(StrBuf *b);
void pgwire_put_copy_data(StrBuf *b, const void *data, size_t len);
void pgwire_put_copy_done(StrBuf *b);
void pgwire_put_empty_query_response(StrBuf *b);

/* frontend */
void pgwire_put_ssl_request(StrBuf *b);
/* pgwire_put_startup: protocol 3.0 with n name/value pairs. */
void pgwire_put_startup(StrBuf *b, size_t n, const char *const names[], const char *const values[]);
void pgwire_put_password(StrBuf *b, const char *password);
void pgwire_put_query(StrBuf *b, const char *sql);
void pgwire_put_terminate(StrBuf *b);
/* (CopyData and CopyDone are the same in both directions.) */

/* ---- pagestream ---- */

typedef enum PagestreamVersion {
    PAGESTREAM_V2 = 2,
    PAGESTREAM_V3 = 3,
} PagestreamVersion;

typedef enum PagestreamTag {
    PAGESTREAM_EXISTS = 0,
    PAGESTREAM_NBLOCKS = 1,
    PAGESTREAM_GET_PAGE = 2,
    PAGESTREAM_DB_SIZE = 3,
    PAGESTREAM_GET_SLRU_SEGMENT = 4,
    PAGESTREAM_TAG_COUNT
} PagestreamTag;

/* Response tags: 100 + request tag for the first three; 103 is the error, so DbSize and
 * GetSlruSegment answer with 104 and 105. */
#define PAGESTREAM_RESP_EXISTS           100
#define PAGESTREAM_RESP_NBLOCKS          101
#define PAGESTREAM_RESP_GET_PAGE         102
#define PAGESTREAM_RESP_ERROR            103
#define PAGESTREAM_RESP_DB_SIZE          104
#define PAGESTREAM_RESP_GET_SLRU_SEGMENT 105

/* pagestream_response_tag: the response tag answering a request tag. */
uint8_t pagestream_response_tag(PagestreamTag tag);

/* The largest request (v3 GetPage): 1 + 24 + 13 + 4. */
#define PAGESTREAM_REQUEST_MAX 42u
/* The largest response header (everything but a page, segment or message): v3 GetPage echo. */
#define PAGESTREAM_RESPONSE_HEADER_MAX 48u

typedef struct PagestreamRequest {
    PagestreamTag tag;
    uint64_t reqid; /* v3 only (0 in v2) */
    Lsn request_lsn;
    Lsn not_modified_since;
    RelTag rel;        /* Exists, Nblocks, GetPage */
    uint32_t blkno;    /* GetPage */
    uint32_t dbnode;   /* DbSize */
    uint8_t slru_kind; /* GetSlruSegment */
    uint32_t segno;    /* GetSlruSegment */
} PagestreamRequest;

/* pagestream_request_decode: a CopyData payload; a wrong length or unknown tag is err 400. */
bool pagestream_request_decode(PagestreamVersion v, const uint8_t *data, size_t len,
                               PagestreamRequest *out, Err *err) MUST_CHECK;
/* pagestream_request_encode: into out[PAGESTREAM_REQUEST_MAX]; returns the length. */
size_t pagestream_request_encode(PagestreamVersion v, const PagestreamRequest *req,
                                 uint8_t out[PAGESTREAM_REQUEST_MAX]);
/* pagestream_put_request: the request as one CopyData message appended to b. */
void pagestream_put_request(StrBuf *b, PagestreamVersion v, const PagestreamRequest *req);

typedef struct PagestreamResponse {
    uint8_t tag;           /* 100..105 */
    PagestreamRequest req; /* v3: the echoed request (an error echoes only the header) */
    bool exists;
    uint32_t nblocks; /* Nblocks, GetSlruSegment */
    int64_t db_size;
    const uint8_t *data; /* GetPage: BLCKSZ bytes; GetSlruSegment: nblocks * BLCKSZ */
    size_t data_len;
    const char *message; /* error */
} PagestreamResponse;

/* pagestream_response_header_encode: everything of the response but its bulk part (the page,
 * the segment bytes, or an error's message + NUL) into out[]; returns its length. The bulk part
 * follows it directly. resp->req is the request being answered. */
size_t pagestream_response_header_encode(PagestreamVersion v, const PagestreamResponse *resp,
                                         uint8_t out[PAGESTREAM_RESPONSE_HEADER_MAX]);
/* pagestream_put_response: the whole response (header + data or message) as one CopyData. */
void pagestream_put_response(StrBuf *b, PagestreamVersion v, const PagestreamResponse *resp);
/* pagestream_response_decode: a CopyData payload from the server; data and message point into
 * it. A wrong length, an unknown tag, an error message without its NUL or a segment length that
 * disagrees with n_blocks is err 400. */
bool pagestream_response_decode(PagestreamVersion v, const uint8_t *data, size_t len,
                                PagestreamResponse *out, Err *err) MUST_CHECK;

/* pagestream_tag_name: "exists", "nblocks", "get_page", "db_size", "get_slru_segment" (static),
 * also the label of the page service's metrics. */
const char *pagestream_tag_name(PagestreamTag tag);

#endif
