/*
 * heartbeat.c: the heartbeat rounds (see heartbeat.h). One persistent libevent timer; one in-flight
 * record per node being called, so that a slow node is never asked twice at once.
 */
#include "storcon/heartbeat.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "shared/log.h"
#include "shared/str.h"
#include "storcon/defaults.h"

typedef struct HeartbeatCall {
    Heartbeater *hb;
    NodeId node;
    PageserverCall *call;
    struct HeartbeatCall *next;
} HeartbeatCall;

struct Heartbeater {
    HeartbeatOptions opts;
    struct event *timer;
    HeartbeatCall *calls;
    size_t inflight;
};

Heartbeater *heartbeat_new(const HeartbeatOptions *opts)
{
    Heartbeater *hb = xcalloc(1, sizeof(*hb));
    hb->opts = *opts;
    if (hb->opts.interval_ms <= 0)
        hb->opts.interval_ms = STORCON_HEARTBEAT_INTERVAL_MS;
    if (hb->opts.timeout_ms <= 0)
        hb->opts.timeout_ms = STORCON_HEARTBEAT_TIMEOUT_MS;
    return hb;
}

void heartbeat_free(Heartbeater *hb)
{
    if (hb == NULL)
        return;
    heartbeat_stop(hb);
    while (hb->calls != NULL) {
        HeartbeatCall *c = hb->calls;
        hb->calls = c->next;
        pageserver_call_cancel(c->call);
        free(c);
    }
    free(hb);
}

static bool call_inflight(const Heartbeater *hb, NodeId node)
{
    for (const HeartbeatCall *c = hb->calls; c != NULL; c = c->next) {
        if (c->node == node)
            return true;
    }
    return false;
}

static void remove_call(Heartbeater *hb, HeartbeatCall *call)
{
    for (HeartbeatCall **p = &hb->calls; *p != NULL; p = &(*p)->next) {
        if (*p == call) {
            *p = call->next;
            hb->inflight--;
            return;
        }
    }
}

static void on_utilization(const PageserverResult *res, void *arg)
{
    HeartbeatCall *c = arg;
    Heartbeater *hb = c->hb;
    NodeId node = c->node;
    remove_call(hb, c);
    free(c);
    if (hb->opts.hooks.result == NULL)
        return;
    if (res->ok)
        hb->opts.hooks.result(hb->opts.hooks.host, node, &res->utilization, NULL);
    else
        hb->opts.hooks.result(hb->opts.hooks.host, node, NULL, &res->err);
}

void heartbeat_round(Heartbeater *hb)
{
    for (size_t i = 0; i < node_set_count(hb->opts.nodes); i++) {
        Node *n = node_set_at(hb->opts.nodes, i);
        if (n->lifecycle != NODE_LIFECYCLE_ACTIVE || call_inflight(hb, n->id))
            continue;
        PageserverTarget t;
        char url[HOST_MAX + 32];
        memset(&t, 0, sizeof(t));
        if (hb->opts.hooks.target == NULL ||
            !hb->opts.hooks.target(hb->opts.hooks.host, n->id, &t, url, sizeof(url)))
            continue;
        t.timeout_ms = hb->opts.timeout_ms;
        memset(&t.retry, 0, sizeof(t.retry));
        HeartbeatCall *c = xcalloc(1, sizeof(*c));
        c->hb = hb;
        c->node = n->id;
        c->next = hb->calls;
        hb->calls = c;
        hb->inflight++;
        c->call = pageserver_client_utilization(hb->opts.pc, &t, on_utilization, c);
    }
    if (hb->opts.hooks.tick != NULL)
        hb->opts.hooks.tick(hb->opts.hooks.host);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    heartbeat_round(arg);
}

void heartbeat_start(Heartbeater *hb)
{
    if (hb->timer != NULL)
        return;
    hb->timer = event_new(hb->opts.base, -1, EV_PERSIST, timer_cb, hb);
    struct timeval tv = {.tv_sec = hb->opts.interval_ms / 1000,
                         .tv_usec = (hb->opts.interval_ms % 1000) * 1000};
    event_add(hb->timer, &tv);
    heartbeat_round(hb);
}

void heartbeat_stop(Heartbeater *hb)
{
    if (hb->timer != NULL) {
        event_free(hb->timer);
        hb->timer = NULL;
    }
}

size_t heartbeat_inflight(const Heartbeater *hb)
{
    return hb->inflight;
}
