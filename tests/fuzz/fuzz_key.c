/*
 * fuzz_key: the text form of a key (shared/key.c, 36 hex digits) and layer file names
 * (pageserver/layer.c layer_name_parse), both read from directory listings and remote object
 * keys. Whatever parses formats back to the same text's value.
 */
#include "tests/fuzz/fuzz_util.h"

#include "pageserver/layer.h"
#include "shared/key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    Err err = {0};

    Key k, k2;
    if (key_parse(s, &k, &err)) {
        char text[KEY_STR_SIZE];
        key_format(&k, text);
        FUZZ_CHECK(key_parse(text, &k2, &err) && key_eq(&k, &k2));
        uint8_t raw[KEY_SIZE];
        key_to_bytes(&k, raw);
        Key k3 = key_from_bytes(raw);
        FUZZ_CHECK(key_eq(&k, &k3));
    }

    LayerDesc d, d2;
    if (layer_name_parse(s, &d, &err)) {
        char name[LAYER_NAME_SIZE];
        layer_name_format(&d, name);
        FUZZ_CHECK(strcmp(name, s) == 0);
        FUZZ_CHECK(layer_name_parse(name, &d2, &err));
        FUZZ_CHECK(layer_desc_validate(&d2, &err));
    }
    free(s);
    return 0;
}
