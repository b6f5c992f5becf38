/*
 * compute_hook.c: compute notifications, one small state machine per tenant (see compute_hook.h).
 *
 * Per tenant (TenantState, in a hash table keyed by tenant id): the body the control plane last
 * accepted, a "failed" flag, and at most two jobs: `current` (a request in flight or a retry
 * waiting for its backoff timer) and `queued` (the newest map, waiting for current to end). A
 * job carries the body and the callbacks waiting for it (several notifies of one map share one
 * job). A job's states:
 *
 *   QUEUED --current ended--> (dedup check) --> SENDING
 *   SENDING --2xx--> done SENT (body becomes the accepted one)
 *   SENDING --423 / transport / 429 / 502-504, budget left--> BACKOFF --timer--> SENDING
 *   SENDING --budget exhausted or another status--> done LOCKED / FAILED (tenant failed = pending)
 *   BACKOFF or QUEUED --a different newer map--> done SUPERSEDED
 *   any --compute_hook_forget--> done CANCELLED
 *
 * Outcomes reach callbacks through a queue drained by a zero timer, never synchronously, so a
 * callback may call back into the hook (notify again, forget) without finding it mid-update.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "shared/log.h"
#include "shared/str.h"

#include "storcon/compute_hook.h"

/* Defaults (to move to storcon/defaults.h). */
#define COMPUTE_HOOK_DEFAULT_TIMEOUT_MS          10000L /* per notify-attach request */
#define COMPUTE_HOOK_DEFAULT_MAX_ATTEMPTS        8      /* transport errors, 429, 502-504 */
#define COMPUTE_HOOK_DEFAULT_LOCKED_MAX_ATTEMPTS 30     /* 423 answers before giving up (pending) */
#define COMPUTE_HOOK_DEFAULT_BACKOFF_BASE_MS     200L
#define COMPUTE_HOOK_DEFAULT_BACKOFF_MAX_MS      5000L
#define COMPUTE_HOOK_INITIAL_BUCKETS             64 /* power of two */

typedef enum NotifyJobState {
    NOTIFY_JOB_QUEUED,  /* behind the tenant's current job */
    NOTIFY_JOB_SENDING, /* request in flight */
    NOTIFY_JOB_BACKOFF, /* waiting for the retry timer */
} NotifyJobState;

typedef struct Waiter {
    ComputeHookDone done;
    void *arg;
    struct Waiter *next;
} Waiter;

typedef struct TenantState TenantState;

typedef struct NotifyJob {
    ComputeHook *hook;
    TenantState *ts;
    NotifyJobState state;
    char *body;
    Waiter *waiters, *waiters_tail;
    int attempts;
    int transient_failures; /* transport, timeout, 429, 502-504 */
    int locked_answers;     /* 423 */
    HttpCall *call;         /* SENDING */
    struct event *timer;    /* BACKOFF */
} NotifyJob;

struct TenantState {
    TenantId id;
    TenantState *hnext;
    char *accepted; /* last body the control plane accepted; NULL = none or unknown */
    bool failed;    /* the last notification ended without acceptance */
    NotifyJob *current;
    NotifyJob *queued;
};

typedef struct Delivery {
    ComputeHookDone done;
    void *arg;
    ComputeNotifyResult res;
    struct Delivery *next;
} Delivery;

struct ComputeHook {
    struct event_base *base;
    HttpClient *http;
    bool enabled;
    char *url; /* <control_plane_url>/notify-attach */
    char *token;
    long timeout_ms;
    int max_attempts;
    int locked_max_attempts;
    long backoff_base_ms, backoff_max_ms;

    TenantState **buckets;
    size_t nbuckets, ntenants;

    Delivery *dq_head, *dq_tail;
    struct event *deliver_ev;

    MetricCounter *m_sent, *m_failed, *m_dedup;
};

static const char *const OUTCOME_NAMES[COMPUTE_NOTIFY_COUNT] = {
    [COMPUTE_NOTIFY_SENT] = "sent",
    [COMPUTE_NOTIFY_DEDUPLICATED] = "deduplicated",
    [COMPUTE_NOTIFY_DISABLED] = "disabled",
    [COMPUTE_NOTIFY_NOT_READY] = "not_ready",
    [COMPUTE_NOTIFY_SUPERSEDED] = "superseded",
    [COMPUTE_NOTIFY_LOCKED] = "locked",
    [COMPUTE_NOTIFY_FAILED] = "failed",
    [COMPUTE_NOTIFY_CANCELLED] = "cancelled",
};

