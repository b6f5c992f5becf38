"""Timeline import on the storage controller (import.md, docs/import.md): the pageservers' status
upcalls (GET / POST /upcall/v1/timeline_import_status), the per-shard merge rules, generations,
the operator's view, finalisation (activate_post_import, one import_complete per import, only
once every shard is terminal, again after a restart) and deletes.

Real storcon and real pageservers throughout. The end-to-end tests let the pageservers' import
tasks run; the others drive the upcalls over HTTP exactly as a pageserver sends them (they are
storcon's public API), on an import row set up the way storcon's timeline create writes it (every
current shard {"InProgress": null}), so that each merge rule and failure can be reached on purpose.
"""

import json

from storcon_env import (  # noqa: F401 - fixtures are used by name
    cluster,
    cluster_factory,
    complete_notifications,
    db_statuses,
    error_msg,
    IMPORT_COMPLETE,
    import_body,
    new_id,
    ok_json,
    shard_tsids,
    tsid_of,
    wait_for,
    wait_row_gone,
)

UPCALL = "/upcall/v1/timeline_import_status"


def progress(jobs, completed):
    return {"InProgress": {"V1": {"jobs": jobs, "completed": completed,
                                  "import_plan_hash": 12345, "job_soft_size_limit": 1 << 28}}}


def shard_index(tsid: str) -> str:
    return tsid.split("-")[1] if "-" in tsid else "0000"


def insert_import_row(cl, tenant: str, timeline: str, tsids: list):
    """The row storcon's create writes: every current shard {"InProgress": null}."""
    statuses = {shard_index(t): {"InProgress": None} for t in tsids}
    cl.database.query(
        "INSERT INTO timeline_imports (tenant_id, timeline_id, shard_statuses) "
        "VALUES (%s, %s, %s::jsonb)", (tenant, timeline, json.dumps(statuses)))


def get_status(cl, tsid, tl, gen):
    return cl.storcon.get(UPCALL, json={"tenant_shard_id": tsid, "timeline_id": tl,
                                        "generation": gen})


def put_status(cl, tsid, tl, gen, status):
    return cl.storcon.post(UPCALL, json={"tenant_shard_id": tsid, "timeline_id": tl,
                                         "generation": gen, "status": status})


