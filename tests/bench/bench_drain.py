"""bench_drain.py: drain and fill of a node holding 64 attached shards with warm secondaries
(run through tests/bench/bench_drain.sh, never by CI: the integration conftest is loaded as a
plugin). Prints figures, asserts nothing on time.

Cluster: storcon + 2 pageservers; BENCH_DRAIN_TENANTS (default 32) tenants of 4 shards with
placement {"Attached": 1}, so each node holds about 64 attached shards and the other node a warm
secondary of each. One of the tenants has a bootstrapped timeline and a reader (the integration
test's Reader) reads one page per shard in a loop from wherever storcon says it is attached.

Baseline, in the same run: the drain of a node holding one attached shard (the cost of one move
through the same path). Then, timed from the PUT to the node showing no operation: the drain of
node 1 (ends PauseForRestart) and its fill (ends Active). Printed: both times, the number of
shards moved, the ratio drain / (moves x baseline) (how much the 64 parallel moves overlap), and
the longest window the reader saw with failing reads; the issue's targets are a drain under 30 s
and a read window under 1 s."""

import os
import time

from storcon_env import (  # noqa: F401 - fixtures are used by name
    cluster_factory,
    new_id,
    ok_json,
)
from test_storcon_drain import Reader, node_shards, settle, wait_op_end

TENANTS = int(os.environ.get("BENCH_DRAIN_TENANTS", "32"))


def timed_op(cl, node_id, op, final):
    started = time.monotonic()
    r = cl.storcon.put(f"/control/v1/node/{node_id}/{op}")
    assert r.status_code == 202, r.text
    wait_op_end(cl, node_id, final, timeout=600)
    return time.monotonic() - started


def test_bench_drain(cluster_factory):
    cl = cluster_factory(2)
    a, b = (ps.id for ps in cl.pageservers)
    # baseline: one shard
    one, _ = cl.create_tenant(placement={"Attached": 1})
    settle(cl)
    holder = cl.attached(one)[one]
    base = timed_op(cl, holder, "drain", "PauseForRestart")
    ok_json(cl.storcon.put(f"/control/v1/node/{holder}/config",
                           json={"node_id": holder, "scheduling": "Active"}))
    settle(cl)
    ok_json(cl.storcon.delete(f"/v1/tenant/{one}", timeout=60))

    tenants = [cl.create_tenant(count=4, placement={"Attached": 1})[0] for _ in range(TENANTS)]
    settle(cl)
    tl = new_id()
    ok_json(cl.create_timeline(tenants[0], tl), 201)
    settle(cl)
    attached = len(node_shards(cl, a)[0])
    reader = Reader(cl, tenants[0], 4, tl)
    reader.start()
    try:
        time.sleep(0.5)
        drain = timed_op(cl, a, "drain", "PauseForRestart")
        settle(cl)
        fill = timed_op(cl, a, "fill", "Active")
        settle(cl)
        back = len(node_shards(cl, a)[0])
        time.sleep(0.5)
    finally:
        reader.stop()
    reader.check()
    print(f"\nbench_drain: baseline drain of 1 shard {base:.2f} s")
    print(f"bench_drain: drain of {attached} attached shards {drain:.2f} s "
          f"(target < 30 s); ratio to {attached} x baseline "
          f"{drain / max(attached * base, 1e-9):.3f}")
    print(f"bench_drain: fill back to {back} attached shards {fill:.2f} s")
    print(f"bench_drain: reader {reader.reads} reads, {reader.failures} failed, longest read "
          f"window {reader.longest:.3f} s (target < 1 s), wrong pages {len(reader.wrong)}")
