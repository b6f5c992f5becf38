"""Storage controller compatibility with Neon's clients (docs/api.md, storcon.md): defects found by driving storcon with the shapes Neon's tools send and expect.

- location_config answers list only shards with an attached node (node_id is required);
- a tenant moved to Secondary then Detached has no compute notification pending, so
  reconcile_all settles and DELETE succeeds;
- the attach hook leaves the node's state unknown, so a reconcile attaches it;
- shard fields are validated by one rule set, the count capped by --max-shards-per-tenant;
- the operator routes POST /debug/v1/inspect, GET /debug/v1/tenant and
  GET /control/v1/node/{id}/shards, PUT /control/v1/preferred_azs answer in Neon's shapes;
- startup retries the location listing of a pageserver still re-attaching (503);
- re-attach accepts Neon's "empty_local_disk" and re-pushes what a disk-less node is told;
"""

import time

from storcon_env import (  # noqa: F401 - fixtures are used by name
    cluster,
    cluster_factory,
    error_msg,
    new_id,
    ok_json,
    tsid_of,
    wait_for,
)

LOC = {"mode": "AttachedSingle", "generation": 1, "secondary_conf": None,
       "shard_number": 0, "shard_count": 0, "shard_stripe_size": 2048, "tenant_conf": {}}


def put_location(cl, tenant, **fields):
    return cl.storcon.put(f"/v1/tenant/{tenant}/location_config", json={**LOC, **fields},
                          timeout=60)


def test_location_config_secondary_detached_answers_and_settles(cluster_factory):
    cl = cluster_factory(2)
    tenant = new_id()
    # The control plane fails the attach's notification: the tenant is pending when it leaves.
    rule = cl.cp.respond("PUT", "/notify-attach", status=500, body={"msg": "down"})
    body = ok_json(put_location(cl, tenant))
    assert [s["shard_id"] for s in body["shards"]] == [tenant], body
    assert isinstance(body["shards"][0]["node_id"], int), body

    wait_for(lambda: cl.notifications(tenant), timeout=20, what="notification tried")
    wait_for(lambda: cl.describe(tenant)["shards"][0]["is_pending_compute_notification"],
             timeout=10, what="pending notification")
    cl.cp.rules.remove(rule)

    # Secondary: no shard has an attached node: none is listed (node_id is never null).
    body = ok_json(put_location(cl, tenant, mode="Secondary", generation=None,
                                secondary_conf={"warm": True}))
    assert body["shards"] == [], body

    # Detached: same answer, and nothing stays pending: reconcile_all settles.
    body = ok_json(put_location(cl, tenant, mode="Detached", generation=None))
    assert body["shards"] == [], body
    cl.reconcile_until_idle(timeout=30)
    shard = cl.describe(tenant)["shards"][0]
    assert not shard["is_pending_compute_notification"], shard
    assert cl.tenant_locations(tenant) == {}, cl.tenant_locations(tenant)

    # DELETE succeeds (it was 503 on every retry while a notification stayed pending).
    r = cl.delete_tenant(tenant)
    assert r.status_code in (200, 202), r.text
    error_msg(cl.storcon.get(f"/control/v1/tenant/{tenant}"), 404)

    # The tenant comes back attached: the control plane is told again.
    body = ok_json(put_location(cl, tenant, generation=None))
    assert len(body["shards"]) == 1 and isinstance(body["shards"][0]["node_id"], int), body
    cl.reconcile_until_idle()


def test_reattach_empty_local_disk(cluster_factory):
    """Neon's pageservers send "empty_local_disk" in re-attach; true means the node lost its disk:
    the attachment it is answered is not assumed in place, so a reconcile re-pushes it."""
    cl = cluster_factory(2)
    tenant, _ = cl.create_tenant(placement={"Attached": 1})
    cl.reconcile_until_idle()
    node = cl.attached(tenant)[tenant]
    gen_before = cl.db_generations(tenant)[tenant]

    # The field is accepted (false or null: an ordinary re-attach, nothing to re-push).
    for value in (False, None):
        body = ok_json(cl.storcon.post("/upcall/v1/re-attach",
                                       json={"node_id": node, "empty_local_disk": value}))
        assert {"id": tenant, "gen": cl.db_generations(tenant)[tenant], "mode": "AttachedSingle"}\
            .items() <= next(t for t in body["tenants"] if t["id"] == tenant).items(), body
        assert cl.reconcile_all() == 0
    # The pageserver never saw those re-attaches: it holds the old generation.
    held = ok_json(cl.ps(node).get(f"/v1/location_config/{tenant}"))
    assert held["generation"] == gen_before, held

    # true: the bumped generation is answered, and the next reconcile pushes the attachment.
    body = ok_json(cl.storcon.post("/upcall/v1/re-attach",
                                   json={"node_id": node, "empty_local_disk": True}))
    entry = next(t for t in body["tenants"] if t["id"] == tenant)
    assert entry["gen"] > gen_before and entry["mode"] == "AttachedSingle", body
    # The re-attach starts the reconcile itself (the controller is ready): the pageserver ends up
    # holding the shard in the controller's latest generation.
    cl.reconcile_until_idle()
    gen = cl.db_generations(tenant)[tenant]
    assert gen >= entry["gen"], (entry, gen)
    held = ok_json(cl.ps(node).get(f"/v1/location_config/{tenant}"))
    assert held["mode"] == "AttachedSingle" and held["generation"] == gen, held
    # A wrong type is still refused.
    error_msg(cl.storcon.post("/upcall/v1/re-attach",
                              json={"node_id": node, "empty_local_disk": "yes"}), 400)


