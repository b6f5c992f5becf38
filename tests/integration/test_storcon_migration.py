"""Live migration of a tenant shard onto a warm secondary (docs/secondaries.md "Live migration"):
PUT /control/v1/tenant/{tsid}/migrate under a continuous page reader that follows the compute
notifications; bad requests change nothing; a controller killed in the middle of a migration
converges after its restart; migrate_secondary moves the secondary."""

import json
import re
import subprocess
import threading
import time

import pytest
from fixtures.util import binary

from pageserver_env import (
    Key,
    PageClient,
    RemoteDir,
    initdb_files,
    key_stored_on,
    relation_pages,
    timeline_info,
)
from storcon_env import (  # noqa: F401 - fixtures are used by name
    cluster,
    cluster_factory,
    error_msg,
    new_id,
    notified_map,
    ok_json,
    parse_tsid,
    shard_tsids,
    wait_for,
)

MIGRATE_DEADLINE = 60.0


def metric(ps, name) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in ps.metrics().splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def migrate(cluster, tsid, body, secondary=False):
    route = "migrate_secondary" if secondary else "migrate"
    return cluster.storcon.put(f"/control/v1/tenant/{tsid}/{route}", json=body, timeout=30)


def run_ctl(cluster, *args, timeout=120):
    return subprocess.run([str(binary("storconctl")), "--api", cluster.storcon.url,
                           *map(str, args)], capture_output=True, text=True, timeout=timeout)


def shard_of(cluster, tenant, tsid) -> dict:
    return next(s for s in cluster.describe(tenant)["shards"] if s["tenant_shard_id"] == tsid)


def warm_tenant(cluster, count):
    """A tenant {"Attached": 1} of count shards with a bootstrapped timeline, every secondary
    warm (heatmap uploaded by the attached location, downloaded by the secondary)."""
    tenant, _ = cluster.create_tenant(count=count, placement={"Attached": 1})
    cluster.reconcile_until_idle()
    tl = new_id()
    ok_json(cluster.create_timeline(tenant, tl), 201)
    cluster.reconcile_until_idle()
    for s in cluster.describe(tenant)["shards"]:
        tsid = s["tenant_shard_id"]
        ps_att, ps_sec = cluster.ps(s["node_attached"]), cluster.ps(s["node_secondary"][0])
        ok_json(ps_att.post(f"/v1/tenant/{tsid}/heatmap_upload"))
        progress = ok_json(ps_sec.post(f"/v1/tenant/{tsid}/secondary/download",
                                       params={"wait_ms": 30000}), 200)
        assert progress["layers_total"] == progress["layers_downloaded"] > 0, progress
    return tenant, tl


def pages_intact(cluster, node, tsid, tl) -> int:
    """Every initdb page of the timeline read back on node's page service, compared with the
    source; returns how many were read."""
    with PageClient(cluster.ps(node)) as pages:
        files = initdb_files(RemoteDir(cluster.env.remote_storage), tsid, tl)
        lsn = timeline_info(cluster.ps(node), tsid, tl)["last_record_lsn"]
        return pages.check_all(tsid, tl, files, lsn)


def cold_tenant(cluster):
    """An unsharded tenant {"Attached": 0} (no secondary anywhere) with a bootstrapped timeline:
    (tenant, tsid, timeline)."""
    tenant, _ = cluster.create_tenant(count=0, placement={"Attached": 0})
    cluster.reconcile_until_idle()
    tl = new_id()
    ok_json(cluster.create_timeline(tenant, tl), 201)
    cluster.reconcile_until_idle()
    [tsid] = shard_tsids(tenant, 0)
    return tenant, tsid, tl


