/* test_storcon_tenant_lock.c: unit tests for storcon/tenant_lock.c (FIFO shared/exclusive
 * per-tenant and per-node locks granted asynchronously on the event loop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "shared/defer.h"
#include "shared/id.h"
#include "storcon/tenant_lock.h"

#define MAX_OWNERS 16

typedef struct Owner {
    const char *name;
    TenantLock *lock;
    int granted_calls;
    int grant_order; /* 1-based position in the order of grants; 0 = not granted */
    bool release_in_callback;
    bool acquire_in_callback; /* acquire `next_tenant` exclusively from the callback */
} Owner;

typedef struct Fixture {
    struct event_base *base;
    LoopDefer *defer;
    TenantLocks *locks;
    TenantId t1, t2;
    Owner owners[MAX_OWNERS];
    int n_grants;
    Owner *nested; /* filled by acquire_in_callback */
} Fixture;

static Fixture *g_fx;

static void on_granted(TenantLock *lock, void *arg)
{
    Owner *o = arg;
    assert_ptr_equal(lock, o->lock);
    assert_true(tenant_lock_is_held(lock));
    o->granted_calls++;
    o->grant_order = ++g_fx->n_grants;
    if (o->acquire_in_callback) {
        Owner *n = &g_fx->owners[MAX_OWNERS - 1];
        n->name = "nested";
        n->lock = tenant_lock_acquire(g_fx->locks, &g_fx->t2, TENANT_LOCK_EXCLUSIVE, on_granted, n);
        g_fx->nested = n;
    }
    if (o->release_in_callback) {
        tenant_lock_release(lock);
        o->lock = NULL;
    }
}

static int setup(void **state)
{
    Fixture *fx = calloc(1, sizeof(*fx));
    fx->base = event_base_new();
    fx->defer = loop_defer_new(fx->base);
    fx->locks = tenant_locks_new(fx->defer);
    memset(fx->t1.b, 0x11, sizeof(fx->t1.b));
    memset(fx->t2.b, 0x22, sizeof(fx->t2.b));
    g_fx = fx;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    Fixture *fx = *state;
    tenant_locks_free(fx->locks);
    loop_defer_free(fx->defer);
    event_base_free(fx->base);
    free(fx);
    g_fx = NULL;
    return 0;
}

static Owner *acquire(Fixture *fx, int i, const char *name, const TenantId *t, TenantLockMode m)
{
    Owner *o = &fx->owners[i];
    o->name = name;
    o->lock = tenant_lock_acquire(fx->locks, t, m, on_granted, o);
    assert_non_null(o->lock);
    return o;
}

static void release(Owner *o)
{
    tenant_lock_release(o->lock);
    o->lock = NULL;
}

static void run_loop(Fixture *fx)
{
    event_base_loop(fx->base, EVLOOP_NONBLOCK);
}

static void assert_stats(Fixture *fx, const TenantId *t, size_t holders, size_t waiters)
{
    size_t h = 99, w = 99;
    tenant_locks_stats(fx->locks, t, &h, &w);
    assert_int_equal(h, holders);
    assert_int_equal(w, waiters);
}

/* The grant callback never runs inside acquire: only from the loop. */
static void test_grant_is_deferred(void **state)
{
    Fixture *fx = *state;
    Owner *a = acquire(fx, 0, "a", &fx->t1, TENANT_LOCK_EXCLUSIVE);
    assert_int_equal(a->granted_calls, 0);
    assert_false(tenant_lock_is_held(a->lock));
    assert_stats(fx, &fx->t1, 1, 0); /* granted, notification pending */
    run_loop(fx);
    assert_int_equal(a->granted_calls, 1);
    assert_true(tenant_lock_is_held(a->lock));
    run_loop(fx);
    assert_int_equal(a->granted_calls, 1); /* exactly once */
    release(a);
    assert_stats(fx, &fx->t1, 0, 0);
}

/* Shared holders coexist; an exclusive waits for all of them; shared arriving after a queued
 * exclusive wait behind it (FIFO, no starvation of the exclusive). */
