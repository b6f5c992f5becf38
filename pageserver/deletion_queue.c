/*
 * deletion_queue.c: persisted, validated remote deletions.
 *
 * The queue is a small state machine driven on the loop thread (DQ_FSM below, shared/fsm.h; its
 * diagram is in docs/pageserver.md): from IDLE it persists pending objects, validates lists and
 * LSN updates (then writes the validated lists), or executes a validated list, and returns to IDLE.
 *
 * One phase runs at a time, in that priority, so that a list is always on disk before it is
 * validated and validated (durably) before anything in it is deleted. dq_step() starts the next
 * phase; it runs after every push (through a zero-delay event that coalesces the pushes of one
 * loop iteration), after every phase and on a periodic tick that also retries failed phases.
 *
 * Flush waiters compare counters: objects pushed / persisted / resolved (executed or dropped) and
 * LSN updates pushed / resolved. Work is FIFO, so "resolved >= pushed at the time of the flush"
 * means everything the flush covers is done.
 */
#include "pageserver/deletion_queue.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "shared/failpoint.h"
#include "shared/fsm.h"
#include "shared/fsutil.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/remote_storage.h"
#include "shared/str.h"
#include "shared/worker_pool.h"

#include "pageserver/app.h"
#include "pageserver/defaults.h"

/* ---- lists ---- */

void deletion_list_init(DeletionList *l)
{
    memset(l, 0, sizeof(*l));
}

