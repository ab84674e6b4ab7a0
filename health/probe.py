"""The health probe: is the Dagster daemon alive, is any run stuck, has every source loaded lately?

It reads Dagster's own storage (daemon heartbeats, run records) and the warehouse's
`marts.source_freshness`, and needs no daemon, webserver or code location to answer, so it can
run from a timer, a cron line, a Kubernetes probe or the dashboard API. Healthy means:

- every daemon the instance requires (scheduler, sensors, run queue, automation, ...) wrote a
  heartbeat within `HEALTH_HEARTBEAT_SECONDS` (default 120 s). Dagster's daemons post one every
  30 s; Dagster's own `all_daemons_healthy` tolerates 30 min (`controller.py`,
  DEFAULT_DAEMON_HEARTBEAT_TOLERANCE_SECONDS), far too long for an hourly schedule, so we keep
  Dagster's rule (a required daemon without a recent heartbeat, or whose heartbeat carries
  errors, is unhealthy) with our own bound: four missed heartbeats;
- no run has been QUEUED or STARTED for longer than `HEALTH_RUN_FACTOR` (default 3) times its
  source's usual duration (the median of its last successful runs), and never less than
  RUN_BOUND_FLOOR;
- every source succeeded within SOURCE_STALE_WARNING (resources/settings.py; the freshness
  policies' warn window), per `marts.source_freshness`.

Only `SELECT ... FROM marts.source_freshness` touches the warehouse: the dashboard API calls this
as `dashboard_reader`, which sees marts only. Nothing here imports `definitions`.
"""

from __future__ import annotations

import logging
import os
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
from dagster._core.storage.tags import MAX_RUNTIME_SECONDS_TAG

from resources import embedded_pg
from resources.errors import ConfigError
from resources.settings import SOURCE_STALE_ERROR, SOURCE_STALE_WARNING, env

DEFAULT_HEARTBEAT_BOUND = timedelta(minutes=2)
DEFAULT_RUN_FACTOR = 3.0
# a source without a successful run to learn from is given this as its usual duration
DEFAULT_USUAL_RUN = timedelta(minutes=10)
# a run is never called stuck sooner than this, however fast its source usually is
RUN_BOUND_FLOOR = timedelta(minutes=10)
# how many of a source's latest successful runs make its usual duration
USUAL_RUN_SAMPLE = 10
ACTIVE_STATUSES = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)
DAEMON_NAMES = {
    "SCHEDULER": "scheduler",
    "SENSOR": "sensors",
    "QUEUED_RUN_COORDINATOR": "run queue",
    "ASSET": "automation",
    "BACKFILL": "backfills",
    "FRESHNESS_DAEMON": "freshness",
    "MONITORING": "run monitoring",
    "EVENT_LOG_CONSUMER": "run retries",
}
START_DAEMON = "start it with `make ui` or the service (deploy/)"
NO_INSTANCE = "Dagster instance: not configured (set DAGSTER_HOME)"
MAX_DETAIL = 200
SECRET_SUFFIXES = ("_TOKEN", "_SECRET", "_KEY", "_PASSWORD")


@dataclass(frozen=True)
class Bounds:
    heartbeat: timedelta = DEFAULT_HEARTBEAT_BOUND
    run_factor: float = DEFAULT_RUN_FACTOR
    source_stale: timedelta = SOURCE_STALE_WARNING

    @classmethod
    def from_env(cls) -> Bounds:
        """HEALTH_HEARTBEAT_SECONDS and HEALTH_RUN_FACTOR; a bad value is a ConfigError."""
        return cls(
            heartbeat=timedelta(
                seconds=_positive(
                    "HEALTH_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_BOUND.total_seconds()
                )
            ),
            run_factor=_positive("HEALTH_RUN_FACTOR", DEFAULT_RUN_FACTOR),
        )


@dataclass(frozen=True)
class Problem:
    # stable across probes ("daemon", "run:<id>", "source:<name>"): what the watchdog dedupes on
    key: str
    text: str


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    problems: list[str]
    checked_at: datetime
    # the problems' stable keys, in the same order (the watchdog announces new keys only)
    keys: list[str] = field(default_factory=list)
    # a setting is missing or malformed: the CLI exits 2 instead of 1
    misconfigured: bool = False

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy else 2 if self.misconfigured else 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "status": "ok" if self.healthy else "error",
            "problems": list(self.problems),
            "checked_at": self.checked_at.isoformat(),
        }


