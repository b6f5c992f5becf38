/*
 * json_util.h: parsing the JSON texts written into unit tests. Include after <cmocka.h>.
 * Header-only (a static function) because every test is its own executable.
 */
#ifndef TESTS_UNIT_JSON_UTIL_H
#define TESTS_UNIT_JSON_UTIL_H

#include <string.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/json.h"

/* test_json: text parsed as any JSON value (json_parse_text); a text that does not parse fails
 * the test. The caller owns the result (json_decref). */
static json_t *test_json(const char *text)
{
    json_t *v = NULL;
    Err err = {0};
    if (!json_parse_text(text, strlen(text), &v, &err))
        fail_msg("test JSON does not parse: %s: %s", text, err.msg);
    return v;
}

#endif
