-- Run once by scripts/stack.sh as the cluster's superuser, right after initdb.
-- The `walbridge` role is what the CLIs use: it owns the database (so it can
-- create the table, publication and slot) and may replicate, but is not a
-- superuser. CREATEDB lets the tests give each test its own database.
CREATE ROLE walbridge LOGIN REPLICATION CREATEDB PASSWORD 'walbridge';
CREATE DATABASE walbridge OWNER walbridge;

-- Replication origins (cdc's sent_to_kafka marking) are superuser-only unless
-- granted. Function privileges live in each database's catalog, so the grants
-- go into template1 (every later CREATE DATABASE, e.g. the tests', copies
-- them) and into the walbridge database, which already exists.
\set origin_grants 'GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_drop(text), pg_replication_origin_oid(text), pg_replication_origin_session_setup(text), pg_replication_origin_session_reset(), pg_replication_origin_session_is_setup() TO walbridge'
\connect template1
:origin_grants;
\connect walbridge
:origin_grants;

-- PostgreSQL 13 and 14 let only superusers use replication origins (the grants
-- above are accepted but not enough; 15 made them grantable), and cdc needs
-- them to mark sent_to_kafka and to flag an unfinished initial snapshot.
SELECT current_setting('server_version_num')::int < 150000 AS origins_need_superuser \gset
\if :origins_need_superuser
ALTER ROLE walbridge SUPERUSER;
\endif
