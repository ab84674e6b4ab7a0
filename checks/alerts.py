"""The alert sensor: one Telegram message per change of a check's state (to warning or error, and
back to ok), one per failed run; nothing while nothing changes. Dagster does not fail a run for a
failed check, so the sensor reads the checks' latest evaluations from Dagster's event log.

The cursor remembers each check's last announced state and the runs already announced; it moves
only after a message went out, so a Telegram outage delays alerts instead of losing them.
"""

import json
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from resources.errors import SourceError
from resources.telegram import TelegramResource

ICONS = {"ok": "✅", "warning": "⚠️", "error": "🛑"}


def check_state(record: Any) -> tuple[str, str] | None:
    """(ok | warning | error, description) of an executed check; None while only planned."""
    event = record.event
    data = event.dagster_event.event_specific_data if event and event.dagster_event else None
    if data is None or not hasattr(data, "passed"):
        return None
    if data.passed:
        return "ok", data.description or ""
    severity = "warning" if data.severity == dg.AssetCheckSeverity.WARN else "error"
    return severity, data.description or ""


def check_messages(
    context: dg.SensorEvaluationContext, announced: dict[str, str]
) -> list[tuple[str, str, str]]:
    """(check, new state, message) for every check whose state changed since it was announced."""
    keys = list(context.repository_def.asset_graph.asset_check_keys)  # type: ignore[union-attr]
    records = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    changes = []
    for key, record in records.items():
        state = check_state(record)
        name = key.to_user_string()
        if state is None or announced.get(name, "ok") == state[0]:
            continue
        status, description = state
        verb = "recovered" if status == "ok" else f"is {status.upper()}"
        text = f"{ICONS[status]} Check {name} {verb}: {description}"
        changes.append((name, status, text))
    return changes


def failed_run_messages(
    context: dg.SensorEvaluationContext, since: float
) -> list[tuple[float, str]]:
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE],
            updated_after=datetime.fromtimestamp(since, UTC),
        ),
        order_by="update_timestamp",
        ascending=True,
    )
    return [
        (r.update_timestamp.timestamp(),
         f"🛑 Run {r.dagster_run.job_name} failed ({r.dagster_run.run_id[:8]}).")
        for r in records
    ]  # fmt: skip


@dg.sensor(
    name="integration_alerts",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Telegram: one message per check state change and per failed run.",
)
def integration_alerts(
    context: dg.SensorEvaluationContext, telegram: TelegramResource
) -> dg.SkipReason:
    cursor: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
    announced: dict[str, str] = cursor.get("checks", {})
    # on its first tick the sensor announces failures from now on, not the whole history
    runs_after: float = cursor.get("runs_after", datetime.now(UTC).timestamp())
    sent = 0
    try:
        for name, status, text in check_messages(context, announced):
            telegram.send(text)
            announced[name] = status
            sent += 1
        for updated, text in failed_run_messages(context, runs_after):
            telegram.send(text)
            runs_after = updated
            sent += 1
    except SourceError as exc:
        context.log.warning(f"alerts held back: {exc.message}")
    finally:
        context.update_cursor(json.dumps({"checks": announced, "runs_after": runs_after}))
    return dg.SkipReason(f"{sent} alert(s) sent" if sent else "nothing changed")
