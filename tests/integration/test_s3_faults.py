"""Remote storage faults on S3: the S3 server is killed (SIGKILL) while the pageserver has
acknowledged one timeline, a create during the outage is refused with 503 after the backend's
retries and acknowledges nothing, and after a restart on the same data directory and port the
retried create succeeds and uploads; nothing acknowledged before is lost, and no index ever names a
layer that is not stored (docs/remote-storage-s3.md "Threads, retries and timeouts"). A second
test kills the server while a layer upload is in flight: the upload queue retries it until it is
stored, and the create is answered only then."""

import json
import re
import signal
import threading
import time

import pytest

from fixtures.s3 import s3rver_available
from fixtures.util import wait_until
from pageserver_env import (  # noqa: F401 - fixtures are used by name
    bootstrap,
    fake_storcon,
    lsn_parse,
    new_id,
    ps_env,
    timeline_info,
)

pytestmark = pytest.mark.skipif(not s3rver_available(),
                                reason="s3rver not installed (scripts/install-deps.sh)")


@pytest.fixture
def s3_mode(monkeypatch):
    """This module runs on S3 whatever REMOTE_STORAGE says."""
    monkeypatch.setenv("REMOTE_STORAGE", "s3")


def assert_indexes_complete(remote):
    """Every index_part object names only layers that are stored, with their recorded size."""
    for key in remote.keys("tenants/"):
        m = re.fullmatch(r"(tenants/[^/]+/timelines/[^/]+)/index_part\.json(-[0-9a-f]{8})?", key)
        if not m:
            continue
        index = json.loads(remote.read(key))
        for name, meta in index["layer_metadata"].items():
            layer_key = f"{m.group(1)}/{name}-{meta['generation']:08x}"
            assert remote.exists(layer_key), f"{key} names {layer_key}, which is not stored"
            assert remote.size(layer_key) == meta["file_size"], layer_key


def test_uploads_survive_s3_restart(s3_mode, ps_env):
    penv = ps_env
    srv = penv.env.s3
    remote = penv.remote
    ps = penv.pageserver()
    tenant = new_id()
    penv.attach(ps, tenant, 1)

    # Acknowledged before the fault: a timeline whose index is uploaded.
    first = bootstrap(ps, tenant, pg_version=15)["timeline_id"]
    wait_until(lambda: lsn_parse(timeline_info(ps, tenant, first)["remote_consistent_lsn"]) >=
               lsn_parse(timeline_info(ps, tenant, first)["last_record_lsn"]), timeout=60,
               what="first timeline uploaded")
    before = remote.snapshot(f"tenants/{tenant}/timelines/{first}/")
    assert any("index_part.json" in k for k in before), before

    # Kill the server: a create needing S3 is refused with 503 (after the backend's retries),
    # naming the S3 failure, and acknowledges nothing.
    srv.s3rver.kill9()
    tl = new_id()
    r = ps.post(f"/v1/tenant/{tenant}/timeline",
                json={"new_timeline_id": tl, "pg_version": 15}, timeout=120)
    assert r.status_code == 503, r.text
    assert "s3 PUT" in r.json()["msg"] and "ServiceUnavailable" in r.json()["msg"], r.text
    # Restart on the same data directory and port: the retried create succeeds and uploads.
    srv.start_s3rver()
    second = bootstrap(ps, tenant, tl=tl, pg_version=15)["timeline_id"]
    assert second == tl

    def uploaded():
        info = timeline_info(ps, tenant, second)
        return lsn_parse(info["remote_consistent_lsn"]) >= lsn_parse(info["last_record_lsn"])

    wait_until(uploaded, timeout=120, what="second timeline uploaded after the restart")
    assert any(k.endswith(tuple(f"index_part.json-{g:08x}" for g in range(1, 3)))
               for k in remote.keys(f"tenants/{tenant}/timelines/{second}/"))
    # Nothing acknowledged was lost: the first timeline's objects are all there, unchanged.
    after = remote.snapshot(f"tenants/{tenant}/timelines/{first}/")
    for key, info in before.items():
        if "index_part.json" not in key:
            assert key in after and after[key].sha256 == info.sha256, key
    assert_indexes_complete(remote)
    assert ps.process.is_running()


