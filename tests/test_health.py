"""The health probe and the watchdog against a real `dagster-daemon run` (the process `make ui`'s
`dagster dev` starts, on the project's workspace and dagster.yaml) with its storage in its own
PostgreSQL database, the warehouse's `marts.source_freshness`, and the sandbox's Telegram simulator.

Dagster's daemons post a heartbeat every 30 s, so the heartbeat bound cannot be made a few seconds
without false alarms while the daemon runs; the tests instead ask the probe about a later `now`
(what the clock will say once the bound has passed) and, for the CLI, set HEALTH_HEARTBEAT_SECONDS
to 1 s only after the daemon is gone. A run left STARTED by a killed process is made for real: a
process executing a job is killed with SIGKILL mid-step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
import yaml

from assets.sources import SOURCES
from commands import diagnose
from health.probe import (
    DEFAULT_HEARTBEAT_BOUND,
    NO_INSTANCE,
    RUN_BOUND_FLOOR,
    HealthReport,
    probe,
    redact,
)
from health.watchdog import exclusive, watch
from resources import embedded_pg
from resources.environment import install_instance_config
from resources.settings import SOURCE_STALE_WARNING
from resources.telegram import TelegramResource
from resources.warehouse import WarehouseResource
from sandbox.stack import Sandbox
from tests.conftest import ROOT, point_env_at

BIN = Path(sys.executable).parent
BOUND = DEFAULT_HEARTBEAT_BOUND
# a process that starts a run of a job shaped like refresh_amocrm and hangs in its step
HANGING_RUN = """
import time
import dagster as dg

@dg.op
def load_leads() -> None:
    time.sleep(600)

@dg.job(name="refresh_amocrm", tags={"source": "amocrm"})
def refresh_amocrm() -> None:
    load_leads()

with dg.DagsterInstance.get() as instance:
    refresh_amocrm.execute_in_process(instance=instance)
