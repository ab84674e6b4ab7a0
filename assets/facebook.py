"""Raw Facebook Ads assets: accounts, campaigns, ad sets, ads, daily insights per ad, token health.

Insights windows per account, in the account's own time zone and by Facebook's clock (the `Date`
header): the first run backfills `backfill_days` with async jobs in chunks; the hourly run pulls
yesterday and today (sync); the daily restatement run re-pulls the last 28 days (async), because
Facebook revises spend inside its attribution window. Rows merge by (ad_id, date), so a restated
day replaces the old numbers and every re-run is safe; how much spend moved is written to
`ops.facebook_restatements` in the same transaction.
"""

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Literal
from zoneinfo import ZoneInfo

import dagster as dg
import orjson
from pydantic import BaseModel, ConfigDict

from assets.contract import raw_asset, raw_multi_asset, raw_spec, run_source_step
from assets.metadata import table_metadata
from assets.records import from_unix, parse
from resources.errors import SourceError
from resources.facebook import AccountThrottled, FacebookClient, FacebookResource
from resources.warehouse import LoadResult, Rejected, TableSpec, WarehouseResource

SOURCE = "facebook"
# One canonical lead count: the first of these present (Graph returns them overlapping).
LEAD_ACTION_TYPES = ("lead", "onsite_conversion.lead_grouped", "offsite_conversion.fb_pixel_lead")
MAX_HISTORY = timedelta(days=36 * 30)  # Graph refuses ranges older than 37 months (code 3018)
OBJECT_OVERLAP_SECONDS = 3600

INSIGHTS = TableSpec(
    "raw_facebook",
    "ad_insights_daily",
    ("ad_id", "date", "account_id", "ad_name", "adset_id", "campaign_id", "campaign_name",
     "spend", "impressions", "clicks", "leads", "actions", "account_currency",
     "account_timezone", "_raw"),
    key=("ad_id", "date"),
)  # fmt: skip
ACCOUNTS = TableSpec(
    "raw_facebook",
    "ad_accounts",
    ("id", "name", "currency", "timezone_name", "account_status", "_raw"),
)
OBJECTS = {
    kind: TableSpec("raw_facebook", kind, (*columns, "_raw"))
    for kind, columns in {
        "campaigns": ("id", "account_id", "name", "status", "effective_status", "updated_time"),
        "adsets": (
            "id",
            "account_id",
            "campaign_id",
            "name",
            "status",
            "effective_status",
            "updated_time",
        ),
        "ads": (
            "id",
            "account_id",
            "campaign_id",
            "adset_id",
            "name",
            "status",
            "effective_status",
            "updated_time",
        ),
    }.items()  # fmt: skip
}
TOKEN = TableSpec(
    "raw_facebook",
    "token_info",
    ("token_id", "app_id", "type", "application", "is_valid", "expires_at",
     "data_access_expires_at", "scopes", "user_id", "_raw"),
    key=("token_id",),
)  # fmt: skip


class GraphRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Action(GraphRecord):
    action_type: str
    value: Decimal = Decimal(0)


class InsightRow(GraphRecord):
    ad_id: str
    ad_name: str | None = None
    adset_id: str | None = None
    campaign_id: str | None = None
    campaign_name: str | None = None
    date_start: date
    # Graph omits a metric that is zero for the day: missing means 0, never a crash
    spend: Decimal = Decimal(0)
    impressions: int = 0
    clicks: int = 0
    actions: list[Action] = []
    account_currency: str | None = None

    @property
    def leads(self) -> int:
        by_type = {a.action_type: a.value for a in self.actions}
        return next((int(by_type[t]) for t in LEAD_ACTION_TYPES if t in by_type), 0)


class GraphObject(GraphRecord):
    id: str
    name: str | None = None
    status: str | None = None
    effective_status: str | None = None
    updated_time: datetime | None = None
    campaign_id: str | None = None
    adset_id: str | None = None


class AccountInfo(GraphRecord):
    id: str
    name: str | None = None
    currency: str
    timezone_name: str
    account_status: int | None = None


class TokenInfo(GraphRecord):
    app_id: str | None = None
    type: str | None = None
    application: str | None = None
    is_valid: bool
    expires_at: int | None = None
    data_access_expires_at: int | None = None
    scopes: list[str] = []
    user_id: str | None = None


def insight_rows(
    pages: Iterable[list[dict[str, Any]]], account: AccountInfo
) -> Iterator[tuple[Any, ...] | Rejected]:
    for page in pages:
        for record in page:
            row = parse(InsightRow, record, key="ad_id")
            if isinstance(row, Rejected):
                yield row
                continue
            yield (
                row.ad_id, row.date_start, account.id, row.ad_name, row.adset_id,
                row.campaign_id, row.campaign_name, row.spend, row.impressions, row.clicks,
                row.leads, orjson.dumps(record.get("actions")).decode()
                if record.get("actions") is not None else None,
                row.account_currency or account.currency, account.timezone_name,
                orjson.dumps(record).decode(),
            )  # fmt: skip


