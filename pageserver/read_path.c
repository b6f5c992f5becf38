/* read_path.c: page, relation size / existence, database size and SLRU segment reads through
 * the ancestor chain, on the worker pool, in batches (a single read is a batch of one). */
#include "pageserver/read_path.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "shared/bytes.h"
#include "shared/failpoint.h"
#include "shared/key.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/str.h"
#include "shared/worker_pool.h"

#include "pageserver/app.h"
#include "pageserver/defaults.h"
#include "pageserver/layer_map.h"
#include "pageserver/pgdata.h"
#include "pageserver/tenant.h"
#include "pageserver/timeline.h"

typedef enum ReadKind {
    READ_BATCH,          /* items[] (every single read is a batch of one) */
    READ_TIMELINE_SIZES, /* the whole timeline at its last_record_lsn */
    READ_REL_LIST,       /* every relation fork and its size (own_item: the LSN checks) */
    READ_CUSTOM          /* the caller's work function (own_item: the LSN checks) */
} ReadKind;

typedef struct ChainLevel {
    Layer **layers; /* references */
    size_t n;
    Lsn cap; /* the ancestor LSN bounding this level (the first level: no bound) */
} ChainLevel;

/* ReadJob: one read; a custom read's work function sees it as its ReadCtx. */
typedef struct ReadCtx ReadJob;
struct ReadCtx {
    ReadKind kind;
    PageserverApp *app;
    TenantSlot *slot; /* NULL when the read failed before the worker */
    ChainLevel *levels;
    size_t n_levels;
    ReadItem *items; /* READ_BATCH: the caller's, filled in on the worker */
    size_t n_items;
    Lsn wait_lsn;
    Lsn lsn;    /* the LSN of the lookups in progress (the current item's effective LSN) */
    RelTag rel; /* the relation (or spc/db) of the lookups in progress */
    /* the last relation size a page read of this job looked up: consecutive pages of one
     * relation at one LSN (a batch) need it once */
    bool size_cached;
    RelTag size_rel;
    Lsn size_lsn;
    uint32_t size_nblocks;
    struct timespec start;
    union {
        ReadBatchFn batch;
        ReadSizesFn sizes;
        ReadRelListFn rel_list;
        ReadWorkDoneFn run;
    } cb;
    ReadWorkFn work;   /* READ_CUSTOM */
    ReadItem own_item; /* READ_REL_LIST, READ_CUSTOM: items[0], checked like a batch item */
    RelListEntry *rels;
    size_t n_rels, cap_rels;
    Timeline *timeline; /* READ_TIMELINE_SIZES: the timeline, read by read_prepare only */
    void *arg;
    /* job-wide result (refused before the worker, or the worker job itself failed) */
    bool ok;
    Err err;
    /* READ_BATCH on the loop thread (read_on_loop): memory_only makes chain_get look at nothing
     * but memory (an item that needs more sets not_in_memory and goes to the worker); items
     * [0, n_done) were answered on the loop; the "getpage" failpoint of items [0, fp_done) was
     * already evaluated there */
    bool memory_only;
    bool not_in_memory;
    size_t n_done;
    size_t fp_done;
    uint64_t downloaded;
    uint64_t refetched; /* damaged local layer copies downloaded again */
    TimelineSizes sizes;
};

/* chain_get: the value of key at j->lsn through the levels (see the header). */
static bool chain_get(ReadJob *j, Err *err, const Key *key, void **value, size_t *len, bool *found)
{
    *found = false;
    for (size_t i = 0; i < j->n_levels; i++) {
        ChainLevel *lv = &j->levels[i];
        Lsn lsn = j->lsn < lv->cap ? j->lsn : lv->cap;
        Layer *l = layer_map_find_image(lv->layers, lv->n, key, lsn);
        if (l == NULL)
            continue;
        if (j->memory_only) {
            bool in_memory = false;
            if (!layer_obj_get_in_memory(l, j->app->page_cache, key, value, len, found, &in_memory,
                                         err))
                return false;
            if (in_memory)
                return true;
            j->not_in_memory = true; /* fails the item's read on the loop; the worker redoes it */
            err_set(err, ERR_INTERNAL, "not in memory");
            return false;
        }
        return layer_obj_get(l, j->app->remote, j->app->page_cache, key, value, len, found,
                             &j->downloaded, &j->refetched, err);
    }
    return true;
}

/* get_size_key: a relation or SLRU segment size key (u32 LE); *found false when absent. */
static bool get_size_key(ReadJob *j, Err *err, const Key *size_key, uint32_t *nblocks, bool *found)
{
    void *v = NULL;
    size_t len = 0;
    if (!chain_get(j, err, size_key, &v, &len, found))
        return false;
    if (!*found)
        return true;
    if (len != 4) {
        free(v);
        char key[KEY_STR_SIZE];
        key_format(size_key, key);
        err_set(err, ERR_INTERNAL, "size key %s: %zu bytes, expected 4", key, len);
        return false;
    }
    const uint8_t *b = v;
    *nblocks = le_get_u32(b);
    free(v);
    return true;
}

/* get_rel_size: the relation size key of (spc, db, rel, fork); *found false when absent. */
static bool get_rel_size(ReadJob *j, Err *err, uint32_t rel, uint8_t fork, uint32_t *nblocks,
                         bool *found)
{
    Key size_key = key_rel_size(j->rel.spc, j->rel.db, rel, fork);
    return get_size_key(j, err, &size_key, nblocks, found);
}

