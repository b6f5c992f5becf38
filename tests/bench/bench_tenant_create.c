/*
 * bench_tenant_create.c: tenant creates through storcon's API (POST /v1/tenant) against
 * Postgres' own single-row INSERT commit rate on the same database.
 *
 * Starts real components: a throwaway Postgres 15 cluster with durable settings (fsync and
 * synchronous_commit on, as in production: a commit costs a WAL flush), storcon on it, and
 * BENCH_PAGESERVERS pageservers that register through storcon's upcalls. Then, for a fixed time
 * per case (default 3 s, first argument), with 1 and 16 concurrent clients:
 *
 *   - baseline: each client its own libpq connection, one INSERT of one row shaped like a
 *     tenant_shards row into a copy of the table (same columns, key and checks) per autocommit
 *     transaction;
 *   - create: each client its own keep-alive HTTP connection, POST /v1/tenant of a new tenant
 *     with 1 (unsharded) and 4 shards, placement {"Attached": 0}: the whole create, rows
 *     committed, scheduled, location_config on the pageservers, answered when the reconciles
 *     ended;
 *   - create-detached: the same with placement "Detached": rows committed and the operation, no
 *     pageserver work and nothing to wait for. The difference to "create" is what the reconcile
 *     wait costs.
 *
 * Prints each case's rate, mean latency and the ratio against the baseline with the same number
 * of clients, measured in the same run, and the CPU time per operation (from /proc/<pid>/stat at
 * the case's start and end) of the pageservers together, storcon, and Postgres (the postmaster,
 * its live children and the ones it reaped). Asserts nothing about time; exits non-zero only when
 * the setup fails or a create is answered with anything but 201.
 *
 * Usage: bench_tenant_create [seconds-per-case]   (from the build: build/bin/bench_tenant_create)
 * BENCH_KEEP=1 keeps the temporary directory (the daemons' logs) and prints where it is.
 * BENCH_ONLY=<kind>:<clients>:<shards> (kind create or detached, e.g. create:16:1) runs the
 * baselines and that one case, for profiling it.
 */
#include <dirent.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "shared/id.h"
#include "shared/str.h"
#include "tests/unit/pg_cluster.h"

#define BENCH_PAGESERVERS   3
#define BENCH_MAX_CLIENTS   16
#define BENCH_START_TIMEOUT 60.0
#define BENCH_HTTP_TIMEOUT  60L

static struct {
    PgCluster pg;
    char dir[64];
    char bin[PATH_MAX];
    char storcon_url[64];
    pid_t storcon;
    pid_t pageservers[BENCH_PAGESERVERS];
} B;

static void bench_cleanup(void)
{
    for (size_t i = 0; i < BENCH_PAGESERVERS; i++) {
        if (B.pageservers[i] > 0) {
            kill(B.pageservers[i], SIGTERM);
            waitpid(B.pageservers[i], NULL, 0);
            B.pageservers[i] = 0;
        }
    }
    if (B.storcon > 0) {
        kill(B.storcon, SIGTERM);
        waitpid(B.storcon, NULL, 0);
        B.storcon = 0;
    }
    pg_cluster_cleanup(&B.pg);
    const char *keep = getenv("BENCH_KEEP");
    if (B.dir[0] != '\0' && keep != NULL && strcmp(keep, "1") == 0) {
        fprintf(stderr, "bench: BENCH_KEEP=1: logs kept in %s\n", B.dir);
    } else if (B.dir[0] != '\0') {
        nftw(B.dir, pg_cluster_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        B.dir[0] = '\0';
    }
}

/* die: "bench: <what><detail>" to stderr, exit 1 (bench_cleanup runs from atexit). */
static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench: %s%s\n", what, detail);
    exit(1);
}

/* log_tail: print a daemon's log to stderr (the setup failed). */
static void log_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        fputs(line, stderr);
    if (f != NULL)
        fclose(f);
}

