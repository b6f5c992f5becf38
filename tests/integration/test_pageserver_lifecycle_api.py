"""The older tenant lifecycle API of the pageserver (pageserver.md "The older lifecycle API"):
a control plane that only uses POST /v1/tenant, /attach, /detach, /ignore and /load can create,
move, ignore and load a tenant, across restarts, and every bad call is refused with {"msg"}
before anything changes."""

from fixtures.util import wait_until
from pageserver_env import (  # noqa: F401 - fixtures are used by name
    bootstrap,
    error_msg,
    fake_storcon,
    get_location,
    location_conf,
    new_id,
    ok_json,
    ps_env,
    put_location,
    tenant_detail,
    timelines,
    wait_ready,
    wait_tenant_active,
)

IGNORED = "ignored"


def tenant_dir(ps, tenant):
    return ps.workdir / "tenants" / tenant


def create(ps, tenant, gen, **fields):
    return ps.post("/v1/tenant", json={"new_tenant_id": tenant, "generation": gen, **fields},
                   timeout=60)


def test_create_attach_move_with_the_lifecycle_api(ps_env):
    storcon = ps_env.storcon
    ps1, ps2 = ps_env.pageserver(), ps_env.pageserver()
    tenant = new_id()

    # create: 201 with the id as a JSON string, Active at once, tenant config from the body
    gen1 = storcon.issue(tenant)
    storcon.set_intent(ps1.id, tenant, "AttachedSingle")
    r = create(ps1, tenant, gen1, gc_horizon=1234)
    assert ok_json(r, 201) == tenant
    assert ok_json(tenant_detail(ps1, tenant))["state"]["slug"] == "Active"
    conf = ok_json(ps1.get(f"/v1/tenant/{tenant}/config"))
    assert conf["tenant_specific_overrides"]["gc_horizon"] == 1234
    assert ok_json(get_location(ps1, tenant))["generation"] == gen1
    error_msg(create(ps1, tenant, gen1), 409)  # exists

    # data written before the move
    tl = bootstrap(ps1, tenant)["timeline_id"]

    # detach: 200 null, local data gone, remote untouched
    remote_before = ps_env.remote.keys(f"tenants/{tenant}/")
    assert remote_before
    r = ps1.post(f"/v1/tenant/{tenant}/detach")
    assert ok_json(r, 200) is None and r.content.strip() == b"null"
    storcon.set_intent(ps1.id, tenant, None)
    error_msg(tenant_detail(ps1, tenant), 404)
    assert not tenant_dir(ps1, tenant).exists()
    assert ps_env.remote.keys(f"tenants/{tenant}/") == remote_before
    error_msg(ps1.post(f"/v1/tenant/{tenant}/detach"), 404)  # nothing left to detach

    # attach on another pageserver in a higher generation, with its config from the start
    gen2 = storcon.issue(tenant)
    storcon.set_intent(ps2.id, tenant, "AttachedSingle")
    r = ps2.post(f"/v1/tenant/{tenant}/attach",
                 json={"generation": gen2, "config": {"pitr_interval": "2 days"}})
    assert r.status_code == 202 and r.content.strip() == b"null", r.text
    # the config is durable before the answer
    assert ok_json(get_location(ps2, tenant))["generation"] == gen2
    detail = wait_tenant_active(ps2, tenant)
    assert detail["generation"] == gen2 and tl in detail["timelines"]
    assert tl in timelines(ps2, tenant)
    conf = ok_json(ps2.get(f"/v1/tenant/{tenant}/config"))
    assert conf["tenant_specific_overrides"]["pitr_interval"] == "2d", conf
    # the new generation writes its own index (uploaded in the background after activation)
    wait_until(lambda: gen2 in ps_env.remote.index_keys(tenant, tl), timeout=10,
               what="generation 2's index")

    # same rules as location_config: a lower generation is refused and changes nothing
    msg = error_msg(ps2.post(f"/v1/tenant/{tenant}/attach", json={"generation": gen1}), 400)
    assert "lower" in msg
    assert ok_json(get_location(ps2, tenant))["generation"] == gen2

    ok_json(ps2.post(f"/v1/tenant/{tenant}/detach"))
    storcon.set_intent(ps2.id, tenant, None)