/* get_existing_rel_size: get_rel_size of j->rel with absent = 404. */
static bool get_existing_rel_size(ReadJob *j, Err *err, uint32_t *nblocks)
{
    bool found = false;
    if (!get_rel_size(j, err, j->rel.rel, j->rel.fork, nblocks, &found))
        return false;
    if (!found) {
        Key size_key = key_rel_size(j->rel.spc, j->rel.db, j->rel.rel, j->rel.fork);
        char key[KEY_STR_SIZE];
        key_format(&size_key, key);
        err_set(err, ERR_NOT_FOUND, "relation not found (no size key %s at this LSN)", key);
        return false;
    }
    return true;
}

/* get_reldir: the decoded relation directory of (j->rel.spc, j->rel.db); *found false when
 * absent. */
static bool get_reldir(ReadJob *j, Err *err, PgdataRelDirEntry **entries, size_t *n, bool *found)
{
    Key dir_key = key_reldir(j->rel.spc, j->rel.db);
    void *v = NULL;
    size_t len = 0;
    *entries = NULL;
    *n = 0;
    if (!chain_get(j, err, &dir_key, &v, &len, found))
        return false;
    if (!*found)
        return true;
    bool ok = pgdata_reldir_decode(v, len, entries, n, err);
    free(v);
    if (!ok) {
        char key[KEY_STR_SIZE];
        key_format(&dir_key, key);
        err_prefix(err, "relation directory %s: ", key);
    }
    return ok;
}

/* get_block: the BLCKSZ-byte value of key into page; zeros when absent (a hole). */
static bool get_block(ReadJob *j, Err *err, const Key *key, uint8_t *page)
{
    void *v = NULL;
    size_t len = 0;
    bool found = false;
    if (!chain_get(j, err, key, &v, &len, &found))
        return false;
    if (!found) {
        memset(page, 0, BLCKSZ);
        return true;
    }
    if (len != BLCKSZ) {
        free(v);
        char k[KEY_STR_SIZE];
        key_format(key, k);
        err_set(err, ERR_INTERNAL, "page %s: %zu bytes, expected %d", k, len, BLCKSZ);
        return false;
    }
    memcpy(page, v, BLCKSZ);
    free(v);
    return true;
}

static bool rel_eq(const RelTag *a, const RelTag *b)
{
    return a->spc == b->spc && a->db == b->db && a->rel == b->rel && a->fork == b->fork;
}

static bool read_page(ReadJob *j, ReadItem *it)
{
    uint32_t nblocks = 0;
    if (j->size_cached && j->size_lsn == j->lsn && rel_eq(&j->size_rel, &j->rel)) {
        nblocks = j->size_nblocks;
    } else {
        if (!get_existing_rel_size(j, &it->err, &nblocks))
            return false;
        j->size_cached = true;
        j->size_rel = j->rel;
        j->size_lsn = j->lsn;
        j->size_nblocks = nblocks;
    }
    if (it->blkno >= nblocks) {
        err_set(&it->err, ERR_NOT_FOUND, "block %u is past the end of the relation (%u blocks)",
                it->blkno, nblocks);
        return false;
    }
    Key block_key = key_rel_block(j->rel.spc, j->rel.db, j->rel.rel, j->rel.fork, it->blkno);
    return get_block(j, &it->err, &block_key, it->page);
}

/* read_rel_size: Nblocks. A missing FSM or visibility map fork has 0 blocks rather than being an
 * error: Postgres may create one (smgrcreate) and ask for its size before it extends it, and
 * Neon's pageserver answers 0 there too. A missing main or init fork is "relation not found". */
static bool read_rel_size(ReadJob *j, ReadItem *it)
{
    if (j->rel.fork != FORK_FSM && j->rel.fork != FORK_VM)
        return get_existing_rel_size(j, &it->err, &it->nblocks);
    bool found = false;
    if (!get_rel_size(j, &it->err, j->rel.rel, j->rel.fork, &it->nblocks, &found))
        return false;
    if (!found)
        it->nblocks = 0;
    return true;
}

static bool read_rel_exists(ReadJob *j, ReadItem *it)
{
    PgdataRelDirEntry *e = NULL;
    size_t n = 0;
    bool found = false;
    if (!get_reldir(j, &it->err, &e, &n, &found))
        return false;
    it->exists = false;
    for (size_t i = 0; i < n && !it->exists; i++)
        it->exists = e[i].relnode == j->rel.rel && e[i].forknum == j->rel.fork;
    free(e);
    return true;
}

static bool read_db_size(ReadJob *j, ReadItem *it)
{
    PgdataRelDirEntry *e = NULL;
    size_t n = 0;
    bool found = false;
    if (!get_reldir(j, &it->err, &e, &n, &found))
        return false;
    if (!found) {
        err_set(&it->err, ERR_NOT_FOUND, "database %u/%u not found (no relation directory)",
                j->rel.spc, j->rel.db);
        return false;
    }
    bool ok = true;
    it->bytes = 0;
    for (size_t i = 0; i < n && ok; i++) {
        uint32_t nblocks = 0;
        bool has_size = false;
        ok = get_rel_size(j, &it->err, e[i].relnode, (uint8_t)e[i].forknum, &nblocks, &has_size);
        if (ok && has_size)
            it->bytes += (uint64_t)nblocks * BLCKSZ;
    }
    free(e);
    return ok;
}