static void test_fifo_shared_exclusive_order(void **state)
{
    Fixture *fx = *state;
    Owner *s1 = acquire(fx, 0, "s1", &fx->t1, TENANT_LOCK_SHARED);
    Owner *s2 = acquire(fx, 1, "s2", &fx->t1, TENANT_LOCK_SHARED);
    Owner *x1 = acquire(fx, 2, "x1", &fx->t1, TENANT_LOCK_EXCLUSIVE);
    Owner *s3 = acquire(fx, 3, "s3", &fx->t1, TENANT_LOCK_SHARED);
    Owner *x2 = acquire(fx, 4, "x2", &fx->t1, TENANT_LOCK_EXCLUSIVE);
    run_loop(fx);
    assert_int_equal(s1->granted_calls, 1);
    assert_int_equal(s2->granted_calls, 1);
    assert_int_equal(x1->granted_calls, 0);
    assert_int_equal(s3->granted_calls, 0);
    assert_int_equal(x2->granted_calls, 0);
    assert_stats(fx, &fx->t1, 2, 3);

    release(s1);
    run_loop(fx);
    assert_int_equal(x1->granted_calls, 0); /* s2 still holds */
    release(s2);
    run_loop(fx);
    assert_int_equal(x1->granted_calls, 1);
    assert_int_equal(s3->granted_calls, 0);
    assert_stats(fx, &fx->t1, 1, 2);

    release(x1);
    run_loop(fx);
    assert_int_equal(s3->granted_calls, 1);
    assert_int_equal(x2->granted_calls, 0);
    release(s3);
    run_loop(fx);
    assert_int_equal(x2->granted_calls, 1);
    release(x2);
    assert_stats(fx, &fx->t1, 0, 0);

    int order[] = {s1->grant_order, s2->grant_order, x1->grant_order, s3->grant_order,
                   x2->grant_order};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(order[i], (int)i + 1);
}

/* Exclusive waiters are served one at a time, in arrival order. */
static void test_exclusive_fifo(void **state)
{
    Fixture *fx = *state;
    Owner *o[5];
    for (int i = 0; i < 5; i++)
        o[i] = acquire(fx, i, "x", &fx->t1, TENANT_LOCK_EXCLUSIVE);
    for (int i = 0; i < 5; i++) {
        run_loop(fx);
        for (int k = 0; k < 5; k++)
            assert_int_equal(o[k]->granted_calls, k <= i ? 1 : 0);
        assert_stats(fx, &fx->t1, 1, (size_t)(4 - i));
        release(o[i]);
    }
    assert_stats(fx, &fx->t1, 0, 0);
}

/* Locks of different tenants are independent. */
static void test_tenants_independent(void **state)
{
    Fixture *fx = *state;
    Owner *a = acquire(fx, 0, "a", &fx->t1, TENANT_LOCK_EXCLUSIVE);
    Owner *b = acquire(fx, 1, "b", &fx->t2, TENANT_LOCK_EXCLUSIVE);
    run_loop(fx);
    assert_int_equal(a->granted_calls, 1);
    assert_int_equal(b->granted_calls, 1);
    release(a);
    release(b);
}

/* Releasing a waiter cancels it: its callback never runs, and the waiters behind it move up
 * (removing a queued exclusive lets the shared ones behind it join the shared holders). */
static void test_cancel_waiter(void **state)
{
    Fixture *fx = *state;
    Owner *s1 = acquire(fx, 0, "s1", &fx->t1, TENANT_LOCK_SHARED);
    Owner *x = acquire(fx, 1, "x", &fx->t1, TENANT_LOCK_EXCLUSIVE);
    Owner *s2 = acquire(fx, 2, "s2", &fx->t1, TENANT_LOCK_SHARED);
    run_loop(fx);
    assert_int_equal(s1->granted_calls, 1);
    assert_int_equal(s2->granted_calls, 0);
    release(x); /* cancel */
    run_loop(fx);
    assert_int_equal(fx->owners[1].granted_calls, 0);
    assert_int_equal(s2->granted_calls, 1);
    assert_stats(fx, &fx->t1, 2, 0);
    release(s1);
    release(s2);
    assert_stats(fx, &fx->t1, 0, 0);
}

/* Releasing between the grant and its notification: the callback does not run and the next
 * waiter gets the lock. */
static void test_release_before_notification(void **state)
{
    Fixture *fx = *state;
    Owner *a = acquire(fx, 0, "a", &fx->t1, TENANT_LOCK_EXCLUSIVE);
    Owner *b = acquire(fx, 1, "b", &fx->t1, TENANT_LOCK_EXCLUSIVE);
    release(a); /* granted, not yet notified */
    run_loop(fx);
    assert_int_equal(fx->owners[0].granted_calls, 0);
    assert_int_equal(b->granted_calls, 1);
    release(b);
}

