"""The API's answers, declared once: FastAPI serializes them and documents them at /docs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class SourceFreshness(BaseModel):
    source: str
    as_of: datetime | None = Field(description="the source's last successful load")
    last_attempt_at: datetime
    status: Literal["ok", "error"] = Field(description="how its latest attempt ended")
    stale: bool = Field(description="latest attempt failed, or last success older than the bound")
    error: str | None = Field(description="why it is stale, in the loader's words")


class Freshness(BaseModel):
    as_of: dict[str, datetime | None]
    stale: list[str] = Field(description="the sources whose numbers may be behind")
    sources: list[SourceFreshness]
    stale_after_minutes: int


class Answer(BaseModel):
    success: Literal[True] = True
    freshness: Freshness


class Span(BaseModel):
    from_: date = Field(alias="from", serialization_alias="from")
    to: date


class LeadsDay(BaseModel):
    day: date
    leads: int
    test_leads: int


class LeadsTotalData(Span):
    leads: int = Field(description="landing, tripwire and AmoCRM-born leads, test leads apart")
    test_leads: int = Field(description="ProofTest leads")
    days: list[LeadsDay]


class LeadsTotal(Answer):
    data: LeadsTotalData


class FunnelLeads(BaseModel):
    funnel: str
    leads: int
    synced_to_amocrm: int


class FunnelLeadsDay(FunnelLeads):
    day: date


class LeadsByFunnelData(Span):
    funnels: list[FunnelLeads]
    days: list[FunnelLeadsDay]


class LeadsByFunnel(Answer):
    data: LeadsByFunnelData


class FunnelSales(BaseModel):
    funnel: str
    currency: str
    sales: int
    revenue: float


class FunnelSalesDay(FunnelSales):
    day: date


class SalesTotalData(Span):
    sales: int
    totals: list[FunnelSales] = Field(description="per funnel and currency over the range")
    days: list[FunnelSalesDay]


class SalesTotal(Answer):
    data: SalesTotalData


class Figures(BaseModel):
    targetologist: str
    spend: float | None = Field(description="NULL when an exchange rate is missing, never 0")
    leads: int
    sales: int
    revenue: float
    cpl: float | None
    cpa: float | None
    roas: float | None


class TargetologistDay(Figures):
    day: date
    currency: str
    impressions: int
    clicks: int
    is_provisional: bool = Field(description="inside Facebook's restatement window")


class TargetologistDailyData(Span):
    currency: str | None = Field(description="the reporting currency of spend and revenue")
    rows: list[TargetologistDay]
    totals: list[Figures] = Field(description="per targetologist over the range")


class TargetologistDaily(Answer):
    data: TargetologistDailyData


class TargetologistsData(BaseModel):
    targetologists: list[str]


class Targetologists(Answer):
    data: TargetologistsData


class Diagnostic(BaseModel):
    name: str
    status: Literal["ok", "warning", "error"]
    message: str
    details: dict[str, Any]


class Summary(BaseModel):
    total: int
    ok: int
    warning: int
    error: int


class DiagnosticsData(BaseModel):
    overall_status: Literal["ok", "warning", "error"]
    diagnostics: list[Diagnostic]
    summary: Summary
    checked_at: datetime | None = Field(description="when the latest of them was stored")


class Diagnostics(Answer):
    data: DiagnosticsData


class Health(BaseModel):
    success: Literal[True] = True
    status: Literal["healthy", "unhealthy"]
    service: str
    timestamp: datetime
    problems: list[str] = Field(description="one line per problem; empty when healthy")
