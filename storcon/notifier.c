/*
 * notifier.c: keyed coalescing notifications (rules in notifier.h).
 *
 * Per key (KeyState, in a hash table keyed by the key bytes): the SHA-256 of the body the
 * endpoint last accepted, a "failed" flag, and at most two jobs: `current` (a request in flight or
 * a retry waiting for its backoff timer) and `queued` (the newest body, waiting for current to
 * end). A job carries the body and the callbacks waiting for it (several notifies of one body
 * share one job). With a store, a key also has its record's state: whether the store is known to
 * hold no record (`durable_clear`), and the newest record wanted (`want_has` / `want`) while a
 * write of it is queued or in flight. A job's transitions:
 *
 *   Queued --current ended, body not the accepted one, store holds no record--> Sending
 *   Queued --the same, but the store may hold a record--> Storing --record removed--> Sending
 *   Sending --2xx / budget exhausted / another status--> Settled (SENT / LOCKED / FAILED)
 *   Sending --423 / transport / 429 / 502-504, budget left--> Backoff --timer--> Sending
 *   Sending, retry due but a newer body queued --> Settled (SUPERSEDED)
 *   Queued or Backoff --a different newer body, or dedup--> Settled
 *   any --notifier_forget--> Settled (CANCELLED)
 *
 * Outcomes reach callbacks through a LoopDefer (shared/defer.h), never synchronously, so a
 * callback may call back into the notifier (notify again, forget) without finding it mid-update.
 */
#include "storcon/notifier.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/sha.h>

#include "shared/defer.h"
#include "shared/fsm.h"
#include "shared/log.h"
#include "shared/str.h"

/* Defaults (the compute hook's; to move to storcon/defaults.h). */
#define NOTIFIER_DEFAULT_TIMEOUT_MS          10000L /* per request */
#define NOTIFIER_DEFAULT_MAX_ATTEMPTS        8      /* transport errors, 429, 502-504 */
#define NOTIFIER_DEFAULT_LOCKED_MAX_ATTEMPTS 30     /* 423 answers before giving up (pending) */
#define NOTIFIER_DEFAULT_BACKOFF_BASE_MS     200L
#define NOTIFIER_DEFAULT_BACKOFF_MAX_MS      5000L
#define NOTIFIER_INITIAL_BUCKETS             64    /* power of two */
#define NOTIFIER_STORE_BATCH                 1000  /* record writes per store call */
#define NOTIFIER_DEFAULT_MAX_INFLIGHT        128   /* requests in flight over all keys */
#define NOTIFIER_STORE_RETRY_MS              1000L /* after a failed record write */

typedef enum NotifierJobState {
    NOTIFIER_JOB_QUEUED,  /* behind the key's current job */
    NOTIFIER_JOB_SENDING, /* request in flight */
    NOTIFIER_JOB_BACKOFF, /* waiting for the retry timer */
    NOTIFIER_JOB_STORING, /* waiting for the key's record to be removed before sending */
    NOTIFIER_JOB_SETTLED, /* outcome handed to the waiters; freed at once */
    NOTIFIER_JOB_STATE_COUNT
} NotifierJobState;

static const char *const JOB_STATE_NAMES[NOTIFIER_JOB_STATE_COUNT] = {
    [NOTIFIER_JOB_QUEUED] = "Queued",   [NOTIFIER_JOB_SENDING] = "Sending",
    [NOTIFIER_JOB_BACKOFF] = "Backoff", [NOTIFIER_JOB_STORING] = "Storing",
    [NOTIFIER_JOB_SETTLED] = "Settled",
};

static const FsmTransition JOB_TRANSITIONS[] = {
    {NOTIFIER_JOB_QUEUED, NOTIFIER_JOB_SENDING, "current ended, body not accepted yet"},
    {NOTIFIER_JOB_QUEUED, NOTIFIER_JOB_SETTLED, "deduplicated, superseded or cancelled"},
    {NOTIFIER_JOB_QUEUED, NOTIFIER_JOB_STORING, "the key's record must go first"},
    {NOTIFIER_JOB_STORING, NOTIFIER_JOB_SENDING, "record removed"},
    {NOTIFIER_JOB_STORING, NOTIFIER_JOB_SETTLED, "superseded or cancelled"},
    {NOTIFIER_JOB_SENDING, NOTIFIER_JOB_BACKOFF, "423, transport, 429, 502-504, budget left"},
    {NOTIFIER_JOB_SENDING, NOTIFIER_JOB_SETTLED, "accepted, failed, superseded or cancelled"},
    {NOTIFIER_JOB_BACKOFF, NOTIFIER_JOB_SENDING, "timer"},
    {NOTIFIER_JOB_BACKOFF, NOTIFIER_JOB_SETTLED, "superseded or cancelled"},
};

