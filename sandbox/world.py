"""The simulated business: one deterministic world behind all five sources, with its ground truth.

`World(seed, scale, history_days=30)` simulates hour by hour up to the same `now` (`START` plus
30 days), starting `history_days` before it: Facebook ads spend and get clicks, clicks
become landing leads with UTM, leads sync into AmoCRM (some late, some never), deals move through
pipeline statuses to won (142) or lost (143), won deals write webhook sale rows into Supabase Main
(some duplicated, some on the wrong pipeline, some without UTM) and `all_sales_tracking` rows into
Traffic; tripwire users buy (and sometimes refund); ProofTest leads are test traffic. One random
stream drives it all, so `World(s).advance(a).advance(b)` equals `World(s).advance(a + b)`.

The state kept here is what each vendor would answer now; `truth_*` methods give the exact content
each `marts` table must hold. Rows are plain dicts keyed by the vendor's column names.

A school's scale: `World.school(leads=1_000_000, days=730)` is the world of `school_scale`, the
scale that gives that many landing leads over that history, with `school_rates`: spend priced so
that the ROAS is a school's, not the test world's.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from resources.amocrm import LOST_STATUS_ID, WON_STATUS_ID
from resources.facebook import RESTATEMENT_WINDOW
from sandbox import names

START = datetime(2026, 9, 1, tzinfo=UTC)
HISTORY_DAYS = 30
NOW = START + timedelta(days=HISTORY_DAYS)  # where every world ends, however long its history
REPORTING_TZ = ZoneInfo("Asia/Almaty")
WON, LOST = WON_STATUS_ID, LOST_STATUS_ID
EXPRESS_PIPELINE, FLAGSHIP_PIPELINE = 7_001_001, 7_001_002
PIPELINE_STAGES = {  # the open stages a deal walks through before won/lost
    EXPRESS_PIPELINE: (61_001, 61_002, 61_003),
    FLAGSHIP_PIPELINE: (62_001, 62_002, 62_003, 62_004),
}
PRICES = {"express": Decimal("49990.00"), "flagship": Decimal("249990.00")}
TRIPWIRE_PRICE = Decimal("990.00")
CURRENCY = "KZT"
CENT = Decimal("0.01")
FX_RATES = {"USD": Decimal("480.00")}  # KZT per unit, for the dashboard's reporting currency
FUNNELS = ("express", "flagship", "tripwire", "prooftest")

# Hourly lead intake shape over the reporting day (index = local hour): quiet nights, busy evenings.
HOUR_WEIGHTS = [0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 1.0, 1.2, 1.3, 1.3,
                1.2, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0, 2.0, 1.6, 1.0, 0.5]  # fmt: skip


@dataclass(frozen=True)
class Rates:
    """Probabilities of the imperfections the production report showed."""

    landing_leads_per_hour: float = 12.0
    flagship_share: float = 0.3
    no_utm_share: float = 0.1
    sync_never: float = 0.05
    sync_late: float = 0.10  # synced hours later instead of within minutes
    drop_per_stage: float = 0.15
    won_at_last_stage: float = 0.35
    webhook_duplicate: float = 0.15
    webhook_no_utm: float = 0.12
    flagship_wrong_pipeline: float = 0.9  # the report: 1 of 10 flagship webhooks on the right one
    express_wrong_pipeline: float = 0.02
    landing_hard_delete: float = 0.005
    amocrm_delete: float = 0.01
    prooftest_per_hour: float = 0.8
    tripwire_users_per_hour: float = 3.0
    tripwire_buy: float = 0.3
    tripwire_refund: float = 0.05
    hostile_name: float = 0.03
    # impressions per ad-hour × this (× 1.0 is exact: the default world's clicks are unchanged)
    reach: float = 1.0
    # what 1000 impressions cost, in each account currency (the test world's: a ROAS near 100)
    cpm: tuple[tuple[str, Decimal], ...] = (("USD", Decimal("4.20")), ("KZT", Decimal("2016")))


# A school's return on ad spend, about what a course seller's funnel earns (the test world's
# default prices make it near 100 at scale 1, which no dashboard user would believe), and the
# impressions behind a lead (1.5 % of them click: a lead from about one click in eighteen).
SCHOOL_ROAS = 3.0
IMPRESSIONS_PER_LEAD = 1200
HOURLY_WEIGHT_MEAN = sum(HOUR_WEIGHTS) / len(HOUR_WEIGHTS)


def school_scale(leads: int, days: int) -> float:
    """The scale at which a world of `days` history has about `leads` landing leads."""
    return leads / (Rates.landing_leads_per_hour * HOURLY_WEIGHT_MEAN * 24 * days)


def school_rates(scale: float) -> Rates:
    """Rates under which each landing lead had `IMPRESSIONS_PER_LEAD` impressions and the ROAS
    is near `SCHOOL_ROAS`, at any scale: impressions per ad are spread over the ads there are
    (`names.campaigns`: at least two per campaign), and their price follows from the revenue a
    lead brings. The random stream differs from the default rates' only in the clicks drawn."""
    ads = len(names.CAMPAIGN_PATTERNS) * max(2, round(4 * scale))
    # impressions per ad-hour are uniform(40, 160) × weight × scale × reach: 100 on average
    reach = IMPRESSIONS_PER_LEAD * Rates.landing_leads_per_hour / (100 * ads)
    # revenue per landing lead of the default funnel (won share × price), measured on
    # World.school(30_000, 60): 22,686 KZT
    revenue_per_lead = Decimal("22700")
    cpm_kzt = (revenue_per_lead / Decimal(SCHOOL_ROAS) * 1000 / IMPRESSIONS_PER_LEAD).quantize(CENT)
    cpm_usd = (cpm_kzt / FX_RATES["USD"]).quantize(CENT)
    return Rates(reach=reach, cpm=(("USD", cpm_usd), ("KZT", cpm_kzt)))


