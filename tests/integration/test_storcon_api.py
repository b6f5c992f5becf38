"""The storage controller's API contract (storcon.md "API", "Generations"; wire.md "Errors"):
pageservers registering through re-attach, node registration (idempotent, conflicting addresses
409, strict body), strict tenant create / config bodies (400 naming the unknown field, nothing
persisted), invalid ids 400, unknown tenants 404, the validate upcall (stale generation invalid,
unknown shard omitted), tenant delete, placement and scheduling policies,
location_config onboarding, auth scopes, metrics, and concurrent creates of one tenant.
"""

import threading
import time

import pytest

from storcon_env import (  # noqa: F401 - fixtures are used by name
    cluster,
    cluster_factory,
    error_msg,
    new_id,
    ok_json,
    shard_tsids,
    tsid_of,
    wait_for,
)


def _node_body(node_id, http_port=17001, pg_port=17002, az="az-a", addr="127.0.0.1"):
    return {"node_id": node_id, "listen_http_addr": addr, "listen_http_port": http_port,
            "listen_pg_addr": addr, "listen_pg_port": pg_port, "availability_zone_id": az}


def test_pageservers_register_through_reattach(cluster):
    nodes = cluster.nodes()
    assert sorted(nodes) == sorted(ps.id for ps in cluster.pageservers), nodes
    for ps in cluster.pageservers:
        n = nodes[ps.id]
        assert set(n) >= {"id", "availability", "scheduling", "availability_zone_id",
                          "listen_http_addr", "listen_http_port", "listen_pg_addr",
                          "listen_pg_port"}, n
        assert n["availability_zone_id"] == "local", n  # the pageserver's default AZ
        assert n["listen_http_addr"] == "127.0.0.1", n
        assert n["listen_http_port"] == ps.http_port, n
        assert n["listen_pg_port"] == ps.pg_port, n
        assert n["availability"] == "Active", n
        assert n["scheduling"] == "Active", n
        assert cluster.node(ps.id) == n
    sched = ok_json(cluster.storcon.get("/debug/v1/scheduler"))
    assert sched is not None, "GET /debug/v1/scheduler: empty body"
    rows = cluster.database.query(
        "SELECT node_id, listen_http_addr, listen_http_port, listen_pg_port, lifecycle "
        "FROM nodes ORDER BY node_id")
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == \
        [(ps.id, ps.http_port, ps.pg_port, "active") for ps in cluster.pageservers], rows


