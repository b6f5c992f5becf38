/* test_log.c: unit tests for shared/log.c: levels, context, log_err, reopen after rename. */
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
#include "shared/log.h"
#include "shared/str.h"

static char g_dir[64];
static char g_path[128];

static int setup(void **state)
{
    str_copy(g_dir, sizeof(g_dir), "/tmp/test_log.XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    str_printf(g_path, sizeof(g_path), "%s/app.log", g_dir);
    Err err = {0};
    return log_init("testprog", LOG_INFO, g_path, &err) ? 0 : -1;
}

static int teardown(void **state)
{
    char rotated[160];
    str_printf(rotated, sizeof(rotated), "%s.1", g_path);
    unlink(rotated);
    unlink(g_path);
    rmdir(g_dir);
    return 0;
}

/* read_log: the whole current log file (caller frees). */
static char *read_log(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    StrBuf b = STRBUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        strbuf_append(&b, chunk, n);
    fclose(f);
    return strbuf_detach(&b);
}

static void test_levels_and_format(void **state)
{
    log_set_level(LOG_INFO);
    log_debug("hidden-debug-line");
    log_info("visible info %d", 42);
    log_warn("visible warn");
    char *text = read_log(g_path);
    assert_null(strstr(text, "hidden-debug-line"));
    const char *info = strstr(text, "visible info 42");
    assert_non_null(info);
    /* "<date>T<time>.<usec>Z  INFO testprog: visible info 42" */
    assert_non_null(strstr(text, " INFO testprog: visible info 42\n"));
    assert_non_null(strstr(text, " WARN testprog: visible warn (test_log.c:"));
    assert_int_equal(text[4], '-');
    assert_int_equal(text[10], 'T');
    free(text);

    LogLevel l;
    assert_true(log_level_parse("debug", &l));
    assert_int_equal(l, LOG_DEBUG);
    assert_true(log_level_parse("WARNING", &l));
    assert_int_equal(l, LOG_WARN);
    assert_false(log_level_parse("loud", &l));
}

static void test_context(void **state)
{
    log_ctx_set_request("r-123");
    log_ctx_set_tenant("1f359dd625e519a1a4e8d7509690f6fc-0104");
    log_info("with context");
    log_ctx_clear();
    log_info("without context");
    char *text = read_log(g_path);
    assert_non_null(strstr(
        text, "testprog req=r-123 tenant=1f359dd625e519a1a4e8d7509690f6fc-0104: with context"));
    assert_non_null(strstr(text, "testprog: without context"));
    free(text);
}

static void test_log_err_levels(void **state)
{
    Err e = {0};
    err_set(&e, ERR_NOT_FOUND, "tenant gone");
    log_err(&e, "lookup");
    err_set(&e, ERR_INTERNAL, "disk on fire");
    log_err(&e, "flush");
    char *text = read_log(g_path);
    assert_non_null(
        strstr(text, " INFO testprog: lookup: tenant gone [not_found in test_log_err_levels]"));
    assert_non_null(
        strstr(text, "ERROR testprog: flush: disk on fire [internal in test_log_err_levels]"));
    free(text);
}

static void test_reopen_after_rename(void **state)
{
    char rotated[160];
    str_printf(rotated, sizeof(rotated), "%s.1", g_path);
    log_info("before rotation");
    assert_int_equal(rename(g_path, rotated), 0);
    log_info("still old file");
    Err err = {0};
    assert_true(log_reopen(&err));
    log_info("after rotation");
    char *old_text = read_log(rotated);
    char *new_text = read_log(g_path);
    assert_non_null(strstr(old_text, "still old file"));
    assert_null(strstr(old_text, "after rotation"));
    assert_non_null(strstr(new_text, "after rotation"));
    assert_null(strstr(new_text, "before rotation"));
    free(old_text);
    free(new_text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_and_format),
        cmocka_unit_test(test_context),
        cmocka_unit_test(test_log_err_levels),
        cmocka_unit_test(test_reopen_after_rename),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
