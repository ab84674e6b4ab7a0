-- dashboard_reader reads the marts and nothing else, whatever PUBLIC's defaults would add:
-- CREATE on schema public (databases made before PostgreSQL 15), EXECUTE on every function
-- (none of ours is PUBLIC's to call: the marts' one is granted to dashboard_reader by name).
-- The database-level part (CONNECT to this database only, no TEMPORARY: no temporary tables)
-- is sql/ops/reader_database_access.sql, which apply_ddl runs whenever it is missing, because
-- a database's own privileges are not copied with it (CREATE DATABASE ... TEMPLATE, pg_dump).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA core, marts FROM PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
GRANT EXECUTE ON FUNCTION marts.dashboard_scope() TO dashboard_reader;
-- it only ever reads: a statement that would write fails even where a grant slipped through
ALTER ROLE dashboard_reader SET default_transaction_read_only = on;