def test_node_registration_idempotent_and_conflicting(cluster_factory):
    cl = cluster_factory(0)
    sc = cl.storcon
    body = _node_body(50)
    ok_json(sc.post("/control/v1/node", json=body))
    ok_json(sc.post("/control/v1/node", json=body))  # same id and addresses: no-op
    n = cl.node(50)
    assert (n["listen_http_port"], n["listen_pg_port"], n["availability_zone_id"]) == \
        (17001, 17002, "az-a"), n
    assert n["availability"] == "Offline", f"never heartbeated, so Offline: {n}"
    # No schedulable node: tenant create is 503 (retry).
    ghost = new_id()
    error_msg(sc.post("/v1/tenant", json={"new_tenant_id": ghost}, timeout=40), 503)

    for other in (_node_body(50, http_port=17003), _node_body(50, pg_port=17004),
                  _node_body(50, addr="127.0.0.2")):
        error_msg(sc.post("/control/v1/node", json=other), 409)
    # ... and through re-attach's registration too.
    error_msg(sc.post("/upcall/v1/re-attach",
                      json={"node_id": 50, "register": _node_body(50, http_port=17005)}), 409)
    n = cl.node(50)
    assert n["listen_http_port"] == 17001, f"a conflicting registration changed the node: {n}"
    rows = cl.database.query("SELECT listen_http_port FROM nodes WHERE node_id = 50")
    assert rows == [(17001,)], rows

    # Strict body: unknown field named, missing field, wrong type.
    msg = error_msg(sc.post("/control/v1/node", json={**_node_body(51), "listen_htp_port": 1}),
                    400)
    assert "listen_htp_port" in msg, msg
    error_msg(sc.post("/control/v1/node", json={k: v for k, v in _node_body(52).items()
                                                if k != "listen_http_port"}), 400)
    error_msg(sc.post("/control/v1/node", json={**_node_body(53), "listen_http_port": "x"}), 400)
    error_msg(sc.post("/control/v1/node", json={**_node_body(54), "listen_http_port": 70000}), 400)
    assert sorted(cl.nodes()) == [50], cl.nodes()
    # Node configure: strict, the body's id must match the path's, unknown nodes 404.
    error_msg(sc.put("/control/v1/node/50/config", json={"node_id": 50, "schedulng": "Pause"}),
              400)
    error_msg(sc.put("/control/v1/node/50/config", json={"node_id": 51, "scheduling": "Pause"}),
              400)
    error_msg(sc.put("/control/v1/node/50/config", json={"node_id": 50, "scheduling": "Nap"}),
              400)
    error_msg(sc.put("/control/v1/node/77/config", json={"node_id": 77, "scheduling": "Pause"}),
              404)
    ok_json(sc.put("/control/v1/node/50/config", json={"node_id": 50, "scheduling": "Pause"}))
    assert cl.node(50)["scheduling"] == "Pause"
    rows = cl.database.query("SELECT scheduling_policy FROM nodes WHERE node_id = 50")
    assert len(rows) == 1 and "Pause" in rows[0][0], f"not persisted: {rows}"
    error_msg(sc.get("/control/v1/node/51"), 404)
    error_msg(sc.get("/control/v1/node/abc"), 400)


