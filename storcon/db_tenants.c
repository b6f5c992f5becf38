/*
 * db_tenants.c: statements on the `tenant_shards` table (see db_tenants.h).
 *
 * Every operation allocates one TenantOp (the caller's callback plus what the completion and the
 * in-transaction checks need), hands a statement or a transaction to the pool, and frees the
 * TenantOp in the completion after calling back. Checks inside transactions (DbCheckFn) turn
 * "tenant missing" or "wrong split state" into ERR_NOT_FOUND / ERR_CONFLICT and roll back, so no
 * half-done change is ever committed. Rows are decoded straight from the PGresult: the strings in
 * a DbTenantShard point into it, which is why rows are only borrowed by callbacks.
 */
#include "storcon/db_tenants.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "shared/defer.h"
#include "shared/str.h"
#include "storcon/defaults.h"

/* The column list every SELECT/RETURNING decodes with shard_from_row (order matters). */
#define SHARD_COLUMNS                                                                              \
    "tenant_id, shard_number, shard_count, shard_stripe_size, generation, generation_pageserver, " \
    "splitting, placement_policy, config, scheduling_policy, preferred_az_id"

enum {
    COL_TENANT_ID,
    COL_SHARD_NUMBER,
    COL_SHARD_COUNT,
    COL_STRIPE_SIZE,
    COL_GENERATION,
    COL_GENERATION_PAGESERVER,
    COL_SPLITTING,
    COL_PLACEMENT_POLICY,
    COL_CONFIG,
    COL_SCHEDULING_POLICY,
    COL_PREFERRED_AZ,
    SHARD_COLUMN_COUNT
};

#define INT_TEXT_SIZE 24

typedef enum SplitKind { SPLIT_BEGIN, SPLIT_COMPLETE, SPLIT_ABORT } SplitKind;

/* TenantOp: one operation in flight; exactly one of the callbacks is set. */
typedef struct TenantOp {
    DbShardsFn shards_cb;
    DbGenerationsFn generations_cb;
    DbTenantsDoneFn done_cb;
    void *arg;

    size_t rows_stmt; /* shards_cb: the statement whose rows are handed back */
    TenantId tenant;
    TenantShardId shard;
    bool has_shard; /* updates: one shard (op->shard), not the whole tenant */
    NodeId node;
    SplitKind split;
    int old_count, new_count; /* split */
} TenantOp;

static TenantOp *op_new(void *arg)
{
    TenantOp *op = xcalloc(1, sizeof(*op));
    op->arg = arg;
    return op;
}

/* ---- decoding ---- */

static const char *value_at(const PGresult *r, int row, int col)
{
    if (r == NULL || row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col))
        return NULL;
    return PQgetvalue(r, row, col);
}

/* u64_at: a non-NULL integer column in [min, max]; anything else is a corrupt row. */
static bool u64_at(const PGresult *r, int row, int col, uint64_t min, uint64_t max, uint64_t *out,
                   Err *err)
{
    const char *v = value_at(r, row, col);
    if (v == NULL || !parse_u64(v, min, max, out)) {
        err_set(err, ERR_INTERNAL, "tenant_shards row %d: column %d: bad value \"%s\"", row, col,
                v != NULL ? v : "NULL");
        return false;
    }
    return true;
}

static bool text_at(const PGresult *r, int row, int col, const char **out, Err *err)
{
    *out = value_at(r, row, col);
    if (*out == NULL) {
        err_set(err, ERR_INTERNAL, "tenant_shards row %d: column %d is NULL", row, col);
        return false;
    }
    return true;
}

/* tsid_at: tenant_id, shard_number, shard_count starting at column `col`. */
static bool tsid_at(const PGresult *r, int row, int col, TenantShardId *out, Err *err)
{
    const char *tenant = value_at(r, row, col);
    uint64_t number, count;
    if (tenant == NULL || !tenant_id_parse(tenant, &out->tenant_id, err)) {
        err_set(err, ERR_INTERNAL, "tenant_shards row %d: bad tenant id \"%s\"", row,
                tenant != NULL ? tenant : "NULL");
        return false;
    }
    if (!u64_at(r, row, col + 1, 0, UINT8_MAX, &number, err) ||
        !u64_at(r, row, col + 2, 0, UINT8_MAX, &count, err))
        return false;
    out->number = (ShardNumber)number;
    out->count = (ShardCount)count;
    return true;
}

/* generation_at / node_at: nullable columns, NULL -> GENERATION_NONE / DB_NODE_ID_NONE. */
static bool generation_at(const PGresult *r, int row, int col, Generation *out, Err *err)
{
    uint64_t g;
    if (value_at(r, row, col) == NULL) {
        *out = GENERATION_NONE;
        return true;
    }
    if (!u64_at(r, row, col, 0, (uint64_t)GENERATION_MAX, &g, err))
        return false;
    *out = (Generation)g;
    return true;
}

static bool node_at(const PGresult *r, int row, int col, NodeId *out, Err *err)
{
    if (value_at(r, row, col) == NULL) {
        *out = DB_NODE_ID_NONE;
        return true;
    }
    return u64_at(r, row, col, 0, (uint64_t)INT64_MAX, out, err);
}

/* shard_from_row: decode one row selected with SHARD_COLUMNS; strings point into r. */
static bool shard_from_row(const PGresult *r, int row, DbTenantShard *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    uint64_t stripe, splitting;
    if (!tsid_at(r, row, COL_TENANT_ID, &out->tsid, err) ||
        !u64_at(r, row, COL_STRIPE_SIZE, 1, UINT32_MAX, &stripe, err) ||
        !generation_at(r, row, COL_GENERATION, &out->generation, err) ||
        !node_at(r, row, COL_GENERATION_PAGESERVER, &out->generation_pageserver, err) ||
        !u64_at(r, row, COL_SPLITTING, 0, INT16_MAX, &splitting, err) ||
        !text_at(r, row, COL_PLACEMENT_POLICY, &out->placement_policy, err) ||
        !text_at(r, row, COL_CONFIG, &out->config, err) ||
        !text_at(r, row, COL_SCHEDULING_POLICY, &out->scheduling_policy, err))
        return false;
    out->stripe_size = (uint32_t)stripe;
    out->splitting = splitting != 0;
    out->preferred_az_id = value_at(r, row, COL_PREFERRED_AZ);
    return true;
}

/* shard_order: tenant, then shard count (parents before children), then number: the order of
 * the SELECTs' ORDER BY, applied to UPDATE ... RETURNING rows too. */
static int shard_order(const void *pa, const void *pb)
{
    const TenantShardId *a = &((const DbTenantShard *)pa)->tsid;
    const TenantShardId *b = &((const DbTenantShard *)pb)->tsid;
    int c = tenant_id_cmp(&a->tenant_id, &b->tenant_id);
    if (c != 0)
        return c;
    if (a->count != b->count)
        return a->count < b->count ? -1 : 1;
    if (a->number != b->number)
        return a->number < b->number ? -1 : 1;
    return 0;
}

/* shards_decode: every row of r, sorted; *out is NULL when there are none. The caller frees
 * *out. */
