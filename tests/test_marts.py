"""Core models and the dashboard contract on real PostgreSQL, against the sandbox's ground truth:
every mart exactly (money to the cent) after a full build, after time moves on and an
incremental build, and after a full rebuild; which models a build would change, and each build's
own row count; the report's data problems (wrong pipeline,
duplicate webhooks) counted once and flagged; the Almaty day boundary; the read-only role."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from api.access import issue_token
from assets.jobs import SOURCES
from assets.models import DAY_COLUMNS
from commands.runs import NOTHING_CHANGED, stale_models
from commands.runs import build_models as build_models_of_make_run
from contract.model_params import model_params
from sandbox.truth import compare_marts
from sandbox.world import FLAGSHIP_PIPELINE
from tests.conftest import load_everything, point_env_at, run, run_job

MARTS = ("leads_total", "leads_by_funnel", "sales_total", "targetologist_daily",
         "source_freshness")  # fmt: skip


@pytest.fixture
def env(monkeypatch, warehouse, fresh_sandbox):
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    return warehouse, fresh_sandbox


def days_rebuilt(warehouse) -> dict[str, int | None]:
    return dict(warehouse.fetch_all("SELECT model, days_rebuilt FROM ops.model_builds"))


def counted_rows(warehouse) -> dict[str, int]:
    """Each model's rows as its last build counted them from its own statements."""
    return dict(warehouse.fetch_all("SELECT model, row_count FROM ops.model_builds"))


def actual_rows(warehouse) -> dict[str, int]:
    return {model: warehouse.fetch_all(f"SELECT count(*) FROM {model}")[0][0]  # noqa: S608
            for model in counted_rows(warehouse)}  # fmt: skip


def build_models(warehouse, prefix: str) -> None:
    """The incremental builds of the models whose names start with `prefix`, in their order."""
    for table, day_column in DAY_COLUMNS.items():
        if table.startswith(prefix):
            warehouse.run_model(table, model_params(warehouse, table), day_column=day_column)


def test_given_loads_when_built_then_incremental_and_full_rebuilds_equal_truth(
    env, dagster_instance
):
    warehouse, sandbox = env
    load_everything(dagster_instance)
    run(dagster_instance, "rebuild_models")
    assert compare_marts(warehouse, sandbox.world) == []
    assert days_rebuilt(warehouse)["core.leads"] is None  # the first build is a full one
    assert stale_models(warehouse) == []
    sandbox.advance(6)
    load_everything(dagster_instance, restate=True)
    assert {"core.leads", "marts.leads_total"} <= set(stale_models(warehouse))
    run(dagster_instance, "rebuild_models")
    assert compare_marts(warehouse, sandbox.world) == []
    total_days = warehouse.fetch_all("SELECT count(*) FROM marts.leads_total")[0][0]
    touched = days_rebuilt(warehouse)
    assert touched["core.leads"] is not None and 0 < touched["core.leads"] < total_days
    # a load committing between the core builds and the marts' (the automation's model run
    # beside a source's run): the marts built from the core of before it still get its rows
    sandbox.advance(3)
    build_models(warehouse, "core.")
    load_everything(dagster_instance)
    build_models(warehouse, "marts.")
    run(dagster_instance, "rebuild_models")
    assert compare_marts(warehouse, sandbox.world) == []
    assert stale_models(warehouse) == [] and counted_rows(warehouse) == actual_rows(warehouse)
    before = {m: warehouse.fetch_all(f"SELECT * FROM marts.{m} ORDER BY 1, 2") for m in MARTS[:4]}  # noqa: S608
    run(dagster_instance, "full_rebuild_models")
    assert days_rebuilt(warehouse)["marts.targetologist_daily"] is None
    for mart, rows in before.items():
        assert warehouse.fetch_all(f"SELECT * FROM marts.{mart} ORDER BY 1, 2") == rows  # noqa: S608


def test_given_a_mart_built_before_a_core_model_it_reads_then_its_next_build_has_every_row(
    env, dagster_instance
):
    """A Facebook run builds its own branch (spend, then targetologist_daily) while core.leads
    was never built: the mart read no leads, so the next build must not take it as up to date."""
    warehouse, sandbox = env
    load_everything(dagster_instance)
    for table in ("core.ad_spend_daily", "marts.targetologist_daily"):
        warehouse.run_model(table, model_params(warehouse, table), day_column=DAY_COLUMNS[table])
    run(dagster_instance, "rebuild_models")
    assert compare_marts(warehouse, sandbox.world) == []


def test_given_nothing_loaded_since_the_build_when_make_run_reaches_the_models_then_no_run(
    monkeypatch, loaded_warehouse, dagster_instance, capsys
):
    """`make run`'s model rebuild with no raw row changed: no run launched, the line says why."""
    warehouse, sandbox = loaded_warehouse
    point_env_at(monkeypatch, warehouse, sandbox, minimal=True)  # the settings it was built with
    runs = dagster_instance.get_runs_count()
    assert build_models_of_make_run(dagster_instance, warehouse)
    assert NOTHING_CHANGED in capsys.readouterr().out
    assert dagster_instance.get_runs_count() == runs


