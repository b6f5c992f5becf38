"""Pageserver timelines: bootstrap (unsharded and on a 4-shard tenant over two pageservers) read
back page by page against the initdb result, key ownership per shard, branches, timeline
deletion, corrupt layers and bad input (pageserver.md "Timeline create", "Timeline delete",
"Remote storage layout"; wire.md "Key to shard")."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from fixtures.util import wait_until
from pageserver_env import (  # noqa: F401 - fixtures are used by name
    BLCKSZ,
    Key,
    PageClient,
    bootstrap,
    branch,
    create_timeline,
    delete_timeline,
    error_msg,
    fake_storcon,
    flip_file_bytes,
    flush_deletions,
    get_location,
    hash_combine,
    initdb_files,
    key_owner,
    key_stored_on,
    lsn_fmt,
    lsn_parse,
    module_ps_env,
    murmur32,
    new_id,
    ok_json,
    parse_layer,
    parse_layer_object_name,
    ps_env,
    relation_pages,
    relation_sizes,
    settled_timelines,
    shard_index,
    shared_ps_env,
    timeline_info,
    timelines,
    tsid_of,
    wait_ready,
    wait_tenant_active,
    wait_timeline_gone,
)

TIMELINE_INFO_FIELDS = (
    "tenant_id", "timeline_id", "ancestor_timeline_id", "ancestor_lsn", "last_record_lsn",
    "prev_record_lsn", "disk_consistent_lsn", "remote_consistent_lsn",
    "remote_consistent_lsn_visible", "initdb_lsn", "min_readable_lsn", "applied_gc_cutoff_lsn",
    "current_logical_size", "current_physical_size", "pg_version", "state",
)


@dataclass
class Boot:
    """One bootstrapped unsharded tenant shared by the module's read-mostly tests."""

    penv: object
    ps: object
    tenant: str
    tl: str
    lsn: str
    files: dict  # the initdb result: path -> bytes
    pages: dict  # (spc, db, rel, fork, blk) -> page


@pytest.fixture(scope="module")
def boot(module_ps_env):
    penv = module_ps_env
    ps = penv.pageserver()
    tenant = new_id()
    penv.attach(ps, tenant, 1)
    info = bootstrap(ps, tenant, pg_version=15)
    files = initdb_files(penv.remote, tenant, info["timeline_id"])
    pages = {p[:5]: p[5] for p in relation_pages(files)}
    return Boot(penv, ps, tenant, info["timeline_id"], info["last_record_lsn"], files, pages)


def sample_pages(boot, every: int = 1, edges: bool = True):
    """Every `every`-th page, plus (edges) each relation fork's first and last block."""
    keys = set(sorted(boot.pages)[::every])
    if edges:
        for (spc, db, rel, fork), n in relation_sizes(boot.files).items():
            if n:
                keys.add((spc, db, rel, fork, 0))
                keys.add((spc, db, rel, fork, n - 1))
    return sorted(keys)


def layer_objects(remote, prefix):
    """{key: LayerName} of the layer objects under prefix."""
    out = {}
    for key in remote.keys(prefix):
        parsed = parse_layer_object_name(key.rsplit("/", 1)[-1])
        if parsed:
            out[key] = parsed
    return out


# ---- key to shard: our oracle against wire.md's vectors ----


@pytest.mark.parametrize("count,stripe,rel,blk,shard", [
    (10, 32768, 0x400C, 0x7D06, 8), (4, 2048, 16384, 0, 0), (4, 2048, 16384, 2048, 3),
    (4, 2048, 16384, 4096, 2), (8, 2048, 16385, 0, 1), (8, 2048, 16385, 123456, 4),
    (2, 2048, 1259, 0, 0), (8, 1, 16397, 7, 4), (16, 2048, 24576, 99999, 6),
    (4, 32768, 16384, 40000, 3),
])
def test_key_to_shard_oracle_matches_wire_vectors(count, stripe, rel, blk, shard):
    assert murmur32(0) == 0 and hash_combine(0xB1FF3B40, 0) == 0xFB7923C9
    assert key_owner(Key.rel_block(1663, 5, rel, 0, blk), count, stripe) == shard
    assert key_owner(Key.rel_block(1663, 5, rel, 3, blk), count, stripe) == 0  # init fork


