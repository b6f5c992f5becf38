/*
 * bench_failover.c: failing over a pageserver that holds 10,000 attached shards (issue: failover
 * took ~10 s, one generation increment and two pageserver calls per shard, and opened thousands
 * of TCP connections).
 *
 * Setup (nothing timed):
 *   - a throwaway Postgres 15 cluster (tests/unit/pg_cluster.h), the schema applied by the real
 *     daemon (`storcon --migrate-to N`);
 *   - 10 fake pageservers in this process, on one event loop in a thread of their own, served by
 *     the real HTTP server (shared/http_server.c) and answering what the controller asks quickly
 *     from memory: GET /v1/utilization, GET /v1/location_config[/{tsid}], PUT
 *     /v1/tenant/{tsid}/location_config;
 *   - the nodes and 2,500 tenants x 4 shards (placement {"Attached": 1}) written to the database,
 *     every shard in generation 1 issued to node 1; node 1 reports them all AttachedSingle, the
 *     other nine each report a ninth of them as warm secondaries;
 *   - the real storcon daemon (build/bin/storcon, next to this binary), started on that database:
 *     its startup learns that state and has nothing to reconcile.
 *
 * Timed: node 1 stops answering and is marked Offline (PUT /control/v1/node/1/config); the clock
 * runs until every shard has been attached (AttachedSingle, generation > 1) on another node, and
 * until no reconcile is pending (each shard also got a new secondary). Then the database is checked
 * (every shard in generation 2, issued to a node other than 1), storcon is stopped, and the
 * baseline is measured on the same database: the same number of single-row generation updates in
 * one transaction (one statement and round trip each, as one reconcile per shard issues them).
 *
 * Printed: the failover time, the baseline, their ratio, the pageserver calls received, and the
 * TCP connections opened: by storcon's HTTP client (storcon_http_client_connections_opened_total
 * from its /metrics) and as accepted by the fake pageservers (counted by their HTTP server).
 * Asserts nothing about time.
 *
 * Usage: bench_failover [tenants]   (default 2500; 4 shards each)
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "shared/err.h"
#include "shared/http_server.h"
#include "shared/id.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/str.h"
#include "storcon/migrations.h"
#include "tests/unit/pg_cluster.h"

#define BENCH_NODES             10
#define BENCH_SHARDS_PER_TENANT 4
#define BENCH_DEAD_NODE         1
#define BENCH_TIMEOUT_S         180.0

enum { MODE_NONE, MODE_ATTACHED, MODE_SECONDARY };

/* Fake: one fake pageserver: what it holds, per shard index. */
typedef struct Fake {
    NodeId id;
    HttpServer *srv;
    uint16_t port;
    uint8_t *mode;
    int32_t *gen;
} Fake;

static struct {
    size_t n_tenants, n_shards;
    Fake fakes[BENCH_NODES];
    struct event_base *base;
    MetricsRegistry *metrics;
    MetricCounter *accepted[BENCH_NODES];
    atomic_bool stop;
    atomic_bool dead; /* node 1 answers 503 to everything */
    uint8_t *reattached_flag;
    atomic_size_t reattached; /* shards attached elsewhere in a newer generation */
    atomic_size_t puts;       /* location_config PUTs received */
    PgCluster pg;
    pid_t storcon;
    char storcon_url[64];
    char storcon_log[192];
} B;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void cleanup(void)
{
    if (B.storcon > 0) {
        kill(B.storcon, SIGTERM);
        waitpid(B.storcon, NULL, 0);
        B.storcon = 0;
    }
    pg_cluster_cleanup(&B.pg);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (B.storcon_log[0] != '\0')
        fprintf(stderr, "(storcon log: %s)\n", B.storcon_log);
    B.storcon_log[0] = '\0';
    cleanup();
    exit(1);
}

/* ---- shard ids: shard index i is tenant i / 4, number i % 4 ---- */

