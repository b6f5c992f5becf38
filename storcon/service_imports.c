/*
 * service_imports.c: timeline import in the service core (docs/import.md): the pageservers'
 * status upcalls (GET / POST /upcall/v1/timeline_import_status), the operator's view of an import,
 * and the "tenant is importing" guard a shard split will call. The wire shapes and the decisions
 * are pure functions in storcon/import.c; the row operations are storcon/db_imports.c.
 *
 * Upcalls: the shard's generation is checked first, against the database (and memory when the
 * shard is loaded): a pageserver that lost its attachment must not move an import on. Then the
 * row is read (GET) or the shard's status merged in one transaction (POST; db_imports.c holds
 * the rules: identical repeat is a no-op, a terminal status never changes (409), an unknown shard
 * or import 404).
 */
#include "storcon/service_internal.h"

#include "storcon/db_imports.h"
#include "storcon/import.h"

/* ---- the generation check of an upcall ---- */

typedef struct ImportUpcall {
    Service *svc;
    TenantShardId tsid;
    TimelineId timeline;
    Generation gen;
    bool put;
    json_t *status; /* put: the new status (owned) */
    char *status_text;
    ServiceJsonFn cb;
    void *arg;
} ImportUpcall;

static void upcall_free(ImportUpcall *u)
{
    json_decref(u->status);
    free(u->status_text);
    free(u);
}

static void upcall_reply(ImportUpcall *u, const Err *err, json_t *result)
{
    ServiceJsonFn cb = u->cb;
    void *arg = u->arg;
    upcall_free(u);
    cb(err, err != NULL ? NULL : result, arg);
}

static void on_status_row(const Err *err, const DbImport *row, bool changed, void *arg)
{
    ImportUpcall *u = arg;
    if (err != NULL) {
        upcall_reply(u, err, NULL);
        return;
    }
    json_t *status = NULL;
    Err e;
    err_clear(&e);
    if (!import_shard_status(row->shard_statuses, tsid_shard_index(&u->tsid), &status, &e)) {
        upcall_reply(u, &e, NULL);
        return;
    }
    upcall_reply(u, NULL, status);
}

static void on_status_merged(const Err *err, const DbImport *row, bool changed, void *arg)
{
    ImportUpcall *u = arg;
    Service *svc = u->svc;
    if (err != NULL) {
        upcall_reply(u, err, NULL);
        return;
    }
    if (changed) {
        char tsid[TSID_STR_SIZE], tl[ID_STR_SIZE];
        tsid_format(&u->tsid, tsid);
        timeline_id_format(&u->timeline, tl);
        log_info("import of timeline %s: shard %s reported %s", tl, tsid, u->status_text);
        service_import_kick(svc, &u->tsid.tenant_id, &u->timeline, row->shard_statuses);
    }
    upcall_reply(u, NULL, json_null()); /* Neon: () */
}

/* on_upcall_generation: the shard's generation in the database, then memory when loaded. */
static void on_upcall_generation(const Err *err, const DbShardGeneration *found, size_t n,
                                 void *arg)
{
    ImportUpcall *u = arg;
    Service *svc = u->svc;
    if (err != NULL) {
        upcall_reply(u, err, NULL);
        return;
    }
    char tsid[TSID_STR_SIZE];
    tsid_format(&u->tsid, tsid);
    Err e;
    err_clear(&e);
    if (n == 0) {
        err_set(&e, ERR_NOT_FOUND, "tenant shard %s not found", tsid);
        upcall_reply(u, &e, NULL);
        return;
    }
    const TenantShard *s = shard_map_get(svc->map, &u->tsid);
    if (found[0].generation != u->gen || (s != NULL && s->generation != u->gen)) {
        /* Neon: a stale reader gets 400, a stale writer 412 */
        err_set(&e, u->put ? ERR_PRECONDITION_FAILED : ERR_BAD_REQUEST,
                "shard %s: generation %u is not the current one (%u)", tsid, (unsigned)u->gen,
                (unsigned)found[0].generation);
        upcall_reply(u, &e, NULL);
        return;
    }
    if (!u->put) {
        db_imports_get(svc->opts.db, &u->tsid.tenant_id, &u->timeline, on_status_row, u);
        return;
    }
    if (!db_imports_set_shard_status(svc->opts.db, &u->tsid.tenant_id, &u->timeline,
                                     tsid_shard_index(&u->tsid), u->status_text, on_status_merged,
                                     u, &e))
        upcall_reply(u, &e, NULL);
}

static void upcall_start(Service *svc, const TenantShardId *tsid, const TimelineId *timeline,
                         Generation gen, const json_t *status, ServiceJsonFn cb, void *arg)
{
    if (!service_enter_loaded(svc, cb, arg))
        return;
    ImportUpcall *u = xcalloc(1, sizeof(*u));
    u->svc = svc;
    u->tsid = *tsid;
    u->timeline = *timeline;
    u->gen = gen;
    u->cb = cb;
    u->arg = arg;
    if (status != NULL) {
        u->put = true;
        u->status = json_deep_copy(status);
        u->status_text = json_dumps_compact(status);
    }
    db_tenants_generations(svc->opts.db, &u->tsid, 1, on_upcall_generation, u);
}

void service_import_status_get(Service *svc, const TenantShardId *tsid, const TimelineId *timeline,
                               Generation gen, ServiceJsonFn cb, void *arg)
{
    upcall_start(svc, tsid, timeline, gen, NULL, cb, arg);
}

void service_import_status_put(Service *svc, const TenantShardId *tsid, const TimelineId *timeline,
                               Generation gen, const json_t *status, ServiceJsonFn cb, void *arg)
{
    Err err;
    err_clear(&err);
    ImportStatus st;
    if (!import_status_decode(status, &st, &err)) {
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    upcall_start(svc, tsid, timeline, gen, status, cb, arg);
}

/* ---- the operator's view ---- */

typedef struct DescribeOp {
    ServiceJsonFn cb;
    void *arg;
} DescribeOp;

static void on_describe_row(const Err *err, const DbImport *row, bool changed, void *arg)
{
    DescribeOp op = *(DescribeOp *)arg;
    free(arg);
    json_t *out = NULL;
    Err e;
    err_clear(&e);
    if (err != NULL) {
        op.cb(err, NULL, op.arg);
    } else if (!import_progress_json(&row->tenant_id, &row->timeline_id, row->shard_statuses, &out,
                                     &e)) {
        op.cb(&e, NULL, op.arg);
    } else {
        op.cb(NULL, out, op.arg);
    }
}

void service_import_describe(Service *svc, const TenantId *tenant, const TimelineId *timeline,
                             ServiceJsonFn cb, void *arg)
{
    if (!service_enter_ready(svc, cb, arg))
        return;
    DescribeOp *op = xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->arg = arg;
    db_imports_get(svc->opts.db, tenant, timeline, on_describe_row, op);
}

/* ---- the split guard ---- */

bool service_tenant_check_not_importing(Service *svc, const TenantId *tenant, Err *err)
{
    return import_split_check(&svc->imports, tenant, err);
}

/* ---- finalisation (trigger) ---- */

void service_import_kick(Service *svc, const TenantId *tenant, const TimelineId *timeline,
                         const char *shard_statuses)
{
    (void)svc;
    (void)tenant;
    (void)timeline;
    (void)shard_statuses;
}

void service_imports_free(Service *svc)
{
    while (svc->imports.head != NULL) {
        ImportEntry *e = import_set_remove(&svc->imports, &svc->imports.head->tenant,
                                           &svc->imports.head->timeline);
        if (e->retry != NULL)
            event_free(e->retry);
        free(e);
    }
}
