"""Pageserver timeline import from a PGDATA directory (docs/import.md): the import_pgdata create
mode, the not-served IMPORTING state, the import task (wait for status/pgdata, plan, one image
layer per job) and activate_post_import; a small pgbench PGDATA imported into 1 and 2 shards and
read back page by page on each page's owning shard."""

import json
from pathlib import Path

import pytest

from fixtures.s3 import REGION as S3_REGION
from fixtures.util import wait_until
from pageserver_env import (  # noqa: F401 - fixtures are used by name
    create_timeline,
    delete_timeline,
    error_msg,
    fake_storcon,
    key_owner,
    location_conf,
    make_location,
    mark_done,
    pgbench_source,
    put_location,
    read_tree,
    Key,
    new_id,
    ok_json,
    PageClient,
    ps_env,
    relation_pages,
    timelines,
    tsid_of,
    wait_timeline_gone,
)

POLL = ["--import-poll-interval", "100ms"]


@pytest.fixture(scope="module")
def pgbench_pgdata():
    """A cleanly shut down PGDATA after `pgbench -i -s 1` (copied without WAL): its path."""
    for pgdata, _ in pgbench_source(1):
        yield pgdata


def import_body(tl: str, loc: Path, key: str = "key-1") -> dict:
    return {"new_timeline_id": tl,
            "import_pgdata": {"idempotency_key": key, "location": {"LocalFs": {"path": str(loc)}}}}


def activate(ps, tsid: str, tl: str):
    return ps.put(f"/v1/tenant/{tsid}/timeline/{tl}/activate_post_import")


def wait_activated(ps, tsid: str, tl: str, timeout: float = 120.0) -> dict:
    def ready():
        r = activate(ps, tsid, tl)
        assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"
        return r.json()
    return wait_until(ready, timeout=timeout, interval=0.2, what="activate_post_import")


def test_import_unsharded_reads_back_every_page(ps_env, pgbench_pgdata, tmp_path):
    ps = ps_env.pageserver(extra_args=POLL)
    tenant, tl = new_id(), new_id()
    ps_env.attach(ps, tenant, 1)
    loc = make_location(pgbench_pgdata, tmp_path, done=False)

    info = ok_json(create_timeline(ps, tenant, import_body(tl, loc)), 201)
    assert info["timeline_id"] == tl and info["state"] == "Loading", info
    # importing: not listed, not readable, activation 503 while status/pgdata is missing
    assert tl not in timelines(ps, tenant)
    error_msg(ps.get(f"/v1/tenant/{tenant}/timeline/{tl}"), 404)
    assert "still running" in error_msg(activate(ps, tenant, tl), 503)
    # idempotency: same key 201, another key 409, another mode 409
    assert ok_json(create_timeline(ps, tenant, import_body(tl, loc)), 201)["timeline_id"] == tl
    assert "other parameters" in error_msg(
        create_timeline(ps, tenant, import_body(tl, loc, "key-2")), 409)
    error_msg(create_timeline(ps, tenant, {"new_timeline_id": tl, "pg_version": 15}), 409)
    # the index records the import in progress
    idx = ps_env.remote.index_keys(tenant, tl)
    body = json.loads(ps_env.remote.read(max(idx.items())[1]))
    assert body["import_pgdata"]["V1"]["InProgress"]["idempotency_key"] == "key-1", body
    assert body["import_pgdata"]["V1"]["InProgress"]["location"] == {
        "LocalFs": {"path": str(loc)}}, body

    assert ps_env.storcon.import_posts(tenant) == []  # nothing to report while waiting
    mark_done(loc)
    info = wait_activated(ps, tenant, tl)
    assert ps_env.storcon.import_posts(tenant)[-1] == "Done"
    assert info["state"] == "Active" and info["pg_version"] == 15, info
    assert tl in timelines(ps, tenant)
    assert ok_json(activate(ps, tenant, tl))["timeline_id"] == tl  # a repeat is 200
    idx = ps_env.remote.index_keys(tenant, tl)
    body = json.loads(ps_env.remote.read(max(idx.items())[1]))
    assert "Done" in body["import_pgdata"]["V1"], body
    assert body["layer_metadata"], body

    lsn = info["last_record_lsn"]
    with PageClient(ps) as client:
        n = client.check_all(tenant, tl, read_tree(loc / "pgdata"), lsn)
    assert n > 2000  # pgbench -s 1: pgbench_accounts alone has ~1640 pages


