/*
 * index_part.h: the timeline index stored in remote storage as
 * tenants/<tsid>/timelines/<tl>/index_part.json-<gen> (pageserver.md "Remote storage layout").
 *
 * Wire form (compact, keys in this order when written):
 *   {"version": n,
 *    "layer_metadata": {"<layer name>": {"file_size": n, "generation": n, "shard": "NNCC"}, ...},
 *    "disk_consistent_lsn": "X/X",
 *    "metadata": {"disk_consistent_lsn": "X/X", "prev_record_lsn": "X/X" or null,
 *                 "ancestor_timeline": "<hex>" or null, "ancestor_lsn": "X/X",
 *                 "latest_gc_cutoff_lsn": "X/X", "initdb_lsn": "X/X", "pg_version": n},
 *    "deleted_at": "<rfc3339>",      (only when set)
 *    "import_pgdata": {...}}         (only when set; opaque here, see import.md)
 *
 * LSNs: as in Neon's format, an LSN that is not there ("no ancestor", a fresh timeline) is
 * written "0/0" (prev_record_lsn: null); reading accepts "0/0" and null for LSN_INVALID in every
 * LSN field. A layer's generation is omitted when none and read as none when absent or null; its
 * shard is read as "0000" (unsharded) when absent.
 *
 * Reading tolerates unknown keys at every level (forward compatibility: a newer pageserver may
 * have written the index); unknown top-level and metadata keys are logged. A known key with a
 * malformed value is an error (400). Unknown keys are not preserved when the index is rewritten.
 *
 * Layers are kept sorted by name (bytewise) in a growable array; lookups are binary searches.
 */
#ifndef PAGESERVER_INDEX_PART_H
#define PAGESERVER_INDEX_PART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"

/* The version this pageserver writes. Readers accept any version (fields decide, not numbers). */
#define INDEX_PART_VERSION 1u

/* A delta layer name is 108 characters; the rest is room for future name forms. */
#define INDEX_LAYER_NAME_SIZE 128
/* "2024-01-31T12:34:56.123456789+00:00" is 35 characters. */
#define INDEX_TIMESTAMP_SIZE 48

typedef struct IndexLayer {
    char name[INDEX_LAYER_NAME_SIZE]; /* e.g. "<keystart>-<keyend>__<lsn>" */
    uint64_t file_size;
    Generation generation; /* of the pageserver that wrote it; GENERATION_NONE = legacy */
    ShardIndex shard;      /* the shard that wrote it (its object lives under that shard) */
} IndexLayer;

typedef struct IndexMetadata {
    Lsn disk_consistent_lsn;
    Lsn prev_record_lsn; /* LSN_INVALID = unknown */
    bool has_ancestor;
    TimelineId ancestor_timeline; /* valid when has_ancestor */
    Lsn ancestor_lsn;             /* LSN_INVALID without an ancestor */
    Lsn latest_gc_cutoff_lsn;
    Lsn initdb_lsn;
    uint32_t pg_version;
} IndexMetadata;

typedef struct IndexPart {
    uint32_t version;
    IndexLayer *layers; /* sorted by name; owned */
    size_t n_layers;
    size_t cap_layers;
    Lsn disk_consistent_lsn;
    IndexMetadata metadata;
    bool has_deleted_at;
    char deleted_at[INDEX_TIMESTAMP_SIZE]; /* as read or set, when has_deleted_at */
    json_t *import_pgdata;                 /* owned reference, or NULL when absent */
} IndexPart;

/* index_part_new: an empty index (version INDEX_PART_VERSION, no layers, all LSNs invalid). The
 * caller frees it with index_part_free. */
IndexPart *index_part_new(void);

/* index_part_free: the index and everything it owns; NULL is a no-op. */
void index_part_free(IndexPart *part);

/* index_part_clone: a deep copy (import_pgdata shared by reference); freed with index_part_free. */
IndexPart *index_part_clone(const IndexPart *part);

/* index_part_parse: the text of an index_part.json object. On success *out is a new index the
 * caller frees with index_part_free. Malformed JSON or a malformed known field -> 400. */
bool index_part_parse(const char *text, size_t len, IndexPart **out, Err *err) MUST_CHECK;

/* index_part_from_json: the same from a parsed value. */
bool index_part_from_json(const json_t *obj, IndexPart **out, Err *err) MUST_CHECK;

/* index_part_to_json: the wire object (key order above). New reference; the caller owns it. */
json_t *index_part_to_json(const IndexPart *part);

/* index_part_serialize: compact text of index_part_to_json; the caller frees it with free(). */
char *index_part_serialize(const IndexPart *part);

/* index_part_layer_name_check: a layer name usable in the index and in an object key: non-empty,
 * shorter than INDEX_LAYER_NAME_SIZE, only [0-9A-Za-z_.-]. 400 otherwise. */
bool index_part_layer_name_check(const char *name, Err *err) MUST_CHECK;

/* index_layer_to_json / index_layer_from_json: one layer's metadata object ({"file_size",
 * "generation", "shard"}), as in layer_metadata (and in heatmaps); from_json checks the name and
 * the fields (400), ignoring unknown keys. */
json_t *index_layer_to_json(const IndexLayer *l);
bool index_layer_from_json(const char *name, const json_t *v, IndexLayer *out, Err *err) MUST_CHECK;

/* index_part_add_layer: insert the layer, or replace the entry with the same name; the array
 * stays sorted. 400 for an invalid name. */
bool index_part_add_layer(IndexPart *part, const IndexLayer *layer, Err *err) MUST_CHECK;

/* index_part_remove_layer: remove the entry named name; false when there was none. */
bool index_part_remove_layer(IndexPart *part, const char *name);

/* index_part_find_layer: the entry named name, or NULL. The pointer is into part's array: valid
 * until the next add or remove. */
const IndexLayer *index_part_find_layer(const IndexPart *part, const char *name);

/* index_part_set_deleted_at: mark the timeline deleted at unix time ms (RFC 3339, UTC, with
 * milliseconds: "2024-01-31T12:34:56.789Z"). */
void index_part_set_deleted_at(IndexPart *part, int64_t unix_ms);
/* index_timestamp_format: unix time ms as the index writes timestamps ("...T12:34:56.789Z"). */
void index_timestamp_format(int64_t unix_ms, char out[INDEX_TIMESTAMP_SIZE]);

/* index_part_set_import_pgdata: replace import_pgdata with a new reference to v (NULL clears). */
void index_part_set_import_pgdata(IndexPart *part, json_t *v);

#endif
