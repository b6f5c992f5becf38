/*
 * tenant_shard.c: one tenant shard's state: observed entries (inline slots with an overflow
 * array), flags, generation, last error, the dirty rule and the describe JSON.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/str.h"

#include "storcon/shard_map.h"
#include "storcon/tenant_shard.h"

void tenant_shard_init(TenantShard *s, const TenantShardId *tsid, struct Tenant *tenant)
{
    memset(s, 0, sizeof(*s));
    s->tsid = *tsid;
    s->scheduling = SHARD_SCHEDULING_ACTIVE;
    s->tenant = tenant;
    s->generation = GENERATION_NONE;
    s->generation_pageserver = NODE_ID_NONE;
    s->intent.attached = NODE_ID_NONE;
}

void tenant_shard_finish(TenantShard *s)
{
    free(s->observed_more);
    s->observed_more = NULL;
    s->observed_more_cap = 0;
    s->n_observed = 0;
    free(s->last_error);
    s->last_error = NULL;
}

/* ---- per-tenant data ---- */

uint32_t tenant_shard_stripe_size(const TenantShard *s)
{
    return s->tenant->stripe_size;
}

PlacementPolicy tenant_shard_policy(const TenantShard *s)
{
    return s->tenant->policy;
}

const char *tenant_shard_preferred_az(const TenantShard *s)
{
    return s->tenant->preferred_az;
}

const char *tenant_shard_config_json(const TenantShard *s)
{
    return s->tenant->config_json;
}

/* ---- intent ---- */

IntentRole tenant_shard_intent_role(const TenantShard *s, NodeId node)
{
    if (node == NODE_ID_NONE)
        return INTENT_ROLE_NONE;
    if (s->intent.attached == node)
        return INTENT_ROLE_ATTACHED;
    for (unsigned i = 0; i < s->intent.n_secondaries; i++) {
        if (s->intent.secondaries[i] == node)
            return INTENT_ROLE_SECONDARY;
    }
    return INTENT_ROLE_NONE;
}

bool tenant_shard_intent_is_empty(const TenantShard *s)
{
    return s->intent.attached == NODE_ID_NONE && s->intent.n_secondaries == 0;
}

void tenant_shard_wanted(const TenantShard *s, NodeId node, ObservedState *out)
{
    memset(out, 0, sizeof(*out));
    out->known = true;
    out->generation = GENERATION_NONE;
    switch (tenant_shard_intent_role(s, node)) {
    case INTENT_ROLE_ATTACHED:
        out->mode = SHARD_LOCATION_ATTACHED_SINGLE;
        out->generation = s->generation;
        break;
    case INTENT_ROLE_SECONDARY:
        out->mode = SHARD_LOCATION_SECONDARY;
        out->secondary_warm = true;
        break;
    case INTENT_ROLE_NONE:
    case INTENT_ROLE_COUNT:
    default:
        out->mode = SHARD_LOCATION_DETACHED;
        break;
    }
}

/* ---- observed state ---- */

static inline ObservedSlot *slot_at(TenantShard *s, size_t i)
{
    return i < TENANT_SHARD_OBSERVED_INLINE ? &s->observed[i]
                                            : &s->observed_more[i - TENANT_SHARD_OBSERVED_INLINE];
}

static inline const ObservedSlot *slot_at_const(const TenantShard *s, size_t i)
{
    return i < TENANT_SHARD_OBSERVED_INLINE ? &s->observed[i]
                                            : &s->observed_more[i - TENANT_SHARD_OBSERVED_INLINE];
}

/* find_slot: the index of node's entry, or -1. */
static ptrdiff_t find_slot(const TenantShard *s, NodeId node)
{
    for (size_t i = 0; i < s->n_observed; i++) {
        if (slot_at_const(s, i)->node == node)
            return (ptrdiff_t)i;
    }
    return -1;
}

