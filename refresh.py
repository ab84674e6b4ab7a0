"""One full refresh, as `make run` does it: every source in its own run, then core and marts.

The warehouse is WAREHOUSE_URL or else the embedded server; vendors are whatever the environment
and `.env` (or the file ENV_FILE names) configure. Prints one line per source (rows and seconds,
or the sentence that says why it failed), then the dashboard tables; Dagster's own event log,
stack traces included, stays in its storage, where `make ui` shows it. Exit codes: 0 every run
succeeded, 1 a source or the models failed (its branch stays stale; the marts are still rebuilt
from the last good rows), 2 a setting the whole refresh needs is malformed (one line naming it).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import sqlalchemy.exc
from psycopg import sql
from tabulate import tabulate

from resources import embedded_pg
from resources.dagster_instance import command_instance
from resources.settings import load_env_file
from resources.warehouse import WarehouseResource

ROOT = Path(__file__).resolve().parent
DAGSTER_HOME = ROOT / ".local" / "dagster_home"
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


def env_file() -> Path:
    """The settings file every command loads: ENV_FILE, else `.env` at the checkout's root."""
    return Path(os.environ.get("ENV_FILE") or ROOT / ".env")


def prepare_environment() -> None:
    """Load `.env`, resolve the database URLs, and point DAGSTER_HOME at our instance config."""
    load_env_file(env_file())
    os.environ.update(embedded_pg.resolve_urls())
    DAGSTER_HOME.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "instance" / "dagster.yaml", DAGSTER_HOME / "dagster.yaml")
    os.environ.setdefault("DAGSTER_HOME", str(DAGSTER_HOME))


def run_all(
    instance: dg.DagsterInstance, warehouse: WarehouseResource | None = None, models: bool = True
) -> dict[str, bool]:
    """Each source job, then the model rebuild; {job name: succeeded}. One line each."""
    from assets.jobs import SOURCES, job_run_config, job_run_tags, models_job, source_job_name
    from definitions import defs
    from resources.settings import declare_unset

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
    from checks.diagnostics import amocrm_token_stored
    from resources.settings import REQUIRED_SETTINGS, missing_sentence, missing_settings

    messages = list(dict.fromkeys(failure_messages(result).values()))
    if source in REQUIRED_SETTINGS:
        stored = source == "amocrm" and warehouse is not None and amocrm_token_stored(warehouse)
        missing = missing_settings(source, token_stored=stored)
        if missing:
            return missing_sentence(source, missing)
    if not messages:
        return "the run failed before any step (see `make ui`)"
    first = " ".join(messages[0].split())
    more = len(messages) - 1
    return first + (f" (+{more} other reason{'s' * (more > 1)}: see `make ui`)" if more else "")


def failure_messages(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """{step: the failure's own sentence}, without Dagster's exception class prefix."""
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


def full_rebuild() -> int:
    """`make rebuild`: recompute every day of core and marts, e.g. after a model's SQL changed."""
    from definitions import defs

    with embedded_pg.owned_server():
        prepare_environment()
        with command_instance() as instance:
            result = defs.resolve_job_def("full_rebuild_models").execute_in_process(
                instance=instance, raise_on_error=False, run_config=QUIET
            )
        for step, message in failure_messages(result).items():
            print(f"{step}: {message}")
    print("full rebuild", "done" if result.success else "FAILED")
    return 0 if result.success else 1


def check_common_settings() -> None:
    """The settings every model reads, checked before anything runs (ConfigError naming one)."""
    from checks.diagnostics import Thresholds
    from resources.settings import fx_rates, reporting_tz

    reporting_tz()
    fx_rates()
    Thresholds.from_env()


def configuration_errors(run: Callable[[], int]) -> int:
    """Run a command; a setting's mistake is its one line on stderr and exit 2, never a
    traceback (an unreachable warehouse counts: its URL is a setting)."""
    from resources.errors import SourceError

    try:
        return run()
    except SourceError as exc:
        print(exc.message, file=sys.stderr)
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"Warehouse: cannot connect ({reason}); check WAREHOUSE_URL.", file=sys.stderr)
    return 2


def refresh() -> int:
    with embedded_pg.owned_server():
        prepare_environment()
        check_common_settings()
        warehouse = WarehouseResource(url=os.environ["WAREHOUSE_URL"])
        warehouse.apply_ddl()
        with command_instance() as instance:
            outcome = run_all(instance, warehouse)
        print()
        print(dashboard(warehouse))
    return 0 if all(outcome.values()) else 1


def main() -> int:
    if sys.argv[1:] == ["--full-rebuild"]:
        return configuration_errors(full_rebuild)
    return configuration_errors(refresh)


if __name__ == "__main__":
    sys.exit(main())
