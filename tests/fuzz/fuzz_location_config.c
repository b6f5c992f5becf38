/*
 * fuzz_location_config: the LocationConfig body storcon PUTs to a pageserver
 * (pageserver/location_config.c). An accepted config echoes to JSON that decodes to an equal
 * config; the change classification is total over every pair of decoded configs.
 */
#include "tests/fuzz/fuzz_util.h"

#include "pageserver/location_config.h"
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
    if (!json_parse_text((const char *)data, size, &doc, &err))
        return 0;
    LocationConfig cfg;
    if (location_config_decode(doc, &cfg, &err)) {
        json_t *echo = location_config_to_json(&cfg);
        LocationConfig back;
        FUZZ_CHECK(location_config_decode(echo, &back, &err));
        FUZZ_CHECK(location_config_equal(&cfg, &back));
        LocationChange ch = location_config_classify_change(&cfg, &back);
        FUZZ_CHECK(ch < LOCATION_CHANGE_COUNT);
        ch = location_config_classify_change(NULL, &cfg);
        FUZZ_CHECK(ch < LOCATION_CHANGE_COUNT);
        TenantShardId tsid = {.number = cfg.shard_number, .count = cfg.shard_count};
        FUZZ_CHECK(location_config_check_tsid(&cfg, &tsid, &err));
        LocationConfig copy;
        location_config_copy(&copy, &cfg);
        location_config_finish(&copy);
        location_config_finish(&back);
        json_decref(echo);
        location_config_finish(&cfg);
    } else {
        FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
    }
    json_decref(doc);
    return 0;
}
