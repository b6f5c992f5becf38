/*
 * remote_layout.h: the names of every object the pageserver keeps in remote storage
 * (pageserver.md "Remote storage layout"), and the choice of which timeline index to read.
 *
 *   timeline index   tenants/<tsid>/timelines/<tl>/index_part.json<-gen>
 *   layer            tenants/<tenant_id><-NNCC of the WRITING shard>/timelines/<tl>/<name><-gen>
 *   tenant manifest  tenants/<tsid>/tenant-manifest<-gen>.json
 *   heatmap          tenants/<tsid>/heatmap-v1.json
 *   initdb result    tenants/<tenant_id>/timelines/<tl>/initdb.tar.zst  (unsharded path, shared)
 *
 * <-gen> is "-%08x" lowercase, or nothing for GENERATION_NONE (legacy objects). A layer lives
 * under the shard that wrote it (IndexLayer.shard), which after a split is the parent, not the
 * reader: an unsharded writer (count 0) has no "-NNCC" suffix.
 *
 * Index choice on attach in generation g: try g, then g-1, else list and take the highest
 * generation <= g; never a newer one. The legacy suffix-less index counts as the lowest.
 *
 * Every key fits in REMOTE_KEY_SIZE; pure string functions, no I/O.
 */
#ifndef PAGESERVER_REMOTE_LAYOUT_H
#define PAGESERVER_REMOTE_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"
#include "shared/id.h"

#define REMOTE_KEY_SIZE 512

#define REMOTE_LAYOUT_INDEX_NAME    "index_part.json"
#define REMOTE_LAYOUT_HEATMAP_NAME  "heatmap-v1.json"
#define REMOTE_LAYOUT_INITDB_NAME   "initdb.tar.zst"
#define REMOTE_LAYOUT_MANIFEST_STEM "tenant-manifest"

/* remote_layout_index_key: tenants/<tsid>/timelines/<tl>/index_part.json<-gen>. */
void remote_layout_index_key(const TenantShardId *tsid, const TimelineId *tl, Generation gen,
                             char out[REMOTE_KEY_SIZE]);

/* remote_layout_layer_key: tenants/<tenant_id><-NNCC of writer>/timelines/<tl>/<name><-gen>.
 * writer is the shard index recorded for the layer in the index (count 0: no suffix). 400 for a
 * layer name that is empty, contains '/', is "." or "..", or does not fit. */
bool remote_layout_layer_key(const TenantId *tenant, ShardIndex writer, const TimelineId *tl,
                             const char *layer_name, Generation gen, char out[REMOTE_KEY_SIZE],
                             Err *err) MUST_CHECK;

/* remote_layout_manifest_key: tenants/<tsid>/tenant-manifest<-gen>.json. */
void remote_layout_manifest_key(const TenantShardId *tsid, Generation gen,
                                char out[REMOTE_KEY_SIZE]);

/* remote_layout_heatmap_key: tenants/<tsid>/heatmap-v1.json (no generation). */
void remote_layout_heatmap_key(const TenantShardId *tsid, char out[REMOTE_KEY_SIZE]);

/* remote_layout_initdb_key: tenants/<tenant_id>/timelines/<tl>/initdb.tar.zst. */
void remote_layout_initdb_key(const TenantId *tenant, const TimelineId *tl,
                              char out[REMOTE_KEY_SIZE]);

/* remote_layout_tenant_shard_prefix: "tenants/<tsid>/" (the trailing '/' keeps an unsharded id
 * from matching its shards' prefixes). */
void remote_layout_tenant_shard_prefix(const TenantShardId *tsid, char out[REMOTE_KEY_SIZE]);

/* remote_layout_tenant_all_shards_prefix: "tenants/<tenant_id>" without a '/': matches the
 * unsharded prefix and every "-NNCC" shard prefix (DELETE of an unsharded id). Callers must still
 * check that each listed key continues with '/' or '-' (a tenant id is fixed-length hex, so no
 * other tenant can share this prefix). */
void remote_layout_tenant_all_shards_prefix(const TenantId *tenant, char out[REMOTE_KEY_SIZE]);

/* remote_layout_timelines_prefix: "tenants/<tsid>/timelines/" (list timelines on attach). */
void remote_layout_timelines_prefix(const TenantShardId *tsid, char out[REMOTE_KEY_SIZE]);

/* remote_layout_timeline_prefix: "tenants/<tsid>/timelines/<tl>/". */
void remote_layout_timeline_prefix(const TenantShardId *tsid, const TimelineId *tl,
                                   char out[REMOTE_KEY_SIZE]);

/* remote_layout_index_prefix: "tenants/<tsid>/timelines/<tl>/index_part.json": lists every
 * generation's index of the timeline. */
void remote_layout_index_prefix(const TenantShardId *tsid, const TimelineId *tl,
                                char out[REMOTE_KEY_SIZE]);

/* remote_layout_parse_index_key: the generation of an index object, from a full key or its last
 * segment ("index_part.json-0000000a" -> 10, "index_part.json" -> GENERATION_NONE). 400 for any
 * other name. */
bool remote_layout_parse_index_key(const char *key, Generation *out, Err *err) MUST_CHECK;

/* remote_layout_parse_manifest_key: the same for "tenant-manifest<-gen>.json". */
bool remote_layout_parse_manifest_key(const char *key, Generation *out, Err *err) MUST_CHECK;

/* remote_layout_index_candidates: the generations to try directly before listing: g, then g-1
 * (g-1 of 0 is the legacy none). *n receives 1 or 2 (1 when g is none). */
void remote_layout_index_candidates(Generation g, Generation out[2], size_t *n);

/* remote_layout_pick_index_generation: among available (n entries, any order, duplicates and
 * out-of-range values ignored) the generation to read when attaching in g: g if there, else g-1 if
 * there, else the highest <= g (none being the lowest). *found false (and *picked untouched) when
 * every available generation is newer than g. */
void remote_layout_pick_index_generation(const Generation *available, size_t n, Generation g,
                                         Generation *picked, bool *found);

#endif