def test_unknown_fields_rejected_naming_the_field(cluster_factory):
    cl = cluster_factory(1)
    sc = cl.storcon
    tenant = new_id()

    # Tenant create: top level, shard_parameters, and a misspelt config field.
    cases = [
        ({"new_tenant_id": tenant, "bogus_field": 1}, "bogus_field"),
        ({"new_tenant_id": tenant, "shard_parameters": {"count": 2, "stripe_sise": 2048}},
         "stripe_sise"),
        ({"new_tenant_id": tenant, "pitr_intervall": "1h"}, "pitr_intervall"),
    ]
    for body, field in cases:
        msg = error_msg(sc.post("/v1/tenant", json=body, timeout=30), 400)
        assert field in msg, f"{body}: {msg!r} does not name {field}"
    # Wrongly typed values and malformed JSON.
    error_msg(sc.post("/v1/tenant", json={"new_tenant_id": tenant, "max_lsn_wal_lag": "x"}), 400)
    error_msg(sc.post("/v1/tenant", json={"new_tenant_id": tenant, "pitr_interval": "soon"}), 400)
    error_msg(sc.post("/v1/tenant", json={"new_tenant_id": tenant,
                                          "shard_parameters": {"count": "2"}}), 400)
    error_msg(sc.post("/v1/tenant", json={"new_tenant_id": tenant,
                                          "placement_policy": {"Attachd": 1}}), 400)
    error_msg(sc.request("POST", "/v1/tenant", data=b"{not json",
                         headers={"Content-Type": "application/json"}), 400)
    # Nothing was created by any of them.
    error_msg(sc.get(f"/control/v1/tenant/{tenant}"), 404)
    assert cl.db_shards(tenant) == {}

    # Config PUT / PATCH on an existing tenant: strict, and a rejected body changes nothing.
    ok_json(sc.post("/v1/tenant", json={"new_tenant_id": tenant, "pitr_interval": "1h"},
                    timeout=60), 201)
    for method in ("PUT", "PATCH"):
        r = sc.request(method, "/v1/tenant/config",
                       json={"tenant_id": tenant, "gc_horizon": 1024, "pitr_intervall": "2h"})
        msg = error_msg(r, 400)
        assert "pitr_intervall" in msg, (method, msg)
    cfg = ok_json(sc.get(f"/v1/tenant/{tenant}/config"))
    assert cfg["tenant_specific_overrides"] == {"pitr_interval": "1h"}, cfg

    # A good PATCH merges, is persisted and reaches the pageserver.
    ok_json(sc.request("PATCH", "/v1/tenant/config",
                       json={"tenant_id": tenant, "gc_horizon": 4096}))
    cfg = ok_json(sc.get(f"/v1/tenant/{tenant}/config"))
    assert cfg["tenant_specific_overrides"] == {"pitr_interval": "1h", "gc_horizon": 4096}, cfg
    assert cfg["effective_config"]["gc_horizon"] == 4096, cfg

    def pushed():
        conf = ok_json(cl.pageservers[0].get(f"/v1/location_config/{tenant}"))
        assert conf["tenant_conf"].get("gc_horizon") == 4096, conf
        assert conf["tenant_conf"].get("pitr_interval") == "1h", conf

    wait_for(pushed, timeout=20, what="config pushed to the pageserver")
    assert len(cfg["effective_config"]) > len(cfg["tenant_specific_overrides"]), \
        f"effective_config must include the defaults: {cfg}"
    # PATCH with null removes one field; bad values are refused and change nothing.
    ok_json(sc.request("PATCH", "/v1/tenant/config",
                       json={"tenant_id": tenant, "pitr_interval": None}))
    cfg = ok_json(sc.get(f"/v1/tenant/{tenant}/config"))
    assert cfg["tenant_specific_overrides"] == {"gc_horizon": 4096}, cfg
    for bad in ({"max_lsn_wal_lag": 0}, {"max_lsn_wal_lag": "7"}, {"gc_period": "often"},
                {"gc_horizon": -1}):
        error_msg(sc.request("PATCH", "/v1/tenant/config", json={"tenant_id": tenant, **bad}),
                  400)
    error_msg(sc.put("/v1/tenant/config", json={"gc_horizon": 1}), 400)  # no tenant_id
    assert ok_json(sc.get(f"/v1/tenant/{tenant}/config"))["tenant_specific_overrides"] == \
        {"gc_horizon": 4096}
    # PUT replaces.
    ok_json(sc.put("/v1/tenant/config", json={"tenant_id": tenant, "gc_horizon": 8192}))
    cfg = ok_json(sc.get(f"/v1/tenant/{tenant}/config"))
    assert cfg["tenant_specific_overrides"] == {"gc_horizon": 8192}, cfg
    rows = cl.db_shards(tenant)
    assert len(rows) == 1 and '"gc_horizon"' in rows[tenant]["config"], rows
    assert "pitr_interval" not in rows[tenant]["config"], rows


