-- 0001_initial down: drop everything 0001_initial.up.sql created.
DROP TABLE controllers;
DROP TABLE timeline_imports;
DROP TABLE nodes;
DROP TABLE tenant_shards;
