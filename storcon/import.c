/*
 * import.c: timeline import's wire shapes and decisions on the storage controller (import.h).
 */
#include "storcon/import.h"

#include <stdlib.h>
#include <string.h>

#include "shared/json.h"
#include "shared/str.h"

static const char *const KIND_NAMES[IMPORT_STATUS_KIND_COUNT] = {
    [IMPORT_STATUS_IN_PROGRESS] = "InProgress",
    [IMPORT_STATUS_DONE] = "Done",
    [IMPORT_STATUS_ERROR] = "Error",
};

const char *import_status_kind_name(ImportStatusKind kind)
{
    return (unsigned)kind < IMPORT_STATUS_KIND_COUNT ? KIND_NAMES[kind] : "?";
}

bool import_status_terminal(ImportStatusKind kind)
{
    return kind == IMPORT_STATUS_DONE || kind == IMPORT_STATUS_ERROR;
}

typedef struct ProgressV1 {
    uint64_t jobs, completed, import_plan_hash, job_soft_size_limit;
} ProgressV1;

static const JsonField PROGRESS_FIELDS[] = {
    JSON_FIELD(ProgressV1, jobs, "jobs", JSON_FIELD_U64, JSON_REQUIRED),
    JSON_FIELD(ProgressV1, completed, "completed", JSON_FIELD_U64, JSON_REQUIRED),
    JSON_FIELD(ProgressV1, import_plan_hash, "import_plan_hash", JSON_FIELD_U64, JSON_REQUIRED),
    JSON_FIELD(ProgressV1, job_soft_size_limit, "job_soft_size_limit", JSON_FIELD_U64,
               JSON_REQUIRED),
};
static const JsonSpec PROGRESS_SPEC =
    JSON_SPEC("import progress V1", PROGRESS_FIELDS, JSON_UNKNOWN_REJECT);

/* decode_progress: null, or {"V1": {...}} (ShardImportProgress has one version today). */
static bool decode_progress(const json_t *v, ImportStatus *out, Err *err)
{
    if (json_is_null(v))
        return true;
    if (!json_is_object(v) || json_object_size(v) != 1 || json_object_get(v, "V1") == NULL) {
        err_set(err, ERR_BAD_REQUEST, "status: InProgress must be null or {\"V1\": {...}}");
        return false;
    }
    const json_t *v1 = json_object_get(v, "V1");
    if (!json_is_object(v1)) {
        err_set(err, ERR_BAD_REQUEST, "status: InProgress.V1 must be an object");
        return false;
    }
    ProgressV1 p = {0};
    if (!json_decode(v1, &PROGRESS_SPEC, &p, err)) {
        err_prefix(err, "status: InProgress.V1: ");
        return false;
    }
    if (p.completed > p.jobs) {
        err_set(err, ERR_BAD_REQUEST, "status: InProgress.V1: completed %llu is above jobs %llu",
                (unsigned long long)p.completed, (unsigned long long)p.jobs);
        return false;
    }
    out->has_progress = true;
    out->jobs = p.jobs;
    out->completed = p.completed;
    out->import_plan_hash = p.import_plan_hash;
    out->job_soft_size_limit = p.job_soft_size_limit;
    return true;
}

bool import_status_decode(const json_t *v, ImportStatus *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "Done") == 0) {
            out->kind = IMPORT_STATUS_DONE;
            return true;
        }
        err_set(err, ERR_BAD_REQUEST, "status: unknown variant \"%.64s\"", json_string_value(v));
        return false;
    }
    if (!json_is_object(v) || json_object_size(v) != 1) {
        err_set(err, ERR_BAD_REQUEST,
                "status: expected \"Done\", {\"InProgress\": ...} or {\"Error\": \"...\"}");
        return false;
    }
    const char *key = json_object_iter_key(json_object_iter((json_t *)v));
    const json_t *val = json_object_get(v, key);
    if (strcmp(key, "InProgress") == 0) {
        out->kind = IMPORT_STATUS_IN_PROGRESS;
        return decode_progress(val, out, err);
    }
    if (strcmp(key, "Error") == 0) {
        if (!json_is_string(val)) {
            err_set(err, ERR_BAD_REQUEST, "status: Error must be a string");
            return false;
        }
        out->kind = IMPORT_STATUS_ERROR;
        out->error = json_string_value(val);
        return true;
    }
    err_set(err, ERR_BAD_REQUEST, "status: unknown variant \"%.64s\"", key);
    return false;
}

