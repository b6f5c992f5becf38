/*
 * read_path.h: page reads (GET /v1/tenant/{tsid}/timeline/{tl}/getpage), the path the page
 * service will use later.
 *
 * A read of (rel, fork, blkno) at lsn:
 *   1. the key must be one this shard owns (relation blocks are striped; init-fork blocks live on
 *      shard 0): otherwise 404 "key ... is not owned by shard ...";
 *   2. effective LSN = min(lsn, last_record_lsn); below min_readable_lsn -> 400;
 *   3. the relation size key decides: absent -> 404 (no such relation), blkno >= nblocks -> 404
 *      (past the end);
 *   4. the block key: its 8192-byte image, or zeros when the relation has the block but no image
 *      was ever written (a hole).
 * Each key is looked up timeline by timeline: the newest image layer holding the key at or below
 * the LSN; if the timeline has none, its ancestor at min(LSN, ancestor_lsn), and so on. An image
 * layer is complete for its key range, so a key absent from the layer that covers it does not
 * exist at that LSN.
 *
 * The lookups run on a worker (layers not yet local are downloaded first) with references on the
 * layers of the whole ancestor chain; a corrupt block fails with 500 and the checksum message,
 * never with data.
 */
#ifndef PAGESERVER_READ_PATH_H
#define PAGESERVER_READ_PATH_H

#include <stdbool.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/http_server.h"
#include "shared/id.h"

struct TenantSlot;

typedef struct GetPageRequest {
    uint32_t spc, db, rel;
    uint8_t fork;
    uint32_t blkno;
    bool has_lsn;
    Lsn lsn;
} GetPageRequest;

/* getpage_parse_query: the query values (NULL = absent): rel "<spc>/<db>/<rel>" (decimal u32,
 * rel != 0), fork 0..3, blkno < 0xFFFFFFFF, lsn "X/X" (optional: the last record LSN). 400
 * naming the parameter otherwise. */
bool getpage_parse_query(const char *rel, const char *fork, const char *blkno, const char *lsn,
                         GetPageRequest *out, Err *err) MUST_CHECK;

/* read_path_getpage: serve the read; replies to req (raw page or error) exactly once. */
void read_path_getpage(struct TenantSlot *slot, HttpRequest *req, const TimelineId *tl,
                       const GetPageRequest *r);

#endif
