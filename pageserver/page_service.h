/*
 * page_service.h: the compute-facing page service (docs/page-service.md): the Postgres wire
 * protocol on --listen-pg, serving `pagestream_v2|pagestream_v3 <tenant> <timeline>` (pipelined,
 * batched page reads over shared/pgwire.h and pageserver/read_path.h) and `basebackup`.
 *
 * One libevent bufferevent per connection, on one of a small pool of page service threads (each
 * its own event loop; docs/page-service.md, Threads); the listener is on the daemon's loop, which
 * hands each accepted socket to a thread. The tenant map stays the daemon loop's: read batches and
 * basebackups are routed and started there (reads run through read_path_batch, from memory or on
 * the worker pool) and answered back on the connection's thread, so a slow client or a slow read
 * never blocks another connection. Flow control per connection: at most
 * PAGE_SERVICE_MAX_IN_FLIGHT requests decoded and not yet answered, and no reading while the
 * output buffer is above PAGE_SERVICE_OUTPUT_HIGH_WATER.
 */
#ifndef PAGESERVER_PAGE_SERVICE_H
#define PAGESERVER_PAGE_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/str.h"

struct PageserverApp;
struct TenantManager;

/* BasebackupDoneFn / BasebackupBuildFn: the interface of basebackup_build (pageserver/
 * basebackup.h): on a worker, write the basebackup tar of (tsid, tl) at lsn (LSN_INVALID =
 * latest) into out_fd (a temporary file the caller owns), gzip-compressed when gzip; the
 * completion runs on the loop with the LSN used. */
typedef void (*BasebackupDoneFn)(const Err *err, Lsn lsn, void *arg);
typedef void (*BasebackupBuildFn)(struct TenantManager *mgr, const TenantShardId *tsid,
                                  const TimelineId *tl, Lsn lsn, bool gzip, int out_fd,
                                  BasebackupDoneFn done, void *arg);

typedef struct PageServiceConfig {
    HostPort listen;               /* port 0: any free port (page_service_port says which) */
    uint64_t max_connections;      /* more are refused with SQLSTATE 53300 */
    uint64_t handshake_timeout_ms; /* from accept until the command is received */
    uint64_t idle_timeout_ms;      /* no request, or no write progress, for this long: closed */
    size_t
        threads; /* connection threads; 0: online CPUs, at most PAGE_SERVICE_DEFAULT_THREADS_MAX */
    /* the basebackup builder; NULL: `basebackup` answers "basebackup is not available" */
    BasebackupBuildFn basebackup_build;
} PageServiceConfig;

typedef struct PageService PageService;

/* page_service_start: bind and listen (on app's loop), start the threads; the caller frees with
 * page_service_free. err: 500 when the address cannot be bound or a thread cannot be started. */
bool page_service_start(struct PageserverApp *app, const PageServiceConfig *cfg, PageService **out,
                        Err *err) MUST_CHECK;
/* page_service_port: the port bound. */
uint16_t page_service_port(const PageService *ps);
/* page_service_stop: stop accepting and have every thread close its connections (SIGTERM; done
 * by the threads soon after the call); reads in flight complete into closed connections, which
 * are then freed. */
void page_service_stop(PageService *ps);
/* page_service_free: stop, join the threads, then free everything; call on app's loop thread
 * after the worker pool drained. */
void page_service_free(PageService *ps);

#endif