char *import_statuses_initial(ShardCount count)
{
    unsigned n = count == 0 ? 1u : count;
    json_t *o = json_must(json_object());
    for (unsigned i = 0; i < n; i++) {
        ShardIndex idx = {.number = (ShardNumber)i, .count = count};
        char key[SHARD_INDEX_STR_SIZE];
        shard_index_format(idx, key);
        json_t *st = json_must(json_object());
        json_set_new(st, "InProgress", json_null());
        json_set_new(o, key, st);
    }
    char *text = json_dumps_compact(o);
    json_decref(o);
    return text;
}

/* ---- the create request ---- */

typedef struct PgdataWire {
    char idempotency_key[IMPORT_IDEMPOTENCY_KEY_SIZE];
    json_t *location; /* borrowed */
} PgdataWire;

static const JsonField PGDATA_FIELDS[] = {
    JSON_FIELD(PgdataWire, idempotency_key, "idempotency_key", JSON_FIELD_STRING, JSON_REQUIRED),
    JSON_FIELD(PgdataWire, location, "location", JSON_FIELD_OBJECT, JSON_REQUIRED),
};
static const JsonSpec PGDATA_SPEC = JSON_SPEC("import_pgdata", PGDATA_FIELDS, JSON_UNKNOWN_REJECT);

static const JsonField LOCAL_FS_FIELDS[] = {
    JSON_FIELD(ImportPgdataSpec, path, "path", JSON_FIELD_STRING, JSON_REQUIRED),
};
static const JsonSpec LOCAL_FS_SPEC = JSON_SPEC("LocalFs", LOCAL_FS_FIELDS, JSON_UNKNOWN_REJECT);

static const JsonField AWS_S3_FIELDS[] = {
    JSON_FIELD(ImportPgdataSpec, region, "region", JSON_FIELD_STRING, JSON_REQUIRED),
    JSON_FIELD(ImportPgdataSpec, bucket, "bucket", JSON_FIELD_STRING, JSON_REQUIRED),
    JSON_FIELD(ImportPgdataSpec, key, "key", JSON_FIELD_STRING, JSON_REQUIRED),
};
static const JsonSpec AWS_S3_SPEC = JSON_SPEC("AwsS3", AWS_S3_FIELDS, JSON_UNKNOWN_REJECT);

static bool pgdata_fail(Err *err, const char *what)
{
    err_set(err, ERR_BAD_REQUEST, "import_pgdata: %s", what);
    return false;
}

bool import_pgdata_decode(const json_t *v, ImportPgdataSpec *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(v))
        return pgdata_fail(err, "must be an object");
    PgdataWire w;
    memset(&w, 0, sizeof(w));
    if (!json_decode(v, &PGDATA_SPEC, &w, err)) {
        err_prefix(err, "import_pgdata: ");
        return false;
    }
    if (w.idempotency_key[0] == '\0')
        return pgdata_fail(err, "idempotency_key must not be empty");
    memcpy(out->idempotency_key, w.idempotency_key, sizeof(out->idempotency_key));
    if (json_object_size(w.location) != 1)
        return pgdata_fail(err, "location: expected {\"LocalFs\": {...}} or {\"AwsS3\": {...}}");
    const json_t *local = json_object_get(w.location, "LocalFs");
    const json_t *s3 = json_object_get(w.location, "AwsS3");
    const JsonSpec *spec = local != NULL ? &LOCAL_FS_SPEC : &AWS_S3_SPEC;
    const json_t *body = local != NULL ? local : s3;
    if (body == NULL)
        return pgdata_fail(err, "location: unknown variant (LocalFs or AwsS3)");
    if (!json_is_object(body)) {
        err_set(err, ERR_BAD_REQUEST, "import_pgdata: location: %s must be an object", spec->what);
        return false;
    }
    if (!json_decode(body, spec, out, err)) {
        err_prefix(err, "import_pgdata: location: %s: ", spec->what);
        return false;
    }
    if (local != NULL) {
        out->kind = IMPORT_LOCATION_LOCAL_FS;
        if (out->path[0] != '/')
            return pgdata_fail(err, "location: LocalFs: path must be absolute");
    } else {
        out->kind = IMPORT_LOCATION_AWS_S3;
        if (out->region[0] == '\0' || out->bucket[0] == '\0' || out->key[0] == '\0')
            return pgdata_fail(err, "location: AwsS3: region, bucket and key must not be empty");
    }
    return true;
}