def test_import_status_upcalls_merge_and_generations(cluster_factory):
    cl = cluster_factory(1)
    tenant, _ = cl.create_tenant(count=2)
    tsids = shard_tsids(tenant, 2)
    tl = new_id()
    gens = cl.db_generations(tenant)
    insert_import_row(cl, tenant, tl, tsids)
    s0, s1 = tsids

    # GET: the shard's status as stored, in Neon's ShardImportStatus shape.
    assert ok_json(get_status(cl, s0, tl, gens[s0])) == {"InProgress": None}

    # Stale generations: 400 on GET, 412 on POST; nothing changes.
    stale = gens[s0] - 1
    assert stale >= 0
    error_msg(get_status(cl, s0, tl, stale), 400)
    error_msg(get_status(cl, s0, tl, gens[s0] + 1), 400)
    error_msg(put_status(cl, s0, tl, stale, "Done"), 412)
    assert db_statuses(cl, tenant, tl) == {shard_index(t): {"InProgress": None} for t in tsids}

    # Malformed bodies and statuses: 400, nothing changes.
    for bad in ("InProgress", "done", {"InProgress": {}}, {"Error": 5}, {"Done": None},
                {"InProgress": {"V1": {"jobs": 1, "completed": 2, "import_plan_hash": 1,
                                       "job_soft_size_limit": 1}}}, None):
        error_msg(put_status(cl, s0, tl, gens[s0], bad), 400)
    error_msg(cl.storcon.post(UPCALL, json={"tenant_shard_id": s0, "timeline_id": tl,
                                            "status": "Done"}), 400)  # no generation
    error_msg(cl.storcon.post(UPCALL, json={"tenant_shard_id": s0, "timeline_id": tl,
                                            "generation": gens[s0], "status": "Done",
                                            "extra": 1}), 400)
    error_msg(cl.storcon.get(UPCALL, json={"tenant_shard_id": s0, "timeline_id": "xyz",
                                           "generation": gens[s0]}), 400)
    error_msg(cl.storcon.get(UPCALL), 400)  # the GET carries a body
    assert db_statuses(cl, tenant, tl) == {shard_index(t): {"InProgress": None} for t in tsids}

    # Unknown import, unknown shard: 404.
    error_msg(get_status(cl, s0, new_id(), gens[s0]), 404)
    error_msg(put_status(cl, s0, new_id(), gens[s0], "Done"), 404)
    error_msg(get_status(cl, tsid_of(tenant, 0, 4), tl, 1), 404)
    error_msg(get_status(cl, tsid_of(new_id(), 0, 0), tl, 1), 404)

    # Progress, then Done; an identical repeat is a no-op.
    assert ok_json(put_status(cl, s0, tl, gens[s0], progress(4, 1))) is None
    assert ok_json(get_status(cl, s0, tl, gens[s0])) == progress(4, 1)
    assert ok_json(put_status(cl, s0, tl, gens[s0], progress(4, 1))) is None
    assert ok_json(put_status(cl, s0, tl, gens[s0], "Done")) is None
    assert ok_json(put_status(cl, s0, tl, gens[s0], "Done")) is None
    assert ok_json(get_status(cl, s0, tl, gens[s0])) == "Done"

    # A terminal status never changes: 409, nothing written.
    for other in ({"InProgress": None}, progress(4, 4), {"Error": "late"}):
        error_msg(put_status(cl, s0, tl, gens[s0], other), 409)
    assert db_statuses(cl, tenant, tl) == {shard_index(s0): "Done",
                                           shard_index(s1): {"InProgress": None}}

    # The operator's view: per-shard status and progress.
    ok_json(put_status(cl, s1, tl, gens[s1], progress(10, 7)))
    view = ok_json(cl.storcon.get(f"/control/v1/tenant/{tenant}/timeline/{tl}/import"))
    assert view["tenant_id"] == tenant and view["timeline_id"] == tl, view
    assert [(s["shard_id"], s["state"], s["jobs"], s["completed"]) for s in view["shards"]] == \
        [(s0, "Done", None, None), (s1, "InProgress", 10, 7)], view
    assert view["complete"] is False and view["done"] == 1 and view["shard_count"] == 2, view
    error_msg(cl.storcon.get(f"/control/v1/tenant/{tenant}/timeline/{new_id()}/import"), 404)
    error_msg(cl.storcon.get(f"/control/v1/tenant/{tenant}/timeline/zz/import"), 400)

    # Not every shard is terminal: no import_complete yet.
    assert complete_notifications(cl, tenant) == []


def test_import_create_strict_fans_out_and_records_row(cluster_factory, tmp_path):
    cl = cluster_factory(1)
    tenant, _ = cl.create_tenant(count=2)
    tsids = shard_tsids(tenant, 2)
    tl = new_id()
    src = tmp_path / "import-src"
    src.mkdir()

    # Strict: malformed import requests are 400 and change nothing.
    bad_bodies = [
        {"import_pgdata": {"idempotency_key": "k"}},
        {"import_pgdata": {"location": {"LocalFs": {"path": str(src)}}}},
        {"import_pgdata": {"idempotency_key": "", "location": {"LocalFs": {"path": str(src)}}}},
        {"import_pgdata": {"idempotency_key": "k", "location": {"LocalFs": {"path": "rel"}}}},
        {"import_pgdata": {"idempotency_key": "k", "location": {"Nfs": {"path": str(src)}}}},
        {"import_pgdata": {**import_body(src), "extra": 1}},
        {"import_pgdata": import_body(src), "pg_version": 15},
        {"import_pgdata": import_body(src), "ancestor_timeline_id": new_id()},
        {"import_pgdata": import_body(src), "existing_initdb_timeline_id": new_id()},
        {"import_pgdata": "yes"},
    ]
    for body in bad_bodies:
        msg = error_msg(cl.create_timeline(tenant, tl, **body), 400)
        assert "import_pgdata" in msg, (body, msg)
    assert db_statuses(cl, tenant, tl) is None
    error_msg(cl.storcon.get(f"/control/v1/tenant/{tenant}/timeline/{tl}/import"), 404)
    for s in cl.describe(tenant)["shards"]:
        assert s["is_importing"] is False, s

    # A create the pageservers refuse (AwsS3 without S3 credentials on them: 412) records nothing.
    s3 = {"idempotency_key": "key-s3",
          "location": {"AwsS3": {"region": "eu-west-1", "bucket": "b", "key": "k"}}}
    r = cl.create_timeline(tenant, tl, import_pgdata=s3)
    assert r.status_code >= 400 and "msg" in r.json(), (r.status_code, r.text)
    assert db_statuses(cl, tenant, tl) is None
    assert all(not s["is_importing"] for s in cl.describe(tenant)["shards"])

    r = cl.create_timeline(tenant, tl, import_pgdata=import_body(src))
    info = ok_json(r, 201)
    assert info["timeline_id"] == tl, info
    # The row: every current shard InProgress (the pageservers may have reported since).
    statuses = db_statuses(cl, tenant, tl)
    assert statuses is not None and sorted(statuses) == sorted(shard_index(t) for t in tsids)
    for s in cl.describe(tenant)["shards"]:
        assert s["is_importing"] is True, s
    # A repeat (same idempotency key) succeeds and keeps the row.
    ok_json(cl.create_timeline(tenant, tl, import_pgdata=import_body(src)), 201)
    assert sorted(db_statuses(cl, tenant, tl)) == sorted(shard_index(t) for t in tsids)


