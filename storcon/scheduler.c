/*
 * scheduler.c: node choice by lexicographic score, intent changes with node reference counts,
 * per-tenant affinity contexts, and the consistency check of those counts.
 *
 * All intent writes go through the raw_* helpers at the top, which are the only places that
 * touch Node.shard_count / Node.attached_count. Node.attached_reserved (the attached locations
 * picked for tenants whose rows are being inserted) is touched only by
 * scheduler_reserve_new_tenant / scheduler_release_reserved.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/str.h"

#include "storcon/scheduler.h"

static const char NO_SCHEDULABLE_NODES[] = "no schedulable nodes";

void scheduler_init(Scheduler *sched, NodeSet *nodes)
{
    sched->nodes = nodes;
}

/* ---- reference-counted intent primitives (no sequence bump, no checks) ---- */

static void ref_node(Scheduler *sched, NodeId id, int shards, int attached)
{
    Node *n = node_set_get(sched->nodes, id);
    if (n == NULL)
        return; /* cannot happen for intents made here: nodes with references are not removable */
    n->shard_count = (uint32_t)((int64_t)n->shard_count + shards);
    n->attached_count = (uint32_t)((int64_t)n->attached_count + attached);
}

static void raw_set_attached(Scheduler *sched, TenantShard *s, NodeId id)
{
    ref_node(sched, id, 1, 1);
    s->intent.attached = id;
}

static void raw_drop_attached(Scheduler *sched, TenantShard *s)
{
    if (s->intent.attached == NODE_ID_NONE)
        return;
    ref_node(sched, s->intent.attached, -1, -1);
    s->intent.attached = NODE_ID_NONE;
}

static void raw_add_secondary(Scheduler *sched, TenantShard *s, NodeId id)
{
    ref_node(sched, id, 1, 0);
    s->intent.secondaries[s->intent.n_secondaries++] = id;
}

/* raw_remove_secondary_at: remove secondaries[i], keeping the order of the others. */
static NodeId raw_remove_secondary_at(TenantShard *s, unsigned i)
{
    NodeId id = s->intent.secondaries[i];
    memmove(&s->intent.secondaries[i], &s->intent.secondaries[i + 1],
            (s->intent.n_secondaries - i - 1) * sizeof(NodeId));
    s->intent.n_secondaries--;
    return id;
}

static void raw_drop_secondary_at(Scheduler *sched, TenantShard *s, unsigned i)
{
    NodeId id = raw_remove_secondary_at(s, i);
    ref_node(sched, id, -1, 0);
}

/* raw_promote_secondary_at: secondaries[i] becomes the attached location (none before). */
static void raw_promote_secondary_at(Scheduler *sched, TenantShard *s, unsigned i)
{
    NodeId id = raw_remove_secondary_at(s, i);
    ref_node(sched, id, 0, 1);
    s->intent.attached = id;
}

/* raw_demote_attached: the attached location becomes a secondary (room checked by the caller). */
static void raw_demote_attached(Scheduler *sched, TenantShard *s)
{
    NodeId id = s->intent.attached;
    ref_node(sched, id, 0, -1);
    s->intent.attached = NODE_ID_NONE;
    s->intent.secondaries[s->intent.n_secondaries++] = id;
}

static int secondary_index(const TenantShard *s, NodeId id)
{
    for (unsigned i = 0; i < s->intent.n_secondaries; i++) {
        if (s->intent.secondaries[i] == id)
            return (int)i;
    }
    return -1;
}

/* ---- explicit intent changes ---- */

bool scheduler_intent_set_attached(Scheduler *sched, TenantShard *shard, NodeId node, Err *err)
{
    if (node == shard->intent.attached)
        return true;
    if (node == NODE_ID_NONE) {
        raw_drop_attached(sched, shard);
        shard->sequence++;
        return true;
    }
    if (node_set_get(sched->nodes, node) == NULL) {
        err_set(err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)node);
        return false;
    }
    raw_drop_attached(sched, shard);
    int i = secondary_index(shard, node);
    if (i >= 0)
        raw_promote_secondary_at(sched, shard, (unsigned)i);
    else
        raw_set_attached(sched, shard, node);
    shard->sequence++;
    return true;
}

