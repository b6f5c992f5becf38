/*
 * service_imports.c: timeline import in the service core (docs/import.md): the pageservers'
 * status upcalls (GET / POST /upcall/v1/timeline_import_status), the create step (fan-out, then
 * the row), the finalisation operation (activate, notify the control plane once, delete the row;
 * retried; resumed after a restart), the deletes' hooks, the operator's view of an import, and
 * the "tenant is importing" guard a shard split will call. The in-memory ImportSet mirrors the
 * rows. The wire shapes and the decisions are pure functions in storcon/import.c; the row
 * operations are storcon/db_imports.c.
 *
 * Upcalls: the shard's generation is checked first, against the database (and memory when the
 * shard is loaded): a pageserver that lost its attachment must not move an import on. Then the
 * row is read (GET) or the shard's status merged in one transaction (POST; db_imports.c holds
 * the rules: identical repeat is a no-op, a terminal status never changes (409), an unknown shard
 * or import 404).
 */
#include "storcon/service_internal.h"

#include "storcon/db_imports.h"
#include "storcon/defaults.h"
#include "storcon/import.h"
#include "storcon/timeline_fanout.h"

/* ---- the generation check of an upcall ---- */

typedef struct ImportUpcall {
    Service *svc;
    TenantShardId tsid;
    TimelineId timeline;
    Generation gen;
    bool put;
    char *status_text; /* put: the new status (compact JSON) */
    ServiceJsonFn cb;
    void *arg;
} ImportUpcall;

static void upcall_free(ImportUpcall *u)
{
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

typedef struct ImportRecheck {
    Service *svc;
} ImportRecheck;

/* on_recheck_row: a merged status of an untracked import: kick it only when its row still
 * exists, so an import deleted meanwhile is not tracked again (and does not mark the tenant as
 * importing until the next restart). */
static void on_recheck_row(const Err *err, const DbImport *row, bool changed, void *arg)
{
    (void)changed;
    ImportRecheck *r = arg;
    Service *svc = r->svc;
    free(r);
    if (err != NULL) {
        if (err->code != ERR_NOT_FOUND) { /* the background pass lists every row again */
            log_err(err, "import status: reading the row again");
            svc->imports_loaded = false;
        }
        return;
    }
    service_import_kick(svc, &row->tenant_id, &row->timeline_id, row->shard_statuses);
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
        if (import_set_find(&svc->imports, &u->tsid.tenant_id, &u->timeline) != NULL ||
            !svc->imports_listed) {
            service_import_kick(svc, &u->tsid.tenant_id, &u->timeline, row->shard_statuses);
        } else {
            /* not tracked: a delete forgot the import after this merge committed, or the
             * create's own callback has not run yet. Only the row says which. */
            ImportRecheck *r = xcalloc(1, sizeof(*r));
            r->svc = svc;
            db_imports_get(svc->opts.db, &u->tsid.tenant_id, &u->timeline, on_recheck_row, r);
        }
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

/* ---- finalisation ----
 *
 * One attempt is an Operation (kind import_finalize) holding the tenant's lock shared, so a tenant
 * delete (exclusive) waits for it and a timeline create or delete runs beside it:
 *
 *   reading the import --every shard Done--> activating --> notifying --> deleting the row
 *          |            --some shard failed---------------^
 *          +--no row (deleted) / not complete: nothing to do
 *
 * A failed attempt (a shard not activated, the control plane not answering 2xx, the database)
 * leaves the row as it is and is retried after a capped backoff, forever: the notification is at
 * least once, the row is deleted only after the control plane accepted it, and a restarted
 * controller finalises every complete row again (service_imports_resume). Nothing happens before
 * every shard is terminal: each attempt re-reads the row and decides (import_decide).
 */

typedef struct FinalizeRun FinalizeRun;

typedef struct FinalizeShard {
    FinalizeRun *run;
    size_t index;
    PageserverCall *call; /* in flight; NULL once answered */
} FinalizeShard;

struct FinalizeRun {
    Service *svc;
    TenantId tenant;
    TimelineId timeline;
    Operation *op; /* the attempt (the run is freed when it finishes) */
    FinalizeRun *next;
    char *errors; /* NULL: success */
    bool finalised;
    ServiceShardMapSnapshot snap;
    FinalizeShard *shards;
    size_t pending, activated;
    Err err; /* the first activation failure */
};

static void run_free(FinalizeRun *r)
{
    service_snapshot_finish(&r->snap);
    free(r->shards);
    free(r->errors);
    free(r);
}

static void run_keep(void *data)
{
    (void)data; /* freed by finalize_done, or at shutdown by service_imports_free */
}

static void run_unlink(Service *svc, FinalizeRun *r)
{
    for (FinalizeRun **p = &svc->import_runs; *p != NULL; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            return;
        }
    }
}

static void run_label(const FinalizeRun *r, char *buf, size_t size)
{
    char t[ID_STR_SIZE], tl[ID_STR_SIZE];
    tenant_id_format(&r->tenant, t);
    timeline_id_format(&r->timeline, tl);
    (void)str_printf(buf, size, "tenant %s timeline %s", t, tl);
}

/* notify_key: the import_complete notifier's key: tenant and timeline bytes (32). */
#define NOTIFY_KEY_LEN (sizeof(((TenantId *)0)->b) + sizeof(((TimelineId *)0)->b))
static void notify_key(const TenantId *tenant, const TimelineId *timeline,
                       uint8_t key[NOTIFIER_KEY_MAX])
{
    memcpy(key, tenant->b, sizeof(tenant->b));
    memcpy(key + sizeof(tenant->b), timeline->b, sizeof(timeline->b));
}

static void finalize_start(Service *svc, ImportEntry *e);

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ImportEntry *e = arg;
    Service *svc = e->retry_host;
    event_free(e->retry);
    e->retry = NULL;
    if (!svc->stopping && e->running == NULL)
        finalize_start(svc, e);
}

