/*
 * pgdata.h: conversion of a Postgres data directory (PGDATA, PostgreSQL 15) into the pageserver's
 * keys and values (wire.md "The key"), for Bootstrap timelines (initdb, then convert) and for
 * import of a copied PGDATA (import.md). docs/key-values.md describes every key and value.
 *
 * Three parts:
 *   - PgdataSource: where the files are. Two operations, list a directory and read byte ranges of
 *     a file, so the same code reads a local directory now and an object store later. The local
 *     implementation refuses symlinks that leave the directory and anything that is neither a
 *     regular file nor a directory.
 *   - PgdataPlan: a pure, deterministic function of pg_control, the directory listings and the
 *     shard identity (import.md step 4): tasks sorted by key, grouped into jobs of at most
 *     job_soft_size_limit bytes of this shard's pages, each job owning a key range; together the
 *     ranges cover [KEY_MIN, KEY_MAX) without gaps. A SHA-256 plan hash lets a resumed import
 *     check it executes the same plan.
 *   - pgdata_job_execute: every key of one job that this shard stores, in strictly ascending
 *     order, handed to a sink; reads only this shard's blocks, in coalesced ranged reads of at
 *     most PGDATA_READ_MAX_BYTES, in bounded memory.
 *
 * The source is untrusted: malformed names, wrong sizes, missing or extra files, too many
 * entries end the conversion with ERR_BAD_REQUEST and a message naming the file and the problem.
 * Transient source errors keep their code (ERR_UNAVAILABLE, ERR_INTERNAL for I/O errors).
 *
 * Threads: no globals and no event loop. A plan is immutable once built; several threads may
 * execute jobs of the same plan at once (a source must allow concurrent calls; the local one
 * does). All of it blocks on I/O: call it from a worker thread.
 *
 * Directory values (the "set" values of wire.md) are encoded as a u32 little-endian count followed
 * by that many fixed-width entries of little-endian u32 fields, sorted ascending, no duplicates:
 *   database directory   (spcnode, dbnode)   8 bytes per entry
 *   relation directory   (relnode, forknum)  8 bytes per entry
 *   SLRU directory       segno               4 bytes per entry
 *   two-phase directory  xid                 4 bytes per entry
 */
#ifndef PAGESERVER_PGDATA_H
#define PAGESERVER_PGDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/key.h"

#include "pageserver/pg_control.h"

/* Limits and defaults. */
#define PGDATA_NAME_MAX                    64 /* longest directory entry name + NUL */
#define PGDATA_MAX_DIR_ENTRIES_DEFAULT     (1u << 20)
#define PGDATA_MAX_TASKS_DEFAULT           (4u << 20)
#define PGDATA_JOB_SOFT_SIZE_LIMIT_DEFAULT (256ull * 1024 * 1024)
#define PGDATA_READ_MAX_BYTES              (4u * 1024 * 1024) /* one coalesced read */
#define PGDATA_REL_SEGMENT_MAX_BYTES       ((uint64_t)RELSEG_BLOCKS * BLCKSZ) /* 1 GiB */
#define PGDATA_SLRU_SEGMENT_MAX_BYTES      (SLRU_PAGES_PER_SEGMENT * BLCKSZ)  /* 256 KiB */
#define PGDATA_RELMAP_SIZE                 512                                /* pg_filenode.map */
#define PGDATA_REL_MAX_SEGNO               32767u /* 0xFFFFFFFE blocks / 131072 */
#define PGDATA_PLAN_HASH_STR_SIZE          65     /* 64 lowercase hex + NUL */

/* ---- source ---- */

typedef struct PgdataDirEntry {
    char name[PGDATA_NAME_MAX];
    uint64_t size; /* bytes; 0 for directories */
    bool is_dir;
} PgdataDirEntry;

/* PgdataListing: entries of one directory. Free with pgdata_listing_free. */
typedef struct PgdataListing {
    PgdataDirEntry *entries;
    size_t n;
} PgdataListing;

void pgdata_listing_free(PgdataListing *l);

/* PgdataRange: a byte range of a file. */
typedef struct PgdataRange {
    uint64_t offset;
    size_t len;
} PgdataRange;

