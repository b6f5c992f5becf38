/*
 * bench_storcon_restart.c: a controller restart with 100,000 shards (25,000 tenants x 4 over 10
 * nodes), from process start to GET /ready answering 200, against a baseline measured in the same
 * run: the time psql takes to read the same tenant_shards table.
 *
 * Set up, with real components where they matter:
 *   - a throwaway Postgres 15 (tests/unit/pg_cluster.h), the schema applied by the storcon binary
 *     itself (--migrate-to), nodes and shards bulk-loaded with COPY;
 *   - 10 fake pageservers in this process (one libevent thread) answering GET /v1/location_config
 *     from a prepared JSON listing of their shards (the pageserver's own form, every shard
 *     AttachedSingle in generation 1: nothing to reconcile) and GET /v1/utilization;
 *   - a fake control plane counting PUT /notify-attach (200 to each).
 * Then the real storcon binary is started twice on that database: the first start finds no
 * record of what the control plane accepted and notifies every tenant; the second (the figure
 * the target is about) should notify none.
 *
 * Prints, asserts nothing:
 *   - psql -c 'select * from tenant_shards' (best of 3, output discarded);
 *   - start-to-ready of each start and its ratio to psql; the notifications each start sent;
 *   - decoding one node's listing with the tree decoder (json_loadb + location_list_from_json)
 *     and with the scanner (location_list_scan), best of 3 each.
 *
 * Usage: bench_storcon_restart [--tenants N] [--storcon PATH] [--schema N]
 *   --storcon  the storcon binary to start (default: the one next to this program), e.g. a
 *              build of an older revision to compare;
 *   --schema   the schema version to migrate to (default: the latest this tree knows; an older
 *              binary refuses a newer schema).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "tests/unit/pg_cluster.h"
#include "shared/err.h"
#include "shared/id.h"
#include "shared/str.h"
#include "storcon/location_list.h"
#include "storcon/migrations.h"
#include "storcon/placement.h"

#define BENCH_NODES             10
#define BENCH_SHARDS_PER_TENANT 4
#define BENCH_STRIPE            32768
#define BENCH_SETTLE_MS         10000 /* notifications unchanged this long: settled */
#define BENCH_SETTLE_MAX_MS     120000
#define BENCH_READY_MAX_MS      300000

/* What the pageserver echoes as tenant_conf: a realistic override set. */
static const char TENANT_CONF[] =
    "{\"checkpoint_distance\":268435456,\"checkpoint_timeout\":\"10m\","
    "\"compaction_target_size\":134217728,\"compaction_period\":\"20s\","
    "\"compaction_threshold\":10,\"gc_horizon\":67108864,\"gc_period\":\"1h\","
    "\"image_creation_threshold\":3,\"pitr_interval\":\"7 days\","
    "\"walreceiver_connect_timeout\":\"10s\"}";

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *fmt, const char *detail)
{
    fprintf(stderr, "bench: %s: %s\n", fmt, detail != NULL ? detail : "");
    exit(1);
}

/* ---- the fake pageservers and control plane (one libevent thread) ---- */

typedef struct FakeNode {
    int port;
    StrBuf listing; /* GET /v1/location_config */
} FakeNode;

static struct {
    struct event_base *base;
    FakeNode nodes[BENCH_NODES];
    int cp_port;
    atomic_long notifications;
    pthread_t thread;
} FAKE;

static void reply(struct evhttp_request *req, int status, const char *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_reference(b, body, len, NULL, NULL);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Not Found", b);
    evbuffer_free(b);
}

static void pageserver_cb(struct evhttp_request *req, void *arg)
{
    FakeNode *n = arg;
    static const char UTIL[] = "{\"utilization_score\":1000,\"disk_usage_bytes\":0,"
                               "\"free_space_bytes\":1000000000,\"shard_count\":10000}";
    const char *uri = evhttp_request_get_uri(req);
    if (strcmp(uri, "/v1/location_config") == 0)
        reply(req, 200, n->listing.data, n->listing.len);
    else if (strcmp(uri, "/v1/utilization") == 0)
        reply(req, 200, UTIL, sizeof(UTIL) - 1);
    else
        reply(req, 404, "{\"msg\":\"not in this fake\"}", 26);
}

