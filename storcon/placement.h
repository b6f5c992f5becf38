/*
 * placement.h: the storage controller's shard policy and location enums and their wire encodings,
 * one name table per enum (spec/storcon.md), and the name-table helpers every enum encoding uses
 * (node.h's node enums too). Used by the scheduler, the reconciler, persistence and the HTTP API,
 * so that every spelling lives in exactly one place.
 *
 *   PlacementPolicy       {"Attached": n} | "Secondary" | "Detached"
 *                         (tenant_shards.placement_policy holds the same JSON as text)
 *   ShardSchedulingPolicy "Active" | "Essential" | "Pause" | "Stop"
 *                         (tenant_shards.scheduling_policy holds the JSON string, quotes included)
 *   ShardLocationMode     "AttachedSingle" | "AttachedMulti" | "AttachedStale" | "Secondary" |
 *                         "Detached"  (the pageserver's LocationConfig modes, as the controller
 *                         observes and writes them)
 *
 * Parsers take the exact spelling only (case matters) and fail with ERR_BAD_REQUEST naming the
 * bad value and the accepted ones. Name functions return static strings ("?" for a value out of
 * range); nobody frees them.
 */
#ifndef STORCON_PLACEMENT_H
#define STORCON_PLACEMENT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"

/* ---- name tables (shared with node.h's enums) ---- */

/* NameTable: names[value] for value in [0, count). `what` names the type in error messages. */
typedef struct NameTable {
    const char *what;
    const char *const *names;
    int count;
} NameTable;

/* name_table_name: the static name of v, "?" when out of range. */
const char *name_table_name(const NameTable *t, int v);
/* name_table_parse: exact match; 400 naming the value and the accepted names. */
bool name_table_parse(const NameTable *t, const char *s, int *out, Err *err) MUST_CHECK;
/* name_table_from_json: a JSON string parsed with name_table_parse. */
bool name_table_from_json(const NameTable *t, const json_t *v, int *out, Err *err) MUST_CHECK;
/* name_table_to_json: the name as a JSON string; a new reference the caller owns. */
json_t *name_table_to_json(const NameTable *t, int v);

/* ---- placement policy ---- */

typedef enum PlacementKind {
    PLACEMENT_ATTACHED,  /* one attached location plus `secondaries` secondary locations */
    PLACEMENT_SECONDARY, /* exactly one secondary location, nothing attached */
    PLACEMENT_DETACHED,  /* no locations at all */
    PLACEMENT_KIND_COUNT
} PlacementKind;

/* The most secondaries a shard may have ({"Attached": n} with larger n is rejected). Bounded so
 * that a shard's intent fits in a fixed array (tenant_shard.h). */
#define PLACEMENT_MAX_SECONDARIES 3

typedef struct PlacementPolicy {
    PlacementKind kind;
    uint8_t secondaries; /* PLACEMENT_ATTACHED only: n of {"Attached": n}; 0 otherwise */
} PlacementPolicy;

/* The default of tenant create: {"Attached": 0}. */
#define PLACEMENT_POLICY_DEFAULT ((PlacementPolicy){PLACEMENT_ATTACHED, 0})

/* Room for the compact text form of any policy: {"Attached":255} + NUL. */
#define PLACEMENT_POLICY_TEXT_SIZE 24

/* placement_policy_from_json: {"Attached": n} (exactly that one key, an integer 0..
 * PLACEMENT_MAX_SECONDARIES), "Secondary" or "Detached"; anything else 400. */
bool placement_policy_from_json(const json_t *v, PlacementPolicy *out, Err *err) MUST_CHECK;

/* placement_policy_to_json: the JSON value; a new reference the caller owns. */
json_t *placement_policy_to_json(PlacementPolicy p);

/* placement_policy_parse_text: the same from JSON text (the database column, a request field
 * already in text form). 400 for malformed JSON or a bad policy. */
bool placement_policy_parse_text(const char *text, PlacementPolicy *out, Err *err) MUST_CHECK;

/* placement_policy_format_text: compact JSON text into out: {"Attached":1}, "Secondary". */
void placement_policy_format_text(PlacementPolicy p, char out[PLACEMENT_POLICY_TEXT_SIZE]);

bool placement_policy_eq(PlacementPolicy a, PlacementPolicy b);

/* placement_policy_wants_attached: Attached(n). */
bool placement_policy_wants_attached(PlacementPolicy p);

/* placement_policy_wanted_secondaries: n for Attached(n), 1 for Secondary, 0 for Detached. */
unsigned placement_policy_wanted_secondaries(PlacementPolicy p);

/* ---- shard scheduling policy ---- */

typedef enum ShardSchedulingPolicy {
    SHARD_SCHEDULING_ACTIVE,    /* default: scheduled, reconciled, optimised */
    SHARD_SCHEDULING_ESSENTIAL, /* scheduled and reconciled, but only failover moves it */
    SHARD_SCHEDULING_PAUSE,     /* intent frozen: the scheduler leaves it where it is */
    SHARD_SCHEDULING_STOP,      /* intent frozen and no pageserver calls at all */
    SHARD_SCHEDULING_COUNT
} ShardSchedulingPolicy;

const char *shard_scheduling_policy_name(ShardSchedulingPolicy p);
bool shard_scheduling_policy_parse(const char *s, ShardSchedulingPolicy *out, Err *err) MUST_CHECK;
/* _from_json: a JSON string holding a name. _to_json: new reference, the caller owns it. */
bool shard_scheduling_policy_from_json(const json_t *v, ShardSchedulingPolicy *out,
                                       Err *err) MUST_CHECK;
json_t *shard_scheduling_policy_to_json(ShardSchedulingPolicy p);
/* _parse_text / _format_text: the database column, JSON text with quotes ('"Pause"'). */
bool shard_scheduling_policy_parse_text(const char *text, ShardSchedulingPolicy *out,
                                        Err *err) MUST_CHECK;
#define SHARD_SCHEDULING_POLICY_TEXT_SIZE 16
void shard_scheduling_policy_format_text(ShardSchedulingPolicy p,
                                         char out[SHARD_SCHEDULING_POLICY_TEXT_SIZE]);

/* ---- location modes (pageserver LocationConfig "mode") ---- */

typedef enum ShardLocationMode {
    SHARD_LOCATION_ATTACHED_SINGLE,
    SHARD_LOCATION_ATTACHED_MULTI,
    SHARD_LOCATION_ATTACHED_STALE,
    SHARD_LOCATION_SECONDARY,
    SHARD_LOCATION_DETACHED,
    SHARD_LOCATION_COUNT
} ShardLocationMode;

const char *shard_location_mode_name(ShardLocationMode m);
bool shard_location_mode_parse(const char *s, ShardLocationMode *out, Err *err) MUST_CHECK;
/* shard_location_mode_is_attached: AttachedSingle, AttachedMulti or AttachedStale. */
bool shard_location_mode_is_attached(ShardLocationMode m);

#endif
