-- The ClickHouse side of user_logins: one row per change, collapsed by id to
-- the highest _version (the commit LSN, design.md §2). ORDER BY id and no
-- partition key: ReplacingMergeTree only collapses within a partition.
-- {{DATETIME_US}}, {{NOW_US}} and {{REPLACING_ENGINE}} are filled in for the
-- server's version (src/sink/clickhouse/schema.ts): DateTime64(6) and
-- ReplacingMergeTree(_version, _is_deleted) where the server has them,
-- DateTime and ReplacingMergeTree(_version) on older servers such as 18.16.
-- {{DATABASE}} is the target database: with `migrate --cluster` each replica
-- runs the DDL in its own session, where an unqualified name means `default`
-- (src/sink/clickhouse/cluster.ts also makes the table Replicated there).
CREATE TABLE IF NOT EXISTS user_logins (
    id Int32,
    username Nullable(String),
    event_type Nullable(String),
    event_time Nullable({{DATETIME_US}}),
    _version UInt64,
    _is_deleted UInt8,
    _synced_at {{DATETIME_US}} DEFAULT {{NOW_US}}
) ENGINE = {{REPLACING_ENGINE}}
ORDER BY id;

-- What PostgreSQL holds now: the latest version of each id, deletes removed.
CREATE VIEW IF NOT EXISTS user_logins_current AS
SELECT id, username, event_type, event_time, _version, _synced_at
FROM {{DATABASE}}.user_logins FINAL
WHERE _is_deleted = 0;
