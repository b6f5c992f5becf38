/* test_remote_storage.c: unit tests for shared/remote_storage.c and the file:// backend: URL
 * parsing, key validation, put/get/range/head/list/delete/delete_prefix semantics, atomicity of
 * concurrent puts as seen by concurrent readers, and temporary files staying invisible. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/crc32c.h"
#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/str.h"

#include "shared/remote_storage.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

typedef struct Fixture {
    char root[256];
    char url[300];
    RemoteStorage *rs;
} Fixture;

static unsigned g_fixture_seq;

static int fixture_setup(void **state)
{
    Fixture *f = xcalloc(1, sizeof(*f));
    Err err = {0};
    if (!str_printf(f->root, sizeof(f->root), "/tmp/test_remote_storage.%ld.%u/remote",
                    (long)getpid(), g_fixture_seq++) ||
        !str_printf(f->url, sizeof(f->url), "file://%s", f->root))
        return -1;
    if (!remote_storage_open(f->url, &f->rs, &err)) {
        fprintf(stderr, "open %s: %s\n", f->url, err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    Fixture *f = *state;
    Err err = {0};
    remote_storage_free(f->rs);
    char *slash = strrchr(f->root, '/');
    *slash = '\0'; /* the per-test parent directory */
    int rc = fs_remove_tree(f->root, &err) ? 0 : -1;
    free(f);
    return rc;
}

/* put_str / get_str: helpers that fail the test on error. */
static void put_str(RemoteStorage *rs, const char *key, const char *s)
{
    Err err = {0};
    if (!remote_put(rs, key, s, strlen(s), &err))
        fail_msg("put %s: %s", key, err.msg);
}

static char *get_str(RemoteStorage *rs, const char *key)
{
    Err err = {0};
    char *data = NULL;
    size_t len = 0;
    if (!remote_get(rs, key, &data, &len, &err))
        fail_msg("get %s: %s", key, err.msg);
    assert_int_equal(strlen(data), len);
    return data;
}

static void assert_listing(RemoteStorage *rs, const char *prefix, const char *const *want,
                           size_t n_want)
{
    Err err = {0};
    RemoteListing l;
    if (!remote_list(rs, prefix, &l, &err))
        fail_msg("list \"%s\": %s", prefix, err.msg);
    if (l.n != n_want) {
        for (size_t i = 0; i < l.n; i++)
            fprintf(stderr, "  got %s\n", l.items[i].key);
        fail_msg("list \"%s\": %zu keys, want %zu", prefix, l.n, n_want);
    }
    for (size_t i = 0; i < n_want; i++)
        assert_string_equal(l.items[i].key, want[i]);
    remote_listing_free(&l);
}

/* ---- URLs ---- */

