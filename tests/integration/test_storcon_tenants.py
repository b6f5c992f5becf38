"""Tenants and timelines through the storage controller (storcon.md "/v1", "Scheduling",
"Compute notifications", timeline fan-out), on real pageservers registered through storcon.

- an 8-shard tenant on 3 pageservers: spread, generation 1 everywhere, one full notify-attach;
- timeline create (shard 0 first, the others reusing its initdb), branch at shard 0's LSN,
  delete (shard 0 last; 412 while a child exists), passthrough GETs;
- a generation change during a fan-out answers 503 (storcon failpoint
  "storcon-fanout-before-recheck");
- locate and the paged tenant list; a failed notification stays pending and is retried, a 423
  does not block other tenants; a slow timeline delete answers 409 after 25 s, then 200;
- tenant delete waits for a running timeline create (per-tenant locks);
- concurrent creates share transactions (group commit) yet each gets its own outcome;
- a create's insert issues its shards' first generations (no generation UPDATE per create), its
  answer survives a kill -9 of storcon, and a crash between the insert and the attach is
  recovered with a bump.
"""

import threading
import time

import pytest
import requests

from storcon_env import (  # noqa: F401 - fixtures are used by name
    TIMELINE_TIMEOUT,
    GenerationRecorder,
    attached_by_number,
    cluster,
    cluster_factory,
    error_msg,
    find_storcon_failpoint,
    new_id,
    notified_map,
    ok_json,
    parse_tsid,
    shard_tsids,
    tsid_of,
    wait_for,
)


def test_create_eight_shards_spread_generation_one_one_notification(cluster):
    tenant = new_id()
    _, body = cluster.create_tenant(tenant, count=8, stripe=2048)

    # The create answer: all 8 shards, each with a node and generation 1.
    shards = {s["shard_id"]: s for s in body["shards"]}
    assert sorted(shards) == sorted(shard_tsids(tenant, 8)), body
    node_ids = {ps.id for ps in cluster.pageservers}
    for tsid, s in shards.items():
        assert s["node_id"] in node_ids, f"{tsid}: node {s['node_id']} is not a pageserver"
        assert s["generation"] == 1, f"{tsid}: generation {s['generation']} in {body}"

    cluster.reconcile_until_idle()
    cluster.cp.wait_for_request("PUT", "/notify-attach",
                                predicate=lambda r: (r.json or {}).get("tenant_id") == tenant)

    # Storcon's view: every shard attached, no secondaries (policy {"Attached": 0}), spread.
    desc = cluster.describe(tenant)
    assert desc["tenant_id"] == tenant, desc
    assert desc["stripe_size"] == 2048, desc
    attached = {s["tenant_shard_id"]: s["node_attached"] for s in desc["shards"]}
    assert sorted(attached) == sorted(shard_tsids(tenant, 8)), desc
    assert set(desc) >= {"tenant_id", "shards", "stripe_size", "policy", "config"}, desc
    for s in desc["shards"]:
        assert set(s) >= {"tenant_shard_id", "node_attached", "node_secondary", "last_error",
                          "is_reconciling", "is_pending_compute_notification", "is_splitting",
                          "is_importing", "scheduling_policy", "preferred_az_id"}, s
        assert s["scheduling_policy"] == "Active" and not s["is_splitting"], s
        assert not s["last_error"], s
        assert s["node_attached"] in node_ids, s
        assert s["node_secondary"] == [], s
        assert not s["is_reconciling"], s
        assert not s["is_pending_compute_notification"], s
        assert s["node_attached"] == shards[s["tenant_shard_id"]]["node_id"], \
            f"describe {s} disagrees with the create answer {shards[s['tenant_shard_id']]}"
    per_node = {n: sum(1 for v in attached.values() if v == n) for n in node_ids}
    assert max(per_node.values()) <= 3, f"not spread: {per_node}"
    assert all(c >= 2 for c in per_node.values()), f"not spread: {per_node}"

    # The pageservers' view agrees: each holds exactly the shards storcon says, AttachedSingle,
    # generation 1, with the tenant's shard parameters.
    for ps in cluster.pageservers:
        locs = {t: c for t, c in cluster.locations(ps).items() if t.startswith(tenant)}
        want = sorted(t for t, n in attached.items() if n == ps.id)
        assert sorted(locs) == want, f"pageserver {ps.id} holds {sorted(locs)}, want {want}"
        assert len(locs) <= 3, f"pageserver {ps.id} holds {len(locs)} shards"
        for tsid, conf in locs.items():
            _, number, count = parse_tsid(tsid)
            assert conf["mode"] == "AttachedSingle", (tsid, conf)
            assert conf["generation"] == 1, (tsid, conf)
            assert (conf["shard_number"], conf["shard_count"], conf["shard_stripe_size"]) == \
                (number, 8, 2048), (tsid, conf)

    # The database: 8 rows, generation 1 issued to the node that holds the shard.
    rows = cluster.db_shards(tenant)
    assert sorted(rows) == sorted(shard_tsids(tenant, 8)), rows
    for tsid, row in rows.items():
        assert row["generation"] == 1, (tsid, row)
        assert row["generation_pageserver"] == attached[tsid], (tsid, row, attached[tsid])
        assert row["shard_stripe_size"] == 2048, (tsid, row)
        assert row["splitting"] == 0, (tsid, row)

    # The control plane: exactly one notify-attach, with the whole map.
    time.sleep(1.0)  # let any duplicate arrive before counting
    notes = cluster.notifications(tenant)
    assert len(notes) == 1, f"want one notify-attach, got {len(notes)}: {notes}"
    note = notes[0]
    assert note["stripe_size"] == 2048, note
    assert sorted(s["shard_number"] for s in note["shards"]) == list(range(8)), note
    assert notified_map(note) == attached_by_number(tenant, attached), (note, attached)
    assert set(note) >= {"tenant_id", "preferred_az", "stripe_size", "shards"}, note

    # A repeat with the same parameters succeeds and changes nothing (no new generation, no
    # second notification).
    _, again = cluster.create_tenant(tenant, count=8, stripe=2048, status=(200, 201))
    assert sorted(s["shard_id"] for s in again["shards"]) == sorted(shard_tsids(tenant, 8)), again
    cluster.reconcile_until_idle()
    assert cluster.db_generations(tenant) == {t: 1 for t in shard_tsids(tenant, 8)}
    time.sleep(0.5)
    assert len(cluster.notifications(tenant)) == 1, cluster.notifications(tenant)

    # The same id with other parameters conflicts.
    r = cluster.storcon.post("/v1/tenant", json={
        "new_tenant_id": tenant, "shard_parameters": {"count": 4, "stripe_size": 2048}})
    error_msg(r, 409)

    ok_json(cluster.consistency_check())


