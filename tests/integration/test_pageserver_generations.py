"""Generations on the pageserver: the re-attach handshake at startup and what it decides, and two
pageservers attached to one shard in different generations sharing remote storage
(pageserver.md "Generations on the pageserver", "Remote storage layout")."""

import json
import re
import time

import requests

from fixtures.util import wait_until
from pageserver_env import (  # noqa: F401 - fixtures are used by name
    PageClient,
    all_locations,
    bootstrap,
    branch,
    delete_timeline,
    error_msg,
    fake_storcon,
    flush_deletions,
    get_location,
    initdb_files,
    lsn_parse,
    ok_json,
    parse_layer_object_name,
    ps_env,
    relation_pages,
    tenant_detail,
    timeline_info,
    timelines,
    wait_tenant_active,
    wait_ready,
    wait_timeline_gone,
)

GEN_SUFFIX_RE = re.compile(r"-([0-9a-f]{8})(?:\.json)?$")
GENERATIONLESS = ("heatmap-v1.json", "initdb.tar.zst")


def object_generation(key: str):
    """The generation suffix of a remote object name, or None for the generation-less objects."""
    name = key.rsplit("/", 1)[-1]
    if name in GENERATIONLESS:
        return None
    m = GEN_SUFFIX_RE.search(name)
    assert m, f"remote object without a generation suffix: {key}"
    return int(m.group(1), 16)


def tenant_routes_unavailable(ps, tenant):
    """While re-attach has not succeeded no tenant route may answer with data: 503, or no
    listener at all. Returns the statuses seen (None: connection refused)."""
    seen = []
    probes = [
        ("GET", f"/v1/tenant/{tenant}", None),
        ("GET", "/v1/tenant", None),
        ("GET", f"/v1/location_config/{tenant}", None),
        ("GET", "/v1/location_config", None),
        ("GET", f"/v1/tenant/{tenant}/timeline", None),
        ("PUT", f"/v1/tenant/{tenant}/location_config",
         {"mode": "AttachedSingle", "generation": 99, "tenant_conf": {}}),
    ]
    for method, path, body in probes:
        try:
            r = ps.request(method, path, json=body, timeout=5)
        except requests.ConnectionError:
            seen.append(None)
            continue
        assert r.status_code == 503, \
            f"{method} {path} before re-attach succeeded: {r.status_code} {r.text}"
        seen.append(503)
    return seen


def test_restart_honours_reattach_answer(ps_env):
    storcon = ps_env.storcon
    ps = ps_env.pageserver(availability_zone="az-left")
    attached, secondary, unlisted = "a" * 32, "b" * 32, "c" * 32

    # The startup handshake: re-attach with this node's registration.
    first = storcon.wait_for(lambda s: s.reattach_calls(ps.id, status=200), what="re-attach")[0]
    reg = first.body.get("register")
    assert isinstance(reg, dict), f"re-attach without register: {first.body}"
    assert reg.get("node_id") == ps.id and reg.get("listen_http_port") == ps.http_port, reg
    assert reg.get("listen_pg_port") == ps.pg_port and \
        reg.get("availability_zone_id") == "az-left", reg
    assert reg.get("listen_http_addr") and reg.get("listen_pg_addr"), reg

    ps_env.attach(ps, attached, 1, tenant_conf={"pitr_interval": "2 days", "gc_period": "2h"})
    tl = bootstrap(ps, attached, pg_version=15)["timeline_id"]
    lsn = timeline_info(ps, attached, tl)["last_record_lsn"]
    spc, db, rel, fork, blk, page = next(relation_pages(initdb_files(ps_env.remote, attached, tl)))
    sconf = ps_env.secondary(ps, secondary, warm=False)
    ps_env.attach(ps, unlisted, 1)
    assert (ps.workdir / "tenants" / unlisted).is_dir()

    assert ps.stop() == 0
    storcon.set_intent(ps.id, unlisted, None)  # the controller moved it elsewhere
    storcon.hold_reattach()
    failed_before = len(storcon.reattach_calls(ps.id, status=503))
    held_at = time.monotonic()
    ps.start(wait=False)

    # The pageserver retries re-attach, and serves no tenant route meanwhile.
    storcon.wait_for(lambda s: len(s.reattach_calls(ps.id, status=503)) >= failed_before + 3,
                     timeout=30, what="3 failed re-attach attempts")
    tenant_routes_unavailable(ps, attached)
    held_for = time.monotonic() - held_at
    attempts = len(storcon.reattach_calls(ps.id, status=503)) - failed_before
    assert attempts <= 20 * held_for + 5, f"{attempts} re-attach attempts in {held_for:.1f}s: " \
        "no backoff"
    assert storcon.reattach_calls(ps.id, status=200) == [first], "re-attach succeeded while held"
    storcon.release_reattach()
    ps.wait_healthy()
    wait_ready(ps)
    ok = storcon.wait_for(lambda s: s.reattach_calls(ps.id, status=200)[1:], what="re-attach")[0]

    answer = {t["id"]: t for t in ok.answer["tenants"]}
    assert answer[attached]["gen"] == 2 and answer[attached]["mode"] == "AttachedSingle"
    assert answer[secondary]["gen"] is None and unlisted not in answer

    # Attached in the new generation, with its timeline loaded from remote storage.
    d = wait_tenant_active(ps, attached)
    assert d["generation"] == 2 and d["timelines"] == [tl], d
    lc = ok_json(get_location(ps, attached))
    assert lc["mode"] == "AttachedSingle" and lc["generation"] == 2, lc
    # The attach-time tenant config survives the restart (the re-attach answer has none).
    overrides = ok_json(ps.get(f"/v1/tenant/{attached}/config"))["tenant_specific_overrides"]
    assert {"pitr_interval", "gc_period"} <= set(overrides), overrides
    pages = PageClient(ps)
    assert pages.page(attached, tl, spc, db, rel, fork, blk, lsn) == page
    pages.close()

    # The listed secondary stays a secondary; the unlisted shard's local data is gone.
    lc = ok_json(get_location(ps, secondary))
    assert lc["mode"] == "Secondary" and lc["generation"] is None, lc
    assert lc == sconf, "secondary config not kept across restart"
    error_msg(tenant_detail(ps, secondary), (404, 503))
    error_msg(get_location(ps, unlisted), 404)
    wait_until(lambda: not (ps.workdir / "tenants" / unlisted).exists(), timeout=10,
               what="unlisted tenant's local data removed")
    assert set(all_locations(ps)) == {attached, secondary}