static void slot_to_state(const ObservedSlot *slot, ObservedState *out)
{
    memset(out, 0, sizeof(*out));
    out->generation = GENERATION_NONE;
    if (slot->mode == OBSERVED_SLOT_UNKNOWN) {
        out->known = false;
        return;
    }
    out->known = true;
    out->mode = (ShardLocationMode)slot->mode;
    if (!(slot->flags & OBSERVED_SLOT_GEN_NONE))
        out->generation = (Generation)slot->generation;
    out->secondary_warm = (slot->flags & OBSERVED_SLOT_WARM) != 0;
}

static void state_to_slot(const ObservedState *st, ObservedSlot *slot)
{
    slot->flags = 0;
    slot->generation = 0;
    if (st == NULL || !st->known) {
        slot->mode = OBSERVED_SLOT_UNKNOWN;
        slot->flags = OBSERVED_SLOT_GEN_NONE;
        return;
    }
    if ((unsigned)st->mode >= SHARD_LOCATION_COUNT)
        abort(); /* programming error: not a mode */
    slot->mode = (uint8_t)st->mode;
    if (st->generation == GENERATION_NONE) {
        slot->flags |= OBSERVED_SLOT_GEN_NONE;
    } else {
        if (st->generation < 0 || st->generation > GENERATION_MAX)
            abort(); /* programming error: not a u32 generation */
        slot->generation = (uint32_t)st->generation;
    }
    if (st->secondary_warm)
        slot->flags |= OBSERVED_SLOT_WARM;
}

/* add_slot: append an entry for node, growing the overflow array when the inline slots are
 * full. */
static ObservedSlot *add_slot(TenantShard *s, NodeId node)
{
    size_t i = s->n_observed;
    if (i >= TENANT_SHARD_MAX_OBSERVED)
        abort(); /* more observed locations than nodes could ever justify: a bug */
    if (i >= TENANT_SHARD_OBSERVED_INLINE) {
        size_t more = i - TENANT_SHARD_OBSERVED_INLINE;
        if (more >= s->observed_more_cap) {
            size_t cap = s->observed_more_cap == 0 ? 4 : (size_t)s->observed_more_cap * 2;
            s->observed_more = xrealloc(s->observed_more, cap * sizeof(*s->observed_more));
            s->observed_more_cap = (uint16_t)cap;
        }
    }
    s->n_observed++;
    ObservedSlot *slot = slot_at(s, i);
    memset(slot, 0, sizeof(*slot));
    slot->node = node;
    return slot;
}

bool tenant_shard_observed_get(const TenantShard *s, NodeId node, ObservedState *out)
{
    ptrdiff_t i = find_slot(s, node);
    if (i < 0)
        return false;
    if (out != NULL)
        slot_to_state(slot_at_const(s, (size_t)i), out);
    return true;
}

void tenant_shard_observed_set(TenantShard *s, NodeId node, const ObservedState *state)
{
    ptrdiff_t i = find_slot(s, node);
    ObservedSlot *slot = i >= 0 ? slot_at(s, (size_t)i) : add_slot(s, node);
    state_to_slot(state, slot);
}

void tenant_shard_observed_set_unknown(TenantShard *s, NodeId node)
{
    tenant_shard_observed_set(s, node, NULL);
}

bool tenant_shard_observed_mark_unknown_if_present(TenantShard *s, NodeId node)
{
    ptrdiff_t i = find_slot(s, node);
    if (i < 0)
        return false;
    state_to_slot(NULL, slot_at(s, (size_t)i));
    return true;
}

bool tenant_shard_observed_remove(TenantShard *s, NodeId node)
{
    ptrdiff_t i = find_slot(s, node);
    if (i < 0)
        return false;
    size_t last = (size_t)s->n_observed - 1;
    if ((size_t)i != last)
        *slot_at(s, (size_t)i) = *slot_at(s, last);
    s->n_observed--;
    if (s->n_observed <= TENANT_SHARD_OBSERVED_INLINE && s->observed_more != NULL) {
        free(s->observed_more);
        s->observed_more = NULL;
        s->observed_more_cap = 0;
    }
    return true;
}

void tenant_shard_observed_clear(TenantShard *s)
{
    free(s->observed_more);
    s->observed_more = NULL;
    s->observed_more_cap = 0;
    s->n_observed = 0;
}