static const int JOB_TERMINAL[] = {NOTIFIER_JOB_SETTLED};

static const FsmDef NOTIFIER_JOB_FSM = {
    .name = "notifier_job",
    .doc = "docs/state-machines.md",
    .state_names = JOB_STATE_NAMES,
    .n_states = NOTIFIER_JOB_STATE_COUNT,
    .initial = NOTIFIER_JOB_QUEUED,
    .terminal = JOB_TERMINAL,
    .n_terminal = FSM_COUNT(JOB_TERMINAL),
    .transitions = JOB_TRANSITIONS,
    .n_transitions = FSM_COUNT(JOB_TRANSITIONS),
};
FSM_REGISTER(NOTIFIER_JOB_FSM)

typedef struct Waiter {
    NotifierDone done;
    void *arg;
    struct Waiter *next;
} Waiter;

typedef struct KeyState KeyState;

typedef struct NotifyJob {
    Notifier *n;
    KeyState *ks;
    NotifierJobState state;
    char *body;
    Waiter *waiters, *waiters_tail;
    int attempts;
    int transient_failures; /* transport, timeout, 429, 502-504 */
    int locked_answers;     /* 423 */
    HttpCall *call;         /* SENDING, holding one of the notifier's request slots */
    struct event *timer;    /* BACKOFF */
    bool waiting_slot;      /* SENDING, waiting for a request slot (n->slot_head list) */
    struct NotifyJob *wprev, *wnext;
} NotifyJob;

struct KeyState {
    uint8_t key[NOTIFIER_KEY_MAX];
    size_t key_len;
    char label[NOTIFIER_LABEL_MAX];
    KeyState *hnext;
    bool has_accepted;                    /* false: none or unknown */
    uint8_t accepted[NOTIFIER_HASH_SIZE]; /* SHA-256 of the last body the endpoint accepted */
    bool failed;                          /* the last notification ended without acceptance */
    NotifyJob *current;
    NotifyJob *queued;
    /* the durable record (with a store) */
    bool durable_clear;  /* the store is known to hold no record for the key */
    bool store_queued;   /* in the write queue, to write `want` */
    bool store_inflight; /* in the write in flight */
    bool want_has;       /* the newest record wanted (while queued or in flight) */
    uint8_t want[NOTIFIER_HASH_SIZE];
    KeyState *store_next; /* write queue */
    bool forgotten;       /* notifier_forget ran; kept until its record is removed */
};

/* A result on its way to a callback (key copied: the KeyState may be gone by then). */
typedef struct Delivery {
    Notifier *n;
    struct Delivery *prev, *next; /* in n->deliveries until run */
    NotifierDone done;
    void *arg;
    NotifierResult res;
    uint8_t key[NOTIFIER_KEY_MAX];
} Delivery;

struct Notifier {
    struct event_base *base;
    HttpClient *http;
    bool enabled;
    char *what;
    char *url;
    char *method;
    char *token;
    NotifierRenderFn render;
    void (*drop_arg)(void *arg);
    long timeout_ms;
    int max_attempts;
    int locked_max_attempts;
    long backoff_base_ms, backoff_max_ms;

    KeyState **buckets;
    size_t nbuckets, nkeys;

    LoopDefer *defer;
    Delivery *deliveries; /* not yet run, so notifier_free can free them */

    NotifierStore store;
    bool new_keys_unknown;             /* records may exist for keys never seeded */
    KeyState *store_head, *store_tail; /* keys whose record must be written */
    KeyState **batch;                  /* the write in flight */
    NotifierStoreEntry *batch_entries;
    size_t batch_n;
    bool writing;
    struct event *store_retry;

    int max_inflight;                 /* request slots over all keys */
    int inflight;                     /* slots taken */
    NotifyJob *slot_head, *slot_tail; /* jobs waiting for a slot, FIFO */

    MetricCounter *m_sent, *m_failed, *m_dedup;
};

static const char *const OUTCOME_NAMES[NOTIFIER_OUTCOME_COUNT] = {
    [NOTIFIER_SENT] = "sent",
    [NOTIFIER_DEDUPLICATED] = "deduplicated",
    [NOTIFIER_DISABLED] = "disabled",
    [NOTIFIER_NOT_READY] = "not_ready",
    [NOTIFIER_SUPERSEDED] = "superseded",
    [NOTIFIER_LOCKED] = "locked",
    [NOTIFIER_FAILED] = "failed",
    [NOTIFIER_CANCELLED] = "cancelled",
};