def _timeline_ids(cluster, tsid, node):
    """Timeline ids on one shard's pageserver; None when the shard or route says 404."""
    r = cluster.ps(node).get(f"/v1/tenant/{tsid}/timeline")
    if r.status_code == 404:
        return None
    assert r.status_code == 200, f"GET timelines of {tsid} on {node}: {r.status_code} {r.text}"
    return {t["timeline_id"] for t in r.json()}


def _has_timeline(cluster, tsid, node, tl) -> bool:
    r = cluster.ps(node).get(f"/v1/tenant/{tsid}/timeline/{tl}")
    assert r.status_code in (200, 404), \
        f"GET timeline {tl} of {tsid} on {node}: {r.status_code} {r.text}"
    return r.status_code == 200


@pytest.mark.test_timeout(240)
def test_timeline_create_delete_order_and_passthrough(cluster):
    tenant, _ = cluster.create_tenant(count=3, stripe=2048)
    cluster.reconcile_until_idle()
    attached = cluster.attached(tenant)
    tsids = shard_tsids(tenant, 3)
    shard0 = tsids[0]
    others = tsids[1:]
    assert sorted(attached.values()) == sorted(ps.id for ps in cluster.pageservers), \
        f"3 shards on 3 nodes must spread one per node: {attached}"

    # Widen the window in which only shard 0 can have the timeline: its pageserver's initdb
    # waits 2 s. The other shards must reuse shard 0's initdb (existing_initdb_timeline_id):
    # running initdb on their pageservers fails.
    cluster.ps_failpoint(cluster.ps(attached[shard0]), "bootstrap-before-initdb", "1*sleep(2000)")
    for x in others:
        cluster.ps_failpoint(cluster.ps(attached[x]), "bootstrap-before-initdb",
                             "return(a non-zero shard must reuse shard 0's initdb)")

    tl = new_id()
    result = {}

    def create():
        try:
            result["r"] = cluster.create_timeline(tenant, tl)
        except Exception as e:  # noqa: BLE001 - reported below
            result["e"] = e

    t = threading.Thread(target=create, daemon=True)
    t.start()
    violations = []
    seen_first = {}
    while t.is_alive():
        # Others first, shard 0 last: if another shard has it, shard 0 (looked at later) must.
        now_others = {x: _has_timeline(cluster, x, attached[x], tl) for x in others}
        now0 = _has_timeline(cluster, shard0, attached[shard0], tl)
        for x, has in list(now_others.items()) + [(shard0, now0)]:
            if has and x not in seen_first:
                seen_first[x] = time.monotonic()
        if any(now_others.values()) and not now0:
            violations.append(now_others)
        time.sleep(0.05)
    t.join()
    assert "e" not in result, result.get("e")
    info = ok_json(result["r"], 201)
    assert not violations, f"a shard got the timeline before shard 0: {violations}"
    assert info["timeline_id"] == tl, info
    assert info["tenant_id"] == shard0, f"the answer must be shard 0's TimelineInfo: {info}"

    # Every shard has it, with shard 0's initdb (same initdb LSN), and shard 0 was first.
    infos = {}
    for x in tsids:
        r = cluster.ps(attached[x]).get(f"/v1/tenant/{x}/timeline/{tl}")
        infos[x] = ok_json(r)
        assert infos[x]["timeline_id"] == tl, infos[x]
    for x in others:
        assert infos[x]["initdb_lsn"] == infos[shard0]["initdb_lsn"], (infos[x], infos[shard0])
        assert infos[x]["pg_version"] == infos[shard0]["pg_version"], (infos[x], infos[shard0])
        if x in seen_first and shard0 in seen_first:
            assert seen_first[shard0] <= seen_first[x], seen_first
    initdb_key = cluster.env.remote_storage / f"tenants/{tenant}/timelines/{tl}/initdb.tar.zst"
    assert initdb_key.is_file(), f"no shared initdb archive at {initdb_key}"

    # A repeat with the same parameters succeeds (pageserver idempotency through the fan-out).
    ok_json(cluster.create_timeline(tenant, tl), 201)

    # Passthrough GETs, routed to shard 0 (or the named shard).
    listed = ok_json(cluster.storcon.get(f"/v1/tenant/{tenant}/timeline"))
    assert tl in {x["timeline_id"] for x in listed}, listed
    one = ok_json(cluster.storcon.get(f"/v1/tenant/{tenant}/timeline/{tl}"))
    assert one["timeline_id"] == tl and one["tenant_id"] == shard0, one
    detail = ok_json(cluster.storcon.get(f"/v1/tenant/{tenant}"))
    assert detail["id"] == shard0, detail
    named = ok_json(cluster.storcon.get(f"/v1/tenant/{tsids[2]}/timeline/{tl}"))
    assert named["tenant_id"] == tsids[2], f"the named shard's info, got {named}"
    error_msg(cluster.storcon.get(f"/v1/tenant/{tenant}/timeline/{new_id()}"), 404)
    error_msg(cluster.storcon.get(f"/v1/tenant/{tsid_of(tenant, 1, 4)}/timeline"), 404)

    # Branch without an LSN: every shard branches at shard 0's chosen LSN.
    child = new_id()
    info = ok_json(cluster.create_timeline(tenant, child, ancestor_timeline_id=tl), 201)
    assert info["tenant_id"] == shard0 and info["ancestor_timeline_id"] == tl, info
    for x in tsids:
        ci = ok_json(cluster.ps(attached[x]).get(f"/v1/tenant/{x}/timeline/{child}"))
        assert ci["ancestor_timeline_id"] == tl, (x, ci)
        assert ci["ancestor_lsn"] == info["ancestor_lsn"], (x, ci["ancestor_lsn"], info)
    # The parent cannot go while it has a child: 412, and no shard lost it.
    r = cluster.storcon.delete(f"/v1/tenant/{tenant}/timeline/{tl}", timeout=60)
    error_msg(r, 412)
    for x in tsids:
        assert _has_timeline(cluster, x, attached[x], tl), f"{x} lost {tl} on a refused delete"
    r = cluster.delete_timeline(tenant, child)
    assert r.status_code == 200, f"DELETE child: {r.status_code} {r.text}"

    # Delete: every other shard first, shard 0 last. Slow each deletion down so the order shows.
    for ps in cluster.pageservers:
        cluster.ps_failpoint(ps, "timeline-delete-before-index", "sleep(500)")
    result.clear()

    def delete():
        try:
            result["r"] = cluster.delete_timeline(tenant, tl, timeout=90)
        except Exception as e:  # noqa: BLE001
            result["e"] = e

    t = threading.Thread(target=delete, daemon=True)
    t.start()
    violations = []
    while t.is_alive():
        # Shard 0 first, the others after: once shard 0 is gone, every other must be gone.
        gone0 = not _has_timeline(cluster, shard0, attached[shard0], tl)
        still = [x for x in others if _has_timeline(cluster, x, attached[x], tl)]
        if gone0 and still:
            violations.append(still)
        time.sleep(0.05)
    t.join()
    for ps in cluster.pageservers:
        cluster.ps_failpoint(ps, "timeline-delete-before-index", "off")
    assert "e" not in result, result.get("e")
    r = result["r"]
    assert r.status_code == 200, f"DELETE timeline through storcon: {r.status_code} {r.text}"
    assert not violations, f"shard 0 was deleted before {violations}"
    for x in tsids:
        r = cluster.ps(attached[x]).get(f"/v1/tenant/{x}/timeline/{tl}")
        assert r.status_code == 404, f"{x} on {attached[x]} after delete: {r.status_code} {r.text}"
        assert tl not in (_timeline_ids(cluster, x, attached[x]) or set())
    error_msg(cluster.storcon.get(f"/v1/tenant/{tenant}/timeline/{tl}"), 404)
    listed = ok_json(cluster.storcon.get(f"/v1/tenant/{tenant}/timeline"))
    assert tl not in {x["timeline_id"] for x in listed}, listed

    # Deleting it again: already gone -> 404 (not found), never a 5xx.
    r = cluster.storcon.delete(f"/v1/tenant/{tenant}/timeline/{tl}", timeout=60)
    assert r.status_code in (200, 404), f"repeat delete: {r.status_code} {r.text}"