const char *compute_notify_outcome_name(ComputeNotifyOutcome o)
{
    if ((int)o < 0 || o >= COMPUTE_NOTIFY_COUNT)
        return "?";
    return OUTCOME_NAMES[o];
}

bool compute_notify_outcome_ok(ComputeNotifyOutcome o)
{
    return o == COMPUTE_NOTIFY_SENT || o == COMPUTE_NOTIFY_DEDUPLICATED ||
           o == COMPUTE_NOTIFY_DISABLED;
}

void compute_hook_tenant_init(ComputeHookTenant *t, const TenantId *tenant, ShardCount count,
                              uint32_t stripe_size, const char *az)
{
    memset(t, 0, sizeof(*t));
    t->tenant_id = *tenant;
    t->shard_count = count;
    t->stripe_size = stripe_size;
    if (az != NULL)
        (void)str_copy(t->preferred_az, sizeof(t->preferred_az), az); /* cut: see the header */
    for (size_t i = 0; i < COMPUTE_HOOK_MAX_SHARDS; i++)
        t->attached[i] = COMPUTE_HOOK_NODE_UNKNOWN;
}

/* compute_hook_render_body: objects are built in the documented key order and jansson keeps
 * insertion order, so equal maps give byte-equal strings (what deduplication compares). */
bool compute_hook_render_body(const ComputeHookTenant *s, char **out, Err *err)
{
    *out = NULL;
    unsigned n = s->shard_count == 0 ? 1u : s->shard_count;
    for (unsigned i = 0; i < n; i++) {
        if (s->attached[i] == COMPUTE_HOOK_NODE_UNKNOWN) {
            err_set(err, ERR_UNAVAILABLE, "not ready: shard %u of %u has no attached node", i, n);
            return false;
        }
        if (s->attached[i] > (NodeId)INT64_MAX) {
            err_set(err, ERR_BAD_REQUEST, "shard %u: node id %" PRIu64 " out of range", i,
                    s->attached[i]);
            return false;
        }
    }
    if (n > 1 && s->stripe_size == 0) {
        err_set(err, ERR_BAD_REQUEST, "stripe size 0 for %u shards", n);
        return false;
    }
    char id[ID_STR_SIZE];
    tenant_id_format(&s->tenant_id, id);
    json_t *body = json_object();
    json_object_set_new(body, "tenant_id", json_string(id));
    json_t *az = s->preferred_az[0] ? json_string(s->preferred_az) : json_null();
    if (az == NULL) { /* not valid UTF-8 */
        json_decref(body);
        err_set(err, ERR_BAD_REQUEST, "preferred AZ is not valid UTF-8");
        return false;
    }
    json_object_set_new(body, "preferred_az", az);
    json_object_set_new(body, "stripe_size",
                        n > 1 ? json_integer((json_int_t)s->stripe_size) : json_null());
    json_t *shards = json_array();
    for (unsigned i = 0; i < n; i++) {
        json_t *sh = json_object();
        json_object_set_new(sh, "node_id", json_integer((json_int_t)s->attached[i]));
        json_object_set_new(sh, "shard_number", json_integer((json_int_t)i));
        json_array_append_new(shards, sh);
    }
    json_object_set_new(body, "shards", shards);
    *out = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (*out == NULL) {
        fputs("fatal: out of memory (json_dumps)\n", stderr);
        abort();
    }
    return true;
}

/* ---- deliveries ---- */

static void deliver_event_cb(evutil_socket_t fd, short what, void *arg)
{
    ComputeHook *hook = arg;
    /* take the whole queue: callbacks may notify again, which queues new deliveries */
    Delivery *d = hook->dq_head;
    hook->dq_head = hook->dq_tail = NULL;
    while (d != NULL) {
        Delivery *next = d->next;
        d->done(&d->res, d->arg);
        free(d);
        d = next;
    }
}

