/*
 * fuzz_units: human durations and byte sizes (shared/units.c), as taken from tenant config bodies
 * and daemon flags. An accepted duration formats to a text that parses to the same value.
 */
#include "tests/fuzz/fuzz_util.h"

#include "shared/units.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    Err err = {0};
    uint64_t ms = 0;
    if (duration_parse_ms(s, &ms, &err)) {
        char text[64];
        duration_format_ms(ms, text, sizeof text);
        uint64_t again = 0;
        FUZZ_CHECK(duration_parse_ms(text, &again, &err));
        FUZZ_CHECK(again == ms);
    }
    uint64_t bytes = 0;
    if (!bytes_parse(s, &bytes, &err))
        FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
    free(s);
    return 0;
}