static void control_plane_cb(struct evhttp_request *req, void *arg)
{
    if (strcmp(evhttp_request_get_uri(req), "/notify-attach") == 0)
        atomic_fetch_add(&FAKE.notifications, 1);
    reply(req, 200, "{}", 2);
}

static struct evhttp *listen_on(struct event_base *base, int *port,
                                void (*cb)(struct evhttp_request *, void *), void *arg)
{
    struct evhttp *h = evhttp_new(base);
    struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(h, "127.0.0.1", 0);
    if (s == NULL)
        die("bind", "127.0.0.1:0");
    evutil_socket_t fd = evhttp_bound_socket_get_fd(s);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    evhttp_set_gencb(h, cb, arg);
    evhttp_set_max_body_size(h, 1 << 20);
    return h;
}

static void *fake_thread(void *arg)
{
    event_base_loop(FAKE.base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* ---- data ---- */

static void tenant_id_of(size_t i, TenantId *id)
{
    memset(id, 0, sizeof(*id));
    uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ull + 1;
    memcpy(id->b, &x, sizeof(x));
    uint64_t y = (uint64_t)i;
    memcpy(id->b + 8, &y, sizeof(y));
}

static NodeId node_of(size_t tenant, unsigned shard)
{
    return (NodeId)((tenant * BENCH_SHARDS_PER_TENANT + shard) % BENCH_NODES) + 1;
}

static void copy_rows(PGconn *c, const char *copy_sql, const StrBuf *rows)
{
    PGresult *r = PQexec(c, copy_sql);
    if (PQresultStatus(r) != PGRES_COPY_IN)
        die("COPY", PQerrorMessage(c));
    PQclear(r);
    if (PQputCopyData(c, rows->data, (int)rows->len) != 1 || PQputCopyEnd(c, NULL) != 1)
        die("COPY data", PQerrorMessage(c));
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("COPY end", PQerrorMessage(c));
    PQclear(r);
}

/* load: nodes and shards with COPY; the listings of the fake pageservers from the same data. */
static void load(const char *url, size_t tenants)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        die("connect", PQerrorMessage(c));
    StrBuf rows = STRBUF_INIT;
    for (int i = 0; i < BENCH_NODES; i++)
        strbuf_printf(&rows, "%d\tActive\t127.0.0.1\t%d\t127.0.0.1\t%d\taz-%d\n", i + 1,
                      FAKE.nodes[i].port, 6400 + i, i % 3);
    copy_rows(c,
              "COPY nodes (node_id, scheduling_policy, listen_http_addr, listen_http_port, "
              "listen_pg_addr, listen_pg_port, availability_zone_id) FROM STDIN",
              &rows);
    strbuf_reset(&rows);
    char policy[PLACEMENT_POLICY_TEXT_SIZE];
    placement_policy_format_text((PlacementPolicy){PLACEMENT_ATTACHED, 0}, policy);
    for (int i = 0; i < BENCH_NODES; i++)
        strbuf_printf(&FAKE.nodes[i].listing, "{\"tenant_shards\":[");
    for (size_t t = 0; t < tenants; t++) {
        TenantId id;
        tenant_id_of(t, &id);
        char hex[ID_STR_SIZE];
        tenant_id_format(&id, hex);
        for (unsigned k = 0; k < BENCH_SHARDS_PER_TENANT; k++) {
            NodeId node = node_of(t, k);
            strbuf_printf(&rows, "%s\t%u\t%u\t%u\t1\t%llu\t%s\n", hex, k, BENCH_SHARDS_PER_TENANT,
                          BENCH_STRIPE, (unsigned long long)node, policy);
            StrBuf *l = &FAKE.nodes[node - 1].listing;
            strbuf_printf(l,
                          "%s[\"%s-%02x%02x\",{\"mode\":\"AttachedSingle\",\"generation\":1,"
                          "\"secondary_conf\":null,\"shard_number\":%u,\"shard_count\":%u,"
                          "\"shard_stripe_size\":%u,\"tenant_conf\":%s}]",
                          l->data[l->len - 1] == '[' ? "" : ",", hex, k, BENCH_SHARDS_PER_TENANT, k,
                          BENCH_SHARDS_PER_TENANT, BENCH_STRIPE, TENANT_CONF);
        }
    }
    for (int i = 0; i < BENCH_NODES; i++)
        strbuf_printf(&FAKE.nodes[i].listing, "]}");
    copy_rows(c,
              "COPY tenant_shards (tenant_id, shard_number, shard_count, shard_stripe_size, "
              "generation, generation_pageserver, placement_policy) FROM STDIN",
              &rows);
    strbuf_finish(&rows);
    PGresult *r = PQexec(c, "VACUUM ANALYZE");
    PQclear(r);
    PQfinish(c);
}

/* ---- processes ---- */

static pid_t spawn(const char *const *argv, const char *log_path)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
    }
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

