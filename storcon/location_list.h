/*
 * location_list.h: decoding a pageserver's GET /v1/location_config answer,
 *
 *   {"tenant_shards": [["<tenant shard id>", <LocationConfig object> or null], ...]}
 *
 * into what the controller keeps of it: per shard its id and the observed summary of its config
 * (tenant_shard_observed_from_json: mode, generation, secondary warmth). A config that is null or
 * that the summary does not understand is recorded as unknown (observed.known false), not as an
 * error; a document that is not JSON, or whose shape differs (not an object, "tenant_shards"
 * missing or not an array, an element that is not [string, object or null], an id that does not
 * parse) is an error.
 *
 * Two decoders of the one format:
 *  - location_list_scan: a single pass over the text that builds no JSON tree (10 nodes x 10,000
 *    shards are 44 MB at startup). It validates the whole document as jansson does (syntax, UTF-8,
 *    escapes and surrogates, \u0000, integer and real overflow, nesting depth 2048, trailing
 *    garbage; a repeated key: the last one counts) and skips every value it does not need.
 *  - location_list_from_json: the same from a parsed document (json_loadb), kept as the reference
 *    the scanner is tested and fuzzed against (tests/unit/test_storcon_location_list.c,
 *    tests/fuzz/fuzz_location_list.c): on every input both accept with equal lists or both fail.
 *
 * Both are pure functions of their input, safe on any thread (storcon scans on a worker).
 */
#ifndef STORCON_LOCATION_LIST_H
#define STORCON_LOCATION_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"
#include "storcon/tenant_shard.h"

/* One entry of the listing. */
typedef struct LocationListEntry {
    TenantShardId tsid;
    ObservedState observed; /* known false: the config was null or not understood */
} LocationListEntry;

typedef struct LocationList {
    LocationListEntry *entries; /* owned; NULL when n is 0 */
    size_t n;
    size_t cap;
} LocationList;

/* location_list_scan: decode text[0..len) (no NUL needed). On success *out holds the entries in
 * document order (the caller frees with location_list_finish); on failure *out is empty and err
 * (ERR_INTERNAL) names the byte offset and what was wrong. */
bool location_list_scan(const char *text, size_t len, LocationList *out, Err *err) MUST_CHECK;

/* location_list_from_json: the same from a parsed document (borrowed). */
bool location_list_from_json(const json_t *doc, LocationList *out, Err *err) MUST_CHECK;

/* location_list_equal: the same entries in the same order (an unknown entry's other fields are
 * not compared). */
bool location_list_equal(const LocationList *a, const LocationList *b);

/* location_list_finish: free the entries; the list is empty afterwards. */
void location_list_finish(LocationList *l);

#endif
