/*
 * passthrough.h: the /v1 read passthrough (storcon.md: "GET /v1/tenant/{tenant_id} and any other
 * GET /v1/tenant/{id}/... proxy to the pageserver holding shard 0 (or the named shard for a tsid),
 * path rewritten to the shard id").
 *
 * The shard's node and generation are read from the database before the call and again after it; a
 * difference -> 503 "attachment changed, retry" (the answer may come from a location that was being
 * replaced). Pageserver answers: 2xx forwarded unchanged (status and body); errors translated per
 * wire.md (pageserver_client_translate_error); a 404 saying the TENANT is not there while its
 * policy wants it attached (being moved or set up) -> 503.
 *
 * Loop thread only; exactly one callback, never from inside passthrough_get.
 */
#ifndef STORCON_PASSTHROUGH_H
#define STORCON_PASSTHROUGH_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"
#include "shared/id.h"
#include "storcon/service.h"

struct event_base;

#define PASSTHROUGH_CALL_TIMEOUT_MS 30000
#define PASSTHROUGH_PATH_MAX        2048

/* PassthroughDone: err NULL: the pageserver's 2xx status with its raw body (borrowed, valid during
 * the callback); err set: the translated error (status and body unused). */
typedef void (*PassthroughDone)(const Err *err, int status, const char *body, size_t body_len,
                                void *arg);

/* passthrough_get: GET /v1/tenant/<shard tsid><rest>[?query] on the shard's pageserver. tsid is the
 * id from the request path (a bare tenant id: shard 0 of whatever count the tenant has; a sharded
 * id: that shard, 404 when the tenant has no such shard). rest is the path after the id ("" or
 * "/timeline/..."), query the raw query without '?' ("" for none); both copied. */
void passthrough_get(Service *svc, struct event_base *base, const TenantShardId *tsid,
                     const char *rest, const char *query, PassthroughDone done, void *arg);

/* passthrough_tenant_missing: a pageserver 404 message that says the tenant (shard) is not there
 * rather than something inside it; exposed for tests. */
bool passthrough_tenant_missing(const char *msg);

#endif
