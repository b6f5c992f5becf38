/* test_fsutil.c: unit tests for shared/fsutil.c, all inside a mkdtemp directory. */
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/str.h"

static char g_dir[64];

static int setup(void **state)
{
    str_copy(g_dir, sizeof(g_dir), "/tmp/test_fsutil.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    Err err = {0};
    return fs_remove_tree(g_dir, &err) ? 0 : -1;
}

static const char *in_dir(const char *rel)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, 512, "%s/%s", g_dir, rel);
    return b;
}

/* count_entries: entries of dir (without . and ..) whose name contains needle ("" = all). */
static int count_entries(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strstr(e->d_name, needle) != NULL)
            n++;
    }
    closedir(d);
    return n;
}

static void test_write_and_read(void **state)
{
    Err err = {0};
    const char *path = in_dir("config");
    assert_true(fs_write_atomic(path, "first version", 13, &err));
    char *data = NULL;
    size_t len = 0;
    assert_true(fs_read_file(path, 1024, &data, &len, &err));
    assert_int_equal(len, 13);
    assert_string_equal(data, "first version");
    free(data);

    /* overwrite with shorter content: no trace of the old bytes */
    assert_true(fs_write_atomic(path, "v2", 2, &err));
    assert_true(fs_read_file(path, 1024, &data, &len, &err));
    assert_int_equal(len, 2);
    assert_string_equal(data, "v2");
    free(data);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644); /* main() sets umask 022 */

    /* empty file */
    assert_true(fs_write_atomic(path, "", 0, &err));
    assert_true(fs_read_file(path, 1024, &data, &len, &err));
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);

    /* binary with NULs, larger than any single buffer */
    size_t big = 3 * 1024 * 1024 + 7;
    unsigned char *blob = malloc(big);
    for (size_t i = 0; i < big; i++)
        blob[i] = (unsigned char)(i * 31);
    assert_true(fs_write_atomic(path, blob, big, &err));
    assert_true(fs_read_file(path, big, &data, &len, &err)); /* exactly the limit is fine */
    assert_int_equal(len, big);
    assert_memory_equal(data, blob, big);
    assert_int_equal(data[big], '\0');
    free(data);
    free(blob);

    assert_int_equal(count_entries(g_dir, ".tmp."), 0);
    assert_int_equal(count_entries(g_dir, ""), 1);
}

static void test_write_relative_path(void **state)
{
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(g_dir), 0);
    Err err = {0};
    bool ok = fs_write_atomic("relative.json", "{}", 2, &err);
    assert_int_equal(chdir(cwd), 0);
    assert_true(ok);
    assert_true(fs_exists(in_dir("relative.json")));
}

static void test_write_failures_leave_no_tmp(void **state)
{
    Err err = {0};
    /* directory missing */
    assert_false(fs_write_atomic(in_dir("missing/file"), "x", 1, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "missing/file.tmp."));

    /* the target is a non-empty directory: rename fails after the data was written */
    assert_true(fs_mkdir_p(in_dir("target/sub"), 0755, &err));
    err_clear(&err);
    assert_false(fs_write_atomic(in_dir("target"), "payload", 7, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "rename"));
    assert_int_equal(count_entries(g_dir, ".tmp."), 0);
    assert_int_equal(count_entries(g_dir, ""), 1); /* only "target" */
}

