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
    sources_job,
)
from assets.models import model_assets
from assets.sources import SOURCE_ASSETS
from checks.diagnostics import Thresholds
from contract.model_params import model_params
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
# the checks on core and marts judged those tables' rows, which no run since has changed
NOTHING_CHANGED = (
    "not rebuilt: no raw row changed since their last build (their checks' last results stand)"
)
STEP_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}


def run_all(
    instance: dg.DagsterInstance, warehouse: WarehouseResource | None = None, models: bool = True
) -> dict[str, bool]:
    """Every source in one run, then the model rebuild; {each source's job name: its steps all
    succeeded, "rebuild_models": the same}. One line per source, one for the models."""
    declare_unset()  # a setting unset since definitions were loaded: still the step's one line
    result = execute(sources_job.name, instance)
    seconds = step_seconds(instance, result.run_id)
    failures = failure_messages(result)
    outcome = {}
    for source, steps in source_steps().items():
        spent = sum(seconds.get(step, 0.0) for step in steps)
        messages = [failures[step] for step in steps if step in failures]
        ok = not messages and any(step in seconds for step in steps)
        outcome[source_job_name(source)] = ok
        if ok:
            _line(source, True, spent, rows_summary(result, set(SOURCE_ASSETS[source])))
        else:
            _line(source, False, spent, failure_line(messages, source, warehouse))
    if models:
        outcome[models_job.name] = build_models(instance, warehouse)
    return outcome


def build_models(instance: dg.DagsterInstance, warehouse: WarehouseResource | None) -> bool:
    """The model rebuild's run, unless no model has anything to recompute: then no run (its
    steps, checks and events cost a second even when every build rewrites nothing) and the line
    says why. True when it succeeded or was not needed."""
    started = time.perf_counter()
    if not stale_models(warehouse or WarehouseResource.from_environment()):
        _line("core and marts", True, time.perf_counter() - started, NOTHING_CHANGED)
        return True
    built = execute(models_job.name, instance)
    spent = time.perf_counter() - started
    if built.success:
        _line("core and marts", True, spent, rows_summary(built))
    else:
        why = failure_line(list(failure_messages(built).values()), None, warehouse)
        _line("core and marts", False, spent, why)
    return built.success


def stale_models(warehouse: WarehouseResource) -> list[str]:
    """The models of the rebuild job a build would recompute something of; every one of them
    when a model's parameters cannot be read (its run then fails with the sentence why)."""
    tables = [".".join(key.path) for asset in model_assets for key in asset.keys]
    try:
        params = {table: model_params(warehouse, table) for table in tables}
    except dg.Failure:
        return tables
    return warehouse.stale_models(params)


def _line(what: str, ok: bool, seconds: float, said: str) -> None:
    print(f"  {what:<18} {'ok    ' if ok else 'FAILED'}  {seconds:5.1f} s  {said}", flush=True)


def execute(name: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """One job of the Definitions as a command starts it: its hand-started tags and config,
    its console log silenced."""
    return defs.resolve_job_def(name).execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={**QUIET, **job_run_config(name)},
        tags=job_run_tags(name),
    )


def source_steps() -> dict[str, list[str]]:
    """{source: the steps of the sources' run that are its}: its raw assets' and their checks'."""
    source_of = {key: source for source, keys in SOURCE_ASSETS.items() for key in keys}
    steps: dict[str, list[str]] = {source: [] for source in SOURCES}
    for definition in [*(defs.assets or ()), *(defs.asset_checks or ())]:
        if not isinstance(definition, dg.AssetsDefinition):
            continue
        keys = [*definition.keys, *(check.asset_key for check in definition.check_keys)]
        owners = {source_of[key] for key in keys if key in source_of}
        if owners:
            steps[owners.pop()].append(definition.node_def.name)
    return steps


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """{step: seconds from its start to its end} of a run's steps that started."""
    started: dict[str, float] = {}
    spent: dict[str, float] = {}
    for entry in instance.all_logs(run_id, of_type=STEP_EVENTS):
        step = entry.step_key or ""
        if entry.dagster_event_type == dg.DagsterEventType.STEP_START:
            started[step] = entry.timestamp
        elif step in started:
            spent[step] = entry.timestamp - started[step]
    return spent


def rows_summary(result: dg.ExecuteInProcessResult, keys: set[dg.AssetKey] | None = None) -> str:
    """A source's "4 tables, 1234 rows read (56 new, 7 updated)" (its `keys` of the run, else
    every asset's); "10 tables built"."""
    tables, read, new, updated = set(), 0, 0, 0
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if keys is not None and materialization.asset_key not in keys:
            continue
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
    failures: list[str], source: str | None, warehouse: WarehouseResource | None
) -> str:
    """Why a source (None: the models) failed, in one line: every missing setting of its source
    at once, else its steps' first failure's own sentence (the vendor's answer); how many other
    reasons there are, if any."""
    messages = list(dict.fromkeys(failures))
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