/* PgdataSourceOps: what a backend implements. Paths are relative to the data directory,
 * '/'-separated, without "." or ".." segments ("" is the data directory itself). Both operations
 * may be called from several threads at once. */
typedef struct PgdataSourceOps {
    const char *kind; /* "local", "s3", ... */
    /* list_dir: the entries of dir (any order). More than max_entries -> ERR_BAD_REQUEST without
     * allocating more than that; an absent directory -> ERR_NOT_FOUND. */
    bool (*list_dir)(void *impl, const char *dir, size_t max_entries, PgdataListing *out, Err *err);
    /* read_ranges: the ranges of file path, one after the other into buf (room for the sum of
     * their lengths). A range past the end of the file -> ERR_BAD_REQUEST; absent file ->
     * ERR_NOT_FOUND. */
    bool (*read_ranges)(void *impl, const char *path, const PgdataRange *ranges, size_t n,
                        void *buf, Err *err);
    void (*free_impl)(void *impl);
} PgdataSourceOps;

typedef struct PgdataSource PgdataSource;

/* pgdata_source_new: wrap a backend; the source owns impl (freed with ops->free_impl). The
 * caller frees the source with pgdata_source_free. description names it in messages. */
PgdataSource *pgdata_source_new(const PgdataSourceOps *ops, void *impl, const char *description);

/* pgdata_source_local_new: a local directory (resolved with realpath; it must exist and be a
 * directory). The caller frees it with pgdata_source_free. */
bool pgdata_source_local_new(const char *path, PgdataSource **out, Err *err) MUST_CHECK;

/* pgdata_source_remote_new: the objects under dir ("" = the storage's own prefix) of the remote
 * storage at url (pgdata_remote.c), e.g. an import's AwsS3 location. Blocking: workers only. */
bool pgdata_source_remote_new(const char *url, const char *dir, PgdataSource **out,
                              Err *err) MUST_CHECK;

void pgdata_source_free(PgdataSource *src);
const char *pgdata_source_description(const PgdataSource *src);

/* pgdata_source_list: list dir through the backend, then validate every name (non-empty, no '/',
 * not "." or "..", shorter than PGDATA_NAME_MAX), sort by name and refuse duplicates. The caller
 * frees *out with pgdata_listing_free. */
bool pgdata_source_list(PgdataSource *src, const char *dir, size_t max_entries, PgdataListing *out,
                        Err *err) MUST_CHECK;

/* pgdata_source_read: read ranges of path into buf (see read_ranges). */
bool pgdata_source_read(PgdataSource *src, const char *path, const PgdataRange *ranges, size_t n,
                        void *buf, Err *err) MUST_CHECK;

/* ---- file names ---- */

typedef struct PgdataRelFile {
    uint32_t relnode; /* != 0 */
    uint8_t fork;     /* FORK_MAIN, FORK_FSM, FORK_VM, FORK_INIT */
    uint32_t segno;   /* 0 for the file without a ".N" suffix; at most PGDATA_REL_MAX_SEGNO */
} PgdataRelFile;

/* pgdata_parse_rel_filename: `<relnode>[_fsm|_vm|_init][.<segno>]` exactly as Postgres writes it
 * (decimal without leading zeros, relnode != 0, segno >= 1 when present). */
bool pgdata_parse_rel_filename(const char *name, PgdataRelFile *out);

/* pgdata_parse_slru_segment: an SLRU segment file name as Postgres writes it ("%04X": at least 4
 * uppercase hex digits, no extra leading zeros). */
bool pgdata_parse_slru_segment(const char *name, uint32_t *segno);

/* ---- plan ---- */

typedef struct PgdataPlanParams {
    uint64_t job_soft_size_limit; /* bytes of shard-local pages per job; 0 = default */
    size_t max_dir_entries;       /* per listed directory; 0 = default */
    size_t max_tasks;             /* keys/block ranges in the plan; 0 = default */
} PgdataPlanParams;

typedef struct PgdataPlan PgdataPlan;

typedef struct PgdataJobInfo {
    KeyRange range;      /* [start, end): contiguous with the neighbours' ranges */
    uint64_t size_bytes; /* this shard's pages (relation and SLRU blocks) in the job */
    size_t n_tasks;      /* keys or block ranges */
} PgdataJobInfo;

