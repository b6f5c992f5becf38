/*
 * service_split.h: the shard split operation of the storage controller (storcon/service_split.c;
 * docs/split.md): PUT /control/v1/tenant/{tenant_id}/shard_split grows a tenant from N to M
 * shards under the tenant's exclusive lock, and a controller that finds leftovers of a split at
 * startup cleans them up.
 *
 * Steps (each preceded by the failpoint split-before-<step>, which tests arm with "return" to make
 * the step fail or "exit" to crash the controller there):
 *   preconditions  400 bad count / stripe, 404, 409 busy (another operation holds or waits for the
 *                  tenant, an import runs, a split is half-done); the shards are marked splitting
 *                  in memory (nothing reconciles, schedules or optimises them any more) and the
 *                  running reconciles are waited for; every shard attached: 503 otherwise
 *   detach-secondaries  the parents' secondaries are detached on their nodes
 *   begin          database begin-split (parents splitting, children rows in the parents'
 *                  generation and node)
 *   pageservers    PUT /v1/tenant/{parent}/shard_split on each parent's node; the returned child
 *                  ids must be exactly the expected ones
 *   commit         database complete-split (parents deleted, children no longer splitting)
 *   apply          in memory: parents replaced by the children, attached on the parents' nodes in
 *                  the parents' generation; scheduled (secondaries), reconciled; their reconciles
 *                  send the one compute notification with the whole new map
 * Any failure before commit aborts: database abort-split, the children detached on the parents'
 * nodes, the parents rescheduled and reconciled (a parent the pageserver already shut down is
 * attached again in a new generation). After commit nothing aborts.
 */
#ifndef STORCON_SERVICE_SPLIT_H
#define STORCON_SERVICE_SPLIT_H

#include "shared/id.h"
#include "shared/shard_split.h"
#include "storcon/service.h"

/* service_tenant_shard_split: the operation above; result {"new_shards": [tsid, ...]} (the
 * children in shard order). */
void service_tenant_shard_split(Service *svc, const TenantId *tenant, const ShardSplitRequest *req,
                                ServiceJsonFn cb, void *arg);

/* service_split_leftover: startup found tsid on node, a shard the controller does not have but of
 * a tenant it has: what a split left behind (children of an aborted split, a parent of a
 * committed one). It is detached there (logged; a failure leaves it for the node's next
 * re-attach, which drops every shard the controller does not list). False (nothing done) when
 * the tenant is unknown. */
bool service_split_leftover(Service *svc, NodeId node, const TenantShardId *tsid);

#endif