@pytest.mark.test_timeout(240)
def test_generation_change_during_fanout_is_503(cluster):
    fp = find_storcon_failpoint("fanout")  # "storcon-fanout-before-recheck": delays the re-read
    tenant, _ = cluster.create_tenant(count=2, stripe=2048)
    cluster.reconcile_until_idle()
    attached = cluster.attached(tenant)
    shard1 = tsid_of(tenant, 1, 2)
    recorder = GenerationRecorder(cluster.database).start()
    gens_before = cluster.db_generations(tenant)

    # The fan-out pauses (after its first read of the generations); meanwhile shard 1's
    # generation is bumped (a new generation issued to its node): the fan-out must answer 503.
    cluster.storcon_failpoint(fp, "1*sleep(4000)")
    result = {}
    tl = new_id()

    def create():
        try:
            result["r"] = cluster.create_timeline(tenant, tl)
        except Exception as e:  # noqa: BLE001
            result["e"] = e

    t = threading.Thread(target=create, daemon=True)
    t.start()

    # Bump only once every shard has the timeline: the calls are done and the fan-out sits in
    # the failpoint before its second read.
    def created_everywhere():
        for x, node in attached.items():
            r = cluster.ps(node).get(f"/v1/tenant/{x}/timeline/{tl}")
            assert r.status_code == 200, (x, r.status_code, r.text)

    wait_for(created_everywhere, timeout=TIMELINE_TIMEOUT, what="timeline on every shard",
             interval=0.1)
    hook = ok_json(cluster.attach_hook(shard1, attached[shard1]))
    assert hook["gen"] == gens_before[shard1] + 1, (hook, gens_before)
    t.join(timeout=TIMELINE_TIMEOUT)
    assert not t.is_alive(), "timeline create did not answer"
    assert "e" not in result, result.get("e")
    msg = error_msg(result["r"], 503)
    assert "retry" in msg.lower() or "changed" in msg.lower(), msg

    # The same for a passthrough GET.
    cluster.storcon_failpoint(fp, "1*sleep(2000)")
    result.clear()

    def get():
        try:
            result["r"] = cluster.storcon.get(f"/v1/tenant/{tenant}/timeline", timeout=30)
        except Exception as e:  # noqa: BLE001
            result["e"] = e

    t = threading.Thread(target=get, daemon=True)
    t.start()
    time.sleep(0.7)
    hook2 = ok_json(cluster.attach_hook(shard1, attached[shard1]))
    assert hook2["gen"] == hook["gen"] + 1, (hook2, hook)
    t.join(timeout=30)
    assert not t.is_alive(), "passthrough GET did not answer"
    assert "e" not in result, result.get("e")
    error_msg(result["r"], 503)

    # With nothing changing, the same calls succeed (the failpoint is spent).
    cluster.reconcile_until_idle()
    ok_json(cluster.storcon.get(f"/v1/tenant/{tenant}/timeline"))
    recorder.stop()
    recorder.check()
    # The hook leaves what the node holds unknown: the reconcile attached it for real (in a
    # generation of its own when the node did not hold the hook's).
    gen = cluster.db_generations(tenant)[shard1]
    assert gen >= hook2["gen"], (gen, hook2)
    held = ok_json(cluster.ps(attached[shard1]).get(f"/v1/location_config/{shard1}"))
    assert held["generation"] == gen, (held, gen)