static bool shards_decode(const PGresult *r, DbTenantShard **out, size_t *n, Err *err)
{
    *out = NULL;
    *n = 0;
    int rows = r != NULL ? PQntuples(r) : 0;
    if (rows == 0)
        return true;
    if (PQnfields(r) < SHARD_COLUMN_COUNT) {
        err_set(err, ERR_INTERNAL, "tenant_shards: %d columns, expected %d", PQnfields(r),
                SHARD_COLUMN_COUNT);
        return false;
    }
    DbTenantShard *shards = xcalloc((size_t)rows, sizeof(*shards));
    for (int i = 0; i < rows; i++) {
        if (!shard_from_row(r, i, &shards[i], err)) {
            free(shards);
            return false;
        }
    }
    qsort(shards, (size_t)rows, sizeof(*shards), shard_order);
    *out = shards;
    *n = (size_t)rows;
    return true;
}

static const PGresult *result_of(const DbResult *res, size_t stmt)
{
    return res->ok && stmt < res->n_results ? res->results[stmt] : NULL;
}

/* shards_done: hand the rows of statement op->rows_stmt to shards_cb; `empty_is_missing` turns
 * zero rows into ERR_NOT_FOUND for the tenant. */
static void shards_deliver(TenantOp *op, const DbResult *res, bool empty_is_missing)
{
    Err e;
    DbTenantShard *shards = NULL;
    size_t n = 0;
    bool ok = false;
    if (!res->ok) {
        e = res->err;
    } else if (shards_decode(result_of(res, op->rows_stmt), &shards, &n, &e)) {
        ok = true;
        if (n == 0 && empty_is_missing) {
            char tenant[ID_STR_SIZE];
            tenant_id_format(&op->tenant, tenant);
            err_set(&e, ERR_NOT_FOUND, "tenant %s not found", tenant);
            ok = false;
        }
    }
    op->shards_cb(ok ? NULL : &e, ok ? shards : NULL, ok ? n : 0, op->arg);
    free(shards);
    free(op);
}

static void shards_done(const DbResult *res, void *arg)
{
    shards_deliver(arg, res, false);
}

static void shards_done_tenant(const DbResult *res, void *arg)
{
    shards_deliver(arg, res, true);
}

/* affected: rows changed by an INSERT/UPDATE/DELETE result. */
static uint64_t affected(const PGresult *r)
{
    uint64_t n = 0;
    if (r == NULL || !parse_u64(PQcmdTuples((PGresult *)r), 0, UINT64_MAX, &n))
        return 0;
    return n;
}

/* ---- text parameters ---- */

typedef struct ShardParams {
    char tenant[ID_STR_SIZE];
    char number[INT_TEXT_SIZE];
    char count[INT_TEXT_SIZE];
} ShardParams;

/* shard_params: tenant text, and number/count text unless shard is NULL (then both SQL NULL). */
static void shard_params(const TenantId *tenant, const ShardIndex *shard, ShardParams *p,
                         const char **number, const char **count)
{
    tenant_id_format(tenant, p->tenant);
    *number = NULL;
    *count = NULL;
    if (shard != NULL) {
        snprintf(p->number, sizeof(p->number), "%u", (unsigned)shard->number);
        snprintf(p->count, sizeof(p->count), "%u", (unsigned)shard->count);
        *number = p->number;
        *count = p->count;
    }
}

static bool json_arg_ok(const char *json, const char *what, Err *err)
{
    if (json == NULL || json[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "%s: JSON text required", what);
        return false;
    }
    return true;
}

/* ---- insert tenants: group commit ---- */

/* One create waiting in the inserter: the caller's request, copied. */
typedef struct InsertItem {
    DbTenantCreate c; /* the strings point into the copies below */
    char *placement, *config, *scheduling, *az;
    NodeId *pageservers; /* NULL or one per shard */
    DbTenantCreateFn cb;
    void *arg;
    bool alone; /* a batch holding it failed on a bad row: it runs in a batch of its own */
    struct InsertItem *next;
} InsertItem;

/* One transaction in flight: items[0..n) in queue order. */
typedef struct InsertBatch {
    DbTenantInserter *ins;
    InsertItem *items;
    size_t n;
    DbRequest *req;
    struct InsertBatch *prev, *next;
} InsertBatch;

struct DbTenantInserter {
    DbPool *pool;
    LoopDefer *defer;
    LoopDeferItem kick; /* dispatch from the loop: creates of one loop pass go together */
    InsertItem *head, *tail;
    size_t max_batch, max_in_flight;
    InsertBatch *in_flight;
    size_t n_in_flight;
    DbTenantInserterStats stats;
};

/* Every tenant of the batch ($1: a JSON array of {t, c, s, g, p, pn, pp, cf, sp, az}; pn, when not
 * null, holds shard n's generation_pageserver at index n) that has no row yet gets all its shards;
 * a tenant with rows keeps them, untouched. The answer holds, per tenant, the inserted rows
 * (created) or the existing ones, each with whether it matches the request (placement and config
 * compared as jsonb). A concurrent insert of one of the tenants makes ON CONFLICT fail the
 * serializable transaction (40001), which the pool runs again. The OFFSET 0 subqueries keep the
 * planner from turning the per-tenant lookups into a join with a scan of the whole table (it cannot
 * know how few tenants the JSON holds): each tenant costs one primary-key probe whatever the
 * table's size. */
static const char SQL_TENANT_INSERT_BATCH[] =
    "WITH r AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(t text, c integer, s integer, "
    "g integer, p bigint, pn jsonb, pp text, cf text, sp text, az text)), "
    "ins AS (INSERT INTO tenant_shards (tenant_id, shard_number, shard_count, shard_stripe_size, "
    "generation, generation_pageserver, placement_policy, splitting, config, scheduling_policy, "
    "preferred_az_id) "
    "SELECT r.t, n, r.c, r.s, r.g, COALESCE((r.pn ->> n)::bigint, r.p), r.pp, 0, r.cf, r.sp, r.az "
    "FROM r CROSS JOIN LATERAL generate_series(0, greatest(r.c, 1) - 1) AS n "
    "WHERE NOT EXISTS (SELECT 1 FROM tenant_shards x WHERE x.tenant_id = r.t OFFSET 0) "
    "ON CONFLICT DO NOTHING RETURNING " SHARD_COLUMNS ") "
    "SELECT " SHARD_COLUMNS ", true AS same, true AS created FROM ins "
    "UNION ALL SELECT " SHARD_COLUMNS ", (shard_count = r.c AND shard_stripe_size = r.s "
    "AND placement_policy::jsonb = r.pp::jsonb AND config::jsonb = r.cf::jsonb), false "
    "FROM r CROSS JOIN LATERAL (SELECT * FROM tenant_shards WHERE tenant_id = r.t OFFSET 0) x";

enum { COL_SAME = SHARD_COLUMN_COUNT, COL_CREATED };

static void item_free(InsertItem *it)
{
    free(it->placement);
    free(it->config);
    free(it->scheduling);
    free(it->az);
    free(it->pageservers);
    free(it);
}

static void inserter_kick(DbTenantInserter *ins)
{
    (void)loop_defer_item(ins->defer, &ins->kick);
}

