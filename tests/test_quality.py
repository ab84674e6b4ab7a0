"""The blocking quality suites run in PostgreSQL (GX's SQL datasource) with their allowed values
from configuration: a core.leads row as the model writes it for a landing lead naming no funnel
('unknown') passes, a funnel nobody configured fails with a sentence naming table, column,
count and value. The rows are written to a real PostgreSQL table; no vendor is simulated."""

from __future__ import annotations

from datetime import UTC, date, datetime

from checks.quality import validate
from tests.conftest import validate_rows

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
