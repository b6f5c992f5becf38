/*
 * fuzz_import: the untrusted inputs of a timeline import (pageserver/import.c): the create
 * request's import_pgdata (and the whole create request, timeline_create_params_decode), the
 * ShardImportStatus storcon answers, and the source's status/pgdata file. The first input byte
 * picks the parser; the rest is the input.
 */
#include "tests/fuzz/fuzz_util.h"

#include "shared/json.h"

#include "pageserver/import.h"
#include "pageserver/timeline.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0] % 4;
    data++;
    size--;
    Err err = {0};
    if (mode == 3) {
        bool done = false;
        if (!import_source_status_parse(data, size, &done, &err))
            FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
        return 0;
    }
    json_t *v = NULL;
    if (!json_parse_text((const char *)data, size, &v, &err))
        return 0;
    if (mode == 0) {
        ImportPgdataSpec spec, again;
        if (import_pgdata_spec_decode(v, &spec, &err)) {
            /* the location re-encodes to something that decodes to the same spec */
            json_t *o = json_pack("{s:s,s:o}", "idempotency_key", spec.idempotency_key, "location",
                                  import_location_json(&spec.location));
            FUZZ_CHECK(o != NULL && import_pgdata_spec_decode(o, &again, &err));
            FUZZ_CHECK(memcmp(&spec.location, &again.location, sizeof(spec.location)) == 0);
            json_decref(o);
        } else {
            FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
        }
    } else if (mode == 1) {
        ImportShardStatus st;
        if (import_shard_status_parse(v, &st, &err))
            FUZZ_CHECK(!st.has_progress || st.completed <= st.jobs);
        else
            FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
    } else {
        TimelineCreateParams p;
        if (timeline_create_params_decode(v, &p, &err))
            FUZZ_CHECK(!(p.import && p.branch));
        else
            FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
    }
    json_decref(v);
    return 0;
}