static void shard_tsid(size_t i, TenantShardId *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t hi = 0xbe0cfa11be0cfa11ull, lo = (uint64_t)(i / BENCH_SHARDS_PER_TENANT) + 1;
    for (int k = 0; k < 8; k++) {
        out->tenant_id.b[k] = (uint8_t)(hi >> (56 - 8 * k));
        out->tenant_id.b[8 + k] = (uint8_t)(lo >> (56 - 8 * k));
    }
    out->number = (ShardNumber)(i % BENCH_SHARDS_PER_TENANT);
    out->count = BENCH_SHARDS_PER_TENANT;
}

/* shard_index: the index of a tsid text, or SIZE_MAX. */
static size_t shard_index(const char *text)
{
    TenantShardId t;
    Err err;
    if (text == NULL || !tsid_parse(text, &t, &err) || t.count != BENCH_SHARDS_PER_TENANT)
        return SIZE_MAX;
    uint64_t lo = 0;
    for (int k = 0; k < 8; k++)
        lo = (lo << 8) | t.tenant_id.b[8 + k];
    size_t i = (size_t)(lo - 1) * BENCH_SHARDS_PER_TENANT + t.number;
    return lo >= 1 && i < B.n_shards ? i : SIZE_MAX;
}

static NodeId initial_secondary(size_t i)
{
    return (NodeId)(2 + i % (BENCH_NODES - 1));
}

/* ---- the fake pageservers ---- */

static json_t *location_json(const Fake *f, size_t i)
{
    bool attached = f->mode[i] == MODE_ATTACHED;
    return json_pack("{s:s, s:o, s:o, s:i, s:i, s:i, s:{}}", "mode",
                     attached ? "AttachedSingle" : "Secondary", "generation",
                     attached ? json_integer(f->gen[i]) : json_null(), "secondary_conf",
                     attached ? json_null() : json_pack("{s:b}", "warm", 1), "shard_number",
                     (int)(i % BENCH_SHARDS_PER_TENANT), "shard_count", BENCH_SHARDS_PER_TENANT,
                     "shard_stripe_size", 2048, "tenant_conf");
}

static bool fake_dead(const Fake *f, HttpRequest *req)
{
    if (f->id != BENCH_DEAD_NODE || !atomic_load(&B.dead))
        return false;
    Err err;
    err_set(&err, ERR_UNAVAILABLE, "node is down");
    http_reply_error(req, &err);
    return true;
}

static void fake_utilization(HttpRequest *req, void *app)
{
    Fake *f = app;
    if (fake_dead(f, req))
        return;
    http_reply_json(req, 200,
                    json_pack("{s:i, s:i, s:i}", "utilization_score", 100, "shard_count", 0,
                              "max_shard_count", 20000));
}

static void fake_list(HttpRequest *req, void *app)
{
    Fake *f = app;
    if (fake_dead(f, req))
        return;
    json_t *list = json_array();
    for (size_t i = 0; i < B.n_shards; i++) {
        if (f->mode[i] == MODE_NONE)
            continue;
        TenantShardId t;
        char text[TSID_STR_SIZE];
        shard_tsid(i, &t);
        tsid_format(&t, text);
        json_array_append_new(list, json_pack("[s, o]", text, location_json(f, i)));
    }
    http_reply_json(req, 200, json_pack("{s:o}", "tenant_shards", list));
}

static void fake_get(HttpRequest *req, void *app)
{
    Fake *f = app;
    if (fake_dead(f, req))
        return;
    size_t i = shard_index(http_request_param(req, "tenant_shard_id"));
    if (i == SIZE_MAX || f->mode[i] == MODE_NONE) {
        Err err;
        err_set(&err, ERR_NOT_FOUND, "no such shard");
        http_reply_error(req, &err);
        return;
    }
    http_reply_json(req, 200, location_json(f, i));
}

