"""Node operations (docs/operations.md "Node maintenance"): drain, fill, graceful delete, their
preconditions, cancellation and a controller restart in the middle, against real daemons.

Moves are intent changes the reconciler carries out, so what is asserted is where shards end up
(storcon's intent, the pageservers' locations), the node's persisted policy, and that a reader
following the shards never gets a wrong page."""

import json
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
    key_owner,
    relation_pages,
    timeline_info,
)
from storcon_env import (  # noqa: F401 - fixtures are used by name
    DEFAULT_STRIPE,
    GenerationRecorder,
    cluster,
    cluster_factory,
    error_msg,
    new_id,
    ok_json,
    parse_tsid,
    wait_for,
)

OP_TIMEOUT = 60.0
SLOW_MOVES = "sleep(400)"  # node-op-before-move: each move waits this long before it starts


def run_ctl(cl, *args, timeout=120):
    return subprocess.run([str(binary("storconctl")), "--api", cl.storcon.url, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def node_shards(cl, node_id) -> tuple:
    """(attached tsids, secondary tsids) the intent places on the node."""
    shards = ok_json(cl.storcon.get(f"/control/v1/node/{node_id}/shards"))["shards"]
    att = {s["tenant_shard_id"] for s in shards if s["is_intended_secondary"] is False}
    sec = {s["tenant_shard_id"] for s in shards if s["is_intended_secondary"] is True}
    return att, sec


def wait_op_end(cl, node_id, scheduling, timeout=OP_TIMEOUT) -> dict:
    """Wait until the node shows no operation and has the given policy."""
    def ended():
        n = cl.node(node_id)
        assert n["operation"] is None and n["scheduling"] == scheduling, n
        return n
    return wait_for(ended, timeout, f"node {node_id} {scheduling}", interval=0.2)


def wait_moved(cl, node_id, at_least: int) -> dict:
    def progressed():
        op = cl.node(node_id)["operation"]
        assert op is not None and op["done"] >= at_least, op
        return op
    return wait_for(progressed, OP_TIMEOUT, f"{at_least} moves done", interval=0.1)


def settle(cl):
    cl.reconcile_until_idle()
    ok_json(cl.consistency_check())


def arm(cl, name, action):
    ok_json(cl.storcon.put("/debug/v1/failpoints", json=[{"name": name, "actions": action}]))


class Reader(threading.Thread):
    """Reads, round robin, one page owned by each shard of a tenant from the node storcon says it
    is attached to; a failed read starts a window that ends with the next good read of that shard.
    Any page that comes back with 200 must be the source page."""

    def __init__(self, cl, tenant, count, tl):
        super().__init__(daemon=True)
        self.cl, self.tenant, self.tl = cl, tenant, tl
        files = initdb_files(RemoteDir(cl.env.remote_storage), tenant, tl)
        self.pages = {}
        for spc, db, rel, fork, blk, page in relation_pages(files):
            owner = key_owner(Key.rel_block(spc, db, rel, fork, blk), count, DEFAULT_STRIPE)
            self.pages.setdefault(owner, (spc, db, rel, fork, blk, page))
        self.tsids = {parse_tsid(t)[1]: t for t in cl.attached(tenant)}
        self.lsn = {n: timeline_info(cl.ps(cl.attached(tenant)[t]), t, tl)["last_record_lsn"]
                    for n, t in self.tsids.items()}
        self.clients = {ps.id: PageClient(ps) for ps in cl.pageservers}
        self.stop_ev = threading.Event()
        self.reads = self.failures = 0
        self.wrong = []
        self.longest = 0.0
        self.errors = []
        self.down_at_end = []

    def run(self):
        attached, refreshed = {}, 0.0
        down_since = {}
        while not self.stop_ev.is_set():
            try:
                if time.monotonic() - refreshed > 0.2:
                    attached, refreshed = self.cl.attached(self.tenant), time.monotonic()
                for n, (spc, db, rel, fork, blk, page) in self.pages.items():
                    tsid = self.tsids[n]
                    node = attached.get(tsid)
                    ok = False
                    if node is not None:
                        r = self.clients[node].get(tsid, self.tl, spc, db, rel, fork, blk,
                                                   self.lsn[n])
                        self.reads += 1
                        if r.status_code == 200:
                            ok = True
                            if r.content != page:
                                self.wrong.append((tsid, node, blk))
                    now = time.monotonic()
                    if ok:
                        if tsid in down_since:
                            self.longest = max(self.longest, now - down_since.pop(tsid))
                    else:
                        self.failures += 1
                        down_since.setdefault(tsid, now)
                        refreshed = 0.0
            except Exception as e:  # noqa: BLE001 - reported by check()
                self.errors.append(repr(e))
                time.sleep(0.05)
        self.down_at_end = sorted(down_since)

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=30)
        for c in self.clients.values():
            c.close()

    def check(self):
        assert not self.wrong, f"wrong pages read: {self.wrong[:5]}"
        assert self.reads > 0
        assert not self.down_at_end, f"shards unreadable when the reader stopped: {self.down_at_end}"


def test_drain_restart_fill_under_reader(cluster):
    cl = cluster
    tenant, _ = cl.create_tenant(count=16, placement={"Attached": 1})
    settle(cl)
    tl = new_id()
    ok_json(cl.create_timeline(tenant, tl), 201)
    settle(cl)
    victim = cl.pageservers[1].id
    att, sec = node_shards(cl, victim)
    assert att and sec, (att, sec)
    reader = Reader(cl, tenant, 16, tl)
    recorder = GenerationRecorder(cl.database)
    recorder.start()
    reader.start()
    try:
        started = time.monotonic()
        r = cl.storcon.put(f"/control/v1/node/{victim}/drain")
        assert r.status_code == 202, r.text
        # progress is visible while it runs (or it already finished)
        n = cl.node(victim)
        assert n["scheduling"] in ("Draining", "PauseForRestart"), n
        wait_op_end(cl, victim, "PauseForRestart")
        drain_s = time.monotonic() - started
        att_after, sec_after = node_shards(cl, victim)
        assert att_after == set(), att_after
        assert sec_after >= att, "the drained node keeps its old shards as secondaries"
        settle(cl)
        # the pageserver holds no attached location any more
        modes = {c["mode"] for c in cl.locations(cl.ps(victim)).values()}
        assert modes <= {"Secondary"}, modes
        metrics = cl.storcon.metrics()
        assert 'storcon_node_operation_shards{state="done"}' in metrics

        # the node restarts: it comes back without attached shards (PauseForRestart holds)
        cl.ps(victim).restart()
        cl.wait_nodes("Active")
        settle(cl)
        assert cl.node(victim)["scheduling"] == "PauseForRestart"
        assert node_shards(cl, victim)[0] == set()

        # fill, through storconctl --wait: back to about a third of the shards, Active
        res = run_ctl(cl, "--json", "nodes", "fill", victim, "--wait")
        assert res.returncode == 0, res.stderr + res.stdout
        final = json.loads(res.stdout.strip().splitlines()[-1])
        assert final["scheduling"] == "Active", final
        settle(cl)
        held = len(node_shards(cl, victim)[0])
        fair = 16 / 3
        assert abs(held - fair) <= 1, (held, fair)
        assert final["attached"] == held, (final, held)
        time.sleep(0.5)  # the reader goes on reading from the new placement
    finally:
        reader.stop()
        recorder.stop()
    reader.check()
    recorder.check()
    assert not reader.errors, reader.errors[:3]
    print(f"drain {drain_s:.1f} s, {reader.reads} reads, longest read window "
          f"{reader.longest:.2f} s")


def test_cancel_half_way_and_preconditions(cluster):
    cl = cluster
    a, b, c = (ps.id for ps in cl.pageservers)
    tenant, _ = cl.create_tenant(count=18, placement={"Attached": 1})
    settle(cl)
    before, _ = node_shards(cl, a)
    assert len(before) >= 5, before  # 2 moved, at most 1 more in flight: some stay

    # storconctl: usage errors are 64, the controller's refusals 1
    assert run_ctl(cl, "nodes", "drain").returncode == 64
    assert run_ctl(cl, "nodes", "drain", a, "--wait", "--cancel").returncode == 64
    res = run_ctl(cl, "nodes", "fill", a, "--cancel")
    assert res.returncode == 1 and "412" in res.stderr, res.stderr
    # preconditions: unknown node 404, nothing to cancel 412, config of Draining is 400
    error_msg(cl.storcon.put("/control/v1/node/999/drain"), 404)
    error_msg(cl.storcon.delete(f"/control/v1/node/{a}/drain"), 412)
    error_msg(cl.storcon.put(f"/control/v1/node/{a}/config",
                             json={"node_id": a, "scheduling": "Draining"}), 400)

    arm(cl, "node-op-before-move", SLOW_MOVES)
    assert cl.storcon.put(f"/control/v1/node/{a}/drain").status_code == 202
    # a second drain of the same node: 409; anything else while it runs: 412
    assert "already draining" in error_msg(cl.storcon.put(f"/control/v1/node/{a}/drain"), 409)
    error_msg(cl.storcon.put(f"/control/v1/node/{b}/drain"), 412)
    error_msg(cl.storcon.put(f"/control/v1/node/{b}/fill"), 412)
    error_msg(cl.storcon.put(f"/control/v1/node/{c}/delete"), 412)
    error_msg(cl.storcon.put(f"/control/v1/node/{a}/config",
                             json={"node_id": a, "scheduling": "Active"}), 412)
    ops = ok_json(cl.storcon.get("/debug/v1/operations"))
    assert any(o["kind"] == "node_drain" for o in ops), ops

    wait_moved(cl, a, 2)
    ok_json(cl.storcon.delete(f"/control/v1/node/{a}/drain"))  # answers once stopped
    n = cl.node(a)
    assert n["scheduling"] == "Active" and n["operation"] is None, n
    rows = cl.database.query("SELECT scheduling_policy FROM nodes WHERE node_id = %s", (a,))
    assert rows == [("Active",)], rows
    arm(cl, "node-op-before-move", "off")
    settle(cl)
    left, _ = node_shards(cl, a)
    moved = before - left
    assert moved and left, (moved, left)  # half-way: some moved, some stayed
    # moved shards stay moved (nothing pulls them back)
    time.sleep(1.0)
    settle(cl)
    assert node_shards(cl, a)[0] == left

    # the only schedulable node cannot be drained: pause the two others
    for other in (b, c):
        ok_json(cl.storcon.put(f"/control/v1/node/{other}/config",
                               json={"node_id": other, "scheduling": "Pause"}))
    assert "schedulable" in error_msg(cl.storcon.put(f"/control/v1/node/{a}/drain"), 412)
    # a paused node cannot be drained or filled either
    error_msg(cl.storcon.put(f"/control/v1/node/{b}/drain"), 412)
    error_msg(cl.storcon.put(f"/control/v1/node/{b}/fill"), 412)
    ok_json(cl.consistency_check())


def test_kill9_storcon_mid_drain_resumes_mid_fill_ends(cluster):
    cl = cluster
    victim = cl.pageservers[0].id
    tenant, _ = cl.create_tenant(count=12, placement={"Attached": 1})
    settle(cl)
    before, _ = node_shards(cl, victim)
    assert len(before) >= 3, before
    arm(cl, "node-op-before-move", SLOW_MOVES)
    assert cl.storcon.put(f"/control/v1/node/{victim}/drain").status_code == 202
    wait_moved(cl, victim, 1)
    cl.storcon.kill9()
    rows = cl.database.query("SELECT scheduling_policy FROM nodes WHERE node_id = %s", (victim,))
    assert rows == [("Draining",)], rows  # persisted before the moves
    cl.restart_storcon()
    # the documented rule: a Draining node's drain resumes and ends in PauseForRestart
    wait_op_end(cl, victim, "PauseForRestart")
    settle(cl)
    assert node_shards(cl, victim)[0] == set()
    for tsid, node in cl.attached(tenant).items():
        assert node not in (None, victim), (tsid, node)
    rows = cl.database.query("SELECT scheduling_policy FROM nodes WHERE node_id = %s", (victim,))
    assert rows == [("PauseForRestart",)], rows

    # a fill interrupted by a crash is not resumed: the node comes back Active, moved shards stay
    arm(cl, "node-op-before-move", SLOW_MOVES)
    assert cl.storcon.put(f"/control/v1/node/{victim}/fill").status_code == 202
    wait_moved(cl, victim, 1)
    cl.storcon.kill9()
    cl.restart_storcon()
    n = cl.node(victim)
    assert n["scheduling"] == "Active" and n["operation"] is None, n

    def stored_active():
        rows = cl.database.query("SELECT scheduling_policy FROM nodes WHERE node_id = %s",
                                 (victim,))
        assert rows == [("Active",)], rows
    wait_for(stored_active, 10, "Active persisted")
    settle(cl)
    assert node_shards(cl, victim)[0], "the shards the fill moved stay"


def test_delete_node_tombstone(cluster):
    cl = cluster
    gone = cl.pageservers[2].id
    tenant, _ = cl.create_tenant(count=8, placement={"Attached": 1})
    settle(cl)
    att, sec = node_shards(cl, gone)
    assert att or sec
    ps = cl.ps(gone)
    desc = cl.node(gone)
    reg = {k: desc[k] for k in ("listen_http_addr", "listen_http_port", "listen_pg_addr",
                                "listen_pg_port", "availability_zone_id")}
    reg["node_id"] = gone

    res = run_ctl(cl, "nodes", "delete", gone, "--wait")
    assert res.returncode == 0, res.stderr + res.stdout
    assert "deleted" in res.stdout, res.stdout
    error_msg(cl.storcon.get(f"/control/v1/node/{gone}"), 404)
    settle(cl)
    # nothing references it: intents, the database, the pageserver's own locations
    for s in cl.describe(tenant)["shards"]:
        assert s["node_attached"] != gone and gone not in s["node_secondary"], s
        assert s["node_attached"] is not None and len(s["node_secondary"]) == 1, s
    assert not any(cfg["mode"] != "Detached" for cfg in cl.locations(ps).values())
    rows = cl.database.query("SELECT lifecycle FROM nodes WHERE node_id = %s", (gone,))
    assert rows == [("deleted",)], rows
    gp = cl.database.query(
        "SELECT count(*) FROM tenant_shards WHERE tenant_id = %s AND generation_pageserver = %s",
        (tenant, gone))
    assert gp == [(0,)], gp
    # it cannot come back with that id
    assert "deleted" in error_msg(cl.storcon.post("/control/v1/node", json=reg), 409)
    tomb = ok_json(cl.storcon.get("/debug/v1/tombstone"))
    assert [t["id"] for t in tomb] == [gone], tomb
    # a delete of a tombstone's id that is still registered is refused; the admin call removes it
    error_msg(cl.storcon.delete(f"/debug/v1/tombstone/{cl.pageservers[0].id}"), 404)
    ok_json(cl.storcon.delete(f"/debug/v1/tombstone/{gone}"))
    assert ok_json(cl.storcon.get("/debug/v1/tombstone")) == []
    error_msg(cl.storcon.delete(f"/debug/v1/tombstone/{gone}"), 404)
    ok_json(cl.storcon.post("/control/v1/node", json=reg))  # the id is free again
    assert cl.node(gone)["scheduling"] == "Active"


@pytest.mark.test_timeout(60)
def test_delete_cancel_before_tombstone(cluster):
    cl = cluster
    victim = cl.pageservers[1].id
    cl.create_tenant(count=8, placement={"Attached": 1})
    settle(cl)
    arm(cl, "node-op-before-move", SLOW_MOVES)
    res = run_ctl(cl, "nodes", "delete", victim)
    assert res.returncode == 0 and "started" in res.stdout, res.stderr + res.stdout
    assert cl.node(victim)["scheduling"] == "Deleting"
    wait_moved(cl, victim, 1)
    res = run_ctl(cl, "nodes", "delete", victim, "--cancel")
    assert res.returncode == 0, res.stderr + res.stdout
    n = cl.node(victim)
    assert n["scheduling"] == "Active" and n["operation"] is None, n
    assert cl.database.query("SELECT lifecycle FROM nodes WHERE node_id = %s",
                             (victim,)) == [("active",)]
    assert ok_json(cl.storcon.get("/debug/v1/tombstone")) == []


def test_drain_without_secondaries_warms_a_new_location(cluster):
    """Shards with no secondary ({"Attached": 0}) first get one on the best other node, then cut
    over to it once the pageserver holds it."""
    cl = cluster
    victim = cl.pageservers[0].id
    tenant, _ = cl.create_tenant(count=6, placement={"Attached": 0})
    settle(cl)
    before, sec = node_shards(cl, victim)
    assert before and not sec, (before, sec)
    gens = cl.db_generations(tenant)
    assert cl.storcon.put(f"/control/v1/node/{victim}/drain").status_code == 202
    wait_op_end(cl, victim, "PauseForRestart")
    settle(cl)
    assert node_shards(cl, victim)[0] == set()
    after = cl.attached(tenant)
    for tsid in before:
        assert after[tsid] not in (None, victim), (tsid, after[tsid])
        assert cl.db_generations(tenant)[tsid] > gens[tsid]
        conf = cl.locations(cl.ps(after[tsid]))[tsid]
        assert conf["mode"] == "AttachedSingle", conf


def test_optimiser_spreads_a_crowded_tenant(cluster_factory):
    """Every shard of a tenant attached on one node (the others were paused when it was
    created): once the others are Active and hold warm secondaries, the optimiser (after each
    background pass, here every second) cuts shards over to them until the tenant is spread."""
    cl = cluster_factory(3, storcon_args=["--background-interval", "1s"])
    a, b, c = (ps.id for ps in cl.pageservers)
    for other in (b, c):
        ok_json(cl.storcon.put(f"/control/v1/node/{other}/config",
                               json={"node_id": other, "scheduling": "Pause"}))
    tenant, _ = cl.create_tenant(count=4, placement={"Attached": 1})
    cl.reconcile_until_idle()
    assert set(cl.attached(tenant).values()) == {a}
    recorder = GenerationRecorder(cl.database)
    recorder.start()
    try:
        for other in (b, c):
            ok_json(cl.storcon.put(f"/control/v1/node/{other}/config",
                                   json={"node_id": other, "scheduling": "Active"}))

        def spread():
            per_node = {}
            for node in cl.attached(tenant).values():
                per_node[node] = per_node.get(node, 0) + 1
            counts = [per_node.get(n, 0) for n in (a, b, c)]
            assert max(counts) - min(counts) <= 1, counts
            return counts

        wait_for(spread, 45, "the tenant spread by the optimiser", interval=0.5)
        settle(cl)
    finally:
        recorder.stop()
    recorder.check()
    assert "storcon_optimizations_total" in cl.storcon.metrics()
    # every shard still has its one secondary, on another node
    for s in cl.describe(tenant)["shards"]:
        assert len(s["node_secondary"]) == 1 and s["node_attached"] not in s["node_secondary"], s


def test_optimiser_moves_back_to_the_preferred_az(cluster_factory):
    """A tenant attached outside its preferred AZ (the AZ changed after it was placed) moves back
    into it, by a cut-over to its secondary there once that one is held."""
    cl = cluster_factory(2, storcon_args=["--background-interval", "1s"],
                         availability_zone="az-a")
    far = cl.add_pageserver(availability_zone="az-b")
    cl.wait_nodes("Active")
    tenant, _ = cl.create_tenant(placement={"Attached": 1})
    settle(cl)
    [shard] = cl.describe(tenant)["shards"]
    home = cl.node(shard["node_attached"])["availability_zone_id"]
    target_az = "az-b" if home == "az-a" else "az-a"
    assert ok_json(cl.storcon.put("/control/v1/preferred_azs",
                                  json={"preferred_az_ids": {tenant: target_az}})) == \
        {"updated": [tenant]}

    def in_preferred_az():
        [s] = cl.describe(tenant)["shards"]
        assert cl.node(s["node_attached"])["availability_zone_id"] == target_az, s
        return s

    s = wait_for(in_preferred_az, 30, f"attached in {target_az}", interval=0.5)
    settle(cl)
    assert len(s["node_secondary"]) == 1, s
    if target_az == "az-b":
        assert s["node_attached"] == far.id, s
