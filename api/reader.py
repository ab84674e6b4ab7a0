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


class Session:
    """One request's transaction; `scope` is None when PostgreSQL knows no such live token."""

    def __init__(self, conn: psycopg.Connection, scope: Scope | None) -> None:
        self.conn = conn
        self.scope = scope

    def rows(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of `sql/api/<query>.sql` as dicts."""
        return self.batch((query, params))[0]

    def batch(self, *queries: tuple[str, dict[str, Any] | None]) -> list[list[dict[str, Any]]]:
        """Several `sql/api/` queries sent in one round trip (psycopg's pipeline mode)."""
        with self.conn.pipeline():
            cursors = []
            for query, params in queries:
                cur = self.conn.cursor(row_factory=dict_row)
                cur.execute(load_sql(f"api/{query}").encode(), params or {})
                cursors.append(cur)
        return [cur.fetchall() for cur in cursors]


class Reader:
    def __init__(self, url: str, pool_size: int = 8) -> None:
        # no pre-ping: a request's latency is a few round trips, and a connection the server
        # dropped fails that one request (503) and leaves the pool
        self.engine = create_engine(sqlalchemy_uri(url, "psycopg"), pool_size=pool_size)

    @contextmanager
    def session(self, token: str) -> Iterator[Session]:
        with self.engine.begin() as outer:
            conn = outer.connection.driver_connection
            assert isinstance(conn, psycopg.Connection)
            with conn.pipeline():  # one round trip for the token and its scope
                # transaction-local: the pooled connection forgets the token at commit
                conn.execute("SELECT set_config('dashboard.token', %s, true)", (token,))
                scope_query = conn.execute(
                    "SELECT bool_or(is_admin), min(targetologist) FROM marts.dashboard_scope()"
                )
            found = scope_query.fetchone()
            scope = None if found is None or found[0] is None else Scope(found[0], found[1])
            yield Session(conn, scope)