/* finalize_done: the attempt's completion. The entry is looked up again: a delete may have
 * removed it meanwhile. */
static void finalize_done(const Err *err, json_t *result, void *arg)
{
    FinalizeRun *r = arg;
    Service *svc = r->svc;
    json_decref(result);
    run_unlink(svc, r);
    ImportEntry *e = import_set_find(&svc->imports, &r->tenant, &r->timeline);
    char label[2 * ID_STR_SIZE + 32];
    run_label(r, label, sizeof(label));
    if (e != NULL && e->running == r) {
        e->running = NULL;
        if (err == NULL && r->finalised) {
            log_info("import of %s finalised%s", label, r->errors != NULL ? " (failed)" : "");
            import_untrack(svc, &r->tenant, &r->timeline);
            /* nothing to remember: a later import of the same timeline id must be sent, not
             * deduplicated against this one */
            uint8_t key[NOTIFIER_KEY_MAX];
            notify_key(&r->tenant, &r->timeline, key);
            notifier_forget(svc->import_notifier, key, NOTIFY_KEY_LEN);
        } else if (err == NULL) {
            e->failures = 0;
            if (e->again && !svc->stopping) {
                e->again = false;
                finalize_start(svc, e);
            }
        } else if (!svc->stopping) {
            long ms = backoff_delay_ms((int)e->failures + 1, STORCON_IMPORT_RETRY_BASE_MS,
                                       STORCON_IMPORT_RETRY_MAX_MS);
            e->failures++;
            e->again = false;
            log_warn("import of %s: finalisation failed (attempt %u), again in %ld ms: %s", label,
                     e->failures, ms, err->msg);
            e->retry_host = svc;
            e->retry = evtimer_new(svc->opts.base, on_retry_timer, e);
            struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
            evtimer_add(e->retry, &tv);
        }
    }
    run_free(r);
}

static void finish_cancelled_or(Operation *op, const Err *err)
{
    if (operation_cancelled(op))
        err = operation_cancel_reason(op);
    operation_finish(op, err, err == NULL ? json_null() : NULL);
}

static void on_row_deleted(const Err *err, void *arg)
{
    Operation *op = arg;
    FinalizeRun *r = operation_data(op);
    if (err != NULL && err->code != ERR_NOT_FOUND) {
        operation_finish(op, err, NULL);
        return;
    }
    r->finalised = true; /* the control plane was told: done, even if cancelled meanwhile */
    operation_finish(op, NULL, json_null());
}

