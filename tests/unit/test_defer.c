/* test_defer.c: unit tests for shared/defer.c (deferred calls on the event loop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "shared/defer.h"

#include "loop_util.h"

typedef struct Ctx {
    struct event_base *base;
    LoopDefer *d;
    int order[64];
    int n;
    LoopDeferItem items[4];
    bool free_in_call;
} Ctx;

static Ctx ctx;

static void record(void *arg)
{
    int v = (int)(intptr_t)arg;
    ctx.order[ctx.n++] = v;
}

static void setup_ctx(void)
{
    memset(&ctx, 0, sizeof(ctx));
    ctx.base = event_base_new();
    ctx.d = loop_defer_new(ctx.base);
}

static void teardown_ctx(void)
{
    loop_defer_free(ctx.d);
    event_base_free(ctx.base);
}

/* Never from inside the caller; FIFO; all run. */
static void test_fifo_and_not_inline(void **state)
{
    (void)state;
    setup_ctx();
    for (int i = 0; i < 20; i++)
        loop_defer(ctx.d, record, (void *)(intptr_t)i);
    assert_int_equal(ctx.n, 0);
    assert_int_equal(loop_defer_pending(ctx.d), 20);
    assert_true(loop_run_until(ctx.base, &ctx.n, 20, 2000));
    for (int i = 0; i < 20; i++)
        assert_int_equal(ctx.order[i], i);
    assert_int_equal(loop_defer_pending(ctx.d), 0);
    /* the free list serves the next round */
    for (int i = 0; i < 5; i++)
        loop_defer(ctx.d, record, (void *)(intptr_t)(100 + i));
    assert_true(loop_run_until(ctx.base, &ctx.n, 25, 2000));
    assert_int_equal(ctx.order[24], 104);
    teardown_ctx();
}

static void redefer(void *arg)
{
    int left = (int)(intptr_t)arg;
    record(arg);
    if (left > 0)
        loop_defer(ctx.d, redefer, (void *)(intptr_t)(left - 1));
}

/* A call that defers again runs on a later loop iteration: one EVLOOP_ONCE runs one of them. */
static void test_redefer_next_iteration(void **state)
{
    (void)state;
    setup_ctx();
    loop_defer(ctx.d, redefer, (void *)(intptr_t)3);
    for (int i = 1; i <= 4; i++) {
        event_base_loop(ctx.base, EVLOOP_ONCE);
        assert_int_equal(ctx.n, i);
    }
    teardown_ctx();
}

/* Items coalesce while queued, can be cancelled, and can be queued again from their function. */
static void test_items(void **state)
{
    (void)state;
    setup_ctx();
    for (int i = 0; i < 3; i++)
        loop_defer_item_init(&ctx.items[i], record, (void *)(intptr_t)(10 + i));
    assert_true(loop_defer_item(ctx.d, &ctx.items[0]));
    assert_false(loop_defer_item(ctx.d, &ctx.items[0])); /* coalesced */
    assert_true(loop_defer_item(ctx.d, &ctx.items[1]));
    assert_true(loop_defer_item(ctx.d, &ctx.items[2]));
    assert_true(loop_defer_item_queued(&ctx.items[1]));
    loop_defer_cancel(ctx.d, &ctx.items[1]);
    loop_defer_cancel(ctx.d, &ctx.items[1]); /* no-op */
    assert_false(loop_defer_item_queued(&ctx.items[1]));
    assert_int_equal(loop_defer_pending(ctx.d), 2);
    assert_true(loop_run_until(ctx.base, &ctx.n, 2, 2000));
    loop_run_for(ctx.base, 20);
    assert_int_equal(ctx.n, 2);
    assert_int_equal(ctx.order[0], 10);
    assert_int_equal(ctx.order[1], 12);
    assert_false(loop_defer_item_queued(&ctx.items[0]));
    teardown_ctx();
}

static void cancel_next(void *arg)
{
    record(arg);
    loop_defer_cancel(ctx.d, &ctx.items[1]); /* in the batch being run */
}

