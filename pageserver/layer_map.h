/*
 * layer_map.h: the layers of one timeline as the read path and the upload queue see them.
 *
 * A Layer is one immutable layer file known to a timeline: its name and description, where it
 * lives in remote storage (under the shard and generation that wrote it) and locally
 * (<timeline dir>/<name>-<gen>), and, once a read needed it, an open LayerReader. Layers are
 * reference counted (atomically) because worker threads read them while the loop thread may drop
 * them from a timeline: a job takes references on the loop thread, the last unref frees.
 *
 * The fields set at creation never change (safe on any thread). `resident` and `reader` are
 * guarded by the layer's mutex: the first reader that finds the file missing downloads it (so
 * concurrent readers of one layer wait for one download), then opens and caches the reader.
 *
 * The lookup functions are pure and run on any thread over an array of layers.
 */
#ifndef PAGESERVER_LAYER_MAP_H
#define PAGESERVER_LAYER_MAP_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/key.h"
#include "shared/remote_storage.h"

#include "pageserver/index_part.h"
#include "pageserver/layer.h"
#include "pageserver/remote_layout.h"

/* How many times one layer's local copy may be evicted and downloaded again after a failed
 * local read (checksum mismatch or other damage) over the layer object's life. */
#define LAYER_REFETCH_MAX 3

typedef struct Layer {
    atomic_int refs;
    char name[LAYER_NAME_SIZE]; /* without generation suffix */
    LayerDesc desc;
    uint64_t file_size;
    Generation generation; /* of the writer */
    ShardIndex shard;      /* the writing shard (its prefix holds the object) */
    char local_path[PATH_MAX];
    char remote_key[REMOTE_KEY_SIZE];
    atomic_llong access_time_s; /* unix seconds of the last read (creation until then): heatmaps */

    pthread_mutex_t mu;
    bool resident;       /* under mu: the local file exists with file_size bytes */
    LayerReader *reader; /* under mu: opened lazily */
    LayerReader *retired[LAYER_REFETCH_MAX]; /* under mu: readers of evicted copies, which
                                              * concurrent reads may still use (freed last) */
    int refetches;                           /* under mu: local copies evicted as damaged */
} Layer;

/* layer_obj_new: a layer from its index entry; timeline_dir is the local directory of the reading
 * timeline (the file is <timeline_dir>/<name><-gen>). resident says whether the caller knows the
 * local file to be complete. One reference; 400 for a malformed name. */
bool layer_obj_new(const IndexLayer *meta, const TenantId *tenant, const TimelineId *tl,
                   const char *timeline_dir, bool resident, Layer **out, Err *err) MUST_CHECK;
Layer *layer_obj_ref(Layer *l);
/* layer_obj_is_resident: the local file is complete (takes the layer's mutex; any thread). */
bool layer_obj_is_resident(Layer *l);
void layer_obj_unref(Layer *l); /* NULL is fine */

/* layer_obj_local_name: "<name><-gen>", the local file name (and the last segment of the
 * remote key). */
void layer_obj_local_name(const char *name, Generation gen, char *out, size_t cap);

/* layer_obj_to_index: the index entry of the layer. */
IndexLayer layer_obj_to_index(const Layer *l);

/* layer_obj_get: the value of key at the layer's LSN (worker thread). Downloads the layer from
 * rs first when it is not resident (counting *downloaded bytes, may be NULL). Absent key ->
 * *found false. A local read that fails (checksum mismatch, damaged file) evicts the local copy
 * and downloads the intact remote one again, then retries once (at most LAYER_REFETCH_MAX
 * evictions per layer; *refetched counts them, may be NULL). Corruption that remains ->
 * ERR_INTERNAL with the reader's checksum message. pc: the page cache the value goes through
 * (layer_reader_get_cached; NULL: none); a reader of a re-downloaded copy is a new reader, so
 * nothing cached from the evicted copy is returned. */
bool layer_obj_get(Layer *l, RemoteStorage *rs, struct PageCache *pc, const Key *key, void **value,
                   size_t *len, bool *found, uint64_t *downloaded, uint64_t *refetched,
                   Err *err) MUST_CHECK;

/* layer_obj_get_in_memory: layer_obj_get from memory only (layer_reader_get_in_memory): when
 * the layer's reader is not open yet, or the lookup needs an index block or a value that is not in
 * memory, *in_memory is false and nothing else is returned. Never downloads, reads a file or
 * decompresses: safe on the loop thread (it takes the layer's mutex only to fetch the reader). */
bool layer_obj_get_in_memory(Layer *l, struct PageCache *pc, const Key *key, void **value,
                             size_t *len, bool *found, bool *in_memory, Err *err) MUST_CHECK;

/* layer_map_find_image: among layers[0..n), the image layer holding key with the highest LSN
 * <= lsn; NULL when none. Ties (same LSN, overlapping ranges) pick the first in the array. */
Layer *layer_map_find_image(Layer *const *layers, size_t n, const Key *key, Lsn lsn);

#endif
