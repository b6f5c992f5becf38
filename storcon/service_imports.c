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
#include "storcon/timeline_fanout.h"

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

/* ---- the importing flag ---- */

/* flags_refresh: every shard of the tenant in memory says whether it is importing (TenantDescribe
 * "is_importing"). */
static void flags_refresh(Service *svc, const TenantId *tenant)
{
    Tenant *t = shard_map_tenant_get(svc->map, tenant);
    if (t == NULL)
        return;
    bool importing = import_set_tenant_importing(&svc->imports, tenant);
    for (size_t i = 0; i < t->n_shards; i++) {
        if (importing)
            t->shards[i]->flags |= TENANT_SHARD_IMPORTING;
        else
            t->shards[i]->flags &= (uint8_t)~TENANT_SHARD_IMPORTING;
    }
}

/* import_track: the row exists: remember the import and mark the tenant. */
static ImportEntry *import_track(Service *svc, const TenantId *tenant, const TimelineId *timeline)
{
    bool added = false;
    ImportEntry *e = import_set_add(&svc->imports, tenant, timeline, &added);
    if (added)
        flags_refresh(svc, tenant);
    return e;
}

/* import_untrack: the row is gone: forget the import (its retry timer too; an attempt in flight
 * finds no entry when it ends) and clear the mark when it was the tenant's last. */
static void import_untrack(Service *svc, const TenantId *tenant, const TimelineId *timeline)
{
    ImportEntry *e = import_set_remove(&svc->imports, tenant, timeline);
    if (e == NULL)
        return;
    if (e->retry != NULL)
        event_free(e->retry);
    free(e);
    flags_refresh(svc, tenant);
}

/* ---- timeline create with import_pgdata ---- */

typedef struct ImportCreate {
    Operation *op;
    TenantId tenant;
    TimelineId timeline;
    json_t *info; /* shard 0's TimelineInfo */
} ImportCreate;

static void on_import_row_inserted(const Err *err, const DbImport *row, bool changed, void *arg)
{
    ImportCreate *c = arg;
    Operation *op = c->op;
    Service *svc = operation_host(op);
    json_t *info = c->info;
    if (err != NULL) {
        json_decref(info);
        free(c);
        operation_finish(op, err, NULL);
        return;
    }
    char tl[ID_STR_SIZE];
    timeline_id_format(&c->timeline, tl);
    log_info("import of timeline %s: %s", tl,
             changed ? "row inserted, every shard InProgress" : "row already there (a repeat)");
    (void)import_track(svc, &c->tenant, &c->timeline);
    /* a repeat may find a row that became complete meanwhile */
    service_import_kick(svc, &c->tenant, &c->timeline, row->shard_statuses);
    free(c);
    operation_finish(op, NULL, info);
}

static void on_import_fanned_out(const Err *err, json_t *result, void *arg)
{
    ImportCreate *c = arg;
    Operation *op = c->op;
    Service *svc = operation_host(op);
    if (err != NULL) {
        free(c);
        operation_finish(op, err, NULL);
        return;
    }
    c->info = result;
    Err e;
    err_clear(&e);
    Tenant *t = shard_map_tenant_get(svc->map, &c->tenant);
    if (t == NULL) {
        err_set(&e, ERR_UNAVAILABLE, "tenant was deleted while the import was created, retry");
        json_decref(c->info);
        free(c);
        operation_finish(op, &e, NULL);
        return;
    }
    char *statuses = import_statuses_initial(tenant_current_count(t));
    operation_set_step(op, "recording the import");
    bool ok = db_imports_insert(svc->opts.db, &c->tenant, &c->timeline, statuses,
                                on_import_row_inserted, c, &e);
    free(statuses);
    if (!ok) {
        json_decref(c->info);
        free(c);
        operation_finish(op, &e, NULL);
    }
}

void service_import_create_run(Operation *op, const TenantId *tenant,
                               const TimelineCreateSpec *spec)
{
    Service *svc = operation_host(op);
    Err err;
    err_clear(&err);
    Tenant *t = service_tenant_or_404(svc, tenant, &err);
    if (t == NULL) {
        operation_finish(op, &err, NULL);
        return;
    }
    for (size_t i = 0; i < t->n_shards; i++) {
        if (tenant_shard_is_splitting(t->shards[i])) {
            err_set(&err, ERR_CONFLICT, "a shard split of the tenant runs: import refused, retry");
            operation_finish(op, &err, NULL);
            return;
        }
    }
    ImportCreate *c = xcalloc(1, sizeof(*c));
    c->op = op;
    c->tenant = *tenant;
    c->timeline = spec->new_timeline_id;
    operation_set_step(op, "fanning out");
    timeline_fanout_create(svc, svc->opts.base, tenant, spec, on_import_fanned_out, c);
}

/* ---- deletes ---- */

typedef struct ForgetOp {
    Service *svc;
    TenantId tenant;
    TimelineId timeline;
    ServiceDoneFn done;
    void *arg;
} ForgetOp;

static void on_import_row_deleted(const Err *err, void *arg)
{
    ForgetOp *f = arg;
    if (err != NULL && err->code != ERR_NOT_FOUND) {
        f->done(err, f->arg);
        free(f);
        return;
    }
    if (err == NULL) {
        char tl[ID_STR_SIZE];
        timeline_id_format(&f->timeline, tl);
        log_info("import of timeline %s: row deleted (timeline delete)", tl);
    }
    import_untrack(f->svc, &f->tenant, &f->timeline);
    f->done(NULL, f->arg);
    free(f);
}

void service_import_forget(Service *svc, const TenantId *tenant, const TimelineId *timeline,
                           ServiceDoneFn done, void *arg)
{
    ForgetOp *f = xcalloc(1, sizeof(*f));
    f->svc = svc;
    f->tenant = *tenant;
    f->timeline = *timeline;
    f->done = done;
    f->arg = arg;
    db_imports_delete(svc->opts.db, tenant, timeline, on_import_row_deleted, f);
}

void service_imports_tenant_deleted(Service *svc, const TenantId *tenant)
{
    ImportEntry *e = svc->imports.head;
    while (e != NULL) {
        ImportEntry *next = e->next;
        if (tenant_id_eq(&e->tenant, tenant)) {
            TimelineId tl = e->timeline;
            import_untrack(svc, tenant, &tl);
        }
        e = next;
    }
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
