/*
 * pg_control.c: decoding and validation of `global/pg_control` (PostgreSQL 15 layout).
 *
 * The input is untrusted (an imported PGDATA may come from anywhere): every field is read with
 * explicit little-endian loads at fixed offsets, nothing is cast over the buffer, and each
 * check fails with a message that names what was wrong.
 */
#include <string.h>

#include "shared/bytes.h"
#include "shared/crc32c.h"

#include "pageserver/pg_control.h"

/* The catalog versions we can name in errors. Only the layout of PostgreSQL 15 is supported. */
typedef struct CatalogVersion {
    uint32_t catalog_version_no;
    uint32_t pg_version;
    bool supported;
} CatalogVersion;

static const CatalogVersion CATALOG_VERSIONS[] = {
    {201909212, 12, false}, {202007201, 13, false},
    {202107181, 14, false}, {PG_CATALOG_VERSION_15, 15, true},
    {202307071, 16, false}, {202406281, 17, false},
};

uint32_t pg_control_compute_crc(const uint8_t buf[PG_CONTROL_FILE_SIZE])
{
    return crc32c(buf, PG_CONTROL_OFF_CRC);
}

void pg_control_update_crc(uint8_t buf[PG_CONTROL_FILE_SIZE])
{
    le_put_u32(buf + PG_CONTROL_OFF_CRC, pg_control_compute_crc(buf));
}

bool pg_version_from_catalog(uint32_t catalog_version_no, uint32_t *pg_version, Err *err)
{
    for (size_t i = 0; i < sizeof(CATALOG_VERSIONS) / sizeof(CATALOG_VERSIONS[0]); i++) {
        const CatalogVersion *cv = &CATALOG_VERSIONS[i];
        if (cv->catalog_version_no != catalog_version_no)
            continue;
        if (!cv->supported) {
            err_set(err, ERR_BAD_REQUEST,
                    "pg_control: catalog version %u is PostgreSQL %u, which is not supported "
                    "(only PostgreSQL 15, catalog version %u)",
                    catalog_version_no, cv->pg_version, (uint32_t)PG_CATALOG_VERSION_15);
            return false;
        }
        *pg_version = cv->pg_version;
        return true;
    }
    err_set(err, ERR_BAD_REQUEST,
            "pg_control: unknown catalog version %u (only PostgreSQL 15, catalog version %u, is "
            "supported)",
            catalog_version_no, (uint32_t)PG_CATALOG_VERSION_15);
    return false;
}

const char *pg_db_state_name(PgDbState s)
{
    switch (s) {
    case PG_DB_STARTUP:
        return "starting up";
    case PG_DB_SHUTDOWNED:
        return "shut down";
    case PG_DB_SHUTDOWNED_IN_RECOVERY:
        return "shut down in recovery";
    case PG_DB_SHUTDOWNING:
        return "shutting down";
    case PG_DB_IN_CRASH_RECOVERY:
        return "in crash recovery";
    case PG_DB_IN_ARCHIVE_RECOVERY:
        return "in archive recovery";
    case PG_DB_IN_PRODUCTION:
        return "in production";
    case PG_DB_STATE_COUNT:
        break;
    }
    return "unrecognized status code";
}

Lsn pg_control_base_lsn(const PgControl *c)
{
    return (c->checkpoint_lsn + 7) & ~(Lsn)7;
}