static bool read_slru_segment(ReadJob *j, ReadItem *it)
{
    if (it->slru_kind >= SLRU_KIND_COUNT) {
        err_set(&it->err, ERR_BAD_REQUEST, "unknown SLRU kind %u", it->slru_kind);
        return false;
    }
    Key size_key = key_slru_segment_size((SlruKind)it->slru_kind, it->segno);
    uint32_t nblocks = 0;
    bool found = false;
    if (!get_size_key(j, &it->err, &size_key, &nblocks, &found))
        return false;
    if (!found) {
        err_set(&it->err, ERR_NOT_FOUND, "SLRU segment %u of kind %u not found", it->segno,
                it->slru_kind);
        return false;
    }
    if (nblocks > SLRU_PAGES_PER_SEGMENT) {
        err_set(&it->err, ERR_INTERNAL, "SLRU segment %u of kind %u has %u blocks (at most %u)",
                it->segno, it->slru_kind, nblocks, SLRU_PAGES_PER_SEGMENT);
        return false;
    }
    it->segment = xmalloc(nblocks ? (size_t)nblocks * BLCKSZ : 1);
    it->nblocks = nblocks;
    it->segment_len = (size_t)nblocks * BLCKSZ;
    for (uint32_t b = 0; b < nblocks; b++) {
        Key k = key_slru_block((SlruKind)it->slru_kind, it->segno, b);
        if (!get_block(j, &it->err, &k, it->segment + (size_t)b * BLCKSZ))
            return false;
    }
    return true;
}

/* get_dir_value: the raw value of a directory key (NULL, 0 when absent). */
static bool get_dir_value(ReadJob *j, const Key *key, void **v, size_t *len)
{
    bool found = false;
    *v = NULL;
    *len = 0;
    return chain_get(j, &j->err, key, v, len, &found);
}

/* count_u32_dir: the entry count of a SLRU or two-phase directory key (absent: 0). */
static bool count_u32_dir(ReadJob *j, const Key *key, bool slru, uint64_t *count)
{
    void *v = NULL;
    size_t len = 0;
    *count = 0;
    if (!get_dir_value(j, key, &v, &len))
        return false;
    if (v == NULL)
        return true;
    uint32_t *entries = NULL;
    size_t n = 0;
    bool ok = slru ? pgdata_slrudir_decode(v, len, &entries, &n, &j->err)
                   : pgdata_twophasedir_decode(v, len, &entries, &n, &j->err);
    free(v);
    free(entries);
    if (!ok) {
        char k[KEY_STR_SIZE];
        key_format(key, k);
        err_prefix(&j->err, "directory %s: ", k);
        return false;
    }
    *count = n;
    return true;
}

/* RelVisitFn: one relation directory entry of (j->rel.spc, j->rel.db) and its size. */
typedef void (*RelVisitFn)(ReadJob *j, uint32_t relnode, uint8_t fork, uint32_t nblocks);

/* walk_relations: visit every relation fork of every database of the database directory, in key
 * order (a directory entry without a size key: 0 blocks); *n_dbs the number of databases. */
static bool walk_relations(ReadJob *j, RelVisitFn visit, uint64_t *n_dbs_out)
{
    Key dbdir_key = key_dbdir();
    void *v = NULL;
    size_t len = 0;
    if (!get_dir_value(j, &dbdir_key, &v, &len))
        return false;
    PgdataDbDirEntry *dbs = NULL;
    size_t n_dbs = 0;
    if (v != NULL) {
        bool ok = pgdata_dbdir_decode(v, len, &dbs, &n_dbs, &j->err);
        free(v);
        if (!ok) {
            err_prefix(&j->err, "database directory: ");
            return false;
        }
    }
    bool ok = true;
    *n_dbs_out = n_dbs;
    for (size_t d = 0; d < n_dbs && ok; d++) {
        j->rel.spc = dbs[d].spcnode;
        j->rel.db = dbs[d].dbnode;
        PgdataRelDirEntry *e = NULL;
        size_t n = 0;
        bool found = false;
        ok = get_reldir(j, &j->err, &e, &n, &found);
        for (size_t i = 0; i < n && ok; i++) {
            uint32_t nblocks = 0;
            bool has_size = false;
            ok = get_rel_size(j, &j->err, e[i].relnode, (uint8_t)e[i].forknum, &nblocks, &has_size);
            if (ok)
                visit(j, e[i].relnode, (uint8_t)e[i].forknum, has_size ? nblocks : 0);
        }
        free(e);
    }
    free(dbs);
    return ok;
}

static void visit_size(ReadJob *j, uint32_t relnode, uint8_t fork, uint32_t nblocks)
{
    (void)relnode;
    (void)fork;
    j->sizes.dir_counts[DIRKIND_REL]++;
    j->sizes.logical_size += (uint64_t)nblocks * BLCKSZ;
}

static bool read_timeline_sizes(ReadJob *j)
{
    TimelineSizes *s = &j->sizes;
    memset(s, 0, sizeof(*s));
    bool ok = walk_relations(j, visit_size, &s->dir_counts[DIRKIND_DB]);
    Key twophase = key_twophase_dir();
    Key clog = key_slru_dir(SLRU_CLOG);
    Key members = key_slru_dir(SLRU_MULTIXACT_MEMBERS);
    Key offsets = key_slru_dir(SLRU_MULTIXACT_OFFSETS);
    return ok && count_u32_dir(j, &twophase, false, &s->dir_counts[DIRKIND_TWOPHASE]) &&
           count_u32_dir(j, &clog, true, &s->dir_counts[DIRKIND_SLRU_CLOG]) &&
           count_u32_dir(j, &members, true, &s->dir_counts[DIRKIND_SLRU_MULTIXACT_MEMBERS]) &&
           count_u32_dir(j, &offsets, true, &s->dir_counts[DIRKIND_SLRU_MULTIXACT_OFFSETS]);
}

