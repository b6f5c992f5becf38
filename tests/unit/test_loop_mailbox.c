/* test_loop_mailbox.c: calls posted from other threads run on the mailbox's loop thread, each
 * exactly once, in each poster's order; a call may post its item again; calls still queued at
 * loop_mailbox_free never run; loop_mailbox_run runs what is queued on the calling thread. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "shared/loop_mailbox.h"

#include "loop_util.h"

#define POSTERS 4
#define POSTS   2000

typedef struct Call {
    LoopMailboxItem item;
    int poster, seq;
} Call;

typedef struct Env {
    LoopMailbox *mb;
    pthread_t loop_thread;
    Call calls[POSTERS][POSTS];
    int next_seq[POSTERS]; /* loop thread: the seq each poster's next call must have */
    int ran;               /* loop thread */
    int wrong;             /* out of order, or not on the loop thread */
} Env;

static Env g_env;

static void on_call(void *arg)
{
    Call *c = arg;
    if (!pthread_equal(pthread_self(), g_env.loop_thread) || c->seq != g_env.next_seq[c->poster])
        g_env.wrong++;
    g_env.next_seq[c->poster] = c->seq + 1;
    g_env.ran++;
}

static void *poster_main(void *arg)
{
    int p = (int)(intptr_t)arg;
    for (int i = 0; i < POSTS; i++) {
        Call *c = &g_env.calls[p][i];
        c->poster = p;
        c->seq = i;
        loop_mailbox_post(g_env.mb, &c->item, on_call, c);
    }
    return NULL;
}

static void test_posts_from_threads_run_on_the_loop_in_order(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    memset(&g_env, 0, sizeof(g_env));
    g_env.loop_thread = pthread_self();
    Err err = {0};
    assert_true(loop_mailbox_new(base, &g_env.mb, &err));
    pthread_t t[POSTERS];
    for (int p = 0; p < POSTERS; p++)
        assert_int_equal(pthread_create(&t[p], NULL, poster_main, (void *)(intptr_t)p), 0);
    assert_true(loop_run_until(base, &g_env.ran, POSTERS * POSTS, 20000));
    for (int p = 0; p < POSTERS; p++)
        pthread_join(t[p], NULL);
    loop_run_for(base, 20);
    assert_int_equal(g_env.ran, POSTERS * POSTS); /* each exactly once */
    assert_int_equal(g_env.wrong, 0);
    for (int p = 0; p < POSTERS; p++)
        assert_int_equal(g_env.next_seq[p], POSTS);
    loop_mailbox_free(g_env.mb);
    event_base_free(base);
}

/* a call that posts its own item again runs again on a later run, not inside the same one */
typedef struct Again {
    LoopMailbox *mb;
    LoopMailboxItem item;
    int runs;
} Again;

static void on_again(void *arg)
{
    Again *a = arg;
    if (++a->runs < 3)
        loop_mailbox_post(a->mb, &a->item, on_again, a);
}

static void test_repost_and_run_and_free(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    Err err = {0};
    Again a = {0};
    assert_true(loop_mailbox_new(base, &a.mb, &err));
    loop_mailbox_post(a.mb, &a.item, on_again, &a);
    loop_mailbox_run(a.mb); /* on this thread, without the loop: one call */
    assert_int_equal(a.runs, 1);
    assert_true(loop_run_until(base, &a.runs, 3, 5000));
    loop_run_for(base, 20);
    assert_int_equal(a.runs, 3);
    /* queued at free: never runs */
    memset(&g_env, 0, sizeof(g_env));
    g_env.loop_thread = pthread_self();
    g_env.calls[0][0].seq = 0;
    loop_mailbox_post(a.mb, &g_env.calls[0][0].item, on_call, &g_env.calls[0][0]);
    loop_mailbox_free(a.mb);
    loop_run_for(base, 20);
    assert_int_equal(g_env.ran, 0);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_from_threads_run_on_the_loop_in_order),
        cmocka_unit_test(test_repost_and_run_and_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
