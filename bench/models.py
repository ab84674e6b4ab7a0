"""Model rebuilds at two years of history: the full rebuild, the rebuild after one hour of changes
(target ≤ 5 % of the full one) and the rebuild when nothing changed (it should rewrite nothing);
then the hourly `make run` with nothing new, end to end (target ≤ 5 s).

`measure(server, leads, days, runs)` is the bench runner's section: a school's sandbox loaded by
every source's job, `refresh.py` with nothing new on it, then the sandbox's rows grown to `leads`
and the models rebuilt through their Dagster jobs. `python -m bench.models` is the same growth
timed through `run_model` without Dagster: `grow` copies a loaded
world's rows back in time and side by side in SQL until the landing leads reach a million over
two years, `one_hour_of_changes` writes what an hour brings (new leads, deals moving, webhooks,
today's spend restated), also in SQL, and `grown_figures` times the models on it.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg
from psycopg import sql

from bench import figures
from bench.facebook_backfill import fresh_warehouse
from bench.figures import Figure, Target
from resources import embedded_pg
from resources.warehouse import WarehouseResource, engine_for
from sandbox.stack import Sandbox
from sandbox.world import school_rates, school_scale

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}

HISTORY_DAYS = 730
TARGET_LEADS = 1_000_000
ID_STEP = 10**10  # copy k's ids: the loaded ones + k × ID_STEP (references shifted alike)
REFERENCES = ("id", "amocrm_lead_id", "user_id")
# the raw tables the models read that grow with the school (the rules and the ad tree do not)
GROWN = ("raw_supabase_main.landing_leads", "raw_supabase_main.prooftest_leads",
         "raw_supabase_main.express_course_sales", "raw_supabase_main.flagship_course_sales",
         "raw_supabase_tripwire.tripwire_users", "raw_supabase_tripwire.tripwire_purchases",
         "raw_supabase_traffic.all_sales_tracking", "raw_amocrm.leads")  # fmt: skip
INSIGHTS = "raw_facebook.ad_insights_daily"  # one row per ad and day: grows back in time only


def _columns(warehouse: WarehouseResource, table: str) -> list[tuple[str, str]]:
    schema, name = table.split(".")
    return [(c, t) for c, t in warehouse.fetch_all(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s"
        " AND table_name = %s ORDER BY ordinal_position", (schema, name))]  # fmt: skip


def _copy(warehouse: WarehouseResource, table: str, copies: str, shift: str, ids: str) -> int:
    """Insert a copy of every row of `table` per k of `copies` (a SQL set of integers), its
    times moved by `shift` and its ids by `ids` (SQL of k), stamped a day ago."""
    items: list[sql.Composable] = []
    for column, kind in _columns(warehouse, table):
        name = sql.Identifier(column)
        if column == "_loaded_at":
            items.append(sql.SQL("now() - interval '1 day'"))
        elif column in REFERENCES and kind == "bigint":
            items.append(sql.SQL("{} + ({})").format(name, sql.SQL(ids)))
        elif kind.startswith("timestamp") or kind == "date":
            items.append(sql.SQL("{} - ({})").format(name, sql.SQL(shift)))
        else:
            items.append(name)
    with warehouse.connection() as conn:
        return conn.execute(
            sql.SQL("INSERT INTO {} SELECT {} FROM {}, {} AS k").format(
                sql.Identifier(*table.split(".")),
                sql.SQL(", ").join(items),
                sql.Identifier(*table.split(".")),
                sql.SQL(copies),
            )  # fmt: skip
        ).rowcount


def grow(warehouse: WarehouseResource, leads: int = TARGET_LEADS, days: int = HISTORY_DAYS) -> None:
    """Copy the loaded rows side by side (same days, minutes apart) and back in time (one span
    of the loaded days, leads' or spend's, per copy) until about `leads` landing leads cover
    `days` days."""
    ((span, loaded),) = warehouse.fetch_all(
        "SELECT greatest((SELECT max(date) - min(date) FROM raw_facebook.ad_insights_daily),"
        " (SELECT max(created_at)::date - min(created_at)::date"
        " FROM raw_supabase_main.landing_leads)) + 1,"
        " (SELECT count(*) FROM raw_supabase_main.landing_leads)"
    )
    back = max(1, math.ceil(days / span))
    side = max(1, round(leads / (loaded * back)))
    for table in GROWN:  # side by side first, then the widened world back in time
        _copy(warehouse, table, f"generate_series(1, {side - 1})",
              "k * interval '7 minutes'", f"k * {ID_STEP}")  # fmt: skip
        _copy(warehouse, table, f"generate_series(1, {back - 1})",
              f"k * interval '{span} days'", f"k * {side} * {ID_STEP}")  # fmt: skip
    _copy(
        warehouse, INSIGHTS, f"generate_series(1, {back - 1})", f"k * interval '{span} days'", "0"
    )
    with warehouse.connection() as conn:
        conn.execute("ANALYZE")  # the planner sees the grown tables


def _new_rows(warehouse: WarehouseResource, table: str, n: int, values: dict[str, str]) -> None:
    """`n` new rows of `table` like its latest ones: fresh ids, created within the hour before
    `%(clock)s`, loaded now, `values` (column → SQL) overriding."""
    target = sql.Identifier(*table.split("."))
    made = {
        "id": sql.SQL("(SELECT max(id) FROM {}) + row_number() OVER ()").format(target),
        "created_at": sql.SQL("%(clock)s::timestamptz - random() * interval '1 hour'"),
        "updated_at": sql.SQL("%(clock)s::timestamptz"),
        "_loaded_at": sql.SQL("now()"),
    }
    made |= {column: sql.SQL(value) for column, value in values.items()}
    items = [made.get(c, sql.Identifier(c)) for c, _ in _columns(warehouse, table)]
    with warehouse.connection() as conn:
        conn.execute(
            sql.SQL("INSERT INTO {} SELECT {} FROM (SELECT * FROM {} ORDER BY created_at DESC"
                    " LIMIT %(n)s) AS r").format(target, sql.SQL(", ").join(items), target),
            {"n": n, "clock": _clock(warehouse)},
        )  # fmt: skip


def _clock(warehouse: WarehouseResource) -> Any:
    """The world's now: its latest lead (a loaded sandbox's clock is not the machine's)."""
    return warehouse.fetch_all("SELECT max(created_at) FROM raw_supabase_main.landing_leads")[0][0]