/* decode_checkpoint: the CheckPoint struct at p (PG_CONTROL_CHECKPOINT_SIZE bytes). */
static void decode_checkpoint(const uint8_t *p, PgCheckPoint *cp)
{
    cp->redo = le_get_u64(p + PG_CHECKPOINT_OFF_REDO);
    cp->this_timeline = le_get_u32(p + PG_CHECKPOINT_OFF_THIS_TIMELINE);
    cp->prev_timeline = le_get_u32(p + PG_CHECKPOINT_OFF_PREV_TIMELINE);
    cp->full_page_writes = p[PG_CHECKPOINT_OFF_FULL_PAGE_WRITES] != 0;
    cp->next_xid = le_get_u64(p + PG_CHECKPOINT_OFF_NEXT_XID);
    cp->next_oid = le_get_u32(p + PG_CHECKPOINT_OFF_NEXT_OID);
    cp->next_multi = le_get_u32(p + PG_CHECKPOINT_OFF_NEXT_MULTI);
    cp->next_multi_offset = le_get_u32(p + PG_CHECKPOINT_OFF_NEXT_MULTI_OFFSET);
    cp->oldest_xid = le_get_u32(p + PG_CHECKPOINT_OFF_OLDEST_XID);
    cp->oldest_xid_db = le_get_u32(p + PG_CHECKPOINT_OFF_OLDEST_XID_DB);
    cp->oldest_multi = le_get_u32(p + PG_CHECKPOINT_OFF_OLDEST_MULTI);
    cp->oldest_multi_db = le_get_u32(p + PG_CHECKPOINT_OFF_OLDEST_MULTI_DB);
    cp->time = (int64_t)le_get_u64(p + PG_CHECKPOINT_OFF_TIME);
    cp->oldest_commit_ts_xid = le_get_u32(p + PG_CHECKPOINT_OFF_OLDEST_COMMIT_TS_XID);
    cp->newest_commit_ts_xid = le_get_u32(p + PG_CHECKPOINT_OFF_NEWEST_COMMIT_TS_XID);
    cp->oldest_active_xid = le_get_u32(p + PG_CHECKPOINT_OFF_OLDEST_ACTIVE_XID);
}

/* pg_control_parse: checks run in the order Postgres' ReadControlFile runs them (version before
 * CRC, so a file from another major version gets a version message rather than a CRC one), then
 * the import-specific ones (catalog version, clean shutdown, page and segment geometry). */
