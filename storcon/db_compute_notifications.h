/*
 * db_compute_notifications.h: the `compute_notifications` table (migration 0003): per tenant the
 * SHA-256 of the notify-attach body the control plane last accepted (storcon.md "Compute
 * notifications"). One function per statement, asynchronous on the DbPool; callbacks run once on
 * the loop thread with err NULL on success (ERR_UNAVAILABLE: database unreachable, ERR_INTERNAL:
 * anything else). Rows handed to a callback are borrowed.
 */
#ifndef STORCON_DB_COMPUTE_NOTIFICATIONS_H
#define STORCON_DB_COMPUTE_NOTIFICATIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"
#include "storcon/db.h"

#define DB_BODY_HASH_SIZE 32 /* SHA-256 */

typedef struct DbComputeNotification {
    TenantId tenant_id;
    uint8_t body_sha256[DB_BODY_HASH_SIZE];
} DbComputeNotification;

/* DbComputeNotificationsFn: rows[0..n) (NULL when n == 0). */
typedef void (*DbComputeNotificationsFn)(const Err *err, const DbComputeNotification *rows,
                                         size_t n, void *arg);
typedef void (*DbComputeNotificationsDoneFn)(const Err *err, void *arg);

/* db_compute_notifications_load: in one transaction, remove the rows of tenants that have no
 * shard outside placement Detached (deleted or detached tenants: the controller does not load
 * them, and their next attachment is notified in full), then read the rest. */
void db_compute_notifications_load(DbPool *pool, DbComputeNotificationsFn cb, void *arg);

/* DbComputeNotificationWrite: one tenant's new record: the hash, or none (has_hash false: the
 * row is removed). */
typedef struct DbComputeNotificationWrite {
    TenantId tenant_id;
    bool has_hash;
    uint8_t body_sha256[DB_BODY_HASH_SIZE];
} DbComputeNotificationWrite;

/* db_compute_notifications_write: apply writes[0..n) in one statement (upserts and deletes).
 * A tenant may appear at most once (else ERR_INTERNAL from the database). The handle is for
 * db_cancel (valid until the callback runs). */
DbRequest *db_compute_notifications_write(DbPool *pool, const DbComputeNotificationWrite *writes,
                                          size_t n, DbComputeNotificationsDoneFn cb, void *arg);

#endif
