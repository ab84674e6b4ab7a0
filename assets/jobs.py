"""Jobs and the hourly schedule: one run per source, so a vendor outage fails only its own run."""

from __future__ import annotations

import dagster as dg

from assets.facebook import facebook_insights
from assets.models import MODEL_TABLES
from assets.sources import SOURCE_ASSETS, SOURCES
from resources.settings import DEFAULT_REPORTING_TZ

MODEL_GROUPS = ("core", "marts")


def source_job_name(source: str) -> str:
    return f"refresh_{source}"


# The `source` run tag is what dagster.yaml's run queue limits to one run at a time per source.
source_jobs = [
    dg.define_asset_job(
        source_job_name(source),
        selection=dg.AssetSelection.groups(source),
        tags={"source": source},
        description=f"Load every raw table of {source}.",
    )
    for source in SOURCES
]
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
            f"{schema}__{name}": {"config": {"full_rebuild": True}}
            for schema, name in (t.split(".") for t in MODEL_TABLES)
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
            tags={"source": source},
        )
        for source in SOURCES
    ]


# Facebook revises spend for up to 28 days (attribution): once a day, re-pull that window.
facebook_restatement_job = dg.define_asset_job(
    "facebook_restatement",
    selection=dg.AssetSelection.assets(facebook_insights),
    tags={"source": "facebook"},
    config={"ops": {"raw_facebook_insights": {"config": {"window": "restatement"}}}},
    description="Re-pull the last 28 days of Facebook insights; restated days replace old ones.",
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
    return dg.RunRequest(run_key=context.scheduled_execution_time.isoformat())


automation_sensor = dg.AutomationConditionSensorDefinition(
    "models_automation",
    target=dg.AssetSelection.groups(*MODEL_GROUPS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