def probe(
    instance: dg.DagsterInstance | None, warehouse_url: str, now: datetime | None = None
) -> HealthReport:
    """Check the daemon, the runs and the sources; never raises for a configuration problem.

    `now` (default: the clock) is when the answer is for: the tests pass a later time instead
    of waiting out a bound.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    problems: list[Problem] = []
    misconfigured = False
    try:
        bounds = Bounds.from_env()
    except ConfigError as exc:
        problems.append(Problem("config", exc.message))
        bounds, misconfigured = Bounds(), True
    if instance is None:
        problems.append(Problem("config:dagster_home", NO_INSTANCE))
        misconfigured = True
    else:
        for part in (daemon_problems, run_problems):
            problems += _guarded("dagster", "Dagster storage", part, instance, now, bounds)
    if not warehouse_url:
        text = "Warehouse: not configured (set WAREHOUSE_URL)"
        problems.append(Problem("config:warehouse_url", text))
        misconfigured = True
    else:
        problems += _guarded("warehouse", "Warehouse", source_problems, warehouse_url, now, bounds)
    unique = list({p.key: p for p in problems}.values())
    return HealthReport(
        healthy=not unique,
        problems=[redact(p.text) for p in unique],
        checked_at=now,
        keys=[p.key for p in unique],
        misconfigured=misconfigured,
    )


def daemon_problems(instance: dg.DagsterInstance, now: datetime, bounds: Bounds) -> list[Problem]:
    """Dagster's rule for a required daemon (a recent heartbeat without errors), our bound."""
    required = list(instance.get_required_daemon_types())
    heartbeats = instance.get_daemon_heartbeats()
    stale: dict[str, timedelta | None] = {}
    problems = []
    for daemon in required:
        beat = heartbeats.get(daemon)
        age = now - datetime.fromtimestamp(beat.timestamp, UTC) if beat else None
        if age is None or age > bounds.heartbeat:
            stale[daemon] = age
        elif beat and beat.errors:
            first = beat.errors[0]
            message = (first.message or "").strip().splitlines()[:1] or [first.cls_name or "error"]
            problems.append(
                Problem(
                    f"daemon-error:{daemon}",
                    f"Dagster daemon: its {_daemon_name(daemon)} daemon reports an "
                    f"error: {_short(message[0])}",
                )
            )
    if stale:
        ages = [a for a in stale.values() if a is not None]
        since = f"for {_duration(min(ages))}" if ages else "yet"
        names = ", ".join(_daemon_name(d) for d in stale)
        plural = "s" if len(stale) > 1 else ""
        source = (
            "any of its daemons"
            if len(stale) == len(required) > 1
            else f"its {names} daemon{plural}"
        )
        problems.insert(
            0,
            Problem(
                "daemon",
                f"Dagster daemon: no heartbeat from {source} {since} (bound "
                f"{_duration(bounds.heartbeat)}); {START_DAEMON}",
            ),
        )
    return problems


def run_problems(instance: dg.DagsterInstance, now: datetime, bounds: Bounds) -> list[Problem]:
    """Every queued or running run older than its source's usual duration × the factor."""
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=list(ACTIVE_STATUSES)))
    usual: dict[str, tuple[timedelta, bool]] = {}
    problems = []
    for record in records:
        run = record.dagster_run
        source = run.tags.get("source")
        key = source or run.job_name
        if key not in usual:
            usual[key] = usual_duration(instance, run.job_name, source)
        typical, learned = usual[key]
        limit = max(RUN_BOUND_FLOOR, typical * bounds.run_factor)
        # queued: since it was submitted; otherwise since its process started (when it did)
        queued = run.status == dg.DagsterRunStatus.QUEUED
        since = (
            datetime.fromtimestamp(record.start_time, UTC)
            if record.start_time and not queued
            else _aware(record.create_timestamp)
        )
        age = now - since
        if age <= limit:
            continue
        usual_text = "its usual" if learned else "an assumed (no successful run yet)"
        basis = f"{bounds.run_factor:g} × {usual_text} {_duration(typical)}"
        hint = (
            _gone_hint(run)
            if run.status != dg.DagsterRunStatus.QUEUED
            else "the run queue is not launching it (daemon down, or the source's slot is held)"
        )
        label = f"{run.job_name}, source {source}" if source else run.job_name
        problems.append(
            Problem(
                f"run:{run.run_id}",
                f"Run {run.run_id} ({label}): {run.status.value} for "
                f"{_duration(age)}, over its bound of {_duration(limit)} "
                f"({basis}); {hint}",
            )
        )
    return problems


