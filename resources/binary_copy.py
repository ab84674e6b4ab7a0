"""Staged rows in COPY's binary format, when that cannot change what PostgreSQL stores.

Parsed pages hold JSON values: timestamps, dates and uuids as text. In text COPY PostgreSQL
parses each of them; in binary COPY it takes them as they are. A batch goes as binary only when
every column's values have a form whose binary value is the one PostgreSQL would make of the
text: integers within the column's range (a JSON `true` is not one), timestamps in the ISO form
PostgREST writes with a zone and at most microseconds, and so on. Any other batch goes as text,
where PostgreSQL judges each value and the loader finds a refused row by halving.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime
from operator import attrgetter, itemgetter
from typing import Any

from psycopg import Copy
from psycopg.types.string import BytesBinaryDumper

Column = Sequence[Any]
# a column's values as binary COPY takes them, or None: the batch goes as text
Convert = Callable[[Column], Column | None]
Fits = Callable[[Column], bool]

_NONE = type(None)
_ZONE = attrgetter("tzinfo")


# jsonb's binary form: a version byte, then the JSON text
JSONB_VERSION = b"\x01"


def _typed(kinds: frozenset[type]) -> Convert:
    def convert(values: Column) -> Column | None:
        return values if set(map(type, values)) <= kinds else None

    return convert


def _integers(bits: int) -> Convert:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    only_ints = _typed(frozenset({int, _NONE}))

    def convert(values: Column) -> Column | None:
        if only_ints(values) is None:
            return None
        present = [v for v in values if v is not None]
        return values if not present or low <= min(present) and max(present) <= high else None

    return convert


def _doubles(values: Column) -> Column | None:
    if not set(map(type, values)) <= {float, int, _NONE}:
        return None
    try:
        return [None if v is None else float(v) for v in values]
    except OverflowError:  # an integer beyond a double: PostgreSQL's to refuse, as text
        return None


def _shaped(positions: tuple[int, ...], marks: Sequence[str], longest: int) -> Fits:
    """Text with one of `marks` at `positions` and at most `longest` characters: the form
    PostgREST writes (a regex per value cost more than the parse)."""
    marks_at = itemgetter(*positions)
    allowed = {tuple(m) for m in marks}

    def fits(texts: Column) -> bool:
        if min(map(len, texts)) <= max(map(abs, positions)):
            return False
        return set(map(marks_at, texts)) <= allowed and max(map(len, texts)) <= longest

    return fits


def _parsed(fits: Fits, parse: Callable[[str], Any], zoned: bool | None = None) -> Convert:
    """Text values that `fit` one exact form, parsed; `zoned` says whether each must carry a
    zone (a wall time is read in the session's zone by PostgreSQL, so it goes as text)."""
    only_text = _typed(frozenset({str, _NONE}))

    def convert(values: Column) -> Column | None:
        if only_text(values) is None:
            return None
        present = [v for v in values if v is not None] if None in values else values
        if not present:
            return values
        if not fits(present):
            return None
        try:
            parsed = list(map(parse, present))
        except ValueError:  # say a day 31 in April: PostgreSQL's to refuse, as text
            return None
        if zoned is not None:
            zones = set(map(_ZONE, parsed))
            if None in zones if zoned else zones != {None}:
                return None
        if present is values:
            return parsed
        each = iter(parsed)
        return [None if v is None else next(each) for v in values]

    return convert


def _jsonb(values: Column) -> Column | None:
    """JSON text (what the loader stages for jsonb) in jsonb's binary form, sent through
    psycopg's bytes dumper (in C; binary COPY carries no type, only each value's bytes)."""
    if not set(map(type, values)) <= {str, _NONE}:
        return None
    try:
        return [None if v is None else JSONB_VERSION + v.encode() for v in values]
    except UnicodeEncodeError:  # a lone surrogate: refused as text, with its reason
        return None


# ISO forms: a date; a time of day after "T"; a zone as ±HH:MM last, so that the longest
# timestamp holds at most six digits of fractions (more would be truncated here, rounded there)
_DATE = _shaped((4, 7), ["--"], 10)
_STAMP_ZONED = _shaped((4, 7, 10, -6, -3), ["--T+:", "--T-:"], 32)
_STAMP = _shaped((4, 7, 10), ["--T"], 26)
_UUID = _shaped((8, 13, 18, 23), ["----"], 36)

# stored type → (PostgreSQL's type name for psycopg, the conversion)
CONVERSIONS: dict[str, tuple[str, Convert]] = {
    "smallint": ("int2", _integers(16)),
    "integer": ("int4", _integers(32)),
    "bigint": ("int8", _integers(64)),
    "boolean": ("bool", _typed(frozenset({bool, _NONE}))),
    "double precision": ("float8", _doubles),
    "text": ("text", _typed(frozenset({str, _NONE}))),
    "jsonb": ("bytea", _jsonb),
    "bytea": ("bytea", _typed(frozenset({bytes, _NONE}))),
    "uuid": ("uuid", _parsed(_UUID, uuid.UUID)),
    "date": ("date", _parsed(_DATE, date.fromisoformat)),
    "timestamptz": ("timestamptz", _parsed(_STAMP_ZONED, datetime.fromisoformat, True)),
    "timestamp": ("timestamp", _parsed(_STAMP, datetime.fromisoformat, False)),
}


def binary_rows(types: Sequence[str], columns: Sequence[Column]) -> list[tuple] | None:
    """The rows of `columns` (each column's values, in `types`' order) as binary COPY takes
    them, or None if any column cannot go as binary (its type, or one of its values)."""
    if not columns or not columns[0] or any(t not in CONVERSIONS for t in types):
        return None
    converted = []
    for stored, values in zip(types, columns, strict=True):
        column = CONVERSIONS[stored][1](values)
        if column is None:
            return None
        converted.append(column)
    return list(zip(*converted, strict=True))


def set_types(copy: Copy, types: Sequence[str]) -> None:
    """A binary COPY's column types, as `binary_rows` holds their values. A bytea column's
    values go through psycopg's own bytes dumper (in C): by the type's oid psycopg finds the
    dumper of its DB-API `Binary` wrapper, written in Python."""
    copy.cursor.adapters.register_dumper(None, BytesBinaryDumper)
    copy.set_types([CONVERSIONS[t][0] for t in types])
