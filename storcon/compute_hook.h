/*
 * compute_hook.h: tenant-scoped compute notifications (storcon.md "Compute notifications").
 *
 * When a tenant's shards move, the control plane must learn the whole new shard map so that the
 * tenant's computes connect to the right pageservers:
 *
 *   PUT <control_plane_url>/notify-attach
 *   {"tenant_id": "<hex>", "preferred_az": "<az>" or null, "stripe_size": n or null,
 *    "shards": [{"node_id": n, "shard_number": k}, ...]}
 *
 * stripe_size is null for a tenant of one shard (count 0 or 1). The keys always come in this
 * order, so that equal maps serialise to equal strings.
 *
 * The mechanism is a keyed notifier (storcon/notifier.h) keyed by tenant id with the body below
 * as its renderer; the rules are the notifier's:
 *
 * Rules:
 *  - Sent only when every shard of the current count has a known attached node: a half map
 *    (e.g. during a split) is refused with COMPUTE_NOTIFY_NOT_READY and nothing is sent.
 *  - Deduplicated against the last body the control plane ACCEPTED (2xx) for the tenant: a
 *    repeat is a no-op success (DEDUPLICATED). Once a notification has been attempted and not
 *    accepted, the control plane's state is unknown, so the next one is sent even if it equals
 *    the old accepted body.
 *  - With a database (ComputeHookOptions.db) what was accepted survives a restart: the SHA-256
 *    of the accepted body is written to compute_notifications after the 2xx, and a tenant's
 *    row is removed before a different body is sent (storcon/notifier.h, "store"), so a row
 *    always names a map the control plane holds. At startup the service reads the rows back
 *    (compute_hook_seed) and notifies only tenants whose map is not the recorded one
 *    (compute_hook_is_current). compute_hook_forget removes the tenant's row as well.
 *  - Each tenant's notification is its own asynchronous call; at most one request per tenant is
 *    in flight. A newer map supersedes an older one that is queued or waiting to retry (the older
 *    one's callback says SUPERSEDED); a map equal to the one in flight or queued joins it.
 *  - Retried with capped exponential backoff (full jitter) on transport errors, timeouts, 429 and
 *    502-504, up to max_attempts. 423 means "stored but not applied yet": retried on its own,
 *    larger budget (locked_max_attempts) without blocking any other tenant; when that runs out
 *    the outcome is LOCKED. Any other status fails at once.
 *  - A notification that ends without acceptance (FAILED, LOCKED) leaves the tenant "pending
 *    notification" (compute_hook_is_pending) until a later one is accepted or deduplicated; the
 *    background reconcile pass retries pending tenants. A tenant with a notification in flight or
 *    queued is pending too.
 *  - Without a control-plane URL notifications are off: every notify succeeds at once with
 *    DISABLED (logged once, when the hook is created).
 *
 * Metrics (when a registry is given): compute_notifications_sent_total (accepted by the control
 * plane), compute_notifications_failed_total (ended FAILED or LOCKED),
 * compute_notifications_deduplicated_total.
 *
 * Loop-thread only. Callbacks run on the loop, never from inside compute_hook_notify.
 */
#ifndef STORCON_COMPUTE_HOOK_H
#define STORCON_COMPUTE_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/http_client.h"
#include "shared/id.h"
#include "shared/metrics.h"
#include "storcon/db.h"
#include "storcon/notifier.h"

struct event_base;

typedef struct ComputeHook ComputeHook;

/* Shard numbers are u8, so a tenant has at most 256 shards (count 0 counts as one). */
#define COMPUTE_HOOK_MAX_SHARDS 256
/* "This shard has no known attached node" in a snapshot (the same value as NODE_ID_NONE). */
#define COMPUTE_HOOK_NODE_UNKNOWN ((NodeId)UINT64_MAX)
#define COMPUTE_HOOK_AZ_SIZE      64

/* ComputeHookTenant: the caller's snapshot of one tenant's shard map. */
typedef struct ComputeHookTenant {
    TenantId tenant_id;
    ShardCount shard_count;                   /* 0 or 1: one shard */
    uint32_t stripe_size;                     /* ignored (null) for one shard */
    char preferred_az[COMPUTE_HOOK_AZ_SIZE];  /* "" = null */
    NodeId attached[COMPUTE_HOOK_MAX_SHARDS]; /* by shard number; COMPUTE_HOOK_NODE_UNKNOWN */
} ComputeHookTenant;

/* compute_hook_tenant_init: a snapshot with every shard unknown; az NULL or "" = none (an AZ too
 * long for the array is cut, which cannot happen with node AZs). */
void compute_hook_tenant_init(ComputeHookTenant *t, const TenantId *tenant, ShardCount count,
                              uint32_t stripe_size, const char *az);

/* The notifier's outcomes under the names compute callers use. */
typedef enum ComputeNotifyOutcome {
    COMPUTE_NOTIFY_SENT = NOTIFIER_SENT, /* the control plane accepted this map (2xx) */
    COMPUTE_NOTIFY_DEDUPLICATED = NOTIFIER_DEDUPLICATED, /* equal to the last accepted map */
    COMPUTE_NOTIFY_DISABLED = NOTIFIER_DISABLED,         /* no control-plane URL: off (success) */
    COMPUTE_NOTIFY_NOT_READY = NOTIFIER_NOT_READY,       /* a shard has no known attached node */
    COMPUTE_NOTIFY_SUPERSEDED = NOTIFIER_SUPERSEDED,     /* a newer map for the tenant replaced this
                                                            one before it was accepted */
    COMPUTE_NOTIFY_LOCKED = NOTIFIER_LOCKED,             /* 423 until the budget ran out; pending */
    COMPUTE_NOTIFY_FAILED = NOTIFIER_FAILED,       /* err says why; the tenant stays pending */
    COMPUTE_NOTIFY_CANCELLED = NOTIFIER_CANCELLED, /* compute_hook_forget(tenant) while waiting */
    COMPUTE_NOTIFY_COUNT = NOTIFIER_OUTCOME_COUNT
} ComputeNotifyOutcome;