def test_invalid_ids_are_400(cluster_factory):
    cl = cluster_factory(1)
    sc = cl.storcon
    tenant, _ = cl.create_tenant(count=2, stripe=2048)
    bad_ids = ["xyz", "0" * 31, "g" * 32, "0" * 33, f"{tenant}-0", f"{tenant}-zz02",
               f"{tenant}-0202", f"{tenant}_0002"]
    for bad in ["xyz", "0" * 31, "g" * 32, "0" * 33]:
        error_msg(sc.post("/v1/tenant", json={"new_tenant_id": bad}), 400)
        error_msg(sc.get(f"/control/v1/tenant/{bad}"), 400)
        error_msg(sc.delete(f"/v1/tenant/{bad}"), 400)
        error_msg(sc.get(f"/v1/tenant/{bad}/config"), 400)
        error_msg(sc.get(f"/debug/v1/tenant/{bad}/locate"), 400)
        error_msg(sc.put(f"/control/v1/tenant/{bad}/policy", json={"scheduling": "Active"}), 400)
    for bad in bad_ids:
        error_msg(sc.get(f"/v1/tenant/{bad}/timeline"), 400)
        error_msg(sc.post("/debug/v1/attach-hook", json={"tenant_shard_id": bad, "node_id": 1}),
                  400)
    error_msg(cl.create_timeline(tenant, "not-a-timeline-id"), 400)
    # A passthrough GET with a malformed timeline id is refused by storcon itself (400), not
    # forwarded and translated (a pageserver 400 would become 409 by the proxy table).
    msg = error_msg(sc.get(f"/v1/tenant/{tenant}/timeline/not-a-timeline-id"), 400)
    assert "not-a-timeline-id" in msg, msg
    # Timeline create is strict too (a malformed import is never a silent bootstrap).
    msg = error_msg(cl.create_timeline(tenant, new_id(), pg_vresion=15), 400)
    assert "pg_vresion" in msg, msg
    error_msg(cl.create_timeline(tenant, new_id(), import_pgdata={"idempotency_key": "k"}), 400)
    error_msg(cl.create_timeline(tenant, new_id(), ancestor_timeline_id="xyz"), 400)
    assert ok_json(sc.get(f"/v1/tenant/{tenant}/timeline")) == [], \
        "a refused create left a timeline"
    error_msg(sc.post("/debug/v1/attach-hook", json={"tenant_shard_id": "nope", "node_id": 1}),
              400)
    r = cl.validate([(f"{tenant}-zz02", 1)])
    error_msg(r, 400)
    # Invalid shard parameters.
    for params in ({"count": 300}, {"count": 2, "stripe_size": 0}, {"count": -1}):
        error_msg(sc.post("/v1/tenant", json={"new_tenant_id": new_id(),
                                              "shard_parameters": params}), 400)
    # The tenant that exists is unaffected.
    assert sorted(cl.attached(tenant)) == shard_tsids(tenant, 2)


def test_unknown_tenant_is_404(cluster_factory):
    cl = cluster_factory(1)
    sc = cl.storcon
    ghost = new_id()
    tl = new_id()
    calls = [
        ("GET", f"/control/v1/tenant/{ghost}", None),
        ("GET", f"/v1/tenant/{ghost}", None),
        ("GET", f"/v1/tenant/{ghost}/timeline", None),
        ("GET", f"/v1/tenant/{tsid_of(ghost, 1, 2)}/timeline", None),
        ("GET", f"/v1/tenant/{ghost}/config", None),
        ("GET", f"/debug/v1/tenant/{ghost}/locate", None),
        ("DELETE", f"/v1/tenant/{ghost}", None),
        ("POST", f"/v1/tenant/{ghost}/timeline", {"new_timeline_id": tl}),
        ("DELETE", f"/v1/tenant/{ghost}/timeline/{tl}", None),
        ("PUT", f"/control/v1/tenant/{ghost}/policy", {"scheduling": "Pause"}),
        ("PUT", "/v1/tenant/config", {"tenant_id": ghost, "gc_horizon": 1}),
        ("PATCH", "/v1/tenant/config", {"tenant_id": ghost, "gc_horizon": 1}),
    ]
    for method, path, body in calls:
        error_msg(sc.request(method, path, json=body, timeout=30), 404)
    assert ok_json(sc.get("/control/v1/tenant")) == []
    error_msg(sc.get("/control/v1/node/999"), 404)


