/* basebackup.c: the basebackup tar (basebackup.h): the stored global keys of shard 0 as a data
 * directory without relation data, plus a WAL segment with a shutdown checkpoint to start from. */
#include "pageserver/basebackup.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "shared/bytes.h"
#include "shared/crc32c.h"
#include "shared/key.h"
#include "shared/pg_paths.h"
#include "shared/str.h"
#include "shared/tar.h"

#include "pageserver/pgdata.h"
#include "pageserver/read_path.h"

#define DIR_MODE  0700
#define FILE_MODE 0600

/* The directories of a PostgreSQL 15 data directory (initdb's subdirs), parents first. */
static const char *const SKELETON[] = {
    "base",
    "global",
    "pg_commit_ts",
    "pg_dynshmem",
    "pg_logical",
    "pg_logical/mappings",
    "pg_logical/snapshots",
    "pg_multixact",
    "pg_multixact/members",
    "pg_multixact/offsets",
    "pg_notify",
    "pg_replslot",
    "pg_serial",
    "pg_snapshots",
    "pg_stat",
    "pg_stat_tmp",
    "pg_subtrans",
    "pg_tblspc",
    "pg_twophase",
    "pg_wal",
    "pg_wal/archive_status",
    "pg_xact",
};

/* Configuration is not stored; these let a vanilla Postgres start (local connections only). */
static const char PG_HBA[] = "# written by the pageserver's basebackup: local connections only\n"
                             "local   all   all                  trust\n"
                             "host    all   all   127.0.0.1/32   trust\n"
                             "host    all   all   ::1/128        trust\n";
static const char *const EMPTY_CONFIG_FILES[] = {"pg_ident.conf", "postgresql.auto.conf",
                                                 "postgresql.conf"};

/* ---- the pure parts ---- */

/* page_header_size: the header at the start of the page at pos. */
static uint32_t page_header_size(Lsn pos, uint32_t seg_size)
{
    return pos % seg_size == 0 ? XLOG_LONG_PHD_SIZE : XLOG_SHORT_PHD_SIZE;
}

/* first_record: where the first record of rec's page starts (right after its header). */
static Lsn first_record(Lsn rec, uint32_t wal_seg_size, uint32_t wal_blcksz)
{
    Lsn page = rec - rec % wal_blcksz;
    return page + page_header_size(page, wal_seg_size);
}

Lsn basebackup_checkpoint_lsn(Lsn lsn, uint32_t wal_seg_size, uint32_t wal_blcksz)
{
    Lsn rec = (lsn + 7) & ~(Lsn)7;
    Lsn first = first_record(rec, wal_seg_size, wal_blcksz);
    if (rec < first)
        rec = first; /* the page's start: after its header */
    else if (rec > first && rec - first < XLOG_RECORD_HEADER_SIZE)
        rec = first + XLOG_RECORD_HEADER_SIZE; /* room for the filler record before it */
    return rec;
}

Lsn basebackup_filler_lsn(Lsn rec, uint32_t wal_seg_size, uint32_t wal_blcksz)
{
    Lsn first = first_record(rec, wal_seg_size, wal_blcksz);
    return rec > first ? first : LSN_INVALID;
}

void basebackup_filler_record(uint32_t len, Lsn prev, uint8_t *out)
{
    memset(out, 0, len);
    le_put_u32(out, len); /* xl_tot_len: the record ends exactly where the checkpoint starts */
    le_put_u64(out + 8, prev);
    out[16] = XLOG_NOOP;
    out[17] = RM_XLOG_ID;
    size_t hdr = XLOG_RECORD_HEADER_SIZE;
    if (len > XLOG_RECORD_HEADER_SIZE) { /* the rest is one long data block of zeros */
        out[hdr] = XLR_BLOCK_ID_DATA_LONG;
        le_put_u32(out + hdr + 1, len - XLOG_RECORD_HEADER_SIZE - 5);
    }
    uint32_t crc = crc32c(out + hdr, len - hdr);
    crc = crc32c_extend(crc, out, 20);
    le_put_u32(out + 20, crc);
}

