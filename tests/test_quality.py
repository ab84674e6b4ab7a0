"""The blocking quality suites run in PostgreSQL (GX's SQL datasource) with their allowed values
from configuration: a core.leads row as the model writes it for a landing lead naming no funnel
('unknown') passes, a funnel nobody configured fails with a sentence naming table, column,
count and value; a table no build rewrote since it passed the same suite passes without GX
asking again, and is asked again once a build rewrites it. The rows are written to a real
PostgreSQL table (raw AmoCRM deals for a built core.leads); no vendor is simulated."""

from __future__ import annotations

from datetime import UTC, date, datetime

from checks.quality import check_result, validate
from tests.conftest import validate_rows
from tests.test_model_inputs import build, put_deal

DAY = date(2026, 9, 1)


def lead(key: str, funnel: str) -> dict[str, object]:
    return {"lead_key": key, "funnel": funnel, "targetologist": "unattributed", "report_day": DAY,
            "created_at": datetime(2026, 9, 1, 6, tzinfo=UTC)}  # fmt: skip


def test_given_the_unknown_funnel_core_leads_writes_then_the_suite_passes(warehouse):
    assert validate_rows(warehouse, "core.leads", [lead("landing:1", "unknown"),
                                                   lead("landing:2", "express")]) == []  # fmt: skip


def test_given_a_funnel_nobody_configured_then_the_suite_names_table_column_count_and_value(
    warehouse,
):
    (failure,) = validate_rows(
        warehouse, "core.leads", [lead("landing:1", "webinar"), lead("landing:2", "unknown")]
    )
    assert failure.sentence("core.leads") == (
        "core.leads.funnel: 1 row fails expect_column_values_to_be_in_set ('webinar')"
    )


def test_given_an_empty_core_table_then_the_suite_runs_in_the_database_and_passes(warehouse):
    assert validate(warehouse, "core.sales") == []


def test_given_a_table_no_build_rewrote_since_it_passed_then_the_suite_is_not_asked_again(
    warehouse,
):
    put_deal(warehouse, 1, datetime(2026, 9, 1, 6, tzinfo=UTC), status=1)
    build(warehouse, "core.leads")
    assert check_result(warehouse, "core.leads").description == "suite passed"
    build(warehouse, "core.leads")  # nothing changed: nothing rewritten
    (built,) = warehouse.fetch_all(
        "SELECT rewritten_build_id FROM ops.model_builds WHERE model = 'core.leads'"
    )[0]
    assert check_result(warehouse, "core.leads").description == (
        f"unchanged since build {built}, which passed this suite"
    )
    put_deal(warehouse, 2, datetime(2026, 9, 2, 6, tzinfo=UTC), status=1)
    build(warehouse, "core.leads")
    assert check_result(warehouse, "core.leads").description == "suite passed"
