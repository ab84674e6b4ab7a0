"""The warehouse: a PostgreSQL engine, idempotent DDL, and the COPY-then-merge loader.

A load streams rows into a temporary staging table with psycopg's COPY, merges them into the
target with one `INSERT ... ON CONFLICT DO UPDATE`, advances the source cursor and writes the
load log, all in one transaction: a crash anywhere leaves either the old state or the new one.
Loads never go through pandas (pandas 3 turns None in string columns into NaN, written as 'nan').

PostgreSQL is the judge of what it can store: rows are copied in batches under a savepoint, and
a batch it refuses (a NUL, a lone surrogate, a number out of range, JSON it will not take) is
halved until each refused row is found; those go to ops.quarantine with PostgreSQL's reason and
their payload, the rest of the batch loads. The good path costs one savepoint per batch.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from itertools import chain, compress
from typing import Any, ClassVar

import dagster as dg
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Engine, create_engine

from resources import vendor_json
from resources.binary_copy import binary_rows, set_types
from resources.canonical import CANONICAL_TABLES, placeholder_sql
from resources.embedded_pg import WAREHOUSE_VARIABLE, sqlalchemy_uri
from resources.model_inputs import (
    declared_inputs,
    is_model,
    mapped_inputs,
    raw_table,
    touched_sql,
)
from resources.pg_auth import scram_verifier
from resources.settings import bind, env
from resources.sql_files import apply_definitions, load_sql, migrations

# Rows per COPY under one savepoint: a refused row costs a re-copy of its batch, halved.
BATCH_ROWS = 5000
# What COPY raises for one row's value: PostgreSQL's data exceptions (class 22: out of range,
# invalid input, untranslatable characters), its program limits (nesting too deep), and what
# psycopg refuses before sending (a NUL in text, a str that is not UTF-8).
REFUSED = (psycopg.errors.DataError, psycopg.errors.ProgramLimitExceeded, psycopg.DataError,
           UnicodeEncodeError)  # fmt: skip
MIGRATIONS_LOCK = 7_300_001  # advisory lock id held while DDL is applied
# Loads hold this lock shared while they write raw rows, model builds hold it exclusively while
# they read which rows changed: a build never misses rows a load was still writing, and every
# raw change is stamped with a time after the last build that could not see it.
CHANGES_LOCK = 7_300_002
DASHBOARD_ROLE = "dashboard_reader"
DASHBOARD_ROLE_LOCK = "dashboard_reader's password"  # the session lock around its ALTER ROLE
READER_LOGIN_TIMEOUT = 5  # seconds for the login that tells whether its password is current


@dataclass(frozen=True)
class TableSpec:
    """A raw target table: its typed columns in COPY order and its merge key."""

    schema: str
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...] = ("id",)
    types: tuple[str, ...] = ()  # the columns' stored types, when known: batches go as binary
    # every typed column is its record's field of that name, all of it in `_raw` (a Supabase
    # mirror): the row hash covers `_raw` alone; otherwise it covers every value of the row
    typed_from_raw: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class LoadResult:
    rows_in: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # of `unchanged`: rows whose hash equalled the stored row's, never staged
    direct: int = 0  # of `inserted`: rows a first load COPYed straight into the empty table
    first: bool = False  # the table held no row, live or deleted, when the load began
    quarantined: int = 0
    deleted: int = 0
    cursor_before: Any = None
    cursor_after: Any = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Rejected:
    """A record that failed validation: it goes to ops.quarantine with its reason."""

    key: str | None
    reason: str
    record: Any  # the record as the vendor sent it (usually an object; any JSON value)
    refused: bool = False  # by PostgreSQL at COPY (it was counted as a row in)


@dataclass(frozen=True)
class Columns:
    """Rows given a column at a time: each of the spec's columns' values, in its order. A page
    converted a column at a time goes into COPY so, never cut into tuples and put back."""

    values: list[Sequence[Any]]

    def __len__(self) -> int:
        return len(self.values[0]) if self.values else 0


# A batch as it is copied: its columns' values (the spec's, then `_row_hash`, then the last:
# `_seq` into staging, `_loaded_at` into the target)
Batch = list[Sequence[Any]]


@cache
def engine_for(url: str) -> Engine:
    return create_engine(sqlalchemy_uri(url, "psycopg"), pool_pre_ping=True, pool_size=5)


class WarehouseResource(dg.ConfigurableResource):
    """PostgreSQL warehouse (WAREHOUSE_URL)."""

    VARIABLE: ClassVar[str] = WAREHOUSE_VARIABLE
    url: str

    @classmethod
    def bound(cls) -> dict[str, Any]:
        """The URL bound to its variable, as `definitions.py` builds the resource."""
        return bind({"url": cls.VARIABLE})

    @classmethod
    def from_environment(cls) -> WarehouseResource:
        """The warehouse a command uses, outside a Dagster run (blank when unset)."""
        return cls(url=env(cls.VARIABLE) or "")

    @property
    def engine(self) -> Engine:
        return engine_for(self.url)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # every run finds the schema it expects; on an up-to-date database this is one SELECT
        self.apply_ddl()
        try:
            self.configure_dashboard_role()
        except psycopg.errors.InsufficientPrivilege:
            context.log.warning(  # type: ignore[union-attr]
                "DASHBOARD_READER_PASSWORD is set but this warehouse user may not ALTER ROLE "
                "dashboard_reader; ask an administrator to enable its login."
            )

    def configure_dashboard_role(self, password: str | None = None) -> bool:
        """With a password (or DASHBOARD_READER_PASSWORD set), dashboard_reader may log in with
        it (the DDL creates it without login: reading the marts through it is optional).

        The role is altered only when it does not log in with that password now, under a lock:
        runs starting together never race on the role ("tuple concurrently updated"), and the
        server log sees a verifier (never the plain text) only when the password changes. The
        login itself is the test, since the role is the server's, not this database's: another
        warehouse on the same server may have given it another password since.
        True when the role was altered.
        """
        password = password or dg.EnvVar("DASHBOARD_READER_PASSWORD").get_value()
        if not password:
            return False
        # autocommit: the login below is another session, which must see the CONNECT granted
        with self.session_lock(DASHBOARD_ROLE_LOCK) as conn:
            _ensure_reader_database_access(conn)  # a database copied from a template lacks it
            if self._reader_logs_in(password):
                return False
            conn.execute(
                sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(DASHBOARD_ROLE), sql.Literal(scram_verifier(password))
                )
            )
        return True

    def _reader_logs_in(self, password: str) -> bool:
        conninfo = make_conninfo(self.url, user=DASHBOARD_ROLE, password=password)
        try:
            with psycopg.connect(conninfo, connect_timeout=READER_LOGIN_TIMEOUT):
                return True
        except psycopg.OperationalError:  # a wrong password, no LOGIN, or refused by pg_hba
            return False

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A psycopg connection inside one transaction: committed on exit, rolled back on error."""
        with self.engine.begin() as conn:
            driver = conn.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            yield driver

    @contextmanager
    def session_lock(self, key: str) -> Iterator[psycopg.Connection]:
        """An autocommit connection holding the session advisory lock `key` (waits for it): each
        statement on it commits at once, and the lock ends with the block, or with the
        connection when its process is killed."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            driver = conn.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            driver.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
            try:
                yield driver
            finally:
                driver.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))

    def apply_ddl(self) -> list[str]:
        """Apply every not-yet-applied file of `sql/ddl`; return the versions applied now."""
        applied_now = []
        with self.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATIONS_LOCK,))
            conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS ops.schema_migrations (version text PRIMARY KEY,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = dict(conn.execute("SELECT version, checksum FROM ops.schema_migrations"))
            for version, ddl in migrations():
                checksum = hashlib.sha256(ddl.encode()).hexdigest()
                if version in done:
                    if done[version] != checksum:
                        raise RuntimeError(
                            f"sql/ddl/{version}.sql changed after it was applied; "
                            "add a new migration file instead of editing an applied one"
                        )
                    continue
                conn.execute(ddl.encode())
                conn.execute(
                    "INSERT INTO ops.schema_migrations (version, checksum) VALUES (%s, %s)",
                    (version, checksum),
                )
                applied_now.append(version)
            _ensure_staging_views(conn)
            # business SQL after the views it reads; a changed file is re-applied, not migrated
            apply_definitions(conn)
            _ensure_reader_database_access(conn)
        return applied_now

    def get_cursor(self, source: str, entity: str) -> Any:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT cursor FROM ops.cursors WHERE source = %s AND entity = %s",
                (source, entity),
            ).fetchone()
        return row[0] if row else None

    def fetch_all(
        self, query: str | sql.Composed, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[tuple]:
        with self.connection() as conn:
            statement = query.encode() if isinstance(query, str) else query
            return conn.execute(statement, params).fetchall()

    def load(
        self,
        spec: TableSpec,
        rows: Iterable[Sequence[Any] | Columns | Rejected]
        | Callable[[Any], Iterable[Sequence[Any] | Columns | Rejected]],
        *,
        source: str,
        entity: str,
        new_cursor: Callable[[Any], Any] | None = None,
        snapshot: bool = False,
        before_merge: str | None = None,
    ) -> LoadResult:
        """Stream `rows` (tuples in `spec.columns` order, `Columns`, or `Rejected`) into `spec`'s
        table.

        `rows` may be a function of the stored cursor, called once this load holds the table's
        lock: an incremental read whose window starts there never re-reads what a load it
        waited for has just committed.

        `new_cursor(old)` is called after the stream is consumed and its value is stored in
        `ops.cursors` in the same transaction as the rows; None keeps the old cursor.
        `snapshot=True` says the stream is the whole table: stored rows missing from it are
        marked deleted, in the same transaction. `before_merge` names a SQL file run after
        staging and before the merge (it may compare `_staging` with the stored rows).
        """
        started = datetime.now().astimezone()
        t0 = time.perf_counter()
        result = LoadResult()
        with self.connection() as conn:
            lock_key = f"load:{spec.qualified}"
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_key,))
            result.cursor_before = _read_cursor(conn, source, entity, lock=True)
            stream = rows(result.cursor_before) if callable(rows) else rows
            empty = result.first = _holds_no_row(conn, spec)
            # a first load COPYs into the table itself: its rows are stamped as they go in, so
            # the changes lock is held (shared) from its first row, not only for a merge
            direct = _change_stamp(conn) if empty and before_merge is None else None
            into = _Destination(conn, spec, direct)
            stored = None if empty else _StoredHashes.of(conn, spec)
            rejected = _stage(spec, stream, result, stored, into)
            _quarantine(conn, source, entity, rejected)
            result.quarantined = len(rejected)
            if before_merge:
                conn.execute(load_sql(before_merge).encode())
            stamp = direct or _change_stamp(conn)
            distinct, inserted, updated = _merge(conn, spec, stamp) if into.staged else (0, 0, 0)
            result.direct = into.direct_rows
            if direct is None:
                # duplicates of a key inside one stream collapse into one row before the merge
                result.inserted, result.updated = inserted, updated
                result.unchanged = distinct - inserted - updated
            else:  # every key is new: a staged copy of one copied straight in is not a row more
                result.inserted = into.direct_rows + inserted
            if snapshot and not empty:  # a quarantined row is not gone from the source
                kept = [r.key for r in rejected if r.key is not None]
                result.deleted = _mark_absent(conn, spec, stamp, kept)
            result.cursor_after = result.cursor_before
            if new_cursor is not None:
                result.cursor_after = new_cursor(result.cursor_before)
                _write_cursor(conn, source, entity, result.cursor_after)
            result.seconds = time.perf_counter() - t0
            _log_load(conn, source, entity, started, result)
        return result

    def mark_deleted(self, spec: TableSpec, keys: Sequence[Any]) -> int:
        """Mark the live rows with these keys (found gone from the source) as deleted."""
        if len(spec.key) != 1:
            raise ValueError("deletion scans need a single-column key")
        if not keys:
            return 0
        with self.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"load:{spec.qualified}",))
            stamp = _change_stamp(conn)
            return conn.execute(
                sql.SQL(
                    "UPDATE {} SET _deleted_at = %s WHERE _deleted_at IS NULL AND {} = ANY(%s)"
                ).format(sql.Identifier(spec.schema, spec.name), sql.Identifier(spec.key[0])),
                (stamp, list(keys)),
            ).rowcount

    def apply_change(self, name: str) -> int:
        """Run the raw-table change in `sql/<name>.sql` (given `%(stamp)s`); rows it touched."""
        with self.connection() as conn:
            stamp = _change_stamp(conn)
            return conn.execute(load_sql(name).encode(), {"stamp": stamp}).rowcount

    def accept_served_schemas(self, entities: Sequence[str]) -> list[str]:
        """Take each table's served shape as its accepted one (ends its schema-drift warning);
        return the tables that had one."""
        rows = self.fetch_all(
            "UPDATE ops.source_schemas SET accepted = served WHERE entity = ANY(%s)"
            " RETURNING entity",
            (list(entities),),
        )
        return sorted(entity for (entity,) in rows)

    def last_success(self, source: str) -> datetime | None:
        """When any entity of `source` last loaded successfully (None: never)."""
        rows = self.fetch_all(
            "SELECT max(attempted_at) FROM ops.source_attempts WHERE source = %s AND succeeded",
            (source,),
        )
        return rows[0][0] if rows else None

    def record_attempt(
        self, source: str, entity: str, *, error: str | None = None, run_id: str | None = None
    ) -> None:
        """Note a load attempt (failed when `error` is set) for source_freshness."""
        with self.connection() as conn:
            conn.execute(
                "INSERT INTO ops.source_attempts (source, entity, succeeded, error, run_id)"
                " VALUES (%s, %s, %s, %s, %s)",
                (source, entity, error is None, error, run_id),
            )

    def run_model(
        self,
        table: str,
        params: dict[str, Any] | None = None,
        *,
        day_column: str | None = None,
        full: bool = False,
    ) -> ModelBuild:
        """Rebuild `table` (e.g. "core.leads") from `sql/<schema>/<name>.sql` in one transaction,
        with `params`, every value its SQL binds (contract.model_params gives a model's).

        With a `day_column`, only the days its declared inputs touched since its last build are
        recomputed (see resources/model_inputs.py), the model applying `%(days)s` itself; none
        touched, nothing is rewritten. A model whose touched SQL selects row keys (core.leads'
        lead_key, core.sales' sale_key) instead of days recomputes those rows, applying
        `%(keys)s`, and logs the days they left or landed on for the models built from it. Every
        row is recomputed on the first build, after a parameter change, when an input without a
        mapping changed, or with `full`. Readers keep seeing the old rows until the commit
        (MVCC), so the swap is atomic.
        """
        schema, name = table.split(".")
        params = params or {}
        digest = _params_digest(params)
        inputs = declared_inputs(table)
        with self.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHANGES_LOCK,))
            stamp = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
            _ensure_change_indexes(conn, inputs)
            previous = _previous_build(conn, table, digest)
            touched = None
            if day_column and not full and previous is not None:
                touched = _touched(conn, table, inputs, previous, params)
            rows, gone, days = 0, 0, None if touched is None else touched.days
            if touched is None or touched.changed:
                model = load_sql(f"{schema}/{name}")
                only = (day_column, None) if touched is None else touched.only(day_column)
                rows, gone, days = _rebuild(conn, schema, name, model, params, only, day_column)
            count = _row_count(conn, table, previous, touched, rows, gone)
            _record_build(conn, table, _watermark(conn, inputs, stamp), digest, days, rows, count)
        return ModelBuild(rows, None if days is None else len(days), count)

    def stale_models(self, params: Mapping[str, dict[str, Any]]) -> list[str]:
        """The models of `params` ({model: its parameters}, upstream first) a build would
        recompute something of: never built with these parameters, a raw input loaded or
        deleted since its last build, or an input model stale or rebuilt since. Empty: every
        build would rewrite nothing (index probes only, no model SQL)."""
        stale: list[str] = []
        with self.connection() as conn:
            for table, values in params.items():
                if _stale(conn, table, values, stale):
                    stale.append(table)
        return stale


@dataclass(frozen=True)
class PreviousBuild:
    watermark: datetime
    build_id: int
    row_count: int | None


def _params_digest(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def _previous_build(conn: psycopg.Connection, table: str, digest: str) -> PreviousBuild | None:
    """`table`'s last build, if it used these parameters (else everything is rebuilt)."""
    row = conn.execute(
        "SELECT watermark, build_id, row_count FROM ops.model_builds"
        " WHERE model = %s AND params_hash = %s AND build_id IS NOT NULL"
        " AND watermark IS NOT NULL",
        (table, digest),
    ).fetchone()
    return None if row is None else PreviousBuild(*row)


def _record_build(
    conn: psycopg.Connection,
    table: str,
    watermark: datetime | None,
    digest: str,
    days: list[date] | None,
    rows: int,
    count: int,
) -> None:
    """Note the build, the days it rebuilt (for the models built from it to rebuild) and whether
    it rewrote rows, and forget the days every model has built past."""
    build_id = conn.execute("SELECT nextval('ops.model_build_ids')").fetchone()[0]  # type: ignore[index]
    conn.execute(
        "INSERT INTO ops.model_build_days (build_id, model, day)"
        " SELECT %s, %s, d FROM unnest(coalesce(%s::date[], '{NULL}')) AS d",
        (build_id, table, days),
    )
    conn.execute(
        "INSERT INTO ops.model_builds AS b (model, watermark, params_hash, days_rebuilt,"
        " rows_written, build_id, rewritten_build_id, row_count)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (model) DO UPDATE SET watermark = EXCLUDED.watermark,"
        " params_hash = EXCLUDED.params_hash, built_at = now(),"
        " days_rebuilt = EXCLUDED.days_rebuilt, rows_written = EXCLUDED.rows_written,"
        " build_id = EXCLUDED.build_id, row_count = EXCLUDED.row_count,"
        " rewritten_build_id = coalesce(EXCLUDED.rewritten_build_id, b.rewritten_build_id)",
        (
            table,
            watermark,
            digest,
            None if days is None else len(days),
            rows,
            build_id,
            None if days == [] else build_id,
            count,
        ),  # fmt: skip
    )
    conn.execute(
        "DELETE FROM ops.model_build_days"
        " WHERE build_id <= (SELECT min(build_id) FROM ops.model_builds)"
    )


def _watermark(conn: psycopg.Connection, inputs: Sequence[str], stamp: datetime) -> datetime | None:
    """Up to when a model now reflects raw changes: its build's start; for one that reads other
    models (a mart), no later than their own watermarks, since what it read of them reflects raw
    only up to those, and None while one of them was never built (it read nothing of it: its
    next build recomputes every day)."""
    upstream = [i for i in inputs if is_model(i)]
    if not upstream:
        return stamp
    row = conn.execute(
        "SELECT min(watermark), count(watermark) FROM ops.model_builds WHERE model = ANY(%s)",
        (upstream,),
    ).fetchone()
    assert row is not None
    earliest, built = row
    return None if built < len(upstream) else min(stamp, earliest)


def _row_count(
    conn: psycopg.Connection,
    table: str,
    previous: PreviousBuild | None,
    touched: Touched | None,
    written: int,
    deleted: int,
) -> int:
    """The rows `table` holds after this build: the rows written by a whole rebuild, the last
    count moved by this build's inserts less its deletes, or a count(*) the first time a build
    replaces some rows of a table no build has counted yet."""
    if touched is None:
        return written
    if previous is not None and previous.row_count is not None:
        return previous.row_count + written - deleted
    target = sql.Identifier(*table.split("."))
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()[0]  # type: ignore[index]


def _stale(
    conn: psycopg.Connection, table: str, params: dict[str, Any], stale: Sequence[str]
) -> bool:
    """Whether a build of `table` would recompute anything (see `stale_models`)."""
    previous = _previous_build(conn, table, _params_digest(params))
    if previous is None:
        return True
    inputs = declared_inputs(table)
    upstream = [i for i in inputs if is_model(i)]
    if set(upstream) & set(stale) or any(i.startswith("ops.") for i in inputs):
        return True
    if upstream and conn.execute(
        "SELECT EXISTS (SELECT 1 FROM ops.model_build_days WHERE model = ANY(%s)"
        " AND build_id > %s)",
        (upstream, previous.build_id),
    ).fetchone() != (False,):
        return True
    # the raw tables themselves: a staging view may hide the rows deleted since
    raw = [raw_table(i) for i in inputs if not is_model(i)]
    return any(
        conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone() == (True,)
        and _changed_since(conn, relation, previous.watermark)
        for relation in raw
    )


@dataclass(frozen=True)
class ModelBuild:
    rows_written: int
    days_rebuilt: int | None  # None: the whole table; 0: nothing changed, nothing rewritten
    row_count: int  # the rows the table holds after the build


def _ensure_staging_views(conn: psycopg.Connection) -> None:
    """Every staging view exists, so core builds before a table's first load (or without its
    source configured at all) read no rows instead of failing."""
    for table in CANONICAL_TABLES:
        view = f"{table.staging_schema}.{table.name}"
        if conn.execute("SELECT to_regclass(%s)", (view,)).fetchone() == (None,):
            conn.execute(placeholder_sql(table))


def _ensure_reader_database_access(conn: psycopg.Connection) -> None:
    """dashboard_reader may connect to this database and may not create temporary tables; a
    SELECT when that holds already (no catalog write, so concurrent run starts never collide)."""
    allowed = conn.execute(
        "SELECT has_database_privilege('dashboard_reader', current_database(), 'CONNECT')"
        " AND NOT has_database_privilege('dashboard_reader', current_database(), 'TEMPORARY')"
    ).fetchone()
    if allowed != (True,):
        conn.execute(load_sql("ops/reader_database_access").encode())


@dataclass(frozen=True)
class Touched:
    """What a build recomputes: `days` of its day column, or the rows of `keys` (its touched
    SQL's column `key_column`) when it maps changes to rows."""

    days: list[date]
    keys: list[str] | None = None
    key_column: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.days if self.keys is None else self.keys)

    def only(self, day_column: str | None) -> tuple[str | None, list[Any]]:
        """(column, values) of the rows to replace."""
        if self.keys is None:
            return day_column, list(self.days)
        return self.key_column, list(self.keys)


def _touched(
    conn: psycopg.Connection,
    table: str,
    inputs: Sequence[str],
    previous: PreviousBuild,
    params: dict[str, Any],
) -> Touched | None:
    """What of `table` its inputs changed since `previous`, or None for every row: the days its
    input models rebuilt since, the days (or row keys) its touched SQL maps raw changes to, and
    every row once a raw input that SQL does not map changed."""
    days: set[date | None] = set()
    upstream = [i for i in inputs if is_model(i)]
    if upstream:
        days |= {day for (day,) in conn.execute(
            "SELECT DISTINCT day FROM ops.model_build_days WHERE model = ANY(%s)"
            " AND build_id > %s", (upstream, previous.build_id))}  # fmt: skip
    unmapped = [i for i in inputs if not is_model(i) and i not in mapped_inputs(table)]
    if any(_changed_since(conn, relation, previous.watermark) for relation in unmapped):
        return None
    touched = touched_sql(table)
    if touched:
        cur = conn.execute(touched.encode(), {
            "since": previous.watermark, "tz": params.get("tz"),
            "provisional_days": params.get("provisional_days")})  # fmt: skip
        found = {value for (value,) in cur}
        column = cur.description[0].name if cur.description else "day"
        if column != "day":  # row keys: a keyed model reads raw inputs only
            _ensure_key_indexes(conn, [i for i in mapped_inputs(table) if i.startswith("stg_")])
            return Touched([], sorted(found), column)
        days |= found
    if None in days:
        return None
    return Touched(sorted(d for d in days if d is not None))


# the raw columns a build probes: what changed since its last build, and its days' instants
PROBED = {"_loaded_at": "", "_deleted_at": " WHERE _deleted_at IS NOT NULL", "created_at": ""}


def _ensure_change_indexes(conn: psycopg.Connection, inputs: Sequence[str]) -> None:
    """Index the probed columns of the raw tables `inputs` name (a catalog read when they are):
    the raw mirror creates a table on its first load, after the migrations ran."""
    tables = [raw_table(i) for i in inputs if not is_model(i) and not i.startswith("ops.")]
    missing = conn.execute(
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c"
        " WHERE c.table_schema || '.' || c.table_name = ANY(%s) AND c.column_name = ANY(%s)"
        " AND NOT EXISTS (SELECT 1 FROM pg_indexes i WHERE i.schemaname = c.table_schema"
        " AND i.tablename = c.table_name AND i.indexdef LIKE '%%(' || c.column_name || ')%%')",
        (tables, list(PROBED)),
    ).fetchall()
    for schema, name, column in missing:
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}){}").format(
                sql.Identifier(f"{name}_{column.strip('_')}_idx"),
                sql.Identifier(schema, name),
                sql.Identifier(column),
                sql.SQL(PROBED[column]),  # type: ignore[arg-type]
            )
        )


