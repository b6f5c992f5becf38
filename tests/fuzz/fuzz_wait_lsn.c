/*
 * fuzz_wait_lsn: the body of POST /v1/tenant/{tsid}/wait_lsn (pageserver/wait_lsn.c). A decoded
 * request has at most WAIT_LSN_MAX_TIMELINES targets and a timeout within 0..WAIT_LSN_MAX_MS;
 * a refusal is 400.
 */
#include "tests/fuzz/fuzz_util.h"

#include "pageserver/wait_lsn.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    if (body == NULL)
        return 0;
    WaitLsnRequest r;
    Err err = {0};
    if (wait_lsn_request_decode(body, &r, &err)) {
        FUZZ_CHECK(r.n <= WAIT_LSN_MAX_TIMELINES);
        FUZZ_CHECK(r.timeout_ms >= 0 && r.timeout_ms <= WAIT_LSN_MAX_MS);
        wait_lsn_request_finish(&r);
    } else {
        FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
        FUZZ_CHECK(r.targets == NULL);
    }
    json_decref(body);
    return 0;
}
