"""The integration diagnostics against the sandbox in the production report's state: Flagship
webhooks on the wrong pipeline, the Traffic project's key wrong, AmoCRM answering 402, a Facebook
token 54 days from expiry; then each cause fixed turns its diagnostic ok. Real PostgreSQL, real
HTTP to the simulators; the JSON shape is the old dashboard's."""

from __future__ import annotations

from datetime import datetime

import pytest

from assets.jobs import SOURCES, source_job_name
from checks.diagnostics import report, run_all
from checks.integration_health import store
from definitions import resources as defined_resources
from sandbox.amocrm import BODY_402
from sandbox.world import FLAGSHIP_PIPELINE
from tests.conftest import point_env_at, run_job, validate_rows

INVALID_KEY = (
    "Supabase Traffic: Invalid API key (check SUPABASE_TRAFFIC_SERVICE_ROLE_KEY or "
    "SUPABASE_TRAFFIC_ANON_KEY). Hint: Double check your Supabase `anon` or `service_role` API key."
)


@pytest.fixture
def loaded(monkeypatch, warehouse, fresh_sandbox, dagster_instance):
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    for source in SOURCES:
        assert run_job(dagster_instance, source_job_name(source)).success
    return warehouse, fresh_sandbox


def diagnose(warehouse) -> dict:
    diagnostics = run_all({**defined_resources, "warehouse": warehouse})
    store(warehouse, diagnostics)
    return report(diagnostics)


def by_name(result: dict) -> dict[str, dict]:
    return {d["name"]: d for d in result["data"]["diagnostics"]}


def test_given_the_reports_state_then_the_diagnostics_say_so_field_by_field(loaded, monkeypatch):
    warehouse, sandbox = loaded
    monkeypatch.delenv("SUPABASE_TRAFFIC_SERVICE_ROLE_KEY")
    monkeypatch.setenv("SUPABASE_TRAFFIC_ANON_KEY", "undefined")  # what the old Node app sent
    sandbox.servers["amocrm"].faults.add(r"/api/v4/.*", status=402, body=BODY_402, times=-1)
    result = diagnose(warehouse)
    assert result["success"] is True
    assert result["data"]["overall_status"] == "error"
    d = by_name(result)
    flagship = sandbox.world.supabase["main"]["flagship_course_sales"].rows.values()
    deals = {r["amocrm_lead_id"] for r in flagship}
    right = {r["amocrm_lead_id"] for r in flagship if r["pipeline_id"] == FLAGSHIP_PIPELINE}
    assert d["Flagship Course Webhook"]["status"] == "error"
    assert d["Flagship Course Webhook"]["details"]["total_sales"] == len(deals)
    assert d["Flagship Course Webhook"]["details"]["correct_pipeline"] == len(right)
    assert d["Flagship Course Webhook"]["message"] == (
        f"Only {len(right)} of {len(deals)} Flagship webhook sales are on the Flagship "
        "pipeline: the webhook writes to the wrong pipeline"
    )
    assert d["Express Course Webhook"]["status"] == "ok"
    assert d["All Sales Tracking"] == {
        "name": "All Sales Tracking", "status": "error", "message": INVALID_KEY,
        "details": {"reachable": False},
    }  # fmt: skip
    assert d["AmoCRM Subscription"]["status"] == "error"
    assert d["AmoCRM Subscription"]["message"].startswith(
        "AmoCRM answered 402 Payment Required: the account's subscription has expired; renew it."
    )
    assert d["Facebook Token"]["status"] == "ok"
    assert d["Facebook Token"]["details"]["days_to_expiry"] == 54
    landing = sandbox.world.supabase["main"]["landing_leads"].rows.values()
    assert d["Landing BD Sync"]["details"]["total_leads"] == len(landing)
    assert d["Landing BD Sync"]["details"]["synced"] == sum(
        1 for r in landing if r["synced_to_amocrm"]
    )
    assert d["Landing BD Sync"]["status"] == "warning"  # late leads, not (yet) a growing backlog
    assert {name: v["status"] for name, v in d.items()} == {
        "Express Course Webhook": "ok", "Flagship Course Webhook": "error",
        "Landing BD Sync": "warning", "Express Course Sales": "warning",
        "Flagship Course Sales": "ok", "All Sales Tracking": "error",
        "AmoCRM Subscription": "error", "Facebook Token": "ok", "Sales Reconciliation": "ok",
        "Quarantine": "ok", "AmoCRM Token": "ok", "Supabase Main Key": "ok",
        "Supabase Tripwire Key": "ok",
    }  # fmt: skip
    assert result["data"]["summary"] == {"total": 13, "ok": 8, "warning": 2, "error": 3,
                                         "not_configured": 0}  # fmt: skip
    stored = warehouse.fetch_all("SELECT name, status FROM marts.integration_health")
    assert dict(stored)["All Sales Tracking"] == "error"


