/*
 * compute_hook.c: compute notifications: the notify-attach body and a keyed notifier
 * (storcon/notifier.c) keyed by tenant id that sends it (rules in compute_hook.h).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/log.h"
#include "shared/str.h"

#include "storcon/compute_hook.h"
#include "storcon/db_compute_notifications.h"

struct ComputeHook {
    Notifier *n;
    DbPool *db;         /* NULL: no database store */
    DbRequest *writing; /* the record write in flight */
    NotifierStoreDoneFn write_done;
    void *write_done_arg;
    void (*drop_arg)(void *arg); /* the options' */
};

/* HookWaiter: a caller's callback, called from the notifier's. */
typedef struct HookWaiter {
    ComputeHookDone done;
    void *arg;
    void (*drop_arg)(void *arg); /* the options': releases arg when done never runs */
} HookWaiter;

/* hook_drop_waiter: the notifier's drop_arg: a waiter whose callback will never run. */
static void hook_drop_waiter(void *p)
{
    HookWaiter *w = p;
    if (w->drop_arg != NULL)
        w->drop_arg(w->arg);
    free(w);
}

const char *compute_notify_outcome_name(ComputeNotifyOutcome o)
{
    return notifier_outcome_name((NotifierOutcome)o);
}

bool compute_notify_outcome_ok(ComputeNotifyOutcome o)
{
    return notifier_outcome_ok((NotifierOutcome)o);
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

/* ---- the notifier ---- */

static bool render_cb(const void *input, char **body, Err *err)
{
    return compute_hook_render_body(input, body, err);
}

static void hook_done_cb(const NotifierResult *r, void *arg)
{
    HookWaiter w = *(HookWaiter *)arg;
    free(arg);
    ComputeNotifyResult res;
    memset(&res, 0, sizeof(res));
    memcpy(res.tenant_id.b, r->key, sizeof(res.tenant_id.b));
    res.outcome = (ComputeNotifyOutcome)r->outcome;
    res.status = r->status;
    res.attempts = r->attempts;
    res.err = r->err;
    w.done(&res, w.arg);
}

/* ---- the database store (compute_notifications) ---- */

static void db_write_done(const Err *err, void *arg)
{
    ComputeHook *hook = arg;
    hook->writing = NULL;
    hook->write_done(err, hook->write_done_arg);
}

static void db_store_write(void *ctx, const NotifierStoreEntry *entries, size_t n,
                           NotifierStoreDoneFn done, void *done_arg)
{
    ComputeHook *hook = ctx;
    DbComputeNotificationWrite *w = xcalloc(n ? n : 1, sizeof(*w));
    for (size_t i = 0; i < n; i++) {
        memcpy(w[i].tenant_id.b, entries[i].key, sizeof(w[i].tenant_id.b)); /* keys are ids */
        w[i].has_hash = entries[i].has_hash;
        memcpy(w[i].body_sha256, entries[i].hash, sizeof(w[i].body_sha256));
    }
    hook->write_done = done;
    hook->write_done_arg = done_arg;
    hook->writing = db_compute_notifications_write(hook->db, w, n, db_write_done, hook);
    free(w);
}

static void db_store_cancel(void *ctx)
{
    ComputeHook *hook = ctx;
    if (hook->writing != NULL)
        db_cancel(hook->db, hook->writing);
    hook->writing = NULL;
}

ComputeHook *compute_hook_new(struct event_base *base, HttpClient *http, MetricsRegistry *metrics,
                              const ComputeHookOptions *opts)
{
    static const ComputeHookOptions none = {0};
    if (opts == NULL)
        opts = &none;
    ComputeHook *hook = xcalloc(1, sizeof(*hook));
    char *url = NULL;
    const char *cp = opts->control_plane_url;
    if (cp != NULL && cp[0] != '\0') {
        size_t len = strlen(cp);
        while (len > 0 && cp[len - 1] == '/')
            len--;
        url = str_dup_printf("%.*s/notify-attach", (int)len, cp);
    }
    NotifierOptions no = {
        .what = "compute notification",
        .url = url,
        .method = "PUT",
        .bearer_token = opts->bearer_token,
        .render = render_cb,
        .drop_arg = hook_drop_waiter,
        .metric_prefix = "compute_notifications",
        .timeout_ms = opts->timeout_ms,
        .max_attempts = opts->max_attempts,
        .locked_max_attempts = opts->locked_max_attempts,
        .backoff_base_ms = opts->backoff_base_ms,
        .backoff_max_ms = opts->backoff_max_ms,
        .store = opts->store,
        .max_inflight = opts->max_inflight,
    };
    hook->db = opts->db;
    hook->drop_arg = opts->drop_arg;
    if (opts->db != NULL)
        no.store = (NotifierStore){.write = db_store_write, .cancel = db_store_cancel, .ctx = hook};
    hook->n = notifier_new(base, http, metrics, &no);
    if (url != NULL)
        log_info("compute notifications go to %s", url);
    else
        log_info("no control-plane URL: compute notifications are off");
    free(url);
    return hook;
}

void compute_hook_free(ComputeHook *hook)
{
    if (hook == NULL)
        return;
    notifier_free(hook->n);
    free(hook);
}

bool compute_hook_enabled(const ComputeHook *hook)
{
    return notifier_enabled(hook->n);
}

void compute_hook_notify(ComputeHook *hook, const ComputeHookTenant *snapshot, ComputeHookDone done,
                         void *arg)
{
    HookWaiter *w = NULL;
    if (done != NULL) {
        w = xmalloc(sizeof(*w));
        w->done = done;
        w->arg = arg;
        w->drop_arg = hook->drop_arg;
    }
    char tid[ID_STR_SIZE], label[NOTIFIER_LABEL_MAX];
    tenant_id_format(&snapshot->tenant_id, tid);
    (void)str_printf(label, sizeof(label), "tenant %s", tid); /* fits */
    notifier_notify(hook->n, snapshot->tenant_id.b, sizeof(snapshot->tenant_id.b), label, snapshot,
                    done != NULL ? hook_done_cb : NULL, w);
}

bool compute_hook_is_pending(const ComputeHook *hook, const TenantId *tenant)
{
    return notifier_is_pending(hook->n, tenant->b, sizeof(tenant->b));
}

size_t compute_hook_pending_count(const ComputeHook *hook)
{
    return notifier_pending_count(hook->n);
}

void compute_hook_seed(ComputeHook *hook, const TenantId *tenant,
                       const uint8_t hash[NOTIFIER_HASH_SIZE])
{
    char tid[ID_STR_SIZE], label[NOTIFIER_LABEL_MAX];
    tenant_id_format(tenant, tid);
    (void)str_printf(label, sizeof(label), "tenant %s", tid); /* fits */
    notifier_seed(hook->n, tenant->b, sizeof(tenant->b), label, hash);
}

void compute_hook_records_unknown(ComputeHook *hook)
{
    notifier_set_new_keys_unknown(hook->n, true);
}

bool compute_hook_is_current(const ComputeHook *hook, const ComputeHookTenant *snapshot)
{
    return notifier_is_accepted(hook->n, snapshot->tenant_id.b, sizeof(snapshot->tenant_id.b),
                                snapshot);
}

bool compute_hook_store_idle(const ComputeHook *hook)
{
    return notifier_store_idle(hook->n);
}

void compute_hook_forget(ComputeHook *hook, const TenantId *tenant)
{
    notifier_forget(hook->n, tenant->b, sizeof(tenant->b));
}
