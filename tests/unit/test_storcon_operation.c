/* test_storcon_operation.c: unit tests for storcon/operation.c: the transition table, lock order
 * and exclusion between operations, deferred starts and completions, continuations, progress and
 * its persistence hook, cancellation and deadlines, the debug listing, and abandoning operations
 * at free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "shared/err.h"
#include "shared/defer.h"
#include "shared/fsm.h"
#include "shared/id.h"
#include "storcon/operation.h"
#include "tests/unit/loop_util.h"

typedef struct Fixture {
    struct event_base *base;
    LoopDefer *defer;
    Operations *ops;
    TenantId t1, t2;
} Fixture;

/* Rec: what one operation's steps and completion saw. */
typedef struct Rec {
    Operation *op;
    int started;    /* first step ran */
    int done_calls; /* completion ran */
    int start_order;
    bool failed;
    ErrCode code;
    json_t *result;
    bool finish_in_first; /* the first step finishes at once */
    int persisted;
    int *free_count; /* counted by free_counted */
} Rec;

static int g_starts;
static int g_done;

static void on_done(const Err *err, json_t *result, void *arg)
{
    Rec *r = arg;
    r->done_calls++;
    r->failed = err != NULL;
    r->code = err != NULL ? err->code : ERR_NONE;
    assert_true((err == NULL) == (result != NULL));
    json_decref(r->result);
    r->result = result;
    r->op = NULL;
    g_done++;
}

static void first_step(Operation *op)
{
    Rec *r = operation_data(op);
    r->started++;
    r->start_order = ++g_starts;
    assert_int_equal(operation_state(op), OPERATION_RUNNING);
    operation_set_step(op, "first");
    if (r->finish_in_first)
        operation_finish(op, NULL, json_object());
}