/* spawn_daemon: fork and exec argv with its output appended to log. */
static pid_t spawn_daemon(const char *const *argv, const char *log)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
    }
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

/* ---- HTTP ---- */

typedef struct Body {
    char buf[4096];
    size_t len;
} Body;

static size_t body_write(char *data, size_t size, size_t n, void *arg)
{
    Body *b = arg;
    size_t len = size * n;
    size_t room = sizeof(b->buf) - 1 - b->len;
    size_t take = len < room ? len : room;
    memcpy(b->buf + b->len, data, take);
    b->len += take;
    b->buf[b->len] = '\0';
    return len;
}

/* http_call: method path on storcon with a JSON body (NULL: a GET); the status (0: no answer). */
static long http_call(CURL *c, const char *method, const char *path, const char *json, Body *out)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", B.storcon_url, path);
    out->len = 0;
    out->buf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (json != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, BENCH_HTTP_TIMEOUT);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    return status;
}

/* ---- setup ---- */

static void start_cluster(void)
{
    const char *const settings[] = {"max_connections=100", NULL};
    if (!pg_cluster_start(&B.pg, settings, BENCH_START_TIMEOUT))
        die("cannot start Postgres", "");
    str_copy(B.dir, sizeof(B.dir), "/tmp/bench-tenant-create-XXXXXX");
    if (mkdtemp(B.dir) == NULL)
        die("mkdtemp: ", strerror(errno));

    char storcon_bin[PATH_MAX + 16], ps_bin[PATH_MAX + 16], listen[32], log[128];
    snprintf(storcon_bin, sizeof(storcon_bin), "%s/storcon", B.bin);
    snprintf(ps_bin, sizeof(ps_bin), "%s/pageserver", B.bin);
    int port = pg_cluster_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(B.storcon_url, sizeof(B.storcon_url), "http://%s", listen);
    snprintf(log, sizeof(log), "%s/storcon.log", B.dir);
    const char *const storcon[] = {storcon_bin, "--listen", listen, "--database-url",
                                   B.pg.url,    "--dev",    NULL};
    B.storcon = spawn_daemon(storcon, log);

    CURL *c = curl_easy_init();
    Body body;
    double deadline = pg_cluster_now_s() + BENCH_START_TIMEOUT;
    while (http_call(c, "GET", "/ready", NULL, &body) != 200) {
        if (pg_cluster_now_s() > deadline) {
            log_tail(log);
            die("storcon did not become ready; log: ", log);
        }
        pg_cluster_sleep_ms(100);
    }

    char upcall[96];
    snprintf(upcall, sizeof(upcall), "%s/upcall/v1/", B.storcon_url);
    for (size_t i = 0; i < BENCH_PAGESERVERS; i++) {
        char id[16], workdir[128], http[32], pg[32], remote[128], pslog[128];
        snprintf(id, sizeof(id), "%zu", i + 1);
        snprintf(workdir, sizeof(workdir), "%s/pageserver_%zu", B.dir, i + 1);
        snprintf(http, sizeof(http), "127.0.0.1:%d", pg_cluster_free_port());
        snprintf(pg, sizeof(pg), "127.0.0.1:%d", pg_cluster_free_port());
        snprintf(remote, sizeof(remote), "file://%s/remote_storage", B.dir);
        snprintf(pslog, sizeof(pslog), "%s/pageserver_%zu.log", B.dir, i + 1);
        mkdir(workdir, 0755);
        const char *const ps[] = {ps_bin, "--workdir",           workdir, "--id",
                                  id,     "--listen-http",       http,    "--listen-pg",
                                  pg,     "--remote-storage",    remote,  "--pg-bin-dir",
                                  PG_BIN, "--control-plane-api", upcall,  NULL};
        B.pageservers[i] = spawn_daemon(ps, pslog);
    }
    /* every node registered and Active */
    for (;;) {
        long st = http_call(c, "GET", "/control/v1/node", NULL, &body);
        size_t active = 0;
        for (const char *p = body.buf; st == 200 && (p = strstr(p, "\"Active\"")) != NULL; p++)
            active++;
        /* each node shows "Active" as its availability and as its scheduling policy */
        if (active >= 2 * BENCH_PAGESERVERS)
            break;
        if (pg_cluster_now_s() > deadline)
            die("the pageservers did not become Active", "");
        pg_cluster_sleep_ms(100);
    }
    curl_easy_cleanup(c);
}