void basebackup_control(const uint8_t control[PG_CONTROL_FILE_SIZE],
                        const uint8_t checkpoint[PG_CONTROL_CHECKPOINT_SIZE], Lsn rec,
                        uint8_t out[PG_CONTROL_FILE_SIZE])
{
    memcpy(out, control, PG_CONTROL_FILE_SIZE);
    uint8_t *ck = out + PG_CONTROL_OFF_CHECKPOINT_COPY;
    memcpy(ck, checkpoint, PG_CONTROL_CHECKPOINT_SIZE);
    le_put_u64(ck + PG_CHECKPOINT_OFF_REDO, rec);
    le_put_u64(out + PG_CONTROL_OFF_CHECKPOINT, rec);
    le_put_u32(out + PG_CONTROL_OFF_STATE, PG_DB_SHUTDOWNED);
    le_put_u64(out + PG_CONTROL_OFF_MIN_RECOVERY_POINT, 0);
    le_put_u32(out + PG_CONTROL_OFF_MIN_RECOVERY_TLI, 0);
    le_put_u64(out + PG_CONTROL_OFF_BACKUP_START_POINT, 0);
    le_put_u64(out + PG_CONTROL_OFF_BACKUP_END_POINT, 0);
    out[PG_CONTROL_OFF_BACKUP_END_REQUIRED] = 0;
    pg_control_update_crc(out);
}

void basebackup_checkpoint_record(const uint8_t checkpoint[PG_CONTROL_CHECKPOINT_SIZE], Lsn prev,
                                  uint8_t out[XLOG_CHECKPOINT_REC_SIZE])
{
    memset(out, 0, XLOG_CHECKPOINT_REC_SIZE);
    le_put_u32(out, XLOG_CHECKPOINT_REC_SIZE); /* xl_tot_len */
    /* xl_xid 0 */
    le_put_u64(out + 8, prev); /* xl_prev */
    out[16] = XLOG_CHECKPOINT_SHUTDOWN;
    out[17] = RM_XLOG_ID;
    out[XLOG_RECORD_HEADER_SIZE] = XLR_BLOCK_ID_DATA_SHORT;
    out[XLOG_RECORD_HEADER_SIZE + 1] = PG_CONTROL_CHECKPOINT_SIZE;
    memcpy(out + XLOG_RECORD_HEADER_SIZE + 2, checkpoint, PG_CONTROL_CHECKPOINT_SIZE);
    /* xl_crc: the data after the header, then the header up to xl_crc (xlog.c) */
    uint32_t crc =
        crc32c(out + XLOG_RECORD_HEADER_SIZE, XLOG_CHECKPOINT_REC_SIZE - XLOG_RECORD_HEADER_SIZE);
    crc = crc32c_extend(crc, out, 20);
    le_put_u32(out + 20, crc);
}

/* WalPiece: where the record's bytes land, with the pages whose header must be written. */
typedef void (*WalPieceFn)(void *ctx, Lsn pos, const uint8_t *data, size_t len, bool page_start,
                           uint32_t rem_len);

/* walk_record: lay the record out from rec: fn gets each piece of it (page_start: the piece
 * follows a continuation page header at the start of its page; rem_len the bytes still owed
 * there). Returns the end position. */
static Lsn walk_record(const PgControl *c, const uint8_t *record, Lsn rec, WalPieceFn fn, void *ctx)
{
    uint32_t blcksz = c->xlog_blcksz;
    Lsn pos = rec;
    size_t off = 0;
    bool cont = false;
    while (off < XLOG_CHECKPOINT_REC_SIZE) {
        uint32_t rem = (uint32_t)(XLOG_CHECKPOINT_REC_SIZE - off);
        if (pos % blcksz == 0) {
            pos += page_header_size(pos, c->xlog_seg_size);
            cont = true;
        }
        size_t room = blcksz - (size_t)(pos % blcksz);
        size_t n = rem < room ? rem : room;
        fn(ctx, pos, record + off, n, cont, rem);
        pos += n;
        off += n;
    }
    return pos;
}

static void note_end(void *ctx, Lsn pos, const uint8_t *data, size_t len, bool page_start,
                     uint32_t rem_len)
{
    (void)ctx;
    (void)pos;
    (void)data;
    (void)len;
    (void)page_start;
    (void)rem_len;
}

BasebackupWal basebackup_wal_plan(const PgControl *c, Lsn rec)
{
    static const uint8_t NONE[XLOG_CHECKPOINT_REC_SIZE];
    Lsn end = walk_record(c, NONE, rec, note_end, NULL);
    return (BasebackupWal){.first_segno = rec / c->xlog_seg_size,
                           .last_segno = (end - 1) / c->xlog_seg_size};
}