static int wait_exit(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static size_t discard_cb(char *p, size_t size, size_t n, void *arg)
{
    StrBuf *b = arg;
    if (b != NULL)
        strbuf_append(b, p, size * n);
    return size * n;
}

/* http_get: the status of GET url (0: no answer); the body into body when given. */
static long http_get(const char *url, StrBuf *body)
{
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

/* metric: the value of a metric line "name value" in storcon's /metrics, -1 if absent. */
static double metric(const char *base_url, const char *name)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/metrics", base_url);
    StrBuf b = STRBUF_INIT;
    double v = -1;
    if (http_get(url, &b) == 200 && b.data != NULL) {
        size_t n = strlen(name);
        for (const char *p = b.data; p != NULL && *p;
             p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
            if (strncmp(p, name, n) == 0 && p[n] == ' ') {
                v = strtod(p + n + 1, NULL);
                break;
            }
        }
    }
    strbuf_finish(&b);
    return v;
}

typedef struct StartFigures {
    double ready_ms;
    long notifications;
} StartFigures;

/* start_once: start storcon, time it to /ready, wait until its work settled (no reconcile
 * pending and the notification count unchanged for BENCH_SETTLE_MS), stop it with SIGTERM. */
static StartFigures start_once(const char *storcon, const char *db_url, const char *log_path,
                               uint64_t tenants)
{
    int port = pg_cluster_free_port();
    char listen[64], base_url[96], cp_url[96], ready_url[128];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(base_url, sizeof(base_url), "http://%s", listen);
    snprintf(cp_url, sizeof(cp_url), "http://127.0.0.1:%d", FAKE.cp_port);
    snprintf(ready_url, sizeof(ready_url), "%s/ready", base_url);
    const char *const argv[] = {storcon,
                                "--listen",
                                listen,
                                "--database-url",
                                db_url,
                                "--dev",
                                "--control-plane-url",
                                cp_url,
                                "--log-level",
                                getenv("BENCH_LOG_LEVEL") ? getenv("BENCH_LOG_LEVEL") : "warn",
                                NULL};
    long before = atomic_load(&FAKE.notifications);
    double t0 = now_ms();
    pid_t pid = spawn(argv, log_path);
    StartFigures f = {0};
    while (http_get(ready_url, NULL) != 200) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            die("storcon exited before it was ready; log", log_path);
        if (now_ms() - t0 > BENCH_READY_MAX_MS)
            die("storcon not ready in time; log", log_path);
        pg_cluster_sleep_ms(2);
    }
    f.ready_ms = now_ms() - t0;
    /* settled: every tenant's notification was sent or found unnecessary (the compute hook's
     * counters) and no reconcile is pending; or, for a binary without those counters, nothing
     * changed for BENCH_SETTLE_MS */
    long last = atomic_load(&FAKE.notifications);
    double since = now_ms();
    double settle_start = now_ms();
    for (;;) {
        pg_cluster_sleep_ms(200);
        long cur = atomic_load(&FAKE.notifications);
        double pending = metric(base_url, "storcon_reconciles_pending");
        double handled = metric(base_url, "compute_notifications_sent_total") +
                         metric(base_url, "compute_notifications_deduplicated_total");
        if (cur != last || pending > 0) {
            last = cur;
            since = now_ms();
        }
        if (pending <= 0 && handled >= (double)tenants)
            break;
        if (now_ms() - since >= BENCH_SETTLE_MS || now_ms() - settle_start > BENCH_SETTLE_MAX_MS)
            break;
    }
    pg_cluster_sleep_ms(500);
    last = atomic_load(&FAKE.notifications);
    f.notifications = last - before;
    kill(pid, SIGTERM);
    int rc = wait_exit(pid);
    if (rc != 0)
        fprintf(stderr, "bench: storcon exited %d on SIGTERM (log %s)\n", rc, log_path);
    return f;
}