def _chunks(since: date, until: date, days: int) -> Iterator[tuple[date, date]]:
    start = since
    while start <= until:
        end = min(until, start + timedelta(days=days - 1))
        yield start, end
        start = end + timedelta(days=1)


Window = Literal["hourly", "restatement"]


def insights_window(
    client: FacebookClient,
    config: FacebookResource,
    account: AccountInfo,
    first: bool,
    window: Window,
) -> tuple[date, date, bool]:
    """(since, until, use async jobs) for one account, in its own time zone."""
    today = client.server_now().astimezone(ZoneInfo(account.timezone_name)).date()
    if first:
        since = today - timedelta(days=config.backfill_days - 1)
    elif window == "restatement":
        # Facebook may still change the 28 days before today; one more day back, because a
        # daily run comes up to a day after the last change of the window's oldest day
        since = today - timedelta(days=config.restatement_days + 1)
    else:
        return today - timedelta(days=1), today, False
    return max(since, today - MAX_HISTORY), today, True


def sync_account_insights(
    warehouse: WarehouseResource,
    client: FacebookClient,
    account: AccountInfo,
    window: Window,
) -> LoadResult:
    entity = f"insights:{account.id}"
    first = warehouse.get_cursor(SOURCE, entity) is None
    since, until, use_async = insights_window(client, client.config, account, first, window)

    def pages() -> Iterator[list[dict[str, Any]]]:
        if not use_async:
            yield from client.insights_sync(account.id, since, until)
            return
        for start, end in _chunks(since, until, client.config.chunk_days):
            yield from client.insights_async(account.id, start, end)

    return warehouse.load(
        INSIGHTS,
        insight_rows(pages(), account),
        source=SOURCE,
        entity=entity,
        new_cursor=lambda old: {"since": since.isoformat(), "until": until.isoformat()},
        before_merge="ops/facebook_restatements",
    )


def load_account(warehouse: WarehouseResource, client: FacebookClient, account: str) -> AccountInfo:
    """An account's settings (currency, time zone): every insights row needs them."""
    record = {**client.account_info(account), "id": account}
    info = AccountInfo.model_validate(record)
    row = (info.id, info.name, info.currency, info.timezone_name, info.account_status,
           orjson.dumps(record).decode())  # fmt: skip
    warehouse.load(ACCOUNTS, [row], source=SOURCE, entity="ad_accounts")
    return info


def per_account(
    accounts: list[str], step: Any, context: dg.AssetExecutionContext
) -> dict[str, Any]:
    """Run `step(account)` for each account; a throttled account is skipped, the others go on.

    A skipped account fails the asset at the end, after the other accounts' data is committed.
    Not as a transient error: a retry minutes later would meet the same breaker; the next
    scheduled run picks the account up once Facebook's estimated time has passed.
    """
    results, throttled = {}, []
    for account in accounts:
        try:
            results[account] = step(account)
        except AccountThrottled as exc:
            context.log.warning(f"{account}: circuit breaker open for {exc.seconds:.0f} s")
            throttled.append(exc)
    if throttled:
        names = ", ".join(f"{t.account} ({t.seconds / 60:.0f} min)" for t in throttled)
        raise SourceError(
            "Facebook",
            f"Facebook: rate limit reached for {names}; they load on a later run once Facebook's "
            "estimated time to regain access has passed. Other accounts loaded.",
        )
    return results


class InsightsConfig(dg.Config):
    window: Window = "hourly"


INSIGHT_SPECS = [
    raw_spec(
        SOURCE,
        "ad_insights_daily",
        (
            "Facebook insights per ad per day (spend, impressions, clicks, leads) in each "
            "account's currency and time zone. Hourly: yesterday and today; daily restatement: "
            "the last 28 days and one more; first run: a backfill. Rows merge by (ad_id, date): "
            "re-running is safe."
        ),
    ),
    raw_spec(
        SOURCE,
        "ad_accounts",
        "Facebook ad accounts: currency and time zone, read before their insights.",
    ),
]