/* Cancelling an item of the batch being run keeps it from running. */
static void test_cancel_inside_batch(void **state)
{
    (void)state;
    setup_ctx();
    loop_defer_item_init(&ctx.items[0], cancel_next, (void *)(intptr_t)1);
    loop_defer_item_init(&ctx.items[1], record, (void *)(intptr_t)2);
    loop_defer_item_init(&ctx.items[2], record, (void *)(intptr_t)3);
    for (int i = 0; i < 3; i++)
        assert_true(loop_defer_item(ctx.d, &ctx.items[i]));
    assert_true(loop_run_until(ctx.base, &ctx.n, 2, 2000));
    loop_run_for(ctx.base, 20);
    assert_int_equal(ctx.n, 2);
    assert_int_equal(ctx.order[1], 3);
    teardown_ctx();
}

static void free_defer(void *arg)
{
    record(arg);
    loop_defer_free(ctx.d);
    ctx.d = NULL;
}

/* A call may free the LoopDefer; the rest never runs; pending nodes are freed (ASan). */
static void test_free_from_call(void **state)
{
    (void)state;
    setup_ctx();
    loop_defer_item_init(&ctx.items[0], record, (void *)(intptr_t)9);
    loop_defer(ctx.d, free_defer, (void *)(intptr_t)1);
    loop_defer(ctx.d, record, (void *)(intptr_t)2);
    assert_true(loop_defer_item(ctx.d, &ctx.items[0]));
    assert_true(loop_run_until(ctx.base, &ctx.n, 1, 2000));
    loop_run_for(ctx.base, 20);
    assert_int_equal(ctx.n, 1);
    assert_false(loop_defer_item_queued(&ctx.items[0]));
    teardown_ctx(); /* loop_defer_free(NULL) */
}

/* Freeing with calls pending drops them. */
static void test_free_pending(void **state)
{
    (void)state;
    setup_ctx();
    loop_defer(ctx.d, record, (void *)(intptr_t)1);
    teardown_ctx();
    assert_int_equal(ctx.n, 0);
}

static void on_json(const Err *err, json_t *result, void *arg)
{
    (void)arg;
    if (err == NULL) {
        assert_non_null(result);
        ctx.order[ctx.n++] = (int)json_integer_value(result);
        json_decref(result);
    } else {
        assert_null(result); /* the result of a failed call is dropped */
        assert_string_equal(err->msg, "busy");
        ctx.order[ctx.n++] = -(int)err->code;
    }
}

static void on_done(const Err *err, void *arg)
{
    ctx.order[ctx.n++] = err == NULL ? (int)(intptr_t)arg : -(int)err->code;
}

/* Completions: later, in order, with a copy of the error (the caller's may be gone). */
static void test_completions(void **state)
{
    (void)state;
    setup_ctx();
    loop_defer_json(ctx.d, on_json, NULL, NULL, json_integer(7));
    {
        Err err;
        err_clear(&err);
        err_set(&err, ERR_CONFLICT, "busy");
        loop_defer_json(ctx.d, on_json, NULL, &err, json_integer(8));
        loop_defer_done(ctx.d, on_done, NULL, &err);
        memset(&err, 0, sizeof(err));
    }
    loop_defer_done(ctx.d, on_done, (void *)(intptr_t)9, NULL);
    assert_int_equal(ctx.n, 0);
    assert_true(loop_run_until(ctx.base, &ctx.n, 4, 2000));
    assert_int_equal(ctx.order[0], 7);
    assert_int_equal(ctx.order[1], -(int)ERR_CONFLICT);
    assert_int_equal(ctx.order[2], -(int)ERR_CONFLICT);
    assert_int_equal(ctx.order[3], 9);
    teardown_ctx();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_not_inline),
        cmocka_unit_test(test_redefer_next_iteration),
        cmocka_unit_test(test_items),
        cmocka_unit_test(test_cancel_inside_batch),
        cmocka_unit_test(test_free_from_call),
        cmocka_unit_test(test_free_pending),
        cmocka_unit_test(test_completions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