/* deliver: hand an outcome to a callback on a later loop iteration. */
static void deliver(ComputeHook *hook, ComputeHookDone done, void *arg,
                    const ComputeNotifyResult *res)
{
    if (done == NULL)
        return;
    static const struct timeval zero = {0, 0};
    Delivery *d = xcalloc(1, sizeof(*d));
    d->done = done;
    d->arg = arg;
    d->res = *res;
    if (hook->dq_tail)
        hook->dq_tail->next = d;
    else
        hook->dq_head = d;
    hook->dq_tail = d;
    evtimer_add(hook->deliver_ev, &zero);
}

static void deliver_simple(ComputeHook *hook, const TenantId *tenant, ComputeNotifyOutcome o,
                           const Err *err, ComputeHookDone done, void *arg)
{
    ComputeNotifyResult res;
    memset(&res, 0, sizeof(res));
    res.tenant_id = *tenant;
    res.outcome = o;
    if (err != NULL)
        res.err = *err;
    deliver(hook, done, arg, &res);
}

/* ---- tenant table ---- */

static size_t tenant_hash(const TenantId *id)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < ID_BYTES; i++) {
        h ^= id->b[i];
        h *= 0x100000001b3u;
    }
    return (size_t)(h ^ (h >> 32));
}

static TenantState *tenant_find(const ComputeHook *hook, const TenantId *id)
{
    for (TenantState *ts = hook->buckets[tenant_hash(id) & (hook->nbuckets - 1)]; ts;
         ts = ts->hnext) {
        if (tenant_id_eq(&ts->id, id))
            return ts;
    }
    return NULL;
}

static void table_grow(ComputeHook *hook)
{
    size_t nb = hook->nbuckets * 2;
    TenantState **b = xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < hook->nbuckets; i++) {
        TenantState *ts = hook->buckets[i];
        while (ts != NULL) {
            TenantState *next = ts->hnext;
            size_t k = tenant_hash(&ts->id) & (nb - 1);
            ts->hnext = b[k];
            b[k] = ts;
            ts = next;
        }
    }
    free(hook->buckets);
    hook->buckets = b;
    hook->nbuckets = nb;
}

static TenantState *tenant_get(ComputeHook *hook, const TenantId *id)
{
    TenantState *ts = tenant_find(hook, id);
    if (ts != NULL)
        return ts;
    if (hook->ntenants >= hook->nbuckets)
        table_grow(hook);
    ts = xcalloc(1, sizeof(*ts));
    ts->id = *id;
    size_t k = tenant_hash(id) & (hook->nbuckets - 1);
    ts->hnext = hook->buckets[k];
    hook->buckets[k] = ts;
    hook->ntenants++;
    return ts;
}

static void tenant_unlink(ComputeHook *hook, TenantState *ts)
{
    TenantState **pp = &hook->buckets[tenant_hash(&ts->id) & (hook->nbuckets - 1)];
    while (*pp != NULL && *pp != ts)
        pp = &(*pp)->hnext;
    if (*pp == ts) {
        *pp = ts->hnext;
        hook->ntenants--;
    }
}

/* ---- jobs ---- */

static void job_sending_timer_cb(evutil_socket_t fd, short what, void *arg);

static NotifyJob *job_new(ComputeHook *hook, TenantState *ts, char *body)
{
    NotifyJob *job = xcalloc(1, sizeof(*job));
    job->hook = hook;
    job->ts = ts;
    job->body = body;
    job->state = NOTIFY_JOB_QUEUED;
    job->timer = evtimer_new(hook->base, job_sending_timer_cb, job);
    if (job->timer == NULL) {
        log_error("compute hook: evtimer_new failed");
        abort(); /* like an allocation failure */
    }
    return job;
}

static void job_add_waiter(NotifyJob *job, ComputeHookDone done, void *arg)
{
    if (done == NULL)
        return;
    Waiter *w = xcalloc(1, sizeof(*w));
    w->done = done;
    w->arg = arg;
    if (job->waiters_tail)
        job->waiters_tail->next = w;
    else
        job->waiters = w;
    job->waiters_tail = w;
}

/* job_free: stop whatever the job waits for and free it; waiters are dropped without a call
 * (job_settle has delivered to them, or the hook is going away). */
static void job_free(NotifyJob *job)
{
    if (job == NULL)
        return;
    if (job->call != NULL)
        http_call_cancel(job->call);
    event_free(job->timer);
    Waiter *w = job->waiters;
    while (w != NULL) {
        Waiter *next = w->next;
        free(w);
        w = next;
    }
    free(job->body);
    free(job);
}

