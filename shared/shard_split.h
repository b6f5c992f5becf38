/*
 * shard_split.h: the TenantShardSplitRequest body shared by the pageserver's
 * PUT /v1/tenant/{tsid}/shard_split and the controller's PUT /control/v1/tenant/{id}/shard_split:
 * {"new_shard_count": n, "new_stripe_size": n or null (optional)} (Neon's shape), decoded
 * strictly. The count rules themselves are shard_split_validate (shared/key.h).
 */
#ifndef SHARED_SHARD_SPLIT_H
#define SHARED_SHARD_SPLIT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"

typedef struct ShardSplitRequest {
    uint32_t new_shard_count;
    uint32_t new_stripe_size; /* 0: absent or null (keep the current stripe size) */
} ShardSplitRequest;

/* shard_split_request_decode: the body (strict: unknown fields 400; new_shard_count required, a
 * u32 so that out-of-range counts reach shard_split_validate; new_stripe_size non-zero when
 * given). The count rules are not checked here. */
bool shard_split_request_decode(const json_t *body, ShardSplitRequest *out, Err *err) MUST_CHECK;

#endif
