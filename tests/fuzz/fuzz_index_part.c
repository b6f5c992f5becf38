/*
 * fuzz_index_part: index_part.json as read from remote storage (pageserver/index_part.c). An
 * accepted index serializes to text that parses to an index serializing to the same text, and
 * its layers are sorted with usable names.
 */
#include "tests/fuzz/fuzz_util.h"

#include "pageserver/index_part.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    IndexPart *part = NULL;
    Err err = {0};
    if (!index_part_parse((const char *)data, size, &part, &err)) {
        FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
        return 0;
    }
    for (size_t i = 0; i < part->n_layers; i++) {
        Err nerr = {0};
        FUZZ_CHECK(index_part_layer_name_check(part->layers[i].name, &nerr));
        if (i > 0)
            FUZZ_CHECK(strcmp(part->layers[i - 1].name, part->layers[i].name) < 0);
        FUZZ_CHECK(index_part_find_layer(part, part->layers[i].name) == &part->layers[i]);
    }
    char *text = index_part_serialize(part);
    IndexPart *again = NULL;
    FUZZ_CHECK(index_part_parse(text, strlen(text), &again, &err));
    char *text2 = index_part_serialize(again);
    FUZZ_CHECK(strcmp(text, text2) == 0);
    IndexPart *clone = index_part_clone(again);
    if (clone->n_layers > 0)
        FUZZ_CHECK(index_part_remove_layer(clone, clone->layers[0].name));
    index_part_free(clone);
    free(text2);
    index_part_free(again);
    free(text);
    index_part_free(part);
    return 0;
}
