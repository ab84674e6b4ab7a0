"""What the models need from each Supabase table, declared once: the canonical columns, their
types, whether a model cannot do without them, and the source names tried when the contract file
names none.

Core SQL reads only these names, through the staging views (`stg_supabase_<project>.<table>`);
which source column feeds each one is the contract's business (`contract.yaml`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from psycopg import sql

CanonicalType = Literal["text", "bigint", "integer", "numeric", "boolean", "timestamptz", "jsonb"]
# The key of every staged table is text: sources key their rows by integers, uuids or slugs, and
# the models only compare keys, never do arithmetic on them.
KEY_TYPE: CanonicalType = "text"
UTM_COLUMNS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
PROJECTS = {"main": "Main", "tripwire": "Tripwire", "traffic": "Traffic"}
# The funnels the models emit; a landing lead whose source names none lands in UNKNOWN_FUNNEL.
FUNNELS = ("express", "flagship", "tripwire", "prooftest")
UNKNOWN_FUNNEL = "unknown"
# Every canonical numeric is money, and core and marts keep money as numeric(14,2): a larger
# amount would fail every model build, so such a record is quarantined at the boundary.
MONEY_LIMIT = Decimal(10) ** 12


@dataclass(frozen=True)
class Column:
    name: str
    type: CanonicalType
    required: bool = False
    candidates: tuple[str, ...] = ()  # source column names tried in order; default: the name
    indexed: bool = False  # joined on by the models: the raw column gets an index

    @property
    def defaults(self) -> tuple[str, ...]:
        return self.candidates or (self.name,)


@dataclass(frozen=True)
class CanonicalTable:
    project: str  # main | tripwire | traffic
    name: str  # the entry in the contract, the raw table and the staging view
    columns: tuple[Column, ...]
    description: str

    @property
    def source(self) -> str:
        return f"supabase_{self.project}"

    @property
    def raw_schema(self) -> str:
        return f"raw_{self.source}"

    @property
    def staging_schema(self) -> str:
        return f"stg_{self.source}"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _utm() -> tuple[Column, ...]:
    return tuple(Column(name, "text") for name in UTM_COLUMNS)


CREATED_AT = Column("created_at", "timestamptz", True, ("created_at", "inserted_at", "created"))
AMOCRM_LEAD_ID = Column(
    "amocrm_lead_id", "bigint", candidates=("amocrm_lead_id", "amo_lead_id", "amocrm_id"),
    indexed=True,
)  # fmt: skip
PERSON = (CREATED_AT, *_utm())
WEBHOOK_SALE = (
    AMOCRM_LEAD_ID,
    Column("pipeline_id", "bigint"),
    Column("status_id", "bigint"),
    Column("amount", "numeric", candidates=("amount", "price", "sum")),
    Column("currency", "text"),
    *_utm(),
    CREATED_AT,
    Column("payload", "jsonb"),
)

CANONICAL_TABLES: tuple[CanonicalTable, ...] = (
    CanonicalTable(
        "main",
        "landing_leads",
        (
            CREATED_AT,
            Column("funnel", "text"),
            *_utm(),
            AMOCRM_LEAD_ID,
            Column(
                "synced_to_amocrm", "boolean", True, ("synced_to_amocrm", "synced", "is_synced")
            ),
            Column("synced_at", "timestamptz"),
        ),
        "leads from the landing pages, with their AmoCRM sync state",
    ),
    CanonicalTable("main", "prooftest_leads", PERSON, "ProofTest (test) leads"),
    CanonicalTable("main", "express_course_sales", WEBHOOK_SALE, "Express course webhook sales"),
    CanonicalTable("main", "flagship_course_sales", WEBHOOK_SALE, "Flagship course webhook sales"),
    CanonicalTable("tripwire", "tripwire_users", PERSON, "tripwire product users"),
    CanonicalTable(
        "tripwire",
        "tripwire_purchases",
        (
            Column("user_id", KEY_TYPE, True, indexed=True),
            Column("amount", "numeric", True, ("amount", "price", "sum")),
            Column("currency", "text", True),
            Column("status", "text", True),
            CREATED_AT,
        ),
        "tripwire purchases (paid or refunded)",
    ),
    CanonicalTable(
        "traffic",
        "all_sales_tracking",
        (
            Column("product", "text", True),
            AMOCRM_LEAD_ID,
            Column("amount", "numeric", True, ("amount", "price", "sum")),
            Column("currency", "text", True),
            *_utm(),
            Column("targetologist", "text"),
            Column("sold_at", "timestamptz", True, ("sold_at", "created_at")),
        ),
        "every sale as the tracking project recorded it",
    ),
    CanonicalTable(
        "traffic",
        "targetologists",
        (
            Column("name", "text", True),
            Column("active", "boolean", True, ("active", "is_active", "enabled")),
        ),
        "the targetologists",
    ),
    CanonicalTable(
        "traffic",
        "targetologist_utm_rules",
        (
            Column("targetologist_id", KEY_TYPE, True),
            Column("utm_field", "text", True, ("utm_field", "field")),
            # exact | prefix | contains | like; a table of LIKE patterns maps it to a constant
            Column("match_type", "text", True, ("match_type", "match")),
            Column("pattern", "text", True, ("pattern", "value")),
            Column("priority", "integer", True, ("priority", "sort", "position")),
        ),
        "which UTM values credit which targetologist",
    ),
)

MATCH_TYPES = ("exact", "prefix", "contains", "like")
PII_COLUMNS = frozenset({"name", "phone", "email", "full_name", "first_name", "last_name"})


def placeholder_sql(table: CanonicalTable) -> sql.Composed:
    """The view of a table never loaded: the canonical columns and no rows."""
    items: list[sql.Composable] = [sql.SQL("NULL::{} AS id").format(sql.SQL(KEY_TYPE))]
    items += [
        sql.SQL("NULL::{} AS {}").format(sql.SQL(c.type), sql.Identifier(c.name))
        for c in table.columns
    ]
    items += [
        sql.SQL("NULL::timestamptz AS _loaded_at"),
        sql.SQL("NULL::timestamptz AS _deleted_at"),
    ]
    return canonical_view(table, items, sql.SQL("WHERE false"))


def canonical_view(
    table: CanonicalTable, items: Sequence[sql.Composable], tail: sql.Composable
) -> sql.Composed:
    return sql.SQL("CREATE OR REPLACE VIEW {} AS SELECT {} {}").format(
        sql.Identifier(table.staging_schema, table.name), sql.SQL(", ").join(items), tail
    )
