-- Run once by scripts/stack.sh as the cluster's superuser, right after initdb.
-- The `walbridge` role is what the CLIs use: it owns the database (so it can
-- create the table, publication and slot) and may replicate, but is not a
-- superuser. CREATEDB lets the tests give each test its own database.
-- Replication origins are superuser-only unless granted.
CREATE ROLE walbridge LOGIN REPLICATION CREATEDB PASSWORD 'walbridge';
CREATE DATABASE walbridge OWNER walbridge;
GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text) TO walbridge;
GRANT EXECUTE ON FUNCTION pg_replication_origin_drop(text) TO walbridge;
GRANT EXECUTE ON FUNCTION pg_replication_origin_oid(text) TO walbridge;
GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text) TO walbridge;
GRANT EXECUTE ON FUNCTION pg_replication_origin_session_reset() TO walbridge;
GRANT EXECUTE ON FUNCTION pg_replication_origin_session_is_setup() TO walbridge;
