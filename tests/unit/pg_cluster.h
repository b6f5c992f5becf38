/*
 * pg_cluster.h: a throwaway Postgres 15 cluster for C tests and benchmarks (the unit tests of the
 * persistence layer; bench_tenant_create, bench_failover and bench_storcon_restart in tests/bench).
 *
 * pg_cluster_start runs initdb into a mkdtemp directory under /tmp (owned by the postgres user,
 * through runuser, when we are root: Postgres refuses to run as root), starts the postmaster on a
 * free loopback port with the caller's settings and waits until it accepts connections.
 * pg_cluster_cleanup stops it by its pid (fast shutdown, SIGKILL if it lingers) and removes the
 * directory; it is safe to call twice, e.g. from an atexit handler. Header-only (static functions)
 * because every test is its own executable.
 */
#ifndef TESTS_UNIT_PG_CLUSTER_H
#define TESTS_UNIT_PG_CLUSTER_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <libpq-fe.h>

#ifndef PG_BIN
#define PG_BIN "/usr/lib/postgresql/15/bin"
#endif
#define PG_CLUSTER_RUNUSER "/usr/sbin/runuser"

typedef struct PgCluster {
    char root[64];
    char datadir[128];
    char log_path[128];
    pid_t child; /* what we forked: the postmaster, or runuser running it */
    int port;
    char url[128];
} PgCluster;

/* Settings of a cluster whose durability does not matter (unit tests): no fsync. */
#define PG_CLUSTER_FAST_SETTINGS                                                                   \
    "fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=60"

static inline double pg_cluster_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void pg_cluster_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* pg_cluster_available: the Postgres binaries (and runuser when root) are there. */
static inline bool pg_cluster_available(void)
{
    return access(PG_BIN "/postgres", X_OK) == 0 && access(PG_BIN "/initdb", X_OK) == 0 &&
           (geteuid() != 0 || access(PG_CLUSTER_RUNUSER, X_OK) == 0);
}

/* pg_cluster_free_port: a loopback port nobody listens on right now, or -1. */
static inline int pg_cluster_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* pg_cluster_spawn: fork and exec argv (through runuser as postgres when root), output appended
 * to the cluster log. Returns the child pid or -1. */
static inline pid_t pg_cluster_spawn(const PgCluster *pg, const char *const *argv)
{
    const char *full[64];
    size_t n = 0;
    if (geteuid() == 0) {
        full[n++] = PG_CLUSTER_RUNUSER;
        full[n++] = "-u";
        full[n++] = "postgres";
        full[n++] = "--";
    }
    for (size_t i = 0; argv[i] != NULL && n < 63; i++)
        full[n++] = argv[i];
    full[n] = NULL;
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = open(pg->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int null_fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
    }
    if (null_fd >= 0)
        dup2(null_fd, STDIN_FILENO);
    setsid();
    execv(full[0], (char *const *)full);
    _exit(127);
}

/* pg_cluster_log_tail: print the cluster log to `out` (after a failure). */
static inline void pg_cluster_log_tail(const PgCluster *pg, FILE *out)
{
    FILE *f = fopen(pg->log_path, "r");
    if (f == NULL)
        return;
    char line[512];
    fprintf(out, "---- %s ----\n", pg->log_path);
    while (fgets(line, sizeof(line), f) != NULL)
        fputs(line, out);
    fclose(f);
}

