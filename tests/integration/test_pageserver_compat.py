"""Pageserver compatibility with Neon's clients: TimelineInfo's fields (Neon's pageserver_api
models), "no content" replies as JSON null, generation numbering (pageserver.md)."""

import time

from fixtures.util import wait_until
from pageserver_env import (  # noqa: F401 - fixtures are used by name
    BLCKSZ,
    bootstrap,
    branch,
    delete_timeline,
    error_msg,
    fake_storcon,
    initdb_files,
    location_conf,
    PageClient,
    lsn_fmt,
    lsn_parse,
    parse_layer,
    new_id,
    ok_json,
    ps_env,
    put_location,
    relation_pages,
    relation_sizes,
    timeline_info,
    timelines,
    wait_timeline_gone,
)

# Neon's TimelineInfo fields this pageserver emits, with their JSON types (None: nullable).
NEON_TIMELINE_INFO = {
    "current_logical_size": int,
    "current_logical_size_is_accurate": bool,
    "directory_entries_counts": list,
    "pitr_history_size": int,
    "within_ancestor_pitr": bool,
    "walreceiver_status": str,
    "current_physical_size": int,
    "pg_version": int,
}
DIRECTORY_KINDS = 7  # Db, TwoPhase, Rel, AuxFiles, SLRU clog / multixact members / offsets


def wait_accurate(ps, tenant, tl):
    def accurate():
        info = timeline_info(ps, tenant, tl)
        return info if info["current_logical_size_is_accurate"] else False
    return wait_until(accurate, timeout=30, what="an accurate logical size")


def check_types(info):
    for field, typ in NEON_TIMELINE_INFO.items():
        assert field in info, f"TimelineInfo lacks {field}: {info}"
        assert type(info[field]) is typ, f"{field}: {info[field]!r} is not {typ.__name__}"


def test_timeline_info_neon_fields_and_logical_size_after_load(ps_env):
    ps1 = ps_env.pageserver()
    tenant = new_id()
    ps_env.attach(ps1, tenant, 1)
    created = bootstrap(ps1, tenant, pg_version=15)
    tl = created["timeline_id"]
    check_types(created)
    files = initdb_files(ps_env.remote, tenant, tl)
    sizes = relation_sizes(files)
    expected = sum(sizes.values()) * BLCKSZ
    assert expected > 0
    # A bootstrap sums the sizes while converting: accurate at once.
    assert created["current_logical_size"] == expected, created
    assert created["current_logical_size_is_accurate"] is True, created
    assert created["walreceiver_status"] == "Not active", created
    assert created["within_ancestor_pitr"] is False, created
    assert created["pitr_history_size"] == \
        lsn_parse(created["last_record_lsn"]) - lsn_parse(created["initdb_lsn"]), created
    info = wait_until(lambda: timeline_info(ps1, tenant, tl)["directory_entries_counts"] or False,
                      timeout=30, what="directory entry counts")
    assert len(info) == DIRECTORY_KINDS and all(type(c) is int for c in info), info
    dbs = {(spc, db) for spc, db, _, _ in sizes if db != 0}
    assert info[0] >= len(dbs) and info[2] == len(sizes) and info[3] == 0, (info, len(sizes))

    # Loaded from remote storage on another pageserver: the size is computed at load.
    ps2 = ps_env.pageserver()
    ps_env.attach(ps2, tenant, 2)
    loaded = wait_accurate(ps2, tenant, tl)
    check_types(loaded)
    assert loaded["current_logical_size"] == expected, loaded
    assert loaded["directory_entries_counts"] == info, loaded
    assert timelines(ps2, tenant)[tl]["current_logical_size"] == expected

    # A branch: within its ancestor's horizon, history counted from the branch point.
    br = branch(ps2, tenant, tl)
    check_types(br)
    assert br["within_ancestor_pitr"] is True, br
    assert br["pitr_history_size"] == 0, br  # branched at the ancestor's last record
    assert wait_accurate(ps2, tenant, br["timeline_id"])["current_logical_size"] == expected


def assert_null(r, status):
    assert r.status_code == status and r.text == "null", f"{r.status_code} {r.text!r}"
    assert r.headers["Content-Type"].startswith("application/json")


