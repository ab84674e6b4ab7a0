"""Core and marts: a full rebuild and an hourly incremental one (after an hour of new world
activity) of a school's two years, through the real jobs (the baseline is the full one); then
the hourly `make run` with nothing new, end to end."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from bench.facebook_backfill import fresh_warehouse
from bench.figures import Figure, Target
from resources import embedded_pg
from resources.warehouse import engine_for
from sandbox.stack import Sandbox
from sandbox.world import school_rates, school_scale

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


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


def measure(server: str, leads: int, days: int, runs: int) -> list[Figure]:
    """A school's sandbox (`leads` over `days`) loaded by every source's job; then the full
    rebuild `runs` times, `runs` hours of activity each loaded and rebuilt incrementally, and
    `runs` hourly refreshes with nothing new."""
    from assets.jobs import SOURCES, partition_range_tags, source_job_name

    warehouse = fresh_warehouse(server, "bench_models")
    home = Path(tempfile.mkdtemp(prefix="bench-dagster-"))
    instance = _instance(server, home)
    scale = school_scale(leads, days)
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
        full = statistics.median(_run(instance, "full_rebuild_models") for _ in range(runs))
        core_leads = warehouse.fetch_all("SELECT count(*) FROM core.leads")[0][0]
        mart_days = warehouse.fetch_all("SELECT count(*) FROM marts.leads_total")[0][0]
        hourly = []
        for _ in range(runs):
            sandbox.advance(1)
            for source in SOURCES:
                _run(instance, source_job_name(source))
            hourly.append(_run(instance, "rebuild_models"))
        touched = warehouse.fetch_all(
            "SELECT days_rebuilt FROM ops.model_builds WHERE model = 'core.leads'"
        )[0][0]
        del os.environ["AMOCRM_MAX_RPS"]  # the hourly refresh paces AmoCRM as production does
        env = {**os.environ, "DAGSTER_HOME": str(home), "ENV_FILE": os.devnull}
        refreshes = [_refresh(env) for _ in range(runs)]  # the median: a first slow one aside
    shutil.rmtree(home)
    engine_for(warehouse.url).dispose()
    incremental = statistics.median(hourly)
    idle = statistics.median(seconds for seconds, _ in refreshes)
    failed = [code for _, code in refreshes if code != 0]
    return [
        Figure(
            "model rebuild after one hour, 2 years",
            incremental,
            "s",
            Target(0.05),
            baseline=full,
            ratio=incremental / full,
            detail=f"{core_leads:,} core.leads, {mart_days} days of marts, {touched} days "
            "rebuilt; baseline: the full rebuild",
        ),  # fmt: skip
        Figure(
            "hourly run with nothing changed, end to end",
            idle,
            "s",
            Target(5.0, of_ratio=False),
            also=not failed,
            detail="refresh.py (make run) in its own process, Dagster included"
            + (f"; exit codes {failed}" if failed else ""),
        ),  # fmt: skip
    ]
