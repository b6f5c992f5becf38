/*
 * timeline_fanout.c: timeline create / delete on every shard of a tenant, and the generation
 * re-check around fan-outs (see timeline_fanout.h).
 *
 * One Fanout object per request, a state machine (FANOUT_FSM, shared/fsm.h; the exact table and
 * its diagram in docs/state-machines.md):
 *
 *   READ_BEFORE --> SHARD_ZERO --> OTHERS --> RECHECK --> DONE      (create)
 *   READ_BEFORE --> OTHERS --> SHARD_ZERO --> RECHECK --> DONE      (delete)
 *
 * (an unsharded tenant skips OTHERS; any error goes straight to DONE once the calls of the current
 * phase have all come back, so nothing is left running behind the reply). Within a phase every
 * shard has at most one call or poll timer outstanding; `pending` counts them.
 */
#include "storcon/timeline_fanout.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "shared/failpoint.h"
#include "shared/fsm.h"
#include "shared/log.h"
#include "shared/str.h"
#include "storcon/node.h"
#include "storcon/pageserver_client.h"
#include "storcon/passthrough.h"

typedef enum FanoutKind { FANOUT_CREATE, FANOUT_DELETE } FanoutKind;

typedef enum FanoutState {
    FANOUT_READ_BEFORE,
    FANOUT_SHARD_ZERO,
    FANOUT_OTHERS,
    FANOUT_RECHECK,
    FANOUT_DONE,
    FANOUT_STATE_COUNT
} FanoutState;

static const char *const FANOUT_STATE_NAMES[FANOUT_STATE_COUNT] = {
    "READ_BEFORE", "SHARD_ZERO", "OTHERS", "RECHECK", "DONE",
};

static const FsmTransition FANOUT_TRANSITIONS[] = {
    {FANOUT_READ_BEFORE, FANOUT_SHARD_ZERO, "create, or delete of an unsharded tenant"},
    {FANOUT_READ_BEFORE, FANOUT_OTHERS, "delete of a sharded tenant"},
    {FANOUT_READ_BEFORE, FANOUT_DONE, "shard map not read"},
    {FANOUT_SHARD_ZERO, FANOUT_OTHERS, "sharded create: shard 0 created"},
    {FANOUT_SHARD_ZERO, FANOUT_RECHECK, "last phase settled"},
    {FANOUT_SHARD_ZERO, FANOUT_DONE, "a shard failed"},
    {FANOUT_OTHERS, FANOUT_SHARD_ZERO, "delete: other shards deleted"},
    {FANOUT_OTHERS, FANOUT_RECHECK, "create: other shards created"},
    {FANOUT_OTHERS, FANOUT_DONE, "a shard failed"},
    {FANOUT_RECHECK, FANOUT_DONE, "generations re-checked"},
};

static const int FANOUT_TERMINAL[] = {FANOUT_DONE};

static const FsmDef FANOUT_FSM = {
    .name = "timeline_fanout",
    .doc = "docs/state-machines.md",
    .state_names = FANOUT_STATE_NAMES,
    .n_states = FANOUT_STATE_COUNT,
    .initial = FANOUT_READ_BEFORE,
    .terminal = FANOUT_TERMINAL,
    .n_terminal = FSM_COUNT(FANOUT_TERMINAL),
    .transitions = FANOUT_TRANSITIONS,
    .n_transitions = FSM_COUNT(FANOUT_TRANSITIONS),
};
FSM_REGISTER(FANOUT_FSM)

typedef struct Fanout Fanout;

typedef struct FanoutShard {
    Fanout *f;
    size_t index;
    struct event *poll_timer; /* delete: re-ask while the deletion runs */
} FanoutShard;

