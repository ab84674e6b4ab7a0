"""Raw Facebook Ads assets: accounts, campaigns, ad sets, ads, daily insights per ad, token health.

Insights windows per account, in the account's own time zone and by Facebook's clock (the `Date`
header): the first run backfills `backfill_days` with async jobs in chunks; the hourly run pulls
yesterday and today (sync); the daily restatement run re-pulls the last 28 days (async), because
Facebook revises spend inside its attribution window. Rows merge by (ad_id, date), so a restated
day replaces the old numbers and every re-run is safe; how much spend moved is written to
`ops.facebook_restatements` in the same transaction.
"""

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Literal
from zoneinfo import ZoneInfo

import dagster as dg
from pydantic import BaseModel, ConfigDict

from assets.contract import raw_asset, raw_multi_asset, raw_spec, run_source_step
from assets.metadata import table_metadata
from assets.progress import Progress
from contract.records import Money, from_unix, parse, unix_not_after
from resources import vendor_json
from resources.errors import SourceError
from resources.facebook import (
    MAX_HISTORY,
    PROVISIONAL_DAYS,
    RESTATEMENT_WINDOW,
    AccountThrottled,
    FacebookClient,
    FacebookResource,
)
from resources.settings import DEFAULT_REPORTING_TZ
from resources.warehouse import LoadResult, Rejected, TableSpec, WarehouseResource

SOURCE = "facebook"
# One canonical lead count: the first of these present (Graph returns them overlapping).
LEAD_ACTION_TYPES = ("lead", "onsite_conversion.lead_grouped", "offsite_conversion.fb_pixel_lead")
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
     "data_access_expires_at", "scopes", "user_id", "checked_at", "_raw"),
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
    spend: Money = Decimal(0)
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
                row.leads, vendor_json.dumps(record.get("actions"))
                if record.get("actions") is not None else None,
                row.account_currency or account.currency, account.timezone_name,
                vendor_json.dumps(record),
            )  # fmt: skip


def _chunks(since: date, until: date, days: int) -> Iterator[tuple[date, date]]:
    start = since
    while start <= until:
        end = min(until, start + timedelta(days=days - 1))
        yield start, end
        start = end + timedelta(days=1)


# A partition key D is calendar day D in each ad account's own time zone, for every account:
# that is the day Graph reports as `date_start` and the `date` raw_facebook.ad_insights_daily
# and core.ad_spend_daily store, so one partition is the same rows whatever an account's zone
# (the sandbox's act_103 lives in Europe/Moscow, the others in Asia/Almaty). The partitions'
# own calendar, which only decides which day is the newest partition, is the reporting zone's,
# with today included (end_offset=1). Graph keeps 37 months of insights: days older than that
# are clamped away per account at run time (code 3018 otherwise), so a backfill reaching
# further back loads what still exists.
INSIGHTS_START = "2024-01-01"
INSIGHTS_PARTITIONS = dg.DailyPartitionsDefinition(
    start_date=INSIGHTS_START, timezone=DEFAULT_REPORTING_TZ, end_offset=1
)
# Ranges of up to this many days are read with sync requests; longer ones with async jobs.
SYNC_MAX_DAYS = 2

# partitions: exactly the run's partition days (a backfill from the UI or the CLI);
# hourly / restatement: the schedules' windows, per account by Facebook's clock (the `Date`
# header) in the account's zone: yesterday and today; the last 28 days and one more.
Window = Literal["partitions", "hourly", "restatement"]


@dataclass(frozen=True)
class Plan:
    """One account's days for this run: [since, until], of which the days up to
    `resume_after` were already committed by an earlier attempt of the same run."""

    since: date
    until: date
    use_async: bool
    initial: bool
    resume_after: date | None = None
    adopted: tuple[date, date] | None = None  # a pre-partition cursor's days, reported once

    @property
    def days(self) -> int:
        start = self.resume_after + timedelta(days=1) if self.resume_after else self.since
        return max(0, (self.until - start).days + 1)

    def chunks(self, chunk_days: int) -> list[tuple[date, date]]:
        if self.days == 0:
            return []
        start = self.resume_after + timedelta(days=1) if self.resume_after else self.since
        if not self.use_async:
            return [(start, self.until)]
        return list(_chunks(start, self.until, chunk_days))