def test_validate_generations(cluster_factory):
    cl = cluster_factory(2)
    tenant, _ = cl.create_tenant(count=2, stripe=2048)
    cl.reconcile_until_idle()
    s0, s1 = shard_tsids(tenant, 2)
    gens = cl.db_generations(tenant)
    assert gens == {s0: 1, s1: 1}, gens

    body = ok_json(cl.validate([(s0, 1), (s1, 1)]))
    assert body == {"tenants": [{"id": s0, "valid": True}, {"id": s1, "valid": True}]}, body

    # A new generation for shard 0 (issued to the other node, which the shard then moves to):
    # generation 1 is now stale.
    other = next(ps.id for ps in cl.pageservers if ps.id != cl.attached(tenant)[s0])
    ok_json(cl.attach_hook(s0, other))
    cl.reconcile_until_idle()
    assert cl.attached(tenant)[s0] == other
    g0 = cl.db_generations(tenant)[s0]
    assert g0 >= 2, g0
    ghost = tsid_of(new_id(), 0, 2)
    body = ok_json(cl.validate([(s0, 1), (s1, 1), (ghost, 1), (s0, g0)]))
    answers = [(t["id"], t["valid"]) for t in body["tenants"]]
    assert (s0, False) in answers, body
    assert (s1, True) in answers, body
    assert (s0, True) in answers, body
    assert all(t != ghost for t, _ in answers), f"an unknown shard must be omitted: {body}"
    # A generation newer than issued is not valid either.
    body = ok_json(cl.validate([(s0, g0 + 1)]))
    assert body["tenants"] in ([], [{"id": s0, "valid": False}]), body
    # Strict body.
    error_msg(cl.storcon.post("/upcall/v1/validate", json={"tenants": [{"id": s0}]}), 400)
    # The attach-hook issues generations too, and validate follows it.
    hook = ok_json(cl.attach_hook(s1, cl.attached(tenant)[s1]))
    assert hook["gen"] == 2, hook
    body = ok_json(cl.validate([(s1, 1), (s1, 2)]))
    assert [(t["id"], t["valid"]) for t in body["tenants"]] == [(s1, False), (s1, True)], body


@pytest.mark.test_timeout(120)
def test_tenant_delete_detaches_everywhere(cluster):
    tenant, _ = cluster.create_tenant(count=3, stripe=2048)
    cluster.reconcile_until_idle()
    ok_json(cluster.create_timeline(tenant), 201)
    r = cluster.delete_tenant(tenant)
    assert r.status_code == 200, f"DELETE tenant: {r.status_code} {r.text}"
    error_msg(cluster.storcon.get(f"/control/v1/tenant/{tenant}"), 404)
    assert cluster.db_shards(tenant) == {}
    assert cluster.tenant_locations(tenant) == {}
    remote = cluster.env.remote_storage / "tenants"
    left = sorted(str(p.relative_to(remote)) for p in remote.rglob("*")
                  if p.is_file() and p.relative_to(remote).parts[0].startswith(tenant)) \
        if remote.exists() else []
    assert not left, f"remote data left after tenant delete: {left}"
    ok_json(cluster.consistency_check())


