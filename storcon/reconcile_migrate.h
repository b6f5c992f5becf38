/*
 * reconcile_migrate.h: live migration of a tenant shard as steps of the reconciler
 * (docs/secondaries.md "Live migration").
 *
 * When the intent's attached node (the destination) is not yet attached in the shard's newest
 * generation while another available node (the origin) is observed attached, the reconciler moves
 * the shard live instead of cold, one step per PLAN:
 *
 *   1 ORIGIN_STALE      origin -> AttachedStale, location_config ?flush_ms: heatmap uploaded, no
 *                       deletions from now on
 *   2 ORIGIN_LSNS       GET the origin's timelines: last_record_lsn of each (the wait_lsn target)
 *   3 DEST_SECONDARY    destination -> Secondary {"warm": true} (unless it already is)
 *   4 WARM_UP           secondary/download?wait_ms= on the destination until 200, bounded by
 *                       STORCON_MIGRATE_WARMUP_TIMEOUT_MS (then it goes on cold)
 *   5 BUMP_GENERATION   database: generation + 1 for the destination (persisted before use)
 *   6 ATTACH_MULTI      destination -> AttachedMulti in the new generation
 *   7 WAIT_LSN          wait_lsn on the destination for the origin's LSNs, bounded
 *   8 NOTIFY            compute notification with the whole shard map (destination attached)
 *   9 ORIGIN_SECONDARY  origin -> Secondary warm when the intent keeps a secondary there, else
 *                       ORIGIN_DETACH (Detached)
 *  10 CUTOVER           destination -> AttachedSingle
 *
 * reconcile_migrate_plan is pure (intent, observed state, node availability, this reconcile's
 * progress), so a reconcile that failed mid-way, or a controller restarted mid-way, resumes from
 * what the pageservers hold: steps 1, 3, 6 and 10 are visible in the observed state, steps 2, 4,
 * 7 and 8 are repeated (they are idempotent), and step 5 is skipped when the destination already
 * holds the newest generation. Each step has a failpoint "migration-before-<step>" evaluated
 * after the step's state is entered and before its call starts.
 */
#ifndef STORCON_RECONCILE_MIGRATE_H
#define STORCON_RECONCILE_MIGRATE_H

#include <stdbool.h>

#include "shared/metrics.h"
#include "storcon/reconcile.h"

/* Bounds of the waiting steps. */
#define STORCON_MIGRATE_FLUSH_MS          5000  /* origin heatmap flush (step 1) */
#define STORCON_MIGRATE_WARMUP_TIMEOUT_MS 20000 /* warm-up before a cold cut-over (step 4) */
#define STORCON_MIGRATE_WARMUP_POLL_MS    5000  /* wait_ms of one download call */
#define STORCON_MIGRATE_WAIT_LSN_MS       10000 /* step 7 */
/* Migrations in progress at once (at most half of the reconciler's slots); the others park. */
#define STORCON_MIGRATE_MAX_CONCURRENT 64
#define STORCON_MIGRATE_NOTIFY_TRIES   50 /* step 8: maps not sent yet, asked again */
#define STORCON_MIGRATE_RETRY_MS       50 /* steps 7 and 8: the pause before asking again */

/* Failpoints (shared/failpoint.h), one before every step. */
#define MIGRATE_FAILPOINT_ORIGIN_STALE     "migration-before-origin-stale"
#define MIGRATE_FAILPOINT_ORIGIN_LSNS      "migration-before-origin-lsns"
#define MIGRATE_FAILPOINT_DEST_SECONDARY   "migration-before-dest-secondary"
#define MIGRATE_FAILPOINT_WARM_UP          "migration-before-warm-up"
#define MIGRATE_FAILPOINT_BUMP_GENERATION  "migration-before-bump-generation"
#define MIGRATE_FAILPOINT_ATTACH_MULTI     "migration-before-attach-multi"
#define MIGRATE_FAILPOINT_WAIT_LSN         "migration-before-wait-lsn"
#define MIGRATE_FAILPOINT_NOTIFY           "migration-before-notify"
#define MIGRATE_FAILPOINT_ORIGIN_SECONDARY "migration-before-origin-secondary"
#define MIGRATE_FAILPOINT_CUTOVER          "migration-before-cutover"

/* Rows of RECONCILE_FSM (storcon/reconcile.c) for the migration steps: every step is entered
 * from PLAN and returns to PLAN, or fails. */
#define MIGRATE_ROWS(S, done)                                                                      \
    {RECONCILE_PLAN, S, "live migration step"}, {S, RECONCILE_PLAN, done},                         \
    {                                                                                              \
        S, RECONCILE_FAILED, "call or failpoint failed"                                            \
    }
