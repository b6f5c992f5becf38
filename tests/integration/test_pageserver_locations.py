"""Pageserver locations: the declarative location_config upserts of a storage controller (played
by the test), tenant status, tenant config, and the errors of bad input (pageserver.md
"LocationConfig", "Tenant config", "Tenant status")."""

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from pageserver_env import (  # noqa: F401 - fixtures are used by name
    PageClient,
    all_locations,
    bootstrap,
    create_timeline,
    error_msg,
    fake_storcon,
    get_location,
    initdb_files,
    location_conf,
    new_id,
    ok_json,
    ps_env,
    put_location,
    relation_pages,
    tenant_detail,
    timeline_info,
    tsid_of,
    wait_ready,
    wait_tenant_active,
)

TENANT_CONFIG_FIELDS = (
    "checkpoint_distance", "checkpoint_timeout", "compaction_target_size", "compaction_period",
    "compaction_threshold", "gc_horizon", "gc_period", "image_creation_threshold",
    "pitr_interval", "walreceiver_connect_timeout", "lagging_wal_timeout", "max_lsn_wal_lag",
    "heatmap_period", "lsn_lease_length", "image_compression",
)


def tenant_config(ps, tsid):
    return ok_json(ps.get(f"/v1/tenant/{tsid}/config"))


def assert_not_readable(ps, tsid, tl=None):
    """A tenant that is not attached here: its tenant routes are not served (404 or 503)."""
    error_msg(tenant_detail(ps, tsid), (404, 503))
    error_msg(ps.get(f"/v1/tenant/{tsid}/timeline"), (404, 503))
    error_msg(ps.post(f"/v1/tenant/{tsid}/timeline", json={"new_timeline_id": new_id()}),
              (404, 503))
    if tl is not None:
        r = ps.get(f"/v1/tenant/{tsid}/timeline/{tl}/getpage",
                   params={"rel": "1664/0/1262", "fork": 0, "blkno": 0, "lsn": "0/1000000"})
        error_msg(r, (404, 503))
    for t in ok_json(ps.get("/v1/tenant")):  # listed or not, never as a serving tenant
        assert t["id"] != tsid or t.get("state", {}).get("slug") != "Active", t


def slot_stops(ps, tsid) -> int:
    """How often the slot went to Stopping: the pageserver logs every slot state transition
    ("slot <tsid>: Active -> Stopping", shared/fsm.h)."""
    return len(re.findall(rf"slot {tsid}: \w+ -> Stopping", ps.process.log_text()))


class StatePoller:
    """Polls GET /v1/tenant/{tsid} in a thread and records every (status, state slug): evidence
    that a change happened in place (the tenant never left Active)."""

    def __init__(self, ps, tsid):
        self.ps, self.tsid = ps, tsid
        self.seen = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        session = requests.Session()
        while not self.stop_event.is_set():
            try:
                r = session.get(f"{self.ps.url}/v1/tenant/{self.tsid}", timeout=5)
                slug = r.json().get("state", {}).get("slug") if r.status_code == 200 else None
                self.seen.append((r.status_code, slug))
            except Exception as e:  # noqa: BLE001 - recorded, judged by the test
                self.seen.append((repr(e), None))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=10)


# ---- attach and echo ----


