"""Shared helpers and fixtures of the storage controller integration tests (issue 4).

A Cluster is one test's real storage stack: a storcon on the test's fresh database, N pageservers
started with `--control-plane-api <storcon>/upcall/v1/` (so they register and re-attach through
storcon), and the fake control plane (fixtures/fake_control_plane.py) as storcon's
`--control-plane-url`, recording every `PUT /notify-attach`.

Fixtures (import them by name into a test module):
  cluster_factory   make(n_pageservers=3, storcon_args=(), wait_active=True, auth=False)
                    -> Cluster
  cluster           a Cluster with three pageservers, every node Active

Helpers: ids (new_id, tsid_of), reply checks (ok_json, error_msg), the storcon routes a test
needs (create / describe / delete tenants, timelines, attach-hook, validate,
reconcile_all, consistency_check, failpoints), what the pageservers hold (their
`GET /v1/location_config`), what the database holds (tenant_shards rows), what the control plane
was told (notify-attach bodies), and a GenerationRecorder that samples tenant_shards in the
background and remembers every generation a shard ever had, so a test can assert that none ever
went backwards.
"""

import json
import re
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from fixtures.daemons import Pageserver, Storcon
from fixtures.util import REPO_ROOT, StopWaiting, wait_until

NOTIFY_PATH = "/notify-attach"
IMPORT_COMPLETE = "/import_complete"
DEFAULT_STRIPE = 2048
CREATE_TIMEOUT = 60.0  # storcon waits up to 30 s for the first reconciles
TIMELINE_TIMEOUT = 120.0  # bootstrap (initdb) on shard 0, then every other shard
ATTACHED_MODES = ("AttachedSingle", "AttachedMulti", "AttachedStale")


# ---- ids ----


def new_id() -> str:
    return uuid.uuid4().hex


def tsid_of(tenant: str, number: int = 0, count: int = 0) -> str:
    """wire.md TenantShardId: the bare tenant id for count 0, else <tenant>-NNCC."""
    return tenant if count == 0 else f"{tenant}-{number:02x}{count:02x}"


def parse_tsid(tsid: str):
    """(tenant, number, count) of a tsid (32 or 37 chars)."""
    if len(tsid) == 32:
        return tsid, 0, 0
    assert len(tsid) == 37 and tsid[32] == "-", f"not a tsid: {tsid!r}"
    return tsid[:32], int(tsid[33:35], 16), int(tsid[35:37], 16)


def shard_tsids(tenant: str, count: int) -> list:
    return [tsid_of(tenant, n, count) for n in range(max(count, 1))]


# ---- replies ----


def describe_reply(r: requests.Response) -> str:
    return f"{r.request.method} {r.url} -> {r.status_code} {r.text[:500]}"


def ok_json(r: requests.Response, status=200):
    """Assert the status (one or a tuple) and return the JSON body (None when empty)."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, describe_reply(r)
    return r.json() if r.content else None


def error_msg(r: requests.Response, status) -> str:
    """Assert an error reply with status (one or a tuple) and a JSON {"msg"} body (wire.md
    "Errors"); returns the message."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, f"expected {statuses}: {describe_reply(r)}"
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), f"Content-Type {ctype!r}: {describe_reply(r)}"
    try:
        msg = r.json().get("msg")
    except (ValueError, AttributeError):
        raise AssertionError(f"error body is not a JSON object: {describe_reply(r)}") from None
    assert isinstance(msg, str) and msg, f"no msg: {describe_reply(r)}"
    return msg


# ---- the generation recorder ----


class GenerationRecorder:
    """Samples tenant_shards every `interval` seconds in a thread (its own connection) and keeps,
    per (tenant_id, shard_number, shard_count), the sequence of distinct generations seen.
    `regressions` lists every sample where a generation was lower than one seen before (or
    became NULL after a number)."""

    def __init__(self, database, interval: float = 0.1):
        self.database = database
        self.interval = interval
        self.history = {}  # key -> [generation, ...] (distinct consecutive values)
        self.regressions = []
        self.samples = 0
        self.errors = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def sample(self):
        rows = self.database.query(
            "SELECT tenant_id, shard_number, shard_count, generation FROM tenant_shards")
        with self._lock:
            self.samples += 1
            for tenant, number, count, gen in rows:
                key = (tenant, number, count)
                seen = self.history.setdefault(key, [])
                if seen and seen[-1] == gen:
                    continue
                highest = max((g for g in seen if g is not None), default=None)
                if highest is not None and (gen is None or gen < highest):
                    self.regressions.append((key, list(seen), gen))
                seen.append(gen)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as e:  # noqa: BLE001 - keep sampling; reported by check()
                if len(self.errors) < 10:
                    self.errors.append(repr(e))
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sample()  # one last look

    def generations(self, tenant: str, number: int, count: int) -> list:
        with self._lock:
            return list(self.history.get((tenant, number, count), []))

    def check(self):
        """Assert no generation ever went backwards (and that sampling worked)."""
        assert self.samples > 0, f"generation recorder never sampled: {self.errors}"
        assert not self.regressions, f"generations went backwards: {self.regressions}"