@dataclass
class Table:
    """One source table: its live rows, and what changed since the last sync to a simulator."""

    key: str = "id"
    rows: dict[Any, dict[str, Any]] = field(default_factory=dict)
    dirty: set[Any] = field(default_factory=set)
    deleted: set[Any] = field(default_factory=set)

    def put(self, row: dict[str, Any]) -> dict[str, Any]:
        self.rows[row[self.key]] = row
        self.dirty.add(row[self.key])
        self.deleted.discard(row[self.key])
        return row

    def delete(self, key: Any) -> None:
        if self.rows.pop(key, None) is not None:
            self.deleted.add(key)
            self.dirty.discard(key)


def report_day(ts: datetime) -> date:
    return ts.astimezone(REPORTING_TZ).date()


class Leads(dict[int, dict[str, Any]]):
    """AmoCRM's leads by id. `version` changes with any change, a lead's own fields included, so
    the simulator re-sorts its index only when the leads changed, not on every page."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def __setitem__(self, key: int, row: dict[str, Any]) -> None:
        super().__setitem__(key, _LeadRow(self, row))
        self.version += 1

    def __delitem__(self, key: int) -> None:
        super().__delitem__(key)
        self.version += 1


class _LeadRow(dict[str, Any]):
    __slots__ = ("_leads",)

    def __init__(self, leads: Leads, row: dict[str, Any]) -> None:
        super().__init__(row)
        self._leads = leads

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._leads.version += 1

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._leads.version += 1


class World:
    def __init__(
        self,
        seed: int = 42,
        scale: float = 1.0,
        rates: Rates | None = None,
        history_days: int = HISTORY_DAYS,
    ) -> None:
        self.seed = seed
        self.scale = scale
        self.rates = rates or Rates()
        self._cpm = dict(self.rates.cpm)
        self.rng = random.Random(seed)
        self.start = NOW - timedelta(days=history_days)
        self.now = self.start
        self._queue: list[tuple[datetime, int, Callable[[], object]]] = []
        self._seq = itertools.count()
        self._ids: dict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self.supabase: dict[str, dict[str, Table]] = {
            "main": {
                t: Table()
                for t in (
                    "landing_leads",
                    "prooftest_leads",
                    "express_course_sales",
                    "flagship_course_sales",
                )
            },
            "tripwire": {"tripwire_users": Table(), "tripwire_purchases": Table()},
            "traffic": {
                "all_sales_tracking": Table(),
                "targetologists": Table(),
                "targetologist_utm_rules": Table(),
            },
        }
        self.amocrm_leads = Leads()
        self.amocrm_deleted: dict[int, datetime] = {}
        self.amocrm_events: list[dict[str, Any]] = []
        self.campaigns = names.campaigns(self.rng, scale)
        self._seed_targetologists()
        self._seed_facebook()
        self.advance(history_days * 24)

    @classmethod
    def school(cls, leads: int, days: int, seed: int = 42) -> World:
        """About `leads` landing leads over `days` of history, spend priced as a school's."""
        scale = school_scale(leads, days)
        return cls(seed, scale, school_rates(scale), history_days=days)

    # ---- time -------------------------------------------------------------------------------

    def advance(self, hours: int) -> World:
        """Move time forward hour by hour, producing every source's changes on the way."""
        for _ in range(hours):
            hour_end = self.now + timedelta(hours=1)
            self._simulate_hour(self.now)
            self._run_scheduled(until=hour_end)
            self.now = hour_end
        return self

    def _at(self, when: datetime, action: Callable[[], object]) -> None:
        heapq.heappush(self._queue, (when, next(self._seq), action))

    def _run_scheduled(self, until: datetime) -> None:
        while self._queue and self._queue[0][0] < until:
            _, _, action = heapq.heappop(self._queue)
            action()

    def _moment(self, hour: datetime) -> datetime:
        return hour + timedelta(seconds=self.rng.randrange(3600))

    def _poisson(self, mean: float) -> int:
        # Knuth's method: the means here are small, and it keeps the one random stream.
        limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    def _next_id(self, name: str, base: int = 0) -> int:
        return base + next(self._ids[name])

    # ---- one hour of business -----------------------------------------------------------------

    def _simulate_hour(self, hour: datetime) -> None:
        weight = HOUR_WEIGHTS[hour.astimezone(REPORTING_TZ).hour]
        self._spend_hour(hour, weight)
        if hour.hour == 0:
            self._restate(hour)
        for _ in range(self._poisson(self.rates.landing_leads_per_hour * self.scale * weight)):
            self._new_landing_lead(self._moment(hour))
        for _ in range(self._poisson(self.rates.prooftest_per_hour * self.scale * weight)):
            self._new_prooftest_lead(self._moment(hour))
        for _ in range(self._poisson(self.rates.tripwire_users_per_hour * self.scale * weight)):
            self._new_tripwire_user(self._moment(hour))

    def _utm(self) -> dict[str, str | None]:
        if self.rng.random() < self.rates.no_utm_share:
            return dict.fromkeys(names.UTM_FIELDS)
        campaign = self.rng.choice(self.campaigns)
        return {
            "utm_source": campaign.source,
            "utm_medium": "cpc",
            "utm_campaign": campaign.name,
            "utm_content": str(self.rng.choice(campaign.ad_ids)),
            "utm_term": None,
        }

    def _person(self) -> dict[str, str]:
        return names.person(self.rng, hostile=self.rng.random() < self.rates.hostile_name)

    def _new_landing_lead(self, ts: datetime) -> None:
        r = self.rates
        funnel = "flagship" if self.rng.random() < r.flagship_share else "express"
        lead: dict[str, Any] = {
            "id": self._next_id("landing_leads"),
            "created_at": ts,
            "updated_at": ts,
            **self._person(),
            "funnel": funnel,
            **self._utm(),
            "amocrm_lead_id": None,
            "synced_to_amocrm": False,
            "synced_at": None,
        }
        self.supabase["main"]["landing_leads"].put(lead)
        self._pixel_lead(lead, ts)
        roll = self.rng.random()
        if roll >= r.sync_never:
            delay = self.rng.randrange(3, 72) * 3600 if roll < r.sync_never + r.sync_late else 0
            when = ts + timedelta(seconds=delay + self.rng.randrange(20, 600))
            self._at(when, partial(self._sync_to_amocrm, lead["id"], when))
        if self.rng.random() < r.landing_hard_delete:
            when = ts + timedelta(hours=self.rng.randrange(1, 96))
            self._at(when, partial(self._delete_spam, lead["id"]))

    def _delete_spam(self, landing_id: int) -> None:
        """Spam clean-up in the landing project: only leads that never reached AmoCRM go."""
        table = self.supabase["main"]["landing_leads"]
        lead = table.rows.get(landing_id)
        if lead is not None and not lead["synced_to_amocrm"]:
            table.delete(landing_id)

    def _new_prooftest_lead(self, ts: datetime) -> None:
        lead = {
            "id": self._next_id("prooftest_leads"),
            "created_at": ts,
            "updated_at": ts,
            **self._person(),
            **self._utm(),
        }
        self.supabase["main"]["prooftest_leads"].put(lead)

    def _new_tripwire_user(self, ts: datetime) -> None:
        user = {
            "id": self._next_id("tripwire_users"),
            "created_at": ts,
            "updated_at": ts,
            **self._person(),
            **self._utm(),
        }
        self.supabase["tripwire"]["tripwire_users"].put(user)
        if self.rng.random() < self.rates.tripwire_buy:
            when = ts + timedelta(minutes=self.rng.randrange(5, 3000))
            self._at(when, partial(self._tripwire_purchase, user, when))

    def _tripwire_purchase(self, user: dict[str, Any], ts: datetime) -> None:
        purchase = {
            "id": self._next_id("tripwire_purchases"),
            "user_id": user["id"],
            "amount": TRIPWIRE_PRICE,
            "currency": CURRENCY,
            "status": "paid",
            "created_at": ts,
            "updated_at": ts,
        }
        table = self.supabase["tripwire"]["tripwire_purchases"]
        table.put(purchase)
        self._track_sale("tripwire", None, purchase["amount"], ts, user)
        if self.rng.random() < self.rates.tripwire_refund:
            when = ts + timedelta(hours=self.rng.randrange(1, 72))
            refunded = {**purchase, "status": "refunded", "updated_at": when}
            self._at(when, partial(table.put, refunded))

    # ---- AmoCRM -------------------------------------------------------------------------------

    def _sync_to_amocrm(self, landing_id: int, ts: datetime) -> None:
        table = self.supabase["main"]["landing_leads"]
        landing = table.rows.get(landing_id)
        if landing is None:  # deleted before it synced
            return
        pipeline = EXPRESS_PIPELINE if landing["funnel"] == "express" else FLAGSHIP_PIPELINE
        amo_id = self._next_id("amocrm_leads", base=30_000_000)
        utm = {k: landing[k] for k in names.UTM_FIELDS}
        self.amocrm_leads[amo_id] = {
            "id": amo_id,
            "name": f"Заявка с лендинга #{landing_id}",
            "price": int(PRICES[landing["funnel"]]),
            "pipeline_id": pipeline,
            "status_id": PIPELINE_STAGES[pipeline][0],
            "created_at": ts,
            "updated_at": ts,
            "closed_at": None,
            "is_deleted": False,
            "utm": utm,
            "landing_lead_id": landing_id,
        }
        table.put(
            {**landing, "amocrm_lead_id": amo_id, "synced_to_amocrm": True, "synced_at": ts}
            | {"updated_at": ts}
        )
        self._schedule_step(amo_id, ts)
        if self.rng.random() < self.rates.amocrm_delete:
            when = ts + timedelta(hours=self.rng.randrange(2, 200))
            self._at(when, partial(self._delete_deal, amo_id, when))

    def _schedule_step(self, amo_id: int, after: datetime) -> None:
        when = after + timedelta(minutes=self.rng.randrange(30, 36 * 60))
        self._at(when, partial(self._advance_deal, amo_id, when))

    def _event(self, kind: str, lead_id: int, ts: datetime, before: Any, after: Any) -> None:
        self.amocrm_events.append(
            {
                "id": f"ev{len(self.amocrm_events) + 1:09d}",
                "type": kind,
                "entity_id": lead_id,
                "created_at": ts,
                "value_before": before,
                "value_after": after,
            }
        )

    def _advance_deal(self, amo_id: int, ts: datetime) -> None:
        """One step of a deal: the next stage, an early loss, or at the last stage won/lost."""
        deal = self.amocrm_leads.get(amo_id)
        if deal is None or deal["status_id"] in (WON, LOST):
            return
        stages = PIPELINE_STAGES[deal["pipeline_id"]]
        current = stages.index(deal["status_id"])
        if current + 1 == len(stages):
            new_status = WON if self.rng.random() < self.rates.won_at_last_stage else LOST
        elif self.rng.random() < self.rates.drop_per_stage:
            new_status = LOST
        else:
            new_status = stages[current + 1]
        self._event("lead_status_changed", amo_id, ts, deal["status_id"], new_status)
        deal.update(status_id=new_status, updated_at=ts)
        if new_status not in (WON, LOST):
            self._schedule_step(amo_id, ts)
            return
        deal["closed_at"] = ts
        if new_status == WON:
            self._won(deal, ts)

    def _delete_deal(self, amo_id: int, ts: datetime) -> None:
        deal = self.amocrm_leads.get(amo_id)
        if deal is None or deal["status_id"] == WON:  # managers delete junk deals, not sales
            return
        del self.amocrm_leads[amo_id]
        self.amocrm_deleted[amo_id] = ts
        self._event("lead_deleted", amo_id, ts, None, None)

    def _won(self, deal: dict[str, Any], ts: datetime) -> None:
        funnel = "express" if deal["pipeline_id"] == EXPRESS_PIPELINE else "flagship"
        r = self.rates
        wrong = r.flagship_wrong_pipeline if funnel == "flagship" else r.express_wrong_pipeline
        webhook_pipeline = deal["pipeline_id"]
        if self.rng.random() < wrong:
            webhook_pipeline = names.OTHER_PIPELINES[self.rng.randrange(len(names.OTHER_PIPELINES))]
        utm = deal["utm"] if self.rng.random() >= r.webhook_no_utm else dict.fromkeys(deal["utm"])
        copies = 2 if self.rng.random() < r.webhook_duplicate else 1
        table = self.supabase["main"][f"{funnel}_course_sales"]
        for copy in range(copies):
            created = ts + timedelta(seconds=self.rng.randrange(1, 30) + copy * 40)
            row_id = self._next_id(f"{funnel}_course_sales")
            table.put(
                {
                    "id": row_id,
                    "amocrm_lead_id": deal["id"],
                    "pipeline_id": webhook_pipeline,
                    "status_id": WON,
                    "amount": PRICES[funnel],
                    "currency": CURRENCY,
                    **utm,
                    "created_at": created,
                    "payload": {
                        "leads": {"status": [{"id": str(deal["id"]), "status_id": str(WON)}]}
                    },
                }
            )
        self._track_sale(funnel, deal["id"], PRICES[funnel], ts, deal["utm"])

    # ---- Traffic ------------------------------------------------------------------------------

    def _seed_targetologists(self) -> None:
        people = self.supabase["traffic"]["targetologists"]
        rules = self.supabase["traffic"]["targetologist_utm_rules"]
        for t in names.TARGETOLOGISTS:
            people.put({**t, "active": True, "created_at": self.start, "updated_at": self.start})
        for rule in names.UTM_RULES:
            rules.put({**rule, "created_at": self.start, "updated_at": self.start})

    def _track_sale(
        self, product: str, amo_id: int | None, amount: Decimal, ts: datetime, utm: dict[str, Any]
    ) -> None:
        utm = {k: utm.get(k) for k in names.UTM_FIELDS}
        self.supabase["traffic"]["all_sales_tracking"].put(
            {
                "id": self._next_id("all_sales_tracking"),
                "product": product,
                "amocrm_lead_id": amo_id,
                "amount": amount,
                "currency": CURRENCY,
                **utm,
                "targetologist": names.attribute(utm),
                "sold_at": ts,
                "created_at": ts + timedelta(seconds=5),
                "updated_at": ts + timedelta(seconds=5),
            }
        )

    # ---- Facebook ----------------------------------------------------------------------------

    def _seed_facebook(self) -> None:
        self.fb_accounts: dict[str, dict[str, Any]] = {}
        for account_id, currency, tz in names.AD_ACCOUNTS:
            self.fb_accounts[account_id] = {
                "id": account_id,
                "account_id": account_id.removeprefix("act_"),
                "name": f"Online school {account_id}",
                "currency": currency,
                "timezone_name": tz,
                "account_status": 1,
            }
        self.fb_campaigns: dict[str, dict[str, Any]] = {}
        self.fb_adsets: dict[str, dict[str, Any]] = {}
        self.fb_ads: dict[str, dict[str, Any]] = {}
        for c in self.campaigns:
            base = {"status": "ACTIVE", "effective_status": "ACTIVE", "updated_time": self.start}
            campaign_id, adset_id = str(c.campaign_id), str(c.campaign_id * 10 + 1)
            self.fb_campaigns[campaign_id] = {
                "id": campaign_id,
                "name": c.name,
                "account_id": c.account_id,
                **base,
            }
            self.fb_adsets[adset_id] = {
                "id": adset_id,
                "name": f"{c.name} / broad",
                "campaign_id": campaign_id,
                "account_id": c.account_id,
                **base,
            }
            for number, ad in enumerate(c.ad_ids, start=1):
                self.fb_ads[str(ad)] = {
                    "id": str(ad),
                    "name": f"{c.name} / ad {number}",
                    "adset_id": adset_id,
                    "campaign_id": campaign_id,
                    "account_id": c.account_id,
                    **base,
                }
        self._ad_zone = {
            ad_id: ZoneInfo(self.fb_accounts[ad["account_id"]]["timezone_name"])
            for ad_id, ad in self.fb_ads.items()
        }
        self.fb_insights: dict[tuple[str, date], dict[str, Any]] = {}
        # fb_insights' keys in the order they were made, and where the restatement's window may
        # begin in it: a day's restatement reads the last weeks, not two years of rows
        self._insight_keys: list[tuple[str, date]] = []
        self._restate_from = 0
        self.fb_restatements: list[dict[str, Any]] = []
        # the report's case: a long-lived user token 54 days from expiry at the world's start
        self.fb_token: dict[str, Any] = {
            "app_id": "1234567890",
            "type": "USER",
            "application": "Traffic Dashboard",
            "is_valid": True,
            "expires_at": START + timedelta(days=HISTORY_DAYS + 54),
            "data_access_expires_at": START + timedelta(days=HISTORY_DAYS + 80),
            "scopes": ["ads_read", "ads_management", "business_management", "read_insights"],
            "user_id": "10150000000000001",
        }

    def _insight(self, ad_id: str, ts: datetime) -> dict[str, Any]:
        key = (ad_id, ts.astimezone(self._ad_zone[ad_id]).date())
        row = self.fb_insights.get(key)
        if row is None:
            row = {"spend": Decimal("0.00"), "impressions": 0, "clicks": 0, "leads": 0}
            self.fb_insights[key] = row
            self._insight_keys.append(key)
        return row

    def _spend_hour(self, hour: datetime, weight: float) -> None:
        for ad_id, ad in self.fb_ads.items():
            cpm = self._cpm[self.fb_accounts[ad["account_id"]]["currency"]]
            impressions = int(self.rng.uniform(40, 160) * weight * self.scale * self.rates.reach)
            clicks = sum(1 for _ in range(impressions // 20) if self.rng.random() < 0.3)
            row = self._insight(ad_id, hour)
            row["impressions"] += impressions
            row["clicks"] += clicks
            row["spend"] += (cpm * impressions / 1000).quantize(CENT)

    def _pixel_lead(self, lead: dict[str, Any], ts: datetime) -> None:
        """The pixel reports most landing leads from an ad to Facebook, not all (ad blockers)."""
        ad_id = lead["utm_content"]
        if ad_id in self.fb_ads and self.rng.random() < 0.85:
            self._insight(ad_id, ts)["leads"] += 1

    def _restate(self, hour: datetime) -> None:
        """Once a day Facebook revises spend of past days within its 28-day attribution window.
        Rows are made as their day begins in the ad's zone (east of UTC), so the rows before the
        first of 30 days ago are all out of every window, and the rest are read in the order
        they were made, as fb_insights iterates, so the random stream is the same."""
        keys, oldest = self._insight_keys, hour.date() - timedelta(days=30)
        while self._restate_from < len(keys) and keys[self._restate_from][1] < oldest:
            self._restate_from += 1
        today_in = {zone: hour.astimezone(zone).date() for zone in set(self._ad_zone.values())}
        for ad_id, day in keys[self._restate_from :]:
            row = self.fb_insights.get((ad_id, day))
            today = today_in[self._ad_zone[ad_id]]
            if row is None:  # replaced by a bench's own insights
                continue
            if not (today - RESTATEMENT_WINDOW <= day < today) or self.rng.random() >= 0.05:
                continue
            before = row["spend"]
            row["spend"] = (before * Decimal(str(1 + self.rng.uniform(-0.03, 0.03)))).quantize(CENT)
            self.fb_restatements.append(
                {"ad_id": ad_id, "date": day, "spend_before": before,
                 "spend_after": row["spend"], "at": hour}
            )  # fmt: skip