def plan_account(
    today: date,
    config: FacebookResource,
    window: Window,
    cursor: dict[str, Any] | None,
    run_days: tuple[date, date],
    run_id: str,
) -> Plan:
    """What to load for one account whose own calendar says `today`.

    An account never loaded (no cursor) gets its first `backfill_days` on the hourly run, as
    before partitions; one whose first backfill stopped half-way continues it. A cursor from
    before partitions ({"since", "until"}) counts as loaded: nothing is re-pulled, and its days
    are reported as materialized partitions once. A retry of the same run (Dagster's step retry,
    or a re-execution: same root run id) resumes after the last committed chunk.
    """
    initial = False
    if window == "partitions":
        since, until = run_days
    elif cursor is None or (cursor.get("initial") and not cursor.get("complete")):
        initial = True
        since = today - timedelta(days=config.backfill_days - 1)
        if cursor is not None and cursor.get("since"):
            since = date.fromisoformat(cursor["since"])
        until = today
    elif window == "restatement":
        # the days Facebook may still change (resources/facebook.py) and today; when the last
        # restatement is days old, those it could still change after it too (they have left
        # the window since)
        last = date.fromisoformat(cursor["restated"]) if cursor.get("restated") else today
        since = min(today, last + timedelta(days=1)) - timedelta(days=PROVISIONAL_DAYS)
        until = today
    else:
        since, until = today - timedelta(days=1), today
    since, until = max(since, today - MAX_HISTORY), min(until, today)
    resume_after = None
    unfinished = cursor and cursor.get("v") == 2 and not cursor.get("complete")
    if unfinished and cursor and cursor.get("done_through"):
        same_run = cursor.get("run") == run_id and cursor.get("window") == window
        same_days = cursor.get("since") == since.isoformat()
        if (same_run or initial) and same_days:
            resume_after = date.fromisoformat(cursor["done_through"])
    adopted = None
    if cursor and cursor.get("v") != 2 and cursor.get("since") and cursor.get("until"):
        adopted = (date.fromisoformat(cursor["since"]), date.fromisoformat(cursor["until"]))
    return Plan(since, until, (until - since).days + 1 > SYNC_MAX_DAYS, initial, resume_after,
                adopted)  # fmt: skip


@dataclass
class AccountLoad:
    results: list[LoadResult] = field(default_factory=list)
    days: set[date] = field(default_factory=set)  # days committed (or adopted) by this run
    cursor: Any = None


def sync_account_insights(
    warehouse: WarehouseResource,
    client: FacebookClient,
    account: AccountInfo,
    window: Window,
    run_days: tuple[date, date] | None = None,
    run_id: str = "",
    progress: Progress | None = None,
) -> AccountLoad:
    """Load one account's days, one commit per chunk (an async job's range, or the sync
    window): each chunk's rows and the account's cursor commit together, so an attempt that
    stops (throttled beyond the breaker's patience, a crash) keeps what it loaded and a retry
    resumes after it. A chunk is fetched whole before its load opens a transaction: the table's
    load lock is held only for COPY and merge, never while an account waits on Facebook."""
    entity = f"insights:{account.id}"
    cursor = warehouse.get_cursor(SOURCE, entity)
    today = client.server_now().astimezone(ZoneInfo(account.timezone_name)).date()
    days = run_days or (today, today)
    plan = plan_account(today, client.config, window, cursor, days, run_id)
    out = AccountLoad(cursor=cursor)
    if plan.adopted:
        out.days.update(_days(*plan.adopted))
    chunks = plan.chunks(client.config.chunk_days)
    if progress is not None:
        progress.expect(plan.days)
    for start, end in chunks:
        pages = (
            client.insights_async(account.id, start, end)
            if plan.use_async
            else client.insights_sync(account.id, start, end)
        )
        rows = list(insight_rows(pages, account))
        state = {
            "v": 2, "window": window, "since": plan.since.isoformat(),
            "until": plan.until.isoformat(), "run": run_id, "done_through": end.isoformat(),
            "complete": end == plan.until, "initial": plan.initial,
        }  # fmt: skip
        if end == plan.until and (window == "restatement" or plan.initial):
            state["restated"] = end.isoformat()  # every day Facebook may change is re-pulled
        result = warehouse.load(
            INSIGHTS,
            rows,
            source=SOURCE,
            entity=entity,
            new_cursor=partial(_replace_cursor, state),
            before_merge="ops/facebook_restatements",
        )
        out.results.append(result)
        out.cursor = result.cursor_after
        out.days.update(_days(start, end))
        if progress is not None:
            progress.advance((end - start).days + 1, result.rows_in)
    return out


