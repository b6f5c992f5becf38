/* test_pageserver_page_cache.c: unit tests for pageserver/page_cache.c and the layer reader's use
 * of it: hits and misses, eviction by size, values too large to cache, a layer file replaced at
 * the same path (never a stale value), a dropped reader's entries, and two threads sharing one
 * cache. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/key.h"
#include "shared/str.h"

#include "pageserver/layer.h"
#include "pageserver/layer_map.h"
#include "pageserver/page_cache.h"
#include "tests/unit/tmpdir_util.h"

static char g_dir[256];

static int group_setup(void **state)
{
    return tmpdir_make(g_dir, sizeof(g_dir), "test_pageserver_page_cache");
}

static int group_teardown(void **state)
{
    return tmpdir_remove(g_dir);
}

/* fill: the deterministic value of (seed, i) into buf[PAGE_CACHE_VALUE_MAX]. */
static void fill(uint8_t *buf, uint64_t seed, uint64_t i)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + i * 0x100000001B3ull + 1;
    for (size_t j = 0; j < PAGE_CACHE_VALUE_MAX; j += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(buf + j, &x, 8);
    }
}

static void test_hit_miss(void **state)
{
    PageCache *pc = page_cache_new(1u << 20, NULL);
    assert_non_null(pc);
    uint64_t a = page_cache_owner_new(), b = page_cache_owner_new();
    assert_true(a >= 1);
    assert_true(b != a);
    uint8_t v[PAGE_CACHE_VALUE_MAX], got[PAGE_CACHE_VALUE_MAX];
    fill(v, 1, 1);
    size_t len = 0;
    assert_false(page_cache_get(pc, a, 16, got, sizeof(got), &len));
    page_cache_put(pc, a, 16, v, sizeof(v));
    assert_true(page_cache_get(pc, a, 16, got, sizeof(got), &len));
    assert_int_equal(len, sizeof(v));
    assert_memory_equal(got, v, sizeof(v));
    /* another owner or another offset: a miss */
    assert_false(page_cache_get(pc, b, 16, got, sizeof(got), &len));
    assert_false(page_cache_get(pc, a, 17, got, sizeof(got), &len));
    /* a short value, and a buffer too small for a cached value (a miss) */
    page_cache_put(pc, b, 16, "abcd", 4);
    assert_true(page_cache_get(pc, b, 16, got, sizeof(got), &len));
    assert_int_equal(len, 4);
    assert_memory_equal(got, "abcd", 4);
    assert_false(page_cache_get(pc, a, 16, got, 100, &len));
    /* replacing a key's value */
    page_cache_put(pc, b, 16, "wxyz!", 5);
    assert_true(page_cache_get(pc, b, 16, got, sizeof(got), &len));
    assert_int_equal(len, 5);
    assert_memory_equal(got, "wxyz!", 5);
    /* too large: not cached */
    uint8_t *big = xcalloc(1, PAGE_CACHE_VALUE_MAX + 1);
    page_cache_put(pc, a, 99, big, PAGE_CACHE_VALUE_MAX + 1);
    free(big);
    assert_false(page_cache_get(pc, a, 99, got, sizeof(got), &len));

    /* a copy on the heap; a miss not counted when asked not to */
    void *copy = NULL;
    assert_true(page_cache_get_copy(pc, b, 16, false, &copy, &len));
    assert_int_equal(len, 5);
    assert_memory_equal(copy, "wxyz!", 5);
    free(copy);
    copy = NULL;
    assert_false(page_cache_get_copy(pc, b, 4096, false, &copy, &len));
    assert_null(copy);

    PageCacheStats st;
    page_cache_stats(pc, &st);
    assert_int_equal(st.hits, 4);
    assert_int_equal(st.misses, 5);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.bytes, PAGE_CACHE_VALUE_MAX + 5);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.capacity_bytes, 1u << 20);
    page_cache_free(pc);

    /* less than one slot: no cache, and NULL never hits */
    assert_null(page_cache_new(PAGE_CACHE_VALUE_MAX - 1, NULL));
    page_cache_put(NULL, a, 1, v, 8);
    assert_false(page_cache_get(NULL, a, 1, got, sizeof(got), &len));
    page_cache_stats(NULL, &st);
    assert_int_equal(st.hits + st.misses + st.entries, 0);
}