def one_hour_of_changes(warehouse: WarehouseResource) -> None:
    """An hour of the school in SQL, in proportion to the stored history: new landing leads and
    course webhooks, deals of the last two months moving on, the last two days' spend restated
    (the hourly Facebook pull)."""
    ((per_hour,),) = warehouse.fetch_all(
        "SELECT greatest(1, count(*) / greatest(1, extract(epoch FROM max(created_at)"
        " - min(created_at)) / 3600))::int FROM raw_supabase_main.landing_leads"
    )
    clock = _clock(warehouse)
    unsynced = {"amocrm_lead_id": "NULL", "synced_to_amocrm": "false", "synced_at": "NULL"}
    _new_rows(warehouse, "raw_supabase_main.landing_leads", per_hour, unsynced)
    _new_rows(warehouse, "raw_supabase_main.express_course_sales", max(1, per_hour // 20),
              {"amocrm_lead_id": "NULL"})  # fmt: skip
    warehouse.fetch_all(
        "UPDATE raw_amocrm.leads SET updated_at = %(clock)s, _loaded_at = now() WHERE id IN"
        " (SELECT id FROM raw_amocrm.leads WHERE created_at > %(clock)s::timestamptz"
        " - interval '60 days' ORDER BY random() LIMIT %(n)s) RETURNING 1",
        {"clock": clock, "n": per_hour * 3},
    )
    warehouse.fetch_all(
        "UPDATE raw_facebook.ad_insights_daily SET spend = spend + 1, _loaded_at = now()"
        " WHERE date >= (SELECT max(date) - 1 FROM raw_facebook.ad_insights_daily) RETURNING 1"
    )


def rebuild(warehouse: WarehouseResource, *, full: bool) -> tuple[float, dict[str, int | None]]:
    """Every model in build order, as the jobs build them; (seconds, {model: days rebuilt, None
    for all of them})."""
    from assets.models import DAY_COLUMNS
    from contract.model_params import model_params

    started = time.perf_counter()
    days: dict[str, int | None] = {}
    for table, day_column in DAY_COLUMNS.items():
        build = warehouse.run_model(
            table, model_params(warehouse, table), day_column=day_column, full=full
        )
        days[table] = build.days_rebuilt
    return time.perf_counter() - started, days


def _rebuild_figure(hourly: float, full: float, detail: str) -> Figure:
    return Figure("model rebuild after one hour, 2 years", hourly, "s", Target(0.05),
                  baseline=full, ratio=hourly / full, detail=detail)  # fmt: skip


def grown_figures(warehouse: WarehouseResource) -> list[Figure]:
    """Full rebuild, then one hour of changes and the rebuild, then a rebuild with nothing new,
    each model through run_model as its asset calls it (the baseline: the full rebuild)."""
    full, _ = rebuild(warehouse, full=True)
    one_hour_of_changes(warehouse)
    hourly, hourly_days = rebuild(warehouse, full=False)
    idle, idle_days = rebuild(warehouse, full=False)
    rewritten = [model for model, days in idle_days.items() if days != 0]
    ((leads,),) = warehouse.fetch_all("SELECT count(*) FROM core.leads")
    hour = f"{leads:,} core.leads, {hourly_days['core.leads']} days rebuilt"
    return [_rebuild_figure(hourly, full, hour), _nothing_figure(rewritten, idle, full)]


def _nothing_figure(rewritten: list[str], seconds: float, full: float) -> Figure:
    """The issue's "no model rebuild when no raw row changed": the models that rewrote a day."""
    return Figure("model rebuild, nothing changed", len(rewritten), "models",
                  Target(0, of_ratio=False),
                  detail=f"{seconds:.2f} s, {seconds / full:.3f} × the full rebuild; rewritten: "
                         f"{', '.join(rewritten) or 'none'}")  # fmt: skip


def _run(instance: dg.DagsterInstance, job: str, tags: dict[str, str] | None = None) -> float:
    """Seconds of one run of `job`, with the tags and config `make run` gives it."""
    from assets.jobs import job_run_config, job_run_tags
    from definitions import defs

    started = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        raise_on_error=True,
        tags={**job_run_tags(job), **(tags or {})},
        run_config={**job_run_config(job), **QUIET},
    )
    assert result.success
    return time.perf_counter() - started


