/*
 * loop_mailbox.c: calls into an event loop from other threads (loop_mailbox.h).
 *
 * The list is taken whole under the mutex and run outside it. The eventfd is read before the
 * list is taken: a post that finds the list empty after the take writes the eventfd again, so
 * no call is ever left without a wakeup.
 */
#include "shared/loop_mailbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "shared/log.h"
#include "shared/str.h"

struct LoopMailbox {
    pthread_mutex_t mu;
    LoopMailboxItem *head, *tail; /* under mu */
    int efd;
    struct event *ev;
};

void loop_mailbox_run(LoopMailbox *mb)
{
    uint64_t v;
    ssize_t n = read(mb->efd, &v, sizeof(v)); /* EAGAIN when nothing was written: fine */
    (void)n;
    pthread_mutex_lock(&mb->mu);
    LoopMailboxItem *it = mb->head;
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->mu);
    while (it != NULL) {
        LoopMailboxItem *next = it->next; /* the call may post the item again */
        it->next = NULL;
        it->fn(it->arg);
        it = next;
    }
}

static void mailbox_event_cb(evutil_socket_t fd, short what, void *arg)
{
    loop_mailbox_run(arg);
}

bool loop_mailbox_new(struct event_base *base, LoopMailbox **out, Err *err)
{
    LoopMailbox *mb = xcalloc(1, sizeof(*mb));
    pthread_mutex_init(&mb->mu, NULL);
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mb->efd < 0) {
        err_set(err, ERR_INTERNAL, "mailbox: eventfd: %s", strerror(errno));
        goto cleanup;
    }
    mb->ev = event_new(base, mb->efd, EV_READ | EV_PERSIST, mailbox_event_cb, mb);
    if (mb->ev == NULL || event_add(mb->ev, NULL) != 0) {
        err_set(err, ERR_INTERNAL, "mailbox: cannot watch the eventfd");
        goto cleanup;
    }
    *out = mb;
    return true;
cleanup:
    loop_mailbox_free(mb);
    return false;
}

void loop_mailbox_post(LoopMailbox *mb, LoopMailboxItem *item, LoopMailboxFn fn, void *arg)
{
    item->fn = fn;
    item->arg = arg;
    item->next = NULL;
    pthread_mutex_lock(&mb->mu);
    bool was_empty = mb->head == NULL;
    if (mb->tail != NULL)
        mb->tail->next = item;
    else
        mb->head = item;
    mb->tail = item;
    pthread_mutex_unlock(&mb->mu);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t n = write(mb->efd, &one, sizeof(one)); /* EAGAIN: the counter is full, awake */
        (void)n;
    }
}

void loop_mailbox_free(LoopMailbox *mb)
{
    if (mb == NULL)
        return;
    if (mb->ev != NULL)
        event_free(mb->ev);
    if (mb->efd >= 0)
        close(mb->efd);
    pthread_mutex_destroy(&mb->mu);
    free(mb);
}
