/* test_pageserver_pgdata.c: unit tests for pageserver/pg_control.c and pageserver/pgdata.c.
 *
 * Most tests run against a REAL cluster made by initdb once per run (as the postgres user when
 * running as root): pg_control is cross-checked against pg_controldata, every emitted relation
 * page is compared with the file's bytes, 4-shard plans are checked against the unsharded one,
 * and hostile copies of the directory must each fail with a clear error. Tests needing the
 * cluster are skipped (with the reason printed) when PostgreSQL 15's initdb is absent. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include "tests/unit/dep_util.h"
#include <pwd.h>

#include "shared/crc32c.h"
#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/id.h"
#include "shared/key.h"
#include "shared/str.h"

#include "pageserver/pg_control.h"
#include "pageserver/pgdata.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#ifndef PG_BIN
#define PG_BIN "/usr/lib/postgresql/15/bin"
#endif

/* ---- the initdb cluster (built once per run) ---- */

static char g_tmp[256];          /* mkdtemp directory */
static char g_pgdata[300];       /* <tmp>/d: the cluster */
static char g_controldata[8192]; /* pg_controldata output */
static bool g_have_cluster;
static char g_skip_reason[256];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int group_setup(void **state)
{
    if (access(PG_BIN "/initdb", X_OK) != 0) {
        (void)str_copy(g_skip_reason, sizeof(g_skip_reason),
                       PG_BIN "/initdb is absent (install postgresql-15)");
        printf("SKIP: %s\n", g_skip_reason);
        return 0;
    }
    (void)str_copy(g_tmp, sizeof(g_tmp), "/tmp/test_pgdata_XXXXXX");
    if (!mkdtemp(g_tmp))
        return -1;
    (void)str_printf(g_pgdata, sizeof(g_pgdata), "%s/d", g_tmp);
    char cmd[1024];
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(g_tmp, pw->pw_uid, pw->pw_gid) != 0) {
            (void)str_copy(g_skip_reason, sizeof(g_skip_reason),
                           "running as root and there is no postgres user to run initdb as");
            printf("SKIP: %s\n", g_skip_reason);
            return 0;
        }
        (void)str_printf(cmd, sizeof(cmd),
                         "runuser -u postgres -- " PG_BIN
                         "/initdb -D %s -U postgres --no-sync >%s/initdb.log 2>&1",
                         g_pgdata, g_tmp);
    } else {
        (void)str_printf(cmd, sizeof(cmd),
                         PG_BIN "/initdb -D %s -U postgres --no-sync >%s/initdb.log 2>&1", g_pgdata,
                         g_tmp);
    }
    double t0 = now_ms();
    if (system(cmd) != 0) {
        fprintf(stderr, "initdb failed: see %s/initdb.log\n", g_tmp);
        return -1;
    }
    printf("initdb: %.0f ms (%s)\n", now_ms() - t0, g_pgdata);
    (void)str_printf(cmd, sizeof(cmd), "LC_ALL=C " PG_BIN "/pg_controldata -D %s", g_pgdata);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(g_controldata, 1, sizeof(g_controldata) - 1, p);
    g_controldata[n] = '\0';
    if (pclose(p) != 0)
        return -1;
    g_have_cluster = true;
    return 0;
}

static int group_teardown(void **state)
{
    Err err = {0};
    if (g_tmp[0] && !fs_remove_tree(g_tmp, &err))
        fprintf(stderr, "cleanup %s: %s\n", g_tmp, err.msg);
    return 0;
}

#define NEED_CLUSTER()                                                                             \
    do {                                                                                           \
        if (!g_have_cluster) {                                                                     \
            SKIP_MISSING_DEP(g_skip_reason);                                                       \
        }                                                                                          \
    } while (0)

/* controldata: the value after "<label>:" in pg_controldata's output. */
static void controldata(const char *label, char *out, size_t cap)
{
    const char *p = strstr(g_controldata, label);
    if (!p)
        fail_msg("pg_controldata has no \"%s\"", label);
    p += strlen(label);
    assert_int_equal(*p, ':');
    p++;
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\n");
    assert_true(n < cap);
    memcpy(out, p, n);
    out[n] = '\0';
}

static uint64_t controldata_u64(const char *label)
{
    char v[128];
    uint64_t out;
    controldata(label, v, sizeof(v));
    if (!parse_u64(v, 0, UINT64_MAX, &out))
        fail_msg("pg_controldata %s: \"%s\" is not a number", label, v);
    return out;
}

static Lsn controldata_lsn(const char *label)
{
    char v[128];
    Lsn lsn;
    Err err = {0};
    controldata(label, v, sizeof(v));
    if (strcmp(v, "0/0") == 0)
        return 0;
    if (!lsn_parse(v, &lsn, &err))
        fail_msg("pg_controldata %s: %s", label, err.msg);
    return lsn;
}

static void read_whole(const char *path, uint8_t **data, size_t *len)
{
    char *d;
    Err err = {0};
    if (!fs_read_file(path, 64u << 20, &d, len, &err))
        fail_msg("%s: %s", path, err.msg);
    *data = (uint8_t *)d;
}

