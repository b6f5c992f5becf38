"""Foundation: the harness itself, and the life of both daemons (startup, health, metrics,
migrations, exit codes, errors, auth, signals, log reopening)."""

import json
import os
import signal
import socket
import threading
import time
import uuid

import pytest
import requests

from fixtures.auth import KeyPair, verify_jwt
from fixtures.daemons import Pageserver
from fixtures.process import run, wait_for_file
from fixtures.util import (
    StopWaiting,
    WaitTimeout,
    binary,
    free_port,
    latest_migration_version,
    port_is_free,
    wait_until,
)

MIGRATION_1_TABLES = {"tenant_shards", "nodes", "timeline_imports", "controllers"}
UNREACHABLE_DB = "postgresql://postgres@127.0.0.1:1/nowhere"
TENANT = "1f359dd625e519a1a4e8d7509690f6fc"


# ---- helpers ----


def assert_one_line(stderr: str, program: str) -> str:
    """Startup errors are exactly one line "<program>: ..." on stderr; returns it."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith(f"{program}: "), lines[0]
    return lines[0]


def assert_error_body(r: requests.Response, status: int) -> str:
    """An error reply: the status, Content-Type application/json, body {"msg": non-empty}."""
    assert r.status_code == status, f"{r.request.method} {r.url}: {r.status_code} {r.text}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    msg = r.json().get("msg")
    assert isinstance(msg, str) and msg, r.text
    return msg


def metric_samples(text: str, name: str):
    """[(labels dict, value)] of a metric in Prometheus text format."""
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        if series == name:
            out.append(({}, float(value)))
        elif series.startswith(name + "{") and series.endswith("}"):
            labels = {}
            for part in series[len(name) + 1 : -1].split('",'):
                if "=" in part:
                    k, v = part.split("=", 1)
                    labels[k.strip()] = v.strip().strip('"')
            out.append((labels, float(value)))
    return out


def public_tables(database):
    rows = database.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    return {r[0] for r in rows}


def schema_version(database) -> int:
    if "storcon_schema_version" not in public_tables(database):
        return 0
    return database.query("SELECT coalesce(max(version), 0) FROM storcon_schema_version")[0][0]


FAILPOINT_BODY = [{"name": "harness-noop", "actions": "off"}]


# ---- the harness itself ----


def test_wait_until_retries_and_reraises_last_error():
    calls = []

    def third_time_lucky():
        calls.append(1)
        if len(calls) < 3:
            raise ValueError(f"attempt {len(calls)}")
        return "ok"

    assert wait_until(third_time_lucky, timeout=5, interval=0.01) == "ok"
    assert len(calls) == 3

    attempts = []

    def always_fails():
        attempts.append(1)
        raise ValueError(f"attempt {len(attempts)}")

    t0 = time.monotonic()
    with pytest.raises(ValueError) as ei:
        wait_until(always_fails, timeout=0.3, interval=0.01)
    assert time.monotonic() - t0 >= 0.3
    assert len(attempts) > 2 and str(ei.value) == f"attempt {len(attempts)}"  # the LAST error

    with pytest.raises(WaitTimeout):
        wait_until(lambda: False, timeout=0.2, interval=0.01)
    assert wait_until(lambda: None, timeout=0.2) is None  # assertion-style functions succeed

    stops = []

    def give_up():
        stops.append(1)
        raise StopWaiting("pointless")

    with pytest.raises(StopWaiting):
        wait_until(give_up, timeout=5)
    assert len(stops) == 1


def test_free_port_unique_and_bindable():
    ports = [free_port() for _ in range(40)]
    assert len(set(ports)) == 40
    assert all(10000 <= p < 32768 for p in ports)  # below the ephemeral range
    assert all(port_is_free(p) for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))
        s.listen()
        assert not port_is_free(ports[0])


def test_process_helper_stops_by_pid(procs):
    sleeper = procs.spawn("sleeper", ["sleep", "60"])
    assert sleeper.is_running() and sleeper.pid > 0
    assert sleeper.stop(timeout=5) == -signal.SIGTERM
    assert sleeper.start().is_running()  # restart reuses the Process
    assert sleeper.kill9() == -signal.SIGKILL

    stubborn = procs.spawn(
        "stubborn",
        ["/usr/bin/python3", "-c",
         "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "print('ig' + 'noring', flush=True); time.sleep(60)"],
    )
    wait_until(lambda: "ignoring" in stubborn.log_text(), timeout=10)  # handler installed
    with pytest.raises(AssertionError, match="ignored SIGTERM"):
        stubborn.stop(timeout=0.5)
    assert not stubborn.is_running() and stubborn.returncode == -signal.SIGKILL

    quick = procs.spawn("quick", ["sh", "-c", "echo out; echo err >&2; exit 3"],
                        stderr_path=procs.directory / "quick.stderr")
    assert quick.wait_exit(5) == 3
    assert quick.stderr_text().strip() == "err" and "out" in quick.log_text()


def test_postgres_fixture_gives_fresh_databases(pg, database):
    assert database.query("SELECT current_database()")[0][0] == database.name
    database.query("CREATE TABLE only_here (x int)")
    other = pg.create_database()
    try:
        assert pg.query(other, "SELECT to_regclass('only_here') IS NULL")[0][0] is True
    finally:
        pg.drop_database(other)
    assert pg.query("postgres", "SELECT count(*) FROM pg_database WHERE datname = %s",
                    (other,))[0][0] == 0
    # The recorded pid is the postmaster itself, running as the postgres user.
    with open(f"/proc/{pg.pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    assert status["Name"].strip() == "postgres"
    if os.geteuid() == 0:
        import pwd

        assert int(status["Uid"].split()[0]) == pwd.getpwnam("postgres").pw_uid
    assert pg.query("postgres", "SELECT setting FROM pg_settings WHERE name = 'port'")[0][0] == \
        str(pg.port)


def test_fake_control_plane_records_and_replies(fake_control_plane):
    cp = fake_control_plane
    cp.respond("PUT", r"/notify-attach", status=503, body={"msg": "busy"}, times=1)
    cp.respond("GET", r"/v1/thing/\d+", handler=lambda req: (201, {"echo": req.path}))

    r = requests.put(cp.url + "/notify-attach", json={"tenant_id": TENANT},
                     headers={"Authorization": "Bearer abc"}, timeout=5)
    assert r.status_code == 503 and r.json() == {"msg": "busy"}
    r = requests.put(cp.url + "/notify-attach?x=1", json={"tenant_id": TENANT, "n": 2}, timeout=5)
    assert r.status_code == 200 and r.json() == {}  # the rule was used up; default reply
    r = requests.get(cp.url + "/v1/thing/42", timeout=5)
    assert r.status_code == 201 and r.json() == {"echo": "/v1/thing/42"}

    first = cp.wait_for_request("PUT", "/notify-attach")
    assert first.json == {"tenant_id": TENANT} and first.header("Authorization") == "Bearer abc"
    second = cp.wait_for_request("PUT", "/notify-attach", count=2)
    assert second.json["n"] == 2 and second.query == {"x": "1"}
    assert len(cp.received(method="PUT")) == 2 and len(cp.received(path=r"/v1/.*")) == 1

    # A request that arrives later wakes the waiter.
    threading.Timer(0.3, lambda: requests.post(cp.url + "/late", data=b"raw", timeout=5)).start()
    late = cp.wait_for_request("POST", "/late", timeout=5)
    assert late.body == b"raw" and late.json is None

    with pytest.raises(AssertionError, match="received"):
        cp.wait_for_request("DELETE", "/never", timeout=0.3)


# ---- storcon: startup, health, metrics ----


def test_storcon_status_ready_metrics(storcon):
    for path in ("/status", "/ready"):
        r = storcon.get(path)
        assert r.status_code == 200 and r.content == b"null", f"{path}: {r.status_code} {r.text}"
        assert r.headers["Content-Type"].startswith("application/json")
    for _ in range(3):
        assert storcon.get("/status").status_code == 200

    def status_counted():
        text = storcon.metrics()
        assert "# TYPE http_requests_total counter" in text
        samples = metric_samples(text, "http_requests_total")
        n = sum(v for labels, v in samples
                if labels.get("route") == "/status" and labels.get("method") == "GET")
        assert n >= 4, samples
        assert any(labels.get("status") == "200" for labels, _ in samples), samples

    wait_until(status_counted, timeout=5)


def test_storcon_migrations_up_down_up(storcon_factory, database):
    latest = latest_migration_version()
    assert latest >= 1, "no migrations/NNNN_*.up.sql found"

    sc = storcon_factory()
    assert MIGRATION_1_TABLES | {"storcon_schema_version"} <= public_tables(database)
    versions = [r[0] for r in database.query("SELECT version FROM storcon_schema_version")]
    assert 1 in versions and max(versions) == latest
    assert sc.stop() == 0

    res = run([binary("storcon"), "--dev", "--database-url", database.url, "--migrate-to", "0"],
              timeout=60)
    assert res.returncode == 0, res.stderr
    assert not (MIGRATION_1_TABLES & public_tables(database))
    assert schema_version(database) == 0

    sc.start()  # up again
    assert MIGRATION_1_TABLES <= public_tables(database)
    assert schema_version(database) == latest


def test_storcon_refuses_newer_schema(storcon_factory, database, tmp_path):
    sc = storcon_factory()
    assert sc.stop() == 0
    database.query("INSERT INTO storcon_schema_version (version, name, applied_at) "
                   "VALUES (999, 'from_the_future', now())")
    res = run([binary("storcon"), "--dev", "--listen", f"127.0.0.1:{free_port()}",
               "--database-url", database.url, "--log-file", tmp_path / "refuse.log"], timeout=60)
    assert res.returncode == 76, f"{res.returncode}: {res.stderr}"
    assert "999" in assert_one_line(res.stderr, "storcon")


def test_storcon_database_unreachable_exits_69(tmp_path):
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"  # nothing listens there
    t0 = time.monotonic()
    res = run([binary("storcon"), "--dev", "--listen", f"127.0.0.1:{free_port()}",
               "--database-url", dead, "--db-connect-timeout", "2s",
               "--log-file", tmp_path / "unreachable.log"], timeout=60)
    assert res.returncode == 69, f"{res.returncode}: {res.stderr}"
    assert_one_line(res.stderr, "storcon")
    assert time.monotonic() - t0 < 30


def test_storcon_port_in_use_exits_71(db_url, tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        res = run([binary("storcon"), "--dev", "--listen", f"127.0.0.1:{port}",
                   "--database-url", db_url, "--log-file", tmp_path / "inuse.log"], timeout=60)
    assert res.returncode == 71, f"{res.returncode}: {res.stderr}"
    assert_one_line(res.stderr, "storcon")


@pytest.mark.parametrize(
    "program,args,named",
    [
        ("storcon", ["--no-such-flag"], "no-such-flag"),
        ("storcon", ["--db-pool-size", "lots"], "db-pool-size"),
        ("storcon", ["--listen", "nowhere"], "listen"),
        ("storcon", ["--db-connect-timeout", "soon"], "db-connect-timeout"),
        ("pageserver", ["--no-such-flag"], "no-such-flag"),
        ("pageserver", ["--listen-http", "nowhere"], "listen-http"),
    ],
)
def test_bad_flag_exits_64(program, args, named, tmp_path):
    base = {
        "storcon": ["--dev", "--database-url", UNREACHABLE_DB],
        "pageserver": ["--workdir", tmp_path / "ps", "--id", "1"],
    }[program]
    res = run([binary(program), *base, *args], timeout=30)
    assert res.returncode == 64, f"{res.returncode}: {res.stderr}"
    assert named in assert_one_line(res.stderr, program)


def test_storcon_without_public_key_exits_78(db_url):
    res = run([binary("storcon"), "--listen", f"127.0.0.1:{free_port()}",
               "--database-url", db_url], timeout=30)
    assert res.returncode == 78, f"{res.returncode}: {res.stderr}"
    assert_one_line(res.stderr, "storcon")


# ---- storcon: HTTP errors ----


def test_storcon_unknown_route_and_wrong_method(storcon):
    assert_error_body(storcon.get("/no/such/route"), 404)
    assert_error_body(storcon.get("/v1/nonsense"), 404)
    assert_error_body(storcon.post("/status", json={}), 405)
    assert_error_body(storcon.delete("/ready"), 405)
    assert storcon.get("/status").status_code == 200  # still serving


def test_storcon_failpoints_route_validates_body(storcon):
    url = storcon.url + "/debug/v1/failpoints"
    bad = requests.put(url, data=b"{not json", headers={"Content-Type": "application/json"},
                       timeout=10)
    assert_error_body(bad, 400)
    assert_error_body(storcon.put("/debug/v1/failpoints", json={"name": "x"}), 400)  # not a list
    r = storcon.put("/debug/v1/failpoints", json=FAILPOINT_BODY)
    assert r.status_code == 200 and r.content == b"null", r.text  # Neon answers null


# ---- auth ----


def test_storconctl_token_is_eddsa_jwt(keys, tmp_path):
    from cryptography.exceptions import InvalidSignature

    claims = verify_jwt(keys.token("tenant", tenant_id=TENANT), keys.public_key)
    assert claims["scope"] == "tenant" and claims["tenant_id"] == TENANT
    assert verify_jwt(keys.token("admin"), keys.public_key)["scope"] == "admin"
    ttl_claims = verify_jwt(keys.token("admin", ttl="1h"), keys.public_key)
    assert abs(ttl_claims["exp"] - (time.time() + 3600)) < 120
    other = KeyPair(tmp_path / "other", "other")
    with pytest.raises(InvalidSignature):
        verify_jwt(keys.token("admin"), other.public_key)


def test_storcon_auth(storcon_factory, keys, tmp_path):
    sc = storcon_factory(auth=True)
    assert sc.get("/status", scope=False).status_code == 200  # health needs no token
    assert sc.get("/ready", scope=False).status_code == 200
    assert sc.get("/metrics", scope=False).status_code == 200

    path = "/debug/v1/failpoints"
    assert_error_body(sc.put(path, json=FAILPOINT_BODY, scope=False), 401)
    assert_error_body(sc.put(path, json=FAILPOINT_BODY, token="garbage"), 401)  # malformed
    assert_error_body(sc.put(path, json=FAILPOINT_BODY, token=keys.token("pageserverapi")), 403)
    foreign = KeyPair(tmp_path / "foreign", "foreign").token("admin")
    assert_error_body(sc.put(path, json=FAILPOINT_BODY, token=foreign), 403)
    r = sc.put(path, json=FAILPOINT_BODY, token=keys.token("admin"))
    assert r.status_code == 200 and r.content == b"null", r.text  # Neon answers null


def test_pageserver_auth(pageserver_factory, keys, tmp_path):
    ps = pageserver_factory(1, auth=True)[0]
    r = ps.get("/v1/status", scope=False)
    assert r.status_code == 200 and r.json() == {"id": ps.id}
    assert ps.get("/metrics", scope=False).status_code == 200

    path = "/v1/failpoints"
    assert_error_body(ps.put(path, json=FAILPOINT_BODY, scope=False), 401)
    tenant_token = keys.token("tenant", tenant_id=TENANT)
    assert_error_body(ps.put(path, json=FAILPOINT_BODY, token=tenant_token), 403)
    foreign = KeyPair(tmp_path / "foreign", "foreign").token("pageserverapi")
    assert_error_body(ps.put(path, json=FAILPOINT_BODY, token=foreign), 403)
    r = ps.put(path, json=FAILPOINT_BODY, token=keys.token("pageserverapi"))
    assert r.status_code == 200 and r.json() is None and r.text == "null", r.text


# ---- pageserver ----


def test_pageserver_status_metrics_metadata(pageserver):
    r = pageserver.get("/v1/status")
    assert r.status_code == 200 and r.json() == {"id": pageserver.id} and pageserver.id == 1
    assert_error_body(pageserver.get("/v1/no-such-route"), 404)

    def counted():
        samples = metric_samples(pageserver.metrics(), "http_requests_total")
        assert any(labels.get("route") == "/v1/status" and v >= 1 for labels, v in samples), \
            samples

    wait_until(counted, timeout=5)
    metadata = json.loads((pageserver.workdir / "metadata.json").read_text())
    assert isinstance(metadata, dict) and metadata


def test_pageserver_same_workdir_exits_71(pageserver, env, tmp_path):
    dup = Pageserver(env, pageserver.id, workdir=pageserver.workdir, name="pageserver_dup")
    res = run([*dup.argv(), "--log-file", tmp_path / "dup.log"], timeout=30)
    assert res.returncode == 71, f"{res.returncode}: {res.stderr}"
    assert_one_line(res.stderr, "pageserver")
    assert pageserver.get("/v1/status").json() == {"id": pageserver.id}  # the first is unharmed


def test_storcon_and_three_pageservers(storcon, pageserver_factory, env):
    servers = pageserver_factory(3)
    assert [ps.id for ps in servers] == [1, 2, 3]
    assert len({ps.http_port for ps in servers} | {ps.pg_port for ps in servers}) == 6
    assert len({ps.workdir for ps in servers}) == 3
    assert {ps.remote_storage for ps in servers} == {env.remote_storage}
    assert env.remote_storage.is_dir()
    for ps in servers:
        assert ps.get("/v1/status").json() == {"id": ps.id}
        assert (ps.workdir / "metadata.json").exists()
    assert storcon.get("/ready").status_code == 200


# ---- signals ----


@pytest.mark.parametrize("daemon", ["storcon", "pageserver"])
def test_sigterm_exits_zero(daemon, request):
    d = request.getfixturevalue(daemon)
    port = d.port if daemon == "storcon" else d.http_port
    assert d.stop(signal.SIGTERM) == 0
    assert port_is_free(port)
    d.start()  # restarts cleanly (for the pageserver: the workdir lock was released)
    assert d.stop(signal.SIGTERM) == 0


def test_sigint_exits_zero(storcon):
    assert storcon.stop(signal.SIGINT) == 0


@pytest.mark.parametrize("daemon", ["storcon", "pageserver"])
def test_sighup_reopens_log_file(daemon, request, tmp_path):
    log = tmp_path / f"{daemon}-rotating.log"
    if daemon == "storcon":
        d = request.getfixturevalue("storcon_factory")(log_file=log)
    else:
        d = request.getfixturevalue("pageserver_factory")(1, log_file=log)[0]
    wait_for_file(log)
    rotated = log.with_suffix(".log.1")
    os.rename(log, rotated)

    d.process.send_signal(signal.SIGHUP)
    wait_until(log.exists, timeout=10, what="log reopened under its original name")
    marker = f"/harness-sighup-{uuid.uuid4().hex}"
    assert d.get(marker).status_code == 404
    wait_until(lambda: marker in log.read_text(), timeout=5, what="request logged in new file")
    assert marker not in rotated.read_text()
    assert d.process.is_running()
    d.wait_healthy(5)
