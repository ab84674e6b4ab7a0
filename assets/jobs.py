"""Jobs and the hourly schedule: one run per source, so a vendor outage fails only its own run;
and every source in one run for a command (`make run`), where a source's failed step stops only
the steps built from it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.storage.tags import MAX_RUNTIME_SECONDS_TAG

from assets.facebook import INSIGHTS_PARTITIONS, INSIGHTS_START, facebook_insights
from assets.models import model_assets
from assets.sources import SOURCE_ASSETS, SOURCES
from resources.facebook import PROVISIONAL_DAYS, RESTATEMENT_WINDOW
from resources.settings import DEFAULT_REPORTING_TZ

MODEL_GROUPS = ("core", "marts")


def source_job_name(source: str) -> str:
    return f"refresh_{source}"


def _insights_window(window: str) -> dict:
    return {"ops": {"raw_facebook_insights": {"config": {"window": window}}}}


# Facebook insights are partitioned by day: a run names its days with these two tags (a range
# is one run, BackfillPolicy.single_run()).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def partition_range_tags(since: date, until: date) -> dict[str, str]:
    """Run tags for the insights partitions [since, until], clamped to the partitions' start."""
    since = max(since, date.fromisoformat(INSIGHTS_START))
    return {RANGE_START: since.isoformat(), RANGE_END: max(since, until).isoformat()}


def recent_partitions(days: int, now: datetime | None = None) -> dict[str, str]:
    """Tags for the last `days` insights partitions up to today in the partitions' zone."""
    zone = ZoneInfo(INSIGHTS_PARTITIONS.timezone or DEFAULT_REPORTING_TZ)
    today = (now or datetime.now(zone)).astimezone(zone).date()
    return partition_range_tags(today - timedelta(days=days - 1), today)


# Run monitoring (instance/dagster.yaml) fails a source run still going after this, so a run
# whose process died frees its source's slot in the run queue. An hourly load takes minutes (a
# throttled Facebook account's waits are bounded, resources/facebook.py); 45 min frees the slot
# before the next tick but one. Backfills and restatements, longer by nature, keep the instance's
# 6 h.
HOURLY_MAX_RUNTIME = timedelta(minutes=45)
HOURLY_RUNTIME_TAGS = {MAX_RUNTIME_SECONDS_TAG: str(int(HOURLY_MAX_RUNTIME.total_seconds()))}


def source_run_tags(source: str) -> dict[str, str]:
    """Every hourly run of a source: its `source` (the run queue's limit) and its max runtime."""
    return {"source": source, **HOURLY_RUNTIME_TAGS}


# an hourly Facebook load's insights partitions: yesterday and today
HOURLY_PARTITIONS = 2


def hourly_run_tags(source: str, now: datetime | None = None) -> dict[str, str]:
    """The tags of a source's hourly run: `source_run_tags` and, for Facebook, the partitions
    it materializes (yesterday and today)."""
    tags = source_run_tags(source)
    if source == "facebook":
        tags |= recent_partitions(HOURLY_PARTITIONS, now)
    return tags


# The `source` run tag is what the run queue (instance/dagster.yaml, concurrency:) limits to one
# run at a time per source.
# Facebook's job defaults to the hourly window (yesterday and today by Facebook's clock); a
# backfill of chosen days goes through the insights asset's partition picker instead.
source_jobs = [
    dg.define_asset_job(
        source_job_name(source),
        selection=dg.AssetSelection.groups(source),
        tags=source_run_tags(source),
        config=_insights_window("hourly") if source == "facebook" else None,
        description=f"Load every raw table of {source}.",
    )
    for source in SOURCES
]
# `make run`'s load: one run pays Dagster's per-run cost once. The sources' assets share no
# dependency, so a failed step of one source leaves the others' steps running.
sources_job = dg.define_asset_job(
    "refresh_sources",
    selection=dg.AssetSelection.groups(*SOURCES),
    tags=HOURLY_RUNTIME_TAGS,
    config=_insights_window("hourly"),
    description="Load every raw table of every source in one run (`make run`).",
)
models_job = dg.define_asset_job(
    "rebuild_models",
    selection=dg.AssetSelection.groups(*MODEL_GROUPS),
    description="Rebuild core and marts for the days raw changes touched since the last build.",
)
full_rebuild_job = dg.define_asset_job(
    "full_rebuild_models",
    selection=dg.AssetSelection.groups(*MODEL_GROUPS),
    config={
        "ops": {
            "__".join(key.path): {"config": {"full_rebuild": True}}
            for asset in model_assets
            for key in asset.keys
        }
    },
    description="Recompute every day of core and marts (after a fix to a model's SQL).",
)