def _replace_cursor(new: dict[str, Any], old: Any) -> dict[str, Any]:
    """This chunk's state; the last restatement's day carries over from the old cursor."""
    restated = (old or {}).get("restated")
    return {"restated": restated, **new} if restated else new


def _days(since: date, until: date) -> list[date]:
    return [since + timedelta(days=d) for d in range((until - since).days + 1)]


def load_account(warehouse: WarehouseResource, client: FacebookClient, account: str) -> AccountInfo:
    """An account's settings (currency, time zone): every insights row needs them."""
    record = {**client.account_info(account), "id": account}
    info = AccountInfo.model_validate(record)
    row = (info.id, info.name, info.currency, info.timezone_name, info.account_status,
           vendor_json.dumps(record))  # fmt: skip
    warehouse.load(ACCOUNTS, [row], source=SOURCE, entity="ad_accounts")
    return info


# Accounts load side by side: one waiting out its breaker must not hold up the others.
MAX_PARALLEL_ACCOUNTS = 8


def per_account(
    accounts: list[str], step: Any, warn: Callable[[str], None], parallel: int | None = None
) -> dict[str, Any]:
    """Run `step(account)` for every account at once, each in its own thread (each account has
    its own breaker and waits only for itself); a throttled account is skipped, the others go on.

    A skipped account fails the asset at the end, after the other accounts' data is committed.
    Not as a transient error: a retry minutes later would meet the same breaker; the next
    scheduled run (or a retry of this one, which resumes after the committed days) picks the
    account up once Facebook's estimated time has passed. Any other error fails the asset
    once every account has stopped, so no account is cut off mid-chunk.
    """
    results: dict[str, Any] = {}
    throttled: list[AccountThrottled] = []
    errors: list[Exception] = []
    workers = max(1, min(len(accounts), parallel or MAX_PARALLEL_ACCOUNTS))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facebook") as pool:
        futures = {pool.submit(step, account): account for account in accounts}
        for future in as_completed(futures):
            account = futures[future]
            try:
                results[account] = future.result()
            except AccountThrottled as exc:
                warn(f"{exc.label()}: skipped in this run")
                throttled.append(exc)
            except Exception as exc:  # re-raised below, after the other accounts finished
                errors.append(exc)
    if errors:
        raise errors[0]
    if throttled:
        names = ", ".join(t.label() for t in sorted(throttled, key=lambda t: t.account))
        raise SourceError(
            "Facebook",
            f"Facebook: rate limit reached for {names}; they load on a later run once Facebook "
            "lets them call again. Other accounts loaded.",
        )
    return {a: results[a] for a in accounts if a in results}


class InsightsConfig(dg.Config):
    # "partitions" for a backfill of the picked days; the schedules' jobs set the other two
    window: Window = "partitions"


INSIGHT_SPECS = [
    raw_spec(
        SOURCE,
        "ad_insights_daily",
        (
            "Facebook insights per ad per day (spend, impressions, clicks, leads) in each "
            "account's currency and time zone, partitioned by day (the account's own calendar "
            f"day). Hourly: yesterday and today; daily restatement: the last "
            f"{RESTATEMENT_WINDOW.days} days and one more; any range: a backfill from the "
            "partition picker, as one run. Rows merge by "
            "(ad_id, date): re-running is safe, and moved spend is recorded."
        ),
    ),
    raw_spec(
        SOURCE,
        "ad_accounts",
        "Facebook ad accounts: currency and time zone, read before their insights.",
    ),
]


def _run_days(context: dg.AssetExecutionContext) -> tuple[date, date]:
    keys = context.partition_key_range
    return date.fromisoformat(keys.start), date.fromisoformat(keys.end)


def _report_other_days(
    context: dg.AssetExecutionContext, days: set[date], run_days: tuple[date, date]
) -> int:
    """Days loaded outside the run's partitions (an account's first backfill, a window by
    Facebook's clock, a pre-partition cursor adopted) are reported as materializations of
    their partitions, so the partition picker shows what the table holds."""
    valid = set(INSIGHTS_PARTITIONS.get_partition_keys())
    others = sorted(
        key
        for key in (d.isoformat() for d in days if not run_days[0] <= d <= run_days[1])
        if key in valid
    )
    for key in others:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=INSIGHTS_KEY,
                partition=key,
                description="loaded outside the run's own partitions",
            )
        )
    return len(others)


