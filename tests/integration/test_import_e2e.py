"""Timeline import end to end (docs/import.md): storcon fans the create out to a 1-, 2- and 8-shard
tenant on real pageservers whose import tasks read one real source PGDATA (pgbench -i -s 2, a
second database, TOASTed values), report through the upcalls, are activated, and the control plane
is told exactly once, only after every shard reported; then pages of a sample of relations are
read back from their owning shard and compared with the source files, the non-owning shards do
not serve them, and the timeline's LSNs follow pg_control's checkpoint. A malformed source (a
relation file whose size is not a multiple of 8192) ends in one import_complete naming the file
while the same pageservers keep serving another tenant.
"""

import re
import time

import pytest

from pageserver_env import (
    BLCKSZ,
    Key,
    PageClient,
    import_base_lsn,
    key_owner,
    lsn_fmt,
    lsn_parse,
    make_location,
    pgbench_source,
    read_tree,
    relation_files,
    RELSEG_BLOCKS,
)
from storcon_env import (  # noqa: F401 - fixtures are used by name
    cluster_factory,
    complete_notifications,
    error_msg,
    import_body,
    new_id,
    ok_json,
    parse_tsid,
    wait_row_gone,
)

# Small jobs with a checkpoint (index upload + progress upcall) every 2 jobs: several jobs and
# progress reports per shard, not one job per shard.
IMPORT_ARGS = ["--import-poll-interval", "100ms", "--import-job-size", str(1 << 20),
               "--import-checkpoint-jobs", "2"]
SLOW_JOB = "sleep(400)"  # the import-before-job failpoint on one pageserver
STRIPE = 32  # pages (256 KiB): pgbench_accounts (~3,300 pages) spreads over all 8 shards
TOAST_ROWS = 40
TOAST_VALUE_CHUNKS = 3200  # md5 hex strings of 32 bytes: 100 KiB per value


def _setup_source(cluster) -> dict:
    """A second database with a table, a table whose values go to TOAST; returns the relation
    paths (relative to PGDATA) of the relations the tests read back."""
    cluster.query("postgres", "CREATE DATABASE second")
    cluster.query("second", "CREATE TABLE items (id int PRIMARY KEY, name text)")
    cluster.query("second", "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, "
                            "5000) g")
    cluster.query("postgres", "CREATE TABLE toasty (id int, v text)")
    # EXTERNAL: out of line and uncompressed, so every 100 KiB value really goes to TOAST
    cluster.query("postgres", "ALTER TABLE toasty ALTER COLUMN v SET STORAGE EXTERNAL")
    cluster.query("postgres",
                  "INSERT INTO toasty SELECT i, (SELECT string_agg(md5(i::text || '-' || j), '') "
                  f"FROM generate_series(1, {TOAST_VALUE_CHUNKS}) j) "
                  f"FROM generate_series(1, {TOAST_ROWS}) i")
    (paths,) = cluster.query("postgres", """
        SELECT pg_relation_filepath('pgbench_accounts'),
               (SELECT pg_relation_filepath(reltoastrelid) FROM pg_class
                 WHERE relname = 'toasty'),
               pg_relation_filepath('pg_class')""")
    (items,) = cluster.query("second", "SELECT pg_relation_filepath('items')")
    return {"pgbench_accounts": paths[0], "toast": paths[1], "pg_class": paths[2],
            "items": items[0]}


@pytest.fixture(scope="module")
def source():
    """(pgdata, {name: relation path}) of the module's one source, removed at the end."""
    yield from pgbench_source(2, _setup_source)


def sample_files(files: dict, rels: dict) -> list:
    """Every segment file of every fork of the sample relations (RelFile list)."""
    nodes = set(rels.values())
    out = [f for f in relation_files(files)
           if re.sub(r"(_(fsm|vm|init))?(\.\d+)?$", "", f.path) in nodes]
    for name, path in rels.items():
        assert path in {f.path for f in out}, (name, path)
    return out


def shard_map(cl, tenant: str) -> dict:
    """{shard number: (tsid, attached pageserver)} of the tenant's current shards."""
    out = {}
    for tsid, node in cl.attached(tenant).items():
        assert node is not None, cl.describe(tenant)
        out[parse_tsid(tsid)[1]] = (tsid, cl.ps(node))
    return out


def view_of(cl, tenant, tl):
    return cl.storcon.get(f"/control/v1/tenant/{tenant}/timeline/{tl}/import")


