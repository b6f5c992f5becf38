/* pageclient.c: blocking page service client over shared/pgwire (pageclient.h). */
#include "storconctl/pageclient.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "shared/fsutil.h"
#include "shared/str.h"

#define READ_CHUNK (256u * 1024)
/* A page service that neither answers nor closes (stalled, partitioned) fails the export after
 * this long instead of hanging it: connect, every read and every write. */
#define PAGECLIENT_IO_TIMEOUT_S 120

static bool connect_tcp(PageConn *c, const char *host, int port, Err *err)
{
    char port_s[16];
    (void)str_printf(port_s, sizeof(port_s), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0) {
        err_set(err, ERR_UNAVAILABLE, "page service %s: %s", c->peer, gai_strerror(rc));
        return false;
    }
    int saved = 0;
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        struct timeval tv = {PAGECLIENT_IO_TIMEOUT_S, 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            int one = 1;
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            c->fd = fd;
            freeaddrinfo(res);
            return true;
        }
        saved = errno;
        close(fd);
    }
    freeaddrinfo(res);
    err_set(err, ERR_UNAVAILABLE, "page service %s: cannot connect: %s", c->peer, strerror(saved));
    return false;
}

bool page_conn_send(PageConn *c, const void *data, size_t len, Err *err)
{
    if (!fs_write_all(c->fd, data, len)) {
        err_set(err, ERR_UNAVAILABLE, "page service %s: send: %s", c->peer, strerror(errno));
        return false;
    }
    return true;
}

/* next_raw: the next framed message, reading more as needed. */
static bool next_raw(PageConn *c, PgwireMsg *msg, Err *err)
{
    static _Thread_local uint8_t buf[READ_CHUNK];
    for (;;) {
        PgwireFrameResult r = pgwire_parser_next(&c->parser, msg, err);
        if (r == PGWIRE_MSG)
            return true;
        if (r == PGWIRE_ERROR) {
            err_prefix(err, "page service %s: ", c->peer);
            return false;
        }
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            err_set(err, ERR_TIMEOUT, "page service %s: no answer for %d s", c->peer,
                    PAGECLIENT_IO_TIMEOUT_S);
            return false;
        }
        if (n <= 0) {
            err_set(err, ERR_UNAVAILABLE, "page service %s: connection closed%s%s", c->peer,
                    n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
            return false;
        }
        pgwire_parser_feed(&c->parser, buf, (size_t)n);
    }
}

bool page_conn_next(PageConn *c, PgwireMsg *msg, Err *err)
{
    for (;;) {
        if (!next_raw(c, msg, err))
            return false;
        if (msg->type == 'N')
            continue;
        if (msg->type != 'E')
            return true;
        PgwireError e;
        if (!pgwire_decode_error(msg, &e, err)) {
            err_prefix(err, "page service %s: malformed error: ", c->peer);
            return false;
        }
        bool auth = strcmp(e.code, PGWIRE_SQLSTATE_INVALID_PASSWORD) == 0;
        err_set(err, auth ? ERR_UNAUTHORIZED : ERR_INTERNAL, "page service %s: %s", c->peer,
                e.message);
        return false;
    }
}

static bool send_buf(PageConn *c, StrBuf *b, Err *err)
{
    bool ok = page_conn_send(c, b->data, b->len, err);
    strbuf_finish(b);
    return ok;
}

bool page_conn_open(PageConn *c, const char *host, int port, const char *password, Err *err)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    pgwire_parser_init(&c->parser, false, PAGECLIENT_MAX_MSG);
    (void)str_printf(c->peer, sizeof(c->peer), "%s:%d", host, port);
    if (!connect_tcp(c, host, port, err))
        return false;
    static const char *const names[] = {"user", "database", "application_name"};
    static const char *const values[] = {"storconctl", "postgres", "storconctl export"};
    StrBuf b = STRBUF_INIT;
    pgwire_put_startup(&b, 3, names, values);
    if (!send_buf(c, &b, err))
        return false;
    for (;;) {
        PgwireMsg m;
        if (!page_conn_next(c, &m, err))
            return false;
        if (m.type == 'Z')
            return true;
        if (m.type != 'R')
            continue; /* ParameterStatus, BackendKeyData */
        uint32_t code = 0;
        if (!pgwire_decode_auth(&m, &code, err)) {
            err_prefix(err, "page service %s: ", c->peer);
            return false;
        }
        if (code == PGWIRE_AUTH_OK)
            continue;
        if (code != PGWIRE_AUTH_CLEARTEXT_PASSWORD) {
            err_set(err, ERR_INTERNAL, "page service %s: unsupported authentication request %u",
                    c->peer, code);
            return false;
        }
        if (password == NULL) {
            err_set(err, ERR_UNAUTHORIZED,
                    "page service %s wants a token: give --token (or STORCON_TOKEN) or "
                    "--pageserver-token",
                    c->peer);
            return false;
        }
        pgwire_put_password(&b, password);
        if (!send_buf(c, &b, err))
            return false;
    }
}

bool page_conn_query(PageConn *c, const char *sql, uint8_t want, Err *err)
{
    StrBuf b = STRBUF_INIT;
    pgwire_put_query(&b, sql);
    if (!send_buf(c, &b, err))
        return false;
    PgwireMsg m;
    if (!page_conn_next(c, &m, err))
        return false;
    if (m.type != want) {
        err_set(err, ERR_INTERNAL, "page service %s: answered '%c' to \"%s\", expected '%c'",
                c->peer, m.type >= 32 && m.type < 127 ? m.type : '?', sql, want);
        return false;
    }
    return true;
}

void page_conn_close(PageConn *c)
{
    if (c->fd >= 0) {
        StrBuf b = STRBUF_INIT;
        pgwire_put_terminate(&b);
        if (!fs_write_all(c->fd, b.data, b.len)) {
            /* the server may have closed first: closing is all that is left to do */
        }
        strbuf_finish(&b);
        close(c->fd);
        c->fd = -1;
    }
    pgwire_parser_finish(&c->parser);
}