/* job_settle: deliver the outcome to every waiter of the job, then free it. The caller has
 * already detached the job from its tenant. */
static void job_settle(ComputeHook *hook, NotifyJob *job, ComputeNotifyOutcome o, int status,
                       const Err *err)
{
    ComputeNotifyResult res;
    memset(&res, 0, sizeof(res));
    res.tenant_id = job->ts->id;
    res.outcome = o;
    res.status = status;
    res.attempts = job->attempts;
    if (err != NULL)
        res.err = *err;
    for (Waiter *w = job->waiters; w != NULL; w = w->next)
        deliver(hook, w->done, w->arg, &res);
    job_free(job);
}

static void job_supersede(ComputeHook *hook, NotifyJob *job)
{
    Err e;
    err_set(&e, ERR_CONFLICT, "superseded by a newer shard map");
    job_settle(hook, job, COMPUTE_NOTIFY_SUPERSEDED, 0, &e);
}

static void http_done_cb(const HttpClientResponse *resp, void *arg);

/* job_send: one notify-attach request for the tenant's current job. */
static void job_send(ComputeHook *hook, NotifyJob *job)
{
    job->state = NOTIFY_JOB_SENDING;
    job->attempts++;
    HttpClientRequest req = {
        .method = "PUT",
        .url = hook->url,
        .body = job->body,
        .body_len = strlen(job->body),
        .bearer_token = hook->token,
        .timeout_ms = hook->timeout_ms,
        .retry = {.max_attempts = 1}, /* retries are ours: they also cover 423, 429, 502, 504 */
    };
    job->call = http_client_start(hook->http, &req, http_done_cb, job);
}

/* job_start: make job the tenant's current one (there is none) unless the control plane already
 * accepted this very body. From the first request on the control plane's state is unknown until
 * it accepts, so the remembered accepted body is dropped. */
static void job_start(ComputeHook *hook, TenantState *ts, NotifyJob *job)
{
    if (ts->accepted != NULL && strcmp(ts->accepted, job->body) == 0) {
        ts->failed = false;
        if (hook->m_dedup)
            metric_counter_add(hook->m_dedup, 1);
        job_settle(hook, job, COMPUTE_NOTIFY_DEDUPLICATED, 0, NULL);
        return;
    }
    free(ts->accepted);
    ts->accepted = NULL;
    ts->current = job;
    job_send(hook, job);
}

/* tenant_start_next: the current job ended; start the queued one, if any. */
static void tenant_start_next(ComputeHook *hook, TenantState *ts)
{
    if (ts->current != NULL || ts->queued == NULL)
        return;
    NotifyJob *job = ts->queued;
    ts->queued = NULL;
    job_start(hook, ts, job);
}

/* status_transient: worth retrying with the transient budget (423 has a budget of its own). */
static bool status_transient(int status)
{
    return status == 0 || status == 429 || status == 502 || status == 503 || status == 504;
}

static void job_sending_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    NotifyJob *job = arg;
    job_send(job->hook, job);
}

/* http_done_cb: a notify-attach request ended. Accepted: remember the body, settle, start the
 * queued map. Retriable: back off (unless a newer map waits: then it goes first). Otherwise the
 * notification failed and the tenant stays pending for the background pass. */
