/* test_pageserver_layer.c: unit tests for pageserver/layer.c: layer names, the image layer
 * writer and reader (round trips, lookups of present and absent keys, the number of ranged reads
 * per open and per lookup), reading through remote storage, corruption detection, and writer
 * misuse. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "shared/crc32c.h"
#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/key.h"
#include "shared/remote_storage.h"
#include "shared/str.h"

#include "pageserver/layer.h"
#include "tests/unit/tmpdir_util.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Layout facts of docs/layer-format.md the corruption tests rely on. */
#define DOC_HEADER_SIZE      16
#define DOC_FOOTER_SIZE      128
#define DOC_BLOB_HEADER      9
#define DOC_FT_KIND          0
#define DOC_FT_INDEX_OFFSET  76
#define DOC_FT_TOP_OFFSET    92
#define DOC_FT_VERSION       112
#define DOC_FT_CRC           116
#define DOC_INDEX_BLOCK_HDR  8
#define DOC_INDEX_ENTRY_SIZE 30

static char g_dir[256];

static int group_setup(void **state)
{
    return tmpdir_make(g_dir, sizeof(g_dir), "test_pageserver_layer");
}

static int group_teardown(void **state)
{
    return tmpdir_remove(g_dir);
}

static void path_in_dir(char *out, size_t cap, const char *name)
{
    assert_true(str_printf(out, cap, "%s/%s", g_dir, name));
}

/* ---- test data ---- */

static Key test_key(uint32_t blk)
{
    return key_rel_block(DEFAULTTABLESPACE_OID, 5, 16384, FORK_MAIN, blk);
}

static KeyRange test_range(void)
{
    KeyRange r = {test_key(0), test_key(1000000)};
    return r;
}

/* Entry i is stored at block 2i + 10, leaving absent keys before, between and after. */
static uint32_t entry_blk(size_t i)
{
    return (uint32_t)(2 * i + 10);
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* test_value: the deterministic value of entry i into buf[BLCKSZ]; its length. A mix of all-zero
 * pages, incompressible random pages, compressible pages, short values and one empty value. */
static size_t test_value(size_t i, uint8_t *buf)
{
    uint64_t s = 0x9E3779B97F4A7C15ull ^ (i * 0x100000001B3ull) ^ 1;
    if (i == 7)
        return 0;
    switch (i % 5) {
    case 0:
        memset(buf, 0, BLCKSZ);
        return BLCKSZ;
    case 1:
        for (size_t j = 0; j < BLCKSZ; j += 8) {
            uint64_t v = xorshift(&s);
            memcpy(buf + j, &v, 8);
        }
        return BLCKSZ;
    case 2:
        for (size_t j = 0; j < BLCKSZ; j++)
            buf[j] = (uint8_t)("heap tuple "[j % 11] + (j / 1024) + i);
        return BLCKSZ;
    case 3: {
        size_t n = 1 + i % 300;
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)xorshift(&s);
        return n;
    }
    default:
        memset(buf, 0, BLCKSZ);
        for (size_t j = BLCKSZ / 2; j < BLCKSZ; j++)
            buf[j] = (uint8_t)xorshift(&s);
        return BLCKSZ;
    }
}

/* write_layer: n entries at entry_blk(i) with test_value(i) (or only incompressible pages when
 * random_only), into path. */
static LayerInfo write_layer_opts(const char *path, size_t n, const LayerWriterOptions *opts,
                                  bool random_only)
{
    KeyRange range = test_range();
    LayerDesc desc = layer_desc_image(&range, 0x16960E8);
    LayerWriter *w;
    Err err = {0};
    if (!layer_writer_new(path, &desc, opts, &w, &err))
        fail_msg("writer_new: %s", err.msg);
    uint8_t *buf = xmalloc(BLCKSZ);
    for (size_t i = 0; i < n; i++) {
        size_t len = test_value(random_only ? 5 * i + 1 : i, buf);
        Key k = test_key(entry_blk(i));
        if (!layer_writer_add(w, &k, buf, len, &err))
            fail_msg("add %zu: %s", i, err.msg);
    }
    free(buf);
    LayerInfo info;
    if (!layer_writer_finish(w, &info, &err))
        fail_msg("finish: %s", err.msg);
    assert_int_equal(info.entry_count, n);
    assert_int_equal(info.desc.kind, LAYER_KIND_IMAGE);
    return info;
}

static LayerInfo write_layer(const char *path, size_t n, uint32_t block_size, bool random_only)
{
    LayerWriterOptions opts = {.index_block_size = block_size};
    return write_layer_opts(path, n, &opts, random_only);
}

/* ---- read sources for the tests: counting wrapper, in-memory file ---- */

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