static void test_eviction_by_size(void **state)
{
    /* 40 slots over 16 shards: the cache never holds more than 40 values */
    enum { SLOTS = 40, PUTS = 1000 };
    PageCache *pc = page_cache_new((uint64_t)SLOTS * PAGE_CACHE_VALUE_MAX + 100, NULL);
    assert_non_null(pc);
    uint64_t owner = page_cache_owner_new();
    uint8_t v[PAGE_CACHE_VALUE_MAX], got[PAGE_CACHE_VALUE_MAX];
    for (uint64_t i = 0; i < PUTS; i++) {
        fill(v, owner, i);
        page_cache_put(pc, owner, i * PAGE_CACHE_VALUE_MAX, v, sizeof(v));
        PageCacheStats st;
        page_cache_stats(pc, &st);
        assert_true(st.entries <= SLOTS);
        assert_true(st.bytes <= st.capacity_bytes);
    }
    PageCacheStats st;
    page_cache_stats(pc, &st);
    assert_int_equal(st.capacity_bytes, (uint64_t)SLOTS * PAGE_CACHE_VALUE_MAX);
    assert_int_equal(st.entries, SLOTS);
    assert_int_equal(st.evictions, PUTS - SLOTS);
    /* what is still there is intact; the newest value of every shard is still there */
    size_t present = 0;
    for (uint64_t i = 0; i < PUTS; i++) {
        size_t len = 0;
        if (!page_cache_get(pc, owner, i * PAGE_CACHE_VALUE_MAX, got, sizeof(got), &len))
            continue;
        present++;
        fill(v, owner, i);
        assert_int_equal(len, sizeof(v));
        assert_memory_equal(got, v, sizeof(v));
    }
    assert_int_equal(present, SLOTS);
    size_t len = 0;
    assert_true(
        page_cache_get(pc, owner, (PUTS - 1) * PAGE_CACHE_VALUE_MAX, got, sizeof(got), &len));
    page_cache_free(pc);

    /* CLOCK: in a single slot... a cache of one slot keeps the last value put */
    pc = page_cache_new(PAGE_CACHE_VALUE_MAX, NULL);
    page_cache_put(pc, owner, 1, "one", 3);
    assert_true(page_cache_get(pc, owner, 1, got, sizeof(got), &len));
    page_cache_put(pc, owner, 2, "two", 3); /* the referenced one gets a second chance, then goes */
    assert_false(page_cache_get(pc, owner, 1, got, sizeof(got), &len));
    assert_true(page_cache_get(pc, owner, 2, got, sizeof(got), &len));
    assert_memory_equal(got, "two", 3);
    page_cache_free(pc);
}

/* ---- through the layer reader ---- */

static Key blk_key(uint32_t blk)
{
    return key_rel_block(DEFAULTTABLESPACE_OID, 5, 16384, FORK_MAIN, blk);
}

/* write_layer: n pages, page i = fill(seed, i), at path (replacing what is there). */
static void write_layer(const char *path, size_t n, uint64_t seed)
{
    KeyRange range = {blk_key(0), blk_key(1000000)};
    LayerDesc desc = layer_desc_image(&range, 0x1000);
    LayerWriter *w;
    Err err = {0};
    if (!layer_writer_new(path, &desc, NULL, &w, &err))
        fail_msg("writer_new: %s", err.msg);
    uint8_t buf[PAGE_CACHE_VALUE_MAX];
    for (size_t i = 0; i < n; i++) {
        fill(buf, seed, i);
        Key k = blk_key((uint32_t)i);
        if (!layer_writer_add(w, &k, buf, sizeof(buf), &err))
            fail_msg("add: %s", err.msg);
    }
    if (!layer_writer_finish(w, NULL, &err))
        fail_msg("finish: %s", err.msg);
}

typedef struct CountingSource {
    LayerFile *file;
    _Atomic long reads;
} CountingSource;

static bool counting_read(void *ctx, uint64_t offset, size_t len, void *buf, Err *err)
{
    CountingSource *c = ctx;
    atomic_fetch_add(&c->reads, 1);
    return layer_file_read(c->file, offset, len, buf, err);
}

/* assert_page: page i of r through pc equals fill(seed, i). */
static void assert_page(const LayerReader *r, PageCache *pc, size_t i, uint64_t seed)
{
    Key k = blk_key((uint32_t)i);
    void *v = NULL;
    size_t len = 0;
    bool found = false;
    Err err = {0};
    if (!layer_reader_get_cached(r, pc, &k, &v, &len, &found, &err))
        fail_msg("get %zu: %s", i, err.msg);
    assert_true(found);
    uint8_t want[PAGE_CACHE_VALUE_MAX];
    fill(want, seed, i);
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(v, want, sizeof(want));
    free(v);
}

