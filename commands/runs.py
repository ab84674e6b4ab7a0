"""Running the Definitions' jobs from a command and saying how each went, one line per source:
rows and seconds, or the sentence that says why it failed; then the dashboard tables. Dagster's
own event log, stack traces included, stays in its storage, where `make ui` shows it."""

import time
from typing import Any

import dagster as dg
from psycopg import sql
from tabulate import tabulate

from assets.jobs import (
    SOURCES,
    failure_messages,
    job_run_config,
    job_run_tags,
    models_job,
    source_job_name,
)
from checks.diagnostics import Thresholds
from definitions import defs, resources
from resources.settings import declare_unset, fx_rates, not_configured, reporting_tz
from resources.warehouse import WarehouseResource

# (table, how many of its latest rows to print)
DASHBOARD_TABLES = (
    ("marts.leads_total", 7),
    ("marts.leads_by_funnel", 8),
    ("marts.sales_total", 6),
    ("marts.targetologist_daily", 6),
    ("marts.source_freshness", 10),
)
# The run's full event log is in Dagster's storage (`make ui`); the terminal gets our own lines
# only: a failed step's sentence is printed once per source below, its stack trace stays there.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def run_all(
    instance: dg.DagsterInstance, warehouse: WarehouseResource | None = None, models: bool = True
) -> dict[str, bool]:
    """Each source job, then the model rebuild; {job name: succeeded}. One line each."""
    declare_unset()  # a setting unset since definitions were loaded: still the step's one line
    outcome = {}
    jobs = [(source_job_name(s), s) for s in SOURCES] + [(models_job.name, None)] * models
    for name, source in jobs:
        started = time.perf_counter()
        result = defs.resolve_job_def(name).execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={**QUIET, **job_run_config(name)},
            tags=job_run_tags(name),
        )
        outcome[name] = result.success
        seconds = time.perf_counter() - started
        what = source or "core and marts"
        if result.success:
            print(f"  {what:<18} ok      {seconds:5.1f} s  {rows_summary(result)}", flush=True)
        else:
            why = failure_line(result, source, warehouse)
            print(f"  {what:<18} FAILED  {seconds:5.1f} s  {why}", flush=True)
    return outcome


def run_quietly(name: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """One job of the Definitions, its console log silenced (`make rebuild`)."""
    return defs.resolve_job_def(name).execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET
    )


def rows_summary(result: dg.ExecuteInProcessResult) -> str:
    """A source run's "4 tables, 1234 rows read (56 new, 7 updated)"; "10 tables built"."""
    tables, read, new, updated = set(), 0, 0, 0
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        meta: dict[str, Any] = {k: v.value for k, v in materialization.metadata.items()}
        tables.add(materialization.asset_key)
        read += int(meta.get("rows_read") or 0)
        new += int(meta.get("rows_inserted") or 0)
        updated += int(meta.get("rows_updated") or 0)
    count = f"{len(tables)} table{'s' * (len(tables) != 1)}"
    if not read and not new and not updated:
        return f"{count} built"
    return f"{count}, {read} rows read ({new} new, {updated} updated)"


def failure_line(
    result: dg.ExecuteInProcessResult, source: str | None, warehouse: WarehouseResource | None
) -> str:
    """Why a run failed, in one line: every missing setting of its source at once, else the
    failure's own sentence (the vendor's answer); how many other reasons there are, if any."""
    messages = list(dict.fromkeys(failure_messages(result).values()))
    if source is not None and (missing := resources[source].missing(warehouse)):
        return not_configured(resources[source].source, missing)
    if not messages:
        return "the run failed before any step (see `make ui`)"
    first = " ".join(messages[0].split())
    more = len(messages) - 1
    return first + (f" (+{more} other reason{'s' * (more > 1)}: see `make ui`)" if more else "")


def dashboard(warehouse: WarehouseResource) -> str:
    """The marts the dashboard reads, latest days first."""
    parts = []
    for table, limit in DASHBOARD_TABLES:
        schema, name = table.split(".")
        rows = warehouse.fetch_all(
            sql.SQL("SELECT * FROM {} ORDER BY 1 DESC LIMIT %s").format(
                sql.Identifier(schema, name)
            ),
            (limit,),
        )
        columns = warehouse.fetch_all(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
            " AND table_name = %s ORDER BY ordinal_position",
            (schema, name),
        )
        shown = [[_cell(v) for v in row] for row in rows]
        headers = [c[0] for c in columns]
        parts.append(f"{table} (latest rows)\n" + tabulate(shown, headers, disable_numparse=True))
    return "\n\n".join(parts)


def _cell(value: object) -> object:
    text = str(value) if value is not None else ""
    return text if len(text) <= 60 else text[:59] + "…"


def check_common_settings() -> None:
    """The settings every model reads, checked before anything runs (ConfigError naming one)."""
    reporting_tz()
    fx_rates()
    Thresholds.from_env()