bool pg_control_parse(const void *data, size_t len, PgControl *out, Err *err)
{
    const uint8_t *b = data;
    memset(out, 0, sizeof(*out));
    if (len != PG_CONTROL_FILE_SIZE) {
        err_set(err, ERR_BAD_REQUEST,
                "pg_control: file is %zu bytes, expected %d (truncated or not a pg_control file)",
                len, PG_CONTROL_FILE_SIZE);
        return false;
    }
    out->pg_control_version = le_get_u32(b + PG_CONTROL_OFF_PG_CONTROL_VERSION);
    if (out->pg_control_version != PG_CONTROL_VERSION_15) {
        err_set(err, ERR_BAD_REQUEST,
                "pg_control: unsupported pg_control_version %u (expected %u; wrong Postgres "
                "version or byte order)",
                out->pg_control_version, PG_CONTROL_VERSION_15);
        return false;
    }
    out->crc = le_get_u32(b + PG_CONTROL_OFF_CRC);
    uint32_t crc = pg_control_compute_crc(b);
    if (crc != out->crc) {
        err_set(err, ERR_BAD_REQUEST,
                "pg_control: incorrect checksum (stored %08x, computed %08x): the file is "
                "corrupt",
                out->crc, crc);
        return false;
    }
    out->catalog_version_no = le_get_u32(b + PG_CONTROL_OFF_CATALOG_VERSION_NO);
    if (!pg_version_from_catalog(out->catalog_version_no, &out->pg_version, err))
        return false;

    uint32_t state = le_get_u32(b + PG_CONTROL_OFF_STATE);
    if (state != PG_DB_SHUTDOWNED && state != PG_DB_SHUTDOWNED_IN_RECOVERY) {
        err_set(err, ERR_BAD_REQUEST,
                "pg_control: database cluster state is \"%s\" (%u): the cluster was not shut "
                "down cleanly; start and stop it (or shut it down with pg_ctl -m fast) before "
                "importing",
                state < PG_DB_STATE_COUNT ? pg_db_state_name((PgDbState)state)
                                          : "unrecognized status code",
                state);
        return false;
    }
    out->state = (PgDbState)state;

    out->system_identifier = le_get_u64(b + PG_CONTROL_OFF_SYSTEM_IDENTIFIER);
    out->time = (int64_t)le_get_u64(b + PG_CONTROL_OFF_TIME);
    out->checkpoint_lsn = le_get_u64(b + PG_CONTROL_OFF_CHECKPOINT);
    memcpy(out->checkpoint_raw, b + PG_CONTROL_OFF_CHECKPOINT_COPY, PG_CONTROL_CHECKPOINT_SIZE);
    decode_checkpoint(out->checkpoint_raw, &out->checkpoint);
    out->unlogged_lsn = le_get_u64(b + PG_CONTROL_OFF_UNLOGGED_LSN);
    out->min_recovery_point = le_get_u64(b + PG_CONTROL_OFF_MIN_RECOVERY_POINT);
    out->min_recovery_point_tli = le_get_u32(b + PG_CONTROL_OFF_MIN_RECOVERY_TLI);
    out->backup_start_point = le_get_u64(b + PG_CONTROL_OFF_BACKUP_START_POINT);
    out->backup_end_point = le_get_u64(b + PG_CONTROL_OFF_BACKUP_END_POINT);
    out->backup_end_required = b[PG_CONTROL_OFF_BACKUP_END_REQUIRED] != 0;
    out->wal_level = (int32_t)le_get_u32(b + PG_CONTROL_OFF_WAL_LEVEL);
    out->wal_log_hints = b[PG_CONTROL_OFF_WAL_LOG_HINTS] != 0;
    out->max_connections = (int32_t)le_get_u32(b + PG_CONTROL_OFF_MAX_CONNECTIONS);
    out->max_worker_processes = (int32_t)le_get_u32(b + PG_CONTROL_OFF_MAX_WORKER_PROCESSES);
    out->max_wal_senders = (int32_t)le_get_u32(b + PG_CONTROL_OFF_MAX_WAL_SENDERS);
    out->max_prepared_xacts = (int32_t)le_get_u32(b + PG_CONTROL_OFF_MAX_PREPARED_XACTS);
    out->max_locks_per_xact = (int32_t)le_get_u32(b + PG_CONTROL_OFF_MAX_LOCKS_PER_XACT);
    out->track_commit_timestamp = b[PG_CONTROL_OFF_TRACK_COMMIT_TS] != 0;
    out->max_align = le_get_u32(b + PG_CONTROL_OFF_MAX_ALIGN);
    out->blcksz = le_get_u32(b + PG_CONTROL_OFF_BLCKSZ);
    out->relseg_size = le_get_u32(b + PG_CONTROL_OFF_RELSEG_SIZE);
    out->xlog_blcksz = le_get_u32(b + PG_CONTROL_OFF_XLOG_BLCKSZ);
    out->xlog_seg_size = le_get_u32(b + PG_CONTROL_OFF_XLOG_SEG_SIZE);
    out->data_checksum_version = le_get_u32(b + PG_CONTROL_OFF_DATA_CHECKSUM_VERSION);

    /* Our keys assume Postgres' default geometry (wire.md: 8 KiB pages, 1 GiB segments). */
    if (out->blcksz != 8192) {
        err_set(err, ERR_BAD_REQUEST, "pg_control: block size %u is not supported (only 8192)",
                out->blcksz);
        return false;
    }
    if (out->relseg_size != 131072) {
        err_set(err, ERR_BAD_REQUEST,
                "pg_control: %u blocks per relation segment is not supported (only 131072)",
                out->relseg_size);
        return false;
    }
    if (out->checkpoint_lsn == LSN_INVALID || out->checkpoint_lsn > UINT64_MAX - 8) {
        err_set(err, ERR_BAD_REQUEST, "pg_control: invalid checkpoint location %016llx",
                (unsigned long long)out->checkpoint_lsn);
        return false;
    }
    return true;
}