static void visit_list(ReadJob *j, uint32_t relnode, uint8_t fork, uint32_t nblocks)
{
    if (j->n_rels == j->cap_rels) {
        j->cap_rels = j->cap_rels ? 2 * j->cap_rels : 256;
        j->rels = xrealloc(j->rels, j->cap_rels * sizeof(*j->rels));
    }
    j->rels[j->n_rels++] =
        (RelListEntry){.rel = {.spc = j->rel.spc, .db = j->rel.db, .rel = relnode, .fork = fork},
                       .nblocks = nblocks};
}

bool read_ctx_get(ReadCtx *c, const Key *key, void **value, size_t *len, bool *found, Err *err)
{
    *value = NULL;
    *len = 0;
    return chain_get(c, err, key, value, len, found);
}

Lsn read_ctx_lsn(const ReadCtx *c)
{
    return c->own_item.effective_lsn;
}

/* read_own: a listing or custom read at its item's effective LSN (refused: the item's error). */
static bool read_own(ReadJob *j)
{
    if (!j->own_item.ok) {
        j->err = j->own_item.err;
        return false;
    }
    j->lsn = j->own_item.effective_lsn;
    if (j->kind == READ_CUSTOM)
        return j->work(j, j->arg, &j->err);
    uint64_t n_dbs = 0;
    return walk_relations(j, visit_list, &n_dbs);
}

/* read_item: one item of a batch, at its effective LSN (set by read_prepare). */
static bool read_item(ReadJob *j, ReadItem *it)
{
    j->lsn = it->effective_lsn;
    j->rel = it->rel;
    switch (it->op) {
    case READ_OP_PAGE:
        if (it < j->items + j->fp_done) /* evaluated on the loop (read_on_loop) */
            return read_page(j, it);
        if (!failpoint_check("getpage", &it->err))
            return false;
        return read_page(j, it);
    case READ_OP_REL_SIZE:
        return read_rel_size(j, it);
    case READ_OP_REL_EXISTS:
        return read_rel_exists(j, it);
    case READ_OP_DB_SIZE:
        return read_db_size(j, it);
    case READ_OP_SLRU_SEGMENT:
        return read_slru_segment(j, it);
    case READ_OP_COUNT:
        break;
    }
    err_set(&it->err, ERR_INTERNAL, "unknown read operation %d", (int)it->op);
    return false;
}

static void read_work(WorkerJob *job, void *arg)
{
    ReadJob *j = arg;
    if (j->kind == READ_TIMELINE_SIZES) {
        j->ok = read_timeline_sizes(j);
        return;
    }
    if (j->kind == READ_REL_LIST || j->kind == READ_CUSTOM) {
        j->ok = read_own(j);
        return;
    }
    for (size_t i = j->n_done; i < j->n_items; i++) {
        ReadItem *it = &j->items[i];
        if (it->ok) /* not refused by read_prepare */
            it->ok = read_item(j, it);
    }
}

/* read_on_loop: answer the batch's items from memory on the loop thread, in order, as far as
 * everything they need is there: the layers' open readers, their verified index blocks and the
 * page cache (no file read, download or decompression: chain_get in memory_only). Stops at the
 * first item that needs more (or whose "getpage" failpoint sleeps); the worker does the rest.
 * true when every item was answered. Safe on the loop: the job holds references on the layers
 * (chain_take), readers and index blocks are immutable once published (layer.h), the page cache
 * is thread-safe. Only pages, relation sizes and relation existence are read here. */
static bool read_on_loop(ReadJob *j)
{
    if (j->kind != READ_BATCH || j->app->page_cache == NULL)
        return false;
    j->memory_only = true;
    for (; j->n_done < j->n_items; j->n_done++) {
        ReadItem *it = &j->items[j->n_done];
        if (!it->ok) /* refused by read_prepare */
            continue;
        if (it->op != READ_OP_PAGE && it->op != READ_OP_REL_SIZE && it->op != READ_OP_REL_EXISTS)
            break;
        if (it->op == READ_OP_PAGE && j->fp_done <= j->n_done) {
            long ms = failpoint_delay_ms("getpage", &it->err);
            if (ms > 0)
                break; /* the worker evaluates it again and sleeps there */
            j->fp_done = j->n_done + 1;
            if (ms < 0) {
                it->ok = false;
                continue;
            }
        }
        bool ok = read_item(j, it);
        if (j->not_in_memory) {
            j->not_in_memory = false;
            err_clear(&it->err);
            break;
        }
        it->ok = ok;
    }
    j->memory_only = false;
    return j->n_done == j->n_items;
}

/* chain_take: references on the layers of tl's ancestor chain, each level bounded by the
 * ancestor LSN it is read at; chain_release drops them (any thread: layer references are
 * atomic). */
static ChainLevel *chain_take(const Timeline *tl, size_t *n_levels)
{
    size_t depth = 0;
    for (const Timeline *t = tl; t != NULL; t = t->has_ancestor ? t->ancestor : NULL)
        depth++;
    ChainLevel *levels = xcalloc(depth, sizeof(*levels));
    size_t n = 0;
    const Timeline *t = tl;
    Lsn cap = UINT64_MAX;
    while (t != NULL) {
        ChainLevel *lv = &levels[n++];
        lv->cap = cap;
        lv->layers = xcalloc(t->n_layers ? t->n_layers : 1, sizeof(Layer *));
        for (size_t i = 0; i < t->n_layers; i++)
            lv->layers[lv->n++] = layer_obj_ref(t->layers[i]);
        if (!t->has_ancestor)
            break;
        if (t->ancestor_lsn < cap)
            cap = t->ancestor_lsn;
        t = t->ancestor;
    }
    *n_levels = n;
    return levels;
}