def test_deletes_remove_the_import_row(cluster_factory):
    cl = cluster_factory(1)
    tenant, _ = cl.create_tenant(count=2)
    tsids = shard_tsids(tenant, 2)
    gens = cl.db_generations(tenant)
    tl, other = new_id(), new_id()
    insert_import_row(cl, tenant, tl, tsids)
    insert_import_row(cl, tenant, other, tsids)
    ok_json(put_status(cl, tsids[0], tl, gens[tsids[0]], progress(3, 1)))

    # Timeline delete: the import is abandoned (the pageservers' delete cancels their task), its
    # row goes, later upcalls get 404; the other import is untouched.
    r = cl.delete_timeline(tenant, tl)
    assert r.status_code == 200, r.text
    assert db_statuses(cl, tenant, tl) is None
    error_msg(get_status(cl, tsids[0], tl, gens[tsids[0]]), 404)
    error_msg(put_status(cl, tsids[1], tl, gens[tsids[1]], "Done"), 404)
    error_msg(cl.storcon.get(f"/control/v1/tenant/{tenant}/timeline/{tl}/import"), 404)
    assert db_statuses(cl, tenant, other) is not None
    assert ok_json(get_status(cl, tsids[1], other, gens[tsids[1]])) == {"InProgress": None}

    # Tenant delete: every import row of the tenant goes with it.
    ok_json(cl.delete_tenant(tenant))
    assert db_statuses(cl, tenant, other) is None
    error_msg(get_status(cl, tsids[1], other, gens[tsids[1]]), 404)
    assert complete_notifications(cl, tenant) == []


def test_finalise_failed_import_notifies_once_after_every_shard(cluster_factory):
    import time
    cl = cluster_factory(1)
    tenant, _ = cl.create_tenant(count=2)
    s0, s1 = shard_tsids(tenant, 2)
    gens = cl.db_generations(tenant)
    tl = new_id()
    insert_import_row(cl, tenant, tl, [s0, s1])

    ok_json(put_status(cl, s0, tl, gens[s0], {"Error": "bad pg_control"}))
    ok_json(put_status(cl, s1, tl, gens[s1], progress(5, 5)))
    # Never before every shard is terminal.
    time.sleep(1.5)
    assert complete_notifications(cl, tenant) == []
    assert db_statuses(cl, tenant, tl) is not None

    ok_json(put_status(cl, s1, tl, gens[s1], {"Error": "disk full"}))
    req = cl.cp.wait_for_request("PUT", IMPORT_COMPLETE, timeout=30)
    assert req.json == {"tenant_id": tenant, "timeline_id": tl,
                        "error": "0002: bad pg_control; 0102: disk full"}, req.json
    wait_row_gone(cl, tenant, tl)
    error_msg(get_status(cl, s0, tl, gens[s0]), 404)
    error_msg(cl.storcon.get(f"/control/v1/tenant/{tenant}/timeline/{tl}/import"), 404)
    time.sleep(1.0)
    assert len(complete_notifications(cl, tenant)) == 1, complete_notifications(cl, tenant)
    # No activation for a failed import, and the tenant is no longer importing.
    assert all(not s["is_importing"] for s in cl.describe(tenant)["shards"])


