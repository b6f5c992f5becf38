/*
 * tenant_lock.c: per-tenant and per-node FIFO reader/writer locks of the service's operations (see
 * tenant_lock.h).
 *
 * Layout: a chained hash table of entries, one per tenant or node that has holders or waiters
 * (keyed by LockKey: what is locked, and its id); each entry
 * counts its holders and keeps its waiters in arrival order. A grant moves a waiter onto the
 * table's notify list and queues the table's LoopDeferItem (shared/defer.h; a coalescing kick); its
 * callback tells the granted owners, so
 * a grant never runs its owner's code inside acquire or release (where the caller may be in the
 * middle of changing its own state).
 */
#include "storcon/tenant_lock.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fsm.h"
#include "shared/str.h"

#define TENANT_LOCK_BUCKETS 1024 /* power of two */

typedef enum TenantLockState {
    TENANT_LOCK_WAITING,   /* in the entry's queue */
    TENANT_LOCK_NOTIFYING, /* granted (counted as a holder), callback not yet run */
    TENANT_LOCK_HELD,      /* granted, callback ran */
} TenantLockState;

static const char *const LOCK_STATE_NAMES[] = {
    [TENANT_LOCK_WAITING] = "Waiting",
    [TENANT_LOCK_NOTIFYING] = "Notifying",
    [TENANT_LOCK_HELD] = "Held",
};

static const FsmTransition LOCK_TRANSITIONS[] = {
    {TENANT_LOCK_WAITING, TENANT_LOCK_NOTIFYING, "compatible with the holders, first in line"},
    {TENANT_LOCK_NOTIFYING, TENANT_LOCK_HELD, "granted callback runs"},
};

/* tenant_lock_release ends a lock in any state */
static const int LOCK_TERMINAL[] = {TENANT_LOCK_WAITING, TENANT_LOCK_NOTIFYING, TENANT_LOCK_HELD};

static const FsmDef LOCK_FSM = {
    .name = "tenant_lock",
    .doc = "docs/storcon.md",
    .state_names = LOCK_STATE_NAMES,
    .n_states = FSM_COUNT(LOCK_STATE_NAMES),
    .initial = TENANT_LOCK_WAITING,
    .terminal = LOCK_TERMINAL,
    .n_terminal = FSM_COUNT(LOCK_TERMINAL),
    .transitions = LOCK_TRANSITIONS,
    .n_transitions = FSM_COUNT(LOCK_TRANSITIONS),
};
FSM_REGISTER(LOCK_FSM)

typedef struct TenantLockEntry TenantLockEntry;

/* LockKey: a tenant's or a node's lock; the node id is stored in the first 8 bytes. */
typedef enum LockKeyKind { LOCK_KEY_TENANT, LOCK_KEY_NODE } LockKeyKind;

typedef struct LockKey {
    LockKeyKind kind;
    uint8_t b[ID_BYTES];
} LockKey;

struct TenantLock {
    TenantLocks *locks;
    TenantLockEntry *entry;
    TenantLockMode mode;
    TenantLockState state;
    TenantLockGranted granted;
    void *arg;
    TenantLock *prev, *next; /* entry queue, notify list or held list, by state */
};

struct TenantLockEntry {
    LockKey key;
    size_t shared_holders;
    bool exclusive_held;
    size_t n_waiters;
    TenantLock *head, *tail; /* waiters, oldest first */
    TenantLockEntry *next;   /* bucket chain */
};

struct TenantLocks {
    LoopDefer *defer;     /* borrowed */
    LoopDeferItem notify; /* runs on_notify; queued while the notify list is not empty */
    TenantLock *notify_head, *notify_tail;
    TenantLock *held_head, *held_tail;
    TenantLockEntry *buckets[TENANT_LOCK_BUCKETS];
};

static LockKey key_tenant(const TenantId *tenant)
{
    LockKey k;
    memset(&k, 0, sizeof(k));
    k.kind = LOCK_KEY_TENANT;
    memcpy(k.b, tenant->b, ID_BYTES);
    return k;
}

static LockKey key_node(NodeId node)
{
    LockKey k;
    memset(&k, 0, sizeof(k));
    k.kind = LOCK_KEY_NODE;
    memcpy(k.b, &node, sizeof(node));
    return k;
}

