"""`make run`'s one run for every source (`refresh_sources`), on its edges: a run that fails
before any step, and which source each check step counts for."""

import dagster as dg

from assets.jobs import SOURCES, sources_job
from assets.sources import SOURCE_ASSETS
from sandbox.server import free_port
from tests.conftest import point_env_at


def test_given_the_sources_run_then_each_step_counts_for_the_source_of_what_it_loads_or_checks():
    from commands.runs import source_steps
    from definitions import defs

    steps = source_steps()
    owner = {step: source for source, names in steps.items() for step in names}
    assert sum(map(len, steps.values())) == len(owner)  # no step counts for two sources
    job_steps = {node.name for node in defs.resolve_job_def(sources_job.name).nodes}
    assert set(owner) == job_steps
    source_of = {key: source for source, keys in SOURCE_ASSETS.items() for key in keys}
    checked = [d for d in defs.asset_checks or () if isinstance(d, dg.AssetsDefinition)]
    raw_checks = [d for d in checked if any(k.asset_key in source_of for k in d.check_keys)]
    assert raw_checks
    for definition in raw_checks:
        sources = {source_of[key.asset_key] for key in definition.check_keys}
        assert owner[definition.node_def.name] == sources.pop() and not sources


def test_given_a_run_that_fails_before_any_step_then_every_source_is_reported_failed(
    monkeypatch, warehouse, shared_sandbox, dagster_instance, capfd
):
    from commands.runs import run_all

    point_env_at(monkeypatch, warehouse, shared_sandbox)
    # nothing listens there: the warehouse resource's start-up fails, so no step starts
    monkeypatch.setenv("WAREHOUSE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    outcome = run_all(dagster_instance, models=False)
    lines = [line for line in capfd.readouterr().out.splitlines() if line.strip()]
    assert outcome == {f"refresh_{source}": False for source in SOURCES}
    assert len(lines) == len(SOURCES), lines
    for source, line in zip(SOURCES, lines, strict=True):
        assert source in line and "FAILED" in line, line
        assert "the run failed before any step (see `make ui`)" in line, line