def test_locate_and_paged_list(cluster):
    a, _ = cluster.create_tenant(count=4, stripe=4096)
    b, _ = cluster.create_tenant()  # unsharded (count 0)
    cluster.reconcile_until_idle()
    loc = ok_json(cluster.storcon.get(f"/debug/v1/tenant/{a}/locate"))
    assert loc["shard_params"] == {"count": 4, "stripe_size": 4096}, loc
    attached = cluster.attached(a)
    assert sorted(s["shard_id"] for s in loc["shards"]) == shard_tsids(a, 4), loc
    for s in loc["shards"]:
        ps = cluster.ps(s["node_id"])
        assert s["node_id"] == attached[s["shard_id"]], (s, attached)
        assert (s["listen_http_addr"], s["listen_http_port"], s["listen_pg_port"]) == \
            ("127.0.0.1", ps.http_port, ps.pg_port), s
    loc_b = ok_json(cluster.storcon.get(f"/debug/v1/tenant/{b}/locate"))
    assert [s["shard_id"] for s in loc_b["shards"]] == [b], loc_b
    assert loc_b["shard_params"]["count"] == 0, loc_b

    everything = ok_json(cluster.storcon.get("/control/v1/tenant"))
    assert sorted(t["tenant_id"] for t in everything) == sorted([a, b]), everything
    first, second = sorted([a, b])
    page = ok_json(cluster.storcon.get("/control/v1/tenant", params={"limit": 1}))
    assert [t["tenant_id"] for t in page] == [first], page
    page = ok_json(cluster.storcon.get("/control/v1/tenant",
                                       params={"limit": 1, "start_after": first}))
    assert [t["tenant_id"] for t in page] == [second], page
    page = ok_json(cluster.storcon.get("/control/v1/tenant",
                                       params={"limit": 5, "start_after": second}))
    assert page == [], page
    error_msg(cluster.storcon.get("/control/v1/tenant", params={"limit": "x"}), 400)

    # The unsharded tenant's notification: one shard, stripe_size null.
    def notified():
        notes = cluster.notifications(b)
        assert notes, "no notify-attach for the unsharded tenant"
        assert notes[-1]["stripe_size"] is None, notes[-1]
        assert notes[-1]["shards"] == [{"node_id": cluster.attached(b)[b], "shard_number": 0}], \
            notes[-1]

    wait_for(notified, timeout=10, what="notify-attach of the unsharded tenant")

    # Count 1 is a distinct shard id (-0001), still one shard: stripe_size null in the map.
    c, body = cluster.create_tenant(count=1, stripe=2048)
    assert [s["shard_id"] for s in body["shards"]] == [f"{c}-0001"], body
    cluster.reconcile_until_idle()
    node = cluster.attached(c)[f"{c}-0001"]
    conf = cluster.locations(cluster.ps(node))[f"{c}-0001"]
    assert (conf["shard_number"], conf["shard_count"]) == (0, 1), conf
    wait_for(lambda: cluster.notifications(c), timeout=10, what="notify-attach, count 1")
    assert cluster.notifications(c)[-1]["stripe_size"] is None, cluster.notifications(c)


