/* test_tar.c: unit tests for shared/tar.c: writer layout, reader, zstd wrappers, directory round
 * trips, determinism, interoperability with GNU tar, and hostile archives. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>
#include "tests/unit/dep_util.h"

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/str.h"
#include "shared/tar.h"

#define BLOCK 512

/* assert_ok: a call that must succeed; on failure the Err message is shown. */
#define assert_ok(call, err)                                                                       \
    do {                                                                                           \
        if (!(call))                                                                               \
            fail_msg("%s failed: %s", #call, (err).msg);                                           \
    } while (0)

static char g_dir[64];

static int setup(void **state)
{
    str_copy(g_dir, sizeof(g_dir), "/tmp/test_tar.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    Err err = {0};
    return fs_remove_tree(g_dir, &err) ? 0 : -1;
}

/* in_dir: g_dir/rel in one of a few rotating static buffers. */
static const char *in_dir(const char *rel)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 1024, "%s/%s", g_dir, rel);
    return b;
}

/* ---- helpers: memory sink and source, files, trees ---- */

static bool mem_write(void *ctx, const void *data, size_t len, Err *err)
{
    strbuf_append(ctx, data, len);
    return true;
}

typedef struct MemSrc {
    const unsigned char *data;
    size_t len;
    size_t pos;
    size_t chunk; /* at most this many bytes per read, to exercise buffering */
} MemSrc;

static bool mem_read(void *ctx, void *buf, size_t cap, size_t *got, Err *err)
{
    MemSrc *s = ctx;
    size_t n = s->len - s->pos;
    if (n > cap)
        n = cap;
    if (s->chunk != 0 && n > s->chunk)
        n = s->chunk;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    *got = n;
    return true;
}

/* FailSink: accepts `budget` bytes, then fails. */
typedef struct FailSink {
    size_t budget;
    size_t calls_after_fail;
} FailSink;

static bool fail_write(void *ctx, const void *data, size_t len, Err *err)
{
    FailSink *f = ctx;
    if (len > f->budget) {
        f->calls_after_fail++;
        err_set(err, ERR_UNAVAILABLE, "sink is full");
        return false;
    }
    f->budget -= len;
    return true;
}

static uint64_t g_rng = 88172645463325252ULL;

static void fill_random(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        g_rng ^= g_rng << 13;
        g_rng ^= g_rng >> 7;
        g_rng ^= g_rng << 17;
        p[i] = (unsigned char)g_rng;
    }
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(fd >= 0);
    int wfd = fd;
    Err err = {0};
    assert_ok(tar_fd_write(&wfd, data, len, &err), err);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
}

