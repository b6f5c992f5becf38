"""The storage controller's operations (storcon.md "Operations"): GET /debug/v1/operations lists
those in flight with their kind, state, step and locks; a tenant delete issued during a timeline
create waits in the Locking state for the tenant's lock, which the create holds shared."""

import threading
import time

from storcon_env import (  # noqa: F401 - fixtures are used by name
    TIMELINE_TIMEOUT,
    cluster,
    cluster_factory,
    ok_json,
    tsid_of,
    wait_for,
)


def _operations(cluster):
    return ok_json(cluster.storcon.get("/debug/v1/operations"), 200)


def test_debug_operations_lists_in_flight_operations_and_their_locks(cluster):
    assert _operations(cluster) == []
    tenant, _ = cluster.create_tenant(count=2, stripe=2048)
    cluster.reconcile_until_idle()
    attached = cluster.attached(tenant)
    cluster.ps_failpoint(cluster.ps(attached[tsid_of(tenant, 0, 2)]), "bootstrap-before-initdb",
                         "1*sleep(3000)")
    done = {}

    def create():
        done["create"] = cluster.create_timeline(tenant)

    def delete():
        done["delete"] = cluster.delete_tenant(tenant)

    tc = threading.Thread(target=create, daemon=True)
    tc.start()
    wait_for(lambda: any(o["kind"] == "timeline_create" for o in _operations(cluster)), 10,
             "the timeline create listed")
    td = threading.Thread(target=delete, daemon=True)
    td.start()

    def both_listed():
        ops = _operations(cluster)
        return len(ops) == 2 and ops

    ops = wait_for(both_listed, 10, "both operations listed")
    create_op, delete_op = ops
    assert create_op["kind"] == "timeline_create"
    assert create_op["state"] == "Running"
    assert create_op["step"] == "fanning out"
    assert create_op["locks"] == [{"tenant_id": tenant, "mode": "shared", "held": True}]
    assert delete_op["kind"] == "tenant_delete"
    assert delete_op["state"] == "Locking"
    assert delete_op["steps"] == 0
    assert delete_op["locks"] == [{"tenant_id": tenant, "mode": "exclusive", "held": False}]
    assert delete_op["id"] > create_op["id"]
    assert delete_op["deadline_in_ms"] is None

    tc.join(timeout=TIMELINE_TIMEOUT)
    td.join(timeout=120)
    ok_json(done["create"], 201)
    assert done["delete"].status_code == 200, done["delete"].text
    wait_for(lambda: _operations(cluster) == [], 10, "no operation in flight")
