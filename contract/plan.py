"""Where a contract entry meets a discovered table: the key, the cursor strategy (and why), and
which source column or constant feeds each canonical column. Everything that cannot work is one
sentence here, before any row is read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any, Literal

from contract.config import Constant, ContractError, TableEntry
from resources.canonical import MONEY_LIMIT, PROJECTS, CanonicalType, Column
from resources.supabase import Keyset, SourceColumn, TableShape

INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
TEXT_KEY_TYPES = frozenset({"uuid", "text", "character varying", "character"})
TIMESTAMP_TYPES = frozenset({"timestamp with time zone", "timestamp without time zone"})
# Columns that, by the usual conventions, change whenever a row does.
UPDATED_AT_NAMES = ("updated_at", "modified_at", "updated", "last_modified", "changed_at")
BIGINT_RANGE = 2**63
FITS_ANY = frozenset({"text", "jsonb"})  # canonical types any JSON value casts to


@dataclass(frozen=True)
class Cursor:
    kind: Literal["timestamp", "key", "snapshot"]
    column: str | None
    reason: str


@dataclass(frozen=True)
class Feed:
    """What feeds one canonical column: a source column, a constant, or nothing (NULL)."""

    canonical: Column
    source: SourceColumn | None = None
    constant: Constant | None = None

    @property
    def describe(self) -> str:
        if self.source is not None:
            return self.source.name
        if self.constant is not None and self.constant.value is not None:
            return f"constant {self.constant.value!r}"
        return "NULL"


@dataclass(frozen=True)
class TablePlan:
    entry: TableEntry
    shape: TableShape
    key: SourceColumn
    cursor: Cursor
    feeds: tuple[Feed, ...]
    unmapped: tuple[str, ...]  # optional columns with no source, not declared absent

    @property
    def keyset(self) -> Keyset:
        quoted = self.key.type not in INTEGER_TYPES
        if self.cursor.kind == "timestamp":
            assert self.cursor.column is not None
            return Keyset((self.cursor.column, self.key.name), quoted)
        return Keyset((self.key.name,), quoted)

    @cached_property
    def _checked(self) -> tuple[tuple[str, Feed], ...]:
        """(source column, feed) of the feeds a record's value may fail: any text or jsonb
        value fits, so those are checked only when the models need a value."""
        return tuple(
            (f.source.name, f)
            for f in self.feeds
            if f.source is not None and (f.canonical.required or f.canonical.type not in FITS_ANY)
        )

    def passes(self, column: Callable[[str], list[Any]]) -> bool:
        """Whether every record of a page passes `check`, tested a column at a time (`column`
        gives a source column's values across the page); False says only that some record may
        not: the caller then checks them one by one, so a test here may be stricter than
        `_fits`, never looser."""
        if None in column(self.key.name):
            return False
        for name, feed in self._checked:
            values = column(name)
            if feed.canonical.required and None in values:
                return False
            if not _all_fit([v for v in values if v is not None], feed.canonical.type):
                return False
        return True

    def check(self, record: dict[str, Any]) -> str | None:
        """Why a record cannot feed the models (its quarantine reason), or None."""
        problems = []
        if record.get(self.key.name) is None:
            problems.append(f"{self.key.name}: the key is missing")
        for column, feed in self._checked:  # a loop per record: the labels only on failure
            value = record.get(column)
            if value is None:
                if feed.canonical.required:
                    problems.append(f"{_label(feed)}: missing, and the models need it")
            elif not _fits(value, feed.canonical.type):
                kind: str = feed.canonical.type
                if kind == "numeric":  # money: core and marts hold it as numeric(14,2)
                    kind = f"amount (a number below {MONEY_LIMIT:,.0f} in size)"
                problems.append(f"{_label(feed)}: {value!r:.80} is not a valid {kind}")
        return "; ".join(problems) or None


def _label(feed: Feed) -> str:
    assert feed.source is not None
    label = feed.canonical.name
    return label if feed.source.name == label else f"{label} (column {feed.source.name})"


def where(entry: TableEntry) -> str:
    project = PROJECTS[entry.canonical.project]
    named = "" if entry.table == entry.canonical.name else f" (entry {entry.canonical.name})"
    return f"Supabase {project} table {entry.table}{named}"


def plan_table(entry: TableEntry, shape: TableShape) -> TablePlan:
    key = _key(entry, shape)
    feeds, unmapped = [], []
    for column in entry.canonical.columns:
        feed = _feed(entry, shape, column)
        if feed.source is None and feed.constant is None:
            unmapped.append(column.name)
        feeds.append(feed)
    return TablePlan(entry, shape, key, _cursor(entry, shape, key), tuple(feeds), tuple(unmapped))


def entry_path(entry: TableEntry) -> str:
    return f"supabase.{entry.canonical.project}.{entry.canonical.name}"


def _key(entry: TableEntry, shape: TableShape) -> SourceColumn:
    name = entry.key or (shape.primary_key[0] if len(shape.primary_key) == 1 else None)
    if name is None:
        found = ", ".join(shape.primary_key) or "none"
        raise ContractError(
            f"{where(entry)}: no single-column primary key (found: {found}); write "
            f"`key: <column>` under {entry_path(entry)} in the contract file."
        )
    column = shape.column(name)
    if column is None:
        raise ContractError(
            f"{where(entry)}: the key column {name!r} is not served (columns: "
            f"{', '.join(shape.names)}); fix `key:` under {entry_path(entry)}."
        )
    if column.type not in INTEGER_TYPES | TEXT_KEY_TYPES:
        raise ContractError(
            f"{where(entry)}: key {name} is {column.type}; a key must be an integer, bigint, "
            "uuid or text column: name another one with `key:`."
        )
    return column


def _cursor(entry: TableEntry, shape: TableShape, key: SourceColumn) -> Cursor:
    choice = entry.cursor
    if choice == "snapshot":
        return Cursor("snapshot", None, "the contract says snapshot: the whole table each run")
    if choice == "key":
        if key.type not in INTEGER_TYPES:
            raise ContractError(
                f"{where(entry)}: `cursor: key` needs an increasing integer key, and {key.name} "
                f"is {key.type}; write `cursor: snapshot` or name a timestamp column."
            )
        return Cursor("key", None, _append_reason(entry, key, "the contract says key"))
    if choice != "auto":
        column = shape.column(choice)
        if column is None or column.type not in TIMESTAMP_TYPES:
            kind = "not served" if column is None else f"a {column.type} column"
            raise ContractError(
                f"{where(entry)}: cursor column {choice!r} is {kind}; name a timestamp column "
                "that changes with every update, or write `cursor: key`, `snapshot` or `auto`."
            )
        return Cursor("timestamp", choice, f"the contract names {choice}")
    for name in UPDATED_AT_NAMES:
        column = shape.column(name)
        if column is not None and column.type in TIMESTAMP_TYPES:
            return Cursor(
                "timestamp", name, f"{name} is a timestamp that changes with every update"
            )
    if key.type in INTEGER_TYPES:
        return Cursor("key", None, _append_reason(entry, key, "no updated-at column"))
    return Cursor(
        "snapshot",
        None,
        f"no updated-at column and the key {key.name} ({key.type}) does not increase: "
        "the whole table is read each run",
    )


def _append_reason(entry: TableEntry, key: SourceColumn, why: str) -> str:
    return (
        f"{why}; {key.name} is an increasing {key.type}: new rows by key, and a full re-read "
        f"every {entry.reread_hours:g} h for updates"
    )


def _feed(entry: TableEntry, shape: TableShape, column: Column) -> Feed:
    mapping = entry.mapping(column.name)
    if isinstance(mapping, Constant):
        if mapping.value is None and column.required:
            raise _missing(entry, shape, column, "the contract says it is absent")
        return Feed(column, constant=mapping)
    for name in mapping:
        source = shape.column(name)
        if source is not None:
            return Feed(column, source=source)
    if column.required:
        raise _missing(entry, shape, column, f"looked for {', '.join(mapping)}")
    return Feed(column)


def _missing(entry: TableEntry, shape: TableShape, column: Column, why: str) -> ContractError:
    return ContractError(
        f"{where(entry)} has no column for {column.name}, which the models need ({why}; the "
        f"table has {', '.join(shape.names)}); in the contract file write "
        f"`{column.name}: <column>` (or `{column.name}: {{value: ...}}`) under "
        f"{entry_path(entry)}.columns."
    )


def _all_fit(values: list[Any], kind: CanonicalType) -> bool:
    """Whether every (present) value surely `_fits`: the common forms only, in C where it can."""
    if kind in FITS_ANY or not values:
        return True
    kinds = set(map(type, values))
    if kind == "boolean":
        return kinds == {bool}
    if kind in ("bigint", "integer"):
        limit = BIGINT_RANGE if kind == "bigint" else 2**31
        return kinds == {int} and -limit <= min(values) and max(values) < limit
    if kind == "numeric":  # a float from JSON is finite: beyond a double it parses as Decimal
        return kinds <= {int, float} and max(map(abs, values)) < MONEY_LIMIT
    if kinds != {str}:
        return False
    try:
        list(map(datetime.fromisoformat, values))
    except ValueError:
        return False
    return True


def _fits(value: Any, kind: CanonicalType) -> bool:
    """Whether PostgreSQL will cast this JSON value to the canonical type in the staging view."""
    if kind in FITS_ANY:
        return True
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("bigint", "integer"):
        if isinstance(value, bool):
            return False
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            value = int(value)
        limit = BIGINT_RANGE if kind == "bigint" else 2**31
        return isinstance(value, int) and -limit <= value < limit
    if kind == "numeric":
        if isinstance(value, bool):
            return False
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            return False
        return amount.is_finite() and abs(amount) < MONEY_LIMIT
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        return False
    return True
