/*
 * page_service.c: the compute-facing page service (page_service.h, docs/page-service.md).
 *
 * A connection is a small state machine driven by its bufferevent:
 *
 *   STARTUP --SSLRequest: 'N'--> STARTUP
 *   STARTUP --startup packet, auth on--> PASSWORD --JWT verified--> READY
 *   STARTUP --startup packet, auth off--> READY
 *   READY --"pagestream_v2|v3 t tl"--> PAGESTREAM          (CopyBothResponse)
 *   READY --"basebackup t tl ..."--> BASEBACKUP --built--> COPYOUT --sent--> READY
 *   any --EOF, error, timeout, protocol violation, Terminate, CopyDone, stop--> closed
 *
 * PAGESTREAM: every CopyData is one request. process_input decodes requests into the connection's
 * ring `q` while fewer than PAGE_SERVICE_MAX_IN_FLIGHT are unanswered and the output buffer is
 * below its high-water mark (otherwise reading stops: backpressure); requests refused by their
 * LSNs alone (LSN 0, request_lsn < not_modified_since) are answered at once. dispatch() then
 * groups consecutive requests into batches of up to PAGE_SERVICE_MAX_BATCH, routed on the
 * daemon's loop (a page of a shard not on this node, an unknown tenant: refused there) and read
 * with one read_path_batch (at most one worker round trip) per run of one shard. flush() writes
 * the answered requests at the head of the ring, in order.
 *
 * A connection that is closed while reads or a basebackup build are in flight is unlinked and
 * its socket freed at once; the struct waits for those completions (`ops`) and is freed by the
 * last one.
 *
 * Threads (docs/page-service.md, Threads): on_accept (the daemon's loop) hands the socket to a
 * PsThread through its mailbox (conn_open); everything above then runs on that thread. The
 * tenant map is only touched on the daemon's loop. A batch is first offered to the connection's
 * ReadView (read_on_thread: the copy of what routing and reading the timeline needs, read_path.h),
 * which answers it on the connection's thread when it is current and every page is in memory;
 * otherwise the batch goes to the daemon's loop (batch_read: routing and read_path_batch per run
 * of one shard, and a new view when the connection has none) and back (batch_answered); a
 * basebackup always goes there (basebackup_start, basebackup_answered). Whichever side holds a
 * batch, or a connection's bb_* fields during a basebackup's trip, is the only one touching them.
 * Each thread drops its connections' stale views every PAGE_SERVICE_VIEW_SWEEP_MS, so that an
 * idle connection does not keep the layers of a detached tenant referenced.
 */
#include "pageserver/page_service.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "shared/auth.h"
#include "shared/key.h"
#include "shared/log.h"
#include "shared/loop_mailbox.h"
#include "shared/metrics.h"
#include "shared/pgwire.h"
#include "shared/str.h"

#include "pageserver/app.h"
#include "pageserver/defaults.h"
#include "pageserver/read_path.h"
#include "pageserver/tenant.h"

typedef enum PgConnState {
    PGC_STARTUP,
    PGC_PASSWORD,
    PGC_READY,
    PGC_PAGESTREAM,
    PGC_BASEBACKUP, /* building: input ignored */
    PGC_COPYOUT,    /* streaming the built file */
    PGC_STATE_COUNT
} PgConnState;

typedef struct PgConn PgConn;
typedef struct PsThread PsThread;

/* PsBatch: up to PAGE_SERVICE_MAX_BATCH consecutive requests of a connection, routed and read on
 * the main loop (one read_path_batch per run of requests for the same shard), then answered on
 * the connection's thread; freed when every request of it has been written out (or the
 * connection closed and the reads completed). Between the posts, the side that holds the batch
 * is the only one touching it. */
typedef struct PsBatch {
    PgConn *conn; /* the connection's thread only */
    PsThread *t;
    struct PsBatch *next_free; /* on t's pool of free batches */
    LoopMailboxItem mb;        /* to the main loop, then back to t */
    TenantId tenant;           /* copies of the connection's, for the main loop */
    TimelineId timeline;
    size_t n;
    size_t refs; /* requests of this batch not written yet, and answers an output buffer still
                  * references (write_response) */
    size_t reads_pending; /* main loop: read_path_batch calls not completed yet */
    bool want_view;       /* the connection has no current ReadView: the main loop builds one */
    ReadView *view;       /* built by the main loop for the connection (read_view_build) */
    Lsn not_modified_since[PAGE_SERVICE_MAX_BATCH];
    ReadItem items[];
} PsBatch;

/* PsReq: one pagestream request between decoding and writing its answer. */
typedef struct PsReq {
    PagestreamRequest req;
    struct timespec start;
    bool done;
    PsBatch *batch; /* dispatched: its item is batch->items[idx] */
    size_t idx;
    Err *err; /* refused before any read (done without a batch); heap */
} PsReq;

struct PgConn {
    PageService *ps;
    PsThread *t; /* the thread the connection lives on */
    PgConn *prev, *next;
    evutil_socket_t fd;      /* accepted on the main loop, opened on t (conn_open) */
    LoopMailboxItem mb;      /* conn_open, then the basebackup's trips to the main loop and back */
    struct bufferevent *bev; /* NULL once closed */
    PgConnState state;
    bool auth_ok;
    AuthClaims claims;
    bool close_after_flush; /* an error was queued: close when the output is written */
    bool zombie;            /* closed, on t->zombies until its operations complete */
    unsigned ops;           /* read batches and basebackup builds in flight */
    char peer[64];
    StrBuf wbuf;             /* messages being built, appended to the output by conn_send */
    unsigned slru_in_flight; /* GetSlruSegment requests in q (PAGE_SERVICE_MAX_SLRU_IN_FLIGHT) */
    /* pagestream */
    PagestreamVersion version;
    TenantId tenant;
    TimelineId timeline;
    PsReq *q;       /* PAGE_SERVICE_MAX_IN_FLIGHT entries, allocated by the pagestream command */
    ReadView *view; /* this thread reads batches with it while it is current (read_path.h) */
    size_t q_head, q_len, q_dispatched; /* ring; [head, head+dispatched) dispatched */
    bool input_done; /* CopyDone or Terminate seen: answer what is queued, then close */
    /* basebackup: the arguments the main loop starts it with, and what it answers (bb_failed:
     * refused before the build, with bb_sqlstate, or the build failed; bb_err says why) */
    Lsn bb_lsn;
    bool bb_gzip;
    bool bb_failed;
    const char *bb_sqlstate;
    Err bb_err;
    TenantShardId bb_tsid;
    int bb_fd;
    struct evbuffer_file_segment *bb_seg;
    uint64_t bb_size, bb_pos;
};

typedef struct PsMetrics {
    MetricCounter *requests[PAGESTREAM_TAG_COUNT];
    MetricCounter *errors;
    MetricHistogram *latency;
    MetricHistogram *batch_size;
    MetricCounter *batches_on_thread; /* answered with the connection's ReadView */
    MetricCounter *batches_on_loop;   /* sent to the daemon's loop */
    MetricCounter *bytes_out;
    MetricGauge *connections;
    MetricCounter *accepted;
    MetricCounter *refused;
    MetricCounter *protocol_errors;
    MetricCounter *basebackups;
} PsMetrics;

