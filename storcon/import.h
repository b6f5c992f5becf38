/*
 * import.h: the storage controller's side of timeline import (import.md, docs/import.md): the
 * shapes on the wire and the decisions, as pure functions the service (storcon/service_imports.c)
 * calls and the unit tests drive directly.
 *
 *  - ShardImportStatus (Neon's pageserver_api enum, serde's external tagging), strictly checked:
 *      {"InProgress": null}
 *      {"InProgress": {"V1": {"jobs", "completed", "import_plan_hash", "job_soft_size_limit"}}}
 *      "Done"
 *      {"Error": "<msg>"}
 *    Done and Error are terminal. Numbers are JSON integers >= 0 (jansson stops at INT64_MAX:
 *    a larger import_plan_hash is refused by the parser with 400); completed <= jobs.
 *  - A timeline_imports row's shard_statuses ({"<NNCC>": status, ...}) summarised: how many
 *    shards, how many terminal, the errors joined, and so what finalisation must do
 *    (import_decide): wait, activate then notify success, or notify the errors.
 *
 * Nothing here touches the loop, the database or the network.
 */
#ifndef STORCON_IMPORT_H
#define STORCON_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"

struct event;

typedef enum ImportStatusKind {
    IMPORT_STATUS_IN_PROGRESS, /* {"InProgress": null | {"V1": {...}}} */
    IMPORT_STATUS_DONE,        /* "Done" */
    IMPORT_STATUS_ERROR,       /* {"Error": "<msg>"} */
    IMPORT_STATUS_KIND_COUNT
} ImportStatusKind;

/* ImportStatus: one decoded ShardImportStatus. error points into the JSON it was decoded from
 * (valid while that lives). */
typedef struct ImportStatus {
    ImportStatusKind kind;
    bool has_progress; /* InProgress with a V1 progress record */
    uint64_t jobs, completed, import_plan_hash, job_soft_size_limit;
    const char *error; /* ERROR: the message */
} ImportStatus;

/* import_status_decode: strict decode of a ShardImportStatus; 400 naming what is wrong. */
bool import_status_decode(const json_t *v, ImportStatus *out, Err *err) MUST_CHECK;

/* import_status_terminal: Done or Error (a terminal status never changes again). */
bool import_status_terminal(ImportStatusKind kind);

/* import_status_kind_name: "InProgress", "Done", "Error". */
const char *import_status_kind_name(ImportStatusKind kind);

/* import_statuses_initial: the shard_statuses text of a new row: every shard of count (0 = one
 * unsharded shard, "0000") {"InProgress": null}, in shard order. The caller frees it. */
char *import_statuses_initial(ShardCount count);

/* ---- the create request ---- */

#define IMPORT_IDEMPOTENCY_KEY_SIZE 256
#define IMPORT_PATH_SIZE            1024
#define IMPORT_S3_REGION_SIZE       64
#define IMPORT_S3_BUCKET_SIZE       256
#define IMPORT_S3_KEY_SIZE          1024

typedef enum ImportLocationKind {
    IMPORT_LOCATION_LOCAL_FS,
    IMPORT_LOCATION_AWS_S3
} ImportLocationKind;

/* ImportPgdataSpec: the "import_pgdata" member of a timeline create (Neon's
 * TimelineCreateRequestModeImportPgdata): {"idempotency_key": "<key>", "location": {"LocalFs":
 * {"path"}} or {"AwsS3": {"region", "bucket", "key"}}}. Fixed arrays, so the spec copies by
 * value. */
typedef struct ImportPgdataSpec {
    char idempotency_key[IMPORT_IDEMPOTENCY_KEY_SIZE];
    ImportLocationKind kind;
    char path[IMPORT_PATH_SIZE]; /* LocalFs: an absolute path */
    char region[IMPORT_S3_REGION_SIZE];
    char bucket[IMPORT_S3_BUCKET_SIZE];
    char key[IMPORT_S3_KEY_SIZE]; /* AwsS3: the prefix ("key" in Neon's wire) */
} ImportPgdataSpec;

/* import_pgdata_decode: strict: every field required and non-empty, unknown fields refused, one
 * location variant, a LocalFs path absolute. 400 naming the field ("import_pgdata: ..."). */
bool import_pgdata_decode(const json_t *v, ImportPgdataSpec *out, Err *err) MUST_CHECK;

/* import_pgdata_to_json: the member as sent on to every shard. New reference. */
json_t *import_pgdata_to_json(const ImportPgdataSpec *spec);

/* What finalisation does with a row (import_decide). */
typedef enum ImportDecision {
    IMPORT_DECISION_WAIT,     /* some shard is not terminal yet: nothing (never finalise early) */
    IMPORT_DECISION_ACTIVATE, /* every shard Done: activate_post_import everywhere, then notify
                                 success */
    IMPORT_DECISION_NOTIFY_ERROR, /* every shard terminal, some failed: notify the errors */
    IMPORT_DECISION_COUNT
} ImportDecision;