static void on_notified(const NotifierResult *res, void *arg)
{
    Operation *op = arg;
    Service *svc = operation_host(op);
    FinalizeRun *r = operation_data(op);
    if (!notifier_outcome_ok(res->outcome)) {
        Err e = res->err;
        if (!err_is_set(&e))
            err_set(&e, ERR_UNAVAILABLE, "import_complete: %s",
                    notifier_outcome_name(res->outcome));
        finish_cancelled_or(op, &e);
        return;
    }
    if (res->outcome == NOTIFIER_DISABLED)
        log_warn("import finished but no control-plane URL is set: nobody was told");
    operation_set_step(op, "deleting the row");
    db_imports_delete(svc->opts.db, &r->tenant, &r->timeline, on_row_deleted, op);
}

static void notify_step(Operation *op)
{
    Service *svc = operation_host(op);
    FinalizeRun *r = operation_data(op);
    if (operation_cancelled(op)) {
        finish_cancelled_or(op, NULL);
        return;
    }
    operation_set_step(op, "notifying the control plane");
    ImportComplete in = {.tenant_id = r->tenant, .timeline_id = r->timeline, .error = r->errors};
    uint8_t key[NOTIFIER_KEY_MAX];
    notify_key(&r->tenant, &r->timeline, key);
    char label[NOTIFIER_LABEL_MAX];
    run_label(r, label, sizeof(label));
    notifier_notify(svc->import_notifier, key, NOTIFY_KEY_LEN, label, &in, on_notified, op);
}

static void on_activated(const PageserverResult *res, void *arg)
{
    FinalizeShard *fs = arg;
    FinalizeRun *r = fs->run;
    fs->call = NULL;
    if (!res->ok) {
        if (!err_is_set(&r->err)) {
            char tsid[TSID_STR_SIZE];
            tsid_format(&r->snap.shards[fs->index].tsid, tsid);
            r->err = res->err;
            err_prefix(&r->err, "activate_post_import on shard %s: ", tsid);
        }
    } else {
        r->activated++;
    }
    operation_set_progress(r->op, r->activated, r->snap.n);
    if (--r->pending > 0)
        return;
    if (err_is_set(&r->err)) {
        Err e = r->err;
        finish_cancelled_or(r->op, &e);
        return;
    }
    notify_step(r->op);
}

static void activations_settle(FinalizeRun *r);

static void activate_step(Operation *op)
{
    Service *svc = operation_host(op);
    FinalizeRun *r = operation_data(op);
    Err err;
    err_clear(&err);
    operation_set_step(op, "activating");
    if (!service_tenant_snapshot(svc, &r->tenant, &r->snap, &err)) {
        operation_finish(op, &err, NULL);
        return;
    }
    HttpRetryPolicy retry = {.max_attempts = STORCON_IMPORT_ACTIVATE_ATTEMPTS,
                             .base_ms = STORCON_IMPORT_ACTIVATE_BACKOFF_MS,
                             .max_ms = STORCON_IMPORT_ACTIVATE_BACKOFF_MAX};
    r->shards = xcalloc(r->snap.n, sizeof(*r->shards));
    r->pending = 1 + r->snap.n; /* one extra: nothing settles the step while calls start */
    for (size_t i = 0; i < r->snap.n; i++) {
        FinalizeShard *fs = &r->shards[i];
        fs->run = r;
        fs->index = i;
        PageserverTarget t;
        char url[SERVICE_URL_SIZE];
        Err e;
        err_clear(&e);
        if (!service_pageserver_target(svc, r->snap.shards[i].node,
                                       STORCON_IMPORT_ACTIVATE_TIMEOUT_MS, &retry, &t, url, &e)) {
            if (!err_is_set(&r->err))
                r->err = e;
            r->pending--;
            continue;
        }
        fs->call = pageserver_client_activate_post_import(svc->pc, &t, &r->snap.shards[i].tsid,
                                                          &r->timeline, 0, on_activated, fs);
    }
    operation_set_progress(op, 0, r->snap.n);
    activations_settle(r);
}