void tenant_shard_observed_at(const TenantShard *s, size_t i, NodeId *node, ObservedState *out)
{
    const ObservedSlot *slot = slot_at_const(s, i);
    if (node != NULL)
        *node = slot->node;
    if (out != NULL)
        slot_to_state(slot, out);
}

bool tenant_shard_observed_from_json(const json_t *config, ObservedState *out, Err *err)
{
    if (!json_is_object(config)) {
        err_set(err, ERR_BAD_REQUEST, "location config: expected an object");
        return false;
    }
    const json_t *mode = json_object_get(config, "mode");
    if (!json_is_string(mode)) {
        err_set(err, ERR_BAD_REQUEST, "location config: field \"mode\": expected a string");
        return false;
    }
    ObservedState st = {true, SHARD_LOCATION_DETACHED, GENERATION_NONE, false};
    if (!shard_location_mode_parse(json_string_value(mode), &st.mode, err)) {
        err_prefix(err, "location config: ");
        return false;
    }
    const json_t *gen = json_object_get(config, "generation");
    if (gen != NULL && !json_is_null(gen)) {
        if (!json_is_integer(gen) || json_integer_value(gen) < 0 ||
            json_integer_value(gen) > GENERATION_MAX) {
            err_set(err, ERR_BAD_REQUEST,
                    "location config: field \"generation\": expected an integer 0..%lld or null",
                    (long long)GENERATION_MAX);
            return false;
        }
        st.generation = (Generation)json_integer_value(gen);
    }
    const json_t *sec = json_object_get(config, "secondary_conf");
    if (sec != NULL && !json_is_null(sec)) {
        const json_t *warm = json_object_get(sec, "warm");
        if (!json_is_object(sec) || (warm != NULL && !json_is_boolean(warm))) {
            err_set(err, ERR_BAD_REQUEST,
                    "location config: field \"secondary_conf\": expected {\"warm\": bool} or "
                    "null");
            return false;
        }
        st.secondary_warm = json_is_true(warm);
    }
    *out = st;
    return true;
}

/* ---- generation, flags, sequence, error ---- */

void tenant_shard_set_generation(TenantShard *s, Generation gen, NodeId node)
{
    s->generation = gen;
    s->generation_pageserver = node;
    s->flags &= (uint8_t)~TENANT_SHARD_GENERATION_UNUSED;
    s->sequence++;
}

bool tenant_shard_take_unused_generation(TenantShard *s)
{
    bool unused = (s->flags & TENANT_SHARD_GENERATION_UNUSED) != 0 &&
                  s->generation != GENERATION_NONE && s->generation_pageserver != NODE_ID_NONE;
    s->flags &= (uint8_t)~TENANT_SHARD_GENERATION_UNUSED;
    return unused;
}

void tenant_shard_set_pending_notify(TenantShard *s, bool pending)
{
    if (pending)
        s->flags |= TENANT_SHARD_PENDING_NOTIFY;
    else
        s->flags &= (uint8_t)~TENANT_SHARD_PENDING_NOTIFY;
}

void tenant_shard_mark_dirty(TenantShard *s)
{
    s->flags |= TENANT_SHARD_FORCE_DIRTY;
    s->sequence++;
}

void tenant_shard_clear_dirty(TenantShard *s)
{
    s->flags &= (uint8_t)~TENANT_SHARD_FORCE_DIRTY;
}

uint64_t tenant_shard_bump_sequence(TenantShard *s)
{
    return ++s->sequence;
}

void tenant_shard_set_last_error(TenantShard *s, const char *msg)
{
    free(s->last_error);
    s->last_error = NULL;
    if (msg == NULL || msg[0] == '\0')
        return;
    size_t len = strnlen(msg, TENANT_SHARD_LAST_ERROR_MAX);
    s->last_error = xstrndup(msg, len);
}

const char *tenant_shard_last_error(const TenantShard *s)
{
    return s->last_error != NULL ? s->last_error : "";
}

/* ---- scheduling-policy contract ---- */