def test_attach_echoes_config_and_reports_active(ps_env):
    ps = ps_env.pageserver()
    tenant = new_id()
    # A tenant_conf with overrides and a field from the future (ignored on attach, but echoed).
    tenant_conf = {"gc_period": "1h", "pitr_interval": "2 days", "max_lsn_wal_lag": 12345,
                   "knob_from_the_future": {"x": 1}}
    conf = location_conf("AttachedSingle", ps_env.storcon.issue(tenant, 1),
                         tenant_conf=tenant_conf)
    r = put_location(ps, tenant, conf)
    body = ok_json(r)
    assert body["shards"] == [{"shard_id": tenant, "node_id": ps.id}], body
    assert "stripe_size" in body, body

    assert ok_json(get_location(ps, tenant)) == conf
    assert all_locations(ps) == {tenant: conf}

    d = wait_tenant_active(ps, tenant)
    assert d["id"] == tenant and d["generation"] == 1, d
    assert d["attachment_status"] == {"slug": "attached"}, d
    assert d["timelines"] == [] and isinstance(d["current_physical_size"], int), d
    assert tenant in {t["id"] for t in ok_json(ps.get("/v1/tenant"))}

    # The config given at attach is applied (overrides), defaults fill the rest.
    cfg = tenant_config(ps, tenant)
    overrides, effective = cfg["tenant_specific_overrides"], cfg["effective_config"]
    assert {"gc_period", "pitr_interval", "max_lsn_wal_lag"} <= set(overrides), cfg
    assert overrides["max_lsn_wal_lag"] == 12345 and effective["max_lsn_wal_lag"] == 12345, cfg
    assert "knob_from_the_future" not in overrides and "knob_from_the_future" not in effective
    missing = [f for f in TENANT_CONFIG_FIELDS if f not in effective]
    assert not missing, f"effective_config lacks {missing}: {cfg}"

    # Persisted before the answer: <workdir>/tenants/<tsid>/config holds the LocationConfig.
    stored = json.loads((ps.workdir / "tenants" / tenant / "config").read_text())
    assert stored.get("mode") == "AttachedSingle" and stored.get("generation") == 1, stored

    # A shard of a sharded tenant echoes its shard parameters; utilization counts both shards.
    shard = tsid_of(new_id(), 2, 4)
    sconf = location_conf("AttachedSingle", ps_env.storcon.issue(shard, 7), shard_number=2,
                          shard_count=4, stripe=8)
    body = ok_json(put_location(ps, shard, sconf))
    assert body["shards"] == [{"shard_id": shard, "node_id": ps.id}] and \
        body["stripe_size"] == 8, body
    assert ok_json(get_location(ps, shard)) == sconf
    assert wait_tenant_active(ps, shard)["generation"] == 7
    assert all_locations(ps) == {tenant: conf, shard: sconf}
    util = ok_json(ps.get("/v1/utilization"))
    assert util["shard_count"] == 2, util
    for field in ("disk_usage_bytes", "free_space_bytes", "disk_wanted_bytes", "disk_usable_pct",
                  "max_shard_count", "utilization_score", "captured_at"):
        assert field in util, util


