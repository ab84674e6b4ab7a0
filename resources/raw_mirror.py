"""Raw tables that mirror what a source serves: created from the discovered columns, widened as
the source grows (schema evolution). A column the source stops serving stays, holding its old
values; a column whose type changes is converted, or kept as text when its rows cannot be."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from resources.supabase import PREPARE_BOUNDS, Digests, KeyBuckets, TableShape


@dataclass
class MirrorChanges:
    created: bool = False
    added: list[str] = field(default_factory=list)
    retyped: list[str] = field(default_factory=list)  # "col: old → new"
    stored: dict[str, str] = field(default_factory=dict)  # the columns after, as stored_columns

    @property
    def summary(self) -> str:
        parts = ["table created"] if self.created else []
        parts += [f"added {c}" for c in self.added] + [f"retyped {c}" for c in self.retyped]
        return "; ".join(parts) or "unchanged"


def stored_columns(conn: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    """The table's columns and their types (`format_type`, e.g. timestamptz as PostgreSQL
    writes it: 'timestamp with time zone'), in order; empty when it does not exist."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        (sql.Identifier(schema, table).as_string(conn),),
    ).fetchall()
    return {name: short_type(type_name) for name, type_name in rows}


def ensure_mirror(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    columns: Sequence[tuple[str, str]],
    key: str,
    indexed: Sequence[str] = (),
) -> MirrorChanges:
    """Make `schema.table` hold `columns` (name, type) keyed by `key`, plus the system columns."""
    changes = MirrorChanges()
    target = sql.Identifier(schema, table)
    stored = stored_columns(conn, schema, table)
    if not stored:
        defs = [
            sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
            + (sql.SQL(" PRIMARY KEY") if n == key else sql.SQL(""))
            for n, t in columns
        ]
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} ({}, _raw jsonb NOT NULL, _row_hash bytea,"
                " _loaded_at timestamptz NOT NULL DEFAULT now(), _deleted_at timestamptz)"
            ).format(target, sql.SQL(", ").join(defs))
        )
        changes.created = True
    else:
        if "_row_hash" not in stored:  # a mirror made before the loader hashed rows
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN _row_hash bytea").format(target))
        for name, wanted in columns:
            have = stored.get(name)
            if have is None:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                        target, sql.Identifier(name), sql.SQL(wanted)
                    )
                )
                changes.added.append(name)
            elif have not in (short_type(wanted), "text"):  # text already holds any value
                changes.retyped.append(f"{name}: {have} → {_retype(conn, target, name, wanted)}")
    for name in indexed:
        index = f"{table}_{name}_idx"
        # looked up first: CREATE INDEX IF NOT EXISTS takes a share lock on the table even so
        if conn.execute("SELECT to_regclass(%s)", (sql.Identifier(schema, index).as_string(conn),)
                        ).fetchone() == (None,):  # fmt: skip
            conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(index), target, sql.Identifier(name)))  # fmt: skip
    changed = changes.created or changes.added or changes.retyped or "_row_hash" not in stored
    changes.stored = stored_columns(conn, schema, table) if changed else stored
    return changes


def _retype(conn: psycopg.Connection, target: sql.Identifier, column: str, wanted: str) -> str:
    """Convert a column to its new source type; when old rows do not convert, keep it as text
    (which holds any value) so that neither the old rows nor the new ones are lost."""
    col = sql.Identifier(column)
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::text::{}").format(
                    target, col, sql.SQL(wanted), col, sql.SQL(wanted)
                )
            )
        return wanted
    except psycopg.Error:
        conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE text USING {}::text").format(
                target, col, col
            )
        )
        return "text"


def record_served(
    conn: psycopg.Connection,
    source: str,
    entity: str,
    shape: TableShape,
    plan: dict[str, Any],
) -> None:
    """Note the shape served now beside the accepted one (ops.source_schemas).

    The first shape seen is accepted as it is; later, a new column is accepted as it appears
    (schema evolution), while a column gone or retyped stays a difference until someone accepts
    it (`python -m contract accept-drift`): the schema-drift check reports it meanwhile.
    """
    served = [[c.name, c.type] for c in shape.columns]
    noted = conn.execute(
        "SELECT served, accepted, plan, inferred FROM ops.source_schemas"
        " WHERE source = %s AND entity = %s",
        (source, entity),
    ).fetchone()
    # the same as noted (every hour of an unchanged table): no write, so no WAL flush at commit
    if noted is not None and tuple(noted) == (
        served, _with_new(noted[1], served), json.loads(json.dumps(plan)), shape.inferred
    ):  # fmt: skip
        return
    row = conn.execute(
        "SELECT accepted FROM ops.source_schemas WHERE source = %s AND entity = %s FOR UPDATE",
        (source, entity),
    ).fetchone()
    accepted = served if row is None else _with_new(row[0], served)
    conn.execute(
        "INSERT INTO ops.source_schemas (source, entity, served, accepted, plan, inferred)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (source, entity) DO UPDATE SET"
        " served = EXCLUDED.served, accepted = EXCLUDED.accepted, plan = EXCLUDED.plan,"
        " inferred = EXCLUDED.inferred, updated_at = now()",
        (source, entity, Jsonb(served), Jsonb(accepted), Jsonb(plan), shape.inferred),
    )


def analyze(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Refresh the table's planner statistics (a sample of its rows, not a scan)."""
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, table)))


def _with_new(accepted: list[list[str]], served: list[list[str]]) -> list[list[str]]:
    """The accepted shape plus the served columns it does not name (schema evolution)."""
    known = {name for name, _ in accepted}
    return accepted + [c for c in served if c[0] not in known]