/* item_json: the item as one element of $1. */
static json_t *item_json(const InsertItem *it)
{
    char tenant[ID_STR_SIZE];
    tenant_id_format(&it->c.tenant_id, tenant);
    const DbTenantCreate *c = &it->c;
    json_t *pn = json_null();
    if (it->pageservers != NULL) {
        pn = json_array();
        for (size_t i = 0; i < (c->shard_count > 0 ? c->shard_count : 1u); i++)
            json_array_append_new(pn, json_integer((json_int_t)it->pageservers[i]));
    }
    return json_pack("{s:s, s:I, s:I, s:o, s:o, s:o, s:s, s:s, s:s, s:o}", "t", tenant, "c",
                     (json_int_t)c->shard_count, "s", (json_int_t)c->stripe_size, "g",
                     c->generation != GENERATION_NONE ? json_integer((json_int_t)c->generation)
                                                      : json_null(),
                     "p",
                     c->generation_pageserver != DB_NODE_ID_NONE
                         ? json_integer((json_int_t)c->generation_pageserver)
                         : json_null(),
                     "pn", pn, "pp", it->placement, "cf", it->config, "sp", it->scheduling, "az",
                     it->az != NULL ? json_string(it->az) : json_null());
}

/* A row of a batch's result by tenant: the batch's rows are indexed once (sorted by tenant), so
 * handing out a batch of k creates over n rows costs O(n log n + k log n), not O(k n). */
typedef struct RowRef {
    TenantId tenant;
    int row;
} RowRef;

static int row_ref_order(const void *pa, const void *pb)
{
    const RowRef *a = pa, *b = pb;
    int c = tenant_id_cmp(&a->tenant, &b->tenant);
    return c != 0 ? c : (a->row > b->row) - (a->row < b->row);
}

/* rows_index: every row's tenant, sorted; NULL (err set) when a row's id does not parse. */
static RowRef *rows_index(const PGresult *r, size_t *n, Err *err)
{
    *n = (size_t)PQntuples(r);
    RowRef *refs = xcalloc(*n + 1, sizeof(*refs));
    for (size_t i = 0; i < *n; i++) {
        TenantShardId tsid;
        if (!tsid_at(r, (int)i, COL_TENANT_ID, &tsid, err)) {
            free(refs);
            return NULL;
        }
        refs[i] = (RowRef){.tenant = tsid.tenant_id, .row = (int)i};
    }
    qsort(refs, *n, sizeof(*refs), row_ref_order);
    return refs;
}

/* item_deliver: the item's outcome from the batch's rows (refs: rows_index of r): its inserted
 * rows, or its existing rows when they all match the request (a repeat), else 409 with nothing
 * written. */
