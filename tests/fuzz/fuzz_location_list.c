/*
 * fuzz_location_list.c: storcon/location_list.c, the single-pass scanner of a pageserver's
 * GET /v1/location_config answer (untrusted: it comes off the network at every startup).
 *
 * Invariant: the scanner and the tree decoder (json_loadb + location_list_from_json) agree on
 * every input: both refuse it, or both accept it with equal lists.
 */
#include <jansson.h>

#include "shared/err.h"
#include "storcon/location_list.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    LocationList scanned, ref;
    Err err;
    bool ok = location_list_scan((const char *)data, size, &scanned, &err);
    FUZZ_CHECK(ok || (err.code == ERR_INTERNAL && scanned.n == 0));

    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    bool ref_ok = false;
    memset(&ref, 0, sizeof(ref));
    if (doc != NULL) {
        ref_ok = location_list_from_json(doc, &ref, &err);
        json_decref(doc);
    }
    FUZZ_CHECK(ok == ref_ok);
    if (ok)
        FUZZ_CHECK(location_list_equal(&scanned, &ref));
    location_list_finish(&scanned);
    location_list_finish(&ref);
    return 0;
}
