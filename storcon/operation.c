/*
 * operation.c: the operation object and its registry (state machine in operation.h).
 *
 * The registry keeps operations in flight on a doubly linked list in start order, and owns the
 * lock table they take their locks from. An operation takes its locks one at a time, in the order
 * operation_start sorted them into; each grant (always deferred by the lock table) asks for the
 * next, and the last one starts the first step. Without locks, the operation's LoopDeferItem on
 * the registry's LoopDefer starts it, so the first step never runs inside operation_start either.
 */
#include "storcon/operation.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "shared/fsm.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/str.h"

static const char *const KIND_NAMES[OPERATION_KIND_COUNT] = {
    [OPERATION_TENANT_CREATE] = "tenant_create",
    [OPERATION_TENANT_DELETE] = "tenant_delete",
    [OPERATION_TENANT_CONFIG] = "tenant_config",
    [OPERATION_TENANT_POLICY] = "tenant_policy",
    [OPERATION_LOCATION_CONFIG] = "location_config",
    [OPERATION_TIMELINE_CREATE] = "timeline_create",
    [OPERATION_TIMELINE_DELETE] = "timeline_delete",
    [OPERATION_NODE_CONFIGURE] = "node_configure",
    [OPERATION_IMPORT_FINALIZE] = "import_finalize",
    [OPERATION_TENANT_SHARD_SPLIT] = "tenant_shard_split",
    [OPERATION_NODE_DRAIN] = "node_drain",
    [OPERATION_NODE_FILL] = "node_fill",
    [OPERATION_NODE_DELETE] = "node_delete",
    [OPERATION_SHARD_MIGRATE] = "shard_migrate",
};

static const char *const STATE_NAMES[OPERATION_STATE_COUNT] = {
    [OPERATION_LOCKING] = "Locking",       [OPERATION_RUNNING] = "Running",
    [OPERATION_CANCELLING] = "Cancelling", [OPERATION_DONE] = "Done",
    [OPERATION_FAILED] = "Failed",
};

static const FsmTransition OPERATION_TRANSITIONS[] = {
    {OPERATION_LOCKING, OPERATION_RUNNING, "every lock held"},
    {OPERATION_LOCKING, OPERATION_FAILED, "cancelled / deadline while waiting"},
    {OPERATION_RUNNING, OPERATION_DONE, "finished"},
    {OPERATION_RUNNING, OPERATION_FAILED, "a step failed"},
    {OPERATION_RUNNING, OPERATION_CANCELLING, "cancelled / deadline during a step"},
    {OPERATION_CANCELLING, OPERATION_DONE, "the step in flight completed anyway"},
    {OPERATION_CANCELLING, OPERATION_FAILED, "the step in flight stopped"},
};

static const int OPERATION_TERMINAL[] = {OPERATION_DONE, OPERATION_FAILED};

const FsmDef OPERATION_FSM = {
    .name = "operation",
    .doc = "docs/storcon.md",
    .state_names = STATE_NAMES,
    .n_states = OPERATION_STATE_COUNT,
    .initial = OPERATION_LOCKING,
    .terminal = OPERATION_TERMINAL,
    .n_terminal = FSM_COUNT(OPERATION_TERMINAL),
    .transitions = OPERATION_TRANSITIONS,
    .n_transitions = FSM_COUNT(OPERATION_TRANSITIONS),
};
FSM_REGISTER(OPERATION_FSM)

typedef struct OperationLock {
    bool is_node;
    TenantId tenant;
    NodeId node;
    TenantLockMode mode;
    TenantLock *lock; /* NULL until requested */
} OperationLock;