static int setup(void **state)
{
    Fixture *fx = calloc(1, sizeof(*fx));
    fx->base = event_base_new();
    fx->defer = loop_defer_new(fx->base);
    fx->ops = operations_new(fx->base, fx->defer, fx);
    memset(fx->t1.b, 0x11, sizeof(fx->t1.b));
    memset(fx->t2.b, 0x22, sizeof(fx->t2.b));
    g_starts = g_done = 0;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    Fixture *fx = *state;
    operations_free(fx->ops);
    loop_defer_free(fx->defer);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

static void keep(void *p)
{
    (void)p; /* the test owns its records */
}

/* start: an operation whose data is r (not freed by the operation: the test owns it). */
static Operation *start(Fixture *fx, Rec *r, OperationKind kind)
{
    memset(r, 0, sizeof(*r));
    r->op = operation_new(fx->ops, kind, on_done, r);
    operation_set_data(r->op, r, keep);
    return r->op;
}

/* Freeing the registry with a lock-free start still queued unqueues it from the shared LoopDefer:
 * the first step never runs. */
static void test_free_cancels_queued_start(void **state)
{
    Fixture *fx = *state;
    Rec r;
    Operation *op = start(fx, &r, OPERATION_TENANT_CONFIG);
    operation_start(op, first_step);
    assert_int_equal(loop_defer_pending(fx->defer), 1);
    operations_free(fx->ops);
    assert_int_equal(loop_defer_pending(fx->defer), 0);
    fx->ops = operations_new(fx->base, fx->defer, fx);
    loop_run_for(fx->base, 20);
    assert_int_equal(r.started, 0);
    assert_int_equal(r.done_calls, 0);
}

static void test_transition_table(void **state)
{
    (void)state;
    static const struct {
        OperationState from, to;
        bool ok;
    } cases[] = {
        {OPERATION_LOCKING, OPERATION_RUNNING, true},
        {OPERATION_LOCKING, OPERATION_FAILED, true},
        {OPERATION_LOCKING, OPERATION_DONE, false},
        {OPERATION_RUNNING, OPERATION_DONE, true},
        {OPERATION_RUNNING, OPERATION_FAILED, true},
        {OPERATION_RUNNING, OPERATION_CANCELLING, true},
        {OPERATION_RUNNING, OPERATION_LOCKING, false},
        {OPERATION_CANCELLING, OPERATION_DONE, true},
        {OPERATION_CANCELLING, OPERATION_FAILED, true},
        {OPERATION_CANCELLING, OPERATION_RUNNING, false},
        {OPERATION_DONE, OPERATION_FAILED, false},
        {OPERATION_FAILED, OPERATION_RUNNING, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(fsm_allowed(&OPERATION_FSM, cases[i].from, cases[i].to), cases[i].ok);
        /* fsm_set_state moves the state exactly when the table allows it */
        OperationState st = cases[i].from;
        assert_int_equal(fsm_set_state(&OPERATION_FSM, &st, cases[i].to, "test"), cases[i].ok);
        assert_int_equal(st, cases[i].ok ? cases[i].to : cases[i].from);
    }
    /* every row names real states, and no row repeats */
    const FsmDef *def = &OPERATION_FSM;
    assert_int_equal(def->n_states, OPERATION_STATE_COUNT);
    for (size_t i = 0; i < def->n_transitions; i++) {
        assert_true(def->transitions[i].from < OPERATION_STATE_COUNT);
        assert_true(def->transitions[i].to < OPERATION_STATE_COUNT);
        for (size_t j = i + 1; j < def->n_transitions; j++)
            assert_false(def->transitions[i].from == def->transitions[j].from &&
                         def->transitions[i].to == def->transitions[j].to);
    }
    for (int s = 0; s < OPERATION_STATE_COUNT; s++)
        assert_string_not_equal(operation_state_name((OperationState)s), "?");
    for (int k = 0; k < OPERATION_KIND_COUNT; k++)
        assert_string_not_equal(operation_kind_name((OperationKind)k), "?");
    assert_string_equal(operation_state_name(OPERATION_STATE_COUNT), "?");
    assert_string_equal(operation_kind_name(OPERATION_KIND_COUNT), "?");
}

/* Without locks the first step runs from the loop, never inside operation_start; the completion
 * runs once, after which the registry is empty. */
static void test_start_deferred_without_locks(void **state)
{
    Fixture *fx = *state;
    Rec r;
    Operation *op = start(fx, &r, OPERATION_TENANT_CONFIG);
    r.finish_in_first = true;
    operation_start(op, first_step);
    assert_int_equal(r.started, 0);
    assert_int_equal(operations_count(fx->ops), 1);
    assert_true(loop_run_until(fx->base, &r.done_calls, 1, 2000));
    assert_int_equal(r.started, 1);
    assert_false(r.failed);
    assert_non_null(r.result);
    json_decref(r.result);
    assert_int_equal(operations_count(fx->ops), 0);
}

/* Two exclusive operations on one tenant run one after the other, in arrival order; a shared one
 * on another tenant is not held up. Finishing releases the lock before the completion runs. */
static void test_exclusive_tenant_operations_serialise(void **state)
{
    Fixture *fx = *state;
    Rec a, b, c;
    Operation *oa = start(fx, &a, OPERATION_TENANT_CREATE);
    operation_lock_tenant(oa, &fx->t1, TENANT_LOCK_EXCLUSIVE);
    Operation *ob = start(fx, &b, OPERATION_TENANT_DELETE);
    operation_lock_tenant(ob, &fx->t1, TENANT_LOCK_EXCLUSIVE);
    Operation *oc = start(fx, &c, OPERATION_TIMELINE_CREATE);
    operation_lock_tenant(oc, &fx->t2, TENANT_LOCK_SHARED);
    operation_start(oa, first_step);
    operation_start(ob, first_step);
    operation_start(oc, first_step);
    assert_true(loop_run_until(fx->base, &g_starts, 2, 2000));
    loop_run_for(fx->base, 20);
    assert_int_equal(a.started, 1);
    assert_int_equal(b.started, 0); /* waits for a's lock */
    assert_int_equal(c.started, 1);
    assert_int_equal(operation_state(ob), OPERATION_LOCKING);
    size_t holders, waiters;
    tenant_locks_stats(operations_locks(fx->ops), &fx->t1, &holders, &waiters);
    assert_int_equal(holders, 1);
    assert_int_equal(waiters, 1);
    operation_finish(oa, NULL, json_object());
    assert_int_equal(a.done_calls, 1);
    json_decref(a.result);
    assert_true(loop_run_until(fx->base, &b.started, 1, 2000));
    Err e;
    err_clear(&e);
    err_set(&e, ERR_CONFLICT, "step failed");
    operation_finish(ob, &e, NULL);
    assert_int_equal(b.done_calls, 1);
    assert_true(b.failed);
    assert_int_equal(b.code, ERR_CONFLICT);
    operation_finish(oc, NULL, json_object());
    json_decref(c.result);
    tenant_locks_stats(operations_locks(fx->ops), &fx->t1, &holders, &waiters);
    assert_int_equal(holders, 0);
    assert_int_equal(waiters, 0);
    assert_int_equal(operations_count(fx->ops), 0);
}

/* Locks are taken in one global order (nodes by id, then tenants), whatever order they were named
 * in: two operations naming the same two locks in opposite orders cannot deadlock. */
static void test_lock_order_prevents_deadlock(void **state)
{
    Fixture *fx = *state;
    Rec a, b;
    Operation *oa = start(fx, &a, OPERATION_NODE_CONFIGURE);
    operation_lock_tenant(oa, &fx->t1, TENANT_LOCK_EXCLUSIVE);
    operation_lock_node(oa, 5, TENANT_LOCK_EXCLUSIVE);
    Operation *ob = start(fx, &b, OPERATION_NODE_CONFIGURE);
    operation_lock_node(ob, 5, TENANT_LOCK_EXCLUSIVE);
    operation_lock_tenant(ob, &fx->t1, TENANT_LOCK_EXCLUSIVE);
    operation_start(oa, first_step);
    operation_start(ob, first_step);
    assert_true(loop_run_until(fx->base, &a.started, 1, 2000));
    assert_int_equal(b.started, 0);
    json_t *list = operations_to_json(fx->ops);
    assert_int_equal(json_array_size(list), 2);
    json_t *locks = json_object_get(json_array_get(list, 0), "locks");
    assert_int_equal(json_array_size(locks), 2);
    /* sorted: the node first */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(locks, 0), "node_id")), 5);
    assert_true(json_is_true(json_object_get(json_array_get(locks, 1), "held")));
    json_t *blocked = json_object_get(json_array_get(list, 1), "locks");
    assert_true(json_is_false(json_object_get(json_array_get(blocked, 0), "held")));
    json_decref(list);
    operation_finish(oa, NULL, json_object());
    json_decref(a.result);
    assert_true(loop_run_until(fx->base, &b.started, 1, 2000));
    operation_finish(ob, NULL, json_object());
    json_decref(b.result);
}

