"""The watchdog: run the probe and tell Telegram when the health changes, once per change.

It runs outside the Dagster daemon (a systemd timer, a cron line, a Kubernetes CronJob: see
deploy/), because the alert sensor inside the daemon dies with it.

What was last announced lives in a small JSON file, `HEALTH_STATE_FILE`, or else
`$DAGSTER_HOME/health_watchdog.json`: not in the warehouse or in Dagster's PostgreSQL, because
"the database is down" is one of the states it must announce once and then remember having
announced. The file is written only after Telegram accepted the message, so a Telegram outage
delays an alert to the next run instead of losing it.

The state is the set of problem keys (`daemon`, `run:<id>`, `source:<name>`, ...): a message goes
out when a key appears that was not announced (with every current problem line), and one when
all are gone (recovered). A problem that only changes its wording (its age) sends nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from health.probe import HealthReport
from resources.errors import ConfigError

STATE_FILE_NAME = "health_watchdog.json"
MAX_MESSAGE = 4000  # Telegram takes 4096 characters


class Sender(Protocol):
    def send(self, text: str) -> None: ...


@dataclass(frozen=True)
class WatchResult:
    report: HealthReport
    message: str | None  # what was sent, None when nothing changed


def state_file() -> Path:
    """HEALTH_STATE_FILE, else the file beside Dagster's instance config."""
    explicit = os.environ.get("HEALTH_STATE_FILE", "").strip()
    if explicit:
        return Path(explicit)
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if not home:
        raise ConfigError(
            "health",
            "Watchdog: set HEALTH_STATE_FILE or DAGSTER_HOME (where it "
            "remembers what it last announced).",
        )
    return Path(home) / STATE_FILE_NAME


@contextmanager
def exclusive(path: Path) -> Iterator[bool]:
    """True when this is the only watchdog on `path` now (a slow run and the next cron tick
    must not both announce the same change); False when another one holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def watch(report: HealthReport, path: Path, telegram: Sender) -> WatchResult:
    """Announce the change from the last announced state to `report`, if any; remember it."""
    previous = _load(path)
    announced = set(previous["keys"]) if previous else set()
    current = set(report.keys)
    message = None
    if report.healthy and previous is not None and not previous["healthy"]:
        message = recovered_message(report)
    elif not report.healthy and current - announced:
        message = unhealthy_message(report, current - announced)
    if message:
        telegram.send(message)
    if message or previous is None or set(previous["keys"]) != current:
        _save(path, report)
    return WatchResult(report, message)


def unhealthy_message(report: HealthReport, new: set[str]) -> str:
    lines = [
        ("🆕 " if key in new else "• ") + text
        for key, text in zip(report.keys, report.problems, strict=True)
    ]
    head = f"🛑 Traffic warehouse is UNHEALTHY ({_where(report.checked_at)}):"
    return _fit("\n".join([head, *lines, "`make health` shows the current state."]))


def recovered_message(report: HealthReport) -> str:
    return (
        f"✅ Traffic warehouse recovered ({_where(report.checked_at)}): the daemon's heartbeats, "
        "the runs and every source are within their bounds again."
    )


def _where(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC, watchdog on {socket.gethostname()}"


def _fit(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _load(path: Path) -> dict | None:
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable: start over (at worst one repeated message)
    if not isinstance(state, dict) or not isinstance(state.get("keys"), list):
        return None
    return state


def _save(path: Path, report: HealthReport) -> None:
    """Write-then-rename: a watchdog killed mid-write leaves the old state, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(
        json.dumps(
            {
                "healthy": report.healthy,
                "keys": sorted(report.keys),
                "problems": report.problems,
                "checked_at": report.checked_at.isoformat(),
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    os.replace(temporary, path)