static void fake_put(HttpRequest *req, void *app)
{
    Fake *f = app;
    if (fake_dead(f, req))
        return;
    atomic_fetch_add(&B.puts, 1);
    const char *text = http_request_param(req, "tenant_shard_id");
    size_t i = shard_index(text);
    json_t *body = NULL;
    Err err;
    if (i == SIZE_MAX || !http_request_json(req, &body, &err)) {
        err_set(&err, ERR_BAD_REQUEST, "bad shard or body");
        http_reply_error(req, &err);
        return;
    }
    const char *mode = json_string_value(json_object_get(body, "mode"));
    json_int_t gen = json_integer_value(json_object_get(body, "generation"));
    if (mode != NULL && strcmp(mode, "AttachedSingle") == 0) {
        f->mode[i] = MODE_ATTACHED;
        f->gen[i] = (int32_t)gen;
        if (gen > 1 && !B.reattached_flag[i]) {
            B.reattached_flag[i] = 1;
            atomic_fetch_add(&B.reattached, 1);
        }
    } else if (mode != NULL && strcmp(mode, "Secondary") == 0) {
        f->mode[i] = MODE_SECONDARY;
    } else {
        f->mode[i] = MODE_NONE;
    }
    json_decref(body);
    http_reply_json(req, 200,
                    json_pack("{s:[{s:s, s:I}], s:n}", "shards", "shard_id", text, "node_id",
                              (json_int_t)f->id, "stripe_size"));
}

static const HttpRoute FAKE_ROUTES[] = {
    {HTTP_GET, "/v1/utilization", AUTH_SCOPE_NONE, fake_utilization},
    {HTTP_GET, "/v1/location_config", AUTH_SCOPE_NONE, fake_list},
    {HTTP_GET, "/v1/location_config/{tenant_shard_id}", AUTH_SCOPE_NONE, fake_get},
    {HTTP_PUT, "/v1/tenant/{tenant_shard_id}/location_config", AUTH_SCOPE_NONE, fake_put},
};

static void stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
    if (atomic_load(&B.stop))
        event_base_loopexit(B.base, NULL);
}

static void *fake_thread(void *arg)
{
    struct event *tick = event_new(B.base, -1, EV_PERSIST, stop_check_cb, NULL);
    struct timeval tv = {0, 50000};
    event_add(tick, &tv);
    event_base_dispatch(B.base);
    event_free(tick);
    return NULL;
}

static void fakes_start(void)
{
    B.base = event_base_new();
    B.metrics = metrics_registry_new();
    for (size_t k = 0; k < BENCH_NODES; k++) {
        Fake *f = &B.fakes[k];
        f->id = (NodeId)(k + 1);
        f->mode = calloc(B.n_shards, 1);
        f->gen = calloc(B.n_shards, sizeof(int32_t));
        char name[32];
        str_printf(name, sizeof(name), "fake pageserver %zu", k + 1);
        HttpServerConfig cfg = {
            .routes = FAKE_ROUTES,
            .n_routes = sizeof(FAKE_ROUTES) / sizeof(FAKE_ROUTES[0]),
            .app = f,
            .metrics = B.metrics,
            .name = name,
        };
        Err err;
        if (!host_port_parse("127.0.0.1:0", &cfg.listen, &err) ||
            !http_server_start(B.base, &cfg, &f->srv, &err))
            die("fake pageserver %zu: %s", k + 1, err.msg);
        f->port = http_server_port(f->srv);
        char labels[64];
        str_printf(labels, sizeof(labels), "server=\"%s\"", name);
        B.accepted[k] = metrics_counter(B.metrics, "http_connections_accepted_total",
                                        "Client connections accepted", labels);
    }
    for (size_t i = 0; i < B.n_shards; i++) {
        B.fakes[BENCH_DEAD_NODE - 1].mode[i] = MODE_ATTACHED;
        B.fakes[BENCH_DEAD_NODE - 1].gen[i] = 1;
        B.fakes[initial_secondary(i) - 1].mode[i] = MODE_SECONDARY;
    }
    B.reattached_flag = calloc(B.n_shards, 1);
}

static uint64_t fakes_accepted(void)
{
    uint64_t n = 0;
    for (size_t k = 0; k < BENCH_NODES; k++)
        n += metric_counter_get(B.accepted[k]);
    return n;
}

/* ---- the database ---- */

