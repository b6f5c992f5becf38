/*
 * tenant_lock.h: the per-tenant and per-node locks the service's operations take (storcon.md
 * "Tenant operations take a per-tenant lock: exclusive for create, delete, location_config,
 * config, policy, split; shared for timeline operations"; node locks the same way, for node
 * configuration and the drain / fill to come). One table (TenantLocks) holds both kinds; a tenant
 * and a node lock never conflict with each other. The service owns the table and its operations
 * (storcon/operation.h) take the locks; nothing else does.
 *
 * Asynchronous and fair: a request that cannot have the lock now waits in a FIFO queue per
 * tenant (or node), without blocking the event loop. Waiters are granted strictly in arrival order:
 * a shared waiter behind a queued exclusive one waits too, so a stream of timeline operations
 * cannot starve a tenant delete. Consecutive shared waiters at the head of the queue are granted
 * together.
 *
 * Conventions: loop thread only. The granted callback runs exactly once, from the event loop,
 * never from inside tenant_lock_acquire or tenant_lock_release, unless the lock was released
 * (cancelled) first. A tenant or node with no holders and no waiters uses no memory.
 */
#ifndef STORCON_TENANT_LOCK_H
#define STORCON_TENANT_LOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/defer.h"
#include "shared/id.h"

typedef struct TenantLocks TenantLocks;
typedef struct TenantLock TenantLock;

typedef enum TenantLockMode {
    TENANT_LOCK_SHARED,    /* timeline operations, passthrough */
    TENANT_LOCK_EXCLUSIVE, /* create, delete, location_config, config, policy, split */
    TENANT_LOCK_MODE_COUNT
} TenantLockMode;

/* TenantLockGranted: the lock is held from now on until tenant_lock_release(lock). */
typedef void (*TenantLockGranted)(TenantLock *lock, void *arg);

/* tenant_locks_new: an empty lock table whose grant notifications are deferred through defer
 * (borrowed: it must outlive the table). Never NULL; the caller frees with tenant_locks_free. */
TenantLocks *tenant_locks_new(LoopDefer *defer);

/* tenant_locks_free: free the table and every lock still in it (held or waiting); their
 * callbacks never run and their handles become invalid. NULL ok. */
void tenant_locks_free(TenantLocks *locks);

/* tenant_lock_acquire: queue a request for tenant's lock in mode. Never NULL; the handle is
 * owned by the table and valid until tenant_lock_release. granted runs later (see above). */
TenantLock *tenant_lock_acquire(TenantLocks *locks, const TenantId *tenant, TenantLockMode mode,
                                TenantLockGranted granted, void *arg);

/* node_lock_acquire: the same for node's lock. */
TenantLock *node_lock_acquire(TenantLocks *locks, NodeId node, TenantLockMode mode,
                              TenantLockGranted granted, void *arg);

/* tenant_lock_release: give the lock back (held) or leave the queue (waiting: granted never
 * runs); waiters that can now go are granted. Frees the handle. NULL ok. */
void tenant_lock_release(TenantLock *lock);

/* tenant_lock_is_held: granted and not yet released (false while waiting, also between the grant
 * and its callback). */
bool tenant_lock_is_held(const TenantLock *lock);

/* tenant_locks_stats: for tests and debugging: how many hold (or were granted) and wait for
 * tenant's lock. */
void tenant_locks_stats(const TenantLocks *locks, const TenantId *tenant, size_t *holders,
                        size_t *waiters);

/* node_locks_stats: the same for node's lock. */
void node_locks_stats(const TenantLocks *locks, NodeId node, size_t *holders, size_t *waiters);

/* What a lock handle is for: its mode, whether it is a node's lock, and the tenant (a zero id for
 * a node lock) or the node (0 for a tenant lock). */
TenantLockMode tenant_lock_mode(const TenantLock *lock);
bool tenant_lock_is_node(const TenantLock *lock);
TenantId tenant_lock_tenant(const TenantLock *lock);
NodeId tenant_lock_node(const TenantLock *lock);

const char *tenant_lock_mode_name(TenantLockMode mode);

#endif
