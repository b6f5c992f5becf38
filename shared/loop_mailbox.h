/*
 * loop_mailbox.h: calls into an event loop from other threads. loop_defer (defer.h) is the
 * loop's own "run soon"; a mailbox is how another thread asks a loop to run something: a mutex,
 * an intrusive FIFO list and an eventfd the loop watches (the worker pool's completions work the
 * same way, for its own jobs).
 *
 * loop_mailbox_post(mb, item, fn, arg) may be called from any thread; fn(arg) then runs on the
 * mailbox's loop thread, in the order posted. The item is the caller's (embedded in the object
 * the call is about: no allocation), and must not be posted again before its call has started.
 * The poster's writes before the post are visible to fn (the mutex orders them). The eventfd is
 * written only when the list was empty, so a burst of posts costs one wakeup.
 */
#ifndef SHARED_LOOP_MAILBOX_H
#define SHARED_LOOP_MAILBOX_H

#include <stdbool.h>

#include "shared/err.h"

struct event_base;

typedef struct LoopMailbox LoopMailbox;
typedef void (*LoopMailboxFn)(void *arg);

/* LoopMailboxItem: caller-owned; fields are private. */
typedef struct LoopMailboxItem {
    LoopMailboxFn fn;
    void *arg;
    struct LoopMailboxItem *next;
} LoopMailboxItem;

/* loop_mailbox_new: a mailbox whose calls run on base's loop; the caller frees it with
 * loop_mailbox_free. false (ERR_INTERNAL) when the eventfd or its event cannot be made. */
bool loop_mailbox_new(struct event_base *base, LoopMailbox **out, Err *err) MUST_CHECK;
/* loop_mailbox_post: any thread. */
void loop_mailbox_post(LoopMailbox *mb, LoopMailboxItem *item, LoopMailboxFn fn, void *arg);
/* loop_mailbox_run: run what is queued now, on the calling thread (the loop's thread, or any
 * thread once the loop's thread is gone); what the calls post goes to the next run. */
void loop_mailbox_run(LoopMailbox *mb);
/* loop_mailbox_free: from the loop's thread (not from inside a call) or once no other thread
 * posts any more; calls still queued never run. NULL ok. */
void loop_mailbox_free(LoopMailbox *mb);

#endif