static bool key_eq(const LockKey *a, const LockKey *b)
{
    return a->kind == b->kind && memcmp(a->b, b->b, ID_BYTES) == 0;
}

static size_t bucket_of(const LockKey *k)
{
    uint32_t h = 2166136261u; /* FNV-1a over the kind and the id bytes */
    h ^= (uint32_t)k->kind;
    h *= 16777619u;
    for (size_t i = 0; i < ID_BYTES; i++) {
        h ^= k->b[i];
        h *= 16777619u;
    }
    return h & (TENANT_LOCK_BUCKETS - 1);
}

static TenantLockEntry *entry_find(const TenantLocks *locks, const LockKey *key)
{
    for (TenantLockEntry *e = locks->buckets[bucket_of(key)]; e != NULL; e = e->next) {
        if (key_eq(&e->key, key))
            return e;
    }
    return NULL;
}

static void list_append(TenantLock **head, TenantLock **tail, TenantLock *l)
{
    l->prev = *tail;
    l->next = NULL;
    if (*tail != NULL)
        (*tail)->next = l;
    else
        *head = l;
    *tail = l;
}

static void list_remove(TenantLock **head, TenantLock **tail, TenantLock *l)
{
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        *head = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    else
        *tail = l->prev;
    l->prev = l->next = NULL;
}

/* on_notify: tell granted owners. A callback may acquire or release any lock, including ones on
 * the notify list: each owner is taken off the list before its callback runs. */
static void on_notify(void *arg)
{
    TenantLocks *locks = arg;
    while (locks->notify_head != NULL) {
        TenantLock *l = locks->notify_head;
        list_remove(&locks->notify_head, &locks->notify_tail, l);
        (void)fsm_set_state(&LOCK_FSM, &l->state, TENANT_LOCK_HELD, NULL);
        list_append(&locks->held_head, &locks->held_tail, l);
        l->granted(l, l->arg);
    }
}

/* entry_grant: grant waiters from the head of the queue while they are compatible with the
 * holders: strict FIFO, so a queued exclusive waiter stops every later shared one. */
static void entry_grant(TenantLocks *locks, TenantLockEntry *e)
{
    bool any = false;
    while (e->head != NULL) {
        TenantLock *l = e->head;
        if (l->mode == TENANT_LOCK_EXCLUSIVE) {
            if (e->exclusive_held || e->shared_holders > 0)
                break;
            e->exclusive_held = true;
        } else {
            if (e->exclusive_held)
                break;
            e->shared_holders++;
        }
        list_remove(&e->head, &e->tail, l);
        e->n_waiters--;
        (void)fsm_set_state(&LOCK_FSM, &l->state, TENANT_LOCK_NOTIFYING, NULL);
        list_append(&locks->notify_head, &locks->notify_tail, l);
        any = true;
    }
    if (any)
        (void)loop_defer_item(locks->defer, &locks->notify);
}

