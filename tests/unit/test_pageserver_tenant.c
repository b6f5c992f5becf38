/* test_pageserver_tenant.c: unit tests for the TenantManager's slot tables (hash lookup by
 * TenantShardId and by tenant id, growth and removal), tenant_manager_shard_for_key, and the
 * read path's asynchronous calls (page, relation size, relation exists, database size) on a
 * timeline bootstrapped from a real initdb (skipped when PostgreSQL 15's initdb is absent). The
 * read results are checked against the files of the initdb archive the bootstrap uploaded. Read
 * views (read_path.h): read on another thread, what they decline, when they go stale. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "shared/err.h"
#include "shared/failpoint.h"
#include "shared/fsutil.h"
#include "shared/id.h"
#include "shared/key.h"
#include "shared/metrics.h"
#include "shared/remote_storage.h"
#include "shared/str.h"
#include "shared/tar.h"
#include "shared/worker_pool.h"

#include "pageserver/app.h"
#include "pageserver/bootstrap.h"
#include "pageserver/layer.h"
#include "pageserver/page_cache.h"
#include "pageserver/read_path.h"
#include "pageserver/remote_layout.h"
#include "pageserver/slot.h"
#include "pageserver/tenant.h"
#include "pageserver/timeline.h"

#include "dep_util.h"
#include "loop_util.h"
#include "pageserver_fixture.h"

#ifndef PG_BIN
#define PG_BIN "/usr/lib/postgresql/15/bin"
#endif

#define PG_CLASS_RELNODE 1259u
#define POSTGRES_DB_OID  5u

/* ---- slot tables ---- */

static void test_hash_lookup(void **state)
{
    Fixture *f = *state;
    TenantManager *mgr = f->app.tenants;
    enum { TENANTS = 100, SHARDS = 4 }; /* 400 slots: the tables grow several times */
    for (int t = 0; t < TENANTS; t++) {
        for (int s = 0; s < SHARDS; s++) {
            TenantShardId tsid = make_tsid((uint8_t)t, (ShardNumber)s, SHARDS);
            assert_null(tenant_manager_find(mgr, &tsid));
            (void)slot_new(mgr, &tsid);
        }
    }
    assert_int_equal(mgr->n_slots, TENANTS * SHARDS);
    assert_true(mgr->n_buckets >= mgr->n_slots);
    for (int t = 0; t < TENANTS; t++) {
        for (int s = 0; s < SHARDS; s++) {
            TenantShardId tsid = make_tsid((uint8_t)t, (ShardNumber)s, SHARDS);
            TenantSlot *slot = tenant_manager_find(mgr, &tsid);
            assert_non_null(slot);
            assert_true(tsid_eq(&slot->tsid, &tsid));
        }
        TenantShardId any = make_tsid((uint8_t)t, 0, SHARDS);
        const TenantShards *e = tenant_manager_tenant_shards(mgr, &any.tenant_id);
        assert_non_null(e);
        assert_int_equal(e->n, SHARDS);
        for (size_t i = 0; i < e->n; i++)
            assert_true(tenant_id_eq(&e->slots[i]->tsid.tenant_id, &any.tenant_id));
    }
    /* the same tenant with another count is another slot */
    TenantShardId other_count = make_tsid(3, 0, 8);
    assert_null(tenant_manager_find(mgr, &other_count));
    TenantShardId unknown = make_tsid(200, 0, SHARDS);
    assert_null(tenant_manager_tenant_shards(mgr, &unknown.tenant_id));

    /* removal: the shard is gone from both tables, its siblings stay, and a tenant whose last
     * shard goes has no entry */
    TenantShardId gone = make_tsid(5, 2, SHARDS);
    TenantSlot *slot = tenant_manager_find(mgr, &gone);
    tenant_manager_unlink(mgr, slot);
    slot_free(slot);
    assert_null(tenant_manager_find(mgr, &gone));
    assert_int_equal(tenant_manager_tenant_shards(mgr, &gone.tenant_id)->n, SHARDS - 1);
    for (int s = 0; s < SHARDS; s++) {
        TenantShardId tsid = make_tsid(5, (ShardNumber)s, SHARDS);
        assert_true((tenant_manager_find(mgr, &tsid) == NULL) == (s == 2));
    }
    for (int s = 0; s < SHARDS; s++) {
        TenantShardId tsid = make_tsid(9, (ShardNumber)s, SHARDS);
        slot = tenant_manager_find(mgr, &tsid);
        tenant_manager_unlink(mgr, slot);
        slot_free(slot);
    }
    TenantShardId nine = make_tsid(9, 0, SHARDS);
    assert_null(tenant_manager_tenant_shards(mgr, &nine.tenant_id));
    assert_int_equal(mgr->n_slots, TENANTS * SHARDS - 1 - SHARDS);
    /* every remaining slot is still found, and listed once in creation order */
    for (size_t i = 0; i < mgr->n_slots; i++) {
        assert_ptr_equal(tenant_manager_find(mgr, &mgr->slots[i]->tsid), mgr->slots[i]);
        if (i > 0)
            assert_true(
                memcmp(&mgr->slots[i - 1]->tsid, &mgr->slots[i]->tsid, sizeof(TenantShardId)) != 0);
    }
}