static void test_reader_hits_skip_reads(void **state)
{
    char path[512];
    assert_true(str_printf(path, sizeof(path), "%s/hits", g_dir));
    write_layer(path, 50, 7);
    PageCache *pc = page_cache_new(1u << 20, NULL);
    CountingSource c = {0};
    Err err = {0};
    assert_true(layer_file_open(path, &c.file, &err));
    LayerReader *r;
    if (!layer_reader_open(counting_read, &c, layer_file_size(c.file), path, &r, &err))
        fail_msg("open: %s", err.msg);
    for (size_t i = 0; i < 50; i++)
        assert_page(r, pc, i, 7);
    /* the second pass reads nothing from the file: index blocks and values are in memory */
    atomic_store(&c.reads, 0);
    for (size_t i = 0; i < 50; i++)
        assert_page(r, pc, i, 7);
    assert_int_equal(atomic_load(&c.reads), 0);
    PageCacheStats st;
    page_cache_stats(pc, &st);
    assert_int_equal(st.hits, 50);
    assert_int_equal(st.misses, 50);
    assert_int_equal(st.entries, 50);
    /* an absent key is no cache lookup at all */
    Key absent = blk_key(500);
    void *v = NULL;
    size_t len = 0;
    bool found = true;
    assert_true(layer_reader_get_cached(r, pc, &absent, &v, &len, &found, &err));
    assert_false(found);
    layer_reader_free(r);
    layer_file_close(c.file);
    page_cache_free(pc);
}

/* A layer file replaced at the same path (a re-download, a re-attach, a split child writing the
 * same name) is opened by a new reader: it must see the new bytes, never the old reader's cached
 * ones, whichever order the readers are opened and freed in. */
static void test_no_stale_after_replace(void **state)
{
    char path[512];
    assert_true(str_printf(path, sizeof(path), "%s/replaced", g_dir));
    PageCache *pc = page_cache_new(4u << 20, NULL);
    write_layer(path, 20, 100);
    LayerReader *old;
    Err err = {0};
    assert_true(layer_reader_open_file(path, &old, &err));
    for (size_t i = 0; i < 20; i++)
        assert_page(old, pc, i, 100); /* cached now */
    for (size_t i = 0; i < 20; i++)
        assert_page(old, pc, i, 100); /* hits */

    /* same name, same keys, same value offsets, other bytes */
    write_layer(path, 20, 200);
    LayerReader *fresh;
    assert_true(layer_reader_open_file(path, &fresh, &err));
    for (size_t i = 0; i < 20; i++)
        assert_page(fresh, pc, i, 200);
    /* the old reader (still open: concurrent reads may hold it) keeps its own values */
    for (size_t i = 0; i < 20; i++)
        assert_page(old, pc, i, 100);
    layer_reader_free(old);

    /* dropped and opened again (the allocator may well hand out the same address) */
    write_layer(path, 20, 300);
    layer_reader_free(fresh);
    LayerReader *again;
    assert_true(layer_reader_open_file(path, &again, &err));
    for (size_t i = 0; i < 20; i++)
        assert_page(again, pc, i, 300);
    layer_reader_free(again);
    PageCacheStats st;
    page_cache_stats(pc, &st);
    assert_int_equal(st.hits, 40); /* the old reader's second and third passes only */
    page_cache_free(pc);
}

/* layer_obj_get_in_memory never reads: nothing before the layer's first read; after it, exactly
 * what was read (cached). A layer object dropped (a detach) and created again over a file
 * replaced at the same path (a re-attach) answers the new bytes, from disk first. */