typedef struct SegFill {
    const PgControl *c;
    uint8_t *seg;
    Lsn start; /* the segment's first byte */
} SegFill;

static void write_page_header(const SegFill *f, Lsn page, uint16_t info, uint32_t rem_len)
{
    uint8_t *h = f->seg + (page - f->start);
    bool long_hdr = page % f->c->xlog_seg_size == 0;
    le_put_u16(h, XLOG_PAGE_MAGIC_15);
    le_put_u16(h + 2, (uint16_t)(info | (long_hdr ? XLP_LONG_HEADER : 0)));
    le_put_u32(h + 4, f->c->checkpoint.this_timeline);
    le_put_u64(h + 8, page);
    le_put_u32(h + 16, rem_len);
    if (long_hdr) {
        le_put_u64(h + 24, f->c->system_identifier);
        le_put_u32(h + 32, f->c->xlog_seg_size);
        le_put_u32(h + 36, f->c->xlog_blcksz);
    }
}

static void fill_piece(void *ctx, Lsn pos, const uint8_t *data, size_t len, bool page_start,
                       uint32_t rem_len)
{
    SegFill *f = ctx;
    if (pos < f->start || pos >= f->start + f->c->xlog_seg_size)
        return;
    Lsn page = pos - pos % f->c->xlog_blcksz;
    if (page_start)
        write_page_header(f, page, XLP_FIRST_IS_CONTRECORD, rem_len);
    else if (page != f->start)
        write_page_header(f, page, 0, 0); /* the record's first page */
    memcpy(f->seg + (pos - f->start), data, len);
}

void basebackup_wal_segment(const PgControl *c, const uint8_t record[XLOG_CHECKPOINT_REC_SIZE],
                            Lsn rec, uint64_t segno, uint8_t *seg)
{
    memset(seg, 0, c->xlog_seg_size);
    SegFill f = {.c = c, .seg = seg, .start = segno * c->xlog_seg_size};
    write_page_header(&f, f.start, 0, 0); /* every segment starts with a long header */
    (void)walk_record(c, record, rec, fill_piece, &f);
    Lsn filler = basebackup_filler_lsn(rec, c->xlog_seg_size, c->xlog_blcksz);
    if (filler != LSN_INVALID && filler >= f.start && filler < f.start + c->xlog_seg_size) {
        Lsn prev = c->checkpoint_lsn < filler ? c->checkpoint_lsn : LSN_INVALID;
        basebackup_filler_record((uint32_t)(rec - filler), prev, seg + (filler - f.start));
    }
}

Lsn basebackup_record_prev(const PgControl *c, Lsn rec)
{
    Lsn filler = basebackup_filler_lsn(rec, c->xlog_seg_size, c->xlog_blcksz);
    if (filler != LSN_INVALID)
        return filler;
    return c->checkpoint_lsn < rec ? c->checkpoint_lsn : LSN_INVALID;
}

void basebackup_wal_file_name(uint32_t tli, uint64_t segno, uint32_t wal_seg_size,
                              char out[XLOG_FNAME_LEN + 1])
{
    uint64_t per_id = 0x100000000ull / wal_seg_size;
    (void)str_printf(out, XLOG_FNAME_LEN + 1, "%08X%08X%08X", tli, (uint32_t)(segno / per_id),
                     (uint32_t)(segno % per_id));
}

/* ---- the tar ---- */

typedef struct Build {
    TarWriter w;
    int fd;
    bool gzip;
    int64_t mtime;
    PgControl control;
    uint8_t control_raw[PG_CONTROL_FILE_SIZE];
    uint8_t checkpoint_raw[PG_CONTROL_CHECKPOINT_SIZE];
    BasebackupDoneFn done;
    void *arg;
} Build;

/* get_value: a key that must exist with exactly len bytes (or any length when len is 0). */
static bool get_value(ReadCtx *c, const Key *key, size_t want, void **v, size_t *len, Err *err)
{
    bool found = false;
    if (!read_ctx_get(c, key, v, len, &found, err))
        return false;
    char k[KEY_STR_SIZE];
    if (!found) {
        key_format(key, k);
        err_set(err, ERR_INTERNAL, "basebackup: key %s is not stored at this LSN", k);
        return false;
    }
    if (want != 0 && *len != want) {
        key_format(key, k);
        err_set(err, ERR_INTERNAL, "basebackup: key %s holds %zu bytes, expected %zu", k, *len,
                want);
        free(*v);
        *v = NULL;
        return false;
    }
    return true;
}

