-- 0003_compute_notifications down: drop what the up script added (a controller of the older
-- schema notifies every tenant at its next start, as it always did).
DROP TABLE compute_notifications;