/* PsThread: one page service thread: its own event loop, and the connections on it. */
struct PsThread {
    PageService *ps;
    struct event_base *base;
    LoopMailbox *mailbox; /* connections to open, read batches answered, stop, exit */
    pthread_t thread;
    bool started;
    bool stopping;   /* this thread: page_service_stop reached it */
    PgConn *conns;   /* open connections (doubly linked); this thread only */
    PgConn *zombies; /* closed connections waiting for their reads or build (same links) */
    size_t n_conns;  /* atomic: opened and not closed, read by on_accept to pick a thread */
    LoopMailboxItem stop_item, exit_item;
    struct event *sweep;   /* drops stale read views (view_sweep) */
    PsBatch *free_batches; /* batch_new's pool, this thread only */
    size_t n_free_batches;
};

struct PageService {
    PageserverApp *app;
    PageServiceConfig cfg;
    struct evconnlistener *listener;
    uint16_t port;
    LoopMailbox *mailbox; /* the main loop's: read batches and basebackups to start */
    PsThread *threads;
    size_t n_threads;
    size_t next_thread; /* main loop: where on_accept's search for the least busy starts */
    size_t n_conns;     /* atomic: accepted and not closed, all threads */
    bool stopping;      /* main loop */
    PsMetrics m;
};

static void conn_close(PgConn *c, const char *why);
static void process_input(PgConn *c);

/* ---- output helpers ---- */

static struct evbuffer *conn_out(PgConn *c)
{
    return bufferevent_get_output(c->bev);
}

/* conn_send: append the messages built in c->wbuf (pgwire builders) to the output. */
static void conn_send(PgConn *c)
{
    StrBuf *b = &c->wbuf;
    if (b->len > 0) {
        evbuffer_add(conn_out(c), b->data, b->len);
        metric_counter_add(c->ps->m.bytes_out, b->len);
    }
    strbuf_reset(b);
}

/* send_error: ErrorResponse (+ ReadyForQuery when the connection goes on). */
static void send_error(PgConn *c, const char *sqlstate, const char *msg, bool ready)
{
    pgwire_put_error(&c->wbuf, "ERROR", sqlstate, msg);
    if (ready)
        pgwire_put_ready_for_query(&c->wbuf);
    conn_send(c);
}

/* fatal: ErrorResponse, then close once it is written; nothing more is read. */
static void fatal(PgConn *c, const char *sqlstate, const char *msg)
{
    if (c->bev == NULL || c->close_after_flush)
        return;
    log_info("page service: %s: closing the connection: %s", c->peer, msg);
    send_error(c, sqlstate, msg, false);
    c->close_after_flush = true;
    bufferevent_disable(c->bev, EV_READ);
}

static void protocol_violation(PgConn *c, const char *msg)
{
    metric_counter_add(c->ps->m.protocol_errors, 1);
    fatal(c, PGWIRE_SQLSTATE_PROTOCOL_VIOLATION, msg);
}

