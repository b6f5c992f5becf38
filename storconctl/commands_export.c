/*
 * commands_export.c: `storconctl timelines export` (docs/page-service.md "Export"): a complete
 * data directory (or tar) of a timeline at an LSN, read from every shard of the tenant.
 *
 *   1. storcon: where the shards are (GET /debug/v1/tenant/{id}/locate: page service addresses,
 *      shard count and stripe size), the LSN (--lsn, else the timeline's last_record_lsn from
 *      GET /v1/tenant/{id}/timeline/{tl}) and the relation listing at it
 *      (GET /v1/tenant/{id}/timeline/{tl}/relations?lsn=, passed through to shard 0);
 *   2. shard 0's page service: `basebackup <tenant> <timeline> <lsn>` (everything but relation
 *      data; init forks included), kept in an anonymous temporary file;
 *   3. the layout: the basebackup's entries (global/pg_control held back), then every relation
 *      fork but init forks as segment files of at most 1 GiB (<rel>[_fsm|_vm][.<n>]), created at
 *      their final size (a tar: their headers written and their data left as holes);
 *   4. the pages: every block is read with pagestream_v3 GetPage at the LSN from the shard that
 *      owns it (shared/key.h key_to_shard_number), by --connections threads per shard, each
 *      keeping up to EXPORT_PIPELINE requests in flight, and written at its place (pwrite);
 *      the v3 echo of every response is checked against the request;
 *   5. global/pg_control last, everything made durable (one syncfs), then OUTPUT.partial is
 *      renamed to OUTPUT and the parent directory fsynced. An interrupted export leaves only
 * OUTPUT.partial, which the next run removes; a failed one removes it itself. An existing OUTPUT is
 * refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/id.h"
#include "shared/key.h"
#include "shared/pg_paths.h"
#include "shared/pgwire.h"
#include "shared/str.h"
#include "shared/tar.h"

#include "storconctl/ctl.h"
#include "storconctl/pageclient.h"

#define EXPORT_PATH_MAX       4096
#define EXPORT_PIPELINE       64 /* GetPage requests in flight per connection */
#define EXPORT_CONNS_DEFAULT  2  /* connections per shard */
#define EXPORT_CONNS_MAX      16
#define EXPORT_PROGRESS_MS    200
#define EXPORT_COPY_CHUNK     (1u << 20)
#define EXPORT_BASEBACKUP_MAX (8ull << 30) /* bytes of basebackup accepted */
#define EXPORT_PG_CONTROL     "global/pg_control"
#define EXPORT_SEG_BYTES      ((uint64_t)RELSEG_BLOCKS * BLCKSZ)
#define EXPORT_DIR_MODE       0700
#define EXPORT_FILE_MODE      0600

typedef struct ExRel {
    RelTag rel;
    uint32_t nblocks;
    uint32_t n_segs;
    uint64_t *seg_off; /* tar: where each segment file's data starts */
} ExRel;

/* Run: blocks [start, start + count) of one relation fork, all on one shard (one stripe). */
typedef struct Run {
    uint32_t rel; /* index into Export.rels */
    uint32_t start, count;
} Run;

typedef struct Shard {
    char host[256];
    int port;
    Run *runs;
    size_t n_runs, cap_runs;
    atomic_size_t next; /* the next run to take */
} Shard;

typedef struct Export {
    /* what */
    char tenant[ID_STR_SIZE], timeline[ID_STR_SIZE];
    Lsn lsn;
    const char *password;
    bool tar;
    char out[EXPORT_PATH_MAX], partial[EXPORT_PATH_MAX];
    int tar_fd;
    int dir_fd; /* OUTPUT.partial (directory form), open from its creation to its syncfs */
    int64_t mtime;
    /* where */
    ShardCount count;
    uint32_t stripe;
    Shard *shards;
    size_t n_shards;
    ExRel *rels;
    size_t n_rels;
    uint8_t control[8192];
    size_t control_len;
    bool have_control;
    /* progress */
    uint64_t pages_total;
    atomic_uint_fast64_t pages_done;
    atomic_bool failed;
    pthread_mutex_t err_mu;
    Err err; /* the first failure */
} Export;

static void export_fail(Export *x, const Err *err)
{
    pthread_mutex_lock(&x->err_mu);
    if (!atomic_load(&x->failed)) {
        x->err = *err;
        atomic_store(&x->failed, true);
    }
    pthread_mutex_unlock(&x->err_mu);
}

static bool set_errno(Err *err, const char *what, const char *path)
{
    err_set(err, ERR_INTERNAL, "%s %s: %s", what, path, strerror(errno));
    return false;
}

/* ---- storcon ---- */

