/*
 * service_timelines.c: timeline create and delete as operations holding the tenant's shared lock
 * (the fan-out itself is timeline_fanout.c), and the shard map snapshots, from memory and from the
 * database, for the fan-outs and the passthrough.
 */
#include "storcon/service_internal.h"

#include "storcon/timeline_fanout.h"

/* ---- timeline operations ---- */

typedef struct TimelineOp {
    TenantId tenant;
    TimelineId timeline;     /* delete */
    TimelineCreateSpec spec; /* create */
} TimelineOp;

static Operation *timeline_op_new(Service *svc, OperationKind kind, const TenantId *tenant,
                                  ServiceJsonFn cb, void *arg)
{
    Operation *op = operation_new(svc->ops, kind, cb, arg);
    TimelineOp *d = xcalloc(1, sizeof(*d));
    d->tenant = *tenant;
    operation_set_data(op, d, NULL);
    operation_lock_tenant(op, tenant, TENANT_LOCK_SHARED);
    return op;
}

static void timeline_create_run(Operation *op)
{
    Service *svc = operation_host(op);
    TimelineOp *d = operation_data(op);
    if (d->spec.import_pgdata_p == JSON_PRESENCE_SET) {
        service_import_create_run(op, &d->tenant, &d->spec);
        return;
    }
    operation_set_step(op, "fanning out");
    timeline_fanout_create(svc, svc->opts.base, &d->tenant, &d->spec, operation_json_done, op);
}

void service_timeline_create(Service *svc, const TenantId *tenant, const TimelineCreateSpec *spec,
                             ServiceJsonFn cb, void *arg)
{
    Operation *op = timeline_op_new(svc, OPERATION_TIMELINE_CREATE, tenant, cb, arg);
    TimelineOp *d = operation_data(op);
    d->spec = *spec;
    d->spec.import_pgdata = NULL; /* borrowed during decode only */
    operation_start(op, timeline_create_run);
}

static void timeline_delete_fanout(Operation *op, const Err *err)
{
    Service *svc = operation_host(op);
    TimelineOp *d = operation_data(op);
    if (err != NULL) {
        operation_finish(op, err, NULL);
        return;
    }
    operation_set_step(op, "fanning out");
    timeline_fanout_delete(svc, svc->opts.base, &d->tenant, &d->timeline, operation_json_done, op);
}

/* timeline_delete_run: an import of the timeline is abandoned first (docs/import.md). */
static void timeline_delete_run(Operation *op)
{
    Service *svc = operation_host(op);
    TimelineOp *d = operation_data(op);
    operation_set_step(op, "forgetting an import");
    operation_set_next(op, timeline_delete_fanout);
    service_import_forget(svc, &d->tenant, &d->timeline, operation_continue, op);
}

void service_timeline_delete(Service *svc, const TenantId *tenant, const TimelineId *timeline,
                             ServiceJsonFn cb, void *arg)
{
    Operation *op = timeline_op_new(svc, OPERATION_TIMELINE_DELETE, tenant, cb, arg);
    TimelineOp *d = operation_data(op);
    d->timeline = *timeline;
    service_imports_cancel(svc, tenant, timeline);
    operation_start(op, timeline_delete_run);
}

/* ---- snapshots for fan-out ---- */

void service_snapshot_finish(ServiceShardMapSnapshot *snap)
{
    free(snap->shards);
    snap->shards = NULL;
    snap->n = 0;
}

static void snapshot_init(ServiceShardMapSnapshot *out, const Tenant *t, ShardCount count)
{
    memset(out, 0, sizeof(*out));
    out->tenant_id = t->id;
    out->shard_count = count;
    out->stripe_size = t->stripe_size;
    out->n = count == 0 ? 1 : count;
    out->shards = xcalloc(out->n, sizeof(*out->shards));
    for (size_t i = 0; i < out->n; i++) {
        out->shards[i].tsid.tenant_id = t->id;
        out->shards[i].tsid.number = (ShardNumber)i;
        out->shards[i].tsid.count = count;
        out->shards[i].node = NODE_ID_NONE;
        out->shards[i].generation = GENERATION_NONE;
    }
}

