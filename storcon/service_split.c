/*
 * service_split.c: the shard split operation (service_split.h, docs/split.md).
 *
 * The parents stay the tenant's shards in memory until the database commit; while the split runs
 * they are marked splitting (tenant_shard_may_reconcile / _schedule / _optimize are false), so the
 * operation is the only one calling their pageservers. The children enter memory only once
 * complete-split is durable, which keeps every view (shard map, describe, compute notifications)
 * on one whole shard count at all times.
 */
#include "storcon/service_split.h"

#include <inttypes.h>

#include "shared/failpoint.h"
#include "shared/key.h"
#include "storcon/service_internal.h"

typedef struct SplitParent {
    TenantShardId tsid;
    NodeId node;    /* its attached node (checked: observed AttachedSingle in gen) */
    Generation gen; /* its generation, which the children inherit */
} SplitParent;

typedef struct SplitOp {
    TenantId tenant;
    char tenant_str[ID_STR_SIZE];
    ShardSplitRequest req; /* as asked */
    ShardCount old_count, new_count;
    uint32_t new_stripe; /* 0: keep */
    SplitParent *parents;
    size_t n_parents;
    size_t pending; /* pageserver calls in flight in the current step */
    bool call_failed;
    Err call_err;
    bool begun;      /* begin-split is durable: a failure must abort it */
    bool ps_called;  /* pageservers were asked to split: their parents may be gone there */
    Err fail_reason; /* why the split is being aborted */
} SplitOp;

static void split_op_free(void *p)
{
    SplitOp *d = p;
    free(d->parents);
    free(d);
}

static SplitOp *split_data(Operation *op)
{
    return operation_data(op);
}

/* split_target: node's target with the given per-attempt timeout and attempts. */
static bool split_target(Service *svc, NodeId node, long timeout_ms, int attempts,
                         PageserverTarget *t, char *url, size_t size)
{
    memset(t, 0, sizeof(*t));
    if (!service_target_for(svc, node, t, url, size))
        return false;
    t->timeout_ms = timeout_ms;
    t->retry = (HttpRetryPolicy){.max_attempts = attempts,
                                 .base_ms = STORCON_SPLIT_CALL_BACKOFF_MS,
                                 .max_ms = STORCON_RECONCILE_CALL_BACKOFF_MAX,
                                 .deadline_ms = STORCON_RECONCILE_CALL_DEADLINE_MS};
    return true;
}

/* detached_config: the LocationConfig that detaches tsid. New reference. */
static json_t *detached_config(const TenantShardId *tsid, uint32_t stripe)
{
    json_t *j = json_object();
    json_set_new(j, "mode", json_string("Detached"));
    json_set_new(j, "generation", json_null());
    json_set_new(j, "secondary_conf", json_null());
    json_set_new(j, "shard_number", json_integer(tsid->number));
    json_set_new(j, "shard_count", json_integer(tsid->count));
    json_set_new(j, "shard_stripe_size", json_integer((json_int_t)stripe));
    json_set_new(j, "tenant_conf", json_object());
    return j;
}

/* put_detached: PUT a Detached location_config of tsid on node; false when the node is unknown,
 * or unavailable while available_only (nothing started: the node drops the shard at its next
 * re-attach, which lists only what the controller has). */
static bool put_detached(Service *svc, NodeId node, const TenantShardId *tsid, uint32_t stripe,
                         bool available_only, PageserverDone done, void *arg)
{
    PageserverTarget t;
    char url[SERVICE_URL_SIZE];
    if (available_only && !node_set_is_available(&svc->nodes, node))
        return false;
    if (!split_target(svc, node, STORCON_RECONCILE_CALL_TIMEOUT_MS, STORCON_RECONCILE_CALL_ATTEMPTS,
                      &t, url, sizeof(url)))
        return false;
    json_t *conf = detached_config(tsid, stripe);
    (void)pageserver_client_location_config_put(svc->pc, &t, tsid, conf, 0, false, done, arg);
    json_decref(conf);
    return true;
}

/* put_ok: a location_config PUT succeeded (a Detached PUT answers a bare {}, which the client
 * reports as undecodable: any 2xx counts, as in the reconciler). */
static bool put_ok(const PageserverResult *res)
{
    return res->ok || (res->status >= 200 && res->status <= 299);
}

/* call_result: one of the step's parallel calls ended; true when it was the last one. */
static bool call_result(SplitOp *d, const Err *err)
{
    if (err != NULL && !d->call_failed) {
        d->call_failed = true;
        d->call_err = *err;
    }
    return --d->pending == 0;
}