bool scheduler_intent_add_secondary(Scheduler *sched, TenantShard *shard, NodeId node, Err *err)
{
    if (node == NODE_ID_NONE || node_set_get(sched->nodes, node) == NULL) {
        err_set(err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)node);
        return false;
    }
    if (tenant_shard_intent_role(shard, node) != INTENT_ROLE_NONE) {
        err_set(err, ERR_CONFLICT, "the shard already has a location on node %llu",
                (unsigned long long)node);
        return false;
    }
    if (shard->intent.n_secondaries >= TENANT_SHARD_MAX_SECONDARIES) {
        err_set(err, ERR_CONFLICT, "the shard already has %d secondaries",
                TENANT_SHARD_MAX_SECONDARIES);
        return false;
    }
    raw_add_secondary(sched, shard, node);
    shard->sequence++;
    return true;
}

bool scheduler_intent_demote_attached(Scheduler *sched, TenantShard *shard)
{
    if (shard->intent.attached == NODE_ID_NONE ||
        shard->intent.n_secondaries >= TENANT_SHARD_MAX_SECONDARIES)
        return false;
    raw_demote_attached(sched, shard);
    shard->sequence++;
    return true;
}

bool scheduler_intent_remove_node(Scheduler *sched, TenantShard *shard, NodeId node)
{
    if (node == NODE_ID_NONE)
        return false;
    if (shard->intent.attached == node) {
        raw_drop_attached(sched, shard);
        shard->sequence++;
        return true;
    }
    int i = secondary_index(shard, node);
    if (i < 0)
        return false;
    raw_drop_secondary_at(sched, shard, (unsigned)i);
    shard->sequence++;
    return true;
}

void scheduler_intent_clear(Scheduler *sched, TenantShard *shard)
{
    if (tenant_shard_intent_is_empty(shard))
        return;
    raw_drop_attached(sched, shard);
    while (shard->intent.n_secondaries > 0)
        raw_drop_secondary_at(sched, shard, shard->intent.n_secondaries - 1u);
    shard->sequence++;
}

/* ---- schedule context ---- */

void schedule_context_init(ScheduleContext *ctx)
{
    ctx->entries = NULL;
    ctx->n = 0;
    ctx->cap = 0;
}

void schedule_context_finish(ScheduleContext *ctx)
{
    free(ctx->entries);
    schedule_context_init(ctx);
}

static ScheduleAffinity *ctx_find(const ScheduleContext *ctx, NodeId node)
{
    for (size_t i = 0; i < ctx->n; i++) {
        if (ctx->entries[i].node == node)
            return &ctx->entries[i];
    }
    return NULL;
}

/* ctx_adjust: add delta (+1/-1) to node's counts, saturating at 0 (a context not filled with
 * the shard before it was scheduled must not wrap around). */
static void ctx_adjust(ScheduleContext *ctx, NodeId node, bool attached, int delta)
{
    ScheduleAffinity *e = ctx_find(ctx, node);
    if (e == NULL) {
        if (delta < 0)
            return;
        if (ctx->n == ctx->cap) {
            ctx->cap = ctx->cap == 0 ? 8 : ctx->cap * 2;
            ctx->entries = xrealloc(ctx->entries, ctx->cap * sizeof(*ctx->entries));
        }
        e = &ctx->entries[ctx->n++];
        e->node = node;
        e->locations = 0;
        e->attached = 0;
    }
    if (delta > 0) {
        e->locations++;
        if (attached)
            e->attached++;
    } else {
        if (e->locations > 0)
            e->locations--;
        if (attached && e->attached > 0)
            e->attached--;
    }
}

static void ctx_apply_intent(ScheduleContext *ctx, const ShardIntent *in, int delta)
{
    if (in->attached != NODE_ID_NONE)
        ctx_adjust(ctx, in->attached, true, delta);
    for (unsigned i = 0; i < in->n_secondaries; i++)
        ctx_adjust(ctx, in->secondaries[i], false, delta);
}

