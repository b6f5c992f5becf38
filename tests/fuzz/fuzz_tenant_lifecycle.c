/*
 * fuzz_tenant_lifecycle: the bodies of the older lifecycle API (pageserver/tenant_lifecycle.c):
 * the first byte picks create, attach or load; the rest is the JSON body (empty: no body). An
 * accepted body never carries generation 0, and a create's shard parameters are valid.
 */
#include "tests/fuzz/fuzz_util.h"

#include "pageserver/tenant_lifecycle.h"
#include "shared/json.h"

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
    unsigned which = data[0] % 3;
    json_t *doc = NULL;
    Err err = {0};
    if (size > 1 && !json_parse_text((const char *)data + 1, size - 1, &doc, &err))
        return 0;
    if (which == 0 && doc != NULL) {
        TenantCreateRequest r;
        if (tenant_create_request_decode(doc, &r, &err)) {
            FUZZ_CHECK(r.generation != 0);
            FUZZ_CHECK(r.tsid.count == 0 ||
                       shard_params_validate(r.tsid.number, r.tsid.count, r.stripe_size, &err));
        }
    } else if (which == 1) {
        TenantAttachRequest r;
        if (tenant_attach_request_decode(doc, &r, &err))
            FUZZ_CHECK(r.generation != 0);
    } else if (which == 2) {
        Generation g = 0;
        if (tenant_load_request_decode(doc, &g, &err))
            FUZZ_CHECK(g != 0);
    }
    json_decref(doc);
    return 0;
}