def _ensure_key_indexes(conn: psycopg.Connection, views: Sequence[str]) -> None:
    """Index the raw tables behind these staging views on the key as the views show it (text,
    whatever the source's type), for a keyed build's `id = ANY(keys)` (a catalog read when they
    are; a table not loaded yet has none); analyzed once, so the planner knows a key list picks
    a few rows."""
    for table in map(raw_table, views):
        schema, name = table.split(".")
        index = f"{name}_id_text_idx"
        wanted = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NULL",
            (table, f"{schema}.{index}"),
        ).fetchone()
        if wanted != (True,):
            continue
        target = sql.Identifier(schema, name)
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ((id::text))").format(
            sql.Identifier(index), target))  # fmt: skip
        conn.execute(sql.SQL("ANALYZE {}").format(target))


def _changed_since(conn: psycopg.Connection, relation: str, since: datetime) -> bool:
    """Whether any row of a raw table (or its staging view) was loaded or deleted after `since`
    (two index probes)."""
    target = sql.Identifier(*relation.split("."))
    row = conn.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM {t} WHERE _loaded_at > %(since)s)"
            " OR EXISTS (SELECT 1 FROM {t} WHERE _deleted_at > %(since)s)"
        ).format(t=target),
        {"since": since},
    ).fetchone()
    return bool(row and row[0])


