/* layer_map.c: reference-counted layers with lazy download and reader caching, and lookups. */
#include "pageserver/layer_map.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shared/log.h"
#include "shared/str.h"

void layer_obj_local_name(const char *name, Generation gen, char *out, size_t cap)
{
    char suffix[GENERATION_SUFFIX_SIZE];
    generation_suffix(gen, suffix);
    str_printf(out, cap, "%s%s", name, suffix); /* name < LAYER_NAME_SIZE: fits any sane cap */
}

bool layer_obj_new(const IndexLayer *meta, const TenantId *tenant, const TimelineId *tl,
                   const char *timeline_dir, bool resident, Layer **out, Err *err)
{
    LayerDesc desc;
    if (!layer_name_parse(meta->name, &desc, err)) {
        err_prefix(err, "layer %s: ", meta->name);
        return false;
    }
    Layer *l = xcalloc(1, sizeof(*l));
    atomic_init(&l->refs, 1);
    str_copy(l->name, sizeof(l->name), meta->name);
    l->desc = desc;
    l->file_size = meta->file_size;
    l->generation = meta->generation;
    l->shard = meta->shard;
    char local_name[LAYER_NAME_SIZE + GENERATION_SUFFIX_SIZE];
    layer_obj_local_name(meta->name, meta->generation, local_name, sizeof(local_name));
    if (!str_printf(l->local_path, sizeof(l->local_path), "%s/%s", timeline_dir, local_name) ||
        !remote_layout_layer_key(tenant, meta->shard, tl, meta->name, meta->generation,
                                 l->remote_key, err)) {
        if (!err_is_set(err))
            err_set(err, ERR_INTERNAL, "layer path too long under %s", timeline_dir);
        free(l);
        return false;
    }
    pthread_mutex_init(&l->mu, NULL);
    l->resident = resident;
    atomic_init(&l->access_time_s, (long long)time(NULL));
    *out = l;
    return true;
}

bool layer_obj_is_resident(Layer *l)
{
    pthread_mutex_lock(&l->mu);
    bool resident = l->resident;
    pthread_mutex_unlock(&l->mu);
    return resident;
}

Layer *layer_obj_ref(Layer *l)
{
    atomic_fetch_add(&l->refs, 1);
    return l;
}