def test_ignore_and_load_across_a_restart(ps_env):
    storcon = ps_env.storcon
    ps = ps_env.pageserver()
    tenant = new_id()
    gen = storcon.issue(tenant)
    storcon.set_intent(ps.id, tenant, "AttachedSingle")
    assert ok_json(create(ps, tenant, gen, gc_horizon=4321), 201) == tenant

    # ignore: forgotten in memory, local files kept with a durable marker
    r = ps.post(f"/v1/tenant/{tenant}/ignore")
    assert ok_json(r, 200) is None and r.content.strip() == b"null"
    error_msg(tenant_detail(ps, tenant), 404)
    error_msg(get_location(ps, tenant), 404)
    assert (tenant_dir(ps, tenant) / "config").is_file()
    assert (tenant_dir(ps, tenant) / IGNORED).is_file()
    error_msg(ps.post(f"/v1/tenant/{tenant}/ignore"), 404)  # not in memory any more
    error_msg(create(ps, tenant, gen), 409)  # still exists here
    msg = error_msg(put_location(ps, tenant, location_conf("AttachedSingle", gen)), 409)
    assert "ignored" in msg

    # a restart keeps it ignored, although the re-attach answer lists it
    ps.restart()
    wait_ready(ps)
    error_msg(tenant_detail(ps, tenant), 404)
    assert (tenant_dir(ps, tenant) / IGNORED).is_file()
    assert (tenant_dir(ps, tenant) / "config").is_file()

    # load: 202, marker gone, attached again in the given generation with its config
    gen2 = storcon.issue(tenant)
    error_msg(ps.post(f"/v1/tenant/{tenant}/load", json={"generation": gen2, "bogus": 1}), 400)
    assert (tenant_dir(ps, tenant) / IGNORED).is_file()  # a refused load changes nothing
    r = ps.post(f"/v1/tenant/{tenant}/load", json={"generation": gen2})
    assert r.status_code == 202 and r.content.strip() == b"null", r.text
    assert not (tenant_dir(ps, tenant) / IGNORED).exists()
    detail = wait_tenant_active(ps, tenant)
    assert detail["generation"] == gen2
    conf = ok_json(ps.get(f"/v1/tenant/{tenant}/config"))
    assert conf["tenant_specific_overrides"]["gc_horizon"] == 4321
    error_msg(ps.post(f"/v1/tenant/{tenant}/load", json={"generation": gen2}), 409)  # loaded

    # and it stays loaded across a restart
    ps.restart()
    wait_ready(ps)
    wait_tenant_active(ps, tenant)

    # an ignored tenant is detached only with detach_ignored=true
    ok_json(ps.post(f"/v1/tenant/{tenant}/ignore"))
    msg = error_msg(ps.post(f"/v1/tenant/{tenant}/detach"), 404)
    assert "detach_ignored" in msg
    assert tenant_dir(ps, tenant).exists()
    error_msg(ps.post(f"/v1/tenant/{tenant}/detach", params={"detach_ignored": "maybe"}), 400)
    r = ps.post(f"/v1/tenant/{tenant}/detach", params={"detach_ignored": "true"})
    assert ok_json(r, 200) is None
    assert not tenant_dir(ps, tenant).exists()
    error_msg(ps.post(f"/v1/tenant/{tenant}/load", json={"generation": gen2 + 1}), 404)
    storcon.set_intent(ps.id, tenant, None)


