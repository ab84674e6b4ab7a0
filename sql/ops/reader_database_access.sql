-- pg_database (this warehouse): dashboard_reader may connect, but not create temporary tables;
-- the loading role keeps TEMPORARY (its COPY staging tables are temporary).
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO CURRENT_USER', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO dashboard_reader', current_database());
END
$$