static void chain_release(ChainLevel *levels, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < levels[i].n; k++)
            layer_obj_unref(levels[i].layers[k]);
        free(levels[i].layers);
    }
    free(levels);
}

/* read_answer: the job's one callback, then free it. */
static void read_answer(void *arg)
{
    ReadJob *j = arg;
    const Err *err = j->ok ? NULL : &j->err;
    if (j->kind == READ_TIMELINE_SIZES) {
        j->cb.sizes(err, j->ok ? &j->sizes : NULL, j->arg);
    } else if (j->kind == READ_REL_LIST) {
        j->cb.rel_list(err, j->ok ? j->rels : NULL, j->ok ? j->n_rels : 0,
                       j->ok ? j->own_item.effective_lsn : LSN_INVALID, j->arg);
    } else if (j->kind == READ_CUSTOM) {
        j->cb.run(err, j->ok ? j->own_item.effective_lsn : LSN_INVALID, j->arg);
    } else {
        for (size_t i = 0; i < j->n_items && err != NULL; i++) {
            j->items[i].ok = false;
            j->items[i].err = *err;
        }
        j->cb.batch(err, j->items, j->n_items, j->arg);
    }
    free(j->rels);
    chain_release(j->levels, j->n_levels);
    TenantSlot *slot = j->slot;
    free(j);
    if (slot != NULL)
        slot_job_end(slot);
}

/* observe_pages: the getpage metrics of a batch that started at start (any thread). */
static void observe_pages(PageserverApp *app, const struct timespec *start, const ReadItem *items,
                          size_t n, bool batch_ok)
{
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    double secs =
        (double)(end.tv_sec - start->tv_sec) + (double)(end.tv_nsec - start->tv_nsec) / 1e9;
    for (size_t i = 0; i < n; i++) {
        if (items[i].op != READ_OP_PAGE)
            continue;
        metric_histogram_observe(app->m.getpage_seconds, secs);
        if (!batch_ok || !items[i].ok)
            metric_counter_add(app->m.getpage_errors, 1);
    }
}

/* read_finish: the metrics of a finished job, then its answer. */
static void read_finish(ReadJob *j)
{
    observe_pages(j->app, &j->start, j->items, j->n_items, j->ok);
    metric_counter_add(j->app->m.layer_refetches, j->refetched);
    if (j->downloaded > 0) {
        metric_counter_add(j->app->m.layers_downloaded, 1);
        metric_counter_add(j->app->m.layer_bytes_downloaded, j->downloaded);
    }
    read_answer(j);
}

static void read_done(void *arg, WorkerOutcome outcome)
{
    ReadJob *j = arg;
    if (!worker_outcome_err(outcome, "read", &j->err))
        j->ok = false;
    read_finish(j);
}

/* read_done_on_loop: a batch read_on_loop answered entirely (deferred: never from inside
 * read_path_batch). */
static void read_done_on_loop(void *arg)
{
    read_finish(arg);
}

/* ReadTarget: what the checks of an item need of its shard and timeline (copies: a ReadView
 * holds them for other threads). */
typedef struct ReadTarget {
    ShardIdentity shard;
    char tsid_str[TSID_STR_SIZE];
    Lsn last_record_lsn;
    Lsn min_readable; /* max(gc_cutoff_lsn, initdb_lsn) */
} ReadTarget;

static void target_of(const TenantSlot *slot, const Timeline *tl, ReadTarget *out)
{
    out->shard = slot->shard;
    memcpy(out->tsid_str, slot->tsid_str, sizeof(out->tsid_str));
    out->last_record_lsn = tl->last_record_lsn;
    out->min_readable = tl->gc_cutoff_lsn > tl->initdb_lsn ? tl->gc_cutoff_lsn : tl->initdb_lsn;
}

/* prepare_item: the checks of one item that need no layer: page ownership, the effective LSN
 * (min(lsn, last_record_lsn)) and the GC cutoff. false + it->err otherwise. */
static bool prepare_item(const ReadTarget *t, ReadItem *it)
{
    if (it->op == READ_OP_PAGE) {
        Key block = key_rel_block(it->rel.spc, it->rel.db, it->rel.rel, it->rel.fork, it->blkno);
        if (!shard_identity_is_key_local(&t->shard, &block)) {
            char key[KEY_STR_SIZE];
            key_format(&block, key);
            ShardNumber owner = key_to_shard_number(t->shard.count, t->shard.stripe_size, &block);
            err_set(&it->err, ERR_NOT_FOUND,
                    "key %s is not owned by shard %s (it belongs to shard number %u)", key,
                    t->tsid_str, (unsigned)owner);
            return false;
        }
    }
    Lsn lsn = it->lsn != LSN_INVALID && it->lsn < t->last_record_lsn ? it->lsn : t->last_record_lsn;
    if (lsn < t->min_readable) {
        char a[LSN_STR_SIZE], b[LSN_STR_SIZE];
        lsn_format(lsn, a);
        lsn_format(t->min_readable, b);
        err_set(&it->err, ERR_BAD_REQUEST, "lsn %s is below the timeline's min_readable_lsn %s", a,
                b);
        return false;
    }
    it->effective_lsn = lsn;
    return true;
}

/* read_prepare: resolve the slot and timeline, check each item, take the layer references of
 * the chain. false + j->err when the whole job fails. */
