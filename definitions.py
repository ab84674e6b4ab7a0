"""The Dagster definitions: assets, checks, jobs, schedule, sensors, and the one place where
environment variables are bound to resources. Nothing here touches a network or a database.
The only module that imports every layer (clients → raw assets → core → marts → checks); the
command line (commands/) sits above it, and nothing below imports it."""

from typing import Any

import dagster as dg

from assets.contract import FAILURE_LISTENERS
from assets.jobs import (
    automation_sensor,
    daily_facebook_restatement,
    facebook_backfill_job,
    facebook_restatement_job,
    full_rebuild_job,
    hourly_refresh,
    models_job,
    source_jobs,
    sources_job,
)
from assets.models import model_assets
from assets.sources import raw_assets, source_freshness
from checks.alerts import integration_alerts
from checks.asset_checks import diagnostic_checks, report_vendor_checks
from checks.integration_health import integration_health
from resources.amocrm import AmoCrmResource
from resources.canonical import PROJECTS
from resources.facebook import FacebookResource
from resources.settings import at_launch, declare_unset
from resources.supabase import env_prefix, supabase_resource
from resources.telegram import TelegramResource
from resources.warehouse import WarehouseResource

# a source's failed step: its credential and vendor checks say why
if report_vendor_checks not in FAILURE_LISTENERS:
    FAILURE_LISTENERS.append(report_vendor_checks)
# every resource by key, its settings bound to their variables; Any: the commands and checks
# pick theirs by key
resources: dict[str, Any] = {
    "warehouse": WarehouseResource(**WarehouseResource.bound()),
    "amocrm": AmoCrmResource(**AmoCrmResource.bound()),
    "facebook": FacebookResource(**FacebookResource.bound()),
    "telegram": TelegramResource(**TelegramResource.bound()),
    **{
        f"supabase_{project}": supabase_resource(display, env_prefix(project))
        for project, display in PROJECTS.items()
    },
}
declare_unset()

defs = dg.Definitions(
    assets=[*raw_assets, *model_assets, source_freshness, integration_health],
    asset_checks=diagnostic_checks,
    jobs=[
        *source_jobs,
        sources_job,
        models_job,
        full_rebuild_job,
        facebook_restatement_job,
        facebook_backfill_job,
    ],
    schedules=[hourly_refresh, daily_facebook_restatement],
    sensors=[automation_sensor, integration_alerts],
    # a run config (the launchpad's, a test's) sets the fields it names, the bindings the rest
    resources={key: at_launch(resource) for key, resource in resources.items()},
    executor=dg.in_process_executor,
)
