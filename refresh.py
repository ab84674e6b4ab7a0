"""One full refresh, as `make run` does it: every source in its own run, then core and marts.

The warehouse is WAREHOUSE_URL or else the embedded server; vendors are whatever the environment
and `.env` configure. Prints the dashboard tables and each source's state; exits 1 when a source
failed (its branch stays stale; the marts are still rebuilt from the last good rows).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import dagster as dg
from dotenv import load_dotenv
from psycopg import sql
from tabulate import tabulate

from resources import embedded_pg
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
# The run's full event log is in Dagster's storage (`make ui`); the terminal gets warnings only.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def prepare_environment() -> None:
    """Load `.env`, resolve the database URLs, and point DAGSTER_HOME at our instance config."""
    load_dotenv(ROOT / ".env", override=False)
    os.environ.update(embedded_pg.resolve_urls())
    DAGSTER_HOME.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "instance" / "dagster.yaml", DAGSTER_HOME / "dagster.yaml")
    os.environ.setdefault("DAGSTER_HOME", str(DAGSTER_HOME))


def run_all(instance: dg.DagsterInstance) -> dict[str, bool]:
    """Each source job, then the model rebuild; {job name: succeeded}."""
    from assets.jobs import SOURCES, job_run_config, job_run_tags, models_job, source_job_name
    from definitions import defs

    outcome = {}
    for name in [*(source_job_name(s) for s in SOURCES), models_job.name]:
        started = time.perf_counter()
        result = defs.resolve_job_def(name).execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={**QUIET, **job_run_config(name)},
            tags=job_run_tags(name),
        )
        outcome[name] = result.success
        state = "ok" if result.success else "FAILED"
        print(f"  {name:<28} {state:<6} {time.perf_counter() - started:5.1f} s", flush=True)
        for step, message in failure_messages(result).items():
            print(f"      {step}: {message}")
    return outcome


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
        with dg.DagsterInstance.get() as instance:
            result = defs.resolve_job_def("full_rebuild_models").execute_in_process(
                instance=instance, raise_on_error=False, run_config=QUIET
            )
        for step, message in failure_messages(result).items():
            print(f"{step}: {message}")
    print("full rebuild", "done" if result.success else "FAILED")
    return 0 if result.success else 1


def main() -> int:
    if sys.argv[1:] == ["--full-rebuild"]:
        return full_rebuild()
    with embedded_pg.owned_server():
        prepare_environment()
        warehouse = WarehouseResource(url=os.environ["WAREHOUSE_URL"])
        warehouse.apply_ddl()
        with dg.DagsterInstance.get() as instance:
            outcome = run_all(instance)
        print()
        print(dashboard(warehouse))
    return 0 if all(outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