void schedule_context_add_shard(ScheduleContext *ctx, const TenantShard *shard)
{
    ctx_apply_intent(ctx, &shard->intent, +1);
}

uint32_t schedule_context_locations(const ScheduleContext *ctx, NodeId node)
{
    const ScheduleAffinity *e = ctx_find(ctx, node);
    return e != NULL ? e->locations : 0;
}

uint32_t schedule_context_attached(const ScheduleContext *ctx, NodeId node)
{
    const ScheduleAffinity *e = ctx_find(ctx, node);
    return e != NULL ? e->attached : 0;
}

/* ---- scoring ---- */

typedef struct Score {
    unsigned az;       /* 0 preferred */
    uint32_t affinity; /* tenant locations on the node */
    uint64_t utilization;
    uint32_t load; /* attached count (attached) or shard count (secondary) */
    NodeId id;
} Score;

static int score_cmp(const Score *a, const Score *b)
{
    if (a->az != b->az)
        return a->az < b->az ? -1 : 1;
    if (a->affinity != b->affinity)
        return a->affinity < b->affinity ? -1 : 1;
    if (a->utilization != b->utilization)
        return a->utilization < b->utilization ? -1 : 1;
    if (a->load != b->load)
        return a->load < b->load ? -1 : 1;
    if (a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return 0;
}

/* preferred_az_key: 0 when the node is in the preferred AZ (pref) or there is no preference. */
static unsigned preferred_az_key(const char *pref, const Node *n)
{
    return (pref[0] != '\0' && strcmp(pref, n->az) != 0) ? 1u : 0u;
}

/* score_attached: the node as an attached location for a shard of a tenant preferring AZ pref. The
 * load counts the attached locations reserved for tenants being created, so that the creates of
 * one moment spread like the shards of one tenant. */
static void score_attached(const char *pref, const Node *n, const ScheduleContext *ctx, Score *out)
{
    out->az = preferred_az_key(pref, n);
    out->affinity = ctx != NULL ? schedule_context_locations(ctx, n->id) : 0;
    out->utilization = node_utilization_score(n);
    out->load = n->attached_count + n->attached_reserved;
    out->id = n->id;
}

static void score_secondary(const Scheduler *sched, const TenantShard *s, const Node *n,
                            const ScheduleContext *ctx, Score *out)
{
    const Node *att =
        s->intent.attached != NODE_ID_NONE ? node_set_get(sched->nodes, s->intent.attached) : NULL;
    if (att != NULL)
        out->az = strcmp(att->az, n->az) == 0 ? 1u : 0u;
    else
        out->az = preferred_az_key(tenant_shard_preferred_az(s), n);
    out->affinity = ctx != NULL ? schedule_context_locations(ctx, n->id) : 0;
    out->utilization = node_utilization_score(n);
    out->load = n->shard_count;
    out->id = n->id;
}

/* pick_node: the best schedulable node the shard does not use yet, or NULL. s NULL: a shard not
 * created yet (no intent, no secondary scoring), of a tenant preferring AZ pref; otherwise pref is
 * ignored and the shard's tenant's preference counts. */
static Node *pick_node(const Scheduler *sched, const TenantShard *s, const char *pref,
                       const ScheduleContext *ctx, bool attached)
{
    Node *best = NULL;
    Score best_score = {0};
    if (s != NULL)
        pref = tenant_shard_preferred_az(s);
    for (size_t i = 0; i < node_set_count(sched->nodes); i++) {
        Node *n = node_set_at(sched->nodes, i);
        if (!node_is_schedulable(n) ||
            (s != NULL && tenant_shard_intent_role(s, n->id) != INTENT_ROLE_NONE))
            continue;
        Score sc;
        if (attached || s == NULL)
            score_attached(pref, n, ctx, &sc);
        else
            score_secondary(sched, s, n, ctx, &sc);
        if (best == NULL || score_cmp(&sc, &best_score) < 0) {
            best = n;
            best_score = sc;
        }
    }
    return best;
}

/* best_promotable_secondary: index of the secondary on a schedulable node that scores best as an
 * attached location, or -1. */
static int best_promotable_secondary(const Scheduler *sched, const TenantShard *s,
                                     const ScheduleContext *ctx)
{
    int best = -1;
    Score best_score = {0};
    for (unsigned i = 0; i < s->intent.n_secondaries; i++) {
        const Node *n = node_set_get(sched->nodes, s->intent.secondaries[i]);
        if (n == NULL || !node_is_schedulable(n))
            continue;
        Score sc;
        score_attached(tenant_shard_preferred_az(s), n, ctx, &sc);
        if (best < 0 || score_cmp(&sc, &best_score) < 0) {
            best = (int)i;
            best_score = sc;
        }
    }
    return best;
}

NodeId scheduler_pick_attached(const Scheduler *sched, const TenantShard *shard,
                               const ScheduleContext *ctx)
{
    const Node *n = pick_node(sched, shard, NULL, ctx, true);
    return n != NULL ? n->id : NODE_ID_NONE;
}

bool scheduler_reserve_new_tenant(Scheduler *sched, const char *preferred_az, size_t n_shards,
                                  NodeId *out)
{
    ScheduleContext ctx;
    schedule_context_init(&ctx);
    size_t i = 0;
    for (; i < n_shards; i++) {
        Node *n = pick_node(sched, NULL, preferred_az != NULL ? preferred_az : "", &ctx, true);
        if (n == NULL)
            break;
        ShardIntent in = {.attached = n->id};
        ctx_apply_intent(&ctx, &in, +1);
        n->attached_reserved++;
        out[i] = n->id;
    }
    schedule_context_finish(&ctx);
    if (i == n_shards)
        return true;
    scheduler_release_reserved(sched, out, i);
    return false;
}

void scheduler_release_reserved(Scheduler *sched, const NodeId *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        Node *node = node_set_get(sched->nodes, nodes[i]);
        if (node != NULL && node->attached_reserved > 0)
            node->attached_reserved--;
    }
}

