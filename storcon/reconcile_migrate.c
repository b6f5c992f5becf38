/*
 * reconcile_migrate.c: the live migration steps of the reconciler (sequence in
 * reconcile_migrate.h, reasons in docs/secondaries.md).
 *
 * The planner is pure and runs inside reconcile_plan, after the refresh of unknown observed
 * state; each step's call records its outcome in the shard's observed state (pageserver calls) or
 * in the reconcile's progress (the steps the observed state cannot show) and returns to PLAN.
 */
#include "storcon/reconcile_migrate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "shared/json.h"
#include "shared/log.h"
#include "shared/str.h"
#include "storcon/db_tenants.h"
#include "storcon/defaults.h"
#include "storcon/reconcile_internal.h"

/* ---- planning (pure) ---- */

static bool observed_known(const TenantShard *s, NodeId node, ObservedState *o)
{
    return tenant_shard_observed_get(s, node, o) && o->known;
}

/* pick_origin: the available node other than dest observed attached in the newest generation
 * (a node left half-way by an earlier move, AttachedMulti in a newer generation, wins over the
 * one it was moving from). */
static NodeId pick_origin(const TenantShard *s, const NodeSet *nodes, NodeId dest)
{
    NodeId best = NODE_ID_NONE;
    Generation best_gen = GENERATION_NONE;
    size_t n_obs = tenant_shard_observed_count(s);
    for (size_t i = 0; i < n_obs; i++) {
        NodeId node;
        ObservedState o;
        tenant_shard_observed_at(s, i, &node, &o);
        if (node == dest || !o.known || !shard_location_mode_is_attached(o.mode) ||
            !node_set_is_available(nodes, node))
            continue;
        if (best == NODE_ID_NONE || (o.generation != GENERATION_NONE &&
                                     (best_gen == GENERATION_NONE || o.generation > best_gen))) {
            best = node;
            best_gen = o.generation;
        }
    }
    return best;
}

static bool origin_step(ReconcileActionKind k)
{
    return k == RECONCILE_ACTION_MIGRATE_ORIGIN_STALE ||
           k == RECONCILE_ACTION_MIGRATE_ORIGIN_LSNS ||
           k == RECONCILE_ACTION_MIGRATE_ORIGIN_SECONDARY ||
           k == RECONCILE_ACTION_MIGRATE_ORIGIN_DETACH;
}

bool reconcile_migrate_track(ReconcileProgress *p, const ReconcileAction *a)
{
    NodeId origin = origin_step(a->kind) ? a->node : a->peer;
    NodeId dest = origin_step(a->kind) ? a->peer : a->node;
    bool first = p->mig_origin == NODE_ID_NONE;
    if (!first && (p->mig_origin != origin || p->mig_dest != dest)) {
        p->mig_lsns = p->mig_origin == origin && p->mig_lsns;
        p->mig_warmed = p->mig_dest == dest && p->mig_warmed;
        p->mig_lsn_waited = false;
        p->mig_notified = false;
    }
    p->mig_origin = origin;
    p->mig_dest = dest;
    return first;
}

static bool step(ReconcileAction *out, ReconcileActionKind kind, NodeId node, NodeId peer)
{
    out->kind = kind;
    out->node = node;
    out->peer = peer;
    return true;
}