def _rebuild(
    conn: psycopg.Connection,
    schema: str,
    name: str,
    model: str,
    params: dict[str, Any],
    only: tuple[str | None, list[Any] | None],
    day_column: str | None,
) -> tuple[int, int, list[date] | None]:
    """Replace the rows whose `only` column is among its values (all rows when None) with what
    the model, which applies that predicate itself (`%(days)s` or `%(keys)s`), selects; (rows
    written, rows deleted, the days rewritten: None for all, the replaced rows' own days for a
    keyed one)."""
    column, values = only
    keyed = column is not None and column != day_column
    params = {**params, "days": None if keyed else values, "keys": values if keyed else None}
    columns = [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, name),
        )
    ]
    target = sql.Identifier(schema, name)
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    where: sql.Composable = sql.SQL("")
    returning: sql.Composable = sql.SQL("")
    if values is not None and column:
        where = sql.SQL(" WHERE {} = ANY(%(only)s)").format(sql.Identifier(column))
    if keyed and day_column:  # the models built from this one rebuild these rows' days
        returning = sql.SQL(" RETURNING {}").format(sql.Identifier(day_column))
    gone = conn.execute(sql.SQL("DELETE FROM {}{}{}").format(target, where, returning),
                        {**params, "only": values})  # fmt: skip
    days = {day for (day,) in gone} if keyed and day_column else set()
    cur = conn.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM ({}) AS model{}").format(
            target,
            cols,
            cols,
            sql.SQL(model.strip().rstrip(";")),  # type: ignore[arg-type]
            returning,
        ),
        params,
    )
    if not keyed:
        return cur.rowcount, gone.rowcount, values
    return cur.rowcount, gone.rowcount, sorted(days | {day for (day,) in cur})