/* ImportSummary: a row's shard_statuses summarised. */
typedef struct ImportSummary {
    size_t shards;   /* entries in the row */
    size_t terminal; /* Done or Error */
    size_t done;
    size_t failed;
    char *errors; /* failed > 0: "<NNCC>: <msg>; <NNCC>: <msg>" in shard order (each message cut at
                     IMPORT_ERROR_MSG_MAX bytes); NULL otherwise. Owned: import_summary_finish. */
} ImportSummary;

#define IMPORT_ERROR_MSG_MAX 1024

/* import_summarise: parse shard_statuses text (an object keyed by shard index, each value a
 * ShardImportStatus). ERR_INTERNAL when the text is not such an object (the row is corrupt: it
 * was written by this controller after import_status_decode). */
bool import_summarise(const char *shard_statuses, ImportSummary *out, Err *err) MUST_CHECK;
void import_summary_finish(ImportSummary *s);

/* import_decide: WAIT unless every shard is terminal (an empty row waits too); then ACTIVATE when
 * none failed, else NOTIFY_ERROR. */
ImportDecision import_decide(const ImportSummary *s);

/* import_shard_status: the status of one shard (by shard index) in shard_statuses text, as a new
 * JSON reference. 404 when the shard is not part of the import; ERR_INTERNAL for a corrupt row. */
bool import_shard_status(const char *shard_statuses, ShardIndex shard, json_t **out,
                         Err *err) MUST_CHECK;

/* import_progress_json: the operator's view of a row (GET /control/v1/tenant/{id}/timeline/{tl}/
 * import): {"tenant_id", "timeline_id", "shards": [{"shard_id", "status", "state", "jobs",
 * "completed", "error"}], "shard_count", "terminal", "done", "failed", "complete"} with the shards
 * in shard order ("jobs" / "completed" null without a progress record; "error" null unless
 * failed). New reference; ERR_INTERNAL for a corrupt row. */
bool import_progress_json(const TenantId *tenant, const TimelineId *timeline,
                          const char *shard_statuses, json_t **out, Err *err) MUST_CHECK;

/* ---- the control plane's notification ---- */

/* ImportComplete: what PUT <control-plane>/import_complete says: {"tenant_id", "timeline_id",
 * "error": null on success, else the shards' errors (ImportSummary.errors)} (Neon's
 * ImportCompleteRequest). */
typedef struct ImportComplete {
    TenantId tenant_id;
    TimelineId timeline_id;
    const char *error; /* NULL = success */
} ImportComplete;

/* import_complete_render: the notifier's renderer (NotifierRenderFn): input is an ImportComplete;
 * *body (caller frees) in that key order. */
bool import_complete_render(const void *input, char **body, Err *err);

/* ---- the split guard ---- */

/* ImportSet: the timelines being imported, in memory (mirrors the timeline_imports rows: loaded at
 * startup, added when a create inserts a row, removed when finalisation or a delete removes it).
 * Each entry carries the service's finalisation bookkeeping (opaque here). */
typedef struct ImportEntry {
    TenantId tenant;
    TimelineId timeline;
    void *running;       /* the finalisation operation in flight; NULL = none */
    struct event *retry; /* the timer of the next attempt; NULL = none (owned by the service) */
    void *retry_host;    /* what the timer callback needs (the service) */
    unsigned failures;   /* consecutive failed attempts (backoff) */
    bool again;          /* a shard reported while an attempt ran: run once more */
    struct ImportEntry *next;
} ImportEntry;

typedef struct ImportSet {
    ImportEntry *head;
    size_t n;
} ImportSet;

/* import_set_find: the entry or NULL. import_set_add: the entry, created when absent (*added
 * says which). import_set_remove: unlink and return it (the caller frees it after releasing what
 * it holds), NULL when absent. */
ImportEntry *import_set_find(const ImportSet *set, const TenantId *tenant,
                             const TimelineId *timeline);
ImportEntry *import_set_add(ImportSet *set, const TenantId *tenant, const TimelineId *timeline,
                            bool *added);
ImportEntry *import_set_remove(ImportSet *set, const TenantId *tenant, const TimelineId *timeline);

/* import_set_tenant_importing: some timeline of the tenant is being imported. */
bool import_set_tenant_importing(const ImportSet *set, const TenantId *tenant);

/* import_split_check: the guard a shard split runs first (import.md: "splits refused until
 * done"): 409 "tenant ... is importing timeline ..." while an import of the tenant exists. */
bool import_split_check(const ImportSet *set, const TenantId *tenant, Err *err) MUST_CHECK;

#endif