def test_mode_changes_in_place_and_generations(ps_env):
    """Same generation: AttachedSingle -> AttachedMulti -> AttachedStale -> AttachedSingle swaps
    in place (the tenant stays Active and loaded, nothing is rewritten remotely); a lower
    generation is refused and changes nothing; a higher one restarts the slot."""
    ps = ps_env.pageserver()
    tenant = new_id()
    ps_env.attach(ps, tenant, 1)
    tl = bootstrap(ps, tenant, pg_version=15)["timeline_id"]
    lsn = timeline_info(ps, tenant, tl)["last_record_lsn"]
    spc, db, rel, fork, blk, page = next(relation_pages(initdb_files(ps_env.remote, tenant, tl)))
    pages = PageClient(ps)
    assert pages.page(tenant, tl, spc, db, rel, fork, blk, lsn) == page

    detail = wait_tenant_active(ps, tenant)
    remote_before = ps_env.remote.snapshot(f"tenants/{tenant}/")
    assert set(ps_env.remote.index_keys(tenant, tl)) == {1}
    local_dir = ps.workdir / "tenants" / tenant / "timelines" / tl
    local_before = {p.name: p.stat().st_ino for p in local_dir.iterdir()}

    with StatePoller(ps, tenant) as poller:
        for mode in ("AttachedMulti", "AttachedStale", "AttachedSingle"):
            conf = location_conf(mode, 1)
            ok_json(put_location(ps, tenant, conf))
            assert ok_json(get_location(ps, tenant)) == conf
            assert ok_json(tenant_detail(ps, tenant)) == detail, f"detail changed after {mode}"
            assert timeline_info(ps, tenant, tl)["state"] == "Active"
            assert pages.page(tenant, tl, spc, db, rel, fork, blk, lsn) == page
    assert poller.seen and all(s == (200, "Active") for s in poller.seen), \
        f"tenant left Active during same-generation swaps: {sorted(set(poller.seen))}"
    assert ps_env.remote.snapshot(f"tenants/{tenant}/") == remote_before, \
        "a same-generation mode swap rewrote remote objects"
    assert set(ps_env.remote.index_keys(tenant, tl)) == {1}
    assert {p.name: p.stat().st_ino for p in local_dir.iterdir()} == local_before
    assert slot_stops(ps, tenant) == 0, "a same-generation swap stopped the slot"

    # AttachedMulti: no remote deletions (a timeline delete is refused, nothing removed).
    ok_json(put_location(ps, tenant, location_conf("AttachedMulti", 1)))
    error_msg(ps.delete(f"/v1/tenant/{tenant}/timeline/{tl}"), (409, 412, 503))
    assert timeline_info(ps, tenant, tl)["state"] == "Active"
    # AttachedStale: no uploads. A branch created meanwhile uploads nothing while Stale (the
    # creation waits, or is refused); back in AttachedSingle its index is uploaded.
    ok_json(put_location(ps, tenant, location_conf("AttachedStale", 1)))
    child = new_id()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(ps.post, f"/v1/tenant/{tenant}/timeline",
                              json={"new_timeline_id": child, "ancestor_timeline_id": tl},
                              timeout=60)
        time.sleep(1.0)
        assert ps_env.remote.keys(f"tenants/{tenant}/timelines/{child}/") == [], \
            "uploaded while AttachedStale"
        ok_json(put_location(ps, tenant, location_conf("AttachedSingle", 1)))
        r = pending.result()
    assert r.status_code in (201, 503), f"create while Stale: {r.status_code} {r.text}"
    if r.status_code == 503:
        ok_json(create_timeline(ps, tenant, {"new_timeline_id": child,
                                             "ancestor_timeline_id": tl}), 201)
    assert ps_env.remote.index_keys(tenant, child).keys() == {1}
    tl_prefix = f"tenants/{tenant}/timelines/{tl}/"
    assert ps_env.remote.snapshot(tl_prefix) == \
        {k: v for k, v in remote_before.items() if k.startswith(tl_prefix)}
    assert slot_stops(ps, tenant) == 0

    # Higher generation: the slot restarts in generation 2, loading the timeline again.
    conf2 = location_conf("AttachedSingle", ps_env.storcon.issue(tenant, 2))
    ok_json(put_location(ps, tenant, conf2))
    d2 = wait_tenant_active(ps, tenant)
    assert d2["generation"] == 2 and sorted(d2["timelines"]) == sorted([tl, child]), d2
    assert slot_stops(ps, tenant) == 1, "the generation change did not restart the slot"
    assert ok_json(get_location(ps, tenant)) == conf2
    assert pages.page(tenant, tl, spc, db, rel, fork, blk, lsn) == page
    assert timeline_info(ps, tenant, tl)["last_record_lsn"] == lsn

    # Lower generation: 400, and nothing changes.
    msg = error_msg(put_location(ps, tenant, location_conf("AttachedSingle", 1)), 400)
    assert "generation" in msg.lower(), msg
    assert ok_json(get_location(ps, tenant)) == conf2
    assert ok_json(tenant_detail(ps, tenant))["generation"] == 2
    assert pages.page(tenant, tl, spc, db, rel, fork, blk, lsn) == page
    pages.close()

    # flush_ms with nothing to upload: an in-place no-op answered at once; a malformed value 400.
    ok_json(put_location(ps, tenant, conf2, flush_ms=5000))
    error_msg(put_location(ps, tenant, conf2, flush_ms="soon"), 400)
    assert ok_json(get_location(ps, tenant)) == conf2


def test_detach_removes_local_data_and_is_idempotent(ps_env):
    ps = ps_env.pageserver()
    tenant, other = new_id(), new_id()
    ps_env.attach(ps, tenant, 1)
    other_conf = ps_env.attach(ps, other, 1)
    local = ps.workdir / "tenants" / tenant
    assert local.is_dir()
    remote_before = ps_env.remote.snapshot("tenants/")

    detached = location_conf("Detached", None)
    ok_json(put_location(ps, tenant, detached))
    assert not local.exists(), f"{local} still exists after Detached"
    error_msg(get_location(ps, tenant), 404)
    error_msg(tenant_detail(ps, tenant), 404)
    assert all_locations(ps) == {other: other_conf}

    ok_json(put_location(ps, tenant, detached))  # again: 200
    ok_json(put_location(ps, new_id(), detached))  # never known here: 200
    assert not local.exists()
    # Detach is local: remote data stays; the other tenant is untouched.
    assert ps_env.remote.snapshot("tenants/") == remote_before
    assert wait_tenant_active(ps, other)["generation"] == 1

    # The same tenant can be attached again afterwards.
    conf = ps_env.attach(ps, tenant, 2)
    assert ok_json(get_location(ps, tenant)) == conf