def _read_cursor(conn: psycopg.Connection, source: str, entity: str, lock: bool) -> Any:
    query = "SELECT cursor FROM ops.cursors WHERE source = %s AND entity = %s"
    row = conn.execute((query + (" FOR UPDATE" if lock else "")).encode(), (source, entity))
    found = row.fetchone()
    return found[0] if found else None


def _write_cursor(conn: psycopg.Connection, source: str, entity: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO ops.cursors (source, entity, cursor) VALUES (%s, %s, %s)"
        " ON CONFLICT (source, entity) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()",
        (source, entity, json.dumps(value)),
    )


def _stage(
    spec: TableSpec,
    rows: Iterable[Sequence[Any] | Columns | Rejected],
    result: LoadResult,
    stored: _StoredHashes | None,
    into: _Destination,
) -> list[Rejected]:
    """COPY rows in batches `into` the target or staging; `_seq` lets the last copy win. A row
    the target already holds, live and with the same hash, is staged by its key alone
    (`_unchanged`): a snapshot saw it, and a later copy of its key still wins.
    Returns the records rejected before (validation) and by PostgreSQL (see the docstring)."""
    hashes = row_hashes(spec)
    batcher = _Batcher(len(spec.columns))
    rejected: list[Rejected] = []

    def copy() -> None:
        batch = batcher.take()
        first = result.rows_in - len(batch[0]) + 1
        batch += [hashes(batch), range(first, result.rows_in + 1)]
        rejected.extend(into.copy(_changed(into.conn, stored, batch, result)))

    for item in rows:
        if isinstance(item, Rejected):
            rejected.append(item)
            continue
        result.rows_in += batcher.add(item)
        if batcher.count >= BATCH_ROWS:
            copy()
    if batcher.count:
        copy()
    result.rows_in -= sum(1 for r in rejected if r.refused)
    return rejected


