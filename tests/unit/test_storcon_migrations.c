/*
 * test_storcon_migrations.c: the embedded migration table (numbering, non-empty scripts, the
 * 0001 schema creating and dropping every table of spec/storcon.md), the table validator and the
 * migration planner. Applying them to a real Postgres is the integration tests' job.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/fsm.h"
#include "shared/str.h"
#include "storcon/schema_migrate.h"
#include "storcon/migrations.h"

/* The tables of spec/storcon.md "Postgres schema" (the version table belongs to the runner). */
static const char *const SPEC_TABLES[] = {"tenant_shards", "nodes", "timeline_imports",
                                          "controllers"};
#define N_SPEC_TABLES (sizeof(SPEC_TABLES) / sizeof(SPEC_TABLES[0]))

/* normalize: lower case, SQL comments removed, whitespace runs folded to one space; the caller
 * frees. So that "CREATE  TABLE\n  nodes" and "create table nodes" compare equal. */
static char *normalize(const char *sql)
{
    StrBuf b = STRBUF_INIT;
    bool space = false;
    for (const char *p = sql; *p != '\0'; p++) {
        if (p[0] == '-' && p[1] == '-') {
            while (*p != '\0' && *p != '\n')
                p++;
            if (*p == '\0')
                break;
        }
        if (isspace((unsigned char)*p)) {
            space = b.len > 0;
            continue;
        }
        if (space)
            strbuf_append_str(&b, " ");
        space = false;
        char c = (char)tolower((unsigned char)*p);
        strbuf_append(&b, &c, 1);
    }
    return strbuf_detach(&b);
}

/* contains_statement: "<prefix> <table>" followed by a non-identifier character. */
static bool contains_statement(const char *normalized, const char *prefix, const char *table)
{
    char needle[128];
    assert_true(str_printf(needle, sizeof(needle), "%s %s", prefix, table));
    for (const char *p = strstr(normalized, needle); p != NULL; p = strstr(p + 1, needle)) {
        char next = p[strlen(needle)];
        if (!(isalnum((unsigned char)next) || next == '_'))
            return true;
    }
    return false;
}

static void test_numbered_contiguously(void **state)
{
    assert_true(MIGRATIONS_COUNT >= 1);
    for (int i = 0; i < MIGRATIONS_COUNT; i++)
        assert_int_equal(MIGRATIONS[i].version, i + 1);
    Err err;
    err_clear(&err);
    assert_true(migrations_validate(MIGRATIONS, MIGRATIONS_COUNT, &err));
}

static void test_scripts_not_empty(void **state)
{
    for (int i = 0; i < MIGRATIONS_COUNT; i++) {
        const Migration *m = &MIGRATIONS[i];
        assert_non_null(m->name);
        assert_true(strlen(m->name) > 0);
        char *up = normalize(m->up);
        char *down = normalize(m->down);
        assert_true(strlen(up) > 0);
        assert_true(strlen(down) > 0);
        free(up);
        free(down);
    }
}

static void test_initial_creates_spec_tables(void **state)
{
    assert_string_equal(MIGRATIONS[0].name, "initial");
    char *up = normalize(MIGRATIONS[0].up);
    for (size_t i = 0; i < N_SPEC_TABLES; i++) {
        if (!contains_statement(up, "create table", SPEC_TABLES[i]))
            fail_msg("0001 up does not create %s", SPEC_TABLES[i]);
    }
    /* key columns of the spec are there */
    assert_non_null(strstr(up, "primary key (tenant_id, shard_number, shard_count)"));
    assert_non_null(strstr(up, "primary key (tenant_id, timeline_id)"));
    assert_non_null(strstr(up, "shard_statuses jsonb"));
    assert_non_null(strstr(up, "generation_pageserver bigint null"));
    assert_non_null(strstr(up, "scheduling_policy text not null default '\"active\"'"));
    assert_non_null(strstr(up, "lifecycle in ('active', 'deleted')"));
    free(up);
}

static void test_initial_down_drops_spec_tables(void **state)
{
    char *down = normalize(MIGRATIONS[0].down);
    for (size_t i = 0; i < N_SPEC_TABLES; i++) {
        if (!contains_statement(down, "drop table", SPEC_TABLES[i]))
            fail_msg("0001 down does not drop %s", SPEC_TABLES[i]);
    }
    assert_null(strstr(down, "create table"));
    free(down);
}

/* The matcher must not be fooled by a longer name: "nodes_old" is not "nodes". */
static void test_matcher_needs_whole_name(void **state)
{
    char *sql = normalize("CREATE TABLE nodes_old (x int);\n-- create table nodes\n");
    assert_false(contains_statement(sql, "create table", "nodes"));
    assert_true(contains_statement(sql, "create table", "nodes_old"));
    free(sql);
}

typedef struct ValidateCase {
    const char *what;
    Migration rows[2];
    int n;
    bool ok;
} ValidateCase;