def test_secondary_holds_no_readable_tenant(ps_env):
    ps = ps_env.pageserver()
    fresh, demoted = new_id(), new_id()

    conf = ps_env.secondary(ps, fresh, warm=False)
    assert ok_json(get_location(ps, fresh)) == conf
    assert all_locations(ps)[fresh] == conf
    assert_not_readable(ps, fresh, tl=new_id())
    assert (ps.workdir / "tenants" / fresh / "config").is_file(), "secondary config not persisted"

    # attached -> secondary restarts the slot into a secondary; back to attached in a higher
    # generation serves again.
    ps_env.attach(ps, demoted, 1)
    conf = ps_env.secondary(ps, demoted, warm=True)
    assert ok_json(get_location(ps, demoted)) == conf
    assert_not_readable(ps, demoted)
    back = ps_env.attach(ps, demoted, 2)
    assert ok_json(get_location(ps, demoted)) == back
    assert wait_tenant_active(ps, demoted)["generation"] == 2


def arm_failpoint(ps, name, actions):
    ok_json(ps.put("/v1/failpoints", json=[{"name": name, "actions": actions}]))


def test_concurrent_upsert_to_busy_slot_is_409(ps_env):
    """While a slot is being changed (held by a failpoint on the worker) another upsert gets 409
    and reads are refused; the first change completes and the refused one left no trace."""
    ps = ps_env.pageserver()
    tenant = new_id()
    conf1 = location_conf("AttachedSingle", ps_env.storcon.issue(tenant, 1))

    # A new shard's attach begins in its config write's job (pageserver.md "Attach"): held
    # there, the slot is still Persisting, not attached here yet.
    arm_failpoint(ps, "attach-before-load", "1*sleep(1500)")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(put_location, ps, tenant, conf1)
        time.sleep(0.5)
        msg = error_msg(put_location(ps, tenant, location_conf("AttachedSingle", 2)), 409)
        # Status is refused (404 not attached yet, 503) or says "attaching, maybe writing".
        r = tenant_detail(ps, tenant)
        if r.status_code not in (404, 503):
            d = ok_json(r)
            assert d["state"]["slug"] in ("Attaching", "Activating") and \
                d["attachment_status"] == {"slug": "maybe"}, d
        error_msg(ps.get(f"/v1/tenant/{tenant}/timeline"), (404, 503))  # data reads refused
        assert first.running(), "the held attach finished early: the 409 proves nothing"
        ok_json(first.result())
    assert msg
    assert ok_json(get_location(ps, tenant)) == conf1
    assert wait_tenant_active(ps, tenant)["generation"] == 1

    # A same-generation swap is applied in place, but its config write still holds the slot.
    multi = location_conf("AttachedMulti", 1)
    arm_failpoint(ps, "location-config-persist", "1*sleep(1500)")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(put_location, ps, tenant, multi)
        time.sleep(0.5)
        error_msg(put_location(ps, tenant, location_conf("AttachedStale", 1)), 409)
        assert first.running(), "the held config write finished early"
        ok_json(first.result())
    assert ok_json(get_location(ps, tenant)) == multi
    assert wait_tenant_active(ps, tenant)["generation"] == 1