/* ---- CPU per operation ---- */

/* proc_cpu_ticks: utime + stime of pid (with children: + cutime + cstime, the reaped ones), and
 * its parent; 0 when it is gone. */
static unsigned long long proc_cpu_ticks(pid_t pid, bool children, pid_t *ppid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* after the command name (which may hold spaces): state ppid ... field 14 utime */
    const char *p = strrchr(buf, ')');
    unsigned long long v[4] = {0};
    int parent = 0;
    if (p == NULL ||
        sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &parent,
               &v[0], &v[1], &v[2], &v[3]) != 5)
        return 0;
    if (ppid != NULL)
        *ppid = parent;
    return v[0] + v[1] + (children ? v[2] + v[3] : 0);
}

typedef struct CpuSample {
    unsigned long long pageservers, storcon, postgres; /* clock ticks */
} CpuSample;

/* cpu_sample: the pageservers, storcon, and Postgres: the postmaster with its reaped children
 * (backends that ended) and its live children (backends, walwriter, checkpointer...). */
static CpuSample cpu_sample(void)
{
    CpuSample s = {0};
    for (size_t i = 0; i < BENCH_PAGESERVERS; i++)
        s.pageservers += proc_cpu_ticks(B.pageservers[i], false, NULL);
    s.storcon = proc_cpu_ticks(B.storcon, false, NULL);
    pid_t pm = pg_cluster_postmaster_pid(&B.pg);
    if (pm <= 0)
        return s;
    s.postgres = proc_cpu_ticks(pm, true, NULL);
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        char *end = NULL;
        long pid = strtol(de->d_name, &end, 10);
        pid_t parent = 0;
        if (*end != '\0' || pid <= 0)
            continue;
        unsigned long long t = proc_cpu_ticks((pid_t)pid, false, &parent);
        if (parent == pm)
            s.postgres += t;
    }
    if (d != NULL)
        closedir(d);
    return s;
}

/* ---- the load ---- */

typedef enum Kind { KIND_BASELINE, KIND_CREATE, KIND_CREATE_DETACHED } Kind;

typedef struct Case {
    Kind kind;
    int clients;
    int shards; /* creates: 0 = unsharded */
    double seconds;
    atomic_bool stop;
    atomic_long done;
    atomic_long failed;
    atomic_llong latency_us; /* sum over done */
    char first_error[512];
    pthread_mutex_t lock;
    CpuSample cpu; /* used during the case */
} Case;

static double now_us(void)
{
    return pg_cluster_now_s() * 1e6;
}

static void case_error(Case *k, const char *msg)
{
    atomic_fetch_add(&k->failed, 1);
    pthread_mutex_lock(&k->lock);
    if (k->first_error[0] == '\0')
        str_copy(k->first_error, sizeof(k->first_error), msg);
    pthread_mutex_unlock(&k->lock);
}

/* Same columns, key, defaults and checks as tenant_shards: a comparable row. */
static const char SQL_BASELINE_TABLE[] =
    "CREATE TABLE IF NOT EXISTS bench_tenant_shards (LIKE tenant_shards INCLUDING ALL)";
static const char SQL_BASELINE_INSERT[] =
    "INSERT INTO bench_tenant_shards (tenant_id, shard_number, shard_count, shard_stripe_size, "
    "generation, generation_pageserver, placement_policy, splitting, config, scheduling_policy, "
    "preferred_az_id) VALUES ($1, 0, 0, 2048, 0, NULL, '{\"Attached\":0}', 0, '{}', "
    "'\"Active\"', NULL)";