void layer_obj_unref(Layer *l)
{
    if (l == NULL || atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    if (l->reader != NULL)
        layer_reader_free(l->reader);
    for (int i = 0; i < l->refetches; i++)
        layer_reader_free(l->retired[i]);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

IndexLayer layer_obj_to_index(const Layer *l)
{
    IndexLayer e;
    memset(&e, 0, sizeof(e));
    str_copy(e.name, sizeof(e.name), l->name);
    e.file_size = l->file_size;
    e.generation = l->generation;
    e.shard = l->shard;
    return e;
}

/* ensure_resident: called with mu held. A file of the wrong size (a crash mid-download cannot
 * leave one, since downloads rename into place, but an operator could) is downloaded again. */
static bool ensure_resident(Layer *l, RemoteStorage *rs, uint64_t *downloaded, Err *err)
{
    if (l->resident)
        return true;
    struct stat st;
    if (stat(l->local_path, &st) == 0 && (uint64_t)st.st_size == l->file_size) {
        l->resident = true;
        return true;
    }
    if (!remote_get_to_file(rs, l->remote_key, l->local_path, err)) {
        err_prefix(err, "downloading layer %s: ", l->remote_key);
        return false;
    }
    if (stat(l->local_path, &st) != 0 || (uint64_t)st.st_size != l->file_size) {
        err_set(err, ERR_INTERNAL, "layer %s: downloaded %lld bytes, the index says %llu",
                l->remote_key, (long long)st.st_size, (unsigned long long)l->file_size);
        return false;
    }
    if (downloaded != NULL)
        *downloaded += l->file_size;
    log_debug("downloaded layer %s (%llu bytes)", l->remote_key, (unsigned long long)l->file_size);
    l->resident = true;
    return true;
}

/* open_reader: the layer's reader, downloading the file first when needed; under mu. */
static bool open_reader(Layer *l, RemoteStorage *rs, uint64_t *downloaded, Err *err)
{
    bool ok = ensure_resident(l, rs, downloaded, err);
    if (ok && l->reader == NULL)
        ok = layer_reader_open_file(l->local_path, &l->reader, err);
    return ok;
}

/* evict_damaged: drop the local copy whose reader was bad (unless another read already did) so
 * that the next open_reader downloads it again; false without remote storage or when the
 * eviction budget is spent. Under mu. */
static bool evict_damaged(Layer *l, RemoteStorage *rs, const LayerReader *bad, const Err *why)
{
    if (bad != NULL && l->reader != bad)
        return true; /* already replaced by a concurrent read */
    if (rs == NULL || l->refetches >= LAYER_REFETCH_MAX)
        return false;
    log_warn("layer %s: local read failed (%s); evicting the local copy and downloading it again",
             l->local_path, why->msg);
    if (l->reader != NULL)
        l->retired[l->refetches] = l->reader; /* concurrent reads may still hold it */
    l->refetches++;
    l->reader = NULL;
    l->resident = false;
    unlink(l->local_path);
    return true;
}

bool layer_obj_get(Layer *l, RemoteStorage *rs, struct PageCache *pc, const Key *key, void **value,
                   size_t *len, bool *found, uint64_t *downloaded, uint64_t *refetched, Err *err)
{
    atomic_store(&l->access_time_s, (long long)time(NULL));
    for (int attempt = 0;; attempt++) {
        pthread_mutex_lock(&l->mu);
        bool was_resident = l->resident;
        bool ok = open_reader(l, rs, downloaded, err);
        LayerReader *r = l->reader;
        if (!ok && was_resident && attempt == 0 && evict_damaged(l, rs, NULL, err)) {
            /* the local copy cannot even be opened: fetch it again */
            if (refetched != NULL)
                (*refetched)++;
            err_clear(err);
            pthread_mutex_unlock(&l->mu);
            continue;
        }
        pthread_mutex_unlock(&l->mu);
        if (!ok)
            return false;
        /* The reader is immutable and thread-safe, and it lives until the last unref. */
        if (layer_reader_get_cached(r, pc, key, value, len, found, err))
            return true;
        if (attempt > 0)
            return false;
        pthread_mutex_lock(&l->mu);
        bool again = evict_damaged(l, rs, r, err);
        pthread_mutex_unlock(&l->mu);
        if (!again)
            return false;
        if (refetched != NULL)
            (*refetched)++;
        err_clear(err);
    }
}

bool layer_obj_get_in_memory(Layer *l, struct PageCache *pc, const Key *key, void **value,
                             size_t *len, bool *found, bool *in_memory, Err *err)
{
    *value = NULL;
    *len = 0;
    *found = false;
    *in_memory = false;
    if (pc == NULL)
        return true;
    pthread_mutex_lock(&l->mu);
    LayerReader *r = l->resident ? l->reader : NULL;
    pthread_mutex_unlock(&l->mu);
    if (r == NULL)
        return true;
    atomic_store(&l->access_time_s, (long long)time(NULL));
    /* the reader lives until the last unref, even when a concurrent read retires it */
    return layer_reader_get_in_memory(r, pc, key, value, len, found, in_memory, err);
}

Layer *layer_map_find_image(Layer *const *layers, size_t n, const Key *key, Lsn lsn)
{
    Layer *best = NULL;
    for (size_t i = 0; i < n; i++) {
        Layer *l = layers[i];
        if (l->desc.kind != LAYER_KIND_IMAGE || l->desc.lsn_range.start > lsn)
            continue;
        if (!key_range_contains(&l->desc.key_range, key))
            continue;
        if (best == NULL || l->desc.lsn_range.start > best->desc.lsn_range.start)
            best = l;
    }
    return best;
}