static void split_fail(Operation *op, const Err *err);

/* ---- the end: abort (before commit) ---- */

/* restore_parents: the parents are the tenant's shards again: not splitting, rescheduled (their
 * secondaries come back) and reconciled. After pageserver calls, their state there is refreshed
 * first (a parent shut down by its pageserver is attached again in a new generation). */
static void restore_parents(Service *svc, SplitOp *d)
{
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_shards; i++) {
        t->shards[i]->splitting = 0;
        tenant_shard_mark_dirty(t->shards[i]);
    }
    for (size_t i = 0; d->ps_called && i < d->n_parents; i++) {
        TenantShard *s = shard_map_get(svc->map, &d->parents[i].tsid);
        if (s != NULL)
            tenant_shard_observed_set_unknown(s, d->parents[i].node);
    }
    Err err;
    err_clear(&err);
    if (!scheduler_schedule_tenant(&svc->sched, t, NULL, &err))
        log_err(&err, "shard split: rescheduling the parents");
    (void)service_reconcile_tenant(svc, t);
}

static void on_child_detached(const PageserverResult *res, void *arg)
{
    Operation *op = arg;
    SplitOp *d = split_data(op);
    if (!put_ok(res)) {
        char id[TSID_STR_SIZE];
        tsid_format(&res->tsid, id);
        log_warn("shard split of %s aborted: detaching child %s failed (%s); the node drops it "
                 "at its next re-attach, the controller at its next start",
                 d->tenant_str, id, res->err.msg);
    }
    if (--d->pending > 0)
        return;
    restore_parents(operation_host(op), d);
    operation_finish(op, &d->fail_reason, NULL);
}

/* detach_children: every child on its parent's node (after an abort), then the parents are
 * restored (so that a parent is never attached again beside its children) and the operation
 * finishes with the abort reason. */
static void detach_children(Operation *op)
{
    Service *svc = operation_host(op);
    SplitOp *d = split_data(op);
    operation_set_step(op, "detach-children");
    d->pending = 1; /* guard while starting calls */
    uint32_t stripe = d->new_stripe;
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    if (stripe == 0)
        stripe = t != NULL ? t->stripe_size : STRIPE_SIZE_LEGACY;
    for (size_t i = 0; i < d->n_parents; i++) {
        ShardNumber numbers[SHARD_SPLIT_MAX_CHILDREN];
        size_t n = 0;
        Err e;
        err_clear(&e);
        if (!shard_split_children(d->parents[i].tsid.number, d->old_count, d->new_count, numbers,
                                  &n, &e))
            continue;
        for (size_t k = 0; k < n; k++) {
            TenantShardId c = {d->tenant, numbers[k], d->new_count};
            d->pending++;
            if (!put_detached(svc, d->parents[i].node, &c, stripe, true, on_child_detached, op))
                d->pending--;
        }
    }
    if (--d->pending == 0) {
        restore_parents(svc, d);
        operation_finish(op, &d->fail_reason, NULL);
    }
}

static void on_split_aborted(const Err *err, const DbTenantShard *rows, size_t n, void *arg)
{
    (void)rows;
    (void)n;
    Operation *op = arg;
    Service *svc = operation_host(op);
    SplitOp *d = split_data(op);
    if (err != NULL)
        log_err(err, "shard split: abort-split in the database (the next start aborts it)");
    else
        log_info("shard split of %s into %u shards aborted: %s", d->tenant_str,
                 (unsigned)d->new_count, d->fail_reason.msg);
    if (d->ps_called) {
        detach_children(op);
        return;
    }
    restore_parents(svc, d);
    operation_finish(op, &d->fail_reason, NULL);
}

/* split_fail: the split cannot go on: abort what was begun, then finish with err. */
static void split_fail(Operation *op, const Err *err)
{
    Service *svc = operation_host(op);
    SplitOp *d = split_data(op);
    d->fail_reason = *err;
    if (!d->begun) {
        log_info("shard split of %s refused or failed before it began: %s", d->tenant_str,
                 err->msg);
        restore_parents(svc, d);
        operation_finish(op, err, NULL);
        return;
    }
    operation_set_step(op, "abort");
    Err e;
    err_clear(&e);
    if (!db_tenants_split_abort(svc->opts.db, &d->tenant, d->old_count, d->new_count,
                                on_split_aborted, op, &e))
        on_split_aborted(&e, NULL, 0, op);
}