typedef struct ComputeNotifyResult {
    TenantId tenant_id;
    ComputeNotifyOutcome outcome;
    int status;   /* last HTTP status from the control plane; 0 = none or transport error */
    int attempts; /* requests made for this map */
    Err err;      /* NOT_READY, LOCKED, FAILED, SUPERSEDED, CANCELLED: why */
} ComputeNotifyResult;

/* ComputeHookDone: res is valid only during the callback. */
typedef void (*ComputeHookDone)(const ComputeNotifyResult *res, void *arg);

/* ComputeHookOptions: zero fields take the notifier's defaults (storcon/notifier.c). */
typedef struct ComputeHookOptions {
    const char *control_plane_url; /* NULL or "" = notifications off; copied */
    const char *bearer_token;      /* sent as "Authorization: Bearer"; NULL = none; copied */
    long timeout_ms;               /* per request */
    int max_attempts;              /* transport errors, timeouts, 429, 502-504 */
    int locked_max_attempts;       /* 423 answers */
    long backoff_base_ms;          /* capped exponential backoff with full jitter */
    long backoff_max_ms;
    DbPool *db;          /* borrowed: accepted hashes kept in compute_notifications; NULL: not */
    NotifierStore store; /* without db: another store (tests); write NULL = memory only */
    int max_inflight;    /* requests in flight over all tenants */
    /* compute_hook_free calls it with the arg of every done callback that will never run (so
     * the caller's context is not leaked); NULL: nothing to release */
    void (*drop_arg)(void *arg);
} ComputeHookOptions;

/* compute_hook_new: http and metrics (NULL = no metrics) are borrowed and must outlive the hook.
 * Never NULL; the caller frees with compute_hook_free. */
ComputeHook *compute_hook_new(struct event_base *base, HttpClient *http, MetricsRegistry *metrics,
                              const ComputeHookOptions *opts);
/* compute_hook_free: stop every request and timer; callbacks not yet run never run (their args
 * go to the options' drop_arg). Not from inside a ComputeHookDone callback. NULL ok. */
void compute_hook_free(ComputeHook *hook);

bool compute_hook_enabled(const ComputeHook *hook);

/* compute_hook_notify: tell the control plane about this map (rules in the file comment). The
 * snapshot is copied. done (may be NULL) runs exactly once with the outcome. */
void compute_hook_notify(ComputeHook *hook, const ComputeHookTenant *snapshot, ComputeHookDone done,
                         void *arg);

/* compute_hook_is_pending: the tenant's last map was not accepted yet (in flight, queued, or
 * ended FAILED / LOCKED). False for unknown tenants and when notifications are off. */
bool compute_hook_is_pending(const ComputeHook *hook, const TenantId *tenant);
/* compute_hook_pending_count: how many tenants are pending. */
size_t compute_hook_pending_count(const ComputeHook *hook);

/* compute_hook_seed: the control plane holds the tenant's map whose body hashes to hash (a
 * compute_notifications row read back at startup). */
void compute_hook_seed(ComputeHook *hook, const TenantId *tenant,
                       const uint8_t hash[NOTIFIER_HASH_SIZE]);
/* compute_hook_records_unknown: the rows could not be read back: a tenant's first notification
 * removes its row before it is sent. */
void compute_hook_records_unknown(ComputeHook *hook);
/* compute_hook_is_current: the snapshot's map is the one the control plane last accepted for the
 * tenant, nothing is pending, so there is nothing to send. False when notifications are off. */
bool compute_hook_is_current(const ComputeHook *hook, const ComputeHookTenant *snapshot);
/* compute_hook_store_idle: no record write queued or in flight. */
bool compute_hook_store_idle(const ComputeHook *hook);

/* compute_hook_forget: the tenant was deleted: stop its requests (waiting callbacks get
 * CANCELLED) and drop what is remembered about it. */
void compute_hook_forget(ComputeHook *hook, const TenantId *tenant);

/* compute_hook_render_body: the notify-attach body for a snapshot, in the fixed key order; the
 * caller frees *out with free(). Not ready -> ERR_UNAVAILABLE "not ready: shard N of M has no
 * attached node"; invalid snapshot (stripe size 0 for several shards, a node id above INT64_MAX)
 * -> ERR_BAD_REQUEST. */
bool compute_hook_render_body(const ComputeHookTenant *snapshot, char **out, Err *err) MUST_CHECK;

/* compute_notify_outcome_name: "sent", "deduplicated", ... */
const char *compute_notify_outcome_name(ComputeNotifyOutcome o);
/* compute_notify_outcome_ok: SENT, DEDUPLICATED or DISABLED: the control plane has (or needs)
 * nothing more for this map. */
bool compute_notify_outcome_ok(ComputeNotifyOutcome o);

#endif