# ---- bootstrap ----


def test_bootstrap_unsharded(shared_ps_env, boot):
    ps, tenant, tl, remote = boot.ps, boot.tenant, boot.tl, shared_ps_env.remote
    info = timeline_info(ps, tenant, tl)
    missing = [f for f in TIMELINE_INFO_FIELDS if f not in info]
    assert not missing, f"TimelineInfo lacks {missing}: {info}"
    assert info["tenant_id"] == tenant and info["state"] == "Active", info
    assert info["ancestor_timeline_id"] is None and info["pg_version"] == 15, info
    lsn, initdb_lsn = info["last_record_lsn"], info["initdb_lsn"]
    assert 0 < lsn_parse(initdb_lsn) <= lsn_parse(lsn), info
    assert info["disk_consistent_lsn"] == lsn and info["remote_consistent_lsn"] == lsn, info
    assert timelines(ps, tenant)[tl] == info
    assert tl in ok_json(ps.get(f"/v1/tenant/{tenant}"))["timelines"]

    # Identical repeat: 201 with the existing timeline.
    again = ok_json(create_timeline(ps, tenant, {"new_timeline_id": tl, "pg_version": 15}), 201)
    assert again["timeline_id"] == tl and again["last_record_lsn"] == lsn

    # Remote: the generation-1 index names every layer, each stored under its exact name.
    index_keys = remote.index_keys(tenant, tl)
    assert set(index_keys) == {1}, index_keys
    index = json.loads(remote.read(index_keys[1]))
    assert index["disk_consistent_lsn"] == lsn and index["metadata"]["pg_version"] == 15, index
    assert index.get("deleted_at") is None
    layers = layer_objects(remote, f"tenants/{tenant}/timelines/{tl}/")
    assert layers, "no layer objects"
    expected = {}
    for name, meta in index["layer_metadata"].items():
        assert meta["generation"] == 1 and meta["shard"] == "0000", (name, meta)
        key = f"tenants/{tenant}/timelines/{tl}/{name}-00000001"
        assert remote.size(key) == meta["file_size"], key
        expected[key] = name
    assert set(layers) == set(expected), "remote layer objects differ from the index"
    for key, parsed in layers.items():
        assert parsed.is_image and parsed.lsn_start == lsn_parse(initdb_lsn), key

    # Every relation fork's first and last page, and every 5th page, read back exactly; one
    # block past the end of each fork is 404.
    pages = PageClient(ps)
    for k in sample_pages(boot, every=7):
        assert pages.page(tenant, tl, *k, lsn) == boot.pages[k], k
    for (spc, db, rel, fork), n in sorted(relation_sizes(boot.files).items()):
        error_msg(pages.get(tenant, tl, spc, db, rel, fork, n, lsn), 404)
    pages.close()