/* step_failpoint: the failpoint split-before-<step>; false after failing the operation. */
static bool step_failpoint(Operation *op, const char *step, const char *failpoint)
{
    operation_set_step(op, step);
    Err err;
    err_clear(&err);
    if (failpoint_check(failpoint, &err)) {
        return true;
    }
    err_prefix(&err, "shard split: %s: ", step);
    split_fail(op, &err);
    return false;
}

/* ---- apply (after commit) ---- */

/* children_json: {"new_shards": [...]}: complete-split checked that all new_count children exist,
 * so they are the numbers 0 .. new_count - 1, listed in shard order. */
static json_t *children_json(const SplitOp *d)
{
    json_t *arr = json_array();
    for (unsigned k = 0; k < d->new_count; k++) {
        TenantShardId c = {d->tenant, (ShardNumber)k, d->new_count};
        char id[TSID_STR_SIZE];
        tsid_format(&c, id);
        json_array_append_new(arr, json_string(id));
    }
    json_t *out = json_object();
    json_set_new(out, "new_shards", arr);
    return out;
}

/* apply_children: replace the parents by the children in memory, attached on the parents' nodes
 * in the parents' generation (observed: the pageservers just started them so), then schedule
 * (secondaries) and reconcile; the reconciles notify compute once, with the whole map. */
static void apply_children(Service *svc, SplitOp *d, const DbTenantShard *rows, size_t n)
{
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    for (size_t i = 0; i < d->n_parents; i++) {
        TenantShard *s = shard_map_get(svc->map, &d->parents[i].tsid);
        if (s == NULL)
            continue;
        scheduler_intent_clear(&svc->sched, s);
        Err err;
        err_clear(&err);
        if (!shard_map_shard_remove(svc->map, s, &err))
            log_err(&err, "shard split: removing a parent from memory");
    }
    if (n > 0 && rows[0].stripe_size != 0)
        t->stripe_size = rows[0].stripe_size;
    for (size_t i = 0; i < n; i++) {
        Err err;
        err_clear(&err);
        TenantShard *c = NULL;
        const SplitParent *p = &d->parents[rows[i].tsid.number % (d->old_count ? d->old_count : 1)];
        if (!service_load_shard_row(svc, &rows[i], &c, &err) ||
            !scheduler_intent_set_attached(&svc->sched, c, p->node, &err)) {
            log_err(&err, "shard split: a child in memory");
            continue;
        }
        ObservedState o = {
            .known = true, .mode = SHARD_LOCATION_ATTACHED_SINGLE, .generation = p->gen};
        tenant_shard_observed_set(c, p->node, &o);
        tenant_shard_set_pending_notify(c, true);
    }
    Err err;
    err_clear(&err);
    if (!scheduler_schedule_tenant(&svc->sched, t, NULL, &err))
        log_err(&err, "shard split: scheduling the children");
    (void)service_reconcile_tenant(svc, t);
}

static void on_split_committed(const Err *err, const DbTenantShard *rows, size_t n, void *arg)
{
    Operation *op = arg;
    Service *svc = operation_host(op);
    SplitOp *d = split_data(op);
    if (err != NULL) {
        split_fail(op, err);
        return;
    }
    log_info("shard split of %s into %u shards committed", d->tenant_str, (unsigned)d->new_count);
    operation_set_step(op, "apply");
    Err fp;
    err_clear(&fp);
    if (!failpoint_check("split-before-apply", &fp)) /* past the commit: only crashes matter */
        log_warn("shard split: failpoint split-before-apply ignored after the commit (%s)", fp.msg);
    apply_children(svc, d, rows, n);
    operation_finish(op, NULL, children_json(d));
}

static void step_commit(Operation *op)
{
    Service *svc = operation_host(op);
    SplitOp *d = split_data(op);
    if (!step_failpoint(op, "commit", "split-before-commit"))
        return;
    Err err;
    err_clear(&err);
    /* a pageserver that re-attached meanwhile bumped its parents' generations: the children were
     * made in a generation the database no longer has as the latest; give up (retry) */
    for (size_t i = 0; i < d->n_parents; i++) {
        const TenantShard *s = shard_map_get(svc->map, &d->parents[i].tsid);
        if (s == NULL || s->generation != d->parents[i].gen) {
            err_set(&err, ERR_UNAVAILABLE,
                    "shard split: the generation of a parent changed during the split (its "
                    "pageserver re-attached); retry");
            split_fail(op, &err);
            return;
        }
    }
    if (!db_tenants_split_complete(svc->opts.db, &d->tenant, d->old_count, d->new_count,
                                   on_split_committed, op, &err))
        split_fail(op, &err);
}