typedef struct MemSource {
    uint8_t *data;
    size_t size;
} MemSource;

static bool mem_read(void *ctx, uint64_t offset, size_t len, void *buf, Err *err)
{
    MemSource *m = ctx;
    if (offset > m->size || len > m->size - offset) {
        err_set(err, ERR_INTERNAL, "read past the end");
        return false;
    }
    memcpy(buf, m->data + offset, len);
    return true;
}

static void load_file(const char *path, MemSource *m)
{
    Err err = {0};
    char *data;
    size_t len;
    if (!fs_read_file(path, 1u << 30, &data, &len, &err))
        fail_msg("read %s: %s", path, err.msg);
    m->data = (uint8_t *)data;
    m->size = len;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- checks ---- */

static void assert_value(const LayerReader *r, size_t i)
{
    uint8_t want[BLCKSZ];
    size_t want_len = test_value(i, want);
    Key k = test_key(entry_blk(i));
    void *v;
    size_t len;
    bool found;
    Err err = {0};
    if (!layer_reader_get(r, &k, &v, &len, &found, &err))
        fail_msg("get %zu: %s", i, err.msg);
    if (!found)
        fail_msg("entry %zu not found", i);
    assert_int_equal(len, want_len);
    assert_memory_equal(v, want, len);
    free(v);
}

static void assert_absent(const LayerReader *r, const Key *k)
{
    void *v = (void *)1;
    size_t len = 9;
    bool found = true;
    Err err = {0};
    if (!layer_reader_get(r, k, &v, &len, &found, &err))
        fail_msg("get absent: %s", err.msg);
    assert_false(found);
    assert_null(v);
    assert_int_equal(len, 0);
}

typedef struct IterCheck {
    size_t next;
} IterCheck;

static bool iter_check(void *arg, const Key *key, const void *value, size_t len, Err *err)
{
    IterCheck *c = arg;
    Key want_key = test_key(entry_blk(c->next));
    uint8_t want[BLCKSZ];
    size_t want_len = test_value(c->next, want);
    if (!key_eq(key, &want_key) || len != want_len || memcmp(value, want, len) != 0) {
        err_set(err, ERR_INTERNAL, "entry %zu differs", c->next);
        return false;
    }
    c->next++;
    return true;
}

/* round_trip: write n entries, read every one back, absent keys around them, and iterate. */
static void round_trip(size_t n, uint32_t block_size)
{
    char path[512];
    char name[64];
    assert_true(str_printf(name, sizeof(name), "rt-%zu-%u", n, block_size));
    path_in_dir(path, sizeof(path), name);
    LayerInfo wi = write_layer(path, n, block_size, false);

    LayerReader *r;
    Err err = {0};
    if (!layer_reader_open_file(path, &r, &err))
        fail_msg("open: %s", err.msg);
    LayerInfo info;
    layer_reader_info(r, &info);
    assert_int_equal(info.entry_count, n);
    assert_int_equal(info.file_size, wi.file_size);
    KeyRange range = test_range();
    assert_true(key_eq(&info.desc.key_range.start, &range.start));
    assert_true(key_eq(&info.desc.key_range.end, &range.end));
    assert_int_equal(info.desc.lsn_range.start, 0x16960E8);
    assert_int_equal(info.desc.lsn_range.end, 0x16960E9);

    for (size_t i = 0; i < n; i++)
        assert_value(r, i);
    /* absent: before the first entry, between entries, after the last, outside the range */
    for (uint32_t b = 0; b < 10; b++) {
        Key k = test_key(b);
        assert_absent(r, &k);
    }
    for (size_t i = 0; i < n; i += (n > 100 ? 97 : 1)) {
        Key k = test_key(entry_blk(i) + 1);
        assert_absent(r, &k);
    }
    Key after = test_key(entry_blk(n) + 5);
    assert_absent(r, &after);
    assert_absent(r, &range.end);
    Key below = key_rel_block(DEFAULTTABLESPACE_OID, 5, 16383, FORK_MAIN, 1);
    assert_absent(r, &below);
    assert_absent(r, &KEY_MAX);

    IterCheck c = {0};
    if (!layer_reader_iter(r, iter_check, &c, &err))
        fail_msg("iter: %s", err.msg);
    assert_int_equal(c.next, n);
    layer_reader_free(r);
}

static void test_round_trip_empty(void **state)
{
    round_trip(0, 0);
}

static void test_round_trip_one(void **state)
{
    round_trip(1, 0);
}

static void test_round_trip_10000(void **state)
{
    round_trip(10000, 0);
}

static void test_round_trip_small_blocks(void **state)
{
    round_trip(500, 256); /* 8 entries per block: many blocks, block boundaries */
}

/* Overhead per entry beyond the value bytes, measured on incompressible pages (stored raw). */
/* The tenant's image_compression decides how values are stored: "disabled" raw (the file holds
 * every value byte), zstd at the level asked for (a faster level, a larger file); all read back
 * the same. */
static void test_image_compression_options(void **state)
{
    (void)state;
    static const struct {
        const char *conf;
        bool uncompressed;
        int level;
    } MAP[] = {{"disabled", true, 0},
               {"zstd", false, ZSTD_CLEVEL_DEFAULT},
               {"zstd(0)", false, ZSTD_CLEVEL_DEFAULT},
               {"zstd(1)", false, 1},
               {"zstd(-5)", false, -5},
               {"zstd(19)", false, 19}};
    for (size_t i = 0; i < sizeof(MAP) / sizeof(MAP[0]); i++) {
        ImageCompression c;
        Err err = {0};
        assert_true(tenant_config_image_compression_parse(MAP[i].conf, &c, &err));
        LayerWriterOptions o = layer_writer_options(c);
        assert_int_equal(o.uncompressed, MAP[i].uncompressed);
        if (!MAP[i].uncompressed)
            assert_int_equal(o.zstd_level, MAP[i].level);
    }

    const size_t n = 400;
    uint8_t *buf = xmalloc(BLCKSZ);
    uint64_t raw = 0;
    for (size_t i = 0; i < n; i++)
        raw += test_value(i, buf);
    free(buf);
    static const char *const CONFS[] = {"disabled", "zstd(-5)", "zstd(1)"};
    uint64_t size[3];
    for (size_t i = 0; i < 3; i++) {
        ImageCompression c;
        assert_true(tenant_config_image_compression_parse(CONFS[i], &c, NULL));
        LayerWriterOptions o = layer_writer_options(c);
        char path[512], name[64];
        assert_true(str_printf(name, sizeof(name), "compression-%zu", i));
        path_in_dir(path, sizeof(path), name);
        size[i] = write_layer_opts(path, n, &o, false).file_size;
        LayerReader *r;
        Err err = {0};
        if (!layer_reader_open_file(path, &r, &err))
            fail_msg("open: %s", err.msg);
        for (size_t k = 0; k < n; k++)
            assert_value(r, k);
        layer_reader_free(r);
    }
    printf("%zu values, %llu bytes raw: layer files disabled %llu, zstd(-5) %llu, zstd(1) %llu\n",
           n, (unsigned long long)raw, (unsigned long long)size[0], (unsigned long long)size[1],
           (unsigned long long)size[2]);
    assert_true(size[0] > raw);     /* every value stored raw */
    assert_true(size[1] < raw / 2); /* zeros and repeats compress even at the fastest levels */
    assert_true(size[2] <= size[1]);
}

static void test_overhead_per_entry(void **state)
{
    char path[512];
    path_in_dir(path, sizeof(path), "overhead");
    size_t n = 4000;
    LayerInfo info = write_layer(path, n, 0, true);
    double per_entry = (double)(info.file_size - (uint64_t)n * BLCKSZ) / (double)n;
    printf("layer overhead: %.2f bytes per entry (%zu entries of %d bytes, file %llu bytes)\n",
           per_entry, n, BLCKSZ, (unsigned long long)info.file_size);
    assert_true(per_entry >= 39.0 && per_entry < 40.0); /* 9 blob header + 30 index entry + ~0.1 */

    /* compressible pages shrink: all-zero pages cost a few dozen bytes */
    path_in_dir(path, sizeof(path), "zeros");
    KeyRange range = test_range();
    LayerDesc desc = layer_desc_image(&range, 0x100);
    LayerWriter *w;
    Err err = {0};
    assert_true(layer_writer_new(path, &desc, NULL, &w, &err));
    static const uint8_t zero[BLCKSZ];
    for (size_t i = 0; i < 1000; i++) {
        Key k = test_key((uint32_t)i);
        assert_true(layer_writer_add(w, &k, zero, sizeof(zero), &err));
    }
    assert_true(layer_writer_finish(w, &info, &err));
    printf("layer of 1000 all-zero pages: %llu bytes\n", (unsigned long long)info.file_size);
    assert_true(info.file_size < 1000 * 80);
}

/* ---- ranged reads ---- */

static void test_read_counts(void **state)
{
    char path[512];
    path_in_dir(path, sizeof(path), "counts");
    size_t n = 10000;
    write_layer(path, n, 0, false);
    CountingSource c = {0};
    Err err = {0};
    assert_true(layer_file_open(path, &c.file, &err));
    LayerReader *r;
    if (!layer_reader_open(counting_read, &c, layer_file_size(c.file), path, &r, &err))
        fail_msg("open: %s", err.msg);
    assert_true(atomic_load(&c.reads) <= 2);
    printf("open: %ld reads\n", atomic_load(&c.reads));

    long max_get = 0;
    for (size_t i = 0; i < n; i += 37) {
        atomic_store(&c.reads, 0);
        assert_value(r, i);
        long got = atomic_load(&c.reads);
        if (got > max_get)
            max_get = got;
    }
    assert_int_equal(max_get, 2);
    printf("get of a present key: at most %ld reads\n", max_get);
    /* the index blocks read are kept: the same lookups again read the values only */
    for (size_t i = 0; i < n; i += 37) {
        atomic_store(&c.reads, 0);
        assert_value(r, i);
        assert_int_equal(atomic_load(&c.reads), 1);
    }
    /* absent keys: inside the stored span at most one index-block read (none when that block was
     * read before), outside none */
    atomic_store(&c.reads, 0);
    Key between = test_key(entry_blk(500) + 1);
    assert_absent(r, &between);
    assert_true(atomic_load(&c.reads) <= 1);
    atomic_store(&c.reads, 0);
    assert_absent(r, &between);
    assert_int_equal(atomic_load(&c.reads), 0);
    atomic_store(&c.reads, 0);
    Key before = test_key(3);
    assert_absent(r, &before);
    Key outside = KEY_MAX;
    assert_absent(r, &outside);
    assert_int_equal(atomic_load(&c.reads), 0);
    layer_reader_free(r);
    layer_file_close(c.file);
}

/* The same reader over a remote object (file:// backend and remote_get_range). */
static void test_remote_source(void **state)
{
    char path[512], url[600];
    path_in_dir(path, sizeof(path), "remote-src");
    size_t n = 300;
    write_layer(path, n, 512, false);
    assert_true(str_printf(url, sizeof(url), "file://%s/remote", g_dir));
    RemoteStorage *rs;
    Err err = {0};
    if (!remote_storage_open(url, &rs, &err))
        fail_msg("remote open: %s", err.msg);
    KeyRange range = test_range();
    LayerDesc desc = layer_desc_image(&range, 0x16960E8);
    char name[LAYER_NAME_SIZE];
    layer_name_format(&desc, name);
    char *key = str_dup_printf("tenants/t/timelines/tl/%s-00000001", name);
    assert_true(remote_put_file(rs, key, path, &err));
    RemoteObjectInfo oi;
    assert_true(remote_head(rs, key, &oi, &err));
    LayerRemoteObject src = {.rs = rs, .key = key};
    LayerReader *r;
    if (!layer_reader_open(layer_remote_read, &src, oi.size, key, &r, &err))
        fail_msg("open remote: %s", err.msg);
    for (size_t i = 0; i < n; i += 7)
        assert_value(r, i);
    Key absent = test_key(entry_blk(10) + 1);
    assert_absent(r, &absent);
    layer_reader_free(r);

    /* a wrong (too large) size surfaces as a read error, not garbage */
    assert_false(layer_reader_open(layer_remote_read, &src, oi.size + 100, key, &r, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    free(key);
    remote_storage_free(rs);
}

/* Readers are shared by worker threads. */
typedef struct ThreadArg {
    const LayerReader *r;
    size_t start;
    _Atomic long *failures;
} ThreadArg;

static void *reader_thread(void *arg)
{
    ThreadArg *a = arg;
    uint8_t want[BLCKSZ];
    for (size_t i = a->start; i < 2000; i += 3) {
        Key k = test_key(entry_blk(i));
        void *v;
        size_t len;
        bool found;
        Err err = {0};
        size_t want_len = test_value(i, want);
        if (!layer_reader_get(a->r, &k, &v, &len, &found, &err) || !found || len != want_len ||
            memcmp(v, want, len) != 0)
            atomic_fetch_add(a->failures, 1);
        if (found)
            free(v);
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    char path[512];
    path_in_dir(path, sizeof(path), "concurrent");
    write_layer(path, 2000, 1024, false);
    LayerReader *r;
    Err err = {0};
    assert_true(layer_reader_open_file(path, &r, &err));
    _Atomic long failures = 0;
    pthread_t th[3];
    ThreadArg args[3];
    for (size_t t = 0; t < 3; t++) {
        args[t] = (ThreadArg){r, t, &failures};
        assert_int_equal(pthread_create(&th[t], NULL, reader_thread, &args[t]), 0);
    }
    for (size_t t = 0; t < 3; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(atomic_load(&failures), 0);
    layer_reader_free(r);
}

/* ---- corruption ---- */

static void assert_get_fails(const LayerReader *r, size_t i, const char *msg_part)
{
    Key k = test_key(entry_blk(i));
    void *v = NULL;
    size_t len;
    bool found = true;
    Err err = {0};
    if (layer_reader_get(r, &k, &v, &len, &found, &err))
        fail_msg("get %zu succeeded on corrupt data (found %d)", i, found);
    assert_null(v);
    assert_false(found);
    assert_int_equal(err.code, ERR_INTERNAL);
    if (strstr(err.msg, msg_part) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err.msg, msg_part);
}

static bool iter_count(void *arg, const Key *key, const void *value, size_t len, Err *err)
{
    (*(size_t *)arg)++;
    return true;
}

static void test_corrupt_value_blob(void **state)
{
    char path[512];
    path_in_dir(path, sizeof(path), "corrupt-value");
    write_layer(path, 50, 0, false);
    MemSource m;
    load_file(path, &m);
    /* entry 1 (a random page, stored raw) is the second blob: after entry 0's */
    MemSource clean = m;
    LayerReader *r;
    Err err = {0};
    assert_true(layer_reader_open(mem_read, &clean, m.size, "clean", &r, &err));
    layer_reader_free(r);
    /* find entry 1's blob from the index (first index block, second entry) */
    uint64_t index_offset = le64(m.data + m.size - DOC_FOOTER_SIZE + DOC_FT_INDEX_OFFSET);
    const uint8_t *e1 = m.data + index_offset + DOC_INDEX_BLOCK_HDR + DOC_INDEX_ENTRY_SIZE;
    uint64_t blob1 = le64(e1 + KEY_SIZE);
    assert_true(blob1 > DOC_HEADER_SIZE);
    m.data[blob1 + DOC_BLOB_HEADER + 100] ^= 0x40;

    assert_true(layer_reader_open(mem_read, &m, m.size, "L1", &r, &err));
    char want[96];
    assert_true(str_printf(want, sizeof(want),
                           "layer L1: checksum mismatch in the value blob at "
                           "offset %llu",
                           (unsigned long long)blob1));
    assert_get_fails(r, 1, want);
    for (size_t i = 0; i < 50; i++) {
        if (i != 1)
            assert_value(r, i);
    }
    size_t count = 0;
    assert_false(layer_reader_iter(r, iter_count, &count, &err));
    assert_int_equal(count, 1); /* stopped at the bad blob */
    assert_non_null(strstr(err.msg, "checksum mismatch"));
    layer_reader_free(r);

    /* the blob header (flags, length) is covered too */
    m.data[blob1 + DOC_BLOB_HEADER + 100] ^= 0x40;
    m.data[blob1 + 5] ^= 0x01;
    assert_true(layer_reader_open(mem_read, &m, m.size, "L1", &r, &err));
    assert_get_fails(r, 1, "checksum mismatch");
    assert_value(r, 2);
    layer_reader_free(r);
    m.data[blob1 + 5] ^= 0x01;

    /* an index entry pointing at another entry's blob fails too (the key is checksummed) */
    uint8_t saved[8];
    memcpy(saved, e1 + KEY_SIZE, 8);
    uint8_t *e1w = m.data + (e1 - m.data);
    uint64_t blob0 = DOC_HEADER_SIZE;
    for (int b = 0; b < 8; b++)
        e1w[KEY_SIZE + b] = (uint8_t)(blob0 >> (8 * b));
    /* re-seal the index block so that only the blob checksum can notice */
    uint8_t *block = m.data + index_offset;
    size_t block_len = DOC_INDEX_BLOCK_HDR + 50 * DOC_INDEX_ENTRY_SIZE;
    uint32_t crc = crc32c(block + 4, block_len - 4);
    for (int b = 0; b < 4; b++)
        block[b] = (uint8_t)(crc >> (8 * b));
    assert_true(layer_reader_open(mem_read, &m, m.size, "L1", &r, &err));
    assert_get_fails(r, 1, "checksum mismatch in the value blob at offset 16");
    assert_value(r, 0);
    layer_reader_free(r);
    memcpy(e1w + KEY_SIZE, saved, 8);
    free(m.data);
}

static void test_corrupt_index_block(void **state)
{
    char path[512];
    path_in_dir(path, sizeof(path), "corrupt-index");
    write_layer(path, 100, 256, false); /* 8 entries per 256-byte block */
    MemSource m;
    load_file(path, &m);
    uint64_t index_offset = le64(m.data + m.size - DOC_FOOTER_SIZE + DOC_FT_INDEX_OFFSET);
    /* damage the second block (entries 8..15) */
    uint64_t block1 = index_offset + DOC_INDEX_BLOCK_HDR + 8 * DOC_INDEX_ENTRY_SIZE;
    m.data[block1 + 50] ^= 0x01;
    LayerReader *r;
    Err err = {0};
    assert_true(layer_reader_open(mem_read, &m, m.size, "L2", &r, &err));
    char want[96];
    assert_true(str_printf(want, sizeof(want), "checksum mismatch in index block 1 at offset %llu",
                           (unsigned long long)block1));
    for (size_t i = 8; i < 16; i++)
        assert_get_fails(r, i, want);
    /* an absent key in that block fails too: the block cannot be trusted to say "absent" */
    Key between = test_key(entry_blk(9) + 1);
    void *v;
    size_t len;
    bool found;
    assert_false(layer_reader_get(r, &between, &v, &len, &found, &err));
    for (size_t i = 0; i < 8; i++)
        assert_value(r, i);
    for (size_t i = 16; i < 100; i++)
        assert_value(r, i);
    size_t count = 0;
    assert_false(layer_reader_iter(r, iter_count, &count, &err));
    assert_int_equal(count, 8);
    layer_reader_free(r);
    free(m.data);
}

/* open_fails: opening m must fail with ERR_INTERNAL and a message containing msg_part. */
static void open_fails(MemSource *m, size_t size, const char *msg_part)
{
    LayerReader *r = NULL;
    Err err = {0};
    if (layer_reader_open(mem_read, m, size, "L3", &r, &err))
        fail_msg("open succeeded, expected \"%s\"", msg_part);
    assert_null(r);
    assert_int_equal(err.code, ERR_INTERNAL);
    if (strstr(err.msg, msg_part) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err.msg, msg_part);
    assert_non_null(strstr(err.msg, "L3"));
}

static void test_corrupt_open(void **state)
{
    char path[512];
    path_in_dir(path, sizeof(path), "corrupt-open");
    write_layer(path, 100, 256, false);
    MemSource m;
    load_file(path, &m);
    size_t size = m.size;
    uint8_t *ft = m.data + size - DOC_FOOTER_SIZE;

    /* truncated: too small, or cut anywhere (the footer is then not at the end) */
    open_fails(&m, 0, "too small");
    open_fails(&m, 100, "too small");
    open_fails(&m, size - 1, "bad magic");
    open_fails(&m, size / 2, "bad magic");

    /* bad magic */
    ft[DOC_FOOTER_SIZE - 2] ^= 0x20;
    open_fails(&m, size, "bad magic");
    ft[DOC_FOOTER_SIZE - 2] ^= 0x20;

    /* an unknown version is refused as such, before any checksum */
    ft[DOC_FT_VERSION] = 2;
    open_fails(&m, size, "unsupported layer format version 2 (this build reads version 1)");
    ft[DOC_FT_VERSION] = 1;

    /* a damaged footer field */
    ft[DOC_FT_INDEX_OFFSET] ^= 0x08;
    open_fails(&m, size, "checksum mismatch in the footer");
    ft[DOC_FT_INDEX_OFFSET] ^= 0x08;

    /* a delta layer (valid checksum) is recognised and refused for now */
    ft[DOC_FT_KIND] = LAYER_KIND_DELTA;
    uint32_t crc = crc32c(ft, DOC_FT_CRC);
    for (int b = 0; b < 4; b++)
        ft[DOC_FT_CRC + b] = (uint8_t)(crc >> (8 * b));
    open_fails(&m, size, "delta layers are not supported yet");
    ft[DOC_FT_KIND] = 9;
    crc = crc32c(ft, DOC_FT_CRC);
    for (int b = 0; b < 4; b++)
        ft[DOC_FT_CRC + b] = (uint8_t)(crc >> (8 * b));
    open_fails(&m, size, "unknown layer kind 9");
    ft[DOC_FT_KIND] = LAYER_KIND_IMAGE;
    crc = crc32c(ft, DOC_FT_CRC);
    for (int b = 0; b < 4; b++)
        ft[DOC_FT_CRC + b] = (uint8_t)(crc >> (8 * b));

    /* the top index */
    uint64_t top = le64(ft + DOC_FT_TOP_OFFSET);
    m.data[top + 12] ^= 0x01;
    open_fails(&m, size, "checksum mismatch in the top index");
    m.data[top + 12] ^= 0x01;

    /* restored: opens again */
    LayerReader *r;
    Err err = {0};
    assert_true(layer_reader_open(mem_read, &m, size, "L3", &r, &err));
    assert_value(r, 42);
    layer_reader_free(r);

    /* a real truncated file on disk */
    char cut[512];
    path_in_dir(cut, sizeof(cut), "corrupt-open-cut");
    assert_true(fs_write_atomic(cut, m.data, size - 200, &err));
    assert_false(layer_reader_open_file(cut, &r, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, cut));
    free(m.data);

    char missing[512];
    path_in_dir(missing, sizeof(missing), "no-such-layer");
    assert_false(layer_reader_open_file(missing, &r, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
}

/* ---- writer misuse ---- */

static size_t count_dir_entries(void)
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strstr(de->d_name, ".tmp.") != NULL)
            n++;
    }
    closedir(d);
    return n;
}

static void test_writer_misuse(void **state)
{
    char path[512];
    path_in_dir(path, sizeof(path), "misuse");
    KeyRange range = {test_key(100), test_key(200)};
    LayerDesc desc = layer_desc_image(&range, 0x5000);
    LayerWriter *w;
    Err err = {0};
    assert_true(layer_writer_new(path, &desc, NULL, &w, &err));
    assert_false(fs_exists(path)); /* nothing at the final name until finish */
    assert_int_equal(count_dir_entries(), 1);

    static const uint8_t val[4] = {1, 2, 3, 4};
    static const struct {
        uint32_t blk;
        bool ok;
    } ADDS[] = {
        {99, false},                /* below the range */
        {100, true},                /* the range start is inside */
        {100, false},               /* equal: not strictly ascending */
        {150, true},  {120, false}, /* descending */
        {200, false},               /* the exclusive end */
        {250, false},               /* above */
        {199, true},
    };
    for (size_t i = 0; i < N_ELEMS(ADDS); i++) {
        Key k = test_key(ADDS[i].blk);
        err_clear(&err);
        bool ok = layer_writer_add(w, &k, val, sizeof(val), &err);
        if (ok != ADDS[i].ok)
            fail_msg("add blk %u: got %d want %d (%s)", ADDS[i].blk, ok, ADDS[i].ok, err.msg);
        if (!ok)
            assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
    /* a value over the limit is refused before it is read */
    Key k = test_key(199 + 0);
    assert_false(layer_writer_add(w, &k, val, (size_t)LAYER_VALUE_MAX + 1, &err));
    LayerInfo info;
    assert_true(layer_writer_finish(w, &info, &err));
    assert_int_equal(info.entry_count, 3);
    assert_int_equal(count_dir_entries(), 0);
    LayerReader *r;
    assert_true(layer_reader_open_file(path, &r, &err));
    layer_reader_info(r, &info);
    assert_int_equal(info.entry_count, 3);
    layer_reader_free(r);

    /* abort leaves nothing behind */
    char other[512];
    path_in_dir(other, sizeof(other), "aborted");
    assert_true(layer_writer_new(other, &desc, NULL, &w, &err));
    k = test_key(150);
    assert_true(layer_writer_add(w, &k, val, sizeof(val), &err));
    layer_writer_abort(w);
    assert_false(fs_exists(other));
    assert_int_equal(count_dir_entries(), 0);
    layer_writer_abort(NULL);

    /* bad descriptions and options */
    LayerDesc delta = {LAYER_KIND_DELTA, range, {0x10, 0x20}};
    assert_false(layer_writer_new(other, &delta, NULL, &w, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_non_null(strstr(err.msg, "not supported"));
    KeyRange empty = {test_key(5), test_key(5)};
    LayerDesc bad = layer_desc_image(&empty, 0x10);
    assert_false(layer_writer_new(other, &bad, NULL, &w, &err));
    bad = layer_desc_image(&range, 0);
    assert_false(layer_writer_new(other, &bad, NULL, &w, &err));
    LayerWriterOptions tiny = {.index_block_size = 16};
    assert_false(layer_writer_new(other, &desc, &tiny, &w, &err));
    char nodir[512];
    path_in_dir(nodir, sizeof(nodir), "no/such/dir/layer");
    assert_false(layer_writer_new(nodir, &desc, NULL, &w, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_int_equal(count_dir_entries(), 0);
}

/* ---- names ---- */

#define K_A "000000067F000032AC000040040000000000"
#define K_B "000000067F000032AC0000400400000002C4"
#define K_F "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"

static void test_names_round_trip(void **state)
{
    static const struct {
        const char *name;
        LayerKind kind;
        Lsn start, end;
    } GOOD[] = {
        {K_A "-" K_B "__00000000016960E8", LAYER_KIND_IMAGE, 0x16960E8, 0x16960E9},
        {K_A "-" K_B "__00000000016960E8-0000000001A00000", LAYER_KIND_DELTA, 0x16960E8, 0x1A00000},
        {"000000000000000000000000000000000000-" K_F "__0000000000000001", LAYER_KIND_IMAGE, 1, 2},
        {K_A "-" K_F "__FFFFFFFFFFFFFFFE", LAYER_KIND_IMAGE, 0xFFFFFFFFFFFFFFFEull,
         0xFFFFFFFFFFFFFFFFull},
    };
    for (size_t i = 0; i < N_ELEMS(GOOD); i++) {
        LayerDesc d;
        Err err = {0};
        if (!layer_name_parse(GOOD[i].name, &d, &err))
            fail_msg("parse %s: %s", GOOD[i].name, err.msg);
        assert_int_equal(d.kind, GOOD[i].kind);
        assert_int_equal(d.lsn_range.start, GOOD[i].start);
        assert_int_equal(d.lsn_range.end, GOOD[i].end);
        char out[LAYER_NAME_SIZE];
        layer_name_format(&d, out);
        assert_string_equal(out, GOOD[i].name);
    }
    /* from a description */
    KeyRange r = {key_rel_block(1663, 12972, 16388, FORK_MAIN, 0),
                  key_rel_block(1663, 12972, 16388, FORK_MAIN, 708)};
    LayerDesc d = layer_desc_image(&r, 0x16960E8);
    char out[LAYER_NAME_SIZE];
    layer_name_format(&d, out);
    assert_string_equal(out, K_A "-" K_B "__00000000016960E8");
    assert_int_equal(strlen(out), 91);
    d.kind = LAYER_KIND_DELTA;
    d.lsn_range.end = 0x2000000;
    layer_name_format(&d, out);
    assert_int_equal(strlen(out), LAYER_NAME_SIZE - 1);
    LayerDesc back;
    Err err = {0};
    assert_true(layer_name_parse(out, &back, &err));
    assert_true(key_eq(&back.key_range.start, &r.start));
    assert_true(key_eq(&back.key_range.end, &r.end));
    assert_int_equal(back.lsn_range.end, 0x2000000);
}

static void test_names_malformed(void **state)
{
    static const char *const BAD[] = {
        "",
        "garbage",
        K_A "-" K_B "__00000000016960e8",                                 /* lowercase LSN */
        "000000067f000032ac000040040000000000-" K_B "__00000000016960E8", /* lowercase key */
        K_A "-" K_B "__00000000016960E8-00000001",                        /* generation suffix */
        K_A "-" K_B "__00000000016960E8.tmp",                             /* temp suffix */
        K_A "-" K_B "__00000000016960E8-0000000001A00000-00000001",
        K_A "_" K_B "__00000000016960E8", /* '_' for '-' */
        K_A "-" K_B "_-00000000016960E8", /* "_-" for "__" */
        K_A "-" K_B "--00000000016960E8",
        K_A "-" K_B "__00000000016960E8_0000000001A00000", /* '_' between LSNs */
        K_A "-" K_B "__00000000016960G8",                  /* non-hex */
        K_A "-" K_B "__ 0000000016960E8",                  /* space */
        K_A "-" K_B "__0000000016960E8",                   /* 15 LSN digits */
        K_A "0-" K_B "__0000000016960E8",                  /* 37-digit key */
        K_B "-" K_A "__00000000016960E8",                  /* start > end */
        K_A "-" K_A "__00000000016960E8",                  /* empty key range */
        K_A "-" K_B "__0000000000000000",                  /* LSN 0 */
        K_A "-" K_B "__FFFFFFFFFFFFFFFF",                  /* image LSN without successor */
        K_A "-" K_B "__0000000001A00000-00000000016960E8", /* delta end < start */
        K_A "-" K_B "__00000000016960E8-00000000016960E8", /* delta empty LSN range */
        K_A "-" K_B "__0000000000000000-00000000016960E8", /* delta start 0 */
        "/" K_A "-" K_B "__00000000016960E8",
    };
    for (size_t i = 0; i < N_ELEMS(BAD); i++) {
        LayerDesc d;
        Err err = {0};
        if (layer_name_parse(BAD[i], &d, &err))
            fail_msg("malformed name %zu \"%s\" accepted", i, BAD[i]);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_true(err.msg[0] != '\0');
    }
    LayerDesc d;
    Err err = {0};
    assert_false(layer_name_parse(NULL, &d, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_names_malformed),
        cmocka_unit_test(test_round_trip_empty),
        cmocka_unit_test(test_round_trip_one),
        cmocka_unit_test(test_round_trip_10000),
        cmocka_unit_test(test_round_trip_small_blocks),
        cmocka_unit_test(test_overhead_per_entry),
        cmocka_unit_test(test_read_counts),
        cmocka_unit_test(test_remote_source),
        cmocka_unit_test(test_concurrent_readers),
        cmocka_unit_test(test_corrupt_value_blob),
        cmocka_unit_test(test_corrupt_index_block),
        cmocka_unit_test(test_corrupt_open),
        cmocka_unit_test(test_writer_misuse),
        cmocka_unit_test(test_image_compression_options),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