# ---- the cluster ----


class Cluster:
    """storcon + pageservers + fake control plane of one test."""

    def __init__(self, env, database, cp, storcon: Storcon):
        self.env = env
        self.database = database
        self.cp = cp
        self.storcon = storcon
        self.pageservers = []

    # -- processes --

    @property
    def upcall_api(self) -> str:
        return f"{self.storcon.url}/upcall/v1/"

    def add_pageserver(self, start: bool = True, **kwargs) -> Pageserver:
        kwargs.setdefault("control_plane_api", self.upcall_api)
        ps = Pageserver(self.env, self.env.next_node_id(), **kwargs)
        self.pageservers.append(ps)
        if start:
            ps.start()
        return ps

    def ps(self, node_id: int) -> Pageserver:
        for ps in self.pageservers:
            if ps.id == node_id:
                return ps
        raise KeyError(f"no pageserver {node_id}")

    def restart_storcon(self, timeout: float = 60.0):
        """Start storcon again (after a kill9 or stop) on the same port and database and wait
        until /ready."""
        self.storcon.start(wait=True, timeout=timeout)

    # -- nodes --

    def nodes(self) -> dict:
        """GET /control/v1/node as {id: NodeDescribe}."""
        return {n["id"]: n for n in ok_json(self.storcon.get("/control/v1/node"))}

    def node(self, node_id: int) -> dict:
        return ok_json(self.storcon.get(f"/control/v1/node/{node_id}"))

    def wait_nodes(self, availability: str = "Active", ids=None, timeout: float = 30.0):
        """Wait until every node in ids (default: every pageserver) is registered with that
        availability."""
        ids = [ps.id for ps in self.pageservers] if ids is None else list(ids)

        def ready():
            nodes = self.nodes()
            missing = [i for i in ids if i not in nodes]
            assert not missing, f"nodes {missing} not registered: {nodes}"
            wrong = {i: nodes[i]["availability"] for i in ids
                     if nodes[i]["availability"] != availability}
            assert not wrong, f"nodes not {availability}: {wrong}"
            return nodes

        return wait_until(ready, timeout=timeout, interval=0.2, what=f"nodes {ids} {availability}")

    # -- tenants --

    def create_tenant(self, tenant: str = None, count: int = 0, stripe: int = None,
                      placement=None, status=201, **config) -> tuple:
        """POST /v1/tenant; returns (tenant_id, response body)."""
        tenant = tenant or new_id()
        body = {"new_tenant_id": tenant}
        if count or stripe is not None:
            params = {"count": count}
            if stripe is not None:
                params["stripe_size"] = stripe
            body["shard_parameters"] = params
        if placement is not None:
            body["placement_policy"] = placement
        body.update(config)
        r = self.storcon.post("/v1/tenant", json=body, timeout=CREATE_TIMEOUT)
        return tenant, ok_json(r, status)

    def describe(self, tenant: str) -> dict:
        return ok_json(self.storcon.get(f"/control/v1/tenant/{tenant}"))

    def attached(self, tenant: str) -> dict:
        """{tsid: attached node id or None} from TenantDescribe."""
        return {s["tenant_shard_id"]: s["node_attached"] for s in self.describe(tenant)["shards"]}

    def delete_tenant(self, tenant: str):
        return self.storcon.delete(f"/v1/tenant/{tenant}", timeout=90)

    def attach_hook(self, tsid: str, node_id) -> requests.Response:
        body = {"tenant_shard_id": tsid}
        if node_id is not None:
            body["node_id"] = node_id
        return self.storcon.post("/debug/v1/attach-hook", json=body)

    def validate(self, items) -> requests.Response:
        """POST /upcall/v1/validate with [(tsid, gen), ...]."""
        return self.storcon.post("/upcall/v1/validate",
                                 json={"tenants": [{"id": t, "gen": g} for t, g in items]})

    # -- timelines --

    def create_timeline(self, tenant: str, tl: str = None, **fields) -> requests.Response:
        body = {"new_timeline_id": tl or new_id(), **fields}
        return self.storcon.post(f"/v1/tenant/{tenant}/timeline", json=body,
                                 timeout=TIMELINE_TIMEOUT)

    def delete_timeline(self, tenant: str, tl: str, timeout: float = 60.0) -> requests.Response:
        """DELETE through storcon, repeating while it answers 409 ("still deleting, retry")."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.storcon.delete(f"/v1/tenant/{tenant}/timeline/{tl}", timeout=60)
            if r.status_code != 409 or time.monotonic() >= deadline:
                return r
            time.sleep(0.5)

    # -- debug --

    def reconcile_all(self) -> int:
        body = ok_json(self.storcon.post("/debug/v1/reconcile_all", timeout=30))
        if isinstance(body, dict):  # tolerate {"count": n}-style answers in messages
            raise AssertionError(f"reconcile_all answered an object, spec says a number: {body}")
        return int(body)

    def reconcile_until_idle(self, timeout: float = 60.0):
        """POST /debug/v1/reconcile_all until it starts nothing (spec: "tests loop until 0"),
        and no shard of any tenant is reconciling."""

        def idle():
            started = self.reconcile_all()
            assert started == 0, f"reconcile_all started {started}"
            tenants = ok_json(self.storcon.get("/control/v1/tenant"))
            busy = [s["tenant_shard_id"] for t in tenants for s in t["shards"]
                    if s.get("is_reconciling")]
            assert not busy, f"still reconciling: {busy}"
            return True

        wait_until(idle, timeout=timeout, interval=0.25, what="reconcile_all == 0")

    def consistency_check(self) -> requests.Response:
        return self.storcon.post("/debug/v1/consistency_check", timeout=30)

    def storcon_failpoint(self, name: str, action: str):
        ok_json(self.storcon.put("/debug/v1/failpoints",
                                 json=[{"name": name, "actions": action}]))

    @staticmethod
    def ps_failpoint(ps, name: str, action: str):
        ok_json(ps.put("/v1/failpoints", json=[{"name": name, "actions": action}]))

    # -- what the pageservers hold --

    @staticmethod
    def locations(ps) -> dict:
        """A pageserver's GET /v1/location_config as {tsid: LocationConfig or None}."""
        body = ok_json(ps.get("/v1/location_config"))
        return {tsid: conf for tsid, conf in body["tenant_shards"]}

    def tenant_locations(self, tenant: str, pageservers=None) -> dict:
        """{tsid: {node_id: LocationConfig}} of the tenant's shards on the running pageservers."""
        out = {}
        for ps in pageservers or self.pageservers:
            if not ps.process or not ps.process.is_running():
                continue
            for tsid, conf in self.locations(ps).items():
                if tsid.startswith(tenant):
                    out.setdefault(tsid, {})[ps.id] = conf
        return out

    def attached_locations(self, tenant: str) -> dict:
        """{tsid: [(node_id, generation, mode)]} of the Attached* locations on the pageservers."""
        out = {}
        for tsid, by_node in self.tenant_locations(tenant).items():
            for node, conf in by_node.items():
                if conf is not None and conf.get("mode") in ATTACHED_MODES:
                    out.setdefault(tsid, []).append((node, conf.get("generation"), conf["mode"]))
        return out

    # -- the database --

    def db_shards(self, tenant: str) -> dict:
        """{tsid: row dict} of the tenant's tenant_shards rows."""
        rows = self.database.query(
            "SELECT shard_number, shard_count, shard_stripe_size, generation, "
            "generation_pageserver, placement_policy, splitting, config, scheduling_policy "
            "FROM tenant_shards WHERE tenant_id = %s ORDER BY shard_count, shard_number",
            (tenant,))
        cols = ("shard_number", "shard_count", "shard_stripe_size", "generation",
                "generation_pageserver", "placement_policy", "splitting", "config",
                "scheduling_policy")
        return {tsid_of(tenant, r[0], r[1]): dict(zip(cols, r)) for r in rows}

    def db_generations(self, tenant: str) -> dict:
        return {tsid: row["generation"] for tsid, row in self.db_shards(tenant).items()}

    # -- the control plane --

    def notifications(self, tenant: str = None, after: float = None) -> list:
        """Bodies of the PUT /notify-attach requests received (for tenant; after a monotonic
        time), in arrival order."""
        reqs = self.cp.received("PUT", NOTIFY_PATH)
        return [r.json for r in reqs
                if (tenant is None or (r.json or {}).get("tenant_id") == tenant)
                and (after is None or r.time >= after)]

    def all_notify_requests(self) -> list:
        """Every request to a path ending in notify-attach (any method), to catch wrong
        methods or joined paths."""
        return self.cp.received(path=r".*notify-attach.*")