static void item_deliver(const InsertItem *it, const PGresult *r, const RowRef *refs, size_t n_refs)
{
    size_t expect = it->c.shard_count > 0 ? it->c.shard_count : 1;
    DbTenantShard *shards = xcalloc(expect + 1, sizeof(*shards));
    size_t n = 0, same = 0, found = 0;
    bool created = false;
    Err e;
    err_clear(&e);
    bool ok = true;
    size_t lo = 0, hi = n_refs; /* the first ref of this tenant */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tenant_id_cmp(&refs[mid].tenant, &it->c.tenant_id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    int first_row =
        lo < n_refs && tenant_id_eq(&refs[lo].tenant, &it->c.tenant_id) ? refs[lo].row : -1;
    for (size_t k = lo; k < n_refs && ok && tenant_id_eq(&refs[k].tenant, &it->c.tenant_id); k++) {
        int i = refs[k].row;
        found++;
        const char *v = value_at(r, i, COL_SAME);
        if (v != NULL && strcmp(v, "t") == 0)
            same++;
        v = value_at(r, i, COL_CREATED);
        created = created || (v != NULL && strcmp(v, "t") == 0);
        if (n < expect)
            ok = shard_from_row(r, i, &shards[n++], &e);
    }
    char tenant[ID_STR_SIZE];
    tenant_id_format(&it->c.tenant_id, tenant);
    if (ok && found == 0) {
        err_set(&e, ERR_UNAVAILABLE, "tenant %s: rows neither inserted nor found, retry", tenant);
        ok = false;
    } else if (ok && (found != expect || same != found)) {
        const char *count = value_at(r, first_row, COL_SHARD_COUNT);
        const char *stripe = value_at(r, first_row, COL_STRIPE_SIZE);
        err_set(&e, ERR_CONFLICT,
                "tenant %s already exists with other parameters (%zu rows, shard count %s, stripe "
                "size %s, or another placement policy or config)",
                tenant, found, count != NULL ? count : "?", stripe != NULL ? stripe : "?");
        ok = false;
    }
    if (ok)
        qsort(shards, n, sizeof(*shards), shard_order);
    it->cb(ok ? NULL : &e, ok ? shards : NULL, ok ? n : 0, created, it->arg);
    free(shards);
}

static void inserter_dispatch(void *arg);

static void batch_unlink(InsertBatch *b)
{
    DbTenantInserter *ins = b->ins;
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        ins->in_flight = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    ins->n_in_flight--;
}

/* batch_done: the batch's transaction ended. Committed: every item gets its own outcome. A
 * database failure (unreachable, connection lost, outcome unknown, timeout, retries exhausted)
 * fails every item of the batch and only those. Any other error comes from a bad row: the items
 * go back to the front of the queue, each to run alone, so one bad create fails by itself. */
static void batch_done(const DbResult *res, void *arg)
{
    InsertBatch *b = arg;
    DbTenantInserter *ins = b->ins;
    batch_unlink(b);
    if (res->ok) {
        const PGresult *r = result_of(res, 0);
        Err e;
        err_clear(&e);
        size_t n_refs = 0;
        RowRef *refs = rows_index(r, &n_refs, &e);
        for (InsertItem *it = b->items; it != NULL; it = it->next) {
            if (refs != NULL)
                item_deliver(it, r, refs, n_refs);
            else
                it->cb(&e, NULL, 0, false, it->arg);
        }
        free(refs);
    } else if (res->err.code != ERR_UNAVAILABLE && b->n > 1) {
        ins->stats.split++;
        InsertItem *last = b->items;
        for (InsertItem *it = b->items; it != NULL; it = it->next) {
            it->alone = true;
            last = it;
        }
        last->next = ins->head;
        if (ins->head == NULL)
            ins->tail = last;
        ins->head = b->items;
        b->items = NULL;
    } else {
        for (InsertItem *it = b->items; it != NULL; it = it->next)
            it->cb(&res->err, NULL, 0, false, it->arg);
    }
    while (b->items != NULL) {
        InsertItem *it = b->items;
        b->items = it->next;
        item_free(it);
    }
    free(b);
    inserter_dispatch(ins);
}

/* batch_take: move the next batch off the queue: an item that must run alone by itself, else up
 * to max_batch items in queue order, skipping a tenant already in the batch (it waits for the
 * next one, so one statement never inserts a tenant twice) and items that must run alone. */
static InsertBatch *batch_take(DbTenantInserter *ins)
{
    InsertBatch *b = xcalloc(1, sizeof(*b));
    b->ins = ins;
    InsertItem **tail = &b->items;
    InsertItem *prev = NULL;
    for (InsertItem *it = ins->head, *next; it != NULL && b->n < ins->max_batch; it = next) {
        next = it->next;
        bool take = b->n == 0 || !it->alone;
        for (InsertItem *x = b->items; take && x != NULL; x = x->next)
            take = !tenant_id_eq(&x->c.tenant_id, &it->c.tenant_id);
        if (!take) {
            prev = it;
            continue;
        }
        if (prev != NULL)
            prev->next = next;
        else
            ins->head = next;
        if (ins->tail == it)
            ins->tail = prev;
        it->next = NULL;
        *tail = it;
        tail = &it->next;
        b->n++;
        if (it->alone)
            break;
    }
    return b;
}

/* inserter_dispatch: start batches while fewer than max_in_flight are running. */
static void inserter_dispatch(void *arg)
{
    DbTenantInserter *ins = arg;
    while (ins->head != NULL && ins->n_in_flight < ins->max_in_flight) {
        InsertBatch *b = batch_take(ins);
        json_t *rows = json_array();
        for (InsertItem *it = b->items; it != NULL; it = it->next)
            json_array_append_new(rows, item_json(it));
        char *text = json_dumps(rows, JSON_COMPACT);
        json_decref(rows);
        if (text == NULL)
            abort();
        const char *const params[] = {text};
        const DbStatement stmt = {.sql = SQL_TENANT_INSERT_BATCH, .nparams = 1, .params = params};
        b->next = ins->in_flight;
        if (ins->in_flight != NULL)
            ins->in_flight->prev = b;
        ins->in_flight = b;
        ins->n_in_flight++;
        ins->stats.batches++;
        ins->stats.creates += b->n;
        if (b->n > ins->stats.largest)
            ins->stats.largest = b->n;
        b->req = db_txn_first(ins->pool, &stmt, 1, batch_done, b);
        free(text);
    }
}

DbTenantInserter *db_tenants_inserter_new(struct event_base *base, DbPool *pool, size_t max_batch,
                                          size_t max_in_flight)
{
    DbTenantInserter *ins = xcalloc(1, sizeof(*ins));
    ins->pool = pool;
    ins->defer = loop_defer_new(base);
    loop_defer_item_init(&ins->kick, inserter_dispatch, ins);
    ins->max_batch = max_batch > 0 ? max_batch : STORCON_DB_INSERT_BATCH_MAX;
    ins->max_in_flight = max_in_flight > 0 ? max_in_flight : STORCON_DB_INSERT_IN_FLIGHT;
    return ins;
}

void db_tenants_inserter_free(DbTenantInserter *ins)
{
    if (ins == NULL)
        return;
    while (ins->in_flight != NULL) {
        InsertBatch *b = ins->in_flight;
        batch_unlink(b);
        db_cancel(ins->pool, b->req);
        while (b->items != NULL) {
            InsertItem *it = b->items;
            b->items = it->next;
            item_free(it);
        }
        free(b);
    }
    while (ins->head != NULL) {
        InsertItem *it = ins->head;
        ins->head = it->next;
        item_free(it);
    }
    loop_defer_free(ins->defer);
    free(ins);
}

DbTenantInserterStats db_tenants_inserter_stats(const DbTenantInserter *ins)
{
    return ins->stats;
}

bool db_tenants_insert(DbTenantInserter *ins, const DbTenantCreate *c, DbTenantCreateFn cb,
                       void *arg, Err *err)
{
    if (c->stripe_size == 0 || c->stripe_size > INT32_MAX) {
        err_set(err, ERR_BAD_REQUEST, "stripe size %" PRIu32 " out of range", c->stripe_size);
        return false;
    }
    if (c->generation != GENERATION_NONE && (c->generation < 0 || c->generation > INT32_MAX)) {
        err_set(err, ERR_BAD_REQUEST, "generation %" PRId64 " out of range", c->generation);
        return false;
    }
    if (c->generation_pageserver != DB_NODE_ID_NONE &&
        (c->generation_pageserver > (NodeId)INT64_MAX || c->generation == GENERATION_NONE)) {
        err_set(err, ERR_BAD_REQUEST,
                "generation_pageserver needs a generation and an id <= %" PRId64, INT64_MAX);
        return false;
    }
    size_t n_shards = c->shard_count > 0 ? c->shard_count : 1u;
    for (size_t i = 0; c->shard_pageservers != NULL && i < n_shards; i++) {
        if (c->shard_pageservers[i] > (NodeId)INT64_MAX || c->generation == GENERATION_NONE) {
            err_set(err, ERR_BAD_REQUEST, "shard_pageservers need a generation and ids <= %" PRId64,
                    INT64_MAX);
            return false;
        }
    }
    if (!json_arg_ok(c->placement_policy, "placement_policy", err))
        return false;
    InsertItem *it = xcalloc(1, sizeof(*it));
    if (c->shard_pageservers != NULL) {
        it->pageservers = xcalloc(n_shards, sizeof(NodeId));
        memcpy(it->pageservers, c->shard_pageservers, n_shards * sizeof(NodeId));
    }
    it->c = *c;
    it->c.shard_pageservers = it->pageservers;
    it->placement = xstrdup(c->placement_policy);
    it->config = xstrdup(c->config != NULL ? c->config : "{}");
    it->scheduling = xstrdup(c->scheduling_policy != NULL ? c->scheduling_policy : "\"Active\"");
    it->az = c->preferred_az_id != NULL ? xstrdup(c->preferred_az_id) : NULL;
    it->c.placement_policy = it->placement;
    it->c.config = it->config;
    it->c.scheduling_policy = it->scheduling;
    it->c.preferred_az_id = it->az;
    it->cb = cb;
    it->arg = arg;
    if (ins->tail != NULL)
        ins->tail->next = it;
    else
        ins->head = it;
    ins->tail = it;
    inserter_kick(ins);
    return true;
}

/* ---- load and get ---- */

static const char SQL_TENANT_LOAD[] =
    "SELECT " SHARD_COLUMNS " FROM tenant_shards "
    "WHERE $1::boolean OR placement_policy::jsonb <> '\"Detached\"'::jsonb "
    "ORDER BY tenant_id, shard_count, shard_number";

void db_tenants_load(DbPool *pool, bool include_detached, DbShardsFn cb, void *arg)
{
    const char *const params[] = {include_detached ? "true" : "false"};
    TenantOp *op = op_new(arg);
    op->shards_cb = cb;
    db_exec(pool, SQL_TENANT_LOAD, 1, params, shards_done, op);
}

static const char SQL_TENANT_GET[] = "SELECT " SHARD_COLUMNS " FROM tenant_shards "
                                     "WHERE tenant_id = $1 ORDER BY shard_count, shard_number";

void db_tenants_get(DbPool *pool, const TenantId *tenant, DbShardsFn cb, void *arg)
{
    char id[ID_STR_SIZE];
    tenant_id_format(tenant, id);
    const char *const params[] = {id};
    TenantOp *op = op_new(arg);
    op->shards_cb = cb;
    op->tenant = *tenant;
    db_exec(pool, SQL_TENANT_GET, 1, params, shards_done_tenant, op);
}

/* ---- generations ---- */

/* ShardArrays: shards as three parallel Postgres array literals (tenant ids, numbers, counts)
 * for unnest($1::text[], $2::integer[], $3::integer[]); built from parsed ids, never SQL. */
typedef struct ShardArrays {
    StrBuf tenants, numbers, counts;
    size_t n;
} ShardArrays;

static void shard_arrays_init(ShardArrays *a)
{
    strbuf_init(&a->tenants);
    strbuf_init(&a->numbers);
    strbuf_init(&a->counts);
    strbuf_append_str(&a->tenants, "{");
    strbuf_append_str(&a->numbers, "{");
    strbuf_append_str(&a->counts, "{");
    a->n = 0;
}

static void shard_arrays_add(ShardArrays *a, const TenantShardId *shard)
{
    char id[ID_STR_SIZE];
    tenant_id_format(&shard->tenant_id, id);
    const char *sep = a->n > 0 ? "," : "";
    strbuf_printf(&a->tenants, "%s%s", sep, id);
    strbuf_printf(&a->numbers, "%s%u", sep, (unsigned)shard->number);
    strbuf_printf(&a->counts, "%s%u", sep, (unsigned)shard->count);
    a->n++;
}

/* shard_arrays_close: terminate the literals (then pass a->tenants.data etc.). */
static void shard_arrays_close(ShardArrays *a)
{
    strbuf_append_str(&a->tenants, "}");
    strbuf_append_str(&a->numbers, "}");
    strbuf_append_str(&a->counts, "}");
}

static void shard_arrays_finish(ShardArrays *a)
{
    strbuf_finish(&a->tenants);
    strbuf_finish(&a->numbers);
    strbuf_finish(&a->counts);
}

/* ---- generation increments: the coalescing batcher ----
 *
 * Every increment asked for on a pool goes through one GenBatcher attached to it (db_pool_attach),
 * whoever asks (reconciles, the attach hook): requests wait in a FIFO, and one UPDATE ... FROM
 * unnest(...) RETURNING carries up to DB_GENERATION_BATCH_MAX of them. One batch is in flight at a
 * time, so the requests arriving meanwhile (a failover asks for thousands within milliseconds)
 * make up the next one: a lone increment goes out on the next loop iteration, a burst costs one
 * statement per batch instead of one per shard. A shard appears at most once per batch (a second
 * request for it waits for the next batch), so each request sees exactly one +1 and concurrent
 * increments of one shard still get distinct, increasing values. The statement runs as a
 * one-statement transaction (db_txn), retried as a whole after a serialization failure or
 * deadlock with another transaction; the generations are committed before any caller hears of
 * them. A failed batch fails exactly its own requests; the ones queued behind it go out next. */

#define DB_GENERATION_BATCH_MAX 1000

static const char SQL_GENERATION_INCREMENT_BATCH[] =
    "UPDATE tenant_shards AS t SET generation = COALESCE(t.generation, 0) + 1, "
    "generation_pageserver = u.node "
    "FROM unnest($1::text[], $2::integer[], $3::integer[], $4::bigint[]) "
    "AS u(tenant_id, shard_number, shard_count, node) "
    "WHERE t.tenant_id = u.tenant_id AND t.shard_number = u.shard_number "
    "AND t.shard_count = u.shard_count "
    "RETURNING t.tenant_id, t.shard_number, t.shard_count, t.generation";

typedef struct GenRequest {
    TenantShardId shard;
    NodeId node;
    DbGenerationFn cb;
    void *arg;
    Generation result; /* GENERATION_NONE: no row came back (unknown shard) */
    struct GenRequest *next;
} GenRequest;

typedef struct GenBatcher {
    DbPool *pool;
    LoopDefer *defer;
    LoopDeferItem kick;
    GenRequest *head, *tail; /* waiting */
    GenRequest *batch;       /* in flight (NULL: none) */
    DbRequest *req;
} GenBatcher;

static const char GEN_BATCHER_KEY[] = "generation batcher";

static void gen_list_free(GenRequest *r)
{
    while (r != NULL) {
        GenRequest *next = r->next;
        free(r);
        r = next;
    }
}

/* gen_batcher_free: db_pool_free drops everything without calling back. */
static void gen_batcher_free(void *obj)
{
    GenBatcher *b = obj;
    if (b->req != NULL)
        db_cancel(b->pool, b->req);
    gen_list_free(b->batch);
    gen_list_free(b->head);
    loop_defer_free(b->defer);
    free(b);
}

static void gen_batch_send(void *arg);

static GenBatcher *gen_batcher_of(DbPool *pool)
{
    GenBatcher *b = db_pool_attached(pool, GEN_BATCHER_KEY);
    if (b == NULL) {
        b = xcalloc(1, sizeof(*b));
        b->pool = pool;
        b->defer = loop_defer_new(db_pool_base(pool));
        loop_defer_item_init(&b->kick, gen_batch_send, b);
        db_pool_attach(pool, GEN_BATCHER_KEY, b, gen_batcher_free);
    }
    return b;
}

static bool gen_in_list(const GenRequest *list, const TenantShardId *shard)
{
    for (; list != NULL; list = list->next) {
        if (tsid_eq(&list->shard, shard))
            return true;
    }
    return false;
}

static void gen_batch_done(const DbResult *res, void *arg);

/* gen_batch_send: take up to DB_GENERATION_BATCH_MAX waiting requests (a shard once) and send
 * them as one statement. */
static void gen_batch_send(void *arg)
{
    GenBatcher *b = arg;
    if (b->batch != NULL || b->head == NULL)
        return;
    GenRequest *batch_tail = NULL, *keep_head = NULL, *keep_tail = NULL;
    size_t n = 0;
    while (b->head != NULL) {
        GenRequest *r = b->head;
        b->head = r->next;
        r->next = NULL;
        if (n >= DB_GENERATION_BATCH_MAX || gen_in_list(b->batch, &r->shard)) {
            if (keep_tail != NULL)
                keep_tail->next = r;
            else
                keep_head = r;
            keep_tail = r;
            continue;
        }
        if (batch_tail != NULL)
            batch_tail->next = r;
        else
            b->batch = r;
        batch_tail = r;
        n++;
    }
    b->head = keep_head;
    b->tail = keep_tail;

    ShardArrays a;
    shard_arrays_init(&a);
    StrBuf nodes = STRBUF_INIT;
    strbuf_append_str(&nodes, "{");
    for (GenRequest *r = b->batch; r != NULL; r = r->next) {
        const char *sep = a.n > 0 ? "," : "";
        if (r->node == DB_NODE_ID_NONE)
            strbuf_printf(&nodes, "%sNULL", sep);
        else
            strbuf_printf(&nodes, "%s%" PRIu64, sep, r->node);
        shard_arrays_add(&a, &r->shard);
    }
    shard_arrays_close(&a);
    strbuf_append_str(&nodes, "}");
    const char *const params[] = {a.tenants.data, a.numbers.data, a.counts.data, nodes.data};
    const DbStatement stmt = {
        .sql = SQL_GENERATION_INCREMENT_BATCH, .nparams = 4, .params = params};
    b->req = db_txn(b->pool, &stmt, 1, gen_batch_done, b);
    shard_arrays_finish(&a);
    strbuf_finish(&nodes);
}

/* gen_batch_done: hand each request of the batch its generation (or the batch's error, or
 * ERR_NOT_FOUND for a shard without a row), then send the next batch. */
static void gen_batch_done(const DbResult *res, void *arg)
{
    GenBatcher *b = arg;
    GenRequest *batch = b->batch;
    b->batch = NULL;
    b->req = NULL;
    Err e;
    bool ok = res->ok;
    if (!ok)
        e = res->err;
    const PGresult *r = result_of(res, 0);
    int rows = ok && r != NULL ? PQntuples(r) : 0;
    for (int i = 0; i < rows && ok; i++) {
        TenantShardId t;
        Generation g;
        ok = tsid_at(r, i, 0, &t, &e) && generation_at(r, i, 3, &g, &e);
        if (ok && g == GENERATION_NONE) {
            err_set(&e, ERR_INTERNAL, "generation increment returned NULL");
            ok = false;
        }
        for (GenRequest *q = batch; ok && q != NULL; q = q->next) {
            if (tsid_eq(&q->shard, &t)) {
                q->result = g;
                break;
            }
        }
    }
    /* callbacks may ask for more increments: they queue behind this point and go out next */
    while (batch != NULL) {
        GenRequest *q = batch;
        batch = q->next;
        if (!ok) {
            q->cb(&e, GENERATION_NONE, q->arg);
        } else if (q->result == GENERATION_NONE) {
            Err nf;
            char tsid[TSID_STR_SIZE];
            tsid_format(&q->shard, tsid);
            err_set(&nf, ERR_NOT_FOUND, "tenant shard %s not found", tsid);
            q->cb(&nf, GENERATION_NONE, q->arg);
        } else {
            q->cb(NULL, q->result, q->arg);
        }
        free(q);
    }
    if (b->head != NULL)
        (void)loop_defer_item(b->defer, &b->kick);
}

void db_tenants_increment_generation(DbPool *pool, const TenantShardId *shard, NodeId node,
                                     DbGenerationFn cb, void *arg)
{
    GenBatcher *b = gen_batcher_of(pool);
    GenRequest *r = xcalloc(1, sizeof(*r));
    r->shard = *shard;
    r->node = node;
    r->cb = cb;
    r->arg = arg;
    r->result = GENERATION_NONE;
    if (b->tail != NULL)
        b->tail->next = r;
    else
        b->head = r;
    b->tail = r;
    if (b->batch == NULL)
        (void)loop_defer_item(b->defer, &b->kick);
}

/* The node must be registered and active; a re-attach from anything else is refused. */
static const char SQL_REATTACH_NODE[] = "SELECT lifecycle FROM nodes WHERE node_id = $1::bigint";

static const char SQL_REATTACH_BUMP[] =
    "UPDATE tenant_shards SET generation = generation + 1 "
    "WHERE generation_pageserver = $1::bigint RETURNING " SHARD_COLUMNS;

/* reattach_check_node: only a registered, active node may re-attach (the transaction rolls
 * back otherwise, so no generation is bumped for a stranger). */
static bool reattach_check_node(const PGresult *r, void *arg, Err *err)
{
    TenantOp *op = arg;
    const char *lifecycle = value_at(r, 0, 0);
    if (lifecycle == NULL) {
        err_set(err, ERR_NOT_FOUND, "node %" PRIu64 " is not registered", op->node);
        return false;
    }
    if (strcmp(lifecycle, "active") != 0) {
        err_set(err, ERR_NOT_FOUND, "node %" PRIu64 " was deleted", op->node);
        return false;
    }
    return true;
}

void db_tenants_reattach(DbPool *pool, NodeId node, DbShardsFn cb, void *arg)
{
    char id[INT_TEXT_SIZE];
    snprintf(id, sizeof(id), "%" PRIu64, node);
    const char *const params[] = {id};
    const DbStatement stmts[] = {
        {.sql = SQL_REATTACH_NODE, .nparams = 1, .params = params, .check = reattach_check_node},
        {.sql = SQL_REATTACH_BUMP, .nparams = 1, .params = params},
    };
    TenantOp *op = op_new(arg);
    op->shards_cb = cb;
    op->node = node;
    op->rows_stmt = 1;
    db_txn(pool, stmts, 2, shards_done, op);
}

/* The shards are passed as three parallel arrays (text array literals built from parsed ids,
 * never SQL) and matched against the primary key. */
static const char SQL_GENERATIONS[] =
    "SELECT tenant_id, shard_number, shard_count, generation, generation_pageserver "
    "FROM tenant_shards WHERE (tenant_id, shard_number, shard_count) IN "
    "(SELECT * FROM unnest($1::text[], $2::integer[], $3::integer[])) "
    "ORDER BY tenant_id, shard_count, shard_number";

/* generations_done: the found shards, decoded; missing ones simply have no row. */
static void generations_done(const DbResult *res, void *arg)
{
    TenantOp *op = arg;
    Err e;
    bool ok = res->ok;
    DbShardGeneration *found = NULL;
    size_t n = 0;
    if (!ok) {
        e = res->err;
    } else {
        const PGresult *r = result_of(res, 0);
        int rows = r != NULL ? PQntuples(r) : 0;
        found = rows > 0 ? xcalloc((size_t)rows, sizeof(*found)) : NULL;
        for (int i = 0; i < rows && ok; i++, n++) {
            ok = tsid_at(r, i, 0, &found[i].tsid, &e) &&
                 generation_at(r, i, 3, &found[i].generation, &e) &&
                 node_at(r, i, 4, &found[i].generation_pageserver, &e);
        }
    }
    op->generations_cb(ok ? NULL : &e, ok ? found : NULL, ok ? n : 0, op->arg);
    free(found);
    free(op);
}

void db_tenants_generations(DbPool *pool, const TenantShardId *shards, size_t n, DbGenerationsFn cb,
                            void *arg)
{
    ShardArrays a;
    shard_arrays_init(&a);
    for (size_t i = 0; i < n; i++)
        shard_arrays_add(&a, &shards[i]);
    shard_arrays_close(&a);
    const char *const params[] = {a.tenants.data, a.numbers.data, a.counts.data};
    TenantOp *op = op_new(arg);
    op->generations_cb = cb;
    db_exec(pool, SQL_GENERATIONS, 3, params, generations_done, op);
    shard_arrays_finish(&a);
}

/* ---- updates of a tenant or one of its shards ---- */

static void update_done(const DbResult *res, void *arg)
{
    TenantOp *op = arg;
    Err e;
    bool ok = false;
    if (!res->ok) {
        e = res->err;
    } else if (affected(result_of(res, 0)) == 0) {
        char what[TSID_STR_SIZE + 8];
        if (op->has_shard) {
            tsid_format(&op->shard, what);
        } else {
            tenant_id_format(&op->tenant, what);
        }
        err_set(&e, ERR_NOT_FOUND, "tenant %s%s not found", op->has_shard ? "shard " : "", what);
    } else {
        ok = true;
    }
    op->done_cb(ok ? NULL : &e, op->arg);
    free(op);
}

/* update_rows: run an UPDATE whose $1..$3 are tenant, shard number, shard count (both NULL for
 * the whole tenant) and, when has_value, $4 = value (which may be NULL). */
static void update_rows(DbPool *pool, const char *sql, const TenantId *tenant,
                        const ShardIndex *shard, bool has_value, const char *value,
                        DbTenantsDoneFn cb, void *arg)
{
    ShardParams p;
    const char *number, *count;
    shard_params(tenant, shard, &p, &number, &count);
    const char *const params[] = {p.tenant, number, count, value};
    TenantOp *op = op_new(arg);
    op->done_cb = cb;
    op->tenant = *tenant;
    op->shard.tenant_id = *tenant;
    if (shard != NULL) {
        op->has_shard = true;
        op->shard.number = shard->number;
        op->shard.count = shard->count;
    }
    db_exec(pool, sql, has_value ? 4 : 3, params, update_done, op);
}

#define SHARD_FILTER                                                                               \
    " WHERE tenant_id = $1 AND ($2::integer IS NULL OR "                                           \
    "(shard_number = $2::integer AND shard_count = $3::integer))"

static const char SQL_SET_PLACEMENT_POLICY[] =
    "UPDATE tenant_shards SET placement_policy = $4" SHARD_FILTER;

bool db_tenants_set_placement_policy(DbPool *pool, const TenantId *tenant, const ShardIndex *shard,
                                     const char *json, DbTenantsDoneFn cb, void *arg, Err *err)
{
    if (!json_arg_ok(json, "placement_policy", err))
        return false;
    update_rows(pool, SQL_SET_PLACEMENT_POLICY, tenant, shard, true, json, cb, arg);
    return true;
}

static const char SQL_SET_CONFIG[] = "UPDATE tenant_shards SET config = $4" SHARD_FILTER;

bool db_tenants_set_config(DbPool *pool, const TenantId *tenant, const ShardIndex *shard,
                           const char *json, DbTenantsDoneFn cb, void *arg, Err *err)
{
    if (!json_arg_ok(json, "config", err))
        return false;
    update_rows(pool, SQL_SET_CONFIG, tenant, shard, true, json, cb, arg);
    return true;
}

static const char SQL_SET_SCHEDULING_POLICY[] =
    "UPDATE tenant_shards SET scheduling_policy = $4" SHARD_FILTER;

bool db_tenants_set_scheduling_policy(DbPool *pool, const TenantId *tenant, const ShardIndex *shard,
                                      const char *json, DbTenantsDoneFn cb, void *arg, Err *err)
{
    if (!json_arg_ok(json, "scheduling_policy", err))
        return false;
    update_rows(pool, SQL_SET_SCHEDULING_POLICY, tenant, shard, true, json, cb, arg);
    return true;
}

static const char SQL_SET_PREFERRED_AZ[] =
    "UPDATE tenant_shards SET preferred_az_id = $4" SHARD_FILTER;

void db_tenants_set_preferred_az(DbPool *pool, const TenantId *tenant, const ShardIndex *shard,
                                 const char *az, DbTenantsDoneFn cb, void *arg)
{
    update_rows(pool, SQL_SET_PREFERRED_AZ, tenant, shard, true, az, cb, arg);
}

static const char SQL_DETACH[] =
    "UPDATE tenant_shards SET generation_pageserver = NULL" SHARD_FILTER;

void db_tenants_detach(DbPool *pool, const TenantId *tenant, const ShardIndex *shard,
                       DbTenantsDoneFn cb, void *arg)
{
    update_rows(pool, SQL_DETACH, tenant, shard, false, NULL, cb, arg);
}

/* ---- delete ---- */

/* Import rows go with the tenant, so that a restart does not try to finish an import of a
 * tenant that no longer exists. */
static const char SQL_DELETE_IMPORTS[] = "DELETE FROM timeline_imports WHERE tenant_id = $1";
static const char SQL_DELETE_SHARDS[] = "DELETE FROM tenant_shards WHERE tenant_id = $1";

static bool delete_check(const PGresult *r, void *arg, Err *err)
{
    TenantOp *op = arg;
    if (affected(r) > 0)
        return true;
    char tenant[ID_STR_SIZE];
    tenant_id_format(&op->tenant, tenant);
    err_set(err, ERR_NOT_FOUND, "tenant %s not found", tenant);
    return false;
}

static void delete_done(const DbResult *res, void *arg)
{
    TenantOp *op = arg;
    op->done_cb(res->ok ? NULL : &res->err, op->arg);
    free(op);
}

void db_tenants_delete(DbPool *pool, const TenantId *tenant, DbTenantsDoneFn cb, void *arg)
{
    char id[ID_STR_SIZE];
    tenant_id_format(tenant, id);
    const char *const params[] = {id};
    const DbStatement stmts[] = {
        {.sql = SQL_DELETE_IMPORTS, .nparams = 1, .params = params},
        {.sql = SQL_DELETE_SHARDS, .nparams = 1, .params = params, .check = delete_check},
    };
    TenantOp *op = op_new(arg);
    op->done_cb = cb;
    op->tenant = *tenant;
    db_txn(pool, stmts, 2, delete_done, op);
}

/* ---- shard split ---- */

/* How many rows, and how many of them splitting, the tenant has per shard count. */
static const char SQL_SPLIT_SUMMARY[] =
    "SELECT shard_count, count(*), count(*) FILTER (WHERE splitting <> 0) "
    "FROM tenant_shards WHERE tenant_id = $1 GROUP BY shard_count ORDER BY shard_count";

/* split_check: the tenant's rows allow this split step (see db_tenants.h). */
static bool split_check(const PGresult *r, void *arg, Err *err)
{
    TenantOp *op = arg;
    char tenant[ID_STR_SIZE];
    tenant_id_format(&op->tenant, tenant);
    int rows = PQntuples(r);
    if (rows == 0) {
        err_set(err, ERR_NOT_FOUND, "tenant %s not found", tenant);
        return false;
    }
    uint64_t parents = 0, parents_splitting = 0, children = 0;
    for (int i = 0; i < rows; i++) {
        uint64_t count, n, splitting;
        if (!u64_at(r, i, 0, 0, UINT8_MAX, &count, err) ||
            !u64_at(r, i, 1, 0, UINT64_MAX, &n, err) ||
            !u64_at(r, i, 2, 0, UINT64_MAX, &splitting, err))
            return false;
        if ((int)count == op->old_count) {
            parents = n;
            parents_splitting = splitting;
        } else if ((int)count == op->new_count) {
            children = n;
        } else {
            err_set(err, ERR_CONFLICT, "tenant %s has shards of count %" PRIu64 ", not %d or %d",
                    tenant, count, op->old_count, op->new_count);
            return false;
        }
    }
    uint64_t want_parents = op->old_count > 0 ? (uint64_t)op->old_count : 1;
    switch (op->split) {
    case SPLIT_BEGIN:
        if (parents_splitting > 0 || children > 0) {
            err_set(err, ERR_CONFLICT, "tenant %s: a shard split is already in progress", tenant);
            return false;
        }
        if (parents != want_parents) {
            err_set(err, ERR_CONFLICT,
                    "tenant %s has %" PRIu64 " shards of count %d, expected %" PRIu64, tenant,
                    parents, op->old_count, want_parents);
            return false;
        }
        return true;
    case SPLIT_COMPLETE:
        if (children != (uint64_t)op->new_count) {
            err_set(err, ERR_CONFLICT,
                    "tenant %s: cannot complete the split: %" PRIu64 " of %d child shards exist",
                    tenant, children, op->new_count);
            return false;
        }
        return true;
    case SPLIT_ABORT:
        if (parents != want_parents) {
            err_set(err, ERR_CONFLICT,
                    "tenant %s: cannot abort the split: %" PRIu64 " of %" PRIu64
                    " parent shards left (the split completed)",
                    tenant, parents, want_parents);
            return false;
        }
        return true;
    }
    return false;
}

static const char SQL_SPLIT_MARK_PARENTS[] =
    "UPDATE tenant_shards SET splitting = 1 WHERE tenant_id = $1 AND shard_count = $2::integer";

/* Child n copies parent n % max(old, 1); the stripe size is the new one when given. */
static const char SQL_SPLIT_INSERT_CHILDREN[] =
    "INSERT INTO tenant_shards (tenant_id, shard_number, shard_count, shard_stripe_size, "
    "generation, generation_pageserver, placement_policy, splitting, config, scheduling_policy, "
    "preferred_az_id) "
    "SELECT p.tenant_id, c.n, $3::integer, COALESCE($4::integer, p.shard_stripe_size), "
    "p.generation, p.generation_pageserver, p.placement_policy, 1, p.config, "
    "p.scheduling_policy, p.preferred_az_id "
    "FROM generate_series(0, $3::integer - 1) AS c(n) JOIN tenant_shards p "
    "ON p.tenant_id = $1 AND p.shard_count = $2::integer "
    "AND p.shard_number = c.n % greatest($2::integer, 1) "
    "RETURNING " SHARD_COLUMNS;

static bool split_children_check(const PGresult *r, void *arg, Err *err)
{
    TenantOp *op = arg;
    if (PQntuples(r) == op->new_count)
        return true;
    err_set(err, ERR_INTERNAL, "shard split inserted %d children, expected %d", PQntuples(r),
            op->new_count);
    return false;
}

/* Parents (complete) or children (abort) go away. */
static const char SQL_SPLIT_DELETE_COUNT[] =
    "DELETE FROM tenant_shards WHERE tenant_id = $1 AND shard_count = $2::integer";

/* The surviving rows (children on complete, parents on abort) are no longer splitting. */
static const char SQL_SPLIT_CLEAR[] = "UPDATE tenant_shards SET splitting = 0 "
                                      "WHERE tenant_id = $1 AND shard_count = $2::integer "
                                      "RETURNING " SHARD_COLUMNS;

/* split_args_ok: every child must have exactly one parent (child n <- parent n % parents), and
 * a split must add shards. */
static bool split_args_ok(ShardCount old_count, ShardCount new_count, Err *err)
{
    unsigned parents = old_count > 0 ? old_count : 1;
    if (new_count <= parents || new_count % parents != 0) {
        err_set(err, ERR_BAD_REQUEST,
                "cannot split %u shards into %u: the new count must be a larger multiple",
                (unsigned)parents, (unsigned)new_count);
        return false;
    }
    return true;
}

/* split_run: the one transaction of a split step: the summary check, then the step's writes. The
 * callback gets the rows of the last statement (children, or parents on abort). */
static void split_run(DbPool *pool, SplitKind kind, const TenantId *tenant, ShardCount old_count,
                      ShardCount new_count, uint32_t new_stripe, DbShardsFn cb, void *arg)
{
    char id[ID_STR_SIZE], old_text[INT_TEXT_SIZE], new_text[INT_TEXT_SIZE], stripe[INT_TEXT_SIZE];
    tenant_id_format(tenant, id);
    snprintf(old_text, sizeof(old_text), "%u", (unsigned)old_count);
    snprintf(new_text, sizeof(new_text), "%u", (unsigned)new_count);
    snprintf(stripe, sizeof(stripe), "%" PRIu32, new_stripe);
    const char *const tenant_only[] = {id};
    const char *const with_old[] = {id, old_text};
    const char *const with_new[] = {id, new_text};
    const char *const children[] = {id, old_text, new_text, new_stripe > 0 ? stripe : NULL};
    DbStatement stmts[3] = {
        {.sql = SQL_SPLIT_SUMMARY, .nparams = 1, .params = tenant_only, .check = split_check},
    };
    switch (kind) {
    case SPLIT_BEGIN:
        stmts[1] = (DbStatement){.sql = SQL_SPLIT_MARK_PARENTS, .nparams = 2, .params = with_old};
        stmts[2] = (DbStatement){.sql = SQL_SPLIT_INSERT_CHILDREN,
                                 .nparams = 4,
                                 .params = children,
                                 .check = split_children_check};
        break;
    case SPLIT_COMPLETE:
        stmts[1] = (DbStatement){.sql = SQL_SPLIT_DELETE_COUNT, .nparams = 2, .params = with_old};
        stmts[2] = (DbStatement){.sql = SQL_SPLIT_CLEAR, .nparams = 2, .params = with_new};
        break;
    case SPLIT_ABORT:
        stmts[1] = (DbStatement){.sql = SQL_SPLIT_DELETE_COUNT, .nparams = 2, .params = with_new};
        stmts[2] = (DbStatement){.sql = SQL_SPLIT_CLEAR, .nparams = 2, .params = with_old};
        break;
    }
    TenantOp *op = op_new(arg);
    op->shards_cb = cb;
    op->tenant = *tenant;
    op->split = kind;
    op->old_count = old_count;
    op->new_count = new_count;
    op->rows_stmt = 2;
    db_txn(pool, stmts, 3, shards_done, op);
}

bool db_tenants_split_begin(DbPool *pool, const TenantId *tenant, ShardCount old_count,
                            ShardCount new_count, uint32_t new_stripe_size, DbShardsFn cb,
                            void *arg, Err *err)
{
    if (!split_args_ok(old_count, new_count, err))
        return false;
    if (new_stripe_size > INT32_MAX) {
        err_set(err, ERR_BAD_REQUEST, "stripe size %" PRIu32 " out of range", new_stripe_size);
        return false;
    }
    split_run(pool, SPLIT_BEGIN, tenant, old_count, new_count, new_stripe_size, cb, arg);
    return true;
}

bool db_tenants_split_complete(DbPool *pool, const TenantId *tenant, ShardCount old_count,
                               ShardCount new_count, DbShardsFn cb, void *arg, Err *err)
{
    if (!split_args_ok(old_count, new_count, err))
        return false;
    split_run(pool, SPLIT_COMPLETE, tenant, old_count, new_count, 0, cb, arg);
    return true;
}

bool db_tenants_split_abort(DbPool *pool, const TenantId *tenant, ShardCount old_count,
                            ShardCount new_count, DbShardsFn cb, void *arg, Err *err)
{
    if (!split_args_ok(old_count, new_count, err))
        return false;
    split_run(pool, SPLIT_ABORT, tenant, old_count, new_count, 0, cb, arg);
    return true;
}