static void test_read_errors(void **state)
{
    Err err = {0};
    char *data = (char *)"untouched";
    size_t len = 99;
    assert_false(fs_read_file(in_dir("absent"), 10, &data, &len, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_string_equal(data, "untouched");

    assert_true(fs_write_atomic(in_dir("f"), "0123456789", 10, &err));
    err_clear(&err);
    assert_false(fs_read_file(in_dir("f"), 9, &data, &len, &err));
    assert_int_equal(err.code, ERR_PAYLOAD_TOO_LARGE);
    assert_true(fs_read_file(in_dir("f"), 10, &data, NULL, &err));
    free(data);

    err_clear(&err);
    assert_false(fs_read_file(g_dir, 10, &data, &len, &err));
    assert_int_equal(err.code, ERR_INTERNAL);

    /* a file whose size stat does not know: read to EOF, limit still enforced */
    assert_true(fs_read_file("/proc/self/status", 1 << 20, &data, &len, &err));
    assert_true(len > 0);
    assert_non_null(strstr(data, "Name:"));
    free(data);
    err_clear(&err);
    assert_false(fs_read_file("/proc/self/status", 16, &data, &len, &err));
    assert_int_equal(err.code, ERR_PAYLOAD_TOO_LARGE);
}

static void test_mkdir_p(void **state)
{
    static const char *ok_cases[] = {"a", "a/b/c", "a/b/c", "a/b/c/", "x//y///z", "a/b/d"};
    for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
        Err err = {0};
        if (!fs_mkdir_p(in_dir(ok_cases[i]), 0755, &err))
            fail_msg("mkdir_p(%s): %s", ok_cases[i], err.msg);
        struct stat st;
        assert_int_equal(stat(in_dir(ok_cases[i]), &st), 0);
        assert_true(S_ISDIR(st.st_mode));
    }
    Err err = {0};
    assert_true(fs_mkdir_p(g_dir, 0755, &err)); /* absolute, existing */
    assert_true(fs_write_atomic(in_dir("a/file"), "x", 1, &err));
    assert_false(fs_mkdir_p(in_dir("a/file"), 0755, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    err_clear(&err);
    assert_false(fs_mkdir_p(in_dir("a/file/below"), 0755, &err));
    assert_non_null(strstr(err.msg, "a/file"));
    err_clear(&err);
    assert_false(fs_mkdir_p("", 0755, &err));

    /* fs_mkdir: one level, an existing directory is fine, a missing parent or a file is not */
    err_clear(&err);
    bool created = false;
    assert_true(fs_mkdir(in_dir("a/one"), 0755, &created, &err));
    assert_true(created);
    assert_true(fs_mkdir(in_dir("a/one"), 0755, &created, &err));
    assert_false(created);
    assert_true(fs_mkdir(in_dir("a/two"), 0755, NULL, &err));
    struct stat st;
    assert_int_equal(stat(in_dir("a/one"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_false(fs_mkdir(in_dir("missing/one"), 0755, NULL, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    err_clear(&err);
    assert_false(fs_mkdir(in_dir("a/file"), 0755, NULL, &err));
    assert_non_null(strstr(err.msg, "a/file"));
}

static void test_remove_tree(void **state)
{
    Err err = {0};
    /* absent is success */
    assert_true(fs_remove_tree(in_dir("nothing-here"), &err));
    /* a single file */
    assert_true(fs_write_atomic(in_dir("single"), "x", 1, &err));
    assert_true(fs_remove_tree(in_dir("single"), &err));
    assert_false(fs_exists(in_dir("single")));

    /* a tree with a symlink to a directory outside it: the link goes, the target stays */
    assert_true(fs_mkdir_p(in_dir("keep"), 0755, &err));
    assert_true(fs_write_atomic(in_dir("keep/precious"), "p", 1, &err));
    assert_true(fs_mkdir_p(in_dir("tree/a/b/c"), 0755, &err));
    assert_true(fs_mkdir_p(in_dir("tree/empty"), 0755, &err));
    assert_true(fs_write_atomic(in_dir("tree/a/f1"), "1", 1, &err));
    assert_true(fs_write_atomic(in_dir("tree/a/b/c/f2"), "2", 1, &err));
    assert_int_equal(symlink(in_dir("keep"), in_dir("tree/a/link")), 0);
    assert_int_equal(symlink("/nonexistent", in_dir("tree/dangling")), 0);
    assert_true(fs_remove_tree(in_dir("tree"), &err));
    assert_false(fs_exists(in_dir("tree")));
    assert_true(fs_exists(in_dir("keep/precious")));

    /* a symlink given directly is removed, not followed */
    assert_int_equal(symlink(in_dir("keep"), in_dir("top-link")), 0);
    assert_true(fs_remove_tree(in_dir("top-link"), &err));
    assert_true(fs_exists(in_dir("keep/precious")));
    struct stat st;
    assert_int_not_equal(lstat(in_dir("top-link"), &st), 0);
}

typedef struct Seen {
    int n;
    int stop_after; /* 0: never stop */
    bool names_ok;
} Seen;

static bool see(const char *path, const char *name, void *arg)
{
    Seen *s = arg;
    s->n++;
    /* path is <dir>/<name>, and the entry is one of those written */
    if (strcmp(path, in_dir(name)) != 0 || strncmp(name, "e", 1) != 0)
        s->names_ok = false;
    return s->stop_after == 0 || s->n < s->stop_after;
}

static void test_dir_each(void **state)
{
    Err err = {0};
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof(name), "e%d", i);
        assert_true(fs_write_atomic(in_dir(name), "x", 1, &err));
    }
    assert_true(fs_mkdir_p(in_dir("e-dir"), 0755, &err));
    Seen s = {0, 0, true};
    assert_true(fs_dir_each(g_dir, false, see, &s, &err));
    assert_int_equal(s.n, 6); /* "." and ".." skipped, a directory is an entry */
    assert_true(s.names_ok);
    /* the function stops the walk */
    Seen stop = {0, 2, true};
    assert_true(fs_dir_each(g_dir, false, see, &stop, &err));
    assert_int_equal(stop.n, 2);
    /* absent: empty when missing_ok, an error otherwise */
    Seen none = {0, 0, true};
    assert_true(fs_dir_each(in_dir("absent"), true, see, &none, &err));
    assert_int_equal(none.n, 0);
    assert_false(fs_dir_each(in_dir("absent"), false, see, &none, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "absent"));
    /* a file is not a directory */
    err_clear(&err);
    assert_false(fs_dir_each(in_dir("e0"), true, see, &none, &err));
    assert_int_equal(none.n, 0);
}

static void test_exists_and_fsync_dir(void **state)
{
    Err err = {0};
    assert_true(fs_exists(g_dir));
    assert_false(fs_exists(in_dir("nope")));
    assert_true(fs_fsync_dir(g_dir, &err));
    assert_false(fs_fsync_dir(in_dir("nope"), &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "nope"));
}

/* fs_write_all: a write larger than a pipe's buffer (many short writes, a reader in a child)
 * arrives whole; a bad descriptor fails with errno set. */
static void test_write_all(void **state)
{
    enum { SIZE = 1 << 20 };
    char *data = malloc(SIZE);
    assert_non_null(data);
    for (size_t i = 0; i < SIZE; i++)
        data[i] = (char)(i * 7 + 3);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    const char *out = in_dir("piped");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[1]);
        int fd = open(out, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        char buf[4096];
        ssize_t n;
        while ((n = read(fds[0], buf, sizeof(buf))) > 0) {
            if (write(fd, buf, (size_t)n) != n)
                _exit(1);
        }
        _exit(close(fd) == 0 && n == 0 ? 0 : 1);
    }
    close(fds[0]);
    assert_true(fs_write_all(fds[1], data, SIZE));
    close(fds[1]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *back = NULL;
    size_t len = 0;
    Err err = {0};
    assert_true(fs_read_file(out, SIZE * 2, &back, &len, &err));
    assert_int_equal(len, SIZE);
    assert_memory_equal(back, data, SIZE);
    free(back);
    free(data);
    errno = 0;
    assert_false(fs_write_all(-1, "x", 1));
    assert_int_equal(errno, EBADF);
}

int main(void)
{
    umask(022);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_relative_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failures_leave_no_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_each, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exists_and_fsync_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
