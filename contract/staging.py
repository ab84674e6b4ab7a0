"""The mapping layer: raw tables mirror the source's columns, and one generated view per table
(`stg_supabase_<project>.<table>`) gives core its canonical columns. Core SQL never names a
source column; which one feeds a canonical column lives here, derived from the plan."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Any

from psycopg import sql

from contract.plan import Feed, TablePlan
from contract.records import not_an_object, record_key
from resources import vendor_json
from resources.canonical import canonical_view
from resources.raw_mirror import short_type
from resources.supabase import SourceColumn, TableShape
from resources.warehouse import Columns, Rejected

# Source types the raw mirror stores as they are (in PostgreSQL's short names); the aliases are
# stored as their usual type, and any other type (enums, inet, ranges...) as the text PostgREST
# serves, arrays as the JSON arrays it serves.
STORED_AS_IS = frozenset({
    "smallint", "integer", "bigint", "numeric", "real", "double precision", "boolean", "text",
    "uuid", "date", "timestamptz", "timestamp", "time", "jsonb",
})  # fmt: skip
ALIASES = {"character varying": "text", "character": "text", "json": "jsonb"}
SYSTEM_COLUMNS = ("_raw", "_loaded_at", "_deleted_at")


def raw_type(source_type: str) -> str:
    name = short_type(source_type)
    name = ALIASES.get(name, name)
    if name in STORED_AS_IS:
        return name
    return "jsonb" if source_type.endswith("[]") else "text"


def raw_columns(shape: TableShape) -> list[tuple[str, str]]:
    """The raw mirror's typed columns: every served column, in the source's order."""
    return [(c.name, raw_type(c.type)) for c in shape.columns]


class RowValues:
    """Served records as COPY values (`Columns`) for the raw mirror's (name, stored type)
    columns, then `_raw`: a jsonb column's value, and any object or array, as JSON text.

    A page is converted a column at a time (a map in C per column, no Python call per record);
    a page where some record may fail the plan's check, or is not an object, goes record by
    record so that each bad one is quarantined with its reason.
    """

    def __init__(self, columns: list[tuple[str, str]], plan: TablePlan) -> None:
        self.names = [name for name, _ in columns]
        self.jsonb = [stored == "jsonb" for _, stored in columns]
        self.plan = plan

    def page(self, records: list[Any]) -> Sequence[Columns | Rejected]:
        """The page's rows, a bad record's reason in its place."""
        if not records or set(map(type, records)) != {dict}:
            return [self._one(r) for r in records]
        columns = _Columns(records)
        if not self.plan.passes(columns):
            return [self._one(r) for r in records]
        return self._rows(records, columns)

    def _one(self, record: Any) -> Columns | Rejected:
        if not isinstance(record, dict):
            return not_an_object(record)
        reason = self.plan.check(record)
        if reason is not None:
            return Rejected(record_key(record, self.plan.key.name), reason, record)
        return self._rows([record], _Columns([record]))[0]

    def _rows(self, records: list[dict[str, Any]], columns: _Columns) -> list[Columns]:
        values = [_as_json(columns(n), j) for n, j in zip(self.names, self.jsonb, strict=True)]
        return [Columns([*values, vendor_json.dumps_all(records)])]


class _Columns:
    """A page's values of one source column at a time, each taken once (None where absent)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.taken: dict[str, list[Any]] = {}

    def __call__(self, name: str) -> list[Any]:
        if name not in self.taken:
            self.taken[name] = list(map(dict.get, self.records, repeat(name)))
        return self.taken[name]


_CONTAINERS = frozenset({dict, list})  # what JSON parsing makes of objects and arrays


def _as_json(values: list[Any], jsonb: bool) -> list[Any]:
    """A column's values, as JSON text where the column is jsonb or a value is an object or
    array (rare in a typed column: one pass in C over the types finds it)."""
    if not jsonb and _CONTAINERS.isdisjoint(map(type, values)):
        return values
    dumps = vendor_json.dumps
    return [dumps(v) if v is not None and (jsonb or type(v) in _CONTAINERS) else v for v in values]


def infer_shape(name: str, key: str, rows: list[dict[str, Any]]) -> TableShape:
    """A table's shape guessed from served rows, when the key may not read the schema."""
    types: dict[str, str] = {}
    for row in rows:
        for column, value in row.items():
            if value is not None and column not in types:
                types[column] = _json_type(value)
    names = list(dict.fromkeys(c for row in rows for c in row))
    columns = tuple(SourceColumn(c, types.get(c, "text")) for c in names)
    return TableShape(name, columns, (key,), inferred=True)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "numeric"
    if isinstance(value, dict | list):
        return "jsonb"
    return "text"


def view_sql(plan: TablePlan, raw_types: dict[str, str]) -> sql.Composed:
    """`CREATE OR REPLACE VIEW` of the canonical columns over the raw mirror.

    `raw_types` are the raw table's stored column types (a column whose type changed at the
    source may be stored wider than the source says now).
    """
    table = plan.entry.canonical
    key = sql.SQL("r.{}::text AS id").format(sql.Identifier(plan.key.name))
    items: list[sql.Composable] = [
        key,
        *(_feed_sql(f, raw_types, plan.entry.timezone) for f in plan.feeds),
    ]
    items.append(sql.SQL("r._loaded_at, r._deleted_at"))
    return canonical_view(
        table, items, sql.SQL("FROM {} r").format(sql.Identifier(table.raw_schema, table.name))
    )


def _feed_sql(feed: Feed, raw_types: dict[str, str], zone: str) -> sql.Composable:
    kind = feed.canonical.type
    alias = sql.Identifier(feed.canonical.name)
    if feed.source is None:
        value = None if feed.constant is None else feed.constant.value
        return sql.SQL("CAST({} AS {}) AS {}").format(sql.Literal(value), sql.SQL(kind), alias)
    stored = raw_types.get(feed.source.name, raw_type(feed.source.type))
    expr: sql.Composable = sql.SQL("r.{}").format(sql.Identifier(feed.source.name))
    if stored == "jsonb" and kind != "jsonb":
        expr = sql.SQL("({} #>> '{{}}')").format(expr)
        stored = "text"
    if kind == "timestamptz" and stored in ("timestamp", "date"):
        # a wall time without a zone means the zone the contract names for this table
        expr = sql.SQL("({}::timestamp AT TIME ZONE {})").format(expr, sql.Literal(zone))
    elif kind == "jsonb" and stored != "jsonb":
        expr = sql.SQL("to_jsonb({})").format(expr)
    elif kind != stored:
        expr = sql.SQL("{}::{}").format(expr, sql.SQL(kind))
    return sql.SQL("{} AS {}").format(expr, alias)