def test_import_from_an_s3_location(ps_env, pgbench_pgdata):
    """The AwsS3 location: PGDATA and status/pgdata read from the object store (the pageserver's
    own S3 endpoint and credentials). Runs in the integration-s3 stage."""
    if not ps_env.env.s3_mode():
        pytest.skip("needs the S3 server: the integration-s3 stage (REMOTE_STORAGE=s3)")
    ps = ps_env.pageserver(extra_args=POLL)
    tenant, tl = new_id(), new_id()
    ps_env.attach(ps, tenant, 1)
    s3 = ps_env.env.s3
    client = s3.client()
    prefix = f"imports/{tl}"
    files = read_tree(pgbench_pgdata)
    for rel, data in files.items():
        client.put(f"{prefix}/pgdata/{rel}", data)
    loc = {"AwsS3": {"region": S3_REGION, "bucket": s3.bucket, "key": prefix}}
    body = {"new_timeline_id": tl, "import_pgdata": {"idempotency_key": "k", "location": loc}}
    assert ok_json(create_timeline(ps, tenant, body), 201)["state"] == "Loading"
    assert "still running" in error_msg(activate(ps, tenant, tl), 503)  # no status/pgdata yet
    client.put(f"{prefix}/status/pgdata", b'{"done": true}')
    info = wait_activated(ps, tenant, tl)
    assert ps_env.storcon.import_posts(tenant)[-1] == "Done"
    idx = ps_env.remote.index_keys(tenant, tl)
    assert "Done" in json.loads(ps_env.remote.read(max(idx.items())[1]))["import_pgdata"]["V1"]
    lsn = info["last_record_lsn"]
    with PageClient(ps) as pages:
        assert pages.check_all(tenant, tl, files, lsn) > 2000
    # the S3 requests are counted: method and status class, latency, bytes
    m = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
         for line in ps.metrics().splitlines() if line.startswith("remote_storage_s3_")}
    assert m['remote_storage_s3_requests_total{method="GET",status="2xx"}'] > 2
    assert m['remote_storage_s3_requests_total{method="PUT",status="2xx"}'] > 0
    assert m['remote_storage_s3_bytes_total{direction="down"}'] > 10 << 20  # the pgbench tables
    assert m['remote_storage_s3_request_seconds_count{method="GET"}'] > 2


def test_import_two_shards_pages_on_their_owners(ps_env, pgbench_pgdata, tmp_path):
    ps = ps_env.pageserver(extra_args=POLL)
    tenant, tl, count, stripe = new_id(), new_id(), 2, 8
    tsids = [tsid_of(tenant, n, count) for n in range(count)]
    for n in range(count):
        ps_env.attach(ps, tsids[n], 1, shard_number=n, shard_count=count, stripe=stripe)
    loc = make_location(pgbench_pgdata, tmp_path)
    for t in tsids:
        ok_json(create_timeline(ps, t, import_body(tl, loc)), 201)
    infos = [wait_activated(ps, t, tl) for t in tsids]
    lsn = infos[0]["last_record_lsn"]
    assert infos[1]["last_record_lsn"] == lsn, infos

    files = read_tree(loc / "pgdata")
    client = PageClient(ps)
    owned = [0, 0]
    try:
        for spc, db, rel, fork, blk, page in relation_pages(files):
            owner = key_owner(Key.rel_block(spc, db, rel, fork, blk), count, stripe)
            owned[owner] += 1
            assert client.page(tsids[owner], tl, spc, db, rel, fork, blk, lsn) == page
            if blk % 64 == 0:  # spot-check that the other shard does not serve it
                r = client.get(tsids[1 - owner], tl, spc, db, rel, fork, blk, lsn)
                assert r.status_code == 404, (r.status_code, r.text[:200])
    finally:
        client.close()
    assert min(owned) > 0, owned


def test_import_bad_requests_change_nothing(ps_env, tmp_path):
    ps = ps_env.pageserver(extra_args=POLL)
    tenant, tl = new_id(), new_id()
    ps_env.attach(ps, tenant, 1)
    good = {"idempotency_key": "k", "location": {"LocalFs": {"path": str(tmp_path)}}}
    for imp in (
        None,
        {},
        {"idempotency_key": "k"},
        {"location": good["location"]},
        {**good, "extra": 1},
        {**good, "idempotency_key": ""},
        {**good, "location": {}},
        {**good, "location": {"LocalFs": {"path": "relative/dir"}}},
        {**good, "location": {"LocalFs": {}}},
        {**good, "location": {"LocalFs": {"path": "/x", "more": 1}}},
        {**good, "location": {"LocalFs": {"path": "/x"},
                              "AwsS3": {"region": "r", "bucket": "b", "key": "k"}}},
        {**good, "location": {"Local": {"path": "/x"}}},
        {**good, "location": {"AwsS3": {"region": "r", "bucket": "b"}}},
    ):
        error_msg(create_timeline(ps, tenant, {"new_timeline_id": tl, "import_pgdata": imp}), 400)
    error_msg(create_timeline(ps, tenant, {"new_timeline_id": tl, "pg_version": 15,
                                           "import_pgdata": good}), 400)
    s3 = {**good, "location": {"AwsS3": {"region": "r", "bucket": "bucket-x", "key": "k?x"}}}
    create = {"new_timeline_id": tl, "import_pgdata": s3}
    if ps_env.env.s3_mode():  # credentials configured: a location that is no URL is 400
        assert "AwsS3" in error_msg(create_timeline(ps, tenant, create), 400)
    else:  # no S3 credentials on this pageserver: 412
        assert "credentials" in error_msg(create_timeline(ps, tenant, create), 412)
    error_msg(activate(ps, tenant, tl), 404)
    assert timelines(ps, tenant) == {}
    assert ps_env.remote.index_keys(tenant, tl) == {}


