"""Failover that lands on warm data (storcon.md "Heartbeats", pageserver.md "Secondary locations
and heatmaps"): a tenant with placement {"Attached": 1} has a warm secondary; once the attached
location published its heatmap and the secondary followed it, killing the attached pageserver
promotes the secondary, which then serves every page without reading remote storage, and the
controller makes a new secondary on the remaining node."""

import time

from pageserver_env import PageClient, RemoteDir, initdb_files, timeline_info
from storcon_env import (  # noqa: F401 - fixtures are used by name
    cluster,
    cluster_factory,
    new_id,
    ok_json,
    shard_tsids,
    wait_for,
)

FAILOVER_DEADLINE = 45.0


def metric(ps, name) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in ps.metrics().splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def test_kill9_attached_promotes_the_warm_secondary(cluster):
    tenant, _ = cluster.create_tenant(count=0, placement={"Attached": 1})
    cluster.reconcile_until_idle()
    tl = new_id()
    ok_json(cluster.create_timeline(tenant, tl), 201)
    cluster.reconcile_until_idle()
    [tsid] = shard_tsids(tenant, 0)
    [shard] = cluster.describe(tenant)["shards"]
    origin, [warm] = shard["node_attached"], shard["node_secondary"]
    ps_origin, ps_warm = cluster.ps(origin), cluster.ps(warm)
    # the controller asks attached locations with secondaries for periodic heatmaps
    conf = cluster.locations(ps_origin)[tsid]
    assert conf["tenant_conf"].get("heatmap_period"), conf

    ok_json(ps_origin.post(f"/v1/tenant/{tsid}/heatmap_upload"))
    progress = ok_json(ps_warm.post(f"/v1/tenant/{tsid}/secondary/download",
                                    params={"wait_ms": 30000}), 200)
    assert progress["layers_total"] == progress["layers_downloaded"] > 0, progress
    lsn = timeline_info(ps_origin, tsid, tl)["last_record_lsn"]
    fetched = metric(ps_warm, "pageserver_layers_downloaded_total")

    gen_before = cluster.db_generations(tenant)[tsid]
    ps_origin.kill9()
    killed = time.monotonic()
    # (heartbeats would find it Offline within 30 s; failover timing has its own tests)
    ok_json(cluster.storcon.put(f"/control/v1/node/{origin}/config",
                                json={"node_id": origin, "availability": "Offline"}))

    def promoted():
        assert cluster.attached(tenant)[tsid] == warm
        g = cluster.db_generations(tenant)[tsid]
        assert g > gen_before
        c = cluster.locations(ps_warm).get(tsid)
        assert c and c["mode"] == "AttachedSingle" and c["generation"] == g, c

    wait_for(promoted, timeout=FAILOVER_DEADLINE, what="warm secondary promoted", interval=0.5)
    assert time.monotonic() - killed < FAILOVER_DEADLINE

    # every page served from what the secondary had downloaded: no layer fetched at cut-over
    with PageClient(ps_warm) as pages:
        files = initdb_files(RemoteDir(cluster.env.remote_storage), tsid, tl)
        assert pages.check_all(tsid, tl, files, lsn) > 100
    assert metric(ps_warm, "pageserver_layers_downloaded_total") == fetched

    # and a new secondary on the node that is left (the dead one is Offline)
    third = next(ps.id for ps in cluster.pageservers if ps.id not in (origin, warm))

    def new_secondary():
        cluster.reconcile_all()
        [s] = cluster.describe(tenant)["shards"]
        assert s["node_attached"] == warm and s["node_secondary"] == [third], s
        c = cluster.locations(cluster.ps(third)).get(tsid)
        assert c and c["mode"] == "Secondary" and c["secondary_conf"]["warm"] is True, c

    wait_for(new_secondary, timeout=30, what="a new secondary", interval=0.5)