def _gone_hint(run: dg.DagsterRun) -> str:
    """What ends a run whose process may be gone: run monitoring at its max runtime (the
    daemon's run monitoring must be running), else a person."""
    limit = run.tags.get(MAX_RUNTIME_SECONDS_TAG, "")
    by_monitoring = (
        f"run monitoring fails it once it passes its max runtime of "
        f"{_duration(timedelta(seconds=float(limit)))}, or "
        if limit.replace(".", "", 1).isdigit()
        else ""
    )
    return (
        f"its process may be gone: {by_monitoring}terminate it in the UI (Runs) so the "
        "source's queue moves"
    )


def usual_duration(
    instance: dg.DagsterInstance, job_name: str, source: str | None
) -> tuple[timedelta, bool]:
    """(median duration of the latest successful runs of this source, or job; learned or not)."""
    filters = (
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS], tags={"source": source})
        if source
        else dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS], job_name=job_name)
    )
    durations = [
        r.end_time - r.start_time
        for r in instance.get_run_records(filters=filters, limit=USUAL_RUN_SAMPLE)
        if r.start_time and r.end_time
    ]
    if not durations:
        return DEFAULT_USUAL_RUN, False
    return timedelta(seconds=statistics.median(durations)), True


def source_problems(warehouse_url: str, now: datetime, bounds: Bounds) -> list[Problem]:
    """Each source whose last success is older than its window (or that never succeeded)."""
    from assets.sources import SOURCES  # the reader learns the source names from the assets

    with psycopg.connect(_libpq(warehouse_url), connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT source, last_success_at, last_attempt_at, status, error"
            " FROM marts.source_freshness"
        ).fetchall()
    freshness = {row[0]: row[1:] for row in rows}
    problems = []
    for source in sorted(set(SOURCES) | set(freshness)):
        last_success, last_attempt, status, error = freshness.get(source, (None, None, None, None))
        if last_success is not None and now - last_success <= bounds.source_stale:
            continue
        window = (
            f"stale after {_duration(bounds.source_stale)}, "
            f"error after {_duration(SOURCE_STALE_ERROR)}"
        )
        head = (
            f"no successful load for {_duration(now - last_success)} ({window})"
            if last_success is not None
            else f"never loaded successfully ({window})"
        )
        if last_attempt is None:
            tail = "no attempt recorded: is its schedule running?"
        else:
            outcome = f"failed: {_short(error or '')}" if status == "error" else "succeeded"
            tail = f"last attempt {_duration(now - last_attempt)} ago {outcome}"
        problems.append(Problem(f"source:{source}", f"Source {source}: {head}; {tail}"))
    return problems