const char *notifier_outcome_name(NotifierOutcome o)
{
    if ((int)o < 0 || o >= NOTIFIER_OUTCOME_COUNT)
        return "?";
    return OUTCOME_NAMES[o];
}

bool notifier_outcome_ok(NotifierOutcome o)
{
    return o == NOTIFIER_SENT || o == NOTIFIER_DEDUPLICATED || o == NOTIFIER_DISABLED;
}

/* ---- deliveries ---- */

static void delivery_unlink(Notifier *n, Delivery *d)
{
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        n->deliveries = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
}

static void delivery_run(void *arg)
{
    Delivery *d = arg;
    delivery_unlink(d->n, d);
    d->res.key = d->key;
    d->done(&d->res, d->arg);
    free(d);
}

/* deliver: hand an outcome to a callback on a later loop iteration. */
static void deliver(Notifier *n, NotifierDone done, void *arg, const NotifierResult *res)
{
    if (done == NULL)
        return;
    Delivery *d = xcalloc(1, sizeof(*d));
    d->n = n;
    d->done = done;
    d->arg = arg;
    d->res = *res;
    if (res->key_len > 0)
        memcpy(d->key, res->key, res->key_len);
    d->res.key = NULL;
    d->next = n->deliveries;
    if (n->deliveries != NULL)
        n->deliveries->prev = d;
    n->deliveries = d;
    loop_defer(n->defer, delivery_run, d);
}

static void deliver_simple(Notifier *n, const void *key, size_t key_len, NotifierOutcome o,
                           const Err *err, NotifierDone done, void *arg)
{
    NotifierResult res;
    memset(&res, 0, sizeof(res));
    res.key = key;
    res.key_len = key_len;
    res.outcome = o;
    if (err != NULL)
        res.err = *err;
    deliver(n, done, arg, &res);
}

/* ---- key table ---- */

static size_t key_hash(const void *key, size_t len)
{
    const uint8_t *b = key;
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 0x100000001b3u;
    }
    return (size_t)(h ^ (h >> 32));
}

static KeyState *key_find(const Notifier *n, const void *key, size_t len)
{
    for (KeyState *ks = n->buckets[key_hash(key, len) & (n->nbuckets - 1)]; ks; ks = ks->hnext) {
        if (ks->key_len == len && memcmp(ks->key, key, len) == 0)
            return ks;
    }
    return NULL;
}

static void table_grow(Notifier *n)
{
    size_t nb = n->nbuckets * 2;
    KeyState **b = xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < n->nbuckets; i++) {
        KeyState *ks = n->buckets[i];
        while (ks != NULL) {
            KeyState *next = ks->hnext;
            size_t k = key_hash(ks->key, ks->key_len) & (nb - 1);
            ks->hnext = b[k];
            b[k] = ks;
            ks = next;
        }
    }
    free(n->buckets);
    n->buckets = b;
    n->nbuckets = nb;
}

static KeyState *key_get(Notifier *n, const void *key, size_t len, const char *label)
{
    KeyState *ks = key_find(n, key, len);
    if (ks != NULL)
        return ks;
    if (n->nkeys >= n->nbuckets)
        table_grow(n);
    ks = xcalloc(1, sizeof(*ks));
    memcpy(ks->key, key, len);
    ks->key_len = len;
    (void)str_copy(ks->label, sizeof(ks->label), label != NULL ? label : "?"); /* cut: logs only */
    ks->durable_clear = !n->new_keys_unknown;
    size_t k = key_hash(key, len) & (n->nbuckets - 1);
    ks->hnext = n->buckets[k];
    n->buckets[k] = ks;
    n->nkeys++;
    return ks;
}

static void key_unlink(Notifier *n, KeyState *ks)
{
    KeyState **pp = &n->buckets[key_hash(ks->key, ks->key_len) & (n->nbuckets - 1)];
    while (*pp != NULL && *pp != ks)
        pp = &(*pp)->hnext;
    if (*pp == ks) {
        *pp = ks->hnext;
        n->nkeys--;
    }
}

/* ---- the durable record of accepted bodies ---- */

static void body_hash(const char *body, uint8_t out[NOTIFIER_HASH_SIZE])
{
    SHA256((const unsigned char *)body, strlen(body), out);
}

static bool store_enabled(const Notifier *n)
{
    return n->store.write != NULL;
}

/* record_clear: the store holds no record for the key and no write of one is pending. */
static bool record_clear(const KeyState *ks)
{
    return ks->durable_clear && !ks->store_queued && !ks->store_inflight;
}

static void store_kick(Notifier *n);

