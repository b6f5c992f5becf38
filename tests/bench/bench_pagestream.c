/*
 * bench_pagestream: pipelined GetPage over loopback against a running pageserver's page service,
 * next to the same client against a minimal server inside the bench that answers every request
 * with a fixed 8 KiB page (the baseline: what the protocol, the client and loopback cost alone).
 *
 *   bench_pagestream --addr HOST:PORT --tenant T --timeline TL --rel SPC/DB/REL [--lsn X/X]
 *                    [--seconds N] [--version 2|3]
 *
 * The relation's size comes from an Nblocks request; the GetPages walk its blocks in order, so
 * the tenant should be unsharded (every block on that pageserver). Cases: 1 and 8 connections x
 * depth 1 and 32 (requests in flight per connection), each for --seconds (default 3) against the
 * baseline and against the pageserver. Prints GetPage/s, p50 and p99 latency of each and the
 * ratio pageserver/baseline; nothing is asserted (tests/bench/bench_pagestream.sh sets up a
 * cluster and runs it).
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "shared/id.h"
#include "shared/pgwire.h"
#include "shared/str.h"

static void die(const char *what)
{
    fprintf(stderr, "bench_pagestream: %s\n", what);
    exit(1);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write failed");
        c += w;
        n -= (size_t)w;
    }
}

/* Conn: a blocking socket with a PgwireParser over what it reads. */
typedef struct Conn {
    int fd;
    PgwireParser p;
} Conn;

/* conn_next: the next whole message (blocking); false on EOF or a framing error. */
static bool conn_next(Conn *c, PgwireMsg *m)
{
    for (;;) {
        Err err = {0};
        PgwireFrameResult r = pgwire_parser_next(&c->p, m, &err);
        if (r == PGWIRE_MSG)
            return true;
        if (r == PGWIRE_ERROR)
            return false;
        char buf[65536];
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        pgwire_parser_feed(&c->p, buf, (size_t)n);
    }
}