def notified_map(body: dict) -> dict:
    """{shard_number: node_id} of a notify-attach body (asserting no duplicates)."""
    out = {}
    for s in body["shards"]:
        assert s["shard_number"] not in out, f"shard listed twice: {body}"
        out[s["shard_number"]] = s["node_id"]
    return out


def attached_by_number(tenant: str, attached: dict) -> dict:
    """{shard_number: node} from {tsid: node}."""
    return {parse_tsid(tsid)[1]: node for tsid, node in attached.items()}


# ---- failpoints in the storcon source ----


def storcon_failpoint_names() -> list:
    """Failpoint names used in storcon/*.c (string literals passed to failpoint_check /
    failpoint_delay_ms, or #define FAILPOINT_* "name")."""
    names = set()
    pat_call = re.compile(r'failpoint_(?:check|delay_ms)\(\s*"([^"]+)"')
    pat_define = re.compile(r'#define\s+\w*FAILPOINT\w*\s+"([^"]+)"')
    for path in sorted((Path(REPO_ROOT) / "storcon").glob("*.[ch]")):
        text = path.read_text(errors="replace")
        names.update(pat_call.findall(text))
        names.update(pat_define.findall(text))
    return sorted(names)


def find_storcon_failpoint(word: str) -> str:
    """The storcon failpoint whose name contains word (fails the test when there is none)."""
    found = [n for n in storcon_failpoint_names() if word in n]
    if not found:
        pytest.fail(f"storcon has no failpoint containing {word!r} "
                    f"(known: {storcon_failpoint_names()})", pytrace=False)
    return found[0]