# Minute 5: sources settle their on-the-hour batch writes first. The zone is the reporting zone's
# default; hourly runs are the same in any whole-hour zone.
@dg.schedule(
    name="hourly_refresh",
    cron_schedule="5 * * * *",
    execution_timezone=DEFAULT_REPORTING_TZ,
    target=dg.AssetSelection.groups(*SOURCES),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: one run per source; core and marts follow through automation.",
)
def hourly_refresh(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    stamp = context.scheduled_execution_time.isoformat()
    return [
        dg.RunRequest(
            run_key=f"{source}:{stamp}",
            asset_selection=SOURCE_ASSETS[source],
            tags=hourly_run_tags(source, context.scheduled_execution_time),
            run_config=_insights_window("hourly") if source == "facebook" else {},
        )
        for source in SOURCES
    ]


# Facebook revises spend within its restatement window (attribution): once a day, re-pull the
# days it may still change and today (resources/facebook.py: the window, one more, and today).
RESTATEMENT_PARTITIONS = PROVISIONAL_DAYS + 1
facebook_restatement_job = dg.define_asset_job(
    "facebook_restatement",
    selection=dg.AssetSelection.assets(facebook_insights),
    tags={"source": "facebook"},
    config=_insights_window("restatement"),
    description=f"Re-pull the last {RESTATEMENT_WINDOW.days} days of Facebook insights; "
    "restated days replace old ones.",
)


# 04:30 in the reporting zone: after Facebook's overnight attribution updates, before work starts.
@dg.schedule(
    name="daily_facebook_restatement",
    cron_schedule="30 4 * * *",
    execution_timezone=DEFAULT_REPORTING_TZ,
    job=facebook_restatement_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_facebook_restatement(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=context.scheduled_execution_time.isoformat(),
        tags=recent_partitions(RESTATEMENT_PARTITIONS, context.scheduled_execution_time),
    )


# A backfill of chosen insights days (`make backfill SOURCE=facebook`, or the asset's partition
# picker in the UI): the window is the run's partition range, fetched as one run.
facebook_backfill_job = dg.define_asset_job(
    "backfill_facebook_insights",
    selection=dg.AssetSelection.assets(facebook_insights),
    tags={"source": "facebook"},
    description="Load exactly the chosen days of Facebook insights (async jobs), as one run.",
)


def job_run_tags(job_name: str) -> dict[str, str]:
    """The partitions a job's run covers when started by hand (`make run`, the tests): the same
    as its schedule's."""
    if job_name == facebook_restatement_job.name:
        return recent_partitions(RESTATEMENT_PARTITIONS)
    if job_name == source_job_name("facebook"):
        return hourly_run_tags("facebook")
    if job_name == sources_job.name:
        return recent_partitions(HOURLY_PARTITIONS)
    return {}


def job_run_config(job_name: str) -> dict:
    """The run config a job's run gets when started by hand. A partition-range run does not
    take a job's default config, so the Facebook jobs' window is passed explicitly."""
    if job_name == facebook_restatement_job.name:
        return _insights_window("restatement")
    if job_name in (source_job_name("facebook"), sources_job.name):
        return _insights_window("hourly")
    return {}


automation_sensor = dg.AutomationConditionSensorDefinition(
    "models_automation",
    target=dg.AssetSelection.groups(*MODEL_GROUPS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)


def failure_messages(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """{step: the failure's own sentence} of a run, without Dagster's exception class prefix."""
    messages = {}
    for event in result.all_events:
        data = event.step_failure_data if event.is_step_failure else None
        if data is None:
            continue
        if data.user_failure_data and data.user_failure_data.description:
            messages[event.step_key or ""] = data.user_failure_data.description
        elif data.error:
            messages[event.step_key or ""] = data.error.message.strip()
    return messages