static double secs_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void set_timeouts(PgConn *c, uint64_t read_ms)
{
    struct timeval rt = {(time_t)(read_ms / 1000), (suseconds_t)(read_ms % 1000) * 1000};
    uint64_t w = c->ps->cfg.idle_timeout_ms;
    struct timeval wt = {(time_t)(w / 1000), (suseconds_t)(w % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, &rt, &wt);
}

/* ---- pagestream ---- */

static PsReq *q_at(PgConn *c, size_t i)
{
    return &c->q[(c->q_head + i) % PAGE_SERVICE_MAX_IN_FLIGHT];
}

/* batch_new: a batch of PAGE_SERVICE_MAX_BATCH items from the thread's pool, or a new one (not
 * zeroed: 32 items are about 280 KiB, mostly page buffers the read fills; a fresh allocation
 * that size is an mmap, page faults and a munmap every batch, hence the pool). */
static PsBatch *batch_new(PsThread *t)
{
    PsBatch *b = t->free_batches;
    if (b != NULL) {
        t->free_batches = b->next_free;
        t->n_free_batches--;
    } else {
        b = xmalloc(sizeof(*b) + PAGE_SERVICE_MAX_BATCH * sizeof(ReadItem));
    }
    memset(b, 0, sizeof(*b));
    b->t = t;
    return b;
}

static void batch_unref(PsBatch *b)
{
    if (--b->refs > 0)
        return;
    for (size_t i = 0; i < b->n; i++)
        read_item_finish(&b->items[i]);
    read_view_free(b->view); /* the connection closed before it took it */
    b->view = NULL;
    PsThread *t = b->t;
    if (t->n_free_batches >= PAGE_SERVICE_BATCH_POOL) {
        free(b);
        return;
    }
    b->next_free = t->free_batches;
    t->free_batches = b;
    t->n_free_batches++;
}

/* on_bulk_sent: the output buffer let go of an answer's bytes (sent, or the connection's buffer
 * freed: on its thread, or by page_service_free after the threads ended). */
static void on_bulk_sent(const void *data, size_t len, void *arg)
{
    batch_unref(arg);
}

/* write_response: the answer of r (done) as one CopyData. */
static void write_response(PgConn *c, PsReq *r)
{
    PagestreamResponse resp = {.req = r->req};
    const ReadItem *it = r->batch ? &r->batch->items[r->idx] : NULL;
    const Err *err = it ? (it->ok ? NULL : &it->err) : r->err;
    const void *bulk = NULL;
    size_t bulk_len = 0;
    if (err != NULL) {
        resp.tag = PAGESTREAM_RESP_ERROR;
        bulk = err->msg;
        bulk_len = strlen(err->msg) + 1;
        metric_counter_add(c->ps->m.errors, 1);
    } else {
        resp.tag = pagestream_response_tag(r->req.tag);
        switch (r->req.tag) {
        case PAGESTREAM_EXISTS:
            resp.exists = it->exists;
            break;
        case PAGESTREAM_NBLOCKS:
            resp.nblocks = it->nblocks;
            break;
        case PAGESTREAM_GET_PAGE:
            bulk = it->page;
            bulk_len = BLCKSZ;
            break;
        case PAGESTREAM_DB_SIZE:
            resp.db_size = (int64_t)it->bytes;
            break;
        case PAGESTREAM_GET_SLRU_SEGMENT:
            resp.nblocks = it->nblocks;
            bulk = it->segment;
            bulk_len = it->segment_len;
            break;
        case PAGESTREAM_TAG_COUNT:
            break;
        }
    }
    uint8_t hdr[PGWIRE_HEADER_SIZE + PAGESTREAM_RESPONSE_HEADER_MAX];
    size_t n = pagestream_response_header_encode(c->version, &resp, hdr + PGWIRE_HEADER_SIZE);
    pgwire_msg_header(hdr, 'd', n + bulk_len);
    struct evbuffer *out = conn_out(c);
    evbuffer_add(out, hdr, PGWIRE_HEADER_SIZE + n);
    if (it != NULL && bulk_len >= PAGE_SERVICE_REFERENCE_MIN) {
        /* a page or segment: referenced, not copied; the batch stays until it is sent */
        r->batch->refs++;
        if (evbuffer_add_reference(out, bulk, bulk_len, on_bulk_sent, r->batch) != 0) {
            r->batch->refs--; /* not added: cleanup never runs */
            evbuffer_add(out, bulk, bulk_len);
        }
    } else if (bulk_len) {
        evbuffer_add(out, bulk, bulk_len);
    }
    metric_counter_add(c->ps->m.bytes_out, PGWIRE_HEADER_SIZE + n + bulk_len);
    metric_histogram_observe(c->ps->m.latency, secs_since(&r->start));
}

/* flush: write the answered requests at the head of the queue, in order. */
static void flush(PgConn *c)
{
    while (c->q_dispatched > 0 && q_at(c, 0)->done) {
        PsReq *r = q_at(c, 0);
        if (c->bev != NULL && !c->close_after_flush) /* nothing after a fatal ErrorResponse */
            write_response(c, r);
        if (r->req.tag == PAGESTREAM_GET_SLRU_SEGMENT)
            c->slru_in_flight--;
        if (r->batch != NULL)
            batch_unref(r->batch);
        r->batch = NULL;
        free(r->err);
        r->err = NULL;
        c->q_head = (c->q_head + 1) % PAGE_SERVICE_MAX_IN_FLIGHT;
        c->q_len--;
        c->q_dispatched--;
    }
}

/* conn_release: one operation of a closed connection ended; the last frees it. */
static void conn_free(PgConn *c)
{
    if (c->zombie) {
        if (c->prev)
            c->prev->next = c->next;
        else
            c->t->zombies = c->next;
        if (c->next)
            c->next->prev = c->prev;
    }
    for (size_t i = 0; c->q != NULL && i < c->q_len; i++) {
        PsReq *r = q_at(c, i);
        free(r->err);
        if (r->batch != NULL) /* only when page_service_free drops a zombie: never completed */
            batch_unref(r->batch);
    }
    free(c->q);
    read_view_free(c->view);
    strbuf_finish(&c->wbuf);
    free(c);
}

static void conn_release(PgConn *c)
{
    if (--c->ops > 0 || c->bev != NULL)
        return;
    conn_free(c);
}

/* batch_answered: on the connection's thread, the batch's reads are done. */
static void batch_answered(void *arg)
{
    PsBatch *b = arg;
    PgConn *c = b->conn;
    if (b->view != NULL && c->bev != NULL) {
        read_view_free(c->view);
        c->view = b->view;
        b->view = NULL;
    }
    for (size_t i = 0; i < c->q_dispatched; i++) {
        PsReq *r = q_at(c, i);
        if (r->batch == b)
            r->done = true;
    }
    if (c->bev == NULL) { /* closed meanwhile: nothing to write */
        flush(c);
        conn_release(c);
        return;
    }
    c->ops--;
    flush(c);
    process_input(c);
}

/* refuse: answer r at once with an error (no read). */
static void refuse(PsReq *r, const Err *err)
{
    r->err = xmalloc(sizeof(*r->err));
    *r->err = *err;
    r->done = true;
}

/* check_request: the checks of r that need no tenant: refused at once when it fails them. */
static void check_request(PsReq *r)
{
    Err err = {0};
    const PagestreamRequest *q = &r->req;
    if (q->request_lsn == LSN_INVALID) {
        err_set(&err, ERR_BAD_REQUEST, "invalid request LSN 0");
        refuse(r, &err);
        return;
    }
    if (q->request_lsn < q->not_modified_since) {
        char a[LSN_STR_SIZE], b[LSN_STR_SIZE];
        lsn_format(q->request_lsn, a);
        lsn_format(q->not_modified_since, b);
        err_set(&err, ERR_BAD_REQUEST, "invalid request: request_lsn %s < not_modified_since %s", a,
                b);
        refuse(r, &err);
        return;
    }
    if (q->tag == PAGESTREAM_GET_PAGE && q->blkno == KEY_F6_SIZE) {
        err_set(&err, ERR_BAD_REQUEST, "invalid block number %u", q->blkno);
        refuse(r, &err);
    }
}

/* route_item: main loop: the shard that answers it (a GetPage: the owner of its key; the rest:
 * shard 0), or false with the item failed. */
static bool route_item(PageService *ps, const TenantId *tenant, ReadItem *it, TenantShardId *target)
{
    Key key = it->op == READ_OP_PAGE
                  ? key_rel_block(it->rel.spc, it->rel.db, it->rel.rel, it->rel.fork, it->blkno)
                  : key_dbdir(); /* any shard-0 key */
    if (tenant_manager_shard_for_key(ps->app->tenants, tenant, &key, target, &it->err))
        return true;
    it->ok = false;
    return false;
}

/* on_run_read: main loop: one read_path_batch of the batch completed; after the last, the batch
 * goes back to its connection's thread. */
static void on_run_read(const Err *err, ReadItem *items, size_t n, void *arg)
{
    PsBatch *b = arg;
    if (--b->reads_pending == 0)
        loop_mailbox_post(b->t->mailbox, &b->mb, batch_answered, b);
}

/* batch_read: main loop: route every request of the batch, then read each run of consecutive
 * requests for the same shard with one read_path_batch (requests refused by the routing are
 * answered with their error and split the runs). */
static void batch_read(void *arg)
{
    PsBatch *b = arg;
    PageService *ps = b->t->ps;
    if (b->want_view)
        b->view = read_view_build(ps->app->tenants, &b->tenant, &b->timeline);
    TenantShardId target[PAGE_SERVICE_MAX_BATCH];
    bool routed[PAGE_SERVICE_MAX_BATCH];
    size_t runs = 0;
    for (size_t i = 0; i < b->n; i++) {
        routed[i] = route_item(ps, &b->tenant, &b->items[i], &target[i]);
        if (routed[i] && (i == 0 || !routed[i - 1] || !tsid_eq(&target[i], &target[i - 1])))
            runs++;
    }
    if (runs == 0) {
        loop_mailbox_post(b->t->mailbox, &b->mb, batch_answered, b);
        return;
    }
    b->reads_pending = runs; /* before the first call: a completion never comes from inside */
    for (size_t i = 0; i < b->n;) {
        if (!routed[i]) {
            i++;
            continue;
        }
        size_t n = 1;
        Lsn wait_lsn = b->not_modified_since[i];
        while (i + n < b->n && routed[i + n] && tsid_eq(&target[i + n], &target[i])) {
            if (b->not_modified_since[i + n] > wait_lsn)
                wait_lsn = b->not_modified_since[i + n];
            n++;
        }
        metric_histogram_observe(ps->m.batch_size, (double)n);
        read_path_batch(ps->app->tenants, &target[i], &b->timeline, wait_lsn, &b->items[i], n,
                        on_run_read, b);
        i += n;
    }
}

static ReadOp read_op_of(PagestreamTag tag)
{
    static const ReadOp OPS[PAGESTREAM_TAG_COUNT] = {
        [PAGESTREAM_EXISTS] = READ_OP_REL_EXISTS,
        [PAGESTREAM_NBLOCKS] = READ_OP_REL_SIZE,
        [PAGESTREAM_GET_PAGE] = READ_OP_PAGE,
        [PAGESTREAM_DB_SIZE] = READ_OP_DB_SIZE,
        [PAGESTREAM_GET_SLRU_SEGMENT] = READ_OP_SLRU_SEGMENT,
    };
    return OPS[tag];
}

/* read_on_thread: answer b on the connection's own thread with its ReadView when that can
 * (read_view_batch); a view found stale is dropped, so the batch's trip to the main loop brings a
 * new one. */
static bool read_on_thread(PgConn *c, PsBatch *b)
{
    if (c->view != NULL && !read_view_current(c->view)) {
        read_view_free(c->view);
        c->view = NULL;
    }
    if (c->view == NULL)
        return false;
    Lsn wait_lsn = LSN_INVALID;
    for (size_t i = 0; i < b->n; i++)
        if (b->not_modified_since[i] > wait_lsn)
            wait_lsn = b->not_modified_since[i];
    if (!read_view_batch(c->view, wait_lsn, b->items, b->n))
        return false;
    metric_histogram_observe(c->ps->m.batch_size, (double)b->n);
    metric_counter_add(c->ps->m.batches_on_thread, 1);
    return true;
}

/* dispatch: batch the undispatched requests not refused yet (at most PAGE_SERVICE_MAX_BATCH
 * each) and send each batch to the main loop (batch_read: consecutive requests for the same shard
 * share one read_path_batch). While PAGE_SERVICE_MAX_BATCHES_IN_FLIGHT batches of the connection
 * are being read, new requests wait and join the next batch: under load the batches grow (one
 * trip to the main loop and at most one worker round trip serve many requests), idle they are
 * sent at once. */
static void dispatch(PgConn *c)
{
    while (c->q_dispatched < c->q_len) {
        if (c->ops >= PAGE_SERVICE_MAX_BATCHES_IN_FLIGHT && !q_at(c, c->q_dispatched)->done)
            return;
        PsReq *first = q_at(c, c->q_dispatched);
        if (first->done) { /* refused: nothing to read */
            c->q_dispatched++;
            continue;
        }
        size_t n = 1;
        while (c->q_dispatched + n < c->q_len && n < PAGE_SERVICE_MAX_BATCH &&
               !q_at(c, c->q_dispatched + n)->done)
            n++;
        PsBatch *b = batch_new(c->t);
        b->conn = c;
        b->tenant = c->tenant;
        b->timeline = c->timeline;
        b->n = n;
        b->refs = n;
        for (size_t i = 0; i < n; i++) {
            PsReq *r = q_at(c, c->q_dispatched + i);
            const PagestreamRequest *q = &r->req;
            ReadItem *it = &b->items[i];
            memset(it, 0, offsetof(ReadItem, page));
            memset(&it->nblocks, 0, sizeof(*it) - offsetof(ReadItem, nblocks));
            it->op = read_op_of(q->tag);
            it->rel = q->rel;
            if (q->tag == PAGESTREAM_DB_SIZE)
                it->rel = (RelTag){.spc = DEFAULTTABLESPACE_OID, .db = q->dbnode};
            it->blkno = q->blkno;
            it->slru_kind = q->slru_kind;
            it->segno = q->segno;
            it->lsn = q->request_lsn;
            b->not_modified_since[i] = q->not_modified_since;
            r->batch = b;
            r->idx = i;
        }
        if (read_on_thread(c, b)) {
            for (size_t i = 0; i < n; i++)
                q_at(c, c->q_dispatched + i)->done = true;
            c->q_dispatched += n;
            continue;
        }
        b->want_view = c->view == NULL;
        metric_counter_add(c->ps->m.batches_on_loop, 1);
        c->q_dispatched += n;
        c->ops++;
        loop_mailbox_post(c->ps->mailbox, &b->mb, batch_read, b);
    }
}

/* on_copy_data: one pagestream request. false when the connection must stop reading. */
static void on_copy_data(PgConn *c, const PgwireMsg *m)
{
    Err err = {0};
    PsReq *r = q_at(c, c->q_len);
    memset(r, 0, sizeof(*r));
    if (!pagestream_request_decode(c->version, m->payload, m->len, &r->req, &err)) {
        protocol_violation(c, err.msg);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    metric_counter_add(c->ps->m.requests[r->req.tag], 1);
    c->q_len++;
    if (r->req.tag == PAGESTREAM_GET_SLRU_SEGMENT)
        c->slru_in_flight++;
    check_request(r);
}

/* ---- basebackup ---- */

static void copyout_pump(PgConn *c);

static void basebackup_finish(PgConn *c)
{
    if (c->bb_seg != NULL)
        evbuffer_file_segment_free(c->bb_seg); /* closes bb_fd (EVBUF_FS_CLOSE_ON_FREE) */
    else if (c->bb_fd >= 0)
        close(c->bb_fd);
    c->bb_seg = NULL;
    c->bb_fd = -1;
}

/* basebackup_answered: on the connection's thread, the main loop refused the basebackup
 * (bb_sqlstate), or built it (bb_failed: the build failed). */
static void basebackup_answered(void *arg)
{
    PgConn *c = arg;
    if (c->bev == NULL) {
        basebackup_finish(c);
        conn_release(c);
        return;
    }
    c->ops--;
    if (c->bb_failed && c->bb_sqlstate != NULL) { /* refused before the build */
        basebackup_finish(c);
        c->state = PGC_READY;
        send_error(c, c->bb_sqlstate, c->bb_err.msg, true);
        process_input(c);
        return;
    }
    const Err *err = c->bb_failed ? &c->bb_err : NULL;
    Lsn lsn = c->bb_lsn;
    struct stat st;
    Err e = {0};
    if (err == NULL && fstat(c->bb_fd, &st) != 0)
        err_set(&e, ERR_INTERNAL, "cannot stat the basebackup file: %s", strerror(errno));
    else if (err == NULL && st.st_size > 0) {
        c->bb_seg = evbuffer_file_segment_new(c->bb_fd, 0, st.st_size, EVBUF_FS_CLOSE_ON_FREE);
        if (c->bb_seg == NULL)
            err_set(&e, ERR_INTERNAL, "cannot map the basebackup file");
    }
    if (err != NULL || err_is_set(&e)) {
        const Err *which = err != NULL ? err : &e;
        log_warn("page service: %s: basebackup failed: %s", c->peer, which->msg);
        basebackup_finish(c);
        c->state = PGC_READY;
        send_error(c, PGWIRE_SQLSTATE_INTERNAL, which->msg, true);
        set_timeouts(c, c->ps->cfg.idle_timeout_ms);
        bufferevent_enable(c->bev, EV_READ);
        return;
    }
    char l[LSN_STR_SIZE];
    lsn_format(lsn, l);
    log_info("page service: %s: streaming a basebackup at %s (%jd bytes)", c->peer, l,
             (intmax_t)st.st_size);
    c->bb_size = (uint64_t)st.st_size;
    c->bb_pos = 0;
    c->state = PGC_COPYOUT;
    pgwire_put_copy_out_response(&c->wbuf);
    conn_send(c);
    copyout_pump(c);
}

/* copyout_pump: add CopyData chunks of the built file while the output is below its high-water
 * mark; after the last, CopyDone, CommandComplete and ReadyForQuery. */
static void copyout_pump(PgConn *c)
{
    struct evbuffer *out = conn_out(c);
    while (c->bb_pos < c->bb_size && evbuffer_get_length(out) < PAGE_SERVICE_OUTPUT_HIGH_WATER) {
        uint64_t n = c->bb_size - c->bb_pos;
        if (n > PAGE_SERVICE_COPY_CHUNK)
            n = PAGE_SERVICE_COPY_CHUNK;
        uint8_t hdr[PGWIRE_HEADER_SIZE];
        pgwire_msg_header(hdr, 'd', (size_t)n);
        evbuffer_add(out, hdr, sizeof(hdr));
        evbuffer_add_file_segment(out, c->bb_seg, (ev_off_t)c->bb_pos, (ev_off_t)n);
        c->bb_pos += n;
        metric_counter_add(c->ps->m.bytes_out, sizeof(hdr) + n);
    }
    if (c->bb_pos < c->bb_size)
        return; /* more when the output drains (on_write) */
    basebackup_finish(c);
    pgwire_put_copy_done(&c->wbuf);
    pgwire_put_command_complete(&c->wbuf, "SELECT 1");
    pgwire_put_ready_for_query(&c->wbuf);
    conn_send(c);
    c->state = PGC_READY;
    set_timeouts(c, c->ps->cfg.idle_timeout_ms);
    bufferevent_enable(c->bev, EV_READ);
}

/* ---- commands ---- */

#define MAX_ARGS 6

typedef struct Command {
    const char *name;
    size_t min_args, max_args; /* after the name */
    void (*run)(PgConn *c, char **argv, size_t argc);
} Command;

/* check_tenant: parse the tenant and timeline arguments and check the token's tenant. */
static bool check_tenant(PgConn *c, const char *tenant, const char *timeline)
{
    Err err = {0};
    if (!tenant_id_parse(tenant, &c->tenant, &err) ||
        !timeline_id_parse(timeline, &c->timeline, &err)) {
        send_error(c, PGWIRE_SQLSTATE_SYNTAX_ERROR, err.msg, true);
        return false;
    }
    if (c->ps->app->auth != NULL && !auth_check(AUTH_POLICY_PAGESERVER, AUTH_SCOPE_PAGESERVERAPI,
                                                &c->claims, &c->tenant, &err)) {
        send_error(c, PGWIRE_SQLSTATE_INVALID_PASSWORD, err.msg, true);
        return false;
    }
    return true;
}

static void run_pagestream(PgConn *c, PagestreamVersion v, char **argv)
{
    if (!check_tenant(c, argv[1], argv[2]))
        return;
    c->version = v;
    c->state = PGC_PAGESTREAM;
    c->q = xcalloc(PAGE_SERVICE_MAX_IN_FLIGHT, sizeof(*c->q));
    set_timeouts(c, c->ps->cfg.idle_timeout_ms);
    pgwire_put_copy_both_response(&c->wbuf);
    conn_send(c);
}

static void cmd_pagestream_v2(PgConn *c, char **argv, size_t argc)
{
    run_pagestream(c, PAGESTREAM_V2, argv);
}

static void cmd_pagestream_v3(PgConn *c, char **argv, size_t argc)
{
    run_pagestream(c, PAGESTREAM_V3, argv);
}

/* on_basebackup_built: main loop: the build's completion, sent to the connection's thread. */
static void on_basebackup_built(const Err *err, Lsn lsn, void *arg)
{
    PgConn *c = arg;
    c->bb_lsn = lsn;
    if (err != NULL) {
        c->bb_failed = true;
        c->bb_err = *err;
    }
    loop_mailbox_post(c->t->mailbox, &c->mb, basebackup_answered, c);
}

/* basebackup_refuse: main loop: answer the basebackup command with an error. */
static void basebackup_refuse(PgConn *c, const char *sqlstate)
{
    c->bb_failed = true;
    c->bb_sqlstate = sqlstate;
    loop_mailbox_post(c->t->mailbox, &c->mb, basebackup_answered, c);
}

/* basebackup_start: main loop: find shard 0 of the tenant, make the temporary file and start the
 * build. Until the answer is back on the connection's thread, only this side touches the bb_*
 * fields and the connection's tenant and timeline are not written. */
static void basebackup_start(void *arg)
{
    PgConn *c = arg;
    PageService *ps = c->ps;
    Key shard0_key = key_dbdir();
    if (!tenant_manager_shard_for_key(ps->app->tenants, &c->tenant, &shard0_key, &c->bb_tsid,
                                      &c->bb_err)) {
        basebackup_refuse(c, PGWIRE_SQLSTATE_UNDEFINED_OBJECT);
        return;
    }
    if (ps->cfg.basebackup_build == NULL) {
        err_set(&c->bb_err, ERR_INTERNAL, "basebackup is not available");
        basebackup_refuse(c, PGWIRE_SQLSTATE_FEATURE_UNSUPPORTED);
        return;
    }
    char path[PATH_MAX];
    if (!str_printf(path, sizeof(path), "%s/%s/basebackup.XXXXXX", ps->app->cfg.workdir,
                    PAGESERVER_TMP_DIR)) {
        err_set(&c->bb_err, ERR_INTERNAL, "temporary file path too long");
        basebackup_refuse(c, PGWIRE_SQLSTATE_INTERNAL);
        return;
    }
    c->bb_fd = mkostemp(path, O_CLOEXEC);
    if (c->bb_fd < 0) {
        err_set(&c->bb_err, ERR_INTERNAL, "cannot create a temporary file: %s", strerror(errno));
        basebackup_refuse(c, PGWIRE_SQLSTATE_INTERNAL);
        return;
    }
    unlink(path); /* the descriptor is all we need; nothing is left behind on a crash */
    metric_counter_add(ps->m.basebackups, 1);
    ps->cfg.basebackup_build(ps->app->tenants, &c->bb_tsid, &c->timeline, c->bb_lsn, c->bb_gzip,
                             c->bb_fd, on_basebackup_built, c);
}

/* cmd_basebackup: basebackup <tenant> <timeline> [<lsn>|latest] [--gzip] on shard 0. */
static void cmd_basebackup(PgConn *c, char **argv, size_t argc)
{
    if (!check_tenant(c, argv[1], argv[2]))
        return;
    Err err = {0};
    Lsn lsn = LSN_INVALID;
    bool gzip = false;
    for (size_t i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--gzip") == 0)
            gzip = true;
        else if (i == 3 && strcmp(argv[i], "latest") == 0)
            lsn = LSN_INVALID;
        else if (i == 3) {
            if (!lsn_parse(argv[i], &lsn, &err)) {
                send_error(c, PGWIRE_SQLSTATE_SYNTAX_ERROR, err.msg, true);
                return;
            }
        } else {
            char q[STR_QUOTE_SIZE];
            err_set(&err, ERR_BAD_REQUEST, "basebackup: unexpected argument \"%s\"",
                    str_quote(argv[i], q));
            send_error(c, PGWIRE_SQLSTATE_SYNTAX_ERROR, err.msg, true);
            return;
        }
    }
    c->bb_lsn = lsn;
    c->bb_gzip = gzip;
    c->bb_failed = false;
    c->bb_sqlstate = NULL;
    err_clear(&c->bb_err);
    c->state = PGC_BASEBACKUP;
    bufferevent_disable(c->bev, EV_READ);
    c->ops++;
    loop_mailbox_post(c->ps->mailbox, &c->mb, basebackup_start, c);
}

/* The commands of a simple query: the first word picks the row. */
static const Command COMMANDS[] = {
    {"pagestream_v2", 2, 2, cmd_pagestream_v2},
    {"pagestream_v3", 2, 2, cmd_pagestream_v3},
    {"basebackup", 2, 4, cmd_basebackup},
};

static void on_query(PgConn *c, const PgwireMsg *m)
{
    Err err = {0};
    const char *sql;
    if (!pgwire_decode_cstring(m, &sql, &err)) {
        protocol_violation(c, err.msg);
        return;
    }
    char buf[512];
    if (!str_copy(buf, sizeof(buf), sql)) {
        send_error(c, PGWIRE_SQLSTATE_SYNTAX_ERROR, "query too long", true);
        return;
    }
    char *argv[MAX_ARGS + 1];
    size_t argc = 0;
    char *save = NULL;
    for (char *w = strtok_r(buf, " \t\r\n;", &save); w != NULL;
         w = strtok_r(NULL, " \t\r\n;", &save)) {
        if (argc == MAX_ARGS + 1) {
            send_error(c, PGWIRE_SQLSTATE_SYNTAX_ERROR, "too many arguments", true);
            return;
        }
        argv[argc++] = w;
    }
    if (argc == 0) {
        pgwire_put_empty_query_response(&c->wbuf);
        pgwire_put_ready_for_query(&c->wbuf);
        conn_send(c);
        return;
    }
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++) {
        const Command *cmd = &COMMANDS[i];
        if (strcmp(argv[0], cmd->name) != 0)
            continue;
        if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args) {
            char msg[128];
            str_printf(msg, sizeof(msg), "%s: wrong number of arguments", cmd->name);
            send_error(c, PGWIRE_SQLSTATE_SYNTAX_ERROR, msg, true);
            return;
        }
        cmd->run(c, argv, argc);
        return;
    }
    char q[STR_QUOTE_SIZE], msg[STR_QUOTE_SIZE + 64];
    str_printf(msg, sizeof(msg), "unsupported command \"%s\"", str_quote(argv[0], q));
    send_error(c, PGWIRE_SQLSTATE_SYNTAX_ERROR, msg, true);
}