static bool read_prepare(ReadJob *j, TenantManager *mgr, const TenantShardId *tsid,
                         const TimelineId *tl_id)
{
    TenantSlot *slot = NULL;
    if (j->kind == READ_TIMELINE_SIZES) {
        j->lsn = j->timeline->last_record_lsn;
        j->levels = chain_take(j->timeline, &j->n_levels);
        j->slot = j->timeline->slot;
        j->timeline = NULL;
        return true;
    }
    if (!tenant_manager_readable_slot(mgr, tsid, &slot, &j->err))
        return false;
    char id[ID_STR_SIZE];
    timeline_id_format(tl_id, id);
    Timeline *tl = slot_find_timeline(slot, tl_id);
    if (tl == NULL || !timeline_is_served(tl) || tl->state == TIMELINE_STOPPING) {
        err_set(&j->err, ERR_NOT_FOUND, "timeline %s not found", id);
        return false;
    }
    if (tl->state == TIMELINE_BROKEN) {
        err_set(&j->err, ERR_INTERNAL, "timeline %s is broken: %s", id, tl->broken_reason);
        return false;
    }
    ReadTarget target;
    target_of(slot, tl, &target);
    for (size_t i = 0; i < j->n_items; i++) {
        ReadItem *it = &j->items[i];
        err_clear(&it->err);
        it->ok = prepare_item(&target, it);
    }
    j->levels = chain_take(tl, &j->n_levels);
    j->slot = slot;
    return true;
}

/* ---- wait_lsn ---- */

#define WAIT_LSN_POLL_MS 20 /* how often a parked read checks its timeline's last_record_lsn */

/* LsnWait: a read parked until its LSN arrives; it holds nothing of the slot, and looks the
 * timeline up again at every check (so a timeline or slot that goes away meanwhile needs no
 * bookkeeping: the read then fails as any read would). */
typedef struct LsnWait {
    ReadJob *j;
    TenantManager *mgr;
    TenantShardId tsid;
    TimelineId tl;
    Lsn lsn;
    struct timespec deadline;
    struct event *ev;
} LsnWait;

static void read_start(ReadJob *j, TenantManager *mgr, const TenantShardId *tsid,
                       const TimelineId *tl);

static double secs_until(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(t->tv_sec - now.tv_sec) + (double)(t->tv_nsec - now.tv_nsec) / 1e9;
}

/* lsn_wait_timeline: the ACTIVE timeline whose last_record_lsn is below lsn, or NULL (the LSN
 * has arrived, or the read fails or succeeds without waiting). */
static const Timeline *lsn_wait_timeline(TenantManager *mgr, const TenantShardId *tsid,
                                         const TimelineId *tl_id, Lsn lsn)
{
    TenantSlot *slot = NULL;
    Err err = {0};
    if (lsn == LSN_INVALID || !tenant_manager_readable_slot(mgr, tsid, &slot, &err))
        return NULL;
    const Timeline *tl = slot_find_timeline(slot, tl_id);
    if (tl == NULL || tl->state != TIMELINE_ACTIVE || lsn <= tl->last_record_lsn)
        return NULL;
    return tl;
}

static void on_lsn_wait_tick(evutil_socket_t fd, short what, void *arg)
{
    LsnWait *w = arg;
    const Timeline *tl = lsn_wait_timeline(w->mgr, &w->tsid, &w->tl, w->lsn);
    if (tl != NULL && secs_until(&w->deadline) > 0)
        return; /* persistent timer: check again */
    ReadJob *j = w->j;
    event_free(w->ev);
    if (tl != NULL) {
        char want[LSN_STR_SIZE], last[LSN_STR_SIZE], disk[LSN_STR_SIZE];
        lsn_format(w->lsn, want);
        lsn_format(tl->last_record_lsn, last);
        lsn_format(tl->disk_consistent_lsn, disk);
        err_set(&j->err, ERR_TIMEOUT,
                "Timed out while waiting for WAL record at LSN %s to arrive, last_record_lsn %s "
                "disk consistent LSN=%s, WalReceiver status: Not active",
                want, last, disk);
        free(w);
        j->ok = false;
        read_answer(j);
        return;
    }
    TenantManager *mgr = w->mgr;
    TenantShardId tsid = w->tsid;
    TimelineId tl_id = w->tl;
    free(w);
    read_start(j, mgr, &tsid, &tl_id);
}

/* lsn_wait_park: park j when its LSN is beyond the timeline's last_record_lsn (true), checked
 * every WAIT_LSN_POLL_MS until it arrives or wait_lsn_timeout_ms has passed. */
static bool lsn_wait_park(ReadJob *j, TenantManager *mgr, const TenantShardId *tsid,
                          const TimelineId *tl, Lsn lsn)
{
    if (lsn_wait_timeline(mgr, tsid, tl, lsn) == NULL)
        return false;
    LsnWait *w = xcalloc(1, sizeof(*w));
    w->j = j;
    w->mgr = mgr;
    w->tsid = *tsid;
    w->tl = *tl;
    w->lsn = lsn;
    uint64_t ms = j->app->cfg.wait_lsn_timeout_ms;
    clock_gettime(CLOCK_MONOTONIC, &w->deadline);
    w->deadline.tv_sec += (time_t)(ms / 1000);
    w->deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (w->deadline.tv_nsec >= 1000000000L) {
        w->deadline.tv_sec++;
        w->deadline.tv_nsec -= 1000000000L;
    }
    w->ev = event_new(j->app->base, -1, EV_PERSIST, on_lsn_wait_tick, w);
    struct timeval tv = {0, WAIT_LSN_POLL_MS * 1000};
    event_add(w->ev, &tv);
    return true;
}

