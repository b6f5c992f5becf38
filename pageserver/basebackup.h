/*
 * basebackup.h: the basebackup tar of a timeline at an LSN (docs/page-service.md "basebackup"):
 * everything a compute needs to start except relation data. The page service streams it for the
 * `basebackup <tenant_id> <timeline_id> [<lsn>|latest] [--gzip]` command; the export
 * (storconctl timelines export) adds the relation files read through pagestream.
 *
 * Content, in this order (deterministic for the same timeline and LSN: uid/gid 0, mtime the
 * stored pg_control's time, fixed modes 0700/0600):
 *   PG_VERSION; empty postgresql.conf, postgresql.auto.conf, pg_ident.conf and a pg_hba.conf that
 *   trusts local connections (configuration is not stored: the compute's own replaces them);
 *   the directory skeleton of a PostgreSQL 15 data directory;
 *   global/pg_filenode.map; per database base/<db>/ with PG_VERSION and pg_filenode.map; the init
 *   forks (<rel>_init) of unlogged relations;
 *   the SLRU segments (pg_xact, pg_multixact/members, pg_multixact/offsets);
 *   pg_wal/<segment>: one WAL segment (two when the record crosses a segment end) holding a
 *   shutdown checkpoint record at basebackup_checkpoint_lsn(lsn) (lsn itself unless that is not
 *   a place a record can start), preceded on its page by a no-op record from the page header
 *   on, valid page headers (the segment's first page has the long header) and zeros elsewhere;
 *   global/pg_control last (a truncated tar never starts): the stored file with checkPoint and
 *   checkPointCopy.redo at that record, state "shut down", no minimum recovery or backup points,
 *   CRC-32C recomputed.
 * A vanilla PostgreSQL 15 started on it finds a clean shutdown checkpoint, runs no recovery and
 * writes new WAL after the record.
 *
 * Two-phase state files are not stored (imports refuse prepared transactions): a timeline whose
 * two-phase directory is not empty fails with ERR_INTERNAL.
 */
#ifndef PAGESERVER_BASEBACKUP_H
#define PAGESERVER_BASEBACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"

#include "pageserver/page_service.h"
#include "pageserver/pg_control.h"

struct TenantManager;

#define BASEBACKUP_GZIP_LEVEL 6

/* basebackup_build: on a worker, write the basebackup tar of (tsid, tl) at lsn (LSN_INVALID =
 * latest) into out_fd (a temporary file the caller owns), gzip-compressed when gzip; the
 * completion runs on the loop with the LSN used. (BasebackupDoneFn: page_service.h, whose
 * BasebackupBuildFn this is.) */
void basebackup_build(struct TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                      Lsn lsn, bool gzip, int out_fd, BasebackupDoneFn done, void *arg);

/* ---- the pure parts, exposed for tests ---- */

/* XLOG constants of PostgreSQL 15 (access/xlog_internal.h, access/xlogrecord.h). */
#define XLOG_PAGE_MAGIC_15       0xD110u
#define XLP_FIRST_IS_CONTRECORD  0x0001u
#define XLP_LONG_HEADER          0x0002u
#define XLOG_SHORT_PHD_SIZE      24u  /* MAXALIGN(sizeof(XLogPageHeaderData)) */
#define XLOG_LONG_PHD_SIZE       40u  /* MAXALIGN(sizeof(XLogLongPageHeaderData)) */
#define XLOG_RECORD_HEADER_SIZE  24u  /* SizeOfXLogRecord */
#define XLOG_CHECKPOINT_REC_SIZE 114u /* record header + short data header (2) + CheckPoint */
#define XLR_BLOCK_ID_DATA_SHORT  255u
#define XLR_BLOCK_ID_DATA_LONG   254u
#define XLOG_NOOP                0x20u
#define XLOG_CHECKPOINT_SHUTDOWN 0x00u
#define RM_XLOG_ID               0u
#define XLOG_FNAME_LEN           24u /* 8 hex timeline + 16 hex segment */

/* basebackup_checkpoint_lsn: where the checkpoint record goes for a basebackup at lsn: lsn
 * aligned up to 8; moved past the page header when that is the start of a page; moved to 24
 * bytes after the page header when it is closer than that (the smallest filler record). */
Lsn basebackup_checkpoint_lsn(Lsn lsn, uint32_t wal_seg_size, uint32_t wal_blcksz);

/* The space of rec's page between its header and the checkpoint record holds one XLOG_NOOP
 * record ending exactly at rec, so a reader that starts at the page (pg_waldump, pg_rewind's
 * search for the first record) finds a valid chain; Postgres' startup reads the checkpoint
 * directly. basebackup_filler_lsn: where it starts (LSN_INVALID: the checkpoint is the page's
 * first record). basebackup_filler_record: the record of len bytes (>= 24, a multiple of 8)
 * with xl_prev prev into out[len]. */
Lsn basebackup_filler_lsn(Lsn rec, uint32_t wal_seg_size, uint32_t wal_blcksz);
void basebackup_filler_record(uint32_t len, Lsn prev, uint8_t *out);

/* basebackup_control: the pg_control to start from: control (a valid stored pg_control) with
 * checkPoint = rec and checkPointCopy = checkpoint (the stored CheckPoint bytes) whose redo is
 * rec, state DB_SHUTDOWNED, no minRecoveryPoint/backup points, CRC recomputed. */
void basebackup_control(const uint8_t control[PG_CONTROL_FILE_SIZE],
                        const uint8_t checkpoint[PG_CONTROL_CHECKPOINT_SIZE], Lsn rec,
                        uint8_t out[PG_CONTROL_FILE_SIZE]);

/* basebackup_record_prev: the checkpoint record's xl_prev: the filler before it, else the stored
 * checkpoint's location (c: the stored control file) when it is below rec, else 0. */
Lsn basebackup_record_prev(const PgControl *c, Lsn rec);

/* basebackup_checkpoint_record: the XLOG_CHECKPOINT_SHUTDOWN record (with its CRC-32C) carrying
 * the CheckPoint bytes of the new control file, prev the xl_prev link. */
void basebackup_checkpoint_record(const uint8_t checkpoint[PG_CONTROL_CHECKPOINT_SIZE], Lsn prev,
                                  uint8_t out[XLOG_CHECKPOINT_REC_SIZE]);

/* BasebackupWal: the WAL segments of a checkpoint record at rec (c: the new control file). */
typedef struct BasebackupWal {
    uint64_t first_segno, last_segno; /* one or two segments */
} BasebackupWal;

/* basebackup_wal_plan: the segments the record at rec touches. */
BasebackupWal basebackup_wal_plan(const PgControl *c, Lsn rec);

/* basebackup_wal_segment: segment segno (of plan) into seg[c->xlog_seg_size] (every byte
 * written): page headers of the segment's first page, of the record's pages and of its
 * continuation pages, the filler record and the checkpoint record, zeros elsewhere (c: the stored
 * control file). */
void basebackup_wal_segment(const PgControl *c, const uint8_t record[XLOG_CHECKPOINT_REC_SIZE],
                            Lsn rec, uint64_t segno, uint8_t *seg);

/* basebackup_wal_file_name: "%08X%08X%08X" of timeline tli and segment segno. */
void basebackup_wal_file_name(uint32_t tli, uint64_t segno, uint32_t wal_seg_size,
                              char out[XLOG_FNAME_LEN + 1]);

#endif