@pytest.mark.parametrize("stripe,every", [(1, 1), (2048, 4)])
def test_bootstrap_four_shards_on_two_pageservers(ps_env, stripe, every):
    """Shards 0 and 2 on one pageserver, 1 and 3 on the other; stripe 1 spreads every relation
    over all shards, the default 2048 keeps each relation of a fresh cluster on one shard. Every
    page of every relation file of the initdb result reads back exactly on its owning shard and
    is 404 on the others; no shard stores a key it does not own and every shard stores all the
    keys it owns. (With stripe 2048 only every 4th page is read back: the layer contents are
    still checked in full.)"""
    count = 4
    ps1 = ps_env.pageserver(start=False)
    ps2 = ps_env.pageserver(start=False)
    ps_env.start_all([ps1, ps2])
    placement = {0: ps1, 1: ps2, 2: ps1, 3: ps2}
    tenant, tl = new_id(), new_id()
    tsids = {n: tsid_of(tenant, n, count) for n in range(count)}
    for n, ps in placement.items():
        ps_env.attach(ps, tsids[n], 1, shard_number=n, shard_count=count, stripe=stripe)

    infos = {0: bootstrap(ps1, tsids[0], tl, pg_version=15)}
    with ThreadPoolExecutor(3) as pool:
        futures = {n: pool.submit(bootstrap, placement[n], tsids[n], tl, pg_version=15,
                                  existing_initdb_timeline_id=tl) for n in (1, 2, 3)}
        infos.update({n: f.result() for n, f in futures.items()})
    lsn = infos[0]["last_record_lsn"]
    for n, info in infos.items():
        assert info["tenant_id"] == tsids[n], info
        assert info["last_record_lsn"] == lsn and info["initdb_lsn"] == infos[0]["initdb_lsn"], \
            f"shard {n} differs from shard 0: {info} vs {infos[0]}"

    files = initdb_files(ps_env.remote, tenant, tl)
    all_pages = list(relation_pages(files))
    assert len(all_pages) > 500, len(all_pages)

    local = threading.local()

    def client(n):
        if not hasattr(local, "clients"):
            local.clients = {}
        if n not in local.clients:
            local.clients[n] = PageClient(placement[n])
        return local.clients[n]

    def check(i):
        spc, db, rel, fork, blk, page = all_pages[i]
        owner = key_owner(Key.rel_block(spc, db, rel, fork, blk), count, stripe)
        got = client(owner).page(tsids[owner], tl, spc, db, rel, fork, blk, lsn)
        assert got == page, f"shard {owner}: page {(spc, db, rel, fork, blk)} differs"
        other = (owner + 1 + i % (count - 1)) % count  # rotate over the non-owners
        r = client(other).get(tsids[other], tl, spc, db, rel, fork, blk, lsn)
        assert r.status_code == 404, \
            f"shard {other} served {(spc, db, rel, fork, blk)} owned by {owner}: {r.status_code}"
        return owner

    with ThreadPoolExecutor(4) as pool:
        owners = list(pool.map(check, range(0, len(all_pages), every)))
    assert set(owners) == set(range(count)), "pages should spread over every shard"
    for (spc, db, rel, fork), n in relation_sizes(files).items():
        owner = key_owner(Key.rel_block(spc, db, rel, fork, n), count, stripe)
        error_msg(client(owner).get(tsids[owner], tl, spc, db, rel, fork, n, lsn), 404)

    # Remote: each shard's index and layers live under its own prefix, in generation 1; the
    # keys in its layers are exactly the global keys plus the relation blocks it owns.
    owned = {n: set() for n in range(count)}
    for spc, db, rel, fork, blk, _ in all_pages:
        key = Key.rel_block(spc, db, rel, fork, blk)
        owned[key_owner(key, count, stripe)].add(key)
    global_keys = {}
    for n in range(count):
        prefix = f"tenants/{tsids[n]}/timelines/{tl}/"
        index_keys = ps_env.remote.index_keys(tsids[n], tl)
        assert set(index_keys) == {1}, (n, index_keys)
        index = json.loads(ps_env.remote.read(index_keys[1]))
        for name, meta in index["layer_metadata"].items():
            assert meta["shard"] == shard_index(n, count) and meta["generation"] == 1, (n, name)
        layers = layer_objects(ps_env.remote, prefix)
        assert {p.name for p in layers.values()} == set(index["layer_metadata"]), n
        stored = set()
        for key, parsed in layers.items():
            assert parsed.generation == 1, key
            lf = parse_layer(ps_env.remote.read(key))
            for e in lf.entries:
                assert parsed.key_start <= e.key < parsed.key_end, (key, e.key.hex())
                assert key_stored_on(e.key, n, count, stripe), \
                    f"shard {n} stores {e.key.hex()} (owner {key_owner(e.key, count, stripe)})"
                stored.add(e.key)
        rel_blocks = {k for k in stored if k.is_rel_block()}
        missing = owned[n] - rel_blocks
        assert not missing, f"shard {n} lacks {len(missing)} owned pages, e.g. {min(missing)}"
        global_keys[n] = {k for k in stored if k.is_global()}
        assert Key(3, 0, 0, 0, 0, 0) in global_keys[n], f"shard {n} lacks the control file"
        if n:
            assert not any(k.f1 == 1 for k in stored), f"shard {n} stores SLRU keys"
    assert all(global_keys[n] == global_keys[0] for n in range(count)), \
        "shards store different sets of global keys"


