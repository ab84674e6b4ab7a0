"""Crash consistency: a refresh SIGKILLed in every phase (COPY, merge, cursor write, model build,
token refresh), and after each kill the next run restores the exact state of a clean load (raw
tables by key and content, the marts equal to the ground truth), AmoCRM's OAuth pair still
works, no advisory lock is left held, and run monitoring fails the killed runs so none stays
STARTED.

The refresh runs in a process of its own (tests/reliability/crash_runner.py) against a small
world of the module's own and a Dagster database of its own. Each kill waits for a moment the
test can see: a page request the sandbox holds (COPY: the staging COPY is open, earlier pages
written), a trigger that sleeps inside the statement of the phase and shows in
pg_stat_activity (merge, cursor write, model build; it sleeps for the runner's connections
only, told apart by PGAPPNAME), AmoCRM's new pair stored (token refresh). `make soak` adds many
kills at seeded random moments of whole runs and reports kills survived and rows lost or
duplicated at the end of the session."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import MAX_RUNTIME_SECONDS_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import PythonFileTarget
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from psycopg import sql

from assets.jobs import SOURCES
from sandbox.postgrest import WHOLE_ROWS_QUERY
from sandbox.truth import compare_amocrm, compare_marts
from tests.conftest import ROOT, own_dagster_instance
from tests.reliability.harness import (
    CRASHES,
    QUIET,
    OwnWorld,
    fingerprint,
    fingerprint_differences,
    own_world,
    rows_lost_and_duplicated,
    run_source,
)
from tests.reliability.test_run_monitoring import JOBS

APP = "crash-runner"  # the killed process's connections, by PGAPPNAME
# a run killed here stays STARTED until its max runtime: one second, so one monitoring pass ends it
KILLED_RUN_TAGS = {MAX_RUNTIME_SECONDS_TAG: "1"}
PAUSE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION ops.crash_pause() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('application_name') = '{APP}' THEN PERFORM pg_sleep(3); END IF;
  RETURN NULL;
END $$
"""


@dataclass
class CrashWorld:
    world: OwnWorld
    instance: dg.DagsterInstance
    home: Path
    baseline: dict[str, dict[str, tuple[int, int, str]]] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)  # the jobs of the runs killed

    def start(self, job: str) -> subprocess.Popen:
        env = {**os.environ, "DAGSTER_HOME": str(self.home), "PGAPPNAME": APP,
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        return subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.crash_runner", job,
             json.dumps(KILLED_RUN_TAGS), "--reload"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def runner_backends(self) -> int:
        rows = self.world.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", APP
        )
        return int(rows[0][0])

    def pausing(self) -> bool:
        rows = self.world.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND wait_event = 'PgSleep'",
            APP,
        )
        return rows[0][0] > 0

    def advisory_locks(self) -> int:
        rows = self.world.sql(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND d.datname = current_database()"
        )
        return int(rows[0][0])


@pytest.fixture(scope="module")
def crash(
    pg_server: str, warehouse_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CrashWorld]:
    home = tmp_path_factory.mktemp("crash_home")
    with own_world(pg_server, warehouse_template, "crash") as world:
        with own_dagster_instance(pg_server, home, world.env, "dagster_crash") as instance:
            crash = CrashWorld(world, instance, home)
            for source in SOURCES:  # every source: the marts are compared with the whole truth
                assert run_source(instance, source).success
                crash.baseline[source] = fingerprint(world, source)
            assert run_job(instance, "rebuild_models").success
            world.execute(PAUSE_FUNCTION)
            yield crash


def run_job(instance: dg.DagsterInstance, job: str) -> dg.ExecuteInProcessResult:
    from definitions import defs

    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET
    )


def pause_in(table: str) -> Callable[[CrashWorld], Callable[[], bool]]:
    """The phase's statement on `table` sleeps for the runner; the moment: it is sleeping."""
    schema, name = table.split(".")

    def arm(crash: CrashWorld) -> Callable[[], bool]:
        crash.world.execute(
            sql.SQL(
                "CREATE TRIGGER crash_pause BEFORE INSERT OR UPDATE ON {} FOR EACH STATEMENT"
                " EXECUTE FUNCTION ops.crash_pause()"
            ).format(sql.Identifier(schema, name))
        )
        return crash.pausing

    return arm


def held_page(crash: CrashWorld) -> Callable[[], bool]:
    """The second page of landing leads is held: the COPY into staging is open, page 1 in it."""
    faults = crash.world.sandbox.servers["supabase_main"].faults
    # pages only: a full read's count comes first
    pages = {"method": "GET", "query": WHOLE_ROWS_QUERY}
    faults.add(r"/rest/v1/landing_leads", **pages, times=1)  # the first page, as it is
    held = faults.add(r"/rest/v1/landing_leads", **pages, delay=30.0, times=1)
    crash.world.sandbox.postgrest["main"].max_rows = 10
    return lambda: held.times == 0


def pair_stored(crash: CrashWorld) -> Callable[[], bool]:
    """AmoCRM rotated the pair and the run stored it; killed before it used the new token."""
    crash.world.sandbox.amocrm.expire_access_tokens()
    before = refreshes(crash)
    return lambda: refreshes(crash) > before


def refreshes(crash: CrashWorld) -> int:
    return int(crash.world.sql("SELECT refreshes FROM ops.oauth_tokens")[0][0])


@dataclass(frozen=True)
class Phase:
    name: str
    job: str
    source: str | None  # whose raw tables the kill might have touched (None: the models')
    arm: Callable[[CrashWorld], Callable[[], bool]]

    def __str__(self) -> str:
        return self.name


