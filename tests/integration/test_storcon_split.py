"""Shard split through the storage controller (docs/split.md): PUT
/control/v1/tenant/{tenant_id}/shard_split grows an initdb tenant from 1 to 4 shards; every page
reads back through its owning child; the control plane gets the 4-shard map exactly once and never
a partial one; describe and the database show the 4 children in the parent's generation. A
failure before the commit aborts (1 shard, still working); a controller killed at a step and
restarted ends with the tenant fully split (killed after the commit) or fully unsplit (before),
never mixed; bad input is refused with nothing changed."""

import json
import subprocess
import threading

import pytest
import requests

from fixtures.pagestream import GET_PAGE, LATEST, Request, connect
from fixtures.util import binary
from pageserver_env import Key, PageClient, RemoteDir, initdb_files, key_owner, relation_pages
from storcon_env import (  # noqa: F401 - fixtures are used by name
    ATTACHED_MODES,
    cluster,
    cluster_factory,
    error_msg,
    new_id,
    ok_json,
    parse_tsid,
    shard_tsids,
    tsid_of,
    wait_for,
)

SPLIT_TIMEOUT = 120


def split(cl, tenant, count, stripe=None, timeout=SPLIT_TIMEOUT):
    body = {"new_shard_count": count}
    if stripe is not None:
        body["new_stripe_size"] = stripe
    return cl.storcon.put(f"/control/v1/tenant/{tenant}/shard_split", json=body, timeout=timeout)


