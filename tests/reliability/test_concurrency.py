"""Runs started together never load one source twice at once, never double-count, never fail on
each other.

The run queue: the project's instance (instance/dagster.yaml) given two hourly ticks' runs of
every source at once and a Facebook backfill launched from the UI's partition picker (tagged with
its source as every job's runs are) starts one run per source and holds the others queued; the
queue's daemon iteration is called directly, the runs are a stand-in job held in its step
(tests/reliability/run_queue_jobs.py), real processes of the default run launcher.

The loads: `make run`-style runs in processes of their own, started together on an empty
warehouse: two AmoCRM runs, and `python -m commands.backfill facebook` beside the hourly Facebook
run. Every process succeeds, AmoCRM's whole history is read once, and the raw tables equal the
ground truth exactly (nothing twice, nothing missing). `make soak` starts every source's run
twice at once (ten processes, and the backfill) and compares the marts too. A small world and
a Dagster database of the module's own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import dagster as dg
import pytest
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import PythonFileTarget

from assets.jobs import SOURCES, source_job_name, source_run_tags
from sandbox.truth import compare_amocrm, compare_facebook, compare_marts
from tests.conftest import ROOT, own_dagster_instance, run
from tests.reliability.harness import OwnWorld, fingerprint, own_world
from tests.reliability.test_run_monitoring import JOBS, dequeue, submit

Status = dg.DagsterRunStatus


# The queue decides; what a launched run then does is not the question here, so the launcher
# only records the runs it is given (Dagster's own test launcher) instead of starting processes.
RECORDING_LAUNCHER = """
run_launcher:
  module: dagster._core.test_utils
  class: MockedRunLauncher
"""


@pytest.fixture(scope="module")
def together(
    pg_server: str, warehouse_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OwnWorld, dg.DagsterInstance, Path]]:
    home = tmp_path_factory.mktemp("together_home")
    with own_world(pg_server, warehouse_template, "together") as world:
        with own_dagster_instance(pg_server, home, world.env, "dagster_together") as instance:
            yield world, instance, home


def test_given_two_ticks_and_a_backfill_queued_then_one_run_per_source_starts(
    together: tuple[OwnWorld, dg.DagsterInstance, Path], tmp_path: Path
) -> None:
    _, instance, home = together
    (tmp_path / "dagster.yaml").write_text((home / "dagster.yaml").read_text() + RECORDING_LAUNCHER)
    target = PythonFileTarget(str(JOBS), "defs", str(JOBS.parent), "run_queue_jobs")
    with dg.DagsterInstance.from_config(str(tmp_path)) as queue:
        with WorkspaceProcessContext(queue, target) as workspace:
            runs = [submit(workspace, source_run_tags(s)) for s in SOURCES * 2]
            backfill = submit(workspace, {"source": "facebook", "dagster/backfill": "ui"})
            dequeue(workspace)
            status = {r: queue.get_run_by_id(r).status for r in [*runs, backfill]}  # type: ignore[union-attr]
    launched, second_tick = runs[: len(SOURCES)], runs[len(SOURCES) :]
    assert [status[r] for r in launched] == [Status.STARTING] * len(SOURCES), status
    assert [status[r] for r in second_tick] == [Status.QUEUED] * len(SOURCES)
    assert status[backfill] == Status.QUEUED  # behind the hourly Facebook run


def start(args: list[str], home: Path) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def backfill_args(world: OwnWorld) -> list[str]:
    """`python -m commands.backfill`'s arguments: Facebook's days from the world's first."""
    first_day = min(day for _, day in world.sandbox.world.fb_insights).isoformat()
    return ["-m", "commands.backfill", "facebook", "--from", first_day]


def all_succeed(world: OwnWorld, home: Path, jobs: list[str]) -> None:
    """`jobs`' runs and the Facebook backfill, each in a process of its own, started together."""
    runner = ["-m", "tests.reliability.crash_runner"]
    processes = [start([*runner, job], home) for job in jobs]
    processes.append(start(backfill_args(world), home))
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * len(processes), outputs


def loaded_once_and_exact(world: OwnWorld, sources: tuple[str, ...]) -> None:
    lead_reads = [
        int(found[1])
        for r in world.sandbox.servers["amocrm"].requests
        if r.path == "/api/v4/leads"
        and (found := re.search(r"filter\[updated_at\]\[from\]=(\d+)", unquote(r.query)))
    ]
    assert lead_reads.count(0) == 1, lead_reads  # the whole history read once, not twice
    assert compare_amocrm(world.warehouse, world.sandbox.world) == []
    assert compare_facebook(world.warehouse, world.sandbox.world) == []
    for source in sources:
        for table, (rows, keys, _) in fingerprint(world, source).items():
            assert rows == keys, f"raw_{source}.{table}: {rows - keys} keys twice"


def test_given_two_amocrm_runs_and_a_backfill_beside_the_hourly_run_then_loaded_once_exactly(
    together: tuple[OwnWorld, dg.DagsterInstance, Path],
) -> None:
    world, _, home = together
    all_succeed(world, home, ["refresh_amocrm", "refresh_amocrm", "refresh_facebook"])
    loaded_once_and_exact(world, ("amocrm", "facebook"))


@pytest.mark.soak
def test_soak_given_every_source_twice_at_once_then_each_loaded_once_and_marts_exact(
    pg_server: str, warehouse_template: str, tmp_path: Path
) -> None:
    with own_world(pg_server, warehouse_template, "together_all") as world:
        with own_dagster_instance(pg_server, tmp_path, world.env, "dagster_all") as instance:
            all_succeed(world, tmp_path, [source_job_name(s) for s in SOURCES * 2])
            loaded_once_and_exact(world, SOURCES)
            run(instance, "rebuild_models")
            assert compare_marts(world.warehouse, world.sandbox.world) == []