/* pgdata_plan_new: read global/pg_control and list global/, base/, base/<db>/, pg_xact/,
 * pg_multixact/{members,offsets}/, pg_twophase/ and pg_tblspc/, validate them, and build the plan
 * for this shard. params may be NULL (defaults). The plan borrows src, which must outlive it; the
 * caller frees the plan with pgdata_plan_free. */
bool pgdata_plan_new(PgdataSource *src, const ShardIdentity *shard, const PgdataPlanParams *params,
                     PgdataPlan **out, Err *err) MUST_CHECK;
void pgdata_plan_free(PgdataPlan *plan);

size_t pgdata_plan_job_count(const PgdataPlan *plan);
/* pgdata_plan_job: job i (i < pgdata_plan_job_count). */
PgdataJobInfo pgdata_plan_job(const PgdataPlan *plan, size_t i);
/* pgdata_plan_base_lsn: the checkpoint location aligned up to 8. */
Lsn pgdata_plan_base_lsn(const PgdataPlan *plan);
uint32_t pgdata_plan_pg_version(const PgdataPlan *plan);
/* pgdata_plan_control: the parsed pg_control (owned by the plan). */
const PgControl *pgdata_plan_control(const PgdataPlan *plan);
/* pgdata_plan_hash: 64 lowercase hex digits (owned by the plan). */
const char *pgdata_plan_hash(const PgdataPlan *plan);
/* pgdata_plan_total_size: the sum of the jobs' size_bytes. */
uint64_t pgdata_plan_total_size(const PgdataPlan *plan);
ShardIdentity pgdata_plan_shard(const PgdataPlan *plan);

/* PgdataSink: receives one key and its value (valid only during the call). Return false (and
 * fill err) to stop the job. */
typedef bool (*PgdataSink)(void *ctx, const Key *key, const void *value, size_t len, Err *err);

/* pgdata_job_execute: call sink for every key of job job_index this shard stores, in strictly
 * ascending key order, every key inside the job's range. Values: relation and SLRU blocks the raw
 * 8192-byte pages; relation and SLRU segment sizes u32 LE block counts; relmap the raw 512 bytes;
 * control file the raw 8192-byte pg_control; checkpoint the CheckPoint bytes; directories the
 * encodings above. Memory: one PGDATA_READ_MAX_BYTES buffer plus the largest directory value. */
bool pgdata_job_execute(const PgdataPlan *plan, size_t job_index, PgdataSink sink, void *ctx,
                        Err *err) MUST_CHECK;

/* ---- directory values ---- */

typedef struct PgdataDbDirEntry {
    uint32_t spcnode;
    uint32_t dbnode;
} PgdataDbDirEntry;

typedef struct PgdataRelDirEntry {
    uint32_t relnode;
    uint32_t forknum;
} PgdataRelDirEntry;

/* Encoders: sort and deduplicate (a copy of) the entries and return a new buffer of *len bytes
 * the caller frees. n must fit in a u32 (the encoders abort otherwise: callers bound their sets
 * far below that). */
uint8_t *pgdata_dbdir_encode(const PgdataDbDirEntry *entries, size_t n, size_t *len);
uint8_t *pgdata_reldir_encode(const PgdataRelDirEntry *entries, size_t n, size_t *len);
uint8_t *pgdata_slrudir_encode(const uint32_t *segnos, size_t n, size_t *len);
uint8_t *pgdata_twophasedir_encode(const uint32_t *xids, size_t n, size_t *len);

/* Decoders: strict (length 4 + count * width, entries strictly ascending, forknum <= FORK_INIT);
 * a malformed value is ERR_INTERNAL (stored data is corrupt). *out is a new array the caller
 * frees (NULL when *n is 0). */
bool pgdata_dbdir_decode(const void *value, size_t len, PgdataDbDirEntry **out, size_t *n,
                         Err *err) MUST_CHECK;
bool pgdata_reldir_decode(const void *value, size_t len, PgdataRelDirEntry **out, size_t *n,
                          Err *err) MUST_CHECK;
bool pgdata_slrudir_decode(const void *value, size_t len, uint32_t **out, size_t *n,
                           Err *err) MUST_CHECK;
bool pgdata_twophasedir_decode(const void *value, size_t len, uint32_t **out, size_t *n,
                               Err *err) MUST_CHECK;

#endif
