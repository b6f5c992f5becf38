/*
 * read_path.h: reads of a timeline's keys, the calls the HTTP getpage route and the page service
 * make: a page, a relation's size and existence, a database's size, an SLRU segment; one at a
 * time or in batches that cost one worker round trip (read_path_batch).
 *
 * A page read of (rel, fork, blkno) at lsn:
 *   1. the key must be one this shard owns (relation blocks are striped; init-fork blocks live on
 *      shard 0): otherwise 404 "key ... is not owned by shard ..." (tenant_manager_shard_for_key
 *      says which local shard owns a key);
 *   2. an LSN beyond last_record_lsn waits for it (parked on the loop, rechecked every 20 ms,
 *      408 after the config's wait_lsn_timeout_ms); effective LSN = min(lsn, last_record_lsn)
 *      (LSN_INVALID: last_record_lsn); below min_readable_lsn -> 400;
 *   3. the relation size key decides: absent -> 404 (no such relation), blkno >= nblocks -> 404
 *      (past the end);
 *   4. the block key: its 8192-byte image, or zeros when the relation has the block but no image
 *      was ever written (a hole).
 * Relation size = the u32 of the relation size key (absent: 404 "relation not found"); relation
 * exists = the relation directory key of (spc, db) lists (rel, fork) (no directory: false);
 * database size = the sum over the relation directory's entries of their sizes, in bytes (no
 * directory: 404). Size and directory keys are global: every shard answers them. An SLRU segment
 * = its segment size key (absent: 404) and that many blocks (holes read as zeros); SLRU keys live
 * on shard 0.
 *
 * Timeline sizes (read_path_timeline_sizes, run when a timeline is loaded or created): at the
 * timeline's last_record_lsn, the logical size = the sum over every relation directory entry of
 * every database in the database directory of its size in bytes, and the directory entry counts
 * in Neon's DirectoryKind order (TimelineInfo.directory_entries_counts): databases, two-phase
 * transactions, relations (all databases), aux files (always 0: none are stored), then the SLRU
 * segments of clog, multixact members and multixact offsets. An absent directory counts 0.
 *
 * Each key is looked up timeline by timeline: the newest image layer holding the key at or below
 * the LSN; if the timeline has none, its ancestor at min(LSN, ancestor_lsn), and so on. An image
 * layer is complete for its key range, so a key absent from the layer that covers it does not
 * exist at that LSN.
 *
 * The lookups run on a worker (layers not yet local are downloaded first) with references on the
 * layers of the whole ancestor chain; the leading page, relation size and existence reads of a
 * batch whose data is all in memory (open layer readers, verified index blocks, the page cache,
 * page_cache.h) are answered on the loop thread without a worker (docs/pageserver.md, Page cache);
 * a corrupt block fails with 500 and the checksum message, never with data. Before the worker: 503
 * not ready, the slot's readability errors (slot_check_readable), 404 unknown timeline, 500 broken
 * timeline. Conventions: app.h (one callback, never from inside the call).
 */
#ifndef PAGESERVER_READ_PATH_H
#define PAGESERVER_READ_PATH_H

#include <stdbool.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/key.h"

struct TenantManager;
struct Timeline;

/* ReadPageFn: page is BLCKSZ bytes, valid during the call; NULL exactly when err != NULL. */
typedef void (*ReadPageFn)(const Err *err, const uint8_t *page, void *arg);
typedef void (*ReadRelSizeFn)(const Err *err, uint32_t nblocks, void *arg);
typedef void (*ReadRelExistsFn)(const Err *err, bool exists, void *arg);
typedef void (*ReadDbSizeFn)(const Err *err, uint64_t bytes, void *arg);

/* Directory kinds in Neon's order (DirectoryKind): the length of directory_entries_counts. */
enum {
    DIRKIND_DB,
    DIRKIND_TWOPHASE,
    DIRKIND_REL,
    DIRKIND_AUX_FILES,
    DIRKIND_SLRU_CLOG,
    DIRKIND_SLRU_MULTIXACT_MEMBERS,
    DIRKIND_SLRU_MULTIXACT_OFFSETS,
    DIRKIND_COUNT
};