static void write_whole(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* ---- pg_control ---- */

/* make_control: a valid synthetic PG 15 pg_control image. */
static void make_control(uint8_t buf[PG_CONTROL_FILE_SIZE])
{
    memset(buf, 0, PG_CONTROL_FILE_SIZE);
    uint32_t v;
    v = PG_CONTROL_VERSION_15;
    memcpy(buf + PG_CONTROL_OFF_PG_CONTROL_VERSION, &v, 4);
    v = PG_CATALOG_VERSION_15;
    memcpy(buf + PG_CONTROL_OFF_CATALOG_VERSION_NO, &v, 4);
    v = PG_DB_SHUTDOWNED;
    memcpy(buf + PG_CONTROL_OFF_STATE, &v, 4);
    uint64_t lsn = 0x1511A8Du;
    memcpy(buf + PG_CONTROL_OFF_CHECKPOINT, &lsn, 8);
    uint32_t oid = 13573;
    memcpy(buf + PG_CONTROL_OFF_CHECKPOINT_COPY + PG_CHECKPOINT_OFF_NEXT_OID, &oid, 4);
    v = 8192;
    memcpy(buf + PG_CONTROL_OFF_BLCKSZ, &v, 4);
    v = 131072;
    memcpy(buf + PG_CONTROL_OFF_RELSEG_SIZE, &v, 4);
    pg_control_update_crc(buf);
}

typedef struct ControlCase {
    const char *name;
    size_t off;       /* field to overwrite (SIZE_MAX: none) */
    uint64_t value;   /* new value (4 bytes, or 8 for the checkpoint LSN) */
    bool fix_crc;     /* recompute the crc after the change */
    size_t len;       /* length passed to the parser */
    const char *want; /* substring of the error; NULL = success */
} ControlCase;

static const ControlCase CONTROL_CASES[] = {
    {"valid", SIZE_MAX, 0, true, PG_CONTROL_FILE_SIZE, NULL},
    {"shut down in recovery", PG_CONTROL_OFF_STATE, PG_DB_SHUTDOWNED_IN_RECOVERY, true,
     PG_CONTROL_FILE_SIZE, NULL},
    {"short", SIZE_MAX, 0, true, 4096, "4096 bytes, expected 8192"},
    {"empty", SIZE_MAX, 0, true, 0, "0 bytes, expected 8192"},
    {"long", SIZE_MAX, 0, true, PG_CONTROL_FILE_SIZE + 1, "8193 bytes"},
    {"bad crc", PG_CONTROL_OFF_TIME, 12345, false, PG_CONTROL_FILE_SIZE, "incorrect checksum"},
    {"control version", PG_CONTROL_OFF_PG_CONTROL_VERSION, 1700, true, PG_CONTROL_FILE_SIZE,
     "pg_control_version 1700"},
    {"unknown catalog", PG_CONTROL_OFF_CATALOG_VERSION_NO, 201001011, true, PG_CONTROL_FILE_SIZE,
     "unknown catalog version 201001011"},
    {"pg16 catalog", PG_CONTROL_OFF_CATALOG_VERSION_NO, 202307071, true, PG_CONTROL_FILE_SIZE,
     "PostgreSQL 16"},
    {"in production", PG_CONTROL_OFF_STATE, PG_DB_IN_PRODUCTION, true, PG_CONTROL_FILE_SIZE,
     "not shut down cleanly"},
    {"crash recovery", PG_CONTROL_OFF_STATE, PG_DB_IN_CRASH_RECOVERY, true, PG_CONTROL_FILE_SIZE,
     "\"in crash recovery\""},
    {"state garbage", PG_CONTROL_OFF_STATE, 77, true, PG_CONTROL_FILE_SIZE, "(77)"},
    {"block size", PG_CONTROL_OFF_BLCKSZ, 16384, true, PG_CONTROL_FILE_SIZE, "block size 16384"},
    {"segment size", PG_CONTROL_OFF_RELSEG_SIZE, 262144, true, PG_CONTROL_FILE_SIZE,
     "262144 blocks per relation segment"},
    {"no checkpoint", PG_CONTROL_OFF_CHECKPOINT, 0, true, PG_CONTROL_FILE_SIZE,
     "invalid checkpoint"},
};

static void test_pg_control_synthetic(void **state)
{
    for (size_t i = 0; i < N_ELEMS(CONTROL_CASES); i++) {
        const ControlCase *c = &CONTROL_CASES[i];
        uint8_t *buf = calloc(1, PG_CONTROL_FILE_SIZE + 1);
        make_control(buf);
        if (c->off != SIZE_MAX) {
            if (c->off == PG_CONTROL_OFF_CHECKPOINT || c->off == PG_CONTROL_OFF_TIME)
                memcpy(buf + c->off, &c->value, 8);
            else {
                uint32_t v = (uint32_t)c->value;
                memcpy(buf + c->off, &v, 4);
            }
            if (c->fix_crc)
                pg_control_update_crc(buf);
        }
        PgControl pc;
        Err err = {0};
        bool ok = pg_control_parse(buf, c->len, &pc, &err);
        free(buf);
        if (!c->want) {
            if (!ok)
                fail_msg("case %s: %s", c->name, err.msg);
            assert_int_equal(pc.pg_version, 15);
            assert_int_equal(pc.checkpoint.next_oid, 13573);
            assert_int_equal(pc.checkpoint_lsn, 0x1511A8Du);
            assert_int_equal(pg_control_base_lsn(&pc), 0x1511A90u);
            continue;
        }
        if (ok)
            fail_msg("case %s: parsed, want error \"%s\"", c->name, c->want);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        if (!strstr(err.msg, c->want))
            fail_msg("case %s: error \"%s\" lacks \"%s\"", c->name, err.msg, c->want);
    }
}

static void test_pg_version_from_catalog(void **state)
{
    uint32_t v = 0;
    Err err = {0};
    assert_true(pg_version_from_catalog(202209061, &v, &err));
    assert_int_equal(v, 15);
    assert_false(pg_version_from_catalog(202107181, &v, &err));
    assert_non_null(strstr(err.msg, "202107181"));
    assert_non_null(strstr(err.msg, "PostgreSQL 14"));
    assert_false(pg_version_from_catalog(1, &v, &err));
    assert_non_null(strstr(err.msg, "unknown catalog version 1 "));
    assert_string_equal(pg_db_state_name(PG_DB_SHUTDOWNED), "shut down");
    PgControl c = {0};
    c.checkpoint_lsn = 0x10;
    assert_int_equal(pg_control_base_lsn(&c), 0x10);
    c.checkpoint_lsn = 0x11;
    assert_int_equal(pg_control_base_lsn(&c), 0x18);
}

/* test_pg_control_matches_controldata: our offsets against Postgres' own reader. */
static void test_pg_control_matches_controldata(void **state)
{
    NEED_CLUSTER();
    char path[512];
    uint8_t *data;
    size_t len;
    (void)str_printf(path, sizeof(path), "%s/global/pg_control", g_pgdata);
    read_whole(path, &data, &len);
    PgControl pc;
    Err err = {0};
    if (!pg_control_parse(data, len, &pc, &err))
        fail_msg("%s", err.msg);
    /* the crc was verified by the parse; check it is the stored one and that we compute it */
    uint32_t stored;
    memcpy(&stored, data + PG_CONTROL_OFF_CRC, 4);
    assert_int_equal(pc.crc, stored);
    assert_int_equal(pg_control_compute_crc(data), stored);
    free(data);

    char v[128];
    assert_int_equal(pc.pg_control_version, controldata_u64("pg_control version number"));
    assert_int_equal(pc.catalog_version_no, controldata_u64("Catalog version number"));
    assert_int_equal(pc.pg_version, 15);
    assert_true(pc.system_identifier == controldata_u64("Database system identifier"));
    controldata("Database cluster state", v, sizeof(v));
    assert_string_equal(v, pg_db_state_name(pc.state));
    assert_int_equal(pc.checkpoint_lsn, controldata_lsn("Latest checkpoint location"));
    assert_int_equal(pc.checkpoint.redo, controldata_lsn("Latest checkpoint's REDO location"));
    assert_int_equal(pc.checkpoint.this_timeline,
                     controldata_u64("Latest checkpoint's TimeLineID"));
    assert_int_equal(pc.checkpoint.prev_timeline,
                     controldata_u64("Latest checkpoint's PrevTimeLineID"));
    controldata("Latest checkpoint's full_page_writes", v, sizeof(v));
    assert_int_equal(pc.checkpoint.full_page_writes, strcmp(v, "on") == 0);
    controldata("Latest checkpoint's NextXID", v, sizeof(v)); /* "epoch:xid" */
    char want_xid[64];
    (void)str_printf(want_xid, sizeof(want_xid), "%u:%u", (uint32_t)(pc.checkpoint.next_xid >> 32),
                     (uint32_t)pc.checkpoint.next_xid);
    assert_string_equal(v, want_xid);
    assert_int_equal(pc.checkpoint.next_oid, controldata_u64("Latest checkpoint's NextOID"));
    assert_int_equal(pc.checkpoint.next_multi,
                     controldata_u64("Latest checkpoint's NextMultiXactId"));
    assert_int_equal(pc.checkpoint.next_multi_offset,
                     controldata_u64("Latest checkpoint's NextMultiOffset"));
    assert_int_equal(pc.checkpoint.oldest_xid, controldata_u64("Latest checkpoint's oldestXID"));
    assert_int_equal(pc.checkpoint.oldest_xid_db,
                     controldata_u64("Latest checkpoint's oldestXID's DB"));
    assert_int_equal(pc.checkpoint.oldest_active_xid,
                     controldata_u64("Latest checkpoint's oldestActiveXID"));
    assert_int_equal(pc.checkpoint.oldest_multi,
                     controldata_u64("Latest checkpoint's oldestMultiXid"));
    assert_int_equal(pc.checkpoint.oldest_multi_db,
                     controldata_u64("Latest checkpoint's oldestMulti's DB"));
    assert_int_equal(pc.checkpoint.oldest_commit_ts_xid,
                     controldata_u64("Latest checkpoint's oldestCommitTsXid"));
    assert_int_equal(pc.checkpoint.newest_commit_ts_xid,
                     controldata_u64("Latest checkpoint's newestCommitTsXid"));
    assert_int_equal(pc.unlogged_lsn, controldata_lsn("Fake LSN counter for unlogged rels"));
    assert_int_equal(pc.min_recovery_point, controldata_lsn("Minimum recovery ending location"));
    assert_int_equal(pc.max_connections, controldata_u64("max_connections setting"));
    assert_int_equal(pc.max_worker_processes, controldata_u64("max_worker_processes setting"));
    assert_int_equal(pc.max_wal_senders, controldata_u64("max_wal_senders setting"));
    assert_int_equal(pc.max_prepared_xacts, controldata_u64("max_prepared_xacts setting"));
    assert_int_equal(pc.max_locks_per_xact, controldata_u64("max_locks_per_xact setting"));
    assert_int_equal(pc.max_align, controldata_u64("Maximum data alignment"));
    assert_int_equal(pc.blcksz, controldata_u64("Database block size"));
    assert_int_equal(pc.relseg_size, controldata_u64("Blocks per segment of large relation"));
    assert_int_equal(pc.xlog_blcksz, controldata_u64("WAL block size"));
    assert_int_equal(pc.xlog_seg_size, controldata_u64("Bytes per WAL segment"));
    assert_int_equal(pc.data_checksum_version, controldata_u64("Data page checksum version"));
    /* the raw CheckPoint bytes start with the redo LSN */
    uint64_t redo;
    memcpy(&redo, pc.checkpoint_raw, 8);
    assert_int_equal(redo, pc.checkpoint.redo);
}

/* ---- names and directory encodings ---- */

static const struct {
    const char *name;
    bool ok;
    uint32_t rel;
    uint8_t fork;
    uint32_t segno;
} REL_NAMES[] = {
    {"1259", true, 1259, FORK_MAIN, 0},
    {"1259_fsm", true, 1259, FORK_FSM, 0},
    {"1259_vm", true, 1259, FORK_VM, 0},
    {"16384_init", true, 16384, FORK_INIT, 0},
    {"16384.1", true, 16384, FORK_MAIN, 1},
    {"16384_fsm.12", true, 16384, FORK_FSM, 12},
    {"4294967295", true, 4294967295u, FORK_MAIN, 0},
    {"1.32767", true, 1, FORK_MAIN, 32767},
    {"4294967296", false, 0, 0, 0},
    {"0", false, 0, 0, 0},
    {"01259", false, 0, 0, 0},
    {"1259.0", false, 0, 0, 0},
    {"1259.01", false, 0, 0, 0},
    {"1259.32768", false, 0, 0, 0},
    {"1259.", false, 0, 0, 0},
    {"1259_", false, 0, 0, 0},
    {"1259_foo", false, 0, 0, 0},
    {"1259_fsmx", false, 0, 0, 0},
    {"1259_vm_fsm", false, 0, 0, 0},
    {"1259.1_fsm", false, 0, 0, 0},
    {"1259x", false, 0, 0, 0},
    {"-1", false, 0, 0, 0},
    {"", false, 0, 0, 0},
    {"pg_filenode.map", false, 0, 0, 0},
    {"PG_VERSION", false, 0, 0, 0},
    {"t3_16384", false, 0, 0, 0},
    {" 1259", false, 0, 0, 0},
};

static void test_rel_filename_parse(void **state)
{
    for (size_t i = 0; i < N_ELEMS(REL_NAMES); i++) {
        PgdataRelFile f = {0, 0, 0};
        bool ok = pgdata_parse_rel_filename(REL_NAMES[i].name, &f);
        if (ok != REL_NAMES[i].ok)
            fail_msg("\"%s\": parse %d, want %d", REL_NAMES[i].name, ok, REL_NAMES[i].ok);
        if (!ok)
            continue;
        assert_int_equal(f.relnode, REL_NAMES[i].rel);
        assert_int_equal(f.fork, REL_NAMES[i].fork);
        assert_int_equal(f.segno, REL_NAMES[i].segno);
    }
}

static void test_slru_segment_parse(void **state)
{
    static const struct {
        const char *name;
        bool ok;
        uint32_t segno;
    } cases[] = {
        {"0000", true, 0},        {"000A", true, 10},         {"FFFF", true, 0xFFFF},
        {"10000", true, 0x10000}, {"ABCDEF", true, 0xABCDEF}, {"000a", false, 0},
        {"000", false, 0},        {"00000", false, 0},        {"0000.tmp", false, 0},
        {"", false, 0},           {"G000", false, 0},         {"0FFFF", false, 0},
        {"123456789", false, 0},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        uint32_t segno = 999;
        bool ok = pgdata_parse_slru_segment(cases[i].name, &segno);
        if (ok != cases[i].ok)
            fail_msg("\"%s\": parse %d, want %d", cases[i].name, ok, cases[i].ok);
        if (ok)
            assert_int_equal(segno, cases[i].segno);
    }
}

static void test_dir_encodings(void **state)
{
    Err err = {0};
    size_t len, n;
    /* dbdir: sorted and deduplicated, exact bytes */
    PgdataDbDirEntry dbs[] = {{1664, 0}, {1663, 5}, {1663, 1}, {1663, 5}};
    uint8_t *v = pgdata_dbdir_encode(dbs, N_ELEMS(dbs), &len);
    static const uint8_t want_db[] = {3, 0, 0, 0, 0x7f, 6, 0,    0, 1, 0, 0, 0, 0x7f, 6,
                                      0, 0, 5, 0, 0,    0, 0x80, 6, 0, 0, 0, 0, 0,    0};
    assert_int_equal(len, sizeof(want_db));
    assert_memory_equal(v, want_db, len);
    PgdataDbDirEntry *dout;
    assert_true(pgdata_dbdir_decode(v, len, &dout, &n, &err));
    assert_int_equal(n, 3);
    assert_int_equal(dout[0].spcnode, 1663);
    assert_int_equal(dout[0].dbnode, 1);
    assert_int_equal(dout[2].spcnode, 1664);
    free(dout);
    /* truncated and unsorted values are corrupt */
    assert_false(pgdata_dbdir_decode(v, len - 1, &dout, &n, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    uint8_t swapped[sizeof(want_db)];
    memcpy(swapped, want_db, sizeof(want_db));
    memcpy(swapped + 4, want_db + 12, 8);
    memcpy(swapped + 12, want_db + 4, 8);
    assert_false(pgdata_dbdir_decode(swapped, sizeof(swapped), &dout, &n, &err));
    assert_non_null(strstr(err.msg, "ascending"));
    free(v);

    /* reldir */
    PgdataRelDirEntry rels[] = {{2619, FORK_VM}, {1259, FORK_MAIN}, {2619, FORK_MAIN}};
    v = pgdata_reldir_encode(rels, N_ELEMS(rels), &len);
    assert_int_equal(len, 4 + 3 * 8);
    PgdataRelDirEntry *rout;
    assert_true(pgdata_reldir_decode(v, len, &rout, &n, &err));
    assert_int_equal(n, 3);
    assert_int_equal(rout[0].relnode, 1259);
    assert_int_equal(rout[1].relnode, 2619);
    assert_int_equal(rout[1].forknum, FORK_MAIN);
    assert_int_equal(rout[2].forknum, FORK_VM);
    free(rout);
    v[len - 4] = 9; /* fork 9 */
    assert_false(pgdata_reldir_decode(v, len, &rout, &n, &err));
    assert_non_null(strstr(err.msg, "fork number 9"));
    free(v);

    /* SLRU and two-phase: u32 sets; the empty set is 4 zero bytes */
    uint32_t segs[] = {3, 0, 1, 3};
    v = pgdata_slrudir_encode(segs, N_ELEMS(segs), &len);
    assert_int_equal(len, 4 + 3 * 4);
    uint32_t *sout;
    assert_true(pgdata_slrudir_decode(v, len, &sout, &n, &err));
    assert_int_equal(n, 3);
    assert_int_equal(sout[0], 0);
    assert_int_equal(sout[2], 3);
    free(sout);
    free(v);
    v = pgdata_twophasedir_encode(NULL, 0, &len);
    assert_int_equal(len, 4);
    assert_int_equal(v[0] | v[1] | v[2] | v[3], 0);
    assert_true(pgdata_twophasedir_decode(v, len, &sout, &n, &err));
    assert_int_equal(n, 0);
    assert_null(sout);
    assert_false(pgdata_twophasedir_decode(v, 3, &sout, &n, &err));
    uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff}; /* claims 2^32-1 entries */
    assert_false(pgdata_twophasedir_decode(huge, sizeof(huge), &sout, &n, &err));
    free(v);
}

/* ---- collecting a job's output ---- */

typedef struct Rec {
    Key key;
    uint32_t len;
    uint32_t crc;
    uint8_t *value; /* copy, for keys that are not blocks */
} Rec;

typedef struct Collector {
    Rec *recs;
    size_t n;
    size_t cap;
    const char *verify_root; /* compare relation blocks with the files under it */
    KeyRange range;          /* the running job's range */
    size_t verified_blocks;
} Collector;

static void rel_block_path(const char *root, const Key *k, char *out, size_t cap)
{
    static const char *const sfx[] = {"", "_fsm", "_vm", "_init"};
    uint32_t segno = k->f6 / RELSEG_BLOCKS;
    char seg[16] = "";
    if (segno)
        (void)str_printf(seg, sizeof(seg), ".%u", segno);
    if (k->f2 == GLOBALTABLESPACE_OID)
        (void)str_printf(out, cap, "%s/global/%u%s%s", root, k->f4, sfx[k->f5], seg);
    else
        (void)str_printf(out, cap, "%s/base/%u/%u%s%s", root, k->f3, k->f4, sfx[k->f5], seg);
}

static bool collect_sink(void *ctx, const Key *key, const void *value, size_t len, Err *err)
{
    Collector *c = ctx;
    if (c->n > 0 && key_cmp(&c->recs[c->n - 1].key, key) >= 0)
        fail_msg("keys not strictly ascending across jobs");
    if (!key_range_contains(&c->range, key))
        fail_msg("key outside its job's range");
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->recs = realloc(c->recs, c->cap * sizeof(c->recs[0]));
        assert_non_null(c->recs);
    }
    Rec *r = &c->recs[c->n++];
    r->key = *key;
    r->len = (uint32_t)len;
    r->crc = crc32c(value, len);
    r->value = NULL;
    bool block =
        key_is_rel_block(key) || (key->f1 == KEY_F1_SLRU && key->f3 == 1 && key->f6 != KEY_F6_SIZE);
    if (block) {
        assert_int_equal(len, BLCKSZ);
    } else {
        r->value = malloc(len ? len : 1);
        memcpy(r->value, value, len);
    }
    if (c->verify_root && key_is_rel_block(key)) {
        char path[600];
        uint8_t page[BLCKSZ];
        rel_block_path(c->verify_root, key, path, sizeof(path));
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            fail_msg("%s: %s", path, strerror(errno));
        off_t off = (off_t)(key->f6 % RELSEG_BLOCKS) * BLCKSZ;
        assert_int_equal(pread(fd, page, BLCKSZ, off), BLCKSZ);
        close(fd);
        if (memcmp(page, value, BLCKSZ) != 0)
            fail_msg("%s block %u differs from the file", path, key->f6);
        c->verified_blocks++;
    }
    return true;
}

static void collector_free(Collector *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->recs[i].value);
    free(c->recs);
    memset(c, 0, sizeof(*c));
}

