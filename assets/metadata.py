"""Uniform asset metadata: row count, column schema, a PII-free markdown preview, domain counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg
from psycopg import sql
from tabulate import tabulate

from assets.columns import column_description
from resources.warehouse import WarehouseResource

PREVIEW_ROWS = 5


def table_metadata(
    warehouse: WarehouseResource,
    schema: str,
    table: str,
    *,
    hide: Iterable[str] = (),
    order_by: str = "1",
    counts: Mapping[str, Any] | None = None,
    row_count: int | None = None,
    unchanged: str | None = None,
) -> dict[str, Any]:
    """`dagster/row_count`, `dagster/column_schema` (with each column's description from
    assets/columns.py) and `preview` of a warehouse table. A caller that knows the row count
    passes it (no count(*) over the table); one whose table did not change passes `unchanged`,
    the sentence the preview then shows instead of reading rows."""
    hidden = set(hide) | {"_raw", "_row_hash"}
    columns = warehouse.fetch_all(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    )
    shown = [name for name, _ in columns if name not in hidden]
    target = sql.Identifier(schema, table)
    live = (
        sql.SQL(" WHERE _deleted_at IS NULL")
        if any(c == "_deleted_at" for c, _ in columns)
        else sql.SQL("")
    )
    with warehouse.connection() as conn:
        if row_count is None:
            found = conn.execute(sql.SQL("SELECT count(*) FROM {}{}").format(target, live))
            row_count = (found.fetchone() or (0,))[0]
        preview = unchanged
        if preview is None:
            rows = conn.execute(
                sql.SQL("SELECT {} FROM {}{} ORDER BY {} DESC LIMIT {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, shown)),
                    target,
                    live,
                    sql.SQL(order_by),  # a literal from our own code, never user input
                    sql.Literal(PREVIEW_ROWS),
                )
            ).fetchall()
            shortened = [[_short(v) for v in row] for row in rows]
            preview = tabulate(shortened, headers=shown, tablefmt="github")
    metadata: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(row_count),
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(name, type_, description=column_description(schema, table, name))
                for name, type_ in columns
            ]
        ),
        "preview": dg.MetadataValue.md(preview),
    }
    for key, value in (counts or {}).items():
        metadata[key] = value if not isinstance(value, dict) else dg.MetadataValue.json(value)
    return metadata


def _short(value: Any, limit: int = 40) -> Any:
    text = str(value) if value is not None else ""
    text = text.replace("\n", " ").replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"