# ---- branches ----


def test_image_compression_of_the_tenant_config_shapes_the_layers(shared_ps_env, boot):
    """The tenant's image_compression decides how its layers store values: "disabled" raw (the
    layer objects outweigh the relation pages they hold), zstd at the level asked for; every
    page reads back the same whichever it is."""
    penv, ps = shared_ps_env, boot.ps
    raw = len(boot.pages) * BLCKSZ

    def layer_bytes(tenant, tl):
        keys = layer_objects(penv.remote, f"tenants/{tenant}/timelines/{tl}/")
        assert keys, (tenant, tl)
        return sum(penv.remote.size(k) for k in keys)

    default = layer_bytes(boot.tenant, boot.tl)
    sizes = {}
    for conf in ("disabled", "zstd(-5)"):
        tenant = new_id()
        penv.attach(ps, tenant, 1, tenant_conf={"image_compression": conf})
        info = bootstrap(ps, tenant, pg_version=15)
        sizes[conf] = layer_bytes(tenant, info["timeline_id"])
        pages = PageClient(ps)
        for k in sample_pages(boot, every=7):
            got = pages.page(tenant, info["timeline_id"], *k, info["last_record_lsn"])
            assert got == boot.pages[k], (conf, k)
        pages.close()
    assert sizes["disabled"] > raw > default, (sizes, raw, default)
    assert default < sizes["zstd(-5)"] < sizes["disabled"], (sizes, default)


def test_branch_reads_fall_through_to_ancestor(shared_ps_env, boot):
    ps, tenant, tl = boot.ps, boot.tenant, boot.tl
    lsn = timeline_info(ps, tenant, tl)["last_record_lsn"]

    b = branch(ps, tenant, tl)  # default: the ancestor's last LSN
    assert b["ancestor_timeline_id"] == tl and b["ancestor_lsn"] == lsn, b
    assert b["last_record_lsn"] == lsn and b["state"] == "Active", b
    explicit = branch(ps, tenant, tl, lsn=lsn)
    assert explicit["ancestor_lsn"] == lsn, explicit
    grandchild = branch(ps, tenant, b["timeline_id"])
    assert grandchild["ancestor_timeline_id"] == b["timeline_id"], grandchild

    pages = PageClient(ps)
    for k in sample_pages(boot, every=11, edges=False):
        expected = boot.pages[k]
        for child in (b, explicit, grandchild):
            assert pages.page(tenant, child["timeline_id"], *k, lsn) == expected, (child, k)
    spc, db, rel, fork = next(iter(relation_sizes(boot.files)))
    n = relation_sizes(boot.files)[(spc, db, rel, fork)]
    error_msg(pages.get(tenant, b["timeline_id"], spc, db, rel, fork, n, lsn), 404)
    pages.close()

    # Idempotency: an identical repeat is 201, other parameters for the same id 409.
    body = {"new_timeline_id": b["timeline_id"], "ancestor_timeline_id": tl}
    again = ok_json(create_timeline(ps, tenant, body), 201)
    assert again["timeline_id"] == b["timeline_id"] and again["ancestor_timeline_id"] == tl
    error_msg(create_timeline(ps, tenant, {"new_timeline_id": b["timeline_id"],
                                           "ancestor_timeline_id": explicit["timeline_id"]}), 409)
    error_msg(create_timeline(ps, tenant, {"new_timeline_id": b["timeline_id"],
                                           "pg_version": 15}), 409)

    # A branch point below what the ancestor can serve: 406, nothing created.
    before = set(timelines(ps, tenant))
    start = lsn_parse(timeline_info(ps, tenant, tl)["min_readable_lsn"])
    for bad in (lsn_fmt(start - 8), "0/1"):
        new = new_id()
        r = create_timeline(ps, tenant, {"new_timeline_id": new, "ancestor_timeline_id": tl,
                                         "ancestor_start_lsn": bad})
        error_msg(r, 406)
        error_msg(ps.get(f"/v1/tenant/{tenant}/timeline/{new}"), 404)
    assert set(timelines(ps, tenant)) == before