INSIGHTS_KEY = dg.AssetKey(["raw_facebook", "ad_insights_daily"])


@raw_multi_asset(
    SOURCE,
    "raw_facebook_insights",
    INSIGHT_SPECS,
    partitions_def=INSIGHTS_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def facebook_insights(
    context: dg.AssetExecutionContext, config: InsightsConfig
) -> Iterator[dg.MaterializeResult]:
    warehouse: WarehouseResource = context.resources.warehouse
    resource: FacebookResource = context.resources.facebook
    last_log = warehouse.fetch_all("SELECT coalesce(max(id), 0) FROM ops.facebook_restatements")
    run_days = _run_days(context)
    run_id = context.run.root_run_id or context.run.run_id
    context.log.info(
        f"Facebook insights: window {config.window}, partitions {run_days[0]}..{run_days[1]}"
    )
    loaded: dict[str, AccountLoad] = {}

    def step() -> dict[str, Any]:
        accounts = resource.accounts()
        progress = Progress(context.log.info, "Facebook insights", 0, "account-days")
        with resource.open() as client, progress.running():

            def one(account: str) -> AccountLoad:
                info = load_account(warehouse, client, account)
                loaded[account] = sync_account_insights(
                    warehouse, client, info, config.window, run_days, run_id, progress
                )
                return loaded[account]

            results = per_account(accounts, one, context.log.warning)
            every = [r for load in results.values() for r in load.results]
            return {
                "window": config.window,
                "partitions": f"{run_days[0]}..{run_days[1]}",
                "rows_read": sum(r.rows_in for r in every),
                "rows_inserted": sum(r.inserted for r in every),
                "rows_updated": sum(r.updated for r in every),
                "rows_skipped_by_hash": sum(r.skipped for r in every),
                "rows_quarantined": sum(r.quarantined for r in every),
                "account_days": sum(len(load.days) for load in results.values()),
                "requests": client.stats.requests,
                "throttled_waits": client.stats.throttled_waits,
                "waited_seconds": round(client.stats.waited_seconds, 1),
                "max_usage_pct": round(client.stats.max_usage_pct, 1),
                "split_requests": client.stats.split_requests,
                "failed_jobs_split": client.stats.failed_jobs,
                "seconds": round(time.monotonic() - progress.started, 1),
                "windows": {a: load.cursor for a, load in results.items()},
            }

    try:
        counts = run_source_step(context, SOURCE, "ad_insights_daily", step)
    finally:
        # what the accounts that did load committed stays reported, even when another failed
        other_days = _report_other_days(
            context, {d for load in loaded.values() for d in load.days}, run_days
        )
    days, moved = warehouse.fetch_all(
        "SELECT count(DISTINCT (account_id, date)), coalesce(sum(spend_after - spend_before), 0)"
        " FROM ops.facebook_restatements WHERE id > %s",
        (last_log[0][0],),
    )[0]
    counts |= {"days_restated": days, "spend_moved": float(moved),
               "other_partitions_reported": other_days}  # fmt: skip
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


def _latest(
    seen: list[int], clock: Callable[[], datetime], old: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The newest updated_time seen, never past Facebook's clock."""
    return {"updated_time": unix_not_after(max(seen), clock())} if seen else old


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
            yield (*(values[c] for c in spec.columns[:-1]), vendor_json.dumps(record))


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
                new_cursor=partial(_latest, seen, client.server_now),
            )  # fmt: skip
            loaded[kind] = result.rows_in
        return loaded

    def step() -> dict[str, Any]:
        accounts = resource.accounts()
        with resource.open() as client:
            return per_account(accounts, lambda a: sync(client, a), context.log.warning)

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
            checked_at = client.server_now()
            token_hash = client.token_fingerprint()
        info = TokenInfo.model_validate(data)
        row = (
            token_hash, info.app_id, info.type, info.application, info.is_valid,
            _from_unix(info.expires_at), _from_unix(info.data_access_expires_at),
            vendor_json.dumps(info.scopes), info.user_id, checked_at, vendor_json.dumps(data),
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