/* ---- startup and authentication ---- */

static void send_ready(PgConn *c)
{
    pgwire_put_auth_ok(&c->wbuf);
    pgwire_put_parameter_status(&c->wbuf, "server_version", "15");
    pgwire_put_parameter_status(&c->wbuf, "client_encoding", "UTF8");
    pgwire_put_ready_for_query(&c->wbuf);
    conn_send(c);
    c->state = PGC_READY;
}

static void on_startup(PgConn *c, const PgwireMsg *m)
{
    Err err = {0};
    PgwireStartup s;
    if (!pgwire_decode_startup(m, &s, &err)) {
        protocol_violation(c, err.msg);
        return;
    }
    if (s.code == PGWIRE_SSL_REQUEST || s.code == PGWIRE_GSSENC_REQUEST) {
        evbuffer_add(conn_out(c), "N", 1); /* no encryption; the client goes on in plain text */
        return;
    }
    if (s.code == PGWIRE_CANCEL_REQUEST) {
        conn_close(c, "cancel request (nothing to cancel)");
        return;
    }
    if (c->ps->app->auth == NULL) {
        send_ready(c);
        return;
    }
    pgwire_put_auth_cleartext(&c->wbuf);
    conn_send(c);
    c->state = PGC_PASSWORD;
}

static void on_password(PgConn *c, const PgwireMsg *m)
{
    Err err = {0};
    const char *jwt;
    if (m->type != 'p') {
        protocol_violation(c, "expected a password message");
        return;
    }
    if (!pgwire_decode_cstring(m, &jwt, &err)) {
        protocol_violation(c, err.msg);
        return;
    }
    if (!auth_verify(c->ps->app->auth, jwt, &c->claims, &err)) {
        fatal(c, PGWIRE_SQLSTATE_INVALID_PASSWORD, err.msg);
        return;
    }
    c->auth_ok = true;
    send_ready(c);
}