def failed_import_refused_by_control_plane(cl, msg):
    """An unsharded tenant whose import row's one shard reported {"Error": msg}, with the control
    plane answering 500 to import_complete (one such request already seen): (tenant, tsid, tl)."""
    tenant, _ = cl.create_tenant(count=0)
    s0 = tsid_of(tenant)
    tl = new_id()
    insert_import_row(cl, tenant, tl, [s0])
    cl.cp.respond("PUT", IMPORT_COMPLETE, status=500, body={"msg": "down"})
    ok_json(put_status(cl, s0, tl, cl.db_generations(tenant)[s0], {"Error": msg}))
    cl.cp.wait_for_request("PUT", IMPORT_COMPLETE, timeout=30)
    return tenant, s0, tl


def test_restart_finalises_complete_import_again(cluster_factory):
    import time
    cl = cluster_factory(1)
    # The control plane fails the notification until after the restart.
    tenant, s0, tl = failed_import_refused_by_control_plane(cl, "source missing")
    time.sleep(1.0)
    assert db_statuses(cl, tenant, tl) == {"0000": {"Error": "source missing"}}, \
        "the row must stay until the control plane accepted the notification"

    cl.storcon.kill9()
    cl.cp.clear_rules()
    before = len(complete_notifications(cl, tenant))
    cl.restart_storcon()
    wait_row_gone(cl, tenant, tl)
    time.sleep(1.0)
    after = complete_notifications(cl, tenant)[before:]
    assert after == [{"tenant_id": tenant, "timeline_id": tl, "error": "0000: source missing"}], \
        after
    error_msg(get_status(cl, s0, tl, cl.db_generations(tenant)[s0]), 404)


def test_all_done_waits_for_activation_before_notifying(cluster_factory):
    """Every shard Done: storcon activates the timeline on every shard (activate_post_import)
    before it tells the control plane; a shard that does not activate (here: the pageserver has
    no such importing timeline, since the row was written without one) holds the notification
    back, and the row stays for the next attempt."""
    import time
    cl = cluster_factory(1)
    tenant, _ = cl.create_tenant(count=2)
    s0, s1 = shard_tsids(tenant, 2)
    gens = cl.db_generations(tenant)
    tl = new_id()
    insert_import_row(cl, tenant, tl, [s0, s1])
    ok_json(put_status(cl, s0, tl, gens[s0], "Done"))
    ok_json(put_status(cl, s1, tl, gens[s1], "Done"))

    def attempted():
        log = cl.storcon.process.log_text()
        assert "finalisation failed" in log and "activate_post_import" in log
        return True
    wait_for(attempted, 30, "a finalisation attempt that failed to activate")
    time.sleep(3.0)
    assert complete_notifications(cl, tenant) == [], "notified before every shard was activated"
    assert db_statuses(cl, tenant, tl) == {"0002": "Done", "0102": "Done"}
    view = ok_json(cl.storcon.get(f"/control/v1/tenant/{tenant}/timeline/{tl}/import"))
    assert view["complete"] is True and view["done"] == 2, view
    assert all(s["is_importing"] for s in cl.describe(tenant)["shards"])

    # A delete abandons it: the row goes, no notification ever, not importing any more.
    assert cl.delete_timeline(tenant, tl).status_code == 200
    assert db_statuses(cl, tenant, tl) is None
    time.sleep(1.0)
    assert complete_notifications(cl, tenant) == []
    assert all(not s["is_importing"] for s in cl.describe(tenant)["shards"])


def make_import_source(loc):
    """A cleanly shut down data directory (initdb's result) in the import location loc:
    loc/pgdata/, then loc/status/pgdata = {"done": true}."""
    import os
    import pwd
    import subprocess
    from fixtures.util import PG_BIN_DIR
    (loc / "status").mkdir(parents=True, exist_ok=True)
    argv = [str(PG_BIN_DIR / "initdb"), "-D", str(loc / "pgdata"), "-U", "postgres",
            "--no-sync", "-E", "UTF8", "--locale=C"]
    if os.geteuid() == 0:  # initdb refuses root: run it as postgres in a directory it owns
        pw = pwd.getpwnam("postgres")
        os.chmod(loc, 0o755)
        os.chown(loc, pw.pw_uid, pw.pw_gid)
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    (loc / "status" / "pgdata").write_text(json.dumps({"done": True}))