/* store_enqueue: queue the key's write of `want` (once; a queued key's newest want is written). */
static void store_enqueue(Notifier *n, KeyState *ks)
{
    if (!ks->store_queued) {
        ks->store_queued = true;
        ks->store_next = NULL;
        if (n->store_tail != NULL)
            n->store_tail->store_next = ks;
        else
            n->store_head = ks;
        n->store_tail = ks;
    }
    store_kick(n);
}

/* store_want: the key's record must become hash (NULL: none); queued behind earlier writes, the
 * newest wish per key replacing a queued one. */
static void store_want(Notifier *n, KeyState *ks, const uint8_t *hash)
{
    ks->want_has = hash != NULL;
    if (hash != NULL)
        memcpy(ks->want, hash, NOTIFIER_HASH_SIZE);
    store_enqueue(n, ks);
}

/* store_want_none: make sure the key's record goes (unless that is already on its way). */
static void store_want_none(Notifier *n, KeyState *ks)
{
    if ((ks->store_queued || ks->store_inflight) && !ks->want_has)
        return;
    store_want(n, ks, NULL);
}

static void job_send(Notifier *n, NotifyJob *job);
static void key_release(Notifier *n, KeyState *ks);

/* key_store_settled: a write for the key ended: a job waiting for its record to go may send. */
static void key_store_settled(Notifier *n, KeyState *ks)
{
    if (ks->current != NULL && ks->current->state == NOTIFIER_JOB_STORING) {
        if (record_clear(ks))
            job_send(n, ks->current);
        else
            store_want_none(n, ks); /* the removal failed: it is queued again */
    }
    if (ks->forgotten && ks->current == NULL && ks->queued == NULL && !ks->store_queued &&
        !ks->store_inflight)
        key_release(n, ks);
}

/* store_done: the write in flight ended. While its keys are settled n->writing stays set, so
 * that nothing starts a new write over the batch being walked; the next one starts at the end
 * (after a failure: when the retry timer fires). */
static void store_done(const Err *err, void *arg)
{
    Notifier *n = arg;
    size_t count = n->batch_n;
    if (err != NULL) {
        log_warn("%s: recording what was accepted failed (retrying in %ld ms): %s", n->what,
                 NOTIFIER_STORE_RETRY_MS, err->msg);
        struct timeval tv = {.tv_sec = NOTIFIER_STORE_RETRY_MS / 1000,
                             .tv_usec = (NOTIFIER_STORE_RETRY_MS % 1000) * 1000};
        evtimer_add(n->store_retry, &tv);
    }
    for (size_t i = 0; i < count; i++) {
        KeyState *ks = n->batch[i];
        ks->store_inflight = false;
        if (err == NULL) {
            ks->durable_clear = !n->batch_entries[i].has_hash;
        } else {
            ks->durable_clear = false; /* unknown */
            store_enqueue(n, ks);      /* the newest wish (maybe this one) again */
        }
    }
    for (size_t i = 0; i < count; i++)
        key_store_settled(n, n->batch[i]);
    n->batch_n = 0;
    n->writing = false;
    store_kick(n);
}

static void store_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    store_kick(arg);
}

/* store_kick: start the next batch of record writes, unless one is in flight or a retry waits. */
static void store_kick(Notifier *n)
{
    if (n->writing || n->store_head == NULL || evtimer_pending(n->store_retry, NULL))
        return;
    size_t k = 0;
    while (n->store_head != NULL && k < NOTIFIER_STORE_BATCH) {
        KeyState *ks = n->store_head;
        n->store_head = ks->store_next;
        if (n->store_head == NULL)
            n->store_tail = NULL;
        ks->store_next = NULL;
        ks->store_queued = false;
        ks->store_inflight = true;
        n->batch[k] = ks;
        NotifierStoreEntry *e = &n->batch_entries[k];
        e->key = ks->key;
        e->key_len = ks->key_len;
        e->has_hash = ks->want_has;
        memcpy(e->hash, ks->want, NOTIFIER_HASH_SIZE);
        k++;
    }
    n->batch_n = k;
    n->writing = true;
    n->store.write(n->store.ctx, n->batch_entries, k, store_done, n);
}

/* ---- jobs ---- */

static void job_timer_cb(evutil_socket_t fd, short what, void *arg);

static void job_set_state(NotifyJob *job, NotifierJobState to)
{
    (void)fsm_set_state(&NOTIFIER_JOB_FSM, &job->state, to, job->ks->label);
}

static NotifyJob *job_new(Notifier *n, KeyState *ks, char *body)
{
    NotifyJob *job = xcalloc(1, sizeof(*job));
    job->n = n;
    job->ks = ks;
    job->body = body;
    job->state = NOTIFIER_JOB_QUEUED;
    job->timer = evtimer_new(n->base, job_timer_cb, job);
    if (job->timer == NULL) {
        log_error("notifier: evtimer_new failed");
        abort(); /* like an allocation failure */
    }
    return job;
}