/* ---- input ---- */

/* on_message: one framed message in the connection's state. */
static void on_message(PgConn *c, const PgwireMsg *m)
{
    switch (c->state) {
    case PGC_STARTUP:
        on_startup(c, m);
        return;
    case PGC_PASSWORD:
        on_password(c, m);
        return;
    case PGC_READY:
        if (m->type == 'Q')
            on_query(c, m);
        else if (m->type == 'X')
            conn_close(c, NULL);
        else
            protocol_violation(c, "unexpected message: only simple queries are served");
        return;
    case PGC_PAGESTREAM:
        if (m->type == 'd')
            on_copy_data(c, m);
        else if (m->type == 'c' || m->type == 'X')
            c->input_done = true;
        else
            protocol_violation(c, "unexpected message in a pagestream: expected CopyData");
        return;
    default:
        protocol_violation(c, "unexpected message");
        return;
    }
}

/* can_take_more: decode another message now? (pagestream: bounded in-flight and output) */
static bool can_take_more(PgConn *c)
{
    if (c->bev == NULL || c->close_after_flush || c->input_done)
        return false;
    if (c->state == PGC_BASEBACKUP || c->state == PGC_COPYOUT)
        return false;
    if (evbuffer_get_length(conn_out(c)) >= PAGE_SERVICE_OUTPUT_HIGH_WATER)
        return false;
    return !(c->state == PGC_PAGESTREAM && (c->q_len >= PAGE_SERVICE_MAX_IN_FLIGHT ||
                                            c->slru_in_flight >= PAGE_SERVICE_MAX_SLRU_IN_FLIGHT));
}

