/* test_pageserver_read_path.c: unit tests for the pure parts of the read path: getpage query
 * parsing (pageserver/read_path.c) and the image layer choice (pageserver/layer_map.c), plus a
 * real layer file read through a Layer object, including a corrupted one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/id.h"
#include "shared/key.h"
#include "shared/remote_storage.h"
#include "shared/str.h"

#include "pageserver/layer.h"
#include "pageserver/layer_map.h"
#include "pageserver/http_api.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

typedef struct QueryCase {
    const char *rel, *fork, *blkno, *lsn;
    bool ok;
    uint32_t spc, db, relnode, fork_n, blk;
    Lsn want_lsn;
} QueryCase;

static void test_parse_query(void **state)
{
    (void)state;
    static const QueryCase cases[] = {
        {"1663/5/1259", "0", "3", NULL, true, 1663, 5, 1259, 0, 3, 0},
        {"1664/0/1262", "3", "0", "0/16B5A50", true, 1664, 0, 1262, 3, 0, 0x16B5A50},
        {"1663/5/1259", "2", "4294967294", "1/0", true, 1663, 5, 1259, 2, 4294967294u,
         0x100000000ull},
        {NULL, "0", "0", NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663/5/1259", NULL, "0", NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663/5/1259", "0", NULL, NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663/5", "0", "0", NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663/5/1259/1", "0", "0", NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663//1259", "0", "0", NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663/5/0", "0", "0", NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663/5/-1", "0", "0", NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663/5/4294967296", "0", "0", NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663/5/1259", "4", "0", NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663/5/1259", "x", "0", NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663/5/1259", "0", "4294967295", NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663/5/1259", "0", "1.5", NULL, false, 0, 0, 0, 0, 0, 0},
        {"1663/5/1259", "0", "0", "16B5A50", false, 0, 0, 0, 0, 0, 0},
        {"1663/5/1259", "0", "0", "0/0", false, 0, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        const QueryCase *c = &cases[i];
        GetPageQuery r;
        Err err = {0};
        bool ok = getpage_parse_query(c->rel, c->fork, c->blkno, c->lsn, &r, &err);
        if (ok != c->ok)
            fail_msg("case %zu (%s): expected %s, got %s", i, c->rel ? c->rel : "NULL",
                     c->ok ? "ok" : "error", ok ? "ok" : err.msg);
        if (!ok) {
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            continue;
        }
        assert_int_equal(r.rel.spc, c->spc);
        assert_int_equal(r.rel.db, c->db);
        assert_int_equal(r.rel.rel, c->relnode);
        assert_int_equal(r.rel.fork, c->fork_n);
        assert_int_equal(r.blkno, c->blk);
        assert_int_equal(r.lsn, c->lsn != NULL ? c->want_lsn : LSN_INVALID);
    }
}

static Layer *fake_layer(const Key *start, const Key *end, Lsn lsn)
{
    KeyRange kr = {*start, *end};
    LayerDesc d = layer_desc_image(&kr, lsn);
    IndexLayer meta;
    memset(&meta, 0, sizeof(meta));
    layer_name_format(&d, meta.name);
    meta.file_size = 100;
    meta.generation = 1;
    TenantId t;
    TimelineId tl;
    memset(&t, 0x11, sizeof(t));
    memset(&tl, 0x22, sizeof(tl));
    Layer *l = NULL;
    Err err = {0};
    if (!layer_obj_new(&meta, &t, &tl, "/nonexistent", false, &l, &err))
        fail_msg("%s", err.msg);
    return l;
}

static void test_find_image(void **state)
{
    (void)state;
    Key a = key_rel_block(1663, 5, 100, 0, 0);
    Key b = key_rel_block(1663, 5, 200, 0, 0);
    Key c = key_rel_block(1663, 5, 300, 0, 0);
    Layer *layers[] = {
        fake_layer(&KEY_MIN, &KEY_MAX, 0x100), /* everything at 0x100 */
        fake_layer(&a, &b, 0x200),             /* [a, b) at 0x200 */
        fake_layer(&b, &c, 0x300),             /* [b, c) at 0x300 */
    };
    Key in_ab = key_rel_block(1663, 5, 150, 0, 7);
    Key in_bc = key_rel_block(1663, 5, 250, 0, 7);
    Key after = key_rel_block(1663, 5, 350, 0, 7);
    assert_ptr_equal(layer_map_find_image(layers, 3, &in_ab, 0x1FF), layers[0]);
    assert_ptr_equal(layer_map_find_image(layers, 3, &in_ab, 0x200), layers[1]);
    assert_ptr_equal(layer_map_find_image(layers, 3, &in_ab, 0x999), layers[1]);
    assert_ptr_equal(layer_map_find_image(layers, 3, &in_bc, 0x2FF), layers[0]);
    assert_ptr_equal(layer_map_find_image(layers, 3, &in_bc, 0x300), layers[2]);
    assert_ptr_equal(layer_map_find_image(layers, 3, &b, 0x300), layers[2]); /* start inclusive */
    assert_ptr_equal(layer_map_find_image(layers, 3, &after, 0x999), layers[0]);
    assert_null(layer_map_find_image(layers, 3, &in_ab, 0xFF));
    assert_null(layer_map_find_image(layers + 1, 2, &after, 0x999)); /* end exclusive */
    assert_null(layer_map_find_image(layers, 0, &in_ab, 0x999));
    for (size_t i = 0; i < COUNT_OF(layers); i++)
        layer_obj_unref(layers[i]);
}