static int tcp_connect(const HostPort *hp)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(hp->port)};
    if (inet_pton(AF_INET, hp->host, &sa.sin_addr) != 1)
        die("--addr: an IPv4 address is expected");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("cannot connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* ---- the baseline server: every request answered with a fixed page ---- */

typedef struct Baseline {
    int listen_fd;
    uint16_t port;
    PagestreamVersion version;
} Baseline;

static uint8_t g_fixed_page[BLCKSZ];

static void *baseline_conn(void *arg)
{
    Conn c = {.fd = (int)(intptr_t)arg};
    pgwire_parser_init(&c.p, true, 0);
    PgwireMsg m;
    StrBuf out = STRBUF_INIT;
    PagestreamVersion v = PAGESTREAM_V2;
    while (conn_next(&c, &m)) {
        if (m.type == 0) {
            PgwireStartup s;
            Err err = {0};
            if (!pgwire_decode_startup(&m, &s, &err))
                break;
            if (s.code == PGWIRE_SSL_REQUEST) {
                write_all(c.fd, "N", 1);
                continue;
            }
            pgwire_put_auth_ok(&out);
            pgwire_put_ready_for_query(&out);
        } else if (m.type == 'Q') {
            v = m.len > 12 && memcmp(m.payload, "pagestream_v3", 13) == 0 ? PAGESTREAM_V3
                                                                          : PAGESTREAM_V2;
            pgwire_put_copy_both_response(&out);
        } else if (m.type == 'd') {
            PagestreamRequest req;
            Err err = {0};
            if (!pagestream_request_decode(v, m.payload, m.len, &req, &err))
                break;
            PagestreamResponse resp = {.tag = pagestream_response_tag(req.tag), .req = req};
            if (req.tag == PAGESTREAM_GET_PAGE) {
                resp.data = g_fixed_page;
                resp.data_len = BLCKSZ;
            } else {
                resp.nblocks = 1000;
            }
            pagestream_put_response(&out, v, &resp);
        } else {
            break;
        }
        /* answer as soon as no further request is buffered: batches what arrived together */
        if (c.p.pos >= c.p.buf.len || out.len >= 256 * 1024) {
            write_all(c.fd, out.data, out.len);
            strbuf_reset(&out);
        }
    }
    strbuf_finish(&out);
    pgwire_parser_finish(&c.p);
    close(c.fd);
    return NULL;
}

static void *baseline_accept(void *arg)
{
    Baseline *b = arg;
    for (;;) {
        int fd = accept(b->listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL; /* the listener was shut down */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_t t;
        pthread_create(&t, NULL, baseline_conn, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
}

static void baseline_start(Baseline *b)
{
    memset(g_fixed_page, 0xA5, sizeof(g_fixed_page));
    b->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (b->listen_fd < 0 || bind(b->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(b->listen_fd, 64) != 0 ||
        getsockname(b->listen_fd, (struct sockaddr *)&sa, &len) != 0)
        die("cannot start the baseline server");
    b->port = ntohs(sa.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, baseline_accept, b);
    pthread_detach(t);
}

/* ---- the client ---- */

typedef struct Target {
    HostPort addr;
    char tenant[ID_STR_SIZE], timeline[ID_STR_SIZE];
    RelTag rel;
    Lsn lsn;
    uint32_t nblocks;
    PagestreamVersion version;
} Target;

typedef struct Worker {
    const Target *t;
    int depth;
    double seconds;
    uint32_t first_block;
    uint64_t done, errors;
    double *lat; /* seconds, one per answered request */
    size_t n_lat, cap_lat;
} Worker;

/* session: startup and the pagestream command on a new connection. */
static void session(Conn *c, const Target *t)
{
    c->fd = tcp_connect(&t->addr);
    pgwire_parser_init(&c->p, false, 0);
    StrBuf b = STRBUF_INIT;
    const char *names[] = {"user", "database"};
    const char *values[] = {"bench", "postgres"};
    pgwire_put_startup(&b, 2, names, values);
    char q[128];
    str_printf(q, sizeof(q), "pagestream_v%d %s %s", (int)t->version, t->tenant, t->timeline);
    pgwire_put_query(&b, q);
    write_all(c->fd, b.data, b.len);
    strbuf_finish(&b);
    PgwireMsg m;
    while (conn_next(c, &m)) {
        if (m.type == 'W')
            return;
        if (m.type == 'E') {
            PgwireError e;
            Err err = {0};
            if (pgwire_decode_error(&m, &e, &err))
                fprintf(stderr, "bench_pagestream: server error: %s\n", e.message);
            die("the pagestream command was refused");
        }
    }
    die("the connection closed during startup");
}

static void send_request(Conn *c, const Target *t, PagestreamTag tag, uint32_t blk, uint64_t reqid)
{
    PagestreamRequest r = {.tag = tag,
                           .reqid = reqid,
                           .request_lsn = t->lsn,
                           .not_modified_since = 0,
                           .rel = t->rel,
                           .blkno = blk};
    uint8_t buf[PGWIRE_HEADER_SIZE + PAGESTREAM_REQUEST_MAX];
    size_t n = pagestream_request_encode(t->version, &r, buf + PGWIRE_HEADER_SIZE);
    pgwire_msg_header(buf, 'd', n);
    write_all(c->fd, buf, PGWIRE_HEADER_SIZE + n);
}

static bool recv_response(Conn *c, const Target *t, PagestreamResponse *resp)
{
    PgwireMsg m;
    Err err = {0};
    return conn_next(c, &m) && m.type == 'd' &&
           pagestream_response_decode(t->version, m.payload, m.len, resp, &err);
}

static void *worker_run(void *arg)
{
    Worker *w = arg;
    const Target *t = w->t;
    Conn c;
    session(&c, t);
    double *sent = calloc((size_t)w->depth, sizeof(double));
    uint64_t next = 0;
    for (int i = 0; i < w->depth; i++, next++) {
        sent[i] = now_s();
        send_request(&c, t, PAGESTREAM_GET_PAGE, (uint32_t)((w->first_block + next) % t->nblocks),
                     next);
    }
    double end = now_s() + w->seconds;
    for (uint64_t got = 0;; got++) {
        PagestreamResponse resp;
        if (!recv_response(&c, t, &resp))
            die("the connection failed during the run");
        double now = now_s();
        if (resp.tag != PAGESTREAM_RESP_GET_PAGE)
            w->errors++;
        if (w->n_lat == w->cap_lat) {
            w->cap_lat = w->cap_lat ? w->cap_lat * 2 : 4096;
            w->lat = realloc(w->lat, w->cap_lat * sizeof(double));
        }
        w->lat[w->n_lat++] = now - sent[got % (uint64_t)w->depth];
        w->done++;
        if (now >= end) { /* drain what is in flight, not counted */
            for (uint64_t left = next - got - 1; left > 0; left--)
                if (!recv_response(&c, t, &resp))
                    break;
            break;
        }
        sent[next % (uint64_t)w->depth] = now;
        send_request(&c, t, PAGESTREAM_GET_PAGE, (uint32_t)((w->first_block + next) % t->nblocks),
                     next);
        next++;
    }
    free(sent);
    pgwire_parser_finish(&c.p);
    close(c.fd);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct Result {
    double rate, p50_ms, p99_ms;
    uint64_t errors;
} Result;

static Result run_case(const Target *t, int conns, int depth, double seconds)
{
    Worker *w = calloc((size_t)conns, sizeof(Worker));
    pthread_t *th = calloc((size_t)conns, sizeof(pthread_t));
    double t0 = now_s();
    for (int i = 0; i < conns; i++) {
        w[i] = (Worker){.t = t,
                        .depth = depth,
                        .seconds = seconds,
                        .first_block =
                            (uint32_t)((uint64_t)t->nblocks * (uint64_t)i / (uint64_t)conns)};
        pthread_create(&th[i], NULL, worker_run, &w[i]);
    }
    uint64_t done = 0;
    size_t n = 0;
    Result r = {0};
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
        done += w[i].done;
        r.errors += w[i].errors;
        n += w[i].n_lat;
    }
    double elapsed = now_s() - t0;
    double *all = malloc((n ? n : 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < conns; i++) {
        memcpy(all + k, w[i].lat, w[i].n_lat * sizeof(double));
        k += w[i].n_lat;
        free(w[i].lat);
    }
    qsort(all, n, sizeof(double), cmp_double);
    r.rate = (double)done / elapsed;
    r.p50_ms = n ? all[n / 2] * 1000 : 0;
    r.p99_ms = n ? all[(size_t)((double)n * 0.99)] * 1000 : 0;
    free(all);
    free(w);
    free(th);
    return r;
}

/* relation_size: Nblocks of the target relation, asked once. */
static uint32_t relation_size(const Target *t)
{
    Conn c;
    session(&c, t);
    send_request(&c, t, PAGESTREAM_NBLOCKS, 0, 0);
    PagestreamResponse resp;
    if (!recv_response(&c, t, &resp))
        die("no answer to Nblocks");
    if (resp.tag == PAGESTREAM_RESP_ERROR) {
        fprintf(stderr, "bench_pagestream: Nblocks: %s\n", resp.message);
        die("the relation cannot be read");
    }
    uint32_t n = resp.nblocks;
    pgwire_parser_finish(&c.p);
    close(c.fd);
    return n;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_pagestream --addr HOST:PORT --tenant T --timeline TL "
                    "--rel SPC/DB/REL [--lsn X/X] [--seconds N] [--version 2|3]\n");
    exit(64);
}

int main(int argc, char **argv)
{
    Target t = {.version = PAGESTREAM_V2, .lsn = UINT64_MAX};
    double seconds = 3;
    bool have_addr = false, have_rel = false;
    Err err = {0};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--addr") == 0) {
            have_addr = host_port_parse(v, &t.addr, &err);
        } else if (strcmp(k, "--tenant") == 0) {
            str_copy(t.tenant, sizeof(t.tenant), v);
        } else if (strcmp(k, "--timeline") == 0) {
            str_copy(t.timeline, sizeof(t.timeline), v);
        } else if (strcmp(k, "--rel") == 0) {
            unsigned spc, db, rel;
            have_rel = sscanf(v, "%u/%u/%u", &spc, &db, &rel) == 3;
            t.rel = (RelTag){.spc = spc, .db = db, .rel = rel, .fork = 0};
        } else if (strcmp(k, "--lsn") == 0) {
            if (!lsn_parse(v, &t.lsn, &err))
                usage();
        } else if (strcmp(k, "--seconds") == 0) {
            uint64_t s;
            if (!parse_u64(v, 1, 3600, &s))
                usage();
            seconds = (double)s;
        } else if (strcmp(k, "--version") == 0) {
            t.version = strcmp(v, "3") == 0 ? PAGESTREAM_V3 : PAGESTREAM_V2;
        } else {
            usage();
        }
    }
    if (!have_addr || !have_rel || !t.tenant[0] || !t.timeline[0])
        usage();
    t.nblocks = relation_size(&t);
    if (t.nblocks == 0)
        die("the relation is empty");

    Baseline b = {0};
    baseline_start(&b);
    Target base = t;
    base.addr.port = b.port;
    str_copy(base.addr.host, sizeof(base.addr.host), "127.0.0.1");
    base.nblocks = t.nblocks;

    printf("bench_pagestream: relation %u/%u/%u (%u blocks) of %s/%s on %s:%u, pagestream v%d, "
           "%.0f s per case\n",
           t.rel.spc, t.rel.db, t.rel.rel, t.nblocks, t.tenant, t.timeline, t.addr.host,
           (unsigned)t.addr.port, (int)t.version, seconds);
    printf("%-22s %12s %9s %9s   %12s %9s %9s   %6s\n", "case", "baseline/s", "p50 ms", "p99 ms",
           "pageserver/s", "p50 ms", "p99 ms", "ratio");
    static const int CONNS[] = {1, 8}, DEPTHS[] = {1, 32};
    for (size_t ci = 0; ci < 2; ci++) {
        for (size_t di = 0; di < 2; di++) {
            Result rb = run_case(&base, CONNS[ci], DEPTHS[di], seconds);
            Result rp = run_case(&t, CONNS[ci], DEPTHS[di], seconds);
            char name[64];
            str_printf(name, sizeof(name), "%d conn%s, depth %d", CONNS[ci],
                       CONNS[ci] > 1 ? "s" : "", DEPTHS[di]);
            printf("%-22s %12.0f %9.3f %9.3f   %12.0f %9.3f %9.3f   %6.2f%s\n", name, rb.rate,
                   rb.p50_ms, rb.p99_ms, rp.rate, rp.p50_ms, rp.p99_ms, rp.rate / rb.rate,
                   rp.errors ? "  (error responses!)" : "");
            fflush(stdout);
        }
    }
    printf("targets (not asserted): >= 100,000 GetPage/s at depth 32 and >= 0.5x the baseline\n");
    shutdown(b.listen_fd, SHUT_RDWR);
    close(b.listen_fd);
    return 0;
}