def ensure_view(conn: psycopg.Connection, schema: str, name: str, definition: sql.Composed) -> None:
    """Create or replace the view `schema.name` as `definition` unless it is that already: its
    comment holds the definition's digest, so an unchanged view costs one catalog read and no
    catalog write (a view made otherwise, say a placeholder, has no such comment)."""
    text = definition.as_string(conn)
    digest = f"generated by the loader; definition md5 {hashlib.md5(text.encode()).hexdigest()}"
    view = sql.Identifier(schema, name)
    found = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')",
                         (view.as_string(conn),)).fetchone()  # fmt: skip
    if found == (digest,):
        return
    conn.execute(text.encode())
    conn.execute(sql.SQL("COMMENT ON VIEW {} IS {}").format(view, sql.Literal(digest)))


_SHORT = {
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "time without time zone": "time",
}


def short_type(type_name: str) -> str:
    """PostgreSQL's short name of a type, without modifiers: `timestamp with time zone` and
    `timestamptz` alike are timestamptz, `numeric(14,2)` is numeric."""
    base = type_name.split("(")[0].strip()
    return _SHORT.get(base, base)


class StoredKeys:
    """The live keys of a raw table over key ranges (lo, hi], None meaning unbounded: what
    deletion detection compares with the source's counts."""

    def __init__(self, conn: psycopg.Connection, schema: str, table: str, key: str) -> None:
        self.conn, self.target, self.key = conn, sql.Identifier(schema, table), sql.Identifier(key)
        self._key_name = key
        self._buckets: KeyBuckets | None = None

    @property
    def buckets(self) -> KeyBuckets:
        """How the key is cut into buckets, as the source cuts its own (its type read once)."""
        if self._buckets is None:
            self._buckets = KeyBuckets.of(
                self.conn, self.target.as_string(self.conn), self._key_name
            )
        return self._buckets

    def every(self, step: int) -> list[str]:
        """Every `step`-th live key in the buckets' order: the bounds of buckets of `step` keys
        (as text, as both sides take them)."""
        return self._bounds(sql.SQL("true"), sql.SQL("true"), [], step)

    def refine(self, bounds: list[str], buckets: list[int], step: int) -> list[str]:
        """Bounds (as text) cutting the given buckets into buckets of `step` keys; the buckets
        between them merge (each agreed with the source, so their union does)."""
        uppers = [bounds[b] for b in buckets if b < len(bounds)]
        bucket = self.buckets.bucket
        within = sql.SQL("{} = ANY(%s)").format(bucket)
        return self._bounds(bucket, within, [bounds, bounds, buckets], step, uppers)

    def _bounds(
        self,
        part: sql.Composable,
        within: sql.Composable,
        params: list[Any],
        step: int,
        also: Sequence[str] = (),
    ) -> list[str]:
        """The first and then each `step`-th live key of each `part` where `within` holds, and
        the keys `also`, in the buckets' order."""
        kinds = self.buckets
        query = sql.SQL(
            "SELECT k FROM (SELECT {key} AS k, row_number() OVER (PARTITION BY {part}"
            " ORDER BY {order}) AS n FROM {t} WHERE _deleted_at IS NULL AND {within}) s"
            " WHERE n %% %s = 1 UNION SELECT unnest(%s::text[]::{type}[])"
        ).format(key=self.key, part=part, order=kinds.sorted, t=self.target, within=within,
                 type=sql.SQL(kinds.type))  # fmt: skip
        order = sql.SQL('k COLLATE "C"') if kinds.collatable else sql.SQL("k")
        ordered = sql.SQL("SELECT k FROM ({}) u ORDER BY {}").format(query, order)
        rows = self.conn.execute(ordered, [*params, step, list(also)], prepare=PREPARE_BOUNDS)
        return [str(k) for (k,) in rows]

    def digests(self, bounds: list[str]) -> Digests:
        """Each non-empty bucket's live keys: their count and digest, as the source computes."""
        query = self.buckets.digests_sql(self.target, sql.SQL("_deleted_at IS NULL"))
        rows = self.conn.execute(query, [bounds], prepare=PREPARE_BOUNDS)
        return {b: (n, d) for b, n, d in rows}

    def bucket_keys(self, bounds: list[str], buckets: list[int]) -> list[Any]:
        query = self.buckets.keys_sql(self.target, sql.SQL("_deleted_at IS NULL"))
        return [k for (k,) in self.conn.execute(query, [bounds, buckets], prepare=PREPARE_BOUNDS)]

    def _where(self, lo: Any, hi: Any) -> tuple[sql.Composable, list[Any]]:
        parts: list[sql.Composable] = [sql.SQL("_deleted_at IS NULL")]
        params: list[Any] = []
        for bound, op in ((lo, ">"), (hi, "<=")):
            if bound is not None:
                parts.append(sql.SQL("{} {} %s").format(self.key, sql.SQL(op)))
                params.append(bound)
        return sql.SQL(" AND ").join(parts), params

    def count(self, lo: Any, hi: Any) -> int:
        where, params = self._where(lo, hi)
        row = self.conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {}").format(self.target, where), params
        ).fetchone()
        assert row is not None
        return int(row[0])

    def key_at(self, lo: Any, hi: Any, offset: int) -> Any:
        where, params = self._where(lo, hi)
        row = self.conn.execute(
            sql.SQL("SELECT {k} FROM {} WHERE {} ORDER BY {k} OFFSET %s LIMIT 1").format(
                self.target, where, k=self.key
            ),
            [*params, offset],
        ).fetchone()
        assert row is not None
        return row[0]

    def keys(self, lo: Any, hi: Any) -> list[Any]:
        where, params = self._where(lo, hi)
        rows = self.conn.execute(
            sql.SQL("SELECT {k} FROM {} WHERE {}").format(self.target, where, k=self.key), params
        )
        return [key for (key,) in rows]