def test_restart_with_lower_generation_demotes_to_secondary(ps_env):
    storcon = ps_env.storcon
    ps = ps_env.pageserver()
    tenant = "d" * 32
    ps_env.attach(ps, tenant, 5)
    assert ps.stop() == 0
    # A (buggy or restored) controller answers a generation below the one stored locally.
    storcon.set_reattach_answer(ps.id, [{"id": tenant, "gen": 3, "mode": "AttachedSingle",
                                         "stripe_size": 0}])
    ps.start()
    wait_ready(ps)
    storcon.wait_for(lambda s: s.reattach_calls(ps.id, status=200)[1:], what="re-attach")

    def demoted():
        lc = ok_json(get_location(ps, tenant))
        assert lc["mode"] == "Secondary", lc
        return lc

    wait_until(demoted, timeout=10)
    error_msg(tenant_detail(ps, tenant), (404, 503))


def test_two_generations_never_overwrite_and_stale_deletions_are_refused(ps_env):
    """ps1 attached in generation 1 keeps running (nobody tells it) while ps2 attaches the same
    shard in generation 2: a split brain the generations make safe."""
    storcon, remote = ps_env.storcon, ps_env.remote
    ps1 = ps_env.pageserver(start=False)
    ps2 = ps_env.pageserver(start=False)
    ps_env.start_all([ps1, ps2])
    tenant = "e" * 32
    prefix = f"tenants/{tenant}/"

    # Generation 1 on ps1: a bootstrapped timeline and a second one (d) with its own layers.
    ps_env.attach(ps1, tenant, 1)
    root = bootstrap(ps1, tenant, pg_version=15)["timeline_id"]
    doomed = bootstrap(ps1, tenant, pg_version=15, existing_initdb_timeline_id=root)["timeline_id"]
    lsn = timeline_info(ps1, tenant, root)["last_record_lsn"]
    s0 = remote.snapshot(prefix)
    assert {object_generation(k) for k in s0} <= {1, None}, sorted(s0)
    assert remote.index_keys(tenant, root).keys() == {1}
    doomed_layers = {k for k in s0 if k.startswith(f"{prefix}timelines/{doomed}/")
                     and parse_layer_object_name(k.rsplit("/", 1)[-1])}
    assert doomed_layers, f"timeline {doomed} has no layer objects: {sorted(s0)}"

    # Generation 2 on ps2 (ps1 is not told).
    ps_env.attach(ps2, tenant, 2)
    since_gen2 = len(storcon.validations())
    assert set(timelines(ps2, tenant)) == {root, doomed}
    assert ok_json(tenant_detail(ps1, tenant))["generation"] == 1
    b2 = branch(ps2, tenant, root)["timeline_id"]
    n2 = bootstrap(ps2, tenant, pg_version=15, existing_initdb_timeline_id=root)["timeline_id"]
    s1 = remote.snapshot(prefix)
    changed = [k for k in s0 if s1.get(k) != s0[k]]
    assert not changed, f"generation 2 rewrote or removed generation-1 objects: {changed}"
    new2 = set(s1) - set(s0)
    assert {object_generation(k) for k in new2} <= {2, None}, sorted(new2)
    assert remote.index_keys(tenant, b2).keys() == {2}
    assert remote.index_keys(tenant, n2).keys() == {2}
    assert any(parse_layer_object_name(k.rsplit("/", 1)[-1]) and object_generation(k) == 2
               for k in new2), f"no generation-2 layer objects: {sorted(new2)}"

    # Activity on the stale ps1 afterwards: only generation-1 objects, gen-2 ones untouched.
    b1 = branch(ps1, tenant, root)["timeline_id"]
    s2 = remote.snapshot(prefix)
    gen2_changed = [k for k in s1 if object_generation(k) == 2 and s2.get(k) != s1[k]]
    assert not gen2_changed, f"generation 1 rewrote generation-2 objects: {gen2_changed}"
    new1 = set(s2) - set(s1)
    assert {object_generation(k) for k in new1} <= {1, None}, sorted(new1)
    assert remote.index_keys(tenant, b1).keys() == {1}
    all_index_gens = {object_generation(k) for k in s2 if "/index_part.json" in k}
    assert all_index_gens == {1, 2}, sorted(k for k in s2 if "/index_part.json" in k)
    # Both still serve reads from the shared layers.
    pages1, pages2 = PageClient(ps1), PageClient(ps2)
    spc, db, rel, fork, blk, page = next(relation_pages(initdb_files(remote, tenant, root)))
    assert pages1.page(tenant, root, spc, db, rel, fork, blk, lsn) == page
    assert pages2.page(tenant, root, spc, db, rel, fork, blk, lsn) == page
    assert pages2.page(tenant, b2, spc, db, rel, fork, blk, lsn) == page

    # ps1 (stale) deletes the timeline: validation answers invalid for generation 1, the batch
    # is dropped, the objects stay.
    r = delete_timeline(ps1, tenant, doomed)
    assert r.status_code == 202, f"{r.status_code} {r.text}"
    wait_timeline_gone(ps1, tenant, doomed)
    flush_deletions(ps1)
    storcon.wait_for(lambda s: [v for v in s.validations() if v[0] == tenant and v[1] == 1],
                     what="validate of generation 1")
    stale = [v for v in storcon.validations()[since_gen2:] if v[0] == tenant and v[1] == 1]
    assert stale and all(v[2] is False for v in stale), stale
    time.sleep(0.5)  # give a (buggy) late deletion the chance to show
    s3 = remote.snapshot(prefix)
    gone = sorted(k for k in doomed_layers if k not in s3)
    assert not gone, f"stale generation 1 deleted objects despite valid=false: {gone}"
    assert all(s3[k] == s2[k] for k in doomed_layers)
    gen2_changed = [k for k in s2 if object_generation(k) == 2 and s3.get(k) != s2[k]]
    assert not gen2_changed, gen2_changed
    assert doomed in timelines(ps2, tenant), "ps2 lost the timeline ps1 deleted"
    # remote_consistent_lsn_visible advances only after a positive validation: never for the
    # branch the stale ps1 made, soon for the one ps2 made.
    info1 = timeline_info(ps1, tenant, b1)
    assert lsn_parse(info1["remote_consistent_lsn_visible"]) < \
        lsn_parse(info1["remote_consistent_lsn"]), info1

    def b2_visible():
        info2 = timeline_info(ps2, tenant, b2)
        assert info2["remote_consistent_lsn_visible"] == info2["remote_consistent_lsn"], info2

    wait_until(b2_visible, timeout=10)

    # ps2 (current) deletes the same timeline: validated, every object of it goes.
    r = delete_timeline(ps2, tenant, doomed)
    assert r.status_code == 202, f"{r.status_code} {r.text}"
    wait_timeline_gone(ps2, tenant, doomed)
    flush_deletions(ps2)
    doomed_prefix = f"{prefix}timelines/{doomed}/"
    wait_until(lambda: remote.keys(doomed_prefix) == [], timeout=15,
               what=f"objects of {doomed} deleted")
    assert any(v[0] == tenant and v[1] == 2 and v[2] is True for v in storcon.validations())
    # Nothing else was deleted.
    s4 = remote.snapshot(prefix)
    lost = sorted(k for k in s3 if k not in s4 and not k.startswith(doomed_prefix))
    assert not lost, f"deleting {doomed} removed other objects: {lost}"
    assert pages2.page(tenant, root, spc, db, rel, fork, blk, lsn) == page
    pages1.close()
    pages2.close()
    assert ok_json(get_location(ps2, tenant))["generation"] == 2

    # An attach never reads an index of a newer generation: ps1 restarted and (wrongly, but
    # possibly after a database restore) re-attached in generation 1 does not see b2, whose only
    # index is generation 2's.
    assert ps1.stop() == 0
    storcon.set_reattach_answer(ps1.id, [{"id": tenant, "gen": 1, "mode": "AttachedSingle",
                                          "stripe_size": 0}])
    ps1.start()
    wait_ready(ps1)
    wait_tenant_active(ps1, tenant)
    assert set(timelines(ps1, tenant)) == {root, b1}
    # ps2 attached again in generation 3 picks, per timeline, the newest index <= 3: all four.
    ps_env.attach(ps2, tenant, 3)
    assert set(timelines(ps2, tenant)) == {root, b1, b2, n2}