static bool add_file(Build *b, const char *name, const void *data, size_t len, Err *err)
{
    return tar_writer_add_file(&b->w, name, FILE_MODE, b->mtime, data, len, err);
}

static bool add_dir(Build *b, const char *name, Err *err)
{
    return tar_writer_add_dir(&b->w, name, DIR_MODE, b->mtime, err);
}

/* add_pages: a file of n 8192-byte pages read from page_key(i) (absent: zeros). */
typedef Key (*PageKeyFn)(const void *ctx, uint32_t i);

static bool add_pages(Build *b, ReadCtx *c, const char *name, uint32_t n, PageKeyFn page_key,
                      const void *ctx, Err *err)
{
    static const uint8_t ZEROS[BLCKSZ];
    if (!tar_writer_add_file_stream(&b->w, name, FILE_MODE, b->mtime, (uint64_t)n * BLCKSZ, err))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        Key k = page_key(ctx, i);
        void *v = NULL;
        size_t len = 0;
        bool found = false;
        if (!read_ctx_get(c, &k, &v, &len, &found, err))
            return false;
        if (found && len != BLCKSZ) {
            free(v);
            char ks[KEY_STR_SIZE];
            key_format(&k, ks);
            err_set(err, ERR_INTERNAL, "basebackup: page %s holds %zu bytes", ks, len);
            return false;
        }
        bool ok = tar_writer_write_data(&b->w, found ? v : ZEROS, BLCKSZ, err);
        free(v);
        if (!ok)
            return false;
    }
    return tar_writer_end_file(&b->w, err);
}

static bool get_size(ReadCtx *c, const Key *key, uint32_t *n, Err *err)
{
    void *v = NULL;
    size_t len = 0;
    if (!get_value(c, key, 4, &v, &len, err))
        return false;
    const uint8_t *p = v;
    *n = le_get_u32(p);
    free(v);
    return true;
}

typedef struct InitFork {
    uint32_t spc, db, rel;
} InitFork;

static Key init_fork_key(const void *ctx, uint32_t i)
{
    const InitFork *f = ctx;
    return key_rel_block(f->spc, f->db, f->rel, FORK_INIT, i);
}

/* add_database: the database directory with PG_VERSION, pg_filenode.map and init forks. */
static bool add_database(Build *b, ReadCtx *c, uint32_t spc, uint32_t db, const char *version,
                         Err *err)
{
    char dir[PG_PATH_MAX], path[PG_PATH_MAX + 32];
    if (spc != GLOBALTABLESPACE_OID && spc != DEFAULTTABLESPACE_OID) {
        err_set(err, ERR_INTERNAL, "basebackup: database %u/%u in a user tablespace", spc, db);
        return false;
    }
    pg_rel_dir_path(spc, db, dir);
    if (spc == DEFAULTTABLESPACE_OID) {
        (void)str_printf(path, sizeof(path), "%s/PG_VERSION", dir);
        if (!add_dir(b, dir, err) || !add_file(b, path, version, strlen(version), err))
            return false;
    }
    Key relmap = key_relmap(spc, db);
    void *v = NULL;
    size_t len = 0;
    if (!get_value(c, &relmap, PGDATA_RELMAP_SIZE, &v, &len, err))
        return false;
    (void)str_printf(path, sizeof(path), "%s/pg_filenode.map", dir);
    bool ok = add_file(b, path, v, len, err);
    free(v);
    if (!ok)
        return false;
    Key reldir = key_reldir(spc, db);
    PgdataRelDirEntry *rels = NULL;
    size_t n = 0;
    if (!get_value(c, &reldir, 0, &v, &len, err))
        return false;
    ok = pgdata_reldir_decode(v, len, &rels, &n, err);
    free(v);
    for (size_t i = 0; i < n && ok; i++) {
        if (rels[i].forknum != FORK_INIT)
            continue;
        InitFork f = {spc, db, rels[i].relnode};
        Key size_key = key_rel_size(spc, db, f.rel, FORK_INIT);
        uint32_t nblocks = 0;
        char file[PG_PATH_MAX];
        pg_rel_file_path(spc, db, f.rel, FORK_INIT, 0, file);
        ok = get_size(c, &size_key, &nblocks, err) &&
             add_pages(b, c, file, nblocks, init_fork_key, &f, err);
    }
    free(rels);
    return ok;
}

