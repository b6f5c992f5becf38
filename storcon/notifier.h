/*
 * notifier.h: keyed, coalescing notifications to an HTTP endpoint (the control plane).
 *
 * One Notifier per kind of notification (compute notify-attach, tenant import_complete, ...). A
 * caller notifies a KEY (a tenant id, as bytes) with an INPUT that a body renderer turns into the
 * request body. Per key:
 *  - at most one request in flight; a newer body supersedes an older one that is queued or waiting
 *    to retry (or still waiting for a request slot: over all keys at most max_inflight requests
 *    run, the others wait in FIFO order) (the older one's callback says SUPERSEDED); an equal body
 * joins the job that carries it (several callbacks, one request);
 *  - deduplicated against the last body the endpoint ACCEPTED (2xx), kept as its SHA-256: a
 *    repeat is a no-op success (DEDUPLICATED). Once a request was attempted and not accepted the
 *    endpoint's state is unknown, so the next body is sent even if it equals the old accepted one;
 *  - optionally persisted (NotifierStore): the accepted hash is written after the 2xx (a crash
 *    before that write costs one repeated notification at the next start), and a key's record
 *    is removed, durably, BEFORE a different body is sent (the job waits in Storing), so a record
 *    always names a body the endpoint holds. notifier_seed puts the records back after a restart,
 *    and notifier_is_accepted tells whether a body is the recorded one. Writes are batched (one
 *    in flight, the newest per key wins) and retried until they succeed;
 *  - retried with capped exponential backoff (full jitter) on transport errors, timeouts, 429 and
 *    502-504, up to max_attempts; 423 ("stored, not applied yet") is retried on its own, larger
 *    budget (locked_max_attempts) without blocking any other key, and ends LOCKED when it runs
 *    out; any other status fails at once;
 *  - a notification that ends without acceptance (FAILED, LOCKED) leaves the key pending
 *    (notifier_is_pending) until a later one is accepted or deduplicated; so does one in flight
 *    or queued. Callers retry pending keys (e.g. the background reconcile pass).
 * Without a URL the notifier is off: every notify succeeds at once with DISABLED.
 *
 * A job's states (NOTIFIER_JOB_FSM, diagram in docs/state-machines.md): Queued (behind the key's
 * current job) -> [Storing (the record is being removed) ->] Sending -> Backoff -> Sending ... ->
 * Settled.
 *
 * Metrics (when a registry and a prefix are given): <prefix>_sent_total (accepted),
 * <prefix>_failed_total (ended FAILED or LOCKED), <prefix>_deduplicated_total.
 *
 * Loop-thread only. Callbacks run on the loop, never from inside notifier_notify (shared/defer.h).
 */
#ifndef STORCON_NOTIFIER_H
#define STORCON_NOTIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/http_client.h"
#include "shared/metrics.h"

struct event_base;

typedef struct Notifier Notifier;

#define NOTIFIER_KEY_MAX   32 /* bytes */
#define NOTIFIER_HASH_SIZE 32 /* SHA-256 of a body */
#define NOTIFIER_LABEL_MAX 96 /* "tenant <hex>" in log lines */

typedef enum NotifierOutcome {
    NOTIFIER_SENT,         /* the endpoint accepted this body (2xx) */
    NOTIFIER_DEDUPLICATED, /* equal to the last accepted body: nothing sent */
    NOTIFIER_DISABLED,     /* no URL: notifications are off (success) */
    NOTIFIER_NOT_READY,    /* the renderer said ERR_UNAVAILABLE: nothing sent */
    NOTIFIER_SUPERSEDED,   /* a newer body for the key replaced this one before acceptance */
    NOTIFIER_LOCKED,       /* 423 until the budget ran out: stored, not applied; pending */
    NOTIFIER_FAILED,       /* err says why; the key stays pending */
    NOTIFIER_CANCELLED,    /* notifier_forget(key) while waiting */
    NOTIFIER_OUTCOME_COUNT
} NotifierOutcome;

typedef struct NotifierResult {
    const void *key; /* valid during the callback */
    size_t key_len;
    NotifierOutcome outcome;
    int status;   /* last HTTP status; 0 = none or transport error */
    int attempts; /* requests made for this body */
    Err err;      /* NOT_READY, LOCKED, FAILED, SUPERSEDED, CANCELLED: why */
} NotifierResult;

/* NotifierDone: res is valid only during the callback. */
typedef void (*NotifierDone)(const NotifierResult *res, void *arg);
/* NotifierRenderFn: the request body for input (*body freed by the notifier with free()). false:
 * err->code ERR_UNAVAILABLE means "not ready" (NOT_READY), anything else FAILED. */
