"""Facebook's restatement window when model builds are days apart, on the sandbox (whose world
revises spend within Facebook's 28-day attribution window once a day) and real PostgreSQL:
after builds two and then three days apart, every spend day of marts.targetologist_daily holds
the world's spend and is_provisional (PROVISIONAL_DAYS before Facebook's today, as the ground
truth says), the days that left the window since the last build included. Only Facebook, the
attribution rules and the models are loaded: the mart's spend rows are what the window moves."""

from typing import Any

import dagster as dg
import pytest

from assets.models import DAY_COLUMNS
from contract.model_params import model_params
from resources.warehouse import WarehouseResource
from sandbox import ground_truth
from sandbox.stack import Sandbox
from tests.conftest import FAST_SANDBOX, point_env_at, run


def spend_days(rows: list[tuple[Any, ...]]) -> dict[tuple[Any, str], tuple[Any, bool]]:
    """(day, targetologist) → (spend, is_provisional) of the mart's rows with impressions."""
    return {(r[0], r[1]): (r[3], r[12]) for r in rows if r[4]}


def build(instance: dg.DagsterInstance, warehouse: WarehouseResource) -> None:
    """A day's Facebook runs, then the two models spend flows through, built as their assets
    build them (the days raw changes touched, and the provisional ones)."""
    run(instance, "refresh_facebook", "facebook_restatement")
    for table in ("core.ad_spend_daily", "marts.targetologist_daily"):
        warehouse.run_model(table, model_params(warehouse, table), day_column=DAY_COLUMNS[table])


def test_given_model_builds_days_apart_then_restated_spend_and_provisional_flags_equal_truth(
    monkeypatch: pytest.MonkeyPatch,
    warehouse: WarehouseResource,
    pg_server: str,
    dagster_instance: dg.DagsterInstance,
) -> None:
    with Sandbox(pg_server, prefix="restatement", **{**FAST_SANDBOX, "scale": 0.05}) as sandbox:
        point_env_at(monkeypatch, warehouse, sandbox)
        builds_days_apart(warehouse, sandbox, dagster_instance)


def builds_days_apart(
    warehouse: WarehouseResource, fresh_sandbox: Sandbox, dagster_instance: dg.DagsterInstance
) -> None:
    run(dagster_instance, "refresh_supabase_traffic")  # who each campaign's spend belongs to
    build(dagster_instance, warehouse)
    for days_apart in (2, 3):
        fresh_sandbox.advance(24 * days_apart)
        build(dagster_instance, warehouse)
        stored = warehouse.fetch_all(
            "SELECT day, targetologist, currency, spend, impressions, clicks, leads, sales,"
            " revenue, cpl, cpa, roas, is_provisional FROM marts.targetologist_daily"
        )
        expected = spend_days(ground_truth.targetologist_daily(fresh_sandbox.world))
        differing = {k: (v, expected.get(k)) for k, v in spend_days(stored).items()
                     if expected.get(k) != v}  # fmt: skip
        assert differing == {} and len(spend_days(stored)) == len(expected), days_apart
