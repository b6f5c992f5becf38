"""Shared helpers and fixtures of the pageserver integration tests (issue 3).

The tests stand in for the storage controller: they PUT location configs and call the timeline
routes of real pageserver processes, while a FakeStorcon (fixtures/fake_storcon.py) answers the
pageservers' `re-attach` and `validate` upcalls and records them.

Fixtures (import them into a test module: `from pageserver_env import *`-style explicit imports):
  fake_storcon    a started FakeStorcon (function scope)
  ps_env          PsEnv on the test's env and fake_storcon: make pageservers, attach, ...
  module_ps_env   a PsEnv shared by one module's tests on one xdist worker (its own process
                  registry and directory), for tests that only read a bootstrapped tenant
  shared_ps_env   module_ps_env, with its process logs attached to a failing test's report

Helpers: ids and LSNs, LocationConfig bodies, HTTP helpers for the tenant and timeline routes,
getpage, the remote storage directory (listing with sizes, mtimes and hashes), the layer file
format (docs/layer-format.md) and keys (wire.md), the initdb.tar.zst a bootstrap stores, and
import sources (docs/import.md): a cleanly shut down pgbench PGDATA, import locations.
"""

import email.utils
import hashlib
import io
import os
import re
import shutil
import signal
import struct
import subprocess
import tarfile
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from fixtures.daemons import Env, Pageserver
from fixtures.fake_storcon import FakeStorcon
from fixtures.postgres import PgCluster
from fixtures.process import ProcessRegistry
from fixtures.util import PG_BIN_DIR, StopWaiting, wait_until

BLCKSZ = 8192
RELSEG_BLOCKS = 131072
DEFAULT_STRIPE = 2048
DEFAULTTABLESPACE_OID = 1663
GLOBALTABLESPACE_OID = 1664
FORKS = {"": 0, "fsm": 1, "vm": 2, "init": 3}
BOOTSTRAP_TIMEOUT = 90.0  # initdb plus conversion plus upload, on a busy 2-core machine


# ---- ids, LSNs ----


def new_id() -> str:
    return uuid.uuid4().hex


def tsid_of(tenant: str, number: int = 0, count: int = 0) -> str:
    """wire.md TenantShardId: the bare tenant id for count 0, else <tenant>-NNCC."""
    return tenant if count == 0 else f"{tenant}-{number:02x}{count:02x}"


def shard_index(number: int, count: int) -> str:
    return f"{number:02x}{count:02x}"


def lsn_parse(s: str) -> int:
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def lsn_fmt(v: int) -> str:
    return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"


# ---- location configs ----


def location_conf(mode: str, generation=None, shard_number: int = 0, shard_count: int = 0,
                  stripe: int = 0, tenant_conf=None, secondary_conf=None) -> dict:
    """A LocationConfig body with every key, in the echo order of pageserver/location_config.h."""
    return {
        "mode": mode,
        "generation": generation,
        "secondary_conf": secondary_conf,
        "shard_number": shard_number,
        "shard_count": shard_count,
        "shard_stripe_size": stripe,
        "tenant_conf": {} if tenant_conf is None else tenant_conf,
    }