def test_concurrent_create_is_429(shared_ps_env, boot):
    """A creation of the same id while the first still runs: 429; afterwards an identical
    repeat is 201 with the same timeline (failpoint: the conversion is held for a while)."""
    ps, tenant = boot.ps, boot.tenant
    ok_json(ps.put("/v1/failpoints",
                   json=[{"name": "bootstrap-before-convert", "actions": "1*sleep(2000)"}]))
    tl = new_id()
    body = {"new_timeline_id": tl, "pg_version": 15, "existing_initdb_timeline_id": boot.tl}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(create_timeline, ps, tenant, body)
        time.sleep(0.5)
        error_msg(create_timeline(ps, tenant, body), 429)
        info = ok_json(first.result(), 201)
    assert info["timeline_id"] == tl
    again = ok_json(create_timeline(ps, tenant, body), 201)
    assert again["timeline_id"] == tl and again["last_record_lsn"] == info["last_record_lsn"]
    assert tl in timelines(ps, tenant)


def test_crash_during_create_leaves_nothing_and_retry_works(ps_env):
    """kill -9 while a creation runs (held before its conversion): nothing of the timeline is
    in remote storage, after the restart it is neither listed nor on disk, and the same request
    then succeeds."""
    ps = ps_env.pageserver()
    tenant = new_id()
    ps_env.attach(ps, tenant, 1)
    root = bootstrap(ps, tenant, pg_version=15)["timeline_id"]
    lsn = timeline_info(ps, tenant, root)["last_record_lsn"]
    ok_json(ps.put("/v1/failpoints",
                   json=[{"name": "bootstrap-before-convert", "actions": "sleep(10000)"}]))
    x = new_id()
    body = {"new_timeline_id": x, "pg_version": 15, "existing_initdb_timeline_id": root}
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(create_timeline, ps, tenant, body)
        time.sleep(0.7)
        assert not pending.done(), "creation finished despite the failpoint"
        ps.kill9()
        with pytest.raises(Exception):
            pending.result()
    prefix = f"tenants/{tenant}/timelines/{x}/"
    assert ps_env.remote.keys(prefix) == [], "objects of a creation that never answered"

    ps.start()  # re-attach: generation 2
    wait_ready(ps)
    wait_tenant_active(ps, tenant)
    assert x not in timelines(ps, tenant)
    assert not (ps.workdir / "tenants" / tenant / "timelines" / x).exists()
    error_msg(ps.get(f"/v1/tenant/{tenant}/timeline/{x}"), 404)

    info = ok_json(create_timeline(ps, tenant, body), 201)
    assert info["timeline_id"] == x and info["last_record_lsn"] == lsn, info
    files = initdb_files(ps_env.remote, tenant, root)
    spc, db, rel, fork, blk, page = next(relation_pages(files))
    assert PageClient(ps).page(tenant, x, spc, db, rel, fork, blk, lsn) == page
    assert ps_env.remote.index_keys(tenant, x).keys() == {2}


# ---- delete ----


