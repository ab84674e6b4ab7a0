"""Valid but unusual rows must not freeze a table or the marts (issue 15, defect 5).

Simulated: a small sandbox world of the module's own, in which one landing lead names no funnel
(core.leads files it under `unknown` by design) and one landing lead's `updated_at` is three days
ahead of the source's clock (clock skew or bad data). Every source loads through the real
clients and the models are rebuilt with their blocking quality checks; then the world moves on
and a second refresh must still read the rows written after it. Also: the quality suite's
currencies are the reporting one and FX_RATES', not a list of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from contract.records import CLOCK_MARGIN
from tests.conftest import run, validate_rows
from tests.reliability.small_world import SmallWorld, small_world

FUTURE = timedelta(days=3)


def _change_landing_lead(state: SmallWorld, index: int, **values: object) -> int:
    table = state.sandbox.world.supabase["main"]["landing_leads"]
    key = sorted(table.rows)[index]
    table.put({**table.rows[key], **values})
    return key


@pytest.fixture(scope="module")
def unusual(pg_server, warehouse_template, dagster_instance) -> Iterator[tuple[SmallWorld, dict]]:
    with small_world(pg_server, warehouse_template, dagster_instance, "unusual_rows") as state:
        world = state.sandbox.world
        planted = {
            "no_funnel": _change_landing_lead(state, 3, funnel=None),
            "future": _change_landing_lead(state, -2, updated_at=world.now + FUTURE),
        }
        state.sandbox.sync()
        state.refresh()
        yield state, planted


def test_given_landing_lead_without_funnel_when_models_built_then_unknown_and_marts_equal_truth(
    unusual,
):
    state, planted = unusual
    funnel = state.sql(
        "SELECT funnel FROM core.leads WHERE lead_key = %s", f"landing:{planted['no_funnel']}"
    )
    assert funnel == [("unknown",)]
    assert state.marts_differences() == []


def test_given_row_dated_in_future_when_loaded_then_cursor_stays_at_source_clock(unusual):
    state, planted = unusual
    (cursor,) = state.sql(
        "SELECT cursor FROM ops.cursors WHERE source = 'supabase_main' AND entity = 'landing_leads'"
    )[0]
    position = datetime.fromisoformat(cursor["position"])
    assert position <= state.sandbox.clock() - CLOCK_MARGIN
    assert state.sql(
        "SELECT count(*) FROM raw_supabase_main.landing_leads WHERE id = %s", planted["future"]
    ) == [(1,)]


def test_given_cursor_clamped_when_world_moves_on_then_later_rows_are_read(unusual):
    state, _ = unusual
    before = state.sql("SELECT count(*) FROM raw_supabase_main.landing_leads")[0][0]
    state.sandbox.advance(3)
    run(state.instance, "refresh_supabase_main")
    live = state.sql("SELECT id FROM raw_supabase_main.landing_leads WHERE _deleted_at IS NULL")
    world = state.sandbox.world.supabase["main"]["landing_leads"].rows
    assert sorted(i for (i,) in live) == sorted(world) and len(world) > before


@pytest.mark.parametrize(
    ("fx_rates", "currency", "passes"),
    [("USD=480,EUR=520", "KZT", True), ("USD=480,GBP=610", "GBP", True),
     ("USD=480,EUR=520", "RUB", False)],
)  # fmt: skip
def test_given_sale_currency_then_quality_accepts_exactly_reporting_and_fx_currencies(
    monkeypatch, warehouse, fx_rates, currency, passes
):
    monkeypatch.setenv("FX_RATES", fx_rates)
    monkeypatch.setenv("REPORTING_CURRENCY", "KZT")
    sale = {"sale_key": "deal:1", "amount": 100, "currency": currency, "funnel": "express",
            "report_day": datetime(2026, 11, 1).date()}  # fmt: skip
    failures = validate_rows(warehouse, "core.sales", [sale])
    assert (failures == []) is passes, failures
