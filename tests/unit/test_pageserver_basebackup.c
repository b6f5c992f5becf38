/* test_pageserver_basebackup.c: the pure parts of basebackup (pageserver/basebackup.c): where the
 * checkpoint record goes, the rewritten pg_control, the record, the WAL segment layout (record in
 * a page, across a page, across a segment) and WAL file names. That a vanilla Postgres starts on
 * the result is tests/integration/test_export.py's part (it also runs pg_waldump on it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/crc32c.h"
#include "shared/err.h"
#include "shared/pg_paths.h"

#include "pageserver/basebackup.h"
#include "pageserver/pg_control.h"

#define SEG  (16u * 1024 * 1024)
#define PAGE 8192u

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* make_control: a valid synthetic PostgreSQL 15 pg_control (checkpoint at 0x1511A8D, in
 * production during a backup, so the rewrite has something to clear). */
static void make_control(uint8_t buf[PG_CONTROL_FILE_SIZE])
{
    memset(buf, 0, PG_CONTROL_FILE_SIZE);
    put(buf + PG_CONTROL_OFF_SYSTEM_IDENTIFIER, 0x7312345678ABCDEFull, 8);
    put(buf + PG_CONTROL_OFF_PG_CONTROL_VERSION, PG_CONTROL_VERSION_15, 4);
    put(buf + PG_CONTROL_OFF_CATALOG_VERSION_NO, PG_CATALOG_VERSION_15, 4);
    put(buf + PG_CONTROL_OFF_STATE, PG_DB_SHUTDOWNED, 4);
    put(buf + PG_CONTROL_OFF_CHECKPOINT, 0x1511A8D, 8);
    put(buf + PG_CONTROL_OFF_CHECKPOINT_COPY + PG_CHECKPOINT_OFF_REDO, 0x1511A8D, 8);
    put(buf + PG_CONTROL_OFF_CHECKPOINT_COPY + PG_CHECKPOINT_OFF_THIS_TIMELINE, 1, 4);
    put(buf + PG_CONTROL_OFF_CHECKPOINT_COPY + PG_CHECKPOINT_OFF_NEXT_OID, 13573, 4);
    put(buf + PG_CONTROL_OFF_MIN_RECOVERY_POINT, 0x1600000, 8);
    put(buf + PG_CONTROL_OFF_BACKUP_START_POINT, 0x1500000, 8);
    buf[PG_CONTROL_OFF_BACKUP_END_REQUIRED] = 1;
    put(buf + PG_CONTROL_OFF_BLCKSZ, 8192, 4);
    put(buf + PG_CONTROL_OFF_RELSEG_SIZE, 131072, 4);
    put(buf + PG_CONTROL_OFF_XLOG_BLCKSZ, PAGE, 4);
    put(buf + PG_CONTROL_OFF_XLOG_SEG_SIZE, SEG, 4);
    pg_control_update_crc(buf);
}