def test_timeline_delete_removes_every_remote_object(shared_ps_env, boot):
    ps, tenant, remote = boot.ps, boot.tenant, shared_ps_env.remote
    parent = bootstrap(ps, tenant, pg_version=15, existing_initdb_timeline_id=boot.tl)
    x = parent["timeline_id"]
    child = branch(ps, tenant, x)["timeline_id"]
    x_prefix = f"tenants/{tenant}/timelines/{x}/"
    child_prefix = f"tenants/{tenant}/timelines/{child}/"
    assert layer_objects(remote, x_prefix), "the bootstrapped timeline has no layers"
    assert remote.index_keys(tenant, child).keys() == {1}
    others_before = {k: v for k, v in remote.snapshot(f"tenants/{tenant}/").items()
                     if not k.startswith((x_prefix, child_prefix))}
    x_before = remote.snapshot(x_prefix)

    # A parent with children: 412, nothing happens.
    error_msg(delete_timeline(ps, tenant, x), 412)
    assert timeline_info(ps, tenant, x)["state"] == "Active"
    assert remote.snapshot(x_prefix) == x_before

    # Delete the child: 202, a repeat while running 409 (or 404 if it already finished), 404
    # once done.
    r = delete_timeline(ps, tenant, child)
    assert r.status_code == 202, f"{r.status_code} {r.text}"
    r = delete_timeline(ps, tenant, child)
    assert r.status_code in (409, 404), f"repeat DELETE: {r.status_code} {r.text}"
    wait_timeline_gone(ps, tenant, child)
    error_msg(ps.get(f"/v1/tenant/{tenant}/timeline/{child}"), 404)

    # Now the parent can go, with all its layers.
    r = delete_timeline(ps, tenant, x)
    assert r.status_code == 202, f"{r.status_code} {r.text}"
    wait_timeline_gone(ps, tenant, x)
    flush_deletions(ps)
    for prefix in (x_prefix, child_prefix):
        wait_until(lambda p=prefix: remote.keys(p) == [], timeout=15,
                   what=f"every object under {prefix} deleted")
    assert not (ps.workdir / "tenants" / tenant / "timelines" / x).exists()
    assert not (ps.workdir / "tenants" / tenant / "timelines" / child).exists()
    assert x not in timelines(ps, tenant) and child not in timelines(ps, tenant)

    # Nothing else was touched.
    others_after = {k: v for k, v in remote.snapshot(f"tenants/{tenant}/").items()
                    if not k.startswith((x_prefix, child_prefix))}
    assert others_after == others_before

    # Tenant missing: 412.
    error_msg(delete_timeline(ps, new_id(), new_id()), 412)


# ---- corruption ----


