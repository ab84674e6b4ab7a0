"""The dashboard's read API: the old backend's endpoints answered from the marts, as
dashboard_reader, scoped by bearer tokens that PostgreSQL itself resolves (row-level security)."""