static void job_add_waiter(NotifyJob *job, NotifierDone done, void *arg)
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
 * (job_settle has delivered to them, or the notifier is going away: then drop_arg tells). */
static void slot_unlink(Notifier *n, NotifyJob *job);
static void slots_fill(Notifier *n);

static void job_free(NotifyJob *job, bool going_away)
{
    if (job == NULL)
        return;
    if (job->waiting_slot)
        slot_unlink(job->n, job);
    if (job->call != NULL) {
        http_call_cancel(job->call);
        job->n->inflight--;
        if (!going_away)
            slots_fill(job->n);
    }
    event_free(job->timer);
    Waiter *w = job->waiters;
    while (w != NULL) {
        Waiter *next = w->next;
        if (going_away && job->n->drop_arg != NULL)
            job->n->drop_arg(w->arg);
        free(w);
        w = next;
    }
    free(job->body);
    free(job);
}

/* job_settle: deliver the outcome to every waiter of the job, then free it. The caller has
 * already detached the job from its key. */
static void job_settle(Notifier *n, NotifyJob *job, NotifierOutcome o, int status, const Err *err)
{
    job_set_state(job, NOTIFIER_JOB_SETTLED);
    NotifierResult res;
    memset(&res, 0, sizeof(res));
    res.key = job->ks->key;
    res.key_len = job->ks->key_len;
    res.outcome = o;
    res.status = status;
    res.attempts = job->attempts;
    if (err != NULL)
        res.err = *err;
    for (Waiter *w = job->waiters; w != NULL; w = w->next)
        deliver(n, w->done, w->arg, &res);
    job_free(job, false);
}

static void job_supersede(Notifier *n, NotifyJob *job)
{
    Err e;
    err_set(&e, ERR_CONFLICT, "superseded by a newer %s", n->what);
    job_settle(n, job, NOTIFIER_SUPERSEDED, 0, &e);
}

static void http_done_cb(const HttpClientResponse *resp, void *arg);

/* ---- request slots: at most max_inflight requests over all keys; the rest wait in FIFO order
 * (a failover notifying 25,000 tenants must not open 25,000 connections at once) ---- */

static void slot_unlink(Notifier *n, NotifyJob *job)
{
    if (job->wprev != NULL)
        job->wprev->wnext = job->wnext;
    else
        n->slot_head = job->wnext;
    if (job->wnext != NULL)
        job->wnext->wprev = job->wprev;
    else
        n->slot_tail = job->wprev;
    job->wprev = job->wnext = NULL;
    job->waiting_slot = false;
}

static void job_request(Notifier *n, NotifyJob *job);

/* slots_fill: start waiting jobs while slots are free. */
static void slots_fill(Notifier *n)
{
    while (n->inflight < n->max_inflight && n->slot_head != NULL) {
        NotifyJob *job = n->slot_head;
        slot_unlink(n, job);
        job_request(n, job);
    }
}

/* job_send: the key's current job sends (now, or when a slot is free). */
static void job_send(Notifier *n, NotifyJob *job)
{
    job_set_state(job, NOTIFIER_JOB_SENDING);
    if (n->inflight >= n->max_inflight) {
        job->waiting_slot = true;
        job->wnext = NULL;
        job->wprev = n->slot_tail;
        if (n->slot_tail != NULL)
            n->slot_tail->wnext = job;
        else
            n->slot_head = job;
        n->slot_tail = job;
        return;
    }
    job_request(n, job);
}

/* job_request: one request for a sending job, in a slot of its own. */
static void job_request(Notifier *n, NotifyJob *job)
{
    n->inflight++;
    job->attempts++;
    HttpClientRequest req = {
        .method = n->method,
        .url = n->url,
        .body = job->body,
        .body_len = strlen(job->body),
        .bearer_token = n->token,
        .timeout_ms = n->timeout_ms,
        .retry = {.max_attempts = 1}, /* retries are ours: they also cover 423, 429, 502, 504 */
    };
    job->call = http_client_start(n->http, &req, http_done_cb, job);
}

/* job_start: make job the key's current one (there is none) unless the endpoint already accepted
 * this very body. From the first request on the endpoint's state is unknown until it accepts, so
 * the remembered accepted body is dropped. */
