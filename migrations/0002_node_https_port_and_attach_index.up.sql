-- 0002_node_https_port_and_attach_index: two additions for the persistence layer
-- (storcon/db_nodes.c, storcon/db_tenants.c).

-- A pageserver may register an HTTPS port (spec/storcon.md, POST /control/v1/node); it is part of
-- the node's identity for the "same addresses -> no-op, different -> 409" rule. NULL: none.
ALTER TABLE nodes ADD COLUMN listen_https_port integer NULL
    CHECK (listen_https_port > 0 AND listen_https_port < 65536);

-- Re-attach bumps every shard whose generation was issued to one node. With this index it reads
-- only that node's rows instead of the whole table, and under SERIALIZABLE it predicate-locks only
-- those rows, so it does not conflict with transactions touching other nodes' shards.
CREATE INDEX tenant_shards_generation_pageserver_idx ON tenant_shards (generation_pageserver);
