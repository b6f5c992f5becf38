/*
 * test_storcon_db.c: the persistence layer (storcon/db_nodes.c, db_tenants.c, db_imports.c)
 * against a real, throwaway Postgres 15.
 *
 * The group setup starts a throwaway cluster with fsync off (tests/unit/pg_cluster.h) and applies
 * every migration with the real migration runner. Each test then drives the functions
 * under test from an event loop and checks their callbacks, and checks the rows they left with a
 * separate, plain libpq connection (so the code under test never verifies itself). The group
 * teardown (and, should a test abort the process, an atexit handler) stops Postgres by its pid
 * and removes the directory. Without the Postgres binaries every test is skipped with a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
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
#include <cmocka.h>
#include "tests/unit/dep_util.h"
#include "tests/unit/pg_cluster.h"
#include <event2/event.h>
#include <libpq-fe.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/log.h"
#include "shared/str.h"
#include "storcon/db.h"
#include "storcon/db_compute_notifications.h"
#include "storcon/db_imports.h"
#include "storcon/db_nodes.h"
#include "storcon/db_tenants.h"
#include "storcon/schema_migrate.h"
#include "tests/unit/pg_cluster.h"

#define WAIT_TIMEOUT_S  30.0
#define START_TIMEOUT_S 60.0

/* ------------------------------------------------------------------------------------------ */
/* the throwaway cluster (tests/unit/pg_cluster.h)                                            */
/* ------------------------------------------------------------------------------------------ */

static struct {
    bool available;
    PgCluster cluster;
    const char *url; /* cluster.url */
    PGconn *check;   /* plain blocking connection for verification queries */
    bool atexit_registered;
} PG;

static double now_s(void)
{
    return pg_cluster_now_s();
}

