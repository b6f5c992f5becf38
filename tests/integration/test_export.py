"""Full export of a timeline (docs/page-service.md "Export", "basebackup"): a pgbench -i -s 1
database (plus a second database, an unlogged table and a TOASTed value) is imported into 1-, 2-
and 8-shard tenants through storcon; `storconctl timelines export` writes a data directory (and a
tar) read from every shard; every relation file and SLRU segment of the export is byte-identical
to the source's; a vanilla Postgres 15 (the postgres user, a free port, stopped by its pid) starts
on it, answers the same queries with the same results, and amcheck finds every btree index clean.
The basebackup itself is deterministic, holds what the spec lists with global/pg_control last,
and its WAL passes pg_waldump; --gzip is the same tar compressed. An export killed mid-way leaves
only OUTPUT.partial, and the next run succeeds.
"""

import gzip
import io
import os
import pwd
import re
import signal
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from fixtures.pagestream import PgConn
from fixtures.util import PG_BIN_DIR, binary, free_port, wait_until
from pageserver_env import lsn_parse, make_location, pgbench_source, read_tree
from storcon_env import (  # noqa: F401 - fixtures are used by name
    cluster_factory,
    complete_notifications,
    import_body,
    new_id,
    ok_json,
    wait_for,
    wait_row_gone,
)

IMPORT_ARGS = ["--import-poll-interval", "100ms"]
STRIPE = 16  # pages: pgbench_accounts (~1,640 pages at scale 1) spreads over every shard

QUERIES = [
    "SELECT count(*), sum(abalance) FROM pgbench_accounts",
    "SELECT count(*), sum(bbalance) FROM pgbench_branches",
    "SELECT count(*), sum(tbalance) FROM pgbench_tellers",
    "SELECT aid, abalance, filler FROM pgbench_accounts WHERE aid IN (1, 50000, 99999)",
    "SELECT count(*) FROM pg_class",
    "SELECT id, length(v), md5(v) FROM toasty ORDER BY id",
    "SELECT count(*) FROM scratch",  # an unlogged table: its main fork as stored
]
SECOND_QUERIES = ["SELECT count(*), sum(id), max(name) FROM items"]


def _setup(cluster):
    cluster.query("postgres", "CREATE TABLE toasty (id int PRIMARY KEY, v text)")
    cluster.query("postgres", "ALTER TABLE toasty ALTER COLUMN v SET STORAGE EXTERNAL")
    cluster.query("postgres", "INSERT INTO toasty SELECT i, (SELECT string_agg(md5(i::text || j), "
                              "'') FROM generate_series(1, 2000) j) FROM generate_series(1, 5) i")
    cluster.query("postgres", "CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY)")
    cluster.query("postgres", "INSERT INTO scratch SELECT generate_series(1, 100)")
    cluster.query("postgres", "CREATE DATABASE second")
    cluster.query("second", "CREATE TABLE items (id int PRIMARY KEY, name text)")
    cluster.query("second", "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 3000) g")
    cluster.query("postgres", "CHECKPOINT")
    return {"postgres": [cluster.query("postgres", q) for q in QUERIES],
            "second": [cluster.query("second", q) for q in SECOND_QUERIES]}


@pytest.fixture(scope="module")
def source():
    """(pgdata, {db: [query results]}) of the module's one source."""
    yield from pgbench_source(1, _setup)