struct Fanout {
    FanoutKind kind;
    FanoutState state;
    Service *svc;
    struct event_base *base;
    TenantId tenant;
    TimelineId timeline;
    TimelineCreateSpec spec; /* create; import_pgdata not kept */
    ServiceJsonFn cb;
    void *arg;
    ServiceShardMapSnapshot before;
    FanoutShard *shards;
    size_t pending;
    Err err; /* first error of the current phase */
    json_t *shard0_info;
    int64_t deadline_ms; /* delete: monotonic */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fanout_step(Fanout *f);

/* fanout_set_state: every transition is checked against FANOUT_FSM and logged; an illegal one is
 * a bug here (logged and refused). */
static void fanout_set_state(Fanout *f, FanoutState to)
{
    (void)fsm_set_state(&FANOUT_FSM, &f->state, to, f->kind == FANOUT_CREATE ? "create" : "delete");
}

static void fanout_free(Fanout *f)
{
    if (f->shards != NULL) {
        for (size_t i = 0; i < f->before.n; i++) {
            if (f->shards[i].poll_timer != NULL)
                event_free(f->shards[i].poll_timer);
        }
        free(f->shards);
    }
    service_snapshot_finish(&f->before);
    json_decref(f->shard0_info);
    free(f);
}

/* fanout_finish: the one callback, then the object goes. */
static void fanout_finish(Fanout *f, const Err *err)
{
    fanout_set_state(f, FANOUT_DONE);
    if (err != NULL) {
        f->cb(err, NULL, f->arg);
    } else if (f->kind == FANOUT_CREATE) {
        json_t *info = f->shard0_info;
        f->shard0_info = NULL;
        f->cb(NULL, info, f->arg);
    } else {
        f->cb(NULL, json_object(), f->arg);
    }
    fanout_free(f);
}

/* shard_fail: remember the first error of the phase (the others are usually the same story). */
static void shard_fail(FanoutShard *fs, const Err *err)
{
    Fanout *f = fs->f;
    if (err_is_set(&f->err))
        return;
    f->err = *err;
    char tsid[TSID_STR_SIZE];
    tsid_format(&f->before.shards[fs->index].tsid, tsid);
    err_prefix(&f->err, "shard %s: ", tsid);
}

/* shard_settled: one outstanding call or timer of the phase is over. */
static void shard_settled(Fanout *f)
{
    if (--f->pending == 0)
        fanout_step(f);
}

static void shard_call(FanoutShard *fs);

static void on_create_done(const PageserverResult *res, void *arg)
{
    FanoutShard *fs = arg;
    Fanout *f = fs->f;
    if (!res->ok) {
        Err e = pageserver_client_translate_error(res->status, &res->err);
        shard_fail(fs, &e);
    } else if (fs->index == 0) {
        f->shard0_info = json_incref(res->timeline_info);
    }
    shard_settled(f);
}

static void on_poll_timer(evutil_socket_t fd, short what, void *arg)
{
    FanoutShard *fs = arg;
    shard_call(fs); /* the same outstanding unit continues */
}

static void on_delete_done(const PageserverResult *res, void *arg)
{
    FanoutShard *fs = arg;
    Fanout *f = fs->f;
    if (!res->ok) {
        Err e = pageserver_client_translate_error(res->status, &res->err);
        shard_fail(fs, &e);
        shard_settled(f);
        return;
    }
    switch (res->timeline_delete) {
    case PAGESERVER_TIMELINE_DELETE_GONE:
        break;
    case PAGESERVER_TIMELINE_DELETE_PRECONDITION: {
        Err e;
        err_clear(&e);
        err_set(&e, ERR_PRECONDITION_FAILED,
                "the pageserver refused the deletion (the timeline has children, "
                "or the shard is "
                "not there)%s%s",
                res->err.msg[0] ? ": " : "", res->err.msg);
        shard_fail(fs, &e);
        break;
    }
    case PAGESERVER_TIMELINE_DELETE_STARTED:
    case PAGESERVER_TIMELINE_DELETE_IN_PROGRESS:
    case PAGESERVER_TIMELINE_DELETE_COUNT:
    default:
        if (err_is_set(&f->err))
            break; /* another shard failed: stop polling */
        if (now_ms() + TIMELINE_FANOUT_DELETE_POLL_MS > f->deadline_ms) {
            Err e;
            err_clear(&e);
            err_set(&e, ERR_CONFLICT, "timeline deletion still in progress after %d s, retry",
                    TIMELINE_FANOUT_DELETE_TIMEOUT_MS / 1000);
            shard_fail(fs, &e);
            break;
        }
        if (fs->poll_timer == NULL)
            fs->poll_timer = evtimer_new(f->base, on_poll_timer, fs);
        struct timeval tv = {TIMELINE_FANOUT_DELETE_POLL_MS / 1000,
                             (TIMELINE_FANOUT_DELETE_POLL_MS % 1000) * 1000};
        evtimer_add(fs->poll_timer, &tv);
        return; /* still outstanding */
    }
    shard_settled(f);
}

/* shard_call: one call to the node the BEFORE snapshot names for this shard. A failure to even
 * build the target (the node vanished from memory or is Offline) settles the unit like a failed
 * call; so does the call's cancellation when its node goes Offline while it runs. */
static void shard_call(FanoutShard *fs)
{
    Fanout *f = fs->f;
    const ServiceShardLocation *loc = &f->before.shards[fs->index];
    HttpRetryPolicy retry = {
        .max_attempts = TIMELINE_FANOUT_CALL_ATTEMPTS,
        .base_ms = 200,
        .max_ms = 2000,
    };
    PageserverTarget t;
    char url[SERVICE_URL_SIZE];
    Err err;
    err_clear(&err);
    if (!service_pageserver_target(f->svc, loc->node, TIMELINE_FANOUT_CALL_TIMEOUT_MS, &retry, &t,
                                   url, &err)) {
        shard_fail(fs, &err); /* 503: the node is gone or Offline */
        shard_settled(f);
        return;
    }
    PageserverClient *pc = service_pageserver_client(f->svc);
    if (f->kind == FANOUT_CREATE) {
        json_t *body =
            timeline_fanout_create_body(&f->spec, fs->index == 0 ? NULL : f->shard0_info);
        (void)pageserver_client_timeline_create(pc, &t, &loc->tsid, body, on_create_done, fs);
        json_decref(body);
    } else {
        (void)pageserver_client_timeline_delete(pc, &t, &loc->tsid, &f->timeline, on_delete_done,
                                                fs);
    }
}

/* phase_start: call shards [first, last); the extra pending unit keeps a synchronous settle from
 * ending the phase before every call has started. */
static void phase_start(Fanout *f, size_t first, size_t last)
{
    err_clear(&f->err);
    f->pending = 1 + (last - first);
    for (size_t i = first; i < last; i++)
        shard_call(&f->shards[i]);
    shard_settled(f);
}

static void on_recheck_done(const Err *err, void *arg)
{
    fanout_finish(arg, err);
}

/* fanout_step: the phase that just ended (all its units settled) decides the next. */
static void fanout_step(Fanout *f)
{
    if (err_is_set(&f->err)) {
        Err e = f->err;
        fanout_finish(f, &e);
        return;
    }
    size_t n = f->before.n;
    switch (f->state) {
    case FANOUT_SHARD_ZERO:
        if (f->kind == FANOUT_CREATE && n > 1) {
            if (f->shard0_info == NULL) {
                Err e;
                err_clear(&e);
                err_set(&e, ERR_INTERNAL, "shard 0 returned no TimelineInfo");
                fanout_finish(f, &e);
                return;
            }
            fanout_set_state(f, FANOUT_OTHERS);
            phase_start(f, 1, n);
            return;
        }
        break;
    case FANOUT_OTHERS:
        if (f->kind == FANOUT_DELETE) {
            fanout_set_state(f, FANOUT_SHARD_ZERO);
            phase_start(f, 0, 1);
            return;
        }
        break;
    case FANOUT_READ_BEFORE:
    case FANOUT_RECHECK:
    case FANOUT_DONE:
    case FANOUT_STATE_COUNT:
    default:
        log_error("timeline fan-out: step in state %s", fsm_state_name(&FANOUT_FSM, f->state));
        abort();
    }
    fanout_set_state(f, FANOUT_RECHECK);
    timeline_fanout_recheck(f->svc, f->base, &f->before, on_recheck_done, f);
}

static void on_before(const Err *err, const ServiceShardMapSnapshot *snap, void *arg)
{
    Fanout *f = arg;
    if (err != NULL) {
        fanout_finish(f, err);
        return;
    }
    timeline_fanout_snapshot_copy(&f->before, snap);
    f->shards = xcalloc(f->before.n, sizeof(*f->shards));
    for (size_t i = 0; i < f->before.n; i++) {
        f->shards[i].f = f;
        f->shards[i].index = i;
    }
    f->deadline_ms = now_ms() + TIMELINE_FANOUT_DELETE_TIMEOUT_MS;
    if (f->kind == FANOUT_DELETE && f->before.n > 1) {
        fanout_set_state(f, FANOUT_OTHERS);
        phase_start(f, 1, f->before.n);
    } else {
        fanout_set_state(f, FANOUT_SHARD_ZERO);
        phase_start(f, 0, 1);
    }
}

static Fanout *fanout_new(FanoutKind kind, Service *svc, struct event_base *base,
                          const TenantId *tenant, ServiceJsonFn cb, void *arg)
{
    Fanout *f = xcalloc(1, sizeof(*f));
    f->kind = kind;
    f->state = FANOUT_READ_BEFORE;
    f->svc = svc;
    f->base = base;
    f->tenant = *tenant;
    f->cb = cb;
    f->arg = arg;
    return f;
}

void timeline_fanout_create(Service *svc, struct event_base *base, const TenantId *tenant,
                            const TimelineCreateSpec *spec, ServiceJsonFn cb, void *arg)
{
    Fanout *f = fanout_new(FANOUT_CREATE, svc, base, tenant, cb, arg);
    f->spec = *spec;
    f->spec.import_pgdata = NULL;
    f->timeline = spec->new_timeline_id;
    service_tenant_snapshot_db(svc, tenant, on_before, f);
}

void timeline_fanout_delete(Service *svc, struct event_base *base, const TenantId *tenant,
                            const TimelineId *timeline, ServiceJsonFn cb, void *arg)
{
    Fanout *f = fanout_new(FANOUT_DELETE, svc, base, tenant, cb, arg);
    f->timeline = *timeline;
    service_tenant_snapshot_db(svc, tenant, on_before, f);
}

/* ---- request decoding ---- */

static const JsonField CREATE_FIELDS[] = {
    JSON_FIELD(TimelineCreateSpec, new_timeline_id, "new_timeline_id", JSON_FIELD_TIMELINE_ID,
               JSON_REQUIRED),
    JSON_FIELD_P(TimelineCreateSpec, pg_version, pg_version_p, "pg_version", JSON_FIELD_U32,
                 JSON_NULLABLE),
    JSON_FIELD_P(TimelineCreateSpec, existing_initdb, existing_initdb_p,
                 "existing_initdb_timeline_id", JSON_FIELD_TIMELINE_ID, JSON_NULLABLE),
    JSON_FIELD_P(TimelineCreateSpec, ancestor, ancestor_p, "ancestor_timeline_id",
                 JSON_FIELD_TIMELINE_ID, JSON_NULLABLE),
    JSON_FIELD_P(TimelineCreateSpec, start_lsn, start_lsn_p, "ancestor_start_lsn", JSON_FIELD_LSN,
                 JSON_NULLABLE),
    JSON_FIELD_P(TimelineCreateSpec, import_pgdata, import_pgdata_p, "import_pgdata",
                 JSON_FIELD_ANY, JSON_NULLABLE),
};
static const JsonSpec CREATE_SPEC =
    JSON_SPEC("timeline create", CREATE_FIELDS, JSON_UNKNOWN_REJECT);

bool timeline_fanout_create_decode(const json_t *body, TimelineCreateSpec *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(body)) {
        err_set(err, ERR_BAD_REQUEST, "timeline create: the body must be a JSON object");
        return false;
    }
    if (!json_decode(body, &CREATE_SPEC, out, err))
        return false;
    const json_t *import_pgdata = out->import_pgdata;
    out->import_pgdata = NULL; /* borrowed from body; not kept */
    if (out->import_pgdata_p == JSON_PRESENCE_SET) {
        if (!import_pgdata_decode(import_pgdata, &out->import, err))
            return false;
        if (out->ancestor_p != JSON_PRESENCE_ABSENT || out->start_lsn_p != JSON_PRESENCE_ABSENT ||
            out->existing_initdb_p != JSON_PRESENCE_ABSENT ||
            out->pg_version_p != JSON_PRESENCE_ABSENT) {
            err_set(err, ERR_BAD_REQUEST,
                    "import_pgdata: not with ancestor_timeline_id, ancestor_start_lsn, "
                    "existing_initdb_timeline_id or pg_version");
            return false;
        }
    }
    bool branch = out->ancestor_p == JSON_PRESENCE_SET;
    if (!branch && out->start_lsn_p == JSON_PRESENCE_SET) {
        err_set(err, ERR_BAD_REQUEST, "ancestor_start_lsn needs ancestor_timeline_id");
        return false;
    }
    if (branch && out->existing_initdb_p == JSON_PRESENCE_SET) {
        err_set(err, ERR_BAD_REQUEST,
                "existing_initdb_timeline_id is for Bootstrap, not with "
                "ancestor_timeline_id");
        return false;
    }
    if (timeline_id_eq(&out->ancestor, &out->new_timeline_id) && branch) {
        err_set(err, ERR_BAD_REQUEST, "ancestor_timeline_id equals new_timeline_id");
        return false;
    }
    return true;
}

