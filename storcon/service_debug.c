/*
 * service_debug.c: the consistency check (memory vs database vs scheduler counts).
 */
#include "storcon/service_internal.h"

/* ---- consistency check ---- */

typedef struct CheckOp {
    Service *svc;
    ServiceDoneFn cb;
    void *arg;
} CheckOp;

/* same_json_text: two JSON texts equal as values (formatting ignored). */
static bool same_json_text(const char *a, const char *b)
{
    json_t *ja = json_loads(a != NULL ? a : "null", JSON_DECODE_ANY, NULL);
    json_t *jb = json_loads(b != NULL ? b : "null", JSON_DECODE_ANY, NULL);
    bool eq = ja != NULL && jb != NULL && json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return eq;
}

static void on_check_rows(const Err *err, const DbTenantShard *rows, size_t n, void *arg)
{
    CheckOp *op = arg;
    Service *svc = op->svc;
    if (err != NULL) {
        op->cb(err, op->arg);
        free(op);
        return;
    }
    StrBuf msg;
    strbuf_init(&msg);
    size_t problems = 0;
    size_t matched = 0; /* memory shards found in the database */
    for (size_t i = 0; i < n; i++) {
        const DbTenantShard *r = &rows[i];
        char tsid[TSID_STR_SIZE];
        tsid_format(&r->tsid, tsid);
        TenantShard *s = shard_map_get(svc->map, &r->tsid);
        const char *what = NULL;
        PlacementPolicy row_policy;
        Err pe;
        err_clear(&pe);
        if (s == NULL && placement_policy_parse_text(r->placement_policy, &row_policy, &pe) &&
            row_policy.kind == PLACEMENT_DETACHED)
            continue; /* detached tenants are not loaded at startup */
        if (s == NULL) {
            what = "in the database, not in memory";
        } else {
            matched++;
            NodeId gp = r->generation_pageserver == DB_NODE_ID_NONE ? NODE_ID_NONE
                                                                    : r->generation_pageserver;
            char pol[PLACEMENT_POLICY_TEXT_SIZE];
            placement_policy_format_text(tenant_shard_policy(s), pol);
            char sch[SHARD_SCHEDULING_POLICY_TEXT_SIZE];
            shard_scheduling_policy_format_text(tenant_shard_scheduling(s), sch);
            if (s->generation != r->generation)
                what = "generation differs";
            else if (s->generation_pageserver != gp)
                what = "generation_pageserver differs";
            else if (!same_json_text(pol, r->placement_policy))
                what = "placement policy differs";
            else if (!same_json_text(sch, r->scheduling_policy))
                what = "scheduling policy differs";
            else if (!same_json_text(tenant_shard_config_json(s), r->config))
                what = "config differs";
            else if (tenant_shard_stripe_size(s) != r->stripe_size && r->stripe_size != 0)
                what = "stripe size differs";
        }
        if (what != NULL) {
            if (problems < 8) {
                if (s != NULL)
                    strbuf_printf(&msg,
                                  "%s%s: %s (memory gen %lld node %lld, database gen %lld "
                                  "node %lld)",
                                  problems ? "; " : "", tsid, what, (long long)s->generation,
                                  (long long)s->generation_pageserver, (long long)r->generation,
                                  (long long)r->generation_pageserver);
                else
                    strbuf_printf(&msg, "%s%s: %s", problems ? "; " : "", tsid, what);
            }
            problems++;
        }
    }
    if (shard_map_shard_count(svc->map) != matched) {
        strbuf_printf(&msg, "%sshards: %zu in memory, %zu of them in the database",
                      problems ? "; " : "", shard_map_shard_count(svc->map), matched);
        problems++;
    }
    Err e;
    err_clear(&e);
    if (!scheduler_check_consistency(&svc->sched, svc->map, &e)) {
        strbuf_printf(&msg, "%sscheduler: %s", problems ? "; " : "", e.msg);
        problems++;
    }
    if (problems > 0) {
        err_set(&e, ERR_INTERNAL, "consistency check: %zu problems: %s", problems, msg.data);
        op->cb(&e, op->arg);
    } else {
        op->cb(NULL, op->arg);
    }
    strbuf_finish(&msg);
    free(op);
}

void service_consistency_check(Service *svc, ServiceDoneFn cb, void *arg)
{
    Err err;
    err_clear(&err);
    if (!service_check_ready(svc, &err)) {
        service_defer_done(svc, cb, arg, &err);
        return;
    }
    CheckOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->cb = cb;
    op->arg = arg;
    db_tenants_load(svc->opts.db, true, on_check_rows, op);
}

/* ---- inspect and the shard dump ---- */

json_t *service_inspect_json(Service *svc, const TenantShardId *tsid)
{
    const TenantShard *s = shard_map_get(svc->map, tsid);
    json_t *attachment = json_null();
    if (s != NULL && s->intent.attached != NODE_ID_NONE && s->generation != GENERATION_NONE)
        attachment = json_pack("[I, I]", (json_int_t)s->generation, (json_int_t)s->intent.attached);
    return json_must(json_pack("{s:o}", "attachment", json_must(attachment)));
}

json_t *service_shards_dump_json(Service *svc)
{
    json_t *arr = json_array();
    ShardMapIter it;
    shard_map_iter_init(&it, svc->map);
    TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL) {
        json_t *e = tenant_shard_to_json(s);
        json_set_new(e, "generation", json_from_generation(s->generation));
        /* the reconcile's state (the live migration's step), null when none runs */
        json_set_new(e, "reconcile_state",
                     s->reconciler != NULL
                         ? json_string(reconcile_state_name(reconciler_shard_state(s)))
                         : json_null());
        if (s->tenant != NULL)
            json_set_new(e, "policy", placement_policy_to_json(s->tenant->policy));
        json_array_append_new(arr, e);
    }
    return arr;
}