static void run_plan(const PgdataPlan *plan, Collector *c)
{
    size_t jobs = pgdata_plan_job_count(plan);
    for (size_t j = 0; j < jobs; j++) {
        Err err = {0};
        PgdataJobInfo info = pgdata_plan_job(plan, j);
        c->range = info.range;
        if (!pgdata_job_execute(plan, j, collect_sink, c, &err))
            fail_msg("job %zu: %s", j, err.msg);
    }
}

static PgdataPlan *make_plan(PgdataSource *src, ShardNumber number, ShardCount count,
                             uint32_t stripe, uint64_t job_limit)
{
    ShardIdentity id;
    Err err = {0};
    if (!shard_identity_new(number, count, stripe, &id, &err))
        fail_msg("%s", err.msg);
    PgdataPlanParams params = {job_limit, 0, 0};
    PgdataPlan *plan = NULL;
    if (!pgdata_plan_new(src, &id, &params, &plan, &err))
        fail_msg("plan %u/%u: %s", number, count, err.msg);
    return plan;
}

static PgdataSource *open_source(const char *dir)
{
    PgdataSource *src = NULL;
    Err err = {0};
    if (!pgdata_source_local_new(dir, &src, &err))
        fail_msg("%s", err.msg);
    return src;
}

static const Rec *find_rec(const Collector *c, const Key *k)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = key_cmp(&c->recs[mid].key, k);
        if (cmp == 0)
            return &c->recs[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

typedef struct Counts {
    size_t rel_blocks, rel_sizes, relmaps, reldirs, slru, slru_blocks, other_global, total;
} Counts;

static Counts count_keys(const Collector *c)
{
    Counts n = {0};
    for (size_t i = 0; i < c->n; i++) {
        const Key *k = &c->recs[i].key;
        n.total++;
        if (key_is_rel_block(k))
            n.rel_blocks++;
        else if (key_is_rel_size(k))
            n.rel_sizes++;
        else if (key_is_slru(k)) {
            n.slru++;
            if (k->f3 == 1 && k->f6 != KEY_F6_SIZE)
                n.slru_blocks++;
        } else if (k->f1 == KEY_F1_REL && k->f6 == 0 && k->f2 != 0)
            n.relmaps++;
        else if (k->f1 == KEY_F1_REL && k->f6 == KEY_F6_RELDIR)
            n.reldirs++;
        else
            n.other_global++;
    }
    return n;
}

/* Expected relation forks, found by walking the cluster directly. */
typedef struct Fork {
    uint32_t spc, db, rel, fork;
    uint64_t blocks;
} Fork;

static int fork_cmp(const void *a, const void *b)
{
    const Fork *x = a, *y = b;
    Key kx = key_rel_size(x->spc, x->db, x->rel, (uint8_t)x->fork);
    Key ky = key_rel_size(y->spc, y->db, y->rel, (uint8_t)y->fork);
    return key_cmp(&kx, &ky);
}

static void walk_forks(const char *dir, uint32_t spc, uint32_t db, Fork **forks, size_t *n,
                       size_t *cap, uint64_t *total_blocks)
{
    char cmd[600];
    (void)str_printf(cmd, sizeof(cmd), "ls -1 %s", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[256];
    while (fgets(line, sizeof(line), p)) {
        line[strcspn(line, "\n")] = '\0';
        PgdataRelFile f;
        if (!pgdata_parse_rel_filename(line, &f))
            continue;
        char path[900];
        struct stat st;
        (void)str_printf(path, sizeof(path), "%s/%s", dir, line);
        assert_int_equal(stat(path, &st), 0);
        *total_blocks += (uint64_t)st.st_size / BLCKSZ;
        size_t i = 0;
        for (; i < *n; i++)
            if ((*forks)[i].spc == spc && (*forks)[i].db == db && (*forks)[i].rel == f.relnode &&
                (*forks)[i].fork == f.fork)
                break;
        if (i == *n) {
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 256;
                *forks = realloc(*forks, *cap * sizeof(**forks));
            }
            (*forks)[(*n)++] = (Fork){spc, db, f.relnode, f.fork, 0};
        }
        (*forks)[i].blocks += (uint64_t)st.st_size / BLCKSZ;
    }
    pclose(p);
}

/* The unsharded result, shared by the sharding tests (computed by the first test that needs it). */
static Collector g_unsharded;
static bool g_have_unsharded;

static void ensure_unsharded(void)
{
    if (g_have_unsharded)
        return;
    PgdataSource *src = open_source(g_pgdata);
    double t0 = now_ms();
    PgdataPlan *plan = make_plan(src, 0, 0, STRIPE_SIZE_DEFAULT, 0);
    double t1 = now_ms();
    g_unsharded.verify_root = g_pgdata;
    run_plan(plan, &g_unsharded);
    double t2 = now_ms();
    Counts n = count_keys(&g_unsharded);
    printf("unsharded: %zu jobs, %zu keys (%zu rel blocks, %zu rel sizes, %zu relmaps, %zu "
           "reldirs, %zu SLRU, %zu other global), %llu bytes of pages; plan %.1f ms, execute "
           "%.1f ms\n",
           pgdata_plan_job_count(plan), n.total, n.rel_blocks, n.rel_sizes, n.relmaps, n.reldirs,
           n.slru, n.other_global, (unsigned long long)pgdata_plan_total_size(plan), t1 - t0,
           t2 - t1);
    pgdata_plan_free(plan);
    pgdata_source_free(src);
    g_unsharded.verify_root = NULL;
    g_have_unsharded = true;
}

/* test_unsharded_import: every page byte-identical to the file (verified in the sink), every
 * relation fork's size key equal to the file sizes, the directory values consistent with the
 * files, the control file and checkpoint equal to pg_control. */
static void test_unsharded_import(void **state)
{
    NEED_CLUSTER();
    ensure_unsharded();
    const Collector *c = &g_unsharded;
    Counts n = count_keys(c);

    /* walk the cluster independently */
    Fork *forks = NULL;
    size_t nforks = 0, cap = 0;
    uint64_t total_blocks = 0;
    char dir[600];
    (void)str_printf(dir, sizeof(dir), "%s/global", g_pgdata);
    walk_forks(dir, GLOBALTABLESPACE_OID, 0, &forks, &nforks, &cap, &total_blocks);
    static const uint32_t dbs[] = {1, 4, 5}; /* template1, template0, postgres */
    for (size_t i = 0; i < N_ELEMS(dbs); i++) {
        (void)str_printf(dir, sizeof(dir), "%s/base/%u", g_pgdata, dbs[i]);
        walk_forks(dir, DEFAULTTABLESPACE_OID, dbs[i], &forks, &nforks, &cap, &total_blocks);
    }
    assert_true(total_blocks > 1000);
    assert_int_equal(n.rel_blocks, total_blocks);
    assert_int_equal(c->verified_blocks, total_blocks);
    assert_int_equal(n.rel_sizes, nforks);
    qsort(forks, nforks, sizeof(forks[0]), fork_cmp);
    for (size_t i = 0; i < nforks; i++) {
        Key k = key_rel_size(forks[i].spc, forks[i].db, forks[i].rel, (uint8_t)forks[i].fork);
        const Rec *r = find_rec(c, &k);
        if (!r)
            fail_msg("no size key for %u/%u/%u fork %u", forks[i].spc, forks[i].db, forks[i].rel,
                     forks[i].fork);
        assert_int_equal(r->len, 4);
        uint32_t v = (uint32_t)r->value[0] | (uint32_t)r->value[1] << 8 |
                     (uint32_t)r->value[2] << 16 | (uint32_t)r->value[3] << 24;
        assert_int_equal(v, forks[i].blocks);
    }

    /* database directory: the three databases and the global tablespace */
    Err err = {0};
    Key k = key_dbdir();
    const Rec *r = find_rec(c, &k);
    assert_non_null(r);
    PgdataDbDirEntry *dbdir;
    size_t ndb;
    assert_true(pgdata_dbdir_decode(r->value, r->len, &dbdir, &ndb, &err));
    assert_int_equal(ndb, 4);
    for (size_t i = 0; i < N_ELEMS(dbs); i++) {
        assert_int_equal(dbdir[i].spcnode, DEFAULTTABLESPACE_OID);
        assert_int_equal(dbdir[i].dbnode, dbs[i]);
    }
    assert_int_equal(dbdir[3].spcnode, GLOBALTABLESPACE_OID);
    assert_int_equal(dbdir[3].dbnode, 0);
    free(dbdir);

    /* each relation directory lists exactly the forks walked; each relmap is the file */
    for (size_t d = 0; d < ndb; d++) {
        uint32_t spc = d < 3 ? DEFAULTTABLESPACE_OID : GLOBALTABLESPACE_OID;
        uint32_t db = d < 3 ? dbs[d] : 0;
        k = key_reldir(spc, db);
        r = find_rec(c, &k);
        assert_non_null(r);
        PgdataRelDirEntry *rels;
        size_t nrels;
        assert_true(pgdata_reldir_decode(r->value, r->len, &rels, &nrels, &err));
        size_t want = 0;
        for (size_t i = 0; i < nforks; i++) {
            if (forks[i].spc != spc || forks[i].db != db)
                continue;
            assert_true(want < nrels);
            assert_int_equal(rels[want].relnode, forks[i].rel);
            assert_int_equal(rels[want].forknum, forks[i].fork);
            want++;
        }
        assert_int_equal(nrels, want);
        free(rels);

        k = key_relmap(spc, db);
        r = find_rec(c, &k);
        assert_non_null(r);
        char path[700];
        uint8_t *file;
        size_t flen;
        if (spc == GLOBALTABLESPACE_OID)
            (void)str_printf(path, sizeof(path), "%s/global/pg_filenode.map", g_pgdata);
        else
            (void)str_printf(path, sizeof(path), "%s/base/%u/pg_filenode.map", g_pgdata, db);
        read_whole(path, &file, &flen);
        assert_int_equal(r->len, PGDATA_RELMAP_SIZE);
        assert_int_equal(flen, PGDATA_RELMAP_SIZE);
        assert_memory_equal(r->value, file, flen);
        free(file);
    }
    free(forks);

    /* control file and checkpoint */
    char path[700];
    uint8_t *file;
    size_t flen;
    (void)str_printf(path, sizeof(path), "%s/global/pg_control", g_pgdata);
    read_whole(path, &file, &flen);
    k = key_controlfile();
    r = find_rec(c, &k);
    assert_non_null(r);
    assert_int_equal(r->len, PG_CONTROL_FILE_SIZE);
    assert_memory_equal(r->value, file, PG_CONTROL_FILE_SIZE);
    k = key_checkpoint();
    r = find_rec(c, &k);
    assert_non_null(r);
    assert_int_equal(r->len, PG_CONTROL_CHECKPOINT_SIZE);
    assert_memory_equal(r->value, file + PG_CONTROL_OFF_CHECKPOINT_COPY,
                        PG_CONTROL_CHECKPOINT_SIZE);
    free(file);

    /* SLRU: pg_xact/0000 is there, its blocks equal the file, its size key and directory agree */
    (void)str_printf(path, sizeof(path), "%s/pg_xact/0000", g_pgdata);
    read_whole(path, &file, &flen);
    assert_true(flen >= BLCKSZ && flen % BLCKSZ == 0);
    for (uint32_t b = 0; b < flen / BLCKSZ; b++) {
        k = key_slru_block(SLRU_CLOG, 0, b);
        r = find_rec(c, &k);
        assert_non_null(r);
        assert_int_equal(r->crc, crc32c(file + (size_t)b * BLCKSZ, BLCKSZ));
    }
    k = key_slru_segment_size(SLRU_CLOG, 0);
    r = find_rec(c, &k);
    assert_non_null(r);
    assert_int_equal(r->value[0], flen / BLCKSZ);
    free(file);
    for (int kind = 0; kind < SLRU_KIND_COUNT; kind++) {
        k = key_slru_dir((SlruKind)kind);
        r = find_rec(c, &k);
        assert_non_null(r);
        uint32_t *segs;
        size_t nsegs;
        assert_true(pgdata_slrudir_decode(r->value, r->len, &segs, &nsegs, &err));
        assert_int_equal(nsegs, 1); /* 0000 in each after initdb */
        assert_int_equal(segs[0], 0);
        free(segs);
    }
    k = key_twophase_dir();
    r = find_rec(c, &k);
    assert_non_null(r);
    assert_int_equal(r->len, 4);
}

static void test_sharded_import(void **state)
{
    NEED_CLUSTER();
    ensure_unsharded();
    const Collector *u = &g_unsharded;
    Counts un = count_keys(u);
    static const uint32_t stripes[] = {2048, 1};
    PgdataSource *src = open_source(g_pgdata);
    for (size_t s = 0; s < N_ELEMS(stripes); s++) {
        Collector shards[4];
        memset(shards, 0, sizeof(shards));
        size_t blocks_total = 0;
        for (ShardNumber sh = 0; sh < 4; sh++) {
            double t0 = now_ms();
            PgdataPlan *plan = make_plan(src, sh, 4, stripes[s], 0);
            run_plan(plan, &shards[sh]);
            double t1 = now_ms();
            Counts n = count_keys(&shards[sh]);
            printf("shard %u/4 stripe %u: %zu jobs, %zu keys (%zu rel blocks, %zu SLRU), %.1f ms\n",
                   sh, stripes[s], pgdata_plan_job_count(plan), n.total, n.rel_blocks, n.slru,
                   t1 - t0);
            assert_int_equal(pgdata_plan_total_size(plan),
                             (uint64_t)(n.rel_blocks + (sh == 0 ? un.slru_blocks : 0)) * BLCKSZ);
            pgdata_plan_free(plan);
            blocks_total += n.rel_blocks;
            if (stripes[s] == 1)
                assert_true(n.rel_blocks > 0); /* stripe 1 spreads even a small cluster */
            if (sh == 0)
                assert_int_equal(n.slru, un.slru);
            else
                assert_int_equal(n.slru, 0);
            for (size_t i = 0; i < shards[sh].n; i++) {
                const Rec *r = &shards[sh].recs[i];
                const Rec *ur = find_rec(u, &r->key);
                if (!ur)
                    fail_msg("shard %u emitted a key the unsharded import does not have", sh);
                assert_int_equal(r->len, ur->len);
                assert_int_equal(r->crc, ur->crc);
                if (key_is_rel_block(&r->key))
                    assert_int_equal(key_to_shard_number(4, stripes[s], &r->key), sh);
                else if (key_is_slru(&r->key))
                    assert_int_equal(sh, 0);
                else
                    assert_true(key_is_global(&r->key));
            }
        }
        /* every block on exactly one shard: each shard's blocks are unsharded blocks owned by
         * that shard (checked above), and the counts add up */
        assert_int_equal(blocks_total, un.rel_blocks);
        /* global keys (directories, relmaps, sizes, two-phase, control, checkpoint) everywhere */
        size_t globals = 0;
        for (size_t i = 0; i < u->n; i++) {
            const Rec *ur = &u->recs[i];
            if (!key_is_global(&ur->key))
                continue;
            globals++;
            for (int sh = 0; sh < 4; sh++) {
                const Rec *r = find_rec(&shards[sh], &ur->key);
                if (!r)
                    fail_msg("global key missing on shard %d", sh);
                assert_int_equal(r->len, ur->len);
                assert_memory_equal(r->value, ur->value, ur->len);
            }
        }
        assert_int_equal(globals, un.rel_sizes + un.relmaps + un.reldirs + un.other_global);
        Key ctl = key_controlfile();
        Key cp = key_checkpoint();
        for (int sh = 0; sh < 4; sh++) {
            assert_non_null(find_rec(&shards[sh], &ctl));
            assert_non_null(find_rec(&shards[sh], &cp));
            collector_free(&shards[sh]);
        }
    }
    pgdata_source_free(src);
}

/* test_plan_determinism_and_jobs: same inputs, same hash; another shard, another hash; a small
 * job size gives many jobs whose ranges tile the key space and whose output is the same keys. */
static void test_plan_determinism_and_jobs(void **state)
{
    NEED_CLUSTER();
    ensure_unsharded();
    PgdataSource *src = open_source(g_pgdata);
    PgdataPlan *a = make_plan(src, 0, 4, 2048, 0);
    PgdataPlan *b = make_plan(src, 0, 4, 2048, 0);
    PgdataPlan *c = make_plan(src, 1, 4, 2048, 0);
    PgdataPlan *d = make_plan(src, 0, 4, 1, 0);
    PgdataPlan *e = make_plan(src, 0, 0, 2048, 0);
    PgdataPlan *f = make_plan(src, 0, 0, 2048, 64 * 1024);
    assert_int_equal(strlen(pgdata_plan_hash(a)), 64);
    assert_string_equal(pgdata_plan_hash(a), pgdata_plan_hash(b));
    assert_string_not_equal(pgdata_plan_hash(a), pgdata_plan_hash(c));
    assert_string_not_equal(pgdata_plan_hash(a), pgdata_plan_hash(d));
    assert_string_not_equal(pgdata_plan_hash(a), pgdata_plan_hash(e));
    assert_string_not_equal(pgdata_plan_hash(e), pgdata_plan_hash(f));
    assert_int_equal(pgdata_plan_job_count(a), pgdata_plan_job_count(b));

    assert_int_equal(pgdata_plan_pg_version(e), 15);
    Lsn want = controldata_lsn("Latest checkpoint location");
    assert_int_equal(pgdata_plan_base_lsn(e), (want + 7) & ~(Lsn)7);
    assert_int_equal(pgdata_plan_base_lsn(e) % 8, 0);
    assert_int_equal(pgdata_plan_job_count(e), 1); /* a fresh cluster is far below 256 MiB */

    size_t jobs = pgdata_plan_job_count(f);
    printf("job_soft_size_limit 64 KiB: %zu jobs\n", jobs);
    assert_true(jobs > 50);
    uint64_t sum = 0;
    for (size_t j = 0; j < jobs; j++) {
        PgdataJobInfo info = pgdata_plan_job(f, j);
        if (j == 0)
            assert_true(key_eq(&info.range.start, &KEY_MIN));
        else {
            PgdataJobInfo prev = pgdata_plan_job(f, j - 1);
            assert_true(key_eq(&info.range.start, &prev.range.end));
        }
        if (j == jobs - 1)
            assert_true(key_eq(&info.range.end, &KEY_MAX));
        assert_true(key_cmp(&info.range.start, &info.range.end) < 0);
        assert_true(info.n_tasks > 0);
        /* a hard limit: relation segments larger than a job are cut into job-sized pieces */
        assert_true(info.size_bytes <= 64 * 1024);
        sum += info.size_bytes;
    }
    assert_int_equal(sum, pgdata_plan_total_size(f));
    assert_int_equal(sum, pgdata_plan_total_size(e));
    /* the same for a shard: its jobs hold at most the limit of its own pages, and together as
     * many as one job-size-unlimited plan of that shard */
    PgdataPlan *g = make_plan(src, 1, 4, 1, 64 * 1024);
    PgdataPlan *g1 = make_plan(src, 1, 4, 1, UINT64_MAX / 2);
    uint64_t gsum = 0;
    for (size_t j = 0; j < pgdata_plan_job_count(g); j++) {
        assert_true(pgdata_plan_job(g, j).size_bytes <= 64 * 1024);
        gsum += pgdata_plan_job(g, j).size_bytes;
    }
    assert_int_equal(gsum, pgdata_plan_total_size(g1));
    assert_int_equal(pgdata_plan_job_count(g1), 1);
    pgdata_plan_free(g);
    pgdata_plan_free(g1);
    Collector many = {0};
    run_plan(f, &many);
    assert_int_equal(many.n, g_unsharded.n);
    for (size_t i = 0; i < many.n; i++) {
        assert_true(key_eq(&many.recs[i].key, &g_unsharded.recs[i].key));
        assert_int_equal(many.recs[i].crc, g_unsharded.recs[i].crc);
    }
    collector_free(&many);
    /* a job index past the end is an error, not a crash */
    Err err = {0};
    assert_false(pgdata_job_execute(f, jobs, collect_sink, &many, &err));
    pgdata_plan_free(a);
    pgdata_plan_free(b);
    pgdata_plan_free(c);
    pgdata_plan_free(d);
    pgdata_plan_free(e);
    pgdata_plan_free(f);
    pgdata_source_free(src);
}

/* Several worker threads executing jobs of one plan at once. */
typedef struct ThreadArg {
    const PgdataPlan *plan;
    size_t first, step;
    size_t keys;
    bool ok;
} ThreadArg;

static bool count_sink(void *ctx, const Key *key, const void *value, size_t len, Err *err)
{
    (*(size_t *)ctx)++;
    return true;
}

static void *thread_main(void *p)
{
    ThreadArg *a = p;
    a->ok = true;
    for (size_t j = a->first; j < pgdata_plan_job_count(a->plan); j += a->step) {
        Err err = {0};
        if (!pgdata_job_execute(a->plan, j, count_sink, &a->keys, &err))
            a->ok = false;
    }
    return NULL;
}

static void test_concurrent_jobs(void **state)
{
    NEED_CLUSTER();
    ensure_unsharded();
    PgdataSource *src = open_source(g_pgdata);
    PgdataPlan *plan = make_plan(src, 0, 0, 2048, 256 * 1024);
    ThreadArg args[3];
    pthread_t th[3];
    for (size_t i = 0; i < 3; i++) {
        args[i] = (ThreadArg){plan, i, 3, 0, false};
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    size_t keys = 0;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_true(args[i].ok);
        keys += args[i].keys;
    }
    assert_int_equal(keys, g_unsharded.n);
    pgdata_plan_free(plan);
    pgdata_source_free(src);
}

/* A sink that refuses stops the job with its error. */
static bool refusing_sink(void *ctx, const Key *key, const void *value, size_t len, Err *err)
{
    if (++*(size_t *)ctx == 100) {
        err_set(err, ERR_UNAVAILABLE, "layer writer is shutting down");
        return false;
    }
    return true;
}

static void test_sink_refusal(void **state)
{
    NEED_CLUSTER();
    PgdataSource *src = open_source(g_pgdata);
    PgdataPlan *plan = make_plan(src, 0, 0, 2048, 0);
    size_t seen = 0;
    Err err = {0};
    assert_false(pgdata_job_execute(plan, 0, refusing_sink, &seen, &err));
    assert_int_equal(seen, 100);
    assert_int_equal(err.code, ERR_UNAVAILABLE);
    pgdata_plan_free(plan);
    pgdata_source_free(src);
}

/* ---- hostile inputs (each on a fresh copy of the cluster) ---- */

static void sh(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(cmd));
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

static void set_control_state(const char *d, uint32_t st)
{
    char path[700];
    uint8_t *buf;
    size_t len;
    (void)str_printf(path, sizeof(path), "%s/global/pg_control", d);
    read_whole(path, &buf, &len);
    assert_int_equal(len, PG_CONTROL_FILE_SIZE);
    memcpy(buf + PG_CONTROL_OFF_STATE, &st, 4);
    pg_control_update_crc(buf);
    write_whole(path, buf, len);
    free(buf);
}

static void mut_bad_crc(const char *d)
{
    sh("printf 'X' | dd of=%s/global/pg_control bs=1 seek=100 conv=notrunc status=none", d);
}
static void mut_truncated_control(const char *d)
{
    sh("truncate -s 4096 %s/global/pg_control", d);
}
static void mut_missing_control(const char *d)
{
    sh("rm %s/global/pg_control", d);
}
static void mut_unclean(const char *d)
{
    set_control_state(d, PG_DB_IN_PRODUCTION);
}
static void mut_rel_size(const char *d)
{
    sh("head -c 100 /dev/zero >> %s/base/5/1259", d);
}
static void mut_bad_name(const char *d)
{
    sh("touch %s/base/5/foo", d);
}
static void mut_relmap_size(const char *d)
{
    sh("truncate -s 100 %s/base/5/pg_filenode.map", d);
}
static void mut_relmap_missing(const char *d)
{
    sh("rm %s/base/4/pg_filenode.map", d);
}
static void mut_symlink_escape(const char *d)
{
    sh("ln -s /etc/passwd %s/base/5/99999", d);
}
static void mut_symlink_dir_escape(const char *d)
{
    sh("rm -rf %s/pg_xact && ln -s /etc %s/pg_xact", d, d);
}
static void mut_dangling(const char *d)
{
    sh("ln -s %s/nonexistent %s/base/1/99999", d, d);
}
static void mut_huge_segment(const char *d)
{
    sh("truncate -s 1073750016 %s/base/5/99999", d); /* 1 GiB + 8 KiB, sparse */
}
static void mut_segment_gap(const char *d)
{
    sh("truncate -s 1073741824 %s/base/5/99999 && truncate -s 8192 %s/base/5/99999.2", d, d);
}
static void mut_data_after_partial(const char *d)
{
    sh("truncate -s 8192 %s/base/5/99999 && truncate -s 8192 %s/base/5/99999.1", d, d);
}
static void mut_fifo(const char *d)
{
    sh("mkfifo %s/base/5/99999", d);
}
static void mut_dir_in_db(const char *d)
{
    sh("mkdir %s/base/5/99999", d);
}
static void mut_bad_db_name(const char *d)
{
    sh("mkdir %s/base/notadb", d);
}
static void mut_file_in_base(const char *d)
{
    sh("touch %s/base/77", d);
}
static void mut_twophase(const char *d)
{
    sh("touch %s/pg_twophase/000002D0", d);
}
static void mut_tablespace(const char *d)
{
    sh("mkdir %s/pg_tblspc/16400", d);
}
static void mut_slru_name(const char *d)
{
    sh("touch %s/pg_xact/000g", d);
}
static void mut_slru_size(const char *d)
{
    sh("head -c 12 /dev/zero >> %s/pg_multixact/offsets/0000", d);
}
static void mut_slru_too_big(const char *d)
{
    sh("truncate -s 270336 %s/pg_xact/0000", d); /* 33 pages */
}
static void mut_no_base(const char *d)
{
    sh("rm -rf %s/base", d);
}
static void mut_long_name(const char *d)
{
    sh("touch %s/base/5/1234567890123456789012345678901234567890123456789012345678901234567890", d);
}
static void mut_control_is_dir(const char *d)
{
    sh("rm %s/global/pg_control && mkdir %s/global/pg_control", d, d);
}
static void mut_harmless(const char *d)
{
    /* things a real PGDATA may contain that are not imported: fine */
    sh("touch %s/base/5/pg_internal.init %s/base/5/t3_99999 %s/base/5/t3_99999_fsm && "
       "mkdir %s/base/pgsql_tmp && rmdir %s/pg_twophase %s/pg_tblspc && ln -s ../../global/1262 "
       "%s/base/5/99999 && truncate -s 0 %s/base/5/99998 %s/base/5/99998.1",
       d, d, d, d, d, d, d, d, d);
}

typedef struct HostileCase {
    const char *name;
    void (*mutate)(const char *dir);
    size_t max_dir_entries; /* 0 = default */
    const char *want;       /* substring of the error; NULL = the plan must succeed */
} HostileCase;

static const HostileCase HOSTILE[] = {
    {"bad pg_control crc", mut_bad_crc, 0, "incorrect checksum"},
    {"truncated pg_control", mut_truncated_control, 0, "global/pg_control: 4096 bytes"},
    {"missing pg_control", mut_missing_control, 0, "global/pg_control: missing"},
    {"pg_control is a directory", mut_control_is_dir, 0, "global/pg_control: 0 bytes"},
    {"not shut down cleanly", mut_unclean, 0, "not shut down cleanly"},
    {"relation size not a multiple of 8192", mut_rel_size, 0,
     "base/5/1259: size 114788 is not a multiple of 8192"},
    {"unparsable name", mut_bad_name, 0, "base/5/foo: unexpected file"},
    {"relmap wrong size", mut_relmap_size, 0, "base/5/pg_filenode.map: 100 bytes"},
    {"relmap missing", mut_relmap_missing, 0, "base/4/pg_filenode.map: missing"},
    {"symlink escaping", mut_symlink_escape, 0, "base/5/99999: symbolic link leads outside"},
    {"directory symlink escaping", mut_symlink_dir_escape, 0, "pg_xact: symbolic link leads"},
    {"dangling symlink", mut_dangling, 0, "base/1/99999: dangling symbolic link"},
    {"segment over 1 GiB", mut_huge_segment, 0, "base/5/99999: size 1073750016 is over"},
    {"missing segment", mut_segment_gap, 0, "base/5/99999: segment 1 is missing"},
    {"data after a partial segment", mut_data_after_partial, 0, "base/5/99999.1: 1 blocks after"},
    {"fifo", mut_fifo, 0, "base/5/99999: not a regular file or directory"},
    {"directory in a database", mut_dir_in_db, 0, "base/5/99999: a directory"},
    {"bad database name", mut_bad_db_name, 0, "base/notadb: unexpected entry"},
    {"file in base", mut_file_in_base, 0, "base/77: unexpected entry"},
    {"prepared transaction", mut_twophase, 0, "prepared transactions are not supported"},
    {"user tablespace", mut_tablespace, 0, "tablespaces other than"},
    {"bad SLRU name", mut_slru_name, 0, "pg_xact/000g: unexpected entry"},
    {"SLRU size", mut_slru_size, 0, "pg_multixact/offsets/0000: size 8204"},
    {"SLRU over 32 pages", mut_slru_too_big, 0, "pg_xact/0000: size 270336"},
    {"no base", mut_no_base, 0, "base/: missing"},
    {"name too long", mut_long_name, 0, "is too long"},
    {"too many entries", NULL, 100, "too many entries (more than 100)"},
    {"harmless extras", mut_harmless, 0, NULL},
};

static void copy_cluster(const char *dst)
{
    sh("mkdir %s && cd %s && cp -a global base pg_xact pg_multixact pg_twophase pg_tblspc "
       "PG_VERSION %s/",
       dst, g_pgdata, dst);
}

static void test_hostile_inputs(void **state)
{
    NEED_CLUSTER();
    for (size_t i = 0; i < N_ELEMS(HOSTILE); i++) {
        const HostileCase *hc = &HOSTILE[i];
        char dir[400];
        (void)str_printf(dir, sizeof(dir), "%s/hostile%zu", g_tmp, i);
        copy_cluster(dir);
        if (hc->mutate)
            hc->mutate(dir);
        PgdataSource *src = open_source(dir);
        ShardIdentity id = shard_identity_unsharded();
        PgdataPlanParams params = {0, hc->max_dir_entries, 0};
        PgdataPlan *plan = NULL;
        Err err = {0};
        bool ok = pgdata_plan_new(src, &id, &params, &plan, &err);
        if (!hc->want) {
            if (!ok)
                fail_msg("case \"%s\": %s", hc->name, err.msg);
            Collector c = {0};
            run_plan(plan, &c);
            /* the linked-in relation 99999 has the blocks of global/1262 */
            Key k = key_rel_size(DEFAULTTABLESPACE_OID, 5, 99999, FORK_MAIN);
            assert_non_null(find_rec(&c, &k));
            k = key_rel_size(DEFAULTTABLESPACE_OID, 5, 99998, FORK_MAIN); /* empty relation */
            const Rec *r = find_rec(&c, &k);
            assert_non_null(r);
            assert_int_equal(r->value[0], 0);
            collector_free(&c);
            pgdata_plan_free(plan);
        } else {
            if (ok)
                fail_msg("case \"%s\": planned, want error \"%s\"", hc->name, hc->want);
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            if (!strstr(err.msg, hc->want))
                fail_msg("case \"%s\": error \"%s\" lacks \"%s\"", hc->name, err.msg, hc->want);
            printf("  %-38s -> %s\n", hc->name, err.msg);
        }
        pgdata_source_free(src);
        Err rm = {0};
        assert_true(fs_remove_tree(dir, &rm));
    }
}

/* A file that shrinks between planning and execution fails the job, not the process. */
static void test_file_changed_during_import(void **state)
{
    NEED_CLUSTER();
    char dir[400];
    (void)str_printf(dir, sizeof(dir), "%s/shrink", g_tmp);
    copy_cluster(dir);
    PgdataSource *src = open_source(dir);
    PgdataPlan *plan = make_plan(src, 0, 0, 2048, 0);
    sh("truncate -s 8192 %s/base/5/1259", dir);
    Collector c = {0};
    Err err = {0};
    c.range = pgdata_plan_job(plan, 0).range;
    assert_false(pgdata_job_execute(plan, 0, collect_sink, &c, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_non_null(strstr(err.msg, "base/5/1259: file ends at byte 8192"));
    collector_free(&c);
    /* a relmap that disappears */
    sh("rm %s/base/1/pg_filenode.map", dir);
    assert_false(pgdata_job_execute(plan, 0, count_sink, &(size_t){0}, &err));
    assert_non_null(strstr(err.msg, "base/1/pg_filenode.map"));
    pgdata_plan_free(plan);
    pgdata_source_free(src);
    Err rm = {0};
    assert_true(fs_remove_tree(dir, &rm));
}

static void test_source_errors(void **state)
{
    PgdataSource *src = NULL;
    Err err = {0};
    assert_false(pgdata_source_local_new("/nonexistent/pgdata", &src, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    assert_false(pgdata_source_local_new("/etc/passwd", &src, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    /* an empty directory is not a PGDATA */
    char tmp[] = "/tmp/test_pgdata_empty_XXXXXX";
    assert_non_null(mkdtemp(tmp));
    src = open_source(tmp);
    ShardIdentity id = shard_identity_unsharded();
    PgdataPlan *plan = NULL;
    assert_false(pgdata_plan_new(src, &id, NULL, &plan, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_non_null(strstr(err.msg, "global/: missing"));
    /* listing and reading refuse paths with ".." */
    PgdataListing l;
    assert_false(pgdata_source_list(src, "../etc", 10, &l, &err));
    char buf[8];
    PgdataRange r = {0, sizeof(buf)};
    assert_false(pgdata_source_read(src, "a/../../etc/passwd", &r, 1, buf, &err));
    /* an invalid shard identity is refused before any I/O */
    ShardIdentity bad = {5, 4, 2048};
    assert_false(pgdata_plan_new(src, &bad, NULL, &plan, &err));
    pgdata_source_free(src);
    assert_int_equal(rmdir(tmp), 0);
}

/* A backend returning hostile listings (names with '/', duplicates) is caught by the wrapper. */
static bool fake_list(void *impl, const char *dir, size_t max_entries, PgdataListing *out, Err *err)
{
    const char *const *names = impl;
    size_t n = 0;
    while (names[n])
        n++;
    out->entries = calloc(n ? n : 1, sizeof(PgdataDirEntry));
    out->n = n;
    for (size_t i = 0; i < n; i++)
        (void)str_copy(out->entries[i].name, PGDATA_NAME_MAX, names[i]);
    return true;
}

static bool fake_read(void *impl, const char *path, const PgdataRange *ranges, size_t n, void *buf,
                      Err *err)
{
    err_set(err, ERR_UNAVAILABLE, "fake");
    return false;
}

static const PgdataSourceOps FAKE_OPS = {"fake", fake_list, fake_read, NULL};

static void test_listing_validation(void **state)
{
    static const char *const slash[] = {"ok", "a/b", NULL};
    static const char *const dup[] = {"b", "a", "b", NULL};
    static const char *const dots[] = {"..", NULL};
    static const char *const good[] = {"b", "c", "a", NULL};
    static const char *const empty[] = {"", NULL};
    const struct {
        const char *const *names;
        const char *want;
    } cases[] = {
        {slash, "invalid entry name \"a/b\""},
        {dup, "\"b\" listed twice"},
        {dots, "invalid entry name"},
        {empty, "invalid entry name"},
        {good, NULL},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        PgdataSource *src = pgdata_source_new(&FAKE_OPS, (void *)cases[i].names, "fake");
        PgdataListing l;
        Err err = {0};
        bool ok = pgdata_source_list(src, "base", 100, &l, &err);
        if (cases[i].want) {
            assert_false(ok);
            if (!strstr(err.msg, cases[i].want))
                fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].want);
        } else {
            assert_true(ok);
            assert_int_equal(l.n, 3);
            assert_string_equal(l.entries[0].name, "a"); /* sorted */
            assert_string_equal(l.entries[2].name, "c");
            pgdata_listing_free(&l);
        }
        /* more entries than allowed */
        if (!cases[i].want) {
            assert_false(pgdata_source_list(src, "base", 2, &l, &err));
            assert_non_null(strstr(err.msg, "too many entries"));
        }
        pgdata_source_free(src);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_control_synthetic),
        cmocka_unit_test(test_pg_version_from_catalog),
        cmocka_unit_test(test_rel_filename_parse),
        cmocka_unit_test(test_slru_segment_parse),
        cmocka_unit_test(test_dir_encodings),
        cmocka_unit_test(test_source_errors),
        cmocka_unit_test(test_listing_validation),
        cmocka_unit_test(test_pg_control_matches_controldata),
        cmocka_unit_test(test_unsharded_import),
        cmocka_unit_test(test_sharded_import),
        cmocka_unit_test(test_plan_determinism_and_jobs),
        cmocka_unit_test(test_concurrent_jobs),
        cmocka_unit_test(test_sink_refusal),
        cmocka_unit_test(test_hostile_inputs),
        cmocka_unit_test(test_file_changed_during_import),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    collector_free(&g_unsharded);
    return rc;
}
