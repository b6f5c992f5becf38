/*
 * fuzz_storcon_bodies: the storage controller's standalone request decoders: node registration
 * (storcon/service.c), timeline create (storcon/timeline_fanout.c), a pageserver's reported
 * LocationConfig (storcon/tenant_shard.c), the policy values of storcon/placement.c (request
 * fields and database columns), and timeline import's ShardImportStatus and shard_statuses row
 * (storcon/import.c). Each is given the parsed input; the policies and the row also its raw
 * text.
 */
#include "tests/fuzz/fuzz_util.h"

#include "shared/json.h"
#include "storcon/import.h"
#include "storcon/placement.h"
#include "storcon/service.h"
#include "storcon/tenant_shard.h"
#include "storcon/timeline_fanout.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

static void policies_from_text(const char *s)
{
    Err err = {0};
    PlacementPolicy p, p2;
    if (placement_policy_parse_text(s, &p, &err)) {
        char text[PLACEMENT_POLICY_TEXT_SIZE];
        placement_policy_format_text(p, text);
        FUZZ_CHECK(placement_policy_parse_text(text, &p2, &err) && placement_policy_eq(p, p2));
    }
    ShardSchedulingPolicy sp, sp2;
    if (shard_scheduling_policy_parse_text(s, &sp, &err)) {
        char text[SHARD_SCHEDULING_POLICY_TEXT_SIZE];
        shard_scheduling_policy_format_text(sp, text);
        FUZZ_CHECK(shard_scheduling_policy_parse_text(text, &sp2, &err) && sp == sp2);
    }
    NodeAvailability a;
    NodeSchedulingPolicy np;
    NodeLifecycle l;
    ShardLocationMode m;
    (void)!shard_scheduling_policy_parse(s, &sp, &err);
    (void)!node_availability_parse(s, &a, &err);
    (void)!node_scheduling_policy_parse(s, &np, &err);
    (void)!node_lifecycle_parse(s, &l, &err);
    (void)!shard_location_mode_parse(s, &m, &err);
}

static void policies_from_json(const json_t *v)
{
    Err err = {0};
    PlacementPolicy p;
    if (placement_policy_from_json(v, &p, &err))
        json_decref(placement_policy_to_json(p));
    ShardSchedulingPolicy sp;
    if (shard_scheduling_policy_from_json(v, &sp, &err))
        json_decref(shard_scheduling_policy_to_json(sp));
    NodeAvailability a;
    if (node_availability_from_json(v, &a, &err))
        json_decref(node_availability_to_json(a));
    NodeSchedulingPolicy np;
    if (node_scheduling_policy_from_json(v, &np, &err))
        json_decref(node_scheduling_policy_to_json(np));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    policies_from_text(s);
    free(s);

    json_t *doc = NULL;
    Err err = {0};
    if (!json_parse_text((const char *)data, size, &doc, &err))
        return 0;
    policies_from_json(doc);

    ServiceNodeRegistration reg;
    if (service_node_registration_from_json(doc, &reg, &err)) {
        FUZZ_CHECK(memchr(reg.listen_http_addr, '\0', sizeof reg.listen_http_addr) != NULL);
        FUZZ_CHECK(memchr(reg.listen_pg_addr, '\0', sizeof reg.listen_pg_addr) != NULL);
    } else {
        FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
    }

    TimelineCreateSpec spec;
    memset(&spec, 0, sizeof spec);
    bool created = timeline_fanout_create_decode(doc, &spec, &err);
    if (created) {
        json_decref(timeline_fanout_create_body(&spec, NULL));
        json_t *info = json_must(json_object());
        json_set_new(info, "last_record_lsn", json_from_lsn(0x1000));
        json_decref(timeline_fanout_create_body(&spec, info));
        json_decref(info);
    }

    ImportStatus st;
    err_clear(&err);
    if (import_status_decode(doc, &st, &err)) {
        FUZZ_CHECK(st.kind < IMPORT_STATUS_KIND_COUNT);
        FUZZ_CHECK(!st.has_progress || st.completed <= st.jobs);
    } else {
        FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
    }
    ImportSummary sum;
    char *row = fuzz_strndup(data, size);
    if (import_summarise(row, &sum, &err)) {
        FUZZ_CHECK(sum.terminal <= sum.shards && sum.done + sum.failed == sum.terminal);
        FUZZ_CHECK((sum.failed > 0) == (sum.errors != NULL));
        if (import_decide(&sum) != IMPORT_DECISION_WAIT) {
            ImportComplete c = {.error = sum.errors};
            char *body = NULL;
            FUZZ_CHECK(import_complete_render(&c, &body, &err));
            free(body);
        }
        import_summary_finish(&sum);
    }
    free(row);
    if (created && spec.import_pgdata_p == JSON_PRESENCE_SET) { /* forwarded: decodes the same */
        ImportPgdataSpec again;
        json_t *fwd = import_pgdata_to_json(&spec.import);
        FUZZ_CHECK(import_pgdata_decode(fwd, &again, &err));
        FUZZ_CHECK(memcmp(&again, &spec.import, sizeof again) == 0);
        json_decref(fwd);
    }

    ObservedState obs;
    if (tenant_shard_observed_from_json(doc, &obs, &err))
        FUZZ_CHECK(obs.known ? obs.mode < SHARD_LOCATION_COUNT : true);
    json_decref(doc);
    return 0;
}
