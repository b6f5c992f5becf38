/*
 * reconcile_internal.h: the reconciler's private structures and the helpers its step files share
 * (storcon/reconcile.c, the steps of a live migration in storcon/reconcile_migrate.c). Not for
 * use outside the reconciler.
 */
#ifndef STORCON_RECONCILE_INTERNAL_H
#define STORCON_RECONCILE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/defer.h"
#include "storcon/reconcile.h"

struct event;

typedef struct Reconcile Reconcile;
struct Reconcile {
    Reconciler *owner;
    TenantShard *shard;
    ReconcileState state;
    uint64_t sequence; /* the shard's sequence this reconcile works towards */
    bool again;        /* spawned again while queued or running */
    bool attached_changed;
    ReconcileProgress progress;
    ReconcileAction action;
    PageserverCall *call;
    struct event *delay; /* a failpoint's sleep in progress; NULL: none */
    void (*after_delay)(struct Reconcile *rc);
    struct Reconcile *next; /* queue link */
    struct Reconcile *prev_running, *next_running;
    /* live migration (reconcile_migrate.c): the origin's timeline LSNs (owned; NULL: none) and
     * the warm-up deadline (monotonic ms; 0: not started) */
    PageserverTimelineLsn *mig_lsns;
    size_t mig_n_lsns;
    int64_t mig_warm_deadline_ms; /* also the deadline of the wait_lsn step */
    Generation mig_origin_gen;    /* the origin's generation while it is made stale */
    unsigned mig_notify_tries;    /* NOTIFY: maps superseded so far */
    bool mig_warmup_set;          /* the operator gave the WARM_UP bound (ms, 0: no wait) */
    long mig_warmup_ms;
    int64_t mig_started_ms; /* monotonic ms when the first migration step started; 0: none */
};

struct Reconciler {
    ReconcilerOptions opts;
    LoopDefer *defer;
    LoopDeferItem kick; /* drains the queue on a later loop iteration */
    Reconcile *queue_head, *queue_tail;
    size_t queued;
    Reconcile *running_list;
    size_t running;
    bool stopped;
    MetricCounter *m_started, *m_succeeded, *m_failed;
    MetricGauge *m_pending;
    /* live migrations (reconcile_migrate.c) */
    MetricCounter *m_mig_started, *m_mig_done, *m_mig_cold;
    MetricGauge *m_mig_running;
    size_t migrating;     /* reconciles between their first and last migration step */
    size_t max_migrating; /* STORCON_MIGRATE_MAX_CONCURRENT, at most half the slots */
    Reconcile *parked_head, *parked_tail; /* waiting for a migration slot (not running) */
    size_t parked;
    MetricGauge *m_mig_parked;
};

/* The running list (a parked migration leaves it and comes back). */
void reconcile_running_add(Reconciler *r, Reconcile *rc);
void reconcile_running_remove(Reconciler *r, Reconcile *rc);
/* Drain the queue on a later loop iteration. */
void reconcile_kick(Reconciler *r);
/* reconcile_migrate.c: resume parked migrations while migration slots are free (from the kick);
 * free the parked ones (reconciler_free). */
void reconcile_migrate_resume(Reconciler *r);
void reconcile_migrate_free_parked(Reconciler *r);

/* The one place a reconcile changes state (checked against RECONCILE_FSM). */
void reconcile_set_state(Reconcile *rc, ReconcileState to);
/* Record the error on the shard, go FAILED and finish. */
void reconcile_fail(Reconcile *rc, const char *what, const Err *err);
/* reconcile_take_generation: a generation increment's answer for rc->action.node: on success the
 * shard and the progress take it (true); on error the reconcile fails (false). */
bool reconcile_take_generation(Reconcile *rc, const Err *err, Generation gen);
/* PLAN: pick the next action on the live state and start it. */
void reconcile_step(Reconcile *rc);
/* The LocationConfig the intent wants on a node in mode. New reference. */
json_t *reconcile_location_config_json(const TenantShard *s, ShardLocationMode mode,
                                       Generation gen);
/* reconcile_put_answered: the location_config PUT of rc's action answered: the call is over;
 * false when the reconcile failed on it (anything but 2xx: the body is not used, a pageserver
 * answers a Detached PUT with a bare {}, which the client reports as an undecodable body). */
bool reconcile_put_answered(Reconcile *rc, const PageserverResult *res);
/* A target for node with the reconciler's timeouts and retries; false: node unknown. */
bool reconcile_make_target(Reconcile *rc, NodeId node, PageserverTarget *t, char *buf, size_t size);
/* A failpoint on the loop: true: go on now; false: the failpoint failed the reconcile, or will
 * call cont after its delay. */
bool reconcile_failpoint_gate(Reconcile *rc, const char *name, void (*cont)(Reconcile *rc));

#endif
