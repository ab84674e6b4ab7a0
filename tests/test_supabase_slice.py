"""End to end through Dagster: the real Supabase client against the sandbox's PostgREST servers,
the raw assets, `core.leads` and `marts.leads_total`, on real PostgreSQL; every table and mart is
compared with the sandbox's ground truth, after a first run and after time moves on (the tests
that move it on in a SMALL_SANDBOX world of their own)."""

from __future__ import annotations

import pytest
from psycopg import sql

from assets.jobs import SOURCES, source_job_name
from resources.canonical import CANONICAL_TABLES as SUPABASE_TABLES
from sandbox.stack import Sandbox
from sandbox.truth import compare_marts
from tests.conftest import point_env_at, run_job, step_failures


def refresh_all(instance, restate: bool = False) -> None:
    """The hourly runs of every source (and the daily Facebook restatement), then the models."""
    jobs = [source_job_name(s) for s in SOURCES] + (["facebook_restatement"] if restate else [])
    for job in jobs:
        result = run_job(instance, job)
        assert result.success, step_failures(result)
    result = run_job(instance, "rebuild_models")
    assert result.success, step_failures(result)


def staged_rows(warehouse, table) -> dict[str, dict]:
    """The canonical rows core reads (the staging view), by key."""
    names = [c.name for c in table.columns]
    rows = warehouse.fetch_all(
        sql.SQL("SELECT id, {} FROM {} WHERE _deleted_at IS NULL").format(
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.Identifier(table.staging_schema, table.name),
        )
    )
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}


def expected_rows(sandbox: Sandbox, table) -> dict[str, dict]:
    """The world's rows as the staging view must show them: keys as the variant stores them."""
    shapes = sandbox.shapes[table.project]
    shape = shapes[table.name]
    out = {}
    for world_key, row in sandbox.world.supabase[table.project][table.name].rows.items():
        values = {c.name: row[c.name] for c in table.columns}
        for column in shape.columns:
            if column.references and column.name in values:
                target = shapes[column.references.split(".")[0]]
                values[column.name] = str(target.stored_key(values[column.name]))
        if table.name == "targetologist_utm_rules" and "match_type" not in shape.names():
            # LIKE patterns stand for the world's match types: the marts prove them equal
            values.pop("match_type"), values.pop("pattern")
        out[str(shape.stored_key(world_key))] = values
    return out


def assert_staged_equals_world(warehouse, sandbox: Sandbox) -> None:
    for table in SUPABASE_TABLES:
        expected, got = expected_rows(sandbox, table), staged_rows(warehouse, table)
        assert got.keys() == expected.keys(), table.name
        for key, row in expected.items():
            assert {c: got[key][c] for c in row} == row, (table.name, key)


@pytest.fixture
def env(monkeypatch, warehouse, small_sandbox):
    point_env_at(monkeypatch, warehouse, small_sandbox)
    return warehouse, small_sandbox


def test_given_sandbox_when_hourly_refresh_then_every_table_and_mart_equals_ground_truth(loaded):
    warehouse, sandbox = loaded  # one hourly refresh of every source, then the models
    assert_staged_equals_world(warehouse, sandbox)
    assert compare_marts(warehouse, sandbox.world) == []


def test_given_time_moves_on_when_refreshed_again_then_still_equal_and_reads_are_incremental(
    env, dagster_instance
):
    warehouse, sandbox = env
    refresh_all(dagster_instance)
    sandbox.advance(30)
    server = sandbox.servers["supabase_main"]
    server.requests.clear()
    refresh_all(dagster_instance, restate=True)
    assert_staged_equals_world(warehouse, sandbox)
    assert compare_marts(warehouse, sandbox.world) == []
    deleted = warehouse.fetch_all(
        "SELECT count(*) FROM raw_supabase_main.landing_leads WHERE _deleted_at IS NOT NULL"
    )[0][0]
    assert deleted == len(
        set(sandbox.world.supabase["main"]["landing_leads"].rows)
        ^ {r[0] for r in warehouse.fetch_all("SELECT id FROM raw_supabase_main.landing_leads")}
    )
    incremental = [r for r in server.requests if "select=%2A" in r.query or "select=*" in r.query]
    assert incremental and all("updated_at" in r.query or "id=gt" in r.query for r in incremental)


def test_given_a_rerun_with_nothing_new_then_nothing_changes(env, dagster_instance):
    warehouse, _ = env
    refresh_all(dagster_instance)
    before = warehouse.fetch_all("SELECT * FROM marts.leads_total ORDER BY day")
    refresh_all(dagster_instance)
    log = warehouse.fetch_all(
        "SELECT sum(rows_inserted), sum(rows_updated) FROM ops.load_log"
        " WHERE id > (SELECT max(id) - %s FROM ops.load_log)",
        (len(SUPABASE_TABLES),),
    )
    assert log == [(0, 0)]
    assert warehouse.fetch_all("SELECT * FROM marts.leads_total ORDER BY day") == before