def test_corrupt_layer_block_is_reported_not_served(shared_ps_env, boot):
    ps, tenant, remote = boot.ps, boot.tenant, shared_ps_env.remote
    y = bootstrap(ps, tenant, pg_version=15, existing_initdb_timeline_id=boot.tl)["timeline_id"]
    lsn = timeline_info(ps, tenant, y)["last_record_lsn"]
    location_before = ok_json(get_location(ps, tenant))

    # Find a layer holding at least two relation pages we know, pick a victim and a neighbour.
    victim = neighbour = None
    for key, parsed in sorted(layer_objects(remote, f"tenants/{tenant}/timelines/{y}/").items()):
        entries = [e for e in parse_layer(remote.read(key)).entries
                   if e.key.is_rel_block() and
                   (e.key.f2, e.key.f3, e.key.f4, e.key.f5, e.key.f6) in boot.pages]
        if len(entries) >= 3:
            victim, neighbour = entries[len(entries) // 2], entries[0]
            layer_key, layer = key, parsed
            break
    assert victim is not None, "no layer with relation pages found"

    # Flip bytes in the middle of the victim's blob payload, in place, in the remote object and
    # in any local copy of the layer.
    offset = victim.blob_offset + 9 + max(0, (victim.blob_len - 9) // 2)
    remote.flip_bytes(layer_key, offset, 2)
    local_dir = ps.workdir / "tenants" / tenant / "timelines" / y
    if local_dir.is_dir():
        for path in local_dir.iterdir():
            if path.name.startswith(layer.name):
                flip_file_bytes(path, offset, 2)

    pages = PageClient(ps)
    vk = victim.key
    r = pages.get(tenant, y, vk.f2, vk.f3, vk.f4, vk.f5, vk.f6, lsn)
    msg = error_msg(r, 500)
    assert "checksum" in msg.lower(), msg
    assert len(r.content) != BLCKSZ
    # Other keys of the same layer still read fine.
    nk = neighbour.key
    expected = boot.pages[(nk.f2, nk.f3, nk.f4, nk.f5, nk.f6)]
    assert pages.page(tenant, y, nk.f2, nk.f3, nk.f4, nk.f5, nk.f6, lsn) == expected
    # Again: still an error, never the damaged bytes.
    error_msg(pages.get(tenant, y, vk.f2, vk.f3, vk.f4, vk.f5, vk.f6, lsn), 500)
    pages.close()
    assert ok_json(get_location(ps, tenant)) == location_before


# ---- bad input ----


def test_timeline_bad_input_changes_nothing(shared_ps_env, boot):
    ps, tenant, tl = boot.ps, boot.tenant, boot.tl
    before = settled_timelines(ps, tenant)
    location_before = ok_json(get_location(ps, tenant))
    lsn = before[tl]["last_record_lsn"]
    base = f"/v1/tenant/{tenant}/timeline"

    for bad in ("xyz", tl[:31], tl + "0", "g" * 32):
        error_msg(ps.get(f"{base}/{bad}"), 400)
        error_msg(ps.delete(f"{base}/{bad}"), 400)
        error_msg(ps.get(f"{base}/{bad}/getpage",
                         params={"rel": "1664/0/1262", "fork": 0, "blkno": 0, "lsn": lsn}), 400)
        error_msg(ps.post(base, json={"new_timeline_id": bad}), 400)
    error_msg(ps.get(f"{base}/{new_id()}"), 404)
    error_msg(ps.get("/v1/tenant/xyz/timeline"), 400)
    error_msg(ps.get(f"/v1/tenant/{new_id()}/timeline/{tl}"), 404)

    new = new_id()
    for body in (
        {"new_timeline_id": new, "ancestor_timeline_id": "nothex"},
        {"new_timeline_id": new, "ancestor_timeline_id": tl, "ancestor_start_lsn": "zz"},
        {"new_timeline_id": new, "import_pgdata": {"idempotency_key": 5}},
        {"new_timeline_id": new, "import_pgdata": "yes"},
        {"new_timeline_id": new, "pg_version": "fifteen"},
        {"new_timeline_id": new, "bogus_field": 1},
        {"ancestor_timeline_id": tl},
    ):
        error_msg(create_timeline(ps, tenant, body), 400)
    r = ps.post(base, data=b"{", headers={"Content-Type": "application/json"})
    error_msg(r, 400)

    good = {"rel": "1664/0/1262", "fork": "0", "blkno": "0", "lsn": lsn}
    assert ps.get(f"{base}/{tl}/getpage", params=good).status_code == 200
    for change in ({"lsn": "zz"}, {"lsn": "0/0"}, {"lsn": "1"}, {"rel": "1664/0"},
                   {"rel": "a/b/c"}, {"rel": None}, {"fork": "9"}, {"fork": "x"},
                   {"blkno": "-1"}, {"blkno": None}):
        params = {k: v for k, v in {**good, **change}.items() if v is not None}
        error_msg(ps.get(f"{base}/{tl}/getpage", params=params), 400)

    assert timelines(ps, tenant) == before
    assert ok_json(get_location(ps, tenant)) == location_before
    wait_tenant_active(ps, tenant)