json_t *import_pgdata_to_json(const ImportPgdataSpec *spec)
{
    json_t *loc = json_must(json_object());
    if (spec->kind == IMPORT_LOCATION_LOCAL_FS) {
        json_t *l = json_must(json_object());
        json_set_new(l, "path", json_must(json_string(spec->path)));
        json_set_new(loc, "LocalFs", l);
    } else {
        json_t *l = json_must(json_object());
        json_set_new(l, "region", json_must(json_string(spec->region)));
        json_set_new(l, "bucket", json_must(json_string(spec->bucket)));
        json_set_new(l, "key", json_must(json_string(spec->key)));
        json_set_new(loc, "AwsS3", l);
    }
    json_t *o = json_must(json_object());
    json_set_new(o, "idempotency_key", json_must(json_string(spec->idempotency_key)));
    json_set_new(o, "location", loc);
    return o;
}

/* parse_row: shard_statuses text as an object whose keys are shard indexes, and those keys
 * sorted (shard order). keys[] borrow from *doc. */
static bool parse_row(const char *text, json_t **doc, const char ***keys, size_t *n, Err *err)
{
    *doc = NULL;
    *keys = NULL;
    *n = 0;
    json_t *o = NULL;
    if (text == NULL || !json_parse_text(text, strlen(text), &o, err) || !json_is_object(o)) {
        json_decref(o);
        err_set(err, ERR_INTERNAL, "timeline_imports: shard_statuses is not a JSON object");
        return false;
    }
    size_t count = json_object_size(o);
    const char **k = xcalloc(count > 0 ? count : 1, sizeof(*k));
    const char *key;
    json_t *val;
    size_t i = 0;
    json_object_foreach(o, key, val)
    {
        ShardIndex idx;
        Err e;
        err_clear(&e);
        if (!shard_index_parse(key, &idx, &e)) {
            err_set(err, ERR_INTERNAL, "timeline_imports: \"%.16s\" is not a shard index", key);
            free(k);
            json_decref(o);
            return false;
        }
        k[i++] = key;
    }
    for (size_t a = 1; a < i; a++) { /* insertion sort: a tenant has at most 256 shards */
        const char *cur = k[a];
        size_t b = a;
        while (b > 0 && strcmp(k[b - 1], cur) > 0) {
            k[b] = k[b - 1];
            b--;
        }
        k[b] = cur;
    }
    *doc = o;
    *keys = k;
    *n = i;
    return true;
}

/* row_status: decode one stored status; a bad one makes the row corrupt (ERR_INTERNAL). */
static bool row_status(const json_t *v, const char *key, ImportStatus *st, Err *err)
{
    if (!import_status_decode(v, st, err)) {
        Err inner = *err;
        err_set(err, ERR_INTERNAL, "timeline_imports: shard %s: %s", key, inner.msg);
        return false;
    }
    return true;
}

