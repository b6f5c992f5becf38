"""A controller restart and compute notifications (storcon.md "Compute notifications", "Startup").

What the control plane accepted survives a restart (the compute_notifications table: the SHA-256
of the last accepted notify-attach body per tenant, written after its 2xx), so a restart:

- with every map unchanged sends no notification at all;
- notifies a tenant whose last notification was never confirmed (the control plane answered 500
  before the restart), even though its map did not change;
- notifies a tenant whose map changed while storcon was down (a node gone meanwhile).
"""

import hashlib
import time

import pytest

from storcon_env import (  # noqa: F401 - fixtures are used by name
    cluster,
    cluster_factory,
    notified_map,
    wait_for,
)

QUIET = 3.0  # seconds without a notification after the reconciles went idle


def _records(cl) -> dict:
    """{tenant_id: body_sha256} of the compute_notifications rows."""
    return dict(cl.database.query("SELECT tenant_id, body_sha256 FROM compute_notifications"))


def _wait_recorded(cl, tenant: str):
    """Until the tenant's row holds the hash of the last body the control plane answered."""
    def recorded():
        notes = cl.cp.received("PUT", "/notify-attach",
                               predicate=lambda r: (r.json or {}).get("tenant_id") == tenant)
        if not notes:
            return False
        want = hashlib.sha256(notes[-1].body).hexdigest()
        return _records(cl).get(tenant) == want
    wait_for(recorded, timeout=20, what=f"accepted notification of {tenant} recorded")


def _restart(cl):
    assert cl.storcon.stop() == 0
    cl.restart_storcon()
    cl.reconcile_until_idle()


@pytest.mark.test_timeout(120)
def test_restart_with_unchanged_maps_sends_nothing(cluster):
    tenants = [cluster.create_tenant(count=n)[0] for n in (0, 2, 4)]
    cluster.reconcile_until_idle()
    for t in tenants:
        wait_for(lambda t=t: cluster.notifications(t), timeout=10, what="notify-attach")
        _wait_recorded(cluster, t)
    before = time.monotonic()

    _restart(cluster)
    time.sleep(QUIET)
    assert cluster.notifications(after=before) == [], "a restart re-notified unchanged maps"
    assert not any(s["is_pending_compute_notification"]
                   for t in tenants for s in cluster.describe(t)["shards"])

    # a second restart, the same
    _restart(cluster)
    time.sleep(QUIET)
    assert cluster.notifications(after=before) == []


@pytest.mark.test_timeout(120)
def test_unconfirmed_notification_is_sent_after_restart(cluster):
    confirmed, _ = cluster.create_tenant(count=2)
    cluster.reconcile_until_idle()
    _wait_recorded(cluster, confirmed)

    # The control plane fails the new tenant's notification: it is never confirmed.
    rule = cluster.cp.respond("PUT", "/notify-attach", status=500, body={"msg": "down"})
    tenant, _ = cluster.create_tenant(count=2)
    wait_for(lambda: cluster.notifications(tenant), timeout=20, what="notification tried")
    wait_for(lambda: cluster.describe(tenant)["shards"][0]["is_pending_compute_notification"],
             timeout=10, what="pending notification")
    assert tenant not in _records(cluster)
    assert cluster.storcon.stop() == 0
    cluster.cp.rules.remove(rule)
    before = time.monotonic()

    cluster.restart_storcon()
    wait_for(lambda: cluster.notifications(tenant, after=before), timeout=20,
             what="the unconfirmed tenant notified after the restart")
    cluster.reconcile_until_idle()
    _wait_recorded(cluster, tenant)
    time.sleep(1.0)
    assert cluster.notifications(confirmed, after=before) == [], \
        "the confirmed tenant was notified again"
    assert len(cluster.notifications(tenant, after=before)) == 1


@pytest.mark.test_timeout(180)
def test_map_changed_while_down_is_notified(cluster):
    tenant, _ = cluster.create_tenant(count=4)
    cluster.reconcile_until_idle()
    _wait_recorded(cluster, tenant)
    old = notified_map(cluster.notifications(tenant)[-1])
    victim = cluster.ps(max(set(old.values())))
    # a tenant on another node: its map does not change
    other = None
    for _ in range(6):
        t, _ = cluster.create_tenant(count=0)
        cluster.reconcile_until_idle()
        wait_for(lambda t=t: cluster.notifications(t), timeout=10, what="notify-attach")
        if victim.id not in notified_map(cluster.notifications(t)[-1]).values():
            other = t
            break
    assert other is not None, "every unsharded tenant landed on the victim"
    _wait_recorded(cluster, other)

    # storcon goes down, then a node it attached shards to goes away
    assert cluster.storcon.stop() == 0
    victim.kill9()
    before = time.monotonic()
    cluster.restart_storcon()

    def new_map():
        notes = cluster.notifications(tenant, after=before)
        if not notes:
            return False  # (None would count as done)
        m = notified_map(notes[-1])
        return m if victim.id not in m.values() else False
    m = wait_for(new_map, timeout=60, what="notify-attach without the node that went away")
    assert sorted(m) == [0, 1, 2, 3], m
    assert m == {n: node for n, node in m.items() if node != victim.id}
    cluster.reconcile_until_idle()
    _wait_recorded(cluster, tenant)
    assert cluster.notifications(other, after=before) == [], "an unchanged map was re-notified"
