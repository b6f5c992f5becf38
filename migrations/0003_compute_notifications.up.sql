-- 0003_compute_notifications: what the control plane last accepted, per tenant
-- (storcon/compute_hook.c, storcon/db_compute_notifications.c).
--
-- body_sha256 is the SHA-256 (hex) of the notify-attach body the control plane answered 2xx to.
-- It is written after that 2xx and removed before a different body is sent, so a row always
-- names a map the control plane holds; no row means unknown (never accepted, or a later
-- notification not confirmed). A restarted controller notifies only the tenants whose current
-- map has no matching row. Rows of tenants that are gone or Detached are removed at startup.
CREATE TABLE compute_notifications (
    tenant_id varchar(32) PRIMARY KEY CHECK (tenant_id ~ '^[0-9a-f]{32}$'),
    body_sha256 text NOT NULL CHECK (body_sha256 ~ '^[0-9a-f]{64}$')
);
