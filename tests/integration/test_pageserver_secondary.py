"""Heatmaps and warm secondary locations (pageserver.md "Secondary locations and heatmaps"):
an attached location publishes which layers it holds; a warm secondary keeps exactly those
(not the cold ones), removes what the heatmap no longer lists, and when it is attached later it
serves every page without downloading anything."""

import json
import os
import time

from fixtures.util import wait_until
from pageserver_env import (  # noqa: F401 - fixtures are used by name
    PageClient,
    bootstrap,
    error_msg,
    fake_storcon,
    initdb_files,
    location_conf,
    new_id,
    ok_json,
    ps_env,
    put_location,
    relation_pages,
    timeline_info,
)


def heatmap_key(tsid):
    return f"tenants/{tsid}/heatmap-v1.json"


def read_heatmap(remote, tsid) -> dict:
    return json.loads(remote.read(heatmap_key(tsid)))


def metric(ps, name) -> float:
    total = 0.0
    for line in ps.metrics().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def index_layers(remote, tsid, tl, gen) -> dict:
    key = remote.index_keys(tsid, tl)[gen]
    return json.loads(remote.read(key))["layer_metadata"]


def heatmap_upload(ps, tsid):
    return ps.post(f"/v1/tenant/{tsid}/heatmap_upload")


def download(ps, tsid, wait_ms=30000):
    return ps.post(f"/v1/tenant/{tsid}/secondary/download", params={"wait_ms": wait_ms})


def download_after_overwrite(ps, tsid):
    """download() right after the test overwrote the heatmap. A warm secondary's own periodic pass
    may read the object while it is being overwritten; S3 replaces an object atomically, but the
    test server s3rver writes the new body into the object's file in place, so that pass can read
    an empty or partial body ("malformed JSON") and the download request joins it. Such a pass is
    retried (at most twice); any other answer is returned as it is."""
    for _ in range(3):
        r = download(ps, tsid)
        if not (r.status_code == 500 and "heatmap" in r.text and ps_remote_is_s3()):
            return r
    return r


def ps_remote_is_s3() -> bool:
    return os.environ.get("REMOTE_STORAGE") == "s3"


def local_layer_files(ps, tsid, tl) -> dict:
    d = ps.workdir / "tenants" / tsid / "timelines" / tl
    return {p.name: p.read_bytes() for p in d.iterdir()} if d.exists() else {}


def layer_object_key(tsid, tl, name, meta):
    return f"tenants/{tsid}/timelines/{tl}/{name}-{meta['generation']:08x}"


def test_heatmap_uploads(ps_env):
    ps = ps_env.pageserver()
    tsid = new_id()
    conf = ps_env.attach(ps, tsid, 1)
    tl = bootstrap(ps, tsid)["timeline_id"]
    remote = ps_env.remote
    assert not remote.exists(heatmap_key(tsid))  # heatmap_period 0: no periodic uploads

    # on request: every layer of the index, hot (the attached location holds it), in order
    r = heatmap_upload(ps, tsid)
    assert ok_json(r) is None and r.content.strip() == b"null"
    hm = read_heatmap(remote, tsid)
    assert set(hm) == {"generation", "timelines", "upload_period_ms"}
    assert hm["generation"] == 1 and hm["upload_period_ms"] is None
    [htl] = hm["timelines"]
    assert htl["timeline_id"] == tl
    assert {layer["name"]: layer["metadata"] for layer in htl["layers"]} == \
        index_layers(remote, tsid, tl, 1)
    for layer in htl["layers"]:
        assert set(layer) == {"name", "metadata", "access_time", "cold"}
        assert layer["cold"] is False and layer["access_time"] > 1_600_000_000
    order = [(-layer["access_time"], layer["name"]) for layer in htl["layers"]]
    assert order == sorted(order)

    # errors: unknown shard 404, and nothing was written for it
    other = new_id()
    assert "not attached" in error_msg(heatmap_upload(ps, other), 404)
    assert not remote.exists(heatmap_key(other))

    # periodic: heatmap_period in the tenant config; unchanged heatmaps are not uploaded again
    conf["tenant_conf"] = {"heatmap_period": "1s"}
    ok_json(put_location(ps, tsid, conf))
    remote.delete(heatmap_key(tsid))
    wait_until(lambda: remote.exists(heatmap_key(tsid)), timeout=10, what="periodic heatmap")
    assert read_heatmap(remote, tsid)["upload_period_ms"] == 1000
    skipped = metric(ps, "pageserver_heatmap_uploads_skipped_total")
    before = remote.snapshot(heatmap_key(tsid))
    wait_until(lambda: metric(ps, "pageserver_heatmap_uploads_skipped_total") >= skipped + 2,
               timeout=10, what="unchanged heatmaps skipped")
    assert remote.snapshot(heatmap_key(tsid)) == before

    # AttachedStale uploads nothing: refused on request, no periodic uploads
    stale = dict(conf, mode="AttachedStale")
    ok_json(put_location(ps, tsid, stale))
    assert "AttachedStale" in error_msg(heatmap_upload(ps, tsid), 409)
    remote.delete(heatmap_key(tsid))
    time.sleep(2.5)
    assert not remote.exists(heatmap_key(tsid))

    # location_config with flush_ms: the answer comes after a heatmap was stored
    ok_json(put_location(ps, tsid, conf, flush_ms=5000))
    assert read_heatmap(remote, tsid)["generation"] == 1


