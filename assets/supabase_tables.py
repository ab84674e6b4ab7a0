"""The Supabase tables we load, declared once: source name, raw target, keyset, typed record.

Vendor JSON becomes one of these pydantic records before anything else touches it; a record that
fails validation goes to `ops.quarantine` with pydantic's error as the reason. A column renamed in
a project is mapped here with `Field(alias="source_name")`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from resources.supabase import BY_ID, BY_UPDATED_AT, Keyset
from resources.warehouse import TableSpec


class SupabaseRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int


class Utm(SupabaseRecord):
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_content: str | None = None
    utm_term: str | None = None


class Person(Utm):
    created_at: AwareDatetime
    updated_at: AwareDatetime
    name: str | None = None
    phone: str | None = None
    email: str | None = None


class LandingLead(Person):
    funnel: str | None = None
    amocrm_lead_id: int | None = None
    synced_to_amocrm: bool
    synced_at: AwareDatetime | None = None


class WebhookSale(Utm):
    amocrm_lead_id: int | None = None
    pipeline_id: int | None = None
    status_id: int | None = None
    amount: Decimal | None = None
    currency: str | None = None
    created_at: AwareDatetime
    payload: dict[str, Any] | list[Any] | None = None


class TripwirePurchase(SupabaseRecord):
    user_id: int
    amount: Decimal
    currency: str
    status: str
    created_at: AwareDatetime
    updated_at: AwareDatetime


class SaleTracking(Utm):
    product: str
    amocrm_lead_id: int | None = None
    amount: Decimal
    currency: str
    targetologist: str | None = None
    sold_at: AwareDatetime
    created_at: AwareDatetime
    updated_at: AwareDatetime


class Targetologist(SupabaseRecord):
    name: str
    active: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime


class UtmRule(SupabaseRecord):
    targetologist_id: int
    utm_field: str
    match_type: str
    pattern: str
    priority: int
    created_at: AwareDatetime
    updated_at: AwareDatetime


PII_COLUMNS = frozenset({"name", "phone", "email"})


@dataclass(frozen=True)
class SupabaseTable:
    project: str  # main | tripwire | traffic
    name: str  # table name in the project (and in our raw schema)
    model: type[SupabaseRecord]
    keyset: Keyset

    @property
    def source(self) -> str:
        return f"supabase_{self.project}"

    @property
    def spec(self) -> TableSpec:
        columns = tuple(field.alias or name for name, field in self.model.model_fields.items())
        return TableSpec(f"raw_{self.source}", self.name, (*columns, "_raw"))

    @cached_property
    def field_names(self) -> tuple[str, ...]:
        return tuple(self.model.model_fields)


SUPABASE_TABLES: tuple[SupabaseTable, ...] = (
    SupabaseTable("main", "landing_leads", LandingLead, BY_UPDATED_AT),
    SupabaseTable("main", "prooftest_leads", Person, BY_UPDATED_AT),
    # webhook rows are written once and never updated: the id is the cursor
    SupabaseTable("main", "express_course_sales", WebhookSale, BY_ID),
    SupabaseTable("main", "flagship_course_sales", WebhookSale, BY_ID),
    SupabaseTable("tripwire", "tripwire_users", Person, BY_UPDATED_AT),
    SupabaseTable("tripwire", "tripwire_purchases", TripwirePurchase, BY_UPDATED_AT),
    SupabaseTable("traffic", "all_sales_tracking", SaleTracking, BY_UPDATED_AT),
    SupabaseTable("traffic", "targetologists", Targetologist, BY_UPDATED_AT),
    SupabaseTable("traffic", "targetologist_utm_rules", UtmRule, BY_UPDATED_AT),
)

PROJECTS = {"main": "Main", "tripwire": "Tripwire", "traffic": "Traffic"}
