"""The Dagster instance and project conventions of 1.13: the run queue's limits come from the
instance's `concurrency:` section (not the legacy `run_coordinator` module path), and the
`[tool.dg]` project makes `dg check defs` and `dg list defs` work from the checkout's root. The
instance is the project's own instance/dagster.yaml over the test server's PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import dagster as dg
import yaml

from tests.conftest import ROOT

INSTANCE_YAML = ROOT / "instance" / "dagster.yaml"


def dg_commands(*commands: tuple[str, ...], dagster_home: Path) -> list[tuple[int, str, str]]:
    """Run dg commands side by side (each is a Python process loading the definitions);
    [(exit code, stdout, stderr)] in order."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "VIRTUAL_ENV": str(ROOT / ".venv"),
    }
    started = [
        subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "dg"), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    results = []
    for process in started:
        out, err = process.communicate(timeout=180)
        results.append((process.returncode, out, err))
    return results


def test_given_instance_yaml_then_run_queue_limits_one_run_per_source_in_concurrency_form(
    dagster_instance: dg.DagsterInstance,
):
    raw = yaml.safe_load(INSTANCE_YAML.read_text())
    assert "run_coordinator" not in raw  # the legacy `dagster.core.run_coordinator` form
    assert not (ROOT / "dagster.yaml").exists()  # dg dev, run from the root, would warn

    queue = dagster_instance.get_concurrency_config().run_queue_config
    assert type(dagster_instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert queue is not None
    assert queue.max_concurrent_runs == 6
    assert queue.tag_concurrency_limits == [
        {"key": "source", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]


def test_given_tool_dg_when_dg_check_and_list_defs_then_every_definition_loads(
    dagster_home: Path,
):
    (code, out, err), (listed_code, listed, listed_err) = dg_commands(
        ("check", "defs"), ("list", "defs", "--json"), dagster_home=dagster_home
    )
    assert code == 0, out + err
    assert "All definitions loaded successfully" in out
    assert "does not match" not in err  # no venv-mismatch warning

    assert listed_code == 0, listed_err
    defs = json.loads(listed)
    assets = {a["asset_key"] for a in defs["assets"]}
    assert {"raw_supabase_main/landing_leads", "core/leads", "marts/leads_total"} <= assets
    assert {s["name"] for s in defs["schedules"]} >= {"hourly_refresh"}
    assert {s["name"] for s in defs["sensors"]} >= {"models_automation", "integration_alerts"}
