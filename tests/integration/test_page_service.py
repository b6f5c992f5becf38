"""The page service (docs/page-service.md) against real daemons.

A small pgbench PGDATA (pgbench -i -s 1) is imported through storcon into a 4-shard tenant spread
over two pageservers; then, over pagestream v2 and v3: Exists, Nblocks, DbSize and GetSlruSegment
equal what the source directory says; every relation page of the source equals GetPage from the
owning shard's pageserver, with 1,000 requests in flight on one connection answered in order,
and again over 6 connections per node at once spread over the page service threads; a
page of a shard not held on that node is an error response and the connection stays usable; each
per-request error case. With auth on, a token for the tenant is served and another tenant's is
refused. Abuse: 500 idle connections, a client that stops reading mid-stream while others are
served, garbage after startup, a truncated message, an oversized length, and no file descriptor
leaks.
"""

import os
import socket
import struct
import threading
import time

import pytest

from fixtures.pagestream import (
    BLCKSZ,
    DB_SIZE,
    EXISTS,
    GET_PAGE,
    GET_SLRU_SEGMENT,
    LATEST,
    NBLOCKS,
    PgConn,
    Request,
    ServerError,
    connect,
    msg,
)
from fixtures.util import wait_until
from pageserver_env import (  # noqa: F401 - fixtures are used by name
    DEFAULTTABLESPACE_OID,
    Key,
    bootstrap,
    delete_timeline,
    import_base_lsn,
    key_owner,
    make_location,
    module_ps_env,
    pgbench_source,
    read_tree,
    relation_files,
    relation_sizes,
    RELSEG_BLOCKS,
)
from storcon_env import (  # noqa: F401 - fixtures are used by name
    cluster_factory,
    import_body,
    new_id,
    ok_json,
    parse_tsid,
    wait_for,
)

STRIPE = 16  # pages: pgbench_accounts (~1,640 pages) spreads over all 4 shards
IMPORT_ARGS = ["--import-poll-interval", "100ms"]


@pytest.fixture(scope="module")
def source():
    """(pgdata, None): pgbench -i -s 1, removed at the end of the module."""
    yield from pgbench_source(1)


def import_tenant(cl, pgdata, tmp_path, count=4):
    """A count-shard tenant with the source imported; returns (tenant, timeline, {number:
    (tsid, pageserver)}, last_record_lsn)."""
    tenant, _ = cl.create_tenant(count=count, stripe=STRIPE)
    tl = new_id()
    loc = make_location(pgdata, tmp_path)
    ok_json(cl.create_timeline(tenant, tl, import_pgdata=import_body(loc)), 201)
    shards = {}
    for tsid, node in cl.attached(tenant).items():
        shards[parse_tsid(tsid)[1]] = (tsid, cl.ps(node))

    def active():
        for tsid, ps in shards.values():
            r = ps.get(f"/v1/tenant/{tsid}/timeline/{tl}")
            if r.status_code != 200 or r.json()["state"] != "Active":
                return False
        return True

    wait_for(active, 180, "the import to finish on every shard")
    ti = ok_json(shards[0][1].get(f"/v1/tenant/{shards[0][0]}/timeline/{tl}"))
    hi, lo = ti["last_record_lsn"].split("/")
    return tenant, tl, shards, (int(hi, 16) << 32) | int(lo, 16)


def metric_values(ps, name: str) -> dict:
    """{suffix: value} of the unlabelled series of a metric ("_sum", "_count", "" ...)."""
    out = {}
    for line in ps.get("/metrics").text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            if "{" not in series:
                out[series[len(name):]] = float(value)
    return out


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def slru_segments(files: dict, kind_dir: str) -> dict:
    """{segno: bytes} of an SLRU directory of the source."""
    out = {}
    for path, data in files.items():
        d, _, name = path.rpartition("/")
        if d == kind_dir:
            out[int(name, 16)] = data
    return out


def db_sizes(files: dict) -> dict:
    """{dbnode: bytes} of every base/<db> directory's relation files (what DbSize counts)."""
    sizes = {}
    for f in relation_files(files):
        if f.spc == DEFAULTTABLESPACE_OID:
            sizes[f.db] = sizes.get(f.db, 0) + len(f.data)
    return sizes