class _Batcher:
    """Rows and `Columns` gathered into one batch's columns, in the order they came."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.parts: list[Sequence[Sequence[Any]]] = []
        self.run: list[Sequence[Any]] = []
        self.count = 0

    def add(self, item: Sequence[Any] | Columns) -> int:
        """Add a row or `Columns`; how many rows that was."""
        if isinstance(item, Columns):
            self._close_run()
            self.parts.append(item.values)
            added = len(item)
        else:
            self.run.append(item)
            added = 1
        self.count += added
        return added

    def take(self) -> Batch:
        self._close_run()
        parts, self.parts, self.count = self.parts, [], 0
        if len(parts) == 1:
            return list(parts[0])
        return [list(chain.from_iterable(p[i] for p in parts)) for i in range(self.width)]

    def _close_run(self) -> None:
        if self.run:
            self.parts.append(list(zip(*self.run, strict=True)))
            self.run = []


def _holds_no_row(conn: psycopg.Connection, spec: TableSpec) -> bool:
    """Whether the target holds no row at all, live or deleted (read under the load's lock)."""
    found = conn.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(
        sql.Identifier(spec.schema, spec.name))).fetchone()  # fmt: skip
    return found == (True,)


@dataclass(frozen=True)
class _Into:
    """A COPY's table and its last column, which takes each batch row's last value."""

    table: sql.Identifier
    last: str
    last_type: str