/* pg_cluster_postmaster_pid: the first line of postmaster.pid, or -1. */
static inline pid_t pg_cluster_postmaster_pid(const PgCluster *pg)
{
    char path[192];
    snprintf(path, sizeof(path), "%s/postmaster.pid", pg->datadir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[32] = "";
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    char *end = NULL;
    long pid = got ? strtol(line, &end, 10) : -1;
    if (!got || end == line || pid <= 0 || pid > INT32_MAX)
        return -1;
    return (pid_t)pid;
}

/* pg_cluster_stop: fast shutdown (SIGINT) of the postmaster by its pid, SIGKILL if it lingers;
 * then reap the child we forked. Safe to call twice. */
static inline void pg_cluster_stop(PgCluster *pg)
{
    if (pg->child <= 0)
        return;
    pid_t pm = pg_cluster_postmaster_pid(pg);
    pid_t target = pm > 0 ? pm : pg->child;
    kill(target, SIGINT);
    double deadline = pg_cluster_now_s() + 20.0;
    bool exited = false;
    while (!exited && pg_cluster_now_s() < deadline) {
        int status;
        pid_t r = waitpid(pg->child, &status, WNOHANG);
        exited = r == pg->child || (r < 0 && errno == ECHILD);
        if (!exited)
            pg_cluster_sleep_ms(50);
    }
    if (!exited) {
        kill(target, SIGKILL);
        if (target != pg->child)
            kill(pg->child, SIGKILL);
        waitpid(pg->child, NULL, 0);
    }
    pg->child = 0;
}

static inline int pg_cluster_remove_entry(const char *path, const struct stat *sb, int flag,
                                          struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* pg_cluster_cleanup: stop the cluster and remove its directory. Safe to call twice. */
static inline void pg_cluster_cleanup(PgCluster *pg)
{
    pg_cluster_stop(pg);
    if (pg->root[0] != '\0') {
        nftw(pg->root, pg_cluster_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        pg->root[0] = '\0';
    }
}

/* pg_cluster_start: initdb and start a cluster with `settings` ("name=value" each, NULL
 * terminated, at most 16) and wait until it accepts connections (at most timeout_s). false after
 * printing why to stderr (the log tail when Postgres itself failed); the caller still runs
 * pg_cluster_cleanup. */
static inline bool pg_cluster_start(PgCluster *pg, const char *const *settings, double timeout_s)
{
    memset(pg, 0, sizeof(*pg));
    snprintf(pg->root, sizeof(pg->root), "/tmp/storcon-pg-XXXXXX");
    if (mkdtemp(pg->root) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        pg->root[0] = '\0';
        return false;
    }
    chmod(pg->root, 0755);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL || chown(pg->root, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "cannot hand %s to the postgres user\n", pg->root);
            return false;
        }
    }
    snprintf(pg->datadir, sizeof(pg->datadir), "%s/data", pg->root);
    snprintf(pg->log_path, sizeof(pg->log_path), "%s/postgres.log", pg->root);

    const char *const initdb[] = {
        PG_BIN "/initdb", "-D", pg->datadir, "--auth=trust", "-U", "postgres",
        "--no-sync",      "-E", "UTF8",      "--locale=C",   NULL};
    pid_t pid = pg_cluster_spawn(pg, initdb);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "initdb failed\n");
        pg_cluster_log_tail(pg, stderr);
        return false;
    }

    pg->port = pg_cluster_free_port();
    char port[16];
    snprintf(port, sizeof(port), "%d", pg->port);
    const char *argv[64] = {
        PG_BIN "/postgres",          "-D", pg->datadir, "-p", port, "-k", pg->root, "-c",
        "listen_addresses=127.0.0.1"};
    size_t n = 9;
    for (size_t i = 0; settings != NULL && settings[i] != NULL && i < 16; i++) {
        argv[n++] = "-c";
        argv[n++] = settings[i];
    }
    argv[n] = NULL;
    pg->child = pg_cluster_spawn(pg, argv);
    if (pg->child < 0) {
        pg->child = 0;
        return false;
    }
    snprintf(pg->url, sizeof(pg->url), "postgresql://postgres@127.0.0.1:%d/postgres", pg->port);
    double deadline = pg_cluster_now_s() + timeout_s;
    while (PQping(pg->url) != PQPING_OK) {
        if (waitpid(pg->child, &status, WNOHANG) == pg->child || pg_cluster_now_s() > deadline) {
            fprintf(stderr, "postgres did not start\n");
            pg_cluster_log_tail(pg, stderr);
            pg->child = 0;
            return false;
        }
        pg_cluster_sleep_ms(50);
    }
    return true;
}

#endif
