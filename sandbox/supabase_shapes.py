"""The Supabase tables as the vendor side stores them, and the schema variants of that storage.

`DEFAULT` declares every project's tables: columns in order with their PostgreSQL type (spelled as
`format_type` prints it), NOT NULL, default, primary key and foreign key. Each column also says how
its value comes from the world's row (`sandbox.world`, keyed by the canonical names).

A variant is one table of transforms per `(project, table)`, applied in order to the declaration:
the DDL is generated from the result and every row `supabase_db.sync_tables` writes goes through
the same columns, so all variants hold the same rows of the same world; only the storage differs.
`shapes(variant)` resolves one. A new variant is a few lines in `VARIANTS`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

Row = Mapping[str, Any]
Value = Callable[[Row], Any]

# The namespace of every uuid key: fixed, so a world's uuids are the same in every run.
UUID_NAMESPACE = uuid.UUID("6f1c2a3e-8d4b-5e6f-9a0b-1c2d3e4f5a6b")
# Enum types a variant may use, created in a project's database when one of its columns does.
ENUMS: dict[str, tuple[str, ...]] = {"sale_channel": ("webhook", "crm", "tripwire_checkout")}
TZ = "timestamp with time zone"
MONEY = "numeric(14,2)"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    value: Value = field(compare=False)  # the stored value, from the world's row
    not_null: bool = False
    default: str | None = None  # an SQL expression
    primary_key: bool = False
    references: str | None = None  # "table.column", a foreign key


@dataclass(frozen=True)
class TableShape:
    columns: tuple[Column, ...]

    @property
    def key(self) -> Column:
        return next(c for c in self.columns if c.primary_key)

    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def stored_key(self, world_key: Any) -> Any:
        """A deleted row's key as stored: key columns are derived from the world's `id` alone."""
        return self.key.value({"id": world_key})


def _col(name: str, type_: str, not_null: bool = False, **options: Any) -> Column:
    return Column(name, type_, itemgetter(name), not_null, **options)


def _id() -> Column:
    return _col("id", "bigint", True, primary_key=True)


def _stamps(*names: str) -> tuple[Column, ...]:
    return tuple(_col(n, TZ, True) for n in names)


_UTM = tuple(_col(n, "text") for n in ("utm_source", "utm_medium", "utm_campaign"))
_UTM += tuple(_col(n, "text") for n in ("utm_content", "utm_term"))
_PERSON = tuple(_col(n, "text") for n in ("name", "phone", "email"))
_WEBHOOK_SALE = TableShape(
    (
        _id(),
        _col("amocrm_lead_id", "bigint"),
        _col("pipeline_id", "bigint"),
        _col("status_id", "bigint"),
        _col("amount", MONEY),
        _col("currency", "text"),
        *_UTM,
        *_stamps("created_at"),
        _col("payload", "jsonb"),
    )
)

DEFAULT: dict[str, dict[str, TableShape]] = {
    "main": {
        "landing_leads": TableShape(
            (
                _id(),
                *_stamps("created_at", "updated_at"),
                *_PERSON,
                _col("funnel", "text"),
                *_UTM,
                _col("amocrm_lead_id", "bigint"),
                _col("synced_to_amocrm", "boolean", True, default="false"),
                _col("synced_at", TZ),
            )
        ),
        "prooftest_leads": TableShape(
            (_id(), *_stamps("created_at", "updated_at"), *_PERSON, *_UTM)
        ),
        "express_course_sales": _WEBHOOK_SALE,
        "flagship_course_sales": _WEBHOOK_SALE,
    },
    "tripwire": {
        "tripwire_users": TableShape(
            (_id(), *_stamps("created_at", "updated_at"), *_PERSON, *_UTM)
        ),
        "tripwire_purchases": TableShape(
            (
                _id(),
                _col("user_id", "bigint", True, references="tripwire_users.id"),
                _col("amount", MONEY, True),
                _col("currency", "text", True),
                _col("status", "text", True),
                *_stamps("created_at", "updated_at"),
            )
        ),
    },
    "traffic": {
        "all_sales_tracking": TableShape(
            (
                _id(),
                _col("product", "text", True),
                _col("amocrm_lead_id", "bigint"),
                _col("amount", MONEY, True),
                _col("currency", "text", True),
                *_UTM,
                _col("targetologist", "text"),
                *_stamps("sold_at", "created_at", "updated_at"),
            )
        ),
        "targetologists": TableShape(
            (
                _id(),
                _col("name", "text", True),
                _col("active", "boolean", True),
                *_stamps("created_at", "updated_at"),
            )
        ),
        "targetologist_utm_rules": TableShape(
            (
                _id(),
                _col("targetologist_id", "bigint", True, references="targetologists.id"),
                _col("utm_field", "text", True),
                _col("match_type", "text", True),
                _col("pattern", "text", True),
                _col("priority", "integer", True),
                *_stamps("created_at", "updated_at"),
            )
        ),
    },
}


# ----------------------------------------------------------------------------------------------
# Transforms


@dataclass(frozen=True)
class Rename:
    old: str
    new: str


@dataclass(frozen=True)
class Drop:
    name: str


@dataclass(frozen=True)
class Add:
    """A column the world does not have, appended, its value derived from the row."""

    name: str
    type: str
    value: Value
    not_null: bool = False


@dataclass(frozen=True)
class Retype:
    """The same column stored as another type: `convert` maps the stored value."""

    name: str
    type: str
    convert: Callable[[Any], Any]


@dataclass(frozen=True)
class Derive:
    """The same column, its value computed from the whole row instead."""

    name: str
    value: Value


Transform = Rename | Drop | Add | Retype | Derive


def uuid_key(table: str) -> Callable[[Any], uuid.UUID]:
    """A random-looking uuid per id of `table` (not order-preserving); the same for its FKs."""
    return lambda key: uuid.uuid5(UUID_NAMESPACE, f"{table}/{key}")


def slug_key(prefix: str) -> Callable[[Any], str]:
    return lambda key: f"{prefix}-{key}"


def utc_wall_time(ts: datetime | None) -> datetime | None:
    """For `timestamp without time zone`: the UTC wall time, as an app writing `now()` in UTC."""
    return None if ts is None else ts.astimezone(UTC).replace(tzinfo=None)


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_pattern(rule: Row) -> str:
    """A rule's (match_type, pattern) as one SQL LIKE pattern."""
    escaped = like_escape(rule["pattern"])
    return {"exact": escaped, "prefix": f"{escaped}%", "contains": f"%{escaped}%"}[
        rule["match_type"]
    ]