def test_warm_secondary_follows_the_heatmap_and_attaches_warm(ps_env):
    ps1, ps2 = ps_env.pageserver(), ps_env.pageserver()
    tsid = new_id()
    ps_env.attach(ps1, tsid, 1)
    tl = bootstrap(ps1, tsid)["timeline_id"]
    ok_json(heatmap_upload(ps1, tsid))
    layers = index_layers(ps_env.remote, tsid, tl, 1)
    total_bytes = sum(m["file_size"] for m in layers.values())

    # a cold secondary keeps nothing; a warm one downloads every hot layer
    ps_env.secondary(ps2, tsid, warm=False)
    assert "cold" in error_msg(download(ps2, tsid), 409)
    ps_env.secondary(ps2, tsid, warm=True)
    r = download(ps2, tsid)
    progress = ok_json(r, 200)
    assert set(progress) == {"heatmap_mtime", "layers_downloaded", "layers_total",
                             "bytes_downloaded", "bytes_total"}
    assert progress["layers_total"] == progress["layers_downloaded"] == len(layers) > 0
    assert progress["bytes_total"] == progress["bytes_downloaded"] == total_bytes
    assert progress["heatmap_mtime"].endswith("Z")
    assert ok_json(ps2.get(f"/v1/tenant/{tsid}/secondary/status")) == progress
    local = local_layer_files(ps2, tsid, tl)
    assert set(local) == {f"{n}-{m['generation']:08x}" for n, m in layers.items()}
    for name, meta in layers.items():
        assert local[f"{name}-{meta['generation']:08x}"] == \
            ps_env.remote.read(layer_object_key(tsid, tl, name, meta))

    # what the heatmap does not list goes: a stray file, a damaged copy, an unknown timeline
    tl_dir = ps2.workdir / "tenants" / tsid / "timelines" / tl
    (tl_dir / "stray").write_bytes(b"x")
    victim = sorted(local)[0]
    (tl_dir / victim).write_bytes(b"truncated")
    (tl_dir.parent / new_id()).mkdir()
    removed = metric(ps2, "pageserver_secondary_layers_removed_total")
    assert ok_json(download(ps2, tsid), 200)["layers_downloaded"] == len(layers)
    assert local_layer_files(ps2, tsid, tl) == local
    assert sorted(p.name for p in tl_dir.parent.iterdir()) == [tl]
    assert metric(ps2, "pageserver_secondary_layers_removed_total") == removed + 3

    # routes that only a warm secondary answers
    assert "not a secondary" in error_msg(ps1.get(f"/v1/tenant/{tsid}/secondary/status"), 404)
    assert "not a secondary" in error_msg(download(ps1, tsid), 404)
    assert "not attached" in error_msg(heatmap_upload(ps2, tsid), 404)

    # the secondary becomes the attached location: every page served, nothing downloaded
    lsn = timeline_info(ps1, tsid, tl)["last_record_lsn"]
    ok_json(put_location(ps1, tsid, location_conf("AttachedStale", 1)))
    fetched = metric(ps2, "pageserver_layers_downloaded_total")
    ps_env.attach(ps2, tsid, 2)
    pages1, pages2 = PageClient(ps1), PageClient(ps2)
    n = 0
    for spc, db, rel, fork, blk, page in relation_pages(initdb_files(ps_env.remote, tsid, tl)):
        assert pages2.page(tsid, tl, spc, db, rel, fork, blk, lsn) == page
        n += 1
        if n % 50 == 0:
            assert pages1.page(tsid, tl, spc, db, rel, fork, blk, lsn) == page
    assert n > 100
    assert metric(ps2, "pageserver_layers_downloaded_total") == fetched
    ps_env.storcon.set_intent(ps1.id, tsid, None)
    ok_json(put_location(ps1, tsid, location_conf("Detached")))