typedef struct TimelineSizes {
    uint64_t logical_size; /* bytes */
    uint64_t dir_counts[DIRKIND_COUNT];
} TimelineSizes;

/* ReadSizesFn: sizes is valid during the call; NULL exactly when err != NULL. */
typedef void (*ReadSizesFn)(const Err *err, const TimelineSizes *sizes, void *arg);

/* ---- batched reads (the page service) ---- */

typedef enum ReadOp {
    READ_OP_PAGE,         /* rel, blkno -> page */
    READ_OP_REL_SIZE,     /* rel -> nblocks */
    READ_OP_REL_EXISTS,   /* rel -> exists */
    READ_OP_DB_SIZE,      /* rel.spc, rel.db -> bytes */
    READ_OP_SLRU_SEGMENT, /* slru_kind, segno -> nblocks, segment (shard 0's keys) */
    READ_OP_COUNT
} ReadOp;

/* ReadItem: one read of a batch: the caller fills the inputs, the read path the outputs. */
typedef struct ReadItem {
    /* in */
    ReadOp op;
    RelTag rel;
    uint32_t blkno;
    uint8_t slru_kind;
    uint32_t segno;
    Lsn lsn; /* read at min(lsn, last_record_lsn); LSN_INVALID: last_record_lsn */
    /* out */
    bool ok; /* false: err says why (this item only, or the whole batch) */
    Err err;
    Lsn effective_lsn;
    uint8_t page[BLCKSZ]; /* the fields before page and from nblocks on must start zeroed */
    uint32_t nblocks;
    bool exists;
    uint64_t bytes;
    uint8_t *segment; /* READ_OP_SLRU_SEGMENT: nblocks * BLCKSZ bytes; read_item_finish frees */
    size_t segment_len;
} ReadItem;

/* ReadBatchFn: every item has ok/err set; err is non-NULL when the whole batch failed (before
 * any read: not ready, unknown timeline, wait timeout), and is then copied into every item. */
typedef void (*ReadBatchFn)(const Err *err, ReadItem *items, size_t n, void *arg);

/* read_path_batch: the n items of (tsid, tl) in one worker job (one round trip): the batch waits
 * first until last_record_lsn reaches wait_lsn (LSN_INVALID: no wait; see step 2 above), then each
 * item is checked (page ownership, effective LSN, GC cutoff) and read on its own: one item's
 * error does not fail the others. items must stay valid until cb; the caller owns them (and
 * calls read_item_finish on each). */
void read_path_batch(struct TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                     Lsn wait_lsn, ReadItem *items, size_t n, ReadBatchFn cb, void *arg);

/* ---- read views (the page service's threads) ----
 *
 * A ReadView is what reading one timeline of one tenant needs, copied on the main loop: the
 * tenant's attached shards here (for routing), and for each that serves the timeline the item
 * checks' inputs (shard identity, last_record_lsn, min_readable_lsn) and references on the layers
 * of its ancestor chain. A page service thread answers a batch with it on its own thread, from
 * memory only, without a trip to the main loop: while the view is current (no slot state, shard
 * identity or timeline state changed since it was built: TenantManager.read_epoch), nothing is
 * armed (failpoints), and every item is a page, relation size or existence read at an LSN the
 * view's last_record_lsn covers that succeeds from memory. Anything else (an error to report, a
 * wait, a read from disk, a stale view) returns false and the caller sends the batch the usual
 * way (read_path_batch), which then answers it exactly as before. Layer contents are immutable
 * and the layers are referenced, so the only effect of a view built just before a change is that
 * a read racing with that change is answered as if it came just before it. */
typedef struct ReadView ReadView;
/* read_view_build: main loop: NULL when no attached shard of tenant here serves tl. */
ReadView *read_view_build(struct TenantManager *mgr, const TenantId *tenant, const TimelineId *tl);
/* read_view_current: any thread: nothing the view copied has changed since. */
bool read_view_current(const ReadView *v);
/* read_view_batch: any thread: answer all n items from memory (true: every item ok, as
 * read_path_batch would have answered it), or false (the items' outputs are then meaningless and
 * the caller reads them with read_path_batch). wait_lsn as read_path_batch's. */