def test_refused_ignore_leaves_no_marker(ps_env):
    """An ignore whose marker write fails after the rename (a failed directory fsync) is refused
    and leaves no marker behind: the tenant is still served, and still loaded after a restart."""
    storcon = ps_env.storcon
    ps = ps_env.pageserver()
    tenant = new_id()
    gen = storcon.issue(tenant)
    storcon.set_intent(ps.id, tenant, "AttachedSingle")
    assert ok_json(create(ps, tenant, gen), 201) == tenant
    ok_json(ps.put("/v1/failpoints",
                   json=[{"name": "tenant-file-written", "actions": "1*return(fsync failed)"}]))
    msg = error_msg(ps.post(f"/v1/tenant/{tenant}/ignore"), 500)
    assert "ignore marker" in msg and "fsync failed" in msg, msg
    assert not (tenant_dir(ps, tenant) / IGNORED).exists()
    assert ok_json(tenant_detail(ps, tenant))["state"]["slug"] == "Active"
    ps.restart()
    wait_ready(ps)
    wait_tenant_active(ps, tenant)
    ok_json(ps.post(f"/v1/tenant/{tenant}/detach"))
    storcon.set_intent(ps.id, tenant, None)


def test_lifecycle_api_errors(ps_env):
    storcon = ps_env.storcon
    ps = ps_env.pageserver()
    tenant = new_id()
    sharded = f"{tenant}-0102"

    # bad ids: 400 on every route
    for route in ("attach", "detach", "ignore", "load"):
        error_msg(ps.post(f"/v1/tenant/nothex/{route}", json={"generation": 1}), 400)
        error_msg(ps.post(f"/v1/tenant/{sharded}/{route}", json={"generation": 1}), 400)
    error_msg(create(ps, "nothex", 1), 400)

    # bodies: strict where Neon's types deny unknown fields, a generation where a control plane
    # is configured, generations start at 1
    error_msg(ps.post("/v1/tenant", json={"new_tenant_id": tenant, "generation": 1,
                                          "no_such_setting": 1}), 400)
    error_msg(ps.post("/v1/tenant", json={"generation": 1}), 400)
    assert "generation" in error_msg(ps.post("/v1/tenant", json={"new_tenant_id": tenant}), 400)
    error_msg(create(ps, tenant, 0), 400)
    error_msg(create(ps, tenant, 1, gc_horizon="lots"), 400)
    error_msg(ps.post("/v1/tenant", json={"new_tenant_id": tenant, "generation": 1,
                                          "shard_parameters": {"count": 2, "stripe_size": 8}}),
              400)
    error_msg(ps.post("/v1/tenant", data=b"{not json", timeout=10), 400)
    attach = f"/v1/tenant/{tenant}/attach"
    assert "generation" in error_msg(ps.post(attach), 400)  # empty body: no generation
    error_msg(ps.post(attach, json={"config": {}}), 400)
    error_msg(ps.post(attach, json={"generation": 0}), 400)
    error_msg(ps.post(attach, json={"generation": 1, "config": {"no_such_setting": 1}}), 400)
    error_msg(ps.post(attach, json={"generation": 1, "config": None}), 400)
    error_msg(ps.post(attach, json={"generation": "one"}), 400)
    error_msg(ps.post(f"/v1/tenant/{tenant}/load"), 400)  # no generation
    error_msg(ps.post(f"/v1/tenant/{tenant}/load", json={"generation": 1, "x": 1}), 400)
    # none of that changed anything
    error_msg(get_location(ps, tenant), 404)
    assert not tenant_dir(ps, tenant).exists()

    # unknown tenant
    error_msg(ps.post(f"/v1/tenant/{tenant}/detach"), 404)
    error_msg(ps.post(f"/v1/tenant/{tenant}/detach", params={"detach_ignored": "true"}), 404)
    error_msg(ps.post(f"/v1/tenant/{tenant}/ignore"), 404)
    error_msg(ps.post(f"/v1/tenant/{tenant}/load", json={"generation": 1}), 404)

    # Neon's attach body ignores unknown top-level keys (only "config" is strict)
    gen = storcon.issue(tenant)
    storcon.set_intent(ps.id, tenant, "AttachedSingle")
    r = ps.post(attach, json={"generation": gen, "config": {}, "extra": True})
    assert r.status_code == 202, r.text
    wait_tenant_active(ps, tenant)
    error_msg(create(ps, tenant, gen + 1), 409)
    ok_json(ps.post(f"/v1/tenant/{tenant}/detach"))
    storcon.set_intent(ps.id, tenant, None)
