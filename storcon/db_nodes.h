/*
 * db_nodes.h: the `nodes` table (registered pageservers), one function per statement, all
 * asynchronous on the DbPool.
 *
 * A node row is never removed: deleting a node turns it into a tombstone (lifecycle 'deleted') so
 * that the same id can never register again. Availability is not persisted. The scheduling policy
 * is stored as the text the caller gives (e.g. "Active"); it is not interpreted here.
 *
 * Every callback runs once, on the loop thread, never inside the call that started it, with
 * err == NULL on success or an Err: ERR_NOT_FOUND (no such node), ERR_CONFLICT (registration
 * clashes with the stored node or a tombstone), ERR_UNAVAILABLE (database unreachable: retry
 * later), ERR_INTERNAL (anything else). Rows handed to a callback are borrowed: valid only during
 * the callback; copy what you keep. Functions returning bool fail (false, no callback, nothing
 * sent) only for invalid arguments (ERR_BAD_REQUEST). Node ids are stored as bigint: only
 * db_nodes_insert checks the range (the entry point for new ids); elsewhere an id above INT64_MAX
 * cannot name a stored node and the database refuses it (ERR_INTERNAL).
 */
#ifndef STORCON_DB_NODES_H
#define STORCON_DB_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/str.h"
#include "storcon/db.h"

#define DB_NODE_AZ_MAX     64 /* availability zone id, including NUL */
#define DB_NODE_POLICY_MAX 32 /* scheduling policy text, including NUL */

typedef struct DbNode {
    NodeId node_id; /* <= INT64_MAX (bigint) */
    char scheduling_policy[DB_NODE_POLICY_MAX];
    char listen_http_addr[HOST_MAX];
    uint16_t listen_http_port;
    uint16_t listen_https_port; /* 0 = none */
    char listen_pg_addr[HOST_MAX];
    uint16_t listen_pg_port;
    char availability_zone_id[DB_NODE_AZ_MAX];
    bool deleted; /* lifecycle 'deleted': a tombstone */
} DbNode;

/* DbNodeRegisterFn: db_nodes_insert finished. On success `stored` is the row now in the database
 * and `created` says whether this call inserted it (false: an identical node existed). */
typedef void (*DbNodeRegisterFn)(const Err *err, const DbNode *stored, bool created, void *arg);
/* DbNodeListFn: nodes[0..n) ordered by node id (NULL when n == 0). */
typedef void (*DbNodeListFn)(const Err *err, const DbNode *nodes, size_t n, void *arg);
/* DbNodeDoneFn: an update finished. */
typedef void (*DbNodeDoneFn)(const Err *err, void *arg);

/* db_nodes_matches: same addresses, ports and availability zone (what registration compares;
 * the scheduling policy and lifecycle are not part of a node's identity). */
bool db_nodes_matches(const DbNode *a, const DbNode *b);

/* db_nodes_insert: register a node (lifecycle 'active', node->deleted is ignored). A node with
 * the same id and db_nodes_matches() is a no-op success (created false; the stored scheduling
 * policy is kept); other addresses -> ERR_CONFLICT; a tombstone with that id -> ERR_CONFLICT
 * "was deleted". false (ERR_BAD_REQUEST) for an id above INT64_MAX, empty addresses, port 0 or
 * an empty scheduling policy. */
bool db_nodes_insert(DbPool *pool, const DbNode *node, DbNodeRegisterFn cb, void *arg,
                     Err *err) MUST_CHECK;

/* db_nodes_list: every active node (tombstones excluded). */
void db_nodes_list(DbPool *pool, DbNodeListFn cb, void *arg);

/* db_nodes_set_scheduling_policy: ERR_NOT_FOUND when no active node has that id. false
 * (ERR_BAD_REQUEST) for an empty or too long policy. */
bool db_nodes_set_scheduling_policy(DbPool *pool, NodeId node_id, const char *policy,
                                    DbNodeDoneFn cb, void *arg, Err *err) MUST_CHECK;

/* db_nodes_tombstone: mark the node deleted (idempotent for a tombstone); ERR_NOT_FOUND when no
 * row has that id. Its shards are not touched: the caller moves them off first. */
void db_nodes_tombstone(DbPool *pool, NodeId node_id, DbNodeDoneFn cb, void *arg);

/* db_nodes_list_tombstones: every tombstone (lifecycle 'deleted'), by node id. */
void db_nodes_list_tombstones(DbPool *pool, DbNodeListFn cb, void *arg);

/* db_nodes_delete_tombstone: remove a tombstone's row (the id may register again afterwards);
 * ERR_NOT_FOUND when there is no tombstone with that id (an active node is never removed). */
void db_nodes_delete_tombstone(DbPool *pool, NodeId node_id, DbNodeDoneFn cb, void *arg);

#endif