def test_attach_hook_then_reconcile_attaches(cluster_factory):
    """The attach hook issues a generation for a node but does not claim the node holds it: when
    the caller does not attach the pageserver itself, the next reconcile does (before, it only
    detached the old location and the shard ended attached nowhere)."""
    cl = cluster_factory(2)
    tenant, _ = cl.create_tenant()
    cl.reconcile_until_idle()
    old = cl.attached(tenant)[tenant]
    new = next(ps.id for ps in cl.pageservers if ps.id != old)
    hook = ok_json(cl.attach_hook(tenant, new))
    assert hook["gen"] >= 2, hook
    cl.reconcile_until_idle()
    assert cl.attached(tenant)[tenant] == new
    gen = cl.db_generations(tenant)[tenant]
    assert gen >= hook["gen"], (hook, gen)
    # Attached exactly once, on the hook's node, in the controller's generation.
    assert cl.attached_locations(tenant) == {tenant: [(new, gen, "AttachedSingle")]}, \
        cl.tenant_locations(tenant)


def test_shard_fields_validated_identically_and_capped(cluster_factory):
    """POST /v1/tenant and location_config (new or existing tenant) check shard fields with one
    rule set; --max-shards-per-tenant caps the count."""
    cl = cluster_factory(1, storcon_args=("--max-shards-per-tenant", "4"))
    # The cap.
    msg = error_msg(cl.storcon.post("/v1/tenant", json={
        "new_tenant_id": new_id(), "shard_parameters": {"count": 8, "stripe_size": 2048}}), 400)
    assert "maximum of 4" in msg, msg
    error_msg(put_location(cl, new_id(), shard_count=8), 400)
    cl.create_tenant(count=4, stripe=2048)
    # Stripe 0: the same refusal from both routes (location_config used to onboard it as 2048).
    m1 = error_msg(cl.storcon.post("/v1/tenant", json={
        "new_tenant_id": new_id(), "shard_parameters": {"count": 2, "stripe_size": 0}}), 400)
    fresh = new_id()
    m2 = error_msg(put_location(cl, fresh, shard_stripe_size=0), 400)
    assert m1 == m2, (m1, m2)
    error_msg(cl.storcon.get(f"/control/v1/tenant/{fresh}"), 404)
    # An existing tenant: invalid or mismatching shard fields are refused, not ignored.
    tenant = new_id()
    ok_json(put_location(cl, tenant))
    for bad in ({"shard_count": 255}, {"shard_number": 1}, {"shard_count": 2, "shard_number": 2},
                {"shard_stripe_size": 0}, {"shard_count": 2}):
        error_msg(put_location(cl, tenant, **bad), 400)
    ok_json(put_location(cl, tenant, shard_count=1))
    cl.reconcile_until_idle()


def test_operator_routes_inspect_dump_node_shards(cluster_factory):
    cl = cluster_factory(2)
    tenant, _ = cl.create_tenant(count=2, stripe=2048, placement={"Attached": 1})
    cl.reconcile_until_idle()
    attached = cl.attached(tenant)
    gens = cl.db_generations(tenant)
    s0 = tsid_of(tenant, 0, 2)

    # inspect: Neon's InspectRequest / InspectResponse.
    body = ok_json(cl.storcon.post("/debug/v1/inspect", json={"tenant_shard_id": s0}))
    assert body == {"attachment": [gens[s0], attached[s0]]}, body
    body = ok_json(cl.storcon.post("/debug/v1/inspect",
                                   json={"tenant_shard_id": tsid_of(new_id(), 0, 2)}))
    assert body == {"attachment": None}, body
    error_msg(cl.storcon.post("/debug/v1/inspect", json={"tenant_shard_id": "nope"}), 400)

    # the shard dump.
    dump = ok_json(cl.storcon.get("/debug/v1/tenant"))
    mine = {s["tenant_shard_id"]: s for s in dump if s["tenant_shard_id"].startswith(tenant)}
    assert sorted(mine) == sorted(attached), dump
    for tsid, s in mine.items():
        assert s["node_attached"] == attached[tsid] and s["generation"] == gens[tsid], s
        assert s["policy"] == {"Attached": 1} and len(s["node_secondary"]) == 1, s

    # a node's shards: every shard is attached on one node and secondary on the other.
    for ps in cl.pageservers:
        body = ok_json(cl.storcon.get(f"/control/v1/node/{ps.id}/shards"))
        assert body["node_id"] == ps.id, body
        mine = {s["tenant_shard_id"]: s for s in body["shards"]
                if s["tenant_shard_id"].startswith(tenant)}
        assert sorted(mine) == sorted(attached), body
        for tsid, s in mine.items():
            secondary = attached[tsid] != ps.id
            assert s == {"tenant_shard_id": tsid, "is_intended_secondary": secondary,
                         "is_observed_secondary": secondary}, s
    error_msg(cl.storcon.get("/control/v1/node/999/shards"), 404)