def test_tenant_delete_local_and_remote(ps_env):
    """DELETE of a shard id removes that shard here and its remote prefix; DELETE of the
    unsharded id removes every shard and every shard's prefix (and the initdb archive on the
    unsharded path); both are 200 again when nothing is left; other tenants are untouched."""
    ps, remote = ps_env.pageserver(), ps_env.remote
    tenant, tl = new_id(), new_id()
    shards = [tsid_of(tenant, n, 2) for n in range(2)]
    for n, tsid in enumerate(shards):
        ps_env.attach(ps, tsid, 1, shard_number=n, shard_count=2, stripe=8)
    bootstrap(ps, shards[0], tl, pg_version=15)
    bootstrap(ps, shards[1], tl, pg_version=15, existing_initdb_timeline_id=tl)
    assert remote.keys(f"tenants/{shards[0]}/") and remote.keys(f"tenants/{shards[1]}/")
    initdb_key = f"tenants/{tenant}/timelines/{tl}/initdb.tar.zst"
    assert remote.exists(initdb_key)
    # Another tenant's objects (planted) and slot must survive.
    other = new_id()
    other_conf = ps_env.attach(ps, other, 1)
    planted = remote.path(f"tenants/{other}/timelines/{new_id()}/planted-object")
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(b"keep me")

    ok_json(ps.delete(f"/v1/tenant/{shards[1]}"))
    assert remote.keys(f"tenants/{shards[1]}/") == []
    assert remote.keys(f"tenants/{shards[0]}/") and remote.exists(initdb_key)
    error_msg(get_location(ps, shards[1]), 404)
    assert not (ps.workdir / "tenants" / shards[1]).exists()
    assert wait_tenant_active(ps, shards[0])["timelines"] == [tl]
    ok_json(ps.delete(f"/v1/tenant/{shards[1]}"))  # absent: 200

    ok_json(ps.delete(f"/v1/tenant/{tenant}"))
    left = [k for k in remote.keys("tenants/") if k.startswith(f"tenants/{tenant}")]
    assert not left, f"objects left after deleting {tenant}: {left}"
    error_msg(get_location(ps, shards[0]), 404)
    assert not (ps.workdir / "tenants" / shards[0]).exists()
    ok_json(ps.delete(f"/v1/tenant/{tenant}"))  # absent: 200
    error_msg(ps.delete("/v1/tenant/xyz"), 400)

    assert planted.read_bytes() == b"keep me"
    assert all_locations(ps) == {other: other_conf}


# ---- bad input ----


def test_location_config_bad_input_changes_nothing(ps_env):
    ps = ps_env.pageserver()
    tenant = new_id()
    conf = ps_env.attach(ps, tenant, 3, tenant_conf={"gc_period": "1h"})
    shard = tsid_of(new_id(), 1, 4)
    sconf = ps_env.attach(ps, shard, 1, shard_number=1, shard_count=4, stripe=8)
    before = all_locations(ps)
    detail_before = ok_json(tenant_detail(ps, tenant))
    config_before = tenant_config(ps, tenant)

    higher = location_conf("AttachedSingle", 4)  # would restart the slot if accepted
    cases = [
        ("unknown field", {**higher, "generashun": 5}, "generashun"),
        ("generation as a string", {**higher, "generation": "4"}, "generation"),
        ("negative generation", {**higher, "generation": -1}, "generation"),
        ("generation above u32", {**higher, "generation": 2**32}, "generation"),
        ("fractional generation", {**higher, "generation": 4.5}, "generation"),
        ("attached without generation", {**higher, "generation": None}, "generation"),
        ("unknown mode", {**higher, "mode": "Attached"}, "Attached"),
        ("missing mode", {k: v for k, v in higher.items() if k != "mode"}, "mode"),
        ("missing tenant_conf", {k: v for k, v in higher.items() if k != "tenant_conf"},
         "tenant_conf"),
        ("bad tenant_conf value", {**higher, "tenant_conf": {"gc_period": "soon"}}, "gc_period"),
        ("shard params not the tsid's", {**higher, "shard_number": 1, "shard_count": 4,
                                         "shard_stripe_size": 8}, None),
        ("secondary_conf with an attached mode", {**higher, "secondary_conf": {"warm": True}},
         "secondary_conf"),
        ("secondary with a generation", {**higher, "mode": "Secondary"}, "generation"),
    ]
    for what, body, named in cases:
        msg = error_msg(put_location(ps, tenant, body), 400)
        if named:
            assert named in msg, f"{what}: 400 without naming {named!r}: {msg}"
    r = ps.put(f"/v1/tenant/{tenant}/location_config", data=b"{not json",
               headers={"Content-Type": "application/json"})
    error_msg(r, 400)
    # shard number >= count on a sharded id's own body
    bad_shard = {**sconf, "generation": 2, "shard_number": 4}
    error_msg(put_location(ps, shard, bad_shard), 400)

    # Malformed tenant shard ids in the path.
    t = new_id()
    for bad in ("xyz", t[:31], t + "0", f"{t}-0404", f"{t}-01", f"{t}_0104", f"{t}-zz04",
                "g" * 32):
        error_msg(put_location(ps, bad, location_conf("AttachedSingle", 1)), 400)
        error_msg(get_location(ps, bad), 400)
        error_msg(tenant_detail(ps, bad), 400)
    error_msg(get_location(ps, t), 404)

    assert all_locations(ps) == before
    assert ok_json(get_location(ps, tenant)) == conf
    assert ok_json(get_location(ps, shard)) == sconf
    assert ok_json(tenant_detail(ps, tenant)) == detail_before
    assert tenant_config(ps, tenant) == config_before