static void http_done_cb(const HttpClientResponse *resp, void *arg)
{
    NotifyJob *job = arg;
    ComputeHook *hook = job->hook;
    TenantState *ts = job->ts;
    job->call = NULL; /* the HTTP client frees it after this callback */
    char tid[ID_STR_SIZE];
    tenant_id_format(&ts->id, tid);
    int st = resp->status;

    if (st >= 200 && st < 300) {
        ts->current = NULL;
        ts->accepted = job->body;
        job->body = NULL;
        ts->failed = false;
        if (hook->m_sent)
            metric_counter_add(hook->m_sent, 1);
        log_info("compute notification for tenant %s accepted (attempt %d)", tid, job->attempts);
        job_settle(hook, job, COMPUTE_NOTIFY_SENT, st, NULL);
        tenant_start_next(hook, ts);
        return;
    }

    Err e;
    http_response_err(resp, &e);
    bool locked = st == 423;
    bool retry = false;
    if (locked) {
        job->locked_answers++;
        retry = job->locked_answers < hook->locked_max_attempts;
    } else if (status_transient(st)) {
        job->transient_failures++;
        retry = job->transient_failures < hook->max_attempts;
    }
    if (retry && ts->queued != NULL) {
        ts->current = NULL;
        job_supersede(hook, job);
        tenant_start_next(hook, ts);
        return;
    }
    if (retry) {
        int n = locked ? job->locked_answers : job->transient_failures;
        long delay = backoff_delay_ms(n, hook->backoff_base_ms, hook->backoff_max_ms);
        if (locked)
            log_info("compute notification for tenant %s: stored but not applied yet (423), "
                     "retrying in %ld ms",
                     tid, delay);
        else
            log_info("compute notification for tenant %s: %s; retrying in %ld ms", tid, e.msg,
                     delay);
        job->state = NOTIFY_JOB_BACKOFF;
        struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
        evtimer_add(job->timer, &tv);
        return;
    }

    ts->current = NULL;
    ts->failed = true;
    if (hook->m_failed)
        metric_counter_add(hook->m_failed, 1);
    err_prefix(&e, "compute notification for tenant %s (attempts: %d): ", tid, job->attempts);
    log_warn("%s; tenant stays pending", e.msg);
    job_settle(hook, job, locked ? COMPUTE_NOTIFY_LOCKED : COMPUTE_NOTIFY_FAILED, st, &e);
    tenant_start_next(hook, ts);
}

/* ---- public API ---- */

ComputeHook *compute_hook_new(struct event_base *base, HttpClient *http, MetricsRegistry *metrics,
                              const ComputeHookOptions *opts)
{
    static const ComputeHookOptions none = {0};
    if (opts == NULL)
        opts = &none;
    ComputeHook *hook = xcalloc(1, sizeof(*hook));
    hook->base = base;
    hook->http = http;
    const char *url = opts->control_plane_url;
    hook->enabled = url != NULL && url[0] != '\0';
    if (hook->enabled) {
        size_t n = strlen(url);
        while (n > 0 && url[n - 1] == '/')
            n--;
        hook->url = str_dup_printf("%.*s/notify-attach", (int)n, url);
    }
    if (opts->bearer_token != NULL)
        hook->token = xstrdup(opts->bearer_token);
    hook->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : COMPUTE_HOOK_DEFAULT_TIMEOUT_MS;
    hook->max_attempts =
        opts->max_attempts > 0 ? opts->max_attempts : COMPUTE_HOOK_DEFAULT_MAX_ATTEMPTS;
    hook->locked_max_attempts = opts->locked_max_attempts > 0
                                    ? opts->locked_max_attempts
                                    : COMPUTE_HOOK_DEFAULT_LOCKED_MAX_ATTEMPTS;
    hook->backoff_base_ms =
        opts->backoff_base_ms > 0 ? opts->backoff_base_ms : COMPUTE_HOOK_DEFAULT_BACKOFF_BASE_MS;
    hook->backoff_max_ms =
        opts->backoff_max_ms > 0 ? opts->backoff_max_ms : COMPUTE_HOOK_DEFAULT_BACKOFF_MAX_MS;
    hook->nbuckets = COMPUTE_HOOK_INITIAL_BUCKETS;
    hook->buckets = xcalloc(hook->nbuckets, sizeof(*hook->buckets));
    hook->deliver_ev = evtimer_new(base, deliver_event_cb, hook);
    if (hook->deliver_ev == NULL) {
        log_error("compute hook: evtimer_new failed");
        abort(); /* like an allocation failure */
    }
    if (metrics != NULL) {
        hook->m_sent = metrics_counter(metrics, "compute_notifications_sent_total",
                                       "Compute notifications accepted by the control plane", NULL);
        hook->m_failed = metrics_counter(metrics, "compute_notifications_failed_total",
                                         "Compute notifications that ended without acceptance "
                                         "(the tenant stays pending)",
                                         NULL);
        hook->m_dedup = metrics_counter(metrics, "compute_notifications_deduplicated_total",
                                        "Compute notifications skipped: the control plane "
                                        "already accepted this shard map",
                                        NULL);
    }
    if (hook->enabled)
        log_info("compute notifications go to %s", hook->url);
    else
        log_info("no control-plane URL: compute notifications are off");
    return hook;
}