bool reconcile_migrate_plan(const TenantShard *s, const NodeSet *nodes, const ReconcileProgress *p,
                            ReconcileAction *out)
{
    NodeId d = s->intent.attached;
    if (d == NODE_ID_NONE || !node_set_is_available(nodes, d))
        return false;
    ObservedState od;
    bool has_d = observed_known(s, d, &od);
    bool d_holds = has_d && shard_location_mode_is_attached(od.mode) &&
                   s->generation != GENERATION_NONE && od.generation == s->generation;
    if (d_holds && od.mode == SHARD_LOCATION_ATTACHED_SINGLE)
        return false; /* moved (or never moving): leftovers are the ordinary plan's */
    NodeId o = pick_origin(s, nodes, d);
    if (o == NODE_ID_NONE) {
        /* the origin has let go: the last step, when this reconcile did the others */
        if (d_holds && p->mig_origin != NODE_ID_NONE && p->mig_dest == d)
            return step(out, RECONCILE_ACTION_MIGRATE_CUTOVER, d, p->mig_origin);
        return false; /* nothing attached elsewhere: a cold attach */
    }
    /* the flags of the progress are about the pair recorded there (reconcile_migrate_track) */
    bool same_o = p->mig_origin == o, same_d = p->mig_dest == d;
    ObservedState oo;
    (void)observed_known(s, o, &oo);
    if (oo.mode != SHARD_LOCATION_ATTACHED_STALE)
        return step(out, RECONCILE_ACTION_MIGRATE_ORIGIN_STALE, o, d);
    if (!(same_o && p->mig_lsns))
        return step(out, RECONCILE_ACTION_MIGRATE_ORIGIN_LSNS, o, d);
    if (!d_holds) {
        if (!has_d || od.mode != SHARD_LOCATION_SECONDARY || !od.secondary_warm)
            return step(out, RECONCILE_ACTION_MIGRATE_DEST_SECONDARY, d, o);
        if (!(same_d && p->mig_warmed))
            return step(out, RECONCILE_ACTION_MIGRATE_WARM_UP, d, o);
        bool fresh = p->fresh_node == d && p->fresh_generation == s->generation &&
                     s->generation_pageserver == d && s->generation != GENERATION_NONE;
        if (!fresh)
            return step(out, RECONCILE_ACTION_MIGRATE_BUMP_GENERATION, d, o);
        return step(out, RECONCILE_ACTION_MIGRATE_ATTACH_MULTI, d, o);
    }
    if (!(same_o && same_d && p->mig_lsn_waited))
        return step(out, RECONCILE_ACTION_MIGRATE_WAIT_LSN, d, o);
    if (!(same_o && same_d && p->mig_notified))
        return step(out, RECONCILE_ACTION_MIGRATE_NOTIFY, d, o);
    if (tenant_shard_intent_role(s, o) == INTENT_ROLE_SECONDARY)
        return step(out, RECONCILE_ACTION_MIGRATE_ORIGIN_SECONDARY, o, d);
    return step(out, RECONCILE_ACTION_MIGRATE_ORIGIN_DETACH, o, d);
}

/* ---- the steps ---- */

static size_t max_migrating(const Reconciler *r);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void tsid_str(const Reconcile *rc, char out[TSID_STR_SIZE])
{
    tsid_format(&rc->shard->tsid, out);
}

static void back_to_plan(Reconcile *rc)
{
    reconcile_set_state(rc, RECONCILE_PLAN);
    reconcile_step(rc);
}

static void fail_msg(Reconcile *rc, ErrCode code, const char *msg)
{
    Err err;
    err_set(&err, code, "%s", msg);
    reconcile_fail(rc, reconcile_action_name(rc->action.kind), &err);
}

/* target: a target for the action's node, or false after failing the reconcile. */
static bool target(Reconcile *rc, PageserverTarget *t, char *buf, size_t size)
{
    NodeId node = rc->action.node;
    if (!node_set_is_available(rc->owner->opts.nodes, node)) {
        fail_msg(rc, ERR_UNAVAILABLE, "node is not available");
        return false;
    }
    if (!reconcile_make_target(rc, node, t, buf, size)) {
        fail_msg(rc, ERR_NOT_FOUND, "node is not registered");
        return false;
    }
    return true;
}