def redact(text: str) -> str:
    """Secrets never leave the probe, whatever an exception's message carried: the value of
    every *_TOKEN, *_SECRET, *_KEY and *_PASSWORD variable, and the databases' passwords."""
    secrets = [
        value.strip() for name, value in os.environ.items() if name.endswith(SECRET_SUFFIXES)
    ]
    secrets += [_password(os.environ.get(name, "")) for name in embedded_pg.STANDS_IN_FOR]
    # shorter values would mangle ordinary words; such a secret is weak anyway
    for secret in sorted((x for x in secrets if len(x) >= 6), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _guarded(key: str, what: str, check: Any, *args: Any) -> list[Problem]:
    """A part that cannot be read is one problem, not a traceback."""
    try:
        return check(*args)
    except psycopg.Error as exc:
        return [Problem(key, f"{what}: cannot read it ({_first_line(exc)})")]
    except Exception as exc:  # dagster wraps its storage errors in many types
        return [Problem(key, f"{what}: cannot read it ({type(exc).__name__}: {_first_line(exc)})")]


def _positive(name: str, default: float) -> float:
    raw = env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
        if value <= 0:
            raise ValueError(raw)
    except ValueError:
        raise ConfigError("health", f"{name}={raw!r} is not a positive number.") from None
    return value


def _libpq(url: str) -> str:
    """psycopg wants `postgresql://`; the project's URLs may name a SQLAlchemy driver."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql{sep}{rest}" if scheme.startswith("postgresql+") else url


def _password(url: str) -> str:
    _, _, rest = url.partition("://")
    auth, at, _ = rest.rpartition("@")
    return auth.partition(":")[2] if at else ""


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _daemon_name(daemon: str) -> str:
    return DAEMON_NAMES.get(daemon, daemon.lower())


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return _short(lines[0] if lines else type(exc).__name__)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _duration(delta: timedelta) -> str:
    """A human span: 45 s, 2 min 5 s, 14 min, 3 h 10 min, 2 d 5 h."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 10:  # near a bound of minutes, "2 min" alone would hide which side it is on
        return f"{minutes} min" + (f" {seconds % 60} s" if seconds % 60 else "")
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def probe_environment(now: datetime | None = None) -> HealthReport:
    """The probe as the shell runs it (`make health`, `python -m commands.diagnose --health`).

    The settings come from the environment and `.env`, as for `make run`; an embedded PostgreSQL
    that is not running is reported, not started (a probe must not bring up what it watches).
    """
    from resources.environment import DAGSTER_HOME, load_settings_file, prepare_environment

    load_settings_file()
    try:
        Bounds.from_env()
    except ConfigError as exc:
        stamp = (now or datetime.now(UTC)).astimezone(UTC)
        return HealthReport(False, [exc.message], stamp, keys=["config"], misconfigured=True)
    configured = all(os.environ.get(name) for name in embedded_pg.STANDS_IN_FOR)
    if not configured and not embedded_pg.is_running():
        text = (
            "PostgreSQL: the embedded server (.local/pgdata) is not running and WAREHOUSE_URL "
            "/ DAGSTER_PG_URL are not set, so nothing refreshes; start it with `make ui` or "
            "the service (deploy/)"
        )
        stamp = (now or datetime.now(UTC)).astimezone(UTC)
        return HealthReport(False, [text], stamp, keys=["postgres"])
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if not home or Path(home).resolve() == DAGSTER_HOME.resolve():
        prepare_environment()  # the project's own DAGSTER_HOME, as every command has it
    else:  # an operator's DAGSTER_HOME (a service, an image) is read, never written
        os.environ.update(embedded_pg.resolve_urls())
        if not (Path(home) / "dagster.yaml").is_file():
            stamp = (now or datetime.now(UTC)).astimezone(UTC)
            text = (
                "Dagster instance: DAGSTER_HOME has no dagster.yaml"
                " (copy the project's instance/dagster.yaml there)"
            )
            return HealthReport(
                False, [text], stamp, keys=["config:dagster_home"], misconfigured=True
            )
    warehouse_url = os.environ.get(embedded_pg.WAREHOUSE_VARIABLE, "")
    root = logging.getLogger()
    level = root.level
    # the shell gets the probe's lines only, not dagster-postgres's connection retries
    root.setLevel(max(level, logging.ERROR))
    try:
        instance = dg.DagsterInstance.get()
    except Exception as exc:  # a storage that cannot be opened is the probe's answer, not a crash
        stamp = (now or datetime.now(UTC)).astimezone(UTC)
        cause: BaseException = exc
        while cause.__cause__ is not None:  # "too many retries" wraps the reason
            cause = cause.__cause__
        text = f"Dagster storage: cannot open it ({_first_line(cause)}); check DAGSTER_PG_URL"
        return HealthReport(False, [redact(text)], stamp, keys=["dagster"])
    finally:
        root.setLevel(level)
    with instance:
        return probe(instance, warehouse_url, now)