def test_failed_notification_stays_pending_and_423_does_not_block_others(cluster):
    cp = cluster.cp
    # Tenant A: the control plane fails (500) -> A stays pending; once the control plane is
    # fixed, the background pass (or reconcile_all) delivers it.
    a = new_id()
    rule = cp.respond("PUT", "/notify-attach", status=500, body={"msg": "control plane down"})
    cluster.create_tenant(a, count=2, stripe=2048)

    def pending_a():
        shards = cluster.describe(a)["shards"]
        assert all(s["is_pending_compute_notification"] for s in shards), shards

    wait_for(lambda: cluster.notifications(a), timeout=20, what="tenant A notification tried")
    time.sleep(0.5)  # the 500 has been answered: a failed notification leaves A pending
    wait_for(pending_a, timeout=5, what="tenant A pending notification")
    cp.rules.remove(rule)

    # Tenant B: the control plane answers 423 (stored, not applied yet) for B; a third tenant C
    # created meanwhile is notified at once.
    b, c = new_id(), new_id()
    cp.respond("PUT", "/notify-attach", status=423,
               handler=lambda r: (423, {"msg": "locked"}) if (r.json or {}).get("tenant_id") == b
               else (200, {}))
    cluster.create_tenant(b, count=2, stripe=2048)
    wait_for(lambda: len(cluster.notifications(b)) >= 1, timeout=10, what="B tried")
    cluster.create_tenant(c, count=2, stripe=2048)
    wait_for(lambda: cluster.notifications(c), timeout=10, what="C notified despite B's 423")
    retries_before = len(cluster.notifications(b))
    wait_for(lambda: len(cluster.notifications(b)) > retries_before, timeout=20,
             what="B's notification retried after 423")
    cp.clear_rules()

    # Everything is delivered eventually, and nobody stays pending.
    def delivered():
        cluster.reconcile_all()
        for t in (a, b, c):
            shards = cluster.describe(t)["shards"]
            assert not any(s["is_pending_compute_notification"] for s in shards), (t, shards)
            assert notified_map(cluster.notifications(t)[-1]) == \
                attached_by_number(t, cluster.attached(t)), t

    wait_for(delivered, timeout=40, what="all notifications delivered", interval=0.5)