/* process_input: frame and handle the buffered messages while allowed, dispatch the pagestream
 * requests decoded, and read from the socket only while more can be taken. */
static void process_input(PgConn *c)
{
    if (c->bev == NULL)
        return;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (can_take_more(c)) {
        bool startup = c->state == PGC_STARTUP;
        size_t hdr = startup ? 4 : PGWIRE_HEADER_SIZE;
        size_t avail = evbuffer_get_length(in);
        size_t want = avail < hdr ? avail : hdr;
        uint32_t max = startup ? PGWIRE_STARTUP_MAX_LEN : PAGE_SERVICE_MAX_MESSAGE;
        PgwireMsg m;
        size_t used = 0;
        Err err = {0};
        const uint8_t *p = want ? evbuffer_pullup(in, (ev_ssize_t)want) : NULL;
        PgwireFrameResult r = pgwire_frame(p, want, startup, max, &m, &used, &err);
        if (r == PGWIRE_NEED_MORE && want == hdr) {
            size_t total = pgwire_frame_need(p, want, startup);
            if (avail < total)
                break;
            p = evbuffer_pullup(in, (ev_ssize_t)total);
            r = pgwire_frame(p, total, startup, max, &m, &used, &err);
        }
        if (r == PGWIRE_ERROR) {
            protocol_violation(c, err.msg);
            break;
        }
        if (r == PGWIRE_NEED_MORE)
            break;
        c->ops++; /* a message may close the connection: c must outlive this loop */
        on_message(c, &m);
        c->ops--;
        if (c->bev == NULL) { /* closed by the message (Terminate, CancelRequest) */
            if (c->ops == 0)
                conn_free(c);
            return;
        }
        evbuffer_drain(in, used);
    }
    if (c->bev == NULL)
        return;
    if (c->state == PGC_PAGESTREAM) {
        dispatch(c);
        flush(c);
        if (c->input_done && c->q_len == 0) {
            /* CopyDone or Terminate: every answer is in the output; close once it is sent
             * (bufferevent_free would drop what the socket has not taken yet) */
            if (evbuffer_get_length(conn_out(c)) == 0) {
                conn_close(c, NULL);
                return;
            }
            c->close_after_flush = true;
            bufferevent_disable(c->bev, EV_READ);
            return;
        }
    }
    if (can_take_more(c))
        bufferevent_enable(c->bev, EV_READ);
    else
        bufferevent_disable(c->bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    process_input(arg);
}

/* on_write: the output fell below the low-water mark (or is empty). */
static void on_write(struct bufferevent *bev, void *arg)
{
    PgConn *c = arg;
    if (c->close_after_flush) {
        if (evbuffer_get_length(conn_out(c)) == 0)
            conn_close(c, NULL);
        return;
    }
    if (c->state == PGC_COPYOUT)
        copyout_pump(c);
    else
        process_input(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    PgConn *c = arg;
    if (what & BEV_EVENT_TIMEOUT)
        conn_close(c, (what & BEV_EVENT_WRITING) ? "write timeout (the client does not read)"
                                                 : "idle timeout");
    else if (what & BEV_EVENT_ERROR)
        conn_close(c, "connection error");
    else if (what & BEV_EVENT_EOF)
        conn_close(c, NULL);
}

/* ---- connections ---- */

/* conn_counted_out: a connection accepted by on_accept is gone (closed, or never opened). */
static void conn_counted_out(PageService *ps, PsThread *t)
{
    __atomic_fetch_sub(&ps->n_conns, 1, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&t->n_conns, 1, __ATOMIC_RELAXED);
    metric_gauge_add(ps->m.connections, -1);
}

static void conn_unlink(PgConn *c)
{
    PsThread *t = c->t;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    conn_counted_out(c->ps, t);
}

/* conn_close: free the socket now; the struct once no operation is in flight. */
static void conn_close(PgConn *c, const char *why)
{
    if (c->bev == NULL)
        return;
    if (why != NULL)
        log_info("page service: %s: closing: %s", c->peer, why);
    bufferevent_free(c->bev);
    c->bev = NULL;
    conn_unlink(c);
    flush(c); /* drops the answered requests' batch references */
    if (c->state != PGC_BASEBACKUP)
        basebackup_finish(c);
    if (c->ops == 0) {
        conn_free(c);
        return;
    }
    c->zombie = true;
    c->next = c->t->zombies;
    if (c->next)
        c->next->prev = c;
    c->t->zombies = c;
}

/* send_fatal_now: a FATAL ErrorResponse written straight to the socket, best effort and without
 * waiting (the socket is closed right after; the client may not even read it). */
static void send_fatal_now(evutil_socket_t fd, const char *sqlstate, const char *msg)
{
    StrBuf b = STRBUF_INIT;
    pgwire_put_error(&b, "FATAL", sqlstate, msg);
    ssize_t n = send(fd, b.data, b.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
    strbuf_finish(&b);
}

static void refuse_connection(PageService *ps, evutil_socket_t fd)
{
    send_fatal_now(fd, PGWIRE_SQLSTATE_TOO_MANY_CONNECTIONS, "sorry, too many clients already");
    evutil_closesocket(fd);
    metric_counter_add(ps->m.refused, 1);
}

/* conn_open: on the connection's thread: its bufferevent, on that thread's loop. */
static void conn_open(void *arg)
{
    PgConn *c = arg;
    PsThread *t = c->t;
    PageService *ps = c->ps;
    struct bufferevent *bev =
        t->stopping ? NULL
                    : bufferevent_socket_new(t->base, c->fd,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (bev == NULL) {
        evutil_closesocket(c->fd);
        conn_counted_out(ps, t);
        free(c);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->bev = bev;
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(bev, EV_WRITE, PAGE_SERVICE_OUTPUT_HIGH_WATER / 2, 0);
    bufferevent_set_max_single_write(bev, PAGE_SERVICE_MAX_SINGLE_WRITE);
    bufferevent_set_max_single_read(bev, PAGE_SERVICE_MAX_SINGLE_READ);
    set_timeouts(c, ps->cfg.handshake_timeout_ms);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* pick_thread: the thread with the fewest connections, ties going round. */
static PsThread *pick_thread(PageService *ps)
{
    PsThread *best = NULL;
    size_t best_n = SIZE_MAX;
    for (size_t k = 0; k < ps->n_threads; k++) {
        PsThread *t = &ps->threads[(ps->next_thread + k) % ps->n_threads];
        size_t n = __atomic_load_n(&t->n_conns, __ATOMIC_RELAXED);
        if (n < best_n) {
            best = t;
            best_n = n;
        }
    }
    ps->next_thread = (ps->next_thread + 1) % ps->n_threads;
    return best;
}

/* on_accept: main loop: count the connection in (or refuse it) and hand it to a thread. */
static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    PageService *ps = arg;
    if (ps->stopping ||
        __atomic_load_n(&ps->n_conns, __ATOMIC_RELAXED) >= ps->cfg.max_connections) {
        refuse_connection(ps, fd);
        return;
    }
    PgConn *c = xcalloc(1, sizeof(*c));
    c->ps = ps;
    c->t = pick_thread(ps);
    c->fd = fd;
    c->bb_fd = -1;
    c->state = PGC_STARTUP;
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    str_printf(c->peer, sizeof(c->peer), "%s:%u", host, (unsigned)port);
    __atomic_fetch_add(&ps->n_conns, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&c->t->n_conns, 1, __ATOMIC_RELAXED);
    metric_gauge_add(ps->m.connections, 1);
    metric_counter_add(ps->m.accepted, 1);
    loop_mailbox_post(c->t->mailbox, &c->mb, conn_open, c);
}

static void on_listener_error(struct evconnlistener *lev, void *arg)
{
    int e = EVUTIL_SOCKET_ERROR();
    log_warn("page service: accept failed: %s", evutil_socket_error_to_string(e));
}

static void register_metrics(PageService *ps)
{
    MetricsRegistry *r = ps->app->metrics;
    for (int t = 0; t < PAGESTREAM_TAG_COUNT; t++) {
        char labels[64];
        str_printf(labels, sizeof(labels), "type=\"%s\"", pagestream_tag_name((PagestreamTag)t));
        ps->m.requests[t] = metrics_counter(r, "pageserver_page_service_requests_total",
                                            "Pagestream requests received, by type", labels);
    }
    ps->m.errors = metrics_counter(r, "pageserver_page_service_request_errors_total",
                                   "Pagestream requests answered with an error response", NULL);
    ps->m.latency = metrics_histogram(r, "pageserver_page_service_request_seconds",
                                      "Pagestream request latency, from decoding to the answer "
                                      "being queued on the connection",
                                      NULL, NULL, 0);
    static const double BATCH_BUCKETS[] = {1, 2, 4, 8, 16, 32, 64};
    ps->m.batch_size = metrics_histogram(
        r, "pageserver_page_service_batch_size", "Requests per read batch (one worker round trip)",
        NULL, BATCH_BUCKETS, sizeof(BATCH_BUCKETS) / sizeof(BATCH_BUCKETS[0]));
    ps->m.batches_on_thread =
        metrics_counter(r, "pageserver_page_service_batches_total",
                        "Read batches, by where they were read: on the connection's own thread "
                        "from memory (thread) or through the daemon's loop (loop)",
                        "path=\"thread\"");
    ps->m.batches_on_loop = metrics_counter(r, "pageserver_page_service_batches_total",
                                            "Read batches, by where they were read: on the "
                                            "connection's own thread from memory (thread) or "
                                            "through the daemon's loop (loop)",
                                            "path=\"loop\"");
    ps->m.bytes_out = metrics_counter(r, "pageserver_page_service_bytes_out_total",
                                      "Bytes queued to page service clients", NULL);
    ps->m.connections = metrics_gauge(r, "pageserver_page_service_connections",
                                      "Open page service connections", NULL);
    ps->m.accepted = metrics_counter(r, "pageserver_page_service_connections_accepted_total",
                                     "Page service connections accepted", NULL);
    ps->m.refused = metrics_counter(r, "pageserver_page_service_connections_refused_total",
                                    "Page service connections refused (cap or shutdown)", NULL);
    ps->m.protocol_errors =
        metrics_counter(r, "pageserver_page_service_protocol_errors_total",
                        "Connections closed for a protocol violation (malformed or oversized "
                        "message)",
                        NULL);
    ps->m.basebackups = metrics_counter(r, "pageserver_page_service_basebackups_total",
                                        "basebackup commands started", NULL);
}

/* ---- threads ---- */

static void thread_stop(void *arg)
{
    PsThread *t = arg;
    t->stopping = true;
    while (t->conns != NULL) {
        PgConn *c = t->conns;
        /* only between messages: nothing else may be half written */
        if (c->state != PGC_STARTUP && c->state != PGC_PASSWORD &&
            evbuffer_get_length(conn_out(c)) == 0)
            send_fatal_now(bufferevent_getfd(c->bev), PGWIRE_SQLSTATE_ADMIN_SHUTDOWN,
                           "terminating connection: the pageserver is shutting down");
        conn_close(c, NULL);
    }
}

static void thread_exit(void *arg)
{
    PsThread *t = arg;
    event_base_loopbreak(t->base);
}

/* view_sweep: drop the read views that went stale (a connection between batches holds its view
 * and, through it, layer references). */
static void view_sweep(evutil_socket_t fd, short what, void *arg)
{
    PsThread *t = arg;
    for (PgConn *c = t->conns; c != NULL; c = c->next) {
        if (c->view != NULL && !read_view_current(c->view)) {
            read_view_free(c->view);
            c->view = NULL;
        }
    }
}

static void *thread_main(void *arg)
{
    PsThread *t = arg;
    event_base_loop(t->base, 0); /* the mailbox's event keeps it running until thread_exit */
    return NULL;
}

/* threads_start: make the threads' loops and mailboxes and start them (signals stay with the
 * main thread: blocked in the page service threads). */
static bool threads_start(PageService *ps, size_t n, Err *err)
{
    ps->threads = xcalloc(n, sizeof(*ps->threads));
    ps->n_threads = n;
    for (size_t i = 0; i < n; i++) {
        PsThread *t = &ps->threads[i];
        t->ps = ps;
        t->base = event_base_new();
        if (t->base == NULL) {
            err_set(err, ERR_INTERNAL, "page service: cannot make an event loop");
            return false;
        }
        if (!loop_mailbox_new(t->base, &t->mailbox, err))
            return false;
        t->sweep = event_new(t->base, -1, EV_PERSIST, view_sweep, t);
        struct timeval tv = {.tv_sec = PAGE_SERVICE_VIEW_SWEEP_MS / 1000,
                             .tv_usec = (PAGE_SERVICE_VIEW_SWEEP_MS % 1000) * 1000};
        if (t->sweep == NULL || event_add(t->sweep, &tv) != 0) {
            err_set(err, ERR_INTERNAL, "page service: cannot make a timer");
            return false;
        }
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        PsThread *t = &ps->threads[i];
        int rc = pthread_create(&t->thread, NULL, thread_main, t);
        if (rc != 0) {
            err_set(err, ERR_INTERNAL, "page service: cannot start a thread: %s", strerror(rc));
            ok = false;
        }
        t->started = rc == 0;
        if (t->started) {
            char name[16]; /* the kernel's limit, with the NUL */
            str_printf(name, sizeof(name), "pagesvc-%zu", i);
            pthread_setname_np(t->thread, name);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ok;
}

/* threads_free: main loop: end the threads (after what their mailboxes hold), join them, then
 * free what they leave: connections whose reads never completed (a read parked for its LSN is
 * dropped at shutdown). */
static void threads_free(PageService *ps)
{
    for (size_t i = 0; i < ps->n_threads; i++) {
        PsThread *t = &ps->threads[i];
        if (t->started)
            loop_mailbox_post(t->mailbox, &t->exit_item, thread_exit, t);
    }
    for (size_t i = 0; i < ps->n_threads; i++) {
        PsThread *t = &ps->threads[i];
        if (t->started)
            pthread_join(t->thread, NULL);
        t->started = false;
    }
    /* the threads are gone: what is left is this thread's alone */
    for (size_t i = 0; i < ps->n_threads; i++) {
        PsThread *t = &ps->threads[i];
        if (t->mailbox != NULL)
            loop_mailbox_run(t->mailbox); /* e.g. a connection to open: closed, as stopping */
        thread_stop(t);
        while (t->zombies != NULL) {
            PgConn *c = t->zombies;
            basebackup_finish(c);
            conn_free(c);
        }
        loop_mailbox_free(t->mailbox);
        if (t->sweep != NULL)
            event_free(t->sweep);
        /* frees the closed connections' buffers (their finalizers were left to the loop), which
         * lets go of the answers they referenced: their batches go to the pool */
        if (t->base != NULL)
            event_base_free(t->base);
        while (t->free_batches != NULL) {
            PsBatch *b = t->free_batches;
            t->free_batches = b->next_free;
            free(b);
        }
    }
    free(ps->threads);
    ps->threads = NULL;
    ps->n_threads = 0;
}

/* page_service_threads: cfg's thread count, 0 resolved (online CPUs, at most
 * PAGE_SERVICE_DEFAULT_THREADS_MAX). */
static size_t page_service_threads(const PageServiceConfig *cfg)
{
    if (cfg->threads > 0)
        return cfg->threads;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    return cpus < PAGE_SERVICE_DEFAULT_THREADS_MAX ? (size_t)cpus
                                                   : (size_t)PAGE_SERVICE_DEFAULT_THREADS_MAX;
}

bool page_service_start(PageserverApp *app, const PageServiceConfig *cfg, PageService **out,
                        Err *err)
{
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICHOST};
    struct evutil_addrinfo *ai = NULL;
    char port[8];
    str_printf(port, sizeof(port), "%u", (unsigned)cfg->listen.port);
    int rc = evutil_getaddrinfo(cfg->listen.host[0] ? cfg->listen.host : NULL, port, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        err_set(err, ERR_INTERNAL, "page service: cannot resolve %s: %s", cfg->listen.host,
                evutil_gai_strerror(rc));
        return false;
    }
    PageService *ps = xcalloc(1, sizeof(*ps));
    ps->app = app;
    ps->cfg = *cfg;
    ps->listener = evconnlistener_new_bind(
        app->base, on_accept, ps, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        PAGE_SERVICE_LISTEN_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (ps->listener == NULL) {
        char hp[HOST_MAX + 8];
        host_port_format(&cfg->listen, hp, sizeof(hp));
        err_set(err, ERR_INTERNAL, "page service: cannot listen on %s: %s", hp, strerror(errno));
        free(ps);
        return false;
    }
    evconnlistener_set_error_cb(ps->listener, on_listener_error);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(evconnlistener_get_fd(ps->listener), (struct sockaddr *)&ss, &len) == 0)
        ps->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
    register_metrics(ps);
    if (!loop_mailbox_new(app->base, &ps->mailbox, err) ||
        !threads_start(ps, page_service_threads(cfg), err)) {
        page_service_free(ps);
        return false;
    }
    *out = ps;
    return true;
}

uint16_t page_service_port(const PageService *ps)
{
    return ps->port;
}

void page_service_stop(PageService *ps)
{
    if (ps == NULL || ps->stopping)
        return;
    ps->stopping = true;
    if (ps->listener != NULL) {
        evconnlistener_free(ps->listener);
        ps->listener = NULL;
    }
    for (size_t i = 0; i < ps->n_threads; i++) {
        PsThread *t = &ps->threads[i];
        if (t->started)
            loop_mailbox_post(t->mailbox, &t->stop_item, thread_stop, t);
    }
}

void page_service_free(PageService *ps)
{
    if (ps == NULL)
        return;
    page_service_stop(ps);
    threads_free(ps);
    /* batches and basebackups still queued for the main loop belonged to connections freed
     * above */
    loop_mailbox_free(ps->mailbox);
    free(ps);
}