bool import_summarise(const char *shard_statuses, ImportSummary *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    json_t *doc;
    const char **keys;
    size_t n;
    if (!parse_row(shard_statuses, &doc, &keys, &n, err))
        return false;
    StrBuf errors = STRBUF_INIT;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        ImportStatus st;
        ok = row_status(json_object_get(doc, keys[i]), keys[i], &st, err);
        if (!ok)
            break;
        out->shards++;
        if (import_status_terminal(st.kind))
            out->terminal++;
        if (st.kind == IMPORT_STATUS_DONE)
            out->done++;
        if (st.kind == IMPORT_STATUS_ERROR) {
            out->failed++;
            size_t len = strlen(st.error);
            if (len > IMPORT_ERROR_MSG_MAX) { /* cut on a UTF-8 character boundary */
                len = IMPORT_ERROR_MSG_MAX;
                while (len > 0 && ((unsigned char)st.error[len] & 0xC0) == 0x80)
                    len--;
            }
            strbuf_printf(&errors, "%s%s: %.*s", out->failed > 1 ? "; " : "", keys[i], (int)len,
                          st.error);
        }
    }
    free(keys);
    json_decref(doc);
    if (!ok) {
        strbuf_finish(&errors);
        memset(out, 0, sizeof(*out));
        return false;
    }
    if (out->failed > 0)
        out->errors = strbuf_detach(&errors);
    else
        strbuf_finish(&errors);
    return true;
}

void import_summary_finish(ImportSummary *s)
{
    free(s->errors);
    s->errors = NULL;
}

ImportDecision import_decide(const ImportSummary *s)
{
    if (s->shards == 0 || s->terminal < s->shards)
        return IMPORT_DECISION_WAIT;
    return s->failed > 0 ? IMPORT_DECISION_NOTIFY_ERROR : IMPORT_DECISION_ACTIVATE;
}

bool import_shard_status(const char *shard_statuses, ShardIndex shard, json_t **out, Err *err)
{
    *out = NULL;
    json_t *doc;
    const char **keys;
    size_t n;
    if (!parse_row(shard_statuses, &doc, &keys, &n, err))
        return false;
    free(keys);
    char key[SHARD_INDEX_STR_SIZE];
    shard_index_format(shard, key);
    json_t *v = json_object_get(doc, key);
    ImportStatus st;
    if (v == NULL) {
        err_set(err, ERR_NOT_FOUND, "shard %s is not part of this import", key);
    } else if (row_status(v, key, &st, err)) {
        *out = json_incref(v);
    }
    json_decref(doc);
    return *out != NULL;
}

bool import_progress_json(const TenantId *tenant, const TimelineId *timeline,
                          const char *shard_statuses, json_t **out, Err *err)
{
    *out = NULL;
    json_t *doc;
    const char **keys;
    size_t n;
    if (!parse_row(shard_statuses, &doc, &keys, &n, err))
        return false;
    json_t *shards = json_must(json_array());
    size_t terminal = 0, done = 0, failed = 0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(doc, keys[i]);
        ImportStatus st;
        if (!(ok = row_status(v, keys[i], &st, err)))
            break;
        ShardIndex idx = {0};
        Err e;
        err_clear(&e);
        if (!shard_index_parse(keys[i], &idx, &e)) /* checked by parse_row: cannot fail */
            abort();
        TenantShardId tsid = {.tenant_id = *tenant, .number = idx.number, .count = idx.count};
        terminal += import_status_terminal(st.kind);
        done += st.kind == IMPORT_STATUS_DONE;
        failed += st.kind == IMPORT_STATUS_ERROR;
        json_t *sh = json_must(json_object());
        json_set_new(sh, "shard_id", json_from_tsid(&tsid));
        json_set_new(sh, "status", json_incref(v));
        json_set_new(sh, "state", json_must(json_string(import_status_kind_name(st.kind))));
        json_set_new(sh, "jobs",
                     st.has_progress ? json_must(json_integer((json_int_t)st.jobs)) : json_null());
        json_set_new(sh, "completed",
                     st.has_progress ? json_must(json_integer((json_int_t)st.completed))
                                     : json_null());
        json_set_new(sh, "error",
                     st.kind == IMPORT_STATUS_ERROR ? json_must(json_string(st.error))
                                                    : json_null());
        json_array_append_new(shards, sh);
    }
    free(keys);
    json_decref(doc);
    if (!ok) {
        json_decref(shards);
        return false;
    }
    json_t *o = json_must(json_object());
    json_set_new(o, "tenant_id", json_from_tenant_id(tenant));
    json_set_new(o, "timeline_id", json_from_timeline_id(timeline));
    json_set_new(o, "shards", shards);
    json_set_new(o, "shard_count", json_must(json_integer((json_int_t)n)));
    json_set_new(o, "terminal", json_must(json_integer((json_int_t)terminal)));
    json_set_new(o, "done", json_must(json_integer((json_int_t)done)));
    json_set_new(o, "failed", json_must(json_integer((json_int_t)failed)));
    json_set_new(o, "complete", json_boolean(n > 0 && terminal == n));
    *out = o;
    return true;
}

