"""A run whose process is SIGKILLed mid-step does not stay STARTED nor hold its source's slot in
the run queue: the project's instance (instance/dagster.yaml, over a Dagster database of this
test's own) has run monitoring on, never resumes, and every hourly source run carries a max
runtime. The run queue and run monitoring are Dagster's own daemon iterations, called directly
(as Dagster's tests do) instead of waiting out their intervals; runs are launched for real, by
the default run launcher through a code server, with a stand-in job (run_queue_jobs.py) that
loads in a second instead of the project's definitions."""

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psutil
import pytest
from dagster._cli.job import _create_run
from dagster._core.storage.tags import MAX_RUNTIME_SECONDS_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import PythonFileTarget
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from assets.jobs import HOURLY_MAX_RUNTIME, hourly_refresh, source_run_tags
from assets.sources import SOURCES
from tests.conftest import own_dagster_instance

JOBS = Path(__file__).with_name("run_queue_jobs.py")
Status = dg.DagsterRunStatus


@pytest.fixture
def instance(
    pg_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    with own_dagster_instance(pg_server, tmp_path, monkeypatch, "dagster_monitoring") as instance:
        yield instance


def submit(workspace: WorkspaceProcessContext, tags: dict[str, str]) -> str:
    """Queue a run of the stand-in refresh_amocrm, as the schedule or the UI does."""
    context = workspace.create_request_context()
    location = context.get_code_location("run_queue_jobs")
    repository = next(iter(location.get_repositories().values()))
    run = _create_run(
        instance=workspace.instance,
        code_location=location,
        remote_repo=repository,
        remote_job=repository.get_full_job("refresh_amocrm"),
        run_config={},
        tags=tags,
        op_selection=None,
        run_id=None,
    )
    return workspace.instance.submit_run(run.run_id, context).run_id


def dequeue(workspace: WorkspaceProcessContext) -> None:
    with QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon:
        list(daemon.run_iteration(workspace))


def wait_for(instance: dg.DagsterInstance, run_id: str, status: Status) -> None:
    deadline = time.monotonic() + 60
    while (run := instance.get_run_by_id(run_id)) and run.status != status:
        assert not run.is_finished and time.monotonic() < deadline, run.status
        time.sleep(0.1)


def wait_for_started(instance: dg.DagsterInstance, process: subprocess.Popen) -> str:
    """The id of the run `process` executes, once its step has started."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the held run's process ended"
        records = instance.get_run_records(dg.RunsFilter(statuses=[Status.STARTED]))
        if records:
            time.sleep(0.5)  # inside its step
            return records[0].dagster_run.run_id
        time.sleep(0.1)
    raise AssertionError("the held run never started")


def test_given_instance_yaml_then_run_monitoring_on_and_every_hourly_source_run_bounded(
    instance: dg.DagsterInstance,
) -> None:
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_resume_run_attempts == 0
    assert "MONITORING" in instance.get_required_daemon_types()  # the health probe watches it
    from definitions import defs

    limit = str(int(HOURLY_MAX_RUNTIME.total_seconds()))
    for source in SOURCES:
        assert defs.resolve_job_def(f"refresh_{source}").tags[MAX_RUNTIME_SECONDS_TAG] == limit
    context = dg.build_schedule_context(scheduled_execution_time=datetime.now(UTC))
    requests = hourly_refresh(context)
    assert [r.tags[MAX_RUNTIME_SECONDS_TAG] for r in requests] == [limit] * len(SOURCES)


def test_given_a_run_process_killed_mid_step_then_monitoring_fails_it_and_the_source_queue_moves(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    # a run as `make run` starts one, in a process of its own that no code server watches; its
    # max runtime cut to a second (the hourly runs' 45 min would be a long wait)
    tags = {**source_run_tags("amocrm"), "hold": "1", MAX_RUNTIME_SECONDS_TAG: "1"}
    before = set(psutil.Process().children())
    held_process = subprocess.Popen(
        [sys.executable, str(JOBS), json.dumps(tags)],
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = PythonFileTarget(str(JOBS), "defs", str(JOBS.parent), "run_queue_jobs")
    try:
        with WorkspaceProcessContext(instance, target) as workspace:  # loads while the run starts
            held = wait_for_started(instance, held_process)
            held_process.kill()  # SIGKILL, as an OOM kill or a lost node is
            held_process.wait()
            queued = submit(workspace, source_run_tags("amocrm"))
            dequeue(workspace)
            assert instance.get_run_by_id(held).status == Status.STARTED  # left by its process
            assert instance.get_run_by_id(queued).status == Status.QUEUED  # amocrm's slot: held

            # iterations until its second of runtime is over: one that comes sooner (the code
            # server already up when the run started) rightly leaves the run alone
            deadline = time.monotonic() + 15
            while instance.get_run_by_id(held).status == Status.STARTED:
                assert time.monotonic() < deadline, "monitoring never failed the killed run"
                list(execute_run_monitoring_iteration(workspace, logging.getLogger("monitoring")))
                time.sleep(0.2)
            assert instance.get_run_by_id(held).status == Status.FAILURE
            dequeue(workspace)
            wait_for(instance, queued, Status.SUCCESS)
    finally:
        # the held run, the code server and its run worker: this test's to end
        started = set(psutil.Process().children(recursive=True)) - before
        _, alive = psutil.wait_procs(started, timeout=2)
        for process in alive:
            process.kill()
