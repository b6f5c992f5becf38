/*
 * index_part.c: reading and writing index_part.json, and the sorted layer array (see
 * index_part.h).
 *
 * The top level and "metadata" are decoded with json.h tables whose unknown-key policy is
 * "ignore and log" (forward compatibility). Layer entries are read with json_get, key by key,
 * because an index holds thousands of them: a table with the logging policy would log the same
 * unknown key once per layer. LSN fields are decoded as strings because the index spells "no LSN"
 * as "0/0", which the wire-level LSN parser (rightly) rejects.
 */
#include "pageserver/index_part.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/json.h"
#include "shared/str.h"

typedef struct MetadataWire {
    char disk_consistent_lsn[LSN_STR_SIZE];
    JsonPresence disk_consistent_lsn_p;
    char prev_record_lsn[LSN_STR_SIZE];
    JsonPresence prev_record_lsn_p;
    TimelineId ancestor_timeline;
    JsonPresence ancestor_timeline_p;
    char ancestor_lsn[LSN_STR_SIZE];
    JsonPresence ancestor_lsn_p;
    char latest_gc_cutoff_lsn[LSN_STR_SIZE];
    JsonPresence latest_gc_cutoff_lsn_p;
    char initdb_lsn[LSN_STR_SIZE];
    JsonPresence initdb_lsn_p;
    uint32_t pg_version;
} MetadataWire;

typedef struct IndexPartWire {
    uint32_t version;
    json_t *layer_metadata; /* borrowed */
    char disk_consistent_lsn[LSN_STR_SIZE];
    JsonPresence disk_consistent_lsn_p;
    MetadataWire metadata;
    char deleted_at[INDEX_TIMESTAMP_SIZE];
    JsonPresence deleted_at_p;
    json_t *import_pgdata; /* borrowed; NULL when absent or null */
} IndexPartWire;

