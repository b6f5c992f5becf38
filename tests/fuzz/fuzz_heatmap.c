/*
 * fuzz_heatmap: heatmap-v1.json as a warm secondary reads it from remote storage
 * (pageserver/heatmap.c). An accepted heatmap serializes to text that parses to a heatmap
 * serializing to the same text, within the limits; a refused one is 400 or 413.
 */
#include "tests/fuzz/fuzz_util.h"

#include "pageserver/heatmap.h"
#include "shared/json.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

static char *serialize(const Heatmap *h)
{
    json_t *j = heatmap_to_json(h, true);
    char *text = json_dumps_compact(j);
    json_decref(j);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Heatmap h;
    Err err = {0};
    if (!heatmap_parse((const char *)data, size, &h, &err)) {
        FUZZ_CHECK(err.code == ERR_BAD_REQUEST || err.code == ERR_PAYLOAD_TOO_LARGE);
        FUZZ_CHECK(h.timelines == NULL && h.n_timelines == 0);
        return 0;
    }
    FUZZ_CHECK(h.n_timelines <= HEATMAP_MAX_TIMELINES);
    for (size_t i = 0; i < h.n_timelines; i++) {
        for (size_t k = 0; k < h.timelines[i].n_layers; k++) {
            Err nerr = {0};
            FUZZ_CHECK(index_part_layer_name_check(h.timelines[i].layers[k].meta.name, &nerr));
        }
    }
    char *text = serialize(&h);
    Heatmap again;
    FUZZ_CHECK(heatmap_parse(text, strlen(text), &again, &err));
    char *text2 = serialize(&again);
    FUZZ_CHECK(strcmp(text, text2) == 0);
    free(text2);
    free(text);
    heatmap_free(&again);
    heatmap_free(&h);
    return 0;
}