/* get_json: GET path from storcon as a JSON object; false after printing why (*code). */
static bool get_json(Ctl *ctl, const char *path, json_t **out, int *code)
{
    CtlResponse resp;
    ctl_http(ctl, "GET", path, NULL, &resp);
    if (!ctl_response_ok(&resp)) {
        *code = ctl_report_failure(ctl, "GET", path, &resp);
        ctl_response_finish(&resp);
        return false;
    }
    *out = json_loadb(resp.body, resp.body_len, 0, NULL);
    ctl_response_finish(&resp);
    if (!json_is_object(*out)) {
        fprintf(stderr, "storconctl: GET %s: the answer is not a JSON object\n", path);
        json_decref(*out);
        *code = CTL_EXIT_ERROR;
        return false;
    }
    return true;
}

static bool u32_field(const json_t *o, const char *name, uint64_t max, uint32_t *out)
{
    const json_t *v = json_object_get(o, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return false;
    *out = (uint32_t)json_integer_value(v);
    return true;
}

static bool load_locations(Ctl *ctl, Export *x, int *code)
{
    char path[256];
    (void)str_printf(path, sizeof(path), "/debug/v1/tenant/%s/locate", x->tenant);
    json_t *loc = NULL;
    if (!get_json(ctl, path, &loc, code))
        return false;
    const json_t *params = json_object_get(loc, "shard_params");
    const json_t *shards = json_object_get(loc, "shards");
    uint32_t count = 0, stripe = 0;
    bool ok = u32_field(params, "count", 255, &count) &&
              u32_field(params, "stripe_size", UINT32_MAX, &stripe) && stripe > 0 &&
              json_is_array(shards) && json_array_size(shards) == (count > 0 ? count : 1);
    x->count = (ShardCount)count;
    x->stripe = stripe;
    x->n_shards = count > 0 ? count : 1;
    x->shards = xcalloc(x->n_shards, sizeof(*x->shards));
    size_t i;
    const json_t *s;
    json_array_foreach(shards, i, s)
    {
        if (!ok)
            break;
        TenantShardId tsid;
        Err err = {0};
        const char *id = json_string_value(json_object_get(s, "shard_id"));
        const char *host = json_string_value(json_object_get(s, "listen_pg_addr"));
        uint32_t port = 0;
        ok = id != NULL && host != NULL && tsid_parse(id, &tsid, &err) &&
             tsid.number < x->n_shards && u32_field(s, "listen_pg_port", 65535, &port) && port > 0;
        if (ok) {
            Shard *sh = &x->shards[tsid.number];
            (void)str_copy(sh->host, sizeof(sh->host), host);
            sh->port = (int)port;
        }
    }
    for (i = 0; ok && i < x->n_shards; i++)
        ok = x->shards[i].port != 0;
    json_decref(loc);
    if (!ok) {
        fprintf(stderr, "storconctl: GET %s: unexpected answer (shards, shard_params)\n", path);
        *code = CTL_EXIT_ERROR;
    }
    return ok;
}

static bool load_lsn(Ctl *ctl, Export *x, int *code)
{
    char path[256];
    (void)str_printf(path, sizeof(path), "/v1/tenant/%s/timeline/%s", x->tenant, x->timeline);
    json_t *info = NULL;
    if (!get_json(ctl, path, &info, code))
        return false;
    Err err = {0};
    const char *s = json_string_value(json_object_get(info, "last_record_lsn"));
    bool ok = s != NULL && lsn_parse(s, &x->lsn, &err);
    json_decref(info);
    if (!ok) {
        fprintf(stderr, "storconctl: GET %s: no valid last_record_lsn\n", path);
        *code = CTL_EXIT_ERROR;
    }
    return ok;
}

static int cmp_rel(const void *a, const void *b)
{
    const RelTag *x = &((const ExRel *)a)->rel, *y = &((const ExRel *)b)->rel;
    if (x->spc != y->spc)
        return x->spc < y->spc ? -1 : 1;
    if (x->db != y->db)
        return x->db < y->db ? -1 : 1;
    if (x->rel != y->rel)
        return x->rel < y->rel ? -1 : 1;
    return (int)x->fork - (int)y->fork;
}

/* load_relations: every relation fork but init forks (those come with the basebackup). */
static bool load_relations(Ctl *ctl, Export *x, int *code)
{
    char path[256], lsn[LSN_STR_SIZE];
    lsn_format(x->lsn, lsn);
    (void)str_printf(path, sizeof(path), "/v1/tenant/%s/timeline/%s/relations?lsn=%s", x->tenant,
                     x->timeline, lsn);
    json_t *list = NULL;
    if (!get_json(ctl, path, &list, code))
        return false;
    const json_t *rels = json_object_get(list, "relations");
    bool ok = json_is_array(rels);
    x->rels = xcalloc(json_array_size(rels) + 1, sizeof(*x->rels));
    size_t i;
    const json_t *r;
    json_array_foreach(rels, i, r)
    {
        if (!ok)
            break;
        ExRel e = {0};
        uint32_t fork = 0;
        ok = u32_field(r, "spcnode", UINT32_MAX, &e.rel.spc) &&
             u32_field(r, "dbnode", UINT32_MAX, &e.rel.db) &&
             u32_field(r, "relnode", UINT32_MAX, &e.rel.rel) && e.rel.rel != 0 &&
             u32_field(r, "forknum", FORK_INIT, &fork) &&
             u32_field(r, "nblocks", UINT32_MAX - 1, &e.nblocks) &&
             (e.rel.spc == DEFAULTTABLESPACE_OID || e.rel.spc == GLOBALTABLESPACE_OID);
        e.rel.fork = (uint8_t)fork;
        if (ok && fork != FORK_INIT) {
            e.n_segs = e.nblocks == 0
                           ? 1
                           : (uint32_t)(((uint64_t)e.nblocks + RELSEG_BLOCKS - 1) / RELSEG_BLOCKS);
            x->rels[x->n_rels++] = e;
            x->pages_total += e.nblocks;
        }
    }
    json_decref(list);
    if (!ok) {
        fprintf(stderr, "storconctl: GET %s: unexpected relation entry %zu\n", path, i);
        *code = CTL_EXIT_ERROR;
        return false;
    }
    qsort(x->rels, x->n_rels, sizeof(*x->rels), cmp_rel);
    return true;
}

/* plan_runs: each stripe of each relation fork goes to the shard owning it. */
static void plan_runs(Export *x)
{
    for (size_t i = 0; i < x->n_rels; i++) {
        const ExRel *e = &x->rels[i];
        for (uint32_t b = 0; b < e->nblocks;) {
            uint32_t end = (uint32_t)(((uint64_t)b / x->stripe + 1) * x->stripe);
            if (end > e->nblocks || end <= b)
                end = e->nblocks;
            Key k = key_rel_block(e->rel.spc, e->rel.db, e->rel.rel, e->rel.fork, b);
            Shard *s = &x->shards[key_to_shard_number(x->count, x->stripe, &k)];
            if (s->n_runs == s->cap_runs) {
                s->cap_runs = s->cap_runs ? 2 * s->cap_runs : 64;
                s->runs = xrealloc(s->runs, s->cap_runs * sizeof(*s->runs));
            }
            s->runs[s->n_runs++] = (Run){(uint32_t)i, b, end - b};
            b = end;
        }
    }
}

/* ---- the output ---- */

/* TarSink: the output tar written at explicit offsets; while skipping, the relation data is
 * only counted (the pages are written there later). */
typedef struct TarSink {
    int fd;
    uint64_t off;
    bool skip;
    const char *path;
} TarSink;

static bool tar_sink_write(void *ctx, const void *data, size_t len, Err *err)
{
    TarSink *s = ctx;
    if (!s->skip) {
        const uint8_t *p = data;
        size_t done = 0;
        while (done < len) {
            ssize_t n = pwrite(s->fd, p + done, len - done, (off_t)(s->off + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return set_errno(err, "write", s->path);
            done += (size_t)n;
        }
    }
    s->off += len;
    return true;
}

typedef struct Layout {
    Export *x;
    TarWriter w;
    TarSink sink;
} Layout;

static bool join_path(const Export *x, const char *name, char *out, Err *err)
{
    if (!str_printf(out, EXPORT_PATH_MAX, "%s/%s", x->partial, name)) {
        err_set(err, ERR_BAD_REQUEST, "%s/%s: path too long", x->partial, name);
        return false;
    }
    return true;
}

/* write_file: a new file of the data directory (made durable by sync_output). */
static bool write_file(const char *path, const void *data, size_t len, Err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, EXPORT_FILE_MODE);
    if (fd < 0)
        return set_errno(err, "create", path);
    bool ok = fs_write_all(fd, data, len);
    if (!ok)
        (void)set_errno(err, "write", path);
    close(fd);
    return ok;
}

/* on_basebackup_entry: one entry of the basebackup into the output (pg_control held back). */
static bool on_basebackup_entry(void *ctx, TarReader *r, const TarEntry *e, Err *err)
{
    Layout *l = ctx;
    Export *x = l->x;
    if (e->type == TAR_ENTRY_FILE && strcmp(e->name, EXPORT_PG_CONTROL) == 0) {
        if (e->size != sizeof(x->control)) {
            err_set(err, ERR_INTERNAL, "basebackup: %s has %" PRIu64 " bytes", e->name, e->size);
            return false;
        }
        size_t got = 0;
        x->control_len = 0;
        do {
            if (!tar_reader_read_data(r, x->control + x->control_len,
                                      sizeof(x->control) - x->control_len, &got, err))
                return false;
            x->control_len += got;
        } while (got > 0 && x->control_len < sizeof(x->control));
        x->have_control = true;
        x->mtime = e->mtime;
        return true;
    }
    if (x->tar) {
        if (e->type == TAR_ENTRY_DIR)
            return tar_writer_add_dir(&l->w, e->name, e->mode, e->mtime, err);
        if (!tar_writer_add_file_stream(&l->w, e->name, e->mode, e->mtime, e->size, err))
            return false;
    }
    char path[EXPORT_PATH_MAX];
    if (!join_path(x, e->name, path, err))
        return false;
    if (e->type == TAR_ENTRY_DIR) {
        if (!x->tar && mkdir(path, EXPORT_DIR_MODE) != 0 && errno != EEXIST)
            return set_errno(err, "mkdir", path);
        return true;
    }
    int fd = -1;
    if (!x->tar && (fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, EXPORT_FILE_MODE)) < 0)
        return set_errno(err, "create", path);
    static _Thread_local uint8_t buf[EXPORT_COPY_CHUNK];
    bool ok = true;
    for (;;) {
        size_t got = 0;
        if (!(ok = tar_reader_read_data(r, buf, sizeof(buf), &got, err)) || got == 0)
            break;
        if (x->tar)
            ok = tar_writer_write_data(&l->w, buf, got, err);
        else if (!(ok = fs_write_all(fd, buf, got)))
            (void)set_errno(err, "write", path);
        if (!ok)
            break;
    }
    if (x->tar)
        return ok && tar_writer_end_file(&l->w, err);
    close(fd); /* made durable by sync_output */
    return ok;
}

/* add_relation_files: every segment file at its final size (a tar: header and a hole). */
static bool add_relation_files(Layout *l, Err *err)
{
    Export *x = l->x;
    static const uint8_t ZEROS[EXPORT_COPY_CHUNK];
    for (size_t i = 0; i < x->n_rels; i++) {
        ExRel *e = &x->rels[i];
        e->seg_off = xcalloc(e->n_segs, sizeof(*e->seg_off));
        for (uint32_t s = 0; s < e->n_segs; s++) {
            uint64_t first = (uint64_t)s * RELSEG_BLOCKS;
            uint64_t blocks =
                e->nblocks - first < RELSEG_BLOCKS ? e->nblocks - first : RELSEG_BLOCKS;
            if (e->nblocks == 0)
                blocks = 0;
            uint64_t size = blocks * BLCKSZ;
            char name[PG_PATH_MAX], path[EXPORT_PATH_MAX];
            pg_rel_file_path(e->rel.spc, e->rel.db, e->rel.rel, e->rel.fork, s, name);
            if (x->tar) {
                if (!tar_writer_add_file_stream(&l->w, name, EXPORT_FILE_MODE, x->mtime, size, err))
                    return false;
                e->seg_off[s] = l->sink.off;
                l->sink.skip = true;
                for (uint64_t done = 0; done < size;) {
                    size_t n = size - done < sizeof(ZEROS) ? (size_t)(size - done) : sizeof(ZEROS);
                    if (!tar_writer_write_data(&l->w, ZEROS, n, err))
                        return false;
                    done += n;
                }
                l->sink.skip = false;
                if (!tar_writer_end_file(&l->w, err))
                    return false;
                continue;
            }
            if (!join_path(x, name, path, err))
                return false;
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, EXPORT_FILE_MODE);
            if (fd < 0)
                return set_errno(err, "create", path);
            bool ok = ftruncate(fd, (off_t)size) == 0;
            close(fd);
            if (!ok)
                return set_errno(err, "ftruncate", path);
        }
    }
    return true;
}