json_t *timeline_fanout_create_body(const TimelineCreateSpec *spec, const json_t *shard0_info)
{
    json_t *b = json_must(json_object());
    json_set_new(b, "new_timeline_id", json_from_timeline_id(&spec->new_timeline_id));
    if (spec->import_pgdata_p == JSON_PRESENCE_SET) { /* the same request for every shard */
        json_set_new(b, "import_pgdata", import_pgdata_to_json(&spec->import));
        return b;
    }
    if (spec->pg_version_p == JSON_PRESENCE_SET)
        json_set_new(b, "pg_version", json_must(json_integer(spec->pg_version)));
    if (spec->ancestor_p == JSON_PRESENCE_SET) {
        json_set_new(b, "ancestor_timeline_id", json_from_timeline_id(&spec->ancestor));
        if (spec->start_lsn_p == JSON_PRESENCE_SET) {
            json_set_new(b, "ancestor_start_lsn", json_from_lsn(spec->start_lsn));
        } else if (shard0_info != NULL) {
            /* Every shard branches where shard 0 did. */
            json_t *lsn = json_object_get(shard0_info, "ancestor_lsn");
            if (json_is_string(lsn))
                json_set_new(b, "ancestor_start_lsn", json_must(json_copy(lsn)));
        }
    } else if (spec->existing_initdb_p == JSON_PRESENCE_SET) {
        json_set_new(b, "existing_initdb_timeline_id",
                     json_from_timeline_id(&spec->existing_initdb));
    } else if (shard0_info != NULL) {
        /* Bootstrap: reuse shard 0's initdb result (stored under the new timeline).
         */
        json_set_new(b, "existing_initdb_timeline_id",
                     json_from_timeline_id(&spec->new_timeline_id));
    }
    return b;
}