def error_msg(r: requests.Response, status) -> str:
    """Assert an error reply (status, or one of a tuple of statuses) with a JSON {"msg"} body."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, \
        f"{r.request.method} {r.url}: {r.status_code} {r.content[:300]!r}"
    try:
        msg = r.json().get("msg")
    except ValueError:
        raise AssertionError(f"{r.request.method} {r.url}: not JSON: {r.text!r}") from None
    assert isinstance(msg, str) and msg, r.text
    return msg


def ok_json(r: requests.Response, status: int = 200):
    assert r.status_code == status, f"{r.request.method} {r.url}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def put_location(ps, tsid: str, conf: dict, **params) -> requests.Response:
    return ps.put(f"/v1/tenant/{tsid}/location_config", json=conf, params=params or None,
                  timeout=60)


def get_location(ps, tsid: str) -> requests.Response:
    return ps.get(f"/v1/location_config/{tsid}")


def all_locations(ps) -> dict:
    """GET /v1/location_config as {tsid: LocationConfig or None}."""
    body = ok_json(ps.get("/v1/location_config"))
    return {tsid: conf for tsid, conf in body["tenant_shards"]}


def wait_ready(ps, timeout: float = 30.0):
    """Wait until the pageserver serves tenant routes: /v1/status answers as soon as it listens,
    tenant routes only after re-attach succeeded (503 before)."""

    def ready():
        r = ps.get("/v1/location_config")
        assert r.status_code == 200, f"GET /v1/location_config: {r.status_code} {r.text}"

    wait_until(ready, timeout=timeout, interval=0.05, what=f"{ps.name} ready")


def tenant_detail(ps, tsid: str) -> requests.Response:
    return ps.get(f"/v1/tenant/{tsid}")


def wait_tenant_active(ps, tsid: str, timeout: float = 30.0) -> dict:
    """Poll GET /v1/tenant/{tsid} until its state is Active; a Broken tenant ends the wait."""

    def active():
        r = tenant_detail(ps, tsid)
        assert r.status_code == 200, f"GET /v1/tenant/{tsid}: {r.status_code} {r.text}"
        d = r.json()
        if d["state"]["slug"] == "Broken":
            raise StopWaiting(f"tenant {tsid} is Broken: {d}")
        assert d["state"]["slug"] == "Active", d
        return d

    return wait_until(active, timeout=timeout, interval=0.05, what=f"tenant {tsid} Active")


def timelines(ps, tsid: str) -> dict:
    """GET /v1/tenant/{tsid}/timeline as {timeline_id: TimelineInfo}."""
    return {t["timeline_id"]: t for t in ok_json(ps.get(f"/v1/tenant/{tsid}/timeline"))}


def settled_timelines(ps, tsid: str, timeout: float = 30) -> dict:
    """timelines() once every timeline's sizes are computed: the logical size and directory
    counts are computed in the background after a load or create, so a snapshot taken earlier
    differs from a later one without anything having changed."""
    def settled():
        tls = timelines(ps, tsid)
        done = all(t["current_logical_size_is_accurate"] and t["directory_entries_counts"]
                   for t in tls.values())
        return tls if done else False
    return wait_until(settled, timeout=timeout, interval=0.05, what="timeline sizes computed")


def timeline_info(ps, tsid: str, tl: str) -> dict:
    return ok_json(ps.get(f"/v1/tenant/{tsid}/timeline/{tl}"))


def create_timeline(ps, tsid: str, body: dict, timeout: float = BOOTSTRAP_TIMEOUT):
    return ps.post(f"/v1/tenant/{tsid}/timeline", json=body, timeout=timeout)


def bootstrap(ps, tsid: str, tl: str = None, **fields) -> dict:
    """Bootstrap a timeline (201) and return its TimelineInfo."""
    tl = tl or new_id()
    info = ok_json(create_timeline(ps, tsid, {"new_timeline_id": tl, **fields}), 201)
    assert info["timeline_id"] == tl, info
    return info


def branch(ps, tsid: str, ancestor: str, lsn: str = None, tl: str = None) -> dict:
    tl = tl or new_id()
    body = {"new_timeline_id": tl, "ancestor_timeline_id": ancestor}
    if lsn is not None:
        body["ancestor_start_lsn"] = lsn
    info = ok_json(create_timeline(ps, tsid, body), 201)
    assert info["timeline_id"] == tl, info
    return info


def delete_timeline(ps, tsid: str, tl: str) -> requests.Response:
    return ps.delete(f"/v1/tenant/{tsid}/timeline/{tl}")


def wait_timeline_gone(ps, tsid: str, tl: str, timeout: float = 30.0):
    """Poll DELETE until 404 (= deletion done); 202 and 409 mean still running."""

    def gone():
        r = delete_timeline(ps, tsid, tl)
        assert r.status_code in (202, 404, 409), f"DELETE timeline {tl}: {r.status_code} {r.text}"
        return r.status_code == 404

    wait_until(gone, timeout=timeout, interval=0.1, what=f"timeline {tl} deleted")


def flush_deletions(ps, execute: bool = True):
    r = ps.put("/v1/deletion_queue/flush", params={"execute": "true" if execute else "false"},
               timeout=60)
    assert r.status_code == 200, f"deletion_queue/flush: {r.status_code} {r.text}"


# ---- getpage ----


class PageClient:
    """getpage over one keep-alive session (thousands of page reads per test)."""

    def __init__(self, ps):
        self.ps = ps
        self.session = requests.Session()

    def get(self, tsid, tl, spc, db, rel, fork, blk, lsn) -> requests.Response:
        url = (f"{self.ps.url}/v1/tenant/{tsid}/timeline/{tl}/getpage"
               f"?rel={spc}/{db}/{rel}&fork={fork}&blkno={blk}&lsn={lsn}")
        return self.session.get(url, headers=self.ps.headers_for(), timeout=30)

    def page(self, *args) -> bytes:
        r = self.get(*args)
        assert r.status_code == 200, f"getpage {args}: {r.status_code} {r.text[:300]}"
        assert len(r.content) == BLCKSZ, f"getpage {args}: {len(r.content)} bytes"
        return r.content

    def check_all(self, tsid, tl, files: dict, lsn) -> int:
        """Reads every page of every relation in files (relation_pages) at lsn and asserts that
        each equals the source page; returns how many were read."""
        n = 0
        for spc, db, rel, fork, blk, page in relation_pages(files):
            assert self.page(tsid, tl, spc, db, rel, fork, blk, lsn) == page, \
                (spc, db, rel, fork, blk)
            n += 1
        return n

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- remote storage ----


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    mtime_ns: int
    ino: int
    sha256: str


def flip_file_bytes(path, offset: int, n: int):
    """XOR 0xFF n bytes at offset of a file, in place."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(n)
        f.seek(offset)
        f.write(bytes(x ^ 0xFF for x in b))