/* build_layout: the basebackup's entries, the relation files, and in a tar pg_control and the
 * end of the archive (a data directory gets pg_control after the pages). */
static bool build_layout(Export *x, int bb_fd, Err *err)
{
    Layout l = {.x = x, .sink = {.fd = x->tar_fd, .path = x->partial}};
    tar_writer_init(&l.w, tar_sink_write, &l.sink);
    if (lseek(bb_fd, 0, SEEK_SET) != 0)
        return set_errno(err, "seek", "the basebackup");
    TarLimits limits = {.max_total_bytes = EXPORT_BASEBACKUP_MAX};
    TarReader *r = tar_reader_new(tar_fd_read, &bb_fd, &limits);
    bool ok = tar_reader_foreach(r, on_basebackup_entry, &l, err);
    tar_reader_free(r);
    if (ok && (!x->have_control || x->control_len != sizeof(x->control))) {
        err_set(err, ERR_INTERNAL, "the basebackup has no complete %s", EXPORT_PG_CONTROL);
        return false;
    }
    if (!ok) {
        err_prefix(err, "basebackup: ");
        return false;
    }
    if (!add_relation_files(&l, err))
        return false;
    if (!x->tar)
        return true;
    return tar_writer_add_file(&l.w, EXPORT_PG_CONTROL, EXPORT_FILE_MODE, x->mtime, x->control,
                               sizeof(x->control), err) &&
           tar_writer_finish(&l.w, err);
}