typedef struct SlruSeg {
    SlruKind kind;
    uint32_t segno;
} SlruSeg;

static Key slru_key(const void *ctx, uint32_t i)
{
    const SlruSeg *s = ctx;
    return key_slru_block(s->kind, s->segno, i);
}

/* get_u32_set: the entries of an SLRU (slru) or two-phase directory key; absent: none. */
static bool get_u32_set(ReadCtx *c, const Key *key, bool slru, uint32_t **out, size_t *n, Err *err)
{
    void *v = NULL;
    size_t len = 0;
    bool found = false;
    *out = NULL;
    *n = 0;
    if (!read_ctx_get(c, key, &v, &len, &found, err))
        return false;
    bool ok = !found || (slru ? pgdata_slrudir_decode(v, len, out, n, err)
                              : pgdata_twophasedir_decode(v, len, out, n, err));
    free(v);
    return ok;
}

static bool add_slru(Build *b, ReadCtx *c, SlruKind kind, Err *err)
{
    Key dir_key = key_slru_dir(kind);
    uint32_t *segs = NULL;
    size_t n = 0;
    bool ok = get_u32_set(c, &dir_key, true, &segs, &n, err);
    for (size_t i = 0; i < n && ok; i++) {
        SlruSeg s = {kind, segs[i]};
        Key size_key = key_slru_segment_size(kind, segs[i]);
        uint32_t nblocks = 0;
        char name[PG_PATH_MAX];
        (void)str_printf(name, sizeof(name), "%s/%04X", pg_slru_dir(kind), segs[i]);
        ok = get_size(c, &size_key, &nblocks, err);
        if (ok && nblocks > SLRU_PAGES_PER_SEGMENT) {
            err_set(err, ERR_INTERNAL, "basebackup: SLRU segment %s has %u pages", name, nblocks);
            ok = false;
        }
        ok = ok && add_pages(b, c, name, nblocks, slru_key, &s, err);
    }
    free(segs);
    return ok;
}

static bool add_wal(Build *b, Lsn rec, Err *err)
{
    uint8_t control[PG_CONTROL_FILE_SIZE];
    basebackup_control(b->control_raw, b->checkpoint_raw, rec, control);
    uint8_t record[XLOG_CHECKPOINT_REC_SIZE];
    basebackup_checkpoint_record(control + PG_CONTROL_OFF_CHECKPOINT_COPY,
                                 basebackup_record_prev(&b->control, rec), record);
    BasebackupWal plan = basebackup_wal_plan(&b->control, rec);
    uint8_t *seg = xmalloc(b->control.xlog_seg_size);
    bool ok = true;
    for (uint64_t s = plan.first_segno; s <= plan.last_segno && ok; s++) {
        char name[XLOG_FNAME_LEN + 1], path[XLOG_FNAME_LEN + 16];
        basebackup_wal_file_name(b->control.checkpoint.this_timeline, s, b->control.xlog_seg_size,
                                 name);
        (void)str_printf(path, sizeof(path), "pg_wal/%s", name);
        basebackup_wal_segment(&b->control, record, rec, s, seg);
        ok = add_file(b, path, seg, b->control.xlog_seg_size, err);
    }
    free(seg);
    return ok && add_file(b, "global/pg_control", control, sizeof(control), err);
}

static bool load_control(Build *b, ReadCtx *c, Err *err)
{
    Key ck = key_controlfile(), cp = key_checkpoint();
    void *v = NULL;
    size_t len = 0;
    if (!get_value(c, &ck, PG_CONTROL_FILE_SIZE, &v, &len, err))
        return false;
    memcpy(b->control_raw, v, PG_CONTROL_FILE_SIZE);
    free(v);
    if (!get_value(c, &cp, PG_CONTROL_CHECKPOINT_SIZE, &v, &len, err))
        return false;
    memcpy(b->checkpoint_raw, v, PG_CONTROL_CHECKPOINT_SIZE);
    free(v);
    if (!pg_control_parse(b->control_raw, PG_CONTROL_FILE_SIZE, &b->control, err)) {
        err->code = ERR_INTERNAL; /* stored data: it was checked when it was imported */
        err_prefix(err, "basebackup: stored pg_control: ");
        return false;
    }
    if (b->control.xlog_blcksz == 0 || b->control.xlog_seg_size % b->control.xlog_blcksz != 0 ||
        b->control.xlog_seg_size < b->control.xlog_blcksz) {
        err_set(err, ERR_INTERNAL, "basebackup: stored pg_control: WAL segment size %u, block %u",
                b->control.xlog_seg_size, b->control.xlog_blcksz);
        return false;
    }
    b->mtime = b->control.time >= 0 && b->control.time <= TAR_MTIME_MAX ? b->control.time : 0;
    return true;
}

