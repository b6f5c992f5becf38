/*
 * remote_layout.c: remote object keys and index selection (see remote_layout.h).
 *
 * Keys are built from fixed-size identifiers, so apart from the layer name nothing can overflow
 * REMOTE_KEY_SIZE; the one variable part (the layer name) is checked before formatting.
 */
#include "pageserver/remote_layout.h"

#include <stdio.h>
#include <string.h>

#include "shared/str.h"

/* Longest layer name accepted in a key: the key must fit with the longest tsid and a suffix. */
#define LAYER_NAME_MAX 255

/* last_segment: what follows the last '/' of key (key itself when there is none). */
static const char *last_segment(const char *key)
{
    const char *slash = strrchr(key, '/');
    return slash ? slash + 1 : key;
}

void remote_layout_index_key(const TenantShardId *tsid, const TimelineId *tl, Generation gen,
                             char out[REMOTE_KEY_SIZE])
{
    char t[TSID_STR_SIZE], l[ID_STR_SIZE], g[GENERATION_SUFFIX_SIZE];
    tsid_format(tsid, t);
    timeline_id_format(tl, l);
    generation_suffix(gen, g);
    snprintf(out, REMOTE_KEY_SIZE, "tenants/%s/timelines/%s/" REMOTE_LAYOUT_INDEX_NAME "%s", t, l,
             g);
}

/* remote_layout_layer_key: the prefix is the writer's, formatted exactly like a tsid of that
 * shard, so a child after a split reads its parent's objects without copying them. */
bool remote_layout_layer_key(const TenantId *tenant, ShardIndex writer, const TimelineId *tl,
                             const char *layer_name, Generation gen, char out[REMOTE_KEY_SIZE],
                             Err *err)
{
    size_t len = strlen(layer_name);
    if (len == 0 || len > LAYER_NAME_MAX || strchr(layer_name, '/') != NULL ||
        strcmp(layer_name, ".") == 0 || strcmp(layer_name, "..") == 0) {
        err_set(err, ERR_BAD_REQUEST, "invalid layer name \"%.64s\" for a remote key", layer_name);
        return false;
    }
    TenantShardId owner = {*tenant, writer.number, writer.count};
    char t[TSID_STR_SIZE], l[ID_STR_SIZE], g[GENERATION_SUFFIX_SIZE];
    tsid_format(&owner, t);
    timeline_id_format(tl, l);
    generation_suffix(gen, g);
    if (!str_printf(out, REMOTE_KEY_SIZE, "tenants/%s/timelines/%s/%s%s", t, l, layer_name, g)) {
        err_set(err, ERR_BAD_REQUEST, "layer key too long");
        return false;
    }
    return true;
}

void remote_layout_manifest_key(const TenantShardId *tsid, Generation gen,
                                char out[REMOTE_KEY_SIZE])
{
    char t[TSID_STR_SIZE], g[GENERATION_SUFFIX_SIZE];
    tsid_format(tsid, t);
    generation_suffix(gen, g);
    snprintf(out, REMOTE_KEY_SIZE, "tenants/%s/" REMOTE_LAYOUT_MANIFEST_STEM "%s.json", t, g);
}

void remote_layout_heatmap_key(const TenantShardId *tsid, char out[REMOTE_KEY_SIZE])
{
    char t[TSID_STR_SIZE];
    tsid_format(tsid, t);
    snprintf(out, REMOTE_KEY_SIZE, "tenants/%s/" REMOTE_LAYOUT_HEATMAP_NAME, t);
}

void remote_layout_initdb_key(const TenantId *tenant, const TimelineId *tl,
                              char out[REMOTE_KEY_SIZE])
{
    char t[ID_STR_SIZE], l[ID_STR_SIZE];
    tenant_id_format(tenant, t);
    timeline_id_format(tl, l);
    snprintf(out, REMOTE_KEY_SIZE, "tenants/%s/timelines/%s/" REMOTE_LAYOUT_INITDB_NAME, t, l);
}

void remote_layout_tenant_shard_prefix(const TenantShardId *tsid, char out[REMOTE_KEY_SIZE])
{
    char t[TSID_STR_SIZE];
    tsid_format(tsid, t);
    snprintf(out, REMOTE_KEY_SIZE, "tenants/%s/", t);
}