static void on_put(const PageserverResult *res, void *arg)
{
    Reconcile *rc = arg;
    if (!reconcile_put_answered(rc, res))
        return;
    TenantShard *s = rc->shard;
    NodeId node = rc->action.node;
    ObservedState o = {.known = true, .generation = GENERATION_NONE};
    switch (rc->action.kind) {
    case RECONCILE_ACTION_MIGRATE_ORIGIN_STALE:
        o.mode = SHARD_LOCATION_ATTACHED_STALE;
        o.generation = rc->mig_origin_gen;
        break;
    case RECONCILE_ACTION_MIGRATE_ATTACH_MULTI:
        o.mode = SHARD_LOCATION_ATTACHED_MULTI;
        o.generation = s->generation;
        break;
    case RECONCILE_ACTION_MIGRATE_CUTOVER: {
        o.mode = SHARD_LOCATION_ATTACHED_SINGLE;
        o.generation = s->generation;
        Reconciler *r = rc->owner;
        if (r->m_mig_done != NULL)
            metric_counter_add(r->m_mig_done, 1);
        char id[TSID_STR_SIZE];
        tsid_str(rc, id);
        log_info("migration %s: node %llu -> %llu done in %lld ms (generation %u)", id,
                 (unsigned long long)rc->action.peer, (unsigned long long)node,
                 (long long)(now_ms() - rc->mig_started_ms), (unsigned)s->generation);
        break;
    }
    case RECONCILE_ACTION_MIGRATE_ORIGIN_DETACH:
        (void)tenant_shard_observed_remove(s, node);
        back_to_plan(rc);
        return;
    case RECONCILE_ACTION_MIGRATE_DEST_SECONDARY:
    case RECONCILE_ACTION_MIGRATE_ORIGIN_SECONDARY:
    default:
        o.mode = SHARD_LOCATION_SECONDARY;
        o.secondary_warm = true;
        break;
    }
    tenant_shard_observed_set(s, node, &o);
    back_to_plan(rc);
}

static void put(Reconcile *rc, ShardLocationMode mode, Generation gen, long flush_ms)
{
    PageserverTarget t;
    char url[HOST_MAX + 32];
    if (!target(rc, &t, url, sizeof(url)))
        return;
    json_t *conf = reconcile_location_config_json(rc->shard, mode, gen);
    tenant_shard_observed_set_unknown(rc->shard, rc->action.node);
    rc->call = pageserver_client_location_config_put(rc->owner->opts.pc, &t, &rc->shard->tsid, conf,
                                                     flush_ms, false, on_put, rc);
    json_decref(conf);
}

/* 1: the origin keeps serving reads in its own generation but stops deleting (the destination
 * will read its layers), and uploads its heatmap now so the destination downloads what is hot. */
static void run_origin_stale(Reconcile *rc)
{
    ObservedState o;
    Generation gen = GENERATION_NONE;
    if (tenant_shard_observed_get(rc->shard, rc->action.node, &o) && o.known)
        gen = o.generation;
    rc->mig_origin_gen = gen;
    put(rc, SHARD_LOCATION_ATTACHED_STALE, gen, STORCON_MIGRATE_FLUSH_MS);
}

/* 2: the LSNs the destination must reach before compute is sent there. */
static void on_timelines(const PageserverResult *res, void *arg)
{
    Reconcile *rc = arg;
    rc->call = NULL;
    if (!res->ok || res->status != 200) {
        Err err = res->err;
        if (res->ok)
            err = pageserver_client_translate_error(res->status, NULL);
        reconcile_fail(rc, reconcile_action_name(rc->action.kind), &err);
        return;
    }
    json_t *arr = json_loadb(res->passthrough.body, res->passthrough.body_len, 0, NULL);
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    free(rc->mig_lsns);
    rc->mig_lsns = n > 0 ? xcalloc(n, sizeof(*rc->mig_lsns)) : NULL;
    rc->mig_n_lsns = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *tl = json_array_get(arr, i);
        PageserverTimelineLsn *l = &rc->mig_lsns[rc->mig_n_lsns];
        Err err;
        err_clear(&err);
        bool present = false;
        if (json_get_timeline_id(tl, "timeline_id", &l->timeline_id, true, &present, &err) &&
            json_get_lsn(tl, "last_record_lsn", &l->lsn, true, &present, &err))
            rc->mig_n_lsns++;
    }
    json_decref(arr);
    rc->progress.mig_lsns = true;
    back_to_plan(rc);
}

static void run_origin_lsns(Reconcile *rc)
{
    PageserverTarget t;
    char url[HOST_MAX + 32];
    if (!target(rc, &t, url, sizeof(url)))
        return;
    char id[TSID_STR_SIZE], path[96];
    tsid_str(rc, id);
    (void)str_printf(path, sizeof(path), "/v1/tenant/%s/timeline", id);
    rc->call = pageserver_client_get(rc->owner->opts.pc, &t, path, on_timelines, rc);
}

