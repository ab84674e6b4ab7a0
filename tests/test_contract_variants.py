"""The source contract against every schema variant the sandbox serves (no updated_at, renamed
columns, uuid and text keys, LIKE-pattern rules, extra columns): discovery proposes what a mapping
needs, the whole pipeline runs through the real clients, and the staging views and marts equal
the ground truth exactly. Also: a column added and dropped between runs, and the drift check.
Each variant's world is SMALL_SANDBOX's: the shapes are the question, not the rows' number."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from checks.schema_drift import evaluate
from contract.__main__ import _supabase_resources
from contract.config import DEFAULT_FILE, load_contract
from contract.discover import apply_edits, discover_supabase
from resources.canonical import CANONICAL_TABLES
from sandbox.stack import Sandbox
from sandbox.truth import compare_marts
from tests.conftest import SMALL_SANDBOX, point_env_at, run_job, step_failures
from tests.test_supabase_slice import assert_staged_equals_world, refresh_all

# Variants whose differences the canonical defaults cover: they must need no contract edit.
NO_EDIT = ("default", "no_updated_at", "keys", "extra_columns")
EDITS = {
    "renamed": {
        "supabase.main.landing_leads": {"columns": {"utm_source": "source",
                                                     "utm_campaign": "campaign"}},
    },
    "like_rules": {
        "supabase.traffic.targetologist_utm_rules": {"columns": {"match_type": {"value": "like"}}},
    },
}  # fmt: skip


@pytest.fixture
def variant_env(request, monkeypatch, warehouse, pg_server, tmp_path: Path):
    variant = request.param
    with Sandbox(pg_server, prefix=f"v_{variant}", variant=variant, **SMALL_SANDBOX) as sandbox:
        point_env_at(monkeypatch, warehouse, sandbox)
        contract = tmp_path / "contract.yaml"
        contract.write_text(DEFAULT_FILE.read_text())
        monkeypatch.setenv("CONTRACT_FILE", str(contract))
        yield variant, sandbox, contract


def discover_and_apply(contract: Path):
    found = discover_supabase(_supabase_resources(), load_contract(contract))
    assert found.problems == []
    contract.write_text(apply_edits(contract.read_text(), found.edits, {}))
    return found


@pytest.mark.parametrize("variant_env", [*NO_EDIT, *EDITS], indirect=True)
def test_given_a_schema_variant_when_discovered_and_run_then_marts_equal_ground_truth(
    variant_env, warehouse, dagster_instance
):
    variant, sandbox, contract = variant_env
    found = discover_and_apply(contract)
    assert found.edits == EDITS.get(variant, {})
    refresh_all(dagster_instance)
    assert_staged_equals_world(warehouse, sandbox)
    assert compare_marts(warehouse, sandbox.world) == []
    sandbox.advance(20)
    refresh_all(dagster_instance, restate=True)
    assert_staged_equals_world(warehouse, sandbox)
    assert compare_marts(warehouse, sandbox.world) == []


@pytest.mark.parametrize("variant_env", ["renamed"], indirect=True)
def test_given_a_rename_without_mapping_then_drift_check_names_the_column(
    variant_env, warehouse, dagster_instance
):
    _, _, _ = variant_env
    assert run_job(dagster_instance, "refresh_supabase_main").success  # the drift: Main's
    landing = next(t for t in CANONICAL_TABLES if t.name == "landing_leads")
    result = evaluate(warehouse, landing)
    assert not result.passed
    assert "canonical column utm_source has no source column" in (result.description or "")


@pytest.mark.parametrize("variant_env", ["default"], indirect=True)
def test_given_a_column_added_then_dropped_then_mirror_evolves_and_drift_warns(
    variant_env, warehouse, dagster_instance
):
    _, sandbox, _ = variant_env
    tracking = next(t for t in CANONICAL_TABLES if t.name == "all_sales_tracking")

    def refresh_traffic() -> None:  # the mirror and the drift check are the Traffic project's
        result = run_job(dagster_instance, "refresh_supabase_traffic")
        assert result.success, step_failures(result)

    refresh_traffic()
    sandbox.alter_source("traffic", "all_sales_tracking", add={"coupon": "text"})
    sandbox.advance(5)
    refresh_traffic()
    raw = warehouse.fetch_all(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'raw_supabase_traffic' AND table_name = 'all_sales_tracking'"
    )
    assert ("coupon",) in raw
    assert evaluate(warehouse, tracking).passed  # a new column is evolution, not drift
    sandbox.alter_source("traffic", "all_sales_tracking", drop=["coupon", "utm_medium"])
    sandbox.advance(5)
    refresh_traffic()
    result = evaluate(warehouse, tracking)
    assert not result.passed
    assert "column coupon (text) is no longer served" in (result.description or "")
    assert "column utm_medium (text) is no longer served" in (result.description or "")
    assert "canonical column utm_medium has no source column" in (result.description or "")
    assert warehouse.accept_served_schemas(["all_sales_tracking"]) == ["all_sales_tracking"]
    assert "no longer served" not in (evaluate(warehouse, tracking).description or "")
    # the rows served before the drop keep their values; none was lost or duplicated
    counts = warehouse.fetch_all(
        "SELECT count(*), count(DISTINCT id), count(utm_medium)"
        " FROM raw_supabase_traffic.all_sales_tracking WHERE _deleted_at IS NULL"
    )[0]
    world_rows = sandbox.world.supabase["traffic"]["all_sales_tracking"].rows
    assert counts[0] == counts[1] == len(world_rows)
    assert counts[2] > 0


@pytest.mark.parametrize("variant_env", ["keys"], indirect=True)
@pytest.mark.parametrize("key", ["secret", "publishable"])
def test_given_new_api_keys_when_run_then_marts_equal_ground_truth(
    variant_env, key, monkeypatch, warehouse, dagster_instance
):
    """sb_secret_ keys read the schema; sb_publishable_ ones may not (403), so the raw
    mirror's shape is inferred from the served rows and the staging views still type them."""
    _, sandbox, _ = variant_env
    for project in ("main", "tripwire", "traffic"):
        prefix = f"SUPABASE_{project.upper()}"
        monkeypatch.delenv(f"{prefix}_SERVICE_ROLE_KEY")
        monkeypatch.delenv(f"{prefix}_ANON_KEY")
        monkeypatch.setenv(f"{prefix}_{key.upper()}_KEY", sandbox.keys[project][key])
    refresh_all(dagster_instance)
    assert_staged_equals_world(warehouse, sandbox)
    assert compare_marts(warehouse, sandbox.world) == []
    inferred = warehouse.fetch_all("SELECT bool_and(inferred) FROM ops.source_schemas")[0][0]
    assert inferred is (key == "publishable")


@pytest.mark.parametrize("variant_env", ["default"], indirect=True)
def test_given_null_cursor_timestamps_then_those_rows_load_and_stay_once(
    variant_env, warehouse, dagster_instance
):
    """A real table's updated_at is often nullable (set by a trigger on update only): rows
    without one sort last in the keyset, load on the first read and on every incremental one,
    and are never duplicated."""
    _, sandbox, _ = variant_env
    with psycopg.connect(sandbox.dsn("main"), autocommit=True) as conn:
        conn.execute("ALTER TABLE landing_leads ALTER COLUMN updated_at DROP NOT NULL")
        nulled = conn.execute(
            "UPDATE landing_leads SET updated_at = NULL WHERE id % 7 = 0 RETURNING id"
        ).fetchall()
    sandbox.postgrest["main"].cache.invalidate()
    assert nulled
    for _ in range(2):
        assert run_job(dagster_instance, "refresh_supabase_main").success
        live = sandbox.world.supabase["main"]["landing_leads"].rows
        counts = warehouse.fetch_all(
            "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE updated_at IS NULL)"
            " FROM raw_supabase_main.landing_leads WHERE _deleted_at IS NULL"
        )[0]
        assert counts == (len(live), len(live), len(nulled))