struct Operation {
    Operations *ops;
    Operation *prev, *next; /* the registry's list */
    uint64_t id;
    OperationKind kind;
    OperationState state;
    OperationLock locks[OPERATION_MAX_LOCKS];
    size_t n_locks;
    size_t n_requested; /* locks[0..n_requested) asked for; all but the last held */
    OperationStepFn first;
    OperationNextFn then;
    OperationDoneFn done;
    void *done_arg;
    void *data;
    void (*free_data)(void *data);
    const char *step;
    size_t steps;
    size_t progress_done, progress_total;
    OperationPersistFn persist;
    void *persist_arg;
    int64_t started_ms;
    int64_t deadline_ms;       /* monotonic; 0 = none */
    struct event *deadline_ev; /* NULL = none */
    LoopDeferItem start;       /* start without locks */
    Err cancel_reason;
};

struct Operations {
    struct event_base *base;
    LoopDefer *defer;
    void *host;
    TenantLocks *locks;
    Operation *head, *tail;
    size_t count;
    uint64_t next_id;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* operation_set_state: every transition goes through here. An illegal one is a bug in the caller
 * (a step finishing an operation that never ran): fsm_set_state logs it and leaves the state; the
 * caller goes on (a finishing operation still releases its locks and answers). */
static void operation_set_state(Operation *op, OperationState next)
{
    char ctx[64];
    (void)str_printf(ctx, sizeof(ctx), "%llu (%s)", (unsigned long long)op->id,
                     operation_kind_name(op->kind));
    (void)fsm_set_state(&OPERATION_FSM, &op->state, next, ctx);
}

/* ---- registry ---- */

Operations *operations_new(struct event_base *base, LoopDefer *defer, void *host)
{
    Operations *ops = xcalloc(1, sizeof(*ops));
    ops->base = base;
    ops->defer = defer;
    ops->host = host;
    ops->locks = tenant_locks_new(defer);
    ops->next_id = 1;
    return ops;
}

static void list_remove(Operations *ops, Operation *op)
{
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        ops->head = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    else
        ops->tail = op->prev;
    op->prev = op->next = NULL;
    ops->count--;
}

/* operation_free: the operation's own memory and events (its locks are released by the caller or
 * go with the lock table). */
static void operation_free(Operation *op)
{
    if (op->deadline_ev != NULL)
        event_free(op->deadline_ev);
    loop_defer_cancel(op->ops->defer, &op->start);
    if (op->data != NULL) {
        if (op->free_data != NULL)
            op->free_data(op->data);
        else
            free(op->data);
    }
    free(op);
}

void operations_free(Operations *ops)
{
    if (ops == NULL)
        return;
    while (ops->head != NULL) {
        Operation *op = ops->head;
        list_remove(ops, op);
        operation_free(op);
    }
    tenant_locks_free(ops->locks); /* and every lock the operations held or waited for */
    free(ops);
}

TenantLocks *operations_locks(Operations *ops)
{
    return ops->locks;
}

size_t operations_count(const Operations *ops)
{
    return ops->count;
}

static json_t *lock_json(const OperationLock *l)
{
    json_t *j = json_object();
    if (l->is_node)
        json_set_new(j, "node_id", json_integer((json_int_t)l->node));
    else
        json_set_new(j, "tenant_id", json_from_tenant_id(&l->tenant));
    json_set_new(j, "mode", json_string(tenant_lock_mode_name(l->mode)));
    json_set_new(j, "held", json_boolean(tenant_lock_is_held(l->lock)));
    return j;
}

json_t *operations_to_json(const Operations *ops)
{
    json_t *arr = json_array();
    int64_t now = now_ms();
    for (const Operation *op = ops->head; op != NULL; op = op->next) {
        json_t *locks = json_array();
        for (size_t i = 0; i < op->n_locks; i++)
            json_array_append_new(locks, lock_json(&op->locks[i]));
        json_t *e = json_object();
        json_set_new(e, "id", json_integer((json_int_t)op->id));
        json_set_new(e, "kind", json_string(operation_kind_name(op->kind)));
        json_set_new(e, "state", json_string(operation_state_name(op->state)));
        json_set_new(e, "step", json_string(operation_step(op)));
        json_set_new(e, "steps", json_integer((json_int_t)op->steps));
        json_set_new(e, "progress",
                     json_pack("{s:I, s:I}", "done", (json_int_t)op->progress_done, "total",
                               (json_int_t)op->progress_total));
        json_set_new(e, "age_ms", json_integer((json_int_t)(now - op->started_ms)));
        json_set_new(e, "deadline_in_ms",
                     op->deadline_ms == 0 ? json_null()
                                          : json_integer((json_int_t)(op->deadline_ms - now)));
        json_set_new(e, "cancelled", json_boolean(op->state == OPERATION_CANCELLING));
        json_set_new(e, "locks", locks);
        json_array_append_new(arr, e);
    }
    return arr;
}

/* ---- one operation ---- */

static void on_start(void *arg);

Operation *operation_new(Operations *ops, OperationKind kind, OperationDoneFn done, void *arg)
{
    Operation *op = xcalloc(1, sizeof(*op));
    op->ops = ops;
    loop_defer_item_init(&op->start, on_start, op);
    op->id = ops->next_id++;
    op->kind = kind;
    op->state = OPERATION_LOCKING;
    op->done = done;
    op->done_arg = arg;
    op->step = "";
    op->started_ms = now_ms();
    err_clear(&op->cancel_reason);
    op->prev = ops->tail;
    if (ops->tail != NULL)
        ops->tail->next = op;
    else
        ops->head = op;
    ops->tail = op;
    ops->count++;
    return op;
}

static OperationLock *lock_slot(Operation *op)
{
    if (op->n_locks >= OPERATION_MAX_LOCKS || op->n_requested > 0) {
        log_error("operation %llu (%s): too many locks, or a lock added after the start",
                  (unsigned long long)op->id, operation_kind_name(op->kind));
        abort();
    }
    OperationLock *l = &op->locks[op->n_locks++];
    memset(l, 0, sizeof(*l));
    return l;
}

void operation_lock_tenant(Operation *op, const TenantId *tenant, TenantLockMode mode)
{
    OperationLock *l = lock_slot(op);
    l->tenant = *tenant;
    l->mode = mode;
}

void operation_lock_node(Operation *op, NodeId node, TenantLockMode mode)
{
    OperationLock *l = lock_slot(op);
    l->is_node = true;
    l->node = node;
    l->mode = mode;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    Operation *op = arg;
    Err reason;
    err_clear(&reason);
    err_set(&reason, ERR_UNAVAILABLE, "%s: deadline passed", operation_kind_name(op->kind));
    operation_cancel(op, &reason);
}

void operation_set_deadline(Operation *op, long timeout_ms)
{
    if (op->deadline_ev == NULL)
        op->deadline_ev = event_new(op->ops->base, -1, 0, on_deadline, op);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    event_add(op->deadline_ev, &tv);
    op->deadline_ms = now_ms() + timeout_ms;
}

void operation_set_data(Operation *op, void *data, void (*free_data)(void *))
{
    op->data = data;
    op->free_data = free_data;
}

void *operation_data(const Operation *op)
{
    return op->data;
}

void *operation_host(const Operation *op)
{
    return op->ops->host;
}

/* lock_order: nodes before tenants; nodes by id, tenants by id bytes. */
static int lock_order(const void *pa, const void *pb)
{
    const OperationLock *a = pa, *b = pb;
    if (a->is_node != b->is_node)
        return a->is_node ? -1 : 1;
    if (a->is_node)
        return a->node < b->node ? -1 : a->node > b->node ? 1 : 0;
    return memcmp(a->tenant.b, b->tenant.b, ID_BYTES);
}

static void run_first(Operation *op)
{
    operation_set_state(op, OPERATION_RUNNING);
    op->first(op);
}

static void request_next_lock(Operation *op);

static void on_lock_granted(TenantLock *lock, void *arg)
{
    Operation *op = arg;
    if (op->n_requested < op->n_locks) {
        request_next_lock(op);
        return;
    }
    run_first(op);
}

static void request_next_lock(Operation *op)
{
    OperationLock *l = &op->locks[op->n_requested++];
    TenantLocks *locks = op->ops->locks;
    if (l->is_node)
        l->lock = node_lock_acquire(locks, l->node, l->mode, on_lock_granted, op);
    else
        l->lock = tenant_lock_acquire(locks, &l->tenant, l->mode, on_lock_granted, op);
}

static void on_start(void *arg)
{
    run_first(arg);
}

void operation_start(Operation *op, OperationStepFn first)
{
    op->first = first;
    if (op->n_locks == 0) {
        (void)loop_defer_item(op->ops->defer, &op->start);
        return;
    }
    qsort(op->locks, op->n_locks, sizeof(op->locks[0]), lock_order);
    request_next_lock(op);
}

static void persist(Operation *op)
{
    if (op->persist != NULL)
        op->persist(op, op->persist_arg);
}

void operation_set_step(Operation *op, const char *step)
{
    op->step = step;
    op->steps++;
    op->progress_done = op->progress_total = 0;
    persist(op);
}

void operation_set_progress(Operation *op, size_t done, size_t total)
{
    op->progress_done = done;
    op->progress_total = total;
    persist(op);
}

void operation_set_persist(Operation *op, OperationPersistFn fn, void *arg)
{
    op->persist = fn;
    op->persist_arg = arg;
}

void operation_set_next(Operation *op, OperationNextFn next)
{
    op->then = next;
}

void operation_continue(const Err *err, void *arg)
{
    Operation *op = arg;
    OperationNextFn next = op->then;
    op->then = NULL;
    next(op, err);
}

void operation_json_done(const Err *err, json_t *result, void *arg)
{
    operation_finish(arg, err, result);
}

void operation_cancel(Operation *op, const Err *reason)
{
    switch (op->state) {
    case OPERATION_LOCKING:
        operation_finish(op, reason, NULL);
        return;
    case OPERATION_RUNNING:
        op->cancel_reason = *reason;
        operation_set_state(op, OPERATION_CANCELLING);
        log_info("operation %llu (%s): cancelling in step %s: %s", (unsigned long long)op->id,
                 operation_kind_name(op->kind), operation_step(op), reason->msg);
        return;
    case OPERATION_CANCELLING:
    case OPERATION_DONE:
    case OPERATION_FAILED:
    case OPERATION_STATE_COUNT:
    default:
        return;
    }
}

bool operation_cancelled(const Operation *op)
{
    return op->state == OPERATION_CANCELLING;
}

const Err *operation_cancel_reason(const Operation *op)
{
    return &op->cancel_reason;
}

void operation_finish(Operation *op, const Err *err, json_t *result)
{
    operation_set_state(op, err == NULL ? OPERATION_DONE : OPERATION_FAILED);
    Err copy;
    err_clear(&copy);
    if (err != NULL) {
        copy = *err; /* err may live in the operation's data */
        json_decref(result);
        result = NULL;
    }
    /* locks first: the next waiter may start at once */
    for (size_t i = 0; i < op->n_requested; i++)
        tenant_lock_release(op->locks[i].lock);
    op->n_requested = 0;
    list_remove(op->ops, op);
    OperationDoneFn done = op->done;
    void *arg = op->done_arg;
    operation_free(op);
    done(err != NULL ? &copy : NULL, result, arg);
}

uint64_t operation_id(const Operation *op)
{
    return op->id;
}

OperationKind operation_kind(const Operation *op)
{
    return op->kind;
}

OperationState operation_state(const Operation *op)
{
    return op->state;
}

const char *operation_step(const Operation *op)
{
    return op->step;
}

size_t operation_steps(const Operation *op)
{
    return op->steps;
}

const char *operation_kind_name(OperationKind kind)
{
    if ((unsigned)kind >= OPERATION_KIND_COUNT)
        return "?";
    return KIND_NAMES[kind];
}

const char *operation_state_name(OperationState state)
{
    return fsm_state_name(&OPERATION_FSM, (int)state);
}