static void test_validate_table(void **state)
{
    static const ValidateCase cases[] = {
        {"good", {{1, "a", "x", "y"}, {2, "b", "x", "y"}}, 2, true},
        {"empty table", {{0}}, 0, true},
        {"starts at 2", {{2, "a", "x", "y"}}, 1, false},
        {"gap", {{1, "a", "x", "y"}, {3, "b", "x", "y"}}, 2, false},
        {"out of order", {{2, "a", "x", "y"}, {1, "b", "x", "y"}}, 2, false},
        {"empty up", {{1, "a", " \n\t", "y"}}, 1, false},
        {"null down", {{1, "a", "x", NULL}}, 1, false},
        {"empty name", {{1, "", "x", "y"}}, 1, false},
        {"negative count", {{0}}, -1, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Err err;
        err_clear(&err);
        bool ok = migrations_validate(cases[i].rows, cases[i].n, &err);
        if (ok != cases[i].ok)
            fail_msg("case \"%s\": expected %s, got %s (%s)", cases[i].what,
                     cases[i].ok ? "ok" : "error", ok ? "ok" : "error", err.msg);
        if (!ok)
            assert_true(strlen(err.msg) > 0);
    }
}

typedef struct PlanCase {
    int current, target;
    bool more;
    int version;
    bool up;
} PlanCase;

static void test_plan_next(void **state)
{
    static const PlanCase cases[] = {
        {0, 0, false, 0, false}, {0, 1, true, 1, true},   {0, 3, true, 1, true},
        {2, 3, true, 3, true},   {3, 3, false, 0, false}, {3, 0, true, 3, false},
        {1, 0, true, 1, false},  {3, 2, true, 3, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int version = -7;
        bool up = !cases[i].up;
        bool more = schema_migrate_plan_next(cases[i].current, cases[i].target, &version, &up);
        assert_int_equal(more, cases[i].more);
        if (more) {
            assert_int_equal(version, cases[i].version);
            assert_int_equal(up, cases[i].up);
        }
    }
}

/* Walking the plan from any version to any other visits each migration once, in order. */
static void test_plan_walk(void **state)
{
    for (int from = 0; from <= 4; from++) {
        for (int to = 0; to <= 4; to++) {
            int current = from, steps = 0, version;
            bool up;
            while (schema_migrate_plan_next(current, to, &version, &up)) {
                assert_int_equal(version, up ? current + 1 : current);
                current = up ? version : version - 1;
                steps++;
                assert_true(steps <= 4);
            }
            assert_int_equal(current, to);
            assert_int_equal(steps, abs(to - from));
        }
    }
}

static void test_state_names(void **state)
{
    for (int s = 0; s < SCHEMA_MIGRATE_STATE_COUNT; s++) {
        const char *name = schema_migrate_state_name((SchemaMigrateState)s);
        assert_non_null(name);
        assert_string_not_equal(name, "?");
    }
    assert_string_equal(schema_migrate_state_name(SCHEMA_MIGRATE_STATE_COUNT), "?");
}

/* The runner's table (SCHEMA_MIGRATE_FSM): the path of a migration is legal, a skipped step, a
 * way back or leaving a terminal state is refused, and fsm_set_state only moves on legal ones. */
static void test_transitions(void **state)
{
    (void)state;
    static const struct {
        SchemaMigrateState from, to;
        bool ok;
    } cases[] = {
        {SCHEMA_MIGRATE_CONNECTING, SCHEMA_MIGRATE_LOCKING, true},
        {SCHEMA_MIGRATE_CONNECTING, SCHEMA_MIGRATE_CONNECT_BACKOFF, true},
        {SCHEMA_MIGRATE_CONNECT_BACKOFF, SCHEMA_MIGRATE_CONNECTING, true},
        {SCHEMA_MIGRATE_READ_VERSION, SCHEMA_MIGRATE_BEGIN, true},
        {SCHEMA_MIGRATE_RECORD, SCHEMA_MIGRATE_COMMIT_DELAY, true},
        {SCHEMA_MIGRATE_COMMIT, SCHEMA_MIGRATE_BEGIN, true},
        {SCHEMA_MIGRATE_UNLOCK, SCHEMA_MIGRATE_DONE, true},
        {SCHEMA_MIGRATE_APPLY, SCHEMA_MIGRATE_FAILED, true},
        {SCHEMA_MIGRATE_CONNECTING, SCHEMA_MIGRATE_CREATE_TABLE, false},
        {SCHEMA_MIGRATE_BEGIN, SCHEMA_MIGRATE_COMMIT, false},
        {SCHEMA_MIGRATE_APPLY, SCHEMA_MIGRATE_BEGIN, false},
        {SCHEMA_MIGRATE_CONNECT_BACKOFF, SCHEMA_MIGRATE_FAILED, false},
        {SCHEMA_MIGRATE_DONE, SCHEMA_MIGRATE_FAILED, false},
        {SCHEMA_MIGRATE_FAILED, SCHEMA_MIGRATE_CONNECTING, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(fsm_allowed(&SCHEMA_MIGRATE_FSM, cases[i].from, cases[i].to), cases[i].ok);
        SchemaMigrateState st = cases[i].from;
        assert_int_equal(fsm_set_state(&SCHEMA_MIGRATE_FSM, &st, cases[i].to, "test"), cases[i].ok);
        assert_int_equal(st, cases[i].ok ? cases[i].to : cases[i].from);
    }
    /* every state but the terminal ones has a way on */
    for (int s = 0; s < SCHEMA_MIGRATE_STATE_COUNT; s++) {
        bool leaves = false;
        for (size_t i = 0; i < SCHEMA_MIGRATE_FSM.n_transitions; i++)
            leaves = leaves || SCHEMA_MIGRATE_FSM.transitions[i].from == s;
        assert_int_equal(leaves, s != SCHEMA_MIGRATE_DONE && s != SCHEMA_MIGRATE_FAILED);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbered_contiguously),
        cmocka_unit_test(test_scripts_not_empty),
        cmocka_unit_test(test_initial_creates_spec_tables),
        cmocka_unit_test(test_initial_down_drops_spec_tables),
        cmocka_unit_test(test_matcher_needs_whole_name),
        cmocka_unit_test(test_validate_table),
        cmocka_unit_test(test_plan_next),
        cmocka_unit_test(test_plan_walk),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_transitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