class Reader(threading.Thread):
    """Reads shard `number`'s pages in a loop from the node the compute was last told (the
    newest notify-attach body; `first` before any), comparing each with the source page."""

    def __init__(self, cluster, tenant, tsid, tl, lsn, pages, first):
        super().__init__(daemon=True)
        self.cluster, self.tenant, self.tsid, self.tl, self.lsn = cluster, tenant, tsid, tl, lsn
        self.pages, self.node = pages, first
        self.number = parse_tsid(tsid)[1]
        self.stop_flag = threading.Event()
        self.ok = self.wrong = self.errors = 0
        self.longest_gap = 0.0
        self.nodes_read = set()
        self.failures = {}  # (node, status or None) -> count

    def run(self):
        clients = {}
        last_ok = time.monotonic()
        i = 0
        while not self.stop_flag.is_set():
            bodies = self.cluster.notifications(self.tenant)
            if bodies:
                self.node = notified_map(bodies[-1])[self.number]
            pc = clients.setdefault(self.node, PageClient(self.cluster.ps(self.node)))
            spc, db, rel, fork, blk, page = self.pages[i % len(self.pages)]
            i += 1
            try:
                r = pc.get(self.tsid, self.tl, spc, db, rel, fork, blk, self.lsn)
            except Exception:  # noqa: BLE001 - a transport error counts as a failed read
                r = None
            now = time.monotonic()
            if r is not None and r.status_code == 200:
                if r.content != page:
                    self.wrong += 1
                self.ok += 1
                self.nodes_read.add(self.node)
                self.longest_gap = max(self.longest_gap, now - last_ok)
                last_ok = now
            else:
                self.errors += 1
                key = (self.node, None if r is None else r.status_code)
                self.failures[key] = self.failures.get(key, 0) + 1
        for c in clients.values():
            c.close()

    def stop(self):
        self.stop_flag.set()
        self.join(timeout=30)


def shard_pages(cluster, tenant, tl, number, count, stripe):
    files = initdb_files(RemoteDir(cluster.env.remote_storage), tenant, tl)
    return [p for p in relation_pages(files)
            if key_stored_on(Key.rel_block(*p[:5]), number, count, stripe)][:400]


def test_live_migration_to_the_warm_secondary(cluster):
    tenant, tl = warm_tenant(cluster, count=2)
    desc = cluster.describe(tenant)
    stripe = desc["stripe_size"]
    tsid, other = [s["tenant_shard_id"] for s in desc["shards"]]
    shard = shard_of(cluster, tenant, tsid)
    origin, [dest] = shard["node_attached"], shard["node_secondary"]
    other_node = shard_of(cluster, tenant, other)["node_attached"]
    ps_origin, ps_dest = cluster.ps(origin), cluster.ps(dest)
    lsn = timeline_info(ps_origin, tsid, tl)["last_record_lsn"]
    pages = shard_pages(cluster, tenant, tl, 0, 2, stripe)
    assert pages
    downloaded = metric(ps_dest, "pageserver_layers_downloaded_total")
    gen_before = cluster.db_generations(tenant)[tsid]
    other_gen = cluster.db_generations(tenant)[other]
    # storconctl's describe shows each secondary's warmth, read from its pageserver
    ctl = run_ctl(cluster, "tenants", "describe", tenant)
    assert ctl.returncode == 0, ctl.stderr
    row = next(line for line in ctl.stdout.splitlines() if line.startswith(tsid))
    warm = re.search(rf"\b{dest} \((\d+)/(\d+) layers\)", row)
    assert warm and warm.group(1) == warm.group(2) != "0", row

    reader = Reader(cluster, tenant, tsid, tl, lsn, pages, origin)
    reader.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    assert ok_json(migrate(cluster, tsid, {"node_id": dest})) == {}
    assert shard_of(cluster, tenant, tsid)["node_attached"] == dest

    def moved():
        s = shard_of(cluster, tenant, tsid)
        assert not s["is_reconciling"] and s["last_error"] == "", s
        assert s["node_attached"] == dest and s["node_secondary"] == [origin], s
        d = cluster.locations(ps_dest).get(tsid)
        assert d and d["mode"] == "AttachedSingle" and d["generation"] == gen_before + 1, d
        o = cluster.locations(ps_origin).get(tsid)
        assert o and o["mode"] == "Secondary" and o["secondary_conf"]["warm"] is True, o

    wait_for(moved, timeout=MIGRATE_DEADLINE, what="shard migrated", interval=0.2)
    took = time.monotonic() - t0
    time.sleep(0.5)  # the reader reads on the destination for a while
    reader.stop()

    assert reader.wrong == 0, f"{reader.wrong} wrong pages"
    assert reader.ok > 20 and dest in reader.nodes_read and origin in reader.nodes_read, \
        (reader.ok, reader.nodes_read)
    # generation: exactly one bump, in the database and on the destination; the other shard kept
    assert cluster.db_generations(tenant)[tsid] == gen_before + 1
    assert cluster.db_generations(tenant)[other] == other_gen
    # the destination was warm: no layer downloaded at or after the cut-over
    assert metric(ps_dest, "pageserver_layers_downloaded_total") == downloaded
    # the compute was told the whole map: both shards, this one on the destination
    last = cluster.notifications(tenant)[-1]
    assert notified_map(last) == {0: dest, 1: other_node}, last
    # exactly one attached location per shard afterwards
    att = cluster.attached_locations(tenant)
    assert att[tsid] == [(dest, gen_before + 1, "AttachedSingle")], att
    print(f"migration took {took:.2f}s, reads ok {reader.ok}, failed {reader.errors}, "
          f"longest gap {reader.longest_gap * 1000:.0f} ms")


