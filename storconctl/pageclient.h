/*
 * pageclient.h: a blocking client of the pageserver's page service (docs/page-service.md) for
 * storconctl's export: connect, start up (protocol 3.0; a cleartext password when the server
 * asks for one), send a simple query, then read the messages that follow. Framing and message
 * encodings are shared/pgwire.h's; this file only does the socket I/O. One connection per thread.
 */
#ifndef STORCONCTL_PAGECLIENT_H
#define STORCONCTL_PAGECLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/pgwire.h"

#define PAGECLIENT_MAX_MSG (32u << 20) /* largest message accepted (a basebackup CopyData) */

typedef struct PageConn {
    int fd;
    PgwireParser parser;
    char peer[300]; /* host:port, for messages */
} PageConn;

/* page_conn_open: connect to host:port and start up; password NULL: none (an auth request is
 * then an error naming the missing token). Errors: ERR_UNAVAILABLE (cannot connect, closed),
 * ERR_UNAUTHORIZED (refused), ERR_INTERNAL (the server's error message). */
bool page_conn_open(PageConn *c, const char *host, int port, const char *password,
                    Err *err) MUST_CHECK;

/* page_conn_query: send the simple query sql and wait for its first answer, which must be a
 * message of type want ('H' CopyOutResponse, 'W' CopyBothResponse); an ErrorResponse is err with
 * the server's message. */
bool page_conn_query(PageConn *c, const char *sql, uint8_t want, Err *err) MUST_CHECK;

/* page_conn_next: the next message (valid until the next call); NoticeResponse is skipped, an
 * ErrorResponse is err with its message. */
bool page_conn_next(PageConn *c, PgwireMsg *msg, Err *err) MUST_CHECK;

/* page_conn_send: all of data[len]. */
bool page_conn_send(PageConn *c, const void *data, size_t len, Err *err) MUST_CHECK;

/* page_conn_close: Terminate (best effort) and close; safe on a connection that failed to open. */
void page_conn_close(PageConn *c);

#endif