/* Continuations, steps and progress; the persist hook sees every change. */
static void on_persist(const Operation *op, void *arg)
{
    Rec *r = arg;
    r->persisted++;
}

static void second(Operation *op, const Err *err)
{
    assert_non_null(err);
    assert_int_equal(err->code, ERR_NOT_FOUND);
    operation_set_step(op, "second");
    operation_set_progress(op, 2, 3);
    assert_string_equal(operation_step(op), "second");
    assert_int_equal(operation_steps(op), 2);
}

static void first_then_continue(Operation *op)
{
    Rec *r = operation_data(op);
    r->started++;
    operation_set_persist(op, on_persist, r);
    operation_set_step(op, "first");
    operation_set_next(op, second);
}

static void test_continue_steps_progress(void **state)
{
    Fixture *fx = *state;
    Rec r;
    Operation *op = start(fx, &r, OPERATION_TENANT_POLICY);
    operation_lock_tenant(op, &fx->t1, TENANT_LOCK_EXCLUSIVE);
    operation_start(op, first_then_continue);
    assert_true(loop_run_until(fx->base, &r.started, 1, 2000));
    Err e;
    err_clear(&e);
    err_set(&e, ERR_NOT_FOUND, "gone");
    operation_continue(&e, op);       /* as a database callback would */
    assert_int_equal(r.persisted, 3); /* step, step, progress */
    json_t *list = operations_to_json(fx->ops);
    json_t *o = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(o, "kind")), "tenant_policy");
    assert_string_equal(json_string_value(json_object_get(o, "state")), "Running");
    assert_string_equal(json_string_value(json_object_get(o, "step")), "second");
    assert_int_equal(json_integer_value(json_object_get(o, "steps")), 2);
    json_t *p = json_object_get(o, "progress");
    assert_int_equal(json_integer_value(json_object_get(p, "done")), 2);
    assert_int_equal(json_integer_value(json_object_get(p, "total")), 3);
    assert_true(json_is_null(json_object_get(o, "deadline_in_ms")));
    json_decref(list);
    operation_json_done(NULL, json_object(), op);
    assert_int_equal(r.done_calls, 1);
    json_decref(r.result);
}

/* Cancelling an operation that waits for its lock fails it at once (its queue place given up);
 * cancelling a running one marks it, and its step ends it with the reason. */
