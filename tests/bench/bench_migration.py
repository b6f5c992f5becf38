"""bench_migration.py: live migration of N shards onto warm secondaries vs onto cold nodes
(run by bench_migration.sh; not part of CI). See bench_migration.sh for what is measured."""

import os
import time

import pytest
from storcon_env import cluster_factory, ok_json  # noqa: F401 - fixtures are used by name
from test_storcon_migration import Reader, metric, migrate, shard_pages, warm_tenant

from pageserver_env import (
    build_source_pgdata,
    make_location,
    read_tree,
    relation_pages,
    timeline_info,
)
from storcon_env import complete_notifications, import_body, new_id, wait_row_gone

COUNTS = [int(c) for c in os.environ.get("BENCH_MIGRATION_COUNTS", "8,64").split(",")]
SCALE = int(os.environ.get("BENCH_MIGRATION_SCALE", "20"))
IMPORT_ARGS = ["--import-poll-interval", "100ms"]


def settled(cl, tenant, want: dict) -> bool:
    shards = {s["tenant_shard_id"]: s for s in cl.describe(tenant)["shards"]}
    for tsid, node in want.items():
        s = shards[tsid]
        if s["is_reconciling"] or s["node_attached"] != node:
            return False
    att = cl.attached_locations(tenant)
    return all(att.get(tsid) == [(node, att[tsid][0][1], "AttachedSingle")]
               for tsid, node in want.items())


def run(cl, count: int, warm: bool) -> dict:
    if warm:
        tenant, tl = warm_tenant(cl, count)
    else:
        tenant, _ = cl.create_tenant(count=count, placement={"Attached": 0})
        cl.reconcile_until_idle()
        tl = "%032x" % int(time.time() * 1e6)
        ok_json(cl.create_timeline(tenant, tl), 201)
        cl.reconcile_until_idle()
    desc = cl.describe(tenant)
    shards = desc["shards"]
    ids = [ps.id for ps in cl.pageservers]
    want = {}
    for s in shards:
        if warm:
            want[s["tenant_shard_id"]] = s["node_secondary"][0]
        else:  # the next node: nothing of the shard there
            want[s["tenant_shard_id"]] = ids[(ids.index(s["node_attached"]) + 1) % len(ids)]
    first = shards[0]
    tsid0 = first["tenant_shard_id"]
    lsn = timeline_info(cl.ps(first["node_attached"]), tsid0, tl)["last_record_lsn"]
    pages = shard_pages(cl, tenant, tl, 0, max(count, 1), desc["stripe_size"])[:100]
    dl_before = sum(metric(ps, "pageserver_layers_downloaded_total") for ps in cl.pageservers)
    reader = Reader(cl, tenant, tsid0, tl, lsn, pages, first["node_attached"])
    reader.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    for tsid, node in want.items():
        ok_json(migrate(cl, tsid, {"node_id": node}))
    accepted = time.monotonic() - t0
    while not settled(cl, tenant, want):
        assert time.monotonic() - t0 < 600, "migrations did not settle in 600 s"
        time.sleep(0.05)
    took = time.monotonic() - t0
    time.sleep(0.3)
    reader.stop()
    dl = sum(metric(ps, "pageserver_layers_downloaded_total") for ps in cl.pageservers) - dl_before
    assert reader.wrong == 0
    return {"took": took, "accepted": accepted, "gap_ms": reader.longest_gap * 1000,
            "reads": reader.ok, "failed": reader.errors, "downloaded": dl,
            "failures": reader.failures}


@pytest.mark.test_timeout(1800)
@pytest.mark.parametrize("count", COUNTS)
def test_bench_migration(cluster_factory, count):
    cl = cluster_factory(3, storcon_args=["--max-shards-per-tenant", str(max(count, 8))])
    warm = run(cl, count, warm=True)
    cold = run(cl, count, warm=False)
    print()
    for name, r in (("warm secondaries", warm), ("cold destinations (baseline)", cold)):
        print(f"bench_migration: {count} shards, {name}: all settled in {r['took']:.2f} s "
              f"({r['took'] / count * 1000:.0f} ms/shard; the {count} PUTs took "
              f"{r['accepted']:.2f} s), longest read gap {r['gap_ms']:.0f} ms, reads ok "
              f"{r['reads']}, failed {r['failed']} {r['failures']}, layers downloaded "
              f"{r['downloaded']:.0f}")
    print(f"bench_migration: {count} shards: warm/cold time ratio "
          f"{warm['took'] / cold['took']:.2f}")