# ---- fixtures ----


@pytest.fixture
def cluster_factory(env, database, fake_control_plane, storcon_factory):
    made = []

    def make(n_pageservers: int = 3, storcon_args=(), wait_active: bool = True,
             auth: bool = False, **ps_kwargs) -> Cluster:
        """auth: storcon verifies tokens and signs its calls to pageservers; pageservers verify
        tokens and send a generations_api token with their upcalls."""
        sc = storcon_factory(auth=auth, db_url=database.url,
                             control_plane_url=fake_control_plane.url,
                             extra_args=list(storcon_args), start=True)
        cl = Cluster(env, database, fake_control_plane, sc)
        if auth:
            token_file = Path(env.dir) / "upcall_token"
            token_file.write_text(env.token("generations_api"))
            ps_kwargs["auth"] = True
            ps_kwargs["extra_args"] = list(ps_kwargs.get("extra_args", ())) + [
                "--control-plane-token-file", token_file]
        for _ in range(n_pageservers):
            cl.add_pageserver(start=False, **ps_kwargs)
        for ps in cl.pageservers:  # in parallel, like pageserver_factory
            ps.start(wait=False)
        for ps in cl.pageservers:
            ps.wait_healthy()
        if wait_active and n_pageservers:
            cl.wait_nodes("Active")
        made.append(cl)
        return cl

    yield make


@pytest.fixture
def cluster(cluster_factory) -> Cluster:
    return cluster_factory(3)


def wait_for(fn, timeout: float, what: str, interval: float = 0.25):
    """wait_until with the defaults these tests use."""
    return wait_until(fn, timeout=timeout, interval=interval, what=what)


# ---- timeline imports (docs/import.md) ----


def import_body(path, key="key-1") -> dict:
    """A create's import_pgdata: {"idempotency_key", "location": {"LocalFs": {"path"}}}."""
    return {"idempotency_key": key, "location": {"LocalFs": {"path": str(path)}}}


def db_statuses(cl, tenant: str, timeline: str):
    """The import row's shard_statuses ({"NNCC": status}), or None when there is no row."""
    rows = cl.database.query(
        "SELECT shard_statuses::text FROM timeline_imports WHERE tenant_id = %s AND "
        "timeline_id = %s", (tenant, timeline))
    return json.loads(rows[0][0]) if rows else None


def complete_notifications(cl, tenant=None) -> list:
    """Bodies of the PUT import_complete requests the control plane received (for tenant)."""
    return [r.json for r in cl.cp.received("PUT", IMPORT_COMPLETE)
            if tenant is None or (r.json or {}).get("tenant_id") == tenant]


def wait_row_gone(cl, tenant, tl, timeout=30.0):
    def gone():
        assert db_statuses(cl, tenant, tl) is None, db_statuses(cl, tenant, tl)
        return True
    wait_for(gone, timeout, "the import row deleted")


__all__ = [
    "ATTACHED_MODES", "CREATE_TIMEOUT", "Cluster", "DEFAULT_STRIPE", "GenerationRecorder",
    "IMPORT_COMPLETE", "NOTIFY_PATH", "StopWaiting", "TIMELINE_TIMEOUT", "attached_by_number",
    "cluster", "cluster_factory", "complete_notifications", "db_statuses", "describe_reply",
    "error_msg", "find_storcon_failpoint", "import_body", "new_id", "notified_map", "ok_json",
    "parse_tsid", "shard_tsids", "storcon_failpoint_names", "tsid_of", "wait_for",
    "wait_row_gone",
]