def _metric_samples(text: str) -> list:
    """[(name, labels text, value)] of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        out.append((name, labels.rstrip("}"), float(value)))
    return out


def _metric(samples, name, label_part=""):
    vals = [v for n, lab, v in samples if n == name and label_part in lab]
    assert vals, f"no metric {name}{{{label_part}}}: {sorted({n for n, _, _ in samples})}"
    return sum(vals)


def test_metrics_count_reconciles_nodes_and_latencies(cluster_factory):
    cl = cluster_factory(2)
    tenant, _ = cl.create_tenant(count=2, stripe=2048)
    cl.reconcile_until_idle()
    wait_for(lambda: cl.notifications(tenant), timeout=10, what="notify-attach")
    samples = _metric_samples(cl.storcon.metrics())
    assert _metric(samples, "storcon_reconciles_started_total") >= 2
    assert _metric(samples, "storcon_reconciles_succeeded_total") >= 2
    assert _metric(samples, "storcon_reconciles_failed_total") == 0
    assert _metric(samples, "storcon_reconciles_pending") == 0
    assert _metric(samples, "storcon_nodes", 'availability="Active"') == 2
    assert _metric(samples, "storcon_nodes", 'availability="Offline"') == 0
    assert _metric(samples, "compute_notifications_sent_total") >= 1
    # HTTP latency per route and database latency.
    routes = {lab for n, lab, _ in samples if n == "http_request_duration_seconds_count"}
    assert any("/v1/tenant" in lab for lab in routes), routes
    assert _metric(samples, "db_query_duration_seconds_count") > 0


def test_placement_and_scheduling_policies(cluster):
    """Placement Detached / Secondary / {"Attached": 0}; scheduling Stop leaves a shard alone
    even when its node goes Offline, Active lets it move; a node with scheduling Pause gets no
    new shards."""
    tenant, body = cluster.create_tenant(count=2, stripe=2048, placement="Detached")
    cluster.reconcile_until_idle()
    s0, s1 = shard_tsids(tenant, 2)
    desc = cluster.describe(tenant)
    assert desc["policy"] == "Detached", desc
    assert all(s["node_attached"] is None and s["node_secondary"] == [] for s in desc["shards"])
    assert cluster.tenant_locations(tenant) == {}, cluster.tenant_locations(tenant)
    error_msg(cluster.storcon.get(f"/debug/v1/tenant/{tenant}/locate"), 503)
    # Nothing attached: passthrough and timeline create cannot be served -> 503 (retry).
    error_msg(cluster.storcon.get(f"/v1/tenant/{tenant}/timeline"), 503)
    error_msg(cluster.create_timeline(tenant), 503)

    ok_json(cluster.storcon.put(f"/control/v1/tenant/{tenant}/policy",
                                json={"placement": "Secondary"}))
    cluster.reconcile_until_idle()
    locs = cluster.tenant_locations(tenant)
    for t in (s0, s1):
        modes = [c["mode"] if c is not None else None for c in locs.get(t, {}).values()]
        assert modes == ["Secondary"], (t, locs.get(t), cluster.describe(tenant))
    rows = cluster.db_shards(tenant)
    assert all(r["placement_policy"].replace(" ", "") == '"Secondary"' for r in rows.values()), rows

    ok_json(cluster.storcon.put(f"/control/v1/tenant/{tenant}/policy",
                                json={"placement": {"Attached": 0}}))
    cluster.reconcile_until_idle()
    attached = cluster.attached(tenant)
    gens = cluster.db_generations(tenant)
    assert cluster.attached_locations(tenant) == {
        t: [(attached[t], gens[t], "AttachedSingle")] for t in (s0, s1)}
    for t in (s0, s1):  # no leftover secondary
        assert [c["mode"] for c in cluster.tenant_locations(tenant)[t].values()] == \
            ["AttachedSingle"], t

    # Scheduling Stop: the node of shard 0 goes Offline, nothing moves.
    ok_json(cluster.storcon.put(f"/control/v1/tenant/{tenant}/policy",
                                json={"scheduling": "Stop"}))
    victim = attached[s0]
    ok_json(cluster.storcon.put(f"/control/v1/node/{victim}/config",
                                json={"node_id": victim, "availability": "Offline",
                                      "scheduling": "Pause"}))
    cluster.reconcile_all()
    time.sleep(1.0)
    assert cluster.attached(tenant)[s0] == victim, cluster.describe(tenant)
    assert cluster.db_generations(tenant) == gens
    # Active again: shard 0 leaves the paused node (it is not schedulable).
    ok_json(cluster.storcon.put(f"/control/v1/tenant/{tenant}/policy",
                                json={"scheduling": "Active"}))

    def moved():
        cluster.reconcile_all()
        now = cluster.attached(tenant)
        assert now[s0] not in (None, victim), now

    wait_for(moved, timeout=20, what="shard 0 moved off the paused node")
    cluster.reconcile_until_idle()
    assert cluster.node(victim)["scheduling"] == "Pause"
    # A new tenant avoids the paused node.
    other, _ = cluster.create_tenant(count=4, stripe=2048)
    cluster.reconcile_until_idle()
    assert victim not in cluster.attached(other).values(), cluster.attached(other)
    ok_json(cluster.consistency_check())
    # Bad policy bodies.
    error_msg(cluster.storcon.put(f"/control/v1/tenant/{tenant}/policy",
                                  json={"scheduling": "Sometimes"}), 400)
    error_msg(cluster.storcon.put(f"/control/v1/tenant/{tenant}/policy",
                                  json={"placement": {"Attached": 0}, "extra": 1}), 400)


def test_location_config_onboarding(cluster_factory):
    """PUT /v1/tenant/{tsid}/location_config with an unsharded id creates the tenant adopting the
    request's generation; later generations come from the controller alone; Detached detaches."""
    cl = cluster_factory(2)
    tenant = new_id()
    conf = {"mode": "AttachedSingle", "generation": 5, "secondary_conf": None,
            "shard_number": 0, "shard_count": 0, "shard_stripe_size": 2048,
            "tenant_conf": {"pitr_interval": "3h"}}
    body = ok_json(cl.storcon.put(f"/v1/tenant/{tenant}/location_config", json=conf, timeout=60))
    assert [s["shard_id"] for s in body["shards"]] == [tenant], body
    assert "stripe_size" in body, body
    cl.reconcile_until_idle()
    gen = cl.db_generations(tenant)[tenant]
    assert gen >= 5, f"the onboarding generation 5 was not adopted: {gen}"
    desc = cl.describe(tenant)
    node = desc["shards"][0]["node_attached"]
    # Two nodes: policy {"Attached": 1} -> one secondary.
    assert desc["policy"] == {"Attached": 1}, desc
    assert len(desc["shards"][0]["node_secondary"]) == 1, desc
    held = ok_json(cl.ps(node).get(f"/v1/location_config/{tenant}"))
    assert held["mode"] == "AttachedSingle" and held["generation"] == gen, held
    assert held["tenant_conf"].get("pitr_interval") == "3h", held
    # A generation in a later request is not adopted.
    ok_json(cl.storcon.put(f"/v1/tenant/{tenant}/location_config",
                           json={**conf, "generation": 100}, timeout=60))
    cl.reconcile_until_idle()
    assert cl.db_generations(tenant)[tenant] < 100, cl.db_generations(tenant)
    # Detached: nothing held anywhere, the rows stay (policy Detached).
    ok_json(cl.storcon.put(f"/v1/tenant/{tenant}/location_config",
                           json={**conf, "mode": "Detached", "generation": None}, timeout=60))
    cl.reconcile_until_idle()
    assert cl.tenant_locations(tenant) == {}, cl.tenant_locations(tenant)
    assert cl.describe(tenant)["policy"] == "Detached"
    # Tenant create with a generation (onboarding) adopts it too.
    t2 = new_id()
    ok_json(cl.storcon.post("/v1/tenant", json={"new_tenant_id": t2, "generation": 7},
                            timeout=60), 201)
    cl.reconcile_until_idle()
    assert cl.db_generations(t2)[t2] >= 7, cl.db_generations(t2)
    # A sharded id is refused.
    error_msg(cl.storcon.put(f"/v1/tenant/{tsid_of(tenant, 0, 2)}/location_config", json=conf),
              400)