void deletion_list_finish(DeletionList *l)
{
    for (size_t i = 0; i < l->n_items; i++) {
        for (size_t k = 0; k < l->items[i].n_objects; k++)
            free(l->items[i].objects[k]);
        free(l->items[i].objects);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static DeletionItem *list_item(DeletionList *l, const TenantShardId *tsid, Generation gen)
{
    for (size_t i = 0; i < l->n_items; i++) {
        if (tsid_eq(&l->items[i].tsid, tsid) && l->items[i].gen == gen)
            return &l->items[i];
    }
    if (l->n_items == l->cap_items) {
        l->cap_items = l->cap_items ? l->cap_items * 2 : 4;
        l->items = xrealloc(l->items, l->cap_items * sizeof(*l->items));
    }
    DeletionItem *it = &l->items[l->n_items++];
    memset(it, 0, sizeof(*it));
    it->tsid = *tsid;
    it->gen = gen;
    return it;
}

void deletion_list_add(DeletionList *l, const TenantShardId *tsid, Generation gen, const char *key)
{
    DeletionItem *it = list_item(l, tsid, gen);
    if (it->n_objects == it->cap_objects) {
        it->cap_objects = it->cap_objects ? it->cap_objects * 2 : 8;
        it->objects = xrealloc(it->objects, it->cap_objects * sizeof(char *));
    }
    it->objects[it->n_objects++] = xstrdup(key);
}

size_t deletion_list_object_count(const DeletionList *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n_items; i++)
        n += l->items[i].n_objects;
    return n;
}

char *deletion_list_serialize(const DeletionList *l)
{
    json_t *items = json_array();
    for (size_t i = 0; i < l->n_items; i++) {
        const DeletionItem *it = &l->items[i];
        json_t *objs = json_array();
        for (size_t k = 0; k < it->n_objects; k++)
            json_array_append_new(objs, json_string(it->objects[k]));
        json_array_append_new(items, json_pack("{s:o,s:o,s:o}", "tenant_shard_id",
                                               json_from_tsid(&it->tsid), "generation",
                                               json_from_generation(it->gen), "objects", objs));
    }
    json_t *root = json_pack("{s:i,s:I,s:o}", "version", DELETION_FORMAT_VERSION, "sequence",
                             (json_int_t)l->sequence, "items", items);
    char *text = json_dumps_compact(root);
    json_decref(root);
    return text;
}

bool deletion_list_parse(const char *text, size_t len, DeletionList *out, Err *err)
{
    deletion_list_init(out);
    json_t *root = NULL;
    if (!json_parse_text(text, len, &root, err))
        return false;
    uint64_t seq = 0;
    uint32_t version = 0;
    const json_t *items = json_object_get(root, "items");
    if (!json_get_u32(root, "version", &version, true, NULL, err) ||
        !json_get_u64(root, "sequence", &seq, true, NULL, err))
        goto fail;
    if (version != DELETION_FORMAT_VERSION) {
        err_set(err, ERR_BAD_REQUEST, "deletion list: unknown version %u", version);
        goto fail;
    }
    if (!json_is_array(items)) {
        err_set(err, ERR_BAD_REQUEST, "deletion list: \"items\" must be an array");
        goto fail;
    }
    out->sequence = seq;
    for (size_t i = 0; i < json_array_size(items); i++) {
        const json_t *it = json_array_get(items, i);
        TenantShardId tsid;
        Generation gen = GENERATION_NONE;
        const json_t *objs = json_object_get(it, "objects");
        if (!json_get_tsid(it, "tenant_shard_id", &tsid, true, NULL, err) ||
            !json_get_generation(it, "generation", &gen, false, NULL, err))
            goto fail;
        if (!json_is_array(objs)) {
            err_set(err, ERR_BAD_REQUEST, "deletion list: items[%zu].objects must be an array", i);
            goto fail;
        }
        for (size_t k = 0; k < json_array_size(objs); k++) {
            const char *key = json_string_value(json_array_get(objs, k));
            if (key == NULL || !remote_key_validate(key, err)) {
                if (key == NULL)
                    err_set(err, ERR_BAD_REQUEST, "deletion list: object %zu is not a string", k);
                goto fail;
            }
            deletion_list_add(out, &tsid, gen, key);
        }
    }
    json_decref(root);
    return true;
fail:
    err_prefix(err, "deletion list: ");
    json_decref(root);
    deletion_list_finish(out);
    return false;
}

size_t deletion_list_drop_invalid(DeletionList *l, const ValidateItem *answers, size_t n)
{
    size_t dropped = 0, w = 0;
    for (size_t i = 0; i < l->n_items; i++) {
        DeletionItem *it = &l->items[i];
        bool valid = false;
        for (size_t k = 0; k < n && !valid; k++)
            valid = answers[k].valid && answers[k].gen == it->gen &&
                    tsid_eq(&answers[k].tsid, &it->tsid);
        if (valid) {
            l->items[w++] = *it;
            continue;
        }
        dropped += it->n_objects;
        for (size_t k = 0; k < it->n_objects; k++)
            free(it->objects[k]);
        free(it->objects);
    }
    l->n_items = w;
    return dropped;
}

void deletion_list_file_name(uint64_t seq, char *out, size_t cap)
{
    str_printf(out, cap, "%016" PRIx64 "%s", seq, DELETION_LIST_SUFFIX);
}

bool deletion_list_file_parse(const char *name, uint64_t *seq)
{
    if (strlen(name) != 16 + strlen(DELETION_LIST_SUFFIX) ||
        strcmp(name + 16, DELETION_LIST_SUFFIX) != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = (v << 4) | (uint64_t)d;
    }
    *seq = v;
    return true;
}

char *deletion_header_serialize(uint64_t validated_sequence)
{
    json_t *root = json_pack("{s:i,s:I}", "version", DELETION_FORMAT_VERSION, "validated_sequence",
                             (json_int_t)validated_sequence);
    char *text = json_dumps_compact(root);
    json_decref(root);
    return text;
}

bool deletion_header_parse(const char *text, size_t len, uint64_t *validated_sequence, Err *err)
{
    json_t *root = NULL;
    if (!json_parse_text(text, len, &root, err))
        return false;
    uint32_t version = 0;
    uint64_t seq = 0;
    bool ok = json_get_u32(root, "version", &version, true, NULL, err) &&
              json_get_u64(root, "validated_sequence", &seq, true, NULL, err);
    if (ok && version != DELETION_FORMAT_VERSION) {
        err_set(err, ERR_BAD_REQUEST, "deletion header: unknown version %u", version);
        ok = false;
    }
    json_decref(root);
    if (ok)
        *validated_sequence = seq;
    return ok;
}

/* ---- the queue ---- */

typedef enum DqPhase {
    DQ_IDLE,
    DQ_PERSISTING,
    DQ_VALIDATING,
    DQ_WRITING_VALIDATED,
    DQ_EXECUTING,
    DQ_PHASE_COUNT
} DqPhase;

static const char *const DQ_PHASE_NAMES[DQ_PHASE_COUNT] = {
    [DQ_IDLE] = "Idle",
    [DQ_PERSISTING] = "Persisting",
    [DQ_VALIDATING] = "Validating",
    [DQ_WRITING_VALIDATED] = "WritingValidated",
    [DQ_EXECUTING] = "Executing",
};

static const FsmTransition DQ_TRANSITIONS[] = {
    {DQ_IDLE, DQ_PERSISTING, "pending objects"},
    {DQ_PERSISTING, DQ_IDLE, "list written, or failed"},
    {DQ_IDLE, DQ_VALIDATING, "unvalidated lists or LSN updates"},
    {DQ_VALIDATING, DQ_WRITING_VALIDATED, "generations answered"},
    {DQ_WRITING_VALIDATED, DQ_IDLE, "lists and header written, or failed"},
    {DQ_IDLE, DQ_EXECUTING, "a validated list"},
    {DQ_EXECUTING, DQ_IDLE, "objects deleted, or failed"},
};

static const FsmDef DQ_FSM = {
    .name = "deletion_queue",
    .doc = "docs/pageserver.md",
    .state_names = DQ_PHASE_NAMES,
    .n_states = DQ_PHASE_COUNT,
    .initial = DQ_IDLE,
    .transitions = DQ_TRANSITIONS,
    .n_transitions = FSM_COUNT(DQ_TRANSITIONS),
};
FSM_REGISTER(DQ_FSM)

typedef struct PersistedList {
    DeletionList list;
    bool validated;
} PersistedList;

typedef struct LsnUpdate {
    TenantShardId tsid;
    Generation gen;
    TimelineId tl;
    Lsn lsn;
} LsnUpdate;

typedef struct FlushWaiter {
    bool execute;
    uint64_t objects_target;
    uint64_t lsn_target;
    DeletionFlushFn fn;
    void *arg;
    struct FlushWaiter *next;
} FlushWaiter;

struct DeletionQueue {
    PageserverApp *app;
    DeletionLsnFn on_lsn;
    void *lsn_arg;
    char dir[PATH_MAX];
    DeletionList pending;
    PersistedList **lists; /* ascending sequence */
    size_t n_lists, cap_lists;
    uint64_t next_seq;
    uint64_t validated_seq;
    LsnUpdate *lsn;
    size_t n_lsn, cap_lsn;
    size_t lsn_in_validation;             /* the first n of lsn[] are being validated */
    uint64_t pushed, persisted, resolved; /* objects */
    uint64_t lsn_pushed, lsn_resolved;
    FlushWaiter *waiters;
    DqPhase phase;
    bool stopped;
    struct event *tick;
    LoopDeferItem kick; /* a step soon, on app->defer */
    int failures;       /* consecutive phase failures, for log throttling */
};

static void dq_step(DeletionQueue *dq);

static void dq_update_depth(DeletionQueue *dq)
{
    metric_gauge_set(dq->app->m.deletion_queue_depth, (double)(dq->pushed - dq->resolved));
}

size_t deletion_queue_depth(const DeletionQueue *dq)
{
    return (size_t)(dq->pushed - dq->resolved);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    dq_step(arg);
}

static void on_kick(void *arg)
{
    dq_step(arg);
}

DeletionQueue *deletion_queue_new(PageserverApp *app, DeletionLsnFn on_lsn, void *lsn_arg)
{
    DeletionQueue *dq = xcalloc(1, sizeof(*dq));
    dq->app = app;
    dq->on_lsn = on_lsn;
    dq->lsn_arg = lsn_arg;
    str_printf(dq->dir, sizeof(dq->dir), "%s/%s", app->cfg.workdir, PAGESERVER_DELETION_DIR);
    deletion_list_init(&dq->pending);
    dq->next_seq = 1;
    dq->tick = event_new(app->base, -1, EV_PERSIST, on_tick, dq);
    loop_defer_item_init(&dq->kick, on_kick, dq);
    return dq;
}

static void dq_append_list(DeletionQueue *dq, PersistedList *pl)
{
    if (dq->n_lists == dq->cap_lists) {
        dq->cap_lists = dq->cap_lists ? dq->cap_lists * 2 : 8;
        dq->lists = xrealloc(dq->lists, dq->cap_lists * sizeof(*dq->lists));
    }
    size_t i = dq->n_lists++;
    while (i > 0 && dq->lists[i - 1]->list.sequence > pl->list.sequence) {
        dq->lists[i] = dq->lists[i - 1];
        i--;
    }
    dq->lists[i] = pl;
}

static void list_path(const DeletionQueue *dq, uint64_t seq, char *out, size_t cap)
{
    char name[64];
    deletion_list_file_name(seq, name, sizeof(name));
    str_printf(out, cap, "%s/%s", dq->dir, name);
}

bool deletion_queue_load(DeletionQueue *dq, Err *err)
{
    char path[PATH_MAX];
    str_printf(path, sizeof(path), "%s/%s", dq->dir, DELETION_HEADER_FILE);
    char *text = NULL;
    size_t len = 0;
    Err e = {0};
    if (fs_read_file(path, PAGESERVER_DELETION_FILE_MAX_BYTES, &text, &len, &e)) {
        if (!deletion_header_parse(text, len, &dq->validated_seq, &e)) {
            log_err(&e, "deletion queue header is corrupt; re-validating every list");
            dq->validated_seq = 0;
        }
        free(text);
    } else if (e.code != ERR_NOT_FOUND) {
        *err = e;
        return false;
    }
    DIR *d = opendir(dq->dir);
    if (d == NULL) {
        err_set(err, ERR_INTERNAL, "cannot open %s: %m", dq->dir);
        return false;
    }
    struct dirent *de;
    uint64_t max_seq = dq->validated_seq;
    while ((de = readdir(d)) != NULL) {
        uint64_t seq;
        if (!deletion_list_file_parse(de->d_name, &seq))
            continue;
        list_path(dq, seq, path, sizeof(path));
        err_clear(&e);
        PersistedList *pl = xcalloc(1, sizeof(*pl));
        if (!fs_read_file(path, PAGESERVER_DELETION_FILE_MAX_BYTES, &text, &len, &e) ||
            !deletion_list_parse(text, len, &pl->list, &e) || pl->list.sequence != seq) {
            if (!err_is_set(&e))
                err_set(&e, ERR_BAD_REQUEST, "sequence does not match the file name");
            log_err(&e, "dropping a corrupt deletion list (its objects leak)");
            log_warn("removing %s", path);
            if (unlink(path) != 0)
                log_warn("cannot remove %s: %m", path);
            free(text);
            text = NULL;
            deletion_list_finish(&pl->list); /* parsed but mismatched: items were allocated */
            free(pl);
            continue;
        }
        free(text);
        text = NULL;
        pl->validated = seq <= dq->validated_seq;
        size_t n = deletion_list_object_count(&pl->list);
        dq->pushed += n;
        dq->persisted += n;
        if (seq > max_seq)
            max_seq = seq;
        dq_append_list(dq, pl);
    }
    closedir(d);
    dq->next_seq = max_seq + 1;
    if (dq->n_lists > 0)
        log_info("deletion queue: %zu lists from before the restart (validated up to %" PRIu64 ")",
                 dq->n_lists, dq->validated_seq);
    dq_update_depth(dq);
    return true;
}

void deletion_queue_start(DeletionQueue *dq)
{
    struct timeval tv = {PAGESERVER_DELETION_TICK_MS / 1000,
                         (PAGESERVER_DELETION_TICK_MS % 1000) * 1000};
    event_add(dq->tick, &tv);
    (void)loop_defer_item(dq->app->defer, &dq->kick);
}

static void dq_fail_waiters(DeletionQueue *dq)
{
    Err err = {0};
    err_set(&err, ERR_UNAVAILABLE, "the pageserver is shutting down");
    while (dq->waiters != NULL) {
        FlushWaiter *w = dq->waiters;
        dq->waiters = w->next;
        w->fn(w->arg, &err);
        free(w);
    }
}

void deletion_queue_stop(DeletionQueue *dq)
{
    if (dq == NULL || dq->stopped)
        return;
    dq->stopped = true;
    event_del(dq->tick);
    loop_defer_cancel(dq->app->defer, &dq->kick);
    dq_fail_waiters(dq);
}

void deletion_queue_free(DeletionQueue *dq)
{
    if (dq == NULL)
        return;
    deletion_queue_stop(dq);
    event_free(dq->tick);
    for (size_t i = 0; i < dq->n_lists; i++) {
        deletion_list_finish(&dq->lists[i]->list);
        free(dq->lists[i]);
    }
    free(dq->lists);
    deletion_list_finish(&dq->pending);
    free(dq->lsn);
    free(dq);
}

static void dq_kick(DeletionQueue *dq)
{
    if (!dq->stopped)
        (void)loop_defer_item(dq->app->defer, &dq->kick);
}

void deletion_queue_push(DeletionQueue *dq, const TenantShardId *tsid, Generation gen,
                         const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        deletion_list_add(&dq->pending, tsid, gen, keys[i]);
    dq->pushed += n;
    dq_update_depth(dq);
    dq_kick(dq);
}

void deletion_queue_push_lsn(DeletionQueue *dq, const TenantShardId *tsid, Generation gen,
                             const TimelineId *tl, Lsn lsn)
{
    if (dq->n_lsn == dq->cap_lsn) {
        dq->cap_lsn = dq->cap_lsn ? dq->cap_lsn * 2 : 16;
        dq->lsn = xrealloc(dq->lsn, dq->cap_lsn * sizeof(*dq->lsn));
    }
    dq->lsn[dq->n_lsn++] = (LsnUpdate){.tsid = *tsid, .gen = gen, .tl = *tl, .lsn = lsn};
    dq->lsn_pushed++;
    dq_kick(dq);
}

static bool waiter_done(const DeletionQueue *dq, const FlushWaiter *w)
{
    if (!w->execute)
        return dq->persisted >= w->objects_target;
    return dq->resolved >= w->objects_target && dq->lsn_resolved >= w->lsn_target;
}

static void dq_check_waiters(DeletionQueue *dq)
{
    FlushWaiter **p = &dq->waiters;
    while (*p != NULL) {
        FlushWaiter *w = *p;
        if (!waiter_done(dq, w)) {
            p = &w->next;
            continue;
        }
        *p = w->next;
        w->fn(w->arg, NULL);
        free(w);
        p = &dq->waiters; /* the callback may have changed the list */
    }
}

void deletion_queue_flush(DeletionQueue *dq, bool execute, DeletionFlushFn done, void *arg)
{
    if (dq->stopped) {
        Err err = {0};
        err_set(&err, ERR_UNAVAILABLE, "the pageserver is shutting down");
        done(arg, &err);
        return;
    }
    FlushWaiter *w = xcalloc(1, sizeof(*w));
    w->execute = execute;
    w->objects_target = dq->pushed;
    w->lsn_target = dq->lsn_pushed;
    w->fn = done;
    w->arg = arg;
    w->next = dq->waiters;
    dq->waiters = w;
    dq_check_waiters(dq);
    dq_kick(dq);
}

static void dq_phase_failed(DeletionQueue *dq, const char *what, const Err *err)
{
    dq->failures++;
    if (dq->failures == 1 || dq->failures % 20 == 0)
        log_err(err, what);
    (void)fsm_set_state(&DQ_FSM, &dq->phase, DQ_IDLE, NULL);
}

/* Every job of the queue: IO, no deadline (a failed phase is redone at the next tick; only shutdown
 * cancels, leaving persisted lists for the restart and leaking what was not persisted yet). */
static const WorkerJobSpec DQ_JOB = {.cls = WORKER_CLASS_IO};

/* -- PERSISTING -- */

typedef struct PersistJob {
    DeletionQueue *dq;
    PersistedList *pl;
    char path[PATH_MAX];
    char *text;
    bool ok;
    Err err;
} PersistJob;

static void persist_work(WorkerJob *job, void *arg)
{
    PersistJob *j = arg;
    j->ok = failpoint_check("deletion-queue-persist", &j->err) &&
            fs_write_atomic(j->path, j->text, strlen(j->text), &j->err);
}

static void persist_done(void *arg, WorkerOutcome outcome)
{
    PersistJob *j = arg;
    if (!worker_outcome_err(outcome, "deletion queue", &j->err))
        j->ok = false;
    DeletionQueue *dq = j->dq;
    free(j->text);
    if (!j->ok) {
        /* put the objects back in front of whatever was pushed meanwhile */
        DeletionList *old = &j->pl->list;
        for (size_t i = 0; i < dq->pending.n_items; i++) {
            DeletionItem *it = &dq->pending.items[i];
            for (size_t k = 0; k < it->n_objects; k++)
                deletion_list_add(old, &it->tsid, it->gen, it->objects[k]);
        }
        deletion_list_finish(&dq->pending);
        dq->pending = *old;
        dq->pending.sequence = 0;
        free(j->pl);
        dq_phase_failed(dq, "deletion queue: persisting a list", &j->err);
        free(j);
        return;
    }
    dq->failures = 0;
    dq->persisted += deletion_list_object_count(&j->pl->list);
    dq_append_list(dq, j->pl);
    free(j);
    (void)fsm_set_state(&DQ_FSM, &dq->phase, DQ_IDLE, NULL);
    dq_check_waiters(dq);
    dq_step(dq);
}

static void dq_start_persist(DeletionQueue *dq)
{
    PersistJob *j = xcalloc(1, sizeof(*j));
    j->dq = dq;
    j->pl = xcalloc(1, sizeof(*j->pl));
    j->pl->list = dq->pending;
    j->pl->list.sequence = dq->next_seq++;
    deletion_list_init(&dq->pending);
    list_path(dq, j->pl->list.sequence, j->path, sizeof(j->path));
    j->text = deletion_list_serialize(&j->pl->list);
    (void)fsm_set_state(&DQ_FSM, &dq->phase, DQ_PERSISTING, NULL);
    worker_pool_start(dq->app->workers, &DQ_JOB, persist_work, persist_done, j);
}

/* -- VALIDATING and WRITING_VALIDATED -- */

typedef struct ValidatedWrite {
    char path[PATH_MAX];
    char *text; /* NULL: the list became empty, remove the file */
} ValidatedWrite;

typedef struct ValidatedJob {
    DeletionQueue *dq;
    ValidatedWrite *writes;
    size_t n_writes;
    char header_path[PATH_MAX];
    char *header_text;
    uint64_t validated_seq;
    bool ok;
    Err err;
} ValidatedJob;

static void validated_work(WorkerJob *job, void *arg)
{
    ValidatedJob *j = arg;
    j->ok = true;
    for (size_t i = 0; i < j->n_writes && j->ok; i++) {
        ValidatedWrite *w = &j->writes[i];
        if (w->text != NULL) {
            j->ok = fs_write_atomic(w->path, w->text, strlen(w->text), &j->err);
        } else if (unlink(w->path) != 0 && errno != ENOENT) {
            err_set(&j->err, ERR_INTERNAL, "cannot remove %s: %m", w->path);
            j->ok = false;
        }
    }
    if (j->ok)
        j->ok = fs_write_atomic(j->header_path, j->header_text, strlen(j->header_text), &j->err);
}

static void dq_remove_empty_lists(DeletionQueue *dq)
{
    size_t w = 0;
    for (size_t i = 0; i < dq->n_lists; i++) {
        PersistedList *pl = dq->lists[i];
        if (pl->validated && pl->list.n_items == 0) {
            deletion_list_finish(&pl->list);
            free(pl);
            continue;
        }
        dq->lists[w++] = pl;
    }
    dq->n_lists = w;
}

static void validated_done(void *arg, WorkerOutcome outcome)
{
    ValidatedJob *j = arg;
    if (!worker_outcome_err(outcome, "deletion queue", &j->err))
        j->ok = false;
    DeletionQueue *dq = j->dq;
    bool ok = j->ok;
    if (ok) {
        dq->validated_seq = j->validated_seq;
        for (size_t i = 0; i < dq->n_lists; i++) {
            if (dq->lists[i]->list.sequence <= j->validated_seq)
                dq->lists[i]->validated = true;
        }
        dq_remove_empty_lists(dq);
        dq->failures = 0;
        (void)fsm_set_state(&DQ_FSM, &dq->phase, DQ_IDLE, NULL);
    } else {
        dq_phase_failed(dq, "deletion queue: recording validated lists", &j->err);
    }
    for (size_t i = 0; i < j->n_writes; i++)
        free(j->writes[i].text);
    free(j->writes);
    free(j->header_text);
    free(j);
    dq_update_depth(dq);
    dq_check_waiters(dq);
    if (ok)
        dq_step(dq);
}

/* on_validated: apply the answers: drop stale items from unvalidated lists, apply or drop the LSN
 * updates that were part of the request, then persist the filtered lists and the header. */
static void on_validated(void *arg, const ValidateItem *answers, size_t n)
{
    DeletionQueue *dq = arg;
    if (dq->stopped)
        return;
    ValidatedJob *j = xcalloc(1, sizeof(*j));
    j->dq = dq;
    j->validated_seq = dq->validated_seq;
    j->writes = xcalloc(dq->n_lists ? dq->n_lists : 1, sizeof(*j->writes));
    for (size_t i = 0; i < dq->n_lists; i++) {
        PersistedList *pl = dq->lists[i];
        if (pl->validated)
            continue;
        size_t dropped = deletion_list_drop_invalid(&pl->list, answers, n);
        if (dropped > 0) {
            log_warn("deletion queue: list %" PRIu64 ": %zu objects of stale generations dropped "
                     "(they leak, which is safe)",
                     pl->list.sequence, dropped);
            dq->resolved += dropped;
            metric_counter_add(dq->app->m.deletion_objects_dropped, dropped);
        }
        ValidatedWrite *w = &j->writes[j->n_writes++];
        list_path(dq, pl->list.sequence, w->path, sizeof(w->path));
        w->text = pl->list.n_items > 0 && dropped > 0 ? deletion_list_serialize(&pl->list) : NULL;
        if (w->text == NULL && pl->list.n_items > 0)
            j->n_writes--; /* unchanged: nothing to rewrite */
        if (pl->list.sequence > j->validated_seq)
            j->validated_seq = pl->list.sequence;
    }
    for (size_t i = 0; i < dq->lsn_in_validation; i++) {
        LsnUpdate *u = &dq->lsn[i];
        bool valid = false;
        for (size_t k = 0; k < n && !valid; k++)
            valid =
                answers[k].valid && answers[k].gen == u->gen && tsid_eq(&answers[k].tsid, &u->tsid);
        if (valid)
            dq->on_lsn(dq->lsn_arg, &u->tsid, &u->tl, u->lsn);
    }
    if (dq->lsn_in_validation > 0)
        memmove(dq->lsn, dq->lsn + dq->lsn_in_validation,
                (dq->n_lsn - dq->lsn_in_validation) * sizeof(*dq->lsn));
    dq->n_lsn -= dq->lsn_in_validation;
    dq->lsn_resolved += dq->lsn_in_validation;
    dq->lsn_in_validation = 0;

    str_printf(j->header_path, sizeof(j->header_path), "%s/%s", dq->dir, DELETION_HEADER_FILE);
    j->header_text = deletion_header_serialize(j->validated_seq);
    (void)fsm_set_state(&DQ_FSM, &dq->phase, DQ_WRITING_VALIDATED, NULL);
    worker_pool_start(dq->app->workers, &DQ_JOB, validated_work, validated_done, j);
}

static void add_pair(ValidateItem **items, size_t *n, size_t *cap, const TenantShardId *tsid,
                     Generation gen)
{
    for (size_t i = 0; i < *n; i++) {
        if ((*items)[i].gen == gen && tsid_eq(&(*items)[i].tsid, tsid))
            return;
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *items = xrealloc(*items, *cap * sizeof(**items));
    }
    (*items)[(*n)++] = (ValidateItem){.tsid = *tsid, .gen = gen, .valid = false};
}

static void dq_start_validate(DeletionQueue *dq)
{
    ValidateItem *items = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < dq->n_lists; i++) {
        if (dq->lists[i]->validated)
            continue;
        const DeletionList *l = &dq->lists[i]->list;
        for (size_t k = 0; k < l->n_items; k++)
            add_pair(&items, &n, &cap, &l->items[k].tsid, l->items[k].gen);
    }
    dq->lsn_in_validation = dq->n_lsn;
    for (size_t i = 0; i < dq->n_lsn; i++)
        add_pair(&items, &n, &cap, &dq->lsn[i].tsid, dq->lsn[i].gen);
    (void)fsm_set_state(&DQ_FSM, &dq->phase, DQ_VALIDATING, NULL);
    if (dq->app->cfg.control_plane_api[0] == '\0' || dq->app->storcon == NULL) {
        /* development mode: no controller to ask, every generation is the latest */
        for (size_t i = 0; i < n; i++)
            items[i].valid = true;
        on_validated(dq, items, n);
    } else {
        storcon_validate_start(dq->app->storcon, items, n, on_validated, dq);
    }
    free(items);
}