/* 3: the destination follows the origin's heatmap. */
static void run_dest_secondary(Reconcile *rc)
{
    put(rc, SHARD_LOCATION_SECONDARY, GENERATION_NONE, 0);
}

/* 4: download what the heatmap lists, bounded: past the deadline the cut-over is cold (the
 * destination downloads on demand), never blocked by a slow download. */
static void start_download(Reconcile *rc);

static void warm_done(Reconcile *rc, bool cold, const char *why)
{
    if (cold) {
        char id[TSID_STR_SIZE];
        tsid_str(rc, id);
        log_warn("migration %s: warm-up of node %llu %s: the cut-over is cold", id,
                 (unsigned long long)rc->action.node, why);
        if (rc->owner->m_mig_cold != NULL)
            metric_counter_add(rc->owner->m_mig_cold, 1);
    }
    rc->progress.mig_warmed = true;
    rc->mig_warm_deadline_ms = 0;
    back_to_plan(rc);
}

static void on_download(const PageserverResult *res, void *arg)
{
    Reconcile *rc = arg;
    rc->call = NULL;
    if (!res->ok) {
        warm_done(rc, true, res->err.msg);
        return;
    }
    if (res->secondary_download.complete) {
        warm_done(rc, false, NULL);
        return;
    }
    if (now_ms() >= rc->mig_warm_deadline_ms) {
        warm_done(rc, true, "timed out");
        return;
    }
    start_download(rc);
}

static void start_download(Reconcile *rc)
{
    PageserverTarget t;
    char url[HOST_MAX + 32];
    if (!target(rc, &t, url, sizeof(url)))
        return;
    long left = (long)(rc->mig_warm_deadline_ms - now_ms());
    long wait = left < STORCON_MIGRATE_WARMUP_POLL_MS ? left : STORCON_MIGRATE_WARMUP_POLL_MS;
    if (wait < 1)
        wait = 1;
    t.timeout_ms = wait + STORCON_RECONCILE_CALL_TIMEOUT_MS;
    t.retry.max_attempts = 1;
    rc->call = pageserver_client_secondary_download(rc->owner->opts.pc, &t, &rc->shard->tsid, wait,
                                                    on_download, rc);
}

void reconcile_migrate_set_warmup(TenantShard *shard, long ms)
{
    Reconcile *rc = shard->reconciler;
    if (rc != NULL) {
        rc->mig_warmup_set = true;
        rc->mig_warmup_ms = ms;
    }
}

static void run_warm_up(Reconcile *rc)
{
    rc->mig_warm_deadline_ms =
        now_ms() + (rc->mig_warmup_set ? rc->mig_warmup_ms : STORCON_MIGRATE_WARMUP_TIMEOUT_MS);
    start_download(rc);
}

/* 5: the destination's generation, in the database before any pageserver sees it. */
static void on_generation(const Err *err, Generation gen, void *arg)
{
    Reconcile *rc = arg;
    if (reconcile_take_generation(rc, err, gen))
        back_to_plan(rc);
}

static void run_bump_generation(Reconcile *rc)
{
    db_tenants_increment_generation(rc->owner->opts.db, &rc->shard->tsid, rc->action.node,
                                    on_generation, rc);
}

/* 6: both locations attached: the origin (stale) still serves, the destination starts ingesting
 * and uploading in the newer generation; neither deletes. */
static void run_attach_multi(Reconcile *rc)
{
    put(rc, SHARD_LOCATION_ATTACHED_MULTI, rc->shard->generation, 0);
}

/* 7: compute must not be sent to a destination behind the origin. */
static void start_wait_lsn(Reconcile *rc);

static void wait_lsn_again(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start_wait_lsn(arg);
}

static void on_wait_lsn(const PageserverResult *res, void *arg)
{
    Reconcile *rc = arg;
    rc->call = NULL;
    if (!res->ok && res->status != 0 && now_ms() < rc->mig_warm_deadline_ms) {
        /* a destination still loading the timeline answers 404: ask again until the bound */
        struct timeval tv = {.tv_sec = 0, .tv_usec = STORCON_MIGRATE_RETRY_MS * 1000};
        if (event_base_once(rc->owner->opts.base, -1, EV_TIMEOUT, wait_lsn_again, rc, &tv) == 0)
            return;
    }
    rc->mig_warm_deadline_ms = 0;
    if (!res->ok || !res->wait_lsn.reached) {
        char id[TSID_STR_SIZE];
        tsid_str(rc, id);
        log_warn("migration %s: node %llu did not reach the origin's LSNs (%s): going on", id,
                 (unsigned long long)rc->action.node, res->ok ? "timed out" : res->err.msg);
    }
    rc->progress.mig_lsn_waited = true;
    back_to_plan(rc);
}

