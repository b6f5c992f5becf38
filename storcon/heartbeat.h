/*
 * heartbeat.h: periodic GET /v1/utilization on every registered pageserver (spec "Heartbeats").
 *
 * Every interval the heartbeater calls each node that has no heartbeat still in flight (a short
 * per-call timeout, a single attempt) and reports each outcome to its owner (the service), which
 * records good heartbeats (node_record_heartbeat: the node becomes Active, its utilization score
 * feeds the scheduler) and turns a node Offline once it has gone unanswered for the offline
 * timeout. The heartbeater itself holds no node state beyond the calls in flight.
 */
#ifndef STORCON_HEARTBEAT_H
#define STORCON_HEARTBEAT_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/id.h"
#include "storcon/node.h"
#include "storcon/pageserver_client.h"

struct event_base;

typedef struct Heartbeater Heartbeater;

typedef struct HeartbeatHooks {
    void *host;
    /* target: fill t for node (base URL written into buf[size]); false: skip the node. */
    bool (*target)(void *host, NodeId node, PageserverTarget *t, char *buf, size_t size);
    /* result: one heartbeat ended; util is NULL when it failed (err says why). */
    void (*result)(void *host, NodeId node, const PageserverUtilization *util, const Err *err);
    /* tick_done: every node of this round has been asked (called right after starting them). */
    void (*tick)(void *host);
} HeartbeatHooks;

typedef struct HeartbeatOptions {
    struct event_base *base;
    PageserverClient *pc;
    NodeSet *nodes;   /* borrowed: the nodes to call */
    long interval_ms; /* 0 = STORCON_HEARTBEAT_INTERVAL_MS */
    long timeout_ms;  /* 0 = STORCON_HEARTBEAT_TIMEOUT_MS */
    HeartbeatHooks hooks;
} HeartbeatOptions;

/* heartbeat_new: not started. Never NULL; free with heartbeat_free (cancels calls in flight, their
 * results are not reported). */
Heartbeater *heartbeat_new(const HeartbeatOptions *opts);
void heartbeat_free(Heartbeater *hb);

/* heartbeat_start: a first round now, then every interval. heartbeat_stop: no more rounds. */
void heartbeat_start(Heartbeater *hb);
void heartbeat_stop(Heartbeater *hb);

/* heartbeat_round: start a round now (e.g. right after a node registered). */
void heartbeat_round(Heartbeater *hb);

/* heartbeat_inflight: calls in flight. */
size_t heartbeat_inflight(const Heartbeater *hb);

#endif
