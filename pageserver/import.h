/*
 * import.h: timeline import from a copied PGDATA directory (docs/import.md).
 *
 * This header holds what the create request and the index say about an import:
 *   - ImportPgdataSpec: the `import_pgdata` object of a TimelineCreateRequest,
 *       {"idempotency_key": str, "location": {"LocalFs": {"path": str}}
 *                                          or {"AwsS3": {"region", "bucket", "key"}}}
 *     decoded strictly (unknown fields, a missing field, two location variants or none: 400);
 *   - the index's `import_pgdata` field (index_part.h keeps it opaque):
 *       {"V1": {"InProgress": {"idempotency_key", "location", "started_at"}}}  while importing,
 *       {"V1": {"Done": {"idempotency_key", "started_at", "finished_at"}}}     once activated.
 *
 * A timeline whose index says InProgress is IMPORTING (timeline.h): not listed, not readable,
 * deletable; PUT .../activate_post_import turns it into a normal timeline once its import task
 * finished (the task: import.c, started by timeline.c on creation and by slot.c on attach).
 */
#ifndef PAGESERVER_IMPORT_H
#define PAGESERVER_IMPORT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"

#include "pageserver/app.h"
#include "pageserver/index_part.h"

struct Timeline;
struct TenantManager;

#define IMPORT_IDEMPOTENCY_KEY_SIZE 256
#define IMPORT_S3_FIELD_SIZE        256

typedef enum ImportLocationKind {
    IMPORT_LOCATION_LOCAL_FS,
    IMPORT_LOCATION_AWS_S3,
    IMPORT_LOCATION_KIND_COUNT
} ImportLocationKind;

typedef struct ImportLocation {
    ImportLocationKind kind;
    char path[PATH_MAX];                /* LocalFs: absolute directory */
    char region[IMPORT_S3_FIELD_SIZE];  /* AwsS3 */
    char bucket[IMPORT_S3_FIELD_SIZE];  /* AwsS3 */
    char key[IMPORT_S3_FIELD_SIZE * 4]; /* AwsS3: the prefix (Neon calls it key) */
} ImportLocation;

typedef struct ImportPgdataSpec {
    char idempotency_key[IMPORT_IDEMPOTENCY_KEY_SIZE];
    ImportLocation location;
} ImportPgdataSpec;

/* What the index's import_pgdata says. */
typedef enum ImportIndexState {
    IMPORT_INDEX_NONE,        /* no import_pgdata: not an imported timeline */
    IMPORT_INDEX_IN_PROGRESS, /* V1 InProgress */
    IMPORT_INDEX_DONE,        /* V1 Done */
} ImportIndexState;

/* import_pgdata_spec_decode: the create request's import_pgdata object (strict, see above). A
 * LocalFs path must be absolute. */
bool import_pgdata_spec_decode(const json_t *obj, ImportPgdataSpec *out, Err *err) MUST_CHECK;

/* The URL of an AwsS3 location: s3://bucket/key?region=...&endpoint=... */
#define IMPORT_S3_URL_SIZE (IMPORT_S3_FIELD_SIZE * 8)

/* import_s3_url: the remote-storage URL that reads an AwsS3 location (pgdata_source_remote_new):
 * its bucket and key (the location's prefix), its region, and the endpoint of this pageserver's
 * own s3:// remote storage when that names one (an S3-compatible store), else AWS. 412 when this
 * pageserver has no S3 credentials (environment or --remote-storage-credentials); 400 when the
 * bucket, key or region cannot be part of a URL (key: [A-Za-z0-9/._-] only; no "." or ".."
 * segment). */
bool import_s3_url(const PageserverApp *app, const ImportLocation *loc, char *out, size_t cap,
                   Err *err) MUST_CHECK;

/* import_location_json: the location in the request's form. New reference. */
json_t *import_location_json(const ImportLocation *loc);

/* import_index_in_progress: {"V1": {"InProgress": {...}}} started at unix_ms. New reference. */
json_t *import_index_in_progress(const ImportPgdataSpec *spec, int64_t unix_ms);

/* import_index_done: the Done form of an InProgress value (same key and started_at), finished at
 * unix_ms. New reference; NULL when in_progress is not an InProgress value. */
json_t *import_index_done(const json_t *in_progress, int64_t unix_ms);

/* import_index_state: what index->import_pgdata says; an unrecognised value is
 * IMPORT_INDEX_IN_PROGRESS with *key "" (never served as a finished timeline). key (may be NULL)
 * receives the idempotency key. */
ImportIndexState import_index_state(const IndexPart *index, char key[IMPORT_IDEMPOTENCY_KEY_SIZE]);

/* import_index_spec: the spec recorded in an InProgress value (to resume after attach). */
bool import_index_spec(const IndexPart *index, ImportPgdataSpec *out, Err *err) MUST_CHECK;

/* import_source_status_parse: the content of the source's status/pgdata ({"done": bool}, at
 * most PAGESERVER_IMPORT_STATUS_MAX_BYTES); untrusted: 400 for anything else. */
bool import_source_status_parse(const void *buf, size_t len, bool *done, Err *err) MUST_CHECK;

/* ShardImportStatus, as storcon records it (storcon_client.h). */
typedef enum ImportShardStatusKind {
    IMPORT_SHARD_IN_PROGRESS,
    IMPORT_SHARD_DONE,
    IMPORT_SHARD_ERROR,
} ImportShardStatusKind;

typedef struct ImportShardStatus {
    ImportShardStatusKind kind;
    bool has_progress; /* InProgress with a V1 progress (else InProgress null: start fresh) */
    uint64_t jobs, completed, plan_hash, job_soft_size_limit;
    char error[ERR_MSG_SIZE];
} ImportShardStatus;

/* import_shard_status_parse: {"InProgress": null or {"V1": {"jobs", "completed",
 * "import_plan_hash", "job_soft_size_limit"}}}, "Done" or {"Error": msg}; 400 otherwise
 * (including completed > jobs). */
bool import_shard_status_parse(const json_t *v, ImportShardStatus *out, Err *err) MUST_CHECK;

/* ---- the import task of one IMPORTING timeline (import.c) ---- */

typedef struct ImportTask ImportTask;

/* import_task_start: start (or resume) tl's import. tl must be IMPORTING, its slot uploading. */
void import_task_start(struct Timeline *tl);
/* import_task_cancel: stop tl's task (deletion, slot stop); its running worker job ends soon and
 * then frees it. A no-op without a task. */
void import_task_cancel(struct Timeline *tl);
/* import_task_finished: did tl's task end with success (*failed false) or an error (*failed true,
 * msg filled)? false while it runs or without a task. */
bool import_task_finished(const struct Timeline *tl, bool *failed, char msg[ERR_MSG_SIZE]);

/* import_activate: PUT .../activate_post_import: TimelineInfo once the index records the import
 * as done (at once when the timeline is already active); 404 unknown timeline, 503 while the
 * import task runs (or the activation's index upload), 409 when the import failed. */
void import_activate(struct TenantManager *mgr, const TenantShardId *tsid, const TimelineId *id,
                     PageserverJsonFn cb, void *arg);

#endif