/* activations_settle: count off the extra unit of r->pending that kept the step from ending while
 * its calls were started or stopped; ends the step when nothing else is pending (r may then be
 * gone). */
static void activations_settle(FinalizeRun *r)
{
    PageserverResult none;
    memset(&none, 0, sizeof(none));
    none.ok = true;
    r->activated--; /* the extra unit is not a shard */
    FinalizeShard extra = {.run = r, .index = 0};
    on_activated(&none, &extra);
}

/* activations_stop: a cancelled run waiting on activate_post_import calls stops them, each
 * counted as failed, so that the step ends now instead of after the calls' retries (r may then
 * be gone). */
static void activations_stop(FinalizeRun *r, const Err *reason)
{
    if (r->shards == NULL || r->pending == 0)
        return;
    r->pending++; /* the extra unit */
    PageserverResult failed;
    memset(&failed, 0, sizeof(failed));
    failed.err = *reason;
    for (size_t i = 0; i < r->snap.n; i++) {
        FinalizeShard *fs = &r->shards[i];
        if (fs->call == NULL)
            continue;
        pageserver_call_cancel(fs->call);
        on_activated(&failed, fs); /* clears fs->call */
    }
    activations_settle(r);
}

static void on_final_row(const Err *err, const DbImport *row, bool changed, void *arg)
{
    Operation *op = arg;
    FinalizeRun *r = operation_data(op);
    (void)changed;
    if (err != NULL) {
        if (err->code == ERR_NOT_FOUND) { /* deleted: nothing to finalise, nobody to tell */
            r->finalised = true;
            operation_finish(op, NULL, json_null());
            return;
        }
        operation_finish(op, err, NULL);
        return;
    }
    if (operation_cancelled(op)) {
        finish_cancelled_or(op, NULL);
        return;
    }
    ImportSummary sum;
    Err e;
    err_clear(&e);
    if (!import_summarise(row->shard_statuses, &sum, &e)) {
        operation_finish(op, &e, NULL);
        return;
    }
    ImportDecision d = import_decide(&sum);
    r->errors = sum.errors;
    sum.errors = NULL;
    import_summary_finish(&sum);
    switch (d) {
    case IMPORT_DECISION_ACTIVATE:
        activate_step(op);
        return;
    case IMPORT_DECISION_NOTIFY_ERROR:
        notify_step(op);
        return;
    case IMPORT_DECISION_WAIT:
    case IMPORT_DECISION_COUNT:
    default:
        operation_finish(op, NULL, json_null()); /* never before every shard is terminal */
        return;
    }
}

static void finalize_run(Operation *op)
{
    Service *svc = operation_host(op);
    FinalizeRun *r = operation_data(op);
    operation_set_step(op, "reading the import");
    db_imports_get(svc->opts.db, &r->tenant, &r->timeline, on_final_row, op);
}

static void finalize_start(Service *svc, ImportEntry *e)
{
    FinalizeRun *r = xcalloc(1, sizeof(*r));
    r->svc = svc;
    r->tenant = e->tenant;
    r->timeline = e->timeline;
    r->next = svc->import_runs;
    svc->import_runs = r;
    e->running = r;
    Operation *op = operation_new(svc->ops, OPERATION_IMPORT_FINALIZE, finalize_done, r);
    r->op = op;
    operation_set_data(op, r, run_keep);
    operation_lock_tenant(op, &e->tenant, TENANT_LOCK_SHARED);
    operation_set_deadline(op, STORCON_IMPORT_FINALIZE_DEADLINE_MS);
    operation_start(op, finalize_run);
}

void service_import_kick(Service *svc, const TenantId *tenant, const TimelineId *timeline,
                         const char *shard_statuses)
{
    ImportSummary sum;
    Err err;
    err_clear(&err);
    if (!import_summarise(shard_statuses, &sum, &err)) {
        log_err(&err, "import finalisation");
        return;
    }
    ImportDecision d = import_decide(&sum);
    import_summary_finish(&sum);
    ImportEntry *e = import_track(svc, tenant, timeline);
    if (d == IMPORT_DECISION_WAIT || !svc->ready || svc->stopping)
        return; /* startup finalises what is complete once ready (service_imports_resume) */
    if (e->running != NULL) {
        e->again = true;
        return;
    }
    if (e->retry != NULL)
        return; /* a retry is due */
    finalize_start(svc, e);
}