def test_import_waiting_is_cancelled_by_delete(ps_env, tmp_path):
    ps = ps_env.pageserver(extra_args=POLL)
    tenant, tl = new_id(), new_id()
    ps_env.attach(ps, tenant, 1)
    loc = tmp_path / "never"  # status/pgdata never appears
    ok_json(create_timeline(ps, tenant, import_body(tl, loc)), 201)
    assert "still running" in error_msg(activate(ps, tenant, tl), 503)
    assert delete_timeline(ps, tenant, tl).status_code == 202
    wait_timeline_gone(ps, tenant, tl)
    error_msg(activate(ps, tenant, tl), 404)
    assert timelines(ps, tenant) == {}  # still serving


@pytest.mark.parametrize("case", ["truncated_control", "bad_relsize", "bad_name", "bad_status",
                                  "symlink_out"])
def test_import_malformed_source_fails_with_message(ps_env, pgbench_pgdata, tmp_path, case):
    ps = ps_env.pageserver(extra_args=POLL)
    tenant, tl = new_id(), new_id()
    ps_env.attach(ps, tenant, 1)
    loc = make_location(pgbench_pgdata, tmp_path)
    pg = loc / "pgdata"
    if case == "truncated_control":
        data = (pg / "global" / "pg_control").read_bytes()
        (pg / "global" / "pg_control").write_bytes(data[:100])
    elif case == "bad_relsize":
        db = sorted(p for p in (pg / "base").iterdir() if p.name.isdigit())[-1]
        rel = sorted(p for p in db.iterdir() if p.name.isdigit() and p.stat().st_size > 0)[0]
        with open(rel, "ab") as f:
            f.write(b"x" * 100)
    elif case == "bad_name":
        (pg / "base" / "12345x").mkdir()
    elif case == "bad_status":
        mark_done(loc, b"not json")
    elif case == "symlink_out":
        db = sorted(p for p in (pg / "base").iterdir() if p.name.isdigit())[-1]
        rel = sorted(p for p in db.iterdir() if p.name.isdigit() and p.stat().st_size > 0)[0]
        outside = tmp_path / "outside"
        outside.write_bytes(rel.read_bytes())
        rel.unlink()
        rel.symlink_to(outside)
    ok_json(create_timeline(ps, tenant, import_body(tl, loc)), 201)

    def failed():
        r = activate(ps, tenant, tl)
        assert r.status_code == 409, f"{r.status_code} {r.text[:300]}"
        return r.json()["msg"]
    msg = wait_until(failed, timeout=60, interval=0.2, what="import failure")
    assert "import failed" in msg, msg
    posts = ps_env.storcon.wait_for(lambda fs: fs.import_posts(tenant), what="Error upcall")
    assert list(posts[-1]) == ["Error"] and posts[-1]["Error"] in msg, (posts, msg)
    assert tl not in timelines(ps, tenant)
    # the pageserver keeps serving: another tenant's timeline can still be created
    assert delete_timeline(ps, tenant, tl).status_code == 202
    wait_timeline_gone(ps, tenant, tl)