static void test_open_urls(void **state)
{
    static const struct {
        const char *url;
        const char *msg_part;
        ErrCode code;
    } BAD[] = {
        {"", "empty", ERR_BAD_REQUEST},
        {"file://relative/dir", "absolute", ERR_BAD_REQUEST},
        {"file:relative", "not a URL", ERR_BAD_REQUEST},
        {"file:///", "root directory", ERR_BAD_REQUEST},
        {"file:///tmp/a/../b", "\"..\"", ERR_BAD_REQUEST},
        {"file:///tmp/./b", "\".\"", ERR_BAD_REQUEST},
        {"s3://bucket/prefix", "s3 remote storage is not supported yet", ERR_PRECONDITION_FAILED},
        {"s3://B/prefix", "bucket name", ERR_BAD_REQUEST},
        {"http://example.com/x", "unsupported", ERR_BAD_REQUEST},
        {"/tmp/plain/path", "not a URL", ERR_BAD_REQUEST},
    };
    for (size_t i = 0; i < N_ELEMS(BAD); i++) {
        Err err = {0};
        RemoteStorage *rs = (RemoteStorage *)1;
        if (remote_storage_open(BAD[i].url, &rs, &err))
            fail_msg("url \"%s\" accepted", BAD[i].url);
        assert_null(rs);
        assert_int_equal(err.code, BAD[i].code);
        if (strstr(err.msg, BAD[i].msg_part) == NULL)
            fail_msg("url \"%s\": message \"%s\" lacks \"%s\"", BAD[i].url, err.msg,
                     BAD[i].msg_part);
    }

    /* a missing root (and its parents) is created; trailing slashes are fine */
    char root[256], url[300];
    assert_true(
        str_printf(root, sizeof(root), "/tmp/test_remote_storage.%ld.open/x/y", (long)getpid()));
    assert_true(str_printf(url, sizeof(url), "file://%s//", root));
    Err err = {0};
    RemoteStorage *rs = NULL;
    if (!remote_storage_open(url, &rs, &err))
        fail_msg("open %s: %s", url, err.msg);
    assert_string_equal(remote_storage_url(rs), url);
    struct stat st;
    assert_int_equal(stat(root, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    put_str(rs, "k", "v");
    char obj[300];
    assert_true(str_printf(obj, sizeof(obj), "%s/k", root));
    assert_true(fs_exists(obj));
    remote_storage_free(rs);
    char parent[256];
    assert_true(
        str_printf(parent, sizeof(parent), "/tmp/test_remote_storage.%ld.open", (long)getpid()));
    assert_true(fs_remove_tree(parent, &err));
}

/* ---- keys ---- */

static void test_key_validation(void **state)
{
    static const struct {
        const char *key;
        bool ok;
    } KEYS[] = {
        {"a", true},     {"tenants/1f35/timelines/ab/index_part.json-00000001", true},
        {"a/b/c", true}, {".hidden", true},
        {"a/...", true}, {"a..b/c", true},
        {"", false},     {"/a", false},
        {"a/", false},   {"a//b", false},
        {"./a", false},  {"a/./b", false},
        {"a/.", false},  {"..", false},
        {"../a", false}, {"a/../b", false},
        {"a/..", false}, {"a\nb", false},
        {"/", false},
    };
    for (size_t i = 0; i < N_ELEMS(KEYS); i++) {
        Err err = {0};
        bool ok = remote_key_validate(KEYS[i].key, &err);
        if (ok != KEYS[i].ok)
            fail_msg("key \"%s\": got %s, want %s (%s)", KEYS[i].key, ok ? "ok" : "rejected",
                     KEYS[i].ok ? "ok" : "rejected", err.msg);
        if (!ok)
            assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
    char long_key[1100];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    Err err = {0};
    assert_false(remote_key_validate(long_key, &err));
    assert_false(remote_key_validate(NULL, &err));
}

/* Every operation refuses invalid keys before touching the backend. */
static void test_ops_reject_bad_keys(void **state)
{
    Fixture *f = *state;
    static const char *const BAD[] = {"/abs", "a/../b", "a//b", "", "x/."};
    for (size_t i = 0; i < N_ELEMS(BAD); i++) {
        Err err = {0};
        char *data = NULL;
        size_t len = 0, got = 0;
        char buf[4];
        RemoteObjectInfo info;
        assert_false(remote_put(f->rs, BAD[i], "x", 1, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        err_clear(&err);
        assert_false(remote_get(f->rs, BAD[i], &data, &len, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        err_clear(&err);
        assert_false(remote_get_range(f->rs, BAD[i], 0, sizeof(buf), buf, &got, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        err_clear(&err);
        assert_false(remote_head(f->rs, BAD[i], &info, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        err_clear(&err);
        assert_false(remote_delete(f->rs, BAD[i], &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
    /* the "../" key must not have escaped the root */
    char outside[300];
    assert_true(str_printf(outside, sizeof(outside), "%s/../b", f->root));
    assert_false(fs_exists(outside));
    /* a name of the temporary-file form is reserved by the fs backend */
    Err err = {0};
    assert_false(remote_put(f->rs, "dir/obj.tmp.12.3", "x", 1, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    put_str(f->rs, "dir/obj.tmp.x.3", "not a temp name");
}

/* ---- basic operations ---- */

static void test_put_get_head_range(void **state)
{
    Fixture *f = *state;
    const char *key = "tenants/t1/timelines/tl/index_part.json-00000001";
    put_str(f->rs, key, "hello, remote world");
    char *data = get_str(f->rs, key);
    assert_string_equal(data, "hello, remote world");
    free(data);

    /* the object is a file under root */
    char path[512];
    assert_true(str_printf(path, sizeof(path), "%s/%s", f->root, key));
    assert_true(fs_exists(path));

    Err err = {0};
    RemoteObjectInfo info;
    assert_true(remote_head(f->rs, key, &info, &err));
    assert_null(info.key);
    assert_int_equal(info.size, 19);
    assert_true(info.mtime_ms > 1600000000000LL);

    char buf[64];
    size_t got = 0;
    assert_true(remote_get_range(f->rs, key, 7, 6, buf, &got, &err));
    assert_int_equal(got, 6);
    assert_memory_equal(buf, "remote", 6);
    assert_true(remote_get_range(f->rs, key, 14, 32, buf, &got, &err)); /* past the end */
    assert_int_equal(got, 5);
    assert_memory_equal(buf, "world", 5);
    assert_true(remote_get_range(f->rs, key, 19, 8, buf, &got, &err));
    assert_int_equal(got, 0);
    assert_true(remote_get_range(f->rs, key, 1000, 8, buf, &got, &err));
    assert_int_equal(got, 0);

    /* overwrite replaces the whole object, including with a shorter and an empty one */
    put_str(f->rs, key, "v2");
    data = get_str(f->rs, key);
    assert_string_equal(data, "v2");
    free(data);
    put_str(f->rs, key, "");
    data = get_str(f->rs, key);
    assert_string_equal(data, "");
    free(data);
    assert_true(remote_head(f->rs, key, &info, &err));
    assert_int_equal(info.size, 0);

    /* binary content with NULs survives */
    uint8_t bin[300];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)(i * 7);
    assert_true(remote_put(f->rs, "bin", bin, sizeof(bin), &err));
    size_t len = 0;
    assert_true(remote_get(f->rs, "bin", &data, &len, &err));
    assert_int_equal(len, sizeof(bin));
    assert_memory_equal(data, bin, sizeof(bin));
    assert_int_equal(data[len], '\0');
    free(data);
}

static void test_absent_keys(void **state)
{
    Fixture *f = *state;
    Err err = {0};
    char *data = (char *)1;
    size_t len = 5, got = 5;
    char buf[8];
    RemoteObjectInfo info;
    assert_false(remote_get(f->rs, "no/such/key", &data, &len, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_null(data);
    err_clear(&err);
    assert_false(remote_get_range(f->rs, "no/such/key", 0, sizeof(buf), buf, &got, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    err_clear(&err);
    assert_false(remote_head(f->rs, "nokey", &info, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    err_clear(&err);
    assert_true(remote_delete(f->rs, "no/such/key", &err));

    /* a key that is only a "directory" (prefix of other keys) is absent too */
    put_str(f->rs, "dir/sub/obj", "x");
    assert_false(remote_get(f->rs, "dir/sub", &data, &len, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    err_clear(&err);
    assert_false(remote_head(f->rs, "dir", &info, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_true(remote_delete(f->rs, "dir/sub", &err));
    /* and a key under an object's name */
    assert_false(remote_get(f->rs, "dir/sub/obj/deeper", &data, &len, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_true(remote_delete(f->rs, "dir/sub/obj/deeper", &err));
    char *v = get_str(f->rs, "dir/sub/obj");
    assert_string_equal(v, "x");
    free(v);

    /* a key can not be both an object and a prefix of others */
    err_clear(&err);
    assert_false(remote_put(f->rs, "dir/sub/obj/child", "y", 1, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    err_clear(&err);
    assert_false(remote_put(f->rs, "dir/sub", "y", 1, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
}

static void test_list(void **state)
{
    Fixture *f = *state;
    /* created in an order unrelated to the sorted one */
    static const char *const KEYS[] = {
        "x/b/2", "x/b/10", "x/a", "x-y", "x/b-1", "x0", "A", "x/b/1/deep/er", "tenants/t/z",
    };
    for (size_t i = 0; i < N_ELEMS(KEYS); i++)
        put_str(f->rs, KEYS[i], KEYS[i]);
    static const char *const ALL[] = {
        "A", "tenants/t/z", "x-y", "x/a", "x/b-1", "x/b/1/deep/er", "x/b/10", "x/b/2", "x0",
    };
    assert_listing(f->rs, "", ALL, N_ELEMS(ALL));
    static const char *const X_SLASH[] = {"x/a", "x/b-1", "x/b/1/deep/er", "x/b/10", "x/b/2"};
    assert_listing(f->rs, "x/", X_SLASH, N_ELEMS(X_SLASH));
    static const char *const X[] = {"x-y",    "x/a",   "x/b-1", "x/b/1/deep/er",
                                    "x/b/10", "x/b/2", "x0"};
    assert_listing(f->rs, "x", X, N_ELEMS(X));
    static const char *const XB[] = {"x/b-1", "x/b/1/deep/er", "x/b/10", "x/b/2"};
    assert_listing(f->rs, "x/b", XB, N_ELEMS(XB));
    static const char *const XB1[] = {"x/b/1/deep/er", "x/b/10"};
    assert_listing(f->rs, "x/b/1", XB1, N_ELEMS(XB1));
    static const char *const EXACT[] = {"x/a"};
    assert_listing(f->rs, "x/a", EXACT, N_ELEMS(EXACT));
    assert_listing(f->rs, "nothing/", NULL, 0);
    assert_listing(f->rs, "x/a/", NULL, 0); /* under an object */
    assert_listing(f->rs, "q", NULL, 0);

    /* sizes and mtimes come with the listing */
    Err err = {0};
    RemoteListing l;
    assert_true(remote_list(f->rs, "tenants/", &l, &err));
    assert_int_equal(l.n, 1);
    assert_int_equal(l.items[0].size, strlen("tenants/t/z"));
    assert_true(l.items[0].mtime_ms > 0);
    remote_listing_free(&l);
    assert_int_equal(l.n, 0);

    /* bad prefixes */
    static const char *const BAD[] = {"/x", "x//", "../", "x/../y/", "x/./"};
    for (size_t i = 0; i < N_ELEMS(BAD); i++) {
        err_clear(&err);
        if (remote_list(f->rs, BAD[i], &l, &err))
            fail_msg("prefix \"%s\" accepted", BAD[i]);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
}

static void test_list_skips_temp_files(void **state)
{
    Fixture *f = *state;
    put_str(f->rs, "t/obj", "real");
    /* a put in progress (or one a crash interrupted) leaves such files behind */
    static const char *const TEMPS[] = {"t/obj.tmp.1234.0", "t/new.tmp.99.17", "top.tmp.1.2"};
    for (size_t i = 0; i < N_ELEMS(TEMPS); i++) {
        char path[512];
        assert_true(str_printf(path, sizeof(path), "%s/%s", f->root, TEMPS[i]));
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "partial", 7), 7);
        close(fd);
    }
    static const char *const WANT[] = {"t/obj"};
    assert_listing(f->rs, "", WANT, 1);
    assert_listing(f->rs, "t/", WANT, 1);
    assert_listing(f->rs, "t/obj", WANT, 1);
    /* nor are they readable as objects */
    Err err = {0};
    char *data;
    size_t len;
    assert_false(remote_get(f->rs, "t/obj.tmp.1234.0", &data, &len, &err));
}

static void test_delete_and_prefix(void **state)
{
    Fixture *f = *state;
    Err err = {0};
    put_str(f->rs, "tenants/a/timelines/1/layer", "1");
    put_str(f->rs, "tenants/a/timelines/1/index", "2");
    put_str(f->rs, "tenants/a/timelines/2/layer", "3");
    put_str(f->rs, "tenants/a-0102/timelines/1/layer", "4");
    put_str(f->rs, "tenants/b/x", "5");

    /* deleting the last key of a directory removes the now-empty directories */
    assert_true(remote_delete(f->rs, "tenants/a/timelines/2/layer", &err));
    char path[512];
    assert_true(str_printf(path, sizeof(path), "%s/tenants/a/timelines/2", f->root));
    assert_false(fs_exists(path));
    assert_true(str_printf(path, sizeof(path), "%s/tenants/a/timelines", f->root));
    assert_true(fs_exists(path)); /* still holds timeline 1 */
    assert_true(remote_delete(f->rs, "tenants/a/timelines/2/layer", &err)); /* again: absent */

    /* delete_prefix is a string prefix: "tenants/a" also matches "tenants/a-0102" */
    assert_true(remote_delete_prefix(f->rs, "tenants/a/", &err));
    static const char *const AFTER1[] = {"tenants/a-0102/timelines/1/layer", "tenants/b/x"};
    assert_listing(f->rs, "", AFTER1, N_ELEMS(AFTER1));
    assert_true(str_printf(path, sizeof(path), "%s/tenants/a", f->root));
    assert_false(fs_exists(path));
    assert_true(remote_delete_prefix(f->rs, "tenants/a", &err));
    static const char *const AFTER2[] = {"tenants/b/x"};
    assert_listing(f->rs, "", AFTER2, N_ELEMS(AFTER2));
    assert_true(remote_delete_prefix(f->rs, "nothing/here/", &err));

    /* an empty prefix would mean "everything": refused */
    assert_false(remote_delete_prefix(f->rs, "", &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_listing(f->rs, "", AFTER2, N_ELEMS(AFTER2));

    /* the root itself survives even when empty */
    assert_true(remote_delete(f->rs, "tenants/b/x", &err));
    assert_listing(f->rs, "", NULL, 0);
    assert_true(fs_exists(f->root));
    assert_true(str_printf(path, sizeof(path), "%s/tenants", f->root));
    assert_false(fs_exists(path));
}

static void test_put_file_get_to_file(void **state)
{
    Fixture *f = *state;
    Err err = {0};
    char local[512], back[512];
    assert_true(str_printf(local, sizeof(local), "%s.local", f->root));
    assert_true(str_printf(back, sizeof(back), "%s.download/sub/file", f->root));
    size_t n = 3 * 1024 * 1024 + 17;
    uint8_t *buf = xmalloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    assert_true(fs_write_atomic(local, buf, n, &err));
    if (!remote_put_file(f->rs, "layers/big", local, &err))
        fail_msg("put_file: %s", err.msg);
    RemoteObjectInfo info;
    assert_true(remote_head(f->rs, "layers/big", &info, &err));
    assert_int_equal(info.size, n);
    if (!remote_get_to_file(f->rs, "layers/big", back, &err))
        fail_msg("get_to_file: %s", err.msg);
    char *data;
    size_t len;
    assert_true(fs_read_file(back, n + 1, &data, &len, &err));
    assert_int_equal(len, n);
    assert_memory_equal(data, buf, n);
    free(data);

    /* a missing local file, a missing object */
    char missing[512];
    assert_true(str_printf(missing, sizeof(missing), "%s.nope", f->root));
    assert_false(remote_put_file(f->rs, "layers/x", missing, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    err_clear(&err);
    assert_false(remote_get_to_file(f->rs, "layers/absent", missing, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_false(fs_exists(missing));
    assert_listing(f->rs, "layers/x", NULL, 0);

    free(buf);
    unlink(local);
    assert_true(str_printf(back, sizeof(back), "%s.download", f->root));
    assert_true(fs_remove_tree(back, &err));
}

/* ---- concurrency ---- */

#define CONC_WRITERS 4
#define CONC_PUTS    40
#define CONC_KEY     "tenants/t/timelines/tl/index_part.json-00000001"

typedef struct ConcShared {
    RemoteStorage *rs;
    _Atomic int writers_left;
    _Atomic long reads;
    _Atomic long bad;
    _Atomic long errors;
} ConcShared;

typedef struct ConcWriter {
    ConcShared *sh;
    unsigned id;
} ConcWriter;

/* A self-checking object: [u32 body length][u32 crc32c of the body][body]. */
static void *conc_writer(void *arg)
{
    ConcWriter *w = arg;
    uint32_t x = 0x9E3779B9u * (w->id + 1);
    uint8_t *buf = xmalloc(8 + 200000);
    for (int i = 0; i < CONC_PUTS; i++) {
        x = x * 1664525u + 1013904223u;
        uint32_t body = 1000 + x % 199000;
        for (uint32_t j = 0; j < body; j++) {
            x = x * 1664525u + 1013904223u;
            buf[8 + j] = (uint8_t)(x >> 24);
        }
        uint32_t crc = crc32c(buf + 8, body);
        memcpy(buf, &body, 4);
        memcpy(buf + 4, &crc, 4);
        Err err = {0};
        if (!remote_put(w->sh->rs, CONC_KEY, buf, 8 + body, &err))
            atomic_fetch_add(&w->sh->errors, 1);
    }
    free(buf);
    atomic_fetch_sub(&w->sh->writers_left, 1);
    return NULL;
}

static void *conc_reader(void *arg)
{
    ConcShared *sh = arg;
    while (atomic_load(&sh->writers_left) > 0) {
        Err err = {0};
        char *data = NULL;
        size_t len = 0;
        if (!remote_get(sh->rs, CONC_KEY, &data, &len, &err)) {
            if (err.code != ERR_NOT_FOUND) /* before the first put */
                atomic_fetch_add(&sh->errors, 1);
            continue;
        }
        uint32_t body, crc;
        if (len < 8) {
            atomic_fetch_add(&sh->bad, 1);
        } else {
            memcpy(&body, data, 4);
            memcpy(&crc, data + 4, 4);
            if (len != 8 + (size_t)body || crc32c(data + 8, body) != crc)
                atomic_fetch_add(&sh->bad, 1);
        }
        free(data);
        /* the listing never shows a temporary file nor a duplicate */
        RemoteListing l;
        if (remote_list(sh->rs, "tenants/", &l, &err)) {
            if (l.n != 1 || strcmp(l.items[0].key, CONC_KEY) != 0)
                atomic_fetch_add(&sh->bad, 1);
            remote_listing_free(&l);
        } else {
            atomic_fetch_add(&sh->errors, 1);
        }
        atomic_fetch_add(&sh->reads, 1);
    }
    return NULL;
}

static void test_concurrent_puts_atomic(void **state)
{
    Fixture *f = *state;
    ConcShared sh = {.rs = f->rs};
    atomic_store(&sh.writers_left, CONC_WRITERS);
    pthread_t writers[CONC_WRITERS], readers[2];
    ConcWriter w[CONC_WRITERS];
    for (unsigned i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&readers[i], NULL, conc_reader, &sh), 0);
    for (unsigned i = 0; i < CONC_WRITERS; i++) {
        w[i] = (ConcWriter){.sh = &sh, .id = i};
        assert_int_equal(pthread_create(&writers[i], NULL, conc_writer, &w[i]), 0);
    }
    for (unsigned i = 0; i < CONC_WRITERS; i++)
        pthread_join(writers[i], NULL);
    for (unsigned i = 0; i < 2; i++)
        pthread_join(readers[i], NULL);
    assert_int_equal(atomic_load(&sh.errors), 0);
    assert_int_equal(atomic_load(&sh.bad), 0);
    assert_true(atomic_load(&sh.reads) > 0);
    /* the final object is one writer's whole last put */
    char *data;
    size_t len;
    Err err = {0};
    assert_true(remote_get(f->rs, CONC_KEY, &data, &len, &err));
    uint32_t body, crc;
    memcpy(&body, data, 4);
    memcpy(&crc, data + 4, 4);
    assert_int_equal(len, 8 + body);
    assert_int_equal(crc32c(data + 8, body), crc);
    free(data);
}

/* A delete cleaning up empty directories races with puts into the same directories: the puts
 * must retry and succeed, never fail with ENOENT. */
typedef struct ChurnArg {
    RemoteStorage *rs;
    const char *key;
    _Atomic long *failures;
} ChurnArg;

static void *churn(void *arg)
{
    ChurnArg *a = arg;
    for (int i = 0; i < 150; i++) {
        Err err = {0};
        if (!remote_put(a->rs, a->key, "data", 4, &err) || !remote_delete(a->rs, a->key, &err)) {
            fprintf(stderr, "churn %s: %s\n", a->key, err.msg);
            atomic_fetch_add(a->failures, 1);
        }
    }
    return NULL;
}

static void test_put_delete_churn(void **state)
{
    Fixture *f = *state;
    _Atomic long failures = 0;
    ChurnArg args[3] = {
        {f->rs, "p/q/r/k1", &failures},
        {f->rs, "p/q/r/k2", &failures},
        {f->rs, "p/q/k3", &failures},
    };
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, churn, &args[i]), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&failures), 0);
    assert_listing(f->rs, "", NULL, 0);
    char path[512];
    assert_true(str_printf(path, sizeof(path), "%s/p", f->root));
    assert_false(fs_exists(path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_urls),
        cmocka_unit_test(test_key_validation),
        cmocka_unit_test_setup_teardown(test_ops_reject_bad_keys, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_put_get_head_range, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_absent_keys, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_list, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_list_skips_temp_files, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_delete_and_prefix, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_put_file_get_to_file, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_puts_atomic, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_put_delete_churn, fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