static void test_local_name_and_remote_key(void **state)
{
    (void)state;
    Layer *l = fake_layer(&KEY_MIN, &KEY_MAX, 0x16B5A50);
    assert_true(str_has_suffix(l->local_path, "__00000000016B5A50-00000001"));
    assert_true(str_has_prefix(l->remote_key, "tenants/11111111111111111111111111111111/timelines/"
                                              "22222222222222222222222222222222/"));
    assert_true(str_has_suffix(l->remote_key, "-00000001"));
    IndexLayer e = layer_obj_to_index(l);
    assert_string_equal(e.name, l->name);
    assert_int_equal(e.generation, 1);
    layer_obj_unref(l);
}

/* a real layer: written, read through a Layer, then corrupted: the read must fail with the
 * checksum error, never return data */
static void test_read_and_corruption(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_read_path_XXXXXX";
    assert_non_null(mkdtemp(dir));
    Key k1 = key_rel_block(1663, 5, 1259, 0, 0);
    Key k2 = key_rel_block(1663, 5, 1259, 0, 1);
    KeyRange kr = {KEY_MIN, KEY_MAX};
    LayerDesc d = layer_desc_image(&kr, 0x1000);
    IndexLayer meta;
    memset(&meta, 0, sizeof(meta));
    layer_name_format(&d, meta.name);
    meta.generation = 5;
    char path[512];
    assert_true(str_printf(path, sizeof(path), "%s/%s-00000005", dir, meta.name));
    LayerWriter *w = NULL;
    Err err = {0};
    uint8_t page[BLCKSZ];
    for (size_t i = 0; i < sizeof(page); i++)
        page[i] = (uint8_t)(i * 7 + 3);
    assert_true(layer_writer_new(path, &d, NULL, &w, &err));
    assert_true(layer_writer_add(w, &k1, page, sizeof(page), &err));
    page[0] ^= 0xff;
    assert_true(layer_writer_add(w, &k2, page, sizeof(page), &err));
    LayerInfo info;
    assert_true(layer_writer_finish(w, &info, &err));
    meta.file_size = info.file_size;

    TenantId t;
    TimelineId tl;
    memset(&t, 0x11, sizeof(t));
    memset(&tl, 0x22, sizeof(tl));
    Layer *l = NULL;
    assert_true(layer_obj_new(&meta, &t, &tl, dir, true, &l, &err));
    void *v = NULL;
    size_t len = 0;
    bool found = false;
    assert_true(layer_obj_get(l, NULL, NULL, &k2, &v, &len, &found, NULL, NULL, &err));
    assert_true(found);
    assert_int_equal(len, BLCKSZ);
    assert_memory_equal(v, page, BLCKSZ);
    free(v);
    Key absent = key_rel_block(1663, 5, 1259, 0, 2);
    assert_true(layer_obj_get(l, NULL, NULL, &absent, &v, &len, &found, NULL, NULL, &err));
    assert_false(found);

    /* flip bytes inside the first value blob (it starts right after the 16-byte header) */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 40, SEEK_SET), 0);
    uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
    fclose(f);
    err_clear(&err);
    v = NULL;
    assert_false(layer_obj_get(l, NULL, NULL, &k1, &v, &len, &found, NULL, NULL, &err));
    assert_null(v);
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "checksum"));
    layer_obj_unref(l);
    assert_true(fs_remove_tree(dir, &err));
}

