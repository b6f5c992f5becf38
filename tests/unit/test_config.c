/* test_config.c: unit tests for shared/config.c (defaults, JSON file, flags, errors, help). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/config.h"
#include "shared/err.h"
#include "shared/str.h"

typedef struct TestConfig {
    char name[16];
    char workdir[64];
    uint64_t node_id;
    uint64_t shards;
    bool dev;
    bool verbose;
    HostPort listen_http;
    uint64_t timeout_ms;
} TestConfig;

static ConfigOption OPTIONS[] = {
    CONFIG_OPT(CONFIG_STRING, TestConfig, name, "name", "storcon", "NAME", "instance name"),
    CONFIG_OPT(CONFIG_STRING, TestConfig, workdir, "workdir", NULL, "DIR", "data directory"),
    CONFIG_OPT(CONFIG_U64, TestConfig, node_id, "node-id", NULL, "ID", "this node's id"),
    CONFIG_OPT(CONFIG_U64, TestConfig, shards, "max-shards", "8", NULL, "shard limit"),
    CONFIG_OPT(CONFIG_BOOL, TestConfig, dev, "dev", NULL, NULL, "development mode"),
    CONFIG_OPT(CONFIG_BOOL, TestConfig, verbose, "verbose", "true", NULL, "log more"),
    CONFIG_OPT(CONFIG_HOSTPORT, TestConfig, listen_http, "listen-http", "127.0.0.1:1234", NULL,
               "HTTP API address"),
    CONFIG_OPT(CONFIG_DURATION_MS, TestConfig, timeout_ms, "request-timeout", "30s", NULL,
               "timeout of a request"),
};

static ConfigSpec SPEC = {"testd", "A daemon for tests.", OPTIONS,
                          sizeof(OPTIONS) / sizeof(OPTIONS[0])};

static char g_dir[64];

static int group_setup(void **state)
{
    /* max-shards: range [1, 1000]; node-id required */
    OPTIONS[3].min = 1;
    OPTIONS[3].max = 1000;
    OPTIONS[2].required = true;
    str_copy(g_dir, sizeof(g_dir), "/tmp/test_config.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/c.json", g_dir);
    unlink(path);
    rmdir(g_dir);
    return 0;
}