def wait_notified_watching(cl, tenant: str, tl: str, timeout: float = 150.0) -> list:
    """Poll the operator's view of the import until import_complete arrived and the row is gone;
    at every poll, a view that is not complete (some shard not terminal) must come with no
    notification received before it. Returns the views seen."""
    views = []
    deadline = time.monotonic() + timeout
    while True:
        notes = [n for n in complete_notifications(cl, tenant) if n.get("timeline_id") == tl]
        r = view_of(cl, tenant, tl)
        if r.status_code == 200:
            v = r.json()
            views.append(v)
            if not v["complete"]:
                assert not notes, ("import_complete before every shard was terminal", notes, v)
        else:
            error_msg(r, 404)  # the row is deleted only after the control plane answered
            notes = [n for n in complete_notifications(cl, tenant) if n.get("timeline_id") == tl]
            assert notes, "the import row vanished without an import_complete"
            return views
        assert time.monotonic() < deadline, f"no import_complete within {timeout}s: {views[-3:]}"
        time.sleep(0.1)


@pytest.mark.test_timeout(240)
@pytest.mark.parametrize("count", [1, 2, 8])
def test_import_through_storcon_reads_back(cluster_factory, source, tmp_path, count):
    pgdata, rels = source
    cl = cluster_factory(3 if count > 2 else 2, extra_args=IMPORT_ARGS)
    tenant, _ = cl.create_tenant(count=count, stripe=STRIPE)
    stripe = next(iter(cl.db_shards(tenant).values()))["shard_stripe_size"]
    assert stripe == STRIPE, cl.db_shards(tenant)
    shards = shard_map(cl, tenant)
    assert sorted(shards) == list(range(count)), shards
    key_count = count if count > 1 else 0  # key_owner: fewer than 2 shards own everything

    if count > 1:
        # The last shard's pageserver runs its jobs slowly, so the other shards are Done well
        # before it: storcon must hold the notification back meanwhile.
        slow = shards[count - 1][1]
        assert any(ps.id != slow.id for _, ps in shards.values()), "every shard on one node"
        cl.ps_failpoint(slow, "import-before-job", SLOW_JOB)

    tl = new_id()
    loc = make_location(pgdata, tmp_path)
    info = ok_json(cl.create_timeline(tenant, tl, import_pgdata=import_body(loc)), 201)
    assert info["timeline_id"] == tl, info
    assert all(s["is_importing"] for s in cl.describe(tenant)["shards"])

    views = wait_notified_watching(cl, tenant, tl)
    assert views, "the import row was never seen"
    if count > 1:  # seen: some shards Done, others not, and (the loop checked) no notification
        mixed = [v for v in views
                 if 0 < sum(s["state"] == "Done" for s in v["shards"]) < count]
        assert mixed, [[s["state"] for s in v["shards"]] for v in views]
    assert views[0]["shard_count"] == count, views[0]
    assert sorted(s["shard_id"] for s in views[0]["shards"]) == \
        sorted(tsid for tsid, _ in shards.values()), views[0]
    for v in views:  # every view: complete exactly when every shard is terminal (all Done here)
        assert v["complete"] == all(s["state"] == "Done" for s in v["shards"]), v
    notes = [n for n in complete_notifications(cl, tenant) if n.get("timeline_id") == tl]
    assert notes == [{"tenant_id": tenant, "timeline_id": tl, "error": None}], notes
    wait_row_gone(cl, tenant, tl)
    error_msg(view_of(cl, tenant, tl), 404)
    assert all(not s["is_importing"] for s in cl.describe(tenant)["shards"])
    time.sleep(2.0)  # past a finalisation retry: still exactly one notification
    assert complete_notifications(cl, tenant) == notes, complete_notifications(cl, tenant)

    # The timeline on every shard: Active, and the LSNs docs/import.md "Finish" states.
    base = import_base_lsn(pgdata)
    lsn = None
    for tsid, ps in shards.values():
        ti = ok_json(ps.get(f"/v1/tenant/{tsid}/timeline/{tl}"))
        assert ti["state"] == "Active" and ti["pg_version"] == 15, ti
        assert ti["disk_consistent_lsn"] == ti["last_record_lsn"], ti
        assert lsn_parse(ti["last_record_lsn"]) == base + 8, (ti, lsn_fmt(base))
        assert lsn_parse(ti["initdb_lsn"]) == base, (ti, lsn_fmt(base))
        lsn = lsn or ti["last_record_lsn"]
        assert ti["last_record_lsn"] == lsn, ti

    # Read back every page of every fork of the sample relations from its owner; a spread
    # sample of them must not be served by the shards that do not own them.
    files = read_tree(loc / "pgdata")
    sample = sample_files(files, rels)
    toast = [f for f in sample if f.path == rels["toast"]]
    assert len(toast[0].data) >= TOAST_ROWS * 100 * 1024 * 0.9, "the values did not go to TOAST"
    accounts = [f for f in sample if f.path == rels["pgbench_accounts"]]
    assert len(accounts[0].data) > 3000 * BLCKSZ, len(accounts[0].data)
    clients = {ps.id: PageClient(ps) for _, ps in shards.values()}
    owned = {n: 0 for n in shards}
    read = refused = 0
    try:
        for f in sample:
            nblocks = len(f.data) // BLCKSZ
            for i in range(nblocks):
                blk = f.segno * RELSEG_BLOCKS + i
                page = f.data[i * BLCKSZ:(i + 1) * BLCKSZ]
                owner = key_owner(Key.rel_block(f.spc, f.db, f.rel, f.fork, blk), key_count,
                                  stripe)
                tsid, ps = shards[owner]
                got = clients[ps.id].page(tsid, tl, f.spc, f.db, f.rel, f.fork, blk, lsn)
                assert got == page, (f.path, blk, owner)
                owned[owner] += 1
                read += 1
                if count > 1 and (i % 16 == 0 or i == nblocks - 1):
                    other = (owner + 1 + i // 16) % count
                    if other == owner:
                        other = (owner + 1) % count
                    otsid, ops = shards[other]
                    r = clients[ops.id].get(otsid, tl, f.spc, f.db, f.rel, f.fork, blk, lsn)
                    assert r.status_code == 404, (f.path, blk, owner, other, r.status_code,
                                                  r.text[:200])
                    refused += 1
    finally:
        for c in clients.values():
            c.close()
    assert read > 3300, read
    if count > 1:
        assert refused > 200, refused
        assert all(owned.values()), ("a shard owns none of the sample's pages", owned)


@pytest.mark.test_timeout(240)
def test_import_malformed_source_reports_once_and_keeps_serving(cluster_factory, source,
                                                                 tmp_path):
    pgdata, rels = source
    cl = cluster_factory(2, extra_args=IMPORT_ARGS)

    # Another tenant's timeline on the same pageservers.
    other, _ = cl.create_tenant(count=2, stripe=STRIPE)
    other_tl = new_id()
    ok_json(cl.create_timeline(other, other_tl), 201)

    tenant, _ = cl.create_tenant(count=2, stripe=STRIPE)
    tl = new_id()
    loc = make_location(pgdata, tmp_path)
    bad = loc / "pgdata" / rels["items"]
    size = bad.stat().st_size
    assert size >= BLCKSZ and size % BLCKSZ == 0, size
    with open(bad, "r+b") as f:
        f.truncate(size - 5)
    ok_json(cl.create_timeline(tenant, tl, import_pgdata=import_body(loc)), 201)

    views = wait_notified_watching(cl, tenant, tl)
    assert views, "the import row was never seen"
    notes = [n for n in complete_notifications(cl, tenant) if n.get("timeline_id") == tl]
    assert len(notes) == 1, notes
    note = notes[0]
    assert note["tenant_id"] == tenant and note["timeline_id"] == tl, note
    err = note["error"]
    assert isinstance(err, str) and err, note
    # "<NNCC>: <msg>; <NNCC>: <msg>", failed shards in shard order, each naming the file
    # Every shard plans over every file of the source, so both refuse it.
    parts = err.split("; ")
    assert [p.split(": ", 1)[0] for p in parts] == ["0002", "0102"], err
    for p in parts:
        assert rels["items"] in p and "not a multiple of 8192" in p, (p, rels["items"])
    wait_row_gone(cl, tenant, tl)
    time.sleep(2.0)
    assert complete_notifications(cl, tenant) == notes, complete_notifications(cl, tenant)
    assert all(not s["is_importing"] for s in cl.describe(tenant)["shards"])

    # The failed timeline is not served; the other tenant still is, and can branch.
    for tsid, node in cl.attached(tenant).items():
        ps = cl.ps(node)
        assert tl not in {t["timeline_id"] for t in ok_json(ps.get(f"/v1/tenant/{tsid}/timeline"))}
    for tsid, node in cl.attached(other).items():
        ti = ok_json(cl.ps(node).get(f"/v1/tenant/{tsid}/timeline/{other_tl}"))
        assert ti["state"] == "Active", ti
    ok_json(cl.create_timeline(other, new_id(), ancestor_timeline_id=other_tl), 201)
