/*
 * pg_control.h: parsing of Postgres' `global/pg_control` (PostgreSQL 15 layout), the file that
 * tells an import or a bootstrap where the cluster's last checkpoint is, which Postgres version
 * wrote it and whether it was shut down cleanly.
 *
 * The file is 8192 bytes; ControlFileData sits at its start and is protected by a CRC-32C over
 * the bytes before the crc field. Postgres writes it in the machine's byte order; we read it as
 * little-endian (x86-64 and arm64 are both little-endian; a big-endian file fails the version
 * check). We do not include Postgres headers: the offsets below were taken from PostgreSQL 15's
 * catalog/pg_control.h (offsetof on x86-64) and are cross-checked against pg_controldata in the
 * unit tests.
 *
 * No heap, no globals: safe on any thread.
 */
#ifndef PAGESERVER_PG_CONTROL_H
#define PAGESERVER_PG_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"

#define PG_CONTROL_FILE_SIZE       8192      /* PG_CONTROL_FILE_SIZE: physical size of the file */
#define PG_CONTROL_VERSION_15      1300u     /* PG_CONTROL_VERSION of PostgreSQL 13 to 16 */
#define PG_CATALOG_VERSION_15      202209061 /* CATALOG_VERSION_NO of PostgreSQL 15 */
#define PG_CONTROL_CHECKPOINT_SIZE 88        /* sizeof(CheckPoint) */

/* Offsets of ControlFileData fields (PostgreSQL 15, catalog/pg_control.h). */
#define PG_CONTROL_OFF_SYSTEM_IDENTIFIER     0   /* uint64 system_identifier */
#define PG_CONTROL_OFF_PG_CONTROL_VERSION    8   /* uint32 pg_control_version */
#define PG_CONTROL_OFF_CATALOG_VERSION_NO    12  /* uint32 catalog_version_no */
#define PG_CONTROL_OFF_STATE                 16  /* DBState state (enum, 4 bytes) */
#define PG_CONTROL_OFF_TIME                  24  /* pg_time_t time */
#define PG_CONTROL_OFF_CHECKPOINT            32  /* XLogRecPtr checkPoint */
#define PG_CONTROL_OFF_CHECKPOINT_COPY       40  /* CheckPoint checkPointCopy (88 bytes) */
#define PG_CONTROL_OFF_UNLOGGED_LSN          128 /* XLogRecPtr unloggedLSN */
#define PG_CONTROL_OFF_MIN_RECOVERY_POINT    136 /* XLogRecPtr minRecoveryPoint */
#define PG_CONTROL_OFF_MIN_RECOVERY_TLI      144 /* TimeLineID minRecoveryPointTLI */
#define PG_CONTROL_OFF_BACKUP_START_POINT    152 /* XLogRecPtr backupStartPoint */
#define PG_CONTROL_OFF_BACKUP_END_POINT      160 /* XLogRecPtr backupEndPoint */
#define PG_CONTROL_OFF_BACKUP_END_REQUIRED   168 /* bool backupEndRequired */
#define PG_CONTROL_OFF_WAL_LEVEL             172 /* int wal_level */
#define PG_CONTROL_OFF_WAL_LOG_HINTS         176 /* bool wal_log_hints */
#define PG_CONTROL_OFF_MAX_CONNECTIONS       180 /* int MaxConnections */
#define PG_CONTROL_OFF_MAX_WORKER_PROCESSES  184 /* int max_worker_processes */
#define PG_CONTROL_OFF_MAX_WAL_SENDERS       188 /* int max_wal_senders */
#define PG_CONTROL_OFF_MAX_PREPARED_XACTS    192 /* int max_prepared_xacts */
#define PG_CONTROL_OFF_MAX_LOCKS_PER_XACT    196 /* int max_locks_per_xact */
#define PG_CONTROL_OFF_TRACK_COMMIT_TS       200 /* bool track_commit_timestamp */
#define PG_CONTROL_OFF_MAX_ALIGN             204 /* uint32 maxAlign */
#define PG_CONTROL_OFF_FLOAT_FORMAT          208 /* double floatFormat (1234567.0) */
#define PG_CONTROL_OFF_BLCKSZ                216 /* uint32 blcksz */
#define PG_CONTROL_OFF_RELSEG_SIZE           220 /* uint32 relseg_size */
#define PG_CONTROL_OFF_XLOG_BLCKSZ           224 /* uint32 xlog_blcksz */
#define PG_CONTROL_OFF_XLOG_SEG_SIZE         228 /* uint32 xlog_seg_size */
#define PG_CONTROL_OFF_NAME_DATA_LEN         232 /* uint32 nameDataLen */
#define PG_CONTROL_OFF_INDEX_MAX_KEYS        236 /* uint32 indexMaxKeys */
#define PG_CONTROL_OFF_TOAST_MAX_CHUNK_SIZE  240 /* uint32 toast_max_chunk_size */
#define PG_CONTROL_OFF_LOBLKSIZE             244 /* uint32 loblksize */
#define PG_CONTROL_OFF_FLOAT8_BYVAL          248 /* bool float8ByVal */
#define PG_CONTROL_OFF_DATA_CHECKSUM_VERSION 252 /* uint32 data_checksum_version */
#define PG_CONTROL_OFF_MOCK_AUTH_NONCE       256 /* char mock_authentication_nonce[32] */
#define PG_CONTROL_OFF_CRC                   288 /* pg_crc32c crc: CRC-32C of bytes [0, 288) */