static void job_start(Notifier *n, KeyState *ks, NotifyJob *job)
{
    uint8_t h[NOTIFIER_HASH_SIZE];
    body_hash(job->body, h);
    if (ks->has_accepted && memcmp(ks->accepted, h, sizeof(h)) == 0) {
        ks->failed = false;
        if (n->m_dedup)
            metric_counter_add(n->m_dedup, 1);
        job_settle(n, job, NOTIFIER_DEDUPLICATED, 0, NULL);
        return;
    }
    ks->has_accepted = false;
    ks->current = job;
    if (store_enabled(n) && !record_clear(ks)) {
        /* the record names a body the endpoint held; it must go before the endpoint's state
         * becomes unknown */
        store_want_none(n, ks);
        job_set_state(job, NOTIFIER_JOB_STORING);
        return;
    }
    job_send(n, job);
}

/* key_start_next: the current job ended; start the queued one, if any. */
static void key_start_next(Notifier *n, KeyState *ks)
{
    if (ks->current != NULL || ks->queued == NULL)
        return;
    NotifyJob *job = ks->queued;
    ks->queued = NULL;
    job_start(n, ks, job);
}

/* status_transient: worth retrying with the transient budget (423 has a budget of its own). */
static bool status_transient(int status)
{
    return status == 0 || status == 429 || status == 502 || status == 503 || status == 504;
}

static void job_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    NotifyJob *job = arg;
    job_send(job->n, job);
}

/* http_done_cb: a request ended. Accepted: remember the body, settle, start the queued body.
 * Retriable: back off (unless a newer body waits: then it goes first). Otherwise the
 * notification failed and the key stays pending. */
static void http_done_cb(const HttpClientResponse *resp, void *arg)
{
    NotifyJob *job = arg;
    Notifier *n = job->n;
    KeyState *ks = job->ks;
    job->call = NULL; /* the HTTP client frees it after this callback */
    n->inflight--;
    slots_fill(n);
    int st = resp->status;

    if (st >= 200 && st < 300) {
        ks->current = NULL;
        body_hash(job->body, ks->accepted);
        ks->has_accepted = true;
        ks->failed = false;
        if (store_enabled(n))
            store_want(n, ks, ks->accepted); /* after the 2xx: at least once */
        if (n->m_sent)
            metric_counter_add(n->m_sent, 1);
        log_info("%s for %s accepted (attempt %d)", n->what, ks->label, job->attempts);
        job_settle(n, job, NOTIFIER_SENT, st, NULL);
        key_start_next(n, ks);
        return;
    }

    Err e;
    http_response_err(resp, &e);
    bool locked = st == 423;
    bool retry = false;
    if (locked) {
        job->locked_answers++;
        retry = job->locked_answers < n->locked_max_attempts;
    } else if (status_transient(st)) {
        job->transient_failures++;
        retry = job->transient_failures < n->max_attempts;
    }
    if (retry && ks->queued != NULL) {
        ks->current = NULL;
        job_supersede(n, job);
        key_start_next(n, ks);
        return;
    }
    if (retry) {
        int k = locked ? job->locked_answers : job->transient_failures;
        long delay = backoff_delay_ms(k, n->backoff_base_ms, n->backoff_max_ms);
        if (locked)
            log_info("%s for %s: stored but not applied yet (423), retrying in %ld ms", n->what,
                     ks->label, delay);
        else
            log_info("%s for %s: %s; retrying in %ld ms", n->what, ks->label, e.msg, delay);
        job_set_state(job, NOTIFIER_JOB_BACKOFF);
        struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
        evtimer_add(job->timer, &tv);
        return;
    }

    ks->current = NULL;
    ks->failed = true;
    if (n->m_failed)
        metric_counter_add(n->m_failed, 1);
    err_prefix(&e, "%s for %s (attempts: %d): ", n->what, ks->label, job->attempts);
    log_warn("%s; %s stays pending", e.msg, ks->label);
    job_settle(n, job, locked ? NOTIFIER_LOCKED : NOTIFIER_FAILED, st, &e);
    key_start_next(n, ks);
}

/* ---- public API ---- */

static MetricCounter *counter(MetricsRegistry *m, const char *prefix, const char *suffix,
                              const char *help)
{
    char name[128];
    if (!str_printf(name, sizeof(name), "%s_%s", prefix, suffix)) {
        log_error("notifier: metric prefix %s too long", prefix);
        return NULL;
    }
    return metrics_counter(m, name, help, NULL);
}