/* -- EXECUTING -- */

typedef struct ExecuteJob {
    DeletionQueue *dq;
    PersistedList *pl;
    char path[PATH_MAX];
    bool ok;
    Err err;
} ExecuteJob;

static void execute_work(WorkerJob *job, void *arg)
{
    ExecuteJob *j = arg;
    const DeletionList *l = &j->pl->list;
    j->ok = failpoint_check("deletion-queue-execute", &j->err);
    for (size_t i = 0; i < l->n_items && j->ok; i++) {
        const DeletionItem *it = &l->items[i];
        for (size_t k = 0; k < it->n_objects && j->ok; k += REMOTE_DELETE_MAX_KEYS) {
            size_t n = it->n_objects - k;
            if (n > REMOTE_DELETE_MAX_KEYS)
                n = REMOTE_DELETE_MAX_KEYS;
            j->ok = remote_delete_many(j->dq->app->remote, (const char *const *)it->objects + k, n,
                                       NULL, NULL, &j->err);
        }
    }
    if (j->ok && unlink(j->path) != 0 && errno != ENOENT) {
        err_set(&j->err, ERR_INTERNAL, "cannot remove %s: %m", j->path);
        j->ok = false;
    }
}

static void execute_done(void *arg, WorkerOutcome outcome)
{
    ExecuteJob *j = arg;
    if (!worker_outcome_err(outcome, "deletion queue", &j->err))
        j->ok = false;
    DeletionQueue *dq = j->dq;
    bool ok = j->ok;
    if (ok) {
        size_t n = deletion_list_object_count(&j->pl->list);
        for (size_t i = 0; i < dq->n_lists; i++) {
            if (dq->lists[i] == j->pl) {
                memmove(&dq->lists[i], &dq->lists[i + 1],
                        (dq->n_lists - i - 1) * sizeof(*dq->lists));
                dq->n_lists--;
                break;
            }
        }
        log_debug("deletion queue: list %" PRIu64 " executed (%zu objects)", j->pl->list.sequence,
                  n);
        dq->resolved += n;
        metric_counter_add(dq->app->m.deletion_objects_executed, n);
        deletion_list_finish(&j->pl->list);
        free(j->pl);
        dq->failures = 0;
        (void)fsm_set_state(&DQ_FSM, &dq->phase, DQ_IDLE, NULL);
    } else {
        dq_phase_failed(dq, "deletion queue: executing a list", &j->err);
    }
    free(j);
    dq_update_depth(dq);
    dq_check_waiters(dq);
    if (ok)
        dq_step(dq);
}

static void dq_start_execute(DeletionQueue *dq, PersistedList *pl)
{
    ExecuteJob *j = xcalloc(1, sizeof(*j));
    j->dq = dq;
    j->pl = pl;
    list_path(dq, pl->list.sequence, j->path, sizeof(j->path));
    (void)fsm_set_state(&DQ_FSM, &dq->phase, DQ_EXECUTING, NULL);
    worker_pool_start(dq->app->workers, &DQ_JOB, execute_work, execute_done, j);
}

static void dq_step(DeletionQueue *dq)
{
    if (dq->stopped || dq->phase != DQ_IDLE)
        return;
    if (dq->pending.n_items > 0) {
        dq_start_persist(dq);
        return;
    }
    bool unvalidated = dq->n_lsn > 0;
    for (size_t i = 0; i < dq->n_lists && !unvalidated; i++)
        unvalidated = !dq->lists[i]->validated;
    if (unvalidated) {
        dq_start_validate(dq);
        return;
    }
    if (dq->n_lists > 0) {
        dq_start_execute(dq, dq->lists[0]);
        return;
    }
    dq_check_waiters(dq);
}