STAGING = _Into(sql.Identifier("_staging"), "_seq", "bigint")


class _Destination:
    """Where batches go. Into the target itself while it was empty when the load began (its
    first load, which then writes each row once; `_loaded_at` is the load's stamp); else, and
    from the first batch holding a key already copied (a key read twice: its last copy must
    win), into `_staging`, for the merge."""

    def __init__(self, conn: psycopg.Connection, spec: TableSpec, stamp: datetime | None) -> None:
        self.conn, self.spec = conn, spec
        self.stamp = None if stamp is None else stamp.isoformat()  # as binary COPY takes it
        self.direct_rows, self.staged = 0, False
        if stamp is None:
            self._create_staging()

    def copy(self, batch: Batch) -> list[Rejected]:
        if self.stamp is not None and batch[-1]:
            target = _Into(sql.Identifier(self.spec.schema, self.spec.name), "_loaded_at",
                           "timestamptz")  # fmt: skip
            stamped = [*batch[:-1], [self.stamp] * len(batch[-1])]
            try:
                with self.conn.transaction():  # a unique violation undoes the whole batch
                    refused = _copy_batch(self.conn, self.spec, stamped, target)
                self.direct_rows += len(batch[-1]) - len(refused)
                return refused
            except psycopg.errors.UniqueViolation:
                self.stamp = None
                self._create_staging()
        return _copy_batch(self.conn, self.spec, batch, STAGING)

    def _create_staging(self) -> None:
        """A temp table shaped like the target's loaded columns, plus `_seq` and `_unchanged`."""
        self.conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE _staging ON COMMIT DROP AS"
                " SELECT {}, _row_hash FROM {} WITH NO DATA"
            ).format(
                sql.SQL(", ").join(map(sql.Identifier, self.spec.columns)),
                sql.Identifier(self.spec.schema, self.spec.name),
            )  # fmt: skip
        )
        self.conn.execute(
            "ALTER TABLE _staging ADD COLUMN _seq bigint, ADD COLUMN _unchanged boolean"
        )
        self.staged = True


def row_hashes(spec: TableSpec) -> Callable[[Batch], list[bytes]]:
    """The hashes of a batch's rows as received (blake2b-128), keyed by the spec's columns and
    types, so that a mirror whose shape changed rewrites its rows once: of `_raw` where the
    typed columns come from it, else of every value."""
    shape = repr((spec.columns, spec.types, spec.typed_from_raw)).encode()
    # a copy of the keyed hash per row skips hashing the key's own block again
    keyed = hashlib.blake2b(digest_size=16, key=hashlib.blake2b(shape, digest_size=32).digest())

    def hashed(text: str) -> bytes:
        digest = keyed.copy()
        # surrogatepass: a lone surrogate hashes too (COPY refuses that row later)
        digest.update(text.encode("utf-8", "surrogatepass"))
        return digest.digest()

    if spec.typed_from_raw:
        raw = spec.columns.index("_raw")
        return lambda batch: list(map(hashed, batch[raw]))
    width = len(spec.columns)
    return lambda batch: [hashed(repr(row)) for row in zip(*batch[:width], strict=True)]


# After a batch whose rows were mostly changed (an incremental read's), the next batches are
# staged whole, not looked up: the lookup would probe each key once before the merge probes it
# again, to find nothing (about 0.09 s a batch of 5000 at 1M stored rows, a quarter of an hourly
# load). Every PROBE_EVERY-th batch is looked up again, should the rows turn to ones held.
PROBE_EVERY = 4