static void flip_bytes(const char *path, long offset)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, offset, SEEK_SET), 0);
    uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
    fclose(f);
}

/* a damaged local copy is evicted and downloaded again from the intact remote object; with the
 * remote object damaged too the read fails, after a bounded number of re-downloads */
static void test_damaged_local_copy_is_fetched_again(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_read_path_XXXXXX";
    assert_non_null(mkdtemp(dir));
    Key k1 = key_rel_block(1663, 5, 1259, 0, 0);
    KeyRange kr = {KEY_MIN, KEY_MAX};
    LayerDesc d = layer_desc_image(&kr, 0x1000);
    IndexLayer meta;
    memset(&meta, 0, sizeof(meta));
    layer_name_format(&d, meta.name);
    meta.generation = 5;
    char path[512], url[600];
    assert_true(str_printf(path, sizeof(path), "%s/%s-00000005", dir, meta.name));
    assert_true(str_printf(url, sizeof(url), "file://%s/remote", dir));
    LayerWriter *w = NULL;
    Err err = {0};
    uint8_t page[BLCKSZ];
    for (size_t i = 0; i < sizeof(page); i++)
        page[i] = (uint8_t)(i * 5 + 1);
    assert_true(layer_writer_new(path, &d, NULL, &w, &err));
    assert_true(layer_writer_add(w, &k1, page, sizeof(page), &err));
    LayerInfo info;
    assert_true(layer_writer_finish(w, &info, &err));
    meta.file_size = info.file_size;

    TenantId t;
    TimelineId tl;
    memset(&t, 0x11, sizeof(t));
    memset(&tl, 0x22, sizeof(tl));
    Layer *l = NULL;
    assert_true(layer_obj_new(&meta, &t, &tl, dir, true, &l, &err));
    RemoteStorage *rs = NULL;
    assert_true(remote_storage_open(url, &rs, &err));
    assert_true(remote_put_file(rs, l->remote_key, path, &err));

    flip_bytes(path, 40);
    void *v = NULL;
    size_t len = 0;
    bool found = false;
    uint64_t downloaded = 0, refetched = 0;
    assert_true(layer_obj_get(l, rs, NULL, &k1, &v, &len, &found, &downloaded, &refetched, &err));
    assert_true(found);
    assert_memory_equal(v, page, BLCKSZ);
    free(v);
    assert_int_equal(refetched, 1);
    assert_int_equal(downloaded, meta.file_size);

    /* the remote object damaged as well: an error, never data, and the evictions stop */
    char remote_path[1024];
    assert_true(str_printf(remote_path, sizeof(remote_path), "%s/remote/%s", dir, l->remote_key));
    flip_bytes(remote_path, 40);
    flip_bytes(path, 40);
    for (int i = 0; i < LAYER_REFETCH_MAX + 2; i++) {
        v = NULL;
        err_clear(&err);
        assert_false(layer_obj_get(l, rs, NULL, &k1, &v, &len, &found, NULL, &refetched, &err));
        assert_null(v);
        assert_non_null(strstr(err.msg, "checksum"));
    }
    assert_int_equal(refetched, LAYER_REFETCH_MAX);
    layer_obj_unref(l);
    remote_storage_free(rs);
    assert_true(fs_remove_tree(dir, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_query),
        cmocka_unit_test(test_find_image),
        cmocka_unit_test(test_local_name_and_remote_key),
        cmocka_unit_test(test_read_and_corruption),
        cmocka_unit_test(test_damaged_local_copy_is_fetched_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