void remote_layout_tenant_all_shards_prefix(const TenantId *tenant, char out[REMOTE_KEY_SIZE])
{
    char t[ID_STR_SIZE];
    tenant_id_format(tenant, t);
    snprintf(out, REMOTE_KEY_SIZE, "tenants/%s", t);
}

void remote_layout_timelines_prefix(const TenantShardId *tsid, char out[REMOTE_KEY_SIZE])
{
    char t[TSID_STR_SIZE];
    tsid_format(tsid, t);
    snprintf(out, REMOTE_KEY_SIZE, "tenants/%s/timelines/", t);
}

void remote_layout_timeline_prefix(const TenantShardId *tsid, const TimelineId *tl,
                                   char out[REMOTE_KEY_SIZE])
{
    char t[TSID_STR_SIZE], l[ID_STR_SIZE];
    tsid_format(tsid, t);
    timeline_id_format(tl, l);
    snprintf(out, REMOTE_KEY_SIZE, "tenants/%s/timelines/%s/", t, l);
}

void remote_layout_index_prefix(const TenantShardId *tsid, const TimelineId *tl,
                                char out[REMOTE_KEY_SIZE])
{
    char t[TSID_STR_SIZE], l[ID_STR_SIZE];
    tsid_format(tsid, t);
    timeline_id_format(tl, l);
    snprintf(out, REMOTE_KEY_SIZE, "tenants/%s/timelines/%s/" REMOTE_LAYOUT_INDEX_NAME, t, l);
}

bool remote_layout_parse_index_key(const char *key, Generation *out, Err *err)
{
    const char *seg = last_segment(key);
    const size_t stem = strlen(REMOTE_LAYOUT_INDEX_NAME);
    if (strncmp(seg, REMOTE_LAYOUT_INDEX_NAME, stem) != 0) {
        err_set(err, ERR_BAD_REQUEST, "\"%.128s\" is not an index_part.json object", key);
        return false;
    }
    if (!generation_parse_suffix(seg + stem, out, err)) {
        err_prefix(err, "index key \"%.128s\": ", key);
        return false;
    }
    return true;
}

bool remote_layout_parse_manifest_key(const char *key, Generation *out, Err *err)
{
    const char *seg = last_segment(key);
    const size_t stem = strlen(REMOTE_LAYOUT_MANIFEST_STEM);
    const size_t ext = strlen(".json");
    size_t len = strlen(seg);
    char suffix[GENERATION_SUFFIX_SIZE + 1];
    if (len < stem + ext || strncmp(seg, REMOTE_LAYOUT_MANIFEST_STEM, stem) != 0 ||
        strcmp(seg + len - ext, ".json") != 0 || len - stem - ext >= sizeof(suffix)) {
        err_set(err, ERR_BAD_REQUEST, "\"%.128s\" is not a tenant manifest object", key);
        return false;
    }
    memcpy(suffix, seg + stem, len - stem - ext);
    suffix[len - stem - ext] = '\0';
    if (!generation_parse_suffix(suffix, out, err)) {
        err_prefix(err, "manifest key \"%.128s\": ", key);
        return false;
    }
    return true;
}

void remote_layout_index_candidates(Generation g, Generation out[2], size_t *n)
{
    out[0] = g;
    *n = 1;
    if (!generation_is_none(g)) {
        out[1] = g - 1; /* 0 - 1 is GENERATION_NONE: the legacy index */
        *n = 2;
    }
}

/* remote_layout_pick_index_generation: "g, then g-1, else the highest <= g" is the highest
 * available generation <= g (g and g-1 are the two highest candidates), so one pass suffices;
 * the candidates exist so that a caller can GET them before paying for a listing. */
void remote_layout_pick_index_generation(const Generation *available, size_t n, Generation g,
                                         Generation *picked, bool *found)
{
    bool have = false;
    Generation best = GENERATION_NONE;
    for (size_t i = 0; i < n; i++) {
        Generation a = available[i];
        if (a < GENERATION_NONE || a > GENERATION_MAX || a > g)
            continue;
        if (!have || a > best) {
            best = a;
            have = true;
        }
    }
    *found = have;
    if (have)
        *picked = best;
}