/* fetch_basebackup: shard 0's basebackup at the LSN into fd. */
static bool fetch_basebackup(Export *x, int fd, Err *err)
{
    PageConn c;
    char q[256], lsn[LSN_STR_SIZE];
    lsn_format(x->lsn, lsn);
    (void)str_printf(q, sizeof(q), "basebackup %s %s %s", x->tenant, x->timeline, lsn);
    bool ok = page_conn_open(&c, x->shards[0].host, x->shards[0].port, x->password, err) &&
              page_conn_query(&c, q, 'H', err);
    uint64_t total = 0;
    while (ok) {
        PgwireMsg m;
        if (!(ok = page_conn_next(&c, &m, err)))
            break;
        if (m.type == 'c' || m.type == 'C' || m.type == 'Z') {
            if (m.type == 'Z')
                break;
            continue;
        }
        if (m.type != 'd') {
            err_set(err, ERR_INTERNAL, "basebackup: unexpected message '%c'", m.type);
            ok = false;
            break;
        }
        total += m.len;
        if (total > EXPORT_BASEBACKUP_MAX) {
            err_set(err, ERR_PAYLOAD_TOO_LARGE, "basebackup: more than %llu bytes",
                    (unsigned long long)EXPORT_BASEBACKUP_MAX);
            ok = false;
        } else if (!fs_write_all(fd, m.payload, m.len)) {
            ok = set_errno(err, "write", "the basebackup's temporary file");
        }
    }
    page_conn_close(&c);
    return ok;
}