/* Offsets inside CheckPoint (relative to PG_CONTROL_OFF_CHECKPOINT_COPY). */
#define PG_CHECKPOINT_OFF_REDO                 0  /* XLogRecPtr redo */
#define PG_CHECKPOINT_OFF_THIS_TIMELINE        8  /* TimeLineID ThisTimeLineID */
#define PG_CHECKPOINT_OFF_PREV_TIMELINE        12 /* TimeLineID PrevTimeLineID */
#define PG_CHECKPOINT_OFF_FULL_PAGE_WRITES     16 /* bool fullPageWrites */
#define PG_CHECKPOINT_OFF_NEXT_XID             24 /* FullTransactionId nextXid (epoch << 32 | xid) */
#define PG_CHECKPOINT_OFF_NEXT_OID             32 /* Oid nextOid */
#define PG_CHECKPOINT_OFF_NEXT_MULTI           36 /* MultiXactId nextMulti */
#define PG_CHECKPOINT_OFF_NEXT_MULTI_OFFSET    40 /* MultiXactOffset nextMultiOffset */
#define PG_CHECKPOINT_OFF_OLDEST_XID           44 /* TransactionId oldestXid */
#define PG_CHECKPOINT_OFF_OLDEST_XID_DB        48 /* Oid oldestXidDB */
#define PG_CHECKPOINT_OFF_OLDEST_MULTI         52 /* MultiXactId oldestMulti */
#define PG_CHECKPOINT_OFF_OLDEST_MULTI_DB      56 /* Oid oldestMultiDB */
#define PG_CHECKPOINT_OFF_TIME                 64 /* pg_time_t time */
#define PG_CHECKPOINT_OFF_OLDEST_COMMIT_TS_XID 72 /* TransactionId oldestCommitTsXid */
#define PG_CHECKPOINT_OFF_NEWEST_COMMIT_TS_XID 76 /* TransactionId newestCommitTsXid */
#define PG_CHECKPOINT_OFF_OLDEST_ACTIVE_XID    80 /* TransactionId oldestActiveXid */

/* DBState (catalog/pg_control.h). */
typedef enum PgDbState {
    PG_DB_STARTUP = 0,
    PG_DB_SHUTDOWNED = 1,
    PG_DB_SHUTDOWNED_IN_RECOVERY = 2,
    PG_DB_SHUTDOWNING = 3,
    PG_DB_IN_CRASH_RECOVERY = 4,
    PG_DB_IN_ARCHIVE_RECOVERY = 5,
    PG_DB_IN_PRODUCTION = 6,
    PG_DB_STATE_COUNT
} PgDbState;