class RemoteDir:
    """The file:// remote storage: object key = path under the root (pageserver.md layout)."""

    TMP_RE = re.compile(r"\.tmp\.\d+\.\d+$")

    def __init__(self, root):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def flip_bytes(self, key: str, offset: int, n: int):
        """Corrupt n bytes at offset of an object in place (XOR 0xFF)."""
        flip_file_bytes(self.path(key), offset, n)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def write(self, key: str, data: bytes):
        """Store an object as another writer would (tests that plant objects)."""
        self.path(key).parent.mkdir(parents=True, exist_ok=True)
        self.path(key).write_bytes(data)

    def delete(self, key: str):
        self.path(key).unlink()

    def keys(self, prefix: str = "") -> list:
        base = self.root
        if not base.exists():
            return []
        out = []
        for p in base.rglob("*"):
            if p.is_file() and not self.TMP_RE.search(p.name):
                key = p.relative_to(base).as_posix()
                if key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    def snapshot(self, prefix: str = "") -> dict:
        """{key: ObjectInfo} of every object under prefix."""
        out = {}
        for key in self.keys(prefix):
            p = self.path(key)
            try:
                st = p.stat()
                data = p.read_bytes()
            except FileNotFoundError:  # deleted while we listed
                continue
            out[key] = ObjectInfo(st.st_size, st.st_mtime_ns, st.st_ino,
                                  hashlib.sha256(data).hexdigest())
        return out

    def index_keys(self, tsid: str, tl: str) -> dict:
        """{generation or None: key} of the timeline's index_part.json objects."""
        out = {}
        prefix = f"tenants/{tsid}/timelines/{tl}/index_part.json"
        for key in self.keys(prefix):
            suffix = key[len(prefix):]
            if suffix == "":
                out[None] = key
            else:
                m = re.fullmatch(r"-([0-9a-f]{8})", suffix)
                assert m, f"unexpected index object name {key}"
                out[int(m.group(1), 16)] = key
        return out


