"""The Supabase projects' own databases: created from the declared shapes
(`sandbox.supabase_shapes`), kept in step with the world by upserting what changed and deleting
what was deleted, each row written through its table's shape."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from resources import vendor_json
from resources.sql_files import load_sql
from resources.supabase import KEY_DIGEST_FILE
from sandbox.supabase_shapes import ENUMS, Column, TableShape, shapes
from sandbox.world import Table

JSON_TYPES = frozenset({"json", "jsonb"})
# The projects whose owners installed the optional key-digest function (deletions found in a few
# requests); the others are found by counts over key ranges, as a project without it is.
KEY_DIGEST_PROJECTS = frozenset({"main", "tripwire"})


def ddl(tables: dict[str, TableShape]) -> sql.Composed:
    """CREATE TYPE for the enums the tables use, then CREATE TABLE for each, in order (a foreign
    key's table comes first in the declaration)."""
    used = {c.type for shape in tables.values() for c in shape.columns}
    statements: list[sql.Composable] = [
        sql.SQL("CREATE TYPE {} AS ENUM ({})").format(
            sql.Identifier(name), sql.SQL(", ").join(map(sql.Literal, labels))
        )
        for name, labels in ENUMS.items()
        if name in used
    ]
    for name, shape in tables.items():
        columns = sql.SQL(", ").join(_column_ddl(c) for c in shape.columns)
        statements.append(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(name), columns))
    return sql.SQL(";\n").join(statements) + sql.SQL(";")


def _column_ddl(column: Column) -> sql.Composable:
    # Types and defaults are the declaration's own SQL text, never a value from a row.
    parts: list[sql.Composable] = [sql.Identifier(column.name), sql.SQL(column.type)]
    if column.not_null:
        parts.append(sql.SQL("NOT NULL"))
    if column.default is not None:
        parts.append(sql.SQL("DEFAULT " + column.default))
    if column.primary_key:
        parts.append(sql.SQL("PRIMARY KEY"))
    if column.references is not None:
        table, _, key = column.references.partition(".")
        parts.append(
            sql.SQL("REFERENCES {} ({})").format(sql.Identifier(table), sql.Identifier(key))
        )
    return sql.SQL(" ").join(parts)


def create_schema(dsn: str, project: str, tables: dict[str, TableShape] | None = None) -> None:
    """The project's tables, as `tables` declares them (the default variant's when omitted)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ddl(tables if tables is not None else shapes()[project]))
        if project in KEY_DIGEST_PROJECTS:
            conn.execute(load_sql(KEY_DIGEST_FILE.removeprefix("sql/").removesuffix(".sql")))


def alter_table(
    dsn: str, table: str, *, add: dict[str, str] | None = None, drop: list[str] | None = None
) -> None:
    actions: list[sql.Composable] = [
        sql.SQL("ADD COLUMN {} {}").format(sql.Identifier(name), sql.SQL(type_))
        for name, type_ in (add or {}).items()
    ]
    actions += [sql.SQL("DROP COLUMN {}").format(sql.Identifier(name)) for name in drop or []]
    if not actions:
        return
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} {}").format(sql.Identifier(table), sql.SQL(", ").join(actions))
        )


def sync_tables(dsn: str, tables: dict[str, Table], table_shapes: dict[str, TableShape]) -> None:
    """Write every table's changes since the last sync, in one transaction per project."""
    with psycopg.connect(dsn) as conn:
        for name, table in tables.items():
            shape = table_shapes[name]
            _upsert(conn, name, shape, [table.rows[k] for k in sorted(table.dirty)])
            if table.deleted:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(
                        sql.Identifier(name), sql.Identifier(shape.key.name)
                    ),
                    ([shape.stored_key(k) for k in sorted(table.deleted)],),
                )
            table.dirty.clear()
            table.deleted.clear()


def _upsert(
    conn: psycopg.Connection, name: str, shape: TableShape, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    columns = shape.names()
    key = shape.key.name
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE _sync ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            cols, sql.Identifier(name)
        )
    )
    as_json = [c.type in JSON_TYPES for c in shape.columns]
    with conn.cursor().copy(sql.SQL("COPY _sync ({}) FROM STDIN").format(cols)) as copy:
        for row in rows:
            values = (c.value(row) for c in shape.columns)
            copy.write_row([_json(v) if j else v for v, j in zip(values, as_json, strict=True)])
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in columns
        if c != key
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM _sync ON CONFLICT ({}) DO UPDATE SET {}"
        ).format(sql.Identifier(name), cols, cols, sql.Identifier(key), updates)
    )
    conn.execute("DROP TABLE _sync")


def _json(value: Any) -> Any:
    # exact for any value a user's app may store: integers beyond 64 bits, deep nesting
    return None if value is None else vendor_json.dumps(value)
