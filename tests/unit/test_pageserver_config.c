/*
 * test_pageserver_config.c: unit tests for pageserver/config.c (option table, validation, remote
 * storage and control plane URLs, the initdb check) and pageserver/node_metadata.c (the
 * metadata.json that guards a work directory's identity).
 */
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
#include <jansson.h>

#include "shared/daemon.h"
#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/str.h"

#include "pageserver/config.h"
#include "pageserver/node_metadata.h"

static char g_tmp[PATH_MAX];

static int group_setup(void **state)
{
    str_copy(g_tmp, sizeof(g_tmp), "/tmp/test_pageserver_config.XXXXXX");
    return mkdtemp(g_tmp) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
    Err err = {0};
    return fs_remove_tree(g_tmp, &err) ? 0 : -1;
}

static void tmp_path(const char *name, char *out, size_t cap)
{
    assert_true(str_printf(out, cap, "%s/%s", g_tmp, name));
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

/* ---- remote storage URLs ---- */

static void test_remote_storage_parse(void **state)
{
    static const struct {
        const char *url;
        bool ok;
        RemoteStorageKind kind;
        const char *path_or_bucket;
        const char *prefix;
        const char *err_has; /* substring of the error message */
    } cases[] = {
        {"file:///data/remote", true, REMOTE_STORAGE_LOCAL_FS, "/data/remote", "", NULL},
        {"file:///data/remote/", true, REMOTE_STORAGE_LOCAL_FS, "/data/remote", "", NULL},
        {"file:///a//b///", true, REMOTE_STORAGE_LOCAL_FS, "/a//b", "", NULL},
        {"file:///x", true, REMOTE_STORAGE_LOCAL_FS, "/x", "", NULL},
        {"file:///a/..b/c.", true, REMOTE_STORAGE_LOCAL_FS, "/a/..b/c.", "", NULL},
        {"s3://my-bucket/some/prefix/", true, REMOTE_STORAGE_S3, "my-bucket", "some/prefix", NULL},
        {"s3://abc", true, REMOTE_STORAGE_S3, "abc", "", NULL},
        {"s3://a.b-c//p", true, REMOTE_STORAGE_S3, "a.b-c", "p", NULL},
        {"file://host/path", false, 0, NULL, NULL, "no host part"},
        {"file://relative", false, 0, NULL, NULL, "file:///absolute/path"},
        {"file://", false, 0, NULL, NULL, "file:///absolute/path"},
        {"file:///", false, 0, NULL, NULL, "root directory"},
        {"file:////", false, 0, NULL, NULL, "root directory"},
        {"file:///a/../b", false, 0, NULL, NULL, "\"..\""},
        {"file:///a/./b", false, 0, NULL, NULL, "\".\""},
        {"file:///a/..", false, 0, NULL, NULL, "\"..\""},
        {"file:///a\tb", false, 0, NULL, NULL, "control characters"},
        {"s3://", false, 0, NULL, NULL, "3..63"},
        {"s3://ab/x", false, 0, NULL, NULL, "3..63"},
        {"s3://Bucket/x", false, 0, NULL, NULL, "invalid bucket"},
        {"s3://-abc/x", false, 0, NULL, NULL, "invalid bucket"},
        {"s3://abc-/x", false, 0, NULL, NULL, "invalid bucket"},
        {"s3://a_b_c", false, 0, NULL, NULL, "invalid bucket"},
        {"ftp://host/x", false, 0, NULL, NULL, "unsupported scheme \"ftp\""},
        {"gs://bucket", false, 0, NULL, NULL, "unsupported scheme \"gs\""},
        {"/abs/path", false, 0, NULL, NULL, "not a URL"},
        {"remote", false, 0, NULL, NULL, "not a URL"},
        {"", false, 0, NULL, NULL, "empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        RemoteStorageUrl rs;
        Err err = {0};
        bool ok = remote_storage_url_parse(cases[i].url, &rs, &err);
        if (ok != cases[i].ok)
            fail_msg("case %zu \"%s\": ok=%d, want %d (%s)", i, cases[i].url, ok, cases[i].ok,
                     err.msg);
        if (!ok) {
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            if (strstr(err.msg, cases[i].err_has) == NULL)
                fail_msg("case %zu \"%s\": message \"%s\" lacks \"%s\"", i, cases[i].url, err.msg,
                         cases[i].err_has);
            continue;
        }
        assert_int_equal(rs.kind, cases[i].kind);
        if (rs.kind == REMOTE_STORAGE_LOCAL_FS) {
            assert_string_equal(rs.path, cases[i].path_or_bucket);
        } else {
            assert_string_equal(rs.bucket, cases[i].path_or_bucket);
            assert_string_equal(rs.prefix, cases[i].prefix);
        }
    }
}

static void test_remote_storage_supported(void **state)
{
    RemoteStorageUrl rs;
    Err err = {0};
    assert_true(remote_storage_url_parse("file:///srv/remote", &rs, &err));
    assert_true(remote_storage_url_check_supported(&rs, &err));
    assert_true(remote_storage_url_parse("s3://bucket/prefix", &rs, &err));
    assert_true(remote_storage_url_check_supported(&rs, &err));
    assert_string_equal(rs.region, "us-east-1");
    assert_string_equal(rs.endpoint, "");
    assert_true(remote_storage_url_parse(
        "s3://bucket/p/q?region=eu-west-1&endpoint=http://127.0.0.1:9000&part_size=8MiB", &rs,
        &err));
    assert_string_equal(rs.prefix, "p/q");
    assert_string_equal(rs.region, "eu-west-1");
    assert_string_equal(rs.endpoint, "http://127.0.0.1:9000");
    assert_int_equal(rs.part_size, 8 * 1024 * 1024);
    assert_int_equal(rs.multipart_threshold, REMOTE_S3_DEFAULT_MULTIPART_THRESHOLD);
}

static void test_control_plane_api_normalize(void **state)
{
    static const struct {
        const char *in;
        const char *out; /* NULL = error */
    } cases[] = {
        {"", ""},
        {"http://127.0.0.1:1234/upcall/v1/", "http://127.0.0.1:1234/upcall/v1/"},
        {"http://127.0.0.1:1234/upcall/v1", "http://127.0.0.1:1234/upcall/v1/"},
        {"https://storcon.example/upcall/v1", "https://storcon.example/upcall/v1/"},
        {"http://h", "http://h/"},
        {"ftp://h/upcall", NULL},
        {"127.0.0.1:1234/upcall/v1", NULL},
        {"http://", NULL},
        {"http:///upcall", NULL},
        {"http://h/up call", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[PAGESERVER_URL_MAX];
        Err err = {0};
        bool ok = pageserver_control_plane_api_normalize(cases[i].in, out, sizeof(out), &err);
        if (ok != (cases[i].out != NULL))
            fail_msg("case %zu \"%s\": ok=%d (%s)", i, cases[i].in, ok, err.msg);
        if (ok)
            assert_string_equal(out, cases[i].out);
        else
            assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
}

/* ---- the option table through config_load ---- */

#define MAX_ARGS 24

typedef struct LoadCase {
    const char *args[MAX_ARGS]; /* after argv[0]; NULL-terminated */
    ConfigResult result;
    int exit_code;
    const char *err_has; /* for errors: substring of the message */
} LoadCase;

static ConfigResult run_load(const char *const *args, PageserverConfig *cfg, int *code, Err *err)
{
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)"pageserver";
    for (size_t i = 0; i < MAX_ARGS && args[i] != NULL; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    *code = -1;
    return pageserver_config_load(argc, argv, cfg, code, err);
}

static void test_config_load_errors(void **state)
{
    static const LoadCase cases[] = {
        {{"--id", "1", NULL}, CONFIG_ERROR, EXIT_CODE_BAD_ARGS, "\"--workdir\""},
        {{"--workdir", "/tmp/x", NULL}, CONFIG_ERROR, EXIT_CODE_BAD_ARGS, "\"--id\""},
        {{"--workdir", "/tmp/x", "--id", "0", NULL}, CONFIG_ERROR, EXIT_CODE_BAD_ARGS, "\"--id\""},
        {{"--workdir", "/tmp/x", "--id", "-3", NULL}, CONFIG_ERROR, EXIT_CODE_BAD_ARGS, "\"--id\""},
        {{"--workdir", "/tmp/x", "--id", "abc", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "\"--id\""},
        {{"--workdir", "/tmp/x", "--id", "1", "--bogus", "1", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "bogus"},
        {{"--workdir", "/tmp/x", "--id", "1", "--listen-http", "nope", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "listen-http"},
        {{"--workdir", "/tmp/x", "--id", "1", "--listen-pg", "1.2.3.4:99999", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "listen-pg"},
        {{"--workdir", "/tmp/x", "--id", "1", "--remote-storage", "s3://bucket/prefix?x=1", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "unknown query parameter"},
        {{"--workdir", "/tmp/x", "--id", "1", "--remote-storage", "s3://bucket/prefix",
          "--remote-storage-credentials", "/nonexistent/credentials", NULL},
         CONFIG_ERROR,
         EXIT_CODE_CONFIG,
         "--remote-storage-credentials"},
        {{"--workdir", "/tmp/x", "--id", "1", "--remote-storage", "ftp://h/x", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "--remote-storage"},
        {{"--workdir", "/tmp/x", "--id", "1", "--remote-storage", "file://rel", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "--remote-storage"},
        {{"--workdir", "/tmp/x", "--id", "1", "--log-level", "loud", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "--log-level"},
        {{"--workdir", "/tmp/x", "--id", "1", "--availability-zone", "a z", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "--availability-zone"},
        {{"--workdir", "/tmp/x", "--id", "1", "--availability-zone", "", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "--availability-zone"},
        {{"--workdir", "/tmp/x", "--id", "1", "--control-plane-api", "storcon:1234", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "--control-plane-api"},
        {{"--workdir", "/tmp/x", "--id", "1", "--worker-threads", "0", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "\"--worker-threads\""},
        {{"--workdir", "/tmp/x", "--id", "1", "--worker-threads", "100000", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "\"--worker-threads\""},
        {{"--workdir", "/tmp/x", "--id", "1", "--worker-latency-reserved", "4", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "--worker-*: worker pool: bad limits"},
        {{"--workdir", "/tmp/x", "--id", "1", "--worker-max-io", "300", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "\"--worker-max-io\""},
        {{"--workdir", "/tmp/x", "--id", "1", "--config", "/nonexistent/ps.json", NULL},
         CONFIG_ERROR,
         EXIT_CODE_BAD_ARGS,
         "ps.json"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        PageserverConfig cfg;
        Err err = {0};
        int code;
        ConfigResult r = run_load(cases[i].args, &cfg, &code, &err);
        if (r != cases[i].result || code != cases[i].exit_code)
            fail_msg("case %zu: result %d exit %d (%s), want result %d exit %d", i, r, code,
                     err.msg, cases[i].result, cases[i].exit_code);
        if (strstr(err.msg, cases[i].err_has) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, cases[i].err_has);
    }
}

static void test_config_load_defaults(void **state)
{
    static const char *const args[] = {"--workdir", "/srv/ps1/", "--id", "7", NULL};
    PageserverConfig cfg;
    Err err = {0};
    int code;
    assert_int_equal(run_load(args, &cfg, &code, &err), CONFIG_OK);
    assert_int_equal(code, EXIT_CODE_OK);
    assert_string_equal(cfg.workdir, "/srv/ps1");
    assert_int_equal(cfg.id, 7);
    assert_string_equal(cfg.listen_http.host, "127.0.0.1");
    assert_int_equal(cfg.listen_http.port, 9898);
    assert_string_equal(cfg.listen_pg.host, "127.0.0.1");
    assert_int_equal(cfg.listen_pg.port, 6400);
    assert_string_equal(cfg.remote_storage, "file:///srv/ps1/remote_storage");
    assert_int_equal(cfg.remote.kind, REMOTE_STORAGE_LOCAL_FS);
    assert_string_equal(cfg.remote.path, "/srv/ps1/remote_storage");
    assert_string_equal(cfg.control_plane_api, "");
    assert_string_equal(cfg.availability_zone, "local");
    assert_string_equal(cfg.pg_bin_dir, "/usr/lib/postgresql/15/bin");
    assert_string_equal(cfg.public_key, "");
    assert_int_equal(cfg.log_level_value, LOG_INFO);
    assert_int_equal(cfg.worker_threads, 4);
    /* the pool's defaults for 4 threads: 1 reserved for reads, IO 3, BULK 2 (an import's two
     * jobs at once) */
    assert_int_equal(cfg.workers.threads, 4);
    assert_int_equal(cfg.workers.latency_reserved, 1);
    assert_int_equal(cfg.workers.max_io, 3);
    assert_int_equal(cfg.workers.max_bulk, 2);
    assert_int_equal(cfg.workers.sync_threads, 8); /* location config writes */
}

static void test_config_load_flags(void **state)
{
    static const char *const args[] = {"--workdir=/srv/ps2",
                                       "--id",
                                       "2",
                                       "--listen-http",
                                       "0.0.0.0:0",
                                       "--listen-pg=:6401",
                                       "--remote-storage",
                                       "file:///srv/shared-remote/",
                                       "--control-plane-api",
                                       "http://127.0.0.1:1234/upcall/v1",
                                       "--availability-zone",
                                       "us-east-2a",
                                       "--log-level",
                                       "debug",
                                       "--worker-threads",
                                       "9",
                                       "--worker-max-bulk",
                                       "3",
                                       "--worker-latency-reserved=2",
                                       "--worker-sync-threads=0",
                                       NULL};
    PageserverConfig cfg;
    Err err = {0};
    int code;
    assert_int_equal(run_load(args, &cfg, &code, &err), CONFIG_OK);
    assert_string_equal(cfg.workdir, "/srv/ps2");
    assert_int_equal(cfg.id, 2);
    assert_string_equal(cfg.listen_http.host, "0.0.0.0");
    assert_int_equal(cfg.listen_http.port, 0);
    assert_int_equal(cfg.listen_pg.port, 6401);
    assert_string_equal(cfg.remote.path, "/srv/shared-remote");
    assert_string_equal(cfg.control_plane_api, "http://127.0.0.1:1234/upcall/v1/");
    assert_string_equal(cfg.availability_zone, "us-east-2a");
    assert_int_equal(cfg.log_level_value, LOG_DEBUG);
    assert_int_equal(cfg.worker_threads, 9);
    assert_int_equal(cfg.workers.latency_reserved, 2);
    assert_int_equal(cfg.workers.max_io, 7);
    assert_int_equal(cfg.workers.max_bulk, 3);
    assert_int_equal(cfg.workers.sync_threads, 0);
}

static void test_config_relative_workdir(void **state)
{
    static const char *const args[] = {"--workdir", "rel/dir", "--id", "1", NULL};
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    char want[PATH_MAX + 16];
    assert_true(str_printf(want, sizeof(want), "%s/rel/dir", cwd));
    PageserverConfig cfg;
    Err err = {0};
    int code;
    assert_int_equal(run_load(args, &cfg, &code, &err), CONFIG_OK);
    assert_string_equal(cfg.workdir, want);
    char remote[PATH_MAX + 32];
    assert_true(str_printf(remote, sizeof(remote), "%s/remote_storage", want));
    assert_string_equal(cfg.remote.path, remote);
}

/* The --config JSON file: keys are the flag names with '_'; flags win over the file. */
static void test_config_file(void **state)
{
    char path[PATH_MAX];
    tmp_path("ps.json", path, sizeof(path));
    write_file(path,
               "{\"workdir\": \"/srv/from-file\", \"id\": 5, \"listen_http\": \"127.0.0.1:19898\","
               " \"availability_zone\": \"az-file\", \"worker_threads\": 2}",
               0644);
    const char *args[] = {"--config", path, "--availability-zone", "az-flag", NULL};
    PageserverConfig cfg;
    Err err = {0};
    int code;
    if (run_load(args, &cfg, &code, &err) != CONFIG_OK)
        fail_msg("load: %s", err.msg);
    assert_string_equal(cfg.workdir, "/srv/from-file");
    assert_int_equal(cfg.id, 5);
    assert_int_equal(cfg.listen_http.port, 19898);
    assert_string_equal(cfg.availability_zone, "az-flag");
    assert_int_equal(cfg.worker_threads, 2);

    write_file(path, "{\"workdir\": \"/srv/x\", \"id\": 5, \"listen_htp\": \"127.0.0.1:1\"}", 0644);
    const char *args2[] = {"--config", path, NULL};
    assert_int_equal(run_load(args2, &cfg, &code, &err), CONFIG_ERROR);
    assert_int_equal(code, EXIT_CODE_BAD_ARGS);
    assert_non_null(strstr(err.msg, "listen_htp"));

    write_file(path,
               "{\"workdir\": \"/srv/x\", \"id\": 5, \"remote_storage\": \"s3://bkt/p?region=\"}",
               0644);
    assert_int_equal(run_load(args2, &cfg, &code, &err), CONFIG_ERROR);
    assert_int_equal(code, EXIT_CODE_BAD_ARGS);
}

static void test_config_help(void **state)
{
    static const char *const args[] = {"--help", NULL};
    PageserverConfig cfg;
    Err err = {0};
    int code;
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    assert_non_null(stdout);
    ConfigResult r = run_load(args, &cfg, &code, &err);
    fclose(stdout);
    stdout = saved;
    assert_int_equal(r, CONFIG_HELP);
    assert_int_equal(code, EXIT_CODE_OK);
}

/* Every option row is reachable as a flag and documented. */
static void test_config_spec_rows(void **state)
{
    const ConfigSpec *spec = pageserver_config_spec();
    static const char *const want[] = {
        "workdir",           "id",
        "listen-http",       "listen-pg",
        "remote-storage",    "control-plane-api",
        "availability-zone", "pg-bin-dir",
        "public-key",        "log-level",
        "log-file",          "failpoints",
        "worker-threads",
    };
    for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
        bool found = false;
        for (size_t i = 0; i < spec->n_options; i++) {
            if (strcmp(spec->options[i].name, want[w]) == 0) {
                found = true;
                assert_non_null(spec->options[i].help);
            }
        }
        if (!found)
            fail_msg("option --%s missing", want[w]);
    }
}

static void test_pg_bin_dir(void **state)
{
    char dir[PATH_MAX], initdb[PATH_MAX];
    tmp_path("pgbin", dir, sizeof(dir));
    assert_int_equal(mkdir(dir, 0755), 0);
    PageserverConfig cfg;
    memset(&cfg, 0, sizeof(cfg));
    str_copy(cfg.pg_bin_dir, sizeof(cfg.pg_bin_dir), dir);
    Err err = {0};
    assert_false(pageserver_config_check_pg_bin_dir(&cfg, &err));
    assert_non_null(strstr(err.msg, "initdb"));

    assert_true(str_printf(initdb, sizeof(initdb), "%s/initdb", dir));
    write_file(initdb, "#!/bin/sh\nexit 0\n", 0644);
    if (geteuid() != 0) /* root may execute anything with any x bit; 0644 has none */
        assert_false(pageserver_config_check_pg_bin_dir(&cfg, &err));
    assert_int_equal(chmod(initdb, 0755), 0);
    assert_true(pageserver_config_check_pg_bin_dir(&cfg, &err));
}

/* ---- node metadata ---- */

static void test_node_metadata_roundtrip(void **state)
{
    char path[PATH_MAX];
    tmp_path("metadata.json", path, sizeof(path));
    NodeMetadata md = {.node_id = 42, .listen_http_port = 9898, .listen_pg_port = 6400};
    str_copy(md.listen_http_addr, sizeof(md.listen_http_addr), "127.0.0.1");
    str_copy(md.listen_pg_addr, sizeof(md.listen_pg_addr), "10.0.0.1");
    str_copy(md.availability_zone_id, sizeof(md.availability_zone_id), "az-1");
    Err err = {0};
    NodeMetadata back;
    bool found = true;
    assert_true(node_metadata_load(path, &back, &found, &err));
    assert_false(found);
    assert_true(node_metadata_check_identity(path, 42, &err)); /* absent: anyone may start */

    assert_true(node_metadata_store(path, &md, &err));
    assert_true(node_metadata_load(path, &back, &found, &err));
    assert_true(found);
    assert_int_equal(back.node_id, 42);
    assert_string_equal(back.listen_http_addr, "127.0.0.1");
    assert_int_equal(back.listen_http_port, 9898);
    assert_string_equal(back.listen_pg_addr, "10.0.0.1");
    assert_int_equal(back.listen_pg_port, 6400);
    assert_string_equal(back.availability_zone_id, "az-1");

    assert_true(node_metadata_check_identity(path, 42, &err));
    assert_false(node_metadata_check_identity(path, 43, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_non_null(strstr(err.msg, "node 42"));
    assert_non_null(strstr(err.msg, "node 43"));

    write_file(path, "{not json", 0644);
    assert_false(node_metadata_load(path, &back, &found, &err));
    assert_false(node_metadata_check_identity(path, 42, &err));
}

static void test_node_metadata_from_json(void **state)
{
    static const struct {
        const char *json;
        bool ok;
        const char *err_has;
    } cases[] = {
        {"{\"node_id\":1,\"listen_http_addr\":\"h\",\"listen_http_port\":1,\"listen_pg_addr\":"
         "\"p\",\"listen_pg_port\":2,\"availability_zone_id\":\"z\",\"extra\":true}",
         true, NULL},
        {"{\"node_id\":0,\"listen_http_addr\":\"h\",\"listen_http_port\":1,\"listen_pg_addr\":"
         "\"p\",\"listen_pg_port\":2,\"availability_zone_id\":\"z\"}",
         false, "node_id"},
        {"{\"node_id\":\"1\",\"listen_http_addr\":\"h\",\"listen_http_port\":1,"
         "\"listen_pg_addr\":\"p\",\"listen_pg_port\":2,\"availability_zone_id\":\"z\"}",
         false, "node_id"},
        {"{\"node_id\":1,\"listen_http_addr\":\"h\",\"listen_http_port\":70000,"
         "\"listen_pg_addr\":\"p\",\"listen_pg_port\":2,\"availability_zone_id\":\"z\"}",
         false, "listen_http_port"},
        {"{\"node_id\":1,\"listen_http_addr\":\"h\",\"listen_http_port\":1,\"listen_pg_port\":2,"
         "\"availability_zone_id\":\"z\"}",
         false, "listen_pg_addr"},
        {"{\"node_id\":1,\"listen_http_addr\":\"h\",\"listen_http_port\":1,\"listen_pg_addr\":"
         "\"p\",\"listen_pg_port\":2}",
         false, "availability_zone_id"},
        {"[1]", false, "object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        NodeMetadata md;
        Err err = {0};
        bool ok = node_metadata_from_json(j, &md, &err);
        json_decref(j);
        if (ok != cases[i].ok)
            fail_msg("case %zu: ok=%d (%s)", i, ok, err.msg);
        if (!ok && strstr(err.msg, cases[i].err_has) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, cases[i].err_has);
    }
    NodeMetadata md = {.node_id = 3, .listen_http_port = 5, .listen_pg_port = 6};
    json_t *j = node_metadata_to_json(&md);
    assert_non_null(j);
    static const char *const keys[] = {"node_id",          "listen_http_addr",
                                       "listen_http_port", "listen_pg_addr",
                                       "listen_pg_port",   "availability_zone_id"};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
        assert_non_null(json_object_get(j, keys[k]));
    assert_int_equal(json_object_size(j), 6);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remote_storage_parse),
        cmocka_unit_test(test_remote_storage_supported),
        cmocka_unit_test(test_control_plane_api_normalize),
        cmocka_unit_test(test_config_load_errors),
        cmocka_unit_test(test_config_load_defaults),
        cmocka_unit_test(test_config_load_flags),
        cmocka_unit_test(test_config_relative_workdir),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_config_help),
        cmocka_unit_test(test_config_spec_rows),
        cmocka_unit_test(test_pg_bin_dir),
        cmocka_unit_test(test_node_metadata_roundtrip),
        cmocka_unit_test(test_node_metadata_from_json),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