static void snapshot_set(Service *svc, ServiceShardMapSnapshot *out, ShardNumber number,
                         NodeId node, Generation gen)
{
    if (number >= out->n)
        return;
    ServiceShardLocation *l = &out->shards[number];
    l->node = node;
    l->generation = gen;
    Node *n = node == NODE_ID_NONE ? NULL : node_set_get(&svc->nodes, node);
    if (n != NULL)
        service_node_url(n, l->base_url, sizeof(l->base_url));
}

static bool snapshot_complete(const ServiceShardMapSnapshot *snap, Err *err)
{
    for (size_t i = 0; i < snap->n; i++) {
        if (snap->shards[i].node == NODE_ID_NONE || snap->shards[i].base_url[0] == '\0') {
            char tsid[TSID_STR_SIZE];
            tsid_format(&snap->shards[i].tsid, tsid);
            err_set(err, ERR_UNAVAILABLE, "shard %s is not attached, retry", tsid);
            return false;
        }
    }
    return true;
}

bool service_tenant_snapshot(Service *svc, const TenantId *tenant, ServiceShardMapSnapshot *out,
                             Err *err)
{
    memset(out, 0, sizeof(*out));
    if (!service_check_ready(svc, err))
        return false;
    Tenant *t = service_tenant_or_404(svc, tenant, err);
    if (t == NULL)
        return false;
    ShardCount count = tenant_current_count(t);
    snapshot_init(out, t, count);
    for (size_t i = 0; i < t->n_shards; i++) {
        const TenantShard *s = t->shards[i];
        if (s->tsid.count == count)
            snapshot_set(svc, out, s->tsid.number, s->intent.attached, s->generation);
    }
    if (!snapshot_complete(out, err)) {
        service_snapshot_finish(out);
        return false;
    }
    return true;
}

typedef struct SnapDbOp {
    Service *svc;
    TenantId tenant;
    ServiceSnapshotFn cb;
    void *arg;
} SnapDbOp;

static void on_snapshot_rows(const Err *err, const DbTenantShard *rows, size_t n, void *arg)
{
    SnapDbOp *op = arg;
    Service *svc = op->svc;
    if (err != NULL) {
        op->cb(err, NULL, op->arg);
        free(op);
        return;
    }
    Tenant *t = shard_map_tenant_get(svc->map, &op->tenant);
    Err e;
    err_clear(&e);
    if (t == NULL || n == 0) {
        service_tenant_or_404(svc, &op->tenant, &e);
        if (!err_is_set(&e))
            err_set(&e, ERR_NOT_FOUND, "tenant not found");
        op->cb(&e, NULL, op->arg);
        free(op);
        return;
    }
    ShardCount count = rows[0].tsid.count;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].tsid.count < count)
            count = rows[i].tsid.count;
    }
    ServiceShardMapSnapshot snap;
    snapshot_init(&snap, t, count);
    if (rows[0].stripe_size != 0)
        snap.stripe_size = rows[0].stripe_size;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].tsid.count != count)
            continue;
        snapshot_set(svc, &snap, rows[i].tsid.number,
                     rows[i].generation_pageserver == DB_NODE_ID_NONE
                         ? NODE_ID_NONE
                         : rows[i].generation_pageserver,
                     rows[i].generation);
    }
    if (!snapshot_complete(&snap, &e))
        op->cb(&e, NULL, op->arg);
    else
        op->cb(NULL, &snap, op->arg);
    service_snapshot_finish(&snap);
    free(op);
}

void service_tenant_snapshot_db(Service *svc, const TenantId *tenant, ServiceSnapshotFn cb,
                                void *arg)
{
    SnapDbOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->tenant = *tenant;
    op->cb = cb;
    op->arg = arg;
    db_tenants_get(svc->opts.db, tenant, on_snapshot_rows, op);
}

bool service_snapshot_same_attachment(const ServiceShardMapSnapshot *a,
                                      const ServiceShardMapSnapshot *b)
{
    if (a->n != b->n || a->shard_count != b->shard_count ||
        !tenant_id_eq(&a->tenant_id, &b->tenant_id))
        return false;
    for (size_t i = 0; i < a->n; i++) {
        if (a->shards[i].node != b->shards[i].node ||
            a->shards[i].generation != b->shards[i].generation)
            return false;
    }
    return true;
}