Notifier *notifier_new(struct event_base *base, HttpClient *http, MetricsRegistry *metrics,
                       const NotifierOptions *opts)
{
    Notifier *n = xcalloc(1, sizeof(*n));
    n->base = base;
    n->http = http;
    n->what = xstrdup(opts->what != NULL ? opts->what : "notification");
    n->enabled = opts->url != NULL && opts->url[0] != '\0';
    if (n->enabled)
        n->url = xstrdup(opts->url);
    n->method = xstrdup(opts->method != NULL ? opts->method : "PUT");
    if (opts->bearer_token != NULL)
        n->token = xstrdup(opts->bearer_token);
    n->render = opts->render;
    n->drop_arg = opts->drop_arg;
    n->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : NOTIFIER_DEFAULT_TIMEOUT_MS;
    n->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : NOTIFIER_DEFAULT_MAX_ATTEMPTS;
    n->locked_max_attempts = opts->locked_max_attempts > 0 ? opts->locked_max_attempts
                                                           : NOTIFIER_DEFAULT_LOCKED_MAX_ATTEMPTS;
    n->backoff_base_ms =
        opts->backoff_base_ms > 0 ? opts->backoff_base_ms : NOTIFIER_DEFAULT_BACKOFF_BASE_MS;
    n->backoff_max_ms =
        opts->backoff_max_ms > 0 ? opts->backoff_max_ms : NOTIFIER_DEFAULT_BACKOFF_MAX_MS;
    n->nbuckets = NOTIFIER_INITIAL_BUCKETS;
    n->buckets = xcalloc(n->nbuckets, sizeof(*n->buckets));
    n->defer = loop_defer_new(base);
    n->store = opts->store;
    n->max_inflight = opts->max_inflight > 0 ? opts->max_inflight : NOTIFIER_DEFAULT_MAX_INFLIGHT;
    n->batch = xcalloc(NOTIFIER_STORE_BATCH, sizeof(*n->batch));
    n->batch_entries = xcalloc(NOTIFIER_STORE_BATCH, sizeof(*n->batch_entries));
    n->store_retry = evtimer_new(base, store_retry_cb, n);
    if (n->store_retry == NULL) {
        log_error("notifier: evtimer_new failed");
        abort(); /* like an allocation failure */
    }
    if (metrics != NULL && opts->metric_prefix != NULL) {
        char help[160];
        (void)str_printf(help, sizeof(help), "%ss accepted by the control plane", n->what);
        n->m_sent = counter(metrics, opts->metric_prefix, "sent_total", help);
        (void)str_printf(help, sizeof(help),
                         "%ss that ended without acceptance (the key stays pending)", n->what);
        n->m_failed = counter(metrics, opts->metric_prefix, "failed_total", help);
        (void)str_printf(help, sizeof(help),
                         "%ss skipped: the control plane already accepted this body", n->what);
        n->m_dedup = counter(metrics, opts->metric_prefix, "deduplicated_total", help);
    }
    return n;
}

void notifier_free(Notifier *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nbuckets; i++) {
        KeyState *ks = n->buckets[i];
        while (ks != NULL) {
            KeyState *next = ks->hnext;
            job_free(ks->current, true);
            job_free(ks->queued, true);
            free(ks);
            ks = next;
        }
    }
    loop_defer_free(n->defer); /* the deliveries not run yet never run */
    while (n->deliveries != NULL) {
        Delivery *d = n->deliveries;
        n->deliveries = d->next;
        if (n->drop_arg != NULL)
            n->drop_arg(d->arg);
        free(d);
    }
    if (n->writing && n->store.cancel != NULL)
        n->store.cancel(n->store.ctx);
    event_free(n->store_retry);
    free(n->batch);
    free(n->batch_entries);
    free(n->buckets);
    free(n->what);
    free(n->url);
    free(n->method);
    free(n->token);
    free(n);
}

bool notifier_enabled(const Notifier *n)
{
    return n->enabled;
}

/* notifier_notify: see the header. The order of the checks matters: a body equal to the one in
 * flight joins it (and makes any queued, older-than-newest body pointless); one equal to the
 * queued body joins that; anything else is the newest body and replaces whatever has not been
 * sent yet or waits to be retried. */