static void pg_cleanup(void)
{
    if (PG.check != NULL) {
        PQfinish(PG.check);
        PG.check = NULL;
    }
    pg_cluster_cleanup(&PG.cluster);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {}

/* tick_new: a persistent 50 ms timer, so that a loop waiting with EVLOOP_ONCE wakes up to
 * check its deadline even when nothing else happens. The caller frees it with event_free. */
static struct event *tick_new(struct event_base *base)
{
    struct event *ev = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = {0, 50000};
    if (ev == NULL || event_add(ev, &tv) != 0)
        abort();
    return ev;
}

typedef struct MigrateWait {
    bool done;
    SchemaMigrateOutcome outcome;
} MigrateWait;

static void migrate_done(const SchemaMigrateOutcome *outcome, void *arg)
{
    MigrateWait *w = arg;
    w->outcome = *outcome;
    w->done = true;
}

/* apply_migrations: the real runner, to `target` (a version or SCHEMA_MIGRATE_TARGET_LATEST). */
static bool apply_migrations(int target)
{
    struct event_base *base = event_base_new();
    SchemaMigrateOptions opts = {
        .database_url = PG.url, .connect_timeout_ms = 20000, .target_version = target};
    MigrateWait w = {0};
    SchemaMigrator *m = NULL;
    Err err;
    bool ok = schema_migrate_start(base, &opts, migrate_done, &w, &m, &err);
    if (!ok) {
        print_message("schema_migrate_start: %s\n", err.msg);
    } else {
        struct event *tick = tick_new(base);
        double deadline = now_s() + START_TIMEOUT_S;
        while (!w.done && now_s() < deadline)
            event_base_loop(base, EVLOOP_ONCE);
        event_free(tick);
        if (!w.done)
            print_message("migrations did not finish\n");
        else if (!w.outcome.ok)
            print_message("migrations failed: %s\n", w.outcome.err.msg);
        ok = w.done && w.outcome.ok &&
             w.outcome.to_version ==
                 (target == SCHEMA_MIGRATE_TARGET_LATEST ? MIGRATIONS_COUNT : target);
    }
    schema_migrate_free(m);
    event_base_free(base);
    return ok;
}

static int group_setup(void **state)
{
    log_set_level(LOG_WARN);
    if (!pg_cluster_available()) {
        print_message("[  SKIP    ] Postgres 15 binaries not found in " PG_BIN
                      ": skipping the database tests\n");
        PG.available = false;
        return 0;
    }
    if (!PG.atexit_registered) {
        atexit(pg_cleanup);
        PG.atexit_registered = true;
    }
    const char *const settings[] = {PG_CLUSTER_FAST_SETTINGS, NULL};
    if (!pg_cluster_start(&PG.cluster, settings, START_TIMEOUT_S))
        return -1;
    PG.url = PG.cluster.url;
    PG.check = PQconnectdb(PG.url);
    if (PQstatus(PG.check) != CONNECTION_OK) {
        print_message("check connection: %s\n", PQerrorMessage(PG.check));
        return -1;
    }
    if (!apply_migrations(SCHEMA_MIGRATE_TARGET_LATEST))
        return -1;
    PG.available = true;
    return 0;
}

static int group_teardown(void **state)
{
    pg_cleanup();
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* verification queries (blocking: test code only)                                            */
/* ------------------------------------------------------------------------------------------ */

/* sql_text: the single value of a query with up to 4 text parameters, into out[cap]; "NULL"
 * for SQL NULL. */
static void sql_text(char *out, size_t cap, const char *query, int n, ...)
{
    const char *params[4] = {NULL};
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n && i < 4; i++)
        params[i] = va_arg(ap, const char *);
    va_end(ap);
    PGresult *r = PQexecParams(PG.check, query, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s (%d rows)", query, PQresultErrorMessage(r), PQntuples(r));
    str_copy(out, cap, PQgetisnull(r, 0, 0) ? "NULL" : PQgetvalue(r, 0, 0));
    PQclear(r);
}

static int64_t sql_int(const char *query, int n, const char *p1, const char *p2, const char *p3)
{
    char v[64];
    sql_text(v, sizeof(v), query, n, p1, p2, p3);
    int64_t x;
    if (!parse_i64(v, INT64_MIN, INT64_MAX, &x))
        fail_msg("%s: \"%s\" is not a number", query, v);
    return x;
}

/* rows_of: how many tenant_shards rows the tenant has (optionally only with this count). */
static int64_t rows_of(const char *tenant)
{
    return sql_int("SELECT count(*) FROM tenant_shards WHERE tenant_id = $1", 1, tenant, NULL,
                   NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* per-test fixture: an event loop and a pool                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct Fixture {
    struct event_base *base;
    struct event *tick;
    DbPool *pool;
    DbTenantInserter *ins;
} Fixture;

/* fixture_new: statement_timeout_ms 0 = the pool's default. */
static Fixture *fixture_new(const char *url, size_t size, uint64_t queue_timeout_ms,
                            uint64_t statement_timeout_ms)
{
    Fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->base = event_base_new();
    assert_non_null(f->base);
    f->tick = tick_new(f->base);
    DbPoolConfig cfg = {.url = url,
                        .size = size,
                        .connect_timeout_ms = 5000,
                        .queue_timeout_ms = queue_timeout_ms,
                        .statement_timeout_ms = statement_timeout_ms};
    f->pool = db_pool_new(f->base, &cfg);
    f->ins = db_tenants_inserter_new(f->base, f->pool, 0, 0);
    return f;
}

static void fixture_free(Fixture *f)
{
    if (f == NULL)
        return;
    db_tenants_inserter_free(f->ins);
    db_pool_free(f->pool);
    event_free(f->tick);
    event_base_free(f->base);
    free(f);
}

static int test_setup(void **state)
{
    *state = PG.available ? fixture_new(PG.url, 8, 20000, 0) : NULL;
    return 0;
}

static int test_teardown(void **state)
{
    fixture_free(*state);
    return 0;
}

static Fixture *fixture_or_skip(void **state)
{
    if (!PG.available)
        SKIP_MISSING_DEP("no usable Postgres 15 (binaries in " PG_BIN ")");
    return *state;
}

/* pump: run the loop until *calls reaches want (each callback increments it) or time is up. */
static void pump(Fixture *f, const int *calls, int want)
{
    double deadline = now_s() + WAIT_TIMEOUT_S;
    while (*calls < want) {
        if (now_s() > deadline)
            fail_msg("timed out waiting for %d callbacks (got %d)", want, *calls);
        event_base_loop(f->base, EVLOOP_ONCE);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* capturing callbacks                                                                        */
/* ------------------------------------------------------------------------------------------ */

#define MAX_ROWS 64
#define TEXT_MAX 256

typedef struct TestShard {
    TenantShardId tsid;
    uint32_t stripe_size;
    Generation generation;
    NodeId node;
    bool splitting;
    char placement[TEXT_MAX];
    char config[TEXT_MAX];
    char scheduling[TEXT_MAX];
    char az[TEXT_MAX]; /* "NULL" when none */
} TestShard;

typedef struct Capture {
    int calls;
    bool ok;
    Err err;
    bool flag; /* created / changed */
    Generation generation;
    size_t n;
    TestShard shards[MAX_ROWS];
    DbNode nodes[MAX_ROWS];
    DbShardGeneration gens[MAX_ROWS];
    DbImport import;
    char statuses[1024];
} Capture;

static void capture_err(Capture *c, const Err *err)
{
    c->calls++;
    c->ok = err == NULL;
    if (err != NULL)
        c->err = *err;
    else
        err_clear(&c->err);
}

static void capture_shards(Capture *c, const Err *err, const DbTenantShard *shards, size_t n)
{
    capture_err(c, err);
    assert_true(err != NULL || n == 0 || shards != NULL);
    assert_true(n <= MAX_ROWS);
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        TestShard *t = &c->shards[i];
        t->tsid = shards[i].tsid;
        t->stripe_size = shards[i].stripe_size;
        t->generation = shards[i].generation;
        t->node = shards[i].generation_pageserver;
        t->splitting = shards[i].splitting;
        str_copy(t->placement, sizeof(t->placement), shards[i].placement_policy);
        str_copy(t->config, sizeof(t->config), shards[i].config);
        str_copy(t->scheduling, sizeof(t->scheduling), shards[i].scheduling_policy);
        str_copy(t->az, sizeof(t->az),
                 shards[i].preferred_az_id != NULL ? shards[i].preferred_az_id : "NULL");
    }
}

static void on_shards(const Err *err, const DbTenantShard *shards, size_t n, void *arg)
{
    capture_shards(arg, err, shards, n);
}

static void on_create(const Err *err, const DbTenantShard *shards, size_t n, bool created,
                      void *arg)
{
    Capture *c = arg;
    capture_shards(c, err, shards, n);
    c->flag = created;
}

static void on_done(const Err *err, void *arg)
{
    capture_err(arg, err);
}

static void on_generation(const Err *err, Generation g, void *arg)
{
    Capture *c = arg;
    capture_err(c, err);
    c->generation = g;
}

static void on_generations(const Err *err, const DbShardGeneration *found, size_t n, void *arg)
{
    Capture *c = arg;
    capture_err(c, err);
    assert_true(n <= MAX_ROWS);
    c->n = n;
    for (size_t i = 0; i < n; i++)
        c->gens[i] = found[i];
}

static void on_register(const Err *err, const DbNode *stored, bool created, void *arg)
{
    Capture *c = arg;
    capture_err(c, err);
    c->flag = created;
    c->n = 0;
    if (stored != NULL) {
        c->nodes[0] = *stored;
        c->n = 1;
    }
}

static void on_nodes(const Err *err, const DbNode *nodes, size_t n, void *arg)
{
    Capture *c = arg;
    capture_err(c, err);
    assert_true(n <= MAX_ROWS);
    c->n = n;
    for (size_t i = 0; i < n; i++)
        c->nodes[i] = nodes[i];
}

static void on_import(const Err *err, const DbImport *row, bool changed, void *arg)
{
    Capture *c = arg;
    capture_err(c, err);
    c->flag = changed;
    c->n = 0;
    if (row != NULL) {
        c->import = *row;
        c->import.shard_statuses = NULL;
        str_copy(c->statuses, sizeof(c->statuses), row->shard_statuses);
        c->n = 1;
    }
}

static void on_imports(const Err *err, const DbImport *rows, size_t n, void *arg)
{
    Capture *c = arg;
    capture_err(c, err);
    c->n = 0;
    for (size_t i = 0; i < n; i++) {
        if (strstr(rows[i].shard_statuses, "0002") != NULL)
            c->n++;
    }
}

/* expect: the last callback failed with `code` (and a message mentioning `needle`). */
static void expect_err(const Capture *c, ErrCode code, const char *needle)
{
    if (c->ok)
        fail_msg("expected %s, got success", err_code_name(code));
    if (c->err.code != code)
        fail_msg("expected %s, got %s: %s", err_code_name(code), err_code_name(c->err.code),
                 c->err.msg);
    if (needle != NULL && strstr(c->err.msg, needle) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", c->err.msg, needle);
}

static void expect_ok(const Capture *c)
{
    if (!c->ok)
        fail_msg("expected success, got %s: %s", err_code_name(c->err.code), c->err.msg);
}

/* ------------------------------------------------------------------------------------------ */
/* helpers built on the code under test                                                       */
/* ------------------------------------------------------------------------------------------ */

static DbNode make_node(NodeId id, const char *host, uint16_t http_port, uint16_t pg_port,
                        const char *az)
{
    DbNode n;
    memset(&n, 0, sizeof(n));
    n.node_id = id;
    str_copy(n.scheduling_policy, sizeof(n.scheduling_policy), "Active");
    str_copy(n.listen_http_addr, sizeof(n.listen_http_addr), host);
    n.listen_http_port = http_port;
    str_copy(n.listen_pg_addr, sizeof(n.listen_pg_addr), host);
    n.listen_pg_port = pg_port;
    str_copy(n.availability_zone_id, sizeof(n.availability_zone_id), az);
    return n;
}

static void register_node(Fixture *f, const DbNode *n, Capture *c)
{
    Err err;
    int before = c->calls;
    assert_true(db_nodes_insert(f->pool, n, on_register, c, &err));
    pump(f, &c->calls, before + 1);
}

static DbTenantCreate make_create(const TenantId *t, ShardCount count)
{
    DbTenantCreate c = {.tenant_id = *t,
                        .shard_count = count,
                        .stripe_size = 2048,
                        .generation = 0,
                        .generation_pageserver = DB_NODE_ID_NONE,
                        .placement_policy = "{\"Attached\": 1}",
                        .config = "{\"gc_period\": \"1h\"}"};
    return c;
}

/* create_tenant: a new random tenant with `count` shards (initial generation gen). */
static TenantId create_tenant(Fixture *f, ShardCount count, Generation gen, char id[ID_STR_SIZE])
{
    TenantId t;
    tenant_id_generate(&t);
    tenant_id_format(&t, id);
    DbTenantCreate c = make_create(&t, count);
    c.generation = gen;
    Capture cap = {0};
    Err err;
    assert_true(db_tenants_insert(f->ins, &c, on_create, &cap, &err));
    pump(f, &cap.calls, 1);
    expect_ok(&cap);
    assert_true(cap.flag);
    return t;
}

static TenantShardId shard_of(const TenantId *t, unsigned number, unsigned count)
{
    TenantShardId s = {.tenant_id = *t, .number = (ShardNumber)number, .count = (ShardCount)count};
    return s;
}

static Generation increment(Fixture *f, const TenantId *t, unsigned number, unsigned count,
                            NodeId node)
{
    TenantShardId s = shard_of(t, number, count);
    Capture c = {0};
    db_tenants_increment_generation(f->pool, &s, node, on_generation, &c);
    pump(f, &c.calls, 1);
    expect_ok(&c);
    return c.generation;
}

static void get_tenant(Fixture *f, const TenantId *t, Capture *c)
{
    memset(c, 0, sizeof(*c));
    db_tenants_get(f->pool, t, on_shards, c);
    pump(f, &c->calls, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* migration 0002 (owned with this layer)                                                     */
/* ------------------------------------------------------------------------------------------ */

static int64_t schema_objects(void)
{
    return sql_int("SELECT (SELECT count(*) FROM information_schema.columns WHERE table_name = "
                   "'nodes' AND column_name = 'listen_https_port') + (SELECT count(*) FROM "
                   "pg_indexes WHERE indexname = 'tenant_shards_generation_pageserver_idx')",
                   0, NULL, NULL, NULL);
}

/* Runs first, on an empty schema: down to 0001 removes exactly what 0002 adds, up restores it. */
static void test_migration_0002_down_up(void **state)
{
    if (!PG.available)
        SKIP_MISSING_DEP("no usable Postgres 15 (binaries in " PG_BIN ")");
    assert_true(MIGRATIONS_COUNT >= 2);
    assert_string_equal(MIGRATIONS[1].name, "node_https_port_and_attach_index");
    assert_int_equal(schema_objects(), 2);
    assert_true(apply_migrations(1));
    assert_int_equal(schema_objects(), 0);
    assert_true(apply_migrations(SCHEMA_MIGRATE_TARGET_LATEST));
    assert_int_equal(schema_objects(), 2);
}

/* ------------------------------------------------------------------------------------------ */
/* nodes                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static bool list_has_node(Fixture *f, NodeId id, DbNode *out)
{
    Capture c = {0};
    db_nodes_list(f->pool, on_nodes, &c);
    pump(f, &c.calls, 1);
    expect_ok(&c);
    for (size_t i = 1; i < c.n; i++)
        assert_true(c.nodes[i - 1].node_id < c.nodes[i].node_id);
    for (size_t i = 0; i < c.n; i++) {
        assert_false(c.nodes[i].deleted);
        if (c.nodes[i].node_id == id) {
            if (out != NULL)
                *out = c.nodes[i];
            return true;
        }
    }
    return false;
}

static void test_node_register(void **state)
{
    Fixture *f = fixture_or_skip(state);
    DbNode n = make_node(101, "127.0.0.1", 9001, 6401, "az-a");
    n.listen_https_port = 9443;
    Capture c = {0};

    register_node(f, &n, &c);
    expect_ok(&c);
    assert_true(c.flag);
    assert_int_equal(c.n, 1);
    assert_true(db_nodes_matches(&c.nodes[0], &n));
    assert_string_equal(c.nodes[0].scheduling_policy, "Active");

    /* an identical registration is a no-op */
    register_node(f, &n, &c);
    expect_ok(&c);
    assert_false(c.flag);

    /* the scheduling policy is not part of the identity, and a re-register keeps it */
    Capture u = {0};
    Err err;
    assert_true(db_nodes_set_scheduling_policy(f->pool, 101, "Pause", on_done, &u, &err));
    pump(f, &u.calls, 1);
    expect_ok(&u);
    register_node(f, &n, &c);
    expect_ok(&c);
    assert_false(c.flag);
    assert_string_equal(c.nodes[0].scheduling_policy, "Pause");
    DbNode listed;
    assert_true(list_has_node(f, 101, &listed));
    assert_string_equal(listed.scheduling_policy, "Pause");
    assert_int_equal(listed.listen_https_port, 9443);
    assert_true(db_nodes_matches(&listed, &n));

    /* any other address, port or AZ: 409, and the row is unchanged */
    static const struct {
        const char *what;
        const char *host;
        uint16_t http, https, pg;
        const char *az;
    } conflicts[] = {
        {"http port", "127.0.0.1", 9002, 9443, 6401, "az-a"},
        {"https port", "127.0.0.1", 9001, 0, 6401, "az-a"},
        {"pg port", "127.0.0.1", 9001, 9443, 6402, "az-a"},
        {"host", "127.0.0.2", 9001, 9443, 6401, "az-a"},
        {"az", "127.0.0.1", 9001, 9443, 6401, "az-b"},
    };
    for (size_t i = 0; i < sizeof(conflicts) / sizeof(conflicts[0]); i++) {
        DbNode other =
            make_node(101, conflicts[i].host, conflicts[i].http, conflicts[i].pg, conflicts[i].az);
        other.listen_https_port = conflicts[i].https;
        register_node(f, &other, &c);
        if (c.ok)
            fail_msg("conflicting %s was accepted", conflicts[i].what);
        expect_err(&c, ERR_CONFLICT, "other addresses");
    }
    assert_int_equal(
        sql_int("SELECT listen_http_port FROM nodes WHERE node_id = 101", 0, NULL, NULL, NULL),
        9001);

    /* unknown nodes */
    assert_true(db_nodes_set_scheduling_policy(f->pool, 999101, "Pause", on_done, &u, &err));
    pump(f, &u.calls, 2);
    expect_err(&u, ERR_NOT_FOUND, "999101");
    db_nodes_tombstone(f->pool, 999102, on_done, &u);
    pump(f, &u.calls, 3);
    expect_err(&u, ERR_NOT_FOUND, NULL);

    /* tombstone: gone from the list, may not register again, no more policy changes */
    db_nodes_tombstone(f->pool, 101, on_done, &u);
    pump(f, &u.calls, 4);
    expect_ok(&u);
    assert_false(list_has_node(f, 101, NULL));
    char lifecycle[32];
    sql_text(lifecycle, sizeof(lifecycle), "SELECT lifecycle FROM nodes WHERE node_id = 101", 0);
    assert_string_equal(lifecycle, "deleted");
    register_node(f, &n, &c);
    expect_err(&c, ERR_CONFLICT, "deleted");
    assert_true(db_nodes_set_scheduling_policy(f->pool, 101, "Active", on_done, &u, &err));
    pump(f, &u.calls, 5);
    expect_err(&u, ERR_NOT_FOUND, NULL);
    db_nodes_tombstone(f->pool, 101, on_done, &u); /* idempotent */
    pump(f, &u.calls, 6);
    expect_ok(&u);
}

static void test_node_invalid_arguments(void **state)
{
    Fixture *f = fixture_or_skip(state);
    static const struct {
        const char *what;
        NodeId id;
        const char *http_host, *pg_host;
        uint16_t http, pg;
        const char *policy;
    } cases[] = {
        {"empty http host", 102, "", "h", 1, 2, "Active"},
        {"empty pg host", 102, "h", "", 1, 2, "Active"},
        {"http port 0", 102, "h", "h", 0, 2, "Active"},
        {"pg port 0", 102, "h", "h", 1, 0, "Active"},
        {"empty policy", 102, "h", "h", 1, 2, ""},
        {"id beyond bigint", (NodeId)INT64_MAX + 1, "h", "h", 1, 2, "Active"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        DbNode n = make_node(cases[i].id, "x", cases[i].http, cases[i].pg, "az");
        str_copy(n.listen_http_addr, sizeof(n.listen_http_addr), cases[i].http_host);
        str_copy(n.listen_pg_addr, sizeof(n.listen_pg_addr), cases[i].pg_host);
        str_copy(n.scheduling_policy, sizeof(n.scheduling_policy), cases[i].policy);
        Capture c = {0};
        Err err;
        err_clear(&err);
        if (db_nodes_insert(f->pool, &n, on_register, &c, &err))
            fail_msg("case \"%s\" accepted", cases[i].what);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_int_equal(db_pool_queue_length(f->pool), 0);
    }
    Err err;
    Capture c = {0};
    assert_false(db_nodes_set_scheduling_policy(f->pool, 1, "", on_done, &c, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    char long_policy[DB_NODE_POLICY_MAX + 8];
    memset(long_policy, 'x', sizeof(long_policy) - 1);
    long_policy[sizeof(long_policy) - 1] = '\0';
    assert_false(db_nodes_set_scheduling_policy(f->pool, 1, long_policy, on_done, &c, &err));
    assert_int_equal(c.calls, 0);
    assert_int_equal(sql_int("SELECT count(*) FROM nodes WHERE node_id = 102", 0, NULL, NULL, NULL),
                     0);
}

/* ------------------------------------------------------------------------------------------ */
/* tenants                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void test_tenant_insert(void **state)
{
    Fixture *f = fixture_or_skip(state);
    TenantId t;
    tenant_id_generate(&t);
    char id[ID_STR_SIZE];
    tenant_id_format(&t, id);
    DbTenantCreate create = make_create(&t, 4);
    Capture c = {0};
    Err err;

    assert_true(db_tenants_insert(f->ins, &create, on_create, &c, &err));
    pump(f, &c.calls, 1);
    expect_ok(&c);
    assert_true(c.flag);
    assert_int_equal(c.n, 4);
    for (unsigned i = 0; i < 4; i++) {
        const TestShard *s = &c.shards[i];
        assert_true(tenant_id_eq(&s->tsid.tenant_id, &t));
        assert_int_equal(s->tsid.number, i);
        assert_int_equal(s->tsid.count, 4);
        assert_int_equal(s->stripe_size, 2048);
        assert_int_equal(s->generation, 0);
        assert_true(s->node == DB_NODE_ID_NONE);
        assert_false(s->splitting);
        assert_string_equal(s->placement, "{\"Attached\": 1}");
        assert_string_equal(s->config, "{\"gc_period\": \"1h\"}");
        assert_string_equal(s->scheduling, "\"Active\"");
        assert_string_equal(s->az, "NULL");
    }
    assert_int_equal(rows_of(id), 4);

    /* an identical repeat (JSON spelled differently) succeeds without writing */
    DbTenantCreate again = create;
    again.placement_policy = "{ \"Attached\" : 1 }";
    again.generation = 5;
    assert_true(db_tenants_insert(f->ins, &again, on_create, &c, &err));
    pump(f, &c.calls, 2);
    expect_ok(&c);
    assert_false(c.flag);
    assert_int_equal(c.n, 4);
    assert_int_equal(c.shards[3].generation, 0);

    /* any different parameter: 409, and nothing is added or changed */
    static const struct {
        const char *what;
        ShardCount count;
        uint32_t stripe;
        const char *placement, *config;
    } conflicts[] = {
        {"stripe", 4, 1024, "{\"Attached\": 1}", "{\"gc_period\": \"1h\"}"},
        {"more shards", 8, 2048, "{\"Attached\": 1}", "{\"gc_period\": \"1h\"}"},
        {"fewer shards", 2, 2048, "{\"Attached\": 1}", "{\"gc_period\": \"1h\"}"},
        {"unsharded", 0, 2048, "{\"Attached\": 1}", "{\"gc_period\": \"1h\"}"},
        {"placement", 4, 2048, "\"Secondary\"", "{\"gc_period\": \"1h\"}"},
        {"config", 4, 2048, "{\"Attached\": 1}", "{}"},
    };
    for (size_t i = 0; i < sizeof(conflicts) / sizeof(conflicts[0]); i++) {
        DbTenantCreate other = create;
        other.shard_count = conflicts[i].count;
        other.stripe_size = conflicts[i].stripe;
        other.placement_policy = conflicts[i].placement;
        other.config = conflicts[i].config;
        int before = c.calls;
        assert_true(db_tenants_insert(f->ins, &other, on_create, &c, &err));
        pump(f, &c.calls, before + 1);
        if (c.ok)
            fail_msg("conflicting create (%s) was accepted", conflicts[i].what);
        expect_err(&c, ERR_CONFLICT, id);
        assert_int_equal(rows_of(id), 4);
    }
    assert_int_equal(sql_int("SELECT count(*) FROM tenant_shards WHERE tenant_id = $1 AND "
                             "(shard_count <> 4 OR shard_stripe_size <> 2048)",
                             1, id, NULL, NULL),
                     0);

    /* get */
    Capture g;
    get_tenant(f, &t, &g);
    expect_ok(&g);
    assert_int_equal(g.n, 4);
    TenantId missing;
    tenant_id_generate(&missing);
    get_tenant(f, &missing, &g);
    expect_err(&g, ERR_NOT_FOUND, NULL);

    /* an unsharded tenant has one row, number 0 count 0; NULL generation allowed */
    TenantId u;
    tenant_id_generate(&u);
    DbTenantCreate unsharded = make_create(&u, 0);
    unsharded.generation = GENERATION_NONE;
    unsharded.scheduling_policy = "\"Pause\"";
    unsharded.preferred_az_id = "az-1";
    assert_true(db_tenants_insert(f->ins, &unsharded, on_create, &c, &err));
    pump(f, &c.calls, c.calls + 1);
    expect_ok(&c);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.shards[0].tsid.count, 0);
    assert_int_equal(c.shards[0].tsid.number, 0);
    assert_true(c.shards[0].generation == GENERATION_NONE);
    assert_string_equal(c.shards[0].scheduling, "\"Pause\"");
    assert_string_equal(c.shards[0].az, "az-1");
    /* a NULL generation counts as 0 */
    assert_int_equal(increment(f, &u, 0, 0, 7), 1);
}

/* A create that picked its nodes: each shard's first generation issued to its own node in the
 * insert; in a batch with a bad row it is delivered alone, unharmed; a repeat with other nodes is
 * an identical repeat (the nodes are not part of the request's identity) and changes nothing. */
static void test_tenant_insert_shard_pageservers(void **state)
{
    Fixture *f = fixture_or_skip(state);
    TenantId t, bad_t, u;
    tenant_id_generate(&t);
    tenant_id_generate(&bad_t);
    tenant_id_generate(&u);
    char id[ID_STR_SIZE];
    tenant_id_format(&t, id);
    static const NodeId nodes[4] = {1, 2, 3, 1};
    DbTenantCreate create = make_create(&t, 4);
    create.generation = 1;
    create.shard_pageservers = nodes;
    DbTenantCreate bad = make_create(&bad_t, 1);
    bad.config = "{not json";
    static const NodeId unode[1] = {2};
    DbTenantCreate unsharded = make_create(&u, 0);
    unsharded.generation = 1;
    unsharded.shard_pageservers = unode;
    Capture c = {0}, cb = {0}, cu = {0};
    Err err;
    /* one loop pass: one batch, which the bad row rolls back and splits */
    assert_true(db_tenants_insert(f->ins, &create, on_create, &c, &err));
    assert_true(db_tenants_insert(f->ins, &bad, on_create, &cb, &err));
    assert_true(db_tenants_insert(f->ins, &unsharded, on_create, &cu, &err));
    pump(f, &c.calls, 1);
    pump(f, &cb.calls, 1);
    pump(f, &cu.calls, 1);
    expect_err(&cb, ERR_INTERNAL, NULL);
    expect_ok(&c);
    assert_true(c.flag);
    assert_int_equal(c.n, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(c.shards[i].tsid.number, i);
        assert_int_equal(c.shards[i].generation, 1);
        assert_true(c.shards[i].node == nodes[i]);
    }
    expect_ok(&cu);
    assert_int_equal(cu.n, 1);
    assert_int_equal(cu.shards[0].generation, 1);
    assert_true(cu.shards[0].node == 2);
    assert_int_equal(sql_int("SELECT count(*) FROM tenant_shards WHERE tenant_id = $1 AND "
                             "generation = 1 AND generation_pageserver IS NOT NULL",
                             1, id, NULL, NULL),
                     4);

    /* a repeat that picked other nodes: identical, nothing rewritten */
    static const NodeId other[4] = {3, 3, 3, 3};
    DbTenantCreate again = create;
    again.shard_pageservers = other;
    assert_true(db_tenants_insert(f->ins, &again, on_create, &c, &err));
    pump(f, &c.calls, 2);
    expect_ok(&c);
    assert_false(c.flag);
    for (unsigned i = 0; i < 4; i++)
        assert_true(c.shards[i].node == nodes[i]);

    /* nodes without a generation are refused before anything is queued */
    DbTenantCreate no_gen = make_create(&bad_t, 4);
    no_gen.generation = GENERATION_NONE;
    no_gen.shard_pageservers = nodes;
    err_clear(&err);
    assert_false(db_tenants_insert(f->ins, &no_gen, on_create, &cb, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
}

static void test_tenant_insert_invalid(void **state)
{
    Fixture *f = fixture_or_skip(state);
    TenantId t;
    tenant_id_generate(&t);
    static const struct {
        const char *what;
        uint32_t stripe;
        Generation gen;
        NodeId node;
        const char *placement;
    } cases[] = {
        {"stripe 0", 0, 0, DB_NODE_ID_NONE, "\"Detached\""},
        {"stripe beyond integer", (uint32_t)INT32_MAX + 1, 0, DB_NODE_ID_NONE, "\"Detached\""},
        {"generation beyond integer", 2048, (Generation)INT32_MAX + 1, DB_NODE_ID_NONE,
         "\"Detached\""},
        {"node without generation", 2048, GENERATION_NONE, 3, "\"Detached\""},
        {"no placement", 2048, 0, DB_NODE_ID_NONE, NULL},
        {"empty placement", 2048, 0, DB_NODE_ID_NONE, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        DbTenantCreate c = make_create(&t, 2);
        c.stripe_size = cases[i].stripe;
        c.generation = cases[i].gen;
        c.generation_pageserver = cases[i].node;
        c.placement_policy = cases[i].placement;
        Capture cap = {0};
        Err err;
        err_clear(&err);
        if (db_tenants_insert(f->ins, &c, on_create, &cap, &err))
            fail_msg("case \"%s\" accepted", cases[i].what);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
    /* JSON the database refuses: an error, not a row */
    DbTenantCreate bad = make_create(&t, 1);
    bad.config = "{not json";
    Capture cap = {0};
    Err err;
    assert_true(db_tenants_insert(f->ins, &bad, on_create, &cap, &err));
    pump(f, &cap.calls, 1);
    expect_err(&cap, ERR_INTERNAL, NULL);
    char id[ID_STR_SIZE];
    tenant_id_format(&t, id);
    assert_int_equal(rows_of(id), 0);
}

/* Group commit: creates submitted together share one transaction, yet each gets its own outcome;
 * a bad row fails alone; a database failure fails exactly the creates of its batch. */
typedef struct BatchCreate {
    const char *what;
    int tenant;     /* index into the test's tenants */
    unsigned count; /* shard count */
    const char *config;
    ErrCode code; /* ERR_NONE: success */
    bool created; /* on success */
} BatchCreate;

static void submit_batch(Fixture *f, const TenantId *tenants, const BatchCreate *bc, size_t n,
                         Capture *caps)
{
    for (size_t i = 0; i < n; i++) {
        DbTenantCreate c = make_create(&tenants[bc[i].tenant], (ShardCount)bc[i].count);
        if (bc[i].config != NULL)
            c.config = bc[i].config;
        Err err;
        memset(&caps[i], 0, sizeof(caps[i]));
        assert_true(db_tenants_insert(f->ins, &c, on_create, &caps[i], &err));
    }
    for (size_t i = 0; i < n; i++)
        pump(f, &caps[i].calls, 1);
    for (size_t i = 0; i < n; i++) {
        if (bc[i].code == ERR_NONE) {
            if (!caps[i].ok)
                fail_msg("%s: %s", bc[i].what, caps[i].err.msg);
            if (caps[i].flag != bc[i].created)
                fail_msg("%s: created %d, expected %d", bc[i].what, caps[i].flag, bc[i].created);
            assert_int_equal(caps[i].n, bc[i].count > 0 ? bc[i].count : 1);
            assert_true(tenant_id_eq(&caps[i].shards[0].tsid.tenant_id, &tenants[bc[i].tenant]));
        } else {
            if (caps[i].ok)
                fail_msg("%s: accepted", bc[i].what);
            expect_err(&caps[i], bc[i].code, NULL);
        }
    }
}

static void test_tenant_insert_batched(void **state)
{
    Fixture *f = fixture_or_skip(state);
    enum { T_EXISTING, T_REPEAT, T_A, T_B, T_C, T_E, T_F, T_G, T_COUNT };
    TenantId t[T_COUNT];
    char id[T_COUNT][ID_STR_SIZE];
    t[T_EXISTING] = create_tenant(f, 2, 0, id[T_EXISTING]);
    t[T_REPEAT] = create_tenant(f, 0, 0, id[T_REPEAT]);
    for (int i = T_A; i < T_COUNT; i++) {
        tenant_id_generate(&t[i]);
        tenant_id_format(&t[i], id[i]);
    }
    static Capture caps[8];

    /* all submitted in one loop pass: one transaction, except the second create of A, which
     * waits for the next one (a statement never inserts a tenant twice) */
    DbTenantInserterStats before = db_tenants_inserter_stats(f->ins);
    const BatchCreate first[] = {
        {"new A", T_A, 4, NULL, ERR_NONE, true},
        {"new B", T_B, 0, NULL, ERR_NONE, true},
        {"existing tenant, other count", T_EXISTING, 4, NULL, ERR_CONFLICT, false},
        {"identical repeat", T_REPEAT, 0, NULL, ERR_NONE, false},
        {"new C", T_C, 1, NULL, ERR_NONE, true},
        {"A again in the same pass", T_A, 4, NULL, ERR_NONE, false},
    };
    submit_batch(f, t, first, 6, caps);
    DbTenantInserterStats after = db_tenants_inserter_stats(f->ins);
    assert_int_equal(after.batches - before.batches, 2);
    assert_int_equal(after.creates - before.creates, 6);
    assert_true(after.largest >= 5);
    assert_int_equal(rows_of(id[T_A]), 4);
    assert_int_equal(rows_of(id[T_B]), 1);
    assert_int_equal(rows_of(id[T_C]), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM tenant_shards WHERE tenant_id = $1 AND "
                             "shard_count = 2",
                             1, id[T_EXISTING], NULL, NULL),
                     2);
    assert_int_equal(rows_of(id[T_EXISTING]), 2);
    assert_non_null(strstr(caps[2].err.msg, "already exists"));

    /* a row the database refuses fails alone; its batch-mates are inserted */
    before = db_tenants_inserter_stats(f->ins);
    const BatchCreate second[] = {
        {"new E", T_E, 2, NULL, ERR_NONE, true},
        {"config that is not JSON", T_F, 0, "{not json", ERR_INTERNAL, false},
        {"new G", T_G, 0, NULL, ERR_NONE, true},
    };
    submit_batch(f, t, second, 3, caps);
    after = db_tenants_inserter_stats(f->ins);
    assert_int_equal(after.split - before.split, 1);
    assert_int_equal(rows_of(id[T_E]), 2);
    assert_int_equal(rows_of(id[T_F]), 0);
    assert_int_equal(rows_of(id[T_G]), 1);
}

/* A database failure in the middle of a batch (its statement times out behind a lock) fails
 * every create of the batch, none is acknowledged and no row is left; the next batch works. */
static void test_tenant_insert_batch_db_failure(void **state)
{
    if (!PG.available)
        SKIP_MISSING_DEP("no usable Postgres 15 (binaries in " PG_BIN ")");
    Fixture *f = fixture_new(PG.url, 2, 20000, 300);
    enum { T_H, T_I, T_J, T_K, T_COUNT };
    TenantId t[T_COUNT];
    char id[T_COUNT][ID_STR_SIZE];
    for (int i = 0; i < T_COUNT; i++) {
        tenant_id_generate(&t[i]);
        tenant_id_format(&t[i], id[i]);
    }
    PGresult *r = PQexec(PG.check, "BEGIN; LOCK TABLE tenant_shards IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    static Capture caps[4];
    DbTenantInserterStats before = db_tenants_inserter_stats(f->ins);
    const BatchCreate failing[] = {
        {"H", T_H, 4, NULL, ERR_UNAVAILABLE, false},
        {"I", T_I, 0, NULL, ERR_UNAVAILABLE, false},
        {"J", T_J, 2, NULL, ERR_UNAVAILABLE, false},
    };
    submit_batch(f, t, failing, 3, caps);
    DbTenantInserterStats after = db_tenants_inserter_stats(f->ins);
    r = PQexec(PG.check, "ROLLBACK");
    PQclear(r);
    assert_int_equal(after.batches - before.batches, 1);
    assert_int_equal(after.split, before.split);
    for (int i = T_H; i <= T_J; i++)
        assert_int_equal(rows_of(id[i]), 0);
    const BatchCreate next[] = {{"K after the lock", T_K, 0, NULL, ERR_NONE, true}};
    submit_batch(f, t, next, 1, caps);
    assert_int_equal(rows_of(id[T_K]), 1);
    fixture_free(f);
}

static void test_tenant_load(void **state)
{
    Fixture *f = fixture_or_skip(state);
    char a_id[ID_STR_SIZE], b_id[ID_STR_SIZE];
    TenantId a = create_tenant(f, 2, 0, a_id);
    TenantId b;
    tenant_id_generate(&b);
    tenant_id_format(&b, b_id);
    DbTenantCreate detached = make_create(&b, 0);
    detached.placement_policy = "\"Detached\"";
    Capture c = {0};
    Err err;
    assert_true(db_tenants_insert(f->ins, &detached, on_create, &c, &err));
    pump(f, &c.calls, 1);
    expect_ok(&c);

    for (int include = 0; include <= 1; include++) {
        /* the table holds other tests' tenants too: count only ours, check the order of all */
        Capture l = {0};
        db_tenants_load(f->pool, include != 0, on_shards, &l);
        pump(f, &l.calls, 1);
        expect_ok(&l);
        size_t na = 0, nb = 0, ndetached = 0;
        for (size_t i = 0; i < l.n; i++) {
            if (tenant_id_eq(&l.shards[i].tsid.tenant_id, &a))
                na++;
            if (tenant_id_eq(&l.shards[i].tsid.tenant_id, &b))
                nb++;
            if (strcmp(l.shards[i].placement, "\"Detached\"") == 0)
                ndetached++;
            if (i > 0) {
                const TenantShardId *p = &l.shards[i - 1].tsid, *q = &l.shards[i].tsid;
                int cmp = tenant_id_cmp(&p->tenant_id, &q->tenant_id);
                assert_true(cmp < 0 ||
                            (cmp == 0 && (p->count < q->count ||
                                          (p->count == q->count && p->number < q->number))));
            }
        }
        assert_int_equal(na, 2);
        assert_int_equal(nb, include ? 1 : 0);
        if (!include)
            assert_int_equal(ndetached, 0);
        assert_int_equal((int64_t)l.n, sql_int(include ? "SELECT count(*) FROM tenant_shards"
                                                       : "SELECT count(*) FROM tenant_shards WHERE "
                                                         "placement_policy <> '\"Detached\"'",
                                               0, NULL, NULL, NULL));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* generations                                                                                */
/* ------------------------------------------------------------------------------------------ */

#define CONCURRENT 50

typedef struct IncCall {
    int *calls;
    NodeId node;
    bool ok;
    Err err;
    Generation g;
} IncCall;

static void on_concurrent_increment(const Err *err, Generation g, void *arg)
{
    IncCall *call = arg;
    call->ok = err == NULL;
    if (err != NULL)
        call->err = *err;
    call->g = g;
    (*call->calls)++;
}

static int gen_cmp(const void *a, const void *b)
{
    Generation x = *(const Generation *)a, y = *(const Generation *)b;
    return x < y ? -1 : x > y;
}

static void test_generation_concurrent_increments(void **state)
{
    Fixture *f = fixture_or_skip(state);
    char id[ID_STR_SIZE];
    const Generation start = 7;
    TenantId t = create_tenant(f, 0, start, id);
    TenantShardId s = shard_of(&t, 0, 0);

    int calls = 0;
    IncCall inc[CONCURRENT];
    memset(inc, 0, sizeof(inc));
    for (int i = 0; i < CONCURRENT; i++) {
        inc[i].calls = &calls;
        inc[i].node = 200 + (NodeId)(i % 3);
        db_tenants_increment_generation(f->pool, &s, inc[i].node, on_concurrent_increment, &inc[i]);
    }
    assert_int_equal(calls, 0); /* never called back from inside the call */
    pump(f, &calls, CONCURRENT);

    Generation gens[CONCURRENT];
    NodeId last_node = DB_NODE_ID_NONE;
    for (int i = 0; i < CONCURRENT; i++) {
        if (!inc[i].ok)
            fail_msg("increment %d failed: %s", i, inc[i].err.msg);
        gens[i] = inc[i].g;
        if (inc[i].g == start + CONCURRENT)
            last_node = inc[i].node;
    }
    qsort(gens, CONCURRENT, sizeof(gens[0]), gen_cmp);
    for (int i = 0; i < CONCURRENT; i++)
        assert_int_equal(gens[i], start + 1 + i); /* all distinct, no gaps */
    assert_int_equal(
        sql_int("SELECT generation FROM tenant_shards WHERE tenant_id = $1", 1, id, NULL, NULL),
        start + CONCURRENT);
    /* the stored node is the one of the increment that issued the final generation */
    assert_true(last_node != DB_NODE_ID_NONE);
    assert_int_equal(sql_int("SELECT generation_pageserver FROM tenant_shards WHERE tenant_id = $1",
                             1, id, NULL, NULL),
                     (int64_t)last_node);
}

#define BATCH_TENANTS 16
#define BATCH_SHARDS  8
#define BATCH_ROUNDS  4

/* Many increments at once, over many shards and several per shard: they are coalesced into
 * batched statements, and still every shard's callers get strictly increasing generations in the
 * order they asked, with the last one persisted. */
static void test_generation_batched_increments(void **state)
{
    Fixture *f = fixture_or_skip(state);
    enum { N = BATCH_TENANTS * BATCH_SHARDS * BATCH_ROUNDS };
    char ids[BATCH_TENANTS][ID_STR_SIZE];
    TenantId tenants[BATCH_TENANTS];
    for (int t = 0; t < BATCH_TENANTS; t++)
        tenants[t] = create_tenant(f, BATCH_SHARDS, 0, ids[t]);
    int calls = 0;
    static IncCall inc[N];
    memset(inc, 0, sizeof(inc));
    for (int round = 0; round < BATCH_ROUNDS; round++) {
        for (int t = 0; t < BATCH_TENANTS; t++) {
            for (int k = 0; k < BATCH_SHARDS; k++) {
                IncCall *c = &inc[(round * BATCH_TENANTS + t) * BATCH_SHARDS + k];
                c->calls = &calls;
                c->node = 100 + (NodeId)round;
                TenantShardId s = shard_of(&tenants[t], (unsigned)k, BATCH_SHARDS);
                db_tenants_increment_generation(f->pool, &s, c->node, on_concurrent_increment, c);
            }
        }
    }
    assert_int_equal(calls, 0);
    pump(f, &calls, N);
    for (int t = 0; t < BATCH_TENANTS; t++) {
        for (int k = 0; k < BATCH_SHARDS; k++) {
            for (int round = 0; round < BATCH_ROUNDS; round++) {
                IncCall *c = &inc[(round * BATCH_TENANTS + t) * BATCH_SHARDS + k];
                if (!c->ok)
                    fail_msg("increment failed: %s", c->err.msg);
                assert_int_equal(c->g, round + 1); /* strictly increasing, in asking order */
            }
        }
        assert_int_equal(sql_int("SELECT count(*) FROM tenant_shards WHERE tenant_id = $1 AND "
                                 "generation = $2::integer AND generation_pageserver = $3::bigint",
                                 3, ids[t], "4", "103"),
                         BATCH_SHARDS);
    }
}

/* A batch whose statement fails fails exactly the callers in it (rolled back: nothing
 * persisted); a caller that asked while it was in flight is in the next batch and succeeds. */
static void test_generation_batch_failure(void **state)
{
    Fixture *f = fixture_or_skip(state);
    char id[ID_STR_SIZE];
    TenantId t = create_tenant(f, 2, 5, id);
    TenantShardId s0 = shard_of(&t, 0, 2), s1 = shard_of(&t, 1, 2);
    Capture bad = {0}, good1 = {0}, good2 = {0};
    /* a node id bigint cannot hold: the whole statement fails */
    db_tenants_increment_generation(f->pool, &s0, (NodeId)1 << 63, on_generation, &bad);
    db_tenants_increment_generation(f->pool, &s1, 7, on_generation, &good1);
    /* one pass: the batch of the two is formed and sent; its answer needs another pass */
    event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(bad.calls + good1.calls, 0);
    db_tenants_increment_generation(f->pool, &s0, 8, on_generation, &good2);
    pump(f, &good2.calls, 1);
    pump(f, &bad.calls, 1);
    pump(f, &good1.calls, 1);
    expect_err(&bad, ERR_INTERNAL, NULL);
    expect_err(&good1, ERR_INTERNAL, NULL);
    expect_ok(&good2);
    assert_int_equal(good2.generation, 6);
    assert_int_equal(sql_int("SELECT generation FROM tenant_shards WHERE tenant_id = $1 AND "
                             "shard_number = 1",
                             1, id, NULL, NULL),
                     5);
}

static void test_generation_missing_and_detach(void **state)
{
    Fixture *f = fixture_or_skip(state);
    char id[ID_STR_SIZE];
    TenantId t = create_tenant(f, 2, 0, id);

    /* unknown tenant, and a shard index the tenant does not have */
    TenantId other;
    tenant_id_generate(&other);
    const TenantShardId missing[] = {shard_of(&other, 0, 2), shard_of(&t, 0, 4),
                                     shard_of(&t, 0, 0)};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        Capture c = {0};
        db_tenants_increment_generation(f->pool, &missing[i], 5, on_generation, &c);
        pump(f, &c.calls, 1);
        expect_err(&c, ERR_NOT_FOUND, "not found");
    }

    assert_int_equal(increment(f, &t, 0, 2, 11), 1);
    assert_int_equal(increment(f, &t, 0, 2, 12), 2);
    assert_int_equal(increment(f, &t, 1, 2, 11), 1);
    /* no node recorded: allowed (attach-hook without a node) */
    assert_int_equal(increment(f, &t, 1, 2, DB_NODE_ID_NONE), 2);
    assert_int_equal(increment(f, &t, 1, 2, 13), 3);

    /* detach one shard: the node goes, the generation stays */
    ShardIndex idx0 = {.number = 0, .count = 2};
    Capture c = {0};
    db_tenants_detach(f->pool, &t, &idx0, on_done, &c);
    pump(f, &c.calls, 1);
    expect_ok(&c);
    char v[64];
    sql_text(v, sizeof(v),
             "SELECT generation_pageserver FROM tenant_shards WHERE tenant_id = $1 AND "
             "shard_number = 0",
             1, id);
    assert_string_equal(v, "NULL");
    sql_text(v, sizeof(v),
             "SELECT generation || ',' || generation_pageserver FROM tenant_shards WHERE "
             "tenant_id = $1 AND shard_number = 1",
             1, id);
    assert_string_equal(v, "3,13");
    assert_int_equal(sql_int("SELECT generation FROM tenant_shards WHERE tenant_id = $1 AND "
                             "shard_number = 0",
                             1, id, NULL, NULL),
                     2);

    /* the whole tenant */
    db_tenants_detach(f->pool, &t, NULL, on_done, &c);
    pump(f, &c.calls, 2);
    expect_ok(&c);
    assert_int_equal(sql_int("SELECT count(*) FROM tenant_shards WHERE tenant_id = $1 AND "
                             "generation_pageserver IS NOT NULL",
                             1, id, NULL, NULL),
                     0);

    /* unknown tenant or shard */
    db_tenants_detach(f->pool, &other, NULL, on_done, &c);
    pump(f, &c.calls, 3);
    expect_err(&c, ERR_NOT_FOUND, NULL);
    ShardIndex idx9 = {.number = 1, .count = 4};
    db_tenants_detach(f->pool, &t, &idx9, on_done, &c);
    pump(f, &c.calls, 4);
    expect_err(&c, ERR_NOT_FOUND, "shard");
}

static const TestShard *find_shard(const Capture *c, const TenantId *t, unsigned number,
                                   unsigned count)
{
    for (size_t i = 0; i < c->n; i++) {
        const TenantShardId *s = &c->shards[i].tsid;
        if (tenant_id_eq(&s->tenant_id, t) && s->number == number && s->count == count)
            return &c->shards[i];
    }
    return NULL;
}

static void test_reattach(void **state)
{
    Fixture *f = fixture_or_skip(state);
    Capture r = {0};
    DbNode n301 = make_node(301, "127.0.0.1", 9301, 6301, "az-a");
    DbNode n302 = make_node(302, "127.0.0.1", 9302, 6302, "az-a");
    register_node(f, &n301, &r);
    expect_ok(&r);
    register_node(f, &n302, &r);
    expect_ok(&r);

    char id[ID_STR_SIZE], id2[ID_STR_SIZE];
    TenantId t = create_tenant(f, 4, 0, id);
    TenantId t2 = create_tenant(f, 0, 4, id2);
    increment(f, &t, 0, 4, 301);
    increment(f, &t, 0, 4, 301);  /* 2 */
    increment(f, &t, 1, 4, 301);  /* 1 */
    increment(f, &t, 2, 4, 302);  /* 1 */
    increment(f, &t2, 0, 0, 301); /* 5 */
    /* shard 3 never attached */

    Capture c = {0};
    db_tenants_reattach(f->pool, 301, on_shards, &c);
    pump(f, &c.calls, 1);
    expect_ok(&c);
    assert_int_equal(c.n, 3);
    const TestShard *s0 = find_shard(&c, &t, 0, 4), *s1 = find_shard(&c, &t, 1, 4),
                    *u0 = find_shard(&c, &t2, 0, 0);
    assert_non_null(s0);
    assert_non_null(s1);
    assert_non_null(u0);
    assert_int_equal(s0->generation, 3);
    assert_int_equal(s1->generation, 2);
    assert_int_equal(u0->generation, 6);
    assert_int_equal(s0->node, 301);
    /* what the database holds: only node 301's shards moved */
    char v[64];
    static const struct {
        const char *number;
        const char *want;
    } rows[] = {{"0", "3,301"}, {"1", "2,301"}, {"2", "1,302"}, {"3", "0,"}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        sql_text(v, sizeof(v),
                 "SELECT generation || ',' || coalesce(generation_pageserver::text, '') FROM "
                 "tenant_shards WHERE tenant_id = $1 AND shard_number = $2::integer",
                 2, id, rows[i].number);
        assert_string_equal(v, rows[i].want);
    }

    db_tenants_reattach(f->pool, 302, on_shards, &c);
    pump(f, &c.calls, 2);
    expect_ok(&c);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.shards[0].tsid.number, 2);
    assert_int_equal(c.shards[0].generation, 2);

    /* unknown node, tombstoned node */
    db_tenants_reattach(f->pool, 399, on_shards, &c);
    pump(f, &c.calls, 3);
    expect_err(&c, ERR_NOT_FOUND, "not registered");
    Capture d = {0};
    db_nodes_tombstone(f->pool, 302, on_done, &d);
    pump(f, &d.calls, 1);
    expect_ok(&d);
    db_tenants_reattach(f->pool, 302, on_shards, &c);
    pump(f, &c.calls, 4);
    expect_err(&c, ERR_NOT_FOUND, "deleted");
    sql_text(v, sizeof(v),
             "SELECT generation FROM tenant_shards WHERE tenant_id = $1 AND shard_number = 2", 1,
             id);
    assert_string_equal(v, "2");
}

static void test_generations_lookup(void **state)
{
    Fixture *f = fixture_or_skip(state);
    char id[ID_STR_SIZE];
    TenantId t = create_tenant(f, 2, 0, id);
    increment(f, &t, 1, 2, 501);
    increment(f, &t, 1, 2, 502);
    TenantId other;
    tenant_id_generate(&other);
    const TenantShardId ask[] = {shard_of(&t, 1, 2), shard_of(&other, 0, 0), shard_of(&t, 0, 2),
                                 shard_of(&t, 0, 8)};
    Capture c = {0};
    db_tenants_generations(f->pool, ask, 4, on_generations, &c);
    pump(f, &c.calls, 1);
    expect_ok(&c);
    assert_int_equal(c.n, 2); /* unknown shards omitted */
    assert_int_equal(c.gens[0].tsid.number, 0);
    assert_int_equal(c.gens[0].generation, 0);
    assert_true(c.gens[0].generation_pageserver == DB_NODE_ID_NONE);
    assert_true(tenant_id_eq(&c.gens[1].tsid.tenant_id, &t));
    assert_int_equal(c.gens[1].tsid.number, 1);
    assert_int_equal(c.gens[1].tsid.count, 2);
    assert_int_equal(c.gens[1].generation, 2);
    assert_int_equal(c.gens[1].generation_pageserver, 502);

    db_tenants_generations(f->pool, NULL, 0, on_generations, &c);
    pump(f, &c.calls, 2);
    expect_ok(&c);
    assert_int_equal(c.n, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* updates                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void column_of(const char *id, unsigned number, const char *column, char *out, size_t cap)
{
    char query[256], num[8];
    snprintf(num, sizeof(num), "%u", number);
    /* column names come from this file's table below, never from input */
    snprintf(query, sizeof(query),
             "SELECT %s FROM tenant_shards WHERE tenant_id = $1 AND shard_number = $2::integer",
             column);
    sql_text(out, cap, query, 2, id, num);
}

typedef enum Setter { SET_PLACEMENT, SET_CONFIG, SET_SCHEDULING, SET_AZ } Setter;

static void run_setter(Fixture *f, Setter which, const TenantId *t, const ShardIndex *shard,
                       const char *value, Capture *c)
{
    Err err;
    int before = c->calls;
    switch (which) {
    case SET_PLACEMENT:
        assert_true(db_tenants_set_placement_policy(f->pool, t, shard, value, on_done, c, &err));
        break;
    case SET_CONFIG:
        assert_true(db_tenants_set_config(f->pool, t, shard, value, on_done, c, &err));
        break;
    case SET_SCHEDULING:
        assert_true(db_tenants_set_scheduling_policy(f->pool, t, shard, value, on_done, c, &err));
        break;
    case SET_AZ:
        db_tenants_set_preferred_az(f->pool, t, shard, value, on_done, c);
        break;
    }
    pump(f, &c->calls, before + 1);
}

static void test_tenant_updates(void **state)
{
    Fixture *f = fixture_or_skip(state);
    static const struct {
        Setter which;
        const char *column;
        const char *tenant_value, *shard_value;
    } setters[] = {
        {SET_PLACEMENT, "placement_policy", "\"Secondary\"", "{\"Attached\": 2}"},
        {SET_CONFIG, "config", "{\"pitr_interval\": \"7d\"}", "{}"},
        {SET_SCHEDULING, "scheduling_policy", "\"Pause\"", "\"Stop\""},
        {SET_AZ, "coalesce(preferred_az_id, 'NULL')", "az-b", NULL},
    };
    TenantId missing;
    tenant_id_generate(&missing);
    for (size_t i = 0; i < sizeof(setters) / sizeof(setters[0]); i++) {
        char id[ID_STR_SIZE], v[TEXT_MAX];
        TenantId t = create_tenant(f, 2, 0, id);
        Capture c = {0};
        /* whole tenant */
        run_setter(f, setters[i].which, &t, NULL, setters[i].tenant_value, &c);
        expect_ok(&c);
        for (unsigned n = 0; n < 2; n++) {
            column_of(id, n, setters[i].column, v, sizeof(v));
            assert_string_equal(v, setters[i].tenant_value);
        }
        /* one shard */
        ShardIndex one = {.number = 1, .count = 2};
        run_setter(f, setters[i].which, &t, &one, setters[i].shard_value, &c);
        expect_ok(&c);
        column_of(id, 0, setters[i].column, v, sizeof(v));
        assert_string_equal(v, setters[i].tenant_value);
        column_of(id, 1, setters[i].column, v, sizeof(v));
        assert_string_equal(v, setters[i].shard_value != NULL ? setters[i].shard_value : "NULL");
        /* unknown tenant, unknown shard */
        run_setter(f, setters[i].which, &missing, NULL, setters[i].tenant_value, &c);
        expect_err(&c, ERR_NOT_FOUND, NULL);
        ShardIndex other = {.number = 0, .count = 4};
        run_setter(f, setters[i].which, &t, &other, setters[i].tenant_value, &c);
        expect_err(&c, ERR_NOT_FOUND, "shard");
    }

    /* JSON setters refuse missing text up front, and the database refuses non-JSON */
    char id[ID_STR_SIZE];
    TenantId t = create_tenant(f, 0, 0, id);
    Err err;
    Capture c = {0};
    assert_false(db_tenants_set_placement_policy(f->pool, &t, NULL, NULL, on_done, &c, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_false(db_tenants_set_config(f->pool, &t, NULL, "", on_done, &c, &err));
    assert_false(db_tenants_set_scheduling_policy(f->pool, &t, NULL, NULL, on_done, &c, &err));
    assert_int_equal(c.calls, 0);
    run_setter(f, SET_CONFIG, &t, NULL, "{broken", &c);
    expect_err(&c, ERR_INTERNAL, NULL);
    char v[TEXT_MAX];
    column_of(id, 0, "config", v, sizeof(v));
    assert_string_equal(v, "{\"gc_period\": \"1h\"}");
}

static void test_tenant_delete(void **state)
{
    Fixture *f = fixture_or_skip(state);
    char id[ID_STR_SIZE];
    TenantId t = create_tenant(f, 2, 0, id);
    TimelineId tl;
    timeline_id_generate(&tl);
    Capture i = {0};
    Err err;
    assert_true(db_imports_insert(f->pool, &t, &tl, "{\"0002\": {\"InProgress\": null}}", on_import,
                                  &i, &err));
    pump(f, &i.calls, 1);
    expect_ok(&i);

    Capture c = {0};
    db_tenants_delete(f->pool, &t, on_done, &c);
    pump(f, &c.calls, 1);
    expect_ok(&c);
    assert_int_equal(rows_of(id), 0);
    assert_int_equal(
        sql_int("SELECT count(*) FROM timeline_imports WHERE tenant_id = $1", 1, id, NULL, NULL),
        0);
    db_tenants_delete(f->pool, &t, on_done, &c);
    pump(f, &c.calls, 2);
    expect_err(&c, ERR_NOT_FOUND, id);
    Capture g;
    get_tenant(f, &t, &g);
    expect_err(&g, ERR_NOT_FOUND, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* shard split                                                                                */
/* ------------------------------------------------------------------------------------------ */

typedef enum SplitOp { OP_BEGIN, OP_COMPLETE, OP_ABORT } SplitOp;

static void split(Fixture *f, SplitOp op, const TenantId *t, unsigned old_count, unsigned new_count,
                  uint32_t stripe, Capture *c)
{
    Err err;
    memset(c, 0, sizeof(*c));
    bool started = false;
    switch (op) {
    case OP_BEGIN:
        started = db_tenants_split_begin(f->pool, t, (ShardCount)old_count, (ShardCount)new_count,
                                         stripe, on_shards, c, &err);
        break;
    case OP_COMPLETE:
        started = db_tenants_split_complete(f->pool, t, (ShardCount)old_count,
                                            (ShardCount)new_count, on_shards, c, &err);
        break;
    case OP_ABORT:
        started = db_tenants_split_abort(f->pool, t, (ShardCount)old_count, (ShardCount)new_count,
                                         on_shards, c, &err);
        break;
    }
    if (!started)
        fail_msg("split step refused its arguments: %s", err.msg);
    pump(f, &c->calls, 1);
}

static int64_t count_where(const char *id, const char *cond)
{
    char query[256];
    snprintf(query, sizeof(query), "SELECT count(*) FROM tenant_shards WHERE tenant_id = $1 AND %s",
             cond);
    return sql_int(query, 1, id, NULL, NULL);
}

static void test_split_begin_complete(void **state)
{
    Fixture *f = fixture_or_skip(state);
    char id[ID_STR_SIZE];
    TenantId t = create_tenant(f, 2, 0, id);
    ShardIndex idx1 = {.number = 1, .count = 2};
    Capture u = {0};
    db_tenants_set_preferred_az(f->pool, &t, &idx1, "az-z", on_done, &u);
    pump(f, &u.calls, 1);
    expect_ok(&u);
    for (int i = 0; i < 3; i++)
        increment(f, &t, 0, 2, 401); /* shard 0: generation 3 on 401 */
    for (int i = 0; i < 5; i++)
        increment(f, &t, 1, 2, 402); /* shard 1: generation 5 on 402 */

    Capture c;
    split(f, OP_BEGIN, &t, 2, 4, 0, &c);
    expect_ok(&c);
    assert_int_equal(c.n, 4);
    for (unsigned n = 0; n < 4; n++) {
        const TestShard *s = &c.shards[n];
        assert_int_equal(s->tsid.number, n);
        assert_int_equal(s->tsid.count, 4);
        assert_true(s->splitting);
        assert_int_equal(s->stripe_size, 2048);
        assert_int_equal(s->generation, n % 2 == 0 ? 3 : 5); /* the parent's generation */
        assert_int_equal(s->node, n % 2 == 0 ? 401 : 402);
        assert_string_equal(s->config, "{\"gc_period\": \"1h\"}");
        assert_string_equal(s->az, n % 2 == 0 ? "NULL" : "az-z");
    }
    assert_int_equal(rows_of(id), 6);
    assert_int_equal(count_where(id, "shard_count = 2 AND splitting = 1"), 2);
    assert_int_equal(count_where(id, "shard_count = 4 AND splitting = 1"), 4);

    /* a second begin, to any count, is refused and changes nothing */
    split(f, OP_BEGIN, &t, 2, 4, 0, &c);
    expect_err(&c, ERR_CONFLICT, "in progress");
    split(f, OP_BEGIN, &t, 2, 8, 0, &c);
    expect_err(&c, ERR_CONFLICT, NULL);
    assert_int_equal(rows_of(id), 6);

    split(f, OP_COMPLETE, &t, 2, 4, 0, &c);
    expect_ok(&c);
    assert_int_equal(c.n, 4);
    for (unsigned n = 0; n < 4; n++) {
        assert_int_equal(c.shards[n].tsid.count, 4);
        assert_false(c.shards[n].splitting);
    }
    assert_int_equal(rows_of(id), 4);
    assert_int_equal(count_where(id, "shard_count = 4 AND splitting = 0"), 4);

    /* complete again: done already, fine; abort now: too late */
    split(f, OP_COMPLETE, &t, 2, 4, 0, &c);
    expect_ok(&c);
    assert_int_equal(c.n, 4);
    split(f, OP_ABORT, &t, 2, 4, 0, &c);
    expect_err(&c, ERR_CONFLICT, "completed");
    assert_int_equal(rows_of(id), 4);

    /* the next split with a new stripe size */
    split(f, OP_BEGIN, &t, 4, 8, 1024, &c);
    expect_ok(&c);
    assert_int_equal(c.n, 8);
    assert_int_equal(c.shards[7].stripe_size, 1024);
    assert_int_equal(c.shards[7].generation, 5); /* child 7 <- parent 3 <- old parent 1 */
    split(f, OP_COMPLETE, &t, 4, 8, 0, &c);
    expect_ok(&c);
    assert_int_equal(rows_of(id), 8);
    assert_int_equal(count_where(id, "shard_count = 8 AND shard_stripe_size = 1024"), 8);
}

static void test_split_abort(void **state)
{
    Fixture *f = fixture_or_skip(state);
    char id[ID_STR_SIZE];
    TenantId t = create_tenant(f, 0, 1, id);
    increment(f, &t, 0, 0, 403); /* 2 */

    Capture c;
    /* completing a split that never began: no children */
    split(f, OP_COMPLETE, &t, 0, 4, 0, &c);
    expect_err(&c, ERR_CONFLICT, "0 of 4");

    split(f, OP_BEGIN, &t, 0, 4, 0, &c);
    expect_ok(&c);
    assert_int_equal(c.n, 4);
    for (unsigned n = 0; n < 4; n++) {
        assert_int_equal(c.shards[n].generation, 2);
        assert_int_equal(c.shards[n].node, 403);
    }
    assert_int_equal(rows_of(id), 5);

    split(f, OP_ABORT, &t, 0, 4, 0, &c);
    expect_ok(&c);
    assert_int_equal(c.n, 1); /* the parent */
    assert_int_equal(c.shards[0].tsid.count, 0);
    assert_false(c.shards[0].splitting);
    assert_int_equal(c.shards[0].generation, 2);
    assert_int_equal(rows_of(id), 1);
    assert_int_equal(count_where(id, "splitting = 0 AND shard_count = 0"), 1);

    /* abort again: nothing left to undo, fine; complete now: no children */
    split(f, OP_ABORT, &t, 0, 4, 0, &c);
    expect_ok(&c);
    split(f, OP_COMPLETE, &t, 0, 4, 0, &c);
    expect_err(&c, ERR_CONFLICT, NULL);
    assert_int_equal(rows_of(id), 1);

    /* and the split can start over */
    split(f, OP_BEGIN, &t, 0, 2, 0, &c);
    expect_ok(&c);
    assert_int_equal(rows_of(id), 3);
}

static void test_split_refused(void **state)
{
    Fixture *f = fixture_or_skip(state);
    TenantId missing;
    tenant_id_generate(&missing);
    Capture c;
    split(f, OP_BEGIN, &missing, 1, 2, 0, &c);
    expect_err(&c, ERR_NOT_FOUND, NULL);
    split(f, OP_COMPLETE, &missing, 1, 2, 0, &c);
    expect_err(&c, ERR_NOT_FOUND, NULL);
    split(f, OP_ABORT, &missing, 1, 2, 0, &c);
    expect_err(&c, ERR_NOT_FOUND, NULL);

    /* the caller's idea of the shard count is wrong */
    char id[ID_STR_SIZE];
    TenantId t = create_tenant(f, 4, 0, id);
    split(f, OP_BEGIN, &t, 2, 8, 0, &c);
    expect_err(&c, ERR_CONFLICT, "count 4");
    split(f, OP_BEGIN, &t, 1, 2, 0, &c);
    expect_err(&c, ERR_CONFLICT, NULL);
    assert_int_equal(rows_of(id), 4);
    assert_int_equal(count_where(id, "splitting <> 0"), 0);

    /* arguments that cannot describe a split: refused up front, no callback */
    memset(&c, 0, sizeof(c));
    static const struct {
        unsigned old_count, new_count;
    } bad[] = {{4, 4}, {4, 2}, {4, 6}, {0, 1}, {1, 1}, {2, 0}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        Err err;
        err_clear(&err);
        assert_false(db_tenants_split_begin(f->pool, &t, (ShardCount)bad[i].old_count,
                                            (ShardCount)bad[i].new_count, 0, on_shards, &c, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_false(db_tenants_split_complete(f->pool, &t, (ShardCount)bad[i].old_count,
                                               (ShardCount)bad[i].new_count, on_shards, &c, &err));
        assert_false(db_tenants_split_abort(f->pool, &t, (ShardCount)bad[i].old_count,
                                            (ShardCount)bad[i].new_count, on_shards, &c, &err));
    }
    Err err;
    assert_false(
        db_tenants_split_begin(f->pool, &t, 4, 8, (uint32_t)INT32_MAX + 1, on_shards, &c, &err));
    assert_int_equal(c.calls, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* timeline imports                                                                           */
/* ------------------------------------------------------------------------------------------ */

static void set_status(Fixture *f, const TenantId *t, const TimelineId *tl, unsigned number,
                       const char *status, Capture *c)
{
    Err err;
    int before = c->calls;
    ShardIndex idx = {.number = (ShardNumber)number, .count = 2};
    assert_true(db_imports_set_shard_status(f->pool, t, tl, idx, status, on_import, c, &err));
    pump(f, &c->calls, before + 1);
}

static void status_of(const char *tenant, const char *timeline, const char *shard, char *out,
                      size_t cap)
{
    sql_text(
        out, cap,
        "SELECT (shard_statuses -> $3::text)::text FROM timeline_imports WHERE tenant_id = $1 AND "
        "timeline_id = $2",
        3, tenant, timeline, shard);
}

static void test_imports(void **state)
{
    Fixture *f = fixture_or_skip(state);
    char tid[ID_STR_SIZE], tlid[ID_STR_SIZE], v[TEXT_MAX];
    TenantId t = create_tenant(f, 2, 0, tid);
    TimelineId tl;
    timeline_id_generate(&tl);
    timeline_id_format(&tl, tlid);
    const char *initial = "{\"0002\": {\"InProgress\": null}, \"0102\": {\"InProgress\": null}}";
    Capture c = {0};
    Err err;

    assert_true(db_imports_insert(f->pool, &t, &tl, initial, on_import, &c, &err));
    pump(f, &c.calls, 1);
    expect_ok(&c);
    assert_true(c.flag);
    assert_true(tenant_id_eq(&c.import.tenant_id, &t));
    assert_true(timeline_id_eq(&c.import.timeline_id, &tl));
    assert_non_null(strstr(c.statuses, "\"0102\": {\"InProgress\": null}"));

    /* idempotent: the stored row stays */
    assert_true(db_imports_insert(f->pool, &t, &tl, "{\"0002\": \"Done\"}", on_import, &c, &err));
    pump(f, &c.calls, 2);
    expect_ok(&c);
    assert_false(c.flag);
    status_of(tid, tlid, "0002", v, sizeof(v));
    assert_string_equal(v, "{\"InProgress\": null}");

    /* get */
    db_imports_get(f->pool, &t, &tl, on_import, &c);
    pump(f, &c.calls, 3);
    expect_ok(&c);
    assert_false(c.flag);
    assert_non_null(strstr(c.statuses, "0002"));

    /* the status table: (shard, new status, expected outcome, changed) in order */
    static const struct {
        unsigned shard;
        const char *status;
        ErrCode code;
        bool changed;
        const char *stored;
    } steps[] = {
        {0, "{\"InProgress\": {\"V1\": {\"jobs\": 3, \"completed\": 1}}}", ERR_NONE, true,
         "{\"InProgress\": {\"V1\": {\"jobs\": 3, \"completed\": 1}}}"},
        {0, "{\"InProgress\": {\"V1\": {\"jobs\": 3, \"completed\": 1}}}", ERR_NONE, false, NULL},
        {0, "{\"InProgress\": {\"V1\": {\"jobs\": 3, \"completed\": 2}}}", ERR_NONE, true, NULL},
        {0, "\"Done\"", ERR_NONE, true, "\"Done\""},
        {0, "\"Done\"", ERR_NONE, false, "\"Done\""},
        {0, "{\"Error\": \"late\"}", ERR_CONFLICT, false, "\"Done\""},
        {0, "{\"InProgress\": null}", ERR_CONFLICT, false, "\"Done\""},
        {1, "{\"Error\": \"boom\"}", ERR_NONE, true, "{\"Error\": \"boom\"}"},
        {1, "{\"Error\": \"boom\"}", ERR_NONE, false, NULL},
        {1, "\"Done\"", ERR_CONFLICT, false, "{\"Error\": \"boom\"}"},
        {2, "\"Done\"", ERR_NOT_FOUND, false, NULL}, /* shard 0202: not part of the import */
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        set_status(f, &t, &tl, steps[i].shard, steps[i].status, &c);
        if (steps[i].code == ERR_NONE) {
            if (!c.ok)
                fail_msg("step %zu: %s", i, c.err.msg);
            if (c.flag != steps[i].changed)
                fail_msg("step %zu: changed %d, expected %d", i, c.flag, steps[i].changed);
        } else {
            if (c.ok)
                fail_msg("step %zu: accepted", i);
            expect_err(&c, steps[i].code, NULL);
        }
        if (steps[i].stored != NULL) {
            char shard[SHARD_INDEX_STR_SIZE];
            shard_index_format((ShardIndex){.number = (ShardNumber)steps[i].shard, .count = 2},
                               shard);
            status_of(tid, tlid, shard, v, sizeof(v));
            assert_string_equal(v, steps[i].stored);
        }
    }

    /* list */
    Capture l = {0};
    db_imports_list(f->pool, on_imports, &l);
    pump(f, &l.calls, 1);
    expect_ok(&l);
    assert_true(l.n >= 1);

    /* unknown import */
    TimelineId other;
    timeline_id_generate(&other);
    set_status(f, &t, &other, 0, "\"Done\"", &c);
    expect_err(&c, ERR_NOT_FOUND, "no import");
    db_imports_get(f->pool, &t, &other, on_import, &c);
    pump(f, &c.calls, c.calls + 1);
    expect_err(&c, ERR_NOT_FOUND, NULL);

    /* delete */
    Capture d = {0};
    db_imports_delete(f->pool, &t, &tl, on_done, &d);
    pump(f, &d.calls, 1);
    expect_ok(&d);
    db_imports_delete(f->pool, &t, &tl, on_done, &d);
    pump(f, &d.calls, 2);
    expect_err(&d, ERR_NOT_FOUND, NULL);
    db_imports_get(f->pool, &t, &tl, on_import, &c);
    pump(f, &c.calls, c.calls + 1);
    expect_err(&c, ERR_NOT_FOUND, NULL);

    /* argument checks */
    assert_false(db_imports_insert(f->pool, &t, &tl, NULL, on_import, &c, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    ShardIndex idx = {.number = 0, .count = 2};
    assert_false(db_imports_set_shard_status(f->pool, &t, &tl, idx, "", on_import, &c, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
}

/* ------------------------------------------------------------------------------------------ */
/* database unavailable                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------------ */
/* compute_notifications (migration 0003)                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct NotifiedCapture {
    Capture c;
    TenantId tenants[MAX_ROWS];
    uint8_t first_byte[MAX_ROWS];
} NotifiedCapture;

static void on_notified_rows(const Err *err, const DbComputeNotification *rows, size_t n, void *arg)
{
    NotifiedCapture *nc = arg;
    capture_err(&nc->c, err);
    nc->c.n = n;
    for (size_t i = 0; i < n && i < MAX_ROWS; i++) {
        nc->tenants[i] = rows[i].tenant_id;
        nc->first_byte[i] = rows[i].body_sha256[0];
    }
}

static void cn_write(Fixture *f, const DbComputeNotificationWrite *w, size_t n)
{
    Capture c = {0};
    (void)db_compute_notifications_write(f->pool, w, n, on_done, &c);
    pump(f, &c.calls, 1);
    expect_ok(&c);
}

static DbComputeNotificationWrite cn_entry(const TenantId *t, int byte)
{
    DbComputeNotificationWrite w = {.tenant_id = *t, .has_hash = byte >= 0};
    if (byte >= 0)
        memset(w.body_sha256, byte, sizeof(w.body_sha256));
    return w;
}

static void test_compute_notifications(void **state)
{
    Fixture *f = fixture_or_skip(state);
    /* 0003 goes down and up cleanly */
    assert_true(apply_migrations(2));
    assert_int_equal(sql_int("SELECT count(*) FROM information_schema.tables WHERE table_name = "
                             "'compute_notifications'",
                             0, NULL, NULL, NULL),
                     0);
    assert_true(apply_migrations(SCHEMA_MIGRATE_TARGET_LATEST));

    char a_id[ID_STR_SIZE], b_id[ID_STR_SIZE], d_id[ID_STR_SIZE];
    TenantId a = create_tenant(f, 2, 1, a_id);
    TenantId b = create_tenant(f, 0, 1, b_id);
    TenantId d = create_tenant(f, 0, 1, d_id);
    TenantId gone;
    tenant_id_generate(&gone);

    /* upserts and removals in one batch */
    DbComputeNotificationWrite w1[] = {cn_entry(&a, 0x11), cn_entry(&b, 0x22), cn_entry(&d, 0x33),
                                       cn_entry(&gone, 0x44)};
    cn_write(f, w1, 4);
    DbComputeNotificationWrite w2[] = {cn_entry(&a, -1), cn_entry(&b, 0x55)};
    cn_write(f, w2, 2);
    char hash[65];
    sql_text(hash, sizeof(hash),
             "SELECT body_sha256 FROM compute_notifications WHERE tenant_id = $1", 1, b_id);
    assert_string_equal(hash, "5555555555555555555555555555555555555555555555555555555555555555");
    assert_int_equal(sql_int("SELECT count(*) FROM compute_notifications WHERE tenant_id = $1", 1,
                             a_id, NULL, NULL),
                     0);
    cn_write(f, NULL, 0);

    /* the load removes rows of tenants that are gone or Detached, then reads the rest */
    PGresult *r = PQexecParams(PG.check,
                               "UPDATE tenant_shards SET placement_policy = '\"Detached\"' "
                               "WHERE tenant_id = $1",
                               1, NULL, (const char *const[]){d_id}, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    NotifiedCapture nc;
    memset(&nc, 0, sizeof(nc));
    db_compute_notifications_load(f->pool, on_notified_rows, &nc);
    pump(f, &nc.c.calls, 1);
    expect_ok(&nc.c);
    assert_int_equal(nc.c.n, 1);
    assert_true(tenant_id_eq(&nc.tenants[0], &b));
    assert_int_equal(nc.first_byte[0], 0x55);
    assert_int_equal(sql_int("SELECT count(*) FROM compute_notifications", 0, NULL, NULL, NULL), 1);
}

/* ------------------------------------------------------------------------------------------ */
/* prepared statements (db_conn_prepare_statements, on in every pool connection)              */
/* ------------------------------------------------------------------------------------------ */

typedef struct Ran {
    int calls;
    bool ok;
    char sqlstate[6];
    size_t n_results;
    int fields;
    char value[2][64]; /* row 0, column 0 of the first two statements */
} Ran;

static void on_ran(const DbResult *res, void *arg)
{
    Ran *r = arg;
    r->calls++;
    r->ok = res->ok;
    str_copy(r->sqlstate, sizeof(r->sqlstate), res->sqlstate);
    r->n_results = res->ok ? res->n_results : 0;
    r->fields = res->ok && res->n_results > 0 ? PQnfields(res->results[0]) : 0;
    for (size_t i = 0; i < 2; i++) {
        const char *v = res->ok ? db_result_value(res, i, 0, 0) : NULL;
        str_copy(r->value[i], sizeof(r->value[i]), v != NULL ? v : "");
    }
}

static Ran run_exec(Fixture *f, const char *sql, const char *param)
{
    Ran r = {0};
    const char *params[1] = {param};
    (void)db_exec(f->pool, sql, param != NULL ? 1 : 0, params, on_ran, &r);
    pump(f, &r.calls, 1);
    return r;
}

/* prepared_count: statements with this text prepared on the pool's (one) session. */
static int64_t prepared_count(Fixture *f, const char *sql)
{
    Ran r = run_exec(f, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", sql);
    assert_true(r.ok);
    return strtoll(r.value[0], NULL, 10);
}

static void test_prepared_statements(void **state)
{
    (void)state;
    if (!PG.available)
        SKIP_MISSING_DEP("no usable Postgres 15 (binaries in " PG_BIN ")");
    Fixture *f = fixture_new(PG.url, 1, 20000, 0); /* one session: what it prepared is visible */
    static const char ADD[] = "SELECT $1::int + 1";
    Ran r = run_exec(f, ADD, "41");
    assert_true(r.ok);
    assert_string_equal(r.value[0], "42");
    assert_int_equal(prepared_count(f, ADD), 1);
    r = run_exec(f, ADD, "1"); /* by name now, same answer shape */
    assert_true(r.ok);
    assert_int_equal(r.n_results, 1);
    assert_string_equal(r.value[0], "2");
    assert_int_equal(prepared_count(f, ADD), 1);

    /* a statement the server refuses is not kept: the second run gets the same error, not
     * "prepared statement does not exist" */
    static const char BAD[] = "SELECT no_such_column FROM pg_class";
    for (int i = 0; i < 2; i++) {
        r = run_exec(f, BAD, NULL);
        assert_false(r.ok);
        assert_string_equal(r.sqlstate, "42703");
    }
    assert_int_equal(prepared_count(f, BAD), 0);

    /* a pipelined transaction prepares a statement once even when it runs twice in it */
    static const char TWICE[] = "SELECT $1::int * 2";
    const char *p3[1] = {"3"}, *p5[1] = {"5"};
    DbStatement two[2] = {{.sql = TWICE, .nparams = 1, .params = p3},
                          {.sql = TWICE, .nparams = 1, .params = p5}};
    Ran t = {0};
    (void)db_txn_first(f->pool, two, 2, on_ran, &t);
    pump(f, &t.calls, 1);
    assert_true(t.ok);
    assert_int_equal(t.n_results, 2);
    assert_string_equal(t.value[0], "6");
    assert_string_equal(t.value[1], "10");
    assert_int_equal(prepared_count(f, TWICE), 1);

    /* a prepare the server skipped (an earlier statement failed) is forgotten: the statement
     * runs next time */
    static const char LATER[] = "SELECT $1::int * 3";
    DbStatement failing[2] = {{.sql = "SELECT 1 / 0", .nparams = 0, .params = NULL},
                              {.sql = LATER, .nparams = 1, .params = p3}};
    t = (Ran){0};
    (void)db_txn_first(f->pool, failing, 2, on_ran, &t);
    pump(f, &t.calls, 1);
    assert_false(t.ok);
    assert_string_equal(t.sqlstate, "22012");
    assert_int_equal(prepared_count(f, LATER), 0);
    r = run_exec(f, LATER, "3");
    assert_true(r.ok);
    assert_string_equal(r.value[0], "9");

    /* a schema change that alters a prepared statement's result type fails it once (0A000);
     * the connection then forgets its statements and the next run prepares it afresh */
    assert_true(run_exec(f, "DROP TABLE IF EXISTS prepared_probe", NULL).ok);
    assert_true(run_exec(f, "CREATE TABLE prepared_probe (a int)", NULL).ok);
    assert_true(run_exec(f, "INSERT INTO prepared_probe VALUES (7)", NULL).ok);
    static const char STAR[] = "SELECT * FROM prepared_probe";
    r = run_exec(f, STAR, NULL);
    assert_true(r.ok);
    assert_int_equal(r.fields, 1);
    assert_true(run_exec(f, "ALTER TABLE prepared_probe ADD COLUMN b int", NULL).ok);
    r = run_exec(f, STAR, NULL);
    assert_false(r.ok);
    assert_string_equal(r.sqlstate, "0A000");
    r = run_exec(f, STAR, NULL);
    assert_true(r.ok);
    assert_int_equal(r.fields, 2);
    assert_string_equal(r.value[0], "7");
    assert_true(run_exec(f, "DROP TABLE prepared_probe", NULL).ok);

    /* a session that loses its statements (as behind a transaction pooler) fails one statement
     * (26000), then runs everything unnamed */
    assert_true(run_exec(f, ADD, "0").ok); /* prepared again under a new name (the 0A000 forgot
                                              every one; the old ones stay until reconnect) */
    assert_int_equal(prepared_count(f, ADD), 2);
    assert_true(run_exec(f, "DEALLOCATE ALL", NULL).ok);
    r = run_exec(f, ADD, "1");
    assert_false(r.ok);
    assert_string_equal(r.sqlstate, "26000");
    r = run_exec(f, ADD, "2");
    assert_true(r.ok);
    assert_string_equal(r.value[0], "3");
    assert_int_equal(prepared_count(f, ADD), 0);
    fixture_free(f);
}

static void test_unavailable(void **state)
{
    if (!PG.available)
        SKIP_MISSING_DEP("no usable Postgres 15 (binaries in " PG_BIN ")");
    int port = pg_cluster_free_port();
    char url[128];
    snprintf(url, sizeof(url), "postgresql://postgres@127.0.0.1:%d/postgres", port);
    Fixture *f = fixture_new(url, 1, 300, 0);
    Capture c = {0};
    db_nodes_list(f->pool, on_nodes, &c);
    TenantId t;
    tenant_id_generate(&t);
    TenantShardId s = shard_of(&t, 0, 0);
    Capture g = {0};
    db_tenants_increment_generation(f->pool, &s, 1, on_generation, &g);
    Capture r = {0};
    db_tenants_reattach(f->pool, 1, on_shards, &r);
    pump(f, &c.calls, 1);
    pump(f, &g.calls, 1);
    pump(f, &r.calls, 1);
    expect_err(&c, ERR_UNAVAILABLE, NULL);
    expect_err(&g, ERR_UNAVAILABLE, NULL);
    expect_err(&r, ERR_UNAVAILABLE, NULL);
    assert_int_equal(err_http_status(g.err.code), 503);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migration_0002_down_up),
        cmocka_unit_test_setup_teardown(test_node_register, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_node_invalid_arguments, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_insert, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_insert_invalid, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_insert_shard_pageservers, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_insert_batched, test_setup, test_teardown),
        cmocka_unit_test(test_tenant_insert_batch_db_failure),
        cmocka_unit_test_setup_teardown(test_tenant_load, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_generation_batched_increments, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_generation_batch_failure, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_generation_concurrent_increments, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_generation_missing_and_detach, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_reattach, test_setup, test_teardown),
        cmocka_unit_test(test_prepared_statements),
        cmocka_unit_test_setup_teardown(test_generations_lookup, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_updates, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_delete, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_split_begin_complete, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_split_abort, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_split_refused, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_imports, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_compute_notifications, test_setup, test_teardown),
        cmocka_unit_test(test_unavailable),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