class _StoredHashes:
    """One statement per batch that finds the rows the target holds live with the same hash
    and stages their keys (flat in memory: the lookup is by the batch's keys, in the database)."""

    def __init__(self, statement: sql.Composed, key_at: list[int]) -> None:
        self.statement, self.key_at = statement, key_at
        self.skip = 0  # batches left to stage without a lookup

    @classmethod
    def of(cls, conn: psycopg.Connection, spec: TableSpec) -> _StoredHashes:
        target = sql.Identifier(spec.schema, spec.name)
        types: dict[str, str] = dict(conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attname = ANY(%s)",
            (target.as_string(conn), list(spec.key))).fetchall())  # fmt: skip
        keys = [sql.Identifier(k) for k in spec.key]
        arrays = [sql.SQL("%s::text[]::{}[]").format(sql.SQL(types[k])) for k in spec.key]
        stored = sql.SQL(", ").join(sql.SQL("t.{}").format(k) for k in keys)
        given = sql.SQL(", ").join(sql.SQL("u.{}").format(k) for k in keys)
        statement = sql.SQL(
            "INSERT INTO _staging ({keys}, _seq, _unchanged)"
            " SELECT {stored}, u._seq, true"
            " FROM unnest({arrays}, %s::bytea[], %s::int8[]) AS u({keys}, _row_hash, _seq)"
            " JOIN {target} t ON ({stored}) = ({given}) AND t._row_hash = u._row_hash"
            " WHERE t._deleted_at IS NULL RETURNING _seq"
        ).format(keys=sql.SQL(", ").join(keys), stored=stored, given=given,
                 arrays=sql.SQL(", ").join(arrays), target=target)  # fmt: skip
        return cls(statement, [spec.columns.index(k) for k in spec.key])

    def unchanged(self, conn: psycopg.Connection, batch: Batch) -> set[int]:
        """The `_seq` of the batch's rows staged as unchanged; none when the batch is not
        looked up (PROBE_EVERY)."""
        if self.skip:
            self.skip -= 1
            return set()
        same = self._lookup(conn, batch)
        if 2 * len(same) < len(batch[-1]):
            self.skip = PROBE_EVERY - 1
        return same

    def _lookup(self, conn: psycopg.Connection, batch: Batch) -> set[int]:
        """The `_seq` of the rows found held and staged by key; none if a key is refused (the
        whole batch is then staged, and COPY finds the refused row)."""
        keys = [[None if v is None else str(v) for v in batch[i]] for i in self.key_at]
        params = [*keys, list(batch[-2]), list(batch[-1])]
        try:
            with conn.transaction():
                return {seq for (seq,) in conn.execute(self.statement, params)}
        except REFUSED:
            return set()


def _changed(
    conn: psycopg.Connection, stored: _StoredHashes | None, batch: Batch, result: LoadResult
) -> Batch:
    """The batch without the rows staged as unchanged (counted as skipped)."""
    if stored is None or not batch[-1]:
        return batch
    same = stored.unchanged(conn, batch)
    result.skipped += len(same)
    if not same:
        return batch
    keep = [seq not in same for seq in batch[-1]]
    return [list(compress(values, keep)) for values in batch]


def _copy_batch(
    conn: psycopg.Connection, spec: TableSpec, batch: Batch, into: _Into
) -> list[Rejected]:
    """COPY `batch` under a savepoint: in binary if its values allow, else as text rows."""
    if not batch[-1]:
        return []
    columns = sql.SQL(", ").join(map(sql.Identifier, (*spec.columns, "_row_hash", into.last)))
    types = (*spec.types, "bytea", into.last_type)
    if spec.types and _copied_binary(conn, into.table, columns, types, batch):
        return []
    return _copy_rows(conn, spec, list(zip(*batch, strict=True)), into, columns)


def _copy_rows(
    conn: psycopg.Connection,
    spec: TableSpec,
    rows: list[tuple[Any, ...]],
    into: _Into,
    columns: sql.Composable,
) -> list[Rejected]:
    """COPY `rows` as text under a savepoint; what PostgreSQL refuses is halved down to its
    rows."""
    try:
        with conn.transaction(), conn.cursor() as cur:
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(into.table, columns)
            # a writer thread sends while this one formats the next rows
            with cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
                for row in rows:
                    copy.write_row(row)
        return []
    except REFUSED as exc:
        if len(rows) == 1:
            return [_refused(spec, rows[0], exc)]
    half = len(rows) // 2
    return _copy_rows(conn, spec, rows[:half], into, columns) + _copy_rows(
        conn, spec, rows[half:], into, columns
    )


def _copied_binary(
    conn: psycopg.Connection,
    table: sql.Identifier,
    columns: sql.Composable,
    types: tuple[str, ...],
    batch: Batch,
) -> bool:
    """COPY `batch` in binary under a savepoint, if its values allow (see `binary_copy`);
    False when they do not or PostgreSQL refuses one: the batch then goes as text, which
    finds the refused rows and says why as PostgreSQL parses them."""
    rows = binary_rows(types, batch)
    if rows is None:
        return False
    try:
        with conn.transaction(), conn.cursor() as cur:
            statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(table, columns)
            with cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
                set_types(copy, types)
                for row in rows:
                    copy.write_row(row)
        return True
    except REFUSED:
        return False


def _refused(spec: TableSpec, row: tuple[Any, ...], exc: Exception) -> Rejected:
    """The row PostgreSQL (or psycopg) refused, with the column and the reason."""
    values = dict(zip(spec.columns, row, strict=False))
    texts = {c: v for c, v in values.items() if isinstance(v, str)}
    column: str | None
    if isinstance(exc, UnicodeEncodeError):
        column = next((c for c, v in texts.items() if not _utf8(v)), None)
        problem = "not valid UTF-8 (a lone surrogate, or bytes that were not UTF-8)"
    elif isinstance(exc, psycopg.DataError) and not exc.diag.sqlstate:  # refused by psycopg
        column = next((c for c, v in texts.items() if "\x00" in v), None)
        problem = "a NUL character (\\u0000), which PostgreSQL text cannot hold"
    else:
        found = re.search(r"column (\w+):", exc.diag.context or "") if isinstance(
            exc, psycopg.Error) else None  # fmt: skip
        column = found.group(1) if found else None
        problem = _first_line(exc)
    key = "/".join(str(values[k]) for k in spec.key)
    reason = f"{column}: {problem}" if column else problem
    return Rejected(key, reason, _payload(values), refused=True)


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _first_line(exc: Exception) -> str:
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        detail = exc.diag.message_detail
        return exc.diag.message_primary + (f" ({detail})" if detail else "")
    return str(exc).splitlines()[0]


def _payload(values: dict[str, Any]) -> Any:
    """The record as received: its `_raw` JSON, else the row's values."""
    raw = values.get("_raw")
    if isinstance(raw, str):
        try:
            return vendor_json.loads(raw)
        except vendor_json.BodyError:
            return raw
    return {c: v if isinstance(v, int | float | str | None) else str(v)
            for c, v in values.items() if c != "_seq"}  # fmt: skip