/* load: run config_load over a NULL-terminated argument list (argv[0] added). */
static ConfigResult load_args(TestConfig *cfg, Err *err, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"testd";
    for (size_t i = 0; args[i] != NULL; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    memset(cfg, 0x5a, sizeof(*cfg)); /* garbage: every option must be written */
    err_clear(err);
    return config_load(&SPEC, argc, argv, cfg, err);
}

#define LOAD(cfg, err, ...) load_args((cfg), (err), (const char *const[]){__VA_ARGS__, NULL})

static const char *write_file(const char *text)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/c.json", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_defaults(void **state)
{
    TestConfig cfg;
    Err err;
    assert_int_equal(LOAD(&cfg, &err, "--node-id", "7"), CONFIG_OK);
    assert_string_equal(cfg.name, "storcon");
    assert_string_equal(cfg.workdir, "");
    assert_int_equal(cfg.node_id, 7);
    assert_int_equal(cfg.shards, 8);
    assert_false(cfg.dev);
    assert_true(cfg.verbose);
    assert_string_equal(cfg.listen_http.host, "127.0.0.1");
    assert_int_equal(cfg.listen_http.port, 1234);
    assert_int_equal(cfg.timeout_ms, 30000);
}

static void test_flag_forms(void **state)
{
    TestConfig cfg;
    Err err;
    assert_int_equal(LOAD(&cfg, &err, "--node-id=9", "--name", "pageserver-1", "--dev",
                          "--verbose=false", "--listen_http", "[::1]:80", "--request-timeout",
                          "1h 30m", "--workdir=/data/x", "--max-shards=1000"),
                     CONFIG_OK);
    assert_int_equal(cfg.node_id, 9);
    assert_string_equal(cfg.name, "pageserver-1");
    assert_true(cfg.dev);
    assert_false(cfg.verbose);
    assert_string_equal(cfg.listen_http.host, "::1");
    assert_int_equal(cfg.listen_http.port, 80);
    assert_int_equal(cfg.timeout_ms, 5400000);
    assert_string_equal(cfg.workdir, "/data/x");
    assert_int_equal(cfg.shards, 1000);

    /* a value with '=' inside; the last of a repeated flag wins; bool words */
    assert_int_equal(LOAD(&cfg, &err, "--node-id", "1", "--name=a=b", "--node-id", "2", "--dev=yes",
                          "--verbose=0"),
                     CONFIG_OK);
    assert_string_equal(cfg.name, "a=b");
    assert_int_equal(cfg.node_id, 2);
    assert_true(cfg.dev);
    assert_false(cfg.verbose);

    /* a bare bool flag does not swallow the next argument */
    assert_int_equal(LOAD(&cfg, &err, "--dev", "--node-id", "3"), CONFIG_OK);
    assert_true(cfg.dev);
    assert_int_equal(cfg.node_id, 3);
}

static void test_flag_errors(void **state)
{
    static const struct {
        const char *args[6];
        const char *msg;
    } cases[] = {
        {{"--node-id", "1", "--foo"}, "unknown flag \"--foo\""},
        {{"--node-id", "1", "--foo=bar"}, "unknown flag \"--foo\""},
        {{"--node-id", "1", "--name"}, "flag \"--name\" needs a value"},
        {{"--name", "--node-id", "1"}, "flag \"--name\" needs a value"},
        {{"--node-id", "abc"}, "invalid value \"abc\" for flag \"--node-id\": expected an integer"},
        {{"--node-id", "-1"}, "invalid value \"-1\" for flag \"--node-id\""},
        {{"--node-id", "1", "--max-shards", "0"},
         "invalid value \"0\" for flag \"--max-shards\": expected an integer in [1, 1000]"},
        {{"--node-id", "1", "--max-shards=1001"},
         "invalid value \"1001\" for flag \"--max-shards\""},
        {{"--node-id", "1", "--dev=maybe"}, "invalid value \"maybe\" for flag \"--dev\""},
        {{"--node-id", "1", "--listen-http", "nocolon"},
         "invalid value \"nocolon\" for flag \"--listen-http\""},
        {{"--node-id", "1", "--request-timeout", "10"},
         "invalid value \"10\" for flag \"--request-timeout\""},
        {{"--node-id", "1", "--name", "a-very-long-name-over-16"},
         "invalid value \"a-very-long-name-over-16\" for flag \"--name\": too long"},
        {{"--node-id", "1", "extra"}, "unexpected argument \"extra\""},
        {{"--node-id", "1", "-v"}, "unexpected argument \"-v\""},
        {{"--node-id", "1", "--"}, "unexpected argument \"--\""},
        {{"--dev"}, "missing required option \"--node-id\""},
        {{"--config"}, "flag \"--config\" needs a value"},
        {{"--node-id", "1", "--config", "/nonexistent/x.json"}, "config file /nonexistent/x.json"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TestConfig cfg;
        Err err;
        ConfigResult r = load_args(&cfg, &err, cases[i].args);
        if (r != CONFIG_ERROR || strstr(err.msg, cases[i].msg) != err.msg)
            fail_msg("case %zu: result %d, message \"%s\", expected prefix \"%s\"", i, r, err.msg,
                     cases[i].msg);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
}

static void test_file(void **state)
{
    TestConfig cfg;
    Err err;
    const char *path = write_file("{\"node_id\": 5, \"max-shards\": \"12\", \"dev\": true,"
                                  " \"listen_http\": \"0.0.0.0:9898\", \"request_timeout\": \"2m\","
                                  " \"name\": \"from-file\", \"verbose\": false}");
    assert_int_equal(LOAD(&cfg, &err, "--config", path), CONFIG_OK);
    assert_int_equal(cfg.node_id, 5);
    assert_int_equal(cfg.shards, 12);
    assert_true(cfg.dev);
    assert_false(cfg.verbose);
    assert_string_equal(cfg.listen_http.host, "0.0.0.0");
    assert_int_equal(cfg.listen_http.port, 9898);
    assert_int_equal(cfg.timeout_ms, 120000);
    assert_string_equal(cfg.name, "from-file");
    assert_string_equal(cfg.workdir, ""); /* untouched by the file: default */

    /* flags win over the file, wherever --config appears */
    assert_int_equal(LOAD(&cfg, &err, "--name", "from-flag", "--config=", "--node-id", "6"),
                     CONFIG_ERROR); /* empty path: cannot be read */
    assert_int_equal(LOAD(&cfg, &err, "--name", "from-flag", "--config", path, "--node-id", "6"),
                     CONFIG_OK);
    assert_string_equal(cfg.name, "from-flag");
    assert_int_equal(cfg.node_id, 6);
    assert_int_equal(cfg.shards, 12);

    /* a required option given by the file is enough */
    path = write_file("{\"node-id\": 1}");
    assert_int_equal(LOAD(&cfg, &err, "--config", path), CONFIG_OK);
    assert_int_equal(cfg.node_id, 1);
}

static void test_file_errors(void **state)
{
    static const struct {
        const char *json;
        const char *msg; /* after "config file <path>: " */
    } cases[] = {
        {"{\"node_id\": 1, \"bogus\": 2}", "unknown key \"bogus\""},
        {"{\"config\": \"x\"}", "unknown key \"config\""},
        {"{\"node_id\": -1}", "key \"node_id\": expected a non-negative integer"},
        {"{\"node_id\": 1.5}", "key \"node_id\": expected a non-negative integer"},
        {"{\"node_id\": \"x\"}", "key \"node_id\": expected an integer"},
        {"{\"max_shards\": 5000}", "key \"max_shards\": expected an integer in [1, 1000]"},
        {"{\"dev\": \"true\"}", "key \"dev\": expected true or false"},
        {"{\"name\": 5}", "key \"name\": expected a string"},
        {"{\"listen_http\": 80}", "key \"listen_http\": expected a string"},
        {"{\"listen_http\": \"nope\"}", "key \"listen_http\": invalid address"},
        {"{\"request_timeout\": 10}", "key \"request_timeout\": expected a string"},
        {"{\"request_timeout\": \"10 parsecs\"}", "key \"request_timeout\": invalid duration"},
        {"{\"name\": null}", "key \"name\": expected a string"},
        {"[1, 2]", "expected a JSON object"},
        {"{\"name\": \"a\", \"name\": \"b\"}", "line 1"},
        {"{not json", "line 1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = write_file(cases[i].json);
        char expect[512];
        snprintf(expect, sizeof(expect), "config file %s: %s", path, cases[i].msg);
        TestConfig cfg;
        Err err;
        ConfigResult r = LOAD(&cfg, &err, "--node-id", "1", "--config", path);
        if (r != CONFIG_ERROR || strstr(err.msg, expect) != err.msg)
            fail_msg("case %zu: result %d, message \"%s\", expected prefix \"%s\"", i, r, err.msg,
                     expect);
    }
}

/* capture_stdout_load: run config_load with stdout redirected to a file; return its text. */
static ConfigResult capture_stdout_load(const char *const *args, char *out, size_t cap)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/stdout", g_dir);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    dup2(fileno(f), STDOUT_FILENO);
    TestConfig cfg;
    Err err;
    ConfigResult r = load_args(&cfg, &err, args);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    rewind(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
    unlink(path);
    return r;
}

static void test_help(void **state)
{
    char out[4096];
    /* --help wins even over errors and missing required options */
    assert_int_equal(capture_stdout_load((const char *const[]){"--help", NULL}, out, sizeof(out)),
                     CONFIG_HELP);
    assert_true(strncmp(out, "usage: testd [--config PATH] [options]\nA daemon for tests.\n", 56) ==
                0);
    assert_non_null(strstr(out, "--listen-http HOST:PORT"));
    assert_int_equal(
        capture_stdout_load((const char *const[]){"--bogus", "-h", NULL}, out, sizeof(out)),
        CONFIG_HELP);
    assert_non_null(strstr(out, "usage: testd"));
    assert_int_equal(capture_stdout_load((const char *const[]){"--bogus", NULL}, out, sizeof(out)),
                     CONFIG_ERROR);
    assert_string_equal(out, ""); /* errors print nothing to stdout */

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_print_help(&SPEC, f);
    fclose(f);
    /* one line per option, aligned, help and default after the flag */
    static const char *lines[] = {
        "  --name NAME                  instance name (default: storcon)\n",
        "  --workdir DIR                data directory\n",
        "  --node-id ID                 this node's id (required)\n",
        "  --max-shards N               shard limit (default: 8) [1..1000]\n",
        "  --dev                        development mode\n",
        "  --verbose                    log more (default: true)\n",
        "  --listen-http HOST:PORT      HTTP API address (default: 127.0.0.1:1234)\n",
        "  --request-timeout DURATION   timeout of a request (default: 30s)\n",
        "  --help                       print this help and exit\n",
        "  --config PATH                JSON file",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        if (strstr(buf, lines[i]) == NULL)
            fail_msg("help lacks line \"%s\":\n%s", lines[i], buf);
    }
    free(buf);
}

static void test_bad_default_is_error(void **state)
{
    static const ConfigOption bad[] = {
        CONFIG_OPT(CONFIG_U64, TestConfig, node_id, "node-id", "seven", NULL, "id"),
    };
    ConfigSpec spec = {"x", NULL, bad, 1};
    TestConfig cfg;
    Err err = {0};
    char *argv[] = {(char *)"x", NULL};
    assert_int_equal(config_load(&spec, 1, argv, &cfg, &err), CONFIG_ERROR);
    assert_non_null(strstr(err.msg, "--node-id"));
    assert_non_null(strstr(err.msg, "seven"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_flag_forms),
        cmocka_unit_test(test_flag_errors),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_bad_default_is_error),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
