-- 0001_initial: the storage controller's durable state (spec/storcon.md "Postgres schema").
-- Only objects are persisted, not relationships: which node holds which shard is rebuilt at
-- startup by asking every pageserver. JSON-valued columns are text holding JSON, checked by a cast.

-- One row per tenant shard. During a split parent and child rows coexist, hence shard_count in
-- the key. generation is the latest one issued (NULL: none yet), generation_pageserver the node
-- it was issued to.
CREATE TABLE tenant_shards (
    tenant_id varchar(32) NOT NULL CHECK (tenant_id ~ '^[0-9a-f]{32}$'),
    shard_number integer NOT NULL CHECK (shard_number >= 0 AND shard_number < 256),
    shard_count integer NOT NULL CHECK (shard_count >= 0 AND shard_count < 256),
    shard_stripe_size integer NOT NULL CHECK (shard_stripe_size > 0),
    generation integer NULL CHECK (generation >= 0),
    generation_pageserver bigint NULL CHECK (generation_pageserver >= 0),
    placement_policy text NOT NULL CHECK ((placement_policy::jsonb) IS NOT NULL),
    splitting smallint NOT NULL DEFAULT 0 CHECK (splitting >= 0),
    config text NOT NULL DEFAULT '{}' CHECK ((config::jsonb) IS NOT NULL),
    scheduling_policy text NOT NULL DEFAULT '"Active"'
        CHECK ((scheduling_policy::jsonb) IS NOT NULL),
    preferred_az_id text NULL,
    PRIMARY KEY (tenant_id, shard_number, shard_count),
    CHECK (shard_number < shard_count OR (shard_count = 0 AND shard_number = 0)),
    CHECK (generation_pageserver IS NULL OR generation IS NOT NULL)
);

-- Registered pageservers. Availability is not persisted; a deleted node stays as a tombstone so
-- that it cannot register again.
CREATE TABLE nodes (
    node_id bigint PRIMARY KEY CHECK (node_id >= 0),
    scheduling_policy text NOT NULL,
    listen_http_addr text NOT NULL CHECK (listen_http_addr <> ''),
    listen_http_port integer NOT NULL CHECK (listen_http_port > 0 AND listen_http_port < 65536),
    listen_pg_addr text NOT NULL CHECK (listen_pg_addr <> ''),
    listen_pg_port integer NOT NULL CHECK (listen_pg_port > 0 AND listen_pg_port < 65536),
    availability_zone_id text NOT NULL,
    lifecycle text NOT NULL DEFAULT 'active' CHECK (lifecycle IN ('active', 'deleted'))
);

-- Timeline imports in progress (import.md): per-shard status as JSON.
CREATE TABLE timeline_imports (
    tenant_id varchar(32) NOT NULL CHECK (tenant_id ~ '^[0-9a-f]{32}$'),
    timeline_id varchar(32) NOT NULL CHECK (timeline_id ~ '^[0-9a-f]{32}$'),
    shard_statuses jsonb NOT NULL,
    PRIMARY KEY (tenant_id, timeline_id)
);

-- The current leader, for handover between controller instances.
CREATE TABLE controllers (
    address text PRIMARY KEY CHECK (address <> ''),
    started_at timestamptz NOT NULL
);