#define RECONCILE_MIGRATE_TRANSITIONS                                                              \
    MIGRATE_ROWS(RECONCILE_MIGRATE_ORIGIN_STALE, "origin stale, heatmap flushed"),                 \
        MIGRATE_ROWS(RECONCILE_MIGRATE_ORIGIN_LSNS, "origin LSNs recorded"),                       \
        MIGRATE_ROWS(RECONCILE_MIGRATE_DEST_SECONDARY, "destination secondary"),                   \
        MIGRATE_ROWS(RECONCILE_MIGRATE_WARM_UP, "downloaded, or timed out (cold)"),                \
        MIGRATE_ROWS(RECONCILE_MIGRATE_BUMP_GENERATION, "generation issued"),                      \
        MIGRATE_ROWS(RECONCILE_MIGRATE_ATTACH_MULTI, "destination AttachedMulti"),                 \
        MIGRATE_ROWS(RECONCILE_MIGRATE_WAIT_LSN, "caught up, or timed out"),                       \
        MIGRATE_ROWS(RECONCILE_MIGRATE_NOTIFY, "handed to compute hook"),                          \
        MIGRATE_ROWS(RECONCILE_MIGRATE_ORIGIN_SECONDARY, "origin secondary or detached"),          \
        MIGRATE_ROWS(RECONCILE_MIGRATE_CUTOVER, "destination AttachedSingle"),                     \
        {RECONCILE_PLAN, RECONCILE_MIGRATE_PARKED, "migration slots busy"},                        \
        {RECONCILE_MIGRATE_PARKED, RECONCILE_PLAN, "migration slot free"},

#define RECONCILE_MIGRATE_STATE_NAMES                                                              \
    [RECONCILE_MIGRATE_ORIGIN_STALE] = "MigrateOriginStale",                                       \
    [RECONCILE_MIGRATE_ORIGIN_LSNS] = "MigrateOriginLsns",                                         \
    [RECONCILE_MIGRATE_DEST_SECONDARY] = "MigrateDestSecondary",                                   \
    [RECONCILE_MIGRATE_WARM_UP] = "MigrateWarmUp",                                                 \
    [RECONCILE_MIGRATE_BUMP_GENERATION] = "MigrateBumpGeneration",                                 \
    [RECONCILE_MIGRATE_ATTACH_MULTI] = "MigrateAttachMulti",                                       \
    [RECONCILE_MIGRATE_WAIT_LSN] = "MigrateWaitLsn", [RECONCILE_MIGRATE_NOTIFY] = "MigrateNotify", \
    [RECONCILE_MIGRATE_ORIGIN_SECONDARY] = "MigrateOriginSecondary",                               \
    [RECONCILE_MIGRATE_CUTOVER] = "MigrateCutover", [RECONCILE_MIGRATE_PARKED] = "MigrateParked",

#define RECONCILE_MIGRATE_ACTION_NAMES                                                             \
    [RECONCILE_ACTION_MIGRATE_ORIGIN_STALE] = "migrate_origin_stale",                              \
    [RECONCILE_ACTION_MIGRATE_ORIGIN_LSNS] = "migrate_origin_lsns",                                \
    [RECONCILE_ACTION_MIGRATE_DEST_SECONDARY] = "migrate_dest_secondary",                          \
    [RECONCILE_ACTION_MIGRATE_WARM_UP] = "migrate_warm_up",                                        \
    [RECONCILE_ACTION_MIGRATE_BUMP_GENERATION] = "migrate_bump_generation",                        \
    [RECONCILE_ACTION_MIGRATE_ATTACH_MULTI] = "migrate_attach_multi",                              \
    [RECONCILE_ACTION_MIGRATE_WAIT_LSN] = "migrate_wait_lsn",                                      \
    [RECONCILE_ACTION_MIGRATE_NOTIFY] = "migrate_notify",                                          \
    [RECONCILE_ACTION_MIGRATE_ORIGIN_SECONDARY] = "migrate_origin_secondary",                      \
    [RECONCILE_ACTION_MIGRATE_ORIGIN_DETACH] = "migrate_origin_detach",                            \
    [RECONCILE_ACTION_MIGRATE_CUTOVER] = "migrate_cutover",

/* reconcile_migrate_plan: the next migration step for s (see the file comment) into out, true;
 * false when no live migration applies (the ordinary plan goes on). Pure. */
bool reconcile_migrate_plan(const TenantShard *s, const NodeSet *nodes, const ReconcileProgress *p,
                            ReconcileAction *out);

/* reconcile_migrate_track: the migration step action is about to run: record its (origin,
 * destination) pair in p; a pair other than the one recorded (the intent moved on, or a newer
 * origin appeared) clears the flags of the steps done for the old pair. True when p had no
 * migration yet (this step starts one). Pure. */
bool reconcile_migrate_track(ReconcileProgress *p, const ReconcileAction *action);

static inline bool reconcile_action_is_migrate(ReconcileActionKind k)
{
    return k >= RECONCILE_ACTION_MIGRATE_ORIGIN_STALE && k <= RECONCILE_ACTION_MIGRATE_CUTOVER;
}

/* reconcile_migrate_set_warmup: the warm-up bound (ms; 0: one download call that does not wait)
 * for the reconcile of shard queued or running now, instead of the default
 * (migration_config.secondary_warmup_timeout of a migrate). */
void reconcile_migrate_set_warmup(TenantShard *shard, long ms);

/* ---- used by storcon/reconcile.c ---- */

struct Reconcile;
/* reconcile_migrate_start: run the step rc->action names (state, failpoint, call). */
void reconcile_migrate_start(struct Reconcile *rc);
/* reconcile_migrate_end: the reconcile ends (ok: DONE): release what the migration holds. */
void reconcile_migrate_end(struct Reconcile *rc, bool ok);
/* reconcile_migrate_metrics: register the migration metrics of r. */
void reconcile_migrate_metrics(Reconciler *r, MetricsRegistry *metrics);

#endif