def test_tenant_config_strict_fields(ps_env):
    ps = ps_env.pageserver()
    tenant = new_id()
    conf = ps_env.attach(ps, tenant, 1, tenant_conf={"pitr_interval": "3 days"})
    before = tenant_config(ps, tenant)
    assert "pitr_interval" in before["tenant_specific_overrides"], before

    cases = [
        ({"pitr_intervall": "1h"}, "pitr_intervall"),  # a misspelt retention setting
        ({"gc_period": "1h", "gc_perod": "2h"}, "gc_perod"),
        ({"max_lsn_wal_lag": "1000"}, "max_lsn_wal_lag"),  # a string, not an integer
        ({"max_lsn_wal_lag": 0}, "max_lsn_wal_lag"),  # must be non-zero
        ({"gc_period": "soon"}, "gc_period"),  # not a duration
        ({"checkpoint_distance": -5}, "checkpoint_distance"),
        ({"image_compression": "lz4"}, "image_compression"),
    ]
    for fields, named in cases:
        for method in ("PUT", "PATCH"):
            r = ps.request(method, "/v1/tenant/config", json={"tenant_id": tenant, **fields})
            msg = error_msg(r, 400)
            assert named in msg, f"{method} {fields}: 400 without naming {named!r}: {msg}"
    error_msg(ps.put("/v1/tenant/config", json={"tenant_id": "xyz"}), 400)
    error_msg(ps.put("/v1/tenant/config", json={"gc_period": "1h"}), 400)  # no tenant_id
    error_msg(ps.get("/v1/tenant/xyz/config"), 400)
    error_msg(ps.get(f"/v1/tenant/{new_id()}/config"), 404)

    assert tenant_config(ps, tenant) == before
    assert ok_json(get_location(ps, tenant)) == conf

    # The accepted forms: PUT replaces the overrides, PATCH keeps absent fields and removes nulls.
    ok_json(ps.put("/v1/tenant/config",
                   json={"tenant_id": tenant, "gc_period": "2h", "max_lsn_wal_lag": 1000}))
    o = tenant_config(ps, tenant)["tenant_specific_overrides"]
    assert "gc_period" in o and o["max_lsn_wal_lag"] == 1000 and "pitr_interval" not in o, o
    ok_json(ps.request("PATCH", "/v1/tenant/config",
                       json={"tenant_id": tenant, "gc_period": None, "compaction_threshold": 4}))
    o = tenant_config(ps, tenant)["tenant_specific_overrides"]
    assert "gc_period" not in o and o["compaction_threshold"] == 4 and \
        o["max_lsn_wal_lag"] == 1000, o
    assert wait_tenant_active(ps, tenant)["generation"] == 1