/* A callback may release its own lock and acquire others; waiters are woken by that release. */
static void test_release_and_acquire_in_callback(void **state)
{
    Fixture *fx = *state;
    Owner *a = &fx->owners[0];
    a->release_in_callback = true;
    a->acquire_in_callback = true;
    a->name = "a";
    a->lock = tenant_lock_acquire(fx->locks, &fx->t1, TENANT_LOCK_EXCLUSIVE, on_granted, a);
    Owner *b = acquire(fx, 1, "b", &fx->t1, TENANT_LOCK_SHARED);
    run_loop(fx);
    run_loop(fx);
    assert_int_equal(a->granted_calls, 1);
    assert_null(a->lock);
    assert_int_equal(b->granted_calls, 1);
    assert_non_null(fx->nested);
    assert_int_equal(fx->nested->granted_calls, 1);
    release(b);
    release(fx->nested);
    assert_stats(fx, &fx->t1, 0, 0);
    assert_stats(fx, &fx->t2, 0, 0);
}

/* tenant_locks_free with holders, notifications and waiters outstanding frees everything (ASan
 * checks) and runs no callback. */
static void test_free_with_outstanding(void **state)
{
    Fixture *fx = *state;
    Owner *a = acquire(fx, 0, "a", &fx->t1, TENANT_LOCK_SHARED);
    run_loop(fx);
    acquire(fx, 1, "b", &fx->t1, TENANT_LOCK_EXCLUSIVE);
    acquire(fx, 2, "c", &fx->t2, TENANT_LOCK_SHARED); /* granted, not notified */
    assert_int_equal(a->granted_calls, 1);
    tenant_locks_free(fx->locks);
    fx->locks = tenant_locks_new(fx->defer);
    run_loop(fx);
    assert_int_equal(fx->owners[1].granted_calls, 0);
    assert_int_equal(fx->owners[2].granted_calls, 0);
}

/* Grants coalesce into one deferred notification on the shared LoopDefer; freeing the table with
 * a notification queued unqueues it (the LoopDefer stays usable and runs nothing of the table). */
static void test_grants_share_one_deferral(void **state)
{
    Fixture *fx = *state;
    acquire(fx, 0, "a", &fx->t1, TENANT_LOCK_SHARED);
    acquire(fx, 1, "b", &fx->t1, TENANT_LOCK_SHARED);
    acquire(fx, 2, "c", &fx->t2, TENANT_LOCK_EXCLUSIVE);
    assert_int_equal(loop_defer_pending(fx->defer), 1);
    run_loop(fx);
    assert_int_equal(loop_defer_pending(fx->defer), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fx->owners[i].granted_calls, 1);
    assert_true(fx->owners[0].grant_order < fx->owners[1].grant_order);
    assert_true(fx->owners[1].grant_order < fx->owners[2].grant_order);

    release(&fx->owners[2]);
    acquire(fx, 3, "d", &fx->t2, TENANT_LOCK_SHARED); /* granted, not notified */
    assert_int_equal(loop_defer_pending(fx->defer), 1);
    tenant_locks_free(fx->locks);
    assert_int_equal(loop_defer_pending(fx->defer), 0);
    fx->locks = tenant_locks_new(fx->defer);
    run_loop(fx);
    assert_int_equal(fx->owners[3].granted_calls, 0);
}

static Owner *acquire_node(Fixture *fx, int i, const char *name, NodeId node, TenantLockMode m)
{
    Owner *o = &fx->owners[i];
    o->name = name;
    o->lock = node_lock_acquire(fx->locks, node, m, on_granted, o);
    assert_non_null(o->lock);
    return o;
}