def test_preferred_azs(cluster_factory):
    """PUT /control/v1/preferred_azs (Neon's ShardsPreferredAzsRequest / Response)."""
    cl = cluster_factory(1)
    tenant, _ = cl.create_tenant(count=2, stripe=2048)
    cl.reconcile_until_idle()
    s0, s1 = tsid_of(tenant, 0, 2), tsid_of(tenant, 1, 2)
    ghost = tsid_of(new_id(), 0, 2)
    body = ok_json(cl.storcon.put("/control/v1/preferred_azs",
                                  json={"preferred_az_ids": {s0: "az-b", ghost: "az-b"}}))
    assert body == {"updated": [s0]}, body
    # The AZ is the tenant's: both shards show it, and a repeat changes nothing.
    assert {s["preferred_az_id"] for s in cl.describe(tenant)["shards"]} == {"az-b"}
    assert ok_json(cl.storcon.put("/control/v1/preferred_azs",
                                  json={"preferred_az_ids": {s1: "az-b"}})) == {"updated": []}
    ok_json(cl.consistency_check())
    # Persisted: a restarted controller still has it.
    cl.storcon.stop()
    cl.restart_storcon()
    assert {s["preferred_az_id"] for s in cl.describe(tenant)["shards"]} == {"az-b"}
    # null clears it.
    assert ok_json(cl.storcon.put("/control/v1/preferred_azs",
                                  json={"preferred_az_ids": {s1: None}})) == {"updated": [s1]}
    assert {s["preferred_az_id"] for s in cl.describe(tenant)["shards"]} == {None}
    # Bad bodies.
    for bad in ({"preferred_az_ids": {"nope": "az"}}, {"preferred_az_ids": {s0: 5}},
                {"preferred_az_ids": {s0: ""}}, {"ids": {}}):
        error_msg(cl.storcon.put("/control/v1/preferred_azs", json=bad), 400)


def test_startup_waits_for_a_pageserver_still_reattaching(cluster_factory):
    """A pageserver answers 503 until its re-attach is applied; a controller starting meanwhile
    retries its location listing instead of declaring the node Offline and moving its shards."""
    cl = cluster_factory(2)
    tenant, _ = cl.create_tenant(count=4, stripe=2048)
    cl.reconcile_until_idle()
    before = cl.attached(tenant)
    victim = cl.pageservers[0]
    assert victim.id in before.values(), before

    cl.storcon.stop()
    victim.stop()
    victim.start(wait=False)  # its re-attach fails (no controller): 503 on tenant routes
    time.sleep(6)  # its upcall backoff has grown to seconds
    r = victim.get("/v1/location_config")
    assert r.status_code == 503, r.text
    cl.restart_storcon()
    cl.wait_nodes("Active")
    cl.reconcile_until_idle()
    assert cl.attached(tenant) == before, "shards moved off a node that was only re-attaching"


def test_no_content_replies_are_json_null(cluster_factory):
    """Every reply without content is JSON null, as Neon's json_response(status, ()) sends it:
    a Neon client that asserts None on these must pass."""
    cl = cluster_factory(1)
    sc = cl.storcon
    tenant, _ = cl.create_tenant(count=1)
    cl.reconcile_until_idle()
    node = cl.pageservers[0].id

    def assert_null(r, status=200):
        assert r.status_code == status and r.content == b"null", \
            f"{r.request.method} {r.url}: {r.status_code} {r.text}"
        assert r.headers["Content-Type"].startswith("application/json")

    assert_null(sc.get("/status"))
    assert_null(sc.get("/ready"))
    assert_null(sc.put("/debug/v1/failpoints", json=[{"name": "compat-noop", "actions": "off"}]))
    assert_null(sc.put(f"/control/v1/node/{node}/config",
                       json={"node_id": node, "scheduling": "Active"}))
    assert_null(sc.put(f"/control/v1/tenant/{tenant}/policy", json={"scheduling": "Active"}))
    assert_null(sc.put("/v1/tenant/config", json={"tenant_id": tenant}))
    assert_null(sc.request("PATCH", "/v1/tenant/config", json={"tenant_id": tenant, "gc_period": "1h"}))
    assert_null(sc.post("/debug/v1/consistency_check", timeout=30))
    assert_null(sc.delete(f"/v1/tenant/{tenant}", timeout=60))