def _change_stamp(conn: psycopg.Connection) -> datetime:
    """Take the changes lock (shared) and say when this change happens, for model builds."""
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (CHANGES_LOCK,))
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def _merge(conn: psycopg.Connection, spec: TableSpec, stamp: datetime) -> tuple[int, int, int]:
    """Upsert the staged rows; a row whose hash equals the stored one's is left alone (not
    'updated'). A stored row without a hash (loaded before rows were hashed) gets one; if its
    columns equal the staged ones it keeps its `_loaded_at` and counts as unchanged.

    Returns (distinct keys staged, inserted, updated).
    """
    target = sql.Identifier(spec.schema, spec.name)
    key = sql.SQL(", ").join(map(sql.Identifier, spec.key))
    cols = sql.SQL(", ").join(map(sql.Identifier, (*spec.columns, "_row_hash")))
    non_key = [c for c in spec.columns if c not in spec.key]
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in (*non_key, "_row_hash")
    )
    old = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in non_key)
    new = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in non_key)
    counted = conn.execute(
        sql.SQL("SELECT count(*), count(DISTINCT ({})) FROM _staging").format(key)
    ).fetchone()
    assert counted is not None
    staged, distinct = counted
    source = sql.Identifier("_staging")
    if distinct < staged:  # a key read twice (updated during the scan): the last copy wins
        source = sql.Identifier("_staging_keys")
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE _staging_keys ON COMMIT DROP AS SELECT DISTINCT ON ({key})"
                " {cols}, _unchanged FROM _staging ORDER BY {key}, _seq DESC"
            ).format(key=key, cols=cols)
        )
    # counted in the database: a million merged rows are not a million Python tuples
    merged = conn.execute(
        sql.SQL(
            "WITH m AS (INSERT INTO {target} AS t ({cols}, _loaded_at)"
            " SELECT {cols}, %(stamp)s FROM {source} WHERE _unchanged IS NULL"
            " ON CONFLICT ({key}) DO UPDATE SET {assignments}, _deleted_at = NULL,"
            " _loaded_at = CASE WHEN t._row_hash IS NULL AND t._deleted_at IS NULL"
            "  AND ({old}) IS NOT DISTINCT FROM ({new}) THEN t._loaded_at"
            "  ELSE EXCLUDED._loaded_at END"
            " WHERE t._row_hash IS DISTINCT FROM EXCLUDED._row_hash OR t._deleted_at IS NOT NULL"
            " RETURNING (xmax = 0) AS inserted, _loaded_at = %(stamp)s AS changed)"
            " SELECT count(*) FILTER (WHERE inserted),"
            " count(*) FILTER (WHERE changed AND NOT inserted) FROM m"
        ).format(
            target=target,
            cols=cols,
            key=key,
            assignments=assignments,
            old=old,
            new=new,
            source=source,
        ),  # fmt: skip
        {"stamp": stamp},
    ).fetchone()
    assert merged is not None
    inserted, updated = merged
    return distinct, inserted, updated


def _mark_absent(
    conn: psycopg.Connection, spec: TableSpec, stamp: datetime, quarantined: list[str]
) -> int:
    """Mark deleted the live rows whose key was not staged (an unchanged row's key was)."""
    stored = [sql.SQL("t.{}").format(sql.Identifier(k)) for k in spec.key]
    same = sql.SQL(" AND ").join(
        sql.SQL("s.{k} = t.{k}").format(k=sql.Identifier(k)) for k in spec.key
    )
    # an anti join, not NOT IN: a hashed NOT IN needs every staged key in memory
    return conn.execute(
        sql.SQL(
            "UPDATE {} AS t SET _deleted_at = %s WHERE t._deleted_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM _staging s WHERE {})"
            " AND concat_ws('/', {}) <> ALL(%s)"
        ).format(
            sql.Identifier(spec.schema, spec.name),
            same,
            sql.SQL(", ").join(sql.SQL("{}::text").format(s) for s in stored),
        ),
        (stamp, quarantined),
    ).rowcount


def _quarantine(
    conn: psycopg.Connection, source: str, entity: str, rejected: list[Rejected]
) -> None:
    """Store the rejected records as jsonb, all at once; if PostgreSQL refuses one, each on its
    own, a refused one as JSON text with every non-ASCII character escaped."""
    if not rejected or _insert_quarantined(conn, "record", source, entity, rejected):
        return
    for r in rejected:
        if not _insert_quarantined(conn, "record", source, entity, [r]):
            _insert_quarantined(conn, "record_text", source, entity, [r])


def _insert_quarantined(
    conn: psycopg.Connection, column: str, source: str, entity: str, rejected: list[Rejected]
) -> bool:
    """Insert (or refresh) `rejected` with their payload in `column`; False if refused."""
    payload = vendor_json.dumps if column == "record" else vendor_json.ascii_text
    statement = sql.SQL(
        "INSERT INTO ops.quarantine (source, entity, record_key, reason, {c})"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (source, entity, (coalesce(record_key,"
        " '#' || md5(coalesce(record::text, record_text)))), reason) DO UPDATE SET"
        " record = EXCLUDED.record, record_text = EXCLUDED.record_text, quarantined_at = now()"
    ).format(c=sql.Identifier(column))
    rows = [(source, entity, r.key, _printable(r.reason), payload(r.record)) for r in rejected]
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(statement, rows)
    except REFUSED:
        return False
    return True


def _printable(text: str) -> str:
    """A reason as text PostgreSQL takes: a NUL or lone surrogate quoted from a value, escaped."""
    return text.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")


def _log_load(
    conn: psycopg.Connection, source: str, entity: str, started: datetime, result: LoadResult
) -> None:
    conn.execute(
        "INSERT INTO ops.load_log (source, entity, started_at, rows_in, rows_inserted,"
        " rows_updated, rows_unchanged, rows_quarantined, cursor_before, cursor_after, notes)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            source,
            entity,
            started,
            result.rows_in,
            result.inserted,
            result.updated,
            result.unchanged,
            result.quarantined,
            json.dumps(result.cursor_before),
            json.dumps(result.cursor_after),
            "; ".join(result.notes) or None,
        ),
    )