@pytest.mark.test_timeout(180)
def test_slow_timeline_delete_answers_409_then_200(cluster):
    """storcon.md: DELETE hides the pageserver's 202/404 protocol; still running after 25 s ->
    409 so a caller with a short timeout retries; shard 0 is deleted only after the others."""
    tenant, _ = cluster.create_tenant(count=2, stripe=2048)
    cluster.reconcile_until_idle()
    s0, s1 = shard_tsids(tenant, 2)
    attached = cluster.attached(tenant)
    tl = new_id()
    ok_json(cluster.create_timeline(tenant, tl), 201)
    # Shard 1's deletion hangs for 29 s in the pageserver's background job.
    cluster.ps_failpoint(cluster.ps(attached[s1]), "timeline-delete-before-index", "1*sleep(29000)")
    started = time.monotonic()
    r = cluster.storcon.delete(f"/v1/tenant/{tenant}/timeline/{tl}", timeout=60)
    took = time.monotonic() - started
    error_msg(r, 409)
    assert 20 <= took <= 35, f"409 after {took:.1f}s, spec: after 25 s"
    # Shard 0 still has it: it goes last.
    assert _has_timeline(cluster, s0, attached[s0], tl)
    r = cluster.delete_timeline(tenant, tl, timeout=60)
    assert r.status_code == 200, f"DELETE after the slow shard finished: {r.status_code} {r.text}"
    for x in (s0, s1):
        assert not _has_timeline(cluster, x, attached[x], tl), x


@pytest.mark.test_timeout(180)
def test_tenant_delete_waits_for_running_timeline_create(cluster):
    """Per-tenant locks: timeline create holds the tenant's shared lock, tenant delete needs it
    exclusively, so a delete issued during a create waits for it and then removes everything."""
    tenant, _ = cluster.create_tenant(count=2, stripe=2048)
    cluster.reconcile_until_idle()
    attached = cluster.attached(tenant)
    cluster.ps_failpoint(cluster.ps(attached[tsid_of(tenant, 0, 2)]), "bootstrap-before-initdb",
                         "1*sleep(3000)")
    done = {}

    def create():
        r = cluster.create_timeline(tenant)
        done["create"] = (time.monotonic(), r)

    def delete():
        r = cluster.delete_tenant(tenant)
        done["delete"] = (time.monotonic(), r)

    tc = threading.Thread(target=create, daemon=True)
    tc.start()
    time.sleep(0.7)
    td = threading.Thread(target=delete, daemon=True)
    td.start()
    tc.join(timeout=TIMELINE_TIMEOUT)
    td.join(timeout=120)
    assert "create" in done and "delete" in done, done
    created_at, rc = done["create"]
    deleted_at, rd = done["delete"]
    ok_json(rc, 201)
    assert rd.status_code == 200, f"tenant delete: {rd.status_code} {rd.text}"
    assert deleted_at >= created_at, "tenant delete finished before the timeline create"
    error_msg(cluster.storcon.get(f"/control/v1/tenant/{tenant}"), 404)
    assert cluster.tenant_locations(tenant) == {}
    assert cluster.db_shards(tenant) == {}


@pytest.mark.test_timeout(180)
def test_many_tenants_and_shards_spread_and_survive_restart(cluster):
    """Ten tenants of 16 shards at once: every shard attached exactly once in generation 1,
    nodes balanced (attached counts differ by at most a few), one notification per tenant; after
    a storcon restart nothing changes."""
    tenants = []
    errors = []

    def create():
        try:
            tenants.append(cluster.create_tenant(count=16, stripe=2048)[0])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=create) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not errors, errors
    cluster.reconcile_until_idle()
    per_node = {ps.id: 0 for ps in cluster.pageservers}
    for tenant in tenants:
        attached = cluster.attached(tenant)
        for t in shard_tsids(tenant, 16):
            per_node[attached[t]] += 1
        assert set(cluster.db_generations(tenant).values()) == {1}, tenant
        locs = cluster.attached_locations(tenant)
        assert {t: v for t, v in locs.items()} == \
            {t: [(attached[t], 1, "AttachedSingle")] for t in shard_tsids(tenant, 16)}, tenant
        tenant_counts = {n: sum(1 for v in attached.values() if v == n) for n in per_node}
        assert max(tenant_counts.values()) - min(tenant_counts.values()) <= 1, tenant_counts
    assert max(per_node.values()) - min(per_node.values()) <= 3, per_node

    def one_each():
        for tenant in tenants:
            assert len(cluster.notifications(tenant)) == 1, (tenant, cluster.notifications(tenant))

    wait_for(one_each, timeout=20, what="one notification per tenant")
    ok_json(cluster.consistency_check())

    before = {tenant: cluster.attached(tenant) for tenant in tenants}
    cluster.storcon.restart()
    cluster.wait_nodes("Active", timeout=20)
    cluster.reconcile_until_idle()
    for tenant in tenants:
        assert cluster.attached(tenant) == before[tenant], tenant
        assert set(cluster.db_generations(tenant).values()) == {1}, tenant
    ok_json(cluster.consistency_check())


