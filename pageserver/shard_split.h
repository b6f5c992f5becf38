/*
 * shard_split.h: PUT /v1/tenant/{parent}/shard_split on the pageserver (docs/split.md): one
 * attached tenant shard becomes new_count / max(count, 1) children on this node, in the parent's
 * generation, without copying layer data:
 *
 *   1. validate (loop): ready; the parent Active, AttachedSingle, not being changed; the counts
 *      (shard_split_validate); a new stripe size only from an unsharded parent (count <= 1); no
 *      timeline being created, imported or deleted (409); every upload queue idle (503: retry).
 *   2. children (BULK worker): for each child and timeline, hard-link the parent's local layer
 *      files into the child's timeline directory, then write the child's index
 *      (tenants/<child>/timelines/<tl>/index_part.json-<gen>) = the parent's index, whose entries
 *      name the shard that wrote each layer, so the children read the parent's objects.
 *   3. attach (loop): each child through the ordinary location_config path (AttachedSingle, the
 *      parent's generation and tenant config, the new count and stripe size): its config is
 *      persisted and it loads the index just written, keeping the hard-linked files.
 *   4. the parent is detached locally (its remote objects stay: the children use them), and the
 *      answer is {"new_shards": [child tsid, ...]}.
 *
 * Crash safety: nothing of the parent changes before step 4, and every step is idempotent: a
 * crash leaves children that a repeated split overwrites (same index, same config) or a detach of
 * the children removes. A repeat after the parent is gone answers the children when all of them
 * are attached here with the new count.
 *
 * Children never serve keys they do not own (read_path checks ownership); a key that belongs to
 * a sibling is "disposable" in the child (shared/key.h) and dropped when its layers are rewritten.
 */
#ifndef PAGESERVER_SHARD_SPLIT_H
#define PAGESERVER_SHARD_SPLIT_H

#include "shared/id.h"
#include "shared/shard_split.h"

#include "pageserver/app.h"

struct TenantManager;

/* tenant_shard_split: the split above; result {"new_shards": [tsid, ...]} (ascending). Errors:
 * 400 invalid counts or stripe size, 404 unknown parent, 409 being changed / busy timelines /
 * not AttachedSingle, 503 not ready, uploads pending, or the parent changed meanwhile, 500 a
 * child could not be attached (the children stay; detach them or split again). */
void tenant_shard_split(struct TenantManager *mgr, const TenantShardId *parent,
                        const ShardSplitRequest *req, PageserverJsonFn cb, void *arg);

#endif