static void test_checkpoint_lsn(void **state)
{
    (void)state;
    static const struct {
        Lsn in, want;
    } cases[] = {
        {0x1511A90, 0x1511A90},                       /* aligned, mid-page */
        {0x1511A8D, 0x1511A90},                       /* aligned up to 8 */
        {0x1512000, 0x1512000 + XLOG_SHORT_PHD_SIZE}, /* page start: after the short header */
        {0x2000000, 0x2000000 + XLOG_LONG_PHD_SIZE},  /* segment start: after the long header */
        {0x1FFFFF9, 0x2000000 + XLOG_LONG_PHD_SIZE},  /* aligned up onto a segment start */
        {0x1512020, 0x1512030}, /* 8 bytes after the header: room for a 24-byte filler */
        {0x1512028, 0x1512030}, /* 16 bytes after */
        {0x1512030, 0x1512030}, /* 24 bytes after: the filler fits */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(basebackup_checkpoint_lsn(cases[i].in, SEG, PAGE), cases[i].want);
}

static void test_control(void **state)
{
    (void)state;
    uint8_t in[PG_CONTROL_FILE_SIZE], out[PG_CONTROL_FILE_SIZE];
    make_control(in);
    uint8_t ckpt[PG_CONTROL_CHECKPOINT_SIZE];
    memcpy(ckpt, in + PG_CONTROL_OFF_CHECKPOINT_COPY, sizeof(ckpt));
    basebackup_control(in, ckpt, 0x1511A98, out);
    PgControl c;
    Err err = {0};
    assert_true(pg_control_parse(out, sizeof(out), &c, &err)); /* the CRC is right */
    assert_int_equal(c.checkpoint_lsn, 0x1511A98);
    assert_int_equal(c.checkpoint.redo, 0x1511A98);
    assert_int_equal(c.checkpoint.next_oid, 13573);
    assert_int_equal(c.state, PG_DB_SHUTDOWNED);
    assert_int_equal(c.min_recovery_point, 0);
    assert_int_equal(c.backup_start_point, 0);
    assert_false(c.backup_end_required);
    assert_int_equal(c.system_identifier, 0x7312345678ABCDEFull);
    /* nothing else changed */
    assert_memory_equal(in + PG_CONTROL_OFF_WAL_LEVEL, out + PG_CONTROL_OFF_WAL_LEVEL,
                        PG_CONTROL_OFF_CRC - PG_CONTROL_OFF_WAL_LEVEL);
}

static void test_record(void **state)
{
    (void)state;
    uint8_t ckpt[PG_CONTROL_CHECKPOINT_SIZE];
    for (size_t i = 0; i < sizeof(ckpt); i++)
        ckpt[i] = (uint8_t)(i * 7 + 1);
    uint8_t rec[XLOG_CHECKPOINT_REC_SIZE];
    basebackup_checkpoint_record(ckpt, 0x1511A8D, rec);
    assert_int_equal(le(rec, 4), 114);                   /* xl_tot_len */
    assert_int_equal(le(rec + 4, 4), 0);                 /* xl_xid */
    assert_int_equal(le(rec + 8, 8), 0x1511A8D);         /* xl_prev */
    assert_int_equal(rec[16], XLOG_CHECKPOINT_SHUTDOWN); /* xl_info */
    assert_int_equal(rec[17], RM_XLOG_ID);               /* xl_rmid */
    assert_int_equal(rec[24], XLR_BLOCK_ID_DATA_SHORT);
    assert_int_equal(rec[25], PG_CONTROL_CHECKPOINT_SIZE);
    assert_memory_equal(rec + 26, ckpt, sizeof(ckpt));
    /* xl_crc: CRC-32C of the data, then of the header up to the crc */
    uint8_t whole[XLOG_CHECKPOINT_REC_SIZE - 24 + 20];
    memcpy(whole, rec + 24, XLOG_CHECKPOINT_REC_SIZE - 24);
    memcpy(whole + XLOG_CHECKPOINT_REC_SIZE - 24, rec, 20);
    assert_int_equal(le(rec + 20, 4), crc32c(whole, sizeof(whole)));
}

/* check_header: the page header at page (offset off in seg). */
static void check_header(const uint8_t *seg, size_t off, Lsn page, uint16_t info, uint32_t rem)
{
    const uint8_t *h = seg + off;
    bool long_hdr = page % SEG == 0;
    assert_int_equal(le(h, 2), XLOG_PAGE_MAGIC_15);
    assert_int_equal(le(h + 2, 2), info | (long_hdr ? XLP_LONG_HEADER : 0));
    assert_int_equal(le(h + 4, 4), 1); /* timeline */
    assert_int_equal(le(h + 8, 8), page);
    assert_int_equal(le(h + 16, 4), rem);
    if (long_hdr) {
        assert_int_equal(le(h + 24, 8), 0x7312345678ABCDEFull);
        assert_int_equal(le(h + 32, 4), SEG);
        assert_int_equal(le(h + 36, 4), PAGE);
    }
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

typedef struct Fixture {
    PgControl c;
    uint8_t rec[XLOG_CHECKPOINT_REC_SIZE];
    uint8_t *seg;
} Fixture;

static void fixture(Fixture *f)
{
    uint8_t raw[PG_CONTROL_FILE_SIZE];
    make_control(raw);
    Err err = {0};
    assert_true(pg_control_parse(raw, sizeof(raw), &f->c, &err));
    for (size_t i = 0; i < sizeof(f->rec); i++)
        f->rec[i] = (uint8_t)(i + 1); /* no zero byte: every byte is checkable */
    f->seg = malloc(SEG);
    assert_non_null(f->seg);
}

static void test_segment_record_in_page(void **state)
{
    (void)state;
    Fixture f;
    fixture(&f);
    Lsn rec = 0x1511A90; /* segment 1, the page at 0x1510000, offset 0x1A90 */
    BasebackupWal plan = basebackup_wal_plan(&f.c, rec);
    assert_int_equal(plan.first_segno, 1);
    assert_int_equal(plan.last_segno, 1);
    basebackup_wal_segment(&f.c, f.rec, rec, 1, f.seg);
    check_header(f.seg, 0, 0x1000000, 0, 0);
    size_t page_off = 0x510000;
    check_header(f.seg, page_off, 0x1510000, 0, 0);
    assert_memory_equal(f.seg + (rec - 0x1000000), f.rec, sizeof(f.rec));
    /* zeros between the first header and the record's page; a no-op filler from the page
     * header to the record, with a valid CRC; zeros after the record */
    assert_true(all_zero(f.seg + XLOG_LONG_PHD_SIZE, page_off - XLOG_LONG_PHD_SIZE));
    Lsn filler = basebackup_filler_lsn(rec, SEG, PAGE);
    assert_int_equal(filler, 0x1510000 + XLOG_SHORT_PHD_SIZE);
    const uint8_t *fr = f.seg + (filler - 0x1000000);
    uint32_t flen = (uint32_t)(rec - filler);
    assert_int_equal(le(fr, 4), flen);
    assert_int_equal(le(fr + 8, 8), 0); /* the stored checkpoint (0x1511A8D) is not below it */
    assert_int_equal(fr[16], XLOG_NOOP);
    assert_int_equal(fr[24], XLR_BLOCK_ID_DATA_LONG);
    assert_int_equal(le(fr + 25, 4), flen - 29);
    uint8_t *whole = malloc(flen);
    memcpy(whole, fr + 24, flen - 24);
    memcpy(whole + flen - 24, fr, 20);
    assert_int_equal(le(fr + 20, 4), crc32c(whole, flen - 4));
    free(whole);
    assert_int_equal(basebackup_record_prev(&f.c, rec), filler);
    size_t end = rec - 0x1000000 + sizeof(f.rec);
    assert_true(all_zero(f.seg + end, SEG - end));
    free(f.seg);
}

static void test_filler_minimal(void **state)
{
    (void)state;
    uint8_t r[XLOG_RECORD_HEADER_SIZE];
    basebackup_filler_record(sizeof(r), 0x100, r); /* a record with no data at all */
    assert_int_equal(le(r, 4), 24);
    assert_int_equal(r[16], XLOG_NOOP);
    assert_int_equal(le(r + 20, 4), crc32c(r, 20));
    assert_int_equal(basebackup_filler_lsn(0x1512018, SEG, PAGE), LSN_INVALID);
    assert_int_equal(basebackup_filler_lsn(0x2000028, SEG, PAGE), LSN_INVALID);
    assert_int_equal(basebackup_filler_lsn(0x2000040, SEG, PAGE), 0x2000028);
}

static void test_segment_record_across_pages(void **state)
{
    (void)state;
    Fixture f;
    fixture(&f);
    Lsn rec = 0x1512000 - 40; /* 40 bytes on this page, 74 on the next */
    basebackup_wal_segment(&f.c, f.rec, rec, 1, f.seg);
    size_t off = rec - 0x1000000;
    assert_memory_equal(f.seg + off, f.rec, 40);
    check_header(f.seg, 0x512000, 0x1512000, XLP_FIRST_IS_CONTRECORD, 74);
    assert_memory_equal(f.seg + 0x512000 + XLOG_SHORT_PHD_SIZE, f.rec + 40, 74);
    free(f.seg);
}

static void test_segment_record_across_segments(void **state)
{
    (void)state;
    Fixture f;
    fixture(&f);
    Lsn rec = 0x2000000 - 48; /* 48 bytes at the end of segment 1, 66 in segment 2 */
    BasebackupWal plan = basebackup_wal_plan(&f.c, rec);
    assert_int_equal(plan.first_segno, 1);
    assert_int_equal(plan.last_segno, 2);
    basebackup_wal_segment(&f.c, f.rec, rec, 1, f.seg);
    check_header(f.seg, 0, 0x1000000, 0, 0);
    check_header(f.seg, SEG - PAGE, 0x2000000 - PAGE, 0, 0);
    assert_memory_equal(f.seg + SEG - 48, f.rec, 48);
    basebackup_wal_segment(&f.c, f.rec, rec, 2, f.seg);
    check_header(f.seg, 0, 0x2000000, XLP_FIRST_IS_CONTRECORD, 66);
    assert_memory_equal(f.seg + XLOG_LONG_PHD_SIZE, f.rec + 48, 66);
    assert_true(all_zero(f.seg + XLOG_LONG_PHD_SIZE + 66, SEG - XLOG_LONG_PHD_SIZE - 66));
    free(f.seg);
}

static void test_wal_file_name(void **state)
{
    (void)state;
    char name[XLOG_FNAME_LEN + 1];
    basebackup_wal_file_name(1, 1, SEG, name);
    assert_string_equal(name, "000000010000000000000001");
    basebackup_wal_file_name(1, 256, SEG, name);
    assert_string_equal(name, "000000010000000100000000");
    basebackup_wal_file_name(0x2A, 0x1FF, SEG, name);
    assert_string_equal(name, "0000002A00000001000000FF");
    basebackup_wal_file_name(1, 5, 64u * 1024 * 1024, name);
    assert_string_equal(name, "000000010000000000000005");
}

static void test_pg_paths(void **state)
{
    (void)state;
    char p[PG_PATH_MAX];
    pg_rel_file_path(DEFAULTTABLESPACE_OID, 5, 16384, FORK_MAIN, 0, p);
    assert_string_equal(p, "base/5/16384");
    pg_rel_file_path(DEFAULTTABLESPACE_OID, 5, 16384, FORK_FSM, 2, p);
    assert_string_equal(p, "base/5/16384_fsm.2");
    pg_rel_file_path(GLOBALTABLESPACE_OID, 0, 1262, FORK_VM, 0, p);
    assert_string_equal(p, "global/1262_vm");
    pg_rel_file_path(DEFAULTTABLESPACE_OID, 4294967295u, 4294967295u, FORK_INIT, 32767, p);
    assert_string_equal(p, "base/4294967295/4294967295_init.32767");
    assert_string_equal(pg_slru_dir(SLRU_MULTIXACT_OFFSETS), "pg_multixact/offsets");
    assert_null(pg_slru_dir(SLRU_KIND_COUNT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_lsn),
        cmocka_unit_test(test_control),
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_segment_record_in_page),
        cmocka_unit_test(test_filler_minimal),
        cmocka_unit_test(test_segment_record_across_pages),
        cmocka_unit_test(test_segment_record_across_segments),
        cmocka_unit_test(test_wal_file_name),
        cmocka_unit_test(test_pg_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