/* ---- generation re-check ---- */

typedef struct Recheck {
    Service *svc;
    ServiceShardMapSnapshot before;
    ServiceDoneFn done;
    void *arg;
    struct event *timer;
    Err fp_err; /* the failpoint asked for an error */
} Recheck;

static void recheck_free(Recheck *rc)
{
    event_free(rc->timer);
    service_snapshot_finish(&rc->before);
    free(rc);
}

static void on_recheck_read(const Err *err, const ServiceShardMapSnapshot *snap, void *arg)
{
    Recheck *rc = arg;
    ServiceDoneFn done = rc->done;
    void *done_arg = rc->arg;
    Err e;
    err_clear(&e);
    if (err != NULL) {
        e = *err;
        if (e.code == ERR_NOT_FOUND)
            err_set(&e, ERR_UNAVAILABLE, "attachment changed (tenant gone), retry");
    } else if (!service_snapshot_same_attachment(&rc->before, snap)) {
        err_set(&e, ERR_UNAVAILABLE, "attachment changed, retry");
    }
    recheck_free(rc);
    done(err_is_set(&e) ? &e : NULL, done_arg);
}

static void on_recheck_timer(evutil_socket_t fd, short what, void *arg)
{
    Recheck *rc = arg;
    if (err_is_set(&rc->fp_err)) {
        ServiceDoneFn done = rc->done;
        void *done_arg = rc->arg;
        Err e = rc->fp_err;
        recheck_free(rc);
        done(&e, done_arg);
        return;
    }
    service_tenant_snapshot_db(rc->svc, &rc->before.tenant_id, on_recheck_read, rc);
}

void timeline_fanout_recheck(Service *svc, struct event_base *base,
                             const ServiceShardMapSnapshot *before, ServiceDoneFn done, void *arg)
{
    Recheck *rc = xcalloc(1, sizeof(*rc));
    rc->svc = svc;
    rc->done = done;
    rc->arg = arg;
    timeline_fanout_snapshot_copy(&rc->before, before);
    long delay = failpoint_delay_ms(TIMELINE_FANOUT_FAILPOINT, &rc->fp_err);
    if (delay < 0)
        delay = 0;
    else
        err_clear(&rc->fp_err);
    if (delay > 0)
        log_info("failpoint %s: re-check delayed by %ld ms", TIMELINE_FANOUT_FAILPOINT, delay);
    /* Always through the timer: the callback never runs inside this call. */
    rc->timer = evtimer_new(base, on_recheck_timer, rc);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(rc->timer, &tv);
}

void timeline_fanout_snapshot_copy(ServiceShardMapSnapshot *dst, const ServiceShardMapSnapshot *src)
{
    *dst = *src;
    dst->shards = xcalloc(src->n ? src->n : 1, sizeof(*dst->shards));
    if (src->n > 0)
        memcpy(dst->shards, src->shards, src->n * sizeof(*src->shards));
}