def run_storconctl(cl, *args, timeout=120):
    return subprocess.run([str(binary("storconctl")), "--api", cl.storcon.url, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def tenant_with_timeline(cl):
    tenant, _ = cl.create_tenant(count=0)
    tl = new_id()
    ok_json(cl.create_timeline(tenant, tl), 201)
    cl.reconcile_until_idle()
    return tenant, tl


def read_all(cl, tenant, tl, count, stripe, every=1):
    """Every page of the initdb result through its owning shard's attached pageserver (a
    non-owner child answers 404); returns how many pages were read."""
    attached = cl.attached(tenant)
    tsids = shard_tsids(tenant, count)
    assert sorted(attached) == sorted(tsids), attached
    files = initdb_files(RemoteDir(cl.env.remote_storage), tenant, tl)
    pages = list(relation_pages(files))[::every]
    clients = {}
    lsn = None
    read = 0
    try:
        for i, (spc, db, rel, fork, blk, page) in enumerate(pages):
            owner = key_owner(Key.rel_block(spc, db, rel, fork, blk), count, stripe) \
                if count > 1 else 0
            tsid = tsids[owner]
            node = attached[tsid]
            if node not in clients:
                clients[node] = PageClient(cl.ps(node))
            if lsn is None:
                lsn = ok_json(cl.ps(node).get(f"/v1/tenant/{tsid}/timeline/{tl}"))[
                    "last_record_lsn"]
            assert clients[node].page(tsid, tl, spc, db, rel, fork, blk, lsn) == page, \
                (tsid, spc, db, rel, fork, blk)
            read += 1
            if count > 1 and i % 50 == 0:
                other = tsids[(owner + 1) % count]
                onode = attached[other]
                clients.setdefault(onode, PageClient(cl.ps(onode)))
                r = clients[onode].get(other, tl, spc, db, rel, fork, blk, lsn)
                assert r.status_code == 404, (other, r.status_code)
    finally:
        for c in clients.values():
            c.close()
    return read


def assert_whole(cl, tenant, count):
    """Memory, database and pageservers agree on one shard count: the tenant is fully split or
    fully unsplit, never mixed; every shard attached exactly once in its database generation."""
    tsids = shard_tsids(tenant, count)
    desc = cl.describe(tenant)
    assert sorted(s["tenant_shard_id"] for s in desc["shards"]) == sorted(tsids), desc
    assert not any(s["is_splitting"] for s in desc["shards"]), desc
    rows = cl.db_shards(tenant)
    assert sorted(rows) == sorted(tsids), rows
    assert not any(r["splitting"] for r in rows.values()), rows
    attached = cl.attached_locations(tenant)
    assert sorted(attached) == sorted(tsids), attached
    for tsid, locs in attached.items():
        assert len(locs) == 1 and locs[0][1] == rows[tsid]["generation"], (tsid, locs, rows)
    ok_json(cl.consistency_check())


def notified_counts(cl, tenant, after=None):
    return [len(b["shards"]) for b in cl.notifications(tenant, after=after)]


def test_split_one_into_four(cluster):
    cl = cluster
    tenant, tl = tenant_with_timeline(cl)
    [parent] = cl.describe(tenant)["shards"]
    node, gen = parent["node_attached"], cl.db_generations(tenant)[tenant]
    wait_for(lambda: notified_counts(cl, tenant) == [1], 20, "the first notification")

    # bad input: nothing changes
    for count in (1, 0, 3, 6, 256):
        error_msg(split(cl, tenant, count), 400)
    error_msg(cl.storcon.put(f"/control/v1/tenant/{tenant}/shard_split",
                             json={"new_shard_count": 4, "extra": 1}), 400)
    error_msg(cl.storcon.put(f"/control/v1/tenant/{tenant}/shard_split", json={}), 400)
    error_msg(split(cl, tenant, 4, stripe=0), 400)
    error_msg(split(cl, new_id(), 4), 404)
    error_msg(cl.storcon.put("/control/v1/tenant/nothex/shard_split",
                             json={"new_shard_count": 4}), 400)
    assert cl.attached(tenant) == {tenant: node}

    stripe = 1  # every relation spread over all children
    answer = ok_json(split(cl, tenant, 4, stripe=stripe))
    children = shard_tsids(tenant, 4)
    assert answer == {"new_shards": children}, answer
    desc = cl.describe(tenant)
    assert desc["stripe_size"] == stripe, desc
    # the children start on the parent's node in the parent's generation
    assert {s["tenant_shard_id"]: s["node_attached"] for s in desc["shards"]} == \
        {c: node for c in children}, desc
    assert cl.db_generations(tenant) == {c: gen for c in children}
    cl.reconcile_until_idle()
    assert_whole(cl, tenant, 4)
    assert parent["tenant_shard_id"] not in cl.tenant_locations(tenant)

    def notified():
        counts = notified_counts(cl, tenant)
        assert counts == [1, 4], counts  # exactly once, never a partial map
        return cl.notifications(tenant)[-1]

    body = wait_for(notified, 20, "the 4-shard notification")
    assert body["stripe_size"] == stripe, body
    assert sorted(s["shard_number"] for s in body["shards"]) == [0, 1, 2, 3], body
    assert read_all(cl, tenant, tl, 4, stripe) > 500

    # a branch created after the split reaches every child
    br = new_id()
    ok_json(cl.create_timeline(tenant, br, ancestor_timeline_id=tl), 201)
    for tsid, on in cl.attached(tenant).items():
        assert ok_json(cl.ps(on).get(f"/v1/tenant/{tsid}/timeline/{br}"))["ancestor_timeline_id"] \
            == tl

    # 409 while a timeline of the tenant is being imported (its row tracked by the controller)
    importing, _ = cl.create_tenant(count=0)
    itl = new_id()
    cl.database.query(
        "INSERT INTO timeline_imports (tenant_id, timeline_id, shard_statuses) "
        "VALUES (%s, %s, %s::jsonb)", (importing, itl, json.dumps({"0000": {"InProgress": None}})))
    ok_json(cl.storcon.post("/upcall/v1/timeline_import_status", json={
        "tenant_shard_id": importing, "timeline_id": itl,
        "generation": cl.db_generations(importing)[importing],
        "status": {"InProgress": {"V1": {"jobs": 4, "completed": 1, "import_plan_hash": 1,
                                         "job_soft_size_limit": 1 << 28}}}}))
    wait_for(lambda: all(s["is_importing"] for s in cl.describe(importing)["shards"]), 10,
             "the tenant marked importing")
    assert "import" in error_msg(split(cl, importing, 2), 409)
    assert sorted(cl.db_shards(importing)) == [importing]

    # a split of a sharded tenant cannot change the stripe size; a repeat count is not larger
    error_msg(split(cl, tenant, 8, stripe=2048), 400)
    error_msg(split(cl, tenant, 4), 400)
    assert notified_counts(cl, tenant) == [1, 4]


def test_failure_before_commit_aborts(cluster_factory):
    cl = cluster_factory(1)
    tenant, tl = tenant_with_timeline(cl)
    gen = cl.db_generations(tenant)[tenant]
    cl.storcon_failpoint("split-before-commit", "return")
    msg = error_msg(split(cl, tenant, 2), 500)
    assert "commit" in msg, msg
    cl.storcon_failpoint("split-before-commit", "off")
    # aborted: one shard in memory and in the database; the children are gone from the
    # pageserver, the parent (shut down there by its split) attached again in a newer generation
    cl.reconcile_until_idle()
    assert_whole(cl, tenant, 0)
    assert cl.db_generations(tenant)[tenant] > gen
    assert read_all(cl, tenant, tl, 0, 2048, every=3) > 100
    assert all(n == 1 for n in notified_counts(cl, tenant))

    # the tenant still splits afterwards (with storconctl, which prints the new placement)
    out = run_storconctl(cl, "tenants", "split", tenant, "2", "--wait")
    assert out.returncode == 0, out.stderr
    node = cl.pageservers[0].id
    for tsid in shard_tsids(tenant, 2):
        assert any(line.split()[:2] == [tsid, str(node)] for line in out.stdout.splitlines()), \
            out.stdout
    usage = run_storconctl(cl, "tenants", "split", tenant, "three")
    assert usage.returncode == 64, usage
    refused = run_storconctl(cl, "tenants", "split", tenant, "3")
    assert refused.returncode == 1 and "400" in refused.stderr, refused
    cl.reconcile_until_idle()
    assert_whole(cl, tenant, 2)
    assert read_all(cl, tenant, tl, 2, 2048, every=3) > 100


@pytest.mark.parametrize("step,split_done", [
    ("split-before-begin", False),
    ("split-before-pageservers", False),
    ("split-before-commit", False),
    ("split-before-apply", True),
])
def test_storcon_crash_at_a_step_recovers(cluster_factory, step, split_done):
    cl = cluster_factory(1)
    tenant, tl = tenant_with_timeline(cl)
    cl.storcon_failpoint(step, "exit")
    result = {}

    def request():
        try:
            result["r"] = split(cl, tenant, 4)
        except requests.RequestException as e:
            result["e"] = e

    t = threading.Thread(target=request)
    t.start()
    t.join(SPLIT_TIMEOUT)
    assert "e" in result, result  # the controller died inside the request
    cl.storcon.process.wait_exit(30)
    cl.restart_storcon()
    cl.reconcile_until_idle()
    count = 4 if split_done else 0
    assert_whole(cl, tenant, count)
    assert read_all(cl, tenant, tl, count, 2048, every=3) > 100

    def notified():
        counts = notified_counts(cl, tenant)
        assert counts and counts[-1] == max(count, 1), counts
        assert set(counts) <= {1, max(count, 1)}, counts

    wait_for(notified, 30, "the final map notified")
    for ps in cl.pageservers:  # no shard of the other count left anywhere
        for tsid in cl.locations(ps):
            if tsid.startswith(tenant):
                assert parse_tsid(tsid)[2] == count, (tsid, count)


def test_split_rebuilds_secondaries_for_the_children(cluster_factory):
    cl = cluster_factory(2)
    tenant, _ = cl.create_tenant(count=0, placement={"Attached": 1})
    tl = new_id()
    ok_json(cl.create_timeline(tenant, tl), 201)
    cl.reconcile_until_idle()
    [parent] = cl.describe(tenant)["shards"]
    node, [secondary] = parent["node_attached"], parent["node_secondary"]

    assert ok_json(split(cl, tenant, 2))["new_shards"] == shard_tsids(tenant, 2)
    cl.reconcile_until_idle()
    assert_whole(cl, tenant, 2)
    for s in cl.describe(tenant)["shards"]:
        assert s["node_attached"] == node and s["node_secondary"] == [secondary], s
    held = cl.locations(cl.ps(secondary))
    assert tenant not in held  # the parent's secondary is gone
    for tsid in shard_tsids(tenant, 2):
        assert held[tsid]["mode"] == "Secondary", held
    # the children's secondaries follow their heatmaps (which name the parent's layers)
    for tsid in shard_tsids(tenant, 2):
        ok_json(cl.ps(node).post(f"/v1/tenant/{tsid}/heatmap_upload"))
        progress = ok_json(cl.ps(secondary).post(f"/v1/tenant/{tsid}/secondary/download",
                                                 params={"wait_ms": 30000}), 200)
        assert progress["layers_total"] == progress["layers_downloaded"] > 0, progress
    assert read_all(cl, tenant, tl, 2, 2048, every=3) > 100


def test_pageserver_killed_during_its_split_aborts_cleanly(cluster_factory):
    """The parent's pageserver dies (failpoint exit: _exit, no cleanup, like kill -9) after it
    attached the children and before it shut the parent down: the controller aborts; once the
    pageserver is back (re-attach lists the parent only) the tenant is whole and unsplit, with no
    child left anywhere."""
    cl = cluster_factory(1)
    tenant, tl = tenant_with_timeline(cl)
    ps = cl.pageservers[0]
    cl.ps_failpoint(ps, "shard-split-before-parent-detach", "exit")
    r = split(cl, tenant, 2)
    assert r.status_code in (500, 503), r.text
    ps.process.wait_exit(30)
    desc = cl.describe(tenant)
    assert [s["tenant_shard_id"] for s in desc["shards"]] == [tenant], desc
    assert sorted(cl.db_shards(tenant)) == [tenant]
    ps.start()
    cl.wait_nodes("Active")
    cl.reconcile_until_idle()
    assert_whole(cl, tenant, 0)
    assert read_all(cl, tenant, tl, 0, 2048, every=3) > 100


def test_split_twice_under_a_continuous_reader(cluster_factory):
    """1 -> 2 -> 8 while a compute-like reader keeps reading pages through the page service
    (which picks the owning shard by key): never a wrong page, and no error either (on the one
    node the children are active before the parent goes); the control plane only ever receives
    whole maps and ends with the 8-shard one."""
    cl = cluster_factory(1)
    tenant, tl = tenant_with_timeline(cl)
    ps = cl.pageservers[0]
    files = initdb_files(RemoteDir(cl.env.remote_storage), tenant, tl)
    pages = list(relation_pages(files))[::4]
    stop = threading.Event()
    stats = {"read": 0, "wrong": [], "errors": []}

    def reader():
        conn = None
        i = 0
        while not stop.is_set():
            try:
                if conn is None:
                    conn = connect(ps.pg_port, tenant, tl, 2)
                spc, db, rel, fork, blk, page = pages[i % len(pages)]
                resp = conn.call(Request(GET_PAGE, LATEST, 0, rel=(spc, db, rel, fork),
                                         blkno=blk))
                if resp.is_error:
                    stats["errors"].append(resp.error)
                elif resp.data != page:
                    stats["wrong"].append((spc, db, rel, fork, blk))
                else:
                    stats["read"] += 1
                i += 1
            except Exception as e:  # noqa: BLE001 - a dropped connection is counted
                stats["errors"].append(repr(e))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    t = threading.Thread(target=reader)
    t.start()
    try:
        wait_for(lambda: stats["read"] > 50, 20, "the reader running")
        assert ok_json(split(cl, tenant, 2))["new_shards"] == shard_tsids(tenant, 2)
        cl.reconcile_until_idle()
        before = stats["read"]
        wait_for(lambda: stats["read"] > before + 50, 20, "reads on the children")
        assert ok_json(split(cl, tenant, 8))["new_shards"] == shard_tsids(tenant, 8)
        cl.reconcile_until_idle()
        before = stats["read"]
        wait_for(lambda: stats["read"] > before + 50, 20, "reads on the grandchildren")
    finally:
        stop.set()
        t.join(30)
    assert not stats["wrong"], stats["wrong"][:5]
    assert not stats["errors"], stats["errors"][:5]
    assert_whole(cl, tenant, 8)
    assert read_all(cl, tenant, tl, 8, 2048, every=3) > 100

    def notified():
        bodies = cl.notifications(tenant)
        for b in bodies:  # every body a whole map of its count
            numbers = sorted(s["shard_number"] for s in b["shards"])
            assert numbers == list(range(len(numbers))) and len(numbers) in (1, 2, 8), b
        assert [len(b["shards"]) for b in bodies] == [1, 2, 8], bodies

    wait_for(notified, 20, "the 8-shard map notified")


def test_optimiser_spreads_the_children(cluster_factory):
    """The children of a split start on their parent's node; the optimiser (after each background
    pass, here every second) then spreads them across the nodes, cutting over only to warm
    secondaries: the tenant ends within one shard per node, every child attached exactly once in
    a generation above the parent's, and every page still reads back on its owner."""
    cl = cluster_factory(3, storcon_args=["--background-interval", "1s"])
    tenant, _ = cl.create_tenant(count=0, placement={"Attached": 1})
    tl = new_id()
    ok_json(cl.create_timeline(tenant, tl), 201)
    cl.reconcile_until_idle()
    [parent] = cl.describe(tenant)["shards"]
    parent_gen = cl.db_generations(tenant)[tenant]

    assert ok_json(split(cl, tenant, 4, stripe=1))["new_shards"] == shard_tsids(tenant, 4)
    nodes = [ps.id for ps in cl.pageservers]

    def spread():
        per_node = {n: 0 for n in nodes}
        for node in cl.attached(tenant).values():
            per_node[node] += 1
        counts = sorted(per_node.values())
        assert counts[-1] - counts[0] <= 1, per_node
        return per_node

    per_node = wait_for(spread, 60, "the children spread by the optimiser", interval=0.5)
    cl.reconcile_until_idle()
    assert_whole(cl, tenant, 4)
    assert sum(1 for n in per_node.values() if n > 0) == 3, per_node
    moved = [s for s in cl.describe(tenant)["shards"]
             if s["node_attached"] != parent["node_attached"]]
    assert moved, "no child left the parent's node"
    gens = cl.db_generations(tenant)
    for s in moved:
        assert gens[s["tenant_shard_id"]] > parent_gen, (s, gens)
    assert read_all(cl, tenant, tl, 4, 1, every=3) > 100