static void make_dir(const char *path, mode_t mode)
{
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static char *read_all(const char *path, size_t *len)
{
    Err err = {0};
    char *data = NULL;
    assert_true(fs_read_file(path, 64 << 20, &data, len, &err));
    return data;
}

/* count_entries: entries of dir without "." and "..". */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

static int skip_dots(const struct dirent *de)
{
    return strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* assert_same_tree: same names, types, permission bits and file bytes under a and b. */
static void assert_same_tree(const char *a, const char *b)
{
    struct dirent **la = NULL, **lb = NULL;
    int na = scandir(a, &la, skip_dots, by_name);
    int nb = scandir(b, &lb, skip_dots, by_name);
    assert_true(na >= 0);
    assert_int_equal(na, nb);
    for (int i = 0; i < na; i++) {
        assert_string_equal(la[i]->d_name, lb[i]->d_name);
        char pa[4096], pb[4096];
        snprintf(pa, sizeof(pa), "%s/%s", a, la[i]->d_name);
        snprintf(pb, sizeof(pb), "%s/%s", b, lb[i]->d_name);
        struct stat sa, sb;
        assert_int_equal(lstat(pa, &sa), 0);
        assert_int_equal(lstat(pb, &sb), 0);
        assert_int_equal(sa.st_mode, sb.st_mode);
        if (S_ISDIR(sa.st_mode)) {
            assert_same_tree(pa, pb);
        } else {
            assert_true(S_ISREG(sa.st_mode));
            size_t len_a = 0, len_b = 0;
            char *da = read_all(pa, &len_a);
            char *db = read_all(pb, &len_b);
            assert_int_equal(len_a, len_b);
            assert_memory_equal(da, db, len_a);
            free(da);
            free(db);
        }
        free(la[i]);
        free(lb[i]);
    }
    free(la);
    free(lb);
}

static char *repeat(char c, size_t n)
{
    char *s = xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* build_tree: nested dirs, an empty dir, an empty file, a 3 MiB random file, names of 100 to 250
 * bytes (relative to root) and a few permission bits. */
static void build_tree(const char *root)
{
    char p[2048];
    make_dir(root, 0755);
    snprintf(p, sizeof(p), "%s/a", root);
    make_dir(p, 0750);
    snprintf(p, sizeof(p), "%s/a/b", root);
    make_dir(p, 0700);
    snprintf(p, sizeof(p), "%s/a/b/c", root);
    make_dir(p, 0755);
    snprintf(p, sizeof(p), "%s/empty_dir", root);
    make_dir(p, 0700);
    snprintf(p, sizeof(p), "%s/a/empty_file", root);
    write_file(p, "", 0, 0600);
    snprintf(p, sizeof(p), "%s/a/b/c/hello.txt", root);
    write_file(p, "hello, world\n", 13, 0644);
    snprintf(p, sizeof(p), "%s/PG_VERSION", root);
    write_file(p, "16\n", 3, 0600);

    size_t big = 3 * 1024 * 1024;
    unsigned char *data = xmalloc(big);
    fill_random(data, big);
    snprintf(p, sizeof(p), "%s/a/b/big.bin", root);
    write_file(p, data, big, 0640);
    free(data);

    char *n100 = repeat('l', 100); /* exactly fills the name field */
    snprintf(p, sizeof(p), "%s/%s", root, n100);
    write_file(p, "100", 3, 0600);
    char *d90 = repeat('d', 90);
    char *e30 = repeat('e', 30);
    char *f100 = repeat('f', 100);
    snprintf(p, sizeof(p), "%s/%s", root, d90);
    make_dir(p, 0700);
    snprintf(p, sizeof(p), "%s/%s/%s", root, d90, e30);
    make_dir(p, 0700);
    snprintf(p, sizeof(p), "%s/%s/%s/%s", root, d90, e30, f100); /* 222 bytes */
    write_file(p, "222", 3, 0600);
    char *m99 = repeat('m', 99);
    char *n50 = repeat('n', 50);
    char *y99 = repeat('y', 99);
    snprintf(p, sizeof(p), "%s/%s", root, m99);
    make_dir(p, 0700);
    snprintf(p, sizeof(p), "%s/%s/%s", root, m99, n50);
    make_dir(p, 0700);
    snprintf(p, sizeof(p), "%s/%s/%s/%s", root, m99, n50, y99); /* 250 bytes */
    write_file(p, "250", 3, 0600);
    free(n100);
    free(d90);
    free(e30);
    free(f100);
    free(m99);
    free(n50);
    free(y99);
}

/* ---- raw headers, for archives our writer would refuse to produce ---- */

static void raw_checksum(unsigned char *h)
{
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < BLOCK; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

/* raw_entry: append a header (and size bytes of data 'z', padded) to b. */
static void raw_entry(StrBuf *b, const char *name, char type, uint64_t size, const char *link)
{
    unsigned char h[BLOCK];
    memset(h, 0, sizeof(h));
    memcpy(h, name, strnlen(name, 100));
    memcpy(h + 100, "0000644", 7);
    memcpy(h + 108, "0000000", 7);
    memcpy(h + 116, "0000000", 7);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    memcpy(h + 136, "00000000000", 11);
    h[156] = (unsigned char)type;
    if (link != NULL)
        memcpy(h + 157, link, strnlen(link, 100));
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    raw_checksum(h);
    strbuf_append(b, h, sizeof(h));
    if (size > 0) {
        size_t padded = (size_t)((size + BLOCK - 1) / BLOCK * BLOCK);
        char *data = xcalloc(1, padded);
        memset(data, 'z', (size_t)size);
        strbuf_append(b, data, padded);
        free(data);
    }
}

static void raw_end(StrBuf *b)
{
    static const unsigned char zeros[2 * BLOCK];
    strbuf_append(b, zeros, sizeof(zeros));
}

/* compress_to_file: zstd-compress data into path through the encoder. */
static void compress_to_file(const void *data, size_t len, const char *path)
{
    StrBuf z = STRBUF_INIT;
    TarZstdEncoder *enc = NULL;
    Err err = {0};
    assert_ok(tar_zstd_encoder_new(TAR_DEFAULT_ZSTD_LEVEL, mem_write, &z, &enc, &err), err);
    assert_ok(tar_zstd_encoder_write(enc, data, len, &err), err);
    assert_ok(tar_zstd_encoder_finish(enc, &err), err);
    tar_zstd_encoder_free(enc);
    write_file(path, z.data, z.len, 0644);
    strbuf_finish(&z);
}

/* ---- writer ---- */

static void test_header_layout(void **state)
{
    StrBuf out = STRBUF_INIT;
    TarWriter w;
    Err err = {0};
    tar_writer_init(&w, mem_write, &out);
    assert_ok(tar_writer_add_file(&w, "hello.txt", 0100644, 1234, "hi", 2, &err), err);
    assert_ok(tar_writer_add_dir(&w, "sub//", 0700, 0, &err), err);
    assert_ok(tar_writer_finish(&w, &err), err);
    assert_int_equal(out.len, 5 * BLOCK); /* header, data, header, two end blocks */
    assert_int_equal(w.bytes_out, out.len);

    const unsigned char *h = (const unsigned char *)out.data;
    assert_string_equal((const char *)h, "hello.txt");
    assert_memory_equal(h + 100, "0000644", 8); /* file type bits dropped */
    assert_memory_equal(h + 108, "0000000", 8); /* uid 0 */
    assert_memory_equal(h + 116, "0000000", 8); /* gid 0 */
    assert_memory_equal(h + 124, "00000000002", 12);
    assert_memory_equal(h + 136, "00000002322", 12); /* 1234 */
    assert_int_equal(h[156], '0');
    assert_memory_equal(h + 257, "ustar", 6);
    assert_memory_equal(h + 263, "00", 2);
    assert_int_equal(h[265], 0); /* uname empty */
    assert_int_equal(h[297], 0); /* gname empty */
    unsigned char copy[BLOCK];
    memcpy(copy, h, BLOCK);
    raw_checksum(copy);
    assert_memory_equal(copy + 148, h + 148, 8);
    assert_memory_equal(out.data + BLOCK, "hi", 2);
    for (int i = 2; i < BLOCK; i++)
        assert_int_equal(out.data[BLOCK + i], 0);

    const unsigned char *d = h + 2 * BLOCK;
    assert_string_equal((const char *)d, "sub/");
    assert_int_equal(d[156], '5');
    assert_memory_equal(d + 124, "00000000000", 12);
    for (int i = 3 * BLOCK; i < 5 * BLOCK; i++)
        assert_int_equal(out.data[i], 0);
    strbuf_finish(&out);
}

typedef struct NameCase {
    const char *what;
    char *name; /* heap */
    bool dir;
    bool ok;
    size_t prefix_len; /* expected bytes in the prefix field */
} NameCase;

static char *join(const char *a, const char *sep, const char *b)
{
    return str_dup_printf("%s%s%s", a, sep, b);
}

/* read_single: parse an in-memory archive holding one entry. */
static void read_single(const StrBuf *ar, TarEntry *e)
{
    MemSrc src = {(const unsigned char *)ar->data, ar->len, 0, 0};
    TarReader *r = tar_reader_new(mem_read, &src, NULL);
    Err err = {0};
    bool end = true;
    assert_ok(tar_reader_next(r, e, &end, &err), err);
    assert_false(end);
    TarEntry e2;
    assert_ok(tar_reader_next(r, &e2, &end, &err), err);
    assert_true(end);
    tar_reader_free(r);
}

static void test_name_split(void **state)
{
    char *a100 = repeat('a', 100), *a101 = repeat('a', 101), *a256 = repeat('a', 256);
    char *p54 = repeat('p', 54), *p155 = repeat('p', 155), *p156 = repeat('p', 156);
    char *n100 = repeat('n', 100), *n99 = repeat('n', 99), *n98 = repeat('n', 98);
    char *b101 = repeat('b', 101), *b50 = repeat('b', 50);
    NameCase cases[] = {
        {"short", xstrdup("a/b/c"), false, true, 0},
        {"100 fills name", xstrdup(a100), false, true, 0},
        {"101 no slash", xstrdup(a101), false, false, 0},
        {"split 54+100", join(p54, "/", n100), false, true, 54},
        {"split 155+99 = 255", join(p155, "/", n99), false, true, 155},
        {"dir 155+99 = 255 plus /", join(p155, "/", n99), true, true, 155},
        {"dir of 100: stored without /", xstrdup(a100), true, true, 0},
        {"dir 54+100: stored without /", join(p54, "/", n100), true, true, 54},
        {"prefix 156", join(p156, "/", n98), false, false, 0},
        {"suffix 101", join(b50, "/", b101), false, false, 0},
        {"256 bytes", xstrdup(a256), false, false, 0},
        {"empty", xstrdup(""), false, false, 0},
        {"absolute", xstrdup("/etc/passwd"), false, false, 0},
        {"dotdot", xstrdup("a/../b"), false, false, 0},
        {"dot", xstrdup("./a"), false, false, 0},
        {"empty component", xstrdup("a//b"), false, false, 0},
        {"file with trailing slash", xstrdup("a/"), false, false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        NameCase *c = &cases[i];
        StrBuf out = STRBUF_INIT;
        TarWriter w;
        Err err = {0};
        tar_writer_init(&w, mem_write, &out);
        bool ok = c->dir ? tar_writer_add_dir(&w, c->name, 0755, 0, &err)
                         : tar_writer_add_file(&w, c->name, 0644, 0, "x", 1, &err);
        if (ok != c->ok)
            fail_msg("case \"%s\": expected %s, got %s (%s)", c->what, c->ok ? "ok" : "error",
                     ok ? "ok" : "error", err.msg);
        if (!ok) {
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            assert_int_equal(out.len, 0); /* nothing written */
            /* the writer is still usable */
            assert_ok(tar_writer_add_file(&w, "fine", 0644, 0, "", 0, &err), err);
        } else {
            assert_ok(tar_writer_finish(&w, &err), err);
            assert_int_equal(strnlen(out.data + 345, 155), c->prefix_len);
            TarEntry e;
            read_single(&out, &e);
            assert_string_equal(e.name, c->name);
            assert_int_equal(e.type, c->dir ? TAR_ENTRY_DIR : TAR_ENTRY_FILE);
        }
        strbuf_finish(&out);
        free(c->name);
    }
    char *owned[] = {a100, a101, a256, p54, p155, p156, n100, n99, n98, b101, b50};
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        free(owned[i]);
}

static void test_stream_api(void **state)
{
    StrBuf out = STRBUF_INIT;
    TarWriter w;
    Err err = {0};
    tar_writer_init(&w, mem_write, &out);

    assert_false(tar_writer_write_data(&w, "x", 1, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_false(tar_writer_end_file(&w, &err));

    unsigned char data[1000];
    fill_random(data, sizeof(data));
    assert_ok(tar_writer_add_file_stream(&w, "base/1/1259", 0600, 0, 1000, &err), err);
    assert_ok(tar_writer_write_data(&w, data, 300, &err), err);
    err_clear(&err);
    assert_false(tar_writer_add_dir(&w, "other", 0700, 0, &err)); /* entry unfinished */
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "base/1/1259"));
    assert_false(tar_writer_finish(&w, &err));
    assert_false(tar_writer_end_file(&w, &err)); /* 700 bytes missing */
    assert_non_null(strstr(err.msg, "700 bytes"));
    assert_false(tar_writer_write_data(&w, data, 701, &err)); /* more than announced */
    assert_non_null(strstr(err.msg, "700 more"));
    assert_ok(tar_writer_write_data(&w, data + 300, 700, &err), err);
    assert_ok(tar_writer_end_file(&w, &err), err);
    assert_ok(tar_writer_add_file_stream(&w, "zero", 0600, 0, 0, &err), err);
    assert_ok(tar_writer_end_file(&w, &err), err);

    err_clear(&err);
    assert_false(tar_writer_add_file(&w, "t", 0600, -1, "", 0, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_false(tar_writer_add_file_stream(&w, "huge", 0600, 0, TAR_SIZE_MAX + 1, &err));
    assert_int_equal(err.code, ERR_PAYLOAD_TOO_LARGE);
    assert_ok(tar_writer_finish(&w, &err), err);
    assert_false(tar_writer_add_dir(&w, "late", 0700, 0, &err));
    assert_non_null(strstr(err.msg, "finished"));
    /* header + 2 data blocks, header, end marker */
    assert_int_equal(out.len, (size_t)(BLOCK * 3 + BLOCK + 2 * BLOCK));

    MemSrc src = {(const unsigned char *)out.data, out.len, 0, 0};
    TarReader *r = tar_reader_new(mem_read, &src, NULL);
    TarEntry e;
    bool end = true;
    assert_ok(tar_reader_next(r, &e, &end, &err), err);
    assert_string_equal(e.name, "base/1/1259");
    assert_int_equal(e.size, 1000);
    unsigned char back[1000];
    size_t got = 0;
    assert_ok(tar_reader_read_data(r, back, sizeof(back), &got, &err), err);
    assert_int_equal(got, 1000);
    assert_memory_equal(back, data, 1000);
    assert_ok(tar_reader_next(r, &e, &end, &err), err);
    assert_string_equal(e.name, "zero");
    assert_int_equal(e.size, 0);
    assert_ok(tar_reader_next(r, &e, &end, &err), err);
    assert_true(end);
    tar_reader_free(r);
    strbuf_finish(&out);
}

static void test_sink_failure_poisons(void **state)
{
    FailSink f = {BLOCK + 10, 0};
    TarWriter w;
    Err err = {0};
    tar_writer_init(&w, fail_write, &f);
    assert_ok(tar_writer_add_file_stream(&w, "f", 0600, 0, 4096, &err), err);
    assert_ok(tar_writer_write_data(&w, "0123456789", 10, &err), err);
    assert_false(tar_writer_write_data(&w, "more", 4, &err));
    assert_int_equal(err.code, ERR_UNAVAILABLE); /* the sink's error as it was */
    assert_string_equal(err.msg, "sink is full");
    f.budget = 1 << 20;
    err_clear(&err);
    assert_false(tar_writer_write_data(&w, "more", 4, &err));
    assert_non_null(strstr(err.msg, "failed earlier"));
    assert_false(tar_writer_finish(&w, &err));
    assert_int_equal(f.calls_after_fail, 1);
}

/* ---- reader ---- */

typedef struct Seen {
    int n;
    char names[8][64];
    TarEntryType types[8];
    StrBuf data[8];
} Seen;

/* collect: records each entry; reads entry 1 in 13-byte pieces and leaves entry 2 unread. */
static bool collect(void *ctx, TarReader *r, const TarEntry *e, Err *err)
{
    Seen *s = ctx;
    int i = s->n++;
    str_copy(s->names[i], sizeof(s->names[i]), e->name);
    s->types[i] = e->type;
    strbuf_init(&s->data[i]);
    if (i == 2)
        return true;
    unsigned char piece[13];
    for (;;) {
        size_t got = 0;
        if (!tar_reader_read_data(r, piece, sizeof(piece), &got, err))
            return false;
        if (got == 0)
            break;
        strbuf_append(&s->data[i], piece, got);
    }
    return true;
}

static void test_reader_pieces(void **state)
{
    StrBuf out = STRBUF_INIT;
    TarWriter w;
    Err err = {0};
    unsigned char big[5000];
    fill_random(big, sizeof(big));
    tar_writer_init(&w, mem_write, &out);
    assert_ok(tar_writer_add_dir(&w, "global", 0700, 0, &err), err);
    assert_ok(tar_writer_add_file(&w, "global/pg_control", 0600, 0, big, sizeof(big), &err), err);
    assert_ok(tar_writer_add_file(&w, "skipped", 0600, 0, big, 777, &err), err);
    assert_ok(tar_writer_add_file(&w, "last", 0640, 99, "tail", 4, &err), err);
    assert_ok(tar_writer_finish(&w, &err), err);

    MemSrc src = {(const unsigned char *)out.data, out.len, 0, 7}; /* 7-byte source reads */
    TarReader *r = tar_reader_new(mem_read, &src, NULL);
    Seen seen = {0};
    assert_ok(tar_reader_foreach(r, collect, &seen, &err), err);
    assert_int_equal(seen.n, 4);
    assert_string_equal(seen.names[0], "global");
    assert_int_equal(seen.types[0], TAR_ENTRY_DIR);
    assert_int_equal(seen.data[0].len, 0);
    assert_string_equal(seen.names[1], "global/pg_control");
    assert_int_equal(seen.data[1].len, sizeof(big));
    assert_memory_equal(seen.data[1].data, big, sizeof(big));
    assert_string_equal(seen.names[2], "skipped");
    assert_string_equal(seen.names[3], "last");
    assert_int_equal(seen.data[3].len, 4);
    assert_memory_equal(seen.data[3].data, "tail", 4);
    assert_int_equal(src.pos, src.len); /* read to the end */
    /* after the end, next keeps saying so */
    TarEntry e;
    bool end = false;
    assert_ok(tar_reader_next(r, &e, &end, &err), err);
    assert_true(end);
    for (int i = 0; i < seen.n; i++)
        strbuf_finish(&seen.data[i]);
    tar_reader_free(r);
    strbuf_finish(&out);
}

static bool fail_on_second(void *ctx, TarReader *r, const TarEntry *e, Err *err)
{
    int *n = ctx;
    if (++*n == 2) {
        err_set(err, ERR_CONFLICT, "stop at %s", e->name);
        return false;
    }
    return true;
}

static void test_reader_callback_error(void **state)
{
    StrBuf out = STRBUF_INIT;
    TarWriter w;
    Err err = {0};
    tar_writer_init(&w, mem_write, &out);
    assert_ok(tar_writer_add_dir(&w, "a", 0700, 0, &err), err);
    assert_ok(tar_writer_add_dir(&w, "b", 0700, 0, &err), err);
    assert_ok(tar_writer_add_dir(&w, "c", 0700, 0, &err), err);
    assert_ok(tar_writer_finish(&w, &err), err);
    MemSrc src = {(const unsigned char *)out.data, out.len, 0, 0};
    TarReader *r = tar_reader_new(mem_read, &src, NULL);
    int n = 0;
    assert_false(tar_reader_foreach(r, fail_on_second, &n, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_string_equal(err.msg, "stop at b");
    assert_int_equal(n, 2);
    tar_reader_free(r);
    strbuf_finish(&out);
}

/* test_reader_variants: what other writers produce: GNU magic, base-256 size, "./" names and
 * the root "." entry, NUL typeflag, a lone zero block, padding after the end marker. */
static void test_reader_variants(void **state)
{
    StrBuf b = STRBUF_INIT;
    raw_entry(&b, "./", '5', 0, NULL);
    raw_entry(&b, "./dir/./x", '\0', 3, NULL);
    size_t h2 = b.len;
    raw_entry(&b, "gnu", '0', 600, NULL);
    unsigned char *h = (unsigned char *)b.data + h2;
    memcpy(h + 257, "ustar  ", 8); /* GNU magic: prefix field is not a prefix */
    memcpy(h + 345, "junk", 4);
    memset(h + 124, 0, 12);
    h[124] = 0x80; /* base-256 600 */
    h[134] = 0x02;
    h[135] = 0x58;
    raw_checksum(h);
    static const unsigned char zeros[BLOCK * 3];
    strbuf_append(&b, zeros, BLOCK);     /* one zero block only */
    strbuf_append(&b, zeros, BLOCK * 3); /* trailing record padding */

    MemSrc src = {(const unsigned char *)b.data, b.len, 0, 0};
    TarReader *r = tar_reader_new(mem_read, &src, NULL);
    Err err = {0};
    TarEntry e;
    bool end = true;
    assert_ok(tar_reader_next(r, &e, &end, &err), err);
    assert_false(end);
    assert_string_equal(e.name, "dir/x"); /* the "." root entry was skipped */
    assert_int_equal(e.type, TAR_ENTRY_FILE);
    assert_int_equal(e.size, 3);
    assert_ok(tar_reader_next(r, &e, &end, &err), err);
    assert_string_equal(e.name, "gnu");
    assert_int_equal(e.size, 600);
    assert_int_equal(e.mode, 0644);
    assert_ok(tar_reader_next(r, &e, &end, &err), err);
    assert_true(end);
    assert_int_equal(src.pos, src.len);
    tar_reader_free(r);
    strbuf_finish(&b);
}

static void test_limits(void **state)
{
    StrBuf out = STRBUF_INIT;
    TarWriter w;
    Err err = {0};
    char big[200];
    memset(big, 'q', sizeof(big));
    tar_writer_init(&w, mem_write, &out);
    for (int i = 0; i < 4; i++) {
        char name[8];
        snprintf(name, sizeof(name), "d%d", i);
        assert_ok(tar_writer_add_dir(&w, name, 0700, 0, &err), err);
    }
    assert_ok(tar_writer_add_file(&w, "f", 0600, 0, big, sizeof(big), &err), err);
    assert_ok(tar_writer_finish(&w, &err), err);

    struct {
        TarLimits limits;
        bool ok;
        const char *msg;
    } cases[] = {
        {{0, 0}, true, NULL},
        {{200, 5}, true, NULL},
        {{0, 4}, false, "more than 4 entries"},
        {{199, 0}, false, "limit of 199 bytes"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        MemSrc src = {(const unsigned char *)out.data, out.len, 0, 0};
        TarReader *r = tar_reader_new(mem_read, &src, &cases[i].limits);
        TarEntry e;
        bool end = false;
        bool ok = true;
        int n = 0;
        err_clear(&err);
        while (ok && !end) {
            ok = tar_reader_next(r, &e, &end, &err);
            n += ok && !end;
        }
        assert_int_equal(ok, cases[i].ok);
        if (ok) {
            assert_int_equal(n, 5);
        } else {
            assert_int_equal(err.code, ERR_PAYLOAD_TOO_LARGE);
            assert_non_null(strstr(err.msg, cases[i].msg));
        }
        tar_reader_free(r);
    }
    strbuf_finish(&out);
}

/* ---- zstd ---- */

static void test_zstd_roundtrip(void **state)
{
    size_t n = 1 << 20;
    unsigned char *data = xmalloc(n);
    fill_random(data, n / 2);
    memset(data + n / 2, 'A', n / 2); /* a compressible half */
    StrBuf z = STRBUF_INIT;
    TarZstdEncoder *enc = NULL;
    Err err = {0};
    assert_false(tar_zstd_encoder_new(0, mem_write, &z, &enc, &err));
    assert_ok(tar_zstd_encoder_new(3, mem_write, &z, &enc, &err), err);
    size_t pos = 0, step = 1;
    while (pos < n) { /* pieces of growing, odd sizes */
        size_t k = step < n - pos ? step : n - pos;
        assert_ok(tar_zstd_encoder_write(enc, data + pos, k, &err), err);
        pos += k;
        step = step * 3 + 1;
    }
    assert_ok(tar_zstd_encoder_finish(enc, &err), err);
    tar_zstd_encoder_free(enc);
    assert_true(z.len < n);
    size_t frame_len = z.len;
    /* a second frame after the first: read as one stream */
    assert_ok(tar_zstd_encoder_new(1, mem_write, &z, &enc, &err), err);
    assert_ok(tar_zstd_encoder_write(enc, "tail", 4, &err), err);
    assert_ok(tar_zstd_encoder_finish(enc, &err), err);
    tar_zstd_encoder_free(enc);

    MemSrc src = {(const unsigned char *)z.data, z.len, 0, 1000};
    TarZstdDecoder *dec = tar_zstd_decoder_new(mem_read, &src);
    StrBuf back = STRBUF_INIT;
    unsigned char buf[4097];
    for (;;) {
        size_t got = 0;
        assert_ok(tar_zstd_decoder_read(dec, buf, sizeof(buf), &got, &err), err);
        if (got == 0)
            break;
        strbuf_append(&back, buf, got);
    }
    tar_zstd_decoder_free(dec);
    assert_int_equal(back.len, n + 4);
    assert_memory_equal(back.data, data, n);
    assert_memory_equal(back.data + n, "tail", 4);

    /* broken inputs */
    unsigned char *bad = xmalloc(frame_len);
    struct {
        const char *what;
        size_t len;
        size_t flip; /* SIZE_MAX = none */
        bool garbage;
        const char *msg;
    } cases[] = {
        {"empty", 0, SIZE_MAX, false, "empty input"},
        {"truncated", frame_len - 7, SIZE_MAX, false, "truncated zstd"},
        {"cut in half", frame_len / 2, SIZE_MAX, false, "truncated zstd"},
        {"flipped byte", frame_len, frame_len / 3, false, "zstd"},
        {"not zstd", 600, SIZE_MAX, true, "corrupt zstd data"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(bad, z.data, frame_len);
        if (cases[i].garbage)
            memset(bad, 'G', cases[i].len);
        if (cases[i].flip != SIZE_MAX)
            bad[cases[i].flip] ^= 0x5a;
        MemSrc bs = {bad, cases[i].len, 0, 0};
        dec = tar_zstd_decoder_new(mem_read, &bs);
        bool ok = true;
        size_t total = 0;
        err_clear(&err);
        for (;;) {
            size_t got = 0;
            ok = tar_zstd_decoder_read(dec, buf, sizeof(buf), &got, &err);
            if (!ok || got == 0)
                break;
            total += got;
        }
        if (ok)
            fail_msg("case %s: decoded %zu bytes without an error", cases[i].what, total);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        if (strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %s: message \"%s\" lacks \"%s\"", cases[i].what, err.msg, cases[i].msg);
        /* and it stays failed */
        size_t got = 0;
        assert_false(tar_zstd_decoder_read(dec, buf, sizeof(buf), &got, &err));
        tar_zstd_decoder_free(dec);
    }
    free(bad);
    free(data);
    strbuf_finish(&z);
    strbuf_finish(&back);
}

/* ---- directories ---- */

/* test_gzip: the gzip encoder's output is a gzip member zlib reads back (gunzip's format: magic,
 * CRC-32 and size trailer checked by inflate), and the same input gives the same bytes. */
static void test_gzip(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    unsigned char *data = xmalloc(n);
    fill_random(data, n / 2);
    memset(data + n / 2, 'A', n / 2);
    StrBuf z[2] = {STRBUF_INIT, STRBUF_INIT};
    Err err = {0};
    TarGzipEncoder *enc = NULL;
    assert_false(tar_gzip_encoder_new(0, mem_write, &z[0], &enc, &err));
    for (int r = 0; r < 2; r++) {
        assert_ok(tar_gzip_encoder_new(6, mem_write, &z[r], &enc, &err), err);
        size_t pos = 0, step = 1;
        while (pos < n) {
            size_t k = step < n - pos ? step : n - pos;
            assert_ok(tar_gzip_encoder_write(enc, data + pos, k, &err), err);
            pos += k;
            step = step * 3 + 1;
        }
        assert_ok(tar_gzip_encoder_finish(enc, &err), err);
        tar_gzip_encoder_free(enc);
    }
    assert_int_equal(z[0].len, z[1].len);
    assert_memory_equal(z[0].data, z[1].data, z[0].len);
    assert_true(z[0].len < n);
    assert_int_equal((unsigned char)z[0].data[0], 0x1f); /* gzip magic */
    assert_int_equal((unsigned char)z[0].data[1], 0x8b);
    unsigned char *back = xmalloc(n + 1);
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = (unsigned char *)z[0].data;
    zs.avail_in = (uInt)z[0].len;
    zs.next_out = back;
    zs.avail_out = (uInt)(n + 1);
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.total_out, n);
    inflateEnd(&zs);
    assert_memory_equal(back, data, n);
    free(back);
    free(data);
    strbuf_finish(&z[0]);
    strbuf_finish(&z[1]);
}

static void test_roundtrip_tree(void **state)
{
    Err err = {0};
    char src[256];
    str_copy(src, sizeof(src), in_dir("src"));
    build_tree(src);
    char ar[256];
    str_copy(ar, sizeof(ar), in_dir("initdb.tar.zst"));
    assert_ok(tar_zst_create_from_dir(src, ar, &err), err);
    assert_int_equal(count_entries(g_dir), 2); /* no temporary left */

    /* absent destination: created */
    char out[256];
    str_copy(out, sizeof(out), in_dir("out/nested/dest"));
    assert_ok(tar_zst_extract_to_dir(ar, out, &err), err);
    assert_same_tree(src, out);

    /* existing empty destination */
    char out2[256];
    str_copy(out2, sizeof(out2), in_dir("out2"));
    make_dir(out2, 0700);
    assert_ok(tar_zst_extract_to_dir(ar, out2, &err), err);
    assert_same_tree(src, out2);

    /* non-empty destination: refused, contents untouched */
    err_clear(&err);
    assert_false(tar_zst_extract_to_dir(ar, out2, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_non_null(strstr(err.msg, "not empty"));
    assert_same_tree(src, out2);
    /* destination is a file */
    assert_false(tar_zst_extract_to_dir(ar, ar, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    /* missing archive */
    assert_false(tar_zst_extract_to_dir(in_dir("nope.tar.zst"), in_dir("out3"), &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_false(fs_exists(in_dir("out3")));

    /* a name of 256 bytes cannot be archived (its directories, 100 and 201 bytes, can) */
    char *l100 = repeat('L', 100);
    char *m100 = repeat('M', 100);
    char *f54 = repeat('F', 54);
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", src, l100);
    make_dir(p, 0700);
    snprintf(p, sizeof(p), "%s/%s/%s", src, l100, m100);
    make_dir(p, 0700);
    assert_ok(tar_zst_create_from_dir(src, in_dir("long.tar.zst"), &err), err);
    snprintf(p, sizeof(p), "%s/%s/%s/%s", src, l100, m100, f54);
    write_file(p, "x", 1, 0600);
    err_clear(&err);
    assert_false(tar_zst_create_from_dir(src, in_dir("long2.tar.zst"), &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_non_null(strstr(err.msg, "256 bytes"));
    assert_false(fs_exists(in_dir("long2.tar.zst")));
    free(l100);
    free(m100);
    free(f54);
}

/* set_mtimes: give every entry of a tree a different mtime. */
static void set_mtimes(const char *dir, long base)
{
    struct dirent **list = NULL;
    int n = scandir(dir, &list, skip_dots, by_name);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        char p[4096];
        assert_true(str_printf(p, sizeof(p), "%s/%s", dir, list[i]->d_name));
        struct stat st;
        assert_int_equal(lstat(p, &st), 0);
        if (S_ISDIR(st.st_mode))
            set_mtimes(p, base + 1000);
        struct timeval tv[2] = {{base + i, 0}, {base + i, 0}};
        assert_int_equal(utimes(p, tv), 0);
        free(list[i]);
    }
    free(list);
}

static void test_determinism(void **state)
{
    Err err = {0};
    build_tree(in_dir("t1"));
    assert_ok(tar_zst_create_from_dir(in_dir("t1"), in_dir("one.tar.zst"), &err), err);
    assert_ok(tar_zst_create_from_dir(in_dir("t1/"), in_dir("two.tar.zst"), &err), err);

    /* the same content created in another order, with other mtimes */
    make_dir(in_dir("t2"), 0755);
    assert_ok(tar_zst_extract_to_dir(in_dir("one.tar.zst"), in_dir("t2/x"), &err), err);
    make_dir(in_dir("t3"), 0755);
    /* move entries over in reverse name order so directory order on disk differs */
    struct dirent **list = NULL;
    int n = scandir(in_dir("t2/x"), &list, skip_dots, by_name);
    assert_true(n > 0);
    for (int i = n - 1; i >= 0; i--) {
        char from[4096], to[4096];
        snprintf(from, sizeof(from), "%s/%s", in_dir("t2/x"), list[i]->d_name);
        snprintf(to, sizeof(to), "%s/%s", in_dir("t3"), list[i]->d_name);
        assert_int_equal(rename(from, to), 0);
        free(list[i]);
    }
    free(list);
    set_mtimes(in_dir("t3"), 1000000);
    assert_ok(tar_zst_create_from_dir(in_dir("t3"), in_dir("three.tar.zst"), &err), err);

    size_t l1 = 0, l2 = 0, l3 = 0;
    char *d1 = read_all(in_dir("one.tar.zst"), &l1);
    char *d2 = read_all(in_dir("two.tar.zst"), &l2);
    char *d3 = read_all(in_dir("three.tar.zst"), &l3);
    assert_int_equal(l1, l2);
    assert_memory_equal(d1, d2, l1);
    assert_int_equal(l1, l3);
    assert_memory_equal(d1, d3, l1);
    free(d1);
    free(d2);
    free(d3);
}

static void test_create_refuses_special_files(void **state)
{
    Err err = {0};
    char src[256];
    str_copy(src, sizeof(src), in_dir("src"));
    make_dir(src, 0755);
    make_dir(in_dir("src/sub"), 0700);
    write_file(in_dir("src/sub/a"), "a", 1, 0600);
    assert_int_equal(symlink("/etc/passwd", in_dir("src/sub/link")), 0);
    assert_false(tar_zst_create_from_dir(src, in_dir("x.tar.zst"), &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_non_null(strstr(err.msg, "symbolic link"));
    assert_non_null(strstr(err.msg, "sub/link"));
    assert_int_equal(unlink(in_dir("src/sub/link")), 0);

    assert_int_equal(mkfifo(in_dir("src/fifo"), 0600), 0);
    err_clear(&err);
    assert_false(tar_zst_create_from_dir(src, in_dir("x.tar.zst"), &err));
    assert_non_null(strstr(err.msg, "fifo"));
    assert_int_equal(unlink(in_dir("src/fifo")), 0);

    assert_false(fs_exists(in_dir("x.tar.zst")));
    assert_int_equal(count_entries(g_dir), 1); /* only src: no temporaries */

    assert_false(tar_zst_create_from_dir(in_dir("missing"), in_dir("x.tar.zst"), &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_false(tar_zst_create_from_dir(src, in_dir("no/such/dir/x.tar.zst"), &err));
    assert_int_equal(err.code, ERR_INTERNAL);

    /* an empty tree is a valid archive with no entries */
    make_dir(in_dir("empty"), 0700);
    assert_ok(tar_zst_create_from_dir(in_dir("empty"), in_dir("e.tar.zst"), &err), err);
    assert_ok(tar_zst_extract_to_dir(in_dir("e.tar.zst"), in_dir("e_out"), &err), err);
    assert_int_equal(count_entries(in_dir("e_out")), 0);
}

/* ---- GNU tar ---- */

static bool have_gnu_tar(void)
{
    return system("tar --version 2>/dev/null | grep -q 'GNU tar' && zstd --version >/dev/null "
                  "2>&1") == 0;
}

static int run(const char *fmt, ...) PRINTF_LIKE(1, 2);
static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_gnu_tar_reads_ours(void **state)
{
    if (!have_gnu_tar()) {
        SKIP_MISSING_DEP("GNU tar or zstd not installed");
    }
    Err err = {0};
    char src[256];
    str_copy(src, sizeof(src), in_dir("src"));
    build_tree(src);
    char ar[256];
    str_copy(ar, sizeof(ar), in_dir("ours.tar.zst"));
    assert_ok(tar_zst_create_from_dir(src, ar, &err), err);

    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "zstd -dc '%s' | tar -tvf - 2>&1", ar);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    StrBuf listing = STRBUF_INIT;
    char line[1024];
    int lines = 0;
    while (fgets(line, sizeof(line), p) != NULL) {
        strbuf_append_str(&listing, line);
        lines++;
    }
    assert_int_equal(pclose(p), 0);
    assert_int_equal(lines, 15); /* 8 dirs, 7 files */
    assert_non_null(strstr(listing.data, " 0/0 "));
    assert_non_null(strstr(listing.data, "a/b/c/hello.txt"));
    assert_non_null(strstr(listing.data, "drwxr-x--- 0/0"));
    assert_non_null(strstr(listing.data, "3145728 1970-01-01"));
    assert_null(strstr(listing.data, "tar:")); /* no warnings */
    strbuf_finish(&listing);

    make_dir(in_dir("gnu_out"), 0755);
    assert_int_equal(run("zstd -dc '%s' | tar -xf - -C '%s'", ar, in_dir("gnu_out")), 0);
    assert_same_tree(src, in_dir("gnu_out"));
}

static void test_we_read_gnu_tar(void **state)
{
    if (!have_gnu_tar()) {
        SKIP_MISSING_DEP("GNU tar or zstd not installed");
    }
    Err err = {0};
    char src[256];
    str_copy(src, sizeof(src), in_dir("src"));
    build_tree(src);
    char plain[256];
    str_copy(plain, sizeof(plain), in_dir("gnu.tar"));
    assert_int_equal(run("tar --format=ustar -C '%s' -cf '%s' . 2>/dev/null", src, plain), 0);

    /* plain tar through an fd source */
    int fd = open(plain, O_RDONLY);
    assert_true(fd >= 0);
    TarReader *r = tar_reader_new(tar_fd_read, &fd, NULL);
    assert_ok(tar_reader_extract_to_dir(r, in_dir("out_plain"), &err), err);
    tar_reader_free(r);
    close(fd);
    assert_same_tree(src, in_dir("out_plain"));

    /* compressed by the zstd tool */
    assert_int_equal(run("zstd -q '%s' -o '%s.zst'", plain, plain), 0);
    char zpath[512];
    snprintf(zpath, sizeof(zpath), "%s.zst", plain);
    assert_ok(tar_zst_extract_to_dir(zpath, in_dir("out_zst"), &err), err);
    assert_same_tree(src, in_dir("out_zst"));
}

/* ---- hostile archives ---- */

typedef enum Hostile {
    H_BAD_CHECKSUM,
    H_DOTDOT,
    H_DEEP_DOTDOT,
    H_ABSOLUTE,
    H_SYMLINK,
    H_HARDLINK,
    H_DEVICE,
    H_PAX,
    H_BAD_MAGIC,
    H_TRUNCATED_DATA,
    H_TRUNCATED_HEADER,
    H_NO_END,
    H_GOOD_THEN_ESCAPE,
    H_FILE_AS_DIR,
    H_DUPLICATE,
    H_DIR_WITH_DATA,
    H_COUNT
} Hostile;

static const struct {
    const char *what;
    const char *msg;
} HOSTILE[H_COUNT] = {
    [H_BAD_CHECKSUM] = {"bad checksum", "bad checksum"},
    [H_DOTDOT] = {"../escape", "\"..\" component"},
    [H_DEEP_DOTDOT] = {"a/../../escape", "\"..\" component"},
    [H_ABSOLUTE] = {"absolute", "absolute name"},
    [H_SYMLINK] = {"symlink", "symbolic links are not supported"},
    [H_HARDLINK] = {"hard link", "hard links are not supported"},
    [H_DEVICE] = {"device", "devices are not supported"},
    [H_PAX] = {"pax header", "pax extended headers are not supported"},
    [H_BAD_MAGIC] = {"v7 header", "bad magic"},
    [H_TRUNCATED_DATA] = {"truncated data", "ends inside the data of \"big\""},
    [H_TRUNCATED_HEADER] = {"truncated header", "inside the header"},
    [H_NO_END] = {"no end marker", "without the end-of-archive marker"},
    [H_GOOD_THEN_ESCAPE] = {"good entries then escape", "\"..\" component"},
    [H_FILE_AS_DIR] = {"file used as a directory", "is not a directory"},
    [H_DUPLICATE] = {"duplicate file", "duplicate entry"},
    [H_DIR_WITH_DATA] = {"directory with data", "a directory with"},
};

static void build_hostile(Hostile h, StrBuf *b, const char *abs_target)
{
    switch (h) {
    case H_BAD_CHECKSUM:
        raw_entry(b, "fine", '0', 5, NULL);
        b->data[0] = 'F'; /* after the checksum was computed */
        break;
    case H_DOTDOT:
        raw_entry(b, "../escape", '0', 5, NULL);
        break;
    case H_DEEP_DOTDOT:
        raw_entry(b, "a/../../escape", '0', 5, NULL);
        break;
    case H_ABSOLUTE:
        raw_entry(b, abs_target, '0', 5, NULL);
        break;
    case H_SYMLINK:
        raw_entry(b, "link", '2', 0, "/etc");
        raw_entry(b, "link/passwd", '0', 5, NULL);
        break;
    case H_HARDLINK:
        raw_entry(b, "hard", '1', 0, "/etc/passwd");
        break;
    case H_DEVICE:
        raw_entry(b, "null", '3', 0, NULL);
        break;
    case H_PAX:
        raw_entry(b, "PaxHeaders/x", 'x', 30, NULL);
        break;
    case H_BAD_MAGIC:
        raw_entry(b, "old", '0', 1, NULL);
        memset(b->data + 257, 0, 8);
        raw_checksum((unsigned char *)b->data);
        break;
    case H_TRUNCATED_DATA:
        raw_entry(b, "big", '0', 100000, NULL);
        b->len = BLOCK + 100; /* header says 100000 bytes; 100 follow */
        return;               /* no end marker either */
    case H_TRUNCATED_HEADER:
        raw_entry(b, "ok", '0', 5, NULL);
        raw_entry(b, "cut", '0', 5, NULL);
        b->len = 2 * BLOCK + 300;
        return;
    case H_NO_END:
        raw_entry(b, "ok", '0', 5, NULL);
        return;
    case H_GOOD_THEN_ESCAPE:
        raw_entry(b, "d", '5', 0, NULL);
        raw_entry(b, "d/good", '0', 5, NULL);
        raw_entry(b, "d/../../escape", '0', 5, NULL);
        break;
    case H_FILE_AS_DIR:
        raw_entry(b, "f", '0', 5, NULL);
        raw_entry(b, "f/child", '0', 5, NULL);
        break;
    case H_DUPLICATE:
        raw_entry(b, "f", '0', 5, NULL);
        raw_entry(b, "f", '0', 5, NULL);
        break;
    case H_DIR_WITH_DATA:
        raw_entry(b, "d", '5', 5, NULL);
        break;
    case H_COUNT:
        break;
    }
    raw_end(b);
}

static void test_hostile_archives(void **state)
{
    char abs_target[256];
    snprintf(abs_target, sizeof(abs_target), "%s/abs_escape", g_dir);
    for (int h = 0; h < H_COUNT; h++) {
        /* box/ holds only dest; ../escape from dest would land in box/ */
        char box[256];
        str_copy(box, sizeof(box), in_dir("box"));
        make_dir(box, 0755);
        bool existing = h % 2 == 0; /* alternate: dest exists (empty) or is absent */
        char dest[512];
        snprintf(dest, sizeof(dest), "%s/dest", box);
        if (existing)
            make_dir(dest, 0755);
        StrBuf b = STRBUF_INIT;
        build_hostile((Hostile)h, &b, abs_target);
        char ar[256];
        str_copy(ar, sizeof(ar), in_dir("hostile.tar.zst"));
        compress_to_file(b.data, b.len, ar);
        strbuf_finish(&b);

        Err err = {0};
        bool ok = tar_zst_extract_to_dir(ar, dest, &err);
        if (ok)
            fail_msg("hostile case \"%s\" was extracted", HOSTILE[h].what);
        if (err.code != ERR_BAD_REQUEST || strstr(err.msg, HOSTILE[h].msg) == NULL)
            fail_msg("hostile case \"%s\": got %s \"%s\", want bad_request \"%s\"", HOSTILE[h].what,
                     err_code_name(err.code), err.msg, HOSTILE[h].msg);
        /* nothing outside dest, and nothing left inside it */
        if (existing) {
            assert_int_equal(count_entries(box), 1);
            assert_int_equal(count_entries(dest), 0);
        } else {
            assert_int_equal(count_entries(box), 0);
        }
        assert_false(fs_exists(abs_target));
        assert_false(fs_exists(in_dir("escape")));
        assert_int_equal(count_entries(g_dir), 2); /* box and the archive */
        Err e2 = {0};
        assert_true(fs_remove_tree(box, &e2));
    }
}

/* test_corrupt_zstd_archives: damage at the compression layer, through the whole extract path. */
static void test_corrupt_zstd_archives(void **state)
{
    Err err = {0};
    char src[256];
    str_copy(src, sizeof(src), in_dir("src"));
    make_dir(src, 0755);
    size_t n = 300000;
    unsigned char *data = xmalloc(n);
    fill_random(data, n);
    write_file(in_dir("src/random"), data, n, 0600);
    write_file(in_dir("src/text"), "some text\n", 10, 0600);
    free(data);
    char good[256];
    str_copy(good, sizeof(good), in_dir("good.tar.zst"));
    assert_ok(tar_zst_create_from_dir(src, good, &err), err);
    size_t len = 0;
    char *z = read_all(good, &len);

    struct {
        const char *what;
        size_t keep;
        size_t flip; /* SIZE_MAX = none */
        const char *msg;
    } cases[] = {
        {"flipped byte in the data", len, len / 2, "zstd"},
        {"flipped byte in the frame header", len, 4, "zstd"},
        {"cut mid-frame", len / 2, SIZE_MAX, "truncated zstd"},
        {"last bytes missing", len - 3, SIZE_MAX, "zstd"},
        {"empty file", 0, SIZE_MAX, "empty input"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *bad = xmalloc(len);
        memcpy(bad, z, len);
        if (cases[i].flip != SIZE_MAX)
            bad[cases[i].flip] ^= 0x20;
        char ar[256];
        str_copy(ar, sizeof(ar), in_dir("bad.tar.zst"));
        write_file(ar, bad, cases[i].keep, 0644);
        free(bad);
        char dest[256];
        str_copy(dest, sizeof(dest), in_dir("dest"));
        err_clear(&err);
        assert_false(tar_zst_extract_to_dir(ar, dest, &err));
        if (err.code != ERR_BAD_REQUEST || strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %s: got %s \"%s\"", cases[i].what, err_code_name(err.code), err.msg);
        assert_false(fs_exists(dest));
    }
    free(z);
}

int main(void)
{
    umask(022);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_layout),
        cmocka_unit_test(test_name_split),
        cmocka_unit_test(test_stream_api),
        cmocka_unit_test(test_sink_failure_poisons),
        cmocka_unit_test(test_reader_pieces),
        cmocka_unit_test(test_reader_callback_error),
        cmocka_unit_test(test_reader_variants),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_zstd_roundtrip),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test_setup_teardown(test_roundtrip_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_determinism, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_refuses_special_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gnu_tar_reads_ours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_we_read_gnu_tar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_archives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_zstd_archives, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