def test_import_end_to_end_activates_and_notifies_once(cluster_factory):
    """The whole flow with the pageservers' import tasks: create, every shard reports Done, activation, exactly one import_complete
    with error null, the row deleted, the timeline served on every shard."""
    import shutil
    import tempfile
    import time
    from pathlib import Path
    cl = cluster_factory(2)
    tenant, _ = cl.create_tenant(count=2)
    tl = new_id()
    loc = Path(tempfile.mkdtemp(prefix="storcon-import-"))  # readable by initdb's user
    try:
        r = cl.create_timeline(tenant, tl, import_pgdata=import_body(loc))
        ok_json(r, 201)
        make_import_source(loc)  # the pageservers wait for status/pgdata
        req = cl.cp.wait_for_request("PUT", IMPORT_COMPLETE, timeout=300)
        assert req.json == {"tenant_id": tenant, "timeline_id": tl, "error": None}, req.json
        wait_row_gone(cl, tenant, tl)
        time.sleep(1.0)
        assert len(complete_notifications(cl, tenant)) == 1
        assert all(not s["is_importing"] for s in cl.describe(tenant)["shards"])
        for tsid in shard_tsids(tenant, 2):
            ok_json(cl.storcon.get(f"/v1/tenant/{tsid}/timeline/{tl}"))
    finally:
        shutil.rmtree(loc, ignore_errors=True)


def run_storconctl(cl, *args, timeout=120):
    import subprocess
    from fixtures.util import binary
    return subprocess.run([str(binary("storconctl")), "--api", cl.storcon.url, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_storconctl_timelines_import(cluster_factory):
    import shutil
    import tempfile
    from pathlib import Path
    cl = cluster_factory(1)
    tenant, _ = cl.create_tenant(count=2)
    work = Path(tempfile.mkdtemp(prefix="storconctl-import-"))
    work.chmod(0o755)  # initdb runs as postgres below it
    try:
        src = work / "src"
        src.mkdir()
        make_import_source(src)  # src/pgdata: initdb's cleanly shut down result
        pgdata = src / "pgdata"
        root = work / "root"
        root.mkdir()

        # Refusals before anything is copied or created.
        r = run_storconctl(cl, "timelines", "import", tenant)
        assert r.returncode == 64 and "--pgdata" in r.stderr, r
        r = run_storconctl(cl, "timelines", "import", "nope", "--pgdata", pgdata)
        assert r.returncode == 64, r
        (pgdata / "postmaster.pid").write_text("1\n")
        r = run_storconctl(cl, "timelines", "import", tenant, "--pgdata", pgdata,
                           "--import-dir", root)
        assert r.returncode == 1 and "postmaster.pid" in r.stderr, r
        (pgdata / "postmaster.pid").unlink()
        odd = work / "data"
        shutil.copytree(pgdata, odd)
        r = run_storconctl(cl, "timelines", "import", tenant, "--pgdata", odd)
        assert r.returncode == 64 and "named pgdata" in r.stderr, r
        assert list(root.iterdir()) == []
        assert cl.database.query("SELECT count(*) FROM timeline_imports")[0][0] == 0

        # Copy into the import directory, status/pgdata, create through storcon, follow it.
        tl = new_id()
        r = run_storconctl(cl, "timelines", "import", tenant, "--pgdata", pgdata,
                           "--import-dir", root, "--timeline", tl, "--wait", timeout=400)
        loc = root / f"{tenant}-{tl}"
        assert json.loads((loc / "status" / "pgdata").read_text()) == {"done": True}
        assert (loc / "pgdata" / "global" / "pg_control").read_bytes() == \
            (pgdata / "global" / "pg_control").read_bytes()
        assert sorted(p.relative_to(loc / "pgdata") for p in (loc / "pgdata").rglob("*")) == \
            sorted(p.relative_to(pgdata) for p in pgdata.rglob("*"))
        assert r.returncode == 0, r
        assert "complete" in r.stdout and "shards finished" in r.stdout, r.stdout
        assert db_statuses(cl, tenant, tl) is None
        assert len(complete_notifications(cl, tenant)) == 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_tenant_delete_cancels_a_finalisation_that_keeps_failing(cluster_factory):
    import time
    cl = cluster_factory(1)
    tenant, s0, tl = failed_import_refused_by_control_plane(cl, "x")
    started = time.monotonic()
    ok_json(cl.delete_tenant(tenant))
    assert time.monotonic() - started < 30, "the delete waited for the finalisation"
    assert db_statuses(cl, tenant, tl) is None
    cl.cp.clear_rules()
    seen = len(complete_notifications(cl, tenant))
    time.sleep(3.0)  # past the next retry: it finds no row and tells nobody
    assert len(complete_notifications(cl, tenant)) == seen
    ops = ok_json(cl.storcon.get("/debug/v1/operations"))
    assert not [o for o in ops if o["kind"] == "import_finalize"], ops