/* ---- the control plane's notification ---- */

bool import_complete_render(const void *input, char **body, Err *err)
{
    const ImportComplete *c = input;
    json_t *o = json_must(json_object());
    json_set_new(o, "tenant_id", json_from_tenant_id(&c->tenant_id));
    json_set_new(o, "timeline_id", json_from_timeline_id(&c->timeline_id));
    json_t *e = c->error != NULL ? json_string(c->error) : json_null();
    if (e == NULL) {
        json_decref(o);
        err_set(err, ERR_INTERNAL, "import_complete: the error is not UTF-8");
        return false;
    }
    json_set_new(o, "error", e);
    *body = json_dumps_compact(o);
    json_decref(o);
    return true;
}

/* ---- ImportSet ---- */

ImportEntry *import_set_find(const ImportSet *set, const TenantId *tenant,
                             const TimelineId *timeline)
{
    for (ImportEntry *e = set->head; e != NULL; e = e->next) {
        if (tenant_id_eq(&e->tenant, tenant) && timeline_id_eq(&e->timeline, timeline))
            return e;
    }
    return NULL;
}

ImportEntry *import_set_add(ImportSet *set, const TenantId *tenant, const TimelineId *timeline,
                            bool *added)
{
    ImportEntry *e = import_set_find(set, tenant, timeline);
    if (added != NULL)
        *added = e == NULL;
    if (e != NULL)
        return e;
    e = xcalloc(1, sizeof(*e));
    e->tenant = *tenant;
    e->timeline = *timeline;
    e->next = set->head;
    set->head = e;
    set->n++;
    return e;
}

ImportEntry *import_set_remove(ImportSet *set, const TenantId *tenant, const TimelineId *timeline)
{
    for (ImportEntry **p = &set->head; *p != NULL; p = &(*p)->next) {
        ImportEntry *e = *p;
        if (tenant_id_eq(&e->tenant, tenant) && timeline_id_eq(&e->timeline, timeline)) {
            *p = e->next;
            e->next = NULL;
            set->n--;
            return e;
        }
    }
    return NULL;
}

bool import_set_tenant_importing(const ImportSet *set, const TenantId *tenant)
{
    for (const ImportEntry *e = set->head; e != NULL; e = e->next) {
        if (tenant_id_eq(&e->tenant, tenant))
            return true;
    }
    return false;
}

bool import_split_check(const ImportSet *set, const TenantId *tenant, Err *err)
{
    for (const ImportEntry *e = set->head; e != NULL; e = e->next) {
        if (!tenant_id_eq(&e->tenant, tenant))
            continue;
        char t[ID_STR_SIZE], tl[ID_STR_SIZE];
        tenant_id_format(tenant, t);
        timeline_id_format(&e->timeline, tl);
        err_set(err, ERR_CONFLICT,
                "tenant %s is importing timeline %s: shard splits wait until it is done", t, tl);
        return false;
    }
    return true;
}