def test_given_each_cause_fixed_then_every_diagnostic_is_ok(
    monkeypatch, warehouse, fresh_sandbox, dagster_instance
):
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    world = fresh_sandbox.world
    table = world.supabase["main"]["flagship_course_sales"]
    for row in list(table.rows.values()):  # the webhook fixed: sales land on the right pipeline
        table.put({**row, "pipeline_id": FLAGSHIP_PIPELINE})
    for row in list(world.supabase["main"]["landing_leads"].rows.values()):
        if not row["synced_to_amocrm"]:  # the sync caught up
            world.supabase["main"]["landing_leads"].put(
                {
                    **row,
                    "synced_to_amocrm": True,
                    "amocrm_lead_id": 1,
                    "synced_at": row["created_at"],
                }
            )
    for course in ("express", "flagship"):  # every sale carries UTM
        sales = world.supabase["main"][f"{course}_course_sales"]
        for row in list(sales.rows.values()):
            sales.put({**row, "utm_source": row["utm_source"] or "facebook"})
    fresh_sandbox.sync()
    for source in SOURCES:
        assert run_job(dagster_instance, source_job_name(source)).success
    result = diagnose(warehouse)
    statuses = {d["name"]: d["status"] for d in result["data"]["diagnostics"]}
    assert statuses == dict.fromkeys(statuses, "ok")
    assert result["data"]["overall_status"] == "ok"
    assert result["data"]["summary"] == {"total": 13, "ok": 13, "warning": 0, "error": 0,
                                         "not_configured": 0}  # fmt: skip


def test_given_a_source_run_then_its_checks_carry_the_diagnostics_as_metadata(
    monkeypatch, warehouse, fresh_sandbox, dagster_instance
):
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    # the contract names the course pipelines: the webhook checks need AmoCRM's pipelines loaded
    assert run_job(dagster_instance, "refresh_amocrm").success
    result = run_job(dagster_instance, "refresh_supabase_main")
    assert result.success  # a failed check does not fail the run
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {
        "express_course_webhook", "flagship_course_webhook", "landing_bd_sync",
        "express_course_sales", "flagship_course_sales", "supabase_main_key", "schema_drift",
    }  # fmt: skip
    flagship = evaluations["flagship_course_webhook"]
    assert not flagship.passed and flagship.severity.value == "ERROR"
    rows = fresh_sandbox.world.supabase["main"]["flagship_course_sales"].rows.values()
    deals = {r["amocrm_lead_id"] for r in rows}
    assert flagship.metadata["total_sales"].value == len(deals)
    assert evaluations["express_course_webhook"].passed
    stored = dict(warehouse.fetch_all("SELECT name, status FROM marts.integration_health"))
    assert stored["Flagship Course Webhook"] == "error"


def test_given_bad_rows_then_the_quality_suite_names_each_problem(warehouse):
    day = datetime(2026, 9, 1).date()
    sales = [{"sale_key": key, "amount": amount, "currency": "KZT", "funnel": funnel,
              "report_day": day} for key, amount, funnel in (
        ("deal:1", 49990.0, "express"), ("deal:1", 49990.0, "express"),
        ("deal:2", -10.0, "flagship"), ("deal:3", 990.0, "webinar"))]  # fmt: skip
    found = validate_rows(warehouse, "core.sales", sales)
    failures = {(f.expectation, f.column): f.unexpected for f in found}
    assert failures == {
        ("expect_column_values_to_be_unique", "sale_key"): 2,
        ("expect_column_values_to_be_between", "amount"): 1,
        ("expect_column_values_to_be_in_set", "funnel"): 1,
    }


def test_given_sandbox_data_when_models_build_then_the_quality_checks_pass(
    monkeypatch, warehouse, fresh_sandbox, dagster_instance
):
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    for source in SOURCES:
        assert run_job(dagster_instance, source_job_name(source)).success
    result = run_job(dagster_instance, "rebuild_models")
    assert result.success
    quality = [e for e in result.get_asset_check_evaluations() if e.check_name == "data_quality"]
    assert len(quality) == 2 and all(e.passed for e in quality)


@pytest.mark.parametrize(("age_days", "status"), [(10, "ok"), (65, "warning"), (85, "error")])
def test_given_the_stored_refresh_token_ages_then_its_diagnostic_follows(
    warehouse, age_days, status
):
    from checks.diagnostics import Thresholds, amocrm_token

    warehouse.fetch_all(
        "INSERT INTO ops.oauth_tokens (integration, access_token, refresh_token,"
        " refresh_issued_at) VALUES ('amocrm', 'a', 'r', now() - make_interval(days => %s))"
        " RETURNING 1",
        (age_days,),
    )
    result = amocrm_token(warehouse, Thresholds())
    assert (result.status, result.details["refresh_token_age_days"]) == (status, age_days)
    assert result.message == f"The AmoCRM refresh token is {age_days} of 90 days old"


def test_given_quarantined_records_then_warning_and_a_growing_pile_is_an_error(warehouse):
    from checks.diagnostics import quarantine

    assert quarantine(warehouse).status == "ok"
    insert = (
        "INSERT INTO ops.quarantine (source, entity, record_key, reason, record, quarantined_at)"
        " VALUES ('supabase_main', 'landing_leads', %s, 'created_at: bad', '{}',"
        " now() - make_interval(hours => %s)) RETURNING 1"
    )
    warehouse.fetch_all(insert, ("1", 30))
    warehouse.fetch_all(insert, ("2", 1))
    assert quarantine(warehouse).status == "warning"
    warehouse.fetch_all(insert, ("3", 2))
    result = quarantine(warehouse)
    assert result.status == "error"
    assert result.details == {"last_day": 2, "day_before": 1,
                              "by_table": {"supabase_main.landing_leads": 2}}  # fmt: skip