static void read_start(ReadJob *j, TenantManager *mgr, const TenantShardId *tsid,
                       const TimelineId *tl)
{
    if (lsn_wait_park(j, mgr, tsid, tl, j->wait_lsn))
        return;
    if (!read_prepare(j, mgr, tsid, tl)) {
        j->ok = false;
        pageserver_defer(j->app, read_answer, j);
        return;
    }
    slot_job_begin(j->slot);
    if (read_on_loop(j)) {
        pageserver_defer(j->app, read_done_on_loop, j);
        return;
    }
    /* the size walk of a whole timeline is background work: it must not hold the threads that
     * page reads keep for themselves */
    WorkerJobSpec spec = {.cls = WORKER_CLASS_LATENCY, .deadline_ms = PAGESERVER_READ_DEADLINE_MS};
    if (j->kind != READ_BATCH)
        spec = (WorkerJobSpec){.cls = WORKER_CLASS_IO};
    worker_pool_start(j->app->workers, &spec, read_work, read_done, j);
}

static ReadJob *read_job_new(TenantManager *mgr, ReadKind kind, void *arg)
{
    ReadJob *j = xcalloc(1, sizeof(*j));
    clock_gettime(CLOCK_MONOTONIC, &j->start);
    j->kind = kind;
    j->app = mgr->app;
    j->ok = true;
    j->arg = arg;
    return j;
}

void read_path_batch(TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                     Lsn wait_lsn, ReadItem *items, size_t n, ReadBatchFn cb, void *arg)
{
    ReadJob *j = read_job_new(mgr, READ_BATCH, arg);
    j->items = items;
    j->n_items = n;
    j->wait_lsn = wait_lsn;
    j->cb.batch = cb;
    read_start(j, mgr, tsid, tl);
}

void read_item_finish(ReadItem *it)
{
    free(it->segment);
    it->segment = NULL;
    it->segment_len = 0;
}

/* ---- single reads: batches of one ---- */

typedef struct SingleRead {
    ReadItem item;
    union {
        ReadPageFn page;
        ReadRelSizeFn rel_size;
        ReadRelExistsFn rel_exists;
        ReadDbSizeFn db_size;
    } cb;
    void *arg;
} SingleRead;

static void single_done(const Err *batch_err, ReadItem *items, size_t n, void *arg)
{
    SingleRead *s = arg;
    const ReadItem *it = &items[0];
    const Err *err = it->ok ? NULL : &it->err;
    switch (it->op) {
    case READ_OP_PAGE:
        s->cb.page(err, err ? NULL : it->page, s->arg);
        break;
    case READ_OP_REL_SIZE:
        s->cb.rel_size(err, err ? 0 : it->nblocks, s->arg);
        break;
    case READ_OP_REL_EXISTS:
        s->cb.rel_exists(err, !err && it->exists, s->arg);
        break;
    default: /* READ_OP_DB_SIZE */
        s->cb.db_size(err, err ? 0 : it->bytes, s->arg);
        break;
    }
    free(s);
}

/* single_read: s->item as a batch of one at lsn (waited for when beyond last_record_lsn). */
static void single_read(TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                        SingleRead *s, Lsn lsn)
{
    s->item.lsn = lsn;
    read_path_batch(mgr, tsid, tl, lsn, &s->item, 1, single_done, s);
}

static SingleRead *single_new(ReadOp op, const RelTag *rel, void *arg)
{
    SingleRead *s = xcalloc(1, sizeof(*s));
    s->item.op = op;
    s->item.rel = *rel;
    s->arg = arg;
    return s;
}

void read_path_get_page(TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                        const RelTag *rel, uint32_t blkno, Lsn lsn, ReadPageFn cb, void *arg)
{
    SingleRead *s = single_new(READ_OP_PAGE, rel, arg);
    s->item.blkno = blkno;
    s->cb.page = cb;
    single_read(mgr, tsid, tl, s, lsn);
}

void read_path_rel_size(TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                        const RelTag *rel, Lsn lsn, ReadRelSizeFn cb, void *arg)
{
    SingleRead *s = single_new(READ_OP_REL_SIZE, rel, arg);
    s->cb.rel_size = cb;
    single_read(mgr, tsid, tl, s, lsn);
}

void read_path_rel_exists(TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                          const RelTag *rel, Lsn lsn, ReadRelExistsFn cb, void *arg)
{
    SingleRead *s = single_new(READ_OP_REL_EXISTS, rel, arg);
    s->cb.rel_exists = cb;
    single_read(mgr, tsid, tl, s, lsn);
}

void read_path_db_size(TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                       uint32_t spc, uint32_t db, Lsn lsn, ReadDbSizeFn cb, void *arg)
{
    RelTag rel = {.spc = spc, .db = db};
    SingleRead *s = single_new(READ_OP_DB_SIZE, &rel, arg);
    s->cb.db_size = cb;
    single_read(mgr, tsid, tl, s, lsn);
}

void read_path_timeline_sizes(Timeline *tl, ReadSizesFn cb, void *arg)
{
    ReadJob *j = read_job_new(tl->slot->mgr, READ_TIMELINE_SIZES, arg);
    j->cb.sizes = cb;
    j->timeline = tl;
    read_start(j, tl->slot->mgr, &tl->slot->tsid, &tl->id);
}

/* own_read: a listing or custom read of (tsid, tl) at lsn, checked like a batch item. */
static void own_read(ReadJob *j, TenantManager *mgr, const TenantShardId *tsid,
                     const TimelineId *tl, Lsn lsn)
{
    j->own_item.op = READ_OP_DB_SIZE; /* any op but a page: no ownership check */
    j->own_item.lsn = lsn;
    j->items = &j->own_item;
    j->n_items = 1;
    j->wait_lsn = lsn;
    read_start(j, mgr, tsid, tl);
}