#define LSN_ROW(T, m, name, flags)                                                                 \
    JSON_FIELD_P(T, m, m##_p, name, JSON_FIELD_STRING, JSON_NULLABLE | (flags))

static const JsonField METADATA_FIELDS[] = {
    LSN_ROW(MetadataWire, disk_consistent_lsn, "disk_consistent_lsn", JSON_REQUIRED),
    LSN_ROW(MetadataWire, prev_record_lsn, "prev_record_lsn", 0),
    JSON_FIELD_P(MetadataWire, ancestor_timeline, ancestor_timeline_p, "ancestor_timeline",
                 JSON_FIELD_TIMELINE_ID, JSON_NULLABLE),
    LSN_ROW(MetadataWire, ancestor_lsn, "ancestor_lsn", 0),
    LSN_ROW(MetadataWire, latest_gc_cutoff_lsn, "latest_gc_cutoff_lsn", 0),
    LSN_ROW(MetadataWire, initdb_lsn, "initdb_lsn", 0),
    JSON_FIELD(MetadataWire, pg_version, "pg_version", JSON_FIELD_U32, JSON_REQUIRED),
};
static const JsonSpec METADATA_SPEC =
    JSON_SPEC("index_part metadata", METADATA_FIELDS, JSON_UNKNOWN_IGNORE_LOG);

static const JsonField INDEX_FIELDS[] = {
    JSON_FIELD(IndexPartWire, version, "version", JSON_FIELD_U32, JSON_REQUIRED),
    JSON_FIELD(IndexPartWire, layer_metadata, "layer_metadata", JSON_FIELD_OBJECT, JSON_REQUIRED),
    LSN_ROW(IndexPartWire, disk_consistent_lsn, "disk_consistent_lsn", JSON_REQUIRED),
    JSON_NESTED(IndexPartWire, metadata, "metadata", &METADATA_SPEC, JSON_REQUIRED),
    JSON_FIELD_P(IndexPartWire, deleted_at, deleted_at_p, "deleted_at", JSON_FIELD_STRING,
                 JSON_NULLABLE),
    JSON_FIELD(IndexPartWire, import_pgdata, "import_pgdata", JSON_FIELD_OBJECT, JSON_NULLABLE),
};
static const JsonSpec INDEX_SPEC = JSON_SPEC("index_part", INDEX_FIELDS, JSON_UNKNOWN_IGNORE_LOG);

/* ---- LSNs and timestamps ---- */

/* lsn_from_text: a decoded LSN string; absent, null and "0/0" are LSN_INVALID. */
static bool lsn_from_text(const char *name, const char *s, JsonPresence p, Lsn *out, Err *err)
{
    if (p != JSON_PRESENCE_SET || strcmp(s, "0/0") == 0) {
        *out = LSN_INVALID;
        return true;
    }
    if (!lsn_parse(s, out, err)) {
        err_prefix(err, "field \"%s\": ", name);
        return false;
    }
    return true;
}

/* lsn_zero_json: "X/X", with LSN_INVALID written "0/0" (the index's spelling of "none"). */
static json_t *lsn_zero_json(Lsn lsn)
{
    if (lsn == LSN_INVALID)
        return json_must(json_string("0/0"));
    return json_from_lsn(lsn);
}

/* digits: n decimal digits at s, their value in *v. */
static bool digits(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

/* timestamp_check: RFC 3339 date-time "YYYY-MM-DDTHH:MM:SS[.frac][Z|+hh:mm|-hh:mm]". The offset
 * is optional because Neon writes deleted_at as a naive UTC time without one. */
static bool timestamp_check(const char *s, Err *err)
{
    int y, mo, d, h, mi, sec, oh, om;
    const char *p = s;
    bool ok = digits(p, 4, &y) && p[4] == '-' && digits(p + 5, 2, &mo) && p[7] == '-' &&
              digits(p + 8, 2, &d) && (p[10] == 'T' || p[10] == 't') && digits(p + 11, 2, &h) &&
              p[13] == ':' && digits(p + 14, 2, &mi) && p[16] == ':' && digits(p + 17, 2, &sec);
    ok = ok && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && sec <= 60;
    if (ok) {
        p += 19;
        if (*p == '.') {
            size_t n = strspn(p + 1, "0123456789");
            ok = n >= 1 && n <= 9;
            p += 1 + n;
        }
    }
    if (ok && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (ok && (*p == '+' || *p == '-')) {
        ok = digits(p + 1, 2, &oh) && p[3] == ':' && digits(p + 4, 2, &om) && oh <= 23 && om <= 59;
        p += 6;
    }
    if (!ok || *p != '\0') {
        err_set(err, ERR_BAD_REQUEST,
                "field \"deleted_at\": invalid timestamp \"%.48s\" (expected RFC 3339)", s);
        return false;
    }
    return true;
}

/* ---- the layer array ---- */

static int layer_cmp(const void *a, const void *b)
{
    return strcmp(((const IndexLayer *)a)->name, ((const IndexLayer *)b)->name);
}

/* layer_search: the index of name in the sorted array, or where it would be inserted. */
static size_t layer_search(const IndexPart *part, const char *name, bool *found)
{
    size_t lo = 0, hi = part->n_layers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(part->layers[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void layers_reserve(IndexPart *part, size_t n)
{
    if (n <= part->cap_layers)
        return;
    size_t cap = part->cap_layers ? part->cap_layers : 16;
    while (cap < n)
        cap *= 2;
    part->layers = xrealloc(part->layers, cap * sizeof(IndexLayer));
    part->cap_layers = cap;
}

bool index_part_layer_name_check(const char *name, Err *err)
{
    size_t len = strlen(name);
    if (len == 0 || len >= INDEX_LAYER_NAME_SIZE) {
        err_set(err, ERR_BAD_REQUEST, "invalid layer name \"%.64s\": length %zu not in [1, %d]",
                name, len, INDEX_LAYER_NAME_SIZE - 1);
        return false;
    }
    if (strspn(name, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.-") != len ||
        strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        err_set(err, ERR_BAD_REQUEST,
                "invalid layer name \"%.64s\": only letters, digits, '_', '.' and '-' allowed",
                name);
        return false;
    }
    return true;
}

bool index_part_add_layer(IndexPart *part, const IndexLayer *layer, Err *err)
{
    if (!index_part_layer_name_check(layer->name, err))
        return false;
    if (layer->file_size > (uint64_t)INT64_MAX) {
        err_set(err, ERR_BAD_REQUEST, "layer \"%s\": file_size too large", layer->name);
        return false;
    }
    bool found = false;
    size_t i = layer_search(part, layer->name, &found);
    if (found) {
        part->layers[i] = *layer;
        return true;
    }
    layers_reserve(part, part->n_layers + 1);
    memmove(&part->layers[i + 1], &part->layers[i], (part->n_layers - i) * sizeof(IndexLayer));
    part->layers[i] = *layer;
    part->n_layers++;
    return true;
}

bool index_part_remove_layer(IndexPart *part, const char *name)
{
    bool found = false;
    size_t i = layer_search(part, name, &found);
    if (!found)
        return false;
    memmove(&part->layers[i], &part->layers[i + 1], (part->n_layers - i - 1) * sizeof(IndexLayer));
    part->n_layers--;
    return true;
}

const IndexLayer *index_part_find_layer(const IndexPart *part, const char *name)
{
    bool found = false;
    size_t i = layer_search(part, name, &found);
    return found ? &part->layers[i] : NULL;
}

/* ---- lifecycle ---- */

IndexPart *index_part_new(void)
{
    IndexPart *part = xcalloc(1, sizeof(*part));
    part->version = INDEX_PART_VERSION;
    return part;
}

void index_part_free(IndexPart *part)
{
    if (part == NULL)
        return;
    free(part->layers);
    json_decref(part->import_pgdata);
    free(part);
}

IndexPart *index_part_clone(const IndexPart *part)
{
    IndexPart *c = xmalloc(sizeof(*c));
    *c = *part;
    c->layers = NULL;
    c->cap_layers = 0;
    if (part->n_layers > 0) {
        layers_reserve(c, part->n_layers);
        memcpy(c->layers, part->layers, part->n_layers * sizeof(IndexLayer));
    }
    json_incref(c->import_pgdata);
    return c;
}

void index_timestamp_format(int64_t unix_ms, char out[INDEX_TIMESTAMP_SIZE])
{
    time_t secs = (time_t)(unix_ms / 1000);
    int ms = (int)(unix_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    struct tm tm;
    char date[32];
    if (gmtime_r(&secs, &tm) == NULL || strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        str_copy(date, sizeof(date), "1970-01-01T00:00:00");
    snprintf(out, INDEX_TIMESTAMP_SIZE, "%s.%03dZ", date, ms);
}

void index_part_set_deleted_at(IndexPart *part, int64_t unix_ms)
{
    index_timestamp_format(unix_ms, part->deleted_at);
    part->has_deleted_at = true;
}

void index_part_set_import_pgdata(IndexPart *part, json_t *v)
{
    json_t *old = part->import_pgdata;
    part->import_pgdata = json_incref(v);
    json_decref(old);
}

/* ---- reading ---- */

/* index_layer_from_json: one entry of layer_metadata. Keys other than the three known ones are
 * ignored silently (see the file comment). */
bool index_layer_from_json(const char *name, const json_t *v, IndexLayer *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (!index_part_layer_name_check(name, err))
        return false;
    str_copy(out->name, sizeof(out->name), name);
    out->generation = GENERATION_NONE;
    out->shard = (ShardIndex){0, 0};
    if (!json_is_object(v)) {
        err_set(err, ERR_BAD_REQUEST, "expected an object");
        return false;
    }
    return json_get(v, "file_size", JSON_FIELD_U64, JSON_REQUIRED, &out->file_size,
                    sizeof(out->file_size), NULL, err) &&
           json_get(v, "generation", JSON_FIELD_GENERATION, JSON_NULLABLE, &out->generation,
                    sizeof(out->generation), NULL, err) &&
           json_get(v, "shard", JSON_FIELD_SHARD_INDEX, JSON_NULLABLE, &out->shard,
                    sizeof(out->shard), NULL, err);
}

/* read_layers: every entry, then one sort (the object's order is whatever the writer chose). */
static bool read_layers(const json_t *obj, IndexPart *part, Err *err)
{
    size_t n = json_object_size(obj);
    layers_reserve(part, n);
    const char *name = NULL;
    json_t *v = NULL;
    json_object_foreach((json_t *)obj, name, v)
    {
        if (!index_layer_from_json(name, v, &part->layers[part->n_layers], err)) {
            err_prefix(err, "layer_metadata: \"%.64s\": ", name);
            return false;
        }
        part->n_layers++;
    }
    if (part->n_layers > 1)
        qsort(part->layers, part->n_layers, sizeof(IndexLayer), layer_cmp);
    return true;
}

static bool read_metadata(const MetadataWire *w, IndexMetadata *m, Err *err)
{
    bool ok =
        lsn_from_text("disk_consistent_lsn", w->disk_consistent_lsn, w->disk_consistent_lsn_p,
                      &m->disk_consistent_lsn, err) &&
        lsn_from_text("prev_record_lsn", w->prev_record_lsn, w->prev_record_lsn_p,
                      &m->prev_record_lsn, err) &&
        lsn_from_text("ancestor_lsn", w->ancestor_lsn, w->ancestor_lsn_p, &m->ancestor_lsn, err) &&
        lsn_from_text("latest_gc_cutoff_lsn", w->latest_gc_cutoff_lsn, w->latest_gc_cutoff_lsn_p,
                      &m->latest_gc_cutoff_lsn, err) &&
        lsn_from_text("initdb_lsn", w->initdb_lsn, w->initdb_lsn_p, &m->initdb_lsn, err);
    if (!ok) {
        err_prefix(err, "metadata: ");
        return false;
    }
    m->has_ancestor = w->ancestor_timeline_p == JSON_PRESENCE_SET;
    if (m->has_ancestor)
        m->ancestor_timeline = w->ancestor_timeline;
    m->pg_version = w->pg_version;
    return true;
}

bool index_part_from_json(const json_t *obj, IndexPart **out, Err *err)
{
    IndexPartWire w;
    memset(&w, 0, sizeof(w));
    if (!json_decode(obj, &INDEX_SPEC, &w, err))
        return false;
    IndexPart *part = index_part_new();
    part->version = w.version;
    bool ok = lsn_from_text("disk_consistent_lsn", w.disk_consistent_lsn, w.disk_consistent_lsn_p,
                            &part->disk_consistent_lsn, err) &&
              read_metadata(&w.metadata, &part->metadata, err) &&
              read_layers(w.layer_metadata, part, err);
    if (ok && w.deleted_at_p == JSON_PRESENCE_SET) {
        ok = timestamp_check(w.deleted_at, err);
        part->has_deleted_at = ok;
        str_copy(part->deleted_at, sizeof(part->deleted_at), w.deleted_at);
    }
    if (!ok) {
        index_part_free(part);
        return false;
    }
    part->import_pgdata = json_incref(w.import_pgdata);
    *out = part;
    return true;
}

bool index_part_parse(const char *text, size_t len, IndexPart **out, Err *err)
{
    json_t *root = NULL;
    if (!json_parse_text(text, len, &root, err)) {
        err_prefix(err, "index_part: ");
        return false;
    }
    bool ok = index_part_from_json(root, out, err);
    json_decref(root);
    if (!ok)
        err_prefix(err, "index_part: ");
    return ok;
}

/* ---- writing ---- */

json_t *index_layer_to_json(const IndexLayer *l)
{
    json_t *o = json_must(json_object());
    json_set_new(o, "file_size", json_must(json_integer((json_int_t)l->file_size)));
    if (!generation_is_none(l->generation))
        json_set_new(o, "generation", json_from_generation(l->generation));
    json_set_new(o, "shard", json_from_shard_index(l->shard));
    return o;
}

static json_t *metadata_to_json(const IndexMetadata *m)
{
    json_t *o = json_must(json_object());
    json_set_new(o, "disk_consistent_lsn", lsn_zero_json(m->disk_consistent_lsn));
    json_set_new(o, "prev_record_lsn", json_from_lsn(m->prev_record_lsn)); /* invalid -> null */
    json_set_new(o, "ancestor_timeline",
                 m->has_ancestor ? json_from_timeline_id(&m->ancestor_timeline)
                                 : json_must(json_null()));
    json_set_new(o, "ancestor_lsn", lsn_zero_json(m->ancestor_lsn));
    json_set_new(o, "latest_gc_cutoff_lsn", lsn_zero_json(m->latest_gc_cutoff_lsn));
    json_set_new(o, "initdb_lsn", lsn_zero_json(m->initdb_lsn));
    json_set_new(o, "pg_version", json_must(json_integer((json_int_t)m->pg_version)));
    return o;
}

json_t *index_part_to_json(const IndexPart *part)
{
    json_t *o = json_must(json_object());
    json_set_new(o, "version", json_must(json_integer((json_int_t)part->version)));
    json_t *layers = json_must(json_object());
    for (size_t i = 0; i < part->n_layers; i++)
        json_set_new(layers, part->layers[i].name, index_layer_to_json(&part->layers[i]));
    json_set_new(o, "layer_metadata", layers);
    json_set_new(o, "disk_consistent_lsn", lsn_zero_json(part->disk_consistent_lsn));
    json_set_new(o, "metadata", metadata_to_json(&part->metadata));
    if (part->has_deleted_at)
        json_set_new(o, "deleted_at", json_must(json_string(part->deleted_at)));
    if (part->import_pgdata != NULL)
        json_set_new(o, "import_pgdata", json_incref(part->import_pgdata));
    return o;
}

char *index_part_serialize(const IndexPart *part)
{
    json_t *o = index_part_to_json(part);
    char *s = json_dumps_compact(o);
    json_decref(o);
    return s;
}