NodeId scheduler_pick_promotable_secondary(const Scheduler *sched, const TenantShard *shard,
                                           const ScheduleContext *ctx)
{
    int i = best_promotable_secondary(sched, shard, ctx);
    return i >= 0 ? shard->intent.secondaries[i] : NODE_ID_NONE;
}

/* node_gone: unregistered or deleted: nothing may stay there. */
static bool node_gone(const Node *n)
{
    return n == NULL || n->lifecycle == NODE_LIFECYCLE_DELETED;
}

/* attached_keepable: an attached location stays while its node is registered, not deleted and
 * not Offline. */
static bool attached_keepable(const Scheduler *sched, NodeId id)
{
    const Node *n = node_set_get(sched->nodes, id);
    return !node_gone(n) && node_is_available(n);
}

/* drop_gone_secondaries: secondaries on unregistered or deleted nodes. */
static void drop_gone_secondaries(Scheduler *sched, TenantShard *s)
{
    for (unsigned i = s->intent.n_secondaries; i-- > 0;) {
        if (node_gone(node_set_get(sched->nodes, s->intent.secondaries[i])))
            raw_drop_secondary_at(sched, s, i);
    }
}

/* trim_secondaries: drop secondaries until `keep` remain, unschedulable nodes first, then the
 * most recently added. */
static void trim_secondaries(Scheduler *sched, TenantShard *s, unsigned keep)
{
    while (s->intent.n_secondaries > keep) {
        unsigned victim = s->intent.n_secondaries - 1u;
        for (unsigned i = s->intent.n_secondaries; i-- > 0;) {
            const Node *n = node_set_get(sched->nodes, s->intent.secondaries[i]);
            if (n == NULL || !node_is_schedulable(n)) {
                victim = i;
                break;
            }
        }
        raw_drop_secondary_at(sched, s, victim);
    }
}