/* PgCheckPoint: the decoded CheckPoint struct (the copy of the last checkpoint record). */
typedef struct PgCheckPoint {
    Lsn redo;
    uint32_t this_timeline;
    uint32_t prev_timeline;
    bool full_page_writes;
    uint64_t next_xid; /* FullTransactionId: epoch in the high 32 bits */
    uint32_t next_oid;
    uint32_t next_multi;
    uint32_t next_multi_offset;
    uint32_t oldest_xid;
    uint32_t oldest_xid_db;
    uint32_t oldest_multi;
    uint32_t oldest_multi_db;
    int64_t time;
    uint32_t oldest_commit_ts_xid;
    uint32_t newest_commit_ts_xid;
    uint32_t oldest_active_xid;
} PgCheckPoint;

/* PgControl: the fields of ControlFileData later stages need, plus the raw CheckPoint bytes (the
 * value of the checkpoint key) so nothing is lost by decoding. */
typedef struct PgControl {
    uint64_t system_identifier;
    uint32_t pg_control_version;
    uint32_t catalog_version_no;
    uint32_t pg_version; /* major version derived from catalog_version_no, e.g. 15 */
    PgDbState state;
    int64_t time;
    Lsn checkpoint_lsn; /* checkPoint: location of the last checkpoint record */
    PgCheckPoint checkpoint;
    uint8_t checkpoint_raw[PG_CONTROL_CHECKPOINT_SIZE];
    Lsn unlogged_lsn;
    Lsn min_recovery_point;
    uint32_t min_recovery_point_tli;
    Lsn backup_start_point;
    Lsn backup_end_point;
    bool backup_end_required;
    int32_t wal_level;
    bool wal_log_hints;
    int32_t max_connections;
    int32_t max_worker_processes;
    int32_t max_wal_senders;
    int32_t max_prepared_xacts;
    int32_t max_locks_per_xact;
    bool track_commit_timestamp;
    uint32_t max_align;
    uint32_t blcksz;
    uint32_t relseg_size;
    uint32_t xlog_blcksz;
    uint32_t xlog_seg_size;
    uint32_t data_checksum_version;
    uint32_t crc;
} PgControl;

/* pg_control_parse: decode and validate a pg_control file image of exactly PG_CONTROL_FILE_SIZE
 * bytes: CRC-32C, pg_control_version 1300, a catalog version this build supports (PostgreSQL
 * 15), state shut down (DB_SHUTDOWNED or DB_SHUTDOWNED_IN_RECOVERY: anything else means the
 * cluster was not shut down cleanly), block size 8192, 131072 blocks per segment, a valid
 * checkpoint LSN. Every failure is ERR_BAD_REQUEST with a message naming the problem. */
bool pg_control_parse(const void *data, size_t len, PgControl *out, Err *err) MUST_CHECK;

/* pg_control_compute_crc: the CRC-32C Postgres stores for the file image (bytes before crc). */
uint32_t pg_control_compute_crc(const uint8_t buf[PG_CONTROL_FILE_SIZE]);

/* pg_control_update_crc: recompute and store the crc of a modified image (basebackup rewrites
 * fields of pg_control; tests forge files). */
void pg_control_update_crc(uint8_t buf[PG_CONTROL_FILE_SIZE]);

/* pg_version_from_catalog: the major version for a catalog version number; ERR_BAD_REQUEST
 * naming the number (and the version, when known) if this build cannot import it. */
bool pg_version_from_catalog(uint32_t catalog_version_no, uint32_t *pg_version,
                             Err *err) MUST_CHECK;

/* pg_control_base_lsn: the LSN an import or bootstrap produces its image at: the checkpoint
 * location aligned up to 8 (import.md step 3). */
Lsn pg_control_base_lsn(const PgControl *c);

/* pg_db_state_name: pg_controldata's words for a state ("shut down", "in production"); static. */
const char *pg_db_state_name(PgDbState s);

#endif