def test_concurrent_new_locations_persist_together_fail_alone_survive_kill9(ps_env):
    """Location config writes run on the pageserver's sync threads, many at once (docs/
    pageserver.md "Threads"): a burst of new shards is answered only once each config is durable,
    a write that fails fails only its own shard (the others of the burst attach), and a kill -9
    right after the answers loses none of them (development mode: the persisted configs are
    loaded as they are at the restart)."""
    ps = ps_env.pageserver(control_plane_api=None)
    tsids = [new_id() for _ in range(24)]
    confs = {t: location_conf("AttachedSingle", ps_env.storcon.issue(t, 3)) for t in tsids}
    # exactly one of the concurrent writes fails, before anything of it is written
    ok_json(ps.put("/v1/failpoints",
                   json=[{"name": "location-config-persist", "actions": "1*return(disk full)"}]))
    with ThreadPoolExecutor(len(tsids)) as pool:
        results = dict(zip(tsids, pool.map(lambda t: put_location(ps, t, confs[t]), tsids)))
    failed = [t for t, r in results.items() if r.status_code != 200]
    assert len(failed) == 1, {t: (r.status_code, r.text) for t, r in results.items()}
    assert "disk full" in results[failed[0]].text, results[failed[0]].text
    done = [t for t in tsids if t not in failed]
    for t in done:
        assert wait_tenant_active(ps, t)["generation"] == 3
        stored = json.loads((ps.workdir / "tenants" / t / "config").read_text())
        assert stored == confs[t], (t, stored)
        # timelines/ is made with the first timeline, not by the location config
        assert not (ps.workdir / "tenants" / t / "timelines").exists()
    # the failed one is retried by its caller and succeeds
    assert ok_json(put_location(ps, failed[0], confs[failed[0]]))
    assert wait_tenant_active(ps, failed[0])["generation"] == 3

    ps.kill9()
    ps.start()
    wait_ready(ps)
    assert all_locations(ps) == confs
    for t in tsids:
        assert wait_tenant_active(ps, t)["generation"] == 3


def test_new_shard_has_no_timelines_dir_until_its_first_timeline(ps_env):
    """A new shard's location config writes only <tsid>/config; timelines/ comes with the first
    timeline directory (pageserver.md "Work directory"). Everything that reads it takes a missing
    one as empty: a warm secondary's download, a restart (re-attach and attach), an attached ->
    secondary -> attached round, a detach; and a bootstrap creates it."""
    ps1, ps2 = ps_env.pageserver(), ps_env.pageserver()
    empty, grows = new_id(), new_id()

    def tl_dir(ps, t):
        return ps.workdir / "tenants" / t / "timelines"

    for t in (empty, grows):
        ps_env.attach(ps1, t, 1)
        assert wait_tenant_active(ps1, t)["timelines"] == []
        assert (ps1.workdir / "tenants" / t / "config").is_file()
        assert not tl_dir(ps1, t).exists()

    # a warm secondary of the empty tenant: its heatmap lists no timeline, the download has
    # nothing to do and scans no directory that is not there
    ok_json(ps1.post(f"/v1/tenant/{empty}/heatmap_upload"))
    ps_env.secondary(ps2, empty, warm=True)
    progress = ok_json(ps2.post(f"/v1/tenant/{empty}/secondary/download",
                                params={"wait_ms": 30000}), 200)
    assert progress["layers_total"] == progress["layers_downloaded"] == 0, progress
    assert not tl_dir(ps2, empty).exists()

    # a restart attaches both again from their local configs and the re-attach answer
    assert ps1.stop() == 0
    ps1.start()
    wait_ready(ps1)
    for t in (empty, grows):
        assert wait_tenant_active(ps1, t)["timelines"] == []
        assert not tl_dir(ps1, t).exists()

    # attached -> secondary -> attached in a higher generation: the slot is loaded again
    ps_env.secondary(ps1, empty, warm=True)
    ps_env.attach(ps1, empty, 2)
    assert wait_tenant_active(ps1, empty)["generation"] == 2
    assert not tl_dir(ps1, empty).exists()

    # the first timeline creates the directory, durable with it
    tl = bootstrap(ps1, grows)["timeline_id"]
    assert (tl_dir(ps1, grows) / tl).is_dir()
    assert wait_tenant_active(ps1, grows)["timelines"] == [tl]

    # detaching a shard without the directory removes the rest
    for ps, t in ((ps1, empty), (ps2, empty), (ps1, grows)):
        ps_env.storcon.set_intent(ps.id, t, None)
        ok_json(put_location(ps, t, location_conf("Detached")))
        assert not (ps.workdir / "tenants" / t).exists()

    # nothing stumbled over the missing directory (a scan that failed is only logged)
    for ps in (ps1, ps2):
        errors = [line for line in ps.process.log_text().splitlines()
                  if " ERROR " in line and "timelines" in line]
        assert errors == [], errors