void notifier_notify(Notifier *n, const void *key, size_t key_len, const char *label,
                     const void *input, NotifierDone done, void *arg)
{
    if (key_len == 0 || key_len > NOTIFIER_KEY_MAX) {
        Err e;
        err_set(&e, ERR_INTERNAL, "%s: key of %zu bytes", n->what, key_len);
        log_err(&e, "notifier");
        deliver_simple(n, key, key_len > NOTIFIER_KEY_MAX ? NOTIFIER_KEY_MAX : key_len,
                       NOTIFIER_FAILED, &e, done, arg);
        return;
    }
    if (!n->enabled) {
        deliver_simple(n, key, key_len, NOTIFIER_DISABLED, NULL, done, arg);
        return;
    }
    char *body = NULL;
    Err e;
    if (!n->render(input, &body, &e)) {
        err_prefix(&e, "%s for %s: ", n->what, label != NULL ? label : "?");
        log_debug("%s", e.msg);
        deliver_simple(n, key, key_len,
                       e.code == ERR_UNAVAILABLE ? NOTIFIER_NOT_READY : NOTIFIER_FAILED, &e, done,
                       arg);
        return;
    }

    KeyState *ks = key_get(n, key, key_len, label);
    ks->forgotten = false;
    NotifyJob *cur = ks->current;
    if (cur != NULL && strcmp(cur->body, body) == 0) {
        if (ks->queued != NULL) {
            NotifyJob *q = ks->queued;
            ks->queued = NULL;
            job_supersede(n, q);
        }
        job_add_waiter(cur, done, arg);
        free(body);
        return;
    }
    if (ks->queued != NULL && strcmp(ks->queued->body, body) == 0) {
        job_add_waiter(ks->queued, done, arg);
        free(body);
        return;
    }
    if (ks->queued != NULL) {
        NotifyJob *q = ks->queued;
        ks->queued = NULL;
        job_supersede(n, q);
    }
    NotifyJob *job = job_new(n, ks, body);
    job_add_waiter(job, done, arg);
    if (cur != NULL && (cur->state == NOTIFIER_JOB_BACKOFF || cur->state == NOTIFIER_JOB_STORING ||
                        cur->waiting_slot)) {
        ks->current = NULL;
        job_supersede(n, cur);
    }
    if (ks->current != NULL) {
        ks->queued = job; /* one request in flight per key */
        return;
    }
    job_start(n, ks, job);
}

static bool key_pending(const KeyState *ks)
{
    return ks->current != NULL || ks->queued != NULL || ks->failed;
}

bool notifier_is_pending(const Notifier *n, const void *key, size_t key_len)
{
    if (!n->enabled || key_len == 0 || key_len > NOTIFIER_KEY_MAX)
        return false;
    const KeyState *ks = key_find(n, key, key_len);
    return ks != NULL && key_pending(ks);
}

size_t notifier_pending_count(const Notifier *n)
{
    size_t count = 0;
    for (size_t i = 0; i < n->nbuckets; i++) {
        for (const KeyState *ks = n->buckets[i]; ks; ks = ks->hnext) {
            if (key_pending(ks))
                count++;
        }
    }
    return count;
}

void notifier_forget(Notifier *n, const void *key, size_t key_len)
{
    if (key_len == 0 || key_len > NOTIFIER_KEY_MAX)
        return;
    KeyState *ks = key_find(n, key, key_len);
    if (ks == NULL)
        return;
    Err e;
    err_set(&e, ERR_NOT_FOUND, "%s forgotten (deleted)", ks->label);
    NotifyJob *cur = ks->current, *q = ks->queued;
    ks->current = ks->queued = NULL;
    if (cur != NULL)
        job_settle(n, cur, NOTIFIER_CANCELLED, 0, &e);
    if (q != NULL)
        job_settle(n, q, NOTIFIER_CANCELLED, 0, &e);
    ks->has_accepted = false;
    ks->failed = false;
    if (store_enabled(n) && !record_clear(ks)) {
        /* its record goes too; the key stays until that write is done */
        ks->forgotten = true;
        store_want_none(n, ks);
        return;
    }
    key_release(n, ks);
}

/* key_release: drop a key that has no job and no record write pending. */
static void key_release(Notifier *n, KeyState *ks)
{
    key_unlink(n, ks);
    free(ks);
}

void notifier_seed(Notifier *n, const void *key, size_t key_len, const char *label,
                   const uint8_t hash[NOTIFIER_HASH_SIZE])
{
    if (key_len == 0 || key_len > NOTIFIER_KEY_MAX)
        return;
    KeyState *ks = key_get(n, key, key_len, label);
    memcpy(ks->accepted, hash, NOTIFIER_HASH_SIZE);
    ks->has_accepted = true;
    ks->durable_clear = false;
}

void notifier_set_new_keys_unknown(Notifier *n, bool unknown)
{
    n->new_keys_unknown = unknown;
}

bool notifier_is_accepted(const Notifier *n, const void *key, size_t key_len, const void *input)
{
    if (!n->enabled || key_len == 0 || key_len > NOTIFIER_KEY_MAX)
        return false;
    const KeyState *ks = key_find(n, key, key_len);
    if (ks == NULL || !ks->has_accepted || key_pending(ks))
        return false;
    char *body = NULL;
    Err e;
    if (!n->render(input, &body, &e))
        return false;
    uint8_t h[NOTIFIER_HASH_SIZE];
    body_hash(body, h);
    free(body);
    return memcmp(h, ks->accepted, sizeof(h)) == 0;
}

bool notifier_store_idle(const Notifier *n)
{
    return !n->writing && n->store_head == NULL;
}