static void run_wait_lsn(Reconcile *rc)
{
    if (rc->mig_n_lsns == 0) {
        rc->progress.mig_lsn_waited = true;
        back_to_plan(rc);
        return;
    }
    rc->mig_warm_deadline_ms = now_ms() + STORCON_MIGRATE_WAIT_LSN_MS;
    start_wait_lsn(rc);
}

static void start_wait_lsn(Reconcile *rc)
{
    PageserverTarget t;
    char url[HOST_MAX + 32];
    if (!target(rc, &t, url, sizeof(url)))
        return;
    long left = (long)(rc->mig_warm_deadline_ms - now_ms());
    if (left < 1)
        left = 1;
    t.timeout_ms = left + STORCON_RECONCILE_CALL_TIMEOUT_MS;
    rc->call = pageserver_client_wait_lsn(rc->owner->opts.pc, &t, &rc->shard->tsid, rc->mig_lsns,
                                          rc->mig_n_lsns, left, on_wait_lsn, rc);
}

/* 8: the whole tenant's map, with this shard on the destination, to the compute hook; the
 * origin keeps serving until the control plane has it. A map superseded before it was sent (other
 * shards of the tenant moving at the same time) or not ready (another shard's location is being
 * written) is asked for again after STORCON_MIGRATE_RETRY_MS, at most
 * STORCON_MIGRATE_NOTIFY_TRIES times; a failed notification does not hold the migration (the
 * tenant stays pending and the background pass retries it). */
static void run_notify(Reconcile *rc);

static void notify_again(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_notify(arg);
}

static void on_notified(void *arg, ReconcileNotifyResult res, const char *msg)
{
    Reconcile *rc = arg;
    if (res == RECONCILE_NOTIFY_RETRY && ++rc->mig_notify_tries < STORCON_MIGRATE_NOTIFY_TRIES) {
        struct timeval tv = {.tv_sec = 0, .tv_usec = STORCON_MIGRATE_RETRY_MS * 1000};
        if (event_base_once(rc->owner->opts.base, -1, EV_TIMEOUT, notify_again, rc, &tv) == 0)
            return;
    }
    if (res != RECONCILE_NOTIFY_ACCEPTED) {
        char id[TSID_STR_SIZE];
        tsid_str(rc, id);
        log_warn("migration %s: compute notification %s: going on", id, msg);
    }
    rc->progress.mig_notified = true;
    back_to_plan(rc);
}

static void run_notify(Reconcile *rc)
{
    Reconciler *r = rc->owner;
    tenant_shard_set_pending_notify(rc->shard, true);
    if (r->opts.hooks.notify_wait != NULL) {
        r->opts.hooks.notify_wait(r->opts.hooks.host, rc->shard, on_notified, rc);
        return;
    }
    if (r->opts.hooks.notify != NULL)
        r->opts.hooks.notify(r->opts.hooks.host, rc->shard);
    rc->progress.mig_notified = true;
    back_to_plan(rc);
}

/* 9: the origin keeps its layers as the new secondary (a move back is warm), or goes. */
static void run_origin_secondary(Reconcile *rc)
{
    if (rc->action.kind == RECONCILE_ACTION_MIGRATE_ORIGIN_DETACH)
        put(rc, SHARD_LOCATION_DETACHED, GENERATION_NONE, 0);
    else
        put(rc, SHARD_LOCATION_SECONDARY, GENERATION_NONE, 0);
}

/* 10: the destination alone: deletions allowed again. */
static void run_cutover(Reconcile *rc)
{
    put(rc, SHARD_LOCATION_ATTACHED_SINGLE, rc->shard->generation, 0);
}