def test_no_content_replies_are_json_null(ps_env):
    """Neon answers json_response(status, ()) = null; every such reply here is null too."""
    ps = ps_env.pageserver()
    tenant = new_id()
    ps_env.attach(ps, tenant, 1)
    assert_null(ps.put("/v1/failpoints", json=[{"name": "compat-noop", "actions": "off"}]), 200)
    tl = bootstrap(ps, tenant, pg_version=15)["timeline_id"]
    assert_null(ps.put("/v1/tenant/config", json={"tenant_id": tenant, "gc_period": "2h"}), 200)
    assert_null(ps.request("PATCH", "/v1/tenant/config", json={"tenant_id": tenant, "gc_period": "3h"}),
                200)
    assert_null(delete_timeline(ps, tenant, tl), 202)
    assert_null(ps.put("/v1/deletion_queue/flush", params={"execute": "true"}, timeout=60), 200)
    wait_timeline_gone(ps, tenant, tl)
    assert_null(ps.delete(f"/v1/tenant/{tenant}", timeout=60), 200)


def test_generation_zero_is_rejected(ps_env):
    """Generations start at 1: 0 is 400 {"msg"} and nothing is created."""
    ps = ps_env.pageserver()
    tenant = new_id()
    for mode in ("AttachedSingle", "AttachedMulti", "AttachedStale"):
        msg = error_msg(put_location(ps, tenant, location_conf(mode, 0)), 400)
        assert "generation" in msg and "start at 1" in msg, msg
    assert not (ps.workdir / "tenants" / tenant).exists()
    error_msg(ps.get(f"/v1/location_config/{tenant}"), 404)
    ps_env.attach(ps, tenant, 1)  # generation 1 is fine


def test_getpage_beyond_last_record_lsn_waits_then_408(ps_env):
    """A read at an LSN past last_record_lsn waits (up to --wait-lsn-timeout) for it instead of
    answering the latest page, then 408 with Neon's message; the loop serves others meanwhile."""
    ps = ps_env.pageserver(extra_args=["--wait-lsn-timeout", "1500ms"])
    tenant = new_id()
    ps_env.attach(ps, tenant, 1)
    info = bootstrap(ps, tenant, pg_version=15)
    tl, last = info["timeline_id"], lsn_parse(info["last_record_lsn"])
    spc, db, rel, fork, blk, page = next(relation_pages(initdb_files(ps_env.remote, tenant, tl)))
    pages = PageClient(ps)
    assert pages.page(tenant, tl, spc, db, rel, fork, blk, lsn_fmt(last)) == page

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        start = time.monotonic()
        future = pool.submit(PageClient(ps).get, tenant, tl, spc, db, rel, fork, blk,
                             lsn_fmt(last + 0x1000))
        time.sleep(0.3)
        assert not future.done(), "a future LSN was answered at once"
        # the event loop is not blocked by the parked read
        t0 = time.monotonic()
        assert pages.page(tenant, tl, spc, db, rel, fork, blk, lsn_fmt(last)) == page
        assert ps.get("/v1/status").status_code == 200
        assert time.monotonic() - t0 < 1.0
        r = future.result(timeout=30)
        waited = time.monotonic() - start
    msg = error_msg(r, 408)
    assert "Timed out while waiting for WAL record at LSN" in msg, msg
    assert 1.4 <= waited < 10, waited
    pages.close()


