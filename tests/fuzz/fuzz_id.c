/*
 * fuzz_id: identifier text forms (shared/id.c), as found in URL paths, bodies and object keys:
 * tenant and timeline ids, shard index, tenant shard id, LSN ("X/X" and the 16-hex file form) and
 * the generation suffix. Whatever parses formats back to text that parses to the same value.
 */
#include "tests/fuzz/fuzz_util.h"

#include "shared/id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    Err err = {0};
    char text[64];

    TenantId t, t2;
    if (tenant_id_parse(s, &t, &err)) {
        tenant_id_format(&t, text);
        FUZZ_CHECK(tenant_id_parse(text, &t2, &err) && tenant_id_eq(&t, &t2));
    }
    TimelineId tl, tl2;
    if (timeline_id_parse(s, &tl, &err)) {
        timeline_id_format(&tl, text);
        FUZZ_CHECK(timeline_id_parse(text, &tl2, &err) && timeline_id_eq(&tl, &tl2));
    }
    ShardIndex si, si2;
    if (shard_index_parse(s, &si, &err)) {
        shard_index_format(si, text);
        FUZZ_CHECK(shard_index_parse(text, &si2, &err));
        FUZZ_CHECK(si.number == si2.number && si.count == si2.count);
    }
    TenantShardId ts, ts2;
    if (tsid_parse(s, &ts, &err)) {
        tsid_format(&ts, text);
        FUZZ_CHECK(tsid_parse(text, &ts2, &err) && tsid_eq(&ts, &ts2));
    }
    Lsn lsn, lsn2;
    if (lsn_parse(s, &lsn, &err)) {
        lsn_format(lsn, text);
        FUZZ_CHECK(lsn_parse(text, &lsn2, &err) && lsn == lsn2);
    }
    if (lsn_parse_file(s, &lsn, &err)) {
        lsn_format_file(lsn, text);
        FUZZ_CHECK(lsn_parse_file(text, &lsn2, &err) && lsn == lsn2);
    }
    Generation g, g2;
    if (generation_parse_suffix(s, &g, &err)) {
        generation_suffix(g, text);
        FUZZ_CHECK(generation_parse_suffix(text, &g2, &err) && g == g2);
    }
    free(s);
    return 0;
}