@pytest.mark.test_timeout(420)
def test_pagestream_reads_match_source(cluster_factory, source, tmp_path):
    pgdata, _ = source
    cl = cluster_factory(2, extra_args=IMPORT_ARGS + ["--page-service-threads", "3"])
    tenant, tl, shards, lsn = import_tenant(cl, pgdata, tmp_path)
    assert sorted(shards) == [0, 1, 2, 3], shards
    nodes = {ps.id: ps for _, ps in shards.values()}
    assert len(nodes) == 2, "the 4 shards should be spread over both pageservers"
    held = {ps.id: {n for n, (_, p) in shards.items() if p.id == ps.id} for ps in nodes.values()}
    files = read_tree(pgdata)
    sizes = relation_sizes(files)
    shard0_ps = shards[0][1]

    for version in (2, 3):
        with connect(shard0_ps.pg_port, tenant, tl, version) as c:
            # Exists and Nblocks of every relation fork; a relation that does not exist
            reqs, want = [], []
            for i, ((spc, db, rel, fork), n) in enumerate(sorted(sizes.items())):
                reqs.append(Request(EXISTS, lsn, 0, reqid=2 * i, rel=(spc, db, rel, fork)))
                want.append(("exists", True))
                reqs.append(Request(NBLOCKS, lsn, 0, reqid=2 * i + 1, rel=(spc, db, rel, fork)))
                want.append(("nblocks", n))
            reqs.append(Request(EXISTS, LATEST, lsn, rel=(DEFAULTTABLESPACE_OID, 5, 999999, 0)))
            want.append(("exists", False))
            # a missing FSM or VM fork has 0 blocks (Postgres asks right after smgrcreate)
            no_fsm = next((spc, db, rel, 1) for (spc, db, rel, fork) in sorted(sizes)
                          if fork == 0 and (spc, db, rel, 1) not in sizes)
            for fork in (1, 2):
                reqs.append(Request(NBLOCKS, lsn, 0, rel=(DEFAULTTABLESPACE_OID, 5, 999999, fork)))
                want.append(("nblocks", 0))
            reqs.append(Request(NBLOCKS, lsn, 0, rel=no_fsm))
            want.append(("nblocks", 0))
            for req, resp, (what, value) in zip(reqs, c.pipeline(reqs), want):
                assert not resp.is_error, (req, resp.error)
                assert getattr(resp, what) == value, (req, resp)
                if version == 3:  # the request header and fields echoed
                    assert resp.echo == req.encode(3)[1:], (req, resp.echo)
            # ... but a missing main fork is an error
            resp = c.call(Request(NBLOCKS, lsn, 0, rel=(DEFAULTTABLESPACE_OID, 5, 999999, 0)))
            assert resp.is_error and "not found" in resp.error, resp
            # DbSize of every database directory
            for db, size in db_sizes(files).items():
                resp = c.call(Request(DB_SIZE, lsn, lsn, reqid=7, dbnode=db))
                assert not resp.is_error, resp.error
                assert resp.db_size == size, (db, resp.db_size, size)
            # GetSlruSegment of every pg_xact segment
            segs = slru_segments(files, "pg_xact")
            assert segs, "the source has no pg_xact segment"
            for segno, data in segs.items():
                resp = c.call(Request(GET_SLRU_SEGMENT, lsn, 0, kind=0, segno=segno))
                assert not resp.is_error, resp.error
                assert resp.nblocks == len(data) // BLCKSZ and resp.data == data, segno

    # Every relation page from its owner, 1,000 in flight per connection, answered in order.
    conns = {ps.id: connect(ps.pg_port, tenant, tl, 3) for ps in nodes.values()}
    try:
        batches = {ps_id: [] for ps_id in conns}
        expected = {ps_id: [] for ps_id in conns}
        total = 0

        def drain(ps_id):
            reqs = batches[ps_id]
            for req, resp, page in zip(reqs, conns[ps_id].pipeline(reqs), expected[ps_id]):
                assert not resp.is_error, (req, resp.error)
                assert resp.echo == req.encode(3)[1:], "answered out of order"
                assert resp.data == page, req
            batches[ps_id], expected[ps_id] = [], []

        # (node, rel, block, page) of every relation page, at the node holding its owner shard
        owned = []
        for f in relation_files(files):
            for i in range(len(f.data) // BLCKSZ):
                blk = f.segno * RELSEG_BLOCKS + i
                owner = key_owner(Key.rel_block(f.spc, f.db, f.rel, f.fork, blk), 4, STRIPE)
                owned.append((shards[owner][1].id, (f.spc, f.db, f.rel, f.fork), blk,
                              f.data[i * BLCKSZ:(i + 1) * BLCKSZ]))

        def read_all():
            """Every owned page through its node's connection, 1,000 in flight at most;
            returns how many were asked of each node."""
            nonlocal total
            asked = {ps_id: 0 for ps_id in conns}
            for ps_id, rel, blk, page in owned:
                batches[ps_id].append(Request(GET_PAGE, lsn, 0, reqid=total, rel=rel, blkno=blk))
                expected[ps_id].append(page)
                total += 1
                asked[ps_id] += 1
                if len(batches[ps_id]) == 1000:
                    drain(ps_id)
            for ps_id in conns:
                drain(ps_id)
            return asked

        read_all()
        assert total > 2000, total

        # The same pages again: now from the page cache (docs/pageserver.md, Page cache), the
        # warm batches answered on the loop thread; the bytes are the same.
        before = {ps.id: (metric_values(ps, "pageserver_page_cache_hits_total")[""],
                          metric_values(ps, "pageserver_page_cache_misses_total")[""])
                  for ps in nodes.values()}
        again = read_all()
        for ps in nodes.values():
            hits0, misses0 = before[ps.id]
            hits = metric_values(ps, "pageserver_page_cache_hits_total")[""] - hits0
            misses = metric_values(ps, "pageserver_page_cache_misses_total")[""] - misses0
            assert hits >= again[ps.id] and misses == 0, (ps.id, again[ps.id], hits, misses)
            assert metric_values(ps, "pageserver_page_cache_bytes")[""] >= again[ps.id] * BLCKSZ
        # The same pages over 6 connections per node at once, spread over the page service
        # threads (--page-service-threads 3): each answered completely, in order, the same bytes.
        work = {ps_id: [] for ps_id in conns}
        for ps_id, rel, blk, page in owned:
            work[ps_id].append((Request(GET_PAGE, lsn, 0, reqid=len(work[ps_id]), rel=rel,
                                        blkno=blk), page))
        failures = []

        def reader(ps, items):
            try:
                with connect(ps.pg_port, tenant, tl, 3) as c:
                    for k in range(0, len(items), 500):
                        chunk = items[k:k + 500]
                        answers = c.pipeline([req for req, _ in chunk])
                        assert len(answers) == len(chunk)
                        for (req, page), resp in zip(chunk, answers):
                            assert not resp.is_error, (req, resp.error)
                            assert resp.echo == req.encode(3)[1:], "answered out of order"
                            assert resp.data == page, req
            except Exception as e:  # noqa: BLE001 - reported by the test thread
                failures.append(repr(e))

        readers = [threading.Thread(target=reader, args=(ps, work[ps.id][k::6]))
                   for ps in nodes.values() for k in range(6)]
        for t in readers:
            t.start()
        for t in readers:
            t.join(120)
        assert not any(t.is_alive() for t in readers), "a reader hangs"
        assert not failures, failures[:3]

        # pipelined requests were read in batches: fewer worker round trips than requests
        for ps in nodes.values():
            m = metric_values(ps, "pageserver_page_service_batch_size")
            assert m["_sum"] / m["_count"] > 2, m

        # A page of a shard this node does not hold: an error response, and the connection
        # goes on serving.
        accounts = max((f for f in relation_files(files) if f.db != 0), key=lambda f: len(f.data))
        for ps_id, c in conns.items():
            blk = next(b for b in range(len(accounts.data) // BLCKSZ)
                       if key_owner(Key.rel_block(accounts.spc, accounts.db, accounts.rel, 0, b),
                                    4, STRIPE) not in held[ps_id])
            rel = (accounts.spc, accounts.db, accounts.rel, 0)
            bad, good = c.pipeline([Request(GET_PAGE, lsn, 0, rel=rel, blkno=blk),
                                    Request(NBLOCKS, lsn, 0, rel=rel)])
            assert bad.is_error and "not" in bad.error, bad
            if 0 in held[ps_id]:
                assert good.nblocks == len(accounts.data) // BLCKSZ, good
            else:  # shard 0 is on the other node
                assert good.is_error and "shard" in good.error, good
    finally:
        for c in conns.values():
            c.close()

    # The per-request errors, each followed by a good request on the same connection.
    rel = (accounts.spc, accounts.db, accounts.rel, 0)
    nblocks = len(accounts.data) // BLCKSZ
    owner0 = next(b for b in range(nblocks)
                  if key_owner(Key.rel_block(*rel, b), 4, STRIPE) in held[shard0_ps.id])
    other_tenant = new_id()
    cases = [
        ("lsn 0", Request(GET_PAGE, 0, 0, rel=rel, blkno=owner0), "LSN 0"),
        ("request_lsn < not_modified_since", Request(GET_PAGE, lsn - 8, lsn, rel=rel,
                                                     blkno=owner0), "not_modified_since"),
        ("past the end", Request(NBLOCKS, lsn, 0, rel=(rel[0], rel[1], 999999, 0)), "not found"),
        ("below the GC cutoff", Request(NBLOCKS, 16, 0, rel=rel), "min_readable_lsn"),
        ("missing SLRU segment", Request(GET_SLRU_SEGMENT, lsn, 0, kind=0, segno=0xFFFF),
         "not found"),
    ]
    # a block past the end, on the shard that would own it
    past = next(b for b in range(nblocks, nblocks + 10000)
                if key_owner(Key.rel_block(*rel, b), 4, STRIPE) in held[shard0_ps.id])
    cases.append(("block past the end", Request(GET_PAGE, lsn, 0, rel=rel, blkno=past),
                  "past the end"))
    with connect(shard0_ps.pg_port, tenant, tl, 2) as c:
        for name, req, text in cases:
            bad, good = c.pipeline([req, Request(NBLOCKS, lsn, 0, rel=rel)])
            assert bad.is_error and text in bad.error, (name, bad)
            assert good.nblocks == nblocks, (name, good)
    with connect(shard0_ps.pg_port, tenant, new_id(), 2) as c:  # unknown timeline
        bad = c.call(Request(NBLOCKS, lsn, 0, rel=rel))
        assert bad.is_error and "timeline" in bad.error and "not found" in bad.error, bad
    with connect(shard0_ps.pg_port, other_tenant, tl, 2) as c:  # unknown tenant
        bad = c.call(Request(NBLOCKS, lsn, 0, rel=rel))
        assert bad.is_error, bad

    metrics = shard0_ps.get("/metrics").text
    for line in ('pageserver_page_service_requests_total{type="get_page"}',
                 "pageserver_page_service_batch_size_count",
                 "pageserver_page_service_bytes_out_total"):
        assert line in metrics, line
    got = [ln for ln in metrics.splitlines()
           if ln.startswith('pageserver_page_service_requests_total{type="get_page"}')]
    assert int(float(got[0].split()[-1])) > 1000, got


@pytest.mark.test_timeout(240)
def test_page_service_auth(cluster_factory, source, tmp_path, token):
    cl = cluster_factory(1, auth=True)
    tenant, _ = cl.create_tenant(count=0)
    other, _ = cl.create_tenant(count=0)
    ps = cl.pageservers[0]
    tl = new_id()

    # the tenant's own token: served (an unknown timeline is a per-request error)
    with connect(ps.pg_port, tenant, tl, 2, password=token("tenant", tenant)) as c:
        r = c.call(Request(NBLOCKS, LATEST, 0, rel=(1663, 5, 1259, 0)))
        assert r.is_error and "timeline" in r.error, r
    # pageserverapi passes every tenant
    with connect(ps.pg_port, other, tl, 2, password=token("pageserverapi")) as c:
        r = c.call(Request(NBLOCKS, LATEST, 0, rel=(1663, 5, 1259, 0)))
        assert r.is_error and "timeline" in r.error, r
    # another tenant's token: refused at the command, the connection stays usable
    with PgConn(ps.pg_port) as c:
        c.startup(password=token("tenant", other))
        c.query(f"pagestream_v2 {tenant} {tl}")
        with pytest.raises(ServerError) as e:
            c.expect("W")
        assert "tenant" in e.value.message or "forbidden" in e.value.message.lower(), e.value
        c.expect("Z")
        c.pagestream(other, tl, 2)
    # no password, a malformed token, an admin token
    for password in ("", "not.a.jwt", token("admin")):
        with PgConn(ps.pg_port) as c:
            if password == token("admin"):
                c.startup(password=password)
                c.query(f"pagestream_v2 {tenant} {tl}")
                with pytest.raises(ServerError):
                    c.expect("W")
            else:
                with pytest.raises(ServerError) as e:
                    c.startup(password=password)
                assert e.value.code == "28P01", e.value.fields


@pytest.fixture(scope="module")
def boot(module_ps_env):
    """One pageserver (short handshake timeout) with a bootstrapped unsharded tenant."""
    ps = module_ps_env.pageserver(extra_args=["--pg-handshake-timeout", "2s",
                                              "--pg-max-connections", "600"])
    tenant = new_id()
    module_ps_env.attach(ps, tenant, 1)
    info = bootstrap(ps, tenant, pg_version=15)
    hi, lo = info["last_record_lsn"].split("/")
    return ps, tenant, info["timeline_id"], (int(hi, 16) << 32) | int(lo, 16)


PG_CLASS = (1663, 5, 1259, 0)


def served(boot, version=2) -> bool:
    ps, tenant, tl, lsn = boot
    with connect(ps.pg_port, tenant, tl, version, timeout=20) as c:
        r = c.call(Request(GET_PAGE, lsn, 0, rel=PG_CLASS, blkno=0))
        return not r.is_error and len(r.data) == BLCKSZ


def expect_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Read until the server closes; returns what it sent."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


@pytest.mark.test_timeout(240)
def test_page_service_abuse(boot):
    ps, tenant, tl, lsn = boot
    pid = ps.pid
    assert served(boot)
    before = fd_count(pid)

    # 500 idle connections: all accepted, the daemon keeps serving; the handshake timeout (2 s
    # here) closes them
    accepted = metric_values(ps, "pageserver_page_service_connections_accepted_total")[""]
    idle = [socket.create_connection(("127.0.0.1", ps.pg_port)) for _ in range(500)]
    try:
        wait_until(lambda: metric_values(
            ps, "pageserver_page_service_connections_accepted_total")[""] >= accepted + 500, 60)
        assert served(boot)
        for s in idle[:20]:
            assert expect_closed(s, 10) == b""  # handshake timeout: closed without a word
    finally:
        for s in idle:
            s.close()

    # garbage after startup: a protocol violation closes only that connection
    with PgConn(ps.pg_port) as c:
        c.startup()
        c.send(b"\x00\x01\x02garbage that is no message at all" * 4)
        data = expect_closed(c.sock)
        assert b"08P01" in data, data
    # an oversized length
    with PgConn(ps.pg_port) as c:
        c.startup()
        c.send(b"Q" + struct.pack(">I", 0x7FFFFFF0))
        data = expect_closed(c.sock)
        assert b"08P01" in data and b"exceeds" in data, data
    # a malformed pagestream request (truncated CopyData payload)
    with connect(ps.pg_port, tenant, tl, 2) as c:
        c.send(msg(b"d", Request(GET_PAGE, lsn, 0, rel=PG_CLASS).encode(2)[:-3]))
        data = expect_closed(c.sock)
        assert b"08P01" in data, data
    # CopyDone or Terminate right behind pipelined requests: every answer still arrives, in
    # order, before the server closes (it must not drop the output it has not sent yet)
    for ending in (msg(b"c", b""), msg(b"X", b"")):
        with connect(ps.pg_port, tenant, tl, 3) as c:
            reqs = [Request(GET_PAGE, lsn, 0, reqid=i, rel=PG_CLASS, blkno=0) for i in range(300)]
            c.send(b"".join(msg(b"d", r.encode(3)) for r in reqs) + ending)
            got = [c.recv_response() for _ in reqs]
            assert [struct.unpack(">Q", r.echo[:8])[0] for r in got] == list(range(300))
            assert all(r.tag == 102 for r in got), [r.error for r in got if r.is_error][:3]
            assert expect_closed(c.sock) == b""
    # a truncated message, then the client goes away
    with PgConn(ps.pg_port) as c:
        c.startup()
        c.send(b"Q" + struct.pack(">I", 100) + b"pagestream")
    # an oversized startup packet
    s = socket.create_connection(("127.0.0.1", ps.pg_port))
    s.sendall(struct.pack(">II", 1 << 30, 196608))
    assert b"08P01" in expect_closed(s)
    s.close()
    assert served(boot) and served(boot, 3)

    # a client that stops reading mid-stream: the server stops reading it (bounded memory) and
    # keeps serving others
    stalled = connect(ps.pg_port, tenant, tl, 2)
    try:
        stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        req = msg(b"d", Request(GET_PAGE, lsn, 0, rel=PG_CLASS, blkno=0).encode(2))
        stalled.sock.setblocking(False)
        sent, blocked = 0, False
        deadline = time.monotonic() + 30
        chunk = req * 1000
        while time.monotonic() < deadline and not blocked:  # until the server stops reading us
            try:
                sent += stalled.sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.5)  # still full half a second later: the server is not reading
                try:
                    sent += stalled.sock.send(chunk)
                except BlockingIOError:
                    blocked = True
        # the server answered at most ~1 MiB of output plus 256 requests and then stopped
        # reading: the rest of what we sent waits in the kernel's buffers
        assert blocked, f"the server kept reading a client that reads nothing ({sent} bytes)"
        assert sent // len(req) > 256 + (1 << 20) // BLCKSZ, sent
        for _ in range(3):
            assert served(boot)
    finally:
        stalled.close()

    # nothing leaked: every connection's descriptor was closed
    wait_until(lambda: fd_count(pid) <= before, 30)
    metrics = ps.get("/metrics").text
    assert "pageserver_page_service_protocol_errors_total" in metrics

    # SIGTERM with requests in flight on a connection: a clean stop (exit 0, and under ASan no
    # leak: the reads complete into the closed connection, which is then freed)
    busy = connect(ps.pg_port, tenant, tl, 3)
    try:
        busy.send_requests([Request(GET_PAGE, lsn, 0, reqid=i, rel=PG_CLASS, blkno=0)
                            for i in range(2000)])
        busy.recv_response()
        assert ps.stop() == 0
    finally:
        busy.close()


def batches(ps, path: str) -> float:
    """pageserver_page_service_batches_total{path=...}."""
    prefix = f'pageserver_page_service_batches_total{{path="{path}"}} '
    for line in ps.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    raise AssertionError(f"no {prefix!r} series")


@pytest.mark.test_timeout(180)
def test_reads_on_connection_thread_follow_changes(module_ps_env):
    """Once a connection has a read view, warm pages are answered on its own thread (the
    "thread" batch counter), identical to the daemon loop's answer; an armed failpoint, a
    timeline deleted and the slot turned Secondary are seen by the very next request on the
    same connection (the view goes stale, the request takes the loop's path)."""
    ps = module_ps_env.pageserver()
    tenant = new_id()
    module_ps_env.attach(ps, tenant, 1)
    kept = bootstrap(ps, tenant, pg_version=15)
    doomed = bootstrap(ps, tenant, pg_version=15)

    def lsn_of(info):
        hi, lo = info["last_record_lsn"].split("/")
        return (int(hi, 16) << 32) | int(lo, 16)

    with connect(ps.pg_port, tenant, kept["timeline_id"], 2, timeout=20) as c, \
            connect(ps.pg_port, tenant, doomed["timeline_id"], 2, timeout=20) as d:
        req = Request(GET_PAGE, lsn_of(kept), 0, rel=PG_CLASS, blkno=0)
        first = c.call(req)  # through the loop: reads the page, brings the view
        assert not first.is_error and len(first.data) == BLCKSZ
        on_thread, on_loop = batches(ps, "thread"), batches(ps, "loop")
        for _ in range(20):
            r = c.call(req)
            assert not r.is_error and r.data == first.data
        assert batches(ps, "thread") - on_thread == 20
        assert batches(ps, "loop") == on_loop
        # a pipelined run: in order, each page the loop's answer
        reqs = [Request(GET_PAGE, lsn_of(kept), 0, rel=PG_CLASS, blkno=b) for b in range(4)] * 8
        pages = c.pipeline(reqs)
        assert [p.data for p in pages[:4]] * 8 == [p.data for p in pages]
        assert pages[0].data == first.data

        # an armed failpoint: the loop's path evaluates it
        ok_json(ps.put("/v1/failpoints", json=[{"name": "getpage", "actions": "return(armed)"}]))
        r = c.call(req)
        assert r.is_error and "armed" in r.error, r
        ok_json(ps.put("/v1/failpoints", json=[{"name": "getpage", "actions": "off"}]))
        assert c.call(req).data == first.data

        # a deleted timeline: refused on the next request of a connection that read it
        dreq = Request(GET_PAGE, lsn_of(doomed), 0, rel=PG_CLASS, blkno=0)
        assert not d.call(dreq).is_error
        assert not d.call(dreq).is_error  # on the thread now
        assert delete_timeline(ps, tenant, doomed["timeline_id"]).status_code in (200, 202)
        r = d.call(dreq)
        assert r.is_error and "not found" in r.error, r

        # the slot turned Secondary: no reads any more, on the same connection
        on_thread = batches(ps, "thread")
        module_ps_env.secondary(ps, tenant)
        r = c.call(req)
        assert r.is_error, r
        assert batches(ps, "thread") == on_thread