def test_startup_removes_stale_temp_files(ps_env):
    """Temporary files a crash left (local layer directories, file remote storage) older than the
    grace period are removed at startup and counted; fresh ones are kept."""
    import os

    ps = ps_env.pageserver()
    tenant = new_id()
    ps_env.attach(ps, tenant, 1)
    tl = bootstrap(ps, tenant, pg_version=15)["timeline_id"]
    assert ps.stop() == 0
    old = time.time() - 3600
    remote_dir = ps_env.remote.path(f"tenants/{tenant}/timelines/{tl}")
    local_dir = ps.workdir / "tenants" / tenant / "timelines" / tl
    assert remote_dir.is_dir() and local_dir.is_dir()
    # (files in a timeline directory that the index does not name are removed by the attach
    # anyway, so the local ones checked here sit in the tenant directory)
    stale = [remote_dir / "index_part.json-00000001.tmp.4242.7",
             ps.workdir / "tenants" / tenant / "config.tmp.4242.9"]
    fresh = [remote_dir / "index_part.json-00000001.tmp.4242.10",
             ps.workdir / "tenants" / tenant / "config.tmp.4242.11"]
    keep = remote_dir / "not-temporary.tmp.x.1"
    for p in stale + fresh + [keep]:
        p.write_bytes(b"partial")
    for p in stale + [keep]:
        os.utime(p, (old, old))
    ps.start()

    def swept():
        m = [ln for ln in ps.metrics().splitlines()
             if ln.startswith("pageserver_temp_files_removed_total ")]
        return m and float(m[0].split()[1]) == len(stale)
    wait_until(swept, timeout=30, what="temp file sweep")
    assert not any(p.exists() for p in stale), [p for p in stale if p.exists()]
    assert all(p.exists() for p in fresh) and keep.exists()


def test_damaged_local_layer_is_fetched_again(ps_env):
    """A checksum failure in the local copy of a layer evicts it and downloads the intact remote
    object again: the read succeeds and pageserver_layer_refetches_total counts it."""
    ps = ps_env.pageserver()
    tenant = new_id()
    ps_env.attach(ps, tenant, 1)
    tl = bootstrap(ps, tenant, pg_version=15)["timeline_id"]
    lsn = timeline_info(ps, tenant, tl)["last_record_lsn"]
    files = initdb_files(ps_env.remote, tenant, tl)
    pages = {p[:5]: p[5] for p in relation_pages(files)}
    local_dir = ps.workdir / "tenants" / tenant / "timelines" / tl
    victim = None
    for path in sorted(local_dir.iterdir()):
        for e in parse_layer(path.read_bytes()).entries:
            k = (e.key.f2, e.key.f3, e.key.f4, e.key.f5, e.key.f6)
            if e.key.is_rel_block() and k in pages:
                victim, layer_path = e, path
                break
        if victim:
            break
    assert victim is not None
    offset = victim.blob_offset + 9 + max(0, (victim.blob_len - 9) // 2)
    with open(layer_path, "r+b") as f:
        f.seek(offset)
        b = f.read(2)
        f.seek(offset)
        f.write(bytes(x ^ 0xFF for x in b))
    k = victim.key
    client = PageClient(ps)
    assert client.page(tenant, tl, k.f2, k.f3, k.f4, k.f5, k.f6, lsn) == \
        pages[(k.f2, k.f3, k.f4, k.f5, k.f6)]
    client.close()
    m = [ln for ln in ps.metrics().splitlines()
         if ln.startswith("pageserver_layer_refetches_total ")]
    assert m and float(m[0].split()[1]) == 1, m


def test_attach_behind_absent_detach_is_409_until_removal_ends(ps_env):
    """A Detached location_config for a shard without a slot removes its directory on a worker;
    an attach arriving meanwhile is 409 (it would lose its persisted config), and succeeds after."""
    from concurrent.futures import ThreadPoolExecutor

    ps = ps_env.pageserver()
    tenant = new_id()
    leftover = ps.workdir / "tenants" / tenant
    leftover.mkdir(parents=True)
    (leftover / "junk").write_bytes(b"x")
    r = ps.put("/v1/failpoints", json=[{"name": "tenant-remove-local", "actions": "sleep(1500)"}])
    assert r.status_code == 200, r.text
    with ThreadPoolExecutor(1) as pool:
        detach = pool.submit(put_location, ps, tenant, location_conf("Detached"))
        time.sleep(0.4)
        assert not detach.done()
        gen = ps_env.storcon.issue(tenant, 1)
        ps_env.storcon.set_intent(ps.id, tenant, "AttachedSingle", 0)
        msg = error_msg(put_location(ps, tenant, location_conf("AttachedSingle", gen)), 409)
        assert "being removed" in msg, msg
        assert detach.result(timeout=30).status_code == 200
    assert not leftover.exists()
    ok_json(put_location(ps, tenant, location_conf("AttachedSingle", gen)))
    assert (leftover / "config").exists()
    assert ok_json(ps.get(f"/v1/location_config/{tenant}"))["generation"] == gen
