/*
 * bootstrap.h: the worker-thread half of a Bootstrap timeline creation (pageserver.md "Timeline
 * create"): get an initdb cluster, convert it into image layers, leave the layers in the
 * timeline's local directory. The event-loop half (idempotency, upload ordering, the index) is in
 * timeline.c.
 *
 * Getting the cluster:
 *   - fresh (no existing_initdb_timeline_id): run <pg-bin-dir>/initdb into a scratch directory,
 *     as the --initdb-user when the pageserver runs as root (initdb refuses root): fork, drop to
 *     that user's uid/gid, exec initdb -D <dir> -U cloud_admin --no-instructions --no-sync
 *     -E UTF8 --locale=C --auth=trust with TZ=UTC; its stderr becomes the error message. The
 *     result is archived (shared/tar.h, deterministic) and uploaded to
 *     tenants/<tenant_id>/timelines/<tl>/initdb.tar.zst (unsharded path, shared by all shards).
 *   - reuse (existing_initdb_timeline_id = E): download tenants/<tenant_id>/timelines/<E>/
 *     initdb.tar.zst and extract it, so every shard converts byte-identical files and produces
 *     identical keys at identical LSNs.
 * The scratch directory is <workdir>/tmp/bootstrap-<tsid>-<tl>-<n>; when the pageserver runs as
 * root and the initdb user cannot traverse the work directory's parents (a 0700 test directory),
 * it is a mkdtemp directory under /tmp instead. It is removed afterwards in every case.
 *
 * Converting: pageserver/pgdata.h plans the cluster for this shard (only keys the shard stores:
 * its own relation blocks plus the global keys) and each plan job becomes one image layer at the
 * base LSN (the checkpoint location aligned up to 8 = the timeline's initdb_lsn), written as
 * <timeline dir>/<layer name>-<gen>.
 *
 * Everything here blocks: call it on a worker thread.
 */
#ifndef PAGESERVER_BOOTSTRAP_H
#define PAGESERVER_BOOTSTRAP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/key.h"
#include "shared/remote_storage.h"

#include "pageserver/defaults.h"
#include "pageserver/index_part.h"
#include "pageserver/layer.h"
#include "pageserver/pgdata.h"

typedef struct BootstrapParams {
    char workdir[PATH_MAX];
    char pg_bin_dir[PATH_MAX];
    char initdb_user[PAGESERVER_INITDB_USER_MAX];
    RemoteStorage *rs;
    TenantShardId tsid;
    TimelineId tl;
    ShardIdentity shard;
    Generation gen;
    bool has_existing_initdb;
    TimelineId existing_initdb;
    char timeline_dir[PATH_MAX];   /* created if missing */
    LayerWriterOptions layer_opts; /* from the tenant's image_compression */
} BootstrapParams;

typedef struct BootstrapResult {
    IndexLayer *layers; /* owned; free with bootstrap_result_finish */
    size_t n_layers;
    Lsn initdb_lsn;        /* base LSN of the images */
    uint32_t pg_version;   /* from pg_control */
    uint64_t logical_size; /* sum of relation sizes in bytes */
    uint64_t initdb_bytes; /* size of the initdb archive uploaded or downloaded */
} BootstrapResult;

/* bootstrap_run: the whole worker half. On failure no layer file is left behind. 412 when the
 * existing initdb archive is missing; 500 for initdb and conversion failures. */
bool bootstrap_run(const BootstrapParams *p, BootstrapResult *out, Err *err) MUST_CHECK;
void bootstrap_result_finish(BootstrapResult *r);

/* bootstrap_job_to_layer: the conversion shared by bootstrap and import: job job_index of plan as
 * one image layer at the plan's base LSN, written durably as <dir>/<layer name>-<gen> (dir must
 * exist) with the writer options opts (the tenant's image_compression); *out describes it (written
 * by shard writer), *logical_size grows by the relation sizes the job holds. On failure no file is
 * left behind. */
bool bootstrap_job_to_layer(const PgdataPlan *plan, size_t job_index, const char *dir,
                            Generation gen, ShardIndex writer, const LayerWriterOptions *opts,
                            IndexLayer *out, uint64_t *logical_size, Err *err) MUST_CHECK;

/* bootstrap_run_initdb: run initdb into pgdata (which must not exist; its parent must). As
 * root, as `user`. Exposed for tests. */
bool bootstrap_run_initdb(const char *pg_bin_dir, const char *user, const char *pgdata,
                          Err *err) MUST_CHECK;

#endif
