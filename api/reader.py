"""The API's one way into the warehouse: a transaction as dashboard_reader that presents the
request's token to PostgreSQL, so row-level security decides which rows exist for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from resources.sql_files import load_sql
from resources.warehouse import WarehouseResource


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
        cur = self.conn.cursor(row_factory=dict_row)
        cur.execute(load_sql(f"api/{query}").encode(), params or {})
        return cur.fetchall()


class Reader:
    def __init__(self, url: str) -> None:
        self.warehouse = WarehouseResource(url=url)

    @contextmanager
    def session(self, token: str) -> Iterator[Session]:
        with self.warehouse.connection() as conn:
            # transaction-local: the pooled connection forgets the token at commit
            conn.execute("SELECT set_config('dashboard.token', %s, true)", (token,))
            found = conn.execute(
                "SELECT bool_or(is_admin), min(targetologist) FROM marts.dashboard_scope()"
            ).fetchone()
            scope = None if found is None or found[0] is None else Scope(found[0], found[1])
            yield Session(conn, scope)

    @contextmanager
    def anonymous(self) -> Iterator[Session]:
        """No token: what dashboard_reader may read without one (source freshness)."""
        with self.warehouse.connection() as conn:
            yield Session(conn, None)