static void test_cancel(void **state)
{
    Fixture *fx = *state;
    Rec a, b;
    Operation *oa = start(fx, &a, OPERATION_TENANT_DELETE);
    operation_lock_tenant(oa, &fx->t1, TENANT_LOCK_EXCLUSIVE);
    Operation *ob = start(fx, &b, OPERATION_TENANT_CONFIG);
    operation_lock_tenant(ob, &fx->t1, TENANT_LOCK_EXCLUSIVE);
    operation_start(oa, first_step);
    operation_start(ob, first_step);
    assert_true(loop_run_until(fx->base, &a.started, 1, 2000));
    Err e;
    err_clear(&e);
    err_set(&e, ERR_UNAVAILABLE, "stop");
    operation_cancel(ob, &e);
    assert_int_equal(b.done_calls, 1);
    assert_int_equal(b.code, ERR_UNAVAILABLE);
    assert_int_equal(b.started, 0);
    size_t holders, waiters;
    tenant_locks_stats(operations_locks(fx->ops), &fx->t1, &holders, &waiters);
    assert_int_equal(waiters, 0);

    operation_cancel(oa, &e);
    assert_int_equal(a.done_calls, 0); /* running: never interrupted mid-step */
    assert_true(operation_cancelled(oa));
    assert_int_equal(operation_state(oa), OPERATION_CANCELLING);
    operation_cancel(oa, &e); /* a second cancel: no effect */
    operation_finish(oa, operation_cancel_reason(oa), NULL);
    assert_int_equal(a.done_calls, 1);
    assert_int_equal(a.code, ERR_UNAVAILABLE);
    assert_int_equal(operations_count(fx->ops), 0);
}

/* The deadline cancels: a lock waiter fails with 503, a running operation becomes Cancelling. */
static void test_deadline(void **state)
{
    Fixture *fx = *state;
    Rec a, b;
    Operation *oa = start(fx, &a, OPERATION_TENANT_CREATE);
    operation_lock_tenant(oa, &fx->t1, TENANT_LOCK_EXCLUSIVE);
    operation_set_deadline(oa, 30);
    Operation *ob = start(fx, &b, OPERATION_TENANT_CREATE);
    operation_lock_tenant(ob, &fx->t1, TENANT_LOCK_EXCLUSIVE);
    operation_set_deadline(ob, 30);
    operation_start(oa, first_step);
    operation_start(ob, first_step);
    assert_true(loop_run_until(fx->base, &b.done_calls, 1, 2000));
    assert_true(b.failed);
    assert_int_equal(b.code, ERR_UNAVAILABLE);
    assert_int_equal(operation_state(oa), OPERATION_CANCELLING);
    assert_non_null(strstr(operation_cancel_reason(oa)->msg, "deadline"));
    operation_finish(oa, NULL, json_object()); /* the step completed the work anyway */
    assert_false(a.failed);
    json_decref(a.result);
}

/* operations_free abandons operations in flight: completions never run, data is freed, locks go. */
static void free_counted(void *p)
{
    Rec *r = p;
    (*r->free_count)++;
}

static void test_free_abandons(void **state)
{
    Fixture *fx = *state;
    static int freed;
    freed = 0;
    Rec a, b;
    Operation *oa = start(fx, &a, OPERATION_TIMELINE_DELETE);
    operation_lock_tenant(oa, &fx->t1, TENANT_LOCK_EXCLUSIVE);
    a.free_count = &freed;
    operation_set_data(oa, &a, free_counted);
    Operation *ob = start(fx, &b, OPERATION_TIMELINE_DELETE);
    operation_lock_tenant(ob, &fx->t1, TENANT_LOCK_EXCLUSIVE);
    b.free_count = &freed;
    operation_set_data(ob, &b, free_counted);
    operation_set_deadline(ob, 60000);
    operation_start(oa, first_step);
    operation_start(ob, first_step);
    loop_run_for(fx->base, 20);
    operations_free(fx->ops);
    fx->ops = operations_new(fx->base, fx->defer, fx);
    assert_int_equal(freed, 2);
    assert_int_equal(a.done_calls, 0);
    assert_int_equal(b.done_calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test_setup_teardown(test_start_deferred_without_locks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclusive_tenant_operations_serialise, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lock_order_prevents_deadlock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continue_steps_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_abandons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_cancels_queued_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