PHASES = [
    Phase("COPY into staging", "refresh_supabase_main", "supabase_main", held_page),
    Phase("merge into raw", "refresh_supabase_main", "supabase_main",
          pause_in("raw_supabase_main.landing_leads")),
    Phase("cursor write", "refresh_amocrm", "amocrm", pause_in("ops.cursors")),
    Phase("model build", "full_rebuild_models", None, pause_in("core.leads")),
    Phase("token refresh", "refresh_amocrm", "amocrm", pair_stored),
]  # fmt: skip


def kill_at(crash: CrashWorld, job: str, moment: Callable[[], bool], settle: float = 0.0) -> bool:
    """Start `job` in its process, SIGKILL it once `moment()` holds; False if it ended first."""
    process = crash.start(job)
    deadline = time.monotonic() + 90
    while not moment():
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"{job}: the moment never came"
        time.sleep(0.02)
    time.sleep(settle)
    process.send_signal(signal.SIGKILL)
    process.wait()
    crash.killed.append(job)
    return True


def clean_up_after_kill(crash: CrashWorld) -> None:
    """What the kill left behind and the test put there: the runner's server sessions end (a
    statement in progress finishes, then PostgreSQL finds its client gone and rolls back), the
    hooks go."""
    deadline = time.monotonic() + 30
    while crash.runner_backends():
        assert time.monotonic() < deadline, "the killed run's sessions never ended"
        time.sleep(0.05)
    crash.world.execute("DO $$ DECLARE t record; BEGIN FOR t IN SELECT tgrelid::regclass AS rel"
                    " FROM pg_trigger WHERE tgname = 'crash_pause' LOOP EXECUTE format("
                    "'DROP TRIGGER crash_pause ON %s', t.rel); END LOOP; END $$")  # fmt: skip
    for server in crash.world.sandbox.servers.values():
        server.faults.clear()
    crash.world.sandbox.postgrest["main"].max_rows = crash.world.sandbox.max_rows


def next_run_restores(crash: CrashWorld, phase: Phase) -> list[str]:
    """The next run of the killed job (the models: the hourly incremental build) and what still
    differs from the clean state afterwards; the kill is recorded with it."""
    world = crash.world
    if phase.source is None:
        built = run_job(crash.instance, "rebuild_models").success
        problems = compare_marts(world.warehouse, world.sandbox.world)
        CRASHES.record(phase.name, problems + ([] if built else ["the next build failed"]))
        return CRASHES.kills[-1][1]
    result = run_source(crash.instance, phase.source)
    before, after = crash.baseline[phase.source], fingerprint(world, phase.source)
    problems = fingerprint_differences(before, after)
    if not result.success:
        problems.append(f"the next {phase.job} failed")
    if phase.source == "amocrm":
        problems += compare_amocrm(world.warehouse, world.sandbox.world)
        stored = world.sql("SELECT refresh_token FROM ops.oauth_tokens")
        if stored != [(world.sandbox.amocrm.refresh_token,)]:
            problems.append("ops.oauth_tokens does not hold AmoCRM's current refresh token")
    CRASHES.record(phase.name, problems, *rows_lost_and_duplicated(before, after))
    return problems


@pytest.mark.parametrize("phase", PHASES, ids=str)
def test_given_a_refresh_killed_in_a_phase_when_run_again_then_the_exact_clean_state(
    crash: CrashWorld, phase: Phase
) -> None:
    killed = kill_at(crash, phase.job, phase.arm(crash))
    clean_up_after_kill(crash)
    assert killed, f"{phase.job} finished before the {phase.name} moment"
    assert crash.advisory_locks() == 0
    assert next_run_restores(crash, phase) == []


def test_given_the_killed_runs_when_run_monitoring_passes_then_none_stays_started(
    crash: CrashWorld,
) -> None:
    if not crash.killed:  # the kills ran in another pytest-xdist worker: one of its own
        assert kill_at(crash, "refresh_supabase_main", held_page(crash))
        clean_up_after_kill(crash)
    started = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    assert len(crash.instance.get_run_records(started)) == len(crash.killed)
    time.sleep(1.0)  # past the killed runs' max runtime
    target = PythonFileTarget(str(JOBS), "defs", str(JOBS.parent), "run_queue_jobs")
    with WorkspaceProcessContext(crash.instance, target) as workspace:
        list(execute_run_monitoring_iteration(workspace, logging.getLogger("run_monitoring")))
    assert crash.instance.get_run_records(started) == []
    assert compare_marts(crash.world.warehouse, crash.world.sandbox.world) == []


SOAK_KILLS = 40
SOAK_JOBS = ("refresh_supabase_main", "refresh_amocrm", "refresh_facebook", "full_rebuild_models")


@pytest.mark.soak
def test_soak_given_kills_at_random_moments_then_every_next_run_restores_the_clean_state(
    crash: CrashWorld,
) -> None:
    rng = random.Random(15)
    sources = {f"refresh_{s}": s for s in ("supabase_main", "amocrm", "facebook")}
    for number in range(SOAK_KILLS):
        job = SOAK_JOBS[number % len(SOAK_JOBS)]
        started = time.monotonic()
        # a random instant of the run: its process start (imports) takes about 3 s here
        delay = rng.uniform(2.0, 8.0)
        killed = kill_at(crash, job, lambda t0=started, d=delay: time.monotonic() - t0 > d)
        clean_up_after_kill(crash)
        if not killed:
            CRASHES.ended_first += 1
            continue
        locks = crash.advisory_locks()
        phase = Phase(f"soak #{number}: {job} at {delay:.1f} s", job, sources.get(job), held_page)
        problems = next_run_restores(crash, phase)
        if locks:
            problems.append(f"{locks} advisory locks held after the kill")
    assert CRASHES.failed() == []