def test_migrate_bad_requests_change_nothing(cluster):
    tenant, _ = cluster.create_tenant(count=0, placement={"Attached": 1})
    cluster.reconcile_until_idle()
    [tsid] = shard_tsids(tenant, 0)
    before = cluster.describe(tenant)
    gens = cluster.db_generations(tenant)
    attached = before["shards"][0]["node_attached"]
    third = next(ps.id for ps in cluster.pageservers
                 if ps.id != attached and ps.id not in before["shards"][0]["node_secondary"])

    assert "not found" in error_msg(migrate(cluster, tsid, {"node_id": 999}), 404)
    ctl = run_ctl(cluster, "tenants", "migrate", tsid, 999, "--wait")
    assert ctl.returncode == 1 and "not found" in ctl.stderr, (ctl.returncode, ctl.stderr)
    assert run_ctl(cluster, "tenants", "migrate", "zz", 1).returncode == 64
    assert "not found" in error_msg(migrate(cluster, shard_tsids(new_id(), 0)[0],
                                            {"node_id": third}), 404)
    error_msg(migrate(cluster, "zz", {"node_id": third}), 400)
    error_msg(migrate(cluster, tsid, {}), 400)
    error_msg(migrate(cluster, tsid, {"node_id": third, "bogus": 1}), 400)
    error_msg(migrate(cluster, tsid, {"node_id": "x"}), 400)
    error_msg(migrate(cluster, tsid, {"node_id": third,
                                      "migration_config": {"prewarm": 3}}), 400)
    error_msg(migrate(cluster, tsid, {"node_id": third, "origin_node_id": third}), 412)
    error_msg(migrate(cluster, tsid, {"node_id": attached}, secondary=True), 409)
    # a node that is not schedulable: 412
    ok_json(cluster.storcon.put(f"/control/v1/node/{third}/config",
                                json={"node_id": third, "scheduling": "Pause"}))
    assert "not available or not schedulable" in error_msg(
        migrate(cluster, tsid, {"node_id": third}), 412)
    error_msg(migrate(cluster, tsid, {"node_id": third}, secondary=True), 412)
    cluster.reconcile_until_idle()
    assert cluster.describe(tenant)["shards"] == before["shards"]
    assert cluster.db_generations(tenant) == gens
    # accepted body with every MigrationConfig field; a move to where it is: nothing changes
    assert ok_json(migrate(cluster, tsid, {
        "node_id": attached, "origin_node_id": attached,
        "migration_config": {"override_scheduler": True, "prewarm": False,
                             "secondary_warmup_timeout": "10s",
                             "secondary_download_request_timeout": None}})) == {}
    cluster.reconcile_until_idle()
    assert cluster.db_generations(tenant) == gens


