/*
 * tenant.c: the per-tenant record every shard of a tenant shares (see tenant.h).
 */
#include "storcon/tenant.h"

#include <stdlib.h>

#include "shared/str.h"

Tenant *tenant_new(const TenantId *id, uint32_t stripe_size, PlacementPolicy policy,
                   const char *config_json)
{
    Tenant *t = xcalloc(1, sizeof(*t));
    t->id = *id;
    t->stripe_size = stripe_size;
    t->policy = policy;
    t->config_json = xstrdup(config_json != NULL ? config_json : "{}");
    return t;
}

void tenant_free(Tenant *t)
{
    if (t == NULL)
        return;
    free(t->config_json);
    free(t->shards);
    free(t);
}

void tenant_set_config(Tenant *tenant, const char *config_json)
{
    free(tenant->config_json);
    tenant->config_json = xstrdup(config_json != NULL ? config_json : "{}");
    for (size_t i = 0; i < tenant->n_shards; i++)
        tenant_shard_mark_dirty(tenant->shards[i]);
}

bool tenant_set_preferred_az(Tenant *tenant, const char *az, Err *err)
{
    if (az == NULL)
        az = "";
    if (!str_copy(tenant->preferred_az, sizeof(tenant->preferred_az), az)) {
        tenant->preferred_az[0] = '\0';
        err_set(err, ERR_BAD_REQUEST, "availability zone id longer than %d characters",
                NODE_AZ_SIZE - 1);
        return false;
    }
    return true;
}

size_t tenant_shards_with_count(const Tenant *tenant, ShardCount count)
{
    size_t n = 0;
    for (size_t i = 0; i < tenant->n_shards; i++) {
        if (tenant->shards[i]->tsid.count == count)
            n++;
    }
    return n;
}

ShardCount tenant_current_count(const Tenant *t)
{
    ShardCount c = 255;
    bool any = false;
    for (size_t i = 0; i < t->n_shards; i++) {
        if (!any || t->shards[i]->tsid.count < c)
            c = t->shards[i]->tsid.count;
        any = true;
    }
    return any ? c : 0;
}
