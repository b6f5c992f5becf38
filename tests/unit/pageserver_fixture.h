/*
 * pageserver_fixture.h: the fixture of the pageserver unit tests that need a running app: an event
 * loop, the deferral queue, metrics, a file:// remote storage, two workers and a ready tenant
 * manager in a temporary directory; make_tsid and active_slot put ACTIVE slots into it.
 * Header-only (static functions) because every test is its own executable; include it after
 * cmocka.h.
 */
#ifndef TESTS_UNIT_PAGESERVER_FIXTURE_H
#define TESTS_UNIT_PAGESERVER_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "shared/fsutil.h"
#include "shared/metrics.h"
#include "shared/remote_storage.h"
#include "shared/str.h"
#include "shared/worker_pool.h"

#include "pageserver/app.h"
#include "pageserver/location_config.h"
#include "pageserver/slot.h"
#include "pageserver/tenant.h"

typedef struct Fixture {
    char tmp[256];
    PageserverApp app;
} Fixture;

static int fixture_setup(void **state)
{
    Fixture *f = xcalloc(1, sizeof(*f));
    Err err = {0};
    str_copy(f->tmp, sizeof(f->tmp), "/tmp/test_ps_tenant_XXXXXX");
    if (mkdtemp(f->tmp) == NULL)
        return -1;
    PageserverApp *app = &f->app;
    str_printf(app->cfg.workdir, sizeof(app->cfg.workdir), "%s/work", f->tmp);
    app->cfg.id = 7;
    char dir[512], url[600];
    str_printf(dir, sizeof(dir), "%s/tenants", app->cfg.workdir);
    str_printf(url, sizeof(url), "file://%s/remote", f->tmp);
    char remote_dir[512];
    str_printf(remote_dir, sizeof(remote_dir), "%s/remote", f->tmp);
    app->base = event_base_new();
    app->defer = loop_defer_new(app->base);
    app->metrics = metrics_registry_new();
    pageserver_metrics_register(app);
    if (!fs_mkdir_p(dir, 0700, &err) || !fs_mkdir_p(remote_dir, 0700, &err) ||
        !remote_storage_open(url, &app->remote, &err) ||
        !worker_pool_new_config(app->base, &(WorkerPoolConfig){.threads = 2}, &app->workers,
                                &err)) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return -1;
    }
    app->tenants = tenant_manager_new(app);
    app->tenants->ready = true;
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    Fixture *f = *state;
    PageserverApp *app = &f->app;
    worker_pool_free(app->workers);
    tenant_manager_free(app->tenants);
    remote_storage_free(app->remote);
    metrics_registry_free(app->metrics);
    loop_defer_free(app->defer);
    event_base_free(app->base);
    Err err = {0};
    if (!fs_remove_tree(f->tmp, &err))
        fprintf(stderr, "teardown: %s\n", err.msg);
    free(f);
    return 0;
}

static TenantShardId make_tsid(uint8_t tenant_byte, ShardNumber number, ShardCount count)
{
    TenantShardId t;
    memset(&t, 0, sizeof(t));
    memset(t.tenant_id.b, tenant_byte, sizeof(t.tenant_id.b));
    t.tenant_id.b[0] = (uint8_t)(tenant_byte * 7 + 1);
    t.number = number;
    t.count = count;
    return t;
}

/* active_slot: a slot of tsid with an attached config (stripe) made ACTIVE through the table. */
static TenantSlot *active_slot(TenantManager *mgr, const TenantShardId *tsid, uint32_t stripe)
{
    TenantSlot *slot = slot_new(mgr, tsid);
    LocationConfig cfg;
    location_config_init(&cfg);
    cfg.mode = LOCATION_MODE_ATTACHED_SINGLE;
    cfg.generation = 1;
    cfg.shard_number = tsid->number;
    cfg.shard_count = tsid->count;
    cfg.shard_stripe_size = tsid->count > 0 ? stripe : 0;
    slot_apply_config(slot, &cfg);
    location_config_finish(&cfg);
    assert_true(slot_set_state(slot, SLOT_ATTACHING));
    assert_true(slot_set_state(slot, SLOT_ACTIVE));
    return slot;
}

#endif