/* Node locks: the same FIFO shared / exclusive rules as tenant locks. */
static void test_node_fifo(void **state)
{
    Fixture *fx = *state;
    Owner *s1 = acquire_node(fx, 0, "s1", 7, TENANT_LOCK_SHARED);
    Owner *s2 = acquire_node(fx, 1, "s2", 7, TENANT_LOCK_SHARED);
    Owner *x = acquire_node(fx, 2, "x", 7, TENANT_LOCK_EXCLUSIVE);
    Owner *s3 = acquire_node(fx, 3, "s3", 7, TENANT_LOCK_SHARED);
    assert_int_equal(s1->granted_calls, 0); /* deferred, as for tenants */
    run_loop(fx);
    assert_int_equal(s1->granted_calls, 1);
    assert_int_equal(s2->granted_calls, 1);
    assert_int_equal(x->granted_calls, 0);
    assert_int_equal(s3->granted_calls, 0); /* behind the queued exclusive waiter */
    size_t holders, waiters;
    node_locks_stats(fx->locks, 7, &holders, &waiters);
    assert_int_equal(holders, 2);
    assert_int_equal(waiters, 2);
    assert_true(tenant_lock_is_node(x->lock));
    assert_int_equal(tenant_lock_node(x->lock), 7);
    assert_int_equal(tenant_lock_mode(x->lock), TENANT_LOCK_EXCLUSIVE);
    release(s1);
    release(s2);
    run_loop(fx);
    assert_int_equal(x->granted_calls, 1);
    assert_int_equal(s3->granted_calls, 0);
    release(x);
    run_loop(fx);
    assert_int_equal(s3->granted_calls, 1);
    release(s3);
    node_locks_stats(fx->locks, 7, &holders, &waiters);
    assert_int_equal(holders, 0);
    assert_int_equal(waiters, 0);
}

/* A node lock and a tenant lock never conflict, even when the tenant id's first bytes spell the
 * node id; different nodes are independent. */
static void test_node_and_tenant_independent(void **state)
{
    Fixture *fx = *state;
    TenantId t;
    memset(&t, 0, sizeof(t));
    NodeId node = 0x1111111111111111ull;
    memcpy(t.b, &node, sizeof(node));
    Owner *tn = acquire(fx, 0, "tenant", &t, TENANT_LOCK_EXCLUSIVE);
    Owner *nd = acquire_node(fx, 1, "node", node, TENANT_LOCK_EXCLUSIVE);
    Owner *other = acquire_node(fx, 2, "other", node + 1, TENANT_LOCK_EXCLUSIVE);
    run_loop(fx);
    assert_int_equal(tn->granted_calls, 1);
    assert_int_equal(nd->granted_calls, 1);
    assert_int_equal(other->granted_calls, 1);
    assert_false(tenant_lock_is_node(tn->lock));
    TenantId got = tenant_lock_tenant(tn->lock);
    assert_memory_equal(got.b, t.b, ID_BYTES);
    assert_int_equal(tenant_lock_node(tn->lock), 0);
    size_t holders, waiters;
    tenant_locks_stats(fx->locks, &t, &holders, &waiters);
    assert_int_equal(holders, 1);
    node_locks_stats(fx->locks, node, &holders, &waiters);
    assert_int_equal(holders, 1);
    release(tn);
    release(nd);
    release(other);
}

/* A waiting node lock can leave the queue; freeing the table with node locks outstanding is
 * clean (checked by the sanitizers / valgrind runs). */
static void test_node_cancel_and_free(void **state)
{
    Fixture *fx = *state;
    Owner *a = acquire_node(fx, 0, "a", 3, TENANT_LOCK_EXCLUSIVE);
    Owner *b = acquire_node(fx, 1, "b", 3, TENANT_LOCK_SHARED);
    run_loop(fx);
    assert_int_equal(a->granted_calls, 1);
    release(b); /* still waiting: leaves the queue, never granted */
    run_loop(fx);
    assert_int_equal(b->granted_calls, 0);
    size_t holders, waiters;
    node_locks_stats(fx->locks, 3, &holders, &waiters);
    assert_int_equal(holders, 1);
    assert_int_equal(waiters, 0);
    (void)acquire_node(fx, 2, "c", 3, TENANT_LOCK_SHARED); /* left waiting at teardown */
}

static void test_mode_names(void **state)
{
    assert_string_equal(tenant_lock_mode_name(TENANT_LOCK_SHARED), "shared");
    assert_string_equal(tenant_lock_mode_name(TENANT_LOCK_EXCLUSIVE), "exclusive");
    assert_string_equal(tenant_lock_mode_name(TENANT_LOCK_MODE_COUNT), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_grant_is_deferred, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_shared_exclusive_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclusive_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenants_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_waiter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_before_notification, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_and_acquire_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_outstanding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grants_share_one_deferral, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_and_tenant_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_cancel_and_free, setup, teardown),
        cmocka_unit_test(test_mode_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