/* ---- shard for key ---- */

static void test_shard_for_key(void **state)
{
    Fixture *f = *state;
    TenantManager *mgr = f->app.tenants;
    const uint32_t stripe = 8;
    /* shards 0, 1 and 3 of 4 are attached here; shard 2 is not */
    TenantShardId s0 = make_tsid(1, 0, 4), s1 = make_tsid(1, 1, 4), s3 = make_tsid(1, 3, 4);
    (void)active_slot(mgr, &s0, stripe);
    (void)active_slot(mgr, &s1, stripe);
    (void)active_slot(mgr, &s3, stripe);
    int seen[4] = {0};
    for (uint32_t blk = 0; blk < 64 * stripe; blk++) {
        Key k = key_rel_block(1663, 5, 16384 + blk % 3, 0, blk);
        ShardNumber owner = key_to_shard_number(4, stripe, &k);
        TenantShardId out;
        Err err = {0};
        bool ok = tenant_manager_shard_for_key(mgr, &s0.tenant_id, &k, &out, &err);
        seen[owner]++;
        if (owner == 2) {
            assert_false(ok);
            assert_int_equal(err.code, ERR_NOT_FOUND);
            assert_non_null(strstr(err.msg, "shard number 2"));
            continue;
        }
        assert_true(ok);
        assert_int_equal(out.number, owner);
        assert_int_equal(out.count, 4);
        assert_true(tenant_id_eq(&out.tenant_id, &s0.tenant_id));
    }
    for (int i = 0; i < 4; i++)
        assert_true(seen[i] > 0); /* every shard owned some of the keys */
    /* global and shard-0-only keys: shard 0 */
    Key globals[] = {key_rel_size(1663, 5, 16384, 0), key_reldir(1663, 5), key_dbdir(),
                     key_rel_block(1663, 5, 16384, FORK_INIT, 9), key_checkpoint()};
    for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++) {
        TenantShardId out;
        Err err = {0};
        assert_true(tenant_manager_shard_for_key(mgr, &s0.tenant_id, &globals[i], &out, &err));
        assert_int_equal(out.number, 0);
    }
    /* an unsharded tenant owns every key */
    TenantShardId u = make_tsid(2, 0, 0);
    (void)active_slot(mgr, &u, 0);
    Key k = key_rel_block(1663, 5, 16384, 0, 12345);
    TenantShardId out;
    Err err = {0};
    assert_true(tenant_manager_shard_for_key(mgr, &u.tenant_id, &k, &out, &err));
    assert_true(tsid_eq(&out, &u));
    /* a tenant that is not here, or whose only shard is not active */
    TenantShardId absent = make_tsid(3, 0, 0);
    assert_false(tenant_manager_shard_for_key(mgr, &absent.tenant_id, &k, &out, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    TenantShardId inactive = make_tsid(4, 0, 0);
    (void)slot_new(mgr, &inactive);
    assert_false(tenant_manager_shard_for_key(mgr, &inactive.tenant_id, &k, &out, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    /* during a split the children (higher count) win where they are here */
    TenantShardId c1 = make_tsid(1, 1, 8);
    (void)active_slot(mgr, &c1, stripe);
    for (uint32_t blk = 0; blk < 16 * stripe; blk++) {
        Key key = key_rel_block(1663, 5, 16384, 0, blk);
        if (key_to_shard_number(8, stripe, &key) != 1)
            continue;
        assert_true(tenant_manager_shard_for_key(mgr, &s0.tenant_id, &key, &out, &err));
        assert_true(tsid_eq(&out, &c1));
    }
    /* not ready: 503 */
    mgr->ready = false;
    assert_false(tenant_manager_shard_for_key(mgr, &s0.tenant_id, &k, &out, &err));
    assert_int_equal(err.code, ERR_UNAVAILABLE);
    mgr->ready = true;
}

/* ---- read path on a bootstrapped timeline ---- */

typedef struct Answer {
    int calls;
    bool failed;
    Err err;
    uint8_t page[BLCKSZ];
    uint32_t nblocks;
    bool exists;
    uint64_t bytes;
} Answer;

static void answer_err(Answer *a, const Err *err)
{
    a->calls++;
    a->failed = err != NULL;
    if (err != NULL)
        a->err = *err;
}

static void on_page(const Err *err, const uint8_t *page, void *arg)
{
    Answer *a = arg;
    answer_err(a, err);
    if (err == NULL)
        memcpy(a->page, page, BLCKSZ);
    else
        assert_null(page);
}

static void on_rel_size(const Err *err, uint32_t nblocks, void *arg)
{
    Answer *a = arg;
    answer_err(a, err);
    a->nblocks = nblocks;
}

static void on_rel_exists(const Err *err, bool exists, void *arg)
{
    Answer *a = arg;
    answer_err(a, err);
    a->exists = exists;
}

static void on_db_size(const Err *err, uint64_t bytes, void *arg)
{
    Answer *a = arg;
    answer_err(a, err);
    a->bytes = bytes;
}

/* wait: the call did not answer from inside itself, then answers exactly once. */
static void wait_answer(PageserverApp *app, Answer *a)
{
    assert_int_equal(a->calls, 0);
    assert_true(loop_run_until(app->base, &a->calls, 1, 30000));
    loop_run_for(app->base, 10);
    assert_int_equal(a->calls, 1);
}

/* bootstrapped_timeline: bootstrap (initdb, convert, layers) into an active unsharded slot, and
 * extract the initdb archive it uploaded into pgdata for the expected values. Skips the test
 * when initdb is absent (fails it under CI: dep_util.h). */
static void bootstrapped_timeline(Fixture *f, TenantShardId *tsid, TimelineId *tl_id, char *pgdata,
                                  size_t cap)
{
    if (access(PG_BIN "/initdb", X_OK) != 0)
        SKIP_MISSING_DEP(PG_BIN "/initdb is absent (install postgresql-15)");
    PageserverApp *app = &f->app;
    *tsid = make_tsid(42, 0, 0);
    memset(tl_id, 0x5a, sizeof(*tl_id));
    TenantSlot *slot = active_slot(app->tenants, tsid, 0);
    Timeline *tl = timeline_new(slot, tl_id);
    BootstrapParams bp;
    memset(&bp, 0, sizeof(bp));
    str_copy(bp.workdir, sizeof(bp.workdir), app->cfg.workdir);
    str_copy(bp.pg_bin_dir, sizeof(bp.pg_bin_dir), PG_BIN);
    str_copy(bp.initdb_user, sizeof(bp.initdb_user), "postgres");
    bp.rs = app->remote;
    bp.tsid = *tsid;
    bp.tl = *tl_id;
    bp.shard = slot->shard;
    bp.gen = 1;
    str_copy(bp.timeline_dir, sizeof(bp.timeline_dir), tl->dir);
    BootstrapResult r;
    memset(&r, 0, sizeof(r));
    Err err = {0};
    if (!bootstrap_run(&bp, &r, &err))
        fail_msg("bootstrap: %s", err.msg);
    for (size_t i = 0; i < r.n_layers; i++) {
        Layer *l = NULL;
        if (!layer_obj_new(&r.layers[i], &tsid->tenant_id, tl_id, tl->dir, true, &l, &err) ||
            !timeline_add_layer(tl, l, &err))
            fail_msg("layer: %s", err.msg);
    }
    tl->initdb_lsn = r.initdb_lsn;
    tl->gc_cutoff_lsn = r.initdb_lsn;
    tl->disk_consistent_lsn = r.initdb_lsn + 8;
    tl->last_record_lsn = tl->disk_consistent_lsn;
    tl->pg_version = r.pg_version;
    tl->state = TIMELINE_ACTIVE;
    slot_add_timeline(slot, tl);
    bootstrap_result_finish(&r);

    char key[REMOTE_KEY_SIZE], archive[1024];
    remote_layout_initdb_key(&tsid->tenant_id, tl_id, key);
    str_printf(archive, sizeof(archive), "%s/remote/%s", f->tmp, key);
    str_printf(pgdata, cap, "%s/pgdata", f->tmp);
    if (!fs_mkdir_p(pgdata, 0700, &err) || !tar_zst_extract_to_dir(archive, pgdata, &err))
        fail_msg("extracting %s: %s", archive, err.msg);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* relation_bytes: the size of every relation file of a database directory (names starting with
 * a digit: <relnode>[_fork][.seg]). */
static uint64_t relation_bytes(const char *dir)
{
    uint64_t sum = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char path[1024];
        str_printf(path, sizeof(path), "%s/%s", dir, de->d_name);
        sum += (uint64_t)file_size(path);
    }
    closedir(d);
    return sum;
}

static void test_read_path_bootstrapped(void **state)
{
    Fixture *f = *state;
    PageserverApp *app = &f->app;
    TenantManager *mgr = app->tenants;
    TenantShardId tsid;
    TimelineId tl;
    char pgdata[512];
    bootstrapped_timeline(f, &tsid, &tl, pgdata, sizeof(pgdata));
    char path[1024], dbdir[1024];
    str_printf(dbdir, sizeof(dbdir), "%s/base/%u", pgdata, POSTGRES_DB_OID);
    str_printf(path, sizeof(path), "%s/%u", dbdir, PG_CLASS_RELNODE);
    off_t pg_class_bytes = file_size(path);
    assert_true(pg_class_bytes > 0 && pg_class_bytes % BLCKSZ == 0);
    uint32_t want_nblocks = (uint32_t)(pg_class_bytes / BLCKSZ);
    RelTag pg_class = {DEFAULTTABLESPACE_OID, POSTGRES_DB_OID, PG_CLASS_RELNODE, FORK_MAIN};

    /* relation size */
    Answer a = {0};
    read_path_rel_size(mgr, &tsid, &tl, &pg_class, LSN_INVALID, on_rel_size, &a);
    wait_answer(app, &a);
    assert_false(a.failed);
    assert_int_equal(a.nblocks, want_nblocks);

    /* the last page, byte for byte, and one past the end */
    Answer p = {0};
    read_path_get_page(mgr, &tsid, &tl, &pg_class, want_nblocks - 1, LSN_INVALID, on_page, &p);
    wait_answer(app, &p);
    assert_false(p.failed);
    uint8_t want[BLCKSZ];
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, (long)(want_nblocks - 1) * BLCKSZ, SEEK_SET), 0);
    assert_int_equal(fread(want, 1, BLCKSZ, fp), BLCKSZ);
    fclose(fp);
    assert_memory_equal(p.page, want, BLCKSZ);
    Answer past = {0};
    read_path_get_page(mgr, &tsid, &tl, &pg_class, want_nblocks, LSN_INVALID, on_page, &past);
    wait_answer(app, &past);
    assert_true(past.failed);
    assert_int_equal(past.err.code, ERR_NOT_FOUND);
    assert_non_null(strstr(past.err.msg, "past the end"));

    /* existence: main fork yes; the fsm fork as the files say; no init fork; unknown relnode */
    struct {
        uint32_t rel;
        uint8_t fork;
        bool want;
    } ex[] = {
        {PG_CLASS_RELNODE, FORK_MAIN, true},
        {PG_CLASS_RELNODE, FORK_FSM, false},
        {PG_CLASS_RELNODE, FORK_INIT, false},
        {4000000000u, FORK_MAIN, false},
    };
    str_printf(path, sizeof(path), "%s/%u_fsm", dbdir, PG_CLASS_RELNODE);
    ex[1].want = access(path, F_OK) == 0;
    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
        RelTag rel = {DEFAULTTABLESPACE_OID, POSTGRES_DB_OID, ex[i].rel, ex[i].fork};
        Answer e = {0};
        read_path_rel_exists(mgr, &tsid, &tl, &rel, LSN_INVALID, on_rel_exists, &e);
        wait_answer(app, &e);
        assert_false(e.failed);
        assert_int_equal(e.exists, ex[i].want);
    }

    /* the size of a relation that does not exist: 404 */
    RelTag missing = {DEFAULTTABLESPACE_OID, POSTGRES_DB_OID, 4000000000u, FORK_MAIN};
    Answer m = {0};
    read_path_rel_size(mgr, &tsid, &tl, &missing, LSN_INVALID, on_rel_size, &m);
    wait_answer(app, &m);
    assert_true(m.failed);
    assert_int_equal(m.err.code, ERR_NOT_FOUND);

    /* database size: every relation file of base/5; an unknown database: 404 */
    Answer d = {0};
    read_path_db_size(mgr, &tsid, &tl, DEFAULTTABLESPACE_OID, POSTGRES_DB_OID, LSN_INVALID,
                      on_db_size, &d);
    wait_answer(app, &d);
    assert_false(d.failed);
    assert_int_equal(d.bytes, relation_bytes(dbdir));
    assert_true(d.bytes >= (uint64_t)pg_class_bytes);
    Answer nd = {0};
    read_path_db_size(mgr, &tsid, &tl, DEFAULTTABLESPACE_OID, 999999, LSN_INVALID, on_db_size, &nd);
    wait_answer(app, &nd);
    assert_true(nd.failed);
    assert_int_equal(nd.err.code, ERR_NOT_FOUND);

    /* failures before the worker are answered later too: unknown timeline, unknown shard, an
     * LSN below min_readable_lsn */
    TimelineId other;
    memset(&other, 0x77, sizeof(other));
    Answer ut = {0};
    read_path_rel_size(mgr, &tsid, &other, &pg_class, LSN_INVALID, on_rel_size, &ut);
    wait_answer(app, &ut);
    assert_true(ut.failed);
    assert_int_equal(ut.err.code, ERR_NOT_FOUND);
    TenantShardId nowhere = make_tsid(43, 0, 0);
    Answer us = {0};
    read_path_db_size(mgr, &nowhere, &tl, DEFAULTTABLESPACE_OID, POSTGRES_DB_OID, LSN_INVALID,
                      on_db_size, &us);
    wait_answer(app, &us);
    assert_true(us.failed);
    assert_int_equal(us.err.code, ERR_NOT_FOUND);
    Answer low = {0};
    read_path_get_page(mgr, &tsid, &tl, &pg_class, 0, 0x10, on_page, &low);
    wait_answer(app, &low);
    assert_true(low.failed);
    assert_int_equal(low.err.code, ERR_BAD_REQUEST);
    assert_int_equal(tenant_manager_find(mgr, &tsid)->inflight, 0);
}

