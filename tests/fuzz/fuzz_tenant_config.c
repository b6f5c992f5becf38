/*
 * fuzz_tenant_config: tenant config bodies (shared/tenant_config.c), decoded by both daemons:
 * strict and lenient decode, the PUT/PATCH envelope, PATCH application, and image_compression
 * syntax. A decoded config renders to JSON that decodes strictly to an equal config.
 */
#include "tests/fuzz/fuzz_util.h"

#include "shared/tenant_config.h"
#include "shared/json.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = NULL;
    Err err = {0};
    if (!json_parse_text((const char *)data, size, &doc, &err)) {
        /* not JSON: try it as an image_compression value */
        char *s = fuzz_strndup(data, size);
        ImageCompression c, c2;
        if (tenant_config_image_compression_parse(s, &c, &err)) {
            char text[TENANT_CONFIG_COMPRESSION_SIZE];
            tenant_config_image_compression_format(c, text);
            FUZZ_CHECK(tenant_config_image_compression_parse(text, &c2, &err));
            FUZZ_CHECK(c.algo == c2.algo && c.has_level == c2.has_level &&
                       (!c.has_level || c.level == c2.level));
        }
        free(s);
        return 0;
    }
    for (int strict = 0; strict < 2; strict++) {
        TenantConfig cfg;
        if (!tenant_config_decode(doc, strict, &cfg, &err))
            continue;
        json_t *out = tenant_config_to_json(&cfg);
        TenantConfig back;
        FUZZ_CHECK(tenant_config_decode(out, true, &back, &err));
        FUZZ_CHECK(tenant_config_equal(&cfg, &back));
        json_decref(out);
        TenantConfig eff;
        tenant_config_effective(&cfg, &eff);
        (void)tenant_config_image_compression(&eff);
        json_decref(tenant_config_effective_json(&cfg));
    }
    TenantConfigRequest req;
    if (tenant_config_request_decode(doc, &req, &err)) {
        TenantConfig base;
        tenant_config_init(&base);
        tenant_config_apply_patch(&base, &req.config);
        json_decref(tenant_config_to_json(&base));
    }
    TenantConfig patched;
    tenant_config_init(&patched);
    (void)!tenant_config_patch(&patched, doc, &err);
    json_decref(doc);
    return 0;
}