def _apply(shape: TableShape, transform: Transform) -> TableShape:
    columns = list(shape.columns)
    if isinstance(transform, Add):
        columns.append(Column(transform.name, transform.type, transform.value, transform.not_null))
        return TableShape(tuple(columns))
    names = [c.name for c in columns]
    target = transform.old if isinstance(transform, Rename) else transform.name
    if target not in names:
        raise KeyError(f"no column {target!r} to transform in {names}")
    i = names.index(target)
    col = columns[i]
    if isinstance(transform, Drop):
        del columns[i]
    elif isinstance(transform, Rename):
        columns[i] = replace(col, name=transform.new)
    elif isinstance(transform, Retype):
        convert, source = transform.convert, col.value
        columns[i] = replace(col, type=transform.type, value=lambda row: convert(source(row)))
    else:
        columns[i] = replace(col, value=transform.value)
    return TableShape(tuple(columns))


def transformed(shape: TableShape, transforms: list[Transform]) -> TableShape:
    for transform in transforms:
        shape = _apply(shape, transform)
    return shape


def altered(shape: TableShape, add: dict[str, str], drop: list[str]) -> TableShape:
    """The shape after `ALTER TABLE ... ADD/DROP COLUMN`: an added column stays NULL, since the
    world knows nothing of it (an app's new column nobody writes yet)."""
    return transformed(
        shape, [*(Add(n, t, lambda _row: None) for n, t in add.items()), *map(Drop, drop)]
    )


# ----------------------------------------------------------------------------------------------
# Variants: (project, table) → transforms, in order

Variant = dict[tuple[str, str], list[Transform]]
_APPEND_ONLY = (
    ("main", "prooftest_leads"),
    ("tripwire", "tripwire_users"),
    ("traffic", "all_sales_tracking"),
    ("traffic", "targetologists"),
    ("traffic", "targetologist_utm_rules"),
)


def _channel(sale: Row) -> str:
    return "tripwire_checkout" if sale["product"] == "tripwire" else "webhook"


VARIANTS: dict[str, Variant] = {
    "default": {},
    # rows of these tables are never updated after insert in the world, so nothing is lost
    "no_updated_at": {table: [Drop("updated_at")] for table in _APPEND_ONLY},
    "renamed": {
        ("traffic", "targetologists"): [Rename("active", "is_active")],
        ("traffic", "all_sales_tracking"): [
            Drop("created_at"),
            Drop("updated_at"),
            Rename("sold_at", "created_at"),
        ],
        ("main", "landing_leads"): [
            Rename("utm_source", "source"),
            Rename("utm_campaign", "campaign"),
        ],
        ("main", "prooftest_leads"): [Rename("created_at", "inserted_at")],
    },
    "keys": {
        ("tripwire", "tripwire_users"): [
            Retype("id", "uuid", uuid_key("tripwire_users")),
            Drop("updated_at"),
            Retype("created_at", "timestamp without time zone", utc_wall_time),
        ],
        ("tripwire", "tripwire_purchases"): [
            Retype("id", "uuid", uuid_key("tripwire_purchases")),
            Retype("user_id", "uuid", uuid_key("tripwire_users")),
        ],
        ("traffic", "targetologists"): [Retype("id", "text", slug_key("t"))],
        ("traffic", "targetologist_utm_rules"): [
            Retype("targetologist_id", "text", slug_key("t")),
        ],
    },
    "like_rules": {
        ("traffic", "targetologist_utm_rules"): [
            Derive("pattern", like_pattern),
            Drop("match_type"),
        ],
    },
    "extra_columns": {
        ("main", "landing_leads"): [
            Add("page_views", "integer", lambda r: r["id"] % 7 + 1),
            Add("tags", "text[]", lambda r: [t for t in (r["funnel"], r["utm_source"]) if t]),
        ],
        ("main", "prooftest_leads"): [
            Add("form", "jsonb", lambda r: {"form": "prooftest", "step": r["id"] % 3}),
        ],
        ("tripwire", "tripwire_users"): [
            Add("birth_date", "date", lambda r: date(1975 + r["id"] % 30, r["id"] % 12 + 1, 1)),
            Add("referrer", "text", lambda r: f"https://ref.example.kz/{r['id'] % 5}"),
        ],
        ("traffic", "all_sales_tracking"): [
            Add("channel", "sale_channel", _channel, not_null=True),
        ],
    },
}


def shapes(variant: str = "default") -> dict[str, dict[str, TableShape]]:
    """Every project's tables as `variant` stores them."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown Supabase schema variant {variant!r}; one of {sorted(VARIANTS)}")
    transforms = VARIANTS[variant]
    return {
        project: {
            name: transformed(shape, transforms.get((project, name), []))
            for name, shape in tables.items()
        }
        for project, tables in DEFAULT.items()
    }