def deletion_lists(ps):
    d = ps.workdir / "deletion"
    return sorted(p.name for p in d.glob("*.list")) if d.is_dir() else []


def test_deletion_queue_survives_restart(ps_env):
    """A deletion validated before a restart is executed after it, even though the shard has
    moved away meanwhile (the restart's re-attach makes it a secondary here); one not yet
    validated is validated again after the restart, now stale, and dropped: its objects leak,
    which is safe."""
    storcon, remote = ps_env.storcon, ps_env.remote
    ps = ps_env.pageserver()
    tenant = "f" * 32
    ps_env.attach(ps, tenant, 1)
    root = bootstrap(ps, tenant, pg_version=15)["timeline_id"]
    d1, d2 = (bootstrap(ps, tenant, pg_version=15, existing_initdb_timeline_id=root)["timeline_id"]
              for _ in range(2))
    p1, p2 = (f"tenants/{tenant}/timelines/{d}/" for d in (d1, d2))
    assert remote.keys(p1) and remote.keys(p2)
    header = ps.workdir / "deletion" / "header.json"

    # d1: validated (generation 1 is current) but not executed: the failpoint fails execution.
    ok_json(ps.put("/v1/failpoints", json=[{"name": "deletion-queue-execute",
                                            "actions": "return(held by the test)"}]))
    assert delete_timeline(ps, tenant, d1).status_code == 202
    wait_until(lambda: deletion_lists(ps), timeout=10, what="the deletion list persisted")
    seq1 = max(int(name.split(".")[0], 16) for name in deletion_lists(ps))
    wait_until(lambda: header.is_file() and json.loads(header.read_text())["validated_sequence"]
               >= seq1, timeout=15, what="validated sequence persisted")
    assert (tenant, 1, True) in storcon.validations()
    assert remote.keys(p1), "executed despite the failpoint"

    # d2: persisted, but validate is held, so it is not validated before the restart.
    storcon.hold_validate()
    held_from = len(storcon.validate_calls())
    assert delete_timeline(ps, tenant, d2).status_code == 202
    wait_until(lambda: len(deletion_lists(ps)) >= 2, timeout=10, what="a second persisted list")
    storcon.wait_for(lambda s: [u for u in s.validate_calls()[held_from:] if u.status == 503],
                     timeout=15, what="a held validate")
    lists_before = deletion_lists(ps)
    d2_before = remote.snapshot(p2)  # with the deleted_at index ps wrote
    assert d2_before

    assert ps.stop() == 0
    # Meanwhile the controller moved the shard: generation 2 elsewhere, a secondary here.
    storcon.issue(tenant, 2)
    storcon.set_intent(ps.id, tenant, "Secondary")
    storcon.release_validate()
    since_restart = len(storcon.validations())
    ps.start()
    wait_ready(ps)
    wait_until(lambda: ok_json(get_location(ps, tenant))["mode"] == "Secondary", timeout=10)

    wait_until(lambda: remote.keys(p1) == [], timeout=20,
               what="the deletion validated before the restart executed after it")
    storcon.wait_for(lambda s: (tenant, 1, False) in s.validations()[since_restart:],
                     timeout=20, what="re-validation of the unvalidated list")
    wait_until(lambda: not set(deletion_lists(ps)) & set(lists_before), timeout=20,
               what="persisted lists consumed")
    time.sleep(0.5)  # a (buggy) late execution of the dropped list would show now
    assert remote.snapshot(p2) == d2_before, "a stale (unvalidated) deletion was executed"
    assert (tenant, 1, True) not in storcon.validations()[since_restart:]
    assert remote.keys(f"tenants/{tenant}/timelines/{root}/"), "root timeline objects lost"