def test_controller_killed_mid_migration_converges(cluster):
    tenant, tl = warm_tenant(cluster, count=0)
    [tsid] = shard_tsids(tenant, 0)
    s = shard_of(cluster, tenant, tsid)
    origin, [dest] = s["node_attached"], s["node_secondary"]
    gen_before = cluster.db_generations(tenant)[tsid]
    # held after the destination is AttachedMulti in the new generation, before compute is told
    cluster.storcon_failpoint("migration-before-notify", "sleep(60000)")
    assert ok_json(migrate(cluster, tsid, {"node_id": dest})) == {}

    def multi():
        d = cluster.locations(cluster.ps(dest)).get(tsid)
        assert d and d["mode"] == "AttachedMulti", d
        o = cluster.locations(cluster.ps(origin)).get(tsid)
        assert o and o["mode"] == "AttachedStale", o

    wait_for(multi, timeout=MIGRATE_DEADLINE, what="destination AttachedMulti", interval=0.2)
    assert cluster.db_generations(tenant)[tsid] == gen_before + 1
    # the step is visible in the debug dump
    dump = ok_json(cluster.storcon.get("/debug/v1/tenant"))
    [row] = [r for r in dump if r["tenant_shard_id"] == tsid]
    assert row["reconcile_state"] == "MigrateNotify", row
    cluster.storcon.kill9()
    cluster.restart_storcon()

    def converged():
        cluster.reconcile_until_idle()
        att = cluster.attached_locations(tenant)[tsid]
        assert att == [(dest, gen_before + 1, "AttachedSingle")], att
        assert cluster.describe(tenant)["shards"][0]["node_attached"] == dest

    wait_for(converged, timeout=MIGRATE_DEADLINE, what="converged after restart", interval=0.5)
    assert cluster.db_generations(tenant)[tsid] == gen_before + 1
    assert pages_intact(cluster, dest, tsid, tl) > 100

    # a step that fails (failpoint "return") leaves the shard dirty; the next reconcile resumes
    # from what the pageservers hold and ends attached once, one generation further
    cluster.storcon_failpoint("migration-before-cutover", "1*return(injected)")
    assert ok_json(migrate(cluster, tsid, {"node_id": origin})) == {}

    def failed_once():
        s = shard_of(cluster, tenant, tsid)
        assert "injected" in s["last_error"] and not s["is_reconciling"], s

    wait_for(failed_once, timeout=MIGRATE_DEADLINE, what="cut-over failed", interval=0.2)

    def back():
        cluster.reconcile_until_idle()
        att = cluster.attached_locations(tenant)[tsid]
        assert att == [(origin, gen_before + 2, "AttachedSingle")], att
        assert shard_of(cluster, tenant, tsid)["last_error"] == ""

    wait_for(back, timeout=MIGRATE_DEADLINE, what="converged after a failed step", interval=0.5)


def test_migrate_secondary(cluster):
    tenant, _ = cluster.create_tenant(count=0, placement={"Attached": 1})
    cluster.reconcile_until_idle()
    [tsid] = shard_tsids(tenant, 0)
    s = shard_of(cluster, tenant, tsid)
    attached, [old] = s["node_attached"], s["node_secondary"]
    third = next(ps.id for ps in cluster.pageservers if ps.id not in (attached, old))
    gens = cluster.db_generations(tenant)
    # the body is Neon's TenantShardMigrateRequest, as for migrate
    error_msg(migrate(cluster, tsid, {"node_id": third, "nope": 1}, secondary=True), 400)
    ctl = run_ctl(cluster, "tenants", "migrate-secondary", tsid, third, "--wait")
    assert ctl.returncode == 0, (ctl.stdout, ctl.stderr)
    assert f"secondary on node {third}" in ctl.stdout, ctl.stdout

    def moved():
        cluster.reconcile_until_idle()
        s = shard_of(cluster, tenant, tsid)
        assert s["node_attached"] == attached and s["node_secondary"] == [third], s
        c = cluster.locations(cluster.ps(third)).get(tsid)
        assert c and c["mode"] == "Secondary" and c["secondary_conf"]["warm"] is True, c
        gone = cluster.locations(cluster.ps(old)).get(tsid, "absent")
        assert gone == "absent" or gone is None or gone["mode"] == "Detached", gone

    wait_for(moved, timeout=MIGRATE_DEADLINE, what="secondary moved", interval=0.3)
    assert cluster.db_generations(tenant) == gens


