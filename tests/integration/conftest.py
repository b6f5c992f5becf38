"""pytest wiring for the integration suite.

Fixtures (see fixtures/ for the classes):
  pg                   session (= per xdist worker): a throwaway Postgres 15 cluster (PgCluster)
  database / db_url    a fresh database per test, dropped afterwards
  procs                the test's ProcessRegistry: everything started is stopped at teardown
  env                  Env: test directory, procs, lazily generated auth keys, node id counter
  keys / token         the test's Ed25519 key pair; token(scope, tenant_id=None) -> JWT
  storcon_factory      make(auth=False, db_url=None, start=True, **kw) -> Storcon
  storcon              a started storcon (--dev) on a fresh database
  pageserver_factory   make(n=1, auth=False, start=True, **kw) -> [Pageserver] (ids 1..n, one
                       shared file:// remote storage per test)
  pageserver           one started pageserver
  fake_control_plane   FakeControlPlane: a recording HTTP server on a free port

Also: a per-test timeout (default 120 s; @pytest.mark.test_timeout(seconds) or
STORAGE_TEST_TIMEOUT) and the tails of every process log attached to a failing test's report.
"""

import os
import signal

import pytest

from fixtures.daemons import Env, Pageserver, Storcon
from fixtures.fake_control_plane import FakeControlPlane
from fixtures.postgres import PgCluster
from fixtures.process import ProcessRegistry
from fixtures.util import build_dir

DEFAULT_TEST_TIMEOUT = 120


def pytest_report_header(config):
    bindir = build_dir() / "bin"
    found = [n for n in ("storcon", "pageserver", "storconctl") if (bindir / n).exists()]
    return f"storage build: {bindir} (found: {', '.join(found) or 'nothing'})"


class TestTimeout(Exception):
    """The test body ran longer than its timeout."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Bound every test body with SIGALRM so a hung daemon call fails the test instead of the
    whole run; teardown (which stops processes) still runs."""
    marker = item.get_closest_marker("test_timeout")
    seconds = int(marker.args[0]) if marker else int(
        os.environ.get("STORAGE_TEST_TIMEOUT", DEFAULT_TEST_TIMEOUT))

    def on_alarm(signum, frame):
        raise TestTimeout(f"test exceeded its {seconds}s timeout")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tails of the test's process logs to the first failing phase's report."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed or getattr(item, "_harness_logs_attached", False):
        return
    procs = getattr(item, "_harness_procs", None)
    if procs is not None and procs.processes:
        rep.sections.append(("process logs", procs.log_tails()))
        item._harness_logs_attached = True


# ---- Postgres ----


@pytest.fixture(scope="session")
def pg():
    cluster = PgCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


class Database:
    """One test's database in the worker's cluster."""

    def __init__(self, pg: PgCluster, name: str):
        self.pg = pg
        self.name = name
        self.url = pg.url(name)

    def query(self, sql: str, params=None):
        return self.pg.query(self.name, sql, params)

    def connect(self, autocommit: bool = True):
        return self.pg.connect(self.name, autocommit)


@pytest.fixture
def database(request, pg):
    name = pg.create_database()
    try:
        yield Database(pg, name)
    finally:
        # Stop the test's daemons before their database goes away, whatever the fixture order
        # (the procs fixture reports any problems found here).
        procs = getattr(request.node, "_harness_procs", None)
        if procs is not None:
            procs.cleanup()
        pg.drop_database(name)


@pytest.fixture
def db_url(database):
    return database.url


# ---- processes and daemons ----


@pytest.fixture
def procs(request, tmp_path):
    registry = ProcessRegistry(tmp_path)
    request.node._harness_procs = registry
    yield registry
    registry.cleanup()
    if registry.problems:
        pytest.fail("process cleanup:\n" + "\n".join(registry.problems), pytrace=False)


@pytest.fixture
def env(tmp_path, procs):
    return Env(tmp_path, procs)


@pytest.fixture
def keys(env):
    return env.keys


@pytest.fixture
def token(env):
    return env.token


@pytest.fixture
def storcon_factory(request, env):
    def make(auth: bool = False, db_url: str = None, start: bool = True, **kwargs) -> Storcon:
        if db_url is None:
            db_url = request.getfixturevalue("db_url")
        sc = Storcon(env, db_url, auth=auth, **kwargs)
        if start:
            sc.start()
        return sc

    return make


@pytest.fixture
def storcon(storcon_factory) -> Storcon:
    return storcon_factory()


@pytest.fixture
def pageserver_factory(env):
    def make(n: int = 1, auth: bool = False, start: bool = True, **kwargs):
        servers = [Pageserver(env, env.next_node_id(), auth=auth, **kwargs) for _ in range(n)]
        if start:
            for ps in servers:  # start all, then wait: they come up in parallel
                ps.start(wait=False)
            for ps in servers:
                ps.wait_healthy()
        return servers

    return make


@pytest.fixture
def pageserver(pageserver_factory) -> Pageserver:
    return pageserver_factory(1)[0]


@pytest.fixture
def fake_control_plane():
    cp = FakeControlPlane().start()
    try:
        yield cp
    finally:
        cp.stop()