static bool check_no_twophase(ReadCtx *c, Err *err)
{
    Key k = key_twophase_dir();
    uint32_t *xids = NULL;
    size_t n = 0;
    bool ok = get_u32_set(c, &k, false, &xids, &n, err);
    free(xids);
    if (ok && n > 0) {
        err_set(err, ERR_INTERNAL,
                "basebackup: %zu prepared transactions, whose state files are not stored", n);
        return false;
    }
    return ok;
}

static bool build_tar(Build *b, ReadCtx *c, Err *err)
{
    if (!load_control(b, c, err) || !check_no_twophase(c, err))
        return false;
    char version[16];
    (void)str_printf(version, sizeof(version), "%u\n", b->control.pg_version);
    if (!add_file(b, "PG_VERSION", version, strlen(version), err) ||
        !add_file(b, "pg_hba.conf", PG_HBA, strlen(PG_HBA), err))
        return false;
    for (size_t i = 0; i < sizeof(EMPTY_CONFIG_FILES) / sizeof(EMPTY_CONFIG_FILES[0]); i++)
        if (!add_file(b, EMPTY_CONFIG_FILES[i], "", 0, err))
            return false;
    for (size_t i = 0; i < sizeof(SKELETON) / sizeof(SKELETON[0]); i++)
        if (!add_dir(b, SKELETON[i], err))
            return false;
    Key dbdir = key_dbdir();
    void *v = NULL;
    size_t len = 0;
    if (!get_value(c, &dbdir, 0, &v, &len, err))
        return false;
    PgdataDbDirEntry *dbs = NULL;
    size_t n = 0;
    bool ok = pgdata_dbdir_decode(v, len, &dbs, &n, err);
    free(v);
    for (size_t i = 0; i < n && ok; i++)
        ok = add_database(b, c, dbs[i].spcnode, dbs[i].dbnode, version, err);
    free(dbs);
    for (int k = 0; k < SLRU_KIND_COUNT && ok; k++)
        ok = add_slru(b, c, (SlruKind)k, err);
    return ok &&
           add_wal(b,
                   basebackup_checkpoint_lsn(read_ctx_lsn(c), b->control.xlog_seg_size,
                                             b->control.xlog_blcksz),
                   err) &&
           tar_writer_finish(&b->w, err);
}

static bool build_work(ReadCtx *c, void *arg, Err *err)
{
    Build *b = arg;
    if (!b->gzip) {
        tar_writer_init(&b->w, tar_fd_write, &b->fd);
        return build_tar(b, c, err);
    }
    TarGzipEncoder *enc = NULL;
    if (!tar_gzip_encoder_new(BASEBACKUP_GZIP_LEVEL, tar_fd_write, &b->fd, &enc, err))
        return false;
    tar_writer_init(&b->w, tar_gzip_encoder_write, enc);
    bool ok = build_tar(b, c, err) && tar_gzip_encoder_finish(enc, err);
    tar_gzip_encoder_free(enc);
    return ok;
}

static void build_done(const Err *err, Lsn lsn, void *arg)
{
    Build *b = arg;
    BasebackupDoneFn done = b->done;
    void *done_arg = b->arg;
    free(b);
    done(err, lsn, done_arg);
}

void basebackup_build(struct TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                      Lsn lsn, bool gzip, int out_fd, BasebackupDoneFn done, void *arg)
{
    Build *b = xcalloc(1, sizeof(*b));
    b->fd = out_fd;
    b->gzip = gzip;
    b->done = done;
    b->arg = arg;
    read_path_run(mgr, tsid, tl, lsn, build_work, build_done, b);
}