/* ---- the pageservers ---- */

typedef struct PsCall {
    Operation *op;
    size_t parent;
} PsCall;

/* children_match: the returned ids are exactly the parent's children. */
static bool children_match(const SplitOp *d, const SplitParent *p, const PageserverResult *res,
                           Err *err)
{
    ShardNumber numbers[SHARD_SPLIT_MAX_CHILDREN];
    size_t n = 0;
    if (!shard_split_children(p->tsid.number, d->old_count, d->new_count, numbers, &n, err))
        return false;
    bool ok = res->split.n_children == n;
    for (size_t i = 0; ok && i < n; i++) {
        const TenantShardId *c = &res->split.children[i];
        ok = tenant_id_eq(&c->tenant_id, &d->tenant) && c->number == numbers[i] &&
             c->count == d->new_count;
    }
    if (!ok) {
        char id[TSID_STR_SIZE];
        tsid_format(&p->tsid, id);
        err_set(err, ERR_INTERNAL,
                "shard split: node %llu answered the wrong children for %s (%zu of %zu expected)",
                (unsigned long long)p->node, id, res->split.n_children, n);
    }
    return ok;
}

static void on_ps_split(const PageserverResult *res, void *arg)
{
    PsCall *c = arg;
    Operation *op = c->op;
    SplitOp *d = split_data(op);
    const SplitParent *p = &d->parents[c->parent];
    free(c);
    Err err;
    err_clear(&err);
    bool ok = res->ok && children_match(d, p, res, &err);
    if (!res->ok) {
        err = res->err;
        char id[TSID_STR_SIZE];
        tsid_format(&p->tsid, id);
        err_prefix(&err, "shard split of %s on node %llu: ", id, (unsigned long long)p->node);
    }
    if (!call_result(d, ok ? NULL : &err))
        return;
    if (d->call_failed) {
        split_fail(op, &d->call_err);
        return;
    }
    step_commit(op);
}

static void step_pageservers(Operation *op)
{
    Service *svc = operation_host(op);
    SplitOp *d = split_data(op);
    if (!step_failpoint(op, "pageservers", "split-before-pageservers"))
        return;
    d->ps_called = true;
    d->call_failed = false;
    d->pending = 1;
    for (size_t i = 0; i < d->n_parents; i++) {
        PageserverTarget t;
        char url[SERVICE_URL_SIZE];
        Err err;
        err_clear(&err);
        d->pending++;
        if (!split_target(svc, d->parents[i].node, STORCON_SPLIT_CALL_TIMEOUT_MS,
                          STORCON_SPLIT_CALL_ATTEMPTS, &t, url, sizeof(url))) {
            service_node_offline_err(d->parents[i].node, &err);
            (void)call_result(d, &err);
            continue;
        }
        PsCall *c = xcalloc(1, sizeof(*c));
        c->op = op;
        c->parent = i;
        (void)pageserver_client_tenant_shard_split(svc->pc, &t, &d->parents[i].tsid, d->new_count,
                                                   d->new_stripe, on_ps_split, c);
    }
    if (!call_result(d, NULL))
        return;
    if (d->call_failed) {
        split_fail(op, &d->call_err);
        return;
    }
    step_commit(op);
}

/* ---- begin-split ---- */

static void on_split_begun(const Err *err, const DbTenantShard *rows, size_t n, void *arg)
{
    (void)rows;
    Operation *op = arg;
    SplitOp *d = split_data(op);
    if (err != NULL) {
        split_fail(op, err);
        return;
    }
    d->begun = true;
    log_info("shard split of %s into %u shards begun (%zu children recorded)", d->tenant_str,
             (unsigned)d->new_count, n);
    step_pageservers(op);
}

static void step_begin(Operation *op)
{
    Service *svc = operation_host(op);
    SplitOp *d = split_data(op);
    if (!step_failpoint(op, "begin", "split-before-begin"))
        return;
    Err err;
    err_clear(&err);
    if (!db_tenants_split_begin(svc->opts.db, &d->tenant, d->old_count, d->new_count, d->new_stripe,
                                on_split_begun, op, &err))
        split_fail(op, &err);
}

/* ---- detach the secondaries ---- */