/* fill_secondaries: add secondaries until `want`; false when no node was left for one. */
static bool fill_secondaries(Scheduler *sched, TenantShard *s, const ScheduleContext *ctx,
                             unsigned want)
{
    while (s->intent.n_secondaries < want) {
        Node *n = pick_node(sched, s, NULL, ctx, false);
        if (n == NULL)
            return false;
        raw_add_secondary(sched, s, n->id);
    }
    return true;
}

/* ensure_attached: an attached location on a keepable node: keep, promote or pick; false when
 * none could be found (the old attached location then stays). */
static bool ensure_attached(Scheduler *sched, TenantShard *s, const ScheduleContext *ctx)
{
    if (s->intent.attached != NODE_ID_NONE && attached_keepable(sched, s->intent.attached))
        return true;
    int sec = best_promotable_secondary(sched, s, ctx);
    if (sec >= 0) {
        raw_drop_attached(sched, s);
        raw_promote_secondary_at(sched, s, (unsigned)sec);
        return true;
    }
    Node *n = pick_node(sched, s, NULL, ctx, true);
    if (n == NULL)
        return false;
    raw_drop_attached(sched, s);
    raw_set_attached(sched, s, n->id);
    return true;
}

static bool intent_eq(const ShardIntent *a, const ShardIntent *b)
{
    if (a->attached != b->attached || a->n_secondaries != b->n_secondaries)
        return false;
    for (unsigned i = 0; i < a->n_secondaries; i++) {
        if (a->secondaries[i] != b->secondaries[i])
            return false;
    }
    return true;
}

bool scheduler_schedule_shard(Scheduler *sched, TenantShard *shard, ScheduleContext *ctx,
                              bool *changed, Err *err)
{
    if (changed != NULL)
        *changed = false;
    if (!tenant_shard_may_schedule(shard))
        return true;

    ShardIntent before = shard->intent;
    PlacementPolicy policy = tenant_shard_policy(shard);
    bool ok = true;

    switch (policy.kind) {
    case PLACEMENT_ATTACHED:
        drop_gone_secondaries(sched, shard);
        if (!ensure_attached(sched, shard, ctx))
            ok = false;
        trim_secondaries(sched, shard, policy.secondaries);
        if (!fill_secondaries(sched, shard, ctx, policy.secondaries))
            ok = false;
        break;
    case PLACEMENT_SECONDARY:
        drop_gone_secondaries(sched, shard);
        if (shard->intent.attached != NODE_ID_NONE) {
            const Node *n = node_set_get(sched->nodes, shard->intent.attached);
            if (!node_gone(n) && shard->intent.n_secondaries == 0)
                raw_demote_attached(sched, shard);
            else
                raw_drop_attached(sched, shard);
        }
        trim_secondaries(sched, shard, 1);
        if (!fill_secondaries(sched, shard, ctx, 1))
            ok = false;
        break;
    case PLACEMENT_DETACHED:
    case PLACEMENT_KIND_COUNT:
    default:
        raw_drop_attached(sched, shard);
        while (shard->intent.n_secondaries > 0)
            raw_drop_secondary_at(sched, shard, shard->intent.n_secondaries - 1u);
        break;
    }

    bool ch = !intent_eq(&before, &shard->intent);
    if (ch) {
        shard->sequence++;
        if (ctx != NULL) {
            ctx_apply_intent(ctx, &before, -1);
            ctx_apply_intent(ctx, &shard->intent, +1);
        }
    }
    if (changed != NULL)
        *changed = ch;
    if (!ok)
        err_set(err, ERR_UNAVAILABLE, "%s", NO_SCHEDULABLE_NODES);
    return ok;
}

bool scheduler_schedule_tenant(Scheduler *sched, Tenant *tenant, ScheduleStats *stats, Err *err)
{
    ScheduleContext ctx;
    schedule_context_init(&ctx);
    for (size_t i = 0; i < tenant->n_shards; i++)
        schedule_context_add_shard(&ctx, tenant->shards[i]);
    bool all_ok = true;
    for (size_t i = 0; i < tenant->n_shards; i++) {
        bool changed = false;
        Err e;
        err_clear(&e);
        bool ok = scheduler_schedule_shard(sched, tenant->shards[i], &ctx, &changed, &e);
        if (stats != NULL) {
            stats->scheduled++;
            stats->changed += changed ? 1 : 0;
            stats->failed += ok ? 0 : 1;
        }
        if (!ok && all_ok) {
            all_ok = false;
            if (err != NULL)
                *err = e;
        }
    }
    schedule_context_finish(&ctx);
    return all_ok;
}