class S3Remote(RemoteDir):
    """The same accessor over the test's S3 bucket (REMOTE_STORAGE=s3), through the signed
    client of fixtures/s3_proxy.py: keys, read, exists, snapshot and index_keys work alike; a test
    that needs the objects as files (path) is a file-backend test."""

    def __init__(self, client):
        self.client = client

    def path(self, key: str) -> Path:
        raise NotImplementedError(f"{key}: objects in S3 are not files (a file-backend test)")

    def read(self, key: str) -> bytes:
        data = self.client.get(key)
        if data is None:
            raise FileNotFoundError(key)
        return data

    def exists(self, key: str) -> bool:
        status, _, _ = self.client.request("HEAD", key)
        return status == 200

    def write(self, key: str, data: bytes):
        self.client.put(key, data)

    def delete(self, key: str):
        self.client.delete(key)

    def size(self, key: str) -> int:
        return len(self.read(key))

    def flip_bytes(self, key: str, offset: int, n: int):
        data = bytearray(self.read(key))
        data[offset:offset + n] = bytes(x ^ 0xFF for x in data[offset:offset + n])
        self.client.put(key, bytes(data))

    def keys(self, prefix: str = "") -> list:
        return sorted(self.client.list(prefix))

    def snapshot(self, prefix: str = "") -> dict:
        out = {}
        for key in self.keys(prefix):
            status, headers, data = self.client.request("GET", key)
            if status == 404:  # deleted while we listed
                continue
            assert status == 200, f"get {key}: {status}"
            h = {k.lower(): v for k, v in headers.items()}
            mtime = email.utils.parsedate_to_datetime(h["last-modified"]).timestamp()
            out[key] = ObjectInfo(len(data), int(mtime * 1e9), hash(h.get("etag", "")),
                                  hashlib.sha256(data).hexdigest())
        return out


# ---- keys (wire.md) ----


@dataclass(frozen=True, order=True)
class Key:
    f1: int
    f2: int
    f3: int
    f4: int
    f5: int
    f6: int

    @staticmethod
    def from_bytes(b: bytes) -> "Key":
        assert len(b) == 18
        f1, f2, f3, f4, f5, f6 = struct.unpack(">BIIIBI", b)
        return Key(f1, f2, f3, f4, f5, f6)

    @staticmethod
    def from_hex(s: str) -> "Key":
        return Key.from_bytes(bytes.fromhex(s))

    def to_bytes(self) -> bytes:
        return struct.pack(">BIIIBI", self.f1, self.f2, self.f3, self.f4, self.f5, self.f6)

    def hex(self) -> str:
        return self.to_bytes().hex().upper()

    @staticmethod
    def rel_block(spc, db, rel, fork, blk) -> "Key":
        return Key(0, spc, db, rel, fork, blk)

    def is_rel_block(self) -> bool:
        return self.f1 == 0 and self.f4 != 0 and self.f6 != 0xFFFFFFFF

    def is_global(self) -> bool:
        """Stored on every shard: dbdir, relmap, reldir, relation sizes, two-phase dir, control
        file, checkpoint (pageserver shared/key.c key_is_global)."""
        if self.f1 == 0:
            return not self.is_rel_block()
        return self.f1 in (2, 3)


def murmur32(h: int) -> int:
    h &= 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def hash_combine(a: int, b: int) -> int:
    return (a ^ ((b + 0x9E3779B9 + ((a << 6) & 0xFFFFFFFF) + (a >> 2)) & 0xFFFFFFFF)) & 0xFFFFFFFF