typedef struct SecondaryCall {
    Operation *op;
    TenantShardId tsid;
    NodeId node;
} SecondaryCall;

static void on_secondary_detached(const PageserverResult *res, void *arg)
{
    SecondaryCall *c = arg;
    Operation *op = c->op;
    Service *svc = operation_host(op);
    SplitOp *d = split_data(op);
    Err err;
    err_clear(&err);
    bool ok = put_ok(res);
    if (ok) {
        TenantShard *s = shard_map_get(svc->map, &c->tsid);
        if (s != NULL)
            (void)tenant_shard_observed_remove(s, c->node);
    } else {
        err = res->err;
        err_prefix(
            &err, "shard split: detaching a secondary on node %llu: ", (unsigned long long)c->node);
    }
    free(c);
    if (!call_result(d, ok ? NULL : &err))
        return;
    if (d->call_failed) {
        split_fail(op, &d->call_err);
        return;
    }
    step_begin(op);
}

static void step_detach_secondaries(Operation *op)
{
    Service *svc = operation_host(op);
    SplitOp *d = split_data(op);
    if (!step_failpoint(op, "detach-secondaries", "split-before-detach-secondaries"))
        return;
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    d->call_failed = false;
    d->pending = 1;
    for (size_t i = 0; i < d->n_parents; i++) {
        TenantShard *s = shard_map_get(svc->map, &d->parents[i].tsid);
        while (s != NULL && s->intent.n_secondaries > 0) {
            NodeId node = s->intent.secondaries[0];
            (void)scheduler_intent_remove_node(&svc->sched, s, node);
            SecondaryCall *c = xcalloc(1, sizeof(*c));
            c->op = op;
            c->tsid = s->tsid;
            c->node = node;
            d->pending++;
            if (!put_detached(svc, node, &s->tsid, t->stripe_size, true, on_secondary_detached,
                              c)) {
                (void)tenant_shard_observed_remove(s, node); /* offline: its re-attach drops it */
                free(c);
                d->pending--;
            }
        }
    }
    if (!call_result(d, NULL))
        return;
    if (d->call_failed) {
        split_fail(op, &d->call_err);
        return;
    }
    step_begin(op);
}

/* ---- preconditions ---- */

/* check_attached: every parent is attached on an available node that holds it AttachedSingle in
 * its generation (409 otherwise, the spec's precondition: retry once it is); records them. */
static bool check_attached(Service *svc, SplitOp *d, const Tenant *t, Err *err)
{
    d->parents = xcalloc(t->n_shards ? t->n_shards : 1, sizeof(*d->parents));
    d->n_parents = 0;
    for (size_t i = 0; i < t->n_shards; i++) {
        const TenantShard *s = t->shards[i];
        ObservedState o;
        NodeId node = tenant_shard_attached(s);
        char id[TSID_STR_SIZE];
        tsid_format(&s->tsid, id);
        if (node == NODE_ID_NONE || !node_set_is_available(&svc->nodes, node) ||
            !tenant_shard_observed_get(s, node, &o) || !o.known ||
            o.mode != SHARD_LOCATION_ATTACHED_SINGLE || o.generation != s->generation) {
            err_set(err, ERR_CONFLICT,
                    "shard %s is not attached on an available node in its generation; retry "
                    "once it is",
                    id);
            return false;
        }
        d->parents[d->n_parents++] = (SplitParent){s->tsid, node, s->generation};
    }
    return true;
}

static void on_settled(Service *svc, Waiter *w, bool timed_out)
{
    Operation *op = w->op;
    SplitOp *d = split_data(op);
    Err err;
    err_clear(&err);
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    if (timed_out) {
        err_set(&err, ERR_UNAVAILABLE,
                "shard split: the tenant's reconciles did not finish; retry");
        split_fail(op, &err);
        return;
    }
    if (t == NULL || !check_attached(svc, d, t, &err)) {
        if (t == NULL)
            err_set(&err, ERR_NOT_FOUND, "tenant %s not found", d->tenant_str);
        split_fail(op, &err);
        return;
    }
    log_info("shard split of %s: %u -> %u shards (stripe %" PRIu32 ")", d->tenant_str,
             (unsigned)d->old_count, (unsigned)d->new_count,
             d->new_stripe ? d->new_stripe : t->stripe_size);
    step_detach_secondaries(op);
}

