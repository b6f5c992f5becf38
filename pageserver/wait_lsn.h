/*
 * wait_lsn.h: POST /v1/tenant/{tsid}/wait_lsn (pageserver.md "Routes"), the cut-over step of a
 * live migration: wait until the listed timelines of an attached shard have reached LSNs (their
 * last_record_lsn), up to a timeout.
 *
 * Body (Neon's TenantWaitLsnRequest): {"<timeline_id>": "X/X", ..., "timeout": T} where T is
 * milliseconds (an integer), a duration string ("5s") or Neon's serialized Duration
 * {"secs", "nanos"}. Answers: 200 null when every timeline has reached its LSN, 202 null when
 * some had not by the timeout; 404 unknown shard (or a secondary) or timeline; 400 malformed.
 * The timelines are looked up again at each check (every 20 ms), so one deleted meanwhile
 * answers 404. Runs on the loop thread.
 */
#ifndef PAGESERVER_WAIT_LSN_H
#define PAGESERVER_WAIT_LSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"

#include "pageserver/app.h"

struct TenantManager;

#define WAIT_LSN_MAX_TIMELINES 1024
#define WAIT_LSN_MAX_MS        600000L

typedef struct WaitLsnTarget {
    TimelineId timeline;
    Lsn lsn;
} WaitLsnTarget;

typedef struct WaitLsnRequest {
    WaitLsnTarget *targets; /* owned */
    size_t n;
    long timeout_ms;
} WaitLsnRequest;

/* wait_lsn_request_decode: the body; free with wait_lsn_request_finish. 400 naming the field. */
bool wait_lsn_request_decode(const json_t *body, WaitLsnRequest *out, Err *err) MUST_CHECK;
void wait_lsn_request_finish(WaitLsnRequest *r);

/* WaitLsnFn: reached says whether every timeline reached its LSN (200) or not (202). */
typedef void (*WaitLsnFn)(const Err *err, bool reached, void *arg);

/* tenant_wait_lsn: wait as described above; r is copied. */
void tenant_wait_lsn(struct TenantManager *mgr, const TenantShardId *tsid, const WaitLsnRequest *r,
                     WaitLsnFn cb, void *arg);

#endif