def test_auth_scopes(storcon_factory, env):
    sc = storcon_factory(auth=True)
    tok = env.token
    # Health needs no token.
    assert sc.get("/status", scope=False).status_code == 200
    assert sc.get("/ready", scope=False).status_code == 200
    assert sc.get("/metrics", scope=False).status_code == 200
    error_msg(sc.get("/control/v1/node", scope=False), 401)
    error_msg(sc.get("/control/v1/node", token="not.a.jwt"), (401, 403))
    error_msg(sc.get("/control/v1/node", token=tok("tenant", new_id())), 403)
    ok_json(sc.get("/control/v1/node", token=tok("infra")))
    ok_json(sc.get("/control/v1/node", token=tok("admin")))
    body = {"tenants": [{"id": tsid_of(new_id(), 0, 2), "gen": 1}]}
    ok_json(sc.post("/upcall/v1/validate", json=body, token=tok("generations_api")))
    error_msg(sc.post("/upcall/v1/validate", json=body, token=tok("pageserverapi")), 403)
    error_msg(sc.post("/debug/v1/reconcile_all", token=tok("infra")), 403)
    ok_json(sc.post("/debug/v1/reconcile_all", token=tok("admin")))
    error_msg(sc.post("/v1/tenant", json={"new_tenant_id": new_id()}, token=tok("infra")), 403)