def test_origin_killed_mid_migration_finishes_cold(cluster):
    tenant, tl = warm_tenant(cluster, count=0)
    [tsid] = shard_tsids(tenant, 0)
    s = shard_of(cluster, tenant, tsid)
    origin, [dest] = s["node_attached"], s["node_secondary"]
    gen_before = cluster.db_generations(tenant)[tsid]
    # held after the origin went AttachedStale and the destination warmed up
    cluster.storcon_failpoint("migration-before-bump-generation", "1*sleep(3000)")
    assert ok_json(migrate(cluster, tsid, {"node_id": dest})) == {}

    def stale():
        o = cluster.locations(cluster.ps(origin)).get(tsid)
        assert o and o["mode"] == "AttachedStale", o

    wait_for(stale, timeout=MIGRATE_DEADLINE, what="origin AttachedStale", interval=0.1)
    cluster.ps(origin).kill9()
    ok_json(cluster.storcon.put(f"/control/v1/node/{origin}/config",
                                json={"node_id": origin, "availability": "Offline"}))

    def attached_once():
        cluster.reconcile_all()
        att = cluster.attached_locations(tenant)[tsid]  # the running pageservers only
        g = cluster.db_generations(tenant)[tsid]
        assert g > gen_before and att == [(dest, g, "AttachedSingle")], (att, g)
        s = shard_of(cluster, tenant, tsid)
        assert s["node_attached"] == dest and not s["is_reconciling"], s

    wait_for(attached_once, timeout=MIGRATE_DEADLINE, what="attached on the destination",
             interval=0.5)
    assert pages_intact(cluster, dest, tsid, tl) > 100


def metric_sc(cluster, name) -> float:
    text = cluster.storcon.get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def test_failed_warmup_moves_cold(cluster):
    """A destination whose downloads fail (the pageserver's secondary-download failpoint) does
    not hold the migration: it goes on cold and is counted in storcon_migrations_cold_total."""
    tenant, tsid, tl = cold_tenant(cluster)
    origin = shard_of(cluster, tenant, tsid)["node_attached"]
    dest = next(ps.id for ps in cluster.pageservers if ps.id != origin)
    gen_before = cluster.db_generations(tenant)[tsid]
    cluster.ps_failpoint(cluster.ps(dest), "secondary-download", "return(injected)")
    error_msg(migrate(cluster, tsid, {"node_id": dest, "migration_config": {
        "secondary_warmup_timeout": "2h"}}), 400)
    cold_before = metric_sc(cluster, "storcon_migrations_cold_total")
    assert ok_json(migrate(cluster, tsid, {"node_id": dest, "migration_config": {
        "secondary_warmup_timeout": "5s", "secondary_download_request_timeout": "2s",
        "prewarm": False, "override_scheduler": True}})) == {}

    def moved():
        att = cluster.attached_locations(tenant)[tsid]
        assert att == [(dest, gen_before + 1, "AttachedSingle")], att
        assert not shard_of(cluster, tenant, tsid)["is_reconciling"]

    wait_for(moved, timeout=MIGRATE_DEADLINE, what="cold cut-over", interval=0.1)
    assert metric_sc(cluster, "storcon_migrations_cold_total") == cold_before + 1
    cluster.ps_failpoint(cluster.ps(dest), "secondary-download", "off")
    # the destination reads what it lacks on demand: every page intact
    assert pages_intact(cluster, dest, tsid, tl) > 100