bool scheduler_schedule_all(Scheduler *sched, ShardMap *map, ScheduleStats *stats, Err *err)
{
    bool all_ok = true;
    TenantIter it;
    shard_map_tenant_iter_init(&it, map);
    Tenant *t;
    while ((t = shard_map_tenant_iter_next(&it)) != NULL) {
        Err e;
        err_clear(&e);
        if (!scheduler_schedule_tenant(sched, t, stats, &e) && all_ok) {
            all_ok = false;
            if (err != NULL)
                *err = e;
        }
    }
    return all_ok;
}

bool scheduler_pick_az(const Scheduler *sched, char out[NODE_AZ_SIZE])
{
    out[0] = '\0';
    const char *best = NULL;
    uint64_t best_attached = 0;
    uint64_t best_nodes = 0;
    size_t count = node_set_count(sched->nodes);
    for (size_t i = 0; i < count; i++) {
        const Node *n = node_set_at(sched->nodes, i);
        if (!node_is_schedulable(n))
            continue;
        /* first schedulable node of its AZ: sum that AZ */
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            const Node *m = node_set_at(sched->nodes, j);
            seen = node_is_schedulable(m) && strcmp(m->az, n->az) == 0;
        }
        if (seen)
            continue;
        uint64_t attached = 0;
        uint64_t nodes = 0;
        for (size_t j = i; j < count; j++) {
            const Node *m = node_set_at(sched->nodes, j);
            if (node_is_schedulable(m) && strcmp(m->az, n->az) == 0) {
                attached += m->attached_count;
                nodes++;
            }
        }
        /* attached / nodes < best_attached / best_nodes, by cross-multiplication */
        bool better = best == NULL || attached * best_nodes < best_attached * nodes ||
                      (attached * best_nodes == best_attached * nodes && strcmp(n->az, best) < 0);
        if (better) {
            best = n->az;
            best_attached = attached;
            best_nodes = nodes;
        }
    }
    if (best == NULL)
        return false;
    str_copy(out, NODE_AZ_SIZE, best);
    return true;
}

/* ---- introspection ---- */

size_t scheduler_node_shard_counts(const Scheduler *sched, SchedulerNodeCounts *out, size_t cap)
{
    size_t count = node_set_count(sched->nodes);
    for (size_t i = 0; i < count && i < cap; i++) {
        const Node *n = node_set_at(sched->nodes, i);
        out[i].node = n->id;
        out[i].shard_count = n->shard_count;
        out[i].attached_count = n->attached_count;
        out[i].schedulable = node_is_schedulable(n);
        out[i].az = n->az;
    }
    return count;
}

json_t *scheduler_to_json(const Scheduler *sched)
{
    json_t *nodes = json_array();
    if (nodes == NULL)
        abort();
    for (size_t i = 0; i < node_set_count(sched->nodes); i++) {
        const Node *n = node_set_at(sched->nodes, i);
        json_t *j =
            json_pack("{s:I, s:I, s:I, s:b, s:s, s:I}", "node_id", (json_int_t)n->id, "shard_count",
                      (json_int_t)n->shard_count, "attached_count", (json_int_t)n->attached_count,
                      "schedulable", (int)node_is_schedulable(n), "availability_zone_id", n->az,
                      "utilization_score", (json_int_t)n->utilization_score);
        if (j == NULL)
            abort();
        json_array_append_new(nodes, j);
    }
    json_t *out = json_pack("{s:o}", "nodes", nodes);
    if (out == NULL)
        abort();
    return out;
}

/* Problems reported in full by the consistency check; the rest are only counted. */
#define CONSISTENCY_MAX_REPORTED 5