def key_owner(key: Key, count: int, stripe: int) -> int:
    """wire.md "Key to shard": the shard number owning key."""
    if count < 2 or not key.is_rel_block() or key.f5 == 3:
        return 0
    h = murmur32(key.f4)
    h = hash_combine(h, murmur32(key.f6 // stripe))
    return h % count


def key_stored_on(key: Key, number: int, count: int, stripe: int) -> bool:
    """May shard `number` store key: global, or owned by it."""
    return key.is_global() or key_owner(key, count, stripe) == number


# ---- layer files (docs/layer-format.md, version 1) ----

LAYER_MAGIC = b"PSLAYER\0"
LAYER_NAME_RE = re.compile(
    r"(?P<start>[0-9A-F]{36})-(?P<end>[0-9A-F]{36})"
    r"__(?P<lsn1>[0-9A-F]{16})(?:-(?P<lsn2>[0-9A-F]{16}))?"
)
LAYER_OBJECT_RE = re.compile(LAYER_NAME_RE.pattern + r"(?:-(?P<gen>[0-9a-f]{8}))?")


@dataclass
class LayerName:
    name: str  # without the generation suffix
    key_start: Key
    key_end: Key  # exclusive
    lsn_start: int
    lsn_end: int  # None for image layers
    generation: int  # None when the name has no suffix

    @property
    def is_image(self) -> bool:
        return self.lsn_end is None


def parse_layer_object_name(name: str):
    """A layer's remote object (or local file) name, or None if it is not one."""
    m = LAYER_OBJECT_RE.fullmatch(name)
    if not m:
        return None
    base = name if m.group("gen") is None else name[: -len("-" + m.group("gen"))]
    return LayerName(
        base, Key.from_hex(m.group("start")), Key.from_hex(m.group("end")),
        int(m.group("lsn1"), 16), int(m.group("lsn2"), 16) if m.group("lsn2") else None,
        int(m.group("gen"), 16) if m.group("gen") else None,
    )


@dataclass
class LayerEntry:
    key: Key
    blob_offset: int
    blob_len: int


@dataclass
class LayerFile:
    kind: int
    key_start: Key
    key_end: Key
    lsn_start: int
    lsn_end: int
    entries: list


def parse_layer(data: bytes) -> LayerFile:
    """Footer and index entries of an image layer (no checksum verification: the pageserver's
    job; we only need the layout to find keys and blobs)."""
    assert len(data) >= 16 + 128, f"layer too short: {len(data)}"
    assert data[:8] == LAYER_MAGIC, data[:16]
    f = data[-128:]
    assert f[120:128] == LAYER_MAGIC, "footer magic"
    kind = f[0]
    key_start = Key.from_bytes(f[8:26])
    key_end = Key.from_bytes(f[26:44])
    lsn_start, lsn_end, n_entries, data_off, index_off, index_len, top_off = struct.unpack(
        "<QQQQQQQ", f[44:100])
    assert kind == 1, f"only image layers are parsed here (kind {kind})"
    entries = []
    pos, end = index_off, index_off + index_len
    while pos < end:
        _crc, count = struct.unpack("<II", data[pos:pos + 8])
        pos += 8
        for _ in range(count):
            key = Key.from_bytes(data[pos:pos + 18])
            off, length = struct.unpack("<QI", data[pos + 18:pos + 30])
            entries.append(LayerEntry(key, off, length))
            pos += 30
    assert len(entries) == n_entries, (len(entries), n_entries)
    return LayerFile(kind, key_start, key_end, lsn_start, lsn_end, entries)


# ---- the initdb result ----

REL_FILE_RE = re.compile(
    r"(?P<rel>[1-9][0-9]*)(?:_(?P<fork>fsm|vm|init))?(?:\.(?P<seg>[1-9][0-9]*))?"
)


@dataclass
class RelFile:
    path: str
    spc: int
    db: int
    rel: int
    fork: int
    segno: int
    data: bytes


def read_initdb_tarball(blob: bytes) -> dict:
    """initdb.tar.zst bytes -> {relative path: file bytes} (regular files only)."""
    res = subprocess.run(["zstd", "-d", "-c", "-q"], input=blob, capture_output=True, timeout=60)
    assert res.returncode == 0, f"zstd -d: {res.stderr.decode(errors='replace')}"
    files = {}
    with tarfile.open(fileobj=io.BytesIO(res.stdout), mode="r:") as tar:
        for m in tar.getmembers():
            if not m.isfile():
                continue
            name = m.name
            while name.startswith("./"):
                name = name[2:]
            files[name.lstrip("/")] = tar.extractfile(m).read()
    return files


def relation_files(files: dict) -> list:
    """Every relation segment file of base/<db>/ and global/ in a PGDATA file map."""
    out = []
    for path, data in sorted(files.items()):
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "base" and parts[1].isdigit():
            spc, db, name = DEFAULTTABLESPACE_OID, int(parts[1]), parts[2]
        elif len(parts) == 2 and parts[0] == "global":
            spc, db, name = GLOBALTABLESPACE_OID, 0, parts[1]
        else:
            continue
        m = REL_FILE_RE.fullmatch(name)
        if not m:
            continue
        assert len(data) % BLCKSZ == 0, f"{path}: {len(data)} bytes"
        out.append(RelFile(path, spc, db, int(m.group("rel")), FORKS[m.group("fork") or ""],
                           int(m.group("seg") or 0), data))
    return out


def relation_pages(files: dict):
    """Yield (spc, db, rel, fork, blkno, page) for every page of every relation file."""
    for f in relation_files(files):
        for i in range(len(f.data) // BLCKSZ):
            yield (f.spc, f.db, f.rel, f.fork, f.segno * RELSEG_BLOCKS + i,
                   f.data[i * BLCKSZ:(i + 1) * BLCKSZ])


def relation_sizes(files: dict) -> dict:
    """{(spc, db, rel, fork): number of blocks}."""
    sizes = {}
    for f in relation_files(files):
        k = (f.spc, f.db, f.rel, f.fork)
        sizes[k] = max(sizes.get(k, 0), f.segno * RELSEG_BLOCKS + len(f.data) // BLCKSZ)
    return sizes


def initdb_files(remote: RemoteDir, tenant: str, tl: str) -> dict:
    key = f"tenants/{tenant}/timelines/{tl}/initdb.tar.zst"
    assert remote.exists(key), f"no {key} in remote storage: {remote.keys('tenants/')[:50]}"
    return read_initdb_tarball(remote.read(key))


# ---- import sources (docs/import.md "The source") ----


def read_tree(root: Path) -> dict:
    """{relative path: bytes} of every regular file under root."""
    files = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            if p.is_file() and not p.is_symlink():
                files[str(p.relative_to(root))] = p.read_bytes()
    return files


def build_source_pgdata(out: Path, scale: int, setup=None):
    """A cleanly shut down PGDATA copied (without WAL) to out/pgdata: initdb and a temporary
    postgres (PgCluster: the postgres user, its own port and directory), `pgbench -i -s scale`,
    then setup(cluster) (its result is returned), then a fast shutdown (SIGINT to the postmaster's
    pid: a shutdown checkpoint). Returns (out/pgdata, setup's result); the cluster is removed."""
    cluster = PgCluster(prefix="import-src-")
    try:
        cluster.start()
        user = ["runuser", "-u", "postgres", "--"] if cluster.as_root else []
        res = subprocess.run(
            user + [str(PG_BIN_DIR / "pgbench"), "-i", "-s", str(scale), "-h",
                    str(cluster.sockdir), "-p", str(cluster.port), "-U", "postgres", "postgres"],
            capture_output=True, text=True, timeout=180, cwd=str(cluster.root))
        assert res.returncode == 0, res.stderr
        result = setup(cluster) if setup is not None else None
        os.kill(cluster.pid, signal.SIGINT)  # fast shutdown: a clean shutdown checkpoint
        cluster.popen.wait(timeout=60)
        shutil.copytree(cluster.datadir, out / "pgdata",
                        ignore=lambda d, names: names if d.endswith("pg_wal") else [])
        return out / "pgdata", result
    finally:
        cluster.stop()


def pgbench_source(scale: int, setup=None):
    """Generator for a module-scoped fixture: yields (pgdata, setup's result) of
    build_source_pgdata in a fresh /tmp directory, removed afterwards."""
    out = Path(tempfile.mkdtemp(prefix="import-pgdata-", dir="/tmp"))
    try:
        yield build_source_pgdata(out, scale, setup)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def mark_done(loc: Path, body: bytes = b'{"done": true}'):
    """Write loc/status/pgdata atomically (as a control plane would: a pageserver polling it must
    never read a half-written file)."""
    (loc / "status").mkdir(exist_ok=True)
    tmp = loc / "status" / "pgdata.writing"
    tmp.write_bytes(body)
    os.replace(tmp, loc / "status" / "pgdata")


def make_location(pgdata: Path, tmp_path: Path, done: bool = True) -> Path:
    """An import location: a copy of pgdata in loc/pgdata, then (done) loc/status/pgdata."""
    loc = tmp_path / f"loc-{new_id()[:8]}"
    shutil.copytree(pgdata, loc / "pgdata")
    if done:
        mark_done(loc)
    return loc


def pg_control_checkpoint_lsn(pgdata: Path) -> int:
    """ControlFileData.checkPoint of global/pg_control (after system_identifier u64,
    pg_control_version u32, catalog_version_no u32, state u32 + padding, time i64): the
    shutdown checkpoint's location (pg_controldata's "Latest checkpoint location")."""
    data = (pgdata / "global" / "pg_control").read_bytes()
    return struct.unpack_from("<Q", data, 32)[0]


def import_base_lsn(pgdata: Path) -> int:
    """docs/import.md "Plan": the base LSN is the checkpoint location aligned up to 8."""
    return (pg_control_checkpoint_lsn(pgdata) + 7) & ~7


# ---- the environment ----


class PsEnv:
    """Pageservers of one test (or module) wired to one FakeStorcon, plus remote storage."""

    def __init__(self, env: Env, storcon: FakeStorcon):
        self.env = env
        self.storcon = storcon
        self.remote = S3Remote(env.s3.client()) if env.s3_mode() else RemoteDir(env.remote_storage)
        self.pageservers = []

    def pageserver(self, start: bool = True, **kwargs) -> Pageserver:
        kwargs.setdefault("control_plane_api", self.storcon.api_url)
        ps = Pageserver(self.env, self.env.next_node_id(), **kwargs)
        self.pageservers.append(ps)
        if start:
            ps.start()
            wait_ready(ps)
        return ps

    def start_all(self, servers):
        """Start pageservers in parallel, then wait until each is healthy and ready."""
        for ps in servers:
            ps.start(wait=False)
        for ps in servers:
            ps.wait_healthy()
            wait_ready(ps)

    def attach(self, ps, tsid: str, gen: int = None, mode: str = "AttachedSingle",
               shard_number: int = 0, shard_count: int = 0, stripe: int = 0, tenant_conf=None,
               wait_active: bool = True) -> dict:
        """Issue a generation (gen, or the next one) in the fake storcon, record the node's
        intent, PUT the location config (200) and wait until the tenant is Active."""
        gen = self.storcon.issue(tsid, gen)
        self.storcon.set_intent(ps.id, tsid, "AttachedSingle", stripe)
        conf = location_conf(mode, gen, shard_number, shard_count, stripe, tenant_conf)
        ok_json(put_location(ps, tsid, conf))
        if wait_active:
            wait_tenant_active(ps, tsid)
        return conf

    def secondary(self, ps, tsid: str, warm: bool = False, shard_number: int = 0,
                  shard_count: int = 0, stripe: int = 0, tenant_conf=None) -> dict:
        self.storcon.set_intent(ps.id, tsid, "Secondary", stripe)
        conf = location_conf("Secondary", None, shard_number, shard_count, stripe, tenant_conf,
                             {"warm": warm})
        ok_json(put_location(ps, tsid, conf))
        return conf


class CombinedProcs:
    """What conftest's report hook reads from item._harness_procs: the test's own processes and
    the module's shared ones, so a failing test shows the shared pageserver's log too."""

    def __init__(self, *registries):
        self.registries = registries

    @property
    def processes(self):
        return [p for r in self.registries for p in r.processes]

    def log_tails(self, lines: int = 60) -> str:
        return "\n".join(r.log_tails(lines) for r in self.registries if r.processes)

    def cleanup(self, timeout: float = 15.0):  # only the test's own registry (the first)
        return self.registries[0].cleanup(timeout)


@pytest.fixture
def fake_storcon():
    fs = FakeStorcon().start()
    try:
        yield fs
    finally:
        fs.stop()


@pytest.fixture
def ps_env(env, fake_storcon) -> PsEnv:
    return PsEnv(env, fake_storcon)


@pytest.fixture(scope="module")
def module_ps_env(tmp_path_factory):
    directory = tmp_path_factory.mktemp("module_env")
    registry = ProcessRegistry(directory)
    storcon = FakeStorcon().start()
    try:
        yield PsEnv(Env(directory, registry), storcon)
    finally:
        problems = registry.cleanup()
        storcon.stop()
        if problems:
            pytest.fail("module process cleanup:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def shared_ps_env(request, module_ps_env, procs) -> PsEnv:
    request.node._harness_procs = CombinedProcs(procs, module_ps_env.env.procs)
    return module_ps_env