static void *baseline_client(void *arg)
{
    Case *k = arg;
    PGconn *conn = PQconnectdb(B.pg.url);
    if (PQstatus(conn) != CONNECTION_OK) {
        case_error(k, PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    while (!atomic_load(&k->stop)) {
        TenantId t;
        char id[ID_STR_SIZE];
        tenant_id_generate(&t);
        tenant_id_format(&t, id);
        const char *params[] = {id};
        double t0 = now_us();
        PGresult *r = PQexecParams(conn, SQL_BASELINE_INSERT, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            atomic_fetch_add(&k->done, 1);
            atomic_fetch_add(&k->latency_us, (long long)(now_us() - t0));
        } else {
            case_error(k, PQresultErrorMessage(r));
        }
        PQclear(r);
    }
    PQfinish(conn);
    return NULL;
}

static void *create_client(void *arg)
{
    Case *k = arg;
    CURL *c = curl_easy_init();
    Body body;
    while (!atomic_load(&k->stop)) {
        TenantId t;
        char id[ID_STR_SIZE], json[256];
        tenant_id_generate(&t);
        tenant_id_format(&t, id);
        snprintf(json, sizeof(json),
                 "{\"new_tenant_id\": \"%s\", \"shard_parameters\": {\"count\": %d}, "
                 "\"placement_policy\": %s}",
                 id, k->shards, k->kind == KIND_CREATE ? "{\"Attached\": 0}" : "\"Detached\"");
        double t0 = now_us();
        long st = http_call(c, "POST", "/v1/tenant", json, &body);
        if (st == 201) {
            atomic_fetch_add(&k->done, 1);
            atomic_fetch_add(&k->latency_us, (long long)(now_us() - t0));
        } else {
            char msg[512];
            (void)str_printf(msg, sizeof(msg), "POST /v1/tenant: %ld %.400s", st, body.buf);
            case_error(k, msg);
        }
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* run_case: the case's clients for k->seconds; returns completions per second. */
static double run_case(Case *k)
{
    pthread_t th[BENCH_MAX_CLIENTS];
    atomic_store(&k->stop, false);
    atomic_store(&k->done, 0);
    atomic_store(&k->failed, 0);
    atomic_store(&k->latency_us, 0);
    k->first_error[0] = '\0';
    pthread_mutex_init(&k->lock, NULL);
    CpuSample c0 = cpu_sample();
    double t0 = pg_cluster_now_s();
    for (int i = 0; i < k->clients; i++)
        pthread_create(&th[i], NULL, k->kind == KIND_BASELINE ? baseline_client : create_client, k);
    pg_cluster_sleep_ms((long)(k->seconds * 1000));
    atomic_store(&k->stop, true);
    for (int i = 0; i < k->clients; i++)
        pthread_join(th[i], NULL);
    double elapsed = pg_cluster_now_s() - t0;
    CpuSample c1 = cpu_sample();
    k->cpu = (CpuSample){.pageservers = c1.pageservers - c0.pageservers,
                         .storcon = c1.storcon - c0.storcon,
                         .postgres = c1.postgres - c0.postgres};
    pthread_mutex_destroy(&k->lock);
    return (double)atomic_load(&k->done) / elapsed;
}

/* print_cpu: the case's CPU per completed operation, in microseconds, of the pageservers
 * together, storcon and Postgres (ends the line). */
static void print_cpu(const Case *k)
{
    long done = atomic_load(&k->done);
    double per = done > 0 ? 1e6 / (double)sysconf(_SC_CLK_TCK) / (double)done : 0.0;
    printf(" %8.0f %8.0f %8.0f\n", (double)k->cpu.pageservers * per, (double)k->cpu.storcon * per,
           (double)k->cpu.postgres * per);
}

int main(int argc, char **argv)
{
    double seconds = 3.0;
    if (argc > 1) {
        char *end = NULL;
        seconds = strtod(argv[1], &end);
        if (end == argv[1] || seconds <= 0 || seconds > 600)
            die("bad seconds-per-case: ", argv[1]);
    }
    const char *only = getenv("BENCH_ONLY");
    if (only != NULL && only[0] != '\0') {
        char kind[16];
        int cl = 0, sh = 0;
        if (sscanf(only, "%15[a-z]:%d:%d", kind, &cl, &sh) != 3 ||
            (strcmp(kind, "create") != 0 && strcmp(kind, "detached") != 0) ||
            (cl != 1 && cl != 16) || (sh != 1 && sh != 4))
            die("BENCH_ONLY: want create|detached:1|16:1|4, not ", only);
    }
    if (!pg_cluster_available())
        die("Postgres 15 binaries not found in ", PG_BIN);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        die("cannot find my own path", "");
    self[n] = '\0';
    str_copy(B.bin, sizeof(B.bin), dirname(self));
    atexit(bench_cleanup);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    start_cluster();

    PGconn *conn = PQconnectdb(B.pg.url);
    PGresult *r = PQexec(conn, SQL_BASELINE_TABLE);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("baseline table: ", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(conn);

    printf("bench_tenant_create: %.1f s per case, %d pageservers, Postgres with fsync on\n",
           seconds, BENCH_PAGESERVERS);
    printf("CPU per operation in microseconds: ps = the pageservers together, sc = storcon, pg = "
           "Postgres\n");
    printf("%-34s %8s %7s %10s %9s %7s %8s %8s %8s\n", "case", "clients", "shards", "per second",
           "mean ms", "ratio", "ps us", "sc us", "pg us");
    static const int clients[] = {1, 16};
    double baseline[2];
    int failures = 0;
    for (size_t c = 0; c < 2; c++) {
        Case k = {.kind = KIND_BASELINE, .clients = clients[c], .seconds = seconds};
        baseline[c] = run_case(&k);
        long done = atomic_load(&k.done);
        printf("%-34s %8d %7s %10.0f %9.3f %7s", "baseline: INSERT one row + commit", clients[c],
               "-", baseline[c],
               done > 0 ? (double)atomic_load(&k.latency_us) / (double)done / 1e3 : 0.0, "1.00");
        print_cpu(&k);
        if (atomic_load(&k.failed) > 0) {
            printf("  %ld failed: %s\n", atomic_load(&k.failed), k.first_error);
            failures++;
        }
    }
    static const struct {
        Kind kind;
        const char *name;
    } kinds[] = {{KIND_CREATE, "create: POST /v1/tenant"},
                 {KIND_CREATE_DETACHED, "create-detached: rows only"}};
    static const int shards[] = {0, 4};
    for (size_t v = 0; v < 2; v++) {
        for (size_t s = 0; s < 2; s++) {
            for (size_t c = 0; c < 2; c++) {
                char name[48];
                snprintf(name, sizeof(name), "%s:%d:%d", v == 0 ? "create" : "detached", clients[c],
                         shards[s] > 0 ? shards[s] : 1);
                if (only != NULL && only[0] != '\0' && strcmp(only, name) != 0)
                    continue;
                Case k = {.kind = kinds[v].kind,
                          .clients = clients[c],
                          .shards = shards[s],
                          .seconds = seconds};
                double rate = run_case(&k);
                long done = atomic_load(&k.done);
                printf("%-34s %8d %7d %10.0f %9.3f %7.2f", kinds[v].name, clients[c],
                       shards[s] > 0 ? shards[s] : 1, rate,
                       done > 0 ? (double)atomic_load(&k.latency_us) / (double)done / 1e3 : 0.0,
                       baseline[c] > 0 ? rate / baseline[c] : 0.0);
                print_cpu(&k);
                if (atomic_load(&k.failed) > 0) {
                    printf("  %ld failed: %s\n", atomic_load(&k.failed), k.first_error);
                    failures++;
                }
                fflush(stdout);
            }
        }
    }
    curl_global_cleanup();
    return failures > 0 ? 1 : 0;
}