def _instance(server: str, home: Path) -> dg.DagsterInstance:
    """Dagster's own storage in the bench server, configured by the project's dagster.yaml."""
    embedded_pg.drop_database(server, "bench_dagster")
    embedded_pg.create_database(server, "bench_dagster")
    url = embedded_pg.database_uri(server, "bench_dagster")
    os.environ["DAGSTER_PG_URL"] = embedded_pg.sqlalchemy_uri(url, "psycopg2")
    shutil.copyfile(ROOT / "instance" / "dagster.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def _refresh(env: dict[str, str]) -> tuple[float, int]:
    """`make run`'s command in a process of its own: (seconds end to end, exit code)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "refresh.py")], cwd=ROOT, env=env,
                          capture_output=True)  # fmt: skip
    return time.perf_counter() - started, done.returncode


def _rewritten(warehouse: WarehouseResource) -> list[str]:
    """The models the jobs build (those with a day column) whose last build rewrote a day."""
    from assets.models import DAY_COLUMNS

    built = [table for table, day_column in DAY_COLUMNS.items() if day_column]
    return [model for (model,) in warehouse.fetch_all(
        "SELECT model FROM ops.model_builds WHERE days_rebuilt IS DISTINCT FROM 0"
        " AND model = ANY(%s) ORDER BY model", (built,))]  # fmt: skip


def measure(server: str, leads: int, days: int, runs: int) -> list[Figure]:
    """A school's sandbox (a tenth of `leads` over `days`) loaded by every source's job and the
    hourly `make run` with nothing new `runs` times on it; then its rows grown in SQL to `leads`
    landing leads over `days` (`grow`), and through the models' Dagster jobs the full rebuild
    `runs` times, `runs` hours of changes (`one_hour_of_changes`) each rebuilt incrementally, and
    one rebuild with nothing new."""
    from assets.jobs import SOURCES, partition_range_tags, source_job_name

    warehouse = fresh_warehouse(server, "bench_models")
    home = Path(tempfile.mkdtemp(prefix="bench-dagster-"))
    instance = _instance(server, home)
    scale = school_scale(max(1, leads // 10), days)
    sandbox = Sandbox(server, seed=5, scale=scale, rates=school_rates(scale), history_days=days,
                      prefix="bench", amocrm_rate=1000, facebook_polls=1,
                      facebook_budget=10**6)  # fmt: skip
    with instance, sandbox:
        os.environ.update({**sandbox.env(), "WAREHOUSE_URL": warehouse.url,
                           "AMOCRM_MAX_RPS": "900"})  # fmt: skip
        for source in SOURCES:
            _run(instance, source_job_name(source))
        history = partition_range_tags(sandbox.world.start.date(), sandbox.world.now.date())
        _run(instance, "backfill_facebook_insights", history)  # the hourly job reads 2 days
        _run(instance, "full_rebuild_models")  # the idle hour finds every model built
        # the hourly refresh paces AmoCRM as production does
        env = {**os.environ, "DAGSTER_HOME": str(home), "ENV_FILE": os.devnull}
        del env["AMOCRM_MAX_RPS"]
        refreshes = [_refresh(env) for _ in range(runs)]  # the median: a first slow one aside
        # the sandbox's sources are not loaded again: their deletion detection would find the
        # grown rows gone, so the hours of changes are written in SQL
        grow(warehouse, leads, days)
        full = statistics.median(_run(instance, "full_rebuild_models") for _ in range(runs))
        core_leads = warehouse.fetch_all("SELECT count(*) FROM core.leads")[0][0]
        mart_days = warehouse.fetch_all("SELECT count(*) FROM marts.leads_total")[0][0]
        hourly = []
        for _ in range(runs):
            one_hour_of_changes(warehouse)
            hourly.append(_run(instance, "rebuild_models"))
        touched = warehouse.fetch_all(
            "SELECT days_rebuilt FROM ops.model_builds WHERE model = 'core.leads'"
        )[0][0]
        idle_models = _run(instance, "rebuild_models")
        rewritten = _rewritten(warehouse)
    del os.environ["AMOCRM_MAX_RPS"]  # the sections after this one pace AmoCRM by default
    shutil.rmtree(home)
    engine_for(warehouse.url).dispose()
    idle = statistics.median(seconds for seconds, _ in refreshes)
    failed = [code for _, code in refreshes if code != 0]
    detail = (f"{core_leads:,} core.leads, {mart_days} days of marts, {touched} days rebuilt; "
              "through the models' jobs; baseline: the full rebuild")  # fmt: skip
    return [
        _rebuild_figure(statistics.median(hourly), full, detail),
        _nothing_figure(rewritten, idle_models, full),
        Figure(
            "hourly run with nothing changed, end to end",
            idle,
            "s",
            Target(5.0, of_ratio=False),
            also=not failed,
            detail="refresh.py (make run) in its own process, Dagster included, at a tenth of "
            "the models' leads (the sandbox before it grew)"
            + (f"; exit codes {failed}" if failed else ""),
        ),  # fmt: skip
    ]


def _grown_warehouse(server: str) -> WarehouseResource:
    """A small sandbox world loaded through the real jobs, grown to two years and a million
    leads."""
    from assets.jobs import SOURCES, source_job_name

    warehouse = fresh_warehouse(server, "bench_models_2y")
    with Sandbox(server, seed=5, scale=0.3, prefix="benchmodels", amocrm_rate=1000,
                 facebook_polls=1, facebook_budget=10**6) as sandbox:  # fmt: skip
        os.environ.update({**sandbox.env(), "WAREHOUSE_URL": warehouse.url,
                           "AMOCRM_MAX_RPS": "900"})  # fmt: skip
        with dg.DagsterInstance.ephemeral() as instance:
            for source in SOURCES:
                _run(instance, source_job_name(source))
    started = time.perf_counter()
    grow(warehouse)
    print(f"grown in {time.perf_counter() - started:.0f} s", flush=True)
    return warehouse


def main() -> None:
    pgdata = ROOT / ".local" / "bench-models-pgdata"
    with embedded_pg.owned_server(pgdata):
        server = embedded_pg.start(pgdata, databases=())
        print(figures.table(grown_figures(_grown_warehouse(server))), flush=True)
        embedded_pg.stop(pgdata)


if __name__ == "__main__":
    main()
