-- 0002_node_https_port_and_attach_index down: drop what the up script added.
DROP INDEX tenant_shards_generation_pageserver_idx;
ALTER TABLE nodes DROP COLUMN listen_https_port;