def test_s3_killed_in_the_middle_of_a_layer_upload(s3_mode, ps_env):
    """The S3 server dies while a layer upload is in flight (held by the upload-layer failpoint
    so that the kill lands inside it) and comes back: the upload queue retries until it is
    stored, the create is answered only then, and every index names stored layers only."""
    penv = ps_env
    srv = penv.env.s3
    remote = penv.remote
    ps = penv.pageserver()
    tenant = new_id()
    penv.attach(ps, tenant, 1)
    ok = ps.put("/v1/failpoints", json=[{"name": "upload-layer", "actions": "1*sleep(3000)"}])
    assert ok.status_code == 200, ok.text
    tl = new_id()
    result = {}

    def create():
        result["r"] = ps.post(f"/v1/tenant/{tenant}/timeline",
                              json={"new_timeline_id": tl, "pg_version": 15}, timeout=240)

    t = threading.Thread(target=create)
    t.start()
    # the layer is written locally, then its upload is held 3 s by the failpoint: the server goes
    # away under it, then comes back
    local = ps.workdir / "tenants" / tenant / "timelines" / tl
    wait_until(lambda: local.is_dir() and any("__" in p.name for p in local.iterdir()),
               timeout=60, what="the layer written locally")
    srv.s3rver.kill9()
    time.sleep(5)  # the held upload fails against the dead server and is retried
    srv.start_s3rver()
    t.join(240)
    r = result["r"]
    assert r.status_code == 201, r.text
    assert remote_layers_of(remote, tenant, tl), "the layer was never stored"
    assert_indexes_complete(remote)
    assert ps.process.is_running()


def remote_layers_of(remote, tenant, tl) -> list:
    return [k for k in remote.keys(f"tenants/{tenant}/timelines/{tl}/")
            if "index_part.json" not in k and not k.endswith("initdb.tar.zst")]


def test_detach_cancels_an_upload_stuck_on_s3(s3_mode, ps_env):
    """An upload that hangs on a stalled S3 server (SIGSTOP) does not hold a detach: the slot's
    stop cancels it (RemoteOpts cancel, polled by curl's progress callback), and the detach is
    answered at once instead of after the backend's stall timeout and retries."""
    penv = ps_env
    srv = penv.env.s3
    ps = penv.pageserver()
    tenant = new_id()
    conf = penv.attach(ps, tenant, 1)
    tl = new_id()
    result = {}

    def create():
        result["r"] = ps.post(f"/v1/tenant/{tenant}/timeline",
                              json={"new_timeline_id": tl, "pg_version": 15}, timeout=240)

    # the layer's upload starts 2 s late (failpoint), by when the S3 server is stalled
    ok = ps.put("/v1/failpoints", json=[{"name": "upload-layer", "actions": "1*sleep(2000)"}])
    assert ok.status_code == 200, ok.text
    t = threading.Thread(target=create)
    t.start()
    local = ps.workdir / "tenants" / tenant / "timelines" / tl
    wait_until(lambda: local.is_dir() and any("__" in p.name for p in local.iterdir()),
               timeout=60, what="the layer written locally")
    srv.s3rver.send_signal(signal.SIGSTOP)
    try:
        time.sleep(4)  # the upload is now stuck on the stalled server
        started = time.monotonic()
        r = ps.put(f"/v1/tenant/{tenant}/location_config",
                   json=dict(conf, mode="Detached", generation=None), timeout=120)
        took = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert took < 10, f"the detach waited {took:.1f} s for a stuck upload"
        t.join(120)
        assert result["r"].status_code >= 500, result["r"].text  # the create did not complete
    finally:
        srv.s3rver.send_signal(signal.SIGCONT)
    assert ps.process.is_running()