@pytest.mark.test_timeout(120)
def test_failed_reconcile_reports_error_and_background_pass_retries(cluster):
    """A reconcile that fails (the pageserver answers 500) leaves the shard dirty with its
    last_error; the create still answers; once the pageserver works again the background pass
    (every 20 s) finishes the job without anyone asking."""
    for ps in cluster.pageservers:
        cluster.ps_failpoint(ps, "location-config-persist", "return(disk on fire)")
    tenant = new_id()
    started = time.monotonic()
    cluster.create_tenant(tenant)
    assert time.monotonic() - started < 35, "create must answer within its 30 s wait"

    def failed():
        shard = cluster.describe(tenant)["shards"][0]
        assert shard["last_error"] and not shard["is_reconciling"], shard
        return shard

    shard = wait_for(failed, timeout=30, what="reconcile failed with last_error")
    assert "disk on fire" in shard["last_error"] or "500" in shard["last_error"], shard
    assert cluster.tenant_locations(tenant) == {} or all(
        c is None for by in cluster.tenant_locations(tenant).values() for c in by.values())
    for ps in cluster.pageservers:
        cluster.ps_failpoint(ps, "location-config-persist", "off")
    fixed_at = time.monotonic()

    def attached_by_background_pass():
        shard = cluster.describe(tenant)["shards"][0]
        node = shard["node_attached"]
        gen = cluster.db_generations(tenant)[tenant]
        conf = cluster.locations(cluster.ps(node)).get(tenant)
        assert conf and conf["mode"] == "AttachedSingle" and conf["generation"] == gen, conf
        assert not shard["last_error"], shard
        return True

    wait_for(attached_by_background_pass, timeout=30, what="background pass reconciled",
             interval=0.5)
    assert time.monotonic() - fixed_at <= 25, "the background pass runs every 20 s"
    wait_for(lambda: cluster.notifications(tenant), timeout=10, what="notify-attach")


def test_concurrent_creates_share_transactions_each_with_its_own_outcome(cluster):
    """Group commit (docs/storcon.md "Tenant create: group commit"): creates sent at once are
    batched into shared transactions, yet every new tenant is persisted and answered 201, a
    conflicting create of an existing tenant fails alone with 409 and writes nothing, and an
    identical repeat succeeds."""
    existing, _ = cluster.create_tenant(count=2, placement="Detached")
    news = [(new_id(), count, placement)
            for count in (0, 2) for placement in ({"Attached": 0}, "Detached")
            for _ in range(4)]
    bodies = [{"new_tenant_id": t, "shard_parameters": {"count": c}, "placement_policy": p}
              for t, c, p in news]
    bodies.append({"new_tenant_id": existing, "shard_parameters": {"count": 4},
                   "placement_policy": "Detached"})  # conflict: other shard count
    bodies.append({"new_tenant_id": existing, "shard_parameters": {"count": 2},
                   "placement_policy": "Detached"})  # identical repeat
    results = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def create(i):
        start.wait()
        results[i] = cluster.storcon.post("/v1/tenant", json=bodies[i], timeout=60)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(bodies))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()

    for (tenant, count, _), r in zip(news, results):
        assert r.status_code == 201, f"{tenant}: {r.status_code} {r.text}"
        rows = cluster.db_shards(tenant)
        assert sorted(rows) == sorted(shard_tsids(tenant, count)), rows
    assert "already exists" in error_msg(results[-2], 409)
    assert results[-1].status_code == 201, results[-1].text
    assert sorted(cluster.db_shards(existing)) == sorted(shard_tsids(existing, 2))
    assert cluster.consistency_check().status_code == 200