/* ---- the pages ---- */

typedef struct Worker {
    Export *x;
    Shard *shard;
    pthread_t thread;
    /* dir mode: the segment file open now */
    int fd;
    uint32_t fd_rel, fd_seg;
} Worker;

typedef struct InFlight {
    uint32_t rel, blkno;
} InFlight;

static bool put_page(Worker *w, uint32_t rel_i, uint32_t blkno, const uint8_t *page, Err *err)
{
    Export *x = w->x;
    const ExRel *e = &x->rels[rel_i];
    uint32_t seg = blkno / RELSEG_BLOCKS;
    uint64_t off = (uint64_t)(blkno % RELSEG_BLOCKS) * BLCKSZ;
    int fd = x->tar_fd;
    char path[EXPORT_PATH_MAX];
    if (x->tar) {
        off += e->seg_off[seg];
        (void)str_copy(path, sizeof(path), x->partial);
    } else {
        char name[PG_PATH_MAX];
        pg_rel_file_path(e->rel.spc, e->rel.db, e->rel.rel, e->rel.fork, seg, name);
        if (!join_path(x, name, path, err))
            return false;
        if (w->fd < 0 || w->fd_rel != rel_i || w->fd_seg != seg) {
            if (w->fd >= 0)
                close(w->fd);
            w->fd = open(path, O_WRONLY | O_CLOEXEC);
            if (w->fd < 0)
                return set_errno(err, "open", path);
            w->fd_rel = rel_i;
            w->fd_seg = seg;
        }
        fd = w->fd;
    }
    size_t done = 0;
    while (done < BLCKSZ) {
        ssize_t n = pwrite(fd, page + done, BLCKSZ - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return set_errno(err, "write", path);
        done += (size_t)n;
    }
    return true;
}

/* take_run: the shard's next run, false when there is none (or the export failed). */
static bool take_run(Worker *w, Run *out)
{
    if (atomic_load(&w->x->failed))
        return false;
    size_t i = atomic_fetch_add(&w->shard->next, 1);
    if (i >= w->shard->n_runs)
        return false;
    *out = w->shard->runs[i];
    return true;
}

/* check_echo: the v3 response answers the request at the head of the queue. */
static bool check_echo(const Export *x, const PagestreamResponse *r, const InFlight *f, Err *err)
{
    const RelTag *want = &x->rels[f->rel].rel;
    if (r->req.rel.spc != want->spc || r->req.rel.db != want->db || r->req.rel.rel != want->rel ||
        r->req.rel.fork != want->fork || r->req.blkno != f->blkno) {
        err_set(err, ERR_INTERNAL,
                "GetPage answer for %u/%u/%u fork %u block %u, expected "
                "%u/%u/%u fork %u block %u",
                r->req.rel.spc, r->req.rel.db, r->req.rel.rel, r->req.rel.fork, r->req.blkno,
                want->spc, want->db, want->rel, want->fork, f->blkno);
        return false;
    }
    return true;
}

static bool worker_run(Worker *w, Err *err)
{
    Export *x = w->x;
    PageConn c;
    char q[256];
    (void)str_printf(q, sizeof(q), "pagestream_v3 %s %s", x->tenant, x->timeline);
    bool ok = page_conn_open(&c, w->shard->host, w->shard->port, x->password, err) &&
              page_conn_query(&c, q, 'W', err);
    InFlight ring[EXPORT_PIPELINE];
    size_t head = 0, n_in = 0;
    Run run = {0};
    uint32_t run_pos = 0;
    bool have_run = false, drained = false;
    uint64_t reqid = 0;
    StrBuf out = STRBUF_INIT;
    while (ok) {
        /* fill the pipeline */
        while (!drained && n_in < EXPORT_PIPELINE) {
            if (!have_run || run_pos == run.count) {
                have_run = take_run(w, &run);
                run_pos = 0;
                if (!have_run) {
                    drained = true;
                    break;
                }
            }
            const ExRel *e = &x->rels[run.rel];
            PagestreamRequest req = {.tag = PAGESTREAM_GET_PAGE,
                                     .reqid = ++reqid,
                                     .request_lsn = x->lsn,
                                     .not_modified_since = x->lsn,
                                     .rel = e->rel,
                                     .blkno = run.start + run_pos};
            pagestream_put_request(&out, PAGESTREAM_V3, &req);
            ring[(head + n_in) % EXPORT_PIPELINE] = (InFlight){run.rel, req.blkno};
            n_in++;
            run_pos++;
        }
        if (out.len > 0) {
            ok = page_conn_send(&c, out.data, out.len, err);
            strbuf_reset(&out);
            if (!ok)
                break;
        }
        if (n_in == 0)
            break;
        PgwireMsg m;
        PagestreamResponse r;
        if (!(ok = page_conn_next(&c, &m, err)))
            break;
        if (m.type != 'd') {
            err_set(err, ERR_INTERNAL, "pagestream: unexpected message '%c'", m.type);
            ok = false;
            break;
        }
        if (!(ok = pagestream_response_decode(PAGESTREAM_V3, m.payload, m.len, &r, err)))
            break;
        const InFlight *f = &ring[head];
        if (r.tag == PAGESTREAM_RESP_ERROR) {
            err_set(err, ERR_INTERNAL, "GetPage %u/%u/%u fork %u block %u: %s",
                    x->rels[f->rel].rel.spc, x->rels[f->rel].rel.db, x->rels[f->rel].rel.rel,
                    x->rels[f->rel].rel.fork, f->blkno, r.message);
            ok = false;
            break;
        }
        if (r.tag != PAGESTREAM_RESP_GET_PAGE || r.data_len != BLCKSZ) {
            err_set(err, ERR_INTERNAL, "pagestream: unexpected response tag %u", r.tag);
            ok = false;
            break;
        }
        ok = check_echo(x, &r, f, err) && put_page(w, f->rel, f->blkno, r.data, err);
        head = (head + 1) % EXPORT_PIPELINE;
        n_in--;
        atomic_fetch_add(&x->pages_done, 1);
    }
    strbuf_finish(&out);
    if (ok) {
        StrBuf b = STRBUF_INIT;
        pgwire_put_copy_done(&b);
        Err ignored = {0}; /* the pages are all here: a failed goodbye changes nothing */
        if (!page_conn_send(&c, b.data, b.len, &ignored))
            ok = true;
        strbuf_finish(&b);
    }
    page_conn_close(&c);
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    return ok;
}

static void *worker_main(void *arg)
{
    Worker *w = arg;
    Err err = {0};
    if (!worker_run(w, &err))
        export_fail(w->x, &err);
    return NULL;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* read_pages: conns threads per shard that has pages; progress on a terminal. */
static bool read_pages(Export *x, int conns, bool tty, Err *err)
{
    size_t n_workers = 0;
    Worker *ws = xcalloc(x->n_shards * (size_t)conns, sizeof(*ws));
    for (size_t s = 0; s < x->n_shards; s++) {
        if (x->shards[s].n_runs == 0)
            continue;
        for (int i = 0; i < conns && (size_t)i < x->shards[s].n_runs; i++) {
            Worker *w = &ws[n_workers];
            *w = (Worker){.x = x, .shard = &x->shards[s], .fd = -1};
            if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
                Err e;
                err_set(&e, ERR_INTERNAL, "cannot start a thread");
                export_fail(x, &e);
                break;
            }
            n_workers++;
        }
    }
    double start = now_s();
    while (tty) {
        uint64_t done = atomic_load(&x->pages_done);
        double frac = x->pages_total ? (double)done / (double)x->pages_total : 1.0;
        char line[160];
        double secs = now_s() - start;
        (void)str_printf(line, sizeof(line), "pages %" PRIu64 "/%" PRIu64 ", %.1f MiB/s", done,
                         x->pages_total, secs > 0 ? (double)done * BLCKSZ / (1 << 20) / secs : 0.0);
        ctl_progress_bar(frac, line);
        if (done >= x->pages_total || atomic_load(&x->failed))
            break;
        ctl_sleep_ms(EXPORT_PROGRESS_MS);
    }
    for (size_t i = 0; i < n_workers; i++)
        pthread_join(ws[i].thread, NULL);
    if (tty)
        printf("\n");
    free(ws);
    if (atomic_load(&x->failed)) {
        *err = x->err;
        return false;
    }
    if (atomic_load(&x->pages_done) != x->pages_total) {
        err_set(err, ERR_INTERNAL, "read %" PRIu64 " pages of %" PRIu64,
                (uint64_t)atomic_load(&x->pages_done), x->pages_total);
        return false;
    }
    return true;
}

/* ---- finishing ---- */

/* sync_output: make everything under OUTPUT.partial durable. One syncfs(2) of the file system
 * instead of an fsync per file: an export writes about a thousand files per database, and an
 * fsync costs a journal commit each (milliseconds on ordinary disks), while syncfs commits once.
 * It also flushes other files of that file system, which costs them nothing but time. syncfs
 * reports a writeback error only to descriptors opened before it happened (Linux 5.8 and later),
 * so the descriptor used is the one opened when OUTPUT.partial was created. */
static bool sync_output(const Export *x, Err *err)
{
    if (syncfs(x->tar ? x->tar_fd : x->dir_fd) != 0)
        return set_errno(err, "syncfs", x->partial);
    return true;
}

static bool finish_output(Export *x, Err *err)
{
    if (!x->tar) {
        char path[EXPORT_PATH_MAX];
        if (!join_path(x, EXPORT_PG_CONTROL, path, err) ||
            !write_file(path, x->control, sizeof(x->control), err))
            return false;
    }
    if (!sync_output(x, err))
        return false;
    if (rename(x->partial, x->out) != 0)
        return set_errno(err, "rename", x->partial);
    char parent[EXPORT_PATH_MAX];
    if (!fs_dir_of(x->out, parent, sizeof(parent)))
        (void)str_copy(parent, sizeof(parent), ".");
    return fs_fsync_dir(parent, err);
}

/* prepare_output: refuse an existing OUTPUT; remove the OUTPUT.partial of an interrupted run;
 * create the new OUTPUT.partial. */
static bool prepare_output(Export *x, const char *out, bool quiet, Err *err)
{
    size_t len = strlen(out);
    x->tar = len > 4 && strcmp(out + len - 4, ".tar") == 0;
    if (!str_copy(x->out, sizeof(x->out), out) ||
        !str_printf(x->partial, sizeof(x->partial), "%s.partial", out)) {
        err_set(err, ERR_BAD_REQUEST, "--output: path too long");
        return false;
    }
    fs_strip_trailing_slashes(x->out);
    (void)str_printf(x->partial, sizeof(x->partial), "%s.partial", x->out);
    struct stat st;
    if (lstat(x->out, &st) == 0) {
        err_set(err, ERR_CONFLICT, "%s exists: refusing to overwrite it", x->out);
        return false;
    }
    if (lstat(x->partial, &st) == 0) {
        if (!quiet)
            fprintf(stderr, "storconctl: removing %s, left by an interrupted export\n", x->partial);
        if (S_ISDIR(st.st_mode) ? !fs_remove_tree(x->partial, err) : unlink(x->partial) != 0) {
            if (!err_is_set(err))
                (void)set_errno(err, "remove", x->partial);
            return false;
        }
    }
    if (x->tar) {
        x->tar_fd = open(x->partial, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, EXPORT_FILE_MODE);
        if (x->tar_fd < 0)
            return set_errno(err, "create", x->partial);
    } else if (mkdir(x->partial, EXPORT_DIR_MODE) != 0) {
        return set_errno(err, "mkdir", x->partial);
    } else if ((x->dir_fd = open(x->partial, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        return set_errno(err, "open", x->partial);
    }
    return true;
}

static void export_free(Export *x)
{
    for (size_t i = 0; i < x->n_rels; i++)
        free(x->rels[i].seg_off);
    free(x->rels);
    for (size_t i = 0; i < x->n_shards; i++)
        free(x->shards[i].runs);
    free(x->shards);
    if (x->tar_fd >= 0)
        close(x->tar_fd);
    if (x->dir_fd >= 0)
        close(x->dir_fd);
    pthread_mutex_destroy(&x->err_mu);
}

/* export_run: everything after the storcon calls; on failure OUTPUT.partial is removed. */
static bool export_run(Export *x, int conns, bool tty, bool quiet, Err *err)
{
    FILE *bb = tmpfile();
    if (bb == NULL)
        return set_errno(err, "create", "a temporary file");
    bool ok = fetch_basebackup(x, fileno(bb), err);
    if (ok && !quiet)
        printf("basebackup received from shard 0\n");
    ok = ok && build_layout(x, fileno(bb), err);
    fclose(bb);
    plan_runs(x);
    ok = ok && read_pages(x, conns, tty, err) && finish_output(x, err);
    if (!ok) {
        Err rm = {0};
        if (x->tar)
            (void)unlink(x->partial);
        else if (!fs_remove_tree(x->partial, &rm))
            fprintf(stderr, "storconctl: removing %s: %s\n", x->partial, rm.msg);
    }
    return ok;
}

int ctl_cmd_timelines_export(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("timelines export");
    const char *out_s = NULL, *lsn_s = NULL, *conns_s = NULL, *ps_token = NULL;
    const CtlOpt opts[] = {{"output", &out_s, NULL},
                           {"lsn", &lsn_s, NULL},
                           {"connections", &conns_s, NULL},
                           {"pageserver-token", &ps_token, NULL}};
    char *pos[2];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 2, &n_pos,
                        &code))
        return code;
    Err err = {0};
    TenantId tenant;
    TimelineId tl;
    if (n_pos != 2)
        return ctl_usage_error(self, "give the tenant id and the timeline id");
    if (!tenant_id_parse(pos[0], &tenant, &err) || !timeline_id_parse(pos[1], &tl, &err))
        return ctl_usage_error(self, "%s", err.msg);
    if (out_s == NULL || out_s[0] == '\0')
        return ctl_usage_error(self, "--output DIR|FILE.tar is required");
    uint64_t conns = EXPORT_CONNS_DEFAULT;
    if (conns_s != NULL && !parse_u64(conns_s, 1, EXPORT_CONNS_MAX, &conns))
        return ctl_usage_error(self, "--connections: a number in 1..%d", EXPORT_CONNS_MAX);
    Export *x = xcalloc(1, sizeof(*x));
    x->tar_fd = -1;
    x->dir_fd = -1;
    pthread_mutex_init(&x->err_mu, NULL);
    tenant_id_format(&tenant, x->tenant);
    timeline_id_format(&tl, x->timeline);
    x->password = ps_token != NULL ? ps_token : ctl->token;
    if (lsn_s != NULL && !lsn_parse(lsn_s, &x->lsn, &err)) {
        export_free(x);
        free(x);
        return ctl_usage_error(self, "--lsn: %s", err.msg);
    }
    bool quiet = ctl->json;
    bool tty = isatty(STDOUT_FILENO) && !quiet;
    double start = now_s();
    code = CTL_EXIT_ERROR;
    if (load_locations(ctl, x, &code) && (x->lsn != LSN_INVALID || load_lsn(ctl, x, &code)) &&
        load_relations(ctl, x, &code)) {
        code = CTL_EXIT_OK;
        if (!prepare_output(x, out_s, quiet, &err) ||
            !export_run(x, (int)conns, tty, quiet, &err)) {
            fprintf(stderr, "storconctl: export failed: %s\n", err.msg);
            code = err.code == ERR_UNAVAILABLE ? CTL_EXIT_TRANSPORT : CTL_EXIT_ERROR;
        }
    }
    if (code == CTL_EXIT_OK) {
        char lsn[LSN_STR_SIZE];
        lsn_format(x->lsn, lsn);
        double secs = now_s() - start;
        double mib = (double)x->pages_total * BLCKSZ / (1 << 20);
        if (ctl->json) {
            json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I}", "output", x->out, "lsn", lsn,
                                  "relations", (json_int_t)x->n_rels, "pages",
                                  (json_int_t)x->pages_total, "shards", (json_int_t)x->n_shards);
            char *txt = json_dumps(j, JSON_COMPACT);
            printf("%s\n", txt);
            free(txt);
            json_decref(j);
        } else
            printf("exported timeline %s of tenant %s at %s to %s: %zu relation forks, %" PRIu64
                   " pages (%.1f MiB) from %zu shard(s) in %.1f s\n",
                   x->timeline, x->tenant, lsn, x->out, x->n_rels, x->pages_total, mib, x->n_shards,
                   secs);
    }
    export_free(x);
    free(x);
    return code;
}