/* ---- startup, cancellation, lifecycle ---- */

static void on_imports_listed(const Err *err, const DbImport *rows, size_t n, void *arg)
{
    Service *svc = arg;
    if (err != NULL) {
        log_err(err, "loading the timeline imports (retried by the background pass)");
        svc->imports_loaded = false;
        return;
    }
    for (size_t i = 0; i < n; i++)
        service_import_kick(svc, &rows[i].tenant_id, &rows[i].timeline_id, rows[i].shard_statuses);
    svc->imports_listed = true;
    if (n > 0)
        log_info("startup: %zu timeline imports in progress", n);
}

void service_imports_resume(Service *svc)
{
    if (svc->imports_loaded)
        return;
    svc->imports_loaded = true;
    db_imports_list(svc->opts.db, on_imports_listed, svc);
}

void service_imports_cancel(Service *svc, const TenantId *tenant, const TimelineId *timeline)
{
    Err reason;
    err_clear(&reason);
    err_set(&reason, ERR_UNAVAILABLE, "import finalisation cancelled by a delete");
    /* collected first: cancelling one that waits for its lock, or stopping the activations of a
     * running one, completes it at once, which unlinks it from the list and frees it */
    size_t n = 0;
    for (FinalizeRun *r = svc->import_runs; r != NULL; r = r->next)
        n++;
    FinalizeRun **runs = xcalloc(n > 0 ? n : 1, sizeof(*runs));
    size_t k = 0;
    for (FinalizeRun *r = svc->import_runs; r != NULL; r = r->next) {
        if (tenant_id_eq(&r->tenant, tenant) &&
            (timeline == NULL || timeline_id_eq(&r->timeline, timeline)))
            runs[k++] = r;
    }
    for (size_t i = 0; i < k; i++) {
        FinalizeRun *r = runs[i];
        if (operation_state(r->op) != OPERATION_RUNNING) {
            operation_cancel(r->op, &reason); /* waiting for its lock: ends (and frees r) now */
            continue;
        }
        uint8_t key[NOTIFIER_KEY_MAX]; /* drop its notification too */
        notify_key(&r->tenant, &r->timeline, key);
        notifier_forget(svc->import_notifier, key, NOTIFY_KEY_LEN);
        operation_cancel(r->op, &reason);
        activations_stop(r, &reason);
    }
    free(runs);
}

void service_imports_init(Service *svc)
{
    char *url = NULL;
    const char *cp = svc->cp_url;
    if (cp != NULL && cp[0] != '\0') {
        size_t len = strlen(cp);
        while (len > 0 && cp[len - 1] == '/')
            len--;
        url = str_dup_printf("%.*s/import_complete", (int)len, cp);
    }
    NotifierOptions no = {
        .what = "import_complete notification",
        .url = url,
        .method = "PUT",
        .bearer_token = svc->cp_token,
        .render = import_complete_render,
        .metric_prefix = "import_complete_notifications",
        .timeout_ms = STORCON_IMPORT_NOTIFY_TIMEOUT_MS,
        .max_attempts = STORCON_IMPORT_NOTIFY_ATTEMPTS,
        .locked_max_attempts = STORCON_IMPORT_NOTIFY_ATTEMPTS,
    };
    svc->import_notifier = notifier_new(svc->opts.base, svc->http, svc->opts.metrics, &no);
    free(url);
}

void service_imports_free(Service *svc)
{
    notifier_free(svc->import_notifier); /* its callbacks never run */
    svc->import_notifier = NULL;
    while (svc->import_runs != NULL) { /* abandoned with the operations */
        FinalizeRun *r = svc->import_runs;
        svc->import_runs = r->next;
        run_free(r);
    }
    while (svc->imports.head != NULL) {
        ImportEntry *e = import_set_remove(&svc->imports, &svc->imports.head->tenant,
                                           &svc->imports.head->timeline);
        if (e->retry != NULL)
            event_free(e->retry);
        free(e);
    }
}
