"""The exact content every `marts` table must hold for a world, computed in Python from the
world's own state, independently of the warehouse's SQL."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from resources.facebook import PROVISIONAL_DAYS
from sandbox.names import UTM_FIELDS, attribute
from sandbox.world import (
    CURRENCY,
    EXPRESS_PIPELINE,
    FLAGSHIP_PIPELINE,
    FX_RATES,
    WON,
    World,
    report_day,
)

CENT, RATIO = Decimal("0.01"), Decimal("0.0001")


def _round(value: Decimal, unit: Decimal) -> Decimal:
    return value.quantize(unit, rounding=ROUND_HALF_UP)  # PostgreSQL's round() for positives


def _rate(currency: str) -> Decimal:
    return Decimal(1) if currency == CURRENCY else FX_RATES[currency]


@dataclass(frozen=True)
class Lead:
    day: date
    funnel: str
    is_test: bool
    synced: bool
    targetologist: str


@dataclass(frozen=True)
class Sale:
    day: date
    funnel: str
    amount: Decimal
    currency: str
    targetologist: str
    pipeline_mismatch: bool
    webhook_rows: int


def _utm(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in UTM_FIELDS}


def leads(world: World) -> list[Lead]:
    main = world.supabase["main"]
    # a landing lead that names no funnel is counted under "unknown" (contract.UNKNOWN_FUNNEL)
    result = [
        Lead(report_day(r["created_at"]), r["funnel"] or "unknown", False, r["synced_to_amocrm"],
             attribute(_utm(r)))
        for r in main["landing_leads"].rows.values()
    ]  # fmt: skip
    result += [
        Lead(report_day(r["created_at"]), "prooftest", True, False, attribute(_utm(r)))
        for r in main["prooftest_leads"].rows.values()
    ]
    result += [
        Lead(report_day(r["created_at"]), "tripwire", False, False, attribute(_utm(r)))
        for r in world.supabase["tripwire"]["tripwire_users"].rows.values()
    ]
    linked = {r["amocrm_lead_id"] for r in main["landing_leads"].rows.values()}
    result += [
        Lead(report_day(d["created_at"]),
             "express" if d["pipeline_id"] == EXPRESS_PIPELINE else "flagship",
             False, True, attribute(d["utm"]))
        for d in world.amocrm_leads.values()
        if d["id"] not in linked and d["pipeline_id"] in (EXPRESS_PIPELINE, FLAGSHIP_PIPELINE)
    ]  # fmt: skip
    return result


def sales(world: World) -> list[Sale]:
    main = world.supabase["main"]
    landing_by_deal = {
        r["amocrm_lead_id"]: r for r in main["landing_leads"].rows.values() if r["amocrm_lead_id"]
    }
    webhooks: dict[int, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for course in ("express", "flagship"):
        for row in main[f"{course}_course_sales"].rows.values():
            webhooks[row["amocrm_lead_id"]].append((course, row))
    result = []
    for deal_id, rows in webhooks.items():
        course, first = min(rows, key=lambda cr: (cr[1]["created_at"], cr[1]["id"]))
        deal = world.amocrm_leads.get(deal_id)
        course_pipeline = EXPRESS_PIPELINE if course == "express" else FLAGSHIP_PIPELINE
        deal_pipeline = deal["pipeline_id"] if deal else None
        funnel = {EXPRESS_PIPELINE: "express", FLAGSHIP_PIPELINE: "flagship"}.get(
            deal_pipeline or 0, course
        )
        landing = landing_by_deal.get(deal_id)
        utm = _utm(landing) if landing else deal["utm"] if deal else _utm(first)
        result.append(
            Sale(report_day(first["created_at"]), funnel, first["amount"], first["currency"],
                 attribute(utm), first["pipeline_id"] != (deal_pipeline or course_pipeline),
                 len(rows))
        )  # fmt: skip
    assert not [
        d for d in world.amocrm_leads.values() if d["status_id"] == WON and d["id"] not in webhooks
    ], "every won deal in the world writes a webhook"
    users = world.supabase["tripwire"]["tripwire_users"].rows
    for p in world.supabase["tripwire"]["tripwire_purchases"].rows.values():
        if p["status"] == "paid":
            result.append(
                Sale(report_day(p["created_at"]), "tripwire", p["amount"], p["currency"],
                     attribute(_utm(users[p["user_id"]])), False, 0)
            )  # fmt: skip
    return result


def leads_total(world: World) -> list[tuple[date, int, int]]:
    counts: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for lead in leads(world):
        counts[lead.day][1 if lead.is_test else 0] += 1
    return [(d, c[0], c[1]) for d, c in sorted(counts.items())]


def leads_by_funnel(world: World) -> list[tuple[date, str, int, int]]:
    counts: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0])
    for lead in leads(world):
        counts[(lead.day, lead.funnel)][0] += 1
        counts[(lead.day, lead.funnel)][1] += lead.synced
    return [(d, f, c[0], c[1]) for (d, f), c in sorted(counts.items())]


def leads_by_targetologist(world: World) -> list[tuple[date, str, str, int, int, int]]:
    counts: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for lead in leads(world):
        row = counts[(lead.day, lead.targetologist, lead.funnel)]
        row[0] += 1
        row[1] += lead.is_test
        row[2] += lead.synced
    return [(d, t, f, *c) for (d, t, f), c in sorted(counts.items())]  # type: ignore[misc]


def sales_by_targetologist(world: World) -> list[tuple[date, str, str, str, int, Decimal]]:
    totals: dict[tuple[date, str, str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for sale in sales(world):
        key = (sale.day, sale.targetologist, sale.funnel, sale.currency)
        totals[key][0] += 1
        totals[key][1] += sale.amount
    return [(d, t, f, c, n[0], n[1]) for (d, t, f, c), n in sorted(totals.items())]


def sales_total(world: World) -> list[tuple[date, str, str, int, Decimal]]:
    totals: dict[tuple[date, str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for sale in sales(world):
        key = (sale.day, sale.funnel, sale.currency)
        totals[key][0] += 1
        totals[key][1] += sale.amount
    return [(d, f, c, t[0], t[1]) for (d, f, c), t in sorted(totals.items())]


def targetologist_daily(world: World) -> list[tuple[Any, ...]]:
    rows: dict[tuple[date, str], dict[str, Any]] = defaultdict(
        lambda: {"spend": None, "impressions": 0, "clicks": 0, "leads": 0, "sales": 0,
                 "revenue": Decimal(0)}
    )  # fmt: skip
    fb_days = []
    for (ad_id, day), insight in world.fb_insights.items():
        if not insight["impressions"]:
            continue
        fb_days.append(day)
        ad = world.fb_ads[ad_id]
        campaign = world.fb_campaigns[ad["campaign_id"]]["name"]
        who = attribute({"utm_campaign": campaign, "utm_content": ad_id})
        currency = world.fb_accounts[ad["account_id"]]["currency"]
        row = rows[(day, who)]
        spend = _round(insight["spend"] * _rate(currency), CENT)
        row["spend"] = (row["spend"] or Decimal(0)) + spend
        row["impressions"] += insight["impressions"]
        row["clicks"] += insight["clicks"]
    for lead in leads(world):
        if not lead.is_test:
            rows[(lead.day, lead.targetologist)]["leads"] += 1
    for sale in sales(world):
        row = rows[(sale.day, sale.targetologist)]
        row["sales"] += 1
        row["revenue"] += _round(sale.amount * _rate(sale.currency), CENT)
    today = max(fb_days) if fb_days else None
    result = []
    for (day, who), r in sorted(rows.items()):
        spend = r["spend"] if r["spend"] is not None else Decimal(0)
        result.append((
            day, who, CURRENCY, spend, r["impressions"], r["clicks"], r["leads"], r["sales"],
            r["revenue"],
            _round(spend / r["leads"], CENT) if r["leads"] else None,
            _round(spend / r["sales"], CENT) if r["sales"] else None,
            _round(r["revenue"] / spend, RATIO) if spend else None,
            today is not None and day >= today - timedelta(days=PROVISIONAL_DAYS),
        ))  # fmt: skip
    return result


def all_marts(world: World) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "marts.leads_total": leads_total(world),
        "marts.leads_by_funnel": leads_by_funnel(world),
        "marts.sales_total": sales_total(world),
        "marts.targetologist_daily": targetologist_daily(world),
        "marts.leads_by_targetologist": leads_by_targetologist(world),
        "marts.sales_by_targetologist": sales_by_targetologist(world),
    }


@dataclass(frozen=True)
class Plausibility:
    """What a dashboard user would check first: the return on ad spend, in the reporting
    currency over the whole history, and the days on which landing leads outnumber the clicks
    that could have brought them."""

    roas: Decimal
    days_with_more_leads_than_clicks: int
    days: int


def plausibility(world: World) -> Plausibility:
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])  # clicks, leads
    spend = revenue = Decimal(0)
    for day, _, _, day_spend, _, clicks, leads_, _, day_revenue, *_ in targetologist_daily(world):
        per_day[day][0] += clicks
        per_day[day][1] += leads_
        spend += day_spend
        revenue += day_revenue
    return Plausibility(
        roas=_round(revenue / spend, RATIO) if spend else Decimal(0),
        days_with_more_leads_than_clicks=sum(1 for c, n in per_day.values() if n > c),
        days=len(per_day),
    )