typedef bool (*NotifierRenderFn)(const void *input, char **body, Err *err);

/* One record write: the key's record becomes hash (has_hash) or is removed. */
typedef struct NotifierStoreEntry {
    const void *key;
    size_t key_len;
    bool has_hash;
    uint8_t hash[NOTIFIER_HASH_SIZE];
} NotifierStoreEntry;

/* NotifierStoreDoneFn: a write ended; err NULL when every entry is durable. */
typedef void (*NotifierStoreDoneFn)(const Err *err, void *done_arg);

/* NotifierStore: where accepted hashes are kept durably. write applies entries[0..n) (keys
 * distinct; everything borrowed only during the call) and calls done exactly once, on the loop,
 * never inside write. The notifier has at most one write in flight. */
typedef struct NotifierStore {
    void (*write)(void *ctx, const NotifierStoreEntry *entries, size_t n, NotifierStoreDoneFn done,
                  void *done_arg);
    /* cancel: notifier_free while a write is in flight: its done must not run (NULL: none) */
    void (*cancel)(void *ctx);
    void *ctx;
} NotifierStore;

/* NotifierOptions: zero fields take the defaults of notifier.c. */
typedef struct NotifierOptions {
    const char *what;         /* "compute notification": log lines; required */
    const char *url;          /* full URL; NULL or "" = off; copied */
    const char *method;       /* NULL = "PUT" */
    const char *bearer_token; /* NULL = none; copied */
    NotifierRenderFn render;  /* required */
    /* drop_arg: notifier_free calls it with the arg of every callback that will never run
     * (NULL = nothing to do), so callers may allocate per-notify state. */
    void (*drop_arg)(void *arg);
    const char *metric_prefix; /* NULL = no metrics */
    long timeout_ms;           /* per request */
    int max_attempts;          /* transport errors, timeouts, 429, 502-504 */
    int locked_max_attempts;   /* 423 answers */
    long backoff_base_ms;      /* capped exponential backoff with full jitter */
    long backoff_max_ms;
    NotifierStore store; /* write NULL = accepted hashes are kept in memory only */
    int max_inflight;    /* requests in flight over all keys */
} NotifierOptions;

/* notifier_new: http and metrics (NULL = none) are borrowed and must outlive the notifier. Never
 * NULL; the caller frees with notifier_free. */
Notifier *notifier_new(struct event_base *base, HttpClient *http, MetricsRegistry *metrics,
                       const NotifierOptions *opts);
/* notifier_free: stop every request and timer; callbacks not yet run never run. Not from inside
 * a NotifierDone callback. NULL ok. */
void notifier_free(Notifier *n);

bool notifier_enabled(const Notifier *n);

/* notifier_notify: notify key (key_len 1..NOTIFIER_KEY_MAX bytes, copied) with the body rendered
 * from input (used only during the call). label names the key in log lines. done (may be NULL)
 * runs exactly once with the outcome. */
void notifier_notify(Notifier *n, const void *key, size_t key_len, const char *label,
                     const void *input, NotifierDone done, void *arg);
/* notifier_is_pending: the key's last body was not accepted yet (in flight, queued, or ended
 * FAILED / LOCKED). False for unknown keys and when the notifier is off. */
bool notifier_is_pending(const Notifier *n, const void *key, size_t key_len);
size_t notifier_pending_count(const Notifier *n);
/* notifier_forget: stop the key's requests (waiting callbacks get CANCELLED) and drop what is
 * remembered about it. */
void notifier_forget(Notifier *n, const void *key, size_t key_len);

/* notifier_seed: the store's record for key (read back at startup, before any notify for it):
 * the endpoint holds the body whose SHA-256 is hash. */
void notifier_seed(Notifier *n, const void *key, size_t key_len, const char *label,
                   const uint8_t hash[NOTIFIER_HASH_SIZE]);
/* notifier_set_new_keys_unknown: the store may hold records for keys that were not seeded (the
 * records could not be read back): a key's first body then removes its record before it is
 * sent. */
void notifier_set_new_keys_unknown(Notifier *n, bool unknown);
/* notifier_is_accepted: the body rendered from input is the one the endpoint last accepted for
 * key (false when it cannot be rendered, the key is unknown, pending, or the notifier is off). */
bool notifier_is_accepted(const Notifier *n, const void *key, size_t key_len, const void *input);
/* notifier_store_idle: no record write queued or in flight (tests, shutdown). */
bool notifier_store_idle(const Notifier *n);

const char *notifier_outcome_name(NotifierOutcome o); /* "sent", "deduplicated", ... */
/* notifier_outcome_ok: SENT, DEDUPLICATED or DISABLED. */
bool notifier_outcome_ok(NotifierOutcome o);

#endif
