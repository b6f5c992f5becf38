/*
 * shard_split.c: the TenantShardSplitRequest decoder (shard_split.h).
 */
#include "shared/shard_split.h"

#include <stddef.h>
#include <string.h>

#include "shared/json.h"

static const JsonField SPLIT_FIELDS[] = {
    JSON_FIELD(ShardSplitRequest, new_shard_count, "new_shard_count", JSON_FIELD_U32,
               JSON_REQUIRED),
    JSON_FIELD(ShardSplitRequest, new_stripe_size, "new_stripe_size", JSON_FIELD_U32,
               JSON_NULLABLE | JSON_NONZERO),
};
static const JsonSpec SPLIT_SPEC = JSON_SPEC("shard split", SPLIT_FIELDS, JSON_UNKNOWN_REJECT);

bool shard_split_request_decode(const json_t *body, ShardSplitRequest *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    return json_decode(body, &SPLIT_SPEC, out, err);
}
