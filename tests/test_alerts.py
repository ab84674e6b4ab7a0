"""The alert sensor against the sandbox's Telegram simulator: one message per check that turns
warning or error, one per failed run, one when a check recovers, and none while nothing changes.
Dagster's storage is its own PostgreSQL database here, so earlier tests' runs don't count."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from checks.alerts import integration_alerts
from resources.telegram import TelegramResource
from sandbox.amocrm import BODY_402
from tests.conftest import own_dagster_instance, point_env_at, run_job


@pytest.fixture
def instance(pg_server, tmp_path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    with own_dagster_instance(pg_server, tmp_path, monkeypatch, "dagster_alerts") as instance:
        yield instance


class Ticker:
    """Evaluates the sensor the way the daemon does, carrying its cursor between ticks."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        from definitions import defs

        self.instance = instance
        self.repository = defs.get_repository_def()
        self.cursor: str | None = None

    def tick(self) -> None:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, repository_def=self.repository,
            resources={"telegram": TelegramResource(**TelegramResource.bound())},
        )  # fmt: skip
        integration_alerts(context)
        self.cursor = context.cursor


def test_given_checks_and_runs_change_then_one_message_per_change_and_none_otherwise(
    monkeypatch, warehouse, fresh_sandbox, instance
):
    point_env_at(monkeypatch, warehouse, fresh_sandbox)
    sent = fresh_sandbox.telegram.messages
    # the webhook checks judge pipelines by the ones AmoCRM serves: AmoCRM loads first
    assert run_job(instance, "refresh_amocrm").success
    ticker = Ticker(instance)
    ticker.tick()
    assert sent == []
    assert run_job(instance, "refresh_supabase_main").success
    ticker.tick()
    texts = [m["text"] for m in sent]
    assert sorted(t.split(":")[0] for t in texts) == sorted([
        "🛑 Check raw_supabase_main/flagship_course_sales",
        "⚠️ Check raw_supabase_main/express_course_sales",
        "⚠️ Check raw_supabase_main/landing_leads",
    ])  # fmt: skip
    assert any("Only" in t and "Flagship webhook sales" in t for t in texts)
    ticker.tick()
    assert run_job(instance, "refresh_supabase_main").success  # same states again
    ticker.tick()
    assert len(sent) == 3

    fresh_sandbox.servers["amocrm"].faults.add(r"/api/v4/.*", status=402, body=BODY_402, times=-1)
    assert not run_job(instance, "refresh_amocrm").success
    ticker.tick()
    ticker.tick()
    # the 402 fails the run and, evaluated although the load failed, the subscription check
    assert len(sent) == 5
    assert sorted(m["text"].split(" (")[0].split(":")[0] for m in sent[3:]) == [
        "🛑 Check raw_amocrm/leads", "🛑 Run refresh_amocrm failed"]  # fmt: skip
    assert any("402" in m["text"] or "Payment" in m["text"] for m in sent[3:])

    landing = fresh_sandbox.world.supabase["main"]["landing_leads"]
    for row in list(landing.rows.values()):
        if not row["synced_to_amocrm"]:  # the sync caught up
            landing.put({**row, "synced_to_amocrm": True, "amocrm_lead_id": 1,
                         "updated_at": fresh_sandbox.world.now})  # fmt: skip
    fresh_sandbox.sync()
    assert run_job(instance, "refresh_supabase_main").success
    ticker.tick()
    ticker.tick()
    assert len(sent) == 6
    assert sent[-1]["text"].startswith("✅ Check raw_supabase_main/landing_leads")
    assert "landing_bd_sync recovered" in sent[-1]["text"]
