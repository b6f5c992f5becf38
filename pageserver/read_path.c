/* read_path.c: getpage through the ancestor chain, on the worker pool. */
#include "pageserver/read_path.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/failpoint.h"
#include "shared/key.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/str.h"
#include "shared/worker_pool.h"

#include "pageserver/app.h"
#include "pageserver/http_api.h"
#include "pageserver/layer_map.h"
#include "pageserver/tenant.h"
#include "pageserver/timeline.h"

/* parse_u32_field: decimal u32 in [min, max] or a 400 naming what. */
static bool parse_u32_field(const char *s, const char *what, uint64_t min, uint64_t max,
                            uint32_t *out, Err *err)
{
    uint64_t v;
    if (s == NULL || !parse_u64(s, min, max, &v)) {
        err_set(err, ERR_BAD_REQUEST,
                "%s: expected a decimal number in %" PRIu64 "..%" PRIu64 ", got \"%s\"", what, min,
                max, s ? s : "");
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

bool getpage_parse_query(const char *rel, const char *fork, const char *blkno, const char *lsn,
                         GetPageRequest *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (rel == NULL || fork == NULL || blkno == NULL) {
        err_set(err, ERR_BAD_REQUEST,
                "missing query parameter \"%s\" (need rel=<spc>/<db>/<rel>, "
                "fork=<n>, blkno=<n>, optional lsn=<X/X>)",
                rel == NULL    ? "rel"
                : fork == NULL ? "fork"
                               : "blkno");
        return false;
    }
    char parts[3][16];
    const char *p = rel;
    for (int i = 0; i < 3; i++) {
        size_t len = strcspn(p, "/");
        if (len == 0 || len >= sizeof(parts[i]) || (i < 2 && p[len] != '/') ||
            (i == 2 && p[len] != '\0')) {
            err_set(err, ERR_BAD_REQUEST, "rel: expected <spcnode>/<dbnode>/<relnode>, got \"%s\"",
                    rel);
            return false;
        }
        memcpy(parts[i], p, len);
        parts[i][len] = '\0';
        p += len + (i < 2 ? 1 : 0);
    }
    uint32_t f = 0;
    if (!parse_u32_field(parts[0], "rel (spcnode)", 0, UINT32_MAX, &out->spc, err) ||
        !parse_u32_field(parts[1], "rel (dbnode)", 0, UINT32_MAX, &out->db, err) ||
        !parse_u32_field(parts[2], "rel (relnode)", 1, UINT32_MAX, &out->rel, err) ||
        !parse_u32_field(fork, "fork", 0, FORK_INIT, &f, err) ||
        !parse_u32_field(blkno, "blkno", 0, UINT32_MAX - 1, &out->blkno, err))
        return false;
    out->fork = (uint8_t)f;
    if (lsn != NULL) {
        if (!lsn_parse(lsn, &out->lsn, err)) {
            err_prefix(err, "lsn: ");
            return false;
        }
        out->has_lsn = true;
    }
    return true;
}

typedef struct ChainLevel {
    Layer **layers; /* references */
    size_t n;
    Lsn lsn;
} ChainLevel;

typedef struct GetPageJob {
    PageserverApp *app;
    struct TenantSlot *slot;
    HttpRequest *req;
    ChainLevel *levels;
    size_t n_levels;
    Key size_key;
    Key block_key;
    uint32_t blkno;
    char tsid[TSID_STR_SIZE];
    struct timespec start;
    /* result */
    bool ok;
    Err err;
    uint8_t page[BLCKSZ];
    uint64_t downloaded;
} GetPageJob;

/* chain_get: the value of key through the levels (see the header). */
static bool chain_get(GetPageJob *j, const Key *key, void **value, size_t *len, bool *found)
{
    *found = false;
    for (size_t i = 0; i < j->n_levels; i++) {
        ChainLevel *lv = &j->levels[i];
        Layer *l = layer_map_find_image(lv->layers, lv->n, key, lv->lsn);
        if (l == NULL)
            continue;
        return layer_obj_get(l, j->app->remote, key, value, len, found, &j->downloaded, &j->err);
    }
    return true;
}

static void getpage_work(void *arg)
{
    GetPageJob *j = arg;
    void *v = NULL;
    size_t len = 0;
    bool found = false;
    char key[KEY_STR_SIZE];
    j->ok = failpoint_check("getpage", &j->err) && chain_get(j, &j->size_key, &v, &len, &found);
    if (!j->ok)
        return;
    if (!found) {
        key_format(&j->size_key, key);
        err_set(&j->err, ERR_NOT_FOUND, "relation not found (no size key %s at this LSN)", key);
        j->ok = false;
        return;
    }
    if (len != 4) {
        free(v);
        key_format(&j->size_key, key);
        err_set(&j->err, ERR_INTERNAL, "relation size key %s: %zu bytes, expected 4", key, len);
        j->ok = false;
        return;
    }
    const uint8_t *b = v;
    uint32_t nblocks =
        (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    free(v);
    if (j->blkno >= nblocks) {
        err_set(&j->err, ERR_NOT_FOUND, "block %u is past the end of the relation (%u blocks)",
                j->blkno, nblocks);
        j->ok = false;
        return;
    }
    v = NULL;
    if (!chain_get(j, &j->block_key, &v, &len, &found)) {
        j->ok = false;
        return;
    }
    if (!found) {
        memset(j->page, 0, sizeof(j->page)); /* a hole inside the relation */
        return;
    }
    if (len != BLCKSZ) {
        free(v);
        key_format(&j->block_key, key);
        err_set(&j->err, ERR_INTERNAL, "page %s: %zu bytes, expected %d", key, len, BLCKSZ);
        j->ok = false;
        return;
    }
    memcpy(j->page, v, BLCKSZ);
    free(v);
}

static void getpage_done(void *arg)
{
    GetPageJob *j = arg;
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    double secs =
        (double)(end.tv_sec - j->start.tv_sec) + (double)(end.tv_nsec - j->start.tv_nsec) / 1e9;
    metric_histogram_observe(j->app->m.getpage_seconds, secs);
    if (j->downloaded > 0) {
        metric_counter_add(j->app->m.layers_downloaded, 1);
        metric_counter_add(j->app->m.layer_bytes_downloaded, j->downloaded);
    }
    if (j->ok) {
        pageserver_reply_raw(j->app, j->req, 200, "application/octet-stream", j->page, BLCKSZ);
    } else {
        metric_counter_add(j->app->m.getpage_errors, 1);
        pageserver_reply_error(j->app, j->req, &j->err);
    }
    for (size_t i = 0; i < j->n_levels; i++) {
        for (size_t k = 0; k < j->levels[i].n; k++)
            layer_obj_unref(j->levels[i].layers[k]);
        free(j->levels[i].layers);
    }
    free(j->levels);
    struct TenantSlot *slot = j->slot;
    free(j);
    slot_job_end(slot);
}

void read_path_getpage(struct TenantSlot *slot, HttpRequest *req, const TimelineId *tl_id,
                       const GetPageRequest *r)
{
    PageserverApp *app = slot->mgr->app;
    Err err = {0};
    char id[ID_STR_SIZE];
    timeline_id_format(tl_id, id);
    Timeline *tl = slot_find_timeline(slot, tl_id);
    if (tl == NULL || tl->state == TIMELINE_LOADING || tl->state == TIMELINE_STOPPING) {
        err_set(&err, ERR_NOT_FOUND, "timeline %s not found", id);
        pageserver_reply_error(app, req, &err);
        return;
    }
    if (tl->state == TIMELINE_BROKEN) {
        err_set(&err, ERR_INTERNAL, "timeline %s is broken: %s", id, tl->broken_reason);
        pageserver_reply_error(app, req, &err);
        return;
    }
    Key block = key_rel_block(r->spc, r->db, r->rel, r->fork, r->blkno);
    if (!shard_identity_is_key_local(&slot->shard, &block)) {
        char key[KEY_STR_SIZE];
        key_format(&block, key);
        ShardNumber owner = key_to_shard_number(slot->shard.count, slot->shard.stripe_size, &block);
        err_set(&err, ERR_NOT_FOUND,
                "key %s is not owned by shard %s (it belongs to shard number %u)", key,
                slot->tsid_str, (unsigned)owner);
        pageserver_reply_error(app, req, &err);
        return;
    }
    Lsn lsn = r->has_lsn && r->lsn < tl->last_record_lsn ? r->lsn : tl->last_record_lsn;
    Lsn min_readable = tl->gc_cutoff_lsn > tl->initdb_lsn ? tl->gc_cutoff_lsn : tl->initdb_lsn;
    if (lsn < min_readable) {
        char a[LSN_STR_SIZE], b[LSN_STR_SIZE];
        lsn_format(lsn, a);
        lsn_format(min_readable, b);
        err_set(&err, ERR_BAD_REQUEST, "lsn %s is below the timeline's min_readable_lsn %s", a, b);
        pageserver_reply_error(app, req, &err);
        return;
    }
    GetPageJob *j = xcalloc(1, sizeof(*j));
    clock_gettime(CLOCK_MONOTONIC, &j->start);
    j->app = app;
    j->slot = slot;
    j->req = req;
    j->size_key = key_rel_size(r->spc, r->db, r->rel, r->fork);
    j->block_key = block;
    j->blkno = r->blkno;
    str_copy(j->tsid, sizeof(j->tsid), slot->tsid_str);
    size_t depth = 0;
    for (const Timeline *t = tl; t != NULL; t = t->has_ancestor ? t->ancestor : NULL)
        depth++;
    j->levels = xcalloc(depth, sizeof(*j->levels));
    const Timeline *t = tl;
    while (t != NULL) {
        ChainLevel *lv = &j->levels[j->n_levels++];
        lv->lsn = lsn;
        lv->layers = xcalloc(t->n_layers ? t->n_layers : 1, sizeof(Layer *));
        for (size_t i = 0; i < t->n_layers; i++)
            lv->layers[lv->n++] = layer_obj_ref(t->layers[i]);
        if (!t->has_ancestor)
            break;
        if (t->ancestor_lsn < lsn)
            lsn = t->ancestor_lsn;
        t = t->ancestor;
    }
    slot_job_begin(slot);
    worker_pool_submit(app->workers, getpage_work, getpage_done, j);
}