typedef struct MigrateStep {
    ReconcileState state;
    const char *failpoint;
    void (*run)(Reconcile *rc);
} MigrateStep;

static const MigrateStep STEPS[] = {
    [RECONCILE_ACTION_MIGRATE_ORIGIN_STALE -
     RECONCILE_ACTION_MIGRATE_ORIGIN_STALE] = {RECONCILE_MIGRATE_ORIGIN_STALE,
                                               MIGRATE_FAILPOINT_ORIGIN_STALE, run_origin_stale},
    [RECONCILE_ACTION_MIGRATE_ORIGIN_LSNS -
        RECONCILE_ACTION_MIGRATE_ORIGIN_STALE] = {RECONCILE_MIGRATE_ORIGIN_LSNS,
                                                  MIGRATE_FAILPOINT_ORIGIN_LSNS, run_origin_lsns},
    [RECONCILE_ACTION_MIGRATE_DEST_SECONDARY -
        RECONCILE_ACTION_MIGRATE_ORIGIN_STALE] = {RECONCILE_MIGRATE_DEST_SECONDARY,
                                                  MIGRATE_FAILPOINT_DEST_SECONDARY,
                                                  run_dest_secondary},
    [RECONCILE_ACTION_MIGRATE_WARM_UP -
        RECONCILE_ACTION_MIGRATE_ORIGIN_STALE] = {RECONCILE_MIGRATE_WARM_UP,
                                                  MIGRATE_FAILPOINT_WARM_UP, run_warm_up},
    [RECONCILE_ACTION_MIGRATE_BUMP_GENERATION -
        RECONCILE_ACTION_MIGRATE_ORIGIN_STALE] = {RECONCILE_MIGRATE_BUMP_GENERATION,
                                                  MIGRATE_FAILPOINT_BUMP_GENERATION,
                                                  run_bump_generation},
    [RECONCILE_ACTION_MIGRATE_ATTACH_MULTI -
        RECONCILE_ACTION_MIGRATE_ORIGIN_STALE] = {RECONCILE_MIGRATE_ATTACH_MULTI,
                                                  MIGRATE_FAILPOINT_ATTACH_MULTI, run_attach_multi},
    [RECONCILE_ACTION_MIGRATE_WAIT_LSN -
        RECONCILE_ACTION_MIGRATE_ORIGIN_STALE] = {RECONCILE_MIGRATE_WAIT_LSN,
                                                  MIGRATE_FAILPOINT_WAIT_LSN, run_wait_lsn},
    [RECONCILE_ACTION_MIGRATE_NOTIFY -
        RECONCILE_ACTION_MIGRATE_ORIGIN_STALE] = {RECONCILE_MIGRATE_NOTIFY,
                                                  MIGRATE_FAILPOINT_NOTIFY, run_notify},
    [RECONCILE_ACTION_MIGRATE_ORIGIN_SECONDARY -
        RECONCILE_ACTION_MIGRATE_ORIGIN_STALE] = {RECONCILE_MIGRATE_ORIGIN_SECONDARY,
                                                  MIGRATE_FAILPOINT_ORIGIN_SECONDARY,
                                                  run_origin_secondary},
    [RECONCILE_ACTION_MIGRATE_ORIGIN_DETACH -
        RECONCILE_ACTION_MIGRATE_ORIGIN_STALE] = {RECONCILE_MIGRATE_ORIGIN_SECONDARY,
                                                  MIGRATE_FAILPOINT_ORIGIN_SECONDARY,
                                                  run_origin_secondary},
    [RECONCILE_ACTION_MIGRATE_CUTOVER -
        RECONCILE_ACTION_MIGRATE_ORIGIN_STALE] = {RECONCILE_MIGRATE_CUTOVER,
                                                  MIGRATE_FAILPOINT_CUTOVER, run_cutover},
};