/* psql_ms: psql -c 'select * from tenant_shards', output discarded, best of 3. */
static double psql_ms(const char *db_url, const char *log_path)
{
    double best = 1e30;
    for (int i = 0; i < 3; i++) {
        const char *const argv[] = {PG_BIN "/psql",
                                    "-X",
                                    "-q",
                                    "-d",
                                    db_url,
                                    "-o",
                                    "/dev/null",
                                    "-c",
                                    "select * from tenant_shards",
                                    NULL};
        double t0 = now_ms();
        pid_t pid = spawn(argv, log_path);
        if (wait_exit(pid) != 0)
            die("psql failed; log", log_path);
        double t = now_ms() - t0;
        if (t < best)
            best = t;
    }
    return best;
}

/* decode_figures: one node's listing, tree vs scanner, best of 3 each. */
static void decode_figures(const StrBuf *listing)
{
    double best_tree = 1e30, best_scan = 1e30;
    size_t n_tree = 0, n_scan = 0;
    for (int r = 0; r < 3; r++) {
        Err err;
        double t0 = now_ms();
        json_error_t jerr;
        json_t *doc = json_loadb(listing->data, listing->len, 0, &jerr);
        LocationList tree;
        if (doc == NULL || !location_list_from_json(doc, &tree, &err))
            die("tree decode", doc == NULL ? jerr.text : err.msg);
        json_decref(doc);
        double t = now_ms() - t0;
        best_tree = t < best_tree ? t : best_tree;
        n_tree = tree.n;
        t0 = now_ms();
        LocationList scan;
        if (!location_list_scan(listing->data, listing->len, &scan, &err))
            die("scan", err.msg);
        t = now_ms() - t0;
        best_scan = t < best_scan ? t : best_scan;
        n_scan = scan.n;
        if (!location_list_equal(&tree, &scan))
            die("decoders", "differ");
        location_list_finish(&tree);
        location_list_finish(&scan);
    }
    printf("decode one listing (%.1f MB, %zu shards): tree %.1f ms, scanner %.1f ms (%.1fx "
           "faster), best of 3\n",
           (double)listing->len / 1e6, n_scan, best_tree, best_scan, best_tree / best_scan);
    (void)n_tree;
}