static void get_obj(Layer *l, PageCache *pc, uint32_t blk, bool memory_only, bool want_in_memory,
                    uint64_t seed)
{
    Key k = blk_key(blk);
    void *v = NULL;
    size_t len = 0;
    bool found = false, in_memory = true;
    Err err = {0};
    if (memory_only) {
        assert_true(layer_obj_get_in_memory(l, pc, &k, &v, &len, &found, &in_memory, &err));
        assert_int_equal(in_memory, want_in_memory);
        if (!in_memory) {
            assert_null(v);
            assert_false(found);
            return;
        }
    } else {
        assert_true(layer_obj_get(l, NULL, pc, &k, &v, &len, &found, NULL, NULL, &err));
    }
    assert_true(found);
    uint8_t want[PAGE_CACHE_VALUE_MAX];
    fill(want, seed, blk);
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(v, want, sizeof(want));
    free(v);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void test_layer_obj_in_memory_and_reattach(void **state)
{
    KeyRange range = {blk_key(0), blk_key(1000000)};
    LayerDesc d = layer_desc_image(&range, 0x1000);
    IndexLayer meta;
    memset(&meta, 0, sizeof(meta));
    layer_name_format(&d, meta.name);
    meta.generation = 3;
    char path[512];
    assert_true(str_printf(path, sizeof(path), "%s/%s-00000003", g_dir, meta.name));
    TenantId t;
    TimelineId tl;
    memset(&t, 0x11, sizeof(t));
    memset(&tl, 0x22, sizeof(tl));
    PageCache *pc = page_cache_new(1u << 20, NULL);
    Err err = {0};

    write_layer(path, 10, 1);
    meta.file_size = file_size(path);
    Layer *l = NULL;
    assert_true(layer_obj_new(&meta, &t, &tl, g_dir, true, &l, &err));
    get_obj(l, pc, 4, true, false, 1); /* no reader yet */
    get_obj(l, pc, 4, false, true, 1); /* read: opens, caches */
    get_obj(l, pc, 4, true, true, 1);  /* now in memory */
    get_obj(l, pc, 5, true, false, 1); /* index block known, value not cached */
    /* without a cache nothing is in memory */
    Key k = blk_key(4);
    void *v = NULL;
    size_t len = 0;
    bool found = false, in_memory = true;
    assert_true(layer_obj_get_in_memory(l, NULL, &k, &v, &len, &found, &in_memory, &err));
    assert_false(in_memory);
    layer_obj_unref(l);

    write_layer(path, 10, 2);
    assert_int_equal(file_size(path), meta.file_size);
    assert_true(layer_obj_new(&meta, &t, &tl, g_dir, true, &l, &err));
    get_obj(l, pc, 4, true, false, 2);
    get_obj(l, pc, 4, false, true, 2);
    get_obj(l, pc, 4, true, true, 2);
    layer_obj_unref(l);
    page_cache_free(pc);
}

/* ---- two threads on one cache ---- */

typedef struct Hammer {
    PageCache *pc;
    uint64_t owner;
    unsigned seed;
    long hits, gets;
} Hammer;

static void *hammer(void *arg)
{
    Hammer *h = arg;
    uint8_t v[PAGE_CACHE_VALUE_MAX], got[PAGE_CACHE_VALUE_MAX];
    uint64_t x = h->seed;
    for (int n = 0; n < 20000; n++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t i = (x >> 33) % 64;
        size_t len = 0;
        h->gets++;
        if (page_cache_get(h->pc, h->owner, i, got, sizeof(got), &len)) {
            h->hits++;
            fill(v, h->owner, i);
            if (len != sizeof(v) || memcmp(got, v, len) != 0)
                return (void *)1; /* a torn or foreign value */
        } else {
            fill(v, h->owner, i);
            page_cache_put(h->pc, h->owner, i, v, sizeof(v));
        }
    }
    return NULL;
}

static void test_two_threads(void **state)
{
    /* 32 slots for 64 keys: constant eviction while both threads read and put */
    PageCache *pc = page_cache_new(32u * PAGE_CACHE_VALUE_MAX, NULL);
    uint64_t owner = page_cache_owner_new();
    Hammer h[2] = {{.pc = pc, .owner = owner, .seed = 1}, {.pc = pc, .owner = owner, .seed = 2}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &h[i]), 0);
    for (int i = 0; i < 2; i++) {
        void *rc = (void *)1;
        assert_int_equal(pthread_join(t[i], &rc), 0);
        assert_null(rc);
    }
    PageCacheStats st;
    page_cache_stats(pc, &st);
    assert_int_equal(st.hits + st.misses, h[0].gets + h[1].gets);
    assert_int_equal(st.hits, h[0].hits + h[1].hits);
    assert_true(st.hits > 0);
    assert_true(st.evictions > 0);
    assert_true(st.entries <= 32);
    assert_int_equal(st.bytes, st.entries * PAGE_CACHE_VALUE_MAX);
    page_cache_free(pc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss),
        cmocka_unit_test(test_eviction_by_size),
        cmocka_unit_test(test_reader_hits_skip_reads),
        cmocka_unit_test(test_no_stale_after_replace),
        cmocka_unit_test(test_layer_obj_in_memory_and_reattach),
        cmocka_unit_test(test_two_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