void reconcile_migrate_start(Reconcile *rc)
{
    Reconciler *r = rc->owner;
    const MigrateStep *st = &STEPS[rc->action.kind - RECONCILE_ACTION_MIGRATE_ORIGIN_STALE];
    if (rc->progress.mig_origin == NODE_ID_NONE && r->migrating >= max_migrating(r)) {
        /* lower priority than ordinary reconciles: give the running slot back and wait */
        reconcile_set_state(rc, RECONCILE_MIGRATE_PARKED);
        reconcile_running_remove(r, rc);
        rc->next = NULL;
        if (r->parked_tail != NULL)
            r->parked_tail->next = rc;
        else
            r->parked_head = rc;
        r->parked_tail = rc;
        r->parked++;
        if (r->m_mig_parked != NULL)
            metric_gauge_set(r->m_mig_parked, (double)r->parked);
        reconcile_kick(r);
        return;
    }
    if (reconcile_migrate_track(&rc->progress, &rc->action)) {
        NodeId origin = rc->progress.mig_origin, dest = rc->progress.mig_dest;
        rc->mig_started_ms = now_ms();
        r->migrating++;
        if (r->m_mig_started != NULL)
            metric_counter_add(r->m_mig_started, 1);
        if (r->m_mig_running != NULL)
            metric_gauge_set(r->m_mig_running, (double)r->migrating);
        char id[TSID_STR_SIZE];
        tsid_str(rc, id);
        log_info("migration %s: live from node %llu to node %llu (generation %u), first step %s",
                 id, (unsigned long long)origin, (unsigned long long)dest,
                 (unsigned)rc->shard->generation, reconcile_action_name(rc->action.kind));
    }
    reconcile_set_state(rc, st->state);
    if (reconcile_failpoint_gate(rc, st->failpoint, st->run))
        st->run(rc);
}

static size_t max_migrating(const Reconciler *r)
{
    size_t half = r->opts.max_concurrent / 2;
    size_t m = STORCON_MIGRATE_MAX_CONCURRENT < half ? STORCON_MIGRATE_MAX_CONCURRENT : half;
    return m > 0 ? m : 1;
}

void reconcile_migrate_resume(Reconciler *r)
{
    while (!r->stopped && r->parked_head != NULL && r->migrating < max_migrating(r)) {
        Reconcile *rc = r->parked_head;
        r->parked_head = rc->next;
        if (r->parked_head == NULL)
            r->parked_tail = NULL;
        r->parked--;
        rc->next = NULL;
        reconcile_running_add(r, rc);
        if (r->m_mig_parked != NULL)
            metric_gauge_set(r->m_mig_parked, (double)r->parked);
        reconcile_set_state(rc, RECONCILE_PLAN);
        /* counted now, so that the next parked one sees the slot taken */
        reconcile_step(rc);
    }
}

void reconcile_migrate_free_parked(Reconciler *r)
{
    while (r->parked_head != NULL) {
        Reconcile *rc = r->parked_head;
        r->parked_head = rc->next;
        rc->shard->reconciler = NULL;
        reconcile_migrate_end(rc, false);
        free(rc);
    }
    r->parked_tail = NULL;
    r->parked = 0;
}

void reconcile_migrate_end(Reconcile *rc, bool ok)
{
    (void)ok;
    free(rc->mig_lsns);
    rc->mig_lsns = NULL;
    rc->mig_n_lsns = 0;
    if (rc->progress.mig_origin != NODE_ID_NONE) {
        Reconciler *r = rc->owner;
        rc->progress.mig_origin = NODE_ID_NONE;
        if (r->migrating > 0)
            r->migrating--;
        if (r->m_mig_running != NULL)
            metric_gauge_set(r->m_mig_running, (double)r->migrating);
    }
}

void reconcile_migrate_metrics(Reconciler *r, MetricsRegistry *metrics)
{
    r->m_mig_started = metrics_counter(metrics, "storcon_migrations_started_total",
                                       "Live migrations started (first step taken)", NULL);
    r->m_mig_done = metrics_counter(metrics, "storcon_migrations_completed_total",
                                    "Live migrations that reached the cut-over", NULL);
    r->m_mig_cold = metrics_counter(metrics, "storcon_migrations_cold_total",
                                    "Live migrations whose destination was not warm in time", NULL);
    r->m_mig_running = metrics_gauge(metrics, "storcon_migrations_running",
                                     "Reconciles in the middle of a live migration", NULL);
    r->m_mig_parked = metrics_gauge(metrics, "storcon_migrations_parked",
                                    "Migrations waiting for a migration slot", NULL);
}