void read_path_list_relations(TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                              Lsn lsn, ReadRelListFn cb, void *arg)
{
    ReadJob *j = read_job_new(mgr, READ_REL_LIST, arg);
    j->cb.rel_list = cb;
    own_read(j, mgr, tsid, tl, lsn);
}

void read_path_run(TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl, Lsn lsn,
                   ReadWorkFn work, ReadWorkDoneFn done, void *arg)
{
    ReadJob *j = read_job_new(mgr, READ_CUSTOM, arg);
    j->work = work;
    j->cb.run = done;
    own_read(j, mgr, tsid, tl, lsn);
}

/* ---- read views: the page service's reads on its own threads ---- */

/* ViewShard: one attached shard of the view's tenant, as tenant_manager_shard_for_key sees it;
 * readable when the timeline is served there (then target and levels are set). */
typedef struct ViewShard {
    ShardIdentity shard;
    bool readable;
    ReadTarget target;
    ChainLevel *levels; /* references */
    size_t n_levels;
} ViewShard;

struct ReadView {
    PageserverApp *app;
    const TenantManager *mgr; /* read_epoch only: the one field other threads read */
    uint64_t epoch;           /* mgr->read_epoch when the view was built */
    size_t n;
    ViewShard shards[];
};

ReadView *read_view_build(TenantManager *mgr, const TenantId *tenant, const TimelineId *tl_id)
{
    if (!mgr->ready || mgr->stopping || mgr->app->page_cache == NULL)
        return NULL;
    const TenantShards *e = tenant_manager_tenant_shards(mgr, tenant);
    if (e == NULL || e->n == 0)
        return NULL;
    ReadView *v = xcalloc(1, sizeof(*v) + e->n * sizeof(ViewShard));
    v->app = mgr->app;
    v->mgr = mgr;
    v->epoch = atomic_load_explicit(&mgr->read_epoch, memory_order_acquire);
    bool any = false;
    for (size_t i = 0; i < e->n; i++) {
        TenantSlot *slot = e->slots[i];
        if (slot->state != SLOT_ACTIVE) /* as tenant_manager_shard_for_key */
            continue;
        ViewShard *vs = &v->shards[v->n++];
        vs->shard = slot->shard;
        Err err = {0};
        const Timeline *tl = slot_find_timeline(slot, tl_id);
        if (!slot_check_readable(slot, &err) || tl == NULL || !timeline_is_served(tl) ||
            tl->state == TIMELINE_STOPPING || tl->state == TIMELINE_BROKEN)
            continue; /* read_prepare's refusals: such reads take the main loop's path */
        vs->readable = true;
        target_of(slot, tl, &vs->target);
        vs->levels = chain_take(tl, &vs->n_levels);
        any = true;
    }
    if (!any) {
        read_view_free(v);
        return NULL;
    }
    return v;
}

void read_view_free(ReadView *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n; i++)
        chain_release(v->shards[i].levels, v->shards[i].n_levels);
    free(v);
}

bool read_view_current(const ReadView *v)
{
    return v->epoch == atomic_load_explicit(&v->mgr->read_epoch, memory_order_acquire);
}

/* view_route: the shard tenant_manager_shard_for_key picks for key (the attached shard with the
 * most shards that owns it), when it is readable in the view. */
static const ViewShard *view_route(const ReadView *v, const Key *key)
{
    const ViewShard *best = NULL;
    for (size_t i = 0; i < v->n; i++) {
        const ViewShard *s = &v->shards[i];
        if (key_to_shard_number(s->shard.count, s->shard.stripe_size, key) == s->shard.number &&
            (best == NULL || s->shard.count > best->shard.count))
            best = s;
    }
    return best != NULL && best->readable ? best : NULL;
}

bool read_view_batch(const ReadView *v, Lsn wait_lsn, ReadItem *items, size_t n)
{
    if (failpoint_any_armed()) /* the main loop's path evaluates them */
        return false;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    ReadJob j;
    memset(&j, 0, sizeof(j));
    j.kind = READ_BATCH;
    j.app = v->app;
    j.items = items;
    j.n_items = n;
    j.fp_done = n; /* nothing armed: read_item need not evaluate "getpage" */
    j.memory_only = true;
    const ViewShard *cur = NULL;
    for (size_t i = 0; i < n; i++) {
        ReadItem *it = &items[i];
        if (it->op != READ_OP_PAGE && it->op != READ_OP_REL_SIZE && it->op != READ_OP_REL_EXISTS)
            return false;
        Key key = it->op == READ_OP_PAGE
                      ? key_rel_block(it->rel.spc, it->rel.db, it->rel.rel, it->rel.fork, it->blkno)
                      : key_dbdir(); /* any shard-0 key */
        const ViewShard *s = view_route(v, &key);
        /* an LSN the view's copy of last_record_lsn does not cover may need a wait, or a
         * last_record_lsn that moved on since: the main loop's path knows */
        if (s == NULL || it->lsn == LSN_INVALID || it->lsn > s->target.last_record_lsn ||
            wait_lsn > s->target.last_record_lsn)
            return false;
        if (s != cur) {
            cur = s;
            j.levels = s->levels;
            j.n_levels = s->n_levels;
            j.size_cached = false;
        }
        err_clear(&it->err);
        if (!prepare_item(&s->target, it) || !read_item(&j, it) || j.not_in_memory)
            return false; /* errors and reads from disk: the main loop's path */
        it->ok = true;
    }
    observe_pages(v->app, &start, items, n, true);
    return true;
}
