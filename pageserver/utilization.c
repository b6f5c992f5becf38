/* utilization.c: disk and shard-count utilization for the storage controller's scheduler. */
#include "pageserver/utilization.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "shared/fsutil.h"
#include "shared/log.h"
#include "shared/str.h"
#include "shared/worker_pool.h"

#include "pageserver/app.h"
#include "pageserver/defaults.h"
#include "pageserver/index_part.h"
#include "pageserver/tenant.h"

void utilization_compute(Utilization *u)
{
    u->disk_wanted_bytes = u->disk_usage_bytes;
    double usable =
        (double)(u->disk_usage_bytes + u->free_space_bytes) * (double)u->disk_usable_pct / 100.0;
    double disk_score = usable > 0 ? (double)u->disk_wanted_bytes * 1e6 / usable : 0;
    double shard_score =
        u->max_shard_count > 0 ? (double)u->shard_count * 1e6 / (double)u->max_shard_count : 0;
    double score = disk_score > shard_score ? disk_score : shard_score;
    u->utilization_score = (uint64_t)score;
}

json_t *utilization_to_json(const Utilization *u)
{
    char ts[INDEX_TIMESTAMP_SIZE];
    index_timestamp_format(u->captured_at_ms, ts);
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "disk_usage_bytes",
                     (json_int_t)u->disk_usage_bytes, "free_space_bytes",
                     (json_int_t)u->free_space_bytes, "disk_wanted_bytes",
                     (json_int_t)u->disk_wanted_bytes, "disk_usable_pct",
                     (json_int_t)u->disk_usable_pct, "shard_count", (json_int_t)u->shard_count,
                     "max_shard_count", (json_int_t)u->max_shard_count, "utilization_score",
                     (json_int_t)u->utilization_score, "captured_at", ts);
}

typedef struct TreeSum {
    uint64_t bytes;
    int depth;
} TreeSum;

static bool tree_bytes_entry(const char *path, const char *name, void *arg);

/* tree_bytes: allocated bytes under path (files only; symlinks not followed). */
static uint64_t tree_bytes(const char *path, int depth)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISDIR(st.st_mode))
        return S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    if (depth > 16)
        return 0;
    TreeSum sum = {0, depth + 1};
    Err err = {0};
    if (!fs_dir_each(path, true, tree_bytes_entry, &sum, &err))
        return sum.bytes; /* what could be read counts */
    return sum.bytes;
}

static bool tree_bytes_entry(const char *path, const char *name, void *arg)
{
    (void)name;
    TreeSum *sum = arg;
    sum->bytes += tree_bytes(path, sum->depth);
    return true;
}

typedef struct UtilJob {
    UtilizationFn cb;
    void *arg;
    char workdir[PATH_MAX];
    Utilization u;
    bool ok;
    Err err;
} UtilJob;

static void util_work(WorkerJob *job, void *arg)
{
    UtilJob *j = arg;
    struct statvfs vfs;
    if (statvfs(j->workdir, &vfs) != 0) {
        err_set(&j->err, ERR_INTERNAL, "statvfs %s: %m", j->workdir);
        j->ok = false;
        return;
    }
    j->u.free_space_bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    char tenants[PATH_MAX];
    str_printf(tenants, sizeof(tenants), "%s/%s", j->workdir, PAGESERVER_TENANTS_DIR);
    j->u.disk_usage_bytes = tree_bytes(tenants, 0);
    j->ok = true;
}

static void util_done(void *arg, WorkerOutcome outcome)
{
    UtilJob *j = arg;
    if (!worker_outcome_err(outcome, "measuring utilization", &j->err))
        j->ok = false;
    if (j->ok) {
        utilization_compute(&j->u);
        j->cb(NULL, &j->u, j->arg);
    } else {
        j->cb(&j->err, NULL, j->arg);
    }
    free(j);
}

void utilization_measure(PageserverApp *app, UtilizationFn cb, void *arg)
{
    UtilJob *j = xcalloc(1, sizeof(*j));
    j->cb = cb;
    j->arg = arg;
    str_copy(j->workdir, sizeof(j->workdir), app->cfg.workdir);
    j->u.disk_usable_pct = PAGESERVER_DISK_USABLE_PCT;
    j->u.max_shard_count = PAGESERVER_MAX_SHARD_COUNT;
    j->u.shard_count = app->tenants != NULL ? (uint32_t)app->tenants->n_slots : 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    j->u.captured_at_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    WorkerJobSpec spec = {.cls = WORKER_CLASS_IO,
                          .deadline_ms = PAGESERVER_UTILIZATION_DEADLINE_MS};
    worker_pool_start(app->workers, &spec, util_work, util_done, j);
}
