"""Core and marts: a full rebuild and an hourly incremental one (after an hour of new world
activity) at the sandbox's largest scale, through the real jobs; the baseline is the full one."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

from bench.facebook_backfill import fresh_warehouse
from resources import embedded_pg
from resources.warehouse import engine_for
from sandbox.stack import Sandbox

SCALE = 3.0  # ~26k landing leads and ~24k AmoCRM deals a month, 84 ads: minutes to load
HEADERS = ["models at scale 3", "core.leads rows", "days rebuilt", "seconds", "× full time"]
ROOT = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def _run(instance: dg.DagsterInstance, job: str) -> float:
    from definitions import defs

    started = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=True, run_config=QUIET
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


def run(server: str) -> list[list[Any]]:
    from assets.jobs import SOURCES, source_job_name

    warehouse = fresh_warehouse(server, "bench_models")
    home = Path(tempfile.mkdtemp(prefix="bench-dagster-"))
    instance = _instance(server, home)
    with instance, Sandbox(server, seed=5, scale=SCALE, prefix="bench", amocrm_rate=1000,
                 facebook_polls=1, facebook_budget=10**6) as sandbox:  # fmt: skip
        os.environ.update({**sandbox.env(), "WAREHOUSE_URL": warehouse.url,
                           "AMOCRM_MAX_RPS": "900"})  # fmt: skip
        for source in SOURCES:
            _run(instance, source_job_name(source))
        full = _run(instance, "full_rebuild_models")
        leads = warehouse.fetch_all("SELECT count(*) FROM core.leads")[0][0]
        days = warehouse.fetch_all("SELECT count(*) FROM marts.leads_total")[0][0]
        sandbox.advance(1)
        for source in SOURCES:
            _run(instance, source_job_name(source))
        incremental = _run(instance, "rebuild_models")
        touched = warehouse.fetch_all(
            "SELECT days_rebuilt FROM ops.model_builds WHERE model = 'core.leads'"
        )[0][0]
    os.environ.pop("AMOCRM_MAX_RPS", None)
    shutil.rmtree(home)
    engine_for(warehouse.url).dispose()
    return [
        ["full rebuild (baseline)", leads, days, full, 1.0],
        ["incremental after one hour", leads, touched, incremental, incremental / full],
    ]
