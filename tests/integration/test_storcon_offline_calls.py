"""Calls to a pageserver that storcon marks Offline (storcon.md "Heartbeats and failover"):

- a timeline create waiting on a hung (SIGSTOP) pageserver answers 503 naming the node as soon
  as heartbeats mark it Offline, not after the call's timeouts and retries; the create's tenant
  lock is released with it, storcon keeps serving, and once the node is back (SIGCONT) the
  retried create succeeds;
- a node set Offline by an operator: reads passed through to it that were waiting fail at once,
  and new creates, deletes and reads for its shards fail fast with 503 instead of calling it.
"""

import signal
import threading
import time

import pytest

from storcon_env import (  # noqa: F401 - fixtures are used by name
    TIMELINE_TIMEOUT,
    cluster_factory,
    error_msg,
    new_id,
    ok_json,
    shard_tsids,
    wait_for,
)

CALL_TIMEOUT = 60.0  # storcon's per-attempt timeout of a fan-out call (3 attempts)
PROMPT = 10.0  # an answer "at once": generous for a loaded machine, far below CALL_TIMEOUT


def _operations(cl):
    return ok_json(cl.storcon.get("/debug/v1/operations"))


def _in_thread(fn):
    """Run fn in a thread; returns (thread, box) where box["r"] is fn's result and box["at"]
    the monotonic time it returned."""
    box = {}

    def run():
        try:
            box["r"] = fn()
        finally:
            box["at"] = time.monotonic()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, box


def _has_timeline(cl, tenant, tl):
    """Every shard's attached pageserver has the timeline."""
    for tsid, node in cl.attached(tenant).items():
        ok_json(cl.ps(node).get(f"/v1/tenant/{tsid}/timeline/{tl}"))
    return True


@pytest.mark.test_timeout(240)
def test_timeline_create_on_hung_node_answers_503_once_offline(cluster_factory):
    cl = cluster_factory(2)
    tenant, _ = cl.create_tenant(count=2, stripe=2048)
    cl.reconcile_until_idle()
    s0, s1 = shard_tsids(tenant, 2)
    before = cl.attached(tenant)
    # The node of shard 1: shard 0 (created first) succeeds elsewhere when the scheduler spread
    # the shards, so the create fails in its second phase with a partial result.
    victim = cl.ps(before[s1])
    assert _operations(cl) == []

    tl = new_id()
    victim.process.send_signal(signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        create, res = _in_thread(lambda: cl.create_timeline(tenant, tl))
        wait_for(lambda: any(o["kind"] == "timeline_create" for o in _operations(cl)), 10,
                 "the timeline create listed")
        # The create holds the tenant's lock: a policy change (exclusive) waits behind it.
        policy, pres = _in_thread(lambda: cl.storcon.put(
            f"/control/v1/tenant/{tenant}/policy", json={"scheduling": "Active"}, timeout=120))

        def policy_waits():
            ops = _operations(cl)
            kinds = {o["kind"]: o for o in ops}
            assert kinds.get("tenant_policy", {}).get("state") == "Locking", ops
            return ops

        wait_for(policy_waits, 10, "the policy change waiting for the tenant lock")
        assert create.is_alive(), res.get("r")

        def offline():
            assert cl.node(victim.id)["availability"] == "Offline"
            return time.monotonic()

        offline_at = wait_for(offline, timeout=CALL_TIMEOUT, what="the hung node Offline",
                              interval=0.2)
        create.join(timeout=PROMPT + 5)
        assert not create.is_alive(), "the create still waits on the Offline node"
        msg = error_msg(res["r"], 503)
        assert f"node {victim.id} is offline" in msg, msg
        assert res["at"] - offline_at < PROMPT, \
            f"the 503 came {res['at'] - offline_at:.1f}s after the node was seen Offline"
        assert res["at"] - stopped_at < CALL_TIMEOUT, "the create waited out a call timeout"

        # The lock went with the create: the policy change ran, nothing is left in flight.
        policy.join(timeout=30)
        assert not policy.is_alive(), "the policy change still waits for the tenant lock"
        ok_json(pres["r"])
        wait_for(lambda: _operations(cl) == [], 10, "no operation in flight")

        # storcon keeps serving while the node is down.
        assert ok_json(cl.storcon.get("/control/v1/node")), "no nodes listed"
        assert cl.describe(tenant)["tenant_id"] == tenant
        assert cl.storcon.get("/ready").status_code == 200
    finally:
        victim.process.send_signal(signal.SIGCONT)

    cl.wait_nodes("Active", ids=[victim.id], timeout=30)
    # The caller retries: every shard gets the timeline wherever it is attached now.
    info = ok_json(cl.create_timeline(tenant, tl), 201)
    assert info["timeline_id"] == tl, info
    _has_timeline(cl, tenant, tl)
    cl.reconcile_until_idle()
    ok_json(cl.consistency_check())


@pytest.mark.test_timeout(180)
def test_calls_to_offline_node_fail_fast(cluster_factory):
    cl = cluster_factory(2)
    tenant, _ = cl.create_tenant(count=2, stripe=2048)
    cl.reconcile_until_idle()
    s0, s1 = shard_tsids(tenant, 2)
    tl = new_id()
    ok_json(cl.create_timeline(tenant, tl), 201)
    # Pause: the shards stay where they are while their node is Offline, so every request for
    # shard 1 still names that node.
    ok_json(cl.storcon.put(f"/control/v1/tenant/{tenant}/policy", json={"scheduling": "Pause"}))
    victim = cl.attached(tenant)[s1]
    ps = cl.ps(victim)
    read = f"/v1/tenant/{s1}/timeline/{tl}"
    ok_json(cl.storcon.get(read))

    ps.process.send_signal(signal.SIGSTOP)
    try:
        reader, res = _in_thread(lambda: cl.storcon.get(read, timeout=120))
        time.sleep(1.0)  # the read reaches the hung node
        assert reader.is_alive(), res.get("r")
        set_at = time.monotonic()
        ok_json(cl.storcon.put(f"/control/v1/node/{victim}/config",
                               json={"node_id": victim, "availability": "Offline"}))
        reader.join(timeout=PROMPT)
        assert not reader.is_alive(), "the passthrough read still waits on the Offline node"
        msg = error_msg(res["r"], 503)
        assert f"node {victim} is offline" in msg, msg
        assert res["at"] - set_at < PROMPT

        # New requests for the node's shard fail fast instead of calling it.
        for what, call in [
            ("read", lambda: cl.storcon.get(read, timeout=120)),
            ("create", lambda: cl.create_timeline(tenant)),
            ("delete", lambda: cl.storcon.delete(f"/v1/tenant/{tenant}/timeline/{tl}",
                                                 timeout=120)),
        ]:
            t0 = time.monotonic()
            r = call()
            took = time.monotonic() - t0
            msg = error_msg(r, 503)
            assert f"node {victim} is offline" in msg, (what, msg)
            assert took < PROMPT, f"{what} took {took:.1f}s"
        assert cl.node(victim)["availability"] == "Offline"
        wait_for(lambda: _operations(cl) == [], 10, "no operation in flight")
    finally:
        ps.process.send_signal(signal.SIGCONT)

    # Heartbeats bring it back; the shard never moved, the timeline is still whole.
    cl.wait_nodes("Active", ids=[victim], timeout=30)
    assert cl.attached(tenant)[s1] == victim
    assert ok_json(cl.storcon.get(read))["timeline_id"] == tl
    _has_timeline(cl, tenant, tl)
    ok_json(cl.create_timeline(tenant), 201)
