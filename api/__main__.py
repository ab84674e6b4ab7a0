"""`python -m api`: serve the dashboard API, and issue, list or revoke its tokens.

    python -m api serve [--host 127.0.0.1] [--port 8000]      # `make serve`
    python -m api token issue --admin [--label L] [--days N]
    python -m api token issue --targetologist NAME [--label L] [--days N]
    python -m api token list
    python -m api token revoke ID
    python -m api connection [--token TOKEN]   # the connection string a BI tool uses

The warehouse is WAREHOUSE_URL or else the embedded server. A configuration problem prints one
line naming the variable and exits 2.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
from datetime import timedelta

import dagster as dg
from dotenv import dotenv_values
from sqlalchemy.exc import DBAPIError
from tabulate import tabulate

from api import access
from api.settings import (
    PASSWORD_PLACEHOLDER,
    TOKEN_PLACEHOLDER,
    ApiSettings,
    as_reader,
    bi_url,
    reader_url,
)
from resources import embedded_pg
from resources.environment import env_file, prepare_environment
from resources.errors import ConfigError
from resources.settings import env, port_setting
from resources.warehouse import WarehouseResource


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API (OpenAPI docs at /docs)")
    serve.add_argument("--host", default=env("API_HOST") or "127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: API_PORT, else 8000")
    token = commands.add_parser("token", help="issue, list or revoke bearer tokens")
    actions = token.add_subparsers(dest="action", required=True)
    issue = actions.add_parser("issue", help="print a new token once")
    who = issue.add_mutually_exclusive_group(required=True)
    who.add_argument("--admin", action="store_true", help="sees every targetologist")
    who.add_argument("--targetologist", help="sees this targetologist's rows only")
    issue.add_argument("--label", help="who holds it (shown by `token list`)")
    issue.add_argument("--days", type=int, help="expires after this many days (default never)")
    actions.add_parser("list", help="every token's id, label and scope (never the token)")
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    connection = commands.add_parser(
        "connection", help="the connection string a BI tool uses as dashboard_reader"
    )
    connection.add_argument("--token", help="put this token in it (default: the word TOKEN)")
    return parser


def serve(host: str, port: int, user_set_warehouse: bool) -> int:
    import uvicorn

    from api.app import create_app

    owner = WarehouseResource.from_environment()
    if user_set_warehouse:
        url = reader_url(owner.url)  # someone else's warehouse: never touch it as its owner
    else:
        owner.apply_ddl()  # our embedded one: make it ready and let dashboard_reader in
        password = env("DASHBOARD_READER_PASSWORD") or secrets.token_urlsafe(24)
        owner.configure_dashboard_role(password)
        url = as_reader(owner.url, password)
    _check_reader(url)
    try:
        embedded = not user_set_warehouse or embedded_pg.serves(owner.url)
        bi_line = connection_line(owner.url, embedded)
    except ConfigError as exc:  # no TCP: the API serves all the same
        bi_line = exc.message
    # uvicorn re-raises SIGTERM once it has shut down: as an exit, so the embedded server the
    # command started is stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME: whose daemon the health judges
        app = create_app(ApiSettings(reader_url=url), instance)
        print(f"dashboard API on http://{host}:{port}/ (docs at /docs, charts at /dashboard)")
        print(f"BI tools: {bi_line}", flush=True)
        uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0


def _check_reader(url: str) -> None:
    """Fail at start, in one line, rather than on every request."""
    try:
        ready = WarehouseResource(url=url).fetch_all(
            "SELECT to_regprocedure('marts.dashboard_scope()')"
        )[0]
    except DBAPIError:
        raise ConfigError(
            "api",
            "api: dashboard_reader cannot connect to the warehouse; check DASHBOARD_READER_URL "
            "or DASHBOARD_READER_PASSWORD (and that its login is enabled).",
        ) from None
    if ready[0] is None:
        raise ConfigError(
            "api",
            "api: the warehouse has no dashboard API schema yet; run `make run` once so its "
            "migrations are applied.",
        )


def token(args: argparse.Namespace) -> int:
    warehouse = WarehouseResource.from_environment()
    warehouse.apply_ddl()
    if args.action == "issue":
        expires = timedelta(days=args.days) if args.days else None
        issued = access.issue_token(
            warehouse, targetologist=args.targetologist, label=args.label, expires_in=expires
        )
        print(f"token {issued.id} ({issued.label}); shown once, keep it secret:\n{issued.token}")
    elif args.action == "list":
        headers = ["id", "label", "scope", "created_at", "expires_at", "revoked_at"]
        print(tabulate(access.list_tokens(warehouse), headers))
    elif not access.revoke_token(warehouse, args.id):
        print(f"no live token with id {args.id}")
        return 1
    else:
        print(f"token {args.id} revoked")
    return 0


def connection_line(warehouse_url: str, embedded: bool, token: str | None = None) -> str:
    """The BI tool's connection string (on the embedded server: its TCP address), and what to
    put for PASSWORD (and TOKEN)."""
    tcp = embedded_pg.tcp_address() if embedded else None
    if embedded and tcp is None:
        raise ConfigError(
            "api",
            "api: the embedded PostgreSQL listens on its Unix socket only (started before TCP "
            f"was offered, or {embedded_pg.PORT_VARIABLE} was taken); `make stop`, then start it "
            "again for TCP on 127.0.0.1.",
        )
    if env("DASHBOARD_READER_PASSWORD"):
        password = f"{PASSWORD_PLACEHOLDER}: DASHBOARD_READER_PASSWORD's value"
    else:
        password = (f"{PASSWORD_PLACEHOLDER}: set DASHBOARD_READER_PASSWORD first; unset, `make "
                    "serve` picks a new one at each start, which no BI tool knows")  # fmt: skip
    where = "" if token else f"; {TOKEN_PLACEHOLDER}: one from `python -m api token issue`"
    return f"{bi_url(warehouse_url, tcp, token)}  ({password}{where})"


def connection(args: argparse.Namespace, user_set_warehouse: bool, was_running: bool) -> int:
    warehouse = WarehouseResource.from_environment()
    if not user_set_warehouse:
        warehouse.apply_ddl()
        warehouse.configure_dashboard_role()  # DASHBOARD_READER_PASSWORD, if set, logs in now
    embedded = not user_set_warehouse or embedded_pg.serves(warehouse.url)
    print(connection_line(warehouse.url, embedded, args.token))
    if not (user_set_warehouse or was_running):
        print("(the embedded PostgreSQL was not running, so this command stops it again; it "
              "runs while `make serve` or `make ui` does)", file=sys.stderr)  # fmt: skip
    return 0


DEFAULT_PORT = 8000


def api_port() -> int:
    """API_PORT (default 8000); a non-number is a ConfigError naming it."""
    return port_setting("API_PORT", DEFAULT_PORT, "api")


def main() -> int:
    args = _parser().parse_args()
    dotenv = dotenv_values(env_file())
    name = WarehouseResource.VARIABLE
    user_set_warehouse = bool(os.environ.get(name) or dotenv.get(name))
    was_running = embedded_pg.is_running()
    try:
        with embedded_pg.owned_server():
            prepare_environment()
            if args.command == "serve":
                return serve(args.host, args.port or api_port(), user_set_warehouse)
            if args.command == "connection":
                return connection(args, user_set_warehouse, was_running)
            return token(args)
    except ConfigError as exc:
        print(exc.message, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