typedef struct Problems {
    StrBuf text;
    size_t count;
} Problems;

static void problem(Problems *p, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void problem(Problems *p, const char *fmt, ...)
{
    if (p->count++ >= CONSISTENCY_MAX_REPORTED)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    strbuf_printf(&p->text, "%s%s", p->text.len == 0 ? "" : "; ", line);
}

/* count_intents: per node index, the locations and attached locations the intents of map hold;
 * intents naming unregistered nodes or holding duplicates are reported to p (may be NULL). */
static void count_intents(const Scheduler *sched, const ShardMap *map, uint32_t *shards,
                          uint32_t *attached, Problems *p)
{
    ShardMapIter it;
    shard_map_iter_init(&it, map);
    const TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL) {
        char tsid[TSID_STR_SIZE];
        const ShardIntent *in = &s->intent;
        if (in->n_secondaries > TENANT_SHARD_MAX_SECONDARIES) {
            if (p != NULL) {
                tsid_format(&s->tsid, tsid);
                problem(p, "shard %s has %u secondaries", tsid, (unsigned)in->n_secondaries);
            }
            continue;
        }
        for (int k = -1; k < (int)in->n_secondaries; k++) {
            NodeId id = k < 0 ? in->attached : in->secondaries[k];
            if (id == NODE_ID_NONE)
                continue;
            ptrdiff_t idx = node_set_index(sched->nodes, id);
            if (idx < 0) {
                if (p != NULL) {
                    tsid_format(&s->tsid, tsid);
                    problem(p, "shard %s references unknown node %llu", tsid,
                            (unsigned long long)id);
                }
                continue;
            }
            for (int m = 0; m < k && p != NULL; m++) {
                if (in->secondaries[m] == id) {
                    tsid_format(&s->tsid, tsid);
                    problem(p, "shard %s lists node %llu twice", tsid, (unsigned long long)id);
                }
            }
            if (k >= 0 && id == in->attached && p != NULL) {
                tsid_format(&s->tsid, tsid);
                problem(p, "shard %s has node %llu as attached and secondary", tsid,
                        (unsigned long long)id);
            }
            shards[idx]++;
            if (k < 0)
                attached[idx]++;
        }
    }
}

bool scheduler_check_consistency(const Scheduler *sched, const ShardMap *map, Err *err)
{
    size_t count = node_set_count(sched->nodes);
    uint32_t *shards = xcalloc(count + 1, sizeof(*shards));
    uint32_t *attached = xcalloc(count + 1, sizeof(*attached));
    Problems p = {STRBUF_INIT, 0};
    count_intents(sched, map, shards, attached, &p);
    for (size_t i = 0; i < count; i++) {
        const Node *n = node_set_at(sched->nodes, i);
        if (n->shard_count != shards[i] || n->attached_count != attached[i])
            problem(&p, "node %llu: scheduler counts %u shards / %u attached, intents hold %u / %u",
                    (unsigned long long)n->id, n->shard_count, n->attached_count, shards[i],
                    attached[i]);
    }
    bool ok = p.count == 0;
    if (!ok) {
        if (p.count > CONSISTENCY_MAX_REPORTED)
            strbuf_printf(&p.text, "; and %zu more", p.count - CONSISTENCY_MAX_REPORTED);
        err_set(err, ERR_INTERNAL, "scheduler inconsistent: %s", p.text.data);
    }
    strbuf_finish(&p.text);
    free(shards);
    free(attached);
    return ok;
}

void scheduler_recount(Scheduler *sched, const ShardMap *map)
{
    size_t count = node_set_count(sched->nodes);
    uint32_t *shards = xcalloc(count + 1, sizeof(*shards));
    uint32_t *attached = xcalloc(count + 1, sizeof(*attached));
    count_intents(sched, map, shards, attached, NULL);
    for (size_t i = 0; i < count; i++) {
        Node *n = node_set_at(sched->nodes, i);
        n->shard_count = shards[i];
        n->attached_count = attached[i];
    }
    free(shards);
    free(attached);
}