def _count_generation_updates(cl):
    """A trigger recording every UPDATE of tenant_shards.generation (a bump) into
    test_generation_updates, to count the second commits a create makes."""
    cl.database.query("CREATE TABLE IF NOT EXISTS test_generation_updates (tenant_id text, "
                      "shard_number integer, old integer, new integer)")
    cl.database.query(
        "CREATE OR REPLACE FUNCTION test_record_generation() RETURNS trigger AS $$ BEGIN "
        "INSERT INTO test_generation_updates VALUES (NEW.tenant_id, NEW.shard_number, "
        "OLD.generation, NEW.generation); RETURN NEW; END $$ LANGUAGE plpgsql")
    cl.database.query(
        "CREATE OR REPLACE TRIGGER test_generation_updates AFTER UPDATE OF generation ON "
        "tenant_shards FOR EACH ROW EXECUTE FUNCTION test_record_generation()")


def _generation_updates(cl, tenant: str) -> list:
    return cl.database.query("SELECT shard_number, old, new FROM test_generation_updates "
                             "WHERE tenant_id = %s ORDER BY shard_number, new", (tenant,))


def _assert_attached_in_db_generation(cl, tenant: str, count: int):
    """Every shard attached on exactly one pageserver, in the generation the database issued to
    that node."""
    rows = cl.db_shards(tenant)
    assert sorted(rows) == sorted(shard_tsids(tenant, count)), rows
    locs = cl.attached_locations(tenant)
    for tsid, row in rows.items():
        assert locs.get(tsid) == [(row["generation_pageserver"], row["generation"],
                                   "AttachedSingle")], (tsid, row, locs.get(tsid))


@pytest.mark.test_timeout(240)
def test_create_issues_first_generation_in_its_insert_and_survives_kill9(cluster):
    """A create picks its shards' nodes before the insert, which issues each shard's first
    generation to its node (docs/storcon.md "Tenant create: group commit"): no generation UPDATE
    (second commit) per create, concurrent creates spread over the nodes, and every acknowledged
    create survives a kill -9 of storcon. A crash between the insert and the attach
    (reconcile-before-attach) leaves a tenant whose issued generation is never reused: the
    restarted controller bumps it and attaches."""
    _count_generation_updates(cluster)
    tenants = [(new_id(), count) for count in (0, 4) for _ in range(6)]
    results = [None] * len(tenants)
    start = threading.Barrier(len(tenants))

    def create(i):
        start.wait()
        tenant, count = tenants[i]
        results[i] = cluster.storcon.post("/v1/tenant", json={
            "new_tenant_id": tenant, "shard_parameters": {"count": count}}, timeout=60)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(tenants))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    used = set()
    for (tenant, count), r in zip(tenants, results):
        body = ok_json(r, 201)
        assert sorted(s["shard_id"] for s in body["shards"]) == sorted(shard_tsids(tenant, count))
        assert all(s["generation"] == 1 for s in body["shards"]), body
        # answered after the attach: the pageservers hold generation 1 of the answer's node
        _assert_attached_in_db_generation(cluster, tenant, count)
        assert {s["shard_id"]: s["node_id"] for s in body["shards"]} == \
            {t: row["generation_pageserver"] for t, row in cluster.db_shards(tenant).items()}
        assert _generation_updates(cluster, tenant) == [], "a create bumped a generation"
        used |= {s["node_id"] for s in body["shards"]}
    assert used == {ps.id for ps in cluster.pageservers}, f"creates not spread: {used}"

    # kill -9 after the answers: everything acknowledged is still there, in generation 1
    cluster.storcon.kill9()
    cluster.restart_storcon()
    cluster.reconcile_until_idle()
    for tenant, count in tenants:
        assert cluster.db_generations(tenant) == {t: 1 for t in shard_tsids(tenant, count)}
        _assert_attached_in_db_generation(cluster, tenant, count)
    ok_json(cluster.consistency_check())

    # a crash after the insert committed, before the attach PUT
    cluster.storcon_failpoint("reconcile-before-attach", "exit")
    crashed = new_id()
    with pytest.raises(requests.RequestException):  # the controller dies inside the request
        cluster.storcon.post("/v1/tenant", json={"new_tenant_id": crashed,
                                                 "shard_parameters": {"count": 2}}, timeout=30)
    cluster.storcon.process.wait_exit(30)
    rows = cluster.db_shards(crashed)
    assert all(row["generation"] == 1 for row in rows.values()), rows
    assert cluster.tenant_locations(crashed) == {}, "attached before the failpoint"
    cluster.restart_storcon()
    cluster.reconcile_until_idle()
    # issued once to a node that never used it, never handed out again: bumped, then attached
    assert cluster.db_generations(crashed) == {t: 2 for t in shard_tsids(crashed, 2)}
    _assert_attached_in_db_generation(cluster, crashed, 2)
    assert [(old, new) for _, old, new in _generation_updates(cluster, crashed)] == [(1, 2)] * 2
    ok_json(cluster.consistency_check())
