/*
 * node_metadata.h: <workdir>/metadata.json, the node's registration info (the same fields the
 * storage controller's node registration takes). It is written atomically at every startup and
 * guards the work directory's identity: a pageserver started with another --id on a work
 * directory that already belongs to a node refuses to start, so two identities never share the
 * local state of one.
 *
 * The functions that touch the disk block: call them at startup or from a worker thread.
 */
#ifndef PAGESERVER_NODE_METADATA_H
#define PAGESERVER_NODE_METADATA_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/str.h"

#include "pageserver/defaults.h"

typedef struct NodeMetadata {
    NodeId node_id;
    char listen_http_addr[HOST_MAX];
    uint16_t listen_http_port;
    char listen_pg_addr[HOST_MAX];
    uint16_t listen_pg_port;
    char availability_zone_id[PAGESERVER_AZ_MAX];
} NodeMetadata;

/* node_metadata_to_json: {"node_id", "listen_http_addr", "listen_http_port", "listen_pg_addr",
 * "listen_pg_port", "availability_zone_id"}. The caller owns the result (json_decref). */
json_t *node_metadata_to_json(const NodeMetadata *md);

/* node_metadata_from_json: the fields above, each required and type-checked; unknown fields are
 * ignored (a newer binary may have added some). Malformed -> ERR_BAD_REQUEST. */
bool node_metadata_from_json(const json_t *obj, NodeMetadata *out, Err *err) MUST_CHECK;

/* node_metadata_load: read and parse the file. Absent -> true with *found = false. */
bool node_metadata_load(const char *path, NodeMetadata *out, bool *found, Err *err) MUST_CHECK;

/* node_metadata_store: write the file with fs_write_atomic (temp name, fsync, rename, dir fsync).
 */
bool node_metadata_store(const char *path, const NodeMetadata *md, Err *err) MUST_CHECK;

/* node_metadata_check_identity: if the file at path exists, its node_id must equal node_id;
 * a different id -> ERR_CONFLICT naming both; an unreadable or corrupt file -> its error. */
bool node_metadata_check_identity(const char *path, NodeId node_id, Err *err) MUST_CHECK;

#endif