/* ---- read views ---- */

typedef struct ViewCall {
    const ReadView *v;
    Lsn wait_lsn;
    ReadItem *items;
    size_t n;
    bool ok;
} ViewCall;

static void *view_thread(void *arg)
{
    ViewCall *c = arg;
    c->ok = read_view_batch(c->v, c->wait_lsn, c->items, c->n);
    return NULL;
}

/* view_read: read_view_batch on another thread (as a page service thread calls it). */
static bool view_read(const ReadView *v, Lsn wait_lsn, ReadItem *items, size_t n)
{
    ViewCall c = {v, wait_lsn, items, n, false};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, view_thread, &c), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    return c.ok;
}

static void page_item(ReadItem *it, const RelTag *rel, uint32_t blkno, Lsn lsn)
{
    memset(it, 0, sizeof(*it));
    it->op = READ_OP_PAGE;
    it->rel = *rel;
    it->blkno = blkno;
    it->lsn = lsn;
}

/* A view answers warm pages, sizes and existence on another thread exactly as the read path
 * does; it declines (false) whatever the loop's path must answer: an LSN past its
 * last_record_lsn or a wait for one, an error, another operation, an armed failpoint; and it goes
 * stale when a timeline's or the slot's state changes. */
static void test_read_view(void **state)
{
    Fixture *f = *state;
    PageserverApp *app = &f->app;
    TenantManager *mgr = app->tenants;
    TenantShardId tsid;
    TimelineId tl_id;
    char pgdata[512];
    bootstrapped_timeline(f, &tsid, &tl_id, pgdata, sizeof(pgdata));
    app->page_cache = page_cache_new(16u << 20, NULL);
    TenantSlot *slot = tenant_manager_find(mgr, &tsid);
    Timeline *tl = slot_find_timeline(slot, &tl_id);
    Lsn lsn = tl->last_record_lsn;
    RelTag pg_class = {DEFAULTTABLESPACE_OID, POSTGRES_DB_OID, PG_CLASS_RELNODE, FORK_MAIN};

    /* the loop's path, which also warms the cache */
    Answer a = {0};
    read_path_rel_size(mgr, &tsid, &tl_id, &pg_class, lsn, on_rel_size, &a);
    wait_answer(app, &a);
    assert_false(a.failed);
    uint32_t last = a.nblocks - 1;
    Answer p = {0};
    read_path_get_page(mgr, &tsid, &tl_id, &pg_class, last, lsn, on_page, &p);
    wait_answer(app, &p);
    assert_false(p.failed);

    ReadView *v = read_view_build(mgr, &tsid.tenant_id, &tl_id);
    assert_non_null(v);
    assert_true(read_view_current(v));
    ReadItem items[3];
    page_item(&items[0], &pg_class, last, lsn);
    page_item(&items[1], &pg_class, last, lsn - 1 > tl->initdb_lsn ? lsn - 1 : lsn);
    memset(&items[2], 0, sizeof(items[2]));
    items[2].op = READ_OP_REL_SIZE;
    items[2].rel = pg_class;
    items[2].lsn = lsn;
    assert_true(view_read(v, LSN_INVALID, items, 3));
    assert_true(items[0].ok && items[1].ok && items[2].ok);
    assert_memory_equal(items[0].page, p.page, BLCKSZ);
    assert_memory_equal(items[1].page, p.page, BLCKSZ);
    assert_int_equal(items[2].nblocks, a.nblocks);

    /* declined: past last_record_lsn, a wait beyond it, no LSN, past the end (an error), a
     * database size, an armed failpoint */
    page_item(&items[0], &pg_class, last, lsn + 8);
    assert_false(view_read(v, LSN_INVALID, items, 1));
    page_item(&items[0], &pg_class, last, lsn);
    assert_false(view_read(v, lsn + 8, items, 1));
    page_item(&items[0], &pg_class, last, LSN_INVALID);
    assert_false(view_read(v, LSN_INVALID, items, 1));
    page_item(&items[0], &pg_class, last + 1, lsn);
    assert_false(view_read(v, LSN_INVALID, items, 1));
    memset(&items[0], 0, sizeof(items[0]));
    items[0].op = READ_OP_DB_SIZE;
    items[0].rel = (RelTag){.spc = DEFAULTTABLESPACE_OID, .db = POSTGRES_DB_OID};
    items[0].lsn = lsn;
    assert_false(view_read(v, LSN_INVALID, items, 1));
    Err err = {0};
    assert_true(failpoint_set("getpage", "return", &err));
    page_item(&items[0], &pg_class, last, lsn);
    assert_false(view_read(v, LSN_INVALID, items, 1));
    failpoint_reset_all();
    assert_true(view_read(v, LSN_INVALID, items, 1));

    /* the slot's config applied again (its shard identity set anew): stale; rebuilt: current */
    LocationConfig cfg;
    location_config_init(&cfg);
    cfg.mode = LOCATION_MODE_ATTACHED_SINGLE;
    cfg.generation = 1;
    slot_apply_config(slot, &cfg);
    location_config_finish(&cfg);
    assert_false(read_view_current(v));
    read_view_free(v);
    v = read_view_build(mgr, &tsid.tenant_id, &tl_id);
    assert_non_null(v);
    assert_true(read_view_current(v));
    /* a timeline state change: stale, and nothing to read here any more */
    assert_true(timeline_set_state(tl, TIMELINE_BROKEN));
    assert_false(read_view_current(v));
    read_view_free(v);
    assert_null(read_view_build(mgr, &tsid.tenant_id, &tl_id));
    /* a slot state change moves the epoch as well */
    uint64_t epoch = atomic_load(&mgr->read_epoch);
    assert_true(slot_set_state(slot, SLOT_STOPPING));
    assert_true(atomic_load(&mgr->read_epoch) != epoch);

    page_cache_free(app->page_cache);
    app->page_cache = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hash_lookup, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_shard_for_key, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_read_view, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_read_path_bootstrapped, fixture_setup,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