static PGconn *db_connect(void)
{
    PGconn *c = PQconnectdb(B.pg.url);
    if (PQstatus(c) != CONNECTION_OK)
        die("connect: %s", PQerrorMessage(c));
    return c;
}

static void db_run(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        die("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

static long db_count(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        die("%s: %s", sql, PQresultErrorMessage(r));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static const char SQL_NODE[] =
    "INSERT INTO nodes (node_id, scheduling_policy, listen_http_addr, listen_http_port, "
    "listen_pg_addr, listen_pg_port, availability_zone_id) "
    "VALUES ($1::bigint, 'Active', '127.0.0.1', $2::integer, '127.0.0.1', $3::integer, $4)";

/* Every shard of tenants 1..$1 (ids as shard_tsid makes them), generation 1 on node 1. */
static const char SQL_SHARDS[] =
    "INSERT INTO tenant_shards (tenant_id, shard_number, shard_count, shard_stripe_size, "
    "generation, generation_pageserver, placement_policy) "
    "SELECT 'be0cfa11be0cfa11' || lpad(to_hex(t), 16, '0'), n, 4, 2048, 1, 1, "
    "'{\"Attached\":1}' FROM generate_series(1, $1::integer) AS t, generate_series(0, 3) AS n";

static void db_populate(void)
{
    PGconn *c = db_connect();
    for (size_t k = 0; k < BENCH_NODES; k++) {
        char id[16], port[16], pg_port[16], az[16];
        str_printf(id, sizeof(id), "%zu", k + 1);
        str_printf(port, sizeof(port), "%u", (unsigned)B.fakes[k].port);
        str_printf(pg_port, sizeof(pg_port), "%zu", 64000 + k);
        str_printf(az, sizeof(az), "az-%zu", k % 3);
        const char *const params[] = {id, port, pg_port, az};
        db_run(c, SQL_NODE, 4, params);
    }
    char tenants[24];
    str_printf(tenants, sizeof(tenants), "%zu", B.n_tenants);
    const char *const params[] = {tenants};
    db_run(c, SQL_SHARDS, 1, params);
    PQfinish(c);
}

/* The statement a reconcile runs per shard today (storcon/db_tenants.c). */
static const char SQL_BASELINE_INCREMENT[] =
    "UPDATE tenant_shards SET generation = COALESCE(generation, 0) + 1, "
    "generation_pageserver = $4::bigint "
    "WHERE tenant_id = $1 AND shard_number = $2::integer AND shard_count = $3::integer "
    "RETURNING generation";

/* baseline_ms: n single-row increments in one transaction, one round trip each. */
static double baseline_ms(void)
{
    PGconn *c = db_connect();
    double t0 = pg_cluster_now_s();
    db_run(c, "BEGIN", 0, NULL);
    for (size_t i = 0; i < B.n_shards; i++) {
        TenantShardId t;
        char tenant[ID_STR_SIZE], number[8], node[8];
        shard_tsid(i, &t);
        tenant_id_format(&t.tenant_id, tenant);
        str_printf(number, sizeof(number), "%u", (unsigned)t.number);
        str_printf(node, sizeof(node), "%u", (unsigned)initial_secondary(i));
        const char *const params[] = {tenant, number, "4", node};
        db_run(c, SQL_BASELINE_INCREMENT, 4, params);
    }
    db_run(c, "COMMIT", 0, NULL);
    double ms = (pg_cluster_now_s() - t0) * 1e3;
    PQfinish(c);
    return ms;
}

/* ---- storcon ---- */

static pid_t spawn_storcon(const char *exe, const char *const *extra, const char *log_path)
{
    const char *argv[16];
    size_t n = 0;
    argv[n++] = exe;
    argv[n++] = "--database-url";
    argv[n++] = B.pg.url;
    for (size_t i = 0; extra[i] != NULL && n < 15; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

typedef struct Fetched {
    StrBuf body;
} Fetched;

static size_t fetch_write(char *data, size_t size, size_t nmemb, void *arg)
{
    strbuf_append(&((Fetched *)arg)->body, data, size * nmemb);
    return size * nmemb;
}

/* http: a blocking call to storcon (this thread is not an event loop); the status, 0 on a
 * transport error; the body into *body when given (caller frees with strbuf_finish). */
static long http(const char *method, const char *path, const char *body, StrBuf *out)
{
    char url[256];
    str_printf(url, sizeof(url), "%s%s", B.storcon_url, path);
    CURL *e = curl_easy_init();
    Fetched f;
    strbuf_init(&f.body);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fetch_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)&f);
    if (body != NULL)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    long status = 0;
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    if (out != NULL)
        *out = f.body;
    else
        strbuf_finish(&f.body);
    return status;
}

/* metric: the sum of every sample of `name` in storcon's /metrics; -1 when absent. */
static double metric(const char *name)
{
    StrBuf b;
    if (http("GET", "/metrics", NULL, &b) != 200)
        die("GET /metrics failed");
    double sum = -1;
    size_t len = strlen(name);
    for (const char *line = b.data; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (strncmp(line, name, len) == 0 && (line[len] == ' ' || line[len] == '{')) {
            const char *v = strchr(line, ' ');
            sum = (sum < 0 ? 0 : sum) + (v != NULL ? strtod(v + 1, NULL) : 0);
        }
        line = end != NULL ? end + 1 : NULL;
    }
    strbuf_finish(&b);
    return sum;
}

static void wait_for(const char *what, bool (*cond)(void))
{
    double deadline = pg_cluster_now_s() + BENCH_TIMEOUT_S;
    while (!cond()) {
        if (pg_cluster_now_s() > deadline)
            die("timed out waiting for %s", what);
        pg_cluster_sleep_ms(2);
    }
}

static bool storcon_ready(void)
{
    return http("GET", "/ready", NULL, NULL) == 200;
}

static bool reconciles_settled(void)
{
    return metric("storcon_reconciles_pending") == 0;
}

static bool all_reattached(void)
{
    return atomic_load(&B.reattached) >= B.n_shards;
}

int main(int argc, char **argv)
{
    uint64_t tenants = 2500;
    if (argc > 1 && !parse_u64(argv[1], 1, 100000, &tenants)) {
        fprintf(stderr, "usage: %s [tenants 1..100000]   (4 shards each)\n", argv[0]);
        return 2;
    }
    B.n_tenants = (size_t)tenants;
    B.n_shards = B.n_tenants * BENCH_SHARDS_PER_TENANT;
    log_set_level(LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!pg_cluster_available()) {
        fprintf(stderr, "bench: Postgres 15 binaries not found in " PG_BIN "\n");
        return 1;
    }
    char exe[512], dir[512];
    ssize_t len = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
    if (len <= 0)
        die("readlink /proc/self/exe failed");
    dir[len] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    str_printf(exe, sizeof(exe), "%s/storcon", dir);
    if (access(exe, X_OK) != 0)
        die("%s not found (build the storcon target)", exe);
    atexit(cleanup);

    const char *const settings[] = {PG_CLUSTER_FAST_SETTINGS, "max_connections=100", NULL};
    if (!pg_cluster_start(&B.pg, settings, 60))
        die("could not start Postgres");
    str_printf(B.storcon_log, sizeof(B.storcon_log), "%s/storcon.log", B.pg.root);

    /* the schema, by the daemon itself */
    char target[16];
    str_printf(target, sizeof(target), "%d", MIGRATIONS_COUNT);
    const char *const migrate[] = {"--migrate-to", target, NULL};
    pid_t m = spawn_storcon(exe, migrate, B.storcon_log);
    int status = 0;
    if (m < 0 || waitpid(m, &status, 0) != m || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("storcon --migrate-to %s failed", target);

    fakes_start();
    db_populate();
    pthread_t thread;
    if (pthread_create(&thread, NULL, fake_thread, NULL) != 0)
        die("pthread_create failed");

    int port = pg_cluster_free_port();
    char listen[32];
    str_printf(listen, sizeof(listen), "127.0.0.1:%d", port);
    str_printf(B.storcon_url, sizeof(B.storcon_url), "http://%s", listen);
    const char *const run[] = {"--dev", "--listen", listen, "--log-level", "warn", NULL};
    B.storcon = spawn_storcon(exe, run, B.storcon_log);
    wait_for("storcon /ready", storcon_ready);
    wait_for("startup reconciles", reconciles_settled);
    if (atomic_load(&B.puts) != 0)
        printf("note: %zu location_config PUTs during startup\n", atomic_load(&B.puts));

    /* ---- the failover ---- */
    double conns_before = metric("storcon_http_client_connections_opened_total");
    uint64_t accepted_before = fakes_accepted();
    size_t puts_before = atomic_load(&B.puts);
    atomic_store(&B.dead, true);
    double t0 = pg_cluster_now_s();
    char path[64];
    str_printf(path, sizeof(path), "/control/v1/node/%d/config", BENCH_DEAD_NODE);
    char body[64];
    str_printf(body, sizeof(body), "{\"node_id\": %d, \"availability\": \"Offline\"}",
               BENCH_DEAD_NODE);
    if (http("PUT", path, body, NULL) != 200)
        die("marking node %d Offline failed", BENCH_DEAD_NODE);
    wait_for("every shard re-attached", all_reattached);
    double t_attached = (pg_cluster_now_s() - t0) * 1e3;
    wait_for("reconciles to settle", reconciles_settled);
    double t_settled = (pg_cluster_now_s() - t0) * 1e3;
    double conns_after = metric("storcon_http_client_connections_opened_total");
    uint64_t accepted = fakes_accepted() - accepted_before;
    size_t puts = atomic_load(&B.puts) - puts_before;

    PGconn *c = db_connect();
    long moved = db_count(c, "SELECT count(*) FROM tenant_shards WHERE generation = 2 AND "
                             "generation_pageserver IS DISTINCT FROM 1");
    PQfinish(c);
    kill(B.storcon, SIGTERM);
    waitpid(B.storcon, NULL, 0);
    B.storcon = 0;
    atomic_store(&B.stop, true);
    pthread_join(thread, NULL);

    /* ---- the baseline on the same database ---- */
    double t_base = baseline_ms();

    printf("failover of %zu shards (%zu tenants x %d) off node %d, %d nodes, real storcon daemon, "
           "fake pageservers\n",
           B.n_shards, B.n_tenants, BENCH_SHARDS_PER_TENANT, BENCH_DEAD_NODE, BENCH_NODES);
    printf("  every shard re-attached (new generation): %9.1f ms\n", t_attached);
    printf("  every reconcile done (+ new secondaries): %9.1f ms\n", t_settled);
    printf("  baseline: %zu single-row generation updates in one transaction: %9.1f ms\n",
           B.n_shards, t_base);
    printf("  ratio failover (re-attached) / baseline: %.2f\n", t_attached / t_base);
    printf("  ratio failover (all done) / baseline:    %.2f\n", t_settled / t_base);
    printf("  location_config PUTs received: %zu\n", puts);
    if (conns_before >= 0)
        printf("  TCP connections opened by storcon's HTTP client: %.0f\n",
               conns_after - conns_before);
    else
        printf("  TCP connections opened by storcon's HTTP client: n/a (no metric)\n");
    printf("  TCP connections accepted by the fake pageservers: %" PRIu64 "\n", accepted);
    printf("  shards in generation 2 on another node (database): %ld of %zu%s\n", moved, B.n_shards,
           (size_t)moved == B.n_shards ? "" : "  <-- MISMATCH");

    for (size_t k = 0; k < BENCH_NODES; k++) {
        http_server_free(B.fakes[k].srv);
        free(B.fakes[k].mode);
        free(B.fakes[k].gen);
    }
    event_base_free(B.base);
    metrics_registry_free(B.metrics);
    free(B.reattached_flag);
    cleanup();
    return (size_t)moved == B.n_shards ? 0 : 1;
}