/* check_split: the request against the tenant (400, 409); nothing is changed. */
static bool check_split(Service *svc, SplitOp *d, const Tenant *t, const ShardSplitRequest *req,
                        Err *err)
{
    ShardCount current = tenant_current_count(t);
    for (size_t i = 0; i < t->n_shards; i++) {
        if (t->shards[i]->tsid.count != current || tenant_shard_is_splitting(t->shards[i])) {
            err_set(err, ERR_CONFLICT, "tenant %s: a shard split is in progress", d->tenant_str);
            return false;
        }
    }
    if (t->n_shards == 0) {
        err_set(err, ERR_CONFLICT, "tenant %s has no shards", d->tenant_str);
        return false;
    }
    if (!shard_split_validate(current, req->new_shard_count, err) ||
        !service_shard_params_check(svc, (ShardCount)req->new_shard_count, 0,
                                    req->new_stripe_size ? req->new_stripe_size : t->stripe_size,
                                    err))
        return false;
    if (req->new_stripe_size != 0 && current > 1) {
        err_set(err, ERR_BAD_REQUEST,
                "new_stripe_size may only be given when splitting an unsharded tenant (%s has %u "
                "shards)",
                d->tenant_str, (unsigned)current);
        return false;
    }
    if (!service_tenant_check_not_importing(svc, &d->tenant, err))
        return false;
    d->old_count = current;
    d->new_count = (ShardCount)req->new_shard_count;
    d->new_stripe = req->new_stripe_size;
    return true;
}

static void split_locked(Operation *op, const Err *load_err)
{
    Service *svc = operation_host(op);
    SplitOp *d = split_data(op);
    if (load_err != NULL) {
        operation_finish(op, load_err, NULL);
        return;
    }
    Err err;
    err_clear(&err);
    Tenant *t = service_tenant_or_404(svc, &d->tenant, &err);
    if (t == NULL || !check_split(svc, d, t, &d->req, &err)) {
        operation_finish(op, &err, NULL);
        return;
    }
    for (size_t i = 0; i < t->n_shards; i++)
        t->shards[i]->splitting = 1; /* no reconcile starts from here on */
    operation_set_step(op, "settle");
    service_waiter_add(svc, &d->tenant, STORCON_SPLIT_SETTLE_TIMEOUT_MS, on_settled, op);
}

static void split_first(Operation *op)
{
    if (!service_tenant_op_ready(op))
        return;
    operation_set_step(op, "preconditions");
    service_tenant_load(op, split_locked);
}

void service_tenant_shard_split(Service *svc, const TenantId *tenant, const ShardSplitRequest *req,
                                ServiceJsonFn cb, void *arg)
{
    if (!service_enter_ready(svc, cb, arg))
        return;
    size_t holders = 0, waiters = 0;
    tenant_locks_stats(operations_locks(svc->ops), tenant, &holders, &waiters);
    if (holders + waiters > 0) {
        char id[ID_STR_SIZE];
        tenant_id_format(tenant, id);
        Err err;
        err_set(&err, ERR_CONFLICT, "tenant %s is busy with another operation; retry", id);
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    Operation *op = operation_new(svc->ops, OPERATION_TENANT_SHARD_SPLIT, cb, arg);
    SplitOp *d = xcalloc(1, sizeof(*d));
    d->tenant = *tenant;
    tenant_id_format(tenant, d->tenant_str);
    d->req = *req;
    operation_set_data(op, d, split_op_free);
    operation_lock_tenant(op, tenant, TENANT_LOCK_EXCLUSIVE);
    operation_start(op, split_first);
}

/* ---- startup leftovers ---- */

static void on_leftover_detached(const PageserverResult *res, void *arg)
{
    (void)arg;
    char id[TSID_STR_SIZE];
    tsid_format(&res->tsid, id);
    if (put_ok(res))
        log_info("startup: detached %s, a leftover of a shard split", id);
    else
        log_warn("startup: detaching %s, a leftover of a shard split, failed (%s)", id,
                 res->err.msg);
}

bool service_split_leftover(Service *svc, NodeId node, const TenantShardId *tsid)
{
    Tenant *t = shard_map_tenant_get(svc->map, &tsid->tenant_id);
    if (t == NULL)
        return false;
    char id[TSID_STR_SIZE];
    tsid_format(tsid, id);
    log_info("startup: node %llu holds %s, which the controller does not have (the tenant has "
             "%u shards): detaching it",
             (unsigned long long)node, id, (unsigned)tenant_current_count(t));
    return put_detached(svc, node, tsid, t->stripe_size, false, on_leftover_detached, NULL);
}