def test_import_resumes_after_kill9(ps_env, pgbench_pgdata, tmp_path):
    """Small jobs (64 KiB each), a checkpoint every 4 jobs, each job slowed down: kill -9 once a
    progress was reported, restart (new generation through re-attach), and the import resumes
    after the recorded job instead of starting over; every page still reads back."""
    args = POLL + ["--import-job-size", "65536", "--import-checkpoint-jobs", "4",
                   "--import-parallelism", "3",
                   "--failpoints", "import-before-job=sleep(100)"]
    ps = ps_env.pageserver(extra_args=args)
    tenant, tl = new_id(), new_id()
    ps_env.attach(ps, tenant, 1)
    loc = make_location(pgbench_pgdata, tmp_path)
    ok_json(create_timeline(ps, tenant, import_body(tl, loc)), 201)

    def progressed(fs):
        done = [p["InProgress"]["V1"]["completed"] for p in fs.import_posts(tenant)
                if isinstance(p, dict) and "InProgress" in p]
        return done and max(done) >= 8 and max(done)
    completed = ps_env.storcon.wait_for(progressed, timeout=120, what="progress >= 8 jobs")
    first = ps_env.storcon.import_status(tenant, tl)["InProgress"]["V1"]
    jobs = first["jobs"]
    assert jobs > 2 * completed, first  # the kill lands well before the end
    ps.kill9()
    gen_before = ps_env.storcon.latest(tenant)
    ps.start()
    info = wait_activated(ps, tenant, tl)
    assert ps_env.storcon.latest(tenant) > gen_before
    assert ps_env.storcon.import_posts(tenant)[-1] == "Done"

    idx = ps_env.remote.index_keys(tenant, tl)
    body = json.loads(ps_env.remote.read(idx[max(g for g in idx if g is not None)]))
    gens = [m["generation"] for m in body["layer_metadata"].values()]
    assert len(gens) == jobs, (len(gens), jobs)
    redone = sum(1 for g in gens if g == ps_env.storcon.latest(tenant))
    assert 0 < redone <= jobs - completed, (redone, jobs, completed)

    lsn = info["last_record_lsn"]
    with PageClient(ps) as client:
        assert client.check_all(tenant, tl, read_tree(loc / "pgdata"), lsn) > 2000


def test_import_survives_detach_and_reattach(ps_env, pgbench_pgdata, tmp_path):
    """Detaching a shard whose import waits for status/pgdata cancels the task; attaching it
    again (next generation) starts it again from the index, and it completes."""
    ps = ps_env.pageserver(extra_args=POLL)
    tenant, tl = new_id(), new_id()
    ps_env.attach(ps, tenant, 1)
    loc = make_location(pgbench_pgdata, tmp_path, done=False)
    ok_json(create_timeline(ps, tenant, import_body(tl, loc)), 201)
    ok_json(put_location(ps, tenant, location_conf("Detached")))
    error_msg(activate(ps, tenant, tl), 404)
    ps_env.attach(ps, tenant)
    assert "still running" in error_msg(activate(ps, tenant, tl), 503)
    mark_done(loc)
    info = wait_activated(ps, tenant, tl)
    assert info["state"] == "Active", info
    assert tl in timelines(ps, tenant)


def test_import_waiting_survives_graceful_restart(ps_env, tmp_path):
    """A shutdown cancels a waiting import (SIGTERM exits 0 promptly); after the restart the
    timeline is Importing again and still waits."""
    ps = ps_env.pageserver(extra_args=POLL)
    tenant, tl = new_id(), new_id()
    ps_env.attach(ps, tenant, 1)
    ok_json(create_timeline(ps, tenant, import_body(tl, tmp_path / "never")), 201)
    assert ps.stop(timeout=10) == 0
    ps.start()
    wait_until(lambda: "still running" in error_msg(activate(ps, tenant, tl), 503),
               timeout=30, what="import waiting again")
    assert tl not in timelines(ps, tenant)
    assert delete_timeline(ps, tenant, tl).status_code == 202
    wait_timeline_gone(ps, tenant, tl)


def test_import_file_shrinking_mid_import_fails_cleanly(ps_env, pgbench_pgdata, tmp_path):
    """The largest relation file is truncated after the plan was made (jobs are slowed down): the
    job that reads it fails with a message naming the file, the Error upcall carries it, and the
    pageserver keeps serving."""
    args = POLL + ["--import-job-size", "65536", "--import-checkpoint-jobs", "2",
                   "--failpoints", "import-before-job=sleep(100)"]
    ps = ps_env.pageserver(extra_args=args)
    tenant, tl = new_id(), new_id()
    ps_env.attach(ps, tenant, 1)
    loc = make_location(pgbench_pgdata, tmp_path)
    biggest = max((p for p in (loc / "pgdata" / "base").rglob("*") if p.is_file()),
                  key=lambda p: p.stat().st_size)
    assert biggest.stat().st_size > 1 << 20, biggest
    ok_json(create_timeline(ps, tenant, import_body(tl, loc)), 201)
    ps_env.storcon.wait_for(lambda fs: fs.import_posts(tenant), timeout=60, what="a progress")
    with open(biggest, "r+b") as f:
        f.truncate(8192)
    posts = ps_env.storcon.wait_for(
        lambda fs: [p for p in fs.import_posts(tenant) if isinstance(p, dict) and "Error" in p],
        timeout=120, what="Error upcall")
    msg = posts[-1]["Error"]
    assert biggest.name in msg, msg
    assert "import failed" in error_msg(activate(ps, tenant, tl), 409)
    assert tl not in timelines(ps, tenant)