"""


@pytest.fixture
def home(pg_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A DAGSTER_HOME with the project's dagster.yaml over a Dagster database of this test's own
    (no earlier test's runs or heartbeats)."""
    embedded_pg.drop_database(pg_server, "dagster_health")
    embedded_pg.create_database(pg_server, "dagster_health")
    url = embedded_pg.database_uri(pg_server, "dagster_health")
    monkeypatch.setenv("DAGSTER_PG_URL", embedded_pg.sqlalchemy_uri(url, "psycopg2"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("HEALTH_STATE_FILE", str(tmp_path / "watchdog.json"))
    install_instance_config(tmp_path)
    yield tmp_path
    embedded_pg.drop_database(pg_server, "dagster_health")


@pytest.fixture
def instance(home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


@pytest.fixture
def sandbox_env(
    monkeypatch: pytest.MonkeyPatch, warehouse: WarehouseResource, shared_sandbox: Sandbox
) -> Sandbox:
    point_env_at(monkeypatch, warehouse, shared_sandbox)
    return shared_sandbox


def given_every_source_loaded_just_now(warehouse: WarehouseResource) -> None:
    for source in SOURCES:
        warehouse.record_attempt(source, "leads")
    warehouse.run_model("marts.source_freshness")


class Daemon:
    """`dagster-daemon run` in its own process group; `kill()` is SIGKILL, as an OOM kill is."""

    def __init__(self, instance: dg.DagsterInstance, log: Path) -> None:
        self.instance = instance
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> float:
        """Start it and wait for a fresh heartbeat from every required daemon; return seconds."""
        # The alert sensor inside it must not reach the simulator: the messages counted below
        # are the watchdog's alone.
        env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
        started = time.time()
        self.process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
        )
        required = set(self.instance.get_required_daemon_types())
        while time.time() - started < timeout:
            beats = self.instance.get_daemon_heartbeats()
            if all(t in beats and beats[t].timestamp >= started for t in required):
                return time.time() - started
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"no heartbeats within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # the daemon and its code server
            except ProcessLookupError:
                pass
            self.process.wait()
            self.process = None


@pytest.fixture
def daemon(instance: dg.DagsterInstance, tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(instance, tmp_path / "daemon.log")
    yield d
    d.kill()


def test_given_daemon_killed_when_bound_passes_then_unhealthy_one_alert_then_one_recovery(
    instance: dg.DagsterInstance,
    warehouse: WarehouseResource,
    sandbox_env: Sandbox,
    daemon: Daemon,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    given_every_source_loaded_just_now(warehouse)
    telegram, messages = TelegramResource(**TelegramResource.bound()), sandbox_env.telegram.messages
    state, before = home / "watchdog.json", len(messages)

    daemon.start()
    running = probe(instance, warehouse.url)
    assert running.healthy, running.problems
    assert watch(running, state, telegram).message is None  # nothing to recover from

    daemon.kill()
    killed_at = datetime.now(UTC)
    # still inside the bound: not yet an alarm
    assert probe(instance, warehouse.url, now=killed_at + BOUND / 2).healthy
    dead = probe(instance, warehouse.url, now=killed_at + BOUND + timedelta(seconds=1))
    assert not dead.healthy and dead.exit_code == 1
    assert len(dead.problems) == 1, dead.problems
    assert dead.problems[0].startswith("Dagster daemon: no heartbeat from any of its daemons for")
    assert "bound 2 min" in dead.problems[0]
    first = watch(dead, state, telegram)
    assert first.message and len(messages) == before + 1
    assert "UNHEALTHY" in messages[-1]["text"] and "Dagster daemon" in messages[-1]["text"]
    # a later run (the problem's age now reads differently) sends nothing
    later = probe(instance, warehouse.url, now=killed_at + BOUND * 3)
    assert watch(later, state, telegram).message is None
    assert len(messages) == before + 1

    # `make health` (its command) says so in one line, exit 1: a 1 s bound, now the daemon is gone
    time.sleep(max(0.0, 1.5 - (datetime.now(UTC) - killed_at).total_seconds()))
    cli = subprocess.run(
        [sys.executable, "-m", "health"],
        cwd=ROOT,
        env={**os.environ, "HEALTH_HEARTBEAT_SECONDS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = cli.stdout.strip().splitlines()
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert len(lines) == 1 and lines[0].startswith("Dagster daemon: no heartbeat"), lines
    assert os.environ["TELEGRAM_BOT_TOKEN"] not in cli.stdout + cli.stderr
    # the diagnostics' short health object is the same probe (in-process: a second interpreter
    # start would cost seconds)
    monkeypatch.setenv("HEALTH_HEARTBEAT_SECONDS", "1")
    monkeypatch.setattr(sys, "argv", ["python -m commands.diagnose", "--health"])
    capsys.readouterr()
    assert diagnose.main() == 1
    health = json.loads(capsys.readouterr().out)
    monkeypatch.delenv("HEALTH_HEARTBEAT_SECONDS")
    assert health["status"] == "error" and len(health["problems"]) == 1
    assert health["problems"][0].startswith("Dagster daemon: no heartbeat from any of its daemons")

    daemon.start()
    back = probe(instance, warehouse.url)
    assert back.healthy, back.problems
    assert watch(back, state, telegram).message is not None
    assert len(messages) == before + 2 and messages[-1]["text"].startswith("✅")
    assert watch(probe(instance, warehouse.url), state, telegram).message is None
    assert len(messages) == before + 2
    assert all(os.environ["TELEGRAM_BOT_TOKEN"] not in m["text"] for m in messages[before:])
    # what a person watching the sandbox sees
    shown = httpx.get(f"{os.environ['TELEGRAM_API_URL']}/messages").json()
    assert [m["text"] for m in shown[before:]] == [first.message, messages[-1]["text"]]


def test_given_run_process_killed_when_probed_later_then_run_named(
    instance: dg.DagsterInstance, warehouse: WarehouseResource, home: Path, tmp_path: Path
) -> None:
    given_every_source_loaded_just_now(warehouse)
    log = (tmp_path / "run.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-c", HANGING_RUN], env=dict(os.environ), stdout=log, stderr=log
    )
    try:
        deadline = time.time() + 90
        started: list[dg.RunRecord] = []
        while not started and time.time() < deadline:
            assert worker.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            started = instance.get_run_records(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
            )
            time.sleep(0.2)
        assert started, "the run never started"
    finally:
        worker.kill()
        worker.wait()
    run_id = started[0].dagster_run.run_id
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED  # left behind

    # within its bound (no successful run to learn from: the floor × the factor) it is not stuck
    assert not any(run_id in p for p in probe(instance, warehouse.url).problems)
    later = datetime.now(UTC) + RUN_BOUND_FLOOR * 3 + timedelta(minutes=1)
    lines = [p for p in probe(instance, warehouse.url, now=later).problems if run_id in p]
    assert len(lines) == 1, lines
    assert f"Run {run_id} (refresh_amocrm, source amocrm): STARTED for 31 min" in lines[0]


def test_given_no_instance_and_sources_quiet_then_each_problem_named_without_raising(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    given_every_source_loaded_just_now(warehouse)
    warehouse.record_attempt("amocrm", "leads", error="AmoCRM: 402 Payment Required")
    warehouse.run_model("marts.source_freshness")
    later = datetime.now(UTC) + SOURCE_STALE_WARNING + timedelta(hours=1)

    report = probe(None, warehouse.url, now=later)

    assert not report.healthy and report.exit_code == 2 and report.problems[0] == NO_INSTANCE
    sources = {p.split(":")[0]: p for p in report.problems[1:]}
    assert set(sources) == {f"Source {s}" for s in SOURCES}
    assert (
        "no successful load for 3 h (stale after 2 h, error after 6 h)" in sources["Source amocrm"]
    )
    assert "failed: AmoCRM: 402 Payment Required" in sources["Source amocrm"]
    assert report.as_dict()["status"] == "error"
    unreachable = probe(None, "postgresql://nobody@/nowhere?host=/nonexistent")
    assert any(p.startswith("Warehouse: cannot read it") for p in unreachable.problems)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:secret-token")
    assert redact("refused for bot123456:secret-token") == "refused for bot***"


def test_deploy_files_load_and_run_the_watchdog_and_probes() -> None:
    """What can be checked without a cluster or a systemd host: every manifest parses, the
    CronJob and the timer's service run the watchdog, the daemon and webserver have probes.
    (Validated once by hand against the Kubernetes 1.37 schemas with `kubernetes-validate
    --strict`, and the rendered units with `systemd-analyze verify`.)"""
    deploy = ROOT / "deploy"
    docs = {
        path.name: [d for d in yaml.safe_load_all(path.read_text()) if d]
        for path in (deploy / "kubernetes").glob("*.yaml")
    }
    kinds = {d["kind"]: d for manifests in docs.values() for d in manifests}
    cron = kinds["CronJob"]["spec"]
    container = cron["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-3:] == ["-m", "health", "watch"]
    assert {"name": "HEALTH_STATE_FILE", "value": "/state/health_watchdog.json"} in container["env"]
    for name in ("dagster-daemon.yaml", "dagster-webserver.yaml"):
        pod = docs[name][0]["spec"]["template"]["spec"]["containers"][0]
        assert "livenessProbe" in pod and "startupProbe" in pod, name
    service = (deploy / "systemd" / "traffic-warehouse-watchdog.service").read_text()
    assert "ExecStart=@REPO@/.venv/bin/python -m health watch" in service
    assert "-m health watch" in (deploy / "cron" / "traffic-warehouse-watchdog.cron").read_text()


def test_given_a_sequence_of_states_then_the_watchdog_announces_each_change_once(
    tmp_path: Path,
) -> None:
    """The dedup rule on its own (a list stands in for Telegram): a new problem is announced, a
    problem's changing age or a resolved one is not, recovery once; two watchdogs exclude."""

    class Sent(list):
        def send(self, text: str) -> None:
            self.append(text)

    def report(*problems: tuple[str, str]) -> HealthReport:
        return HealthReport(
            healthy=not problems,
            problems=[text for _, text in problems],
            checked_at=datetime.now(UTC),
            keys=[key for key, _ in problems],
        )

    daemon, stale = ("daemon", "Dagster daemon: no heartbeat"), ("source:facebook", "Source …")
    sent, path = Sent(), tmp_path / "state" / "watchdog.json"
    states = [
        (report(), 0),  # first run, healthy: nothing to recover from
        (report(daemon), 1),
        (report(("daemon", "Dagster daemon: no heartbeat, later")), 1),
        (report(daemon, stale), 2),  # a new problem while unhealthy
        (report(stale), 2),
        (report(), 3),  # recovered
        (report(), 3),
    ]
    for state, expected in states:
        watch(state, path, sent)
        assert len(sent) == expected, (state.keys, sent)
    assert sent[1].startswith("🛑") and "🆕 Source …" in sent[1] and "• Dagster" in sent[1]
    assert sent[2].startswith("✅")
    with exclusive(path) as first, exclusive(path) as second:
        assert first and not second