def test_concurrent_creates_of_one_tenant(cluster_factory):
    """Tenant create holds the tenant's exclusive lock: two creates of one id with different
    shard counts race; exactly one wins (201), the other conflicts (409), and the rows are the
    winner's."""
    cl = cluster_factory(2)
    tenant = new_id()
    results = {}

    def create(count):
        results[count] = cl.storcon.post("/v1/tenant", timeout=60, json={
            "new_tenant_id": tenant, "shard_parameters": {"count": count, "stripe_size": 2048}})

    threads = [threading.Thread(target=create, args=(c,)) for c in (2, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=70)
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [201, 409], {c: (r.status_code, r.text) for c, r in results.items()}
    winner = next(c for c, r in results.items() if r.status_code == 201)
    assert sorted(cl.db_shards(tenant)) == shard_tsids(tenant, winner)
    cl.reconcile_until_idle()
    assert sorted(cl.attached(tenant)) == shard_tsids(tenant, winner)
    ok_json(cl.consistency_check())


@pytest.mark.test_timeout(120)
def test_cluster_with_auth_end_to_end(cluster_factory, env):
    """With auth on everywhere: pageservers re-attach with their generations_api token, storcon
    calls them with its own signed token, and a tenant gets attached; a pageserver refuses calls
    without a token."""
    cl = cluster_factory(2, auth=True)
    tenant, _ = cl.create_tenant(count=2, stripe=2048)
    cl.reconcile_until_idle()
    attached = cl.attached(tenant)
    for t, node in attached.items():
        conf = ok_json(cl.ps(node).get(f"/v1/location_config/{t}"))
        assert conf["mode"] == "AttachedSingle" and conf["generation"] == 1, conf
    error_msg(cl.pageservers[0].get("/v1/location_config", scope=False), 401)
    error_msg(cl.storcon.post("/upcall/v1/re-attach", json={"node_id": cl.pageservers[0].id},
                              scope=False), 401)
    body = ok_json(cl.storcon.post("/upcall/v1/validate",
                                   json={"tenants": [{"id": t, "gen": 1} for t in attached]},
                                   token=env.token("generations_api")))
    assert all(x["valid"] for x in body["tenants"]) and len(body["tenants"]) == 2, body
    assert cl.notifications(tenant) or wait_for(lambda: cl.notifications(tenant), timeout=10,
                                                 what="notify-attach")


def test_database_connections_killed_storcon_recovers(cluster_factory):
    """Every storcon database connection is terminated under it: requests may get 503 for a
    moment, then the pool reconnects and everything works again, with no state lost."""
    cl = cluster_factory(2)
    tenant, _ = cl.create_tenant(count=2, stripe=2048)
    cl.reconcile_until_idle()
    killed = cl.database.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'storcon' AND datname = current_database()")
    assert killed, "no storcon connections found (application_name 'storcon')"
    other = new_id()

    def create_works():
        r = cl.storcon.post("/v1/tenant", json={"new_tenant_id": other}, timeout=60)
        assert r.status_code in (201, 503), f"during reconnect: {r.status_code} {r.text}"
        return r.status_code == 201

    wait_for(create_works, timeout=20, what="tenant create after the connections died",
             interval=0.5)
    cl.reconcile_until_idle()
    assert sorted(cl.attached(tenant)) == shard_tsids(tenant, 2)
    assert cl.db_generations(other) == {other: 1}
    ok_json(cl.consistency_check())