def test_given_webhooks_on_the_wrong_pipeline_and_duplicated_then_each_sale_once_flagged(loaded):
    warehouse, sandbox = loaded
    flagship = sandbox.world.supabase["main"]["flagship_course_sales"].rows.values()
    wrong = {r["amocrm_lead_id"] for r in flagship if r["pipeline_id"] != FLAGSHIP_PIPELINE}
    rows = warehouse.fetch_all(
        "SELECT amocrm_lead_id, funnel, pipeline_mismatch, webhook_rows FROM core.sales"
        " WHERE amocrm_lead_id = ANY(%s)",
        (sorted(wrong),),
    )
    assert len(rows) == len(wrong) and {r[0] for r in rows} == wrong
    assert {(funnel, flagged) for _, funnel, flagged, _ in rows} == {("flagship", True)}
    copies: dict[int, int] = {}
    for table in ("express_course_sales", "flagship_course_sales"):
        for r in sandbox.world.supabase["main"][table].rows.values():
            copies[r["amocrm_lead_id"]] = copies.get(r["amocrm_lead_id"], 0) + 1
    twice = sorted(k for k, n in copies.items() if n == 2)
    counted = warehouse.fetch_all(
        "SELECT count(*), min(webhook_rows) FROM core.sales WHERE amocrm_lead_id = ANY(%s)",
        (twice,),
    )
    assert twice and counted == [(len(twice), 2)]


def test_given_leads_either_side_of_almaty_midnight_then_each_on_its_own_day(env, dagster_instance):
    warehouse, sandbox = env
    table = sandbox.world.supabase["main"]["landing_leads"]
    template = next(iter(table.rows.values()))
    edges = {
        990_001: datetime(2026, 9, 10, 18, 59, 59, tzinfo=UTC),  # 23:59:59 in Almaty
        990_002: datetime(2026, 9, 10, 19, 0, 0, tzinfo=UTC),  # 00:00:00 on the 11th
    }
    for lead_id, at in edges.items():
        table.put({**template, "id": lead_id, "created_at": at, "updated_at": at,
                   "synced_to_amocrm": False, "amocrm_lead_id": None,
                   "synced_at": None})  # fmt: skip
    sandbox.sync()
    load_everything(dagster_instance)
    run(dagster_instance, "rebuild_models")
    days = dict(warehouse.fetch_all(
        "SELECT source_id, report_day::text FROM core.leads WHERE source_id = ANY(%s)"
        " AND source = 'landing'", ([str(k) for k in edges],)))  # fmt: skip
    # core keys are text: a source's key may be an integer, a uuid or a slug
    assert days == {"990001": "2026-09-10", "990002": "2026-09-11"}
    assert compare_marts(warehouse, sandbox.world) == []


def test_given_dashboard_reader_then_it_reads_every_mart_and_nothing_else(loaded):
    warehouse, _ = loaded
    warehouse.configure_dashboard_role("reader-secret")
    admin = issue_token(warehouse, targetologist=None).token
    url = warehouse.url.replace("postgres:@", "dashboard_reader:reader-secret@")
    # a BI tool presents its token once, in the connection string's options
    with psycopg.connect(url, autocommit=True, options=f"-c dashboard.token={admin}") as conn:
        for mart in MARTS:
            count = conn.execute(f"SELECT count(*) FROM marts.{mart}").fetchone()  # noqa: S608
            assert count is not None and count[0] > 0
        for table in ("raw_supabase_main.landing_leads", "raw_amocrm.leads", "core.leads",
                      "core.sales", "ops.oauth_tokens", "ops.cursors",
                      "ops.api_tokens"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608
    with psycopg.connect(url, autocommit=True) as conn:  # no token: source freshness only
        for mart in MARTS:
            count = conn.execute(f"SELECT count(*) FROM marts.{mart}").fetchone()  # noqa: S608
            assert count == ((5,) if mart == "source_freshness" else (0,)), mart


def test_given_a_source_fails_then_source_freshness_says_which_and_why(env, dagster_instance):
    warehouse, sandbox = env
    load_everything(dagster_instance)
    sandbox.servers["amocrm"].faults.add(
        r"/api/v4/.*", status=402, times=-1, body={"title": "Payment Required", "status": 402}
    )
    assert not run_job(dagster_instance, "refresh_amocrm").success
    rows = {r[0]: r[1:] for r in warehouse.fetch_all(
        "SELECT source, status, error, last_success_at < last_attempt_at FROM"
        " marts.source_freshness")}  # fmt: skip
    assert rows["amocrm"][0] == "error" and rows["amocrm"][2] is True
    assert rows["amocrm"][1].startswith("AmoCRM answered 402 Payment Required")
    assert {s: r[0] for s, r in rows.items() if s != "amocrm"} == dict.fromkeys(
        [s for s in SOURCES if s != "amocrm"], "ok"
    )