def remote_bytes(cl) -> float:
    """Bytes every pageserver read from remote storage: on-demand layer downloads and secondary
    download passes."""
    return sum(metric(ps, "pageserver_layer_bytes_downloaded_total") +
               metric(ps, "pageserver_secondary_bytes_downloaded_total") for ps in cl.pageservers)


def move_one(cl, tenant, tsid, tl, lsn, pages, dest) -> dict:
    """One migrate PUT of an unsharded tenant under the reader, timed until the shard is settled
    AttachedSingle on dest; the reader's longest gap; the bytes read from remote storage."""
    first = cl.describe(tenant)["shards"][0]["node_attached"]
    before = remote_bytes(cl)
    reader = Reader(cl, tenant, tsid, tl, lsn, pages, first)
    reader.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    ok_json(migrate(cl, tsid, {"node_id": dest}))
    while not settled(cl, tenant, {tsid: dest}):
        assert time.monotonic() - t0 < 600, "the migration did not settle in 600 s"
        time.sleep(0.02)
    took = time.monotonic() - t0
    time.sleep(0.3)
    reader.stop()
    assert reader.wrong == 0
    return {"took": took, "gap_ms": reader.longest_gap * 1000, "reads": reader.ok,
            "failed": reader.errors, "bytes": remote_bytes(cl) - before}


@pytest.mark.test_timeout(1800)
def test_bench_migration_pgbench(cluster_factory, tmp_path):
    """An unsharded tenant holding an imported `pgbench -i -s SCALE` database: moved onto its warm
    secondary under the reader, then (the baseline, same run) moved onto the third node, which holds
    nothing of it (a cold destination)."""
    pgdata, _ = build_source_pgdata(tmp_path, SCALE)
    cl = cluster_factory(3, extra_args=IMPORT_ARGS)
    tenant, _ = cl.create_tenant(count=0, placement={"Attached": 1})
    cl.reconcile_until_idle()
    tl = new_id()
    ok_json(cl.create_timeline(tenant, tl, import_pgdata=import_body(make_location(pgdata,
                                                                                    tmp_path))),
            201)
    deadline = time.monotonic() + 600
    while not [n for n in complete_notifications(cl, tenant) if n.get("timeline_id") == tl]:
        assert time.monotonic() < deadline, "the import did not complete in 600 s"
        time.sleep(0.5)
    wait_row_gone(cl, tenant, tl)
    cl.reconcile_until_idle()
    [s] = cl.describe(tenant)["shards"]
    tsid, origin, [secondary] = s["tenant_shard_id"], s["node_attached"], s["node_secondary"]
    ok_json(cl.ps(origin).post(f"/v1/tenant/{tsid}/heatmap_upload"))
    ok_json(cl.ps(secondary).post(f"/v1/tenant/{tsid}/secondary/download",
                                  params={"wait_ms": 600000}), 200)
    lsn = timeline_info(cl.ps(origin), tsid, tl)["last_record_lsn"]
    pages = list(relation_pages(read_tree(pgdata)))[::50][:400]
    size = sum(f.stat().st_size for f in pgdata.rglob("*") if f.is_file())
    warm = move_one(cl, tenant, tsid, tl, lsn, pages, secondary)
    cold_dest = next(ps.id for ps in cl.pageservers if ps.id not in (origin, secondary))
    cold = move_one(cl, tenant, tsid, tl, lsn, pages, cold_dest)
    print()
    print(f"bench_migration: pgbench scale {SCALE} ({size / 1048576:.0f} MiB PGDATA), unsharded")
    for name, r in (("onto its warm secondary", warm), ("onto a cold node (baseline)", cold)):
        print(f"bench_migration: {name}: migrate call to cut-over {r['took']:.2f} s, longest read "
              f"window {r['gap_ms']:.0f} ms, reads ok {r['reads']}, failed {r['failed']}, bytes "
              f"read from remote storage {r['bytes'] / 1048576:.1f} MiB")
    print(f"bench_migration: warm/cold time ratio {warm['took'] / cold['took']:.2f}")