def test_secondary_skips_cold_layers_and_follows_a_new_heatmap(ps_env):
    ps1, ps2 = ps_env.pageserver(), ps_env.pageserver()
    tsid = new_id()
    ps_env.attach(ps1, tsid, 1)
    tl = bootstrap(ps1, tsid)["timeline_id"]
    ok_json(heatmap_upload(ps1, tsid))
    ok_json(put_location(ps1, tsid, location_conf("AttachedStale", 1)))  # no more uploads
    remote = ps_env.remote
    hm = read_heatmap(remote, tsid)
    assert hm["timelines"][0]["layers"]

    # every layer cold (the attached location does not hold them): listed, not downloaded
    for layer in hm["timelines"][0]["layers"]:
        layer["cold"] = True
    remote.write(heatmap_key(tsid), json.dumps(hm).encode())
    ps_env.secondary(ps2, tsid, warm=True)
    progress = ok_json(download(ps2, tsid), 200)
    assert progress["layers_total"] == progress["layers_downloaded"] == 0
    assert local_layer_files(ps2, tsid, tl) == {}
    assert metric(ps2, "pageserver_secondary_layers_downloaded_total") == 0

    # a new heatmap (a new etag) is followed at the next pass
    for layer in hm["timelines"][0]["layers"]:
        layer["cold"] = False
    remote.write(heatmap_key(tsid), json.dumps(hm).encode())
    progress = ok_json(download_after_overwrite(ps2, tsid), 200)
    assert progress["layers_downloaded"] == len(hm["timelines"][0]["layers"]) > 0
    assert metric(ps2, "pageserver_secondary_layers_downloaded_total") == progress["layers_total"]

    # a heatmap that does not parse fails the pass with a clear error and keeps the local copy
    remote.write(heatmap_key(tsid), b'{"generation": 1, "timelines": "no"}')
    assert "heatmap" in error_msg(download(ps2, tsid), 500)
    assert len(local_layer_files(ps2, tsid, tl)) == progress["layers_total"]
    ps_env.storcon.set_intent(ps1.id, tsid, None)
    ok_json(put_location(ps1, tsid, location_conf("Detached")))


def test_wait_lsn(ps_env):
    ps = ps_env.pageserver()
    tsid = new_id()
    ps_env.attach(ps, tsid, 1)
    tl = bootstrap(ps, tsid)["timeline_id"]
    last = timeline_info(ps, tsid, tl)["last_record_lsn"]
    hi, lo = (int(x, 16) for x in last.split("/"))
    beyond = f"{hi:X}/{lo + 8:X}"

    def wait_lsn(body):
        return ps.post(f"/v1/tenant/{tsid}/wait_lsn", json=body)

    # reached at once, whatever the timeout's form
    for timeout in (1000, "1s", {"secs": 1, "nanos": 0}):
        r = wait_lsn({tl: last, "timeout": timeout})
        assert r.status_code == 200 and r.json() is None, r.text
    # not reached: 202 after the timeout (no WAL arrives here)
    t0 = time.monotonic()
    r = wait_lsn({tl: beyond, "timeout": 300})
    assert r.status_code == 202 and r.json() is None, r.text
    assert time.monotonic() - t0 >= 0.3
    # errors: unknown timeline, unknown shard, malformed bodies
    assert "not found" in error_msg(wait_lsn({new_id(): last, "timeout": 10}), 404)
    error_msg(ps.post(f"/v1/tenant/{new_id()}/wait_lsn", json={"timeout": 10}), 404)
    assert "timeout" in error_msg(wait_lsn({tl: last}), 400)
    error_msg(wait_lsn({tl: "nonsense", "timeout": 10}), 400)
    error_msg(wait_lsn({"not-an-id": last, "timeout": 10}), 400)
    error_msg(wait_lsn({tl: last, "timeout": -1}), 400)


def test_secondary_download_bandwidth_limit(ps_env):
    """--secondary-download-bandwidth paces every byte a warm secondary reads: a download of B
    bytes at R bytes/s takes at least (B - burst) / R, and the time slept is counted."""
    ps1 = ps_env.pageserver()
    tsid = new_id()
    ps_env.attach(ps1, tsid, 1)
    tl = bootstrap(ps1, tsid)["timeline_id"]
    ok_json(heatmap_upload(ps1, tsid))
    total = sum(m["file_size"] for m in index_layers(ps_env.remote, tsid, tl, 1).values())
    rate = max(total // 2, 256 << 10)  # about two seconds for the whole download
    burst = max(rate // 10, 64 << 10)  # the limiter's default burst (shared/throttle.h)
    ps2 = ps_env.pageserver(extra_args=["--secondary-download-bandwidth", str(rate)])
    t0 = time.monotonic()
    ps_env.secondary(ps2, tsid, warm=True)
    progress = ok_json(download(ps2, tsid, wait_ms=60000), 200)
    took = time.monotonic() - t0
    assert progress["bytes_downloaded"] == progress["bytes_total"] == total
    assert took >= (total - burst) / rate - 0.05, (took, total, rate)
    assert metric(ps2, "pageserver_secondary_download_throttled_ms_total") > 0
    assert metric(ps2, "pageserver_secondary_bytes_downloaded_total") == total
