/*
 * timeline_fanout.h: timeline create and delete through the storage controller, fanned out to every
 * shard of a tenant (storcon.md "/v1"), and the generation re-check every fan-out ends with.
 *
 * Create: shard 0 first; then every other shard concurrently, with shard 0's branch LSN when a
 * Branch request named none (so every shard branches at the same point) or
 * existing_initdb_timeline_id = the new timeline (Bootstrap: the other shards reuse shard 0's
 * initdb result and so hold identical content). Answers shard 0's TimelineInfo.
 *
 * Delete: every shard except 0 first, concurrently, then shard 0, so that a GET routed to shard 0
 * says 404 only once all are gone. The pageserver's 202 / 409 / 404 protocol is hidden: a shard is
 * re-asked every TIMELINE_FANOUT_DELETE_POLL_MS until it answers 404 (gone); done -> {}; still
 * running after TIMELINE_FANOUT_DELETE_TIMEOUT_MS -> 409 "retry", so a caller with a short timeout
 * can simply repeat. 412 from a pageserver (the timeline has children) -> 412.
 *
 * Generation re-check: before the calls every shard's node and generation are read from the
 * database, after them read again; any difference -> 503 "attachment changed, retry" (the calls may
 * have reached a location that was being replaced). The failpoint TIMELINE_FANOUT_FAILPOINT
 * ("storcon-fanout-before-recheck", armed with sleep(ms)) delays the second read, so tests can
 * change an attachment inside the window.
 *
 * Pageserver errors are translated per wire.md (pageserver_client_translate_error). Conventions:
 * loop thread; each operation ends in exactly one callback, never from inside the call that started
 * it. Operations still running when the service is freed must not complete (the service abandons
 * its callbacks; the process is exiting).
 */
#ifndef STORCON_TIMELINE_FANOUT_H
#define STORCON_TIMELINE_FANOUT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/json.h"
#include "storcon/import.h"
#include "storcon/service.h"

struct event_base;

#define TIMELINE_FANOUT_FAILPOINT "storcon-fanout-before-recheck"

/* Timings (the spec's 25 s for delete). */
#define TIMELINE_FANOUT_DELETE_TIMEOUT_MS 25000
#define TIMELINE_FANOUT_DELETE_POLL_MS    500
#define TIMELINE_FANOUT_CALL_TIMEOUT_MS   60000 /* per attempt; Bootstrap runs initdb */
#define TIMELINE_FANOUT_CALL_ATTEMPTS     3     /* transport errors, timeouts, 503 */

/* TimelineCreateRequest as storcon accepts it (pageserver.md "Timeline create"), strict. */
typedef struct TimelineCreateSpec {
    TimelineId new_timeline_id;
    uint32_t pg_version;
    JsonPresence pg_version_p;
    TimelineId existing_initdb;
    JsonPresence existing_initdb_p;
    TimelineId ancestor;
    JsonPresence ancestor_p;
    Lsn start_lsn;
    JsonPresence start_lsn_p;
    json_t *import_pgdata; /* borrowed during decode only */
    JsonPresence import_pgdata_p;
    ImportPgdataSpec import; /* import_pgdata_p == JSON_PRESENCE_SET: the import (import.md) */
} TimelineCreateSpec;

/* timeline_fanout_create_decode: strict decode of the POST body (unknown field -> 400 naming it;
 * Branch fields with Bootstrap fields -> 400; import_pgdata checked by import_pgdata_decode, and
 * alone: with Branch or Bootstrap fields (pg_version included: it comes from the imported
 * pg_control) -> 400). */
bool timeline_fanout_create_decode(const json_t *body, TimelineCreateSpec *out,
                                   Err *err) MUST_CHECK;

/* timeline_fanout_create_body: the pageserver request for one shard: shard 0 gets the request as
 * given; others (shard0_info non-NULL: shard 0's TimelineInfo) get the pinned branch LSN or the
 * initdb reuse. New reference; the caller owns it. */
json_t *timeline_fanout_create_body(const TimelineCreateSpec *spec, const json_t *shard0_info);

/* timeline_fanout_create: result = shard 0's TimelineInfo (the route answers 201). */
void timeline_fanout_create(Service *svc, struct event_base *base, const TenantId *tenant,
                            const TimelineCreateSpec *spec, ServiceJsonFn cb, void *arg);

/* timeline_fanout_delete: result = {} (the route answers 200). */
void timeline_fanout_delete(Service *svc, struct event_base *base, const TenantId *tenant,
                            const TimelineId *timeline, ServiceJsonFn cb, void *arg);

/* timeline_fanout_recheck: the closing half of every fan-out: wait for the failpoint (if armed),
 * read the tenant's attachment from the database again and compare it with before (borrowed, used
 * only during this call). done(NULL) when unchanged; 503 "attachment changed, retry" when changed;
 * the read's own error otherwise. */
void timeline_fanout_recheck(Service *svc, struct event_base *base,
                             const ServiceShardMapSnapshot *before, ServiceDoneFn done, void *arg);

/* timeline_fanout_snapshot_copy: a deep copy of src into dst; free it with service_snapshot_finish.
 */
void timeline_fanout_snapshot_copy(ServiceShardMapSnapshot *dst,
                                   const ServiceShardMapSnapshot *src);

#endif