def test_prewarm_or_not_onto_a_node_without_a_secondary(cluster):
    """migration_config.prewarm (Neon's default true; storconctl sends it only with --prewarm):
    with it, a destination that holds no secondary is warmed before the cut-over (its secondary
    download completes, nothing counted cold); without it, the shard is attached there at once and
    reads what it lacks on demand. Either way: one generation bump, every page intact."""
    tenant, tsid, tl = cold_tenant(cluster)
    for prewarm in (True, False):
        origin = shard_of(cluster, tenant, tsid)["node_attached"]
        dest = next(ps.id for ps in cluster.pageservers if ps.id != origin)
        gen_before = cluster.db_generations(tenant)[tsid]
        cold_before = metric_sc(cluster, "storcon_migrations_cold_total")
        args = ["tenants", "migrate", tsid, dest, "--wait"] + (["--prewarm"] if prewarm else [])
        ctl = run_ctl(cluster, *args)
        assert ctl.returncode == 0, (ctl.stdout, ctl.stderr)
        cluster.reconcile_until_idle()
        att = cluster.attached_locations(tenant)[tsid]
        assert att == [(dest, gen_before + 1, "AttachedSingle")], (prewarm, att)
        if prewarm:
            assert metric_sc(cluster, "storcon_migrations_cold_total") == cold_before
        assert pages_intact(cluster, dest, tsid, tl) > 100, prewarm


# (victim, step): the pageserver killed with kill -9 while the migration is held before that step
# (its storcon failpoint), then started again; every step, for the origin and the destination
# (dest-secondary is skipped by a migration onto the shard's warm secondary, as here).
MIGRATION_STEPS = ["origin-stale", "origin-lsns", "warm-up", "bump-generation", "attach-multi",
                   "wait-lsn", "notify", "origin-secondary", "cutover"]
KILL_CASES = [(victim, step) for victim in ("origin", "dest") for step in MIGRATION_STEPS]


@pytest.mark.parametrize("victim,step", KILL_CASES, ids=[f"{v}-{s}" for v, s in KILL_CASES])
def test_pageserver_killed_at_a_step_converges(cluster, victim, step):
    """A migration held before a step while the origin or the destination is killed with kill -9
    and restarted: the shard ends attached exactly once, AttachedSingle, in the newest generation
    the database issued; every layer the newest index names is still in remote storage; every
    page reads back on the attached node."""
    tenant, tl = warm_tenant(cluster, count=0)
    [tsid] = shard_tsids(tenant, 0)
    s = shard_of(cluster, tenant, tsid)
    origin, [dest] = s["node_attached"], s["node_secondary"]
    gen_before = cluster.db_generations(tenant)[tsid]
    cluster.storcon_failpoint(f"migration-before-{step}", "1*sleep(3000)")
    assert ok_json(migrate(cluster, tsid, {"node_id": dest})) == {}
    state = "Migrate" + "".join(w.capitalize() for w in step.split("-"))

    def held():  # the state is entered, its failpoint holds the step
        dump = ok_json(cluster.storcon.get("/debug/v1/tenant"))
        [row] = [r for r in dump if r["tenant_shard_id"] == tsid]
        assert row["reconcile_state"] == state, row

    wait_for(held, timeout=MIGRATE_DEADLINE, what=f"migration before {step}", interval=0.05)
    ps = cluster.ps(origin if victim == "origin" else dest)
    ps.kill9()
    ps.start()

    def converged():
        cluster.reconcile_all()
        g = cluster.db_generations(tenant)[tsid]
        att = cluster.attached_locations(tenant)[tsid]
        assert g > gen_before and len(att) == 1, (att, g)
        node, gen, mode = att[0]
        assert gen == g and mode == "AttachedSingle", (att, g)
        s = shard_of(cluster, tenant, tsid)
        assert s["node_attached"] == node and not s["is_reconciling"], s
        return node

    node = wait_for(converged, timeout=MIGRATE_DEADLINE, what="attached once", interval=0.5)
    remote = RemoteDir(cluster.env.remote_storage)
    newest = max(g for g in remote.index_keys(tsid, tl) if g is not None)
    index = json.loads(remote.read(remote.index_keys(tsid, tl)[newest]))
    for name, meta in index["layer_metadata"].items():
        key = f"tenants/{tsid}/timelines/{tl}/{name}-{meta['generation']:08x}"
        assert remote.exists(key), key
    assert pages_intact(cluster, node, tsid, tl) > 100