int main(int argc, char **argv)
{
    uint64_t tenants = 25000;
    uint64_t schema = (uint64_t)MIGRATIONS_COUNT;
    char storcon[4096] = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tenants") == 0 && i + 1 < argc &&
            parse_u64(argv[i + 1], 1, 1000000, &tenants)) {
            i++;
        } else if (strcmp(argv[i], "--schema") == 0 && i + 1 < argc &&
                   parse_u64(argv[i + 1], 1, 1000, &schema)) {
            i++;
        } else if (strcmp(argv[i], "--storcon") == 0 && i + 1 < argc) {
            str_copy(storcon, sizeof(storcon), argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--tenants N] [--storcon PATH] [--schema N]\n", argv[0]);
            return 2;
        }
    }
    if (storcon[0] == '\0') {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
            die("readlink", strerror(errno));
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        *slash = '\0';
        if (!str_printf(storcon, sizeof(storcon), "%s/storcon", self))
            die("path too long", self);
    }
    if (!pg_cluster_available())
        die("Postgres 15 binaries not found in", PG_BIN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads(); /* the fake servers' loop is stopped from this thread */

    PgCluster pg;
    const char *const settings[] = {PG_CLUSTER_FAST_SETTINGS, NULL};
    if (!pg_cluster_start(&pg, settings, 60)) {
        pg_cluster_cleanup(&pg);
        return 1;
    }
    char log_path[192];
    snprintf(log_path, sizeof(log_path), "%s/bench.log",
             getenv("BENCH_LOG_DIR") ? getenv("BENCH_LOG_DIR") : pg.root);

    /* the schema, by the binary under test */
    char target[16];
    snprintf(target, sizeof(target), "%llu", (unsigned long long)schema);
    const char *const migrate[] = {storcon,        "--database-url", pg.url, "--dev",
                                   "--migrate-to", target,           NULL};
    if (wait_exit(spawn(migrate, log_path)) != 0) {
        pg_cluster_cleanup(&pg);
        die("storcon --migrate-to failed; log", log_path);
    }

    FAKE.base = event_base_new();
    for (int i = 0; i < BENCH_NODES; i++) {
        strbuf_init(&FAKE.nodes[i].listing);
        (void)listen_on(FAKE.base, &FAKE.nodes[i].port, pageserver_cb, &FAKE.nodes[i]);
    }
    (void)listen_on(FAKE.base, &FAKE.cp_port, control_plane_cb, NULL);
    double t0 = now_ms();
    load(pg.url, (size_t)tenants);
    double t_load = now_ms() - t0;
    size_t listing_bytes = 0;
    for (int i = 0; i < BENCH_NODES; i++)
        listing_bytes += FAKE.nodes[i].listing.len;
    pthread_create(&FAKE.thread, NULL, fake_thread, NULL);

    printf("shards: %llu (%llu tenants x %d) on %d fake pageservers; listings %.1f MB in all; "
           "bulk load %.0f ms\n",
           (unsigned long long)tenants * BENCH_SHARDS_PER_TENANT, (unsigned long long)tenants,
           BENCH_SHARDS_PER_TENANT, BENCH_NODES, (double)listing_bytes / 1e6, t_load);
    printf("storcon: %s\n", storcon);
    fflush(stdout);

    double base_ms = psql_ms(pg.url, log_path);
    printf("baseline: psql -c 'select * from tenant_shards': %.0f ms (best of 3)\n", base_ms);
    fflush(stdout);
    StartFigures first = start_once(storcon, pg.url, log_path, tenants);
    printf("start 1 (no record of accepted notifications yet): ready in %.0f ms = %.2fx psql; "
           "%ld notifications\n",
           first.ready_ms, first.ready_ms / base_ms, first.notifications);
    fflush(stdout);
    StartFigures second = start_once(storcon, pg.url, log_path, tenants);
    double base2 = psql_ms(pg.url, log_path);
    double base_best = base2 < base_ms ? base2 : base_ms;
    printf("start 2 (restart, maps unchanged): ready in %.0f ms = %.2fx psql (psql again: %.0f "
           "ms; ratio to the best psql %.2fx); %ld notifications (expected 0)\n",
           second.ready_ms, second.ready_ms / base_ms, base2, second.ready_ms / base_best,
           second.notifications);
    decode_figures(&FAKE.nodes[0].listing);

    event_base_loopbreak(FAKE.base);
    pthread_join(FAKE.thread, NULL);
    for (int i = 0; i < BENCH_NODES; i++)
        strbuf_finish(&FAKE.nodes[i].listing);
    pg_cluster_cleanup(&pg);
    curl_global_cleanup();
    return 0;
}