bool read_view_batch(const ReadView *v, Lsn wait_lsn, ReadItem *items, size_t n);
/* read_view_free: any thread; NULL ok. */
void read_view_free(ReadView *v);

/* read_item_finish: free what a read left in the item (an SLRU segment). */
void read_item_finish(ReadItem *it);

/* The single reads below are batches of one whose wait_lsn is their lsn. */

/* read_path_get_page: block blkno of rel at lsn (LSN_INVALID: the last record LSN). */
void read_path_get_page(struct TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                        const RelTag *rel, uint32_t blkno, Lsn lsn, ReadPageFn cb, void *arg);
/* read_path_rel_size: rel's size in blocks at lsn. */
void read_path_rel_size(struct TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                        const RelTag *rel, Lsn lsn, ReadRelSizeFn cb, void *arg);
/* read_path_rel_exists: does rel exist at lsn? */
void read_path_rel_exists(struct TenantManager *mgr, const TenantShardId *tsid,
                          const TimelineId *tl, const RelTag *rel, Lsn lsn, ReadRelExistsFn cb,
                          void *arg);
/* read_path_db_size: the size in bytes of database (spc, db) at lsn. */
void read_path_db_size(struct TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                       uint32_t spc, uint32_t db, Lsn lsn, ReadDbSizeFn cb, void *arg);

/* ---- many keys at one LSN: the relation listing, basebackup ----
 *
 * Both resolve the timeline and the LSN as a page read does (waiting for an LSN beyond
 * last_record_lsn, 400 below min_readable_lsn) and run on an IO worker with references on the
 * layers of the ancestor chain; the completion runs on the loop with the effective LSN. */

/* RelListEntry: one relation fork and its size in blocks. */
typedef struct RelListEntry {
    RelTag rel;
    uint32_t nblocks;
} RelListEntry;

/* ReadRelListFn: rels[n] sorted by (spc, db, rel, fork), valid during the call; NULL and 0 when
 * err != NULL. lsn: the effective LSN the listing was made at. */
typedef void (*ReadRelListFn)(const Err *err, const RelListEntry *rels, size_t n, Lsn lsn,
                              void *arg);

/* read_path_list_relations: every (spc, db, rel, fork) of every database of the database
 * directory at lsn (LSN_INVALID: the last record LSN), with its size (a directory entry without a
 * size key counts 0 blocks). Global keys only: any shard answers, shard 0 is authoritative. */
void read_path_list_relations(struct TenantManager *mgr, const TenantShardId *tsid,
                              const TimelineId *tl, Lsn lsn, ReadRelListFn cb, void *arg);

/* ReadCtx: what a ReadWorkFn reads keys through (on its worker). */
typedef struct ReadCtx ReadCtx;

/* read_ctx_get: the value of key at the context's LSN through the ancestor chain: *found false
 * when absent; else *value (the caller frees) of *len bytes. */
bool read_ctx_get(ReadCtx *c, const Key *key, void **value, size_t *len, bool *found,
                  Err *err) MUST_CHECK;
/* read_ctx_lsn: the effective LSN. */
Lsn read_ctx_lsn(const ReadCtx *c);

/* ReadWorkFn: runs on a worker; false with err set fails the read. */
typedef bool (*ReadWorkFn)(ReadCtx *c, void *arg, Err *err);
/* ReadWorkDoneFn: on the loop, after work (or without it when the read failed before the worker):
 * err NULL on success; lsn the effective LSN (LSN_INVALID when it failed before). */
typedef void (*ReadWorkDoneFn)(const Err *err, Lsn lsn, void *arg);

/* read_path_run: run work(ctx, arg) on an IO worker against tl at lsn, then done on the loop. */
void read_path_run(struct TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                   Lsn lsn, ReadWorkFn work, ReadWorkDoneFn done, void *arg);

/* read_path_timeline_sizes: tl's sizes at its last_record_lsn (tl ACTIVE, ancestors resolved).
 * The job holds a slot job (slot_job_begin) and layer references, never tl itself: the callback
 * must find the timeline again by id. */
void read_path_timeline_sizes(struct Timeline *tl, ReadSizesFn cb, void *arg);

#endif
