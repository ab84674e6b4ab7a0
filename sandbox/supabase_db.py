"""The Supabase projects' own databases: created from `supabase_schema/*.sql`, kept in step with
the world by upserting what changed and deleting what was deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from sandbox.world import Table

SCHEMA_DIR = Path(__file__).resolve().parent / "supabase_schema"


def create_schema(dsn: str, project: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((SCHEMA_DIR / f"{project}.sql").read_bytes())


def sync_tables(dsn: str, tables: dict[str, Table]) -> None:
    """Write every table's changes since the last sync, in one transaction per project."""
    with psycopg.connect(dsn) as conn:
        for name, table in tables.items():
            _upsert(conn, name, [table.rows[k] for k in sorted(table.dirty)])
            if table.deleted:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(sql.Identifier(name)),
                    (sorted(table.deleted),),
                )
            table.dirty.clear()
            table.deleted.clear()


def _upsert(conn: psycopg.Connection, name: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE _sync ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            cols, sql.Identifier(name)
        )
    )
    with conn.cursor().copy(sql.SQL("COPY _sync ({}) FROM STDIN").format(cols)) as copy:
        for row in rows:
            copy.write_row([_plain(row[c]) for c in columns])
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in columns
        if c != "id"
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM _sync ON CONFLICT (id) DO UPDATE SET {}"
        ).format(sql.Identifier(name), cols, cols, updates)
    )
    conn.execute("DROP TABLE _sync")


def _plain(value: Any) -> Any:
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else value
