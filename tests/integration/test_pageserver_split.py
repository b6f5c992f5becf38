"""The pageserver's PUT /v1/tenant/{tsid}/shard_split on its own (docs/split.md "Pageserver"):
an unsharded bootstrapped tenant becomes 4 children in the parent's generation whose indexes
reference the parent's layers (no layer object is copied); every page of the timeline and of a
branch reads back on its owning child and 404 on the others; the parent is gone; a repeat answers
the same children; a child splits again (4 -> 8); a failure before the parent's detach leaves the
parent serving and a repeat completes; bad input is refused with nothing changed."""

import json

from pageserver_env import (  # noqa: F401 - fixtures are used by name
    Key,
    PageClient,
    bootstrap,
    branch,
    error_msg,
    fake_storcon,
    get_location,
    initdb_files,
    key_owner,
    new_id,
    ok_json,
    ps_env,
    relation_pages,
    timeline_info,
    tsid_of,
    wait_tenant_active,
)


def split(ps, tsid, count, stripe=None):
    body = {"new_shard_count": count}
    if stripe is not None:
        body["new_stripe_size"] = stripe
    return ps.put(f"/v1/tenant/{tsid}/shard_split", json=body, timeout=60)


def layer_objects(remote, prefix):
    return [k for k in remote.keys(prefix) if "index_part" not in k and "heatmap" not in k]


def check_pages(ps, tenant, tl, pages, count, stripe, lsn, numbers=None):
    """Every page on its owner (when the owner is in numbers); every 10th also 404 on one
    non-owner."""
    read = 0
    with PageClient(ps) as client:
        for i, (spc, db, rel, fork, blk, page) in enumerate(pages):
            owner = key_owner(Key.rel_block(spc, db, rel, fork, blk), count, stripe)
            if numbers is not None and owner not in numbers:
                continue
            got = client.page(tsid_of(tenant, owner, count), tl, spc, db, rel, fork, blk, lsn)
            assert got == page, (owner, spc, db, rel, fork, blk)
            read += 1
            others = [n for n in (numbers or range(count)) if n != owner]
            if others and i % 10 == 0:
                other = others[i % len(others)]
                r = client.get(tsid_of(tenant, other, count), tl, spc, db, rel, fork, blk, lsn)
                assert r.status_code == 404, (other, owner, r.status_code)
    return read


def test_split_unsharded_into_four_then_a_child_into_eight(ps_env):
    ps = ps_env.pageserver()
    remote = ps_env.remote
    tenant, tl = new_id(), new_id()
    ps_env.attach(ps, tenant, 3)
    info = bootstrap(ps, tenant, tl, pg_version=15)
    lsn = info["last_record_lsn"]
    br = branch(ps, tenant, tl, lsn)["timeline_id"]
    files = initdb_files(remote, tenant, tl)
    pages = list(relation_pages(files))
    layers_before = sorted(layer_objects(remote, "tenants/"))
    assert layers_before

    # bad input: nothing changes
    error_msg(split(ps, tenant, 3), 400)
    error_msg(split(ps, tenant, 1), 400)
    error_msg(split(ps, tenant, 256), 400)
    error_msg(ps.put(f"/v1/tenant/{tenant}/shard_split", json={"new_shard_count": 4, "x": 1}),
              400)
    error_msg(ps.put(f"/v1/tenant/{tenant}/shard_split", json={"new_stripe_size": 8}), 400)
    error_msg(split(ps, tenant, 4, stripe=0), 400)
    error_msg(split(ps, new_id(), 4), 404)
    assert get_location(ps, tenant).json()["mode"] == "AttachedSingle"

    stripe = 1  # spreads every relation over all children
    answer = ok_json(split(ps, tenant, 4, stripe=stripe))
    children = [tsid_of(tenant, n, 4) for n in range(4)]
    assert answer == {"new_shards": children}, answer
    error_msg(get_location(ps, tenant), 404)  # the parent is gone here
    for n, c in enumerate(children):
        conf = ok_json(get_location(ps, c))
        assert conf["mode"] == "AttachedSingle" and conf["generation"] == 3, conf
        assert (conf["shard_number"], conf["shard_count"], conf["shard_stripe_size"]) == \
            (n, 4, stripe), conf
        wait_tenant_active(ps, c)
        for t in (tl, br):
            idx = json.loads(remote.read(f"tenants/{c}/timelines/{t}/index_part.json-00000003"))
            for name, meta in idx["layer_metadata"].items():
                assert meta["shard"] == "0000", (c, name, meta)  # the parent's objects
        assert timeline_info(ps, c, tl)["last_record_lsn"] == lsn
    assert sorted(layer_objects(remote, "tenants/")) == layers_before, "layer data was copied"

    assert check_pages(ps, tenant, tl, pages, 4, stripe, lsn) == len(pages)
    assert check_pages(ps, tenant, br, pages[::7], 4, stripe, lsn) == len(pages[::7])

    # a repeat (the first answer lost) answers the same children
    assert ok_json(split(ps, tenant, 4, stripe=stripe)) == answer
    # a new stripe size only from an unsharded parent
    error_msg(split(ps, children[1], 8, stripe=4), 400)

    # one child splits again: 0104 -> 0108 and 0508
    grand = ok_json(split(ps, children[1], 8))["new_shards"]
    assert grand == [tsid_of(tenant, 1, 8), tsid_of(tenant, 5, 8)], grand
    error_msg(get_location(ps, children[1]), 404)
    assert check_pages(ps, tenant, tl, pages, 8, stripe, lsn, numbers=(1, 5)) > 0
    # the other children are unaffected
    assert check_pages(ps, tenant, tl, pages[::3], 4, stripe, lsn, numbers=(0, 2, 3)) > 0


def test_split_failing_before_the_parent_detach_keeps_the_parent(ps_env):
    ps = ps_env.pageserver()
    tenant, tl = new_id(), new_id()
    ps_env.attach(ps, tenant, 1)
    lsn = bootstrap(ps, tenant, tl, pg_version=15)["last_record_lsn"]
    pages = list(relation_pages(initdb_files(ps_env.remote, tenant, tl)))[::5]

    ok_json(ps.put("/v1/failpoints", json=[{"name": "shard-split-before-parent-detach",
                                            "actions": "return"}]))
    error_msg(split(ps, tenant, 2), 500)
    # the parent still serves every page; the children exist (a detach or a repeat cleans up)
    with PageClient(ps) as client:
        for spc, db, rel, fork, blk, page in pages:
            assert client.page(tenant, tl, spc, db, rel, fork, blk, lsn) == page
    assert ok_json(get_location(ps, tenant))["mode"] == "AttachedSingle"

    ok_json(ps.put("/v1/failpoints", json=[{"name": "shard-split-before-parent-detach",
                                            "actions": "off"}]))
    answer = ok_json(split(ps, tenant, 2))
    assert answer["new_shards"] == [tsid_of(tenant, n, 2) for n in range(2)]
    error_msg(get_location(ps, tenant), 404)
    assert check_pages(ps, tenant, tl, pages, 2, 2048, lsn) == len(pages)
