"""The API's one way into the warehouse: a transaction as dashboard_reader that presents the
request's token to PostgreSQL, so row-level security decides which rows exist for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import create_engine

from resources.embedded_pg import sqlalchemy_uri
from resources.sql_files import load_sql


@dataclass(frozen=True)
class Scope:
    is_admin: bool
    targetologist: str | None  # None for an admin token


Query = tuple[str, dict[str, Any] | None]  # a `sql/api/` file's name and its parameters


class Session:
    """One request's transaction; `scope` is None when PostgreSQL knows no such live token;
    `results`: the rows of the queries the session was opened with."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.scope: Scope | None = None
        self.results: list[list[dict[str, Any]]] = []

    def rows(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of `sql/api/<query>.sql` as dicts."""
        return self.batch((query, params))[0]

    def batch(self, *queries: Query) -> list[list[dict[str, Any]]]:
        """Several `sql/api/` queries sent in one round trip (psycopg's pipeline mode)."""
        with self.conn.pipeline():
            cursors = [self._send(query, params) for query, params in queries]
        return [cur.fetchall() for cur in cursors]

    def _send(self, query: str, params: dict[str, Any] | None) -> psycopg.Cursor[dict[str, Any]]:
        cur = self.conn.cursor(row_factory=dict_row)
        cur.execute(load_sql(f"api/{query}").encode(), params or {})
        return cur


class Reader:
    def __init__(self, url: str, pool_size: int = 8) -> None:
        # no pre-ping: a request's latency is a few round trips, and a connection the server
        # dropped fails that one request (503) and leaves the pool
        self.engine = create_engine(sqlalchemy_uri(url, "psycopg"), pool_size=pool_size)

    @contextmanager
    def session(self, token: str, *queries: Query) -> Iterator[Session]:
        """The session under `token`, `queries` sent with the token and its scope in one round
        trip (a request's latency is its round trips on a busy server): row-level security
        hides every row from a token it does not know, so the caller may judge the scope after."""
        with self.engine.begin() as outer:
            conn = outer.connection.driver_connection
            assert isinstance(conn, psycopg.Connection)
            with conn.pipeline():
                # transaction-local: the pooled connection forgets the token at commit
                conn.execute("SELECT set_config('dashboard.token', %s, true)", (token,))
                scope_query = conn.execute(
                    "SELECT bool_or(is_admin), min(targetologist) FROM marts.dashboard_scope()"
                )
                session = Session(conn)
                cursors = [session._send(query, params) for query, params in queries]
            found = scope_query.fetchone()
            if found is not None and found[0] is not None:
                session.scope = Scope(found[0], found[1])
            session.results = [cur.fetchall() for cur in cursors]
            yield session

    def scope(self, token: str) -> Scope | None:
        """What PostgreSQL makes of `token` alone (None: unknown, expired or revoked)."""
        with self.session(token) as s:
            return s.scope