@raw_multi_asset(SOURCE, "raw_facebook_insights", INSIGHT_SPECS)
def facebook_insights(
    context: dg.AssetExecutionContext, config: InsightsConfig
) -> Iterator[dg.MaterializeResult]:
    warehouse: WarehouseResource = context.resources.warehouse
    resource: FacebookResource = context.resources.facebook
    last_log = warehouse.fetch_all("SELECT coalesce(max(id), 0) FROM ops.facebook_restatements")

    def step() -> dict[str, Any]:
        accounts = resource.accounts()
        with resource.open() as client:
            results = per_account(
                accounts,
                lambda a: sync_account_insights(
                    warehouse, client, load_account(warehouse, client, a), config.window
                ),
                context,
            )
            return {
                "window": config.window,
                "rows_read": sum(r.rows_in for r in results.values()),
                "rows_inserted": sum(r.inserted for r in results.values()),
                "rows_updated": sum(r.updated for r in results.values()),
                "rows_quarantined": sum(r.quarantined for r in results.values()),
                "requests": client.stats.requests,
                "throttled_waits": client.stats.throttled_waits,
                "max_usage_pct": round(client.stats.max_usage_pct, 1),
                "split_requests": client.stats.split_requests,
                "failed_jobs_split": client.stats.failed_jobs,
                "windows": {a: r.cursor_after for a, r in results.items()},
            }

    counts = run_source_step(context, SOURCE, "ad_insights_daily", step)
    days, moved = warehouse.fetch_all(
        "SELECT count(DISTINCT (account_id, date)), coalesce(sum(spend_after - spend_before), 0)"
        " FROM ops.facebook_restatements WHERE id > %s",
        (last_log[0][0],),
    )[0]
    counts |= {"days_restated": days, "spend_moved": float(moved)}
    yield dg.MaterializeResult(
        asset_key=["raw_facebook", "ad_insights_daily"],
        metadata=table_metadata(
            warehouse, INSIGHTS.schema, INSIGHTS.name, order_by="date, ad_id", counts=counts
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["raw_facebook", "ad_accounts"],
        metadata=table_metadata(warehouse, ACCOUNTS.schema, ACCOUNTS.name),
    )


def _latest(seen: list[int], old: dict[str, Any] | None) -> dict[str, Any] | None:
    return {"updated_time": max(seen)} if seen else old


def object_rows(
    pages: Iterable[list[dict[str, Any]]], account: str, spec: TableSpec, seen: list[int]
) -> Iterator[tuple[Any, ...] | Rejected]:
    """Object rows; `seen` collects updated_time (unix) of each, for the next cursor."""
    for page in pages:
        for record in page:
            obj = parse(GraphObject, record)
            if isinstance(obj, Rejected):
                yield obj
                continue
            if obj.updated_time is not None:
                seen.append(int(obj.updated_time.timestamp()))
            values = {**obj.model_dump(), "account_id": account}
            yield (*(values[c] for c in spec.columns[:-1]), orjson.dumps(record).decode())


OBJECT_SPECS = [
    raw_spec(SOURCE, kind, f"Facebook {kind}, incremental by updated_time; merged by id.")
    for kind in OBJECTS
]


@raw_multi_asset(SOURCE, "raw_facebook_objects", OBJECT_SPECS)
def facebook_objects(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
    warehouse: WarehouseResource = context.resources.warehouse
    resource: FacebookResource = context.resources.facebook

    def sync(client: FacebookClient, account: str) -> dict[str, int]:
        loaded = {}
        for kind, spec in OBJECTS.items():
            entity = f"{kind}:{account}"
            cursor = warehouse.get_cursor(SOURCE, entity) or {}
            since = cursor.get("updated_time")
            pages = client.objects(account, kind, since - OBJECT_OVERLAP_SECONDS if since else None)
            seen: list[int] = []
            result = warehouse.load(
                spec, object_rows(pages, account, spec, seen), source=SOURCE, entity=entity,
                new_cursor=partial(_latest, seen),
            )  # fmt: skip
            loaded[kind] = result.rows_in
        return loaded

    def step() -> dict[str, Any]:
        accounts = resource.accounts()
        with resource.open() as client:
            return per_account(accounts, lambda a: sync(client, a), context)

    per = run_source_step(context, SOURCE, "objects", step)
    for kind, spec in OBJECTS.items():
        yield dg.MaterializeResult(
            asset_key=["raw_facebook", kind],
            metadata=table_metadata(
                warehouse,
                spec.schema,
                spec.name,
                counts={"rows_read": sum(p[kind] for p in per.values())},
            ),
        )


@raw_asset(
    SOURCE,
    "token_info",
    (
        "Health of FACEBOOK_ACCESS_TOKEN from debug_token: validity, expiry, scopes. The token "
        "itself is never stored, only a hash that says which token was checked."
    ),
)
def facebook_token_info(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    warehouse: WarehouseResource = context.resources.warehouse
    resource: FacebookResource = context.resources.facebook

    def step() -> dict[str, Any]:
        with resource.open() as client:
            data = client.debug_token()
            token_hash = client.token_fingerprint()
        info = TokenInfo.model_validate(data)
        row = (
            token_hash, info.app_id, info.type, info.application, info.is_valid,
            _from_unix(info.expires_at), _from_unix(info.data_access_expires_at),
            orjson.dumps(info.scopes).decode(), info.user_id, orjson.dumps(data).decode(),
        )  # fmt: skip
        warehouse.load(TOKEN, [row], source=SOURCE, entity="token_info", snapshot=True)
        return {"is_valid": info.is_valid, "scopes": ", ".join(info.scopes)}

    counts = run_source_step(context, SOURCE, "token_info", step)
    return dg.MaterializeResult(
        metadata=table_metadata(warehouse, TOKEN.schema, TOKEN.name, counts=counts)
    )


def _from_unix(seconds: int | None) -> datetime | None:
    # Graph's 0 means "never expires"
    return from_unix(seconds) if seconds else None


facebook_assets = [facebook_insights, facebook_objects, facebook_token_info]