/* A splitting shard is the split operation's alone (storcon/service_split.c): nothing schedules,
 * reconciles or optimises it until the split commits or aborts. */
bool tenant_shard_may_schedule(const TenantShard *s)
{
    return !s->splitting && (s->scheduling == SHARD_SCHEDULING_ACTIVE ||
                             s->scheduling == SHARD_SCHEDULING_ESSENTIAL);
}

bool tenant_shard_may_reconcile(const TenantShard *s)
{
    return !s->splitting && s->scheduling != SHARD_SCHEDULING_STOP;
}

bool tenant_shard_may_optimize(const TenantShard *s)
{
    return !s->splitting && s->scheduling == SHARD_SCHEDULING_ACTIVE;
}

/* ---- dirty ---- */

/* tenant_shard_is_dirty: hot path of the background pass (100,000 shards every 20 s), so it
 * works on the compact slots directly and looks each node up once. */
bool tenant_shard_is_dirty(const TenantShard *s, const NodeSet *nodes)
{
    if (s->flags & (TENANT_SHARD_PENDING_NOTIFY | TENANT_SHARD_FORCE_DIRTY))
        return true;
    const ShardIntent *in = &s->intent;

    if (in->attached != NODE_ID_NONE && node_set_is_available(nodes, in->attached)) {
        ptrdiff_t i = find_slot(s, in->attached);
        if (i < 0)
            return true;
        const ObservedSlot *o = slot_at_const(s, (size_t)i);
        if (o->mode != SHARD_LOCATION_ATTACHED_SINGLE || (o->flags & OBSERVED_SLOT_GEN_NONE) ||
            s->generation == GENERATION_NONE || (Generation)o->generation != s->generation)
            return true;
    }
    for (unsigned k = 0; k < in->n_secondaries; k++) {
        NodeId node = in->secondaries[k];
        if (!node_set_is_available(nodes, node))
            continue;
        ptrdiff_t i = find_slot(s, node);
        if (i < 0)
            return true;
        const ObservedSlot *o = slot_at_const(s, (size_t)i);
        if (o->mode != SHARD_LOCATION_SECONDARY || !(o->flags & OBSERVED_SLOT_WARM))
            return true;
    }
    for (size_t i = 0; i < s->n_observed; i++) {
        const ObservedSlot *o = slot_at_const(s, i);
        if (o->mode == SHARD_LOCATION_DETACHED)
            continue;
        if (tenant_shard_intent_role(s, o->node) != INTENT_ROLE_NONE)
            continue; /* checked above */
        if (node_set_is_available(nodes, o->node))
            return true; /* something (or something unknown) to detach */
    }
    return false;
}

json_t *tenant_shard_to_json(const TenantShard *s)
{
    char tsid[TSID_STR_SIZE];
    tsid_format(&s->tsid, tsid);
    json_t *secondaries = json_array();
    for (unsigned i = 0; i < s->intent.n_secondaries; i++)
        json_array_append_new(secondaries, json_integer((json_int_t)s->intent.secondaries[i]));
    const char *az = s->tenant != NULL ? s->tenant->preferred_az : "";
    json_t *j = json_pack(
        "{s:s, s:o, s:o, s:s, s:b, s:b, s:b, s:b, s:o, s:o}", "tenant_shard_id", tsid,
        "node_attached",
        s->intent.attached == NODE_ID_NONE ? json_null()
                                           : json_integer((json_int_t)s->intent.attached),
        "node_secondary", secondaries, "last_error", tenant_shard_last_error(s), "is_reconciling",
        (int)tenant_shard_is_reconciling(s), "is_pending_compute_notification",
        (int)tenant_shard_pending_notify(s), "is_splitting", (int)tenant_shard_is_splitting(s),
        "is_importing", (int)((s->flags & TENANT_SHARD_IMPORTING) != 0), "scheduling_policy",
        shard_scheduling_policy_to_json(tenant_shard_scheduling(s)), "preferred_az_id",
        az[0] == '\0' ? json_null() : json_string(az));
    if (j == NULL)
        abort();
    return j;
}
