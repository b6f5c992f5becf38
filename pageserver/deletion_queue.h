/*
 * deletion_queue.h: remote object deletions that survive restarts and respect generations
 * (pageserver.md "Generations on the pageserver").
 *
 * Objects to delete are pushed with the tenant shard and the generation of the attachment that
 * decided to delete them. The queue then, in order:
 *   1. persists them as a numbered list, <workdir>/deletion/<sequence %016x>.list (written
 *      atomically and fsynced) before anything is deleted;
 *   2. validates the lists' (tenant shard, generation) pairs with the storage controller
 *      (POST validate, <= 128 pairs per request): items of stale generations are dropped from
 *      the list (the objects leak, which is safe: a newer attachment may reference them), the
 *      list is rewritten, and <workdir>/deletion/header.json records the highest validated
 *      sequence;
 *   3. executes validated lists (remote deletes in push order) and removes their files.
 * After a restart, lists up to the recorded validated sequence are executed as they are; later
 * ones are validated again (after a re-attach that bumped the generation this fails and drops
 * them). Without --control-plane-api every generation is taken as valid (development mode).
 *
 * The same validation gates `remote_consistent_lsn_visible`: an index upload pushes an LSN
 * update that is applied (through the lsn callback) only once its generation validated.
 *
 * Everything is owned by the loop thread; disk and remote work runs on the worker pool. The list
 * and header encodings are exposed for the unit tests:
 *   list    {"version": 1, "sequence": n, "items": [{"tenant_shard_id", "generation",
 *            "objects": [key, ...]}, ...]}
 *   header  {"version": 1, "validated_sequence": n}
 */
#ifndef PAGESERVER_DELETION_QUEUE_H
#define PAGESERVER_DELETION_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"

#include "pageserver/storcon_client.h"

struct PageserverApp;

#define DELETION_FORMAT_VERSION 1
#define DELETION_HEADER_FILE    "header.json"
#define DELETION_LIST_SUFFIX    ".list"

/* ---- lists (pure) ---- */

typedef struct DeletionItem {
    TenantShardId tsid;
    Generation gen;
    char **objects; /* owned strings */
    size_t n_objects;
    size_t cap_objects;
} DeletionItem;

typedef struct DeletionList {
    uint64_t sequence;
    DeletionItem *items; /* one per (tsid, gen), in first-push order */
    size_t n_items;
    size_t cap_items;
} DeletionList;

void deletion_list_init(DeletionList *l);
void deletion_list_finish(DeletionList *l); /* frees everything; l is then empty */
/* deletion_list_add: append key to the item of (tsid, gen), creating it (key copied). */
void deletion_list_add(DeletionList *l, const TenantShardId *tsid, Generation gen, const char *key);
size_t deletion_list_object_count(const DeletionList *l);
/* deletion_list_serialize: the JSON text above; the caller frees it. */
char *deletion_list_serialize(const DeletionList *l);
/* deletion_list_parse: strict on known fields (400 for malformed); *out initialised here. */
bool deletion_list_parse(const char *text, size_t len, DeletionList *out, Err *err) MUST_CHECK;
/* deletion_list_drop_invalid: remove the items whose (tsid, gen) is not marked valid in
 * answers[0..n); returns the number of objects dropped. */
size_t deletion_list_drop_invalid(DeletionList *l, const ValidateItem *answers, size_t n);
/* deletion_list_file_name: "<seq %016x>.list"; deletion_list_file_parse the reverse. */
void deletion_list_file_name(uint64_t seq, char *out, size_t cap);
bool deletion_list_file_parse(const char *name, uint64_t *seq);
char *deletion_header_serialize(uint64_t validated_sequence); /* caller frees */
bool deletion_header_parse(const char *text, size_t len, uint64_t *validated_sequence,
                           Err *err) MUST_CHECK;

/* ---- the queue (event loop) ---- */

typedef struct DeletionQueue DeletionQueue;

/* Called on the loop when an LSN update validated: advance remote_consistent_lsn_visible. */
typedef void (*DeletionLsnFn)(void *arg, const TenantShardId *tsid, const TimelineId *tl, Lsn lsn);
/* Flush completion; err is NULL on success (ERR_UNAVAILABLE when shutting down). */
typedef void (*DeletionFlushFn)(void *arg, const Err *err);

/* deletion_queue_new: the caller frees it with deletion_queue_free. */
DeletionQueue *deletion_queue_new(struct PageserverApp *app, DeletionLsnFn on_lsn, void *lsn_arg);
/* deletion_queue_load: read <workdir>/deletion (blocking: at startup, before the loop runs).
 * Corrupt list files are logged and removed (their objects leak). */
bool deletion_queue_load(DeletionQueue *dq, Err *err) MUST_CHECK;
/* deletion_queue_start: arm the periodic tick. */
void deletion_queue_start(DeletionQueue *dq);
/* deletion_queue_stop: no new work; pending flushes complete with ERR_UNAVAILABLE. */
void deletion_queue_stop(DeletionQueue *dq);
void deletion_queue_free(DeletionQueue *dq);

/* deletion_queue_push: delete keys[0..n) (copied) on behalf of (tsid, gen). */
void deletion_queue_push(DeletionQueue *dq, const TenantShardId *tsid, Generation gen,
                         const char *const *keys, size_t n);
/* deletion_queue_push_lsn: make lsn visible for (tsid, tl) once gen validates. */
void deletion_queue_push_lsn(DeletionQueue *dq, const TenantShardId *tsid, Generation gen,
                             const TimelineId *tl, Lsn lsn);
/* deletion_queue_flush: done runs once everything pushed so far is persisted (execute false) or
 * validated and executed or dropped, with LSN updates applied (execute true). */
void deletion_queue_flush(DeletionQueue *dq, bool execute, DeletionFlushFn done, void *arg);
/* deletion_queue_depth: objects pushed and not yet executed or dropped. */
size_t deletion_queue_depth(const DeletionQueue *dq);

#endif