def run_ctl(cl, *args, timeout=300):
    return subprocess.run([str(binary("storconctl")), "--api", cl.storcon.url, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def imported(cl, pgdata, tmp_path, count):
    """A tenant of count shards with pgdata imported through storcon: (tenant, timeline)."""
    tenant, _ = cl.create_tenant(count=count, stripe=STRIPE)
    tl = new_id()
    loc = make_location(pgdata, tmp_path)
    ok_json(cl.create_timeline(tenant, tl, import_pgdata=import_body(loc)), 201)

    def notified():
        notes = [n for n in complete_notifications(cl, tenant) if n.get("timeline_id") == tl]
        assert notes, "no import_complete yet"
        assert notes[0]["error"] is None, notes
        return True
    wait_for(notified, 180, "import_complete")
    wait_row_gone(cl, tenant, tl)
    return tenant, tl


def comparable_files(files: dict) -> dict:
    """Relation segment files and SLRU segments: what an export must reproduce byte for byte."""
    rel = re.compile(r"^(base/\d+|global)/\d+(_(fsm|vm|init))?(\.\d+)?$")
    slru = re.compile(r"^pg_(xact|multixact/(members|offsets))/[0-9A-F]{4,}$")
    return {p: d for p, d in files.items() if rel.match(p) or slru.match(p)}


class ExportedPostgres:
    """A vanilla Postgres on an exported data directory, as the postgres user, on a free port;
    stopped by its pid."""

    def __init__(self, datadir: Path):
        self.root = Path(tempfile.mkdtemp(prefix="export-pg-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.datadir = self.root / "data"
        shutil.copytree(datadir, self.datadir)  # the export itself stays as written
        self.sock = self.root / "sock"
        self.sock.mkdir()
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.popen = None
        kwargs = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for dirpath, dirs, names in os.walk(self.root):
                for n in [dirpath] + [os.path.join(dirpath, x) for x in dirs + names]:
                    os.chown(n, pw.pw_uid, pw.pw_gid)
            kwargs.update(user="postgres", group="postgres", extra_groups=[])
        os.chmod(self.datadir, 0o700)
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                [str(PG_BIN_DIR / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
                 "-k", str(self.sock), "-c", "listen_addresses=127.0.0.1"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=str(self.root), **kwargs)

        def accepting():
            assert self.popen.poll() is None, self.log.read_text()[-3000:]
            self.connect("postgres").close()
            return True
        try:
            wait_until(accepting, timeout=60, interval=0.2, what="postgres on the export")
        except BaseException:
            self.stop()
            raise

    def connect(self, db):
        c = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=db,
                             connect_timeout=5)
        c.autocommit = True
        return c

    def query(self, db, sql):
        with self.connect(db) as c, c.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None

    def stop(self):
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def check_postgres_on(datadir: Path, expected: dict):
    pg = ExportedPostgres(datadir)
    try:
        assert [pg.query("postgres", q) for q in QUERIES] == expected["postgres"]
        assert [pg.query("second", q) for q in SECOND_QUERIES] == expected["second"]
        log = pg.log.read_text()
        assert "database system was shut down at" in log, log
        assert "redo starts" not in log, log  # a clean checkpoint: no recovery
        for db in ("postgres", "second"):
            pg.query(db, "CREATE EXTENSION amcheck")
            idx = pg.query(db, "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON "
                               "c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                               "WHERE a.amname = 'btree' AND c.relpersistence != 't'")
            assert len(idx) > 10, idx
            for (name,) in idx:
                pg.query(db, f"SELECT bt_index_check('{name}'::regclass, true)")
        # it is a working database: writes go to new WAL after the checkpoint
        pg.query("postgres", "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1")
        pg.query("postgres", "CHECKPOINT")
    finally:
        pg.stop()
    assert pg.popen.returncode == 0, pg.popen.returncode


@pytest.mark.test_timeout(400)
@pytest.mark.parametrize("count", [1, 2, 8])
def test_export_starts_and_matches_source(cluster_factory, source, tmp_path, count):
    pgdata, expected = source
    cl = cluster_factory(3 if count > 2 else 2, extra_args=IMPORT_ARGS)
    tenant, tl = imported(cl, pgdata, tmp_path, count)
    src = comparable_files(read_tree(pgdata))
    assert any(p.endswith("_init") for p in src), "no init fork in the source"

    out = Path(tempfile.mkdtemp(prefix="export-out-", dir="/tmp"))
    try:
        data = out / "data"
        r = run_ctl(cl, "timelines", "export", tenant, tl, "--output", data)
        assert r.returncode == 0, r
        print(r.stdout.strip())
        assert "exported timeline" in r.stdout and f"{count if count else 1} shard" in r.stdout, r
        assert "\r[" not in r.stdout  # no progress bar when stdout is not a terminal
        assert not (out / "data.partial").exists()
        got = read_tree(data)
        assert comparable_files(got) == src  # every page as stored, every SLRU segment
        for name in ("PG_VERSION", "global/pg_control", "global/pg_filenode.map",
                     "postgresql.conf", "pg_hba.conf"):
            assert name in got, name
        assert (data / "pg_wal" / "archive_status").is_dir()

        # refusals change nothing
        r = run_ctl(cl, "timelines", "export", tenant, tl, "--output", data)
        assert r.returncode == 1 and "exists" in r.stderr, r
        r = run_ctl(cl, "timelines", "export", tenant, "--output", out / "x")
        assert r.returncode == 64, r
        r = run_ctl(cl, "timelines", "export", tenant, new_id(), "--output", out / "x")
        assert r.returncode == 1 and not (out / "x").exists() and \
            not (out / "x.partial").exists(), r

        if count == 2:  # the tar form: the same files, pg_control last
            r = run_ctl(cl, "timelines", "export", tenant, tl, "--output", out / "data.tar")
            assert r.returncode == 0, r
            with tarfile.open(out / "data.tar") as t:
                members = t.getmembers()
                assert members[-1].name == "global/pg_control"
                files = {m.name.rstrip("/"): t.extractfile(m).read() for m in members if m.isfile()}
            assert files == got

        check_postgres_on(data, expected)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def basebackup(port, tenant, tl, *args) -> bytes:
    with PgConn(port) as c:
        c.startup()
        c.query(" ".join(["basebackup", tenant, tl, *args]))
        c.expect("H")
        out = io.BytesIO()
        while True:
            mtype, payload = c.expect("d", "c")
            if mtype == "c":
                break
            out.write(payload)
        c.expect("C")
        c.expect("Z")
        return out.getvalue()


@pytest.mark.test_timeout(300)
def test_basebackup_content_and_determinism(cluster_factory, source, tmp_path):
    pgdata, _ = source
    cl = cluster_factory(1, extra_args=IMPORT_ARGS)
    tenant, tl = imported(cl, pgdata, tmp_path, 0)
    ps = cl.pageservers[0]
    info = ok_json(ps.get(f"/v1/tenant/{tenant}/timeline/{tl}"))
    lsn = info["last_record_lsn"]

    a = basebackup(ps.pg_port, tenant, tl)
    b = basebackup(ps.pg_port, tenant, tl, lsn)
    assert a == b  # latest is last_record_lsn; two builds give the same bytes
    z = basebackup(ps.pg_port, tenant, tl, lsn, "--gzip")
    assert z[:2] == b"\x1f\x8b" and gzip.decompress(z) == a

    with tarfile.open(fileobj=io.BytesIO(a)) as t:
        members = t.getmembers()
        names = [m.name.rstrip("/") for m in members]
        files = {m.name: t.extractfile(m).read() for m in members if m.isfile()}
    assert names[-1] == "global/pg_control"
    src = read_tree(pgdata)
    for d in ("base", "global", "pg_xact", "pg_multixact/members", "pg_multixact/offsets",
              "pg_wal", "pg_wal/archive_status", "pg_twophase", "pg_subtrans", "pg_tblspc",
              "pg_logical/snapshots", "pg_notify", "pg_stat", "pg_replslot"):
        assert d in names, d
    assert files["PG_VERSION"] == b"15\n"
    dbs = [p.split("/")[1] for p in src if re.match(r"^base/\d+/PG_VERSION$", p)]
    assert len(dbs) >= 4, dbs  # template0, template1, postgres, second
    for db in dbs:
        assert files[f"base/{db}/PG_VERSION"] == src[f"base/{db}/PG_VERSION"]
        assert files[f"base/{db}/pg_filenode.map"] == src[f"base/{db}/pg_filenode.map"]
    assert files["global/pg_filenode.map"] == src["global/pg_filenode.map"]
    for p, d in src.items():  # SLRU segments and init forks as stored
        if re.match(r"^pg_(xact|multixact/(members|offsets))/[0-9A-F]{4,}$", p) or \
                p.endswith("_init"):
            assert files[p] == d, p
    rel = re.compile(r"^(base/\d+|global)/\d+(_(fsm|vm))?(\.\d+)?$")
    assert not [p for p in files if rel.match(p)], "relation data in the basebackup"
    wal = [p for p in files if p.startswith("pg_wal/") and len(p) == 31]
    assert len(wal) == 1 and len(files[wal[0]]) == 16 << 20, wal

    # pg_waldump reads the checkpoint record at pg_control's checkPoint (>= the LSN)
    d = Path(tempfile.mkdtemp(prefix="bb-wal-", dir="/tmp"))
    try:
        (d / Path(wal[0]).name).write_bytes(files[wal[0]])
        ctl = files["global/pg_control"]
        ckpt = int.from_bytes(ctl[32:40], "little")
        assert ckpt >= lsn_parse(lsn) and ckpt - lsn_parse(lsn) < 8 + 40, (hex(ckpt), lsn)
        assert int.from_bytes(ctl[40:48], "little") == ckpt  # redo
        assert int.from_bytes(ctl[16:20], "little") == 1  # DB_SHUTDOWNED
        # from the page start: the no-op filler (none when the checkpoint record starts right
        # after the page header: 40 bytes on a segment's first page, else 24), then the checkpoint
        page = ckpt - ckpt % 8192
        header = 40 if page % (16 << 20) == 0 else 24
        filler = ckpt - page > header
        r = subprocess.run([str(PG_BIN_DIR / "pg_waldump"), "-p", str(d), "-s",
                            f"{page >> 32:X}/{page & 0xFFFFFFFF:X}", "-n", "2" if filler else "1",
                            str(d / Path(wal[0]).name)], capture_output=True, text=True)
        lines = [x for x in r.stdout.splitlines() if x.startswith("rmgr:")]
        assert len(lines) == (2 if filler else 1), r
        assert not filler or "NOOP" in lines[0], r
        assert "CHECKPOINT_SHUTDOWN" in lines[-1] and \
            f"lsn: {ckpt >> 32:X}/{ckpt & 0xFFFFFFFF:08X}" in lines[-1], r
        # pg_controldata reads the new control file: CRC right, checkpoint at the record
        ctl_dir = d / "ctl"
        (ctl_dir / "global").mkdir(parents=True)
        (ctl_dir / "global" / "pg_control").write_bytes(ctl)
        r = subprocess.run([str(PG_BIN_DIR / "pg_controldata"), str(ctl_dir)],
                           capture_output=True, text=True)
        assert r.returncode == 0 and "shut down" in r.stdout, r
        assert "WARNING" not in r.stdout + r.stderr, r
        assert f"Latest checkpoint location:           {ckpt >> 32:X}/{ckpt & 0xFFFFFFFF:X}" in \
            r.stdout, r
    finally:
        shutil.rmtree(d, ignore_errors=True)

    # the relation listing the export uses (through storcon's passthrough)
    listing = ok_json(cl.storcon.get(f"/v1/tenant/{tenant}/timeline/{tl}/relations",
                                     params={"lsn": lsn}))
    assert listing["lsn"] == lsn
    sizes = {}
    for e in listing["relations"]:
        sfx = ["", "_fsm", "_vm", "_init"][e["forknum"]]
        d = "global" if e["spcnode"] == 1664 else f"base/{e['dbnode']}"
        sizes[f"{d}/{e['relnode']}{sfx}"] = e["nblocks"]
    want = {}
    for p, data in src.items():
        m = re.match(r"^((base/\d+|global)/\d+(_(fsm|vm|init))?)(\.\d+)?$", p)
        if m:
            want[m.group(1)] = want.get(m.group(1), 0) + len(data) // 8192
    assert sizes == want
    r = ps.get(f"/v1/tenant/{tenant}/timeline/{tl}/relations", params={"lsn": "nope"})
    assert r.status_code == 400, r.text


@pytest.mark.test_timeout(400)
def test_interrupted_export_leaves_partial_and_rerun_succeeds(cluster_factory, source, tmp_path):
    pgdata, expected = source
    cl = cluster_factory(2, extra_args=IMPORT_ARGS)
    tenant, tl = imported(cl, pgdata, tmp_path, 2)
    for ps in cl.pageservers:  # slow page reads: the export is still running when killed
        cl.ps_failpoint(ps, "getpage", "sleep(5)")
    out = Path(tempfile.mkdtemp(prefix="export-int-", dir="/tmp"))
    try:
        data = out / "data"
        p = subprocess.Popen([str(binary("storconctl")), "--api", cl.storcon.url, "timelines",
                              "export", tenant, tl, "--output", str(data)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            def writing():
                assert (out / "data.partial" / "base").is_dir()
                return True
            wait_for(writing, 60, "the export writing")
            time.sleep(1.0)
            assert p.poll() is None, p.communicate()
        finally:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        assert p.returncode == -signal.SIGKILL
        assert sorted(x.name for x in out.iterdir()) == ["data.partial"]

        for ps in cl.pageservers:
            cl.ps_failpoint(ps, "getpage", "off")
        r = run_ctl(cl, "timelines", "export", tenant, tl, "--output", data)
        assert r.returncode == 0, r
        assert "interrupted export" in r.stderr, r
        assert sorted(x.name for x in out.iterdir()) == ["data"]
        assert comparable_files(read_tree(data)) == comparable_files(read_tree(pgdata))
        check_postgres_on(data, expected)
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.mark.test_timeout(300)
def test_export_with_auth(cluster_factory, env, source, tmp_path):
    """Auth on everywhere: storcon takes the admin token (--token), the page services a token of
    the tenant (--pageserver-token); the admin token alone is refused by the page service with a
    clear message, and nothing is left behind."""
    pgdata, _ = source
    cl = cluster_factory(2, auth=True, extra_args=IMPORT_ARGS)
    tenant, tl = imported(cl, pgdata, tmp_path, 2)
    admin = env.token("admin")
    out = Path(tempfile.mkdtemp(prefix="export-auth-", dir="/tmp"))
    try:
        r = run_ctl(cl, "timelines", "export", tenant, tl, "--output", out / "data")
        assert r.returncode == 1 and "401" in r.stderr, r  # storcon wants a token
        r = run_ctl(cl, "--token", admin, "timelines", "export", tenant, tl, "--output",
                    out / "data")
        assert r.returncode == 1 and "page service" in r.stderr, r  # admin is not a tenant token
        assert list(out.iterdir()) == []
        r = run_ctl(cl, "--token", admin, "timelines", "export", tenant, tl, "--output",
                    out / "data", "--pageserver-token", env.token("tenant", tenant))
        assert r.returncode == 0, r
        assert comparable_files(read_tree(out / "data")) == comparable_files(read_tree(pgdata))
    finally:
        shutil.rmtree(out, ignore_errors=True)