void compute_hook_free(ComputeHook *hook)
{
    if (hook == NULL)
        return;
    for (size_t i = 0; i < hook->nbuckets; i++) {
        TenantState *ts = hook->buckets[i];
        while (ts != NULL) {
            TenantState *next = ts->hnext;
            job_free(ts->current);
            job_free(ts->queued);
            free(ts->accepted);
            free(ts);
            ts = next;
        }
    }
    Delivery *d = hook->dq_head;
    while (d != NULL) {
        Delivery *next = d->next;
        free(d);
        d = next;
    }
    event_free(hook->deliver_ev);
    free(hook->buckets);
    free(hook->url);
    free(hook->token);
    free(hook);
}

bool compute_hook_enabled(const ComputeHook *hook)
{
    return hook->enabled;
}

/* compute_hook_notify: see the header. The order of the checks matters: a map equal to the one
 * in flight joins it (and makes any queued, older-than-newest map pointless); one equal to the
 * queued map joins that; anything else is the newest map and replaces whatever has not been
 * sent yet or waits to be retried. */
void compute_hook_notify(ComputeHook *hook, const ComputeHookTenant *snapshot, ComputeHookDone done,
                         void *arg)
{
    if (!hook->enabled) {
        deliver_simple(hook, &snapshot->tenant_id, COMPUTE_NOTIFY_DISABLED, NULL, done, arg);
        return;
    }
    char *body = NULL;
    Err e;
    if (!compute_hook_render_body(snapshot, &body, &e)) {
        char tid[ID_STR_SIZE];
        tenant_id_format(&snapshot->tenant_id, tid);
        err_prefix(&e, "compute notification for tenant %s: ", tid);
        log_debug("%s", e.msg);
        deliver_simple(hook, &snapshot->tenant_id,
                       e.code == ERR_UNAVAILABLE ? COMPUTE_NOTIFY_NOT_READY : COMPUTE_NOTIFY_FAILED,
                       &e, done, arg);
        return;
    }

    TenantState *ts = tenant_get(hook, &snapshot->tenant_id);
    NotifyJob *cur = ts->current;
    if (cur != NULL && strcmp(cur->body, body) == 0) {
        if (ts->queued != NULL) {
            NotifyJob *q = ts->queued;
            ts->queued = NULL;
            job_supersede(hook, q);
        }
        job_add_waiter(cur, done, arg);
        free(body);
        return;
    }
    if (ts->queued != NULL && strcmp(ts->queued->body, body) == 0) {
        job_add_waiter(ts->queued, done, arg);
        free(body);
        return;
    }
    if (ts->queued != NULL) {
        NotifyJob *q = ts->queued;
        ts->queued = NULL;
        job_supersede(hook, q);
    }
    NotifyJob *job = job_new(hook, ts, body);
    job_add_waiter(job, done, arg);
    if (cur != NULL && cur->state == NOTIFY_JOB_BACKOFF) {
        ts->current = NULL;
        job_supersede(hook, cur);
    }
    if (ts->current != NULL) {
        ts->queued = job; /* one request in flight per tenant */
        return;
    }
    job_start(hook, ts, job);
}

bool compute_hook_is_pending(const ComputeHook *hook, const TenantId *tenant)
{
    if (!hook->enabled)
        return false;
    const TenantState *ts = tenant_find(hook, tenant);
    return ts != NULL && (ts->current != NULL || ts->queued != NULL || ts->failed);
}

size_t compute_hook_pending_count(const ComputeHook *hook)
{
    size_t n = 0;
    for (size_t i = 0; i < hook->nbuckets; i++) {
        for (const TenantState *ts = hook->buckets[i]; ts; ts = ts->hnext) {
            if (ts->current != NULL || ts->queued != NULL || ts->failed)
                n++;
        }
    }
    return n;
}

void compute_hook_forget(ComputeHook *hook, const TenantId *tenant)
{
    TenantState *ts = tenant_find(hook, tenant);
    if (ts == NULL)
        return;
    tenant_unlink(hook, ts);
    Err e;
    err_set(&e, ERR_NOT_FOUND, "tenant forgotten (deleted)");
    if (ts->current != NULL)
        job_settle(hook, ts->current, COMPUTE_NOTIFY_CANCELLED, 0, &e);
    if (ts->queued != NULL)
        job_settle(hook, ts->queued, COMPUTE_NOTIFY_CANCELLED, 0, &e);
    free(ts->accepted);
    free(ts);
}