static void entry_free_if_idle(TenantLocks *locks, TenantLockEntry *e)
{
    if (e->shared_holders > 0 || e->exclusive_held || e->head != NULL)
        return;
    TenantLockEntry **pp = &locks->buckets[bucket_of(&e->key)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    free(e);
}

TenantLocks *tenant_locks_new(LoopDefer *defer)
{
    TenantLocks *locks = xcalloc(1, sizeof(*locks));
    locks->defer = defer;
    loop_defer_item_init(&locks->notify, on_notify, locks);
    return locks;
}

void tenant_locks_free(TenantLocks *locks)
{
    if (locks == NULL)
        return;
    while (locks->notify_head != NULL) {
        TenantLock *l = locks->notify_head;
        list_remove(&locks->notify_head, &locks->notify_tail, l);
        free(l);
    }
    while (locks->held_head != NULL) {
        TenantLock *l = locks->held_head;
        list_remove(&locks->held_head, &locks->held_tail, l);
        free(l);
    }
    for (size_t b = 0; b < TENANT_LOCK_BUCKETS; b++) {
        TenantLockEntry *e = locks->buckets[b];
        while (e != NULL) {
            TenantLockEntry *next = e->next;
            while (e->head != NULL) {
                TenantLock *l = e->head;
                list_remove(&e->head, &e->tail, l);
                free(l);
            }
            free(e);
            e = next;
        }
    }
    loop_defer_cancel(locks->defer, &locks->notify);
    free(locks);
}

static TenantLock *lock_acquire(TenantLocks *locks, const LockKey *key, TenantLockMode mode,
                                TenantLockGranted granted, void *arg)
{
    TenantLockEntry *e = entry_find(locks, key);
    if (e == NULL) {
        e = xcalloc(1, sizeof(*e));
        e->key = *key;
        size_t b = bucket_of(key);
        e->next = locks->buckets[b];
        locks->buckets[b] = e;
    }
    TenantLock *l = xcalloc(1, sizeof(*l));
    l->locks = locks;
    l->entry = e;
    l->mode = mode;
    l->state = TENANT_LOCK_WAITING;
    l->granted = granted;
    l->arg = arg;
    list_append(&e->head, &e->tail, l);
    e->n_waiters++;
    entry_grant(locks, e);
    return l;
}

TenantLock *tenant_lock_acquire(TenantLocks *locks, const TenantId *tenant, TenantLockMode mode,
                                TenantLockGranted granted, void *arg)
{
    LockKey k = key_tenant(tenant);
    return lock_acquire(locks, &k, mode, granted, arg);
}

TenantLock *node_lock_acquire(TenantLocks *locks, NodeId node, TenantLockMode mode,
                              TenantLockGranted granted, void *arg)
{
    LockKey k = key_node(node);
    return lock_acquire(locks, &k, mode, granted, arg);
}

void tenant_lock_release(TenantLock *l)
{
    if (l == NULL)
        return;
    TenantLocks *locks = l->locks;
    TenantLockEntry *e = l->entry;
    switch (l->state) {
    case TENANT_LOCK_WAITING:
        list_remove(&e->head, &e->tail, l);
        e->n_waiters--;
        break;
    case TENANT_LOCK_NOTIFYING: /* counted as a holder already */
    case TENANT_LOCK_HELD:
        if (l->state == TENANT_LOCK_NOTIFYING)
            list_remove(&locks->notify_head, &locks->notify_tail, l);
        else
            list_remove(&locks->held_head, &locks->held_tail, l);
        if (l->mode == TENANT_LOCK_EXCLUSIVE)
            e->exclusive_held = false;
        else
            e->shared_holders--;
        break;
    }
    free(l);
    entry_grant(locks, e);
    entry_free_if_idle(locks, e);
}

bool tenant_lock_is_held(const TenantLock *l)
{
    return l != NULL && l->state == TENANT_LOCK_HELD;
}

static void entry_stats(const TenantLocks *locks, const LockKey *key, size_t *holders,
                        size_t *waiters)
{
    const TenantLockEntry *e = entry_find(locks, key);
    *holders = e == NULL ? 0 : e->shared_holders + (e->exclusive_held ? 1 : 0);
    *waiters = e == NULL ? 0 : e->n_waiters;
}

void tenant_locks_stats(const TenantLocks *locks, const TenantId *tenant, size_t *holders,
                        size_t *waiters)
{
    LockKey k = key_tenant(tenant);
    entry_stats(locks, &k, holders, waiters);
}

void node_locks_stats(const TenantLocks *locks, NodeId node, size_t *holders, size_t *waiters)
{
    LockKey k = key_node(node);
    entry_stats(locks, &k, holders, waiters);
}

TenantLockMode tenant_lock_mode(const TenantLock *l)
{
    return l->mode;
}

bool tenant_lock_is_node(const TenantLock *l)
{
    return l->entry->key.kind == LOCK_KEY_NODE;
}

TenantId tenant_lock_tenant(const TenantLock *l)
{
    TenantId t;
    memset(&t, 0, sizeof(t));
    if (l->entry->key.kind == LOCK_KEY_TENANT)
        memcpy(t.b, l->entry->key.b, ID_BYTES);
    return t;
}

NodeId tenant_lock_node(const TenantLock *l)
{
    NodeId n = 0;
    if (l->entry->key.kind == LOCK_KEY_NODE)
        memcpy(&n, l->entry->key.b, sizeof(n));
    return n;
}

const char *tenant_lock_mode_name(TenantLockMode mode)
{
    switch (mode) {
    case TENANT_LOCK_SHARED:
        return "shared";
    case TENANT_LOCK_EXCLUSIVE:
        return "exclusive";
    case TENANT_LOCK_MODE_COUNT:
    default:
        return "?";
    }
}
